"""``report.html``: a run directory's self-contained page (opens from disk, loads nothing from a network).

What it shows: a header (recipe, domain, dataset, method, budget, storage and compression, wall-clock,
package versions), the evaluation as a chart (:func:`mmdd.charts.evaluation_chart`) and a table with
each set's protocol, the training curves of ``metrics.jsonl`` (:func:`mmdd.charts.curves_chart`) and the
samples, labelled by class: image rows, spectrogram maps with an ``<audio>`` player per WAV, a GIF per
video clip, slice strips of volumes, pair images with their nearest real captions. Charts are inline
SVG; samples are the media files the domain wrote into the run directory, linked relatively.
"""

from __future__ import annotations

import html
from pathlib import Path

from mmdd.charts import curves_chart, evaluation_chart
from mmdd.core import rundir
from mmdd.core.media import MediaFiles
from mmdd.core.viewable import Viewable

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{font-weight:600;background:#fafafa}
figure{margin:.6em 0} figure svg{max-width:100%;height:auto} figcaption{color:#555;font-size:.9em}
.samples img{image-rendering:pixelated;max-width:100%} .classes{display:flex;flex-wrap:wrap;gap:14px}
.class{margin:.4em 0} img.row{height:72px;width:auto}
.class h3{margin:.3em 0;font-size:1em} .tiles{display:flex;flex-wrap:wrap;gap:8px}
.tile{display:flex;flex-direction:column;align-items:center;font-size:.8em;color:#555}
.tile img{min-width:64px} .pair td{vertical-align:top} .note{color:#555}
"""


def esc(value) -> str:
    return html.escape(str(value))


def rel(path: Path, run_dir: Path) -> str:
    """``path`` relative to the run directory, URL-escaped, for ``src``/``href``."""
    from urllib.parse import quote

    try:
        text = Path(path).resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        text = Path(path).as_posix()
    return esc(quote(text))


def read_records(run_dir: Path) -> list[dict]:
    """The step records of ``metrics.jsonl`` (training steps and validation points)."""
    return [r for r in rundir.read_jsonl(Path(run_dir) / rundir.METRICS) if "step" in r]


def facts_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def header(run, domain, extra_lines: list[str]) -> str:
    m, cfg = run.manifest, run.config
    rows = [("recipe", f"<code>{esc(cfg.name)}</code> (profile <code>{esc(cfg.profile)}</code>)"),
            ("domain / dataset", f"{esc(cfg.domain)} / {esc(cfg.dataset.name)}"),
            ("method", esc(cfg.method.name)),
            ("budget", f"{esc(cfg.budget.ipc)} {esc(domain.budget_unit)}"),
            ("storage", f"{m['storage_bytes']:,} bytes; real train split {m['real_bytes']:,} bytes; "
                        f"compression ×{m['compression_ratio']:.1f}"),
            ("steps", f"{m.get('steps_completed', 0)} ({esc(m.get('status', ''))})"),
            ("wall-clock", ", ".join(f"{esc(k)} {v:.1f} s" for k, v in m.get("wall_clock_s", {}).items()))]
    if m.get("synthetic", {}).get("learned_lr") is not None:
        rows.append(("learned lr", f"{m['synthetic']['learned_lr']:.4g}"))
    rows += [("", esc(line.lstrip("- "))) for line in extra_lines]
    packages = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in m.get("packages", {}).items())
    return (f"<h1>{esc(cfg.name)}</h1><p>{esc(cfg.description.strip())}</p>" + facts_table(rows) +
            f"<details><summary>package versions</summary><table>{packages}</table></details>")


def evaluation_section(m: dict) -> str:
    evaluation = m.get("evaluation") or {}
    if not evaluation:
        return '<section id="evaluation"><h2>Evaluation</h2><p class="note">not evaluated yet (<code>mmdd eval RUN</code>)</p></section>'
    chart = evaluation_chart(evaluation)
    head = "<tr><th>set</th><th>samples</th><th>metric</th><th>mean ± std (%)</th><th>per seed (%)</th></tr>"
    rows = []
    for name, res in evaluation.items():
        entries = [(res["metric"], res)] + list((res.get("others") or {}).items())
        for k, (metric, r) in enumerate(entries):
            first = f"<td rowspan={len(entries)}>{esc(name)}</td><td class=num rowspan={len(entries)}>" \
                    f"{res['train_size']}</td>" if k == 0 else ""
            seeds = ", ".join(f"{100 * v:.2f}" for v in r["values"])
            rows.append(f"<tr>{first}<td>{esc(metric)}</td><td class=num>{100 * r['mean']:.2f} ± "
                        f"{100 * r['std']:.2f}</td><td>{seeds}</td></tr>")
    protocols = "".join(f"<li><code>{esc(name)}</code>: {esc(res['protocol'])}</li>" for name, res in evaluation.items())
    return ('<section id="evaluation"><h2>Evaluation</h2>'
            f'<figure id="evaluation-chart">{chart}<figcaption>Each set trained fresh networks; bars are the mean '
            'over evaluation seeds, error bars their std, dots the seeds.</figcaption></figure>'
            f"<table>{head}{''.join(rows)}</table><ul>{protocols}</ul></section>")


def curves_section(records: list[dict], validation_metric: str | None) -> str:
    if not records:
        return '<section id="training"><h2>Training</h2><p class="note">no training records</p></section>'
    return ('<section id="training"><h2>Training</h2>'
            f'<figure id="training-curves">{curves_chart(records, validation_metric)}<figcaption>From <code>metrics.jsonl</code>'
            f' ({len(records)} records); dashed lines mark stage boundaries.</figcaption></figure></section>')


def _tile(inner: str, caption: str) -> str:
    return f'<div class="tile">{inner}<span>{esc(caption)}</span></div>'


def samples_section(view: Viewable, files: MediaFiles, run_dir: Path) -> str:
    parts = []
    if view.kind == "pair":
        rows = []
        for item in files.per_sample:
            i = item["index"]
            captions = "".join(f"<li>{esc(text)} <small>({score:.3f})</small></li>"
                               for text, score in (view.captions[i] if view.captions else []))
            rows.append(f'<tr><td>{i}</td><td><img src="{rel(item["image"], run_dir)}" alt="pair {i}"></td>'
                        f"<td><ol>{captions}</ol></td></tr>")
        parts.append('<p class="note">Each distilled image beside the real training captions nearest (cosine) '
                     'to its distilled text embedding.</p><table class="pair"><tr><th>pair</th><th>image</th>'
                     f'<th>nearest real captions</th></tr>{"".join(rows)}</table>')
    elif files.per_sample:
        blocks = []
        by_label: dict[str, list[dict]] = {}
        for item in files.per_sample:
            by_label.setdefault(item["label"], []).append(item)
        for label, items in by_label.items():
            tiles = []
            for item in items:
                inner = ""
                if "image" in item:
                    inner += f'<img src="{rel(item["image"], run_dir)}" alt="{esc(label)} {item["index"]}">'
                if "video" in item:
                    inner += f'<img src="{rel(item["video"], run_dir)}" alt="{esc(label)} clip {item["index"]}">'
                if "audio" in item:
                    inner += f'<audio controls preload="metadata" src="{rel(item["audio"], run_dir)}"></audio>'
                tiles.append(_tile(inner, f"#{item['index']}"))
            blocks.append(f'<div class="class"><h3>{esc(label)}</h3><div class="tiles">{"".join(tiles)}</div></div>')
        parts.append(f'<div class="classes">{"".join(blocks)}</div>')
        if len(files.per_sample) < len(view):
            parts.append(f'<p class="note">{len(files.per_sample)} of {len(view)} samples shown one by one; '
                         f'<code>samples.png</code> holds all.</p>')
    else:
        rows = [f'<div class="class"><h3>{esc(name)}</h3><img class="row" src="{rel(path, run_dir)}" '
                f'alt="{esc(name)}"></div>' for name, path in files.class_rows]
        parts.append(f'<div class="classes">{"".join(rows)}</div>')
    what = {"image": "images", "audio": "feature maps (channels stacked, MFCC on top) and the MFCC channel "
            "inverted to sound", "video": "one GIF per clip", "volume": "evenly spaced axial slices of each volume",
            "pair": "image-text pairs"}[view.kind]
    return (f'<section id="samples" class="samples"><h2>Samples</h2><p class="note">{len(view)} distilled '
            f'samples: {esc(what)}.</p>{"".join(parts)}</section>')


def write_html_report(run, domain, view: Viewable, files: MediaFiles, extra_lines: list[str]) -> Path:
    """Write ``report.html`` into the run directory (atomically) and return its path."""
    body = (header(run, domain, extra_lines) + evaluation_section(run.manifest) +
            curves_section(read_records(run.dir), (run.manifest.get("tracking") or {}).get("metric")) + samples_section(view, files, Path(run.dir)))
    page = (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{esc(run.config.name)} — mmdd"
            f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
    return rundir.write_text(Path(run.dir) / rundir.REPORT_HTML, page)
