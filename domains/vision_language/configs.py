"""Typed recipe sections of the vision-language domain.

* ``dataset`` — one config per layout (``karpathy``, ``coco_captions``, ``flickr8k_csv``), each with
  a ``text`` section naming the frozen text encoder that embeds the captions once (cached).
* ``network`` — ``name: dual_encoder``: an image encoder (``convnet`` from scratch, an ``open_clip``
  vision tower or a ``timm`` model with weights from a local file, optional LoRA adapters) and a
  text projection head over the cached caption embeddings. ``temperature`` is the one temperature
  of the contrastive loss used by experts, matching and evaluation.
* ``method`` — ``name: bitm``: bi-trajectory matching (the core trajectory matcher with two
  parameter groups, ``image`` and ``text``), optional LoRA mode and low-rank similarity mining.

The budget is ``budget.ipc``, read as **pairs** in this domain (each distilled pair is its own
"class"); with similarity mining the stored pair count is lowered so that the pairs plus the
similarity matrix fit the same number of bytes (:func:`mmdd.domains.vision_language.synthetic.pairs_for_budget`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mmdd.core.matchers.trajectory import TMConfig
from mmdd.core.store import StorageOptions

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class TextConfig:
    """``dataset.text``: the frozen encoder whose caption embeddings are the text side of a pair.

    ``encoder: hf`` reads a Hugging Face model folder (``model``: a local ``save_pretrained``
    folder; ``pooling`` cls or mean). ``encoder: open_clip`` builds the text tower ``model`` (a
    built-in architecture name or a JSON model config) and reads its weights from ``weights``.
    Embeddings are cached under ``cache_dir`` (``null``: not cached). ``normalize`` L2-normalises
    each embedding (a property of the data space, recorded in the manifest).
    """

    encoder: Literal["hf", "open_clip"] = "hf"
    model: str = ""
    weights: str | None = None
    pooling: Literal["cls", "mean"] = "cls"
    max_length: int = 64
    batch_size: int = 128
    normalize: bool = False
    cache_dir: str | None = "~/.cache/mmdd/text_embeddings"

    def check(self, path: str) -> list[str]:
        problems = []
        if not self.model:
            problems.append(f"{path}.model: expected a local text model (a save_pretrained folder for encoder: hf, "
                            "an open_clip architecture name or JSON config for encoder: open_clip)")
        if self.encoder == "open_clip" and not self.weights:
            problems.append(f"{path}.weights: encoder open_clip needs the path of a local weights file")
        if self.max_length < 2:
            problems.append(f"{path}.max_length must be ≥ 2, got {self.max_length}")
        if self.batch_size < 1:
            problems.append(f"{path}.batch_size must be ≥ 1, got {self.batch_size}")
        return problems


@dataclass
class _PairDatasetConfig(StorageOptions):
    name: str = ""
    root: str = ""
    image_size: int = 64
    resize: Literal["center_crop", "stretch"] = "center_crop"
    max_images: dict | None = None  # {train: n, val: n, test: n}; a missing split is not limited
    captions_per_image: int | None = None
    seed: int = 0
    on_error: Literal["fail", "skip"] = "fail"
    text: TextConfig = field(default_factory=TextConfig)

    def check(self, path: str) -> list[str]:
        problems = []
        if not self.root:
            problems.append(f"{path}.root: expected the dataset's root folder")
        if self.image_size < 4:
            problems.append(f"{path}.image_size must be ≥ 4, got {self.image_size}")
        if self.captions_per_image is not None and self.captions_per_image < 1:
            problems.append(f"{path}.captions_per_image must be ≥ 1 or null, got {self.captions_per_image}")
        if self.max_images is not None:
            bad = sorted(set(map(str, self.max_images)) - set(SPLIT_NAMES))
            if bad:
                problems.append(f"{path}.max_images: unknown split(s) {bad}; expected keys among {SPLIT_NAMES}")
            for k, v in self.max_images.items():
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                    problems.append(f"{path}.max_images.{k}: expected a positive integer or null, got {v!r}")
        return problems + self.storage_problems(path)


@dataclass
class KarpathyConfig(_PairDatasetConfig):
    """``dataset.name: karpathy`` — a Karpathy split JSON (Flickr8k / Flickr30K / COCO)."""

    name: str = "karpathy"
    json: str = "dataset_flickr30k.json"


@dataclass
class CocoCaptionsConfig(_PairDatasetConfig):
    """``dataset.name: coco_captions`` — COCO ``captions_<split>.json`` files, one per split.

    The default is the official layout: train2017 is the train split and val2017 — the official
    split with captions — the *test* split (COCO's test images have none); validation is carved
    from train (``val_fraction``). Give the Karpathy split through the ``karpathy`` loader instead."""

    name: str = "coco_captions"
    annotations: dict = field(default_factory=lambda: {"train": "annotations/captions_train2017.json",
                                                       "test": "annotations/captions_val2017.json"})
    image_dirs: dict | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        if "train" not in self.annotations:
            problems.append(f"{path}.annotations: expected a 'train' annotation file (and optionally val / test)")
        return problems


@dataclass
class Flickr8kCSVConfig(_PairDatasetConfig):
    """``dataset.name: flickr8k_csv`` — the Kaggle Flickr8k layout (``captions.txt`` + ``images/``)."""

    name: str = "flickr8k_csv"
    csv: str = "captions.txt"
    val_fraction: float = 0.125
    test_fraction: float = 0.125


@dataclass
class LoRAConfig:
    """``network.lora``: LoRA adapters (peft) on the image encoder's attention projections."""

    enabled: bool = False
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: str | None = None  # a regex over module names; None: the encoder kind's attention

    def check(self, path: str) -> list[str]:
        return [f"{path}.rank must be ≥ 1, got {self.rank}"] if self.rank < 1 else []


@dataclass
class DualEncoderConfig:
    """``network.name: dual_encoder`` — image encoder + text projection head, one shared embedding.

    ``image_encoder``: ``convnet`` (the core ConvNet from scratch: depth / width / norm / pooling),
    ``open_clip`` (``model``: architecture name or JSON config; ``weights``: local file; the vision
    tower only) or ``timm`` (``model``: a timm architecture; ``weights``: local file or null for
    random init). ``image_projection``: a Linear from the encoder's output to ``embed_dim`` (timm /
    open_clip; ``false`` uses the encoder's output as the embedding, as LoRS does with NFNet's 2304-d
    features, and then ``embed_dim`` must equal that size). ``text_head``: ``mlp`` — ``text_layers``
    1 = a linear head, 2 = Linear-ReLU-Linear (``text_hidden``); ``residual`` — LoRS' projection head:
    Linear to ``embed_dim`` (h), then GELU-Linear added to h, then LayerNorm (LoRS' head also has a
    dropout of 0.1 after the second Linear, which mmdd leaves out: the bi-trajectory solvers replay
    each student step and need the same function both times, and every draw here is seeded).
    ``temperature`` τ: logits = cos-similarity / τ, the same for experts, matching and evaluation.
    """

    name: str = "dual_encoder"
    image_encoder: Literal["convnet", "open_clip", "timm"] = "convnet"
    embed_dim: int = 256
    temperature: float = 0.07
    depth: int = 3
    width: int = 128
    norm: Literal["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"] = "instancenorm"
    pooling: Literal["avgpool", "maxpool", "none"] = "avgpool"
    model: str | None = None
    weights: str | None = None
    freeze_image: bool = False
    image_projection: bool = True
    text_head: Literal["mlp", "residual"] = "mlp"
    text_layers: int = 1
    text_hidden: int = 512
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def check(self, path: str) -> list[str]:
        problems = []
        if self.embed_dim < 1:
            problems.append(f"{path}.embed_dim must be ≥ 1, got {self.embed_dim}")
        if not self.temperature > 0:
            problems.append(f"{path}.temperature must be > 0, got {self.temperature}")
        if self.image_encoder != "convnet" and not self.model:
            problems.append(f"{path}.model: image_encoder {self.image_encoder} needs a model (architecture name "
                            "or JSON config)")
        if self.image_encoder == "open_clip" and not self.weights:
            problems.append(f"{path}.weights: an open_clip vision tower needs a local weights file")
        if self.lora.enabled and self.image_encoder == "convnet":
            problems.append(f"{path}.lora.enabled: LoRA adapters go on ViT attention projections; use "
                            "image_encoder open_clip or timm")
        if self.text_layers not in (1, 2):
            problems.append(f"{path}.text_layers must be 1 or 2, got {self.text_layers}")
        if self.text_head not in ("mlp", "residual"):
            problems.append(f"{path}.text_head must be mlp or residual, got {self.text_head!r}")
        if not self.image_projection and self.image_encoder == "convnet":
            problems.append(f"{path}.image_projection: false applies to timm / open_clip encoders (the ConvNet's "
                            "classifier is its projection)")
        return problems


@dataclass
class BiTMConfig(TMConfig):
    """``method.name: bitm`` — bi-trajectory matching (+ LoRA mode, + low-rank similarity mining).

    Groups are fixed: ``image`` (the image encoder's parameters; only the LoRA adapters when
    ``network.lora.enabled``) and ``text`` (the text head). Each is normalised on its own and has
    its own learnable lr (the synthetic set learns two). Learning rates of the synthetic state:
    ``lr_inputs`` (pixels), ``lr_text`` (caption embeddings), ``lr_lr`` (the two student lrs),
    ``lr_sim`` (the similarity matrix). ``similarity: true`` learns S = diag(a) + (α/r)·L·Rᵀ
    (``sim_rank`` r, ``sim_alpha`` α), which starts at the identity and replaces the identity
    targets of the contrastive loss; its tensors count in the storage budget. ``sim_symmetric:
    true`` uses the symmetric low-rank part, S = diag(a) + (α/r)·½(L·Rᵀ + R·Lᵀ) (same tensors, same
    storage), so the image→text targets (rows of S) and the text→image targets (rows of Sᵀ) agree.

    ``sim_loss`` is the loss against S, in the student's steps and when the distilled set is
    evaluated: ``infonce`` (mmdd's reading: S as soft InfoNCE targets) or ``wbce`` (LoRS' published
    loss: class-balanced BCE on sigmoid logits); without similarity mining it is always InfoNCE.
    ``branch_norm``: ``per_branch`` divides each tower's distance to the target by its own start
    distance and sums the two (LoRS' default, its Flickr scripts); ``merged`` divides the summed
    distances by the summed start distances (LoRS' ``--merge_loss_branches``, its COCO scripts).
    """

    name: str = "bitm"
    lr_text: float = 100.0
    lr_sim: float = 10.0
    similarity: bool = False
    sim_rank: int = 10
    sim_alpha: float = 1.0
    sim_symmetric: bool = False
    sim_loss: Literal["infonce", "wbce"] = "infonce"
    branch_norm: Literal["per_branch", "merged"] = "per_branch"
    lr_init_text: float | None = None  # the text group's initial student lr (default: synthetic.lr_init)

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        if self.groups is not None:
            problems.append(f"{path}.groups: bitm matches the fixed groups image and text; remove groups")
        if self.similarity and self.sim_rank < 1:
            problems.append(f"{path}.sim_rank must be ≥ 1, got {self.sim_rank}")
        if self.lr_text < 0 or self.lr_sim < 0:
            problems.append(f"{path}: lr_text and lr_sim must be ≥ 0")
        if self.sim_loss not in ("infonce", "wbce"):
            problems.append(f"{path}.sim_loss must be infonce or wbce, got {self.sim_loss!r}")
        if self.branch_norm not in ("per_branch", "merged"):
            problems.append(f"{path}.branch_norm must be per_branch or merged, got {self.branch_norm!r}")
        return problems
