"""Benchmark: the seed article's manual steps (A) against `portpy build` (B).

Both run on the same loopback fake GitHub and the pbs-shaped fixture runtime
the tests use, with the seed's FastAPI app and its requirements from the
package index. After one warm-up each (caches warm), A and B alternate
`--runs` times; the table gives medians, the per-pair ratio B/A, archive sizes,
the tool's own peak RSS, B's per-stage medians and the bundled app's first vs
second start. Results also go to bench/results/<date>-<host>.json.

    .venv/bin/python bench/bench.py [--runs 5]
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

from tests.fixtures.fake_github import FakeGitHub  # noqa: E402
from tests.fixtures.pbs import cached_releases  # noqa: E402

APP = ROOT / "examples" / "fastapi"
COMMAND = "-m uvicorn app.main:app --host 127.0.0.1"
STAGES = (
    "resolve",
    "download",
    "unpack",
    "install",
    "relocate",
    "compile",
    "scan",
    "pack",
    "smoke",
)

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
    env = os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True, env=env)
    return time.perf_counter() - start, work / "portable-python-fastapi-demo.tar.gz"


def portpy_build(
    work: Path, mirror: str, tag: str, version: str, cache: Path, fmt: str = "tar.gz"
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
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    results = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    record = json.loads(Path(results["manifest-path"]).read_text())
    return {
        "wall": wall,
        "archive": Path(results["archive-path"]),
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
    target = scratch / "unpacked"
    target.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(target)], check=True)
    (bundle,) = target.iterdir()
    first = time_to_first_200(bundle / "run", free_port())
    second = time_to_first_200(bundle / "run", free_port())
    return first, second


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (default 5)")
    parser.add_argument("--python", default="3.12", help="minor line of the fixture runtime")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    opts = parser.parse_args()

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
            first, second = start_times(b_runs[-1]["archive"], fresh("start"))
    finally:
        fake.stop()

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
        "runs": opts.runs,
        "python": version,
        "a_manual": {"wall_median_s": median(a_walls), "archive_bytes": a_size},
        "b_portpy": {
            "wall_median_s": median(b_walls),
            "archive_bytes": b_size,
            "tar_zst_bytes": zst["size"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in b_runs),
            "stages_median_s": {
                stage: median([float(r["stages"].get(stage, 0.0)) for r in b_runs])
                for stage in STAGES
            },
        },
        "ratio_wall_b_over_a_median": median(ratios),
        "ratio_size_gz_b_over_a": b_size / a_size,
        "ratio_size_zst_b_over_a_gz": zst["size"] / a_size,
        "app_start_s": {"first": first, "second": second, "ratio": first / second},
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
    start = r["app_start_s"]
    rows.append(
        ("app start: first / second", "", f"{start['first']:.2f} s / {start['second']:.2f} s")
    )
    print(f"{'':36} {'A: manual':>14} {'B: portpy':>14}")
    for label, left, right in rows:
        print(f"{label:36} {left:>14} {right:>14}")


if __name__ == "__main__":
    sys.exit(main())
