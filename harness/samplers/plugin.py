"""The built-in samplers, registered through the same hook a third-party plugin implements."""

from harness.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    from harness.samplers.hf import HFSampler
    from harness.samplers.vllm import VLLMSampler

    for sampler in (VLLMSampler, HFSampler):
        register(sampler)
