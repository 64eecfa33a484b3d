"""How the audio-visual domain trains and scores a paired network (the task core evaluation uses).

Training loss CE(audio head) + CE(visual head); the prediction is the mean of the two softmaxes
(late fusion). Each tower has its own parameters, so the sum trains each as if alone: the audio-only
and visual-only scores of the same networks are the single-modality rows (``audio_accuracy``,
``visual_accuracy``). The optimiser (``evaluation.optimizer``; the authors: Adam) puts the visual
encoder at ``network.visual_lr_scale`` × the lr.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmdd.core.batch_reader import read_batches, slices
from mmdd.core.evaluation import Samples, build_optimizer
from mmdd.core.losses import classification_loss

MAIN_METRIC = "accuracy"
MODALITY_METRICS = ("audio_accuracy", "visual_accuracy")


def _targets(data) -> Tensor:
    return data.targets if isinstance(data, Samples) else data.labels


class LateFusionTask:
    metric = MAIN_METRIC
    loss_text = "CE audio + CE visual, late fusion (mean of softmaxes)"

    def size(self, data) -> int:
        return len(data)

    def optimizer(self, net, lr, momentum: float, weight_decay: float, kind: str = "sgd") -> torch.optim.Optimizer:
        return build_optimizer(kind, net.param_groups(float(lr)), float(lr), momentum, weight_decay)

    def epoch(self, net, opt, data, batch_size: int, gen: torch.Generator, augment, device: torch.device) -> None:
        net.train()
        inputs, targets = data.inputs, _targets(data)
        order = torch.randperm(len(inputs), generator=gen)
        batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        for idx, x in zip(batches, read_batches(inputs, batches, device)):
            y = targets[idx].to(device)
            if augment is not None:
                x = augment(x, gen)
            la, lv = net.logits(x)
            loss = classification_loss(la, y) + classification_loss(lv, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    @torch.no_grad()
    def logits(self, net, inputs, device: torch.device, batch_size: int) -> tuple[Tensor, Tensor]:
        net.eval()
        audio, visual = [], []
        for x in read_batches(inputs, slices(len(inputs), batch_size), device):
            la, lv = net.logits(x)
            audio.append(la.float().cpu())
            visual.append(lv.float().cpu())
        return torch.cat(audio), torch.cat(visual)

    def scores(self, net, split, device: torch.device, batch_size: int) -> dict[str, float]:
        la, lv = self.logits(net, split.inputs, device, batch_size)
        labels = split.labels
        fused = (la.softmax(-1) + lv.softmax(-1)) / 2
        return {MAIN_METRIC: float((fused.argmax(-1) == labels).float().mean()),
                "audio_accuracy": float((la.argmax(-1) == labels).float().mean()),
                "visual_accuracy": float((lv.argmax(-1) == labels).float().mean())}
