"""The AVDD authors' preprocessed tensors: log-mel maps and frames already cut, in one ``torch.save`` file.

The file (``path``) is read with ``torch.load(path, map_location="cpu", weights_only=True)`` only —
tensors, lists, strings and numbers load; a file holding other Python objects (a pickled class,
numpy arrays) is refused with a DataError (re-save it as a dict of tensors). It must be a dict::

    audio_train   N×128×56 or N×1×128×56  float   log-mel maps in dB (one second each)
    images_train  N×3×H×W                 uint8 or float
    labels_train  N                       integer class ids 0..K-1
    audio_test / images_test / labels_test     the same for the test split (required)
    audio_val / images_val / labels_val        optional: a validation split (all three, or none)
    classes       optional: K class names (else "0".."K-1", K = the largest label + 1)

**No decoding**: unlike the other loaders this one returns a :class:`~mmdd.core.data.DataSplits`
already in the distillation space — ``Split(AVBatch(audio N×1×M×T float32, frames N×3×H×W float32),
labels)`` — with the ``info`` keys :func:`~mmdd.domains.audio_visual.to_distillation_space` writes
(``audio_visual``, ``skipped_files``, ``skipped``, ``split_rule``, ``loader``), so the domain uses it
as it is (it needs :meth:`AudioVisualDomain.load_data` to pass a ``DataSplits`` through).

* **Audio**: maps taken as dB log-mels of one second; their M×T must be what ``n_mels``,
  ``sample_rate`` and ``hop_length`` give (M = n_mels, T = sample_rate // hop_length + 1; the
  defaults give the authors' 128×56), since a render inverts them with these options. With
  ``standardize_audio`` they are standardised with the training split's mean and std (one number
  each, after any ``val_fraction`` hold-out), like decoded audio.
* **Frames**, told apart by dtype and range (one decision for the whole file, written to
  ``info["loader"]["frames_input"]``): ``uint8`` — pixels 0-255; float with a negative value —
  *already normalised* (taken to be with ``frame_mean`` / ``frame_std``, the authors' by default) and
  kept as they are; float in [0, 1] — pixels in [0, 1]; other non-negative float — pixels 0-255.
  Pixels are normalised here per channel with ``frame_mean`` / ``frame_std``. ``size`` null (this
  loader's default) keeps the file's H×W; a number resizes the (normalised) frames to ``size``²
  (bilinear, antialias).

A file that is not such a dict, lacks a key, has a wrong shape or dtype, mismatched lengths, labels
out of range or non-finite values is a DataError naming the file and what was expected.
``second``, ``on_error`` and ``cache_dir`` do not apply (nothing is decoded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdd.core.data import DataSplits, Split, check_data_file
from mmdd.core.errors import DataError
from mmdd.core.loading import first_line, hold_out_val, shape_text
from mmdd.core.registry import register_dataset

from .batch import AVBatch
from .configs import AVOptions
from .features import analysis_options, normalize_frames

EXPECTED = ("a torch.save file of a dict with audio_train (N×M×T or N×1×M×T float log-mel maps), images_train "
            "(N×3×H×W, uint8 or float), labels_train (N integer labels), the same with _test (and optionally "
            "_val), and optionally classes (a list of names)")
PARTS = ("audio", "images", "labels")


@dataclass
class AVDDTensorsConfig(AVOptions):
    """The AVDD authors' preprocessed tensors in one file (``path``), read with ``weights_only=True``.
    ``size`` null keeps the file's frame size; ``n_mels`` / ``sample_rate`` / ``hop_length`` must
    describe its maps (the defaults: 128×56)."""

    name: str = "avdd_tensors"
    path: str | None = None
    size: int | None = None

    def check(self, path: str) -> list[str]:
        problems = []
        if self.path is None or not str(self.path).strip():
            problems.append(f"{path}.path is required: {EXPECTED}")
        elif not Path(self.path).expanduser().is_file():
            problems.append(f"{path}.path: file {self.path!r} does not exist; expected {EXPECTED}")
        return problems + self.av_problems(path)


def read_tensor_file(path: Path) -> dict:
    """The dict of ``path`` (``torch.load(..., weights_only=True)``), else a DataError naming the file."""
    check_data_file(path, EXPECTED)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is bad data
        raise DataError(f"{path}: torch.load(weights_only=True) cannot read it ({first_line(exc)}); expected "
                        f"{EXPECTED} - only tensors, lists, strings and numbers load: re-save other objects "
                        "(a custom class, numpy arrays) as tensors") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: holds a {type(doc).__name__}, not a dict; expected {EXPECTED}")
    return doc


def _split_tensors(doc: dict, path: Path, split: str) -> tuple[Tensor, Tensor, Tensor]:
    keys = [f"{p}_{split}" for p in PARTS]
    missing = [k for k in keys if k not in doc]
    if missing:
        raise DataError(f"{path}: lacks key(s) {', '.join(missing)} (has {sorted(map(str, doc))}); expected {EXPECTED}")
    audio, images, labels = (doc[k] for k in keys)
    for key, value in zip(keys, (audio, images, labels)):
        if not isinstance(value, Tensor):
            raise DataError(f"{path}: {key} is a {type(value).__name__}, not a tensor; expected {EXPECTED}")
    if audio.dim() == 4 and audio.shape[1] == 1:
        audio = audio[:, 0]
    if audio.dim() != 3 or not audio.is_floating_point():
        raise DataError(f"{path}: audio_{split} is {shape_text(audio.shape)} {audio.dtype}; expected N×M×T or "
                        "N×1×M×T float log-mel maps (e.g. N×128×56)")
    if images.dim() != 4 or images.shape[1] != 3 or not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise DataError(f"{path}: images_{split} is {shape_text(images.shape)} {images.dtype}; expected N×3×H×W "
                        "uint8 or float frames")
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 1 or labels.dtype == torch.bool or labels.is_complex():
        raise DataError(f"{path}: labels_{split} is {shape_text(labels.shape)} {labels.dtype}; expected N integer "
                        "class ids")
    if labels.is_floating_point():
        if not bool(torch.isfinite(labels).all()) or not bool((labels == labels.round()).all()):
            raise DataError(f"{path}: labels_{split} holds non-integer values; expected integer class ids")
    n = {int(audio.shape[0]), int(images.shape[0]), int(labels.shape[0])}
    if len(n) != 1:
        raise DataError(f"{path}: {split} split has {audio.shape[0]} audio maps, {images.shape[0]} images and "
                        f"{labels.shape[0]} labels; expected the same N for all three")
    if int(labels.shape[0]) == 0:
        raise DataError(f"{path}: the {split} split is empty; expected at least one sample")
    for key, value in ((f"audio_{split}", audio), (f"images_{split}", images)):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise DataError(f"{path}: {key} holds NaN or infinite values; expected finite numbers")
    return audio.float(), images, labels.long()


def _frames_input(images: list[Tensor], path: Path) -> str:
    if len({x.dtype for x in images}) != 1:
        raise DataError(f"{path}: the splits' images have dtypes {sorted(str(x.dtype) for x in images)}; expected one "
                        "dtype (uint8 or float) for every split")
    if images[0].dtype == torch.uint8:
        return "uint8 pixels 0-255"
    if any(bool((x < 0).any()) for x in images):
        return "float, already normalised"
    if all(float(x.max()) <= 1.0 for x in images if x.numel()):
        return "float pixels in [0, 1]"
    return "float pixels 0-255"


def _to_frames(images: Tensor, kind: str, cfg, size: int | None) -> Tensor:
    if kind == "float, already normalised":
        frames = images.float()
    else:
        scale = 1.0 if kind == "float pixels in [0, 1]" else 255.0
        pixels = images.float() / scale * 255.0  # normalize_frames divides by 255
        frames = normalize_frames(pixels, cfg.frame_mean, cfg.frame_std)
    if size is not None and tuple(frames.shape[-2:]) != (size, size):
        frames = torch.cat([F.interpolate(frames[i:i + 256], size=(size, size), mode="bilinear", antialias=True,
                                          align_corners=False) for i in range(0, frames.shape[0], 256)])
    return frames.contiguous()


def load_avdd_tensors(cfg: AVDDTensorsConfig) -> DataSplits:
    """The file's splits in the distillation space (see the module docstring)."""
    path = Path(cfg.path).expanduser()
    doc = read_tensor_file(path)
    names = ["train", "test"] + (["val"] if any(f"{p}_val" in doc for p in PARTS) else [])
    raw = {s: _split_tensors(doc, path, s) for s in names}

    shapes = {s: tuple(a.shape[1:]) for s, (a, _, _) in raw.items()}
    frame_shapes = {s: tuple(i.shape[2:]) for s, (_, i, _) in raw.items()}
    if len(set(shapes.values())) != 1 or len(set(frame_shapes.values())) != 1:
        raise DataError(f"{path}: the splits' audio maps ({shapes}) or frames ({frame_shapes}) differ in shape; "
                        "expected one M×T and one H×W for every split")
    m, t = shapes["train"]
    frames_expected = cfg.sample_rate // cfg.hop_length + 1
    if (m, t) != (cfg.n_mels, frames_expected):
        raise DataError(f"{path}: its log-mel maps are {m}×{t}, but n_mels={cfg.n_mels}, sample_rate={cfg.sample_rate}"
                        f", hop_length={cfg.hop_length} give {cfg.n_mels}×{frames_expected} per second; expected "
                        "maps made with these options - set them to the analysis the file was made with (the "
                        "authors': n_mels 128, sample_rate 11025, hop_length 200 -> 128×56)")

    classes = doc.get("classes")
    top = max(int(lab.max()) for _, _, lab in raw.values())
    low = min(int(lab.min()) for _, _, lab in raw.values())
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)) or not classes:
            raise DataError(f"{path}: classes is {type(classes).__name__}; expected a non-empty list of class names")
        class_names = [str(c) for c in classes]
        if len(set(class_names)) != len(class_names):
            raise DataError(f"{path}: classes repeats a name; expected {len(class_names)} distinct class names")
    else:
        class_names = [str(k) for k in range(top + 1)]
    if low < 0 or top >= len(class_names):
        raise DataError(f"{path}: labels range {low}..{top}; expected class ids 0..{len(class_names) - 1}"
                        + (f" (classes lists {len(class_names)} names)" if classes is not None else ""))

    kind = _frames_input([i for _, i, _ in raw.values()], path)
    size = cfg.size
    splits = {s: Split(AVBatch(a[:, None], _to_frames(i, kind, cfg, size)), lab) for s, (a, i, lab) in raw.items()}
    data = DataSplits(train=splits["train"], test=splits["test"], val=splits.get("val"),
                      num_classes=len(class_names), class_names=class_names)
    rule = "given: the file's train/" + ("val/" if "val" in splits else "") + "test tensors"
    data.info["split_rule"] = rule
    data = hold_out_val(data, cfg.val_fraction, cfg.split_seed)

    if cfg.standardize_audio:
        train_audio = data.train.inputs.audio
        mean, std = float(train_audio.mean()), float(train_audio.std().clamp_min(1e-6))
    else:
        mean, std = 0.0, 1.0

    def standardised(split: Split | None) -> Split | None:
        if split is None:
            return None
        return Split(AVBatch((split.inputs.audio - mean) / std, split.inputs.frames), split.labels)

    data.train, data.val, data.test = standardised(data.train), standardised(data.val), standardised(data.test)
    opts = analysis_options(cfg)
    opts["size"] = int(data.train.inputs.frames.shape[-2])
    opts["audio_normalization"] = {"mean": mean, "std": std}
    data.info = {"audio_visual": opts, "skipped_files": 0, "skipped": [], "split_rule": data.info["split_rule"],
                 "loader": {"name": "avdd_tensors", "path": str(path), "frames_input": kind,
                            "file_frame_size": list(frame_shapes["train"]), "audio_map": [m, t],
                            "classes": "from the file" if classes is not None else "0..K-1 (no classes key)",
                            "reading": "preprocessed tensors (torch.load weights_only=True); nothing decoded"},
                 "store": {"storage": "memory"}}  # a torch.load of one file: held in RAM
    return data


@register_dataset("audio_visual", "avdd_tensors", config=AVDDTensorsConfig)
def read_avdd_tensors(cfg: AVDDTensorsConfig) -> DataSplits:
    return load_avdd_tensors(cfg)
