"""The runtime stage: a verified, relocatable python-build-standalone interpreter on disk.

`resolve_release` answers "which asset, which checksum" without downloading
(`mode: check`); `fetch_runtime` also downloads (or takes `python-archive`),
verifies, unpacks safely and fixes sysconfig, and returns where it all went.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from portpy_action.archives import sha256_file
from portpy_action.childenv import child_environ
from portpy_action.errors import InputError, RuntimeFetchError
from portpy_action.log import Logger
from portpy_action.retry import DEFAULT_RETRY, RetryPolicy, Sleep
from portpy_action.runtime import releases
from portpy_action.runtime.bundledwheels import store_bundled_wheels
from portpy_action.runtime.client import client_for, with_auth_guard
from portpy_action.runtime.download import cached_download
from portpy_action.runtime.prepared import PreparedCopy, Substitute, copy_prepared
from portpy_action.runtime.probe import probe_files, runs_here
from portpy_action.runtime.releases import AssetName, Release
from portpy_action.runtime.sysconfig import fix_sysconfig
from portpy_action.runtime.unpack import TOP, require_interpreter, safe_extract, staged_runtime
from portpy_action.spec import RuntimeRequest

__all__ = ["Release", "Runtime", "fetch_runtime", "resolve_release"]

UNKNOWN_TAG = "unknown"


@dataclass(frozen=True)
class Runtime:
    root: Path  # dest/python
    python: Path  # root/bin/python3
    release: Release
    # The prepared-runtime cache's key; None when the runtime was unpacked here
    # (another architecture) and its standard library is not compiled yet.
    prepared_key: str | None = None
    # python/ came from the installed-environment cache (`substitute`): installed,
    # relocated and compiled already.
    installed: bool = False


@contextmanager
def _guarded(request: RuntimeRequest, client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The caller's client or a new one; either way each credential reaches only its origin."""
    if client is not None:
        yield with_auth_guard(client, request)
        return
    with client_for(request) as own:
        yield own


def resolve_release(
    request: RuntimeRequest,
    *,
    log: Logger,
    client: httpx.Client | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
) -> Release:
    """Which asset (and sha256) the request means; downloads no runtime."""
    for secret in request.secrets:
        log.mask(secret)
    if request.archive is not None:
        return _archive_release(request, log)
    with _guarded(request, client) as guarded:
        return releases.lookup_release(request, client=guarded, log=log, retry=retry, sleep=sleep)


def fetch_runtime(
    request: RuntimeRequest,
    dest: Path,
    *,
    log: Logger,
    client: httpx.Client | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Sleep = time.sleep,
    cached: bool = False,
    compile_stdlib: bool = False,
    substitute: Substitute | None = None,
) -> Runtime:
    """Resolve, download (or take `python-archive`), verify, unpack to `dest/python`, fix.

    `cached` (a bundle build): the prepared runtime is kept in the cache-dir and
    copied from there, its standard library compiled as the bundle's compile
    stage would with `compile_stdlib`, and `substitute` may offer a finished
    environment instead. Without it (`portpy fetch`) the runtime is unpacked
    into `dest` directly, checked before it appears there.
    """
    for secret in request.secrets:
        log.mask(secret)
    if request.archive is not None:
        with log.stage("resolve", f"Use the local runtime {request.archive.name}"):
            release = _archive_release(request, log, probe=False)
            archive = request.archive
    else:
        with _guarded(request, client) as guarded:
            with log.stage("resolve", "Resolve the python-build-standalone release"):
                release = releases.lookup_release(
                    request, client=guarded, log=log, retry=retry, sleep=sleep
                )
                log.info(f"python-build-standalone {release.tag}: {release.asset_name}")
            with log.stage("download", f"Download {release.asset_name}"):
                archive = cached_download(
                    release, request.cache_dir, client=guarded, log=log, retry=retry, sleep=sleep
                )

    root = dest / TOP
    prepared: PreparedCopy | None = None
    if cached and runs_here(release.target):
        # Unpacked, fixed and compiled once per asset; copied from the cache after that.
        prepared = copy_prepared(
            archive,
            release.sha256 or sha256_file(archive),
            dest,
            cache_dir=request.cache_dir,
            compiled=compile_stdlib,
            log=log,
            target=release.target,
            substitute=substitute,
        )
        if not prepared.substituted:  # the real prefix, for sdists built here
            fixed = fix_sysconfig(root, prefix=root)
            if fixed:
                log.info(f"wrote the build prefix into {len(fixed)} sysconfig files")
        if not release.version:
            release = _probed(release, root / "bin" / "python3")
    else:
        # `portpy fetch`, or another architecture (its interpreter cannot compile here).
        with (
            log.stage("unpack", "Unpack the runtime and fix its build-time paths"),
            # Checked while staged: `dest/python` appears only once all of this passed.
            staged_runtime(archive, dest) as staged,
        ):
            staged_python = require_interpreter(staged, archive)
            if cached:  # a bundle's runtime, as prepare() makes it
                store_bundled_wheels(staged)
            fixed = fix_sysconfig(staged, prefix=root)
            if fixed:
                log.info(f"fixed build-time paths and compilers in {len(fixed)} sysconfig files")
            if not release.version:
                release = _probed(release, staged_python)
    python = root / "bin" / "python3"
    log.info(f"CPython {release.version} is at {python}")
    return Runtime(
        root=root,
        python=python,
        release=release,
        prepared_key=prepared.key if prepared else None,
        installed=prepared.substituted if prepared else False,
    )


