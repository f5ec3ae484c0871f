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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from portpy_action.bundle.buildpath import remove_build_paths
from portpy_action.bundle.bytecode import (
    SOURCE_ONLY,
    STDLIB_SOURCE_ONLY,
    compile_bytecode,
    source_only_paths,
)
from portpy_action.bundle.command import check_module, resolve_command
from portpy_action.bundle.cross import install_plan_cross, prepare_cross, retarget_scripts
from portpy_action.bundle.dependencies import InstalledProject, install_plan, plan_install
from portpy_action.bundle.entrypoints import console_scripts
from portpy_action.bundle.envcache import EnvironmentCache
from portpy_action.bundle.install import (
    check_path_files,
    check_requirements,
    installed_distributions,
    site_packages,
)
from portpy_action.bundle.launcher import write_bin_launchers, write_launcher
from portpy_action.bundle.manifest import (
    MANIFEST_NAME,
    SmokeSettings,
    bundle_manifest,
    sidecar_manifest,
    write_json,
)
from portpy_action.bundle.manifest_inputs import content_inputs
from portpy_action.bundle.project import WORK_FOLDER_PREFIX, copy_project
from portpy_action.bundle.repair import repair_elf_files
from portpy_action.bundle.sbom import SBOM_NAME, bundle_sbom, scan_distributions, write_sbom
from portpy_action.bundle.scripts import relocate_scripts
from portpy_action.bundle.strip import strip_binaries, strip_tool, tool_version
from portpy_action.bundle.vendor import vendor_external_libs
from portpy_action.check import PortabilityReport, enforce_policy, scan_bundle
from portpy_action.check.arch import check_architecture
from portpy_action.check.emulation import smoke_emulator
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.scan import read_folder_facts
from portpy_action.check.smoke import smoke_test
from portpy_action.distributions import Distribution
from portpy_action.errors import InputError, writing_to
from portpy_action.log import Logger
from portpy_action.pack import PackedArchive, Segment, archive_mtime, pack
from portpy_action.packcache import keep_segment, kept_segment, segment_key
from portpy_action.runtime import Release, fetch_runtime
from portpy_action.runtime.prepared import sysconfig_sources
from portpy_action.runtime.probe import arch_of
from portpy_action.runtime.unpack import TOP
from portpy_action.scratch import Discarded, scratch_folder, sweep, sweep_trash
from portpy_action.spec import BuildSpec

WORK_PREFIX = WORK_FOLDER_PREFIX
# strip-binaries names this many files it could not strip (a cross build's strip
# may fail on every one), then counts the rest.
_STRIP_WARNINGS = 5


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

    def outputs(self) -> dict[str, str]:
        """The results every front end reports: the CLI's `key=value` lines, the
        action's outputs and the step summary all start from this one mapping.

        Paths are absolute (the action rewrites them relative to the workspace).
        No glibc baseline (no ELF file needs glibc) is the empty string, as GitHub
        outputs spell "nothing"; only human text says `none`.
        """
        # The CLI prints one block per bundle: it starts at python-version, ends at archive-size.
        return {
            "python-version": self.release.version,
            "python-build-tag": self.release.tag,
            "target": self.release.target,
            "glibc-baseline": self.glibc_baseline or "",
            "manifest-path": str(self.manifest_path),
            "sbom-path": str(self.sbom_path),
            "archive-path": str(self.archive),
            "archive-name": self.archive.name,
            "archive-sha256": self.sha256,
            "archive-size": str(self.size),
        }


