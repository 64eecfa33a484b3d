"""Multi-label targets through the core: loss, accuracy, per-label classes, coresets, the synthetic set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmdd.core.coresets import keep_per_class, random_subset
from mmdd.core.data import ClassIndex, Split
from mmdd.core.errors import RunError
from mmdd.core.losses import classification_loss, is_multi_label
from mmdd.core.metrics import accuracy
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet, SyntheticConfig, rebuild


def multi_hot_split(n: int = 40, labels: int = 3, seed: int = 0) -> Split:
    gen = make_generator(seed)
    y = (torch.rand(n, labels, generator=gen) < 0.4).long()
    y[:5] = 0  # rows with no positive label
    return Split(torch.randn(n, 1, 4, 4, generator=gen), y)


def test_the_loss_follows_the_form_of_the_targets():
    gen = make_generator(0)
    logits = torch.randn(6, 3, generator=gen)
    hard = torch.tensor([0, 1, 2, 0, 1, 2])
    soft = torch.rand(6, 3, generator=gen).softmax(-1)
    multi = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert not is_multi_label(hard) and not is_multi_label(soft) and is_multi_label(multi)
    assert classification_loss(logits, hard) == pytest.approx(float(F.cross_entropy(logits, hard)))
    assert classification_loss(logits, soft) == pytest.approx(float(F.cross_entropy(logits, soft)))
    expected = -(multi * F.logsigmoid(logits) + (1 - multi) * F.logsigmoid(-logits)).mean()
    assert classification_loss(logits, multi) == pytest.approx(float(expected), rel=1e-6)


def test_multi_label_accuracy_is_the_mean_of_the_per_label_accuracies():
    logits = torch.tensor([[2.0, -1.0], [-3.0, 0.5], [1.0, 1.0], [-1.0, -1.0]])
    labels = torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0]])
    per_label = [(1 + 0 + 0 + 1) / 4, (1 + 1 + 1 + 1) / 4]  # label 0: rows 0 and 3 right; label 1: all right
    assert accuracy(logits, labels) == pytest.approx(sum(per_label) / 2)


def test_a_multi_label_class_is_the_samples_positive_for_it():
    split = multi_hot_split()
    real = ClassIndex(split, 3)
    for c in range(3):
        assert real.indices[c].tolist() == torch.nonzero(split.labels[:, c] == 1).flatten().tolist()
    assert sum(real.counts()) == int(split.labels.sum())  # a sample counts once per positive label


def test_multi_label_coresets_do_not_repeat_a_sample_and_keep_rows_without_findings():
    split = multi_hot_split(n=200)
    index = random_subset(split.labels, 3, 4, make_generator(1))
    assert index.numel() == 12 and index.unique().numel() == 12
    for c in range(3):
        assert torch.all(split.labels[index[4 * c:4 * (c + 1)], c] == 1)
    kept = keep_per_class(split.labels, 3, 4, make_generator(1))
    assert kept.unique().numel() == kept.numel() == 16  # 4 per label + 4 with no positive label
    assert int((split.labels[kept].sum(1) == 0).sum()) == 4
    single = torch.arange(30) % 3  # single-label data: the same draw as before, nothing added
    assert torch.equal(keep_per_class(single, 3, 4, make_generator(2)),
                       random_subset(single, 3, 4, make_generator(2), at_most=True))


def test_a_multi_hot_synthetic_set_keeps_the_labels_of_its_real_starts_and_round_trips():
    split = multi_hot_split(n=200)
    real = ClassIndex(split, 3)
    syn = PixelSet.from_real(real, 2, SyntheticConfig(learn_lr=True), make_generator(3))
    inputs, targets = syn.decode()
    assert targets.shape == (6, 3) and is_multi_label(targets) and syn.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for i in range(6):  # each start is a real image, with that image's label row
        row = int(torch.nonzero((split.inputs == inputs[i].detach()).flatten(1).all(1))[0])
        assert torch.equal(targets[i], split.labels[row]) and targets[i, i // 2] == 1
    again = rebuild(syn.kind, syn.state_dict(), syn.metadata())
    assert torch.equal(again.decode()[1], targets) and syn.storage_bytes() == again.storage_bytes()
    noise = PixelSet.from_real(real, 2, SyntheticConfig(init="noise"), make_generator(3))
    assert torch.equal(noise.decode()[1], torch.eye(3, dtype=torch.long).repeat_interleave(2, dim=0))
    with pytest.raises(RunError, match="soft_labels"):
        PixelSet.from_real(real, 2, SyntheticConfig(soft_labels=True), make_generator(3))
