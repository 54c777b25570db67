"""Label and field selectors on their own: parsing as apimachinery parses, matching as the server matches."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid_executor.testing.kube.errors import ApiError
from hybrid_executor.testing.kube.selectors import parse_field_selector, parse_label_selector


def _pod(name: str = "p", labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": labels or {}},
        "spec": {"nodeName": "", "restartPolicy": "Always"},
        "status": {"phase": "Pending", **status},
    }


LABELS = {"app": "web", "tier": "front", "n": "7"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("   ", True),
        ("app=web", True),
        ("app = web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("missing=x", False),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("missing in (x)", False),
        ("app notin (db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app=web,app=db", False),  # both must hold
        ("n>5", True),
        ("n<5", False),
        ("tier>5", False),  # not an integer: no match
        ("missing<100", False),
        ("app=", False),
        ("empty=", True),
        ("example.com/key=v", False),
    ],
)
def test_label_selector_matching(selector: str, matches: bool) -> None:
    labels = {**LABELS, "empty": ""}

    assert parse_label_selector(selector).matches({"metadata": {"labels": labels}}) is matches


def test_a_missing_labels_map_is_no_labels() -> None:
    selector = parse_label_selector("app!=web,!tier")

    assert selector.matches({"metadata": {}})
    assert selector.matches({"metadata": {"labels": None}})
    assert not parse_label_selector("app").matches({"metadata": {}})


def test_empty_selector_is_empty() -> None:
    assert parse_label_selector(None).empty
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty


@pytest.mark.parametrize(
    "selector",
    [
        "app in (web",
        "app in web",
        "app in ()",
        "app notin ()",
        "a b",
        "app=web,",
        ",app=web",
        "=web",
        "app=web=x",
        "bad key!=x",
        "app=bad value!",
        "app in (ok,bad value!)",
        "n>five",
        "-leading=x",
        "a/b/c=x",
        "!",
        "app~=x",
    ],
)
def test_unparsable_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        parse_label_selector(selector)

    assert excinfo.value.code == 400
    assert excinfo.value.reason == "BadRequest"


def test_label_selector_error_names_the_problem() -> None:
    with pytest.raises(ApiError) as excinfo:
        parse_label_selector("app=web x")

    assert excinfo.value.message.startswith("found 'x', expected: ',' or 'end of string'")


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("metadata.name=a", ["a"]),
        ("metadata.name==a", ["a"]),
        ("metadata.name!=a", ["b", "c"]),
        ("status.phase=Running", ["b"]),
        ("status.phase!=Running,status.phase!=Failed", ["a"]),
        ("metadata.namespace=ns", ["a", "b", "c"]),
        ("metadata.namespace=other", []),
        ("spec.nodeName=", ["a", "b", "c"]),
        ("metadata.name=a,", ["a"]),  # an empty term is skipped
        (r"metadata.name=a\,b", []),  # an escaped comma is part of the value
    ],
)
def test_field_selector_matching(selector: str, names: list[str]) -> None:
    pods = [_pod("a"), _pod("b", phase="Running"), _pod("c", phase="Failed")]
    parsed = parse_field_selector(selector, "pods")

    assert [p["metadata"]["name"] for p in pods if parsed.matches(p)] == names


def test_escaped_value_is_unescaped() -> None:
    parsed = parse_field_selector(r"metadata.name=a\,b\=c\\d", "pods")

    assert parsed.matches(_pod("a,b=c\\d"))
    assert not parse_field_selector("metadata.name=a", "pods").matches(_pod("a,b"))


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("spec.containers=x", "field label not supported: spec.containers"),
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: 61"),
        (r"metadata.name=a\x", "invalid field selector: invalid escape sequence: \\x"),
        ("metadata.name = a", "field label not supported: metadata.name "),  # nothing is trimmed
    ],
)
def test_field_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(ApiError) as excinfo:
        parse_field_selector(selector, "pods")

    assert excinfo.value.code == 400
    assert excinfo.value.message == message


@pytest.mark.parametrize(
    ("resource", "field", "supported"),
    [
        ("pods", "spec.nodeName", True),
        ("pods", "spec.host", True),
        ("pods", "spec.hostNetwork", True),
        ("pods", "spec.serviceAccountName", True),
        ("pods", "status.podIP", True),
        ("pods", "status.nominatedNodeName", True),
        ("pods", "metadata.labels", False),
        ("namespaces", "status.phase", True),
        ("namespaces", "metadata.namespace", False),
        ("resourcequotas", "metadata.namespace", True),
        ("resourcequotas", "status.phase", False),
    ],
)
def test_which_fields_each_resource_indexes(resource: str, field: str, supported: bool) -> None:
    if supported:
        parse_field_selector(f"{field}=x", resource)
    else:
        with pytest.raises(ApiError, match="field label not supported"):
            parse_field_selector(f"{field}=x", resource)


def test_host_is_the_old_name_of_node_name() -> None:
    pod = _pod("bound")
    pod["spec"]["nodeName"] = "node-1"

    assert parse_field_selector("spec.host=node-1", "pods").matches(pod)
    assert parse_field_selector("spec.hostNetwork=false", "pods").matches(pod)
