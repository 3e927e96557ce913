"""Plain-Python reference of `kaizen.ext.msgsplit` (the frame pre-filter), byte-for-byte the same
format. Tests run both against each other; it is ~100x slower and never on the write path."""

from __future__ import annotations

import struct

TBITS = 13
MAXE = 12
RAW_RETRY = 16
MAXDEPTH = 64
SEED = 0x243F6A8885A308D3
GOLD = 0x9E3779B97F4A7C15
MIX = 0xBF58476D1CE4E5B9
LIMIT = 9.0e15
DLIM = 1 << 60
M64 = (1 << 64) - 1
P10 = [10.0**e for e in range(MAXE + 1)]
CTX_KEYS = {b"type", b"role", b"side", b"symbol", b"model"}
_D = struct.Struct(">d")
_Q = struct.Struct(">Q")


class Malformed(ValueError):
    pass


def _mix_str(h: int, s: bytes) -> int:
    h = ((h ^ len(s)) * GOLD) & M64
    for i in range(0, len(s), 8):
        c = int.from_bytes(s[i : i + 8], "little")
        h = ((h ^ c) * GOLD) & M64
        h ^= h >> 31
    return h


def _zz(d: int) -> int:
    d &= M64
    s = d - (1 << 64) if d >> 63 else d
    return ((s << 1) ^ (s >> 63)) & M64


