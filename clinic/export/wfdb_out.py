"""WFDB (PhysioNet's format, through the `wfdb` package): a record of one signal, and its notes.

--out PATH is the record path without an extension (a trailing .hea or .dat is taken off):
PATH.hea (the header), PATH.dat (the samples) and, when there is anything to note,
PATH.ann (annotations; one left by an earlier export to the same path is removed when
there is nothing to note). The record name (PATH's last part) must be WFDB's: letters, digits,
`_` and `-`.

- header: one signal "ECG", fs, units "mV", fmt 16, adc_gain = counts per mV (1000 / gain in
  uV), baseline 0, adc_res 16, base_date/base_time = the first sample's UTC time (to the
  millisecond; the exact Unix time is in a comment), init_value and checksum of the samples;
  comments name the device, the gaps and the overlap rule;
- samples: little-endian int16 counts on the timeline's grid (segments.py), streamed in blocks;
  every slot of a gap holds -32768, WFDB's invalid sample for fmt 16, so `wfdb.rdrecord` gives
  NaN there. A data sample of -32768 is written as -32767 (one count);
- annotations (`wfdb.rdann(PATH, "ann")`): at the first slot of each gap, symbol '"' (a comment)
  with aux note "gap 12.000 s (3000 samples)"; at the first slot of each lead-off span, '~'
  (signal quality change) with "lead-off 1.000 s"; at a reading the overlap rule cut, '"' with
  "overlap: 125 samples of boot 2 seq 7 dropped".
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np

from clinic.errors import BadRequestError
from clinic.export.outpath import blocks, out_file
from clinic.export.segments import Timeline, grid_block, overlap_text
from clinic.export.times import utc_datetime, utc_iso

ANN_EXT = "ann"
_NAME = re.compile(r"\A[-\w]+\Z", re.ASCII)


@contextmanager
def quiet() -> Iterator[None]:
    """Around every call into wfdb: it uses pandas in ways pandas now warns are deprecated
    (`inplace=`), noise that is not ours and that warnings-as-errors would make a crash."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@cache
def wfdb_module() -> ModuleType:
    """`wfdb`, imported on first use (the import costs a second and warns, see `quiet`;
    lab/checker/ec57.py does the same)."""
    with quiet():
        return importlib.import_module("wfdb")


def record_path(path: Path | str) -> Path:
    """The record path of --out (module docstring); BadRequestError when WFDB cannot name it."""
    p = Path(path)
    if p.suffix in (".hea", ".dat"):
        p = p.with_suffix("")
    if not _NAME.match(p.name):
        raise BadRequestError(f"--out {path}: a WFDB record name is letters, digits, _ and - only "
                              f"(e.g. {p.parent / 'hc0001'})")
    out_file(p.with_suffix(".hea"), (".hea",))
    return p


def write_wfdb(tl: Timeline, path: Path | str) -> list[Path]:
    """Write the record; returns the files written."""
    rec = record_path(path)
    dat = rec.with_name(rec.name + ".dat")
    init, checksum = _write_dat(tl, dat)
    start = utc_datetime(tl.start)
    wfdb = wfdb_module()
    record = wfdb.Record(
        record_name=rec.name, n_sig=1, fs=tl.fs, sig_len=tl.length, file_name=[dat.name],
        fmt=["16"], adc_gain=[1000.0 / tl.gain_uv], baseline=[0], units=["mV"], sig_name=["ECG"],
        adc_res=[16], adc_zero=[0], init_value=[init], checksum=[checksum], block_size=[0],
        base_date=start.date(), base_time=start.time(), comments=_comments(tl))
    with quiet():
        record.wrheader(write_dir=str(rec.parent))
    files = [rec.with_name(rec.name + ".hea"), dat]
    if _write_annotations(tl, rec):
        files.append(rec.with_name(f"{rec.name}.{ANN_EXT}"))
    return files


def _write_dat(tl: Timeline, dat: Path) -> tuple[int, int]:
    """Stream the grid into `dat`; (the first sample, the checksum as wfdb computes it)."""
    total = 0
    first = 0
    at = 0
    with dat.open("wb") as f:
        for start, stop in blocks(tl.length):
            block, at = grid_block(tl, start, stop, at)
            if start == 0:
                first = int(block[0])
            total += int(block.sum(dtype=np.int64))
            f.write(block.astype("<i2").tobytes())
    return first, total % 65536


def _comments(tl: Timeline) -> list[str]:
    return [f"ecgpipe export of device {tl.device_id}",
            f"first sample at {utc_iso(tl.start)} (Unix {tl.start:.6f})",
            (f"{len(tl.placed)} readings, {tl.samples} samples, {len(tl.gaps)} gaps (samples -32768:"
             f" NaN in rdrecord; annotations in .{ANN_EXT})"),
            f"{len(tl.overlaps)} overlapping readings cut (the first placed wins)",
            f"{len(tl.lead_off)} lead-off spans"]


def _write_annotations(tl: Timeline, rec: Path) -> bool:
    notes = [(g.index, '"', f"gap {tl.seconds(g.samples):.3f} s ({g.samples} samples)") for g in tl.gaps]
    notes += [(s.index, "~", f"lead-off {tl.seconds(s.samples):.3f} s") for s in tl.lead_off]
    notes += [(p.index, '"', overlap_text(p)) for p in tl.placed if p.skip]
    if not notes:  # wfdb cannot write an empty annotation file; an old one would be stale
        rec.with_name(f"{rec.name}.{ANN_EXT}").unlink(missing_ok=True)
        return False
    notes.sort(key=lambda n: n[0])
    with quiet():
        wfdb_module().wrann(rec.name, ANN_EXT, sample=np.array([n[0] for n in notes], dtype=np.int64),
                            symbol=[n[1] for n in notes], aux_note=[n[2] for n in notes],
                            write_dir=str(rec.parent), fs=tl.fs)
    return True
