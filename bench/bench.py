"""Benchmark: the seed article's manual steps (A) against `portpy build` (B).

Both run on the same loopback fake GitHub and the pbs-shaped fixture runtime
the tests use, with the seed's FastAPI app and its requirements from the
package index. After one warm-up each (caches warm), A and B alternate
`--runs` times; the table gives medians, the per-pair ratio B/A, archive sizes,
the tool's own peak RSS, B's per-stage medians, one tar.zst build, and the
bundled app's first vs second start (median of three fresh unpacks), each
against the issue's targets. One more row: an aarch64 cross build (Debian's arm64
CPython 3.11 shaped like pbs, smoke test under qemu-aarch64-static) against the
native x86_64 build of the same minor line (`--no-cross` leaves it out,
`--cross-only` measures just that). Results also go to
bench/results/<date>-<host>.json.

    .venv/bin/python bench/bench.py [--runs 5] [--no-cross | --cross-only]
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.fake_github import PBS_REPO, FakeGitHub  # noqa: E402
from tests.fixtures.pbs import cached_releases  # noqa: E402
from tests.fixtures.pbs_cross import ARM64_MINOR, ARM64_TRIPLE, cached_cross_releases  # noqa: E402

APP = ROOT / "examples" / "fastapi"
COMMAND = "-m uvicorn app.main:app --host 127.0.0.1"
# The targets, measured in one run: B/A wall time, B's tar.zst size over
# A's tar.gz, the tool's own peak RSS, and the bundled app's first over second start.
TARGETS = {
    "wall_b_over_a": 0.7,
    "size_zst_b_over_a_gz": 0.8,
    "peak_rss_mb": 250.0,
    "start_first_over_second": 1.2,
}
STARTS = 3  # fresh unpacks of B's archive, each started twice
STAGES = (
    "resolve",
    "download",
    "unpack",
    "install",
    "repair",
    "relocate",
    "compile",
    "scan",
    "pack",
    "smoke",
)

# A, B and the bundled app run as from a plain shell: none of the PYTHON* settings
# of the bench's own environment (PYTHONDONTWRITEBYTECODE would keep the seed's pip
# from writing byte code and hide a missing pyc from the first-start measurement).
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

# Run portpy in-process under a tiny wrapper so the peak RSS measured is the
# tool's own, not that of uv or the bundled interpreter it starts.
RSS_WRAPPER = (
    "import resource, sys\n"
    "from portpy_action.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(f'peak-rss-kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}')\n"
    "sys.exit(code)\n"
)


def manual_steps(work: Path, url: str, tarball: str) -> tuple[float, Path]:
    """A: the seed article's shell steps, verbatim in spirit."""
    script = f"""
set -euo pipefail
cd "{work}"
mkdir -p downloads python-portable
curl -fsSL -o "downloads/{tarball}" "{url}"
tar -xzf "downloads/{tarball}" -C python-portable
cp -r "{APP}" demo-fastapi
cd demo-fastapi
../python-portable/python/bin/python3 -m pip install -q -r requirements.txt
cd ..
tar -czf portable-python-fastapi-demo.tar.gz python-portable demo-fastapi
"""
    env = CLEAN_ENV | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    start = time.perf_counter()
    # pip's warnings (root user, index settings) are noise here; shown only on failure.
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"the manual steps failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return wall, work / "portable-python-fastapi-demo.tar.gz"


