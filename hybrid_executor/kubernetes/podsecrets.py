"""The workload's token kept out of logs and event messages: redaction, and a loggable pod summary.

A worker pod's args carry the workload JSON, token included: log pods with
:func:`redacted_pod_summary`, and pass any text that may quote a pod through :func:`redact_token`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hybrid_executor.kubernetes.identity import field_of

if TYPE_CHECKING:
    from kubernetes.client import models as k8s

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MASK = "***"


def redact_token(text: str, token: str | None = None) -> str:
    """``text`` with ``token`` and anything shaped like a JWT replaced by ``***``."""
    if token:
        text = text.replace(token, _MASK)
    return _JWT.sub(_MASK, text)


def _redact_arg(arg: str) -> str:
    if arg.startswith("{"):
        try:
            payload = json.loads(arg)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "token" in payload:
            payload["token"] = _MASK
            return redact_token(json.dumps(payload, separators=(",", ":")))
    return redact_token(arg)


def redacted_pod_summary(pod: k8s.V1Pod | Mapping[str, Any]) -> dict[str, Any]:
    """A loggable summary of a pod (model or raw JSON): identity, images, commands; token masked.

    Environment variables are listed by name only: templates may carry secrets in values.
    """
    metadata = field_of(pod, "metadata")
    spec = field_of(pod, "spec")

    def containers(attribute: str, json_key: str) -> list[dict[str, Any]]:
        summary = []
        for container in field_of(spec, attribute, json_key) or []:
            summary.append(
                {
                    "name": field_of(container, "name"),
                    "image": field_of(container, "image"),
                    "command": [_redact_arg(str(a)) for a in field_of(container, "command") or []],
                    "args": [_redact_arg(str(a)) for a in field_of(container, "args") or []],
                    "env": [field_of(e, "name") for e in field_of(container, "env") or []],
                }
            )
        return summary

    return {
        "name": field_of(metadata, "name"),
        "namespace": field_of(metadata, "namespace"),
        "labels": dict(field_of(metadata, "labels") or {}),
        "annotations": {k: redact_token(str(v)) for k, v in (field_of(metadata, "annotations") or {}).items()},
        "init_containers": containers("init_containers", "initContainers"),
        "containers": containers("containers", "containers"),
    }


__all__ = ["redact_token", "redacted_pod_summary"]
