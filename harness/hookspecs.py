"""The hooks a ttrl-harness plugin can implement. Each receives a `register` callback.

`register(SomeClass)` adds a class that subclasses the kind's interface (harness.Strategy, ...) and has a
`name`; `register("pkg.module:SomeClass", name="...", options=SomeOptions)` adds one whose module is slow
to import (torch, vllm): it is imported only when a run creates it. A plugin is a module (or object) with
functions decorated by `harness.hookimpl`; third-party plugins are found through the `ttrl_harness`
entry-point group. See docs/plugins.md.
"""

import pluggy

hookspec = pluggy.HookspecMarker("ttrl_harness")
hookimpl = pluggy.HookimplMarker("ttrl_harness")


@hookspec
def register_strategies(register):
    """Register labeling strategies (subclasses of harness.Strategy)."""


@hookspec
def register_optimizers(register):
    """Register policy optimizers (subclasses of harness.Optimizer)."""


@hookspec
def register_answer_parsers(register):
    """Register answer parsers, extract + equivalence (subclasses of harness.AnswerParser)."""


@hookspec
def register_benchmarks(register):
    """Register benchmark loaders (subclasses of harness.Benchmark)."""


@hookspec
def register_samplers(register):
    """Register samplers, generation engines (subclasses of harness.Sampler)."""
