"""Plain-Python reference of kaizen.ext.thompson: the same generator and the same arithmetic in the
same order, so for a given seed it makes the same draws and choices bit for bit (the tests check
this). It proves the algorithm; the Cython module is the one to use (a 16-variant choice takes
~200 us here and ~0.3 us there).

See ext/thompson.pyx for the model, the discounting and the prior.
"""

from __future__ import annotations

import math
import struct

import numpy as np

M64 = 0xFFFFFFFFFFFFFFFF
TWO_M53 = 1.0 / 9007199254740992.0
TINY = 2.2250738585072014e-308
STAT_FLOOR = 1e-12
DEF_SCALE = 100.0
KINDS = ("normal_gamma", "beta")

_pack = struct.Struct("<d").pack
_unpack_u = struct.Struct("<Q").unpack
_pack_u = struct.Struct("<Q").pack
_unpack = struct.Struct("<d").unpack


def _bits(x: float) -> int:
    return _unpack_u(_pack(x))[0]


def _from_bits(u: int) -> float:
    return _unpack(_pack_u(u & M64))[0]


def _hi(x: float) -> int:
    h = _bits(x) >> 32
    return h - (1 << 32) if h & 0x80000000 else h


def _with_hi(x: float, hi: int) -> float:
    return _from_bits((_bits(x) & 0xFFFFFFFF) | ((hi & 0xFFFFFFFF) << 32))


# ---- deterministic log / exp (fdlibm e_log.c / e_exp.c; see the notice in ext/thompson.pyx) --------
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
TWO54 = 1.80143985094819840000e16
LG1 = 6.666666666666735130e-01
LG2 = 3.999999999940941908e-01
LG3 = 2.857142874366239149e-01
LG4 = 2.222219843214978396e-01
LG5 = 1.818357216161805012e-01
LG6 = 1.531383769920937332e-01
LG7 = 1.479819860511658591e-01
INVLN2 = 1.44269504088896338700e00
P1 = 1.66666666666666019037e-01
P2 = -2.77777777770155933842e-03
P3 = 6.61375632143793436117e-05
P4 = -1.65339022054652515390e-06
P5 = 4.13813679705723846039e-08
O_THRESHOLD = 7.09782712893383973096e02
U_THRESHOLD = -7.45133219101941108420e02
TWOM1000 = 9.33263618503218878990e-302


def det_log(x: float) -> float:
    hx = _hi(x)
    lx = _bits(x) & 0xFFFFFFFF
    k = 0
    if hx < 0x00100000:
        if ((hx & 0x7FFFFFFF) | lx) == 0:
            return -math.inf
        if hx < 0:
            return math.nan
        k -= 54
        x *= TWO54
        hx = _hi(x)
    if hx >= 0x7FF00000:
        return x + x
    k += (hx >> 20) - 1023
    hx &= 0x000FFFFF
    i = (hx + 0x95F64) & 0x100000
    x = _with_hi(x, hx | (i ^ 0x3FF00000))
    k += i >> 20
    f = x - 1.0
    if (0x000FFFFF & (2 + hx)) < 3:
        if f == 0.0:
            if k == 0:
                return 0.0
            dk = float(k)
            return dk * LN2_HI + dk * LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        if k == 0:
            return f - r
        dk = float(k)
        return dk * LN2_HI - ((r - dk * LN2_LO) - f)
    s = f / (2.0 + f)
    dk = float(k)
    z = s * s
    i = hx - 0x6147A
    w = z * z
    j = 0x6B851 - hx
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    i |= j
    r = t2 + t1
    if i > 0:
        hfsq = 0.5 * f * f
        if k == 0:
            return f - (hfsq - s * (hfsq + r))
        return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
    if k == 0:
        return f - s * (f - r)
    return dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f)


