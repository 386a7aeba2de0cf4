// kernels/cpu/gemm_packed.hpp — softbio's own convolution GEMM: weights packed once at
// load, im2col folded into the packing of the activations, a register-blocked SIMD
// micro-kernel with the epilogue applied while the results are still in registers.
//
// THE MATH. A convolution is the matrix product (kernels/cpu/conv2d.hpp)
//
//     C[M x N] = P[M x K] * W[K x N]        M = batch*out_h*out_w output pixels,
//                                            K = kh*kw*Cin filter taps, N = Cout
//
// followed per element by the epilogue y = act(C*scale[n] + bias[n] + residual[m, n])
// (kernels/cpu/epilogue.hpp). Row m of P is the input under output pixel m's window, in
// (ky, kx, ci) order; in NHWC memory each tap is a contiguous run of Cin floats.
//
// WHERE THE TIME GOES. One output element needs K multiply-adds. A core does 2 vector
// FMAs per cycle (16 floats each with AVX-512): 64 FLOP/cycle. It can load about 2
// vectors per cycle from L1. A naive loop loads one A and one B value per FMA, so it is
// bound by loads, far below the FMA rate. The cure is to keep a block of C in registers
// and reuse every loaded value many times: the MICRO-KERNEL computes an MR x NR block of C
// (MR pixels x NR channels) as a sum of K outer products:
//
//     for k in 0..K-1:                            b = W[k, n0 .. n0+NR)     NR/16 vector loads
//         for r in 0..MR-1:                       a = broadcast(P[m0+r, k]) 1 broadcast
//             acc[r][:] += a * b                  NR/16 FMAs
//
// With AVX-512, MR = 14 and NR = 32 (2 zmm): 28 accumulator registers + 2 for b + 1 for
// a broadcast = 31 of the 32 zmm registers. Per k: 2 loads + 14 broadcasts feed 28 FMAs,
// so the FMA units, not the loads, set the pace; and 28 independent accumulators are
// more than the 2 FMA units x 4 cycles latency = 8 needed to keep both units busy.
// With AVX2 (16 ymm registers of 8 floats): MR = 6, NR = 16 (2 ymm): 12 accumulators +
// 2 + 1. Without either, a plain C++ 4 x 4 block (the compiler may vectorise it).
// The ISA is chosen at compile time (__AVX512F__, then __AVX2__ + __FMA__), so a
// program built with -march=native on an AVX2-only machine runs the AVX2 kernel.
//
// PACKING. The micro-kernel wants its operands in the order it reads them:
//  * W (the weights) is packed ONCE, at load (pack_conv_weights_panels), into column
//    panels of NR channels, cut along K into the same K blocks as the GEMM (KC below):
//    the block of panel j for K block [k0, k0+kc) holds W[k, j*NR .. j*NR+NR) for
//    k = k0..k0+kc-1, one row of NR floats after the other ("K-major"), so the
//    micro-kernel's b loads walk memory contiguously; and the blocks of all panels of
//    one K block follow each other, in the order the GEMM visits them, so the weights
//    stream from memory as one sequential run per K block (what the hardware prefetcher
//    follows best). Channels past N in the last panel are zeros. A one-line header in
//    front of the panels says what the buffer is (see "THE BUFFER" below).
//  * P (the activations) is packed per tile, per K block: rows [m0, m0+mc), taps
//    [k0, k0+kc) are gathered straight from the NHWC input into a row-major [mc x kc]
//    block (pack_patch_block): im2col and packing are one pass, and the patch matrix
//    never exists beyond this block. A 1x1 stride-1 convolution skips even that: its
//    input already is P (row m = pixel m's Cin channels), read in place.
//
// CACHE BLOCKING (why K and M are cut into blocks):
//
//     for each tile of MC rows x NC columns (one OpenMP task)
//       for k0 in 0, KC, 2KC, ...                 K block
//         pack P[m0 .. m0+MC, k0 .. k0+KC)        -> MC x KC block, stays in L2
//         for each NR panel j of the tile         W[k0..k0+KC, panel j]: KC x NR floats,
//           for each MR row group i                 stays in L1 while i loops
//             micro-kernel: C[i, j] (+)= Pblock[i] * Wpanel[j]   (KC steps)
//
//  * KC bounds the K extent so that one weight panel block (KC x NR x 4 bytes = 24 KiB
//    for KC = 192, NR = 32) stays in L1 across the MC/MR micro-kernel calls that reuse it,
//    and the P block (MC x KC) in L2 across the N/NR panels that reuse it.
//  * MC x NC is the unit of parallel work: every thread takes whole tiles. In this loop
//    order the weights stream (each KC x NR block is used from L1 by all the row groups,
//    then not again in the tile) while the P block is what stays in L2, so NC needs no
//    cache bound: it is all of N, or a part of it where the rows are too few to keep
//    every thread busy (7 x 7 = 49 pixels at batch 1: the columns are split too).
//  * When K > KC, the micro-kernel adds into C for the later K blocks (C is still in L1/L2),
//    and only the last K block applies the epilogue, in registers, before its store.
//
// EDGES. M not a multiple of MR: the micro-kernel is compiled for every row count 1..MR
// (a template) and the last row group calls the one it needs. N not a multiple of NR:
// the packed panel has zero columns, the micro-kernel computes them and stores only the
// valid ones (masked stores).
//
// THE BUFFER. pack_conv_weights_panels writes a 16-float header (64 bytes: the panels
// stay 64-byte aligned), whose first float is a NaN with a fixed payload that no checked
// filter holds (filters are checked finite at load), then K, N, NR and KC. conv2d()
// (kernels/cpu/conv2d.hpp) reads that header to tell this layout from the plain [K x N]
// one that Eigen's path and the CUDA backend take, so the backend's conv2d call is the
// same for both. A packed buffer that does not fit the call (another K or N, or packed
// by a build with another NR or KC) is refused with an exception, never read as plain
// weights: conv2d() sends every tagged buffer here, and conv2d_packed checks the header.
//
// No allocation: the per-thread P block comes from the caller's workspace, sized by
// conv2d_packed_workspace_floats (the conv's workspace plan covers it).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <utility>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../op_params.hpp"

