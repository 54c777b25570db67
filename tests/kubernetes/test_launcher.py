"""PodLauncher against the local Kubernetes API over HTTP: retries, Retry-After, rate limit, cancellation.

What reached the server is read from the server itself (``requests()``, fault rules' ``hits``,
``pods()``), not from the launcher. Waits are made short (small backoff, Retry-After 1 s, budgets
under a second) so the whole file runs in a few seconds; the assertions are on behaviour, with
loose lower bounds where time is the behaviour.

Every pod carries a JWT-like token in its args; no log line or result may show it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from kube_test_support import NS, SECRET
from kubernetes import client
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from hybrid_executor.kubernetes.api import ApiErrorKind, KubeApi, KubeApiError
from hybrid_executor.kubernetes.launcher import (
    LaunchRequest,
    LaunchResult,
    PodLauncher,
    RateLimiter,
    wait_retry_after,
)
from hybrid_executor.testing.kube import LocalKubeAPI


class Key(NamedTuple):
    """The shape of Airflow's TaskInstanceKey (importing Airflow here would configure it)."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    map_index: int = -1


@pytest.fixture
def kube() -> Iterator[LocalKubeAPI]:
    with LocalKubeAPI(fault_seed=7) as started:
        yield started


@pytest.fixture
def make_launcher(api: KubeApi) -> Iterator[Callable[..., PodLauncher]]:
    """A started launcher; defaults: 4 workers, no rate limit, 5 s budget, backoff <= 50 ms."""
    started: list[PodLauncher] = []

    def make(**options: Any) -> PodLauncher:
        settings: dict[str, Any] = {
            "concurrency": 4,
            "qps": 0,
            "burst": 1,
            "retry_timeout": 5.0,
            "backoff_multiplier": 0.01,
            "backoff_max": 0.05,
            **options,
        }
        launcher = PodLauncher(api, **settings)
        launcher.start()
        started.append(launcher)
        return launcher

    yield make
    for launcher in started:
        launcher.stop(timeout=5)


def key(number: int) -> Key:
    return Key("dag", f"task_{number}", "manual__2026-01-01")


def name(number: int) -> str:
    """The pod name of request ``number``: a launch is known by its pod's name."""
    return f"dag-task-{number}-try-1"


def request(number: int, *, container: str = "base") -> LaunchRequest:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name(number), namespace=NS),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name=container,
                    image="busybox:1.36",
                    command=["python", "-m", "airflow.sdk.execution_time.execute_workload"],
                    args=["--json-string", f'{{"token": "{SECRET}"}}'],
                )
            ],
        ),
    )
    return LaunchRequest(key(number), pod)


def collect(launcher: PodLauncher, count: int, timeout: float = 20) -> list[LaunchResult]:
    results: list[LaunchResult] = []
    deadline = time.monotonic() + timeout
    while len(results) < count:
        assert time.monotonic() < deadline, f"{len(results)} of {count} results after {timeout}s: {results}"
        results.extend(launcher.results())
        time.sleep(0.005)
    return results


def creates(kube: LocalKubeAPI) -> int:
    return kube.requests()[("create", "pods")]


def pod_names(kube: LocalKubeAPI) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.pods(NS))


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.005)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG, logger="hybrid_executor")
    yield
    assert SECRET not in caplog.text


