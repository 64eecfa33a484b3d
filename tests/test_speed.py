"""Process-level speed settings (core/speed.py): the host allocator and compiled training steps."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from mmdd.core import speed
from mmdd.core.evaluation import EvalConfig, train_model
from mmdd.core.networks import ConvNetConfig, create_network
from mmdd.core.seeding import make_generator
from mmdd.core.trajectories import ExpertsConfig

SHAPE = (1, 12, 12)


def _net(seed: int = 0):
    return create_network(ConvNetConfig(depth=2, width=8), SHAPE, 4, make_generator(seed))


def _run(code: str, **env) -> str:
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env},
                         check=True)
    return out.stdout.strip()


def test_allocator_is_tuned_once_per_process_and_can_be_left_alone():
    code = ("from mmdd.core import speed; a = speed.allocator_state(); b = speed.tune_host_allocator(); "
            "c = speed.tune_host_allocator(); print(a, b, c)")
    before, first, again = _run(code, MMDD_HOST_ALLOCATOR="tuned").split()
    assert before == "untouched"
    assert first in ("tuned", "unavailable") and again == first
    if sys.platform.startswith("linux"):
        assert first == "tuned"  # glibc accepts the thresholds
    assert _run(code, MMDD_HOST_ALLOCATOR="system").split()[1:] == ["system", "system"]
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MMDD_HOST_ALLOCATOR": "fast", "PATH": ""})
    assert bad.returncode != 0 and "MMDD_HOST_ALLOCATOR must be 'tuned' or 'system'" in bad.stderr


def test_building_a_workspace_tunes_the_allocator():
    code = ("from mmdd.run import load_config, setup; "
            "setup(load_config('quickstart', ['dataset.train_per_class=5', 'budget.ipc=1'])); "
            "from mmdd.core import speed; print(speed.allocator_state())")
    assert _run(code, MMDD_HOST_ALLOCATOR="system") == "system"


def test_compile_modes():
    assert not speed.compile_wanted("auto", "cpu") and speed.compile_wanted("auto", "cuda:0")
    assert speed.compile_wanted("on", "cpu") and not speed.compile_wanted("off", "cuda")
    net = _net()
    assert speed.compiled(net, "off", "cpu") is net
    assert speed.compiled(net, "auto", "cpu") is net
    with pytest.raises(ValueError, match="compile must be one of"):
        speed.compile_wanted("yes", "cpu")
    assert "evaluation.compile must be one of" in EvalConfig(compile="always").check("evaluation")[0]
    assert "experts.compile must be one of" in ExpertsConfig(compile="always").check("experts")[0]


def test_a_failing_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    import torch._dynamo.exc as dynamo_exc

    def broken_compile(module, **kwargs):
        def call(*args, **kw):
            raise dynamo_exc.BackendCompilerFailed.__new__(dynamo_exc.BackendCompilerFailed)
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(speed, "_compile_warned", set())
    x = torch.randn(6, *SHAPE)
    eager = _net()
    wrapped = speed.compiled(eager, "on", "cpu", what="a test")
    with pytest.warns(UserWarning, match="torch.compile of a test is unavailable"):
        out = wrapped(x)
    assert torch.equal(out, eager(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrapped(x)  # warned once; eager from now on
    assert wrapped.feature_dim == eager.feature_dim and torch.equal(wrapped.embed(x), eager.embed(x))
    assert list(wrapped.parameters()) == list(eager.parameters())


def test_errors_of_the_network_itself_are_not_swallowed(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, **kw: module)
    wrapped = speed.compiled(_net(), "on", "cpu")
    with pytest.raises(RuntimeError, match="channels|shape|size"):
        wrapped(torch.randn(2, 3, 12, 12))  # wrong channel count: a user error, raised as is


@pytest.mark.slow
def test_compiled_evaluation_training_matches_eager():
    """Real torch.compile (needs a C++ compiler on the CPU; about a minute cold)."""
    x, y = torch.randn(16, *SHAPE), torch.arange(4).repeat(4)
    results = []
    for mode in ("off", "on"):
        cfg = EvalConfig(epochs=3, batch_size=8, augment=False, compile=mode)
        net = train_model(_net(), x, y, cfg, make_generator(1), None, torch.device("cpu"))
        results.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-5)
