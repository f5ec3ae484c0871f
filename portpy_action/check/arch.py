"""Every ELF file in a bundle is built for the bundle's architecture.

A cross build installs wheels for the target's platform, but a wheel tagged
wrongly, a vendored binary or a file copied from the project can still bring an
x86_64 `.so` into an aarch64 bundle: the target's loader then refuses it at
import time. The check reads each file's ELF header (`e_machine`), names the
architecture as pbs triples do, and reports the distribution that brought it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from portpy_action.check.elf import iter_elf_files
from portpy_action.check.owners import find_distributions, map_owners
from portpy_action.errors import CheckError

# e_machine → the CPU family as pbs triples spell it.
E_MACHINES = {
    3: "i686",
    20: "ppc",
    21: "ppc64le",
    22: "s390x",
    40: "armv7",
    62: "x86_64",
    183: "aarch64",
    243: "riscv64",
    258: "loongarch64",
}
_SHOWN = 20  # files listed in the error; the rest are counted


def elf_arch(path: Path) -> str | None:
    """The architecture in `path`'s ELF header; None when it is no ELF file."""
    try:
        with path.open("rb") as stream:
            header = stream.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    big = header[5] == 2  # EI_DATA: ELFDATA2MSB
    machine = int.from_bytes(header[18:20], "big" if big else "little")
    arch = E_MACHINES.get(machine, f"e_machine {machine}")
    return "ppc64" if arch == "ppc64le" and big else arch


def foreign_elf_files(
    root: Path, arch: str, *, known: Mapping[str, Mapping[str, str]] | None = None
) -> list[tuple[str, str]]:
    """(relative path, its architecture) of every ELF file under `root` not built for `arch`.

    `known` maps a bundle-relative folder to the architectures of its ELF files
    (paths relative to `root`), read earlier: those folders are not read again.
    """
    known = known or {}
    found = [
        (path, actual)
        for arches in known.values()
        for path, actual in arches.items()
        if actual != arch
    ]
    for path in iter_elf_files(root, leave_out={root / folder for folder in known}):
        actual = elf_arch(path)
        if actual is not None and actual != arch:
            found.append((path.relative_to(root).as_posix(), actual))
    return sorted(found)


def check_architecture(
    root: Path,
    arch: str,
    runtime_prefix: Path | None,
    *,
    known: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Raise CheckError naming each ELF file under `root` built for another architecture.

    `known`: as for `foreign_elf_files`.
    """
    foreign = foreign_elf_files(root, arch, known=known)
    if not foreign:
        return
    owners = map_owners(root, find_distributions(root), runtime_prefix)
    lines = [f"  {path}: {actual} (from {owners.owner(path)})" for path, actual in foreign]
    more = len(lines) - _SHOWN
    shown = lines[:_SHOWN] + ([f"  … and {more} more"] if more > 0 else [])
    raise CheckError(
        f"{len(foreign)} file(s) in the {arch} bundle are built for another architecture:\n"
        + "\n".join(shown),
        hint=f"Install {arch} wheels of these distributions (a wheel tagged for the wrong "
        "platform, or a binary copied from the project, brings them in)",
    )
