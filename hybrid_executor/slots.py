"""How the router shares the scheduler's open slots between its backends."""

from __future__ import annotations


def fair_shares(open_slots: int, demands: list[tuple[int, int]]) -> list[int]:
    """Split ``open_slots`` between children, equal shares first, then what one leaves to the others."""
    wants = [min(waiting, room) for waiting, room in demands]
    shares = [0] * len(wants)
    left = max(0, open_slots)
    while left > 0:
        hungry = [i for i, want in enumerate(wants) if shares[i] < want]
        if not hungry:
            break
        each = max(1, left // len(hungry))
        for i in hungry:
            give = min(each, wants[i] - shares[i], left)
            shares[i] += give
            left -= give
            if left == 0:
                break
    return shares
