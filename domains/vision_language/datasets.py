"""Image-text (caption) dataset loaders. Every one reads local files only: nothing is downloaded.

Each loader returns :class:`PairData`: ``train``, ``val`` (or ``None``) and ``test``
:class:`PairSplit` objects plus an ``info`` dict (and a ``skipped`` list). A split holds

* ``images``: ``float32`` tensor ``N_img×3×S×S`` in ``[0, 1]`` (``S = image_size``),
* ``captions``: ``list[str]`` (``N_cap`` entries, whitespace-stripped),
* ``caption_image``: ``int64`` tensor ``N_cap``, the row of ``images`` each caption describes,
* ``image_paths``: ``list[str]`` (``N_img``), the file each image row came from.

Captions of one image are contiguous and in file order; images are in file order.

Layouts:

* :func:`load_karpathy` - a Karpathy split JSON (``dataset_flickr8k.json``,
  ``dataset_flickr30k.json``, ``dataset_coco.json``); ``restval`` images join ``train``.
* :func:`load_coco_captions` - COCO ``captions_*.json`` files, one per split; a missing ``val``
  or ``test`` split is carved out of train.
* :func:`load_flickr8k_csv` - the Kaggle Flickr8k layout (``captions.txt`` CSV with header
  ``image,caption`` and an ``images/`` or ``Images/`` folder); no official split, so a seeded
  split by image.

This module gathers them (importing it registers every image-caption dataset); each layout lives
in its own module (:mod:`.karpathy`, :mod:`.coco_captions`, :mod:`.flickr8k`), the containers, image
reading and split building they share in :mod:`.pairs`. Each module also registers
``read_<name>(cfg)``: the loader called with a recipe's typed dataset config. Every loader records
the short rule of its split in ``info["split_rule"]`` (:func:`mmdd.core.loading.plan_splits`).

Images are read with Pillow, converted to RGB and brought to ``image_size×image_size``:
``resize="center_crop"`` (default; the CLIP convention) scales the shorter side to ``image_size``
and keeps the centre square (:func:`PIL.ImageOps.fit`, bicubic, one resampling), so nothing is
distorted; ``resize="stretch"`` resizes the whole image to the square (bicubic), so nothing is
cut off but the aspect ratio changes. JPEGs are decoded with :meth:`PIL.Image.Image.draft`
(DCT scaling to the smallest scale that keeps both sides at least ``image_size``), which makes
downscaling large photos several times faster.

Seeded choices (all from :func:`mmdd.core.seeding.make_generator`):

* splits by image (:func:`split_images`, used by the Flickr8k CSV and by COCO for a missing
  split): one generator ``make_generator(seed)``, one ``torch.randperm(n)`` over the images in
  file order; the first ``round(test_fraction * n)`` go to test, the next
  ``round(val_fraction * n)`` to val, the rest to train (each part back in file order). A
  non-zero fraction holds out at least one image, and train keeps at least one. Because test is
  taken first, changing ``val_fraction`` never changes the test split. All captions of one
  image go where the image goes.
* ``max_images`` (a seeded subset of images per split, for small profiles): for split ``s``,
  ``torch.randperm(n_s)`` from ``make_generator(crc32(f"{seed}/max_images/{s}"))``, first
  ``max_images`` kept, back in file order; each split's subset is independent of the others.
  The subset is chosen before any image is read, so a small profile of COCO reads only the
  images it keeps.

Errors: a missing or unreadable image raises :class:`~mmdd.core.errors.DataError` whose message
starts with its path; with ``on_error="skip"`` the image and its captions are left out and the
reason is listed in :attr:`PairData.skipped`. A malformed JSON/CSV raises ``DataError`` naming
the file, the entry and the key/column that was expected.
"""

from __future__ import annotations

from mmdd.core.loading import ON_ERROR

from .coco_captions import load_coco_captions, read_coco_captions
from .flickr8k import load_flickr8k_csv, read_flickr8k_csv
from .karpathy import load_karpathy, read_karpathy
from .pairs import RESIZE_MODES, SPLITS, PairData, PairSplit, read_image, split_images

__all__ = [
    "ON_ERROR",
    "RESIZE_MODES",
    "SPLITS",
    "PairData",
    "PairSplit",
    "load_coco_captions",
    "load_flickr8k_csv",
    "load_karpathy",
    "read_coco_captions",
    "read_flickr8k_csv",
    "read_image",
    "read_karpathy",
    "split_images",
]
