"""Bad input through the `harness` command: each mistake is one `error:` line that says what to change,
exit code 1 or 2, no Python traceback, and (where the check can come first) no model is touched.

"No model is touched" is proved with an empty model cache (TTRL_HARNESS_CACHE): resolving the embedded
model would convert it into that folder, so the folder must still not exist afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from harness import rundir
from harness.benchmarks.files import read_problems
from harness.cli import main
from harness.config import RunConfig
from harness.errors import ConfigError, DataError
from harness.models import resolve_model
from harness.rundir import RunDir
from tests.conftest import REPO

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
PROBLEM_1 = '{"id": 1, "problem": "What is 1+1?", "answer": "2"}\n'
PROBLEM_2 = '{"id": 2, "problem": "What is 2+2?", "answer": "4"}\n'


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TTRL_HARNESS_PLUGINS": "", **(env or {})}  # built-ins only, unless a test says
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)


def error_line(stderr: str) -> str:
    """The one `error:` line, which must end the output; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    return errors[0]


@pytest.fixture
def empty_cache(tmp_path) -> dict[str, str]:
    """Environment whose model cache does not exist yet: the test checks it never gets created."""
    return {"TTRL_HARNESS_CACHE": str(tmp_path / "model-cache"), **OFFLINE}


def untouched(env: dict[str, str]) -> bool:
    return not Path(env["TTRL_HARNESS_CACHE"]).exists()


# --- checkpoints and the output directory ---------------------------------------------------------------

def corrupt_flip(run: RunDir) -> None:
    target = run.checkpoint_dir / "state-000001.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))


def corrupt_cut(run: RunDir) -> None:  # what a copy cut short leaves behind
    target = run.checkpoint_dir / "state-000001.pt"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])


def corrupt_index(run: RunDir) -> None:
    (run.checkpoint_dir / "checkpoint.json").write_text('{"step": 1, "fi')


@pytest.mark.parametrize("corrupt", [corrupt_flip, corrupt_cut, corrupt_index], ids=["flipped", "cut", "index"])
def test_corrupt_checkpoint_is_refused_before_any_model_loads(tmp_path, empty_cache, corrupt):
    """`run --resume` over a damaged checkpoint: exit 1, one line, nothing loaded."""
    config = RunConfig.model_validate({"sampler": "hf", "limit": 2, "steps": 2, "evaluation": {"enabled": False}})
    run = RunDir.create(tmp_path / "run", config.model_dump(mode="json"))
    run.save_checkpoint(1, {"w": torch.ones(3)})
    corrupt(run)
    result = harness("run", "--resume", str(run.path), env=empty_cache)
    assert result.returncode == 1
    assert "refusing" in error_line(result.stderr)
    assert untouched(empty_cache) and not run.metrics_path.exists()


