"""What a container is started with: its image check, env, ``$(VAR)`` expansion and working directory.

What a container runs is its ``command`` + ``args``, with ``$(VAR)`` expanded and ``$$`` turned
into ``$`` as the kubelet does; an image's own entrypoint cannot be known here, so ``args``
alone run as the command (as an entrypoint that execs its arguments would) and a container
with neither exits 0 at once. Env: plain ``value``s and ``fieldRef``s are set over a small base
env (PATH, HOME, ...: the image's ENV stand-in); ``secretKeyRef``/``configMapKeyRef`` and
``envFrom`` name objects this API does not serve, so such a pod stays in
CreateContainerConfigError (unless the reference is optional), as a real node would. When the
program cannot start, the words are containerd's.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

from hybrid_executor.testing.kube.store import Key

# A reference the container runtime can parse: lower-case repository path, optional tag or digest.
_IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def image_name_problem(image: str) -> str:
    """Why the container runtime cannot parse this image name, in its words; "" when it can."""
    if _IMAGE_REFERENCE.match(image):
        return ""
    return (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": invalid reference format'
    )


def base_env(configured: dict[str, str] | None) -> dict[str, str]:
    return dict(configured) if configured is not None else {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}


def declared_env(
    pod: dict[str, Any], container: dict[str, Any], api_host: str, api_port: int
) -> tuple[dict[str, str], str]:
    """The env a container declares, resolved as the kubelet does: envFrom, then env in order, ``$(VAR)`` expanded.

    A reference to a Secret or ConfigMap (this API serves neither) is the node's
    CreateContainerConfigError, unless it is optional; then it adds nothing.
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
