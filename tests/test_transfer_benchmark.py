"""benchmarks/transfer.py --baselines-only: only the random rows of the chosen case are measured again."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_remeasured_random_replaces_only_that_cases_random_rows_per_train_pool(monkeypatch):
    import transfer

    calls = []

    def fake_baseline_rows(recipe, overrides, names, ipc):
        calls.append((recipe, tuple(overrides), ipc))
        tracked = "tracking.every=25" in overrides
        return [{"method": "random", "metric": "accuracy", "mean": 0.6 if tracked else 0.5, "std": 0.01, "values": [0.5, 0.5, 0.5],
                 "seeds": 3, "distill_runs": 3, "wall_s": 1.0, "val_values": [0.4, 0.6, 0.5],
                 "others": {"auc": {"mean": 0.55, "std": 0.0, "values": [0.55] * 3}}}]

    monkeypatch.setattr(transfer, "baseline_rows", fake_baseline_rows)
    monkeypatch.setattr(transfer, "load_config", lambda recipe, overrides: type("C", (), {"name": recipe.split("/")[-1]}))
    case = {"recipe": "medical/breastmnist-ptm-ipc1", "dataset": "adrenal2d", "overrides": ["profile=cpu"]}

    def row(recipe, method, tracking, tuned):
        return {"dataset": "adrenal2d", "recipe": recipe, "method": method, "budget": 1, "val_tracking": tracking,
                "tuned": tuned, "mean": 0.1, "std": 0.0, "values": [0.1] * 3, "seeds": 3, "distill_runs": 1,
                "wall_s": 9.0, "others": {"auc": {"mean": 0.4, "std": 0.0, "values": [0.4] * 3}}}

    rows = [row("breastmnist-ptm-ipc1", "random", False, False), row("breastmnist-ptm-ipc1", "ptm", False, False),
            row("breastmnist-ptm-ipc1", "random", True, False), row("breastmnist-ptm-ipc1", "random", True, True),
            row("breastmnist-ptm-ipc10", "random", False, False)]  # the same data set, another case
    out = transfer.remeasured_random(rows, case, ["tracking.every=25"])

    assert len(calls) == 2  # one measurement per train pool (tracking off / on), shared by the tuned row
    assert [r["mean"] for r in out] == [0.5, 0.1, 0.6, 0.6, 0.1]
    assert [r["distill_runs"] for r in out] == [3, 1, 3, 3, 1]
    assert out[0]["others"]["auc"]["mean"] == 0.55 and out[0]["val_mean"] == 0.5
    assert out[1] is rows[1] and out[4] is rows[4]  # the distilled row and the other case's row untouched


class FakeRun:
    """What rows_of reads of a finished run: its manifest and the recipe's method and budget."""

    def __init__(self, seed: int, values: list[float], best_step: int | None = None):
        method = type("M", (), {"name": "ptm"})
        budget = type("B", (), {"ipc": 1})
        self.config = type("C", (), {"method": method, "budget": budget})
        ev = {"metric": "accuracy", "protocol": "p", "mean": sum(values) / len(values), "std": 0.0, "values": values,
              "wall_s": 2.0, "val_values": [v - 0.1 for v in values],
              "others": {"auc": {"mean": values[0], "std": 0.0, "values": values}}}
        self.manifest = {"recipe": {"name": "breastmnist-ptm-ipc1"}, "profile": "cpu", "seeds": {"distillation": [seed]},
                         "wall_clock_s": {"distillation": 10.0}, "storage_bytes": 100, "real_bytes": 1000,
                         "steps_completed": 40, "evaluation": {"distilled": ev}}
        if seed == 0:
            self.manifest["evaluation"]["random"] = {**ev, "values": [0.5, 0.5, 0.5], "mean": 0.5, "draws": 3,
                                                     "val_values": None}
        if best_step is not None:
            self.manifest["tracking"] = {"metric": "auc", "best_step": best_step, "best_score": 0.7, "initial_score": 0.6}


def test_rows_of_pools_the_distilled_row_over_distillations_and_keeps_the_first_runs_random_subsets():
    import transfer

    runs = [FakeRun(0, [0.6, 0.7, 0.8], best_step=10), FakeRun(1, [0.9, 0.9, 0.9], best_step=30)]
    random, distilled = transfer.rows_of(runs, "adrenal2d", True, False)

    assert random["distill_runs"] == 3 and random["values"] == [0.5, 0.5, 0.5] and random["wall_s"] == 2.0
    assert distilled["distill_runs"] == 2 and distilled["seeds"] == 3
    assert distilled["values"] == [0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
    assert abs(distilled["mean"] - 4.8 / 6) < 1e-12
    assert abs(distilled["val_mean"] - (4.8 - 0.6) / 6) < 1e-12
    assert [d["seed"] for d in distilled["per_distillation"]] == [0, 1]
    assert [d["others"]["auc"] for d in distilled["per_distillation"]] == [0.6, 0.9]  # each distillation's AUC
    assert [t["best_step"] for t in distilled["tracking"]] == [10, 30]
    assert distilled["wall_s"] == 2 * (2.0 + 10.0)  # both evaluations and both distillations

    text = transfer.markdown({"benchmark": "transfer", "machine": "m", "protocol": "p",
                              "rows": [random, distilled]})
    assert "10 of 40 (auc 70.0; init 60.0); 30 of 40" in text  # each distillation's kept step


def test_run_case_distils_every_seed_into_its_own_directory_and_trains_missing_experts(monkeypatch, tmp_path):
    import transfer

    calls = {}
    monkeypatch.setattr(transfer, "load_config", lambda recipe, overrides: type("C", (), {
        "method": type("M", (), {"name": "mtt"})}))
    monkeypatch.setattr("mmdd.experts.generate_experts", lambda recipe, overrides, progress: calls.setdefault("experts", overrides))

    def fake_repeated(recipe, overrides, output_dir, distill_seeds, resume):
        calls["repeated"] = (output_dir, distill_seeds, resume, overrides)
        return ["run"] * distill_seeds

    monkeypatch.setattr(transfer, "distill_repeated", fake_repeated)
    case = {"recipe": "audio/fsdd-mtt-ipc1", "overrides": ["profile=cpu"]}
    assert transfer.run_case("audio_ipc1", case, tmp_path, "on", ["tracking.every=25"], 2) == ["run", "run"]
    out, n, resume, overrides = calls["repeated"]
    assert (out, n, resume) == (tmp_path / "audio_ipc1-on", 2, True)
    assert overrides[:3] == ["profile=cpu", "tracking.every=25", "evaluation.baselines=[random]"]
    assert calls["experts"] == overrides  # the experts the distillations read
