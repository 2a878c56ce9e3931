"""Registers the built-in samplers, exactly like a third-party plugin would."""

from harness.hookspecs import hookimpl
from harness.samplers.hf import HFSampler
from harness.samplers.vllm import VLLMSampler


@hookimpl
def register_samplers(register):
    register(VLLMSampler)
    register(HFSampler)
