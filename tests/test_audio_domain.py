"""The audio domain: FD-MFCC features, spectrogram augmentation, rendering, recipes, runs."""

from __future__ import annotations

import json
import math

import pytest
import soundfile as sf
import torch
from torchaudio import functional as AF

import mmdd
from audio_fixtures import corrupt, write_audio_folder, write_fsdd
from mmdd.core.errors import ConfigError, DataError
from mmdd.domains.audio.augment import SpecAugment
from mmdd.domains.audio.features import compute_features, mfcc_to_waveform
from mmdd.core.media import render_viewable
from mmdd.core.viewable import Viewable
from mmdd.domains.audio.render import map_images, waveforms_of
from mmdd.run import load_config
from fresh_load import load_in_fresh_process  # noqa: E402

OPTS = {"features": "fd_mfcc", "sample_rate": 8000, "clip_samples": 8000, "n_mfcc": 20, "n_mels": 40,
        "n_fft": 256, "hop_length": 128, "f_max": None, "top_db": 80.0, "delta_window": 5}


def tones(freqs, seconds=1.0, rate=8000):
    t = torch.arange(int(seconds * rate)) / rate
    return torch.stack([0.5 * torch.sin(2 * math.pi * f * t) * torch.linspace(0.2, 1, t.numel()) for f in freqs])


