"""Recipe validation: unknown keys, wrong types and impossible values fail before any work."""

from __future__ import annotations

import pytest

from mmdd.config import parse_override
from mmdd.core.errors import ConfigError
from mmdd.run import load_config, setup


def error(recipe, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(recipe, overrides)
    return str(info.value)


def test_valid_recipe_builds_typed_config(tiny_recipe):
    cfg = load_config(tiny_recipe, ["method.iterations=9", "budget.ipc=3"])
    assert cfg.method.iterations == 9 and cfg.budget.ipc == 3
    assert cfg.network.width == 8 and cfg.dataset.name == "digits"
    assert type(cfg.method).__name__ == "DMConfig"


def test_unknown_top_level_key_names_closest(tiny_recipe):
    tiny_recipe["budgett"] = {"ipc": 1}
    msg = error(tiny_recipe)
    assert "'budgett'" in msg and "did you mean 'budget'" in msg


def test_unknown_nested_key_names_path_and_closest(tiny_recipe):
    tiny_recipe["method"]["iteratons"] = 5
    msg = error(tiny_recipe)
    assert "'method.iteratons'" in msg and "did you mean 'method.iterations'" in msg


def test_unknown_key_in_override(tiny_recipe):
    msg = error(tiny_recipe, ["evaluation.epoch=3"])
    assert "'evaluation.epoch'" in msg and "did you mean 'evaluation.epochs'" in msg


def test_wrong_type_says_expected(tiny_recipe):
    msg = error(tiny_recipe, ["budget.ipc=ten"])
    assert "budget.ipc" in msg and "expected int" in msg and "'ten'" in msg


def test_bool_is_not_an_int(tiny_recipe):
    assert "expected int" in error(tiny_recipe, ["method.iterations=true"])


def test_literal_choices_listed(tiny_recipe):
    msg = error(tiny_recipe, ["method.kernel=gausian"])
    assert "method.kernel" in msg and "'gaussian'" in msg and "did you mean" in msg


def test_ipc_zero_is_impossible(tiny_recipe):
    msg = error(tiny_recipe, ["budget.ipc=0"])
    assert "budget.ipc must be ≥ 1" in msg and "got 0" in msg


def test_ipc_larger_than_a_class_fails_before_distilling(tiny_recipe, tmp_path):
    cfg = load_config(tiny_recipe, ["budget.ipc=500"])
    with pytest.raises(ConfigError) as info:
        setup(cfg)
    msg = str(info.value)
    assert "budget.ipc=500" in msg and "only" in msg and "expected 1 ≤ ipc ≤" in msg


def test_missing_dataset_root(tiny_recipe, tmp_path):
    tiny_recipe["dataset"] = {"name": "fashion_mnist", "root": str(tmp_path / "nowhere")}
    msg = error(tiny_recipe)
    assert "dataset.root" in msg and "does not exist" in msg and "train-images-idx3-ubyte.gz" in msg


def test_unknown_dataset_and_method_names(tiny_recipe):
    assert "did you mean 'digits'" in error(tiny_recipe, ["dataset.name=digit"])
    assert "unknown method 'dn'" in error(tiny_recipe, ["method.name=dn"])


def test_unknown_domain(tiny_recipe):
    assert "unknown domain 'imag'" in error(tiny_recipe, ["domain=imag"])


def test_negative_learning_rate_and_bad_baseline(tiny_recipe):
    assert "method.lr_inputs must be > 0" in error(tiny_recipe, ["method.lr_inputs=-1"])
    assert "unknown baseline 'randm'" in error(tiny_recipe, ["evaluation.baselines=[randm]"])


def test_missing_name(tiny_recipe):
    del tiny_recipe["name"]
    assert "'name'" in error(tiny_recipe)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("budget.ipc")
    assert parse_override("evaluation.baselines=[random, full]") == (["evaluation", "baselines"], ["random", "full"])


def test_override_into_a_value_is_rejected(tiny_recipe):
    assert "is a value, not a section" in error(tiny_recipe, ["seed.x=1"])


def test_profiles_apply_and_command_line_wins(tiny_recipe):
    tiny_recipe["profiles"] = {"cpu": {"network.width": 4, "method.iterations": 2}}
    cfg = load_config(tiny_recipe, ["profile=cpu", "method.iterations=3"])
    assert cfg.profile == "cpu" and cfg.network.width == 4 and cfg.method.iterations == 3
    assert "unknown profile 'gpu'" in error(tiny_recipe, ["profile=gpu"])


def test_shipped_recipes_all_validate(tmp_path):
    import yaml

    from mmdd.catalog import list_recipes

    infos = list_recipes()
    assert any(i.name == "quickstart" for i in infos)
    for info in infos:
        raw = yaml.safe_load(info.path.read_text())
        # Data roots need not exist on this machine; point them at an existing folder.
        folders = ("root", "split_dir", "annotations_dir")  # data folders a dataset section may name
        overrides = [f"dataset.{key}={tmp_path}" for key in folders if key in raw.get("dataset", {})]
        if "path" in raw.get("dataset", {}):  # a data file (MedMNIST .npz)
            (tmp_path / "data.npz").touch()
            overrides = [f"dataset.path={tmp_path / 'data.npz'}"]
        cfg = load_config(info.path, overrides)
        assert cfg.name and info.description
        for profile in raw.get("profiles", {}):
            assert load_config(info.path, [*overrides, f"profile={profile}"]).profile == profile


def test_unknown_recipe_name_suggests():
    assert "did you mean 'quickstart'" in error("quickstrt")


def test_exponent_without_a_dot_is_a_float_but_words_are_not(tiny_recipe):
    # YAML 1.1 reads 1e-4 as a string; a float option takes it as the number it is
    assert load_config(tiny_recipe, ["method.lr_inputs=1e-4"]).method.lr_inputs == 1e-4
    assert "expected float" in error(tiny_recipe, ["method.lr_inputs=fast"])


def test_a_resolved_config_keeps_its_overrides_when_loaded_again(tiny_recipe):
    tiny_recipe["profiles"] = {"small": {"method.iterations": 7, "seed": 5}}
    cfg = load_config(tiny_recipe, ["profile=small", "method.iterations=3"])
    assert (cfg.method.iterations, cfg.seed) == (3, 5)
    again = load_config(cfg, ["seed=9"])  # the profile is not applied a second time over the overrides
    assert (again.method.iterations, again.seed, again.profile) == (3, 9, "small")
    from mmdd.config import to_dict

    assert load_config(to_dict(cfg), resolved=True).method.iterations == 3  # a manifest's recipe
    assert load_config(to_dict(cfg)).method.iterations == 7  # a plain mapping is a recipe: its profile applies


# --------------------------------------------------------------------------- KEY=null, hints, experts folders


def test_null_on_the_command_line_removes_a_key(tmp_path):
    from mmdd.raw_recipe import apply_overrides

    raw = {"dataset": {"name": "coco_captions", "csv": "x.csv", "root": "r"}}
    assert apply_overrides(raw, ["dataset.csv=null"]) == {"dataset": {"name": "coco_captions", "root": "r"}}
    assert apply_overrides(raw, ["nothing.here=null"]) == raw  # removing what is not there is a no-op
    # a recipe switched to a loader without the old loader's key runs once that key is removed
    switch = ["dataset.name=medical_folder", f"dataset.root={tmp_path}"]
    with pytest.raises(ConfigError, match="unknown key 'dataset.path'"):
        load_config("medical/breastmnist-ptm-ipc1", switch)
    assert load_config("medical/breastmnist-ptm-ipc1", switch + ["dataset.path=null"]).dataset.root == str(tmp_path)
    cfg = load_config("quickstart", ["evaluation.full_epochs=null"])
    assert cfg.evaluation.full_epochs is None


def test_a_key_another_loader_uses_hints_at_this_loaders_key():
    with pytest.raises(ConfigError, match=r"unknown key 'dataset.root'; did you mean 'dataset.path'\?"):
        load_config("medical/breastmnist-ptm-ipc1", ["dataset.root=/data/chest.npz"])


def test_experts_folders_follow_the_data_and_the_settings(tmp_path):
    from mmdd.run import experts_dir

    a, b = tmp_path / "breast.npz", tmp_path / "chest.npz"
    a.touch(), b.touch()
    one = experts_dir(load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={a}"]))
    assert one.parent.name == "experts" and one.name.startswith("medmnist-breast-")
    assert experts_dir(load_config("medical/breastmnist-ptm-ipc10", [f"dataset.path={a}"])) == one  # IPC: shared
    assert experts_dir(load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={b}"])).name.startswith(
        "medmnist-chest-")
    assert experts_dir(load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={a}", "network.width=32"])) != one
    assert experts_dir(load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={a}",
                                                                    "experts.num_experts=3"])) == one  # may grow
    assert str(experts_dir(load_config("medical/breastmnist-ptm-ipc1", [f"dataset.path={a}",
                                                                    "experts.dir=here/{name}"]))) == "here/breastmnist-ptm-ipc1"
