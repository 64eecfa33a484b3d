"""Distillation across processes: K·W draws per iteration, rank 0 writes, resume, refused methods.

Two-rank runs are two gloo processes forked from this one (``torch.multiprocessing``, fork: no
second import of torch), each given the environment torchrun gives its workers (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT), and each running the command line ``mmdd run`` as a
torchrun worker would. One slow test launches the real ``torchrun``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

import mmdd
import mmdd.cli
import mmdd.run  # noqa: F401  (imported here once: the forked ranks inherit it instead of importing it twice)
from mmdd.core import distributed
from mmdd.core.data import ClassIndex, Split
from mmdd.core.distill import make_optimizer, run_loop
from mmdd.core.distributed import Draws, check_identical
from mmdd.core.errors import ConfigError, RunError
from mmdd.core.matchers.base import Matcher
from mmdd.core.matchers.distribution import DMConfig
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet

from conftest import TINY

DM = {**copy.deepcopy(TINY), "evaluation": {"epochs": 1, "seeds": 1, "baselines": []}}
DM["method"]["iterations"] = 6  # checkpoint.every 2

MTT = {
    "name": "tiny-mtt", "domain": "image", "seed": 0,
    "dataset": {"name": "digits", "train_per_class": 20},
    "budget": {"ipc": 1},
    "network": {"name": "convnet", "depth": 1, "width": 4},
    "synthetic": {"learn_lr": True, "lr_init": 0.01},
    "method": {"name": "mtt", "iterations": 4, "syn_steps": 3, "expert_epochs": 1, "max_start_epoch": 2,
               "lr_inputs": 10.0, "lr_lr": 1e-5, "solver": "exact", "start_schedule": "expanding",
               "initial_max_start_epoch": 1, "expansion_iterations": 2},
    "experts": {"num_experts": 3, "epochs": 2, "batch_size": 64},
    "evaluation": {"epochs": 1, "seeds": 1, "baselines": []},
    "checkpoint": {"every": 2},
}


# ------------------------------------------------------------------ two forked gloo ranks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, scratch: str, argv: list[str], prepare=None) -> None:
    """One forked worker, with torchrun's environment; runs ``mmdd`` with ``argv`` in ``scratch`` and
    records its exit code and what it printed (``prepare(rank)`` first, e.g. a patch)."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if prepare is not None:
        prepare(rank)
    os.chdir(scratch)  # anything a rank writes outside the run directory lands here
    from mmdd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    Path(scratch).parent.joinpath(f"rank{rank}.json").write_text(
        json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}))


def run_ranks(tmp_path: Path, argv: list[str], world: int = 2, timeout: float = 180, prepare=None) -> list[dict]:
    """Run ``mmdd ARGV`` on ``world`` forked gloo ranks; return each rank's exit code and output."""
    scratch = tmp_path / "cwd"
    scratch.mkdir(exist_ok=True)
    for old in tmp_path.glob("rank*.json"):
        old.unlink()
    ctx = mp.start_processes(_rank_main, args=(world, free_port(), str(scratch), argv, prepare), nprocs=world,
                             join=False, start_method="fork")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {world} ranks did not finish within {timeout} s")
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


def write_recipe(tmp_path: Path, recipe: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "distilled.safetensors"))


@pytest.fixture(scope="module")
def dm_two_ranks(tmp_path_factory):
    """A 6-step DM run on 2 ranks (1 draw each), started through the command line."""
    tmp = tmp_path_factory.mktemp("dm2")
    recipe = write_recipe(tmp, DM)
    ranks = run_ranks(tmp, ["run", str(recipe), f"output_dir={tmp / 'run'}", "--no-eval", "--quiet"])
    ranks[0]["beside"] = sorted(p.name for p in tmp.iterdir())  # before later tests add theirs
    ranks[0]["cwd"] = sorted(p.name for p in (tmp / "cwd").iterdir())
    return tmp, recipe, ranks


