"""What the API server checks before it stores an object, with its codes and its words.

Two stages, as in the real server: decoding (a body that is not a well-typed object of the
expected kind answers 400 BadRequest) and validation (a well-typed object that breaks a rule
answers 422 Invalid, one cause per field).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hybrid_executor.testing.kube.errors import ApiError, FieldError, bad_request, decode_error, invalid
from hybrid_executor.testing.kube.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from hybrid_executor.testing.kube.quantity import QuantityError, canonical_quantity, parse_quantity

KINDS = {"pods": "Pod", "namespaces": "Namespace", "resourcequotas": "ResourceQuota"}
_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
}


# What the legacy scheme (core/v1 and the built-in groups) can decode: a body of one of these kinds
# decodes, then fails to convert; any other kind is not registered at all.
_REGISTERED_KINDS = {
    "v1": {
        "Binding",
        "ConfigMap",
        "Endpoints",
        "Event",
        "LimitRange",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Pod",
        "PodTemplate",
        "ReplicationController",
        "ResourceQuota",
        "Secret",
        "Service",
        "ServiceAccount",
    },
    "apps/v1": {"ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"},
    "batch/v1": {"CronJob", "Job"},
    "policy/v1": {"Eviction", "PodDisruptionBudget"},
    "authorization.k8s.io/v1": {
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    },
    "authorization.k8s.io/v1beta1": {
        "LocalSubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SubjectAccessReview",
    },
}
_SCHEME = "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30"
_FIND_KIND_TYPE = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)


def decode(body: bytes, resource: str) -> dict[str, Any]:
    """Parse a request body into an object of ``resource``'s kind, or raise the server's 400."""
    kind = KINDS[resource]
    obj = decode_object(body, kind, "v1")
    problem = type_problem(obj, resource)
    if problem:
        raise decode_error(body, problem, kind, kind, "v1")
    return obj


def decode_object(body: bytes, kind: str, group_version: str) -> dict[str, Any]:
    """The create handler's decoding of a body meant to be ``kind`` in ``group_version``: JSON, kind, version."""
    try:
        # Go keeps invalid UTF-8 in strings as U+FFFD rather than refusing the body.
        obj = json.loads(body.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except ValueError:
        detail = f"couldn't get version/kind; json parse error: {go_json_syntax_error(body)}"
        raise decode_error(body, detail, kind) from None
    if not isinstance(obj, dict):
        detail = (
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{_json_type(obj)} into Go value of type {_FIND_KIND_TYPE}"
        )
        raise decode_error(body, detail, kind)
    for field_name in ("apiVersion", "kind"):
        if obj.get(field_name) is not None and not isinstance(obj[field_name], str):
            detail = (
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_type(obj[field_name])} into Go struct field .{field_name} of type string"
            )
            raise decode_error(body, detail, kind)
    data_kind = obj.get("kind") or kind
    data_group_version = obj.get("apiVersion") or group_version
    version = data_group_version.rsplit("/", 1)[-1]
    if data_kind not in _REGISTERED_KINDS.get(data_group_version, set()):
        detail = f'no kind "{data_kind}" is registered for version "{data_group_version}" in scheme "{_SCHEME}"'
        raise decode_error(body, detail, kind, data_kind, version)
    if data_kind == kind and data_group_version.rsplit("/", 1)[0] == group_version.rsplit("/", 1)[0]:
        if data_group_version != group_version:
            # Decoded and converted, then refused for being written in another version of the group.
            raise bad_request(
                f"the API version in the data ({data_group_version}) does not match "
                f"the expected API version ({group_version})"
            )
    elif (data_group_version, data_kind) != (group_version, kind):
        # Decoded as the other kind, then the conversion to the internal type of this resource fails.
        internal = group_version.split("/")[0].split(".")[0] if "/" in group_version else "core"
        detail = f"converting ({version}.{data_kind}) to ({internal}.{kind}): unknown conversion"
        raise decode_error(body, detail, kind, data_kind, version)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DIGITS = "0123456789"


class _Syntax(Exception):
    """The first syntax error of a JSON text, worded as Go's encoding/json scanner words it."""


