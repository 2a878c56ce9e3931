"""The lm-eval model `ttrl`: test-time RL on exactly the prompts lm-eval asks it to answer, then the answers.

Inside `generate_until` it first adapts: the unique prompts of the request batch become unlabelled problems
(no gold: lm-eval keeps the targets), and the harness loop's own `ttrl_step` samples, votes, rewards and
updates the policy on them for `steps` steps with the chosen strategy and optimizer. Then the adapted model
answers every request, as `ttrl-harness` would. Any generation task works: prompts come from lm-eval as they
are (chat template applied by lm-eval when asked), answers are extracted for the vote by the configured
answer parser. The adaptation's config.json, metrics.jsonl (label-free figures only) and adaptation.json
land in `run_dir` (`harness lm-eval` puts it inside lm-eval's --output_path).

    harness lm-eval --model ttrl --model_args pretrained=smollm2-135m,strategy=majority,steps=2,n_votes=8 \\
        --tasks ttrl_arith --limit 8
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from lm_eval.api.registry import register_model

from harness.errors import ConfigError
from harness.integrations.lm_eval import HarnessLM
from harness.metrics import LABEL_FREE, LOGGED_NAMES
from harness.rundir import RunDir, write_json
from harness.types import Problem

MODEL_NAME = "ttrl"
# Figures computed against the gold: meaningless here (lm-eval keeps the targets), so never logged.
GOLD_FIGURES = frozenset(LOGGED_NAMES.values()) - set(LABEL_FREE)
# model_args that are run settings (the rest of RunConfig keeps its defaults); values arrive as strings.
RUN_SETTINGS = ("strategy", "optimizer", "steps", "problems_per_step", "n_votes", "n_train", "temperature",
                "top_p", "max_tokens", "seed", "answer_parser")


class TTRLLM(HarnessLM):
    """`--model ttrl --model_args pretrained=...,strategy=majority,optimizer=grpo,steps=2,n_votes=8,lr=1e-5`.

    Plugin options go in as `strategy_options`, `optimizer_options`, `sampler_options` or
    `answer_parser_options` (JSON), or `lr=` for the optimizer's learning rate; `run_dir=` names the folder
    of the adaptation's files (default `runs/lm-eval-ttrl-<time>`).
    """

    def __init__(self, pretrained: str = "smollm2-135m", sampler: str = "auto", run_dir: str | None = None,
                 lr: float | None = None, **settings: Any) -> None:
        from lm_eval.api.model import LM

        LM.__init__(self)  # no sampler yet: the engines open when the requests (the test set) are known
        from harness.config import RunConfig
        from harness.models import resolve_model

        self.model_path = resolve_model(pretrained)
        self._tokenizer = None
        self.config = RunConfig(model=pretrained, sampler=sampler, **_run_settings(settings, lr))
        from harness.plugins import get_plugins, validate_plugins

        validate_plugins(self.config)
        if get_plugins()["strategy"].get(self.config.strategy).needs_gold:
            raise ConfigError(f"strategy {self.config.strategy!r} needs gold labels, and lm-eval's prompts come "
                              "without them: pick a label-free strategy such as majority")
        self.seed = self.config.seed
        self.run_dir = Path(run_dir or f"runs/lm-eval-ttrl-{time.strftime('%Y%m%d-%H%M%S')}")
        self.adaptation: dict[str, Any] | None = None
        self.calls = 0

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Adapt on the requests' prompts (unlabelled), then answer them with the adapted model."""
        from harness.loop import open_engines

        contexts = list(dict.fromkeys(request.args[0] for request in requests))
        # lm-eval usually sends every request at once; a later call adapts afresh in a folder of its own
        self.calls += 1
        folder = self.run_dir if self.calls == 1 else self.run_dir / f"call{self.calls}"
        engines = open_engines(self.config, self.model_path)
        try:
            self.adaptation = adapt(engines, self.config, contexts, RunDir.create(folder, self._record()))
            self.sampler = engines.sampler
            return super().generate_until(requests, disable_tqdm)
        finally:
            engines.close()

    def close(self) -> None:  # the engines close after generate_until
        pass

    def _record(self) -> dict:
        # the problems are lm-eval's requests, not a benchmark of ours: say so instead of RunConfig's default
        return {**self.config.model_dump(mode="json"), "benchmark": "lm-eval requests", "benchmark_options": {},
                "lm_eval_model": MODEL_NAME}


def adapt(engines, config, contexts: list[str], run_dir: RunDir) -> dict[str, Any]:
    """`config.steps` TTRL steps on `contexts` (no gold); returns the adaptation summary it also writes."""
    from harness.loop import problems_for_step, ttrl_step

    problems = [Problem(id=hashlib.sha256(text.encode()).hexdigest()[:12], prompt=text, answer="",
                        source="lm-eval") for text in contexts]
    prompt_of = {problem.id: text for problem, text in zip(problems, contexts, strict=True)}
    before = weights_checksum(engines.optimizer)
    started = time.perf_counter()
    for step in range(config.steps):
        batch = problems_for_step(problems, step, config.problems_per_step, config.seed)
        record = ttrl_step(engines, config, step, batch, [prompt_of[p.id] for p in batch])
        run_dir.append(run_dir.labels_path, {"step": step, "pseudo_labels": record.pop("pseudo_labels")})
        run_dir.append(run_dir.metrics_path, {k: v for k, v in record.items() if k not in GOLD_FIGURES})
    summary = {
        "prompts": len(contexts),
        "steps": config.steps,
        "seconds": time.perf_counter() - started,
        "weights_changed": weights_checksum(engines.optimizer) != before,
    }
    write_json(run_dir.path / "adaptation.json", summary)
    return summary


def weights_checksum(optimizer) -> str:
    """A digest of the policy's weights as the sampler gets them: equal digests, identical weights."""
    digest = hashlib.sha256()
    for name, tensor in optimizer.named_weights():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _run_settings(settings: dict[str, Any], lr: float | None) -> dict[str, Any]:
    """lm-eval's model_args (strings) -> RunConfig fields; an unknown key is a one-line error."""
    known = set(RUN_SETTINGS) | {f"{kind}_options" for kind in ("strategy", "optimizer", "sampler", "answer_parser")}
    ignored = {"batch_size", "max_batch_size", "device"}  # lm-eval passes these to every model
    unknown = sorted(set(settings) - known - ignored)
    if unknown:
        raise ConfigError(f"unknown ttrl model_args {', '.join(unknown)}; known: pretrained, sampler, run_dir, lr, "
                          f"{', '.join(sorted(known))}")
    values = {key: value for key, value in settings.items() if key in known}
    for key in [key for key in values if key.endswith("_options") and isinstance(values[key], str)]:
        try:
            values[key] = json.loads(values[key])
        except ValueError:
            raise ConfigError(f"ttrl model_args {key}: give a JSON object, e.g. {key}={{\"k\": 1}}") from None
    if lr is not None:
        values["optimizer_options"] = {**values.get("optimizer_options", {}), "lr": float(lr)}
    values.setdefault("evaluation", {"enabled": False})
    return values


register_model(MODEL_NAME)(TTRLLM)
