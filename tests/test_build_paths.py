"""Where a build runs must not change what it makes, nor fail it.

- Earlier archives in the output folder stay out of `app/`, even when the
  output folder is the project folder.
- The bundled interpreter writes no byte code while installing or being
  probed, so a local sdist or an oddly named runtime archive still builds.
- The manifest inside records no path of the build machine: the same inputs
  from another place give the same bytes.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.bundle.manifest import MANIFEST_NAME
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.sdist import local_project
from tests.fixtures.trash import settle


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


def runtime_inputs(pbs_releases: PbsReleases, cache: Path) -> dict[str, str]:
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    return {
        "cache-dir": str(cache),
        "python-version": "3.12",
        "python-archive": str(asset),
        "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
        "name": "demo",
        "command": "app/main.py",
        "smoke-test": "false",
        "compile-bytecode": "false",
    }


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "main.py").write_text("print('hi')\n")
    return folder


def run_build(values: dict[str, str], base: Path) -> BuildResult:
    return build(BuildSpec.from_inputs(values, base_dir=base, env={}), log=quiet_log())


def names_in(archive: Path) -> list[str]:
    with tarfile.open(archive) as opened:
        return opened.getnames()


def manifest_in(archive: Path) -> dict[str, object]:
    with tarfile.open(archive) as opened:
        member = opened.extractfile(f"demo/{MANIFEST_NAME}")
        assert member is not None
        data: dict[str, object] = json.load(member)
        return data


# --------------------------------------------------------------------------
# earlier outputs


@pytest.mark.slow  # two whole builds
def test_an_output_folder_that_is_the_project_folder_does_not_grow_the_archive(
    pbs_releases: PbsReleases, tmp_path: Path, build_cache: Path
) -> None:
    project = make_project(tmp_path / "project")
    values = runtime_inputs(pbs_releases, build_cache) | {
        "project-dir": "project",
        "output-dir": "project",
    }
    first = run_build(values, tmp_path)
    second = run_build(values, tmp_path)
    assert second.archive == first.archive
    assert second.sha256 == first.sha256
    app = [n.removeprefix("demo/app/") for n in names_in(second.archive) if "/app/" in n]
    assert app == ["main.py"]
    settle(project)  # the work folders are removed in the background
    assert sorted(p.name for p in project.iterdir()) == sorted(
        [
            "main.py",
            first.archive.name,
            first.sha256_file.name,
            first.manifest_path.name,
            first.sbom_path.name,
        ]
    )


def test_folders_holding_earlier_archives_or_build_folders_stay_out(
    pbs_releases: PbsReleases, tmp_path: Path, build_cache: Path
) -> None:
    project = make_project(tmp_path / "project")
    old = project / "old-dist"
    old.mkdir()
    (old / "demo-1.tar.gz").write_bytes(b"an earlier archive")
    (old / "demo-1.tar.gz.sha256").write_text(f"{'0' * 64}  demo-1.tar.gz\n")
    # An interrupted build's folder marks its parent as an output folder too.
    (project / "nested" / ".portpy-build-abc123").mkdir(parents=True)
    (project / "nested" / ".portpy-build-abc123" / "half.bin").write_bytes(b"x")
    (project / "nested" / "demo.tar.gz").write_bytes(b"unfinished")
    # A `.sha256` that is not ours does not hide its folder.
    (project / "sums").mkdir()
    (project / "sums" / "notes.sha256").write_text("my own checksum notes\n")
    values = runtime_inputs(pbs_releases, build_cache) | {
        "project-dir": "project",
        "output-dir": "out",
    }
    result = run_build(values, tmp_path)
    app = sorted(n.removeprefix("demo/app/") for n in names_in(result.archive) if "/app/" in n)
    assert app == ["main.py", "sums", "sums/notes.sha256"]


@pytest.mark.slow  # a whole build on a cold cache
def test_a_cache_dir_inside_the_project_stays_out(
    pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    # The README's actions/cache example keeps the cache in the workspace, often the project.
    project = make_project(tmp_path / "project")
    values = runtime_inputs(pbs_releases, project / "cache") | {
        "project-dir": "project",
        "output-dir": "out",
    }
    result = run_build(values, tmp_path)
    assert any((project / "cache").iterdir())  # the runtime was kept there
    app = sorted(n.removeprefix("demo/app/") for n in names_in(result.archive) if "/app/" in n)
    assert app == ["main.py"]


# --------------------------------------------------------------------------
# no byte code from the install or the probe


def test_a_local_sdist_builds_with_the_default_installer(
    pbs_releases: PbsReleases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_cache: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # installers read `./mypkg` from the working folder
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as on a runner
    local_project(tmp_path / "mypkg", "my-local-pkg")
    (tmp_path / "requirements.txt").write_text("--no-index\n./mypkg\n")
    make_project(tmp_path / "project")
    values = runtime_inputs(pbs_releases, build_cache) | {
        "project-dir": "project",
        "output-dir": "out",
        "requirements": "requirements.txt",
    }
    result = run_build(values, tmp_path)
    assert ("my-local-pkg", "1.0") in {(d.name, d.version) for d in result.distributions}
    names = names_in(result.archive)
    assert any(n.endswith("site-packages/my_local_pkg/__init__.py") for n in names)
    assert [n for n in names if n.endswith(".pyc")] == []  # compile-bytecode is off


def test_a_runtime_archive_with_a_name_of_its_own_builds(
    pbs_releases: PbsReleases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build_cache: Path
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as on a runner
    values = runtime_inputs(pbs_releases, build_cache)
    renamed = tmp_path / "our-python.tar.gz"
    shutil.copy(values["python-archive"], renamed)
    make_project(tmp_path / "project")
    values |= {"python-archive": str(renamed), "project-dir": "project", "output-dir": "out"}
    result = run_build(values, tmp_path)
    assert result.release.version == pbs_releases.versions["3.12"]  # probed
    assert [n for n in names_in(result.archive) if n.endswith(".pyc")] == []


# --------------------------------------------------------------------------
# reproducible across places


@pytest.mark.slow  # two whole builds
def test_the_manifest_records_no_machine_paths_and_places_do_not_change_the_bytes(
    pbs_releases: PbsReleases, tmp_path: Path, build_cache: Path
) -> None:
    results = []
    for place in ("first/checkout", "second/elsewhere/checkout"):
        root = tmp_path / place
        make_project(root / "project")
        (root / "project" / "requirements.txt").write_text("--no-index\n")
        values = runtime_inputs(pbs_releases, build_cache) | {
            "project-dir": "project",
            "requirements": "project/requirements.txt",
            "output-dir": str(tmp_path / place.replace("/", "-") / "out"),
            "cache-dir": str(tmp_path / place.replace("/", "-") / "cache"),
            # Byte code too: the fast tier's proof that compiled files are reproducible
            # (test_build's two builds of each format are the slow tier's).
            "compile-bytecode": "true",
        }
        results.append(run_build(values, root))
    first, second = results
    assert first.sha256 == second.sha256
    inputs = manifest_in(first.archive)["inputs"]
    assert isinstance(inputs, dict)
    text = json.dumps(inputs)
    assert str(tmp_path) not in text
    assert (
        inputs["python-archive"]
        == Path(runtime_inputs(pbs_releases, build_cache)["python-archive"]).name
    )
    assert inputs["requirements"] == "requirements.txt"  # relative to the project
    assert len(inputs["requirements-sha256"]) == 64
    for gone in ("output-dir", "cache-dir", "project-dir", "github-token", "python-mirror"):
        assert gone not in inputs