def go_json_syntax_error(body: bytes) -> str:
    """What Go's ``json.Unmarshal`` says about ``body`` that Python's parser refused."""
    text = body.decode("utf-8", "replace")
    scanner = _GoScanner(text)
    try:
        scanner.value()
        scanner.skip()
        if scanner.at < len(text):
            scanner.fail("after top-level value")
    except _Syntax as error:
        return str(error)
    return "invalid character looking for beginning of value"  # valid for Go, refused by Python: rare


class _GoScanner:
    _ESCAPES = '"\\/bfnrtu'

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, context: str) -> None:
        if self.at >= len(self.text):
            raise _Syntax("unexpected end of JSON input")
        raise _Syntax(f"invalid character {_go_quote(self.text[self.at])} {context}")

    def peek(self) -> str:
        if self.at >= len(self.text):
            raise _Syntax("unexpected end of JSON input")
        return self.text[self.at]

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t\r\n":
            self.at += 1

    def value(self) -> None:
        self.skip()
        char = self.peek()
        if char == "{":
            self.at += 1
            self._object()
        elif char == "[":
            self.at += 1
            self._array()
        elif char == '"':
            self.at += 1
            self._string()
        elif char == "-" or char in _DIGITS:
            self._number()
        elif char in "tfn":
            self._literal({"t": "true", "f": "false", "n": "null"}[char])
        else:
            self.fail("looking for beginning of value")

    def _object(self) -> None:
        self.skip()
        if self.peek() == "}":
            self.at += 1
            return
        while True:
            self.skip()
            if self.peek() != '"':
                self.fail("looking for beginning of object key string")
            self.at += 1
            self._string()
            self.skip()
            if self.peek() != ":":
                self.fail("after object key")
            self.at += 1
            self.value()
            self.skip()
            if self.peek() == ",":
                self.at += 1
                continue
            if self.peek() == "}":
                self.at += 1
                return
            self.fail("after object key:value pair")

    def _array(self) -> None:
        self.skip()
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            self.value()
            self.skip()
            if self.peek() == ",":
                self.at += 1
                continue
            if self.peek() == "]":
                self.at += 1
                return
            self.fail("after array element")

    def _string(self) -> None:
        while True:
            char = self.peek()
            if char == '"':
                self.at += 1
                return
            if char < " ":
                self.fail("in string literal")
            self.at += 1
            if char == "\\":
                if self.peek() not in self._ESCAPES:
                    self.fail("in string escape code")
                escape = self.peek()
                self.at += 1
                if escape == "u":
                    for _ in range(4):
                        if self.peek() not in "0123456789abcdefABCDEF":
                            self.fail("in \\u hexadecimal character escape")
                        self.at += 1

    def _digits(self, context: str) -> None:
        if self.peek() not in _DIGITS:
            self.fail(context)
        while self.at < len(self.text) and self.text[self.at] in _DIGITS:
            self.at += 1

    def _number(self) -> None:
        if self.peek() == "-":
            self.at += 1
        if self.peek() == "0":
            self.at += 1
        else:
            self._digits("in numeric literal")
        if self.at < len(self.text) and self.text[self.at] == ".":
            self.at += 1
            self._digits("after decimal point in numeric literal")
        if self.at < len(self.text) and self.text[self.at] in "eE":
            self.at += 1
            if self.peek() in "+-":
                self.at += 1
            self._digits("in exponent of numeric literal")

    def _literal(self, word: str) -> None:
        for expected in word:
            if self.peek() != expected:
                self.fail(f"in literal {word} (expecting {_go_quote(expected)})")
            self.at += 1


