"""Fuzzed answers for tests/test_grader_fuzz.py: LaTeX junk, near-misses of golds of every kind, and the small
reader (an exact evaluator of well-formed answers, no eval) that says which junk may truly equal a gold."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from fractions import Fraction

JUNK_SHARE = 0.6  # of the answers graded; the rest are near-misses
GOLDS = {
    "integer": ["1", "0", "7", "42", "100", "2025"],
    "negative": ["-3", "-128"],
    "fraction": ["\\frac{3}{4}", "-\\frac{5}{2}", "\\frac{14}{3}", "7/3"],
    "decimal": ["0.5", "0.50", "3.14", "0.125", "12.75"],
    "sqrt": ["2\\sqrt{3}", "\\frac{\\sqrt{5}}{2}", "3+\\sqrt{2}", "\\sqrt{7}"],
    "pi": ["2\\pi", "\\frac{\\pi}{3}", "4-\\pi", "\\pi^2"],
    "interval": ["(1,3]", "[-2,5)", "[0,\\infty)", "(-\\infty,4)", "[2,7]"],
    "tuple": ["(1,2)", "(3,-4,5)", "(\\frac{1}{2},7)", "(2,\\pi)"],
    "set": ["\\{1,2,3\\}", "\\{-1,4\\}"],
    "list": ["-2,5", "1,3,8"],
    "matrix": ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}2\\\\-1\\\\5\\end{pmatrix}"],
    "equation": ["y=2x+3", "x^2+y^2=25", "x+2y=7"],
    "text": ["\\text{Evelyn}", "\\text{(C)}", "\\text{odd}"],
}
JUNK_GOLDS = ("1",) * 6 + ("0", "2", "-1", "\\frac{1}{2}", "\\pi", "x+1", "(1,2)", "\\{1,2\\}", "[0,1]", "y=2x+3")
JUNK_TOKENS = (
    list("0123456789")
    + list("xyanei")
    + list("+-^_{}()[],.!/=<")
    + ["%", "$", " ", "\\{", "\\}"]
    + [
        "\\frac",
        "\\sqrt",
        "\\infty",
        "\\pi",
        "\\cdot",
        "\\times",
        "\\boxed{",
        "\\text{",
        "\\left(",
        "\\right)",
        "\\cup",
        "\\leq",
        "\\in",
        "\\mathrm{",
    ]
)

# ---------------------------------------------------------------------------------------------------------
# The reader that decides which junk may truly equal a gold: recursive descent over well-formed answers, exact
# Fractions, no eval. It first drops what the grader documents as no-ops (docs/grading.md, "The normaliser"):
# `$` and `%` anywhere, `\left`/`\right`, spaces, one trailing period.
_TOKEN = re.compile(r"\\[A-Za-z]+|\\[{}]|\\\\|.", re.DOTALL)
OPAQUE = None  # well-formed, but no rational value this reader computes (symbols, lists, relations, 2\pi)
_SYMBOLS = ("\\pi", "\\infty")
_WRAPPERS = ("\\boxed", "\\text", "\\mathrm")
_KNOWN = {token for token in JUNK_TOKENS if token.startswith("\\")} | {
    "\\boxed",
    "\\text",
    "\\mathrm",
    "\\left",
    "\\right",
}
_BINARY = ("+", "-", "\\cdot", "\\times", "/", "\\cup")
_RELATIONS = ("=", "<", "\\leq", "\\in")
_CLOSERS = {"(": (")", "]"), "[": ("]", ")"), "{": ("}",), "\\{": ("\\}",)}
Value = Fraction | None


def _unknown_command(token: str) -> bool:
    return token.startswith("\\") and token[1:].isalpha() and token not in _KNOWN


class Rejected(ValueError):
    """Not a well-formed answer: junk."""


def evaluate(text: str) -> Value:
    """The exact value of a well-formed answer, None (OPAQUE) when it has none here; Rejected for junk."""
    return _Reader(text).answer()


def _apply(operator: str, left: Value, right: Value) -> Value:
    if left is None or right is None or operator == "\\cup":
        return OPAQUE
    if operator in ("+", "-"):
        return left + right if operator == "+" else left - right
    if operator == "/":
        return left / right if right else OPAQUE
    return left * right


def _power(base: Value, exponent: Value) -> Value:
    if base is None or exponent is None or exponent.denominator != 1 or abs(exponent) > 64:
        return OPAQUE
    if base == 0 and exponent <= 0 or max(abs(base.numerator), base.denominator) > 10**6:
        return OPAQUE
    return base ** int(exponent)


def _factorial(value: Value) -> Value:
    ok = value is not None and value.denominator == 1 and 0 <= value <= 20
    return Fraction(math.factorial(int(value))) if ok else OPAQUE


def _sqrt(value: Value) -> Value:
    if value is None or value < 0:
        return OPAQUE
    roots = (math.isqrt(value.numerator), math.isqrt(value.denominator))
    return Fraction(*roots) if roots[0] ** 2 == value.numerator and roots[1] ** 2 == value.denominator else OPAQUE


class _Reader:
    def __init__(self, text: str) -> None:
        text = re.sub(r"\\(?:left|right)(?![A-Za-z])|[$%\s]", "", text)
        self.tokens = _TOKEN.findall(text[:-1] if len(text) > 1 and text.endswith(".") else text)
        self.at = 0

    def peek(self, ahead: int = 0) -> str | None:
        return self.tokens[self.at + ahead] if self.at + ahead < len(self.tokens) else None

    def take(self, *expected: str) -> str:
        token = self.peek()
        if token is None or (expected and token not in expected):
            raise Rejected(f"expected {expected or 'more'} at token {self.at}, got {token!r}")
        self.at += 1
        return token

    def answer(self) -> Value:
        value, _ = self.items()
        if self.peek() is not None:
            raise Rejected(f"left over: {''.join(self.tokens[self.at :])!r}")
        return value

    def items(self) -> tuple[Value, int]:
        """A comma list of relation chains: (its value if it has one item, the number of items)."""
        values = [self.relation()]
        while self.peek() == ",":
            self.take(",")
            values.append(self.relation())
        return (values[0] if len(values) == 1 else OPAQUE), len(values)

    def relation(self) -> Value:
        value = self.sum()
        while self.peek() in _RELATIONS:
            self.take()
            self.sum()
            value = OPAQUE
        return value

    def sum(self) -> Value:
        value = self.product()
        while self.peek() in _BINARY:
            operator = self.take()
            value = _apply(operator, value, self.product())
        return value

    def product(self) -> Value:
        if self.peek() in ("+", "-"):  # unary signs
            sign = self.take()
            value = self.product()
            return _apply("-", Fraction(0), value) if sign == "-" else value
        value = self.postfix()
        while self._operand_starts():
            self.postfix()  # juxtaposition (2\pi, 2\frac12 a mixed number?): no value read
            value = OPAQUE
        return value

    def _operand_starts(self) -> bool:
        token, previous = self.peek(), self.tokens[self.at - 1]
        decimal = token == "." and (self.peek(1) or "").isdigit() and not (previous.isdigit() or previous == ".")
        return token is not None and (
            decimal  # e.0 is e times 0.0, as math-verify reads it; 1..2 stays junk
            or token.isalnum()
            or token in ("(", "[", "{", "\\{", "\\frac", "\\sqrt")
            or token in _SYMBOLS
            or token in _WRAPPERS
            or _unknown_command(token)
        )

    def postfix(self) -> Value:
        value = self.primary()
        while self.peek() in ("!", "^", "_"):
            operator = self.take()
            if operator == "!":
                value = OPAQUE if self.peek() == "!" else _factorial(value)
            elif operator == "^":
                value = _power(value, self.argument())
            else:
                self.argument()  # a subscript or a base (52_8): no value read
                value = OPAQUE
        return value

    def primary(self) -> Value:
        token = self.take()
        if token.isdigit() or token == ".":
            return self._number(token)
        if token.isalpha() or token in _SYMBOLS:
            return OPAQUE
        if _unknown_command(token):
            return OPAQUE  # a control word of its own ("\\cdoty", "\\sqrtx"): math-verify reads it as a symbol
        if token in _CLOSERS:
            return self._group(token)
        if token == "\\frac":
            numerator = self.argument()
            return _apply("/", numerator, self.argument())
        if token == "\\sqrt":
            return _sqrt(self.argument())
        if token in _WRAPPERS:
            self.take("{")
            return self._group("{")
        raise Rejected(f"unexpected {token!r}")

    def _number(self, first: str) -> Value:
        digits = [first]
        while self.peek() is not None and (self.peek().isdigit() or self.peek() == "." and "." not in digits):
            digits.append(self.take())
        text = "".join(digits)
        if not any(c.isdigit() for c in text):
            raise Rejected("a lone period")
        whole, _, decimals = text.partition(".")
        return Fraction(int(whole or "0")) + Fraction(int(decimals or "0"), 10 ** len(decimals))

    def _group(self, opener: str) -> Value:
        value, count = self.items()
        closer = self.take(*_CLOSERS[opener])
        if count == 1 and (opener, closer) in (("(", "]"), ("[", ")")):
            raise Rejected(f"{opener}...{closer} around one item")  # half an interval; [1] and \{1\} are not junk
        return value if (opener, closer) in (("(", ")"), ("{", "}")) else OPAQUE

    def argument(self) -> Value:
        """Of \\frac, \\sqrt, ^ and _: a braced group or a single digit, letter or symbol, as TeX reads it."""
        token = self.take()
        if token == "{":
            return self._group("{")
        if token.isdigit():
            return Fraction(int(token))
        if token.isalpha() or token in _SYMBOLS:
            return OPAQUE
        raise Rejected(f"argument {token!r}")


# ---------------------------------------------------------------------------------------------------------
# Near-misses. Each mutation returns an answer unequal to its gold by construction, or None where it does not
# apply. The golds above avoid what would defeat a guard (no 1^n, no zero numerator, no "+0" term).
_ELEMENT_START = ("(", "[", ",", "\\{", "&", "\\\\", "=", "{pmatrix}")
_ZERO = re.compile(r"0(?:\.0*)?(?![0-9.])")  # -0 and +0 are 0: never flip the sign of a zero


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` outside brackets and braces."""
    parts, depth, start, index = [], 0, 0, 0
    while index < len(text):
        if text.startswith(separator, index) and depth == 0:
            parts.append(text[start:index])
            index += len(separator)
            start = index
            continue
        depth += text[index] in "([{"
        depth -= text[index] in ")]}"
        index += 1
    return [*parts, text[start:]]


