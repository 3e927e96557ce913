# The decision core: one symbol's path from a raw combined-stream frame to an encoded order, typed
# end to end. Each leaf (depth decode, book, features, regime, Thompson, forests) is called through
# its .pxd; no Python object is created per depth/trade/bookTicker message.

from libc.stdint cimport int64_t

from kaizen.ext.book cimport OrderBook
from kaizen.ext.ensemble cimport CompiledEnsemble
from kaizen.ext.features cimport FeatureEngine
from kaizen.ext.forest cimport Forest
from kaizen.ext.regime cimport Hysteresis, RegimeFeatures, NDERIVED
from kaizen.ext.thompson cimport ThompsonPortfolio

cdef enum:
    # stage stamps of one message (trace columns); T_KIND holds the message's result flags
    T_RECV = 0
    T_BOOK = 1          # decoded and applied to the book (or trade/ticker folded in)
    T_FEAT = 2          # feature engine updated (book event; bar fold on a closing message)
    T_REGIME = 3
    T_DRAW = 4
    T_SIGNAL = 5
    T_EXIT = 6
    T_RISK = 7          # sizing + risk checks
    T_ORDER = 8         # order encoded in the buffer (the venue stub's timestamp)
    T_KIND = 9
    NTRACE = 10
    # result flags of on_frame_c
    K_DEPTH = 1
    K_TRADE = 2
    K_TICKER = 4
    K_BAR = 8
    K_ORDER = 16
    K_REJECT = 32
    K_ERROR = 64
    K_SKIP = 128        # a diff dropped by the sync rules (before the snapshot or a gap)
    MAX_VARIANTS = 16
    MAX_IN = 96
    MAX_K = 16
    OBUF = 256
    BOOK_K = 5          # levels per side for imbalance


cdef struct BarAcc:
    int64_t open_time
    double o
    double h
    double l
    double c
    double v
    int64_t trades
    int64_t msgs


cdef class DecisionCore:
    cdef readonly OrderBook book
    cdef readonly FeatureEngine features
    cdef readonly RegimeFeatures regime_features
    cdef readonly Forest regime_forest
    cdef readonly Hysteresis hysteresis
    cdef readonly ThompsonPortfolio bandit
    cdef readonly CompiledEnsemble signal
    cdef readonly Forest exit_model
    cdef int sid
    # regime detector input: engine columns then the derived regime features
    cdef int n_engine_cols
    cdef int engine_cols[MAX_IN]
    cdef float regime_row[MAX_IN]
    cdef double derived[NDERIVED]
    cdef double probs[MAX_K]
    cdef int k_regimes
    cdef readonly int regime
    # exit model input: engine columns then (side, bars held, unrealized return, regime)
    cdef int n_exit_cols
    cdef int exit_cols[MAX_IN]
    cdef float exit_row[MAX_IN]
    cdef readonly double p_exit
    cdef readonly double p_signal
    # variants the bandit chooses among: entry threshold on |p - 0.5| and a size multiplier
    cdef int n_variants
    cdef double v_threshold[MAX_VARIANTS]
    cdef double v_size[MAX_VARIANTS]
    cdef readonly int arm
    # sizing and risk
    cdef public double equity
    cdef public double risk_fraction
    cdef public double vol_target
    cdef public double exit_threshold
    cdef public double fee_rate
    cdef public int64_t max_position_lots
    cdef public int64_t max_order_lots
    cdef public double max_notional
    cdef public double price_band_bps
    cdef public bint kill_switch
    cdef public bint paper_fill
    cdef int i_rv                       # feature column used for volatility sizing
    # position (paper fills or on_fill)
    cdef readonly int64_t position_lots
    cdef readonly double entry_price
    cdef readonly int64_t bars_held
    cdef int entry_arm
    # bars
    cdef BarAcc bar
    cdef public int64_t bar_every_msgs  # > 0: close a bar every N messages (replay / bench)
    cdef readonly int64_t interval_ms
    cdef int64_t next_close_ms
    # book sync (Binance USD-M rules: first diff U <= id <= u, then pu == previous u)
    cdef int64_t snap_id
    cdef bint synced
    cdef int64_t last_u
    cdef double last_mid
    cdef double signed_acc
    # order buffer
    cdef char obuf[OBUF]
    cdef readonly Py_ssize_t order_len
    # the latest order's fields, for a venue adapter that does not send the encoded bytes
    cdef readonly int order_side
    cdef readonly int64_t order_lots
    cdef readonly int64_t order_price_ticks
    cdef readonly bint order_reduce_only
    cdef readonly int64_t order_seq
    cdef int64_t cid_seq
    cdef char cid_prefix[24]
    cdef int cid_prefix_len
    cdef char sym[24]
    cdef int sym_len
    # counters
    cdef readonly int64_t msgs
    cdef readonly int64_t depth_msgs
    cdef readonly int64_t trade_msgs
    cdef readonly int64_t ticker_msgs
    cdef readonly int64_t bars_closed
    cdef readonly int64_t orders
    cdef readonly int64_t rejects
    cdef readonly int64_t errors
    cdef readonly int64_t skipped
    cdef readonly int64_t gaps
    # stage stamps of the latest message
    cdef int64_t stamps[NTRACE]

    cdef void _reset_bar(self, int64_t open_time) noexcept
    cdef double _mid(self) noexcept
    cdef int on_frame_c(self, const unsigned char* p, Py_ssize_t n, int64_t recv_ns) noexcept
    cdef int _depth(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t at) noexcept
    cdef int _trade(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t at) noexcept
    cdef int _close_bar(self) noexcept
    cdef int _decide(self) noexcept
    cdef Py_ssize_t _encode(self, int side, int64_t lots, int64_t price_ticks, bint reduce_only) noexcept
    cdef void _fill(self, int side, int64_t lots, double price) noexcept
    cdef void _book_event(self, double signed_volume) noexcept
    cpdef int on_order(self, Py_ssize_t n) except -1
    cpdef int on_bytes(self, bytes frame, int64_t recv_ns)
