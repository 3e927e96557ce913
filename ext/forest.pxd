"""Typed interface over the three tree-ensemble predictors (compiled C, flat interpreter, XGBoost C API)."""

from libc.stdint cimport int32_t, uint64_t

# Signatures of the generated shared library's entry points (see kaizen/models/forest_codegen.py).
ctypedef void (*margin_fn_t)(const float* row, float* margin) noexcept nogil
ctypedef void (*margin_batch_fn_t)(const float* X, long n, float* margins) noexcept nogil

# XGBoost C API (libxgboost.so), resolved with dlsym.
ctypedef int (*xgb_create_t)(const void** dmats, uint64_t n, void** out) noexcept nogil
ctypedef int (*xgb_load_buf_t)(void* handle, const void* buf, uint64_t n) noexcept nogil
ctypedef int (*xgb_set_param_t)(void* handle, const char* name, const char* value) noexcept nogil
ctypedef int (*xgb_predict_dense_t)(void* handle, const char* values, const char* config, void* m,
                                    const uint64_t** out_shape, uint64_t* out_dim,
                                    const float** out_result) noexcept nogil
ctypedef int (*xgb_free_t)(void* handle) noexcept nogil
ctypedef const char* (*xgb_last_error_t)() noexcept nogil

# Interpreter node: a leaf has feat == -1 and its value in thr.
cdef struct FNode:
    float thr
    int32_t feat
    int32_t left
    int32_t right
    int32_t default_left

cdef enum:
    KIND_INTERP = 0
    KIND_COMPILED = 1
    KIND_CAPI = 2
    MAX_GROUPS = 256


cdef class Forest:
    cdef readonly int num_features
    cdef readonly int num_outputs       # width of one prediction row (K for multi:softprob, else 1)
    cdef readonly int num_groups        # margin groups (K for multi-class, else 1)
    cdef readonly int transform
    cdef readonly str objective
    cdef readonly str backend
    cdef readonly str model_hash
    cdef public object build_info       # compiled backend: {"path", "compiled", "compile_s", "key"}
    cdef int kind
    cdef float base[MAX_GROUPS]
    # interpreter
    cdef FNode* nodes
    cdef int32_t* roots
    cdef int32_t* groups
    cdef int num_trees
    # compiled
    cdef void* so_handle
    cdef margin_fn_t margin_fn
    cdef margin_batch_fn_t margin_batch_fn
    # C API
    cdef void* booster
    cdef xgb_predict_dense_t xgb_predict
    cdef xgb_free_t xgb_free
    cdef xgb_last_error_t xgb_last_error
    cdef bytes cfg_value
    cdef bytes cfg_margin
    cdef const char* cfg_value_c        # borrowed from the bytes above
    cdef const char* cfg_margin_c
    cdef double _sink                   # keeps latency_ns's calls from being optimised away

    cdef void margin_ptr(self, const float* row, float* margin) noexcept nogil
    cdef void predict_ptr(self, const float* row, double* out) noexcept nogil
    cdef void predict_batch_ptr(self, const float* X, long n, double* out) noexcept nogil
    cdef _rows(self, X)
    cdef _margins(self, const float[:, ::1] xv, float[:, ::1] mv)
    cdef int _capi(self, const float* X, long n, bint margin, float* out) noexcept nogil
