"""`mmdd compare`: committed benchmark results and run directories into one table and one figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mmdd import compare
from mmdd.cli import build_parser, main
from mmdd.compare import CompareError, build, read_input, series

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PNG = b"\x89PNG\r\n\x1a\n"


def evaluation(mean: float, std: float, n: int = 100, metric: str = "accuracy", others: dict | None = None) -> dict:
    """One set's entry of a manifest's "evaluation" section, as `SetResult.as_dict` writes it."""
    values = [mean - std, mean, mean + std]
    return {"metric": metric, "mean": mean, "std": std, "values": values, "seeds": [0, 1, 2],
            "protocol": "ConvNet-1 w8, SGD 0.9 / 0.0005, 3 epochs, 3 seeds, last epoch on test",
            "val_values": None, "train_size": n, "wall_s": 0.5, "others": others}


def write_run(path: Path, ipc: int, sets: dict, method: str = "dm", status: str = "complete") -> Path:
    """A run directory's manifest.json, in the shape `mmdd run` writes (only what compare reads matters)."""
    path.mkdir(parents=True)
    manifest = {"mmdd_artifact": 1, "status": status, "profile": None,
                "recipe": {"name": f"tiny-ipc{ipc}", "domain": "image", "seed": 0, "dataset": {"name": "digits"},
                           "budget": {"ipc": ipc}, "method": {"name": method, "iterations": 6}},
                "steps_completed": 6, "storage_bytes": 100 * ipc, "real_bytes": 100_000, "evaluation": sets}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    auc = {"auc": {"mean": 0.9, "std": 0.01, "values": [0.89, 0.9, 0.91]}}
    one = write_run(tmp_path / "dm-ipc1", 1, {"distilled": evaluation(0.61, 0.02, 10, others=auc),
                                              "random": evaluation(0.42, 0.03, 10)})
    ten = write_run(tmp_path / "dm-ipc10", 10, {"distilled": evaluation(0.88, 0.01),
                                                "random": evaluation(0.80, 0.02),
                                                "full": evaluation(0.97, 0.005, 1437)})
    return [one, ten]


