"""Registers the built-in benchmarks, exactly as a third-party plugin would."""

from benchmarks.arith import Arith
from benchmarks.competition import AIME24, AMC, Math500
from harness.hookspecs import hookimpl

BUILTIN_BENCHMARKS = (Arith, AIME24, AMC, Math500)


@hookimpl
def register_benchmarks(register):
    for benchmark in BUILTIN_BENCHMARKS:
        register(benchmark)
