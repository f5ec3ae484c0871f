"""Scanning and judging a bundle made of ELF files compiled here.

The bundle is shaped like a real one (runtime prefix, site-packages, dist-info RECORDs,
an auditwheel-style `.libs` folder, an app folder) but holds no working Python: the
scan reads files, it never runs them. Expected versions come from `readelf`.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from portpy_action.check import enforce_policy, format_report_table, scan_bundle
from portpy_action.check.arch import check_architecture
from portpy_action.check.policy import policy_for_glibc
from portpy_action.check.report import PortabilityReport
from portpy_action.check.scan import FolderFacts, read_folder_facts
from portpy_action.errors import CheckError
from portpy_action.log import Logger
from tests.fixtures.native import (
    CRYPT_C,
    GETRANDOM_C,
    MAIN_C,
    PLAIN_C,
    ZLIB_C,
    compile_c,
    glibc_versions,
    install_dist,
)

SITE = "python/lib/python3.12/site-packages"
FASTRAND = f"{SITE}/fastrand/_rand.cpython-312-x86_64-linux-gnu.so"
FASTRAND_CLI = "python/bin/fastrand-cli"
PWHASH = f"{SITE}/pwhash/_hash.cpython-312-x86_64-linux-gnu.so"
ZIPPER = f"{SITE}/zipper/_z.cpython-312-x86_64-linux-gnu.so"
VENDORED = f"{SITE}/vendored/_core.cpython-312-x86_64-linux-gnu.so"
VENDORED_CXX = f"{SITE}/vendored.libs/libstdc++-1a2b3c.so.6"
LOST = f"{SITE}/lost/_lost.cpython-312-x86_64-linux-gnu.so"
INTERPRETER = "python/bin/python3.12"
APP_TOOL = "app/tool"

# A grafted libstdc++ names its own version nodes. Versions it provides come from
# inside the bundle and must not raise the bundle's GLIBCXX needs.
GRAFTED_CXX_VERSIONS = "GLIBCXX_3.4.99 { global: answer; local: *; };\n"


def _dist(root: Path, name: str, paths: list[str]) -> None:
    site = root / SITE
    files = {}
    for path in paths:
        relative = Path(path).relative_to(SITE) if path.startswith(SITE) else None
        key = (
            relative.as_posix()
            if relative
            else "../../../" + Path(path).relative_to("python").as_posix()
        )
        files[key] = (root / path).read_bytes()
    install_dist(site, name, "1.0", files)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scan") / "demo"
    compile_c(MAIN_C, root / INTERPRETER, shared=False, args=["-Wl,-rpath,$ORIGIN/../lib"])
    (root / "python/bin/python3").symlink_to("python3.12")
    (root / "python/lib/python3.12").mkdir(parents=True)
    compile_c(PLAIN_C, root / "python/lib/libhelper.so.1")

    compile_c(GETRANDOM_C, root / FASTRAND)
    compile_c(MAIN_C, root / FASTRAND_CLI, shared=False)
    _dist(root, "fastrand", [FASTRAND, FASTRAND_CLI])
    compile_c(CRYPT_C, root / PWHASH, libs=["crypt"])
    _dist(root, "pwhash", [PWHASH])
    compile_c(ZLIB_C, root / ZIPPER, libs=["z"])
    _dist(root, "zipper", [ZIPPER])

    script = root / ".grafted.map"
    script.write_text(GRAFTED_CXX_VERSIONS)
    cxx = compile_c(
        PLAIN_C,
        root / VENDORED_CXX,
        args=[f"-Wl,--version-script={script}", "-Wl,-soname,libstdc++-1a2b3c.so.6"],
    )
    script.unlink()
    compile_c(
        "int answer(void);\nint twice(void) { return 2 * answer(); }\n",
        root / VENDORED,
        args=[f"-L{cxx.parent}", "-Wl,-rpath,$ORIGIN/../vendored.libs"],
        libs=[f":{cxx.name}"],
    )
    _dist(root, "vendored", [VENDORED, VENDORED_CXX])

    # Linked against a library that is in the bundle, but not where this file looks.
    hidden = compile_c(
        PLAIN_C, root / "python/share/libhidden.so.1", args=["-Wl,-soname,libhidden.so.1"]
    )
    compile_c(
        "int answer(void);\nint thrice(void) { return 3 * answer(); }\n",
        root / LOST,
        args=[f"-L{hidden.parent}"],
        libs=[f":{hidden.name}"],
    )
    _dist(root, "lost", [LOST])

    compile_c(MAIN_C, root / APP_TOOL, shared=False)
    (root / "app/notes.so").write_text("a text file with a misleading name")
    return root


@pytest.fixture(scope="module")
def report(bundle: Path) -> PortabilityReport:
    return scan_bundle(bundle)


def scanned_for(bundle: Path, max_glibc: tuple[int, int] | None) -> PortabilityReport:
    """The report as build and verify make it: judged with the policy max-glibc selects."""
    return scan_bundle(bundle, policy=policy_for_glibc(max_glibc))


def _logger() -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    return Logger(stream, github=False, tty=False), stream


def test_every_elf_file_is_found_whatever_its_name(report: PortabilityReport, bundle: Path) -> None:
    paths = {file.path for file in report.files}
    assert paths == {
        INTERPRETER,
        FASTRAND_CLI,
        "python/lib/libhelper.so.1",
        "python/share/libhidden.so.1",
        FASTRAND,
        PWHASH,
        ZIPPER,
        VENDORED,
        VENDORED_CXX,
        LOST,
        APP_TOOL,
    }


def test_baseline_is_the_newest_glibc_any_file_needs(
    report: PortabilityReport, bundle: Path
) -> None:
    per_file = {file.path: file.glibc for file in report.files}
    for path, glibc in per_file.items():
        assert glibc == max(glibc_versions(bundle / path), default=None), path
    assert report.glibc_baseline == max(v for v in per_file.values() if v)


def test_extension_built_here_needs_more_than_manylinux2014(report: PortabilityReport) -> None:
    fastrand = next(f for f in report.files if f.path == FASTRAND)
    need = fastrand.need("GLIBC")
    assert need is not None
    assert need.version > (2, 17)
    assert need.symbol == "getrandom"
    assert need.library == "libc.so.6"
    assert fastrand.distribution == "fastrand"
    assert report.glibc_baseline is not None and report.glibc_baseline > (2, 17)


def test_files_map_to_the_distribution_that_installed_them(report: PortabilityReport) -> None:
    owners = {file.path: file.distribution for file in report.files}
    assert owners[FASTRAND] == "fastrand"
    assert owners[FASTRAND_CLI] == "fastrand", "RECORD's ../../../bin entries count too"
    assert owners[VENDORED_CXX] == "vendored"
    assert owners[INTERPRETER] == "python (runtime)"
    assert owners["python/lib/libhelper.so.1"] == "python (runtime)"
    assert owners[APP_TOOL] == "project"


def test_max_glibc_2_17_names_file_distribution_and_symbol(bundle: Path) -> None:
    log, _ = _logger()
    with pytest.raises(CheckError) as raised:
        enforce_policy(
            scanned_for(bundle, (2, 17)), max_glibc=(2, 17), external_libs="warn", log=log
        )
    message = str(raised.value)
    line = next(line for line in message.splitlines() if FASTRAND in line)
    assert "(from fastrand)" in line
    assert "getrandom@GLIBC_2." in line
    assert "glibc 2.17" in line


def test_max_glibc_2_40_passes_and_warns_about_external_libs(bundle: Path) -> None:
    log, stream = _logger()
    report = scanned_for(bundle, (2, 40))
    enforce_policy(report, max_glibc=(2, 40), external_libs="warn", log=log)
    output = stream.getvalue()
    assert "libcrypt.so.1" in output and "(from pwhash)" in output
    assert f"glibc baseline: {report.glibc_baseline_text} (max-glibc 2.40)" in output


def test_external_libs_are_named_with_their_distribution(report: PortabilityReport) -> None:
    found = {(lib.soname, lib.path, lib.distribution) for lib in report.external_libs}
    assert found == {
        ("libcrypt.so.1", PWHASH, "pwhash"),
        ("libhidden.so.1", LOST, "lost"),
    }


def test_external_libs_fail_the_check_by_default(bundle: Path) -> None:
    log, _ = _logger()
    with pytest.raises(CheckError) as raised:
        enforce_policy(
            scanned_for(bundle, (2, 40)), max_glibc=(2, 40), external_libs="error", log=log
        )
    message = str(raised.value)
    assert "libcrypt.so.1" in message and "(from pwhash)" in message
    assert "newer than" not in message, "2.40 covers every glibc need of this machine"


def test_libz_is_left_to_the_target_like_manylinux_does(report: PortabilityReport) -> None:
    zipper = next(f for f in report.files if f.path == ZIPPER)
    assert "libz.so.1" in zipper.unresolved
    assert all(lib.soname != "libz.so.1" for lib in report.external_libs)


def test_grafted_libraries_count_as_inside_with_their_versions(report: PortabilityReport) -> None:
    vendored = next(f for f in report.files if f.path == VENDORED)
    assert vendored.needed[0] == "libstdc++-1a2b3c.so.6"
    assert "libstdc++-1a2b3c.so.6" not in vendored.unresolved
    assert vendored.need("GLIBCXX") is None
    assert report.newest("GLIBCXX") is None


def test_report_is_json_for_the_manifest(report: PortabilityReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["glibc-baseline"] == report.glibc_baseline_text
    assert data["baselines"]["GLIBC"]["version"] == report.glibc_baseline_text
    assert {lib["soname"] for lib in data["external-libs"]} == {"libcrypt.so.1", "libhidden.so.1"}
    files = {entry["path"]: entry for entry in data["files"]}
    assert files[FASTRAND]["needs"]["GLIBC"]["symbol"] == "getrandom"
    assert files[FASTRAND]["distribution"] == "fastrand"


def test_table_lists_every_file_newest_first(report: PortabilityReport) -> None:
    table = format_report_table(report)
    lines = table.splitlines()
    assert lines[0].split() == ["glibc", "needed", "for", "distribution", "file"]
    rows = lines[1 : 1 + len(report.files)]
    assert {row.split()[-1] for row in rows} == {file.path for file in report.files}
    versions = [tuple(int(p) for p in row.split()[0].split(".")) for row in rows if row[0] != "-"]
    assert versions == sorted(versions, reverse=True)
    assert f"glibc baseline: {report.glibc_baseline_text}" in table
    assert "libcrypt.so.1  needed by" in table


def test_hints_fit_the_failure(bundle: Path) -> None:
    """A missing libcrypt is no glibc matter; a too-new symbol is."""
    log, _ = _logger()
    with pytest.raises(CheckError) as external:
        enforce_policy(
            scanned_for(bundle, (2, 40)), max_glibc=(2, 40), external_libs="error", log=log
        )
    assert "`external-libs: vendor`" in external.value.hint
    assert "psycopg2-binary" in external.value.hint
    assert "manylinux image" not in external.value.hint
    with pytest.raises(CheckError) as too_new:
        enforce_policy(
            scanned_for(bundle, (2, 17)), max_glibc=(2, 17), external_libs="warn", log=log
        )
    assert "manylinux image" in too_new.value.hint
    assert "vendor" not in too_new.value.hint


def test_a_report_judged_with_another_policy_is_refused(report: PortabilityReport) -> None:
    log, _ = _logger()
    with pytest.raises(ValueError, match="policy_for_glibc"):
        enforce_policy(report, max_glibc=(2, 17), external_libs="warn", log=log)


def test_search_paths_leading_outside_the_bundle(tmp_path: Path) -> None:
    work = tmp_path / "work"
    root = work / "demo"
    elsewhere = "/srv/out/.portpy-build-1a2b/demo/python/lib"
    entries = [
        "$ORIGIN",
        "$ORIGIN/../../../../../..",  # climbs out of the bundle
        "/usr/local/lib",
        f"{root}/python/lib",  # this build's folder
        elsewhere,  # another build's folder, recognised by its name
        "lib",
    ]
    compile_c(PLAIN_C, root / ZIPPER, args=["-Wl,-rpath," + ":".join(entries)])

    without = {entry.entry: entry.severity for entry in scan_bundle(root).search_paths}
    assert without == {
        "$ORIGIN/../../../../../..": "warning",
        "/usr/local/lib": "warning",
        f"{root}/python/lib": "warning",
        elsewhere: "error",
        "lib": "warning",
    }
    report = scan_bundle(root, build_dirs=(work,))
    severities = {entry.entry: entry.severity for entry in report.search_paths}
    assert severities == without | {f"{root}/python/lib": "error"}
    assert {entry.tag for entry in report.search_paths} == {"RUNPATH"}
    assert json.loads(json.dumps(report.to_dict()))["search-paths"][0]["path"] == ZIPPER

    log, stream = _logger()
    with pytest.raises(CheckError) as raised:
        enforce_policy(report, max_glibc=None, external_libs="warn", log=log)
    assert "2 search path(s) naming the build folder" in str(raised.value)
    assert "$ORIGIN" in raised.value.hint
    assert "/usr/local/lib" in stream.getvalue(), "the warnings are logged"


def test_kept_facts_give_the_report_a_full_read_gives(
    bundle: Path, report: PortabilityReport
) -> None:
    facts = FolderFacts.from_json(
        json.loads(json.dumps(read_folder_facts(bundle, "python").to_json()))
    )
    assert facts.files and all(path.startswith("python/") for path in facts.files)
    assert facts.arches[INTERPRETER] == "x86_64"
    assert facts.owners[FASTRAND] == "fastrand"
    assert INTERPRETER not in facts.owners  # the runtime's own: no RECORD lists it
    again = scan_bundle(bundle, facts=(facts,))
    assert again.to_dict() == report.to_dict()
    # The kept facts are taken as they are: python/ is not read again.
    shown = next(iter(facts.files))
    lying = FolderFacts("python", {**facts.files, shown: replace(facts.files[shown], needed=())})
    changed = scan_bundle(bundle, facts=(lying,))
    assert next(f for f in changed.files if f.path == shown).needed == ()


def test_kept_architectures_are_checked_without_reading_the_files(bundle: Path) -> None:
    check_architecture(bundle, "x86_64", bundle / "python")
    with pytest.raises(CheckError, match=r"python/bin/python3.12: aarch64"):
        check_architecture(
            bundle, "x86_64", bundle / "python", known={"python": {INTERPRETER: "aarch64"}}
        )
