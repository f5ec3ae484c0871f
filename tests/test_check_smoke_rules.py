"""The smoke test's pure parts: judging probe records, choosing modules, recording settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portpy_action.bundle.manifest import MANIFEST_NAME, SmokeSettings, read_smoke_settings
from portpy_action.check.failures import ERROR, NOTICE, WARNING, classify, library_in
from portpy_action.check.smoke import importable_here, modules_to_import
from portpy_action.check.targetroot import parse_ldconfig
from tests.fixtures.native import install_dist


def _failed(module: str, traceback: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "failed", "module": module, "traceback": traceback, **extra}


MAGIC_TRACEBACK = """Traceback (most recent call last):
  File "/portpy/unpacked/demo/python/lib/python3.12/site-packages/magic/loader.py", line 49
    raise ImportError('failed to find libmagic.  Check your installation')
ImportError: failed to find libmagic.  Check your installation
"""


@pytest.mark.parametrize(
    ("traceback", "library"),
    [
        ("ImportError: libxcb.so.1: cannot open shared object file: No such file", "libxcb.so.1"),
        (
            "OSError: /opt/x/libpq.so.5.16: cannot open shared object file: No such file",
            "libpq.so.5.16",
        ),
        (MAGIC_TRACEBACK, "libmagic"),
        ("ImportError: Unable to find zbar shared library", "zbar"),
        ("OSError: could not load library 'libcairo.so.2'", "libcairo.so.2"),
        ("RuntimeError: libgeos_c library not found", "libgeos_c"),
        (
            "ImportError: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found "
            "(required by /b/site-packages/x/_x.so)",
            "_x.so",
        ),
    ],
)
def test_library_failures_are_errors_naming_the_library(traceback: str, library: str) -> None:
    failure = classify(_failed("mod", traceback), distribution="dist-x")
    assert (failure.level, failure.library) == (ERROR, library)
    assert failure.describe().startswith("importing `mod` (from dist-x) cannot load")
    assert library_in(traceback) == library


def test_a_missing_optional_dependency_is_a_notice() -> None:
    record = _failed(
        "blackd",
        "ModuleNotFoundError: No module named 'aiohttp'",
        error="ModuleNotFoundError",
        missing="aiohttp",
        present=False,
    )
    failure = classify(record, distribution="black")
    assert (failure.level, failure.missing) == (NOTICE, "aiohttp")
    assert "`aiohttp`, which is not in the bundle" in failure.describe()


def test_a_missing_optional_dependency_re_raised_with_advice_is_a_notice() -> None:
    record = _failed(
        "blackd",
        "ImportError: aiohttp dependency is not installed: No module named 'aiohttp'",
        error="ImportError",
        missing="aiohttp",
        present=False,
    )
    assert classify(record, distribution="black").level == NOTICE


def test_a_missing_submodule_of_a_bundled_package_is_only_a_warning() -> None:
    record = _failed(
        "pkg",
        "ModuleNotFoundError: No module named 'pkg._speedups'",
        error="ModuleNotFoundError",
        missing="pkg._speedups",
        present=True,
    )
    assert classify(record, distribution="pkg").level == WARNING


def test_other_exceptions_are_warnings_with_their_last_line() -> None:
    record = _failed("tkthing", "Traceback...\n_tkinter.TclError: no display name\n")
    failure = classify(record, distribution="tkthing")
    assert failure.level == WARNING
    assert failure.reason == "failed: _tkinter.TclError: no display name"


def test_a_failure_naming_the_build_folder_is_an_error() -> None:
    text = "FileNotFoundError: [Errno 2] No such file or directory: '/work/.portpy-build-1/x'"
    failure = classify(
        _failed("touchy", text), distribution="touchy", build_paths=["/work/.portpy-build-1"]
    )
    assert failure.level == ERROR
    assert "build folder /work/.portpy-build-1" in failure.reason
    other = classify(_failed("touchy", text), distribution="touchy", build_paths=["/elsewhere"])
    assert other.level == WARNING


# -- which modules are imported ------------------------------------------------------------


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "python" / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    return site


def test_vendored_dist_infos_and_bogus_top_level_names_are_not_imported(tmp_path: Path) -> None:
    site = _site(tmp_path)
    install_dist(
        site,
        "setuptools",
        "80.0",
        {
            "setuptools/__init__.py": b"",
            "pkg_resources/__init__.py": b"",
            "_distutils_hack/__init__.py": b"",
            "distutils-precedence.pth": b"",
            "setuptools-80.0.dist-info/top_level.txt": b"_distutils_hack\npkg_resources\n"
            b"setuptools\n",
        },
    )
    # setuptools vendors whole distributions, dist-info and all, inside itself.
    install_dist(
        site / "setuptools" / "_vendor",
        "jaraco.text",
        "3.12",
        {"jaraco/text/__init__.py": b"", "jaraco.text-3.12.dist-info/top_level.txt": b"jaraco\n"},
    )
    install_dist(site / "setuptools" / "_vendor", "autocommand", "2.2", {"autocommand.py": b""})
    install_dist(
        site,
        "PyNaCl",
        "1.5.0",
        {
            "nacl/__init__.py": b"",
            "nacl/_sodium.abi3.so": b"",
            "PyNaCl-1.5.0.dist-info/top_level.txt": b"_sodium\nnacl\n",
        },
    )
    install_dist(site, "single", "1.0", {"single.py": b"", "_single_speedups.abi3.so": b""})

    assert modules_to_import(tmp_path / "python") == [
        ("_distutils_hack", "setuptools"),
        ("_single_speedups", "single"),
        ("nacl", "PyNaCl"),
        ("pkg_resources", "setuptools"),
        ("setuptools", "setuptools"),
        ("single", "single"),
    ]


def test_importable_names_need_a_package_folder_or_a_module_file(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "mod.py").write_text("")
    (tmp_path / "ext.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    (tmp_path / "data.txt").write_text("")
    (tmp_path / "modx.py").write_text("")
    assert [
        n for n in ("pkg", "mod", "ext", "data", "mo", "_sodium") if importable_here(tmp_path, n)
    ] == [
        "pkg",
        "mod",
        "ext",
    ]


# -- what the bundle records for verify --------------------------------------------------


def test_smoke_settings_round_trip_through_the_manifest(tmp_path: Path) -> None:
    settings = SmokeSettings(skip_imports=("tkinter", "blackd"), command=("-c", "import app"))
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"name": "x", "smoke": settings.to_dict()}))
    assert read_smoke_settings(tmp_path) == settings


@pytest.mark.parametrize(
    "content", ["", "not json", json.dumps({"name": "x"}), json.dumps({"smoke": {"command": "x"}})]
)
def test_a_missing_or_foreign_manifest_records_nothing(tmp_path: Path, content: str) -> None:
    if content:
        (tmp_path / MANIFEST_NAME).write_text(content)
    assert read_smoke_settings(tmp_path) is None


def test_ldconfig_output_is_read_per_soname_in_cache_order() -> None:
    text = (
        "3 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n"
        "\tlibz.so.1 (libc6) => /lib/i386-linux-gnu/libz.so.1\n"
        "\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6\n"
    )
    assert parse_ldconfig(text) == {
        "libz.so.1": [
            Path("/lib/x86_64-linux-gnu/libz.so.1"),
            Path("/lib/i386-linux-gnu/libz.so.1"),
        ],
        "libc.so.6": [Path("/lib/x86_64-linux-gnu/libc.so.6")],
    }
