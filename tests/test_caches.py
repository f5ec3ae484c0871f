"""The prepared-runtime and installed-environment caches: same bytes, honest hits, safe fills.

Builds use the fixture runtime through `python-archive` and the test wheels from
a `--find-links` folder: no index, no GitHub.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from portpy_action.build import BuildResult, build
from portpy_action.bundle.dependencies import plan_install
from portpy_action.bundle.envcache import UNPINNED_MAX_AGE, environment_key
from portpy_action.errors import PortpyError
from portpy_action.log import Logger
from portpy_action.pack import SegmentSpan
from portpy_action.packcache import keep_segment, kept_segment, segment_key
from portpy_action.runtime.cachestore import (
    KEEP_ENTRIES,
    borrow,
    copy_tree,
    give_back,
    lookup,
    prune,
    store,
)
from portpy_action.spec import BuildSpec
from tests.fixtures.pbs import PbsReleases
from tests.fixtures.wheels import WheelSet

REPO = Path(__file__).resolve().parent.parent


class Builds:
    def __init__(self, folder: Path, values: dict[str, str]) -> None:
        self.folder = folder
        self.values = values

    def run(self, **changes: str) -> tuple[BuildResult, str]:
        stream = io.StringIO()
        values = self.values | {k.replace("_", "-"): v for k, v in changes.items()}
        spec = BuildSpec.from_inputs(values, base_dir=self.folder, env={})
        result = build(spec, log=Logger(stream, github=False, tty=False))
        return result, stream.getvalue()


@pytest.fixture(scope="module")
def builds(
    tmp_path_factory: pytest.TempPathFactory, pbs_releases: PbsReleases, test_wheels: WheelSet
) -> Builds:
    folder = tmp_path_factory.mktemp("caches")
    (folder / "project").mkdir()
    (folder / "project" / "greet.py").write_text("print('hello')\n")
    test_wheels.requirements(folder / "requirements.txt")
    asset = pbs_releases.asset(pbs_releases.latest, "3.12")
    return Builds(
        folder,
        {
            "python-version": "3.12",
            "python-archive": str(asset),
            "python-sha256": pbs_releases.sha256(pbs_releases.latest, asset.name),
            "cache-dir": "cache",  # empty: the first build is cold
            "requirements": "requirements.txt",
            "project-dir": "project",
            "output-dir": "out",
            "name": "demo",
            "command": "-m greet",
            "smoke-test": "false",
        },
    )


@pytest.fixture(scope="module")
def cold_then_warm(builds: Builds) -> tuple[tuple[BuildResult, str], tuple[BuildResult, str]]:
    cold = builds.run()
    kept = cold[0].archive.read_bytes()
    warm = builds.run()
    assert warm[0].archive.read_bytes() == kept
    return cold, warm


@pytest.mark.slow  # two whole builds
def test_a_warm_build_gives_the_cold_builds_bytes(
    cold_then_warm: tuple[tuple[BuildResult, str], tuple[BuildResult, str]],
) -> None:
    (cold, cold_log), (warm, warm_log) = cold_then_warm
    assert warm.sha256 == cold.sha256
    assert "prepared-runtime cache: miss, filled" in cold_log
    assert "environment cache: miss" in cold_log
    assert "environment cache: filled" in cold_log
    # The environment holds the runtime: the prepared runtime is not even copied.
    assert "environment cache: hit" in warm_log
    assert "prepared-runtime cache" not in warm_log
    # A hit still reports every stage the bench reads.
    for stage in ("unpack", "install", "repair", "relocate", "compile"):
        assert stage in warm.timings


@pytest.mark.slow  # the builds above
def test_pycs_name_neither_the_bundle_nor_the_build_folder(
    cold_then_warm: tuple[tuple[BuildResult, str], tuple[BuildResult, str]],
) -> None:
    (cold, _), _ = cold_then_warm
    with tarfile.open(cold.archive) as archive:
        names = archive.getnames()
        stdlib = next(n for n in names if n.endswith("__pycache__/os.cpython-312.pyc"))
        app = next(n for n in names if n.endswith("__pycache__/greet.cpython-312.pyc"))
        stdlib_pyc = archive.extractfile(stdlib).read()  # type: ignore[union-attr]
        app_pyc = archive.extractfile(app).read()  # type: ignore[union-attr]
    assert b"python/lib/python3.12/os.py" in stdlib_pyc
    assert b"demo/" not in stdlib_pyc
    assert b"app/greet.py" in app_pyc
    assert b"demo/" not in app_pyc


@pytest.mark.slow  # a third build
def test_a_project_change_reuses_the_environment_and_compiles_only_the_app(
    builds: Builds,
    cold_then_warm: tuple[tuple[BuildResult, str], tuple[BuildResult, str]],
) -> None:
    (cold, _), _ = cold_then_warm
    greet = builds.folder / "project" / "greet.py"
    greet.write_text("print('hello again')\n")
    try:
        changed, log = builds.run()
    finally:
        greet.write_text("print('hello')\n")
    assert "environment cache: hit" in log
    assert changed.sha256 != cold.sha256
    # app/greet.py alone was handed to the compiler.
    assert "  1 files; left as source" in log


@pytest.mark.slow  # a third build, installing again
def test_a_changed_requirements_file_misses(
    builds: Builds,
    cold_then_warm: tuple[tuple[BuildResult, str], tuple[BuildResult, str]],
) -> None:
    other = builds.folder / "other-requirements.txt"
    other.write_text((builds.folder / "requirements.txt").read_text() + "# changed\n")
    _, log = builds.run(requirements=str(other))
    assert "prepared-runtime cache: hit" in log
    assert "environment cache: miss" in log


def _tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under `root`: its mode and content hash (symlinks: their target)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            seen[path.relative_to(root).as_posix()] = (info.st_mode, os.readlink(path))
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            seen[path.relative_to(root).as_posix()] = (info.st_mode, digest)
    return seen


@pytest.mark.slow  # two more builds
def test_a_hit_moves_the_environment_in_and_gives_it_back_unchanged(
    builds: Builds,
    cold_then_warm: tuple[tuple[BuildResult, str], tuple[BuildResult, str]],
) -> None:
    (cold, cold_log), (_, warm_log) = cold_then_warm
    assert "kept python/'s packed bytes for the next build" in cold_log
    assert "python/ as packed before" in warm_log  # and the bytes are the cold build's
    short = re.search(r"environment cache: filled \((\w+)\)", cold_log)
    assert short is not None
    (entry,) = (builds.folder / "cache" / "environments").glob(f"{short[1]}*[!k]")  # not .lock
    before = _tree_digest(entry)
    assert any(name.startswith("python/lib/python3.12/site-packages/") for name in before)
    # Fails after python/ was placed (the command names no module of the bundle).
    with pytest.raises(PortpyError):
        builds.run(command="-m no_such_module")
    again, log = builds.run()
    assert "environment cache: hit" in log
    assert again.sha256 == cold.sha256
    assert _tree_digest(entry) == before
    assert not list((builds.folder / "out").glob(".portpy-*/.borrowed-environment"))


# --------------------------------------------------------------------------
# the cache store


_KILLED_FILL = """
import sys, time
from pathlib import Path
from portpy_action.runtime.cachestore import store

