"""The lm-eval integration: generated task YAMLs loaded by real lm-eval, our grading hooks, and a tiny
end-to-end run of the embedded model through lm-eval and a harness Sampler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lm_eval.api.registry import get_model
from lm_eval.tasks import TaskManager

from harness.config import DEFAULT_INSTRUCTION
from harness.errors import ConfigError
from harness.integrations.lm_eval import MODEL_NAME, HarnessLM, run_lm_eval, write_tasks

DATA = Path(os.environ.get("HARNESS_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
SETTINGS = {"max_tokens": 32, "temperature": 0.6, "top_p": 0.95}


@pytest.fixture(scope="module")
def loaded_tasks(tmp_path_factory):
    """Our tasks written as YAMLs and loaded by lm-eval's own TaskManager (k=4, 3 problems each)."""
    folder = tmp_path_factory.mktemp("tasks")
    names = write_tasks(folder, ["aime24", "amc", "math500_l3", "arith"], data_dir=str(DATA), k=4, limit=3, **SETTINGS)
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    return names, manager.load(list(names.values()))["tasks"]


def graded(task, doc: dict, responses: list[str]) -> dict[str, float]:
    """Run one document's responses through the filter and metric functions the YAML names."""
    extract = task.config.filter_list[0]["filter"][0]["filter_fn"]
    answers = extract([responses], [doc])
    return task.config.process_results(doc, [answers[0]])


def test_generated_tasks_load_in_lm_eval(loaded_tasks):
    """Each task reads our local problems with repeats=k, the training prompt and the sampling settings."""
    names, tasks = loaded_tasks
    assert names == {t: f"ttrl_{t}" for t in ("aime24", "amc", "math500_l3", "arith")}
    aime = tasks["ttrl_aime24"]
    docs = list(aime.test_docs())
    assert len(docs) == 3 and docs[0]["answer"] == "204"
    assert aime.doc_to_text(docs[0]).startswith("Every morning Aya")
    assert aime.doc_to_text(docs[0]).endswith("\n" + DEFAULT_INSTRUCTION)
    assert aime.config.repeats == 4 and aime.config.output_type == "generate_until"
    assert aime.config.generation_kwargs == {
        "until": [],
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_gen_toks": 32,
    }
    assert [d["answer"] for d in tasks["ttrl_amc"].test_docs()] == ["142.0", "144.0", "81.0"]
    assert list(tasks["ttrl_math500_l3"].test_docs())[0]["answer"] == "\\frac{14}{3}"
    assert len(list(tasks["ttrl_arith"].test_docs())) == 3


def test_grading_hooks_compute_avg_maj_pass(loaded_tasks):
    """avg@k, maj@k (vote over grader-equivalent answers) and pass@k from the YAML's !function hooks."""
    _, tasks = loaded_tasks
    amc = tasks["ttrl_amc"]
    doc = next(iter(amc.test_docs()))  # gold "142.0"
    scores = graded(amc, doc, ["so \\boxed{142}", "\\boxed{7}", "\\boxed{7}", "I give up"])
    assert scores == {"avg_at_4": 0.25, "maj_at_4": 0.0, "pass_at_4": 1.0}
    # "142" and "142.0" are one cluster for the vote, so the right answer wins 2 to 1.
    scores = graded(amc, doc, ["\\boxed{142}", "\\boxed{142.0}", "\\boxed{7}", "no box: 142"])
    assert scores == {"avg_at_4": 0.5, "maj_at_4": 1.0, "pass_at_4": 1.0}
    assert graded(amc, doc, ["", "", "", ""]) == {"avg_at_4": 0.0, "maj_at_4": 0.0, "pass_at_4": 0.0}
    math = tasks["ttrl_math500_l3"]
    first = next(iter(math.test_docs()))
    assert graded(math, first, ["\\boxed{\\dfrac{14}{3}}"] * 4)["avg_at_4"] == 1.0


