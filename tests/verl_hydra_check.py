"""The AIME verl config under real hydra: run by hand where hydra-core is installed (not collected by pytest;
hydra stays out of the test venv because its pytest plugin breaks with antlr4 4.11).

    python -m tests.verl_hydra_check          # from the repository root

Checks: hydra composes configs/verl/ttrl_aime2024.yaml onto verl's ppo_trainer exactly as
tests/test_verl_trainer.py's OmegaConf replay does; verl's own `validate_config` (which needs hydra) accepts
it; a misspelt key on the command line is refused.
"""

from __future__ import annotations

import sys
import warnings

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from harness.models import resolve_model
from tests.test_verl_trainer import AIME_YAML, aime_config

DATA = "/data/aime24.parquet"


def main() -> int:
    model = str(resolve_model("smollm2-135m"))  # a local tokenizer: the 7B is not downloaded for a check
    overrides = [f"data.train_files={DATA}", f"data.val_files={DATA}", f"actor_rollout_ref.model.path={model}"]
    with initialize_config_dir(config_dir=str(AIME_YAML.parent), version_base=None):
        config = compose(config_name=AIME_YAML.stem, overrides=overrides)
        try:
            compose(config_name=AIME_YAML.stem, overrides=[*overrides, "actor_rollout_ref.actor.kl_los_coef=0.1"])
            raise AssertionError("hydra accepted a misspelt key")
        except ConfigCompositionException:
            pass
    replay = aime_config(DATA, model)
    assert OmegaConf.to_container(config) == OmegaConf.to_container(replay), "the replay differs from hydra"
    print("hydra's composition == the tests' OmegaConf replay")

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    OmegaConf.resolve(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Disabled critic as adv_estimator != gae": intended for GRPO
        use_critic = need_critic(config)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=use_critic)
    print("verl's validate_config accepts the config")
    return 0


if __name__ == "__main__":
    sys.exit(main())
