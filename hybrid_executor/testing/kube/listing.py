"""The list verb as the real server answers it: which revision is read, what is selected, and paging.

Items are ordered by their etcd-style key, and a page ends with a continue token that points
into that order at the revision the first page read, as storage.EncodeContinue writes it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hybrid_executor.testing.kube.errors import ApiError, FieldError, bad_request, expired, invalid
from hybrid_executor.testing.kube.kinds import LIST_KINDS
from hybrid_executor.testing.kube.selectors import FieldSelector, LabelSelector
from hybrid_executor.testing.kube.store import Store

_CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - "
    "objects that were created, modified, or deleted between the time the first chunk was returned and "
    "now may show up in the list."
)


def store_key(obj: dict[str, Any]) -> str:
    """The etcd-style key lists are ordered by and continue tokens point into."""
    metadata = obj["metadata"]
    namespace = metadata.get("namespace", "")
    return f"{namespace}/{metadata['name']}" if namespace else metadata["name"]


def encode_continue(revision: int, start: str) -> str:
    """storage.EncodeContinue: ``revision`` -1 means "continue at the newest revision"."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    """storage.DecodeContinue, with its error words; a revision below 0 means the newest."""
    invalid_token = "invalid continue token: continue key is not valid"  # noqa: S105 - an error message
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict):
            raise ValueError(token)
    except (ValueError, binascii.Error) as exc:
        raise bad_request(f"{invalid_token}: {exc}") from None
    if data.get("v") != "meta.k8s.io/v1":
        raise bad_request(f"{invalid_token}: server does not recognize this encoded version {data.get('v')}")
    revision, start = data.get("rv"), data.get("start")
    if not isinstance(revision, int) or revision == 0:
        raise bad_request(f"{invalid_token}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise bad_request(f"{invalid_token}: encoded start key empty (version meta.k8s.io/v1)")
    return revision, start


def list_objects(
    store: Store,
    resource: str,
    namespace: str | None,
    labels: LabelSelector,
    fields: FieldSelector,
    limit: int = 0,
    continue_token: str = "",
    resource_version: str | None = None,
    resource_version_match: str | None = None,
) -> dict[str, Any]:
    """The list verb over ``store``: a snapshot at the revision asked for (or continued), selected and paged."""
    _validate_list_options(resource_version, resource_version_match, continue_token)
    start = ""
    if continue_token:
        revision, start = decode_continue(continue_token)
        if resource_version not in (None, "", "0"):
            raise bad_request("specifying resource version is not allowed when using continue")
        if revision < 0:
            revision = store.revision
        try:
            objects = store.snapshot(resource, revision)
        except ApiError as exc:
            if exc.code != 410:
                raise
            raise _continue_expired(start) from None
    else:
        revision = store.revision
        requested = parse_revision(resource_version)
        # Exact, or the legacy form of it: a resourceVersion with a limit and no match (read from etcd).
        exact = resource_version_match == "Exact" or (not resource_version_match and limit > 0)
        if exact and requested is not None:
            revision = requested
            try:
                objects = store.snapshot(resource, requested)
            except ApiError as exc:
                if exc.code != 410:
                    raise
                raise expired("The resourceVersion for the provided list is too old.") from None
        else:
            if requested is not None and requested > store.revision:
                objects = store.snapshot(resource, requested)  # raises "too large"
            objects = store.snapshot(resource, revision)
    selected = sorted(
        (
            obj
            for obj in objects.values()
            if (namespace is None or obj["metadata"].get("namespace", "") == namespace)
            and labels.matches(obj)
            and fields.matches(obj)
        ),
        key=store_key,
    )
    if start:
        selected = [obj for obj in selected if store_key(obj) >= start]
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if limit and len(selected) > limit:
        remaining = len(selected) - limit
        selected = selected[:limit]
        metadata["continue"] = encode_continue(revision, store_key(selected[-1]) + "\x00")
        if labels.empty and not fields.terms:
            metadata["remainingItemCount"] = remaining
    items = []
    for obj in selected:
        item = dict(obj)  # items of a typed list carry no kind/apiVersion of their own
        item.pop("kind", None)
        item.pop("apiVersion", None)
        items.append(item)
    return {"kind": LIST_KINDS[resource], "apiVersion": "v1", "metadata": metadata, "items": items}


def _validate_list_options(resource_version: str | None, match: str | None, continue_token: str) -> None:
    """ValidateListOptions: the list handler refuses these with 422 before it reads anything."""
    if not match:
        return
    errors = []
    if not resource_version:
        why = "resourceVersionMatch is forbidden unless resourceVersion is provided"
        errors.append(FieldError("Forbidden", "resourceVersionMatch", detail=why))
    if continue_token:
        why = "resourceVersionMatch is forbidden when continue is provided"
        errors.append(FieldError("Forbidden", "resourceVersionMatch", detail=why))
    if match not in ("Exact", "NotOlderThan"):
        errors.append(
            FieldError("NotSupported", "resourceVersionMatch", match, supported=("Exact", "NotOlderThan", ""))
        )
    if match == "Exact" and resource_version == "0":
        why = 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
        errors.append(FieldError("Forbidden", "resourceVersionMatch", detail=why))
    if errors:
        raise invalid("ListOptions", "", errors, group="meta.k8s.io")


def parse_revision(value: str | None) -> int | None:
    if value in (None, "", "0"):
        return None
    assert value is not None
    try:
        revision = int(value)
    except ValueError:
        raise bad_request(f"invalid resource version: strconv.ParseUint: parsing {value!r}: invalid syntax") from None
    if revision < 0:
        raise bad_request(f"invalid resource version: strconv.ParseUint: parsing {value!r}: invalid syntax")
    return revision


def _continue_expired(start: str) -> ApiError:
    error = expired(_CONTINUE_TOO_OLD)
    error.metadata = {"continue": encode_continue(-1, start)}  # -1: go on at the newest revision
    return error
