"""Transfer: do the shipped settings beat a random subset on data they were never chosen on?

    python benchmarks/transfer_data.py --shared ../shared/data --out /tmp/transfer_data
    python benchmarks/transfer.py --data /tmp/transfer_data --runs /tmp/transfer_runs [--cases medical_ipc1 ...]
                                  [--tune-trials 4] [--distill-seeds 2]
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

With ``--distill-seeds N`` every variant distils N times (the recipe's seed, +1, ...; directories
``{case}-{variant}``, ``{case}-{variant}-seed1``, ...) and the distilled row pools N × 3 values
(``per_distillation`` keeps each distillation's mean, ``tracking`` each one's kept step).

Rows: ``dataset``, ``method`` (``random`` for the subset), ``budget``, ``val_tracking``, ``tuned``,
``mean``, ``std``, ``seeds``, ``distill_runs`` (a tuned row also ``tuned_settings``, the profile it
ran). Writes ``benchmarks/results/transfer.{json,md}``.
Run directories under ``--runs`` are read back when finished and resumed from their checkpoint when
interrupted, so an interrupted benchmark continues; a tuned profile under ``--runs`` is reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mmdd  # noqa: E402
from common import RESULTS, baseline_rows, distill_repeated, figure, machine, row_from  # noqa: E402
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


def run_case(name: str, case: dict, runs: Path, variant: str, extra: list[str], distill_seeds: int = 1) -> list[mmdd.Run]:
    """``distill_seeds`` distillations (the recipe's seed, +1, ...) with their evaluations; the first also
    evaluates the random subsets. Run directories ``{name}-{variant}``, ``{name}-{variant}-seed1``, ...:
    a finished, evaluated one is read back and one with a checkpoint resumed, so an interrupted
    benchmark continues."""
    overrides = case["overrides"] + extra + ["evaluation.baselines=[random]",
                                             f"experts.dir={runs / 'experts' / '{dataset}-{key}'}"]
    if MATCHERS.get(load_config(case["recipe"], overrides).method.name).needs_experts:
        from mmdd.experts import generate_experts

        generate_experts(case["recipe"], overrides, progress=False)  # trains only the experts still missing
    return distill_repeated(case["recipe"], overrides, runs / f"{name}-{variant}", distill_seeds, resume=True)


def tuned_profile(name: str, case: dict, runs: Path, trials: int, tracking: list[str]) -> Path:
    from mmdd.tune import tune

    overrides = case["overrides"] + tracking + [f"experts.dir={runs / 'experts' / '{dataset}-{key}'}"]
    result = tune(case["recipe"], overrides, trials=trials, out=runs / f"{name}-tune", progress=False,
                  log=lambda line: print(f"  [{name} tune] {line}", flush=True))
    return result.profile_file


def scores(res: dict) -> dict:
    """A row's score fields from a pooled row of ``common`` (``row_from`` / ``baseline_rows``): the metric
    over its values, its validation mean, the other metrics, and ``seeds``, the evaluation seeds per set."""
    row = {"metric": res["metric"], "mean": res["mean"], "std": res["std"], "seeds": res["seeds"],
           "values": res["values"]}
    if res.get("val_values"):  # the same networks scored on validation (the split tracking picks on)
        row["val_mean"] = sum(res["val_values"]) / len(res["val_values"])
    if res.get("others"):
        row["others"] = {k: {"mean": v["mean"], "std": v["std"], "values": v["values"]} for k, v in res["others"].items()}
    return row


def rows_of(runs: list[mmdd.Run], dataset: str, val_tracking: bool, tuned: bool) -> list[dict]:
    """The random row (the first run's subsets) and the distilled row pooled over ``runs`` (one per
    distillation: ``distill_runs`` N, mean ± std over N × seeds, each distillation's mean and, with
    tracking on, the step it kept in ``per_distillation`` / ``tracking``)."""
    rows = []
    first = runs[0]
    for set_name, label in (("random", "random"), ("distilled", first.config.method.name)):
        pooled = row_from(runs, set_name, label, first.config.budget.ipc)
        row = {"dataset": dataset, "method": label, "budget": first.config.budget.ipc, "val_tracking": val_tracking,
               "tuned": tuned, **scores(pooled), "distill_runs": pooled["distill_runs"],
               "recipe": first.manifest["recipe"]["name"], "profile": first.manifest["profile"],
               "wall_s": pooled["wall_s"]}
        if pooled.get("per_distillation"):
            row["per_distillation"] = pooled["per_distillation"]
        if set_name == "distilled" and first.manifest.get("tracking"):
            row["tracking"] = [kept_step(run.manifest) for run in runs]
        rows.append(row)
    return rows


def kept_step(manifest: dict) -> dict:
    """What validation tracking kept in one run: the step, its proxy score and the initial set's."""
    t = manifest["tracking"]
    return {"metric": t["metric"], "best_step": t["best_step"], "best_score": t["best_score"],
            "initial_score": t["initial_score"], "steps": manifest["steps_completed"]}


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
        kept = "; ".join(f"{t['best_step']} of {t['steps']} ({t['metric']} {100 * t['best_score']:.1f}; "
                         f"init {100 * t['initial_score']:.1f})" for t in r.get("tracking") or [])
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
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (seeds: the recipe's, +1, ...); a row pools N × evaluation seeds")
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
                distilled = run_case(name, case, runs, variant, [], args.distill_seeds)
            elif variant == "on":
                distilled = run_case(name, case, runs, variant, tracked, args.distill_seeds)
            else:
                profile = runs / f"{name}-tune" / f"{load_config(case['recipe'], case['overrides']).name}.tuned.yaml"
                if not profile.exists():  # an earlier invocation's profile is reused (tuning again adds trials)
                    profile = tuned_profile(name, case, runs, args.tune_trials, tracked)
                tuned = {**case, "overrides": [o for o in case["overrides"] if not o.startswith("profile=")]
                         + [f"profile=cpu+{profile}"]}
                distilled = run_case(name, tuned, runs, variant, [], args.distill_seeds)
            new_rows = rows_of(distilled, case["dataset"], variant != "off", variant == "tuned")
            if variant == "tuned":  # how many trials the profile came from (a re-invocation may reuse another's)
                trials = json.loads((runs / f"{name}-tune" / "trials.json").read_text())["trials"]
                settings = yaml.safe_load(profile.read_text())  # the row stays reproducible once --runs is gone
                for row in new_rows:
                    row["tuned_settings"] = settings
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