def _go_quote(char: str) -> str:
    """encoding/json's quoteChar."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = json.dumps(char, ensure_ascii=False)[1:-1] if char >= " " else _go_control(char)
    return f"'{quoted}'"


def _go_control(char: str) -> str:
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    return named.get(char, f"\\x{ord(char):02x}")


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "null")


def _unmarshal(value: Any, struct: str, path: str, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go struct field {struct}.{path} of type {go_type}"


type_mismatch = _unmarshal  # for the other decoders (the access review's)


def type_problem(obj: dict[str, Any], resource: str) -> str | None:
    """The first field whose JSON type cannot decode into the Go type (what users most often get wrong)."""
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        return _unmarshal(metadata, "Pod" if resource == "pods" else KINDS[resource], "metadata", "v1.ObjectMeta")
    for field_name in ("labels", "annotations"):
        mapping = metadata.get(field_name)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            return _unmarshal(mapping, "ObjectMeta", f"metadata.{field_name}", "map[string]string")
        for value in mapping.values():
            if not isinstance(value, str):
                return _unmarshal(value, "ObjectMeta", f"metadata.{field_name}", "string")
    for part in ("spec", "status"):
        if obj.get(part) is not None and not isinstance(obj[part], dict):
            go_type = f"v1.{KINDS[resource]}{part.capitalize()}"
            return _unmarshal(obj[part], KINDS[resource], part, go_type)
    if resource == "resourcequotas":
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not isinstance(spec, dict):
            return _unmarshal(spec, "ResourceQuota", "spec", "v1.ResourceQuotaSpec")
        if not isinstance(status, dict):
            return _unmarshal(status, "ResourceQuota", "status", "v1.ResourceQuotaStatus")
        hard = [spec.get("hard")]
        return _resource_list_problem(hard, "ResourceQuotaSpec", "spec.hard") or _resource_list_problem(
            [status.get("hard"), status.get("used")], "ResourceQuotaStatus", "status"
        )
    if resource != "pods":
        return None
    spec = obj.get("spec", {})
    if not isinstance(spec, dict):
        return _unmarshal(spec, "Pod", "spec", "v1.PodSpec")
    for field_name in ("hostname", "subdomain"):
        if spec.get(field_name) is not None and not isinstance(spec[field_name], str):
            return _unmarshal(spec[field_name], "PodSpec", f"spec.{field_name}", "string")
    for list_name in ("containers", "initContainers"):
        containers = spec.get(list_name)
        if containers is None:
            continue
        if not isinstance(containers, list):
            return _unmarshal(containers, "PodSpec", f"spec.{list_name}", "[]v1.Container")
        for container in containers:
            if not isinstance(container, dict):
                return _unmarshal(container, "PodSpec", f"spec.{list_name}", "v1.Container")
            problem = _container_type_problem(container, list_name)
            if problem:
                return problem
    return None


def _container_type_problem(container: dict[str, Any], list_name: str) -> str | None:
    for field_name in ("name", "image"):
        value = container.get(field_name)
        if value is not None and not isinstance(value, str):
            return _unmarshal(value, "Container", f"spec.{list_name}.{field_name}", "string")
    for field_name in ("command", "args"):
        value = container.get(field_name)
        if value is None:
            continue
        if not isinstance(value, list):
            return _unmarshal(value, "Container", f"spec.{list_name}.{field_name}", "[]string")
        for item in value:
            if not isinstance(item, str):
                return _unmarshal(item, "Container", f"spec.{list_name}.{field_name}", "string")
    for field_name, go_type, item_type in (
        ("env", "[]v1.EnvVar", "v1.EnvVar"),
        ("volumeMounts", "[]v1.VolumeMount", "v1.VolumeMount"),
    ):
        items = container.get(field_name)
        if items is None:
            continue
        if not isinstance(items, list):
            return _unmarshal(items, "Container", f"spec.{list_name}.{field_name}", go_type)
        for item in items:
            if not isinstance(item, dict):
                return _unmarshal(item, "Container", f"spec.{list_name}.{field_name}", item_type)
    for env in container.get("env") or []:
        for field_name in ("name", "value"):
            if env.get(field_name) is not None and not isinstance(env[field_name], str):
                return _unmarshal(env[field_name], "EnvVar", f"spec.{list_name}.env.{field_name}", "string")
        problem = _env_source_type_problem(env.get("valueFrom"), f"spec.{list_name}.env.valueFrom")
        if problem:
            return problem
    resources = container.get("resources")
    if resources is not None and not isinstance(resources, dict):
        return _unmarshal(resources, "Container", f"spec.{list_name}.resources", "v1.ResourceRequirements")
    return _resource_list_problem(
        [(resources or {}).get("limits"), (resources or {}).get("requests")],
        "ResourceRequirements",
        f"spec.{list_name}.resources",
    )


def _env_source_type_problem(source: Any, path: str) -> str | None:
    """An EnvVarSource whose resourceFieldRef cannot decode (a divisor that does not parse: the parser's words)."""
    if source is None:
        return None
    if not isinstance(source, dict):
        return _unmarshal(source, "EnvVar", path, "v1.EnvVarSource")
    ref = source.get("resourceFieldRef")
    if ref is None:
        return None
    if not isinstance(ref, dict):
        return _unmarshal(ref, "EnvVarSource", f"{path}.resourceFieldRef", "v1.ResourceFieldSelector")
    for field_name in ("containerName", "resource"):
        if ref.get(field_name) is not None and not isinstance(ref[field_name], str):
            field_path = f"{path}.resourceFieldRef.{field_name}"
            return _unmarshal(ref[field_name], "ResourceFieldSelector", field_path, "string")
    if ref.get("divisor") is not None:
        try:
            parse_quantity(ref["divisor"])
        except QuantityError as exc:
            return str(exc)
    return None


def _resource_list_problem(lists: list[Any], struct: str, path: str) -> str | None:
    """A ResourceList that is not a map, or holds a value that does not parse as a Quantity."""
    for quantities in lists:
        if quantities is None:
            continue
        if not isinstance(quantities, dict):
            return _unmarshal(quantities, struct, path, "v1.ResourceList")
        for value in quantities.values():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                return str(exc)
    return None


def validate_object_meta(obj: dict[str, Any], namespaced: bool, name_rule: str = "subdomain") -> list[FieldError]:
    metadata = obj.setdefault("metadata", {})
    errors: list[FieldError] = []
    name = metadata.get("name") or ""
    check = dns1123_subdomain_errors if name_rule == "subdomain" else dns1123_label_errors
    generate_name = metadata.get("generateName") or ""
    if generate_name:
        # A prefix may end in "-"; apimachinery's maskTrailingDash stands in for it before the check.
        masked = generate_name[:-2] + "a" if len(generate_name) > 1 and generate_name.endswith("-") else generate_name
        errors.extend(FieldError("Invalid", "metadata.generateName", generate_name, m) for m in check(masked))
    if not name:
        errors.append(FieldError("Required", "metadata.name", detail="name or generateName is required"))
    else:
        errors.extend(FieldError("Invalid", "metadata.name", name, message) for message in check(name))
    for key, value in (metadata.get("labels") or {}).items():
        errors.extend(FieldError("Invalid", "metadata.labels", key, m) for m in label_key_errors(key))
        errors.extend(FieldError("Invalid", "metadata.labels", value, m) for m in label_value_errors(value))
    for key in metadata.get("annotations") or {}:
        # ValidateAnnotations checks the key in lower case.
        errors.extend(FieldError("Invalid", "metadata.annotations", key, m) for m in label_key_errors(key.lower()))
    size = sum(len(k) + len(v) for k, v in (metadata.get("annotations") or {}).items())
    if size > 256 * 1024:
        errors.append(FieldError("TooLong", "metadata.annotations", detail=f"may not be more than {256 * 1024} bytes"))
    return errors


def validate_pod(pod: dict[str, Any]) -> None:
    """Raise 422 Invalid naming every broken field, as pkg/apis/core/validation does for a new Pod."""
    errors = pod_errors(pod)
    if errors:
        raise invalid("Pod", pod["metadata"].get("name") or pod["metadata"].get("generateName", ""), errors)


def pod_errors(pod: dict[str, Any]) -> list[FieldError]:
    """Every rule a Pod's metadata and spec break (on create, and again on every update)."""
    errors = validate_object_meta(pod, namespaced=True)
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        errors.append(FieldError("Required", "spec.containers"))
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    seen_names: set[str] = set()
    for list_name in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(list_name) or []):
            errors.extend(_validate_container(container, f"spec.{list_name}[{index}]", seen_names, volumes))
    restart = spec.get("restartPolicy")
    if restart is not None and restart not in ("Always", "OnFailure", "Never"):
        errors.append(
            FieldError("NotSupported", "spec.restartPolicy", restart, supported=("Always", "Never", "OnFailure"))
        )
    for field_name in ("hostname", "subdomain"):  # what the kubelet makes the pod's hostname (and domain) of
        value = spec.get(field_name)
        if value:
            errors.extend(FieldError("Invalid", f"spec.{field_name}", value, m) for m in dns1123_label_errors(value))
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0:
        errors.append(
            FieldError("Invalid", "spec.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0")
        )
    return errors


