"""Audio-visual: AVDD against AV-DM, random and herding pairs and whole data, on the generated
audio-visual digits (FSDD spoken digits paired with scikit-learn handwritten digits, split by speaker).

    python -m mmdd.domains.audio_visual.av_digits --fsdd ../shared/data/audio/fsdd/recordings --out /tmp/av_digits
    python benchmarks/audio_visual.py --data /tmp/av_digits [--ipc 1 10] [--distill-seeds 1] [--runs DIR]
    # on 2 cores: one process per IPC (--ipc 1 --out A, --ipc 10 --whole-at none --out B), then
    python benchmarks/audio_visual.py --combine A/audio_visual.json B/audio_visual.json

For each IPC, from the shipped recipe ``audio_visual/av_digits-avdd-ipc<N>``:

* ``avdd`` — the recipe (its evaluation also gives ``random`` — redrawn per evaluation seed — and
  ``herding``, and at the first IPC ``whole``); ``avdd_audio_only`` / ``avdd_visual_only`` are the
  audio and visual networks of the same evaluation, each alone (no fusion);
* ``av_dm`` — profile ``av_dm`` (the loss without the cross-modal terms, same lr);
* ``herding_mf`` — the set every distillation starts from, not distilled: the herding pairs packed
  by multi-formation (4 half-resolution pairs per stored pair), evaluated as they are
  (``--start-only`` measures just these rows) — what the matching itself adds is the distance
  from this row, not from ``herding``;
* ``av_dm_lr21`` — AV-DM with both synthetic lrs ×21: with equal cross-modal weights λ the AVDD loss
  is exactly (1 + 2λ) = 21 times the AV-DM loss, so this row should equal ``avdd`` up to float
  rounding (a check of that identity, and of what AVDD's gain over ``av_dm`` is made of).

Accuracy (late fusion: mean of the two softmaxes) is mean ± std over distillations × evaluation
seeds; every row's ``others`` holds the audio-only and visual-only accuracies of the same networks.
Writes benchmarks/results/audio_visual.{md,json}.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av  # noqa: E402,F401  (PyAV before decord: clashing libvpx builds)
from common import RESULTS, distill_repeated, machine, row_from, write  # noqa: E402

ORDER = ["random", "herding", "herding_mf", "av_dm", "av_dm_lr21", "avdd", "avdd_audio_only", "avdd_visual_only", "whole"]
MODALITIES = {"avdd_audio_only": "audio_accuracy", "avdd_visual_only": "visual_accuracy"}


def modality_row(row: dict, method: str, metric: str) -> dict:
    """The row of one modality's networks alone (same evaluation, no fusion)."""
    alone = copy.deepcopy(row)
    part = row["others"][metric]
    alone.update(method=method, metric=metric, mean=part["mean"], std=part["std"], values=part["values"])
    alone.pop("others", None)
    alone.pop("per_distillation", None)
    alone["note"] = f"the {metric.split('_')[0]} network of the avdd evaluation alone"
    return alone


def rows_for(data: Path, ipc: int, runs: Path, distill_seeds: int, whole: bool, extra: list[str]) -> list[dict]:
    recipe = f"audio_visual/av_digits-avdd-ipc{ipc}"
    base = [f"dataset.root={data}", *extra]
    baselines = ["random", "herding"] + (["full"] if whole else [])
    avdd = distill_repeated(recipe, [*base, f"evaluation.baselines=[{','.join(baselines)}]"], runs / f"avdd-ipc{ipc}",
                            distill_seeds)
    rows = [row_from(avdd, "random", "random", ipc), row_from(avdd, "herding", "herding", ipc)]
    main = row_from(avdd, "distilled", "avdd", ipc)
    rows.append(main)
    rows += [modality_row(main, method, metric) for method, metric in MODALITIES.items()]
    if whole:
        row = row_from(avdd, "full", "whole", ipc)
        row.update(budget="all", budget_unit="pairs")
        rows.append(row)
    lr = avdd[0].config.method
    dm = distill_repeated(recipe, [*base, "profile=av_dm", "evaluation.baselines=[]"], runs / f"av_dm-ipc{ipc}",
                          distill_seeds)
    rows.append(row_from(dm, "distilled", "av_dm", ipc))
    scale = 1 + lr.icm_weight + lr.cgm_weight
    scaled = distill_repeated(recipe, [*base, "profile=av_dm", "evaluation.baselines=[]",
                                       f"method.lr_audio={lr.lr_audio * scale:g}",
                                       f"method.lr_frames={lr.lr_frames * scale:g}"],
                              runs / f"av_dm_lr21-ipc{ipc}", distill_seeds)
    rows.append(row_from(scaled, "distilled", "av_dm_lr21", ipc,
                         note=f"AV-DM with both synthetic lrs ×{scale:g} (= 1 + λ_icm + λ_cgm)"))
    return rows


