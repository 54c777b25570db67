"""Watch: events from a resourceVersion, the initial ADDED events, filtered watches, bookmarks,
timeouts and the 410 Expired answer for a resourceVersion older than the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException
from kubernetes.watch.watch import iter_resp_lines


def _take(events: Iterator[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    """The next ``count`` events of a stream as (type, pod name)."""
    taken: list[tuple[str, str]] = []
    for event in events:
        taken.append((event["type"], event["raw_object"]["metadata"].get("name", "")))
        if len(taken) == count:
            break
    return taken


@dataclass
class Pods:
    """The pods of a namespace of the test's own: made, changed and watched through the official client."""

    v1: client.CoreV1Api
    ns: str
    make: Callable[..., client.V1Pod]  # the make_pod fixture
    watch: Callable[..., Iterator[dict[str, Any]]]  # Watch().stream over the namespace's pods

    def revision(self) -> str:
        """The resourceVersion of a list of the namespace's pods, now."""
        resource_version: str = self.v1.list_namespaced_pod(self.ns).metadata.resource_version
        return resource_version

    def patch(self, name: str, body: dict[str, Any]) -> client.V1Pod:
        return self.v1.patch_namespaced_pod(name, self.ns, body)

    def patch_status(self, name: str, body: dict[str, Any]) -> client.V1Pod:
        return self.v1.patch_namespaced_pod_status(name, self.ns, body)

    def delete(self, name: str, **options: Any) -> client.V1Pod:
        return self.v1.delete_namespaced_pod(name, self.ns, **options)


@pytest.fixture
def pods(v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]) -> Iterator[Pods]:
    """``pods.watch`` opens ``Watch().stream`` over the pods of ``ns``; every stream is closed when the test ends."""
    opened: list[tuple[watch.Watch, Any]] = []

    def open_stream(**options: Any) -> Iterator[dict[str, Any]]:
        options.setdefault("timeout_seconds", 10)
        watcher = watch.Watch()
        stream = watcher.stream(v1.list_namespaced_pod, ns, **options)
        opened.append((watcher, stream))
        return stream

    yield Pods(v1, ns, make_pod, open_stream)
    for watcher, stream in opened:
        watcher.stop()
        stream.close()


def _types_and_names(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events]


@contextmanager
def _watching(list_call: Callable[..., Any], *args: Any, **options: Any) -> Iterator[Iterator[dict[str, Any]]]:
    """``Watch().stream(list_call, ...)``, stopped and closed when the block ends."""
    watcher = watch.Watch()
    events = watcher.stream(list_call, *args, **options)
    try:
        yield events
    finally:
        watcher.stop()
        events.close()


def _raw_lines(response: Any) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in iter_resp_lines(response) if line]
    finally:
        response.release_conn()


def test_from_a_list_resource_version_come_exactly_the_later_events_in_order(pods: Pods) -> None:
    pods.make("before")
    listed = pods.v1.list_namespaced_pod(pods.ns)
    pods.make("a")  # happens before the watch opens: replayed from the history

    events = pods.watch(resource_version=listed.metadata.resource_version)

    assert _take(events, 1) == [("ADDED", "a")]
    pods.patch("a", {"metadata": {"labels": {"step": "2"}}})
    pods.delete("a")
    pods.make("marker")
    assert _take(events, 4) == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "a"), ("ADDED", "marker")]


def test_watch_events_carry_the_whole_object(pods: Pods) -> None:
    start = pods.revision()
    created = pods.make("full", labels={"k": "v"})
    patched = pods.patch("full", {"metadata": {"labels": {"k": "w"}}})
    deleted = pods.delete("full")

    events = pods.watch(resource_version=start)
    added, modified, _marked, gone = next(events), next(events), next(events), next(events)

    assert isinstance(added["object"], client.V1Pod)
    assert added["raw_object"]["kind"] == "Pod"
    assert added["raw_object"]["apiVersion"] == "v1"
    assert added["object"].metadata.uid == created.metadata.uid
    assert added["object"].metadata.resource_version == created.metadata.resource_version
    assert modified["object"].metadata.labels == {"k": "w"}
    assert modified["object"].metadata.resource_version == patched.metadata.resource_version
    assert gone["object"].metadata.labels == {"k": "w"}
    assert gone["object"].metadata.resource_version == deleted.metadata.resource_version


