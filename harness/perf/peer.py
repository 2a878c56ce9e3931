"""The peer baseline: TRL's GRPOTrainer with our majority vote as its reward function, as a researcher would
write it on this CPU (fp32, `use_cpu=True`, transformers generate), on the loop bench's model, prompts, N and
token budget. Its per-step time is what one of our loop iterations is compared with."""

from __future__ import annotations

import os
import tempfile
import time

from harness.integrations.trl_reward import make_reward_function
from harness.models import resolve_model
from harness.perf.loopbench import PARSER_OPTIONS, loop_config, step_problems
from harness.perf.measures import BenchSize
from harness.plugins import get_plugins
from harness.prompts import format_prompts


def trl_config(size: BenchSize, seed: int, output_dir: str):
    """GRPOConfig matching the loop bench's GRPO: same lr, KL weight, clip, weight decay, micro-batch of 8,
    one optimizer step per generation of loop_problems x loop_n completions."""
    from trl import GRPOConfig

    completions = size.loop_problems * size.loop_n
    micro_batch = min(8, completions)
    if completions % micro_batch:
        raise ValueError(f"loop_problems x loop_n ({completions}) must be a multiple of {micro_batch}")
    return GRPOConfig(
        output_dir=output_dir, use_cpu=True, bf16=False, seed=seed, report_to="none", save_strategy="no",
        per_device_train_batch_size=micro_batch, gradient_accumulation_steps=completions // micro_batch,
        num_generations=size.loop_n, max_completion_length=size.loop_max_tokens, temperature=1.0, top_p=1.0,
        learning_rate=5e-6, weight_decay=0.01, beta=0.001, epsilon=0.2, max_grad_norm=1.0,
        max_steps=size.peer_steps, logging_steps=1, shuffle_dataset=False, disable_tqdm=True,
    )


def trl_grpo_seconds(size: BenchSize, seed: int) -> dict[str, float]:
    """Seconds per TRL GRPOTrainer step (generation + reward + loss + backward + update), and its reward mean."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    config = loop_config(size, seed)
    model_path = resolve_model(config.model)
    problems = [p for step in step_problems(size, seed, size.peer_steps) for p in step]
    prompts = format_prompts(model_path, problems, config.instruction)  # the strings our sampler gets
    plugins = get_plugins()
    parser = plugins["answer_parser"].create(config.answer_parser, PARSER_OPTIONS)
    strategy = plugins["strategy"].create(config.strategy, {})

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    timer = StepTimer()
    try:
        with tempfile.TemporaryDirectory(prefix="harness-bench-trl-") as folder:
            trainer = GRPOTrainer(model=model_path, reward_funcs=make_reward_function(strategy, parser),
                                  args=trl_config(size, seed, folder),
                                  train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]), callbacks=[timer])
            trainer.train()
    finally:
        parser.close()
    if len(timer.seconds) != size.peer_steps:
        raise RuntimeError(f"TRL ran {len(timer.seconds)} steps, expected {size.peer_steps}")
    rewards = [entry["reward"] for entry in trainer.state.log_history if "reward" in entry]
    return {"trl_step_seconds": sum(timer.seconds) / len(timer.seconds),
            "trl_reward_mean": sum(rewards) / len(rewards) if rewards else float("nan")}
