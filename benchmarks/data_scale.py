"""Data at scale: the decoded store's build time, reuse, and memory that stays flat as the data grows.

For a generated image-folder set and a generated video set at 1×, 4× and 16× size it measures

* ``build``: ``mmdd prepare`` (the store built from the files) with 1 and 2 decoding workers —
  wall seconds and files/s — and a second ``prepare`` of the same recipe (the store is reused);
* ``distill``: ``mmdd run --no-eval`` (DM, a few iterations) streaming from the store: seconds per
  iteration and the peak anonymous resident memory (``RssAnon`` of the process and its children,
  sampled every 50 ms: file-backed pages of the memory-mapped store are not counted);
* ``evaluate``: ``mmdd eval`` of that run (the distilled set and the random baseline trained, the
  test split predicted from the store; images also train the full-data baseline for one epoch);
* on the 1× sets, the same ``distill`` with ``dataset.storage: memory`` (today's in-RAM path).

Every phase runs in its own process, one at a time, with ``OMP_NUM_THREADS=1``. Writes
``benchmarks/results/data_scale.{json,md}``::

    python benchmarks/data_scale.py --work /tmp/data_scale            # generates the data once, ~1 h
    python benchmarks/data_scale.py --work /tmp/data_scale --kinds image --scales 1,4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine  # noqa: E402

CLASSES = 10
IMAGE = {"size": 32, "train_per_class": 160, "test_per_class": 40}  # ×scale images per class
VIDEO = {"size": 112, "frames": 16, "per_class": 46, "test_fraction": 0.2}  # ×scale clips per class (16×: 4.4 GB)


# --------------------------------------------------------------------------------------------
# generated data (the 16× set once; the smaller ones are hard links to a prefix of it)
# --------------------------------------------------------------------------------------------


def class_image(label: int, k: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A class-coloured blob at a random place on a noisy background."""
    y, x = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (size / 6) ** 2))
    hue = np.array([np.sin(label * 0.63), np.sin(label * 0.63 + 2.1), np.sin(label * 0.63 + 4.2)]) * 0.5 + 0.5
    img = 0.3 * rng.random((size, size, 3)) + blob[..., None] * hue[None, None, :] * 0.7
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_images(root: Path, scale: int) -> None:
    from PIL import Image

    for s, (split, per) in enumerate((("train", IMAGE["train_per_class"]), ("test", IMAGE["test_per_class"]))):
        for c in range(CLASSES):
            folder = root / split / f"class{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per * scale):  # each file from its own seed: the same file at every scale
                rng = np.random.default_rng([s, c, k])
                Image.fromarray(class_image(c, k, IMAGE["size"], rng)).save(folder / f"{k:06d}.png")


