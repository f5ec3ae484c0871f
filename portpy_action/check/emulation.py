"""Running a foreign bundle's smoke test under qemu-user.

An aarch64 bundle built on x86_64 (or the other way round) runs here only under
emulation: `qemu-<arch>` or `qemu-<arch>-static` on PATH, or a binfmt_misc
handler the kernel uses by itself. Either way the foreign program loader must be
there too (the target's glibc): qemu looks for it under `QEMU_LD_PREFIX` (e.g.
`/usr/aarch64-linux-gnu` from Debian/Ubuntu's `libc6-arm64-cross`), else under `/`.
Without either, the smoke test is skipped with a notice that names what is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from portpy_action.log import Logger
from portpy_action.runtime.probe import machine_arch

# The loader each architecture's binaries name in PT_INTERP, relative to the root.
LOADERS = {
    "aarch64": "lib/ld-linux-aarch64.so.1",
    "x86_64": "lib64/ld-linux-x86-64.so.2",
    "i686": "lib/ld-linux.so.2",
    "armv7": "lib/ld-linux-armhf.so.3",
    "ppc64le": "lib64/ld64.so.2",
    "s390x": "lib/ld64.so.1",
    "riscv64": "lib/ld-linux-riscv64-lp64d.so.1",
}
# Debian's name of each architecture, for the hint.
DEBIAN_ARCHES = {"aarch64": "arm64", "x86_64": "amd64", "armv7": "armhf", "i686": "i386"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Emulation:
    """How to start `arch`'s binaries here: a command prefix, or why they cannot start."""

    arch: str
    prefix: tuple[str, ...] | None  # () native or binfmt_misc, None: cannot run
    missing: str = ""


def find_emulation(
    arch: str, env: Mapping[str, str] | None = None, binfmt: Path = BINFMT
) -> Emulation:
    env = os.environ if env is None else env
    if arch == machine_arch():
        return Emulation(arch, ())
    loader = LOADERS.get(arch, "")
    root = Path(env.get("QEMU_LD_PREFIX") or "/")
    if not loader or not (root / loader).exists():
        debian = DEBIAN_ARCHES.get(arch, arch)
        return Emulation(
            arch,
            None,
            f"an {arch} glibc ({loader or 'its program loader'} under QEMU_LD_PREFIX or /; "
            f"e.g. libc6:{debian} unpacked, or libc6-{debian}-cross with "
            f"QEMU_LD_PREFIX=/usr/{arch}-linux-gnu)",
        )
    handler = binfmt / f"qemu-{arch}"
    try:
        if handler.read_text().startswith("enabled"):
            return Emulation(arch, ())
    except OSError:
        pass
    for name in (f"qemu-{arch}", f"qemu-{arch}-static"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return Emulation(arch, (found,))
    return Emulation(
        arch,
        None,
        f"qemu-{arch} or qemu-{arch}-static on PATH (package qemu-user-static), "
        f"or a binfmt_misc handler for {arch}",
    )


def smoke_emulator(arch: str, *, log: Logger) -> tuple[str, ...] | None:
    """The command prefix the smoke test runs `arch`'s interpreter with; None: skip it."""
    emulation = find_emulation(arch)
    if emulation.prefix is None:
        log.notice(
            f"smoke test skipped: this {machine_arch()} machine cannot run the {arch} bundle "
            f"without {emulation.missing}"
        )
    elif emulation.prefix:
        log.info(f"  the {arch} bundle runs under {emulation.prefix[0]}")
    return emulation.prefix
