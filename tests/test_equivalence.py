"""Equivalence of answers: the quirks of the real golds, TTRL's two grader defects, bounds and speed."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.answer_parsers import equivalence
from harness.answer_parsers.equivalence import canonical, is_equivalent, shutdown, worker_stats

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
]

NOT_EQUAL = [
    ("26", "25"),
    ("3", "\\frac{14}{3}"),  # TTRL's label check re-extracts "last number": \frac{14}{3} -> 3
    ("14", "\\frac{14}{3}"),
    ("0.333333", "\\frac13"),  # exact numbers: a rounded decimal is not the fraction
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


def test_timeout_argument_bounds_a_slow_comparison():
    """A comparison sympy cannot finish returns False within about the timeout."""
    started = time.perf_counter()
    assert not is_equivalent("(1+x)^{99999}", "(x+1)^{99998}(1+x)+1", timeout=1.0)
    assert time.perf_counter() - started < 2.5


_LATEX_PIECES = st.sampled_from(
    ["1", "2", "x", "y", "+", "-", "^", "_", "{", "}", "(", ")", ",", "\\frac", "\\sqrt", "\\pi", "\\infty",
     "\\left(", "\\right)", "\\text{", "=", ".", "0", "9", "\\cdot", "!", "\\{", "\\}", "[", "]", " ", "i"]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_LATEX_PIECES, max_size=14).map("".join), st.lists(_LATEX_PIECES, max_size=14).map("".join))
def test_random_latex_never_raises_and_is_bounded(answer, gold):
    """Random LaTeX soup: a bool, within the time bound, never an exception."""
    started = time.perf_counter()
    assert is_equivalent(answer, gold, timeout=1.0) in (True, False)
    assert time.perf_counter() - started < 2.5


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_random_text_never_raises_and_is_bounded(answer, gold):
    """Arbitrary unicode: a bool, within the time bound, never an exception."""
    started = time.perf_counter()
    assert is_equivalent(answer, gold, timeout=1.0) in (True, False)
    assert time.perf_counter() - started < 2.5
