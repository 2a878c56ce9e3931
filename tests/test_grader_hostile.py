"""Hostile model output: the grader never crashes, never overruns its bound, never executes model text."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.answer_parsers import equivalence
from harness.answer_parsers.checker import SYS_PATH_VARIABLE, WORKER_SCRIPT
from harness.answer_parsers.equivalence import is_equivalent, shutdown, worker_pid, worker_stats
from harness.answer_parsers.parser import BoxedOptions, BoxedParser

TIMEOUT = 0.5
SLACK = 1.0  # process round trip and a loaded 2-core machine
GOLDS = ("1", "x+1")


def _injections(marker: Path) -> list[str]:
    shell = f"touch {marker}"
    return [
        f"__import__('os').system('{shell}')",
        f"\\text{{__import__('os').system('{shell}')}}",
        f"\\operatorname{{__import__}}('os').system('{shell}')",
        f"\\mathrm{{eval}}(\"__import__('os').system('{shell}')\")",
        f"exec(\"import os; os.system('{shell}')\")",
        f"(lambda: __import__('os').system('{shell}'))()",
        f"1 + __import__('subprocess').call(['touch', '{marker}'])",
        f"Integer(1) + __import__('os').system('{shell}')",
        f"x=__import__('os').system('{shell}')",
        f"\\frac{{__import__('os').system('{shell}')}}{{2}}",
        f"().__class__.__base__.__subclasses__()[0]; __import__('os').system('{shell}')",
        f"$__import__('os').system('{shell}')$",
        f"{{__import__('os').system('{shell}')}}^{{2}}",
        f"\\sqrt{{__import__('os').system('{shell}')}}",
    ]


def build_corpus(marker: Path) -> list[tuple[str, str]]:
    """(category, boxed payload) pairs: every kind of input the issue lists, and some more."""
    corpus = [("huge number", text) for text in [
        "9^{9^{9^{9}}}", "100000!", "(10^{9})!", "10^{10^{10}}", "2^{10^{9}}", "2^{2^{33}}",
        "99999999999^{99999999999}", "\\binom{10^{6}}{5\\cdot 10^5}", "(1+x)^{100000}", "x^{x^{x^{x}}}",
        "\\lfloor 2^{2^{33}} / 3 \\rfloor", "1e99999", "10^{-10^{10}}", "9" * 4000,
    ]]
    corpus += [("slow sympy", text) for text in [
        "\\int_0^\\infty e^{-x^2} dx", "\\sum_{n=1}^{10^{9}} n", "\\lim_{x\\to 0} \\frac{\\sin x}{x}",
        "\\prod_{k=1}^{10^{6}} k", "\\sin(10^{100})", "\\frac{d}{dx} x^{x^{x}}",
    ]]
    corpus += [("nesting", text) for text in [
        "{" * 10_000 + "1" + "}" * 10_000, "(" * 10_000 + "1" + ")" * 10_000,
        "\\frac{" * 300 + "1" + "}{2}" * 300, "\\sqrt{" * 500 + "2" + "}" * 500,
        "{" * 5000, "}" * 5000 + "{" * 5000, "x^{" * 400 + "2" + "}" * 400,
    ]]
    corpus += [("size", text) for text in [
        "7" * 1_000_000, "x+" * 500_000 + "1", "\\frac{1}{2}," * 90_000 + "1", "a" * 3000, "1+" * 1000 + "1",
    ]]
    corpus += [("unicode", text) for text in [
        "１２３", "Еvelyn", "х=5", "٤٢", "x²", "4\u200b2", "\u202e24", "e\u0301", "\x00\x01\x02", "\ud800",
        "𝟓", "⁵", "½",
    ]]
    corpus += [("injection", text) for text in _injections(marker)]
    corpus += [("macro bomb", text) for text in [
        "\\def\\a{\\a\\a}\\a", "\\newcommand{\\x}{\\x\\x}\\x", "\\def\\a{\\a}\\a",
        "\\renewcommand{\\frac}{\\frac}\\frac12",
        "\\newcommand{\\b}[1]{\\b{#1#1}}\\b{1}", "\\let\\boxed\\relax\\boxed{1}", "\\input{/etc/passwd}",
        "\\write18{touch " + str(marker) + "}",
    ]]
    return corpus


@pytest.fixture(scope="module", autouse=True)
def _worker():
    """One worker for the module, started and warm before the first timed call, stopped at the end."""
    assert equivalence.start_worker(wait=True)
    yield
    shutdown()


def test_hostile_corpus(tmp_path, capsys):
    """Every payload: extraction and grading return a value, within the bound, and nothing runs."""
    marker = tmp_path / "pwned"
    corpus = build_corpus(marker)
    parser = BoxedParser(BoxedOptions(fallbacks=["answer_is", "last_number"], timeout_seconds=TIMEOUT))
    worst = 0.0
    tried = Counter()
    for category, payload in corpus:
        for completion in (f"Thinking...\n\\boxed{{{payload}}}", f"The answer is {payload}", payload):
            started = time.perf_counter()
            answer = parser.extract(completion)
            assert answer is None or (isinstance(answer, str) and answer)
            assert time.perf_counter() - started < 1.0, (category, payload[:60])
            for gold in GOLDS + ((answer,) if answer else ()):
                started = time.perf_counter()
                assert parser.equivalent(answer, gold) in (True, False)
                elapsed = time.perf_counter() - started
                worst = max(worst, elapsed)
                assert elapsed < TIMEOUT + SLACK, (category, payload[:60], gold, elapsed)
                tried[category] += 1
    assert not marker.exists(), "model text was executed"
    assert len(corpus) >= 60
    with capsys.disabled():
        print(f"\nhostile corpus: {len(corpus)} payloads, {sum(tried.values())} comparisons {dict(tried)}; "
              f"worst {worst:.2f}s; worker {worker_stats()}")


def test_injection_payload_is_live_for_sympify(tmp_path):
    """Control: the same payload does run through sympy's sympify (eval), so the test above means something."""
    marker = tmp_path / "control"
    payload = _injections(marker)[0]
    code = f"import sympy\ntry:\n    sympy.sympify({payload!r})\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, capture_output=True)
    assert marker.exists()


