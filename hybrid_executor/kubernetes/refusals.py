"""What refused a request: the kube-apiserver's own wordings of a 403, read into a :class:`Refusal`.

Every admission and authorization refusal of a pod create is HTTP 403 Forbidden with ``details`` of
only a name and a kind, so only the Status message tells a full quota (waiting helps) from a pod
that no LimitRange, PodSecurity level or webhook will ever admit (waiting cannot help).
:func:`parse_refusal` reads the wordings of ResourceQuota, LimitRanger, PodSecurity, ServiceAccount
and NamespaceLifecycle admission, the RBAC authorizer, admission webhooks and
ValidatingAdmissionPolicies into what refused it, the fields the message names, whether waiting can
clear it, and a one-line hint for the operator or DAG author.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from kubernetes.utils import parse_quantity


@dataclass(frozen=True)
class StatusCause:
    """One entry of a Status's ``details.causes`` (for 422, one per invalid field)."""

    field: str
    reason: str
    message: str


# --- what refused a request ---------------------------------------------------------------------
#
# The wordings are the kube-apiserver's (v1.36; the older ones' trailing periods and capitals are
# accepted too): admission.NewForbidden / apierrors.NewForbidden prefix every admission refusal
# with `RESOURCE "NAME" is forbidden: ` (`RESOURCE is forbidden: ` without a name, as the
# authorization filter's refusal of a create always is).


class RefusalKind(enum.Enum):
    """What refused a request, read from the API's message."""

    # ResourceQuota admission
    QUOTA_FULL = "quota_full"  # exceeded quota, but the pod alone fits: full of others' use
    QUOTA_EXCEEDS_LIMIT = "quota_exceeds_limit"  # the pod alone asks for more than the quota allows
    QUOTA_MUST_SPECIFY = "quota_must_specify"  # the quota tracks requests/limits a container does not set
    QUOTA_STATUS_UNKNOWN = "quota_status_unknown"  # the quota controller has not counted its usage yet
    LIMIT_RANGE = "limit_range"  # LimitRanger: a minimum, maximum or limit/request ratio
    POD_SECURITY = "pod_security"  # PodSecurity admission: the namespace's enforced level
    SERVICE_ACCOUNT_MISSING = "service_account_missing"  # ServiceAccount admission: the pod's SA does not exist
    NAMESPACE_TERMINATING = "namespace_terminating"  # NamespaceLifecycle: the namespace is being deleted
    RBAC = "rbac"  # the authorizer: this identity may not use this verb here
    WEBHOOK = "webhook"  # a validating or mutating admission webhook's denial
    ADMISSION_POLICY = "admission_policy"  # a ValidatingAdmissionPolicy's denial
    DRY_RUN_UNSUPPORTED = "dry_run_unsupported"  # a webhook with side effects: no dry run possible (400)
    OTHER = "other"  # a 403 none of the above: unknown, so treated as retryable


# Waiting (pods finishing, an operator's fix of RBAC or the ServiceAccount) can clear these.
_RETRYABLE_REFUSALS = frozenset(
    {
        RefusalKind.QUOTA_FULL,
        RefusalKind.QUOTA_STATUS_UNKNOWN,
        RefusalKind.SERVICE_ACCOUNT_MISSING,
        RefusalKind.RBAC,
        RefusalKind.OTHER,
    }
)


@dataclass(frozen=True)
class QuotaResource:
    """One resource of an ``exceeded quota`` message, its quantities as the API wrote them."""

    name: str  # e.g. "pods", "requests.cpu", "limits.memory", "requests.nvidia.com/gpu"
    requested: str  # what the pod asks for
    used: str  # what the namespace already uses ("" if the message names none)
    limited: str  # the quota's hard limit

    @property
    def fits_alone(self) -> bool | None:
        """Whether the pod alone is within the limit (requested <= limited); None: a quantity does not parse."""
        requested, limited = quantity(self.requested), quantity(self.limited)
        if requested is None or limited is None:
            return None
        return requested <= limited

    def __str__(self) -> str:
        used = f", used {self.used}" if self.used else ""
        return f"{self.name}: requested {self.requested}{used}, limited {self.limited}"


