"""New positions' leverage does not depend on how their flow is cut into steps.

Turnover arrivals cycle through their side's equal-mass leverage nodes by volume
(``engine.nb.kernel._deposit_cycle_nb``): node ``k`` takes the volume between the cumulative
amounts ``(16m + k)q`` and ``(16m + k + 1)q``. The momentum traders split what they open over every
node (``_deposit_spread_nb``). Both properties are checked here on the kernel's own functions: a
volume opened in one call and the same volume opened in any number of pieces leave the same book.
(The rule before gave each step one node, ``t mod 16``: an hourly burst of six steps got six of the
sixteen leverages, a 5-minute one all of them.)
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.compile.layout import N_NEW_NODES, N_ROW_FIELDS, Row
from engine.nb.kernel import _deposit_cycle_nb, _deposit_spread_nb

N_CELLS = 200
PER_LOG = 43.2
PRICE = 80_000.0


def _book(n_rows: int = 2):
    grid = np.empty(N_CELLS + 2)
    log0 = np.log(8_000.0)
    grid[:N_CELLS] = np.exp(log0 + np.arange(N_CELLS) / PER_LOG)
    grid[N_CELLS], grid[N_CELLS + 1] = log0, PER_LOG
    rows = np.zeros((n_rows, N_ROW_FIELDS))
    rows[:, Row.SHARE] = np.linspace(1.0, 2.0, n_rows) / np.linspace(1.0, 2.0, n_rows).sum()
    trig = np.ones((2, n_rows))
    leverage = np.exp(np.linspace(np.log(2.0), np.log(12.0), N_NEW_NODES))
    offsets = np.empty((4, N_NEW_NODES, n_rows))
    offsets[0] = offsets[2] = np.log1p(-1.0 / leverage)[:, None]
    offsets[1] = offsets[3] = np.log1p(1.0 / leverage)[:, None]
    cells = np.zeros((n_rows, N_CELLS))
    return grid, rows, trig, offsets, cells, cells.copy(), np.full(n_rows, -1, dtype=np.int64)


def _open(pieces, cycle: bool, quantum: float = 0.05, start_node: int = 3, start_room: float = 0.02):
    grid, rows, trig, offsets, cells, entry, ptr = _book()
    share_rows = np.arange(rows.shape[0], dtype=np.int64)
    at = np.log(PRICE) - grid[N_CELLS]
    size, trigger, node, room = 0.0, 0.0, start_node, start_room
    for btc in pieces:
        if cycle:
            size, trigger, node, room = _deposit_cycle_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets,
                                                          0, at, PER_LOG, btc, 0.5, quantum, node, room, PRICE,
                                                          size, trigger, True)
        else:
            size, trigger = _deposit_spread_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, 2, at,
                                               PER_LOG, btc / 0.5, PRICE, size, trigger, True)
    return cells, entry, ptr, size, trigger, node, room


cuts = st.lists(st.floats(0.001, 1.0), min_size=1, max_size=40)


def _same_book(pieces, cycle: bool):
    """Opening ``pieces`` one by one leaves the book (cells, entries, pointers, size, trigger) and
    the cycle's position as opening their sum at once; returns both."""
    whole = _open([sum(pieces)], cycle=cycle)
    cut = _open(pieces, cycle=cycle)
    np.testing.assert_allclose(cut[0], whole[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cut[1], whole[1], rtol=1e-9, atol=1e-7)
    assert (cut[2] == whole[2]).all()
    assert abs(cut[3] - whole[3]) <= 1e-9 * whole[3]
    assert cut[4] == whole[4]
    return whole, cut


@settings(max_examples=60, deadline=None)
@given(cuts)
def test_turnover_leverage_depends_on_the_volume_not_on_the_steps(pieces):
    whole, cut = _same_book(pieces, cycle=True)
    assert cut[5] == whole[5] and abs(cut[6] - whole[6]) <= 1e-9


def test_turnover_gives_each_node_its_quantum_in_turn():
    """From node 3 with 0.02 left of a 0.05 quantum: 0.02 to node 3, then 0.05 to each next node,
    wrapping at 16; whole cycles go to every node equally and leave the position where it was."""
    q = 0.05
    one = _open([0.02 + 2 * q], cycle=True)  # nodes 3 (its room), 4 and 5
    assert one[5] == 6 and abs(one[6] - q) < 1e-15
    spread = _open([0.02 + 2 * q + 3 * N_NEW_NODES * q], cycle=True)  # three whole cycles more
    assert spread[5] == 6 and abs(spread[6] - q) < 1e-12
    assert abs(one[3] - (0.02 + 2 * q) / 0.5) < 1e-12  # the side's unscaled size: btc / scale


@settings(max_examples=40, deadline=None)
@given(cuts)
def test_momentum_opens_every_node_whatever_the_steps(pieces):
    _same_book(pieces, cycle=False)


def test_a_cycle_reset_every_step_would_fail_the_check():
    """The check can fail: restarting the cycle at every piece (the per-step rule's flaw) changes
    the book when the volume is cut differently."""
    whole = _open([0.3], cycle=True)
    grid, rows, trig, offsets, cells, entry, ptr = _book()
    share_rows = np.arange(rows.shape[0], dtype=np.int64)
    at = np.log(PRICE) - grid[N_CELLS]
    size = trigger = 0.0
    for _ in range(3):  # three steps of 0.1, each starting the cycle afresh at node 3
        size, trigger, _, _ = _deposit_cycle_nb(cells, entry, ptr, grid, trig, rows, share_rows, offsets, 0, at,
                                                PER_LOG, 0.1, 0.5, 0.05, 3, 0.02, PRICE, size, trigger, True)
    assert not np.allclose(cells, whole[0], rtol=1e-9, atol=1e-12)