# Run in a fresh interpreter, isolated (-I) like the worker: the worker's own start-up (import path, math-verify
# warm-up, tripwire), then every road from a string to eval, each fed a payload that would create its own file.
_ENTRY_POINTS_PROBE = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("worker", sys.argv[1])
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
worker._extend_sys_path()
worker._load()
if sys.argv[3] == "tripwire":
    worker._install_tripwire()
import latex2sympy2_extended.latex2sympy2 as latex2sympy
import math_verify.parser
import sympy
import sympy.parsing
import sympy.parsing.sympy_parser as sympy_parser
payloads = json.loads(sys.argv[2])
roads = {
    "sympy.sympify": sympy.sympify,
    "sympy.S": sympy.S,
    "sympy.Number": sympy.Number,
    "sympy_parser.parse_expr": sympy_parser.parse_expr,
    "sympy.parsing.parse_expr": sympy.parsing.parse_expr,  # the function itself, bound before the tripwire
    "math_verify.parser.parse_expr": math_verify.parser.parse_expr,  # likewise
    "latex2sympy.parse_expr": latex2sympy.parse_expr,
    "sympy_parser.eval_expr": lambda text: sympy_parser.eval_expr(text, {}, {}),
}
outcomes = {}
for name, road in roads.items():
    try:
        road(payloads[name])
        outcomes[name] = "ran"
    except worker.EvalRefused:
        outcomes[name] = "refused"
    except BaseException as error:  # sympy.Number runs the payload, then rejects the int os.system returned
        outcomes[name] = type(error).__name__
print(json.dumps(outcomes))
"""
EVAL_ROADS = (
    "sympy.sympify", "sympy.S", "sympy.Number", "sympy_parser.parse_expr", "sympy.parsing.parse_expr",
    "math_verify.parser.parse_expr", "latex2sympy.parse_expr", "sympy_parser.eval_expr",
)


def probe_eval_roads(folder: Path, mode: str) -> dict[str, str]:
    """How each eval road fares after the worker's start-up, with ("tripwire") or without it; the payload fed
    to a road creates the file folder/ROAD when it runs."""
    payloads = {road: _injections(folder / road)[0] for road in EVAL_ROADS}
    environment = {**os.environ, SYS_PATH_VARIABLE: json.dumps([path for path in sys.path if path])}
    result = subprocess.run(
        [sys.executable, "-I", "-c", _ENTRY_POINTS_PROBE, str(WORKER_SCRIPT), json.dumps(payloads), mode],
        capture_output=True, text=True, timeout=300, env=environment, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_worker_start_up_closes_every_eval_road(tmp_path: Path) -> None:
    """After the worker's start-up, sympify, S, Number, every parse_expr binding and eval_expr all refuse."""
    outcomes = probe_eval_roads(tmp_path, "tripwire")
    assert outcomes == dict.fromkeys(EVAL_ROADS, "refused")
    assert not any((tmp_path / road).exists() for road in EVAL_ROADS), "model text was executed"


