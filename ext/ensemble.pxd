# The signal ensemble on the hot path: base forests on their feature surfaces, then the meta model on
# the bases' logits (plus the regime detector's probabilities when it was trained with them), all
# through C. The meta is a forest (XGBoost) or a logistic regression (kaizen.models.stacking).

from kaizen.ext.forest cimport Forest

cdef enum:
    MAX_BASES = 32
    MAX_COLS = 64
    MAX_EXTRA = 16
    MAX_META_IN = 544          # logistic with regimes: (K - 1) + bases x K inputs
    META_FOREST = 0
    META_LOGISTIC = 1


cdef class CompiledEnsemble:
    cdef readonly int num_bases
    cdef readonly int num_features      # width of the full feature vector the bases read from
    cdef readonly int num_extra         # regime probabilities the meta reads (0: none)
    cdef readonly int meta_mode
    cdef readonly str version
    cdef list _forests                  # keeps the Forest objects alive
    cdef Forest meta
    cdef int ncols[MAX_BASES]
    cdef int cols[MAX_BASES][MAX_COLS]
    cdef float row[MAX_COLS]
    cdef float meta_row[MAX_BASES + MAX_EXTRA]
    cdef double base_out[MAX_BASES]
    cdef double logits[MAX_BASES]
    cdef double intercept
    cdef double coef[MAX_META_IN]
    cdef int n_coef

    cdef double predict_c(self, const double* x, const double* extra) noexcept