def _validate_container(
    container: dict[str, Any], path: str, seen_names: set[str], volumes: set[Any]
) -> list[FieldError]:
    errors: list[FieldError] = []
    name = container.get("name") or ""
    if not name:
        errors.append(FieldError("Required", f"{path}.name"))
    else:
        errors.extend(FieldError("Invalid", f"{path}.name", name, m) for m in dns1123_label_errors(name))
        if name in seen_names:
            errors.append(FieldError("Duplicate", f"{path}.name", name))
        seen_names.add(name)
    if not (container.get("image") or "").strip():
        errors.append(FieldError("Required", f"{path}.image"))
    for index, env in enumerate(container.get("env") or []):
        if not env.get("name"):
            errors.append(FieldError("Required", f"{path}.env[{index}].name"))
        errors.extend(_validate_env_source(env, f"{path}.env[{index}].valueFrom"))
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if mount.get("name") not in volumes:
            errors.append(FieldError("NotFound", f"{path}.volumeMounts[{index}].name", mount.get("name")))
        if not mount.get("mountPath"):
            errors.append(FieldError("Required", f"{path}.volumeMounts[{index}].mountPath"))
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    for resource_name, request in (resources.get("requests") or {}).items():
        if resource_name in limits and parse_quantity(limits[resource_name]) < parse_quantity(request):
            limit = canonical_quantity(limits[resource_name])
            errors.append(
                FieldError(
                    "Invalid",
                    f"{path}.resources.requests",
                    canonical_quantity(request),
                    f"must be less than or equal to {resource_name} limit of {limit}",
                )
            )
    return errors


