"""The distilled image-text set: pixels + caption embeddings (+ a low-rank similarity matrix).

:class:`PairSet` (synthetic kind ``pairs``) stores ``n`` pairs — ``images`` n×C×H×W in the
normalised pixel space and ``text`` n×D in the caption-embedding space of the frozen text encoder
— two learnable student lrs (``log_lr``: image group, text group) and, with similarity mining,
S = diag(a) + (α/r)·L·Rᵀ (``sim_diag`` a: n, ``sim_left`` L and ``sim_right`` R: n×r), or with
``sim_symmetric`` its symmetric form diag(a) + (α/r)·½(L·Rᵀ + R·Lᵀ). R starts at zero and a at one,
so S starts exactly at the identity (the usual contrastive targets).

``decode()`` returns ``(images, targets)`` where each row of ``targets`` is
``[text embedding | row of S (with similarity) | the pair's index]``: the core trajectory matcher
indexes targets by row, so a minibatch carries its text, its rows of S and the indices needed to
take the minibatch's columns of S (:func:`split_targets`). Gradients reach ``text`` and S through
this one tensor (the constant-memory solver treats float targets with a graph as learnable).

Storage: ``storage_bytes()`` counts every tensor (pixels, text, S factors, lrs) at its dtype.
:func:`pairs_for_budget` gives the pair count that, with S, fits the bytes of ``budget`` plain pairs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mmdd.core.errors import RunError
from mmdd.core.synthetic import SYNTHETIC_SETS, SyntheticSet


def pairs_for_budget(budget: int, pair_floats: int, similarity: bool, rank: int) -> int:
    """The largest n with n·(pair + S-per-pair) ≤ budget·pair (floats); S costs 1 + 2r per pair."""
    if not similarity:
        return budget
    n = (budget * pair_floats) // (pair_floats + 1 + 2 * rank)
    if n < 1:
        raise RunError(f"a budget of {budget} pairs cannot hold a rank-{rank} similarity matrix")
    return int(n)


def split_targets(y: Tensor, text_dim: int, num_pairs: int, similarity: bool) -> tuple[Tensor, Tensor | None]:
    """Rows of ``PairSet.decode()[1]`` → (text B×D, similarity targets B×B or None)."""
    text = y[:, :text_dim]
    if not similarity:
        return text, None
    idx = y[:, -1].detach().round().long()
    rows = y[:, text_dim:text_dim + num_pairs]
    return text, rows[:, idx]


@SYNTHETIC_SETS.register("pairs")
class PairSet(SyntheticSet):
    kind = "pairs"

    def __init__(self, images: Tensor, text: Tensor, similarity: bool = False, sim_rank: int = 10,
                 sim_alpha: float = 1.0, lr_init: tuple[float, float] = (0.01, 0.01), gen: torch.Generator | None = None,
                 budget_pairs: int | None = None, sim_symmetric: bool = False, learn_lr: bool = True):
        super().__init__()
        if images.shape[0] != text.shape[0]:
            raise RunError(f"a pair set needs as many images as texts, got {images.shape[0]} and {text.shape[0]}")
        n = int(images.shape[0])
        self.images = nn.Parameter(images.detach().clone().float())
        self.text = nn.Parameter(text.detach().clone().float())
        self.log_lr = nn.Parameter(torch.tensor([math.log(lr_init[0]), math.log(lr_init[1])]))
        self.similarity = bool(similarity)
        self.sim_rank, self.sim_alpha = int(sim_rank), float(sim_alpha)
        self.sim_symmetric = bool(sim_symmetric)
        self.learn_lr = bool(learn_lr)  # without it the two student lrs stay at lr_init (their group is frozen)
        self.budget_pairs = int(budget_pairs or n)
        if self.similarity:
            gen = gen if gen is not None else torch.Generator().manual_seed(0)
            self.sim_diag = nn.Parameter(torch.ones(n))
            self.sim_left = nn.Parameter(torch.randn(n, self.sim_rank, generator=gen))
            self.sim_right = nn.Parameter(torch.zeros(n, self.sim_rank))
        self.register_buffer("pair_index", torch.arange(n, dtype=torch.float32), persistent=False)

    @property
    def num_pairs(self) -> int:
        return int(self.images.shape[0])

    @property
    def text_dim(self) -> int:
        return int(self.text.shape[1])

    def similarity_matrix(self) -> Tensor | None:
        if not self.similarity:
            return None
        low = self.sim_left @ self.sim_right.t()
        if self.sim_symmetric:  # the same targets image→text (rows) and text→image (columns)
            low = 0.5 * (low + low.t())
        return torch.diag(self.sim_diag) + (self.sim_alpha / self.sim_rank) * low

    def decode(self) -> tuple[Tensor, Tensor]:
        parts = [self.text]
        if self.similarity:
            parts.append(self.similarity_matrix())
        parts.append(self.pair_index[:, None])
        return self.images, torch.cat(parts, dim=1)

    def class_slices(self) -> list[slice]:
        return [slice(i, i + 1) for i in range(self.num_pairs)]

    def learned_lr(self) -> float | None:
        return float(self.log_lr.detach()[0].exp())

    def learned_lrs(self) -> dict[str, float]:
        lrs = self.log_lr.detach().exp().tolist()
        return {"image": lrs[0], "text": lrs[1]}

    def student_lrs(self) -> Tensor:
        return self.log_lr.exp()

    def role_lr(self, role: str, method_cfg) -> float | None:
        return 0.0 if role == "lr" and not self.learn_lr else None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"inputs": [self.images], "text": [self.text], "lr": [self.log_lr]}
        if self.similarity:
            groups["sim"] = [self.sim_diag, self.sim_left, self.sim_right]
        return groups

    def metadata(self) -> dict:
        return {"num_pairs": self.num_pairs, "text_dim": self.text_dim, "similarity": self.similarity,
                "sim_rank": self.sim_rank, "sim_alpha": self.sim_alpha, "budget_pairs": self.budget_pairs,
                "sim_symmetric": self.sim_symmetric, "learn_lr": self.learn_lr}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], metadata: dict) -> "PairSet":
        try:
            syn = cls(tensors["images"], tensors["text"], similarity=metadata.get("similarity", False),
                      sim_rank=metadata.get("sim_rank", 10), sim_alpha=metadata.get("sim_alpha", 1.0),
                      budget_pairs=metadata.get("budget_pairs"),
                      sim_symmetric=metadata.get("sim_symmetric", False), learn_lr=metadata.get("learn_lr", True))
            syn.load_state_dict(tensors)
        except (KeyError, RuntimeError) as exc:
            raise RunError(f"distilled tensors do not match a 'pairs' set: {exc}") from None
        return syn


class DistilledPairs(Dataset):
    """What ``mmdd.load`` returns for a vision-language run: the distilled image-text pairs.

    ``pairs[i]`` is ``(image, text_embedding, similarity_row)``: the normalised image (C×H×W), its
    caption embedding in the frozen text encoder's space, and row i of the soft contrastive targets
    S between the stored pairs (the identity row when the run mined no similarity). Train a dual
    encoder on them with InfoNCE, taking a minibatch's block ``similarity[idx][:, idx]`` as targets.
    """

    def __init__(self, syn: PairSet, manifest: dict):
        self.manifest = manifest
        with torch.no_grad():
            sim = syn.similarity_matrix()
            self.images = syn.images.detach().cpu().clone()
            self.text = syn.text.detach().cpu().clone()
            self.similarity = (torch.eye(syn.num_pairs) if sim is None else sim).detach().cpu().clone()
        self.learned_lrs: dict[str, float] = syn.learned_lrs()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.text[index], self.similarity[index]

    @property
    def normalization(self) -> dict:
        """The per-channel image mean/std of the real train split (to put other images in the same space)."""
        data = self.manifest["data"]
        return {"mean": data["mean"], "std": data["std"]}
