"""The decoded store (core/store.py) and lazy rows (core/lazy.py): build, reuse, resume, the bad-file
policy, parallel decoding, and the loaders and runs that stream from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import mmdd
from mmdd.core.data import ClassIndex, DataSplits, Split, normalize, zca_whiten
from mmdd.core.errors import ConfigError, DataError
from mmdd.core.lazy import LazyRows, materialize, take_rows
from mmdd.core.store import DecodedStore, StorageOptions, StoreSource, build_store, store_folder
from mmdd.domains.image.datasets import load_image_folder

# --------------------------------------------------------------------------------------------
# a toy source: item i decodes to a 2×3 block filled with i (module-level: workers receive it)
# --------------------------------------------------------------------------------------------

def toy_decode(item: tuple) -> dict[str, np.ndarray]:
    value, log, stop_at = item
    if log:
        with open(log, "a") as fh:
            fh.write(f"{value}\n")
    if stop_at is not None and value == stop_at:
        raise KeyboardInterrupt  # the build is killed while decoding this item
    if value < 0:
        raise DataError(f"item{value}.bin: cannot decode it; expected a toy item")
    return {"block": np.full((2, 3), value, dtype=np.uint8), "tag": np.array([value * 10], dtype=np.int64)}


def toy_source(n: int = 10, log: str | None = None, stop_at: int | None = None, setting: int = 0,
               bad: tuple[int, ...] = ()) -> StoreSource:
    values = [-v if v in bad else v for v in range(n)]
    return StoreSource("toy", {"setting": setting},
                       items={"train": [(v, log, stop_at) for v in values], "test": [(v, log, None) for v in values[:3]]},
                       labels={"train": [v % 2 for v in range(n)], "test": [0, 1, 0]},
                       ids={"train": [f"item{v}.bin" for v in values], "test": [f"item{v}.bin" for v in values[:3]]},
                       decode=toy_decode)


ROW = 2 * 3 + 8  # bytes of one toy row: shard_bytes = 3 * ROW gives 3 items per shard


def test_store_round_trip_in_row_order(tmp_path):
    store = build_store(toy_source(10), tmp_path, shard_bytes=3 * ROW, progress=False)
    train = store.split("train")
    assert len(train) == 10 and train.labels.tolist() == [v % 2 for v in range(10)]
    assert train.ids[4] == "item4.bin"
    assert len(list(store.folder.glob("train-*.block.npy"))) == 4  # 3 + 3 + 3 + 1 items
    block = train.fields["block"]
    assert block.shape == (10, 2, 3) and block.dtype == torch.uint8
    assert block[[7, 0, 9, 3]][:, 0, 0].tolist() == [7, 0, 9, 3]  # across shards, in the asked order
    assert torch.equal(materialize(block)[:, 1, 2], torch.arange(10, dtype=torch.uint8))
    assert train.fields["tag"][5].tolist() == [50]


def test_a_second_build_reuses_the_store_and_other_settings_never_do(tmp_path):
    first = build_store(toy_source(6), tmp_path, progress=False)
    assert not first.reused
    again = build_store(toy_source(6), tmp_path, progress=False)
    assert again.reused and again.folder == first.folder
    other = build_store(toy_source(6, setting=1), tmp_path, progress=False)  # other decode settings
    assert not other.reused and other.folder != first.folder
    fewer = build_store(toy_source(5), tmp_path, progress=False)  # another file list
    assert fewer.folder not in (first.folder, other.folder)


def test_a_killed_build_continues_without_redecoding_finished_shards(tmp_path):
    log = tmp_path / "calls.txt"
    source = toy_source(10, log=str(log), stop_at=7)
    with pytest.raises(KeyboardInterrupt):
        build_store(source, tmp_path / "s", shard_bytes=3 * ROW, progress=False)
    folder = store_folder(tmp_path / "s", source)
    assert not (folder / "store.json").exists()  # not complete: never opened as a store
    # the layout probe (item 0 of 'test'), 3 test items, then train shards 0-2, 3-5 and 6 before the kill
    log.write_text("")
    resumed = toy_source(10, log=str(log), stop_at=None)  # same settings and files: the same store
    assert store_folder(tmp_path / "s", resumed) == folder
    store = build_store(resumed, tmp_path / "s", shard_bytes=3 * ROW, progress=False)
    decoded_again = sorted(int(v) for v in log.read_text().split())
    assert decoded_again == [6, 7, 8, 9]  # only the shard in progress (6-8) and the last one (9)
    assert materialize(store.split("train").fields["block"])[:, 0, 0].tolist() == list(range(10))


def test_parallel_decoding_gives_the_same_store(tmp_path, monkeypatch):
    import mmdd.core.store as store_module

    one = build_store(toy_source(12), tmp_path / "one", shard_bytes=5 * ROW, num_workers=1, progress=False)
    assert one.doc["built"]["workers"] == 1
    small = build_store(toy_source(12), tmp_path / "small", shard_bytes=5 * ROW, num_workers=2, progress=False)
    assert small.doc["built"]["workers"] == 1  # less work than starting workers takes: in this process
    monkeypatch.setattr(store_module, "WORKER_STARTUP_S", 0.0)
    two = build_store(toy_source(12), tmp_path / "two", shard_bytes=5 * ROW, num_workers=2, progress=False)
    assert two.doc["built"]["workers"] == 2
    for f in ("block", "tag"):
        assert torch.equal(materialize(one.split("train").fields[f]), materialize(two.split("train").fields[f]))
    assert one.split("train").ids == two.split("train").ids


def test_bad_items_follow_the_on_error_policy(tmp_path):
    with pytest.raises(DataError, match="item-4.bin: cannot decode it"):
        build_store(toy_source(8, bad=(4,)), tmp_path / "fail", progress=False)
    store = build_store(toy_source(8, bad=(4,)), tmp_path / "skip", on_error="skip", progress=False)
    train = store.split("train")
    assert len(train) == 7 and "item-4.bin" not in train.ids
    assert store.skipped == ["item-4.bin: cannot decode it; expected a toy item"]
    assert train.labels.tolist() == [0, 1, 0, 1, 1, 0, 1]  # item 4's label left out with it


def test_lazy_rows_index_like_a_tensor_and_views_read_nothing():
    data = torch.arange(40, dtype=torch.float32).view(10, 4)
    reads = []

    def fetch(rows):
        reads.append(rows.tolist())
        return data[torch.as_tensor(rows)]

    lazy = LazyRows(fetch, 10, (4,))
    assert lazy.shape == (10, 4) and len(lazy) == 10 and lazy.dim() == 2 and lazy.numel() == 40
    assert torch.equal(lazy[2:5], data[2:5])
    assert torch.equal(lazy[torch.tensor([9, 0])], data[[9, 0]])
    assert torch.equal(lazy[-1], data[-1])
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[1, 3]] = True
    assert torch.equal(lazy[mask], data[mask])
    reads.clear()
    sub = take_rows(lazy, torch.tensor([8, 6, 4])).map(lambda x: x * 2)
    assert reads == [] and sub.shape == (3, 4)
    assert torch.equal(sub[[0, 2]], data[[8, 4]] * 2) and reads == [[8, 4]]
    with pytest.raises(IndexError):
        lazy[[10]]
    with pytest.raises(TypeError, match="storage: memory"):
        lazy.to("cpu")
    split = Split(lazy, torch.arange(10) % 2)
    assert isinstance(split.subset(torch.tensor([1, 2])).inputs, LazyRows)
    index = ClassIndex(split, 2)
    assert index.counts() == [5, 5]
    assert set(index.sample(1, 3, torch.Generator().manual_seed(0))[:, 0].tolist()) <= {4.0, 12.0, 20.0, 28.0, 36.0}


def test_streamed_normalisation_matches_the_in_memory_one():
    x = torch.rand(37, 3, 5, 5, generator=torch.Generator().manual_seed(0)) * 4 + 1
    labels = torch.arange(37) % 3

    def splits(inputs):
        return DataSplits(Split(inputs, labels), Split(inputs, labels), 3, ["a", "b", "c"])

    lazy = LazyRows(lambda rows: x[torch.as_tensor(rows)], 37, (3, 5, 5))
    a, b = normalize(splits(x)), normalize(splits(lazy))
    assert np.allclose(a.info["normalization"]["mean"], b.info["normalization"]["mean"], atol=1e-6)
    assert np.allclose(a.info["normalization"]["std"], b.info["normalization"]["std"], atol=1e-6)
    assert isinstance(b.train.inputs, LazyRows)
    assert torch.allclose(a.train.inputs, materialize(b.train.inputs), atol=1e-5)
    with pytest.raises(ConfigError, match="storage: memory"):
        zca_whiten(splits(lazy), 0.1)


def test_storage_options_are_checked():
    assert StorageOptions(storage="disk").storage_problems("dataset")[0].startswith("dataset.storage must be one of")
    assert "num_workers" in StorageOptions(num_workers=0).storage_problems("dataset")[0]
    assert StorageOptions(storage="auto").wants_store(2**60) and not StorageOptions(storage="auto").wants_store(1)
    assert not StorageOptions(storage="memory").wants_store(2**60)


# --------------------------------------------------------------------------------------------
# image folders through the store
# --------------------------------------------------------------------------------------------


def write_images(root: Path, per_class=(12, 4), classes: int = 3, size: int = 10) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(60 + 60 * c, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_image_folder_from_the_store_equals_the_in_memory_load(tmp_path):
    root = write_images(tmp_path / "images")
    memory = load_image_folder(root, val_fraction=0.25)
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"), num_workers=2)
    stored = load_image_folder(root, val_fraction=0.25, storage=opts)
    assert isinstance(stored.train.inputs, LazyRows) and memory.info["store"] == {"storage": "memory"}
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.inputs, materialize(b.inputs))
    assert stored.info["store"]["storage"] == "store" and not stored.info["store"]["reused"]
    again = load_image_folder(root, val_fraction=0.25, storage=opts)
    assert again.info["store"]["reused"] and again.info["store"]["folder"] == stored.info["store"]["folder"]
    touched = next((root / "train" / "class0").iterdir())
    os.utime(touched, ns=(1, 1))  # a changed file: the store is never reused
    changed = load_image_folder(root, val_fraction=0.25, storage=opts)
    assert not changed.info["store"]["reused"] and changed.info["store"]["folder"] != stored.info["store"]["folder"]


def image_recipe(root: Path, storage: str, store_dir: Path) -> dict:
    return {"name": f"store-{storage}", "domain": "image", "seed": 0,
            "dataset": {"name": "image_folder", "root": str(root), "storage": storage, "store_dir": str(store_dir),
                        "num_workers": 1},
            "network": {"name": "convnet", "depth": 2, "width": 8},
            "budget": {"ipc": 2},
            "method": {"name": "dm", "iterations": 3, "lr_inputs": 1.0, "batch_real": 8},
            "evaluation": {"epochs": 2, "seeds": 1, "baselines": ["random", "herding", "full"]}}


def test_a_run_streamed_from_the_store_matches_the_in_memory_run(tmp_path):
    root = write_images(tmp_path / "images")
    runs = {s: mmdd.distill(image_recipe(root, s, tmp_path / "store"), output_dir=tmp_path / s, progress=False)
            for s in ("memory", "store")}
    assert runs["store"].manifest["data"]["store"]["storage"] == "store"
    assert runs["memory"].manifest["data"]["store"]["storage"] == "memory"
    a, b = (runs[s].synthetic.decode()[0].detach() for s in ("memory", "store"))
    assert torch.allclose(a, b, atol=1e-4)  # the same draws; statistics summed in another order
    ev = {s: runs[s].manifest["evaluation"] for s in runs}
    assert set(ev["store"]) == {"distilled", "random", "herding", "full"}
    for name in ev["store"]:
        assert ev["store"][name]["mean"] == pytest.approx(ev["memory"][name]["mean"], abs=0.1)


def test_a_run_reading_stored_batches_in_loader_workers_equals_one_reading_them_inline(tmp_path, monkeypatch):
    """dataset.loader_workers (the GPU default) changes where stored minibatches are read, nothing else."""
    root = write_images(tmp_path / "images")
    loaders = []
    real_loader = torch.utils.data.DataLoader

    def counting_loader(*args, **kwargs):
        loaders.append(kwargs["num_workers"])
        return real_loader(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", counting_loader)
    runs, started = {}, {}
    for workers in (0, 2):
        recipe = image_recipe(root, "store", tmp_path / "store")
        recipe["dataset"]["loader_workers"] = workers
        runs[workers] = mmdd.distill(recipe, output_dir=tmp_path / f"w{workers}", progress=False)
        started[workers], loaders[:] = list(loaders), []
    assert started[0] == [] and started[2] and set(started[2]) <= {1, 2}  # epochs, prediction, embeddings
    a, b = (runs[w].synthetic.decode()[0].detach() for w in (0, 2))
    assert torch.equal(a, b)
    ev = {w: runs[w].manifest["evaluation"] for w in runs}
    for name in ("distilled", "random", "herding", "full"):
        assert ev[2][name]["values"] == ev[0][name]["values"]


def test_mmdd_prepare_builds_the_store_a_run_then_reuses(tmp_path, capsys):
    import yaml

    from mmdd.cli import main
    from mmdd.prepare import prepare

    root = write_images(tmp_path / "images")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(image_recipe(root, "store", tmp_path / "store")))
    assert main(["prepare", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "decoded store ready in" in out and str(tmp_path / "store") in out
    result = prepare(str(recipe))
    assert result["storage"] == "store" and result["reused"] and result["train_size"] == 36
    assert json.loads((Path(result["folder"]) / "store.json").read_text())["splits"]["train"]["rows"] == 36
    memory = prepare(str(recipe), ["dataset.storage=memory"])
    assert memory["storage"] == "memory"


def test_decoded_store_refuses_a_folder_of_another_key(tmp_path):
    store = build_store(toy_source(4), tmp_path, progress=False)
    assert DecodedStore.open_if_complete(store.folder, "0" * 64) is None
    assert DecodedStore.open_if_complete(tmp_path / "absent", "0" * 64) is None


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_from_the_store_equals_the_in_memory_load(tmp_path, gz):
    from test_image_datasets import _write_fashion

    from mmdd.domains.image.datasets import load_fashion_mnist

    arrays = _write_fashion(tmp_path / "fm", n_train=40, n_test=12, gz=gz)
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"))
    memory = load_fashion_mnist(tmp_path / "fm", val_fraction=0.25)
    stored = load_fashion_mnist(tmp_path / "fm", val_fraction=0.25, storage=opts)
    assert isinstance(stored.train.inputs, LazyRows) and stored.info["store"]["storage"] == "store"
    assert memory.info["store"] == {"storage": "memory"}
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.inputs, materialize(b.inputs))
    assert np.array_equal((materialize(stored.test.inputs) * 255).round().byte().squeeze(1).numpy(),
                          arrays["test_images"])
    assert load_fashion_mnist(tmp_path / "fm", storage=opts).info["store"]["reused"]
    test_images = next((tmp_path / "fm").glob("t10k-images*"))
    os.utime(test_images, ns=(1, 1))  # a changed file: never the old store
    assert not load_fashion_mnist(tmp_path / "fm", storage=opts).info["store"]["reused"]


def test_fashion_mnist_store_refuses_images_and_labels_that_disagree(tmp_path):
    from test_image_datasets import _write_fashion, _write_idx

    from mmdd.domains.image.datasets import load_fashion_mnist

    _write_fashion(tmp_path, n_train=20, n_test=10)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8), 2049)
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"))
    with pytest.raises(DataError, match="holds 10 images but .*t10k-labels.* holds 9 labels"):
        load_fashion_mnist(tmp_path, storage=opts)


# --------------------------------------------------------------------------------------------
# MedMNIST .npz: images streamed out of the archive into the store
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["write_bloodmnist", "write_adrenalmnist3d", "write_chestmnist"])
@pytest.mark.parametrize("compressed", [True, False])
def test_medmnist_from_the_store_equals_the_in_memory_load(tmp_path, writer, compressed):
    import medical_fixtures

    from mmdd.domains.medical.medmnist_npz import load_medmnist

    path = getattr(medical_fixtures, writer)(tmp_path)
    if not compressed:  # the same arrays, stored (np.savez): read by seeking instead of inflating
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        path = medical_fixtures.save_npz(tmp_path / "plain" / path.name, arrays, compressed=False)
    memory = load_medmnist(path)
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"))
    stored = load_medmnist(path, storage=opts)
    assert stored.info["store"]["storage"] == "store" and isinstance(stored.train.inputs, LazyRows)
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        assert torch.equal(a.labels, b.labels)
        assert torch.equal(a.inputs, materialize(b.inputs, chunk=7))
        rows = torch.tensor([len(a) - 1, 0, len(a) // 2])
        assert torch.equal(a.inputs[rows], b.inputs[rows])
    assert load_medmnist(path, storage=opts).info["store"]["reused"]


def test_npz_rows_read_in_any_order_and_name_a_missing_array(tmp_path):
    from medical_fixtures import save_npz

    from mmdd.core.npz_rows import member_header, read_rows

    x = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
    path = save_npz(tmp_path / "a.npz", {"x": x})
    assert member_header(path, "x") == ((5, 3, 2), np.dtype(np.uint8))
    assert np.array_equal(read_rows(path, "x", 3, 5), x[3:5])
    assert np.array_equal(read_rows(path, "x", 0, 2), x[0:2])  # behind the stream: reopened
    assert np.array_equal(read_rows(path, "x", 2, 3), x[2:3])
    with pytest.raises(DataError, match="no array 'y'"):
        member_header(path, "y")


def test_streamed_statistics_are_kept_in_the_store_per_subset(tmp_path):
    root = write_images(tmp_path / "images")
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"))
    first = normalize(load_image_folder(root, storage=opts))
    kept = sorted(Path(first.info["store"]["folder"]).glob("stats-*.json"))
    assert [p.name for p in kept] == ["stats-train-pixels-chw-unit.json"]
    again = normalize(load_image_folder(root, storage=opts))
    assert again.info["normalization"] == first.info["normalization"]
    assert torch.equal(materialize(first.train.inputs), materialize(again.train.inputs))
    held = load_image_folder(root, val_fraction=0.25, storage=opts)  # train is a subset: its own statistics
    sub = normalize(held)
    assert sub.info["normalization"] != first.info["normalization"]
    assert len(list(Path(first.info["store"]["folder"]).glob("stats-train-pixels-chw-unit-rows*.json"))) == 1
    memory = normalize(load_image_folder(root, val_fraction=0.25))
    assert np.allclose(memory.info["normalization"]["std"], sub.info["normalization"]["std"], atol=1e-6)


# --------------------------------------------------------------------------------------------
# audio: waveforms decoded into the store, features computed once into a store of their own
# --------------------------------------------------------------------------------------------


def audio_data(recipe_dataset: dict):
    from mmdd.plugins import get_domain
    from mmdd.run import load_config

    cfg = load_config({"name": "a", "domain": "audio", "dataset": recipe_dataset, "network": {"name": "convnet"},
                       "budget": {"ipc": 1}, "method": {"name": "dm", "iterations": 1}})
    return get_domain("audio").load_data(cfg.dataset)


@pytest.mark.parametrize("kind", ["fsdd", "speech_commands"])
def test_audio_from_the_store_matches_the_in_memory_load(tmp_path, kind):
    from audio_fixtures import corrupt, write_fsdd, write_speech_commands

    if kind == "fsdd":
        root = write_fsdd(tmp_path / "fsdd", speakers=("a", "b"), takes=range(7))
        corrupt(root / "3_a_6.wav", "garbage")
        dataset = {"name": "fsdd", "root": str(root), "val_fraction": 0.2, "on_error": "skip"}
    else:  # the 12-label task: word clips from the store, silence crops appended in RAM
        root = write_speech_commands(tmp_path / "sc", per_word=6)
        dataset = {"name": "speech_commands", "root": str(root), "task": "12"}
    memory = audio_data({**dataset, "storage": "memory"})
    stored = audio_data({**dataset, "storage": "store", "store_dir": str(tmp_path / "store"), "num_workers": 2})
    assert memory.info["store"] == {"storage": "memory"} and stored.info["store"]["storage"] == "store"
    assert isinstance(stored.train.inputs, LazyRows)
    assert all(Path(r["folder"]).is_dir() and "-features-" in r["folder"] for r in stored.info["store"]["stores"])
    assert stored.info["skipped_files"] == memory.info["skipped_files"]
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        assert torch.equal(a.labels, b.labels)
        assert torch.allclose(a.inputs, materialize(b.inputs), atol=1e-4)  # MFCC per shard, not per batch
    again = audio_data({**dataset, "storage": "store", "store_dir": str(tmp_path / "store")})
    assert torch.equal(materialize(again.train.inputs), materialize(stored.train.inputs))


def test_medical_folder_from_the_store_equals_the_in_memory_load(tmp_path):
    from medical_fixtures import write_nifti_folder

    from mmdd.domains.medical.medical_folder import load_medical_folder

    write_nifti_folder(tmp_path / "vols", per_class=5)
    kwargs = {"spatial_size": 8, "val_fraction": 0.2, "test_fraction": 0.3}
    memory = load_medical_folder(tmp_path / "vols", **kwargs)
    opts = StorageOptions(storage="store", store_dir=str(tmp_path / "store"), num_workers=2)
    stored = load_medical_folder(tmp_path / "vols", storage=opts, **kwargs)
    assert stored.info["store"]["storage"] == "store" and memory.info["store"] == {"storage": "memory"}
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.inputs, materialize(b.inputs))
    assert {k: v for k, v in stored.info.items() if k != "store"} == {k: v for k, v in memory.info.items()
                                                                       if k != "store"}