def test_bad_requests_are_config_errors(tmp_path):
    """Unknown task names and k < 1 are refused with one line naming what is known."""
    with pytest.raises(ConfigError, match="unknown lm-eval task 'aime25'.*math500_l1"):
        write_tasks(tmp_path, ["aime25"], data_dir=str(DATA), k=2, limit=None, **SETTINGS)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        write_tasks(tmp_path, ["aime24"], data_dir=str(DATA), k=0, limit=None, **SETTINGS)


def test_model_is_registered_with_lm_eval():
    """lm-eval finds the harness model under its registered name."""
    assert get_model(MODEL_NAME) is HarnessLM


@pytest.mark.slow
def test_end_to_end_run_on_the_embedded_model():
    """2 AIME problems, k=2, 32 tokens: real lm-eval, the real model through the hf Sampler."""
    results = run_lm_eval(
        "smollm2-135m", ["aime24"], data_dir=str(DATA), k=2, limit=2, sampler="hf", seed=0, **SETTINGS
    )
    assert set(results) == {"aime24"}
    metrics = results["aime24"]
    assert set(metrics) == {"avg_at_2", "maj_at_2", "pass_at_2", "problems"}
    assert metrics["problems"] == 2
    for name in ("avg_at_2", "maj_at_2", "pass_at_2"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["avg_at_2"] <= metrics["pass_at_2"] and metrics["maj_at_2"] <= metrics["pass_at_2"]


class ReplaySampler:
    """Hands back fixed responses: the test is about scoring the same generations, not about sampling."""

    def __init__(self, texts: list[list[str]]) -> None:
        self.texts = texts

    def generate(self, prompts, params):
        from harness.types import Completion

        return [[Completion(text=text, token_ids=[0], logprobs=[0.0], prompt_token_ids=[0]) for text in texts]
                for texts in self.texts]


@pytest.mark.parametrize("fallbacks", [["last_number"], []])
def test_lm_eval_and_harness_eval_score_the_same_generations_alike(tmp_path, fallbacks):
    """One scoring path: lm-eval's metrics for our tasks equal `harness eval`'s on the same responses, with the
    same parser options, including the embedded model's last-number fallback (and without it)."""
    from harness.config import EvalConfig
    from harness.evaluation import evaluate
    from harness.plugins import registry
    from harness.types import Problem

    names = write_tasks(tmp_path, ["arith"], data_dir=None, k=4, limit=3, parser="boxed",
                        parser_options={"fallbacks": fallbacks}, **SETTINGS)
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    task = manager.load([names["arith"]])["tasks"]["ttrl_arith"]
    docs = list(task.test_docs())
    texts = []
    for doc in docs:  # right boxed, right without a box (only the fallback reads it), wrong, no answer at all
        gold = doc["answer"]
        texts.append([f"\\boxed{{{gold}}}", f"The sum is {gold}.", f"\\boxed{{{int(gold) + 1}}}", "I am not sure"])
    texts[1] = [texts[1][1]] * 3 + ["no idea"]  # a problem whose majority is right only through the fallback
    lm_eval_scores = [graded(task, doc, responses) for doc, responses in zip(docs, texts, strict=True)]
    lm_eval_means = {key: sum(s[key] for s in lm_eval_scores) / len(docs) for key in lm_eval_scores[0]}
    parser = registry("answer_parser").create("boxed", {"fallbacks": fallbacks})
    problems = [Problem(id=doc["id"], prompt=doc["query"], answer=doc["answer"], source="arith") for doc in docs]
    harness_scores = evaluate(ReplaySampler(texts), parser, problems, [d["query"] for d in docs],
                              EvalConfig(k=4, temperature=0.6, top_p=0.95), max_tokens=32, seed=0)
    assert lm_eval_means == {key: harness_scores[key] for key in ("avg_at_4", "maj_at_4", "pass_at_4")}
    expected_avg = (2 / 4 + 3 / 4 + 2 / 4) / 3 if fallbacks else (1 / 4 + 0 + 1 / 4) / 3
    assert lm_eval_means["avg_at_4"] == pytest.approx(expected_avg)