def test_two_ranks_equal_one_process_with_two_draws_per_rank(dm_two_ranks, tmp_path):
    tmp, _, ranks = dm_two_ranks
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    one = mmdd.distill(DM, ["distributed.draws_per_rank=2"], output_dir=tmp_path / "one", evaluate=False,
                       progress=False)
    two = tensors(tmp / "run")
    torch.testing.assert_close(two["inputs"], one.synthetic.inputs.detach(), rtol=1e-5, atol=1e-6)
    assert torch.equal(two["labels"], one.synthetic.labels)
    assert losses(tmp / "run") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    # the draws are not the plain run's: one draw from the run's generator gives another set
    plain = mmdd.distill(DM, output_dir=tmp_path / "plain", evaluate=False, progress=False)
    assert not torch.allclose(plain.synthetic.inputs.detach(), two["inputs"], atol=1e-3)
    manifest = json.loads((tmp / "run" / "manifest.json").read_text())
    assert manifest["distributed"] == {"world_size": 2, "draws_per_rank": 1, "draws_per_iteration": 2}
    assert one.manifest["distributed"] == {"world_size": 1, "draws_per_rank": 2, "draws_per_iteration": 2}
    assert plain.manifest["distributed"] == {"world_size": 1, "draws_per_rank": 1, "draws_per_iteration": 1}


