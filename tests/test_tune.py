"""``mmdd tune``: the search space per method, the profile it writes, and a shared study."""

from __future__ import annotations

import json

import pytest
import yaml

from mmdd.cli import main
from mmdd.core.errors import ConfigError
from mmdd.run import load_config
from mmdd.tune import search_space, tune

SMALL = ["method.iterations=8", "evaluation.epochs=10", "network.width=8", "budget.ipc=2", "tracking.every=4"]


def test_the_search_space_follows_the_method():
    dm = {p.key: p for p in search_space(load_config("quickstart"))}
    assert set(dm) == {"method.lr_inputs", "method.iterations"}  # DM learns images only, no lr
    assert dm["method.lr_inputs"].low == pytest.approx(0.1) and dm["method.lr_inputs"].high == pytest.approx(10)


def test_trajectory_matching_searches_its_steps_start_epoch_and_lr_step(tmp_path):
    cfg = load_config("image/fashion_mnist-mtt-ipc1", [f"dataset.root={tmp_path}"])
    space = {p.key: p for p in search_space(cfg)}
    assert {"method.lr_inputs", "method.lr_lr", "method.syn_steps", "method.max_start_epoch",
            "method.iterations"} <= set(space)
    assert space["method.max_start_epoch"].high == cfg.experts.epochs - cfg.method.expert_epochs
    assert space["method.lr_lr"].low == pytest.approx(cfg.method.lr_lr / 100)


def test_three_trials_write_a_profile_that_mmdd_run_accepts(tmp_path, capsys):
    out = tmp_path / "tune"
    said = []
    result = tune("quickstart", SMALL, trials=3, out=out, progress=False, log=said.append)
    assert any("all 3 trial(s) of this study are random draws" in line for line in said)  # TPE starts after 10
    profile = yaml.safe_load(result.profile_file.read_text())
    assert set(profile) == {"method.iterations", "method.lr_inputs", "tracking.every"}
    assert profile["method.iterations"] == result.best_params["method.iterations"]
    rows = json.loads((out / "trials.json").read_text())["trials"]
    assert len(rows) == 3 and all(r["state"] == "complete" for r in rows)
    assert max(r["score"] for r in rows) == pytest.approx(result.best_score)
    assert "| trial | state | validation |" in (out / "trials.md").read_text()
    # the printed command runs the tuned recipe: the profile's values win, the rest of the command line stays
    assert "method.iterations=8" not in result.run_command and "network.width=8" in result.run_command
    cfg = load_config("quickstart", [f"profile={result.profile_file}", "network.width=8"])
    assert cfg.method.iterations == profile["method.iterations"]
    assert cfg.method.lr_inputs == pytest.approx(profile["method.lr_inputs"]) and cfg.tracking.every == 4
    code = main(["run", "quickstart", f"profile={result.profile_file}", "network.width=8", "budget.ipc=2",
                 "evaluation.epochs=5", "evaluation.seeds=1", "evaluation.baselines=[]", "--quiet",
                 f"output_dir={tmp_path / 'run'}"])
    assert code == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["recipe"]["method"]["iterations"] == profile["method.iterations"]
    assert manifest["tracking"]["best_step"] is not None and "distilled" in manifest["evaluation"]


def test_processes_with_one_storage_share_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = dict(out=tmp_path / "a", storage=storage, study_name="s", progress=False, log=lambda _: None,
                  params=["method.lr_inputs"])
    tune("quickstart", SMALL, trials=1, seed=1, **common)
    second = tune("quickstart", SMALL, trials=1, seed=2, **{**common, "out": tmp_path / "b"})
    assert len(second.trials) == 2  # the second process sees the first one's trial


def test_unknown_params_and_missing_profile_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not searched"):
        tune("quickstart", SMALL, trials=1, out=tmp_path, params=["method.momentum"], progress=False,
             log=lambda _: None)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config("quickstart", [f"profile={tmp_path / 'nope.yaml'}"])


def test_a_failing_trial_does_not_end_the_search(tmp_path, monkeypatch):
    import mmdd.run
    from mmdd.core.errors import RunError

    real, calls = mmdd.run.distill, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RunError("the loss became nan at step 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(mmdd.run, "distill", flaky)
    result = tune("quickstart", SMALL, trials=2, out=tmp_path, progress=False, log=lambda _: None,
                  params=["method.lr_inputs"])
    assert [r["state"] for r in result.trials] == ["fail", "complete"]
    assert "| 0 | fail |" in (tmp_path / "trials.md").read_text()


def test_the_profile_of_your_own_recipe_file_lands_beside_it(tmp_path):
    mine = tmp_path / "recipes" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("base: quickstart\nname: mine\n")
    result = tune(str(mine), SMALL, trials=1, out=tmp_path / "tune", progress=False, log=lambda _: None,
                  params=["method.lr_inputs"])
    assert result.profile_file == tmp_path / "recipes" / "mine.tuned.yaml"
    assert (tmp_path / "tune" / "trials.md").exists()
    assert load_config(str(mine), [f"profile={result.profile_file}"]).tracking.every == 4


def test_a_study_says_when_it_never_reaches_the_tpe_model():
    from mmdd.tune import random_search_note

    assert "all 4 trial(s)" in random_search_note(0, 4, 10)
    assert "all 10 trial(s)" in random_search_note(6, 4, 10)  # trials stored by an earlier process count
    assert random_search_note(0, 4, 3) == "" and random_search_note(8, 4, 10) == ""
    with pytest.raises(ConfigError, match="startup_trials must be at least 1"):
        tune("quickstart", SMALL, trials=1, startup_trials=0, progress=False, log=lambda _: None)
