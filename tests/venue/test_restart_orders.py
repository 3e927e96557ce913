"""Idempotency across a real crash: a process of a run leaves a resting order and is SIGKILLed; the
next start of the same run (identity persisted in the run directory) recognises the order as its
own and cancels it, leaves another run's order alone, and never reuses a client order id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request

from kaizen import rundir
from kaizen.engine.runner import SimProcess
from kaizen.risk import RiskManager
from kaizen.venue import make_venue
from kaizen.venue.router import OrderRouter
from tests.conftest import REPO
from tests.venue.harness import KEY_ENV, SECRET_ENV, JsonlLineage, fresh, make_cfg

SYM = "BTCUSDT"

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from kaizen import rundir
    from kaizen.risk import RiskManager
    from kaizen.venue import make_venue
    from kaizen.venue.router import OrderRouter
    from tests.venue.harness import JsonlLineage, make_cfg

    async def main(url, state, mark):
        cfg = make_cfg(["BTCUSDT"])
        venue = make_venue(cfg, rest_url=url)
        await venue.connect()
        bal = await venue.fetch_balance()
        router = OrderRouter(venue, RiskManager(cfg.risk, equity=bal.equity),
                             JsonlLineage(state / "child.jsonl"), ["BTCUSDT"],
                             run_id=rundir.run_identity(state), order_type="limit")
        await router.start()
        q = venue.markets["BTCUSDT"].round_qty(500.0 / mark)
        now = time.time_ns() // 1_000_000
        out = await router.set_target("BTCUSDT", q, mark * 0.99, mark, [7], data_ts_ms=now)
        print("placed", out[0].client_order_id, out[0].status, flush=True)
        await asyncio.sleep(3600)

    from pathlib import Path
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
    """
)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_killed_process_orders_are_cancelled_by_the_next_start(tmp_path):
    key, secret = "restart-key-01", "restart-secret-01"
    os.environ[KEY_ENV], os.environ[SECRET_ENV] = key, secret
    sim = SimProcess(3, 60.0, key, secret, log_path=tmp_path / "sim.log")
    state = tmp_path / "run"
    state.mkdir()
    try:
        mark = float(_get(sim.rest_url + "/_sim/state")["markets"][SYM]["mark"])
        env = dict(os.environ, PYTHONPATH=str(REPO))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, sim.rest_url, str(state), str(mark)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = child.stdout.readline().split()
        assert line[:1] == ["placed"], child.stderr.read() if child.poll() is not None else line
        cid, status = line[1], line[2]
        assert status == "accepted"  # resting 1 % below the market
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        child.stderr.close()

        async def restart():
            cfg = make_cfg([SYM])
            venue = make_venue(cfg, rest_url=sim.rest_url)
            await venue.connect()
            try:
                # another run's order on the same account: not ours, left alone
                other = await venue.place_order(
                    SYM, "buy", venue.markets[SYM].round_qty(300.0 / mark), client_order_id="other-run-1",
                    order_type="limit", price=venue.markets[SYM].round_price(mark * 0.97, "buy"),
                )  # fmt: skip
                assert {o.client_order_id for o in await venue.fetch_open_orders(SYM)} == {
                    cid,
                    other.client_order_id,
                }
                bal = await venue.fetch_balance()
                lineage = JsonlLineage(tmp_path / "restart.jsonl")
                router = OrderRouter(
                    venue, RiskManager(cfg.risk, equity=bal.equity), lineage, [SYM],
                    run_id=rundir.run_identity(state),
                )  # fmt: skip
                await router.start()
                left = [o.client_order_id for o in await venue.fetch_open_orders(SYM)]
                assert cid not in left and left == ["other-run-1"]
                assert router.adopted_at_start == 1
                # the new process's ids never collide with the killed one's
                q = venue.markets[SYM].round_qty(500.0 / mark)
                await router.set_target(SYM, q, mark, mark, [7], data_ts_ms=fresh())
                return router, lineage
            finally:
                await venue.cancel_order(SYM, "other-run-1", "")
                await venue.close()

        router, lineage = asyncio.run(asyncio.wait_for(restart(), 60))
        lineage.close()
        orders = _get(sim.rest_url + "/_sim/orders")
        ids = [o["params"].get("newClientOrderId") for o in orders if o.get("accepted")]
        assert len(ids) == len(set(ids)), "a client order id was reused"
        assert json.loads((state / rundir.RUN_FILE).read_text())["starts"] == 2
    finally:
        sim.stop()

