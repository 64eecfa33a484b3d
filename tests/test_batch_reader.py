"""Tests for mmdd.core.batch_reader: stored minibatches read ahead by DataLoader worker processes.

Reading ahead must change nothing but where the rows are read: the same batches in the same order,
so training and prediction give bit-for-bit the results of reading in the training process.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdd.core.batch_reader import (AUTO_GPU_WORKERS, ReadAhead, read_ahead, read_ahead_for, read_batches,
                                    read_steps, slices, using_read_ahead)
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import EvalConfig, predict, train_epoch
from mmdd.core.lazy import LazyRows
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.stacked import fit_stacked

CPU = torch.device("cpu")
TWO_WORKERS = ReadAhead(workers=2)


def _pixels(n: int = 23, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 1, 8, 8), generator=make_generator(seed))


def _stored(values: torch.Tensor, tag_worker: bool = False) -> LazyRows:
    """Lazy rows of ``values``; with ``tag_worker`` each fetched row's first value is 1 in a DataLoader
    worker and 0 in this process (so a test can see where the read happened)."""

    def fetch(rows: np.ndarray) -> torch.Tensor:
        out = values[torch.from_numpy(rows)].clone()
        if tag_worker:
            out.view(len(rows), -1)[:, 0] = float(torch.utils.data.get_worker_info() is not None)
        return out

    return LazyRows(fetch, len(values), values.shape[1:], values.dtype, "test rows")


def test_settings_from_the_recipe():
    assert read_ahead_for(None, "auto", "cpu") == ReadAhead(workers=0, pin_memory=False)
    gpu = read_ahead_for(None, "auto", torch.device("cuda"))
    assert gpu.pin_memory and 0 <= gpu.workers <= AUTO_GPU_WORKERS
    assert read_ahead_for(3, "off", "cuda") == ReadAhead(workers=3, pin_memory=False)
    assert read_ahead_for(2, "auto", "cpu") == ReadAhead(workers=2, pin_memory=False)
    with pytest.raises(ConfigError, match="pin_memory: on .* device is cpu"):  # no copy off the host to speed up
        read_ahead_for(None, "on", "cpu")
    with pytest.raises(ConfigError, match="pin_memory must be one of"):
        read_ahead_for(None, "yes", "cpu")


def test_using_read_ahead_restores_the_previous_setting():
    before = read_ahead()
    with using_read_ahead(TWO_WORKERS):
        assert read_ahead() == TWO_WORKERS
    assert read_ahead() == before


def test_workers_read_stored_rows_ahead_in_order():
    values = _pixels()
    batches = [torch.tensor([5, 1, 7]), torch.tensor([0]), torch.tensor([22, 3, 3, 9]), torch.tensor([11, 2])]
    got = list(read_batches(_stored(values, tag_worker=True), batches, CPU, TWO_WORKERS))
    assert len(got) == len(batches)
    for idx, x in zip(batches, got):
        assert torch.equal(x.view(len(idx), -1)[:, 1:], values[idx].view(len(idx), -1)[:, 1:])
        assert bool((x.view(len(idx), -1)[:, 0] == 1).all())  # read in a worker
    inline = list(read_batches(_stored(values, tag_worker=True), batches, CPU, ReadAhead(workers=0)))
    assert all(bool((x.view(len(x), -1)[:, 0] == 0).all()) for x in inline)  # read here


def test_in_memory_rows_are_never_sent_to_workers():
    seen = []

    def fetch(step: int) -> torch.Tensor:
        seen.append(torch.utils.data.get_worker_info())
        return torch.full((2,), float(step))

    out = list(read_steps(fetch, 4, CPU, stored=False, settings=TWO_WORKERS))
    assert [float(x[0]) for x in out] == [0, 1, 2, 3] and seen == [None] * 4


def test_a_failed_read_in_a_worker_names_its_cause():
    def fetch(rows: np.ndarray) -> torch.Tensor:
        raise OSError("shard train-00003.npy is damaged")

    rows = LazyRows(fetch, 10, (2,), torch.float32)
    with pytest.raises(OSError, match="train-00003.npy is damaged"):
        list(read_batches(rows, slices(10, 4), CPU, TWO_WORKERS))


def _net(seed: int = 0):
    cfg = ConvNetConfig(name="convnet", depth=2, width=8, norm="instancenorm")
    return create_network(cfg, (1, 8, 8), 3, make_generator(seed))


def _weights(net) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_training_and_prediction_are_the_same_read_ahead_or_not():
    values, labels = _pixels(), torch.arange(23) % 3
    stored = _stored(values)
    results = []
    for settings in (ReadAhead(workers=0), TWO_WORKERS):
        with using_read_ahead(settings):
            net = _net()
            opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
            gen = make_generator(4)
            for _ in range(2):
                train_epoch(net, opt, stored, labels, 5, gen, lambda x, g: x + 0.01 * torch.randn(x.shape, generator=g),
                            CPU)
            results.append((_weights(net), predict(net, stored, 6, CPU), torch.rand(1, generator=gen)))
    (w0, p0, r0), (w1, p1, r1) = results
    assert torch.equal(w0, w1) and torch.equal(p0, p1)
    assert torch.equal(r0, r1)  # the generator drew the same numbers in the same order


def test_stacked_training_is_the_same_read_ahead_or_not():
    values, labels = _pixels(), torch.arange(23) % 3
    cfg = EvalConfig(epochs=2, batch_size=5, lr=0.05, seeds=2)
    from mmdd.core.evaluation import Samples

    trained = []
    for settings in (ReadAhead(workers=0), TWO_WORKERS):
        with using_read_ahead(settings):
            nets = fit_stacked([_net(0), _net(1)], [Samples(_stored(values), labels)] * 2, cfg,
                               [make_generator(0), make_generator(1)], None, CPU)
            trained.append(torch.cat([_weights(n) for n in nets]))
    assert torch.equal(trained[0], trained[1])
