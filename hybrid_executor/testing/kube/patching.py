"""The three PATCH bodies the API server accepts: JSON merge, strategic merge and JSON patch."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from hybrid_executor.testing.kube.errors import ApiError, bad_request, unsupported_media_type
from hybrid_executor.testing.kube.gojson import go_json_syntax_error

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# patchMergeKey of the core/v1 list fields a pod patch can touch (from the API's struct tags).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "schedulingGates": "name",
    "conditions": "type",
    "podIPs": "ip",
    "hostIPs": "ip",
}
# Not here, because the API gives them no patch strategy (a patch replaces the whole list):
# containerStatuses, initContainerStatuses, tolerations, envFrom, command, args.
# Lists of scalars whose patchStrategy is "merge" (union rather than replace).
_MERGED_SCALAR_LISTS = {"finalizers"}


def patch_media_type(content_type: str) -> str:
    """The patch's media type, or the 415 the patch handler answers first, before it reads anything else."""
    media = content_type.split(";")[0].strip().lower()
    if media not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise unsupported_media_type(content_type)
    return media


def apply_patch(content_type: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    """Return the patched copy of ``original``; errors are the server's 400/415/422 answers."""
    media = patch_media_type(content_type)
    try:
        patch = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        if media == MERGE_PATCH:
            raise bad_request("Invalid JSON Patch") from None  # evanphx/json-patch's ErrBadJSONPatch
        raise bad_request(go_json_syntax_error(body)) from None
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type jsonpatch.Patch")
        try:
            result: dict[str, Any] = jsonpatch.apply_patch(original, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            # NewGenericServerResponse(422, ...): a fixed message; the library's own words go in a cause.
            raise ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
                {"causes": [{"reason": "UnexpectedServerResponse", "message": str(exc)}]},
            ) from None
        return result
    if not isinstance(patch, dict):
        if media == MERGE_PATCH:
            raise bad_request("Invalid JSON Patch")
        raise bad_request(f"json: cannot unmarshal {_json_type(patch)} into Go value of type map[string]interface {{}}")
    if media == MERGE_PATCH:
        merged: dict[str, Any] = merge_patch(original, patch)
        return merged
    strategic: dict[str, Any] = strategic_merge_patch(original, patch)
    return strategic


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "bool", int: "number", float: "number", dict: "object"}
    return names.get(type(value), "null")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field_name: str = "") -> Any:
    if isinstance(patch, list):
        return _merge_list(target, patch, field_name)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            listed = key.split("/", 1)[1]
            if isinstance(result.get(listed), list):
                result[listed] = [item for item in result[listed] if item not in value]
            continue
        if key.startswith("$"):
            continue  # directives such as $setElementOrder and $retainKeys only order or prune
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def _merge_list(target: Any, patch: list[Any], field_name: str) -> list[Any]:
    current = copy.deepcopy(target) if isinstance(target, list) else []
    merge_key = _MERGE_KEYS.get(field_name)
    if field_name in _MERGED_SCALAR_LISTS:
        return current + [item for item in patch if item not in current]
    if not merge_key or not all(isinstance(item, dict) for item in patch):
        return [item for item in copy.deepcopy(patch) if not (isinstance(item, dict) and "$patch" in item)]
    if any(item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if "$patch" not in item]
    for item in patch:
        key = item.get(merge_key)
        index = next((i for i, old in enumerate(current) if old.get(merge_key) == key), None)
        if item.get("$patch") == "delete":
            if index is not None:
                current.pop(index)
        elif index is None:
            current.append(strategic_merge_patch({}, item))
        else:
            current[index] = strategic_merge_patch(current[index], item)
    return current