def write_clip(path: Path, label: int, rng: np.random.Generator) -> None:
    """A bar moving in the class's direction at the class's colour, over a textured background."""
    import av

    size, frames = VIDEO["size"], VIDEO["frames"]
    angle = 2 * np.pi * (label % 5) / 5
    colour = np.array([np.sin(label), np.sin(label + 2.1), np.sin(label + 4.2)]) * 0.5 + 0.5
    y, x = np.mgrid[0:size, 0:size] / size
    background = 0.25 * rng.random((size, size, 3))
    start = rng.uniform(0, 1)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            phase = (start + t / frames * (1 + label // 5)) % 1.0
            d = (x * np.cos(angle) + y * np.sin(angle)) % 1.0
            bar = np.exp(-((d - phase) ** 2) / 0.005)
            img = np.clip(background + bar[..., None] * colour[None, None, :], 0, 1)
            frame = av.VideoFrame.from_ndarray((img * 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_videos(root: Path, scale: int) -> None:
    for c in range(CLASSES):
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(VIDEO["per_class"] * scale):  # each file from its own seed
            write_clip(folder / f"{k:06d}.mp4", c, np.random.default_rng([c, k]))


def linked_subset(full: Path, out: Path, keep_fraction: float) -> None:
    """``out`` mirrors ``full``'s class folders with hard links to the first ``keep_fraction`` of each."""
    for folder in sorted(p for p in full.rglob("*") if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        if not files:
            continue
        target = out / folder.relative_to(full)
        target.mkdir(parents=True, exist_ok=True)
        for f in files[: max(1, round(len(files) * keep_fraction))]:
            if not (target / f.name).exists():
                os.link(f, target / f.name)


def make_data(work: Path, kind: str, scales: list[int]) -> dict[int, Path]:
    top = max(scales)
    full = work / f"{kind}-x{top}"
    done = full / ".complete"
    if not done.exists():
        if full.exists():
            shutil.rmtree(full)
        started = time.perf_counter()
        (write_images if kind == "image" else write_videos)(full, top)
        done.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    roots = {top: full}
    for s in scales:
        if s != top:
            roots[s] = work / f"{kind}-x{s}"
            linked_subset(full, roots[s], s / top)
    return roots


# --------------------------------------------------------------------------------------------
# measuring a phase: one process, its peak anonymous memory
# --------------------------------------------------------------------------------------------


def rss_anon(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """The process's descendants, from the kernel's per-thread child lists (cheap, no /proc scan)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(k) for k in task.read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def tree_anon(pid: int) -> int:
    return rss_anon(pid) + sum(rss_anon(c) for c in children(pid))


def measured(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak anonymous bytes of the process tree, stdout) of one command."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMDD_LOG_EVERY": "600"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0]

    def watch() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_anon(proc.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak[0], out


def recipe(kind: str, root: Path, store_dir: Path, storage: str, workers: int, iterations: int) -> dict:
    if kind == "image":
        dataset = {"name": "image_folder", "root": str(root)}
        method = {"name": "dm", "iterations": iterations, "lr_inputs": 1.0, "batch_real": 128}
        network = {"name": "convnet", "depth": 3, "width": 32}
        evaluation = {"epochs": 20, "seeds": 1, "baselines": ["random", "full"], "full_epochs": 1,
                      "test_batch_size": 256}
        ipc = 10
    else:
        dataset = {"name": "video_folder", "root": str(root), "frames": VIDEO["frames"], "size": VIDEO["size"],
                   "test_fraction": VIDEO["test_fraction"], "cache_dir": None}
        method = {"name": "dm", "iterations": iterations, "lr_inputs": 1.0, "batch_real": 16}
        network = {"name": "convnet", "depth": 2, "width": 8}
        evaluation = {"epochs": 10, "seeds": 1, "baselines": ["random"], "test_batch_size": 16}
        ipc = 1
    dataset.update({"storage": storage, "store_dir": str(store_dir), "num_workers": workers})
    doc = {"name": f"data-scale-{kind}", "domain": kind, "seed": 0, "dataset": dataset, "network": network,
           "budget": {"ipc": ipc}, "method": method, "evaluation": evaluation}
    if kind == "video":
        doc["synthetic"] = {"parameterisation": "full"}
    return doc


PREPARE = ("import json, sys; from mmdd.prepare import prepare; "
           "print(json.dumps(prepare(sys.argv[1])))")


def write_recipe(path: Path, doc: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc))
    return path


def measure_kind(kind: str, roots: dict[int, Path], work: Path, iterations: int, repeats: int) -> list[dict]:
    rows = []
    for scale in sorted(roots):
        base = {"dataset_kind": kind, "scale": scale}
        for workers in (1, 2):
            store_dir = work / f"store-{kind}-x{scale}-w{workers}"
            shutil.rmtree(store_dir, ignore_errors=True)
            path = write_recipe(work / f"{kind}-x{scale}-w{workers}.yaml",
                                recipe(kind, roots[scale], store_dir, "store", workers, iterations))
            wall, peak, out = measured([sys.executable, "-c", PREPARE, str(path)])
            built = json.loads(out.strip().splitlines()[-1])
            files = built["train_size"] + built["test_size"] + (built["val_size"] or 0)
            rows.append({**base, "phase": "build", "workers": workers, "workers_used": built.get("workers"),
                         "wall_s": round(wall, 2),
                         "store_s": built["seconds"], "files": files, "files_per_s": round(files / built["seconds"], 1),
                         "store_bytes": built["bytes"], "peak_anon_bytes": peak, "reused": built["reused"]})
            print(json.dumps(rows[-1]), flush=True)
            if workers == 1:
                shutil.rmtree(store_dir)  # the 2-worker store is the one the runs read
        wall, peak, out = measured([sys.executable, "-c", PREPARE, str(path)])
        again = json.loads(out.strip().splitlines()[-1])
        rows.append({**base, "phase": "build", "workers": 2, "second_run": True, "wall_s": round(wall, 2),
                     "store_s": again["seconds"], "reused": again["reused"], "peak_anon_bytes": peak})
        print(json.dumps(rows[-1]), flush=True)
        # distill: on the smallest set, store and memory alternate `repeats` times (one run's wall-clock
        # varies by up to 20 % here); the row gives the median and every run's seconds per iteration
        order = ["store", "memory"] * repeats if scale == min(roots) else ["store"]
        timings: dict[str, list[dict]] = {}
        for k, storage in enumerate(order):
            doc = recipe(kind, roots[scale], work / f"store-{kind}-x{scale}-w2", storage, 2, iterations)
            path = write_recipe(work / f"{kind}-x{scale}-{storage}.yaml", doc)
            run_dir = work / f"run-{kind}-x{scale}-{storage}-{k}"
            shutil.rmtree(run_dir, ignore_errors=True)
            wall, peak, _ = measured(["mmdd", "run", str(path), "--no-eval", "--quiet", f"output_dir={run_dir}"])
            manifest = json.loads((run_dir / "manifest.json").read_text())
            timings.setdefault(storage, []).append({"s_per_iter": manifest["wall_clock_s"]["distillation"] / iterations,
                                                    "wall_s": wall, "peak": peak, "run_dir": run_dir,
                                                    "train_size": manifest["data"]["train_size"]})
        for storage, runs in timings.items():
            per_iter = sorted(r["s_per_iter"] for r in runs)
            rows.append({**base, "phase": "distill", "storage": storage, "iterations": iterations,
                         "s_per_iter": round(per_iter[len(per_iter) // 2], 3),
                         "s_per_iter_runs": [round(r["s_per_iter"], 3) for r in runs],
                         "wall_s": round(max(r["wall_s"] for r in runs), 2),
                         "peak_anon_bytes": max(r["peak"] for r in runs), "train_size": runs[0]["train_size"]})
            print(json.dumps(rows[-1]), flush=True)
        run_dir = timings["store"][0]["run_dir"]
        wall, peak, _ = measured(["mmdd", "eval", str(run_dir), "--quiet"])
        ev = json.loads((run_dir / "manifest.json").read_text())["evaluation"]
        rows.append({**base, "phase": "evaluate", "storage": "store", "wall_s": round(wall, 2),
                     "peak_anon_bytes": peak, "sets": sorted(ev),
                     "accuracy": {k: round(v["mean"], 4) for k, v in ev.items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(result: dict) -> str:
    mib = 2**20
    settings = "; ".join(f"{k}: {v['iterations']} DM iterations, {v['repeats']} alternating repeats on 1x"
                         for k, v in result.get("settings", {}).items())
    lines = [f"## {result['benchmark']}", "", f"- machine: {result['machine']}", f"- data: {result['data']}",
             f"- protocol: {result['protocol']}", f"- settings: {settings}", "",
             "| data | scale | phase | storage / workers | wall s | s/iter | files/s | store MiB | peak anon MiB | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        how = r.get("storage") or f"{r.get('workers')} worker(s)" + (
            f" ({r['workers_used']} used)" if r.get("workers_used") not in (None, r.get("workers")) else "")
        note = "second run (reused)" if r.get("second_run") else (
            ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["accuracy"].items()) if r.get("accuracy") else "")
        if len(r.get("s_per_iter_runs", [])) > 1:
            note = "median of " + ", ".join(f"{v:.3f}" for v in r["s_per_iter_runs"]) + " s/iter"
        lines.append(f"| {r['dataset_kind']} | {r['scale']}× | {r['phase']} | {how} | {r['wall_s']:.1f} | "
                     f"{r.get('s_per_iter', '')} | {r.get('files_per_s', '')} | "
                     f"{r['store_bytes'] / mib:,.0f} |" if "store_bytes" in r else
                     f"| {r['dataset_kind']} | {r['scale']}× | {r['phase']} | {how} | {r['wall_s']:.1f} | "
                     f"{r.get('s_per_iter', '')} | {r.get('files_per_s', '')} | |")
        lines[-1] += f" {r['peak_anon_bytes'] / mib:,.0f} | {note} |"
    lines += [""] + [f"- {f}" for f in result.get("findings", [])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/mmdd_data_scale", help="where data, stores and runs go (GBs)")
    ap.add_argument("--kinds", default="image,video")
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="alternating store/memory distillations on the 1x set")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    scales = [int(s) for s in args.scales.split(",")]
    kinds = args.kinds.split(",")
    out = Path(args.out)
    kept, settings = [], {}
    if (out / "data_scale.json").is_file():  # the other kind's rows of an earlier run stay
        earlier = json.loads((out / "data_scale.json").read_text())
        kept = [r for r in earlier["rows"] if r["dataset_kind"] not in kinds]
        settings = {k: v for k, v in earlier.get("settings", {}).items() if k not in kinds}
    rows = []
    for kind in kinds:
        rows += measure_kind(kind, make_data(work, kind, scales), work, args.iterations, args.repeats)
        settings[kind] = {"iterations": args.iterations, "repeats": args.repeats, "scales": scales}
    rows = sorted(kept + rows, key=lambda r: r["dataset_kind"] != "image")  # image rows first, in measured order
    result = {
        "benchmark": "data_scale", "profile": "cpu", "machine": machine(),
        "data": (f"generated, {CLASSES} classes: image folders of {IMAGE['size']}² PNGs, "
                 f"{IMAGE['train_per_class']}/{IMAGE['test_per_class']} train/test per class per 1× "
                 f"(16×: {16 * CLASSES * (IMAGE['train_per_class'] + IMAGE['test_per_class']):,} files); "
                 f"video folders of {VIDEO['frames']}-frame {VIDEO['size']}² H.264 clips, {VIDEO['per_class']} "
                 f"per class per 1× ({VIDEO['test_fraction']:g} held out as test; 16×: "
                 f"{16 * CLASSES * VIDEO['per_class']:,} clips); 1× and 4× are hard-linked prefixes of the 16× set"),
        "protocol": ("each phase one process, one at a time, OMP_NUM_THREADS=1; build = mmdd prepare with "
                     "dataset.storage=store; distill = mmdd run --no-eval (DM, iterations per kind in `settings`, "
                     "s/iter = the manifest's distillation wall-clock / iterations; on 1x, store and memory alternate `repeats` "
                     "times each and the median is shown; "
                     "image IPC 10 ConvNet-3 w32 batch_real 128, video IPC 1 ConvNet3D-2 w8 batch_real 16); "
                     "evaluate = mmdd eval (1 seed; image: distilled, random, full 1 epoch, test batches of 256; video: distilled, "
                     "random, test batches of 16 - every 1x test split fills at least one batch, so the working set is "
                     "the same at every scale); "
                     "peak_anon_bytes = max over 50 ms samples of RssAnon summed over the process and its children (a "
                     "worker's RssAnon counts pages it shares copy-on-write with its forkserver); decord decodes "
                     "with its own threads in the calling process and with one thread per worker process"),
        "settings": settings,
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (out / "data_scale.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
