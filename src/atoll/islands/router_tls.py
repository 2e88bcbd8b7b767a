"""A self-signed certificate for the router (``atoll isle router setup --self-signed``).

For testing and for a private network: the pair lives in ``$ATOLL_HOME/tls/``
(``router.crt``, and ``router.key`` with mode 0600; the key is never printed),
and clients trust the certificate itself (``curl --cacert``, ``httpx.Client(verify=...)``).
The certificate names ``localhost``, ``127.0.0.1``, ``::1`` and ``router.host``;
an existing pair that still covers them for 30 days is reused, so a client's
copy of the certificate stays valid across setups.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from atoll.errors import BackendError

VALID_DAYS = 365
RENEW_DAYS = 30


def tls_dir(home: Path) -> Path:
    return home / "tls"


def _names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate must cover."""
    dns, ips = ["localhost"], ["127.0.0.1", "::1"]
    if host and host not in ("0.0.0.0", "::"):
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.append(host)
    return sorted(set(dns)), sorted(set(ips))


def _covers(cert_path: Path, host: str) -> bool:
    """True when the certificate in ``cert_path`` names ``host`` and stays valid for RENEW_DAYS."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    dns, ips = _names(host)
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=RENEW_DAYS)
    return set(dns) <= have_dns and set(ips) <= have_ips and cert.not_valid_after_utc > soon


def self_signed_pair(home: Path, host: str) -> tuple[Path, Path, bool]:
    """The router's self-signed (certificate, key) under ``home``, made when missing or stale.

    Returns:
        the two paths and True when a new pair was made.

    Raises:
        BackendError: the files cannot be written.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = tls_dir(home)
    cert_path, key_path = directory / "router.crt", directory / "router.key"
    if key_path.is_file() and _covers(cert_path, host):
        return cert_path, key_path, False
    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _names(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"atoll router {host}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise BackendError(f"cannot write the router's certificate in {directory}: {exc.strerror}") from exc
    return cert_path, key_path, True


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, the file created with ``mode`` (never readable by others for a moment)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["self_signed_pair", "tls_dir"]
