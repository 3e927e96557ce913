"""One typed predictor over an XGBoost forest, whatever computes it:

- compiled: a shared library generated from the model (kaizen/models/forest_codegen.py), dlopen'ed;
- interp:   a flat node-array walk here, for machines without a C compiler;
- capi:     XGBoost's own `XGBoosterPredictFromDense` (the reference, and a baseline).

Hot-path callers use `predict_ptr(row, out)` (nogil, no Python). Build a Forest through
kaizen.models.compile.load_forest, which also checks compiled output against the interpreter.
"""

from libc.math cimport expf, fminf, fmaxf, logf, NAN
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.dlfcn cimport RTLD_LOCAL, RTLD_NOW, dlclose, dlerror, dlopen, dlsym

import numpy as np

from kaizen.errors import DataError, KaizenError

# Output transforms (same numbers as kaizen/models/forest_model.py).
cdef enum:
    T_IDENTITY = 0
    T_SIGMOID = 1
    T_SOFTMAX = 2
    T_EXP = 3
    T_ARGMAX = 4


cpdef float logit_f32(float p):
    """XGBoost's ProbToMargin for logistic objectives, in float32 as it computes it."""
    return -logf(<float>1.0 / p - <float>1.0)


cpdef float log_f32(float v):
    """XGBoost's ProbToMargin for log-link objectives (poisson, gamma, tweedie)."""
    return logf(v)


cdef inline void _transform(int kind, const float* m, int g, double* out) noexcept nogil:
    # Float arithmetic exactly as XGBoost's CPU transforms (common/math.h) so outputs match bit for bit.
    cdef int k, best
    cdef float x, wmax
    cdef float e[MAX_GROUPS]
    cdef double wsum
    if kind == T_SIGMOID:
        x = fminf(-m[0], <float>88.7)
        out[0] = <float>1.0 / (expf(x) + <float>1.0 + <float>1e-16)
    elif kind == T_SOFTMAX:
        wmax = m[0]
        for k in range(1, g):
            wmax = fmaxf(m[k], wmax)
        wsum = 0.0
        for k in range(g):
            e[k] = expf(m[k] - wmax)
            wsum += e[k]
        for k in range(g):
            out[k] = e[k] / <float>wsum
    elif kind == T_EXP:
        out[0] = expf(m[0])
    elif kind == T_ARGMAX:
        best = 0
        for k in range(1, g):
            if m[k] > m[best]:
                best = k
        out[0] = best
    else:
        for k in range(g):
            out[k] = m[k]


from kaizen.ext.clock cimport now_ns as _now_ns