// Loop unrolling hints for the micro-kernel (GCC and clang read "GCC unroll"; nvcc's
// front end, which also sees this header in .cu files, does not: there, nothing).
#define SOFTBIO_PRAGMA(x) _Pragma(#x)
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define SOFTBIO_CPU_UNROLL(n) SOFTBIO_PRAGMA(GCC unroll n)
#else
#define SOFTBIO_CPU_UNROLL(n)
#endif
// Force inlining of the micro-kernel's parts (the accumulators must stay in registers).
#if defined(__GNUC__) || defined(__clang__)
#define SOFTBIO_CPU_INLINE inline __attribute__((always_inline))
#else
#define SOFTBIO_CPU_INLINE inline
#endif

namespace softbio::cpu {

namespace packed_detail {

// ---- the vector types: one struct per ISA, the same few operations ---------------------

#if defined(__AVX512F__)
struct Vec {
    using T = __m512;
    static constexpr int W = 16;  // floats per register
    static constexpr const char* isa = "avx512";
    static T zero() { return _mm512_setzero_ps(); }
    static T set1(float x) { return _mm512_set1_ps(x); }
    static T loadu(const float* p) { return _mm512_loadu_ps(p); }
    static void storeu(float* p, T v) { _mm512_storeu_ps(p, v); }
    static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }
    static T loadu_n(const float* p, int n) { return n == W ? loadu(p) : _mm512_maskz_loadu_ps(mask(n), p); }
    static void storeu_n(float* p, T v, int n) {
        if (n == W) storeu(p, v);
        else _mm512_mask_storeu_ps(p, mask(n), v);
    }
    static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
    static T add(T a, T b) { return _mm512_add_ps(a, b); }
    static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
    // relu as op_params.hpp's: y < 0 ? 0 : y, NaN passes. max(0, y) returns its second
    // operand when either is NaN (and for -0 vs 0), so y's NaN and -0 pass through.
    static T relu(T y) { return _mm512_max_ps(zero(), y); }
    // leaky_relu: y < 0 (ordered: false for NaN) ? alpha*y : y.
    static T leaky(T y, T alpha) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, zero(), _CMP_LT_OQ), y, _mm512_mul_ps(alpha, y));
    }
};
inline constexpr int kMR = 14, kNV = 2;
#elif defined(__AVX2__) && defined(__FMA__)
struct Vec {
    using T = __m256;
    static constexpr int W = 8;
    static constexpr const char* isa = "avx2";
    static T zero() { return _mm256_setzero_ps(); }
    static T set1(float x) { return _mm256_set1_ps(x); }
    static T loadu(const float* p) { return _mm256_loadu_ps(p); }
    static void storeu(float* p, T v) { _mm256_storeu_ps(p, v); }
    static __m256i mask(int n) {  // lanes 0..n-1 all ones
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static T loadu_n(const float* p, int n) { return n == W ? loadu(p) : _mm256_maskload_ps(p, mask(n)); }
    static void storeu_n(float* p, T v, int n) {
        if (n == W) storeu(p, v);
        else _mm256_maskstore_ps(p, mask(n), v);
    }
    static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
    static T add(T a, T b) { return _mm256_add_ps(a, b); }
    static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
    static T relu(T y) { return _mm256_max_ps(zero(), y); }  // NaN / -0 pass (second operand)
    static T leaky(T y, T alpha) {
        return _mm256_blendv_ps(y, _mm256_mul_ps(alpha, y), _mm256_cmp_ps(y, zero(), _CMP_LT_OQ));
    }
};
#ifndef SOFTBIO_AVX2_MR
#define SOFTBIO_AVX2_MR 6
#define SOFTBIO_AVX2_NV 2
#endif
inline constexpr int kMR = SOFTBIO_AVX2_MR, kNV = SOFTBIO_AVX2_NV;
#else
struct Vec {  // plain C++: one float per "register"
    using T = float;
    static constexpr int W = 1;
    static constexpr const char* isa = "scalar";
    static T zero() { return 0.0f; }
    static T set1(float x) { return x; }
    static T loadu(const float* p) { return *p; }
    static void storeu(float* p, T v) { *p = v; }
    static T loadu_n(const float* p, int) { return *p; }  // n is always 1 here
    static void storeu_n(float* p, T v, int) { *p = v; }
    static T fma(T a, T b, T c) { return a * b + c; }
    static T add(T a, T b) { return a + b; }
    static T mul(T a, T b) { return a * b; }
    static T relu(T y) { return softbio::relu(y); }
    static T leaky(T y, T alpha) { return softbio::leaky_relu(y, alpha); }
};
inline constexpr int kMR = 4, kNV = 4;
#endif

}  // namespace packed_detail

