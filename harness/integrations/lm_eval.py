"""Evaluate with EleutherAI's lm-evaluation-harness, sampling through this project's Sampler interface.

- The lm-eval model "ttrl-harness" (`HarnessLM`) answers `generate_until` with a harness Sampler (`vllm`
  or `hf`), so evaluation uses the same sampling core as training. It only generates: log-likelihood
  tasks are refused.
- `write_tasks` turns our benchmarks (aime24, amc, math500, math500_l1..l5, arith, or any registered
  benchmark) into lm-eval task YAMLs in a folder: the problems as a local jsonl (`dataset_path: json`),
  `repeats: k`, and the metrics avg@k (pass@1), maj@k (vote over grader-equivalent answers) and pass@k,
  scored by `harness.evaluation.problem_scores` with the run's answer parser and options (each document
  names them): the same scoring path, parser and options as `harness eval`.
- `run_lm_eval` does both and returns {task: {metric: value}}.

lm-eval's own aime/minerva_math tasks download from the Hugging Face hub; these read local files.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness.errors import ConfigError
from harness.integrations import MODEL_NAME, TASK_PREFIX
from harness.interfaces import Sampler, SamplingParams
from harness.types import Problem

FILTER_NAME = "graded"
# Our task name -> (benchmark plugin, its options). Any other registered benchmark is also accepted.
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "aime24": ("aime24", {}),
    "amc": ("amc", {}),
    "math500": ("math500", {}),
    **{f"math500_l{level}": ("math500", {"level": level}) for level in range(1, 6)},
    "arith": ("arith", {}),
}


# --- grading, called by lm-eval through `!function` in the generated YAMLs ------------------------


def keep_responses(resps: Iterable[list[str]], docs: Iterable[dict]) -> list[list[str]]:
    """Filter: every one of a document's k responses goes on to the metric (lm-eval's default keeps one)."""
    return [list(responses) for responses in resps]


def process_results(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """Metric: avg@k, maj@k and pass@k of one document's k responses, from `problem_scores` with the parser
    and options the document names (written by `write_tasks`)."""
    from harness.evaluation import problem_scores

    responses = list(results[0])
    k = len(responses)
    parser = _answer_parser(doc.get("parser", "boxed"), doc.get("parser_options", "{}"))
    scores = problem_scores(responses, doc["answer"], parser)
    return {f"avg_at_{k}": scores["avg"], f"maj_at_{k}": scores["maj"], f"pass_at_{k}": scores["pass"]}


@lru_cache(maxsize=8)
def _answer_parser(name: str, options_json: str):
    """One parser per (name, options) for the whole evaluation: it holds the grading worker."""
    from harness.plugins import registry

    return registry("answer_parser").create(name, json.loads(options_json))


# --- task generation ----------------------------------------------------------------------------


def load_task_problems(task: str, data_dir: str | None) -> list[Problem]:
    """The problems of one of our task names (or of any registered benchmark, with default options)."""
    from harness.plugins import registry

    benchmarks = registry("benchmark")
    name, options = TASKS.get(task, (task, {}))
    if name not in benchmarks.names():
        known = ", ".join(sorted(set(TASKS) | set(benchmarks.names())))
        raise ConfigError(f"unknown lm-eval task {task!r}; known: {known}")
    options = dict(options)
    if data_dir and "path" in benchmarks.get(name).Options.model_fields:
        options["path"] = data_dir
    return benchmarks.create(name, options).load()


def benchmark_instruction(task: str) -> str:
    """The instruction `harness run` and `harness eval` give this task's benchmark when none is chosen."""
    from harness.plugins import registry

    return registry("benchmark").get(TASKS.get(task, (task, {}))[0]).instruction


