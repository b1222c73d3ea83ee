"""A development certificate authority and the certificates it signs (the `cryptography` package).

    ensure_ca(tls_dir) -> Authority     the CA in tls_dir, made (P-256, 10 years) if absent
    Authority.issue(name, cert, key, server=False)   a P-256 key and a certificate for `name`:
                                        a client certificate (CN = name), or, with server=True,
                                        the broker's (CN = name; SAN 127.0.0.1, ::1, localhost,
                                        broker, mosquitto: what the lab and the containers dial)

Keys are written 0600. Certificates are valid from an hour ago (clock skew between processes
is no reason to refuse one) for `DAYS`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.provision.files import write_private, write_public

DAYS = 825  # the longest validity browsers and most TLS stacks accept for a leaf certificate
CA_DAYS = 3650
SERVER_NAMES = ("localhost", "broker", "mosquitto")
SERVER_IPS = ("127.0.0.1", "::1")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecgpipe lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(self, name: str, cert_path: Path, key_path: Path, *, server: bool = False,
              client_too: bool = False) -> None:
        """A certificate for a client, or with `server` for a server (its names and loopback
        addresses); `client_too`: a server that also dials its peers (a NATS node's routes)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
        if server and client_too:
            usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if server:
            alt: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
            alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        write_private(key_path, _pem_key(key))
        write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def ensure_ca(tls_dir: Path, common_name: str = "ecgpipe development CA") -> tuple[Authority, bool]:
    """The CA kept in tls_dir (ca.pem, ca.key), made first if absent. Returns it and whether
    it was made now."""
    cert_path, key_path = tls_dir / "ca.pem", tls_dir / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an elliptic-curve key")
        return Authority(cert, key), False
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _pem_key(key))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key), True
