"""The benchmark loaders on the real data files, their errors, and the arithmetic generator."""

from __future__ import annotations

import ast
import json
import operator
import os
import re
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest
from pydantic import ValidationError

from harness import hookspecs
from harness.benchmarks import plugin as benchmarks_plugin
from harness.benchmarks.arith import Arith
from harness.benchmarks.competition import AIME24, AMC, Math500
from harness.benchmarks.files import read_problems, read_qwen_jsonl, read_ttrl_json
from harness.errors import ConfigError, DataError
from harness.interfaces import Benchmark
from harness.registry import Registry
from harness.types import Problem

DATA = Path(os.environ.get("HARNESS_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
ROOT = Path(__file__).resolve().parents[1]


def load(cls, **options) -> list[Problem]:
    return cls(cls.Options(**options)).load()


def one_line_error(kind, call) -> str:
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_ttrl_files_counts_and_quirky_golds_kept():
    """TTRL files give 30/83/500 problems with golds exactly as published ("025", "142.0")."""
    aime = load(AIME24, path=str(DATA))
    amc = load(AMC, path=str(DATA))
    math = load(Math500, path=str(DATA))
    assert (len(aime), len(amc), len(math)) == (30, 83, 500)
    assert all(isinstance(p, Problem) for p in aime + amc + math)
    assert "025" in [p.answer for p in aime] and "073" in [p.answer for p in aime]
    assert amc[0].answer == "142.0" and "-4.0" in [p.answer for p in amc]
    assert math[0].id == "test/precalculus/807.json"
    assert math[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert {p.source for p in aime} == {"aime"} and aime[0].prompt.startswith("Every morning Aya")
    for problems in (aime, amc, math):
        assert len({p.id for p in problems}) == len(problems)


def test_math500_levels_select_the_level_files():
    """level=1..5 reads MATH-L{level}-TTT.json (43/90/105/128/134) and tags each problem's level."""
    counts = [len(load(Math500, path=str(DATA), level=level)) for level in range(1, 6)]
    assert counts == [43, 90, 105, 128, 134]
    level3 = load(Math500, path=str(DATA), level=3)
    assert {p.metadata["level"] for p in level3} == {3}
    assert level3[0].answer == "\\frac{14}{3}" and level3[0].id == "test/algebra/2584.json"
    assert "solution" in level3[0].metadata
    with pytest.raises(ValidationError):
        Math500.Options(level=6)


def test_qwen_format_reads_jsonl_and_keeps_number_text():
    """format=qwen reads Qwen's jsonl: 30 AIME (ids from ints) and 40 AMC23 with float golds as text."""
    aime = load(AIME24, path=str(DATA), format="qwen")
    amc = load(AMC, path=str(DATA), format="qwen")
    assert (len(aime), len(amc)) == (30, 40)
    assert aime[0].id == "60" and aime[0].answer == "204" and "url" in aime[0].metadata
    assert [p.answer for p in amc[:3]] == ["27.0", "36.0", "45.0"]
    assert amc[0].prompt.startswith("Cities $A$ and $B$") and "question" not in amc[0].metadata


def test_number_text_kept_exactly(tmp_path):
    """A JSON number gold keeps the file's text ("1e3", "2.50"), not Python's rendering of it."""
    path = tmp_path / "n.jsonl"
    path.write_text('{"id": 1, "problem": "p", "answer": 2.50}\n\n{"id": 2, "problem": "q", "answer": 1e3}\n')
    assert [p.answer for p in read_qwen_jsonl(path)] == ["2.50", "1e3"]


def test_folder_layouts_file_path_and_env(tmp_path, monkeypatch):
    """A folder with the file at top level, a path to the file, $HARNESS_DATA_DIR and ./data all work."""
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "AIME-TTT.json").symlink_to(DATA / "ttrl" / "AIME-TTT.json")
    (flat / "amc23.jsonl").symlink_to(DATA / "qwen_eval" / "amc23.jsonl")
    assert len(load(AIME24, path=str(flat))) == 30
    assert len(load(AMC, path=str(flat))) == 40  # auto falls back to the Qwen file when no TTRL file exists
    assert len(load(AMC, path=str(DATA / "qwen_eval" / "amc23.jsonl"))) == 40  # format sniffed from content
    monkeypatch.setenv("HARNESS_DATA_DIR", str(flat))
    assert len(load(AIME24)) == 30
    monkeypatch.delenv("HARNESS_DATA_DIR")
    (tmp_path / "data").symlink_to(DATA)
    monkeypatch.chdir(tmp_path)
    assert len(load(Math500, level=1)) == 43


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    """No data: a one-line DataError naming the paths looked for, path=... and HARNESS_DATA_DIR."""
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    message = one_line_error(DataError, lambda: load(AIME24))
    assert str(tmp_path / "ttrl" / "AIME-TTT.json") in message
    assert str(tmp_path / "qwen_eval" / "aime24.jsonl") in message
    assert "--benchmark-opt path=" in message and "HARNESS_DATA_DIR" in message
    message = one_line_error(DataError, lambda: load(AMC, path=str(tmp_path / "nowhere")))
    assert "nowhere" in message and "does not exist" in message
    only_ttrl = tmp_path / "only_ttrl"
    only_ttrl.mkdir()
    (only_ttrl / "AMC-TTT.json").symlink_to(DATA / "ttrl" / "AMC-TTT.json")
    assert len(load(AMC, path=str(only_ttrl))) == 83
    message = one_line_error(DataError, lambda: load(AMC, path=str(only_ttrl), format="qwen"))
    assert "amc23.jsonl" in message and "AMC-TTT.json" not in message


def test_bad_json_line_is_named(tmp_path):
    """Broken JSON on line 2 of a jsonl (or line 3 of a json array) is reported with file and line."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "problem": "p", "answer": "1"}\n{"id": 2, "problem": \n')
    message = one_line_error(DataError, lambda: read_qwen_jsonl(path))
    assert str(path) in message and "line 2" in message and "invalid JSON" in message
    array = tmp_path / "bad.json"
    array.write_text('[\n {"prompt": "p", "answer": "1", "id": "0"},\n {"prompt": "q" "answer": "2"}\n]')
    message = one_line_error(DataError, lambda: read_ttrl_json(array))
    assert str(array) in message and "line 3" in message


def test_missing_or_ill_typed_field_is_named(tmp_path):
    """A missing or wrongly typed field names the file, array index or line, and the field."""
    array = tmp_path / "AIME-TTT.json"
    array.write_text(json.dumps([{"prompt": "p", "answer": "1", "id": "0"}, {"prompt": "q", "id": "1"}]))
    message = one_line_error(DataError, lambda: read_problems(array))
    assert str(array) in message and "array index 1" in message and "'answer' is missing" in message
    lines = tmp_path / "x.jsonl"
    lines.write_text('{"id": 1, "problem": 7, "answer": "1"}\n')
    message = one_line_error(DataError, lambda: read_problems(lines, "qwen"))
    assert "line 1" in message and "'problem' must be a string" in message
    lines.write_text('{"id": 1, "problem": "", "answer": "1"}\n')
    assert "'problem'" in one_line_error(DataError, lambda: read_problems(lines))
    lines.write_text('{"id": 1, "problem": "a", "answer": null}\n{"id": 1, "problem": "b", "answer": "2"}\n')
    assert "'answer' must be a string or number (got null" in one_line_error(DataError, lambda: read_problems(lines))
    lines.write_text('{"id": 1, "problem": "a", "answer": "1"}\n{"id": 1, "problem": "b", "answer": "2"}\n')
    assert "appears twice" in one_line_error(DataError, lambda: read_problems(lines))
    lines.write_text("[1, 2]\n")
    assert "expected a JSON object" in one_line_error(DataError, lambda: read_problems(lines, "ttrl"))


def test_level_on_a_file_without_levels_is_refused():
    """math500 level=2 on the all-levels file cannot filter and says so instead of returning everything."""
    message = one_line_error(ConfigError, lambda: load(Math500, path=str(DATA / "ttrl" / "MATH-TTT.json"), level=2))
    assert "MATH-L2-TTT.json" in message
    assert len(load(Math500, path=str(DATA / "ttrl" / "MATH-L2-TTT.json"), level=2)) == 90


def test_hf_dataset_offline_fails_in_one_line():
    """hf_dataset with the hub unreachable gives a one-line DataError pointing at local files."""
    code = (
        "from harness.benchmarks.competition import AIME24\n"
        "from harness.errors import DataError\n"
        "try:\n    AIME24(AIME24.Options(hf_dataset='HuggingFaceH4/aime_2024')).load()\n"
        "except DataError as e:\n    print('ERROR:' + str(e))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1, done.stdout + done.stderr
    assert "HuggingFaceH4/aime_2024" in lines[0] and "path=" in lines[0]


# --- arith -------------------------------------------------------------------------------------------

OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def safe_eval(expression: str) -> int:
    """Evaluate + - * over integer literals by walking the syntax tree (no eval)."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        raise ValueError(f"unexpected node {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval").body)


def story_answer(prompt: str) -> int:
    """The answer of a one-step story, from its two numbers and its wording."""
    a, b = (int(n) for n in re.findall(r"\d+", prompt))
    if "more" in prompt or "in all" in prompt:
        return a + b
    if "gives away" in prompt or "sells" in prompt:
        return a - b
    assert "each" in prompt, prompt
    return a * b


def test_arith_is_deterministic_per_seed():
    """The same seed gives identical problems; another seed gives different ones; ids are arith-NNNN."""
    first = load(Arith)
    assert first == load(Arith) and len(first) == 16
    assert [p.id for p in first[:2]] == ["arith-0000", "arith-0001"] and first[7].id == "arith-0007"
    assert [p.prompt for p in load(Arith, seed=1)] != [p.prompt for p in first]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"count": 200, "digits": 3, "operations": "-", "seed": 3, "word_problems": True},
        {"count": 100, "digits": 2, "operations": "+-*", "word_problems": True},
        {"count": 100, "steps": 3, "seed": 5},
        {"count": 100, "word_problems": False, "digits": 1, "operations": "*+"},
    ],
)
def test_arith_answers_are_correct(options):
    """Every gold equals an independent evaluation of the prompt; story answers are never negative."""
    problems = load(Arith, **options)
    digits = options.get("digits", 1)
    for problem in problems:
        numbers = [int(n) for n in re.findall(r"\d+", problem.prompt)]
        assert all(10 ** (digits - 1) <= n < 10**digits for n in numbers), problem.prompt
        assert len(numbers) == options.get("steps", 1) + 1
        if problem.prompt.startswith("Compute "):
            assert int(problem.answer) == safe_eval(problem.prompt.removeprefix("Compute ").rstrip("."))
        else:
            assert int(problem.answer) == story_answer(problem.prompt) >= 0
        assert problem.answer == str(int(problem.answer))
    used = {op for p in problems for op in re.findall(r" ([-+*]) ", p.metadata["expression"])}
    assert used == set(options.get("operations", "+"))


