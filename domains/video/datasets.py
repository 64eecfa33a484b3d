"""Video dataset loaders. Every one reads local files only: nothing is ever downloaded.

Each loader returns a :class:`VideoData` whose splits hold already-sampled clips: ``uint8``
tensors of shape ``N×T×C×H×W`` (``T = frames``, ``C = 3`` RGB, ``H = W = size``) and ``int64``
labels.

* :func:`load_ucf101` - UCF101 (``root/<Class>/v_<Class>_gXX_cYY.avi`` + the official
  ``classInd.txt`` / ``trainlist0{fold}.txt`` / ``testlist0{fold}.txt``), optional class subset.
* :func:`load_hmdb51` - HMDB51 (``root/<class>/<video>.avi`` + ``<class>_test_split{fold}.txt``).
* :func:`load_kinetics_csv` - Kinetics-style CSV of trimmed clips.
* :func:`load_something_something` - Something-Something v2 (``labels.json``, ``train.json``,
  ``validation.json``; videos ``root/<id>.webm`` or ``.mp4``).
* :func:`load_frame_folders` - pre-extracted frames ``root/<split>/<class>/<video>/<frame>``.

This module gathers them (importing it registers every video dataset); each format lives in its
own module (:mod:`.ucf101`, :mod:`.hmdb51`, :mod:`.kinetics`, :mod:`.something_something`,
:mod:`.frame_folders`), the containers, clip options, reading and load pipeline they share in
:mod:`.clips`. Every loader takes the same clip options (``**options``:
:class:`~.clips.ClipKeywords`). Each module also registers ``read_<name>(cfg)``: the loader called
with a recipe's typed dataset config, which then holds out the validation split
(``val_fraction``, when the dataset gives none) and records the split rule in ``info["split_rule"]``.

**Sampling.** One clip per training video. Its frame indices come from
:func:`~mmdd.domains.video.sampling.clip_indices`: ``frames`` indices ``stride`` apart; the
training split draws a random start, every other split (val, test) takes the centred clip — or,
with ``test_clips`` k > 1, k clips at evenly spaced starts, each its own row (consecutive, with
the video's label and path); a video shorter than the clip span is clamped to its last frame. The training draws are seeded:
``base = make_generator(seed)``, then one ``child_seed(base)`` per training entry in split
order (before any file is read, so a skipped file never shifts another clip's draw), and entry
``i`` draws its start from ``make_generator(seeds[i])``. The sampled indices are kept in
:attr:`VideoSplit.frame_indices`. Frames are resized to ``size×size`` (bilinear, antialiased,
aspect ratio not kept; see :func:`~mmdd.domains.video.sampling.resize_and_flip`), or with
``resize="short_side_crop"`` resized so the short side is ``size`` and centre-cropped
(:func:`~mmdd.domains.video.sampling.fit_frames`). No flip is applied at load time: flipping is an
augmentation.

**Reading.** Video files are opened with ``decord.VideoReader(path)`` and the clip is read with
one ``get_batch(indices)``. Frame folders are read with Pillow (converted to RGB), only the
sampled frames. Within a split, entries are in natural-sort order of their path.

``on_error`` decides what an unreadable video (missing, empty, not a video, truncated, no frames,
or a frame folder without readable frames) does: ``"fail"`` (default) raises
:class:`~mmdd.core.errors.DataError` naming it; ``"skip"`` leaves it out and lists
``"<path>: <reason>"`` in :attr:`VideoData.skipped`. A missing root, a wrong layout or a missing
or malformed split/annotation file is always an error.

**Cache.** With ``cache_dir``, the decoded splits are saved once (``torch.save``, written
atomically) under a key hashed from the loader, root, options and every file's size and mtime
(see :mod:`mmdd.core.decode_cache`); the next identical load reads that file instead of
decoding. ``info["cache"]`` is ``{"path", "key", "hit"}`` (``None`` without ``cache_dir``).
"""

from __future__ import annotations

from mmdd.core.loading import ON_ERROR

from .clips import (FRAME_EXTENSIONS, ClipKeywords, VideoData, VideoSplit, frame_files, natural_key,
                    read_frame_folder_clip, read_video_clip)
from .frame_folders import load_frame_folders, read_frame_folders
from .hmdb51 import load_hmdb51, read_hmdb51
from .kinetics import KINETICS_NAME, load_kinetics_csv, read_kinetics_csv
from .something_something import load_something_something, read_something_something, ssv2_class_name
from .ucf101 import load_ucf101, read_ucf101

__all__ = [
    "FRAME_EXTENSIONS",
    "KINETICS_NAME",
    "ON_ERROR",
    "ClipKeywords",
    "VideoData",
    "VideoSplit",
    "frame_files",
    "load_frame_folders",
    "load_hmdb51",
    "load_kinetics_csv",
    "load_something_something",
    "load_ucf101",
    "natural_key",
    "read_frame_folder_clip",
    "read_frame_folders",
    "read_hmdb51",
    "read_kinetics_csv",
    "read_something_something",
    "read_ucf101",
    "read_video_clip",
    "ssv2_class_name",
]
