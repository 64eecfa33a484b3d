"""Recipes with a ``base:``: chains, merging, errors, and the shipped medical recipes built on bases."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import TINY
from mmdd.catalog import list_recipes, merge_recipe
from mmdd.config import read_yaml
from mmdd.core.errors import ConfigError
from mmdd.run import experts_dir, load_config


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error(recipe, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(recipe, overrides)
    return str(info.value)


@pytest.fixture
def base_file(tmp_path) -> Path:
    """The tiny recipe, less its name, as ``_base/tiny.yaml``."""
    data = {k: v for k, v in copy.deepcopy(TINY).items() if k != "name"}
    data["profiles"] = {"cpu": {"network.width": 4, "method.iterations": 2}, "fast": {"evaluation.epochs": 1}}
    return write(tmp_path / "_base" / "tiny.yaml", data)


def test_chain_of_bases_relative_to_each_file(tmp_path, base_file):
    write(tmp_path / "_base" / "mid.yaml", {"base": "tiny.yaml", "seed": 3, "method": {"iterations": 4}})
    child = write(tmp_path / "sub" / "child.yaml", {"base": "../_base/mid.yaml", "name": "child", "seed": 5})
    raw = read_yaml(child)
    assert "base" not in raw
    cfg = load_config(child)
    assert (cfg.name, cfg.seed, cfg.method.iterations, cfg.method.batch_real) == ("child", 5, 4, 16)
    assert cfg.description == TINY["description"]  # from the base, the child giving none


def test_nested_key_override_keeps_the_rest_of_the_section(tmp_path, base_file):
    child = write(tmp_path / "child.yaml", {"base": "_base/tiny.yaml", "name": "c", "network": {"width": 16}})
    cfg = load_config(child)
    assert (cfg.network.name, cfg.network.depth, cfg.network.width) == ("convnet", 1, 16)


def test_a_section_with_another_name_replaces_the_base_section(tmp_path, base_file):
    # the base's dm options (batch_real) must not leak into mtt, which has no such option
    child = write(tmp_path / "child.yaml",
                  {"base": "_base/tiny.yaml", "name": "c", "method": {"name": "mtt", "iterations": 3}})
    assert read_yaml(child)["method"] == {"name": "mtt", "iterations": 3}
    assert load_config(child).method.name == "mtt"
    same = write(tmp_path / "same.yaml", {"base": "_base/tiny.yaml", "name": "s", "method": {"name": "dm", "iterations": 3}})
    assert read_yaml(same)["method"] == {"name": "dm", "iterations": 3, "batch_real": 16}


def test_profiles_merge_per_profile_and_entry(tmp_path, base_file):
    child = write(tmp_path / "child.yaml", {
        "base": "_base/tiny.yaml", "name": "c",
        "profiles": {"cpu": {"method.iterations": 5, "seed": 7}, "mine": {"budget.ipc": 1}}})
    assert read_yaml(child)["profiles"] == {
        "cpu": {"network.width": 4, "method.iterations": 5, "seed": 7},
        "fast": {"evaluation.epochs": 1},
        "mine": {"budget.ipc": 1}}
    cfg = load_config(child, ["profile=cpu"])
    assert (cfg.network.width, cfg.method.iterations, cfg.seed) == (4, 5, 7)
    # a profile entry naming a whole section replaces that entry, it is not merged into
    assert merge_recipe({"profiles": {"p": {"method": {"name": "dm", "iterations": 1}}}},
                        {"profiles": {"p": {"method": {"name": "dm"}}}}) == {"profiles": {"p": {"method": {"name": "dm"}}}}


def test_lists_and_values_replace():
    assert merge_recipe({"evaluation": {"baselines": ["random", "herding"], "seeds": 5}},
                        {"evaluation": {"baselines": ["random"]}}) == {"evaluation": {"baselines": ["random"], "seeds": 5}}


def test_a_cycle_is_refused_naming_the_chain(tmp_path):
    write(tmp_path / "a.yaml", {"base": "b.yaml", "name": "a"})
    write(tmp_path / "b.yaml", {"base": "a.yaml"})
    msg = error(tmp_path / "a.yaml")
    assert "cycle" in msg and "a.yaml → " in msg and "b.yaml → " in msg
    write(tmp_path / "self.yaml", {"base": "self.yaml", "name": "s"})
    assert "cycle" in error(tmp_path / "self.yaml")


def test_a_missing_base_names_the_recipe_that_refers_to_it(tmp_path):
    child = write(tmp_path / "child.yaml", {"base": "_base/nothere.yaml", "name": "c"})
    msg = error(child)
    assert str(child) in msg and "'_base/nothere.yaml' not found" in msg


def test_an_unknown_key_in_a_child_fails_with_its_path(tmp_path, base_file):
    child = write(tmp_path / "child.yaml", {"base": "_base/tiny.yaml", "name": "c", "method": {"iteratons": 5}})
    msg = error(child)
    assert "'method.iteratons'" in msg and "did you mean 'method.iterations'" in msg
    child = write(tmp_path / "child.yaml", {"base": "_base/tiny.yaml", "name": "c", "evaluation": {"epochs": "many"}})
    assert "evaluation.epochs: expected int" in error(child)


def test_a_base_by_shipped_recipe_name(tmp_path):
    data = tmp_path / "x.npz"
    data.touch()
    child = write(tmp_path / "child.yaml", {"base": "medical/breastmnist-ptm-ipc10", "name": "mine",
                                            "dataset": {"path": str(data)}, "budget": {"ipc": 3}})
    cfg = load_config(child)
    assert (cfg.name, cfg.dataset.path, cfg.budget.ipc, cfg.method.name, cfg.method.max_start_epoch) == (
        "mine", str(data), 3, "ptm", 20)
    assert cfg.description.startswith("PTM on breastmnist")  # not given by the child


MEDICAL = [i for i in list_recipes() if i.name.startswith("medical/")]


def test_bases_are_not_listed_as_recipes():
    assert len(MEDICAL) == 54
    assert not [i.name for i in list_recipes() if any(p.startswith("_") for p in i.name.split("/"))]


def test_breastmnist_ipc10_resolves_as_written_out():
    raw = read_yaml(next(i.path for i in MEDICAL if i.name == "medical/breastmnist-ptm-ipc10"))
    assert "base" not in raw
    assert raw["name"] == "breastmnist-ptm-ipc10" and raw["domain"] == "medical"
    assert raw["dataset"] == {"name": "medmnist", "path": "../shared/data/medical/medmnist/breastmnist.npz"}
    assert raw["budget"] == {"ipc": 10}
    assert raw["network"]["width"] == 128 and raw["augment"]["strategy"] == "crop_cutout_flip_scale_rotate"
    assert {k: raw["method"][k] for k in ("name", "syn_steps", "final_end_epoch", "lr_lr")} == {
        "name": "ptm", "syn_steps": 30, "final_end_epoch": 22, "lr_lr": 0.1}
    assert not {"max_start_epoch", "expert_epochs"} & set(raw["method"])  # MTT keys PTM does not read
    assert "dir" not in raw["experts"] and "experts.dir" not in raw["profiles"]["cpu"]  # derived from the settings
    assert list(raw["profiles"]) == ["cpu", "cpu_dm", "dm", "mtt", "cpu_mtt"]


@pytest.mark.parametrize("info", MEDICAL, ids=lambda i: i.name)
def test_every_shipped_medical_recipe_loads(info, tmp_path):
    data = tmp_path / "data.npz"  # the data need not exist on this machine
    data.touch()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(info.path, [f"dataset.path={data}", "profile=cpu"])
        cfg = load_config(info.path, [f"dataset.path={data}"])
    assert not [str(w.message) for w in caught if "not read by" in str(w.message)]  # no key PTM ignores
    dataset, ipc = info.name.removeprefix("medical/").split("-ptm-ipc")
    assert (cfg.name, cfg.dataset.name, cfg.budget.ipc, cfg.method.name) == (f"{dataset}-ptm-ipc{ipc}", "medmnist", int(ipc), "ptm")
    assert cfg.network.width == (64 if dataset.endswith("3d") else 128)
    assert str(experts_dir(cfg)).startswith("experts/medmnist-data-")  # the file's stem, then the settings' digest
    assert {"mtt", "dm"} <= set(cfg.profiles)
    for profile in cfg.profiles:
        assert load_config(info.path, [f"dataset.path={data}", f"profile={profile}"]).profile == profile


def test_a_mapping_recipe_may_name_a_shipped_base():
    from mmdd.run import load_config

    cfg = load_config({"base": "quickstart", "name": "mine", "budget": {"ipc": 2}})
    shipped = load_config("quickstart")
    assert cfg.name == "mine" and cfg.budget.ipc == 2
    assert cfg.method == shipped.method and cfg.dataset == shipped.dataset
    with pytest.raises(ConfigError, match="not found"):
        load_config({"base": "no/such-recipe", "name": "x"})


def test_every_shipped_recipe_has_a_cpu_profile():
    missing = [info.name for info in list_recipes() if "cpu" not in (read_yaml(info.path).get("profiles") or {})]
    assert missing == []


def test_a_key_the_method_does_not_read_is_warned_about_by_name(tmp_path):
    data = tmp_path / "data.npz"
    data.touch()
    with pytest.warns(UserWarning, match=r"method.max_start_epoch, method.expert_epochs: not read by 'ptm'"):
        load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={data}", "method.max_start_epoch=3",
                                                     "method.expert_epochs=2"])


def test_a_resolved_ptm_recipe_loads_again_without_warning_about_keys_ptm_inherits(tmp_path):
    from mmdd.config import to_dict

    data = tmp_path / "data.npz"
    data.touch()
    cfg = load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={data}", "profile=cpu"])
    resolved = to_dict(cfg)
    assert not {"max_start_epoch", "min_start_epoch", "expert_epochs"} & set(resolved["method"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_config(cfg)  # a config passed back in (mmdd.distill(cfg))
        reread = load_config(resolved, resolved=True)  # a manifest's recipe (open_run)
    assert not [str(w.message) for w in caught if "not read by" in str(w.message)]
    assert again.method == cfg.method == reread.method

    from mmdd.run import comparable

    older = {**resolved, "method": {**resolved["method"], "max_start_epoch": 20, "min_start_epoch": 0, "expert_epochs": 2}}
    assert comparable(older) == comparable(resolved)  # a checkpoint saved with them still resumes
