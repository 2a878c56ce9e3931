"""Whether two answers are equal: a fast in-process path, then math-verify in a worker, time-bounded.

Order of checks (the first that decides wins):
1. None or empty on either side: not equivalent (TTRL's grader let "" == "" earn reward 1).
2. Equal canonical keys (normalize.canonical): equivalent.
3. Both plain numbers: exact rational comparison ("142.0" = 142, "0.5" = "\\frac12", "\\frac{14}{3}" != 3).
4. Tuples, intervals, lists and sets: element by element (lists and sets in any order).
5. Words (3+ letters), answers over MAX_WORKER_CHARS: only the string comparison of step 2 counts.
6. Otherwise the math-verify worker (checker.py), killed at the deadline; a timeout is "not equivalent".
   math-verify is not symmetric even where nothing calls for an order (it finds 1*1*oo equal to 1*oo but
   not the reverse), so a pair without a relation, whose sides are of one group kind, goes to it in a fixed
   order: the verdict does not depend on which side is the gold. Relations keep the order on purpose (an
   answer "x=3" counts for the gold 3, a gold equation is never cut down to a number), and so do groups of
   two kinds (a tuple gold needs its order, a set gold does not).
Verdicts are cached (LRU); a timeout only for later calls with no more time than the worker had for it.
One call never runs much past `timeout` seconds, and nothing here raises, except GraderUnavailableError when
the worker cannot start at all (checker.py): grading on without it would give wrong verdicts, not slow ones.
"""

from __future__ import annotations

import atexit
import math
import re
import threading
import time
from collections import OrderedDict
from fractions import Fraction
from functools import lru_cache

from harness.answer_parsers.checker import GraderUnavailableError, MathVerifyWorker, WorkerStats
from harness.answer_parsers.normalize import (
    MAX_CACHED_CHARS,
    MAX_DEPTH,
    canonical,
    decimal_places,
    parse_number,
    split_group,
)

__all__ = ["DEFAULT_TIMEOUT", "canonical", "is_equivalent", "shutdown", "start_worker", "worker_stats"]

DEFAULT_TIMEOUT = 3.0
MAX_WORKER_CHARS = 2048  # longer keys never reach sympy: compared as strings only
MAX_GROUP_ITEMS = 64  # longer tuples and lists are compared as strings only (bounds the pairwise matching)
CACHE_SIZE = 65536
_WORD = re.compile(r"[A-Za-z]{3,}")
# A relation or an operator with nothing on one side: at the start or the end of a key (a sign may start one)
_EDGE = r"[=<>≤≥≠]|\\(?:leq?|geq?|neq?|in|cdot|times)(?![A-Za-z])"
_DANGLING = re.compile(rf"^(?:{_EDGE}|[*/^_])|(?:{_EDGE}|[-+*/^_])$")
# \frac, \sqrt, \binom, ^ or _ with no argument after them (math-verify drops them: "\frac{1}{1}\sqrt" was 1)
_MISSING_ARGUMENT = re.compile(r"\\(?:frac|sqrt|binom)(?![A-Za-z0-9{\[\\])|[\^_](?![A-Za-z0-9{\\+\-*'])")
_EMPTY_ITEM = re.compile(r"[(\[,]\s*,|,\s*[)\]]|^,|,$")  # "(1,)", "(,2)"; "14{,}916" is a thousands comma
# Infinity as a whole element (an interval's end, a set's member, a side of a relation), never inside arithmetic:
# math-verify finds "2^\infty e" (2**oo*E) equal to 1, to \{1,2\} and to \{3\}
_INFINITY = re.compile(r"\\infty")  # "\\inftye" too: math-verify reads it as oo*E
_WHOLE_INFINITY = re.compile(r"(?:^|(?<=[(\[,{=<>]))[-+]?\\infty(?=$|[)\],}=<>]|\\\})")
_STRAY_PERIOD = re.compile(r"(?<![0-9])\.(?![0-9])")  # a decimal point has a digit beside it; "1." is cut off before
_RELATION = re.compile(r"[=<>≤≥≠]|\\(?:leq?|geq?|neq?|lt|gt|in|subset|supset)(?![A-Za-z])")
_UNORDERED = ("", "\\{")  # a bare list "1, -2" (all solutions) or a set
_NOT_CACHED = ("busy", "starting")  # transient: the next call may well succeed
_TIMED_OUT = ("timeout", "killed")
_REUSE_SLACK = 1.05  # a repeat call at the same timeout has a few microseconds more or less than the first

_worker = MathVerifyWorker()
# (answer, gold) -> (verdict, the longest budget it holds for): infinite for a decided verdict; for a timeout,
# the seconds the worker had, so that a call with more time (a larger timeout, or the whole budget where the
# first call had waited for another thread or spent part of it on other elements) compares again.
_cache: OrderedDict[tuple[str, str], tuple[bool, float]] = OrderedDict()
_cache_lock = threading.Lock()


