"""Config fixtures: a tmp_path copy of the shipped conf/, policies/ and filters/.

Tests edit the copy, so every broken-file case starts from exactly what ships.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailadmin import paths


@dataclass(frozen=True)
class Tree:
    root: Path

    @property
    def conf_file(self) -> Path:
        return self.root / "conf" / "mailadmin.toml"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def filters_dir(self) -> Path:
        return self.root / "filters"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def replace(self, relative: str, old: str, new: str, count: int = 1) -> None:
        """Replace the first ``count`` occurrences of ``old``; fails loudly when absent,
        so a case never silently tests the unedited file."""
        path = self.path(relative)
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, count), encoding="utf-8")

    def append(self, relative: str, text: str) -> None:
        path = self.path(relative)
        with path.open("a", encoding="utf-8") as f:
            f.write(text)

    def line_of(self, relative: str, needle: str, *, last: bool = False) -> int:
        """1-based number of the first (or last) line of ``relative`` containing ``needle``."""
        lines = self.path(relative).read_text(encoding="utf-8").splitlines()
        found = [number for number, line in enumerate(lines, 1) if needle in line]
        assert found, f"{needle!r} not in {relative}"
        return found[-1] if last else found[0]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    for name in ("conf", "policies", "filters"):
        shutil.copytree(paths.shipped(name), tmp_path / name)
    return Tree(tmp_path)
