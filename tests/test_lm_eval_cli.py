"""`harness lm-eval`: lm-eval's own CLI with our models and tasks registered, and the `ttrl` lm-eval model that
adapts to the prompts it is asked to answer (unlabelled) before answering them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.errors import ConfigError
from harness.integrations import lm_eval_cli
from harness.integrations.lm_eval_ttrl import GOLD_FIGURES, TTRLLM
from tests.conftest import REPO

TINY = ["--tasks", "ttrl_arith", "--limit", "2", "--k", "2", "--max-tokens", "32"]


def test_lm_eval_arguments_pass_through_with_our_defaults_only_where_they_say_nothing():
    args = lm_eval_cli.with_defaults(["--tasks", "ttrl_arith", "--num_fewshot", "0"])
    assert args == ["--tasks", "ttrl_arith", "--num_fewshot", "0", "--model", "ttrl-harness",
                    "--model_args", "pretrained=smollm2-135m", "--apply_chat_template"]
    args = lm_eval_cli.with_defaults(["--model=ttrl", "--model_args", "pretrained=x,steps=2", "--output_path",
                                      "out/", "--apply_chat_template=False"])
    assert args == ["--model=ttrl", "--model_args", "pretrained=x,steps=2,run_dir=out/ttrl-adaptation",
                    "--output_path", "out/", "--apply_chat_template=False"]
    assert lm_eval_cli.pretrained_of(args) == "x"


def test_gold_figures_are_exactly_the_ones_read_against_the_gold():
    assert {"label_accuracy", "reward_accuracy", "maj_at_n", "pass_at_1", "pass_at_n"} == GOLD_FIGURES


@pytest.mark.parametrize(("model_args", "message"), [
    ({"strategy": "oracle"}, "needs gold labels"),
    ({"stepz": "2"}, "unknown ttrl model_args stepz"),
    ({"strategy_options": "{oops"}, "give a JSON object"),
])
def test_bad_ttrl_model_args_are_one_line_config_errors(model_args, message):
    with pytest.raises(ConfigError, match=message):
        TTRLLM(pretrained="smollm2-135m", **model_args)


def harness_lm_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "lm-eval", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900)


def results_of(folder) -> dict:
    (path,) = folder.glob("*/results_*.json")
    return json.loads(path.read_text())["results"]["ttrl_arith"]


@pytest.mark.slow
def test_lm_eval_cli_evaluates_the_embedded_model_on_our_task(tmp_path):
    """Real lm-eval, its own flags (--model_args, --limit, --output_path, --log_samples), our task and model."""
    done = harness_lm_eval("--model", "ttrl-harness", "--model_args", "pretrained=smollm2-135m,sampler=hf",
                           *TINY, "--output_path", str(tmp_path), "--log_samples")
    assert done.returncode == 0, done.stderr[-3000:]
    results = results_of(tmp_path)
    assert {"avg_at_2,graded", "maj_at_2,graded", "pass_at_2,graded"} <= set(results)
    samples = [json.loads(line) for path in tmp_path.glob("*/samples_ttrl_arith_*.jsonl") for line in
               path.read_text().splitlines()]
    assert len(samples) == 2 and all(len(sample["resps"][0]) == 2 for sample in samples)  # k = 2 responses each
    # the prompt `harness eval` gives arith: its benchmark's own instruction, in the chat template
    assert all("Answer with only the final number in \\boxed{}." in sample["arguments"]["gen_args_0"]["arg_0"]
               for sample in samples)


@pytest.mark.slow
def test_the_ttrl_model_adapts_on_the_prompts_then_answers(tmp_path):
    """`--model ttrl`: one GRPO step of majority-vote TTRL on the 2 prompts, then lm-eval's answers; the
    adaptation's files land inside --output_path, hold no gold-based figure, and the weights changed."""
    done = harness_lm_eval("--model", "ttrl", "--model_args",
                           "pretrained=smollm2-135m,sampler=hf,strategy=majority,steps=1,n_votes=4,problems_per_step=2",
                           *TINY, "--output_path", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"avg_at_2,graded", "maj_at_2,graded", "pass_at_2,graded"} <= set(results_of(tmp_path))
    adaptation = tmp_path / "ttrl-adaptation"
    summary = json.loads((adaptation / "adaptation.json").read_text())
    assert summary["prompts"] == 2 and summary["steps"] == 1 and summary["weights_changed"] is True
    (record,) = [json.loads(line) for line in (adaptation / "metrics.jsonl").read_text().splitlines()]
    assert record["train/trained_sequences"] > 0 and "majority_ratio" in record
    assert not GOLD_FIGURES & set(record)
    assert json.loads((adaptation / "config.json").read_text())["strategy"] == "majority"
