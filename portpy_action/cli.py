"""`portpy`: the builder from any shell or CI.

Every option is an action.yml input (`--python-version` is input
`python-version`), so the CLI, the action and config files share one spec.
Logs go to stderr; the last lines on stdout are `key=value` results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from portpy_action import __version__
from portpy_action.config import load_config
from portpy_action.errors import InputError, PortpyError, disk_full, exit_code
from portpy_action.log import Logger
from portpy_action.options import action_inputs
from portpy_action.signals import EXIT_TERMINATED, Terminated, sigterm_raises
from portpy_action.spec import BuildSpec

if TYPE_CHECKING:
    from portpy_action.runtime.releases import Release

# Which action.yml inputs each command takes. The rest (mode, artifact and
# release inputs) only mean something on GitHub and belong to the action.
RUNTIME_INPUTS = (
    "python-version",
    "python-build-tag",
    "target",
    "flavor",
    "python-mirror",
    "python-mirror-token",
    "python-archive",
    "python-sha256",
    "cache-dir",
    "github-token",
)
CHECK_INPUTS = (*RUNTIME_INPUTS, "name", "format", "project-dir")
POLICY_INPUTS = (
    "max-glibc",
    "external-libs",
    "smoke-test",
    "smoke-skip-imports",
    "smoke-command",
)
BUILD_INPUTS = (
    *RUNTIME_INPUTS,
    "requirements",
    "project-dir",
    "exclude",
    "command",
    "name",
    "format",
    "output-dir",
    "installer",
    "compile-bytecode",
    "strip-binaries",
    "install-project",
    "launchers",
    *POLICY_INPUTS,
)
# Inputs holding paths: given on the command line they are relative to the
# current folder, given in a config file relative to that file.
PATH_INPUTS = frozenset(
    {"requirements", "project-dir", "output-dir", "python-archive", "cache-dir"}
)


def _add_inputs(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    inputs = action_inputs()
    for name in names:
        definition = inputs[name]
        default = f" (default: {definition.default})" if definition.default else ""
        if name == "github-token":
            default = " (default: $GITHUB_TOKEN)"
        parser.add_argument(
            definition.flag,
            dest=definition.dest,
            metavar="VALUE",
            default=None,
            help=definition.description.replace("%", "%%") + default,
        )


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    """The inputs given as flags, path inputs made absolute against the current folder."""
    values: dict[str, str] = {}
    for name in names:
        value = getattr(args, name.replace("-", "_"), None)
        if value is None:
            continue
        if name in PATH_INPUTS and value:
            value = str(Path(value).expanduser().resolve())
        values[name] = value
    return values


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portpy",
        description="Relocatable Python bundles from python-build-standalone.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    fetch = sub.add_parser("fetch", help="download, verify and unpack a runtime")
    _add_inputs(fetch, RUNTIME_INPUTS)
    fetch.add_argument("--dest", type=Path, required=True, help="folder that receives python/")

    check = sub.add_parser("check", help="resolve version and tag without downloading")
    _add_inputs(check, CHECK_INPUTS)

    build = sub.add_parser("build", help="build a bundle archive")
    _add_inputs(build, BUILD_INPUTS)
    build.add_argument(
        "--config",
        type=Path,
        help="YAML file with the same keys as the inputs; `bundles:` lists several",
    )
    build.add_argument("--table", action="store_true", help="print the per-file ELF report")

    verify = sub.add_parser("verify", help="check any bundle archive for portability")
    verify.add_argument("archive", type=Path, help="a tar.gz, tar.zst, tar.xz or zip bundle")
    _add_inputs(verify, POLICY_INPUTS)
    verify.add_argument("--table", action="store_true", help="print the per-file report")
    return parser


def _print_results(results: Mapping[str, object]) -> None:
    for key, value in results.items():
        print(f"{key}={value}")


def _spec(values: Mapping[str, str], log: Logger, base_dir: Path | None = None) -> BuildSpec:
    """The validated spec; its secrets are masked before anything else is printed."""
    spec = BuildSpec.from_inputs(values, base_dir=base_dir)
    for secret in spec.runtime.secrets:
        log.mask(secret)
    return spec


def _release_results(release: Release) -> dict[str, object]:
    return {
        "python-version": release.version,
        "python-build-tag": release.tag,
        "target": release.target,
        "asset": release.asset_name,
    }


def run_fetch(args: argparse.Namespace, log: Logger) -> int:
    from portpy_action.runtime import fetch_runtime

    spec = _spec(_given(args, RUNTIME_INPUTS) | {"project-dir": ""}, log)
    runtime = fetch_runtime(spec.runtime, args.dest.resolve(), log=log)
    _print_results(
        _release_results(runtime.release)
        | {"sha256": runtime.release.sha256, "python": runtime.python}
    )
    return 0


def run_check(args: argparse.Namespace, log: Logger) -> int:
    from portpy_action.runtime import resolve_release

    spec = _spec(_given(args, CHECK_INPUTS), log)
    release = resolve_release(spec.runtime, log=log)
    _print_results(
        _release_results(release)
        | {"archive-name": spec.archive_name(release.version, release.target)}
    )
    return 0


def run_build(args: argparse.Namespace, log: Logger) -> int:
    flags = _given(args, BUILD_INPUTS)
    if args.config:
        config = args.config.resolve()
        specs = [_spec(bundle | flags, log, config.parent) for bundle in load_config(config)]
    else:
        specs = [_spec(flags, log)]
    names = [spec.archive_name("X", spec.runtime.target) for spec in specs]
    if len(set(names)) != len(names):
        raise InputError(
            "name",
            "several bundles in the config would get the same archive name",
            hint="Give each bundle its own `name`, `python-version` or `target`",
        )
    from portpy_action.build import build  # after validation: bad input fails fast

    for spec in specs:
        result = build(spec, log=log)
        if args.table:
            from portpy_action.check import format_report_table

            print(format_report_table(result.report))
        _print_results(result.outputs())
    return 0


def run_verify(args: argparse.Namespace, log: Logger) -> int:
    from portpy_action.check import format_report_table, verify_archive

    given = _given(args, POLICY_INPUTS)
    spec = _spec(given | {"project-dir": ""}, log)
    archive = args.archive.resolve()
    if not archive.is_file():
        raise InputError(
            "archive", f"`{args.archive}` is not a file", hint="Give the path of a bundle archive"
        )
    result = verify_archive(
        archive,
        max_glibc=spec.max_glibc,
        external_libs=spec.external_libs,
        # Flags given override what the bundle's manifest holds; absent ones take the manifest's.
        skip_imports=spec.smoke_skip_imports if "smoke-skip-imports" in given else None,
        smoke_command=spec.smoke_command if "smoke-command" in given else None,
        smoke=spec.smoke_test,
        log=log,
    )
    if args.table:
        print(format_report_table(result.report))
    baseline = result.report.glibc_baseline
    _print_results(
        {
            # Spelled as in `build`'s results: no baseline is the empty string.
            "glibc-baseline": ".".join(map(str, baseline)) if baseline else "",
            "external-libs": len(result.report.external_libs),
            "verified": "true",
        }
    )
    return 0


COMMANDS = {"fetch": run_fetch, "check": run_check, "build": run_build, "verify": run_verify}


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    log = Logger()
    try:
        with sigterm_raises():
            return COMMANDS[args.command_name](args, log)
    except PortpyError as exc:
        error = disk_full(exc) or exc
        log.error(str(error), file=error.file, line=error.line)
        return exit_code(error)
    except OSError as exc:
        full = disk_full(exc)
        if full is None:
            raise
        log.error(str(full))
        return exit_code(full)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Terminated:
        log.error("terminated (SIGTERM)")
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
