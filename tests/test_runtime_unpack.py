"""Malicious archives are refused before a single byte is written."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from portpy_action.errors import RuntimeFetchError
from portpy_action.runtime.unpack import safe_extract

Member = tuple[tarfile.TarInfo, bytes]


def _tarball(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, data: bytes = b"x") -> Member:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _device(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, b""


@pytest.mark.parametrize(
    ("why", "members"),
    [
        ("absolute path", lambda out: [_file("python/ok"), _file(str(out / "evil"))]),
        ("`..` component", lambda out: [_file("python/ok"), _file("python/../../outside/evil")]),
        (
            "symlink pointing outside",
            lambda out: [_link("python/escape", "../../outside"), _file("python/escape/evil")],
        ),
        (
            "hard link to outside",
            lambda out: [_link("python/h", "../outside/evil", tarfile.LNKTYPE)],
        ),
        ("device", lambda out: [_file("python/ok"), _device("python/null")]),
    ],
)
def test_malicious_archive_is_refused_and_writes_nothing(
    tmp_path: Path, why: str, members: Callable[[Path], list[Member]]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    archive = _tarball(tmp_path / "evil.tar.gz", members(outside))
    with pytest.raises(RuntimeFetchError, match="unsafe") as exc:
        safe_extract(archive, dest)
    assert why.split()[0] in str(exc.value)
    assert list(outside.iterdir()) == []
    assert list(dest.iterdir()) == []


def test_good_archive_replaces_an_older_runtime(tmp_path: Path) -> None:
    archive = _tarball(
        tmp_path / "ok.tar.gz",
        [_file("python/bin/python3", b"new"), _link("python/bin/python", "python3")],
    )
    dest = tmp_path / "dest"
    (dest / "python" / "bin").mkdir(parents=True)
    (dest / "python" / "stale").write_text("old")
    root = safe_extract(archive, dest)
    assert root == dest / "python"
    assert (root / "bin" / "python").read_text() == "new"
    assert not (root / "stale").exists()
    assert [p.name for p in dest.iterdir()] == ["python"]


def test_archive_without_a_python_top_folder_is_refused(tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "other.tar.gz", [_file("install/bin/python3")])
    with pytest.raises(RuntimeFetchError, match="install_only"):
        safe_extract(archive, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []
