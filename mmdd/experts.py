"""`mmdd experts RECIPE`: train the expert trajectories a trajectory-matching recipe needs.

Run it plainly, or under ``torchrun --nproc-per-node N -m mmdd.cli experts RECIPE`` to spread the
experts over N processes (gloo on the CPU, NCCL on GPUs): rank r trains experts r, r + N, ...
Finished experts are skipped, so an interrupted generation resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from mmdd.config import to_dict
from mmdd.core import rundir
from mmdd.core.distributed import DistributedInfo, barrier, distributed_info, start_processes  # noqa: F401
from mmdd.core.errors import ConfigError
from mmdd.core.progress import progress_bar
from mmdd.core.trajectories import (ExpertBuffer, expert_name, pending_experts, rebuild_index, recorded_description,
                                    train_expert)


def expert_description(ws, data=None) -> dict:
    """What an expert of this recipe is: network, data and training settings (kept in each sidecar)."""
    cfg = ws.cfg
    data = data if data is not None else ws.domain.expert_data(ws)
    description = {"name": ws.domain.describe_network(cfg.network), "config": to_dict(cfg.network),
                   "dataset": cfg.dataset.name, "train_size": ws.task.size(data), "lr": cfg.experts.lr,
                   "momentum": cfg.experts.momentum, "weight_decay": cfg.experts.weight_decay,
                   "batch_size": cfg.experts.batch_size, "augment": cfg.experts.augment}
    return json.loads(json.dumps(description))  # as a sidecar would hold it (tuples become lists)


def describe_difference(recorded: dict, wanted: dict) -> str:
    """``key: buffer value vs recipe value`` for every setting that differs (``not recorded`` for older buffers)."""
    keys = [k for k in wanted if recorded.get(k, "not recorded") != wanted[k]]
    keys += [k for k in recorded if k not in wanted]
    return "; ".join(f"{k}: buffer {recorded.get(k, 'not recorded')!r} vs recipe {wanted.get(k, 'not set')!r}"
                     for k in keys)


def refuse_other_settings(root: Path, description: dict) -> None:
    """Generation must not add experts to a buffer whose experts were trained with other settings."""
    recorded, description = recorded_description(root), json.loads(json.dumps(description))  # as a sidecar holds it
    if recorded is not None and recorded != description:
        raise ConfigError(f"expert buffer {root} was trained with other settings ({describe_difference(recorded, description)}); "
                          f"adding experts would mix two kinds of trajectory. Point experts.dir at a new folder "
                          f"or delete {root}")


def check_buffer_settings(ws, buffer: ExpertBuffer) -> None:
    """Warn when a buffer's experts were trained otherwise than the recipe's experts section says.

    Matching against another buffer can be deliberate (one buffer shared by several recipes), so this
    warns instead of refusing; the network itself is checked strictly by ``ExpertBuffer.check_network``.
    """
    recorded, wanted = buffer.index.get("network"), expert_description(ws)
    if recorded is not None and recorded != wanted:
        warnings.warn(f"expert buffer {buffer.root} was trained with settings other than the recipe's experts "
                      f"section ({describe_difference(recorded, wanted)}); distilling against it anyway",
                      stacklevel=3)


def name_ranges(numbers: Sequence[int]) -> str:
    """``expert_0000..0002, expert_0005``: expert numbers, consecutive runs folded."""
    runs: list[list[int]] = []
    for k in sorted(numbers):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(expert_name(r[0]) if len(r) == 1 else f"{expert_name(r[0])}..{r[-1]:04d}" for r in runs)


def skipped_line(desc: str, share: Sequence[int], todo: Sequence[int], root: Path) -> str | None:
    """The line saying which of this process's experts are already finished in ``root`` (None: none are)."""
    pending = set(todo)
    done = [k for k in share if k not in pending]
    if not done:
        return None
    return f"{desc}: {len(done)} of {len(share)} already in {root} ({name_ranges(done)}), training {len(todo)}"


def generate_experts(recipe, overrides: Sequence[str] = (), progress: bool = True) -> ExpertBuffer | None:
    """Train this process's share of the recipe's experts; return the buffer (rank 0) or None.

    Every domain's experts are trained here: the network, the data (``domain.expert_data``) and how a
    network learns from it for one epoch (``domain.task``) come from the domain.
    """
    from mmdd.run import experts_dir, load_config, setup

    cfg = load_config(recipe, overrides)
    processes = start_processes(cfg.device)  # torchrun: gloo on the CPU, NCCL with one GPU per rank
    info = processes.info
    cfg.device = processes.device
    try:
        ws = setup(cfg)
        root = experts_dir(cfg)
        root.mkdir(parents=True, exist_ok=True)
        data = ws.domain.expert_data(ws)
        augment = ws.eval_augment() if cfg.experts.augment else None
        description = expert_description(ws, data)
        refuse_other_settings(root, description)

        def one_epoch(net, opt, gen):
            ws.task.epoch(net, opt, data, cfg.experts.batch_size, gen, augment, ws.device)

        todo = pending_experts(root, cfg.experts.num_experts, info.rank, info.world_size, cfg.experts.epochs)
        desc = f"experts (rank {info.rank})" if info.world_size > 1 else "experts"
        share = [k for k in range(cfg.experts.num_experts) if k % info.world_size == info.rank]
        skipped = skipped_line(desc, share, todo, root)
        if progress and skipped:
            print(skipped, file=sys.stderr, flush=True)
        # one generating process per buffer; the ranks of one torchrun launch share it (each writes only its own experts)
        lock = rundir.RunLock(root, "mmdd experts") if info.world_size == 1 else contextlib.nullcontext()
        with lock:
            bar = progress_bar(todo, desc=desc, unit="expert", enabled=progress)
            for k in bar:
                train_expert(k, cfg.experts, root, lambda gen: ws.network(cfg.network, gen), one_epoch, description)
        barrier()  # every rank's experts are written before rank 0 indexes them
        if info.rank != 0:
            return None
        rebuild_index(root)
        return ExpertBuffer(root)
    finally:
        processes.close(wait=False)  # leave the group this call joined (an error: without waiting)