@dataclass(frozen=True)
class LimitRangeViolation:
    """One constraint of a LimitRange that the pod breaks."""

    constraint: str  # "minimum", "maximum" or "max limit to request ratio"
    resource: str  # e.g. "cpu", "memory"
    per: str  # "Container", "Pod" (or "PersistentVolumeClaim")
    bound: str  # the LimitRange's value, e.g. "16Gi" (for a ratio: the largest ratio allowed)
    field: str  # what of the pod's was compared: "limit", "request" or "ratio"
    value: str | None  # its value, e.g. "32Gi"; None: the pod sets no such field (or it is 0)

    def __str__(self) -> str:
        if self.constraint == "max limit to request ratio":
            observed = f"the pod's is {self.value}" if self.value is not None else f"the pod sets no {self.field}"
            return f"{self.resource} limit/request ratio per {self.per} at most {self.bound}, {observed}"
        at = "at most" if self.constraint == "maximum" else "at least"
        observed = (
            f"the pod's {self.field} is {self.value}" if self.value is not None else f"the pod sets no {self.field}"
        )
        return f"{self.resource} per {self.per} {at} {self.bound}, {observed}"


@dataclass(frozen=True)
class Refusal:
    """What refused a request, the fields its message names, and what to do about it.

    ``detail`` is the message after the ``... is forbidden: `` prefix. Which other fields are set
    depends on ``kind``:

    - quota kinds: ``quota`` (its name); ``resources`` (QUOTA_FULL, QUOTA_EXCEEDS_LIMIT: each
      exceeded resource with requested, used and limited); ``missing`` (QUOTA_MUST_SPECIFY: each
      resource with the containers that do not set it); ``resources`` names only (STATUS_UNKNOWN);
    - LIMIT_RANGE: ``limits``, one per violated constraint;
    - POD_SECURITY: ``policy``, the enforced ``LEVEL:VERSION`` (e.g. ``restricted:latest``);
    - SERVICE_ACCOUNT_MISSING: ``namespace`` and ``service_account``;
    - NAMESPACE_TERMINATING: ``namespace``;
    - RBAC: ``user`` (the identity), ``verb``, ``resource`` (``pods``, ``pods/log``),
      ``api_group`` and ``namespace`` (empty: the cluster scope; or ``path`` for a non-resource URL);
    - WEBHOOK, DRY_RUN_UNSUPPORTED: ``policy``, the webhook's name;
    - ADMISSION_POLICY: ``policy`` and ``binding``.

    ``hint``: one line for the operator or DAG author. ``retryable``: whether waiting can clear it.
    """

    kind: RefusalKind
    hint: str
    detail: str
    quota: str = ""
    resources: tuple[QuotaResource, ...] = ()
    missing: tuple[tuple[str, tuple[str, ...]], ...] = ()
    limits: tuple[LimitRangeViolation, ...] = ()
    policy: str = ""
    binding: str = ""
    service_account: str = ""
    namespace: str = ""
    user: str = ""
    verb: str = ""
    resource: str = ""
    api_group: str = ""
    path: str = ""

    @property
    def retryable(self) -> bool:
        """Whether waiting can clear it: a full quota, RBAC or a ServiceAccount someone creates, or unknown."""
        return self.kind in _RETRYABLE_REFUSALS


def quantity(text: str) -> Decimal | None:
    """A Kubernetes quantity (``500m``, ``64Gi``, ``1e3``, ``1.5``) as a number; None if it is not one."""
    try:
        value = parse_quantity(text.strip())
    except (ValueError, ArithmeticError):  # decimal.InvalidOperation is an ArithmeticError
        return None
    return value if value.is_finite() else None


