"""Label and field selectors: parsing the query-string forms and matching objects against them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hybrid_executor.testing.kube.errors import ApiError, bad_request
from hybrid_executor.testing.kube.names import label_key_errors, label_value_errors

# The fields each resource's field selector accepts, and where each lives in the object.
FIELD_GETTERS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "pods": {
        "metadata.name": lambda o: o["metadata"].get("name", ""),
        "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
        "status.phase": lambda o: o.get("status", {}).get("phase", ""),
        "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
        "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
        "spec.schedulerName": lambda o: o.get("spec", {}).get("schedulerName", ""),
        "spec.serviceAccountName": lambda o: o.get("spec", {}).get("serviceAccountName", ""),
        "spec.host": lambda o: o.get("spec", {}).get("nodeName", ""),  # old clients' name for spec.nodeName
        "spec.hostNetwork": lambda o: "true" if o.get("spec", {}).get("hostNetwork") else "false",
        "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
        "status.nominatedNodeName": lambda o: o.get("status", {}).get("nominatedNodeName", ""),
    },
    "namespaces": {
        "metadata.name": lambda o: o["metadata"].get("name", ""),
        "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    },
    "resourcequotas": {
        "metadata.name": lambda o: o["metadata"].get("name", ""),
        "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    },
    "limitranges": {
        "metadata.name": lambda o: o["metadata"].get("name", ""),
        "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    },
    "serviceaccounts": {
        "metadata.name": lambda o: o["metadata"].get("name", ""),
        "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    },
}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|>|<|[^\s!=(),<>]+)")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            break
        tokens.append(match.group(1))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _parse_error(detail: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {detail}")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``labelSelector`` as the API server does (equality, set-based, exists and !key forms)."""
    if not text or not text.strip():
        return LabelSelector()
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise _parse_error(f"found '', expected: identifier in selector {text!r}")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        word = take()
        if word == "!":
            key = take()
            _check_key(key)
            requirements.append(Requirement(key, "!"))
        else:
            key = word
            _check_key(key)
            if i >= len(tokens) or tokens[i] == ",":
                requirements.append(Requirement(key, "exists"))
            else:
                op = take()
                if op in ("=", "=="):
                    requirements.append(Requirement(key, "=", (_value(take() if _has_value(tokens, i) else ""),)))
                elif op == "!=":
                    requirements.append(Requirement(key, "!=", (_value(take() if _has_value(tokens, i) else ""),)))
                elif op in ("in", "notin"):
                    requirements.append(Requirement(key, op, tuple(_value_set(take, text))))
                elif op in (">", "<"):
                    bound = take()
                    if not re.fullmatch(r"-?\d+", bound):
                        raise _parse_error(f"for 'Gt', 'Lt' operators, the value must be an integer: {bound!r}")
                    requirements.append(Requirement(key, "gt" if op == ">" else "lt", (bound,)))
                else:
                    raise _parse_error(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):  # between requirements the parser's own words, not "unable to parse requirement"
            if tokens[i] != ",":
                raise bad_request(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(tokens) or tokens[i] in (",", "(", ")", "=", "==", "!=", ">", "<"):
                following = tokens[i] if i < len(tokens) else ""
                raise bad_request(f"found '{following}', expected: identifier after ','")
    return LabelSelector(tuple(requirements))


def _has_value(tokens: list[str], i: int) -> bool:
    return i < len(tokens) and tokens[i] != ","


def _value_set(take: Callable[[], str], text: str) -> list[str]:
    if take() != "(":
        raise _parse_error(f"found '', expected: '(' in selector {text!r}")
    values: list[str] = []
    while True:
        word = take()
        if word == ")":
            if not values:
                raise _parse_error("for 'in', 'notin' operators, values set can't be empty")
            return values
        if word == ",":
            continue
        values.append(_value(word))


def _check_key(key: str) -> None:
    problems = label_key_errors(key)
    if problems:
        raise _parse_error(f"invalid label key {key!r}: {problems[0]}")


def _value(value: str) -> str:
    problems = label_value_errors(value)
    if problems:
        raise _parse_error(f"invalid label value: {value!r}: at key: {problems[0]}")
    return value


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)
    getters: tuple[Callable[[dict[str, Any]], str], ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        pairs = zip(self.terms, self.getters, strict=True)
        return all((getter(obj) == value) == equal for (_, equal, value), getter in pairs)


def parse_field_selector(text: str | None, resource: str) -> FieldSelector:
    """Parse ``fieldSelector`` as fields.ParseSelector does; fields the resource does not index answer 400.

    Terms are split on unescaped commas and each on its first operator (``!=``, ``==`` or ``=``) with
    nothing trimmed; in a value, ``\\,``, ``\\=`` and ``\\\\`` are escapes and a bare ``,`` or ``=``
    is an error.
    """
    if not text:
        return FieldSelector()
    allowed = FIELD_GETTERS[resource]
    parsed: list[tuple[str, bool, str]] = []
    for part in sorted(_split_field_terms(text)):  # the server sorts the terms before it reads them
        if not part:
            continue
        split = _split_field_term(part)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, raw_value = split
        parsed.append((name, op != "!=", _unescape_field_value(raw_value)))
    for name, _, _ in parsed:
        if name not in allowed:
            raise bad_request(f"field label not supported: {name}")
    return FieldSelector(tuple(parsed), tuple(allowed[name] for name, _, _ in parsed))


def _split_field_terms(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    for index in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, index):
                return term[:index], op, term[index + len(op) :]
    return None


def _unescape_field_value(value: str) -> str:
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            # fields.UnescapedRune prints the rune with %v: its number.
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(char)}")
        else:
            out.append(char)
    return "".join(out)
