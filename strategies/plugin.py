"""The built-in strategies, registered through the same hook a third-party plugin implements."""

from harness.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    from harness.strategies.majority import MajorityStrategy
    from harness.strategies.oracle import OracleStrategy
    from harness.strategies.random_rewards import RandomStrategy
    from harness.strategies.weighted import WeightedStrategy

    for strategy in (MajorityStrategy, WeightedStrategy, OracleStrategy, RandomStrategy):
        register(strategy)