def task_yaml(name: str, data_file: Path, cache_dir: Path, *, k: int, generation: dict[str, Any]) -> str:
    """One lm-eval task reading `data_file` (jsonl of id/query/answer); JSON strings are valid YAML."""
    q = json.dumps
    metrics = "".join(
        f"  - metric: {metric}_at_{k}\n    aggregation: mean\n    higher_is_better: true\n"
        for metric in ("avg", "maj", "pass")
    )
    module = __name__
    return (
        f"task: {q(name)}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {q(str(data_file))}\n  cache_dir: {q(str(cache_dir))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_text: query\n"
        "doc_to_target: answer\n"
        "num_fewshot: 0\n"
        f"repeats: {k}\n"
        f"generation_kwargs: {q(generation)}\n"
        "filter_list:\n"
        f"  - name: {FILTER_NAME}\n"
        "    filter:\n"
        "      - function: custom\n"
        f"        filter_fn: !function {module}.keep_responses\n"
        f"process_results: !function {module}.process_results\n"
        f"metric_list:\n{metrics}"
        "metadata:\n  version: 1.0\n"
    )


def write_tasks(
    folder: str | Path,
    tasks: list[str],
    *,
    data_dir: str | None,
    k: int,
    limit: int | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    instruction: str | None = None,
    parser: str = "boxed",
    parser_options: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write one YAML + jsonl per task into `folder`; returns {our task name: lm-eval task name}. Each
    document names the answer parser and options its responses are scored with."""
    if k < 1:
        raise ConfigError(f"lm-eval k must be >= 1 (got {k})")
    if not tasks:
        raise ConfigError(f"name at least one lm-eval task, e.g. {', '.join(TASKS)}")
    folder = Path(folder)
    generation = {
        "until": [],  # no stop strings: the model's end-of-turn token ends an answer, as in training
        "do_sample": temperature > 0,
        "temperature": temperature,
        "top_p": top_p,
        "max_gen_toks": max_tokens,
    }
    scoring = {"parser": parser, "parser_options": json.dumps(parser_options or {}, sort_keys=True)}
    names = {}
    for task in dict.fromkeys(tasks):
        problems = load_task_problems(task, data_dir)[:limit]
        told = instruction if instruction is not None else benchmark_instruction(task)
        data_file = folder / f"{task}.jsonl"
        with data_file.open("w", encoding="utf-8") as out:
            for problem in problems:
                # The same user turn as training (harness.prompts): problem, newline, instruction.
                query = f"{problem.prompt}\n{told}".strip() if told else problem.prompt
                record = {"id": problem.id, "query": query, "answer": problem.answer, **scoring}
                out.write(json.dumps(record) + "\n")
        name = f"{TASK_PREFIX}{task}"
        yaml_text = task_yaml(name, data_file, folder / "hf_cache", k=k, generation=generation)
        (folder / f"{task}.yaml").write_text(yaml_text, encoding="utf-8")
        names[task] = name
    return names


# --- the model ------------------------------------------------------------------------------------


class HarnessLM(LM):
    """An lm-eval model backed by a harness Sampler: `--model ttrl-harness --model_args
    pretrained=smollm2-135m,sampler=hf,seed=0` once this module is imported."""

    def __init__(
        self,
        pretrained: str = "smollm2-135m",
        sampler: str = "auto",
        seed: int = 0,
        sampler_options: dict[str, Any] | None = None,
        **_ignored: Any,  # lm-eval passes batch_size/device/...: the sampler decides those
    ) -> None:
        super().__init__()
        from harness.models import resolve_model
        from harness.plugins import registry
        from harness.samplers import default_sampler_name

        self.model_path = resolve_model(pretrained)
        self.sampler_name = default_sampler_name() if sampler == "auto" else sampler
        self.seed = int(seed)
        self.sampler: Sampler = registry("sampler").create(
            self.sampler_name, sampler_options or {}, model_path=self.model_path, seed=self.seed
        )
        self._tokenizer = None

    def close(self) -> None:
        self.sampler.close()

    # lm-eval's chat-template hooks: the same template call as harness.prompts.format_prompts.
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        return self._tokenizer

    @property
    def tokenizer_name(self) -> str:
        return self.model_path.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.tokenizer.chat_template or ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not self.tokenizer.chat_template:  # a base model: the raw text, as in training
            return "\n".join(message["content"] for message in chat_history)
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def _params(self, gen_kwargs: dict[str, Any], n: int) -> SamplingParams:
        sample = gen_kwargs.get("do_sample", True)
        temperature = float(gen_kwargs.get("temperature", 1.0)) if sample else 0.0
        return SamplingParams(
            n=n,
            temperature=temperature,
            top_p=float(gen_kwargs.get("top_p", 1.0)),
            max_tokens=int(gen_kwargs.get("max_gen_toks", 256)),
            seed=self.seed,
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """lm-eval sends `repeats` identical requests per document: they become one call with n = repeats."""
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)  # (context, kwargs) -> request indexes
        for index, request in enumerate(requests):
            context, gen_kwargs = request.args[0], request.args[1]
            groups[(context, json.dumps(gen_kwargs, sort_keys=True))].append(index)
        batches: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)  # same params, same n
        for context, kwargs_key in groups:
            batches[(kwargs_key, len(groups[(context, kwargs_key)]))].append((context, kwargs_key))
        outputs: list[str] = [""] * len(requests)
        for (kwargs_key, n), members in batches.items():
            gen_kwargs = json.loads(kwargs_key)
            completions = self.sampler.generate([context for context, _ in members], self._params(gen_kwargs, n))
            stops = gen_kwargs.get("until") or []
            stops = [stops] if isinstance(stops, str) else stops
            for member, samples in zip(members, completions, strict=True):
                for index, completion in zip(groups[member], samples, strict=True):
                    outputs[index] = _cut(completion.text, stops)
                    self.cache_hook.add_partial("generate_until", requests[index].args, outputs[index])
        return outputs

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise ConfigError(f"lm-eval model {MODEL_NAME} only generates; pick generate_until tasks")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise ConfigError(f"lm-eval model {MODEL_NAME} only generates; pick generate_until tasks")


if __name__ != "__main__":  # run as a script, the importable module registers it (once) below
    register_model(MODEL_NAME)(HarnessLM)


def _cut(text: str, stops: list[str]) -> str:
    """`text` up to the first stop string (lm-eval's `until` convention)."""
    for stop in stops:
        if stop:
            text = text.split(stop, 1)[0]
    return text


# --- the public entry point -----------------------------------------------------------------------


def run_lm_eval(
    model: str,
    tasks: list[str],
    *,
    data_dir: str | None,
    k: int,
    limit: int | None,
    sampler: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    instruction: str | None = None,
    parser: str = "boxed",
    parser_options: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate `model` on `tasks` through lm-eval; returns {task: {metric: value}} with avg_at_k,
    maj_at_k, pass_at_k (each in [0, 1]) and problems (the count scored), scored with `parser`."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    if limit is not None and limit < 1:
        raise ConfigError(f"lm-eval limit must be >= 1 (got {limit})")
    with tempfile.TemporaryDirectory(prefix="ttrl-lm-eval-") as folder:
        names = write_tasks(
            folder,
            tasks,
            data_dir=data_dir,
            k=k,
            limit=limit,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            instruction=instruction,
            parser=parser,
            parser_options=parser_options,
        )
        manager = TaskManager(include_path=folder, include_defaults=False)
        lm = HarnessLM(pretrained=model, sampler=sampler, seed=seed)
        try:
            output = simple_evaluate(
                model=lm,
                tasks=list(names.values()),
                task_manager=manager,
                apply_chat_template=True,
                log_samples=False,
                bootstrap_iters=0,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
        finally:
            lm.close()
    return {task: _metrics(output, name) for task, name in names.items()}


def _metrics(output: dict[str, Any], name: str) -> dict[str, float]:
    """lm-eval's "avg_at_2,graded" entries -> {"avg_at_2": value}, plus the number of problems."""
    values = {}
    for key, value in output["results"][name].items():
        metric, _, filter_name = key.partition(",")
        if filter_name == FILTER_NAME and not metric.endswith("_stderr") and isinstance(value, int | float):
            values[metric] = float(value)
    values["problems"] = float(output["n-samples"][name]["effective"])
    return values


def main() -> None:
    """`python -m harness.integrations.lm_eval run --model ttrl-harness ...`: lm-eval's own CLI with the
    harness model registered (lm-eval has no plugin discovery for models)."""
    from lm_eval.__main__ import cli_evaluate

    from harness.integrations import lm_eval_ttrl  # noqa: F401 - registers the `ttrl` model

    cli_evaluate()


if __name__ == "__main__":
    from harness.integrations import lm_eval as _module  # the real module: registers the model, hooks

    _module.main()
