"""TLS for the servers of :mod:`atoll._http`: the server side's :class:`ssl.SSLContext`."""

from __future__ import annotations

import ssl

from atoll.errors import ConfigError


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the PEM certificate ``cert`` (chain first) and its key ``key``.

    TLS 1.2 at least, the standard library's default ciphers; no client certificates.

    Raises:
        ConfigError: a file is missing, unreadable, or the key does not match the certificate
            (one line; the key's content is never in it).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: no such file {exc.filename or cert}") from None
    except PermissionError as exc:
        raise ConfigError(f"TLS: cannot read {exc.filename or key}: permission denied") from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"TLS: {cert} and {key} are not a PEM certificate and its private key ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"TLS: cannot read {cert} / {key}: {exc.strerror or exc}") from None
    return context


__all__ = ["server_context"]
