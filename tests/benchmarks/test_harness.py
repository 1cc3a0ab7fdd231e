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

# Every point whose server and request kind must answer 200 to every request: each of the
# service's protocols, and the KServe peer on the same digit.
SERVED = [
    ("service", "png28", 1),
    ("service", "png28", 8),
    ("service", "jpeg1000x750", 8),
    ("service", "oip-image", 8),
    ("service", "oip-fp32", 8),
    ("service", "v1-b64", 8),
    ("kserve", "v1-b64", 8),
]
NEW_RATIOS = [
    "OIP mnist-image (binary BYTES) / predict, 28×28 PNG, 8 clients",
    "OIP mnist FP32 (binary) / predict, 28×28 PNG, 8 clients",
    "service /predict / KServe ModelServer (v1 b64), same PNG, 8 clients",
    "service v1-b64 / KServe v1-b64, 8 clients",
]


def test_smoke_run_measures_service_and_references(model_root: Path, tmp_path: Path) -> None:
    assert bench_main(["--smoke", "--model-dir", str(model_root), "--out", str(tmp_path)]) == 0
    (out,) = tmp_path.iterdir()
    results = json.loads((out / "results.json").read_text())
    points = {(p["server"], p["image"], p["concurrency"]): p for p in results["points"]}

    for key in SERVED:
        assert points[key]["requests"] > 0, key
        assert points[key]["errors"] == 0, key
        assert points[key]["peak_rss_mb"] > 50, f"{key}: RSS sampling read nothing"
        assert points[key]["cpu_us_per_request"] > 0, f"{key}: CPU accounting read nothing"
    assert points[("ceiling", "png28", 8)]["requests"] > 0
    assert set(results["cold_start_s"]) == {"service", "ceiling", "naive", "kserve"}
    assert all(s > 0 for s in results["cold_start_s"].values())
    ratios = results["meta"]["ratios"]
    assert 0 < ratios["service / ceiling, 28×28 PNG, 8 clients"] < 5
    for label in NEW_RATIOS:
        assert (ratios.get(label) or 0) > 0, f"{label}: {ratios.get(label)}"
    assert results["meta"]["requests"]["oip-image"]["headers"]["Inference-Header-Content-Length"]
    table = (out / "results.md").read_text()
    assert "| service | png28 | 8 |" in table
    assert "| kserve | v1-b64 | 8 |" in table
    assert (out / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_servers_option_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--smoke", "--servers", "service,triton"])
    assert exit_info.value.code == 2
    assert "triton" in capsys.readouterr().err


@pytest.mark.parametrize(("rps", "cpu_us"), [(180.0, 5_000.0), (1_226.0, 700.0), (2_700.0, 450.0)])
def test_capacity_plans_enough_replicas_and_cores_and_no_more(rps: float, cpu_us: float) -> None:
    from benchmarks.images import CAPACITY_TARGETS, TARGET_UTILISATION, capacity

    rows = capacity(rps, cpu_us)
    assert [target for target, _, _ in rows] == list(CAPACITY_TARGETS)
    for target, replicas, cores in rows:
        assert replicas >= 2, "one replica is no replica set: a rollout or a crash drops traffic"
        assert replicas * rps * TARGET_UTILISATION >= target
        assert replicas == 2 or (replicas - 1) * rps * TARGET_UTILISATION < target
        # Cores at the target utilisation serve the target exactly.
        assert cores * TARGET_UTILISATION * 1e6 / cpu_us == pytest.approx(target)
