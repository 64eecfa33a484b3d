"""Shared helpers for benchmark scripts: machine description and the results files (DESIGN §8)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = f"{os.cpu_count()}-core CPU ({cpu})"
    if torch.cuda.is_available():
        where = f"{torch.cuda.get_device_name(0)} + {where}"
    return f"{where}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def row_from(run, name: str, method: str, ipc: int, extra_wall: float = 0.0, note: str = "") -> dict:
    """One result row from evaluation ``name`` (distilled, random, full, ...) of a finished run."""
    m = run.manifest
    res = m["evaluation"][name]
    wall = res["wall_s"] + (m["wall_clock_s"]["distillation"] + extra_wall if name == "distilled" else 0.0)
    storage = m["storage_bytes"] if name != "full" else m["real_bytes"]
    row = {"method": method, "budget": ipc, "budget_unit": "ipc", "metric": res["metric"], "mean": res["mean"],
           "std": res["std"], "seeds": len(res["values"]),
           "distill_runs": 1,  # one run directory: one distilled set, or one baseline set (a drawn subset, the whole split)
           "values": res["values"], "storage_bytes": storage,
           "compression": round(m["real_bytes"] / storage, 1), "wall_s": round(wall, 1), "protocol": res["protocol"]}
    if res.get("others"):
        row["others"] = {k: {"mean": v["mean"], "std": v["std"], "values": v["values"]} for k, v in res["others"].items()}
    if note:
        row["note"] = note
    return row


def kept_rows(out_dir: Path, benchmark: str, profile: str, rerun: set[str], budgets: list[int]) -> list[dict]:
    """Rows of the existing results file (same profile) that this invocation does not measure again.

    A row is dropped when its method is in ``rerun`` and its budget is one of ``budgets`` (or is a
    whole-data row, budget "all", whose method is in ``rerun``), so methods can be re-measured one at a time.
    """
    previous = Path(out_dir) / f"{benchmark}.json"
    if not previous.exists():
        return []
    old = json.loads(previous.read_text())
    if old.get("profile") != profile:
        return []
    return [r for r in old["rows"] if not (r["method"] in rerun and (r["budget"] in budgets or r["budget"] == "all"))]


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
