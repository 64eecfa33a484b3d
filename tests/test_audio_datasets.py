"""Tests for mmdd.domains.audio.datasets: fixtures are written in tmp dirs in the real layouts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
import torch

sf = pytest.importorskip("soundfile")

from audio_fixtures import (  # noqa: E402  (tests/ is on sys.path under pytest)
    AUDIO_FOLDER_DEFAULT_CLASSES,
    ESC50_DEFAULT_CATEGORIES,
    NOISE_FILES,
    SPEECH_COMMANDS_DEFAULT_WORDS,
    audio_folder_relpath,
    class_freq,
    corrupt,
    tone,
    write_audio_folder,
    write_esc50,
    write_fsdd,
    write_speech_commands,
    write_wav,
)

from mmdd.core.errors import ConfigError, DataError  # noqa: E402
from mmdd.core.registry import dataset_entry, dataset_names  # noqa: E402
from mmdd.domains.audio.configs import (AudioFolderConfig, ESC50Config, FSDDConfig,  # noqa: E402
                                        SpeechCommandsConfig)
from mmdd.domains.audio.datasets import (  # noqa: E402
    ON_ERROR,
    AudioData,
    load_audio_folder,
    load_esc50,
    load_fsdd,
    load_speech_commands,
    read_audio,
    read_audio_folder,
    read_clip,
    read_esc50,
    read_fsdd,
    read_speech_commands,
)

REAL_FSDD = SHARED_DATA / "audio" / "fsdd" / "recordings"
CORE = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _peak_hz(wave: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wave.double()).abs()
    return float(spectrum.argmax()) * sample_rate / wave.shape[-1]


# --------------------------------------------------------------------------------------------
# read_clip
# --------------------------------------------------------------------------------------------


def test_registry_and_on_error():
    assert dataset_names("audio") == ["audio_folder", "esc50", "fsdd", "speech_commands"]
    for name, config, read in (("fsdd", FSDDConfig, read_fsdd),
                               ("speech_commands", SpeechCommandsConfig, read_speech_commands),
                               ("esc50", ESC50Config, read_esc50),
                               ("audio_folder", AudioFolderConfig, read_audio_folder)):
        entry = dataset_entry("audio", name)
        assert entry.config is config and entry.load is read
    assert ON_ERROR == ("fail", "skip")


def test_read_clip_pads_at_the_end(tmp_path):
    data = tone(440.0, 5000, 8000, seed=1)
    path = write_wav(tmp_path / "short.wav", data, 8000)
    clip = read_clip(path, 8000, 8000)
    assert clip.dtype == torch.float32 and clip.shape == (8000,)
    assert torch.allclose(clip[:5000], torch.from_numpy(data), atol=1e-4)
    assert torch.all(clip[5000:] == 0)


def test_read_clip_keeps_the_first_samples(tmp_path):
    data = tone(440.0, 12000, 8000, seed=2)
    path = write_wav(tmp_path / "long.wav", data, 8000)
    clip = read_clip(str(path), 8000, 8000)
    assert clip.shape == (8000,)
    assert torch.allclose(clip, torch.from_numpy(data[:8000]), atol=1e-4)


def test_read_clip_downsamples(tmp_path):
    path = write_wav(tmp_path / "16k.wav", tone(1000.0, 16000, 16000, seed=3, noise=0.0), 16000)
    clip = read_clip(path, 8000, 10000)
    assert clip.shape == (10000,)
    # 1 s at 16 kHz is 8000 samples at 8 kHz: the rest is padding
    assert clip[:8000].abs().max() > 0.4
    assert torch.all(clip[8000:] == 0)
    assert _peak_hz(clip[:8000], 8000) == pytest.approx(1000.0, abs=2.0)
    import torchaudio.functional as F

    direct = F.resample(torch.from_numpy(sf.read(str(path), dtype="float32")[0]), 16000, 8000)
    assert torch.allclose(clip[:8000], direct, atol=1e-6)


def test_read_clip_upsamples(tmp_path):
    path = write_wav(tmp_path / "8k.wav", tone(700.0, 4000, 8000, seed=4, noise=0.0), 8000)
    clip = read_clip(path, 16000, 8000)
    assert clip.abs()[-100:].max() > 0.3  # 0.5 s at 16 kHz fills the 8000-sample clip
    assert _peak_hz(clip, 16000) == pytest.approx(700.0, abs=3.0)
    assert read_audio(path, 16000).shape == (8000,)


def test_read_clip_mixes_stereo_to_mono(tmp_path):
    left = tone(500.0, 4000, 8000, seed=5)
    right = np.full(4000, 0.25, dtype=np.float32)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 8000)
    assert sf.info(str(path)).channels == 2
    clip = read_clip(path, 8000, 4000)
    assert clip.shape == (4000,)
    assert torch.allclose(clip, torch.from_numpy((left + right) / 2), atol=1e-4)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("truncate", "truncated"),
        ("header", "cannot decode"),
        ("empty", "empty (0 bytes)"),
        ("garbage", "cannot decode"),
        ("no_frames", "0 frames"),
    ],
)
def test_read_clip_rejects_damaged_files(tmp_path, kind, words):
    path = corrupt(write_wav(tmp_path / "clip.wav", tone(440.0, 4000, 8000, seed=6), 8000), kind)
    with pytest.raises(DataError) as info:
        read_clip(path, 8000, 8000)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert words in msg
    assert "WAV/FLAC/OGG" in msg


def test_read_clip_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_clip(tmp_path / "nope.wav", 8000, 8000)


def test_bad_arguments(tmp_path):
    root = write_fsdd(tmp_path / "fsdd", digits=[0], takes=[0, 5])
    with pytest.raises(ConfigError, match="on_error"):
        load_fsdd(root, on_error="ignore")
    with pytest.raises(ConfigError, match="sample_rate"):
        load_fsdd(root, sample_rate=0)
    with pytest.raises(ConfigError, match="clip_samples"):
        load_fsdd(root, clip_samples=1.5)


@pytest.mark.parametrize(
    "loader, layout_words",
    [
        (load_fsdd, "{digit}_{speaker}_{take}.wav"),
        (load_speech_commands, "validation_list.txt"),
        (load_esc50, "esc50.csv"),
        (load_audio_folder, "<class>"),
    ],
)
def test_missing_root(tmp_path, loader, layout_words):
    with pytest.raises(DataError) as info:
        loader(tmp_path / "absent")
    msg = str(info.value)
    assert str(tmp_path / "absent") in msg and "does not exist" in msg
    assert "expected" in msg and layout_words in msg


# --------------------------------------------------------------------------------------------
# FSDD
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fsdd_root(tmp_path_factory) -> Path:
    """10 digits × 2 speakers × takes 0..7 = 160 files: 100 test (takes 0-4), 60 train."""
    return write_fsdd(tmp_path_factory.mktemp("fsdd")).parent


def _fsdd_fields(path: str) -> tuple[int, str, int]:
    digit, speaker, take = Path(path).stem.split("_")
    return int(digit), speaker, int(take)


def test_fsdd_official_split(fsdd_root):
    data = load_fsdd(fsdd_root)
    assert isinstance(data, AudioData)
    assert data.class_names == [str(d) for d in range(10)]
    assert data.val is None and data.skipped == []
    assert (len(data.train), len(data.test)) == (60, 100)
    for split, takes in ((data.train, {5, 6, 7}), (data.test, {0, 1, 2, 3, 4})):
        assert split.waveforms.shape == (len(split), 8000) and split.waveforms.dtype == torch.float32
        assert split.labels.dtype == torch.int64
        fields = [_fsdd_fields(p) for p in split.paths]
        assert {t for _, _, t in fields} == takes
        assert split.labels.tolist() == [d for d, _, _ in fields]
        assert split.paths == sorted(split.paths)
        assert torch.bincount(split.labels, minlength=10).tolist() == [len(split) // 10] * 10
    row = data.train.paths.index(str(fsdd_root / "recordings" / "7_nicolas_6.wav"))
    assert torch.equal(data.train.waveforms[row], read_clip(data.train.paths[row], 8000, 8000))


def test_fsdd_registered_reader_holds_out_val(fsdd_root):
    from mmdd.core.data import stratified_split
    from mmdd.core.seeding import make_generator

    data = read_fsdd(FSDDConfig(root=str(fsdd_root), val_fraction=0.34, split_seed=5))
    plain = load_fsdd(fsdd_root)
    assert plain.info["split_rule"] == "official: takes 0-4 test, 5+ train"
    assert data.info["split_rule"] == "official: takes 0-4 test, 5+ train; val: 34% of train, stratified, seed 5"
    keep, held = stratified_split(plain.train.labels, 0.34, make_generator(5))
    assert data.val.paths == [plain.train.paths[i] for i in held.tolist()]
    assert data.train.paths == [plain.train.paths[i] for i in keep.tolist()]
    assert torch.equal(data.val.waveforms, plain.train.waveforms[held]) and len(data.test) == 100
    assert read_fsdd(FSDDConfig(root=str(fsdd_root))).val is None


def test_fsdd_root_may_be_the_recordings_folder(fsdd_root):
    a = load_fsdd(fsdd_root)
    b = load_fsdd(fsdd_root / "recordings", clip_samples=4000)
    assert a.train.paths == b.train.paths and a.test.paths == b.test.paths
    assert torch.equal(a.train.waveforms[:, :4000], b.train.waveforms)


def test_fsdd_fixture_classes_are_separable(fsdd_root):
    data = load_fsdd(fsdd_root)
    spec = lambda w: torch.fft.rfft(w).abs()  # noqa: E731
    train, test = spec(data.train.waveforms), spec(data.test.waveforms)
    centroids = torch.stack([train[data.train.labels == c].mean(0) for c in range(10)])
    pred = torch.cdist(test, centroids).argmin(1)
    assert torch.equal(pred, data.test.labels)


def test_fsdd_bad_name(tmp_path, fsdd_root):
    root = _copy(fsdd_root, tmp_path / "fsdd")
    shutil.copy(root / "recordings" / "0_jackson_0.wav", root / "recordings" / "zero_jackson.wav")
    (root / "recordings" / "README.md").write_text("not a wav: ignored")
    with pytest.raises(DataError) as info:
        load_fsdd(root)
    assert "zero_jackson.wav" in str(info.value) and "{digit}_{speaker}_{take}.wav" in str(info.value)
    data = load_fsdd(root, on_error="skip")
    assert (len(data.train), len(data.test)) == (60, 100)
    assert len(data.skipped) == 1 and data.skipped[0].startswith(str(root / "recordings" / "zero_jackson.wav"))


@pytest.mark.parametrize("kind", ["truncate", "empty", "garbage"])
def test_fsdd_corrupt_file(tmp_path, fsdd_root, kind):
    root = _copy(fsdd_root, tmp_path / "fsdd")
    bad = corrupt(root / "recordings" / "3_jackson_6.wav", kind)
    with pytest.raises(DataError) as info:
        load_fsdd(root)
    assert str(bad) in str(info.value)
    data = load_fsdd(root, on_error="skip")
    assert (len(data.train), len(data.test)) == (59, 100)
    assert str(bad) not in data.train.paths
    assert len(data.skipped) == 1 and data.skipped[0].startswith(f"{bad}: ")
    assert torch.bincount(data.train.labels, minlength=10)[3] == 5


def test_fsdd_no_recordings(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no recordings found.*\n.*expected"):
        load_fsdd(tmp_path / "empty")


@pytest.mark.skipif(not REAL_FSDD.is_dir(), reason=f"real FSDD not at {REAL_FSDD}")
def test_real_fsdd():
    start = time.perf_counter()
    data = load_fsdd(REAL_FSDD)
    elapsed = time.perf_counter() - start
    print(f"real FSDD loaded in {elapsed:.2f} s")
    assert (len(data.train), len(data.test)) == (2700, 300)
    assert data.num_classes == 10 and data.skipped == []
    assert torch.bincount(data.train.labels).tolist() == [270] * 10
    assert torch.bincount(data.test.labels).tolist() == [30] * 10
    assert data.train.waveforms.shape == (2700, 8000)
    assert data.train.waveforms.abs().max() <= 1.0
    assert load_fsdd(REAL_FSDD.parent).test.paths == data.test.paths


# --------------------------------------------------------------------------------------------
# Speech Commands
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sc_root(tmp_path_factory) -> Path:
    """13 words (10 core + bed, cat, happy) × 6 files: per word 3 train, 1 val, 2 test."""
    return write_speech_commands(tmp_path_factory.mktemp("sc"))


def _listed(root: Path, name: str) -> set[str]:
    return {str(root / line) for line in (root / name).read_text().split()}


def test_speech_commands_all_words(sc_root):
    data = load_speech_commands(sc_root)
    words = sorted(SPEECH_COMMANDS_DEFAULT_WORDS)
    assert data.class_names == words and "_background_noise_" not in data.class_names
    assert (len(data.train), len(data.val), len(data.test)) == (39, 13, 26)
    assert set(data.val.paths) == _listed(sc_root, "validation_list.txt")
    assert set(data.test.paths) == _listed(sc_root, "testing_list.txt")
    assert not set(data.train.paths) & (set(data.val.paths) | set(data.test.paths))
    for split in (data.train, data.val, data.test):
        assert [data.class_names[i] for i in split.labels] == [Path(p).parent.name for p in split.paths]
        assert split.waveforms.shape[1] == 16000
        assert not any("_background_noise_" in p for p in split.paths)
    assert data.skipped == []


def test_a_speech_commands_folder_with_other_words_says_so(sc_root):
    words = sorted(SPEECH_COMMANDS_DEFAULT_WORDS)
    with pytest.warns(UserWarning, match=rf"holds {len(words)} word folder\(s\), not the 35 or 30"):
        data = load_speech_commands(sc_root)
    assert data.info["warnings"] and f"{len(words)}-way" in data.info["warnings"][0]
    absent = [w for w in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go") if w not in words]
    if absent:
        with pytest.warns(UserWarning, match="no folder for"):
            load_speech_commands(sc_root, task="12")


def test_speech_commands_12_labels(sc_root):
    data = load_speech_commands(sc_root, task="12", clip_samples=8000)
    assert data.class_names == CORE + ["_unknown_", "_silence_"]
    expected_silence = {"train": 3, "val": 1, "test": 2}  # round(10 words × per-split count / 10)
    words = {"train": 39, "val": 13, "test": 26}
    noise = {str(sc_root / "_background_noise_" / n): read_audio(sc_root / "_background_noise_" / n, 16000)
             for n in NOISE_FILES}
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        assert len(split) == words[name] + expected_silence[name]
        assert split.waveforms.shape == (len(split), 8000)
        for label, path in zip(split.labels.tolist()[: words[name]], split.paths):
            word = Path(path).parent.name
            assert label == (CORE.index(word) if word in CORE else 10)
        assert (split.labels == 10).sum() == 3 * {"train": 3, "val": 1, "test": 2}[name]
        silence = split.labels == 11
        assert silence.sum() == expected_silence[name]
        assert silence[words[name]:].all()  # appended after the word clips
        for row in torch.nonzero(silence).flatten().tolist():
            source, offset = split.paths[row].rsplit("@", 1)
            track = noise[source]
            assert 0 <= int(offset) <= track.shape[0] - 8000
            assert torch.equal(split.waveforms[row], track[int(offset): int(offset) + 8000])


def test_speech_commands_silence_is_seeded(sc_root):
    a = load_speech_commands(sc_root, task="12", split_seed=3)
    b = load_speech_commands(sc_root, task="12", split_seed=3)
    assert a.train.paths == b.train.paths and torch.equal(a.train.waveforms, b.train.waveforms)
    others = [load_speech_commands(sc_root, task="12", split_seed=s).train.paths[-3:] for s in (4, 5)]
    assert any(o != a.train.paths[-3:] for o in others)


def test_speech_commands_silence_count_uses_all_ten_words(tmp_path):
    # only 2 of the 10 core words exist: the count is round(clips of the ten words / 10)
    root = write_speech_commands(tmp_path / "sc", words=("yes", "no", "cat", "dog"), per_word=12)
    data = load_speech_commands(root, task="12")
    counts = {n: int((getattr(data, n).labels == 11).sum()) for n in ("train", "val", "test")}
    assert counts == {"train": 1, "val": 0, "test": 1}  # 12/10, 4/10, 8/10
    assert (data.train.labels == 10).sum() == 12  # cat, dog -> _unknown_


def test_speech_commands_missing_lists(tmp_path, sc_root):
    root = _copy(sc_root, tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(DataError) as info:
        load_speech_commands(root)
    assert "testing_list.txt" in str(info.value) and "validation_list.txt;" not in str(info.value)
    (root / "validation_list.txt").unlink()
    with pytest.raises(DataError) as info:
        load_speech_commands(root)
    assert "validation_list.txt" in str(info.value) and "testing_list.txt" in str(info.value)
    assert "expected" in str(info.value)


def test_speech_commands_12_needs_background_noise(tmp_path, sc_root):
    root = _copy(sc_root, tmp_path / "sc")
    shutil.rmtree(root / "_background_noise_")
    assert len(load_speech_commands(root).train) == 39  # the word task does not need it
    with pytest.raises(DataError, match="_background_noise_"):
        load_speech_commands(root, task="12")
    (root / "_background_noise_").mkdir()
    with pytest.raises(DataError, match="holds no .wav files"):
        load_speech_commands(root, task="12")


def test_speech_commands_listed_file_missing(tmp_path, sc_root):
    root = _copy(sc_root, tmp_path / "sc")
    rel = (root / "validation_list.txt").read_text().split()[0]
    (root / rel).unlink()
    with pytest.raises(DataError) as info:
        load_speech_commands(root)
    assert rel in str(info.value) and "missing" in str(info.value)
    data = load_speech_commands(root, on_error="skip")
    assert len(data.val) == 12 and data.skipped == [f"{root / rel}: listed in a split list but missing"]


def test_speech_commands_corrupt_file(tmp_path, sc_root):
    root = _copy(sc_root, tmp_path / "sc")
    rel = (root / "testing_list.txt").read_text().split()[0]
    bad = corrupt(root / rel, "truncate")
    with pytest.raises(DataError, match="truncated"):
        load_speech_commands(root)
    data = load_speech_commands(root, task="12", on_error="skip")
    assert len(data.test) == 26 - 1 + 2  # round(19/10) = 2 silence clips
    assert len(data.skipped) == 1 and data.skipped[0].startswith(f"{bad}: ")


def test_speech_commands_bad_task(sc_root):
    with pytest.raises(ConfigError, match="task"):
        load_speech_commands(sc_root, task="35")


# --------------------------------------------------------------------------------------------
# ESC-50
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def esc_root(tmp_path_factory) -> Path:
    """3 categories × 5 folds × 1 clip of 0.5 s at 44.1 kHz."""
    return write_esc50(tmp_path_factory.mktemp("esc50"))


def _esc_fold_target(path: str) -> tuple[int, int]:
    fold, _, _, target = Path(path).stem.split("-")
    return int(fold), int(target)


def test_esc50_folds(esc_root):
    data = load_esc50(esc_root, test_fold=3, val_fold=5, clip_samples=16000)
    assert data.class_names == list(ESC50_DEFAULT_CATEGORIES)
    assert (len(data.train), len(data.val), len(data.test)) == (9, 3, 3)
    for split, folds in ((data.train, {1, 2, 4}), (data.val, {5}), (data.test, {3})):
        fields = [_esc_fold_target(p) for p in split.paths]
        assert {f for f, _ in fields} == folds
        assert split.labels.tolist() == [t for _, t in fields]
        # 0.5 s at 44.1 kHz resampled to 16 kHz = 8000 samples, then zero padding
        assert split.waveforms.shape == (len(split), 16000)
        assert (split.waveforms[:, :8000].abs().amax(1) > 0.3).all()
        assert torch.all(split.waveforms[:, 8000:] == 0)
    row = data.train.labels.tolist().index(2)
    assert _peak_hz(data.train.waveforms[row, :8000], 16000) == pytest.approx(class_freq(2), abs=3)


def test_esc50_without_val(esc_root):
    data = load_esc50(esc_root, clip_samples=100)
    assert data.val is None and (len(data.train), len(data.test)) == (12, 3)
    assert {_esc_fold_target(p)[0] for p in data.test.paths} == {1}


@pytest.mark.parametrize("folds", [{"test_fold": 0}, {"test_fold": 6}, {"test_fold": 2, "val_fold": 2}])
def test_esc50_bad_folds(esc_root, folds):
    with pytest.raises(ValueError, match="fold"):
        load_esc50(esc_root, **folds)


def test_esc50_missing_csv_and_columns(tmp_path, esc_root):
    root = _copy(esc_root, tmp_path / "esc")
    csv_path = root / "meta" / "esc50.csv"
    text = csv_path.read_text()
    csv_path.unlink()
    with pytest.raises(DataError, match=r"esc50\.csv does not exist"):
        load_esc50(root)
    csv_path.write_text(text.replace(",category,", ",label,", 1))
    with pytest.raises(DataError) as info:
        load_esc50(root)
    assert "missing column(s) category" in str(info.value)


def test_esc50_missing_and_corrupt_files(tmp_path, esc_root):
    root = _copy(esc_root, tmp_path / "esc")
    gone = sorted((root / "audio").iterdir())[0]
    gone.unlink()
    bad = corrupt(sorted((root / "audio").iterdir())[-1], "garbage")
    with pytest.raises(DataError) as info:
        load_esc50(root)
    assert gone.name in str(info.value) and "missing" in str(info.value)
    data = load_esc50(root, on_error="skip", clip_samples=100)
    assert len(data.train) + len(data.test) == 13
    assert [s.split(": ")[0] for s in data.skipped] == [str(gone), str(bad)]


# --------------------------------------------------------------------------------------------
# generic audio folder
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    """root/<class>/...: 3 classes × 5 files (.wav .flac .WAV .ogg .wav; some in takes/)."""
    return write_audio_folder(tmp_path_factory.mktemp("af"))


@pytest.fixture(scope="module")
def split_root(tmp_path_factory) -> Path:
    """root/train/<class>/... (5 each) and root/test/<class>/... (2 each)."""
    return write_audio_folder(tmp_path_factory.mktemp("afs"), split=True)


def test_audio_folder_stratified_split(folder_root):
    data = load_audio_folder(folder_root, clip_samples=4000)
    assert data.class_names == list(AUDIO_FOLDER_DEFAULT_CLASSES)
    assert data.val is None
    assert (len(data.train), len(data.test)) == (12, 3)
    assert torch.bincount(data.test.labels).tolist() == [1, 1, 1]
    every = {str(folder_root / c / audio_folder_relpath(k)) for c in data.class_names for k in range(5)}
    assert set(data.train.paths) | set(data.test.paths) == every  # recursive, any-case extensions
    assert not set(data.train.paths) & set(data.test.paths)
    for split in (data.train, data.test):
        assert [data.class_names[i] for i in split.labels] == [
            Path(p).relative_to(folder_root).parts[0] for p in split.paths
        ]
    ogg = next(i for i, p in enumerate(data.train.paths) if p.endswith(".ogg"))
    freq = class_freq(int(data.train.labels[ogg]))
    assert _peak_hz(data.train.waveforms[ogg], 16000) == pytest.approx(freq, abs=5)
    half = load_audio_folder(folder_root, test_fraction=0.5, clip_samples=10)
    assert torch.bincount(half.test.labels).tolist() == [2, 2, 2]  # round(2.5) = 2


def test_audio_folder_split_is_seeded(folder_root):
    a = load_audio_folder(folder_root, split_seed=0, clip_samples=10)
    assert load_audio_folder(folder_root, split_seed=0, clip_samples=10).test.paths == a.test.paths
    others = [load_audio_folder(folder_root, split_seed=s, clip_samples=10).test.paths for s in range(1, 5)]
    assert any(o != a.test.paths for o in others)


def test_audio_folder_single_file_class_stays_in_train(tmp_path, folder_root):
    root = _copy(folder_root, tmp_path / "af")
    write_wav(root / "solo" / "only.flac", tone(900.0, 800, 16000, seed=9), 16000, fmt="FLAC")
    (root / "solo" / "notes.txt").write_text("ignored")
    data = load_audio_folder(root, clip_samples=10)
    assert data.class_names == ["high", "low", "mid", "solo"]
    assert (data.train.labels == 3).sum() == 1 and (data.test.labels == 3).sum() == 0


def test_audio_folder_train_test_layout(split_root):
    data = load_audio_folder(split_root, clip_samples=1000, test_fraction=0.9)
    assert data.class_names == list(AUDIO_FOLDER_DEFAULT_CLASSES) and data.val is None
    assert (len(data.train), len(data.test)) == (15, 6)
    assert all(Path(p).relative_to(split_root).parts[0] == "train" for p in data.train.paths)
    assert all(Path(p).relative_to(split_root).parts[0] == "test" for p in data.test.paths)
    assert torch.bincount(data.test.labels).tolist() == [2, 2, 2]


def test_audio_folder_layout_errors(tmp_path, split_root):
    root = _copy(split_root, tmp_path / "afs")
    shutil.copytree(root / "test" / "low", root / "val" / "low")
    with pytest.raises(DataError, match=r"val/ has classes \['low'\]"):
        load_audio_folder(root)
    shutil.rmtree(root / "val")
    shutil.rmtree(root / "test" / "mid")
    with pytest.raises(DataError, match="same class folders"):
        load_audio_folder(root)
    shutil.rmtree(root / "test")
    with pytest.raises(DataError, match="has 'train' but no 'test' folder"):
        load_audio_folder(root)
    empty = tmp_path / "flat"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no audio files"):
        load_audio_folder(empty)


def test_audio_folder_corrupt_file(tmp_path, split_root):
    root = _copy(split_root, tmp_path / "afs")
    bad = corrupt(root / "train" / "mid" / audio_folder_relpath(1), "empty")
    assert bad.suffix == ".flac"
    with pytest.raises(DataError, match="empty"):
        load_audio_folder(root)
    data = load_audio_folder(root, on_error="skip", clip_samples=100)
    assert len(data.train) == 14 and data.skipped[0].startswith(f"{bad}: ")


def test_audio_folder_bad_fraction(folder_root):
    for value in (0, 1.0, "x"):
        with pytest.raises(ConfigError, match="test_fraction"):
            load_audio_folder(folder_root, test_fraction=value)
