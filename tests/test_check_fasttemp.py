"""Where the throwaway unpacked copy goes: memory only when it fits, never against $TMPDIR."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from portpy_action.check.fasttemp import SHM, temp_parents


def test_a_chosen_tmpdir_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert temp_parents(1) == [tmp_path]


def test_a_copy_too_large_for_memory_goes_to_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert temp_parents(1 << 60) == [Path(tempfile.gettempdir())]


def test_disk_always_comes_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    parents = temp_parents(1)
    assert parents[-1] == Path(tempfile.gettempdir())
    assert parents[:-1] in ([], [SHM])
