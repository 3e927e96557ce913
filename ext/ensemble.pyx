# cython: language_level=3
"""Compiled signal ensemble (see ensemble.pxd).

`predict_c(x, extra)` runs every base forest on its surface's columns of the full feature vector
`x` (float64, NaN = missing, cast to float32 as XGBoost reads it), turns each base probability into
a logit exactly as training did (clip to [1e-6, 1 - 1e-6], then log(p / (1 - p)) in float64) and
returns the meta model's probability. `extra` holds the regime detector's K class probabilities
when the meta was trained with them (kaizen.models.stacking.design): a forest meta reads the
logits (as float32) then the probabilities; a logistic meta reads, in float64, the first K - 1
probabilities then every logit times every probability (base-major). No Python object is allocated: a C call for other Cython modules (it holds the GIL,
as the engine's thread does anyway).
`kaizen.models.ensemble.Ensemble.predict` is the reference it is tested against.
"""

from libc.math cimport exp, log

from kaizen.ext.forest cimport Forest

import numpy as np


cdef class CompiledEnsemble:
    def __init__(self, list bases, meta, int num_features, int num_extra=0, str version=""):
        """bases: [(Forest, column indices into the feature vector)] in the meta model's input order;
        meta: a Forest, or a logistic model {"intercept", "coef"} (kaizen.models.stacking)."""
        cdef int j, k
        cdef Forest f
        if not 0 < len(bases) <= MAX_BASES:
            raise ValueError(f"CompiledEnsemble: 1..{MAX_BASES} base models, got {len(bases)}")
        if not 0 <= num_extra <= MAX_EXTRA:
            raise ValueError(f"CompiledEnsemble: at most {MAX_EXTRA} extra meta inputs")
        if isinstance(meta, dict):
            coef = [float(c) for c in meta["coef"]]
            want = len(bases) if num_extra == 0 else (num_extra - 1) + len(bases) * num_extra
            if len(coef) != want or want > MAX_META_IN:
                raise ValueError(f"CompiledEnsemble: logistic meta has {len(coef)} coefficients, expected {want}")
            self.meta_mode = META_LOGISTIC
            self.intercept = float(meta["intercept"])
            self.n_coef = len(coef)
            for k in range(len(coef)):
                self.coef[k] = coef[k]
            self.meta = None
        else:
            if meta.num_features != len(bases) + num_extra:
                raise ValueError(
                    f"CompiledEnsemble: meta model reads {meta.num_features} inputs, "
                    f"given {len(bases)} bases + {num_extra} extra"
                )
            self.meta_mode = META_FOREST
            self.meta = meta
        self._forests = []
        for j, (f, idx) in enumerate(bases):
            cols = [int(c) for c in idx]
            if len(cols) != f.num_features or len(cols) > MAX_COLS:
                raise ValueError(f"CompiledEnsemble: base {j} reads {f.num_features} features, given {len(cols)} columns")
            if any(c < 0 or c >= num_features for c in cols):
                raise ValueError(f"CompiledEnsemble: base {j} column out of range 0..{num_features - 1}")
            if f.num_outputs != 1:
                raise ValueError(f"CompiledEnsemble: base {j} is not a single-output model")
            self._forests.append(f)
            self.ncols[j] = len(cols)
            for k in range(len(cols)):
                self.cols[j][k] = cols[k]
        if self.meta is not None:
            self._forests.append(self.meta)
        self.num_bases = len(bases)
        self.num_features = num_features
        self.num_extra = num_extra
        self.version = version

    cdef double predict_c(self, const double* x, const double* extra) noexcept:
        cdef int j, k, i, K = self.num_extra, B = self.num_bases
        cdef double p, out, eta
        cdef Forest f
        for j in range(B):
            for k in range(self.ncols[j]):
                self.row[k] = <float> x[self.cols[j][k]]
            f = <Forest> self._forests[j]
            f.predict_ptr(self.row, &self.base_out[j])
            p = <float> self.base_out[j]  # XGBoost's prediction is a float32
            if p < 1e-6:
                p = 1e-6
            elif p > 1.0 - 1e-6:
                p = 1.0 - 1e-6
            self.logits[j] = log(p / (1.0 - p))
        if self.meta_mode == META_LOGISTIC:
            eta = self.intercept
            if K == 0:
                for j in range(B):
                    eta += self.coef[j] * self.logits[j]
            else:
                for k in range(K - 1):
                    eta += self.coef[k] * extra[k]
                i = K - 1
                for j in range(B):
                    for k in range(K):
                        eta += self.coef[i] * (self.logits[j] * extra[k])
                        i += 1
            return 1.0 / (1.0 + exp(-eta))
        for j in range(B):
            self.meta_row[j] = <float> self.logits[j]
        for k in range(K):
            self.meta_row[B + k] = <float> extra[k]
        self.meta.predict_ptr(self.meta_row, &out)
        return out

    def predict(self, x, extra=None):
        """Meta probability for one full feature vector (float64); `extra` the extra meta inputs."""
        cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
        cdef const double[::1] ev
        cdef double zero = 0.0
        if xv.shape[0] != self.num_features:
            raise ValueError(f"feature vector has {xv.shape[0]} values; the ensemble reads {self.num_features}")
        if self.num_extra:
            if extra is None:
                raise ValueError(f"this ensemble needs {self.num_extra} extra meta inputs")
            ev = np.ascontiguousarray(extra, dtype=np.float64).reshape(-1)
            if ev.shape[0] != self.num_extra:
                raise ValueError(f"extra has {ev.shape[0]} values; the ensemble needs {self.num_extra}")
            return self.predict_c(&xv[0], &ev[0])
        return self.predict_c(&xv[0], &zero)

    def base_predictions(self):
        """The base probabilities of the latest `predict` call, in base order."""
        return [self.base_out[j] for j in range(self.num_bases)]
