"""The video domain: static/dynamic memories, the two-stage run (and its resume), slide-window
selection, rendering, and config errors — on generated UCF101-layout videos."""

from __future__ import annotations

import av  # noqa: F401  (import PyAV before decord: they ship clashing libvpx builds)
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import mmdd
from mmdd.core.errors import ConfigError
from mmdd.core.seeding import make_generator
from mmdd.domains.video.memory import StaticDynamicSet
from mmdd.domains.video.selection import best_windows, lowest_loss, window_starts
from video_fixtures import write_ucf101
from fresh_load import load_in_fresh_process  # noqa: E402


def make_set(classes=3, vpc=4, n_static=None, n_dynamic=None, c=1, t=6, h=8, scale=2, width=4, **kw):
    gen = make_generator(0)
    n_static, n_dynamic = n_static or vpc, n_dynamic or vpc
    static = torch.randn(classes * n_static, c, h, h, generator=gen)
    dynamic = torch.randn(classes * n_dynamic, 1, t, h // scale, h // scale, generator=gen)
    return StaticDynamicSet(static, dynamic, classes, vpc, integrator_width=width, gen=gen, **kw)


def test_decode_shapes_pairing_and_storage():
    syn = make_set(classes=3, vpc=4, n_static=2, n_dynamic=4, c=3, t=6, h=8)
    clips, labels = syn.decode()
    assert clips.shape == (12, 3, 6, 8, 8)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # video j of class c uses still j mod 2 and dynamic j mod 4 of its class
    assert syn.static_index.tolist() == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5]
    assert syn.dynamic_index.tolist() == list(range(12))
    still = syn.videos(static_only=True)
    assert torch.equal(still[5, :, 3], syn.static[3])  # class 1, video 1 → still 2·1 + 1
    assert torch.equal(still[5, :, 0], still[5, :, 5])  # a still repeated over time
    parts = syn.storage_breakdown()
    assert parts["static"] == 6 * 3 * 8 * 8 * 4
    assert parts["dynamic"] == 12 * 1 * 6 * 4 * 4 * 4
    assert parts["integrator"] == sum(p.numel() * 4 for p in syn.integrator.parameters())
    assert syn.storage_bytes() == sum(parts.values())
    assert syn.full_equivalent_bytes() == 12 * 3 * 6 * 8 * 8 * 4 + 12 * 8
    assert syn.storage_bytes() < syn.full_equivalent_bytes()


