"""Secrets hygiene: the API key and secret come only from the environment variables the config names,
and appear nowhere a run writes: lineage, log files (DEBUG, including ccxt's request logging and its
`verbose` printing), console output, the halt file, exception messages of a failed auth, reprs.
A run with orders, faults, a rejected order and a kill switch is made, then everything is grepped."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from kaizen.config import Config, VenueConfig
from kaizen.venue import make_venue
from kaizen.venue.base import OrderRejected, VenueError
from tests.venue.harness import KEY_ENV, SECRET_ENV, Session, fresh

SYM = "BTCUSDT"


def grep(paths, texts, needle: str) -> list[str]:
    hits = [str(p) for p in paths if needle.encode() in p.read_bytes()]
    hits += [f"text#{i}" for i, t in enumerate(texts) if needle in t]
    return hits


def test_key_and_secret_never_written(tmp_path, capfd, monkeypatch):
    key = "KZKEY" + secrets.token_hex(12)
    secret = "KZSEC" + secrets.token_hex(24)
    handler = logging.FileHandler(tmp_path / "run.log")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    errors: list[str] = []

    async def go():
        async with Session(tmp_path, [SYM], key=key, secret=secret, daily_loss_limit=20.0) as s:
            assert key not in repr(s.venue) and secret not in repr(s.venue)
            s.venue.ex.verbose = True  # ccxt prints every request with its headers
            p0 = s.mark(SYM)
            s.sim.script_price({"symbol": SYM, "price": p0})
            s.sim.set_faults({"rest_5xx": 1, "rest_429": 1, "retry_after_s": 0, "paths": ["/fapi/v1/order"]})
            q = s.venue.markets[SYM].round_qty(1_500.0 / p0)
            await s.router.set_target(SYM, q, p0, p0, parents=[1], data_ts_ms=fresh())
            await s.router.poll()
            s.venue.ex.verbose = False
            # a venue refusal (below min notional is refused by the venue's filters)
            try:
                await s.venue.place_order(
                    SYM, "buy", 0.001, client_order_id="kzsecret-test-1", order_type="limit", price=1.0
                )
            except (OrderRejected, VenueError) as exc:
                errors.append(str(exc))
            # a kill switch (console line, halt file, RiskEvent)
            s.sim.script_price({"symbol": SYM, "price": p0 * 0.97})
            await s.router.poll()
            assert s.risk.halted
            await s.router.stop()
            assert len(s.accepted()) >= 2  # the key authenticated real orders
        # the wrong secret: the venue says so, without echoing either credential
        monkeypatch.setenv(SECRET_ENV, "WRONG" + secret[5:])
        cfg = Config(symbols=[SYM], venue=VenueConfig(api_key_env=KEY_ENV, api_secret_env=SECRET_ENV))
        from kaizen.venue.sim import Simulator

        sim = Simulator(seed=7, speed=60.0, symbols=(SYM,), api_key=key, api_secret=secret)
        await sim.start()
        v = make_venue(cfg, rest_url=sim.rest_url)
        v.ex.enableRateLimit = False
        try:
            await v.connect()
            with pytest.raises((OrderRejected, VenueError)) as ei:
                await v.place_order(SYM, "buy", 0.01, client_order_id="kzsecret-test-2")
            errors.append(str(ei.value))
            errors.append(repr(ei.value))
        finally:
            await v.close()
            await sim.stop()

    try:
        asyncio.run(asyncio.wait_for(go(), 120))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    (tmp_path / "errors.txt").write_text("\n".join(errors))
    out = capfd.readouterr()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"lineage.jsonl", "run.log", "risk_halt.json", "errors.txt"} <= names
    assert "signature" in " ".join(errors).lower() or "-1022" in " ".join(errors)
    texts = [out.out, out.err]
    assert "KILL SWITCH" in out.err and "fetch Request" in out.out  # verbose printing really happened
    assert (tmp_path / "run.log").stat().st_size > 10_000  # ccxt's DEBUG request logging really happened
    assert grep(files, texts, key) == []
    assert grep(files, texts, secret) == []
    # the grep can fail: a planted copy is found
    (tmp_path / "control.txt").write_text(f"x {key} y")
    assert grep([tmp_path / "control.txt"], [], key) == [str(tmp_path / "control.txt")]