# What a resourceFieldRef may select in env (validContainerResourceFieldPathExpressions), and the
# prefixes that select hugepages of any size; the NotSupported error lists only the former.
_RESOURCE_FIELD_PATHS = (
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
)
_HUGEPAGES_FIELD_PREFIXES = ("limits.hugepages-", "requests.hugepages-")
_BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
# validateContainerResourceDivisor: the divisors each resource allows (as the canonical quantity), and its noun.
_DIVISORS: dict[str, tuple[tuple[str, ...], str]] = {
    "cpu": (("1m", "1"), "the cpu resource"),
    "memory": (_BYTE_DIVISORS, "the memory resource"),
    "ephemeral-storage": (_BYTE_DIVISORS, "the local ephemeral storage resource"),
    "hugepages": (_BYTE_DIVISORS, "the hugepages resource"),
}
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _validate_env_source(env: dict[str, Any], path: str) -> list[FieldError]:
    """validateEnvVarValueFrom: one source and no ``value`` beside it; a resourceFieldRef the node can resolve."""
    source = env.get("valueFrom")
    if not isinstance(source, dict):
        return []
    errors: list[FieldError] = []
    ref = source.get("resourceFieldRef")
    if isinstance(ref, dict):
        errors.extend(_validate_resource_field_ref(ref, f"{path}.resourceFieldRef"))
    sources = sum(1 for name in _ENV_SOURCES if source.get(name) is not None)
    if sources == 0:
        detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        errors.append(FieldError("Invalid", path, "", detail))
    elif env.get("value"):
        errors.append(FieldError("Invalid", path, "", "may not be specified when `value` is not empty"))
    elif sources > 1:
        errors.append(FieldError("Invalid", path, "", "may not have more than one field specified at a time"))
    return errors


