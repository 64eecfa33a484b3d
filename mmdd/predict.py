"""``mmdd predict RECIPE``: the random-subset curve, before spending compute on distillation.

On medical datasets, how well a random real subset of a budget trains a model is a strong
predictor of how well a distilled set of that budget will do: when random subsets already reach
the whole-data metric at a small budget, distillation has little to add; when they are far
below, it has room. This trains fresh networks (the recipe's evaluation protocol and seeds) on
seeded random subsets of several per-class budgets and on the whole training split, and prints the
curve with each budget's fraction of the whole-data metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from mmdd.core.atomic import atomic_write

DEFAULT_BUDGETS = (1, 2, 5, 10, 20, 50, 100)


def efficacy_curve(recipe, overrides: Sequence[str] = (), budgets: Sequence[int] | None = None,
                   full: bool = True, progress: bool = True) -> dict:
    """Rows of (per-class budget, samples, metric mean/std [, others]) for random subsets (+ whole data)."""
    from mmdd.core.data import DataSplits
    from mmdd.core.errors import ConfigError
    from mmdd.core.evaluation import EvalSet, random_baseline
    from mmdd.run import evaluate_sets, load_config, setup

    cfg = load_config(recipe, overrides)
    ws = setup(cfg)
    if not isinstance(ws.data, DataSplits):
        raise ConfigError(f"mmdd predict draws random subsets per class; the {cfg.domain} domain's data has no "
                          f"classes (its random baseline is in every `mmdd run` table instead)")
    smallest = min(ws.real.counts())
    chosen = sorted({b for b in (budgets or DEFAULT_BUDGETS) if 1 <= b <= smallest})
    if budgets and not chosen:
        raise ConfigError(f"no budget in {list(budgets)} fits the smallest class ({smallest} training samples)")
    train = ws.data.train
    sets = {}
    for ipc in chosen:
        sets[f"random-{ipc}"] = random_baseline(train, ws.data.num_classes, ipc, cfg.seed, cfg.evaluation.seed_list())
    if full:
        sets["whole data"] = EvalSet(train, None, cfg.evaluation.full_epochs)
    results = evaluate_sets(ws, sets, progress=progress)
    whole = results.get("whole data")
    rows = []
    for name, res in results.items():
        row = {"set": name, "ipc": int(name.split("-")[1]) if name.startswith("random-") else None,
               "samples": res.train_size, "metric": res.metric, "mean": res.mean, "std": res.std,
               "others": res.others or {}}
        if whole is not None and whole.mean > 0:
            row["of_whole"] = res.mean / whole.mean
        rows.append(row)
    first = next(iter(results.values()))
    dataset = ws.data.info.get("medmnist") or cfg.dataset.name
    return {"recipe": cfg.name, "dataset": dataset, "recipe_ipc": cfg.budget.ipc, "rows": rows,
            "protocol": first.protocol}


def curve_table(curve: dict) -> str:
    others = sorted({k for r in curve["rows"] for k in r["others"]})
    head = ["set", "samples", curve["rows"][0]["metric"], *others, "of whole data"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in curve["rows"]:
        mark = " ← recipe budget" if r["ipc"] == curve["recipe_ipc"] else ""
        cells = [r["set"] + mark, str(r["samples"]), f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"]
        cells += [f"{100 * r['others'][k]['mean']:.2f} ± {100 * r['others'][k]['std']:.2f}" for k in others]
        cells.append(f"{100 * r['of_whole']:.0f}%" if "of_whole" in r else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_curve(curve: dict, path: str | Path) -> Path:
    text = json.dumps(curve, indent=2) + "\n"
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))
