"""The one write-to-a-temporary-name-then-rename helper."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from portpy_action import atomic


def test_files_appear_together_only_when_complete(tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar.gz", tmp_path / "a.tar.gz.sha256"
    with atomic.staged(first, second) as (temp_first, temp_second):
        temp_first.write_bytes(b"archive")
        temp_second.write_text("sum\n")
        assert temp_first.parent == tmp_path and temp_first.name.endswith(".partial")
        assert not first.exists() and not second.exists()
    assert first.read_bytes() == b"archive" and second.read_text() == "sum\n"
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, second.name]


def test_a_failure_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.staged(target) as (temp,):
        temp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_write_text_keeps_a_given_mode(tmp_path: Path) -> None:
    script = tmp_path / "run"
    atomic.write_text(script, "#!/bin/sh\n", mode=0o755)
    assert script.read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
