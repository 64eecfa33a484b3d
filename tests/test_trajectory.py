"""Expert buffers and trajectory matching: solvers agree, groups normalise alone, buffers resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import mmdd
from mmdd.core.augment import ImageAugment
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.evaluation import train_epoch
from mmdd.core.matchers.base import MatchingContext
from mmdd.core.matchers.trajectory import TMConfig, TrajectoryMatcher, assign_groups, group_loss
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet
from mmdd.core.trajectories import ExpertBuffer, ExpertsConfig, pending_experts, rebuild_index, train_expert

SHAPE, CLASSES = (1, 8, 8), 3
NET = ConvNetConfig(depth=1, width=4)


def make_net(gen):
    return create_network(NET, SHAPE, CLASSES, gen)


def toy_data(n=30):
    gen = make_generator(1)
    x = torch.randn((n, *SHAPE), generator=gen)
    y = torch.arange(n) % CLASSES
    x[:, :, :, : 4] += y.view(-1, 1, 1, 1).float()  # learnable class signal
    return x, y


def build_buffer(root: Path, num_experts=2, epochs=4, seed=0) -> ExpertBuffer:
    x, y = toy_data()
    cfg = ExpertsConfig(num_experts=num_experts, epochs=epochs, lr=0.05, batch_size=10, seed=seed)
    for k in pending_experts(root, num_experts):
        train_expert(k, cfg, root, make_net, lambda net, opt, gen: train_epoch(
            net, opt, x, y, cfg.batch_size, gen, None, torch.device("cpu")))
    rebuild_index(root)
    return ExpertBuffer(root)


@pytest.fixture
def buffer(tmp_path):
    root = tmp_path / "experts"
    root.mkdir()
    return build_buffer(root)


def matcher_for(buffer, solver, augment=True, groups=None, **kw):
    cfg = TMConfig(syn_steps=4, expert_epochs=2, max_start_epoch=2, solver=solver, groups=groups, **kw)
    ctx = MatchingContext(make_network=make_net, augment=ImageAugment() if augment else None,
                          device=torch.device("cpu"), experts=buffer)
    return TrajectoryMatcher(cfg, ctx)


def syn_set(soft=False, lr=0.01, lr_groups=1):
    inputs = torch.randn((CLASSES * 2, *SHAPE), generator=make_generator(3))
    syn = PixelSet(inputs, CLASSES, 2, soft_labels=soft, learn_lr=True, lr_init=lr, lr_groups=lr_groups)
    return syn


def grads_of(matcher, syn, seed=7):
    syn.zero_grad(set_to_none=True)
    loss = matcher(syn, None, make_generator(seed))
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in syn.named_parameters() if p.grad is not None}


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("lr", [0.01, 0.2])
def test_constant_memory_solver_matches_exact(buffer, soft, lr):
    syn = syn_set(soft=soft, lr=lr)
    loss_e, g_e = grads_of(matcher_for(buffer, "exact"), syn)
    loss_c, g_c = grads_of(matcher_for(buffer, "constant_memory"), syn)
    assert loss_c == pytest.approx(loss_e, rel=1e-5)
    assert set(g_e) == set(g_c) and "inputs" in g_e and "log_lr" in g_e
    for name in g_e:
        assert cosine(g_e[name], g_c[name]) >= 0.99, name
        assert torch.allclose(g_e[name], g_c[name], rtol=1e-3, atol=1e-6), name  # full derivative, not halved


def test_groups_normalise_independently():
    start = {"a": torch.zeros(3), "b": torch.zeros(2)}
    target = {"a": torch.ones(3), "b": torch.full((2,), 10.0)}
    final = {"a": torch.full((3,), 0.5), "b": torch.full((2,), 5.0)}
    members = {"first": ["a"], "second": ["b"]}
    both = group_loss(final, start, target, members)
    assert float(both) == pytest.approx(0.25 + 0.25)  # each group's own ratio, summed
    one = group_loss(final, start, target, {"all": ["a", "b"]})
    assert float(one) == pytest.approx((3 * 0.25 + 2 * 25) / (3 + 200))
    final["b"] = final["b"] * 0  # moving group b changes only b's term
    assert float(group_loss(final, start, target, members)) == pytest.approx(0.25 + 1.0)


def test_assign_groups_prefixes_and_empty_group():
    names = ["features.0.weight", "features.0.bias", "classifier.weight", "classifier.bias"]
    groups = assign_groups(names, {"conv": ["features."], "head": ["classifier."]})
    assert groups == {"conv": names[:2], "head": names[2:]}
    assert assign_groups(names, None) == {"all": names}
    with pytest.raises(ConfigError, match="match no parameter"):
        assign_groups(names, {"conv": ["features."], "lora": ["lora_"]})


def test_grouped_solvers_agree_with_one_lr_per_group(buffer):
    groups = {"conv": ["features."], "head": ["classifier."]}
    syn = syn_set(lr_groups=2)
    _, g_e = grads_of(matcher_for(buffer, "exact", groups=groups), syn)
    _, g_c = grads_of(matcher_for(buffer, "constant_memory", groups=groups), syn)
    assert g_e["log_lr"].shape == (2,)
    assert torch.allclose(g_e["log_lr"], g_c["log_lr"], rtol=1e-3, atol=1e-7)
    assert cosine(g_e["inputs"], g_c["inputs"]) >= 0.99


def test_ungrouped_parameters_stay_frozen(buffer):
    m = matcher_for(buffer, "exact", groups={"head": ["classifier."]})
    assert list(m.group_of) == ["classifier.weight", "classifier.bias"]
    syn = syn_set()
    loss = m(syn, None, make_generator(0))
    assert torch.isfinite(loss)


def test_schedule_hook_chooses_segments(buffer, monkeypatch):
    m = matcher_for(buffer, "exact")
    seen = []
    original = buffer.snapshot
    monkeypatch.setattr(buffer, "snapshot", lambda k, e: seen.append(e) or original(k, e))
    m.schedule = lambda iteration, gen: (0, 1 + iteration)
    syn = syn_set()
    for _ in range(3):
        m(syn, None, make_generator(0))
    assert seen == [0, 1, 0, 2, 0, 3]
    m.schedule = lambda iteration, gen: (0, 9)
    with pytest.raises(mmdd.RunError, match="0..4"):
        m(syn, None, make_generator(0))


def test_segment_longer_than_the_experts_is_refused(buffer):
    # starts are drawn from [0, max_start_epoch), as in MTT: with 4-epoch experts, 3 + 2 fits (latest 2 → 4)
    TrajectoryMatcher(TMConfig(max_start_epoch=3, expert_epochs=2), MatchingContext(make_net, None, torch.device("cpu"),
                                                                                    buffer))
    with pytest.raises(ConfigError, match="latest segment \\(start 3\\) ends at epoch 5, but .* have 4 epochs"):
        TrajectoryMatcher(TMConfig(max_start_epoch=4, expert_epochs=2),
                          MatchingContext(make_net, None, torch.device("cpu"), buffer))


def test_buffer_round_trips_and_resumes(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    buf = build_buffer(root, num_experts=3, epochs=2)
    assert buf.experts == [0, 1, 2] and buf.num_epochs == 2
    index = json.loads((root / "index.json").read_text())
    assert set(index["experts"]) == {"0", "1", "2"} and "classifier.weight" in index["param_shapes"]
    # The epoch-0 snapshot is the seeded initialisation of that expert.
    init = make_net(make_generator(0 * 1_000_003 + 1))
    assert torch.equal(buf.snapshot(1, 0)["classifier.weight"], init.classifier.weight.detach())
    assert not torch.equal(buf.snapshot(1, 0)["classifier.weight"], buf.snapshot(1, 2)["classifier.weight"])
    before = {k: v.clone() for k, v in load_file(str(root / "expert_0001.safetensors")).items()}
    # Interrupt: expert 1 lost its sidecar (the shard may be half-written); only it is redone.
    (root / "expert_0001.json").unlink()
    (root / "expert_0001.safetensors").write_bytes(b"half")
    assert pending_experts(root, 3) == [1]
    again = build_buffer(root, num_experts=3, epochs=2)
    assert again.experts == [0, 1, 2]
    after = load_file(str(root / "expert_0001.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_buffer_validation_errors(tmp_path, buffer):
    with pytest.raises(DataError, match="no expert buffer"):
        ExpertBuffer(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no finished expert"):
        ExpertBuffer(empty)
    root = buffer.root
    shard = root / "expert_0000.safetensors"
    tensors = load_file(str(shard))
    del tensors["e3/classifier.bias"]
    save_file(tensors, str(shard))
    with pytest.raises(DataError, match="lacks 'e3/classifier.bias'"):
        ExpertBuffer(root).snapshot(0, 1)
    tensors["e3/classifier.bias"] = torch.zeros(7)
    save_file(tensors, str(shard))
    with pytest.raises(DataError, match="expected \\[3\\]"):
        ExpertBuffer(root).snapshot(0, 1)
    with pytest.raises(DataError, match="epochs 0..4"):
        ExpertBuffer(root).snapshot(1, 5)
    wide = create_network(ConvNetConfig(depth=1, width=8), SHAPE, CLASSES, make_generator(0))
    with pytest.raises(DataError, match="another network"):
        ExpertBuffer(root).check_network(wide)



def test_snapshot_reads_only_the_asked_epoch(buffer, monkeypatch):
    """A segment needs two snapshots; the shard is memory-mapped and only those tensors are read."""
    buf = ExpertBuffer(buffer.root)
    read: list[str] = []
    shard = buf._open(0)

    class Spy:
        def __getattr__(self, name):
            return getattr(shard, name)

        def get_tensor(self, key):
            read.append(key)
            return shard.get_tensor(key)

    buf._shards[0] = Spy()
    snap = buf.snapshot(0, 2)
    assert read and all(key.startswith("e2/") for key in read)
    assert len(read) == len(buf.param_shapes)
    full = load_file(str(buffer.root / "expert_0000.safetensors"))
    assert all(torch.equal(snap[n], full[f"e2/{n}"]) for n in snap)


def test_damaged_shard_is_named(buffer):
    (buffer.root / "expert_0001.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="cannot read expert shard .*expert_0001.safetensors"):
        ExpertBuffer(buffer.root).snapshot(1, 0)

MTT_RECIPE = {
    "name": "tiny-mtt", "domain": "image", "seed": 0,
    "dataset": {"name": "digits", "train_per_class": 20},
    "budget": {"ipc": 1},
    "network": {"name": "convnet", "depth": 1, "width": 4},
    "synthetic": {"learn_lr": True, "lr_init": 0.01},
    "method": {"name": "mtt", "iterations": 4, "syn_steps": 3, "expert_epochs": 1, "max_start_epoch": 1,
               "lr_inputs": 10.0, "lr_lr": 1e-5, "solver": "constant_memory"},
    "experts": {"num_experts": 4, "epochs": 2, "batch_size": 64},
    "evaluation": {"epochs": 2, "seeds": 1, "baselines": []},
    "checkpoint": {"every": 2},
}


def test_mtt_run_end_to_end_and_resume(tmp_path):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"]["dir"] = str(tmp_path / "experts")
    from mmdd.experts import generate_experts

    buffer = generate_experts(recipe, progress=False)
    assert buffer.experts == [0, 1, 2, 3] and buffer.num_epochs == 2
    whole = mmdd.distill(recipe, output_dir=tmp_path / "whole", progress=False)
    assert whole.manifest["evaluation"]["distilled"]["train_size"] == 10
    assert whole.manifest["synthetic"]["learned_lr"] != pytest.approx(0.01, rel=1e-9)
    mmdd.distill(recipe, output_dir=tmp_path / "part", stop_after=2, evaluate=False, progress=False)
    resumed = mmdd.distill(recipe, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    assert torch.equal(resumed.synthetic.inputs, whole.synthetic.inputs)


def test_buffer_of_other_training_settings_is_refused_for_generation_and_flagged_for_runs(tmp_path):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"]["dir"] = str(tmp_path / "experts")
    recipe["experts"]["num_experts"] = 1
    recipe["method"]["iterations"] = 1
    from mmdd.experts import generate_experts

    buffer = generate_experts(recipe, progress=False)
    assert buffer.index["network"]["batch_size"] == recipe["experts"]["batch_size"]
    other = json.loads(json.dumps(recipe))
    other["experts"].update({"batch_size": recipe["experts"]["batch_size"] + 7, "num_experts": 2})
    with pytest.raises(ConfigError, match=r"batch_size: buffer .* vs recipe"):
        generate_experts(other, progress=False)  # would mix two kinds of expert in one buffer
    assert ExpertBuffer(tmp_path / "experts").experts == [0]
    with pytest.warns(UserWarning, match="batch_size"):
        mmdd.distill(other, output_dir=tmp_path / "run", evaluate=False, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recipe the buffer was made with: no warning
        mmdd.distill(recipe, output_dir=tmp_path / "same", evaluate=False, progress=False)


def test_buffer_with_shorter_experts_than_the_recipe_asks_is_refused(tmp_path):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"].update(dir=str(tmp_path / "experts"), num_experts=1, epochs=2)
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    longer = json.loads(json.dumps(recipe))
    longer["experts"].update(epochs=4, num_experts=2)
    with pytest.raises(ConfigError, match=r"experts.epochs is 4 .*expert 0: 2"):
        generate_experts(longer, progress=False)  # expert 0 would silently stay at 2 epochs
    assert ExpertBuffer(tmp_path / "experts").experts == [0]
    shorter = json.loads(json.dumps(recipe))
    shorter["experts"].update(epochs=1, num_experts=2)
    assert generate_experts(shorter, progress=False).experts == [0, 1]  # longer experts serve a shorter recipe


def test_generation_says_which_experts_it_skips(tmp_path, capsys):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    root = tmp_path / "experts"
    recipe["experts"].update(dir=str(root), num_experts=1, epochs=1)
    from mmdd.experts import generate_experts, name_ranges

    generate_experts(recipe, progress=True)
    assert "already in" not in capsys.readouterr().err  # nothing to skip
    recipe["experts"]["num_experts"] = 2
    generate_experts(recipe, progress=True)
    assert f"experts: 1 of 2 already in {root} (expert_0000), training 1\n" in capsys.readouterr().err
    assert generate_experts(recipe, progress=False).experts == [0, 1]
    assert "already in" not in capsys.readouterr().err  # progress=False: silent
    assert name_ranges([5, 0, 1, 2, 7, 8]) == "expert_0000..0002, expert_0005, expert_0007..0008"


def test_soft_labels_start_from_expert_logits(tmp_path):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"]["dir"] = str(tmp_path / "experts")
    recipe["synthetic"]["soft_labels"] = True
    recipe["method"].update({"iterations": 1, "lr_labels": 1.0})
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    run = mmdd.distill(recipe, output_dir=tmp_path / "soft", evaluate=False, progress=False)
    logits = run.synthetic.label_logits.detach()
    assert not torch.allclose(logits, torch.nn.functional.one_hot(run.synthetic.labels, 10).float() * 5.0)
    assert logits.shape == (10, 10)


def test_torchrun_two_processes_train_the_union(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"].update({"dir": str(tmp_path / "experts"), "num_experts": 5, "epochs": 1})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", "29517", "-m", "mmdd.cli",
                          "experts", str(path), "--quiet"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    index = json.loads((tmp_path / "experts" / "index.json").read_text())
    assert sorted(index["experts"], key=int) == ["0", "1", "2", "3", "4"]
    seeds = {k: v["seed"] for k, v in index["experts"].items()}
    assert len(set(seeds.values())) == 5
    assert "5 experts × 1 epochs" in out.stdout


def test_soft_labels_can_start_from_the_experts_that_classify_each_sample_correctly(buffer):
    m = matcher_for(buffer, "exact", soft_label_init="experts_correct")
    inputs = syn_set().inputs.detach()
    labels = torch.arange(inputs.shape[0]) % CLASSES
    per_expert = [m.expert_logits(k, inputs) for k in buffer.experts]
    right = [(p.argmax(1) == labels) for p in per_expert]
    got = m.initial_label_logits(inputs, labels)
    for i in range(inputs.shape[0]):  # by hand: the mean over the correct experts, else the first expert's
        chosen = [p[i] for p, r in zip(per_expert, right) if r[i]]
        expected = torch.stack(chosen).mean(0) if chosen else per_expert[0][i]
        torch.testing.assert_close(got[i], expected)
    first = matcher_for(buffer, "exact").initial_label_logits(inputs, labels)
    torch.testing.assert_close(first, per_expert[0])  # the default: the first expert at max_start_epoch


def test_the_expanding_start_window_grows_to_max_start_epoch(tmp_path):
    root = tmp_path / "experts"
    root.mkdir()
    buffer = build_buffer(root, num_experts=1, epochs=8)
    m = matcher_for(buffer, "exact", start_schedule="expanding", initial_max_start_epoch=1, expansion_iterations=4)
    m.cfg.max_start_epoch = 5
    bounds = []
    for it in range(7):
        m.iteration = it
        bounds.append(m.start_upper_bound())
    assert bounds == [1, 2, 3, 4, 5, 5, 5]
    m.iteration = 0
    assert {m.segment_bounds(make_generator(s))[0] for s in range(20)} == {0}  # only epoch 0 at the start
    with pytest.raises(ConfigError, match="initial_max_start_epoch"):
        from mmdd.config import build

        build(TMConfig, {"start_schedule": "expanding"}, "method")


def test_the_soft_labels_may_have_their_own_momentum():
    from types import SimpleNamespace

    from mmdd.core.distill import make_optimizer

    syn = syn_set(soft=True)
    cfg = SimpleNamespace(lr_inputs=1.0, lr_labels=2.0, lr_lr=0.0, momentum=0.5, label_momentum=0.9)
    groups = {g["name"]: g for g in make_optimizer(syn, cfg).param_groups}
    assert groups["inputs"]["momentum"] == 0.5 and groups["labels"]["momentum"] == 0.9
    # the learned lr too (the static/dynamic-memory authors: 0.95 for the memories, 0.9 for the lr)
    cfg = SimpleNamespace(lr_inputs=1.0, lr_labels=0.0, lr_lr=0.1, momentum=0.95, lr_momentum=0.9)
    groups = {g["name"]: g for g in make_optimizer(syn_set(), cfg).param_groups}
    assert groups["inputs"]["momentum"] == 0.95 and groups["lr"]["momentum"] == 0.9
    from mmdd.config import build

    with pytest.raises(ConfigError, match="lr_momentum must be in"):
        build(TMConfig, {"lr_momentum": 1.0}, "method")


def test_the_learned_lr_floor_clamps_after_every_step():
    from types import SimpleNamespace

    from mmdd.config import build
    from mmdd.core.distill import make_optimizer

    syn = syn_set(lr=0.01)
    cfg = SimpleNamespace(lr_inputs=1.0, lr_labels=0.0, lr_lr=10.0, momentum=0.0, lr_floor=0.001)
    opt = make_optimizer(syn, cfg)
    for _ in range(3):  # a large step down the lr: log 0.01 − 10 would be far below the floor
        opt.zero_grad()
        syn.log_lr.sum().backward()
        opt.step()
        assert syn.learned_lr() == pytest.approx(0.001)
    free = syn_set(lr=0.01)
    opt = make_optimizer(free, SimpleNamespace(**{**vars(cfg), "lr_floor": None}))
    free.log_lr.sum().backward()
    opt.step()
    assert free.learned_lr() < 1e-5  # no floor: the step goes through
    with pytest.raises(ConfigError, match="lr_floor must be > 0"):
        build(TMConfig, {"lr_floor": 0.0}, "method")


def test_soft_label_epoch_final_reads_the_experts_last_snapshot(buffer):
    inputs = syn_set().inputs.detach()
    final = matcher_for(buffer, "exact", soft_label_epoch="final")
    assert final.label_epoch() == buffer.num_epochs
    snapshot = buffer.snapshot(buffer.experts[0], buffer.num_epochs)
    with torch.no_grad():
        expected = torch.func.functional_call(final.net, {**snapshot, **final.buffers}, (inputs,))
    torch.testing.assert_close(final.initial_label_logits(inputs, None), expected)
    assert not torch.allclose(matcher_for(buffer, "exact").initial_label_logits(inputs, None), expected)


def test_tesla_teacher_labels_are_the_drawn_experts_target_epoch_softmax(buffer):
    m = matcher_for(buffer, "exact", teacher_labels=True)
    syn = syn_set(soft=True)
    before = syn.label_logits.detach().clone()
    loss = m(syn, None, make_generator(7))
    seg = m.draw_segment(syn.inputs.shape[0], make_generator(7))  # the same draw again
    with torch.no_grad():
        expected = torch.func.functional_call(m.net, {**seg.target, **m.buffers}, (syn.inputs,))
    torch.testing.assert_close(syn.label_logits.detach(), expected)
    assert not torch.allclose(before, expected) and syn.decode()[1].sum(1).allclose(torch.ones(6))
    loss.backward()
    assert syn.label_logits.grad is None  # recomputed, never learned
    with pytest.raises(ConfigError, match="synthetic.soft_labels: true"):
        m(syn_set(soft=False), None, make_generator(7))
    from mmdd.config import build

    with pytest.raises(ConfigError, match="lr_labels: 0"):
        build(TMConfig, {"teacher_labels": True, "lr_labels": 1.0}, "method")


def test_datm_init_keeps_real_samples_the_experts_classify_correctly(buffer):
    from mmdd.core.data import ClassIndex, Split
    from mmdd.core.errors import DataError

    x, y = toy_data()
    real = ClassIndex(Split(x, y), CLASSES)
    m = matcher_for(buffer, "exact", soft_label_epoch="final")
    rows = m.correctly_classified_real(real, 2, make_generator(0))
    assert torch.equal(y[rows], torch.arange(CLASSES).repeat_interleave(2)) and rows.unique().numel() == 6
    correct = torch.zeros(len(y), dtype=torch.bool)
    for k in buffer.experts:
        correct |= m.expert_logits(k, x).argmax(1) == y
    assert bool(correct[rows].all())
    assert torch.equal(rows, m.correctly_classified_real(real, 2, make_generator(0)))  # seeded
    with pytest.raises(DataError, match="classified correctly"):
        m.correctly_classified_real(real, int(correct.sum()) + 1, make_generator(0))


def test_teacher_labels_are_refused_with_several_draws_per_iteration():
    from mmdd.run import load_config

    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["synthetic"]["soft_labels"] = True
    recipe["method"].update({"teacher_labels": True})
    recipe["distributed"] = {"draws_per_rank": 2}
    from mmdd.run import check_draws

    with pytest.raises(ConfigError, match="teacher_labels: TESLA's labels"):
        check_draws(load_config(recipe), 1)


def test_a_run_with_datms_init_and_teslas_labels(tmp_path):
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"]["dir"] = str(tmp_path / "experts")
    recipe["synthetic"].update({"soft_labels": True, "init": "real_correct"})
    recipe["method"].update({"iterations": 2, "teacher_labels": True, "soft_label_epoch": "final"})
    recipe["experts"].update({"num_experts": 2, "epochs": 6, "lr": 0.05, "batch_size": 16})  # experts that classify
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", evaluate=False, progress=False)
    assert run.manifest["status"] == "complete"
    probs = run.synthetic.decode()[1]
    assert probs.shape == (10, 10) and torch.allclose(probs.sum(1), torch.ones(10))
    assert not torch.allclose(run.synthetic.label_logits, torch.nn.functional.one_hot(run.synthetic.labels, 10) * 5.0)
    noise = json.loads(json.dumps(recipe))
    noise["method"]["name"] = "dm"
    for key in ("syn_steps", "expert_epochs", "max_start_epoch", "lr_lr", "solver", "teacher_labels",
                "soft_label_epoch"):
        noise["method"].pop(key)
    with pytest.raises(ConfigError, match="real_correct"):
        mmdd.distill(noise, output_dir=tmp_path / "dm", evaluate=False, progress=False)


@pytest.mark.parametrize("solver", ["exact", "constant_memory"])
def test_mtt_runs_under_bf16_autocast_and_stays_close_to_fp32(tmp_path, solver):
    """precision=bf16 wraps the unrolled student steps (and their create_graph gradients) in autocast;
    both solvers must run, keep the set float32 and finite, and move it about as fp32 does."""
    recipe = json.loads(json.dumps(MTT_RECIPE))
    recipe["experts"]["dir"] = str(tmp_path / "experts")
    recipe["method"]["solver"] = solver
    recipe["method"]["iterations"] = 2
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    runs = {p: mmdd.distill(recipe, [f"precision={p}"], output_dir=tmp_path / p, evaluate=False, progress=False)
            for p in ("fp32", "bf16")}
    low, full = runs["bf16"].synthetic.inputs, runs["fp32"].synthetic.inputs
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert not torch.equal(low, full)  # autocast did change the arithmetic
    assert (low - full).abs().max() < 0.1 * full.abs().max()  # ... but not the direction of the updates
