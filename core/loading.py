"""The toolkit every dataset loader shares: argument checks, the bad-file policy and the split policy.

A loader of any domain does the same few things around its format-specific reading:

* checks its arguments (:func:`check_positive_int`, :func:`check_fraction`, :func:`check_on_error`)
  and its root folder (:func:`check_root`), with messages that say what was expected;
* reads files under one ``on_error`` policy (:class:`BadFiles`): ``"fail"`` raises the first bad
  file's :class:`~mmdd.core.errors.DataError`, ``"skip"`` leaves the file out and records why;
* decides train / val / test with :func:`plan_splits` — the one split policy of every domain:
  given (official) splits, tagged rows, or seeded fractions — which also returns a short text
  of the rule it applied. Loaders put that text in ``info["split_rule"]`` (it reaches the manifest).

Split containers of the raw-file domains (audio waveforms, video clips) are dataclasses whose
fields hold one entry per row; :class:`Rows` gives them ``len()`` and ``subset()``, and
:class:`LoadedSplits` is their train / test / optional val holder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Generic, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor

from .data import stratified_split
from .lazy import LazyRows, take_rows
from .errors import ConfigError, DataError
from .seeding import make_generator

__all__ = [
    "MAX_LISTED",
    "ON_ERROR",
    "SPLIT_NAMES",
    "BadFiles",
    "LoadedSplits",
    "Rows",
    "SplitPlan",
    "check_fraction",
    "check_on_error",
    "check_positive_int",
    "check_root",
    "first_line",
    "hold_out_val",
    "is_visible",
    "name_some",
    "plan_splits",
    "require_rows",
    "shape_text",
]

#: the values of every loader's ``on_error`` option
ON_ERROR = ("fail", "skip")
#: how many offending paths an error message names before "... and N more"
MAX_LISTED = 5
SPLIT_NAMES = ("train", "val", "test")

T = TypeVar("T")
S = TypeVar("S")


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------


def check_positive_int(value, name: str, *, allow_none: bool = False) -> int | None:
    """``value`` as an int ≥ 1 (``None`` passes with ``allow_none``), else a ConfigError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = " or None" if allow_none else ""
        raise ConfigError(f"{name} must be a positive integer{extra}, got {value!r}")
    return int(value)


def check_fraction(value, name: str = "val_fraction", *, of: str = "of train", zero: bool = True,
                   example: float = 0.1) -> float:
    """``value`` as a float in ``[0, 1)`` (``(0, 1)`` with ``zero=False``), else a ConfigError.

    ``of`` ends the example of the message: "e.g. 0.1 holds out 10 % of train".
    """
    interval = "[0, 1)" if zero else "(0, 1)"
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}") from None
    if not (0.0 <= value < 1.0 if zero else 0.0 < value < 1.0):
        raise ConfigError(f"{name} must be in {interval}, got {value}; e.g. {example:g} holds out "
                          f"{example * 100:g} % {of}")
    return value


def check_on_error(value, *, item: str = "unreadable file", left_out: str = "it",
                   listed_in: str = "the loader's skipped list") -> str:
    """``value`` as one of :data:`ON_ERROR`, else a ConfigError saying what each value does."""
    if value not in ON_ERROR:
        raise ConfigError(
            f"on_error must be one of {ON_ERROR}, got {value!r}: 'fail' stops at the first {item}, "
            f"'skip' leaves {left_out} out and lists it in {listed_in}"
        )
    return value


