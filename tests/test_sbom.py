"""The CycloneDX SBOM: schema-valid, complete, deterministic, and checked by `verify`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from portpy_action.bundle.sbom import (
    SBOM_NAME,
    DistributionFacts,
    bundle_sbom,
    check_sbom,
    scan_distributions,
)
from portpy_action.check import verify_archive
from portpy_action.errors import CheckError
from portpy_action.log import Logger

SITE = "python/lib/python3.12/site-packages"
MTIME = 1_700_000_000


@dataclass(frozen=True)
class FakeRelease:
    version: str = "3.12.12"
    tag: str = "20260114"
    target: str = "x86_64-unknown-linux-gnu"
    flavor: str = "install_only_stripped"
    asset_name: str = (
        "cpython-3.12.12+20260114-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    )
    sha256: str = "ab" * 32


def _row(site: Path, relative: str) -> str:
    data = (site / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def add_distribution(
    site: Path,
    name: str,
    version: str,
    *,
    headers: str = "",
    files: dict[str, bytes] | None = None,
) -> None:
    """A dist-info as an installer leaves it: METADATA, the files, a RECORD of them."""
    files = {f"{name.lower()}/__init__.py": b"", **(files or {})}
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    metadata = f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{headers}\n"
    (dist_info / "METADATA").write_text(metadata)
    rows = [_row(site, relative) for relative in sorted(files)]
    rows.append(
        f"{dist_info.name}/METADATA,{_row(site, f'{dist_info.name}/METADATA').split(',', 1)[1]}"
    )
    rows.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(rows) + "\n")


def fake_site(bundle: Path) -> Path:
    """Three distributions: SPDX expression, classifier-only, and one vendoring libraries."""
    site = bundle / SITE
    site.mkdir(parents=True, exist_ok=True)
    add_distribution(site, "Pure_Thing", "1.0", headers="License-Expression: MIT OR Apache-2.0")
    add_distribution(
        site,
        "classic",
        "2.1.post1",
        headers="Classifier: License :: OSI Approved :: BSD License\nLicense: a long text\n",
    )
    add_distribution(
        site,
        "native-pkg",
        "3.0",
        headers="License-Expression: BSD-3-Clause",
        files={
            "native_pkg.libs/libgfortran-abc123.so.5.0.0": b"\x7fELF fortran",
            "native_pkg/.libs/libquadmath-0a1b.so": b"\x7fELF quad",
            "native_pkg.libs/README.txt": b"not a library",
        },
    )
    return site


def test_sbom_is_valid_cyclonedx_1_6_and_lists_runtime_and_every_distribution(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "demo"
    site = fake_site(bundle)
    facts = scan_distributions(site, bundle)
    text = bundle_sbom(name="demo", release=FakeRelease(), distributions=facts, mtime=MTIME)

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]  # type: ignore[union-attr]
    document = json.loads(text)
    assert document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["name"] == "demo"
    assert document["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")

    components = {c["bom-ref"]: c for c in document["components"]}
    runtime = components["runtime:cpython@3.12.12"]
    assert runtime["version"] == "3.12.12"
    assert runtime["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert runtime["licenses"] == [{"license": {"id": "PSF-2.0"}}]
    properties = {p["name"]: p["value"] for p in runtime["properties"]}
    assert properties["portable-python:python-build-standalone:tag"] == "20260114"
    assert properties["portable-python:python-build-standalone:target"] == FakeRelease.target

    pypi = {c["purl"]: c for c in document["components"] if c["purl"].startswith("pkg:pypi/")}
    assert sorted(pypi) == [
        "pkg:pypi/classic@2.1.post1",
        "pkg:pypi/native-pkg@3.0",
        "pkg:pypi/pure-thing@1.0",
    ]
    assert pypi["pkg:pypi/pure-thing@1.0"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert pypi["pkg:pypi/classic@2.1.post1"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert pypi["pkg:pypi/native-pkg@3.0"]["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    record = (site / "classic-2.1.post1.dist-info" / "RECORD").read_bytes()
    [record_property] = pypi["pkg:pypi/classic@2.1.post1"]["properties"]
    assert record_property["value"] == hashlib.sha256(record).hexdigest()

    # The vendored libraries nest under the distribution that ships them; README.txt is no library.
    nested = {c["name"]: c for c in pypi["pkg:pypi/native-pkg@3.0"]["components"]}
    assert sorted(nested) == ["libgfortran-abc123.so.5.0.0", "libquadmath-0a1b.so"]
    fortran = nested["libgfortran-abc123.so.5.0.0"]
    assert fortran["hashes"][0]["content"] == hashlib.sha256(b"\x7fELF fortran").hexdigest()
    assert fortran["properties"] == [
        {
            "name": "portable-python:path",
            "value": f"{SITE}/native_pkg.libs/libgfortran-abc123.so.5.0.0",
        }
    ]
    assert "components" not in pypi["pkg:pypi/pure-thing@1.0"]

    [project] = [d for d in document["dependencies"] if d["ref"] == "project:demo"]
    assert set(project["dependsOn"]) == {"runtime:cpython@3.12.12", *pypi}


def test_sbom_is_byte_for_byte_reproducible_and_its_serial_follows_the_content() -> None:
    facts = [DistributionFacts("a", "1", "MIT", "0" * 64)]
    first = bundle_sbom(name="demo", release=FakeRelease(), distributions=facts, mtime=MTIME)
    again = bundle_sbom(name="demo", release=FakeRelease(), distributions=facts, mtime=MTIME)
    other = bundle_sbom(
        name="demo",
        release=FakeRelease(),
        distributions=[DistributionFacts("a", "2", "MIT", "0" * 64)],
        mtime=MTIME,
    )
    assert first == again
    assert json.loads(first)["serialNumber"] != json.loads(other)["serialNumber"]
    assert json.loads(first)["serialNumber"].startswith("urn:uuid:")


def test_check_sbom_names_what_changed_after_the_build(tmp_path: Path) -> None:
    bundle = tmp_path / "demo"
    site = fake_site(bundle)
    sbom = bundle / SBOM_NAME
    text = bundle_sbom(
        name="demo",
        release=FakeRelease(),
        distributions=scan_distributions(site, bundle),
        mtime=MTIME,
    )
    sbom.write_text(text)
    assert check_sbom(sbom, site, bundle) == 3

    add_distribution(site, "Sneaky.Extra", "9.9")
    with pytest.raises(CheckError, match=r"sneaky-extra 9\.9 is installed but not in the SBOM"):
        check_sbom(sbom, site, bundle)
    shutil.rmtree(site / "Sneaky.Extra-9.9.dist-info")

    record = site / "classic-2.1.post1.dist-info" / "RECORD"
    record.write_text(record.read_text() + "classic/evil.py,,\n")
    with pytest.raises(CheckError, match=r"classic 2\.1\.post1: its RECORD changed"):
        check_sbom(sbom, site, bundle)

    shutil.rmtree(site / "classic-2.1.post1.dist-info")
    with pytest.raises(CheckError, match=r"classic 2\.1\.post1 is in the SBOM but not installed"):
        check_sbom(sbom, site, bundle)


def test_verify_fails_on_a_distribution_added_after_the_build(tmp_path: Path) -> None:
    # A runtime's shape is all `verify` needs to find it; without ELF files the scan is instant.
    bundle = tmp_path / "demo"
    (bundle / "python" / "bin").mkdir(parents=True)
    (bundle / "python" / "bin" / "python3").write_text("#!/bin/sh\n")
    site = fake_site(bundle)
    sbom = bundle_sbom(
        name="demo",
        release=FakeRelease(),
        distributions=scan_distributions(site, bundle),
        mtime=MTIME,
    )
    (bundle / SBOM_NAME).write_text(sbom)

    def packed() -> Path:
        archive = tmp_path / "demo.tar.gz"
        archive.unlink(missing_ok=True)
        subprocess.run(
            ["tar", "-I", "gzip -1", "-cf", str(archive), "demo"], cwd=tmp_path, check=True
        )
        return archive

    log = Logger(io.StringIO(), github=False, tty=False)
    result = verify_archive(packed(), max_glibc=None, external_libs="warn", log=log, smoke=False)
    assert result.bundle == "demo"

    add_distribution(site, "left-pad", "0.1")
    with pytest.raises(CheckError) as raised:
        verify_archive(packed(), max_glibc=None, external_libs="warn", log=log, smoke=False)
    message = str(raised.value)
    assert "SBOM `sbom.cdx.json` does not match its site-packages" in message
    assert "left-pad 0.1 is installed but not in the SBOM" in message
