"""Equivalence of answers: the quirks of the real golds, TTRL's two grader defects, bounds and speed."""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.answer_parsers import equivalence
from harness.answer_parsers.equivalence import canonical, is_equivalent, shutdown, worker_stats
from harness.answer_parsers.normalize import split_group

EQUAL = [
    ("25", "025"),
    ("142", "142.0"),
    ("-4", "-4.0"),
    ("90", "90^\\circ"),
    ("90", "90^{\\circ}"),
    ("Evelyn", "\\text{Evelyn}"),
    ("52", "52_8"),
    ("4210", "4210_{5}"),
    ("5", "x=5"),
    ("\\frac{17}{50}", "\\dfrac{17}{50}"),
    ("\\frac59", "\\frac 59"),
    ("0.34", "\\frac{17}{50}"),
    ("7,5,3", "3, 5, 7"),
    ("-2, 1", "1,-2"),
    ("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(\\frac{3}{2},-13)", "\\left( \\frac{3}{2}, -13 \\right)"),
    ("(3,4]", "(3,4]"),
    ("[-2,7]", "x \\in [-2,7]"),
    ("10080", "10,\\!080"),
    ("11111111100", "11,\\! 111,\\! 111,\\! 100"),
    ("32348", "\\$32,\\!348"),
    ("18.9", "\\$18.90"),
    ("C", "\\text{(C)}"),
    ("(C)", "\\text{(C)}"),
    ("864", "864 \\mbox{ inches}^2"),
    ("5.4", "5.4 \\text{ cents}"),
    ("\\frac{9}{5}", "1\\frac{4}{5}"),
    ("275/2", "137 \\frac{1}{2}"),
    ("0.0000672", ".0000672"),
    ("2x+3", "y = 2x + 3"),
    ("p-q", "p - q"),
    ("-q+p", "p - q"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}"),
    ("-5i+6", "6 - 5i"),
    ("11+11\\sqrt5", "11 \\sqrt{5} + 11"),
    ("1-\\sqrt{19}, 1+\\sqrt{19}", "1 \\pm \\sqrt{19}"),
    ("\\begin{bmatrix}-2\\\\-14\\\\-7\\end{bmatrix}", "\\begin{pmatrix} -2 \\\\ -14 \\\\ -7 \\end{pmatrix}"),
    ("(-\\infty,2)\\cup(3,\\infty)", "(-\\infty, 2) \\cup (3, \\infty)"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\{-2, 1+\\sqrt{5}, 1-\\sqrt{5}\\}", "\\{1\\pm\\sqrt{5},-2\\}"),
    ("28 percent", "28\\%"),  # percent words (issue 12's held-out cases)
    ("28 pct", "28\\%"),
    ("1, 2, 3", "\\{1,2,3\\}"),  # what several boxes extract to, against a set gold
    ("(5,2), (7,2)", "(5,2),(7,2)"),
    ("0.0833333333333333", "\\frac{1}{12}"),  # a long decimal: the exact value rounded or truncated to its places
    ("0.666666", "\\frac{2}{3}"),
    ("0.666667", "2/3"),
    ("4.123105625617661", "\\sqrt{17}"),  # math-verify reads a long decimal as a float
    ("2.000000", "2"),
    ("-2 \\le x \\le 7", "x \\in [-2, 7]"),  # a one-variable inequality is the interval it describes
    ("x \\geq 5", "[5, \\infty)"),
    ("3 > x", "x < 3"),
    ("1 < x \\leq 3", "(1,3]"),
]

NOT_EQUAL = [
    ("26", "25"),
    ("percent", "28"),
    ("29 percent", "28\\%"),
    ("0.3", "\\frac{1}{3}"),  # a short decimal is exact
    ("0.333343", "\\frac{1}{3}"),  # a changed digit
    ("0.0833333333333343", "\\frac{1}{12}"),
    ("0.5000001", "0.5"),
    ("x \\geq 5", "x > 5"),  # open and closed ends differ
    ("-2 < x < 7", "[-2, 7]"),
    ("-0.333333", "\\frac{1}{3}"),
    ("3", "\\frac{14}{3}"),  # TTRL's label check re-extracts "last number": \frac{14}{3} -> 3
    ("14", "\\frac{14}{3}"),
    ("0.33", "\\frac13"),  # exact numbers: a short rounded decimal is not the fraction
    ("-4", "4.0"),
    ("(3,4)", "(3,4]"),
    ("[3,4]", "(3,4]"),
    ("(1,2)", "(2,1)"),
    ("(1,2,3)", "(1,2)"),
    ("1,2", "3"),
    ("q-p", "p - q"),
    ("Nevely", "\\text{Evelyn}"),  # sympy alone reads both as the product E*e*l*n*v*y
    ("evelyn", "\\text{Evelyn}"),
    ("\\pi", "3.14159"),
    ("6+5i", "6 - 5i"),
    ("x=6", "x=5"),
    ("53", "52_8"),
    ("42", "52_8"),  # 52 in base 8 is 42, but the question asked for base 8
]

# Junk that math-verify alone grades equal to the gold: it reads the part it can parse and drops the rest.
# Found by tests/test_grader_fuzz.py; each is a rule of equivalence.well_formed (or the balance of the raw text).
JUNK_MATH_VERIFY_ACCEPTS = [
    ("1}7%", "1"),  # brackets that do not balance
    ("2}i\\left(3", "2"),
    ("\\frac55)178-8\\}", "1"),
    ("\\boxed{1", "1"),
    ("\\boxed{4\\boxed{1", "1"),
    ("0}", "0"),
    ("a<\\right)\\sqrt\\frac668\\pi[", "1"),  # the normaliser makes "(-\\infty,)\\sqrt..." of it: balanced
    ("\\boxed{\\pi }^.\\in\\sqrt", "\\pi"),  # a box inside an answer
    ("\\frac77.\\cdot\\pi", "1"),  # a period that is no decimal point
    ("<-\\leq7\\times60-1\\frac02", "0"),  # a relation at an end
    ("\\frac11\\sqrt", "1"),  # an argument missing
    ("x^.0_2", "1"),
    ("6^\\inftye", "\\{1,2\\}"),  # infinity inside arithmetic: math-verify finds 2**oo*E equal to 1
    ("2^\\infty e", "1"),
]


@pytest.mark.parametrize(("answer", "gold"), JUNK_MATH_VERIFY_ACCEPTS)
def test_junk_that_math_verify_accepts_is_not_equal(answer, gold):
    """Junk never equals a gold, whichever side it is on, while well-formed neighbours still reach math-verify."""
    assert not is_equivalent(answer, gold)
    assert not is_equivalent(gold, answer)


def test_well_formed_answers_still_reach_math_verify():
    """The junk rules leave real answers alone: intervals with mixed brackets, infinity as an end or a member,
    a cube root, x^{-1}, a boxed answer, a repeating decimal."""
    assert is_equivalent("(-\\infty,\\sqrt{4}]\\cup(3,\\infty)", "(-\\infty,2]\\cup(3,\\infty)")
    assert is_equivalent("\\sqrt[3]{8}", "2")
    assert is_equivalent("x^{-1}", "\\frac{1}{x}")
    assert is_equivalent("\\boxed{\\sqrt{4}}", "2")
    assert is_equivalent("\\{-\\infty, \\sqrt{9}\\}", "\\{3, -\\infty\\}")
    assert is_equivalent("0.\\overline{3}", "0.\\overline{3}")


@pytest.fixture(scope="module", autouse=True)
def _worker():
    """One worker for the module, started and warm before the first timed call, stopped at the end."""
    assert equivalence.start_worker(wait=True)
    yield
    shutdown()


@pytest.mark.parametrize(("answer", "gold"), EQUAL)
def test_equal_pairs(answer, gold):
    """The quirks of the real golds are graded equal."""
    assert is_equivalent(answer, gold)


@pytest.mark.parametrize(("answer", "gold"), NOT_EQUAL)
def test_not_equal_pairs(answer, gold):
    """Different values stay different, including what TTRL's grader merged."""
    assert not is_equivalent(answer, gold)


NO_ANSWERS = [(None, None), ("", ""), (None, "5"), ("5", None), ("  ", " "), ("$$", "")]


@pytest.mark.parametrize(("answer", "gold"), NO_ANSWERS)
def test_no_answer_is_never_equivalent(answer, gold):
    """None and empty answers never match anything, not even each other (TTRL rewarded "" == "")."""
    assert not is_equivalent(answer, gold)


def test_canonical_keys():
    """canonical() gives one key per value for the common forms, and is idempotent."""
    assert canonical("025") == canonical("25") == "25"
    assert canonical("142.0") == "142"
    assert canonical("\\dfrac{1}{2}") == canonical("0.5") == canonical("\\frac12") == "1/2"
    assert canonical("\\left( 3, \\frac{\\pi}{2} \\right)") == "(3,\\frac{\\pi}{2})"
    assert canonical("3, 5, 7") == canonical("7,5,3")
    assert canonical("") == ""
    for answer in ("x=5", "90^\\circ", "\\$32,\\!348", "\\text{(C)}", "(1,-2]", "\\{3,1\\}"):
        assert canonical(canonical(answer)) == canonical(answer)


def test_fast_path_needs_no_worker():
    """Integers, decimals, simple fractions and numeric tuples never reach the worker process."""
    calls = worker_stats().calls
    pairs = [("25", "025"), ("142", "142.0"), ("3", "\\frac{14}{3}"), ("0.5", "\\frac{1}{2}"), ("(1,2)", "(1, 3)"),
             ("1,-2", "-2,1"), ("\\frac{7}{2}", "3.5"), ("26", "25")]
    for answer, gold in pairs:
        is_equivalent(answer, gold)
    assert worker_stats().calls == calls


def test_fast_path_speed():
    """Clustering 64 numeric answers costs well under a millisecond per comparison."""
    answers = [str(n % 7) if n % 3 else f"\\frac{{{n % 5}}}{{2}}" for n in range(64)]
    started = time.perf_counter()
    comparisons = 0
    for _ in range(20):
        representatives: list[str] = []
        for answer in answers:
            for representative in representatives:
                comparisons += 1
                if is_equivalent(answer, representative):
                    break
            else:
                representatives.append(answer)
    per_comparison = (time.perf_counter() - started) / comparisons
    assert per_comparison < 100e-6, f"{per_comparison * 1e6:.1f} us per comparison"


def test_worker_from_another_thread():
    """The worker path works off the main thread (math-verify's own SIGALRM timeouts would not)."""
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(is_equivalent("\\sqrt{4}", "2")))
    thread.start()
    thread.join(timeout=60)
    assert results == [True]


