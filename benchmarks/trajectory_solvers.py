"""Trajectory-matching solvers: time per iteration and peak memory versus syn_steps.

    python benchmarks/trajectory_solvers.py --root /usr/share/datasets/fashion-mnist

Fashion-MNIST, IPC 10 (100 synthetic images initialised from real ones), ConvNet-3 (width set by
--width), one expert trained for 2 epochs on a 1,000-image subset as the trajectory. For each
syn_steps in {10, 20, 40} three solvers compute the loss and its gradient w.r.t. the images and
the learnable lr:

* exact            — mmdd's unrolled solver (named parameters through torch.func.functional_call)
* constant_memory  — mmdd's adjoint solver (one step's graph at a time)
* flat_vector      — the original MTT formulation, written here for comparison: the student is a
                     list of flat parameter vectors, unflattened into the network on each step

Each configuration runs in a fresh process. On the CPU, peak memory is that process's maximum
resident set while it iterates (VmHWM, reset through /proc/self/clear_refs after start-up, so the
one-off peak of importing the libraries does not mask the solver); on a GPU it is torch.cuda.max_memory_allocated. Both are also given above the process's memory just
before the first iteration (libraries, data, expert), which is what the solver itself adds. Time is the median of
--iters iterations after one warm-up. Writes benchmarks/results/trajectory_solvers.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SOLVERS = ("exact", "constant_memory", "flat_vector")


def flat_vector_loss(net, buffers, start, target, inputs, targets, lr, batches, draws, augment):
    """The original MTT formulation: flat parameter vectors, unflattened per step."""
    import torch.nn.functional as F
    from torch.func import functional_call
    import torch

    names = list(start)
    shapes = [start[n].shape for n in names]
    sizes = [start[n].numel() for n in names]

    def unflatten(flat):
        return {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}

    flat0 = torch.cat([start[n].flatten() for n in names])
    flat_target = torch.cat([target[n].flatten() for n in names])
    student = [flat0.clone().requires_grad_(True)]
    for idx, draw in zip(batches, draws):
        x = inputs[idx]
        if draw is not None:
            x = augment.apply(x, draw)
        ce = F.cross_entropy(functional_call(net, {**unflatten(student[-1]), **buffers}, (x,)), targets[idx])
        grad = torch.autograd.grad(ce, student[-1], create_graph=True)[0]
        student.append(student[-1] - lr * grad)
    return ((student[-1] - flat_target) ** 2).sum() / ((flat0 - flat_target) ** 2).sum()


def worker(args) -> dict:
    import torch

    from mmdd.core.augment import ImageAugment
    from mmdd.core.matchers.base import MatchingContext
    from mmdd.core.matchers.trajectory import TMConfig, TrajectoryMatcher
    from mmdd.core.networks import ConvNetConfig, create_network
    from mmdd.core.seeding import make_generator
    from mmdd.core.synthetic import PixelSet
    from mmdd.core.trajectories import ExpertBuffer

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = torch.load(args.data, weights_only=True)
    net_cfg = ConvNetConfig(depth=3, width=args.width)
    make_net = lambda gen: create_network(net_cfg, (1, 28, 28), 10, gen, device=device)
    buffer = ExpertBuffer(args.experts)
    cfg = TMConfig(syn_steps=args.syn_steps, expert_epochs=1, max_start_epoch=1,
                   solver="exact" if args.solver == "flat_vector" else args.solver)
    matcher = TrajectoryMatcher(cfg, MatchingContext(make_net, ImageAugment(), device, buffer))
    syn = PixelSet(data["syn"].to(device), 10, 10, learn_lr=True, lr_init=0.01)
    gen = make_generator(0)

    def one_iteration():
        syn.zero_grad(set_to_none=True)
        if args.solver == "flat_vector":
            inputs, targets = syn.decode()
            seg = matcher.draw_segment(inputs.shape[0], gen)
            loss = flat_vector_loss(matcher.net, matcher.buffers, seg.start, seg.target, inputs, targets,
                                    syn.student_lrs()[0], seg.batches, seg.draws, matcher.context.augment)
        else:
            loss = matcher(syn, None, gen)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    start = torch.cuda.memory_allocated() if device.type == "cuda" else current_rss()
    if device.type != "cuda":
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark: measure the solver, not imports
    one_iteration()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.iters):
        started = time.perf_counter()
        one_iteration()
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else status_bytes("VmHWM")
    return {"method": args.solver, "syn_steps": args.syn_steps, "ms_per_iter": round(1000 * statistics.median(times), 1),
            "peak_bytes": int(peak), "peak_above_start_bytes": int(peak - start)}


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def current_rss() -> int:
    """Resident set now: the process's libraries, data and expert before any iteration."""
    return status_bytes("VmRSS")