cdef class Forest:
    """A loaded forest. Construct via kaizen.models.compile.load_forest."""

    def __cinit__(self):
        self.nodes = NULL
        self.roots = NULL
        self.groups = NULL
        self.so_handle = NULL
        self.booster = NULL
        self.margin_fn = NULL
        self.margin_batch_fn = NULL
        self.kind = -1
        self.build_info = None

    def __init__(self, str objective, int transform, int num_features, int num_groups,
                 float[::1] base_margin, str model_hash):
        if num_groups < 1 or num_groups > MAX_GROUPS:
            raise DataError(f"model has {num_groups} outputs; at most {MAX_GROUPS} supported")
        if base_margin.shape[0] != num_groups:
            raise DataError("base_margin length differs from the number of outputs")
        self.objective = objective
        self.transform = transform
        self.num_features = num_features
        self.num_groups = num_groups
        self.num_outputs = num_groups if transform in (T_SOFTMAX, T_IDENTITY) else 1
        self.model_hash = model_hash
        self.backend = "none"
        for k in range(num_groups):
            self.base[k] = base_margin[k]

    def __dealloc__(self):
        free(self.nodes)
        free(self.roots)
        free(self.groups)
        if self.booster != NULL and self.xgb_free != NULL:
            self.xgb_free(self.booster)
        # The compiled library stays mapped: Cython callers may still hold predict_ptr's target,
        # and glibc shares one mapping per path across Forests anyway.

    # ---- backends -------------------------------------------------------------------------

    def _attach_interp(self, const int32_t[::1] left, const int32_t[::1] right,
                       const int32_t[::1] feature, const float[::1] threshold,
                       const unsigned char[::1] default_left, const int32_t[::1] roots,
                       const int32_t[::1] groups):
        cdef Py_ssize_t n = left.shape[0], t = roots.shape[0], i
        self.nodes = <FNode*>malloc(max(n, 1) * sizeof(FNode))
        self.roots = <int32_t*>malloc(max(t, 1) * sizeof(int32_t))
        self.groups = <int32_t*>malloc(max(t, 1) * sizeof(int32_t))
        if self.nodes == NULL or self.roots == NULL or self.groups == NULL:
            raise MemoryError()
        for i in range(n):
            self.nodes[i].thr = threshold[i]
            self.nodes[i].feat = feature[i] if left[i] >= 0 else -1
            self.nodes[i].left = left[i]
            self.nodes[i].right = right[i]
            self.nodes[i].default_left = default_left[i]
        for i in range(t):
            self.roots[i] = roots[i]
            self.groups[i] = groups[i]
        self.num_trees = <int>t
        self.kind = KIND_INTERP
        self.backend = "interp"

    def _attach_compiled(self, str path, bytes key):
        """dlopen a generated library; its embedded key must match the one we compiled for."""
        cdef bytes bpath = path.encode()
        cdef void* h = dlopen(bpath, RTLD_NOW | RTLD_LOCAL)
        if h == NULL:
            raise KaizenError(f"{path}: cannot load compiled forest ({(<bytes>dlerror()).decode(errors='replace')})")
        cdef const char* k = <const char*>dlsym(h, "kaizen_forest_key")
        if k == NULL or <bytes>k != key:
            dlclose(h)
            raise KaizenError(f"{path}: compiled forest key mismatch (stale or foreign library)")
        self.margin_fn = <margin_fn_t>dlsym(h, "kaizen_forest_margin")
        self.margin_batch_fn = <margin_batch_fn_t>dlsym(h, "kaizen_forest_margin_batch")
        if self.margin_fn == NULL or self.margin_batch_fn == NULL:
            dlclose(h)
            raise KaizenError(f"{path}: compiled forest lacks its entry points")
        self.so_handle = h
        self.kind = KIND_COMPILED
        self.backend = "compiled"

    def _release(self):
        """Unmap a compiled library that failed its checks, so a rebuilt one at the same path loads
        fresh (glibc would otherwise hand back the mapping it already has for that path)."""
        if self.so_handle != NULL:
            dlclose(self.so_handle)
            self.so_handle = NULL
            self.margin_fn = NULL
            self.margin_batch_fn = NULL
        if self.kind == KIND_COMPILED:
            self.kind = -1
            self.backend = "none"

    def _attach_capi(self, str libpath, bytes model_json, int nthread=0):
        cdef bytes blib = libpath.encode()
        cdef void* h = dlopen(blib, RTLD_NOW | RTLD_LOCAL)
        if h == NULL:
            raise KaizenError(f"{libpath}: cannot load libxgboost ({(<bytes>dlerror()).decode(errors='replace')})")
        cdef xgb_create_t create = <xgb_create_t>dlsym(h, "XGBoosterCreate")
        cdef xgb_load_buf_t load = <xgb_load_buf_t>dlsym(h, "XGBoosterLoadModelFromBuffer")
        cdef xgb_set_param_t set_param = <xgb_set_param_t>dlsym(h, "XGBoosterSetParam")
        self.xgb_predict = <xgb_predict_dense_t>dlsym(h, "XGBoosterPredictFromDense")
        self.xgb_free = <xgb_free_t>dlsym(h, "XGBoosterFree")
        self.xgb_last_error = <xgb_last_error_t>dlsym(h, "XGBGetLastError")
        if (create == NULL or load == NULL or set_param == NULL or self.xgb_predict == NULL
                or self.xgb_free == NULL or self.xgb_last_error == NULL):
            raise KaizenError(f"{libpath}: libxgboost lacks the C API symbols")
        cdef void* b = NULL
        if create(NULL, 0, &b) != 0:
            raise KaizenError(f"XGBoosterCreate failed: {(<bytes>self.xgb_last_error()).decode()}")
        self.booster = b
        if load(b, <const char*>model_json, len(model_json)) != 0:
            raise KaizenError(f"XGBoosterLoadModelFromBuffer failed: {(<bytes>self.xgb_last_error()).decode()}")
        if nthread > 0:
            set_param(b, b"nthread", str(nthread).encode())
        self.cfg_value = (b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
                          b'"strict_shape": false, "missing": NaN, "cache_id": 0}')
        self.cfg_margin = self.cfg_value.replace(b'"type": 0', b'"type": 1')
        self.cfg_value_c = self.cfg_value
        self.cfg_margin_c = self.cfg_margin
        self.kind = KIND_CAPI
        self.backend = "capi"

    # ---- hot path -------------------------------------------------------------------------

    cdef int _capi(self, const float* X, long n, bint margin, float* out) noexcept nogil:
        """XGBoost's prediction for n rows into out (n * width floats); 0 on success."""
        cdef char iface[160]
        cdef const uint64_t* shape
        cdef uint64_t dim, total = 1, i
        cdef const float* res
        snprintf(iface, sizeof(iface),
                 '{"data": [%llu, true], "shape": [%ld, %d], "typestr": "<f4", "version": 3}',
                 <unsigned long long><size_t>X, n, self.num_features)
        if self.xgb_predict(self.booster, iface, self.cfg_margin_c if margin else self.cfg_value_c,
                            NULL, &shape, &dim, &res) != 0:
            return -1
        for i in range(dim):
            total *= shape[i]
        memcpy(out, res, total * sizeof(float))
        return 0

    cdef void margin_ptr(self, const float* row, float* m) noexcept nogil:
        """Raw margins (num_groups floats), before the objective's transform."""
        cdef int k, t
        cdef const FNode* nd
        cdef float v
        cdef bint right
        if self.kind == KIND_COMPILED:
            self.margin_fn(row, m)
        elif self.kind == KIND_INTERP:
            for k in range(self.num_groups):
                m[k] = self.base[k]
            for t in range(self.num_trees):
                nd = &self.nodes[self.roots[t]]
                while nd.feat >= 0:
                    v = row[nd.feat]
                    # NaN fails every comparison: `v >= thr` sends it left, `!(v < thr)` right.
                    if nd.default_left:
                        right = v >= nd.thr
                    else:
                        right = not (v < nd.thr)
                    nd = &self.nodes[nd.right if right else nd.left]
                m[self.groups[t]] += nd.thr
        elif self.kind == KIND_CAPI:
            if self._capi(row, 1, True, m) != 0:
                for k in range(self.num_groups):
                    m[k] = NAN

    cdef void predict_ptr(self, const float* row, double* out) noexcept nogil:
        """Prediction for one row of num_features floats (NaN = missing) into num_outputs doubles."""
        cdef float m[MAX_GROUPS]
        cdef int k
        if self.kind == KIND_CAPI:
            if self._capi(row, 1, False, m) != 0:
                for k in range(self.num_outputs):
                    m[k] = NAN
            for k in range(self.num_outputs):
                out[k] = m[k]
            return
        self.margin_ptr(row, m)
        _transform(self.transform, m, self.num_groups, out)

    cdef void predict_batch_ptr(self, const float* X, long n, double* out) noexcept nogil:
        cdef long r
        cdef float* m
        cdef int g = self.num_groups, w = self.num_outputs, k
        if self.kind == KIND_INTERP:
            for r in range(n):
                self.predict_ptr(X + r * self.num_features, out + r * w)
            return
        m = <float*>malloc(max(n, 1) * g * sizeof(float))
        if m == NULL:
            for r in range(n * w):
                out[r] = NAN
            return
        if self.kind == KIND_CAPI:
            if self._capi(X, n, False, m) != 0:
                for r in range(n * w):
                    m[r] = NAN
            for r in range(n * w):
                out[r] = m[r]
        else:
            self.margin_batch_fn(X, n, m)
            for r in range(n):
                _transform(self.transform, m + r * g, g, out + r * w)
        free(m)

    # ---- Python API -----------------------------------------------------------------------

    cdef _rows(self, X):
        a = np.ascontiguousarray(X, dtype=np.float32)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.ndim != 2 or a.shape[1] != self.num_features:
            raise DataError(f"input has shape {np.shape(X)}; model expects rows of {self.num_features} features")
        return a

    def _check_ready(self):
        if self.kind < 0:
            raise KaizenError("forest has no backend attached")

    def predict(self, X, bint output_margin=False):
        """Predictions for a 2-D float32 array, shaped as Booster.predict gives them: (n,) or (n, K)."""
        self._check_ready()
        a = self._rows(X)
        cdef const float[:, ::1] xv = a
        cdef long n = a.shape[0], r
        if output_margin:
            mo = np.empty((n, self.num_groups), dtype=np.float32)
            if n:
                self._margins(xv, mo)
            return mo[:, 0] if self.num_groups == 1 else mo
        out = np.empty((n, self.num_outputs), dtype=np.float64)
        cdef double[:, ::1] ov = out
        if n:
            with nogil:
                self.predict_batch_ptr(&xv[0, 0], n, &ov[0, 0])
        return out[:, 0] if self.num_outputs == 1 else out

    cdef _margins(self, const float[:, ::1] xv, float[:, ::1] mv):
        cdef long n = xv.shape[0], r
        cdef int k
        if self.kind == KIND_CAPI:
            with nogil:
                if self._capi(&xv[0, 0], n, True, &mv[0, 0]) != 0:
                    for r in range(n):
                        for k in range(self.num_groups):
                            mv[r, k] = NAN
        elif self.kind == KIND_COMPILED:
            with nogil:
                self.margin_batch_fn(&xv[0, 0], n, &mv[0, 0])
        else:
            with nogil:
                for r in range(n):
                    self.margin_ptr(&xv[r, 0], &mv[r, 0])

    def predict_row(self, x):
        """One row (1-D float32): a float, or an array of K probabilities for multi:softprob."""
        cdef const float[::1] xv
        cdef double out[MAX_GROUPS]
        if type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 1 and x.flags.c_contiguous:
            xv = x
        else:
            xv = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        if xv.shape[0] != self.num_features:
            raise DataError(f"row has {xv.shape[0]} features; model expects {self.num_features}")
        if self.kind < 0:
            raise KaizenError("forest has no backend attached")
        self.predict_ptr(&xv[0], out)
        if self.num_outputs == 1:
            return out[0]
        return np.array([out[k] for k in range(self.num_outputs)])

    def latency_ns(self, X, int reps=1):
        """Per-call latency of predict_ptr (the Cython hot path) in ns, cycling over the rows of X."""
        self._check_ready()
        a = self._rows(X)
        cdef const float[:, ::1] xv = a
        cdef long n = a.shape[0], i, total = n * reps
        res = np.empty(total, dtype=np.int64)
        cdef int64_t[::1] rv = res
        cdef double out[MAX_GROUPS]
        cdef int64_t t0, t1
        cdef double sink = 0.0
        with nogil:
            for i in range(total):
                t0 = _now_ns()
                self.predict_ptr(&xv[i % n, 0], out)
                t1 = _now_ns()
                rv[i] = t1 - t0
                sink += out[0]
        self._sink = sink
        return res

    def __repr__(self):
        return (f"<Forest {self.backend} {self.objective} features={self.num_features} "
                f"outputs={self.num_outputs} hash={self.model_hash[:12]}>")