_QUOTED = r'"((?:[^"\\]|\\.)*)"'  # a Go %q string
_FORBIDDEN_PREFIX = re.compile(r'^(?:[^\s"]+(?: "(?:[^"\\]|\\.)*")? is )?forbidden: ', re.S)
_RBAC = re.compile(
    rf"^User {_QUOTED} cannot (\S+) resource {_QUOTED} in API group {_QUOTED} "
    rf"(?:in the namespace {_QUOTED}|at the cluster scope)(?:: (.*))?\Z",
    re.S,
)
_RBAC_PATH = re.compile(rf"^User {_QUOTED} cannot (\S+) path {_QUOTED}(?:: (.*))?\Z", re.S)
_TERMINATING = re.compile(r"^unable to create new content in namespace (\S+) because it is being terminated")
_TERMINATING_CAUSE = re.compile(r"^namespace (\S+) is being terminated")
_QUOTA_EXCEEDED = re.compile(r"^exceeded quota: ([^,]+), requested: (\S*), used: (\S*), limited: (\S*)\Z")
_QUOTA_MUST_SPECIFY = re.compile(r"^failed quota: ([^:]+): must specify (.+)\Z", re.S)
_QUOTA_UNKNOWN = re.compile(r"^status unknown for quota: ([^,]+), resources?: (.*)\Z")
_LIMIT_START = re.compile(r"^\[?(?:(?i:minimum|maximum) \S+ usage per |\S+ max limit to request ratio per )")
_LIMIT_MIN_MAX = re.compile(
    r"(?i:(minimum|maximum)) (\S+) usage per (\S+) is (\S+?)"
    r"(?:, but (request|limit) is ([^\s,\]]+)|\.\s+No (request|limit) is specified)"
)
_LIMIT_RATIO = re.compile(
    r"(\S+) max limit to request ratio per (\S+) is (\S+?), but "
    r"(?:no (request|limit) is specified or \w+ is 0|provided ratio is ([0-9.]+\d))"
)
_POD_SECURITY = re.compile(r'^violates PodSecurity "([^"]+)": (.*)\Z', re.S)
_SERVICE_ACCOUNT = re.compile(r"^error looking up service account ([^/\s]+)/(\S+?): (.*)\Z", re.S | re.I)
_SERVICE_ACCOUNT_OLD = re.compile(r"^service account ([^/\s]+)/(\S+) was not found")
_WEBHOOK = re.compile(rf"admission webhook {_QUOTED} denied the request(?:: (.*)| without explanation)", re.S)
_WEBHOOK_NO_DRY_RUN = re.compile(rf"admission webhook {_QUOTED} does not support dry run")
_ADMISSION_POLICY = re.compile(
    r"ValidatingAdmissionPolicy '([^']+)'(?: with binding '([^']+)')? denied request: (.*)", re.S
)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_refusal(code: int, message: str, causes: Sequence[StatusCause] = ()) -> Refusal | None:
    """What refused a request, from its Status code, message and causes.

    Every 403 gets a Refusal (OTHER when the wording is none this module knows). Any other code
    gets one only for an admission webhook's or ValidatingAdmissionPolicy's denial (their code is
    theirs to choose) and a webhook's dry-run refusal; otherwise None: the error is no refusal.
    """
    detail = _FORBIDDEN_PREFIX.sub("", message, count=1)
    found = _refusal_anywhere(message)
    if found is not None:
        return found
    if code != 403:
        return None
    for parse in (_terminating, _rbac, _quota, _limit_range, _pod_security, _service_account):
        refusal = parse(detail, causes)
        if refusal is not None:
            return refusal
    hint = (
        "a refusal this executor does not recognise (read the message); treated as retryable: it may be fixed meanwhile"
    )
    return Refusal(RefusalKind.OTHER, hint, detail)


