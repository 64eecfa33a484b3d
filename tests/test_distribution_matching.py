"""Tests for distribution matching (mmdd.core.matchers.distribution) and the loop (mmdd.core.distill)."""

from __future__ import annotations

import math

import pytest
import torch

from mmdd.core.augment import ImageAugment
from mmdd.core.data import ClassIndex, Split
from mmdd.core.distill import NonFiniteLoss, make_optimizer, run_loop
from mmdd.core.errors import RunError
from mmdd.core.matchers.base import Matcher, MatchingContext
from mmdd.core.matchers.distribution import (
    DistributionMatcher,
    DMConfig,
    gaussian_mmd,
    linear_mmd,
    median_bandwidth,
)
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet

CLASSES = 3
PER_CLASS = 40
SHAPE = (1, 8, 8)





def _real(seed: int = 0) -> ClassIndex:
    """3 classes × 40 samples, class-major, each class with a different mean."""
    gen = make_generator(seed)
    xs = [torch.randn((PER_CLASS, *SHAPE), generator=gen) * 0.3 + (c - 1) * 1.5 for c in range(CLASSES)]
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    return ClassIndex(Split(torch.cat(xs), labels), CLASSES)


def _noise_set(ipc: int, seed: int = 1, **kw) -> PixelSet:
    inputs = torch.randn((CLASSES * ipc, *SHAPE), generator=make_generator(seed))
    return PixelSet(inputs, CLASSES, ipc, **kw)


def _context(augment=None) -> MatchingContext:
    return MatchingContext(
        make_network=lambda g: create_network(ConvNetConfig(depth=1, width=8), SHAPE, CLASSES, g),
        augment=augment,
        device=torch.device("cpu"),
    )


def _matcher(**kw) -> DistributionMatcher:
    return DistributionMatcher(DMConfig(**kw), _context())


# ------------------------------------------------------------------ loss values
@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_loss_is_nonnegative_finite_scalar_with_grad(kernel):
    syn = _noise_set(ipc=4)
    loss = _matcher(kernel=kernel, batch_real=16)(syn, _real(), make_generator(0))
    assert loss.dim() == 0
    assert math.isfinite(loss.item())
    assert loss.item() > 0  # noise vs. shifted real data: clearly different
    loss.backward()
    assert syn.inputs.grad is not None
    assert syn.inputs.grad.abs().sum() > 0


def test_linear_loss_zero_when_synthetic_equals_real_class():
    real = _real()
    syn = PixelSet(real.split.inputs.clone(), CLASSES, PER_CLASS)  # class-major, ipc = class size
    loss = _matcher(kernel="linear", batch_real=PER_CLASS)(syn, real, make_generator(0))
    # the real batch is a permutation of the synthetic block: same mean up to float summation order
    assert loss.item() >= 0
    assert loss.item() < 1e-9


def test_linear_loss_positive_when_batch_real_covers_class_but_classes_swapped():
    real = _real()
    x = real.split.inputs.clone()
    swapped = torch.cat([x[PER_CLASS:2 * PER_CLASS], x[:PER_CLASS], x[2 * PER_CLASS:]])
    syn = PixelSet(swapped, CLASSES, PER_CLASS)
    loss = _matcher(kernel="linear", batch_real=PER_CLASS)(syn, real, make_generator(0))
    assert loss.item() > 1e-3


