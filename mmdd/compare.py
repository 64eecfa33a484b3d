"""``mmdd compare``: one table and one plot from run directories and benchmark results files.

Every input becomes plain :class:`Row` records (one per method and budget; a run directory gives
one per evaluated set: the distilled set under the recipe's method name, then its baselines), so a
run made on a laptop sits next to the committed benchmark rows. From the rows come a table
(Markdown and HTML) and a figure: the metric against the budget, one line per method with the
seeds' std as error bars, baselines dashed, whole-data rows as dashed horizontal lines.

Which metric: each row's own main metric by default (accuracy; mean recall for vision-language);
``--metric auc`` (or ``accuracy,auc``, or ``all``) picks named metrics, the main one or one of a
row's further metrics (``others``). The figure has one panel per metric and, when the rows name
more than one dataset, per dataset (``--group-by``).

Only the standard library is imported at module level (the CLI builds its parser from here);
matplotlib is imported when a figure is drawn, with the Agg backend and no pyplot state.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from mmdd.core.errors import MMDDError

#: evaluated sets that are not distillation: dashed in the figure (names normalised by :func:`_norm`)
BASELINES = ("random", "herding", "kcenter", "k_center", "slide_window", "static_only")
#: sets trained on the whole training split: a horizontal dashed line
WHOLE = ("full", "whole", "whole_data", "full_data")
#: row keys that hold results or bookkeeping, never what tells two rows of one method and budget apart
_RESULT_KEYS = {"method", "budget", "budget_unit", "metric", "mean", "std", "values", "seeds", "distill_runs",
                "others", "protocol", "note", "wall_s", "storage_bytes", "compression", "dataset", "val_mean",
                "val_values", "val_tracking", "learned_lrs", "stored_pairs", "train_pairs", "full_video_bytes",
                "tune_trials", "tune_completed", "recipe", "profile", "machine", "per_distillation", "paper_mean",
                "paper_std", "tuned_settings"}
GROUP_BY = ("auto", "dataset", "input", "profile", "none")


class CompareError(MMDDError):
    """An input of ``mmdd compare`` is not a run directory or results file, or holds nothing to compare."""


def _norm(method: str) -> str:
    return "_".join(method.lower().replace("-", " ").replace("_", " ").split())


def is_whole(method: str, budget) -> bool:
    return budget == "all" or _norm(method) in WHOLE or _norm(method).startswith(("whole_", "full_"))


def is_baseline(method: str) -> bool:
    n = _norm(method)
    return any(n == b or n.startswith(b + "_") for b in BASELINES)


@dataclass
class Row:
    """One evaluated set: a method at a budget, one metric's mean ± std over the evaluation seeds."""

    input: str                  # label of the run directory or results file it came from
    dataset: str                # the data it was measured on ("" when the input does not say)
    method: str                 # distillation method, or the baseline / whole-data set's name
    budget: float | int | None  # samples per class (or pairs); None for a whole-data row
    budget_unit: str            # "ipc" (per class) or "pairs"; a whole-data row: what "all" counts
    metric: str
    mean: float
    std: float
    values: list = field(default_factory=list)
    seeds: int | None = None
    profile: str = ""
    variant: str = ""           # what tells rows of one method and budget in one input apart (tracking, tuned)
    others: dict = field(default_factory=dict)  # further metrics: name → {mean, std, values}
    budget_text: str = ""       # the budget as the input wrote it, for the table

    @property
    def whole(self) -> bool:
        return self.budget is None

    @property
    def baseline(self) -> bool:
        return is_baseline(self.method)

    @property
    def label(self) -> str:
        return f"{self.method} ({self.variant})" if self.variant else self.method

    def metrics(self) -> list[str]:
        return [self.metric, *self.others]

    def as_metric(self, name: str) -> "Row | None":
        """This row read for metric ``name`` (its main metric or one of ``others``); None if it lacks it."""
        if name == self.metric:
            return self
        other = self.others.get(name)
        if not other or other.get("mean") is None:
            return None
        return replace(self, metric=name, mean=other["mean"], std=other.get("std") or 0.0,
                       values=list(other.get("values") or []))


