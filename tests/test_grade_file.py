"""`harness grade FILE.jsonl`: grade_lines on real files, its output lines, summary and errors."""

from __future__ import annotations

import io
import json

import pytest

from harness.answer_parsers.grade_file import grade_lines
from harness.answer_parsers.parser import BoxedParser
from harness.errors import ConfigError, DataError
from harness.plugins import registry


@pytest.fixture(scope="module")
def parser():
    """The real boxed parser, created through the plugin registry like the CLI does; closed at the end."""
    parser = registry("answer_parser").create("boxed", {"fallbacks": ["answer_is"]})
    yield parser
    parser.close()


def test_boxed_parser_is_registered(parser):
    """The built-in plugin registers "boxed" and validates its options."""
    assert isinstance(parser, BoxedParser)
    assert registry("answer_parser").source("boxed") == "ttrl-harness"
    with pytest.raises(ConfigError, match="fallbacks.0"):
        registry("answer_parser").create("boxed", {"fallbacks": ["last"]})
    with pytest.raises(ConfigError, match="timeout_seconds"):
        registry("answer_parser").create("boxed", {"timeout_seconds": 0})
    options = registry("answer_parser").options("boxed", {"fallbacks": "answer_is,last_number"})
    assert options.fallbacks == ["answer_is", "last_number"]  # how --parser-opt fallbacks=... arrives


def _write(path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_grades_a_real_file(tmp_path, parser):
    """Each line gets "answer" and "correct", other fields pass through, the summary counts them."""
    source = tmp_path / "completions.jsonl"
    _write(source, [
        json.dumps({"id": 1, "completion": "so \\boxed{\\dfrac{14}{3}}", "gold": "\\frac{14}{3}"}),
        json.dumps({"id": 2, "completion": "thus \\boxed{3}", "gold": "\\frac{14}{3}"}),
        "",
        json.dumps({"id": 3, "completion": "no answer at all", "gold": ""}),
        json.dumps({"id": 4, "completion": "The answer is 27.", "gold": 27.0}),
        json.dumps({"id": 5, "completion": "\\boxed{25}", "gold": "025", "extra": [1, 2]}),
        json.dumps({"id": 6, "completion": "\\boxed{\\sqrt{8}}", "gold": "2\\sqrt{2}"}),
    ])
    target = tmp_path / "graded.jsonl"
    with source.open(encoding="utf-8") as lines, target.open("w", encoding="utf-8") as out:
        summary = grade_lines(lines, parser, out)
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row["correct"] for row in rows] == [True, False, False, True, True, True]
    assert [row["answer"] for row in rows] == ["\\dfrac{14}{3}", "3", None, "27", "25", "\\sqrt{8}"]
    assert rows[4]["extra"] == [1, 2]
    assert summary["count"] == 6 and summary["correct"] == 4
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["seconds"] >= 0


def test_bad_json_names_the_line(tmp_path, parser):
    """A line that is not JSON fails with its line number and what the line should look like."""
    source = tmp_path / "broken.jsonl"
    _write(source, [json.dumps({"completion": "\\boxed{1}", "gold": "1"}), "", '{"completion": "\\\\boxed{2}", '])
    with source.open(encoding="utf-8") as lines, pytest.raises(DataError) as error:
        grade_lines(lines, parser, io.StringIO())
    message = str(error.value)
    assert message.startswith("line 3: bad JSON")
    assert '"completion"' in message and "\n" not in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"gold": "1"}', "line 1: missing field 'completion'"),
        ('{"completion": "x"}', "line 1: missing field 'gold'"),
        ('[1, 2]', "line 1: expected a JSON object"),
        ('{"completion": 5, "gold": "1"}', "line 1: field 'completion' must be a string"),
        ('{"completion": "x", "gold": null}', "line 1: field 'gold' must be a string or a number"),
    ],
)
def test_missing_or_wrong_fields(line, expected, parser):
    """Missing fields and wrong types name the line and the field."""
    with pytest.raises(DataError, match=expected):
        grade_lines([line], parser, io.StringIO())


def test_empty_input(parser):
    """No lines: zero counts and accuracy 0.0, no division by zero."""
    summary = grade_lines(["", "  \n"], parser, io.StringIO())
    assert (summary["count"], summary["correct"], summary["accuracy"]) == (0, 0, 0.0)


def test_deeply_nested_line_is_a_data_error():
    """A line of 100,000 nested brackets is a one-line DataError, not a RecursionError."""
    parser = BoxedParser(BoxedParser.Options())
    with pytest.raises(DataError, match="line 1: JSON nested too deeply"):
        grade_lines(["[" * 100_000 + "]" * 100_000], parser, io.StringIO())
