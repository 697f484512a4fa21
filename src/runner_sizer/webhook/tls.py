"""A server TLS context that follows certificate rotation without a restart."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


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

    def _file_stamp(self) -> tuple[int, ...]:
        stamp: list[int] = []
        for path in (self._cert_file, self._key_file):
            info = os.stat(path)
            stamp += [info.st_ino, info.st_mtime_ns, info.st_size]
        return tuple(stamp)

    def _load(self) -> ssl.SSLContext:
        stamp = self._file_stamp()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._cert_file, self._key_file)
        self._stamp = stamp
        return context

    def current(self) -> ssl.SSLContext:
        try:
            if self._file_stamp() != self._stamp:
                self._context = self._load()
                log.info("reloaded serving certificate", extra={"cert_file": str(self._cert_file)})
        except (OSError, ssl.SSLError) as error:
            log.warning("keeping previous serving certificate", extra={"error": str(error)})
        return self._context

    def wrap_socket(self, sock: Any, **kwargs: Any) -> Any:
        return self.current().wrap_socket(sock, **kwargs)
