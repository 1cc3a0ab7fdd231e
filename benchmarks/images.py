"""The lean image against the full one, as containers: size, cold start, RSS and requests/s.

``python -m benchmarks.images`` (``make bench-images``) runs each image on the same model
directory (mounted read-only, hardened as compose runs it), one after the other, several times
interleaved, and drives it with ``wrk`` exactly as ``benchmarks.run`` drives a local process.
Figures are medians over the repeats; the ratios are taken within each repeat.

- image size: what ``docker image inspect`` reports for each tag;
- cold start: ``docker start`` to the first successful /predict, the container runtime's own
  start-up included (the same for both images); the process alone, start to first prediction,
  is ``benchmarks.run``'s figure for ``service-litert`` against ``service``;
- RSS: the serving process's resident set, sampled from the host (psutil) during the load,
  and its high-water mark (VmHWM) at the end;
- requests/s: wrk at 32 clients posting a 28×28 PNG, and at 8 clients a 1000×750 JPEG photo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.run import (
    ROOT,
    RequestKind,
    phone_photo_jpeg,
    post,
    request_kinds,
    run_wrk,
    sample_digit,
)
from service_harness.process import cpu_seconds, free_port, peak_rss_mib, rss_mib

IMAGES = {"full": "mnist-service:latest", "lite": "mnist-service:lite"}
LOADS = (("png28", 32), ("jpeg1000x750", 8))


def docker(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return out.stdout.strip()


def image_mb(tag: str) -> float:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag)) / 1e6


class Container:
    """One API container, started by ``docker start``; the same interface ``run_wrk`` samples."""

    def __init__(self, tag: str, model_root: Path, warmup: RequestKind) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.id = docker(
            *("create", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"),
            *("--security-opt", "no-new-privileges:true"),
            *("-e", "ACCESS_LOG=false", "-e", "LOG_LEVEL=WARNING"),
            *("-v", f"{model_root.resolve()}:/models/mnist:ro"),
            *("-p", f"127.0.0.1:{self.port}:8000", tag),
        )
        started = time.perf_counter()
        docker("start", self.id)
        deadline = started + 120
        while post(self.url, warmup, timeout=2) != 200:
            if time.perf_counter() > deadline:
                logs = docker("logs", self.id)[-2000:]
                self.stop()
                raise RuntimeError(f"{tag} did not start:\n{logs}")
            time.sleep(0.01)
        self.cold_start_s = time.perf_counter() - started
        self.pid = int(docker("inspect", "--format", "{{.State.Pid}}", self.id))

    def rss_mb(self) -> float:
        return rss_mib(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True, check=False)


# Replicas and cores are planned to run at this share of what was measured (the HPA's CPU target
# in deploy/kubernetes): headroom for bursts, a rollout's surge and one replica lost.
TARGET_UTILISATION = 0.7
CAPACITY_TARGETS = (1_000, 10_000, 100_000)


def capacity(rps_per_replica: float, cpu_us_per_request: float) -> list[tuple[int, int, float]]:
    """(requests/s wanted, replicas, cores) for each target.

    Replicas from one replica's saturated throughput; cores from the CPU time a request costs
    the server, both at TARGET_UTILISATION. At least two replicas: one is no replica set.
    """
    rows = []
    for target in CAPACITY_TARGETS:
        replicas = max(2, math.ceil(target / (rps_per_replica * TARGET_UTILISATION)))
        cores = target * cpu_us_per_request / 1e6 / TARGET_UTILISATION
        rows.append((target, replicas, cores))
    return rows


def render_capacity(results: dict) -> str:
    lite = results["lite"]
    lines = [
        "| requests/s | 28×28 PNG: replicas, cores | phone photo 1000×750: replicas, cores |",
        "|---:|---:|---:|",
    ]
    png, jpeg = (capacity(lite[f"rps {kind} {c}"], lite[f"cpu {kind} {c}"]) for kind, c in LOADS)
    for (target, r_png, c_png), (_, r_jpeg, c_jpeg) in zip(png, jpeg, strict=True):
        lines.append(f"| {target:,} | {r_png:,}, {c_png:,.1f} | {r_jpeg:,}, {c_jpeg:,.1f} |")
    return "\n".join(lines) + "\n"


def render(results: dict, meta: dict) -> str:
    lines = [
        f"Run {meta['created']}: {meta['repeats']} interleaved repeats, {meta['duration_s']} s "
        "of wrk per load, medians; each container read-only, one uvicorn worker, on the same "
        f"{os.cpu_count()}-core machine as wrk.",
        "",
        "| | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    rows = [
        ("image size (MB)", "image_mb", "{:.0f}"),
        ("cold start: docker start → first prediction (s)", "cold_start_s", "{:.2f}"),
        ("RSS under load, peak sampled (MB)", "rss_mb", "{:.0f}"),
        ("RSS high-water mark, VmHWM (MB)", "hwm_mb", "{:.0f}"),
    ]
    rows += [
        (f"requests/s, {kind}, {c} clients", f"rps {kind} {c}", "{:,.0f}") for kind, c in LOADS
    ]
    rows += [(f"p99 ms, {kind}, {c} clients", f"p99 {kind} {c}", "{:.1f}") for kind, c in LOADS]
    rows += [
        (f"server CPU µs/request, {kind}, {c} clients", f"cpu {kind} {c}", "{:,.0f}")
        for kind, c in LOADS
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results.values()) + " |"
        )
    lines += ["", "| ratio lite / full (within each repeat, median) | value |", "|---|---:|"]
    lines += [f"| {label} | {value:.2f}× |" for label, value in meta["ratios"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.images", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--full", default=IMAGES["full"], help="the full image's tag")
    parser.add_argument("--lite", default=IMAGES["lite"], help="the lean image's tag")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per point")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if not shutil.which("wrk") or not shutil.which("docker"):
        print(
            "error: needs wrk and docker (apt-get install wrk; containers-setup)", file=sys.stderr
        )
        return 2
    tags = {"full": args.full, "lite": args.lite}
    digit = sample_digit(0)
    kinds = request_kinds(digit, phone_photo_jpeg(digit))
    raw: dict[str, list[dict]] = {name: [] for name in tags}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = {}
        for kind, _ in LOADS:
            bodies[kind] = Path(tmp) / f"{kind}.body"
            bodies[kind].write_bytes(kinds[kind].body)
        for repeat in range(args.repeats):
            for name, tag in tags.items():
                container = Container(tag, args.model_dir, kinds["png28"])
                row: dict[str, float] = {"cold_start_s": container.cold_start_s, "rss_mb": 0.0}
                try:
                    for kind, c in LOADS:
                        r = run_wrk(container, kinds[kind], bodies[kind], c, args.duration)  # type: ignore[arg-type]
                        row[f"rps {kind} {c}"] = r["requests"] / (r["duration_us"] / 1e6)
                        row[f"p99 {kind} {c}"] = r["p99_us"] / 1000
                        row[f"cpu {kind} {c}"] = r["cpu_us_per_request"]
                        row["rss_mb"] = max(row["rss_mb"], r["peak_rss_mb"])
                        errors = r["non_2xx"] + r["connect_errors"] + r["read_errors"]
                        if errors:
                            raise RuntimeError(f"{tag}: {errors} failed requests under {kind}")
                    row["hwm_mb"] = container.peak_rss_mb()
                finally:
                    container.stop()
                raw[name].append(row)
                print(f"[{repeat + 1}/{args.repeats}] {name}: {json.dumps(row)}", flush=True)
    results = {
        name: {
            "tag": tags[name],
            "image_mb": image_mb(tags[name]),
            **{key: statistics.median(r[key] for r in rows) for key in rows[0]},
        }
        for name, rows in raw.items()
    }
    ratios = {
        f"requests/s, {kind}, {c} clients": statistics.median(
            lite[f"rps {kind} {c}"] / full[f"rps {kind} {c}"]
            for lite, full in zip(raw["lite"], raw["full"], strict=True)
        )
        for kind, c in LOADS
    }
    ratios["RSS under load"] = statistics.median(
        lite["rss_mb"] / full["rss_mb"] for lite, full in zip(raw["lite"], raw["full"], strict=True)
    )
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "repeats": args.repeats,
        "ratios": ratios,
    }
    table = render(results, meta) + "\n" + render_capacity(results)
    out = args.out / f"images-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"meta": meta, "images": results}, indent=2))
    print("\n" + table + f"\nwritten to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
