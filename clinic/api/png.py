"""One stored reading on ECG paper, as PNG bytes: the same picture `ecgpipe inspect reading
DEVICE SEQ --png FILE` draws (lab.report.reading.inspect_reading: the strip, the detected beats,
HR/PR/QRS/QT and where the reading is). Only readings the store holds under that boot and seq
are drawn (the API serves what was received); any other is NoDataError (404).

matplotlib's pyplot is not thread-safe and the server answers from a thread pool: one drawing
at a time (`_DRAWING`).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from clinic.errors import NoDataError
from ingest import store_view
from lab.report.reading import NoSamplesError, inspect_reading
from lab.stack.statedir import StateDir

_DRAWING = threading.Lock()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def reading_png(sd: StateDir, device_id: str, boot_epoch: int, seq: int, now: float) -> bytes:
    if store_view.reading_samples(sd.ingest_db, device_id, boot_epoch, seq) is None:
        raise NoDataError(f"{device_id} holds no stored reading boot {boot_epoch} seq {seq}")
    with tempfile.TemporaryDirectory(prefix="ecgpipe-png-") as tmp:
        path = Path(tmp) / "reading.png"
        try:
            with _DRAWING:
                inspect_reading(sd, device_id, seq, now=now, png=path)
        except NoSamplesError as exc:
            raise NoDataError(str(exc)) from exc
        return path.read_bytes()
