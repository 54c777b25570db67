"""Go's encoding/json syntax errors: what ``json.Unmarshal`` says about a body that is not JSON.

The create handler quotes them in its 400; Python's parser words them otherwise.
"""

from __future__ import annotations

import json

_DIGITS = "0123456789"


class _Syntax(Exception):
    """The first syntax error of a JSON text, worded as Go's encoding/json scanner words it."""


def go_json_syntax_error(body: bytes) -> str:
    """What Go's ``json.Unmarshal`` says about ``body`` that Python's parser refused."""
    text = body.decode("utf-8", "replace")
    scanner = _GoScanner(text)
    try:
        scanner.value()
        scanner.skip()
        if scanner.at < len(text):
            scanner.fail("after top-level value")
    except _Syntax as error:
        return str(error)
    return "invalid character looking for beginning of value"  # valid for Go, refused by Python: rare


class _GoScanner:
    _ESCAPES = '"\\/bfnrtu'

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, context: str) -> None:
        if self.at >= len(self.text):
            raise _Syntax("unexpected end of JSON input")
        raise _Syntax(f"invalid character {_go_quote(self.text[self.at])} {context}")

    def peek(self) -> str:
        if self.at >= len(self.text):
            raise _Syntax("unexpected end of JSON input")
        return self.text[self.at]

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t\r\n":
            self.at += 1

    def value(self) -> None:
        self.skip()
        char = self.peek()
        if char == "{":
            self.at += 1
            self._object()
        elif char == "[":
            self.at += 1
            self._array()
        elif char == '"':
            self.at += 1
            self._string()
        elif char == "-" or char in _DIGITS:
            self._number()
        elif char in "tfn":
            self._literal({"t": "true", "f": "false", "n": "null"}[char])
        else:
            self.fail("looking for beginning of value")

    def _object(self) -> None:
        self.skip()
        if self.peek() == "}":
            self.at += 1
            return
        while True:
            self.skip()
            if self.peek() != '"':
                self.fail("looking for beginning of object key string")
            self.at += 1
            self._string()
            self.skip()
            if self.peek() != ":":
                self.fail("after object key")
            self.at += 1
            self.value()
            self.skip()
            if self.peek() == ",":
                self.at += 1
                continue
            if self.peek() == "}":
                self.at += 1
                return
            self.fail("after object key:value pair")

    def _array(self) -> None:
        self.skip()
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            self.value()
            self.skip()
            if self.peek() == ",":
                self.at += 1
                continue
            if self.peek() == "]":
                self.at += 1
                return
            self.fail("after array element")

    def _string(self) -> None:
        while True:
            char = self.peek()
            if char == '"':
                self.at += 1
                return
            if char < " ":
                self.fail("in string literal")
            self.at += 1
            if char == "\\":
                if self.peek() not in self._ESCAPES:
                    self.fail("in string escape code")
                escape = self.peek()
                self.at += 1
                if escape == "u":
                    for _ in range(4):
                        if self.peek() not in "0123456789abcdefABCDEF":
                            self.fail("in \\u hexadecimal character escape")
                        self.at += 1

    def _digits(self, context: str) -> None:
        if self.peek() not in _DIGITS:
            self.fail(context)
        while self.at < len(self.text) and self.text[self.at] in _DIGITS:
            self.at += 1

    def _number(self) -> None:
        if self.peek() == "-":
            self.at += 1
        if self.peek() == "0":
            self.at += 1
        else:
            self._digits("in numeric literal")
        if self.at < len(self.text) and self.text[self.at] == ".":
            self.at += 1
            self._digits("after decimal point in numeric literal")
        if self.at < len(self.text) and self.text[self.at] in "eE":
            self.at += 1
            if self.peek() in "+-":
                self.at += 1
            self._digits("in exponent of numeric literal")

    def _literal(self, word: str) -> None:
        for expected in word:
            if self.peek() != expected:
                self.fail(f"in literal {word} (expecting {_go_quote(expected)})")
            self.at += 1


def _go_quote(char: str) -> str:
    """encoding/json's quoteChar."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    quoted = json.dumps(char, ensure_ascii=False)[1:-1] if char >= " " else _go_control(char)
    return f"'{quoted}'"


def _go_control(char: str) -> str:
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    return named.get(char, f"\\x{ord(char):02x}")
