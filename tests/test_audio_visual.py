"""The audio-visual domain: AVDD's loss terms against a hand computation, multi-formation, the
late-fusion task, an end-to-end run on tiny mp4 files with an audio track (resume, renders,
``mmdd.load`` in a new process) and config errors."""

from __future__ import annotations

import av  # noqa: F401  (import PyAV before decord: they ship clashing libvpx builds)
import pytest
import torch
from safetensors.torch import load_file

import mmdd
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.seeding import make_generator
from mmdd.domains.audio_visual.batch import AVBatch
from mmdd.domains.audio_visual.clips import AVRead, finish_av_load
from mmdd.domains.audio_visual.av_folder import av_folder_plan
from mmdd.domains.audio_visual.matching import AVDDConfig, AVDMConfig, avdd_terms, weighted_loss
from mmdd.domains.audio_visual.synthetic import AVPairSet, pack_tiles, unpack_tiles
from mmdd.domains.audio_visual.training import LateFusionTask
from av_fixtures import write_av_clip, write_av_folder
from fresh_load import load_in_fresh_process


# ----------------------------------------------------------------------------- the loss


def test_loss_terms_match_a_hand_computation():
    real_a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # μ = (2, 3)
    syn_a = torch.tensor([[0.0, 1.0]])  # μ = (0, 1)  → Δa = (2, 2)
    real_v = torch.tensor([[1.0, 0.0], [1.0, 2.0]])  # μ = (1, 1)
    syn_v = torch.tensor([[2.0, 2.0]])  # μ = (2, 2)  → Δv = (−1, −1)
    t = avdd_terms(real_a, syn_a, real_v, syn_v)
    assert t["audio"].item() == 8.0  # 2² + 2²
    assert t["visual"].item() == 2.0  # 1 + 1
    assert t["icm"].item() == 2.0  # ((2+1) − (0+2))² ·2 = (1, 1)
    assert t["cgm"].item() == 18.0  # ((2+2) − (1+0))² ·2 = (3, 3)
    assert weighted_loss(t, AVDMConfig()).item() == 10.0
    assert weighted_loss(t, AVDDConfig()).item() == 10.0 + 10 * 2.0 + 10 * 18.0
    assert weighted_loss(t, AVDDConfig(icm_weight=1.0, cgm_weight=0.0, visual_weight=0.5)).item() == 8 + 1 + 2


def test_equal_cross_weights_make_avdd_a_scaled_av_dm():
    """‖Δa+Δv‖² + ‖Δa−Δv‖² = 2‖Δa‖² + 2‖Δv‖²: with λ_icm = λ_cgm = λ, AVDD = (1 + 2λ)·AV-DM."""
    gen = make_generator(3)
    embeds = [torch.randn(n, 16, generator=gen) for n in (32, 4, 32, 4)]
    t = avdd_terms(*embeds)
    assert torch.allclose(weighted_loss(t, AVDDConfig()), 21 * weighted_loss(t, AVDMConfig()), rtol=1e-5)
    unequal = weighted_loss(t, AVDDConfig(icm_weight=10, cgm_weight=0))
    assert not torch.allclose(unequal, 11 * weighted_loss(t, AVDMConfig()), rtol=1e-3)


# ----------------------------------------------------------------------------- the set


def test_multi_formation_packs_and_unpacks_tiles_class_major():
    x = torch.arange(8 * 1 * 4 * 4, dtype=torch.float32).reshape(8, 1, 4, 4)
    packed = pack_tiles(x, 2)
    assert packed.shape == (2, 1, 4, 4)
    unpacked = unpack_tiles(packed, 2)
    assert unpacked.shape == (8, 1, 4, 4)
    # a constant image survives downscale + upscale exactly, and keeps its position in the order
    const = torch.stack([torch.full((1, 4, 4), float(i)) for i in range(8)])
    assert torch.allclose(unpack_tiles(pack_tiles(const, 2), 2), const)
    syn = AVPairSet(torch.randn(4, 1, 8, 6), torch.randn(4, 3, 4, 4), num_classes=2, ipc=2, multi_formation=2)
    inputs, labels = syn.decode()
    assert len(inputs) == 16 and labels.tolist() == [0] * 8 + [1] * 8
    assert syn.class_slices() == [slice(0, 8), slice(8, 16)]
    assert syn.full_equivalent_bytes() == 4 * syn.storage_bytes()
    back = AVPairSet.from_tensors(syn.state_dict(), syn.metadata())
    assert torch.equal(back.decode()[0].audio, inputs.audio)