@dataclass
class Source:
    """One input and what was read from it."""

    path: Path
    kind: str                   # "run" or "results"
    label: str
    rows: list[Row]
    skipped: int = 0            # rows without a metric (timing rows, rows that did not run)
    details: dict = field(default_factory=dict)  # profile, protocol, machine... for the page


# --------------------------------------------------------------------------- reading inputs


def _number(budget):
    if isinstance(budget, bool):
        return None
    if isinstance(budget, (int, float)):
        return budget
    try:
        return float(budget) if "." in str(budget) else int(budget)
    except (TypeError, ValueError):
        return None


def rows_from_result(result: dict, label: str) -> tuple[list[Row], int]:
    """The rows of a benchmark results file (DESIGN §8) that have a metric and a mean, and how many had not."""
    rows, skipped, raw = [], 0, []
    for r in result.get("rows", []):
        if not isinstance(r, dict) or r.get("mean") is None or not r.get("metric") or not r.get("method"):
            skipped += 1
            continue
        budget = r.get("budget")
        whole = is_whole(str(r["method"]), budget)
        number = _number(budget)
        if not whole and number is None:
            skipped += 1
            continue
        unit = str(r.get("budget_unit") or "")
        others = {k: v for k, v in (r.get("others") or {}).items() if isinstance(v, dict) and v.get("mean") is not None}
        rows.append(Row(input=label, dataset=str(r.get("dataset") or result.get("benchmark") or ""),
                        method=str(r["method"]),
                        budget=None if whole else number, budget_unit=unit, metric=str(r["metric"]),
                        mean=float(r["mean"]), std=float(r.get("std") or 0.0), values=list(r.get("values") or []),
                        seeds=r.get("seeds"), profile=str(r.get("profile") or result.get("profile") or ""),
                        others=others, budget_text=" ".join(str(p) for p in (budget, unit) if p not in (None, ""))))
        raw.append(r)
    _name_variants(rows, raw)
    return rows, skipped


def _name_variants(rows: list[Row], raw: list[dict]) -> None:
    """Rows of one method, budget and metric in one input are told apart by the keys that differ between them.

    A ``True`` flag names itself (``tuned``), a section only some of them have names itself
    (``tracking``, a mapping or a list of them), a short text differing between them reads
    ``key=value``. Rows still alike are numbered in the figure (``random #2``, :func:`series`).
    """
    clusters: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        clusters.setdefault((row.dataset, row.method, row.budget, row.metric), []).append(i)
    for members in clusters.values():
        if len(members) < 2:
            continue
        keys = sorted({k for i in members for k in raw[i]} - _RESULT_KEYS)
        for i in members:
            parts = []
            for k in keys:
                seen = [raw[j].get(k) for j in members]
                if all(json.dumps(s, sort_keys=True, default=str) == json.dumps(seen[0], sort_keys=True, default=str)
                       for s in seen):
                    continue
                v = raw[i].get(k)
                if v is True or (isinstance(v, (dict, list)) and v):  # a flag, or a section (one per distillation)
                    parts.append(k)
                elif isinstance(v, (str, int, float)) and not isinstance(v, bool) and len(str(v)) <= 20 \
                        and all(isinstance(s, (str, int, float, type(None))) for s in seen):
                    parts.append(f"{k}={v}")
            rows[i].variant = ", ".join(parts)


