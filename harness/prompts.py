"""Problem -> chat-formatted prompt string, with the model's own chat template."""

from __future__ import annotations

from functools import cache

from harness.types import Problem

# The paper's instruction (TTRL's official scripts); a benchmark may name its own (Benchmark.instruction).
DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@cache
def _tokenizer(model_path: str):
    from transformers import AutoTokenizer

    from harness.quiet import quiet_transformers

    quiet_transformers()  # the first transformers import of a run: its own log switches are set here
    return AutoTokenizer.from_pretrained(model_path)


def format_prompts(model_path: str, problems: list[Problem], instruction: str) -> list[str]:
    """One user turn per problem (problem text + instruction), as TTRL's official scripts do."""
    tokenizer = _tokenizer(model_path)
    prompts = []
    for problem in problems:
        content = f"{problem.prompt}\n{instruction}".strip() if instruction else problem.prompt
        messages = [{"role": "user", "content": content}]
        if tokenizer.chat_template:
            prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        else:  # base models without a template get the raw text
            prompts.append(content)
    return prompts