def test_late_fusion_scores_each_modality_and_their_mean():
    class Fixed(torch.nn.Module):
        def logits(self, x):
            audio = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
            visual = torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, 0.5]])
            return audio[: len(x)], visual[: len(x)]

    split = type("S", (), {"inputs": AVBatch(torch.zeros(3, 1, 2, 2), torch.zeros(3, 3, 2, 2)),
                           "labels": torch.tensor([0, 1, 1])})()
    s = LateFusionTask().scores(Fixed(), split, torch.device("cpu"), 8)
    assert s["audio_accuracy"] == pytest.approx(2 / 3)  # predicts 0, 1, 0
    assert s["visual_accuracy"] == pytest.approx(2 / 3)  # predicts 1, 1, 1
    # fused: sample 0 → audio's 0.88 vs visual's 0.73 for class 1: (0.88+0.27)/2 > (0.12+0.73)/2 → 0 ✓;
    # sample 2: audio 0.95 for 0, visual 0.62 for 1 → 0 ✗  → 2/3
    assert s["accuracy"] == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- reading


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_av_folder(tmp_path_factory.mktemp("av") / "clips", classes=2, per_class=4, split=True,
                           test_per_class=2)


def test_av_folder_reads_one_second_and_the_frame_in_it(clips):
    data = finish_av_load(av_folder_plan(clips, second=1), AVRead(size=16))
    assert data.class_names == ["class0", "class1"]
    assert data.train.waveforms.shape == (8, 11000) and data.train.frames.shape == (8, 3, 16, 16)
    assert data.test.labels.tolist() == [0, 0, 1, 1]
    assert all(s.endswith("@1s") for s in data.train.sources)
    # class 1's frames are green, class 0's red (the fixture's colours)
    red, green = data.train.frames[0].float().mean((1, 2)), data.train.frames[-1].float().mean((1, 2))
    assert red[0] > red[1] and green[1] > green[0]


def test_bad_clips_fail_with_their_name_or_are_counted(tmp_path):
    import numpy as np

    root = write_av_folder(tmp_path / "bad", classes=2, per_class=2)
    rng = np.random.default_rng(1)
    write_av_clip(root / "class0" / "no_audio.mp4", 0, rng, audio=False)
    write_av_clip(root / "class0" / "silent.mp4", 0, rng, silent=True)
    write_av_clip(root / "class1" / "short.mp4", 1, rng, seconds=1.0)
    (root / "class1" / "corrupt.mp4").write_bytes(b"\x00garbage" * 50)
    plan = av_folder_plan(root, second=1, test_fraction=0.3)
    with pytest.raises(DataError, match=r"(no_audio|silent|short|corrupt)\.mp4"):
        finish_av_load(plan, AVRead(size=16))
    data = finish_av_load(plan, AVRead(size=16, on_error="skip"))
    reasons = "\n".join(data.skipped)
    assert len(data.skipped) == 4
    assert "no audio track" in reasons and "silent" in reasons and "too short" in reasons
    assert "corrupt.mp4: decord cannot read" in reasons


def test_the_decode_cache_is_reused_and_never_stale(clips, tmp_path):
    read = AVRead(size=16, cache_dir=str(tmp_path / "cache"))
    first = finish_av_load(av_folder_plan(clips, second=1), read)
    again = finish_av_load(av_folder_plan(clips, second=1), read)
    assert first.info["cache"]["hit"] is False and again.info["cache"]["hit"] is True
    assert torch.equal(first.train.frames, again.train.frames)
    other = finish_av_load(av_folder_plan(clips, second=0), read)  # another second: another entry
    assert other.info["cache"]["hit"] is False


# ----------------------------------------------------------------------------- the pipeline


