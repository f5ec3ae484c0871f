"""Names that mean one thing: one Distribution, one METADATA reader, each public name once."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from portpy_action.bundle.install import installed_distributions
from portpy_action.check.owners import InstalledDistribution, distributions_in
from portpy_action.distributions import (
    Distribution,
    canonical_name,
    read_distribution,
    read_metadata,
)

PACKAGE = Path(__file__).resolve().parents[1] / "portpy_action"
# Entry points: each front end has its own `main`.
ENTRY_POINTS = {"main"}


def _dist_info(site: Path, folder: str, metadata: bytes, record: str = "") -> Path:
    dist_info = site / folder
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_bytes(metadata)
    (dist_info / "RECORD").write_text(record)
    return dist_info


def test_every_public_name_is_defined_in_one_module() -> None:
    defined: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                defined[node.name].append(str(path.relative_to(PACKAGE)))
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert set(twice) <= ENTRY_POINTS, twice


def test_every_module_name_is_used_once() -> None:
    names: dict[str, list[Path]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            names[path.name].append(path)
    assert {name for name, paths in names.items() if len(paths) > 1} == set()


def test_names_compare_as_pep_503_says() -> None:
    assert canonical_name("Foo_Bar.baz") == canonical_name("foo-bar-BAZ") == "foo-bar-baz"


def test_the_installer_and_the_checks_read_the_same_distribution(tmp_path: Path) -> None:
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    # Broken bytes in the description do not hide the name and version.
    metadata = b"Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\n\n\xff\xfe body\n"
    dist_info = _dist_info(site, "foo_bar-1.0.dist-info", metadata, "foo_bar/__init__.py,,\n")
    _dist_info(site, "nameless-1.0.dist-info", b"Metadata-Version: 2.1\n")

    assert read_distribution(dist_info) == Distribution("Foo_Bar", "1.0")
    assert installed_distributions(tmp_path) == [Distribution("Foo_Bar", "1.0")]
    (checked, nameless) = distributions_in(site)
    assert isinstance(checked, InstalledDistribution) and isinstance(checked, Distribution)
    assert (checked.name, checked.version, checked.files) == (
        "Foo_Bar",
        "1.0",
        ("foo_bar/__init__.py",),
    )
    # The checks still name a distribution without METADATA name by its folder.
    assert (nameless.name, nameless.version) == ("nameless", "1.0")


def test_metadata_headers_end_at_the_first_empty_line_whatever_the_line_ends(
    tmp_path: Path,
) -> None:
    for ending in ("\n", "\r\n"):
        dist_info = tmp_path / ending.encode().hex() / "pkg-2.0.dist-info"
        dist_info.mkdir(parents=True)
        text = ending.join(
            ["Metadata-Version: 2.1", "Name: pkg", "Version: 2.0", "", "Name: not-a-header", ""]
        )
        (dist_info / "METADATA").write_bytes(text.encode() + b"x" * 100_000)
        assert read_distribution(dist_info) == Distribution("pkg", "2.0")
        headers = read_metadata(dist_info)
        assert headers is not None and headers.get_all("Name") == ["pkg"]
