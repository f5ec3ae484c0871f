"""`sbom.cdx.json`: a CycloneDX 1.6 software bill of materials for a bundle.

What a bundle ships, in the form supply-chain tools read: the CPython runtime
(python-build-standalone tag, target, asset sha256, PSF-2.0), every installed
distribution (a `pkg:pypi` purl, its license and the sha256 of its RECORD, which
in turn hashes every file it installed), the shared libraries vendored inside
wheels (`<dist>.libs/`, nested under the distribution that ships them) and the
project itself as the BOM's subject.

The document is written by cyclonedx-python-lib and is deterministic, so the
archive that holds it stays reproducible: every bom-ref is derived from what it
names, the timestamp is the archive's entry mtime (SOURCE_DATE_EPOCH), and the
serial number is a UUID derived from the rest of the document.

Facts are gathered from the bundle tree into plain data first (`scan_distributions`),
so the document itself is a pure function of that data (`bundle_sbom`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from portpy_action import __version__, atomic
from portpy_action.bundle.manifest import ReleaseInfo
from portpy_action.distributions import canonical_name, distribution_of, read_metadata
from portpy_action.errors import CheckError

SBOM_NAME = "sbom.cdx.json"
# Where the python-build-standalone assets are published; the purl names the
# asset by this address even when it was fetched from a mirror (same bytes).
PBS_DOWNLOADS = "https://github.com/astral-sh/python-build-standalone/releases/download"
# CPython's license, as SPDX spells it.
CPYTHON_LICENSE = "PSF-2.0"
# Custom property names, namespaced as CycloneDX recommends.
PROPERTY_PREFIX = "portable-python"
# The namespace of the serial number's name-based UUID.
_SERIAL_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://pypi.org/project/portable-python-action/"
)
_SHARED_LIBRARY_RE = re.compile(r"\.so(\.\d+)*$")


@dataclass(frozen=True)
class VendoredLibrary:
    """A shared library a wheel carries in a `*.libs/` folder (auditwheel's repair)."""

    path: str  # relative to the bundle's top folder, `/`-separated
    sha256: str


@dataclass(frozen=True)
class DistributionFacts:
    """One installed distribution, as its dist-info describes it."""

    name: str  # as METADATA spells it
    version: str
    license: str | None  # an SPDX expression or a license name, when the metadata gives one
    record_sha256: str  # sha256 of its RECORD file, hex
    libraries: tuple[VendoredLibrary, ...] = ()


def distribution_purl(name: str, version: str) -> str:
    return PackageURL(type="pypi", name=canonical_name(name), version=version).to_string()


# ----------------------------------------------------------------------------
# Facts from the bundle tree


def scan_distributions(site_packages: Path, bundle: Path) -> list[DistributionFacts]:
    """Every distribution in `site_packages` with its license, RECORD hash and vendored libraries."""
    found = []
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        headers = read_metadata(dist_info)
        distribution = None if headers is None else distribution_of(headers)
        if headers is None or distribution is None:
            continue
        record = dist_info / "RECORD"
        record_bytes = record.read_bytes() if record.is_file() else b""
        found.append(
            DistributionFacts(
                name=distribution.name,
                version=distribution.version,
                license=license_of(headers.get_all("License-Expression") or [], headers),
                record_sha256=hashlib.sha256(record_bytes).hexdigest(),
                libraries=tuple(_vendored_libraries(record_bytes, site_packages, bundle)),
            )
        )
    return sorted(found, key=lambda d: canonical_name(d.name))


def license_of(expressions: Sequence[str], headers: Any) -> str | None:
    """`License-Expression` (PEP 639), else the license classifiers, else a one-line `License`."""
    for expression in expressions:
        if str(expression).strip():
            return str(expression).strip()
    classifiers = [
        str(c).split("::")[-1].strip()
        for c in headers.get_all("Classifier") or []
        if str(c).startswith("License ::") and str(c).count("::") >= 2
    ]
    if classifiers:
        return " AND ".join(sorted(set(classifiers))) if len(classifiers) > 1 else classifiers[0]
    # The free-text field often holds a whole license text; only a short name is useful.
    text = str(headers["License"] or "").strip()
    if text and "\n" not in text and len(text) <= 64 and text.upper() != "UNKNOWN":
        return text
    return None


def _vendored_libraries(record: bytes, site_packages: Path, bundle: Path) -> list[VendoredLibrary]:
    """Shared libraries this RECORD installed into a `*.libs` folder (top level or in a package)."""
    libraries = []
    text = record.decode("utf-8", errors="replace")
    for row in csv.reader(io.StringIO(text)):
        # Plain strings until a row qualifies: a large bundle's RECORDs hold tens of
        # thousands of rows, and a Path for each took most of this stage.
        *folders, name = row[0].split("/") if row else [""]
        if not any(part.endswith(".libs") for part in folders):
            continue
        if not _SHARED_LIBRARY_RE.search(name):
            continue
        path = Path(os.path.normpath(site_packages / row[0]))
        if not path.is_file() or not path.is_relative_to(bundle):
            continue
        libraries.append(
            VendoredLibrary(
                path=path.relative_to(bundle).as_posix(),
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            )
        )
    return sorted(libraries, key=lambda lib: lib.path)


# ----------------------------------------------------------------------------
# The document


def bundle_sbom(
    *,
    name: str,
    release: ReleaseInfo,
    distributions: Sequence[DistributionFacts],
    mtime: int,
) -> str:
    """The CycloneDX 1.6 JSON document for a bundle; the same data gives the same bytes."""
    bom = _bom(name=name, release=release, distributions=distributions, mtime=mtime)
    # Serialise once with a fixed placeholder, then derive the serial number from that.
    bom.serial_number = uuid.UUID(int=0)
    draft = JsonV1Dot6(bom).output_as_string(indent=2)
    bom.serial_number = uuid.uuid5(_SERIAL_NAMESPACE, hashlib.sha256(draft.encode()).hexdigest())
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def _bom(
    *, name: str, release: ReleaseInfo, distributions: Sequence[DistributionFacts], mtime: int
) -> Bom:
    project = Component(
        type=ComponentType.APPLICATION,
        name=name,
        bom_ref=f"project:{name}",
        description="The bundled project (the bundle's app/ folder) and its runtime",
    )
    tool = Component(
        type=ComponentType.APPLICATION,
        name="portable-python-action",
        version=__version__,
        bom_ref=f"tool:portable-python-action@{__version__}",
        purl=PackageURL(type="pypi", name="portable-python-action", version=__version__),
    )
    bom = Bom(
        metadata=BomMetaData(
            component=project,
            timestamp=datetime.fromtimestamp(mtime, tz=timezone.utc),
        )
    )
    bom.metadata.tools.components.add(tool)
    runtime = _runtime_component(release)
    packages = [_distribution_component(dist) for dist in distributions]
    for component in [runtime, *packages]:
        bom.components.add(component)
    bom.register_dependency(project, [runtime, *packages])
    return bom


def _runtime_component(release: ReleaseInfo) -> Component:
    url = f"{PBS_DOWNLOADS}/{release.tag}/{release.asset_name}"
    purl = PackageURL(
        type="generic",
        namespace="python-build-standalone",
        name="cpython",
        version=release.version,
        qualifiers={"download_url": url, "checksum": f"sha256:{release.sha256}"},
    )
    return Component(
        type=ComponentType.PLATFORM,
        name="cpython",
        group="python-build-standalone",
        version=release.version,
        bom_ref=f"runtime:cpython@{release.version}",
        description="CPython built by python-build-standalone",
        purl=purl,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=release.sha256)],
        licenses=[DisjunctiveLicense(id=CPYTHON_LICENSE)],
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))
        ],
        properties=[
            Property(name=f"{PROPERTY_PREFIX}:python-build-standalone:tag", value=release.tag),
            Property(
                name=f"{PROPERTY_PREFIX}:python-build-standalone:target", value=release.target
            ),
            Property(
                name=f"{PROPERTY_PREFIX}:python-build-standalone:flavor", value=release.flavor
            ),
            Property(
                name=f"{PROPERTY_PREFIX}:python-build-standalone:asset", value=release.asset_name
            ),
        ],
    )


