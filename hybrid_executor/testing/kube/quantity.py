"""Kubernetes resource quantities ("500m", "1Gi", "2e3"): parsing, comparing, adding and writing them back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_UP, Decimal, InvalidOperation

BINARY_SI, DECIMAL_SI, DECIMAL_EXPONENT = "BinarySI", "DecimalSI", "DecimalExponent"
# The pattern the API server quotes when a quantity does not parse.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(QUANTITY_PATTERN)

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


class QuantityError(ValueError):
    """Raised with the API server's own message for a quantity that does not parse."""


def parse_quantity(value: object) -> Decimal:
    if isinstance(value, bool):
        raise QuantityError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:
        raise QuantityError("unable to parse quantity's suffix") from exc
    if suffix in _SUFFIXES:
        return base * _SUFFIXES[suffix]
    exponent = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if exponent:
        return base * (Decimal(10) ** int(exponent.group(1)))
    raise QuantityError("unable to parse quantity's suffix")


_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_NANO = Decimal("1e-9")


def quantity_format(value: object) -> str:
    """The format a quantity keeps from its suffix: ``BinarySI`` (Ki...), ``DecimalExponent`` (e3), ``DecimalSI``."""
    match = None if isinstance(value, (int, float)) else _QUANTITY.match(str(value).strip())
    suffix = match.group(2) if match else ""
    if suffix in _BINARY_SUFFIXES[1:]:
        return BINARY_SI
    if suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        return DECIMAL_EXPONENT
    return DECIMAL_SI


def canonical_quantity(value: object) -> str:
    """The quantity as the API server writes it back (resource.Quantity's canonical form).

    The suffix's family is kept (binary ``Ki``..., decimal ``k``/``m``..., or ``eN``), the mantissa is an
    integer and the exponent as large as it can be without losing precision: ``1000m`` is ``1``,
    ``1.5`` is ``1500m``, ``2048Mi`` is ``2Gi``, ``1536Mi`` stays ``1536Mi``. Binary values below 1024
    or with fractions are written in decimal. Precision below 1n is rounded up, as the server does.
    """
    return format_quantity(parse_quantity(value), quantity_format(value))


def format_quantity(amount: Decimal, form: str = DECIMAL_SI) -> str:
    """``amount`` written canonically in the format ``form`` (what Quantity.String() answers)."""
    amount = (amount / _NANO).to_integral_value(rounding=ROUND_UP) * _NANO
    if amount == 0:
        return "0"
    if form == BINARY_SI and abs(amount) >= 1024 and amount == amount.to_integral_value():
        mantissa, power = int(amount), 0
        while mantissa % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
            mantissa, power = mantissa // 1024, power + 1
        return f"{mantissa}{_BINARY_SUFFIXES[power]}"
    mantissa, exponent = int(amount / _NANO), -9
    while mantissa % 1000 == 0 and exponent < 18:
        mantissa, exponent = mantissa // 1000, exponent + 3
    if form == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"


def milli_value(amount: Decimal) -> int:
    """Quantity.MilliValue(): thousandths, rounded up."""
    return int((amount * 1000).to_integral_value(rounding=ROUND_CEILING))


def whole_value(amount: Decimal) -> int:
    """Quantity.Value(): rounded up to a whole number."""
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Amount:
    """A resource.Quantity as a value and the format it is written in.

    Adding keeps the format of the left side, unless that side is zero (Quantity.Add), so a sum
    is written the way the first non-zero term was.
    """

    value: Decimal
    form: str = DECIMAL_SI

    @classmethod
    def of(cls, written: object) -> Amount:
        return cls(parse_quantity(written), quantity_format(written))

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, other.form if self.value == 0 else self.form)

    def __str__(self) -> str:
        return format_quantity(self.value, self.form)