def portpy_build(
    work: Path,
    mirror: str,
    tag: str,
    version: str,
    cache: Path,
    fmt: str = "tar.gz",
    *,
    target: str | None = None,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """B: `portpy build` with default options (every check on)."""
    shutil.copytree(APP, work / "demo-fastapi")
    args = [
        "build",
        "--python-mirror",
        mirror,
        "--python-build-tag",
        tag,
        "--python-version",
        version,
        "--requirements",
        str(work / "demo-fastapi" / "requirements.txt"),
        "--project-dir",
        str(work / "demo-fastapi"),
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
        env=CLEAN_ENV | (env or {}),
    )
    if proc.returncode != 0:
        sys.exit(f"portpy build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    wall = time.perf_counter() - start
    results = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    record = json.loads(Path(results["manifest-path"]).read_text())
    return {
        "wall": wall,
        "archive": Path(results["archive-path"]),
        "format": fmt,
        "size": int(results["archive-size"]),
        "peak_rss_mb": int(results["peak-rss-kb"]) / 1024,
        "stages": record.get("timings", {}),
    }


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
    cross = cached_cross_releases(cached_releases())
    fake = FakeGitHub().start()
    try:
        folder = cross.releases.folder(cross.tag)
        fake.add_release(PBS_REPO, cross.tag, {p.name: p for p in folder.iterdir()})
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
                built = portpy_build(
                    work,
                    fake.mirror_base,
                    cross.tag,
                    ARM64_MINOR,
                    cache,
                    target=target,
                    env=qemu_root,
                    extra=skip,
                )
                if measured:
                    walls[label], stages[label] = built["wall"], built["stages"]
    finally:
        fake.stop()
    return {
        "python": ARM64_MINOR,
        "native_x86_64_wall_s": walls["native"],
        "cross_aarch64_wall_s": walls["cross"],
        "ratio_cross_over_native": walls["cross"] / walls["native"],
        "stages_s": stages,
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--python", default="3.12", help="minor line of the fixture runtime")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    cross = parser.add_mutually_exclusive_group()
    cross.add_argument("--no-cross", action="store_true", help="leave out the aarch64 row")
    cross.add_argument("--cross-only", action="store_true", help="measure only the aarch64 row")
    opts = parser.parse_args()
    if opts.cross_only:
        with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
            row = cross_row(Path(tmp))
        print_cross_row(row)
        print(json.dumps(row, indent=2))
        return 0

    load_before = os.getloadavg()[0]
    releases = cached_releases()
    tag = releases.latest
    version = releases.versions[opts.python]
    stripped = releases.asset(tag, opts.python)
    fake = FakeGitHub().start()
    try:
        fake.publish_pbs(releases)
        url = f"{fake.mirror_base}/{tag}/{stripped.name}"
        with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
            scratch = Path(tmp)
            cache = scratch / "cache"

            def fresh(label: str) -> Path:
                path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=scratch))
                return path

            print("warm-up …", file=sys.stderr)
            manual_steps(fresh("a"), url, stripped.name)
            portpy_build(fresh("b"), fake.mirror_base, tag, version, cache)

            a_walls: list[float] = []
            b_walls: list[float] = []
            ratios: list[float] = []
            a_sizes: list[int] = []
            b_runs: list[dict[str, Any]] = []
            for i in range(opts.runs):
                a_wall, a_archive = manual_steps(fresh("a"), url, stripped.name)
                b = portpy_build(fresh("b"), fake.mirror_base, tag, version, cache)
                a_walls.append(a_wall)
                b_walls.append(b["wall"])
                ratios.append(b["wall"] / a_wall)
                a_sizes.append(a_archive.stat().st_size)
                b_runs.append(b)
                print(f"run {i + 1}: A {a_wall:.2f}s  B {b['wall']:.2f}s", file=sys.stderr)

            zst = portpy_build(fresh("z"), fake.mirror_base, tag, version, cache, "tar.zst")
            starts = [start_times(b_runs[-1]["archive"], scratch) for _ in range(STARTS)]
    finally:
        fake.stop()
    cross_aarch64 = None
    if not opts.no_cross:
        with tempfile.TemporaryDirectory(prefix="portpy-bench-") as tmp:
            cross_aarch64 = cross_row(Path(tmp))
    load_after = os.getloadavg()[0]
    first = median([f for f, _ in starts])
    second = median([s for _, s in starts])

    a_size = int(median([float(s) for s in a_sizes]))
    b_size = int(median([float(r["size"]) for r in b_runs]))
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average_1min": {"before": load_before, "after": load_after},
        "runs": opts.runs,
        "python": version,
        "a_manual": {
            "wall_median_s": median(a_walls),
            "walls_s": a_walls,
            "archive_bytes": a_size,
        },
        "b_portpy": {
            "wall_median_s": median(b_walls),
            "walls_s": b_walls,
            "archive_bytes": b_size,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in b_runs),
            "stages_median_s": {
                stage: median([float(r["stages"].get(stage, 0.0)) for r in b_runs])
                for stage in STAGES
            },
            # Interpreter start-up, imports, project copy, launcher, manifest.
            "other_median_s": median(
                [r["wall"] - sum(float(v) for v in r["stages"].values()) for r in b_runs]
            ),
            "tar_zst": {
                "wall_s": zst["wall"],
                "archive_bytes": zst["size"],
                "peak_rss_mb": zst["peak_rss_mb"],
                "stages_s": zst["stages"],
            },
        },
        "ratio_wall_b_over_a_median": median(ratios),
        "ratio_size_gz_b_over_a": b_size / a_size,
        "ratio_size_zst_b_over_a_gz": zst["size"] / a_size,
        "app_start_s": {"first": first, "second": second, "ratio": first / second},
        "cross_aarch64": cross_aarch64,
    }
    measured = {
        "wall_b_over_a": results["ratio_wall_b_over_a_median"],
        "size_zst_b_over_a_gz": results["ratio_size_zst_b_over_a_gz"],
        "peak_rss_mb": max(results["b_portpy"]["peak_rss_mb"], zst["peak_rss_mb"]),
        "start_first_over_second": first / second,
    }
    results["targets"] = {
        name: {"limit": limit, "measured": measured[name], "met": measured[name] <= limit}
        for name, limit in TARGETS.items()
    }

    print_table(results)
    opts.results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = opts.results / f"{stamp}-{platform.node() or 'host'}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 0


