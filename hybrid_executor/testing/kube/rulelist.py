"""A thread-safe list of rules that tests add and remove while the server reads them (faults, denials)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Rule = TypeVar("Rule")


class RuleList(Generic[Rule]):
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)
