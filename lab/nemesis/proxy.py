"""A TCP proxy that can break its link on command: the lab's network nemesis (a process).

    python -m lab.nemesis.proxy --state-dir DIR --name ingest|devices|route-A-B --listen-port P
                        (--upstream HOST:PORT [--upstream HOST:PORT ...]
                         | --upstream-host H --upstream-port U)
                        [--listen-host H] [--speed K] [--seed N]

Several upstreams (a broker cluster's nodes) take the new connections in turn, round-robin; one
that refuses or does not answer within a second is skipped for the next. The forwarding itself
is lab.nemesis.proxynet (one `selectors` loop, no thread per connection). This
module is the process around it: it polls its control file `DIR/proxy/<name>.json` (written
atomically by `ecgpipe cut|heal|slow|flap`, see lab.nemesis.proxyctl) about every 50 ms and applies
the fault in it (lab.nemesis.faults); it keeps the fault's timer and history (lab.nemesis.tracker:
`DIR/history/nemesis.jsonl`); and it writes its state and counters to
`DIR/proxy/<name>.state.json` after every change and about twice a second.

All fault durations and rates are simulated; the injected clock (`--speed`) turns them into
real time, and fault timestamps come from it. time.monotonic only schedules the loop.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ecgcore.clock import Clock, make_clock
from ecgcore.files import JsonLines, read_json, write_json_atomic
from ecgcore.modes import LINKS
from ecgcore.strict_warnings import apply_from_env
from lab.errors import LabError
from lab.nemesis.faults import LinkFault
from lab.nemesis.proxyflow import parse_hostport
from lab.nemesis.proxynet import Forwarder
from lab.nemesis.tracker import FaultLog, FaultTracker
from lab.stack.nats_routes import ROUTE_LINKS
from lab.stack.statedir import nemesis_history_path, proxy_control_path, proxy_state_path

POLL_S = 0.01  # control file poll, real seconds (a fault's edge is this sharp: 200 s at 20,000x)
STATE_EVERY_S = 0.5


class Proxy:
    def __init__(self, state_dir: Path, name: str, listen: tuple[str, int],
                 upstreams: list[tuple[str, int]], clock: Clock, history: FaultLog,
                 rng: random.Random | None = None) -> None:
        self.name, self.clock = name, clock
        self.net = Forwarder(listen, upstreams, clock, rng, log=self.log)
        self.tracker = FaultTracker(name, clock, history)
        self.running = True
        self.control_file = proxy_control_path(state_dir, name)
        self.state_file = proxy_state_path(state_dir, name)
        self.control_seq = 0
        self.control_error: str | None = None
        self.last_apply: dict[str, Any] | None = None
        self._control_stamp: tuple[int, int, int] | None = None

    def log(self, msg: str) -> None:
        print(f"proxy {self.name}: {msg}", flush=True)

    def _poll_control(self) -> None:
        try:
            st = self.control_file.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._control_stamp:
            return
        self._control_stamp = stamp
        doc = read_json(self.control_file)
        seq = doc.get("seq") if isinstance(doc, dict) else None
        if not isinstance(seq, int) or seq <= self.control_seq:
            return
        self.control_seq = seq
        try:
            fault = LinkFault.from_json(doc)
        except LabError as exc:
            self.control_error = f"seq {seq}: {exc}"
            self.log(f"ignored control seq {seq}: {exc}")
            self.write_state()
            return
        self.control_error = None
        ended = self.tracker.fault
        effect = self.tracker.apply(fault)
        did = self.net.transition(effect)
        self.last_apply = {"seq": seq, "fault": fault.kind, **did,
                           "ended": None if ended is None else ended.kind}
        self.log(f"seq {seq}: {fault.describe()}; reset {did['reset']} connection(s)")
        self.write_state()

    def _tick_fault(self) -> None:
        before = self.tracker.fault
        effect = self.tracker.tick()
        if effect != self.net.effect:
            self.net.transition(effect)
        if before is not None and self.tracker.fault is None:
            self.log(f"{before.describe()} ended")
            self.write_state()

    # ---------------------------------------------------------------- state and loop
    def snapshot(self) -> dict[str, Any]:
        net, c = self.net, self.net.counters
        return {
            "pid": os.getpid(), "name": self.name, "running": self.running,
            "listen": {"host": net.listen_addr[0], "port": net.listen_addr[1]},
            "upstream": {"host": net.upstreams[0].host, "port": net.upstreams[0].port},  # the first
            "upstreams": [u.to_json() for u in net.upstreams],
            "updated_at": round(self.clock.now(), 3), "control_seq": self.control_seq,
            "control_error": self.control_error, "last_apply": self.last_apply,
            "mode": net.effect.mode,
            "connections": {"open": len(net.conns), "accepted": c["accepted"], "refused": c["refused"],
                            "reset": c["reset"], "upstream_failed": c["upstream_failed"]},
            "bytes": {"forwarded": dict(c["forwarded"]), "dropped": dict(c["dropped"])},
            **self.tracker.snapshot(),
        }

    def write_state(self) -> None:
        write_json_atomic(self.state_file, self.snapshot())
        self.net.dirty = False

    def adopt_previous_state(self) -> None:
        """A restarted proxy starts clean: commands already applied by its predecessor are not
        applied again, and a fault its predecessor left open (kill -9) is closed in the history."""
        prev = read_json(self.state_file) or {}
        self.control_seq = int(prev.get("control_seq") or 0)
        left = prev.get("fault")
        if isinstance(left, dict) and prev.get("running", True):
            self.tracker.history.append({"t": round(self.clock.now(), 3), "event": "fault_end",
                                         "fault": left.get("fault"), "target": self.name,
                                         "seq": left.get("seq"), "reason": "proxy restarted",
                                         "duration_s": None})

    def _timeout(self, next_poll: float, next_state: float) -> float:
        now = time.monotonic()
        until = min(next_poll, next_state)
        timer = self.net.next_timer()
        if timer is not None:
            until = min(until, timer)
        change = self.tracker.seconds_to_change()
        if change is not None:
            until = min(until, now + self.clock.to_wall(change))
        return max(0.0, until - now)

    def run(self) -> int:
        self.write_state()
        next_poll = next_state = time.monotonic()
        while self.running:
            self.net.step(self._timeout(next_poll, next_state))
            self._tick_fault()
            now = time.monotonic()
            if now >= next_poll:
                self._poll_control()
                next_poll = now + POLL_S
            if now >= next_state:
                if self.net.dirty:
                    self.write_state()
                next_state = now + STATE_EVERY_S
        self.tracker.stop("stopped")
        self.net.close()
        self.write_state()
        return 0


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _hostport(text: str) -> tuple[str, int]:
    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    apply_from_env()
    p = argparse.ArgumentParser(prog="python -m lab.nemesis.proxy", description=__doc__.splitlines()[0])
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument("--name", required=True, choices=(*LINKS, *ROUTE_LINKS))
    p.add_argument("--listen-host", default="127.0.0.1")
    p.add_argument("--listen-port", type=int, required=True)
    p.add_argument("--upstream", action="append", type=_hostport, default=[], metavar="HOST:PORT",
                   help="an upstream; repeat it for several (new connections go round-robin)")
    p.add_argument("--upstream-host", help="the one upstream's host (default 127.0.0.1)")
    p.add_argument("--upstream-port", type=int, help="the one upstream's port")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    args = p.parse_args(argv)
    if not args.speed > 0:
        p.error(f"--speed must be positive, got {args.speed}")
    upstreams: list[tuple[str, int]] = args.upstream
    if upstreams and (args.upstream_host or args.upstream_port is not None):
        p.error("give --upstream HOST:PORT for each upstream, or --upstream-host/--upstream-port "
                "for one, not both")
    if not upstreams:
        if args.upstream_port is None:
            p.error("give --upstream HOST:PORT (repeatable) or --upstream-port")
        upstreams = [(args.upstream_host or "127.0.0.1", args.upstream_port)]
    raise_fd_limit()
    history = JsonLines(nemesis_history_path(args.state_dir))
    try:
        proxy = Proxy(args.state_dir, args.name, (args.listen_host, args.listen_port), upstreams,
                      make_clock(args.speed), history, random.Random(args.seed))
    except OSError as exc:
        print(f"proxy {args.name}: cannot listen on {args.listen_host}:{args.listen_port}: {exc}",
              file=sys.stderr, flush=True)
        history.close()
        return 1

    def stop(_signum: int, _frame: object) -> None:
        proxy.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    proxy.adopt_previous_state()
    print(f"proxy {args.name}: {args.listen_host}:{proxy.net.listen_addr[1]} -> "
          f"{', '.join(u.where for u in proxy.net.upstreams)}", flush=True)
    try:
        return proxy.run()
    finally:
        history.close()


if __name__ == "__main__":
    sys.exit(main())