/// The register block of the micro-kernel this build uses: MR pixels x NR channels.
inline constexpr int kPackedMR = packed_detail::kMR;
inline constexpr int kPackedNR = packed_detail::kNV * packed_detail::Vec::W;
/// "avx512", "avx2" or "scalar": the micro-kernel compiled into this program.
inline const char* packed_gemm_isa() { return packed_detail::Vec::isa; }

// ---- the packed weights --------------------------------------------------------------

/// Floats of the header in front of the packed panels (one 64-byte line).
inline constexpr size_t kPackedHeaderFloats = 16;
/// The header's tag: a quiet NaN with a payload (a checked filter never holds a NaN).
inline constexpr uint32_t kPackedWeightsTag = 0x7FC5B10Fu;

/// The K blocking (floats of K per block, at most KC; see the plan below). KC x NR x 4
/// bytes = 24 KiB of weights in L1 for AVX-512 (12 KiB for AVX2). -DSOFTBIO_PACKED_KC=...
/// overrides it, for tuning (weights are packed for one KC).
#ifndef SOFTBIO_PACKED_KC
#define SOFTBIO_PACKED_KC 192
#endif
inline constexpr int kPackedKC = SOFTBIO_PACKED_KC;

/// K blocks of (nearly) equal size, none longer than KC: the block length for K.
inline int packed_k_blocks(int k) { return std::max(1, (k + kPackedKC - 1) / kPackedKC); }
inline int packed_kc(int k) { return (k + packed_k_blocks(k) - 1) / packed_k_blocks(k); }

/// Column panels of NR channels for N output channels.
inline int packed_panels(int n) { return (n + kPackedNR - 1) / kPackedNR; }

/// Floats of pack_conv_weights_panels' output for this convolution (header + panels).
inline size_t packed_conv_weights_floats(const Conv2dParams& p) {
    return kPackedHeaderFloats + size_t(packed_panels(p.out_c)) * kPackedNR * size_t(p.gemm_k());
}

namespace packed_detail {
inline void put_u32(float* dst, uint32_t v) { std::memcpy(dst, &v, sizeof v); }
inline uint32_t get_u32(const float* src) {
    uint32_t v;
    std::memcpy(&v, src, sizeof v);
    return v;
}
}  // namespace packed_detail

/// Where the block of panel j for the K block starting at k0 (kcb long) starts, in
/// floats after the header: all panels of the earlier K blocks, then j blocks of kcb x NR.
inline size_t packed_block_offset(int k0, int kcb, int j, int n_pad) {
    return size_t(k0) * size_t(n_pad) + size_t(j) * size_t(kcb) * kPackedNR;
}

