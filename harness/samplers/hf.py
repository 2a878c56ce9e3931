"""The transformers sampler: batched `model.generate`, the fallback when vLLM is not installed.

Log-probs are recorded while generating by a logits processor, one step behind (it learns which token
was drawn from the next step's input), so memory stays at one [batch, vocab] row instead of all logits.
In "raw" mode it sits before temperature and top-p (log_softmax of the model's logits, the policy the
trainer computes); in "processed" mode after them (the distribution the token was actually drawn from).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import PluginError
from harness.interfaces import Sampler, SamplingParams
from harness.samplers.common import (
    LOGPROBS_HELP,
    LogprobsMode,
    check_params,
    check_score_input,
    finite_logprobs,
    greedy_copies,
    mix_seed,
    tokenize_prompts,
)
from harness.types import Completion


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dtype: Literal["bfloat16", "float16", "float32"] = Field("bfloat16", description="Weight dtype.")
    device: str = Field("auto", description="torch device (cpu, cuda, cuda:1); auto = cuda when available.")
    batch_size: int = Field(64, ge=1, description="Sequences (prompts x n) generated together per call.")
    logprobs: LogprobsMode = Field("raw", description=LOGPROBS_HELP)
    seed_per_prompt: bool = Field(
        False, description="Generate each prompt's samples in calls of their own, seeded from the prompt's text: "
        "a prompt's samples then depend on the request's seed and the prompt only (the same on any rank of a "
        "data-parallel run, in any order). Off: calls of batch_size sequences that mix prompts (faster).")


class _LogprobRecorder:
    """A logits processor that keeps log p(token) of each drawn token, one step behind."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.steps: list[Any] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.previous is not None:  # input_ids now ends with the token drawn from `previous`
            self.steps.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = scores.float().log_softmax(dim=-1)
        return scores

    def finish(self, sequences: Any) -> Any:
        """[batch, steps] log-probs once `generate` returned `sequences`."""
        import torch

        if self.previous is not None:
            self.steps.append(self.previous.gather(1, sequences[:, -1:]).squeeze(1))
            self.previous = None
        return torch.stack(self.steps, dim=1)