def rows_from_manifest(manifest: dict, label: str) -> list[Row]:
    """One row per evaluated set of a run directory's manifest: the distilled set as its method, then its baselines."""
    recipe = manifest.get("recipe") or {}
    method = str((recipe.get("method") or {}).get("name") or "distilled")
    from mmdd.raw_recipe import data_label  # the label run.py gives the same recipe

    dataset = data_label(recipe.get("dataset") or {})
    pairs = (manifest.get("budget") or {}).get("pairs") if isinstance(manifest.get("budget"), dict) else None
    budget = pairs if pairs is not None else (recipe.get("budget") or {}).get("ipc")
    unit = "pairs" if pairs is not None else "ipc"
    rows = []
    for name, res in (manifest.get("evaluation") or {}).items():
        if not isinstance(res, dict) or res.get("mean") is None:
            continue
        whole = is_whole(name, None)
        others = {k: v for k, v in (res.get("others") or {}).items()
                  if isinstance(v, dict) and v.get("mean") is not None}
        values = list(res.get("values") or [])
        size = res.get("train_size")
        rows.append(Row(input=label, dataset=dataset, method=method if name == "distilled" else name,
                        budget=None if whole else budget, budget_unit=unit if not whole else "samples",
                        metric=str(res.get("metric") or "metric"), mean=float(res["mean"]),
                        std=float(res.get("std") or 0.0), values=values, seeds=len(values) or None,
                        profile=str(manifest.get("profile") or recipe.get("profile") or ""), others=others,
                        budget_text=f"all ({size:,} samples)" if whole and size else
                        ("all" if whole else f"{budget} {unit}")))
    return rows


def _refuse_path(path: Path) -> CompareError:
    what = ("expected a run directory (holding manifest.json) or a benchmark results file "
            "(benchmarks/results/<name>.json)")
    if not path.exists():
        return CompareError(f"{path}: no such file or directory; {what}")
    if path.is_dir():
        inner = sorted(p.parent for p in path.glob("*/manifest.json"))
        hint = (f"; it holds {len(inner)} run director{'y' if len(inner) == 1 else 'ies'}: pass them, e.g. "
                f"`mmdd compare {path}/*`" if inner else "")
        return CompareError(f"{path} is a directory without manifest.json, so not a run directory written by "
                            f"`mmdd run`{hint}")
    return CompareError(f"{path} is neither a run directory nor a results file; {what}")


def read_input(path: str | Path) -> Source:
    """A run directory (or its manifest.json) or a benchmark results JSON file, read into rows."""
    path = Path(path)
    manifest_path = path / "manifest.json" if path.is_dir() else path
    if not manifest_path.is_file():
        raise _refuse_path(path)
    try:
        data = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{manifest_path} is not valid JSON ({exc}); expected a run directory's manifest.json "
                           f"or a benchmark results file") from None
    except OSError as exc:
        raise CompareError(f"{manifest_path} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise CompareError(f"{manifest_path} holds JSON but neither a run manifest nor a benchmark results file "
                           f"(expected an object with 'evaluation' or 'rows')")
    if "evaluation" in data and "recipe" in data:
        run_dir = manifest_path.parent
        rows = rows_from_manifest(data, run_dir.name or str(run_dir))
        if not rows:
            raise CompareError(f"{run_dir}: the run has no evaluation results (status {data.get('status', '?')}); "
                               f"evaluate it first: mmdd eval {run_dir}")
        recipe = data.get("recipe") or {}
        return Source(run_dir, "run", run_dir.name or str(run_dir), rows,
                      details={"recipe": recipe.get("name", ""), "profile": data.get("profile") or "",
                               "status": data.get("status", ""),
                               "protocol": next(iter(data["evaluation"].values())).get("protocol", "")})
    if isinstance(data.get("rows"), list):
        label = str(data.get("benchmark") or path.stem)
        rows, skipped = rows_from_result(data, label)
        if not rows:
            raise CompareError(f"{path}: none of its {len(data['rows'])} rows has a metric and a mean (timing rows, "
                               f"or rows that did not run); nothing to compare")
        return Source(path, "results", label, rows, skipped,
                      details={k: str(data[k]) for k in ("profile", "machine", "data", "protocol") if data.get(k)})
    raise CompareError(f"{path} holds JSON but neither a run manifest (no 'recipe' and 'evaluation') nor a "
                       f"benchmark results file (no 'rows' list; see DESIGN §8)")


def read_inputs(paths: Sequence[str | Path]) -> list[Source]:
    """Every input read; labels made unique (the path as given where two would read alike)."""
    if not paths:
        raise CompareError("nothing to compare: name run directories or benchmark results files")
    sources = [read_input(p) for p in paths]
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.label] = counts.get(s.label, 0) + 1
    for s, given in zip(sources, paths):
        if counts[s.label] > 1:
            s.label = str(given)
            for r in s.rows:
                r.input = s.label
    return sources


