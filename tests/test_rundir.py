"""A run directory you can trust: faults injected on purpose, the outcome asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

import mmdd
from mmdd.core import rundir
from mmdd.core.errors import RunError


def _stopped(recipe: dict, run_dir, steps: int = 3):
    return mmdd.distill(recipe, output_dir=run_dir, stop_after=steps, evaluate=False, progress=False)


def _tensors(run_dir) -> dict:
    return load_file(str(run_dir / rundir.DISTILLED))


def _same_tensors(a, b) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return set(ta) == set(tb) and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.fixture
def whole(tiny_recipe, tmp_path):
    return mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False).dir


def test_a_run_without_evaluation_is_complete_then_evaluated_and_loaded(whole):
    m = json.loads((whole / rundir.MANIFEST).read_text())
    assert m["status"] == "complete" and m["evaluation"] == {}
    assert len(mmdd.load(whole)) == 20
    run = mmdd.evaluate(whole, seeds=1, progress=False)
    assert set(run.manifest["evaluation"]) == {"distilled", "random"}
    assert not (whole / rundir.LOCK).exists()  # released after each command


def test_an_interrupted_evaluation_keeps_the_finished_sets(whole, monkeypatch):
    import mmdd.run as run_module

    real = run_module.evaluate_set
    calls = []

    def second_set_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "evaluate_set", second_set_interrupted)
    with pytest.raises(KeyboardInterrupt):
        mmdd.evaluate(whole, seeds=1, progress=False)
    m = json.loads((whole / rundir.MANIFEST).read_text())
    assert list(m["evaluation"]) == ["distilled"] and m["status"] == "complete"


def _hold_lock(folder, command: str) -> subprocess.Popen:
    """Another process that takes ``folder``'s lock and keeps it until killed."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from mmdd.core.rundir import RunLock
        RunLock({str(folder)!r}, {command!r}).__enter__()
        print("held", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_is_refused_and_a_dead_holder_is_taken_over(tiny_recipe, tmp_path):
    run_dir = tmp_path / "busy"
    holder = _hold_lock(run_dir, "mmdd run")
    try:
        with pytest.raises(RunError, match=rf"in use by another mmdd process \(mmdd run, pid {holder.pid}"):
            mmdd.distill(tiny_recipe, output_dir=run_dir, evaluate=False, progress=False)
        assert not (run_dir / rundir.METRICS).exists()  # nothing written beside the other process
    finally:
        holder.kill()
        holder.wait()
    assert (run_dir / rundir.LOCK).exists()  # left by the killed process: stale
    run = mmdd.distill(tiny_recipe, output_dir=run_dir, evaluate=False, progress=False)
    assert run.manifest["status"] == "complete" and not (run_dir / rundir.LOCK).exists()


def test_overwrite_removes_only_what_mmdd_wrote(tiny_recipe, whole):
    (whole / "notes.txt").write_text("mine")
    (whole / "my_plots").mkdir()
    (whole / "my_plots" / "a.png").write_bytes(b"png")
    mmdd.distill(tiny_recipe, ["method.iterations=2"], output_dir=whole, overwrite=True, evaluate=False,
                 progress=False)
    assert (whole / "notes.txt").read_text() == "mine" and (whole / "my_plots" / "a.png").exists()
    assert json.loads((whole / rundir.MANIFEST).read_text())["steps_completed"] == 2


def test_a_truncated_tensor_file_is_named_in_one_line(whole):
    path = whole / rundir.DISTILLED
    path.write_bytes(path.read_bytes()[:100])
    for call in (lambda: mmdd.load(whole), lambda: mmdd.evaluate(whole, seeds=1, progress=False)):
        with pytest.raises(RunError) as info:
            call()
        text = str(info.value)
        assert str(path) in text and "damaged" in text and "--overwrite" in text and "\n" not in text


def test_a_damaged_manifest_is_named_in_one_line(whole):
    (whole / rundir.MANIFEST).write_text('{"status": "compl')
    with pytest.raises(RunError) as info:
        mmdd.load(whole)
    assert str(whole / rundir.MANIFEST) in str(info.value) and "--overwrite" in str(info.value)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tiny_recipe, tmp_path):
    whole = mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False).dir
    part = tmp_path / "part"
    _stopped(tiny_recipe, part, steps=4)  # checkpoints at steps 2 and 4: checkpoint.pt = 4, checkpoint.prev.pt = 2
    assert torch.load(part / rundir.PREVIOUS_CHECKPOINT, weights_only=True)["step"] == 2
    latest = part / rundir.CHECKPOINT
    latest.write_bytes(latest.read_bytes()[:64])
    with pytest.warns(UserWarning, match="previous checkpoint"):
        resumed = mmdd.distill(tiny_recipe, output_dir=part, resume=True, evaluate=False, progress=False)
    assert resumed.manifest["steps_completed"] == 6 and _same_tensors(whole, part)
    steps = [json.loads(line)["step"] for line in (part / rundir.METRICS).read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_damaged_checkpoints_give_one_line(tiny_recipe, tmp_path):
    part = tmp_path / "part"
    _stopped(tiny_recipe, part, steps=2)
    (part / rundir.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(RunError) as info:
        mmdd.distill(tiny_recipe, output_dir=part, resume=True, evaluate=False, progress=False)
    assert "checkpoint.pt is damaged" in str(info.value) and "--overwrite" in str(info.value)


def test_a_torn_metrics_line_and_stale_temp_files_do_not_stop_a_resume(tiny_recipe, tmp_path):
    whole = mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False).dir
    part = tmp_path / "part"
    _stopped(tiny_recipe, part, steps=4)
    with open(part / rundir.METRICS, "a") as f:
        f.write('{"step": 5, "lo')  # a kill mid-append
    stale = part / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half")
    mmdd.distill(tiny_recipe, output_dir=part, resume=True, evaluate=False, progress=False)
    assert not stale.exists() and _same_tensors(whole, part)
    steps = [json.loads(line)["step"] for line in (part / rundir.METRICS).read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_moved_run_resumes_bit_identically(tiny_recipe, tmp_path):
    whole = mmdd.distill(tiny_recipe, output_dir=tmp_path / "whole", evaluate=False, progress=False).dir
    _stopped(tiny_recipe, tmp_path / "before", steps=3)
    moved = tmp_path / "after"
    shutil.move(tmp_path / "before", moved)
    mmdd.distill(tiny_recipe, output_dir=moved, resume=True, evaluate=False, progress=False)
    assert _same_tensors(whole, moved)


def test_expert_generation_takes_the_buffer_lock(tiny_recipe, tmp_path):
    from mmdd.experts import generate_experts

    tiny_recipe["experts"] = {"dir": str(tmp_path / "experts"), "num_experts": 1, "epochs": 1}
    holder = _hold_lock(tmp_path / "experts", "mmdd experts")
    try:
        with pytest.raises(RunError, match="in use by another mmdd process \\(mmdd experts"):
            generate_experts(tiny_recipe, progress=False)
    finally:
        holder.kill()
        holder.wait()
    buffer = generate_experts(tiny_recipe, progress=False)  # the dead holder's lock is taken over
    assert buffer.experts == [0] and not (tmp_path / "experts" / rundir.LOCK).exists()
