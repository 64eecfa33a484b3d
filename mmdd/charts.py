"""The charts of a run's report, drawn with matplotlib (Agg, no display) and returned as inline SVG.

- :func:`evaluation_chart`: grouped bars, one group per metric (the main one and the domain's others:
  AUC, retrieval recalls), one bar per evaluated set (distilled and every baseline) with its std as an
  error bar and each evaluation seed as a dot;
- :func:`curves_chart`: the training curves of ``metrics.jsonl`` — the matching loss (log scale when it
  spans more than a decade), the learned lr, validation points, a matcher's own counters — with the
  stage boundaries of a staged run as dashed lines.

matplotlib because it is the plotting library every Python user already has, writes SVG without a
browser or a server, and is a dependency of nothing heavier.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: SVG text stays text (searchable, selectable, small) instead of glyph outlines
SVG_STYLE = {"svg.fonttype": "none"}

#: record fields that are not curves
_NOT_CURVES = {"step", "stage", "stage_step"}
#: the colour of each set (distilled first), then the default cycle
_SET_COLOURS = {"distilled": "#1f77b4", "random": "#7f7f7f", "full": "#2ca02c", "herding": "#ff7f0e",
                "k_center": "#9467bd"}


def to_svg(fig) -> str:
    """The figure as an SVG element (no XML prologue), closed afterwards."""
    buffer = io.StringIO()
    with matplotlib.rc_context(SVG_STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    if "<metadata>" in text:  # the RDF block (creator, date): namespace URLs and a timestamp, no content
        text = text[:text.index("<metadata>")] + text[text.index("</metadata>") + len("</metadata>"):]
    return text


def evaluation_series(evaluation: dict) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """(metric names in order, {set: {metric: {"mean", "std", "values"}}}) from a manifest's evaluation."""
    metrics: list[str] = []
    table: dict[str, dict[str, dict]] = {}
    for name, res in evaluation.items():
        row = {res["metric"]: {"mean": res["mean"], "std": res["std"], "values": res["values"]}}
        row.update({m: r for m, r in (res.get("others") or {}).items()})
        for m in row:
            if m not in metrics:
                metrics.append(m)
        table[name] = row
    return metrics, table


def evaluation_chart(evaluation: dict, title: str = "") -> str:
    """Grouped bars of every set on every metric, in % (see the module docstring)."""
    metrics, table = evaluation_series(evaluation)
    sets = list(table)
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(metrics) * max(1, len(sets)) * 0.6 + 2), 3.4))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(sets):
        colour = _SET_COLOURS.get(name, cycle[(k + 5) % len(cycle)])
        xs, means, stds = [], [], []
        for j, metric in enumerate(metrics):
            r = table[name].get(metric)
            if r is None:
                continue
            x = j - 0.4 + width * (k + 0.5)
            xs.append(x)
            means.append(100 * r["mean"])
            stds.append(100 * r["std"])
            values = [100 * v for v in r.get("values") or []]
            ax.scatter([x] * len(values), values, s=10, color="black", zorder=3, alpha=0.7)
        ax.bar(xs, means, width * 0.92, yerr=stds, capsize=3, color=colour, label=name, zorder=2)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylabel("%")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return to_svg(fig)


def curve_names(records: list[dict]) -> list[str]:
    """The numeric fields of the records that make a curve, in a stable order (loss first)."""
    seen: list[str] = []
    for record in records:
        for key, value in record.items():
            if key in _NOT_CURVES or key in seen or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            seen.append(key)
    order = {"loss": 0, "learned_lr": 1, "validation": 2}
    return sorted(seen, key=lambda k: (order.get(k, 3), seen.index(k)))


def stage_starts(records: list[dict]) -> list[tuple[int, str]]:
    """(first step, stage name) of each stage of a staged run, in order."""
    starts: list[tuple[int, str]] = []
    for record in records:
        stage = record.get("stage")
        if stage is not None and (not starts or starts[-1][1] != stage):
            starts.append((int(record["step"]), stage))
    return starts


def curves_chart(records: list[dict], validation_metric: str | None = None) -> str:
    """One panel per curve, sharing the step axis (see the module docstring); ``validation_metric`` names
    what the validation points measure."""
    names = curve_names(records)
    fig, axes = plt.subplots(len(names), 1, figsize=(6.5, 1.9 * len(names) + 0.4), sharex=True, squeeze=False)
    starts = stage_starts(records)
    for ax, name in zip(axes[:, 0], names):
        points = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        marker = "o" if name == "validation" or len(xs) < 30 else None
        ax.plot(xs, ys, marker=marker, markersize=3, linewidth=1.2)
        positive = [y for y in ys if y > 0]
        if name in ("loss", "learned_lr") and len(positive) == len(ys) and positive and \
                max(positive) > 10 * min(positive):
            ax.set_yscale("log")
        else:
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        label = f"validation\n({validation_metric})" if name == "validation" and validation_metric else name
        ax.set_ylabel(label.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        for step, stage in starts[1:]:
            ax.axvline(step, linestyle="--", color="grey", linewidth=1)
        if starts and ax is axes[0, 0]:
            for step, stage in starts:
                ax.annotate(stage, (step, 1.0), xycoords=("data", "axes fraction"), fontsize=8, color="grey",
                            xytext=(2, -10), textcoords="offset points")
    axes[-1, 0].set_xlabel("step")
    return to_svg(fig)