def test_only_rank_zero_writes_and_prints(dm_two_ranks, tmp_path):
    tmp, _, ranks = dm_two_ranks
    single = mmdd.distill(DM, output_dir=tmp_path / "single", evaluate=False, progress=False)
    written = sorted(p.relative_to(tmp / "run").as_posix() for p in (tmp / "run").rglob("*"))
    assert written == sorted(p.relative_to(single.dir).as_posix() for p in single.dir.rglob("*"))
    assert ".mmdd.lock" not in written and not [n for n in written if n.endswith(".tmp")]
    assert ranks[0]["beside"] == ["cwd", "rank0.json", "rank1.json", "recipe.yaml", "run"]
    assert ranks[0]["cwd"] == []  # nothing beside the run directory, nothing in the ranks' working directory
    assert "run directory:" in ranks[0]["stdout"] and ranks[1]["stdout"] == ""
    steps = [json.loads(line)["step"] for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # one record per step: rank 0's


def test_resume_on_two_ranks_equals_the_uninterrupted_run(dm_two_ranks):
    tmp, recipe, _ = dm_two_ranks
    part = tmp / "part"
    ranks = run_ranks(tmp, ["run", str(recipe), f"output_dir={part}", "--no-eval", "--quiet", "--stop-after", "3"])
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    assert "stopped after step 3" in ranks[0]["stdout"] and ranks[1]["stdout"] == ""
    assert json.loads((part / "manifest.json").read_text())["status"] == "interrupted"
    ranks = run_ranks(tmp, ["run", str(recipe), f"output_dir={part}", "--no-eval", "--quiet", "--resume"])
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    assert torch.equal(tensors(part)["inputs"], tensors(tmp / "run")["inputs"])
    assert losses(part) == losses(tmp / "run")
    # a checkpoint of 2 processes is not resumed by 1
    with pytest.raises(RunError, match=r"started with 2 process\(es\).*nproc-per-node 2"):
        mmdd.distill(DM, output_dir=part, resume=True, evaluate=False, progress=False)


def test_rank_zeros_refusal_reaches_every_rank(dm_two_ranks):
    """Rank 0 prepares the directory; its error (a run is there already) stops every rank with its message."""
    tmp, recipe, _ = dm_two_ranks
    before = (tmp / "run" / "manifest.json").read_text()
    ranks = run_ranks(tmp, ["run", str(recipe), f"output_dir={tmp / 'run'}", "--no-eval", "--quiet"], timeout=60)
    assert [r["code"] for r in ranks] == [2, 2]
    assert "already holds a run" in ranks[0]["stderr"]
    assert "rank 0 stopped (RunError)" in ranks[1]["stderr"] and "already holds a run" in ranks[1]["stderr"]
    assert (tmp / "run" / "manifest.json").read_text() == before


def test_trajectory_matching_on_two_ranks_equals_one_process_with_two_draws(tmp_path):
    recipe = {**copy.deepcopy(MTT), "experts": {**MTT["experts"], "dir": str(tmp_path / "experts")}}
    from mmdd.experts import generate_experts

    generate_experts(recipe, progress=False)
    ranks = run_ranks(tmp_path, ["run", str(write_recipe(tmp_path, recipe)), f"output_dir={tmp_path / 'two'}",
                                 "--no-eval", "--quiet"])
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    one = mmdd.distill(recipe, ["distributed.draws_per_rank=2"], output_dir=tmp_path / "one", evaluate=False,
                       progress=False)
    assert len(losses(tmp_path / "two")) == 4
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    two = tensors(tmp_path / "two")
    torch.testing.assert_close(two["inputs"], one.synthetic.inputs.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(two["log_lr"], one.synthetic.log_lr.detach(), rtol=1e-6, atol=1e-7)
    # the matcher counted 4 iterations, not 8 draws (DATM's expanding window reads it)
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert state["matcher"] == {"iteration": 4}


@pytest.mark.filterwarnings("ignore:the test split holds only")
def test_video_stages_on_two_ranks_equal_one_process_with_two_draws(tmp_path):
    """The static stage (DM on frames) then the main stage (DM on clips: dynamic memories and the
    integrator, several parameter groups), across a stage boundary, with 2 draws per iteration."""
    from video_fixtures import write_ucf101

    write_ucf101(tmp_path / "ucf", clips=3, size=32)
    ucf = tmp_path / "ucf"
    recipe = {
        "name": "video-test", "domain": "video", "seed": 3,
        "dataset": {"name": "ucf101", "root": str(ucf / "UCF-101"), "split_dir": str(ucf / "ucfTrainTestlist"),
                    "frames": 8, "size": 16, "grayscale": True, "cache_dir": str(tmp_path / "cache")},
        "network": {"name": "convnet", "depth": 2, "width": 8},
        "budget": {"ipc": 1},
        "stages": {"static": {"method": {"name": "dm", "iterations": 2, "lr_inputs": 1.0, "batch_real": 8}}},
        "method": {"name": "dm", "iterations": 2, "lr_inputs": 1.0, "batch_real": 8},
        "synthetic": {"init": "real"},
        "evaluation": {"epochs": 1, "seeds": 1, "baselines": []},
    }
    one = mmdd.distill(recipe, ["distributed.draws_per_rank=2"], output_dir=tmp_path / "one", evaluate=False,
                       progress=False)  # first: the clips' cache is written by one process
    ranks = run_ranks(tmp_path, ["run", str(write_recipe(tmp_path, recipe)), f"output_dir={tmp_path / 'two'}",
                                 "--no-eval", "--quiet"])
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    two = tensors(tmp_path / "two")
    mine = one.synthetic.state_dict()
    assert set(two) == set(mine) and len(two) > 3  # stills, dynamic memories, the integrator's weights, ...
    for name in two:
        torch.testing.assert_close(two[name], mine[name].detach(), rtol=1e-5, atol=1e-6, msg=name)
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    assert len(losses(tmp_path / "two")) == 4


def _stop_at_step_two(rank: int) -> None:
    """In a forked rank: validation tracking's early-stop test says stop at global step 2."""
    from mmdd.core.tracking import ValidationTracker

    def should_stop(self, step):
        if step == 2:
            self.stopped_at, self.reason = step, "stopped by the test"
        return step == 2

    ValidationTracker.should_stop = should_stop


def test_rank_zeros_validation_tracking_stops_every_rank(tmp_path):
    recipe = {**copy.deepcopy(DM), "tracking": {"every": 1, "epochs": 1, "early_stop": True}}
    ranks = run_ranks(tmp_path, ["run", str(write_recipe(tmp_path, recipe)), f"output_dir={tmp_path / 'run'}",
                                 "--no-eval", "--quiet"], timeout=90, prepare=_stop_at_step_two)
    assert [r["code"] for r in ranks] == [0, 0], [r["stderr"][-2000:] for r in ranks]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["steps_completed"] == 2
    assert manifest["tracking"]["stopped_at"] == 2 and [p["step"] for p in manifest["tracking"]["curve"]] == [0, 1, 2]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], "validation" in r) for r in records] == [(0, True), (1, False), (1, True), (2, False),
                                                                 (2, True)]


def test_processes_holding_different_sets_are_refused(tmp_path):
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    ctx = mp.start_processes(_different_sets, args=(free_port(), str(tmp_path)), nprocs=2, join=False,
                             start_method="fork")
    deadline = time.monotonic() + 60
    while not ctx.join(timeout=1):
        assert time.monotonic() < deadline, "the ranks did not finish"
    for r in range(2):
        message = (tmp_path / f"error{r}.txt").read_text()
        assert "do not hold the same synthetic set" in message and "rank 1 differs from rank 0 in ['b']" in message