def build(spec: BuildSpec, *, log: Logger, client: httpx.Client | None = None) -> BuildResult:
    """Build the bundle `spec` describes; return where the archive is and what it holds."""
    _check_inputs(spec)
    # pyproject.toml and lock files are read now: a broken one fails before any download.
    plan = plan_install(spec.requirements, spec.project_dir, install_project=spec.install_project)
    vendoring = spec.external_libs == "vendor"  # the one stage that writes into python/ late
    cache = EnvironmentCache(
        plan,
        spec.installer,
        spec.compile_bytecode,
        spec.runtime.cache_dir,
        log,
        read_only=not vendoring,
        stripped=tool_version(strip_tool()) if spec.strip_binaries else "",
    )
    with (
        _work_folder(spec.output_dir, log) as work,
        # A hit may move the cached environment in, not copy it; it goes back after pack.
        cache.borrowing(work, work / spec.name / TOP),
    ):
        bundle = work / spec.name
        bundle.mkdir()
        # The tool's own folders: never part of the project or of what gets installed.
        tool_folders = (spec.output_dir, work, spec.runtime.cache_dir)
        runtime = fetch_runtime(
            spec.runtime,
            bundle,
            log=log,
            client=client,
            cached=True,
            compile_stdlib=spec.compile_bytecode,
            substitute=cache.lookup,  # a hit: python/ as an earlier build left it after compile
        )
        release = runtime.release
        # Another architecture: its interpreter never runs here (bundle/cross.py).
        cross = prepare_cross(spec.runtime, release, spec.max_glibc, work, log=log, client=client)

        with log.stage("install", "Install the requirements into the runtime"):
            restored = runtime.installed
            if restored:  # python/ holds everything: what the runtime came with was kept apart
                own = set(cache.runtime_distributions)
            else:
                own = {d.name for d in installed_distributions(runtime.root)}  # the runtime's pip
            installed: InstalledProject | None = None
            if not restored and not plan.empty:
                if cross is not None:
                    installed = install_plan_cross(
                        plan,
                        cross,
                        runtime.root,
                        installer=spec.installer,
                        work=work,
                        log=log,
                        skip=tool_folders,
                    )
                else:
                    installed = install_plan(
                        plan,
                        runtime.python,
                        installer=spec.installer,
                        work=work,
                        log=log,
                        skip=tool_folders,
                    )
                check_path_files(runtime.root)
            distributions = installed_distributions(runtime.root)
            for dist in distributions:
                log.info(f"  {dist.name} {dist.version}")

        with log.stage("repair", "Repair ELF files built from sdists"):
            if not restored:  # a restored python/ was repaired when it was kept
                for repair in repair_elf_files(bundle, build_prefix=WORK_PREFIX):
                    log.info(f"  {repair.path}: {repair.action}")

        with log.stage("project", "Copy the project into app/"):
            if spec.project_dir is not None:
                copied = copy_project(
                    spec.project_dir,
                    bundle / "app",
                    exclude=spec.exclude,
                    skip=tool_folders,
                    leave_out=installed.leave_out(spec.command) if installed else None,
                )
                log.info(f"  {len(copied)} files from {spec.project_dir}")
            else:
                (bundle / "app").mkdir()

        with log.stage("relocate", "Make scripts and paths relocatable"):
            # A restored python/ is relocated; app/ gets the manifest stage's last look.
            if not restored:
                if cross is not None:
                    retarget_scripts(runtime.root, cross.host.root)
                for script in relocate_scripts(runtime.root):
                    log.info(f"  relocatable shebang: python/bin/{script.name}")
                for fix in remove_build_paths(bundle, [work]):
                    log.info(f"  {fix.path}: {fix.action}")

        with log.stage("launcher", "Write the run launcher"):
            scripts = console_scripts(runtime.root)
            entry = resolve_command(spec.command, bundle, scripts)
            if entry.module and cross is None:  # a cross build's interpreter cannot run here
                check_module(runtime.python, bundle, entry.module, log=log)
            write_launcher(bundle, spec.name, spec.command, entry=entry)
            log.info(f"  run starts: {entry.describe()}")
            if spec.launchers == "all":
                mine = [s for s in scripts.values() if s.distribution not in own]
                for path in write_bin_launchers(bundle, spec.name, [s.name for s in mine]):
                    log.info(f"  launcher: bin/{path.name}")

        if spec.compile_bytecode:
            with log.stage("compile", "Precompile byte code"):
                packages = site_packages(runtime.root)
                # Only what changed: the stdlib comes compiled from the prepared-runtime
                # cache, site-packages from the environment cache on a hit.
                if runtime.prepared_key is None:  # unpacked here: nothing compiled yet
                    folders = [runtime.root / "lib", bundle / "app"]
                elif restored:
                    folders = [bundle / "app"]
                else:
                    folders = [packages, bundle / "app"]
                compiled = compile_bytecode(
                    cross.host.python if cross else runtime.python,  # same minor line
                    folders,
                    # Names as `python/...` and `app/...`, whatever the bundle's name.
                    strip=bundle,
                    log=log,
                    skip=source_only_paths(packages),
                    # fetch_runtime wrote the real prefix into these; relocate took it out.
                    files=[] if restored else sysconfig_sources(runtime.root),
                )
                left = ", ".join((*SOURCE_ONLY, *STDLIB_SOURCE_ONLY))
                log.info(f"  {compiled} files; left as source: {left}")

        if spec.strip_binaries:
            with log.stage("strip", "Strip symbol tables and debug info from ELF files"):
                if not restored:  # a restored python/ was stripped when it was kept
                    _strip(runtime.root, bundle, arch_of(release.target), log)

        # A new environment is kept for the next build: moved into the cache once packed,
        # or copied now when vendoring will write into it.
        keeping = not restored and cache.key.digest is not None
        if keeping and vendoring:
            with log.stage("cache", "Keep the installed environment for the next build"):
                cache.keep(runtime.root, own)

        if vendoring:
            cache.folder_facts = None  # python/ changes here: the kept facts no longer hold
            with log.stage("vendor", "Copy external libraries into the bundle"):
                for lib in vendor_external_libs(bundle, max_glibc=spec.max_glibc):
                    users = ", ".join(lib.needed_by) or "the libraries above"
                    log.info(f"  {lib.copy} <- {lib.source} (for {users})")

        with log.stage("scan", "Measure the glibc baseline and external libraries"):
            if keeping and not vendoring:  # read once: for this scan and the next build's
                cache.folder_facts = read_folder_facts(bundle, TOP)
            # python/'s ELF files as read when its environment was kept (or just now).
            known = () if cache.folder_facts is None else (cache.folder_facts,)
            check_architecture(
                bundle,
                arch_of(release.target),
                runtime.root,
                known={facts.folder: facts.arches for facts in known},
            )
            # Judged once, with the policy max-glibc selects; RPATHs naming `work` fail.
            policy = policy_for_glibc(spec.max_glibc)
            report = scan_bundle(bundle, policy=policy, build_dirs=(work,), facts=known)
            enforce_policy(
                report, max_glibc=spec.max_glibc, external_libs=spec.external_libs, log=log
            )

        with log.stage("manifest", f"Describe the bundle in {MANIFEST_NAME}"):
            manifest = bundle_manifest(
                name=spec.name,
                command=spec.command,
                release=release,
                distributions=distributions,
                inputs=content_inputs(spec),
                portability=report.to_dict(),
                sources={
                    "requirements": plan.source.describe(spec.project_dir) if plan.source else None,
                    "project": installed.describe() if installed else None,
                    "entry": entry.describe(),
                },
                smoke=SmokeSettings(spec.smoke_skip_imports, spec.smoke_command),
            )
            write_json(bundle / MANIFEST_NAME, manifest)
            # The last look for the build folder's path, now that every file is written
            # (a restored python/ had its look before it was kept, and nothing wrote to it).
            settled = [runtime.root] if restored and not vendoring else []
            for fix in remove_build_paths(bundle, [work], leave_out=settled):
                log.info(f"  {fix.path}: {fix.action}")

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
            packed = _pack(bundle, work / name, spec, cache, log=log)
            log.info(f"  {packed.size} bytes, sha256 {packed.sha256}")
        # python/ is packed: the smoke test runs the archive.
        if restored:
            cache.give_back(runtime.root)
        elif keeping and not vendoring:
            with log.stage("cache", "Keep the installed environment for the next build"):
                cache.keep(runtime.root, own, move=True)
                _keep_segment(packed, bundle.name, spec, cache, log=log)

        smoke = None
        emulator = smoke_emulator(arch_of(release.target), log=log) if spec.smoke_test else None
        if emulator is not None:
            with log.stage("smoke", "Run the archive from a moved copy"):
                # The archive is unpacked before the build folder is hidden.
                smoke = smoke_test(
                    packed.path,
                    skip_imports=spec.smoke_skip_imports,
                    log=log,
                    hide=(work,),
                    emulator=emulator,
                    max_glibc=spec.max_glibc,
                    command=spec.smoke_command,
                )

        published = _publish(packed, spec.output_dir)
        sidecar = sidecar_manifest(
            manifest,
            archive=published.path,
            sha256=published.sha256,
            size=published.size,
            timings=log.timings,
            smoke=smoke.to_dict() if smoke else None,
        )
        manifest_copy = write_json(spec.output_dir / f"{name}.json", sidecar)
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


