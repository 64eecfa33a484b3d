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


# ------------------------------------------------------------------ precision
def test_precision_contexts():
    x, w = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)
    with speed.precision("fp32", "cpu"):
        assert torch.nn.functional.conv2d(x, w).dtype == torch.float32
    with speed.precision("bf16", "cpu"):
        assert torch.nn.functional.conv2d(x, w).dtype == torch.bfloat16
    assert torch.nn.functional.conv2d(x, w).dtype == torch.float32  # autocast ends with the block
    with speed.precision("tf32", "cpu"):  # nothing to switch on a CPU
        assert torch.nn.functional.conv2d(x, w).dtype == torch.float32
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with speed.precision("tf32", "cuda"):  # the flags are global: set for the block, restored after
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ValueError, match="precision must be one of"):
        with speed.precision("fp16", "cpu"):
            pass


def test_bf16_without_fast_kernels_warns_once_per_device_type(monkeypatch):
    monkeypatch.setattr(speed, "_fast_bf16", {"cpu": False})
    monkeypatch.setattr(speed, "_bf16_warned", set())
    with pytest.warns(UserWarning, match="no fast bfloat16 kernels .*AVX-512.*slower than fp32"), \
            speed.precision("bf16", "cpu"):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with speed.precision("bf16", "cpu"):  # said once
            pass
        monkeypatch.setattr(speed, "_fast_bf16", {"cpu": True})
        monkeypatch.setattr(speed, "_bf16_warned", set())
        with speed.precision("bf16", "cpu"):  # fast kernels: nothing to say
            pass
        with speed.precision("fp32", "cpu"):
            pass


def test_fast_bf16_and_the_cpu_description(monkeypatch):
    assert speed.fast_bf16("meta") is None  # no backend module with is_bf16_supported: not known
    monkeypatch.setattr(speed, "_fast_bf16", {})
    monkeypatch.setattr(torch.xpu, "is_available", lambda: False)
    assert speed.fast_bf16("xpu") is None  # a backend that is not available here: not known
    monkeypatch.setattr(speed, "_fast_bf16", {})
    monkeypatch.setattr(torch.xpu, "is_available", lambda: True)
    monkeypatch.setattr(torch.xpu, "is_bf16_supported", lambda: False)
    assert speed.fast_bf16("xpu") is False  # asked of the device's own backend, not a table of device types
    assert isinstance(speed.fast_bf16("cpu"), bool)
    described = speed.cpu_vector_features()
    assert "bf16 instructions:" in described
    flags = (speed.cpuinfo_field("flags") or "").split()
    assert ("avx512_bf16" in described) == ("avx512_bf16" in flags)
    assert speed.cpuinfo_field("no such field") is None


def test_precision_is_checked_in_the_recipe(tiny_recipe):
    from mmdd.core.errors import ConfigError
    from mmdd.run import load_config

    for key in ("precision=fp16", "evaluation.precision=half"):
        with pytest.raises(ConfigError, match="precision"):
            load_config(tiny_recipe, [key])


def test_bf16_evaluation_trains_and_scores_under_autocast_and_says_so():
    from mmdd.core.data import Split
    from mmdd.core.evaluation import ClassificationTask, EvalSet, Samples, describe_protocol, evaluate_set

    gen = make_generator(3)
    data = Samples(torch.randn(12, *SHAPE, generator=gen), torch.arange(12) % 4)
    test = Split(torch.randn(20, *SHAPE, generator=gen), torch.arange(20) % 4)
    seen = []

    class Spy(torch.nn.Module):  # records the dtype its convolution computes in, in training and scoring
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net.features[0](x)
            seen.append(out.dtype)
            return self.net(x)

    task = ClassificationTask("accuracy", {"accuracy": lambda logits, y: float((logits.argmax(-1) == y).float().mean())})
    results = {}
    for kind in ("fp32", "bf16"):
        seen.clear()
        cfg = EvalConfig(epochs=2, seeds=1, batch_size=6, precision=kind, batch_seeds="off", compile="off")
        results[kind] = evaluate_set(EvalSet(data), task, make_network=lambda g: Spy(_net()), cfg=cfg, test=test,
                                     protocol="p", device=torch.device("cpu"))
        expected = torch.bfloat16 if kind == "bf16" else torch.float32
        assert seen and all(d == expected for d in seen)  # 2 epochs × 2 steps, then the test pass
    assert 0.0 <= results["bf16"].mean <= 1.0
    text = describe_protocol(EvalConfig(precision="bf16"), "net", "aug")
    assert text.endswith("bf16 precision") and "precision" not in describe_protocol(EvalConfig(), "net", "aug")


def test_matching_runs_its_forward_passes_at_the_recipe_precision(tiny_recipe, tmp_path, monkeypatch):
    """precision=bf16: the matcher's loss is computed under autocast (its embeddings in bfloat16), the
    synthetic set stays float32, and the run finishes."""
    import mmdd
    from mmdd.core.matchers import distribution

    dtypes = []
    real_distance = distribution.DistributionMatcher.distance

    def spy(self, a, b):
        dtypes.append(b.dtype)
        return real_distance(self, a, b)

    monkeypatch.setattr(distribution.DistributionMatcher, "distance", spy)
    tiny_recipe["method"]["iterations"] = 2
    run = mmdd.distill(tiny_recipe, ["precision=bf16"], output_dir=tmp_path / "bf16", evaluate=False, progress=False)
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert run.synthetic.decode()[0].dtype == torch.float32
    dtypes.clear()
    mmdd.distill(tiny_recipe, output_dir=tmp_path / "fp32", evaluate=False, progress=False)
    assert set(dtypes) == {torch.float32}
