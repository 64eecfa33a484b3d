"""Tests for mmdd.core.stacked: evaluation seeds trained together as one batched model.

Batched and sequential training see the same minibatches and transforms (every seed draws from its
own generator in the same order) but sum in another order inside the batched convolutions, so the
trained weights agree up to float32 rounding, not bit for bit. Tolerances: 1e-5 absolute on weights
of magnitude ≲ 1 (measured: ≤ 1.2e-7 after these few epochs, a few float32 ulps), and 1e-4 absolute
on the sum of the 90 test logits (each logit agrees within ~4e-7; the sum of 90 such differences
was measured at ≤ 7e-6). A wrong random stream, a gradient shared between seeds or a wrong
schedule moves the weights by 1e-3 or more (checked below: the seeds' networks differ from each
other by more than 1e-2), so the tolerances still catch them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmdd.core.augment import ImageAugment
from mmdd.core.data import Split
from mmdd.core.evaluation import (ClassificationTask, EvalConfig, EvalSet, Samples, _plan_batching, evaluate_set, fit,
                                  random_baseline)
from mmdd.core.metrics import accuracy
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.stacked import fit_stacked, network_unsupported_reason, unsupported_reason

SHAPE = (1, 10, 10)
CLASSES = 3
CPU = torch.device("cpu")
WEIGHT_ATOL = 1e-5
SCORE_ATOL = 1e-4  # on a sum of 90 test logits of size ≲ 2, each agreeing within ~4e-7


def _data(n: int, seed: int) -> Split:
    gen = make_generator(seed)
    labels = torch.arange(CLASSES).repeat(n // CLASSES + 1)[:n]
    inputs = torch.randn((n, *SHAPE), generator=gen) * 0.5
    inputs[:, :, :, :3] += labels.view(-1, 1, 1, 1).float()  # a little signal, so training moves
    return Split(inputs, labels)


def _split_tensors(split: Split):
    return split.inputs, split.labels


def _logit_sum(logits, labels) -> float:
    """A score that moves with every weight (accuracy alone could hide a difference)."""
    return float(logits.double().sum())


TASK = ClassificationTask("accuracy", {"accuracy": accuracy, "logit_sum": _logit_sum})


class _Recorder:
    """make_network that keeps the networks it built, so their trained weights can be compared."""

    def __init__(self, norm: str = "instancenorm"):
        self.nets: list[nn.Module] = []
        self.norm = norm

    def __call__(self, gen: torch.Generator) -> nn.Module:
        net = create_network(ConvNetConfig(depth=2, width=8, norm=self.norm), SHAPE, CLASSES, gen)
        self.nets.append(net)
        return net


def _run(chosen: EvalSet, mode: str, *, augment=None, val=None, task=TASK, norm="instancenorm", **cfg_kw):
    options = dict(epochs=4, lr=0.05, batch_size=8, seeds=3, seed=4, augment=augment is not None, batch_seeds=mode)
    options.update(cfg_kw)
    make = _Recorder(norm)
    result = evaluate_set(chosen, task, make_network=make, cfg=EvalConfig(**options), test=_data(30, seed=50),
                          protocol="p", device=CPU, augment=augment, val=val)
    return result, make.nets


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _assert_same_training(chosen: EvalSet, **kw):
    seq, seq_nets = _run(chosen, "off", **kw)
    bat, bat_nets = _run(chosen, "on", **kw)
    assert (seq.batched, bat.batched) == (False, True)
    assert len(seq_nets) == len(bat_nets) == 3
    for a, b in zip(seq_nets, bat_nets):
        assert _max_diff(a, b) < WEIGHT_ATOL
    # the tolerance is meaningful: the seeds' networks differ from each other by far more
    assert min(_max_diff(seq_nets[0], seq_nets[i]) for i in (1, 2)) > 1e-2
    assert bat.values == seq.values  # accuracy: the same predictions
    assert bat.others["logit_sum"]["values"] == pytest.approx(seq.others["logit_sum"]["values"], abs=SCORE_ATOL)
    assert bat.seeds == seq.seeds and bat.train_size == seq.train_size and bat.draws == seq.draws
    return seq, bat


# ------------------------------------------------------------------ batched == sequential
@pytest.mark.parametrize("augmented", [False, True])
def test_batched_seeds_train_the_networks_sequential_training_does(augmented):
    # 20 samples, batch 8: minibatches of 8, 8 and a partial 4 every epoch
    augment = ImageAugment("color_crop_cutout_flip_scale_rotate") if augmented else None
    _assert_same_training(EvalSet(Samples(*_split_tensors(_data(20, seed=1)))), augment=augment)


@pytest.mark.parametrize("kind", ["soft", "multi_hot"])
def test_batched_seeds_with_soft_and_multi_label_targets(kind):
    data = _data(20, seed=2)
    if kind == "soft":
        targets = torch.softmax(torch.randn(20, CLASSES, generator=make_generator(3)), dim=1)
    else:
        targets = (torch.rand(20, CLASSES, generator=make_generator(3)) < 0.4).long()
    _assert_same_training(EvalSet(Samples(data.inputs, targets)),
                          augment=ImageAugment("crop_flip", mode="all"))


def test_batched_seeds_with_a_random_baseline_drawn_anew_per_seed():
    train = _data(60, seed=5)
    chosen = random_baseline(train, CLASSES, 4, run_seed=0, eval_seeds=[4, 5, 6])  # 12 samples per draw
    draws = [chosen.for_seed(s).inputs for s in (4, 5, 6)]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])
    seq, bat = _assert_same_training(chosen, augment=ImageAugment("crop_scale"))
    assert bat.draws == 3


def test_batched_seeds_select_the_same_model_on_validation():
    calls = []

    def first_is_best(logits, labels) -> float:
        """Validation score that falls with every call: the first model offered (epoch 2) is kept."""
        calls.append(1)
        return -float(len(calls))

    task = ClassificationTask("first", {"first": first_is_best, "logit_sum": _logit_sum})
    chosen = EvalSet(Samples(*_split_tensors(_data(20, seed=6))))
    kw = dict(task=task, val=_data(9, seed=7), select="best_val", select_every=2, epochs=5)
    seq, seq_nets = _run(chosen, "off", **kw)
    n_seq = len(calls)
    bat, bat_nets = _run(chosen, "on", **kw)
    assert bat.batched and not seq.batched
    # per seed: validation at epochs 2, 4, 5, then test and validation once more
    assert n_seq == len(calls) - n_seq == 3 * 5
    _, last_nets = _run(chosen, "on", task=task, val=kw["val"], epochs=5)  # select: last
    for a, b, last in zip(seq_nets, bat_nets, last_nets):
        assert _max_diff(a, b) < WEIGHT_ATOL
        assert _max_diff(b, last) > 1e-3  # the epoch-2 model was restored, not the last one
    assert bat.others["logit_sum"]["values"] == pytest.approx(seq.others["logit_sum"]["values"], abs=SCORE_ATOL)
    assert bat.others["logit_sum"]["val_values"] == pytest.approx(seq.others["logit_sum"]["val_values"],
                                                                   abs=SCORE_ATOL)


def test_every_seed_draws_the_same_random_stream_batched_and_sequential():
    data = Samples(*_split_tensors(_data(20, seed=8)))
    cfg = EvalConfig(epochs=3, lr=0.05, batch_size=8, seeds=3, augment=True)
    augment = ImageAugment("color_crop_cutout_flip_scale_rotate")
    make = _Recorder()
    seq_states = []
    for seed in (0, 1, 2):
        gen = make_generator(seed)
        fit(make(gen), data, TASK, cfg, gen, augment, CPU)
        seq_states.append(gen.get_state())
    gens = [make_generator(seed) for seed in (0, 1, 2)]
    fit_stacked([make(g) for g in gens], [data] * 3, cfg, gens, augment, CPU)
    for seq_state, gen in zip(seq_states, gens):
        assert torch.equal(gen.get_state(), seq_state)
    assert not torch.equal(gens[0].get_state(), gens[1].get_state())
    # the streams advanced past the networks' initialisation: augmentation drew per minibatch
    fresh = make_generator(0)
    make(fresh)
    assert not torch.equal(fresh.get_state(), seq_states[0])


# ------------------------------------------------------------------ choosing the path
def test_auto_trains_sequentially_on_the_cpu_and_batched_on_cuda():
    chosen = EvalSet(Samples(*_split_tensors(_data(12, seed=9))))
    result, _ = _run(chosen, "auto", epochs=1)
    assert result.batched is False
    datas = [chosen.data] * 3
    for device, expected in [(torch.device("cpu"), False), (torch.device("cuda"), True)]:
        batched, _, _ = _plan_batching(EvalConfig(seeds=3, batch_seeds="auto"), TASK, None, datas, [0, 1, 2],
                                       _Recorder(), device)
        assert batched is expected
    off, _, _ = _plan_batching(EvalConfig(seeds=3, batch_seeds="off"), TASK, None, datas, [0, 1, 2], _Recorder(),
                               torch.device("cuda"))
    assert off is False


def test_on_with_batchnorm_warns_and_falls_back_to_the_sequential_result():
    chosen = EvalSet(Samples(*_split_tensors(_data(12, seed=10))))
    with pytest.warns(UserWarning, match=r"batch_seeds is 'on', but the network has buffers .*running_mean"):
        on, on_nets = _run(chosen, "on", norm="batchnorm", epochs=2)
    off, off_nets = _run(chosen, "off", norm="batchnorm", epochs=2)
    assert on.batched is False
    assert on.values == off.values and on.others == off.others  # the same sequential training, bit for bit
    for a, b in zip(on_nets, off_nets):
        assert _max_diff(a, b) == 0.0


def test_on_with_a_single_seed_warns_and_trains_sequentially():
    chosen = EvalSet(Samples(*_split_tensors(_data(12, seed=11))))
    with pytest.warns(UserWarning, match="single evaluation seed"):
        result, _ = _run(chosen, "on", seeds=1, epochs=1)
    assert result.batched is False and len(result.values) == 1


def test_unsupported_reasons_name_the_cause():
    data = Samples(*_split_tensors(_data(12, seed=12)))
    assert unsupported_reason(TASK, 0.1, [data, data]) is None
    assert "per parameter group" in unsupported_reason(TASK, {"image": 0.1}, [data, data])
    assert "differ in size" in unsupported_reason(TASK, None, [data, Samples(data.inputs[:6], data.targets[:6])])
    assert "not a ClassificationTask" in unsupported_reason(object(), None, [data, data])

    class OwnEpoch(ClassificationTask):
        def epoch(self, *args):
            pass

    assert "overrides ClassificationTask.epoch" in unsupported_reason(OwnEpoch("a", {}), None, [data, data])
    assert network_unsupported_reason(nn.Sequential(nn.Flatten(), nn.Linear(100, 3))) is None
    assert "dropout" in network_unsupported_reason(nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 3)))
    assert "buffers" in network_unsupported_reason(nn.Sequential(nn.BatchNorm1d(3)))


def test_fit_stacked_refuses_training_sets_of_different_sizes():
    data = Samples(*_split_tensors(_data(12, seed=13)))
    gens = [make_generator(0), make_generator(1)]
    with pytest.raises(ValueError, match="differ in size"):
        fit_stacked([_Recorder()(g) for g in gens], [data, Samples(data.inputs[:8], data.targets[:8])],
                    EvalConfig(epochs=1), gens, None, CPU)