def test_loss_is_deterministic_for_a_seed():
    syn, real = _noise_set(ipc=2), _real()
    m = _matcher(kernel="gaussian", batch_real=8)
    a = m(syn, real, make_generator(3))
    b = m(syn, real, make_generator(3))
    c = m(syn, real, make_generator(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_matcher_with_siamese_augmentation_runs():
    syn, real = _noise_set(ipc=2), _real()
    m = DistributionMatcher(DMConfig(batch_real=8), _context(ImageAugment("color_crop_flip", "single")))
    loss = m(syn, real, make_generator(0))
    assert math.isfinite(loss.item()) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(syn.inputs.grad).all()


def test_network_parameters_receive_no_gradient():
    built = []

    def make(g):
        net = create_network(ConvNetConfig(depth=1, width=8), SHAPE, CLASSES, g)
        built.append(net)
        return net

    m = DistributionMatcher(DMConfig(batch_real=8), MatchingContext(make, None, torch.device("cpu")))
    syn = _noise_set(ipc=2)
    m(syn, _real(), make_generator(0)).backward()
    assert len(built) == 1  # one fresh network per call
    assert all(p.grad is None for p in built[0].parameters())


# ------------------------------------------------------------------ kernels
def test_gaussian_mmd_zero_for_identical_and_positive_for_shifted():
    a = torch.randn(30, 6, generator=make_generator(0))
    assert abs(gaussian_mmd(a, a, 1.0).item()) < 1e-6
    assert gaussian_mmd(a, a + 2.0, 1.0).item() > 0.1
    # larger shift → larger MMD
    assert gaussian_mmd(a, a + 3.0, 1.0).item() > gaussian_mmd(a, a + 0.5, 1.0).item()


def test_gaussian_mmd_symmetric_and_small_for_same_distribution():
    g = make_generator(1)
    a, b = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g)
    assert gaussian_mmd(a, b, 1.0).item() == pytest.approx(gaussian_mmd(b, a, 1.0).item(), abs=1e-6)
    assert gaussian_mmd(a, b, 1.0).item() < gaussian_mmd(a, b + 1.0, 1.0).item()


def test_linear_mmd_value():
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # mean (1, 0)
    b = torch.tensor([[0.0, 3.0]])  # mean (0, 3)
    assert linear_mmd(a, b).item() == pytest.approx(1.0 + 9.0)


def test_median_bandwidth():
    x = torch.tensor([[0.0], [1.0], [3.0]])  # off-diagonal distances 1,3,2 (each twice) → median 2
    assert median_bandwidth(x).item() == pytest.approx(2.0)
    assert median_bandwidth(torch.zeros(1, 3)).item() == pytest.approx(1.0)
    assert median_bandwidth(torch.zeros(4, 3)).item() > 0  # clamped, never 0


# ------------------------------------------------------------------ optimisation
@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_optimisation_reduces_loss(kernel):
    real = _real()
    syn = _noise_set(ipc=5)
    cfg = DMConfig(kernel=kernel, batch_real=32, lr_inputs=1.0 if kernel == "linear" else 10.0, momentum=0.5)
    matcher = DistributionMatcher(cfg, _context())
    opt = make_optimizer(syn, cfg)
    losses: list[float] = []
    last = run_loop(syn, matcher, real, opt, make_generator(0), 60,
                    log=lambda step, rec: losses.append(rec["loss"]), progress=False)
    assert last == 60
    assert len(losses) == 60
    first, final = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert final < 0.5 * first, (first, final)


# ------------------------------------------------------------------ loop
class _FakeMatcher(Matcher):
    """Finite loss for the first ``good`` calls, NaN afterwards."""

    def __init__(self, good: int):
        self.good, self.calls = good, 0

    def __call__(self, syn, real, gen):
        self.calls += 1
        loss = (syn.inputs ** 2).sum()
        return loss if self.calls <= self.good else loss * float("nan")


def test_nonfinite_loss_raises_before_update():
    syn = _noise_set(ipc=2)
    opt = make_optimizer(syn, DMConfig(lr_inputs=0.1))
    matcher = _FakeMatcher(good=3)
    snapshots = {}
    with pytest.raises(NonFiniteLoss) as info:
        run_loop(syn, matcher, _real(), opt, make_generator(0), 10,
                 log=lambda step, rec: snapshots.__setitem__(step, syn.inputs.detach().clone()),
                 progress=False)
    assert isinstance(info.value, RunError)
    assert info.value.step == 4
    assert math.isnan(info.value.value)
    assert "step 4" in str(info.value)
    # the NaN step did not touch the inputs: they equal the state after step 3
    assert sorted(snapshots) == [1, 2, 3]
    assert torch.equal(syn.inputs.detach(), snapshots[3])
    assert torch.isfinite(syn.inputs).all()
    assert not torch.equal(snapshots[1], snapshots[3])  # the good steps did update


def test_nonfinite_first_step_leaves_inputs_identical():
    syn = _noise_set(ipc=2)
    before = syn.inputs.detach().clone()
    opt = make_optimizer(syn, DMConfig(lr_inputs=0.1))
    saved = []
    with pytest.raises(NonFiniteLoss):
        run_loop(syn, _FakeMatcher(good=0), _real(), opt, make_generator(0), 5,
                 save_checkpoint=saved.append, checkpoint_every=1, progress=False)
    assert torch.equal(syn.inputs.detach(), before)
    assert saved == []


def test_inf_loss_also_stops():
    class InfMatcher:
        def __call__(self, syn, real, gen):
            return syn.inputs.sum() * 0 + float("inf")

    syn = _noise_set(ipc=2)
    opt = make_optimizer(syn, DMConfig(lr_inputs=0.1))
    with pytest.raises(NonFiniteLoss) as info:
        run_loop(syn, InfMatcher(), _real(), opt, make_generator(0), 5, progress=False)
    assert info.value.step == 1 and info.value.value == float("inf")


def _distill(seed: int, steps: int) -> PixelSet:
    syn = _noise_set(ipc=2, seed=1)
    cfg = DMConfig(batch_real=8, lr_inputs=1.0)
    opt = make_optimizer(syn, cfg)
    run_loop(syn, DistributionMatcher(cfg, _context()), _real(), opt, make_generator(seed), steps, progress=False)
    return syn


def test_same_seed_bitwise_identical_after_steps():
    a, b, c = _distill(7, 5), _distill(7, 5), _distill(8, 5)
    assert torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, c.inputs)
    start = _noise_set(ipc=2, seed=1).inputs
    assert not torch.equal(a.inputs, start)


