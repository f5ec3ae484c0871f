"""`portpy verify ARCHIVE`: the whole portability proof for any bundle archive.

Unpack once, scan the unpacked bundle, hold it to the limits, then run it from
there. Works for this tool's bundles, raw pbs tarballs and hand-made archives
alike: all it needs is one Python runtime somewhere near the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portpy_action.bundle.install import site_packages
from portpy_action.bundle.manifest import SmokeSettings, read_smoke_settings
from portpy_action.bundle.sbom import SBOM_NAME, check_sbom
from portpy_action.check.arch import check_architecture, elf_arch
from portpy_action.check.emulation import smoke_emulator
from portpy_action.check.enforce import enforce_policy
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.report import PortabilityReport
from portpy_action.check.scan import scan_bundle
from portpy_action.check.smoke import SmokeResult, run_smoke, unpacked_bundle
from portpy_action.choices import ExternalLibs
from portpy_action.log import Logger
from portpy_action.runtime.probe import machine_arch


@dataclass(frozen=True)
class VerifyResult:
    archive: Path
    bundle: str  # the bundle's folder inside the archive ("." when it is the top)
    prefix: str  # the runtime's prefix inside the archive
    report: PortabilityReport
    smoke: SmokeResult | None  # None when the smoke test was turned off

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": self.archive.name,
            "bundle": self.bundle,
            "prefix": self.prefix,
            "portability": self.report.to_dict(),
            "smoke": self.smoke.to_dict() if self.smoke else None,
        }


def verify_archive(
    archive: Path,
    *,
    max_glibc: tuple[int, int] | None,
    external_libs: ExternalLibs,
    skip_imports: Sequence[str] | None = None,
    log: Logger,
    smoke: bool = True,
    hide: Sequence[Path] = (),
    smoke_command: Sequence[str] | None = None,
) -> VerifyResult:
    """Scan, judge and (unless `smoke` is False) run `archive`; raise CheckError on failure.

    `skip_imports` and `smoke_command` left as None take what the bundle's manifest
    recorded at build time, so `verify` runs the smoke test the build ran.
    """
    # The unpacked copy lives until the end; only unpacking it is timed as its stage.
    with ExitStack() as stack:
        with log.stage("unpack", f"Unpack {archive.name}"):
            workdir, unpacked, layout = stack.enter_context(
                unpacked_bundle(archive, purpose="verify", log=log)
            )
            log.info(f"  runtime: {layout.prefix.relative_to(unpacked).as_posix()}")
        sbom = layout.root / SBOM_NAME
        if sbom.is_file():
            # Only this tool's bundles carry one; raw pbs and hand-made archives do not.
            with log.stage("sbom", f"Compare {SBOM_NAME} with what is installed"):
                listed = check_sbom(sbom, site_packages(layout.prefix), layout.root)
                log.info(f"  {listed} distributions, as the SBOM lists them")
        arch = elf_arch(layout.interpreter) or machine_arch()
        with log.stage("scan", "Measure the glibc baseline and external libraries"):
            check_architecture(layout.root, arch, layout.prefix)
            report = scan_bundle(layout.root, policy=policy_for_glibc(max_glibc))
            log.info(
                f"  {len(report.files)} ELF files, glibc baseline {report.glibc_baseline_text}"
            )
            enforce_policy(report, max_glibc=max_glibc, external_libs=external_libs, log=log)
        result: SmokeResult | None = None
        emulator = smoke_emulator(arch, log=log) if smoke else None
        if emulator is not None:
            recorded = read_smoke_settings(layout.root) or SmokeSettings()
            if skip_imports is None:
                skip_imports = recorded.skip_imports
                if skip_imports:
                    log.info(f"  smoke test skips (as recorded): {', '.join(skip_imports)}")
            if smoke_command is None:
                smoke_command = recorded.command
            with log.stage("smoke", "Run the bundle from a moved copy"):
                result = run_smoke(
                    layout,
                    unpacked=unpacked,
                    workdir=workdir,
                    skip_imports=skip_imports,
                    log=log,
                    hide=hide,
                    emulator=emulator,
                    max_glibc=max_glibc,
                    command=smoke_command,
                )
        return VerifyResult(
            archive=archive,
            bundle=layout.root.relative_to(unpacked).as_posix(),
            prefix=layout.prefix.relative_to(unpacked).as_posix(),
            report=report,
            smoke=result,
        )
