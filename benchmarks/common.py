"""Shared helpers for benchmark scripts: machine description and the results files (DESIGN §8)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from mmdd.core.evaluation import mean_std
from mmdd.core.speed import cpu_vector_features, cpuinfo_field

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = cpuinfo_field("model name") or platform.processor() or platform.machine()
    where = f"{os.cpu_count()}-core CPU ({cpu}; {cpu_vector_features()})"
    if torch.cuda.is_available():
        where = f"{torch.cuda.get_device_name(0)} + {where}"
    return f"{where}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def pooled_row(results: list[dict], method: str, budget, *, storage: int | None, real_bytes: int | None,
               distill_runs: int, wall_s: float, note: str = "") -> dict:
    """One result row from evaluation results (``SetResult.as_dict()`` / a manifest's ``evaluation``
    entries) of the same set under one or more distillations: ``values`` are all of them (N × M), the
    mean ± std is over all of them (population std, as the evaluation reports), ``seeds`` is M."""
    res = results[0]
    pooled = pooled_scores(results)
    row = {"method": method, "budget": budget, "budget_unit": "ipc", "metric": res["metric"], "mean": pooled["mean"],
           "std": pooled["std"], "seeds": len(res["values"]), "distill_runs": distill_runs, "values": pooled["values"],
           "wall_s": round(wall_s, 1), "protocol": res["protocol"]}
    if storage:
        row["storage_bytes"] = storage
        if real_bytes:
            row["compression"] = round(real_bytes / storage, 1)
    row.update({k: pooled[k] for k in ("val_values", "others") if k in pooled})
    if note:
        row["note"] = note
    return row


def pooled_scores(results: list[dict]) -> dict:
    """``values`` of every result in turn, their mean and (population) std, and where the results have
    them, the pooled ``val_values`` and ``others`` (each other metric's values, mean and std)."""
    values = [v for r in results for v in r["values"]]
    mean, std = mean_std(values)
    pooled = {"values": values, "mean": mean, "std": std}
    val = [v for r in results for v in r.get("val_values") or []]
    if val:
        pooled["val_values"] = val
    if results[0].get("others"):
        pooled["others"] = {}
        for k in results[0]["others"]:
            vals = [v for r in results for v in r["others"][k]["values"]]
            mu, sd = mean_std(vals)
            pooled["others"][k] = {"mean": mu, "std": sd, "values": vals}
    return pooled


def distillation_entry(seed: int, result: dict) -> dict:
    """One distillation in a row's ``per_distillation``: its seed, mean, std and other metrics' means."""
    return {"seed": seed, "mean": result["mean"], "std": result["std"],
            **({"others": {k: v["mean"] for k, v in result["others"].items()}} if result.get("others") else {})}


def row_from(runs, name: str, method: str, ipc: int, extra_wall: float = 0.0, note: str = "") -> dict:
    """One result row from evaluation ``name`` (distilled, random, full, ...) of finished runs.

    ``runs``: one run, or the runs of one recipe under several distillation seeds
    (:func:`distill_repeated`). The distilled row pools them (``distill_runs`` N, and
    ``per_distillation``: each distillation's seed, mean and other metrics' means). A baseline row
    pools the runs that evaluated it: the first only for one that does not depend on the distillation (random, a coreset,
    the whole split), every run for one built from the distilled set (``core.evaluation.SYNTHETIC_BASELINES``,
    e.g. video's ``static_only``). Its ``distill_runs`` is the number of
    distinct sets behind it: one per evaluation seed for a redrawn random subset, 1 for a coreset or
    the whole split, one per distillation for a derived baseline."""
    runs = runs if isinstance(runs, (list, tuple)) else [runs]
    pooled = runs if name == "distilled" else [r for r in runs if name in r.manifest["evaluation"]]
    if not pooled:
        raise KeyError(f"no run evaluated {name!r} (evaluations: {sorted(runs[0].manifest['evaluation'])})")
    m = pooled[0].manifest
    results = [r.manifest["evaluation"][name] for r in pooled]
    wall = sum(r["wall_s"] for r in results) + (
        sum(run.manifest["wall_clock_s"]["distillation"] for run in pooled) + extra_wall if name == "distilled" else 0.0)
    row = pooled_row(results, method, ipc, storage=m["storage_bytes"] if name != "full" else m["real_bytes"],
                     real_bytes=m["real_bytes"], wall_s=wall, note=note,
                     distill_runs=len(pooled) if name == "distilled" else sum(r.get("draws", 1) for r in results))
    if len(pooled) > 1:
        row["per_distillation"] = [distillation_entry(run.manifest["seeds"]["distillation"][0], r)
                                   for run, r in zip(pooled, results)]
    return row


def distill_repeated(recipe, overrides: list[str], output_dir: Path, distill_seeds: int = 1, start: int = 0,
                     **kwargs) -> list:
    """``mmdd.distill`` of one recipe under ``distill_seeds`` distillation seeds (the recipe's seed, +1,
    ...); the first run evaluates the recipe's baselines, the others the distilled set and the
    baselines built from it (``core.evaluation.SYNTHETIC_BASELINES``, e.g. video's ``static_only``). Run
    directories: ``output_dir``, ``output_dir-seed1``, ...; with ``resume=True`` a directory that holds a
    checkpoint is resumed, and a finished, evaluated one is read back, instead of started over.

    ``start`` K > 0 runs only distillations K .. ``distill_seeds`` - 1 (seeds offset from the recipe's
    own), to add distillations to a committed row whose first K runs are gone (:func:`extend_row`)."""
    import mmdd

    from mmdd.core import rundir

    resume = kwargs.pop("resume", False)
    kwargs = {"overwrite": True, "progress": False, **kwargs}

    def one(extra: list[str], out: Path):
        if resume and (out / rundir.MANIFEST).exists():
            done = rundir.read_json(out / rundir.MANIFEST)
            if done.get("status") == "complete" and done.get("evaluation"):  # finished and evaluated: read it
                from mmdd.run import open_run

                return open_run(out)
        if resume and (out / rundir.CHECKPOINT).exists():  # continue a run an earlier invocation left
            return mmdd.distill(recipe, extra, output_dir=out, **{**kwargs, "overwrite": False, "resume": True})
        return mmdd.distill(recipe, extra, output_dir=out, **kwargs)

    from mmdd.core.evaluation import SYNTHETIC_BASELINES

    if not 0 <= start < distill_seeds:
        raise ValueError(f"start {start} must lie in [0, distill_seeds={distill_seeds})")
    if start == 0:
        first = one(list(overrides), Path(output_dir))
        runs, config = [first], first.config
    else:
        from mmdd.run import load_config

        runs, config = [], load_config(recipe, list(overrides))
    own = [b for b in config.evaluation.baselines if b in SYNTHETIC_BASELINES]
    for i in range(max(start, 1), distill_seeds):
        more = [*overrides, f"seed={config.seed + i}", f"evaluation.baselines=[{', '.join(own)}]"]
        runs.append(one(more, Path(f"{output_dir}-seed{i}")))
    return runs


def extend_row(old: dict, new: dict, first_seed: int) -> dict:
    """A committed distilled row ``old`` (its runs gone) pooled with ``new`` (:func:`row_from` of the
    distillations :func:`distill_repeated` added with ``start``): values, ``distill_runs``, wall-clock,
    validation values and other metrics add up, and ``per_distillation`` lists both; an ``old`` row of one
    distillation becomes one entry whose seed is ``first_seed`` (the recipe's). The protocols must agree."""
    if old["protocol"] != new["protocol"] or old["seeds"] != new["seeds"] or old["metric"] != new["metric"]:
        raise ValueError(f"cannot pool {old['method']!r} rows of different protocols: "
                         f"{old['protocol']!r} × {old['seeds']} vs {new['protocol']!r} × {new['seeds']}")

    def entries(row: dict, seed: int) -> list[dict]:
        return list(row.get("per_distillation") or [distillation_entry(seed, row)])

    return {**old, **pooled_scores([old, new]), "distill_runs": old["distill_runs"] + new["distill_runs"],
            "wall_s": round(old["wall_s"] + new["wall_s"], 1),
            "per_distillation": entries(old, first_seed) + entries(new, first_seed + old["distill_runs"])}


def stored_bytes(x) -> int:
    """Bytes of a tensor, or of paired inputs that count their own (``nbytes()``: audio-visual)."""
    return x.nbytes() if callable(getattr(x, "nbytes", None)) else x.numel() * x.element_size()


def baseline_rows(recipe, overrides: list[str], names: list[str], ipc: int, progress: bool = False) -> list[dict]:
    """Rows of the recipe's baselines ``names`` alone, without distilling (to re-measure a baseline)."""
    from mmdd.run import baseline_sets, load_config, setup, evaluate_sets

    cfg = load_config(recipe, overrides)
    ws = setup(cfg)
    sets = baseline_sets(ws, names, None, progress)
    results = evaluate_sets(ws, sets, progress=progress)
    rows = []
    for name, res in results.items():
        data = sets[name].data
        storage = sum(stored_bytes(t) for t in (getattr(data, "inputs", None), getattr(data, "targets", None),
                                                getattr(data, "labels", None)) if t is not None)
        rows.append(pooled_row([res.as_dict()], name, ipc if name != "full" else "all", storage=storage,
                               real_bytes=ws.domain.real_bytes(ws.data), distill_runs=res.draws, wall_s=res.wall_s))
    return rows


def kept_rows(out_dir: Path, benchmark: str, profile: str, rerun: set[str], budgets: list[int]) -> list[dict]:
    """Rows of the existing results file (same profile) that this invocation does not measure again.

    A row is dropped when its method is in ``rerun`` and its budget is one of ``budgets`` (or is a
    whole-data row, budget "all", whose method is in ``rerun``), so methods can be re-measured one at a time.
    A row marked with a profile of its own (Fashion-MNIST's paper rows) is another invocation's: always kept.
    """
    previous = Path(out_dir) / f"{benchmark}.json"
    if not previous.exists():
        return []
    old = json.loads(previous.read_text())
    if old.get("profile") != profile:
        return []
    return [r for r in old["rows"] if r.get("profile", profile) != profile
            or not (r["method"] in rerun and (r["budget"] in budgets or r["budget"] == "all"))]


def fill_compression(rows: list[dict], real_bytes: int) -> None:
    """Give rows kept from an older results file (made before the column existed) their compression ratio."""
    for row in rows:
        if "compression" not in row and row.get("storage_bytes") and row.get("budget_unit") == "ipc":
            row["compression"] = round(real_bytes / row["storage_bytes"], 1)


def fmt(row: dict) -> str:
    if row.get("mean") is None:
        return row.get("note", "not run")
    return f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}"


