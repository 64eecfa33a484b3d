"""Gradient matching (DC / DSA): the distance, the published loops, and whole runs that resume."""

from __future__ import annotations

import json

import pytest
import torch

import mmdd
from mmdd.core.matchers.gradient import gradient_distance, layer_distance, published_loops
from mmdd.core.seeding import make_generator


def rand(*shape, seed=0):
    return torch.randn(shape, generator=make_generator(seed))


def test_distance_is_zero_for_identical_gradients():
    grads = [rand(4, 3, 3, 3), rand(4), rand(10, 16)]
    assert float(gradient_distance(grads, [g.clone() for g in grads])) == pytest.approx(0.0, abs=1e-5)
    assert float(gradient_distance(grads, [2.5 * g for g in grads])) == pytest.approx(0.0, abs=1e-5)  # scale-free


def test_distance_is_positive_otherwise():
    a = [rand(4, 3, 3, 3, seed=1), rand(10, 16, seed=2)]
    b = [rand(4, 3, 3, 3, seed=3), rand(10, 16, seed=4)]
    d = float(gradient_distance(a, b))
    assert d > 0
    # opposite gradients: every row's cosine is −1, so each row contributes 2
    assert float(gradient_distance(a, [-g for g in a])) == pytest.approx(2 * (4 + 10), rel=1e-4)
    assert float(gradient_distance(a, b, "mse")) > 0 and 0 < float(gradient_distance(a, b, "cos")) < 2


def test_one_dimensional_gradients_are_ignored():
    assert float(layer_distance(rand(8, seed=1), rand(8, seed=2))) == 0.0


def test_rows_are_output_units():
    g = torch.zeros(2, 3)
    g[0, 0], g[1, 1] = 1.0, 1.0
    h = g.clone()
    h[1] = -h[1]  # only row 1 disagrees
    assert float(layer_distance(g, h)) == pytest.approx(2.0, rel=1e-4)


def test_published_loops():
    assert published_loops(1) == (1, 1) and published_loops(10) == (10, 50) and published_loops(50) == (50, 10)
    assert published_loops(12) == (10, 50)


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_gradient_matching_runs_and_resumes_exactly(method, tiny_recipe, tmp_path):
    tiny_recipe["method"] = {"name": method, "iterations": 6, "batch_real": 16, "outer_loop": 2, "inner_loop": 1}
    tiny_recipe["evaluation"]["baselines"] = []
    whole = mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False)
    losses = [json.loads(l)["loss"] for l in (whole.dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and all(l > 0 for l in losses)
    mmdd.distill(tiny_recipe, output_dir=tmp_path / "part", stop_after=3, evaluate=False, progress=False)
    resumed = mmdd.distill(tiny_recipe, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    assert torch.equal(resumed.synthetic.inputs, whole.synthetic.inputs)


def test_dc_loss_falls_on_a_fixed_network(tiny_recipe, tmp_path):
    # outer_loop larger than the run: one network throughout, so the loss is comparable across steps
    tiny_recipe["method"] = {"name": "dc", "iterations": 30, "batch_real": 32, "outer_loop": 100, "inner_loop": 0,
                             "lr_inputs": 1.0}
    tiny_recipe["evaluation"]["baselines"] = []
    run = mmdd.distill(tiny_recipe, output_dir=tmp_path / "r", evaluate=False, progress=False)
    losses = [json.loads(l)["loss"] for l in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])
