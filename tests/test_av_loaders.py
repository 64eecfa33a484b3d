"""Tests for the audio-visual dataset loaders: vggsound_csv, ave, music21, av_pairs and avdd_tensors.

Every fixture is a tiny tree in the dataset's real layout (2-second mp4 clips, 32×32 frames, with
an AAC track; or WAV + image pairs; or a torch.save dict), read without the decode cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import av  # noqa: F401  (import PyAV before decord: they ship clashing libvpx builds)
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from mmdd.core.data import DataSplits
from mmdd.core.errors import ConfigError, DataError
from mmdd.domains.audio_visual import to_distillation_space
from mmdd.domains.audio_visual.av_pairs import AVPairsConfig, read_av_pairs
from mmdd.domains.audio_visual.avdd_tensors import AVDDTensorsConfig, read_avdd_tensors
from mmdd.domains.audio_visual.ave import AVEConfig, read_ave
from mmdd.domains.audio_visual.batch import AVBatch
from mmdd.domains.audio_visual.features import normalize_frames
from mmdd.domains.audio_visual.music21 import Music21Config, read_music21
from mmdd.domains.audio_visual.vggsound import VGGSoundConfig, read_vggsound
from av_fixtures import RATE, picture, tone, write_av_clip  # noqa: E402  (tests/ is on sys.path under pytest)

SMALL = dict(size=32, cache_dir=None)


def clip(path: Path, k: int, seed: int = 0, **kw) -> Path:
    return write_av_clip(path, k, np.random.default_rng(seed), size=32, **kw)


def rel(sources, root: Path) -> list[str]:
    return [s.replace(str(root) + "/", "") for s in sources]


# ---------------------------------------------------------------------------------------- VGGSound

VGG_LABELS = {"cat meowing": 0, "dog barking": 1, "people marching, crowd": 2}
VGG_ROWS = [  # youtube_id, start, label, split, where the file lies
    ("a1", 10, "dog barking", "train", "train/a1_000010.mp4"),
    ("a2", 0, "dog barking", "train", "a2_000000.mp4"),  # the second accepted name
    ("a3", 30, "cat meowing", "train", "a3.mp4"),  # the third
    ("a4", 5, "people marching, crowd", "train", "train/a4_000005.mp4"),
    ("a5", 1, "cat meowing", "test", "test/a5_000001.mp4"),
    ("a6", 2, "dog barking", "test", "test/a6_000002.mp4"),
    ("a7", 3, "people marching, crowd", "test", "test/a7_000003.mp4"),
]


def csv_line(youtube_id, start, label, split) -> str:
    label = f'"{label}"' if "," in label else label
    return f"{youtube_id},{start},{label},{split}\n"


@pytest.fixture(scope="module")
def vgg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vggsound")
    for i, (_, _, label, _, where) in enumerate(VGG_ROWS):
        clip(root / where, VGG_LABELS[label], seed=i)
    (root / "vggsound.csv").write_text("".join(csv_line(*r[:4]) for r in VGG_ROWS))
    return root


def test_vggsound_reads_the_csv_and_every_accepted_file_name(vgg):
    data = read_vggsound(VGGSoundConfig(root=str(vgg), second=1, **SMALL))
    assert data.class_names == ["cat meowing", "dog barking", "people marching, crowd"]
    assert (len(data.train), len(data.test), data.val) == (4, 3, None)
    assert rel(data.train.sources, vgg) == [f"{r[4]}@1s" for r in VGG_ROWS[:4]]
    assert data.train.labels.tolist() == [1, 1, 0, 2] and data.test.labels.tolist() == [0, 1, 2]
    assert data.train.waveforms.shape == (4, VGGSoundConfig().sample_rate) and data.train.frames.shape == (4, 3, 32, 32)
    assert data.skipped == [] and data.info["split_rule"].startswith("CSV split column")


def test_vggsound_keeps_a_class_subset_and_accepts_a_header(vgg):
    (vgg / "with_header.csv").write_text("label,split,youtube_id,start_seconds\n"
                                         + "".join(f'"{r[2]}",{r[3]},{r[0]},{r[1]}\n' for r in VGG_ROWS))
    cfg = VGGSoundConfig(root=str(vgg), csv="with_header.csv", classes=["dog barking", "cat meowing"], second=0,
                         **SMALL)
    data = read_vggsound(cfg)
    assert data.class_names == ["cat meowing", "dog barking"]  # sorted; the third label's rows are ignored
    assert (len(data.train), len(data.test)) == (3, 2)
    assert data.train.labels.tolist() == [1, 1, 0] and all(s.endswith("@0s") for s in data.train.sources)
    with pytest.raises(ConfigError, match="unknown class.*'dog barkin'.*did you mean 'dog barking'"):
        read_vggsound(VGGSoundConfig(root=str(vgg), classes=["dog barkin"], **SMALL))


@pytest.mark.parametrize("text, error", [
    ("a1,10,dog barking,validation\n", r"line 1: split='validation'; expected train or test"),
    ("a1,10,dog barking,train\na2,ten,dog barking,train\n", r"line 2: start_seconds='ten'; expected whole seconds"),
    ("a1,10,dog barking,train\n\na2,0,people marching, crowd,test\n", r"line 3: 5 field\(s\).*expected 4"),
    ("ytid,label,split\na1,dog,train\n", r"line 1: header .* lacks column\(s\) start_seconds"),
    ("", r"holds no rows"),
])
def test_vggsound_malformed_csv_names_the_file_and_line(vgg, tmp_path, text, error):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=f"{path}.*{error}"):
        read_vggsound(VGGSoundConfig(root=str(vgg), csv=str(path), **SMALL))


def test_vggsound_listed_but_missing_clip_fails_or_is_skipped(vgg, tmp_path):
    path = tmp_path / "missing.csv"
    path.write_text((vgg / "vggsound.csv").read_text() + "zz,7,cat meowing,train\n")
    with pytest.raises(DataError, match=r"1 video\(s\) named in .*missing.csv are missing:\n.*train/zz_000007.mp4"):
        read_vggsound(VGGSoundConfig(root=str(vgg), csv=str(path), second=1, **SMALL))
    data = read_vggsound(VGGSoundConfig(root=str(vgg), csv=str(path), second=1, on_error="skip", **SMALL))
    assert len(data.train) == 4 and len(data.skipped) == 1 and data.info["missing_files"] == 1
    assert data.skipped[0].startswith(str(vgg / "train" / "zz_000007.mp4")) and "listed in" in data.skipped[0]


BAD_CLIPS = {  # name -> (clip options, what the error says)
    "noaudio": (dict(audio=False), "has no audio track"),
    "silent": (dict(silent=True), "is silent"),
    "short": (dict(seconds=1.0), "too short for second 1"),
    "corrupt": (None, "decord cannot read its audio"),
}


@pytest.fixture(scope="module")
def bad_vgg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vgg_bad")
    clip(root / "train" / "good_000000.mp4", 0)
    clip(root / "test" / "test_000000.mp4", 0, seed=1)
    for name, (opts, _) in BAD_CLIPS.items():
        path = root / "train" / f"{name}_000000.mp4"
        if opts is None:
            path.write_bytes(np.random.default_rng(0).bytes(600))
        else:
            clip(path, 0, seed=2, **opts)
        (root / f"{name}.csv").write_text(f"{name},0,cat,train\ntest,0,cat,test\n")
    (root / "all.csv").write_text("good,0,cat,train\n" + "".join(f"{n},0,cat,train\n" for n in BAD_CLIPS)
                                  + "test,0,cat,test\n")
    return root


@pytest.mark.parametrize("name", list(BAD_CLIPS))
def test_a_bad_clip_fails_naming_it(bad_vgg, name):
    with pytest.raises(DataError, match=f"{name}_000000.mp4: .*{BAD_CLIPS[name][1]}"):
        read_vggsound(VGGSoundConfig(root=str(bad_vgg), csv=f"{name}.csv", second=1, **SMALL))


def test_bad_clips_are_skipped_and_listed(bad_vgg):
    data = read_vggsound(VGGSoundConfig(root=str(bad_vgg), csv="all.csv", second=1, on_error="skip", **SMALL))
    assert len(data.train) == 1 and len(data.test) == 1 and len(data.skipped) == len(BAD_CLIPS)
    for reason, (name, (_, says)) in zip(data.skipped, BAD_CLIPS.items()):
        assert reason.startswith(str(bad_vgg / "train" / f"{name}_000000.mp4")) and says in reason


# --------------------------------------------------------------------------------------------- AVE

AVE_HEADER = "Category&VideoID&Quality&StartTime&EndTime"


@pytest.fixture(scope="module")
def ave(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ave")
    lines = {"vA": "Church bell&vA&good&0&2", "vB": "Dog&vB&good&1&2", "vC": "Church bell&vC&bad&0&1",
             "vD": "Dog&vD&good&0&2", "vE": "Church bell&vE&good&1&2"}
    extra = "Male speech, man speaking&vZ&good&0&2"  # a category with no video in any split
    (root / "Annotations.txt").write_text("\n".join([AVE_HEADER, *lines.values(), extra]))
    (root / "trainSet.txt").write_text(f"{lines['vA']}\n{lines['vB']}\n")  # no header
    (root / "testSet.txt").write_text(f"{AVE_HEADER}\n{lines['vC']}\r\n{lines['vD']}\n")
    (root / "valSet.txt").write_text(lines["vE"] + "\n")
    for i, (vid, k) in enumerate({"vA": 0, "vB": 1, "vC": 0, "vD": 1, "vE": 0}.items()):
        clip(root / ("" if vid == "vC" else "AVE") / f"{vid}.mp4", k, seed=10 + i)  # vC: root/<id>.mp4
    return root


def test_ave_gives_one_sample_per_annotated_second(ave):
    data = read_ave(AVEConfig(root=str(ave), **SMALL))
    assert data.class_names == ["Church bell", "Dog", "Male speech, man speaking"]
    assert rel(data.train.sources, ave) == ["AVE/vA.mp4@0s", "AVE/vA.mp4@1s", "AVE/vB.mp4@1s"]
    assert rel(data.test.sources, ave) == ["vC.mp4@0s", "AVE/vD.mp4@0s", "AVE/vD.mp4@1s"]
    assert rel(data.val.sources, ave) == ["AVE/vE.mp4@1s"]
    assert data.train.labels.tolist() == [0, 0, 1] and data.test.labels.tolist() == [0, 1, 1]
    assert not torch.equal(data.train.waveforms[0], data.train.waveforms[1])  # two different seconds of vA
    assert "valSet.txt" in data.info["split_rule"]


def _ave_copy(src: Path, dst: Path, **files) -> Path:
    dst.mkdir()
    for name in ("Annotations.txt", "trainSet.txt", "testSet.txt", "valSet.txt"):
        (dst / name).write_text(files.get(name, (src / name).read_text()))
    (dst / "AVE").symlink_to(src / "AVE")
    (dst / "vC.mp4").symlink_to(src / "vC.mp4")
    return dst


@pytest.mark.parametrize("name, text, error", [
    ("trainSet.txt", "Dog&vB&good&1\n", r"trainSet.txt line 1: 'Dog&vB&good&1'; expected 5 fields"),
    ("testSet.txt", f"{AVE_HEADER}\nDog&vD&good&2&2\n", r"testSet.txt line 2: .*StartTime 2 >= EndTime 2"),
    ("testSet.txt", "Dog&vD&good&0&x\n", r"testSet.txt line 1: .*time 'x'; expected whole seconds"),
    ("trainSet.txt", "Cat&vB&good&0&1\n", r"trainSet.txt: category 'Cat' .*is not in .*Annotations.txt"),
    ("Annotations.txt", AVE_HEADER + "\n", r"Annotations.txt: holds no annotation lines"),
])
def test_ave_malformed_annotations_name_the_file_and_line(ave, tmp_path, name, text, error):
    root = _ave_copy(ave, tmp_path / "ave", **{name: text})
    with pytest.raises(DataError, match=error):
        read_ave(AVEConfig(root=str(root), **SMALL))


def test_ave_missing_video_fails_or_skips_all_its_seconds(ave, tmp_path):
    listed = (ave / "trainSet.txt").read_text() + "Dog&vQ&good&0&2\n"
    root = _ave_copy(ave, tmp_path / "ave", **{"trainSet.txt": listed})
    with pytest.raises(DataError, match=r"ave: 1 video\(s\) named in trainSet.txt.*are missing:\n.*AVE/vQ.mp4"):
        read_ave(AVEConfig(root=str(root), **SMALL))
    data = read_ave(AVEConfig(root=str(root), on_error="skip", **SMALL))
    assert len(data.train) == 3 and len(data.skipped) == 1 and "vQ.mp4" in data.skipped[0]
    (root / "testSet.txt").unlink()
    with pytest.raises(DataError, match="testSet.txt does not exist"):
        read_ave(AVEConfig(root=str(root), **SMALL))


# --------------------------------------------------------------------------------------- MUSIC-21


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("music21")
    videos = {"cello": ["c1", "c2", "c3"], "acoustic guitar": ["g1", "g2", "g3"]}
    (root / "MUSIC21_solo_videos.json").write_text(json.dumps({"videos": videos}))
    for k, (inst, ids) in enumerate(sorted(videos.items())):
        for i, vid in enumerate(ids):
            clip(root / inst.replace(" ", "_") / f"{vid}.mp4", k, seed=20 + 3 * k + i)  # folder acoustic_guitar
    return root


def test_music21_splits_each_instrument_by_seed(music):
    data = read_music21(Music21Config(root=str(music), second=1, test_fraction=0.34, split_seed=3, **SMALL))
    assert data.class_names == ["acoustic guitar", "cello"]
    assert (len(data.train), len(data.test)) == (4, 2)
    assert sorted(data.test.labels.tolist()) == [0, 1] and sorted(data.train.labels.tolist()) == [0, 0, 1, 1]
    sources = rel(data.train.sources + data.test.sources, music)
    assert all(s.endswith(".mp4@1s") for s in sources) and "acoustic_guitar/g1.mp4@1s" in sources
    assert len(set(sources)) == 6 and "test: 34% of each instrument's videos" in data.info["split_rule"]
    again = read_music21(Music21Config(root=str(music), second=1, test_fraction=0.34, split_seed=3, **SMALL))
    assert again.test.sources == data.test.sources


@pytest.mark.parametrize("text, error", [
    ('{"videos": {"cello": ["c1",\n  "c2" "c3"]}}', r"line 2 column 8: Expecting ','"),
    ('{"cello": ["c1"]}', r"no non-empty \"videos\" object"),
    ('{"videos": {"cello": ["c1", 7]}}', r"\"videos\"\.\"cello\" is \[\"c1\", 7\]; expected a non-empty list"),
    ('[1, 2]', r"no non-empty \"videos\" object"),
])
def test_music21_malformed_json_names_the_file(music, tmp_path, text, error):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=f"{path}.*{error}"):
        read_music21(Music21Config(root=str(music), json=str(path), **SMALL))


def test_music21_listed_but_missing_video(music, tmp_path):
    path = tmp_path / "more.json"
    path.write_text(json.dumps({"videos": {"cello": ["c1", "c2", "c3", "c9"], "acoustic guitar": ["g1", "g2"]}}))
    with pytest.raises(DataError, match=r"named in .*more.json are missing:\n.*cello/c9.mp4"):
        read_music21(Music21Config(root=str(music), json=str(path), second=0, test_fraction=0.5, **SMALL))
    data = read_music21(Music21Config(root=str(music), json=str(path), second=0, test_fraction=0.5,
                                      on_error="skip", **SMALL))
    assert len(data.train) + len(data.test) == 5 and len(data.skipped) == 1 and "cello/c9.mp4" in data.skipped[0]


# -------------------------------------------------------------------------------------- paired files


def write_pair(folder: Path, stem: str, k: int, rng, image_ext: str | None = ".png", seconds: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"{stem}.wav", tone(k, seconds, rng), RATE)
    if image_ext is not None:
        Image.fromarray(picture(k, 40, rng)).save(folder / f"{stem}{image_ext}")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for k, name in enumerate(["bird", "car"]):
        for i in range(2):
            write_pair(root / "train" / name, f"{name}{i}", k, rng, ".png" if i == 0 else ".jpg")
        write_pair(root / "test" / name, f"{name}_t", k, rng)
    (root / "train" / "car" / "orphan.png").write_bytes(b"")  # an image without a sound file is ignored
    return root


def test_av_pairs_reads_sound_and_image_side_by_side(pairs):
    data = read_av_pairs(AVPairsConfig(root=str(pairs), **SMALL))
    assert data.class_names == ["bird", "car"] and (len(data.train), len(data.test), data.val) == (4, 2, None)
    assert rel(data.train.sources, pairs) == ["train/bird/bird0.wav + bird0.png", "train/bird/bird1.wav + bird1.jpg",
                                              "train/car/car0.wav + car0.png", "train/car/car1.wav + car1.jpg"]
    assert data.train.labels.tolist() == [0, 0, 1, 1] and data.info["second"] == 0
    assert data.train.frames.shape == (4, 3, 32, 32) and data.train.frames.dtype == torch.uint8
    assert float(data.train.waveforms.abs().max()) > 0.1


def test_av_pairs_sound_without_image_and_short_sound(tmp_path):
    rng = np.random.default_rng(1)
    write_pair(tmp_path / "train" / "a", "ok", 0, rng)
    write_pair(tmp_path / "train" / "a", "lonely", 0, rng, image_ext=None)
    write_pair(tmp_path / "test" / "a", "t", 0, rng)
    with pytest.raises(DataError, match=r"lonely.jpg: missing; expected the frame paired with lonely.wav"):
        read_av_pairs(AVPairsConfig(root=str(tmp_path), **SMALL))
    data = read_av_pairs(AVPairsConfig(root=str(tmp_path), on_error="skip", **SMALL))
    assert len(data.train) == 1 and len(data.skipped) == 1 and "lonely" in data.skipped[0]
    with pytest.raises(DataError, match=r"train/a/lonely.wav: its audio lasts 1.00 s, too short for second 1"):
        read_av_pairs(AVPairsConfig(root=str(tmp_path), second=1, **SMALL))
    (tmp_path / "test").rename(tmp_path / "testing")
    with pytest.raises(DataError, match=r"test is not a folder; the train and test splits are required"):
        read_av_pairs(AVPairsConfig(root=str(tmp_path), **SMALL))


# ------------------------------------------------------------------------------------ AVDD tensors


class NotATensor:
    """A custom object: torch.load(weights_only=True) refuses it."""


def avdd_doc(n_train=6, n_test=3, k=3, images="uint8", audio_dims=3, gen_seed=0, **extra) -> dict:
    g = torch.Generator().manual_seed(gen_seed)

    def split(n):
        shape = (n, 128, 56) if audio_dims == 3 else (n, 1, 128, 56)
        audio = torch.randn(shape, generator=g) * 10 - 40
        if images == "uint8":
            frames = torch.randint(0, 256, (n, 3, 24, 24), generator=g, dtype=torch.uint8)
        elif images == "unit":
            frames = torch.rand((n, 3, 24, 24), generator=g)
        else:  # already normalised
            frames = torch.randn((n, 3, 24, 24), generator=g)
        return audio, frames, torch.arange(n) % k

    doc = {}
    for name, n in (("train", n_train), ("test", n_test)):
        doc[f"audio_{name}"], doc[f"images_{name}"], doc[f"labels_{name}"] = split(n)
    doc.update(extra)
    return doc


def save(doc, path: Path) -> str:
    torch.save(doc, path)
    return str(path)


def test_avdd_tensors_are_returned_in_the_distillation_space(tmp_path, pairs):
    doc = avdd_doc(classes=["a", "b", "c"])
    data = read_avdd_tensors(AVDDTensorsConfig(path=save(doc, tmp_path / "avdd.pt")))
    assert isinstance(data, DataSplits) and isinstance(data.train.inputs, AVBatch)
    assert data.class_names == ["a", "b", "c"] and (len(data.train), len(data.test), data.val) == (6, 3, None)
    assert data.train.inputs.audio.shape == (6, 1, 128, 56) and data.train.inputs.audio.dtype == torch.float32
    assert data.train.inputs.frames.shape == (6, 3, 24, 24) and data.train.inputs.frames.dtype == torch.float32
    assert torch.allclose(data.train.inputs.frames, normalize_frames(doc["images_train"], [0.425, 0.396, 0.370],
                                                                     [0.229, 0.224, 0.221]))
    norm = data.info["audio_visual"]["audio_normalization"]
    assert norm["mean"] == pytest.approx(float(doc["audio_train"].mean()), abs=1e-4)
    assert torch.allclose(data.test.inputs.audio[:, 0], (doc["audio_test"] - norm["mean"]) / norm["std"], atol=1e-5)
    assert data.info["loader"]["frames_input"] == "uint8 pixels 0-255" and data.info["audio_visual"]["size"] == 24
    # the same info keys as decoded data gets from to_distillation_space
    cfg = AVPairsConfig(root=str(pairs), **SMALL)
    decoded = to_distillation_space(read_av_pairs(cfg), cfg)
    assert set(data.info) == set(decoded.info)
    assert set(data.info["audio_visual"]) == set(decoded.info["audio_visual"])


def test_avdd_tensors_float_frames_val_split_and_options(tmp_path):
    doc = avdd_doc(images="normalised", audio_dims=4)
    doc["audio_val"], doc["images_val"], doc["labels_val"] = doc["audio_test"], doc["images_test"], doc["labels_test"]
    cfg = AVDDTensorsConfig(path=save(doc, tmp_path / "n.pt"), standardize_audio=False, size=16)
    data = read_avdd_tensors(cfg)
    assert data.class_names == ["0", "1", "2"] and len(data.val) == 3 and "val/" in data.info["split_rule"]
    assert data.info["loader"]["frames_input"] == "float, already normalised"
    assert data.train.inputs.frames.shape == (6, 3, 16, 16) and data.info["audio_visual"]["size"] == 16
    assert torch.equal(data.train.inputs.audio, doc["audio_train"])  # not standardised
    unit = avdd_doc(images="unit")
    data = read_avdd_tensors(AVDDTensorsConfig(path=save(unit, tmp_path / "u.pt"), val_fraction=0.34))
    assert data.info["loader"]["frames_input"] == "float pixels in [0, 1]"
    assert torch.allclose(data.test.inputs.frames, normalize_frames(unit["images_test"] * 255, [0.425, 0.396, 0.370],
                                                                    [0.229, 0.224, 0.221]), atol=1e-5)
    assert (len(data.train), len(data.val)) == (3, 3) and "val: 34% of train" in data.info["split_rule"]


def _broken(kind: str):
    doc = avdd_doc()
    if kind == "list":
        return [doc["audio_train"]]
    if kind == "missing":
        del doc["labels_test"]
    elif kind == "lengths":
        doc["labels_train"] = doc["labels_train"][:5]
    elif kind == "images":
        doc["images_train"] = doc["images_train"][:, :1]
    elif kind == "labels":
        doc["classes"] = ["a", "b"]
    elif kind == "mels":
        doc["audio_train"], doc["audio_test"] = doc["audio_train"][:, :64], doc["audio_test"][:, :64]
    elif kind == "custom":
        doc["extra"] = NotATensor()
    return doc


@pytest.mark.parametrize("kind, error", [
    ("list", r"holds a list, not a dict; expected a torch.save file of a dict with audio_train"),
    ("missing", r"lacks key\(s\) labels_test"),
    ("lengths", r"train split has 6 audio maps, 6 images and 5 labels; expected the same N"),
    ("images", r"images_train is 6×1×24×24 torch.uint8; expected N×3×H×W"),
    ("labels", r"labels range 0..2; expected class ids 0..1 \(classes lists 2 names\)"),
    ("mels", r"its log-mel maps are 64×56, but n_mels=128"),
    ("custom", r"torch.load\(weights_only=True\) cannot read it"),
])
def test_avdd_tensors_bad_files_say_what_was_expected(tmp_path, kind, error):
    path = save(_broken(kind), tmp_path / "bad.pt")
    with pytest.raises(DataError, match=f"{path}: .*{error}"):
        read_avdd_tensors(AVDDTensorsConfig(path=path))


def test_avdd_tensors_random_bytes_and_config_check(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match="noise.pt: torch.load"):
        read_avdd_tensors(AVDDTensorsConfig(path=str(path)))
    assert "dataset.path is required" in AVDDTensorsConfig().check("dataset")[0]
    assert "does not exist" in AVDDTensorsConfig(path=str(tmp_path / "none.pt")).check("dataset")[0]


# --------------------------------------------------------------------------------- through a recipe


def recipe(dataset: dict) -> dict:
    return {"name": "av-loader-test", "domain": "audio_visual", "seed": 0, "device": "cpu", "dataset": dataset,
            "network": {"name": "av_convnet", "depth": 2, "width": 8}, "budget": {"ipc": 1},
            "method": {"name": "av_dm", "iterations": 1}}


def test_a_loader_goes_through_a_recipe(pairs):
    from mmdd.plugins import get_domain
    from mmdd.run import load_config

    cfg = load_config(recipe({"name": "av_pairs", "root": str(pairs), "size": 32, "cache_dir": None,
                              "val_fraction": 0.5}))
    data = get_domain("audio_visual").load_data(cfg.dataset)
    assert data.class_names == ["bird", "car"] and (len(data.train), len(data.val), len(data.test)) == (2, 2, 2)
    assert data.train.inputs.audio_shape == (1, 128, 56) and data.train.inputs.frame_shape == (3, 32, 32)
    assert data.info["loader"]["name"] == "av_pairs" and "val: 50% of train" in data.info["split_rule"]
    with pytest.raises(ConfigError, match=r"dataset.root: folder .* does not exist"):
        load_config(recipe({"name": "music21", "root": str(pairs / "nowhere")}))


def test_avdd_tensors_through_a_recipe(tmp_path):
    from mmdd.plugins import get_domain
    from mmdd.run import load_config

    path = save(avdd_doc(), tmp_path / "avdd.pt")
    cfg = load_config(recipe({"name": "avdd_tensors", "path": path, "train_per_class": 1}))
    try:
        data = get_domain("audio_visual").load_data(cfg.dataset)
    except AttributeError as exc:
        if "'Split' object has no attribute 'waveforms'" in str(exc):
            pytest.skip("AudioVisualDomain.load_data does not pass a DataSplits through yet (see avdd_tensors.py)")
        raise
    assert isinstance(data.train.inputs, AVBatch) and len(data.train) == 3 and data.info["train_per_class"] == 1
