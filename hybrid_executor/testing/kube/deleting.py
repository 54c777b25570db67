"""The delete verb's rules: DeleteOptions as the handler reads them, and graceful deletion.

``read_delete_options`` is the delete handler's (endpoints/handlers/delete.go): a body wins
whole (its query is then not read), else the query through the parameter codec (400 in
strconv's words for a value it cannot convert), then ValidateDeleteOptions (422).

``delete_pod`` is rest.BeforeDelete with the pod strategy, then the generic store: a first
delete marks the pod (deletionTimestamp now + grace, deletionGracePeriodSeconds, generation + 1)
in one write; a later one may only shorten the period, moving the timestamp back by what it
lost; a period of 0 is then removed in a second write, so a watcher sees the mark, then DELETED
carrying it. ``delete_plain`` is the store's delete for a kind without a graceful strategy.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hybrid_executor.testing.kube.errors import FieldError, bad_request, conflict, invalid
from hybrid_executor.testing.kube.kinds import KINDS
from hybrid_executor.testing.kube.podstatus import TERMINAL_PHASES
from hybrid_executor.testing.kube.routing import DRY_RUN_VALUES
from hybrid_executor.testing.kube.store import Store

_POLICIES = ("Foreground", "Background", "Orphan")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def read_delete_options(raw: bytes, query: Any) -> dict[str, Any]:
    """DeleteOptions from the body, else from the query; validated; ``dryRun`` always there, as a list."""
    options: dict[str, Any] = {}
    if raw.strip():
        try:
            options = json.loads(raw)
        except ValueError:
            raise bad_request("the body of the DeleteOptions could not be decoded as JSON") from None
        if not isinstance(options, dict):
            raise bad_request("the body of the DeleteOptions must be an object")
        dry = options.get("dryRun") or []
        if not isinstance(dry, list) or not all(isinstance(value, str) for value in dry):
            raise bad_request("json: cannot unmarshal the dryRun of the DeleteOptions into Go type []string")
        options["dryRun"] = dry
    else:
        options["dryRun"] = query.getall("dryRun", [])
        grace = query.get("gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = _parse_int(grace)
        orphan = query.get("orphanDependents")
        if orphan is not None:
            options["orphanDependents"] = _parse_bool(orphan)
        policy = query.get("propagationPolicy")
        if policy is not None:
            options["propagationPolicy"] = policy
    _validate(options)
    return options


def _parse_int(text: str) -> int:
    """strconv.ParseInt(text, 10, 64), with its error words."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise bad_request(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise bad_request(f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range")
    return value


