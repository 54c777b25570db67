"""What a container is started with: its image check, env, ``$(VAR)`` expansion and working directory.

What a container runs is its ``command`` + ``args``, with ``$(VAR)`` expanded and ``$$`` turned
into ``$`` as the kubelet does; an image's own entrypoint cannot be known here, so ``args``
alone run as the command (as an entrypoint that execs its arguments would) and a container
with neither exits 0 at once. Env, in containerd's order: ``HOSTNAME`` (the pod's hostname, as
the kubelet generates it), then a small base env (PATH, HOME, ...: the image's ENV stand-in),
then what the container declares: plain ``value``s, ``fieldRef``s and ``resourceFieldRef``s
(limits and requests of cpu, memory, ephemeral-storage and hugepages, over a ``divisor``; an
unset limit is the node's allocatable, as the kubelet's Downward API defaulting has it).
``HOSTNAME`` is not one ``$(VAR)`` can refer to: containerd adds it after the kubelet expanded.
``secretKeyRef``/``configMapKeyRef`` and ``envFrom`` name objects this API does not serve, so
such a pod stays in CreateContainerConfigError (unless the reference is optional), as a real
node would; so does a ``resourceFieldRef`` to a container the pod does not have. When the
program cannot start, the words are containerd's.
"""

from __future__ import annotations

import errno
import math
import os
import re
import socket
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from hybrid_executor.testing.kube.quantity import QuantityError, parse_quantity
from hybrid_executor.testing.kube.store import Key

# A reference the container runtime can parse: lower-case repository path, optional tag or digest.
_IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
_HOSTNAME_MAX_LENGTH = 63  # the kubelet's cap: 64 bytes with the terminating NUL
# What an unset (or zero) container limit becomes for the Downward API: MergeContainerResourceLimits.
_DEFAULTED_LIMITS = ("cpu", "memory", "ephemeral-storage")
_POD_LEVEL_LIMITS = ("cpu", "memory")  # the resources pod-level limits (spec.resources) may set


def image_name_problem(image: str) -> str:
    """Why the container runtime cannot parse this image name, in its words; "" when it can."""
    if _IMAGE_REFERENCE.match(image):
        return ""
    return (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": invalid reference format'
    )


def base_env(configured: dict[str, str] | None) -> dict[str, str]:
    return dict(configured) if configured is not None else {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}


def pod_hostname(pod: dict[str, Any]) -> str:
    """The hostname a pod's containers get (and see as ``HOSTNAME``): the kubelet's GeneratePodHostNameAndDomain.

    ``spec.hostname`` if set, else the pod's name; longer than 63 characters, it is cut to 63 and
    loses any trailing '-' or '.'. A pod on the host's network gets no hostname from the kubelet,
    so containerd gives its containers the node's own.
    """
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return socket.gethostname()
    hostname = str(spec.get("hostname") or pod["metadata"].get("name", ""))
    if len(hostname) > _HOSTNAME_MAX_LENGTH:
        hostname = hostname[:_HOSTNAME_MAX_LENGTH].rstrip("-.")
    return hostname


def process_env(base: dict[str, str], hostname: str, declared: dict[str, str]) -> dict[str, str]:
    """The env the container's process gets, in containerd's order: HOSTNAME, the image's ENV, the declared env.

    Each later one wins, so a ``HOSTNAME`` the container declares is the one it sees.
    """
    env = {"HOSTNAME": hostname}
    env.update(base)
    env.update(declared)
    return env


def declared_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    api_host: str,
    api_port: int,
    allocatable: dict[str, str] | None = None,
) -> tuple[dict[str, str], str]:
    """The env a container declares, resolved as the kubelet does: envFrom, then env in order, ``$(VAR)`` expanded.

    A reference to a Secret or ConfigMap (this API serves neither) is the node's
    CreateContainerConfigError, unless it is optional; then it adds nothing. ``allocatable`` is
    the node's (a ResourceList): what a ``resourceFieldRef`` reads for a limit the container has not set.
    """
    declared: dict[str, str] = {}
    if api_host:
        declared["KUBERNETES_SERVICE_HOST"] = api_host
        declared["KUBERNETES_SERVICE_PORT"] = str(api_port)
    for source in container.get("envFrom") or []:
        for ref_kind, noun in (("secretRef", "secret"), ("configMapRef", "configmap")):
            ref = source.get(ref_kind)
            if ref is not None and not ref.get("optional"):
                return {}, f'{noun} "{ref.get("name", "")}" not found'
    for item in container.get("env") or []:
        source = item.get("valueFrom")
        if source is None:
            declared[item["name"]] = expand(str(item.get("value") or ""), declared)
            continue
        if "fieldRef" in source:
            declared[item["name"]] = _field_ref(pod, source["fieldRef"].get("fieldPath", ""))
            continue
        if "resourceFieldRef" in source:
            value, problem = resource_field_ref(pod, container, source["resourceFieldRef"], allocatable or {})
            if problem:
                return {}, problem
            declared[item["name"]] = value
            continue
        for ref_kind, noun in (("secretKeyRef", "secret"), ("configMapKeyRef", "configmap")):
            ref = source.get(ref_kind)
            if ref is not None and not ref.get("optional"):
                return {}, f'{noun} "{ref.get("name", "")}" not found'
    return declared, ""


