"""A ttrl-harness strategy plugin: majority vote, but only when the winner leads clearly."""

from pydantic import BaseModel, ConfigDict, Field

from harness import Group, Strategy, Verdict, hookimpl, rewards_for, tally


class MarginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_margin: int = Field(2, ge=0, description="Votes the winner must lead the runner-up by.")


class MarginStrategy(Strategy):
    """Reward 1 for the majority answer when it leads by min_margin votes; abstain otherwise."""

    name = "margin"
    Options = MarginOptions

    def label(self, group: Group) -> Verdict:
        votes = sorted(tally(group.clusters).items(), key=lambda item: -item[1])
        lead = votes[0][1] - (votes[1][1] if len(votes) > 1 else 0) if votes else 0
        if not votes or lead < self.options.min_margin:
            return Verdict(None, [0.0] * len(group.completions), info={"lead": lead})
        winner = votes[0][0]
        return Verdict(group.cluster_answers[winner], rewards_for(group.clusters, winner), info={"lead": lead})


@hookimpl
def register_strategies(register):
    register(MarginStrategy)