def test_without_resource_version_existing_objects_come_first_as_added(pods: Pods) -> None:
    pods.make("b")
    pods.make("a")
    pods.patch("a", {"metadata": {"labels": {"x": "y"}}})
    pods.make("gone")
    pods.delete("gone")

    events = pods.watch()
    initial = _take(events, 2)

    assert sorted(initial) == [("ADDED", "a"), ("ADDED", "b")]  # the current state, no history
    pods.make("c")
    assert _take(events, 1) == [("ADDED", "c")]


def test_resource_version_zero_also_starts_with_the_current_objects(pods: Pods) -> None:
    pods.make("one")
    pods.make("two")

    events = pods.watch(resource_version="0")

    assert sorted(_take(events, 2)) == [("ADDED", "one"), ("ADDED", "two")]
    pods.make("three")
    assert _take(events, 1) == [("ADDED", "three")]


def test_label_selector_watch_sees_objects_enter_and_leave(pods: Pods) -> None:
    start = pods.revision()
    pods.make("in", labels={"team": "blue"})
    pods.make("out", labels={"team": "red"})
    pods.patch("out", {"metadata": {"labels": {"team": "blue"}}})  # starts matching
    pods.patch("in", {"metadata": {"labels": {"team": "blue", "extra": "1"}}})  # still matches
    left = pods.patch("in", {"metadata": {"labels": {"team": "red"}}})  # stops matching
    pods.patch("in", {"metadata": {"labels": {"team": "green"}}})  # never seen
    pods.make("marker", labels={"team": "blue"})

    events = pods.watch(resource_version=start, label_selector="team=blue")
    seen = [next(events) for _ in range(5)]

    assert _types_and_names(seen) == [
        ("ADDED", "in"),
        ("ADDED", "out"),
        ("MODIFIED", "in"),
        ("DELETED", "in"),
        ("ADDED", "marker"),
    ]
    # The object leaving the selection is its last matching state, at the revision of the change.
    gone = seen[3]["raw_object"]
    assert gone["metadata"]["labels"] == {"team": "blue", "extra": "1"}
    assert gone["metadata"]["resourceVersion"] == left.metadata.resource_version


def test_field_selector_watch_follows_the_phase(pods: Pods) -> None:
    start = pods.revision()
    pods.make("worker")
    pods.patch_status("worker", {"status": {"phase": "Running"}})
    pods.patch_status("worker", {"status": {"message": "busy"}})
    pods.patch_status("worker", {"status": {"phase": "Succeeded"}})
    pods.make("marker")
    pods.patch_status("marker", {"status": {"phase": "Running"}})

    events = pods.watch(resource_version=start, field_selector="status.phase=Running")
    seen = [next(events) for _ in range(4)]

    assert _types_and_names(seen) == [
        ("ADDED", "worker"),
        ("MODIFIED", "worker"),
        ("DELETED", "worker"),
        ("ADDED", "marker"),
    ]
    assert seen[2]["raw_object"]["status"]["phase"] == "Running"


def test_field_selector_watch_on_the_name(pods: Pods) -> None:
    start = pods.revision()
    pods.make("other")
    pods.make("mine")
    pods.delete("other")
    pods.delete("mine")

    events = pods.watch(resource_version=start, field_selector="metadata.name=mine")

    assert _take(events, 3) == [("ADDED", "mine"), ("MODIFIED", "mine"), ("DELETED", "mine")]


def test_watch_across_all_namespaces(v1: client.CoreV1Api, make_pod: Callable[..., client.V1Pod]) -> None:
    v1.create_namespace({"metadata": {"name": "w1"}})
    v1.create_namespace({"metadata": {"name": "w2"}})
    start = v1.list_pod_for_all_namespaces().metadata.resource_version
    make_pod("p", namespace="w2")
    make_pod("p", namespace="w1")

    with _watching(v1.list_pod_for_all_namespaces, resource_version=start, timeout_seconds=10) as events:
        seen = [next(events) for _ in range(2)]

    assert [(e["type"], e["object"].metadata.namespace) for e in seen] == [("ADDED", "w2"), ("ADDED", "w1")]