def recipe(root, tmp_path, **over):
    r = {"name": "av_tiny", "domain": "audio_visual", "seed": 0, "output_dir": str(tmp_path / "runs" / "{name}"),
         "dataset": {"name": "av_folder", "root": str(root), "second": 1, "size": 16, "cache_dir": None},
         "budget": {"ipc": 1},
         "network": {"name": "av_convnet", "depth": 2, "width": 8, "embed_grid": 2, "visual_lr_scale": 0.1},
         "method": {"name": "avdd", "iterations": 4, "batch_real": 4},
         "synthetic": {"init": "herding", "multi_formation": 2},
         "evaluation": {"epochs": 2, "lr": 0.001, "optimizer": "adam", "weight_decay": 1e-4,
                        "lr_decay_at": [0.34, 0.67], "batch_size": 8, "seeds": 2, "baselines": ["random", "herding"]},
         "coreset": {"embedding": "random_net"}, "checkpoint": {"every": 2}}
    for key, value in over.items():
        r[key] = {**r[key], **value} if isinstance(value, dict) and isinstance(r.get(key), dict) else value
    return r


def test_a_run_distils_evaluates_renders_and_loads_in_a_new_process(clips, tmp_path):
    run = mmdd.distill(recipe(clips, tmp_path), output_dir=tmp_path / "run", progress=False)
    m = run.manifest
    assert m["status"] == "complete" and m["synthetic"]["kind"] == "av_pairs"
    ev = m["evaluation"]
    assert set(ev) == {"distilled", "random", "herding"}
    for result in ev.values():
        assert set(result["others"]) == {"audio_accuracy", "visual_accuracy"} and len(result["values"]) == 2
    assert "Adam" in ev["distilled"]["protocol"] and "late fusion" in ev["distilled"]["protocol"]
    assert ev["distilled"]["train_size"] == 2 * 4  # 1 stored pair per class, unpacked to 4
    assert (tmp_path / "run" / "samples.png").is_file() and len(list((tmp_path / "run" / "audio").glob("*.wav"))) == 8
    loaded = load_in_fresh_process(tmp_path / "run")
    assert loaded["type"] == "DistilledAV" and loaded["len"] == 8
    assert loaded["item_shapes"] == [[1, 128, 56], [3, 16, 16], []]


def test_herding_init_starts_from_the_herding_baseline_pairs(clips, tmp_path):
    from mmdd.run import baseline_sets, load_config, setup

    ws = setup(load_config(recipe(clips, tmp_path, synthetic={"multi_formation": 1})))
    syn = ws.domain.make_synthetic(ws, make_generator(0))
    herding = baseline_sets(ws, ["herding"], progress=False)["herding"].data
    assert torch.equal(syn.audio.detach(), herding.inputs.audio) and torch.equal(syn.frames.detach(), herding.inputs.frames)