def _pack(
    bundle: Path, archive: Path, spec: BuildSpec, cache: EnvironmentCache, *, log: Logger
) -> PackedArchive:
    """Pack the bundle; python/'s gzip members come from the cache when python/ did."""
    mtime = archive_mtime()
    if spec.format != "tar.gz" or not cache.read_only or cache.key.digest is None:
        return pack(bundle, archive, format=spec.format, mtime=mtime)
    # python/ comes from the environment cache, or goes into it: its members may be reused.
    if cache.entry_id is None:  # not kept yet: its members are kept with it (_keep_segment)
        return pack(bundle, archive, format="tar.gz", mtime=mtime, segment=Segment(TOP))
    key = segment_key(cache.entry_id, name=bundle.name, mtime=mtime)
    with kept_segment(spec.runtime.cache_dir, key) as kept:
        packed = pack(bundle, archive, format="tar.gz", mtime=mtime, segment=Segment(TOP, kept))
    if kept is not None:
        log.info(f"  python/ as packed before ({key[:12]})")
    else:
        _keep_segment(packed, bundle.name, spec, cache, log=log)
    return packed


def _keep_segment(
    packed: PackedArchive, name: str, spec: BuildSpec, cache: EnvironmentCache, *, log: Logger
) -> None:
    """Keep python/'s members of `packed` for the next build on the same environment entry."""
    if packed.segment is None or cache.entry_id is None:
        return
    key = segment_key(cache.entry_id, name=name, mtime=archive_mtime())
    if keep_segment(spec.runtime.cache_dir, key, packed.path, packed.segment):
        log.info(f"  kept python/'s packed bytes for the next build ({key[:12]})")


