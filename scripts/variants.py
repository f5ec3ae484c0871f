#!/usr/bin/env python3
"""Generate the manylinux2014 variant of the action from the top-level files.

`uses:` cannot pass build arguments, so the glibc 2.17 image is a second action
(`manylinux2014/action.yml`) with its own Dockerfile (`manylinux2014.Dockerfile`).
Both are copies of `action.yml` and `Dockerfile` with a handful of lines changed,
so this script writes them and a test checks they are up to date:

    python scripts/variants.py          # rewrite the variant's files
    python scripts/variants.py --check  # exit 1 when they are stale

The variant's Dockerfile sits at the repository's top because the runner builds
a Dockerfile action with the Dockerfile's folder as the build context, and the
image needs the whole package.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANT = "manylinux2014"
VARIANT_ACTION = Path(VARIANT) / "action.yml"
VARIANT_DOCKERFILE = Path(f"{VARIANT}.Dockerfile")
# pypa publishes every manylinux policy under the same date tags.
VARIANT_BASE_IMAGE = "quay.io/pypa/manylinux2014:2026.06.04-1"


def _replace_one(text: str, pattern: str, replacement: str, what: str) -> str:
    new, count = re.subn(pattern, replacement, text, count=2, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit(f"expected one {what} to rewrite, found {count}")
    return new


def variant_action(top: str) -> str:
    text = _replace_one(top, r"^name: (.+)$", rf"name: \1 ({VARIANT})", "top-level name:")
    text = _replace_one(
        text,
        r"^description: >-\n",
        f"description: >-\n  The {VARIANT} (glibc 2.17, CentOS 7 userland) variant.\n",
        "top-level description",
    )
    return _replace_one(
        text, r"^  image: Dockerfile$", f"  image: ../{VARIANT_DOCKERFILE}", "image: Dockerfile"
    )


def variant_dockerfile(top: str) -> str:
    header = (
        f"# Generated from Dockerfile by scripts/variants.py: the {VARIANT} (glibc 2.17)\n"
        "# image, built the same way on a CentOS 7 based manylinux userland.\n"
    )
    body = _replace_one(
        top, r"^ARG BASE_IMAGE=.*$", f"ARG BASE_IMAGE={VARIANT_BASE_IMAGE}", "ARG BASE_IMAGE="
    )
    return header + body


def expected_files(repo: Path = REPO) -> dict[Path, str]:
    return {
        VARIANT_ACTION: variant_action((repo / "action.yml").read_text(encoding="utf-8")),
        VARIANT_DOCKERFILE: variant_dockerfile((repo / "Dockerfile").read_text(encoding="utf-8")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in expected_files().items():
        path = REPO / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"stale: {names}; run `python scripts/variants.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
