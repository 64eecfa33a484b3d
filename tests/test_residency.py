"""Real data kept on the device (``real_on_device``, core/residency.py).

CUDA is absent here, so the decision is tested with the free memory given, the placement with the
``meta`` device (which checks that nothing on the path reads the values on the host), and the whole
run with a placement that copies on the CPU (which checks that results do not change)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mmdd.core import residency
from mmdd.core.data import ClassIndex, Split
from mmdd.core.errors import ConfigError
from mmdd.core.lazy import LazyRows
from mmdd.core.residency import Residency, decide, input_bytes
from mmdd.core.seeding import make_generator

CUDA = torch.device("cuda")
MiB = 2**20


def _inputs(mib: int) -> torch.Tensor:
    return torch.zeros(mib * MiB // 4)  # float32: 4 bytes per value


def test_off_and_the_cpu_keep_data_on_the_host():
    assert decide("off", CUDA, [_inputs(1)], free_bytes=10**12) == Residency(False, "real_on_device: off")
    for mode in ("auto", "on"):
        assert not decide(mode, torch.device("cpu"), [_inputs(1)]).on_device


def test_auto_moves_to_cuda_when_the_splits_fit_in_half_the_free_memory():
    fits = decide("auto", CUDA, [_inputs(30), _inputs(10)], free_bytes=100 * MiB)
    assert fits.on_device and "40 MiB of real inputs on cuda (100 MiB free)" == fits.reason
    too_big = decide("auto", CUDA, [_inputs(30), _inputs(30)], free_bytes=100 * MiB)
    assert not too_big.on_device
    assert too_big.reason == "the real splits take 60 MiB, more than 50% of the 100 MiB free on cuda"


def test_on_refuses_what_it_cannot_honour_and_auto_falls_back():
    with pytest.raises(ConfigError, match="real_on_device: on, but the real splits take 60 MiB, more than 50%"):
        decide("on", CUDA, [_inputs(60)], free_bytes=100 * MiB)
    streamed = LazyRows(lambda rows: torch.zeros(len(rows), 3), 10, (3,))
    assert input_bytes(streamed) is None
    with pytest.raises(ConfigError, match="streamed from the decoded store.*dataset.storage: memory"):
        decide("on", CUDA, [streamed], free_bytes=10**12)
    assert not decide("auto", CUDA, [streamed], free_bytes=10**12).on_device
    with pytest.raises(ConfigError, match="real_on_device must be one of"):
        decide("always", CUDA, [_inputs(1)], free_bytes=10**12)


def test_auto_is_for_cuda_only_and_on_trusts_a_device_that_cannot_report_memory():
    meta = torch.device("meta")
    assert not decide("auto", meta, [_inputs(1)]).on_device
    assert decide("on", meta, [_inputs(1)]).on_device


def test_paired_inputs_count_their_bytes():
    from mmdd.domains.audio_visual.batch import AVBatch

    pairs = AVBatch(torch.zeros(4, 1, 8, 8), torch.zeros(4, 3, 8, 8))
    assert input_bytes(pairs) == 4 * (64 + 192) * 4
    assert input_bytes([1, 2]) is None


def test_a_class_index_over_device_inputs_keeps_its_host_indices_and_draws_the_same_rows():
    split = Split(torch.randn(30, 1, 4, 4), torch.arange(30) % 3)
    host = ClassIndex(split, 3)
    elsewhere = host.with_inputs(split.inputs.to("meta"))
    assert elsewhere.split.inputs.device.type == "meta"
    assert elsewhere.split.labels.device.type == "cpu" and elsewhere.indices is host.indices
    assert elsewhere.sample(1, 5, make_generator(0)).shape == (5, 1, 4, 4)
    copied = host.with_inputs(split.inputs.clone())
    assert torch.equal(copied.sample(2, 4, make_generator(7)), host.sample(2, 4, make_generator(7)))


def test_the_workspace_places_matching_test_and_validation_inputs(tiny_recipe):
    from mmdd.run import load_config, setup

    tiny_recipe["real_on_device"] = "on"
    tiny_recipe["tracking"] = {"every": 2}  # holds out a validation split
    ws = setup(load_config(tiny_recipe))
    assert not ws.residency.on_device  # the CPU: nothing to move
    assert ws.test_split is ws.data.test and ws.real.split is ws.data.train

    ws = dataclasses.replace(ws, device=torch.device("meta"))  # a new workspace: nothing decided yet
    assert ws.residency.on_device
    assert ws.real.split.inputs.device.type == "meta" and ws.real.split.labels.device.type == "cpu"
    assert ws.test_split.inputs.device.type == "meta" and ws.test_split.labels.device.type == "cpu"
    assert ws.val_split.inputs.device.type == "meta" and len(ws.val_split) == len(ws.data.val)
    assert ws.data.train.inputs.device.type == "cpu"  # the loaded data itself is not changed


def test_on_refuses_data_that_is_not_per_class_splits(tiny_recipe):
    from types import SimpleNamespace

    from mmdd.run import load_config, setup

    ws = setup(load_config(tiny_recipe))
    for mode, refused in (("auto", False), ("on", True)):
        ws.cfg.real_on_device = mode
        other = dataclasses.replace(ws, device=torch.device("meta"), data=SimpleNamespace(test=None, val=None))
        other.__dict__["_host_real"] = object()  # a domain whose matching data is not a ClassIndex
        if refused:
            with pytest.raises(ConfigError, match="real_on_device: on, but the image domain's real data is not held"):
                other.residency
        else:
            assert not other.residency.on_device


@pytest.mark.parametrize("method", ["dm", "dc"])
def test_a_run_with_inputs_placed_elsewhere_gives_the_same_results(tiny_recipe, tmp_path, monkeypatch, method):
    """The placed path (index on device, host labels) against the host path, with a copy standing in for
    the device transfer: DM samples per-class batches, DC indexes rows and their labels."""
    import mmdd

    tiny_recipe["evaluation"]["baselines"] = []
    if method == "dc":
        tiny_recipe["method"] = {"name": "dc", "iterations": 3, "batch_real": 16, "outer_loop": 2, "inner_loop": 1}
    host = mmdd.distill(tiny_recipe, output_dir=str(tmp_path / "host"), progress=False)
    copies = []

    def copy_to(inputs, device):
        copies.append(inputs.shape)
        return inputs.clone()

    monkeypatch.setattr("mmdd.core.workspace.decide", lambda *a, **k: Residency(True, "test"))
    monkeypatch.setattr("mmdd.core.workspace.moved", copy_to)
    placed = mmdd.distill(tiny_recipe, output_dir=str(tmp_path / "placed"), progress=False)
    assert len(copies) == 2  # the train split behind the class index, and the test split
    assert placed.manifest["real_on_device"] == "test"
    assert host.manifest["real_on_device"] == "the device is the CPU: host memory is the device's"
    assert torch.equal(placed.synthetic.inputs, host.synthetic.inputs)
    result = {k: v for k, v in host.evaluation["distilled"].items() if k != "wall_s"}
    assert {k: v for k, v in placed.evaluation["distilled"].items() if k != "wall_s"} == result


def test_the_recipe_check_names_the_modes(tiny_recipe):
    from mmdd.run import load_config

    tiny_recipe["real_on_device"] = "sometimes"
    with pytest.raises(ConfigError, match="real_on_device"):
        load_config(tiny_recipe)
    assert residency.RESIDENCY_MODES == ("auto", "on", "off")