def test_fd_mfcc_has_three_channels_whose_deltas_match_torchaudio():
    x = compute_features(tones([300, 700, 1500]), OPTS)
    assert x.shape == (3, 3, 20, 8000 // 128 + 1)
    torch.testing.assert_close(x[:, 1], AF.compute_deltas(x[:, 0], win_length=5))
    torch.testing.assert_close(x[:, 2], AF.compute_deltas(x[:, 1], win_length=5))
    plain = compute_features(tones([300, 700, 1500]), {**OPTS, "features": "mfcc"})
    assert plain.shape == (3, 1, 20, 63)
    torch.testing.assert_close(plain[:, 0], x[:, 0])


def test_features_of_a_clip_do_not_depend_on_its_batch():
    batch = tones([300, 700]) * torch.tensor([[1.0], [0.01]])  # very different loudness
    together = compute_features(batch, OPTS)
    alone = compute_features(batch[1:], OPTS)
    torch.testing.assert_close(together[1:], alone)


def test_inverted_mfcc_is_a_clip_of_the_right_length_near_the_original_pitch():
    x = compute_features(tones([500, 1500]), OPTS)
    audio = mfcc_to_waveform(x[:, 0], OPTS)
    assert audio.shape == (2, 8000) and audio.abs().max() <= 0.9 + 1e-6
    peak_hz = torch.fft.rfft(audio).abs().argmax(dim=-1).float() * 8000 / 8000  # 1 Hz bins for a 1 s clip
    assert abs(peak_hz[0] - 500) < 120 and abs(peak_hz[1] - 1500) < 250


def test_render_writes_a_map_grid_and_one_wav_per_sample_at_the_dataset_rate(tmp_path):
    x = compute_features(tones([400, 900, 1200]), OPTS)
    info = {"audio": OPTS, "class_names": ["low", "mid", "high"]}
    view = Viewable("audio", torch.tensor([0, 1, 2]), info["class_names"], images=map_images(x), features=x,
                    waveforms=waveforms_of(x, info, normalized=False), sample_rate=8000)
    paths = render_viewable(view, tmp_path).all()
    wavs = [p for p in paths if p.suffix == ".wav"]
    assert [p.name for p in paths if p.parent.name == "audio" and p.suffix == ".png"] == [
        "0000_low.png", "0001_mid.png", "0002_high.png"]  # each WAV's maps beside it
    assert (tmp_path / "samples.png").exists() and [p.name for p in wavs] == ["0000_low.wav", "0001_mid.wav",
                                                                             "0002_high.wav"]
    data, rate = sf.read(wavs[0])
    assert rate == 8000 and data.shape == (8000,)


def test_siamese_spec_augment_applies_one_transform_to_batches_of_any_size():
    aug = SpecAugment(("shift", "timemask", "freqmask"), mode="all", max_shift=0.3, time_mask=0.3, freq_mask=0.3)
    x = torch.randn(1, 3, 20, 40)
    real, syn = aug.siamese([x.expand(5, -1, -1, -1), x.expand(2, -1, -1, -1)], torch.Generator().manual_seed(1))
    assert torch.equal(real[3], syn[1]) and not torch.equal(real[0], x[0])
    per_sample = aug(x.expand(8, -1, -1, -1), torch.Generator().manual_seed(1))
    assert len({tuple(per_sample[i].flatten()[:50].tolist()) for i in range(8)}) > 1


def test_spec_augment_masks_bands_and_shifts_are_permutations():
    x = torch.rand(4, 1, 10, 50) + 1.0  # strictly positive, so masked cells are the zeros
    gen = torch.Generator().manual_seed(0)
    shifted = SpecAugment(("shift",), max_shift=0.2)(x, gen)
    torch.testing.assert_close(shifted.sort(dim=-1).values, x.sort(dim=-1).values)
    masked = SpecAugment(("timemask",), time_mask=0.2)(x, gen)
    zero_cols = (masked == 0).all(dim=-2).squeeze(1).sum(dim=-1)
    assert (zero_cols <= 10).all() and (masked[masked != 0] == x[masked != 0]).all()
    freq = SpecAugment(("freqmask",), freq_mask=0.3)(x, gen)
    assert ((freq == 0).all(dim=-1).squeeze(1).sum(dim=-1) <= 3).all()
    syn = x.clone().requires_grad_(True)
    SpecAugment(("shift", "timemask"), max_shift=0.2, time_mask=0.2)(syn, gen).sum().backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def fsdd_recipe(root, **method) -> dict:
    return {"name": "fsdd-tiny", "description": "tiny", "domain": "audio",
            "dataset": {"name": "fsdd", "root": str(root), "n_mfcc": 12, "n_mels": 24, "clip_seconds": 0.5},
            "budget": {"ipc": 1}, "network": {"name": "convnet", "depth": 2, "width": 8},
            "method": method or {"name": "dm", "iterations": 3, "batch_real": 8},
            "augment": {"strategy": "shift_timemask"},
            "evaluation": {"epochs": 2, "seeds": 1, "baselines": ["random"]}, "checkpoint": {"every": 2}}


def test_audio_config_errors_say_what_was_expected(tmp_path):
    recipe = fsdd_recipe(tmp_path)
    with pytest.raises(ConfigError, match="unknown audio augmentation 'pitch'"):
        load_config(recipe, ["augment.strategy=shift_pitch"])
    with pytest.raises(ConfigError, match=r"hop_length \(256\) must be < n_fft"):
        load_config(recipe, ["dataset.hop_length=256"])
    with pytest.raises(ConfigError, match=r"n_mfcc \(50\) must be ≤ n_mels"):
        load_config(recipe, ["dataset.n_mfcc=50"])
    with pytest.raises(ConfigError, match="did you mean 'speech_commands'"):
        load_config(recipe, ["dataset.name=speech_command"])
    with pytest.raises(ConfigError, match="folder .* does not exist"):
        load_config(recipe, [f"dataset.root={tmp_path / 'nope'}"])


def test_profiles_combine_left_to_right_and_a_section_profile_replaces_the_method():
    cfg = load_config("audio/fsdd-mtt-ipc10", ["dataset.root=.", "profile=cpu+mfcc+dm"])
    assert cfg.method.name == "dm" and cfg.dataset.features == "mfcc" and cfg.network.width == 32
    assert cfg.profile == "cpu+mfcc+dm" and cfg.synthetic.learn_lr is False
    with pytest.raises(ConfigError, match="unknown profile 'gpu'"):
        load_config("audio/fsdd-mtt-ipc10", ["dataset.root=.", "profile=cpu+gpu"])


def test_fsdd_trajectory_matching_run_counts_skipped_files_and_renders_wavs(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", speakers=("a",), takes=range(7))  # takes 5, 6 train
    corrupt(root / "2_a_6.wav", kind="truncate")
    method = {"name": "mtt", "iterations": 2, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 1}
    recipe = fsdd_recipe(root, **method)
    recipe["experts"] = {"dir": str(tmp_path / "experts"), "num_experts": 1, "epochs": 2, "batch_size": 8}
    recipe["synthetic"] = {"learn_lr": True}
    with pytest.raises(DataError, match="2_a_6.wav"):
        mmdd.distill(recipe, output_dir=tmp_path / "fail", progress=False)
    from mmdd.experts import generate_experts

    skip = ["dataset.on_error=skip"]
    generate_experts(recipe, skip, progress=False)
    run = mmdd.distill(recipe, skip, output_dir=tmp_path / "run", progress=False)
    data = run.manifest["data"]
    assert data["skipped_files"] == 1 and "2_a_6.wav" in data["skipped"][0]
    assert data["train_size"] == 10 * 2 - 1 and data["input_shape"] == [3, 12, 4000 // 128 + 1]
    assert data["audio"]["sample_rate"] == 8000 and len(data["normalization"]["mean"]) == 3
    assert data["split_rule"].startswith("official")  # the loader's split rule reaches the manifest
    wavs = sorted((tmp_path / "run" / "audio").glob("*.wav"))
    assert len(wavs) == 10 and sf.info(str(wavs[0])).frames == 4000
    loaded = mmdd.load(tmp_path / "run")
    assert len(loaded) == 10 and loaded[0][0].shape == (3, 12, 32)
    assert loaded.waveforms([0, 1]).shape == (2, 4000) and loaded.sample_rate == 8000  # a way back to sound
    info = load_in_fresh_process(tmp_path / "run")
    assert info["type"] == "DistilledAudio" and info["seen"] == 10 and info["item_shapes"] == [[3, 12, 32], []]


def test_python_api_distils_a_folder_of_wav_files(tmp_path):
    root = write_audio_folder(tmp_path / "clips", classes=("bird", "car", "dog"), per_class=6)
    recipe = {"name": "my-sounds", "domain": "audio",
              "dataset": {"name": "audio_folder", "root": str(root), "sample_rate": 8000, "clip_seconds": 0.5,
                          "n_fft": 256, "hop_length": 128, "test_fraction": 0.34, "features": "mfcc"},
              "budget": {"ipc": 2}, "network": {"name": "convnet", "depth": 2, "width": 8},
              "method": {"name": "dm", "iterations": 3, "batch_real": 8},
              "evaluation": {"epochs": 2, "seeds": 1, "baselines": []}}
    run = mmdd.distill(recipe, output_dir=tmp_path / "run", progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data"]["class_names"] == ["bird", "car", "dog"] and manifest["data"]["input_shape"][0] == 1
    assert run.manifest["evaluation"]["distilled"]["metric"] == "accuracy"
    assert len(list((tmp_path / "run" / "audio").glob("*_dog.wav"))) == 2


def test_pre_emphasis_and_the_frame_length_are_ddfad_options_of_the_front_end():
    from torchaudio import functional as AF

    clips = tones([400, 1500])
    paper = {**OPTS, "pre_emphasis": 0.97, "win_length": 160}  # 20 ms frames at 8 kHz
    emphasised = compute_features(clips, paper)
    by_hand = compute_features(AF.preemphasis(clips, 0.97), {**OPTS, "win_length": 160})
    torch.testing.assert_close(emphasised, by_hand)  # y[n] = x[n] - 0.97 x[n-1], then the same MFCC
    assert not torch.allclose(emphasised, compute_features(clips, {**OPTS, "win_length": 160}))
    assert emphasised.shape == compute_features(clips, OPTS).shape  # the frame is zero-padded to n_fft
    audio = mfcc_to_waveform(emphasised[:, 0], paper)  # inverted with de-emphasis, at the clip length
    assert audio.shape == (2, OPTS["clip_samples"]) and torch.isfinite(audio).all()


def test_front_end_settings_are_checked(tmp_path):
    recipe = fsdd_recipe(tmp_path)
    with pytest.raises(ConfigError, match="pre_emphasis must be in"):
        load_config(recipe, ["dataset.pre_emphasis=1.2"])
    with pytest.raises(ConfigError, match=r"win_length \(64\) must be in \(hop_length, n_fft\]"):
        load_config(recipe, ["dataset.win_length=64", "dataset.hop_length=128", "dataset.n_fft=256"])