def test_the_committed_fashion_mnist_results_become_a_table_a_figure_and_a_page(tmp_path):
    source = read_input(RESULTS / "fashion_mnist.json")
    assert source.kind == "results" and source.label == "fashion_mnist" and source.skipped == 0
    assert len(source.rows) == 18  # 14 cpu-profile rows, the DC and DSA paper-setting rows with their random baselines
    assert {r.method for r in source.rows} == {"random", "herding", "kcenter", "dm", "dc", "dsa", "mtt",
                                               "random (dc protocol)", "random (dsa protocol)"}
    assert {r.budget for r in source.rows} == {1, 10}
    assert {r.method for r in source.rows if r.baseline} == {"random", "herding", "kcenter", "random (dc protocol)",
                                                             "random (dsa protocol)"}
    assert {(r.method, r.profile) for r in source.rows if r.profile == "paper"} == {
        ("dc", "paper"), ("random (dc protocol)", "paper"), ("dsa", "paper"), ("random (dsa protocol)", "paper")}
    assert compare.resolve_group_by(source.rows) == "profile"  # the paper rows get a panel of their own
    assert all(r.label == r.method for r in source.rows)  # the paper's numbers and the machine are not a variant

    files = compare.compare([RESULTS / "fashion_mnist.json"], out=tmp_path / "cmp")
    assert {p.name for p in files.values()} == {"compare.html", "compare.png", "compare.md"}
    png = files["png"].read_bytes()
    assert png.startswith(PNG) and len(png) > 10_000
    md = files["md"].read_text()
    assert "| method | budget | metric | mean ± std (%) | seeds |" in md
    committed = json.loads((RESULTS / "fashion_mnist.json").read_text())["rows"]
    for method in ("mtt", "kcenter"):  # each row as the results file has it (the file is re-measured over time)
        row = next(r for r in committed if r["method"] == method and r["budget"] == 10)
        assert f"| {method} | 10 ipc | accuracy | {100 * row['mean']:.2f} ± {100 * row['std']:.2f} | 3 |" in md
    assert "![fashion_mnist](compare.png)" in md
    page = files["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64,iVBOR" in page
    mtt = next(r for r in committed if r["method"] == "mtt" and r["budget"] == 10)
    assert "<td>mtt</td>" in page and f"{100 * mtt['mean']:.2f} ± {100 * mtt['std']:.2f}" in page
    # the table runs budget by budget, baselines first
    assert [r.method for r in build([RESULTS / "fashion_mnist.json"]).rows][:3] == ["random", "herding", "kcenter"]


def test_two_run_directories_make_one_line_per_method(runs, tmp_path, capsys):
    comp = build(runs)
    assert [(r.method, r.budget, r.input) for r in comp.rows] == [
        ("random", 1, "dm-ipc1"), ("dm", 1, "dm-ipc1"), ("random", 10, "dm-ipc10"), ("dm", 10, "dm-ipc10"),
        ("full", None, "dm-ipc10")]
    whole = comp.rows[-1]
    assert whole.whole and whole.budget_text == "all (1,437 samples)"
    lines = series(comp.rows)
    assert [r.budget for r in lines["dm"]] == [1, 10] and [r.budget for r in lines["random"]] == [1, 10]
    assert comp.group_by == "none" and comp.title == "dm-ipc1 vs dm-ipc10"

    out = tmp_path / "out"
    assert main(["compare", *map(str, runs), "--out", str(out), "--title", "digits"]) == 0
    printed = capsys.readouterr().out
    assert "| method | budget | metric | mean ± std (%) | seeds | input |" in printed  # one dataset: no column
    assert "| dm | 10 ipc | accuracy | 88.00 ± 1.00 | 3 | dm-ipc10 |" in printed
    assert "| full | all (1,437 samples) | accuracy | 97.00 ± 0.50 | 3 | dm-ipc10 |" in printed
    assert f"wrote {out / 'compare.html'}" in printed
    for name in ("compare.html", "compare.png", "compare.md"):
        assert (out / name).stat().st_size > 0
    assert "<h1>digits</h1>" in (out / "compare.html").read_text()
    assert (out / "compare.png").read_bytes().startswith(PNG)


def test_a_manifest_file_reads_as_its_run_and_mixes_with_results(runs, tmp_path):
    comp = build([runs[0] / "manifest.json", RESULTS / "fashion_mnist.json"])
    assert comp.group_by == "dataset"  # digits, and the results file's rows under its benchmark name
    assert {(r.input, r.dataset) for r in comp.rows} == {("dm-ipc1", "digits"), ("fashion_mnist", "fashion_mnist")}
    assert "| dataset | method | budget |" in compare.markdown_table(comp.rows)
    assert compare.plot(comp.rows, tmp_path / "mixed.png", group_by=comp.group_by).stat().st_size > 0


def test_rows_of_one_method_and_budget_from_two_runs_are_told_apart(runs, tmp_path):
    again = write_run(tmp_path / "dm-ipc10-tracked", 10, {"distilled": evaluation(0.9, 0.01),
                                                         "random": evaluation(0.80, 0.02)})
    comp = build([*runs, again])
    assert "1 identical measurement (same method, budget and values) listed again kept once" in comp.notes
    lines = series(comp.rows)
    assert [r.input for r in lines["dm"]] == ["dm-ipc1", "dm-ipc10"]  # the first input stays on the line
    assert [r.mean for r in lines["dm [dm-ipc10-tracked]"]] == [0.9]


def test_metric_choice_other_metrics_and_panels():
    medical = RESULTS / "medical.json"
    main_only = build([medical])
    assert {r.metric for r in main_only.rows} == {"accuracy"} and main_only.group_by == "dataset"
    auc = build([medical], metric="auc")
    assert {r.metric for r in auc.rows} == {"auc"} and len(auc.rows) == 18
    whole = [r for r in auc.rows if r.whole and r.dataset == "breastmnist"][0]
    assert round(100 * whole.mean, 2) == 88.32  # the README's whole-data AUC
    both = build([medical], metric="all")
    assert len(compare.panels(both.rows, both.group_by)) == 4  # 2 datasets × (accuracy, auc)
    assert len(build([medical], group_by="none").rows) == 18
    with pytest.raises(CompareError, match=r"no row has metric 'ir@1'; the inputs have: accuracy, auc"):
        build([medical], metric="ir@1")
    vl = build([RESULTS / "vision_language.json", medical], metric="auc")
    assert "4 rows without 'auc' left out" in vl.notes


def test_every_committed_results_file_reads_and_timing_rows_are_skipped(tmp_path):
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem in ("trajectory_solvers", "speed", "data_scale", "read_ahead"):  # timing benchmarks: no row has a metric
            rows = json.loads(path.read_text())["rows"]
            with pytest.raises(CompareError, match=f"none of its {len(rows)} rows has a metric and a mean"):
                read_input(path)
            continue
        source = read_input(path)
        assert source.rows and all(0 <= r.mean <= 1 for r in source.rows)
    transfer = build([RESULTS / "transfer.json"])
    labels = {r.label for r in transfer.rows if r.dataset.startswith("adrenal2d")}
    assert {"ptm", "ptm (tracking)", "ptm (tracking, tuned)", "random"} <= labels
    assert any("identical measurements" in n for n in transfer.notes)

    result = json.loads((RESULTS / "fashion_mnist.json").read_text())
    result["rows"] += [{"method": "dm", "budget": 50, "budget_unit": "ipc", "ms_per_iter": 12.0},
                       {"method": "mtt", "budget": 50, "budget_unit": "ipc", "mean": None, "note": "not run"}]
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(result))
    comp = build([mixed])
    assert len(comp.rows) == 18
    assert comp.notes == ["fashion_mnist: 2 rows without a metric and a mean skipped (timing rows, or rows that "
                          "did not run)"]
    assert "2 without a metric skipped" in comp.markdown()


