"""`portpy build`: the seed article's steps, made repeatable and checked.

1. get a verified python-build-standalone runtime          (resolve, download, unpack)
2. install the requirements into its own site-packages      (install)
3. put the project beside it as `app/`                      (project)
4. make it movable: scripts, leftover build paths           (relocate)
5. write `run`, precompile, prove portability, describe it  (launcher, compile, scan, manifest)
6. pack one deterministic archive, run it from a moved copy (pack, smoke)
7. move the archive and its `.sha256` to their final names, the manifest beside them

Everything happens in a hidden folder inside the output folder; the archive and
its `.sha256` appear under their final names only after the smoke test passed,
so a failure or Ctrl-C leaves nothing that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from portpy_action.bundle.buildpath import remove_build_paths
from portpy_action.bundle.bytecode import SOURCE_ONLY, compile_bytecode
from portpy_action.bundle.install import (
    Distribution,
    check_path_files,
    check_requirements,
    install_requirements,
    installed_distributions,
    site_packages,
)
from portpy_action.bundle.launcher import write_launcher
from portpy_action.bundle.manifest import (
    MANIFEST_NAME,
    build_record,
    bundle_manifest,
    write_json,
)
from portpy_action.bundle.project import copy_project
from portpy_action.bundle.sbom import SBOM_NAME, bundle_sbom, scan_distributions, write_sbom
from portpy_action.bundle.scripts import relocate_scripts
from portpy_action.check import PortabilityReport, enforce_policy, scan_bundle
from portpy_action.check.smoke import smoke_test
from portpy_action.errors import InputError
from portpy_action.log import Logger
from portpy_action.pack import PackedArchive, archive_mtime, pack
from portpy_action.runtime import Release, fetch_runtime
from portpy_action.spec import BuildSpec

WORK_PREFIX = ".portpy-build-"


@dataclass(frozen=True)
class BuildResult:
    archive: Path
    sha256: str
    size: int
    sha256_file: Path
    # `<archive name>.json` beside the archive: the bundle's manifest plus the
    # archive's sha256/size and the stage timings.
    manifest_path: Path
    # `<archive name>.cdx.json` beside the archive: the CycloneDX SBOM, the same
    # document as the bundle's own `sbom.cdx.json`.
    sbom_path: Path
    release: Release
    glibc_baseline: str | None
    external_libs: tuple[str, ...]
    distributions: tuple[Distribution, ...]
    timings: dict[str, float]
    report: PortabilityReport


def build(spec: BuildSpec, *, log: Logger, client: httpx.Client | None = None) -> BuildResult:
    """Build the bundle `spec` describes; return where the archive is and what it holds."""
    _check_inputs(spec)
    with _work_folder(spec.output_dir) as work:
        bundle = work / spec.name
        bundle.mkdir()
        runtime = fetch_runtime(spec.runtime, bundle, log=log, client=client)
        release = runtime.release

        with log.stage("install", "Install the requirements into the runtime"):
            if spec.requirements is not None:
                install_requirements(
                    runtime.python, spec.requirements, installer=spec.installer, log=log
                )
                check_path_files(runtime.root)
            distributions = installed_distributions(runtime.root)
            for dist in distributions:
                log.info(f"  {dist.name} {dist.version}")

        with log.stage("project", "Copy the project into app/"):
            if spec.project_dir is not None:
                copied = copy_project(
                    spec.project_dir,
                    bundle / "app",
                    exclude=spec.exclude,
                    skip=(spec.output_dir, work),
                )
                log.info(f"  {len(copied)} files from {spec.project_dir}")
            else:
                (bundle / "app").mkdir()

        with log.stage("relocate", "Make scripts and paths relocatable"):
            for script in relocate_scripts(runtime.root):
                log.info(f"  relocatable shebang: python/bin/{script.name}")
            for fix in remove_build_paths(bundle, [work]):
                log.info(f"  {fix.path}: {fix.action}")

        with log.stage("launcher", "Write the run launcher"):
            write_launcher(bundle, spec.name, spec.command)

        if spec.compile_bytecode:
            with log.stage("compile", "Precompile byte code"):
                packages = site_packages(runtime.root)
                compiled = compile_bytecode(
                    runtime.python,
                    [runtime.root / "lib", bundle / "app"],
                    strip=work,
                    log=log,
                    skip=[packages / name for name in SOURCE_ONLY],
                )
                log.info(f"  {compiled} files; left as source: {', '.join(SOURCE_ONLY)}")

        with log.stage("scan", "Measure the glibc baseline and external libraries"):
            report = scan_bundle(bundle)
            enforce_policy(
                report, max_glibc=spec.max_glibc, external_libs=spec.external_libs, log=log
            )

        with log.stage("manifest", f"Describe the bundle in {MANIFEST_NAME}"):
            manifest = bundle_manifest(
                name=spec.name,
                command=spec.command,
                release=release,
                distributions=distributions,
                inputs=spec.inputs,
                portability=report.to_dict(),
            )
            write_json(bundle / MANIFEST_NAME, manifest)

        with log.stage("sbom", f"List the bundle's components in {SBOM_NAME}"):
            # After every stage that rewrites files: the RECORD hashes are final here.
            sbom = bundle_sbom(
                name=spec.name,
                release=release,
                distributions=scan_distributions(site_packages(runtime.root), bundle),
                mtime=archive_mtime(),
            )
            write_sbom(bundle / SBOM_NAME, sbom)

        name = spec.archive_name(release.version, release.target)
        with log.stage("pack", f"Pack {name}"):
            packed = pack(bundle, work / name, format=spec.format, mtime=archive_mtime())
            log.info(f"  {packed.size} bytes, sha256 {packed.sha256}")

        smoke = None
        if spec.smoke_test:
            with log.stage("smoke", "Run the archive from a moved copy"):
                # The archive is unpacked before the build folder is hidden.
                smoke = smoke_test(
                    packed.path, skip_imports=spec.smoke_skip_imports, log=log, hide=(work,)
                )

        published = _publish(packed, spec.output_dir)
        record = build_record(
            manifest,
            archive=published.path,
            sha256=published.sha256,
            size=published.size,
            timings=log.timings,
            smoke=smoke.to_dict() if smoke else None,
        )
        manifest_copy = write_json(spec.output_dir / f"{name}.json", record)
        sbom_copy = write_sbom(spec.output_dir / f"{name}.cdx.json", sbom)

    return BuildResult(
        archive=published.path,
        sha256=published.sha256,
        size=published.size,
        sha256_file=published.sha256_file,
        manifest_path=manifest_copy,
        sbom_path=sbom_copy,
        release=release,
        glibc_baseline=report.glibc_baseline_text if report.glibc_baseline else None,
        external_libs=tuple(sorted({lib.soname for lib in report.external_libs})),
        distributions=tuple(distributions),
        timings=dict(log.timings),
        report=report,
    )


def _check_inputs(spec: BuildSpec) -> None:
    """Fail before any download on inputs that cannot work (they may have changed since the spec)."""
    if spec.requirements is not None:
        if not spec.requirements.is_file():
            raise InputError(
                "requirements",
                f"`{spec.requirements}` does not exist",
                hint="Check the path of the requirements file, relative to the working folder",
            )
        check_requirements(spec.requirements)
    if spec.project_dir is not None and not spec.project_dir.is_dir():
        raise InputError(
            "project-dir",
            f"`{spec.project_dir}` is not a folder",
            hint="Check the path of the project folder, relative to the working folder",
        )


@contextmanager
def _work_folder(output_dir: Path) -> Iterator[Path]:
    """A hidden folder inside `output_dir` (same filesystem: the final renames are atomic)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=output_dir))
    except OSError as exc:
        raise InputError(
            "output-dir",
            f"`{output_dir}` cannot be written ({exc.strerror or exc})",
            hint="Choose a folder you can write to",
        ) from exc
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(packed: PackedArchive, output_dir: Path) -> PackedArchive:
    """Move a finished archive and its `.sha256` from the work folder to their final names."""
    archive = output_dir / packed.path.name
    sha256_file = output_dir / packed.sha256_file.name
    os.replace(packed.path, archive)
    os.replace(packed.sha256_file, sha256_file)
    return PackedArchive(archive, packed.sha256, packed.size, sha256_file)