def test_namespace_watch_sees_termination_then_deletion(v1: client.CoreV1Api) -> None:
    start = v1.list_namespace().metadata.resource_version
    v1.create_namespace({"metadata": {"name": "brief"}})
    v1.delete_namespace("brief")

    with _watching(v1.list_namespace, resource_version=start, timeout_seconds=10) as events:
        seen = [next(events) for _ in range(3)]

    assert [(e["type"], e["object"].status.phase) for e in seen] == [
        ("ADDED", "Active"),
        ("MODIFIED", "Terminating"),
        ("DELETED", "Terminating"),
    ]


def test_bookmarks_carry_the_newest_resource_version(make_kube: Callable[..., Any]) -> None:
    kube = make_kube(bookmark_interval=0.1)
    v1 = kube.v1
    v1.create_namespace({"metadata": {"name": "quiet"}})
    start = v1.list_namespaced_pod("quiet").metadata.resource_version
    v1.create_namespace({"metadata": {"name": "elsewhere"}})  # a change the pod watch does not see

    response = v1.list_namespaced_pod(
        "quiet",
        watch=True,
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    events = _raw_lines(response)

    assert events, "a quiet watch with bookmarks allowed sends bookmarks"
    assert {event["type"] for event in events} == {"BOOKMARK"}
    bookmark = events[0]["object"]
    assert bookmark["kind"] == "Pod"
    assert bookmark["apiVersion"] == "v1"
    assert bookmark["metadata"]["resourceVersion"] == str(kube.api.resource_version)


def test_bookmarks_through_the_client(make_kube: Callable[..., Any]) -> None:
    kube = make_kube(bookmark_interval=0.1)
    v1 = kube.v1
    v1.create_namespace({"metadata": {"name": "quiet"}})
    start = v1.list_namespaced_pod("quiet").metadata.resource_version
    v1.create_namespaced_pod(
        "quiet", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    )

    watcher = watch.Watch()
    events = watcher.stream(
        v1.list_namespaced_pod, "quiet", resource_version=start, allow_watch_bookmarks=True, timeout_seconds=10
    )
    try:
        first, second = next(events), next(events)
    finally:
        watcher.stop()
        events.close()

    assert first["type"] == "ADDED"
    assert second["type"] == "BOOKMARK"
    assert watcher.resource_version == str(kube.api.resource_version)


def test_timeout_seconds_ends_the_stream(make_kube: Callable[..., Any], pod_body: Callable[..., Any]) -> None:
    kube = make_kube(bookmark_interval=0.1)
    kube.v1.create_namespace({"metadata": {"name": "quiet"}})
    kube.v1.create_namespaced_pod("quiet", pod_body("existing"))
    began = time.monotonic()

    response = kube.v1.list_namespaced_pod("quiet", watch=True, timeout_seconds=1, _preload_content=False)
    events = _raw_lines(response)

    elapsed = time.monotonic() - began
    # ... and without allowWatchBookmarks there are no bookmarks, however quiet the watch.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "existing")]
    assert 0.9 <= elapsed < 5


def test_client_stream_with_timeout_ends_by_itself(pods: Pods) -> None:
    pods.make("only")

    events = list(pods.watch(timeout_seconds=1))

    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "only")]