def test_refusals_say_what_was_expected(runs, tmp_path, capsys):
    with pytest.raises(CompareError, match="no such file or directory; expected a run directory"):
        read_input(tmp_path / "missing")
    with pytest.raises(CompareError, match=r"is a directory without manifest.json.*holds 2 run directories: "
                                           r"pass them, e.g. `mmdd compare .*/\*`"):
        read_input(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match=r"directory without manifest.json, so not a run directory written by "
                                           r"`mmdd run`$"):
        read_input(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CompareError, match="is not valid JSON"):
        read_input(tmp_path / "notes.txt")
    (tmp_path / "other.json").write_text(json.dumps({"trials": []}))
    with pytest.raises(CompareError, match="neither a run manifest .* nor a benchmark results file"):
        read_input(tmp_path / "other.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(CompareError, match="neither a run manifest nor a benchmark results file"):
        read_input(tmp_path / "list.json")
    (tmp_path / "no_rows.json").write_text(json.dumps({"benchmark": "x", "rows": []}))
    with pytest.raises(CompareError, match="none of its 0 rows"):
        read_input(tmp_path / "no_rows.json")
    unevaluated = write_run(tmp_path / "stopped", 1, {}, status="interrupted")
    with pytest.raises(CompareError, match=r"the run has no evaluation results \(status interrupted\); evaluate it "
                                           r"first: mmdd eval .*stopped"):
        read_input(unevaluated)
    with pytest.raises(CompareError, match="nothing to compare"):
        build([])

    # on the command line: the message, exit status 2, no traceback, nothing written
    out = tmp_path / "never"
    assert main(["compare", str(runs[0]), str(tmp_path / "notes.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmdd: error: ") and "notes.txt is not valid JSON" in err and not out.exists()
    assert main(["compare", str(RESULTS / "trajectory_solvers.json"), "--out", str(out)]) == 2
    assert "has a metric and a mean" in capsys.readouterr().err


def test_the_parser_and_the_log_axis():
    args = build_parser().parse_args(["compare", "a", "b", "--metric", "auc", "--group-by", "input"])
    assert args.inputs == ["a", "b"] and args.metric == "auc" and args.group_by == "input" and args.out == "compare"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare"])  # at least one input
    assert compare.log_budgets([1, 10]) and compare.log_budgets([1, 5, 50])
    assert not compare.log_budgets([1, 5]) and not compare.log_budgets([100]) and not compare.log_budgets([])


def test_the_benchmark_helper_writes_the_committed_figure(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from common import figure
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    result = json.loads((RESULTS / "fashion_mnist.json").read_text())
    path = figure(result, tmp_path)
    assert path == tmp_path / "fashion_mnist.png" and path.read_bytes().startswith(PNG)
    assert figure(json.loads((RESULTS / "trajectory_solvers.json").read_text()), tmp_path) is None
    assert not (tmp_path / "trajectory_solvers.png").exists()
    assert (RESULTS / "fashion_mnist.png").read_bytes().startswith(PNG)  # the committed one
