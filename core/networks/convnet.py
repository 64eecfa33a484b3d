"""The ConvNet family used across the dataset-distillation literature.

Each block is Conv3×3 → norm → activation → pool; ``depth`` blocks, then a linear classifier.
``spatial_dims`` selects 2D (images) or 3D (volumes, clips) layers, MONAI-style, so one class
serves both. "instancenorm" is ``GroupNorm(C, C)`` (instance norm with affine parameters, as the
reference implementations use), "layernorm" is ``GroupNorm(1, C)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from ..speed import cpu_pool

NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
POOLINGS = ("avgpool", "maxpool", "none")
ACTIVATIONS = ("relu", "leakyrelu", "sigmoid", "gelu")


@dataclass
class ConvNetConfig:
    """Options of the ConvNet family (recipe section ``network``)."""

    name: str = "convnet"
    depth: int = 3
    width: int = 128
    norm: Literal["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"] = "instancenorm"
    pooling: Literal["avgpool", "maxpool", "none"] = "avgpool"
    activation: Literal["relu", "leakyrelu", "sigmoid", "gelu"] = "relu"
    #: padding of the first convolution. "reference": 3 for single-channel 28×28 images (the DC / DSA /
    #: DM / MTT ConvNet: a 32×32 feature map, 2048-d features at width 128), else 1; or a number
    #: (1: mmdd's variant before the reference rule, 1152-d features at 28×28)
    first_padding: int | Literal["reference"] = "reference"

    def check(self, path: str) -> list[str]:
        problems = []
        if self.first_padding != "reference" and not (isinstance(self.first_padding, int) and self.first_padding >= 0):
            problems.append(f"{path}.first_padding must be 'reference' or a padding ≥ 0, got {self.first_padding!r}")
        if self.depth < 1:
            problems.append(f"{path}.depth must be ≥ 1, got {self.depth}")
        if self.width < 1:
            problems.append(f"{path}.width must be ≥ 1, got {self.width}")
        return problems


def _norm(kind: str, channels: int, spatial_dims: int) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "layernorm":
        return nn.GroupNorm(1, channels, affine=True)
    if kind == "groupnorm":  # 4 groups where the width allows, else the largest divisor of 4 that fits
        return nn.GroupNorm(math.gcd(4, channels), channels, affine=True)
    if kind == "batchnorm":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")


def _activation(kind: str) -> nn.Module:
    """In place where autograd allows: the activation follows a norm or a convolution, whose backward
    needs its own input, never its output (an out-of-place ReLU cost about 10% of a training step here)."""
    return {
        "relu": lambda: nn.ReLU(inplace=True),
        "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True),
        "sigmoid": nn.Sigmoid,
        "gelu": nn.GELU,
    }[kind]()


class AvgPool2x2(nn.AvgPool2d):
    """2×2 average pooling with stride 2, as ``nn.AvgPool2d(2, 2)``, with a faster CPU path.

    PyTorch's CPU ``avg_pool2d`` on NCHW tensors is a scalar loop: at width 128 on a 32×32 map it took
    more time than the norm and the activation together (about a fifth of an evaluation: 16 % forward,
    4 % backward, on this project's 2-core CPU). On a contiguous float32 CPU tensor this module runs the pool as a
    depthwise 2×2 convolution with weights 1/4 instead (oneDNN's kernel), and its gradient as the transposed
    convolution: about 1.5× faster forward and 2× forward + backward, and bit-identical to ``avg_pool2d`` in the output, the gradient and the
    gradient of the gradient — the same summation order and an exact power-of-two scale (tested on odd
    sizes, extreme magnitudes, under ``vmap`` and through double backward). Everything else (CUDA, other
    dtypes, channels-last, no oneDNN, ``torch.compile``, which fuses the pool itself) uses
    ``avg_pool2d``, as does ``MMDD_CPU_POOL=avg_pool``. The 3-D pool keeps ``nn.AvgPool3d``: the depthwise
    3-D convolution was not faster.
    """

    def __init__(self) -> None:
        super().__init__(2, 2)

    def forward(self, x: Tensor) -> Tensor:
        if _depthwise_pool_applies(x):
            return _DepthwiseAvgPool2x2.apply(x)
        return super().forward(x)


def _quarters(channels: int, dtype: torch.dtype) -> Tensor:
    return torch.full((channels, 1, 2, 2), 0.25, dtype=dtype)


class _DepthwiseAvgPool2x2(torch.autograd.Function):
    """The pool as a depthwise convolution, with its gradient as the matching transposed convolution.

    Written out rather than left to autograd because autograd's derivative of ``conv2d`` also handles
    the weight: through a double backward (MTT's unrolled steps) that made a 10-image step slower than
    ``avg_pool2d``. The transposed convolution places ``grad / 4`` at each of the four inputs of a window
    (windows do not overlap), exactly what ``avg_pool2d``'s backward writes, and its own derivative is
    the forward convolution again. ``generate_vmap_rule`` keeps it usable under ``vmap`` (batched seeds).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, _quarters(x.shape[1], x.dtype), stride=2, groups=x.shape[1])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.in_size = tuple(inputs[0].shape[-2:])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        height, width = ctx.in_size
        dropped = (height - 2 * grad.shape[-2], width - 2 * grad.shape[-1])  # an odd side's last row/column
        return nn.functional.conv_transpose2d(grad, _quarters(grad.shape[1], grad.dtype), stride=2,
                                              groups=grad.shape[1], output_padding=dropped)


def _depthwise_pool_applies(x: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and x.is_contiguous()
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.compiler.is_compiling() and cpu_pool() == "depthwise")


def reference_first_padding(in_shape: Sequence[int]) -> int:
    """The reference nets' first padding: 3 for a single-channel 28×28 image (MNIST, Fashion-MNIST,
    MedMNIST gray), which makes the feature map 32×32 as for CIFAR; 1 otherwise."""
    return 3 if tuple(int(s) for s in in_shape) == (1, 28, 28) else 1


class ConvNet(nn.Module):
    """ConvNet-D-W for inputs of shape C×H×W (``spatial_dims=2``) or C×D×H×W (3)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 3,
        width: int = 128,
        norm: str = "instancenorm",
        pooling: str = "avgpool",
        activation: str = "relu",
        spatial_dims: int = 2,
        first_padding: int | str = "reference",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if len(in_shape) != spatial_dims + 1:
            raise ValueError(
                f"in_shape {tuple(in_shape)} does not match spatial_dims={spatial_dims}; "
                f"expected {spatial_dims + 1} numbers (channels first)"
            )
        if any(int(s) < 1 for s in in_shape):
            raise ValueError(f"in_shape {tuple(in_shape)} must be positive sizes (channels first)")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        pool = {
            "avgpool": (lambda kernel, stride: AvgPool2x2()) if spatial_dims == 2 else nn.AvgPool3d,
            "maxpool": nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d,
        }
        channels, *size = in_shape
        pad = reference_first_padding(in_shape) if first_padding == "reference" else int(first_padding)
        layers: list[nn.Module] = []
        for d in range(depth):
            padding = pad if d == 0 else 1
            layers += [conv(channels, width, 3, padding=padding), _norm(norm, width, spatial_dims),
                       _activation(activation)]
            size = [s + 2 * padding - 2 for s in size]
            channels = width
            # Pool only while every spatial side is at least 2, so small inputs (8×8 digits,
            # shallow volumes) keep a valid feature map at any depth.
            if pooling != "none" and min(size) >= 2:
                layers.append(pool[pooling](2, 2))
                size = [s // 2 for s in size]
        self.features = nn.Sequential(*layers)
        self.feature_dim = channels * int(torch.tensor(size).prod().item())
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes

    def embed(self, x: Tensor) -> Tensor:
        """Flattened features before the classifier (what distribution matching compares)."""
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))
