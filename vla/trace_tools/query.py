"""The ``--filter`` expression language: a small, safe predicate over trace records.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := path [op value]          a bare path tests that the field is truthy
    op         := == | != | < | <= | > | >= | contains
    path       := name ("." name)*         dotted; a number indexes a list
    value      := number | true | false | null | 'text' | "text" | word

A *word* is any unquoted run of letters, digits and ``_ - . @ : /`` that is not a number, and
stands for that text: ``kind == grpo``, ``planner == constant-velocity``. Examples::

    parsed == false
    kind == grpo and rewards.consistency.value < 0.5
    decision_correct_lon == false or not parsed
    verdict == inconsistent and derived.lateral != keep_lane
    decision.reasoning contains "id 3"

A path is looked up in the record first; a name the record lacks is then looked up among the
derived fields of :func:`vla.trace_tools.facts.virtual_fields` (``id``, ``verdict``,
``failure``, ``consistent``, ``written``, ``derived``, ``ade``, ``reward``, ``scenario``,
``reasoning``, ``error_kind``). A missing field equals only ``null``; ``<``-style comparisons
hold only between two numbers or two texts; a meta-action object compares with a text as
``"longitudinal, lateral"``; ``contains`` is a case-insensitive substring test on text and a
membership test on lists. Nothing is evaluated as Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from vla.trace_tools import TraceToolError

KEYWORDS = {"and", "or", "not", "contains", "true", "false", "null", "none"}
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$|\d+$")
_WORD = re.compile(r"[A-Za-z0-9_.\-@:/+]+")
MISSING = object()


class FilterError(TraceToolError):
    """A filter expression that does not parse; the message says where."""

    def __init__(self, expression: str, message: str, position: int):
        where = "end of input" if position >= len(expression) else f"column {position + 1}"
        super().__init__(f"bad filter {expression!r}: {message} at {where}")
        self.position = position


def _found(token: Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


@dataclass(frozen=True)
class Token:
    kind: str      # "op", "(", ")", "string", "word", "end"
    text: str
    value: object
    position: int


def tokenize(expression: str) -> list[Token]:
    tokens, i, n = [], 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()":
            tokens.append(Token(ch, ch, ch, i))
            i += 1
            continue
        op = next((o for o in OPERATORS if expression.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, op, i))
            i += len(op)
            continue
        if ch in "'\"":
            end = expression.find(ch, i + 1)
            if end < 0:
                raise FilterError(expression, f"unterminated string starting with {ch}", i)
            text = expression[i + 1:end]
            tokens.append(Token("string", expression[i:end + 1], text, i))
            i = end + 1
            continue
        m = _WORD.match(expression, i)
        if m is None:
            hint = " (use == to compare)" if ch == "=" else ""
            raise FilterError(expression, f"unexpected character {ch!r}{hint}", i)
        tokens.append(Token("word", m.group(0), m.group(0), i))
        i = m.end()
    tokens.append(Token("end", "", None, n))
    return tokens


# -- the syntax tree: each node is a callable record -> bool, built by the parser --

Predicate = Callable[[dict], bool]


@dataclass(frozen=True)
class Filter:
    """A parsed filter; call it on a record (and its virtual fields) to test it."""

    expression: str
    predicate: Predicate

    def __call__(self, record: dict, virtual: dict | None = None) -> bool:
        return self.predicate(_Scope(record, virtual or {}))


class _Scope:
    def __init__(self, record: dict, virtual: dict):
        self.record, self.virtual = record, virtual

    def lookup(self, path: tuple[str, ...]):
        head = path[0]
        if isinstance(self.record, dict) and head in self.record:
            value = self.record[head]
        elif head in self.virtual:
            value = self.virtual[head]
            value = value() if callable(value) else value
        else:
            return MISSING
        for part in path[1:]:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return MISSING
        return value


def _as_text(value):
    if isinstance(value, dict) and set(value) >= {"longitudinal", "lateral"}:
        return f"{value['longitudinal']}, {value['lateral']}"
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(value, literal) -> bool:
    if value is MISSING or value is None:
        return literal is None
    if literal is None:
        return False
    if isinstance(literal, bool) or isinstance(value, bool):
        return isinstance(literal, bool) and isinstance(value, bool) and value == literal
    if _is_number(literal):
        return _is_number(value) and float(value) == float(literal)
    return isinstance(_as_text(value), str) and _as_text(value) == literal


def _order(value, literal, op: str) -> bool:
    value = _as_text(value)
    if _is_number(value) and _is_number(literal):
        a, b = float(value), float(literal)
    elif isinstance(value, str) and isinstance(literal, str):
        a, b = value, literal
    else:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _contains(value, literal) -> bool:
    value = _as_text(value)
    if isinstance(value, str):
        return literal is not None and str(literal).lower() in value.lower()
    if isinstance(value, list):
        return any(_equal(v, literal) for v in value)
    return False


def _truthy(value) -> bool:
    return value is not MISSING and bool(value)


class _Parser:
    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = tokenize(expression)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> FilterError:
        return FilterError(self.expression, message, (token or self.token).position)

    def keyword(self, *words: str) -> bool:
        t = self.token
        return t.kind == "word" and t.text.lower() in words

    def parse(self) -> Predicate:
        if self.token.kind == "end":
            raise self.error("empty expression")
        node = self.parse_or()
        if self.token.kind != "end":
            raise self.error(f"expected 'and', 'or' or the end, found {_found(self.token)}")
        return node

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.keyword("or"):
            self.i += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda s, ps=tuple(parts): any(p(s) for p in ps))

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.keyword("and"):
            self.i += 1
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else (lambda s, ps=tuple(parts): all(p(s) for p in ps))

    def parse_not(self) -> Predicate:
        if self.keyword("not"):
            self.i += 1
            inner = self.parse_not()
            return lambda s: not inner(s)
        if self.token.kind == "(":
            self.i += 1
            inner = self.parse_or()
            if self.token.kind != ")":
                raise self.error(f"expected ')', found {_found(self.token)}")
            self.i += 1
            return inner
        return self.parse_comparison()

    def parse_path(self) -> tuple[str, ...]:
        t = self.token
        if t.kind != "word" or t.text.lower() in KEYWORDS or _NUMBER.match(t.text):
            raise self.error(f"expected a field name (e.g. parsed, rewards.total), "
                             f"found {_found(t)}")
        parts = tuple(t.text.split("."))
        for part in parts:
            if not _NAME.match(part):
                raise self.error(f"{t.text!r} is not a dotted field path")
        self.i += 1
        return parts

    def parse_value(self):
        t = self.token
        if t.kind == "string":
            self.i += 1
            return t.value
        if t.kind != "word" or t.text.lower() in {"and", "or", "not", "contains"}:
            raise self.error(f"expected a value (number, true, false, null, text), "
                             f"found {_found(t)}")
        self.i += 1
        low = t.text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("null", "none"):
            return None
        if _NUMBER.match(t.text):
            return float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
        return t.text

    def parse_comparison(self) -> Predicate:
        path = self.parse_path()
        if self.token.kind == "op":
            op = self.token.text
            self.i += 1
            literal = self.parse_value()
            if op == "==":
                return lambda s: _equal(s.lookup(path), literal)
            if op == "!=":
                return lambda s: not _equal(s.lookup(path), literal)
            return lambda s: _order(s.lookup(path), literal, op)
        if self.keyword("contains"):
            self.i += 1
            literal = self.parse_value()
            return lambda s: _contains(s.lookup(path), literal)
        if self.token.kind in ("end", ")") or self.keyword("and", "or"):
            return lambda s: _truthy(s.lookup(path))
        raise self.error(f"expected an operator (== != < <= > >= contains) after "
                         f"{'.'.join(path)!r}, found {_found(self.token)}")


def parse_filter(expression: str) -> Filter:
    """Parse ``expression``; a :class:`FilterError` saying where it failed otherwise."""
    return Filter(expression, _Parser(expression).parse())