def prepare(args, tmp: Path) -> tuple[Path, Path]:
    """A 1,000-image subset, 100 synthetic images from it, and one 2-epoch expert (width --width)."""
    import torch

    from mmdd.core.coresets import random_subset
    from mmdd.core.evaluation import train_epoch
    from mmdd.core.networks import ConvNetConfig, create_network
    from mmdd.core.seeding import make_generator
    from mmdd.core.trajectories import ExpertsConfig, rebuild_index, train_expert
    from mmdd.domains.image import ImageDomain
    from mmdd.domains.image.configs import FashionMNISTConfig

    splits = ImageDomain().load_data(FashionMNISTConfig(root=args.root))
    train = splits.train
    subset = train.subset(random_subset(train.labels, 10, 100, make_generator(0)))
    syn = train.inputs[random_subset(train.labels, 10, 10, make_generator(1))]
    data = tmp / "data.pt"
    torch.save({"syn": syn}, data)
    experts = tmp / "experts"
    experts.mkdir()
    cfg = ExpertsConfig(num_experts=1, epochs=2, lr=0.01, batch_size=256)
    net_cfg = ConvNetConfig(depth=3, width=args.width)
    train_expert(0, cfg, experts, lambda g: create_network(net_cfg, (1, 28, 28), 10, g),
                 lambda net, opt, g: train_epoch(net, opt, subset.inputs, subset.labels, 256, g, None,
                                                 torch.device("cpu")))
    rebuild_index(experts)
    return data, experts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    # internal: one configuration in a fresh process
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--solver", default="exact", help=argparse.SUPPRESS)
    parser.add_argument("--syn-steps", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--experts", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not args.root:
        parser.error("--root is required")
    from common import machine, write

    tmp = Path(tempfile.mkdtemp(prefix="mmdd-solvers-"))
    data, experts = prepare(args, tmp)
    rows = []
    for steps in args.steps:
        for solver in SOLVERS:
            cmd = [sys.executable, __file__, "--worker", "--solver", solver, "--syn-steps", str(steps), "--data",
                   str(data), "--experts", str(experts), "--width", str(args.width), "--iters", str(args.iters),
                   "--threads", str(args.threads), "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"method": solver, "syn_steps": steps, "budget": 10, "budget_unit": "ipc",
                             "metric": "ms_per_iter", "mean": None, "std": None, "seeds": 0, "distill_runs": 0,
                             "note": f"failed: {out.stderr.strip().splitlines()[-1][:200]}"})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update({"budget": 10, "budget_unit": "ipc", "seeds": 0, "distill_runs": 0})  # a timing row
            rows.append(row)
            print(f"syn_steps {steps:>3} {solver:<16} {row['ms_per_iter']:>9.1f} ms  {row['peak_bytes'] / 2**20:8.1f} MiB",
                  file=sys.stderr)
    result = {"benchmark": "trajectory_solvers", "profile": "cpu" if args.device == "cpu" else args.device,
              "machine": machine(), "data": f"Fashion-MNIST at {args.root}: IPC 10 synthetic images from the train split",
              "protocol": (f"ConvNet-3 w{args.width}, one expert (2 epochs on 1,000 images), segment 0→1, batch = all "
                           f"100 images, DSA on; median of {args.iters} iterations after a warm-up; "
                           + ("peak = max RSS of a fresh process while iterating" if args.device == "cpu"
                              else "peak = torch.cuda.max_memory_allocated")),
              "rows": rows}
    text = solver_table(result)
    out_dir = Path(args.out) if args.out else Path(__file__).resolve().parent / "results"
    write(result, out_dir, text)
    print(text)
    return 0


def solver_table(result: dict) -> str:
    lines = [f"## {result['benchmark']} ({result['profile']})", "", f"- machine: {result['machine']}",
             f"- data: {result['data']}", f"- protocol: {result['protocol']}", "",
             "| syn_steps | " + " | ".join(f"{s} ms/iter | {s} peak MiB (above start)" for s in SOLVERS) + " |",
             "|---:|" + "---:|---:|" * len(SOLVERS)]
    by = {(r["syn_steps"], r["method"]): r for r in result["rows"]}
    for steps in sorted({r["syn_steps"] for r in result["rows"]}):
        cells = []
        for s in SOLVERS:
            r = by.get((steps, s), {})
            cells += ([f"{r['ms_per_iter']:.1f}",
                       f"{r['peak_bytes'] / 2**20:.1f} ({r['peak_above_start_bytes'] / 2**20:.1f})"] if "ms_per_iter" in r
                      else [r.get("note", "—"), "—"])
        lines.append(f"| {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
