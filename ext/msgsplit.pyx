# cython: language_level=3
"""Lossless pre-filter for a lineage frame's msgpack records, run before zstd.

Why: records are ~20 keys and strings that repeat exactly (zstd's meat) interleaved with 8-byte
numbers that change every record (zstd's poison: each one breaks a match and costs literals).
`split` walks the msgpack tokens once and writes two streams:

  skeleton  every byte except the 8-byte payloads of float64 (0xcb), uint64 (0xcf), int64 (0xd3);
            the type byte stays, so the skeleton is itself a token stream the decoder can walk.
  numbers   those payloads, each coded against the previous number in its slot:
            slot = hash(record context, ordinal of the number in the record), context = the string
            values of the record's top-level "type", "symbol", "model", "role", "side" keys, so a
            BTCUSDT decision's bid is coded against the last BTCUSDT decision's bid. A record's
            numbers are coded after its last token, in order, once its context is known.
            float  as a decimal n/10^e when that round-trips bit for bit (ticks, rounded prices):
                   varint(zigzag(n - prev) << 1) when e is the slot's, varint(((e+1) << 1) | 1) +
                   varint(zigzag(n)) when e changes, varint(1) + 8 raw bytes otherwise (NaN, -0.0,
                   inf, full-precision values).
            ints   varint(zigzag(v - prev)), 64-bit wrapping.

Output: u32 skeleton length (little-endian) + skeleton + numbers. The slot table starts zeroed in
every call, so each frame decodes on its own. `join` inverts it into the array32 header + records,
exactly the bytes the frame had before the split. Nothing here needs the GIL.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.math cimport fabs
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from kaizen.ext.recbuf cimport Chunk


cdef extern from *:
    """
    static inline uint64_t ks_load_be64(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return __builtin_bswap64(v); }
    static inline void ks_store_be64(uint8_t* p, uint64_t v) { v = __builtin_bswap64(v); memcpy(p, &v, 8); }
    static inline uint64_t ks_dbits(double v) { uint64_t b; memcpy(&b, &v, 8); return b; }
    static inline double ks_bitsd(uint64_t b) { double v; memcpy(&v, &b, 8); return v; }
    /* Copy n bytes with at most two overlapping loads/stores inside [src, src+n): tokens are
       mostly 1-20 bytes and a libc memcpy call per token costs more than the token. */
    static inline void ks_copy(uint8_t* d, const uint8_t* s, Py_ssize_t n) {
        uint64_t a, b; uint32_t c, e;
        if (n >= 8) {
            if (n > 16) { memcpy(d, s, (size_t)n); return; }
            memcpy(&a, s, 8); memcpy(&b, s + n - 8, 8); memcpy(d, &a, 8); memcpy(d + n - 8, &b, 8);
        } else if (n >= 4) {
            memcpy(&c, s, 4); memcpy(&e, s + n - 4, 4); memcpy(d, &c, 4); memcpy(d + n - 4, &e, 4);
        } else if (n > 0) {
            d[0] = s[0]; d[n / 2] = s[n / 2]; d[n - 1] = s[n - 1];
        }
    }
    """
    uint64_t load_be64 "ks_load_be64"(const uint8_t* p) noexcept nogil
    void store_be64 "ks_store_be64"(uint8_t* p, uint64_t v) noexcept nogil
    uint64_t dbits "ks_dbits"(double v) noexcept nogil
    double bitsd "ks_bitsd"(uint64_t b) noexcept nogil
    void copy "ks_copy"(uint8_t* d, const uint8_t* s, Py_ssize_t n) noexcept nogil


cdef enum:
    TBITS = 13
    TSIZE = 1 << TBITS
    MAXDEPTH = 64
    MAXE = 12  # decimals tried; 10^12 keeps prices below 9000 exact in a double's 53 bits
    RAW_RETRY = 16  # a slot that went raw looks for a decimal form again every 16th value (encoder)
    K_SCALAR = 0
    K_ARRAY = 1
    K_MAP = 2
    K_STR = 3
    K_NUM8 = 4
    W_NONE = 0
    W_CTX = 1
    W_TS = 2

cdef uint64_t SEED = 0x243F6A8885A308D3
cdef uint64_t GOLD = 0x9E3779B97F4A7C15
cdef uint64_t MIX = 0xBF58476D1CE4E5B9
cdef int64_t DLIM = 1 << 60  # float deltas beyond this are re-sent whole
cdef double LIMIT = 9.0e15  # below 2^53: llround exact, n/10^e computed on exact integers

cdef double P10[MAXE + 1]
P10[0] = 1.0
for _i in range(1, MAXE + 1):
    P10[_i] = P10[_i - 1] * 10.0  # powers of ten to 10^22 are exact doubles


ctypedef struct Slot:
    uint64_t prev  # last value (ints: raw bits; floats: the decimal mantissa n)
    int e  # decimals of the slot's floats; -1 = last float was stored raw
    uint32_t miss  # encoder only: raw floats since the last decimal search


ctypedef struct Tok:
    int kind
    Py_ssize_t head  # type byte + length/extension bytes
    Py_ssize_t body  # bytes that follow the head (str/bin/ext data, fixed scalar payloads)
    uint64_t items  # container items (a map's count doubled)


ctypedef struct Walk:
    uint64_t rem[MAXDEPTH]  # items left in each enclosing container
    int64_t ts_min
    int64_t ts_max
    uint64_t records
    Slot* table
    # A record's numbers wait until its last token: context keys can follow them (msgspec puts a
    # base class's kw_only fields last) and each is coded under the whole record's context.
    # split: the tag bytes in the input; join: the tag bytes in the output, payload gaps after them.
    uint8_t** holes
    Py_ssize_t cap


cdef inline uint64_t _be(const uint8_t* p, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(n):
        v = (v << 8) | p[i]
    return v


cdef inline int _tok(const uint8_t* p, const uint8_t* end, Tok* t) noexcept nogil:
    """Parse the head at p (checked against end); the body is the caller's to check."""
    cdef uint8_t b = p[0]
    cdef Py_ssize_t avail = end - p
    t.kind = K_SCALAR
    t.head = 1
    t.body = 0
    t.items = 0
    if b <= 0x7F or b >= 0xE0:
        return 0
    if b <= 0x8F:
        t.kind = K_MAP
        t.items = (b & 0x0F) * 2
        return 0
    if b <= 0x9F:
        t.kind = K_ARRAY
        t.items = b & 0x0F
        return 0
    if b <= 0xBF:
        t.kind = K_STR
        t.body = b & 0x1F
        return 0
    if b == 0xC0 or b == 0xC2 or b == 0xC3:
        return 0
    if b == 0xCB or b == 0xCF or b == 0xD3:
        t.kind = K_NUM8
        t.body = 8
        return 0
    if b == 0xCA or b == 0xCE or b == 0xD2:
        t.body = 4
        return 0
    if b == 0xCC or b == 0xD0:
        t.body = 1
        return 0
    if b == 0xCD or b == 0xD1:
        t.body = 2
        return 0
    if 0xD4 <= b <= 0xD8:  # fixext 1, 2, 4, 8, 16 (+ type byte)
        t.head = 2
        t.body = 1 << (b - 0xD4)
        return 0
    if b == 0xC4 or b == 0xD9:  # bin8, str8
        t.kind = K_STR if b == 0xD9 else K_SCALAR
        t.head = 2
    elif b == 0xC5 or b == 0xDA or b == 0xDC or b == 0xDE:
        t.head = 3
    elif b == 0xC6 or b == 0xDB or b == 0xDD or b == 0xDF:
        t.head = 5
    elif b == 0xC7:
        t.head = 3
    elif b == 0xC8:
        t.head = 4
    elif b == 0xC9:
        t.head = 6
    else:  # 0xC1: never used
        return -1
    if avail < t.head:
        return -1
    cdef uint64_t n
    if b == 0xC4 or b == 0xD9 or b == 0xC7:
        n = p[1]
    elif b == 0xC5 or b == 0xDA or b == 0xDC or b == 0xDE or b == 0xC8:
        n = _be(p + 1, 2)
    else:
        n = _be(p + 1, 4)
    if b == 0xDC or b == 0xDD:
        t.kind = K_ARRAY
        t.items = n
    elif b == 0xDE or b == 0xDF:
        t.kind = K_MAP
        t.items = n * 2
    else:
        if b == 0xDA or b == 0xDB:
            t.kind = K_STR
        t.body = <Py_ssize_t>n
    return 0


