"""The `ecgpipe` arguments of the security commands: provision and attack (issue 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.cli.parser import OneLineParser, Subparsers


def add_provision(sub: Subparsers, common: OneLineParser) -> None:
    from lab.cli.parser import command, positive

    pv = command(sub, "provision",
                 "make (or add) every device's and service's broker login, device signing secret "
                 "and TLS certificate, and the broker's password file and ACL, under DIR/secrets; "
                 "`up` does this itself when something is missing. Secrets are files (0600), never "
                 "printed",
                 "ecgpipe provision --devices 50\necgpipe provision --devices 5000 --no-tls",
                 (common,))
    pv.add_argument("--devices", type=positive(int, "a device count"), required=True, metavar="N",
                    help="devices PREFIX-0000 .. PREFIX-(N-1); those already provisioned are kept")
    pv.add_argument("--id-prefix", default="hc", metavar="PREFIX", help="the device ids' prefix")
    pv.add_argument("--no-tls", action="store_true",
                    help="no development CA or certificates (logins, ACL and signing keys only)")
    pv.add_argument("--json", action="store_true", help="print what was provisioned as JSON")


def add_attack(sub: Subparsers, common: OneLineParser) -> None:
    from lab.cli.parser import command, positive
    from lab.nemesis.attacker import ATTACKS

    a = command(sub, "attack",
                "play an attacker against the running stack, as a device whose login and "
                "certificate were stolen (not its signing key) or as nobody, and say what the "
                "broker refused; then `ecgpipe inspect ingest` shows what ingest quarantined",
                "ecgpipe attack forge-other --as hc-0000 --victim hc-0001 --count 50\n"
                "ecgpipe attack forged-acks --as anonymous --seconds 10", (common,))
    a.add_argument("kind", choices=ATTACKS,
                   help="forge-other: readings for the victim on its topic; wrong-key: its own "
                        "readings signed with a made-up key; garbage: damaged bytes; forged-acks: "
                        "confirmations to every device; forged-status: a retained 'offline' for "
                        "ingest; replay: the victim's readings again, byte for byte")
    a.add_argument("--as", dest="identity", default="hc-0000", metavar="ID",
                   help="a provisioned device whose credentials the attacker holds, or anonymous")
    a.add_argument("--victim", default="hc-0001", metavar="ID", help="the device attacked")
    a.add_argument("--rate", type=positive(float, "messages per second"), default=20.0, metavar="N",
                   help="messages per real second")
    a.add_argument("--count", type=positive(int, "a message count"), default=None, metavar="N",
                   help="stop after N messages")
    a.add_argument("--seconds", type=positive(float, "seconds"), default=None, metavar="S",
                   help="stop after S real seconds (default: after 100 messages unless --count)")
    a.add_argument("--size", type=positive(int, "a size in bytes"), default=None, metavar="BYTES",
                   help="garbage: random payloads of this many bytes (a large-payload flood)")
    a.add_argument("--json", action="store_true", help="print the summary as JSON")
