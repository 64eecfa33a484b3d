"""Tests for mmdd.core.evaluation (the evaluation protocol)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmdd.core.data import Split
from mmdd.core.evaluation import (
    ClassificationTask,
    EvalConfig,
    EvalSet,
    Samples,
    SetResult,
    describe_protocol,
    evaluate_set,
    mean_std,
    train_model,
)
from mmdd.core.metrics import accuracy
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator

SHAPE = (1, 8, 8)




# ------------------------------------------------------------------ mean_std
def test_mean_std_population():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(1.25))  # ddof=0, not sqrt(5/3)
    assert mean_std([0.7]) == (pytest.approx(0.7), 0.0)
    assert mean_std([2.0, 2.0, 2.0])[1] == 0.0
    assert mean_std([0.0, 1.0])[1] == pytest.approx(0.5)


def test_set_result_formatting():
    r = SetResult(metric="accuracy", mean=0.5, std=0.0123, values=[0.5], seeds=[0], protocol="p")
    assert r.formatted() == "50.00 ± 1.23"
    assert r.as_dict()["values"] == [0.5]
    assert r.as_dict()["batched"] is False  # the manifest says whether the seeds were trained batched


# ------------------------------------------------------------------ lr schedule
def _record_weight_steps(cfg: EvalConfig, epochs: int, lr: float | None = None) -> list[float]:
    """Train a tiny linear model with one full batch per epoch; return ‖Δw‖ of every epoch."""
    gen = make_generator(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.zero_()
    x = torch.randn(8, 4, generator=make_generator(1))
    y = torch.tensor([0, 1] * 4)
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda m, inp: seen.append(m[1].weight.detach().clone()))
    train_model(net, x, y, cfg, gen, None, torch.device("cpu"), lr=lr, epochs=epochs)
    seen.append(net[1].weight.detach().clone())
    assert len(seen) == epochs + 1  # one forward per epoch (batch_size ≥ n)
    return [float((b - a).norm()) for a, b in zip(seen, seen[1:])]


@pytest.mark.parametrize("epochs,decay_at,milestone", [(10, 0.5, 5), (10, 0.3, 3), (8, 0.75, 6)])
def test_train_model_steps_lr_by_a_tenth_at_fraction(epochs, decay_at, milestone):
    # no momentum or weight decay, tiny lr: the gradient barely changes, so ‖Δw‖ ∝ lr
    cfg = EvalConfig(lr=1e-3, momentum=0.0, weight_decay=0.0, batch_size=64, lr_decay_at=decay_at, augment=False)
    steps = _record_weight_steps(cfg, epochs)
    before = steps[:milestone]
    after = steps[milestone:]
    assert len(after) == epochs - milestone
    for s in before[1:]:
        assert s / before[0] == pytest.approx(1.0, rel=0.02)
    for s in after:
        assert s / before[-1] == pytest.approx(0.1, rel=0.02)


def test_train_model_lr_argument_overrides_config():
    cfg = EvalConfig(lr=1e-3, momentum=0.0, weight_decay=0.0, batch_size=64, augment=False)
    base = _record_weight_steps(cfg, 2)
    doubled = _record_weight_steps(cfg, 2, lr=2e-3)
    assert doubled[0] / base[0] == pytest.approx(2.0, rel=1e-3)


def test_train_model_uses_augment_only_when_enabled():
    calls = []

    def augment(x, gen):
        calls.append(x.shape[0])
        return x

    x = torch.randn(6, 4, generator=make_generator(0))
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    for enabled, expected in [(True, [4, 2] * 3), (False, [])]:
        calls.clear()
        cfg = EvalConfig(epochs=3, batch_size=4, augment=enabled)
        net = nn.Sequential(nn.Linear(4, 2))
        train_model(net, x, y, cfg, make_generator(0), augment, torch.device("cpu"))
        assert calls == expected  # 3 epochs × 2 minibatches (4 + 2) when enabled


# ------------------------------------------------------------------ evaluate_set
def _toy(n_per_class: int, seed: int) -> Split:
    # class 0 is bright on the left half, class 1 on the right half: a spatial difference, which
    # survives the ConvNet's per-sample (instance) normalisation, unlike a global brightness shift
    gen = make_generator(seed)
    patterns = torch.zeros(2, *SHAPE)
    patterns[0, :, :, : SHAPE[2] // 2] = 1.0
    patterns[1, :, :, SHAPE[2] // 2:] = 1.0
    xs = [torch.randn((n_per_class, *SHAPE), generator=gen) * 0.3 + patterns[c] for c in range(2)]
    return Split(torch.cat(xs), torch.arange(2).repeat_interleave(n_per_class))


def _make_network(gen):
    return create_network(ConvNetConfig(depth=1, width=4), SHAPE, 2, gen)


def _evaluate(train: Split, targets=None, seeds=2, seed=0, metric=accuracy, epochs=None, **kw):
    cfg = EvalConfig(epochs=30, lr=0.01, batch_size=32, seeds=seeds, seed=seed, augment=False)
    task = ClassificationTask("accuracy", {"accuracy": metric})
    chosen = EvalSet(Samples(train.inputs, train.labels if targets is None else targets), epochs=epochs)
    return evaluate_set(chosen, task, make_network=_make_network, cfg=cfg, test=_toy(50, seed=100),
                        protocol="toy", device=torch.device("cpu"), **kw)


def test_evaluate_set_learns_separable_problem():
    train = _toy(10, seed=1)
    result = _evaluate(train, seeds=2)
    assert isinstance(result, SetResult)
    assert len(result.values) == 2
    assert result.seeds == [0, 1]
    assert all(v > 0.9 for v in result.values), result.values
    assert result.mean == pytest.approx(sum(result.values) / 2)
    assert result.std == pytest.approx(mean_std(result.values)[1])
    assert result.train_size == 20
    assert result.metric == "accuracy" and result.protocol == "toy"
    assert result.val_values is None
    assert result.wall_s > 0
    assert result.batched is False  # batch_seeds "auto" on the CPU: one seed after another


def _logit_sum(logits, labels) -> float:
    """A metric sensitive to every weight, so reproducibility is checked bit for bit."""
    return float(logits.double().sum())


def test_evaluate_set_same_seeds_identical_values():
    train = _toy(4, seed=2)
    a = _evaluate(train, seeds=2, seed=5, epochs=3)
    b = _evaluate(train, seeds=2, seed=5, epochs=3)
    assert a.values == b.values
    assert a.seeds == b.seeds == [5, 6]
    assert a.train_size == 8
    sa = _evaluate(train, seeds=2, seed=5, epochs=3, metric=_logit_sum)
    sb = _evaluate(train, seeds=2, seed=5, epochs=3, metric=_logit_sum)
    assert sa.values == sb.values
    # the two seeds train different networks, and another seed range gives other values
    assert sa.values[0] != sa.values[1]
    sc = _evaluate(train, seeds=2, seed=7, epochs=3, metric=_logit_sum)
    assert sc.values != sa.values


def test_evaluate_set_reports_validation_split():
    train = _toy(4, seed=3)
    result = _evaluate(train, seeds=1, epochs=2, val=_toy(5, seed=4))
    assert result.val_values is not None and len(result.val_values) == 1
    assert 0.0 <= result.val_values[0] <= 1.0


def test_evaluate_set_soft_targets_train():
    train = _toy(10, seed=1)
    probs = torch.nn.functional.one_hot(train.labels, 2).float() * 0.8 + 0.1  # rows sum to 1
    assert torch.allclose(probs.sum(1), torch.ones(len(train)))
    result = _evaluate(train, targets=probs, seeds=1)
    assert len(result.values) == 1
    assert result.values[0] > 0.9, result.values


def test_soft_targets_change_the_weights():
    x = torch.randn(6, 4, generator=make_generator(0))
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]] * 3)
    net = nn.Sequential(nn.Linear(4, 2))
    before = net[0].weight.detach().clone()
    train_model(net, x, probs, EvalConfig(epochs=2, batch_size=6, augment=False), make_generator(0), None,
                torch.device("cpu"))
    assert not torch.equal(before, net[0].weight)


# ------------------------------------------------------------------ protocol text and config
def test_describe_protocol():
    cfg = EvalConfig(epochs=300, seeds=5, lr=0.01)
    text = describe_protocol(cfg, "ConvNet-3", "dsa")
    assert "300 epochs" in text
    assert "5 seeds" in text
    assert "last epoch" in text
    assert "ConvNet-3" in text and "dsa" in text
    assert "lr 0.01" in text
    learned = describe_protocol(cfg, "ConvNet-3", "dsa", lr=0.0321, epochs=50)
    assert "learned lr 0.0321" in learned and "50 epochs" in learned
    no_aug = describe_protocol(EvalConfig(augment=False), "net", "dsa")
    assert "no aug" in no_aug
    per_group = describe_protocol(cfg, "dual encoder", "dsa", lr={"image": 0.5, "text": 0.25})
    assert "learned lr image 0.5 / text 0.25" in per_group


def test_describe_protocol_says_when_best_val_has_no_validation_split():
    cfg = EvalConfig(select="best_val", select_every=5)
    assert "selected on validation (best of every 5 epochs)" in describe_protocol(cfg, "net", "dsa")
    text = describe_protocol(cfg, "net", "dsa", has_val=False)
    assert "selected on validation" not in text and "no validation split" in text and "last epoch" in text


def test_eval_config_check_and_seed_list():
    assert EvalConfig().check("evaluation") == []
    assert EvalConfig(seeds=3, seed=10).seed_list() == [10, 11, 12]
    problems = EvalConfig(epochs=0, lr=0.0, lr_decay_at=0.0, baselines=["random", "bogus"]).check("evaluation")
    assert any("epochs" in p for p in problems)
    assert any(".lr " in p or ".lr must" in p for p in problems)
    assert any("lr_decay_at" in p for p in problems)
    assert any("bogus" in p for p in problems)


def test_the_random_baseline_draws_a_subset_per_evaluation_seed_reproducibly():
    from mmdd.core.data import Split
    from mmdd.core.evaluation import random_baseline

    train = Split(torch.arange(60.0).view(60, 1), torch.arange(60) % 3)
    chosen = random_baseline(train, 3, 2, run_seed=0, eval_seeds=[0, 1, 2])
    draws = [chosen.for_seed(s).inputs.flatten().tolist() for s in (0, 1, 2)]
    assert len({tuple(d) for d in draws}) == 3  # three different subsets
    assert chosen.data.inputs.flatten().tolist() == draws[0]
    assert random_baseline(train, 3, 2, run_seed=0, eval_seeds=[0, 1, 2]).for_seed(1).inputs.flatten().tolist() == draws[1]
    assert random_baseline(train, 3, 2, run_seed=1, eval_seeds=[0]).for_seed(0).inputs.flatten().tolist() != draws[0]
    for d in (chosen.for_seed(s) for s in (0, 1, 2)):
        assert torch.bincount(d.targets, minlength=3).tolist() == [2, 2, 2]  # still 2 per class
