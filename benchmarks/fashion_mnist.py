"""Fashion-MNIST: coreset baselines and every matcher at IPC 1 and 10.

    python benchmarks/fashion_mnist.py --root /usr/share/datasets/fashion-mnist [--profile cpu]
           [--methods dm dc dsa mtt] [--ipc 1 10] [--distill-seeds N [--extend]] [--baselines-only]

Each (method, budget) is `--distill-seeds` (default 1) `mmdd.distill` runs of the shipped recipe
`image/fashion_mnist-<method>-ipc<N>` with the chosen profile. The DM run also evaluates the
random, herding and k-center subsets of the same budget, under the same protocol and seeds, so
every matcher row has its baselines beside it. MTT first trains (or reuses) the recipe's expert
trajectories; their wall-clock is reported in the MTT row's note. Rows of methods not named in
--methods are kept from the existing results file of the same profile, so methods can be
(re)measured one at a time; `--baselines-only` re-measures the coreset rows without distilling. A
row's mean ± std is over every distillation × evaluation seed (`distill_runs`, `seeds`). Prints a Markdown table and writes benchmarks/results/fashion_mnist.{md,json}.

`--profile paper` runs the papers' settings (width 128, 1,000 outer iterations, the papers' evaluation,
20 evaluation networks per set) for DC and DSA, each run with its own random baseline under its own
protocol. Those rows are added to the results file beside the cpu rows, each marked
``"profile": "paper"`` and carrying ``paper_mean`` / ``paper_std`` (the DC and DSA papers' Fashion-MNIST
numbers). They take hours on a 2-core CPU, so keep `--runs DIR` and pass `--resume`: an interrupted
invocation, run again, continues each run from its checkpoint and reads back finished ones.

`--extend` adds distillations to committed rows instead of measuring them again: a distilled row of
K distillations gets distillations K .. N-1 (`--distill-seeds N`, seeds offset from the recipe's),
pooled with its committed values; its baseline rows are kept as they are. This is how a row whose run
directories are gone (hours of work) grows from one distillation to two.

    python benchmarks/fashion_mnist.py --root /usr/share/datasets/fashion-mnist --profile paper \
           --methods dc --ipc 1 --runs /work/runs/fmnist-paper --resume
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (RESULTS, baseline_rows, distill_repeated, extend_row, fill_compression, kept_rows,  # noqa: E402
                    machine, row_from, write)

METHODS = ("dm", "dc", "dsa", "mtt")
#: the DC (Zhao et al., ICLR 2021) and DSA (Zhao & Bilen, ICML 2021) papers' Fashion-MNIST accuracy, mean and std
PAPER = {("dc", 1): (0.705, 0.006), ("dsa", 1): (0.706, 0.006), ("dc", 10): (0.823, 0.004), ("dsa", 10): (0.846, 0.003)}
ORDER = ["random", "herding", "kcenter", "dm", "dc", "dsa", "mtt"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder with the Fashion-MNIST IDX .gz files")
    parser.add_argument("--profile", default="cpu", help="recipe profile: cpu (2-core machine) or default (paper)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="where to keep run directories and experts (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (the recipe's seed, +1, ...); its mean ± std is over all of them "
                             "× the evaluation seeds")
    parser.add_argument("--extend", action="store_true",
                        help="add distillations to the committed rows of --methods (up to --distill-seeds) instead "
                             "of measuring them again; their baseline rows are kept")
    parser.add_argument("--baselines-only", action="store_true",
                        help="re-measure only the random / herding / kcenter rows (no distillation)")
    parser.add_argument("--resume", action="store_true",
                        help="continue runs left in --runs by an earlier invocation (read back finished ones)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra recipe overrides (e.g. for a smoke test: method.iterations=5)")
    args = parser.parse_args(argv)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-fmnist-"))
    out_dir = Path(args.out) if args.out else RESULTS
    base = [f"profile={args.profile}", f"dataset.root={args.root}", f"device={args.device}", *args.set]

    real_bytes = None  # of the training split, from any run of this invocation
    coresets = {"random", "herding", "kcenter"}
    rerun = coresets if args.baselines_only else set(args.methods) | (
        coresets if "dm" in args.methods and not args.extend else set())
    if args.extend and args.baselines_only:
        parser.error("--extend adds distillations; --baselines-only distils nothing")
    paper = args.profile == "paper"
    if paper:
        if args.baselines_only or set(args.methods) - {"dc", "dsa"}:
            parser.error("--profile paper measures DC and DSA (--methods dc dsa), each with its random baseline")
        kept_paper_rows(out_dir, set(args.methods), args.ipc)  # refuses a missing results file before hours of work
        rows = []  # the file's other rows are read again when this invocation writes (runs take hours)
    else:
        rows = kept_rows(out_dir, "fashion_mnist", args.profile, rerun, args.ipc)
    committed = {(r["method"], r["budget"]): r for r in committed_rows(out_dir, args.profile)} if args.extend else {}
    if args.extend:  # refuse a missing row before hours of work
        missing = [f"{m} IPC {i}" for m in args.methods for i in args.ipc if (m, i) not in committed]
        if missing:
            raise SystemExit(f"--extend: {out_dir / 'fashion_mnist.json'} has no {args.profile}-profile row of "
                             f"{', '.join(missing)} to add distillations to")
    if args.baselines_only:
        for ipc in args.ipc:
            rows += baseline_rows(f"image/fashion_mnist-dm-ipc{ipc}", base, sorted(coresets), ipc)

    for method in ([] if args.baselines_only else args.methods):
        for ipc in args.ipc:
            recipe = f"image/fashion_mnist-{method}-ipc{ipc}"
            overrides = [*base, f"experts.dir={runs / 'experts'}"]
            if method != "dm" and not paper:
                overrides.append("evaluation.baselines=[]")  # the DM run evaluates the baselines
            expert_s, note = 0.0, ""
            if method == "mtt":
                from mmdd.experts import generate_experts

                started = time.perf_counter()
                buffer = generate_experts(recipe, overrides, progress=False)
                expert_s = time.perf_counter() - started
                note = (f"experts: {len(buffer.experts)} × {buffer.num_epochs} epochs "
                        f"({expert_s:.0f} s this run, shared across budgets; not in wall_s)")
            started = time.perf_counter()
            if args.extend:
                rows.append(extended(committed[method, ipc], recipe, overrides, runs / f"{method}-ipc{ipc}",
                                     args.distill_seeds, args.resume, note, paper))
                print(f"{method} ipc {ipc}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
                continue
            done = distill_repeated(recipe, overrides, runs / f"{method}-ipc{ipc}", args.distill_seeds,
                                    resume=args.resume)
            real_bytes = done[0].manifest["real_bytes"]
            for name in done[0].manifest["evaluation"]:
                label = method if name == "distilled" else name
                row = row_from(done, name, label, ipc, note=note if name == "distilled" else "")
                if paper:
                    row = paper_row(row, method, ipc, name == "distilled")
                rows.append(row)
            print(f"{method} ipc {ipc}: {time.perf_counter() - started:.0f} s", file=sys.stderr)

    if real_bytes is not None:
        fill_compression(rows, real_bytes)
    rows.sort(key=row_order)
    protocol = next((r["protocol"] for r in rows if r["method"] == "random" and "protocol" in r),
                    next((r["protocol"] for r in rows if "protocol" in r), ""))
    if paper:  # the file stays the cpu profile's, with the paper rows added
        result = json.loads((out_dir / "fashion_mnist.json").read_text())
        result["rows"] = sorted(kept_paper_rows(out_dir, set(args.methods), args.ipc, keep_baselines=args.extend) + rows,
                                key=row_order)
        print(write(result, out_dir))
        return 0
    result = {
        "benchmark": "fashion_mnist", "profile": args.profile, "machine": machine(),
        "data": f"Fashion-MNIST IDX files at {args.root} (60,000 train / 10,000 test, 10 classes)",
        "protocol": (f"evaluation: {protocol}. Distillation settings: the recipes image/fashion_mnist-<method>-ipc<N> "
                     f"with profile={args.profile} (each run's manifest holds the resolved recipe). Coresets select on "
                     f"pixels. MTT rows train with the learned lr (each row's protocol is in the JSON). wall_s of a "
                     f"matcher = distillation + its evaluation; of a coreset = its evaluation"),
        "rows": rows,
    }
    print(write(result, out_dir))
    return 0


def row_order(row: dict) -> tuple:
    """Rows by budget, then method (coresets, then matchers; a baseline of another protocol last), a paper
    row after the cpu row of its method."""
    return row["budget"], ORDER.index(row["method"]) if row["method"] in ORDER else 99, row.get("profile") == "paper"


def paper_row(row: dict, method: str, ipc: int, distilled: bool) -> dict:
    """A paper-profile row: marked, its baseline named after the protocol it ran under, the paper's number
    beside a distilled row."""
    row = {**row, "profile": "paper", "machine": machine()}  # the file's machine is the cpu rows'
    notes = ["paper profile"]
    if not distilled:
        row["method"] = f"{row['method']} ({method} protocol)"
    elif (method, ipc) in PAPER:
        row["paper_mean"], row["paper_std"] = PAPER[(method, ipc)]
        notes.append(f"the paper: {100 * row['paper_mean']:.1f} ± {100 * row['paper_std']:.1f}")
    row["note"] = "; ".join(notes + ([row["note"]] if row.get("note") else []))
    return row


def extended(old: dict, recipe: str, overrides: list[str], output_dir: Path, distill_seeds: int, resume: bool,
             note: str, paper: bool) -> dict:
    """The committed distilled row ``old`` with distillations ``old["distill_runs"]`` .. ``distill_seeds`` - 1
    added (``--extend``); ``old`` itself when it already has that many."""
    start = old["distill_runs"]
    if start >= distill_seeds:
        print(f"{old['method']} IPC {old['budget']}: already {start} distillations", file=sys.stderr)
        return old
    done = distill_repeated(recipe, overrides, output_dir, distill_seeds, start=start, resume=resume)
    new = row_from(done, "distilled", old["method"], old["budget"], note=note)
    if paper:
        new = paper_row(new, old["method"], old["budget"], True)
    return extend_row(old, new, first_seed=done[0].config.seed - start)


def committed_rows(out_dir: Path, profile: str) -> list[dict]:
    """The distilled rows of ``profile`` in the results file (``--extend`` adds distillations to them)."""
    path = out_dir / "fashion_mnist.json"
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    return [r for r in result["rows"] if r["method"] in METHODS
            and (r.get("profile") == "paper" if profile == "paper" else result["profile"] == profile and "profile" not in r)]


def kept_paper_rows(out_dir: Path, methods: set[str], budgets: list[int], keep_baselines: bool = False) -> list[dict]:
    """Every row of the results file except the paper rows this invocation measures again (with
    ``keep_baselines``, their random baselines are kept: ``--extend`` distils again, it evaluates no baseline)."""
    path = out_dir / "fashion_mnist.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the paper rows are added to the cpu profile's results file")
    old = json.loads(path.read_text())["rows"]

    def remeasured(r: dict) -> bool:
        baseline = " protocol)" in r["method"]
        if baseline and keep_baselines:
            return False
        method = r["method"].split(" (")[-1].split(" protocol")[0] if baseline else r["method"]
        return r.get("profile") == "paper" and method in methods and r["budget"] in budgets

    return [r for r in old if not remeasured(r)]


if __name__ == "__main__":
    sys.exit(main())
