"""Final answers written without a box: after an answer phrase, or the last formula or number of the text.

These are the conventions of math-verify's extraction (its "final answer is" / "answer:" anchors, then plain
LaTeX and numbers, the rightmost first), re-done with linear scans: model text is untrusted, so nothing here
backtracks over the text or recurses, and every span read is capped.

- `answer_after_phrase` ("answer_is" fallback): the answer after the last "answer is" / "answer:" / "Answer"
  before a formula, in English, French, Spanish, German and Chinese, or after GSM8K's "####". A display
  formula right after the phrase is read across lines ("Answer \\[ \\n 9 \\n \\]"); a sentence is read for
  the math in it ("Final Answer: The largest $n$ is 34." -> "34").
- `last_math` ("last_math" fallback): the formula ($...$, $$...$$, \\(...\\), \\[...\\], a bare \\frac{1}{2})
  or number that ends last in the text ("Therefore $x \\geq 5$ is the solution.", "...总共有99颗弹珠。").
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import TypeVar

_T = TypeVar("_T")

_ANSWER_LINE_MAX = 200
_DISPLAY_MAX = 1000  # a display formula after "Answer" may span lines, up to this many characters
_FORMULA_MAX = 1000  # longer delimited spans are not one final answer
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_PHRASE = re.compile(
    r"(?:answer(?:\s*(?:is|:|=)[ \t]*:?|(?=[ \t]*(?:\$|\\\(|\\\[)))"  # "answer is", "Answer:", "Answer \\( 9 \\)"
    r"|r[ée]ponse(?:\s+finale)?\s*(?:est|:)|respuesta(?:\s+final)?\s*(?:es|:)|antwort\s*(?:ist|:)"
    r"|(?:最终)?答案\s*(?:是|为|為|:|：)|####)[ \t]*",
    re.IGNORECASE,
)
# A sentence ends at a full stop followed by a space (not "4.5"), or at a CJK/Devanagari full stop.
_SENTENCE_END = re.compile(r"\.(?:\s|$)|[。।]")
# The verb before the value in a sentence: "the largest $n$ is 34", "每份应该是 (\\frac{2}{5}) 吨".
_COPULA = re.compile(r"\s(?:is|are|was|equals|est|es|ist|sont)\s|\s=\s|是|为|為|等于")
# Prose: two words in a row (any script), or a run of CJK characters (written without spaces).
_PROSE = re.compile(r"[^\W\d_]{2,}[ \t]+[^\W\d_]{2,}|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]{2,}")
_COMMAND_OR_ARGUMENT = re.compile(r"\\[A-Za-z]+(?:\{[A-Za-z*]*\})?")
# A number standing alone: not part of a word, a subscript, a power or a brace group ("x2", "x_1", "{3}").
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.\\^{}])-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?:/[0-9]+)?"
    r"(?:[ \t]*(?:\\?%|percent(?:age)?(?![A-Za-z])))?"
)
# Letters right after a number that are a unit ("4 kg" is 4, "1,000.99m²"); any other letter makes it
# algebra ("2x" is not 2).
_UNIT_AFTER = re.compile(r"(?:cm|mm|km|kg|mg|ml|min)(?![A-Za-z])|[A-Za-z]{1,2}[²³]")
_BARE_FRACTION = re.compile(r"-?\\[dt]?frac\{-?[0-9]+(?:\.[0-9]+)?\}\{-?[0-9]+(?:\.[0-9]+)?\}")
_FORMULA_OPENER = re.compile(r"(?<!\\)(?:\$\$|\$|\\\(|\\\[)")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_EQUALS = re.compile(r"(?<![<>!\\])=")
_ARITHMETIC = re.compile(r"[0-9\s+\-*/×÷.,()]+")


def strip_math(answer: str) -> str | None:
    """Trim whitespace and one pair of math delimiters around the whole answer; "" becomes None."""
    answer = answer.strip()
    for left, right in _MATH_DELIMITERS:
        if len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            answer = answer[len(left) : -len(right)].strip()
            break
    return answer or None


def answer_after_phrase(text: str) -> str | None:
    """The answer after the last answer phrase: a display formula right after it, else the rest of its
    sentence (at most 200 characters of one line), read for the math in it when it is prose."""
    last = _last(_PHRASE.finditer(text))
    if last is None:
        return None
    display = _display_formula(text, last.end())
    if display is not None:
        return display
    line = text[last.end() : last.end() + _ANSWER_LINE_MAX].split("\n", 1)[0]
    line = _SENTENCE_END.split(line, 1)[0]  # "is 5. Also 9" -> "5"; "is 4.5" keeps its decimal point
    segment = strip_math(line.strip().strip("*").strip())
    return None if segment is None else _read_segment(segment)


def last_math(text: str) -> str | None:
    """The formula or number that ends last in `text` (a formula wins a tie: it holds the number)."""
    formula = _last_formula(text)
    number = _last_number(text)
    fraction = _last(_BARE_FRACTION.finditer(text))
    candidates = [c for c in (formula, number) if c is not None]
    if fraction is not None:
        candidates.append((fraction.start(), fraction.end(), fraction.group(0)))
    if not candidates:
        return None
    start, end, answer = max(candidates, key=lambda c: (c[1], -c[0]))
    return _last_side(answer)


def _display_formula(text: str, start: int) -> str | None:
    """The content of a `$$...$$` / `\\[...\\]` starting at `start` (line breaks allowed), else None."""
    for opener in ("$$", "\\["):
        if text.startswith(opener, start):
            close = text.find(_CLOSER[opener], start + len(opener), start + _DISPLAY_MAX)
            if close != -1:
                return strip_math(text[start + len(opener) : close])
    return None


def _read_segment(segment: str) -> str:
    """A formula or a short answer as it is ("(35 + 70 = 105)" as its result); in a sentence, the first
    formula or number after its last verb ("The largest $n$ is 34" -> "34"), else the first in it."""
    if not is_prose(segment):
        return _last_side(segment)
    copula = _last(_COPULA.finditer(segment))
    parts = ([segment[copula.end() :]] if copula is not None else []) + [segment]
    for part in parts:
        found = _first_math(part)
        if found is not None:
            return found
    return segment


def is_prose(text: str) -> bool:
    """Whether `text` holds words (two in a row, or CJK), not counting LaTeX commands and formulas."""
    bare = _COMMAND_OR_ARGUMENT.sub(" ", text)
    return _PROSE.search(bare) is not None


def _first_math(text: str) -> str | None:
    """The formula, bare fraction or number that starts first in `text`."""
    candidates = []
    formula = next(_formulas(text), None)
    if formula is not None:
        candidates.append(formula)
    for pattern in (_BARE_FRACTION, _NUMBER):
        for match in pattern.finditer(text):
            if pattern is _BARE_FRACTION or _stands_alone(text, match):
                candidates.append((match.start(), match.end(), match.group(0)))
                break
    if not candidates:
        return None
    return _last_side(min(candidates, key=lambda c: (c[0], -c[1]))[2])


def _last_formula(text: str) -> tuple[int, int, str] | None:
    return _last(_formulas(text))


def _last(items: Iterable[_T]) -> _T | None:
    """The last item of an iterator, in constant memory."""
    tail = deque(items, maxlen=1)
    return tail[0] if tail else None


def _formulas(text: str):
    """(start, end, content) of each delimited formula that is math, not prose, left to right.

    Linear: each search for a closer starts where the last one ended, and a closer that is missing once is
    missing for every later opener of its kind."""
    position = 0
    missing: set[str] = set()
    while True:
        opener = _FORMULA_OPENER.search(text, position)
        if opener is None:
            return
        kind = opener.group(0)
        position = opener.end()
        if kind in missing:
            continue
        close = text.find(_CLOSER[kind], position)
        if close == -1:
            missing.add(kind)
            continue
        content = text[position:close].strip()
        if kind == "$" and "\n" in content:
            continue  # inline math never spans lines: that "$" was a currency sign
        position = close + len(_CLOSER[kind])
        if content and len(content) <= _FORMULA_MAX and not is_prose(content):
            yield opener.start(), position, content


def _last_number(text: str) -> tuple[int, int, str] | None:
    last = None
    for match in _NUMBER.finditer(text):
        if _stands_alone(text, match):
            last = match
    return None if last is None else (last.start(), last.end(), last.group(0))


def _stands_alone(text: str, match: re.Match[str]) -> bool:
    """A number not glued to a variable: "2x" is algebra, "4 kg", "99颗" and "1,000.99m²" are numbers."""
    end = match.end()
    if end >= len(text) or not ("A" <= text[end] <= "Z" or "a" <= text[end] <= "z"):
        return True
    return _UNIT_AFTER.match(text, end) is not None


def _last_side(formula: str) -> str:
    """The value a chain of equalities ends with: "x = \\frac{24.08}{3.44} = 7" -> "7", and a worked sum
    "(35 + 70 = 105)" -> "105"; "x = 5" (an assignment) and "a=1, b=2" (a list) stay as they are."""
    if "," in formula or ";" in formula:
        return formula
    sides = _EQUALS.split(formula)
    if len(sides) >= 3 or (len(sides) == 2 and _ARITHMETIC.fullmatch(sides[0].strip("( "))):
        last = sides[-1].strip()
        if last.count(")") > last.count("("):  # the ")" of "(35 + 70 = 105)"
            last = last[:-1].strip() if last.endswith(")") else last
        return last or formula
    return formula