def _history_gone(make_kube: Callable[..., Any]) -> tuple[Any, str, int]:
    """A server whose history (3 changes) has moved past a pod list's resourceVersion.

    Returns the server, the stale resourceVersion and the newest revision the history no longer holds.
    """
    kube = make_kube(history=3)
    v1 = kube.v1
    v1.create_namespace({"metadata": {"name": "busy"}})
    stale = v1.list_namespaced_pod("busy").metadata.resource_version
    for i in range(5):
        v1.create_namespaced_pod(
            "busy", {"metadata": {"name": f"p{i}"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        )
    newest_forgotten = kube.api.resource_version - 3
    return kube, stale, newest_forgotten


def test_too_old_resource_version_is_200_then_one_expired_error_event(make_kube: Callable[..., Any]) -> None:
    kube, stale, forgotten = _history_gone(make_kube)

    response = kube.v1.list_namespaced_pod(
        "busy", watch=True, resource_version=stale, timeout_seconds=5, _preload_content=False
    )

    assert response.status == 200
    began = time.monotonic()
    try:
        raw = response.read()
    finally:
        response.release_conn()
    assert time.monotonic() - began < 1, "the stream ends right after the error"
    line, rest = raw.split(b"\n", 1)
    assert rest == b"", "one line, then the end of the stream"
    assert json.loads(line) == {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {stale} ({forgotten})",
            "reason": "Expired",
            "code": 410,
        },
    }


def test_history_window_boundary(make_kube: Callable[..., Any]) -> None:
    kube, _, forgotten = _history_gone(make_kube)

    # From the newest forgotten revision every later change is still held: the watch works.
    with _watching(kube.v1.list_namespaced_pod, "busy", resource_version=str(forgotten), timeout_seconds=5) as events:
        assert [next(events)["object"].metadata.name for _ in range(3)] == ["p2", "p3", "p4"]
    # One revision earlier is gone.
    response = kube.v1.list_namespaced_pod(
        "busy", watch=True, resource_version=str(forgotten - 1), timeout_seconds=5, _preload_content=False
    )
    [event] = _raw_lines(response)
    assert event["object"]["message"] == f"too old resource version: {forgotten - 1} ({forgotten})"


def test_watch_after_compaction_is_expired(
    kube: Any, v1: client.CoreV1Api, ns: str, make_pod: Callable[..., client.V1Pod]
) -> None:
    start = v1.list_namespaced_pod(ns).metadata.resource_version
    make_pod("a")
    compacted = kube.api.compact()

    response = v1.list_namespaced_pod(ns, watch=True, resource_version=start, timeout_seconds=5, _preload_content=False)

    [event] = _raw_lines(response)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["message"] == f"too old resource version: {start} ({compacted})"
    # From the compaction's own revision on, watching works again.
    with _watching(v1.list_namespaced_pod, ns, resource_version=str(compacted), timeout_seconds=5) as events:
        make_pod("b")
        assert next(events)["object"].metadata.name == "b"


def test_client_stream_raises_410_when_given_a_timeout(make_kube: Callable[..., Any]) -> None:
    kube, stale, forgotten = _history_gone(make_kube)

    watcher = watch.Watch()
    with pytest.raises(ApiException) as excinfo:
        list(watcher.stream(kube.v1.list_namespaced_pod, "busy", resource_version=stale, timeout_seconds=5))

    assert excinfo.value.status == 410
    assert excinfo.value.reason == f"Expired: too old resource version: {stale} ({forgotten})"


def test_watch_with_an_unsupported_field_is_400_at_once(v1: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        v1.list_namespaced_pod(ns, watch=True, field_selector="spec.image=x", timeout_seconds=5, _preload_content=False)

    assert excinfo.value.status == 400
    assert json.loads(excinfo.value.body)["message"] == "field label not supported: spec.image"


def test_an_immediate_pod_delete_marks_the_pod_before_removing_it(pods: Pods) -> None:
    # The generic store writes deletionTimestamp and deletionGracePeriodSeconds 0 (the pod strategy
    # makes any delete graceful), then removes the object: a watch sees the pod marked, then gone,
    # and the DELETED object carries the mark. Only a pod that leaves a selector, not deleted, comes
    # without one: what tells a client (the stock KubernetesExecutor) that another relabelled it.
    start = pods.revision()
    pods.make("unscheduled")
    pods.delete("unscheduled")
    pods.make("forced", nodeName="node-1")
    pods.delete("forced", grace_period_seconds=0)

    events = pods.watch(resource_version=start)
    seen = [next(events) for _ in range(6)]

    assert _types_and_names(seen) == [
        ("ADDED", "unscheduled"),
        ("MODIFIED", "unscheduled"),
        ("DELETED", "unscheduled"),
        ("ADDED", "forced"),
        ("MODIFIED", "forced"),
        ("DELETED", "forced"),
    ]
    for marked in (seen[1], seen[2], seen[4], seen[5]):
        assert marked["raw_object"]["metadata"]["deletionTimestamp"]
        assert marked["raw_object"]["metadata"]["deletionGracePeriodSeconds"] == 0
