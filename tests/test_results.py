"""One place builds the results: `BuildResult.outputs()` feeds the CLI, the action and the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from portpy_action.build import BuildResult
from portpy_action.check.report import PortabilityReport
from portpy_action.github.summary import BundleSummary, render_build
from portpy_action.runtime import Release

ROOT = Path(__file__).resolve().parents[1]


def _result(glibc_baseline: str | None) -> BuildResult:
    release = Release(
        version="3.12.8",
        tag="20250106",
        target="x86_64-unknown-linux-gnu",
        flavor="install_only_stripped",
        asset_name="cpython.tar.gz",
        url="https://example.invalid/cpython.tar.gz",
        sha256="0" * 64,
    )
    report = PortabilityReport(files=(), glibc_baseline=None, external_libs=(), policy="x")
    return BuildResult(
        archive=Path("/out/app.tar.gz"),
        sha256="a" * 64,
        size=1234,
        sha256_file=Path("/out/app.tar.gz.sha256"),
        manifest_path=Path("/out/app.tar.gz.json"),
        sbom_path=Path("/out/app.tar.gz.cdx.json"),
        release=release,
        glibc_baseline=glibc_baseline,
        external_libs=(),
        distributions=(),
        timings={},
        report=report,
    )


def test_no_glibc_baseline_is_empty_in_outputs_and_none_in_the_summary() -> None:
    outputs = _result(None).outputs()
    assert outputs["glibc-baseline"] == ""
    summary = BundleSummary(
        archive_name=outputs["archive-name"],
        python_version=outputs["python-version"],
        build_tag=outputs["python-build-tag"],
        target=outputs["target"],
        size=1234,
        sha256=outputs["archive-sha256"],
        glibc_baseline=outputs["glibc-baseline"],
    )
    assert "| glibc baseline | none |" in render_build(summary)


def test_outputs_spell_every_value_as_text() -> None:
    outputs = _result("2.17").outputs()
    assert outputs["glibc-baseline"] == "2.17"
    assert outputs["archive-size"] == "1234"
    assert outputs["archive-name"] == "app.tar.gz"
    assert all(isinstance(value, str) for value in outputs.values())


def test_build_outputs_are_action_outputs() -> None:
    """Every key the build reports is an output action.yml declares."""
    declared = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))["outputs"]
    assert set(_result(None).outputs()) <= set(declared)


def _keys(schema: object) -> list[str]:
    """Every property name the schema defines, at any depth."""
    if isinstance(schema, dict):
        named = (
            list(schema.get("properties", {})) if isinstance(schema.get("properties"), dict) else []
        )
        return named + [key for value in schema.values() for key in _keys(value)]
    if isinstance(schema, list):
        return [key for value in schema for key in _keys(value)]
    return []


def test_the_manifest_schema_spells_every_key_in_kebab_case() -> None:
    schema = json.loads((ROOT / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    keys = _keys(schema)
    assert {
        "glibc-baseline",
        "external-libs",
        "search-paths",
        "in-bundle",
        "python-version",
    } <= set(keys)
    assert [key for key in keys if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key)] == []
