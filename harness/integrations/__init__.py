"""Bridges to other tools. `harness.integrations.lm_eval`: evaluation through lm-evaluation-harness."""

# Our lm-eval names, here so that building the `harness` command line needs no import of lm-eval and torch.
MODEL_NAME = "ttrl-harness"  # the lm-eval model that answers with a harness sampler
TASK_PREFIX = "ttrl_"  # lm-eval has its own `aime24`; ours must not collide with it
