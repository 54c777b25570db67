"""List: label and field selectors, pagination with limit and continue, lists across namespaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException


def _status(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(excinfo.value.body)
    return body


def _names(pods: client.V1PodList) -> list[str]:
    return [pod.metadata.name for pod in pods.items]


@pytest.fixture
def labelled(make_pod: Callable[..., client.V1Pod]) -> None:
    make_pod("a", labels={"app": "web", "tier": "front"})
    make_pod("b", labels={"app": "web", "tier": "back"})
    make_pod("c", labels={"app": "db"})
    make_pod("d")
    make_pod("e", labels={"app": "web", "canary": "true"})


@pytest.mark.usefixtures("labelled")
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", ["a", "b", "c", "d", "e"]),
        ("app=web", ["a", "b", "e"]),
        ("app==web", ["a", "b", "e"]),
        ("app!=web", ["c", "d"]),  # a pod without the label matches !=
        ("tier in (front,back)", ["a", "b"]),
        ("tier in (front, back)", ["a", "b"]),
        ("tier notin (front)", ["b", "c", "d", "e"]),  # ... and notin
        ("canary", ["e"]),
        ("!canary", ["a", "b", "c", "d"]),
        ("app=web,tier!=back", ["a", "e"]),
        ("app=web,!tier", ["e"]),
        ("app in (web,db),tier", ["a", "b"]),
        ("app=nothing", []),
    ],
)
def test_label_selector(v1: client.CoreV1Api, ns: str, selector: str, expected: list[str]) -> None:
    assert _names(v1.list_namespaced_pod(ns, label_selector=selector)) == expected


@pytest.mark.parametrize("selector", ["app=", "app in (web", "a b", "app=web,", "=web", "app in web"])
def test_unparsable_label_selector_is_400(v1: client.CoreV1Api, ns: str, selector: str) -> None:
    if selector == "app=":  # an empty value is a valid (empty) label value
        assert v1.list_namespaced_pod(ns, label_selector=selector).items == []
        return
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, label_selector=selector)

    assert excinfo.value.status == 400
    assert _status(excinfo)["reason"] == "BadRequest"


def test_field_selector_on_name_and_namespace(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    v1.create_namespace({"metadata": {"name": "other"}})
    make_pod("one")
    make_pod("two")
    make_pod("one", namespace="other")

    assert _names(v1.list_namespaced_pod(ns, field_selector="metadata.name=one")) == ["one"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="metadata.name==two")) == ["two"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="metadata.name!=one")) == ["two"]
    everywhere = v1.list_pod_for_all_namespaces(field_selector="metadata.name=one")
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [("other", "one"), (ns, "one")]
    in_other = v1.list_pod_for_all_namespaces(field_selector="metadata.namespace=other")
    assert [(p.metadata.namespace, p.metadata.name) for p in in_other.items] == [("other", "one")]
    both = v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns},metadata.name=two")
    assert _names(both) == ["two"]


def test_field_selector_on_phase(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    for name in ("p1", "p2", "p3"):
        make_pod(name)
    v1.patch_namespaced_pod_status("p2", ns, {"status": {"phase": "Running"}})
    v1.patch_namespaced_pod_status("p3", ns, {"status": {"phase": "Failed"}})

    assert _names(v1.list_namespaced_pod(ns, field_selector="status.phase=Pending")) == ["p1"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="status.phase=Running")) == ["p2"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="status.phase!=Failed")) == ["p1", "p2"]
    not_done = "status.phase!=Failed,status.phase!=Succeeded"
    assert _names(v1.list_namespaced_pod(ns, field_selector=not_done)) == ["p1", "p2"]


def test_field_and_label_selectors_together(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("x1", labels={"k": "v"})
    make_pod("x2", labels={"k": "v"})
    make_pod("x3")

    pods = v1.list_namespaced_pod(ns, label_selector="k=v", field_selector="metadata.name!=x1")

    assert _names(pods) == ["x2"]


def test_other_pod_fields_the_server_indexes(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("on-node", nodeName="node-1", restartPolicy="Never")
    make_pod("nowhere")

    assert _names(v1.list_namespaced_pod(ns, field_selector="spec.nodeName=node-1")) == ["on-node"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="spec.nodeName=")) == ["nowhere"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="spec.restartPolicy=Never")) == ["on-node"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="spec.hostNetwork=false")) == ["nowhere", "on-node"]
    assert _names(v1.list_namespaced_pod(ns, field_selector="spec.schedulerName=default-scheduler")) == [
        "nowhere",
        "on-node",
    ]


def test_unsupported_field_selector_is_400(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, field_selector="spec.containers=x")

    assert excinfo.value.status == 400
    status = _status(excinfo)
    assert status["reason"] == "BadRequest"
    assert status["message"] == "field label not supported: spec.containers"


def test_namespace_field_selector(v1: client.CoreV1Api, ns: str) -> None:
    assert [n.metadata.name for n in v1.list_namespace(field_selector=f"metadata.name={ns}").items] == [ns]
    active = {n.metadata.name for n in v1.list_namespace(field_selector="status.phase=Active").items}
    assert ns in active
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespace(field_selector="metadata.namespace=x")
    assert excinfo.value.status == 400
    assert _status(excinfo)["message"] == "field label not supported: metadata.namespace"


def test_list_for_all_namespaces(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespace({"metadata": {"name": "aaa"}})
    make_pod("z")
    make_pod("y", namespace="aaa")
    make_pod("x", namespace="default")

    pods = v1.list_pod_for_all_namespaces()

    # In the storage's key order: namespace, then name.
    assert [(p.metadata.namespace, p.metadata.name) for p in pods.items] == [("aaa", "y"), ("default", "x"), (ns, "z")]
    assert pods.kind == "PodList"
    assert pods.api_version == "v1"
    assert [p.metadata.name for p in v1.list_namespaced_pod("aaa").items] == ["y"]


def test_list_items_have_no_kind_of_their_own(kube: Any, ns: str, make_pod: Callable[..., client.V1Pod]) -> None:
    make_pod("plain")

    status, raw = kube.raw("GET", f"/api/v1/namespaces/{ns}/pods")

    assert status == 200
    listed = json.loads(raw)
    assert listed["kind"] == "PodList"
    assert listed["apiVersion"] == "v1"
    assert [set(item) & {"kind", "apiVersion"} for item in listed["items"]] == [set()]
    assert listed["items"][0]["metadata"]["name"] == "plain"


def _walk(v1: client.CoreV1Api, ns: str, limit: int, **options: Any) -> list[client.V1PodList]:
    pages = [v1.list_namespaced_pod(ns, limit=limit, **options)]
    while pages[-1].metadata._continue:
        pages.append(v1.list_namespaced_pod(ns, limit=limit, _continue=pages[-1].metadata._continue, **options))
        assert len(pages) < 100
    return pages


def test_limit_and_continue_walk_every_page_in_order(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    names = [f"pod-{i:02d}" for i in range(7)]
    for name in reversed(names):
        make_pod(name)

    pages = _walk(v1, ns, 3)

    assert [_names(page) for page in pages] == [names[0:3], names[3:6], names[6:7]]
    assert [page.metadata.remaining_item_count for page in pages] == [4, 1, None]
    assert pages[-1].metadata._continue is None
    # Every page is read at the first page's revision.
    assert {page.metadata.resource_version for page in pages} == {pages[0].metadata.resource_version}


def test_limit_exactly_the_size_gives_no_continue(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("only-1")
    make_pod("only-2")

    page = v1.list_namespaced_pod(ns, limit=2)

    assert _names(page) == ["only-1", "only-2"]
    assert page.metadata._continue is None
    assert page.metadata.remaining_item_count is None


def test_pages_are_one_consistent_snapshot(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    for name in ("a", "b", "c", "d"):
        make_pod(name)
    first = v1.list_namespaced_pod(ns, limit=2)

    v1.delete_namespaced_pod("c", ns)
    make_pod("e")
    v1.patch_namespaced_pod("d", ns, {"metadata": {"labels": {"changed": "yes"}}})
    rest = v1.list_namespaced_pod(ns, limit=10, _continue=first.metadata._continue)

    assert _names(first) == ["a", "b"]
    assert _names(rest) == ["c", "d"]  # c still there, e not yet, d as it was
    assert rest.items[1].metadata.labels is None


def test_selector_with_limit_gives_no_remaining_count(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    for i in range(5):
        make_pod(f"s{i}", labels={"n": str(i % 2)})

    pages = _walk(v1, ns, 1, label_selector="n=0")

    assert [_names(page) for page in pages] == [["s0"], ["s2"], ["s4"]]
    assert all(page.metadata.remaining_item_count is None for page in pages)


def test_pagination_across_all_namespaces(v1: client.CoreV1Api, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespace({"metadata": {"name": "n1"}})
    v1.create_namespace({"metadata": {"name": "n2"}})
    for namespace in ("n2", "n1"):
        for name in ("b", "a"):
            make_pod(name, namespace=namespace)

    first = v1.list_pod_for_all_namespaces(limit=3)
    second = v1.list_pod_for_all_namespaces(limit=3, _continue=first.metadata._continue)

    keys = [(p.metadata.namespace, p.metadata.name) for p in first.items + second.items]
    assert keys == [("n1", "a"), ("n1", "b"), ("n2", "a"), ("n2", "b")]
    assert first.metadata.remaining_item_count == 1
    assert second.metadata._continue is None


def test_continue_after_compaction_is_410_expired(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    for name in ("a", "b", "c", "d"):
        make_pod(name)
    first = v1.list_namespaced_pod(ns, limit=2)
    make_pod("e")  # the history moves on, then etcd compacts it
    kube.api.compact()

    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, limit=2, _continue=first.metadata._continue)

    assert excinfo.value.status == 410
    status = _status(excinfo)
    assert status["reason"] == "Expired"
    assert status["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result. You can start a new "
        "list without the continue parameter, or use the continue token in this response to retrieve the "
        "remainder of the results."
    )
    # The token in the answer continues at the newest revision: the rest of the list as it is now.
    newer = status["metadata"]["continue"]
    assert newer
    rest = v1.list_namespaced_pod(ns, limit=10, _continue=newer)
    assert _names(rest) == ["c", "d", "e"]


def test_garbage_continue_token_is_400(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, limit=2, _continue="not-a-token")

    assert excinfo.value.status == 400
    assert _status(excinfo)["reason"] == "BadRequest"
    assert _status(excinfo)["message"].startswith("invalid continue token: continue key is not valid")


def test_continue_with_a_resource_version_is_400(
    v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    make_pod("a")
    make_pod("b")
    first = v1.list_namespaced_pod(ns, limit=1)

    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(
            ns, limit=1, _continue=first.metadata._continue, resource_version=first.metadata.resource_version
        )

    assert excinfo.value.status == 400
    assert _status(excinfo)["message"] == "specifying resource version is not allowed when using continue"
    # resourceVersion=0 ("any") is allowed with continue.
    page = v1.list_namespaced_pod(ns, limit=1, _continue=first.metadata._continue, resource_version="0")
    assert _names(page) == ["b"]
