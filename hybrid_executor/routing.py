"""Which backend runs a task, chosen by its queue; and the syntax that lists the Kubernetes queues.

A task whose ``queue`` is one of the Kubernetes queues runs in a pod of its own; every other task
goes to Celery. The names are compared exactly (case-sensitive), as ``CeleryKubernetesExecutor``
compared them. Pure functions: no configuration is read and no file is opened here
(:mod:`hybrid_executor.settings` reads the option and checks that template files exist).

Listing the Kubernetes queues
-----------------------------

``[hybrid_executor] kubernetes_queues`` lists the queues. Entries are separated by commas or
new lines. Each entry is a queue name, optionally followed by settings for that queue's pods,
written ``KEY=VALUE`` and separated by spaces::

    [hybrid_executor]
    kubernetes_queues =
        kubernetes
        kubernetes-gpu  pod_template_file=/opt/airflow/gpu.yaml  namespace=airflow-gpu

The same as the value of an environment variable, ``AIRFLOW__HYBRID_EXECUTOR__KUBERNETES_QUEUES``,
on one line::

    kubernetes, kubernetes-gpu pod_template_file=/opt/airflow/gpu.yaml namespace=airflow-gpu

The settings a queue takes:

- ``pod_template_file=PATH``: the pod template for this queue's tasks. Without it, the queue uses
  ``[hybrid_executor] pod_template_file`` (itself ``[kubernetes_executor] pod_template_file`` when
  unset). A task's own ``executor_config["pod_template_file"]`` still wins over both.
- ``namespace=NAME``: the namespace this queue's pods are created in, a Kubernetes namespace name
  (lower-case letters, digits and ``-``, at most 63 characters). Without it, the queue uses
  ``[hybrid_executor] namespace`` (itself ``[kubernetes_executor] namespace`` when unset).

Rules:

- A queue name may not contain spaces, commas, quotes or ``=``; each queue is listed once.
- A value that contains spaces or commas is quoted, ``'...'`` or ``"..."``, as in a shell (no
  backslash escapes): ``pod_template_file="/opt/pod templates/gpu.yaml"``.
- Blank lines and a comma at the end of a line are ignored; an empty entry between two commas is
  an error, as are an unknown key, a key given twice, an empty value and an invalid namespace.
- When the option is unset (or empty), the Kubernetes queue is the one queue named by
  ``[celery_kubernetes_executor] kubernetes_queue``, else ``kubernetes``.

Every mistake is a :class:`SettingsError` naming the option, its value, the faulty entry and the
fix, raised when the executor starts.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "QUEUE_KEYS",
    "QueueProfile",
    "Route",
    "SettingsError",
    "format_kubernetes_queues",
    "namespace_problem",
    "parse_kubernetes_queues",
    "queue_name_problem",
    "route_for_queue",
]


class SettingsError(ValueError):
    """A configuration value the executor cannot start with.

    The message names where the value was read (section and option, and the team for a team's
    executor), the value itself, what is wrong with it and how to fix it, e.g.
    ``[hybrid_executor] api_qps = 'fast' is not a number; set a positive number of requests per
    second, e.g. 100``. The parts are kept as attributes for tools that show them separately.

    Defined here rather than in :mod:`hybrid_executor.settings` (which re-exports it) because the
    queue syntax below raises it and the settings module imports this one.
    """

    def __init__(
        self, section: str, option: str, value: str | None, problem: str, fix: str, *, team: str | None = None
    ) -> None:
        self.section = section
        self.option = option
        self.value = value
        self.problem = problem
        self.fix = fix
        self.team = team
        where = f"[{section}] {option}" + (f" (team {team!r})" if team else "")
        shown = "(unset)" if value is None else repr(value)
        super().__init__(f"{where} = {shown} {problem}; {fix}")

    def for_team(self, team: str | None) -> SettingsError:
        """The same error, saying which team's configuration it was read from."""
        return SettingsError(self.section, self.option, self.value, self.problem, self.fix, team=team)

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle their args; ours are keyword-shaped, so say how to rebuild one.
        return (_rebuild_settings_error, (self.section, self.option, self.value, self.problem, self.fix, self.team))


