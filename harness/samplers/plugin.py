"""The built-in samplers, registered through the same hook a third-party plugin implements."""

from harness.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    from harness.samplers.hf import HFSampler
    from harness.samplers.vllm import VLLMSampler
    from harness.samplers.vllm_server import VLLMServerSampler

    for sampler in (VLLMSampler, VLLMServerSampler, HFSampler):
        register(sampler)
