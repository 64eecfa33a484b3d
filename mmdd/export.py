"""``mmdd export RUN --format {hf,folder,safetensors}``: a run's distilled set in a format other tools read.

    export_run("runs/quickstart", "hf")            # → runs/quickstart/export/hf (datasets.load_from_disk)
    export_run("runs/quickstart", "folder")        # → class folders of PNG / WAV / MP4 / NIfTI + labels.json
    export_run("runs/quickstart", "safetensors")   # → distilled.safetensors + manifest.json (mmdd.load)

Every media format is written from the domain's :class:`~mmdd.core.viewable.Viewable` (pixels, frames
and volumes in [0, 1], waveforms in [-1, 1]), one small function per format:

- :func:`write_hf`: a Hugging Face ``datasets`` dataset (``Dataset.save_to_disk``). Images: ``Image``
  (PNG, uint8). Audio: ``Audio(decode=False)`` holding 16-bit PCM WAV bytes (``datasets`` ≥ 4 encodes
  and decodes audio only through torchcodec, which needs FFmpeg libraries; stored undecoded, any
  machine reads the bytes with soundfile, and one with torchcodec decodes them with
  ``ds.cast_column("audio", Audio())``), plus ``features``: the MFCC maps mmdd trains on (``Array3D``
  float32, C×F×T). Video: ``Array4D`` uint8 T×H×W×C (one array per clip, the layout video readers
  return; a list of ``Image`` would PNG-code every frame and give PIL images back). Volumes:
  ``Array4D`` float32 C×D×H×W. Pairs: ``image`` + ``text_embedding``. Labels: ``label``
  (``ClassLabel``), ``soft_label`` (float32 rows) when soft, ``labels`` (multi-hot) when multi-label.
  The recipe, domain, dataset, learned lr and the manifest's ``data`` section are JSON in
  ``ds.info.description`` (what ``load_from_disk`` gives back: ``json.loads(ds.info.description)``).
- :func:`write_folder`: ``OUT/<NN>_<class>/NNNN.{png,wav,mp4,nii.gz}`` (torchvision's ``ImageFolder``
  reads the PNGs; the ``NN`` index prefix makes its sorted folder order the class order), ``OUT/all/``
  for multi-label sets, ``OUT/images/`` + ``text_embeddings.npy`` for pairs, and ``labels.json``
  (class names, per file its label / soft-label row / multi-hot row, the learned lr).
- :func:`write_safetensors`: the run's own ``distilled.safetensors`` and ``manifest.json`` (``mmdd.load``).

The output folder is built in a temporary sibling and renamed into place only when complete; an
existing non-empty folder is replaced only with ``overwrite``. Only the standard library is imported at
module level: ``mmdd --help`` imports this module to register the sub-command.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from mmdd.core.viewable import Viewable
    from mmdd.run import Run

FORMATS = ("hf", "folder", "safetensors")
LABELS_JSON = "labels.json"

#: what the values of each kind mean (recorded with the export)
VALUES = {
    "image": "pixels in [0, 1], de-normalised; stored as uint8 PNG (|error| <= 0.5/255)",
    "audio": "waveform in [-1, 1] inverted from the MFCC maps, 16-bit PCM; features: the stored maps, de-normalised",
    "video": "frames in [0, 1], de-normalised; stored as uint8",
    "volume": "each volume stretched to [0, 1] by its own minimum and maximum (for viewing, or training with "
              "per-sample normalisation); float32",
    "pair": "image pixels in [0, 1], uint8 PNG; text: the distilled caption embedding, float32",
}


# --------------------------------------------------------------------------- what the export says about itself


def label_type(v: Viewable) -> str:
    """``hard``, ``soft``, ``multi_label`` or ``none`` (pairs)."""
    if v.targets is None:
        return "none"
    if v.multi_label:
        return "multi_label"
    return "soft" if v.soft else "hard"


def class_names(v: Viewable) -> list[str]:
    """The class (or label) names, one per class index; numbers where the manifest names none."""
    if v.targets is None:
        return []
    count = int(v.targets.shape[1]) if v.targets.dim() == 2 else int(v.targets.max()) + 1 if len(v) else 0
    count = max(count, len(v.class_names))
    return [v.class_names[i] if i < len(v.class_names) else str(i) for i in range(count)]


def view_metadata(v: Viewable) -> dict:
    """What the Viewable itself says: kind, count, label type, class names, learned lr, rate and fps."""
    meta = {"kind": v.kind, "num_samples": len(v), "label_type": label_type(v), "class_names": class_names(v),
            "learned_lr": v.learned_lr, "values": VALUES.get(v.kind, "")}
    if v.kind == "audio":
        meta["sample_rate"] = int(v.sample_rate)
    if v.kind == "video":
        meta["fps"] = int(v.fps)
    return meta


def run_metadata(run: Run) -> dict:
    """What the run says: recipe, domain, dataset, method and the manifest's ``data`` section."""
    from mmdd import __version__

    cfg = run.config
    return {"mmdd_version": __version__, "recipe": cfg.name, "domain": cfg.domain, "dataset": cfg.dataset.name,
            "method": cfg.method.name, "source_run": str(Path(run.dir).resolve()),
            "data": run.manifest.get("data", {})}


