"""Writers of tiny image-caption datasets in their real on-disk layouts, and tiny text encoders.

Image ``i`` is a JPEG filled with the colour ``colour_of(i)`` (six well-separated colours) and
its size varies with ``i`` (landscape, portrait, square), so resizing and cropping are
exercised. Its captions name the colour and the item number, ``"a red photo, item 3 view 1"``,
so a test can check every caption against the image it is mapped to: :func:`item_of_caption`
and :func:`item_of_path` recover ``i`` from a caption and from an image path. Everything is
deterministic: the same call writes the same bytes.

The text encoders are randomly initialised and saved locally: :func:`write_tiny_bert` (a
one-layer BERT and a WordPiece tokenizer over the fixture vocabulary, ``save_pretrained``) and
:func:`write_tiny_open_clip` (a tiny open_clip CLIP config as JSON plus its state dict).

Import from tests as ``from vl_fixtures import write_karpathy, ...`` (pytest puts ``tests/`` on
``sys.path``).
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Sequence

import numpy as np

PALETTE = (
    ("red", (220, 30, 30)),
    ("green", (30, 170, 40)),
    ("blue", (30, 40, 220)),
    ("yellow", (235, 220, 40)),
    ("purple", (140, 40, 170)),
    ("cyan", (40, 200, 210)),
)
SIZES = ((40, 30), (30, 44), (36, 36), (52, 26))  # (width, height), cycled by image index

# image i -> split, in the file order of the default Karpathy fixture (restval joins train)
KARPATHY_DEFAULT_SPLITS = (
    "train", "val", "restval", "test", "train", "train", "test", "restval", "val", "train", "test", "train",
)

_CAPTION = re.compile(r"item (\d+) view (\d+)")
_PATH = re.compile(r"(\d+)\.jpg$")


def colour_of(i: int) -> tuple[str, tuple[int, int, int]]:
    return PALETTE[i % len(PALETTE)]


def size_of(i: int) -> tuple[int, int]:
    return SIZES[i % len(SIZES)]


def caption_text(i: int, j: int) -> str:
    """Caption ``j`` of image ``i``; it holds a comma (so CSV writers must quote it)."""
    return f"a {colour_of(i)[0]} photo, item {i} view {j}"


def item_of_caption(caption: str) -> int:
    match = _CAPTION.search(caption)
    assert match is not None, caption
    return int(match.group(1))


def view_of_caption(caption: str) -> int:
    match = _CAPTION.search(caption)
    assert match is not None, caption
    return int(match.group(2))


def item_of_path(path: str) -> int:
    match = _PATH.search(str(path))
    assert match is not None, path
    return int(match.group(1))


def write_jpeg(path: str | Path, rgb, size: tuple[int, int], band=None, band_width: int = 0) -> Path:
    """A JPEG of ``size`` (w, h) filled with ``rgb``; with ``band``, the left and right
    ``band_width`` columns are that colour instead."""
    from PIL import Image

    w, h = size
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = np.asarray(rgb, dtype=np.uint8)
    if band is not None and band_width > 0:
        arr[:, :band_width] = band
        arr[:, w - band_width:] = band
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path, format="JPEG", quality=95)
    return path


def image_name(i: int) -> str:
    return f"img_{i:04d}.jpg"


def write_item_image(folder: str | Path, i: int, name: str | None = None) -> Path:
    return write_jpeg(Path(folder) / (name or image_name(i)), colour_of(i)[1], size_of(i))


# --------------------------------------------------------------------------------------------
# Karpathy split JSON
# --------------------------------------------------------------------------------------------


def write_karpathy(
    root: str | Path,
    splits: Sequence[str] = KARPATHY_DEFAULT_SPLITS,
    captions_per_image: int = 5,
    filepath: bool = False,
    json_name: str = "dataset_tiny.json",
    dataset: str = "flickr8k",
) -> Path:
    """Images ``0..len(splits)-1`` and a Karpathy JSON at ``root/json_name``; returns its path.

    ``filepath=False``: images in ``root/`` and no ``filepath`` key (Flickr style).
    ``filepath=True``: COCO style, ``filepath`` = ``"train2014"`` for train/restval images and
    ``"val2014"`` otherwise, images in ``root/<filepath>/``.
    """
    root = Path(root)
    images = []
    for i, split in enumerate(splits):
        entry: dict = {"filename": image_name(i), "imgid": i, "split": split}
        folder = root
        if filepath:
            entry["filepath"] = "train2014" if split in ("train", "restval") else "val2014"
            folder = root / entry["filepath"]
        write_item_image(folder, i)
        entry["sentences"] = [
            {"raw": caption_text(i, j), "tokens": caption_text(i, j).replace(",", "").split(), "imgid": i}
            for j in range(captions_per_image)
        ]
        images.append(entry)
    path = root / json_name
    path.write_text(json.dumps({"images": images, "dataset": dataset}), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# COCO captions JSON
# --------------------------------------------------------------------------------------------


def coco_id(split: str, i: int) -> int:
    """Non-contiguous image ids, unique across splits."""
    return {"train": 100000, "val": 200000, "test": 300000}[split] + 7 * i + 3


def write_coco(
    root: str | Path,
    counts: dict[str, int] | None = None,
    captions_per_image: int = 5,
    year: str = "2017",
    uncaptioned: int = 1,
    seed: int = 0,
) -> dict[str, Path]:
    """COCO layout: ``root/annotations/captions_<split><year>.json`` + ``root/<split><year>/``.

    Items are numbered across splits (train first), so captions stay globally unique. Each
    split also lists ``uncaptioned`` images without any annotation (their files exist). The
    annotation list is shuffled (seeded), as in real COCO files where captions of one image are
    not adjacent. Returns ``{split: annotation file}``.
    """
    counts = {"train": 10, "val": 3, "test": 3} if counts is None else counts
    root = Path(root)
    rng = random.Random(seed)
    out: dict[str, Path] = {}
    item = 0
    for split, n in counts.items():
        folder = root / f"{split}{year}"
        images, anns = [], []
        for k in range(n + uncaptioned):
            image_id = coco_id(split, k)
            name = f"COCO_{split}{year}_{item:012d}.jpg"
            write_item_image(folder, item, name)
            w, h = size_of(item)
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
            if k < n:
                anns.extend(
                    {"image_id": image_id, "caption": caption_text(item, j)} for j in range(captions_per_image)
                )
            item += 1
        rng.shuffle(anns)
        for a, ann in enumerate(anns):
            ann["id"] = 10 * a + 1
        path = root / "annotations" / f"captions_{split}{year}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"info": {}, "images": images, "annotations": anns}), encoding="utf-8")
        out[split] = path
    return out


# --------------------------------------------------------------------------------------------
# Flickr8k captions.txt (Kaggle layout)
# --------------------------------------------------------------------------------------------


def write_flickr8k(
    root: str | Path,
    n_images: int = 16,
    captions_per_image: int = 5,
    image_dir: str = "images",
    csv_name: str = "captions.txt",
    interleave: bool = False,
) -> Path:
    """``root/captions.txt`` (header ``image,caption``, commas quoted) and ``root/<image_dir>/``.

    Rows are grouped by image like the real file; ``interleave=True`` writes caption ``j`` of
    every image before caption ``j + 1`` instead. Returns the CSV path.
    """
    root = Path(root)
    for i in range(n_images):
        write_item_image(root / image_dir, i)
    if interleave:
        rows = [(image_name(i), caption_text(i, j)) for j in range(captions_per_image) for i in range(n_images)]
    else:
        rows = [(image_name(i), caption_text(i, j)) for i in range(n_images) for j in range(captions_per_image)]
    path = root / csv_name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------------
# tiny text encoders
# --------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def fixture_vocab() -> list[str]:
    """Special tokens, the caption words, digits, punctuation and single letters (~60 entries)."""
    words = ["a", "photo", "item", "view", "of", "the", "dog", "cat", "on", "grass", ",", "."]
    words += [name for name, _ in PALETTE] + [str(d) for d in range(10)]
    words += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words += ["##" + str(d) for d in range(10)]
    return list(dict.fromkeys([*SPECIAL_TOKENS, *words]))


def _bert_tokenizer(vocab: list[str], folder: Path):
    import inspect

    import transformers

    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    params = inspect.signature(transformers.BertTokenizer.__init__).parameters
    if "vocab_file" in params:  # transformers 4.x: the fast tokenizer reads a vocab file
        return transformers.BertTokenizerFast(vocab_file=str(vocab_file))
    # transformers 5.x: BertTokenizer is the tokenizers-backed one and takes the vocab itself
    # (a ``vocab_file=`` keyword would be silently ignored, leaving a 5-token vocabulary)
    return transformers.BertTokenizer(vocab={tok: i for i, tok in enumerate(vocab)})


def write_tiny_bert(folder: str | Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """A randomly initialised 1-layer BERT (hidden 32, 2 heads) + WordPiece tokenizer, saved with
    ``save_pretrained`` to ``folder``; loads back with ``local_files_only=True``."""
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = fixture_vocab()
    tokenizer = _bert_tokenizer(vocab, folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


TINY_OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


def write_tiny_open_clip(folder: str | Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """A tiny open_clip CLIP: ``(config.json, full state dict .pt, text-only .safetensors)``.

    The vocabulary is CLIP's (49408 BPE tokens) so open_clip's bundled SimpleTokenizer fits.
    """
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP_CFG), encoding="utf-8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(**TINY_OPEN_CLIP_CFG)
        # CLIP zero-initialises nothing that matters here, but make the projection non-trivial
        torch.nn.init.normal_(model.text_projection, std=0.5)
    state = model.state_dict()
    full = folder / "tiny-clip.pt"
    torch.save(state, full)
    text_only = folder / "tiny-clip-text.safetensors"
    save_file(
        {k: v.contiguous() for k, v in state.items() if not k.startswith("visual.")}, str(text_only)
    )
    return config, full, text_only
