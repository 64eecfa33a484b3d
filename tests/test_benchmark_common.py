"""The benchmark scripts' shared results helpers: re-measuring one method keeps the other rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import fill_compression, kept_rows  # noqa: E402


def row(method, budget, **extra):
    return {"method": method, "budget": budget, "budget_unit": "ipc" if budget != "all" else "clips",
            "storage_bytes": 100 * (budget if budget != "all" else 50), **extra}


def test_kept_rows_drops_only_what_is_measured_again(tmp_path):
    rows = [row("random", 1), row("dm", 1), row("mtt", 1), row("random", 10), row("mtt", 10),
            row("whole data", "all")]
    (tmp_path / "bench.json").write_text(json.dumps({"profile": "cpu", "rows": rows}))
    kept = kept_rows(tmp_path, "bench", "cpu", {"mtt"}, [10])
    assert [(r["method"], r["budget"]) for r in kept] == [
        ("random", 1), ("dm", 1), ("mtt", 1), ("random", 10), ("whole data", "all")]
    kept = kept_rows(tmp_path, "bench", "cpu", {"dm", "random", "whole data"}, [1, 10])
    assert [(r["method"], r["budget"]) for r in kept] == [("mtt", 1), ("mtt", 10)]
    assert kept_rows(tmp_path, "bench", "default", {"mtt"}, [10]) == []  # another profile: nothing kept
    assert kept_rows(tmp_path, "missing", "cpu", {"mtt"}, [10]) == []


def test_fill_compression_only_where_missing():
    rows = [row("random", 1), row("mtt", 10, compression=7.0), row("whole data", "all")]
    fill_compression(rows, real_bytes=1000)
    assert rows[0]["compression"] == 10.0
    assert rows[1]["compression"] == 7.0
    assert "compression" not in rows[2]


def test_repeated_distillation_pools_every_distillation_and_the_random_row_counts_its_draws(tiny_recipe, tmp_path):
    from common import baseline_rows, distill_repeated, row_from

    tiny_recipe["method"]["iterations"] = 2
    runs = distill_repeated(tiny_recipe, [], tmp_path / "run", distill_seeds=2)
    assert [r.manifest["seeds"]["distillation"] for r in runs] == [[0], [1]]
    assert set(runs[1].manifest["evaluation"]) == {"distilled"}  # baselines once, in the first run
    assert not torch.equal(runs[0].synthetic.inputs, runs[1].synthetic.inputs)  # two different distilled sets

    distilled = row_from(runs, "distilled", "dm", 2)
    per_run = [r.manifest["evaluation"]["distilled"]["values"] for r in runs]
    assert distilled["values"] == per_run[0] + per_run[1] and distilled["seeds"] == 2
    assert distilled["distill_runs"] == 2 and [d["seed"] for d in distilled["per_distillation"]] == [0, 1]
    mean = sum(distilled["values"]) / 4
    assert abs(distilled["mean"] - mean) < 1e-12

    random = row_from(runs, "random", "random", 2)
    assert random["distill_runs"] == 2 and random["values"] == runs[0].manifest["evaluation"]["random"]["values"]
    assert "a new random draw per seed" in random["protocol"]

    again = baseline_rows(tiny_recipe, [], ["random"], 2)  # the same draws without distilling
    assert again[0]["values"] == random["values"] and again[0]["distill_runs"] == 2


def test_a_baseline_built_from_the_distilled_set_is_pooled_over_every_distillation(tiny_recipe, tmp_path,
                                                                                     monkeypatch):
    """A baseline in SYNTHETIC_BASELINES (video's static_only) is evaluated in every run and pooled like
    the distilled row; one evaluated in the first run only keeps coming from it. (herding stands in for
    a set-derived baseline here, on the image domain's tiny recipe.)"""
    from common import distill_repeated, row_from

    from mmdd.core import evaluation

    monkeypatch.setattr(evaluation, "SYNTHETIC_BASELINES", {"herding"})
    tiny_recipe["method"]["iterations"] = 2
    tiny_recipe["evaluation"]["baselines"] = ["random", "herding"]
    runs = distill_repeated(tiny_recipe, [], tmp_path / "run", distill_seeds=2)
    assert set(runs[0].manifest["evaluation"]) == {"distilled", "random", "herding"}
    assert set(runs[1].manifest["evaluation"]) == {"distilled", "herding"}

    herding = row_from(runs, "herding", "herding", 2)
    per_run = [r.manifest["evaluation"]["herding"]["values"] for r in runs]
    assert herding["values"] == per_run[0] + per_run[1] and herding["distill_runs"] == 2
    assert [d["seed"] for d in herding["per_distillation"]] == [0, 1]
    random = row_from(runs, "random", "random", 2)
    assert random["values"] == runs[0].manifest["evaluation"]["random"]["values"] and "per_distillation" not in random
    try:
        row_from(runs, "kcenter", "kcenter", 2)
    except KeyError as err:
        assert "kcenter" in str(err) and "herding" in str(err)
    else:
        raise AssertionError("a baseline no run evaluated must be an error")


def test_resumed_repeated_distillation_continues_a_stopped_run_and_reads_back_a_finished_one(tiny_recipe, tmp_path):
    """The long paper rows rely on it: an interrupted benchmark, run again with resume, continues each
    run from its checkpoint, and a run that finished is read back, not distilled again."""
    import mmdd
    from common import distill_repeated

    tiny_recipe["method"]["iterations"] = 4
    stopped = mmdd.distill(tiny_recipe, output_dir=tmp_path / "run", stop_after=2, evaluate=False, progress=False)
    assert stopped.manifest.get("status") != "complete"
    (done,) = distill_repeated(tiny_recipe, [], tmp_path / "run", resume=True)
    fresh = mmdd.distill(tiny_recipe, output_dir=tmp_path / "fresh", progress=False)
    assert done.manifest["status"] == "complete" and torch.equal(done.synthetic.inputs, fresh.synthetic.inputs)
    finished_at = (tmp_path / "run" / "manifest.json").stat().st_mtime_ns
    (again,) = distill_repeated(tiny_recipe, [], tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "manifest.json").stat().st_mtime_ns == finished_at  # read, not rerun
    assert again.manifest["evaluation"] == done.manifest["evaluation"]


def test_fashion_mnist_paper_rows_are_marked_and_keep_the_other_rows(tmp_path):
    import fashion_mnist

    distilled = fashion_mnist.paper_row({"method": "dc", "budget": 1, "note": "x"}, "dc", 1, distilled=True)
    assert distilled["profile"] == "paper" and (distilled["paper_mean"], distilled["paper_std"]) == (0.705, 0.006)
    assert distilled["note"] == "paper profile; the paper: 70.5 ± 0.6; x"
    baseline = fashion_mnist.paper_row({"method": "random", "budget": 1}, "dsa", 1, distilled=False)
    assert baseline["method"] == "random (dsa protocol)" and "paper_mean" not in baseline
    rows = [row("dc", 1), row("dc", 1, profile="paper"), row("random (dc protocol)", 1, profile="paper"),
            row("dsa", 1, profile="paper"), row("dc", 10, profile="paper")]
    (tmp_path / "fashion_mnist.json").write_text(json.dumps({"profile": "cpu", "rows": rows}))
    kept = fashion_mnist.kept_paper_rows(tmp_path, {"dc"}, [1])
    assert [(r["method"], r["budget"], r.get("profile")) for r in kept] == [
        ("dc", 1, None), ("dsa", 1, "paper"), ("dc", 10, "paper")]


def test_video_combine_lets_a_later_file_replace_rows_of_the_same_method_and_budget(tmp_path):
    import video

    def result(rows, note):
        return {"benchmark": "video", "profile": "default", "machine": "m", "data": "d", "protocol": "p",
                "note": note, "rows": rows}

    def vrow(method, budget, mean):
        return {"method": method, "budget": budget, "budget_unit": "vpc", "metric": "accuracy", "mean": mean,
                "std": 0.0, "seeds": 3, "distill_runs": 1, "storage_bytes": 10, "wall_s": 1.0}

    committed = result([vrow("random clips", 1, 0.3), vrow("static + dynamic (DM)", 1, 0.7),
                        vrow("static + dynamic (DM)", 5, 0.75), vrow("whole data", "all", 0.8)], "committed")
    rerun = result([vrow("static + dynamic (DM)", 5, 0.78), vrow("whole data", "all", 0.81)], "rerun")
    paths = []
    for name, res in (("a.json", committed), ("b.json", rerun)):
        (tmp_path / name).write_text(json.dumps(res))
        paths.append(tmp_path / name)
    out = tmp_path / "out"
    out.mkdir()
    assert video.combine(paths, out) == 0
    merged = json.loads((out / "video.json").read_text())
    got = [(r["method"], r["budget"], r["mean"]) for r in merged["rows"]]
    assert got == [("random clips", 1, 0.3), ("static + dynamic (DM)", 1, 0.7), ("static + dynamic (DM)", 5, 0.78),
                   ("whole data", "all", 0.81)]
    notes = [r.get("note") for r in merged["rows"]]
    assert notes == [None, None, "rerun", "rerun"]  # a replacing row says how its run was made
    assert merged["note"] == "committed"


def test_extending_a_committed_row_adds_only_the_missing_distillations_and_pools_as_a_fresh_pair(tiny_recipe,
                                                                                               tmp_path):
    """A row whose runs are gone grows by distilling seeds K.. only; pooled with its committed values it
    is the row two fresh distillations give."""
    import pytest
    from common import distill_repeated, extend_row, row_from

    tiny_recipe["method"]["iterations"] = 2
    both = distill_repeated(tiny_recipe, [], tmp_path / "both", distill_seeds=2)
    committed = row_from(both[:1], "distilled", "dm", 2)
    assert committed["distill_runs"] == 1 and "per_distillation" not in committed

    (added,) = distill_repeated(tiny_recipe, [], tmp_path / "added", distill_seeds=2, start=1)
    assert not (tmp_path / "added").exists() and (tmp_path / "added-seed1").is_dir()
    assert added.manifest["seeds"]["distillation"] == [1] and set(added.manifest["evaluation"]) == {"distilled"}
    assert torch.equal(added.synthetic.inputs, both[1].synthetic.inputs)

    grown = extend_row(committed, row_from([added], "distilled", "dm", 2), first_seed=0)
    fresh = row_from(both, "distilled", "dm", 2)
    for key in ("values", "mean", "std", "distill_runs", "seeds", "protocol"):
        assert grown[key] == fresh[key], key
    assert [(d["seed"], d["mean"]) for d in grown["per_distillation"]] == [
        (d["seed"], d["mean"]) for d in fresh["per_distillation"]]
    with pytest.raises(ValueError, match="start 2"):
        distill_repeated(tiny_recipe, [], tmp_path / "none", distill_seeds=2, start=2)
    with pytest.raises(ValueError, match="different protocols"):
        extend_row(committed, {**fresh, "protocol": "another"}, first_seed=0)


def test_extend_row_pools_other_metrics_and_validation_values():
    from common import extend_row

    def scored(values, auc, val):
        return {"method": "ptm", "budget": 1, "metric": "accuracy", "protocol": "p", "seeds": 2, "values": values,
                "mean": sum(values) / 2, "std": 0.0, "distill_runs": 1, "wall_s": 10.0, "val_values": val,
                "others": {"auc": {"values": auc, "mean": sum(auc) / 2, "std": 0.0}}}

    grown = extend_row(scored([0.5, 0.7], [0.6, 0.6], [0.4]), scored([0.9, 0.9], [0.8, 1.0], [0.5]), first_seed=3)
    assert grown["values"] == [0.5, 0.7, 0.9, 0.9] and abs(grown["mean"] - 0.75) < 1e-12
    assert grown["others"]["auc"]["values"] == [0.6, 0.6, 0.8, 1.0] and abs(grown["others"]["auc"]["mean"] - 0.75) < 1e-12
    assert grown["val_values"] == [0.4, 0.5] and grown["wall_s"] == 20.0 and grown["distill_runs"] == 2
    assert [(d["seed"], d["others"]["auc"]) for d in grown["per_distillation"]] == [(3, 0.6), (4, 0.9)]


def test_fashion_mnist_extend_keeps_the_baselines_and_refuses_a_row_it_does_not_have(tmp_path):
    import pytest
    import fashion_mnist

    rows = [row("dsa", 1, profile="paper", distill_runs=1), row("random (dsa protocol)", 1, profile="paper"),
            row("dsa", 1, distill_runs=2), row("random", 1)]
    (tmp_path / "fashion_mnist.json").write_text(json.dumps({"profile": "cpu", "rows": rows}))
    kept = fashion_mnist.kept_paper_rows(tmp_path, {"dsa"}, [1], keep_baselines=True)
    assert [(r["method"], r.get("profile")) for r in kept] == [("random (dsa protocol)", "paper"), ("dsa", None),
                                                               ("random", None)]
    assert [r.get("profile") for r in fashion_mnist.committed_rows(tmp_path, "paper")] == ["paper"]
    assert [r.get("profile") for r in fashion_mnist.committed_rows(tmp_path, "cpu")] == [None]
    cpu_row = fashion_mnist.committed_rows(tmp_path, "cpu")[0]
    assert fashion_mnist.extended(cpu_row, "unused", [], tmp_path / "runs", 2, False, "", False) is cpu_row  # has 2
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit, match="no paper-profile row of dc IPC 1"):
        fashion_mnist.main(["--root", str(tmp_path), "--profile", "paper", "--methods", "dc", "--ipc", "1",
                            "--distill-seeds", "2", "--extend", "--out", str(tmp_path), "--runs", str(tmp_path / "r")])


def test_fashion_mnist_rows_sort_by_budget_then_method_with_a_paper_row_after_its_cpu_row():
    import fashion_mnist

    kept = [row("random (dsa protocol)", 1, profile="paper"), row("mtt", 10), row("dsa", 1), row("random", 1),
            row("mtt", 1)]
    ordered = sorted([row("dsa", 1, profile="paper")] + kept, key=fashion_mnist.row_order)
    assert [(r["method"], r["budget"], r.get("profile")) for r in ordered] == [
        ("random", 1, None), ("dsa", 1, None), ("dsa", 1, "paper"), ("mtt", 1, None),
        ("random (dsa protocol)", 1, "paper"), ("mtt", 10, None)]


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_fashion_mnist_extend_replaces_only_the_grown_row_and_keeps_every_other(tmp_path, monkeypatch, profile):
    import fashion_mnist

    def scored(method, budget, **extra):
        return row(method, budget, metric="accuracy", mean=0.5, std=0.0, seeds=2, distill_runs=1, values=[0.5, 0.5],
                   wall_s=1.0, protocol="p", **extra)

    paper = {"profile": "paper"}
    rows = [scored("random", 1), scored("dc", 1), scored("dc", 1, **paper), scored("dsa", 1),
            scored("dsa", 1, **paper), scored("random (dsa protocol)", 1, **paper), scored("dsa", 10)]
    (tmp_path / "fashion_mnist.json").write_text(json.dumps(
        {"benchmark": "fashion_mnist", "profile": "cpu", "machine": "m", "data": "d", "protocol": "p", "rows": rows}))
    grown = []
    monkeypatch.setattr(fashion_mnist, "extended", lambda old, *a: grown.append(old) or {**old, "distill_runs": 2})
    monkeypatch.setattr(fashion_mnist, "figure", lambda *a, **k: None, raising=False)
    assert fashion_mnist.main(["--root", str(tmp_path), "--profile", profile, "--methods", "dsa", "--ipc", "1",
                               "--distill-seeds", "2", "--extend", "--out", str(tmp_path),
                               "--runs", str(tmp_path / "runs")]) == 0
    assert [r.get("profile") for r in grown] == [paper.get("profile") if profile == "paper" else None]
    after = json.loads((tmp_path / "fashion_mnist.json").read_text())["rows"]
    assert [(r["method"], r["budget"], r.get("profile")) for r in after] == [
        (r["method"], r["budget"], r.get("profile")) for r in rows]  # nothing lost, nothing added, same order
    assert [r["distill_runs"] for r in after] == [1, 1, 1] + ([1, 2] if profile == "paper" else [2, 1]) + [1, 1]
