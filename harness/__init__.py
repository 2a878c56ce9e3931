"""ttrl-harness: a pluggable harness for Test-Time Reinforcement Learning."""

__version__ = "0.1.0"
