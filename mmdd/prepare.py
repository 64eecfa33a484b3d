"""``mmdd prepare RECIPE``: decode a recipe's dataset once, ahead of its runs.

It loads the data exactly as ``mmdd run`` would (same loader, options and storage decision), so
what it builds is what the runs read: the decoded store (``dataset.storage: store``, or ``auto``
on data too large for RAM), or the decode cache of the in-RAM path of the loaders that have one.
On a cluster, run it once before ``torchrun``: every rank then opens the finished, read-only
store, and ranks on one machine share its pages through the page cache.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence


def prepare(recipe: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Load the recipe's dataset as a run would; return what was built or found (``storage``,
    ``folder``, ``bytes``, ``reused`` for a store) with the split sizes and the seconds it took."""
    from mmdd.plugins import get_domain
    from mmdd.run import load_config

    cfg = load_config(recipe, overrides)
    domain = get_domain(cfg.domain)
    started = time.perf_counter()
    data = domain.load_data(cfg.dataset)
    info = dict(getattr(data, "info", {}) or {})
    manifest = domain.data_manifest(data)
    out = {"recipe": cfg.name, "dataset": cfg.dataset.name, "seconds": round(time.perf_counter() - started, 3),
           "train_size": manifest.get("train_size"), "test_size": manifest.get("test_size"),
           "val_size": manifest.get("val_size"),
           "storage": (info.get("store") or {}).get("storage", "memory")}
    out.update({k: v for k, v in (info.get("store") or {}).items() if k != "storage"})
    if info.get("cache"):
        out["cache"] = info["cache"]
    return out


def describe(result: dict) -> str:
    """What ``prepare`` found or built, in a few lines for the terminal."""
    sizes = f"train {result['train_size']}, test {result['test_size']}, val {result['val_size']}"
    if result["storage"] == "store":
        stores = result.get("stores") or [result]  # a domain with derived stores (features) lists them
        state = ("found (built before)" if all(s.get("reused") for s in stores)
                 else f"ready in {result['seconds']:.1f} s")
        folders = "\n".join(f"  {s['folder']}" for s in stores)
        size = sum(s.get("bytes", 0) for s in stores)
        return (f"{result['recipe']}: {result['dataset']} decoded store {state}\n{folders}\n"
                f"  {size / 2**20:,.1f} MiB on disk; {sizes}\n"
                "  runs of this recipe stream their batches from it (read-only: any number of runs or "
                "torchrun ranks can share it)")
    cache = result.get("cache")
    where = f"; decode cache {cache['path']} ({'hit' if cache.get('hit') else 'written'})" if cache else ""
    return (f"{result['recipe']}: {result['dataset']} is held in RAM by its runs ({sizes}){where}; "
            "set dataset.storage=store to decode it once into the on-disk store and stream from there")
