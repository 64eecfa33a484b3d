"""The medical domain: PTM's schedule, overlap mitigation, AUC, validation selection, runs on MedMNIST-layout files."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

import mmdd
from medical_fixtures import write_adrenalmnist3d, write_breastmnist, write_chestmnist, write_medmnist
from mmdd.core.augment import ImageAugment
from mmdd.core.data import ClassIndex, Split
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import ClassificationTask, EvalConfig, EvalSet, Samples, evaluate_set
from mmdd.core.matchers.base import MatchingContext
from mmdd.core.metrics import accuracy, auc
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet, SyntheticConfig
from mmdd.domains.medical.datasets import load_medmnist
from mmdd.core.augment import VolumeAwareAugment
from mmdd.domains.medical.ptm import PTMConfig, ProgressiveTrajectoryMatcher, mitigate_overlap, overlap_scores, progressive_end
from test_trajectory import CLASSES, SHAPE, build_buffer, make_net
from fresh_load import load_in_fresh_process  # noqa: E402


def test_progressive_schedule_moves_the_segment_end_in_equal_stages():
    ends = [progressive_end(i, 10, 2, 6) for i in range(10)]
    assert ends == [2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    assert [progressive_end(i, 4, 3, 3) for i in range(4)] == [3, 3, 3, 3]
    assert progressive_end(999, 10, 1, 4) == 4


def test_ptm_matcher_starts_every_segment_at_epoch_zero(tmp_path, monkeypatch):
    root = tmp_path / "experts"
    root.mkdir()
    buffer = build_buffer(root, num_experts=1, epochs=4)
    cfg = PTMConfig(iterations=4, syn_steps=1, initial_end_epoch=1, final_end_epoch=4, max_start_epoch=30)
    matcher = ProgressiveTrajectoryMatcher(cfg, MatchingContext(make_net, None, torch.device("cpu"), buffer))
    seen = []
    original = buffer.snapshot
    monkeypatch.setattr(buffer, "snapshot", lambda k, e: seen.append(e) or original(k, e))
    syn = PixelSet(torch.randn(CLASSES * 2, *SHAPE), CLASSES, 2, learn_lr=True)
    for _ in range(4):
        matcher(syn, None, make_generator(0))
    assert seen == [0, 1, 0, 2, 0, 3, 0, 4]  # (start, end) per iteration
    assert matcher.log_fields() == {"segment_end": 4, "overlap_resets": 0}
    with pytest.raises(ConfigError, match="final_end_epoch=9"):
        ProgressiveTrajectoryMatcher(PTMConfig(final_end_epoch=9), MatchingContext(make_net, None,
                                                                                   torch.device("cpu"), buffer))


def overlap_fixture():
    gen = make_generator(3)
    base = torch.randn(6, 1, 4, 4, generator=gen) * 3
    x = base.clone()
    x[1] = base[0] + 0.01  # class 0: a near-duplicate of sample 0
    x[4] = base[2] + 0.01  # class 1 sample sitting on a class-0 sample
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    return x, labels


def test_overlap_scores_find_duplicates_and_cross_class_overlap():
    x, labels = overlap_fixture()
    within, across = overlap_scores(x, labels)
    assert within[0] == 0 and within[1] > 0.99  # only the later of the pair is redundant
    assert within[1] == within.max()
    assert across[4] == across.max() and across[4] > 0


def test_a_lone_sample_of_its_class_is_compared_with_itself():
    gen = make_generator(1)
    x = torch.randn(3, 1, 4, 4, generator=gen) * 3  # one sample per class
    within, across = overlap_scores(x, torch.tensor([0, 1, 2]))
    assert torch.all(within == 0) and torch.all(across < 0)
    x[1] = x[0] + 0.01  # the classes' only samples nearly coincide: still mean_other - 1 <= 0
    _, across = overlap_scores(x, torch.tensor([0, 1, 2]))
    assert torch.all(across <= 0)
    real = ClassIndex(Split(torch.randn(9, 1, 4, 4, generator=gen), torch.arange(9) % 3), 3)
    syn = PixelSet(x.clone(), num_classes=3, ipc=1)
    assert mitigate_overlap(syn, real, make_generator(0), 0.95, 0.0).numel() == 0
    assert torch.equal(syn.inputs.detach(), x)
    # a class with two samples still uses its other member: x[4] sits on class 0, away from x[3]
    x2 = torch.cat([x, torch.randn(2, 1, 4, 4, generator=gen) * 3])
    x2[4] = x2[0] + 0.01
    _, across = overlap_scores(x2, torch.tensor([0, 1, 2, 3, 3]))
    assert across[4] > 0


def test_overlap_mitigation_reinitialises_exactly_the_samples_above_threshold():
    x, labels = overlap_fixture()
    syn = PixelSet(x, num_classes=2, ipc=3)
    real_split = Split(torch.full((10, 1, 4, 4), 7.0) + torch.arange(10).view(-1, 1, 1, 1),
                       torch.tensor([0] * 5 + [1] * 5))
    real = ClassIndex(real_split, 2)
    within, across = overlap_scores(x, labels)
    across_threshold = float(across.sort().values[-2])  # exactly one sample above it
    expected = sorted(set(torch.nonzero(within > 0.95).flatten().tolist())
                      | set(torch.nonzero(across > across_threshold).flatten().tolist()))
    assert expected == [1, 4]
    chosen = mitigate_overlap(syn, real, make_generator(0), 0.95, across_threshold)
    assert chosen.tolist() == expected
    after = syn.inputs.detach()
    for i in range(6):
        if i in expected:  # now a real sample of its own class
            row = int(after[i].flatten()[0].item()) - 7
            assert 0 <= row < 10 and int(real_split.labels[row]) == int(labels[i])
        else:
            assert torch.equal(after[i], x[i])


def test_a_reinitialised_sample_starts_without_the_old_samples_momentum():
    x, labels = overlap_fixture()
    syn = PixelSet(x, num_classes=2, ipc=3)
    optimizer = torch.optim.SGD([syn.inputs], lr=0.1, momentum=0.5)
    syn.inputs.grad = torch.ones_like(syn.inputs)
    optimizer.step()  # every row now has momentum 1
    real = ClassIndex(Split(torch.full((10, 1, 4, 4), 7.0), torch.tensor([0] * 5 + [1] * 5)), 2)
    chosen = mitigate_overlap(syn, real, make_generator(0), 0.95, float(overlap_scores(x, labels)[1].sort().values[-2]),
                              optimizer).tolist()
    momentum = optimizer.state[syn.inputs]["momentum_buffer"]
    assert chosen == [1, 4]
    for i in range(6):
        assert float(momentum[i].abs().max()) == (0.0 if i in chosen else 1.0)


def test_auc_matches_scikit_learn_for_binary_multiclass_and_multilabel():
    gen = make_generator(0)
    logits = torch.randn(40, 2, generator=gen)
    y = torch.randint(0, 2, (40,), generator=gen)
    assert auc(logits, y) == pytest.approx(roc_auc_score(y, logits.softmax(-1)[:, 1]))
    logits = torch.randn(60, 4, generator=gen)
    y = torch.arange(60) % 4
    assert auc(logits, y) == pytest.approx(roc_auc_score(y, logits.softmax(-1), multi_class="ovr"))
    logits = torch.randint(0, 3, (30, 3), generator=gen).float()  # ties
    y = torch.randint(0, 2, (30, 3), generator=gen)
    assert auc(logits, y) == pytest.approx(roc_auc_score(y, logits.sigmoid(), average="macro"))


def test_validation_selection_never_reports_worse_than_the_last_epoch_on_its_own_split():
    gen = make_generator(0)
    x = torch.randn(40, 1, 8, 8, generator=gen)
    y = torch.arange(40) % 2
    x[y == 1, :, :4] += 1.0
    split = Split(x, y)
    net = ConvNetConfig(depth=1, width=4)
    common = dict(make_network=lambda g: create_network(net, (1, 8, 8), 2, g), test=split, protocol="p",
                  device=torch.device("cpu"), val=split)
    task = ClassificationTask("accuracy", {"accuracy": accuracy, "auc": auc})
    chosen = EvalSet(Samples(x[:8], y[:8]))
    last = evaluate_set(chosen, task, cfg=EvalConfig(epochs=12, seeds=2, batch_size=8), **common)
    best = evaluate_set(chosen, task, cfg=EvalConfig(epochs=12, seeds=2, batch_size=8, select="best_val",
                                                     select_every=2), **common)
    assert all(b >= a for a, b in zip(last.values, best.values))  # val = test here: the last epoch is a candidate
    assert set(best.others) == {"auc"} and len(best.others["auc"]["values"]) == 2


def test_volume_augment_is_siamese_in_plane_and_refuses_colour():
    aug = VolumeAwareAugment(ImageAugment("crop_flip_rotate", mode="all"))
    v = torch.randn(1, 1, 5, 8, 8)
    a, b = aug.siamese([v.expand(3, -1, -1, -1, -1), v.expand(2, -1, -1, -1, -1)], make_generator(1))
    assert a.shape == (3, 1, 5, 8, 8) and torch.equal(a[0], b[1])
    with pytest.raises(ConfigError, match="not defined for 3D volumes"):
        VolumeAwareAugment(ImageAugment("color_crop"))(v, make_generator(0))


def medmnist_recipe(path, **method) -> dict:
    return {"name": "med-tiny", "domain": "medical", "dataset": {"name": "medmnist", "path": str(path)},
            "budget": {"ipc": 2}, "network": {"name": "convnet", "depth": 2, "width": 4},
            "method": method or {"name": "dm", "iterations": 3, "batch_real": 8},
            "augment": {"strategy": "crop_flip"},
            "evaluation": {"epochs": 4, "seeds": 1, "batch_size": 8, "select": "best_val", "select_every": 2,
                           "baselines": ["random"]}, "checkpoint": {"every": 2}}


def test_ptm_run_on_a_medmnist_file_reports_accuracy_and_auc(tmp_path):
    path = write_breastmnist(tmp_path)
    method = {"name": "ptm", "iterations": 4, "syn_steps": 2, "initial_end_epoch": 1, "final_end_epoch": 2,
              "overlap_every": 2, "within_threshold": 0.5}
    recipe = medmnist_recipe(path, **method)
    recipe["experts"] = {"dir": str(tmp_path / "experts"), "num_experts": 1, "epochs": 2, "batch_size": 8}
    recipe["synthetic"] = {"learn_lr": True}
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    res = run.manifest["evaluation"]["distilled"]
    assert res["metric"] == "accuracy" and 0 <= res["others"]["auc"]["mean"] <= 1
    assert "model selected on validation" in res["protocol"]
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["segment_end"] for r in log] == [1, 1, 2, 2] and "overlap_resets" in log[-1]
    assert run.manifest["data"]["class_names"] == ["malignant", "normal, benign"]


def test_validation_tracking_picks_the_medical_set_on_auc(tmp_path):
    recipe = medmnist_recipe(write_breastmnist(tmp_path))
    recipe["tracking"] = {"every": 1, "epochs": 2, "metric": "auc"}
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    t = run.manifest["tracking"]
    assert t["metric"] == "auc" and [p["step"] for p in t["curve"]] == [0, 1, 2, 3]
    assert t["best_score"] == max(p["score"] for p in t["curve"]) and 0 <= t["best_score"] <= 1
    assert "auc on validation" in (tmp_path / "run" / "report.md").read_text()


def test_3d_volumes_distil_with_a_3d_convnet(tmp_path):
    recipe = medmnist_recipe(write_adrenalmnist3d(tmp_path))
    recipe["budget"]["ipc"] = 1
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    assert run.manifest["data"]["input_shape"] == [1, 28, 28, 28]
    assert mmdd.load(tmp_path / "run")[0][0].shape == (1, 28, 28, 28)
    info = load_in_fresh_process(tmp_path / "run")
    assert info["seen"] == 2 and info["item_shapes"] == [[1, 28, 28, 28], []]
    assert (tmp_path / "run" / "samples.png").exists()


def test_a_monai_network_evaluates_across_architectures(tmp_path):
    recipe = medmnist_recipe(write_breastmnist(tmp_path))
    recipe["evaluation"].update(network={"name": "monai", "arch": "resnet10"}, epochs=2, baselines=[])
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    assert run.manifest["evaluation"]["distilled"]["protocol"].startswith("monai")


def test_multi_label_chestmnist_distils_with_ptm_and_reports_multi_label_metrics(tmp_path):
    path = write_chestmnist(tmp_path)
    method = {"name": "ptm", "iterations": 4, "syn_steps": 2, "initial_end_epoch": 1, "final_end_epoch": 2,
              "overlap_every": 2, "within_threshold": 0.01}  # resets most samples: their label rows follow
    recipe = medmnist_recipe(path, **method)
    recipe["experts"] = {"dir": str(tmp_path / "experts"), "num_experts": 1, "epochs": 2, "batch_size": 8}
    recipe["synthetic"] = {"learn_lr": True}
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    inputs, targets = run.synthetic.decode()
    assert targets.shape == (28, 14) and targets.dtype == torch.long  # 2 per label
    assert torch.all(targets[torch.arange(28), torch.arange(28) // 2] == 1)  # each row positive for its own label
    real_rows = {tuple(r) for r in load_medmnist(path).train.labels.tolist()}
    assert all(tuple(t) in real_rows for t in targets.tolist())  # each the label row of the image it came from
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["overlap_resets"] > 0
    res = run.manifest["evaluation"]
    assert set(res) == {"distilled", "random"} and 0 <= res["distilled"]["others"]["auc"]["mean"] <= 1
    data = mmdd.load(tmp_path / "run")
    assert data.multi_label and not data.soft_labels and data[0][1].shape == (14,)


def test_multi_label_dm_starts_from_real_rows_with_their_labels(tmp_path):
    path = write_medmnist(tmp_path / "chestmnist.npz", counts={"train": 60, "val": 8, "test": 8})
    recipe = medmnist_recipe(path)
    recipe["budget"]["ipc"] = 1
    recipe["evaluation"]["baselines"] = []
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False, evaluate=False)
    syn = run.synthetic
    start = PixelSet.from_real(ClassIndex(load_medmnist(path).train, 14), 1, SyntheticConfig(), make_generator(0))
    assert torch.equal(syn.multi_hot, start.multi_hot)  # labels are not learned; DM moves only the pixels
    assert len({tuple(r) for r in start.inputs.detach().flatten(1)[:, :8].tolist()}) == 14  # 14 distinct images


def test_predict_prints_the_random_subset_curve(tmp_path, capsys):
    from mmdd.cli import main

    path = write_breastmnist(tmp_path)
    recipe = tmp_path / "r.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(medmnist_recipe(path)))
    assert main(["predict", str(recipe), "--budgets", "1,2,50", "--quiet", "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "random-1" in out and "random-2 ← recipe budget" in out and "whole data" in out and "auc" in out
    curve = json.loads((tmp_path / "c.json").read_text())
    assert [r["ipc"] for r in curve["rows"]] == [1, 2, None] and curve["rows"][-1]["of_whole"] == 1.0
