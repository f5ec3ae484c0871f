"""Fixing pbs's build-time sysconfig values so C extensions build on this machine.

pbs runtimes are built with `--prefix=/install` and clang, and their
`_sysconfigdata_*.py` and `lib/pkgconfig/*.pc` keep saying so (pbs
docs/quirks.rst). Like uv, rewrite them after unpacking: `/install` becomes the
real prefix, `-isysroot <dir>` goes, and the compilers become the system's
`cc`, `c++` and `ar`. The rules are data; `fix_value` applies them to one value.

Unlike uv, `-Wl,-rpath,/install/...` is dropped rather than rewritten: pointed at
the real prefix it would bake this machine's folder into the RUNPATH of every
extension built here, and extension modules need nothing from the runtime's
`lib/` (the interpreter has already loaded libpython when they are imported).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

from portpy_action import atomic

BUILD_PREFIX = "/install"

# `/install` where a path token starts: after a space, `=`, `,`, a quote, `-I` or `-L`.
_PREFIX_RE = re.compile(
    r"(?:(?<![^\s=,'\"])|(?<=-I)|(?<=-L))" + re.escape(BUILD_PREFIX) + r"(?=[/\s'\",:]|$)"
)
_ISYSROOT_RE = re.compile(r"\s*-isysroot\s+\S+")
# `-Wl,-rpath,/install/lib` or `-Wl,-rpath=/install/lib`, up to the end of the token.
_RPATH_RE = re.compile(
    r"\s*-Wl,-rpath[,=]" + re.escape(BUILD_PREFIX) + r"(?:/[^\s'\",:]*)?(?=[\s'\"]|$)"
)
_WORD = r"(?<![\w/.+-]){}(?![\w.+-])"

_C_COMPILER = (
    (re.compile(_WORD.format("clang")), "cc"),
    (
        re.compile(_WORD.format(r"/usr/bin/[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(?:-[a-z0-9_]+)?-gcc")),
        "cc",
    ),
)
_CXX_COMPILER = (
    (re.compile(_WORD.format(r"clang\+\+")), "c++"),
    (
        re.compile(
            _WORD.format(r"/usr/bin/[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(?:-[a-z0-9_]+)?-g\+\+")
        ),
        "c++",
    ),
)
# Which build variables name which tool.
COMPILER_RULES: Mapping[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "CC": _C_COMPILER,
    "BLDSHARED": _C_COMPILER,
    "LDSHARED": _C_COMPILER,
    "LINKCC": _C_COMPILER,
    "CXX": _CXX_COMPILER,
    "LDCXXSHARED": _CXX_COMPILER,
}
FIXED_VALUES: Mapping[str, str] = {"AR": "ar"}


def fix_value(name: str, value: str, prefix: str) -> str:
    """One `build_time_vars` entry with the rules above applied."""
    if name in FIXED_VALUES:
        return FIXED_VALUES[name]
    value = _ISYSROOT_RE.sub("", value)
    value = _RPATH_RE.sub("", value)
    value = _PREFIX_RE.sub(lambda _: prefix, value)
    for pattern, replacement in COMPILER_RULES.get(name, ()):
        value = pattern.sub(replacement, value)
    return value


def fix_sysconfigdata(path: Path, prefix: Path) -> bool:
    """Rewrite the `build_time_vars` literal in place; True if anything changed."""
    source = path.read_text(encoding="utf-8")
    node = _build_time_vars(ast.parse(source), path)
    old_vars = ast.literal_eval(node)
    new_vars = {
        name: fix_value(name, value, str(prefix)) if isinstance(value, str) else value
        for name, value in old_vars.items()
    }
    if new_vars == old_vars:
        return False
    segment = ast.get_source_segment(source, node)
    assert segment is not None
    lines = ["{"] + [f" {name!r}: {value!r}," for name, value in new_vars.items()] + ["}"]
    _replace_file(path, source.replace(segment, "\n".join(lines), 1))
    # A bytecode cache of the old text must not outlive it.
    for cached in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        cached.unlink()
    return True


def _build_time_vars(module: ast.Module, path: Path) -> ast.expr:
    for statement in module.body:
        if isinstance(statement, ast.Assign) and [
            getattr(t, "id", None) for t in statement.targets
        ] == ["build_time_vars"]:
            return statement.value
    raise ValueError(f"{path} has no `build_time_vars = {{...}}`")


def fix_pkgconfig(path: Path) -> bool:
    """`prefix=/install` → `prefix=${pcfiledir}/../..` (the .pc files live in lib/pkgconfig)."""
    text = path.read_text(encoding="utf-8")
    fixed = re.sub(
        rf"^prefix={re.escape(BUILD_PREFIX)}$", "prefix=${pcfiledir}/../..", text, flags=re.M
    )
    if fixed == text:
        return False
    _replace_file(path, fixed)
    return True


def fix_sysconfig(root: Path, prefix: Path | None = None) -> list[Path]:
    """Fix every sysconfig file of the runtime at `root` (`…/python`); returns those changed.

    `prefix` is where the runtime will be used, `root` by default. Running it
    twice changes nothing the second time.
    """
    prefix = (prefix or root).resolve()
    changed = [
        p
        for p in sorted(root.glob("lib/python3*/_sysconfigdata_*.py"))
        if fix_sysconfigdata(p, prefix)
    ]
    changed += [p for p in sorted(root.glob("lib/pkgconfig/*.pc")) if fix_pkgconfig(p)]
    return changed


def _replace_file(path: Path, text: str) -> None:
    atomic.write_text(path, text, mode=path.stat().st_mode & 0o777)