def det_exp(x: float) -> float:
    hx = _hi(x)
    xsb = (hx >> 31) & 1
    hx &= 0x7FFFFFFF
    k = 0
    hi = lo = 0.0
    if hx >= 0x40862E42:
        if hx >= 0x7FF00000:
            if math.isnan(x):
                return x + x
            return 0.0 if xsb else x
        if x > O_THRESHOLD:
            return math.inf
        if x < U_THRESHOLD:
            return 0.0
    if hx > 0x3FD62E42:
        if hx < 0x3FF0A2B2:
            if xsb:
                hi, lo, k = x + LN2_HI, -LN2_LO, -1
            else:
                hi, lo, k = x - LN2_HI, LN2_LO, 1
        else:
            k = int(INVLN2 * x + (-0.5 if xsb else 0.5))
            t = float(k)
            hi = x - t * LN2_HI
            lo = t * LN2_LO
        x = hi - lo
    elif hx < 0x3E300000:
        return 1.0 + x
    t = x * x
    c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))))
    if k == 0:
        return 1.0 - ((x * c) / (c - 2.0) - x)
    y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi)
    if k >= -1021:
        return _from_bits(_bits(y) + (k << 52))
    return _from_bits(_bits(y) + ((k + 1000) << 52)) * TWOM1000


# ---- generator -------------------------------------------------------------------------------------
def splitmix64_stream(seed: int, n: int) -> list[int]:
    x = seed & M64
    out = []
    for _ in range(n):
        x = (x + 0x9E3779B97F4A7C15) & M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return out


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & M64


ZIG_R = 3.6541528853610088
ZIG_V = 0.00492867323399


def _zig_tables() -> tuple[list[int], list[float], list[float]]:
    m1 = 4503599627370496.0
    zk, zw, zf = [0] * 256, [0.0] * 256, [0.0] * 256
    dn = tn = ZIG_R
    q = ZIG_V / det_exp(-0.5 * dn * dn)
    zk[0] = int((dn / q) * m1)
    zk[1] = 0
    zw[0] = q / m1
    zw[255] = dn / m1
    zf[0] = 1.0
    zf[255] = det_exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * det_log(ZIG_V / dn + det_exp(-0.5 * dn * dn)))
        zk[i + 1] = int((dn / tn) * m1)
        tn = dn
        zf[i] = det_exp(-0.5 * dn * dn)
        zw[i] = dn / m1
    return zk, zw, zf


ZIG_K, ZIG_W, ZIG_F = _zig_tables()


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


class Gamma:
    """Marsaglia–Tsang constants for Gamma(shape, 1)."""

    __slots__ = ("d", "c", "inv_shape")

    def __init__(self, shape: float) -> None:
        a = shape
        if shape < 1.0:
            self.inv_shape = 1.0 / shape
            a = shape + 1.0
        else:
            self.inv_shape = 0.0
        self.d = a - 1.0 / 3.0
        self.c = 1.0 / math.sqrt(9.0 * self.d)