# --- RateLimiter, on a clock of its own --------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def test_the_bucket_gives_a_burst_then_one_turn_per_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(qps=10, burst=3, clock=clock)

    turns = [limiter.reserve() - 100.0 for _ in range(6)]

    assert turns == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    clock.now += 10  # idle: the bucket fills up to the burst again, not beyond
    assert [limiter.reserve() - clock.now for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_a_pause_holds_every_turn_and_ends_without_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(qps=10, burst=5, clock=clock)

    limiter.pause_until(101.0)
    limiter.pause_until(100.5)  # a shorter pause does not shorten it

    assert limiter.paused_until == 101.0
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([101.0, 101.1, 101.2])


def test_a_turn_taken_before_a_pause_is_traded_for_one_after_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(qps=1, burst=1, clock=clock)
    limiter.reserve()  # the next turn is at 101

    def wait(seconds: float) -> bool:
        if clock.now < 100.5:  # while this caller waits for its turn, a 429 pauses everyone until 103
            limiter.pause_until(103.0)
        clock.now += seconds
        return False

    assert limiter.acquire(wait) is True
    assert clock.now == pytest.approx(103.0)


def test_no_rate_limit_still_honours_a_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(qps=0, burst=1, clock=clock)

    assert [limiter.reserve() for _ in range(3)] == [100.0] * 3
    limiter.pause_until(102.0)
    assert limiter.reserve() == 102.0


def test_an_interrupted_wait_gives_up_the_turn() -> None:
    limiter = RateLimiter(qps=1, burst=1, clock=FakeClock())
    limiter.reserve()

    assert limiter.acquire(lambda seconds: True) is False


# --- wait_retry_after --------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "expected"), [(None, 0.1), (2.0, 2.0), (0.01, 0.1)])
def test_the_wait_is_the_larger_of_the_backoff_and_retry_after(retry_after: float | None, expected: float) -> None:
    waits: list[float] = []
    retrying = Retrying(
        wait=wait_retry_after(wait_fixed(0.1)),
        stop=stop_after_attempt(2),
        retry=retry_if_exception_type(KubeApiError),
        sleep=waits.append,
        reraise=True,
    )

    with pytest.raises(KubeApiError):
        retrying(lambda: (_ for _ in ()).throw(KubeApiError(503, "x", "y", retry_after, ApiErrorKind.RETRYABLE)))

    assert waits == [expected]


# --- launching ---------------------------------------------------------------------------------


def test_a_pod_is_created(kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]) -> None:
    launcher = make_launcher()

    launcher.submit(request(1))
    [result] = collect(launcher, 1)

    [pod] = kube.pods(NS)
    assert result == LaunchResult(key(1), True, "dag-task-1-try-1", NS, None, 1, False, uid=pod["metadata"]["uid"])
    assert pod_names(kube) == ["dag-task-1-try-1"]
    assert launcher.pending() == 0


def test_503_three_times_then_created(kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]) -> None:
    rule = kube.faults.add("create", "pods", status=503, times=3)
    launcher = make_launcher()

    launcher.submit(request(1))
    [result] = collect(launcher, 1)

    assert result.ok
    assert result.attempts == 4
    assert rule.hits == 3
    assert creates(kube) == 4
    assert pod_names(kube) == ["dag-task-1-try-1"]


