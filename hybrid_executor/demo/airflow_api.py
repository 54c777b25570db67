"""The few calls of Airflow 3's public REST API (``/api/v2``) that the demo needs, as the admin user."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

_PAGE = 100  # [api] maximum_page_limit's default


class AirflowApiError(RuntimeError):
    """The api-server answered with an error, or a wait ran out of time."""


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _authorization(self) -> dict[str, str]:
        if self._token is None:
            response = self._http.post("/auth/token", json={"username": self._username, "password": self._password})
            _raise_for(response, "log in")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, "/api/v2" + path, headers=self._authorization(), **kwargs)
        if response.status_code == 401:  # the token expired: log in again, once
            self._token = None
            response = self._http.request(method, "/api/v2" + path, headers=self._authorization(), **kwargs)
        _raise_for(response, f"{method} /api/v2{path}")
        return response.json() if response.content else None

    def _pages(self, path: str, field: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", path, params={**(params or {}), "limit": _PAGE, "offset": len(items)})
            items += page[field]
            if not page[field] or len(items) >= page["total_entries"]:
                return items

    # --- calls ----------------------------------------------------------------------------

    def unhealthy_components(self) -> list[str] | None:
        """Components ``/api/v2/monitor/health`` does not call healthy; None if the api-server does not answer."""
        try:
            response = self._http.get("/api/v2/monitor/health")
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        health = response.json()
        return sorted(name for name, part in health.items() if (part or {}).get("status") != "healthy")

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        """The DAG once the dag-processor has parsed it; an error naming the file's import error if it has one."""
        deadline = time.monotonic() + timeout
        while True:
            response = self._http.get(f"/api/v2/dags/{quote(dag_id, safe='')}", headers=self._authorization())
            if response.status_code == 200:
                dag: dict[str, Any] = response.json()
                return dag
            errors = self.import_errors()
            if errors:
                listing = "\n".join(f"  {error['filename']}:\n{error['stack_trace']}" for error in errors)
                raise AirflowApiError(f"the DAGs folder has import errors:\n{listing}")
            if time.monotonic() > deadline:
                known = ", ".join(dag["dag_id"] for dag in self._pages("/dags", "dags")) or "none"
                raise AirflowApiError(
                    f"no DAG {dag_id!r} after {timeout:g} s; DAGs parsed so far: {known}. "
                    "Check --dag-id and --dags-folder."
                )
            time.sleep(1)

    def import_errors(self) -> list[dict[str, Any]]:
        return self._pages("/importErrors", "import_errors")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{quote(dag_id, safe='')}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a run now; returns its run_id."""
        run = self.request("POST", f"/dags/{quote(dag_id, safe='')}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.request("GET", f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self._pages(path, "task_instances")

    def event_logs(self, dag_id: str, run_id: str | None = None, task_id: str | None = None) -> list[dict[str, Any]]:
        params = {"dag_id": dag_id} | ({"run_id": run_id} if run_id else {}) | ({"task_id": task_id} if task_id else {})
        return self._pages("/eventLogs", "event_logs", params)

    def close(self) -> None:
        self._http.close()


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise AirflowApiError(f"{what}: HTTP {response.status_code}: {str(detail)[:500]}")
