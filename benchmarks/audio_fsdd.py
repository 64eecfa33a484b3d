"""Free Spoken Digit Dataset: DDFAD (trajectory matching on FD-MFCC) against its baselines.

    python benchmarks/audio_fsdd.py --root ../shared/data/audio/fsdd/recordings [--profile cpu]
           [--ipc 1 10] [--configs dm mtt_mfcc mtt_fd_mfcc]

Rows, at each IPC, all from the shipped recipe ``audio/fsdd-mtt-ipc<N>`` with the chosen profile:

* ``random`` — a random real subset of the same size (FD-MFCC maps), evaluated in the DM run;
* ``dm`` — distribution matching on FD-MFCC (profile ``+dm``);
* ``mtt_mfcc`` — trajectory matching on plain MFCC maps (profile ``+mfcc``, its own experts);
* ``mtt_fd_mfcc`` — trajectory matching on FD-MFCC maps (DDFAD);
* ``whole data`` — every training clip (FD-MFCC), evaluated once, in the largest-IPC DM run.

Each row: accuracy mean ± std over every distillation (--distill-seeds) × evaluation seed, storage bytes and compression ratio against
the training split in the same feature space, wall-clock (distillation + evaluation; expert
generation is given in the note, shared across budgets). Rows of configurations not named in
--configs (random and whole data go with dm) are kept from the existing results file of the same
profile, so configurations can be re-measured one at a time. Writes benchmarks/results/audio_fsdd.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, baseline_rows, distill_repeated, kept_rows, machine, row_from, write  # noqa: E402

CONFIGS = {"dm": "dm", "mtt_mfcc": "mfcc", "mtt_fd_mfcc": None}  # name → extra profile
CPU_EXTRA = {("dm", "cpu"): ["method.iterations=500", "method.batch_real=128"]}  # DM's 20,000 iterations are a GPU budget
ORDER = ["random", "dm", "mtt_mfcc", "mtt_fd_mfcc", "whole data"]


def findings(rows: list[dict]) -> list[str]:
    """The issue's targets, stated as measured: FD-MFCC MTT vs the random subset and vs plain MFCC."""
    lines = []
    for ipc in sorted({r["budget"] for r in rows if isinstance(r["budget"], int)}):
        mean = {r["method"]: 100 * r["mean"] for r in rows if r["budget"] == ipc}
        if "mtt_fd_mfcc" in mean and "random" in mean:
            lines.append(f"IPC {ipc}: FD-MFCC MTT − random subset = {mean['mtt_fd_mfcc'] - mean['random']:+.2f} points")
        if "mtt_fd_mfcc" in mean and "mtt_mfcc" in mean:
            lines.append(f"IPC {ipc}: FD-MFCC MTT − plain-MFCC MTT = {mean['mtt_fd_mfcc'] - mean['mtt_mfcc']:+.2f} points")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the FSDD recordings folder ({digit}_{speaker}_{take}.wav)")
    parser.add_argument("--profile", default="cpu", help="recipe profile: cpu (2-core machine) or default (paper)")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="where to keep run directories and experts (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (the recipe's seed, +1, ...); its mean ± std is over all of them "
                             "× the evaluation seeds")
    parser.add_argument("--baselines-only", action="store_true", help="re-measure only the random rows (no distillation)")
    args = parser.parse_args(argv)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-fsdd-"))
    out_dir = Path(args.out) if args.out else RESULTS
    rerun = {"random"} if args.baselines_only else (
        set(args.configs) | ({"random", "whole data"} if "dm" in args.configs else set()))
    rows = kept_rows(out_dir, "audio_fsdd", args.profile, rerun, args.ipc)
    if args.baselines_only:  # the random rows come from the dm configuration's recipe and profile
        profile = args.profile if CONFIGS["dm"] is None else (
            CONFIGS["dm"] if args.profile == "default" else f"{args.profile}+{CONFIGS['dm']}")
        for ipc in sorted(args.ipc):
            overrides = [f"profile={profile}", f"dataset.root={args.root}", f"device={args.device}",
                         *CPU_EXTRA.get(("dm", args.profile), []), *args.set]
            for row in baseline_rows(f"audio/fsdd-mtt-ipc{ipc}", overrides, ["random"], ipc):
                row.update(features="fd_mfcc", hop_length=next((r["hop_length"] for r in rows if "hop_length" in r), None))
                rows.append(row)
    protocol = next((r["protocol"] for r in rows if r["method"] == "random"), "")
    for config in ([] if args.baselines_only else args.configs):
        extra = CONFIGS[config]
        profile = args.profile if extra is None else (extra if args.profile == "default" else f"{args.profile}+{extra}")
        features = "mfcc" if config == "mtt_mfcc" else "fd_mfcc"
        for ipc in sorted(args.ipc):
            recipe = f"audio/fsdd-mtt-ipc{ipc}"
            overrides = [f"profile={profile}", f"dataset.root={args.root}", f"device={args.device}",
                         f"experts.dir={runs / ('experts-' + features)}", *CPU_EXTRA.get((config, args.profile), []),
                         *args.set]
            if config == "dm":
                baselines = ["random", "full"] if ipc == max(args.ipc) else ["random"]
            else:
                baselines = []
            overrides.append(f"evaluation.baselines=[{', '.join(baselines)}]")
            note = ""
            if config.startswith("mtt"):
                from mmdd.experts import generate_experts

                started = time.perf_counter()
                buffer = generate_experts(recipe, overrides, progress=False)
                note = (f"{features} experts: {len(buffer.experts)} × {buffer.num_epochs} epochs "
                        f"({time.perf_counter() - started:.0f} s this run, shared across budgets; not in wall_s)")
            started = time.perf_counter()
            done = distill_repeated(recipe, overrides, runs / f"{config}-ipc{ipc}", args.distill_seeds)
            run = done[0]
            for name in run.manifest["evaluation"]:
                label = {"distilled": config, "full": "whole data"}.get(name, name)
                row = row_from(done, name, label, ipc, note=note if name == "distilled" else "")
                row["features"] = features
                row["hop_length"] = run.manifest["data"]["audio"]["hop_length"]
                if name == "full":
                    row.update(budget="all", budget_unit="clips")
                rows.append(row)
                if name == "random":
                    protocol = row["protocol"]
            print(f"{config} ipc {ipc}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows.sort(key=lambda r: (r["budget"] if r["method"] != "whole data" else 10**9, ORDER.index(r["method"])))
    hop = rows[0].get("hop_length", "?") if rows else "?"
    result = {
        "benchmark": "audio_fsdd", "profile": args.profile, "machine": machine(),
        "data": f"Free Spoken Digit Dataset at {args.root}: 2,700 train / 300 test clips (takes 0–4 test), "
                "8 kHz, 1 s (cropped / zero-padded), 10 digits",
        "protocol": (f"evaluation: {protocol or 'see each row'}. Features: 20 MFCC over 40 mel bands, n_fft 256, "
                     f"hop {hop} (fd_mfcc: MFCC, Δ, ΔΔ as 3 channels; mfcc: 1 channel), standardised per channel on "
                     f"the train split. Settings: recipe audio/fsdd-mtt-ipc<N> with profile={args.profile} (+dm, "
                     f"+mfcc; with cpu, DM runs {' '.join(CPU_EXTRA[('dm', 'cpu')])}); each run's manifest holds the resolved recipe. Compression: train split in the "
                     f"row's feature space ÷ stored tensors. wall_s = distillation + evaluation"),
        "rows": rows,
    }
    result["findings"] = findings(rows)
    print(write(result, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