# --------------------------------------------------------------------------- choosing and arranging rows


def select_metrics(rows: Iterable[Row], metric: str | None) -> tuple[list[Row], list[str]]:
    """The rows read for the chosen metric(s), and notes on rows that lack one.

    ``None`` or ``"main"``: each row's main metric. ``"all"``: the main and every further metric.
    Otherwise a comma list of names; a name no row has is refused with the names the inputs have.
    """
    rows = list(rows)
    if metric in (None, "", "main"):
        return rows, []
    available = list(dict.fromkeys(m for r in rows for m in r.metrics()))
    if metric == "all":
        return [r.as_metric(m) for r in rows for m in r.metrics()], []
    names = [m.strip() for m in metric.split(",") if m.strip()]
    missing = [m for m in names if m not in available]
    if missing:
        raise CompareError(f"no row has metric {', '.join(map(repr, missing))}; the inputs have: "
                           f"{', '.join(available)}")
    chosen, notes = [], []
    for m in names:
        picked = [r.as_metric(m) for r in rows]
        lacking = sum(p is None for p in picked)
        if lacking:
            notes.append(f"{lacking} row{'s' if lacking > 1 else ''} without {m!r} left out")
        chosen += [p for p in picked if p is not None]
    return chosen, notes


def dedupe(rows: list[Row]) -> tuple[list[Row], int]:
    """Identical measurements listed twice kept once: a random subset a benchmark reports beside two
    settings, or the same baseline (same seeds, same values) in two run directories."""
    seen, kept = set(), []
    for r in rows:
        key = (r.dataset, r.method, r.budget, r.metric, r.mean, r.std, tuple(r.values) or r.input)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept, len(rows) - len(kept)


def group_key(row: Row, group_by: str) -> str:
    return {"dataset": row.dataset, "input": row.input, "profile": row.profile}.get(group_by, "")


def resolve_group_by(rows: Sequence[Row], group_by: str = "auto") -> str:
    """``auto``: one panel per dataset when the rows name more than one; else one per profile when they
    name more than one (a results file with rows at the papers' settings beside its cpu rows); else one
    panel (per metric)."""
    if group_by not in GROUP_BY:
        raise CompareError(f"--group-by {group_by!r}: expected one of {', '.join(GROUP_BY)}")
    if group_by == "auto":
        if len({r.dataset for r in rows}) > 1:
            return "dataset"
        return "profile" if len({r.profile for r in rows}) > 1 else "none"
    return group_by


def panels(rows: Sequence[Row], group_by: str) -> dict[tuple[str, str, str], list[Row]]:
    """Rows per panel: (group, metric, budget unit). A row whose input names no unit joins the panel of
    its group and metric that has one; a whole-data row joins every panel of its group and metric."""
    units: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if not r.whole and r.budget_unit:
            units.setdefault((group_key(r, group_by), r.metric), [])
            if r.budget_unit not in units[(group_key(r, group_by), r.metric)]:
                units[(group_key(r, group_by), r.metric)].append(r.budget_unit)
    out: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        if not r.whole:
            unit = r.budget_unit or (units.get((group_key(r, group_by), r.metric)) or [""])[0]
            out.setdefault((group_key(r, group_by), r.metric, unit), []).append(r)
    for r in rows:
        if r.whole:
            keys = [k for k in out if k[:2] == (group_key(r, group_by), r.metric)]
            for k in keys or [(group_key(r, group_by), r.metric, "")]:
                out.setdefault(k, []).append(r)
    return out


