"""Tests for mmdd.core.synthetic (PixelSet: storage, decoding, parameters, round-trips)."""

from __future__ import annotations

import math

import pytest
import torch

from mmdd.core.errors import ConfigError, RunError
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import SYNTHETIC_SETS, PixelSet, SyntheticConfig, rebuild

CLASSES = 4
IPC = 3
SHAPE = (1, 5, 5)


def _inputs(n: int = CLASSES * IPC, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *SHAPE), generator=make_generator(seed)).to(dtype)


def _set(**kw) -> PixelSet:
    return PixelSet(_inputs(), CLASSES, IPC, **kw)


# ------------------------------------------------------------------ storage
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("learn_lr", [False, True])
def test_storage_bytes(soft, learn_lr):
    syn = _set(soft_labels=soft, learn_lr=learn_lr)
    n_inputs = CLASSES * IPC * math.prod(SHAPE)
    expected = n_inputs * 4 + CLASSES * IPC * 8
    if soft:
        expected += CLASSES * IPC * CLASSES * 4
    if learn_lr:
        expected += 4
    assert syn.storage_bytes() == expected


def test_storage_bytes_float16_inputs():
    syn = PixelSet(_inputs(dtype=torch.float16), CLASSES, IPC)
    assert syn.inputs.dtype == torch.float16
    n_inputs = CLASSES * IPC * math.prod(SHAPE)
    assert syn.storage_bytes() == n_inputs * 2 + CLASSES * IPC * 8


def test_storage_bytes_float16_with_soft_labels_and_lr():
    syn = PixelSet(_inputs(dtype=torch.float16), CLASSES, IPC, soft_labels=True, learn_lr=True)
    n_inputs = CLASSES * IPC * math.prod(SHAPE)
    # label logits are stored as float32 whatever the inputs' dtype
    assert syn.label_logits.dtype == torch.float32
    assert syn.storage_bytes() == n_inputs * 2 + CLASSES * IPC * 8 + CLASSES * IPC * CLASSES * 4 + 4


# ------------------------------------------------------------------ decode
def test_decode_hard_labels_class_major():
    syn = _set()
    inputs, labels = syn.decode()
    assert inputs is syn.inputs
    assert labels.dtype == torch.long
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    for c, rows in enumerate(syn.class_slices()):
        assert (labels[rows] == c).all()
        assert rows.stop - rows.start == IPC
    assert syn.class_slices()[-1].stop == CLASSES * IPC


def test_decode_soft_labels_are_probabilities():
    syn = _set(soft_labels=True)
    inputs, probs = syn.decode()
    assert probs.shape == (CLASSES * IPC, CLASSES)
    assert probs.dtype == torch.float32
    assert torch.allclose(probs.sum(dim=1), torch.ones(CLASSES * IPC), atol=1e-6)
    assert (probs >= 0).all()
    # initialised from the hard labels: argmax is the class, class-major
    assert probs.argmax(dim=1).tolist() == syn.labels.tolist()
    assert (probs.max(dim=1).values > 0.9).all()


def test_decode_soft_labels_from_given_logits():
    logits = torch.randn(CLASSES * IPC, CLASSES, generator=make_generator(3)) * 4
    syn = PixelSet(_inputs(), CLASSES, IPC, soft_labels=True, label_logits=logits)
    _, probs = syn.decode()
    assert torch.allclose(probs, logits.softmax(-1))
    assert torch.allclose(probs.sum(1), torch.ones(CLASSES * IPC), atol=1e-6)


def test_soft_labels_differentiable():
    syn = _set(soft_labels=True)
    _, probs = syn.decode()
    (probs[:, 0]).sum().backward()
    assert syn.label_logits.grad is not None
    assert syn.label_logits.grad.abs().sum() > 0


def test_inputs_are_copied_not_aliased():
    x = _inputs()
    syn = PixelSet(x, CLASSES, IPC)
    with torch.no_grad():
        syn.inputs.add_(1.0)
    assert not torch.equal(syn.inputs.detach(), x)


# ------------------------------------------------------------------ lr and parameter groups
def test_learned_lr():
    assert _set(learn_lr=True, lr_init=0.03).learned_lr() == pytest.approx(0.03, rel=1e-6)
    assert _set(learn_lr=True).learned_lr() == pytest.approx(0.01, rel=1e-6)
    assert _set(learn_lr=False, lr_init=0.03).learned_lr() is None