def _distribution_component(dist: DistributionFacts) -> Component:
    purl = distribution_purl(dist.name, dist.version)
    libraries = [
        Component(
            type=ComponentType.LIBRARY,
            name=lib.path.rsplit("/", 1)[-1],
            bom_ref=f"{purl}#{lib.path}",
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=lib.sha256)],
            properties=[Property(name=f"{PROPERTY_PREFIX}:path", value=lib.path)],
        )
        for lib in dist.libraries
    ]
    return Component(
        type=ComponentType.LIBRARY,
        name=dist.name,
        version=dist.version,
        bom_ref=purl,
        purl=PackageURL.from_string(purl),
        licenses=_licenses(dist.license),
        components=libraries,
        properties=[Property(name=f"{PROPERTY_PREFIX}:record-sha256", value=dist.record_sha256)],
    )


def _licenses(text: str | None) -> list[LicenseExpression | DisjunctiveLicense]:
    if not text:
        return []
    # An SPDX id becomes `{"license": {"id"}}`, a compound one an expression, else a name.
    return [LicenseFactory().make_from_string(text)]


def write_sbom(path: Path, text: str) -> Path:
    """Write the document through a temporary name, so no half file is ever seen."""
    return atomic.write_text(path, text)


# ----------------------------------------------------------------------------
# `portpy verify`: does the SBOM still list what is installed?


