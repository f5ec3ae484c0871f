"""The logger speaks workflow commands on GitHub and plain lines elsewhere."""

from __future__ import annotations

import io

import pytest

from portpy_action.log import Logger


def test_github_groups_annotations_and_masks() -> None:
    out = io.StringIO()
    log = Logger(out, github=True)
    log.mask("s3cr3t")
    with log.stage("download", "Download runtime"):
        log.info("token is s3cr3t")
    log.error("bad: 100%\nsecond line", file="requirements.txt", line=3)
    lines = out.getvalue().splitlines()
    assert lines[0] == "::add-mask::s3cr3t"
    assert lines[1] == "::group::Download runtime"
    assert lines[2] == "token is ***"
    assert lines[3].startswith("    download took ")
    assert lines[4] == "::endgroup::"
    assert lines[5] == "::error file=requirements.txt,line=3::bad: 100%25%0Asecond line"
    assert "download" in log.timings and log.timings["download"] >= 0


def test_plain_lines_outside_github() -> None:
    out = io.StringIO()
    log = Logger(out, github=False, tty=False)
    log.mask("tok")
    log.warning("tok leaked?", file="x.txt")
    with pytest.raises(RuntimeError), log.stage("pack"):
        raise RuntimeError("boom")
    text = out.getvalue()
    assert "::" not in text
    assert "warning: x.txt: *** leaked?" in text
    assert "tok" not in text
    assert "pack" in log.timings  # a failed stage is still timed


def test_progress_lines_without_tty() -> None:
    out = io.StringIO()
    log = Logger(out, github=False, tty=False)
    progress = log.progress("cpython.tar.gz", total=1000)
    for _ in range(10):
        progress.update(100)
    progress.close()
    lines = out.getvalue().splitlines()
    # one line per quarter crossed, not one per chunk
    percents = [int(line.split(": ")[1].split("%")[0]) for line in lines]
    assert percents == [30, 50, 80, 100]


def test_progress_bar_on_tty() -> None:
    out = io.StringIO()
    log = Logger(out, github=False, tty=True)
    progress = log.progress("x", total=200)
    progress.update(100)
    progress.update(100)
    progress.close()
    assert out.getvalue().count("\r") == 2 and "100%" in out.getvalue()
