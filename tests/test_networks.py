"""Tests for mmdd.core.networks (the ConvNet family and create_network)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmdd.core.errors import ConfigError
from mmdd.core.networks import ConvNet, ConvNetConfig, create_network, network_description
from mmdd.core.networks.convnet import AvgPool2x2
from mmdd.core.seeding import make_generator

CLASSES = 5
WIDTH = 8





def _inputs(n: int, shape, seed: int = 0) -> torch.Tensor:
    return torch.randn((n, *shape), generator=make_generator(seed))


def _expected_feature_dim(shape, depth: int, width: int, pooling: str = "avgpool") -> int:
    size = [s + 4 for s in shape[1:]] if tuple(shape) == (1, 28, 28) else list(shape[1:])  # the reference pads 3
    for _ in range(depth):
        if pooling != "none" and min(size) >= 2:
            size = [s // 2 for s in size]
    out = width
    for s in size:
        out *= s
    return out


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_output_and_embed_shapes(shape, depth):
    net = ConvNet(shape, CLASSES, depth=depth, width=WIDTH)
    x = _inputs(3, shape)
    logits = net(x)
    emb = net.embed(x)
    assert logits.shape == (3, CLASSES)
    assert emb.shape == (3, net.feature_dim)
    assert net.feature_dim == _expected_feature_dim(shape, depth, WIDTH)
    assert torch.isfinite(logits).all()
    assert net.in_shape == tuple(shape)
    assert net.num_classes == CLASSES


def test_small_input_stops_pooling_before_sides_vanish():
    # 8 → 4 → 2 → 1, then no more pooling at depth 4 (and beyond).
    for depth in (4, 5):
        net = ConvNet((1, 8, 8), CLASSES, depth=depth, width=WIDTH)
        pools = [m for m in net.features if isinstance(m, nn.AvgPool2d)]
        assert len(pools) == 3
        assert net.feature_dim == WIDTH * 1 * 1
        assert net(_inputs(2, (1, 8, 8))).shape == (2, CLASSES)


def test_non_square_input_pools_until_smallest_side_is_one():
    net = ConvNet((1, 4, 16), CLASSES, depth=4, width=WIDTH)
    # 4×16 → 2×8 → 1×4 → (stop)
    assert net.feature_dim == WIDTH * 1 * 4
    assert net(_inputs(2, (1, 4, 16))).shape == (2, CLASSES)


# ------------------------------------------------------------------ norms
@pytest.mark.parametrize("norm", ["instancenorm", "layernorm", "groupnorm", "batchnorm", "none"])
def test_every_norm_builds_and_runs(norm):
    net = ConvNet((1, 8, 8), CLASSES, depth=2, width=WIDTH, norm=norm)
    out = net(_inputs(4, (1, 8, 8)))
    assert out.shape == (4, CLASSES)
    assert torch.isfinite(out).all()


def test_instancenorm_is_groupnorm_with_one_channel_per_group():
    net = ConvNet((1, 8, 8), CLASSES, depth=2, width=WIDTH, norm="instancenorm")
    norms = [m for m in net.features if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2
    for m in norms:
        assert m.num_groups == m.num_channels == WIDTH
        assert m.affine


def test_layernorm_is_groupnorm_with_one_group():
    net = ConvNet((1, 8, 8), CLASSES, depth=2, width=WIDTH, norm="layernorm")
    norms = [m for m in net.features if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 2
    for m in norms:
        assert m.num_groups == 1
        assert m.num_channels == WIDTH


def test_batchnorm_uses_batchnorm_layers():
    net2 = ConvNet((1, 8, 8), CLASSES, depth=2, width=WIDTH, norm="batchnorm")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net2.features) == 2
    net3 = ConvNet((1, 4, 8, 8), CLASSES, depth=2, width=WIDTH, norm="batchnorm", spatial_dims=3)
    assert sum(isinstance(m, nn.BatchNorm3d) for m in net3.features) == 2


def test_none_norm_has_no_normalisation_layers():
    net = ConvNet((1, 8, 8), CLASSES, depth=3, width=WIDTH, norm="none")
    norm_types = (nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norm_types) for m in net.modules())
    # conv, identity, relu, pool per block
    assert sum(isinstance(m, nn.Conv2d) for m in net.features) == 3


def test_unknown_norm_raises():
    with pytest.raises(ValueError, match="unknown norm"):
        ConvNet((1, 8, 8), CLASSES, depth=1, width=WIDTH, norm="weirdnorm")


def test_groupnorm_width_not_multiple_of_four_is_reported_or_works():
    cfg = ConvNetConfig(depth=1, width=6, norm="groupnorm")
    if cfg.check("network"):
        return  # rejected up front with a readable message: fine
    net = create_network(cfg, (1, 8, 8), CLASSES, make_generator(0))
    assert net(_inputs(2, (1, 8, 8))).shape == (2, CLASSES)


# ------------------------------------------------------------------ pooling
@pytest.mark.parametrize("pooling,layer", [("avgpool", AvgPool2x2), ("maxpool", nn.MaxPool2d), ("none", None)])
def test_pooling_kinds(pooling, layer):
    shape = (1, 8, 8)
    net = ConvNet(shape, CLASSES, depth=2, width=WIDTH, pooling=pooling)
    pool_types = (nn.AvgPool2d, nn.MaxPool2d)
    pools = [m for m in net.features if isinstance(m, pool_types)]
    if layer is None:
        assert pools == []
        assert net.feature_dim == WIDTH * 8 * 8
    else:
        assert len(pools) == 2 and all(type(m) is layer for m in pools)
        assert net.feature_dim == WIDTH * 2 * 2
    assert net.feature_dim == _expected_feature_dim(shape, 2, WIDTH, pooling)
    x = _inputs(3, shape)
    assert net.embed(x).shape == (3, net.feature_dim)
    assert net(x).shape == (3, CLASSES)


@pytest.mark.parametrize("activation", ["relu", "leakyrelu", "sigmoid", "gelu"])
def test_activations(activation):
    net = ConvNet((1, 8, 8), CLASSES, depth=1, width=WIDTH, activation=activation)
    assert net(_inputs(2, (1, 8, 8))).shape == (2, CLASSES)


# ------------------------------------------------------------------ 3D
@pytest.mark.parametrize("depth", [1, 3, 4])
def test_spatial_dims_3(depth):
    shape = (1, 8, 16, 16)
    net = ConvNet(shape, CLASSES, depth=depth, width=4, spatial_dims=3)
    assert any(isinstance(m, nn.Conv3d) for m in net.features)
    assert not any(isinstance(m, nn.Conv2d) for m in net.features)
    x = _inputs(2, shape)
    assert net(x).shape == (2, CLASSES)
    assert net.embed(x).shape == (2, net.feature_dim)
    assert net.feature_dim == _expected_feature_dim(shape, depth, 4)


def test_create_network_spatial_dims_3():
    cfg = ConvNetConfig(depth=2, width=4)
    net = create_network(cfg, (1, 8, 16, 16), 3, make_generator(0), spatial_dims=3)
    assert net(_inputs(2, (1, 8, 16, 16))).shape == (2, 3)


# ------------------------------------------------------------------ bad shapes
@pytest.mark.parametrize(
    "shape,spatial_dims",
    [((28, 28), 2), ((1, 28), 2), ((1, 8, 8, 8), 2), ((1, 8, 8), 3), ((8,), 3)],
)
def test_bad_in_shape_raises_value_error(shape, spatial_dims):
    with pytest.raises(ValueError, match="in_shape"):
        ConvNet(shape, CLASSES, depth=1, width=WIDTH, spatial_dims=spatial_dims)


@pytest.mark.parametrize("shape", [(1, 0, 8), (0, 8, 8), (1, -2, 8)])
def test_non_positive_in_shape_raises_value_error(shape):
    with pytest.raises(ValueError, match="in_shape"):
        ConvNet(shape, CLASSES, depth=1, width=WIDTH)


def test_bad_in_shape_via_create_network_raises_value_error():
    with pytest.raises(ValueError):
        create_network(ConvNetConfig(depth=1, width=WIDTH), (28, 28), CLASSES, make_generator(0))


def test_bad_spatial_dims_raises_value_error():
    with pytest.raises(ValueError, match="spatial_dims"):
        ConvNet((1, 8), CLASSES, depth=1, width=WIDTH, spatial_dims=1)


# ------------------------------------------------------------------ create_network
def _weights(net: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in net.state_dict().values()]


def test_create_network_same_seed_same_weights():
    cfg = ConvNetConfig(depth=2, width=WIDTH)
    a = create_network(cfg, (1, 8, 8), CLASSES, make_generator(123))
    b = create_network(cfg, (1, 8, 8), CLASSES, make_generator(123))
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        assert torch.equal(x, y)


def test_create_network_different_seed_different_weights():
    cfg = ConvNetConfig(depth=2, width=WIDTH)
    a = create_network(cfg, (1, 8, 8), CLASSES, make_generator(1))
    b = create_network(cfg, (1, 8, 8), CLASSES, make_generator(2))
    conv_a, conv_b = a.features[0].weight, b.features[0].weight
    assert not torch.equal(conv_a, conv_b)
    assert not torch.equal(a.classifier.weight, b.classifier.weight)


def test_create_network_successive_draws_from_one_generator_differ():
    cfg = ConvNetConfig(depth=1, width=WIDTH)
    gen = make_generator(0)
    a = create_network(cfg, (1, 8, 8), CLASSES, gen)
    b = create_network(cfg, (1, 8, 8), CLASSES, gen)
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


def test_create_network_leaves_global_rng_untouched():
    cfg = ConvNetConfig(depth=2, width=WIDTH)
    torch.manual_seed(987)  # a known global state for this test
    before = torch.random.get_rng_state()
    create_network(cfg, (1, 8, 8), CLASSES, make_generator(5))
    after = torch.random.get_rng_state()
    assert torch.equal(before, after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_create_network_leaves_global_cuda_rng_untouched():
    cfg = ConvNetConfig(depth=1, width=WIDTH)
    before = torch.cuda.get_rng_state()
    create_network(cfg, (1, 8, 8), CLASSES, make_generator(5))
    assert torch.equal(before, torch.cuda.get_rng_state())


def test_create_network_weights_independent_of_global_rng():
    cfg = ConvNetConfig(depth=1, width=WIDTH)
    torch.manual_seed(1)
    a = create_network(cfg, (1, 8, 8), CLASSES, make_generator(7))
    torch.manual_seed(2)
    b = create_network(cfg, (1, 8, 8), CLASSES, make_generator(7))
    for x, y in zip(_weights(a), _weights(b)):
        assert torch.equal(x, y)


def test_create_network_uses_config_options():
    cfg = ConvNetConfig(depth=3, width=6, norm="layernorm", pooling="maxpool", activation="gelu")
    net = create_network(cfg, (3, 16, 16), 7, make_generator(0))
    assert isinstance(net, ConvNet)
    assert sum(isinstance(m, nn.Conv2d) for m in net.features) == 3
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.features) == 3
    assert sum(isinstance(m, nn.GELU) for m in net.features) == 3
    assert net.features[0].out_channels == 6
    assert net(_inputs(2, (3, 16, 16))).shape == (2, 7)


def test_create_network_unknown_name_raises_config_error():
    cfg = ConvNetConfig(name="convnett")
    with pytest.raises(ConfigError, match="convnet"):
        create_network(cfg, (1, 8, 8), CLASSES, make_generator(0))


def test_config_check_and_description():
    assert ConvNetConfig().check("network") == []
    problems = ConvNetConfig(depth=0, width=0).check("network")
    assert len(problems) == 2
    assert any("depth" in p for p in problems) and any("width" in p for p in problems)
    text = network_description(ConvNetConfig(depth=3, width=128))
    assert "ConvNet-3" in text and "128" in text


def test_the_first_layer_pads_like_the_reference_nets_on_28x28_gray_images():
    from mmdd.core.networks.convnet import ConvNet

    ref = ConvNet((1, 28, 28), 10, depth=3, width=128)
    assert ref.features[0].padding == (3, 3) and ref.feature_dim == 2048  # 32×32 → 4×4 × 128, as DC/DSA/DM/MTT
    assert ref(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    variant = ConvNet((1, 28, 28), 10, depth=3, width=128, first_padding=1)  # mmdd's earlier 28×28 net
    assert variant.features[0].padding == (1, 1) and variant.feature_dim == 1152
    for shape in ((3, 32, 32), (1, 8, 8), (3, 28, 28), (1, 28, 28, 28)):  # the rule is for gray 28×28 images only
        net = ConvNet(shape, 10, depth=2, width=8, spatial_dims=len(shape) - 1)
        assert net.features[0].padding in ((1, 1), (1, 1, 1))


# ------------------------------------------------------------------ the CPU pool path
def _reference_pool(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, 2, 2)


@pytest.mark.parametrize("shape", [(3, 16, 8, 8), (2, 5, 7, 9), (1, 1, 2, 2), (4, 128, 32, 32)])
@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30])
def test_cpu_pool_is_bit_identical_to_avg_pool_in_value_gradient_and_second_order(shape, scale):
    """The depthwise-convolution path must be avg_pool2d exactly, so no result moves with it: the output,
    the input gradient, and the gradient of a function of that gradient (what MTT's exact solver and the
    constant-memory adjoint differentiate)."""
    gen = make_generator(1)
    x = (torch.randn(shape, generator=gen) * scale).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    pool = AvgPool2x2()
    out, ref = pool(x), _reference_pool(x_ref)
    assert torch.equal(out, ref)
    upstream = torch.randn(ref.shape, generator=gen).requires_grad_(True)
    (g,) = torch.autograd.grad(out, x, upstream, create_graph=True)
    (g_ref,) = torch.autograd.grad(ref, x_ref, upstream, create_graph=True)
    assert torch.equal(g, g_ref)
    weight = torch.randn(shape, generator=gen)  # second order: the pool's backward, differentiated again
    (h,) = torch.autograd.grad((g * weight).sum(), upstream)
    (h_ref,) = torch.autograd.grad((g_ref * weight).sum(), upstream)
    assert torch.equal(h, h_ref)


def test_cpu_pool_takes_the_depthwise_path_only_where_it_is_exact(monkeypatch):
    from mmdd.core.networks import convnet

    calls = []
    real_conv2d = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **k: calls.append(1) or real_conv2d(*a, **k))
    pool = AvgPool2x2()
    x = torch.randn(2, 4, 6, 6)
    pool(x)
    assert calls == [1]  # float32, contiguous, CPU: the fast path
    for other in (x.double(), x.contiguous(memory_format=torch.channels_last)):
        assert torch.equal(pool(other), _reference_pool(other))
    calls.clear()
    pool(x.double())
    assert calls == []  # float64 and channels-last take avg_pool2d
    pool(x.contiguous(memory_format=torch.channels_last))
    assert calls == []
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    pool(x)
    assert calls == []
    assert convnet._depthwise_pool_applies(x) is False


def test_the_cpu_pool_can_be_switched_off_by_environment(monkeypatch):
    from mmdd.core import speed
    from mmdd.core.networks import convnet

    x = torch.randn(2, 4, 6, 6)
    monkeypatch.setattr(speed, "_cpu_pool", None)
    monkeypatch.setenv("MMDD_CPU_POOL", "avg_pool")
    assert speed.cpu_pool() == "avg_pool" and convnet._depthwise_pool_applies(x) is False
    monkeypatch.setattr(speed, "_cpu_pool", None)
    monkeypatch.setenv("MMDD_CPU_POOL", "fast")
    with pytest.raises(ValueError, match="MMDD_CPU_POOL"):
        speed.cpu_pool()
    monkeypatch.setattr(speed, "_cpu_pool", None)
    monkeypatch.delenv("MMDD_CPU_POOL")
    assert speed.cpu_pool() == "depthwise" and convnet._depthwise_pool_applies(x) is True


def test_a_convnet_trains_identically_with_either_pool():
    """One SGD step of a whole ConvNet: same loss, gradients and a second-order gradient with the CPU
    pool as with nn.AvgPool2d."""
    gen = make_generator(2)
    fast = ConvNet((3, 16, 16), CLASSES, depth=2, width=WIDTH)
    slow = ConvNet((3, 16, 16), CLASSES, depth=2, width=WIDTH)
    slow.load_state_dict(fast.state_dict())
    for i, m in enumerate(slow.features):
        if isinstance(m, AvgPool2x2):
            slow.features[i] = nn.AvgPool2d(2, 2)
    x = torch.randn(6, 3, 16, 16, generator=gen)
    y = torch.randint(0, CLASSES, (6,), generator=gen)
    results = []
    for net in (fast, slow):
        inputs = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(net(inputs), y)
        grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
        meta = sum((g * g).sum() for g in grads)
        (dx,) = torch.autograd.grad(meta, [inputs])
        results.append((loss.detach(), [g.detach() for g in grads], dx))
    (l1, g1, d1), (l2, g2, d2) = results
    assert torch.equal(l1, l2) and all(torch.equal(a, b) for a, b in zip(g1, g2)) and torch.equal(d1, d2)
