"""The README's client snippets, run as a user would paste them, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digit_photos import encode_png
from tests.servers import REPO

SECTION = "## Use it from KServe / Triton / TF Serving clients"


def snippets() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_has_a_snippet_per_client() -> None:
    code = "\n".join(snippets())
    for client in ("tritonclient.http", "InferenceRESTClient", "/v1/models/mnist-image:predict"):
        assert client in code


@pytest.mark.parametrize("index", range(len(snippets())))
def test_a_readme_snippet_reads_the_digit(
    index: int, server_url: str, digits, tmp_path: Path
) -> None:
    images, labels = digits
    seven = images[np.flatnonzero(labels == 7)[0]]
    (tmp_path / "digit.png").write_bytes(encode_png(seven))
    code = snippets()[index].replace("localhost:8000", server_url.removeprefix("http://"))

    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    # "[7]" from tritonclient's arrays, "'digit': [7]" / "'digit': 7" from the dicts printed.
    assert re.search(r"^\[7\]|'digit': \[?7\b", completed.stdout, re.MULTILINE), completed.stdout
