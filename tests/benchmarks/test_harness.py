"""The benchmark harness in smoke mode: real servers, real wrk, a few seconds of load each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.run import main as bench_main

pytestmark = pytest.mark.skipif(
    not shutil.which("wrk"), reason="wrk not installed (apt-get install wrk)"
)


def test_smoke_run_measures_service_and_references(model_root: Path, tmp_path: Path) -> None:
    assert bench_main(["--smoke", "--model-dir", str(model_root), "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.iterdir()
    results = json.loads((out / "results.json").read_text())
    points = {(p["server"], p["image"], p["concurrency"]): p for p in results["points"]}

    for key in [("service", "png28", 1), ("service", "png28", 8), ("service", "jpeg1000x750", 8)]:
        assert points[key]["requests"] > 0, key
        assert points[key]["errors"] == 0, key
        assert points[key]["peak_rss_mb"] > 50, "RSS sampling read nothing"
        assert points[key]["cpu_us_per_request"] > 0, "CPU accounting read nothing"
    assert points[("ceiling", "png28", 8)]["requests"] > 0
    assert set(results["cold_start_s"]) == {"service", "ceiling", "naive"}
    assert all(s > 0 for s in results["cold_start_s"].values())
    ratio = results["meta"]["ratios"]["service / ceiling, 28×28 PNG, 8 clients"]
    assert 0 < ratio < 5
    table = (out / "results.md").read_text()
    assert "| service | png28 | 8 |" in table
    assert (out / "plot.png").read_bytes().startswith(b"\x89PNG")