def is_equivalent(
    answer: str | float | None, gold: str | float | None, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    """Whether `answer` equals `gold` mathematically; False for None/empty, on timeout, on any error but one:
    a worker that cannot start raises GraderUnavailableError.

    Numbers are accepted too (qwen_eval's AMC golds are JSON floats such as 27.0).
    """
    answer, gold = as_text(answer), as_text(gold)
    if answer is None or gold is None:
        return False
    try:
        answer_key, gold_key = canonical(answer), canonical(gold)
        if not answer_key or not gold_key:
            return False
        if answer_key != gold_key and not (balanced(answer) and balanced(gold)):
            return False  # junk the normaliser made look balanced: "a<\\right)\\sqrt8[" -> "(-\\infty,)\\sqrt8[)"
        deadline = time.monotonic() + max(0.0, timeout)
        return _keys_equal(answer_key, gold_key, deadline, depth=0)
    except GraderUnavailableError:
        raise
    except Exception:  # RecursionError, MemoryError... a grader never crashes the loop
        return False


def as_text(value: object) -> str | None:
    """A str as is; an int or float as its plain text (27.0 -> "27"); anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shutdown() -> None:
    """Stop the worker process (the next comparison that needs it starts a new one)."""
    _worker.close()


def start_worker(wait: bool = False) -> bool:
    """Start the worker now, so its start-up (1-2 s) overlaps other work; `wait`: block until it is ready."""
    return _worker.start(wait)


def worker_stats() -> WorkerStats:
    """Counters of the worker: calls, timeouts, restarts, statuses."""
    return _worker.stats


def worker_pid() -> int | None:
    return _worker.pid


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def clear_all_caches() -> None:
    """The verdicts, and the canonical keys and shapes too: what a timing of cold grading needs (harness bench)."""
    from harness.answer_parsers.normalize import _canonical_cached

    clear_cache()
    _shape_cached.cache_clear()
    _canonical_cached.cache_clear()


def _shape(key: str) -> tuple[Fraction | None, tuple[str, list[str], str] | None]:
    """(exact value if a plain number, group if a tuple/interval/list/set) of a canonical key."""
    if len(key) > MAX_CACHED_CHARS:
        return _shape_of(key)
    return _shape_cached(key)


def _shape_of(key: str) -> tuple[Fraction | None, tuple[str, list[str], str] | None]:
    number = parse_number(key)
    return number, (None if number is not None else split_group(key))


_shape_cached = lru_cache(maxsize=CACHE_SIZE)(_shape_of)


def _keys_equal(answer: str, gold: str, deadline: float, depth: int) -> bool:
    if answer == gold:
        return True
    answer_number, answer_group = _shape(answer) if len(answer) <= MAX_WORKER_CHARS else (None, None)
    gold_number, gold_group = _shape(gold) if len(gold) <= MAX_WORKER_CHARS else (None, None)
    if answer_number is not None and gold_number is not None:
        return numbers_equal(answer, answer_number, gold, gold_number)
    if answer_group is not None and gold_group is not None and depth < MAX_DEPTH:
        verdict = _groups_equal(answer_group, gold_group, deadline, depth)
        if verdict is not None:
            return verdict
    elif (answer_group is not None and gold_number is not None) or (
        gold_group is not None and answer_number is not None
    ):
        return False  # a list of several values is never one number
    if _WORD.fullmatch(answer) or _WORD.fullmatch(gold):
        return False  # sympy reads "Evelyn" as E*e*l*n*v*y, equal to any anagram
    if not (well_formed(answer) and well_formed(gold)):
        return False  # math-verify reads a number out of junk: "1}7" and "\\frac{7}{7}.\\cdot\\pi" were 1
    if len(answer) > MAX_WORKER_CHARS or len(gold) > MAX_WORKER_CHARS:
        return False
    if _order_free(answer_group, gold_group) and not (_RELATION.search(answer) or _RELATION.search(gold)):
        answer, gold = sorted((answer, gold))
    return _ask_worker(answer, gold, deadline)


def well_formed(key: str) -> bool:
    """Whether a key that is neither a number nor a group may go to math-verify. One that fails is no
    well-formed answer and only the string comparison counts for it, because math-verify parses the part it
    can read and ignores the rest. Each rule is junk that the fuzz test (tests/test_grader_fuzz.py) found
    graded equal to its gold: brackets that do not balance ("1}7%" for 1), a box inside an answer (the
    extractor has removed the answer's own: "\\boxed{\\pi}^.\\in" for \\pi), a period that is no decimal point
    ("\\frac{7}{7}.\\cdot\\pi" for 1), a relation or an operator at an end ("<-\\leq7\\times60-1\\frac{0}{2}" for
    0), a missing argument ("\\frac{1}{1}\\sqrt" for 1), an empty element, and infinity inside arithmetic
    ("6^\\inftye" for \\{1,2\\}: math-verify finds 2**oo*E equal to 1)."""
    if not balanced(key) or _DANGLING.search(key) or _STRAY_PERIOD.search(key) or _MISSING_ARGUMENT.search(key):
        return False
    if _EMPTY_ITEM.search(key) or len(_INFINITY.findall(key)) != len(_WHOLE_INFINITY.findall(key)):
        return False
    boxes = key.count("\\boxed")
    return boxes == 0 or (boxes == 1 and key.startswith("\\boxed{") and key.endswith("}") and balanced(key[7:-1]))


def balanced(key: str) -> bool:
    """Whether braces `{}`, escaped braces `\\{\\}` and brackets balance, `(` and `[` alike (an interval may
    open with one and close with the other). A key that does not is no well-formed answer: only the string
    comparison counts for it, because math-verify reads a number out of such junk (the fuzz test found
    "1}7%", "2}i\\left(3" and "\\{{,\\in.\\cup](\\boxed{1" equal to their golds 1, 2 and 1)."""
    braces = sets = brackets = 0
    index = 0
    while index < len(key):
        char = key[index]
        if char == "\\":
            escaped = key[index + 1 : index + 2]
            sets += (escaped == "{") - (escaped == "}")
            index += 2  # \\ (a row break), \, and the like escape one character
        else:
            braces += (char == "{") - (char == "}")
            brackets += (char in "([") - (char in ")]")
            index += 1
        if braces < 0 or sets < 0 or brackets < 0:
            return False
    return braces == sets == brackets == 0


def _order_free(answer_group, gold_group) -> bool:
    """Both single values, both tuples/intervals, or both bare lists/sets: the sides may be swapped."""
    def kind(group) -> str:
        return "single" if group is None else "unordered" if group[0] in _UNORDERED else "ordered"

    return kind(answer_group) == kind(gold_group)


def numbers_equal(answer: str, answer_value: Fraction, gold: str, gold_value: Fraction) -> bool:
    """Exact, except that a long decimal (6+ places) beside an exact number equals it when it is that number
    rounded or truncated to its places: 0.0833333333333333 = 1/12 and 0.666666 = 2/3, but 0.3 != 1/3 and
    0.333343 != 1/3. Two decimals compare exactly (a changed digit is a different answer)."""
    answer_places, gold_places = decimal_places(answer), decimal_places(gold)
    if (answer_places is None) == (gold_places is None):
        return answer_value == gold_value
    decimal, exact, places = ((answer_value, gold_value, answer_places) if answer_places is not None
                              else (gold_value, answer_value, gold_places))
    scale = 10**places
    scaled = exact * scale
    rounded = math.floor(scaled + Fraction(1, 2)) if scaled >= 0 else -math.floor(-scaled + Fraction(1, 2))
    truncated = math.trunc(scaled)
    return decimal * scale in (rounded, truncated)


def _groups_equal(answer_group, gold_group, deadline: float, depth: int) -> bool | None:
    """Element-wise verdict; None when the kinds differ (tuple vs set...) and math-verify should decide."""
    answer_open, answer_items, answer_close = answer_group
    gold_open, gold_items, gold_close = gold_group
    unordered = answer_open in _UNORDERED and gold_open in _UNORDERED
    if not unordered and (answer_open, answer_close) != (gold_open, gold_close):
        return None
    if len(answer_items) != len(gold_items):  # sets may still agree: "1 \\pm \\sqrt{19}" is two values
        return None if unordered else False
    if len(answer_items) > MAX_GROUP_ITEMS:
        return False  # only the string comparison counts for huge lists
    if not unordered:
        return all(
            _keys_equal(a, g, deadline, depth + 1) and time.monotonic() < deadline
            for a, g in zip(answer_items, gold_items, strict=True)
        )
    unmatched = list(gold_items)
    for item in answer_items:
        match = next((g for g in unmatched if _keys_equal(item, g, deadline, depth + 1)), None)
        if match is None or time.monotonic() > deadline:
            return False
        unmatched.remove(match)
    return True


def _ask_worker(answer: str, gold: str, deadline: float) -> bool:
    key = (answer, gold)
    budget = deadline - time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and budget <= cached[1]:
            _cache.move_to_end(key)
            return cached[0]
    if budget <= 0:
        return False
    equal, status, worker_seconds = _worker.compare_timed(gold, answer, budget)
    small = len(answer) + len(gold) <= 2 * MAX_CACHED_CHARS
    if small and status not in _NOT_CACHED:
        holds_for = worker_seconds * _REUSE_SLACK if status in _TIMED_OUT else math.inf
        with _cache_lock:
            _cache[key] = (equal, holds_for)
            _cache.move_to_end(key)
            if len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return equal


atexit.register(shutdown)
