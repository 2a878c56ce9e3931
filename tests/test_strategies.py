"""Strategies and answer clustering, with the real grader."""

from __future__ import annotations

import pytest

from harness.grouping import build_group, cluster_answers, gold_flags
from harness.metrics import aggregate, problem_diagnostics
from harness.plugins import Plugins
from harness.types import Completion, Problem


@pytest.fixture(scope="module")
def plugins():
    return Plugins(load_entry_points=False)


@pytest.fixture(scope="module")
def parser(plugins):
    parser = plugins["answer_parser"].create("boxed")
    yield parser
    parser.close()


def completion(text: str, logprob: float = -0.5) -> Completion:
    return Completion(text=text, token_ids=[1, 2], logprobs=[logprob, logprob], prompt_token_ids=[0])


def group_of(texts, parser, gold="5", logprobs=None, show_gold=False):
    logprobs = logprobs or [-0.5] * len(texts)
    problem = Problem(id="p1", prompt="?", answer=gold, source="test")
    completions = [completion(t, lp) for t, lp in zip(texts, logprobs, strict=True)]
    return build_group(problem, "?", completions, parser, show_gold=show_gold)


def test_clusters_group_equivalent_answers_not_strings(parser):
    """'\\frac{1}{2}', '0.5' and '1/2' are one answer; the first seen represents it."""
    clusters, reps = cluster_answers(["\\frac{1}{2}", "0.5", None, "3", "1/2"], parser.equivalent)
    assert clusters == [0, 0, None, 1, 0]
    assert reps == ["\\frac{1}{2}", "3"]


def test_majority_labels_the_most_common_answer(plugins, parser):
    """The winner gets reward 1; others and no-answers 0; the gold is not shown to it."""
    group = group_of(["\\boxed{7}", "\\boxed{5}", "\\boxed{07}", "nothing", "\\boxed{7.0}"], parser)
    assert group.gold is None
    verdict = plugins["strategy"].create("majority").label(group)
    assert verdict.pseudo_label == "7"
    assert verdict.rewards == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert verdict.info["majority_ratio"] == pytest.approx(0.6)


def test_majority_ties_are_deterministic_and_no_answer_never_wins(plugins, parser):
    """A tie goes to the answer seen first; many empty answers do not make '' the label."""
    strategy = plugins["strategy"].create("majority")
    tie = strategy.label(group_of(["\\boxed{3}", "\\boxed{4}", "\\boxed{4}", "\\boxed{3}"], parser))
    assert tie.pseudo_label == "3"
    sparse = strategy.label(group_of(["no", "idea", "\\boxed{}", "\\boxed{9}"], parser))
    assert sparse.pseudo_label == "9" and sparse.rewards == [0.0, 0.0, 0.0, 1.0]
    empty = strategy.label(group_of(["no", "idea"], parser))
    assert empty.abstained and empty.rewards == [0.0, 0.0]


def test_min_agreement_abstains(plugins, parser):
    """Below the agreement threshold the strategy abstains (no gradient for that problem)."""
    strategy = plugins["strategy"].create("majority", {"min_agreement": 0.6})
    verdict = strategy.label(group_of(["\\boxed{1}", "\\boxed{1}", "\\boxed{2}", "\\boxed{3}"], parser))
    assert verdict.abstained


def test_weighted_vote_follows_confidence(plugins, parser):
    """Two confident votes beat three unsure ones; power=0 is plain majority."""
    texts = ["\\boxed{1}", "\\boxed{1}", "\\boxed{1}", "\\boxed{2}", "\\boxed{2}"]
    logprobs = [-3.0, -3.0, -3.0, -0.05, -0.05]
    verdict = plugins["strategy"].create("weighted").label(group_of(texts, parser, logprobs=logprobs))
    assert verdict.pseudo_label == "2" and verdict.rewards == [0.0, 0.0, 0.0, 1.0, 1.0]
    plain = plugins["strategy"].create("weighted", {"power": 0}).label(group_of(texts, parser, logprobs=logprobs))
    assert plain.pseudo_label == "1"


def test_oracle_uses_the_gold(plugins, parser):
    """The oracle is the only strategy shown the gold, and rewards equivalence to it."""
    strategy = plugins["strategy"].create("oracle")
    assert strategy.needs_gold
    group = group_of(["\\boxed{5}", "\\boxed{6}", "\\boxed{6}", "\\boxed{5.0}"], parser, gold="5", show_gold=True)
    verdict = strategy.label(group)
    assert verdict.pseudo_label == "5" and verdict.rewards == [1.0, 0.0, 0.0, 1.0]


def test_diagnostics_against_the_gold(plugins, parser):
    """label accuracy, reward accuracy ('lucky hits'), majority ratio, pass@1, pass@n for one problem."""
    group = group_of(["\\boxed{6}", "\\boxed{6}", "\\boxed{5}", "none"], parser, gold="5")
    verdict = plugins["strategy"].create("majority").label(group)
    correct = gold_flags(group, "5")
    assert correct == [False, False, True, False]
    row = problem_diagnostics(group, verdict, correct, "5")
    assert row["label_correct"] == 0.0
    assert row["reward_accuracy"] == pytest.approx(0.25)  # only the 'none' sample's 0 matches its gold reward
    assert row["majority_ratio"] == pytest.approx(0.5)
    assert (row["pass_at_1"], row["pass_at_n"]) == (0.25, 1.0)
    summary = aggregate([row, {**row, "label_correct": 1.0}])
    assert summary["label_accuracy"] == 0.5 and summary["maj_at_n"] == 0.0
