"""Shared fixtures: the real data folder beside the checkout, a clean plugin set per test, and throwaway
virtual environments for tests that install a plugin package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.plugins import Plugins, use_plugins

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR") or REPO.parent / "shared" / "data")
LIVE_SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])  # the venv the tests run in


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $HARNESS_DATA_DIR): TTRL's and Qwen's files, never copied into the project."""
    if not (DATA_DIR / "ttrl" / "AIME-TTT.json").is_file():
        raise FileNotFoundError(f"test data not found at {DATA_DIR}; set HARNESS_DATA_DIR")
    return DATA_DIR


@pytest.fixture(autouse=True, scope="session")
def _data_env():
    os.environ.setdefault("HARNESS_DATA_DIR", str(DATA_DIR))
    yield


@pytest.fixture(autouse=True)
def builtin_plugins() -> Iterator[Plugins]:
    """Every test sees the built-in plugins only, as the process-wide get_plugins() set: whatever plugin
    packages this venv holds, and whatever an earlier test registered, do not leak in (get_plugins() is
    loaded once per process). A test adds its own plugin objects with `builtin_plugins.register(obj, name)`:
    code that calls get_plugins() sees them, and the next test gets a fresh set."""
    clean = Plugins(load_entry_points=False)  # about 2 ms once the built-in modules are imported
    use_plugins(clean)
    yield clean
    use_plugins(None)  # forget it: code run after the tests loads afresh, entry points included


def throwaway_venv(folder: Path) -> Path:
    """A venv in `folder` that sees every package of the live venv (harness, pip, setuptools, torch) but
    installs into itself, so a test's `pip install` leaves the live venv unchanged. Returns its python.

    `--system-site-packages` would not do: a venv made from a venv gets the base interpreter's site-packages,
    not the live venv's. A .pth line that calls site.addsitedir adds the live venv's site-packages with its
    own .pth files processed (the editable harness install is one), after the throwaway venv's own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    own = folder / LIVE_SITE_PACKAGES.relative_to(sys.prefix)  # same interpreter, same lib/pythonX.Y layout
    (own / "_live_venv.pth").write_text(f"import site; site.addsitedir({str(LIVE_SITE_PACKAGES)!r})\n")
    return python


def live_distributions() -> set[str]:
    """What the live venv has installed, by its site-packages' entries (dist-info folders, .pth files)."""
    return {path.name for path in LIVE_SITE_PACKAGES.iterdir()}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """A random 2-layer Llama (61-token vocabulary, 32 wide, tied embeddings) saved as an HF folder: small
    enough that fp32 parity tests of whole optimizer steps take seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)