namespace packed_detail {
/// The panel layout, filled from any source of W: `row(k, c0, cols, dst)` writes
/// W[k, c0 .. c0+cols) to dst[0 .. cols). One thread, on purpose: run over 2 threads
/// the load of ResNet-101 was 95 ms instead of 125 (Xeon, 2 vCPUs), but an OpenMP team
/// allocates memory of its own, and a failed allocation inside the OpenMP runtime ends the
/// process instead of throwing (tests/test_alloc_failure.cpp makes every allocation of a
/// load fail in turn, and expects an exception each time).
template <class Row>
void fill_weight_panels(const Conv2dParams& p, const Row& row, float* packed) {
    const int k = p.gemm_k(), n = p.out_c, nr = kPackedNR;
    std::fill(packed, packed + kPackedHeaderFloats, 0.0f);
    put_u32(packed + 0, kPackedWeightsTag);
    put_u32(packed + 1, uint32_t(k));
    put_u32(packed + 2, uint32_t(n));
    put_u32(packed + 3, uint32_t(nr));
    put_u32(packed + 4, uint32_t(packed_kc(k)));
    float* panels = packed + kPackedHeaderFloats;
    const int kc = packed_kc(k), panel_count = packed_panels(n), n_pad = panel_count * nr;
    for (int j = 0; j < panel_count; ++j) {
        const int c0 = j * nr, cols = std::min(nr, n - c0);
        for (int k0 = 0; k0 < k; k0 += kc) {
            const int kcb = std::min(kc, k - k0);
            float* dst = panels + packed_block_offset(k0, kcb, j, n_pad);
            for (int kk = 0; kk < kcb; ++kk) {
                float* out = dst + size_t(kk) * nr;
                row(k0 + kk, c0, cols, out);
                for (int c = cols; c < nr; ++c) out[c] = 0.0f;  // channels past N: zeros
            }
        }
    }
}
}  // namespace packed_detail

/// Repack the plain GEMM operand W[K x N] (pack_conv_weights / pack_conv_weights_hwio,
/// BatchNorm already folded) into the micro-kernel's panel order, behind the header.
/// `packed` holds packed_conv_weights_floats(p) floats; 64-byte aligned (AlignedBuffer)
/// keeps every panel row on whole cache lines. Done once, at load.
inline void pack_conv_weights_panels(const Conv2dParams& p, const float* w_kn, float* packed) {
    const size_t n = size_t(p.out_c);
    packed_detail::fill_weight_panels(
        p,
        [&](int k, int c0, int cols, float* out) {
            const float* src = w_kn + size_t(k) * n + c0;
            for (int c = 0; c < cols; ++c) out[c] = src[c];
        },
        packed);
}

/// The same panels straight from PyTorch's filter layout [Cout, Cin, kh, kw], each output
/// channel co times out_scale[co] (null: 1): exactly pack_conv_weights followed by
/// pack_conv_weights_panels (the same products, rounded once), without the plain [K x N]
/// copy in between. What the layers' load does (layers/conv2d.hpp): one read of the
/// file's filters, one write of the panels. Row k of W is tap k / Cin, input channel
/// k % Cin (op_params.hpp), so the NR values of one panel row are NR filters' same tap.
inline void pack_conv_weights_panels_oihw(const Conv2dParams& p, const float* w_oihw, const float* out_scale,
                                          float* packed) {
    const int cin = p.in_c, taps = p.kernel_h * p.kernel_w;
    const size_t per_filter = size_t(cin) * taps;  // floats of one output channel's filter
    packed_detail::fill_weight_panels(
        p,
        [&](int k, int c0, int cols, float* out) {
            const int tap = k / cin, ci = k % cin;
            const float* src = w_oihw + size_t(c0) * per_filter + size_t(ci) * taps + tap;
            for (int c = 0; c < cols; ++c) out[c] = src[size_t(c) * per_filter] * (out_scale ? out_scale[c0 + c] : 1.0f);
        },
        packed);
}

/// Whether `w` starts with pack_conv_weights_panels' header (whatever it was made for).
inline bool is_packed_conv_weights(const float* w) { return w && packed_detail::get_u32(w) == kPackedWeightsTag; }

/// The packed weights' header matches convolution `p` (K, N) and this build (NR, KC).
inline bool packed_conv_weights_match(const Conv2dParams& p, const float* w) {
    return is_packed_conv_weights(w) && packed_detail::get_u32(w + 3) == uint32_t(kPackedNR) &&
           packed_detail::get_u32(w + 1) == uint32_t(p.gemm_k()) &&
           packed_detail::get_u32(w + 2) == uint32_t(p.out_c) &&
           packed_detail::get_u32(w + 4) == uint32_t(packed_kc(p.gemm_k()));
}