def test_a_resumed_run_matches_an_uninterrupted_one(clips, tmp_path):
    r = recipe(clips, tmp_path, evaluation={"seeds": 1, "baselines": []})
    whole = mmdd.distill(r, output_dir=tmp_path / "whole", evaluate=False, progress=False)
    part = mmdd.distill(r, output_dir=tmp_path / "part", evaluate=False, stop_after=1, progress=False)
    assert part.manifest["status"] == "interrupted" and whole.manifest["status"] == "complete"
    mmdd.distill(r, output_dir=tmp_path / "part", resume=True, evaluate=False, progress=False)
    a, b = load_file(tmp_path / "whole" / "distilled.safetensors"), load_file(tmp_path / "part" / "distilled.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = lambda d: (d / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    assert lines(tmp_path / "whole") == lines(tmp_path / "part")


def test_config_errors_say_what_was_expected(clips, tmp_path):
    plain = recipe(clips, tmp_path)
    plain["network"] = {"name": "convnet", "depth": 2, "width": 8}
    with pytest.raises(ConfigError, match="needs network.name: av_convnet"):
        mmdd.distill(plain, output_dir=tmp_path / "a")
    with pytest.raises(ConfigError, match="starts each class from 16 real pairs"):
        mmdd.distill(recipe(clips, tmp_path, budget={"ipc": 4}), output_dir=tmp_path / "b")
    with pytest.raises(ConfigError, match="multi_formation must be ≥ 1"):
        mmdd.distill(recipe(clips, tmp_path, synthetic={"multi_formation": 0}), output_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="lr_decay_at"):
        mmdd.distill(recipe(clips, tmp_path, evaluation={"lr_decay_at": [0.5, 1.5]}), output_dir=tmp_path / "d")
    with pytest.raises(ConfigError, match="lr_audio or lr_frames"):
        mmdd.distill(recipe(clips, tmp_path, method={"lr_audio": 0, "lr_frames": 0}), output_dir=tmp_path / "e")


def test_every_audio_visual_recipe_and_profile_validates(tmp_path):
    from mmdd.catalog import list_recipes
    from mmdd.config import read_yaml
    from mmdd.run import load_config

    root = tmp_path / "data"
    (root / "AVE").mkdir(parents=True)
    names = [info for info in list_recipes() if info.name.startswith("audio_visual/")]
    assert len(names) == 10
    for info in names:
        for profile in ["default", *(read_yaml(info.path).get("profiles") or {})]:
            cfg = load_config(info.path, [f"dataset.root={root}", f"profile={profile}"])
            assert cfg.domain == "audio_visual" and cfg.network.name == "av_convnet"
            assert cfg.method.name == ("av_dm" if profile == "av_dm" else "avdd")
            if profile == "cpu":
                assert cfg.device == "cpu" and cfg.dataset.size == 32
            if info.name.startswith("audio_visual/vggs10k"):
                assert len(cfg.dataset.classes) == 10  # the authors' VGGS-10K subset


def test_several_seconds_of_one_video_decode_it_once(clips, monkeypatch):
    from pathlib import Path

    from mmdd.core.loading import BadFiles
    from mmdd.domains.audio_visual import clips as av_clips

    opened = []
    real_open = av_clips._open_video
    monkeypatch.setattr(av_clips, "_open_video", lambda path, rate: opened.append(path) or real_open(path, rate))
    av_clips._opened.cache_clear()
    video = Path(clips) / "train" / "class0" / "clip0.mp4"
    entries = [av_clips.AVEntry(video, 0, 0), av_clips.AVEntry(video, 0, 1)]
    split = av_clips.decode_split(entries, AVRead(size=16), BadFiles("fail"))
    assert len(split) == 2 and opened == [video]
    assert not torch.equal(split.waveforms[0], split.waveforms[1])  # two different seconds


def test_a_run_streamed_from_the_store_matches_the_in_memory_run(clips, tmp_path, monkeypatch):
    """Pairs decoded into the store, log-mel maps computed once into a store of their own, batches
    read as AVBatch rows: the same data, set and scores as the in-RAM run."""
    from mmdd.core.lazy import materialize  # noqa: F401
    from mmdd.domains.audio_visual.batch import LazyAVRows
    from mmdd.plugins import get_domain
    from mmdd.run import load_config

    import mmdd.core.store as store_module

    monkeypatch.setattr(store_module, "WORKER_STARTUP_S", 0.0)  # decode in 2 worker processes, however small
    store = {"storage": "store", "store_dir": str(tmp_path / "store"), "num_workers": 2,
             "loader_workers": 1}  # the run reads its stored minibatches in a DataLoader worker
    stored_recipe = recipe(clips, tmp_path, dataset=store, name="av_store")
    memory_recipe = recipe(clips, tmp_path, name="av_memory")
    domain = get_domain("audio_visual")
    a = domain.load_data(load_config(memory_recipe).dataset)
    b = domain.load_data(load_config(stored_recipe).dataset)
    assert isinstance(b.train.inputs, LazyAVRows) and b.info["store"]["storage"] == "store"
    assert b.info["store"]["workers"] == 2
    assert b.train.inputs.audio_shape == a.train.inputs.audio_shape and domain.real_bytes(b) == domain.real_bytes(a)
    for name in ("train", "test"):
        x, y = getattr(a, name), getattr(b, name)
        rows = torch.arange(len(x))
        assert torch.equal(x.labels, y.labels)
        assert torch.allclose(x.inputs.audio, y.inputs[rows].audio, atol=1e-4)
        assert torch.equal(x.inputs.frames, y.inputs[rows].frames)
    runs = {k: mmdd.distill(r, output_dir=tmp_path / k, progress=False)
            for k, r in (("memory", memory_recipe), ("store", stored_recipe))}
    assert torch.allclose(runs["memory"].synthetic.audio, runs["store"].synthetic.audio, atol=1e-3)
    for name, result in runs["store"].manifest["evaluation"].items():
        assert result["mean"] == pytest.approx(runs["memory"].manifest["evaluation"][name]["mean"], abs=0.1)
