# The signal ensemble on the hot path: base forests on their feature surfaces, then the meta forest on
# the bases' logits (plus optional extra meta inputs such as regime probabilities), all through C.

from kaizen.ext.forest cimport Forest

cdef enum:
    MAX_BASES = 32
    MAX_COLS = 64
    MAX_EXTRA = 16


cdef class CompiledEnsemble:
    cdef readonly int num_bases
    cdef readonly int num_features      # width of the full feature vector the bases read from
    cdef readonly int num_extra         # extra meta inputs after the base logits
    cdef readonly str version
    cdef list _forests                  # keeps the Forest objects alive
    cdef Forest meta
    cdef int ncols[MAX_BASES]
    cdef int cols[MAX_BASES][MAX_COLS]
    cdef float row[MAX_COLS]
    cdef float meta_row[MAX_BASES + MAX_EXTRA]
    cdef double base_out[MAX_BASES]

    cdef double predict_c(self, const double* x, const double* extra) noexcept
