"""HTTPS for the phone: phone browsers open the microphone only on secure pages.

Either the user's own certificate and key, or a self-signed one made once and
kept in the data directory (the key readable only by its owner), so the phone
accepts the warning once and not on every restart. It is remade when it nears
expiry or does not name the address the server is reached at.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from voice_companion.companion.library import private_dir
from voice_companion.core.errors import ConfigError

VALID_DAYS = 397  # browsers and iOS refuse longer-lived server certificates
RENEW_DAYS = 30


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256, to compare with what the phone shows


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} / key {key}: {exc}") from None
    return context


def fingerprint(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def self_signed(directory: Path, names: list[str]) -> Certificate:
    """The stored self-signed certificate for `names` (hosts or IPs), made if needed."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists() and _still_good(cert, names)):
        _make(cert, key, names)
    return Certificate(cert, key, fingerprint(cert))


def _still_good(cert: Path, names: list[str]) -> bool:
    from cryptography import x509

    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    covered = {str(n) for n in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    left = loaded.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return set(names) <= covered and left > dt.timedelta(days=RENEW_DAYS)


def _make(cert: Path, key: Path, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voice-companion")])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.parent.parent.mkdir(parents=True, exist_ok=True)
    private_dir(cert.parent)  # it holds the private key
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    key.chmod(0o600)
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


def lan_addresses() -> list[str]:
    """This machine's address on the home network, as a phone would reach it."""
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it picks the route
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    return [a for a in found if not a.startswith("127.")]


def names_for(host: str) -> list[str]:
    """What a certificate should name for a server bound to `host`."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if host in ("0.0.0.0", "::", ""):
        names += lan_addresses()
    elif host not in names:
        names.append(host)
    return names
