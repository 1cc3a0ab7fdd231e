"""/metrics with two uvicorn workers: every request counted once, whichever worker answers."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict

from digit_photos import encode_png
from tests.servers import STARTUP_TIMEOUT_S, uvicorn_process, wait_until_ready

REQUESTS = 60
PREDICT_200 = 'http_requests_total{method="POST",route="/predict",status="200"}'


def predict_count(exposition: str) -> float:
    match = re.search(re.escape(PREDICT_200) + r" (\S+)", exposition)
    return float(match.group(1)) if match else 0.0


def per_worker_predict_counts(directory: Path) -> dict[str, float]:
    """What each worker wrote to its own file: proof that both served, read as they wrote it."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if '"/predict"' in key and '"POST"' in key and '"200"' in key and "_total" in key:
                total += value
        counts[path.stem] = total
    return counts


def test_two_workers_count_every_request_once(
    model_root: Path, mnist_sample, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    png = encode_png(mnist_sample.x_test[0])
    settings = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "ACCESS_LOG": "false"}
    log = tmp_path / "server.log"
    with uvicorn_process(model_root, log, settings, ["--workers", "2"]) as server:
        wait_until_ready(server)
        url = server.url
        # Ready answers as soon as one worker is; the other may still be loading its model, and
        # would then serve nothing. Each worker logs "model ready" once.
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while log.read_text().count('"model ready"') < 2:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)

        def post(_: int) -> int:
            # A new connection each time, so the kernel hands them to both workers.
            return httpx.post(
                f"{url}/predict", files={"file": ("d.png", png)}, timeout=60
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, range(REQUESTS)))
        assert statuses == [200] * REQUESTS
        readings = [predict_count(httpx.get(f"{url}/metrics", timeout=30).text) for _ in range(6)]

    per_worker = per_worker_predict_counts(metrics_dir)
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker  # both served
    assert sum(per_worker.values()) == REQUESTS
    assert readings == [REQUESTS] * 6  # each /metrics, from either worker, counts them all