def series(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """One line per method (and variant) in a panel, in input order.

    Where a line would get a second row at one budget (two run directories of one method and
    budget, say tracking off and on), the first input's row stays on the line and each later one is
    drawn as its own point, labelled with its input (``ptm [runs/ptm-on]``; numbered when the input
    is the same).
    """
    out: dict[str, list[Row]] = {}
    for r in rows:
        key = r.label
        if key in out and any(o.budget == r.budget for o in out[key]):
            same_input = any(o.budget == r.budget and o.input == r.input for o in out[key])
            base = r.label if same_input else f"{r.label} [{r.input}]"
            key, n = base, 1
            while key in out and any(o.budget == r.budget for o in out[key]):
                n += 1
                key = f"{base} #{n}"
        out.setdefault(key, []).append(r)
    return out


def _order(rows: list[Row], group_by: str) -> list[Row]:
    groups = list(dict.fromkeys(group_key(r, group_by) for r in rows))
    metrics = list(dict.fromkeys(r.metric for r in rows))
    return sorted(rows, key=lambda r: (groups.index(group_key(r, group_by)), metrics.index(r.metric), r.whole,
                                       r.budget if r.budget is not None else 0, not r.baseline))


# --------------------------------------------------------------------------- the table


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def table_columns(rows: Sequence[Row]) -> list[str]:
    cols = ["dataset"] if len({r.dataset for r in rows}) > 1 else []
    cols += ["method", "budget", "metric", "mean ± std (%)", "seeds"]
    if len({r.input for r in rows}) > 1:
        cols.append("input")
    return cols


def table_cells(row: Row, cols: Sequence[str]) -> list[str]:
    cell = {"dataset": row.dataset, "method": row.label, "budget": row.budget_text or str(row.budget),
            "metric": row.metric, "mean ± std (%)": f"{_pct(row.mean)} ± {_pct(row.std)}",
            "seeds": "" if row.seeds is None else str(row.seeds), "input": row.input}
    return [cell[c] for c in cols]


def markdown_table(rows: Sequence[Row]) -> str:
    cols = table_columns(rows)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if c in ("seeds",) else "---" for c in cols) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in table_cells(r, cols)) + " |" for r in rows]
    return "\n".join(lines)


