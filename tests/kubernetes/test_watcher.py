"""PodWatcher against the local Kubernetes API, over real HTTP.

Each test starts its own ``LocalKubeAPI``; the watcher reaches it through ``KubeApi``, as in the
executor (a variation keeps its streams from being shut down, another hands it one malformed
event). What the server did is known from the answers
to our own create, patch and delete calls (each carries its resourceVersion), and the watcher's
events are compared with it as sequences of (type, name, resourceVersion).

Every pod carries a JWT-like token in its container args; no test may find it in the logs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kube_test_support import SECRET
from kubernetes import client, config

from hybrid_executor.kubernetes.api import KubeApi, WatchEvent, WatchStream
from hybrid_executor.kubernetes.watcher import RELISTED, PodEvent, PodWatcher
from hybrid_executor.testing.kube import LocalKubeAPI
from hybrid_executor.testing.kube.faults import FaultRule

NS = "work"
SELECTOR = "app.kubernetes.io/managed-by=hybrid-executor"
LABELS = {"app.kubernetes.io/managed-by": "hybrid-executor"}

Seen = tuple[str, str, str]  # (type, name, resourceVersion)


# --- sources: KubeApi, and two variations of it ------------------------------------------------


class Uninterruptible:
    """KubeApi with its watch streams behind a generator, which has no way to be shut down from another thread."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api

    def list_pods_page(self, namespace: str, label_selector: str, continue_token: str | None, limit: int) -> Any:
        return self.api.list_pods_page(namespace, label_selector, continue_token, limit)

    def watch_pods(
        self, namespace: str, label_selector: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        return _plain(self.api.watch_pods(namespace, label_selector, resource_version, timeout_seconds))


def _plain(stream: WatchStream) -> Iterator[WatchEvent]:
    try:
        yield from stream
    finally:
        stream.close()


# --- fixtures -----------------------------------------------------------------------------------


@dataclass
class Kube:
    api: LocalKubeAPI
    api_client: client.ApiClient
    v1: client.CoreV1Api
    names: Iterator[int]

    def source(self) -> KubeApi:
        """What the executor hands its watchers: a KubeApi on this server."""
        return KubeApi(self.v1, request_timeout=10)

    def create(self, name: str, namespace: str = NS) -> Seen:
        pod = self.v1.create_namespaced_pod(namespace, _pod(name))
        return ("ADDED", name, pod.metadata.resource_version)

    def patch(self, name: str, step: int) -> Seen:
        pod = self.v1.patch_namespaced_pod(name, NS, {"metadata": {"annotations": {"step": str(step)}}})
        return ("MODIFIED", name, pod.metadata.resource_version)

    def delete(self, name: str) -> list[Seen]:
        """Two changes: the server marks the pod (deletionTimestamp), then removes it, at the next revision."""
        gone = self.v1.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        removed = gone.metadata.resource_version
        return [("MODIFIED", name, str(int(removed) - 1)), ("DELETED", name, removed)]

    def churn(self, count: int) -> list[Seen]:
        """``count`` requests: each new pod is created, patched, then deleted; the events they make."""
        done: list[Seen] = []
        requests = 0
        while requests < count:
            name = f"churn-{next(self.names)}"
            for step in (self.create, lambda name: self.patch(name, 1), self.delete):
                if requests < count:
                    made = step(name)
                    done.extend(made if isinstance(made, list) else [made])
                    requests += 1
        return done

    def cut_watches_into(self, rule: FaultRule, timeout: float = 5.0) -> None:
        """End the open watch streams until a new watch request has met ``rule``.

        Once: a watch request the server is still setting up when the rule is added would miss
        both the rule and the closing, and stay open.
        """
        deadline = time.monotonic() + timeout
        while rule.hits == 0:
            assert time.monotonic() < deadline, "no watch request met the fault"
            self.api.close_watches()
            time.sleep(0.05)

    def list_requests(self) -> int:
        return self.api.requests()[("list", "pods")]


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": LABELS},
        "spec": {
            "containers": [
                {"name": "base", "image": "busybox:1.36", "command": ["run"], "args": ["--json-string", SECRET]}
            ]
        },
    }


@pytest.fixture
def make_kube() -> Iterator[Callable[..., Kube]]:
    started: list[Kube] = []

    def make(**settings: Any) -> Kube:
        api = LocalKubeAPI(**settings).start()
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(api.kubeconfig), client_configuration=configuration)
        configuration.retries = False  # the watcher retries, not urllib3
        api_client = client.ApiClient(configuration)
        kube = Kube(api, api_client, client.CoreV1Api(api_client), itertools.count(1))
        kube.v1.create_namespace({"metadata": {"name": NS}})
        started.append(kube)
        return kube

    yield make
    for kube in started:
        kube.api_client.close()
        kube.api.stop()


