"""The dataset registry (one entry per name, where each loader is defined) and the shared loading
toolkit of mmdd.core.loading (checks, the bad-file policy, the split policy)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from mmdd.core.data import Split, stratified_split
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.loading import (BadFiles, LoadedSplits, Rows, check_fraction, check_on_error, check_positive_int,
                               check_root, hold_out_val, name_some, plan_splits, require_rows)
from mmdd.core.registry import DATASETS, dataset_entry, dataset_names, register_dataset
from mmdd.core.seeding import make_generator

DOMAIN_DATASETS = {
    "image": {"digits", "fashion_mnist", "image_folder"},
    "audio": {"fsdd", "speech_commands", "esc50", "audio_folder"},
    "medical": {"medmnist", "medical_folder"},
    "video": {"ucf101", "hmdb51", "kinetics_csv", "something_something", "frame_folders"},
    "vision_language": {"karpathy", "coco_captions", "flickr8k_csv"},
}


# --------------------------------------------------------------------------------------------
# the dataset registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", sorted(DOMAIN_DATASETS))
def test_every_dataset_of_every_domain_is_registered(domain):
    package = importlib.import_module(f"mmdd.domains.{domain}")
    assert DOMAIN_DATASETS[domain] <= set(dataset_names(domain))  # a new dataset needs no edit here
    for name in dataset_names(domain):
        entry = dataset_entry(domain, name)
        assert (entry.domain, entry.name) == (domain, name)
        # the typed options and the loader are defined together, and the config names the dataset
        assert entry.config().name == name
        assert entry.load.__module__.startswith(f"mmdd.domains.{domain}.")
    # the domain's default hooks read the same entry
    cls = next(v for v in vars(package).values() if isinstance(v, type) and getattr(v, "name", None) == domain
               and hasattr(v, "read_dataset"))
    assert cls().dataset_config(sorted(DOMAIN_DATASETS[domain])[0]) is dataset_entry(
        domain, sorted(DOMAIN_DATASETS[domain])[0]).config


def test_unknown_dataset_names_the_closest():
    importlib.import_module("mmdd.domains.audio")
    with pytest.raises(ConfigError, match=r"unknown audio dataset 'fsd'.*did you mean 'fsdd'\?"):
        dataset_entry("audio", "fsd")
    with pytest.raises(ConfigError, match=r"expected one of \['frame_folders', 'hmdb51'"):
        importlib.import_module("mmdd.domains.video")
        dataset_entry("video", "no_such_set")


def test_a_taken_name_cannot_be_registered_by_another_loader():
    importlib.import_module("mmdd.domains.audio")
    before = dict(DATASETS)

    def read_fsdd(cfg):  # same name as the real one, other module/qualname
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_dataset("audio", "fsdd", config=object)(read_fsdd)
    assert DATASETS == before
    # the registered loader itself may register again (a module reloaded)
    entry = dataset_entry("audio", "fsdd")
    register_dataset("audio", "fsdd", config=entry.config)(entry.load)
    assert dataset_entry("audio", "fsdd").load is entry.load


# --------------------------------------------------------------------------------------------
# checks and messages
# --------------------------------------------------------------------------------------------


def test_checks():
    assert check_positive_int(3, "n") == 3 and check_positive_int(None, "n", allow_none=True) is None
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="n must be a positive integer, got"):
            check_positive_int(bad, "n")
    with pytest.raises(ConfigError, match="or None"):
        check_positive_int(0, "n", allow_none=True)
    assert check_fraction(0) == 0.0 and check_fraction("0.5") == 0.5
    with pytest.raises(ConfigError,
                       match=r"val_fraction must be in \[0, 1\), got 1.0; e.g. 0.1 holds out 10 % of train"):
        check_fraction(1.0)
    with pytest.raises(ConfigError, match=r"must be a number in \(0, 1\)"):
        check_fraction("x", "test_fraction", zero=False)
    with pytest.raises(ConfigError, match=r"in \(0, 1\), got 0.0; e.g. 0.2 holds out 20 % per class"):
        check_fraction(0, "test_fraction", zero=False, of="per class", example=0.2)
    assert check_on_error("skip") == "skip"
    with pytest.raises(ConfigError, match="'skip' leaves it out and lists it in X.skipped"):
        check_on_error("ignore", listed_in="X.skipped")
    assert name_some(["a", "b"]) == "  a\n  b"
    assert name_some([str(i) for i in range(7)]).endswith("  4\n  ... and 2 more")


def test_check_root(tmp_path):
    assert check_root(tmp_path, "thing", "layout") == tmp_path
    (tmp_path / "f").write_text("x")
    for path, problem in ((tmp_path / "absent", "does not exist"), (tmp_path / "f", "is not a folder")):
        with pytest.raises(DataError) as err:
            check_root(path, "thing", "the layout")
        assert str(err.value) == f"thing root {path} {problem}.\nthe layout\nnothing is downloaded"


# --------------------------------------------------------------------------------------------
# the bad-file policy
# --------------------------------------------------------------------------------------------


def _read(path: str) -> str:
    if path.startswith("bad"):
        raise DataError(f"{path}: cannot decode")
    return path.upper()


def test_bad_files_fail_and_skip():
    fail = BadFiles("fail")
    assert fail.attempt(_read, "ok") == "OK"
    with pytest.raises(DataError, match=r"^bad1: cannot decode$"):
        fail.attempt(_read, "bad1")
    with pytest.raises(DataError, match=r"^bad1: cannot decode \[split 'train'\]$"):
        fail.attempt(_read, "bad1", fail_note="[split 'train']")
    with pytest.raises(DataError, match="2 missing"):
        fail.missing(["a", "b"], error=lambda: "2 missing", reason=lambda p: p)
    fail.missing([], error=lambda: "never", reason=lambda p: p)
    with pytest.raises(DataError, match="^odd name; rename it$"):
        fail.note("odd name", fail_hint="; rename it")

    skip = BadFiles("skip")
    assert [skip.attempt(_read, p) for p in ("ok", "bad1", "bad2")] == ["OK", None, None]
    skip.missing(["m"], error=lambda: "never", reason=lambda p: f"{p}: listed but missing")
    skip.note("odd name", fail_hint="; rename it")
    assert skip.skipped == ["bad1: cannot decode", "bad2: cannot decode", "m: listed but missing", "odd name"]
    with pytest.raises(ConfigError, match="on_error"):
        BadFiles("ignore")


def test_require_rows():
    require_rows("X", "train", 1, [])
    with pytest.raises(DataError, match=r"^X: the test split is empty \(2 unreadable file\(s\) skipped\); expected "
                                        r"at least one clip$"):
        require_rows("X", "test", 0, ["a", "b"], unit="clip")


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class _Waves(Rows):
    waves: Tensor
    labels: Tensor
    paths: list[str]
    extra: Tensor | None = None


def test_rows_subset_picks_every_field():
    rows = _Waves(torch.arange(12.0).view(4, 3), torch.tensor([0, 1, 0, 1]), ["a", "b", "c", "d"])
    part = rows.subset(torch.tensor([3, 1]))
    assert len(rows) == 4 and len(part) == 2 and isinstance(part, _Waves)
    assert part.paths == ["d", "b"] and part.labels.tolist() == [1, 1] and part.extra is None
    assert torch.equal(part.waves, rows.waves[[3, 1]])
    data = LoadedSplits(rows, rows, None, ["x", "y"])
    assert data.num_classes == 2 and data.skipped == [] and data.info == {}


# --------------------------------------------------------------------------------------------
# the split policy
# --------------------------------------------------------------------------------------------

LABELS = torch.tensor([c for c in range(4) for _ in range(10)])


def test_plan_seeded_fractions_match_stratified_split():
    plan = plan_splits(LABELS, test_fraction=0.3, val_fraction=0.2, seed=7)
    gen = make_generator(7)
    train, test = stratified_split(LABELS, 0.3, gen)
    keep, held = stratified_split(LABELS[train], 0.2, gen)
    assert torch.equal(plan.test, test) and torch.equal(plan.train, train[keep]) and torch.equal(plan.val, train[held])
    assert plan.rule == ("test: 30% of all, stratified, seed 7; "
                         "val: 20% of train, stratified, seed 7 (after test, same generator)")
    assert sorted(torch.cat([plan.train, plan.val, plan.test]).tolist()) == list(range(40))
    again = plan_splits(LABELS, test_fraction=0.3, val_fraction=0.0, seed=7)
    assert torch.equal(again.test, plan.test) and again.val is None and again.rule.endswith("; no val")


def test_plan_val_only_given_test():
    plan = plan_splits(LABELS, val_fraction=0.1, seed=0, given="official t10k files")
    keep, held = stratified_split(LABELS, 0.1, make_generator(0))
    assert torch.equal(plan.train, keep) and torch.equal(plan.val, held) and plan.test.numel() == 0
    assert plan.rule == "official t10k files; val: 10% of train, stratified, seed 0"
    given = plan_splits(LABELS, val_fraction=0.1, has_val=True, given="official lists")
    assert given.val is None and given.train.tolist() == list(range(40))
    assert given.rule == "official lists; val: given (val_fraction ignored)"
    assert plan_splits(LABELS, given="official lists").rule == "official lists; no val"


def test_plan_tagged_rows():
    tags = ["train", "test"] * 20
    plan = plan_splits(LABELS, tags=tags, val_fraction=0.5, seed=1, given="CSV split column")
    assert plan.test.tolist() == list(range(1, 40, 2))
    assert sorted(plan.train.tolist() + plan.val.tolist()) == list(range(0, 40, 2))
    assert plan.rule == "CSV split column; val: 50% of train, stratified, seed 1"
    with_val = plan_splits(LABELS, tags=["train", "val", "test", "train"] * 10, val_fraction=0.5)
    assert with_val.val.tolist() == list(range(1, 40, 4)) and with_val.rule == "val: given (val_fraction ignored)"
    with pytest.raises(DataError, match="expected train, val or test"):
        plan_splits(LABELS, tags=["train", "dev"] * 20)
    with pytest.raises(DataError, match="one tag per row"):
        plan_splits(LABELS, tags=["train"])


def test_plan_by_item():
    plan = plan_splits(10, test_fraction=0.2, val_fraction=0.1, seed=3, pool="images")
    perm = torch.randperm(10, generator=make_generator(3))
    assert plan.test.tolist() == sorted(perm[:2].tolist()) and plan.val.tolist() == sorted(perm[2:3].tolist())
    assert plan.train.tolist() == sorted(perm[3:].tolist())
    assert plan.rule == ("test: 20% of images, by item, seed 3; val: 10% of images, by item, seed 3 "
                         "(after test, same permutation)")
    tiny = plan_splits(10, test_fraction=0.01, val_fraction=0.01)
    assert (len(tiny.train), len(tiny.val), len(tiny.test)) == (8, 1, 1)
    with pytest.raises(DataError, match="keep at least one"):
        plan_splits(2, test_fraction=0.4, val_fraction=0.4)
    gen = make_generator(3)
    assert torch.equal(plan_splits(10, test_fraction=0.2, val_fraction=0.1, gen=gen).test, plan.test)


def test_plan_apply_keeps_whole_parts():
    full = Split(torch.randn(40, 2), LABELS)
    train, val, test = plan_splits(LABELS, given="given").apply(full)
    assert train is full and val is None and len(test) == 0
    train, val, test = plan_splits(LABELS, test_fraction=0.5).apply(full)
    assert len(train) == len(test) == 20 and val is None


def test_hold_out_val():
    rows = _Waves(torch.randn(40, 3), LABELS, [str(i) for i in range(40)])
    data = LoadedSplits(rows, rows.subset(torch.arange(4)), None, list("abcd"), info={"split_rule": "official"})
    hold_out_val(data, 0.25, 2)
    keep, held = stratified_split(LABELS, 0.25, make_generator(2))
    assert data.val.paths == [str(i) for i in held.tolist()] and data.train.paths == [str(i) for i in keep.tolist()]
    assert data.info["split_rule"] == "official; val: 25% of train, stratified, seed 2"
    assert len(data.train) == 32 and len(data.val) == 8  # round(2.5) = 2 per class
    given = LoadedSplits(rows, rows, rows.subset(torch.arange(3)), list("abcd"), info={"split_rule": "lists"})
    hold_out_val(given, 0.25, 2)  # a validation split is there: kept
    assert given.info["split_rule"] == "lists; val: given (val_fraction ignored)" and len(given.train) == 40
    none = LoadedSplits(rows, rows, rows.subset(torch.zeros(0, dtype=torch.long)), list("abcd"))
    assert hold_out_val(none, 0.0, 0).info["split_rule"] == "no val" and len(none.val) == 0


def test_loaders_share_the_toolkit():
    """No domain keeps a private copy of a shared helper."""
    root = Path(__file__).resolve().parents[1] / "domains"
    copies = ("def _check_root", "def _name_some", "def _visible", "ON_ERROR = (", "def _check_fraction",
              "def _check_positive_int", "def _carve_val", "DATASET_CONFIGS", "DATASETS: dict")
    for path in root.rglob("*.py"):
        text = path.read_text()
        for copy in copies:
            assert copy not in text, f"{path.relative_to(root)} defines {copy!r}; use mmdd.core.loading"
