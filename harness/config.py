"""Run configuration: pydantic models, loaded from a TOML file and/or CLI flags (flags win)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import ConfigError
from harness.prompts import DEFAULT_INSTRUCTION  # noqa: F401 (re-exported: where configs' defaults live)
from harness.registry import format_validation_error
from harness.watch import WatchConfig

EMBEDDED_FALLBACK_MODELS = ("smollm2-135m",)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EvalConfig(Strict):
    """The evaluation protocol: avg@k and maj@k before training, every `every` steps, and after."""

    k: int = Field(16, ge=1, description="Samples per problem for avg@k (pass@1) and maj@k.")
    temperature: float = Field(0.6, gt=0, le=2, description="Evaluation sampling temperature (paper: 0.6).")
    top_p: float = Field(0.95, gt=0, le=1, description="Evaluation nucleus sampling top_p (paper: 0.95).")
    max_tokens: int | None = Field(None, ge=1, description="Evaluation answer length; None = the run's.")
    every: int = Field(0, ge=0, description="Also evaluate every this many steps (0: before and after only).")
    enabled: bool = Field(True, description="Run the evaluation protocol at all.")


class RunConfig(Strict):
    """Everything one `harness run` needs. Plugin options are validated by each plugin's own model."""

    name: str | None = Field(None, description="Run name; the run directory is runs/<name> unless --output.")
    output: Path | None = Field(None, description="Run directory (default runs/<name>).")
    model: str = Field("smollm2-135m", description="Embedded model name, local HF folder, or hub id.")
    seed: int = Field(0, description="Seed for data order, sampling and initialization.")

    benchmark: str = Field("arith", description="Benchmark plugin providing the unlabeled problems.")
    benchmark_options: dict[str, Any] = Field(default_factory=dict, description="Benchmark plugin options.")
    limit: int | None = Field(None, ge=1, description="Use only the first N problems.")
    instruction: str | None = Field(
        None, description="Appended to each problem in the user turn; None: the benchmark's own (arith asks for "
        "only the final number in \\boxed{}, the others use the paper's 'Please reason step by step...').")

    strategy: str = Field("majority", description="Labeling strategy plugin (`harness plugins` lists them).")
    strategy_options: dict[str, Any] = Field(default_factory=dict, description="Strategy plugin options.")
    answer_parser: str = Field("boxed", description="Answer parser plugin (extraction + equivalence).")
    answer_parser_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Parser options. With the embedded 135M model, `fallbacks` defaults to last_number: it "
        "seldom writes \\boxed{} in a short budget (the base accuracies in the docs use the same rule).",
    )
    optimizer: str = Field("grpo", description="Optimizer plugin.")
    optimizer_options: dict[str, Any] = Field(default_factory=dict, description="Optimizer plugin options.")
    sampler: str = Field("auto", description="Sampler plugin: vllm, hf, or auto (vllm when installed).")
    sampler_options: dict[str, Any] = Field(default_factory=dict, description="Sampler plugin options.")

    steps: int = Field(8, ge=0, description="Optimizer steps (TTRL iterations).")
    problems_per_step: int = Field(8, ge=1, description="Problems sampled, voted and trained on per step: "
                                   "each epoch visits every problem once, in a seeded order, and no step holds "
                                   "a problem twice.")
    n_votes: int = Field(16, ge=1, description="Samples per problem that vote (paper: 64).")
    n_train: int | None = Field(
        None, ge=1, description="First K of the votes trained on; None: half of n_votes (paper: 32 of 64)."
    )
    temperature: float = Field(0.6, gt=0, le=2, description="Rollout temperature (paper: 1.0 for "
                               "Qwen2.5-Math, 0.6 for instruct models; at 1.0 the 135M model's vote is noise).")
    top_p: float = Field(0.95, gt=0, le=1, description="Rollout nucleus sampling top_p (paper: 1.0).")
    max_tokens: int = Field(32, ge=1, description="Maximum generated tokens per answer (paper: 3072; 32 fits "
                            "the default arith answers of the embedded model).")
    checkpoint_every: int = Field(1, ge=1, description="Save a resumable checkpoint every N steps.")
    processes: int = Field(1, ge=1, description="Data-parallel processes, started through accelerate launch: "
                           "each samples its share of a step's problems, every rank labels all groups, gradients "
                           "are summed across ranks (gloo on CPU, NCCL on GPU); rank 0 writes the run folder.")

    evaluation: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation protocol settings.")
    watch: WatchConfig = Field(default_factory=WatchConfig, description="Collapse watch: early stop and best "
                               "checkpoint by a label-free figure (off unless patience or keep_best is set).")
    plugin_versions: dict[str, str] = Field(
        default_factory=dict,
        description="Filled in when a run starts: 'kind/name' -> the distribution and version that provided it.",
    )

    @model_validator(mode="after")
    def _train_within_votes(self) -> RunConfig:
        if self.n_train is not None and self.n_train > self.n_votes:
            raise ValueError(f"n_train ({self.n_train}) must be <= n_votes ({self.n_votes})")
        return self

    @model_validator(mode="after")
    def _embedded_model_votes_on_numbers(self) -> RunConfig:
        if self.model in EMBEDDED_FALLBACK_MODELS and self.answer_parser == "boxed":
            self.answer_parser_options.setdefault("fallbacks", ["last_number"])
        return self

    @property
    def train_samples(self) -> int:
        return self.n_train or max(1, self.n_votes // 2)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"config file {path} cannot be read ({reason}); pass a UTF-8 TOML file") from None


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunConfig:
    """Merge a TOML file's values with CLI flags (flags win; option tables merge key by key)."""
    merged = dict(file_values)
    for key, value in flag_values.items():
        if key.endswith("_options") or key in ("evaluation", "watch"):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def parse_option_pairs(pairs: list[str], flag: str) -> dict[str, Any]:
    """`["min_agreement=0.3", "x=true"]` -> {"min_agreement": 0.3, "x": True}; values read as JSON."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: write it as KEY=VALUE, e.g. {flag} min_agreement=0.3")
        try:
            options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip()] = raw  # plain strings need no quotes
    return options