# --------------------------------------------------------------------------- small converters


def _uint8(x):
    """A float tensor in [0, 1] → uint8 numpy, rounded (the PNG quantisation: |error| ≤ 0.5/255)."""
    from mmdd.core.media import as_uint8

    return as_uint8(x)


def _width(count: int, least: int) -> int:
    return max(least, len(str(max(count - 1, 0))))


def class_folders(v: Viewable) -> list[str]:
    """One folder name per class: ``NN_<class>`` (index first, so sorted order is class order and two
    names that become the same file name stay apart)."""
    from mmdd.core.viewable import safe_name

    names = class_names(v)
    width = _width(len(names), 2)
    return [f"{c:0{width}d}_{safe_name(name)}" for c, name in enumerate(names)]


# --------------------------------------------------------------------------- hf: a Hugging Face dataset


def hf_columns(v: Viewable) -> tuple[dict, dict, dict]:
    """The columns of the ``hf`` export: (data, features as built, features as saved). They differ only
    for audio, built as plain ``{bytes, path}`` and cast to ``Audio(decode=False)`` (``datasets`` ≥ 4
    encodes through ``Audio`` only with torchcodec installed)."""
    import datasets as hf
    import numpy as np

    from mmdd.core.media import to_uint8, wav_bytes

    data: dict = {}
    built: dict = {}
    final: dict = {}
    n = len(v)
    if v.kind in ("image", "pair"):
        data["image"] = [to_uint8(v.images[i]) for i in range(n)]
        built["image"] = final["image"] = hf.Image()
    elif v.kind == "audio":
        data["audio"] = [{"bytes": wav_bytes(v.waveforms[i], v.sample_rate), "path": None} for i in range(n)]
        built["audio"] = {"bytes": hf.Value("binary"), "path": hf.Value("string")}
        final["audio"] = hf.Audio(sampling_rate=int(v.sample_rate), decode=False)
        features = v.features.detach().cpu().float().numpy()
        data["features"] = list(features)
        built["features"] = final["features"] = hf.Array3D(shape=tuple(features.shape[1:]), dtype="float32")
    elif v.kind == "video":
        clips = _uint8(v.videos).transpose(0, 2, 3, 4, 1)  # N×C×T×H×W → N×T×H×W×C
        data["video"] = list(clips)
        built["video"] = final["video"] = hf.Array4D(shape=tuple(clips.shape[1:]), dtype="uint8")
    elif v.kind == "volume":
        volumes = v.volumes.detach().cpu().float().numpy()
        data["volume"] = list(volumes)
        built["volume"] = final["volume"] = hf.Array4D(shape=tuple(volumes.shape[1:]), dtype="float32")
    if v.kind == "pair":
        data["text_embedding"] = list(v.text.detach().cpu().float().numpy())
        built["text_embedding"] = final["text_embedding"] = hf.Sequence(hf.Value("float32"))
    kind = label_type(v)
    if kind in ("hard", "soft"):
        names = class_names(v)
        if len(set(names)) != len(names):  # ClassLabel needs distinct names
            names = class_folders(v)
        data["label"] = v.labels.tolist()
        built["label"] = final["label"] = hf.ClassLabel(names=names)
    if kind == "soft":
        data["soft_label"] = list(v.targets.detach().cpu().float().numpy().astype(np.float32))
        built["soft_label"] = final["soft_label"] = hf.Sequence(hf.Value("float32"))
    if kind == "multi_label":
        data["labels"] = v.targets.detach().cpu().long().tolist()
        built["labels"] = final["labels"] = hf.Sequence(hf.Value("int64"))
    return data, built, final