def _group(gold: str) -> tuple[str, list[str], str]:
    """(opener, items, closer) of a tuple, interval, set or bare list gold."""
    for opener, closer in (("\\{", "\\}"), ("(", ")"), ("(", "]"), ("[", "]"), ("[", ")")):
        if gold.startswith(opener) and gold.endswith(closer):
            return opener, _split(gold[len(opener) : -len(closer)], ","), closer
    return "", _split(gold, ","), ""


def _matrix(gold: str) -> list[list[str]]:
    body = gold.removeprefix("\\begin{pmatrix}").removesuffix("\\end{pmatrix}")
    return [row.split("&") for row in body.split("\\\\")]


def _from_matrix(rows: list[list[str]]) -> str:
    return "\\begin{pmatrix}" + "\\\\".join("&".join(row) for row in rows) + "\\end{pmatrix}"


def change_digit(gold: str, rng: random.Random) -> str | None:
    """One digit becomes another: a different number wherever it stands (no golds with 1^n or 0/n)."""
    positions = [i for i, char in enumerate(gold) if char.isdigit()]
    if not positions:
        return None
    i = rng.choice(positions)
    return gold[:i] + rng.choice([d for d in "0123456789" if d != gold[i]]) + gold[i + 1 :]


def flip_sign(gold: str, rng: random.Random) -> str | None:
    """Negate one element or term: drop a unary minus, add one before a nonzero element, or swap a binary
    + and -. Never next to infinity (the sign of an infinite end is a different question) nor on a zero."""
    edits = []
    for i, char in enumerate(gold):
        starts = gold[:i].endswith(_ELEMENT_START) or (i == 0 and not gold.startswith(("(", "[", "\\{", "\\b")))
        rest = gold[i + 1 :] if char in "+-" else gold[i:]
        if rest.startswith("\\infty") or _ZERO.match(rest):
            continue
        if starts and char == "-":
            edits.append(gold[:i] + gold[i + 1 :])
        elif starts and char != "+":
            edits.append(gold[:i] + "-" + gold[i:])
        elif char in "+-" and i > 0 and (gold[i - 1].isalnum() or gold[i - 1] in ")}"):
            edits.append(gold[:i] + ("-" if char == "+" else "+") + gold[i + 1 :])
    return rng.choice(edits) if edits else None