def _validate_resource_field_ref(ref: dict[str, Any], path: str) -> list[FieldError]:
    """validateContainerResourceFieldSelector and validateContainerResourceDivisor, for env."""
    errors: list[FieldError] = []
    resource = ref.get("resource") or ""
    if not resource:
        errors.append(FieldError("Required", f"{path}.resource"))
    elif resource not in _RESOURCE_FIELD_PATHS and not resource.startswith(_HUGEPAGES_FIELD_PREFIXES):
        errors.append(FieldError("NotSupported", f"{path}.resource", resource, supported=_RESOURCE_FIELD_PATHS))
    divisor = ref.get("divisor")
    try:
        if divisor is None or parse_quantity(divisor) == 0:
            return errors
        written = canonical_quantity(divisor)
    except QuantityError:
        return errors  # refused when the body was decoded
    name = resource.split(".", 1)[-1]
    kind = "hugepages" if resource.startswith(_HUGEPAGES_FIELD_PREFIXES) else name
    if resource in _RESOURCE_FIELD_PATHS or kind == "hugepages":
        allowed, noun = _DIVISORS[kind]
        if written not in allowed:
            detail = f"only divisor's values {' and '.join(allowed) if kind == 'cpu' else ', '.join(allowed)}"
            errors.append(FieldError("Invalid", f"{path}.divisor", resource, f"{detail} are supported with {noun}"))
    return errors


def validate_namespace(namespace: dict[str, Any]) -> None:
    errors = validate_object_meta(namespace, namespaced=False, name_rule="label")
    if errors:
        raise invalid("Namespace", namespace["metadata"].get("name", ""), errors)


def validate_resource_quota(quota: dict[str, Any]) -> None:
    errors = validate_object_meta(quota, namespaced=True)
    for key, value in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            if parse_quantity(value) < 0:
                errors.append(
                    FieldError("Invalid", f"spec.hard[{key}]", str(value), "must be greater than or equal to 0")
                )
        except QuantityError:
            errors.append(FieldError("Invalid", f"spec.hard[{key}]", str(value), "must be a valid quantity"))
    if errors:
        raise invalid("ResourceQuota", quota["metadata"].get("name", ""), errors)


def canonicalize_quantities(resource: str, obj: dict[str, Any]) -> None:
    """Write every quantity the way the server stores it (``1000m`` becomes ``1``), in place.

    The real server decodes quantities into resource.Quantity and encodes them back, so a client
    reads the canonical form whatever it sent. Values that do not parse are left for validation.
    """
    if resource == "pods":
        spec = obj.get("spec") or {}
        maps = [spec.get("overhead"), (spec.get("resources") or {}).get("requests")]
        maps.append((spec.get("resources") or {}).get("limits"))
        for list_name in ("initContainers", "containers"):
            for container in spec.get(list_name) or []:
                resources = container.get("resources") if isinstance(container, dict) else None
                if isinstance(resources, dict):
                    maps.extend((resources.get("requests"), resources.get("limits")))
                _canonicalize_divisors(container)
    elif resource == "resourcequotas":
        status = obj.get("status") or {}
        maps = [(obj.get("spec") or {}).get("hard"), status.get("hard"), status.get("used")]
    else:
        return
    for quantities in maps:
        if not isinstance(quantities, dict):
            continue
        for name, value in quantities.items():
            try:
                quantities[name] = canonical_quantity(value)
            except QuantityError:
                continue


def _canonicalize_divisors(container: Any) -> None:
    """Write each env resourceFieldRef's divisor canonical; an unset one as "0".

    ResourceFieldSelector.Divisor is a Quantity struct, not a pointer: ``omitempty`` cannot drop
    it, so the server writes an unset divisor as the zero Quantity, ``"0"`` (which means 1).
    """
    env = container.get("env") if isinstance(container, dict) else None
    for item in env if isinstance(env, list) else []:
        source = item.get("valueFrom") if isinstance(item, dict) else None
        ref = source.get("resourceFieldRef") if isinstance(source, dict) else None
        if isinstance(ref, dict):
            with contextlib.suppress(QuantityError):
                ref["divisor"] = "0" if ref.get("divisor") is None else canonical_quantity(ref["divisor"])


def validate(resource: str, obj: dict[str, Any]) -> None:
    {"pods": validate_pod, "namespaces": validate_namespace, "resourcequotas": validate_resource_quota}[resource](obj)


__all__ = ["KINDS", "ApiError", "canonicalize_quantities", "decode", "validate"]