def write_hf(v: Viewable, folder: Path, meta: dict | None = None) -> Path:
    """``folder`` ← ``Dataset.save_to_disk`` of the set; metadata JSON in ``info.description``."""
    import datasets as hf

    data, built, final = hf_columns(v)
    description = json.dumps({**(meta or {}), **view_metadata(v)})
    bars = hf.is_progress_bar_enabled()
    hf.disable_progress_bars()
    try:
        ds = hf.Dataset.from_dict(data, info=hf.DatasetInfo(description=description, features=hf.Features(built)))
        if final != built:
            ds = ds.cast(hf.Features(final))
        ds.save_to_disk(str(folder))
    finally:
        if bars:
            hf.enable_progress_bars()
    return Path(folder)


# --------------------------------------------------------------------------- folder: files the usual loaders read


def _decord_reads(width: int) -> bool:
    """decord 0.6 returns frames of a wrong shape when the 32-pixel-aligned RGB row (``ceil(w/32)·32·3``
    bytes) is a whole multiple of the width other than 3 bytes a pixel (widths 2-8, 12, 16, 24, 48, 72)."""
    aligned = -(-width // 32) * 32 * 3
    return width % 32 == 0 or aligned % width != 0


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The frame size an MP4 gets: even (yuv420p) and a width decord reads (:func:`_decord_reads`)."""
    height, width = height + height % 2, width + width % 2
    while not _decord_reads(width):
        width += 2
    return height, width


def video_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_mp4(clip, path: Path, fps: int) -> Path:
    """One clip C×T×H×W in [0, 1] → an MP4 (H.264, else MPEG-4 part 2; yuv420p), grey clips as RGB. The
    frame is padded at the bottom and right by repeating the last row / column to :func:`padded_size`."""
    import numpy as np

    from mmdd.core.media import encode_video

    frames = _uint8(clip).transpose(1, 2, 3, 0)  # T×H×W×C
    if frames.shape[-1] != 3:
        frames = frames[..., :3] if frames.shape[-1] > 3 else np.repeat(frames[..., :1], 3, axis=-1)
    height, width = padded_size(*frames.shape[1:3])
    frames = np.pad(frames, ((0, 0), (0, height - frames.shape[1]), (0, width - frames.shape[2]), (0, 0)),
                    mode="edge")
    codec = video_codec()
    if codec == "libx264":  # near lossless, still the common High profile
        return encode_video(path, frames, fps, codec, options={"crf": "12"})
    return encode_video(path, frames, fps, codec, options={"qscale": "1"}, bit_rate=4_000_000)


def write_nifti(volume, path: Path) -> Path:
    """One volume C×D×H×W → ``.nii.gz``, float32, identity affine; voxel array D×H×W (one channel) or
    D×H×W×C, the order mmdd's ``medical_folder`` reads back."""
    import nibabel as nib
    import numpy as np

    array = volume.detach().cpu().float().numpy()
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 3, 0)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array, dtype=np.float32), np.eye(4)), str(path))
    return Path(path)


def write_folder(v: Viewable, folder: Path, meta: dict | None = None) -> Path:
    """``folder`` ← one file per sample in class folders, ``labels.json`` beside them."""
    import numpy as np

    from mmdd.core.media import write_png, write_wav

    folder = Path(folder)
    kind = label_type(v)
    folders = class_folders(v)
    width = _width(len(v), 4)
    ext = {"image": "png", "pair": "png", "audio": "wav", "video": "mp4", "volume": "nii.gz"}[v.kind]
    info = {**(meta or {}), **view_metadata(v)}
    if kind not in ("none", "multi_label"):
        info["class_folders"] = folders
    if v.kind == "pair":
        np.save(folder / "text_embeddings.npy", v.text.detach().cpu().float().numpy())
        info["text_embeddings"] = "text_embeddings.npy"
    if v.kind == "audio":
        np.save(folder / "features.npy", v.features.detach().cpu().float().numpy())
        info["features"] = "features.npy"
    if v.kind == "video":
        t, h, w = v.videos.shape[2:]
        ph, pw = padded_size(h, w)
        info["video"] = {"frames": int(t), "height": int(h), "width": int(w), "file_height": ph, "file_width": pw,
                         "channels": int(v.videos.shape[1]), "codec": video_codec(), "fps": int(v.fps)}
    labels = v.labels.tolist() if v.labels is not None else None
    files = []
    for i in range(len(v)):
        where = "images" if kind == "none" else "all" if kind == "multi_label" else folders[labels[i]]
        rel = f"{where}/{i:0{width}d}.{ext}"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if v.kind in ("image", "pair"):
            write_png(v.images[i], path)
        elif v.kind == "audio":
            write_wav(v.waveforms[i], v.sample_rate, path)
        elif v.kind == "video":
            write_mp4(v.videos[i], path, v.fps)
        else:
            write_nifti(v.volumes[i], path)
        entry: dict = {"file": rel, "index": i}
        if kind in ("hard", "soft"):
            entry["label"] = labels[i]
        if kind == "soft":
            entry["soft_label"] = v.targets[i].detach().cpu().float().tolist()
        if kind == "multi_label":
            entry["labels"] = v.targets[i].detach().cpu().long().tolist()
        files.append(entry)
    info["files"] = files
    (folder / LABELS_JSON).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- safetensors: the native format