def _strip(root: Path, bundle: Path, arch: str, log: Logger) -> None:
    """strip-binaries: strip python/'s ELF files; say what it saved and what it could not strip."""
    results = strip_binaries(root, tool=strip_tool(arch))
    done = [r for r in results if not r.problem]
    kept = [r for r in results if r.problem]
    for one in kept[:_STRIP_WARNINGS]:
        rel = one.path.relative_to(bundle).as_posix()
        log.warning(f"strip-binaries: `{rel}` kept unstripped: {one.problem}", file=rel)
    if len(kept) > _STRIP_WARNINGS:
        log.warning(f"strip-binaries: {len(kept) - _STRIP_WARNINGS} more files kept unstripped")
    before, after = sum(r.before for r in done), sum(r.after for r in done)
    log.info(f"  {len(done)} files, {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")


def _check_inputs(spec: BuildSpec) -> None:
    """Fail before any download on inputs that cannot work (they may have changed since the spec)."""
    if spec.strip_binaries:
        strip_tool()  # binutils' strip: an input error now, not after the install
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
def _work_folder(output_dir: Path, log: Logger) -> Iterator[Path]:
    """A hidden folder inside `output_dir` (same filesystem: the final renames are atomic).

    It is locked while this run lives, so a later run can tell a dead run's folder
    from a live one's and removes only the former. At the end it is renamed aside
    and removed in the background (scratch.py); the time that took is a stage.
    """

    def removed(gone: Discarded) -> None:
        log.timings["cleanup"] = log.timings.get("cleanup", 0.0) + gone.seconds
        log.info(f"work folder {gone.describe()}")

    with ExitStack() as stack:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            # Build folders of runs that were killed (SIGKILL, a lost runner) hold no lock,
            # nor do discarded ones whose remover was killed.
            sweep(output_dir, f"{WORK_PREFIX}*")
            sweep_trash(output_dir)
            work = stack.enter_context(scratch_folder(output_dir, WORK_PREFIX, removed=removed))
        except OSError as exc:
            raise InputError(
                "output-dir",
                f"`{output_dir}` cannot be written ({exc.strerror or exc})",
                hint="Choose a folder you can write to",
            ) from exc
        with writing_to(output_dir):
            yield work


def _publish(packed: PackedArchive, output_dir: Path) -> PackedArchive:
    """Move a finished archive and its `.sha256` from the work folder to their final names."""
    archive = output_dir / packed.path.name
    sha256_file = output_dir / packed.sha256_file.name
    os.replace(packed.path, archive)
    os.replace(packed.sha256_file, sha256_file)
    return PackedArchive(archive, packed.sha256, packed.size, sha256_file)
