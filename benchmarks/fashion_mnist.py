"""Fashion-MNIST: random / herding / k-center coresets and DM at IPC 1 and 10.

    python benchmarks/fashion_mnist.py --root /usr/share/datasets/fashion-mnist [--profile cpu]

Each budget is one `mmdd.distill` of the shipped recipe `image/fashion_mnist-dm-ipcN` (with the
chosen profile); its evaluation trains fresh networks on the distilled set and on each coreset of
the same budget under one protocol. Prints a Markdown table and writes
benchmarks/results/fashion_mnist.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mmdd  # noqa: E402
from common import machine, write  # noqa: E402

ORDER = ["random", "herding", "kcenter", "distilled"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder with the Fashion-MNIST IDX .gz files")
    parser.add_argument("--profile", default="cpu", help="recipe profile: cpu (2-core machine) or default (paper)")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="where to keep the run directories (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra recipe overrides (e.g. for a smoke test: method.iterations=5)")
    args = parser.parse_args(argv)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-fmnist-"))
    rows, protocol = [], ""
    for ipc in args.ipc:
        started = time.perf_counter()
        run = mmdd.distill(f"image/fashion_mnist-dm-ipc{ipc}",
                           [f"profile={args.profile}", f"dataset.root={args.root}", f"device={args.device}", *args.set],
                           output_dir=runs / f"dm-ipc{ipc}", overwrite=True, progress=False)
        total = time.perf_counter() - started
        m = run.manifest
        for name in ORDER:
            res = m["evaluation"][name]
            protocol = res["protocol"]
            wall = m["wall_clock_s"]["distillation"] + res["wall_s"] if name == "distilled" else res["wall_s"]
            rows.append({"method": "dm" if name == "distilled" else name, "budget": ipc, "budget_unit": "ipc",
                         "metric": res["metric"], "mean": res["mean"], "std": res["std"], "seeds": len(res["values"]),
                         "values": res["values"], "storage_bytes": m["storage_bytes"], "wall_s": round(wall, 1)})
        print(f"ipc {ipc} done in {total:.0f} s", file=sys.stderr)
    cfg = run.config
    result = {
        "benchmark": "fashion_mnist", "profile": args.profile, "machine": machine(),
        "data": f"Fashion-MNIST IDX files at {args.root} (60,000 train / 10,000 test, 10 classes)",
        "protocol": (f"{protocol}; DM {cfg.method.iterations} iterations, ConvNet-{cfg.network.depth} "
                     f"w{cfg.network.width}, batch_real {cfg.method.batch_real}; coresets on "
                     f"{cfg.coreset.embedding}; wall_s of dm = distillation + evaluation, of coresets = evaluation"),
        "rows": rows,
    }
    print(write(result, Path(args.out)) if args.out else write(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