// ---- the micro-kernel ------------------------------------------------------------------

namespace packed_detail {

/// Hint the cache to fetch the line holding `p` (no fault if p is anywhere in a mapped
/// buffer; a no-op where the compiler has no builtin).
inline void prefetch_line(const float* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 1, 3);
#else
    (void)p;
#endif
}

/// The epilogue of one micro-tile: pointers already moved to its first row and column.
struct TileEpilogue {
    const float* scale = nullptr;     // [cols]
    const float* bias = nullptr;      // [cols]
    const float* residual = nullptr;  // row r at residual + r*ldc
    bool relu = false;
    float leaky_alpha = 0.0f;
};

/// The end of every micro-kernel (this one and gemm_bf16.hpp's): the R x NR block of
/// accumulators `acc` into C (rows at c + r*ldc, the first `cols` columns), added to what
/// C holds when `accumulate` (a later K block), with the epilogue `ep` (null, or the last
/// K block's) applied in registers before the store.
template <int R>
SOFTBIO_CPU_INLINE void store_block(typename Vec::T (&acc)[R][kNV], float* c, size_t ldc, int cols, bool accumulate,
                                    const TileEpilogue* ep) {
    using V = Vec;
    using T = typename V::T;
    constexpr int NV = kNV, W = V::W;
    // Store: per vector of columns, how many are valid (the last panel may be partial).
    int n_valid[NV];
SOFTBIO_CPU_UNROLL(4)
    for (int v = 0; v < NV; ++v) n_valid[v] = std::max(0, std::min(W, cols - v * W));
    T scale[NV], bias[NV];
    const bool has_scale = ep && ep->scale, has_bias = ep && ep->bias;
SOFTBIO_CPU_UNROLL(4)
    for (int v = 0; v < NV; ++v) {
        scale[v] = has_scale && n_valid[v] ? V::loadu_n(ep->scale + v * W, n_valid[v]) : V::set1(1.0f);
        bias[v] = has_bias && n_valid[v] ? V::loadu_n(ep->bias + v * W, n_valid[v]) : V::zero();
    }
    const T alpha = V::set1(ep ? ep->leaky_alpha : 0.0f);
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r) {
        float* crow = c + size_t(r) * ldc;
SOFTBIO_CPU_UNROLL(4)
        for (int v = 0; v < NV; ++v) {
            const int n = n_valid[v];
            if (n == 0) continue;
            T y = acc[r][v];
            if (accumulate) y = V::add(y, V::loadu_n(crow + v * W, n));
            if (ep) {
                if (has_scale) y = V::mul(y, scale[v]);
                if (has_bias) y = V::add(y, bias[v]);
                if (ep->residual) y = V::add(y, V::loadu_n(ep->residual + size_t(r) * ldc + v * W, n));
                if (ep->leaky_alpha != 0.0f) y = V::leaky(y, alpha);
                else if (ep->relu) y = V::relu(y);
            }
            V::storeu_n(crow + v * W, y, n);
        }
    }
}

/// C[R x NR] (+)= A[R x kc] * B[kc x NR], then (on the last K block) the epilogue.
///   a: row r at a + r*lda (the packed P block, or the input itself for 1x1 stride 1)
///   b: the weight panel's rows k0.., NR floats each (64-byte aligned in an AlignedBuffer;
///      read with unaligned loads, which cost nothing extra on aligned data)
///   c: row r at c + r*ldc; only the first `cols` (<= NR) columns are read or written
///   accumulate: add to C (a later K block) instead of overwriting it
///   ep: null, or the epilogue (the last K block only)
template <int R>
void micro_kernel(int kc, const float* a, size_t lda, const float* b, float* c, size_t ldc, int cols,
                  bool accumulate, const TileEpilogue* ep) {
    using V = Vec;
    using T = typename V::T;
    constexpr int NV = kNV, W = V::W, NR = NV * W;
    T acc[R][NV];
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r)
SOFTBIO_CPU_UNROLL(4)
        for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();

    const float* arow[R];
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r) arow[r] = a + size_t(r) * lda;
    // Ask for C's lines now: the stores at the end would otherwise wait for each line to
    // come from L3 (the output is written once, so it is rarely in L1 or L2); the K loop
    // below hides that latency.
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r)
SOFTBIO_CPU_UNROLL(4)
        for (int l = 0; l < NR; l += 16) prefetch_line(c + size_t(r) * ldc + l);
