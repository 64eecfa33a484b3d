"""Reading stored minibatches ahead: evaluation with ``dataset.loader_workers`` 0 and 1 on one machine.

On the generated sets of ``data_scale.py`` (decoded store, built once per set) it runs the same
recipe — a one-iteration DM distillation, then evaluation: the distilled set, the full-data
baseline for one epoch and the test split predicted, all training and test batches of the real
data read from the store — with the batches read in the training process (``loader_workers: 0``,
the CPU default) and by one DataLoader worker (``1``), alternating ``repeats`` times. A row gives
the median of the manifests' evaluation seconds and the peak anonymous memory of the process and
its workers. The results must be the same either way (the test suite checks it bit for bit); the
benchmark asserts the evaluation scores agree.

Writes ``benchmarks/results/read_ahead.{json,md}``::

    python benchmarks/read_ahead.py --work /tmp/mmdd_data_scale --repeats 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402
from data_scale import PREPARE, make_data, measured, recipe, write_recipe  # noqa: E402

SETS = {"image": 16, "video": 4}  # kind -> scale (image 16x: 25,600 train images; video 4x: 1,472 train clips)


def evaluation_recipe(kind: str, root: Path, store_dir: Path) -> dict:
    doc = recipe(kind, root, store_dir, "store", 2, iterations=1)
    doc["evaluation"].update({"baselines": ["full"], "full_epochs": 1})
    return doc


def measure(kind: str, scale: int, work: Path, repeats: int) -> list[dict]:
    root = make_data(work, kind, [scale])[scale]
    store_dir = work / f"store-{kind}-x{scale}-w2"
    path = write_recipe(work / f"{kind}-x{scale}-read-ahead.yaml", evaluation_recipe(kind, root, store_dir))
    measured([sys.executable, "-c", PREPARE, str(path)])  # built once (or found) before anything is timed
    runs: dict[int, list[dict]] = {}
    for k, workers in enumerate([0, 1] * repeats):
        run_dir = work / f"run-{kind}-x{scale}-read-ahead-{k}"
        shutil.rmtree(run_dir, ignore_errors=True)
        wall, peak, _ = measured(["mmdd", "run", str(path), "--quiet", f"output_dir={run_dir}",
                                  f"dataset.loader_workers={workers}"])
        manifest = json.loads((run_dir / "manifest.json").read_text())
        runs.setdefault(workers, []).append({"eval_s": manifest["wall_clock_s"]["evaluation"], "peak": peak,
                                             "scores": {n: r["values"] for n, r in manifest["evaluation"].items()},
                                             "train_size": manifest["data"]["train_size"]})
        print(json.dumps({"kind": kind, "workers": workers, **runs[workers][-1]}), flush=True)
        shutil.rmtree(run_dir)
    scores = {w: [r["scores"] for r in rs] for w, rs in runs.items()}
    if any(s != scores[0][0] for ss in scores.values() for s in ss):
        raise AssertionError(f"{kind}: evaluation scores differ between reading inline and ahead: {scores}")
    rows = []
    for workers, rs in runs.items():
        rows.append({"dataset_kind": kind, "scale": scale, "phase": "evaluate", "loader_workers": workers,
                     "train_size": rs[0]["train_size"], "eval_s": round(statistics.median(r["eval_s"] for r in rs), 3),
                     "eval_s_runs": [r["eval_s"] for r in rs], "peak_anon_bytes": max(r["peak"] for r in rs),
                     "scores": rs[0]["scores"]})
    base = rows[0]["eval_s"]
    for row in rows:
        row["speedup_over_inline"] = round(base / row["eval_s"], 3)
    return rows


def markdown(result: dict) -> str:
    lines = [f"## {result['benchmark']}", "", f"- machine: {result['machine']}", f"- data: {result['data']}",
             f"- protocol: {result['protocol']}", "",
             "| data | scale | train rows | loader workers | evaluation s (median) | runs | speed-up | peak anon MiB (process + workers) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['dataset_kind']} | {r['scale']}× | {r['train_size']:,} | {r['loader_workers']} | "
                     f"{r['eval_s']:.1f} | {', '.join(f'{v:.1f}' for v in r['eval_s_runs'])} | "
                     f"{r['speedup_over_inline']:.2f}× | {r['peak_anon_bytes'] / 2**20:,.0f} |")
    lines += [""] + [f"- {f}" for f in result.get("findings", [])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/mmdd_data_scale", help="data_scale.py's folder (data, stores, runs)")
    ap.add_argument("--kinds", default="image,video")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.kinds.split(","):
        rows += measure(kind, SETS[kind], work, args.repeats)
    result = {
        "benchmark": "read_ahead", "profile": "cpu", "machine": machine(),
        "data": "data_scale.py's generated sets: " + ", ".join(f"{k} {s}x" for k, s in SETS.items()),
        "protocol": ("each run one process, one at a time, OMP_NUM_THREADS=1 in the training process, one thread per "
                     "loader worker; recipe = data_scale's (image: ConvNet-3 w32, IPC 10; video: ConvNet3D-2 w8, "
                     "VPC 1) with 1 DM iteration, evaluation of the distilled set and the full-data baseline "
                     "(1 epoch), 1 seed; evaluation s = the manifest's wall_clock_s.evaluation; workers 0 and 1 "
                     f"alternate, {args.repeats} runs each; scores checked equal"),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "read_ahead.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (out / "read_ahead.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
