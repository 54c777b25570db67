"""Authorization as kube-apiserver does it: request attributes, the 403 Forbidden, SelfSubjectAccessReview.

The local API has no authentication: every caller is ``system:admin`` in the ``system:masters``
group, the superuser of a real cluster, so everything is allowed (with an empty reason, as the
privileged-group authorizer answers). A test takes permissions away with ``deny`` rules; a denied
request answers the real 403 and a SelfSubjectAccessReview reports it as not allowed.

Rules are added from the test's thread and read on the server's loop, hence the lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hybrid_executor.testing.kube.decoding import decode_object, type_mismatch
from hybrid_executor.testing.kube.errors import ApiError, FieldError, decode_error, invalid
from hybrid_executor.testing.kube.rulelist import RuleList

USER = "system:admin"
GROUPS = ("system:masters", "system:authenticated")
AUTHORIZATION_GROUP = "authorization.k8s.io"
REVIEW_PATH = f"/apis/{AUTHORIZATION_GROUP}/v1/selfsubjectaccessreviews"

_SPECIAL_VERBS = ("proxy", "watch")  # /api/v1/watch/... and /api/v1/proxy/... (RequestInfoFactory)
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})  # responsewriters' sanitizer


@dataclass(frozen=True)
class Attributes:
    """What an authorizer is asked: authorizer.AttributesRecord for one request or one review."""

    user: str
    verb: str
    resource_request: bool
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    denied: bool = False  # an explicit Deny; a rule that only withholds permission is "no opinion"
    reason: str = ""


@dataclass
class AccessRule:
    """One permission taken away. Fields are exact values or ``*``; ``resource`` may name a subresource.

    ``resource`` follows RBAC's matching: ``*`` is every resource and subresource, ``pods`` only the
    pods themselves, ``pods/log`` that subresource, ``*/log`` it on any resource. A request without a
    name (a create, an unfiltered list) is matched only by ``name="*"``; one across all namespaces by
    a rule for any namespace. ``namespace=""`` matches only requests at the cluster scope: a
    scheduler with a RoleBinding in each namespace but no ClusterRoleBinding, whose list and watch of
    ``/api/v1/pods`` RBAC denies while everything in a namespace is allowed. ``path`` set makes it a
    rule for non-resource URLs (``*`` for all, a trailing ``*`` for a prefix: the client asks for
    ``/version/``, another URL than ``/version``).
    """

    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    group: str = "*"
    path: str | None = None
    reason: str = ""
    explicit: bool = False
    hits: int = 0

    def matches(self, attributes: Attributes) -> bool:
        if not _overlaps(self.verb, attributes.verb):
            return False
        if self.path is not None:
            return not attributes.resource_request and _path_matches(self.path, attributes.path)
        if not attributes.resource_request:
            return False
        return (
            _overlaps(self.group, attributes.group)
            and _resource_matches(self.resource, attributes.resource, attributes.subresource)
            and _overlaps(self.name, attributes.name)
            # A request across all namespaces ("") covers every namespace a rule could name.
            and (not attributes.namespace or _overlaps(self.namespace, attributes.namespace))
        )


def _overlaps(rule_value: str, asked: str) -> bool:
    """A rule's value covers what is asked; a review asking about "*" overlaps every rule."""
    return rule_value in ("*", asked) or asked == "*"


def _resource_matches(rule: str, resource: str, subresource: str) -> bool:
    if rule == "*" or resource == "*":
        return True
    combined = f"{resource}/{subresource}" if subresource else resource
    if rule == combined:
        return True
    return bool(subresource) and rule == f"*/{subresource}"


def _path_matches(rule: str, path: str) -> bool:
    if rule == "*":
        return True
    if rule.endswith("*"):
        return path.startswith(rule[:-1])
    return rule == path


class Authorizer(RuleList[AccessRule]):
    """The local API's authorization: everything is allowed but what a rule denies."""

    def __init__(self, user: str = USER) -> None:
        self.user = user
        super().__init__()

    def deny(
        self,
        verb: str = "*",
        resource: str = "*",
        *,
        namespace: str = "*",
        name: str = "*",
        group: str = "*",
        subresource: str | None = None,
        reason: str = "",
        explicit: bool = False,
    ) -> AccessRule:
        """Take a permission away, e.g. ``deny("create", "pods", namespace="jobs")`` or ``deny("get", "pods/log")``.

        ``subresource="log"`` is the same as ``resource="pods/log"``. ``reason`` is appended to the
        403 message and reported by a review; ``explicit`` makes it a Deny decision (a review's
        ``status.denied``, as a webhook authorizer can answer) rather than RBAC's "no opinion".
        """
        if subresource is not None:
            resource = f"{resource}/{subresource}"
        return self._add(AccessRule(verb, resource, namespace, name, group, None, reason, explicit))

    def deny_path(self, path: str, verb: str = "*", *, reason: str = "", explicit: bool = False) -> AccessRule:
        """Take away a non-resource URL such as ``/version`` (verbs are lower-case HTTP methods: ``get``)."""
        return self._add(AccessRule(verb, path=path, reason=reason, explicit=explicit))

    def authorize(self, attributes: Attributes) -> AccessDecision:
        with self._lock:
            for rule in self._rules:
                if rule.matches(attributes):
                    rule.hits += 1
                    return AccessDecision(allowed=False, denied=rule.explicit, reason=rule.reason)
        return AccessDecision(allowed=True)