def expand(text: str, variables: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion).

    ``$(NAME)`` becomes the variable's value when it is defined, and stays as written otherwise;
    ``$$`` is an escaped ``$``. The kubelet applies it to env values, command and args.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                out.append(variables.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)


def start_failure_message(program: str, error: OSError) -> str:
    why = "executable file not found in $PATH" if error.errno == errno.ENOENT else (error.strerror or str(error))
    return (
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
        f'runc create failed: unable to start container process: exec: "{program}": {why}: unknown'
    )


def working_dir(root: Path, key: Key, container: dict[str, Any]) -> str:
    wanted = container.get("workingDir")
    if wanted and os.path.isdir(wanted):
        return str(wanted)
    folder = root / key[0] / key[1] / container["name"]
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _field_ref(pod: dict[str, Any], path: str) -> str:
    metadata, status, spec = pod["metadata"], pod.get("status", {}), pod["spec"]
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    return ""


def resource_field_ref(
    pod: dict[str, Any], container: dict[str, Any], ref: dict[str, Any], allocatable: dict[str, str]
) -> tuple[str, str]:
    """A ``resourceFieldRef``'s value, as the kubelet works it out; or ("", why the container cannot be created).

    The kubelet's defaultPodLimitsForDownwardAPI, then ExtractContainerResourceValue: the container
    is the one named by ``containerName`` (a container first, then an init container) or else the
    env's own. A cpu, memory or ephemeral-storage limit it has not set (or set to 0) is the pod-level
    limit (cpu, memory) or else the node's allocatable; this is not done for an init container looked
    up by name, as the kubelet only defaults the pod's regular containers. Requests the API server
    would have defaulted from limits are read that way too. The value is ceil(quantity / divisor): cpu
    in millicores over the divisor's millicores (so ``250m`` over the default divisor ``1`` is 1),
    the others in units, as Go's float64 division works it out.
    """
    spec = pod.get("spec") or {}
    target, defaulted = container, True
    name = ref.get("containerName") or ""
    if name:
        regular = [c for c in spec.get("containers") or [] if c.get("name") == name]
        init = [c for c in spec.get("initContainers") or [] if c.get("name") == name]
        if not regular and not init:
            return "", f"container {name} not found"
        target, defaulted = (regular[0], True) if regular else (init[0], False)
    resources = target.get("resources") or {}
    limits = dict(resources.get("limits") or {})
    # SetDefaults_Pod: a request not given is the limit (per resource), before the node defaults the limits.
    requests = {**limits, **(resources.get("requests") or {})}
    if defaulted:
        node = dict(allocatable)
        pod_limits = (spec.get("resources") or {}).get("limits") or {}
        for resource in _POD_LEVEL_LIMITS:
            if resource in node and _quantity(pod_limits.get(resource)) != 0:
                node[resource] = pod_limits[resource]
        for resource in _DEFAULTED_LIMITS:
            if _quantity(limits.get(resource)) == 0 and resource in node:
                limits[resource] = node[resource]
    selector = str(ref.get("resource") or "")
    kind, _, resource = selector.partition(".")
    chosen = {"limits": limits, "requests": requests}.get(kind)
    known = resource in ("cpu", "memory", "ephemeral-storage") or resource.startswith("hugepages-")
    if chosen is None or not known:
        return "", f"Unsupported container resource : {selector}"
    divisor = _quantity(ref.get("divisor"))
    if divisor == 0:
        divisor = Decimal(1)
    amount = _quantity(chosen.get(resource))
    if resource == "cpu":  # Quantity.MilliValue() of each, rounded up
        amount, divisor = amount * 1000, divisor * 1000
    numerator, denominator = _ceil(amount), _ceil(divisor)  # Quantity.Value(), rounded up
    if denominator == 0:
        return "0", ""
    try:
        return str(math.ceil(float(numerator) / float(denominator))), ""
    except (OverflowError, ValueError):
        return str(2**63 - 1), ""


def _quantity(value: Any) -> Decimal:
    """A quantity's amount; an absent one (or one that does not parse: the API refuses those) is 0."""
    if value is None:
        return Decimal(0)
    try:
        return parse_quantity(value)
    except QuantityError:
        return Decimal(0)


def _ceil(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_CEILING))
