"""What `pip install` puts on the path: one import name, `harness`, and no engine at plugin-load time."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import zipfile

from tests.conftest import REPO

GENERIC = ("strategies", "answer_parsers", "benchmarks")


def test_the_distribution_installs_only_the_harness_import_name():
    """importlib.metadata: the installed ttrl-harness provides the top-level name `harness` and nothing else,
    and no installed distribution maps a generic name to it."""
    dist = importlib.metadata.distribution("ttrl-harness")
    assert dist.read_text("top_level.txt").split() == ["harness"]
    provided = {name for name, dists in importlib.metadata.packages_distributions().items()
                if "ttrl-harness" in dists}
    assert provided == {"harness"}


def test_generic_names_do_not_import_outside_the_repository(tmp_path):
    """Started in a folder of a user's own, `import strategies` finds nothing of ours, while
    harness.strategies, harness.answer_parsers and harness.benchmarks import."""
    code = ("import importlib.util, json; import harness.strategies.majority, harness.answer_parsers.parser, "
            "harness.benchmarks.arith; print(json.dumps([importlib.util.find_spec(n) is None for n in "
            f"{list(GENERIC)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [True, True, True]


def test_a_built_wheel_holds_only_harness_at_the_top(tmp_path):
    """The wheel pip would install: every module lies under harness/, the folders keep their repo names."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("ttrl_harness-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"harness"}
    for module in ("harness/strategies/majority.py", "harness/answer_parsers/parser.py",
                   "harness/benchmarks/arith.py", "harness/perf/baseline.json"):
        assert module in names


def test_loading_plugins_and_validating_a_config_import_no_engine():
    """`harness plugins`' work and config validation leave torch, transformers and vllm unimported."""
    code = ("import sys, json; from harness.cli import build_parser, config_from_args, validate_plugins; "
            "from harness.plugins import get_plugins; get_plugins(); "
            "args = build_parser().parse_args(['run', '--lr', '1e-5', '--strategy-opt', 'min_agreement=0.2']); "
            "validate_plugins(config_from_args(args)); "
            "print(json.dumps([m for m in ('torch', 'transformers', 'vllm', 'trl') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
