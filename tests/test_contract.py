"""The plug-in contract: domains subclass core's Domain, hold no state, and import nothing above core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmdd.core.domain import Domain
from mmdd.plugins import available_domains, get_domain

ROOT = Path(__file__).resolve().parents[1]
UPWARD = re.compile(r"^\s*(from mmdd\.(run|experts|config|artifacts|cli|dataset|catalog|plugins)\b|"
                    r"import mmdd\.(run|experts|cli)\b|from mmdd import)", re.M)


@pytest.mark.parametrize("name", available_domains())
def test_each_domain_is_a_stateless_domain_subclass(name):
    domain = get_domain(name)
    assert isinstance(domain, Domain) and domain.name == name
    assert vars(domain) == {}  # nothing kept between calls: per-run state travels in the Workspace


def test_core_and_domains_import_nothing_from_the_public_package():
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
                 for folder in ("core", "domains") for p in sorted((ROOT / folder).rglob("*.py"))
                 for m in UPWARD.finditer(p.read_text())]
    assert offenders == []


def test_no_domain_imports_another_domain():
    """What two domains share lives in core (decode cache, sound files, annotation lines)."""
    offenders = []
    for p in sorted((ROOT / "domains").rglob("*.py")):
        own = p.relative_to(ROOT / "domains").parts[0]
        for m in re.finditer(r"^\s*(?:from|import) mmdd\.domains\.(\w+)", p.read_text(), re.M):
            if m.group(1) != own:
                offenders.append(f"{p.relative_to(ROOT)}: mmdd.domains.{m.group(1)}")
    assert offenders == []


def test_no_domain_defines_its_own_pipeline():
    own = [f"{p.relative_to(ROOT)}: {m.group(1)}" for p in sorted((ROOT / "domains").rglob("*.py"))
           for m in re.finditer(r"^\s*def (distill|evaluate_run|write_report|generate_experts|render_run)\(",
                                p.read_text(), re.M)]
    assert own == []


def test_required_hooks_say_which_domain_lacks_them():
    class Half(Domain):
        name = "half"

    with pytest.raises(NotImplementedError, match="'half' does not implement load_data"):
        Half().load_data(None)
    with pytest.raises(NotImplementedError, match="'half' does not implement viewable"):
        Half().render(Half().viewable(None, {}, lambda: None), Path("."))


def test_a_new_format_module_registers_without_an_import_line(tmp_path, monkeypatch):
    from mmdd.core.registry import DATASETS, dataset_entry, import_submodules

    pkg = tmp_path / "my_domain_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "my_format.py").write_text(
        "from dataclasses import dataclass\n"
        "from mmdd.core.registry import register_dataset\n\n"
        "@dataclass\nclass MyConfig:\n    name: str = 'my_format'\n\n"
        "@register_dataset('my_domain', 'my_format', config=MyConfig)\n"
        "def read_my_format(cfg):\n    return 'read'\n")
    (pkg / "_helper.py").write_text("raise RuntimeError('private modules are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import_submodules("my_domain_pkg")
        entry = dataset_entry("my_domain", "my_format")
        assert entry.config.__name__ == "MyConfig" and entry.load(entry.config()) == "read"
    finally:
        DATASETS.pop(("my_domain", "my_format"), None)


def test_module_run_by_dash_m_reads_the_interpreter_command_line():
    from mmdd.core.registry import module_run_by_dash_m

    assert module_run_by_dash_m(["python", "-m", "mmdd.domains.video.action_set", "--out", "x"]) == (
        "mmdd.domains.video.action_set")
    assert module_run_by_dash_m(["python", "-W", "error", "-X", "dev", "-m", "pkg.mod"]) == "pkg.mod"
    assert module_run_by_dash_m(["python", "script.py", "-m", "pkg.mod"]) is None  # -m is the script's
    assert module_run_by_dash_m(["python", "-c", "pass", "-m", "pkg.mod"]) is None
    assert module_run_by_dash_m(["python"]) is None


def test_running_a_domain_module_with_dash_m_loads_it_once():
    """The package's import_submodules leaves the module ``python -m`` runs to runpy: no double import."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "mmdd.domains.video.action_set",
                           "--help"], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr
