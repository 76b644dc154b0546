"""A book brought from a file (``portfolio.positions_csv``, ``cascade run --book``) and its greeks.

* the shipped example (docs/examples/positions.csv, read by docs/examples/book.yaml) gives the
  same resolved scenario and the same hedge table, exactly, as the same book typed in YAML; perp
  rows merge into one cross-margined perp;
* the Deribit fixture (JSON-RPC envelope or bare list) gives the expected portfolio: perpetual and
  dated future merged, options from their names, flat entries skipped;
* bad input, CSV or Deribit, exits 2 with one located message (file, row or entry, column or
  field) and leaves no run folder; only regular files under the size limit are read;
* ``--book`` is recorded in the manifest and ``cascade rerun`` reproduces the run without the file;
* options already held are marked along the paths exactly as a strategy's leg on the same contract;
* the book's greeks: delta at the spot is spot + perp + the options' Black-Scholes deltas
  (engine.options.black_scholes directly), gamma and vega likewise; the report draws them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from conftest import ROOT

import engine
from engine.portfolio.greeks import render_book_greeks
from engine.cli import main
from engine.errors import ScenarioError
from engine.options import black_scholes as bs
from engine.results.store import load_run
from engine.scenario import positions
from engine.scenario.canonical import dump_scenario
from engine.scenario.loader import load_scenario

SMALL = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"
EXAMPLE = ROOT / "docs" / "examples" / "book.yaml"
EXAMPLE_CSV = ROOT / "docs" / "examples" / "positions.csv"
DERIBIT = ROOT / "tests" / "fixtures" / "deribit_positions.json"
HEADER = "instrument,side,size_btc,entry_price_usd,leverage,margin_usd,venue,strike_usd,expiry,option_type\n"

# docs/examples/positions.csv, typed: the two spot lots added, the two perp lots merged (net 5 BTC,
# entry (3 x 91,250 + 2 x 86,900) / 5 = 89,510, margins 54,750 + 2 x 86,900 / 5 = 89,510: 5x)
TYPED = """\
extends: {base}
name: book-from-csv
description: >-
  The CI flagship with a book brought from a positions CSV: spot, a perp in two lots, puts and a
  short call.
portfolio:
  spot_btc: 10
  cash_usd: 100k
  perp: {{size_btc: 5, leverage: 5, entry_price_usd: 89510, venue: cross_margined}}
  options:
    - {{kind: put, strike_usd: 70k, expiry: 2026-02-27T08:00:00Z, size_btc: 8}}
    - {{kind: put, strike_usd: 60k, expiry: 2026-02-27T08:00:00Z, size_btc: -4}}
    - {{kind: call, strike_usd: 110k, expiry: 2026-03-27T08:00:00Z, size_btc: -2}}
"""


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def typed_example(tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text(TYPED.format(base=os.path.relpath(SMALL, tmp_path)))
    return path


# ----------------------------------------------------------------------------- CSV = YAML
def test_the_shipped_example_is_the_yaml_book_exactly(typed_example, capsys):
    from_csv = load_scenario(EXAMPLE)
    typed = load_scenario(typed_example)
    assert from_csv.portfolio == typed.portfolio
    assert dump_scenario(from_csv) == dump_scenario(typed)  # the resolved scenario holds the parsed book
    book = positions.book_of(from_csv)
    assert book.via == "portfolio.positions_csv" and book.format == "csv" and len(book.positions) == 7
    assert book.sha256 == hashlib.sha256(EXAMPLE_CSV.read_bytes()).hexdigest()
    assert positions.book_of(typed) is None

    tables = []
    for path in (EXAMPLE, typed_example):
        code, out, err = _cli(capsys, "run", path, "--paths", "300", "--no-save", "--json")
        assert code == 0, err
        tables.append(json.loads(out))
    assert tables[0]["strategies"] == tables[1]["strategies"]  # the JSON hedge table, exactly
    assert tables[0]["book_greeks"] == tables[1]["book_greeks"]
    assert tables[0]["book"]["via"] == "portfolio.positions_csv" and "book" not in tables[1]


def test_the_raw_data_callers_reload_holds_the_parsed_book():
    """engine.analysis.breakpoint and the sweeps reload the loader's raw data with changes: the file is not
    read again, and the book is the same."""
    import copy

    for scenario in (load_scenario(EXAMPLE), load_scenario(SMALL, book=DERIBIT)):
        raw = copy.deepcopy(scenario._source.data)
        assert "positions_csv" not in raw["portfolio"]
        assert load_scenario(raw).portfolio == scenario.portfolio


def test_several_perp_rows_are_one_cross_margined_account(tmp_path, tiny_scenario):
    (tmp_path / "b.csv").write_text(HEADER + "perp,long,2,80000,,32000,,,,\n"
                                             "perp,short,0.5,90000,10,,,,,\n"
                                             "perp,buy,1,,4,,,,,\n")
    tiny_scenario["portfolio"] = {"positions_csv": str(tmp_path / "b.csv")}
    perp = load_scenario(tiny_scenario).portfolio.perp
    spot = 88_500.0  # the tiny scenario's; the third row's entry
    net = 2 - 0.5 + 1
    entry = (2 * 80_000 - 0.5 * 90_000 + 1 * spot) / net
    margin = 32_000 + 0.5 * 90_000 / 10 + spot / 4
    assert perp.size_btc == pytest.approx(net)
    assert perp.entry_price_usd == pytest.approx(entry)
    assert perp.leverage == pytest.approx(net * entry / margin)
    assert perp.venue is None


def test_a_child_file_replaces_the_positions_its_parent_typed_but_not_its_own(tmp_path):
    (tmp_path / "p.csv").write_text(HEADER + "spot,long,2,,,,,,,\n")
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {os.path.relpath(SMALL, tmp_path)}\nportfolio: {{positions_csv: p.csv}}\n")
    scenario = load_scenario(child)  # a child's portfolio: is its whole book: none of the parent's positions or cash
    assert (scenario.portfolio.spot_btc, scenario.portfolio.perp, scenario.portfolio.cash_usd) == (2.0, None, 0.0)
    child.write_text(f"extends: {os.path.relpath(SMALL, tmp_path)}\n"
                     "portfolio: {positions_csv: p.csv, spot_btc: 3}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(child)
    assert len(err.value.problems) == 1
    assert str(err.value).startswith(f"{child}:2:") and "portfolio.positions_csv" in str(err.value)
    assert "spot_btc cannot be set beside it" in str(err.value)


# ----------------------------------------------------------------------------- Deribit
def _expected_deribit_perp():
    rows = json.loads(DERIBIT.read_text())["result"][:2]  # the perpetual and the dated future
    net = sum(r["size_currency"] for r in rows)
    entry = sum(r["size_currency"] * r["average_price"] for r in rows) / net
    margin = sum(r["initial_margin"] * r["index_price"] for r in rows)
    return net, entry, abs(net) * entry / margin


@pytest.mark.parametrize("envelope", [True, False])
def test_the_deribit_export_gives_the_expected_portfolio(tmp_path, envelope):
    book = DERIBIT
    if not envelope:  # the bare result list
        book = tmp_path / "bare.json"
        book.write_text(json.dumps(json.loads(DERIBIT.read_text())["result"]))
    scenario = load_scenario(SMALL, book=book)
    pf = scenario.portfolio
    net, entry, leverage = _expected_deribit_perp()
    assert pf.spot_btc == 0.0 and pf.cash_usd == 100e3  # the scenario's cash stays
    assert pf.perp.size_btc == pytest.approx(net) and net < 0
    assert pf.perp.entry_price_usd == pytest.approx(entry)
    assert pf.perp.leverage == pytest.approx(leverage)
    assert pf.perp.venue is None  # no venue of the scenario is called deribit: the first one
    assert [(o.kind, o.strike_usd, o.expiry.isoformat(), o.size_btc) for o in pf.options] == [
        ("put", 70_000.0, "2026-02-27T08:00:00+00:00", 10.0),
        ("put", 60_000.0, "2026-02-27T08:00:00+00:00", 5.0),
        ("call", 110_000.0, "2026-03-27T08:00:00+00:00", -3.0),
    ]
    held = positions.book_of(scenario)
    assert held.format == "deribit" and held.via == "--book" and len(held.positions) == 5
    assert held.skipped == (("result" if envelope else "") + "[5] (BTC-26JUN26)",)


def test_a_deribit_perp_goes_to_a_venue_called_deribit(tmp_path):
    scenario = load_scenario(SMALL, ["market.perpetuals.venues={crypto_exchanges: 60%, cross_margined: 20%, deribit: 20%}"], book=DERIBIT)
    assert scenario.portfolio.perp.venue == "deribit"


# ----------------------------------------------------------------------------- bad input
def _csv(rows: str, header: str = HEADER) -> str:
    return header + rows


def _deribit(index: int, key: str, value) -> str:
    """The fixture with entry ``index``'s ``key`` set to ``value`` (``None``: removed)."""
    data = json.loads(DERIBIT.read_text())
    if value is None:
        data["result"][index].pop(key)
    else:
        data["result"][index][key] = value
    return json.dumps(data, indent=1)


