"""String normalisation of answers: one canonical key per answer, so that equal keys mean equivalent.

Only rewrites that keep the mathematical value are applied (see docs/grading.md for the list). The key is
still LaTeX that math-verify can parse, so the worker compares keys, not raw text. Everything here is plain
string work with linear regexes: no sympy, no eval, bounded by MAX_NORMALISE_CHARS.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

MAX_NORMALISE_CHARS = 4096  # longer answers are only whitespace-collapsed and compared as strings
MAX_NUMBER_CHARS = 200  # exact arithmetic on longer digit strings is pointless and slow
MAX_DEPTH = 8  # nesting of tuples inside tuples that we still split
MAX_CACHED_CHARS = 256  # longer answers are normalised every time (65,536 cached keys stay under ~40 MB)

_OUTER_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_SPACING = re.compile(r"\\[,;: ]|\\q?quad(?![A-Za-z])|~|\\displaystyle(?![A-Za-z])")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])")
_RENAMES = (
    (re.compile(r"\\[dt]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![A-Za-z])"), r"\\binom"),
    (re.compile(r"\{bmatrix\}"), "{pmatrix}"),
    (re.compile(r"\\le(?![A-Za-z])|\\leqslant(?![A-Za-z])"), r"\\leq"),
    (re.compile(r"\\ge(?![A-Za-z])|\\geqslant(?![A-Za-z])"), r"\\geq"),
    (re.compile(r"\\lt(?![A-Za-z])"), "<"),  # MathJax's \lt and \gt are plain < and >
    (re.compile(r"\\gt(?![A-Za-z])"), ">"),
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![A-Za-z])")
_UNIT_TAIL = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?[23]\}?)?\s*")
_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
# "28 percent" = "28\\%"
_PERCENT_WORD = re.compile(r"([0-9}])\s*(?:percentage|percent|per\s?cent|pct)\.?$", re.IGNORECASE)
_LESS = r"(\\leq|<)"
_LEQ = "\\leq"
_CHAINED = re.compile(rf"([^<>=]+?){_LESS} ?([a-z]) ?{_LESS}([^<>=]+)")
_ONE_SIDED = re.compile(r"([a-z]) ?(\\geq|>|\\leq|<) ?([^<>=]+)")
_ONE_SIDED_FLIPPED = re.compile(r"([^<>=]+?) ?(\\geq|>|\\leq|<) ?([a-z])")
_FLIP = {"\\geq": "\\leq", ">": "<", "\\leq": "\\geq", "<": ">"}
MAX_INTERVAL_CHARS = 200  # longer relations stay as they are (the regexes run on short keys only)
LONG_DECIMAL_PLACES = 6
_LONG_DECIMAL = re.compile(r"[-+]?[0-9]*\.([0-9]{" + str(LONG_DECIMAL_PLACES) + ",})")
_THOUSANDS = re.compile(r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?[0-9A-Za-z]+\}?)?(?:=|\\in(?![A-Za-z]))([^=]+)$")
# Control words, removed before looking for letters that name variables ("\\frac", "\\pi" name none)
_COMMAND = re.compile(r"\\[A-Za-z]+")
# "-x>-1" is "x<1": a negated variable against a plain number
_NEGATED_SIDED = re.compile(r"-([a-z]) ?(\\geq|>|\\leq|<) ?([^<>=]+)")
# "(0;0;0)": semicolons separate the coordinates of a tuple that has no commas
_SEMICOLON_TUPLE = re.compile(r"\(([^(),;]*(?:;[^(),;]*)+)\)")
# "p=5,q=2": one solution written as named values (single-letter names)
_NAMED_VALUE = re.compile(r"([A-Za-z])=([^=,;]+)")
_CHOICE = re.compile(r"^\(([A-E])\)$")
_BASE = re.compile(r"^([0-9A-Z]+)_\{?([0-9]{1,2})\}?$")
_CONTROL_WORD_SPACE = re.compile(r"(\\[A-Za-z]+) (?=[A-Za-z])")
_SHORT_ARGUMENTS = (
    (re.compile(r"\\frac([0-9A-Za-z])([0-9A-Za-z])"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac([0-9A-Za-z])\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac(\{[^{}]*\})([0-9A-Za-z])"), r"\\frac\1{\2}"),
    (re.compile(r"\\sqrt([0-9A-Za-z])"), r"\\sqrt{\1}"),
)
_INTEGER = re.compile(r"[-+]?[0-9]+")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
_SLASH = re.compile(r"([-+]?[0-9]+)/([0-9]+)")
_FRAC = re.compile(r"([-+]?)\\frac\{([-+]?[0-9]+)\}\{([-+]?[0-9]+)\}")
_MIXED = re.compile(r"([-+]?)([0-9]+)\\frac\{([0-9]+)\}\{([0-9]+)\}")
_OPENERS = {"(": ")", "[": "]", "\\{": "\\}"}


def canonical(answer: str) -> str:
    """A normalised key of `answer`: "025" -> "25", "\\dfrac{1}{2}" -> "1/2", "x=5" -> "5". "" if empty."""
    if len(answer) > MAX_NORMALISE_CHARS:
        return " ".join(_strip_delimiters(answer.strip()).split())
    if len(answer) > MAX_CACHED_CHARS:  # the cache must not fill memory with long model text
        return _canonical(answer)
    return _canonical_cached(answer)


def _canonical(answer: str) -> str:
    return _structure(_clean(_strip_delimiters(answer.strip())), depth=0)


_canonical_cached = lru_cache(maxsize=65536)(_canonical)


def parse_number(key: str) -> Fraction | None:
    """The exact value of a plain number (integer, decimal, a/b, \\frac{a}{b}, mixed 1\\frac{4}{5}), else None."""
    if len(key) > MAX_NUMBER_CHARS or not key:
        return None
    if _INTEGER.fullmatch(key) or _DECIMAL.fullmatch(key):
        return Fraction(key)
    match = _SLASH.fullmatch(key)
    if match:
        return _ratio(Fraction(match[1]), Fraction(match[2]))
    match = _FRAC.fullmatch(key)
    if match:
        value = _ratio(Fraction(match[2]), Fraction(match[3]))
        return None if value is None else (-value if match[1] == "-" else value)
    match = _MIXED.fullmatch(key)
    if match:  # MATH writes mixed numbers as 1\frac{4}{5} = 9/5
        fraction = _ratio(Fraction(match[3]), Fraction(match[4]))
        value = None if fraction is None else Fraction(match[2]) + fraction
        return None if value is None else (-value if match[1] == "-" else value)
    return None


def decimal_places(key: str) -> int | None:
    """The number of decimal places of a long decimal key ("0.0833333333333333": 16), else None."""
    match = _LONG_DECIMAL.fullmatch(key)
    return len(match.group(1)) if match else None


def format_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def split_group(key: str) -> tuple[str, list[str], str] | None:
    """(opener, elements, closer) when `key` is a bracketed group "(a,b]" / "\\{a,b\\}" or a bare list "a,b"
    with at least two top-level elements; None otherwise."""
    for opener, closer in (("\\{", "\\}"), ("(", ")"), ("(", "]"), ("[", "]"), ("[", ")")):
        if key.startswith(opener) and key.endswith(closer) and _closes_at_end(key, len(opener)):
            inner = _top_level_split(key[len(opener) : -len(closer)])
            if inner is not None and len(inner) >= 2:
                return opener, inner, closer
    parts = _top_level_split(key)
    if parts is not None and len(parts) >= 2:
        return "", parts, ""
    return None


def _ratio(numerator: Fraction, denominator: Fraction) -> Fraction | None:
    return None if denominator == 0 else numerator / denominator


def _strip_delimiters(text: str) -> str:
    for left, right in _OUTER_DELIMITERS:
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            return text[len(left) : -len(right)].strip()
    return text


def _clean(text: str) -> str:
    """Spacing, sizing, aliases, degrees, units, text wrappers, currency and percent signs, separators."""
    text = text.replace("\x00", "").replace("\x01", "").replace("\u2212", "-")  # U+2212: the minus sign
    text = text.replace("\\\\", "\x01")  # a row break `\\` is one token: `\\ ` is not the space `\ `
    text = re.sub(r"\\!\s*", "", text)
    text = _SPACING.sub(" ", text)
    text = _SIZING.sub("", text)
    for pattern, replacement in _RENAMES:
        text = pattern.sub(replacement, text)
    text = _DEGREES.sub("", text)
    text = text.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").strip()
    text = _PERCENT_WORD.sub(r"\1", _drop_unit(text))
    for _ in range(4):  # nested \text{\textbf{..}}: a few rounds, each removes one layer
        text, count = _TEXT.subn(r"\1", text)
        if not count:
            break
    text = text.strip()
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    text = _CONTROL_WORD_SPACE.sub("\\1\x00", " ".join(text.split()))
    text = text.replace(" ", "").replace("\x00", " ")
    for pattern, replacement in _SHORT_ARGUMENTS:
        text = pattern.sub(replacement, text)
    if len(text) > 1 and text.endswith(".") and not text.endswith("\\."):
        text = text[:-1]
    if len(text) > 1 and text.endswith("\\"):  # "185\\": a lone backslash at the end escapes nothing
        text = text[:-1]
    return text.replace("\x01", "\\\\")


def _drop_unit(text: str) -> str:
    """ "864 \\mbox{ inches}^2" -> "864": a trailing word in \\text after a number is a unit."""
    start = max(text.rfind("\\text"), text.rfind("\\mbox"), text.rfind("\\mathrm"))
    if start > 0 and _UNIT_TAIL.fullmatch(text, start) and re.search(r"[0-9]", text[:start]):
        return text[:start].strip()
    return text


def as_interval(text: str) -> str | None:
    """A one-variable inequality as the interval it describes, else None: "-2\\leq x\\leq7" -> "[-2,7]",
    "x>5" -> "(5,\\infty)", "x\\leq3" -> "(-\\infty,3]". Bounds must not hold the variable or a relation."""
    text = text.replace(">=", "\\geq").replace("<=", "\\leq").replace("≥", "\\geq").replace("≤", "\\leq")
    negated = _NEGATED_SIDED.fullmatch(text)
    if negated and parse_number(negated.group(3).strip()) is not None:  # "-x>-1" is "x<1"
        bound = negated.group(3).strip()
        text = negated.group(1) + _FLIP[negated.group(2)] + (bound[1:] if bound.startswith("-") else "-" + bound)
    match = _CHAINED.fullmatch(text)
    if match:
        low, low_relation, variable, high_relation, high = (part.strip() for part in match.groups())
        if _bounds_are_free_of(variable, low, high):
            opener = "[" if low_relation == _LEQ else "("
            closer = "]" if high_relation == _LEQ else ")"
            return f"{opener}{low},{high}{closer}"
        return None
    match = _ONE_SIDED.fullmatch(text)
    if match:
        variable, relation, bound = (part.strip() for part in match.groups())
    else:
        match = _ONE_SIDED_FLIPPED.fullmatch(text)
        if not match:
            return None
        bound, relation, variable = (part.strip() for part in match.groups())
        relation = _FLIP[relation]
    if not _bounds_are_free_of(variable, bound):
        return None
    return {
        "\\geq": f"[{bound},\\infty)",
        ">": f"({bound},\\infty)",
        "\\leq": f"(-\\infty,{bound}]",
        "<": f"(-\\infty,{bound})",
    }[relation]


def _bounds_are_free_of(variable: str, *bounds: str) -> bool:
    return all(
        bound and not re.search(rf"(?<![A-Za-z\\]){variable}(?![A-Za-z])|[<>=]|\\[lg]eq|\\in", bound)
        for bound in bounds
    )


def _structure(text: str, depth: int) -> str:
    """Inequalities as intervals, assignment, choice letters, bases, numbers, then groups element by element."""
    interval = as_interval(text) if depth == 0 and len(text) <= MAX_INTERVAL_CHARS else None
    if interval is not None:
        text = interval
    if depth == 0:
        text = _value_of_assignment(_semicolon_groups(text))
    choice = _CHOICE.match(text)
    if choice:
        return choice.group(1)
    text = _strip_base(text)
    value = parse_number(text)
    if value is not None:
        # a long decimal keeps its digits: how many it has says how it was rounded (0.0833333333333333 is
        # 1/12 to 16 places, not the fraction 833333333333333/10^16), and math-verify reads it as a float
        return text.lstrip("+") if _LONG_DECIMAL.fullmatch(text) else format_number(value)
    if depth >= MAX_DEPTH:
        return text
    if text.startswith("(") and text.endswith(")") and _closes_at_end(text, 1):
        inner = _top_level_split(text[1:-1])
        if inner is not None and len(inner) == 1:  # "(3)" is 3
            return _structure(inner[0], depth + 1)
    group = split_group(text)
    if group is None:
        return text
    opener, elements, closer = group
    keys = [_structure(element, depth + 1) for element in elements]
    if opener in ("", "\\{"):  # a bare list or a set: "all solutions", order does not matter
        keys.sort()
    return opener + ",".join(keys) + closer


def _value_of_assignment(text: str) -> str:
    """ "x=5" -> "5" ("x=1,y=2" keeps its names); "y=-\\frac12x+\\frac34" stays: with a variable on the
    right it is an equation (a line), not the value of y, and math-verify compares it as one."""
    assignment = _ASSIGNMENT.match(text)
    if not assignment or not assignment.group(1):
        return text
    value = assignment.group(1)
    return text if re.search(r"[A-Za-z]", _COMMAND.sub("", value)) else value


def _semicolon_groups(text: str) -> str:
    """Semicolons as separators: "(0;-2;6)" -> "(0,-2,6)" (a tuple with no commas), and solutions given as
    named values "p=5,q=2;p=7,q=2" -> "(5,2),(7,2)" (each in the alphabetical order of its names)."""
    if ";" not in text:
        return text
    text = _SEMICOLON_TUPLE.sub(lambda match: "(" + match.group(1).replace(";", ",") + ")", text)
    solutions = []
    for group in text.split(";"):
        pairs = [_NAMED_VALUE.fullmatch(part) for part in group.split(",")]
        if len(pairs) < 2 or not all(pairs) or len({pair.group(1) for pair in pairs}) != len(pairs):
            return text
        solutions.append("(" + ",".join(pair.group(2) for pair in sorted(pairs, key=lambda p: p.group(1))) + ")")
    return ",".join(solutions) if len(solutions) >= 2 else text


def _strip_base(text: str) -> str:
    """ "52_8" -> "52" when every digit is valid in that base (the question names the base)."""
    match = _BASE.match(text)
    if not match:
        return text
    base = int(match.group(2))
    digits = match.group(1)
    if 2 <= base <= 36 and all(int(digit, 36) < base for digit in digits):
        return digits
    return text


def _closes_at_end(text: str, open_length: int) -> bool:
    """Whether the bracket opened at the start of `text` is closed by its last character."""
    depth = 0
    index = 0
    end = len(text) - 1
    while index <= end:
        char = text[index]
        if char == "\\" and index + 1 <= end and text[index + 1] in "{}":
            char = text[index : index + 2]
            index += 1
        if char in ("(", "[", "{", "\\{"):
            depth += 1
        elif char in (")", "]", "}", "\\}"):
            depth -= 1
            if depth == 0 and index < end:
                return False
        index += 1
    return depth == 0


def _top_level_split(text: str) -> list[str] | None:
    """Split on commas outside any bracket; None when brackets do not balance or an element is empty."""
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":  # an escaped brace is a bracket (a set), any other escape is not
            char = text[index : index + 2]
            index += 1
        if char in ("(", "[", "{", "\\{"):
            depth += 1
        elif char in (")", "]", "}", "\\}"):
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    if depth != 0 or any(not part for part in parts):
        return None
    return parts
