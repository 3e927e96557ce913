"""The pure parts of kaizen.ops: reload planning, stage histograms and their quantiles, the HTTP
handler on a real socket, the status table."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kaizen import config
from kaizen.ops import reload as rl
from kaizen.ops.metrics import BUCKETS_S, RING, EngineMetrics, StageTimes
from kaizen.ops.server import StatusServer
from kaizen.ops.status import format_status


def _cfg(**risk) -> config.Config:
    c = config.Config()
    return msgspec.structs.replace(c, risk=msgspec.structs.replace(c.risk, **risk)) if risk else c


def test_reload_plan_separates_safe_from_unsafe_keys():
    old = _cfg()
    p = rl.plan(old, _cfg(max_open_orders=3, daily_loss_limit=50.0))
    assert p.ok and set(p.changes) == {"risk.max_open_orders", "risk.daily_loss_limit"}
    assert "risk.max_open_orders: 8 -> 3" in p.describe()
    assert rl.plan(old, old).changes == {}
    bad = rl.plan(old, _cfg(capital=5000.0))  # the sizing capital is fixed for a run
    assert not bad.ok and bad.unsafe == ["risk.capital"]
    moved = msgspec.structs.replace(
        old, symbols=["BTCUSDT"], strategy=msgspec.structs.replace(old.strategy, entry_z=2.0)
    )
    p = rl.plan(old, moved)
    assert p.unsafe == ["symbols"] and "strategy.entry_z" in p.changes


def test_reload_apply_reaches_the_objects_that_read_the_config():
    from kaizen.engine.strategies import BaselineMomentum

    class Obj:
        pass

    eng = Obj()
    eng.risk, eng.router = Obj(), Obj()
    eng.strategy = BaselineMomentum(config.Config().strategy)
    new = _cfg(max_open_orders=2)
    new = msgspec.structs.replace(
        new, strategy=msgspec.structs.replace(new.strategy, entry_z=3.5, rebalance_band=0.1)
    )
    rl.apply(eng, new)
    assert eng.cfg is new and eng.risk.cfg.max_open_orders == 2
    assert eng.strategy.entry_z == 3.5 and eng.router.rebalance_band == 0.1


def test_stage_histogram_counts_sum_and_ring_quantiles():
    st = StageTimes("x", "test")
    rng = np.random.default_rng(1)
    a = rng.integers(500, 5_000_000, size=3 * RING + 17)  # ns
    for v in a:
        st.add(int(v))
    st.fold()
    assert st.n == len(a) and st.sum_ns == int(a.sum()) and st.max_ns == int(a.max())
    assert int(st.counts.sum()) == len(a)
    edges = np.array(BUCKETS_S) * 1e9
    assert st.counts[0] == int((a <= edges[0]).sum())
    assert st.counts[5] == int(((a > edges[4]) & (a <= edges[5])).sum())
    # the ring keeps the most recent RING samples, in any order
    assert sorted(st.recent().tolist()) == sorted(a[-RING:].tolist())
    q = st.quantiles((0.5, 0.99))
    assert q["p50"] == pytest.approx(np.quantile(a[-RING:], 0.5) / 1e3)
    # the bound `add` survives folds
    st.add(1_000)
    st.fold()
    assert st.n == len(a) + 1


def test_metrics_render_parses_without_an_engine():
    m = EngineMetrics()
    m.stage("message").add(1500)
    m.stage("message").add(2500)
    fams = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    h = fams["kaizen_stage_message_seconds"]
    count = next(s.value for s in h.samples if s.name.endswith("_count"))
    assert count == 2
    le2 = next(s.value for s in h.samples if s.name.endswith("_bucket") and s.labels["le"] == "2e-06")
    assert le2 == 1
    m.update_rates({"messages": 10.0}, now=100.0)
    m.update_rates({"messages": 40.0}, now=102.0)
    assert m.rates == {"messages": 15.0}


def test_http_handler_answers_status_metrics_and_errors():
    async def main():
        srv = StatusServer(lambda: {"ok": 1}, lambda: b"m 1\n", port=0)
        await srv.start()

        async def get(path: str, method: str = "GET") -> bytes:
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await r.read()
            w.close()
            return data

        try:
            return [
                await get("/status"),
                await get("/metrics"),
                await get("/nope"),
                await get("/status", "POST"),
            ]
        finally:
            await srv.stop()

    st, me, nf, post = asyncio.run(main())
    assert st.startswith(b"HTTP/1.1 200") and st.endswith(b'{"ok":1}') and b"application/json" in st
    assert me.startswith(b"HTTP/1.1 200") and b"text/plain; version=" in me and me.endswith(b"m 1\n")
    assert nf.startswith(b"HTTP/1.1 404") and post.startswith(b"HTTP/1.1 405")


def test_status_table_shows_halt_and_tolerates_missing_fields():
    text = format_status({"mode": "live", "kill_switch": {"halted": True, "reason": "daily loss"}})
    assert "HALTED: daily loss" in text and "positions" in text and "(none)" in text
