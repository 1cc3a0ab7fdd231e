"""The logging and request-id benchmark in a few calls: its equality checks are the point.

``benchmarks.bench_observability`` refuses to time anything unless every formatter writes the
hand-written line byte for byte and the request-id middleware echoes, replaces and generates
ids as the hand-written steps did; this runs those checks on the service's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_observability import main


def test_the_libraries_write_the_same_lines_and_ids_and_the_figures_are_written(
    tmp_path: Path,
) -> None:
    assert main(["--rounds", "1", "--calls", "20", "--requests", "20", "--out", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "observability.json").read_text())
    assert set(figures["formatting_us"]) >= {
        "hand-written (before), orjson",
        "python-json-logger OrjsonFormatter (the service's JsonFormatter)",
    }
    assert set(figures["request_id_us"]) == {"no X-Request-ID", "X-Request-ID sent"}
    assert "| hand-written (before) |" in (tmp_path / "observability.md").read_text()
