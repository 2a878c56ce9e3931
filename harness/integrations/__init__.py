"""Bridges to other tools. `harness.integrations.lm_eval`: evaluation through lm-evaluation-harness."""