def test_a_429_pauses_every_worker_until_its_retry_after(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    rule = kube.faults.add("create", "pods", status=429, retry_after=1, times=1)
    launcher = make_launcher(concurrency=4, qps=100, burst=10)

    for number in range(30):
        launcher.submit(request(number))
    wait_until(lambda: rule.hits == 1)
    throttled = time.monotonic()
    time.sleep(0.15)  # requests already on their way when the 429 came back land now
    during_pause = creates(kube)
    time.sleep(0.65)
    assert creates(kube) == during_pause  # for 0.15..0.8 s after the 429, no create reached the server
    results = collect(launcher, 30)

    assert time.monotonic() - throttled >= 0.95
    assert all(r.ok for r in results)
    assert creates(kube) == 31
    assert len(pod_names(kube)) == 30


def test_a_full_quota_is_retried_until_it_frees(
    kube: LocalKubeAPI, api: KubeApi, make_launcher: Callable[..., PodLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    api.core.create_namespaced_resource_quota(NS, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    api.core.create_namespaced_pod(NS, {"metadata": {"name": "running"}, "spec": request(0).pod.spec})
    launcher = make_launcher()

    launcher.submit(request(1))
    wait_until(lambda: creates(kube) >= 4)  # the first and three retries: 403 exceeded quota
    assert launcher.results() == []
    api.delete_pod(NS, "running")
    [result] = collect(launcher, 1)

    assert result.ok
    assert result.attempts >= 4
    assert pod_names(kube) == ["dag-task-1-try-1"]
    assert "exceeded quota: one-pod" in caplog.text


def test_422_fails_at_once_with_the_apis_message(kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]) -> None:
    launcher = make_launcher()

    launcher.submit(request(1, container="Base"))
    [result] = collect(launcher, 1)

    assert not result.ok
    assert not result.cancelled
    assert result.attempts == 1
    assert result.error is not None
    assert result.error.startswith('Pod "dag-task-1-try-1" is invalid: spec.containers[0].name: Invalid value: "Base"')
    assert result.error.endswith("(HTTP 422 Invalid)")
    assert creates(kube) == 1
    assert pod_names(kube) == []


def test_a_connection_reset_is_retried(kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]) -> None:
    rule = kube.faults.add("create", "pods", reset=True, times=2)
    launcher = make_launcher()

    launcher.submit(request(1))
    [result] = collect(launcher, 1)

    assert result.ok
    assert result.attempts == 3
    assert rule.hits == 2
    assert pod_names(kube) == ["dag-task-1-try-1"]


def test_an_exhausted_retry_budget_fails_with_the_last_error(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    kube.faults.add("create", "pods", status=500, message="etcdserver: request timed out", times=2)
    kube.faults.add("create", "pods", status=503, message="etcdserver: leader changed")
    launcher = make_launcher(retry_timeout=0.4)

    started = time.monotonic()
    launcher.submit(request(1))
    [result] = collect(launcher, 1)

    assert 0.4 <= time.monotonic() - started < 3
    assert not result.ok
    assert not result.cancelled
    assert result.attempts >= 3
    assert result.error is not None
    assert result.error.startswith(f"gave up creating the pod after {result.attempts} attempts in ")
    assert result.error.endswith("last error: etcdserver: leader changed (HTTP 503 ServiceUnavailable)")
    assert pod_names(kube) == []


POD_SECURITY_REFUSAL = (
    'pods "dag-task-1-try-1" is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)'
)


def test_a_refusal_that_waiting_cannot_clear_fails_at_once_with_the_apis_message(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    # Every admission refusal is a 403; PodSecurity's (the real server's words) can never pass.
    kube.faults.add("create", "pods", status=403, message=POD_SECURITY_REFUSAL, times=1)
    launcher = make_launcher(retry_timeout=60)

    launcher.submit(request(1))
    [result] = collect(launcher, 1, timeout=5)

    assert not result.ok
    assert result.attempts == 1
    assert not result.gave_up
    assert result.error == f"{POD_SECURITY_REFUSAL} (HTTP 403 Forbidden)"


def test_an_rbac_refusal_is_retried_and_said_once_with_the_identity_verb_and_namespace(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    rule = kube.authorization.deny("create", "pods", namespace=NS)
    launcher = make_launcher(retry_timeout=60)

    for number in range(3):
        launcher.submit(request(number))
    wait_until(lambda: creates(kube) >= 9)  # every launch retried a few times
    kube.authorization.remove(rule)
    results = collect(launcher, 3, timeout=10)

    assert all(result.ok for result in results)
    warnings = [r.getMessage() for r in caplog.records if "cannot be created until an operator acts" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f'User "system:admin" cannot create resource "pods" in API group "" in the namespace "{NS}"' in warnings[0]
    assert "grant system:admin the verb create on pods in namespace" in warnings[0]


def test_a_cancel_during_retries_means_no_pod_ever(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    rule = kube.faults.add("create", "pods", status=503, retry_after=30)  # a long wait between attempts
    launcher = make_launcher(retry_timeout=60)

    launcher.submit(request(1))
    wait_until(lambda: rule.hits == 1)
    cancelled = time.monotonic()
    launcher.cancel(name(1))
    [result] = collect(launcher, 1)
    kube.faults.remove(rule)
    time.sleep(0.2)

    assert time.monotonic() - cancelled < 1  # the 30 s wait was cut short
    assert result.cancelled
    assert not result.ok
    assert result.attempts == 1
    assert creates(kube) == 1
    assert pod_names(kube) == []


def test_a_cancel_that_comes_while_the_create_is_on_the_wire_is_reported_with_the_pod(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    kube.faults.add("create", "pods", latency=0.3, times=1)  # the server holds the request, then creates
    launcher = make_launcher()

    launcher.submit(request(1))
    wait_until(lambda: creates(kube) == 1)
    launcher.cancel(name(1))
    [result] = collect(launcher, 1)

    assert result.ok  # the pod exists: the executor must delete it, its task was revoked
    assert result.cancelled
    assert pod_names(kube) == ["dag-task-1-try-1"]


def test_a_cancel_while_waiting_for_the_rate_limit_means_no_pod(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    launcher = make_launcher(concurrency=3, qps=1, burst=1)

    for number in range(3):
        launcher.submit(request(number))
    wait_until(lambda: creates(kube) == 1)
    launcher.cancel(name(1))
    launcher.cancel(name(2))
    results = {r.key: r for r in collect(launcher, 3, timeout=2)}

    assert results[key(0)].ok
    assert results[key(1)].cancelled
    assert results[key(2)].cancelled
    assert results[key(1)].attempts == results[key(2)].attempts == 0
    assert pod_names(kube) == ["dag-task-0-try-1"]


def test_a_cancelled_queued_request_is_never_sent(api: KubeApi, kube: LocalKubeAPI) -> None:
    launcher = PodLauncher(api, concurrency=1, qps=0, burst=1, retry_timeout=5)

    launcher.submit(request(1))
    launcher.submit(request(2))
    launcher.cancel(name(1))
    launcher.cancel(name(99))  # never submitted: nothing to do
    launcher.start()
    results = {r.key: r for r in collect(launcher, 2)}
    launcher.stop(timeout=5)

    assert results[key(1)].cancelled
    assert results[key(1)].error == "cancelled before the pod was created"
    assert results[key(2)].ok
    assert creates(kube) == 1


def test_a_pod_that_already_exists_counts_as_launched(
    kube: LocalKubeAPI, api: KubeApi, make_launcher: Callable[..., PodLauncher]
) -> None:
    api.create_pod(request(1).pod)  # an earlier attempt created it; its answer was lost
    launcher = make_launcher()

    launcher.submit(request(1))
    [result] = collect(launcher, 1)

    assert result.ok
    assert result.error is None
    assert result.attempts == 1
    assert pod_names(kube) == ["dag-task-1-try-1"]


def test_a_key_submitted_twice_is_launched_once(kube: LocalKubeAPI, api: KubeApi) -> None:
    launcher = PodLauncher(api, concurrency=2, qps=0, burst=1, retry_timeout=5)

    launcher.submit(request(1))
    launcher.submit(request(1))
    assert launcher.pending() == 1
    launcher.start()
    results = collect(launcher, 1)
    time.sleep(0.1)
    launcher.stop(timeout=5)

    assert len(results) + len(launcher.results()) == 1
    assert creates(kube) == 1


def test_the_rate_limit_spaces_creates(kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]) -> None:
    launcher = make_launcher(concurrency=8, qps=20, burst=1)

    started = time.monotonic()
    for number in range(40):
        launcher.submit(request(number))
    results = collect(launcher, 40)

    assert time.monotonic() - started >= 1.9  # 39 intervals of 50 ms after the first
    assert all(r.ok for r in results)
    assert creates(kube) == 40


def test_under_random_500s_every_task_gets_exactly_one_pod(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    rule = kube.faults.add("create", "pods", status=500, probability=0.3)
    launcher = make_launcher(concurrency=8, retry_timeout=30)

    for number in range(100):
        launcher.submit(request(number))
    results = collect(launcher, 100, timeout=60)

    assert sorted(r.key for r in results) == sorted(key(n) for n in range(100))
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert pod_names(kube) == sorted(f"dag-task-{n}-try-1" for n in range(100))
    assert rule.hits > 10
    assert creates(kube) == 100 + rule.hits
    assert sum(r.attempts for r in results) == creates(kube)


# --- the scheduler thread never waits -----------------------------------------------------------


def test_submit_cancel_and_results_do_not_wait_for_a_slow_api(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    kube.faults.add("create", "pods", latency=1.0)
    launcher = make_launcher(concurrency=2)

    started = time.monotonic()
    for number in range(20):
        launcher.submit(request(number))
    for number in range(10, 20):
        launcher.cancel(name(number))
    assert launcher.results() == []
    assert launcher.pending() == 20

    # Well under one request's 1 s: nothing here waited for the API (the margin is for a loaded machine).
    assert time.monotonic() - started < 0.5


def test_stop_interrupts_waits_and_answers_every_request(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    kube.faults.add("create", "pods", status=503, retry_after=30)
    launcher = make_launcher(concurrency=2, retry_timeout=60)
    for number in range(5):
        launcher.submit(request(number))
    wait_until(lambda: creates(kube) == 2)  # two workers wait 30 s; three requests are queued

    started = time.monotonic()
    launcher.stop(timeout=5)
    stopped_in = time.monotonic() - started
    results = launcher.results()
    launcher.submit(request(9))  # after stop: answered at once, never sent

    assert stopped_in < 1
    assert sorted(r.key for r in results) == [key(n) for n in range(5)]
    assert all(r.cancelled and not r.ok for r in results)
    assert {r.error for r in results} == {"the pod launcher stopped before the pod was created"}
    assert [r.key for r in launcher.results()] == [key(9)]
    assert not any(t.name.startswith("pod-launcher-") for t in threading.enumerate())
    assert creates(kube) == 2


def test_logs_name_the_task_and_pod_but_never_the_pod_itself(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    kube.faults.add("create", "pods", status=503, times=1)
    launcher = make_launcher()

    launcher.submit(request(1))
    launcher.submit(request(2, container="Base"))
    collect(launcher, 2)

    assert "dag-task-1-try-1" in caplog.text
    assert "task_1" in caplog.text
    assert "(attempt 1)" in caplog.text or "attempt 1" in caplog.text
    assert 'Invalid value: "Base"' in caplog.text
    assert "execute_workload" not in caplog.text
    # SECRET is checked by the autouse fixture


def test_a_launch_waiting_for_a_full_quota_tries_again_as_soon_as_a_pod_there_ends(
    kube: LocalKubeAPI, api: KubeApi, make_launcher: Callable[..., PodLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    api.core.create_namespaced_resource_quota(NS, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}})
    api.core.create_namespaced_pod(NS, {"metadata": {"name": "running"}, "spec": request(0).pod.spec})
    # Backoffs of 5 minutes or more: only the wake-up can bring the second attempt within the test.
    launcher = make_launcher(retry_timeout=900, backoff_min=300, backoff_max=600, quota_backoff_max=600)

    before = creates(kube)
    launcher.submit(request(1))
    launcher.submit(request(2))
    # Both refused (403 exceeded quota): answered, not only arrived, or the delete below could come first.
    wait_until(lambda: sum("failed (attempt 1)" in r.getMessage() for r in caplog.records) >= 2)
    wait_until(lambda: launcher.waiting_for_quota() == 2)
    api.delete_pod(NS, "running")
    launcher.quota_freed(NS)  # what the executor says when it sees a pod of the namespace end
    [result] = collect(launcher, 1, timeout=30)

    assert result.ok
    assert result.attempts == 2
    assert creates(kube) - before == 3  # one woken per pod that ended: the other still waits
    assert launcher.waiting_for_quota() == 1
    launcher.cancel(name(1) if result.pod_name == name(2) else name(2))


def test_no_pod_is_created_after_its_launch_deadline(
    kube: LocalKubeAPI, make_launcher: Callable[..., PodLauncher]
) -> None:
    kube.faults.add("create", "pods", status=503, message="etcdserver: leader changed")
    launcher = make_launcher(retry_timeout=60)

    launcher.submit(dataclasses.replace(request(1), deadline=time.monotonic() + 0.5))
    launcher.submit(dataclasses.replace(request(2), deadline=time.monotonic() - 1))  # already past
    results = {r.pod_name: r for r in collect(launcher, 2)}

    retried, late = results[name(1)], results[name(2)]
    assert not retried.ok
    assert retried.attempts >= 2
    assert retried.error is not None
    assert retried.error.startswith("pod not created: its workload's token expires before the pod could run")
    assert retried.error.endswith("last error: etcdserver: leader changed (HTTP 503 ServiceUnavailable)")
    assert (late.ok, late.attempts) == (False, 0)
    assert creates(kube) == retried.attempts
