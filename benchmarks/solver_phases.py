"""Where the constant-memory solver's extra time goes: both solvers and its first pass alone, in one process.

    python benchmarks/solver_phases.py --width 32 --steps 40 [--ipc 10]

IPC --ipc (10 × ipc random 1×28×28 inputs), ConvNet-3 of --width (first layer padded as the reference nets), one expert trained here for 2 epochs on 512 random
images (the timing does not depend on its values), segment 0→1, DSA on, one thread, mmdd's host allocator.
Each solver runs twice (the faster run is kept); the first pass is the constant-memory solver's forward sweep
that finds θ_N (a forward and a parameter gradient per step, no graph), timed on its own, and the rest of the
constant-memory time is its adjoint (reverse) pass. Prints one line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mmdd.core import speed
from mmdd.core.augment import ImageAugment
from mmdd.core.evaluation import train_epoch
from mmdd.core.matchers.base import MatchingContext
from mmdd.core.matchers.trajectory import TMConfig, TrajectoryMatcher
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet
from mmdd.core.trajectories import ExpertBuffer, ExpertsConfig, rebuild_index, train_expert


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--ipc", type=int, default=10)
    args = parser.parse_args(argv)
    speed.tune_host_allocator()
    torch.set_num_threads(1)
    gen = make_generator(0)
    make_net = lambda g: create_network(ConvNetConfig(depth=3, width=args.width), (1, 28, 28), 10, g)
    root = Path(tempfile.mkdtemp(prefix="mmdd-solver-phases-"))
    x, y = torch.randn(512, 1, 28, 28, generator=gen), torch.arange(10).repeat(52)[:512]
    train_expert(0, ExpertsConfig(num_experts=1, epochs=2), root, make_net,
                 lambda net, opt, g: train_epoch(net, opt, x, y, 256, g, None, torch.device("cpu")))
    rebuild_index(root)
    buffer = ExpertBuffer(root)
    syn = PixelSet(torch.randn(10 * args.ipc, 1, 28, 28, generator=gen), 10, args.ipc, learn_lr=True, lr_init=0.01)
    times: dict[str, list[float]] = {}
    for solver in ("exact", "constant_memory") * 2:
        cfg = TMConfig(syn_steps=args.steps, expert_epochs=1, max_start_epoch=1, solver=solver)
        matcher = TrajectoryMatcher(cfg, MatchingContext(make_net, ImageAugment(), torch.device("cpu"), buffer))
        syn.zero_grad(set_to_none=True)
        started = time.perf_counter()
        matcher(syn, None, make_generator(1)).backward()
        times.setdefault(solver, []).append(time.perf_counter() - started)
    inputs, targets = syn.decode()
    seg = matcher.draw_segment(inputs.shape[0], make_generator(1))
    lrs = {group: float(lr) for group, lr in zip(matcher.members, matcher.student_lrs(syn))}
    started = time.perf_counter()
    matcher.forward_sweep(inputs, targets, lrs, seg)  # the constant-memory solver's own first pass
    first_pass = time.perf_counter() - started
    exact, constant = min(times["exact"]), min(times["constant_memory"])
    print(f"width {args.width}, IPC {args.ipc}, {args.steps} steps: exact {exact:.2f} s, constant_memory {constant:.2f} s "
          f"(×{constant / exact:.2f}); its first pass {first_pass:.2f} s; its reverse pass {constant - first_pass:.2f} s "
          f"(×{(constant - first_pass) / exact:.2f} of exact)")


if __name__ == "__main__":
    main()
