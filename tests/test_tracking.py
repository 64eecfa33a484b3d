"""Validation-tracked distillation: the early-stop rule, keeping the best set, resume, and no test reads."""

from __future__ import annotations

import json
import math

import pytest
import torch

import mmdd
from mmdd.core.errors import ConfigError
from mmdd.core.seeding import make_generator
from mmdd.core.tracking import pearson, stm_stop
from mmdd.run import load_config, setup


# --------------------------------------------------------------------------- the rule on hand-made curves


def test_pearson_matches_a_hand_computation():
    # x = 0,1,2; y = 1,3,2: cov = 1·... → r = 0.5
    assert pearson([0.0, 1.0, 2.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert pearson([0.0, 1.0, 2.0], [5.0, 5.0, 5.0]) == 0.0


def test_a_falling_curve_stops_once_the_trend_is_significant():
    falling = [0.80, 0.78, 0.75, 0.71, 0.66, 0.60]
    stop, reason = stm_stop(falling, min_points=6)
    # r = -0.99 < -3/sqrt(4) = -1.5? no: the 3-sigma threshold is 1.5 at n = 6 — |r| ≤ 1 cannot pass
    assert not stop and "no significant trend" in reason
    longer = [0.80 - 0.01 * i for i in range(12)]  # n = 12: threshold 3/sqrt(10) = 0.949, r = -1
    stop, reason = stm_stop(longer, min_points=6)
    assert stop and "falls" in reason


def test_a_rising_curve_goes_on_and_a_stalled_rise_stops():
    rising = [0.5 + 0.01 * i for i in range(12)]
    stop, reason = stm_stop(rising, min_points=6)
    assert not stop and "rises" in reason
    # two identical rises of 20 points: correlated with the index (r = 0.50 > 3/sqrt(38) = 0.49), yet the
    # last 20 average no more than the 20 before
    stalled = [0.5 + 0.01 * (i % 20) for i in range(40)]
    r = pearson([float(i) for i in range(40)], stalled)
    assert r > 3 / math.sqrt(38)  # the rise is significant …
    assert sum(stalled[20:]) <= sum(stalled[:20])  # … and the later half is no better
    stop, reason = stm_stop(stalled, min_points=6)
    assert stop and "≤" in reason


def test_a_flat_curve_and_a_short_curve_never_stop():
    assert not stm_stop([0.7] * 30, min_points=6)[0]
    assert not stm_stop([0.9, 0.1], min_points=6)[0]


# --------------------------------------------------------------------------- end to end on digits


def _tracked(recipe: dict, **tracking) -> dict:
    recipe["tracking"] = {"every": 2, "epochs": 5, **tracking}
    recipe["evaluation"]["baselines"] = []
    return recipe


def test_diverging_distillation_returns_the_initialisation(tiny_recipe, tmp_path):
    recipe = _tracked(tiny_recipe, epochs=30)  # long enough for the proxy to beat chance on the real init
    recipe["method"]["lr_inputs"] = 1e7  # every update throws the images far off: validation collapses
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    t = run.manifest["tracking"]
    assert [p["step"] for p in t["curve"]] == [0, 2, 4, 6]
    assert t["best_step"] == 0 and t["initial_score"] == t["best_score"]
    assert max(p["score"] for p in t["curve"][1:]) < t["best_score"]
    ws = setup(load_config(recipe))
    initial = ws.domain.make_synthetic(ws, make_generator(recipe["seed"]))
    assert torch.equal(run.synthetic.inputs.detach(), initial.inputs.detach())
    assert torch.equal(mmdd.load(run.dir).inputs, initial.inputs.detach())
    assert "best" in (run.dir / "report.md").read_text() and "at step 0" in (run.dir / "report.md").read_text()


def test_keep_last_returns_the_last_set(tiny_recipe, tmp_path):
    tiny_recipe["dataset"]["val_fraction"] = 0.1  # the data has a validation split: tracking carves none
    recipe = _tracked(tiny_recipe, keep="last")
    recipe["method"]["lr_inputs"] = 1e7
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    untracked = dict(recipe, tracking={"every": 0})
    plain = mmdd.distill(untracked, output_dir=tmp_path / "plain", evaluate=False, progress=False)
    # tracking only watches: the kept-last set is the untracked run's set, bit for bit
    assert torch.equal(run.synthetic.inputs, plain.synthetic.inputs)


def test_validation_is_carved_from_train_and_the_test_split_is_never_scored(tiny_recipe, tmp_path, monkeypatch):
    recipe = _tracked(tiny_recipe)
    cfg = load_config(recipe)
    ws = setup(cfg)
    plain = setup(load_config(dict(tiny_recipe, tracking={"every": 0})))
    assert plain.data.val is None and ws.data.val is not None
    assert len(ws.data.train) + len(ws.data.val) == len(plain.data.train)
    assert "val" in ws.data.info["split_rule"]
    import mmdd.core.tracking as tracking

    seen = []
    real_evaluate = tracking.evaluate_set

    def spy(*args, **kwargs):
        seen.append(kwargs["test"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(tracking, "evaluate_set", spy)
    mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    assert seen and all(len(split) == len(ws.data.val) and torch.equal(split.labels, ws.data.val.labels)
                        for split in seen)


def test_metrics_hold_the_validation_curve_and_resume_keeps_it(tiny_recipe, tmp_path):
    recipe = _tracked(tiny_recipe)
    whole = mmdd.distill(recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False)
    mmdd.distill(recipe, output_dir=tmp_path / "part", stop_after=3, evaluate=False, progress=False)
    resumed = mmdd.distill(recipe, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    assert resumed.manifest["tracking"]["curve"] == whole.manifest["tracking"]["curve"]
    assert torch.equal(resumed.synthetic.inputs, whole.synthetic.inputs)
    records = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "validation" in r] == [0, 2, 4, 6]


def test_early_stop_ends_a_falling_run_and_it_counts_as_complete(tiny_recipe, tmp_path):
    recipe = _tracked(tiny_recipe, every=1, epochs=30, early_stop=True, min_points=5, sigma=1.0)
    recipe["method"]["iterations"] = 30
    recipe["method"]["lr_inputs"] = 1e7
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    t = run.manifest["tracking"]
    assert run.manifest["status"] == "complete"
    assert t["stopped_at"] is not None and run.manifest["steps_completed"] == t["stopped_at"] < 30
    assert "falls" in t["reason"] or "≤" in t["reason"]
    assert "stopped early" in (run.dir / "report.md").read_text()


@pytest.mark.parametrize("key,value,words", [("every", -1, "every must be ≥ 0"), ("val_fraction", 1.0, "(0, 1)"),
                                             ("min_points", 2, "min_points"), ("keep", "first", "best")])
def test_impossible_tracking_values_are_refused(tiny_recipe, key, value, words):
    tiny_recipe["tracking"] = {"every": 2, key: value}
    with pytest.raises(ConfigError, match=r"tracking\." + key if key != "keep" else "tracking.keep"):
        load_config(tiny_recipe)
    try:
        load_config(tiny_recipe)
    except ConfigError as exc:
        assert words in str(exc)


def test_a_tiny_test_split_is_warned_about(tiny_recipe):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup(load_config(tiny_recipe))  # digits: 360 test images, no warning
    assert not [w for w in caught if "split holds only" in str(w.message)]
    tiny_recipe["dataset"]["val_fraction"] = 0.02  # a handful of validation images
    with pytest.warns(UserWarning, match=r"the val split holds only \d+ item"):
        setup(load_config(tiny_recipe))


def test_the_set_can_be_picked_on_another_metric_of_the_domain(tiny_recipe, tmp_path):
    recipe = _tracked(tiny_recipe, metric="accuracy")
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    assert run.manifest["tracking"]["metric"] == "accuracy"
    recipe["tracking"]["metric"] = "auc"  # not a metric of the image domain
    with pytest.raises(ConfigError, match="tracking.metric: 'auc' is not a metric of the image domain"):
        mmdd.distill(recipe, output_dir=tmp_path / "other", evaluate=False, progress=False)
    assert not (tmp_path / "other").exists()  # refused before anything is written


def test_the_proxy_follows_the_recipes_protocol_with_its_own_seeds(tiny_recipe, tmp_path):
    from mmdd.core.tracking import PROXY_SEED_BASE
    from mmdd.run import make_tracker

    tiny_recipe["evaluation"].update(select="best_val", select_every=1, epochs=7)
    ws = setup(load_config(_tracked(tiny_recipe, seeds=2)))
    tracker = make_tracker(ws, tmp_path / "metrics.jsonl")
    assert tracker.proxy.select == "best_val" and tracker.proxy.epochs == 5  # tracking.epochs wins over 7
    assert tracker.proxy.seed_list() == [PROXY_SEED_BASE, PROXY_SEED_BASE + 1]  # never the evaluation's seeds