def html_table(rows: Sequence[Row]) -> str:
    cols = table_columns(rows)
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cls = ' class="base"' if r.baseline or r.whole else ""
        out.append(f"<tr{cls}>" + "".join(
            f'<td class="num">{html.escape(v)}</td>' if c in ("mean ± std (%)", "seeds")
            else f"<td>{html.escape(v)}</td>"
            for c, v in zip(cols, table_cells(r, cols))) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


# --------------------------------------------------------------------------- the figure


def _budget_text(b) -> str:
    return f"{b:g}" if isinstance(b, float) else str(b)


def log_budgets(budgets: Sequence[float]) -> bool:
    """A logarithmic budget axis when the budgets span 10× or more."""
    return bool(budgets) and min(budgets) > 0 and max(budgets) / min(budgets) >= 10


def plot(rows: Sequence[Row], path: str | Path, title: str = "", group_by: str = "none") -> Path:
    """Metric (%) against budget, a panel per (group, metric); error bars are the seeds' std.

    Distilled methods are solid lines, baselines dashed, whole-data rows dashed horizontal lines
    with their std as a band. The budget axis is logarithmic when the budgets span 10× or more;
    markers of one budget are spread a little sideways so their error bars do not hide each other.
    """
    from matplotlib.figure import Figure  # Agg is Figure.savefig's PNG writer; no pyplot, no display
    from matplotlib.ticker import FixedLocator, NullLocator

    by_panel = panels(rows, group_by)
    if not by_panel:
        raise CompareError("nothing to plot: no row has a numeric budget or is a whole-data row")
    labels = list(dict.fromkeys(lab for prs in by_panel.values() for lab, members in series(prs).items()
                                if not members[0].whole))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
    colour = {lab: palette[i % len(palette)] for i, lab in enumerate(labels)}
    n = len(by_panel)
    n_metrics = len({k[1] for k in by_panel})
    if 1 < n_metrics <= 4 and n % n_metrics == 0:
        ncols = n_metrics  # a row per group, a column per metric
    else:
        ncols = 2 if n == 4 else min(n, 3)
    nrows = math.ceil(n / ncols)
    longest = max((len(lab) for lab in labels), default=10)
    legend_w = min(0.07 * max(longest, 10) + 0.8, 4.5)  # inches the legend takes right of the panels
    fig = Figure(figsize=(5.0 * ncols + legend_w, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    handles: dict[str, object] = {}
    multi_metric = n_metrics > 1
    for ax, ((group, metric, unit), prs) in zip(axes.flat, by_panel.items()):
        lines = series(prs)
        budgets = sorted({r.budget for r in prs if not r.whole})
        log = log_budgets(budgets)
        drawn = [lab for lab, members in lines.items() if not members[0].whole]
        for k, lab in enumerate(drawn):
            members = sorted(lines[lab], key=lambda r: r.budget)
            shift = k - (len(drawn) - 1) / 2
            if log:
                xs = [r.budget * 10 ** (0.012 * shift) for r in members]
            else:
                span = (max(budgets) - min(budgets)) or max(abs(budgets[0]), 1)
                xs = [r.budget + 0.008 * span * shift for r in members]
            dashed = members[0].baseline
            h = ax.errorbar(xs, [100 * r.mean for r in members], yerr=[100 * r.std for r in members],
                            color=colour[lab], marker="s" if dashed else "o", markersize=4, capsize=3, linewidth=1.4,
                            linestyle="--" if dashed else "-", alpha=0.85 if dashed else 1.0)
            handles.setdefault(lab, h)
        wholes = [(lab, members[0]) for lab, members in lines.items() if members[0].whole]
        for j, (lab, r) in enumerate(wholes):
            shade = ["#000000", "#555555", "#999999"][j % 3]
            h = ax.axhline(100 * r.mean, color=shade, linestyle="--", linewidth=1.2)
            ax.axhspan(100 * (r.mean - r.std), 100 * (r.mean + r.std), color=shade, alpha=0.08, linewidth=0)
            handles.setdefault(lab, h)
        if log:
            ax.set_xscale("log")
        if budgets:
            ax.xaxis.set_major_locator(FixedLocator(budgets))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([_budget_text(b) for b in budgets])
            if len(budgets) == 1:
                b = budgets[0]
                ax.set_xlim(b / 1.5, b * 1.5) if b > 0 else ax.set_xlim(b - 1, b + 1)
            elif log:
                ax.set_xlim(min(budgets) / 1.4, max(budgets) * 1.4)
        ax.set_xlabel(f"budget ({unit})" if unit else "budget")
        ax.set_ylabel(f"{metric} (%)")
        heading = [group] if group else []
        if multi_metric or (not group and n > 1):
            heading.append(metric)
        if heading:
            ax.set_title("\n".join(textwrap.wrap(" · ".join(heading), 48)), fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside right center", fontsize=9,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})  # no version stamp: the same rows give the same file
    return path


# --------------------------------------------------------------------------- pages


@dataclass
class Comparison:
    rows: list[Row]
    sources: list[Source]
    notes: list[str]
    group_by: str
    title: str

    def markdown(self, png: str = "compare.png") -> str:
        lines = [f"# {self.title}", "", f"![{self.title}]({png})", "", markdown_table(self.rows), "", "## Inputs", ""]
        for s in self.sources:
            lines.append(f"- `{s.path}` ({_describe(s)})")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def html(self, png_bytes: bytes) -> str:
        img = base64.b64encode(png_bytes).decode("ascii")
        inputs = "\n".join(f"<li><code>{html.escape(str(s.path))}</code> ({html.escape(_describe(s))})"
                           + "".join(f"<br><small>{html.escape(k)}: {html.escape(v)}</small>"
                                     for k, v in s.details.items() if v and k in ("protocol", "machine", "data"))
                           + "</li>" for s in self.sources)
        notes = ("<h2>Notes</h2>\n<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>"
                 if self.notes else "")
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f2f2f2; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.base td {{ color: #555; }} img {{ max-width: 100%; }} small {{ color: #666; }}
</style></head><body>
<h1>{html.escape(self.title)}</h1>
<img src="data:image/png;base64,{img}" alt="{html.escape(self.title)}: metric against budget, one line per method">
<p>Mean ± std over the evaluation seeds, in %.
Baselines and whole-data rows are dashed in the figure and grey in the table.</p>
{html_table(self.rows)}
<h2>Inputs</h2>
<ul>
{inputs}
</ul>
{notes}
</body></html>
"""


def _describe(s: Source) -> str:
    text = f"{s.kind}: {len(s.rows)} row{'s' if len(s.rows) != 1 else ''}"
    if s.skipped:
        text += f", {s.skipped} without a metric skipped"
    for k in ("recipe", "profile", "status"):
        if s.details.get(k):
            text += f", {k} {s.details[k]}"
    return text


def build(paths: Sequence[str | Path], metric: str | None = None, group_by: str = "auto",
          title: str | None = None) -> Comparison:
    """Read the inputs and arrange their rows for the table and the figure."""
    sources = read_inputs(paths)
    notes = [f"{s.label}: {s.skipped} row{'s' if s.skipped > 1 else ''} without a metric and a mean skipped "
             f"(timing rows, or rows that did not run)" for s in sources if s.skipped]
    rows, more = select_metrics([r for s in sources for r in s.rows], metric)
    notes += more
    rows, merged = dedupe(rows)
    if merged:
        notes.append(f"{merged} identical measurement{'s' if merged > 1 else ''} (same method, budget and values) "
                     f"listed again kept once")
    chosen = resolve_group_by(rows, group_by)
    rows = _order(rows, chosen)
    if title is None:
        title = " vs ".join(dict.fromkeys(s.label for s in sources)) if len(sources) <= 3 else \
            f"{len(sources)} inputs compared"
    return Comparison(rows, sources, notes, chosen, title)


def write(comp: Comparison, out: str | Path = "compare") -> dict[str, Path]:
    """Write ``compare.png``, ``compare.html`` (the figure embedded) and ``compare.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot(comp.rows, out / "compare.png", comp.title, comp.group_by)
    page, md = out / "compare.html", out / "compare.md"
    page.write_text(comp.html(png.read_bytes()))
    md.write_text(comp.markdown(png.name))
    return {"html": page, "png": png, "md": md}


def compare(paths: Sequence[str | Path], out: str | Path = "compare", metric: str | None = None,
            group_by: str = "auto", title: str | None = None) -> dict[str, Path]:
    """Read the inputs and write their table and figure into ``out`` (see :func:`write`)."""
    return write(build(paths, metric, group_by, title), out)


def result_figure(result: dict, path: str | Path, title: str | None = None) -> Path | None:
    """The figure of one benchmark results dict (what the benchmark scripts commit beside their JSON).

    None, and nothing written, when no row has a metric (a timing benchmark).
    """
    rows, _ = rows_from_result(result, str(result.get("benchmark", "results")))
    if not rows:
        return None
    rows, _ = dedupe(rows)
    chosen = resolve_group_by(rows, "auto")
    if title is None:
        title = f"{result.get('benchmark', '')} ({result['profile']} profile)" if result.get("profile") else \
            str(result.get("benchmark", ""))
    return plot(_order(rows, chosen), path, title, chosen)


# --------------------------------------------------------------------------- command line


def _cmd(args) -> int:
    comp = build(args.inputs, metric=args.metric, group_by=args.group_by, title=args.title)
    files = write(comp, args.out)
    print(markdown_table(comp.rows))
    for note in comp.notes:
        print(f"note: {note}")
    print()
    for path in files.values():
        print(f"wrote {path}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``mmdd compare`` on the CLI's sub-command parsers."""
    p = subparsers.add_parser("compare", help="one table and one plot (HTML + PNG + Markdown) from run directories "
                                              "and benchmark results files")
    p.add_argument("inputs", nargs="+", metavar="RUN_OR_RESULTS",
                   help="run directories (holding manifest.json) and/or benchmark results JSON files")
    p.add_argument("--out", default="compare",
                   help="folder for compare.html, compare.png, compare.md (default compare/)")
    p.add_argument("--metric", default=None,
                   help="metric to show: default each row's main one (accuracy; mean_recall for vision-language); "
                        "a name such as auc or ir@1, a comma list, or 'all' (a panel per metric)")
    p.add_argument("--group-by", default="auto", choices=GROUP_BY,
                   help="a panel per dataset, input or profile (default auto: per dataset when the rows name more "
                        "than one); always a panel per metric")
    p.add_argument("--title", default=None, help="title of the page and the figure (default: the inputs' names)")
    p.set_defaults(func=_cmd)
    return p

