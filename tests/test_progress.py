"""Progress off a terminal: a plain line every MMDD_LOG_EVERY seconds and one at the end."""

from __future__ import annotations

import re

import mmdd
from mmdd.core.progress import LogProgress, progress_bar


def test_off_a_terminal_lines_are_logged(monkeypatch, capsys):
    monkeypatch.setenv("MMDD_LOG_EVERY", "0")
    bar = progress_bar(range(2, 5), desc="distill", total=6, initial=2, unit="step")
    assert isinstance(bar, LogProgress)  # capsys's stderr is not a terminal
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=f"{0.5 / (i + 1):.4g}")
    assert seen == [2, 3, 4]  # the values are untouched
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # one per step with MMDD_LOG_EVERY=0, the end not repeated
    assert lines[0].startswith("distill: step 3/6, ") and lines[0].endswith(", loss 0.1667")
    assert re.fullmatch(r"distill: step 5/6, [\d.]+ (step/s|s/step), ETA \d+:\d\d, loss 0\.1", lines[-1])


def test_lines_are_rare_by_default_and_none_when_disabled(monkeypatch, capsys):
    monkeypatch.delenv("MMDD_LOG_EVERY", raising=False)
    for _ in progress_bar(range(50), desc="eval distilled seed 0", unit="epoch"):
        pass
    assert capsys.readouterr().err.splitlines()[0].startswith("eval distilled seed 0: epoch 50/50, ")  # the end only
    monkeypatch.setenv("MMDD_LOG_EVERY", "0")
    for _ in progress_bar(range(5), desc="quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("MMDD_LOG_EVERY", "soon")  # not a number: the default
    for _ in progress_bar(iter(range(5)), desc="x"):  # no length: no total, no ETA
        pass
    assert re.fullmatch(r"x: step 5, [\d.]+ (it/s|s/it)\n", capsys.readouterr().err)


def test_a_run_logs_its_progress_off_a_terminal(tiny_recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMDD_LOG_EVERY", "0")
    mmdd.distill(tiny_recipe, output_dir=tmp_path / "run", evaluate=False)
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("distill: ")]
    assert [l.split(",")[0] for l in lines] == [f"distill: step {i}/6" for i in range(1, 7)]
    assert all(re.search(r", loss [-\d.e+]+$", l) for l in lines)


def test_a_terminal_gets_tqdms_bar(monkeypatch):
    import io
    import sys

    from tqdm.std import tqdm

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress_bar(range(3), desc="distill", unit="step")
    assert isinstance(bar, tqdm) and not bar.disable
    assert list(bar) == [0, 1, 2]
    assert "distill" in sys.stderr.getvalue()
