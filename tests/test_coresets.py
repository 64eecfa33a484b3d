"""Tests for mmdd.core.coresets (random / herding / k-center baselines)."""

from __future__ import annotations

import pytest
import torch

from mmdd.core.coresets import CORESETS, herding_order, kcenter_order, select
from mmdd.core.errors import ConfigError
from mmdd.core.seeding import make_generator

NUM_CLASSES = 3
COUNTS = [7, 12, 9]  # unbalanced; the smallest class has exactly 7 samples





def _labels(seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(COUNTS)])
    return labels[torch.randperm(labels.numel(), generator=make_generator(seed))]


def _features(n: int, dim: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, 1, dim), generator=make_generator(seed))


@pytest.mark.parametrize("name", ["random", "herding", "kcenter"])
@pytest.mark.parametrize("ipc", [1, 3, 7])
def test_ipc_per_class_right_class_no_duplicates(name, ipc):
    labels = _labels()
    feats = _features(labels.numel())
    idx = select(name, labels, NUM_CLASSES, ipc, make_generator(0), feats)
    assert idx.dtype == torch.long
    assert idx.shape == (NUM_CLASSES * ipc,)
    assert idx.unique().numel() == idx.numel()
    assert int(idx.min()) >= 0 and int(idx.max()) < labels.numel()
    # class-major: the c-th block of ipc indices all belongs to class c
    expected = torch.arange(NUM_CLASSES).repeat_interleave(ipc)
    assert torch.equal(labels[idx], expected)


def test_ipc_equal_to_class_size_takes_whole_class():
    labels = _labels()
    idx = select("random", labels, NUM_CLASSES, 7, make_generator(0))
    block = idx[:7]  # class 0 has exactly 7 samples
    assert set(block.tolist()) == set(torch.nonzero(labels == 0).flatten().tolist())


