"""Deterministic client order ids.

The id is a function of (run id, symbol, decision id, sequence) only, never of the attempt, so a
request retried after a timeout carries the same id and the venue's duplicate-id check (plus our
query-by-id before resending) can never let it become a second order. Binance allows
`^[\\.A-Z\\:/a-z0-9_-]{1,36}$`; Bybit's orderLinkId allows 36 characters too.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "kz"
_VALID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def run_tag(run_id: str) -> str:
    """Eight url-safe characters naming the run; every client id of the run starts with kz<tag>.
    A `#<start>` suffix (kaizen.rundir.run_identity) names one process of the run: it changes the
    ids' digests, not the tag, so every process of the run recognises the others' orders."""
    return hashlib.blake2b(run_id.split("#", 1)[0].encode(), digest_size=6).hexdigest()[:8]


def make_client_id(run_id: str, symbol: str, decision_id: int, seq: int) -> str:
    """`kz` + run tag (8) + '-' + symbol hash (4) + '-' + seq (base36) + '-' + decision digest: <= 36 chars."""
    tag = run_tag(run_id)
    sym = hashlib.blake2b(symbol.encode(), digest_size=2).hexdigest()
    digest = hashlib.blake2b(f"{run_id}|{symbol}|{decision_id}|{seq}".encode(), digest_size=6).hexdigest()
    cid = f"{PREFIX}{tag}-{sym}-{_b36(seq)}-{digest}"[:36]
    assert _VALID.match(cid), cid
    return cid


def belongs_to_run(client_id: str, run_id: str) -> bool:
    return client_id.startswith(PREFIX + run_tag(run_id) + "-")


def is_valid(client_id: str) -> bool:
    return bool(_VALID.match(client_id))


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("sequence must be >= 0")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