def test_arith_options_are_validated():
    """Bad options (unknown operation, zero digits, unknown key) are rejected by the registry."""
    registry = Registry("benchmark", Benchmark)
    registry.add(Arith)
    for bad in ({"operations": "+/"}, {"digits": 0}, {"cuont": 3}, {"operations": ""}):
        with pytest.raises(ConfigError):
            registry.create("arith", bad)
    assert registry.create("arith", {"operations": "++-"}).options.operations == "+-"


def test_builtin_benchmarks_are_registered_through_the_hook():
    """benchmarks.plugin registers arith, aime24, amc and math500 through the pluggy hook."""
    manager = pluggy.PluginManager("ttrl_harness")
    manager.add_hookspecs(hookspecs)
    manager.register(benchmarks_plugin, name="harness.benchmarks.plugin")
    registry = Registry("benchmark", Benchmark)
    manager.hook.register_benchmarks(register=registry.add)  # the hook, called through pluggy
    assert registry.names() == ["aime24", "amc", "arith", "file", "math500"]
    assert len(registry.create("math500", {"path": str(DATA), "level": 1}).load()) == 43


def test_builtin_benchmarks_are_in_the_plugin_set():
    """The harness's own plugin manager lists the four benchmarks as built-ins."""
    from harness.plugins import Plugins

    plugins = Plugins(load_entry_points=False)
    assert {"aime24", "amc", "arith", "math500"} <= set(plugins["benchmark"].names())
    assert plugins["benchmark"].source("arith") == "ttrl-harness"
