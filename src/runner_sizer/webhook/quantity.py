"""Kubernetes resource quantities: parse to exact numbers, print exactly.

Every form the apiserver accepts parses (`1500500u`, `250n`, `1e9`, `1G`, `1Gi`,
`.5`); anything else, and any magnitude no machine has, raises QuantityError.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
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
_QUANTITY = re.compile(
    r"^\+?([0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})"
    r"(?:[eE]([+-]?[0-9]{1,3})|(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?)$"
)
# Past 2^63 (Kubernetes' int64 values) a number is a mistake, not a size.
_LARGEST = Decimal(2) ** 63
_MIB = Decimal(2) ** 20
_MILLI = Decimal("0.001")


class QuantityError(ValueError):
    pass


def parse_quantity(value: object) -> Decimal:
    """'500m' → 0.5, '2Gi' → 2147483648; raises QuantityError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"not a quantity: {value!r}"[:80])
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value > _LARGEST:
            raise QuantityError(f"not a quantity: {value!r}"[:80])
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise QuantityError(f"not a quantity: {value!r}"[:80])
    number, exponent, suffix = match.groups()
    scale = Decimal(10) ** int(exponent) if exponent is not None else _SUFFIXES[suffix or ""]
    parsed = Decimal(number) * scale
    if parsed > _LARGEST:
        raise QuantityError(f"too large: {value!r}"[:80])
    return parsed


def _exact(value: Decimal, units: tuple[tuple[Decimal, str], ...]) -> str:
    """The largest unit that states `value` exactly; the smallest one, rounded up, else."""
    for size, suffix in units:
        count = value / size
        if count == count.to_integral_value():
            return f"{int(count)}{suffix}"
    size, suffix = units[-1]
    return f"{math.ceil(value / size)}{suffix}"


_CPU_UNITS = ((Decimal(1), ""), (_MILLI, "m"), (Decimal("1e-6"), "u"), (Decimal("1e-9"), "n"))
_MEMORY_UNITS = ((Decimal(2) ** 30, "Gi"), (_MIB, "Mi"), (Decimal(1), ""))


def format_cpu(cores: Decimal) -> str:
    """Exactly: '2', '1500m', '1500500u' (nanocores rounded up below that)."""
    return _exact(cores, _CPU_UNITS)


def format_memory(size: Decimal) -> str:
    """Exactly: '4Gi', '512Mi', '1000000000' (whole bytes rounded up below that)."""
    return _exact(size, _MEMORY_UNITS)


def round_up(resource: str, value: Decimal) -> Decimal:
    """A recommendation rounded up to a readable step: whole millicores, whole MiB."""
    step = _MILLI if resource == "cpu" else _MIB
    return math.ceil(value / step) * step


FORMATTERS = {"cpu": format_cpu, "memory": format_memory}