def listed_distributions(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """`{normalized name: (version, record sha256)}` of the SBOM's `pkg:pypi` components."""
    listed = {}
    for component in document.get("components", []):
        purl = str(component.get("purl", ""))
        if not purl.startswith("pkg:pypi/"):
            continue
        parsed = PackageURL.from_string(purl)
        record = next(
            (
                str(p.get("value", ""))
                for p in component.get("properties", [])
                if p.get("name") == f"{PROPERTY_PREFIX}:record-sha256"
            ),
            "",
        )
        listed[canonical_name(parsed.name)] = (str(parsed.version or ""), record)
    return listed


def check_sbom(sbom: Path, site_packages: Path, bundle: Path) -> int:
    """Raise CheckError unless `sbom` lists exactly the distributions installed, unchanged.

    Returns the number of distributions checked.
    """
    try:
        document = json.loads(sbom.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckError(
            f"the bundle's SBOM `{sbom.name}` cannot be read ({exc})",
            hint="Rebuild the bundle; the SBOM is written by `portpy build`",
            file=sbom,
        ) from exc
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise CheckError(f"`{sbom.name}` is not a CycloneDX document", file=sbom)
    listed = listed_distributions(document)
    installed = {
        canonical_name(d.name): (d.version, d.record_sha256)
        for d in scan_distributions(site_packages, bundle)
    }
    problems = []
    for key in sorted(installed.keys() - listed.keys()):
        problems.append(f"{key} {installed[key][0]} is installed but not in the SBOM")
    for key in sorted(listed.keys() - installed.keys()):
        problems.append(f"{key} {listed[key][0]} is in the SBOM but not installed")
    for key in sorted(installed.keys() & listed.keys()):
        (have_version, have_record), (want_version, want_record) = installed[key], listed[key]
        if have_version != want_version:
            problems.append(f"{key} is {have_version}, the SBOM says {want_version}")
        elif want_record and have_record != want_record:
            problems.append(f"{key} {have_version}: its RECORD changed since the SBOM was written")
    if problems:
        raise CheckError(
            f"the bundle's SBOM `{sbom.name}` does not match its site-packages: "
            + "; ".join(problems),
            hint="Something changed the bundle after it was built; rebuild it rather than editing it",
            file=sbom,
        )
    return len(installed)
