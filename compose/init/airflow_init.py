"""The compose stack's one-shot set-up, run by the ``airflow-init`` service (as root, in the Airflow image).

In order, each step safe to repeat on every ``docker compose up``:

1. refuse the ``CHANGE_ME`` placeholders of ``.env.example`` and a malformed Fernet key, with the fix;
2. ``airflow db migrate`` on the PostgreSQL service;
3. the simple auth manager's passwords file for the admin user (read by the api-server);
4. the scheduler's and api-server's kubeconfig: k3s' own (``K3S_KUBECONFIG_OUTPUT``), whose server
   ``https://127.0.0.1:6443`` only works inside the k3s container, rewritten to ``K3S_SERVER``
   (``https://k3s:6443``, a name in the certificate through ``--tls-san k3s``);
5. the worker namespace, through the ``kubernetes`` client (kubectl is not in the image), then a wait
   until a node is Ready and the namespace's ``default`` ServiceAccount exists, so the first pod is
   not refused;
6. ownership of everything it wrote, and of the shared logs volume, for the image's ``airflow`` user
   (uid 50000, gid 0), which the Airflow services and the worker pods run as.

Every setting comes from the environment the compose file gives this service; :data:`REQUIRED_ENV`
lists the variables read (the tests check the compose file sets each of them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

AIRFLOW_UID = 50000
AIRFLOW_GID = 0

REQUIRED_ENV = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE",
    "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE",
    "AIRFLOW_ADMIN_PASSWORD",
    "K3S_KUBECONFIG",
    "K3S_SERVER",
    "AIRFLOW_LOGS_FOLDER",
)
# Values that must not still be the placeholders of .env.example.
SECRETS = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
)
PLACEHOLDER = "CHANGE_ME"


class InitError(RuntimeError):
    """A step cannot be done; the message says what to fix."""


def say(message: str) -> None:
    print(f"airflow-init: {message}", flush=True)


# --- pure helpers (tested without Docker) -------------------------------------------------------


def placeholder_problems(env: Mapping[str, str]) -> list[str]:
    """The variables of :data:`REQUIRED_ENV` that are unset or still hold a ``CHANGE_ME`` placeholder."""
    problems = [f"{name} is not set" for name in REQUIRED_ENV if not env.get(name)]
    problems += [
        f"{name} still holds the placeholder of .env.example" for name in SECRETS if PLACEHOLDER in env.get(name, "")
    ]
    return problems


def admin_users(users_setting: str) -> list[str]:
    """The user names of ``[core] simple_auth_manager_users`` (``name:role`` entries, comma-separated)."""
    return [entry.split(":")[0].strip() for entry in users_setting.split(",") if entry.strip()]


def passwords_document(users_setting: str, password: str) -> dict[str, str]:
    """The simple auth manager's passwords file: every configured user gets the admin password."""
    return dict.fromkeys(admin_users(users_setting), password)


def rewrite_kubeconfig(kubeconfig: dict[str, Any], server: str) -> dict[str, Any]:
    """The kubeconfig with every cluster's ``server`` replaced (k3s writes ``https://127.0.0.1:6443``)."""
    clusters = kubeconfig.get("clusters") or []
    if not clusters:
        raise InitError("the k3s kubeconfig names no cluster")
    rewritten: dict[str, Any] = json.loads(json.dumps(kubeconfig))
    for entry in rewritten["clusters"]:
        entry["cluster"]["server"] = server
    return rewritten


# --- steps ----------------------------------------------------------------------------------------


def check_settings(env: Mapping[str, str]) -> None:
    problems = placeholder_problems(env)
    if problems:
        raise InitError(
            "; ".join(problems) + ". Set the values in compose/.env (see compose/.env.example for how to "
            "generate each), then `docker compose up -d` again."
        )
    from cryptography.fernet import Fernet

    try:
        Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())
    except ValueError as error:
        raise InitError(
            f"AIRFLOW_FERNET_KEY is not a Fernet key ({error}); generate one as compose/.env.example shows"
        ) from error


def migrate_database() -> None:
    say("airflow db migrate")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True)


def write_passwords(env: Mapping[str, str]) -> Path:
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    document = passwords_document(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"], env["AIRFLOW_ADMIN_PASSWORD"])
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    say(f"passwords file {path} for user(s) {', '.join(document)}")
    return path


def write_kubeconfig(env: Mapping[str, str], timeout: float = 300) -> Path:
    import yaml

    source = Path(env["K3S_KUBECONFIG"])
    deadline = time.monotonic() + timeout
    while not (source.is_file() and source.stat().st_size > 0):
        if time.monotonic() > deadline:
            raise InitError(
                f"k3s wrote no kubeconfig at {source} within {timeout:.0f} s; see `docker compose logs k3s`"
            )
        time.sleep(2)
    kubeconfig = rewrite_kubeconfig(yaml.safe_load(source.read_text()), env["K3S_SERVER"])
    target = Path(env["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    target.chmod(0o600)
    say(f"kubeconfig {target} for {env['K3S_SERVER']}")
    return target


def prepare_namespace(env: Mapping[str, str], timeout: float = 300) -> None:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    namespace = env["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"]
    core = client.CoreV1Api(config.new_client_from_config(env["AIRFLOW__KUBERNETES_EXECUTOR__CONFIG_FILE"]))
    try:
        core.create_namespace({"metadata": {"name": namespace}})
        say(f"namespace {namespace} created")
    except ApiException as error:
        if error.status != 409:
            raise
        say(f"namespace {namespace} exists")
    deadline = time.monotonic() + timeout
    while True:
        nodes = core.list_node().items
        ready = [
            node.metadata.name
            for node in nodes
            if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
        ]
        accounts = [sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items]
        if ready and "default" in accounts:
            say(f"node(s) Ready: {', '.join(ready)}; ServiceAccount {namespace}/default exists")
            return
        if time.monotonic() > deadline:
            raise InitError(
                f"after {timeout:.0f} s: Ready nodes {ready}, ServiceAccounts in {namespace} {accounts}; "
                "see `docker compose logs k3s`"
            )
        time.sleep(2)


def hand_over(*paths: Path) -> None:
    """Give the airflow user what this root process wrote, and the shared logs volume (recursively)."""
    for path in paths:
        os.chown(path, AIRFLOW_UID, AIRFLOW_GID)
        os.chown(path.parent, AIRFLOW_UID, AIRFLOW_GID)
    logs = Path(os.environ["AIRFLOW_LOGS_FOLDER"])
    logs.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(logs):
        for name in [".", *dirs, *files]:
            os.chown(os.path.join(folder, name), AIRFLOW_UID, AIRFLOW_GID)
    logs.chmod(0o775)
    say(f"{', '.join(str(p) for p in paths)} and {logs} belong to uid {AIRFLOW_UID}, gid {AIRFLOW_GID}")


def main() -> int:
    env = dict(os.environ)
    try:
        check_settings(env)
        migrate_database()
        passwords = write_passwords(env)
        kubeconfig = write_kubeconfig(env)
        prepare_namespace(env)
        hand_over(passwords, kubeconfig)
    except (InitError, subprocess.CalledProcessError) as error:
        say(f"FAILED: {error}")
        return 1
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
