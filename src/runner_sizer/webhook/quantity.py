"""Kubernetes resource quantities: parse to exact numbers, print canonically."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+)|([a-zA-Z]{0,2}))$")
_MIB = 2**20


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Decimal:
    """'500m' → 0.5, '2Gi' → 2147483648; raises QuantityError otherwise."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise QuantityError(f"not a quantity: {value!r}")
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        if exponent is not None:
            return Decimal(number) * Decimal(10) ** int(exponent)
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except (KeyError, InvalidOperation) as error:
        raise QuantityError(f"not a quantity: {value!r}") from error


def format_cpu(cores: Decimal) -> str:
    """Whole millicores, rounded up: '2', '1500m'."""
    millis = math.ceil(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: Decimal) -> str:
    """Whole MiB, rounded up: '512Mi', '4Gi'."""
    mib = math.ceil(size / _MIB)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 and mib else f"{mib}Mi"


FORMATTERS = {"cpu": format_cpu, "memory": format_memory}
