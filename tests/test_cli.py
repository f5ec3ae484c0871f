"""The CLI's options are action.yml's inputs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from portpy_action import cli
from portpy_action.options import action_inputs


def subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.make_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("command", "names"),
    [("build", cli.BUILD_INPUTS), ("fetch", cli.RUNTIME_INPUTS), ("verify", cli.POLICY_INPUTS)],
)
def test_flags_mirror_action_inputs(command: str, names: tuple[str, ...]) -> None:
    inputs = action_inputs()
    flags = {
        opt: a
        for a in subparser(command)._actions
        for opt in a.option_strings
        if opt.startswith("--")
    }
    for name in names:
        action = flags[f"--{name}"]
        assert action.help is not None
        assert action.help.startswith(inputs[name].description.replace("%", "%%"))


def test_every_input_is_a_flag_or_github_only() -> None:
    github_only = {
        "mode",
        "upload-artifact",
        "artifact-name",
        "retention-days",
        "attach-to-release",
    }
    covered = set(cli.BUILD_INPUTS) | set(cli.CHECK_INPUTS) | github_only
    assert covered == set(action_inputs())


def test_bad_input_exits_2_with_named_input(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "portpy_action.cli", "build", "--format", "rar"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "input `format`: `rar` is not one of" in proc.stderr
    assert proc.stdout == ""


def test_config_and_flags_merge_with_flags_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    def fake_build(spec, *, log):  # type: ignore[no-untyped-def]
        seen.append(spec)
        raise cli.PortpyError("stop here")

    monkeypatch.setattr("portpy_action.build.build", fake_build, raising=False)
    project = tmp_path / "proj"
    project.mkdir()
    config = tmp_path / "portpy.yml"
    config.write_text("project-dir: proj\nformat: zip\nname: svc\n")
    monkeypatch.chdir(tmp_path / "proj")
    code = cli.main(["build", "--config", str(config), "--format", "tar.xz"])
    assert code == 1
    (spec,) = seen
    assert spec.project_dir == project  # relative to the config file
    assert spec.format == "tar.xz" and spec.name == "svc"