def test_static_stage_decodes_frames_and_main_stage_trains_motion_only():
    syn = make_set(classes=2, vpc=3, learn_lr=True)
    syn.set_stage("static")
    frames, labels = syn.decode()
    assert frames.shape == (6, 1, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert set(syn.param_groups()) == {"inputs"} and syn.param_groups()["inputs"][0] is syn.static
    syn.set_stage("main")
    groups = syn.param_groups()
    assert groups["inputs"][0] is syn.dynamic and "integrator" in groups and "lr" in groups
    assert all(not p.requires_grad for p in syn.parameters())  # the stage's optimizer turns its own on
    assert syn.role_lr("integrator", None) == syn.integrator_lr and syn.role_lr("inputs", None) is None
    with pytest.raises(Exception, match="unknown stage"):
        syn.set_stage("dynamic")


def test_motion_changes_the_clip_and_gradients_reach_the_dynamic_memory():
    syn = make_set(classes=2, vpc=2)
    syn.set_stage("main")
    syn.dynamic.requires_grad_(True)
    clips, _ = syn.decode()
    assert not torch.allclose(clips[:, :, 0], clips[:, :, -1])  # frames differ: the integrator adds motion
    clips.pow(2).sum().backward()
    assert syn.dynamic.grad is not None and syn.dynamic.grad.abs().sum() > 0


def test_round_trip_from_tensors():
    syn = make_set()
    back = StaticDynamicSet.from_tensors(syn.state_dict(), syn.metadata())
    assert torch.equal(back.decode()[0], syn.decode()[0])


def test_slide_window_picks_the_lowest_loss_window_then_the_lowest_loss_videos():
    class Teacher(torch.nn.Module):  # confident in class 1 exactly when the clip's mean is high
        def forward(self, x):
            m = x.mean(dim=(1, 2, 3, 4))
            return torch.stack([-10 * m, 10 * m], dim=1)

    clips = torch.zeros(3, 1, 6, 2, 2)
    clips[0, :, 3:5] = 1.0  # the window starting at 3 (of length 2) is the bright one
    clips[1, :, 0:2] = 0.5
    labels = torch.tensor([1, 1, 0])
    assert window_starts(6, 2, 1) == [0, 1, 2, 3, 4]
    windows, losses = best_windows(Teacher(), clips, labels, frames=2, stride=1, device=torch.device("cpu"))
    assert windows.shape == (3, 1, 2, 2, 2)
    assert torch.equal(windows[0], clips[0, :, 3:5]) and torch.equal(windows[1], clips[1, :, 0:2])
    assert losses[0] < losses[1]
    assert lowest_loss(losses, labels, 2, 1).tolist() == [2, 0]
    with pytest.raises(ConfigError, match="shorter than a window"):
        window_starts(4, 8, 1)


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    base = tmp_path_factory.mktemp("ucf")
    write_ucf101(base, clips=3, size=32)
    return base


def recipe(ucf, tmp_path, **over):
    r = {
        "name": "video-test", "domain": "video", "seed": 3,
        "dataset": {"name": "ucf101", "root": str(ucf / "UCF-101"), "split_dir": str(ucf / "ucfTrainTestlist"),
                    "frames": 8, "size": 16, "grayscale": True, "cache_dir": str(tmp_path / "cache")},
        "network": {"name": "convnet", "depth": 2, "width": 8},
        "budget": {"ipc": 2},
        "stages": {"static": {"method": {"name": "dm", "iterations": 3, "lr_inputs": 1.0, "batch_real": 8}}},
        "method": {"name": "dm", "iterations": 3, "lr_inputs": 1.0, "batch_real": 8},
        "evaluation": {"epochs": 2, "seeds": 1, "baselines": ["random", "static_only", "slide_window"]},
        "synthetic": {"teacher_epochs": 2},
        "checkpoint": {"every": 1},
    }
    for key, value in over.items():
        r[key] = value
    return r


def test_two_stage_run_end_to_end_with_baselines_storage_and_gifs(ucf, tmp_path):
    run = mmdd.distill(recipe(ucf, tmp_path), output_dir=tmp_path / "run", progress=False)
    m = run.manifest
    assert m["status"] == "complete" and m["steps_completed"] == 6
    assert set(m["evaluation"]) == {"distilled", "random", "static_only", "slide_window"}
    assert m["storage_bytes"] == sum(m["storage_breakdown"].values()) < m["storage_full_equivalent_bytes"]
    stages = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert ['"stage": "static"' in s for s in stages] == [True] * 3 + [False] * 3
    gifs = sorted((tmp_path / "run" / "videos").glob("*.gif"))
    assert len(gifs) == 3 * 2
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames == 8
    assert m["data"]["split_rule"]  # the loader's split rule reaches the manifest
    report = (tmp_path / "run" / "report.md").read_text()
    assert "a plain set of the same count" in report
    assert f"](videos/{gifs[0].name})" in report  # links point where the GIFs are
    info = load_in_fresh_process(tmp_path / "run")  # the domain's synthetic kind is found in a new process
    assert info["type"] == "DistilledDataset" and info["seen"] == 6 and info["item_shapes"][0] == [1, 8, 16, 16]


def test_a_tracked_two_stage_run_scores_the_last_stage_from_its_start(ucf, tmp_path):
    r = recipe(ucf, tmp_path, evaluation={"epochs": 1, "seeds": 1, "baselines": []},
               tracking={"every": 2, "epochs": 1, "val_fraction": 0.34}, budget={"ipc": 1})
    run = mmdd.distill(r, output_dir=tmp_path / "run", evaluate=False, progress=False)
    t = run.manifest["tracking"]
    # the static stage takes steps 1-3; the main stage is scored at its start (3), every 2 of its steps and its end
    assert [p["step"] for p in t["curve"]] == [3, 5, 6] and t["first_step"] == 3
    best = max(t["curve"], key=lambda p: p["score"])  # the first of the highest (ties keep the earlier)
    assert (t["best_step"], t["best_score"]) == (best["step"], best["score"])


@pytest.mark.parametrize("first", [2, 4])  # stop inside the static stage, and inside the main stage
def test_resumed_two_stage_run_matches_an_uninterrupted_one(ucf, tmp_path, first):
    r = recipe(ucf, tmp_path, evaluation={"epochs": 1, "seeds": 1, "baselines": []})
    mmdd.distill(r, output_dir=tmp_path / "whole", evaluate=False, progress=False)
    part = mmdd.distill(r, output_dir=tmp_path / "part", evaluate=False, stop_after=first, progress=False)
    assert part.manifest["status"] == "interrupted"
    resumed = mmdd.distill(r, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    assert resumed.manifest["status"] == "complete"
    a, b = load_file(tmp_path / "whole" / "distilled.safetensors"), load_file(tmp_path / "part" / "distilled.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda d: [line for line in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert losses(tmp_path / "whole") == losses(tmp_path / "part")


def test_full_video_parameterisation_is_a_pixel_set_of_clips(ucf, tmp_path):
    r = recipe(ucf, tmp_path, stages={}, synthetic={"parameterisation": "full"},
               evaluation={"epochs": 1, "seeds": 1, "baselines": []})
    run = mmdd.distill(r, output_dir=tmp_path / "full", progress=False)
    assert run.manifest["synthetic"]["kind"] == "pixels"
    assert run.synthetic.decode()[0].shape == (6, 1, 8, 16, 16)


def test_config_errors_say_what_was_expected(ucf, tmp_path):
    with pytest.raises(ConfigError, match="stages.static"):
        mmdd.distill(recipe(ucf, tmp_path, stages={}), output_dir=tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="'color' is not available for clips"):
        mmdd.distill(recipe(ucf, tmp_path, augment={"strategy": "color_crop"}), output_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="needs expert trajectories"):
        r = recipe(ucf, tmp_path, stages={"static": {"method": {"name": "mtt", "iterations": 1}}})
        mmdd.distill(r, output_dir=tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="not stages of a 'pixels'"):
        mmdd.distill(recipe(ucf, tmp_path, synthetic={"parameterisation": "full"}), output_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="split_dir"):
        r = recipe(ucf, tmp_path)
        r["dataset"]["split_dir"] = str(tmp_path / "nowhere")
        mmdd.distill(r, output_dir=tmp_path / "e")


def test_slide_window_init_starts_the_stills_from_the_selected_windows(ucf, tmp_path):
    from mmdd.run import load_config, setup

    r = recipe(ucf, tmp_path, synthetic={"init": "slide_window", "teacher_epochs": 1, "selection_frames": 12,
                                         "selection_stride": 2})
    ws = setup(load_config(r))
    syn = ws.domain.make_synthetic(ws, make_generator(0))
    assert "slide_window" in ws.cache  # the selection travels in the workspace, not in the domain
    chosen = ws.domain.selected(ws, 2)
    t = chosen.inputs.shape[2]
    assert chosen.inputs.shape[1:] == ws.data.train.inputs.shape[1:]  # windows of dataset.frames frames
    assert torch.equal(syn.static, chosen.inputs[:, :, t // 2])
    assert chosen.labels.tolist() == [0, 0, 1, 1, 2, 2]
    baseline = ws.domain.baseline_set(ws, "slide_window", syn)
    assert torch.equal(baseline.data.inputs, chosen.inputs)  # the baseline and the init share one selection


def test_a_run_streamed_from_the_store_matches_the_in_memory_run(ucf, tmp_path, monkeypatch):
    """Two stages (frames of stored clips), slide-window selection (longer stored clips) and every
    baseline: the same run read from the decoded store as from RAM."""
    from mmdd.core.lazy import LazyRows, materialize
    from mmdd.domains.video import video_splits
    from mmdd.run import load_config

    import mmdd.core.store as store_module

    monkeypatch.setattr(store_module, "WORKER_STARTUP_S", 0.0)  # decode in 2 worker processes, however small
    store = {"storage": "store", "store_dir": str(tmp_path / "store"), "num_workers": 2,
             "loader_workers": 1}  # the run reads its stored minibatches in a DataLoader worker
    base = recipe(ucf, tmp_path)
    stored_recipe = recipe(ucf, tmp_path, dataset={**base["dataset"], **store},
                           synthetic={"teacher_epochs": 2, "init": "slide_window"})
    memory_recipe = recipe(ucf, tmp_path, synthetic={"teacher_epochs": 2, "init": "slide_window"})
    a = video_splits(load_config(memory_recipe).dataset)
    b = video_splits(load_config(stored_recipe).dataset)
    assert isinstance(b.train.inputs, LazyRows) and b.info["store"]["storage"] == "store"
    assert b.info["store"]["workers"] == 2
    for name in ("train", "test"):
        assert torch.equal(getattr(a, name).inputs, materialize(getattr(b, name).inputs))
        assert torch.equal(getattr(a, name).labels, getattr(b, name).labels)
    runs = {k: mmdd.distill(r, output_dir=tmp_path / k, progress=False)
            for k, r in (("memory", memory_recipe), ("store", stored_recipe))}
    x, y = (runs[k].synthetic.decode()[0].detach() for k in ("memory", "store"))
    assert torch.allclose(x, y, atol=1e-4)
    ev = {k: runs[k].manifest["evaluation"] for k in runs}
    assert set(ev["store"]) == {"distilled", "random", "static_only", "slide_window"}
    for name in ev["store"]:
        assert ev["store"][name]["mean"] == pytest.approx(ev["memory"][name]["mean"], abs=0.1)


# -- the published form (Wang et al.): one-conv integrator, random pairing, noise-initialised motion


def test_published_integrator_is_one_conv_of_the_concatenation():
    syn = make_set(classes=2, vpc=1, n_static=2, n_dynamic=2, c=3, scale=1, integrator="conv3d", pairing="random")
    conv = syn.integrator.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (4, 3, (3, 3, 3), (1, 1, 1))
    with torch.no_grad():
        clips, _ = syn.decode()  # no gradients: each slot's first pairing (still 2c, dynamic 2c)
        still = syn.static[[0, 2]].unsqueeze(2).expand(-1, -1, 6, -1, -1)
        expected = torch.nn.functional.conv3d(torch.cat([still, syn.dynamic[[0, 2]]], 1), conv.weight, conv.bias,
                                              padding=1)
    assert torch.allclose(clips, expected)
    assert syn.storage_breakdown()["integrator"] == (4 * 3 * 27 + 3) * 4


def test_random_pairing_draws_within_each_slot_and_resumes_its_draws():
    syn = make_set(classes=2, vpc=2, n_static=4, n_dynamic=4, scale=1, integrator="conv3d", pairing="random",
                   draw_seed=7)
    syn.set_stage("main")
    syn.dynamic.requires_grad_(True)
    seen_static, seen_dynamic = set(), set()
    for k in range(40):  # a matching decode draws; slot j of class c stays within its own pair
        gen = torch.Generator().manual_seed(k)
        s, d = syn.drawn_indices(gen)
        assert ((s - syn.static_index) >= 0).all() and ((s - syn.static_index) < 2).all()
        assert ((d - syn.dynamic_index) >= 0).all() and ((d - syn.dynamic_index) < 2).all()
        seen_static |= set(s.tolist())
        seen_dynamic |= set(d.tolist())
    assert seen_static == set(range(8)) and seen_dynamic == set(range(8))
    assert syn.static_index.tolist() == [0, 2, 4, 6] and syn.dynamic_index.tolist() == [0, 2, 4, 6]
    first, _ = syn.decode()
    assert int(syn.pairing_draws) == 1
    state = {k: v.clone() for k, v in syn.state_dict().items()}
    later = [syn.decode()[0].detach() for _ in range(3)]
    back = StaticDynamicSet.from_tensors(state, syn.metadata())  # a resumed run draws what this one drew
    back.set_stage("main")
    back.dynamic.requires_grad_(True)
    assert all(torch.equal(a, back.decode()[0].detach()) for a in later)
    with torch.no_grad():  # renders and exports: deterministic first pairing, no draw
        assert torch.equal(syn.decode()[0], syn.decode()[0]) and int(syn.pairing_draws) == 4
    with pytest.raises(Exception, match="multiples of the videos per class"):
        make_set(classes=2, vpc=2, n_static=3, n_dynamic=4, pairing="random")


def test_random_pairing_evaluation_draws_a_new_pairing_every_epoch(monkeypatch):
    from mmdd.core import evaluation

    syn = make_set(classes=2, vpc=1, n_static=2, n_dynamic=2, scale=1, integrator="conv3d", pairing="random")
    drawn = []
    real_epoch = evaluation.train_epoch
    monkeypatch.setattr(evaluation, "train_epoch",
                        lambda net, opt, inputs, targets, *a: (drawn.append(inputs.clone()),
                                                               real_epoch(net, opt, inputs, targets, *a)))
    from mmdd.domains.video import VideoDomain

    class WS:
        class cfg:
            class evaluation:
                use_learned_lr = True
    data = VideoDomain().distilled_set(WS, syn).data
    assert isinstance(data, evaluation.EpochDraws)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6 * 8 * 8, 2))
    cfg = evaluation.EvalConfig(epochs=6, batch_size=2, augment=False)
    evaluation.fit(net, data, evaluation.ClassificationTask("accuracy", {}), cfg, make_generator(0), None,
                   torch.device("cpu"))
    assert len(drawn) == 6 and len({tuple(x.flatten()[:50].tolist()) for x in drawn}) > 1
    from mmdd.core.stacked import unsupported_reason
    assert "drawn anew every epoch" in unsupported_reason(evaluation.ClassificationTask("a", {}), 0.01, [data, data])


def test_authors_convnet3d_shapes_seeded_dropout_and_size_errors():
    from mmdd.domains.video.networks import S2DConvNet3D, S2DConvNet3DConfig
    from mmdd.core.networks import create_network
    from mmdd.core.stacked import network_unsupported_reason

    cfg = S2DConvNet3DConfig()
    net = create_network(cfg, (3, 16, 112, 112), 5, make_generator(0), spatial_dims=3)
    x = torch.randn(2, 3, 16, 112, 112)
    assert net(x).shape == (2, 5) and net.embed(x).shape == (2, 128 * 4 * 2 * 2)  # as the authors' at 112 px
    assert [type(m).__name__ for m in net.features][:3] == ["Conv3d", "ReLU", "MaxPool3d"]
    assert net.features[0].kernel_size == (3, 7, 7) and net.features[0].out_channels == 64
    small = S2DConvNet3DConfig(depth=2, width=8, first_width=4)
    a = create_network(small, (1, 8, 32, 32), 3, make_generator(1), spatial_dims=3)
    b = create_network(small, (1, 8, 32, 32), 3, make_generator(1), spatial_dims=3)
    y = torch.randn(4, 1, 8, 32, 32)
    assert torch.equal(a(y), b(y))  # dropout masks come from the network's own seeded generator
    assert "draws random numbers" in network_unsupported_reason(a)
    a.eval()
    assert torch.equal(a(y), a(y))
    with pytest.raises(ConfigError, match="shrink to nothing by block 3"):
        S2DConvNet3D(S2DConvNet3DConfig(depth=3), (1, 8, 32, 32), 3)


PUBLISHED = {"teacher_epochs": 2, "integrator": "conv3d", "pairing": "random", "dynamic_init": "noise",
             "dynamic_scale": 1}


def test_published_form_runs_end_to_end_and_resumes_its_pairing_draws(ucf, tmp_path):
    r = recipe(ucf, tmp_path, synthetic=PUBLISHED, budget={"ipc": 1},
               network={"name": "s2d_convnet3d", "depth": 2, "width": 8, "first_width": 4},
               evaluation={"epochs": 2, "seeds": 1, "augment": False, "baselines": ["static_only"]})
    r["method"] = {**r["method"], "momentum": 0.95}
    with pytest.raises(ConfigError, match="set stages.static.network"):
        mmdd.distill(r, output_dir=tmp_path / "no2d", progress=False)
    r["stages"]["static"]["network"] = {"name": "convnet", "depth": 2, "width": 8}
    whole = mmdd.distill(r, output_dir=tmp_path / "whole", progress=False)
    m = whole.manifest
    assert m["status"] == "complete" and set(m["evaluation"]) == {"distilled", "static_only"}
    syn = whole.synthetic
    assert (syn.pairing, syn.integrator_kind, syn.static_per_class, syn.dynamic_per_class) == ("random", "conv3d", 2, 2)
    assert syn.dynamic.shape == (3 * 2, 1, 8, 16, 16)  # full T×H×W, one channel
    assert int(syn.pairing_draws) == 3  # one draw per main-stage decode
    assert "s2d_convnet3d" in m["evaluation"]["distilled"]["protocol"]
    part = mmdd.distill(r, output_dir=tmp_path / "part", evaluate=False, stop_after=4, progress=False)
    assert part.manifest["status"] == "interrupted"
    mmdd.distill(r, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    a, b = load_file(tmp_path / "whole" / "distilled.safetensors"), load_file(tmp_path / "part" / "distilled.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_random_pairing_needs_whole_groups_and_motion_needs_real_clips(ucf, tmp_path):
    bad = recipe(ucf, tmp_path, synthetic={**PUBLISHED, "static_per_class": 3})
    with pytest.raises(Exception, match="multiples of the videos per class"):
        mmdd.distill(bad, output_dir=tmp_path / "bad", progress=False)
    with pytest.raises(ConfigError, match="dynamic_init: 'motion' takes a real clip's motion"):
        mmdd.distill(recipe(ucf, tmp_path, synthetic={"init": "noise", "dynamic_init": "motion"}),
                     output_dir=tmp_path / "bad2", progress=False)
