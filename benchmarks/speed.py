"""Speed of mmdd's hot paths, mode against mode, measured in one run.

    python benchmarks/speed.py --root /usr/share/datasets/fashion-mnist [--configs ...] [--modes ...]

Configs (Fashion-MNIST ConvNet-3 width 128 unless said otherwise; recipes from the catalog):

* ``expert_step``   — expert training steps (batch 256, DSA on); an epoch of the 60,000-image train split
                      is 235 of them, so the unit is a step and the epoch is 235 × that;
* ``eval_ipc10``    — evaluation of a 100-sample set (a random 10 per class) over 3 seeds for
                      ``--eval-epochs`` epochs (the protocol's 300 is 300 / eval-epochs × that), test scoring included;
* ``mtt_ipc1_s50_exact`` / ``..._constant_memory``, ``mtt_ipc1_s40_*``, ``mtt_ipc10_s30_exact`` / ``..._constant_memory`` —
                      one MTT iteration (IPC 1 / 50 and 40 student steps, IPC 10 / 30 steps) against a tiny expert
                      buffer trained here (2 epochs on 1,000 images: the timing does not depend on its values);
* ``dm_ipc10``      — one DM iteration;
* ``fsdd_mtt_ipc10`` — one FD-MFCC MTT iteration on FSDD (``--fsdd``, the recordings folder);
* ``video_dm``      — one iteration of the action-set recipe's last (clip) stage, DM (``--action-set``).

Modes, each in a fresh process (the allocator is a process-wide setting):

* ``baseline``      — eager, glibc's default allocator (``MMDD_HOST_ALLOCATOR=system``) and PyTorch's
                      ``avg_pool2d`` (``MMDD_CPU_POOL=avg_pool``), seeds one after another: the code as the speed
                      issue found it;
* ``allocator``     — eager with mmdd's tuned host allocator, still ``avg_pool2d``;
* ``pool``          — allocator + the ConvNet's 2×2 pool as a bit-identical depthwise convolution on the CPU
                      (the defaults now: allocator and pool);
* ``test_batch``    — pool + the test split scored in batches of 256 instead of the recipe's 1024 (evaluation
                      only; every other mode scores at 1024);
* ``compiled``      — allocator + ``torch.compile`` of the training step (experts, evaluation);
* ``batched_seeds`` — pool + the evaluation seeds trained as one batched model (evaluation only);
* ``ranks2``        — pool + two processes under torchrun (the 2-draw DM config; its reference is ``pool``);
* ``tf32`` / ``bf16`` — pool + ``precision`` and ``evaluation.precision`` at TF32 / bfloat16 autocast
                      (matching and evaluation; GPU modes, except that ``bf16`` also runs on a CPU with fast
                      bfloat16 kernels, ``core.speed.fast_bf16``; otherwise only when named in ``--modes``).
                      Reduced precision: its effect on accuracy is benchmarks/results/precision.md's;
* ``host_data``     — pool + ``real_on_device: off``: every real batch (DM's class batches, the test split)
                      copied to the device on use. The other modes keep the recipe's ``auto``, which on CUDA
                      copies the real inputs to the card once (core/residency.py); on the CPU there is nothing
                      to copy, so this is a GPU mode. Each row's ``real_on_device`` says what was decided.

Every row carries config, device, mode, unit, ms_per_unit, peak_bytes and speedup (the baseline mode's
ms ÷ this mode's, from the same run). Time is the median of ``--iters`` timed units; ``compiled`` rows and GPU rows
first run a warm-up unit (compilation, kernel autotuning), reported as ``warmup_ms``; eager CPU rows
time from the first unit, as a run meets it. Peak
memory is the worker's resident high-water mark while timing (reset after start-up) on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU. Writes benchmarks/results/speed.{md,json} (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FMNIST_W128 = ["network.width=128", "network.depth=3"]
CONFIGS = {
    "expert_step": dict(kind="expert", recipe="image/fashion_mnist-mtt-ipc10", overrides=["dataset.zca=false"],
                        unit="expert step (batch 256; an epoch is 235)"),
    "eval_ipc10": dict(kind="eval", recipe="image/fashion_mnist-dm-ipc10", overrides=[],
                       unit="evaluation of an IPC-10 set: 3 seeds × {epochs} epochs + test"),
    "mtt_ipc1_s50_exact": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc1", experts=True,
                               overrides=["method.syn_steps=50", "method.solver=exact"], unit="iteration"),
    "mtt_ipc1_s50_constant_memory": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc1", experts=True,
                                         overrides=["method.syn_steps=50", "method.solver=constant_memory"],
                                         unit="iteration"),
    "mtt_ipc1_s40_exact": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc1", experts=True,
                               overrides=["method.syn_steps=40", "method.solver=exact"], unit="iteration"),
    "mtt_ipc1_s40_constant_memory": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc1", experts=True,
                                         overrides=["method.syn_steps=40", "method.solver=constant_memory"],
                                         unit="iteration"),
    "mtt_ipc10_s30_exact": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc10", experts=True,
                                overrides=["method.syn_steps=30", "method.solver=exact"], unit="iteration"),
    "mtt_ipc10_s30_constant_memory": dict(kind="distill", recipe="image/fashion_mnist-mtt-ipc10", experts=True,
                                          overrides=["method.syn_steps=30", "method.solver=constant_memory"],
                                          unit="iteration"),
    "dm_ipc10": dict(kind="distill", recipe="image/fashion_mnist-dm-ipc10", overrides=[], unit="iteration"),
    "fsdd_mtt_ipc10": dict(kind="distill", recipe="audio/fsdd-mtt-ipc10", experts=True, data="fsdd",
                           overrides=["method.syn_steps=20"], unit="iteration"),
    "dm_ipc10_2draws": dict(kind="draws", recipe="image/fashion_mnist-dm-ipc10", overrides=[],
                            unit="iteration of 2 draws (DM)"),
    "video_dm": dict(kind="distill", recipe="video/action_set-s2d-vpc1", data="action_set", overrides=[],
                     unit="iteration (clip stage)"),
}
MODES = ("baseline", "allocator", "pool", "test_batch", "compiled", "batched_seeds", "ranks2", "tf32", "bf16",
         "host_data")
#: modes measured only where named, or on a GPU (TF32 is CUDA's; host_data is ``real_on_device: off``, which on
#: the CPU is every mode; bf16 also on a CPU whose bfloat16 kernels are fast, ``core.speed.fast_bf16``)
GPU_MODES = ("tf32", "bf16", "host_data")
#: which modes mean something for which kind of work
APPLIES = {"expert": ("baseline", "allocator", "pool", "compiled"), "eval": MODES[:6] + GPU_MODES,
           "distill": ("baseline", "allocator", "pool") + GPU_MODES, "draws": ("pool", "ranks2")}
#: the test-scoring batch of the ``test_batch`` mode (a probe: no faster than 1024 here, docs/benchmarks.md)
TEST_BATCH = 256
#: the modes that measure PyTorch's avg_pool2d (the depthwise CPU pool is what ``pool`` adds)
AVG_POOL_MODES = ("baseline", "allocator")
DEFAULT_CONFIGS = ("expert_step", "eval_ipc10", "mtt_ipc1_s50_exact", "mtt_ipc1_s50_constant_memory",
                   "mtt_ipc1_s40_exact", "mtt_ipc1_s40_constant_memory",
                   "mtt_ipc10_s30_exact", "mtt_ipc10_s30_constant_memory", "dm_ipc10", "dm_ipc10_2draws",
                   "fsdd_mtt_ipc10", "video_dm")


# ----------------------------------------------------------------------------------------------- worker

def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def overrides_for(args, config: dict) -> list[str]:
    out = list(config["overrides"]) + [f"device={args.device}", "seed=0"]
    recipe = config["recipe"]
    if recipe.startswith("image/"):
        out += FMNIST_W128 + [f"dataset.root={args.root}"]
    if config.get("data") == "fsdd":
        out.append(f"dataset.root={args.fsdd}")
    if config.get("data") == "action_set":
        out += [f"dataset.root={args.action_set}/videos", f"dataset.split_dir={args.action_set}/splits"]
    if config.get("experts"):
        out += [f"experts.dir={args.experts}/{args.config}", "method.max_start_epoch=1", "method.expert_epochs=1",
                "method.min_start_epoch=0"]
    return out


def prepare_experts(ws, root: Path) -> None:
    """One 2-epoch expert of the recipe's network on 1,000 training samples (values do not matter for timing)."""
    from mmdd.core.coresets import random_subset
    from mmdd.core.seeding import make_generator
    from mmdd.core.trajectories import ExpertsConfig, rebuild_index, train_expert

    if (root / "index.json").exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    train = ws.domain.expert_data(ws)
    per_class = max(1, 1000 // ws.data.num_classes)
    subset = train.subset(random_subset(train.labels, ws.data.num_classes, per_class, make_generator(0)))
    cfg = ExpertsConfig(num_experts=1, epochs=2, lr=ws.cfg.experts.lr, batch_size=256)
    train_expert(0, cfg, root, lambda g: ws.network(ws.cfg.network, g),
                 lambda net, opt, g: ws.task.epoch(net, opt, subset, 256, g, None, ws.device))
    rebuild_index(root)


def timed(fn, iters: int, device, warm_up: bool) -> tuple[list[float], float | None]:
    """(times of ``iters`` calls, the time of a warm-up call before them or None), in seconds."""
    import torch

    def once() -> float:
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    warm = once() if warm_up else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark of the timed units only
    return [once() for _ in range(iters)], warm


def worker(args) -> dict:
    import torch

    from mmdd.core import speed
    from mmdd.run import load_config, setup

    config = CONFIGS[args.config]
    torch.set_num_threads(args.threads)
    cfg = load_config(config["recipe"], overrides_for(args, config))
    compile_mode = "on" if args.mode == "compiled" else "off"
    cfg.evaluation.compile = compile_mode
    cfg.experts.compile = compile_mode
    cfg.evaluation.batch_seeds = "on" if args.mode == "batched_seeds" else "off"
    if args.mode == "test_batch":  # the only mode that scores at another batch than the recipe's (1024)
        cfg.evaluation.test_batch_size = TEST_BATCH
    if args.mode in ("tf32", "bf16"):
        cfg.precision = cfg.evaluation.precision = args.mode
    if args.mode == "host_data":  # a copy of each real batch per use; the other modes keep the recipe's auto
        cfg.real_on_device = "off"
    ws = setup(cfg)
    ws.progress = False
    device = ws.device
    unit = config["unit"].format(epochs=args.eval_epochs)
    if config["kind"] == "draws":
        fn = draws_iteration(ws, args, config)
    elif config["kind"] == "expert":
        fn = expert_steps(ws, args)
    elif config["kind"] == "eval":
        fn = evaluation(ws, args)
    else:
        fn = distill_iteration(ws, args, config)
    # a warm-up unit where the first differs by design (compilation, CUDA kernels and cuDNN autotuning);
    # eager CPU rows time from the first unit, as a run meets it
    times, warm = timed(fn, args.iters, device, warm_up=args.mode == "compiled" or device.type == "cuda")
    units = getattr(fn, "units", 1)
    times = [t / units for t in times]
    warm = None if warm is None else round(1000 * warm / units, 1)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else status_bytes("VmHWM")
    return {"config": args.config, "device": str(device), "mode": args.mode, "unit": unit,
            "ms_per_unit": round(1000 * statistics.median(times), 1), "ms_all": [round(1000 * t, 1) for t in times],
            "warmup_ms": warm, "peak_bytes": int(peak), "allocator": speed.allocator_state(),
            "cpu_pool": speed.cpu_pool(), "real_on_device": ws.residency.reason,
            "recipe": config["recipe"]}


def expert_steps(ws, args):
    import torch

    from mmdd.core.seeding import make_generator
    from mmdd.core.speed import compiled

    train = ws.domain.expert_data(ws)
    steps, batch = args.expert_steps, ws.cfg.experts.batch_size
    gen = make_generator(0)
    subset = train.subset(torch.randperm(len(train.labels), generator=gen)[:steps * batch])  # whole batches
    net = ws.network(ws.cfg.network, gen)
    opt = torch.optim.SGD(net.parameters(), lr=ws.cfg.experts.lr)
    runner = compiled(net, ws.cfg.experts.compile, ws.device, "expert training")
    augment = ws.eval_augment() if ws.cfg.experts.augment else None
    assert len(subset) == steps * batch, "the subset must be whole batches"

    def fn():
        ws.task.epoch(runner, opt, subset, batch, gen, augment, ws.device)  # `steps` steps of `batch`

    fn.units = steps  # the timed call is `steps` units
    return fn


def evaluation(ws, args):
    import dataclasses

    from mmdd.core.evaluation import EvalSet, Samples, evaluate_set
    from mmdd.core.coresets import random_subset
    from mmdd.core.seeding import make_generator

    train = ws.data.train
    index = random_subset(train.labels, ws.data.num_classes, 10, make_generator(0))
    data = Samples(train.inputs[index], train.labels[index])
    cfg = dataclasses.replace(ws.cfg.evaluation, epochs=args.eval_epochs, seeds=3, seed=0)
    test = ws.test_split  # on the device when real_on_device places it there

    def fn():
        evaluate_set(EvalSet(data), ws.task, make_network=lambda g: ws.network(ws.eval_network_cfg, g), cfg=cfg,
                     test=test, protocol="speed", device=ws.device, augment=ws.eval_augment())

    return fn


def last_stage(ws):
    """The run's generator, synthetic set, last stage, its matcher and optimizer, and its real data."""
    from mmdd.core.distill import make_optimizer
    from mmdd.core.seeding import make_generator
    from mmdd.run import build_matcher, stage_plan

    gen = make_generator(0)
    syn = ws.domain.make_synthetic(ws, gen)
    stage = stage_plan(ws.cfg, syn)[-1]
    syn.set_stage(stage.name)
    return gen, syn, build_matcher(ws, stage), make_optimizer(syn, stage.method), stage.real(ws)


def distill_iteration(ws, args, config, draws=None):
    """One iteration of the stage's matcher through the library's own loop (``core/distill.run_loop``);
    ``draws``: several draws per iteration (see :func:`draws_iteration`)."""
    from mmdd.core.distill import run_loop
    from mmdd.core.speed import precision

    if config.get("experts"):
        prepare_experts(ws, Path(ws.cfg.experts.dir))
    gen, syn, matcher, optimizer, real = last_stage(ws)
    done = [0]

    def fn():
        done[0] = run_loop(syn, matcher, real, optimizer, gen, done[0] + 1, start_step=done[0], progress=False,
                           draws=draws, forward_context=lambda: precision(ws.cfg.precision, ws.device))

    return fn


def draws_iteration(ws, args, config):
    """An iteration of two draws: one process computing both (``distributed.draws_per_rank=2``) or,
    under torchrun with 2 processes, one draw each."""
    from mmdd.core import distributed

    world = distributed.world_size()
    draws = distributed.Draws(seed=0, per_rank=2 // world, rank=distributed.rank(), world_size=world)
    return distill_iteration(ws, args, config, draws)


# ----------------------------------------------------------------------------------------------- driver

def run_worker(args, config: str, mode: str) -> dict:
    launcher = [sys.executable]
    if mode == "ranks2":  # two processes under torchrun (gloo on the CPU, NCCL on GPUs); rank 0 reports
        launcher += ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())]
    cmd = launcher + [__file__, "--worker", "--config", config, "--mode", mode, "--device", args.device,
           "--threads", str(args.threads), "--iters", str(args.iters), "--eval-epochs", str(args.eval_epochs),
           "--expert-steps", str(args.expert_steps), "--experts", str(args.experts)]
    for flag in ("root", "fsdd", "action_set"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MMDD_HOST_ALLOCATOR": "system" if mode == "baseline" else "tuned",
           "MMDD_CPU_POOL": "avg_pool" if mode in AVG_POOL_MODES else "depthwise"}
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {"config": config, "mode": mode, "device": args.device, "ms_per_unit": None, "note": f"failed: {tail}"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["worker_wall_s"] = round(time.perf_counter() - started, 1)
    return row


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_speedups(rows: list[dict]) -> list[dict]:
    """``speedup`` = the reference mode's ms ÷ this row's, per config: ``baseline`` when it ran, else the
    first mode that ran (a GPU suite starts at ``allocator``); ``speedup_over`` names it."""
    reference: dict[str, dict] = {}
    for r in rows:
        if r.get("ms_per_unit") and (r["config"] not in reference or r["mode"] == "baseline"):
            reference[r["config"]] = r
    for r in rows:
        ref = reference.get(r["config"])
        r["speedup"] = round(ref["ms_per_unit"] / r["ms_per_unit"], 3) if ref and r.get("ms_per_unit") else None
        r["speedup_over"] = ref["mode"] if ref else None
        r.update({"budget": None, "budget_unit": None, "seeds": 0, "distill_runs": 0})  # timing rows (DESIGN §8)
    return rows


def table(result: dict) -> str:
    lines = [f"## {result['benchmark']} ({result['profile']})", "", f"- machine: {result['machine']}",
             f"- data: {result['data']}", f"- protocol: {result['protocol']}", "",
             "| config | mode | unit | ms per unit | speed-up (over) | peak MiB | warm-up ms |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if r.get("ms_per_unit") is None:
            lines.append(f"| {r['config']} | {r['mode']} | — | {r.get('note', 'failed')} | — | — | — |")
            continue
        lines.append(f"| {r['config']} | {r['mode']} | {r['unit']} | {r['ms_per_unit']:.1f} | "
                     f"{r['speedup']:.2f}× ({r['speedup_over']}) | {r['peak_bytes'] / 2**20:.0f} | "
                     f"{'—' if r['warmup_ms'] is None else round(r['warmup_ms'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--fsdd", help="FSDD recordings folder (for fsdd_mtt_ipc10)")
    parser.add_argument("--action-set", help="generated action set (for video_dm)")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--modes", nargs="+", default=None, choices=list(MODES),
                        help="default: every mode, less the GPU modes (tf32, bf16, host_data) on the CPU")
    parser.add_argument("--iters", type=int, default=3, help="timed units per row (median reported)")
    parser.add_argument("--eval-epochs", type=int, default=30)
    parser.add_argument("--expert-steps", type=int, default=20, help="expert steps per timed unit")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--keep-other-configs", action="store_true",
                        help="keep the rows of configs not measured now from the results file in --out")
    parser.add_argument("--note", default="", help="how this run was made (e.g. what else ran on the machine)")
    parser.add_argument("--experts", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from mmdd.core import distributed

        processes = distributed.start_processes(args.device)
        args.device = processes.device  # under torchrun on GPUs: this process's card
        row = worker(args)
        if processes.writer:
            print(json.dumps(row))
        processes.close()
        return 0
    if not args.root:
        parser.error("--root is required (Fashion-MNIST)")
    from common import machine, write

    if args.modes is None:
        from mmdd.core.speed import fast_bf16

        cpu_modes = ("bf16",) if fast_bf16("cpu") else ()
        args.modes = [m for m in MODES if args.device != "cpu" or m not in GPU_MODES or m in cpu_modes]
    args.experts = Path(tempfile.mkdtemp(prefix="mmdd-speed-experts-"))
    rows = []
    for config in args.configs:
        needs = CONFIGS[config].get("data")
        if needs and not getattr(args, needs):
            print(f"skipping {config}: give --{needs.replace('_', '-')}", file=sys.stderr)
            continue
        for mode in args.modes:
            if mode not in APPLIES[CONFIGS[config]["kind"]]:
                continue
            row = run_worker(args, config, mode)
            rows.append(row)
            shown = f"{row['ms_per_unit']:.1f} ms" if row.get("ms_per_unit") else row.get("note")
            print(f"{config:<32} {mode:<14} {shown}", file=sys.stderr, flush=True)
    result = {"benchmark": "speed", "profile": args.device, "machine": machine().replace(
                  f"threads {__import__('torch').get_num_threads()}", f"threads {args.threads}"),
              "data": (f"Fashion-MNIST at {args.root}" + (f"; FSDD at {args.fsdd}" if args.fsdd else "")
                       + (f"; action set at {args.action_set}" if args.action_set else "")),
              "protocol": (f"median of {args.iters} timed units (compiled and GPU rows after a warm-up unit), each "
                           f"(config, mode) in a fresh "
                           f"process with {args.threads} thread(s); expert unit = 1 step measured over "
                           f"{args.expert_steps}-step passes; evaluation {args.eval_epochs} epochs; MTT against a "
                           f"2-epoch expert on 1,000 images (segment 0→1); in-place ReLU and per-snapshot expert "
                           f"reads are in every mode"),
              "rows": with_speedups(rows)}
    for row in result["rows"]:
        if args.note:
            row["note"] = args.note
    if args.keep_other_configs:
        previous = Path(args.out or Path(__file__).resolve().parent / "results") / "speed.json"
        if previous.exists():
            old = json.loads(previous.read_text())
            kept = [r for r in old["rows"] if r["config"] not in args.configs]
            result["rows"] = kept + result["rows"]
    text = table(result)
    write(result, Path(args.out) if args.out else None, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