cdef inline int64_t _small_int(const uint8_t* p) noexcept nogil:
    """Value of a msgpack int token whose body is present (0 for non-ints)."""
    cdef uint8_t b = p[0]
    if b <= 0x7F:
        return b
    if b >= 0xE0:
        return <int64_t>b - 256
    if b == 0xCC:
        return p[1]
    if b == 0xCD:
        return <int64_t>_be(p + 1, 2)
    if b == 0xCE:
        return <int64_t>_be(p + 1, 4)
    if b == 0xD0:
        return <signed char>p[1]
    if b == 0xD1:
        return <short>_be(p + 1, 2)
    if b == 0xD2:
        return <int>_be(p + 1, 4)
    return 0


cdef inline int _key_role(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    if n == 2 and s[0] == 116 and s[1] == 115:  # "ts"
        return W_TS
    if n == 4 and (memcmp(s, b"type", 4) == 0 or memcmp(s, b"role", 4) == 0 or memcmp(s, b"side", 4) == 0):
        return W_CTX
    if (n == 6 and memcmp(s, b"symbol", 6) == 0) or (n == 5 and memcmp(s, b"model", 5) == 0):
        return W_CTX
    return W_NONE


cdef inline uint64_t _mix_str(uint64_t h, const uint8_t* s, Py_ssize_t n) noexcept nogil:
    cdef uint64_t c
    h = (h ^ <uint64_t>n) * GOLD
    while n > 0:
        c = 0
        memcpy(&c, s, 8 if n >= 8 else n)
        h = ((h ^ c) * GOLD)
        h ^= h >> 31
        s += 8
        n -= 8
    return h


cdef inline Slot* _slot(Slot* table, uint64_t ctx, uint64_t ordinal) noexcept nogil:
    cdef uint64_t h = ctx + ordinal * GOLD
    h ^= h >> 29
    h *= MIX
    return &table[h >> (64 - TBITS)]


cdef inline uint8_t* _put(uint8_t* q, uint64_t v) noexcept nogil:
    while v >= 0x80:
        q[0] = <uint8_t>(v | 0x80)
        v >>= 7
        q += 1
    q[0] = <uint8_t>v
    return q + 1


cdef inline uint64_t _zz(int64_t d) noexcept nogil:
    return (<uint64_t>d << 1) ^ <uint64_t>(d >> 63)


cdef inline int64_t _unzz(uint64_t z) noexcept nogil:
    return <int64_t>(z >> 1) ^ -<int64_t>(z & 1)


cdef inline bint _decimal(double v, int e, int64_t* n) noexcept nogil:
    cdef double x = v * P10[e]
    if not (fabs(x) < LIMIT):  # also false for NaN and inf
        return False
    # Any nearby integer will do (the check below decides); a truncating cast is one instruction.
    cdef int64_t m = <int64_t>(x + 0.5) if x >= 0 else <int64_t>(x - 0.5)
    if dbits(<double>m / P10[e]) != dbits(v):  # bitwise: catches -0.0 and inexact decimals
        return False
    n[0] = m
    return True


cdef inline uint8_t* _put_raw(uint8_t* q, uint64_t bits) noexcept nogil:
    q[0] = 1  # varint(1): the escape for a float with no exact decimal form
    store_be64(q + 1, bits)
    return q + 9


cdef inline uint8_t* _put_number(Slot* sl, uint8_t tag, const uint8_t* p, uint8_t* q) noexcept nogil:
    cdef uint64_t bits = load_be64(p)
    cdef int64_t n, d
    cdef double v
    cdef int e
    if tag != 0xCB:  # uint64 / int64
        q = _put(q, _zz(<int64_t>(bits - sl.prev)))
        sl.prev = bits
        return q
    v = bitsd(bits)
    if sl.e >= 0 and _decimal(v, sl.e, &n):
        d = <int64_t>(<uint64_t>n - sl.prev)
        if -DLIM < d < DLIM:
            sl.prev = <uint64_t>n
            return _put(q, _zz(d) << 1)
    elif sl.e < 0:
        sl.miss += 1
        if sl.miss % RAW_RETRY != 0:
            return _put_raw(q, bits)
    for e in range(MAXE + 1):
        if _decimal(v, e, &n):
            sl.e = e
            sl.prev = <uint64_t>n
            q = _put(q, (<uint64_t>(e + 1) << 1) | 1)
            return _put(q, _zz(n))
    sl.e = -1
    sl.miss = 0
    return _put_raw(q, bits)


cdef inline int _nest(const Tok* t, Py_ssize_t* depth, uint64_t* cur, uint64_t* rem, bint* rec_map) noexcept nogil:
    """After a token: enter it if it is a non-empty container, then leave every container it
    completed. -1 when nesting passes MAXDEPTH. Shared by split and join, which must agree."""
    if (t.kind == K_ARRAY or t.kind == K_MAP) and t.items > 0:
        if depth[0] + 1 >= MAXDEPTH:
            return -1
        rem[depth[0]] = cur[0]
        depth[0] += 1
        cur[0] = t.items
        if depth[0] == 1:
            rec_map[0] = t.kind == K_MAP
    while depth[0] > 0 and cur[0] == 0:
        depth[0] -= 1
        cur[0] = rem[depth[0]]
    return 0


cdef inline void _key_or_context(const Tok* t, const uint8_t* p, bint is_key, int* want, uint64_t* ctx) noexcept nogil:
    """A record-level key sets what its value means; a context key's string value joins the context."""
    if is_key:
        want[0] = _key_role(p + t.head, t.body) if t.kind == K_STR else W_NONE
    elif want[0] == W_CTX and t.kind == K_STR:
        ctx[0] = _mix_str(ctx[0], p + t.head, t.body)


cdef inline int _grow(Walk* w) noexcept nogil:
    cdef void* a = realloc(w.holes, 2 * w.cap * sizeof(uint8_t*))
    if a == NULL:
        return -1
    w.holes = <uint8_t**>a
    w.cap *= 2
    return 0


cdef inline void _copy_run(uint8_t* d, const uint8_t* src, Py_ssize_t n, bint room) noexcept nogil:
    # Runs between numbers are short; with 32 readable and writable bytes a fixed-size copy (two
    # vector moves) beats a sized memcpy call. The bytes past n are overwritten later.
    if n <= 32 and room:
        memcpy(d, src, 32)
    else:
        memcpy(d, src, n)


ctypedef struct Tpl:
    # The layout of a one-record part: a later part with the same bytes outside the number payloads
    # has the same tokens, context and ts position, so it skips the walk (the common case: a
    # producer writes the same record type for the same symbol over and over).
    Py_ssize_t len  # 0: empty
    uint64_t key
    uint8_t* data  # the record's bytes, then a byte mask (0 over number payloads), then skeleton
    uint8_t* mask
    uint8_t* skel
    Py_ssize_t skel_len
    uint32_t* holes  # offsets of the numbers' type bytes
    Py_ssize_t nh
    uint64_t ctx
    Py_ssize_t ts_hole  # index of the hole holding ts, or -1: ts below
    int64_t ts


cdef enum:
    TPL_N = 64  # direct-mapped template cache
    TPL_MAX = 4096  # larger parts always take the walk


cdef inline uint64_t _load64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t _tkey(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    # Length, head and tail: msgspec writes the type tag first and Base's model/symbol last; the
    # middle is mostly numbers, which change every record.
    cdef uint64_t h = (<uint64_t>n + _load64(p)) * GOLD
    h = (h ^ _load64(p + 8)) * MIX
    h = (h ^ _load64(p + n - 8)) * GOLD
    return h ^ (h >> 32)


cdef inline bint _same_layout(const uint8_t* p, const Tpl* t) noexcept nogil:
    cdef uint64_t acc = 0
    cdef Py_ssize_t i = 0, n = t.len
    while i + 8 <= n:
        acc |= (_load64(p + i) ^ _load64(t.data + i)) & _load64(t.mask + i)
        i += 8
    while i < n:
        acc |= (p[i] ^ t.data[i]) & t.mask[i]
        i += 1
    return acc == 0


cdef int _learn(Tpl* t, uint64_t key, Walk* w, const uint8_t* rec, Py_ssize_t n, const uint8_t* skel, Py_ssize_t skel_len,
                Py_ssize_t nh, uint64_t ctx, int64_t ts, Py_ssize_t ts_hole) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef uint8_t* mem = <uint8_t*>realloc(t.data, 2 * n + skel_len + nh * sizeof(uint32_t) + 8)
    if mem == NULL:
        return -1
    t.data = mem
    t.mask = mem + n
    t.skel = mem + 2 * n
    t.holes = <uint32_t*>(mem + ((2 * n + skel_len + 7) & ~7))
    memcpy(t.data, rec, n)
    memset(t.mask, 0xFF, n)
    for i in range(nh):
        k = w.holes[i] - rec
        t.holes[i] = <uint32_t>k
        memset(t.mask + k + 1, 0, 8)
    memcpy(t.skel, skel, skel_len)
    t.skel_len = skel_len
    t.nh = nh
    t.ctx = ctx
    t.ts = ts
    t.ts_hole = ts_hole
    t.key = key
    t.len = n
    return 0


cdef inline void _count_record(Walk* w, int64_t ts) noexcept nogil:
    w.records += 1
    if ts < w.ts_min:
        w.ts_min = ts
    if ts > w.ts_max:
        w.ts_max = ts


cdef inline void _replay(Walk* w, const uint8_t* rec, const Tpl* t, uint8_t** skel, uint8_t** nums) noexcept nogil:
    """Split a record laid out like template t: its skeleton is the template's, byte for byte."""
    cdef Py_ssize_t i
    cdef uint8_t* q = nums[0]
    cdef int64_t ts = t.ts
    memcpy(skel[0], t.skel, t.skel_len)
    skel[0] += t.skel_len
    for i in range(t.nh):
        q = _put_number(_slot(w.table, t.ctx, i + 1), rec[t.holes[i]], rec + t.holes[i] + 1, q)
    nums[0] = q
    if t.ts_hole >= 0:
        ts = <int64_t>load_be64(rec + t.holes[t.ts_hole] + 1)
    _count_record(w, ts)


cdef int _split_region(Walk* w, const uint8_t* p, Py_ssize_t n, uint8_t** skel, uint8_t** nums,
                       Tpl* learn, uint64_t key) noexcept nogil:
    """Walk whole records in p[:n]; 0, -1 when the bytes are not well-formed msgpack, -2 out of memory.
    The skeleton buffer has 32 bytes of slack past its worst-case length. When p[:n] is exactly one
    record and `learn` is not NULL, its layout is stored there, under `key`, for later records."""
    cdef const uint8_t* start = p
    cdef uint64_t first = w.records
    cdef Py_ssize_t last_nh = 0
    cdef const uint8_t* end = p + n
    cdef uint8_t* s0 = skel[0]
    cdef Py_ssize_t ts_hole = -1
    cdef const uint8_t* run = p  # first input byte not yet in the skeleton
    cdef uint8_t* s = skel[0]
    cdef uint8_t* q = nums[0]
    cdef uint64_t* rem = w.rem
    cdef Tok t
    cdef Py_ssize_t depth = 0, nh = 0, i, k
    cdef uint64_t idx1 = 0, ctx = SEED
    cdef uint64_t cur = 0  # items left in the innermost open container (rem[] holds the outer ones)
    cdef int want = W_NONE
    cdef bint rec_map = False, at1, is_key
    cdef int64_t ts = 0
    # Per-record state lives in locals: stores through the byte pointers would otherwise force the
    # compiler to reload it from memory on every token.
    while p < end:
        if depth == 0:
            ctx = SEED
            ts = 0
            ts_hole = -1
            idx1 = 0
            want = W_NONE
            rec_map = False
        else:
            cur -= 1
        if _tok(p, end, &t) < 0 or t.head + t.body > end - p:
            return -1
        at1 = depth == 1 and rec_map
        is_key = False
        if at1:
            is_key = (idx1 & 1) == 0
            idx1 += 1
        if t.kind == K_NUM8:
            k = p + 1 - run  # the run up to and including the type byte
            _copy_run(s, run, k, run + 32 <= end)
            s += k
            run = p + 9
            if nh == w.cap and _grow(w) < 0:
                return -2
            w.holes[nh] = <uint8_t*>p
            nh += 1
            if at1:
                if is_key:
                    want = W_NONE
                elif want == W_TS and p[0] != 0xCB:
                    ts = <int64_t>load_be64(p + 1)
                    ts_hole = nh - 1
        elif at1:
            if is_key or want == W_CTX:
                _key_or_context(&t, p, is_key, &want, &ctx)
            elif want == W_TS and t.kind == K_SCALAR:
                ts = _small_int(p)
                ts_hole = -1
        p += t.head + t.body
        if _nest(&t, &depth, &cur, rem, &rec_map) < 0:
            return -1
        if depth == 0:
            for i in range(nh):
                q = _put_number(_slot(w.table, ctx, i + 1), w.holes[i][0], w.holes[i] + 1, q)
            _count_record(w, ts)
            last_nh = nh
            nh = 0
    if depth != 0:
        return -1
    memcpy(s, run, end - run)
    s += end - run
    # One record: ctx, ts and ts_hole still hold its values, and w.holes its numbers.
    if learn != NULL and w.records == first + 1:
        if _learn(learn, key, w, start, n, s0, s - s0, last_nh, ctx, ts, ts_hole) < 0:
            return -2
    skel[0] = s
    nums[0] = q
    return 0


cdef inline const uint8_t* _get(const uint8_t* q, const uint8_t* end, uint64_t* out) noexcept nogil:
    cdef uint64_t v = 0
    cdef int shift = 0
    while q < end and shift < 64:
        v |= <uint64_t>(q[0] & 0x7F) << shift
        if q[0] < 0x80:
            out[0] = v
            return q + 1
        q += 1
        shift += 7
    return NULL


cdef inline const uint8_t* _get_number(
    Slot* sl, uint8_t tag, const uint8_t* q, const uint8_t* qend, uint8_t* o
) noexcept nogil:
    cdef uint64_t c, z
    cdef int64_t n
    cdef int e
    q = _get(q, qend, &c)
    if q == NULL:
        return NULL
    if tag != 0xCB:
        sl.prev += <uint64_t>_unzz(c)
        store_be64(o, sl.prev)
        return q
    if (c & 1) == 0:
        if sl.e < 0:
            return NULL
        n = <int64_t>(sl.prev + <uint64_t>_unzz(c >> 1))
    elif c == 1:
        if qend - q < 8:
            return NULL
        memcpy(o, q, 8)
        sl.e = -1
        return q + 8
    else:
        if (c >> 1) > MAXE + 1:  # before the narrowing cast: a damaged code must not index P10
            return NULL
        e = <int>(c >> 1) - 1
        q = _get(q, qend, &z)
        if q == NULL:
            return NULL
        n = _unzz(z)
        sl.e = e
    sl.prev = <uint64_t>n
    store_be64(o, dbits(<double>n / P10[sl.e]))
    return q


cdef int _join(Walk* w, const uint8_t* p, const uint8_t* end, const uint8_t* q, const uint8_t* qend,
               uint8_t* o, uint8_t* oend) noexcept nogil:
    """Rebuild records from skeleton p[:end] and numbers q[:qend] into exactly o[:oend]."""
    cdef const uint8_t* run = p  # first skeleton byte not yet in the output
    cdef uint64_t* rem = w.rem
    cdef Tok t
    cdef Py_ssize_t depth = 0, nh = 0, i, k
    cdef uint64_t idx1 = 0, ctx = SEED
    cdef uint64_t cur = 0  # items left in the innermost open container (rem[] holds the outer ones)
    cdef int want = W_NONE
    cdef bint rec_map = False, at1, is_key
    while p < end:
        if depth == 0:
            ctx = SEED
            idx1 = 0
            want = W_NONE
            rec_map = False
        else:
            cur -= 1
        if _tok(p, end, &t) < 0:
            return -1
        k = t.head if t.kind == K_NUM8 else t.head + t.body
        if k > end - p:
            return -1
        at1 = depth == 1 and rec_map
        is_key = False
        if at1:
            is_key = (idx1 & 1) == 0
            idx1 += 1
        if t.kind == K_NUM8:
            k = p + 1 - run
            if k + 8 > oend - o:
                return -1
            _copy_run(o, run, k, run + 32 <= end and o + 32 <= oend)
            o += k
            if nh == w.cap and _grow(w) < 0:
                return -2
            w.holes[nh] = o - 1
            nh += 1
            o += 8
            run = p + 1
            p += 1
            if at1 and is_key:
                want = W_NONE
        else:
            if at1:
                _key_or_context(&t, p, is_key, &want, &ctx)
            p += k
        if _nest(&t, &depth, &cur, rem, &rec_map) < 0:
            return -1
        if depth == 0:
            for i in range(nh):
                q = _get_number(_slot(w.table, ctx, i + 1), w.holes[i][0], q, qend, w.holes[i] + 1)
                if q == NULL:
                    return -1
            nh = 0
            w.records += 1
    k = end - run
    if depth != 0 or k != oend - o or q != qend:
        return -1
    memcpy(o, run, k)
    return 0


cdef int _walk_init(Walk* w) noexcept nogil:
    w.records = 0
    w.ts_min = INT64_MAX
    w.ts_max = INT64_MIN
    w.table = <Slot*>calloc(TSIZE, sizeof(Slot))
    w.cap = 64
    w.holes = <uint8_t**>malloc(w.cap * sizeof(uint8_t*))
    return 0 if w.table != NULL and w.holes != NULL else -1


cdef void _walk_free(Walk* w) noexcept nogil:
    free(w.table)
    free(w.holes)


def split(list parts):
    """Split the concatenated msgpack records in `parts` (a list of bytes, each holding whole records).

    Returns (data, records, ts_min, ts_max, nbytes): ts is each record's top-level "ts" (0 where it
    has none), nbytes the input's total length. None when the bytes are not whole, well-formed
    msgpack objects."""
    cdef Py_ssize_t count = len(parts), i, total = 0
    cdef const uint8_t** ptrs = <const uint8_t**>malloc((count + 1) * sizeof(uint8_t*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
    cdef object part
    try:
        if ptrs == NULL or lens == NULL:
            raise MemoryError()
        for i in range(count):
            part = parts[i]
            if type(part) is not bytes:
                return None
            ptrs[i] = <const uint8_t*>PyBytes_AS_STRING(part)
            lens[i] = PyBytes_GET_SIZE(part)
            total += lens[i]
        return _split(ptrs, lens, count, total)
    finally:
        free(ptrs)
        free(lens)


def split_chunk(Chunk chunk):
    """`split` over a record buffer chunk (each record one part); the chunk must stay unchanged."""
    cdef Py_ssize_t count = chunk.count, i
    cdef const uint8_t** ptrs = <const uint8_t**>malloc((count + 1) * sizeof(uint8_t*))
    cdef Py_ssize_t* lens = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
    try:
        if ptrs == NULL or lens == NULL:
            raise MemoryError()
        for i in range(count):
            ptrs[i] = chunk.data + chunk.offs[i]
            lens[i] = chunk.offs[i + 1] - chunk.offs[i]
        return _split(ptrs, lens, count, chunk.nbytes)
    finally:
        free(ptrs)
        free(lens)


cdef object _split(const uint8_t** ptrs, Py_ssize_t* lens, Py_ssize_t count, Py_ssize_t total):
    cdef Py_ssize_t i
    cdef uint8_t* skel = NULL
    cdef uint8_t* nums = NULL
    cdef uint8_t* s
    cdef uint8_t* q
    cdef Walk w
    cdef int rc = 0
    cdef uint32_t k
    cdef Tpl* tpls = NULL
    cdef Tpl* learn
    cdef uint64_t key = 0
    cdef object out
    cdef PyObject* obj
    w.table = NULL
    w.holes = NULL
    try:
        # The skeleton goes straight into the result (at most `total` bytes + copy slack), the numbers
        # into a scratch buffer appended after it; the result is then shrunk in place.
        out = PyBytes_FromStringAndSize(NULL, 4 + total + 64 + total // 9 * 11 + 16)
        skel = <uint8_t*>PyBytes_AS_STRING(out) + 4
        nums = <uint8_t*>malloc(total // 9 * 11 + 16)  # 9 input bytes -> at most 11 coded ones
        if nums == NULL or _walk_init(&w) < 0:
            raise MemoryError()
        tpls = <Tpl*>calloc(TPL_N, sizeof(Tpl))
        if tpls == NULL:
            raise MemoryError()
        s = skel
        q = nums
        with nogil:
            for i in range(count):
                learn = NULL
                if 16 <= lens[i] <= TPL_MAX:
                    key = _tkey(ptrs[i], lens[i])
                    learn = &tpls[key & (TPL_N - 1)]
                    if learn.len == lens[i] and learn.key == key and _same_layout(ptrs[i], learn):
                        _replay(&w, ptrs[i], learn, &s, &q)
                        continue
                rc = _split_region(&w, ptrs[i], lens[i], &s, &q, learn, key)
                if rc < 0:
                    break
            if rc == 0:
                k = <uint32_t>(s - skel)
                memcpy(skel - 4, &k, 4)
                memcpy(s, nums, q - nums)
        if rc == -2:
            raise MemoryError()
        if rc < 0:
            return None
        obj = <PyObject*>out
        Py_INCREF(out)  # obj's own reference: `out` lets go of its one below, leaving exactly one
        out = None
        if _PyBytes_Resize(&obj, 4 + (s - skel) + (q - nums)) < 0:
            raise MemoryError()
        out = <object>obj
        Py_DECREF(out)  # _PyBytes_Resize handed over the one reference `obj` held
        if w.records == 0:
            return out, 0, 0, 0, total
        return out, w.records, w.ts_min, w.ts_max, total
    finally:
        free(nums)
        _walk_free(&w)
        if tpls != NULL:
            for i in range(TPL_N):
                free(tpls[i].data)
            free(tpls)


def join(data, Py_ssize_t raw_length, Py_ssize_t count):
    """Invert `split`: the msgpack array32 header for `count` records + the records, which must come
    to exactly `raw_length` bytes. ValueError when the data does not decode to that."""
    cdef const uint8_t[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    cdef uint32_t k, c32
    cdef uint8_t* o
    cdef const uint8_t* base
    cdef Walk w
    cdef int rc
    if n < 4 or raw_length < 5 or count < 0 or count > 0xFFFFFFFF:
        raise ValueError("split frame: too short")
    memcpy(&k, &view[0], 4)
    if <Py_ssize_t>k > n - 4:
        raise ValueError("split frame: skeleton length past the end")
    out = PyBytes_FromStringAndSize(NULL, raw_length)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    c32 = <uint32_t>count
    o[0] = 0xDD
    o[1] = (c32 >> 24) & 0xFF
    o[2] = (c32 >> 16) & 0xFF
    o[3] = (c32 >> 8) & 0xFF
    o[4] = c32 & 0xFF
    base = &view[0]
    w.table = NULL
    w.holes = NULL
    try:
        if _walk_init(&w) < 0:
            raise MemoryError()
        with nogil:
            rc = _join(&w, base + 4, base + 4 + k, base + 4 + k, base + n, o + 5, o + raw_length)
    finally:
        _walk_free(&w)
    if rc == -2:
        raise MemoryError()
    if rc < 0 or <Py_ssize_t>w.records != count:
        raise ValueError("split frame: skeleton and numbers do not decode to the frame's records")
    return out
