"""Built-in labeling strategies: majority (TTRL), weighted (confidence-weighted vote), oracle (gold), and
random (Bernoulli rewards: the control)."""
