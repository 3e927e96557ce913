"""A running paper engine (`kaizen run`, simulator started by the runner): /metrics parses with
prometheus_client's own parser, `kaizen status` prints it, SIGHUP applies safe changes and refuses
unsafe ones, each logged in the lineage."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kaizen.lineage.reader import LineageReader
from tests.conftest import run_kaizen
from tests.ops._proc import EngineProc, write_config


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("endpoint")
    # the event loop goes to the last core; with two or more, the other threads to the rest
    pin = max(os.sched_getaffinity(0))
    conf = write_config(tmp / "paper.toml", tmp / "run", speed=600.0, extra=f"cpu_pin = {pin}")
    eng = EngineProc(conf)
    eng.pin = pin
    eng.wait_ready()
    eng.conf, eng.run_dir = conf, tmp / "run"
    yield eng
    try:  # SIGINT stops like SIGTERM; a second signal while stopping is only acknowledged
        eng.signal(signal.SIGINT)
        eng.wait_line(r"SIGINT: stopping", 20)
        if eng.proc.poll() is None:
            eng.signal(signal.SIGTERM)
        assert eng.proc.wait(timeout=60) == 0, eng.stderr[-2000:]
    finally:
        eng.kill()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def _families(url: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(_get(url + "/metrics").decode())}


def test_metrics_parse_with_prometheus_parser(engine):
    deadline = time.monotonic() + 30
    while True:  # until market data and at least one bar have flowed
        fams = _families(engine.url)
        msgs = {
            s.labels["type"]: s.value for s in fams["kaizen_messages"].samples if s.name.endswith("_total")
        }
        bars = fams["kaizen_bars"].samples[0].value
        if msgs.get("all", 0) > 0 and bars > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert msgs["all"] > 0 and msgs["depthUpdate"] > 0, msgs
    assert bars > 0
    for stage in ("message", "bar", "order", "tick_to_order", "gc"):
        fam = fams[f"kaizen_stage_{stage}_seconds"]
        assert fam.type == "histogram"
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    msg = fams["kaizen_stage_message_seconds"]
    count = next(s.value for s in msg.samples if s.name.endswith("_count"))
    total = next(s.value for s in msg.samples if s.name.endswith("_sum"))
    assert count > 0 and 0 < total / count < 0.1  # a message takes µs, not a tenth of a second
    for name in ("kaizen_orders", "kaizen_order_rejects", "kaizen_resyncs", "kaizen_kill_switch",
                 "kaizen_position", "kaizen_pnl_usdt", "kaizen_last_message_age_seconds",
                 "kaizen_drift_statistic"):  # fmt: skip
        assert name in fams, name
    assert fams["kaizen_kill_switch"].samples[0].value == 0.0
    ages = fams["kaizen_last_message_age_seconds"].samples
    assert {s.labels["symbol"] for s in ages} == {"BTCUSDT", "ETHUSDT"}
    assert all(0 <= s.value < 30 for s in ages)


def test_status_json_and_kaizen_status_table(engine):
    st = json.loads(_get(engine.url + "/status"))
    assert st["mode"] == "paper" and st["symbols"]
    assert set(st["positions"]) == {"BTCUSDT", "ETHUSDT"}
    assert st["kill_switch"]["halted"] is False
    assert st["models"]["signal"]["champion"].startswith("baseline_momentum")
    assert st["risk"]["limits"]["max_open_orders"] == 8
    res = run_kaizen("status", engine.url, timeout=30)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for needle in ("positions", "BTCUSDT", "ETHUSDT", "kill switch: armed", "last message age", "latency",
                   "models", "pnl (USDT)", "DepthUpdate"):  # fmt: skip
        assert needle in out, needle
    # the run directory works as well as the URL; a dead URL is one line
    assert run_kaizen("status", str(engine.run_dir), timeout=30).returncode == 0
    bad = run_kaizen("status", "http://127.0.0.1:9", timeout=30)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_sighup_applies_safe_changes_and_refuses_unsafe_ones(engine):
    text = engine.conf.read_text()
    engine.conf.write_text(text.replace("max_open_orders = 8", "max_open_orders = 3"))
    engine.signal(signal.SIGHUP)
    engine.wait_line(r"SIGHUP: config reloaded: risk\.max_open_orders: 8 -> 3", 20)
    st = json.loads(_get(engine.url + "/status"))
    assert st["risk"]["limits"]["max_open_orders"] == 3

    engine.conf.write_text(
        text.replace("max_open_orders = 8", "max_open_orders = 5").replace(
            '"ETHUSDT"]', '"ETHUSDT", "SOLUSDT"]'
        )
    )
    engine.signal(signal.SIGHUP)
    m = engine.wait_line(r"SIGHUP: reload refused: (.*)", 20)
    assert "symbols" in m.group(1) and "nothing applied" in m.group(1)
    st = json.loads(_get(engine.url + "/status"))
    assert st["risk"]["limits"]["max_open_orders"] == 3  # all or nothing
    assert st["symbols"] == ["BTCUSDT", "ETHUSDT"]

    engine.conf.write_text(text.replace("max_open_orders = 8", "max_open_orders = 0"))
    engine.signal(signal.SIGHUP)
    m = engine.wait_line(r"SIGHUP: reload refused: .*max_open_orders", 20)
    engine.conf.write_text(text)

    fams = _families(engine.url)
    rel = {
        s.labels["result"]: s.value
        for s in fams["kaizen_config_reloads"].samples
        if s.name.endswith("_total")
    }
    assert rel == {"applied": 1.0, "refused": 2.0}
    # in the lineage, once the engine has flushed (the writer's interval is 50 ms)
    time.sleep(0.5)
    recs = list(LineageReader(engine.run_dir / "lineage").records(types="risk"))
    kinds = [(r.kind, r.detail) for r in recs if r.kind.startswith("config_reload")]
    assert ("config_reload", "risk.max_open_orders: 8 -> 3") in kinds
    assert any(k == "config_reload_refused" and "symbols" in d for k, d in kinds)


def _allowed(pid: int, tid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        line = next(x for x in f if x.startswith("Cpus_allowed_list:"))
    out: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        a, _, b = part.partition("-")
        out |= set(range(int(a), int(b or a) + 1))
    return out


def test_loop_thread_pinned_other_threads_elsewhere_and_gc_scheduled(engine):
    pid = engine.proc.pid
    assert _allowed(pid, pid) == {engine.pin}  # the event loop (main thread): the hot path
    others = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert others  # the lineage writer at least
    if len(os.sched_getaffinity(0)) > 1:
        # the lineage writer (framing, compression, disk) existed at pinning time: not on the loop's core
        assert any(engine.pin not in _allowed(pid, t) for t in others)
    engine.wait_line(r"gc: \d+ start-up objects frozen; automatic collection off", 1)
    deadline = time.monotonic() + 10
    while (st := json.loads(_get(engine.url + "/status")))["gc"][
        "collections"
    ] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert st["gc"]["collections"] >= 2  # the scheduled collections run
    assert st["latency_us"]["gc"]["n"] >= 2
