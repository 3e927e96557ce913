"""Binance archive formats and bad data: a clear error naming file and line, or a reported repair."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.market.data import KLINE_HEADER, load_dataset, read_klines

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01


def _row(i, c=100.0, v=5.0, t=None, ncols=7):
    t = T0 + i * H if t is None else t
    base = [t, c, c + 1, c - 1, c + 0.5, v, t + H - 1]
    if ncols == 12:
        base += [123.0, 10, 2.0, 200.0, 0]
    return ",".join(str(x) for x in base)


def _write(p: Path, rows, header=True, mode="gz"):
    text = ((KLINE_HEADER + "\n") if header else "") + "\n".join(rows) + "\n"
    p.parent.mkdir(parents=True, exist_ok=True)
    if mode == "gz":
        p.write_bytes(gzip.compress(text.encode()))
    elif mode == "zip":
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr(p.stem + ".csv", text)
    else:
        p.write_text(text)
    return p


@pytest.mark.parametrize(
    "mode,header,ncols", [("gz", True, 7), ("zip", False, 12), ("plain", False, 7), ("plain", True, 12)]
)
def test_formats(tmp_path, mode, header, ncols):
    p = _write(
        tmp_path / f"k.{ {'gz': 'csv.gz', 'zip': 'zip', 'plain': 'csv'}[mode] }",
        [_row(i, ncols=ncols) for i in range(5)],
        header,
        mode,
    )
    k = read_klines(p, "BTCUSDT", "1h")
    assert len(k) == 5 and k.open_time[1] - k.open_time[0] == H and k.close[0] == 100.5


def test_real_layout_loads_and_aligns(shared_data):
    ds = load_dataset(shared_data, ["SOLUSDT"], "1h")
    d = ds.symbols["SOLUSDT"]
    assert len(d.klines) == 8784
    assert np.isfinite(d.funding).all()
    # SOL mark is 8h: matched on the bars closing at an 8h boundary only
    closes = d.klines.open_time + H
    assert np.all(np.isfinite(d.mark_close) == (closes % (8 * H) == 0))


@pytest.mark.parametrize(
    "rows,pattern",
    [
        (
            [_row(0), _row(1).replace("100.0", "nan", 1), _row(2)],
            r"line 3: column open: 'nan' is not a finite",
        ),
        ([_row(0), _row(1) + ",9", _row(2)], r"line 3: expected 7 or 12 columns of kline, found 8"),
        (
            [_row(0), _row(1).replace(",5.0,", ",abc,"), _row(2)],
            r"line 3: column volume: not a number: 'abc'",
        ),
        ([_row(0), _row(1, t=T0 + H + 5)], r"line 3: open_time .* not on the 1h grid"),
        ([_row(0), _row(1), _row(1, c=101.0)], r"line 4: open_time .* duplicated with different values"),
        ([_row(0), _row(1, v=-1.0)], r"line 3: negative volume"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, rows, pattern):
    p = _write(tmp_path / "BTCUSDT-1h.csv.gz", rows)
    with pytest.raises(DataError, match=pattern) as ei:
        read_klines(p, "BTCUSDT", "1h")
    assert str(p) in str(ei.value)


def test_wrong_format_file(tmp_path):
    p = tmp_path / "k.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    with pytest.raises(DataError, match=r"k.csv: not a CSV"):
        read_klines(p, "BTCUSDT", "1h")
    p2 = _write(tmp_path / "f.csv", ["1704067200000,8,0.0001"], header=False, mode="plain")
    with pytest.raises(DataError, match=r"f.csv: line 1: expected 7 or 12 columns"):
        read_klines(p2, "BTCUSDT", "1h")


def test_repairs_are_reported(tmp_path):
    rows = [_row(0), _row(2), _row(1), _row(2), _row(3, v=0.0), _row(7)]  # out of order, dup, zero vol, gap
    p = _write(tmp_path / "BTCUSDT-1h.csv.gz", rows)
    report: list[str] = []
    k = read_klines(p, "BTCUSDT", "1h", report)
    assert list((k.open_time - T0) // H) == [0, 1, 2, 3, 7]
    text = "\n".join(report)
    assert "out of order (first at line 4); sorted" in text
    assert "1 exact duplicate row(s) dropped" in text
    assert "1 gap(s), 3 missing bar(s)" in text
    assert "1 zero-volume bar(s)" in text


def test_gap_makes_features_restart_not_wrong(tmp_path):
    from kaizen.models.features import FEATURE_NAMES, batch_features

    rows = [_row(i, c=100 + i) for i in range(40)] + [_row(i, c=300 + i) for i in range(45, 90)]
    _write(tmp_path / "futures/um/klines/ETHUSDT/1h/ETHUSDT-1h.csv.gz", rows)
    ds = load_dataset(tmp_path, ["ETHUSDT"])
    assert any("gap" in r for r in ds.report)
    bf = batch_features(ds)
    j = FEATURE_NAMES.index("mom_ret_1")
    after = int(np.flatnonzero(bf.open_time == T0 + 45 * H)[0])
    assert bf.status[after] == 1 and np.isnan(bf.X[after, j])  # not ln(300/139)
    assert np.isfinite(bf.X[after + 1, j])


def test_missing_data_dir_and_symbol(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        load_dataset(tmp_path / "nope", ["BTCUSDT"])
    with pytest.raises(DataError, match="no 1h klines for BTCUSDT"):
        load_dataset(tmp_path, ["BTCUSDT"])
