"""The third-party optimizer example in docs/optimizers.md: the file the docs show is the example's file, and
it registers through the plugin hook, trains a tiny model in the right direction, and resumes."""

from __future__ import annotations

import importlib.util
import re

import torch

from harness.plugins import Plugins
from harness.types import Rollout, RolloutBatch
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "optimizer" / "reinforce_optimizer.py"
DOC = REPO / "docs" / "optimizers.md"


def test_the_docs_show_the_example_file() -> None:
    blocks = re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks == [("examples/optimizer/reinforce_optimizer.py", EXAMPLE.read_text())]


def test_the_example_optimizer_registers_trains_and_resumes(tiny_llama) -> None:
    spec = importlib.util.spec_from_file_location("reinforce_optimizer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins = Plugins(load_entry_points=False)
    plugins.register(module, name="reinforce-example")
    optimizer = plugins["optimizer"].create("reinforce", {"lr": 1e-2}, model_path=tiny_llama, total_steps=2)
    good, bad = [5, 6, 7], [8, 9, 10]
    batch = RolloutBatch([Rollout("p", [1, 2, 3], good, 1.0, 0), Rollout("p", [1, 2, 3], bad, 0.0, 0)])

    def logp(ids: list[int]) -> float:
        with torch.no_grad():
            logits = optimizer.policy(input_ids=torch.tensor([[1, 2, 3] + ids])).logits[0, 2:-1]
        return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None]).sum())

    before = logp(good), logp(bad)
    state = {k: v for k, v in optimizer.state_dict().items()}
    optimizer.step(batch)
    assert logp(good) > before[0] and logp(bad) < before[1]
    optimizer.load_state_dict(state)
    assert (logp(good), logp(bad)) == before