def _rebuild_settings_error(
    section: str, option: str, value: str | None, problem: str, fix: str, team: str | None
) -> SettingsError:
    return SettingsError(section, option, value, problem, fix, team=team)


@dataclass(frozen=True)
class QueueProfile:
    """A Kubernetes queue and what its pods get; ``None`` means the executor-wide setting."""

    queue: str
    pod_template_file: str | None = None
    namespace: str | None = None


class Route(enum.Enum):
    CELERY = "celery"
    KUBERNETES = "kubernetes"


def route_for_queue(queue: str | None, kubernetes_queues: Mapping[str, QueueProfile]) -> Route:
    """The backend for a task on ``queue``: Kubernetes for a listed queue, Celery for any other."""
    if queue is not None and queue in kubernetes_queues:
        return Route.KUBERNETES
    return Route.CELERY


# The keys an entry may set, in the order format_kubernetes_queues writes them.
QUEUE_KEYS = ("pod_template_file", "namespace")

_DEFAULT_SECTION = "hybrid_executor"
_DEFAULT_OPTION = "kubernetes_queues"
_SETTINGS_FIX = "a queue's settings are pod_template_file=PATH and namespace=NAME"

# One token at a time: a separator, a run of blanks (any whitespace but a new line), a word made of
# unquoted and quoted pieces, or a quote that is never closed. The four cover every character.
_TOKEN = re.compile(
    r"""
    (?P<sep>[,\n])
  | (?P<blank>[^\S\n]+)
  | (?P<word>(?:[^\s,'"]+|'[^']*'|"[^"]*")+)
  | (?P<open>['"])
    """,
    re.VERBOSE,
)
_QUOTED = re.compile(r"""'([^']*)'|"([^"]*)"|([^'"]+)""")
_BARE_VALUE = re.compile(r"""[^\s,'"]+""")
_QUEUE_NAME = re.compile(r"""[^\s,'"=]+""")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def queue_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Kubernetes queue's name in this syntax, or ``None`` if it can."""
    if not name:
        return "is empty"
    if not _QUEUE_NAME.fullmatch(name):
        return "contains a space, comma, quote or '='"
    return None


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` is not a valid Kubernetes namespace name (a DNS-1123 label), or ``None``."""
    if len(namespace) > 63:
        return f"is {len(namespace)} characters long, more than the 63 a namespace name may have"
    if not _DNS1123_LABEL.fullmatch(namespace):
        return (
            "is not a valid namespace name: it must consist of lower-case letters, digits and '-', "
            "and start and end with a letter or digit"
        )
    return None


class _ErrorFactory:
    def __init__(self, section: str, option: str, text: str) -> None:
        self.section = section
        self.option = option
        self.text = text

    def __call__(self, problem: str, fix: str) -> SettingsError:
        return SettingsError(self.section, self.option, self.text, problem, fix)


@dataclass
class _Entry:
    start: int  # where the entry's text begins, for quoting it in errors
    end: int
    words: list[str]


def _unquote(word: str) -> str:
    return "".join(m.group(1) or m.group(2) or m.group(3) or "" for m in _QUOTED.finditer(word))


def _entries(text: str, error: _ErrorFactory) -> list[_Entry]:
    entries: list[_Entry] = []
    current = _Entry(0, 0, [])
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        assert match is not None  # the alternatives cover every character
        kind = match.lastgroup
        if kind == "open":
            column = match.start() + 1
            raise error(
                f"has a {match.group()} quote at character {column} that is never closed",
                "close the quote, or remove it",
            )
        if kind == "word":
            if not current.words:
                current.start = match.start()
            current.words.append(match.group())
            current.end = match.end()
        elif kind == "sep":
            if current.words:
                entries.append(current)
            elif match.group() == ",":
                raise error(
                    "has an empty entry (a comma with no queue name before it)",
                    "remove the extra comma, or put a queue name before it",
                )
            current = _Entry(match.end(), match.end(), [])
        position = match.end()
    if current.words:
        entries.append(current)
    return entries


def _profile(entry: _Entry, text: str, error: _ErrorFactory) -> QueueProfile:
    source = text[entry.start : entry.end]
    name = _unquote(entry.words[0])
    if "=" in name:
        raise error(
            f"has an entry with no queue name: {source!r} starts with a setting",
            f"start each entry with its queue's name, e.g. 'kubernetes-gpu {name}'",
        )
    problem = queue_name_problem(name)
    if problem is not None:
        raise error(
            f"has a queue name {name!r} that {problem}",
            "name the queue as the tasks do (queue=...), without spaces, commas, quotes or '='",
        )
    values: dict[str, str] = {}
    for word in entry.words[1:]:
        setting = _unquote(word)
        key, equals, value = setting.partition("=")
        if not equals:
            raise error(
                f"has {setting!r} after queue {name!r}, which is not a KEY=VALUE setting",
                f"separate queues with commas or new lines ({_SETTINGS_FIX})",
            )
        if key not in QUEUE_KEYS:
            close = difflib.get_close_matches(key, QUEUE_KEYS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise error(f"gives queue {name!r} an unknown setting {key!r}", _SETTINGS_FIX + hint)
        if key in values:
            raise error(f"sets {key} twice for queue {name!r}", f"keep one {key}=... in {source!r}")
        if not value:
            raise error(
                f"gives queue {name!r} an empty {key}",
                f"give it a value, or leave {key} out to use the executor-wide {key}",
            )
        if key == "namespace" and (problem := namespace_problem(value)) is not None:
            raise error(
                f"gives queue {name!r} the namespace {value!r}, which {problem}",
                "use a namespace name such as 'airflow-gpu' (at most 63 characters)",
            )
        values[key] = value
    return QueueProfile(name, values.get("pod_template_file"), values.get("namespace"))


def parse_kubernetes_queues(
    text: str, *, section: str = _DEFAULT_SECTION, option: str = _DEFAULT_OPTION
) -> dict[str, QueueProfile]:
    """The Kubernetes queues listed in ``text`` (the syntax above), by name, in the order given.

    ``section`` and ``option`` are where ``text`` was read, for the error messages. Raises
    :class:`SettingsError` for any mistake, including a text that lists no queue.
    """
    error = _ErrorFactory(section, option, text)
    profiles: dict[str, QueueProfile] = {}
    for entry in _entries(text, error):
        profile = _profile(entry, text, error)
        if profile.queue in profiles:
            raise error(f"lists queue {profile.queue!r} twice", "list each queue once, with all its settings")
        profiles[profile.queue] = profile
    if not profiles:
        raise error("lists no queue", "list at least one queue name, e.g. kubernetes")
    return profiles


def _quote(value: str) -> str:
    if _BARE_VALUE.fullmatch(value):
        return value
    # Single quotes keep everything but a single quote, which goes in double quotes.
    pieces = re.split(r"('+)", value)
    return "".join(f'"{piece}"' if piece.startswith("'") else f"'{piece}'" for piece in pieces if piece)


def format_kubernetes_queues(profiles: Iterable[QueueProfile]) -> str:
    """The one-line text that :func:`parse_kubernetes_queues` reads back as ``profiles``."""
    entries = []
    for profile in profiles:
        problem = queue_name_problem(profile.queue)
        if problem is not None:
            raise ValueError(f"queue name {profile.queue!r} {problem}")
        words = [profile.queue]
        for key in QUEUE_KEYS:
            value = getattr(profile, key)
            if value == "":
                raise ValueError(f"queue {profile.queue!r} has an empty {key}")
            if key == "namespace" and value is not None and (problem := namespace_problem(value)) is not None:
                raise ValueError(f"queue {profile.queue!r} has the namespace {value!r}, which {problem}")
            if value is not None:
                words.append(f"{key}={_quote(value)}")
        entries.append(" ".join(words))
    return ", ".join(entries)
