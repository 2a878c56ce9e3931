"""The `harness` command line: listings, one-line errors with exit codes, grading from stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def harness(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TTRL_HARNESS_PLUGINS": ""}  # built-ins only: independent of what else is installed
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_plugins_lists_every_builtin():
    """`harness plugins` prints kind, name, distribution and version for each built-in."""
    result = harness("plugins")
    assert result.returncode == 0, result.stderr
    rows = {tuple(line.split()[:3]) for line in result.stdout.splitlines()}
    for kind, name in [("strategy", "majority"), ("strategy", "weighted"), ("strategy", "oracle"),
                       ("optimizer", "grpo"), ("sampler", "vllm"), ("sampler", "hf"),
                       ("answer_parser", "boxed"), ("benchmark", "aime24"), ("benchmark", "amc"),
                       ("benchmark", "math500"), ("benchmark", "arith")]:
        assert (kind, name, "ttrl-harness") in rows


def test_unknown_strategy_is_one_line_and_exit_2(tmp_path):
    """A typo in --strategy fails before any work with a suggestion."""
    result = harness("run", "--strategy", "majorty", "--optimizer", "grpo", "--output", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: Unknown strategy 'majorty'. Did you mean: majority? Known: majority, oracle, random, weighted "
        "(only the plugins named in TTRL_HARNESS_PLUGINS='' were loaded)"]
    assert not (tmp_path / "r").exists()


def test_bad_config_lists_each_field(tmp_path):
    """Bad flags and plugin options give one line per field and exit code 2."""
    result = harness("run", "--n-votes", "0", "--temperature", "9", "--output", str(tmp_path / "r"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: n_votes: Input should be greater than or equal to 1")
    assert lines[1].startswith("temperature: Input should be less than or equal to 2")
    bad_option = harness("run", "--strategy-opt", "min_agreement=2", "--output", str(tmp_path / "r"))
    assert bad_option.returncode == 2
    assert "strategy 'majority' option min_agreement: Input should be less than or equal to 1" in bad_option.stderr


def test_grade_reads_stdin_and_passes_fields_through():
    """`harness grade -` answers each line with the extracted answer and its correctness."""
    lines = [{"completion": "so \\boxed{\\dfrac{1}{2}}", "gold": "\\frac12", "id": 1},
             {"completion": "no final answer", "gold": "3", "id": 2},
             {"completion": "Final Answer: The final answer is $28$. I hope it is correct.", "gold": "28", "id": 3}]
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = harness("grade", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(o["id"], o["answer"], o["correct"]) for o in out] == [
        (1, "\\dfrac{1}{2}", True), (2, None, False), (3, "28", True)]  # boxed, then "answer is" phrasings
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["count"] == 3 and summary["correct"] == 2
    boxed_only = harness("grade", "-", "--parser-opt", "fallbacks=", stdin=stdin)
    assert [json.loads(line)["answer"] for line in boxed_only.stdout.splitlines()] == ["\\dfrac{1}{2}", None, None]


def test_grade_reports_the_bad_line():
    """A broken JSON line names its line number."""
    result = harness("grade", "-", stdin='{"completion": "x", "gold": "1"}\n{not json\n')
    assert result.returncode != 0
    assert "line 2" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_each_subcommand_shows_only_its_own_flags_and_the_installed_plugins():
    """`eval --help` offers no training flag; `run --help` names the installed strategies; both take --verbose."""
    eval_help = harness("eval", "--help").stdout
    for training in ("--strategy", "--optimizer", "--steps", "--n-train", "--strategy-opt", "--lr"):
        assert training not in eval_help
    assert "--eval-k" in eval_help and "--verbose" in eval_help
    run_help = " ".join(harness("run", "--help").stdout.split())
    assert "Installed: majority, oracle, random, weighted." in run_help
    assert "Installed: aime24, amc, arith, file" in run_help


def test_plugins_name_prints_its_options_and_a_typo_suggests():
    """`harness plugins grpo` lists each option with type, default and description; a typo is one line."""
    done = harness("plugins", "grpo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("optimizer 'grpo' from ttrl-harness")
    assert "  lr: float, default 3e-05\n      Peak AdamW learning rate" in done.stdout
    assert "  path: str, required\n" in harness("plugins", "file").stdout
    typo = harness("plugins", "majorty")
    assert typo.returncode == 2
    assert typo.stderr.strip() == ("error: Unknown plugin 'majorty'. Did you mean: majority? "
                                   "`harness plugins` lists them all")


def test_config_json_is_fully_resolved(tmp_path):
    """The written config has every plugin's options with their defaults, and each plugin's distribution."""
    from harness.cli import build_parser
    from harness.config import RunConfig
    from harness.flags import config_from_args
    from harness.plugins import validate_plugins

    config = config_from_args(build_parser().parse_args(["run", "--lr", "1e-5"]))
    validate_plugins(config)
    assert isinstance(config, RunConfig)
    assert config.optimizer_options["lr"] == 1e-5 and config.optimizer_options["kl_coef"] == 0.001
    assert config.strategy_options == {"min_agreement": 0.0}
    assert config.benchmark_options["count"] == 16
    assert config.plugin_versions["strategy/majority"].startswith("ttrl-harness ")
    assert set(config.plugin_versions) == {"benchmark/arith", "strategy/majority", "answer_parser/boxed",
                                           "optimizer/grpo", f"sampler/{config.sampler}"}


@pytest.mark.slow
def test_a_run_is_quiet_by_default_and_verbose_shows_the_engines(tmp_path):
    """A real vLLM run prints its plan, progress, evaluation lines and the table, and no engine log line;
    --verbose brings vLLM's INFO lines back."""
    tiny = ("run", "--sampler", "vllm", "--limit", "2", "--problems-per-step", "2", "--n-votes", "2",
            "--max-tokens", "8", "--steps", "1", "--eval-k", "2")
    quiet = harness(*tiny, "--output", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("plan: smollm2-135m on arith (2 problems), strategy majority, optimizer grpo")
    assert not [line for line in lines if "INFO" in line or "WARNING" in line or "Warning" in line], lines
    text_lines = [line for line in lines if not line.startswith("TTRL steps:")]  # each bar redraw reads as a line
    assert len(text_lines) == 5, text_lines  # plan (2), run directory, eval before, eval after
    assert "| metric | before | after (step 1) | change |" in quiet.stdout
    verbose = harness(*tiny, "--verbose", "--output", str(tmp_path / "verbose"))
    assert verbose.returncode == 0 and "INFO" in verbose.stderr
