"""Files mounted from Secrets that change underneath a running process.

kubelet swaps a Secret volume's `..data` symlink on update, so a file's
identity (inode, mtime, size) tells whether it must be read again; a stat per
use is cheap next to the request it serves, unless that request is itself a
few hundred microseconds (the recommender's answers: a stat each was 5 % of its
worker at 1,000/s).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def file_stamp(*paths: Path) -> tuple[int, ...]:
    """The identity of `paths`' current contents; raises OSError if one is missing."""
    stamp: list[int] = []
    for path in paths:
        info = os.stat(path)
        stamp += [info.st_ino, info.st_mtime_ns, info.st_size]
    return tuple(stamp)


class TokenSource:
    """A bearer token given inline, or read from a file and re-read when it changes.

    A file that turns empty or unreadable keeps the previous token in service,
    as a half-written serving certificate does. The token is never in repr.
    """

    def __init__(
        self,
        inline: str = "",
        path: Path | None = None,
        recheck_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`recheck_after`: seconds a file's stamp is trusted before it is taken again
        (0: at every use), for a token checked on every request."""
        self._path = path
        self._token = inline
        self._stamp: tuple[int, ...] = ()
        self._problem = ""
        self._recheck_after = recheck_after
        self._clock = clock
        self._checked = clock()
        if path is not None:
            self._stamp = file_stamp(path)
            self._token = path.read_text().strip()

    @property
    def path(self) -> Path | None:
        return self._path

    def current(self) -> str:
        if self._path is None:
            return self._token
        if self._recheck_after:
            now = self._clock()
            if now - self._checked < self._recheck_after:
                return self._token
            self._checked = now
        try:
            stamp = file_stamp(self._path)
            if stamp != self._stamp:
                token = self._path.read_text().strip()
                self._stamp = stamp
                if not token:
                    raise OSError(f"{self._path} is empty")
                self._token, self._problem = token, ""
                log.info("reloaded token", extra={"token_file": str(self._path)})
        except OSError as error:
            if str(error) != self._problem:
                self._problem = str(error)
                log.warning("keeping previous token", extra={"error": self._problem})
        return self._token

    def __repr__(self) -> str:
        return f"TokenSource(path={str(self._path)!r})" if self._path else "TokenSource(inline)"


class TokenField:
    """A dataclass field holding a TokenSource that reads as the current token.

    Assigning a str makes an inline source, so `Settings(token="t")` and
    `dataclasses.replace` keep working; reading gives the token of this moment.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_{name}_source"

    def __get__(self, instance: object | None, owner: Any = None) -> str:
        if instance is None:
            return ""  # the dataclass default: no token
        return self.source(instance).current()

    def __set__(self, instance: object, value: str | TokenSource | TokenField) -> None:
        if isinstance(value, TokenField):  # `field(default=TokenField())` passes itself
            value = ""
        source = value if isinstance(value, TokenSource) else TokenSource(value)
        object.__setattr__(instance, self._attribute, source)

    def source(self, instance: object) -> TokenSource:
        source: TokenSource = getattr(instance, self._attribute)
        return source
