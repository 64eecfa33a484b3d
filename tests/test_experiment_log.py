"""Recipe section ``logging``: metrics.jsonl mirrored to TensorBoard (and W&B), renders as images."""

from __future__ import annotations

import json
import sys
import types

import pytest

from mmdd.core.errors import ConfigError
from mmdd.core.experiment_log import LoggingConfig, Sinks, open_sinks, scalars
from mmdd.raw_recipe import quick_check
from mmdd.run import distill, load_config


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def event_accumulator(log_dir):
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea_module.EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_scalars_flattens_and_keeps_numbers_only():
    record = {"step": 3, "loss": 0.25, "learned_lr": 1e-2, "stage": "main", "stage_step": 1,
              "ptm": {"resets": 2, "window": {"low": 0, "high": 4}}, "stopped": True}
    assert scalars(record) == {"loss": 0.25, "learned_lr": 0.01, "stage_step": 1.0, "ptm/resets": 2.0,
                               "ptm/window/low": 0.0, "ptm/window/high": 4.0, "stopped": 1.0}
    assert scalars({"step": 1, "nested": {"step": 5}}) == {"nested/step": 5.0}  # only the top-level step is the x axis


def test_nothing_switched_on_is_a_no_op(tmp_path):
    sinks = open_sinks(LoggingConfig(), tmp_path)
    assert isinstance(sinks, Sinks) and sinks.sinks == []
    sinks.log({"step": 1, "loss": 1.0})
    sinks.log_images(1, [])
    sinks.close()
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_scalars_equal_metrics_jsonl_across_a_resume(tiny_recipe, tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    tiny_recipe["logging"] = {"tensorboard": True}
    tiny_recipe["tracking"] = {"every": 3, "epochs": 1}
    tiny_recipe["evaluation"]["baselines"] = []
    run_dir = tmp_path / "run"
    distill(tiny_recipe, output_dir=run_dir, stop_after=4, evaluate=False, progress=False)
    # a session killed after its checkpoint at step 4 leaves events past it that metrics.jsonl drops on resume
    orphan = SummaryWriter(str(run_dir / "tensorboard"))
    for step in (5, 6):
        orphan.add_scalar("loss", 999.0, step)
    orphan.close()
    distill(tiny_recipe, output_dir=run_dir, resume=True, evaluate=False, progress=False)

    acc = event_accumulator(run_dir / "tensorboard")
    logged = records(run_dir)
    loss = {r["step"]: r["loss"] for r in logged if "loss" in r}
    validation = {r["step"]: r["validation"] for r in logged if "validation" in r}
    assert sorted(loss) == [1, 2, 3, 4, 5, 6] and sorted(validation) == [0, 3, 6]
    tb_loss = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert [s for s, _ in tb_loss] == sorted(loss)  # each step once: the orphaned 999s are purged
    assert all(value == pytest.approx(loss[s], rel=1e-6) for s, value in tb_loss)
    assert {e.step: pytest.approx(e.value, rel=1e-6) for e in acc.Scalars("validation")} == validation
    assert "renders/samples.png" in acc.Tags()["images"]  # the renders, at the final step
    image = acc.Images("renders/samples.png")[-1]
    assert image.step == 6 and image.width > 0


def test_wandb_requested_but_missing_is_refused_before_work(tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb → ImportError, installed or not
    tiny_recipe["logging"] = {"wandb": True}
    with pytest.raises(ConfigError, match=r"logging.wandb is true but the wandb package is not installed: "
                                          r"pip install wandb"):
        distill(tiny_recipe, output_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="pip install wandb"):
        open_sinks(LoggingConfig(wandb=True), tmp_path)


class FakeWandb(types.ModuleType):
    """Records what the W&B sink asks of ``wandb``."""

    def __init__(self):
        super().__init__("wandb")
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        fake = self

        class Run:
            def log(self, values, step):
                fake.calls.append(("log", values, step))

            def finish(self):
                fake.calls.append(("finish",))

        return Run()

    def Image(self, path):  # noqa: N802 (wandb's name)
        return ("image", path)


@pytest.mark.parametrize("env_mode, expected", [(None, "offline"), ("online", None)])
def test_wandb_sink_runs_offline_unless_wandb_mode_is_set(tmp_path, monkeypatch, env_mode, expected):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    if env_mode is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env_mode)
    sinks = open_sinks(LoggingConfig(wandb=True, wandb_project="p"), tmp_path, name="tiny", config={"seed": 0})
    sinks.log({"step": 2, "loss": 0.5, "ptm": {"resets": 1}, "stage": "main"})
    sinks.close()
    sinks.close()  # twice is harmless
    init = fake.calls[0][1]
    assert init["mode"] == expected and init["project"] == "p" and init["dir"] == str(tmp_path)
    assert fake.calls[1:] == [("log", {"loss": 0.5, "ptm/resets": 1.0}, 2), ("finish",)]


def test_logging_section_is_typed_and_checked(tiny_recipe):
    cfg = load_config(tiny_recipe)
    assert (cfg.logging.tensorboard, cfg.logging.wandb, cfg.logging.wandb_project) == (False, False, "mmdd")
    assert load_config(tiny_recipe, ["logging.tensorboard=true"]).logging.tensorboard is True
    for check in (lambda r: load_config(r), quick_check):
        recipe = {**tiny_recipe, "logging": {"tensorbord": True}}
        with pytest.raises(ConfigError, match=r"unknown key 'logging.tensorbord'; did you mean 'logging.tensorboard'"):
            check(recipe)
    with pytest.raises(ConfigError, match=r"logging.wandb: expected bool, got 'yes'"):
        load_config(tiny_recipe, ["logging.wandb='yes'"])
    with pytest.raises(ConfigError, match=r"logging.wandb_project must name"):
        load_config(tiny_recipe, ["logging.wandb_project=' '"])
