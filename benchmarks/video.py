"""Video: static + dynamic memories against full synthetic videos, static-only, slide-window
selection, random clips and whole data, on the generated action set.

    python -m mmdd.domains.video.action_set --fashion-mnist /usr/share/datasets/fashion-mnist --out /tmp/action_set
    python benchmarks/video.py --data /tmp/action_set [--vpc 1 5] [--runs DIR]

For each VPC, from the shipped recipe ``video/action_set-s2d-vpc<N>``:

* ``static + dynamic (DM)`` — the recipe itself (stage ``static``: DM on frames; stage ``main``:
  DM on clips); its evaluation also gives ``random clips``, ``slide-window`` and ``static-only``
  (the same run's still frames repeated over time, no motion);
* ``static + dynamic (MTT)`` — profile ``mtt`` (the same static stage; stage 2 by trajectory
  matching against ConvNet3D experts, generated first and shared);
* ``DM, full videos`` — profile ``full`` (every frame of every synthetic clip learned by DM),
  which also evaluates ``whole data`` at the largest VPC;
* ``static + dynamic (DM), published form on mmdd's settings`` (``--configs published_form``) —
  the published memories (integrator, pairing, dynamic memory) alone, on the recipe's network, lrs
  and protocol, with the static-only row of its own stills;
* ``static + dynamic (DM), as published`` / ``(MTT), as published`` (``--configs published
  published_mtt``) — profiles ``published`` / ``published_mtt``: the memories as Wang et al. publish
  them (random pairing of 2 stills × 2 dynamic memories per video, noise-initialised full-size
  dynamic memory, one-conv integrator, their ConvNet3D, no augmentation), with their own
  ``…, published protocol`` baselines trained under that network and protocol.

Accuracy is mean ± std over the recipe's evaluation seeds (a fresh ConvNet3D trained on the set,
test split of the generated set). Storage is what each set stores: every frame for clip sets,
the stills for static-only, static + dynamic + integrator for the memories. wall_s is
distillation + evaluation (expert generation and the slide-window teacher in the notes).
Writes benchmarks/results/video.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import av  # noqa: E402,F401  (PyAV before decord: clashing libvpx builds)
from common import RESULTS, baseline_rows, distill_repeated, machine, row_from, write  # noqa: E402

ORDER = ["random clips", "slide-window", "DM, full videos", "static-only", "static + dynamic (DM)",
         "static + dynamic (MTT)", "random clips, published protocol", "slide-window, published protocol",
         "static-only, published protocol", "static + dynamic (DM), as published",
         "static + dynamic (MTT), as published", "static-only, published form",
         "static + dynamic (DM), published form on mmdd's settings", "whole data"]
PUBLISHED = ", published protocol"  # baselines of a published-form run: the authors' network and evaluation
NAMES = {"random": "random clips", "slide_window": "slide-window", "static_only": "static-only", "full": "whole data"}


def clip_bytes(run, count: int) -> int:
    """What ``count`` real clips store in the distillation space (float32 frames + int64 labels)."""
    shape = run.manifest["data"]["input_shape"]
    frames = 4
    for side in shape:
        frames *= side
    return count * (frames + 8)


def rows_of(runs, method: str, vpc: int, note: str = "", baseline_suffix: str = "") -> list[dict]:
    """The rows of one run (or of one recipe's runs under several distillation seeds); each row keeps
    its own ``protocol`` (a published-form run's baselines are named with ``baseline_suffix``)."""
    rows = []
    run = runs[0] if isinstance(runs, list) else runs
    m = run.manifest
    for name, res in m["evaluation"].items():
        label = method if name == "distilled" else NAMES.get(name, name) + baseline_suffix
        row = row_from(runs, name, label, vpc, note=note if name == "distilled" else "")
        if name in ("random", "slide_window"):
            row["storage_bytes"] = clip_bytes(run, res["train_size"])
        elif name == "static_only":
            parts = m["storage_breakdown"]
            row["storage_bytes"] = parts["static"] + parts["labels"]
        elif name == "full":
            row.update(budget="all", budget_unit="clips")
        if name == "slide_window":
            row["note"] = "teacher: the evaluation network, synthetic.teacher_epochs on the real clips (time not in wall_s)"
        row["protocol"] = res["protocol"]
        if name == "distilled" and m.get("storage_full_equivalent_bytes"):
            row["full_video_bytes"] = m["storage_full_equivalent_bytes"]
        rows.append(row)
    return rows


def table(result: dict) -> str:
    lines = [f"## {result['benchmark']} ({result['profile']} profile)", "", f"- machine: {result['machine']}",
             f"- data: {result['data']}", f"- protocol: {result['protocol']}"] + (
                [f"- note: {result['note']}"] if result.get("note") else []) + ["",
             "| method | VPC | accuracy mean ± std (%) | seeds | distill runs | storage MiB | wall s | note |",
             "|---|---|---|---|---|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['budget']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {r['seeds']} | "
                     f"{r.get('distill_runs', '')} | {r['storage_bytes'] / 2**20:.3f} | {r['wall_s']:.0f} | {r.get('note', '')} |")
    if result.get("findings"):
        lines += [""] + [f"- {line}" for line in result["findings"]]
    return "\n".join(lines) + "\n"


def findings(rows: list[dict]) -> list[str]:
    lines = []
    for vpc in sorted({r["budget"] for r in rows if isinstance(r["budget"], int)}):
        got = {r["method"]: r for r in rows if r["budget"] == vpc}
        for method in ("static + dynamic (DM)", "static + dynamic (MTT)", "static + dynamic (DM), as published",
                       "static + dynamic (MTT), as published", "static + dynamic (DM), published form on mmdd's settings"):
            if method not in got:
                continue
            mine = got[method]
            suffix = PUBLISHED if method.endswith("as published") else ""  # compared under its own protocol
            others = [o + suffix for o in ("static-only", "random clips")] + ([] if suffix else ["DM, full videos"])
            if method.endswith("on mmdd's settings"):  # mmdd's protocol; its own stills (2 per video)
                others = ["static-only, published form", "random clips", "DM, full videos", "static + dynamic (DM)"]
            for other in others:
                if other in got:
                    diff = 100 * (mine["mean"] - got[other]["mean"])
                    lines.append(f"VPC {vpc}: {method} − {other} = {diff:+.2f} points "
                                 f"({'beats' if diff > 0 else 'does not beat'} it)")
            if mine.get("full_video_bytes"):
                ratio = mine["full_video_bytes"] / mine["storage_bytes"]
                lines.append(f"VPC {vpc}: {method} stores {mine['storage_bytes'] / 2**20:.3f} MiB vs "
                             f"{mine['full_video_bytes'] / 2**20:.3f} MiB for full synthetic videos of the same count "
                             + (f"(×{ratio:.2f} smaller)" if ratio >= 1 else f"(×{1 / ratio:.2f} larger)"))
    return lines


CONFIG_METHODS = {"dm": "static + dynamic (DM)", "mtt": "static + dynamic (MTT)", "full": "DM, full videos",
                  "published": "static + dynamic (DM), as published",
                  "published_mtt": "static + dynamic (MTT), as published",
                  "published_form": "static + dynamic (DM), published form on mmdd's settings"}
#: how a config's baseline rows are named: the published profiles' are trained under the authors' protocol
BASELINE_SUFFIX = {"published": PUBLISHED, "published_mtt": PUBLISHED, "published_form": ", published form"}
#: the memories' published form alone (integrator, pairing, dynamic memory), on the recipe's network, lrs and protocol
PUBLISHED_FORM = ["synthetic.integrator=conv3d", "synthetic.pairing=random", "synthetic.dynamic_init=noise",
                  "synthetic.dynamic_scale=1", "evaluation.baselines=[static_only]"]


def from_runs(dirs: list[Path], out: Path, note: str = "") -> int:
    from mmdd.run import open_run

    rows, seen_whole, protocol = [], False, ""
    for d in dirs:
        config = d.name.split("-vpc")[0]
        run = open_run(d)
        experts = run.config.experts
        expert_note = (f"experts: {experts.num_experts} × {experts.epochs} epochs (shared; not in wall_s)"
                       if config in ("mtt", "published_mtt") else "")
        for row in rows_of(run, CONFIG_METHODS[config], run.config.budget.ipc, expert_note,
                           BASELINE_SUFFIX.get(config, "")):
            if row["method"] == "whole data":
                if seen_whole:
                    continue
                seen_whole = True
            rows.append(row)
        protocol = run.manifest["evaluation"]["distilled"]["protocol"]
    rows.sort(key=lambda r: (r["budget"] if isinstance(r["budget"], int) else 10**9, ORDER.index(r["method"])))
    data = Path(open_run(dirs[0]).config.dataset.root).parent
    result = describe(rows, data, protocol, note)
    print(write(result, out, text=table(result)))
    return 0


def describe(rows: list[dict], data: Path, protocol: str, note: str = "") -> dict:
    result = {
        "benchmark": "video", "profile": "default", "machine": machine(),
        "data": f"generated action set at {data} (10 classes = 2 Fashion-MNIST groups × 5 motions; see its "
                "manifest.json), clips of 8 frames (stride 2) at 32×32, greyscale",
        "protocol": (f"evaluation: {protocol}. Settings: recipes video/action_set-s2d-vpc<N> (mtt: profile=mtt, "
                     "full videos: profile=full; 'as published' rows and their ', published protocol' baselines: "
                     "profile=published / published_mtt, each row's own protocol field says how it was evaluated); "
                     "each run's manifest holds the resolved recipe. wall_s = distillation + evaluation"),
        "rows": rows,
    }
    if note:
        result["note"] = note
    result["findings"] = findings(rows)
    return result


def combine(paths: list[Path], out: Path) -> int:
    results = [json.loads(p.read_text()) for p in paths]
    result = dict(results[0])
    rows: dict[tuple, dict] = {}  # a later file's row replaces an earlier one of the same method and budget
    for i, res in enumerate(results):
        for row in res["rows"]:
            if i and res.get("note") and res["note"] != result.get("note"):  # how that later run was made
                row["note"] = "; ".join(x for x in (row.get("note"), res["note"]) if x)
            rows[(row["method"], row["budget"])] = row
    result["rows"] = sorted(rows.values(),
                            key=lambda r: (r["budget"] if isinstance(r["budget"], int) else 10**9,
                                           ORDER.index(r["method"])))
    result["findings"] = findings(result["rows"])
    print(write(result, out, text=table(result)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="the generated action set (holds videos/ and splits/)")
    parser.add_argument("--vpc", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--configs", nargs="+", default=["dm", "mtt", "full"], choices=list(CONFIG_METHODS),
                        help="dm, mtt, full (mmdd's memories and full videos); published, published_mtt (the "
                             "published form: profile=published / published_mtt; the DM run evaluates its baselines); "
                             "published_form (the published memories on the recipe's other settings)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="where to keep run directories and experts (default: a temp dir)")
    parser.add_argument("--out", default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    parser.add_argument("--combine", nargs="+", metavar="JSON",
                        help="instead of running: merge the rows of earlier video.json results (e.g. one per VPC, run "
                             "in parallel with --out; or the committed file, then a re-run of some rows: a later "
                             "file's row replaces an earlier one of the same method and budget) into one table")
    parser.add_argument("--note", default="", help="a line about how this run was made (e.g. parallel processes)")
    parser.add_argument("--distill-seeds", type=int, default=1,
                        help="distillations per row (the recipe's seed, +1, ...); its mean ± std is over all of them "
                             "× the evaluation seeds")
    parser.add_argument("--baselines-only", action="store_true",
                        help="re-measure only the random-clips rows (no distillation); the other rows are kept from "
                             "the results file")
    parser.add_argument("--from-runs", nargs="+", metavar="RUN_DIR",
                        help="instead of running: build the table from finished run directories named "
                             "<dm|mtt|full>-vpc<N> (e.g. a --runs folder after an interrupted benchmark)")
    args = parser.parse_args(argv)
    if args.from_runs:
        return from_runs([Path(p) for p in args.from_runs], Path(args.out) if args.out else RESULTS, args.note)
    if args.combine:
        return combine([Path(p) for p in args.combine], Path(args.out) if args.out else RESULTS)
    if not args.data:
        parser.error("--data is required (the generated action set)")
    data = Path(args.data)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="mmdd-video-"))
    base = [f"dataset.root={data / 'videos'}", f"dataset.split_dir={data / 'splits'}",
            f"dataset.cache_dir={runs / 'cache'}", f"experts.dir={runs / 'experts'}", f"device={args.device}"]
    rows, protocol = [], ""
    if args.baselines_only:
        previous = json.loads((Path(args.out or RESULTS) / "video.json").read_text())
        rows = [r for r in previous["rows"] if not (r["method"] == NAMES["random"] and r["budget"] in args.vpc)]
        protocol = previous["protocol"].split("evaluation: ", 1)[-1].split(". Settings:")[0]
        for vpc in sorted(args.vpc):
            for row in baseline_rows(f"video/action_set-s2d-vpc{vpc}", base + args.set, ["random"], vpc):
                rows.append({**row, "method": NAMES["random"]})
    for vpc in ([] if args.baselines_only else sorted(args.vpc)):
        recipe = f"video/action_set-s2d-vpc{vpc}"
        for config in args.configs:
            overrides = list(base)
            note = ""
            method, suffix = CONFIG_METHODS[config], BASELINE_SUFFIX.get(config, "")
            if config == "published_form":
                overrides += PUBLISHED_FORM
            if config in ("mtt", "published_mtt"):  # the DM run of the same form evaluates the baselines
                overrides += [f"profile={config}", "evaluation.baselines=[]"]
                from mmdd.experts import generate_experts

                started = time.perf_counter()
                buffer = generate_experts(recipe, overrides + args.set, progress=False)
                note = (f"experts: {len(buffer.experts)} × {buffer.num_epochs} epochs "
                        f"({time.perf_counter() - started:.0f} s this run; shared; not in wall_s)")
            elif config == "published":
                overrides += ["profile=published"]
            elif config == "full":
                whole = ["full"] if vpc == max(args.vpc) else []
                overrides += ["profile=full", f"evaluation.baselines=[{', '.join(whole)}]"]
            started = time.perf_counter()
            done = distill_repeated(recipe, overrides + args.set, runs / f"{config}-vpc{vpc}", args.distill_seeds)
            rows += rows_of(done, method, vpc, note, suffix)
            protocol = done[0].manifest["evaluation"]["distilled"]["protocol"]
            print(f"{config} vpc {vpc}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows.sort(key=lambda r: (r["budget"] if isinstance(r["budget"], int) else 10**9, ORDER.index(r["method"])))
    result = describe(rows, data, protocol, args.note)
    print(write(result, Path(args.out) if args.out else RESULTS, text=table(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
