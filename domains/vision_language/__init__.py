"""The vision-language domain: image-text pairs distilled by bi-trajectory matching.

Data (``datasets.py``): Karpathy split JSON (Flickr8k / Flickr30K / COCO), COCO captions JSON, the
Flickr8k ``captions.txt`` CSV. Captions are embedded once by a frozen text encoder (``text.py``: a
local Hugging Face folder or an open_clip text tower from a local file) and cached; images are
normalised per channel with the train split's statistics. The distillation space is therefore
(pixels, caption embedding) pairs.

Networks (``networks.py``): a dual encoder — the core ConvNet from scratch, an open_clip vision
tower or a timm model (local weights), optional peft LoRA adapters on the attention projections —
and a text projection head; one temperature for experts, matching and evaluation.

Method (``matching.py``, ``method.name: bitm``): bi-trajectory matching — the core trajectory
matcher with the groups ``image`` and ``text`` normalised independently, each with its own learned
lr; LoRA mode matches only the adapters; low-rank similarity mining (``synthetic.py``) learns soft
contrastive targets S = diag(a) + (α/r)·L·Rᵀ whose storage is counted in the budget.

The domain runs its own pipeline (there are no classes): :meth:`VisionLanguageDomain.distill`,
:meth:`~VisionLanguageDomain.evaluate_run`, :meth:`~VisionLanguageDomain.generate_experts` and
:meth:`~VisionLanguageDomain.render_run` are the hooks that ``mmdd.run`` / ``mmdd.experts`` call.
``budget.ipc`` is read as the number of **pairs**.
"""

from __future__ import annotations

import json
import os
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.augment import ImageAugment
from mmdd.core.distill import NonFiniteLoss, make_optimizer, run_loop
from mmdd.core.errors import ConfigError, RunError
from mmdd.core.matchers import MATCHERS, MatchingContext
from mmdd.core.registry import dataset_config
from mmdd.core.seeding import make_generator
from mmdd.core.trajectories import ExpertBuffer

from . import matching, networks  # noqa: F401  (networks registers network.name: dual_encoder)
from .configs import DATASET_CONFIGS, BiTMConfig, DualEncoderConfig
from .datasets import DATASETS, PairData, PairSplit
from .networks import build_dual_encoder
from .render import write_gallery
from .synthetic import PairSet, pairs_for_budget
from .text import HFTextEncoder, OpenCLIPTextEncoder, embed_captions
from .training import (METRIC_NAMES, PairTensors, evaluate_pairs, train_experts)

if "bitm" not in MATCHERS:
    MATCHERS.add("bitm", matching.SPEC)

__all__ = ["VisionLanguageDomain", "VLData", "load_vl_data", "init_pairs", "PairSet", "BiTMConfig",
           "DualEncoderConfig"]


# --------------------------------------------------------------------------- data


@dataclass
class VLData:
    """Real data in the distillation space: normalised images + cached caption embeddings."""

    train: PairTensors
    val: PairTensors | None
    test: PairTensors
    captions: dict[str, list[str]]
    info: dict = field(default_factory=dict)

    @property
    def text_dim(self) -> int:
        return int(self.train.text.shape[1])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    def real_bytes(self) -> int:
        t = self.train
        return t.images.numel() * t.images.element_size() + t.text.numel() * t.text.element_size()


def text_encoder(cfg):
    """The frozen text encoder of ``dataset.text``."""
    if cfg.encoder == "hf":
        return HFTextEncoder(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length)
    return OpenCLIPTextEncoder(cfg.model, cfg.weights)


def _read_pairs(cfg) -> PairData:
    common = dict(image_size=cfg.image_size, resize=cfg.resize, max_images=cfg.max_images,
                  captions_per_image=cfg.captions_per_image, seed=cfg.seed, on_error=cfg.on_error)
    if cfg.name == "karpathy":
        return DATASETS["karpathy"](cfg.root, cfg.json, **common)
    if cfg.name == "coco_captions":
        return DATASETS["coco_captions"](cfg.root, cfg.annotations, image_dirs=cfg.image_dirs,
                                         val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, **common)
    return DATASETS["flickr8k_csv"](cfg.root, cfg.csv, val_fraction=cfg.val_fraction,
                                    test_fraction=cfg.test_fraction, **common)


_DATA_CACHE: dict[str, VLData] = {}