def swap_entries(gold: str, rng: random.Random) -> str | None:
    """Two different entries of an ordered group (tuple, interval ends, matrix) change places."""
    if gold.startswith("\\begin"):
        rows = _matrix(gold)
        cells = [(r, c) for r, row in enumerate(rows) for c in range(len(row))]
        pairs = [(a, b) for a in cells for b in cells if a < b and rows[a[0]][a[1]] != rows[b[0]][b[1]]]
        (r1, c1), (r2, c2) = rng.choice(pairs)
        rows[r1][c1], rows[r2][c2] = rows[r2][c2], rows[r1][c1]
        return _from_matrix(rows)
    opener, items, closer = _group(gold)
    pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items)) if items[i] != items[j]]
    i, j = rng.choice(pairs)
    items[i], items[j] = items[j], items[i]
    return opener + ",".join(items) + closer


def change_bracket(gold: str, rng: random.Random) -> str | None:
    """An interval's end turns from open to closed or back; never at an infinite end (ambiguous there)."""
    opener, items, closer = _group(gold)
    sides = [side for side, item in ((0, items[0]), (1, items[-1])) if "\\infty" not in item]
    if not sides:
        return None
    if rng.choice(sides) == 0:
        return {"(": "[", "[": "("}[opener] + ",".join(items) + closer
    return opener + ",".join(items) + {")": "]", "]": ")"}[closer]