def fill(folder: Path) -> None:
    (folder / "half").write_text("half")
    print("filling", flush=True)
    time.sleep(60)

store(Path(sys.argv[1]), "key", fill)
"""


def test_a_killed_fill_is_never_taken_for_an_entry(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_FILL, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "filling"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".key.")]  # left half-filled
    with lookup(tmp_path, "key") as entry:
        assert entry is None
    made = store(tmp_path, "key", lambda folder: (folder / "whole").write_text("whole"))
    assert made == tmp_path / "key"
    assert sorted(p.name for p in made.iterdir()) == [".filled", "whole"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".key.")]  # swept


def test_an_entry_older_than_max_age_is_filled_again(tmp_path: Path) -> None:
    store(tmp_path, "key", lambda folder: (folder / "v").write_text("1"))
    old = time.time() - UNPINNED_MAX_AGE - 10
    os.utime(tmp_path / "key" / ".filled", (old, old))
    with lookup(tmp_path, "key", max_age=UNPINNED_MAX_AGE) as entry:
        assert entry is None
    with lookup(tmp_path, "key", max_age=None) as entry:  # pinned: as long as it stays
        assert entry == tmp_path / "key"
    store(tmp_path, "key", lambda folder: (folder / "v").write_text("2"), max_age=UNPINNED_MAX_AGE)
    assert (tmp_path / "key" / "v").read_text() == "2"
    assert not (tmp_path / "key" / ".stale").exists()


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    for number in range(KEEP_ENTRIES + 2):
        store(tmp_path, f"k{number}", lambda folder: None)
        os.utime(tmp_path / f"k{number}", (1000 + number, 1000 + number))
    entries = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert entries == [f"k{n}" for n in range(2, KEEP_ENTRIES + 2)]  # each fill prunes
    with lookup(tmp_path, "k2") as entry:  # used now: the newest
        assert entry is not None
    prune(tmp_path, keep=2)
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert left == ["k2", f"k{KEEP_ENTRIES + 1}"]


def test_copy_tree_keeps_modes_and_symlinks_and_shares_no_inode(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    (src / "bin" / "tool").chmod(0o755)
    (src / "ro").mkdir()
    (src / "ro" / "data").write_bytes(b"x" * 100_000)
    (src / "ro").chmod(0o555)
    (src / "bin" / "link").symlink_to("tool")
    try:
        assert copy_tree(src, tmp_path / "dst") == 2
        dst = tmp_path / "dst"
        assert (dst / "bin" / "tool").stat().st_mode & 0o777 == 0o755
        assert (dst / "ro").stat().st_mode & 0o777 == 0o555
        assert os.readlink(dst / "bin" / "link") == "tool"
        assert (dst / "ro" / "data").read_bytes() == b"x" * 100_000
        assert (dst / "ro" / "data").stat().st_ino != (src / "ro" / "data").stat().st_ino
    finally:
        (src / "ro").chmod(0o755)
        (tmp_path / "dst" / "ro").chmod(0o755)


def test_copy_tree_with_link_shares_inodes_and_copies_across_file_systems(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "data").write_bytes(b"x" * 1000)
    (src / "lib" / "tool").write_text("#!/bin/sh\n")
    (src / "lib" / "tool").chmod(0o755)
    (src / "lib" / "link").symlink_to("data")
    assert copy_tree(src, tmp_path / "linked", link=True) == 2
    linked = tmp_path / "linked" / "lib"
    assert (linked / "data").stat().st_ino == (src / "lib" / "data").stat().st_ino
    assert (linked / "tool").stat().st_mode & 0o777 == 0o755
    assert os.readlink(linked / "link") == "data"
    # /dev/shm is another file system: no hard link can reach it, so the files are copied.
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        assert copy_tree(src, other / "copied", link=True) == 2
        copied = other / "copied" / "lib" / "data"
        assert copied.read_bytes() == b"x" * 1000
        assert copied.stat().st_ino != (src / "lib" / "data").stat().st_ino
    finally:
        shutil.rmtree(other)


def _filled(tmp_path: Path, key: str = "k") -> Path:
    kind = tmp_path / "cache" / "environments"
    store(kind, key, lambda folder: (folder / "python").mkdir())
    return kind


def test_a_borrowed_entry_leaves_the_cache_and_comes_back(tmp_path: Path) -> None:
    kind = _filled(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    borrowed = borrow(kind, "k", work / "env")
    assert borrowed == work / "env"
    assert (borrowed / "python").is_dir()
    assert not (kind / "k").exists()  # meanwhile another build with this key misses
    with lookup(kind, "k") as entry:
        assert entry is None
    assert give_back(kind, "k", borrowed)
    assert (kind / "k" / "python").is_dir() and not borrowed.exists()


def test_an_entry_another_build_reads_is_not_borrowed(tmp_path: Path) -> None:
    kind = _filled(tmp_path)
    with lookup(kind, "k") as entry:
        assert entry is not None
        assert borrow(kind, "k", tmp_path / "env") is None
    assert (kind / "k").is_dir()


def test_an_entry_is_not_borrowed_across_file_systems(tmp_path: Path) -> None:
    kind = _filled(tmp_path)
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        assert borrow(kind, "k", other / "env") is None
        assert (kind / "k" / "python").is_dir()
    finally:
        shutil.rmtree(other)


def test_a_newer_entry_wins_over_one_given_back(tmp_path: Path) -> None:
    kind = _filled(tmp_path)
    borrowed = borrow(kind, "k", tmp_path / "env")
    assert borrowed is not None
    store(kind, "k", lambda folder: (folder / "newer").touch())  # another build filled it
    assert not give_back(kind, "k", borrowed)
    assert (kind / "k" / "newer").exists()


def test_packed_members_are_kept_and_found_by_their_key(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"head" + b"MEMBERS" + b"tail")
    key = segment_key("entry-1", name="demo", mtime=0)
    assert keep_segment(tmp_path / "cache", key, archive, SegmentSpan(4, 11, 512))
    with kept_segment(tmp_path / "cache", key) as kept:
        assert kept is not None
        assert kept.path.read_bytes() == b"MEMBERS" and kept.tar_size == 512
    # Another entry, name or time is another key.
    others = {
        segment_key("entry-2", name="demo", mtime=0),
        segment_key("entry-1", name="other", mtime=0),
        segment_key("entry-1", name="demo", mtime=1),
    }
    assert key not in others and len(others) == 3
    with kept_segment(tmp_path / "cache", segment_key("entry-2", name="demo", mtime=0)) as kept:
        assert kept is None


# --------------------------------------------------------------------------
# the environment key


def _key(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[str | None, bool]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text)
    plan = plan_install(requirements, None, install_project="auto")
    key = environment_key(
        plan,
        runtime_key="r",
        installer="pip",
        target="x86_64-unknown-linux-gnu",
        compiled=True,
        env=env or {},
    )
    return key.digest, key.pinned


def test_pinned_requirements_are_reused_without_an_age_limit(tmp_path: Path) -> None:
    assert _key(tmp_path, "a==1.0\nb[x]==2 ; python_version>'3'\n")[1] is True
    assert _key(tmp_path, "a==1.0 --hash=sha256:00\n--index-url https://i/simple\n")[1] is True
    assert _key(tmp_path, "a>=1.0\n")[1] is False
    assert _key(tmp_path, "a\n")[1] is False
    assert _key(tmp_path, "a==1.*\n")[1] is False


def test_an_included_file_is_part_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("a==1\n")
    first = _key(tmp_path, "-r base.txt\n")
    (tmp_path / "base.txt").write_text("a==2\n")
    second = _key(tmp_path, "-r base.txt\n")
    assert first[0] != second[0]
    assert first[1] is True


def test_index_settings_change_the_key_and_cosmetic_ones_do_not(tmp_path: Path) -> None:
    plain = _key(tmp_path, "a==1\n")[0]
    assert _key(tmp_path, "a==1\n", {"PIP_INDEX_URL": "https://other/simple"})[0] != plain
    assert _key(tmp_path, "a==1\n", {"UV_EXTRA_INDEX_URL": "https://other/simple"})[0] != plain
    assert _key(tmp_path, "a==1\n", {"PIP_CACHE_DIR": "/elsewhere", "HOME": "/x"})[0] == plain


def test_a_local_path_requirement_is_not_cached(tmp_path: Path) -> None:
    assert _key(tmp_path, "./wheels/a-1.0-py3-none-any.whl\n")[0] is None
    assert _key(tmp_path, "a @ file:///tmp/a.whl\n")[0] is None