def start_row(data: Path, ipc: int, extra: list[str]) -> dict:
    """The ``herding_mf`` row: the synthetic set at its start (herding + multi-formation), evaluated."""
    import time

    from common import pooled_row

    from mmdd.core.seeding import make_generator
    from mmdd.run import evaluate_sets, load_config, setup

    cfg = load_config(f"audio_visual/av_digits-avdd-ipc{ipc}", [f"dataset.root={data}", *extra])
    ws = setup(cfg)
    started = time.perf_counter()
    syn = ws.domain.make_synthetic(ws, make_generator(cfg.seed))  # as mmdd.run starts a run
    result = evaluate_sets(ws, {"start": ws.domain.distilled_set(ws, syn)}, progress=False)["start"]
    return pooled_row([result.as_dict()], "herding_mf", ipc, storage=syn.storage_bytes(), real_bytes=ws.real_bytes(),
                      distill_runs=1, wall_s=time.perf_counter() - started,
                      note="the herding start packed by multi-formation, not distilled")


def findings(rows: list[dict]) -> list[str]:
    lines = []
    for ipc in sorted({r["budget"] for r in rows if isinstance(r["budget"], int)}):
        got = {r["method"]: r for r in rows if r["budget"] == ipc}
        for a, b in (("avdd", "av_dm"), ("av_dm", "random"), ("avdd", "random"), ("avdd", "herding"),
                     ("avdd", "herding_mf"), ("av_dm", "herding_mf"), ("avdd", "av_dm_lr21")):
            if a in got and b in got:
                diff = 100 * (got[a]["mean"] - got[b]["mean"])
                lines.append(f"IPC {ipc}: {a} − {b} = {diff:+.2f} points")
    whole = next((r for r in rows if r["method"] == "whole"), None)
    if whole:
        parts = ", ".join(f"{k.split('_')[0]} alone {100 * v['mean']:.2f}" for k, v in whole["others"].items())
        lines.append(f"whole data: late fusion {100 * whole['mean']:.2f} vs {parts}")
    return lines


def data_text(data: Path, ipc: int) -> str:
    """What the rows were measured on: the generated set and the recipe's analysis sizes."""
    from mmdd.run import load_config

    d = load_config(f"audio_visual/av_digits-avdd-ipc{ipc}", [f"dataset.root={data}"]).dataset
    frames = d.sample_rate // d.hop_length + 1
    return (f"generated audio-visual digits at {data} (av_digits.json: FSDD recordings, one speaker held out for "
            f"test, paired with disjoint scikit-learn digit images; 2500 train / 500 test 1-s clips), read as "
            f"{d.size}×{d.size} frames and log-mel maps 1×{d.n_mels}×{frames} ({d.n_mels} mels, n_fft {d.n_fft}, "
            f"hop {d.hop_length} at {d.sample_rate} Hz)")


def combine(paths: list[Path], out: Path) -> int:
    """Merge the rows of several results files of this benchmark (one per IPC, run in parallel)."""
    import json

    results = [json.loads(p.read_text()) for p in paths]
    result = dict(results[0])
    rows = [row for r in results for row in r["rows"]]
    if sum(r["method"] == "whole" for r in rows) > 1:
        raise SystemExit("more than one file holds the whole-data row; run it in one of them only (--whole-at)")
    result["rows"] = sorted(rows, key=lambda r: (r["budget"] if isinstance(r["budget"], int) else 10**9,
                                                 ORDER.index(r["method"])))
    result["findings"] = findings(result["rows"])
    if result.get("data_root"):
        result["data"] = data_text(Path(result["data_root"]), 1)
    notes = [r["note"] for r in results if r.get("note")]
    if notes:
        result["note"] = "; ".join(dict.fromkeys(notes))
    print(write(result, out))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="the generated audio-visual digits (holds train/ and test/)")
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--whole-at", default="first", choices=["first", "none"],
                        help="evaluate whole data with the first IPC (default) or not at all")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="instead of running: merge results files")
    parser.add_argument("--start-only", action="store_true",
                        help="measure only the herding_mf rows (the start of every distillation, not distilled)")
    parser.add_argument("--distill-seeds", type=int, default=1)
    parser.add_argument("--runs", default=None, help="where to keep run directories (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--note", default="", help="a line about how this run was made (e.g. parallel processes)")
    args = parser.parse_args(argv)
    if args.combine:
        return combine([Path(p) for p in args.combine], Path(args.out) if args.out else RESULTS)
    if not args.data:
        parser.error("--data is required (the generated audio-visual digits)")
    data = Path(args.data).resolve()
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-av-"))
    rows = []
    for i, ipc in enumerate(args.ipc):
        if args.start_only:
            rows.append(start_row(data, ipc, args.set))
            continue
        rows += rows_for(data, ipc, runs, args.distill_seeds, whole=i == 0 and args.whole_at == "first",
                         extra=args.set)
    rows.sort(key=lambda r: (r["budget"] if isinstance(r["budget"], int) else 10**9, ORDER.index(r["method"])))
    protocol = next(r["protocol"] for r in rows if r["method"] in ("avdd", "herding_mf"))
    result = {
        "benchmark": "audio_visual", "profile": "default", "machine": machine(),
        "data": data_text(data, args.ipc[0]),
        "protocol": (f"evaluation: {protocol}. Settings: recipes audio_visual/av_digits-avdd-ipc<N> (av_dm: profile=av_dm); "
                     f"each run's manifest holds the resolved recipe. wall_s = distillation + evaluation" +
                     (f". Overrides: {' '.join(args.set)}" if args.set else "")),
        "data_root": str(data),
        "rows": rows,
        "findings": findings(rows),
    }
    if args.note:
        result["note"] = args.note
    print(write(result, Path(args.out) if args.out else RESULTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
