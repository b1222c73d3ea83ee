"""docs/wire-format.md's decode script really decodes a reading encoded by wire/, signed or not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wire import FLAG_BACKLOG, Reading, encode_reading, reading_key

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


@pytest.mark.parametrize("key", [None, reading_key(bytes(32), "hc-0042")], ids=["unsigned", "signed"])
def test_documented_script_decodes_a_reading(tmp_path: Path, key: bytes | None) -> None:
    script = re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert script, "the doc has a python decode script"
    (tmp_path / "decode.py").write_text(script.group(1))
    samples = (np.sin(np.linspace(0, 6, 250)) * 400).astype(np.int16)
    r = Reading("hc-0042", 3, 1234, 1_700_000_000.5, 250, 2.5, samples, flags=FLAG_BACKLOG)
    (tmp_path / "reading.bin").write_bytes(encode_reading(r, key=key))
    out = subprocess.run([sys.executable, "decode.py", "reading.bin"], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert "hc-0042 boot 3 seq 1234 captured 1700000000.500 250 Hz 250 samples backlog=True" in out
    assert f"peak mV {samples.max() * 2.5 / 1000:.3f}" in out


def test_documented_header_size_matches_codec() -> None:
    r = Reading("abc", 0, 0, 0.0, 250, 1.0, np.zeros(10, dtype=np.int16))
    assert len(encode_reading(r)) == 43 + 3 + 2 * 10 + 0
