"""BuildSpec: every input rule, one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from portpy_action.config import load_config
from portpy_action.errors import InputError
from portpy_action.options import action_inputs
from portpy_action.spec import BuildSpec, PythonVersionRequest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "demo-fastapi"
    (root / "app").mkdir(parents=True)
    (root / "app" / "main.py").write_text("x = 1\n")
    (root / "requirements.txt").write_text("fastapi\n")
    return root


def spec(values: dict[str, str], base: Path, **kw: object) -> BuildSpec:
    return BuildSpec.from_inputs(values, base_dir=base, env={"HOME": str(base)}, **kw)  # type: ignore[arg-type]


def test_defaults_come_from_action_yml(project: Path) -> None:
    s = spec({}, project)
    assert s.runtime.python_version == PythonVersionRequest(3, 12)
    assert s.runtime.build_tag == "latest"
    assert s.runtime.flavor == action_inputs()["flavor"].default
    assert s.format == "tar.gz" and s.installer == "uv"
    assert s.project_dir == project and s.name == "demo-fastapi"
    assert s.output_dir == project / "dist"
    assert s.runtime.target.endswith("-unknown-linux-gnu")
    assert "_v" not in s.runtime.target.split("-")[0]
    assert s.smoke_command == ()
    quoted = spec({"smoke-command": """-c "import app.main" """}, project)
    assert quoted.smoke_command == ("-c", "import app.main")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.12", PythonVersionRequest(3, 12)),
        ("3.12.12", PythonVersionRequest(3, 12, 12)),
        ("3.13t", PythonVersionRequest(3, 13, None, True)),
        (" 3.14.1t ", PythonVersionRequest(3, 14, 1, True)),
    ],
)
def test_python_version_forms(text: str, expected: PythonVersionRequest) -> None:
    assert PythonVersionRequest.parse(text) == expected


@pytest.mark.parametrize("text", ["3", "python3.12", "3.12.x", "2.7", "3.12tt", "3.12t"])
def test_bad_python_version_names_the_input(text: str) -> None:
    with pytest.raises(InputError) as info:
        PythonVersionRequest.parse(text)
    assert info.value.input == "python-version"
    assert "3.12" in str(info.value)


def test_version_matching() -> None:
    assert PythonVersionRequest.parse("3.12").matches("3.12.12")
    assert not PythonVersionRequest.parse("3.12").matches("3.13.1")
    assert PythonVersionRequest.parse("3.12.1").matches("3.12.1")
    assert not PythonVersionRequest.parse("3.12.1").matches("3.12.10")


@pytest.mark.parametrize(
    ("values", "input_name", "fragment"),
    [
        ({"python-build-tag": "v2024"}, "python-build-tag", "20260114"),
        ({"target": "x86_64-pc-windows-msvc"}, "target", "aarch64-unknown-linux-gnu"),
        ({"flavor": "full"}, "flavor", "install_only"),
        ({"format": "rar"}, "format", "tar.zst"),
        ({"installer": "conda"}, "installer", "pip"),
        ({"mode": "deploy"}, "mode", "check"),
        ({"compile-bytecode": "maybe"}, "compile-bytecode", "true"),
        ({"max-glibc": "2.x"}, "max-glibc", "2.17"),
        ({"external-libs": "ignore"}, "external-libs", "warn"),
        ({"requirements": "missing.txt"}, "requirements", "missing.txt"),
        ({"project-dir": "nowhere"}, "project-dir", "nowhere"),
        ({"name": "../evil"}, "name", "letters"),
        ({"artifact-name": "a:b"}, "artifact-name", "':'"),
        ({"retention-days": "91"}, "retention-days", "1 to 90"),
        ({"python-mirror": "ftp://x"}, "python-mirror", "http"),
        ({"python-sha256": "abc"}, "python-sha256", "64"),
        ({"command": "-m 'unclosed"}, "command", "quotes"),
        ({"smoke-skip-imports": "ok, not-a-module"}, "smoke-skip-imports", "not-a-module"),
        ({"smoke-command": "-c 'unclosed"}, "smoke-command", "quotes"),
        ({"no-such-input": "1"}, "no-such-input", "python-version"),
    ],
)
def test_bad_inputs_name_input_and_fix(
    project: Path, values: dict[str, str], input_name: str, fragment: str
) -> None:
    with pytest.raises(InputError) as info:
        spec(values, project)
    assert info.value.input == input_name
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"input `{input_name}`")


def test_workspace_confines_paths(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(InputError) as info:
        BuildSpec.from_inputs({"project-dir": "../outside"}, workspace=project, env={})
    assert info.value.input == "project-dir" and "outside the workspace" in str(info.value)
    with pytest.raises(InputError) as info:
        BuildSpec.from_inputs({"output-dir": str(outside)}, workspace=project, env={})
    assert info.value.input == "output-dir"
    ok = BuildSpec.from_inputs({"requirements": "requirements.txt"}, workspace=project, env={})
    assert ok.requirements == project / "requirements.txt"


def test_token_expression_default_falls_back_to_env(project: Path) -> None:
    s = BuildSpec.from_inputs({}, base_dir=project, env={"GITHUB_TOKEN": "ghs_secret"})
    assert s.github_token == "ghs_secret"
    assert "ghs_secret" not in repr(s)
    assert "github-token" not in s.inputs
    s = BuildSpec.from_inputs({}, base_dir=project, env={})
    assert s.github_token is None


def test_output_dir_blocked_by_a_file(project: Path) -> None:
    (project / "file").write_text("")
    with pytest.raises(InputError) as info:
        spec({"output-dir": "file/dist"}, project)
    assert info.value.input == "output-dir" and "not a folder" in str(info.value)


def test_archive_name(project: Path) -> None:
    s = spec({"name": "svc", "format": "zip", "target": "aarch64-unknown-linux-gnu"}, project)
    assert s.archive_name("3.12.12") == "svc-3.12.12-aarch64-unknown-linux-gnu.zip"
    ft = spec({"python-version": "3.13t"}, project)
    assert ft.archive_name("3.13.5", "x86_64-unknown-linux-gnu").startswith("demo-fastapi-3.13.5t-")


def test_config_single_and_bundles(project: Path) -> None:
    single = project / "portpy.yml"
    single.write_text("python-version: 3.13\nsmoke-test: false\nexclude: [tests, '*.log']\n")
    (values,) = load_config(single)
    assert values == {"python-version": "3.13", "smoke-test": "false", "exclude": "tests\n*.log"}
    s = spec(values, project)
    assert s.exclude == ("tests", "*.log") and not s.smoke_test

    multi = project / "multi.yml"
    multi.write_text(
        "format: zip\nbundles:\n  - {name: a, python-version: '3.12'}\n  - {name: b, format: tar.xz}\n"
    )
    bundles = load_config(multi)
    assert [b["name"] for b in bundles] == ["a", "b"]
    assert [b["format"] for b in bundles] == ["zip", "tar.xz"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("- a\n- b\n", "mapping"), ("pyhton-version: 3.12\n", "pyhton-version"), ("a: [\n", "YAML")],
)
def test_bad_config(project: Path, text: str, fragment: str) -> None:
    path = project / "bad.yml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(path)
    assert fragment in str(info.value)