def _unzz(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _decimal(v: float, e: int) -> int | None:
    x = v * P10[e]
    if not abs(x) < LIMIT:
        return None
    m = int(x + 0.5) if x >= 0 else int(x - 0.5)
    if _D.pack(m / P10[e]) != _D.pack(v):
        return None
    return m


def _token(b: bytes, p: int) -> tuple[int, int, int, int]:
    """(kind, head, body, items) with kind 0 scalar, 1 array, 2 map, 3 str, 4 8-byte number."""
    t = b[p]
    if t <= 0x7F or t >= 0xE0 or t in (0xC0, 0xC2, 0xC3):
        return 0, 1, 0, 0
    if t <= 0x8F:
        return 2, 1, 0, (t & 0xF) * 2
    if t <= 0x9F:
        return 1, 1, 0, t & 0xF
    if t <= 0xBF:
        return 3, 1, t & 0x1F, 0
    if t in (0xCB, 0xCF, 0xD3):
        return 4, 1, 8, 0
    fixed = {0xCA: 4, 0xCE: 4, 0xD2: 4, 0xCC: 1, 0xD0: 1, 0xCD: 2, 0xD1: 2}
    if t in fixed:
        return 0, 1, fixed[t], 0
    if 0xD4 <= t <= 0xD8:
        return 0, 2, 1 << (t - 0xD4), 0
    sizes = {0xC4: 1, 0xD9: 1, 0xC7: 1, 0xC5: 2, 0xDA: 2, 0xDC: 2, 0xDE: 2, 0xC8: 2}
    sizes.update({0xC6: 4, 0xDB: 4, 0xDD: 4, 0xDF: 4, 0xC9: 4})
    if t not in sizes:
        raise Malformed("0xc1")
    k = sizes[t]
    if p + 1 + k > len(b):
        raise Malformed("truncated head")
    n = int.from_bytes(b[p + 1 : p + 1 + k], "big")
    head = 1 + k + (1 if t in (0xC7, 0xC8, 0xC9) else 0)
    if t in (0xDC, 0xDD):
        return 1, head, 0, n
    if t in (0xDE, 0xDF):
        return 2, head, 0, 2 * n
    return (3 if t in (0xD9, 0xDA, 0xDB) else 0), head, n, 0


def _int_value(b: bytes, p: int, body: int) -> int:
    t = b[p]
    if t <= 0x7F:
        return t
    if t >= 0xE0:
        return t - 256
    if t in (0xCC, 0xCD, 0xCE, 0xCF):
        return int.from_bytes(b[p + 1 : p + 1 + body], "big")
    if t in (0xD0, 0xD1, 0xD2, 0xD3):
        return int.from_bytes(b[p + 1 : p + 1 + body], "big", signed=True)
    return 0


class _Walker:
    """Record/key bookkeeping shared by split and join (context, slot choice)."""

    def __init__(self) -> None:
        self.table: dict[int, list[int]] = {}  # slot -> [prev, e, miss]
        self.depth = 0
        self.rem = [0] * MAXDEPTH
        self.records = 0

    def start(self) -> None:
        self.ctx, self.ordinal, self.ts, self.idx1, self.want, self.rec_map = SEED, 0, 0, 0, 0, False

    def slot(self) -> list[int]:
        self.ordinal += 1
        h = (self.ctx + self.ordinal * GOLD) & M64
        h ^= h >> 29
        h = (h * MIX) & M64
        return self.table.setdefault(h >> (64 - TBITS), [0, 0, 0])

    def item(self) -> tuple[bool, bool]:
        if self.depth:
            self.rem[self.depth] -= 1
        at1 = self.depth == 1 and self.rec_map
        is_key = False
        if at1:
            is_key = self.idx1 % 2 == 0
            self.idx1 += 1
        return at1, is_key

    def see_str(self, at1: bool, is_key: bool, kind: int, s: bytes) -> None:
        if not at1:
            return
        if is_key:
            self.want = (2 if s == b"ts" else 1 if s in CTX_KEYS else 0) if kind == 3 else 0
        elif self.want == 1 and kind == 3:
            self.ctx = _mix_str(self.ctx, s)

    def push_pop(self, kind: int, items: int) -> bool:
        """Returns True when a record ended."""
        if kind in (1, 2) and items:
            if self.depth + 1 >= MAXDEPTH:
                raise Malformed("too deep")
            self.depth += 1
            self.rem[self.depth] = items
            if self.depth == 1:
                self.rec_map = kind == 2
        while self.depth and self.rem[self.depth] == 0:
            self.depth -= 1
        if self.depth == 0:
            self.records += 1
            return True
        return False


def split(parts: list[bytes]) -> tuple[bytes, int, int, int, int] | None:
    w = _Walker()
    skel, nums = bytearray(), bytearray()
    tss: list[int] = []
    held: list[tuple[int, bytes]] = []
    try:
        for b in parts:
            p = 0
            while p < len(b):
                if w.depth == 0:
                    w.start()
                at1, is_key = w.item()
                kind, head, body, items = _token(b, p)
                if p + head + body > len(b):
                    raise Malformed("truncated")
                if kind == 4:
                    skel.append(b[p])
                    held.append((b[p], b[p + 1 : p + 9]))
                else:
                    skel += b[p : p + head + body]
                w.see_str(at1, is_key, kind, b[p + head : p + head + body])
                if at1 and not is_key and w.want == 2 and kind in (0, 4) and b[p] != 0xCB:
                    w.ts = _int_value(b, p, body)
                    if w.ts >= 1 << 63:
                        w.ts -= 1 << 64
                p += head + body
                if w.push_pop(kind, items):
                    for tag, raw in held:  # coded once the record's whole context is known
                        nums += _put_number(w.slot(), tag, raw)
                    held.clear()
                    tss.append(w.ts)
            if w.depth:
                raise Malformed("record spans parts")
    except (Malformed, IndexError):
        return None
    out = len(skel).to_bytes(4, "little") + bytes(skel) + bytes(nums)
    return out, len(tss), min(tss, default=0), max(tss, default=0), sum(map(len, parts))


def _put_number(sl: list[int], tag: int, raw: bytes) -> bytes:
    bits = _Q.unpack(raw)[0]
    if tag != 0xCB:
        out = _varint(_zz(bits - sl[0]))
        sl[0] = bits
        return out
    (v,) = _D.unpack(raw)
    if sl[1] >= 0:
        n = _decimal(v, sl[1])
        if n is not None:
            d = n - (sl[0] - (1 << 64) if sl[0] >> 63 else sl[0])
            d = ((d + (1 << 63)) & M64) - (1 << 63)
            if -DLIM < d < DLIM:
                sl[0] = n & M64
                return _varint(_zz(d) << 1)
    else:
        sl[2] += 1
        if sl[2] % RAW_RETRY:
            return b"\x01" + raw
    for e in range(MAXE + 1):
        n = _decimal(v, e)
        if n is not None:
            sl[0], sl[1] = n & M64, e
            return _varint(((e + 1) << 1) | 1) + _varint(_zz(n))
    sl[1], sl[2] = -1, 0
    return b"\x01" + raw


def join(data: bytes, raw_length: int, count: int) -> bytes:
    if len(data) < 4 or raw_length < 5:
        raise ValueError("split frame: too short")
    k = int.from_bytes(data[:4], "little")
    if k > len(data) - 4:
        raise ValueError("split frame: skeleton length past the end")
    skel, nums = data[4 : 4 + k], data[4 + k :]
    out = bytearray(b"\xdd" + count.to_bytes(4, "big"))
    w = _Walker()
    p = q = 0
    holes: list[tuple[int, int]] = []
    try:
        while p < len(skel):
            if w.depth == 0:
                w.start()
            at1, is_key = w.item()
            kind, head, body, items = _token(skel, p)
            if kind == 4:
                out.append(skel[p])
                holes.append((skel[p], len(out)))
                out += bytes(8)
                w.see_str(at1, is_key, kind, b"")
                p += 1
            else:
                if p + head + body > len(skel):
                    raise Malformed("truncated")
                out += skel[p : p + head + body]
                w.see_str(at1, is_key, kind, skel[p + head : p + head + body])
                p += head + body
            if w.push_pop(kind, items):
                for tag, at in holes:
                    out[at : at + 8], q = _get_number(w.slot(), tag, nums, q)
                holes.clear()
    except (Malformed, IndexError):
        raise ValueError("split frame: skeleton and numbers do not decode to the frame's records") from None
    if w.depth or q != len(nums) or len(out) != raw_length or w.records != count:
        raise ValueError("split frame: skeleton and numbers do not decode to the frame's records")
    return bytes(out)


def _get_varint(b: bytes, q: int) -> tuple[int, int]:
    v = shift = 0
    while shift < 64:
        c = b[q]
        v |= (c & 0x7F) << shift
        q += 1
        if c < 0x80:
            return v & M64, q
        shift += 7
    raise Malformed("varint")


def _get_number(sl: list[int], tag: int, b: bytes, q: int) -> tuple[bytes, int]:
    c, q = _get_varint(b, q)
    if tag != 0xCB:
        sl[0] = (sl[0] + _unzz(c)) & M64
        return _Q.pack(sl[0]), q
    if c & 1 == 0:
        if sl[1] < 0:
            raise Malformed("delta on a raw slot")
        n = (sl[0] + _unzz(c >> 1)) & M64
    elif c == 1:
        if q + 8 > len(b):
            raise Malformed("truncated raw")
        sl[1] = -1
        return b[q : q + 8], q + 8
    else:
        e = (c >> 1) - 1
        if e > MAXE:
            raise Malformed("exponent")
        z, q = _get_varint(b, q)
        n = _unzz(z) & M64
        sl[1] = e
    sl[0] = n
    signed = n - (1 << 64) if n >> 63 else n
    return _D.pack(float(signed) / P10[sl[1]]), q
