"""``mmdd export``: every format read back by the tool it is meant for.

The format writers are tested on hand-made Viewables (fast, every kind and label type); one tiny real
image run goes end to end through the command line. Quantisation bounds: uint8 PNG / uint8 video
arrays hold a value in [0, 1] to within 0.5/255; 16-bit PCM WAV to within one step (1/32767);
float32 columns, NIfTI volumes, soft labels and embeddings come back exactly.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import mmdd
from mmdd import export
from mmdd.cli import main
from mmdd.core.errors import RunError
from mmdd.core.viewable import Viewable

from conftest import TINY

PNG_TOL = 0.5 / 255 + 1e-6
WAV_TOL = 1 / 32767 + 1e-6


def _images(n: int, c: int = 3, h: int = 6, w: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _soft(n: int, k: int, seed: int = 1) -> torch.Tensor:
    return torch.softmax(3 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed)), dim=1)


def _load_hf(folder):
    import datasets

    return datasets.load_from_disk(str(folder))


def _pil_to_tensor(img) -> torch.Tensor:
    array = np.asarray(img, dtype=np.float32) / 255
    return torch.from_numpy(array if array.ndim == 3 else array[..., None]).permute(2, 0, 1)


def _image_folder(folder):
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import ToTensor

    return ImageFolder(str(folder), transform=ToTensor())


# --------------------------------------------------------------------------- images


def test_hard_images_round_trip_through_hf_and_image_folder(tmp_path):
    v = Viewable("image", torch.tensor([0, 0, 1, 2, 2, 1]), ["cat", "dog", "bird"], images=_images(6),
                 learned_lr=0.0123)
    ds = _load_hf(export.write_hf(v, tmp_path / "hf", {"recipe": "r"}))
    assert ds.features["label"].names == ["cat", "dog", "bird"] and ds["label"] == v.labels.tolist()
    got = torch.stack([_pil_to_tensor(img) for img in ds["image"]])
    assert (got - v.images).abs().max() <= PNG_TOL
    meta = json.loads(ds.info.description)
    assert meta["recipe"] == "r" and meta["learned_lr"] == 0.0123 and meta["label_type"] == "hard"

    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    folder = _image_folder(out)
    assert folder.classes == ["00_cat", "01_dog", "02_bird"]  # sorted folder order = class order
    index = {p: i for i, p in enumerate(sorted(str(p) for p in out.rglob("*.png")))}
    assert len(folder) == len(v) == len(index)
    labels = json.loads((out / "labels.json").read_text())
    assert labels["learned_lr"] == 0.0123 and labels["class_names"] == ["cat", "dog", "bird"]
    for (path, label), (x, y) in zip(folder.samples, folder):
        i = next(e["index"] for e in labels["files"] if path.endswith(e["file"]))
        assert y == label == int(v.labels[i])
        assert (x - v.images[i]).abs().max() <= PNG_TOL


def test_grey_images_with_soft_labels_round_trip_exactly(tmp_path):
    soft = _soft(5, 3)
    v = Viewable("image", soft, ["a", "b", "c"], images=_images(5, c=1))
    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert torch.equal(torch.tensor(ds["soft_label"], dtype=torch.float32), soft)  # exact
    assert ds["label"] == soft.argmax(1).tolist()
    assert ds[0]["image"].mode == "L"
    got = torch.stack([_pil_to_tensor(img) for img in ds["image"]])
    assert (got - v.images).abs().max() <= PNG_TOL

    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    files = json.loads((out / "labels.json").read_text())["files"]
    assert torch.equal(torch.tensor([f["soft_label"] for f in files], dtype=torch.float32), soft)  # exact
    folder = _image_folder(out)  # ImageFolder's loader makes every picture RGB
    for path, _ in folder.samples:
        i = next(f["index"] for f in files if path.endswith(f["file"]))
        x = folder.transform(folder.loader(path))
        assert (x - v.images[i].expand(3, -1, -1)).abs().max() <= PNG_TOL


def test_multi_label_set_goes_to_all_with_its_multi_hot_rows(tmp_path):
    targets = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    v = Viewable("image", targets, ["x", "y", "z"], multi_label=True, images=_images(3))
    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    labels = json.loads((out / "labels.json").read_text())
    assert labels["label_type"] == "multi_label" and "class_folders" not in labels
    assert [f["file"] for f in labels["files"]] == ["all/0000.png", "all/0001.png", "all/0002.png"]
    assert [f["labels"] for f in labels["files"]] == targets.tolist()
    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert ds["labels"] == targets.tolist() and "label" not in ds.features


# --------------------------------------------------------------------------- audio, video, volumes, pairs


def test_audio_wavs_within_16_bit_and_features_exact(tmp_path):
    import io

    import soundfile as sf

    gen = torch.Generator().manual_seed(2)
    waves = torch.rand(4, 800, generator=gen) * 2 - 1
    waves[0, :2] = torch.tensor([1.0, -1.0])
    features = torch.randn(4, 2, 5, 7, generator=gen)
    v = Viewable("audio", torch.tensor([1, 0, 1, 0]), ["no", "yes"], images=_images(4, 1), waveforms=waves,
                 sample_rate=8000, features=features)
    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    labels = json.loads((out / "labels.json").read_text())
    assert labels["sample_rate"] == 8000
    for f in labels["files"]:
        data, rate = sf.read(out / f["file"], dtype="float32")
        assert rate == 8000 and sf.info(out / f["file"]).subtype == "PCM_16"
        assert np.abs(data - waves[f["index"]].numpy()).max() <= WAV_TOL
        assert f["file"].startswith(f"{f['label']:02d}_")
    assert np.array_equal(np.load(out / "features.npy"), features.numpy())

    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert ds.features["audio"].sampling_rate == 8000 and ds.features["audio"].decode is False
    data, rate = sf.read(io.BytesIO(ds[2]["audio"]["bytes"]), dtype="float32")
    assert rate == 8000 and np.abs(data - waves[2].numpy()).max() <= WAV_TOL
    assert torch.equal(torch.tensor(np.stack(ds.with_format("numpy")["features"])), features)
    assert ds["label"] == [1, 0, 1, 0]


def _moving_clips(n: int, c: int, t: int, h: int, w: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = torch.stack([(x + 0.05 * k + y) / 2.5 for k in range(t)])  # T×H×W, smooth
    return frames.expand(n, c, t, h, w).clone().clamp(0, 1)


def test_video_mp4_reads_back_in_decord_and_hf_holds_uint8_frames(tmp_path):
    v = Viewable("video", torch.tensor([0, 1]), ["left", "right"], images=_images(2), fps=5,
                 videos=_moving_clips(2, 3, 8, 15, 16))
    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    labels = json.loads((out / "labels.json").read_text())
    assert labels["video"]["file_height"] == 16 and labels["video"]["file_width"] == 18  # even, decord-safe
    import decord

    for f in labels["files"]:
        reader = decord.VideoReader(str(out / f["file"]))
        clip = reader.get_batch(list(range(len(reader)))).asnumpy()
        assert len(reader) == 8 and clip.shape == (8, 16, 18, 3)
        crop = torch.from_numpy(clip[:, :15, :16]).float().permute(3, 0, 1, 2) / 255  # lossy: a loose check
        assert (crop - v.videos[f["index"]]).abs().mean() < 0.05

    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert ds.features["video"].dtype == "uint8" and json.loads(ds.info.description)["fps"] == 5
    clips = ds.with_format("numpy", dtype=np.uint8)[:]["video"]  # numpy's formatter makes ints int64 unless told
    assert clips.dtype == np.uint8 and clips.shape == (2, 8, 15, 16, 3)
    assert (torch.from_numpy(clips).float().permute(0, 4, 1, 2, 3) / 255 - v.videos).abs().max() <= PNG_TOL


@pytest.mark.parametrize("width", [8, 16, 24, 48, 72])
def test_mp4_widths_decord_misreads_are_padded(tmp_path, width):
    import decord

    path = export.write_mp4(_moving_clips(1, 1, 2, 4, width)[0], tmp_path / "c.mp4", fps=8)
    frames = decord.VideoReader(str(path)).get_batch([0, 1]).asnumpy()
    assert frames.shape == (2, *export.padded_size(4, width), 3)


def test_volumes_round_trip_exactly_as_nifti_and_hf(tmp_path):
    import nibabel as nib

    volumes = torch.rand(3, 1, 4, 5, 6, generator=torch.Generator().manual_seed(3))
    v = Viewable("volume", torch.tensor([0, 1, 1]), ["benign", "malignant"], images=_images(3, 1),
                 volumes=volumes)
    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    files = json.loads((out / "labels.json").read_text())["files"]
    assert files[0]["file"] == "00_benign/0000.nii.gz"
    for f in files:
        array = np.asarray(nib.load(out / f["file"]).dataobj)
        assert array.dtype == np.float32 and np.array_equal(array, volumes[f["index"], 0].numpy())
    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert torch.equal(torch.tensor(np.stack(ds.with_format("numpy")["volume"])), volumes)


def test_pairs_export_images_and_text_embeddings(tmp_path):
    text = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    v = Viewable("pair", None, images=_images(3), text=text, learned_lr=0.5)
    out = export.write_folder(v, _mkdir(tmp_path / "folder"))
    assert sorted(p.name for p in (out / "images").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert np.array_equal(np.load(out / "text_embeddings.npy"), text.numpy())
    labels = json.loads((out / "labels.json").read_text())
    assert labels["label_type"] == "none" and labels["learned_lr"] == 0.5
    from PIL import Image

    for f in labels["files"]:
        assert (_pil_to_tensor(Image.open(out / f["file"])) - v.images[f["index"]]).abs().max() <= PNG_TOL

    ds = _load_hf(export.write_hf(v, tmp_path / "hf"))
    assert set(ds.features) == {"image", "text_embedding"}
    assert torch.equal(torch.tensor(ds["text_embedding"], dtype=torch.float32), text)


# --------------------------------------------------------------------------- a real run, through the command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    recipe = copy.deepcopy(TINY)
    recipe["method"]["iterations"] = 2
    return mmdd.distill(recipe, output_dir=tmp_path_factory.mktemp("export") / "run", evaluate=False,
                        progress=False)


def test_cli_exports_a_real_run_in_every_format(tiny_run, capsys):
    run_dir = tiny_run.dir
    view = export.run_viewable(tiny_run)
    for fmt in export.FORMATS:
        assert main(["export", str(run_dir), "--format", fmt]) == 0
        assert capsys.readouterr().out.strip() == str(run_dir / "export" / fmt)

    ds = _load_hf(run_dir / "export" / "hf")
    assert ds["label"] == view.labels.tolist() and ds.features["label"].names == view.class_names
    got = torch.stack([_pil_to_tensor(img) for img in ds["image"]])
    assert (got - view.images).abs().max() <= PNG_TOL
    meta = json.loads(ds.info.description)
    assert (meta["recipe"], meta["domain"], meta["dataset"]) == ("tiny", "image", "digits")
    assert meta["data"] == tiny_run.manifest["data"]

    folder = _image_folder(run_dir / "export" / "folder")
    files = json.loads((run_dir / "export" / "folder" / "labels.json").read_text())["files"]
    assert len(folder) == len(view)
    for (path, label), (x, _) in zip(folder.samples, folder):
        i = next(f["index"] for f in files if path.endswith(f["file"]))
        assert label == int(view.labels[i])  # every class has a sample: ImageFolder's index is the class
        assert (x - view.images[i].expand(3, -1, -1)).abs().max() <= PNG_TOL

    native, original = mmdd.load(run_dir / "export" / "safetensors"), mmdd.load(run_dir)
    assert len(native) == len(original)
    for a, b in zip(native[0], original[0]):
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_cli_refuses_a_non_empty_folder_without_overwrite(tiny_run, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(tiny_run.dir), "--format", "safetensors", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # untouched

    assert main(["export", str(tiny_run.dir), "--format", "safetensors", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["distilled.safetensors", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no temporary folder left behind


def test_a_failed_export_leaves_the_previous_one_and_no_temporary_folder(tiny_run, tmp_path, monkeypatch):
    out = export.export_run(tiny_run.dir, "safetensors", out=tmp_path / "out")

    def broken(view, folder, meta):
        (folder / "half.png").write_bytes(b"")
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_folder", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_run(tiny_run.dir, "folder", out=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["distilled.safetensors", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_to_replace_the_run_itself(tiny_run):
    for target in (tiny_run.dir, tiny_run.dir.parent):
        with pytest.raises(RunError, match="would replace the run directory"):
            export.export_run(tiny_run.dir, "safetensors", out=target, overwrite=True)
    assert (tiny_run.dir / "manifest.json").exists()


def _mkdir(path):
    path.mkdir(parents=True)
    return path
