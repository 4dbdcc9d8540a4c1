"""Byte sizes and durations as people write them (`512MiB`, `4GiB`, `2s`) and as bytes/seconds inside."""
from __future__ import annotations

import math
import re

# The base page mmlab counts in: 4 KiB, as on x86-64 and in the kernel-history figures. env records the
# running kernel's page size; real experiments refuse to run where it differs.
PAGE_BYTES = 4096

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1000, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "min": 60.0}
_TIME_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_bytes(value: object) -> int:
    """Bytes from an int or a string such as `512MiB`, `4GiB`, `2000000000`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{value!r} is not a whole number of bytes")
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _UNITS:
            number = float(m.group(1)) * _UNITS[m.group(2).lower()]
            if math.isfinite(number) and number == int(number):
                return int(number)
    raise ValueError(f"{value!r} is not a size (use bytes or e.g. 512MiB, 4GiB)")


def parse_seconds(value: object) -> float:
    """Seconds from a number or a string such as `2s`, `500ms`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _TIME_RE.match(value)
        if m and m.group(2) in _TIME_UNITS:
            return float(m.group(1)) * _TIME_UNITS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration (use seconds or e.g. 2s, 500ms)")


def format_bytes(n: float) -> str:
    """`536870912` -> `512MiB`; exact binary multiples print without decimals."""
    n = float(n)
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            q = n / size
            return f"{q:.0f}{unit}" if q == int(q) else f"{q:.3g}{unit}"
    return f"{n:.0f}B"


def pages(n_bytes: int, page_bytes: int = PAGE_BYTES) -> int:
    """Whole pages covering n_bytes."""
    return -(-int(n_bytes) // page_bytes)
