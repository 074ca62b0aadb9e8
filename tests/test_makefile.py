"""Plain ``make`` teaches: it lists every target with what it does."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def plain_make() -> str:
    """What ``make`` prints when a person types it (not as a sub-make of another make)."""
    environment = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        ["make", "-s"], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    ).stdout


def test_plain_make_lists_every_target_with_a_line() -> None:
    phony = re.search(r"^\.PHONY: (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert phony is not None
    listed = plain_make()
    lines = dict(line.split(None, 1) for line in listed.splitlines())
    assert set(lines) == set(phony[1].split())
    assert all(len(description.strip()) > 10 for description in lines.values())


def test_the_readme_lists_the_targets_as_make_does() -> None:
    listed = plain_make()
    assert listed in (ROOT / "README.md").read_text()