def _parse_bool(text: str) -> bool:
    """strconv.ParseBool, with its error words."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise bad_request(f"strconv.ParseBool: parsing {_go_quote(text)}: invalid syntax")


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _validate(options: dict[str, Any]) -> None:
    """ValidateDeleteOptions: every failure in one 422 on the DeleteOptions, in its order."""
    errors = []
    policy = options.get("propagationPolicy")
    if options.get("orphanDependents") is not None and policy is not None:
        why = "orphanDependents and deletionPropagation cannot be both set"
        errors.append(FieldError("Invalid", "propagationPolicy", policy, why))
    if policy is not None and policy not in _POLICIES:
        errors.append(FieldError("NotSupported", "propagationPolicy", policy, supported=(*_POLICIES, "nil")))
    dry = options["dryRun"]
    if any(value not in DRY_RUN_VALUES for value in dry):
        errors.append(FieldError("NotSupported", "dryRun", list(dry), supported=DRY_RUN_VALUES))
    if errors:
        raise invalid("DeleteOptions", "", errors, group="meta.k8s.io")


def check_preconditions(resource: str, obj: dict[str, Any], preconditions: dict[str, Any] | None) -> None:
    """DeleteOptions.preconditions, worded as rest.BeforeDelete does (it names the Kind, not the resource)."""
    if not preconditions:
        return
    metadata = obj["metadata"]
    kind = KINDS[resource]
    wanted_uid = preconditions.get("uid")
    if wanted_uid and wanted_uid != metadata.get("uid"):
        why = (
            f"the UID in the precondition ({wanted_uid}) does not match the UID in record ({metadata.get('uid')}). "
            "The object might have been deleted and then recreated"
        )
        raise conflict(kind, metadata["name"], why)
    wanted_version = preconditions.get("resourceVersion")
    if wanted_version and wanted_version != metadata.get("resourceVersion"):
        why = (
            f"the ResourceVersion in the precondition ({wanted_version}) does not match the ResourceVersion "
            f"in record ({metadata.get('resourceVersion')}). The object might have been modified"
        )
        raise conflict(kind, metadata["name"], why)


def check_namespace_preconditions(namespace: dict[str, Any], preconditions: dict[str, Any] | None) -> None:
    """The namespace storage's own checks, before anything else, in its own words."""
    metadata = namespace["metadata"]
    wanted_uid = (preconditions or {}).get("uid")
    if wanted_uid and wanted_uid != metadata["uid"]:
        why = f"Precondition failed: UID in precondition: {wanted_uid}, UID in object meta: {metadata['uid']}"
        raise conflict("namespaces", metadata["name"], why)
    wanted_version = (preconditions or {}).get("resourceVersion")
    if wanted_version and wanted_version != metadata["resourceVersion"]:
        why = (
            f"Precondition failed: ResourceVersion in precondition: {wanted_version}, "
            f"ResourceVersion in object meta: {metadata['resourceVersion']}"
        )
        raise conflict("namespaces", metadata["name"], why)


def delete_pod(store: Store, pod: dict[str, Any], grace: int | None) -> dict[str, Any]:
    """BeforeDelete with the pod strategy, then the generic store's writes; answers the pod as it ends up."""
    metadata = pod["metadata"]
    current = metadata.get("deletionGracePeriodSeconds")
    marked = copy.deepcopy(pod)
    if metadata.get("deletionTimestamp"):
        if not current:
            return delete_plain(store, "pods", pod)  # a mark whose removal never happened: remove now
        if grace is None or grace >= current:
            return pod  # pending: only a shorter period changes anything
        # The timestamp moves back by the seconds the period lost.
        moment = _parse_time(metadata["deletionTimestamp"]) - timedelta(seconds=current - grace)
        marked["metadata"]["deletionTimestamp"] = moment.strftime(_TIME_FORMAT)
    else:
        # CheckGracefulDelete: the asked period, else the pod's; 0 for a pod no node runs or one finished.
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds") or 0)
        if not pod["spec"].get("nodeName") or pod["status"].get("phase") in TERMINAL_PHASES:
            grace = 0
        marked["metadata"]["deletionTimestamp"] = _timestamp(seconds_from_now=grace)
        if metadata.get("generation", 0) > 0:
            marked["metadata"]["generation"] = metadata["generation"] + 1
    marked["metadata"]["deletionGracePeriodSeconds"] = grace
    written = store.update("pods", marked)
    if grace > 0 or metadata.get("finalizers") or store.in_dry_run:
        return written  # a dry run answers the mark it would write, as Store.Delete does
    return store.remove("pods", metadata.get("namespace", ""), metadata["name"])


def delete_plain(store: Store, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The generic store's delete without a grace period: gone now, or only marked while finalizers hold it."""
    metadata = obj["metadata"]
    if not metadata.get("finalizers"):
        return store.remove(resource, metadata.get("namespace", ""), metadata["name"])
    if metadata.get("deletionTimestamp") and metadata.get("deletionGracePeriodSeconds") == 0:
        return obj  # markAsDeleting again changes nothing: no write
    deleting = copy.deepcopy(obj)
    deleting["metadata"].setdefault("deletionTimestamp", _timestamp())
    deleting["metadata"]["deletionGracePeriodSeconds"] = 0
    return store.update(resource, deleting)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=timezone.utc)


def _timestamp(seconds_from_now: int = 0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return moment.strftime(_TIME_FORMAT)
