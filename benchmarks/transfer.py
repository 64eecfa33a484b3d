"""Transfer: do the shipped settings beat a random subset on data they were never chosen on?

    python benchmarks/transfer_data.py --shared ../shared/data --out /tmp/transfer_data
    python benchmarks/transfer.py --data /tmp/transfer_data --runs /tmp/transfer_runs [--cases medical_ipc1 ...]
                                  [--tune-trials 4]
    python benchmarks/transfer.py --data /tmp/transfer_data --runs RUNS --baselines-only   # random rows only

Each case takes a shipped recipe with its ``cpu`` profile exactly as shipped (no per-set tuning)
and points it at a set from ``transfer_data.py`` (same layout, other content):

* ``medical_ipc1`` / ``medical_ipc10`` — BreastMNIST's PTM settings on AdrenalMNIST3D cut to 2-D;
* ``audio_ipc1`` — FSDD's FD-MFCC trajectory-matching settings on espeak-ng spoken digits;
* ``video_vpc1`` — the action set's static + dynamic (DM) settings on a second motion set
  (interleaved garment groups, noisy canvas, another seed);
* ``vl_pairs100`` — Flickr8k's bi-trajectory settings on a COCO-format set (official
  ``captions_train2017.json`` / ``captions_val2017.json`` layout: val2017 is the test split,
  validation carved from train) built from the same 1,000 Flickr8k images split another way (200 of them are val2017) — the loader changes, the
  recipe's settings do not.

Every case runs twice — validation tracking off, and on (``tracking.every`` = iterations / 8, the
proxy evaluation the recipe's own protocol with one seed, the best-scoring set kept) — and, with
``--tune-trials N``, a third time with the profile ``mmdd tune`` found in N trials (scored on
validation only). Each run evaluates its distilled set and the random subset of the same size
(drawn anew for every evaluation seed from the run's train split) under the recipe's protocol, 3 seeds.

Rows: ``dataset``, ``method`` (``random`` for the subset), ``budget``, ``val_tracking``, ``tuned``,
``mean``, ``std``, ``seeds``, ``distill_runs``. Writes ``benchmarks/results/transfer.{json,md}``.
Run directories under ``--runs`` are reused when complete, so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mmdd  # noqa: E402
from common import RESULTS, baseline_rows, figure, machine  # noqa: E402
from mmdd.core.matchers import MATCHERS  # noqa: E402
from mmdd.run import load_config  # noqa: E402
from mmdd.tune import tracking_overrides  # noqa: E402
from vision_language import default_text_model  # noqa: E402  (the text model the VL benchmark uses)


def cases(data: Path) -> dict[str, dict]:
    """Each case: the recipe, the overrides that point it at the transfer set, and what the set is."""
    motion = data / "motion_set"
    return {
        "medical_ipc1": {"recipe": "medical/breastmnist-ptm-ipc1", "dataset": "adrenal2d (AdrenalMNIST3D middle slices)",
                         "overrides": ["profile=cpu", f"dataset.path={data / 'adrenal2d' / 'adrenal2d.npz'}"]},
        "medical_ipc10": {"recipe": "medical/breastmnist-ptm-ipc10", "dataset": "adrenal2d (AdrenalMNIST3D middle slices)",
                          "overrides": ["profile=cpu", f"dataset.path={data / 'adrenal2d' / 'adrenal2d.npz'}"]},
        "audio_ipc1": {"recipe": "audio/fsdd-mtt-ipc1", "dataset": "espeak-ng digits (6 voices × 20 takes)",
                       "overrides": ["profile=cpu", f"dataset.root={data / 'espeak_digits' / 'recordings'}"]},
        "vl_pairs100": {"recipe": "vision_language/flickr8k-bitm-pairs100",
                        "dataset": "COCO-format captions built from Flickr8k (official train2017/val2017 layout)",
                        "overrides": ["profile=cpu", "dataset.name=coco_captions", f"dataset.root={data / 'coco_flickr'}",
                                      "dataset.csv=null", f"dataset.text.model={default_text_model() or 'models/all-MiniLM-L6-v2'}",
                                      f"dataset.text.cache_dir={data / 'text_cache'}"]},
        "video_vpc1": {"recipe": "video/action_set-s2d-vpc1", "dataset": "second motion set (interleaved groups, noise)",
                       "overrides": ["profile=cpu", f"dataset.root={motion / 'videos'}",
                                     f"dataset.split_dir={motion / 'splits'}"]},
    }


def tracking(recipe: str, overrides: list[str]) -> list[str]:
    """Tracking on with about 8 points a run (the recipe's iterations / 8)."""
    return tracking_overrides(load_config(recipe, overrides), overrides, points=8)


def finished(out: Path) -> bool:
    """A complete run directory whose distilled set and random subset are evaluated."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return False
    m = json.loads(manifest.read_text())
    return m.get("status") == "complete" and {"distilled", "random"} <= set(m.get("evaluation", {}))


def run_case(name: str, case: dict, runs: Path, variant: str, extra: list[str]) -> mmdd.Run:
    """One distillation + evaluation, reused when its run directory is complete and evaluated."""
    out = runs / f"{name}-{variant}"
    if finished(out):
        from mmdd.run import open_run

        return open_run(out)
    overrides = case["overrides"] + extra + ["evaluation.baselines=[random]"]
    cfg = load_config(case["recipe"], overrides)
    if MATCHERS.get(cfg.method.name).needs_experts:
        from mmdd.experts import generate_experts

        generate_experts(case["recipe"], overrides + [f"experts.dir={runs / 'experts' / '{dataset}-{key}'}"],
                         progress=False)
    overrides.append(f"experts.dir={runs / 'experts' / '{dataset}-{key}'}")
    return mmdd.distill(case["recipe"], overrides, output_dir=out, overwrite=True, progress=False)


def tuned_profile(name: str, case: dict, runs: Path, trials: int, tracking: list[str]) -> Path:
    from mmdd.tune import tune

    overrides = case["overrides"] + tracking + [f"experts.dir={runs / 'experts' / '{dataset}-{key}'}"]
    result = tune(case["recipe"], overrides, trials=trials, out=runs / f"{name}-tune", progress=False,
                  log=lambda line: print(f"  [{name} tune] {line}", flush=True))
    return result.profile_file


def scores(res: dict) -> dict:
    """A row's score fields from one evaluation result (a manifest's ``evaluation`` entry, or a row
    of ``common.baseline_rows``): the metric over the seeds, its validation mean, the other metrics."""
    row = {"metric": res["metric"], "mean": res["mean"], "std": res["std"], "seeds": len(res["values"]),
           "values": res["values"]}
    if res.get("val_values"):  # the same networks scored on validation (the split tracking picks on)
        row["val_mean"] = sum(res["val_values"]) / len(res["val_values"])
    if res.get("others"):
        row["others"] = {k: {"mean": v["mean"], "std": v["std"], "values": v["values"]} for k, v in res["others"].items()}
    return row


def rows_of(run: mmdd.Run, dataset: str, val_tracking: bool, tuned: bool) -> list[dict]:
    rows = []
    m = run.manifest
    for set_name, label in (("random", "random"), ("distilled", run.config.method.name)):
        res = m["evaluation"][set_name]
        row = {"dataset": dataset, "method": label, "budget": run.config.budget.ipc, "val_tracking": val_tracking,
               "tuned": tuned, **scores(res),
               "distill_runs": res.get("draws", 1) if set_name == "random" else 1,
               "recipe": m["recipe"]["name"], "profile": m["profile"],
               "wall_s": round(res["wall_s"] + (m["wall_clock_s"]["distillation"] if set_name == "distilled" else 0), 1)}
        if set_name == "distilled" and m.get("tracking"):
            t = m["tracking"]
            row["tracking"] = {"metric": t["metric"], "best_step": t["best_step"], "best_score": t["best_score"],
                               "initial_score": t["initial_score"], "steps": m["steps_completed"]}
        rows.append(row)
    return rows


def remeasured_random(rows: list[dict], case: dict, tracked: list[str]) -> list[dict]:
    """``rows`` with this case's random rows measured again without distilling (a new draw per
    evaluation seed): tracking off with the case's overrides, tracking on and tuned with the
    tracking overrides (what decides the train split the subsets are drawn from; a tuned profile
    changes method settings only)."""
    fresh = {}
    out = []
    recipe = load_config(case["recipe"], case["overrides"]).name
    for row in rows:
        if row["method"] != "random" or (row["dataset"], row["recipe"]) != (case["dataset"], recipe):
            out.append(row)
            continue
        key = bool(row["val_tracking"])
        if key not in fresh:
            overrides = case["overrides"] + (tracked if key else []) + ["evaluation.baselines=[random]"]
            (fresh[key],) = baseline_rows(case["recipe"], overrides, ["random"], row["budget"])
        new = fresh[key]
        kept = {k: v for k, v in row.items() if k not in ("val_mean", "others")}
        out.append({**kept, **scores(new), "distill_runs": new["distill_runs"], "wall_s": new["wall_s"]})
    return out


def markdown(result: dict) -> str:
    lines = [f"## {result['benchmark']}", "", f"- machine: {result['machine']}", f"- protocol: {result['protocol']}", "",
             "| dataset | recipe | method | budget | val tracking | tuned | metric | mean ± std (%) | validation (%) | "
             "other metrics (%) | seeds | distill runs | kept step (validation %) | wall s |",
             "|---|---|---|---:|---|---|---|---|---:|---|---:|---:|---|---:|"]
    for r in result["rows"]:
        kept = ""
        if r.get("tracking"):
            t = r["tracking"]
            kept = (f"{t['best_step']} of {t['steps']} ({t['metric']} {100 * t['best_score']:.1f}; "
                    f"init {100 * t['initial_score']:.1f})")
        val = "" if r.get("val_mean") is None else f"{100 * r['val_mean']:.2f}"
        others = "; ".join(f"{k} {100 * v['mean']:.2f} ± {100 * v['std']:.2f}" for k, v in (r.get("others") or {}).items()
                           if k in ("auc", "mean_recall", "ir@10", "tr@10"))
        tuned = f"{r['tuned']} ({r['tune_trials']} trials)" if r.get("tune_trials") else str(r["tuned"])
        lines.append(f"| {r['dataset']} | {r['recipe']} | {r['method']} | {r['budget']} | {r['val_tracking']} | "
                     f"{tuned} | {r['metric']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {val} | {others} | "
                     f"{r['seeds']} | {r['distill_runs']} | {kept} | {r['wall_s']} |")
    lines += [""] + [f"- {f}" for f in result.get("findings", [])]
    return "\n".join(lines) + "\n"


def findings(rows: list[dict]) -> list[str]:
    out = []
    keys = sorted({(r["dataset"], r["recipe"], r["val_tracking"], r["tuned"]) for r in rows}, key=str)
    for dataset, recipe, tracking, tuned in keys:
        got = {r["method"]: r for r in rows if (r["dataset"], r["recipe"], r["val_tracking"], r["tuned"]) ==
               (dataset, recipe, tracking, tuned)}
        random = got.pop("random", None)
        for method, row in got.items():
            if random is not None:
                diff = 100 * (row["mean"] - random["mean"])
                verdict = "above" if diff > 0 else ("at" if diff == 0 else "BELOW")
                text = (f"{recipe} on {dataset} (tracking {tracking}, tuned {tuned}): {method} − random = "
                        f"{diff:+.2f} {row['metric']} points ({verdict} the random subset)")
                if "auc" in (row.get("others") or {}) and "auc" in (random.get("others") or {}):
                    text += f"; AUC {100 * (row['others']['auc']['mean'] - random['others']['auc']['mean']):+.2f}"
                out.append(text)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the folder transfer_data.py built")
    parser.add_argument("--runs", required=True, help="run directories, experts and tuning studies")
    parser.add_argument("--cases", nargs="+", default=None, help="which cases (default: all)")
    parser.add_argument("--variants", nargs="+", default=["off", "on"], choices=["off", "on", "tuned"])
    parser.add_argument("--tune-trials", type=int, default=4)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--baselines-only", action="store_true",
                        help="re-measure only the random rows of the cases in the results file under --out "
                             "(a new draw per evaluation seed), keeping every other row")
    args = parser.parse_args(argv)
    data, runs = Path(args.data), Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    chosen = cases(data)
    names = args.cases or list(chosen)
    rows: list[dict] = []
    if args.baselines_only:
        previous = json.loads((Path(args.out) / "transfer.json").read_text())
        rows = previous["rows"]
        for name in names:
            case = chosen[name]
            rows = remeasured_random(rows, case, tracking(case["recipe"], case["overrides"]))
            print(f"{name}: random rows re-measured", flush=True)
        names = []
    for name in names:
        case = chosen[name]
        tracked = tracking(case["recipe"], case["overrides"])
        for variant in args.variants:
            started = time.perf_counter()
            if variant == "off":
                run = run_case(name, case, runs, variant, [])
            elif variant == "on":
                run = run_case(name, case, runs, variant, tracked)
            else:
                tuned = case  # a finished tuned run is reused as it is
                if not finished(runs / f"{name}-tuned"):
                    profile = tuned_profile(name, case, runs, args.tune_trials, tracked)
                    tuned = {**case, "overrides": [o for o in case["overrides"] if not o.startswith("profile=")]
                             + [f"profile=cpu+{profile}"]}
                run = run_case(name, tuned, runs, variant, [])
            new_rows = rows_of(run, case["dataset"], variant != "off", variant == "tuned")
            if variant == "tuned":  # how many trials the profile came from (a re-invocation may reuse another's)
                trials = json.loads((runs / f"{name}-tune" / "trials.json").read_text())["trials"]
                for row in new_rows:
                    row["tune_trials"] = len(trials)
                    row["tune_completed"] = sum(t["state"] == "complete" for t in trials)
            rows += new_rows
            print(f"{name} {variant}: {time.perf_counter() - started:.0f} s; " + "; ".join(
                f"{r['method']} {100 * r['mean']:.2f} ± {100 * r['std']:.2f}" for r in rows[-2:]), flush=True)
    out = Path(args.out)
    previous = out / "transfer.json"
    kept = []
    if previous.exists() and not args.baselines_only:  # rows of cases this invocation did not run stay
        done = {(case_row["recipe"], case_row["val_tracking"], case_row["tuned"]) for case_row in rows}
        kept = [r for r in json.loads(previous.read_text())["rows"]
                if (r["recipe"], r["val_tracking"], r["tuned"]) not in done]
    result = {"benchmark": "transfer", "machine": machine(),
              "protocol": "shipped recipe + its cpu profile unchanged, pointed at a set it was not tuned on; "
                          "distilled vs random subsets of the same size (a new draw per evaluation seed), evaluation under the "
                          "recipe's protocol (3 seeds); tracking on: every iterations/8 steps a one-seed proxy "
                          "evaluation (the recipe's protocol) on the validation split keeps the best set (medical "
                          "recipes pick on AUC; where the data has no validation split, 10 % of train is carved, so "
                          "the random subset differs from the tracking-off row's); tuned: mmdd tune's best trial "
                          "(tune_trials per row), scored on validation only",
              "rows": kept + rows}
    result["findings"] = findings(result["rows"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, out)
    text = markdown(result)
    (out / "transfer.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