def load_vl_data(cfg) -> VLData:
    """Read the pairs of ``cfg`` (a dataset config), embed the captions (cached), normalise images.

    Kept in memory per process (keyed by the dataset config), so a benchmark that runs several
    recipes on one dataset reads it once.
    """
    from mmdd.config import to_dict

    key = json.dumps(to_dict(cfg), sort_keys=True, default=str)
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    pairs = _read_pairs(cfg)
    encoder = text_encoder(cfg.text)
    mean = pairs.train.images.mean(dim=(0, 2, 3))
    std = pairs.train.images.std(dim=(0, 2, 3)).clamp_min(1e-6)

    def convert(split: PairSplit | None) -> PairTensors | None:
        if split is None:
            return None
        emb = embed_captions(split.captions, encoder, batch_size=cfg.text.batch_size, cache_dir=cfg.text.cache_dir)
        if cfg.text.normalize:
            emb = F.normalize(emb, dim=1)
        images = (split.images - mean[:, None, None]) / std[:, None, None]
        return PairTensors(images, emb, split.caption_image.clone())

    parts = {name: convert(split) for name, split in pairs.splits().items()}
    info = {k: v for k, v in pairs.info.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    info.update(mean=mean.tolist(), std=std.tolist(), text_dim=int(parts["train"].text.shape[1]),
                text_encoder=encoder.identity(), skipped=len(pairs.skipped),
                sizes={n: {"images": p.num_images, "captions": int(p.text.shape[0])} for n, p in parts.items()})
    data = VLData(parts["train"], parts.get("val"), parts["test"],
                  {n: list(s.captions) for n, s in pairs.splits().items()}, info)
    _DATA_CACHE[key] = data
    return data


def init_pairs(train: PairTensors, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` random real pairs: a seeded permutation of the images, one random caption each."""
    if n > train.num_images:
        raise ConfigError(f"budget.ipc={n} pairs but the train split has only {train.num_images} images; "
                          f"expected 1 ≤ pairs ≤ {train.num_images}")
    rows = torch.randperm(train.num_images, generator=gen)[:n]
    caps = train.pick_captions(gen, rows)
    return train.images[rows].clone(), train.text[caps].clone()


# --------------------------------------------------------------------------- the domain


def _lr_shim(method, learn_lr: bool):
    """The method config as make_optimizer reads it, with lr_lr 0 when the lr is not learned."""
    values = dict(vars(method))
    if not learn_lr:
        values["lr_lr"] = 0.0
    return types.SimpleNamespace(**values)


def _network_text(cfg: DualEncoderConfig) -> str:
    if cfg.image_encoder == "convnet":
        enc = f"ConvNet-{cfg.depth} w{cfg.width} {cfg.norm}"
    else:
        enc = f"{cfg.image_encoder} {cfg.model}" + (f" + LoRA r{cfg.lora.rank}" if cfg.lora.enabled else "")
    return f"dual encoder ({enc}; text head {cfg.text_layers}-layer; embed {cfg.embed_dim}; τ={cfg.temperature:g})"


class VisionLanguageDomain:
    name = "vision_language"
    metric = "mean_recall"
    extra_metrics = METRIC_NAMES

    # -- the parts
    def dataset_config(self, name: str) -> type:
        return dataset_config("vision_language", DATASET_CONFIGS, name)

    def load_data(self, cfg) -> VLData:
        return load_vl_data(cfg)

    def _check_network(self, net_cfg) -> DualEncoderConfig:
        if not isinstance(net_cfg, DualEncoderConfig):
            raise ConfigError(f"network.name: the vision_language domain needs network.name: dual_encoder, got "
                              f"{getattr(net_cfg, 'name', net_cfg)!r}")
        return net_cfg

    def make_network(self, net_cfg, in_shape: Sequence[int], text_dim: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return build_dual_encoder(self._check_network(net_cfg), in_shape, text_dim, gen, device)

    def make_augment(self, aug_cfg) -> ImageAugment | None:
        if not aug_cfg.enabled:
            return None
        return ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode)

    def make_synthetic(self, recipe, data: VLData, gen: torch.Generator) -> PairSet:
        method = recipe.method
        if not isinstance(method, BiTMConfig):
            raise ConfigError(f"method.name: the vision_language domain distils with bitm, got {method.name!r}")
        pair_floats = int(torch.tensor(data.in_shape).prod()) + data.text_dim
        n = pairs_for_budget(recipe.budget.ipc, pair_floats, method.similarity, method.sim_rank)
        if recipe.synthetic.init == "real":
            images, text = init_pairs(data.train, n, gen)
        else:
            images = torch.randn((n, *data.in_shape), generator=gen)
            t = data.train.text
            text = t.mean(0) + t.std(0) * torch.randn((n, data.text_dim), generator=gen)
        lr_text = method.lr_init_text or recipe.synthetic.lr_init
        return PairSet(images, text, similarity=method.similarity, sim_rank=method.sim_rank,
                       sim_alpha=method.sim_alpha, lr_init=(recipe.synthetic.lr_init, lr_text), gen=gen,
                       budget_pairs=recipe.budget.ipc, sim_symmetric=method.sim_symmetric)

    def matcher(self, cfg, data: VLData, device: torch.device):
        from mmdd.experts import experts_dir

        context = MatchingContext(
            make_network=lambda gen: self.make_network(cfg.network, data.in_shape, data.text_dim, gen, device),
            augment=self.make_augment(cfg.augment), device=device, experts=ExpertBuffer(experts_dir(cfg)))
        return MATCHERS.get(cfg.method.name, "method.name").build(cfg.method, context)

    def render(self, inputs, targets, info, out_dir):  # pragma: no cover - pairs render through render_run
        raise RunError("the vision_language domain renders through render_run (it needs the real captions)")

    # -- experts
    def generate_experts(self, cfg, progress: bool = True) -> ExpertBuffer | None:
        from mmdd.config import to_dict
        from mmdd.experts import experts_dir, refuse_other_settings

        data = load_vl_data(cfg.dataset)
        device = torch.device(cfg.device)
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        root = experts_dir(cfg)
        augment = self.make_augment(cfg.augment)
        description = {"name": _network_text(cfg.network), "config": to_dict(cfg.network),
                       "dataset": cfg.dataset.name, "train_size": data.train.num_images, "lr": cfg.experts.lr,
                       "augment": cfg.experts.augment, "text_dim": data.text_dim}
        refuse_other_settings(root, description)
        train_experts(root, cfg.experts, data.train,
                      lambda gen: self.make_network(cfg.network, data.in_shape, data.text_dim, gen, device),
                      augment, device, description, progress=progress, rank=rank, world_size=world)
        return ExpertBuffer(root) if rank == 0 else None

    # -- distillation
    def distill(self, cfg, run_dir: Path, *, resume: bool = False, overwrite: bool = False, evaluate: bool = True,
                stop_after: int | None = None, progress: bool = True):
        from mmdd import artifacts
        from mmdd.config import to_dict
        from mmdd.run import Run, _comparable, _prepare_dir, package_versions

        started = time.perf_counter()
        self._check_network(cfg.network)
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {cfg.device!r} was asked for but CUDA is not available; use device=cpu")
        data = load_vl_data(cfg.dataset)
        if cfg.budget.ipc > data.train.num_images:
            raise ConfigError(f"budget.ipc={cfg.budget.ipc} pairs but the train split has only "
                              f"{data.train.num_images} images; expected 1 ≤ pairs ≤ {data.train.num_images}")
        _prepare_dir(run_dir, resume, overwrite)
        gen = make_generator(cfg.seed)
        syn = self.make_synthetic(cfg, data, gen).to(device)
        matcher = self.matcher(cfg, data, device)
        optimizer = make_optimizer(syn, _lr_shim(cfg.method, cfg.synthetic.learn_lr))
        recipe = to_dict(cfg)
        step, wall_before = 0, 0.0
        if resume:
            state = artifacts.load_checkpoint(run_dir / artifacts.CHECKPOINT)
            if _comparable(state["recipe"]) != _comparable(recipe):
                raise RunError(f"cannot resume {run_dir}: the recipe differs from the one the run started with "
                               "(only method.iterations and evaluation may change)")
            syn.load_state_dict(state["synthetic"])
            optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            matcher.load_state_dict(state["matcher"])
            step, wall_before = int(state["step"]), float(state.get("wall_s", 0.0))
            artifacts.truncate_jsonl(run_dir / artifacts.METRICS, step)

        def save_checkpoint(at: int) -> None:
            artifacts.save_checkpoint(run_dir / artifacts.CHECKPOINT, {
                "step": at, "synthetic": syn.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": gen.get_state(), "recipe": recipe, "matcher": matcher.state_dict(),
                "wall_s": wall_before + time.perf_counter() - started})

        try:
            step = run_loop(syn, matcher, None, optimizer, gen, cfg.method.iterations, start_step=step,
                            checkpoint_every=cfg.checkpoint.every, save_checkpoint=save_checkpoint,
                            log=lambda s, rec: artifacts.append_jsonl(run_dir / artifacts.METRICS, rec),
                            stop_after=stop_after, progress=progress)
        except NonFiniteLoss as exc:
            raise RunError(f"{exc}; the run stopped before applying that update. The last good checkpoint is kept "
                           f"in {run_dir / artifacts.CHECKPOINT} — lower method.lr_inputs / lr_text / lr_sim or "
                           "method.lr_lr and run again") from None
        manifest = {
            "mmdd_artifact": 1,
            "status": "complete" if step >= cfg.method.iterations else "interrupted",
            "recipe": recipe, "profile": cfg.profile, "packages": package_versions(),
            "seeds": {"distillation": cfg.seed, "evaluation": cfg.evaluation.seed_list()},
            "steps_completed": step,
            "synthetic": {"kind": syn.kind, "metadata": syn.metadata(), "learned_lr": syn.learned_lr(),
                          "learned_lrs": syn.learned_lrs()},
            "budget": {"pairs": cfg.budget.ipc, "stored_pairs": syn.num_pairs,
                       "note": "with similarity mining, fewer pairs are stored so that pairs + S fit the bytes "
                               "of the budget's pairs"},
            "data": {**data.info, "train_size": data.train.num_images, "test_size": data.test.num_images,
                     "input_shape": list(data.in_shape)},
            "storage_bytes": syn.storage_bytes(),
            "real_bytes": data.real_bytes(),
            "compression_ratio": data.real_bytes() / syn.storage_bytes(),
            "compression_note": "train images (normalised float32) + every caption embedding ÷ every stored "
                                "synthetic tensor (pixels, text embeddings, S factors, lrs)",
            "wall_clock_s": {"distillation": round(wall_before + time.perf_counter() - started, 3)},
            "evaluation": {},
        }
        run = Run(Path(run_dir), cfg, manifest, syn)
        if manifest["status"] != "complete":
            artifacts.write_json(run.dir / artifacts.MANIFEST, manifest)
            return run
        artifacts.save_tensors(run.dir / artifacts.DISTILLED, syn.state_dict(), {"kind": syn.kind})
        artifacts.write_json(run.dir / artifacts.MANIFEST, manifest)
        if evaluate:
            self.evaluate_run(run, progress=progress)
        else:
            self.write_report(run)
        return run

    # -- evaluation
    def _protocol(self, cfg, lr_image: float, lr_text: float, epochs: int, data: VLData) -> str:
        ev = cfg.evaluation
        aug = f"DSA {cfg.augment.strategy} ({cfg.augment.mode})" if ev.augment and cfg.augment.enabled else "no aug"
        select = "last epoch" if ev.select == "last" else f"best val mean recall every {ev.select_every} epochs"
        return (f"{_network_text(cfg.network)}, bidirectional InfoNCE, SGD momentum {ev.momentum} wd "
                f"{ev.weight_decay}, lr image {lr_image:.4g} / text {lr_text:.4g}, ×0.1 at {ev.lr_decay_at:g} of "
                f"{epochs} epochs, batch {ev.batch_size}, {aug}, {ev.seeds} seeds, {select}; recall on test "
                f"({data.test.num_images} images, {data.test.text.shape[0]} captions)")

    def evaluate_sets(self, cfg, data: VLData, sets: dict, progress: bool = True) -> dict:
        """Evaluate named sets ``{name: (PairTensors, sim or None, lr_image, lr_text, epochs)}``."""
        device = torch.device(cfg.device)
        augment = self.make_augment(cfg.augment) if cfg.evaluation.augment else None
        results = {}
        for name, (pairs, sim, lr_image, lr_text, epochs) in sets.items():
            results[name] = evaluate_pairs(
                pairs, make_network=lambda gen: self.make_network(cfg.network, data.in_shape, data.text_dim, gen,
                                                                  device),
                cfg=cfg.evaluation, test=data.test, val=data.val, augment=augment, device=device,
                lr_image=lr_image, lr_text=lr_text, epochs=epochs, sim=sim,
                protocol=self._protocol(cfg, lr_image, lr_text, epochs, data), label=name if progress else "")
        return results

    def baseline_sets(self, cfg, data: VLData, names: Sequence[str]) -> dict:
        ev, sets = cfg.evaluation, {}
        for name in names:
            if name == "random":
                images, text = init_pairs(data.train, cfg.budget.ipc, make_generator(cfg.seed))
                sets["random"] = (PairTensors(images, text, torch.arange(images.shape[0])), None, ev.lr, ev.lr,
                                  ev.epochs)
            elif name == "full":
                sets["full"] = (data.train, None, ev.lr, ev.lr, ev.full_epochs or ev.epochs)
            else:
                raise ConfigError(f"evaluation.baselines: {name!r} needs classes; the vision_language domain offers "
                                  "'random' (random real pairs of the same budget) and 'full' (the whole train split)")
        return sets

    def evaluate_run(self, run, *, baselines: Sequence[str] | None = None, seeds: int | None = None,
                     progress: bool = True):
        from mmdd import artifacts
        from mmdd.run import open_run

        if not hasattr(run, "manifest"):
            run = open_run(run)
        cfg = run.config
        if seeds is not None:
            cfg.evaluation.seeds = seeds
        data = load_vl_data(cfg.dataset)
        started = time.perf_counter()
        syn = run.synthetic
        ev = cfg.evaluation
        lrs = syn.learned_lrs() if ev.use_learned_lr else {"image": ev.lr, "text": ev.lr}
        with torch.no_grad():
            sim = syn.similarity_matrix()
            distilled = PairTensors(syn.images.detach().cpu(), syn.text.detach().cpu(), torch.arange(syn.num_pairs))
        sets = {"distilled": (distilled, None if sim is None else sim.detach().cpu(), lrs["image"], lrs["text"],
                              ev.epochs)}
        sets.update(self.baseline_sets(cfg, data, ev.baselines if baselines is None else baselines))
        results = self.evaluate_sets(cfg, data, sets, progress=progress)
        run.manifest["evaluation"] = {name: res.as_dict() for name, res in results.items()}
        run.manifest["seeds"]["evaluation"] = ev.seed_list()
        run.manifest["wall_clock_s"]["evaluation"] = round(time.perf_counter() - started, 3)
        artifacts.write_json(run.dir / artifacts.MANIFEST, run.manifest)
        self.write_report(run)
        return run

    # -- rendering and report
    def render_run(self, run) -> list[Path]:
        cfg = run.config
        data = load_vl_data(cfg.dataset)
        syn = run.synthetic
        info = run.manifest["data"]
        title = f"{cfg.name}: {syn.num_pairs} distilled pairs"
        return [write_gallery(run.dir, syn.images.detach().cpu(), syn.text.detach().cpu(), data.train.text,
                              data.captions["train"], info["mean"], info["std"], title)]

    def write_report(self, run) -> Path:
        from mmdd import artifacts

        m, cfg = run.manifest, run.config
        files = self.render_run(run)
        lines = [f"# {cfg.name}", "", cfg.description.strip(), "",
                 f"- domain: `{cfg.domain}`, dataset: `{cfg.dataset.name}`, method: `{cfg.method.name}`, budget: "
                 f"{m['budget']['pairs']} pairs ({m['budget']['stored_pairs']} stored"
                 f"{' + similarity matrix' if m['synthetic']['metadata'].get('similarity') else ''}), "
                 f"profile: `{cfg.profile}`",
                 f"- storage: {m['storage_bytes']:,} bytes (real train split {m['real_bytes']:,} bytes; "
                 f"compression ×{m['compression_ratio']:.1f})",
                 f"- steps: {m['steps_completed']}, wall-clock: "
                 + ", ".join(f"{k} {v:.1f} s" for k, v in m["wall_clock_s"].items()),
                 f"- learned lrs: " + ", ".join(f"{k} {v:.4g}" for k, v in m["synthetic"]["learned_lrs"].items())]
        if m.get("evaluation"):
            lines += ["", "## Evaluation (recall, %)", "",
                      "| set | pairs | mean recall | " + " | ".join(n.upper() for n in METRIC_NAMES) + " |",
                      "|---|---:|---|" + "---|" * len(METRIC_NAMES)]
            for name, res in m["evaluation"].items():
                cells = [f"{100 * res['others'][n]['mean']:.2f} ± {100 * res['others'][n]['std']:.2f}"
                         for n in METRIC_NAMES]
                lines.append(f"| {name} | {res['train_size']} | {100 * res['mean']:.2f} ± {100 * res['std']:.2f} | "
                             + " | ".join(cells) + " |")
            lines.append("")
            lines += [f"- `{name}`: {res['protocol']}" for name, res in m["evaluation"].items()]
        lines += ["", "## Samples", ""] + [f"[{p.name}]({p.name})" for p in files] + [""]
        return artifacts.write_text(run.dir / artifacts.REPORT, "\n".join(lines))