# ----------------------------------------------------------------------------
# python-archive: fully offline


def _archive_release(request: RuntimeRequest, log: Logger, *, probe: bool = True) -> Release:
    archive = request.archive
    assert archive is not None
    actual = sha256_file(archive)
    if request.archive_sha256 is None:
        log.warning(f"python-archive {archive.name} is used without `python-sha256`")
    elif actual != request.archive_sha256:
        raise InputError(
            "python-sha256",
            f"{archive.name} has sha256 {actual}, not {request.archive_sha256}",
            hint="Check that python-archive is the file you meant, and its checksum",
        )
    parsed = AssetName.parse(archive.name)
    release = Release(
        version=parsed.version if parsed else "",
        tag=parsed.tag if parsed else UNKNOWN_TAG,
        target=parsed.target if parsed else request.target,
        flavor=parsed.flavor if parsed else "",
        asset_name=archive.name,
        url=archive.as_uri(),
        sha256=actual,
        freethreaded=parsed.freethreaded if parsed else request.python_version.freethreaded,
    )
    if parsed and not request.python_version.matches(parsed.version):
        log.warning(
            f"python-archive holds CPython {parsed.display_version}, not the "
            f"`{request.python_version}` python-version asks for; using the archive"
        )
    if parsed or not probe:
        return release
    with tempfile.TemporaryDirectory(prefix="portpy-probe-") as scratch:
        root = safe_extract(archive, Path(scratch))
        return _probed(release, root / "bin" / "python3")


_PROBE = (
    "import json, sys, sysconfig;"
    "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3],"
    " 'freethreaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED'))}))"
)


def _probed(release: Release, python: Path) -> Release:
    """Fill in what an archive's name did not say by asking its interpreter."""
    if not runs_here(release.target):  # a cross build: read the files instead
        facts = probe_files(python.parent.parent)
        return replace(release, version=facts.version, freethreaded=facts.freethreaded)
    # -B: the interpreter may be the bundle's own; pycs it wrote would name the build folder.
    done = subprocess.run(
        [str(python), "-I", "-B", "-c", _PROBE],
        env=child_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeFetchError(
            f"the interpreter in {release.asset_name} does not run: {done.stderr.strip()[-500:]}",
            hint="python-archive must be a python-build-standalone install_only archive for this machine",
        )
    try:
        facts = json.loads(done.stdout)
        version, freethreaded = facts["version"], facts["freethreaded"]
    except (ValueError, TypeError, KeyError):
        version, freethreaded = None, None
    if not isinstance(version, str) or not isinstance(freethreaded, bool):
        raise RuntimeFetchError(
            f"the interpreter in {release.asset_name} did not answer what CPython it is "
            f"(it printed {done.stdout.strip()[:200]!r})",
            hint="python-archive must be a python-build-standalone install_only archive; "
            "if it is, name it as pbs does (cpython-X.Y.Z+TAG-TARGET-install_only.tar.gz)",
        )
    return replace(release, version=version, freethreaded=freethreaded)
