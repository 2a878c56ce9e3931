"""The hooks a ttrl-harness plugin can implement. Each receives a `register` callback.

A plugin is a module (or object) with functions decorated by `harness.hookimpl`; third-party plugins
are found through the `ttrl_harness` entry-point group. See docs/plugins.md.
"""

import pluggy

hookspec = pluggy.HookspecMarker("ttrl_harness")
hookimpl = pluggy.HookimplMarker("ttrl_harness")


@hookspec
def register_strategies(register):
    """Register labeling strategies: call `register(StrategyClass)` for each."""


@hookspec
def register_optimizers(register):
    """Register policy optimizers: call `register(OptimizerClass)` for each."""


@hookspec
def register_answer_parsers(register):
    """Register answer parsers (extract + equivalence): call `register(ParserClass)` for each."""


@hookspec
def register_benchmarks(register):
    """Register benchmark loaders: call `register(BenchmarkClass)` for each."""


@hookspec
def register_samplers(register):
    """Register samplers (generation engines): call `register(SamplerClass)` for each."""
