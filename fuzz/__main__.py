"""Coverage-guided fuzzing of the network parsers with atheris (libFuzzer).

    .venv/bin/python -m fuzz [TARGET ...] [--runs N] [--corpus DIR] [--max-len BYTES]

Each target (fuzz/targets.py; default: all of them, one after another) runs for N inputs with
the project's wire/ and ingest/ modules instrumented for coverage, starting from the
regression corpus (tests/fuzz_corpus/<target>/) in a scratch copy, so the run's new inputs do
not change the tree. A crash is any exception the target does not document: libFuzzer prints
it with the input, writes the input to crash-<sha1> in the current directory, and the command
exits non-zero. Each target runs in its own process (libFuzzer owns the process it runs in).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

# fuzz.targets' names; not imported here: the child must import wire/ and ingest/ only inside
# atheris' instrumentation (tests/test_fuzz_targets.py checks the two lists agree)
TARGET_NAMES = ("reading", "validate", "ack", "status", "reading_crc", "validate_crc")
CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fuzz_corpus"


def _one(target: str, runs: int, corpus: Path, max_len: int) -> None:
    """Run inside the child process: instrument, then hand over to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["wire", "ingest"]):
        from fuzz.targets import TARGETS
    fn = TARGETS[target]
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-max_len={max_len}", "-print_final_stats=1",
                   str(corpus)], fn)
    atheris.Fuzz()


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)  # one line, no usage block
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    ap = _OneLineParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"of {', '.join(TARGET_NAMES)} (default: all)")
    ap.add_argument("--runs", type=int, default=100_000, help="inputs per target (default 100000)")
    ap.add_argument("--max-len", type=int, default=4096, help="longest input in bytes (default 4096)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _one(args.child, args.runs, args.corpus, args.max_len)
        return 0
    unknown = [t for t in args.targets if t not in TARGET_NAMES]
    if unknown:
        ap.error(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGET_NAMES)}")
    failed = 0
    for target in args.targets or list(TARGET_NAMES):
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as scratch:
            work = Path(scratch) / "corpus"
            seed = CORPUS / target
            shutil.copytree(seed, work) if seed.is_dir() else work.mkdir()
            started = time.monotonic()
            rc = subprocess.call([sys.executable, "-m", "fuzz", "--child", target, "--runs",
                                  str(args.runs), "--max-len", str(args.max_len), "--corpus", str(work)])
            print(f"fuzz {target}: {args.runs} runs, exit {rc}, {time.monotonic() - started:.0f} s",
                  flush=True)
            failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
