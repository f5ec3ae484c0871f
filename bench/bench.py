"""Benchmark: the seed article's manual steps (A) against `portpy build` (B).

Both run on the same loopback fake GitHub and the pbs-shaped fixture runtime
the tests use, with the seed's FastAPI app; packages come from PyPI only (the
machine's pip configuration is switched off for both). One run measures:

- the seed scenario: after one warm-up each (caches warm), A and B alternate
  `--runs` times; medians, the per-pair ratio B/A, archive sizes, B's stages;
- a rebuild after changing only a file of the project (same work folder,
  cache folder and output folder as the last B run), against A's wall time;
- B in every other format (tar.zst, tar.xz, zip): size, pack time, peak RSS;
- B with `strip-binaries` on, as tar.gz and tar.zst: size, pack time, peak RSS;
- the bundled app's first vs second start (median of three fresh unpacks);
- the 30-package set (bench/big-requirements.txt): the median of three builds
  after one warm-up, against the seed's B wall time (`--no-big` leaves it out);
- the cold-cache case: A and B once each with empty uv, pip and portpy caches
  (`--no-cold` leaves it out);
- an aarch64 cross build (Debian's arm64 CPython 3.11 shaped like pbs, smoke
  test under qemu-aarch64-static) against the native x86_64 build of the same
  minor line (`--no-cross` leaves it out, `--cross-only` measures just that).

The tables go to the terminal, everything to bench/results/<time>-<host>.json;
`--markdown <json>` prints a results file as the README's Performance tables.

    .venv/bin/python bench/bench.py [--runs 5] [--no-big] [--no-cold] [--no-cross | --cross-only]
    .venv/bin/python bench/bench.py --markdown bench/results/<file>.json [--update-readme]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = ROOT / "examples" / "fastapi"
BIG_REQUIREMENTS = ROOT / "bench" / "big-requirements.txt"
COMMAND = "-m uvicorn app.main:app --host 127.0.0.1"
OTHER_FORMATS = ("tar.zst", "tar.xz", "zip")
# Built again with symbol tables and debug info stripped from python/'s ELF files.
STRIPPED_FORMATS = ("tar.gz", "tar.zst")
STRIP = ("--strip-binaries", "true")
RSS_LIMIT_MB = 300.0
# The targets: name -> (limit, comparison). Ratios are "<=", RSS is "<".
TARGETS: dict[str, tuple[float, str]] = {
    "wall_b_over_a": (0.35, "<="),
    "size_gz_b_over_a": (1.0, "<="),
    "size_zst_b_over_a_gz": (0.7, "<="),
    "size_zst_stripped_b_over_a_gz": (0.7, "<="),  # the same target, strip-binaries on
    "pack_zst_over_gz": (3.0, "<="),
    "rebuild_over_a": (0.15, "<="),
    "big_over_seed": (4.5, "<="),
    "peak_rss_mb": (RSS_LIMIT_MB, "<"),
}
STARTS = 3  # fresh unpacks of B's archive, each started twice
PACK_RUNS = 3  # fresh packs of B's bundle per format, for the pack-time ratio
BIG_RUNS = 3  # measured builds of the 30-package set after its warm-up; the median counts
# The order stages run in; stages a build reports beyond these follow, sorted.
STAGE_ORDER = (
    "resolve",
    "download",
    "unpack",
    "install",
    "repair",
    "relocate",
    "compile",
    "strip",
    "project",
    "launcher",
    "scan",
    "sbom",
    "manifest",
    "pack",
    "smoke",
    "cleanup",
)
MIB = 1024 * 1024
TIMES = "\u00d7"  # the multiplication sign that ratios end with


def plain_environment(source: Mapping[str, str]) -> dict[str, str]:
    """The environment A, B and the bundled app run with, as from a plain shell.

    None of the bench's own PYTHON* settings (PYTHONDONTWRITEBYTECODE would keep the
    seed's pip from writing byte code and hide a missing pyc from the first-start
    measurement). Both installers see PyPI only: the machine's pip configuration
    (a local extra index, find-links, which uv would inherit) is switched off.
    """
    dropped = ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_CONSTRAINT")
    env = {
        k: v for k, v in source.items() if not k.startswith(("PYTHON", "UV_")) and k not in dropped
    }
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


CLEAN_ENV = plain_environment(os.environ)

# Run portpy in-process under a tiny wrapper so the peak RSS measured is the
# tool's own, not that of uv or the bundled interpreter it starts.
RSS_WRAPPER = (
    "import resource, sys\n"
    "from portpy_action.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(f'peak-rss-kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')\n"
    "sys.exit(code)\n"
)


@dataclass(frozen=True)
class Runtime:
    """Where the fixture runtime is served, and which one."""

    mirror: str
    tag: str
    version: str
    url: str
    tarball: str


def cold_caches(folder: Path) -> dict[str, str]:
    """Environment that points uv, pip and the user cache folder at empty folders."""
    return {
        "UV_CACHE_DIR": str(folder / "uv"),
        "PIP_CACHE_DIR": str(folder / "pip"),
        "XDG_CACHE_HOME": str(folder / "xdg"),
    }


def manual_steps(
    work: Path, runtime: Runtime, env: Mapping[str, str] | None = None
) -> tuple[float, Path]:
    """A: the seed article's shell steps, verbatim in spirit."""
    script = f"""
set -euo pipefail
cd "{work}"
mkdir -p downloads python-portable
curl -fsSL -o "downloads/{runtime.tarball}" "{runtime.url}"
tar -xzf "downloads/{runtime.tarball}" -C python-portable
cp -r "{APP}" demo-fastapi
cd demo-fastapi
../python-portable/python/bin/python3 -m pip install -q -r requirements.txt
cd ..
tar -czf portable-python-fastapi-demo.tar.gz python-portable demo-fastapi
"""
    start = time.perf_counter()
    # pip's warnings (root user, index settings) are noise here; shown only on failure.
    done = subprocess.run(
        ["bash", "-c", script], env=CLEAN_ENV | dict(env or {}), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the manual steps failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return wall, work / "portable-python-fastapi-demo.tar.gz"


def portpy_build(
    work: Path,
    runtime: Runtime,
    cache: Path,
    fmt: str = "tar.gz",
    *,
    requirements: Path | None = None,
    target: str | None = None,
    env: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """B: `portpy build` with default options (every check on).

    The app is copied into `work` unless an earlier build left it there (a rebuild).
    """
    project = work / "demo-fastapi"
    if not project.exists():
        shutil.copytree(APP, project)
    args = [
        "build",
        "--python-mirror",
        runtime.mirror,
        "--python-build-tag",
        runtime.tag,
        "--python-version",
        runtime.version,
        "--requirements",
        str(requirements or project / "requirements.txt"),
        "--project-dir",
        str(project),
        "--command",
        COMMAND,
        "--output-dir",
        str(work / "dist"),
        "--cache-dir",
        str(cache),
        "--format",
        fmt,
        *(["--target", target] if target else []),
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *args],
        check=False,
        capture_output=True,
        text=True,
        env=CLEAN_ENV | dict(env or {}),
    )
    if proc.returncode != 0:
        sys.exit(f"portpy build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    wall = time.perf_counter() - start
    results = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    record = json.loads(Path(results["manifest-path"]).read_text())
    return {
        "wall_s": wall,
        "archive": Path(results["archive-path"]),
        "format": fmt,
        "archive_bytes": int(results["archive-size"]),
        "peak_rss_mb": int(results["peak-rss-kb"]) / 1024,
        "stages_s": {k: float(v) for k, v in record.get("timings", {}).items()},
    }


def summary(build: Mapping[str, Any]) -> dict[str, Any]:
    """What of one build goes into the results file."""
    return {k: v for k, v in build.items() if k != "archive"} | {"archive": build["archive"].name}


def edit_project(work: Path) -> None:
    """Change one file of the project only, as a developer's next commit would."""
    main = work / "demo-fastapi" / "app" / "main.py"
    main.write_text(main.read_text() + "\n# edited for the rebuild measurement\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_to_first_200(run: Path, port: int, timeout: float = 60) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(run), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=CLEAN_ENV,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as reply:
                    if reply.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{run} did not answer on port {port} within {timeout}s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fresh_pack_times(archive: Path, scratch: Path) -> dict[str, float]:
    """`pack()` of the bundle in `archive` as tar.gz and as tar.zst, from scratch: medians of 3.

    A build's own `pack` stage reuses python/'s kept gzip members when it can, so
    its time says nothing about compression speed; this packs the same folder
    afresh in each format, alternating, in this process.
    """
    from portpy_action.pack import pack

    target = Path(tempfile.mkdtemp(prefix="packed-", dir=scratch))
    subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
    (bundle,) = target.iterdir()
    times: dict[str, list[float]] = {"tar.gz": [], "tar.zst": []}
    for _ in range(PACK_RUNS):
        for fmt in times:
            start = time.perf_counter()
            pack(bundle, target / f"out.{fmt}", format=fmt)  # type: ignore[arg-type]
            times[fmt].append(time.perf_counter() - start)
    shutil.rmtree(target)
    return {fmt: median(values) for fmt, values in times.items()}


def start_times(archive: Path, scratch: Path) -> tuple[float, float]:
    """First start of a freshly unpacked bundle, then a second start of the same copy."""
    target = Path(tempfile.mkdtemp(prefix="unpacked-", dir=scratch))
    subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
    (bundle,) = target.iterdir()
    first = time_to_first_200(bundle / "run", free_port())
    second = time_to_first_200(bundle / "run", free_port())
    shutil.rmtree(target)
    return first, second


def cross_row(scratch: Path) -> dict[str, Any]:
    """The aarch64 cross build's wall time against the native x86_64 one, same minor line.

    Both come from one fake release holding both runtimes; one warm-up each, then one
    measured build each (every check on: the cross build's smoke test runs under qemu).
    """
    from tests.fixtures.fake_github import PBS_REPO, FakeGitHub
    from tests.fixtures.pbs import cached_releases
    from tests.fixtures.pbs_cross import ARM64_MINOR, ARM64_TRIPLE, cached_cross_releases

    cross = cached_cross_releases(cached_releases())
    fake = FakeGitHub().start()
    try:
        folder = cross.releases.folder(cross.tag)
        fake.add_release(PBS_REPO, cross.tag, {p.name: p for p in folder.iterdir()})
        runtime = Runtime(fake.mirror_base, cross.tag, ARM64_MINOR, "", "")
        cache = scratch / "cross-cache"
        qemu_root = {"QEMU_LD_PREFIX": str(cross.arm64_root)}
        # The x86_64 3.11 fixture (from pyenv) carries a setuptools whose distutils
        # hack fails a bare import; the aarch64 one has none. Same list for both.
        skip = ("--smoke-skip-imports", "setuptools,_distutils_hack")
        walls: dict[str, float] = {}
        stages: dict[str, Any] = {}
        for measured in (False, True):
            for label, target in (("native", None), ("cross", ARM64_TRIPLE)):
                work = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=scratch))
                built = portpy_build(work, runtime, cache, target=target, env=qemu_root, extra=skip)
                if measured:
                    walls[label], stages[label] = built["wall_s"], built["stages_s"]
    finally:
        fake.stop()
    return {
        "python": ARM64_MINOR,
        "native_x86_64_wall_s": walls["native"],
        "cross_aarch64_wall_s": walls["cross"],
        "ratio_cross_over_native": walls["cross"] / walls["native"],
        "stages_s": stages,
    }


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def seed_and_more(opts: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Every row measured on the fixture runtime of `opts.python`, in one run."""
    from tests.fixtures.fake_github import FakeGitHub
    from tests.fixtures.pbs import cached_releases

    releases = cached_releases()
    tag = releases.latest
    stripped = releases.asset(tag, opts.python)
    fake = FakeGitHub().start()
    try:
        fake.publish_pbs(releases)
        runtime = Runtime(
            fake.mirror_base,
            tag,
            releases.versions[opts.python],
            f"{fake.mirror_base}/{tag}/{stripped.name}",
            stripped.name,
        )
        cache = scratch / "cache"

        def fresh(label: str) -> Path:
            return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=scratch))

        def note(text: str) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

        note("warm-up …")
        manual_steps(fresh("a"), runtime)
        portpy_build(fresh("b"), runtime, cache)

        pairs: list[tuple[float, Path, dict[str, Any], Path]] = []
        for i in range(opts.runs):
            a_wall, a_archive = manual_steps(fresh("a"), runtime)
            b_work = fresh("b")
            b = portpy_build(b_work, runtime, cache)
            pairs.append((a_wall, a_archive, b, b_work))
            note(f"run {i + 1}: A {a_wall:.2f}s  B {b['wall_s']:.2f}s")
        a_walls = [a for a, _, _, _ in pairs]
        b_runs = [b for _, _, b, _ in pairs]

        note("rebuild after a project-only change …")
        last_work = pairs[-1][3]
        edit_project(last_work)
        rebuild = portpy_build(last_work, runtime, cache)

        formats: dict[str, dict[str, Any]] = {}
        for fmt in OTHER_FORMATS:
            note(f"{fmt} …")
            formats[fmt] = portpy_build(fresh(fmt.replace(".", "-")), runtime, cache, fmt)

        # The first misses the environment cache (the flag is in its key) and fills it.
        stripped: dict[str, dict[str, Any]] = {}
        for fmt in STRIPPED_FORMATS:
            note(f"{fmt}, strip-binaries on …")
            label = "strip-" + fmt.replace(".", "-")
            stripped[fmt] = portpy_build(fresh(label), runtime, cache, fmt, extra=STRIP)

        note("app starts …")
        starts = [start_times(b_runs[-1]["archive"], scratch) for _ in range(STARTS)]

        note("pack times, afresh …")
        pack_times = fresh_pack_times(b_runs[-1]["archive"], scratch)
        stripped_pack_times = fresh_pack_times(stripped["tar.gz"]["archive"], scratch)

        big, big_walls = None, []
        if not opts.no_big:
            note("30-package set: warm-up …")
            portpy_build(fresh("big"), runtime, cache, requirements=BIG_REQUIREMENTS)
            bigs = []
            for i in range(BIG_RUNS):
                note(f"30-package set, run {i + 1} …")
                bigs.append(
                    portpy_build(fresh("big"), runtime, cache, requirements=BIG_REQUIREMENTS)
                )
            big = sorted(bigs, key=lambda run: run["wall_s"])[len(bigs) // 2]  # the median run
            big_walls = [run["wall_s"] for run in bigs]

        cold = None
        if not opts.no_cold:
            note("cold caches: A …")
            a_cold_env = cold_caches(fresh("a-cold-caches"))
            a_cold, _ = manual_steps(fresh("a-cold"), runtime, a_cold_env)
            note("cold caches: B …")
            b_caches = fresh("b-cold-caches")
            b_cold = portpy_build(
                fresh("b-cold"), runtime, b_caches / "portpy", env=cold_caches(b_caches)
            )
            cold = {
                "a_wall_s": a_cold,
                "b": summary(b_cold),
                "ratio_b_over_a": b_cold["wall_s"] / a_cold,
            }
    finally:
        fake.stop()

    first = median(f for f, _ in starts)
    second = median(s for _, s in starts)
    a_size = int(median(float(a.stat().st_size) for _, a, _, _ in pairs))
    b_size = int(median(float(r["archive_bytes"]) for r in b_runs))
    b_wall = median(r["wall_s"] for r in b_runs)
    a_wall = median(a_walls)
    stage_names = ordered_stages(r["stages_s"] for r in b_runs)
    zst = formats["tar.zst"]
    return {
        "python": runtime.version,
        "a_manual": {"wall_median_s": a_wall, "walls_s": a_walls, "archive_bytes": a_size},
        "b_portpy": {
            "wall_median_s": b_wall,
            "walls_s": [r["wall_s"] for r in b_runs],
            "archive_bytes": b_size,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in b_runs),
            "stages_median_s": {
                stage: median(r["stages_s"].get(stage, 0.0) for r in b_runs)
                for stage in stage_names
            },
            # Interpreter start-up, imports and whatever no stage times.
            "other_median_s": median(r["wall_s"] - sum(r["stages_s"].values()) for r in b_runs),
            "runs": [summary(r) for r in b_runs],
        },
        "ratio_wall_b_over_a_median": median(b["wall_s"] / a for a, _, b, _ in pairs),
        "ratio_size_gz_b_over_a": b_size / a_size,
        "formats": {fmt: summary(build) for fmt, build in formats.items()},
        "ratio_size_zst_b_over_a_gz": zst["archive_bytes"] / a_size,
        # pack() of B's bundle afresh in each format (fresh_pack_times), not the build stage.
        "pack_s": pack_times,
        "ratio_pack_zst_over_gz": pack_times["tar.zst"] / pack_times["tar.gz"],
        "pack_stripped_s": stripped_pack_times,
        "stripped": {fmt: summary(build) for fmt, build in stripped.items()},
        "ratio_size_gz_stripped_b_over_a": stripped["tar.gz"]["archive_bytes"] / a_size,
        "ratio_size_zst_stripped_b_over_a_gz": stripped["tar.zst"]["archive_bytes"] / a_size,
        "ratio_pack_zst_stripped_over_gz": stripped_pack_times["tar.zst"]
        / stripped_pack_times["tar.gz"],
        "rebuild": summary(rebuild) | {"ratio_over_a": rebuild["wall_s"] / a_wall},
        "app_start_s": {"first": first, "second": second, "ratio": first / second},
        "big": None
        if big is None
        else summary(big)
        | {
            "requirements": BIG_REQUIREMENTS.relative_to(ROOT).as_posix(),
            "walls_s": big_walls,
            "ratio_over_seed_b": big["wall_s"] / b_wall,
        },
        "cold": cold,
    }


def _pack_times(r: Mapping[str, Any], key: str, *builds: Mapping[str, Any]) -> tuple[float, float]:
    """(tar.zst, tar.gz) pack seconds; results from before fresh_pack_times had stage times."""
    pack = r.get(key) or {}
    if "tar.gz" in pack:
        return pack["tar.zst"], pack["tar.gz"]
    if builds:  # the stripped builds' own stages
        zst, gz = builds
        return zst["stages_s"].get("pack", 0.0), gz["stages_s"].get("pack", 0.0)
    return pack["tar.zst"], pack["tar.gz_median"]


def ordered_stages(timings: Iterable[Mapping[str, float]]) -> list[str]:
    """Every stage any of `timings` names: in run order, unknown ones after, sorted."""
    names = {name for one in timings for name in one}
    known = [name for name in STAGE_ORDER if name in names]
    return known + sorted(names - set(known))


def target_results(r: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each of the issue's targets with its limit, the measured figure and whether it is met.

    A figure the run left out (`--no-big`) is null and not met.
    """
    rss = [r["b_portpy"]["peak_rss_mb"], *(f["peak_rss_mb"] for f in r["formats"].values())]
    rss += [f["peak_rss_mb"] for f in (r.get("stripped") or {}).values()]
    if r.get("big"):
        rss.append(r["big"]["peak_rss_mb"])
    measured = {
        "wall_b_over_a": r["ratio_wall_b_over_a_median"],
        "size_gz_b_over_a": r["ratio_size_gz_b_over_a"],
        "size_zst_b_over_a_gz": r["ratio_size_zst_b_over_a_gz"],
        "size_zst_stripped_b_over_a_gz": r.get("ratio_size_zst_stripped_b_over_a_gz"),
        "pack_zst_over_gz": r["ratio_pack_zst_over_gz"],
        "rebuild_over_a": r["rebuild"]["ratio_over_a"],
        "big_over_seed": r["big"]["ratio_over_seed_b"] if r.get("big") else None,
        "peak_rss_mb": max(rss),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (limit, comparison) in TARGETS.items():
        value = measured[name]
        met = value is not None and (value <= limit if comparison == "<=" else value < limit)
        results[name] = {"limit": limit, "comparison": comparison, "measured": value, "met": met}
    return results


# --------------------------------------------------------------------------
# tables: the terminal and the README show the same rows


def verdict(target: Mapping[str, Any]) -> tuple[str, str]:
    sign = "≤" if target["comparison"] == "<=" else "<"
    unit = " MB" if target["limit"] == RSS_LIMIT_MB else TIMES
    met = "not measured" if target["measured"] is None else ("met" if target["met"] else "MISSED")
    limit = f"{target['limit']:g}" if unit != TIMES else f"{target['limit']:.2f}"
    if unit == TIMES and limit.endswith("0"):
        limit = limit[:-1]  # 1.0, 0.7, 0.35
    return f"{sign} {limit}{unit}", met


def figure_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(what, A, B, target, met) for every figure of a results file."""
    a, b, t = r["a_manual"], r["b_portpy"], r["targets"]
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, left: str, right: str, target: str | None = None) -> None:
        limit, met = verdict(t[target]) if target else ("", "")
        rows.append((label, left, right, limit, met))

    add(
        f"seed: wall time, median of {r['runs']}",
        f"{a['wall_median_s']:.2f} s",
        f"{b['wall_median_s']:.2f} s",
    )
    add(
        "seed: B/A wall time, median of the pairs",
        "",
        f"{r['ratio_wall_b_over_a_median']:.2f}{TIMES}",
        "wall_b_over_a",
    )
    add(
        "`tar.gz` size, B over A",
        f"{a['archive_bytes'] / MIB:.1f} MiB",
        f"{b['archive_bytes'] / MIB:.1f} MiB, {r['ratio_size_gz_b_over_a']:.2f}{TIMES}",
        "size_gz_b_over_a",
    )
    zst = r["formats"]["tar.zst"]
    add(
        "`tar.zst` size over A's `tar.gz`",
        "",
        f"{zst['archive_bytes'] / MIB:.1f} MiB, {r['ratio_size_zst_b_over_a_gz']:.2f}{TIMES}",
        "size_zst_b_over_a_gz",
    )
    stripped = r.get("stripped")
    if stripped:  # results files from before strip-binaries have no such rows
        zst_s, gz_s = stripped["tar.zst"], stripped["tar.gz"]
        add(
            "`tar.zst` size over A's `tar.gz`, strip-binaries on",
            "",
            f"{zst_s['archive_bytes'] / MIB:.1f} MiB, "
            f"{r['ratio_size_zst_stripped_b_over_a_gz']:.2f}{TIMES}",
            "size_zst_stripped_b_over_a_gz",
        )
        add(
            "`tar.gz` size over A's, strip-binaries on",
            "",
            f"{gz_s['archive_bytes'] / MIB:.1f} MiB, "
            f"{r['ratio_size_gz_stripped_b_over_a']:.2f}{TIMES}",
        )
        zst_pack, gz_pack = _pack_times(r, "pack_stripped_s", zst_s, gz_s)
        add(
            "`tar.zst` pack time over `tar.gz`'s, strip-binaries on",
            "",
            f"{zst_pack:.2f} / {gz_pack:.2f} s, {r['ratio_pack_zst_stripped_over_gz']:.1f}{TIMES}",
        )
    zst_pack, gz_pack = _pack_times(r, "pack_s")
    add(
        "`tar.zst` pack time over `tar.gz`'s (the bundle packed afresh, median of 3)",
        "",
        f"{zst_pack:.2f} / {gz_pack:.2f} s, {r['ratio_pack_zst_over_gz']:.1f}{TIMES}",
        "pack_zst_over_gz",
    )
    rebuild = r["rebuild"]
    add(
        "rebuild after a project-only change, over A",
        "",
        f"{rebuild['wall_s']:.2f} s, {rebuild['ratio_over_a']:.2f}{TIMES}",
        "rebuild_over_a",
    )
    big = r.get("big")
    if big:
        add(
            "30-package set over the seed (B)",
            "",
            f"{big['wall_s']:.1f} s, {big['ratio_over_seed_b']:.1f}{TIMES}",
            "big_over_seed",
        )
    else:
        add("30-package set over the seed (B)", "", "not measured", "big_over_seed")
    rss = {"`tar.gz`": b["peak_rss_mb"]}
    rss |= {f"`{k}`": v["peak_rss_mb"] for k, v in r["formats"].items()}
    rss |= {f"stripped `{k}`": v["peak_rss_mb"] for k, v in (r.get("stripped") or {}).items()}
    if big:
        rss["30-package set"] = big["peak_rss_mb"]
    add(
        "tool peak RSS: " + " / ".join(rss),
        "",
        " / ".join(f"{v:.0f}" for v in rss.values()) + " MB",
        "peak_rss_mb",
    )
    sizes = " / ".join(f"{v['archive_bytes'] / MIB:.1f}" for v in r["formats"].values())
    add(
        "B's other formats: " + " / ".join(f"`{k}`" for k in r["formats"]),
        "",
        f"{sizes} MiB",
    )
    if big:
        add("30-package set: `tar.gz` size", "", f"{big['archive_bytes'] / MIB:.0f} MiB")
    cold = r.get("cold")
    if cold:
        add(
            "cold caches (uv, pip, portpy): wall time",
            f"{cold['a_wall_s']:.2f} s",
            f"{cold['b']['wall_s']:.2f} s, {cold['ratio_b_over_a']:.2f}{TIMES}",
        )
    start = r["app_start_s"]
    add(
        "app start, first / second",
        "",
        f"{start['first']:.2f} / {start['second']:.2f} s, {start['ratio']:.2f}{TIMES}",
    )
    cross = r.get("cross_aarch64")
    if cross:
        add(
            f"aarch64 cross over x86_64 native ({cross['python']})",
            "",
            f"{cross['cross_aarch64_wall_s']:.1f} / {cross['native_x86_64_wall_s']:.1f} s, "
            f"{cross['ratio_cross_over_native']:.2f}{TIMES}",
        )
    return rows


def stage_columns(r: Mapping[str, Any]) -> dict[str, tuple[Mapping[str, float], float]]:
    """Per build shown in the stage table: its stage timings and its wall time."""
    b = r["b_portpy"]
    columns: dict[str, tuple[Mapping[str, float], float]] = {
        "seed (median)": (b["stages_median_s"], b["wall_median_s"]),
        "rebuild": (r["rebuild"]["stages_s"], r["rebuild"]["wall_s"]),
    }
    if r.get("big"):
        columns["30-package set"] = (r["big"]["stages_s"], r["big"]["wall_s"])
    if r.get("cold"):
        columns["cold caches"] = (r["cold"]["b"]["stages_s"], r["cold"]["b"]["wall_s"])
    for fmt, build in r["formats"].items():
        columns[f"`{fmt}`"] = (build["stages_s"], build["wall_s"])
    for fmt, build in (r.get("stripped") or {}).items():
        columns[f"stripped `{fmt}`"] = (build["stages_s"], build["wall_s"])
    return columns


def stage_rows(r: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of B's stage seconds, one column per build."""
    columns = stage_columns(r)
    names = ordered_stages(stages for stages, _ in columns.values())
    rows = [
        [name, *(f"{stages[name]:.2f}" if name in stages else "" for stages, _ in columns.values())]
        for name in names
    ]
    rows.append(
        ["other", *(f"{wall - sum(stages.values()):.2f}" for stages, wall in columns.values())]
    )
    rows.append(["wall", *(f"{wall:.2f}" for _, wall in columns.values())])
    return ["stage (s)", *columns], rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---", *("--:" for _ in header[1:])]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, align, *rows])


FIGURE_HEADER = ["measured", "A: manual", "B: `portpy build`", "target", "met"]


def print_tables(r: Mapping[str, Any]) -> None:
    figures = [list(row) for row in figure_rows(r)]
    print(text_table(FIGURE_HEADER, figures).replace("`", ""))
    print()
    header, rows = stage_rows(r)
    print(text_table(header, rows).replace("`", ""))


def markdown(r: Mapping[str, Any], json_name: str) -> str:
    """The README's Performance tables for one results file."""
    machine = r["machine"]
    load = r["load_average_1min"]
    intro = (
        f"The run of {r['date'][:10]} on {machine['cpus']} CPUs, {machine['platform']}, "
        f"Python {machine['python']} for the tool, CPython {r['python']} bundled, "
        f"1-minute load {load['before']:.2f} at the start and {load['after']:.2f} at the end "
        f"([JSON](bench/results/{json_name})):"
    )
    figures = [list(row) for row in figure_rows(r)]
    header, rows = stage_rows(r)
    return "\n\n".join(
        [
            intro,
            markdown_table(FIGURE_HEADER, figures),
            "B's stages, in seconds (other: interpreter start-up and what no stage times):",
            markdown_table(header, rows),
        ]
    )


README = ROOT / "README.md"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def with_tables(readme: str, tables: str) -> str:
    """`readme` with the text between its bench markers replaced by `tables`."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no {README_START} … {README_END} block")
    return readme[: start + len(README_START)] + "\n" + tables + "\n" + readme[end:]


def print_cross_row(row: Mapping[str, Any]) -> None:
    native, cross = row["native_x86_64_wall_s"], row["cross_aarch64_wall_s"]
    label = f"aarch64 cross / x86_64 native ({row['python']})"
    print(f"{label:38} {native:>12.2f} s {cross:>14.2f} s  ({row['ratio_cross_over_native']:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured pairs (default 5)")
    parser.add_argument("--python", default="3.12", help="minor line of the fixture runtime")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-big", action="store_true", help="leave out the 30-package set")
    parser.add_argument("--no-cold", action="store_true", help="leave out the cold-cache case")
    parser.add_argument(
        "--markdown", type=Path, metavar="JSON", help="print a results file as README tables"
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="with --markdown: write the tables into README.md's Performance section",
    )
    cross = parser.add_mutually_exclusive_group()
    cross.add_argument("--no-cross", action="store_true", help="leave out the aarch64 row")
    cross.add_argument("--cross-only", action="store_true", help="measure only the aarch64 row")
    opts = parser.parse_args()
    if opts.markdown:
        tables = markdown(json.loads(opts.markdown.read_text()), opts.markdown.name)
        if opts.update_readme:
            README.write_text(with_tables(README.read_text(), tables))
        else:
            print(tables)
        return 0
    if opts.cross_only:
        with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
            row = cross_row(Path(tmp))
        print_cross_row(row)
        print(json.dumps(row, indent=2))
        return 0

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
        measured = seed_and_more(opts, Path(tmp))
    cross_aarch64 = None
    if not opts.no_cross:
        with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
            cross_aarch64 = cross_row(Path(tmp))
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "runs": opts.runs,
        **measured,
        "cross_aarch64": cross_aarch64,
        "bench_wall_s": time.perf_counter() - started,
    }
    results["targets"] = target_results(results)

    print_tables(results)
    opts.results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = opts.results / f"{stamp}-{platform.node() or 'host'}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out} (the bench took {results['bench_wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
