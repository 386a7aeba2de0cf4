// kernels/cpu/gemm.hpp — single-threaded fp32 GEMM on row-major matrices, no allocation.
//
//   C[M x N] = A[M x K] * B[K x N]          (all row-major, leading dimensions lda/ldb/ldc)
//
// Every convolution and linear layer of the engine ends up here. The arithmetic is
// Eigen's GEBP kernel (Goto's algorithm: pack a kc x mc panel of one operand and a
// kc x nc block of the other into contiguous, register-tile-ordered buffers, then run
// an mr x nr register-blocked micro-kernel over them). Two things differ from writing
// `C = A * B` with Eigen matrices:
//
//  * Threads. Eigen would parallelise the product itself with OpenMP. softbio instead
//    splits each convolution into independent tiles and runs one single-threaded GEMM
//    per tile inside its own OpenMP loop (see conv2d.hpp), so Eigen never spawns
//    threads and one knob (softbio::set_num_threads) controls all CPU use.
//  * Memory. Eigen allocates its packing buffers on every large product. Here the
//    caller plans the blocking once (plan_gemm) and passes a workspace of that size, so a
//    forward pass performs no heap allocation.
//
// The plain triple loop gemm_reference() is the obviously-correct version the tests
// compare against.
#pragma once

#include <algorithm>
#include <cstddef>

#include <Eigen/Core>

// plan_gemm/gemm below call Eigen internals (gemm_blocking_space, the 9-argument
// general_matrix_matrix_product::run) whose signatures are Eigen 3.4's.
#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "softbio needs Eigen 3.4 or newer (kernels/cpu/gemm.hpp uses Eigen 3.4 internals)"
#endif

#include "../op_params.hpp"

namespace softbio::cpu {

/// Cache-blocking sizes of Eigen's GEBP: a kc x mc panel of one operand and a kc x nc
/// block of the other are packed per step. Eigen computes a row-major C as the
/// column-major product C^T = B^T * A^T, so its "rows" (mc) run along our N and its
/// "cols" (nc) along our M. Eigen's heuristic picks them from the cache sizes *and the
/// problem size* (a smaller product may get a larger kc), so a caller that runs many
/// tiles plans the sizes once, for its largest tile, and uses them for every tile.
struct GemmBlockSizes {
    Eigen::Index kc = 0, mc = 0, nc = 0;
    size_t floats_a() const { return size_t(kc) * size_t(mc); }
    size_t floats_b() const { return size_t(kc) * size_t(nc); }
    /// Workspace gemm() needs with these sizes (A block, then B block, both aligned).
    size_t workspace_floats() const { return align_floats(floats_a()) + align_floats(floats_b()); }
};

/// Eigen's blocking for an M x N x K product.
inline GemmBlockSizes plan_gemm(int m, int n, int k) {
    GemmBlockSizes b;
    b.kc = k, b.mc = n, b.nc = m;
    Eigen::internal::computeProductBlockingSizes<float, float, 1>(b.kc, b.mc, b.nc, Eigen::Index(1));
    return b;
}

namespace detail {
// Eigen's blocking object, pointing at our memory instead of allocating its own.
class GemmBlocking : public Eigen::internal::level3_blocking<float, float> {
public:
    GemmBlocking(const GemmBlockSizes& sizes, float* workspace) {
        this->m_kc = sizes.kc;
        this->m_mc = sizes.mc;
        this->m_nc = sizes.nc;
        this->m_blockA = workspace;
        this->m_blockB = workspace + align_floats(sizes.floats_a());
    }
};
}  // namespace detail

/// C = A * B (overwrites C) for any m <= the planned M, n <= N (same K). `workspace`
/// holds sizes.workspace_floats() floats, 64-byte aligned. Single-threaded; never
/// allocates.
inline void gemm(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc,
                 const GemmBlockSizes& sizes, float* workspace) {
    for (int i = 0; i < m; ++i) std::fill(c + size_t(i) * ldc, c + size_t(i) * ldc + n, 0.0f);
    if (m == 0 || n == 0 || k == 0) return;
    detail::GemmBlocking blocking(sizes, workspace);
    using Product = Eigen::internal::general_matrix_matrix_product<Eigen::Index, float, Eigen::RowMajor, false, float,
                                                                   Eigen::RowMajor, false, Eigen::RowMajor, 1>;
    // Eigen accumulates: C += alpha * A * B.
    Product::run(m, n, k, a, lda, b, ldb, c, 1, ldc, 1.0f, blocking, nullptr);
}

/// Reference: C = A * B with a plain triple loop, accumulating in double.
inline void gemm_reference(int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
                           int ldc) {
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double sum = 0.0;
            for (int p = 0; p < k; ++p) sum += double(a[size_t(i) * lda + p]) * double(b[size_t(p) * ldb + j]);
            c[size_t(i) * ldc + j] = float(sum);
        }
}

}  // namespace softbio::cpu
