"""Discarding a folder: renamed aside at once, removed in the background, timed; never
a half-removed folder under a name a run takes for live work."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from portpy_action.scratch import (
    TRASH_PREFIX,
    Discarded,
    discard,
    scratch_file,
    scratch_folder,
    sweep,
    sweep_trash,
)
from portpy_action.signals import Terminated, sigterm_raises
from tests.fixtures.trash import settle

REPO = Path(__file__).resolve().parent.parent


def _filled(folder: Path, files: int = 50) -> None:
    for i in range(files):
        (folder / "sub" / str(i % 5)).mkdir(parents=True, exist_ok=True)
        (folder / "sub" / str(i % 5) / f"f{i}").write_bytes(b"x" * 100)


def test_a_finished_folder_is_renamed_aside_and_removed_in_the_background(
    tmp_path: Path,
) -> None:
    heard: list[Discarded] = []
    with scratch_folder(tmp_path, ".work-", removed=heard.append) as work:
        _filled(work)
    [gone] = heard
    assert gone.path == work and not work.exists()  # the work name is free at once
    assert gone.background and gone.trash is not None
    assert gone.trash.name.startswith(TRASH_PREFIX) and gone.trash.parent == tmp_path
    assert gone.seconds >= 0 and "in the background" in gone.describe()
    settle(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_after_a_failure_the_folder_is_gone_before_the_block_exits(tmp_path: Path) -> None:
    heard: list[Discarded] = []
    with pytest.raises(RuntimeError), scratch_folder(tmp_path, ".work-", removed=heard.append):
        _filled(next(tmp_path.glob(".work-*")))
        raise RuntimeError("the build failed")
    assert list(tmp_path.iterdir()) == []  # nothing left to settle
    assert not heard[0].background and heard[0].describe().startswith("removed in ")


def test_discard_takes_the_callers_lock_along(tmp_path: Path) -> None:
    folder = tmp_path / ".work-x"
    _filled(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    gone = discard(folder, fd)  # closes fd; the remover holds the lock now
    assert gone.background and gone.trash is not None and not folder.exists()
    settle(tmp_path)  # returns when the remover has let go of the lock
    assert list(tmp_path.iterdir()) == []


def test_a_killed_removal_leaves_only_trash_that_the_next_sweep_removes(tmp_path: Path) -> None:
    # What a remover killed halfway leaves: part of the folder, under its trash name, unlocked.
    half = tmp_path / f"{TRASH_PREFIX}0123456789ab"
    _filled(half)
    (half / "sub" / "1" / "f1").unlink()
    with scratch_folder(tmp_path, ".portpy-build-") as live:
        # A run's sweep of work folders never takes trash for work, nor removes live work.
        assert sweep(tmp_path, ".portpy-build-*") == []
        assert half.is_dir() and live.is_dir()
        assert sweep_trash(tmp_path) == [half]
        settle(tmp_path)
        assert sorted(tmp_path.iterdir()) == [live]


def test_trash_being_removed_by_a_live_remover_is_left_to_it(tmp_path: Path) -> None:
    held = tmp_path / f"{TRASH_PREFIX}held"
    _filled(held)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            str(held),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert sweep_trash(tmp_path) == []
        assert held.is_dir()
    finally:
        holder.communicate("")
    assert sweep_trash(tmp_path) == [held]
    settle(tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_sigterm_right_after_the_name_is_made_still_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The signal arrives between making the scratch name and entering the block that
    # removes it: the narrowest window a killed run can leave a file behind in.
    make = tempfile.mkstemp if kind == "file" else tempfile.mkdtemp

    def made_then_terminated(*args: Any, **kwargs: Any) -> Any:
        made = make(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return made

    monkeypatch.setattr(tempfile, "mkstemp" if kind == "file" else "mkdtemp", made_then_terminated)
    with sigterm_raises(), pytest.raises(Terminated):
        if kind == "file":
            with scratch_file(tmp_path, ".demo-", ".partial"):
                pass
        else:
            with scratch_folder(tmp_path, ".demo-"):
                pass
    assert list(tmp_path.iterdir()) == []