def write_safetensors(run_dir: Path, folder: Path) -> Path:
    """``folder`` ← the run's ``distilled.safetensors`` and ``manifest.json``: all ``mmdd.load`` reads."""
    from mmdd.core import rundir

    for name in (rundir.DISTILLED, rundir.MANIFEST):
        shutil.copy2(Path(run_dir) / name, Path(folder) / name)
    return Path(folder)


# --------------------------------------------------------------------------- the export of a run


def run_viewable(run: Run) -> Viewable:
    """The run's Viewable; the real data is loaded only if the domain asks (vision-language captions)."""
    from mmdd.plugins import get_domain

    domain = get_domain(run.config.domain)
    return domain.viewable(run.synthetic, run.manifest["data"], lambda: domain.load_data(run.config.dataset))


def default_out(run_dir: Path, fmt: str) -> Path:
    return Path(run_dir) / "export" / fmt


def check_out(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse an output that would hold or replace the run itself, a file, or (without ``overwrite``) an
    existing non-empty folder."""
    from mmdd.core.errors import RunError

    target, source = out.resolve(), Path(run_dir).resolve()
    if target == source or target in source.parents:
        raise RunError(f"--out {out} would replace the run directory {run_dir}; choose a folder outside it "
                       f"(default: {default_out(run_dir, '<format>')})")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RunError(f"{out} already exists and is not empty; pass --overwrite to replace it, or --out OTHER_DIR")


def build_dir(out: Path, build: Callable[[Path], object]) -> Path:
    """Call ``build(tmp)`` on a new temporary sibling of ``out``, then rename it into place; the old
    ``out`` (if any) is removed only after the new one is complete, and a failed build leaves it as it was."""
    from mmdd.core.atomic import current_umask

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # a plain mkdir's mode, not mkdtemp's private 0700
        build(tmp)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:
                os.replace(old, out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Export the finished run in ``run_dir`` as ``fmt`` (``hf``, ``folder`` or ``safetensors``) into
    ``out`` (default ``<run_dir>/export/<fmt>``); return the folder written."""
    from mmdd.core.errors import ConfigError
    from mmdd.run import open_run

    if fmt not in FORMATS:
        raise ConfigError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else default_out(run_dir, fmt)
    check_out(out, run_dir, overwrite)
    run = open_run(run_dir)  # a finished run, its tensors readable
    if fmt == "safetensors":
        return build_dir(out, lambda tmp: write_safetensors(run_dir, tmp))
    view, meta = run_viewable(run), run_metadata(run)
    writer = write_hf if fmt == "hf" else write_folder
    return build_dir(out, lambda tmp: writer(view, tmp, meta))


# --------------------------------------------------------------------------- the sub-command


def _cmd_export(args) -> int:
    path = export_run(args.run_dir, args.format, out=args.out, overwrite=args.overwrite)
    print(path)
    return 0


def add_parser(subparsers) -> None:
    """Register ``mmdd export RUN_DIR --format {hf,folder,safetensors} [--out DIR] [--overwrite]``."""
    ex = subparsers.add_parser("export", help="write a run's distilled set as a Hugging Face dataset, class "
                                              "folders of media files, or the native safetensors")
    ex.add_argument("run_dir")
    ex.add_argument("--format", required=True, choices=FORMATS,
                    help="hf: datasets.load_from_disk; folder: PNG/WAV/MP4/NIfTI in class folders + labels.json; "
                         "safetensors: what mmdd.load reads")
    ex.add_argument("--out", default=None, help="output folder (default RUN_DIR/export/FORMAT)")
    ex.add_argument("--overwrite", action="store_true", help="replace the output folder if it holds anything")
    ex.set_defaults(func=_cmd_export)
