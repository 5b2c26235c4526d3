"""Stage conditions such as `evaluate.auc >= 0.9 and params.deploy == 1`: a small parser of our
own (never eval), so a condition is checked before a run, evaluated by the local engine and
written as an Argo `when` expression from one syntax tree.

Grammar:  expr := and ('or' and)* ;  and := not ('and' not)* ;  not := 'not' not | primary ;
primary := '(' expr ')' | value OP value ;  value := NUMBER | '-' NUMBER | NAME('.'NAME)* ;
OP := < <= > >= == != .
"""

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_LENGTH = 1000

Reference = tuple[str, ...]

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*"
    r"(?:\.[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)*)"
    r"|(?P<op><=|>=|==|!=|<|>)"
    r"|(?P<punct>[()\-])"
    r")"
)
KEYWORDS = frozenset({"and", "or", "not"})
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


class ConditionError(ValueError):
    """The text is not a condition; the message says where and why."""


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Name:
    reference: Reference


Value = Number | Name


@dataclass(frozen=True)
class Compare:
    left: Value
    op: str
    right: Value


@dataclass(frozen=True)
class Not:
    operand: "Node"


@dataclass(frozen=True)
class And:
    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    operands: tuple["Node", ...]


Node = Compare | Not | And | Or


@dataclass(frozen=True)
class Token:
    kind: str  # number | name | keyword | op | punct | end
    text: str
    at: int


def _tokens(text: str) -> list[Token]:
    tokens, at = [], 0
    while at < len(text):
        if not text[at:].strip():
            break
        at += len(text[at:]) - len(text[at:].lstrip())
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise ConditionError(f"unexpected character {text[at]!r} at {at + 1}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        start = match.start(kind)
        if kind == "name" and value in KEYWORDS:
            kind = "keyword"
        tokens.append(Token(kind, value, start))
        at = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, expected: str) -> ConditionError:
        token = self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        return ConditionError(f"expected {expected} at {token.at + 1}, found {found}")

    def is_keyword(self, word: str) -> bool:
        return self.token.kind == "keyword" and self.token.text == word

    def parse(self) -> Node:
        node = self.expr()
        if self.token.kind != "end":
            raise self.fail("'and', 'or' or the end")
        return node

    def expr(self) -> Node:
        operands = [self.conjunction()]
        while self.is_keyword("or"):
            self.take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while self.is_keyword("and"):
            self.take()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Node:
        if self.is_keyword("not"):
            self.take()
            return Not(self.negation())
        return self.primary()

    def primary(self) -> Node:
        if self.token.text == "(" and self.token.kind == "punct":
            self.take()
            node = self.expr()
            if self.token.text != ")":
                raise self.fail("')'")
            self.take()
            return node
        left = self.value()
        if self.token.kind != "op":
            raise self.fail("a comparison (<, <=, >, >=, ==, !=)")
        op = self.take().text
        return Compare(left, op, self.value())

    def value(self) -> Value:
        token = self.token
        if token.kind == "punct" and token.text == "-":
            self.take()
            if self.token.kind != "number":
                raise self.fail("a number after '-'")
            return Number(-float(self.take().text))
        if token.kind == "number":
            return Number(float(self.take().text))
        if token.kind == "name":
            return Name(tuple(self.take().text.split(".")))
        raise self.fail("a number or a metric name")


@dataclass(frozen=True)
class Condition:
    """A parsed condition, kept with the text it was written as."""

    text: str
    root: Node

    def references(self) -> list[Reference]:
        """Every name the condition reads, in the order written."""
        return list(dict.fromkeys(_names(self.root)))

    def evaluate(self, lookup: Callable[[Reference], float]) -> bool:
        """True or false given each name's number; `lookup` raises for a name it cannot give."""
        return _evaluate(self.root, lookup)

    def render(self, name: Callable[[Reference], str]) -> str:
        """The condition in govaluate's syntax (Argo's `when`), each name written by `name`."""
        return _render(self.root, name, top=True)


def parse_condition(text: str) -> Condition:
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition is at most {MAX_LENGTH} characters")
    return Condition(text, _Parser(text).parse())


def _names(node: Node) -> Iterator[Reference]:
    match node:
        case Compare(left, _, right):
            for value in (left, right):
                if isinstance(value, Name):
                    yield value.reference
        case Not(operand):
            yield from _names(operand)
        case And(operands) | Or(operands):
            for operand in operands:
                yield from _names(operand)


def _number(value: Value, lookup: Callable[[Reference], float]) -> float:
    return value.value if isinstance(value, Number) else lookup(value.reference)


def _evaluate(node: Node, lookup: Callable[[Reference], float]) -> bool:
    match node:
        case Compare(left, op, right):
            return COMPARISONS[op](_number(left, lookup), _number(right, lookup))
        case Not(operand):
            return not _evaluate(operand, lookup)
        case And(operands):
            return all(_evaluate(operand, lookup) for operand in operands)
        case Or(operands):
            return any(_evaluate(operand, lookup) for operand in operands)
    raise TypeError(node)


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and math.isfinite(value) else repr(value)


def _render_value(value: Value, name: Callable[[Reference], str]) -> str:
    return _format_number(value.value) if isinstance(value, Number) else name(value.reference)


def _render(node: Node, name: Callable[[Reference], str], *, top: bool = False) -> str:
    match node:
        case Compare(left, op, right):
            return f"{_render_value(left, name)} {op} {_render_value(right, name)}"
        case Not(operand):
            return f"!({_render(operand, name, top=True)})"
        case And(operands) | Or(operands):
            joiner = " && " if isinstance(node, And) else " || "
            text = joiner.join(_render(operand, name) for operand in operands)
            return text if top else f"({text})"
    raise TypeError(node)
