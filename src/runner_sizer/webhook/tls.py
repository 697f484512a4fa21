"""A server TLS context that follows certificate rotation without a restart."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from runner_sizer.webhook.watched import file_stamp

log = logging.getLogger(__name__)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS >= 1.2 serving `cert_file`; raises OSError/ssl.SSLError for an unusable pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def pair_problem(cert_file: Path, key_file: Path) -> str | None:
    """Why the pair cannot serve (unreadable, swapped, not matching), or None."""
    try:
        cert_text, key_text = (
            cert_file.read_text(errors="replace"),
            key_file.read_text(errors="replace"),
        )
    except OSError as error:
        return f"cannot read {error.filename}: {error.strerror}"
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        swapped = " (swapped with the key?)" if "PRIVATE KEY-----" in cert_text else ""
        return f"{cert_file} holds no PEM certificate{swapped}"
    if "PRIVATE KEY-----" not in key_text:
        return f"{key_file} holds no PEM private key"
    try:
        server_context(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "reason", None) or str(error)
        return f"cannot serve {cert_file} with key {key_file}: {reason}"
    return None


class ReloadingServerContext:
    """Quacks like `ssl.SSLContext.wrap_socket`, re-reading cert/key when they change.

    gunicorn's gevent worker builds one context per worker; cert-manager and
    kubelet secret updates replace the files underneath, so every new
    connection checks the files' identity (a stat each) and reloads if needed.
    A half-written pair keeps the previous context in service.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._cert_file, self._key_file = cert_file, key_file
        self._stamp: tuple[int, ...] = ()
        self._context = self._load()

    def _load(self) -> ssl.SSLContext:
        stamp = file_stamp(self._cert_file, self._key_file)
        context = server_context(self._cert_file, self._key_file)
        self._stamp = stamp
        return context

    def current(self) -> ssl.SSLContext:
        try:
            if file_stamp(self._cert_file, self._key_file) != self._stamp:
                self._context = self._load()
                log.info("reloaded serving certificate", extra={"cert_file": str(self._cert_file)})
        except (OSError, ssl.SSLError) as error:
            log.warning("keeping previous serving certificate", extra={"error": str(error)})
        return self._context

    def wrap_socket(self, sock: Any, **kwargs: Any) -> Any:
        return self.current().wrap_socket(sock, **kwargs)
