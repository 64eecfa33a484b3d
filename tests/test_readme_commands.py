"""The README's "Distilling your own data" commands are valid recipes (validated, not run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mmdd.plugins import available_domains
from mmdd.run import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def own_data_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Distilling your own data", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"\| `(mmdd run [^`]+)` \|", section)


def test_the_section_lists_a_command_per_domain():
    commands = own_data_commands()
    recipes = {shlex.split(c)[2].split("/")[0] for c in commands}
    assert recipes == set(available_domains())  # a new domain brings its own row


@pytest.mark.parametrize("command", own_data_commands())
def test_each_own_data_command_validates(command, tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "file.npz").touch()
    (tmp_path / "model").mkdir()
    line = command.replace("ROOT", str(tmp_path / "root")).replace("FILE.npz", str(tmp_path / "file.npz"))
    line = line.replace("DIR", str(tmp_path / "model"))
    words = shlex.split(line)
    cfg = load_config(words[2], words[3:])
    assert cfg.profile == "cpu" and cfg.dataset.name