# --- Bench-only harness: tl2cgen's generated `predict` called at the C level ------------------
# tl2cgen emits `void predict(union Entry* data, int pred_margin, float* result)`, where Entry is a
# 4-byte union {int missing; float fvalue;} with missing == -1, and result must be zeroed first.
# These time it exactly like Forest.latency_ns times predict_ptr, so bench/forest.py can compare
# compiled code with compiled code. Rows arrive already in Entry layout (int32 bit patterns).
ctypedef void (*entry_predict_t)(const void* data, int pred_margin, float* result) noexcept nogil


cdef void* _open_entry_predict(str libpath, entry_predict_t* fn) except NULL:
    cdef bytes blib = libpath.encode()
    cdef void* h = dlopen(blib, RTLD_NOW | RTLD_LOCAL)
    if h == NULL:
        raise KaizenError(f"{libpath}: cannot load ({(<bytes>dlerror()).decode(errors='replace')})")
    fn[0] = <entry_predict_t>dlsym(h, "predict")
    if fn[0] == NULL:
        dlclose(h)
        raise KaizenError(f"{libpath}: no `predict` symbol")
    return h


def entry_predict(str libpath, const int32_t[:, ::1] entries, int num_outputs=1):
    """Outputs of a tl2cgen library's `predict` (transformed) for every row, one C call per row."""
    cdef entry_predict_t fn = NULL
    cdef void* h = _open_entry_predict(libpath, &fn)
    cdef long n = entries.shape[0], i
    cdef int k
    res = np.empty((n, num_outputs), dtype=np.float32)
    cdef float[:, ::1] rv = res
    with nogil:
        for i in range(n):
            for k in range(num_outputs):
                rv[i, k] = 0.0
            fn(&entries[i, 0], 0, &rv[i, 0])
    dlclose(h)
    return res


def entry_latency_ns(str libpath, const int32_t[:, ::1] entries, int reps=1):
    """Per-call latency (ns) of a tl2cgen `predict`, same loop and clock as Forest.latency_ns."""
    cdef entry_predict_t fn = NULL
    cdef void* h = _open_entry_predict(libpath, &fn)
    cdef long n = entries.shape[0], i, total = n * reps
    res = np.empty(total, dtype=np.int64)
    cdef int64_t[::1] rv = res
    cdef float out[MAX_GROUPS]
    cdef int64_t t0, t1
    with nogil:
        for i in range(total):
            t0 = _now_ns()
            out[0] = 0.0
            fn(&entries[i % n, 0], 0, out)
            t1 = _now_ns()
            rv[i] = t1 - t0
    dlclose(h)
    return res  # fn is opaque (dlsym), so its calls cannot be elided