def test_unwritable_output_fails_fast_without_loading_the_model(tmp_path, empty_cache):
    """--output under a regular file: exit 1, one line, before the model is resolved."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    started = time.monotonic()
    result = harness("run", "--sampler", "hf", "--output", str(blocker / "run"), env=empty_cache)
    assert result.returncode == 1
    assert error_line(result.stderr) == f"error: output directory {blocker / 'run'} is not writable (Not a directory)"
    assert untouched(empty_cache) and time.monotonic() - started < 120  # seconds: the import of torch, no model


def test_full_disk_is_detected_before_the_run_starts(tmp_path, monkeypatch, capsys):
    """Less free space than a checkpoint needs: refused with the free and needed sizes, no config written."""
    monkeypatch.setattr(rundir, "MIN_FREE_BYTES", 1 << 62)  # more than any disk: this one counts as full
    assert main(["run", "--sampler", "hf", "--output", str(tmp_path / "run")]) == 1
    line = error_line(capsys.readouterr().err)
    assert "GiB free; checkpoints need" in line and "pick another --output" in line
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize(("text", "code", "expected"), [
    ("{not json", 1, "config.json cannot be read (Expecting property name"),
    ('["a list"]', 1, "config.json holds no JSON object"),
    ('{"n_votes": 0}', 2, "config.json: n_votes: Input should be greater than or equal to 1 (got 0)"),
], ids=["garbled", "not-an-object", "bad-value"])
def test_damaged_saved_config_on_resume(tmp_path, capsys, text, code, expected):
    """A damaged config.json in the run directory is named, not a traceback."""
    (tmp_path / "config.json").write_text(text)
    assert main(["run", "--resume", str(tmp_path)]) == code
    assert expected in error_line(capsys.readouterr().err)


# --- data files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "content", "where"), [
    ("bad-json.jsonl", PROBLEM_1 + PROBLEM_2 + "{not json\n", "line 3: invalid JSON: Expecting property name"),
    ("no-answer.jsonl", PROBLEM_1 + '{"id": 2, "problem": "What is 2+2?"}\n', "line 2: field 'answer' is missing"),
    ("wrong-type.json", '[{"id": 1, "prompt": "q", "answer": "1"}, {"id": 2, "prompt": 5, "answer": "1"}]',
     "array index 1: field 'prompt' must be a string (got number '5')"),
], ids=["bad-json", "missing-field", "wrong-type"])
def test_bad_data_file_names_file_line_and_field(tmp_path, empty_cache, name, content, where):
    """--benchmark-opt path=<bad file>: exit 1 naming the file, the line and the field, before any model."""
    bad = tmp_path / name
    bad.write_text(content)
    result = harness("run", "--benchmark", "aime24", "--benchmark-opt", f"path={bad}", "--sampler", "hf",
                     "--output", str(tmp_path / "run"), env=empty_cache)
    assert result.returncode == 1
    assert error_line(result.stderr).startswith(f"error: {bad} {where}")
    assert untouched(empty_cache)


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_deeply_nested_json_is_a_data_error(tmp_path, name):
    """100,000 nested brackets exceed Python's recursion limit: a DataError naming the file, not a crash."""
    bad = tmp_path / name
    bad.write_text("[" * 100_000 + "\n")
    with pytest.raises(DataError, match="JSON nested too deeply") as error:
        read_problems(bad)
    assert str(error.value).startswith(str(bad)) and "\n" not in str(error.value)


def test_byte_order_mark_is_not_content(tmp_path):
    """A file saved with a UTF-8 byte-order mark (Windows editors) reads like one without."""
    ttrl = '[{"id": 1, "prompt": "What is 1+1?", "answer": "2"}]'
    for name, text in (("bom.jsonl", PROBLEM_1), ("bom.json", ttrl)):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert [(p.id, p.answer) for p in read_problems(path)] == [("1", "2")]


# --- configuration and plugin names ---------------------------------------------------------------------

def test_bad_config_file_gives_one_line_per_field(tmp_path):
    """A TOML config with three bad fields: exit 2 and exactly three lines, one naming each field."""
    config = tmp_path / "run.toml"
    config.write_text('n_votes = 0\ncolour = "red"\n[evaluation]\nk = 0\n')
    result = harness("run", "--config", str(config), "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) == 3
    fields = sorted(line.removeprefix("error: ").split(":")[0] for line in lines)
    assert fields == ["colour", "evaluation.k", "n_votes"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "expected"), [
    (["--benchmark", "aime2024"], "error: Unknown benchmark 'aime2024'. Did you mean: aime24?"),
    (["--sampler", "vlm"], "error: Unknown sampler 'vlm'. Did you mean: vllm?"),
    (["--answer-parser", "boxd"], "error: Unknown answer parser 'boxd'. Did you mean: boxed?"),
    (["--optimizer", "gpro"], "error: Unknown optimizer 'gpro'. Did you mean: grpo?"),
    (["--sampler", "hf", "--sampler-opt", "colour=red"],
     "error: sampler 'hf' option colour: Extra inputs are not permitted (got 'red')"),
    (["--strategy-opt", "min_agreement"], "error: --strategy-opt 'min_agreement': write it as KEY=VALUE"),
    (["--config", "missing.toml"], "error: config file missing.toml not found"),
], ids=["benchmark", "sampler", "parser", "optimizer", "option", "pair", "config-file"])
def test_unknown_names_and_options_are_one_line_exit_2(tmp_path, capsys, argv, expected):
    """Unknown plugin names suggest the closest one; bad options name the plugin and key."""
    assert main(["run", *argv, "--output", str(tmp_path / "run")]) == 2
    assert error_line(capsys.readouterr().err).startswith(expected)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["folder", "binary"])
