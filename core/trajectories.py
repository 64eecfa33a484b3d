"""Expert trajectories: networks trained on real data, one parameter snapshot per epoch.

On disk a buffer is a folder::

    index.json                  format, network description, parameter names and shapes, epochs,
                                and the experts present (rebuilt from the sidecars below)
    expert_0003.safetensors     tensors "e{epoch}/{param}" for epoch 0..E (0 = initialisation)
    expert_0003.json            sidecar: epochs, seed, wall-clock — written after the shard

Each expert is written atomically (shard, then sidecar), so an interrupted generation resumes by
skipping the experts whose sidecar exists. Generation is embarrassingly parallel: with
``world_size`` ranks, rank r trains experts r, r + world_size, ...; every rank writes only its own
files, and the index is rebuilt from the sidecars on load.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .atomic import atomic_write
from .checks import at_least, positive
from .errors import ConfigError, DataError
from .seeding import make_generator
from .speed import check_compile_mode, compiled

FORMAT = 1


@dataclass
class ExpertsConfig:
    """Recipe section ``experts``: how expert trajectories are trained and where they live."""

    dir: str = "experts/{dataset}-{key}"  # {name}: the recipe; {dataset}: the data; {key}: a digest of the settings
    num_experts: int = 10
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    augment: bool = True
    seed: int = 0
    train_per_class: int | None = None
    #: torch.compile each expert's training step (core/speed.py): "auto" on CUDA only, "on", "off"
    compile: Literal["auto", "on", "off"] = "auto"

    def check(self, path: str) -> list[str]:
        return (at_least(self, path, ("num_experts", "epochs", "batch_size", "train_per_class"))
                + positive(self, path, ("lr",)) + check_compile_mode(self.compile, f"{path}.compile"))


def expert_name(k: int) -> str:
    return f"expert_{k:04d}"


class ExpertBuffer:
    """Read access to a trajectory buffer, validated on open."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"no expert buffer at {self.root}; create one with `mmdd experts RECIPE` "
                            f"(expected a folder with index.json and expert_*.safetensors)")
        self.index = rebuild_index(self.root)
        if not self.index["experts"]:
            raise DataError(f"expert buffer {self.root} holds no finished expert (no expert_*.json sidecar); "
                            f"run `mmdd experts RECIPE` to generate them")
        self.param_shapes: dict[str, list[int]] = self.index["param_shapes"]
        self._shards: dict[int, object] = {}  # expert → its open shard (memory-mapped, read per snapshot)

    @property
    def experts(self) -> list[int]:
        return sorted(int(k) for k in self.index["experts"])

    @property
    def num_epochs(self) -> int:
        """The last epoch every expert has (snapshots 0..num_epochs)."""
        return min(info["epochs"] for info in self.index["experts"].values())

    def _open(self, k: int):
        """The expert's shard, opened lazily (memory-mapped) and checked once: every snapshot the sidecar
        promises is present with the index's shapes. Only the tensors a segment asks for are read."""
        if k not in self._shards:
            path = self.root / f"{expert_name(k)}.safetensors"
            try:
                shard = safe_open(str(path), framework="pt")
                shapes = {key: list(shard.get_slice(key).get_shape()) for key in shard.keys()}
            except Exception as exc:  # safetensors raises several error types for damaged files
                raise DataError(f"cannot read expert shard {path}: {exc}") from None
            self._validate(k, shapes, path)
            self._shards[k] = shard
        return self._shards[k]

    def _validate(self, k: int, shapes: dict[str, list[int]], path: Path) -> None:
        epochs = self.index["experts"][str(k)]["epochs"]
        for epoch in range(epochs + 1):
            for name, shape in self.param_shapes.items():
                key = f"e{epoch}/{name}"
                if key not in shapes:
                    raise DataError(f"expert shard {path} lacks {key!r}; expected snapshots of every parameter "
                                    f"for epochs 0..{epochs}")
                if shapes[key] != list(shape):
                    raise DataError(f"expert shard {path}: {key!r} has shape {shapes[key]}, "
                                    f"expected {shape} (from index.json)")

    def snapshot(self, k: int, epoch: int) -> dict[str, Tensor]:
        """The parameters of expert ``k`` after ``epoch`` epochs (0: its initialisation), read from disk."""
        if str(k) not in self.index["experts"]:
            raise DataError(f"expert {k} is not in buffer {self.root}; present: {self.experts}")
        epochs = self.index["experts"][str(k)]["epochs"]
        if not 0 <= epoch <= epochs:
            raise DataError(f"expert {k} in {self.root} has epochs 0..{epochs}; epoch {epoch} was asked for")
        shard = self._open(k)
        try:
            return {name: shard.get_tensor(f"e{epoch}/{name}") for name in self.param_shapes}
        except Exception as exc:
            raise DataError(f"cannot read epoch {epoch} of expert shard {self.root / expert_name(k)}.safetensors: "
                            f"{exc}") from None

    def check_network(self, net: nn.Module) -> None:
        """Refuse a buffer whose trainable parameters do not fit ``net`` (a different width, depth or data)."""
        mine = {n: list(p.shape) for n, p in trainable_parameters(net).items()}
        if mine != self.param_shapes:
            differ = sorted(n for n in set(mine) | set(self.param_shapes) if mine.get(n) != self.param_shapes.get(n))
            raise DataError(f"expert buffer {self.root} was trained with another network: trainable parameters differ at "
                            f"{differ[:4]}; regenerate it with `mmdd experts RECIPE` or point experts.dir elsewhere")


