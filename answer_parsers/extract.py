"""Find the final answer in model text: the last `\\boxed{...}`, then optional fallbacks.

Model text is untrusted: every scan here is linear in the text length and iterative (no recursion), so
10,000 nested braces or a 1 MB completion cost milliseconds, never a stack overflow.

Fallbacks, tried in the order given and only when no box holds an answer:
- "answer_is": the text after the last "answer is" / "answer:" / "answer =" (e.g. "The final answer is
  $42$.", "Final Answer: The final answer is $X$. I hope it is correct.") or after "Answer" right before a
  formula ("Answer \\( 9 \\)"), up to the end of that sentence or line, at most 200 characters.
Chat-template tokens (`<|im_end|>`, `</s>`) are removed first: a completion may end with one.
- "last_number": the last plain number in the text (ASCII digits, optional sign, decimal part and
  thousands commas). Off by default: it turns `\\frac{14}{3}` into `3`, TTRL's grader defect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.errors import ConfigError

FALLBACKS = ("answer_is", "last_number")

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# What may stand between two boxes of one answer: separators and math delimiters, never words or formulas.
_BOX_SEPARATOR = re.compile(r"(?:\s|,|;|\$|\\[()\[\]]|\band\b|\bor\b|&|\\quad|\\qquad|\\text\{\s*(?:and|or|,)?\s*\})*")
# "answer is", "answer:", "answer =" or "Answer" right before a formula ("Answer \\( 9 \\)", "Answer $9$")
_ANSWER_IS = re.compile(r"answer(?:\s*(?:is|:|=)[ \t]*:?|(?=[ \t]*(?:\$|\\\(|\\\[)))[ \t]*", re.IGNORECASE)
# Chat-template tokens a completion may end with ("... is 2/3.<|im_end|>"): never part of an answer.
_CHAT_TOKEN = re.compile(r"<\|[A-Za-z_]{1,40}\|>|</s>")
_ANSWER_LINE_MAX = 200
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# ASCII only: `\d` would also match fullwidth and other Unicode digits.
_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|-?\.[0-9]+")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def extract_answer(text: str, fallbacks: Sequence[str] = ()) -> str | None:
    """The content of the last non-empty `\\boxed{}`/`\\fbox{}` in `text`, else the first fallback that
    finds something; None when nothing does (never the empty string)."""
    unknown = [name for name in fallbacks if name not in FALLBACKS]
    if unknown:
        raise ConfigError(f"unknown answer fallback {unknown[0]!r}; use one of {', '.join(FALLBACKS)}")
    if not isinstance(text, str) or not text:
        return None
    text = _CHAT_TOKEN.sub(" ", text)
    answer = last_boxed(text)
    for name in fallbacks:
        if answer is not None:
            break
        answer = _answer_is(text) if name == "answer_is" else _last_number(text)
    return answer


def last_boxed(text: str) -> str | None:
    """The last `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` with a non-empty, closed argument; when boxes
    before it are separated from it by nothing but commas, "and", spaces or math delimiters (`$\\boxed{1}$,
    $\\boxed{2}$ and $\\boxed{3}$`), the answer is spread over them and is read as the list "1, 2, 3"."""
    run: list[str] = []
    run_start = None
    for command_start, end, answer in _boxes_from_the_end(text):
        if run and not _BOX_SEPARATOR.fullmatch(text[end:run_start]):
            break
        if answer is None:
            if run:
                break
            continue
        run.append(answer)
        run_start = command_start
    return ", ".join(reversed(run)) if run else None


def _boxes_from_the_end(text: str):
    """(where the command starts, where its argument ends, the argument or None), last box first."""
    matches = list(_BOX_COMMAND.finditer(text))
    matcher = _ReverseBraceMatcher(text)
    for match in reversed(matches):  # positions only decrease, so the matcher scans the text once
        position = match.end()
        while position < len(text) and text[position] in " \t":
            position += 1
        if position >= len(text):
            yield match.start(), len(text), None
            continue
        if text[position] == "{":
            end = matcher.closing(position)
            answer = None if end is None else _strip_math(text[position + 1 : end])
            yield match.start(), (end + 1 if end is not None else len(text)), answer
        else:  # `\boxed 5`: TeX takes one token; models mean the rest of the word
            end = position
            while end < len(text) and text[end] not in " \t\n$":
                end += 1
            yield match.start(), end, _strip_math(text[position:end].rstrip(".,;"))


class _ReverseBraceMatcher:
    """Finds the `}` closing a `{`, scanning right to left once for any number of decreasing queries.

    Scanning backwards, every `}` is pushed and every `{` pops its partner: linear in the text, where a
    forward scan per box would be quadratic for "\\boxed{" repeated 100,000 times. Braces preceded by an
    odd number of backslashes are escaped (`\\{` is a literal brace, `\\\\{` a row break then a brace).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = len(text)  # everything at or after this index has been scanned
        self.open_closers: list[int] = []

    def closing(self, open_index: int) -> int | None:
        """Index of the brace closing the `{` at `open_index` (< every earlier query), None if unclosed."""
        text, closers = self.text, self.open_closers
        result = None
        for index in range(self.position - 1, open_index - 1, -1):
            char = text[index]
            if char not in "{}" or self._escaped(index):
                continue
            if char == "}":
                closers.append(index)
            else:
                partner = closers.pop() if closers else None
                if index == open_index:
                    result = partner
        self.position = open_index
        return result

    def _escaped(self, index: int) -> bool:
        backslashes = 0
        while index - backslashes - 1 >= 0 and self.text[index - backslashes - 1] == "\\":
            backslashes += 1
        return backslashes % 2 == 1


def _strip_math(answer: str) -> str | None:
    """Trim whitespace and one pair of math delimiters around the whole answer; "" becomes None."""
    answer = answer.strip()
    for left, right in _MATH_DELIMITERS:
        if len(answer) > len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            answer = answer[len(left) : -len(right)].strip()
            break
    return answer or None


def _answer_is(text: str) -> str | None:
    """The rest of the line after the last "answer is" / "answer:", without a trailing full stop."""
    last = _last_match(_ANSWER_IS, text)
    if last is None:
        return None
    line = text[last.end() : last.end() + _ANSWER_LINE_MAX].split("\n", 1)[0]
    line = _SENTENCE_END.split(line, 1)[0]  # "is 5. Also 9" -> "5"; "is 4.5" keeps its decimal point
    return _strip_math(line.strip().strip("*").strip())


def _last_number(text: str) -> str | None:
    """The last ASCII number in `text`, e.g. "1,000" or "-2.5"."""
    last = _last_match(_NUMBER, text)
    return None if last is None else last.group(0)


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for match in pattern.finditer(text):
        last = match
    return last