def markdown(result: dict) -> str:
    lines = [f"## {result['benchmark']} ({result['profile']} profile)", "",
             f"- machine: {result['machine']}", f"- data: {result['data']}", f"- protocol: {result['protocol']}", ""]
    extra = "dataset" in (result["rows"][0] if result["rows"] else {})
    ratio = any("compression" in row for row in result["rows"])
    others = sorted({k for row in result["rows"] for k in row.get("others", {})})
    head = (["dataset"] if extra else []) + ["method", "budget", "metric", "mean ± std (%)"] + [
        f"{k} (%)" for k in others] + ["seeds", "distill runs", "storage bytes"] + (["compression"] if ratio else []) + ["wall s", "note"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in result["rows"]:
        cells = ([row["dataset"]] if extra else []) + [
            row["method"], f"{row['budget']} {row['budget_unit']}", row["metric"], fmt(row)] + [
            fmt(row["others"][k]) if k in row.get("others", {}) else "" for k in others] + [str(row.get("seeds", "")),
            str(row.get("distill_runs", "")), f"{row['storage_bytes']:,}" if row.get("storage_bytes") else ""] + (
            [f"×{row['compression']:g}" if row.get("compression") else ""] if ratio else []) + [
            f"{row.get('wall_s', 0):.1f}",
            row.get("note", "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {line}" for line in result.get("findings", [])] if result.get("findings") else []
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path | None = None, text: str | None = None) -> str:
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result["benchmark"]
    text = text or markdown(result)
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, out_dir)
    return text


def figure(result: dict, out_dir: Path | None = None) -> Path | None:
    """``<name>.png`` beside the results file: the metric against the budget, drawn by ``mmdd compare``'s
    plot (None, nothing written, when no row has a metric: a timing benchmark)."""
    from mmdd.compare import result_figure

    return result_figure(result, Path(out_dir or RESULTS) / f"{result['benchmark']}.png")