@pytest.fixture
def kube(make_kube: Callable[..., Kube]) -> Kube:
    return make_kube()


class Watched:
    """A started watcher and what it has emitted so far."""

    def __init__(self, watcher: PodWatcher, events: queue.SimpleQueue[PodEvent]) -> None:
        self.watcher = watcher
        self.events = events
        self.seen: list[PodEvent] = []

    def until(self, done: Callable[[list[PodEvent]], bool], timeout: float = 5.0) -> list[PodEvent]:
        deadline = time.monotonic() + timeout
        while not done(self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"the watcher did not get there in {timeout} s; it emitted {_summary(self.seen)}")
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.events.get(timeout=min(left, 0.05)))
        return self.seen

    def take(self, count: int, timeout: float = 5.0) -> list[Seen]:
        """The next ``count`` events (and then checks that no other one follows at once)."""
        start = len(self.seen)
        self.until(lambda seen: len(seen) >= start + count, timeout)
        self.settle()
        return _summary(self.seen[start:])

    def settle(self, quiet: float = 0.3) -> None:
        """Collect whatever else arrives within ``quiet`` seconds."""
        deadline = time.monotonic() + quiet
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.events.get(timeout=left))
            except queue.Empty:
                return


def _summary(events: list[PodEvent]) -> list[Seen]:
    return [(e.type, e.pod["metadata"]["name"], e.pod["metadata"].get("resourceVersion", "")) for e in events]


