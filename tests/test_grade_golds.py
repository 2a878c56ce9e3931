"""Every gold of the real data sets, boxed in a completion, extracts and grades equal to itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.answer_parsers import equivalence
from harness.answer_parsers.equivalence import as_text, canonical, is_equivalent, shutdown
from harness.answer_parsers.extract import extract_answer

SETS = {
    "AIME-TTT": ("ttrl/AIME-TTT.json", 30),
    "AMC-TTT": ("ttrl/AMC-TTT.json", 83),
    "MATH-TTT": ("ttrl/MATH-TTT.json", 500),
    "aime24": ("qwen_eval/aime24.jsonl", 30),
    "amc23": ("qwen_eval/amc23.jsonl", 40),
}


def load_golds(data_dir: Path, name: str) -> list[str]:
    """The golds of one set as text (qwen_eval's AMC floats become "27")."""
    relative, expected = SETS[name]
    text = (data_dir / relative).read_text(encoding="utf-8")
    if relative.endswith(".json"):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert len(rows) == expected
    return [as_text(row["answer"]) for row in rows]


@pytest.fixture(scope="module", autouse=True)
def _worker():
    """One worker for the module, started and warm before the first timed call, stopped at the end."""
    assert equivalence.start_worker(wait=True)
    yield
    shutdown()


@pytest.mark.parametrize("name", SETS)
def test_boxed_gold_extracts_and_grades_equal(data_dir, name):
    """Each gold wrapped as \\boxed{gold} in prose extracts to exactly the gold and grades equal to it."""
    for gold in load_golds(data_dir, name):
        completion = f"We work it out step by step.\nSo the final answer is $\\boxed{{{gold}}}$.\nDone."
        answer = extract_answer(completion, ["answer_is", "last_number"])
        assert answer == gold.strip(), name
        assert is_equivalent(answer, gold), (name, gold)


@pytest.mark.parametrize("name", SETS)
def test_rewritten_gold_grades_equal(data_dir, name):
    """How a model might write the gold (\\dfrac, \\left(, spaces after commas, $...$) still grades equal."""
    for gold in load_golds(data_dir, name):
        variant = gold.replace("\\frac", "\\dfrac").replace("\\left(", "(").replace("\\right)", ")")
        if not re.search(r"[0-9],(\\!)?\s*[0-9]{3}", gold):  # "58,500" is a number, "58, 500" a list
            variant = variant.replace(",", ", ")
        assert is_equivalent(f"${variant}$", gold), (name, gold, variant)


def test_padded_and_float_golds_equal_plain_integers(data_dir):
    """AIME's "025" and AMC's "142.0" equal the plain integers a model writes."""
    for gold in load_golds(data_dir, "AIME-TTT") + load_golds(data_dir, "AMC-TTT"):
        assert is_equivalent(str(int(float(gold))), gold), gold


def test_integer_golds_reject_neighbours(data_dir):
    """An integer gold is not equal to its neighbour, nor to a missing answer."""
    golds = [gold for name in SETS for gold in load_golds(data_dir, name) if re.fullmatch(r"-?[0-9]+(\.0)?", gold)]
    assert len(golds) > 300
    for gold in golds:
        wrong = str(int(float(gold)) + 1)
        assert not is_equivalent(wrong, gold), gold
        assert not is_equivalent(None, gold)


def test_math_verify_accepts_every_canonical_math_gold(data_dir):
    """The worker (math-verify on our canonical keys, no fast path) finds every MATH-500 gold equal to itself.

    This checks that normalisation keeps LaTeX that math-verify parses, for every quirk in the data.
    """
    failures = []
    for gold in load_golds(data_dir, "MATH-TTT"):
        key = canonical(gold)
        equal, status = equivalence._worker.compare(key, key, 5.0)
        if not equal:
            failures.append((gold, key, status))
    assert not failures
