"""Quiet by default: what a user reads is the plan, progress bars, results. Engine chatter (vLLM, transformers,
torch, TRL: INFO lines, their own progress bars, deprecation warnings) shows only with --verbose.

Engines read most of these settings when they are imported, so `configure` runs before any engine import.
A variable the user set explicitly is left as it is.
"""

from __future__ import annotations

import logging
import os
import warnings

ENGINE_LOGGERS = ("vllm", "transformers", "torch", "trl", "accelerate", "lm_eval", "datasets", "urllib3")
QUIET_ENVIRONMENT = {
    "VLLM_LOGGING_LEVEL": "ERROR",  # its WARNINGs are tuning hints for other machines (tcmalloc, NUMA)
    "VLLM_CONFIGURE_LOGGING": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # e.g. the NUMA binding notice of the CPU backend
}


def configure(verbose: bool) -> None:
    """Set the engines' log levels for this process and the processes it starts."""
    if verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        logging.basicConfig(level=logging.INFO)
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for name in ENGINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # deprecation notices raised inside engines say nothing a user of this harness can act on
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)


def quiet_transformers() -> None:
    """transformers keeps its own verbosity and progress-bar switches; call after importing it."""
    if os.environ.get("TRANSFORMERS_VERBOSITY") != "error":
        return
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
