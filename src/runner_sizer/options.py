"""Command-line options with environment-variable fallback, validated up front.

Each service lists `Option`s (flag, converter, default as text, help); flags
win over `<PREFIX><FLAG_IN_UPPER_SNAKE_CASE>` variables, which win over the
default. A bad value raises `OptionError` naming the flag and variable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from importlib.metadata import version
from pathlib import Path
from typing import Any, Generic, TypeVar

Option = tuple[str, Callable[[str], Any], str | None, str]
T = TypeVar("T")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
E = TypeVar("E", bound=Enum)


class OptionError(ValueError):
    """Invalid configuration; the message names the setting."""


def package_version() -> str:
    return version("runner-sizer")


def env_var(prefix: str, flag: str) -> str:
    return prefix + flag.upper().replace("-", "_")


def setting(prefix: str, flag: str) -> str:
    """How errors name a setting: `--flag (PREFIX_FLAG)`."""
    return f"--{flag} ({env_var(prefix, flag)})"


class Choice(Generic[T]):
    """A converter accepting exactly the given texts; its error lists them."""

    def __init__(self, choices: Mapping[str, T]) -> None:
        self.choices = dict(choices)

    @staticmethod
    def of(*texts: str) -> Choice[str]:
        return Choice({text: text for text in texts})

    @staticmethod
    def of_enum(kind: type[E]) -> Choice[E]:
        return Choice({str(member.value): member for member in kind})

    def __call__(self, value: str) -> T:
        try:
            return self.choices[value]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}") from None


def _help(convert: Callable[[str], Any], default: str | None, help_text: str) -> dict[str, Any]:
    """argparse keywords: choices as the metavar, the default once, as the env would spell it."""
    keywords: dict[str, Any] = {}
    if isinstance(convert, Choice):
        keywords["metavar"] = "{" + ",".join(convert.choices) + "}"
    elif convert is boolean:
        keywords["metavar"] = "{true,false}"
    if default and "(default:" not in help_text:
        help_text = f"{help_text} (default: {default})"
    return {**keywords, "help": help_text}


def parse_options(
    prog: str,
    description: str,
    options: Sequence[Option],
    *,
    prefix: str,
    argv: Sequence[str],
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """Converted values keyed by attribute name (flag with `_`); None where unset."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"{description} Every flag may also be set as the environment "
        f"variable {prefix}<FLAG_IN_UPPER_SNAKE_CASE>.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    for flag, convert, default, help_text in options:
        parser.add_argument(f"--{flag}", default=None, **_help(convert, default, help_text))
    given = vars(parser.parse_args(list(argv)))
    values: dict[str, Any] = {}
    for flag, convert, default, _ in options:
        attribute = flag.replace("-", "_")
        raw = given[attribute]
        if raw is None:
            raw = environ.get(env_var(prefix, flag), default)
        try:
            values[attribute] = None if raw is None else convert(raw)
        except ValueError as error:
            raise OptionError(f"{setting(prefix, flag)}: {error}") from None
    return values


def host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":8443" means every interface
    number = int(port)
    if not 0 < number < 65536:
        raise ValueError("port out of range")
    return host, number


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be > 0")
    return number


def duration(value: str) -> float:
    """Seconds of a Prometheus duration (`14d`, `1h30m`) or a plain number of seconds."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration such as 300, 5m or 14d") from None
        seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{value!r}: must be > 0")
    return seconds


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"no such file: {value}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"not readable: {value}")
    return path


LOG_LEVELS = Choice.of("debug", "info", "warning", "error")
