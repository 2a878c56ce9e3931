"""Registers the built-in optimizers, exactly as a third-party plugin would."""

from harness.hookspecs import hookimpl
from harness.optimizers.grpo import GRPOOptimizer


@hookimpl
def register_optimizers(register):
    register(GRPOOptimizer)
