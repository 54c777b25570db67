"""How the router splits open slots between Celery and Kubernetes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hybrid_executor.slots import fair_shares


def test_a_backlog_on_one_side_does_not_starve_the_other() -> None:
    assert fair_shares(10, [(500, 500), (3, 100)]) == [7, 3]


def test_equal_split_when_both_want_more_than_there_is() -> None:
    assert fair_shares(10, [(100, 100), (100, 100)]) == [5, 5]


def test_a_child_at_its_own_cap_gets_nothing() -> None:
    assert fair_shares(10, [(100, 0), (100, 100)]) == [0, 10]


def test_no_open_slots() -> None:
    assert fair_shares(0, [(5, 5), (5, 5)]) == [0, 0]
    assert fair_shares(-3, [(5, 5), (5, 5)]) == [0, 0]


@given(
    st.integers(min_value=-5, max_value=200),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), min_size=2, max_size=2),
)
def test_shares_never_exceed_slots_or_wants_and_leave_nothing_unused(
    open_slots: int, demands: list[tuple[int, int]]
) -> None:
    shares = fair_shares(open_slots, demands)
    wants = [min(w, r) for w, r in demands]
    assert sum(shares) <= max(0, open_slots)
    assert all(0 <= s <= w for s, w in zip(shares, wants, strict=True))
    # Work-conserving: slots stay unused only when every child has all it can take.
    assert sum(shares) == min(max(0, open_slots), sum(wants))