# (file name, content, what the one message says: location, column or field, and the problem)
BAD = {
    "unknown instrument": ("b.csv", _csv("spot,long,1,,,,,,,\nswap,long,2,,,,,,,\n"),
                           ["b.csv:3:", "instrument:", "unknown instrument 'swap'"]),
    "negative size": ("b.csv", _csv("spot,long,1,,,,,,,\nperp,short,-2,,5,,,,,\n"),
                      ["b.csv:3:", "size_btc:", "must be above 0", "side column gives the sign"]),
    "missing column": ("b.csv", _csv("spot,long,1\noption,long,2\n", "instrument,side,size_btc\n"),
                       ["b.csv:1:", "strike_usd:", "missing column", "row 3 is an option"]),
    "missing required column": ("b.csv", _csv("spot,1\n", "instrument,size_btc\n"),
                                ["b.csv:1:", "side:", "missing column 'side'"]),
    "expiry in the past": ("b.csv", _csv("option,long,1,,,,,60000,2026-01-20T08:00:00Z,put\n"),
                           ["b.csv:2:", "expiry:", "is not after horizon.start 2026-01-29 00:00 UTC"]),
    "unknown column": ("b.csv", _csv("spot,long,1,\n", "instrument,side,size_btc,strike\n"),
                       ["b.csv:1:", "strike:", "unknown column 'strike'", "did you mean 'strike_usd'?"]),
    "entry price on an option": ("b.csv", _csv("option,long,1,2000,,,,60000,2026-02-27,put\n"),
                                 ["b.csv:2:", "entry_price_usd:", "is for perp rows"]),
    "short spot": ("b.csv", _csv("spot,sell,1,,,,,,,\n"), ["b.csv:2:", "side:", "spot is held long"]),
    "perp rows on two venues": ("b.csv", _csv("perp,long,1,,5,,crypto_exchanges,,,\nperp,long,1,,5,,cross_margined,,,\n"),
                                ["b.csv:3:", "venue:", "perp positions row 2 and row 3 are on different venues"]),
    "unknown venue": ("b.csv", _csv("perp,long,1,,5,,binance,,,\n"),
                      ["b.csv:2:", "venue:", "unknown venue 'binance'"]),
    "leverage out of range": ("b.csv", _csv("perp,long,1,,,100,,,,\n"),
                              ["b.csv:2:", "margin_usd:", "leverage 893x", "1x to 200x"]),
    "a ragged row": ("b.csv", _csv("spot,long,1\n"), ["b.csv:2:", "row 2 has 3 fields, the header 10"]),
    "only a header": ("b.csv", HEADER, ["b.csv:1:", "no positions"]),
    "not UTF-8": ("b.csv", HEADER.encode() + b"spot,long,1,,,,,,,caf\xe9\n", ["b.csv:2:", "not UTF-8"]),
    "another currency": ("d.json", _deribit(3, "instrument_name", "ETH-27FEB26-2500-P"),
                         ["d.json: result[3].instrument_name:", "ETH-27FEB26-2500-P: only BTC instruments"]),
    "a missing field": ("d.json", _deribit(1, "size_currency", None),
                        ["d.json: result[1].size_currency:", "missing field 'size_currency'"]),
    "a bad name": ("d.json", _deribit(2, "instrument_name", "BTC-31FEB26-70000-P"),
                   ["d.json: result[2].instrument_name:", "31FEB26 is not a date"]),
    "a future settling inside the horizon": ("d.json", _deribit(1, "instrument_name", "BTC-30JAN26"),
                                             ["d.json: result[1].instrument_name:", "BTC-30JAN26 expires 2026-01-30",
                                              "before the horizon ends"]),
    "size against direction": ("d.json", _deribit(0, "direction", "buy"),
                               ["d.json: result[0].size:", "contradicts direction 'buy'"]),
    "an expired option": ("d.json", _deribit(4, "instrument_name", "BTC-23JAN26-110000-C"),
                          ["d.json: result[4].instrument_name:", "is not after horizon.start"]),
    "not JSON": ("d.json", '{"result": [\n  {"kind": "future",}\n]}', ["d.json:2:", "not valid JSON"]),
    "an error response": ("d.json", '{"jsonrpc": "2.0", "error": {"code": 13009, "message": "unauthorized"}}',
                          ["d.json: error:", "an error response", "unauthorized"]),
    "a book of another kind": ("b.txt", "spot,long,1\n", ["b.txt:", "a positions CSV (.csv) or a Deribit"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_books_exit_2_with_one_located_message_and_no_run_folder(case, tmp_path, capsys, monkeypatch):
    name, content, fragments = BAD[case]
    monkeypatch.chdir(tmp_path)
    book = tmp_path / name
    book.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = _cli(capsys, "run", SMALL, "--paths", "64", "--book", name, "--out", tmp_path / "out")
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err  # one problem, one line
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no run folder, no results/


def test_positions_csv_problems_are_located_in_the_csv(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(f"extends: {os.path.relpath(SMALL, tmp_path)}\n"
                                     "portfolio: {positions_csv: book/p.csv}\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "p.csv").write_text(_csv("spot,long,1,,,,,,,\nspot,long,x,,,,,,,\n"))
    code, _, err = _cli(capsys, "run", "s.yaml", "--paths", "64")
    assert code == 2 and err.strip() == ("book/p.csv:3: size_btc: must be a number like 5, 0.25 or 62000, got 'x'")
    (tmp_path / "s.yaml").write_text(f"extends: {os.path.relpath(SMALL, tmp_path)}\n"
                                     "portfolio: {positions_csv: nowhere.csv}\n")
    code, _, err = _cli(capsys, "validate", "s.yaml")
    assert code == 2 and err.startswith("s.yaml:2:") and "portfolio.positions_csv: positions file not found " \
        "(looked for nowhere.csv)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book", "s.yaml"]


def test_only_regular_files_under_the_size_limit_are_read(tmp_path, monkeypatch):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ScenarioError, match="dir.csv: not a regular file"):
        positions.read_book(tmp_path / "dir.csv")
    os.mkfifo(tmp_path / "fifo.csv")  # opening it would block: never opened
    with pytest.raises(ScenarioError, match="fifo.csv: not a regular file"):
        positions.read_book(tmp_path / "fifo.csv")
    (tmp_path / "big.csv").write_text(HEADER + "spot,long,1,,,,,,,\n" * 50)
    monkeypatch.setattr(positions, "MAX_BYTES", 1000)
    with pytest.raises(ScenarioError, match=r"big.csv: file is 1,\d\d\d bytes, over the 1,000-byte limit for a book"):
        positions.read_book(tmp_path / "big.csv")


# ----------------------------------------------------------------------------- the run folder
def test_book_is_recorded_and_rerun_needs_no_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DERIBIT, tmp_path / "mine.json")
    code, out, err = _cli(capsys, "run", SMALL, "--paths", "200", "--book", "mine.json", "--out", tmp_path / "a",
                          "--greeks")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("book: mine.json (Deribit export, 5 positions, 1 flat skipped, sha256 ")
    assert "replaces the scenario's portfolio positions" in lines[1]
    assert "book greeks along the fan" in out
    m = load_run(tmp_path / "a").manifest
    digest = hashlib.sha256((tmp_path / "mine.json").read_bytes()).hexdigest()
    assert m["book"] == {"file": "mine.json", "sha256": digest, "format": "deribit", "via": "--book",
                         "positions": 5, "skipped": ["result[5] (BTC-26JUN26)"]}
    assert m["command"][-2:] == ["--book", "mine.json"]
    assert "perp:" in (tmp_path / "a" / "scenario.yaml").read_text()  # the parsed book
    (tmp_path / "mine.json").unlink()  # a rerun reads the run folder, not the file
    code, out, err = _cli(capsys, "rerun", tmp_path / "a", "--out", tmp_path / "b")
    assert code == 0, err
    assert "bit-identical" in out and f"sha256 {digest[:12]}" in out
    assert load_run(tmp_path / "b").manifest["book"] == m["book"]


def test_the_report_draws_the_books_greeks(tmp_path):
    from engine.results.report import BOOK_CHART_ID
    from engine.results.store import write_run

    scenario = load_scenario(EXAMPLE, ["outputs.report=true", "strategies=[]"])
    result = engine.run(scenario, n_paths=200)
    run = load_run(write_run(result, tmp_path / "r", figures=False,
                             extra_manifest={"book": positions.book_of(scenario).manifest()}))  # as cascade run does
    page = (run.path / "report.html").read_text(encoding="utf-8")
    assert page.count(f'id="{BOOK_CHART_ID}"') == 1 and 'id="table-book-greeks"' in page
    assert '<section id="book">' in page and "docs/examples/positions.csv" in page  # the header's book line
    assert run.metrics["book_greeks"] == result.to_dict()["book_greeks"]


# ----------------------------------------------------------------------------- valuation
def test_held_options_are_marked_like_a_strategy_leg(tiny_scenario):
    """A put held in the book and the same put bought by a costless protective_put give the same
    per-path PnL: the held option is marked along each path as the strategy's leg is."""
    put = {"kind": "put", "strike_usd": "80k", "expiry": "2026-02-27T08:00:00Z", "size_btc": 2}
    held = dict(tiny_scenario, portfolio={"spot_btc": 1, "options": [put]})
    bought = dict(tiny_scenario, portfolio={"spot_btc": 1}, strategies=[
        {"rule": "protective_put", "name": "put", "strike_usd": "80k", "size_btc": 2,
         "expiry": "2026-02-27T08:00:00Z", "costs": {"bid_ask_spread": 0, "fee_rate": 0}}])
    a = engine.run(load_scenario(held), n_paths=64)
    b = engine.run(load_scenario(bought), n_paths=64)
    pnl_held = a.strategy_paths["pnl"][0]
    pnl_leg = b.strategy_paths["pnl"][1]
    assert np.ptp(pnl_held) > 1e3  # the paths move the book
    np.testing.assert_allclose(pnl_held, pnl_leg, rtol=0, atol=1e-6 * np.abs(pnl_leg).max())


def test_book_delta_at_the_spot_is_spot_perp_and_black_scholes_deltas(tiny_scenario):
    tiny_scenario["market"]["options"] = {"atm_iv": "60%", "risk_reversal_25d": 0, "butterfly_25d": 0,
                                          "term_structure_slope": 0}
    options = [("put", 70e3, 3.0), ("call", 100e3, -1.5), ("put", 85e3, 0.5)]
    tiny_scenario["portfolio"] = {"spot_btc": 4, "perp": {"size_btc": -2, "leverage": 3}, "options": [
        {"kind": k, "strike_usd": s, "expiry": "2026-02-27T08:00:00Z", "size_btc": n} for k, s, n in options]}
    result = engine.run(load_scenario(tiny_scenario), n_paths=64)
    start = result.to_dict()["book_greeks"]["points"][0]
    assert (start["date"], start["level"], start["price"], start["atm_iv"]) == ("start", "spot", 88_500.0, 0.6)
    tau = (29 + 8 / 24) / 365.25  # 29 Jan 00:00 -> 27 Feb 08:00, in years
    greeks = [bs.greeks(k, 88_500.0, s, tau, 0.0, 0.0, 0.6) for k, s, _ in options]
    delta = 4 - 2 + sum(n * float(g["delta"]) for (_, _, n), g in zip(options, greeks))
    gamma = sum(n * float(g["gamma"]) for (_, _, n), g in zip(options, greeks)) * 88_500.0 / 100
    vega = sum(n * float(g["vega"]) for (_, _, n), g in zip(options, greeks)) / 100
    assert start["delta_btc"] == pytest.approx(delta, rel=1e-12)
    assert start["gamma_btc_per_pct"] == pytest.approx(gamma, rel=1e-12)
    assert start["vega_usd_per_vol_pt"] == pytest.approx(vega, rel=1e-12)
    from engine.portfolio.hedge import _btc_delta

    assert _btc_delta(result.compiled) == pytest.approx(delta, rel=1e-12)  # what hedge ratios size


def test_greeks_follow_the_fan_and_drop_a_liquidated_perp(tmp_path):
    result = engine.run(load_scenario(EXAMPLE, ["strategies=[]"]), n_paths=300)
    section = result.book_greeks
    dates = [p["date"] for p in section["points"]]
    assert dates == ["start"] + ["middle"] * 5 + ["end"] * 5
    end = [p for p in section["points"] if p["date"] == "end"]
    assert [p["price"] for p in end] == [float(result.fan[("price", q)].iloc[-1]) for q in ("p5", "p25", "p50", "p75",
                                                                                          "p95")]
    assert end[0]["time"] == "2026-02-02T00:00:00Z"
    pf = result.compiled.portfolio
    from engine.portfolio.margin import liquidation_price

    liq = liquidation_price(pf.perp_entry_usd, pf.perp_leverage, pf.perp_mmr, "long")
    for p in section["points"]:
        assert p["perp_liquidated"] == (p["price"] <= liq)
    for curve in section["curves"]:
        assert len(curve["price"]) == len(curve["delta_btc"]) == 41
    text = render_book_greeks(section)
    assert text.count("\n") == 2 + len(section["points"])


def test_a_spot_only_book_has_no_greeks_section(tiny_scenario):
    tiny_scenario["portfolio"] = {"spot_btc": 3}
    assert "book_greeks" not in engine.run(load_scenario(tiny_scenario), n_paths=64).to_dict()


# ----------------------------------------------------------------------------- the docs
def test_the_docs_show_the_shipped_example_and_real_messages(tmp_path, monkeypatch):
    """docs/book.md's CSV is docs/examples/positions.csv, and its error lines are what the loader says."""
    import re

    text = (ROOT / "docs" / "book.md").read_text(encoding="utf-8")
    (csv_block,) = re.findall(r"^```csv\n(.*?)^```", text, re.M | re.S)
    assert csv_block == EXAMPLE_CSV.read_text()
    (errors,) = re.findall(r"^```text\n(.*?)^```", text, re.M | re.S)
    monkeypatch.chdir(tmp_path)
    said = set()
    for name, content, _ in BAD.values():
        target = "positions" + name[name.index("."):]
        with open(target, "wb") as fh:
            fh.write(content if isinstance(content, bytes) else content.encode())
        try:
            load_scenario(SMALL, book=target)
        except ScenarioError as exc:
            said.add(str(exc))
    for line in errors.splitlines():
        assert line in said, line
