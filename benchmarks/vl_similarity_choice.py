"""The Flickr8k similarity-mining settings, chosen on the validation split.

    python benchmarks/vl_similarity_choice.py ../shared/data/image_text/flickr8k_1k --runs RUNS [--distill-seeds 2]

Distils ``vision_language/flickr8k-bitm-pairs100`` with ``profile=cpu+lors`` under each candidate
(symmetric or asymmetric low-rank S; the S learning rate ``lr_sim``), each under ``--distill-seeds``
distillation seeds, and scores every distilled set on the **validation** split (mean recall over the
evaluation seeds). The candidate with the best validation mean is the recipe's setting; test numbers
are recorded beside it but choose nothing. Writes ``benchmarks/results/vl_similarity_choice.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, distill_repeated, machine, row_from  # noqa: E402
from mmdd.core.evaluation import mean_std  # noqa: E402
from vision_language import RECIPE, default_text_model  # noqa: E402

#: name → overrides on top of profile=cpu+lors
CANDIDATES = {
    "symmetric S, lr_sim 1": ["method.sim_symmetric=true", "method.lr_sim=1.0"],
    "asymmetric S, lr_sim 1": ["method.sim_symmetric=false", "method.lr_sim=1.0"],
    "symmetric S, lr_sim 0.3": ["method.sim_symmetric=true", "method.lr_sim=0.3"],
    "symmetric S, lr_sim 10": ["method.sim_symmetric=true", "method.lr_sim=10.0"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="Flickr8k folder in the Kaggle layout (captions.txt + images/)")
    parser.add_argument("--text-model", default=default_text_model())
    parser.add_argument("--runs", required=True, help="run directories, experts and the text cache")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--distill-seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    base = ["profile=cpu+lors", f"dataset.root={args.data}", f"dataset.text.model={args.text_model}",
            f"dataset.text.cache_dir={runs / 'text-cache'}", f"experts.dir={runs / 'experts'}",
            "evaluation.baselines=[]", *args.set]
    from mmdd.experts import generate_experts

    generate_experts(RECIPE, base, progress=False)
    rows = []
    for name in args.only:
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        done = distill_repeated(RECIPE, [*base, *CANDIDATES[name]], runs / slug, args.distill_seeds)
        row = row_from(done, "distilled", name, 100)
        row["val_mean"], row["val_std"] = mean_std(row["val_values"])
        row["overrides"] = CANDIDATES[name]
        rows.append(row)
        print(f"{name}: validation {100 * row['val_mean']:.2f}, test {100 * row['mean']:.2f}", flush=True)
    best = max(rows, key=lambda r: r["val_mean"])
    result = {"benchmark": "vl_similarity_choice", "profile": "cpu+lors", "machine": machine(),
              "data": f"{args.data}; the recipe's seeded split by image (validation 10 %, test 10 %)",
              "protocol": (f"each candidate: {args.distill_seeds} distillations × the recipe's evaluation seeds; chosen "
                           f"on validation mean recall; test recorded, not used. Evaluation: {rows[0]['protocol']}"),
              "chosen": best["method"], "rows": rows}
    lines = [f"## vl_similarity_choice ({result['profile']})", "", f"- machine: {result['machine']}",
             f"- data: {result['data']}", f"- protocol: {result['protocol']}", "",
             "| candidate | validation mean recall (%) | test mean recall (%) | distill runs | seeds |",
             "|---|---|---|---|---|"]
    for r in rows:
        mark = " **chosen**" if r is best else ""
        lines.append(f"| {r['method']}{mark} | {100 * r['val_mean']:.2f} ± {100 * r['val_std']:.2f} | {100 * r['mean']:.2f} ± "
                     f"{100 * r['std']:.2f} | {r['distill_runs']} | {r['seeds']} |")
    out = Path(args.out or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    import json

    (out / "vl_similarity_choice.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "vl_similarity_choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