def test_resume_in_pieces_matches_uninterrupted_run():
    cfg = DMConfig(batch_real=8, lr_inputs=1.0)
    real = _real()

    full = _noise_set(ipc=2)
    opt = make_optimizer(full, cfg)
    run_loop(full, DistributionMatcher(cfg, _context()), real, opt, make_generator(3), 6, progress=False)

    pieces = _noise_set(ipc=2)
    opt = make_optimizer(pieces, cfg)
    gen = make_generator(3)
    matcher = DistributionMatcher(cfg, _context())
    step = run_loop(pieces, matcher, real, opt, gen, 6, stop_after=2, progress=False)
    assert step == 2
    # simulate a checkpoint round-trip of generator and optimizer state
    gen_state, opt_state = gen.get_state(), opt.state_dict()
    resumed = PixelSet.from_tensors({k: v.clone() for k, v in pieces.state_dict().items()}, pieces.metadata())
    opt2 = make_optimizer(resumed, cfg)
    opt2.load_state_dict(opt_state)
    gen2 = make_generator(0)
    gen2.set_state(gen_state)
    step = run_loop(resumed, matcher, real, opt2, gen2, 6, start_step=step, progress=False)
    assert step == 6
    assert torch.equal(resumed.inputs, full.inputs)


@pytest.mark.parametrize(
    "steps,every,start,stop_after,expected",
    [
        (10, 3, 0, None, [3, 6, 9, 10]),
        (9, 3, 0, None, [3, 6, 9]),
        (10, 3, 0, 5, [3, 5]),
        (10, 3, 5, None, [6, 9, 10]),
        (10, 100, 0, None, [10]),
    ],
)
def test_checkpoint_callback_steps(steps, every, start, stop_after, expected):
    syn = _noise_set(ipc=1)
    opt = make_optimizer(syn, DMConfig(lr_inputs=0.01))
    saved: list[int] = []
    logged: list[int] = []
    last = run_loop(syn, _FakeMatcher(good=10**6), _real(), opt, make_generator(0), steps,
                    start_step=start, checkpoint_every=every, save_checkpoint=saved.append,
                    stop_after=stop_after, log=lambda s, r: logged.append(s), progress=False)
    assert saved == expected
    assert last == expected[-1]
    assert logged == list(range(start + 1, last + 1))


def test_log_records_learned_lr_when_learned():
    syn = _noise_set(ipc=1, learn_lr=True, lr_init=0.05)
    cfg = DMConfig(lr_inputs=0.01, lr_lr=0.0)
    opt = make_optimizer(syn, cfg)
    records = []
    run_loop(syn, _FakeMatcher(good=10), _real(), opt, make_generator(0), 2,
             log=lambda s, r: records.append(r), progress=False)
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["learned_lr"] == pytest.approx(0.05, rel=1e-5) for r in records)


def test_make_optimizer_groups_and_freezing():
    syn = _noise_set(ipc=1, soft_labels=True, learn_lr=True)
    opt = make_optimizer(syn, DMConfig(lr_inputs=2.0, lr_labels=0.0, lr_lr=0.5, momentum=0.3))
    names = {g["name"]: g for g in opt.param_groups}
    assert set(names) == {"inputs", "lr"}
    assert names["inputs"]["lr"] == 2.0 and names["lr"]["lr"] == 0.5
    assert names["inputs"]["momentum"] == 0.3
    assert syn.inputs.requires_grad and syn.log_lr.requires_grad
    assert not syn.label_logits.requires_grad


def test_make_optimizer_without_positive_lr_raises():
    class NoLr:
        momentum = 0.5
        lr_inputs = 0.0

    with pytest.raises(RunError, match="lr_inputs"):
        make_optimizer(_noise_set(ipc=1), NoLr())


def test_dm_config_check():
    assert DMConfig().check("method") == []
    problems = DMConfig(iterations=0, lr_inputs=0, momentum=1.0, batch_real=0, bandwidth=0.0).check("method")
    assert len(problems) == 5