def test_eval_roads_are_live_without_the_tripwire(tmp_path: Path) -> None:
    """Control: the same start-up minus the tripwire runs the payload through each one of those roads."""
    outcomes = probe_eval_roads(tmp_path, "none")
    assert "refused" not in outcomes.values(), outcomes
    assert [road for road in EVAL_ROADS if not (tmp_path / road).exists()] == []


def test_comparison_that_reaches_sympify_is_refused_in_the_worker() -> None:
    """The worker process itself refuses eval: sympy sums a geometric series through hyperexpand, whose formula
    table is built from strings (S('3/2')) on first use, i.e. sympify -> parse_expr -> eval. In the worker
    that comparison stops with status "refused" (counted) and the verdict False, although the two are equal
    (without the tripwire math-verify finds them equal), and the worker lives on for the next comparison."""
    equivalence.clear_cache()  # a refused verdict is cached: the worker must really be asked
    assert is_equivalent("\\sqrt{25}", "5")  # a ready worker
    pid = worker_pid()
    refused, calls = worker_stats().statuses.get("refused", 0), worker_stats().calls
    assert not is_equivalent("\\sum_{n=1}^{\\infty} \\frac{1}{2^n}", "1", timeout=10.0)
    assert worker_stats().calls == calls + 1
    assert worker_stats().statuses.get("refused", 0) == refused + 1, (
        f"{worker_stats()}: not refused; if sympy no longer builds that table from strings, use another road"
    )
    assert is_equivalent("\\sqrt{121}", "11") and worker_pid() == pid


def test_huge_answer_never_reaches_the_worker():
    """A 1 MB answer is compared as a string only: fast, no worker call, equal only to itself."""
    calls = worker_stats().calls
    answer = "9" * 1_000_000 + "+x"
    started = time.perf_counter()
    assert is_equivalent(answer, answer)
    assert not is_equivalent(answer, "9" * 999_999 + "+x")
    assert not is_equivalent(answer, "1")
    assert time.perf_counter() - started < 2.0
    assert worker_stats().calls == calls


def test_worker_address_space_is_limited():
    """The worker runs under RLIMIT_AS (memory bounded), set by the worker itself after start-up."""
    assert is_equivalent("\\sqrt{4}", "2")
    limits = Path(f"/proc/{worker_pid()}/limits").read_text()
    line = next(row for row in limits.splitlines() if row.startswith("Max address space"))
    assert int(line.split()[3]) == equivalence._worker.memory_mb * 1024 * 1024


def test_hung_worker_is_killed_and_replaced():
    """A worker that stops answering (C code no timer can interrupt) is killed at the deadline: False."""
    assert is_equivalent("\\sqrt{9}", "3")
    pid = worker_pid()
    killed = worker_stats().statuses.get("killed", 0)
    os.kill(pid, signal.SIGSTOP)  # as hung as a process can be
    started = time.perf_counter()
    assert not is_equivalent("\\sqrt{16}", "4", timeout=TIMEOUT)
    assert time.perf_counter() - started < TIMEOUT + SLACK
    assert worker_stats().statuses.get("killed", 0) == killed + 1
    assert worker_pid() != pid
    started = time.perf_counter()  # the replacement is still importing sympy: the bound still holds
    assert not is_equivalent("\\sqrt{64}", "8", timeout=0.2)
    assert time.perf_counter() - started < 0.2 + SLACK
    assert equivalence.start_worker(wait=True)
    assert is_equivalent("\\sqrt{64}", "8")  # the replacement works; "starting" was not cached
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_crashed_worker_is_restarted():
    """A worker that died (e.g. killed for memory) is replaced before the next comparison."""
    assert is_equivalent("\\sqrt{36}", "6")
    pid = worker_pid()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    assert is_equivalent("\\sqrt{49}", "7", timeout=30.0)  # room for the replacement's start-up
    assert worker_pid() != pid


def test_concurrent_callers():
    """Four threads grading at once all get correct answers (one comparison in the worker at a time)."""
    results: list[bool] = []
    pairs = [(f"\\sqrt{{{n * n}}}", str(n)) for n in range(10, 30)]

    def grade(offset: int) -> None:
        results.extend(is_equivalent(a, g, timeout=5.0) for a, g in pairs[offset::4])

    threads = [threading.Thread(target=grade, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [True] * len(pairs)
