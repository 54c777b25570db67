"""What ``delete_option_kwargs`` and ``kube_client_request_args`` may hold, checked when the settings are read.

Both are JSON objects, as the stock executor reads them. ``delete_option_kwargs`` holds keyword
arguments of the client's ``V1DeleteOptions`` (``grace_period_seconds``, ``propagation_policy``, ...):
each deletion sends them as its body, with the pod's uid as the precondition. Two of them cannot
apply to every pod and are refused: ``preconditions`` (ours name the one pod meant) and
``dry_run`` (no pod would ever go). Values are checked as the API server's ValidateDeleteOptions
checks them, so a wrong one stops the scheduler at start instead of failing every deletion.

``kube_client_request_args`` holds keyword arguments of every client call; the executor applies
``_request_timeout``, the one that changes nothing about how answers are read. The others
(``_preload_content``, ``async_req``, ``_return_http_data_only``, ...) would break the raw-JSON
reading of :mod:`hybrid_executor.kubernetes.api`, and method parameters (``dry_run``, ``pretty``)
do not fit every call: they are refused with the reason.

Each checker raises :class:`OptionValueError` (problem and fix) for the settings to report with
the option's section, name and value.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any

PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
REQUEST_TIMEOUT = "_request_timeout"
RequestTimeout = float | tuple[float, float]

_REFUSED_DELETE_OPTIONS = {
    "preconditions": "the executor sends the pod's own uid as the precondition of each deletion",
    "dry_run": "no pod would ever be deleted",
}


class OptionValueError(ValueError):
    """What is wrong with a value, and how to fix it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


def delete_option_names() -> tuple[str, ...]:
    """The keyword arguments of the installed client's V1DeleteOptions."""
    from kubernetes.client import V1DeleteOptions

    return tuple(V1DeleteOptions.openapi_types)


def check_delete_options(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The V1DeleteOptions keyword arguments, checked; raises :class:`OptionValueError`."""
    known = delete_option_names()
    usable = ", ".join(name for name in known if name not in _REFUSED_DELETE_OPTIONS)
    for name in kwargs:
        if name in _REFUSED_DELETE_OPTIONS:
            raise OptionValueError(
                f"sets {name}, which cannot apply to every pod: {_REFUSED_DELETE_OPTIONS[name]}", f"remove {name}"
            )
        if name not in known:
            raise OptionValueError(f"has {name!r}, which is not an argument of V1DeleteOptions", f"use only {usable}")
    grace = kwargs.get("grace_period_seconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or grace < 0):
        raise OptionValueError(f"sets grace_period_seconds to {grace!r}", "set a whole number of seconds, 0 or more")
    policy = kwargs.get("propagation_policy")
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise OptionValueError(
            f"sets propagation_policy to {policy!r}", f"set one of {', '.join(PROPAGATION_POLICIES)}"
        )
    if policy is not None and kwargs.get("orphan_dependents") is not None:
        # The API server refuses the pair with 422 (ValidateDeleteOptions).
        raise OptionValueError(
            "sets both orphan_dependents and propagation_policy",
            "keep propagation_policy only (orphan_dependents is its deprecated form)",
        )
    for flag in ("orphan_dependents", "ignore_store_read_error_with_cluster_breaking_potential"):
        if kwargs.get(flag) is not None and not isinstance(kwargs[flag], bool):
            raise OptionValueError(f"sets {flag} to {kwargs[flag]!r}", "set true or false")
    return dict(kwargs)


def delete_options_body(kwargs: Mapping[str, Any], uid: str | None) -> dict[str, Any]:
    """The DeleteOptions body of one deletion (JSON names): the checked options, and ``uid`` as the precondition."""
    from kubernetes.client import V1DeleteOptions

    body = {V1DeleteOptions.attribute_map[name]: value for name, value in kwargs.items() if value is not None}
    if uid:
        body["preconditions"] = {"uid": uid}
    return body


def check_request_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """The request arguments, checked (``_request_timeout`` as a number or a pair); raises :class:`OptionValueError`."""
    for name in args:
        if name != REQUEST_TIMEOUT:
            raise OptionValueError(
                f"has {name!r}, which the hybrid executor does not pass: it reads every answer itself, "
                "and method parameters do not fit every call",
                f"keep only {REQUEST_TIMEOUT} (seconds, or [connect, read])",
            )
    if REQUEST_TIMEOUT not in args:
        return {}
    return {REQUEST_TIMEOUT: _timeout(args[REQUEST_TIMEOUT])}


def import_callable(path: str) -> Callable[[], Any]:
    """The callable at the import path ``module.name`` (``client_factory``); raises OptionValueError."""
    module, _, name = path.rpartition(".")
    fix = "set the import path of a zero-argument callable returning a kubernetes.client.CoreV1Api, module.name"
    if not module or not name:
        raise OptionValueError("is not an import path of the form module.name", fix)
    try:
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise OptionValueError(f"cannot be imported ({type(error).__name__}: {error})", fix) from None
    if not callable(target):
        raise OptionValueError(f"is a {type(target).__name__}, not a callable", fix)
    return target  # type: ignore[no-any-return]


def _timeout(value: Any) -> RequestTimeout:
    fix = f"set {REQUEST_TIMEOUT} to a positive number of seconds, or a list [connect, read] of two"
    if isinstance(value, list) and len(value) == 2 and all(_positive(part) for part in value):
        return (float(value[0]), float(value[1]))
    if _positive(value):
        return float(value)
    raise OptionValueError(f"sets {REQUEST_TIMEOUT} to {value!r}", fix)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


__all__ = [
    "PROPAGATION_POLICIES",
    "REQUEST_TIMEOUT",
    "OptionValueError",
    "RequestTimeout",
    "check_delete_options",
    "check_request_args",
    "delete_option_names",
    "delete_options_body",
    "import_callable",
]
