"""The `grpo` optimizer's precision paths on the real embedded model (SmolLM2-135M, bf16 weights on CPU):
fp32 masters that keep updates too small for bf16, an fp32 checkpoint, the non-finite-gradient skip, and the
DataErrors of a checkpoint that does not fit.

bf16 keeps 8 significant bits: a weight w moves only when an update exceeds half its spacing, about
|w| / 512. AdamW's first steps move every weight by about lr, so at lr 1e-5 one step moves only weights
below ~0.005 (measured: 1.7% of them) and 4 steps those below ~0.02 (6.1%). The later moves need the
updates summed in fp32 between steps: a plain bf16 update rounds the same small step away every time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor
from transformers import AutoTokenizer

from harness.errors import DataError
from harness.models import resolve_model
from harness.optimizers.grpo import GRPOOptimizer
from harness.types import Rollout, RolloutBatch
from tests.test_grpo import make_optimizer

pytestmark = pytest.mark.slow

TINY_LR = 1e-5
TINY_STEPS = 4
LONG_RUN = 10**6  # total_steps: the cosine schedule keeps lr at TINY_LR (to 1e-11) for these few steps


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Single-threaded, as in test_grpo.py: tiny batches on a shared 2-core runner are faster that way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_path() -> str:
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="module")
def batch(model_path: str) -> RolloutBatch:
    """One group, a right and a wrong answer: the smallest batch that trains (steps are ~2 s, not ~5)."""
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 7 + 5?"}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(text, add_special_tokens=False).input_ids
    right = tokenizer("7 + 5 = 12.", add_special_tokens=False).input_ids
    wrong = tokenizer("It is 13.", add_special_tokens=False).input_ids
    return RolloutBatch([Rollout("q", prompt_ids, right, 1.0, 0), Rollout("q", prompt_ids, wrong, 0.0, 0)])


def live_weights(optimizer: GRPOOptimizer) -> list[Tensor]:
    """The bf16 weights the model runs on, in parameter order."""
    return [param.detach() for param in optimizer.policy.parameters()]


def masters(optimizer: GRPOOptimizer) -> list[Tensor]:
    """The fp32 masters AdamW updates. No public accessor exists, and they are exactly what is under test."""
    return [master.detach() for master in optimizer._master]


def snapshot(tensors: list[Tensor]) -> list[Tensor]:
    return [tensor.clone() for tensor in tensors]


def adam_state(optimizer: GRPOOptimizer) -> list[dict[str, Tensor]]:
    """AdamW's live per-parameter state (step, exp_avg, exp_avg_sq), in parameter order."""
    return [optimizer.adamw.state[master] for master in optimizer._master]


def all_equal(left: list[Tensor], right: list[Tensor]) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left, right, strict=True))


def fraction(masks: list[Tensor], like: list[Tensor]) -> float:
    """The share of all weights that `masks` (one boolean tensor per parameter) select."""
    return float(sum(int(mask.sum()) for mask in masks)) / sum(tensor.numel() for tensor in like)


@pytest.fixture(scope="module")
def tiny(model_path: str, batch: RolloutBatch) -> SimpleNamespace:
    """An optimizer after TINY_STEPS steps at TINY_LR, with the weights before and after its first step."""
    optimizer = make_optimizer(model_path, total_steps=LONG_RUN, lr=TINY_LR, bf16_weights=True)
    assert all(param.dtype == torch.bfloat16 for param in live_weights(optimizer))
    initial = snapshot(live_weights(optimizer))
    optimizer.step(batch)
    first, first_masters = snapshot(live_weights(optimizer)), snapshot(masters(optimizer))
    for _ in range(TINY_STEPS - 1):
        optimizer.step(batch)
    return SimpleNamespace(optimizer=optimizer, initial=initial, first=first, first_masters=first_masters)


def test_tiny_updates_accumulate_in_fp32_masters_until_they_move_the_bf16_weights(tiny) -> None:
    """Updates that one step rounds away in bf16 still add up in the masters and move the bf16 weights."""
    final = live_weights(tiny.optimizer)
    # bf16 weights that step 1 left as they were, yet the later steps moved: their updates added up somewhere
    still = [after == start for start, after in zip(tiny.initial, tiny.first, strict=True)]
    moved_later = [kept & (now != start) for kept, now, start in zip(still, final, tiny.initial, strict=True)]
    # measured 0.044; 0.00002 with AdamW on the bf16 weights, or with masters re-read from them each step
    assert fraction(moved_later, final) > 0.02
    # ... in the fp32 masters, which step 1 did move where its bf16 rounding did not
    rounded_away = [
        kept & (master != start.float())
        for kept, start, master in zip(still, tiny.initial, tiny.first_masters, strict=True)
    ]
    assert fraction(rounded_away, final) > 0.5  # measured 0.98
    # and the model always runs on its masters rounded to nearest bf16
    assert all_equal(final, [master.to(torch.bfloat16) for master in masters(tiny.optimizer)])


def test_state_dict_saves_the_fp32_masters_and_load_restores_them_bit_for_bit(model_path, tiny) -> None:
    """state_dict()["policy"] holds the fp32 masters, not the bf16 weights; loading gives them back exactly."""
    state = tiny.optimizer.state_dict()
    policy = state["policy"]
    assert list(policy) == [name for name, _ in tiny.optimizer.policy.named_parameters()]
    assert {tensor.dtype for tensor in policy.values()} == {torch.float32}
    assert all_equal(list(policy.values()), masters(tiny.optimizer))
    # bits bf16 cannot hold: a checkpoint of the bf16 weights cast to fp32 would lose the tiny steps
    off_grid = [tensor != tensor.to(torch.bfloat16).float() for tensor in policy.values()]
    assert fraction(off_grid, list(policy.values())) > 0.5  # measured 0.98
    assert {value.dtype for p in state["optimizer"]["state"].values() for value in p.values()} == {torch.float32}
    resumed = make_optimizer(model_path, total_steps=LONG_RUN, lr=TINY_LR, bf16_weights=True)
    resumed.load_state_dict(state)
    assert all_equal(masters(resumed), list(policy.values()))
    assert all_equal(live_weights(resumed), live_weights(tiny.optimizer))


