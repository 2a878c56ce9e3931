"""The built-in benchmarks, registered through the same hook a third-party plugin implements."""

from harness.hookspecs import hookimpl


@hookimpl
def register_benchmarks(register):
    from harness.benchmarks.arith import Arith
    from harness.benchmarks.competition import AIME24, AMC, Math500
    from harness.benchmarks.user_file import UserFile

    for benchmark in (Arith, AIME24, AMC, Math500, UserFile):
        register(benchmark)
