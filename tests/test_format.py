"""engine/_format.py: each table's compact number style, and the one suffix rule under them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import _format as F


@pytest.mark.parametrize("fn, x, shown", [
    (F.amount, 61e9, "61B"), (F.amount, 689.2e6, "689.2M"), (F.amount, 73_600, "73.6k"), (F.amount, 12.5, "12.5"),
    (F.amount_exact, 56_100, "56.1k"), (F.amount_exact, 1.23456789e9, "1.23456789B"),
    (F.usd, 740, "740"), (F.usd, 0.5, "0.5"), (F.usd, math.nan, "-"),
    (F.usd_k, -19.65e6, "-19.65M"), (F.usd_k, -258_200, "-258.2k"), (F.usd_k, 740, "740"), (F.usd_k, math.nan, ""),
    (F.usd_2f, 1.02e9, "1.02B"), (F.usd_2f, 73_600, "73,600"), (F.usd_2f, math.inf, "-"),
    (F.usd_3g, 3.41e6, "3.41M"), (F.usd_3g, 884e6, "884M"), (F.usd_3g, 1.64e12, "1,640B"),
    (F.signed_3g, 6.08e6, "+6.08M"), (F.signed_3g, -10_475, "-10.5k"), (F.signed_3g, 917, "+917"),
    (F.five_digits, 68_387, "68.387k"), (F.five_digits, None, "-"), (F.five_digits, math.inf, "inf"),
    (F.compare_value, 1.024e9, "1.024B"), (F.compare_value, 73_600, "73,600.00"), (F.compare_value, 0.0012, "0.0012"),
])
def test_each_style(fn, x, shown):
    assert fn(x) == shown


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_the_suffix_is_the_largest_the_number_reaches(x):
    text = F.compact(x, ((1e12, "T", ".6g"), (1e9, "B", ".6g"), (1e6, "M", ".6g"), (1e3, "k", ".6g")), ".6g")
    expected = next((s for s, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)) if abs(x) >= size), "")
    assert text.endswith(expected) if expected else text[-1].isdigit() or text.endswith(("inf", "nan"))