def slow_equal_pair(letters: str, power: int = 14) -> tuple[str, str]:
    """Two forms of (a+b+c+d)^power: equal, but sympy needs seconds to simplify their difference.

    Measured in this worker: power 14 takes 1.3 s on an idle 2-core machine and 3-4.5 s on a loaded one;
    power 16 about twice that. Each test takes its own letters: once the worker has compared a pair, sympy's
    caches inside it make the same pair fast, and it would no longer time out.
    """
    a, b, c, d = letters
    return f"({a}+{b}+{c}+{d})^{{{power}}}", f"(({a}+{b})^2+2({a}+{b})({c}+{d})+({c}+{d})^2)^{{{power // 2}}}"


def test_equal_but_slow_pair_times_out_within_the_bound() -> None:
    """An equal pair sympy cannot finish in time is False by timeout: within the bound, counted as "timeout"."""
    answer, gold = slow_equal_pair("abcd")
    before = worker_stats()
    timeouts, soft_timeouts = before.statuses.get("timeout", 0), before.soft_timeouts
    started = time.perf_counter()
    assert not is_equivalent(answer, gold, timeout=0.3)
    assert time.perf_counter() - started < 0.3 + 1.0
    assert worker_stats().statuses.get("timeout", 0) == timeouts + 1  # the worker's own timer interrupted sympy
    assert worker_stats().soft_timeouts == soft_timeouts + 1