def check_root(root, what: str, layout: str) -> Path:
    """``root`` (``~`` expanded) when it is a folder, else a DataError with the expected ``layout``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        problem = "does not exist" if not root.exists() else "is not a folder"
        raise DataError(f"{what} root {root} {problem}.\n{layout}\nnothing is downloaded")
    return root


# --------------------------------------------------------------------------------------------
# small helpers for messages and listings
# --------------------------------------------------------------------------------------------


def name_some(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """The first ``limit`` items, one indented line each, then "... and N more"."""
    shown = "\n".join(f"  {s}" for s in items[:limit])
    more = len(items) - limit
    return shown + (f"\n  ... and {more} more" if more > 0 else "")


def is_visible(path: Path) -> bool:
    """False for hidden files and folders (a name starting with ``.``)."""
    return not path.name.startswith(".")


def shape_text(shape: Sequence[int]) -> str:
    """A shape as messages write it: ``28×28``."""
    return "×".join(str(int(s)) for s in shape)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when empty), cut at ``limit``."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."


# --------------------------------------------------------------------------------------------
# the bad-file policy
# --------------------------------------------------------------------------------------------


class BadFiles:
    """The ``on_error`` policy of one load: ``"fail"`` raises a bad file's DataError, ``"skip"``
    leaves the file out and records the reason (a message starting with the file's path).

    >>> bad = BadFiles("skip")
    >>> clip = bad.attempt(read_clip, path, 16000, 16000)   # None when skipped
    >>> bad.skipped                                        # ["<path>: <reason>", ...]
    """

    def __init__(self, on_error: str):
        self.on_error = check_on_error(on_error)
        self.skipped: list[str] = []

    @property
    def skips(self) -> bool:
        return self.on_error == "skip"

    def attempt(self, read: Callable[..., T], *args, fail_note: str = "", **kwargs) -> T | None:
        """``read(*args, **kwargs)``, or None when it raises a DataError that the policy skips.

        Under ``"fail"`` the error propagates (with `` fail_note`` appended when given).
        """
        try:
            return read(*args, **kwargs)
        except DataError as exc:
            if not self.skips:
                if fail_note:
                    raise DataError(f"{exc} {fail_note}") from exc
                raise
            self.skipped.append(str(exc))
            return None

    def missing(self, absent: Sequence[str], error: Callable[[], str], reason: Callable[[str], str]) -> None:
        """Files a listing names but that are absent: ``error()`` as a DataError under ``"fail"``,
        else one ``reason(path)`` recorded per file."""
        if not absent:
            return
        if not self.skips:
            raise DataError(error())
        self.skipped += [reason(p) for p in absent]

    def note(self, reason: str, *, fail_hint: str = "") -> None:
        """A bad file the loader found itself: a DataError (``reason`` + ``fail_hint``) under ``"fail"``,
        else ``reason`` recorded."""
        if not self.skips:
            raise DataError(reason + fail_hint)
        self.skipped.append(reason)


def require_rows(what: str, split_name: str, n: int, skipped: Sequence[str], *, unit: str = "sample",
                 skipped_what: str = "unreadable file(s)") -> None:
    """A DataError when split ``split_name`` of ``what`` ended up empty (saying how many files were skipped)."""
    if n == 0:
        why = f" ({len(skipped)} {skipped_what} skipped)" if skipped else ""
        raise DataError(f"{what}: the {split_name} split is empty{why}; expected at least one {unit}")


# --------------------------------------------------------------------------------------------
# split containers
# --------------------------------------------------------------------------------------------


class Rows:
    """Mixin for a split dataclass whose every field holds one entry per row (a tensor or a list)
    and which has ``labels``: gives ``len()`` and ``subset(index)``."""

    def __len__(self) -> int:
        return int(self.labels.shape[0])  # type: ignore[attr-defined]

    def subset(self, index: Tensor | Sequence[int]):
        """The rows at ``index`` (in that order), every field alike."""
        index = torch.as_tensor(index, dtype=torch.long).flatten()
        picked = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                picked[f.name] = None
            elif isinstance(value, (Tensor, LazyRows)):
                picked[f.name] = take_rows(value, index)
            else:
                picked[f.name] = [value[i] for i in index.tolist()]
        return type(self)(**picked)


@dataclass
class LoadedSplits(Generic[S]):
    """Train / test / optional validation splits of one dataset as a loader read them.

    ``skipped`` lists one reason per file left out under ``on_error="skip"`` (each starting with
    the file's path); ``info`` describes the load (``split_rule`` included) for the manifest.
    """

    train: S
    test: S
    val: S | None
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --------------------------------------------------------------------------------------------
# the split policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPlan:
    """Row indices of each split (int64, ascending) and the text of the rule that chose them."""

    train: Tensor
    val: Tensor | None
    test: Tensor
    rule: str

    def apply(self, rows):
        """``(train, val or None, test)`` subsets of ``rows`` (anything with ``subset(index)`` and ``len``);
        a part that holds every row is ``rows`` itself (indices are ascending and unique)."""

        def pick(index: Tensor):
            return rows if int(index.numel()) == len(rows) else rows.subset(index)

        return pick(self.train), None if self.val is None else pick(self.val), pick(self.test)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _split_items(n: int, val_fraction: float, test_fraction: float, gen: torch.Generator):
    """One ``torch.randperm(n)``: the first ``round(test_fraction·n)`` test, the next
    ``round(val_fraction·n)`` val, the rest train (each at least 1 for a non-zero fraction)."""

    def count(fraction: float) -> int:
        return max(1, int(round(fraction * n))) if fraction > 0 else 0

    n_test, n_val = count(test_fraction), count(val_fraction)
    if n - n_test - n_val < 1:
        raise DataError(
            f"cannot split {n} image(s) into test {n_test} / val {n_val} and keep at least one "
            f"for train (test_fraction={test_fraction}, val_fraction={val_fraction}); use smaller "
            "fractions or more images"
        )
    perm = torch.randperm(n, generator=gen)
    return (torch.sort(perm[n_test + n_val:]).values, torch.sort(perm[n_test:n_test + n_val]).values,
            torch.sort(perm[:n_test]).values)


def plan_splits(rows: Tensor | int, *, tags: Sequence[str] | None = None, test_fraction: float = 0.0,
                val_fraction: float = 0.0, seed: int = 0, given: str = "", has_val: bool = False,
                pool: str = "all", gen: torch.Generator | None = None) -> SplitPlan:
    """The one split policy of every loader: which rows are train, val and test, and the rule's text.

    ``rows`` is a label tensor (draws are stratified by class, :func:`~mmdd.core.data.stratified_split`)
    or a row count (draws are by item, e.g. images with their captions). Every draw comes from one
    generator, ``make_generator(seed)`` (or ``gen`` when given):

    * **test** — with ``tags`` (one of "train" / "val" / "test" per row: an official split or
      tagged lists), the rows tagged "test". Otherwise, with ``test_fraction > 0``, a seeded
      fraction of all rows; else no row is test (the test split is ``given`` elsewhere).
    * **val** — the rows tagged "val" if there are any, or none when ``has_val`` (a validation
      split given elsewhere). Otherwise, with ``val_fraction > 0``, a seeded fraction: stratified,
      of the train rows after the test draw (same generator); by item, the next part of the one
      permutation that gave test. Else ``val`` is None.

    By item, a non-zero fraction holds out at least one row and train must keep one (else a
    DataError); stratified, see :func:`~mmdd.core.data.stratified_split`. ``given`` names where
    given splits come from; it opens the rule, e.g. ``"official t10k files; val: 10% of train,
    stratified, seed 0"``; ``pool`` names the rows in it ("test: 10% of all").
    """
    by_item = not isinstance(rows, Tensor)
    n = int(rows) if by_item else int(rows.shape[0])
    how = "by item" if by_item else "stratified"
    gen = make_generator(seed) if gen is None else gen
    parts = [given] if given else []
    none = torch.zeros(0, dtype=torch.long)
    drew_test = False

    if tags is not None:
        tags = list(tags)
        if len(tags) != n:
            raise DataError(f"{len(tags)} split tags for {n} rows; expected one tag per row")
        bad = sorted({str(t) for t in tags if t not in SPLIT_NAMES})
        if bad:
            raise DataError(f"split tag(s) {bad}; expected train, val or test")
        pick = {s: torch.tensor([i for i, t in enumerate(tags) if t == s], dtype=torch.long) for s in SPLIT_NAMES}
        train, test = pick["train"], pick["test"]
        val = pick["val"] if pick["val"].numel() else None
        has_val = has_val or val is not None
    elif by_item:
        val_drawn = 0.0 if has_val else val_fraction
        if test_fraction > 0 or val_drawn > 0:
            train, val, test = _split_items(n, val_drawn, test_fraction, gen)
        else:
            train, val, test = torch.arange(n), none, none
        if test_fraction > 0:
            parts.append(f"test: {_percent(test_fraction)} of {pool}, {how}, seed {seed}")
        if val_drawn > 0:
            parts.append(f"val: {_percent(val_drawn)} of {pool}, {how}, seed {seed}"
                         + (" (after test, same permutation)" if test_fraction > 0 else ""))
            return SplitPlan(train, val, test, "; ".join(parts))
        val = None
    elif test_fraction > 0:
        train, test = stratified_split(rows, test_fraction, gen)
        parts.append(f"test: {_percent(test_fraction)} of {pool}, {how}, seed {seed}")
        val, drew_test = None, True
    else:
        train, val, test = torch.arange(n), None, none

    if has_val:
        parts.append("val: given" + (" (val_fraction ignored)" if val_fraction > 0 else ""))
    elif val_fraction > 0:
        if by_item:  # tagged rows without a val tag
            keep, held, _ = _split_items(int(train.numel()), val_fraction, 0.0, gen)
        else:
            keep, held = stratified_split(rows[train], val_fraction, gen)
        train, val = train[keep], train[held]
        parts.append(f"val: {_percent(val_fraction)} of train, {how}, seed {seed}"
                     + (" (after test, same generator)" if drew_test else ""))
    else:
        parts.append("no val")
    return SplitPlan(train, val, test, "; ".join(parts))


def read_tagged_json(path: Path, fmt: str, what: str, out: Path) -> dict | None:
    """A generator's summary JSON ``path`` when it exists (None otherwise), checked to carry
    ``"format": fmt``; a DataError naming ``what`` and the folder ``out`` to regenerate otherwise."""
    import json

    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); remove {out} and generate the set again") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise DataError(f"{path}: not {what} (format {fmt!r}); is {out} the right folder?")
    return doc


def hold_out_val(data, val_fraction: float, seed: int, *, given: str | None = None):
    """Give ``data`` (``train`` / ``val`` / ``info``, splits with ``labels`` and ``subset``) a validation
    split by :func:`plan_splits`: the one it has, else a seeded stratified ``val_fraction`` of train.

    ``info["split_rule"]`` (or ``given``: where the loader's splits came from) opens the rule; the
    result is stored back there. Apply it once, to what a loader returned.
    """
    has_val = data.val is not None and len(data.val) > 0
    source = data.info.get("split_rule", "") if given is None else given
    plan = plan_splits(data.train.labels, val_fraction=val_fraction, seed=seed, given=source, has_val=has_val)
    if plan.val is not None:
        data.train, data.val = data.train.subset(plan.train), data.train.subset(plan.val)
    data.info["split_rule"] = plan.rule
    return data


# --------------------------------------------------------------------------------------------
# annotation files and class subsets
# --------------------------------------------------------------------------------------------


def read_text(path: Path, missing: str, kind: str = "text file") -> str:
    """A UTF-8 annotation file's text (a leading BOM dropped); ``missing`` is the DataError's message
    when it does not exist, ``kind`` what it should be when it cannot be read."""
    if not path.is_file():
        raise DataError(missing)
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected a UTF-8 {kind}") from exc


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped line) for each non-blank line of a text file."""
    text = read_text(path, f"{what}: {path} does not exist")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def restrict_classes(class_names: list[str], classes, what: str) -> tuple[list[str], dict[int, int]]:
    """Keep only ``classes`` (in the dataset's class order): (new names, old label -> new label)."""
    if classes is None:
        return class_names, {i: i for i in range(len(class_names))}
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ConfigError(f"{what}: classes must be a non-empty list of class names, got {classes!r}")
    wanted = [str(c) for c in classes]
    dupes = sorted({c for c in wanted if wanted.count(c) > 1})
    if dupes:
        raise ConfigError(f"{what}: classes lists {dupes} more than once")
    unknown = [c for c in wanted if c not in class_names]
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(c, class_names, n=1)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{what}: unknown class(es) {', '.join(hints)}; the dataset has {len(class_names)} "
            f"classes, e.g. {class_names[:5]}"
        )
    keep = set(wanted)
    kept = [c for c in class_names if c in keep]
    remap = {class_names.index(c): i for i, c in enumerate(kept)}
    return kept, remap


def chosen_classes(class_names: list[str], classes) -> list[str] | None:
    """The kept class names for ``info`` and the cache key (``None`` when no subset was asked for)."""
    return list(class_names) if classes is not None else None
