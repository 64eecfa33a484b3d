"""Precision: what bfloat16 autocast does to accuracy, in matching and in evaluation.

    python benchmarks/precision.py [--distill-seeds 2] [--recipe quickstart] [--runs DIR] [--out DIR]
    python benchmarks/precision.py --recipe image/fashion_mnist-dm-ipc10 --distill-seeds 1 --keep-other-recipes \
           --set profile=cpu dataset.root=/usr/share/datasets/fashion-mnist method.iterations=100 evaluation.seeds=2

For each distillation seed, the recipe (default ``quickstart``: DM on scikit-learn's digits, IPC 10) is
distilled twice — ``precision=fp32`` and ``precision=bf16`` (the matching iterations' forward passes
under ``torch.autocast`` to bfloat16) — and each distilled set is evaluated twice,
``evaluation.precision=fp32`` and ``bf16``: four rows, each mean ± std over the distillations ×
the recipe's evaluation seeds. The fp32/fp32 row is the reference. Wall-clock is reported, and what it
means depends on the CPU (the machine line names its vector level and bfloat16 instructions): with
AVX512-BF16 or AMX, bf16 rows are faster than fp32; without fast bfloat16 kernels (``core.speed.fast_bf16``)
autocast is emulated and slower. ``benchmarks/speed.py``'s ``bf16`` mode times the hot paths alone.
Writes benchmarks/results/precision.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, machine, row_from, write  # noqa: E402
from mmdd.core.speed import fast_bf16  # noqa: E402

KINDS = ("fp32", "bf16")


class Evaluated:
    """A run's manifest as it was after one evaluation (the run directory's is overwritten by the next)."""

    def __init__(self, manifest: dict):
        self.manifest = manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--distill-seeds", type=int, default=2)
    parser.add_argument("--runs", default=None, help="where to keep run directories (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--note", default="")
    parser.add_argument("--keep-other-recipes", action="store_true",
                        help="keep the rows of other recipes from the results file in --out")
    args = parser.parse_args(argv)

    import copy

    import mmdd
    from mmdd.run import evaluate_run

    runs_dir = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-precision-"))
    evaluated: dict[tuple[str, str], list[Evaluated]] = {}
    first_seed = mmdd.load_config(args.recipe, args.set).seed
    ipc = None
    for i in range(args.distill_seeds):
        for matching in KINDS:
            overrides = [*args.set, "evaluation.baselines=[]", f"precision={matching}", f"seed={first_seed + i}"]
            run = mmdd.distill(args.recipe, overrides, output_dir=runs_dir / f"{matching}-seed{i}", evaluate=False,
                               overwrite=True, progress=False)
            ipc = run.config.budget.ipc
            for evaluation in KINDS:
                run.config.evaluation.precision = evaluation
                done = evaluate_run(run, baselines=[], progress=False)
                evaluated.setdefault((matching, evaluation), []).append(Evaluated(copy.deepcopy(done.manifest)))
                print(f"seed {i} matching {matching} evaluation {evaluation}: "
                      f"{done.manifest['evaluation']['distilled']['mean']:.4f}", file=sys.stderr, flush=True)

    dataset = args.recipe + (f" ({', '.join(args.set)})" if args.set else "")
    rows = [{"dataset": dataset, **row_from(runs, "distilled", f"matching {m}, evaluation {e}", ipc)}
            for (m, e), runs in evaluated.items()]
    reference = next(r for r in rows if r["method"].endswith("matching fp32, evaluation fp32"))
    findings = [f"{dataset}, {r['method']}: {100 * (r['mean'] - reference['mean']):+.2f} points against fp32/fp32"
                for r in rows if r is not reference]
    out = Path(args.out) if args.out else RESULTS
    if args.keep_other_recipes and (out / "precision.json").exists():  # one table for several recipes
        old = json.loads((out / "precision.json").read_text())
        rows = [r for r in old["rows"] if r.get("dataset") != dataset] + rows
        findings = [f for f in old.get("findings", []) if not f.startswith(dataset + ",")] + findings
    result = {"benchmark": "precision", "profile": "cpu", "machine": machine(),
              "data": "the recipes in the dataset column, with the overrides given there",
              "protocol": ("per recipe, `distill runs` distillations at each matching precision (the recipe's seed, "
                           "+1), each distilled set evaluated at both evaluation precisions under the recipe's own "
                           "protocol and seeds; wall_s includes the distillation ("
                           + ("this CPU has fast bfloat16 kernels" if fast_bf16("cpu") else
                              "this CPU has no fast bfloat16 kernels: bf16 is emulated and slower")
                           + "; a CPU's wall-clock says nothing about a GPU)"),
              "rows": rows, "findings": findings, "note": args.note}
    print(write(result, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
