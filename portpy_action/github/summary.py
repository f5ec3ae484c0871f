"""The step summary: what was built, as markdown for the run's page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Enough for any real environment, and far below the runner's 1 MiB.
MAX_LISTED_DISTRIBUTIONS = 2000


@dataclass(frozen=True)
class BundleSummary:
    archive_name: str
    python_version: str
    build_tag: str
    target: str
    size: int
    sha256: str
    glibc_baseline: str
    external_libs: Sequence[str] = ()
    distributions: Sequence[tuple[str, str]] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    artifact_url: str = ""
    release_asset_url: str = ""


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, str], rows: Sequence[tuple[str, str]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows]
    return lines


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def render_build(summary: BundleSummary) -> str:
    rows = [
        ("Archive", f"`{summary.archive_name}`"),
        ("Python", summary.python_version),
        ("Build tag", summary.build_tag),
        ("Target", summary.target),
        ("Size", f"{human_size(summary.size)} ({summary.size} bytes)"),
        ("sha256", f"`{summary.sha256}`"),
        ("glibc baseline", summary.glibc_baseline or "none"),
        ("External libraries", ", ".join(summary.external_libs) or "none"),
    ]
    if summary.artifact_url:
        rows.append(("Workflow artifact", summary.artifact_url))
    if summary.release_asset_url:
        rows.append(("Release asset", summary.release_asset_url))
    lines = [f"## Portable Python bundle `{summary.archive_name}`", "", *_table(("", ""), rows), ""]

    listed = summary.distributions[:MAX_LISTED_DISTRIBUTIONS]
    lines += [
        f"<details><summary>{len(summary.distributions)} installed distributions</summary>",
        "",
    ]
    lines += _table(("Distribution", "Version"), listed)
    if len(summary.distributions) > len(listed):
        lines.append(f"\n… and {len(summary.distributions) - len(listed)} more")
    lines += ["", "</details>", ""]

    if summary.timings:
        total = sum(summary.timings.values())
        timing_rows = [(stage, f"{seconds:.1f} s") for stage, seconds in summary.timings.items()]
        lines += ["<details><summary>Stage timings</summary>", ""]
        lines += _table(("Stage", "Time"), [*timing_rows, ("**total**", f"**{total:.1f} s**")])
        lines += ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def render_check(outputs: Mapping[str, str]) -> str:
    rows = [(name, f"`{value}`") for name, value in outputs.items()]
    return (
        "\n".join(["## Portable Python: check", "", *_table(("Output", "Value"), rows), ""]) + "\n"
    )


def render_failure(headline: str, hint: str, exit_code: int) -> str:
    """The step summary of a failed run: the error and what to do about it."""
    lines = ["## Portable Python: failed", "", f"**Error:** {_escape_markdown(headline)}", ""]
    if hint:
        lines += [f"**Hint:** {_escape_markdown(hint)}", ""]
    lines += [f"Exit code {exit_code} (see the README's exit codes).", ""]
    return "\n".join(lines) + "\n"


def _escape_markdown(text: str) -> str:
    """Plain text in markdown: no HTML from an error message, one paragraph."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
