"""The report renders in a real browser with no network: headless Chromium (Debian's package,
installed here if absent) driven over the DevTools protocol, every request sent to a dead proxy,
console messages, uncaught exceptions and failed loads collected, and the rendered page checked for
the charts plotly draws (they exist only if its inline JS ran)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    res = subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, timeout=900, env=env
    )
    if res.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=900, env=env)
        res = subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
    assert shutil.which("chromium"), f"could not install chromium: {res.stderr[-500:]}"
    return shutil.which("chromium")


async def _render(exe: str, url: str, profile: str) -> tuple[list[str], int, bool]:
    import aiohttp

    proc = await asyncio.create_subprocess_exec(
        exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
            assert line, "chromium exited before it listened"
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(m[1]) if m else None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                page = next(t for t in await r.json() if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                errors: list[str] = []
                seq = 0

                async def call(method: str, **params) -> dict:
                    nonlocal seq
                    seq += 1
                    mine = seq
                    await ws.send_str(json.dumps({"id": mine, "method": method, "params": params}))
                    while True:
                        msg = json.loads((await asyncio.wait_for(ws.receive(), 60)).data)
                        _note(msg, errors)
                        if msg.get("id") == mine:
                            return msg

                for domain in ("Runtime", "Log", "Page", "Network"):
                    await call(f"{domain}.enable")
                await call("Page.navigate", url=url)
                loaded = False
                deadline = asyncio.get_running_loop().time() + 120
                while not loaded and asyncio.get_running_loop().time() < deadline:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), 120)).data)
                    _note(msg, errors)
                    loaded = msg.get("method") == "Page.loadEventFired"
                await asyncio.sleep(2.0)  # let plotly finish drawing
                res = await call(
                    "Runtime.evaluate", expression="document.querySelectorAll('.main-svg').length"
                )
                n_svg = int(res["result"]["result"]["value"])
                res = await call("Runtime.evaluate", expression="document.body.innerText.includes('Trades')")
                return errors, n_svg, bool(res["result"]["result"]["value"])
    finally:
        proc.kill()
        await proc.wait()


def _note(msg: dict, errors: list[str]) -> None:
    m, p = msg.get("method"), msg.get("params", {})
    if m == "Runtime.exceptionThrown":
        errors.append(
            f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {}).get('description', '')[:200]}"
        )
    elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        errors.append(
            f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}"
        )
    elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
        errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    elif m == "Network.loadingFailed":
        errors.append(f"network: {p.get('errorText')} (request {p.get('requestId')})")
    elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(
        ("file:", "data:", "about:", "blob:")
    ):
        errors.append(f"network request: {p['request']['url'][:200]}")


def test_the_harness_sees_errors_and_requests(tmp_path):
    """The check can fail: a page with an uncaught error and a remote script is caught twice over."""
    exe = _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><script>undefined_fn();</script><script src="https://cdn.example/x.js"></script></body></html>'
    )
    errors, n_svg, _ = asyncio.run(_render(exe, bad.as_uri(), str(tmp_path / "p")))
    assert any("undefined_fn" in e for e in errors) and any("cdn.example" in e for e in errors), errors
    assert n_svg == 0


def test_report_renders_offline_without_console_errors(bt_run, tmp_path):
    exe = _chromium()
    errors, n_svg, has_trades = asyncio.run(
        _render(exe, (bt_run / "report.html").as_uri(), str(tmp_path / "p"))
    )
    assert not errors, "\n".join(errors[:10])
    assert n_svg >= 4  # plotly drew every figure: its inline JS ran with no network
    assert has_trades
