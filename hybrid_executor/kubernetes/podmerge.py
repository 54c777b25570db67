"""The provider's pod merge (``PodGenerator.reconcile_pods``), done on the pods' JSON instead of models.

The stock KubernetesExecutor merges the pod template, its dynamic pod and a task's pod_override
with ``PodGenerator.reconcile_pods`` on ``kubernetes.client`` models, deep-copying them at every
step: several milliseconds a pod, most of a launcher's CPU. This module follows the same rules,
step for step, on the JSON the client would send (``ApiClient.sanitize_for_serialization`` of the
models), which costs microseconds:

- ``merge_objects`` of two models: the client's value wins if it is truthy, else the base's (if
  set). A set nested model is truthy even when all its fields are unset; in JSON it is ``{}``, so
  which keys hold models is read from the client's own ``openapi_types``. An unset field (None)
  is a missing key, as ``sanitize_for_serialization`` leaves it out.
- ``merge_objects`` of two maps (labels, annotations): the base updated with the client's.
- ``extend_object_field``: the base's list then the client's; the metadata's ``managedFields``,
  ``finalizers`` and ``ownerReferences`` are only checked (the provider discards that result).
- containers by position, init containers by name, volumes appended.

The merge only ever builds new dicts and lists along the path it changes; unchanged parts are the
inputs' own objects, so the caller copies the result before changing it.

It is exact for pods whose every field holds what its model type says (a model where a model is
expected, a list where a list is, ...): :func:`well_typed` tells. Anything else (a dict where a
V1Container belongs, a tuple for a list) the provider handles in its own way, and the caller
leaves that pod to the provider's merge.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from kubernetes.client import models as k8s

Json = dict[str, Any]

_PRIMITIVES = frozenset({"str", "int", "float", "bool", "date", "datetime", "object"})
_CONTAINER_TYPES = ("list[", "dict(", "dict[")  # the client writes dict(str, str) or dict[str, str] by version
_CONTAINER_LISTS = ("volumeMounts", "env", "envFrom", "ports", "volumeDevices")
_METADATA_LISTS = ("managedFields", "finalizers", "ownerReferences")


@cache
def _model_keys(model: Any) -> frozenset[str]:
    """The JSON keys of ``model`` whose values are models themselves (truthy whenever set)."""
    return frozenset(
        model.attribute_map[attribute]
        for attribute, type_name in model.openapi_types.items()
        if type_name not in _PRIMITIVES and not type_name.startswith(_CONTAINER_TYPES)
    )


def _is_set(model: Any, key: str, value: Any) -> bool:
    """What ``if getattr(client_obj, key)`` sees in ``merge_objects``."""
    if value is None:
        return False
    return True if key in _model_keys(model) else bool(value)


def _merge_model(model: Any, base: Json | None, client: Json | None) -> Json | None:
    if base is None:  # a model is falsy only when None
        return client
    if client is None:
        return base
    merged = dict(client)
    for key, value in base.items():
        if not _is_set(model, key, client.get(key)):
            merged[key] = value
    return merged


def _merge_map(base: Any, client: Any) -> Any:
    if not base:
        return client
    if not client:
        return base
    return {**base, **client}


def _put(target: Json, key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def _check_lists(base: Json, client: Json, key: str) -> tuple[Any, Any]:
    base_list, client_list = base.get(key), client.get(key)
    if (base_list is not None and not isinstance(base_list, list)) or (
        client_list is not None and not isinstance(client_list, list)
    ):
        raise ValueError(f"The chosen field must be a list: {key}")
    return base_list, client_list


def _extend(base: Json, client: Json, key: str) -> Json:
    base_list, client_list = _check_lists(base, client, key)
    extended = dict(client)
    if not base_list:
        return extended
    extended[key] = base_list + client_list if client_list else base_list
    return extended


def _merge_container(base: Json, client: Json) -> Json:
    for key in _CONTAINER_LISTS:
        client = _extend(base, client, key)
    merged = _merge_model(k8s.V1Container, base, client)
    assert merged is not None
    return merged


def _reconcile_containers(base: list[Json] | None, client: list[Json] | None) -> list[Json] | None:
    if not base:
        return client
    if not client:
        return base
    rest = _reconcile_containers(base[1:], client[1:]) or []  # slices: never None
    return [_merge_container(base[0], client[0]), *rest]


def _reconcile_init_containers(base: list[Json], client: list[Json]) -> list[Json]:
    by_name = {container.get("name"): container for container in client}
    merged, matched = [], set()
    for container in base:
        name = container.get("name")
        if name in by_name:
            merged.append(_merge_container(container, by_name[name]))
            matched.add(name)
        else:
            merged.append(container)
    merged += [container for container in client if container.get("name") not in matched]
    return merged


def _reconcile_specs(base: Json | None, client: Json | None) -> Json | None:
    if base is None or client is None:
        return client if base is None else base
    client = dict(client)
    _put(client, "containers", _reconcile_containers(base.get("containers"), client.get("containers")))
    merged = _extend(base, client, "initContainers")
    if base.get("initContainers") and client.get("initContainers"):
        merged["initContainers"] = _reconcile_init_containers(base["initContainers"], client["initContainers"])
    merged = _extend(base, merged, "volumes")
    return _merge_model(k8s.V1PodSpec, base, merged)


def _reconcile_metadata(base: Json | None, client: Json | None) -> Json | None:
    if base is None or client is None:
        return client if base is None else base
    client = dict(client)
    _put(client, "labels", _merge_map(base.get("labels"), client.get("labels")))
    _put(client, "annotations", _merge_map(base.get("annotations"), client.get("annotations")))
    for key in _METADATA_LISTS:  # the provider extends these into a copy it then drops: only the check stays
        _check_lists(base, client, key)
    return _merge_model(k8s.V1ObjectMeta, base, client)


def reconcile_pods(base: Json, client: Json | None) -> Json:
    """``PodGenerator.reconcile_pods(base, client)`` on JSON: ``client``'s fields over ``base``'s."""
    if client is None:
        return base
    merged = dict(client)
    _put(merged, "spec", _reconcile_specs(base.get("spec"), client.get("spec")))
    _put(merged, "metadata", _reconcile_metadata(base.get("metadata"), client.get("metadata")))
    result = _merge_model(k8s.V1Pod, base, merged)
    assert result is not None
    return result


def copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data, dicts and lists copied all the way down (several times faster than deepcopy)."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


def _well_typed_value(value: Any, type_name: str) -> bool:
    if value is None:
        return True
    if type_name.startswith("list["):
        return type(value) is list and all(_well_typed_value(item, type_name[5:-1]) for item in value)
    if type_name.startswith(("dict(", "dict[")):
        item_type = type_name[type_name.index(",") + 1 : -1].strip()
        return type(value) is dict and all(_well_typed_value(item, item_type) for item in value.values())
    if type_name in _PRIMITIVES:
        return not isinstance(value, (list, tuple, dict)) and not hasattr(value, "openapi_types")
    model = getattr(k8s, type_name, None)
    return model is not None and type(value) is model and well_typed(value)


def well_typed(model: Any) -> bool:
    """Whether every field of ``model``, all the way down, holds what its type says (see the module docstring)."""
    return all(
        _well_typed_value(getattr(model, attribute, None), type_name)
        for attribute, type_name in model.openapi_types.items()
    )


__all__ = ["copy_json", "reconcile_pods", "well_typed"]