def test_unreadable_config_file_is_one_line(tmp_path, capsys, kind):
    """--config naming a folder or a non-UTF-8 file: one line, exit 2."""
    path = tmp_path / "config.toml"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\x00")
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert str(path) in error_line(capsys.readouterr().err)


# --- models: nothing is downloaded unless a hub id is named ---------------------------------------------

def test_only_a_named_hub_id_goes_to_the_hub(tmp_path):
    """owner/name passes through untouched; folders resolve locally; anything else is refused, not fetched."""
    assert resolve_model("some-org/some-model") == "some-org/some-model"
    assert resolve_model(str(tmp_path)) == str(tmp_path.resolve())
    for name in ("no-such-model", "./no/such/folder", "a/b/c", "/abs/missing"):
        with pytest.raises(ConfigError, match="neither an embedded model"):
            resolve_model(name)


def test_unreachable_hub_id_is_one_line(tmp_path, empty_cache):
    """--model owner/name with the hub off: the id reaches transformers, and its failure is one line."""
    result = harness("run", "--model", "nonexistent-org/nonexistent-model", "--sampler", "hf", "--no-eval",
                     "--output", str(tmp_path / "run"), env=empty_cache)
    assert result.returncode == 2
    assert error_line(result.stderr).startswith(
        "error: --model 'nonexistent-org/nonexistent-model': cannot load its tokenizer (")
    assert untouched(empty_cache)  # the embedded model was never resolved in its place


# --- third-party plugins: a broken one is named, a misbehaving one is stopped ----------------------------

SHORT_PLUGIN = '''
    from harness import hookimpl
    from harness.interfaces import Strategy
    from harness.types import Verdict

    class ShortStrategy(Strategy):
        """Breaks the rule: one reward per group instead of one per completion."""
        name = "short"

        def label(self, group):
            return Verdict(None, [1.0])

    @hookimpl
    def register_strategies(register):
        register(ShortStrategy)
'''


@pytest.fixture
def plugin_path(tmp_path) -> Path:
    """A folder holding two installed distributions: one strategy that breaks a rule, one that fails to import."""
    root = tmp_path / "site"
    for dist, entry, module, body in (("short_plugin", "short", "short_plugin_mod", SHORT_PLUGIN),
                                      ("broken_plugin", "broken", "broken_plugin_mod", "raise RuntimeError('boom')")):
        info = root / f"{dist}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ttrl_harness]\n{entry} = {module}\n")
        (root / f"{module}.py").write_text(textwrap.dedent(body))
    return root


@pytest.mark.slow
def test_broken_plugin_is_named_and_wrong_reward_count_is_stopped(tmp_path, plugin_path):
    """A plugin failing at import is named with its distribution; a wrong reward count stops the run."""
    python_path = os.pathsep.join(filter(None, [str(plugin_path), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": python_path, "TTRL_HARNESS_PLUGINS": "short_plugin,broken_plugin", **OFFLINE}
    run = tmp_path / "run"
    result = harness("run", "--strategy", "short", "--sampler", "hf", "--limit", "1", "--problems-per-step", "1",
                     "--n-votes", "2", "--max-tokens", "4", "--steps", "1", "--no-eval", "--output", str(run),
                     env=env)
    assert result.returncode == 1
    warning = "warning: plugin 'broken' from broken_plugin failed to load: RuntimeError: boom"
    assert result.stderr.count(warning) == 1
    assert error_line(result.stderr) == ("error: strategy 'short' on problem 'arith-0000' returned 1 rewards "
                                         "for 2 samples; return exactly one reward per completion")
    assert not (run / "metrics.jsonl").exists() and not (run / "checkpoint").exists()
    assert json.loads((run / "config.json").read_text())["strategy"] == "short"