def _refusal_anywhere(message: str) -> Refusal | None:
    """The denials that may come with any code and, in older servers, without the forbidden prefix."""
    if match := _WEBHOOK.search(message):
        name = _unquote(match[1])
        hint = f"the admission webhook {name} refuses this pod: change the pod as its message says, or ask its owners"
        return Refusal(RefusalKind.WEBHOOK, hint, (match[2] or "").strip(), policy=name)
    if match := _WEBHOOK_NO_DRY_RUN.search(message):
        name = _unquote(match[1])
        hint = (
            f"the admission webhook {name} has side effects, so a dry run cannot check this pod "
            "(a real create may still be admitted)"
        )
        return Refusal(RefusalKind.DRY_RUN_UNSUPPORTED, hint, message, policy=name)
    if match := _ADMISSION_POLICY.search(message):
        policy, binding = match[1], match[2] or ""
        bound = f" (binding {binding})" if binding else ""
        hint = (
            f"the ValidatingAdmissionPolicy {policy}{bound} refuses this pod: change the pod as its message says, "
            "or ask its owners"
        )
        return Refusal(RefusalKind.ADMISSION_POLICY, hint, match[3].strip(), policy=policy, binding=binding)
    return None


def _terminating(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    namespace = ""
    if match := _TERMINATING.match(detail):
        namespace = match[1].rstrip(".")
    else:
        cause = next((cause for cause in causes if cause.reason == "NamespaceTerminating"), None)
        if cause is None:
            return None
        named = _TERMINATING_CAUSE.match(cause.message)
        namespace = named[1] if named else ""
    where = f"namespace {namespace}" if namespace else "the namespace"
    hint = (
        f"{where} is being deleted, so nothing new can be created in it: point the queue at another namespace, "
        f"or recreate {namespace or 'it'} once it is gone"
    )
    return Refusal(RefusalKind.NAMESPACE_TERMINATING, hint, detail, namespace=namespace)


def _rbac(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    if match := _RBAC.match(detail):
        user, verb, resource, group = _unquote(match[1]), match[2], _unquote(match[3]), _unquote(match[4])
        namespace = _unquote(match[5]) if match[5] is not None else ""
        what = f"{resource} (API group {group})" if group else resource
        if namespace:
            where = f"in namespace {namespace} (a Role and a RoleBinding there)"
        else:
            where = "at the cluster scope (a ClusterRole and a ClusterRoleBinding)"
        hint = f"grant {user} the verb {verb} on {what} {where}"
        return Refusal(
            RefusalKind.RBAC,
            hint,
            detail,
            user=user,
            verb=verb,
            resource=resource,
            api_group=group,
            namespace=namespace,
        )
    if match := _RBAC_PATH.match(detail):
        user, verb, path = _unquote(match[1]), match[2], _unquote(match[3])
        hint = f"grant {user} the verb {verb} on the non-resource URL {path} (a ClusterRole and a ClusterRoleBinding)"
        return Refusal(RefusalKind.RBAC, hint, detail, user=user, verb=verb, path=path)
    return None


def _resource_list(text: str) -> dict[str, str]:
    """``requests.cpu=30,requests.memory=80Gi`` (the quota admission's prettyPrint) as a dict."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {name: value for name, _, value in pairs}


def _quota(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    if match := _QUOTA_EXCEEDED.match(detail):
        name = match[1]
        requested, used, limited = (_resource_list(match[i]) for i in (2, 3, 4))
        resources = tuple(
            QuotaResource(resource, requested[resource], used.get(resource, ""), limited.get(resource, ""))
            for resource in requested
        )
        too_big = [resource for resource in resources if resource.fits_alone is False]
        if too_big:
            numbers = "; ".join(f"{r.name}: requested {r.requested}, limited {r.limited}" for r in too_big)
            hint = (
                f"the pod alone asks for more than ResourceQuota {name} allows ({numbers}): lower it in the pod "
                "template or the task's pod_override, or raise the quota"
            )
            return Refusal(RefusalKind.QUOTA_EXCEEDS_LIMIT, hint, detail, quota=name, resources=resources)
        numbers = "; ".join(str(resource) for resource in resources)
        hint = (
            f"ResourceQuota {name} is full ({numbers}): the pod fits once running pods finish; "
            "raise the quota if this lasts"
        )
        return Refusal(RefusalKind.QUOTA_FULL, hint, detail, quota=name, resources=resources)
    if match := _QUOTA_MUST_SPECIFY.match(detail):
        name = match[1]
        missing = []
        for entry in match[2].split("; "):
            resource, _, containers = entry.partition(" for: ")
            missing.append((resource.strip(), tuple(c for c in containers.strip().split(",") if c)))
        wanted = " and ".join(
            f"{resource} for {', '.join(containers) or 'every container'}" for resource, containers in missing
        )
        hint = (
            f"ResourceQuota {name} counts resources the pod does not set: set {wanted} in the pod template or "
            "pod_override (or give the namespace a LimitRange with defaults)"
        )
        return Refusal(RefusalKind.QUOTA_MUST_SPECIFY, hint, detail, quota=name, missing=tuple(missing))
    if match := _QUOTA_UNKNOWN.match(detail):
        name = match[1]
        names = tuple(QuotaResource(r, "", "", "") for r in match[2].split(",") if r)
        hint = (
            f"the usage of ResourceQuota {name} is not counted yet (kube-controller-manager's quota controller does "
            "that): it clears by itself once the controller runs"
        )
        return Refusal(RefusalKind.QUOTA_STATUS_UNKNOWN, hint, detail, quota=name, resources=names)
    return None


def _limit_range(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    if not _LIMIT_START.match(detail):
        return None
    found: list[tuple[int, LimitRangeViolation]] = []
    for match in _LIMIT_MIN_MAX.finditer(detail):
        field = match[5] or match[7]
        value = match[6].rstrip(".") if match[6] else None
        violation = LimitRangeViolation(match[1].lower(), match[2], match[3], match[4], field, value)
        found.append((match.start(), violation))
    for match in _LIMIT_RATIO.finditer(detail):
        field = match[4] or "ratio"
        violation = LimitRangeViolation("max limit to request ratio", match[1], match[2], match[3], field, match[5])
        found.append((match.start(), violation))
    if not found:
        return None
    limits = tuple(violation for _, violation in sorted(found, key=lambda item: item[0]))
    hint = (
        f"the namespace's LimitRange refuses the pod ({'; '.join(str(v) for v in limits)}): change its resources "
        "in the pod template or the task's pod_override, or the LimitRange"
    )
    return Refusal(RefusalKind.LIMIT_RANGE, hint, detail, limits=limits)


def _pod_security(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    if not (match := _POD_SECURITY.match(detail)):
        return None
    policy = match[1]
    hint = (
        f"the namespace enforces the Pod Security Standard {policy}: make the pod template (and pod_override) meet it "
        "as the message lists, or relax the namespace's pod-security.kubernetes.io/enforce label"
    )
    return Refusal(RefusalKind.POD_SECURITY, hint, detail, policy=policy)


def _service_account(detail: str, causes: Sequence[StatusCause]) -> Refusal | None:
    if match := _SERVICE_ACCOUNT.match(detail):
        namespace, account, why = match[1], match[2], match[3]
        if "not found" not in why:  # the lookup itself failed: not known to be missing
            return None
    elif match := _SERVICE_ACCOUNT_OLD.match(detail):
        namespace, account = match[1], match[2]
    else:
        return None
    hint = (
        f"create the ServiceAccount {account} in namespace {namespace} (the hybrid-executor chart does, with "
        f"podTemplate.serviceAccount.create), or set the pod template's serviceAccountName to one that exists there"
    )
    return Refusal(RefusalKind.SERVICE_ACCOUNT_MISSING, hint, detail, namespace=namespace, service_account=account)