SOFTBIO_CPU_UNROLL(4)
    for (int k = 0; k < kc; ++k) {
        T bv[NV];
SOFTBIO_CPU_UNROLL(4)
        for (int v = 0; v < NV; ++v) bv[v] = V::loadu(b + size_t(k) * NR + v * W);
SOFTBIO_CPU_UNROLL(16)
        for (int r = 0; r < R; ++r) {
            const T av = V::set1(arow[r][k]);
SOFTBIO_CPU_UNROLL(4)
            for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
        }
    }

    store_block<R>(acc, c, ldc, cols, accumulate, ep);
}

using MicroKernel = void (*)(int, const float*, size_t, const float*, float*, size_t, int, bool, const TileEpilogue*);

template <size_t... I>
constexpr std::array<MicroKernel, sizeof...(I)> micro_kernel_table(std::index_sequence<I...>) {
    return {{&micro_kernel<int(I) + 1>...}};
}
/// micro_kernels()[R-1]: the micro-kernel for R rows (1..MR).
inline const std::array<MicroKernel, kMR>& micro_kernels() {
    static constexpr std::array<MicroKernel, kMR> table = micro_kernel_table(std::make_index_sequence<kMR>{});
    return table;
}

}  // namespace packed_detail

// ---- packing the activations (im2col folded in) -----------------------------------------

/// Gather P[m0 .. m0+rows, k0 .. k0+kc) straight from the NHWC input into `block`
/// (row-major, row r at block + r*ldb). In P's (ky, kx, ci) order, the kw*Cin values of
/// one filter row ky are contiguous in NHWC memory too (input row iy, columns ix0 ..
/// ix0+kw-1, all channels), so each filter row is at most one copy, with zeros for the
/// columns (or the whole row) that fall on the padding. A K block may start or end
/// anywhere inside a filter row.
inline void pack_patch_block(const Conv2dParams& p, const float* in, size_t m0, int rows, int k0, int kc, float* block,
                             size_t ldb) {
    const int oh = p.out_h(), ow = p.out_w(), cin = p.in_c, kw = p.kernel_w;
    const int row_len = kw * cin;  // P columns per filter row
    const Padding2d pad = p.padding();
    const size_t pixels = size_t(oh) * ow;
    const int k_end = k0 + kc;
    for (int r = 0; r < rows; ++r) {
        const size_t m = m0 + size_t(r);
        const size_t n = m / pixels;
        const int rem = int(m % pixels);
        const int oy = rem / ow, ox = rem % ow;
        const int ix0 = ox * p.stride - pad.left;  // input column under kx = 0
        // Within a filter row, P columns [lo, hi) read the image; the rest is padding.
        const int lo = std::min(std::max(-ix0, 0), kw) * cin;
        const int hi = std::min(std::max(p.in_w - ix0, 0), kw) * cin;
        float* dst = block + size_t(r) * ldb;
        int k = k0;
        while (k < k_end) {
            const int ky = k / row_len;
            const int a = k - ky * row_len;                    // first column of this filter row
            const int b = std::min(row_len, a + (k_end - k));  // one past the last
            const int iy = oy * p.stride - pad.top + ky;
            if (iy < 0 || iy >= p.in_h) {
                std::memset(dst, 0, sizeof(float) * size_t(b - a));
            } else {
                // [a, b) = zeros before lo, the image in [lo, hi), zeros from hi.
                const int z0 = std::min(b, std::max(a, lo));
                const int c1 = std::max(z0, std::min(b, hi));
                if (z0 > a) std::memset(dst, 0, sizeof(float) * size_t(z0 - a));
                if (c1 > z0) {
                    const float* src = in + (n * size_t(p.in_h) + size_t(iy)) * size_t(p.in_w) * size_t(cin) +
                                       size_t(ptrdiff_t(ix0) * cin + z0);  // >= 0: z0 >= lo
                    std::memcpy(dst + (z0 - a), src, sizeof(float) * size_t(c1 - z0));
                }
                if (b > c1) std::memset(dst + (c1 - a), 0, sizeof(float) * size_t(b - c1));
            }
            dst += b - a;
            k += b - a;
        }
    }
}

// ---- the plan and the driver -------------------------------------------------------------

/// How conv2d_packed cuts one convolution: tiles of mc rows x col_tile columns (the unit
/// of parallel work), K blocks of kc.
struct PackedConvPlan {
    int mc = 0;          // rows per tile (a multiple of MR unless it is all of M)
    int kc = 0;          // K per block (the last block may be shorter)
    int k_blocks = 0;
    int col_tile = 0;    // columns per tile, a multiple of NR
    size_t row_tiles = 0;
    int col_tiles = 0;
    size_t tiles() const { return row_tiles * size_t(col_tiles); }
    /// Floats of one thread's P block (mc x kc, rows padded to whole lines).
    size_t block_floats() const { return size_t(mc) * align_floats(size_t(kc)); }
};

