"""Tests for mmdd.core.augment (Differentiable Siamese Augmentation)."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmdd.core.augment import AUGMENT_TRANSFORMS, AugmentDraw, ImageAugment, parse_strategy
from mmdd.core.errors import ConfigError
from mmdd.core.seeding import make_generator

SHAPES = [(1, 28, 28), (1, 8, 8), (3, 16, 16)]


def _images(n: int, shape=(1, 28, 28), seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    gen = make_generator(seed)
    return torch.randn((n, *shape), generator=gen, dtype=dtype)


# ---------------------------------------------------------------- configuration
def test_parse_strategy():
    assert parse_strategy("color_crop_cutout_flip_scale_rotate") == AUGMENT_TRANSFORMS
    assert parse_strategy("flip_color") == ("flip", "color")
    assert parse_strategy("") == ()
    assert parse_strategy("none") == ()
    assert parse_strategy(" NONE ") == ()


def test_unknown_transform_raises_config_error_naming_it():
    with pytest.raises(ConfigError) as info:
        ImageAugment("color_blurr_flip")
    message = str(info.value)
    assert "blurr" in message
    for name in AUGMENT_TRANSFORMS:
        assert name in message  # lists the valid ones


def test_unknown_mode_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="sometimes"):
        ImageAugment("flip", mode="sometimes")


@pytest.mark.parametrize(
    "kwargs", [{"cutout_ratio": 1.5}, {"scale_ratio": 0.5}, {"crop_ratio": -0.1}, {"brightness": "x"}]
)
def test_bad_numeric_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        ImageAugment("flip", **kwargs)


@pytest.mark.parametrize("strategy", ["none", ""])
def test_none_strategy_is_identity(strategy):
    aug = ImageAugment(strategy)
    x = _images(5)
    assert torch.equal(aug(x, make_generator(0)), x)
    real, syn = aug.siamese([x, x[:2]], make_generator(1))
    assert torch.equal(real, x) and torch.equal(syn, x[:2])


def test_single_mode_picks_one_transform_and_covers_all():
    aug = ImageAugment(mode="single")
    gen = make_generator(3)
    seen = set()
    for _ in range(200):
        draw = aug.sample(gen)
        assert len(draw.ops) == 1
        seen.add(draw.ops[0])
    assert seen == set(AUGMENT_TRANSFORMS)


def test_all_mode_applies_every_transform_in_order():
    aug = ImageAugment("rotate_flip_color", mode="all")
    draw = aug.sample(make_generator(0), batch_size=4)
    assert draw.ops == ("rotate", "flip", "color")
    for op in draw.ops:
        for value in draw.params[op].values():
            assert value.shape == (4,)


def test_siamese_draw_has_shape_one_params():
    draw = ImageAugment(mode="all").sample(make_generator(0))
    assert isinstance(draw, AugmentDraw) and draw.siamese
    for op in draw.ops:
        for value in draw.params[op].values():
            assert value.shape == (1,)


def test_per_sample_draw_rejects_other_batch_size():
    aug = ImageAugment("color")
    draw = aug.sample(make_generator(0), batch_size=4)
    with pytest.raises(ValueError, match="4"):
        aug.apply(_images(3), draw)


# ---------------------------------------------------------------------- siamese
@pytest.mark.parametrize("op", AUGMENT_TRANSFORMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_siamese_same_transform_on_batches_of_different_sizes(op, shape):
    aug = ImageAugment(op)
    a = _images(6, shape, seed=1)
    b = a[:3].clone()
    for seed in range(5):
        out_a, out_b = aug.siamese([a, b], make_generator(seed))
        assert out_a.shape == a.shape and out_b.shape == b.shape
        torch.testing.assert_close(out_b, out_a[:3], rtol=1e-6, atol=1e-6)
        # every row of a siamese batch gets the same transform: identical rows stay identical
        same = torch.cat([a[:1]] * 4)
        (out_same,) = aug.siamese([same], make_generator(seed))
        torch.testing.assert_close(out_same, out_same[:1].expand_as(out_same), rtol=0, atol=1e-6)


def test_siamese_different_seeds_give_different_outputs():
    x = _images(4, (3, 16, 16), seed=2)
    differs = {}
    for op in AUGMENT_TRANSFORMS:
        aug = ImageAugment(op)
        outs = [aug.siamese([x], make_generator(seed))[0] for seed in range(6)]
        differs[op] = any(not torch.equal(p, q) for p, q in itertools.combinations(outs, 2))
    # every transform with continuous or multi-valued draws must change with the seed
    assert all(differs.values()), differs


# ------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("mode", ["single", "all"])
def test_same_seed_same_output(mode):
    aug = ImageAugment(mode=mode)
    x = _images(8, (3, 16, 16))
    for seed in range(4):
        assert torch.equal(aug(x, make_generator(seed)), aug(x, make_generator(seed)))
        s1 = aug.siamese([x, x[:3]], make_generator(seed))
        s2 = aug.siamese([x, x[:3]], make_generator(seed))
        assert all(torch.equal(p, q) for p, q in zip(s1, s2))


def test_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ImageAugment(mode="all")(_images(4), make_generator(0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("op", AUGMENT_TRANSFORMS)
@pytest.mark.parametrize("siamese", [False, True])
def test_gradient_flows(op, siamese):
    aug = ImageAugment(op)
    x = _images(4, (3, 8, 8)).requires_grad_(True)
    gen = make_generator(7)
    out = aug.siamese([x], gen)[0] if siamese else aug(x, gen)
    out.sum().backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_gradient_flows_all_mode_float64():
    aug = ImageAugment(mode="all")
    x = _images(3, (1, 28, 28), dtype=torch.float64).requires_grad_(True)
    out = aug(x, make_generator(0))
    assert out.dtype == torch.float64
    (out * torch.linspace(0, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_dtypes_preserved(dtype, shape):
    aug = ImageAugment(mode="all")
    x = _images(5, shape, dtype=dtype)
    out = aug(x, make_generator(0))
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out).all()


# ------------------------------------------------------------------ transforms
def test_flip_really_flips_when_chosen():
    aug = ImageAugment("flip")
    x = _images(64, (3, 8, 8))
    out = aug(x, make_generator(0))
    flipped = torch.tensor([torch.equal(o, f) for o, f in zip(out, x.flip(-1))])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all())  # each row is either flipped or untouched
    assert flipped.any() and kept.any()  # both happen in a batch of 64
    draw = aug.sample(make_generator(0), batch_size=64)
    assert torch.equal(flipped, draw.params["flip"]["u"] < 0.5)


@pytest.mark.parametrize("shape,side", [((1, 28, 28), 14), ((1, 8, 8), 4), ((3, 16, 16), 8)])
def test_cutout_zeros_a_square_of_the_right_size(shape, side):
    aug = ImageAugment("cutout", cutout_ratio=0.5)
    x = _images(16, shape).abs() + 1.0  # no zero pixels to begin with
    out = aug(x, make_generator(4))
    zero = out == 0
    assert torch.equal(zero.sum(dim=(1, 2, 3)), torch.full((16,), side * side * shape[0]))
    assert torch.equal(out[~zero], x[~zero])  # the rest is untouched
    for z in zero[:, 0]:
        rows = z.any(dim=1).nonzero().flatten()
        cols = z.any(dim=0).nonzero().flatten()
        assert len(rows) == side and len(cols) == side  # a square, not a scatter
        assert rows[-1] - rows[0] == side - 1 and cols[-1] - cols[0] == side - 1


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[i, j] = x[i + dy, j + dx], zero outside."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = x[
        ..., max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


@pytest.mark.parametrize("shape,max_shift", [((1, 8, 8), 1), ((1, 28, 28), 4), ((3, 16, 16), 2)])
def test_crop_is_a_bounded_integer_shift(shape, max_shift):
    aug = ImageAugment("crop", crop_ratio=0.125)
    x = _images(24, shape)
    out = aug(x, make_generator(5))
    assert out.shape == x.shape
    shifts = set()
    for xi, oi in zip(x, out):
        found = [
            (dy, dx)
            for dy in range(-max_shift, max_shift + 1)
            for dx in range(-max_shift, max_shift + 1)
            if torch.equal(oi, _shifted(xi, dy, dx))
        ]
        assert found, "crop output is not an in-range shift of its input"
        shifts.add(found[0])
    assert len(shifts) > 1


def test_scale_and_rotate_identity_at_zero_range():
    x = _images(4, (3, 16, 16))
    for aug in (ImageAugment("scale", scale_ratio=1.0), ImageAugment("rotate", rotate_degrees=0.0)):
        torch.testing.assert_close(aug(x, make_generator(0)), x, rtol=0, atol=1e-5)


def test_rotate_keeps_centre_and_moves_the_rest():
    # a centred disc is (almost) rotation invariant; an off-centre dot is not
    h = 29
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    c = (h - 1) / 2
    disc = (((yy - c) ** 2 + (xx - c) ** 2) <= 36).float()
    aug = ImageAugment("rotate", rotate_degrees=15.0)
    out = aug(disc.expand(8, 1, h, h).contiguous(), make_generator(1))
    assert out[:, 0, 14, 14].allclose(torch.ones(8))
    assert (out - disc).abs().mean() < 0.02
    dot = torch.zeros(8, 1, h, h)
    dot[:, :, 14, 26] = 1.0
    assert not torch.allclose(aug(dot, make_generator(1)), dot, atol=1e-3)


def test_color_matches_formula():
    aug = ImageAugment("color", brightness=1.0, saturation=2.0, contrast=0.5)
    x = _images(3, (3, 4, 4))
    draw = aug.sample(make_generator(0), batch_size=3)
    p = draw.params["color"]
    ub, us, uc = (p[k].view(-1, 1, 1, 1) for k in ("brightness", "saturation", "contrast"))
    y = x + (ub - 0.5) * 1.0
    m = y.mean(dim=1, keepdim=True)
    y = (y - m) * (us * 2.0) + m
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - m) * (uc + 0.5) + m
    torch.testing.assert_close(aug.apply(x, draw), y)


def test_per_sample_draws_differ_across_samples():
    x = _images(1, (3, 16, 16)).expand(8, -1, -1, -1).contiguous()  # 8 identical images
    distinct = {}
    for op in AUGMENT_TRANSFORMS:
        out = ImageAugment(op)(x, make_generator(2))
        distinct[op] = any(not torch.equal(out[0], out[i]) for i in range(1, 8))
    # continuous per-sample parameters: these must give different rows
    for op in ("color", "scale", "rotate", "cutout"):
        assert distinct[op], op


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    aug = ImageAugment(mode="all")
    x = _images(4, (3, 16, 16))
    cpu = aug(x, make_generator(0))
    gpu = aug(x.cuda(), make_generator(0))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
