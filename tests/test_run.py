"""End-to-end runs on the tiny digits recipe: artifact, load, resume, NaN, re-evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader

import mmdd
from mmdd.core import rundir as artifacts
from mmdd.core.errors import ConfigError, RunError
from fresh_load import load_in_fresh_process  # noqa: E402


@pytest.fixture
def finished(tiny_recipe, tmp_path):
    return mmdd.distill(tiny_recipe, output_dir=tmp_path / "run", progress=False)


def test_run_directory_holds_the_artifact(finished):
    names = {p.name for p in finished.dir.iterdir()}
    assert {"distilled.safetensors", "manifest.json", "metrics.jsonl", "report.md", "samples.png",
            "checkpoint.pt"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    m = json.loads((finished.dir / "manifest.json").read_text())
    assert m["status"] == "complete" and m["steps_completed"] == 6
    assert m["recipe"]["method"]["iterations"] == 6 and m["seeds"] == {"distillation": [0], "evaluation": [0, 1]}
    assert m["storage_bytes"] == 20 * 64 * 4 + 20 * 8  # 10 classes × 2 ipc of 1×8×8 float32 + int64 labels
    assert m["compression_ratio"] == pytest.approx(m["real_bytes"] / m["storage_bytes"])
    assert m["packages"]["torch"] == torch.__version__.split("+")[0] or m["packages"]["torch"].startswith(
        torch.__version__.split("+")[0])
    for name in ("distilled", "random"):
        ev = m["evaluation"][name]
        assert ev["metric"] == "accuracy" and len(ev["values"]) == 2 and 0 <= ev["mean"] <= 1
        assert "last epoch on test" in ev["protocol"] and ev["train_size"] == 20
    lines = (finished.dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
    report = (finished.dir / "report.md").read_text()
    assert "![samples.png](samples.png)" in report and "| distilled |" in report


def test_load_in_a_fresh_process_iterates_with_a_dataloader(finished):
    info = load_in_fresh_process(finished.dir)
    assert info == {"type": "DistilledDataset", "len": 20, "seen": 20, "item_shapes": [[1, 8, 8], []],
                    "dtypes": ["torch.float32", "torch.int64"]}


def test_load_gives_back_the_same_tensors(finished):
    data = mmdd.load(finished.dir)
    stored = load_file(str(finished.dir / "distilled.safetensors"))
    assert torch.equal(data.inputs, stored["inputs"]) and torch.equal(data.inputs, finished.synthetic.inputs.detach())
    assert torch.equal(data.targets, stored["labels"])
    assert len(data) == 20 and data.num_classes == 10 and not data.soft_labels and data.learned_lr is None
    assert data.normalization is not None and len(data.normalization["mean"]) == 1
    x, y = data[3]
    assert x.shape == (1, 8, 8) and int(y) == 1


def test_loaded_dataset_drops_into_a_plain_training_loop(finished):
    data = mmdd.load(finished.dir)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in DataLoader(data, batch_size=8, shuffle=False):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)


def test_resume_matches_an_uninterrupted_run(tiny_recipe, tmp_path):
    tiny_recipe["evaluation"]["baselines"] = []
    whole = mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False)
    part = mmdd.distill(tiny_recipe, output_dir=tmp_path / "part", stop_after=3, evaluate=False, progress=False)
    assert part.manifest["status"] == "interrupted" and part.manifest["steps_completed"] == 3
    assert not (tmp_path / "part" / "distilled.safetensors").exists()
    with pytest.raises(RunError, match="unfinished run"):
        mmdd.evaluate(tmp_path / "part")
    resumed = mmdd.distill(tiny_recipe, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    assert resumed.manifest["steps_completed"] == 6
    assert torch.equal(resumed.synthetic.inputs, whole.synthetic.inputs)
    losses = lambda d: [json.loads(l)["loss"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")


def test_existing_run_is_not_overwritten_silently(finished, tiny_recipe):
    with pytest.raises(RunError, match="already holds a run"):
        mmdd.distill(tiny_recipe, output_dir=finished.dir, progress=False)


def test_resume_refuses_a_changed_recipe(tiny_recipe, tmp_path):
    mmdd.distill(tiny_recipe, output_dir=tmp_path / "r", stop_after=2, evaluate=False, progress=False)
    with pytest.raises(RunError, match="recipe differs"):
        mmdd.distill(tiny_recipe, ["budget.ipc=3"], output_dir=tmp_path / "r", resume=True, progress=False)


def test_resume_without_checkpoint(tiny_recipe, tmp_path):
    with pytest.raises(RunError, match="no checkpoint"):
        mmdd.distill(tiny_recipe, output_dir=tmp_path / "none", resume=True, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_recipe, tmp_path, monkeypatch):
    from mmdd.core.matchers import distribution

    real_call = distribution.DistributionMatcher.__call__
    calls = {"n": 0}

    def flaky(self, syn, real, gen):
        calls["n"] += 1
        loss = real_call(self, syn, real, gen)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(distribution.DistributionMatcher, "__call__", flaky)
    with pytest.raises(RunError) as info:
        mmdd.distill(tiny_recipe, output_dir=tmp_path / "nan", progress=False)
    msg = str(info.value)
    assert "nan at step 5" in msg and "checkpoint.pt" in msg and "method.lr_inputs" in msg
    state = artifacts.load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert state["step"] == 4 and torch.isfinite(state["synthetic"]["inputs"]).all()


def test_reevaluation_updates_manifest(finished):
    run = mmdd.evaluate(finished.dir, baselines=["random", "herding", "kcenter"], seeds=1, progress=False)
    m = json.loads((finished.dir / "manifest.json").read_text())
    assert set(m["evaluation"]) == {"distilled", "random", "herding", "kcenter"}
    assert all(len(v["values"]) == 1 for v in m["evaluation"].values())
    assert run.manifest == m


def test_artifacts_get_the_mode_the_umask_gives(finished, tmp_path):
    import os
    import stat

    from mmdd.core.atomic import current_umask

    for name in ("distilled.safetensors", "manifest.json", "report.md", "checkpoint.pt"):
        assert stat.S_IMODE((finished.dir / name).stat().st_mode) == 0o666 & ~current_umask(), name  # not a temp file's 0600
    old = os.umask(0o077)
    try:
        artifacts.write_json(tmp_path / "private.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    artifacts.write_json(target, {"a": 1})

    def boom(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        artifacts.atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_soft_labels_and_learned_lr_travel_with_the_artifact(tiny_recipe, tmp_path):
    tiny_recipe["synthetic"] = {"soft_labels": True, "learn_lr": True, "lr_init": 0.02}
    tiny_recipe["evaluation"]["baselines"] = []
    run = mmdd.distill(tiny_recipe, output_dir=tmp_path / "soft", progress=False)
    data = mmdd.load(run.dir)
    assert data.soft_labels and data.targets.shape == (20, 10)
    assert torch.allclose(data.targets.sum(1), torch.ones(20))
    assert data.learned_lr == pytest.approx(0.02)
    assert "learned lr 0.02" in run.manifest["evaluation"]["distilled"]["protocol"]


def test_selection_on_validation_is_refused_without_a_validation_split(tiny_recipe):
    from mmdd.run import load_config, setup

    tiny_recipe["evaluation"]["select"] = "best_val"
    with pytest.raises(ConfigError, match="best_val picks each model on the validation split, but the digits data "
                                          "has none; use evaluation.select=last"):
        setup(load_config(tiny_recipe))
    tiny_recipe["tracking"] = {"every": 2}  # tracking holds out validation from train: selection can use it
    assert len(setup(load_config(tiny_recipe)).data.val) > 0
