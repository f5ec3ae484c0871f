"""`portpy fetch | check | build | verify` as a user runs them: a subprocess, stdout's last lines."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.fake_github import FakeGitHub
from tests.fixtures.pbs import PbsReleases


def portpy(
    *args: str, cwd: Path, fake: FakeGitHub | None = None, token: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_"))}
    env["XDG_CACHE_HOME"] = str(cwd / ".cache")
    if fake is not None:
        env["GITHUB_API_URL"] = fake.api_url
    if token:
        env["GITHUB_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "portpy_action.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def results(stdout: str) -> list[dict[str, str]]:
    """One mapping per result block; a block starts again at `python-version=`."""
    blocks: list[dict[str, str]] = []
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if not sep or " " in key:
            continue
        if key == "python-version" or not blocks:
            blocks.append({})
        blocks[-1][key] = value
    return blocks


def test_fetch_and_check_resolve_the_same_release(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    token = "ghp_cli_token_0123456789"
    done = portpy(
        "fetch",
        "--python-version",
        "3.12",
        "--dest",
        "rt",
        cwd=tmp_path,
        fake=fake_pbs_github,
        token=token,
    )
    assert done.returncode == 0, done.stderr
    (fetched,) = results(done.stdout)
    assert fetched["python-version"] == pbs_releases.versions["3.12"]
    assert fetched["python-build-tag"] == pbs_releases.latest
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    assert fetched["asset"] == asset.name
    assert fetched["sha256"] == hashlib.sha256(asset.read_bytes()).hexdigest()
    python = Path(fetched["python"])
    assert python == tmp_path / "rt" / "python" / "bin" / "python3"
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True
    )
    assert version.stdout.strip() == str(tmp_path / "rt" / "python")
    assert token not in done.stdout + done.stderr

    done = portpy(
        "check", "--python-version", "3.12", "--name", "svc", cwd=tmp_path, fake=fake_pbs_github
    )
    assert done.returncode == 0, done.stderr
    (checked,) = results(done.stdout)
    assert checked["python-version"] == fetched["python-version"]
    assert checked["archive-name"] == (
        f"svc-{fetched['python-version']}-{pbs_releases.triple}.tar.gz"
    )
    downloads = [r for r in fake_pbs_github.requests("downloads") if r.path.endswith(".tar.gz")]
    assert len(downloads) == 1  # the fetch; check downloads no runtime


def test_unknown_version_lists_what_the_tag_has(
    fake_pbs_github: FakeGitHub, pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    done = portpy("check", "--python-version", "3.9", cwd=tmp_path, fake=fake_pbs_github)
    assert done.returncode == 2  # an input error
    assert "python-version" in done.stderr
    for version in pbs_releases.versions.values():
        assert version in done.stderr


@pytest.mark.slow  # packs whole runtimes, one per bundle
def test_build_from_a_config_makes_every_bundle_then_verify_reads_them(
    pbs_releases: PbsReleases, tmp_path: Path
) -> None:
    runtime = pbs_releases.asset(pbs_releases.latest, "3.12")
    project = tmp_path / "svc"
    (project / "svc").mkdir(parents=True)
    (project / "svc" / "__main__.py").write_text("print('svc says hi')\n")
    config = tmp_path / "portpy.yml"
    config.write_text(
        f"python-archive: {runtime}\n"
        f"python-sha256: {hashlib.sha256(runtime.read_bytes()).hexdigest()}\n"
        "project-dir: svc\n"
        "command: -m svc\n"
        "output-dir: out\n"
        "bundles:\n"
        "  - {name: svc-gz, format: tar.gz}\n"
        "  - {name: svc-zip, format: zip, compile-bytecode: false}\n"
    )
    done = portpy("build", "--config", str(config), "--table", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    built = results(done.stdout)
    assert [Path(b["archive-path"]).name for b in built] == [
        f"svc-gz-{pbs_releases.versions['3.12']}-{pbs_releases.triple}.tar.gz",
        f"svc-zip-{pbs_releases.versions['3.12']}-{pbs_releases.triple}.zip",
    ]
    assert done.stdout.splitlines()[-1].startswith("archive-size=")
    assert "glibc  needed for" in done.stdout  # the --table report
    for block in built:
        archive = Path(block["archive-path"])
        assert archive.parent == tmp_path / "out"  # relative to the config file
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == block["archive-sha256"]
        assert archive.stat().st_size == int(block["archive-size"])

        verified = portpy("verify", str(archive), "--max-glibc", "2.99", cwd=tmp_path)
        assert verified.returncode == 0, verified.stderr
        (report,) = results(verified.stdout)
        assert report["glibc-baseline"] == block["glibc-baseline"]
        assert report["verified"] == "true"

    failed = portpy("verify", built[0]["archive-path"], "--max-glibc", "2.2", cwd=tmp_path)
    assert failed.returncode == 3  # a portability failure
    assert "newer than glibc 2.2" in failed.stderr
