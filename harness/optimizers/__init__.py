"""Policy optimizers. Built-in: `grpo` (plain torch + transformers). See docs/optimizers.md."""
