"""The learned-lr step (``method.lr_lr``) of the cpu profiles, chosen on the validation split.

    python benchmarks/lr_lr_choice.py --fsdd ../shared/data/audio/fsdd/recordings \\
        --breastmnist ../shared/data/medical/medmnist/breastmnist.npz \\
        --flickr8k ../shared/data/image_text/flickr8k_1k \\
        --adrenalmnist3d ../shared/data/medical/medmnist3d/adrenalmnist3d.npz --runs RUNS [--distill-seeds 1] [--only NAME ...]

``method.lr_lr`` is a step on log(lr). Several cpu profiles kept the papers' raw numbers (a step on
the lr itself, e.g. 1e-5) "as benchmarked", under which the learned lr barely moves; the converted
value is raw ÷ lr_init² (README, MTT). For each case this distils the recipe under both values
(``--distill-seeds`` distillations each) and scores every distilled set on the **validation**
split; the better validation mean is the profile's setting. FSDD has no validation split, so its
choice holds out 10 % of train per class (``dataset.val_fraction=0.1``); MedMNIST uses its official
val split, Flickr8k the recipe's. Test numbers are recorded beside and choose nothing. Writes
``benchmarks/results/lr_lr_choice.{json,md}``, keeping the rows of cases not measured in this invocation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import json  # noqa: E402

from common import RESULTS, distill_repeated, machine, row_from  # noqa: E402
from mmdd.core.evaluation import mean_std  # noqa: E402


def cases(args) -> dict[str, dict]:
    """name → recipe, overrides (data, profile) and the raw lr_lr its cpu profile keeps."""
    out = {}
    if args.fsdd:
        for ipc in (1, 10):
            out[f"fsdd-mtt-ipc{ipc}"] = {"recipe": f"audio/fsdd-mtt-ipc{ipc}", "raw": 1e-5, "ipc": ipc,
                                         "overrides": ["profile=cpu", f"dataset.root={args.fsdd}",
                                                       "dataset.val_fraction=0.1"]}
    if args.breastmnist:
        for ipc, raw in ((1, 1e-7), (10, 1e-5)):
            out[f"breastmnist-ptm-ipc{ipc}"] = {"recipe": f"medical/breastmnist-ptm-ipc{ipc}", "raw": raw, "ipc": ipc,
                                                "overrides": ["profile=cpu", f"dataset.path={args.breastmnist}"]}
    if args.adrenalmnist3d:
        for ipc, raw in ((1, 1e-7), (10, 1e-5)):
            out[f"adrenalmnist3d-ptm-ipc{ipc}"] = {"recipe": f"medical/adrenalmnist3d-ptm-ipc{ipc}", "raw": raw,
                                                   "ipc": ipc, "overrides": ["profile=cpu",
                                                                             f"dataset.path={args.adrenalmnist3d}"]}
    if args.flickr8k:
        from vision_language import default_text_model

        runs = Path(args.runs)
        out["flickr8k-bitm-pairs100"] = {
            "recipe": "vision_language/flickr8k-bitm-pairs100", "raw": 1e-4, "ipc": 100,
            "overrides": ["profile=cpu", f"dataset.root={args.flickr8k}", f"dataset.text.model={default_text_model()}",
                          f"dataset.text.cache_dir={runs / 'text-cache'}"]}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdd", help="FSDD recordings folder")
    parser.add_argument("--breastmnist", help="breastmnist.npz")
    parser.add_argument("--flickr8k", help="Flickr8k folder in the Kaggle layout")
    parser.add_argument("--adrenalmnist3d", help="adrenalmnist3d.npz")
    parser.add_argument("--runs", required=True, help="run directories and experts")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--distill-seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    from mmdd.experts import generate_experts
    from mmdd.run import load_config

    rows = []
    for name, case in cases(args).items():
        if args.only and name not in args.only:
            continue
        base = [*case["overrides"], f"experts.dir={runs / name / 'experts'}", "evaluation.baselines=[]"]
        lr_init = load_config(case["recipe"], base).synthetic.lr_init
        candidates = {"as benchmarked": case["raw"], "converted": case["raw"] / lr_init ** 2}
        generate_experts(case["recipe"], base, progress=False)
        measured = []
        for label, value in candidates.items():
            done = distill_repeated(case["recipe"], [*base, f"method.lr_lr={value:g}"],
                                    runs / name / label.replace(" ", "-"), args.distill_seeds)
            row = row_from(done, "distilled", f"{name} lr_lr {value:g} ({label})", case["ipc"])
            row.update({"case": name, "candidate": label, "lr_lr": value, "lr_init": lr_init,
                        "learned_lrs": [r.manifest["synthetic"].get("learned_lr") for r in done]})
            row["val_mean"], row["val_std"] = mean_std(row["val_values"])
            measured.append(row)
            print(f"{name} {label} lr_lr={value:g}: val {row['val_mean']:.4f} ± {row['val_std']:.4f}, "
                  f"test {row['mean']:.4f}, learned lr {row['learned_lrs']}", flush=True)
        best = max(measured, key=lambda r: r["val_mean"])  # a tie keeps the first: the value the profile has
        for row in measured:
            row["chosen"] = row is best
        rows += measured
    out = Path(args.out or RESULTS)
    previous = out / "lr_lr_choice.json"
    if previous.exists():  # the cases this invocation did not measure stay as they were
        measured_cases = {r["case"] for r in rows}
        rows = [r for r in json.loads(previous.read_text())["rows"] if r["case"] not in measured_cases] + rows
    findings = [f"{r['case']}: {r['candidate']} (lr_lr {r['lr_lr']:g}) "
                + ("kept: a tie on validation, " if any(o["case"] == r["case"] and o is not r
                                                        and o["val_mean"] == r["val_mean"] for o in rows)
                   else "chosen on validation, ")
                + f"{r['val_mean']:.4f} vs " + ", ".join(f"{o['val_mean']:.4f} ({o['candidate']})" for o in rows
                                                      if o["case"] == r["case"] and o is not r)
                for r in rows if r["chosen"]]
    result = {"benchmark": "lr_lr_choice", "profile": "cpu", "machine": machine(),
              "protocol": (f"each candidate distilled {args.distill_seeds}× (distillation seeds 0..), evaluated with the "
                           "recipe's protocol; chosen on the validation mean (test recorded, not used); FSDD: 10 % of "
                           "train per class held out as validation for the choice"),
              "rows": rows, "findings": findings}
    lines = ["## lr_lr_choice (cpu profiles)", "", f"- machine: {result['machine']}", f"- protocol: {result['protocol']}",
             "", "| case | candidate | lr_lr (log step) | validation | test | learned lr | distill runs | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **chosen**" if r["chosen"] else ""
        lrs = ", ".join(f"{v:.4g}" for v in r["learned_lrs"] if v is not None)
        lines.append(f"| {r['case']} | {r['candidate']}{mark} | {r['lr_lr']:g} | {r['val_mean']:.4f} ± {r['val_std']:.4f} | "
                     f"{r['mean']:.4f} ± {r['std']:.4f} | {lrs} (from {r['lr_init']:g}) | {r['distill_runs']} | "
                     f"{r['seeds']} |")
    lines += [""] + [f"- {f}" for f in findings]
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_lr_choice.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "lr_lr_choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("\n".join(findings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