def test_timeout_is_reused_only_by_calls_with_no_more_time() -> None:
    """A timed-out pair is not compared again at the same timeout (the cache saves the wait), but a call
    with more time compares for real and gets the true verdict instead of the cached timeout."""
    answer, gold = slow_equal_pair("pqrs")
    assert not is_equivalent(answer, gold, timeout=0.3)
    calls = worker_stats().calls
    started = time.perf_counter()
    assert not is_equivalent(answer, gold, timeout=0.3)
    assert worker_stats().calls == calls and time.perf_counter() - started < 0.1
    assert is_equivalent(answer, gold, timeout=60.0)
    assert worker_stats().calls == calls + 1


def test_timeout_after_waiting_for_the_worker_is_not_reused() -> None:
    """A call that spent most of its budget waiting for another thread's comparison times out with little
    time in the worker; the same call later, with the worker free, must compare again, not reuse that."""
    answer, gold = slow_equal_pair("uvwz")
    held = slow_equal_pair("fghk", power=24)
    holder = threading.Thread(target=is_equivalent, args=held, kwargs={"timeout": 1.4})
    calls = worker_stats().calls
    soft_timeouts = worker_stats().soft_timeouts
    holder.start()  # holds the worker about 1.12 s (its soft timer), a power-24 pair takes far longer
    while worker_stats().calls == calls:  # wait until the holder's request is in the worker
        time.sleep(0.005)
    # 1.5 s budget, about 1.1 s of it waiting: the worker gets about 0.4 s for a pair that takes over 1 s
    assert not is_equivalent(answer, gold, timeout=1.5)
    holder.join(timeout=30)
    assert worker_stats().soft_timeouts == soft_timeouts + 2, worker_stats()  # both timed out in the worker
    calls = worker_stats().calls
    is_equivalent(answer, gold, timeout=1.5)  # the same budget, all of it in the worker now
    assert worker_stats().calls == calls + 1, "a timeout after a wait for the worker was reused"
    assert is_equivalent(answer, gold, timeout=60.0)


