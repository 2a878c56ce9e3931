"""Mutation checks: break guarded code on purpose, run the tests that guard it, expect each run to fail.

Usage: .venv/bin/python scripts/mutation_check.py [WORD ...]   (about 4 minutes; restores every file it
touches; with WORDs, only the mutants whose name holds one of them)
Prints CAUGHT or MISSED per mutant and exits 1 if any was missed. Not part of CI: it edits the work tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    name: str
    path: str
    original: str
    broken: str
    tests: str


MUTANTS = [
    Mutant("eval tripwire removed", "answer_parsers/worker.py", "    _install_tripwire()\n", "    pass\n",
           "tests/test_grader_hostile.py::test_comparison_that_reaches_sympify_is_refused_in_the_worker"),
    Mutant("a timeout cached for any budget", "answer_parsers/equivalence.py",
           "holds_for = worker_seconds * _REUSE_SLACK if status in _TIMED_OUT else math.inf",
           "holds_for = math.inf", "tests/test_equivalence.py -k timeout"),
    Mutant("verdict depends on the order", "answer_parsers/equivalence.py",
           "answer, gold = sorted((answer, gold))", "pass", "tests/test_equivalence.py -k reflexive"),
    Mutant("a late 'ready' ignored", "answer_parsers/checker.py",
           "            left = max(0.0, deadline - time.monotonic())\n",
           "            left = deadline - time.monotonic()\n            if left <= 0:\n                return None\n",
           "tests/test_grader_startup.py"),
    Mutant("a worker that cannot start reads as 'not equal'", "answer_parsers/equivalence.py",
           "    except GraderUnavailableError:\n        raise\n    except Exception:", "    except Exception:",
           "tests/test_grader_startup.py"),
    Mutant("abstained groups trained", "harness/loop.py", "            continue  # an abstained problem",
           "            pass  # an abstained problem", "tests/test_abstention.py"),
    Mutant("a step repeats a problem across an epoch boundary", "harness/loop.py",
           "chosen += epoch_order(count, epoch + 1, per_step, seed)",
           "chosen += epoch_order(count, epoch + 1, 0, seed)", "tests/test_schedule.py"),
    Mutant("write_atomic leaves its temporary file", "harness/rundir.py",
           "        Path(tmp).unlink(missing_ok=True)\n        raise", "        raise",
           "tests/test_rundir.py -k write"),
    Mutant("bench retries never measure again", "harness/perf/cli.py", "    if not bad:\n        return figures",
           "    if True:\n        return figures", "tests/test_bench_compare.py"),
    Mutant("bench exits 0 on a regression", "harness/perf/cli.py",
           "    return 1 if any(row.regressed for row in rows) else 0", "    return 0", "tests/test_bench_compare.py"),
    Mutant("a non-finite gradient applied", "harness/optimizers/policy.py",
           "        if torch.isfinite(torch.tensor(norm)):", "        if True:", "tests/test_grpo_precision.py"),
    Mutant("each micro-batch normalised alone", "harness/optimizers/grpo.py",
           "token_weights(mb.seq_ids, opts.aggregation, num_tokens, num_seqs, scale)",
           "token_weights(mb.seq_ids, opts.aggregation, float(len(mb.targets)), num_seqs, scale)",
           "tests/test_grpo.py -k micro_batching"),
    Mutant("groups whose rewards all agree leave the normaliser", "harness/optimizers/grpo.py",
           "lengths = [len(r.completion_token_ids) for r in rollouts if r.completion_token_ids]",
           "lengths = [len(r.completion_token_ids) for r in rollouts if r.completion_token_ids and "
           "len({x.reward for x in rollouts if x.group_index == r.group_index}) > 1]",
           "tests/test_trl_parity.py"),
    Mutant("training log-probs ignore the sampling temperature", "harness/optimizers/policy.py",
           "return hidden if self._temperature == 1.0 else hidden / self._temperature", "return hidden",
           "tests/test_trl_parity.py"),
    Mutant("the TRL bridge votes on each process's share of a group", "harness/integrations/trl_reward.py",
           "    if state.num_processes == 1:", "    if True:", "tests/test_trl_reward.py -k two"),
    Mutant("ranks do not sum their gradients", "harness/optimizers/policy.py",
           "        self.processes.sum_tensors([param.grad for param in [*self._master, *self.extra.parameters()]])",
           "        pass", "tests/test_processes.py -k two_ranks_equal"),
    Mutant("a rank without micro-batches adds the previous step's gradients", "harness/optimizers/policy.py",
           "                master.grad.zero_()  # the persistent", "                pass  # the persistent",
           "tests/test_processes.py -k two_ranks_equal"),
    Mutant("PPO whitens each rank's advantages alone", "harness/optimizers/ppo.py",
           "        first = self.processes.sum_values(", "        first = (lambda values: values)(",
           "tests/test_processes.py -k two_ranks_equal"),
    Mutant("a prompt's samples depend on the rank's engine seed", "harness/samplers/hf.py",
           "mix_seed(request_seed, zlib.crc32(prompt.encode()), start)",
           "mix_seed(self.seed, request_seed, zlib.crc32(prompt.encode()), start)",
           "tests/test_processes.py -k seed_per_prompt"),
]


def check(mutant: Mutant) -> bool:
    """True when the guarding tests fail on the broken code (the mutant is caught)."""
    file = REPO / mutant.path
    text = file.read_text()
    if text.count(mutant.original) != 1:
        raise SystemExit(f"{mutant.name}: the code to break is no longer in {mutant.path}; update this script")
    file.write_text(text.replace(mutant.original, mutant.broken))
    try:
        done = subprocess.run(
            f"CI=true {sys.executable} -m pytest -q -x -p no:cacheprovider {mutant.tests}",
            shell=True, cwd=REPO, capture_output=True, text=True, timeout=900,
        )
    finally:
        file.write_text(text)
    lines = done.stdout.strip().splitlines()
    print(f"{'CAUGHT' if done.returncode else 'MISSED'} | {mutant.name} | {mutant.tests} | "
          f"{lines[-1] if lines else done.stderr[-200:]}", flush=True)
    return done.returncode != 0


if __name__ == "__main__":
    chosen = [m for m in MUTANTS if not sys.argv[1:] or any(word in m.name for word in sys.argv[1:])]
    missed = [mutant.name for mutant in chosen if not check(mutant)]
    sys.exit(1 if missed else 0)
