"""`build()` end to end on the fixture runtime, with wheels made in the test.

Runtimes come from fake pbs tarballs through `python-archive`: nothing here
touches GitHub or a package index.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

import portpy_action.pack
from portpy_action.build import BuildResult, build
from portpy_action.bundle.manifest import MANIFEST_NAME
from portpy_action.bundle.sbom import SBOM_NAME, check_sbom, distribution_purl
from portpy_action.choices import FORMATS
from portpy_action.errors import InputError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases, cache_root, pyenv_root
from tests.fixtures.trash import settle
from tests.fixtures.wheels import (
    NATIVE_ANSWER,
    NATIVE_MODULE,
    NATIVE_NAME,
    PURE_GREETING,
    PURE_MODULE,
    PURE_NAME,
    PURE_SCRIPT,
    WheelSet,
)

REPO = Path(__file__).resolve().parent.parent
GREET_PY = "import os, sys\nprint('greet', os.getcwd(), *sys.argv[1:])\n"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """A project, its requirements and the runtime archive: a build's raw inputs."""

    folder: Path
    values: dict[str, str]

    @property
    def output_dir(self) -> Path:
        return self.folder / "project" / "dist"

    def spec(self, **changes: str) -> BuildSpec:
        values = self.values | {k.replace("_", "-"): v for k, v in changes.items()}
        return BuildSpec.from_inputs(values, base_dir=self.folder, env={})


def quiet_log() -> Logger:
    return Logger(io.StringIO(), github=False, tty=False)


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory,
    pbs_releases: PbsReleases,
    test_wheels: WheelSet,
    build_cache: Path,
) -> Inputs:
    folder = tmp_path_factory.mktemp("inputs")
    project = folder / "project"
    for relative, text in {
        "greet.py": GREET_PY,
        "data/config.toml": "answer = 42\n",
        "build.log": "left out by exclude\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "__pycache__/greet.cpython-312.pyc": "stale",
        "dist/old-build.tar.gz": "an earlier archive in the output folder",
    }.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    test_wheels.requirements(folder / "requirements.txt")
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    values = {
        "python-version": "3.12",
        "python-archive": str(asset),
        "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
        "cache-dir": str(build_cache),
        "requirements": "requirements.txt",
        "project-dir": "project",
        "output-dir": "project/dist",  # inside the project, like the action's default
        "exclude": "*.log",
        "name": "demo",
        "command": "-m greet 'fixed word'",
        "smoke-command": "run 'smoke word'",
    }
    return Inputs(folder, values)


@pytest.fixture(scope="module")
def demo(inputs: Inputs) -> BuildResult:
    """The tar.gz bundle, built once for the tests that only read it."""
    return build(inputs.spec(), log=quiet_log())


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as opened:
        return {m.name: m for m in opened.getmembers()}


