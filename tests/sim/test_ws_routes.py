"""The simulator's websocket entry points, read with real picows clients: each route serves its own
streams, a stream on the wrong route is acknowledged and silent (as Binance does), the unrouted
legacy paths carry public streams only, and the user-data stream lives on /private."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from tests.sim.helpers import BTC, admin, run, sim_and_client, wait_for


class Collector(WSListener):
    def __init__(self) -> None:
        self.msgs: list[Any] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.msgs.append(json.loads(frame.get_payload_as_bytes()))

    def events(self) -> list[dict[str, Any]]:
        out = []
        for m in self.msgs:
            d = m.get("data", m)
            if isinstance(d, dict) and "e" in d:
                out.append(d)
        return out

    def names(self) -> set[str]:
        return {m["stream"] for m in self.msgs if "stream" in m}


async def _open(url: str) -> tuple[WSTransport, Collector]:
    transport, listener = await ws_connect(Collector, url)
    return transport, listener


def _send(tr: WSTransport, method: str, params: list[str] | None, rid: int) -> None:
    req: dict[str, Any] = {"method": method, "id": rid}
    if params is not None:
        req["params"] = params
    tr.send(WSMsgType.TEXT, json.dumps(req).encode())


ALL = [
    "btcusdt@depth@100ms",
    "btcusdt@bookTicker",
    "btcusdt@trade",
    "btcusdt@aggTrade",
    "btcusdt@markPrice@1s",
]
PUBLIC = {"btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@trade"}
MARKET = {"btcusdt@aggTrade", "btcusdt@markPrice@1s"}


def test_each_route_serves_its_streams_and_acknowledges_the_rest_in_silence() -> None:
    async def go() -> None:
        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=4, speed=60.0)
        await sim.start()
        try:
            # every stream subscribed on every entry point, half by URL and half by SUBSCRIBE
            conns = {}
            for path in ("/public", "/market", ""):
                tr, col = await _open(f"{sim.ws_url}{path}/stream?streams={'/'.join(ALL[:2])}")
                _send(tr, "SUBSCRIBE", ALL[2:], 1)
                conns[path] = (tr, col)
            await asyncio.sleep(2.3)  # two markPrice@1s periods, ~20 market steps
            for tr, _ in conns.values():
                _send(tr, "LIST_SUBSCRIPTIONS", None, 2)
            await asyncio.sleep(0.2)
            for tr, _ in conns.values():
                tr.disconnect()
            got = {path: col.names() for path, (_, col) in conns.items()}
            assert got["/public"] == PUBLIC
            assert got["/market"] == MARKET
            assert got[""] == PUBLIC  # the unrouted path: public streams only, as Binance today
            for path, (_, col) in conns.items():
                replies = [m for m in col.msgs if "id" in m]
                assert {"result": None, "id": 1} in replies, path  # acknowledged, even where silent
                listed = next(m["result"] for m in replies if m["id"] == 2)
                assert sorted(listed) == sorted(ALL), path
        finally:
            await sim.stop()

    run(go())


@pytest.mark.parametrize("layout", ["legacy-public-only", "legacy"])
def test_legacy_layouts_refuse_the_routes_and_serve_the_unrouted_paths(layout: str) -> None:
    async def go() -> None:
        from picows import WSError

        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=4, speed=60.0, ws_layout=layout)
        await sim.start()
        try:
            for route in ("public", "market", "private"):
                with pytest.raises(WSError, match="404"):
                    await ws_connect(WSListener, f"{sim.ws_url}/{route}/ws/btcusdt@aggTrade")
            tr, col = await _open(f"{sim.ws_url}/stream?streams={'/'.join(ALL)}")
            await asyncio.sleep(2.3)
            tr.disconnect()
            assert col.names() == (PUBLIC if layout == "legacy-public-only" else PUBLIC | MARKET)
            assert sim.ws.refused_paths == 3
        finally:
            await sim.stop()

    run(go())


def test_user_data_on_private_in_both_url_forms_with_the_events_allow_list() -> None:
    async def go() -> None:
        async with sim_and_client() as (sim, ex):
            key = (await ex.fapiPrivatePostListenKey())["listenKey"]
            base = sim.ws_url
            socks = {
                "path": await _open(f"{base}/private/ws/{key}"),
                "query": await _open(f"{base}/private/ws?listenKey={key}"),
                "orders_only": await _open(f"{base}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE"),
                "combined": await _open(f"{base}/private/stream?listenKey={key}&events=ACCOUNT_UPDATE"),
                "unrouted": await _open(f"{base}/ws/{key}"),  # the decommissioned form: silent
                "public": await _open(f"{base}/public/ws/{key}"),  # wrong route: silent
            }
            await ex.create_order(BTC, "market", "buy", 0.004, None, {"newClientOrderId": "r-1"})
            await wait_for(lambda: "ACCOUNT_UPDATE" in [e["e"] for e in socks["path"][1].events()])
            # DELETE closes the stream: Binance pushes listenKeyExpired, then nothing more
            await ex.fapiPrivateDeleteListenKey()
            await wait_for(lambda: any(e["e"] == "listenKeyExpired" for e in socks["path"][1].events()))
            await ex.create_order(BTC, "market", "sell", 0.004, None, {"newClientOrderId": "r-2"})
            await asyncio.sleep(0.4)
            for tr, _ in socks.values():
                tr.disconnect()
            kinds = {name: [e["e"] for e in col.events()] for name, (_, col) in socks.items()}
            full = kinds["path"]
            assert "ORDER_TRADE_UPDATE" in full and "ACCOUNT_UPDATE" in full
            assert full[-1] == "listenKeyExpired"  # nothing of order r-2 after the key lapsed
            assert kinds["query"] == full
            # `events` is an allow list: it filters listenKeyExpired too
            assert kinds["orders_only"] == [k for k in full if k == "ORDER_TRADE_UPDATE"]
            assert kinds["combined"] == [k for k in full if k == "ACCOUNT_UPDATE"]
            assert {m["stream"] for m in socks["combined"][1].msgs} == {key}
            assert kinds["unrouted"] == [] and kinds["public"] == []
            # a keep-alive on a key the venue no longer has is -1125
            import ccxt

            with pytest.raises(ccxt.BaseError, match="-1125"):
                await ex.fapiPrivatePutListenKey()
            new = (await ex.fapiPrivatePostListenKey())["listenKey"]
            assert new != key
            ops = [x["op"] for x in await admin(sim, "GET", "/_sim/listen_key_log")]
            assert ops == ["POST", "DELETE", "expired", "PUT", "POST"]

    run(go())


def test_listen_key_lapses_without_keepalive_and_lives_with_it() -> None:
    async def go() -> None:
        async with sim_and_client(listen_key_ttl_s=0.6) as (sim, ex):
            key = (await ex.fapiPrivatePostListenKey())["listenKey"]
            tr, col = await _open(f"{sim.ws_url}/private/ws?listenKey={key}")
            for _ in range(4):  # 1.2 s of keep-alives every 0.3 s: still alive
                await asyncio.sleep(0.3)
                await ex.fapiPrivatePutListenKey()
            assert col.events() == []
            await wait_for(lambda: col.events(), timeout=3)  # no more PUTs: it lapses within the TTL
            tr.disconnect()
            assert col.events() == [{"e": "listenKeyExpired", "E": col.events()[0]["E"], "listenKey": key}]

    run(go())


def test_sim_cli_ws_layout_flag() -> None:
    import signal
    import urllib.request

    from tests.sim.test_sim_cli import _spawn

    proc = _spawn("--ws-layout", "legacy-public-only")
    try:
        fields = dict(p.split("=", 1) for p in proc.stdout.readline().split()[1:])
        with urllib.request.urlopen(fields["rest"] + "/_sim/state", timeout=10) as r:
            assert json.load(r)["wsLayout"] == "legacy-public-only"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    bad = _spawn("--ws-layout", "public")
    out, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--ws-layout" in err and "routed" in err
