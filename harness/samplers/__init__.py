"""Samplers: the vLLM sampling core (`vllm`) and a plain transformers fallback (`hf`).

Neither engine is imported here, so `import harness` stays fast and works without vLLM installed.
"""

from __future__ import annotations

import importlib.util


def default_sampler_name() -> str:
    """The sampler `auto` means: "vllm" when vLLM is importable, else "hf"."""
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