@pytest.fixture
def watch(kube: Kube) -> Iterator[Callable[..., Watched]]:
    """Start a PodWatcher on ``kube`` (short backoff by default); stopped, and checked stopped, at the end."""
    started: list[PodWatcher] = []

    def start(target: Kube | None = None, source: Any = None, **options: Any) -> Watched:
        target = target or kube
        options = {"watch_timeout_seconds": 10, "backoff_initial": 0.02, "backoff_max": 0.2, **options}
        events: queue.SimpleQueue[PodEvent] = queue.SimpleQueue()
        watcher = PodWatcher(source or target.source(), NS, SELECTOR, events, **options)
        watcher.start()
        started.append(watcher)
        assert watcher.wait_synced(5), "the first list did not complete"
        return Watched(watcher, events)

    yield start
    for watcher in started:
        watcher.stop(timeout=5)
        assert not watcher.alive


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Nothing the project logs carries the token, messages and tracebacks alike.

    (Only the project's loggers: the official client itself logs whole response bodies at DEBUG
    when it preloads them, as this file's own create calls do.)
    """
    caplog.set_level(logging.DEBUG)
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    ours = [record for record in records if record.name.startswith("hybrid_executor")]
    assert ours, "the watcher logged nothing: the check below would prove nothing"
    formatter = logging.Formatter("%(message)s")
    for record in ours:
        assert SECRET not in formatter.format(record)


# --- the tests ----------------------------------------------------------------------------------


def test_create_modify_delete_arrive_in_order(kube: Kube, watch: Callable[..., Watched]) -> None:
    watched = watch()

    done = [kube.create("a"), kube.patch("a", 1), kube.create("b"), *kube.delete("a"), kube.patch("b", 1)]
    done.extend(kube.delete("b"))

    assert watched.take(len(done)) == done
    assert watched.watcher.resource_version == done[-1][2]


def test_pods_already_there_come_out_as_relisted(kube: Kube, watch: Callable[..., Watched]) -> None:
    before = {kube.create(name)[1:] for name in ("x", "y", "z")}
    kube.v1.create_namespaced_pod(NS, {**_pod("other"), "metadata": {"name": "other"}})  # not selected

    watched = watch()

    assert watched.watcher.synced
    relisted = watched.take(3)
    assert {seen[0] for seen in relisted} == {RELISTED}
    assert {seen[1:] for seen in relisted} == before
    assert all(event.pod["spec"]["containers"] for event in watched.seen)  # whole pods, as listed


def test_the_list_follows_continue_when_pods_outnumber_a_page(kube: Kube, watch: Callable[..., Watched]) -> None:
    names = {f"pod-{index}" for index in range(7)}
    for name in names:
        kube.create(name)
    lists_before = kube.list_requests()

    watched = watch(page_size=3)

    relisted = watched.take(7)
    assert sorted(seen[1] for seen in relisted) == sorted(names)
    assert {seen[0] for seen in relisted} == {RELISTED}
    assert kube.list_requests() - lists_before == 3  # 3 + 3 + 1
    # The watch starts from the list's resourceVersion: a later pod arrives, nothing else.
    late = kube.create("late")
    assert watched.take(1) == [late]


def test_a_watch_closed_by_the_server_after_n_events_loses_and_repeats_nothing(
    kube: Kube, watch: Callable[..., Watched]
) -> None:
    watched = watch()
    cut = kube.api.faults.add("watch", "pods", watch_close_after_events=3)
    kube.cut_watches_into(cut)

    done = kube.churn(20)

    assert watched.take(len(done)) == done
    assert cut.hits >= 7  # every 3 events the server closed the stream and the watcher came back
    assert watched.watcher.alive


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"reset": True, "times": 3}, id="connection-reset"),
        pytest.param({"status": 500, "times": 3}, id="500"),
        pytest.param({"status": 503, "retry_after": 1, "times": 1}, id="503-retry-after"),
        pytest.param({"reset": True, "watch_close_after_events": 2, "times": 3}, id="reset-mid-stream"),
    ],
)
def test_a_failing_watch_is_retried_from_the_last_resource_version(
    kube: Kube, watch: Callable[..., Watched], fault: dict[str, Any]
) -> None:
    watched = watch()
    rule = kube.api.faults.add("watch", "pods", **fault)
    kube.cut_watches_into(rule)

    done = kube.churn(9)

    assert watched.take(len(done)) == done
    assert rule.hits == fault["times"]
    assert kube.list_requests() == 1  # resumed every time, never relisted


@pytest.mark.parametrize("lose_history", ["compact", "short-history"])
def test_after_410_the_watcher_relists_and_reports_what_went_meanwhile(
    make_kube: Callable[..., Kube], watch: Callable[..., Watched], lose_history: str
) -> None:
    kube = make_kube(history=4) if lose_history == "short-history" else make_kube()
    for name in ("keep", "gone", "reborn", "changed"):
        kube.create(name)
    watched = watch(kube)
    first = {event.pod["metadata"]["name"]: event.pod for event in watched.until(lambda seen: len(seen) == 4)}
    assert kube.list_requests() == 1

    # The watch goes down and stays down while pods change.
    down = kube.api.faults.add("watch", "pods", status=500)
    kube.cut_watches_into(down)
    kube.delete("gone")
    kube.delete("reborn")
    kube.create("reborn")  # same name, new uid: a new pod
    kube.patch("changed", 1)
    kube.create("fresh")
    kube.churn(6)  # more than a history of 4 holds
    if lose_history == "compact":
        kube.api.compact()
    kube.api.faults.remove(down)

    after = watched.take(6)  # 2 DELETED + RELISTED keep, reborn, changed, fresh (churn-* are gone)

    assert kube.list_requests() == 2
    deleted = [event for event in watched.seen[4:] if event.type == "DELETED"]
    assert sorted(event.pod["metadata"]["name"] for event in deleted) == ["gone", "reborn"]
    for event in deleted:  # the pod as it was last known: same uid, and no spec (nor JWT) kept
        assert event.pod["metadata"]["uid"] == first[event.pod["metadata"]["name"]]["metadata"]["uid"]
        assert "spec" not in event.pod
    relisted = {event.pod["metadata"]["name"]: event.pod for event in watched.seen[4:] if event.type == RELISTED}
    assert sorted(relisted) == ["changed", "fresh", "keep", "reborn"]
    assert relisted["reborn"]["metadata"]["uid"] != first["reborn"]["metadata"]["uid"]
    assert relisted["changed"]["metadata"]["annotations"] == {"step": "1"}
    names = [seen[:2] for seen in after]
    assert names.index(("DELETED", "reborn")) < names.index((RELISTED, "reborn"))
    # And the watch goes on from the new list.
    done = [kube.patch("keep", 1), *kube.delete("fresh")]
    assert watched.take(len(done)) == done


def test_a_watch_resumes_from_a_bookmark(make_kube: Callable[..., Kube], watch: Callable[..., Watched]) -> None:
    kube = make_kube(bookmark_interval=0.1)
    kube.v1.create_namespace({"metadata": {"name": "elsewhere"}})
    watched = watch(kube)
    kube.create("mine")
    watched.take(1)
    for index in range(3):  # changes the watch does not select, which move the store's revision on
        kube.create(f"theirs-{index}", namespace="elsewhere")
    revision = str(kube.api.resource_version)

    deadline = time.monotonic() + 3
    while watched.watcher.resource_version != revision and time.monotonic() < deadline:
        time.sleep(0.02)
    assert watched.watcher.resource_version == revision  # from a BOOKMARK: no pod event carried it

    # Every revision before the bookmark's is now gone: resuming from the bookmark needs no relist.
    kube.api.compact()
    kube.api.close_watches()
    later = kube.create("next")
    assert watched.take(1) == [later]
    assert kube.list_requests() == 1


def test_backoff_grows_while_the_watch_fails_and_starts_over_once_it_works(
    kube: Kube, watch: Callable[..., Watched]
) -> None:
    watched = watch(backoff_initial=0.01, backoff_max=0.2)
    failing = kube.api.faults.add("watch", "pods", status=500)
    kube.cut_watches_into(failing)

    time.sleep(1.0)

    assert 4 <= failing.hits <= 60  # retried, with waits, not in a tight loop
    assert watched.watcher.consecutive_failures >= failing.hits - 1  # the last may still be under way
    kube.api.faults.remove(failing)
    back = kube.create("back")
    assert watched.take(1) == [back]
    assert watched.watcher.consecutive_failures == 0
    assert kube.list_requests() == 1


class Sabotaged(KubeApi):
    """Hands the watcher one malformed event (no metadata, a secret in it) on its first watch."""

    def __init__(self, v1: client.CoreV1Api) -> None:
        super().__init__(v1, request_timeout=10)
        self.watches = 0

    def watch_pods(  # an iterator, not a WatchStream, the first time
        self, namespace: str, label_selector: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        self.watches += 1
        if self.watches == 1:
            return iter([WatchEvent("MODIFIED", {"spec": {"containers": [{"args": [SECRET]}]}})])
        return super().watch_pods(namespace, label_selector, resource_version, timeout_seconds)


def test_an_unexpected_error_is_logged_and_the_watcher_relists(
    kube: Kube, watch: Callable[..., Watched], caplog: pytest.LogCaptureFixture
) -> None:
    kube.create("here")
    watched = watch(source=Sabotaged(kube.v1))

    assert [seen[:2] for seen in watched.take(2)] == [(RELISTED, "here"), (RELISTED, "here")]
    after = kube.create("after")
    assert watched.take(1) == [after]
    assert watched.watcher.alive
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "relisting" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("interruptible", "options", "in_backoff"),
    [
        pytest.param(True, {"watch_timeout_seconds": 60}, False, id="shut-the-stream-down"),
        pytest.param(False, {"watch_timeout_seconds": 1}, False, id="short-server-timeout"),
        pytest.param(True, {"backoff_initial": 20, "backoff_max": 20}, True, id="in-backoff"),
    ],
)
def test_stop_is_prompt(
    kube: Kube,
    watch: Callable[..., Watched],
    interruptible: bool,
    options: dict[str, Any],
    in_backoff: bool,
) -> None:
    watched = watch(source=kube.source() if interruptible else Uninterruptible(kube.source()), **options)
    if in_backoff:  # make the watch fail: the next attempt is up to 20 s away
        kube.api.faults.add("watch", "pods", status=500)
        deadline = time.monotonic() + 5
        while watched.watcher.consecutive_failures == 0 and time.monotonic() < deadline:
            kube.api.close_watches()
            time.sleep(0.05)
        assert watched.watcher.consecutive_failures >= 1
    time.sleep(0.3)  # blocked in the watch read (or in its backoff)

    began = time.monotonic()
    watched.watcher.stop(timeout=5)

    assert time.monotonic() - began < 2.0
    assert not watched.watcher.alive
    assert not [t for t in threading.enumerate() if t.name == f"pod-watcher-{NS}"]


def test_the_thread_is_a_daemon_and_synced_waits_for_the_first_list(kube: Kube) -> None:
    slow = kube.api.faults.add("list", "pods", latency=0.3, times=1)
    events: queue.SimpleQueue[PodEvent] = queue.SimpleQueue()
    watcher = PodWatcher(kube.source(), NS, SELECTOR, events, watch_timeout_seconds=10)
    assert not watcher.synced
    watcher.start()
    try:
        assert not watcher.synced
        assert watcher.wait_synced(5)
        assert slow.hits == 1
        assert [t.daemon for t in threading.enumerate() if t.name == f"pod-watcher-{NS}"] == [True]
    finally:
        watcher.stop()
    assert not watcher.alive