class HFSampler(Sampler):
    """n samples per prompt with transformers `generate`; weights copied in place."""

    name: ClassVar[str] = "hf"
    Options: ClassVar[type[BaseModel]] = HFOptions

    def __init__(self, options: HFOptions, model_path: str, seed: int = 0) -> None:
        super().__init__(options, model_path, seed)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, options.dtype))
        self._model = model.to(self._device).eval().requires_grad_(False)
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tokenizer.eos_token_id is not None:
            eos_ids.add(self._tokenizer.eos_token_id)
        self._eos_ids = sorted(eos_ids)
        pad = self._tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else (self._eos_ids[0] if self._eos_ids else 0)
        self._max_len = int(getattr(model.config, "max_position_embeddings", 1 << 30))

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        option = "(model context; shorten prompts)"
        prompt_ids = tokenize_prompts(self._tokenizer, prompts, params.max_tokens, self._max_len, option)
        greedy = params.temperature == 0
        # Copies of one prompt stay adjacent, so a chunk's left padding stays small.
        copies = 1 if greedy else params.n
        results: list[list[Completion]] = [[] for _ in prompts]
        for owners, seed in self._calls(prompts, copies, params.seed):
            completions = self._generate_batch([prompt_ids[i] for i in owners], params, seed)
            for owner, completion in zip(owners, completions, strict=True):
                results[owner].append(completion)
        if greedy:
            return [greedy_copies(group[0], params.n) for group in results]
        return results

    def _calls(self, prompts: list[str], copies: int, request_seed: int) -> list[tuple[list[int], int]]:
        """(prompt index of each row, seed) per generate call, at most batch_size rows each."""
        size = self.options.batch_size
        if self.options.seed_per_prompt:
            # not the sampler's own seed: it differs per rank, and a prompt's samples must not
            return [([index] * len(range(start, min(start + size, copies))),
                     mix_seed(request_seed, zlib.crc32(prompt.encode()), start))
                    for index, prompt in enumerate(prompts) for start in range(0, copies, size)]
        jobs = [index for index in range(len(prompts)) for _ in range(copies)]
        return [(jobs[start : start + size], mix_seed(self.seed, request_seed, chunk))
                for chunk, start in enumerate(range(0, len(jobs), size))]

    def _generate_batch(self, prompt_ids: list[list[int]], params: SamplingParams, seed: int) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, ids in enumerate(prompt_ids):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        recorder = _LogprobRecorder()
        # Temperature and top-p come from our own processor list (in our order); top_k=0 turns off
        # transformers' default top-k of 50, which vLLM does not apply.
        sample = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
        config = GenerationConfig(
            **(sample if params.temperature > 0 else {"do_sample": False}),
            max_new_tokens=params.max_tokens,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
        )
        processors = LogitsProcessorList(self._processors(params, recorder))
        # A private RNG stream: reproducible per (sampler seed, request seed, chunk), trainer RNG untouched.
        devices = [self._device.index or 0] if self._device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            sequences = self._model.generate(
                input_ids=input_ids.to(self._device),
                attention_mask=attention.to(self._device),
                generation_config=config,
                logits_processor=processors,
            )
        new_tokens = sequences[:, width:].tolist()
        logprobs = recorder.finish(sequences).tolist()
        return [
            self._completion(ids, tokens, row_logprobs)
            for ids, tokens, row_logprobs in zip(prompt_ids, new_tokens, logprobs, strict=True)
        ]

    def _processors(self, params: SamplingParams, recorder: _LogprobRecorder) -> list[Any]:
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        warpers: list[Any] = []
        if params.temperature > 0 and params.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.temperature > 0 and params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(params.top_p))
        return [recorder, *warpers] if self.options.logprobs == "raw" else [*warpers, recorder]

    def _completion(self, prompt_ids: list[int], tokens: list[int], logprobs: list[float]) -> Completion:
        end = next((i + 1 for i, token in enumerate(tokens) if token in self._eos_ids), None)
        finish = "stop" if end is not None else "length"
        tokens, logprobs = tokens[: end or len(tokens)], logprobs[: end or len(tokens)]
        return Completion(
            text=self._tokenizer.decode(tokens, skip_special_tokens=True),
            token_ids=tokens,
            logprobs=finite_logprobs(logprobs, "hf"),
            prompt_token_ids=list(prompt_ids),
            finish_reason=finish,
        )

    def score(self, prompt_token_ids: list[int], completion_token_ids: list[int]) -> list[float]:
        """The model's raw log-prob (temperature 1) of each completion token given everything before it."""
        check_score_input(prompt_token_ids, completion_token_ids, self._max_len)
        if not completion_token_ids:
            return []
        import torch

        ids = torch.tensor([list(prompt_token_ids) + list(completion_token_ids)], device=self._device)
        keep = len(completion_token_ids) + 1  # logits of the last prompt token onwards
        with torch.no_grad():
            logits = self._model(input_ids=ids, logits_to_keep=keep).logits[0, :-1]
        targets = torch.tensor(completion_token_ids, device=self._device).unsqueeze(1)
        return logits.float().log_softmax(dim=-1).gather(1, targets).squeeze(1).tolist()

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy a complete set of HF-named tensors into the model in place (cast to its dtype and device).
        The set is checked before anything is copied: an unknown name, a wrong shape or a missing weight is a
        PluginError and the model keeps its old weights (a partial sync would sample from a mixed model)."""
        import torch

        params = dict(self._model.named_parameters(remove_duplicate=False))  # tied names both resolve
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        for name, tensor in weights:
            target = params.get(name)
            if target is None:
                raise PluginError(f"weight {name!r} is not a parameter of the hf sampler's model")
            if tuple(target.shape) != tuple(tensor.shape):
                raise PluginError(
                    f"weight {name!r} has shape {tuple(tensor.shape)}, the model's is {tuple(target.shape)}"
                )
        covered = {id(params[name]) for name, _ in weights}  # a tied weight is covered by any of its names
        missing = [name for name, param in self._model.named_parameters() if id(param) not in covered]
        if missing:
            raise PluginError(f"load_weights got {len(weights)} tensors and misses {len(missing)} of the model's "
                              f"weights (first: {missing[0]!r}); sync every weight, e.g. all of "
                              "model.named_parameters()")
        with torch.no_grad():
            for name, tensor in weights:
                params[name].copy_(tensor)

    def close(self) -> None:
        self._model = None
