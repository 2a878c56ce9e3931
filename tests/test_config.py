"""Run configuration: TOML + flags, strict validation, one line per bad field."""

from __future__ import annotations

import pytest

from harness.cli import build_parser, config_from_args
from harness.config import RunConfig, build_config, parse_option_pairs
from harness.errors import ConfigError


def test_every_field_is_described():
    """Each config field carries a description (the CLI help and docs use them)."""
    for model in (RunConfig, RunConfig.model_fields["evaluation"].annotation):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_flags_win_over_the_toml_file(tmp_path):
    """A TOML file sets values; flags override them; option tables merge key by key."""
    path = tmp_path / "run.toml"
    path.write_text('steps = 9\nn_votes = 8\n[strategy_options]\nmin_agreement = 0.2\n[evaluation]\nk = 4\n')
    args = build_parser().parse_args(["run", "--config", str(path), "--steps", "3",
                                      "--strategy-opt", "extra=1", "--eval-every", "2"])
    config = config_from_args(args)
    assert (config.steps, config.n_votes) == (3, 8)
    assert config.strategy_options == {"min_agreement": 0.2, "extra": 1}
    assert (config.evaluation.k, config.evaluation.every) == (4, 2)


def test_bad_values_give_one_line_per_field():
    """Unknown keys and out-of-range values are reported field by field."""
    with pytest.raises(ConfigError) as error:
        build_config({"stpes": 3, "n_votes": 0}, {"temperature": -1.0})
    lines = str(error.value).splitlines()
    assert len(lines) == 3
    assert any(line.startswith("stpes: Extra inputs are not permitted") for line in lines)
    assert any(line.startswith("n_votes: Input should be greater than or equal to 1") for line in lines)
    assert any(line.startswith("temperature: Input should be greater than 0") for line in lines)


def test_n_train_cannot_exceed_n_votes():
    """Training on more samples than were voted on is rejected with both numbers."""
    with pytest.raises(ConfigError, match=r"n_train \(32\) must be <= n_votes \(16\)"):
        build_config({}, {"n_votes": 16, "n_train": 32})


def test_option_pairs_parse_json_values():
    """--strategy-opt values are JSON where they parse, plain strings otherwise; a missing = is an error."""
    assert parse_option_pairs(["a=0.3", "b=true", "c=word", "d=[1,2]"], "--x") == {
        "a": 0.3, "b": True, "c": "word", "d": [1, 2]}
    with pytest.raises(ConfigError, match="write it as KEY=VALUE"):
        parse_option_pairs(["novalue"], "--strategy-opt")


def test_broken_toml_is_one_clear_line(tmp_path):
    """A syntax error in the TOML file names the file."""
    path = tmp_path / "bad.toml"
    path.write_text("steps = = 3\n")
    args = build_parser().parse_args(["run", "--config", str(path)])
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        config_from_args(args)
