"""ttrl-harness: a pluggable harness for Test-Time Reinforcement Learning."""

__version__ = "0.1.0"

from harness.hookspecs import hookimpl  # noqa: E402 - the one name plugin authors import

__all__ = ["hookimpl", "__version__"]