def run_hidden(script: str, hide: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (sh) in a mount namespace where every folder in `hide` is an empty tmpfs."""
    mounts = "".join(f'mount -t tmpfs tmpfs "{p}"\n' for p in hide if p.exists())
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"set -e\n{mounts}{script}", "sh", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


# --------------------------------------------------------------------------
# the bundle


def test_the_moved_bundle_runs_with_the_build_folder_and_source_python_hidden(
    demo: BuildResult, inputs: Inputs, test_wheels: WheelSet, build_cache: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "some other place"
    elsewhere.mkdir()
    subprocess.run(["tar", "-xzf", str(demo.archive), "-C", str(elsewhere)], check=True)
    bundle = elsewhere / "demo"
    script = f"""
cd /
"$1/python/bin/{PURE_SCRIPT}"
"$1/python/bin/python3" -c 'import {PURE_MODULE}, {NATIVE_MODULE}, sys; print({NATIVE_MODULE}.probe(), sys.prefix)'
cd /tmp && "$1/run" 'an extra'
"""
    hide = [pyenv_root(), cache_root(), build_cache, inputs.folder, test_wheels.folder]
    result = run_hidden(script, hide, str(bundle))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"{PURE_GREETING} {bundle}/python",
        f"{NATIVE_ANSWER} {bundle}/python",
        "greet /tmp fixed word an extra",
    ]


def test_the_archive_holds_one_folder_with_runtime_app_launcher_and_manifest(
    demo: BuildResult,
) -> None:
    names = members(demo.archive)
    assert {n.split("/")[0] for n in names} == {"demo"}
    top = {n.split("/")[1] for n in names if n.count("/") >= 1}
    assert top == {"python", "app", "run", MANIFEST_NAME, SBOM_NAME}
    assert names["demo/run"].mode == 0o755
    app = {n.removeprefix("demo/app/") for n in names if n.startswith("demo/app/")}
    assert {"greet.py", "data", "data/config.toml"} <= app
    assert not {n for n in app if n.startswith((".git", "dist", "build.log"))}
    # The project's stale pyc was left out; the compile stage wrote a real one.
    assert names["demo/app/__pycache__/greet.cpython-312.pyc"].size > len("stale")


def test_the_manifest_describes_runtime_distributions_inputs_and_portability(
    demo: BuildResult, inputs: Inputs
) -> None:
    with tarfile.open(demo.archive) as opened:
        extracted = opened.extractfile(f"demo/{MANIFEST_NAME}")
        assert extracted is not None
        inside = json.load(extracted)
    release = demo.release
    assert inside["python"] == {
        "version": release.version,
        "build-tag": release.tag,
        "target": release.target,
        "flavor": release.flavor,
        "asset": release.asset_name,
        "asset-sha256": inputs.values["python-sha256"],
    }
    distributions = {(d["name"], d["version"]) for d in inside["distributions"]}
    assert {(PURE_NAME, "1.0"), (NATIVE_NAME, "2.0")} <= distributions
    assert inside["inputs"]["requirements"] == "requirements.txt"
    assert "github-token" not in inside["inputs"]
    assert inside["portability"]["glibc-baseline"] == demo.glibc_baseline
    assert inside["smoke"] == {"skip-imports": [], "command": ["run", "smoke word"]}
    assert "timings" not in inside  # would make the archive differ from run to run

    beside = json.loads(demo.manifest_path.read_text())
    assert demo.manifest_path == demo.archive.with_name(demo.archive.name + ".json")
    assert beside["archive"] == {
        "name": demo.archive.name,
        "sha256": demo.sha256,
        "size": demo.size,
    }
    stages = {"install", "project", "relocate", "launcher", "compile", "scan", "pack", "smoke"}
    assert stages <= set(beside["timings"])
    assert {PURE_MODULE, NATIVE_MODULE} <= set(beside["smoke-test"]["imported"])
    assert beside["smoke-test"]["mode"] == "target-root"
    assert beside["smoke-test"]["command"] == ["run", "smoke word"]
    run_only = ("archive", "timings", "smoke-test")
    assert {k: v for k, v in beside.items() if k not in run_only} == inside


def test_both_manifests_follow_the_published_schema(demo: BuildResult) -> None:
    """docs/manifest.schema.json describes the real manifests, inside and beside."""
    schema = json.loads((REPO / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    with tarfile.open(demo.archive) as opened:
        extracted = opened.extractfile(f"demo/{MANIFEST_NAME}")
        assert extracted is not None
        inside = json.load(extracted)
    beside = json.loads(demo.manifest_path.read_text(encoding="utf-8"))
    for manifest in (inside, beside):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(manifest)]
        assert errors == []
    assert {"portability", "smoke-test", "timings", "archive"} <= set(beside)


def test_no_byte_of_the_archive_names_the_build_folder(demo: BuildResult) -> None:
    needle = str(demo.archive.parent).encode()
    with tarfile.open(demo.archive) as opened:
        for member in opened:
            if member.isfile():
                data = opened.extractfile(member)
                assert data is not None
                assert needle not in data.read(), member.name


def test_the_result_reports_what_was_built(demo: BuildResult) -> None:
    assert demo.archive.name == f"demo-{demo.release.version}-{demo.release.target}.tar.gz"
    assert demo.size == demo.archive.stat().st_size
    assert {d.name for d in demo.distributions} >= {PURE_NAME, NATIVE_NAME}
    # A C extension compiled on this machine needs this machine's glibc, at least 2.17.
    assert demo.glibc_baseline is not None
    assert tuple(int(p) for p in demo.glibc_baseline.split(".")) >= (2, 17)
    settle(demo.archive.parent)  # the work folder is removed in the background
    leftovers = [p.name for p in demo.archive.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert "cleanup" in demo.timings  # how long this run spent on removing it


def test_verify_gives_the_builds_portability_verdict(demo: BuildResult, inputs: Inputs) -> None:
    from portpy_action.check import verify_archive
    from portpy_action.check.policy import policy_for_glibc

    # Judged once, with max-glibc's policy: the step summary lists what the report has.
    assert demo.report.policy == policy_for_glibc(inputs.spec().max_glibc).name
    assert demo.external_libs == tuple(sorted({lib.soname for lib in demo.report.external_libs}))
    verified = verify_archive(
        demo.archive, max_glibc=None, external_libs="error", smoke=False, log=quiet_log()
    ).report
    assert verified.policy == demo.report.policy
    assert verified.external_libs == demo.report.external_libs
    assert verified.search_paths == demo.report.search_paths
    assert verified.glibc_baseline == demo.report.glibc_baseline


def test_the_sbom_inside_and_beside_lists_runtime_and_every_distribution(
    demo: BuildResult, inputs: Inputs, tmp_path: Path
) -> None:
    with tarfile.open(demo.archive) as opened:
        extracted = opened.extractfile(f"demo/{SBOM_NAME}")
        assert extracted is not None
        inside = extracted.read()
        # The SBOM and what RECORDs name (site-packages, console scripts): not the whole runtime.
        wanted = [
            m
            for m in opened
            if m.name == f"demo/{SBOM_NAME}"
            or "/site-packages/" in m.name
            or m.name.startswith("demo/python/bin/")
        ]
        opened.extractall(tmp_path, members=wanted, filter="tar")
    assert demo.sbom_path == demo.archive.with_name(demo.archive.name + ".cdx.json")
    assert demo.sbom_path.read_bytes() == inside
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(inside.decode())
    assert errors is None, str(errors)
    document = json.loads(inside)
    purls = {c["purl"]: c["version"] for c in document["components"]}
    release = demo.release
    [runtime] = [c for c in document["components"] if c["name"] == "cpython"]
    assert (runtime["version"], runtime["hashes"][0]["content"]) == (
        release.version,
        inputs.values["python-sha256"],
    )
    for dist in demo.distributions:
        assert purls[distribution_purl(dist.name, dist.version)] == dist.version
    assert document["metadata"]["component"]["name"] == "demo"
    # The unpacked bundle's site-packages is what the SBOM lists, RECORDs included.
    bundle = tmp_path / "demo"
    [site] = bundle.glob("python/lib/python3*/site-packages")
    assert check_sbom(bundle / SBOM_NAME, site, bundle) == len(demo.distributions)


# --------------------------------------------------------------------------
# reproducible


@pytest.mark.parametrize(
    "fmt",
    # Each packs a whole runtime once or twice more (xz and zstd at their strongest
    # levels: minutes): the slow tier's. The fast tier has test_build_paths' two builds
    # from two places (byte code included) and test_pack's formats on small trees.
    [pytest.param(fmt, marks=pytest.mark.slow) for fmt in FORMATS],
)
def test_two_builds_give_the_same_bytes(
    demo: BuildResult, inputs: Inputs, fmt: str, tmp_path: Path
) -> None:
    # The demo build covers tar.gz with every stage; the others skip the smoke test.
    changes = {"format": fmt} if fmt == "tar.gz" else {"format": fmt, "smoke_test": "false"}
    first = demo if fmt == "tar.gz" else build(inputs.spec(**changes), log=quiet_log())
    kept = tmp_path / first.archive.name
    shutil.copy(first.archive, kept)
    second = build(inputs.spec(**changes), log=quiet_log())
    assert second.archive == first.archive
    assert second.archive.read_bytes() == kept.read_bytes()
    assert second.sha256 == first.sha256
    check = subprocess.run(
        ["sha256sum", "-c", second.sha256_file.name],
        cwd=second.archive.parent,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == f"{second.archive.name}: OK"


# --------------------------------------------------------------------------
# bad input: a clear error and no archive


def assert_no_archive(output_dir: Path) -> None:
    left = sorted(p.name for p in output_dir.iterdir()) if output_dir.exists() else []
    assert left == [], left


@pytest.fixture
def fresh(inputs: Inputs, tmp_path: Path) -> Inputs:
    """The module's inputs with their own, empty output folder (no smoke test, no byte code)."""
    changes = {
        "output-dir": str(tmp_path / "out"),
        "smoke-test": "false",
        "compile-bytecode": "false",
    }
    return dataclasses.replace(inputs, values=inputs.values | changes)


def test_a_missing_requirements_file(fresh: Inputs, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        fresh.spec(requirements=str(tmp_path / "nope.txt"))
    assert caught.value.input == "requirements"

    # Gone between reading the inputs and building: build() says so too.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{PURE_NAME}\n")
    spec = fresh.spec(requirements=str(requirements))
    requirements.unlink()
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "requirements"
    assert "does not exist" in str(caught.value)
    assert_no_archive(spec.output_dir)


def test_a_requirement_that_is_not_on_the_index(
    fresh: Inputs, test_wheels: WheelSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # uv wraps its messages this narrow: still recognised
    requirements = test_wheels.requirements(tmp_path / "requirements.txt", "no-such-dist-xyz==1.0")
    spec = fresh.spec(requirements=str(requirements))
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "requirements"
    assert "`no-such-dist-xyz` was not found on the package index" in str(caught.value)
    assert (caught.value.file, caught.value.line) == (str(requirements), 5)
    assert_no_archive(spec.output_dir)


def test_a_missing_project_folder(fresh: Inputs, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        fresh.spec(project_dir=str(tmp_path / "nowhere"))
    assert caught.value.input == "project-dir"

    project = tmp_path / "project"
    project.mkdir()
    spec = fresh.spec(project_dir=str(project))
    project.rmdir()
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "project-dir"
    assert_no_archive(spec.output_dir)


def test_an_editable_requirement(fresh: Inputs, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{PURE_NAME}\n-e ./project\n")
    spec = fresh.spec(requirements=str(requirements))
    with pytest.raises(InputError) as caught:
        build(spec, log=quiet_log())
    assert caught.value.input == "requirements"
    assert "editable" in str(caught.value)
    assert (caught.value.file, caught.value.line) == (str(requirements), 2)
    assert_no_archive(spec.output_dir)


_BUILD_INTO = """
import dataclasses, io, json, sys
from pathlib import Path
from portpy_action.build import build
from portpy_action.errors import InputError
from portpy_action.log import Logger
from portpy_action.spec import BuildSpec

values, base, output = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
spec = dataclasses.replace(BuildSpec.from_inputs(values, base_dir=base, env={}), output_dir=output)
try:
    build(spec, log=Logger(io.StringIO(), github=False, tty=False))
except InputError as error:
    print(json.dumps({"input": error.input, "message": str(error)}))
"""


def test_an_unwritable_output_folder(fresh: Inputs, tmp_path: Path) -> None:
    # Root writes anywhere: a read-only bind mount is what stops it.
    output = tmp_path / "readonly"
    output.mkdir()
    script = (
        f'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && '
        f'exec "{sys.executable}" -c "$2" "$3" "$4" "$1"'
    )
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            str(output),
            _BUILD_INTO,
            json.dumps(fresh.values),
            str(fresh.folder),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout)
    assert error["input"] == "output-dir"
    assert "cannot be written" in error["message"]
    assert_no_archive(output)


def test_an_interrupted_pack_leaves_nothing(fresh: Inputs, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(root: Path, out: io.BufferedWriter, **kwargs: object) -> None:
        out.write(b"half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(portpy_action.pack, "write_archive", interrupted)
    spec = fresh.spec()
    with pytest.raises(KeyboardInterrupt):
        build(spec, log=quiet_log())
    assert_no_archive(spec.output_dir)
