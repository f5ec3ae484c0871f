"""Inputs, outputs, the step summary and file ownership, as the runner sees them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portpy_action.errors import InputError, PortpyError
from portpy_action.github.summary import BundleSummary, render_build, render_check
from portpy_action.github.workflow import (
    SUMMARY_LIMIT,
    append_summary,
    format_output,
    hand_to_owner,
    read_inputs,
    unexpected_inputs,
    write_outputs,
)
from tests.fixtures.fake_actions import read_outputs


def test_inputs_keep_hyphens_are_trimmed_and_absent_ones_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INPUT_PYTHON-VERSION", "  3.11 \n")
    monkeypatch.setenv("INPUT_EXCLUDE", "a\nb\n")
    monkeypatch.setenv("INPUT_PROJECT-DIR", "")
    values = read_inputs()
    assert values == {"python-version": "3.11", "exclude": "a\nb", "project-dir": ""}


def test_an_input_holding_the_output_delimiter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_ATTACH-TO-RELEASE", "v1ghadelimiter_x")
    with pytest.raises(InputError) as caught:
        read_inputs()
    assert caught.value.input == "attach-to-release"


def test_unexpected_inputs_are_named() -> None:
    env = {"INPUT_PYTHON-VERSION": "3.12", "INPUT_PYTHON_VERSION": "3.12", "PATH": "/bin"}
    assert unexpected_inputs(env) == ["INPUT_PYTHON_VERSION"]


def test_outputs_parse_back_including_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("archive-name<<EOF\nbefore\nEOF\n")
    write_outputs({"archive-path": "dist/a b.tar.gz", "target": "line one\nline two"}, path)
    assert read_outputs(path) == {
        "archive-name": "before",
        "archive-path": "dist/a b.tar.gz",
        "target": "line one\nline two",
    }


def test_a_value_with_the_delimiter_marker_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.touch()
    with pytest.raises(PortpyError, match="output `target` holds `ghadelimiter_`"):
        write_outputs({"archive-name": "fine", "target": "x\nghadelimiter_1234\ny"}, path)
    assert path.read_text() == ""
    with pytest.raises(PortpyError):
        format_output("target", "the DELIM itself", delimiter="DELIM")
    with pytest.raises(ValueError, match="not an output declared"):
        format_output("no-such-output", "x")


def test_summary_appends_below_the_limit_only(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    append_summary("# one\n", path)
    append_summary("two\n", path)
    assert path.read_text() == "# one\ntwo\n"
    with pytest.raises(PortpyError, match="over GitHub's 1 MiB"):
        append_summary("x" * SUMMARY_LIMIT, path)
    assert path.read_text() == "# one\ntwo\n"


def test_the_build_summary_tables() -> None:
    summary = BundleSummary(
        archive_name="app-3.12.1-x86_64-unknown-linux-gnu.tar.gz",
        python_version="3.12.1",
        build_tag="20260114",
        target="x86_64-unknown-linux-gnu",
        size=3 * 1024 * 1024,
        sha256="ab" * 32,
        glibc_baseline="2.17",
        external_libs=("libfoo.so.1",),
        distributions=(("pipe|name", "1.0"), ("rich", "13.0")),
        timings={"runtime": 1.25, "install": 2.0},
        artifact_url="https://github.com/o/r/actions/runs/1/artifacts/2",
    )
    text = render_build(summary)
    assert "| Size | 3.0 MiB (3145728 bytes) |" in text
    assert "| glibc baseline | 2.17 |" in text
    assert "| External libraries | libfoo.so.1 |" in text
    assert "| Workflow artifact | https://github.com/o/r/actions/runs/1/artifacts/2 |" in text
    assert "Release asset" not in text
    assert "<details><summary>2 installed distributions</summary>" in text
    assert "| pipe\\|name | 1.0 |" in text
    assert "| **total** | **3.2 s** |" in text
    assert "| needs-build | `true` |" in render_check({"needs-build": "true"})


def test_written_files_go_to_the_workspace_owner(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 1001, 1002)
    output = workspace / "build" / "dist"
    output.mkdir(parents=True)
    (output / "app.tar.gz").write_bytes(b"x")
    (output / "link").symlink_to("/etc/passwd")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")

    hand_to_owner([output, outside], workspace)

    for path in (workspace / "build", output, output / "app.tar.gz", output / "link"):
        stat = path.lstat()
        assert (stat.st_uid, stat.st_gid) == (1001, 1002), path
    assert Path("/etc/passwd").stat().st_uid == 0  # a link is handed over, not its target
    assert outside.stat().st_uid == os.geteuid()


def test_a_folder_being_removed_is_not_walked(tmp_path: Path) -> None:
    # A build's work folder, set aside and removed by a background process: its files
    # vanish while the output folder is handed over.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 1001, 1002)
    output = workspace / "dist"
    trash = output / ".portpy-trash-0123456789ab" / "demo"
    trash.mkdir(parents=True)
    (trash / "x.py").write_text("x")
    (output / "app.tar.gz").write_bytes(b"x")

    hand_to_owner([output], workspace)

    assert (output / "app.tar.gz").stat().st_uid == 1001
    assert (trash / "x.py").stat().st_uid == os.geteuid()
