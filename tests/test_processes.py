"""Data-parallel runs (`harness run --processes N`, harness/distributed.py).

The slow test runs the whole loop for real on the embedded model: once in one process, once in 2 gloo ranks
started through accelerate launch, SIGKILLed during its second optimizer step and resumed. Both use the hf
sampler with seed_per_prompt (a prompt's samples do not depend on which rank draws them) and one thread per
process, so the two runs must agree exactly on pseudo-labels, rewards, gradient norms and evaluation, and on the final
weights to within a few fp32 rounding steps.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.distributed import Processes
from harness.errors import ConfigError
from harness.loop import check_processes
from tests.test_crash_resume import Child, checkpointed_step, logged_steps

RUN = ["--sampler", "hf", "--sampler-opt", "seed_per_prompt=true", "--limit", "4", "--problems-per-step", "4",
       "--n-votes", "4", "--n-train", "3", "--max-tokens", "12", "--steps", "2", "--eval-k", "2",
       "--optimizer-opt", "micro_batch_size=4"]  # 12 rollouts: 3 micro-batches, 2 on rank 0 and 1 on rank 1


def test_one_process_collectives_are_the_identity() -> None:
    one = Processes()
    assert (one.rank, one.world, one.is_main) == (0, 1, True)
    assert one.shard([1, 2, 3]) == [1, 2, 3] and one.gather_shards([1, 2, 3]) == [1, 2, 3]
    assert one.sum_values({"loss": 1.5}) == {"loss": 1.5} and one.broadcast("x") == "x"


def test_shards_are_contiguous_blocks_that_cover_the_list_once() -> None:
    items = list(range(7))
    for world in (1, 2, 3, 7, 9):
        blocks = []
        for rank in range(world):
            ranked = Processes()
            ranked.rank, ranked.world = rank, world
            blocks.append(ranked.shard(items))
        assert [item for block in blocks for item in block] == items
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


@pytest.fixture
def ppo_not_data_parallel(monkeypatch):
    """ppo as a third-party optimizer that does not say it trains data-parallel (Optimizer's default)."""
    from harness.optimizers.ppo import PPOOptimizer

    monkeypatch.setattr(PPOOptimizer, "data_parallel", False)


def test_a_run_refuses_another_process_count_and_an_optimizer_that_is_not_data_parallel(
        ppo_not_data_parallel) -> None:
    with pytest.raises(ConfigError, match=r"configured for 2 process\(es\) and 3 were started; start it with "
                                          r"--processes 2"):
        check_processes(RunConfig(processes=2), 3)
    with pytest.raises(ConfigError, match="optimizer 'ppo' does not train data-parallel; use --processes 1"):
        check_processes(RunConfig(processes=2, optimizer="ppo"), 2)
    check_processes(RunConfig(processes=2), 2)


def test_harness_run_refuses_an_optimizer_that_is_not_data_parallel_before_starting_any_process(
        tmp_path, capsys, ppo_not_data_parallel) -> None:
    from harness.cli import main

    code = main(["run", "--processes", "2", "--optimizer", "ppo", "--output", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: optimizer 'ppo' does not train data-parallel; use --processes 1, or an optimizer that does (grpo, ppo)")


def test_a_rank_error_reads_as_one_line_without_the_launchers_report(tmp_path) -> None:
    """A bad option found by the ranks (a hand-edited config.json) stops both; the user reads the error once,
    without torch elastic's log lines or accelerate's traceback."""
    import subprocess
    import sys

    from tests.conftest import REPO

    run = tmp_path / "run"
    run.mkdir()
    config = RunConfig(processes=2, sampler="hf", optimizer_options={"micro_batch_size": 0}).model_dump(mode="json")
    (run / "config.json").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--resume", str(run)], cwd=REPO, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"run directory: {run}", "error: optimizer 'grpo' option micro_batch_size: Input should be "
                     "greater than or equal to 1 (got 0)"], done.stderr[-3000:]


def test_grpo_and_ppo_steps_in_two_ranks_equal_one_process(tiny_llama, tmp_path) -> None:
    """Two optimizer steps on a fixed batch, in 2 gloo ranks (accelerate launch) and in one process: grpo with
    the KL in the reward (per-sequence KL summed across ranks), batch scaling and 2 epochs; ppo with its GAE
    advantages whitened over the whole batch. Same metrics, same weights to fp32 rounding."""
    import subprocess
    import sys

    import torch

    from tests.conftest import REPO
    from tests.scripts import two_rank_optimizers

    script = REPO / "tests" / "scripts" / "two_rank_optimizers.py"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(__import__("harness.launch").launch.free_port()), str(script), tiny_llama, str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    two_rank_optimizers.main(tiny_llama, tmp_path)
    for name in two_rank_optimizers.OPTIMIZERS:
        two, one = (torch.load(tmp_path / f"{world}-{name}.pt", weights_only=True) for world in (2, 1))
        for mine, theirs in zip(two["metrics"], one["metrics"], strict=True):
            assert mine.keys() == theirs.keys()
            for key in mine.keys() - {"seconds", "tokens_per_second"}:
                # a clip fraction counts tokens past a threshold: a rounding-level change may flip one of ~100
                near = 0.02 if key.endswith("clip_fraction") else 1e-7
                assert mine[key] == pytest.approx(theirs[key], rel=1e-5, abs=near), (name, key)
        worst = max(float((two["weights"][k] - one["weights"][k]).abs().max()) for k in one["weights"])
        assert worst < 1e-6, (name, worst)  # lr 1e-3: a step moves weights by about 1e-3


def test_each_rank_seeds_its_engine_apart_and_rank_0_keeps_the_run_seed() -> None:
    from harness.distributed import rank_seed

    assert rank_seed(5, 0) == 5 and len({rank_seed(5, rank) for rank in range(8)}) == 8


def test_hf_seed_per_prompt_samples_depend_on_the_prompt_and_request_only() -> None:
    """The sampler that repeats samples across ranks: a prompt's samples are the same alone or beside
    others, first or last, from an engine seeded for another rank."""
    from harness.interfaces import SamplingParams
    from harness.models import resolve_model
    from harness.samplers.hf import HFOptions, HFSampler

    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=6, seed=11)
    sampler = HFSampler(HFOptions(seed_per_prompt=True, batch_size=2), resolve_model("smollm2-135m"), seed=0)
    both = sampler.generate(["What is 2+3?", "Name a colour."], params)
    sampler.seed = 12345  # as another rank's engine is seeded
    alone = sampler.generate(["Name a colour."], params)
    swapped = sampler.generate(["Name a colour.", "What is 2+3?"], params)
    tokens = [[c.token_ids for c in group] for group in (both[1], alone[0], swapped[0])]
    assert tokens[0] == tokens[1] == tokens[2]
    assert [c.token_ids for c in both[0]] == [c.token_ids for c in swapped[1]]
    assert len({tuple(ids) for ids in tokens[0]}) > 1  # the 3 copies are 3 draws, not one repeated


def rank_processes(run: Path) -> list[int]:
    """Pids of live processes whose command line runs `harness run --resume <run>` (the ranks)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--resume" in command and str(run).encode() in command and entry.name.isdigit():
            pids.append(int(entry.name))
    return [pid for pid in pids if pid != os.getpid()]


@pytest.fixture
def no_orphan_ranks():
    runs: list[Path] = []
    yield runs
    while Child.started:
        child = Child.started.pop()
        if child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
    for run in runs:
        for pid in rank_processes(run):
            os.kill(pid, signal.SIGKILL)


def final_policy(run: Path) -> dict:
    import torch

    meta = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    return torch.load(run / "checkpoint" / meta["file"], map_location="cpu", weights_only=True)["optimizer"]["policy"]


def records(run: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_killed_and_resumed_label_and_train_exactly_as_one_process(tmp_path, monkeypatch,
                                                                                  no_orphan_ranks) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per process in both runs: identical float sums
    one, two = tmp_path / "one", tmp_path / "two"
    no_orphan_ranks.append(two)
    single = Child(*RUN, "--output", str(one))
    assert single.finish() == 0, single.stderr[-3000:]

    first = Child(*RUN, "--processes", "2", "--output", str(two))
    first.wait_for("optimize", occurrence=3)  # each rank announces each phase: #3 is step 1's
    first.signal(signal.SIGKILL)  # the launcher dies; its ranks get SIGTERM from the kernel (PR_SET_PDEATHSIG)
    deadline = time.monotonic() + 60
    while rank_processes(two) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not rank_processes(two), "a rank outlived its killed launcher"
    assert (logged_steps(two), checkpointed_step(two)) == ([0], 1)

    resumed = Child("--resume", str(two))  # starts the run's 2 processes again
    assert resumed.finish() == 0, resumed.stderr[-3000:]
    assert "resumed from step 1" in resumed.stderr and resumed.stderr.count("resumed from step 1") == 1
    assert json.loads((two / "config.json").read_text())["processes"] == 2

    assert records(two, "labels.jsonl") == records(one, "labels.jsonl")
    assert records(two, "eval.jsonl") == records(one, "eval.jsonl")
    exact = ("label_accuracy", "majority_ratio", "mean_reward", "sampled_tokens", "train/tokens",
             "train/trained_sequences", "train/grad_norm", "train/reward_mean")
    for mine, theirs in zip(records(two, "metrics.jsonl"), records(one, "metrics.jsonl"), strict=True):
        assert {k: mine[k] for k in exact} == {k: theirs[k] for k in exact}
        for key in ("train/loss", "train/entropy", "train/kl"):  # summed across ranks in another order
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-9)
    # the fp32 masters agree to rounding: seen 7.5e-9 and, when the cross-rank sum regrouped the micro-batches,
    # 3.1e-7 (AdamW divides by sqrt(v), so a weight whose gradient is near 0 turns a rounding difference into
    # a visible fraction of its step). The bound is 1/30 of one step's size (lr 3e-5 per weight)
    weights, reference = final_policy(two), final_policy(one)
    assert max(float((weights[name] - reference[name]).abs().max()) for name in reference) <= 1e-6


@pytest.mark.slow
def test_two_ranks_with_the_default_vllm_sampler_finish_a_step(tmp_path) -> None:
    """Each rank starts its own in-process vLLM engine (seeded apart) beside torch.distributed's group."""
    import subprocess
    import sys

    from tests.conftest import REPO

    run = tmp_path / "run"
    args = ["--limit", "2", "--problems-per-step", "2", "--n-votes", "2", "--max-tokens", "8", "--steps", "1",
            "--no-eval", "--processes", "2", "--output", str(run)]
    done = subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=REPO, text=True, capture_output=True,
                          timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["sampler"] == "vllm"
    assert logged_steps(run) == [0] and checkpointed_step(run) == 1
    assert records(run, "labels.jsonl")[0]["pseudo_labels"].keys() == {"arith-0000", "arith-0001"}
