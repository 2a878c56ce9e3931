from ttrl_margin_strategy import MarginStrategy

from harness.testing import make_group


def test_a_clear_winner_is_the_label():
    strategy = MarginStrategy(MarginStrategy.Options(min_margin=2))
    verdict = strategy.label(make_group(["4", "4", "4", "5", None]))
    assert verdict.pseudo_label == "4"
    assert verdict.rewards == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert verdict.info == {"lead": 2}


def test_a_narrow_lead_abstains():
    strategy = MarginStrategy(MarginStrategy.Options(min_margin=2))
    verdict = strategy.label(make_group(["4", "4", "5"]))
    assert verdict.abstained and verdict.rewards == [0.0, 0.0, 0.0]