# --- the request's attributes ---------------------------------------------------------------


def request_attributes(method: str, path: str, query: Any, user: str, watch: bool) -> Attributes:
    """RequestInfoFactory.NewRequestInfo for ``/api`` and ``/apis`` URLs; anything else is a non-resource URL.

    ``watch`` is the query's ``watch`` flag as the list verb reads it.
    """
    parts = [p for p in path.split("/") if p]
    non_resource = Attributes(user, method.lower(), False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    rest = rest[1:]  # the version
    if rest[0] in _SPECIAL_VERBS:
        verb, rest = rest[0], rest[1:]
        if not rest:
            return Attributes(user, verb, True, group=group)
    else:
        verbs = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        verb = verbs.get(method, "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""
    if not name and verb == "get":
        verb = "watch" if watch else "list"
        name = _exact_name(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(user, verb, True, namespace, group, resource, subresource, name)


def _exact_name(selector: str | None) -> str:
    """fields.Selector.RequiresExactMatch("metadata.name"), when the name is a valid path segment."""
    for term in (selector or "").split(","):
        term = term.strip()
        if not term.startswith("metadata.name"):
            continue
        rest = term[len("metadata.name") :]
        if rest.startswith("=="):
            value = rest[2:]
        elif rest.startswith("="):
            value = rest[1:]
        else:
            continue
        if value not in (".", "..") and "/" not in value and "%" not in value:
            return value
    return ""


def forbidden_error(attributes: Attributes, reason: str = "") -> ApiError:
    """responsewriters.Forbidden: the 403 the authorization filter answers, in the real words."""
    message = _forbidden_message(attributes).translate(_HTML)
    if reason:
        message = f"{message}: {reason}"
    resource, group, name = attributes.resource, attributes.group, attributes.name
    if not resource and not group:
        text = f"forbidden: {message}"
    else:
        qualified = f"{resource}.{group}" if group else resource
        text = f"{qualified} {_quote(name)} is forbidden: {message}" if name else f"{qualified} is forbidden: {message}"
    details = {key: value for key, value in (("name", name), ("group", group), ("kind", resource)) if value}
    return ApiError(403, "Forbidden", text, details)


def _forbidden_message(attributes: Attributes) -> str:
    user, verb = _quote(attributes.user), attributes.verb
    if not attributes.resource_request:
        return f"User {user} cannot {verb} path {_quote(attributes.path)}"
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    where = f"in the namespace {_quote(attributes.namespace)}" if attributes.namespace else "at the cluster scope"
    return f"User {user} cannot {verb} resource {_quote(resource)} in API group {_quote(attributes.group)} {where}"


def _quote(text: str) -> str:
    """Go's %q, near enough: a double-quoted string with Go's escapes for quotes and control characters."""
    return json.dumps(text, ensure_ascii=False)


# --- SelfSubjectAccessReview ----------------------------------------------------------------

_REVIEW = "SelfSubjectAccessReview"
_RESOURCE_FIELDS = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
_NON_RESOURCE_FIELDS = ("path", "verb")
_SELECTORS = (("fieldSelector", "FieldSelectorAttributes"), ("labelSelector", "LabelSelectorAttributes"))


def review_access(body: bytes, authorizer: Authorizer) -> dict[str, Any]:
    """POST selfsubjectaccessreviews: decode (400), validate (422), ask the authorizer, answer the review."""
    review = decode_object(body, _REVIEW, f"{AUTHORIZATION_GROUP}/v1")
    problem = _review_type_problem(review)
    if problem:
        raise _decode_error(body, problem)
    spec: dict[str, Any] = review.get("spec") or {}
    resource_attributes: dict[str, Any] | None = spec.get("resourceAttributes")
    non_resource_attributes: dict[str, Any] | None = spec.get("nonResourceAttributes")
    errors = _review_errors(review, resource_attributes, non_resource_attributes)
    if errors:
        # The REST storage names the kind of the decoded internal object, whose kind is empty.
        raise invalid("", "", errors, group=AUTHORIZATION_GROUP)
    if resource_attributes is not None:
        asked = {key: resource_attributes.get(key) or "" for key in _RESOURCE_FIELDS}
        attributes = Attributes(
            authorizer.user,
            asked["verb"],
            True,
            asked["namespace"],
            asked["group"],
            asked["resource"],
            asked["subresource"],
            asked["name"],
        )
    else:
        assert non_resource_attributes is not None  # validation made sure one of the two is there
        asked = {key: non_resource_attributes.get(key) or "" for key in _NON_RESOURCE_FIELDS}
        attributes = Attributes(authorizer.user, asked["verb"], False, path=asked["path"])
    decision = authorizer.authorize(attributes)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.denied:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": _REVIEW,
        "apiVersion": f"{AUTHORIZATION_GROUP}/v1",
        "metadata": {},
        "spec": _without_empty(spec),
        "status": status,
    }


def _review_errors(review: dict[str, Any], resource_attributes: Any, non_resource_attributes: Any) -> list[FieldError]:
    """ValidateSelfSubjectAccessReview. Bad values are rendered from the internal types (no JSON tags)."""
    errors: list[FieldError] = []
    if resource_attributes is not None and non_resource_attributes is not None:
        internal = {key.capitalize(): non_resource_attributes.get(key) or "" for key in _NON_RESOURCE_FIELDS}
        errors.append(
            FieldError(
                "Invalid",
                "spec.nonResourceAttributes",
                internal,
                "cannot be specified in combination with resourceAttributes",
            )
        )
    if resource_attributes is None and non_resource_attributes is None:
        errors.append(
            FieldError(
                "Invalid",
                "spec.resourceAttributes",
                None,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    for key, _ in _SELECTORS:
        selector = (resource_attributes or {}).get(key)
        if selector is None:
            continue
        path = f"spec.resourceAttributes.{key}"
        raw, requirements = selector.get("rawSelector") or "", selector.get("requirements") or []
        if raw and requirements:
            errors.append(
                FieldError("Invalid", f"{path}.rawSelector", raw, "may not specified at the same time as requirements")
            )
        if not raw and not requirements:
            detail = f"when {path} is specified, requirements or rawSelector is required"
            errors.append(FieldError("Required", f"{path}.requirements", detail=detail))
    metadata = {key: value for key, value in (review.get("metadata") or {}).items() if key != "managedFields"}
    if _without_empty(metadata):
        errors.append(FieldError("Invalid", "metadata", metadata, "must be empty"))
    return errors


def _review_type_problem(review: dict[str, Any]) -> str | None:
    """The first field whose JSON type cannot decode into the review's Go type."""
    if review.get("metadata") is not None and not isinstance(review["metadata"], dict):
        return type_mismatch(review["metadata"], _REVIEW, "metadata", "v1.ObjectMeta")
    spec = review.get("spec")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        return type_mismatch(spec, _REVIEW, "spec", "v1.SelfSubjectAccessReviewSpec")
    for key, struct, fields in (
        ("resourceAttributes", "ResourceAttributes", _RESOURCE_FIELDS),
        ("nonResourceAttributes", "NonResourceAttributes", _NON_RESOURCE_FIELDS),
    ):
        attributes = spec.get(key)
        if attributes is None:
            continue
        if not isinstance(attributes, dict):
            return type_mismatch(attributes, "SelfSubjectAccessReviewSpec", f"spec.{key}", f"v1.{struct}")
        for field_name in fields:
            value = attributes.get(field_name)
            if value is not None and not isinstance(value, str):
                return type_mismatch(value, struct, f"spec.{key}.{field_name}", "string")
        if key == "resourceAttributes":
            for selector_key, selector_struct in _SELECTORS:
                selector = attributes.get(selector_key)
                if selector is not None and not isinstance(selector, dict):
                    path = f"spec.resourceAttributes.{selector_key}"
                    return type_mismatch(selector, "ResourceAttributes", path, f"v1.{selector_struct}")
    return None


def _decode_error(body: bytes, problem: str) -> ApiError:
    return decode_error(body, problem, _REVIEW, _REVIEW, "v1")


def _without_empty(obj: Any) -> Any:
    """What survives a round trip through the Go types: omitempty drops empty strings, lists and maps."""
    if isinstance(obj, dict):
        kept = {key: _without_empty(value) for key, value in obj.items()}
        return {key: value for key, value in kept.items() if value not in ("", None, [], {})}
    if isinstance(obj, list):
        return [_without_empty(item) for item in obj]
    return obj


# --- discovery ------------------------------------------------------------------------------

_AUTHORIZATION_VERSION = {"groupVersion": f"{AUTHORIZATION_GROUP}/v1", "version": "v1"}
AUTHORIZATION_GROUP_INFO = {
    "name": AUTHORIZATION_GROUP,
    "versions": [_AUTHORIZATION_VERSION],
    "preferredVersion": _AUTHORIZATION_VERSION,
}
AUTHORIZATION_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{AUTHORIZATION_GROUP}/v1",
    "resources": [
        {
            "name": "selfsubjectaccessreviews",
            "singularName": "selfsubjectaccessreview",
            "namespaced": False,
            "kind": _REVIEW,
            "verbs": ["create"],
        }
    ],
}