def print_table(r: dict[str, Any]) -> None:
    a, b = r["a_manual"], r["b_portpy"]
    mb = 1024 * 1024
    rows = [
        ("wall time, median", f"{a['wall_median_s']:.2f} s", f"{b['wall_median_s']:.2f} s"),
        ("B/A wall, median of pairs", "", f"{r['ratio_wall_b_over_a_median']:.2f}x"),
        (
            "archive tar.gz",
            f"{a['archive_bytes'] / mb:.1f} MiB",
            f"{b['archive_bytes'] / mb:.1f} MiB",
        ),
        ("archive tar.zst (B) / A's tar.gz", "", f"{r['ratio_size_zst_b_over_a_gz']:.2f}x"),
        ("tool peak RSS", "", f"{b['peak_rss_mb']:.0f} MB"),
    ]
    rows += [(f"  stage {k}", "", f"{v:.2f} s") for k, v in b["stages_median_s"].items()]
    rows.append(("  other (start-up, project, manifest)", "", f"{b['other_median_s']:.2f} s"))
    zst = b["tar_zst"]
    rows.append(("tar.zst build: wall / archive", "", f"{zst['wall_s']:.2f} s"))
    rows.append(("", "", f"{zst['archive_bytes'] / mb:.1f} MiB"))
    start = r["app_start_s"]
    rows.append(
        ("app start: first / second", "", f"{start['first']:.2f} / {start['second']:.2f} s")
    )
    print(f"{'':38} {'A: manual':>14} {'B: portpy':>16}")
    for label, left, right in rows:
        print(f"{label:38} {left:>14} {right:>16}")
    if r.get("cross_aarch64"):
        print_cross_row(r["cross_aarch64"])
    print("\ntargets:")
    for name, target in r["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        print(f"  {name:28} {target['measured']:8.2f} <= {target['limit']:<6} {verdict}")


def print_cross_row(row: dict[str, Any]) -> None:
    native, cross = row["native_x86_64_wall_s"], row["cross_aarch64_wall_s"]
    label = f"aarch64 cross / x86_64 native ({row['python']})"
    print(f"{label:38} {native:>12.2f} s {cross:>14.2f} s  ({row['ratio_cross_over_native']:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