/// Rows per tile: MC, about 200 (the 14 x 14 = 196 pixels of ResNet's layer3 at 224 in
/// one tile, so that its 1 MiB of weights stream once per conv), so MC x KC x 4 = about
/// 150 KiB of activations stay in L2. (-DSOFTBIO_PACKED_MC=... overrides it, for tuning.)
#ifndef SOFTBIO_PACKED_MC
#define SOFTBIO_PACKED_MC 200
#endif
inline constexpr int kPackedMC = std::max(1, SOFTBIO_PACKED_MC / kPackedMR) * kPackedMR;

inline PackedConvPlan plan_conv2d_packed(const Conv2dParams& p, int threads) {
    PackedConvPlan t;
    const size_t m = p.gemm_m();
    const int k = p.gemm_k();
    // K blocks of (nearly) equal size, none longer than KC (the weights are packed so).
    t.k_blocks = packed_k_blocks(k);
    t.kc = packed_kc(k);
    t.mc = int(std::min<size_t>(m, size_t(kPackedMC)));
    t.row_tiles = m == 0 ? 0 : (m + size_t(t.mc) - 1) / size_t(t.mc);
    // Few row tiles (late layers, batch 1): split the columns until every thread has a
    // couple of tiles, keeping >= 64 columns (2 panels of 32) per tile.
    const int panels = packed_panels(p.out_c);
    int splits = 1;
    while (t.row_tiles * size_t(splits) < size_t(2 * threads) && panels / (splits * 2) >= 64 / kPackedNR &&
           panels / (splits * 2) >= 1)
        splits *= 2;
    const int panels_per_tile = (panels + splits - 1) / splits;
    t.col_tile = panels_per_tile * kPackedNR;
    t.col_tiles = (panels + panels_per_tile - 1) / panels_per_tile;
    return t;
}

/// Floats of working memory conv2d_packed needs per thread (the P block; none for a
/// 1x1 stride-1 convolution, whose input is P).
inline size_t conv2d_packed_workspace_floats_per_thread(const Conv2dParams& p, int threads) {
    if (p.input_is_patch_matrix()) return 0;
    return align_floats(plan_conv2d_packed(p, threads).block_floats());
}

inline size_t conv2d_packed_workspace_floats(const Conv2dParams& p, int threads) {
    return conv2d_packed_workspace_floats_per_thread(p, threads) * size_t(threads);
}

namespace packed_detail {

/// What a thread remembers between its tiles: which first row its packed activation
/// block holds (size_t(-1): none reusable). With one K block the column tiles of a row
/// tile, which follow each other, share the block.
struct ThreadBlock {
    size_t m0 = size_t(-1);
};

/// The tile loop of the packed GEMMs (this one and gemm_bf16.hpp's): the plan's tiles
/// shared among `threads` OpenMP threads (static schedule: the same tiles go to the same
/// thread at every call), fn(block, tid, m0, rows, c0, c_end) per tile: output rows
/// [m0, m0+rows), columns [c0, c_end); `block` is the thread's ThreadBlock.
template <class TileFn>
void for_each_tile(const PackedConvPlan& t, size_t m, int n, int threads, TileFn&& fn) {
    const long long tiles = (long long)t.tiles();
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        ThreadBlock held;
#pragma omp for schedule(static)
        for (long long tile = 0; tile < tiles; ++tile) {
            const size_t rt = size_t(tile) / size_t(t.col_tiles);
            const int ct = int(size_t(tile) % size_t(t.col_tiles));
            const size_t m0 = rt * size_t(t.mc);
            const int rows = int(std::min<size_t>(size_t(t.mc), m - m0));
            const int c0 = ct * t.col_tile;
            fn(held, tid, m0, rows, c0, std::min(n, c0 + t.col_tile));
        }
    }
}

/// The epilogue of the micro-tile at row m, column c of the [M x n] output, into `te`:
/// null before the last K block (or for an empty epilogue), else &te.
inline const TileEpilogue* tile_epilogue(const Epilogue& e, bool last_k_block, size_t m, int c, int n,
                                         TileEpilogue& te) {
    if (!last_k_block || e.empty()) return nullptr;
    te.scale = e.scale ? e.scale + c : nullptr;
    te.bias = e.bias ? e.bias + c : nullptr;
    te.residual = e.residual ? e.residual + m * size_t(n) + size_t(c) : nullptr;
    te.relu = e.relu;
    te.leaky_alpha = e.leaky_alpha;
    return &te;
}

}  // namespace packed_detail