def rebuild_index(root: Path) -> dict:
    """Gather the sidecars of finished experts into index.json (atomic) and return it."""
    root = Path(root)
    experts, shapes, network = {}, None, None
    for sidecar in sorted(root.glob("expert_*.json")):
        info = read_sidecar(sidecar)
        if not (root / f"{sidecar.stem}.safetensors").exists():
            raise DataError(f"{sidecar} has no shard {sidecar.stem}.safetensors beside it")
        if shapes is None:
            shapes, network = info["param_shapes"], info.get("network")
        elif info["param_shapes"] != shapes:
            raise DataError(f"expert {sidecar.stem} in {root} has parameter shapes different from the others; "
                            f"a buffer must hold experts of one network")
        experts[str(info["expert"])] = {"epochs": info["epochs"], "seed": info["seed"], "wall_s": info["wall_s"]}
    index = {"format": FORMAT, "network": network, "param_shapes": shapes or {}, "experts": experts}
    if experts:
        atomic_write(root / "index.json", lambda tmp: tmp.write_text(json.dumps(index, indent=2) + "\n"))
    return index


def read_sidecar(sidecar: Path) -> dict:
    try:
        return json.loads(Path(sidecar).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"expert sidecar {sidecar} is not valid JSON ({exc})") from None


def recorded_description(root: Path) -> dict | None:
    """The network/training description kept by the buffer's finished experts (None for an empty folder)."""
    for sidecar in sorted(Path(root).glob("expert_*.json")):
        return read_sidecar(sidecar).get("network")
    return None


def finished_epochs(root: Path) -> dict[int, int]:
    """Expert number → the epochs it was trained for, for every finished expert in the folder."""
    return {info["expert"]: info["epochs"] for info in map(read_sidecar, sorted(Path(root).glob("expert_*.json")))}


def trainable_parameters(net: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters an expert trains and stores (a LoRA model's frozen base weights are not among them)."""
    return {name: p for name, p in net.named_parameters() if p.requires_grad}


def snapshot_params(net: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().cpu().clone().contiguous() for name, p in trainable_parameters(net).items()}


def train_expert(k: int, cfg: ExpertsConfig, root: Path, make_network: Callable[[torch.Generator], nn.Module],
                 train_epoch: Callable[[nn.Module, torch.optim.Optimizer, torch.Generator], None],
                 network_description: dict | None = None) -> None:
    """Train expert ``k`` (SGD over its trainable parameters, ``train_epoch(net, opt, gen)`` per epoch)
    and write its shard and sidecar atomically: a snapshot of every trainable parameter per epoch."""
    started = time.perf_counter()
    seed = cfg.seed * 1_000_003 + k
    gen = make_generator(seed)
    net = make_network(gen)
    opt = torch.optim.SGD(list(trainable_parameters(net).values()), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    tensors = {f"e0/{n}": t for n, t in snapshot_params(net).items()}
    device = next(iter(trainable_parameters(net).values())).device
    runner = compiled(net, cfg.compile, device, "expert training")  # shares net's parameters
    for epoch in range(1, cfg.epochs + 1):
        train_epoch(runner, opt, gen)
        tensors.update({f"e{epoch}/{n}": t for n, t in snapshot_params(net).items()})
    name = expert_name(k)
    atomic_write(root / f"{name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    sidecar = {"expert": k, "epochs": cfg.epochs, "seed": seed, "wall_s": round(time.perf_counter() - started, 3),
               "param_shapes": {n: list(p.shape) for n, p in trainable_parameters(net).items()},
               "network": network_description}
    atomic_write(root / f"{name}.json", lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2) + "\n"))


def pending_experts(root: Path, num_experts: int, rank: int = 0, world_size: int = 1,
                    epochs: int | None = None) -> list[int]:
    """This rank's share of the experts that have no finished sidecar yet.

    With ``epochs``, a finished expert trained for fewer epochs is refused: it would count as done
    and stay short, and the buffer would not have the epochs the recipe asks for.
    """
    done = finished_epochs(root)
    short = {} if epochs is None else {k: e for k, e in done.items() if e < epochs}
    if short:
        listed = ", ".join(f"expert {k}: {e}" for k, e in sorted(short.items()))
        raise ConfigError(f"experts.epochs is {epochs} but finished experts in {root} have fewer epochs ({listed}); "
                          f"they would be kept as they are. Point experts.dir at a new folder or delete {root}")
    return [k for k in range(num_experts) if k % world_size == rank and k not in done]