class Rng:
    """xoshiro256++ seeded by splitmix64, with the same uniform, ziggurat normal, gamma and beta."""

    def __init__(self, seed: int = 0) -> None:
        self.s = splitmix64_stream(_check_seed(seed), 4)

    @classmethod
    def from_state(cls, state) -> Rng:
        r = cls.__new__(cls)
        r.s = [int(v) & M64 for v in state]
        return r

    @property
    def state(self) -> tuple[int, ...]:
        return tuple(self.s)

    def next_u64(self) -> int:
        s = self.s
        result = (_rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform1(self) -> float:
        return float(self.next_u64() >> 11) * TWO_M53

    def uniform_open1(self) -> float:
        return float((self.next_u64() >> 11) + 1) * TWO_M53

    def normal1(self) -> float:
        while True:
            u = self.next_u64()
            idx = u & 0xFF
            u >>= 8
            neg = u & 1
            rabs = (u >> 1) & 0x000FFFFFFFFFFFFF
            x = float(rabs) * ZIG_W[idx]
            if neg:
                x = -x
            if rabs < ZIG_K[idx]:
                return x
            if idx == 0:
                while True:
                    xx = -det_log(self.uniform_open1()) / ZIG_R
                    yy = -det_log(self.uniform_open1())
                    if yy + yy > xx * xx:
                        return -(ZIG_R + xx) if neg else ZIG_R + xx
            elif (ZIG_F[idx - 1] - ZIG_F[idx]) * self.uniform1() + ZIG_F[idx] < det_exp(-0.5 * x * x):
                return x

    def gamma_c(self, g: Gamma) -> float:
        while True:
            x = self.normal1()
            v = 1.0 + g.c * x
            if v <= 0.0:
                continue
            v = v * v * v
            u = self.uniform1()
            xx = x * x
            if u < 1.0 - 0.0331 * (xx * xx):
                break
            if det_log(u) < 0.5 * xx + g.d * (1.0 - v + det_log(v)):
                break
        out = g.d * v
        if g.inv_shape != 0.0:
            out = out * det_exp(det_log(self.uniform_open1()) * g.inv_shape)
        return out

    def beta_c(self, ga: Gamma, gb: Gamma) -> float:
        x = self.gamma_c(ga)
        y = self.gamma_c(gb)
        s = x + y
        return x / s if s > 0.0 else 0.5

    # array API of kaizen.ext.thompson.Rng
    def random_raw(self, n: int) -> np.ndarray:
        return np.array([self.next_u64() for _ in range(n)], dtype=np.uint64)

    def uniform(self, n: int) -> np.ndarray:
        return np.array([self.uniform1() for _ in range(n)])

    def normal(self, n: int) -> np.ndarray:
        return np.array([self.normal1() for _ in range(n)])

    def gamma(self, shape: float, n: int) -> np.ndarray:
        if not (shape > 0.0 and math.isfinite(shape)):
            raise ValueError(f"gamma shape must be > 0, got {shape}")
        g = Gamma(shape)
        return np.array([self.gamma_c(g) for _ in range(n)])

    def beta(self, a: float, b: float, n: int) -> np.ndarray:
        if not (a > 0.0 and b > 0.0 and math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"beta parameters must be > 0, got {a}, {b}")
        ga, gb = Gamma(a), Gamma(b)
        return np.array([self.beta_c(ga, gb) for _ in range(n)])


# ---- portfolio -------------------------------------------------------------------------------------
NG, BETA, FIXED = 0, 1, 2
_KIND_NAMES = {NG: "normal_gamma", BETA: "beta", FIXED: "flat"}


class _Arm:
    __slots__ = (
        "kind", "active", "m0", "k0", "a0", "b0", "n", "xbar", "m2", "s", "f", "w_total", "n_updates",
        "pm", "pk", "pa", "pb", "bk", "ga", "gb", "value",
    )  # fmt: skip

    def __init__(self, kind: int, m0: float, k0: float, a0: float, b0: float, value: float) -> None:
        self.kind, self.active = kind, True
        self.m0, self.k0, self.a0, self.b0, self.value = m0, k0, a0, b0, value
        self.n = self.xbar = self.m2 = self.s = self.f = self.w_total = 0.0
        self.n_updates = 0
        self.pm = self.pk = self.pa = self.pb = self.bk = 0.0
        self.ga = self.gb = None
        self.refresh()

    def refresh(self) -> None:
        if self.kind == NG:
            self.pk = self.k0 + self.n
            self.pm = (self.k0 * self.m0 + self.n * self.xbar) / self.pk
            self.pa = self.a0 + 0.5 * self.n
            dx = self.xbar - self.m0
            self.pb = self.b0 + 0.5 * self.m2 + 0.5 * (self.k0 * self.n / self.pk) * (dx * dx)
            self.bk = self.pb / self.pk
            self.ga = Gamma(self.pa)
        elif self.kind == BETA:
            self.pa = self.a0 + self.s
            self.pb = self.b0 + self.f
            self.ga, self.gb = Gamma(self.pa), Gamma(self.pb)

    def draw(self, r: Rng) -> float:
        if self.kind == NG:
            g = r.gamma_c(self.ga)
            if g < TINY:
                g = TINY
            return self.pm + r.normal1() * math.sqrt(self.bk / g)
        if self.kind == BETA:
            return r.beta_c(self.ga, self.gb)
        return self.value


def _powi(x: float, k: int) -> float:
    out = 1.0
    while k > 0:
        if k & 1:
            out = out * x
        x = x * x
        k >>= 1
    return out


def _check_prior(kind: int, m0: float, k0: float, a0: float, b0: float) -> None:
    if kind == NG:
        if not math.isfinite(m0):
            raise ValueError(f"prior mean must be finite, got {m0}")
        if not (k0 > 0.0 and math.isfinite(k0)):
            raise ValueError(f"prior kappa must be > 0, got {k0}")
    if not (a0 > 0.0 and math.isfinite(a0)):
        raise ValueError(f"prior alpha must be > 0, got {a0}")
    if not (b0 > 0.0 and math.isfinite(b0)):
        raise ValueError(f"prior beta must be > 0, got {b0}")


class ThompsonPortfolio:
    """Same constructor, methods and results as kaizen.ext.thompson.ThompsonPortfolio."""

    def __init__(
        self,
        n_variants: int,
        discount: float = 0.99,
        seed: int = 0,
        *,
        kind: str = "normal_gamma",
        mean: float = 0.0,
        kappa: float = 1.0,
        alpha: float | None = None,
        beta: float | None = None,
        scale: float = DEF_SCALE,
        flat: bool = False,
        flat_value: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if n_variants < 1:
            raise ValueError(f"n_variants must be >= 1, got {n_variants}")
        discount = float(discount)
        if not (0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.kind_ = NG if kind == "normal_gamma" else BETA
        self.discount = discount
        self.seed = seed
        self.rng = Rng(seed)
        self.t = 0
        self.t_disc = 0
        self.last_draw = math.nan
        mean, kappa, scale = float(mean), float(kappa), float(scale)
        a0 = 1.0 if alpha is None else float(alpha)
        if self.kind_ == NG:
            if not (scale > 0.0 and math.isfinite(scale)):
                raise ValueError(f"scale must be > 0, got {scale}")
            b0 = a0 * scale * scale if beta is None else float(beta)
            self.flat_value = 0.0 if flat_value is None else float(flat_value)
        else:
            b0 = 1.0 if beta is None else float(beta)
            self.flat_value = 0.5 if flat_value is None else float(flat_value)
        _check_prior(self.kind_, mean, kappa, a0, b0)
        if not math.isfinite(self.flat_value):
            raise ValueError(f"flat_value must be finite, got {self.flat_value}")
        self.prior = (mean, kappa, a0, b0)
        self.arms: list[_Arm] = []
        for i in range(n_variants):
            if i == 0 and flat:
                self.arms.append(_Arm(FIXED, 0.0, 0.0, 0.0, 0.0, self.flat_value))
            else:
                self.arms.append(_Arm(self.kind_, mean, kappa, a0, b0, 0.0))

    # ---- core ---------------------------------------------------------------------------------------
    def _sync(self) -> None:
        k = self.t - self.t_disc
        if k <= 0:
            return
        self.t_disc = self.t
        if self.discount == 1.0:
            return
        g = _powi(self.discount, k)
        for a in self.arms:
            if not a.active or a.kind == FIXED:
                continue
            if a.kind == NG:
                a.n = a.n * g
                a.m2 = a.m2 * g
                if a.n < STAT_FLOOR:
                    a.n = a.m2 = 0.0
            else:
                a.s = a.s * g
                a.f = a.f * g
                if a.s < STAT_FLOOR:
                    a.s = 0.0
                if a.f < STAT_FLOOR:
                    a.f = 0.0
            a.refresh()

    def _argmax_draw(self, r: Rng) -> tuple[int, float]:
        best, bv = -1, 0.0
        for i, a in enumerate(self.arms):
            if a.active:
                v = a.draw(r)
                if best < 0 or v > bv:
                    best, bv = i, v
        return best, bv

    def choose(self) -> int:
        if self.n_active == 0:
            raise ValueError("no active variants to choose from")
        self._sync()
        best, bv = self._argmax_draw(self.rng)
        self.t += 1
        self.last_draw = bv
        return best

    def update(self, i: int, reward: float, weight: float = 1.0) -> bool:
        self._check(i)
        reward, weight = float(reward), float(weight)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if not math.isfinite(weight) or weight < 0.0:
            raise ValueError(f"weight must be finite and >= 0, got {weight}")
        a = self.arms[i]
        if a.kind == BETA and not (0.0 <= reward <= 1.0):
            raise ValueError(f"a Beta variant's reward must be in [0, 1], got {reward}")
        if not a.active or a.kind == FIXED or weight == 0.0:
            return False
        self._sync()
        if a.kind == NG:
            n_new = a.n + weight
            d = reward - a.xbar
            a.xbar = a.xbar + (weight / n_new) * d
            a.m2 = a.m2 + weight * d * (reward - a.xbar)
            a.n = n_new
        else:
            a.s = a.s + weight * reward
            a.f = a.f + weight * (1.0 - reward)
        a.w_total = a.w_total + weight
        a.n_updates += 1
        a.refresh()
        return True

    def prob_best(self, n_samples: int = 1000) -> np.ndarray:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        out = np.zeros(len(self.arms))
        if self.n_active == 0:
            return out
        self._sync()
        seed = (self.seed ^ 0xD1B54A32D192ED03 ^ (((self.t + 1) * 0x9E3779B97F4A7C15) & M64)) & M64
        r = Rng(seed)
        for _ in range(n_samples):
            out[self._argmax_draw(r)[0]] += 1.0
        return out / n_samples

    def draw(self, i: int) -> float:
        self._check(i)
        self._sync()
        return self.arms[i].draw(self.rng)

    def retire(self, i: int) -> bool:
        self._check(i)
        a = self.arms[i]
        if a.kind == FIXED:
            raise ValueError("the flat variant cannot be retired")
        if not a.active:
            return False
        a.active = False
        return True

    def add(self, *, mean=None, kappa=None, alpha=None, beta=None) -> int:
        m0 = self.prior[0] if mean is None else float(mean)
        k0 = self.prior[1] if kappa is None else float(kappa)
        a0 = self.prior[2] if alpha is None else float(alpha)
        b0 = self.prior[3] if beta is None else float(beta)
        _check_prior(self.kind_, m0, k0, a0, b0)
        self.arms.append(_Arm(self.kind_, m0, k0, a0, b0, 0.0))
        return len(self.arms) - 1

    def posterior(self, i: int) -> dict:
        self._check(i)
        self._sync()
        a = self.arms[i]
        out = {
            "kind": _KIND_NAMES[a.kind],
            "active": a.active,
            "n_updates": a.n_updates,
            "w_total": a.w_total,
        }
        if a.kind == NG:
            out.update(mean=a.pm, kappa=a.pk, alpha=a.pa, beta=a.pb, n_eff=a.n)
        elif a.kind == BETA:
            out.update(mean=a.pa / (a.pa + a.pb), alpha=a.pa, beta=a.pb, n_eff=a.s + a.f)
        else:
            out.update(mean=a.value, alpha=0.0, beta=0.0, n_eff=0.0)
        return out

    def is_active(self, i: int) -> bool:
        self._check(i)
        return self.arms[i].active

    def is_flat(self, i: int) -> bool:
        self._check(i)
        return self.arms[i].kind == FIXED

    @property
    def n_variants(self) -> int:
        return len(self.arms)

    @property
    def n_active(self) -> int:
        return sum(1 for a in self.arms if a.active)

    @property
    def kind(self) -> str:
        return _KIND_NAMES[self.kind_]

    @property
    def rng_state(self) -> tuple[int, ...]:
        return self.rng.state

    def __len__(self) -> int:
        return len(self.arms)

    def _check(self, i: int) -> None:
        if not 0 <= i < len(self.arms):
            raise IndexError(f"variant {i} out of range (0..{len(self.arms) - 1})")