def test_a_non_finite_gradient_skips_the_update_and_the_next_step_trains(model_path, batch) -> None:
    """A NaN or inf gradient changes no weight, master or AdamW state and shows as a non-finite grad_norm;
    the next finite step trains as usual (the poisoned gradients are not carried over)."""
    optimizer = make_optimizer(model_path, total_steps=10, bf16_weights=True)
    assert math.isfinite(optimizer.step(batch)["grad_norm"])  # AdamW state exists from here on
    weights, fp32 = snapshot(live_weights(optimizer)), snapshot(masters(optimizer))
    adam = [{key: value.clone() for key, value in state.items()} for state in adam_state(optimizer)]
    target = optimizer.policy.get_decoder().norm.weight  # any one parameter: the norm is global
    for poison in (float("nan"), float("inf")):
        # a real backward pass whose gradient has one poisoned element, as an overflow would leave it
        hook = target.register_hook(lambda grad, value=poison: grad.index_fill(0, torch.tensor([0]), value))
        metrics = optimizer.step(batch)
        hook.remove()
        assert not math.isfinite(metrics["grad_norm"]), poison
        assert math.isfinite(metrics["loss"])  # the forward was fine; only the update was refused
        assert all_equal(live_weights(optimizer), weights), poison
        assert all_equal(masters(optimizer), fp32), poison
        for kept, now in zip(adam, adam_state(optimizer), strict=True):
            assert kept.keys() == now.keys() and all(torch.equal(kept[key], now[key]) for key in kept), poison
    metrics = optimizer.step(batch)
    assert math.isfinite(metrics["grad_norm"]) and metrics["grad_norm"] > 0
    assert not all_equal(masters(optimizer), fp32)
    assert all(bool(torch.isfinite(master).all()) for master in masters(optimizer))
    assert all_equal(live_weights(optimizer), [master.to(torch.bfloat16) for master in masters(optimizer)])


@pytest.fixture(scope="module")
def loadable(model_path: str) -> SimpleNamespace:
    """A fresh optimizer and a checkpoint of the same model whose weights differ from its own (so that a load
    that copied some tensors before it failed shows); every case below spoils one part of a copy of it."""
    optimizer = make_optimizer(model_path, bf16_weights=True)
    state = optimizer.state_dict()
    state["policy"] = {name: tensor + 0.5 for name, tensor in state["policy"].items()}
    return SimpleNamespace(optimizer=optimizer, state=state, masters=snapshot(masters(optimizer)))


def with_policy(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A shallow copy of `state` whose policy has `changes` (None removes the tensor); `__` stands for `.`."""
    policy = dict(state["policy"])
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            del policy[name]
        else:
            policy[name] = value
    return {**state, "policy": policy}


def with_adam_groups_one_short(state: dict[str, Any]) -> dict[str, Any]:
    groups = [{**group, "params": group["params"][:-1]} for group in state["optimizer"]["param_groups"]]
    return {**state, "optimizer": {**state["optimizer"], "param_groups": groups}}


BAD_CHECKPOINTS = {
    "not a dict": (lambda state: [state], "not a grpo state"),
    "another format": (lambda state: {**state, "format": 99}, "not a grpo state"),
    "no optimizer entry": (
        lambda state: {key: value for key, value in state.items() if key != "optimizer"},
        "has no 'optimizer' entry",
    ),
    "missing tensor": (lambda state: with_policy(state, model__norm__weight=None), "missing 'model.norm.weight'"),
    "unexpected tensor": (
        lambda state: with_policy(state, lm_head__weight=torch.zeros(3)),
        "unexpected 'lm_head.weight'",
    ),
    "wrong shape": (
        lambda state: with_policy(state, model__norm__weight=torch.zeros(3)),
        r"'model.norm.weight' has shape \(3,\), the model's has shape \(576,\)",
    ),
    # copy_ would broadcast this one silently over the whole embedding matrix
    "broadcastable shape": (
        lambda state: with_policy(state, model__embed_tokens__weight=torch.zeros(1)),
        r"'model.embed_tokens.weight' has shape \(1,\)",
    ),
    "not a tensor": (lambda state: with_policy(state, model__norm__weight=[1.0]), "'model.norm.weight' has list"),
    "AdamW state of another model": (with_adam_groups_one_short, "AdamW state does not fit this model"),
}


@pytest.mark.parametrize("case", BAD_CHECKPOINTS, ids=list(BAD_CHECKPOINTS))
def test_load_state_dict_refuses_a_checkpoint_that_does_not_fit_and_changes_nothing(loadable, case) -> None:
    """Each malformed checkpoint raises DataError naming what is wrong, before any weight is touched."""
    spoil, message = BAD_CHECKPOINTS[case]
    with pytest.raises(DataError, match=message):
        loadable.optimizer.load_state_dict(spoil(loadable.state))
    assert all_equal(masters(loadable.optimizer), loadable.masters)
    assert all_equal(live_weights(loadable.optimizer), [m.to(torch.bfloat16) for m in masters(loadable.optimizer)])
    assert loadable.optimizer.step_count == 0 and loadable.optimizer.adamw.state_dict()["state"] == {}
