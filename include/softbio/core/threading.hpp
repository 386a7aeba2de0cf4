// softbio/core/threading.hpp — the one thread-count knob.
//
// Every CPU kernel runs its own OpenMP loop with an explicit thread count that comes
// from here (through the Workspace it was planned with); Eigen is only ever called
// single-threaded inside those loops (kernels/cpu/gemm.hpp), so threads are never
// nested and `set_num_threads(n)` really limits softbio to n cores.
#pragma once

#include <algorithm>
#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio {

namespace detail {
inline std::atomic<int>& thread_setting() {
    static std::atomic<int> n{0};  // 0 = one per available core
    return n;
}
}  // namespace detail

/// Threads OpenMP would use by default (honours OMP_NUM_THREADS; else one per core).
inline int available_cores() {
#ifdef _OPENMP
    return std::max(1, omp_get_max_threads());
#else
    return 1;
#endif
}

/// Set how many threads new workspaces use; 0 means OpenMP's default
/// (OMP_NUM_THREADS if set, else one per core).
inline void set_num_threads(int n) { detail::thread_setting() = std::max(0, n); }

/// Threads new workspaces will use.
inline int num_threads() {
    const int n = detail::thread_setting();
#ifdef _OPENMP
    return n > 0 ? n : available_cores();
#else
    (void)n;
    return 1;
#endif
}

}  // namespace softbio
