"""The quick key check the command line runs before heavy imports: it agrees with full validation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mmdd.catalog import list_recipes, read_recipe
from mmdd.core.errors import ConfigError
from mmdd.raw_recipe import SCHEMA_FILE, apply_profile, build_schema, quick_check
from mmdd.run import load_config


def _entries(node, path=()):
    """(path, fields) of every dataclass schema in the snapshot."""
    if isinstance(node, dict) and set(node) == {"fields"}:
        yield path, sorted(node["fields"])
        for key, sub in node["fields"].items():
            yield from _entries(sub, (*path, key))
    elif isinstance(node, dict):
        for key, sub in node.items():
            yield from _entries(sub, (*path, key))


def test_the_schema_snapshot_agrees_with_the_dataclasses():
    """Every section the snapshot knows has exactly the fields its dataclass has (a changed config
    needs `python -m mmdd.raw_recipe --write-schema`). A section it does not know yet — a dataset
    just added — is simply not pre-checked, so adding one needs no edit here."""
    fresh = dict(_entries(build_schema()))
    stored = dict(_entries(json.loads(SCHEMA_FILE.read_text())))
    stale = {path: fields for path, fields in stored.items() if fresh.get(path) != fields}
    assert stale == {}, "run: python -m mmdd.raw_recipe --write-schema"


def test_every_shipped_recipe_and_profile_passes_the_quick_check():
    for info in list_recipes():
        raw = read_recipe(info.path)
        for profile in ["default", *(raw.get("profiles") or {})]:
            quick_check(apply_profile(raw, [f"profile={profile}"]))  # no false alarm


@pytest.mark.parametrize("recipe, key", [
    ("quickstart", "method.iteratons"), ("quickstart", "evaluation.sedes"), ("quickstart", "budgte"),
    ("quickstart", "augment.strategie"), ("quickstart", "network.widht"), ("quickstart", "dataset.val_fractoin"),
    ("audio/fsdd-mtt-ipc1", "augment.time_mask_"), ("audio/fsdd-mtt-ipc1", "dataset.n_mfc"),
    ("video/action_set-s2d-vpc1", "synthetic.dynamic_scal"), ("medical/breastmnist-ptm-ipc1", "method.overlap_evry"),
    ("vision_language/flickr8k-bitm-pairs100", "dataset.text.pooling_"),
    ("vision_language/flickr8k-bitm-pairs100", "network.lora.rnk"),
])
def test_a_misspelt_key_gets_the_same_message_as_full_validation(recipe, key, tmp_path):
    overrides = [f"{key}=1"]
    # full validation checks the data's folders first (the recipes point at ../shared/data): give it existing ones
    if recipe.startswith("video/"):
        overrides += [f"dataset.root={tmp_path}", f"dataset.split_dir={tmp_path}"]
    elif recipe.startswith("audio/"):
        overrides += [f"dataset.root={tmp_path}"]
    elif recipe.startswith("medical/"):
        (tmp_path / "data.npz").write_bytes(b"")
        overrides += [f"dataset.path={tmp_path / 'data.npz'}"]
    raw = apply_profile(read_recipe(list(i for i in list_recipes() if i.name == recipe)[0].path), overrides)
    with pytest.raises(ConfigError) as quick:
        quick_check(raw)
    with pytest.raises(ConfigError) as full:
        load_config(recipe, overrides)
    assert str(quick.value) == str(full.value) and "unknown key" in str(quick.value)


def test_the_command_line_refuses_a_misspelt_key_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        from mmdd.cli import main
        code = main(["run", "quickstart", "method.iteratons=10"])
        print(code, "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "did you mean 'method.iterations'?" in done.stderr