def test_random_reproducible_per_seed_and_differs_across_seeds():
    labels = _labels()
    a = select("random", labels, NUM_CLASSES, 3, make_generator(11))
    b = select("random", labels, NUM_CLASSES, 3, make_generator(11))
    c = select("random", labels, NUM_CLASSES, 3, make_generator(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_does_not_touch_global_rng():
    labels = _labels()
    before = torch.random.get_rng_state()
    select("random", labels, NUM_CLASSES, 3, make_generator(0))
    assert torch.equal(before, torch.random.get_rng_state())


def test_herding_is_deterministic_and_independent_of_generator():
    labels = _labels()
    feats = _features(labels.numel())
    a = select("herding", labels, NUM_CLASSES, 4, make_generator(0), feats)
    b = select("herding", labels, NUM_CLASSES, 4, make_generator(99), feats)
    assert torch.equal(a, b)


# ------------------------------------------------------------------ herding
def test_herding_order_picks_sample_nearest_mean_first():
    # mean = (0 + 1 + 2 + 7 + 10) / 5 = 4  → nearest sample is 2 (index 2)
    feats = torch.tensor([[0.0], [1.0], [2.0], [7.0], [10.0]], dtype=torch.float64)
    order = herding_order(feats, 3)
    assert order.tolist()[0] == 2
    # second pick: running sum 2, candidate means (2 + x)/2 closest to 4 → x = 7 (mean 4.5)
    # vs x = 10 → 6, x = 1 → 1.5, x = 0 → 1
    assert order.tolist()[1] == 3
    assert order.unique().numel() == 3


def test_herding_order_full_length_is_a_permutation():
    feats = torch.randn(6, 3, generator=make_generator(4), dtype=torch.float64)
    order = herding_order(feats, 6)
    assert sorted(order.tolist()) == list(range(6))


def test_herding_selection_picks_class_mean_nearest_first():
    # Two classes, 1-D features; class 0 at rows 0..3, class 1 at rows 4..7
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    feats = torch.tensor([[0.0], [3.0], [4.0], [9.0],  # mean 4 → row 2
                          [10.0], [20.0], [31.0], [39.0]])  # mean 25 → row 5 (20) vs 6 (31): 5
    idx = select("herding", labels, 2, 1, make_generator(0), feats)
    assert idx.tolist() == [2, 5]


# ------------------------------------------------------------------ k-center
def test_kcenter_second_pick_is_farthest_from_first():
    feats = torch.randn(10, 2, generator=make_generator(3), dtype=torch.float64)
    order = kcenter_order(feats, 3, make_generator(5))
    first, second = order.tolist()[:2]
    dist = (feats - feats[first]).norm(dim=1)
    assert second == int(dist.argmax())
    assert second != first
    # third pick maximises the distance to the nearer of the two chosen
    third = order.tolist()[2]
    d2 = torch.minimum(dist, (feats - feats[second]).norm(dim=1))
    assert third == int(d2.argmax())


def test_kcenter_first_pick_depends_on_generator_and_is_reproducible():
    feats = torch.randn(50, 2, generator=make_generator(3), dtype=torch.float64)
    firsts = {int(kcenter_order(feats, 1, make_generator(s))[0]) for s in range(8)}
    assert len(firsts) > 1
    a = kcenter_order(feats, 5, make_generator(1))
    b = kcenter_order(feats, 5, make_generator(1))
    assert torch.equal(a, b)


def test_kcenter_1d_hand_made():
    feats = torch.tensor([[0.0], [1.0], [2.0], [10.0]], dtype=torch.float64)
    order = kcenter_order(feats, 2, make_generator(0)).tolist()
    first = order[0]
    expected_second = 3 if first != 3 else 0
    assert order[1] == expected_second


def test_kcenter_no_duplicates_with_identical_features():
    labels = torch.zeros(5, dtype=torch.long)
    feats = torch.zeros(5, 3)
    idx = select("kcenter", labels, 1, 3, make_generator(0), feats)
    assert idx.unique().numel() == 3


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", ["random", "herding", "kcenter"])
def test_ipc_larger_than_class_raises_config_error(name):
    labels = _labels()
    feats = _features(labels.numel())
    with pytest.raises(ConfigError) as info:
        select(name, labels, NUM_CLASSES, 8, make_generator(0), feats)
    message = str(info.value)
    assert "class 0" in message
    assert "7" in message
    assert "8" in message


def test_missing_class_raises_config_error():
    labels = torch.tensor([0, 0, 0, 2, 2, 2])
    with pytest.raises(ConfigError, match="class 1"):
        select("random", labels, 3, 1, make_generator(0))


@pytest.mark.parametrize("name", ["herding", "kcenter"])
def test_feature_based_without_features_raises_config_error(name):
    with pytest.raises(ConfigError, match="features"):
        select(name, _labels(), NUM_CLASSES, 2, make_generator(0))


def test_unknown_coreset_raises_config_error():
    with pytest.raises(ConfigError, match="herding"):
        select("herdin", _labels(), NUM_CLASSES, 2, make_generator(0), _features(sum(COUNTS)))


def test_registry_names():
    assert set(CORESETS.names()) >= {"random", "herding", "kcenter"}


@pytest.mark.parametrize("name", ["herding", "kcenter"])
@pytest.mark.parametrize("multi_label", [False, True])
def test_lazy_rows_select_what_in_memory_features_select_reading_chunks(name, multi_label, monkeypatch):
    """Pixel features of a decoded store (lazy rows) are streamed: the same picks as the N×D tensor,
    and no read ever asks for more rows than a chunk."""
    import mmdd.core.lazy as lazy

    labels = _labels(3)
    if multi_label:
        labels = torch.nn.functional.one_hot(labels, NUM_CLASSES)
        labels[::4, (labels[::4].argmax(1) + 1) % NUM_CLASSES] = 1  # every fourth row in two classes
    pixels = (torch.rand((labels.shape[0], 2, 3, 3), generator=make_generator(4)) * 255).to(torch.uint8)
    largest = []

    def fetch(rows):
        largest.append(len(rows))
        return pixels[torch.from_numpy(rows)]

    rows = lazy.LazyRows(fetch, len(pixels), pixels.shape[1:], torch.uint8)
    monkeypatch.setattr(lazy, "rows_per_chunk", lambda inputs, *a: 5)  # five rows per streamed chunk
    want = select(name, labels, NUM_CLASSES, 4, make_generator(9), pixels)
    got = select(name, labels, NUM_CLASSES, 4, make_generator(9), rows)
    assert torch.equal(got, want)
    assert max(largest) <= 5 and len(largest) > 10
