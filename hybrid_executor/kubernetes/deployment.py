"""Which Airflow deployment a pod belongs to: the value of its ``hybrid-executor/deployment`` label.

Two Airflow deployments may send pods to one namespace and run the same DAGs: their scheduler
jobs are numbered alike (job 7 in both databases), so the scheduler-job label alone cannot tell
their pods apart. A deployment is its metadata database (the Job and TaskInstance tables every
decision about a pod is made from), so by default its id is a short hash of where that database
is: the backend, host, port and database name of ``[database] sql_alchemy_conn``; never the user
name, the password or the other query arguments, which are not in the label in any form.
``[hybrid_executor] deployment_id`` replaces it, for deployments whose URLs look alike though
their databases differ (two releases that each reach "postgres:5432/airflow" by a name of their
own namespace), or to keep the id across a move of the database.

Pure apart from :func:`configured_database_url`, which reads Airflow's configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

# A label value: at most 63 characters, alphanumerics, '-', '_' and '.', alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_LABEL_VALUE_MAX = 63
_HASH_LEN = 12  # hex characters of a SHA-256: 48 bits, for the handful of deployments sharing a cluster
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


def deployment_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a deployment id (it must be a Kubernetes label value), or None."""
    if len(value) > _LABEL_VALUE_MAX:
        return f"is {len(value)} characters long, more than the {_LABEL_VALUE_MAX} a label value may have"
    if not _LABEL_VALUE.fullmatch(value):
        return (
            "is not a valid Kubernetes label value: it may hold letters, digits, '-', '_' and '.', "
            "and must start and end with a letter or digit"
        )
    return None


def database_deployment_id(url: str) -> str:
    """The default deployment id: a hash of the database's backend, host, port and name (no credentials).

    The same database reached by spellings that differ only in what does not locate it (a driver
    such as ``+psycopg2``, the default port written out or not, upper-case host names, another
    user) gives the same id.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite" and database and database != ":memory:":
        database = os.path.abspath(database)
    host = parsed.host or str(parsed.query.get("host") or "")  # a Unix socket directory comes as ?host=
    port = parsed.port or _DEFAULT_PORTS.get(backend)
    canonical = json.dumps([backend, host.lower(), port, database])
    return hashlib.sha256(canonical.encode()).hexdigest()[:_HASH_LEN]


def configured_database_url() -> str:
    """``[database] sql_alchemy_conn`` as Airflow resolved it (``_cmd`` and ``_secret`` included)."""
    from airflow import settings

    url = getattr(settings, "SQL_ALCHEMY_CONN", None)
    if url:
        return str(url)
    from airflow.configuration import conf

    return str(conf.get("database", "sql_alchemy_conn"))


def resolve_deployment_id(configured: str | None) -> str:
    """``[hybrid_executor] deployment_id`` if set (already checked by the settings), else the database's hash."""
    return configured or database_deployment_id(configured_database_url())


__all__ = ["database_deployment_id", "deployment_id_problem", "resolve_deployment_id"]
