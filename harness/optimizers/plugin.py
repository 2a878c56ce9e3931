"""The built-in optimizers, registered through the same hook a third-party plugin implements.

`grpo` is registered by reference ("module:Class"): its module imports torch, which takes seconds, and
listing plugins or validating a config must not wait for it. Its options model is torch-free.
"""

from harness.hookspecs import hookimpl


@hookimpl
def register_optimizers(register):
    from harness.optimizers.options import GRPOOptions

    register("harness.optimizers.grpo:GRPOOptimizer", name="grpo", options=GRPOOptions)
