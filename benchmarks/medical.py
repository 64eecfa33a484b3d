"""MedMNIST: progressive trajectory matching (PTM) against MTT, DM, a random subset and whole data.

    python benchmarks/medical.py --breastmnist ../shared/data/medical/medmnist/breastmnist.npz \\
           --adrenalmnist3d ../shared/data/medical/medmnist3d/adrenalmnist3d.npz [--profile cpu] [--ipc 1 10]

For each dataset and IPC, from the shipped recipe ``medical/<dataset>-ptm-ipc<N>``:

* ``ptm`` — the recipe itself (profile ``cpu``), evaluating the ``random`` subset beside it and, at
  the largest IPC, ``whole data``;
* ``mtt`` — profile ``cpu+cpu_mtt``: the same experts, iterations and student steps, segments drawn
  MTT's way (random start ≤ max_start_epoch, expert_epochs long), no overlap mitigation;
* ``dm`` — profile ``cpu+cpu_dm``.

Rows of configurations, datasets or budgets this invocation does not measure are kept from the
existing results file. Each row: accuracy and ROC AUC (MedMNIST's definitions), mean ± std over every
distillation (--distill-seeds) × evaluation seed, test metrics of the model selected on the validation split; wall-clock of distillation +
evaluation (expert generation in the note). Rows carry a ``dataset`` field. Writes
benchmarks/results/medical.{md,json}.

``--from-runs DIR`` rebuilds the table from the run directories ``DIR/<dataset>-<config>-ipc<N>``
of earlier (possibly partial or re-run) invocations with ``--runs DIR``, without training;
``--note`` adds a sentence to the protocol (e.g. which rows were re-run and why).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, baseline_rows, distill_repeated, machine, row_from, write  # noqa: E402

CONFIGS = {"ptm": "", "mtt": "+cpu_mtt", "dm": "+cpu_dm"}  # name → profile suffix (with the cpu profile)
ORDER = ["random", "dm", "mtt", "ptm", "whole data"]


def findings(rows: list[dict]) -> list[str]:
    lines = []
    for dataset in sorted({r["dataset"] for r in rows}):
        for ipc in sorted({r["budget"] for r in rows if r["dataset"] == dataset and isinstance(r["budget"], int)}):
            got = {r["method"]: r for r in rows if r["dataset"] == dataset and r["budget"] == ipc}
            for other in ("mtt", "random"):
                if "ptm" in got and other in got:
                    acc = 100 * (got["ptm"]["mean"] - got[other]["mean"])
                    auc = 100 * (got["ptm"]["others"]["auc"]["mean"] - got[other]["others"]["auc"]["mean"])
                    lines.append(f"{dataset} IPC {ipc}: PTM − {other} = {acc:+.2f} ACC points, {auc:+.2f} AUC points")
    return lines


def run_rows(runs, dataset: str, config: str, ipc: int, note: str = "") -> list[dict]:
    """The table rows of one run directory (or of one recipe's runs under several distillation seeds):
    its distilled set and the baselines it evaluated."""
    rows = []
    first = runs[0] if isinstance(runs, list) else runs
    for name in first.manifest["evaluation"]:
        label = {"distilled": config, "full": "whole data"}.get(name, name)
        row = row_from(runs, name, label, ipc, note=note if name == "distilled" else "")
        row["dataset"] = dataset
        if name == "full":
            row.update(budget="all", budget_unit="images" if dataset == "breastmnist" else "volumes")
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--breastmnist", help="breastmnist.npz (official MedMNIST file)")
    parser.add_argument("--adrenalmnist3d", help="adrenalmnist3d.npz (official MedMNIST file)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="where to keep run directories and experts (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--from-runs", default=None, metavar="DIR",
                        help="collect the rows from the run directories in DIR instead of running")
    parser.add_argument("--note", default="", help="a sentence added to the protocol")
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (the recipe's seed, +1, ...); its mean ± std is over all of them "
                             "× the evaluation seeds")
    parser.add_argument("--keep-whole", action="store_true",
                        help="keep the whole-data rows of the results file instead of evaluating them again")
    parser.add_argument("--baselines-only", action="store_true",
                        help="re-measure only the random rows (no distillation); the other rows are kept from the "
                             "results file")
    args = parser.parse_args(argv)
    datasets = {name: path for name, path in (("breastmnist", args.breastmnist),
                                              ("adrenalmnist3d", args.adrenalmnist3d)) if path}
    if not datasets:
        parser.error("give at least one of --breastmnist, --adrenalmnist3d")
    runs = Path(args.from_runs or args.runs or tempfile.mkdtemp(prefix="mmdd-medical-"))
    rows, protocols, missing = [], {}, []
    previous = Path(args.out or RESULTS) / "medical.json"
    described = {name: f"{name}: {path} (official MedMNIST v2 file, official train/val/test)"
                 for name, path in datasets.items()}
    if previous.exists() and not args.from_runs:  # the kept datasets' data lines stay as they were
        for part in json.loads(previous.read_text()).get("data", "").split("; "):
            name = part.split(":", 1)[0]
            if name and name not in described:
                described[name] = part
    if previous.exists() and not args.from_runs:  # keep the rows this invocation does not measure again
        measured = {"random"} if args.baselines_only else set(args.configs) | (
            {"random"} | (set() if args.keep_whole else {"whole data"}) if "ptm" in args.configs else set())
        rows = [r for r in json.loads(previous.read_text())["rows"]
                if not (r["dataset"] in datasets and r["method"] in measured
                        and (r["budget"] in args.ipc or r["budget"] == "all"))]
    if args.baselines_only:
        for dataset, path in datasets.items():
            for ipc in sorted(args.ipc):
                profile = args.profile + CONFIGS["ptm"] if args.profile == "cpu" else args.profile
                for row in baseline_rows(f"medical/{dataset}-ptm-ipc{ipc}", [f"profile={profile}", f"dataset.path={path}",
                                         f"device={args.device}", *args.set], ["random"], ipc):
                    rows.append({"dataset": dataset, **row})
    for dataset, path in ({} if args.baselines_only else datasets).items():
        for ipc in sorted(args.ipc):
            recipe = f"medical/{dataset}-ptm-ipc{ipc}"
            for config in args.configs:
                if args.from_runs:
                    run_dir = runs / f"{dataset}-{config}-ipc{ipc}"
                    if not (run_dir / "manifest.json").exists():
                        missing.append(run_dir.name)
                        continue
                    from mmdd.run import open_run

                    rows += run_rows(open_run(run_dir), dataset, config, ipc)
                    continue
                profile = args.profile + CONFIGS[config] if args.profile == "cpu" else args.profile
                whole = ipc == max(args.ipc) and not args.keep_whole
                baselines = (["random", "full"] if whole else ["random"]) if config == "ptm" else []
                overrides = [f"profile={profile}", f"dataset.path={path}", f"device={args.device}",
                             f"experts.dir={runs / ('experts-' + dataset)}",
                             f"evaluation.baselines=[{', '.join(baselines)}]", *args.set]
                note = ""
                if config in ("ptm", "mtt"):
                    from mmdd.experts import generate_experts

                    started = time.perf_counter()
                    buffer = generate_experts(recipe, overrides, progress=False)
                    note = (f"experts: {len(buffer.experts)} × {buffer.num_epochs} epochs "
                            f"({time.perf_counter() - started:.0f} s this run; shared; not in wall_s)")
                started = time.perf_counter()
                done = distill_repeated(recipe, overrides, runs / f"{dataset}-{config}-ipc{ipc}", args.distill_seeds)
                rows += run_rows(done, dataset, config, ipc, note)
                print(f"{dataset} {config} ipc {ipc}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for row in rows:  # each dataset's protocol: the random subset's (the baseline's lr), else the first row's
        if row["method"] == "random" or row["dataset"] not in protocols:
            protocols[row["dataset"]] = row["protocol"]
    rows.sort(key=lambda r: (r["dataset"], r["budget"] if isinstance(r["budget"], int) else 10**9,
                             ORDER.index(r["method"])))
    result = {
        "benchmark": "medical", "profile": args.profile, "machine": machine(),
        "data": "; ".join(described[d] for d in sorted({r["dataset"] for r in rows} | set(datasets)) if d in described),
        "protocol": ("evaluation: " + " | ".join(f"{d}: {p}" for d, p in protocols.items())
                     + f". Settings: recipes medical/<dataset>-ptm-ipc<N> with profile={args.profile} (mtt: +cpu_mtt, "
                       "dm: +cpu_dm); each run's manifest holds the resolved recipe. Metrics: accuracy and ROC AUC "
                       "(binary: positive-class score). wall_s = distillation + evaluation"
                     + (f". Rows collected from the run directories in {runs} (--from-runs)" if args.from_runs else "")
                     + (f". Missing runs: {', '.join(missing)}" if missing else "")
                     + (f". {args.note}" if args.note else "")),
        "rows": rows,
    }
    result["findings"] = findings(rows)
    print(write(result, Path(args.out) if args.out else RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
