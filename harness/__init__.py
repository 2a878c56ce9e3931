"""ttrl-harness: a pluggable harness for Test-Time Reinforcement Learning.

The public API for plugin authors (docs/plugins.md): the hook marker, the interfaces a plugin implements,
the data types they receive and return, and the vote-counting helpers the built-in strategies use.
Importing it loads no engine (torch, transformers, vLLM).
"""

__version__ = "0.1.0"

from harness.hookspecs import hookimpl  # noqa: E402
from harness.interfaces import (  # noqa: E402
    AnswerParser,
    Benchmark,
    Optimizer,
    Sampler,
    SamplingParams,
    Strategy,
)
from harness.registry import NoOptions  # noqa: E402
from harness.strategies.voting import rewards_for, tally, winner  # noqa: E402
from harness.types import Completion, Group, Problem, Rollout, RolloutBatch, Verdict  # noqa: E402

__all__ = [
    "AnswerParser", "Benchmark", "Completion", "Group", "NoOptions", "Optimizer", "Problem", "Rollout",
    "RolloutBatch", "Sampler", "SamplingParams", "Strategy", "Verdict", "__version__", "hookimpl",
    "rewards_for", "tally", "winner",
]
