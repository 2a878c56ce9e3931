"""Find the final answer in model text: the last `\\boxed{...}`, then optional fallbacks.

Model text is untrusted: every scan here is linear in the text length and iterative (no recursion), so
10,000 nested braces or a 1 MB completion cost milliseconds, never a stack overflow.

Fallbacks, tried in the order given and only when no box holds an answer (the box always wins: TTRL votes on
boxed answers, and `harness grade` adds fallbacks for models that write the answer out):
- "answer_is": the answer after the last "answer is" / "answer:" / "answer =" / "####" (also French
  "réponse est", Spanish "respuesta:", German "Antwort:", Chinese "答案："), or after "Answer" right before
  a formula ("Answer \\( 9 \\)"): a display formula right after it, across lines; else the rest of that
  sentence or line, at most 200 characters, and when that is a sentence, the formula or number after its
  verb ("Final Answer: The largest $n$ is 34." -> "34"). See final_answer.answer_after_phrase.
- "last_number": the last plain number in the text (ASCII digits, optional sign, decimal part and
  thousands commas). Off by default: it turns `\\frac{14}{3}` into `3`, TTRL's grader defect.
- "last_math": math-verify's convention for text with no box and no answer phrase: the formula ($...$,
  \\(...\\), a bare \\frac{1}{2}) or standalone number ("2x" is not one) that ends last in the text, e.g.
  "Therefore $x \\geq 5$ is the solution." -> "x \\geq 5". See final_answer.last_math.
Chat-template tokens (`<|im_end|>`, `</s>`) are removed first: a completion may end with one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.answer_parsers.final_answer import answer_after_phrase, last_math, strip_math
from harness.errors import ConfigError

FALLBACKS = ("answer_is", "last_number", "last_math")

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# What may stand between two boxes of one answer: separators, math delimiters, connectives in \text{} ("\\text{
# for part (a) and }"), and the name the next box gives a value to ("$y_1 = \\boxed{..}$ and $y_2 = \\boxed{..}$");
# never other words or formulas.
_LABEL = r"[A-Za-z](?:_\{?[0-9A-Za-z]{1,3}\}?)?"
_BOX_SEPARATOR = re.compile(
    r"(?:\s|,|;|\$|\\[()\[\]]|\band\b|\bor\b|&|\\quad|\\qquad"
    r"|\\text\{\s*(?:(?:and|or|for|part|\([a-z]{1,4}\)|,)\s*)*\})*"
    rf"(?:(?<![A-Za-z0-9\\]){_LABEL}\s*=\s*)?"
)
# The name right before a box ("y_1 = \\boxed{..}"), kept when several boxes make one answer.
_LABEL_BEFORE = re.compile(rf"(?<![A-Za-z0-9\\])({_LABEL})\s*=\s*$")
# Chat-template tokens a completion may end with ("... is 2/3.<|im_end|>"): never part of an answer.
_CHAT_TOKEN = re.compile(r"<\|[A-Za-z_]{1,40}\|>|</s>")
# ASCII only: `\d` would also match fullwidth and other Unicode digits.
_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|-?\.[0-9]+")


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
        answer = _FALLBACK_FUNCTIONS[name](text)
    return answer


def last_boxed(text: str) -> str | None:
    """The last `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` with a non-empty, closed argument; when boxes
    before it are separated from it by nothing but commas, "and", spaces or math delimiters (`$\\boxed{1}$,
    $\\boxed{2}$ and $\\boxed{3}$`), the answer is spread over them and is read as the list "1, 2, 3"."""
    run: list[tuple[int, str]] = []  # (where the command starts, the answer), last box first
    for command_start, end, answer in _boxes_from_the_end(text):
        if run and not _BOX_SEPARATOR.fullmatch(text[end : run[-1][0]]):
            break
        if answer is None:
            if run:
                break
            continue
        run.append((command_start, answer))
    if len(run) <= 1:
        return run[0][1] if run else None
    return ", ".join(_labelled(text, start, answer) for start, answer in reversed(run))


def _labelled(text: str, command_start: int, answer: str) -> str:
    """ "y_1 = A" for a box written "y_1 = \\boxed{A}": in a list the names say which value is which."""
    label = _LABEL_BEFORE.search(text, max(0, command_start - 20), command_start)
    return f"{label.group(1)} = {answer}" if label else answer


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
            answer = None if end is None else strip_math(text[position + 1 : end])
            yield match.start(), (end + 1 if end is not None else len(text)), answer
        else:  # `\boxed 5`: TeX takes one token; models mean the rest of the word
            end = position
            while end < len(text) and text[end] not in " \t\n$":
                end += 1
            yield match.start(), end, strip_math(text[position:end].rstrip(".,;"))


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


def _last_number(text: str) -> str | None:
    """The last ASCII number in `text`, e.g. "1,000" or "-2.5"."""
    last = _last_match(_NUMBER, text)
    return None if last is None else last.group(0)


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = None
    for match in pattern.finditer(text):
        last = match
    return last


_FALLBACK_FUNCTIONS = {"answer_is": answer_after_phrase, "last_number": _last_number, "last_math": last_math}
