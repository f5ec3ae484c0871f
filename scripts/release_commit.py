#!/usr/bin/env python3
"""Make a release commit: the actions run the published images, pinned by digest.

On the default branch `action.yml` says `image: Dockerfile`, so a job that uses the
action from `main` builds the image itself (development). A release instead runs
the image release.yml pushed: this script rewrites only the `image:` line of
`action.yml` and of each variant's action (`manylinux2014/action.yml`) to
`docker://<image>@sha256:<digest>`, commits that on top of the checked-out commit
and points the tag `vX.Y.Z` at the new commit. Whoever pins the tag or the commit
SHA then gets exactly the image that was built and attested for it.

    python scripts/release_commit.py --tag v1.2.3 \\
        --image ghcr.io/OWNER/portable-python-action \\
        --digest sha256:<default image> --digest manylinux2014=sha256:<2.17 image>

The commit is made with the git identity of the environment; pushing it (and the
tag) is left to the caller.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# The one tag shape that makes a release; release.yml's trigger allows no other.
RELEASE_TAG_RE = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_RE = re.compile(r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+$")
# Which action.yml runs which image ("" is the top-level, default image).
ACTIONS = {"": Path("action.yml"), "manylinux2014": Path("manylinux2014/action.yml")}
_IMAGE_LINE_RE = re.compile(r"^(  image:)[ \t]+\S.*$", re.MULTILINE)


class ReleaseError(Exception):
    pass


def pin_image(text: str, reference: str, *, source: Path) -> str:
    """`text` with its one `runs.image` line set to `docker://<reference>`."""
    new, count = _IMAGE_LINE_RE.subn(lambda m: f"{m.group(1)} docker://{reference}", text)
    if count != 1:
        raise ReleaseError(f"{source}: expected one `  image:` line under `runs:`, found {count}")
    return new


def parse_digests(values: list[str]) -> dict[str, str]:
    """`--digest sha256:…` for the default image, `--digest VARIANT=sha256:…` for a variant."""
    digests: dict[str, str] = {}
    for value in values:
        variant, _, digest = value.rpartition("=")
        if variant not in ACTIONS:
            raise ReleaseError(f"--digest {value}: unknown variant `{variant}`")
        if not DIGEST_RE.match(digest):
            raise ReleaseError(f"--digest {value}: not a sha256:<64 hex digits> digest")
        digests[variant] = digest
    missing = [name or "default" for name in ACTIONS if name not in digests]
    if missing:
        raise ReleaseError(f"no --digest for: {', '.join(missing)}")
    return digests


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def release_commit(repo: Path, *, tag: str, image: str, digests: dict[str, str]) -> str:
    """Commit the pinned images on top of HEAD, tag it `tag`; return the commit SHA."""
    if not RELEASE_TAG_RE.match(tag):
        raise ReleaseError(f"`{tag}` is not a release tag vMAJOR.MINOR.PATCH")
    if not IMAGE_RE.match(image):
        raise ReleaseError(f"`{image}` is not an image name such as ghcr.io/owner/name")
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise ReleaseError(f"{repo} has uncommitted changes; release from a clean checkout")
    for variant, relative in ACTIONS.items():
        path = repo / relative
        pinned = pin_image(
            path.read_text(encoding="utf-8"), f"{image}@{digests[variant]}", source=relative
        )
        path.write_text(pinned, encoding="utf-8")
    _git(repo, "add", "--", *(str(p) for p in ACTIONS.values()))
    _git(
        repo,
        "commit",
        "--quiet",
        "-m",
        f"Release {tag}: run the published images, pinned by digest",
    )
    _git(repo, "tag", "--force", tag)
    return _git(repo, "rev-parse", "HEAD")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="the release tag, vMAJOR.MINOR.PATCH")
    parser.add_argument("--image", required=True, help="e.g. ghcr.io/OWNER/portable-python-action")
    parser.add_argument(
        "--digest",
        action="append",
        default=[],
        help="sha256:<hex> of the default image; VARIANT=sha256:<hex> for a variant",
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    args = parser.parse_args(argv)
    try:
        commit = release_commit(
            args.repo, tag=args.tag, image=args.image, digests=parse_digests(args.digest)
        )
    except ReleaseError as exc:
        print(f"release_commit: {exc}", file=sys.stderr)
        return 1
    print(commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