def test_param_groups_keys():
    assert set(_set().param_groups()) == {"inputs"}
    assert set(_set(soft_labels=True).param_groups()) == {"inputs", "labels"}
    assert set(_set(learn_lr=True).param_groups()) == {"inputs", "lr"}
    syn = _set(soft_labels=True, learn_lr=True)
    groups = syn.param_groups()
    assert set(groups) == {"inputs", "labels", "lr"}
    assert groups["inputs"][0] is syn.inputs
    assert groups["labels"][0] is syn.label_logits
    assert groups["lr"][0] is syn.log_lr
    # every trainable parameter is in exactly one group
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert sorted(grouped) == sorted(id(p) for p in syn.parameters())


def test_hard_labels_are_a_buffer_not_a_parameter():
    syn = _set()
    assert "labels" in dict(syn.named_buffers())
    assert "labels" not in dict(syn.named_parameters())


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("learn_lr", [False, True])
def test_from_tensors_round_trips_exactly(soft, learn_lr):
    syn = _set(soft_labels=soft, learn_lr=learn_lr, lr_init=0.07)
    with torch.no_grad():  # move away from the defaults, so a round-trip cannot pass by accident
        syn.inputs.mul_(3.0)
        if soft:
            syn.label_logits.add_(torch.randn(syn.label_logits.shape, generator=make_generator(9)))
        if learn_lr:
            syn.log_lr.fill_(math.log(0.123))
    tensors = {k: v.clone() for k, v in syn.state_dict().items()}
    meta = syn.metadata()
    back = PixelSet.from_tensors(tensors, meta)
    assert back.metadata() == meta
    assert set(back.state_dict()) == set(syn.state_dict())
    for k, v in syn.state_dict().items():
        assert back.state_dict()[k].dtype == v.dtype
        assert torch.equal(back.state_dict()[k], v), k
    assert back.learned_lr() == syn.learned_lr()
    assert back.storage_bytes() == syn.storage_bytes()
    a, b = syn.decode(), back.decode()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    via_registry = rebuild("pixels", tensors, meta)
    assert isinstance(via_registry, PixelSet)
    assert torch.equal(via_registry.inputs, syn.inputs)


def test_from_tensors_float16_round_trip():
    syn = PixelSet(_inputs(dtype=torch.float16), CLASSES, IPC)
    back = PixelSet.from_tensors(dict(syn.state_dict()), syn.metadata())
    assert back.inputs.dtype == torch.float16
    assert torch.equal(back.inputs, syn.inputs)


def test_metadata_contents():
    meta = _set(soft_labels=True).metadata()
    assert meta == {"num_classes": CLASSES, "ipc": IPC, "soft_labels": True, "learn_lr": False, "lr_groups": 1,
                    "multi_label": False}


def test_from_tensors_missing_tensor_raises_run_error():
    syn = _set(soft_labels=True)
    tensors = dict(syn.state_dict())
    del tensors["label_logits"]
    with pytest.raises(RunError):
        PixelSet.from_tensors(tensors, syn.metadata())
    with pytest.raises(RunError):
        PixelSet.from_tensors({"labels": syn.labels}, syn.metadata())


def test_from_tensors_missing_metadata_raises_run_error():
    syn = _set()
    with pytest.raises(RunError):
        PixelSet.from_tensors(dict(syn.state_dict()), {"ipc": IPC})


def test_from_tensors_wrong_ipc_raises_run_error():
    syn = _set()
    with pytest.raises(RunError):
        PixelSet.from_tensors(dict(syn.state_dict()), {**syn.metadata(), "ipc": IPC + 1})


def test_wrong_inputs_count_raises_run_error():
    with pytest.raises(RunError) as info:
        PixelSet(_inputs(CLASSES * IPC - 1), CLASSES, IPC)
    assert str(CLASSES * IPC - 1) in str(info.value)
    with pytest.raises(RunError):
        PixelSet(_inputs(CLASSES * IPC + 2), CLASSES, IPC)


# ------------------------------------------------------------------ registry and config
def test_registry_and_unknown_kind():
    assert SYNTHETIC_SETS.get("pixels") is PixelSet
    assert PixelSet.kind == "pixels"
    with pytest.raises(ConfigError, match="pixels"):
        rebuild("pixel", {}, {})


def test_synthetic_config_check():
    assert SyntheticConfig().check("synthetic") == []
    problems = SyntheticConfig(lr_init=0.0).check("synthetic")
    assert len(problems) == 1 and "lr_init" in problems[0]