def test_torchrun_on_an_unavailable_accelerator_or_an_unknown_device_type_is_a_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="'cuda' was asked for but cuda is not available; use device=cpu"):
        distributed.start_processes("cuda")
    with pytest.raises(ConfigError, match="'meta' under torchrun .2 processes.: expected cpu .gloo. or cuda .nccl."):
        distributed.start_processes("meta")


def _different_sets(rank: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    processes = distributed.start_processes("cpu")
    try:
        check_identical({"a": torch.ones(3), "b": torch.full((2,), float(rank))}, "synthetic set")
    except RunError as exc:
        Path(out, f"error{rank}.txt").write_text(str(exc))
    finally:
        processes.close()


# ------------------------------------------------------------------ one process: draws and iterations


class Counting(Matcher):
    """A matcher that records what the loop asks of it."""

    def __init__(self):
        self.begun, self.ended, self.draw_seeds = 0, 0, []

    def begin_iteration(self, syn, real, gen):
        self.begun += 1

    def draw(self, syn, real, gen):
        self.draw_seeds.append(gen.initial_seed())
        return (syn.inputs ** 2).sum()

    def end_iteration(self):
        self.ended += 1


def _noise_set() -> PixelSet:
    return PixelSet(torch.randn(4, 1, 2, 2, generator=make_generator(1)), 2, 2)


def _real() -> ClassIndex:
    return ClassIndex(Split(torch.randn(8, 1, 2, 2, generator=make_generator(2)), torch.arange(8) % 2), 2)


def test_an_iteration_of_several_draws_begins_and_ends_once():
    syn, matcher = _noise_set(), Counting()
    draws = Draws(seed=5, per_rank=3, offset=10)
    run_loop(syn, matcher, _real(), make_optimizer(syn, DMConfig(lr_inputs=0.1)), make_generator(0), 4,
             draws=draws, progress=False)
    assert (matcher.begun, matcher.ended, len(matcher.draw_seeds)) == (4, 4, 12)
    assert len(set(matcher.draw_seeds)) == 12  # every draw of every step its own generator
    # three ranks of one draw each compute, together, exactly the draws of one process with three
    assert matcher.draw_seeds == [g.initial_seed() for step in range(1, 5) for r in range(3)
                                  for g in Draws(5, 1, r, 3, 10).generators(step)]
    assert Draws(5, 2, 1, 2).slots == range(2, 4)
    assert Draws(5, 2, 0, 2).shared_generator(3).initial_seed() == Draws(5, 2, 1, 2).shared_generator(3).initial_seed()


def test_progressive_matching_advances_once_per_iteration_and_mitigates_once(tmp_path, monkeypatch):
    """PTM with two draws per iteration: both draws match the same segment, the schedule moves once
    per iteration, and overlap mitigation runs once per due iteration, with the shared generator."""
    from test_trajectory import CLASSES, SHAPE, build_buffer, make_net

    from mmdd.core.matchers.base import MatchingContext
    from mmdd.domains.medical import ptm

    root = tmp_path / "experts"
    root.mkdir()
    buffer = build_buffer(root, num_experts=2, epochs=4)
    cfg = ptm.PTMConfig(iterations=4, syn_steps=1, initial_end_epoch=1, final_end_epoch=4, overlap_every=2,
                        lr_inputs=1.0)
    matcher = ptm.ProgressiveTrajectoryMatcher(cfg, MatchingContext(make_net, None, torch.device("cpu"), buffer))
    seen, mitigations = [], []
    original = buffer.snapshot
    monkeypatch.setattr(buffer, "snapshot", lambda k, e: seen.append(e) or original(k, e))
    monkeypatch.setattr(ptm, "mitigate_overlap", lambda syn, real, gen, *a: mitigations.append(
        (matcher.iteration, gen.initial_seed())) or torch.empty(0, dtype=torch.long))
    syn = PixelSet(torch.randn(CLASSES * 2, *SHAPE, generator=make_generator(4)), CLASSES, 2, learn_lr=True)
    optimizer = make_optimizer(syn, cfg)
    matcher.bind_optimizer(optimizer)
    draws = Draws(seed=0, per_rank=2)
    run_loop(syn, matcher, None, optimizer, make_generator(0), 4, draws=draws, progress=False)
    assert seen == [0, 1, 0, 1, 0, 2, 0, 2, 0, 3, 0, 3, 0, 4, 0, 4]  # (start, end) per draw, two draws per iteration
    assert matcher.iteration == 4
    assert mitigations == [(2, draws.shared_generator(3).initial_seed())]  # before iteration 2's draws (step 3)


def test_a_single_draw_is_the_plain_iteration():
    """K·W = 1: the matcher is called with the run's generator, exactly as without draws."""
    cfg = DMConfig(batch_real=4, lr_inputs=1.0)

    def run(draws):
        syn = _noise_set()
        from mmdd.core.matchers.distribution import DistributionMatcher
        from mmdd.core.matchers.base import MatchingContext
        from mmdd.core.networks import ConvNetConfig, create_network

        ctx = MatchingContext(lambda gen: create_network(ConvNetConfig(depth=1, width=4), (1, 2, 2), 2, gen), None,
                              torch.device("cpu"))
        run_loop(syn, DistributionMatcher(cfg, ctx), _real(), make_optimizer(syn, cfg), make_generator(3), 3,
                 draws=draws, progress=False)
        return syn.inputs.detach()

    assert torch.equal(run(None), run(Draws(seed=0)))
    assert not torch.equal(run(None), run(Draws(seed=0, per_rank=2)))


def test_a_matcher_with_only_a_whole_iteration_is_refused_several_draws():
    class Whole:
        def __call__(self, syn, real, gen):
            return (syn.inputs ** 2).sum()

    syn = _noise_set()
    with pytest.raises(RunError, match="cannot average several draws per iteration"):
        run_loop(syn, Whole(), _real(), make_optimizer(syn, DMConfig(lr_inputs=0.1)), make_generator(0), 2,
                 draws=Draws(seed=0, per_rank=2), progress=False)


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_gradient_matching_is_refused_with_several_draws(method, tmp_path):
    recipe = {**copy.deepcopy(DM), "method": {"name": method, "iterations": 2, "batch_real": 16}}
    with pytest.raises(ConfigError, match=rf"method.name: '{method}' is not supported with 2 draws per iteration "
                                          r"\(1 torchrun process\(es\) × distributed.draws_per_rank=2\): it keeps "
                                          r"one network and its optimizer"):
        mmdd.distill(recipe, ["distributed.draws_per_rank=2"], output_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before anything is written
    from mmdd.run import check_draws, load_config

    with pytest.raises(ConfigError, match=r"\(2 torchrun process\(es\) × distributed.draws_per_rank=1\)"):
        check_draws(load_config(recipe), world_size=2)
    check_draws(load_config(recipe), world_size=1)  # one draw: DC as always


def test_an_earlier_stage_with_gradient_matching_is_refused_too():
    from mmdd.run import check_draws, load_config

    from mmdd.config import StageConfig
    from mmdd.core.matchers.gradient import GMConfig

    cfg = load_config(DM)
    cfg.stages = {"static": StageConfig(method=GMConfig(name="dsa"))}  # as video's static stage could say
    with pytest.raises(ConfigError, match="stages.static.method.name: 'dsa'"):
        check_draws(cfg, world_size=2)


def test_draws_per_rank_must_be_positive():
    from mmdd.run import load_config

    with pytest.raises(ConfigError, match="distributed.draws_per_rank must be ≥ 1"):
        load_config(DM, ["distributed.draws_per_rank=0"])


# ------------------------------------------------------------------ the real torchrun


@pytest.mark.slow
def test_torchrun_launches_mmdd_run(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    recipe = write_recipe(tmp_path, DM)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "mmdd.cli",
                          "run", str(recipe), f"output_dir={tmp_path / 'run'}", "--no-eval", "--quiet"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("run directory:") == 1  # rank 0 alone prints
    one = mmdd.distill(DM, ["distributed.draws_per_rank=2"], output_dir=tmp_path / "one", evaluate=False,
                       progress=False)
    torch.testing.assert_close(tensors(tmp_path / "run")["inputs"], one.synthetic.inputs.detach(), rtol=1e-5,
                               atol=1e-6)
