"""The built-in optimizers, registered through the same hook a third-party plugin implements.

Registered by reference ("module:Class"): their modules import torch, which takes seconds, and listing
plugins or validating a config must not wait for it. Their options models are torch-free.
"""

from harness.hookspecs import hookimpl


@hookimpl
def register_optimizers(register):
    from harness.optimizers.options import GRPOOptions, PPOOptions

    register("harness.optimizers.grpo:GRPOOptimizer", name="grpo", options=GRPOOptions)
    register("harness.optimizers.ppo:PPOOptimizer", name="ppo", options=PPOOptions)
