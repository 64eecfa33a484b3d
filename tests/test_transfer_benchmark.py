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
