"""The command line, run as a user would: a subprocess of the installed `mmdd` entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml


def mmdd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mmdd.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_recipes_lists_one_line_each():
    out = mmdd("recipes")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert any(l.startswith("quickstart ") for l in lines)
    assert any(l.startswith("image/fashion_mnist-dm-ipc10 ") for l in lines)
    assert all(len(l.split()) > 1 for l in lines)  # every recipe has a description


def test_recipes_parts_lists_each_domains_datasets_and_the_registered_methods():
    out = mmdd("recipes", "--parts")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "audio\n  datasets: audio_folder, esc50, fsdd, speech_commands" in text
    assert "vision_language\n  datasets: coco_captions, flickr8k_csv, karpathy" in text
    assert "methods of its own: ptm" in text and "methods of its own: bitm" in text
    assert "shared methods (core): dc, dm, dsa, mtt" in text


def test_run_show_eval_and_errors(tiny_recipe, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    run_dir = tmp_path / "out"
    out = mmdd("run", recipe, f"output_dir={run_dir}", "method.iterations=4", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "| distilled |" in out.stdout and "| random |" in out.stdout and str(run_dir) in out.stdout
    assert json.loads((run_dir / "manifest.json").read_text())["steps_completed"] == 4

    (run_dir / "samples.png").unlink()
    (run_dir / "report.html").unlink()
    shown = mmdd("show", run_dir)
    assert shown.returncode == 0 and (run_dir / "samples.png").exists() and "report.html" in shown.stdout
    assert 'id="evaluation-chart"' in (run_dir / "report.html").read_text()
    opened = mmdd("show", run_dir, "--open")
    assert opened.returncode == 0 and opened.stdout.strip() == str((run_dir / "report.html").resolve())

    ev = mmdd("eval", run_dir, "--seeds", "1", "--baselines", "", "--quiet")
    assert ev.returncode == 0, ev.stderr
    assert set(json.loads((run_dir / "manifest.json").read_text())["evaluation"]) == {"distilled"}

    again = mmdd("run", recipe, f"output_dir={run_dir}", "method.iterations=4")
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr


def test_stop_after_then_resume(tiny_recipe, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    tiny_recipe["evaluation"]["baselines"] = []
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    run_dir = tmp_path / "out"
    first = mmdd("run", recipe, f"output_dir={run_dir}", "--stop-after", "2", "--quiet")
    assert first.returncode == 0 and "--resume" in first.stdout
    second = mmdd("run", recipe, f"output_dir={run_dir}", "--resume", "--quiet")
    assert second.returncode == 0, second.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["steps_completed"] == 6


def test_bad_override_is_a_clear_error(tmp_path):
    out = mmdd("run", "quickstart", "budget.ipc=0", f"output_dir={tmp_path / 'x'}")
    assert out.returncode == 2 and "budget.ipc must be ≥ 1" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_flags_and_overrides_in_any_order():
    from mmdd.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "quickstart", "--no-eval", "budget.ipc=1", "--stop-after", "3", "seed=2"])
    assert (args.recipe, args.overrides, args.no_eval, args.stop_after) == ("quickstart", ["budget.ipc=1", "seed=2"],
                                                                            True, 3)
    args = parser.parse_args(["run", "--quiet", "quickstart", "budget.ipc=1"])
    assert (args.recipe, args.overrides, args.quiet) == ("quickstart", ["budget.ipc=1"], True)
    assert parser.parse_args(["run", "quickstart"]).overrides == []
    args = parser.parse_args(["experts", "r.yaml", "--quiet", "experts.num_experts=2"])
    assert (args.recipe, args.overrides, args.quiet) == ("r.yaml", ["experts.num_experts=2"], True)
    args = parser.parse_args(["predict", "r.yaml", "--no-full", "a=1", "--budgets", "1,2", "b=2"])
    assert (args.overrides, args.no_full, args.budgets) == (["a=1", "b=2"], True, "1,2")
    args = parser.parse_args(["eval", "--seeds", "1", "some/run", "--quiet"])
    assert (args.run_dir, args.seeds, args.quiet) == ("some/run", 1, True)


def test_a_flag_before_the_overrides_runs(tiny_recipe, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe))
    run_dir = tmp_path / "out"
    out = mmdd("run", recipe, "--stop-after", "1", f"output_dir={run_dir}", "--quiet", "method.iterations=3")
    assert out.returncode == 0, out.stderr
    assert "stopped after step 1 of 3" in out.stdout and f"output_dir={run_dir}" in out.stdout
    assert (run_dir / "metrics.jsonl").exists()
    missing = mmdd("run")
    assert missing.returncode == 2 and "required: recipe\n" in missing.stderr  # not "recipe, KEY=VALUE"


@pytest.mark.parametrize("argv, says", [
    (["run", "quickstart", "budget.ipc=1"], "the last checkpoint is kept (continue with: mmdd run quickstart "
                                            "budget.ipc=1 --resume)"),
    (["experts", "r.yaml", "experts.num_experts=3"], "finished experts are kept in the buffer (rerun mmdd experts "
                                                     "r.yaml experts.num_experts=3 to train the rest)"),
    (["eval", "some/run"], "holds the previous evaluation results unless some sets had already finished"),
    (["predict", "quickstart"], None),
    (["show", "some/run"], None),
    (["recipes"], None),
])
def test_ctrl_c_says_what_the_command_leaves(argv, says, monkeypatch, capsys):
    import mmdd.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmdd.cli, f"_cmd_{argv[0]}", interrupted)
    assert mmdd.cli.main(argv) == 130
    err = capsys.readouterr().err.strip()
    if says is None:
        assert err == "mmdd: interrupted"
    else:
        assert err.startswith("mmdd: interrupted; ") and says in err
    assert "checkpoint" not in err or argv[0] == "run"
    assert "--resume" not in err or argv[0] == "run"
