"""The math-verify worker: a child process that compares two LaTeX answers symbolically.

Started by answer_parsers.checker as `python -I worker.py MEMORY_MB` (standalone: stdlib + math-verify only).
Protocol, one JSON object per line: stdin gets {"id", "gold", "answer", "timeout"}, stdout answers
{"id", "equal", "status"} where status is "ok", "timeout" (soft timer fired), "memory", "refused"
(the eval tripwire fired) or "error".
The parent kills this process when a reply does not come in time (C code the timer cannot interrupt).

Guarantees kept here:
- Only LaTeX parsing (LatexExtractionConfig). ExprExtractionConfig would run sympy's parse_expr, which
  calls Python's eval on model text. latex2sympy itself builds numbers with sympy.Number(token), which
  also goes through parse_expr/eval: those two functions are replaced by direct constructors. As a
  tripwire, sympy's parse_expr and eval_expr refuse to run once start-up is over (status "refused").
- A soft SIGALRM timer interrupts Python-level sympy work (this is the main thread, so signals work).
- RLIMIT_AS bounds the whole process's address space.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import signal
import sys

MAX_CHARS = 8192
_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"([0-9]*\.?[0-9]*)(?:[eE]([-+]?[0-9]{1,6}))?")
_MAX_EXPONENT = 10000
_WARM_UP = (
    ("\\frac{1}{2}+x", "0.5+x"),
    ("(x+1)^2", "x^2+2x+1"),
    ("(1,2]", "\\{1,2\\}"),
    ("e^{x}\\sin(x)", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("x \\leq 3", "y=2x+1"),
)


class SoftTimeout(BaseException):
    """Raised by the SIGALRM handler; BaseException so that library `except Exception` cannot swallow it."""


class EvalRefused(BaseException):
    """Raised when anything tries to eval/exec after start-up."""


def _refuse(*_args, **_kwargs):
    raise EvalRefused("eval is disabled in the grading worker")


def _on_alarm(_signum, _frame):
    raise SoftTimeout()


def _number(text: str):
    """A sympy number from a lexer NUMBER token, built directly (sympy.Number(str) goes through eval)."""
    import sympy

    text = text.replace(",", "")
    if _INTEGER.fullmatch(text):
        return sympy.Integer(int(text))
    match = _DECIMAL.fullmatch(text)
    if match and any(char.isdigit() for char in match[1]) and abs(int(match[2] or 0)) <= _MAX_EXPONENT:
        return sympy.Float(text)
    raise ValueError("not a plain number")


def _make_numbers_safe() -> None:
    """latex2sympy turns number tokens into sympy.Number(text): sympify -> parse_expr -> eval. Replace it."""
    import latex2sympy2_extended.latex2sympy2 as latex2sympy

    def convert_number(number: str):
        if "," in number and number.startswith("0"):  # "0,111" is a decimal comma, as upstream reads it
            number = number.replace(",", ".")
        return _number(number.replace(" ", "").lstrip("0") or "0")

    latex2sympy.convert_number = convert_number
    latex2sympy._Latex2Sympy.parse_number = lambda self, text: _number(text)


def _load():
    """Import math-verify and warm its lazy imports, so the tripwire does not catch start-up work."""
    from math_verify import LatexExtractionConfig, parse, verify

    _make_numbers_safe()

    config = [LatexExtractionConfig(boxed_match_priority=0)]

    def parse_latex(text: str):
        return parse(f"\\boxed{{{text}}}", extraction_config=config, parsing_timeout=None,
                     fallback_mode="no_fallback")

    for gold, answer in _WARM_UP:  # the first real request should not pay for sympy's lazy imports
        verify(parse_latex(gold), parse_latex(answer), timeout_seconds=None)
    try:  # sympy builds its integral table from strings (S('3/2')) on first use: before the tripwire
        from sympy.integrals import meijerint

        if not meijerint._lookup_table:
            table: dict = {}
            meijerint._create_lookup_table(table)
            meijerint._lookup_table = table
    except Exception:  # a private API: if it moved, integrals merely stay unsupported
        pass
    return parse_latex, verify


def _install_tripwire() -> None:
    """Every road from a string to sympy's eval goes through parse_expr/eval_expr: close them.

    (Python's own eval/exec stay: sympy's lazy imports run module code that uses exec.)
    """
    import latex2sympy2_extended.latex2sympy2 as latex2sympy
    import sympy.parsing.sympy_parser as sympy_parser

    sympy_parser.eval_expr = _refuse
    sympy_parser.parse_expr = _refuse
    latex2sympy.parse_expr = _refuse


def _compare(parse_latex, verify, request: dict) -> tuple[bool, str]:
    gold, answer = request.get("gold"), request.get("answer")
    if not isinstance(gold, str) or not isinstance(answer, str):
        return False, "error"
    if len(gold) > MAX_CHARS or len(answer) > MAX_CHARS:
        return False, "error"
    signal.setitimer(signal.ITIMER_REAL, max(0.01, float(request.get("timeout", 1.0))))
    try:
        equal = bool(verify(parse_latex(gold), parse_latex(answer), timeout_seconds=None))
        return equal, "ok"
    except SoftTimeout:
        return False, "timeout"
    except EvalRefused:
        return False, "refused"
    except MemoryError:
        return False, "memory"
    except Exception:  # RecursionError from deep nesting, parser errors
        return False, "error"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _extend_sys_path() -> None:
    """Take over the parent's import path (we run with -I), minus this folder: math-verify, not our modules."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        paths = json.loads(os.environ.get("ANSWER_PARSERS_SYS_PATH", "[]"))
    except ValueError:
        return
    for path in paths:
        if isinstance(path, str) and path not in sys.path and os.path.abspath(path) != here:
            sys.path.append(path)


def main() -> None:
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    _extend_sys_path()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray prints from libraries must not corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; EOF ends us
    logging.disable(logging.CRITICAL)
    parse_latex, verify = _load()
    _install_tripwire()
    signal.signal(signal.SIGALRM, _on_alarm)
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    protocol.write('{"ready": true}\n')
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if not isinstance(request, dict):
            continue
        try:
            equal, status = _compare(parse_latex, verify, request)
        except BaseException:  # a timer that fired between try blocks, EvalRefused, anything: not equal
            signal.setitimer(signal.ITIMER_REAL, 0)
            equal, status = False, "error"
        protocol.write(json.dumps({"id": request.get("id"), "equal": equal, "status": status}) + "\n")


if __name__ == "__main__":
    main()