_LATEX_PIECES = st.sampled_from(
    ["1", "2", "x", "y", "+", "-", "^", "_", "{", "}", "(", ")", ",", "\\frac", "\\sqrt", "\\pi", "\\infty",
     "\\left(", "\\right)", "\\text{", "=", ".", "0", "9", "\\cdot", "!", "\\{", "\\}", "[", "]", " ", "i"]
)
# Independent random answers are almost never equal, so symmetry would mostly compare False with False. Half
# of the pairs are an answer and a rewrite of it: different keys, often the same value, the worker decides.
_REWRITES = st.sampled_from(["{@}", "(@)", "@+0", "0+@", "1\\cdot @", "\\left(@\\right)", "$@$", "{{@}}", "@^{1}"])
_RELATION = re.compile(r"[=<>≤≥≠]|\\(?:leq|geq|neq|ne|lt|gt|in)(?![A-Za-z])")
_UNDECIDED = ("timeout", "killed", "busy", "starting", "dead")
BOUND = 2.5  # seconds for a call with timeout=1.0: the timeout, a worker round trip, a loaded machine


def pairs_of(answers: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    rewritten = st.tuples(answers, _REWRITES).map(lambda drawn: (drawn[0], drawn[1].replace("@", drawn[0])))
    return st.one_of(st.tuples(answers, answers), rewritten)


def group_kind(answer: str) -> str:
    """"ordered" (tuple, interval), "unordered" (bare list, set) or "single", as the grader splits the key."""
    group = split_group(canonical(answer))
    if group is None:
        return "single"
    return "unordered" if group[0] in ("", "\\{") else "ordered"


def order_matters(answer: str, gold: str) -> bool:
    """Where math-verify reads gold and answer differently by design, so that swapping them may flip the verdict.

    Relations: an answer "x+1=3" counts as its right side 3 for the gold 3, while a gold equation is never
    cut down to a number; a gold "x<2" accepts the answer "(-\\infty,2)", a gold "(-\\infty,2)" rejects the
    answer "x<2". Groups of two kinds: a tuple gold needs its order, a set or list gold does not, so "(3,1,2)"
    counts for "\\{3,1,2\\}" but not the reverse. Everything else must not depend on the order.
    """
    relation = _RELATION.search(canonical(answer)) or _RELATION.search(canonical(gold))
    return bool(relation) or group_kind(answer) != group_kind(gold)


def check_reflexive_and_symmetric(answer: str, gold: str) -> None:
    """Each answer equals itself exactly when it has a key at all; the verdict does not depend on the order
    (outside order_matters, and unless the worker gave no verdict: a timeout is "not equal" whichever way)."""
    for text in (answer, gold):
        started = time.perf_counter()
        assert is_equivalent(text, text, timeout=1.0) is (canonical(text) != ""), text
        assert time.perf_counter() - started < BOUND
    statuses = dict(worker_stats().statuses)
    verdicts = []
    for first, second in ((answer, gold), (gold, answer)):
        started = time.perf_counter()
        verdicts.append(is_equivalent(first, second, timeout=1.0))
        assert time.perf_counter() - started < BOUND, (first, second)
    assert all(type(verdict) is bool for verdict in verdicts)
    undecided = any(worker_stats().statuses.get(status, 0) != statuses.get(status, 0) for status in _UNDECIDED)
    if not undecided and not order_matters(answer, gold):
        assert verdicts[0] == verdicts[1], (answer, gold, verdicts)


@settings(max_examples=80, deadline=None)
@given(pairs_of(st.lists(_LATEX_PIECES, max_size=14).map("".join)))
@example(("2", "{2}"))  # a number and an expression: the fast path on one side only would break symmetry
@example(("\\sqrt{4}", "2"))
@example(("x+1", "1+x"))
@example(("(1,2)", "(2,1)"))
@example(("1,2", "2,1"))
@example(("{", "}"))  # no value at all: equal to itself all the same (the keys are equal)
@example(("1\\infty", "1\\cdot 1\\infty"))  # math-verify alone: equal one way round only (CI, 2026-12-03)
def test_random_latex_is_reflexive_symmetric_and_bounded(pair: tuple[str, str]) -> None:
    """Random LaTeX soup: answers equal themselves, the order of the two sides does not matter, within the bound."""
    check_reflexive_and_symmetric(*pair)


@settings(max_examples=150, deadline=None)
@given(pairs_of(st.text(max_size=60)))
@example(("0", "{0}"))
def test_random_text_is_reflexive_symmetric_and_bounded(pair: tuple[str, str]) -> None:
    """Arbitrary unicode: the same properties and the same bound as LaTeX soup."""
    check_reflexive_and_symmetric(*pair)
