"""One real TRL GRPOTrainer step on the embedded model with our majority vote as the reward function, run
under `accelerate launch --multi_gpu --num_processes N` by tests/test_trl_reward.py (on a CPU-only host this
starts N gloo processes: TRL's `use_cpu=True` makes accelerate's state MULTI_CPU; accelerate 1.16's `--cpu`
flag starts one process only). Each process writes the (prompt, completion, reward) triples its reward
function saw and returned to OUT/rank<k>.json."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from accelerate import PartialState  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from harness.integrations.trl_reward import make_reward_function  # noqa: E402
from harness.models import resolve_model  # noqa: E402
from harness.plugins import get_plugins  # noqa: E402

PARSER_OPTIONS = {"fallbacks": ["last_number"]}  # the 135M model seldom boxes its answer
PROMPTS = [f"What is {a} + {b}? Answer with a number." for a, b in ((2, 3), (4, 4), (1, 6), (5, 2))]
GENERATIONS = 4
PER_STEP = 3  # prompts per step: 12 completions, 6 per process, so the 2nd prompt is split 2 + 2


def main(out: Path) -> None:
    plugins = get_plugins()
    parser = plugins["answer_parser"].create("boxed", PARSER_OPTIONS)
    strategy = plugins["strategy"].create("majority", {})
    group_sizes: dict[str, int] = {}  # prompt -> how many completions the strategy saw in its group
    label = strategy.label

    def label_and_record(group):
        group_sizes[group.prompt] = len(group.completions)
        return label(group)

    strategy.label = label_and_record
    vote = make_reward_function(strategy, parser)
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # PartialState() here would fix it before TRL's use_cpu

    def recorded(prompts, completions, **kwargs):
        rank = PartialState().process_index  # the trainer's state by now
        rewards = vote(prompts, completions, **kwargs)
        triples = zip(prompts, completions, rewards, strict=True)
        rows = [{"prompt": p, "completion": c, "reward": r} for p, c, r in triples]
        (out / f"rank{rank}.json").write_text(json.dumps({"rows": rows, "group_sizes": group_sizes}))
        return rewards

    recorded.__name__ = vote.__name__
    with tempfile.TemporaryDirectory() as folder:
        args = GRPOConfig(output_dir=folder, use_cpu=True, bf16=False, seed=0, report_to="none",
                          save_strategy="no", per_device_train_batch_size=PER_STEP * GENERATIONS // processes,
                          num_generations=GENERATIONS, max_completion_length=12, max_steps=1, logging_steps=1,
                          shuffle_dataset=False, disable_tqdm=True)
        trainer = GRPOTrainer(model=resolve_model("smollm2-135m"), reward_funcs=recorded, args=args,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS]))
        trainer.train()
    parser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