def drop_element(gold: str, rng: random.Random) -> str | None:
    """One element of a tuple, set or list (one row of a matrix) goes missing."""
    if gold.startswith("\\begin"):
        rows = _matrix(gold)
        rows.pop(rng.randrange(len(rows)))
        return _from_matrix(rows)
    opener, items, closer = _group(gold)
    items.pop(rng.randrange(len(items)))
    return opener + ",".join(items) + closer


def change_letter(gold: str, rng: random.Random) -> str | None:
    """One letter of a word (not of a command) becomes another, different in either case."""
    inside = gold.removeprefix("\\text{")
    offset = len(gold) - len(inside)
    i = offset + rng.choice([i for i, char in enumerate(inside) if char.isalpha()])
    letter = rng.choice([c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c != gold[i].upper()])
    return gold[:i] + (letter if gold[i].isupper() else letter.lower()) + gold[i + 1 :]


_NUMBERS = (change_digit, flip_sign)
MUTATIONS: dict[str, tuple[Callable[[str, random.Random], str | None], ...]] = {
    **{kind: _NUMBERS for kind in ("integer", "negative", "fraction", "decimal", "sqrt", "pi", "equation")},
    "interval": (*_NUMBERS, swap_entries, change_bracket),
    "tuple": (*_NUMBERS, swap_entries, drop_element),
    "set": (*_NUMBERS, drop_element),
    "list": (*_NUMBERS, drop_element),
    "matrix": (*_NUMBERS, swap_entries, drop_element),
    "text": (change_letter,),
}
KIND_OF = {gold: kind for kind, golds in GOLDS.items() for gold in golds}


def near_miss(gold: str, rng: random.Random) -> tuple[str, str] | None:
    """(mutation name, answer) for `gold`, or None where the chosen mutation does not apply."""
    mutation = rng.choice(MUTATIONS[KIND_OF[gold]])
    answer = mutation(gold, rng)
    if answer is None:
        return None
    assert answer != gold, (mutation.__name__, gold)
    try:  # by value too, wherever the reader evaluates both sides
        values = evaluate(answer), evaluate(gold)
    except Rejected:
        values = (None, None)
    assert None in values or values[0] != values[1], (mutation.__name__, gold, answer)
    return mutation.__name__, answer


def junk(rng: random.Random) -> str:
    return "".join(rng.choice(JUNK_TOKENS) for _ in range(rng.randint(1, 12)))


def junk_must_differ(answer: str, gold: str) -> bool | None:
    """True when `answer` cannot equal `gold`: the reader rejects it, or it has a rational value and the gold
    another (or none: a rational number never equals pi, x+1, a tuple or an interval). None: cannot tell."""
    try:
        value = evaluate(answer)
    except Rejected:
        return True
    if value is None:
        return None
    return value != evaluate(gold) or None  # a true equality ("0!" against 1) is no false positive either