/// out[M x N] = epilogue(P * W) with W from pack_conv_weights_panels. `workspace`:
/// conv2d_packed_workspace_floats(p, threads) floats, 64-byte aligned (may be null when
/// that is 0). `e.residual` must not alias `out`. Never allocates.
inline void conv2d_packed(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                          float* workspace, int threads) {
    if (!packed_conv_weights_match(p, packed_w))
        throw std::invalid_argument("conv2d_packed: the weights were not packed for this convolution and this build");
    const PackedConvPlan t = plan_conv2d_packed(p, threads);
    const size_t per_thread = conv2d_packed_workspace_floats_per_thread(p, threads);
    const size_t m = p.gemm_m();
    const int k = p.gemm_k(), n = p.out_c, nr = kPackedNR, mr = kPackedMR, n_pad = packed_panels(n) * nr;
    const bool direct = p.input_is_patch_matrix();
    const size_t ld_block = align_floats(size_t(t.kc));
    const float* panels = packed_w + kPackedHeaderFloats;
    const auto& kernels = packed_detail::micro_kernels();
    packed_detail::for_each_tile(t, m, n, threads, [&](packed_detail::ThreadBlock& held, int tid, size_t m0, int rows,
                                                       int c0, int c_end) {
        float* block = workspace ? workspace + per_thread * size_t(tid) : nullptr;
        for (int kb = 0; kb < t.k_blocks; ++kb) {
            const int k0 = kb * t.kc, kc = std::min(t.kc, k - k0);
            const float* a;
            size_t lda;
            if (direct) {
                a = in + m0 * size_t(k) + size_t(k0), lda = size_t(k);
            } else {
                if (t.k_blocks > 1 || held.m0 != m0) pack_patch_block(p, in, m0, rows, k0, kc, block, ld_block);
                held.m0 = t.k_blocks == 1 ? m0 : size_t(-1);
                a = block, lda = ld_block;
            }
            for (int c = c0; c < c_end; c += nr) {
                const int cols = std::min(nr, c_end - c);
                const float* b = panels + packed_block_offset(k0, kc, c / nr, n_pad);
                for (int i = 0; i < rows; i += mr) {
                    const int r = std::min(mr, rows - i);
                    packed_detail::TileEpilogue te;
                    const auto* ep = packed_detail::tile_epilogue(e, kb == t.k_blocks - 1, m0 + size_t(i), c, n, te);
                    kernels[size_t(r - 1)](kc, a + size_t(i) * lda, lda, b, out + (m0 + size_t(i)) * size_t(n) + size_t(c),
                                           size_t(n), cols, kb > 0, ep);
                }
            }
        }
    });
}


// ---- one row block against packed panels (single-threaded) ------------------------------

/// C[rows x n] (+)= A[rows x k] * W on the calling thread, W given as the panels (the part
/// after the header) of pack_conv_weights_panels for a GEMM with K = k, N = n (K blocks of
/// packed_kc(k), panels of NR): A row r at a + r*lda, read in place (no packing: the rows
/// should be short enough to stay in L2 across the panels), C row r at c + r*ldc, only its
/// first n columns written; `accumulate` adds to what C holds. No epilogue. For callers
/// that cut their own work (kernels/cpu/winograd.hpp runs 36 of these per block of tiles).
inline void gemm_rows_packed(int rows, int n, int k, const float* a, size_t lda, const float* panels, float* c,
                             size_t ldc, bool accumulate = false) {
    const int kc_full = packed_kc(k), nr = kPackedNR, mr = kPackedMR, n_pad = packed_panels(n) * nr;
    const auto& kernels = packed_detail::micro_kernels();
    for (int k0 = 0; k0 < k; k0 += kc_full) {
        const int kc = std::min(kc_full, k - k0);
        for (int c0 = 0; c0 < n; c0 += nr) {
            const int cols = std::min(nr, n - c0);
            const float* b = panels + packed_block_offset(k0, kc, c0 / nr, n_pad);
            for (int i = 0; i < rows; i += mr) {
                const int r = std::min(mr, rows - i);
                kernels[size_t(r - 1)](kc, a + size_t(i) * lda + size_t(k0), lda, b, c + size_t(i) * ldc + size_t(c0), ldc,
                                       cols, accumulate || k0 > 0, nullptr);
            }
        }
    }
}

}  // namespace softbio::cpu
