"""Routing by queue, and the syntax of ``[hybrid_executor] kubernetes_queues``; pure, no Airflow needed."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hybrid_executor.routing
from hybrid_executor.routing import (
    QueueProfile,
    Route,
    SettingsError,
    format_kubernetes_queues,
    namespace_problem,
    parse_kubernetes_queues,
    queue_name_problem,
    route_for_queue,
)
from hybrid_executor.settings import HYBRID_OPTIONS

GPU = QueueProfile("kubernetes-gpu", "/opt/airflow/gpu.yaml", "airflow-gpu")


# --- routing -------------------------------------------------------------------------------------


def test_a_listed_queue_goes_to_kubernetes_and_any_other_to_celery() -> None:
    queues = {"kubernetes": QueueProfile("kubernetes"), GPU.queue: GPU}
    assert route_for_queue("kubernetes", queues) is Route.KUBERNETES
    assert route_for_queue("kubernetes-gpu", queues) is Route.KUBERNETES
    assert route_for_queue("default", queues) is Route.CELERY
    assert route_for_queue(None, queues) is Route.CELERY
    assert route_for_queue("", queues) is Route.CELERY


def test_queue_names_are_compared_exactly_as_the_stock_executor_did() -> None:
    queues = {"kubernetes": QueueProfile("kubernetes")}
    assert route_for_queue("Kubernetes", queues) is Route.CELERY
    assert route_for_queue(" kubernetes", queues) is Route.CELERY


# --- the syntax: what parses -----------------------------------------------------------------------


def test_the_documented_examples_parse_to_the_same_queues() -> None:
    one_line = HYBRID_OPTIONS["kubernetes_queues"].example
    assert one_line is not None
    doc = hybrid_executor.routing.__doc__ or ""
    assert one_line in doc  # the README/docstring example is the one tested here
    multi_line = """
        kubernetes
        kubernetes-gpu  pod_template_file=/opt/airflow/gpu.yaml  namespace=airflow-gpu"""
    assert multi_line.strip().splitlines()[1].strip() in doc
    expected = {"kubernetes": QueueProfile("kubernetes"), "kubernetes-gpu": GPU}
    assert parse_kubernetes_queues(one_line) == expected
    assert parse_kubernetes_queues(multi_line) == expected
    assert list(parse_kubernetes_queues(one_line)) == ["kubernetes", "kubernetes-gpu"]  # order kept


@pytest.mark.parametrize(
    "text",
    [
        "a,b",
        "a, b",
        "a\nb",
        "a,\nb",
        "a\r\nb\r\n",
        "\n\n  a  \n\n  b,\n",
        "a , b ,",
        "\ta\t,\tb",
    ],
)
def test_commas_new_lines_and_blanks_separate_queues(text: str) -> None:
    assert list(parse_kubernetes_queues(text)) == ["a", "b"]


def test_settings_in_any_order_and_either_alone() -> None:
    queues = parse_kubernetes_queues(
        "a namespace=ns-a pod_template_file=/a.yaml, b namespace=ns-b, c pod_template_file=/c"
    )
    assert queues == {
        "a": QueueProfile("a", "/a.yaml", "ns-a"),
        "b": QueueProfile("b", None, "ns-b"),
        "c": QueueProfile("c", "/c", None),
    }


@pytest.mark.parametrize(
    ("written", "path"),
    [
        ("pod_template_file='/opt/pod templates/gpu.yaml'", "/opt/pod templates/gpu.yaml"),
        ('pod_template_file="/opt/a,b/gpu.yaml"', "/opt/a,b/gpu.yaml"),
        ("pod_template_file=/opt/'pod templates'/gpu.yaml", "/opt/pod templates/gpu.yaml"),
        ("pod_template_file=/opt/a=b.yaml", "/opt/a=b.yaml"),
        ("pod_template_file='it'\"'\"'s.yaml'", "it's.yaml"),
        ("pod_template_file=/opt/\\x.yaml", "/opt/\\x.yaml"),  # no backslash escapes
    ],
)
def test_quoted_values_keep_spaces_commas_and_quotes(written: str, path: str) -> None:
    assert parse_kubernetes_queues(f"gpu {written}, other") == {
        "gpu": QueueProfile("gpu", path),
        "other": QueueProfile("other"),
    }


def test_queue_names_may_be_any_text_without_separators() -> None:
    assert list(parse_kubernetes_queues("k8s.gpu/large, GPU_Queue, émoji-🚀, 123")) == [
        "k8s.gpu/large",
        "GPU_Queue",
        "émoji-🚀",
        "123",
    ]


# --- the syntax: every mistake is a SettingsError that says what and how to fix ---------------------


@pytest.mark.parametrize(
    ("text", "problem", "fix"),
    [
        ("", "lists no queue", "list at least one queue name, e.g. kubernetes"),
        ("  \n\n ", "lists no queue", "list at least one queue name"),
        ("a,,b", "has an empty entry", "remove the extra comma"),
        (",a", "has an empty entry", "remove the extra comma"),
        ("a\n , b", "has an empty entry", "remove the extra comma"),
        ('""', "has a queue name '' that is empty", "name the queue as the tasks do"),
        ("'a b'", "has a queue name 'a b' that contains a space", "without spaces, commas, quotes or '='"),
        ("namespace=gpu", "has an entry with no queue name: 'namespace=gpu' starts with a setting", "start each"),
        ("a, namespace=x", "'namespace=x' starts with a setting", "e.g. 'kubernetes-gpu namespace=x'"),
        ("kubernetes kubernetes-gpu", "has 'kubernetes-gpu' after queue 'kubernetes'", "separate queues with commas"),
        ("a namespce=x", "gives queue 'a' an unknown setting 'namespce'", "(did you mean namespace?)"),
        ("a template=/x.yaml", "an unknown setting 'template'", "pod_template_file=PATH and namespace=NAME"),
        ("a Namespace=x", "an unknown setting 'Namespace'", "did you mean namespace?"),
        ("a namespace=x namespace=y", "sets namespace twice for queue 'a'", "keep one namespace=..."),
        ("a namespace=", "gives queue 'a' an empty namespace", "leave namespace out"),
        ("a pod_template_file=''", "gives queue 'a' an empty pod_template_file", "give it a value"),
        ("a namespace=GPU", "the namespace 'GPU', which is not a valid namespace name", "such as 'airflow-gpu'"),
        ("a namespace=gpu_jobs", "which is not a valid namespace name", "at most 63 characters"),
        ("a namespace=-gpu", "which is not a valid namespace name", "such as 'airflow-gpu'"),
        (f"a namespace={'n' * 64}", "is 64 characters long, more than the 63", "at most 63 characters"),
        ("a, b, a namespace=x", "lists queue 'a' twice", "list each queue once"),
        ("a pod_template_file='/x", "has a ' quote at character 21 that is never closed", "close the quote"),
        ('a"', 'has a " quote at character 2 that is never closed', "close the quote"),
    ],
)
def test_mistakes_name_the_option_the_value_the_problem_and_the_fix(text: str, problem: str, fix: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_kubernetes_queues(text)
    error = raised.value
    assert (error.section, error.option, error.value) == ("hybrid_executor", "kubernetes_queues", text)
    message = str(error)
    assert message.startswith(f"[hybrid_executor] kubernetes_queues = {text!r} ")
    assert problem in error.problem
    assert fix in error.fix
    assert message.endswith(f"{error.problem}; {error.fix}")


def test_errors_name_the_option_the_text_was_read_from() -> None:
    with pytest.raises(SettingsError, match=r"^\[team=hybrid_executor\] queues = 'a,,b' has an empty entry"):
        parse_kubernetes_queues("a,,b", section="team=hybrid_executor", option="queues")


def test_a_settings_error_survives_pickling_and_can_name_a_team() -> None:
    error = SettingsError("hybrid_executor", "api_qps", "fast", "is not a number", "set a number")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.problem, copy.fix) == (str(error), error.problem, error.fix)
    assert str(error.for_team("team_a")) == (
        "[hybrid_executor] api_qps (team 'team_a') = 'fast' is not a number; set a number"
    )
    unset = SettingsError("core", "parallelism", None, "is not set", "set it")
    assert str(unset) == "[core] parallelism = (unset) is not set; set it"


def test_name_and_namespace_checks() -> None:
    assert queue_name_problem("kubernetes") is None
    assert queue_name_problem("") == "is empty"
    assert queue_name_problem("a=b") is not None
    assert namespace_problem("airflow-gpu") is None
    assert namespace_problem("a" * 63) is None
    assert namespace_problem("a" * 64) is not None
    assert namespace_problem("Airflow") is not None
    assert namespace_problem("") is not None


def test_format_refuses_what_cannot_be_read_back() -> None:
    with pytest.raises(ValueError, match="queue name 'a b' contains a space"):
        format_kubernetes_queues([QueueProfile("a b")])
    with pytest.raises(ValueError, match="has an empty namespace"):
        format_kubernetes_queues([QueueProfile("a", None, "")])
    with pytest.raises(ValueError, match="has the namespace 'A', which is not a valid namespace name"):
        format_kubernetes_queues([QueueProfile("a", None, "A")])


# --- properties --------------------------------------------------------------------------------------

_syntax_text = st.text(alphabet=st.sampled_from(list(",\n\r\t ='\"\\abn-_/.")) | st.characters(), max_size=80)
_queue_names = st.from_regex(r"[^\s,'\"=]+", fullmatch=True)
_namespaces = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
_paths = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_profiles = st.lists(
    st.builds(QueueProfile, _queue_names, st.none() | _paths, st.none() | _namespaces),
    min_size=1,
    max_size=5,
    unique_by=lambda profile: profile.queue,
)


@given(_syntax_text | st.text())
def test_any_text_parses_or_is_a_settings_error(text: str) -> None:
    outcome: dict[str, QueueProfile] | SettingsError
    try:
        outcome = parse_kubernetes_queues(text)
    except SettingsError as error:
        outcome = error
    if isinstance(outcome, SettingsError):
        assert str(outcome).startswith(f"[hybrid_executor] kubernetes_queues = {text!r} ")
        return
    assert outcome
    for name, profile in outcome.items():
        assert profile.queue == name
        assert queue_name_problem(name) is None
        assert profile.namespace is None or namespace_problem(profile.namespace) is None
        assert profile.pod_template_file != ""


@given(_profiles)
def test_format_then_parse_gives_the_same_profiles(profiles: list[QueueProfile]) -> None:
    text = format_kubernetes_queues(profiles)
    assert parse_kubernetes_queues(text) == {profile.queue: profile for profile in profiles}


@given(_profiles, st.lists(st.sampled_from([",", "\n", ", ", ",\n", "\n\n", " ,\t"]), min_size=5, max_size=5))
def test_separators_do_not_change_the_meaning(profiles: list[QueueProfile], separators: list[str]) -> None:
    entries = [format_kubernetes_queues([profile]) for profile in profiles]
    text = entries[0] + "".join(sep + entry for sep, entry in zip(separators, entries[1:], strict=False))
    assert parse_kubernetes_queues(text) == {profile.queue: profile for profile in profiles}
