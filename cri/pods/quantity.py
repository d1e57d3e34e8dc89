"""Kubernetes resource quantities ("10M", "1Gi", "500k", "1e6") as integers.

Grammar (k8s.io/apimachinery resource.Quantity): a signed decimal number, then an optional
suffix: binary Ki Mi Gi Ti Pi Ei (powers of 1024), decimal n u m k M G T P E (powers of
1000), or an exponent e<int>/E<int>. Used for the kubernetes.io/{ingress,egress}-bandwidth
annotations (bits per second).
"""

from __future__ import annotations

import decimal
import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": decimal.Decimal("1e-9"),
    "u": decimal.Decimal("1e-6"),
    "m": decimal.Decimal("1e-3"),
    "": decimal.Decimal(1),
    "k": decimal.Decimal("1e3"),
    "M": decimal.Decimal("1e6"),
    "G": decimal.Decimal("1e9"),
    "T": decimal.Decimal("1e12"),
    "P": decimal.Decimal("1e15"),
    "E": decimal.Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([a-zA-Z]*|[eE][+-]?[0-9]+)$")


def parse_quantity(text: str) -> int:
    """The quantity's value rounded up to an integer; `ValueError` if it is not one."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    number = decimal.Decimal(match.group(1))
    suffix = match.group(2)
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    elif suffix[:1] in ("e", "E"):
        value = number.scaleb(int(suffix[1:]))
    else:
        raise ValueError(f"not a quantity: {text!r} (unknown suffix {suffix!r})")
    return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))
