// kernels/cuda/conv2d_implicit_gemm.cuh — 2-d convolution on NHWC fp32 tensors as an
// implicit GEMM, with the epilogue (BN bias/scale, residual, ReLU) fused into the store.
//
// THE MATH (PyTorch Conv2d, groups 1, dilation 1, zero padding; kernels/cpu/conv2d.hpp):
//
//   out[n, oy, ox, co] = sum_{ky, kx, ci} in[n, oy*s - pt + ky, ox*s - pl + kx, ci] * W[co, ci, ky, kx]
//
// (pt, pl: the padding on the top and left, Conv2dParams::padding(); the bottom/right
// padding only sets out_h/out_w: taps past the image read zero either way. Symmetric
// PyTorch padding has pt = pl = p; TensorFlow "same" may put one more pixel at the
// bottom/right.)
// As a matrix product C[M x N] = A[M x K] * B[K x N] with
//   M = batch * out_h * out_w   one row per output pixel m = (n, oy, ox)
//   K = kh * kw * Cin           one column per filter tap k = (ky, kx, ci), ci fastest
//   N = Cout
//   A[m, k] = in[n, oy*s - pt + ky, ox*s - pl + kx, ci]   (0 outside the image)
//   B[k, co] = the packed weights [kh*kw*Cin, Cout] (pack_conv_weights, as on the CPU)
//   C = the NHWC output itself: row m of C is pixel m's Cout channels.
// "Implicit": A (im2col's patch matrix, kh*kw times the input) is never stored. Each
// thread block computes one BM x BN tile of C and gathers the BM x BK slice of A it needs
// straight from the NHWC input into shared memory, tile by tile along K.
//
// THE GPU TECHNIQUE, from the outside in:
//
// 1. Thread-block tiling. Block (bx, by, bz) owns rows [bx*BM, +BM) and columns
//    [by*BN, +BN) of C. It walks K in steps of BK: copy A[BM x BK] and B[BK x BN] to
//    shared memory, then every thread does BK rank-1 updates on its part of the tile.
//    Each value brought from global memory is used BN (A) or BM (B) times: for
//    BM = BN = 128 that is 64 FMAs per float loaded, enough to feed the FP32 units from
//    L2/HBM.
//
// 2. Register blocking. Each of the (BM/TM)*(BN/TN) threads accumulates a TM x TN
//    sub-tile (8 x 8 = 64 accumulators) in registers. Per k it reads TM values of A and
//    TN of B from shared memory for TM*TN FMAs — 16 loads for 64 FMAs, which keeps shared
//    memory bandwidth below the FMA rate. Thread (tx, ty) owns rows ty*TM .. +TM and
//    columns tx*4 + {0..3} of each of the TN/4 column slabs of width BN/(TN/4): in a slab
//    eight consecutive threads read 8 consecutive float4 = 128 contiguous bytes of B, the
//    bank-conflict-free pattern for 128-bit shared loads; the A values of a row are one
//    address per 8-thread phase (a broadcast).
//
// 3. Shared-memory layout. A is stored as As[BM][BK] (row = output pixel, BK taps
//    contiguous): for Cin % 4 == 0 four consecutive taps are four consecutive channels of
//    one input pixel, i.e. one aligned 16-byte load from NHWC memory straight into shared
//    memory, and the compute loop reads them back as one float4 per row per 4 k-steps.
//    B is stored as Bs[BK][BN], a straight copy of BK rows of the packed weights.
//
// 4. cp.async double buffering (sm_80+). Two shared-memory stages. While the threads
//    compute on stage t % 2, the asynchronous copies for tile t+1 fill stage (t+1) % 2:
//        issue(t+1); commit; wait_group(1) [tile t landed]; __syncthreads; compute(t); __syncthreads
//    The copies go global -> shared without registers, and their "ignore-src" form writes
//    zeros: padding taps, pixels past M and taps past K are zero-filled with no branches
//    around the copy (the source address of such a copy is never read).
//
// 5. Gathers (the A loader), chosen per layer at launch:
//    * kPointwise — 1x1 convolutions (stride 1 or 2, pad 0; every bottleneck's conv1/conv3
//      and the downsample shortcuts): A[m, k] = in[pixel(m), k], no tap decoding, no
//      bounds tests; 16-byte loads. At stride 1 A is the activation matrix itself.
//    * kVec4 — k x k with Cin % 4 == 0 (all 3x3 convs): 16-byte loads of 4 channels. Each
//      thread keeps its tap (ky, kx, ci) as a running counter advanced by BK per tile
//      (no division in the loop) and tests the padded image bounds per load.
//    * kScalar — anything else, i.e. the 7x7 stem with Cin = 3 (K = 147): 4-byte copies,
//      each thread's counters advanced the same way. The stem also gets its own tile
//      shape: its N = 64 would leave half of a 128-wide tile idle, so it runs on 64x64 or
//      32x32 tiles (plan_conv2d below), which at batch 1 also gives enough blocks.
//    B (weights) uses 16-byte copies when Cout % 4 == 0 (all ResNet layers), else 4-byte.
//
// 6. Split-K for small M (batch 1, late stages: layer4 at 224 px has M = 49 pixels). Too
//    few output tiles would leave most of the 132 SMs idle, so the K loop is cut into S
//    slices run by gridDim.z = S blocks per tile, each writing raw partial sums to a
//    workspace [S][M][N]; epilogue.cuh then sums the slices in order and applies the
//    epilogue (deterministic, no atomics). The workspace size comes from the same plan,
//    through conv2d_workspace_floats().
//
// 7. Fused epilogue. After the K loop each thread applies scale / bias / residual / ReLU
//    (epilogue.cuh, CPU order) to its accumulators and writes them with 16-byte stores
//    (row-contiguous in NHWC, 16 threads = 256 contiguous bytes per row).
//
// Tile shapes (BM x BN x BK, thread tile TM x TN, threads):
//    k128x128: 128 x 128 x 8, 8x8, 256 threads — large M (batch >= ~16), Cout >= 128 (BK: see the knobs)
//    k64x64:    64 x  64 x 8, 8x8,  64 threads — Cout = 64 layers, medium M
//    k32x32:    32 x  32 x 8, 4x4,  64 threads — small M (batch 1..8), with split-K
// plan_conv2d() picks one from the output size and the SM count (host code, unit-tested
// without a GPU); everything it decides is in ConvPlan.
//
// CORRECTNESS WITHOUT A GPU: the block body conv2d_block<Tile, Gather>(Ctx&, args) is a
// template over the execution context (simt.cuh), run by tests/cuda/simt_emulator.hpp on
// the host for every tile shape, gather and split, against cpu::conv2d_reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "epilogue.cuh"
#include "simt.cuh"
#include "softbio/core/error.hpp"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

// Conv2dParams, Epilogue and pack_conv_weights (the [kh*kw*Cin, Cout] filter layout
// read below) are shared with the CPU: kernels/op_params.hpp.

// ---- tile shapes -------------------------------------------------------------------------

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct ConvTileShape {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
    static constexpr int kThreads = (BM / TM) * (BN / TN);
    static constexpr int kStageFloats = BM * BK + BK * BN;
    static constexpr size_t kSmemBytes = 2 * size_t(kStageFloats) * sizeof(float);  // two stages
    static_assert(BM % TM == 0 && BN % TN == 0 && TN % 4 == 0 && BK % 4 == 0, "tile shape");
    static_assert((BM * BK / 4) % kThreads == 0 && kThreads % (BK / 4) == 0, "vector A loader");
    static_assert((BM * BK) % kThreads == 0 && kThreads % BK == 0, "scalar A loader");
    static_assert((BK * BN / 4) % kThreads == 0 && (BK * BN) % kThreads == 0, "B loader");
    static_assert(kSmemBytes <= 48 * 1024, "more than 48 KiB of shared memory needs cudaFuncSetAttribute");
};
// Tuning knobs (compile-time, for kernels/cuda/dev/conv2d_check.cu sweeps on the GPU):
//   SOFTBIO_CONV128_BK          K depth of the 128x128 tile (8 or 16): 16 halves the
//                               barriers per FMA, doubles the shared memory (32 KiB).
//   SOFTBIO_CONV128_MIN_BLOCKS  __launch_bounds__ min blocks/SM of the 128x128 kernels:
//                               1 (default) lets ptxas use ~170 registers, 1 block/SM;
//                               2 caps them at 128 (a few spills measured with ptxas -v)
//                               for 2 blocks/SM.
#ifndef SOFTBIO_CONV128_BK
#define SOFTBIO_CONV128_BK 8
#endif
#ifndef SOFTBIO_CONV128_MIN_BLOCKS
#define SOFTBIO_CONV128_MIN_BLOCKS 1
#endif
using ConvTile128 = ConvTileShape<128, 128, SOFTBIO_CONV128_BK, 8, 8>;
using ConvTile64 = ConvTileShape<64, 64, 8, 8, 8>;
using ConvTile32 = ConvTileShape<32, 32, 8, 4, 4>;

enum class ConvTile : int { k128x128 = 0, k64x64 = 1, k32x32 = 2 };
enum class ConvGather : int { kPointwise = 0, kVec4 = 1, kScalar = 2 };

inline const char* tile_name(ConvTile t) {
    return t == ConvTile::k128x128 ? "128x128" : t == ConvTile::k64x64 ? "64x64" : "32x32";
}
inline const char* gather_name(ConvGather g) {
    return g == ConvGather::kPointwise ? "pointwise" : g == ConvGather::kVec4 ? "vec4" : "scalar";
}

/// Call f(TileShape{}) for the runtime tile id.
template <class F>
void with_tile(ConvTile t, F&& f) {
    switch (t) {
        case ConvTile::k128x128: f(ConvTile128{}); break;
        case ConvTile::k64x64: f(ConvTile64{}); break;
        default: f(ConvTile32{}); break;
    }
}

// ---- planning (host) -----------------------------------------------------------------------

/// Everything decided about one convolution before launch.
struct ConvPlan {
    ConvTile tile = ConvTile::k128x128;
    int bm = 0, bn = 0, bk = 0, threads = 0;
    size_t smem_bytes = 0;
    long long m_tiles = 0;      // gridDim.x
    int n_tiles = 0;            // gridDim.y
    int splits = 1;             // gridDim.z (split-K slices)
    int ktiles = 0;             // ceil(K / BK)
    int ktiles_per_split = 0;
    size_t workspace_floats = 0;  // splits > 1: splits * M * N partial sums
    long long blocks() const { return m_tiles * n_tiles * splits; }
};

/// Aim for at least this many 64-thread blocks per SM (8 warps) on the small tiles.
constexpr int kSmallTileBlocksPerSm = 4;
/// A split-K slice covers at least this many BK-steps (so a slice's partial-sum traffic
/// stays small next to its arithmetic).
constexpr int kMinKtilesPerSplit = 8;

/// Choose the tile shape and split-K count. `force_tile` (0..2) and `force_splits` (> 0)
/// override the heuristic (tests, tuning). Throws ShapeError on an impossible shape.
inline ConvPlan plan_conv2d(const Conv2dParams& p, int sm_count, int force_tile = -1, int force_splits = 0) {
    const Padding2d pad = p.padding();
    if (p.batch < 1 || p.in_h < 1 || p.in_w < 1 || p.in_c < 1 || p.out_c < 1 || p.kernel_h < 1 || p.kernel_w < 1 ||
        p.stride < 1 || pad.top < 0 || pad.left < 0 || pad.bottom < 0 || pad.right < 0 || !p.window_fits())
        throw ShapeError("cuda conv2d: invalid parameters (batch " + std::to_string(p.batch) + ", input " +
                         std::to_string(p.in_h) + "x" + std::to_string(p.in_w) + "x" + std::to_string(p.in_c) +
                         ", kernel " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + ", stride " +
                         std::to_string(p.stride) + ", pad " +
                         (pad.is_symmetric() ? std::to_string(pad.top)
                                             : std::to_string(pad.top) + "/" + std::to_string(pad.left) + "/" +
                                                   std::to_string(pad.bottom) + "/" + std::to_string(pad.right)) +
                         ")");
    const long long m = (long long)p.gemm_m();
    const long long n = p.out_c;
    if (m * n >= (1LL << 40) || m >= (1LL << 31) || (long long)p.batch * p.in_h * p.in_w >= (1LL << 31))
        throw ShapeError("cuda conv2d: tensor too large (M = " + std::to_string(m) + ")");
    const int sms = sm_count > 0 ? sm_count : 1;
    auto tiles = [&](int bm, int bn) { return ceil_div(m, bm) * ceil_div(n, bn); };

    ConvPlan plan;
    if (force_tile >= 0) plan.tile = ConvTile(force_tile);
    else if (n >= 128 && tiles(128, 128) >= sms) plan.tile = ConvTile::k128x128;
    else if (tiles(64, 64) >= 2LL * sms) plan.tile = ConvTile::k64x64;
    else plan.tile = ConvTile::k32x32;
    with_tile(plan.tile, [&](auto shape) {
        using T = decltype(shape);
        plan.bm = T::BM, plan.bn = T::BN, plan.bk = T::BK, plan.threads = T::kThreads, plan.smem_bytes = T::kSmemBytes;
    });
    plan.m_tiles = ceil_div(m, plan.bm);
    plan.n_tiles = int(ceil_div(n, plan.bn));
    plan.ktiles = int(ceil_div(p.gemm_k(), plan.bk));

    long long splits = 1;
    if (force_splits > 0) {
        splits = force_splits;
    } else if (plan.tile == ConvTile::k32x32) {
        const long long base = plan.m_tiles * plan.n_tiles;
        const long long target = (long long)kSmallTileBlocksPerSm * sms;
        if (base < target) {
            const long long most = plan.ktiles / kMinKtilesPerSplit;
            splits = ceil_div(target, base);
            if (splits > most) splits = most;
            if (splits < 1) splits = 1;
        }
    }
    if (splits > plan.ktiles) splits = plan.ktiles;
    if (splits > 65535) splits = 65535;
    plan.ktiles_per_split = int(ceil_div(plan.ktiles, splits));
    plan.splits = int(ceil_div(plan.ktiles, plan.ktiles_per_split));  // no empty slice
    if (plan.n_tiles > 65535) throw ShapeError("cuda conv2d: too many output channels (" + std::to_string(n) + ")");
    plan.workspace_floats = plan.splits > 1 ? size_t(plan.splits) * size_t(m) * size_t(n) : 0;
    return plan;
}

// ---- the kernel body ---------------------------------------------------------------------

/// Kernel arguments (by value; all pointers are device pointers).
struct ConvArgs {
    const float* in = nullptr;  // NHWC [batch, in_h, in_w, in_c]
    const float* w = nullptr;   // packed [K, N]
    float* out = nullptr;       // [M, N], or the split-K workspace [splits, M, N]
    Epilogue e;                 // applied when !partial
    int in_h = 0, in_w = 0, in_c = 0;
    int out_h = 0, out_w = 0;
    int kernel_h = 1, kernel_w = 1, stride = 1;
    int pad_top = 0, pad_left = 0;  // the window origin's offset (bottom/right: only out_h/out_w)
    int m = 0, n = 0, k = 0;
    int ktiles = 0, ktiles_per_split = 0;
    bool bvec = false;     // N % 4 == 0 and w / out / residual 16-byte aligned: 16-byte B copies and C stores
    bool partial = false;  // split-K: raw sums to out + blockIdx.z * M * N, no epilogue
};

template <class T, ConvGather G, class Ctx>
SOFTBIO_KERNEL_BODY void conv2d_block(Ctx& c, const ConvArgs& a) {
    constexpr int BM = T::BM, BN = T::BN, BK = T::BK, TM = T::TM, TN = T::TN, NT = T::kThreads;
    constexpr int NQ = TN / 4;   // float4 column groups per thread
    constexpr int QW = BN / NQ;  // width of one column slab
    constexpr bool kVecA = G != ConvGather::kScalar;
    constexpr int A_PER = kVecA ? BM * BK / 4 / NT : BM * BK / NT;  // A copies per thread per tile
    constexpr int A_ROW_STEP = kVecA ? NT / (BK / 4) : NT / BK;     // rows between a thread's copies
    constexpr int B_PER_V = BK * BN / 4 / NT;
    constexpr int B_PER_S = BK * BN / NT;

    const int tid = c.tid();
    const int m0 = c.bid_x() * BM;
    const int n0 = c.bid_y() * BN;
    const int split = c.bid_z();
    const int kt_begin = split * a.ktiles_per_split;
    const int kt_end = imin(a.ktiles, kt_begin + a.ktiles_per_split);
    const int ntiles = kt_end - kt_begin;  // >= 1 by construction of the plan

    float* const As = c.smem();            // [2][BM][BK]
    float* const Bs = As + 2 * BM * BK;    // [2][BK][BN]

    // ---- A loader state: which rows (pixels) and which k this thread copies ----
    const int a_kk = kVecA ? (tid % (BK / 4)) * 4 : tid % BK;  // k offset inside a tile
    const int a_r0 = kVecA ? tid / (BK / 4) : tid / BK;        // first row
    // Per row: image row offset n*in_h and the window origin (iy0, ix0). Rows past M get an
    // origin far outside the image, so every tap of theirs is "padding" (zero-filled).
    int a_img[A_PER], a_iy0[A_PER], a_ix0[A_PER];
    const int ohw = a.out_h * a.out_w;
    SOFTBIO_UNROLL
    for (int e = 0; e < A_PER; ++e) {
        const int m = m0 + a_r0 + e * A_ROW_STEP;
        if (m < a.m) {
            const int nimg = m / ohw, rem = m - nimg * ohw;
            const int oy = rem / a.out_w, ox = rem - oy * a.out_w;
            a_img[e] = nimg * a.in_h;
            a_iy0[e] = oy * a.stride - a.pad_top;
            a_ix0[e] = ox * a.stride - a.pad_left;
        } else {
            a_img[e] = 0;
            a_iy0[e] = -(1 << 29);
            a_ix0[e] = -(1 << 29);
        }
    }
    // Running tap counter (ky, kx, ci) of k = kt * BK + a_kk, advanced by BK per tile. For
    // k >= K it runs past ky = kernel_h, which marks the copy as zero-fill.
    int t_ky, t_kx, t_ci;
    {
        const int k = kt_begin * BK + a_kk;
        const int tap = k / a.in_c;
        t_ci = k - tap * a.in_c;
        t_ky = tap / a.kernel_w;
        t_kx = tap - t_ky * a.kernel_w;
    }

    auto load_tile = [&](int kt, int stage) {
        float* as = As + stage * (BM * BK);
        float* bs = Bs + stage * (BK * BN);
        // A: the gathered patch rows.
        if (G == ConvGather::kPointwise) {
            const int k = kt * BK + a_kk;
            const bool kin = k < a.k;
            SOFTBIO_UNROLL
            for (int e = 0; e < A_PER; ++e) {
                const int iy = a_iy0[e], ix = a_ix0[e];  // pad = 0: the window is one pixel
                const bool ok = kin && iy >= 0;          // iy < 0 only for rows past M
                const float* src = ok ? a.in + (size_t(a_img[e] + iy) * a.in_w + ix) * a.in_c + k : a.in;
                c.cp_async_f128(as + (a_r0 + e * A_ROW_STEP) * BK + a_kk, src, ok);
            }
        } else {
            const bool kin = t_ky < a.kernel_h;
            SOFTBIO_UNROLL
            for (int e = 0; e < A_PER; ++e) {
                const int iy = a_iy0[e] + t_ky, ix = a_ix0[e] + t_kx;
                const bool ok = kin && unsigned(iy) < unsigned(a.in_h) && unsigned(ix) < unsigned(a.in_w);
                const float* src = ok ? a.in + (size_t(a_img[e] + iy) * a.in_w + ix) * a.in_c + t_ci : a.in;
                float* dst = as + (a_r0 + e * A_ROW_STEP) * BK + a_kk;
                if (kVecA) c.cp_async_f128(dst, src, ok);
                else c.cp_async_f32(dst, src, ok);
            }
            t_ci += BK;
            while (t_ci >= a.in_c) {
                t_ci -= a.in_c;
                if (++t_kx == a.kernel_w) t_kx = 0, ++t_ky;
            }
        }
        // B: BK rows of the packed weights.
        if (a.bvec) {
            SOFTBIO_UNROLL
            for (int e = 0; e < B_PER_V; ++e) {
                const int l = tid + e * NT;
                const int kr = l / (BN / 4), cq = (l % (BN / 4)) * 4;
                const int k = kt * BK + kr, col = n0 + cq;
                const bool ok = k < a.k && col < a.n;  // N % 4 == 0: a quad is all in or all out
                c.cp_async_f128(bs + kr * BN + cq, ok ? a.w + size_t(k) * a.n + col : a.w, ok);
            }
        } else {
            SOFTBIO_UNROLL
            for (int e = 0; e < B_PER_S; ++e) {
                const int l = tid + e * NT;
                const int kr = l / BN, cc = l % BN;
                const int k = kt * BK + kr, col = n0 + cc;
                const bool ok = k < a.k && col < a.n;
                c.cp_async_f32(bs + kr * BN + cc, ok ? a.w + size_t(k) * a.n + col : a.w, ok);
            }
        }
    };

    // ---- compute: TM x TN accumulators per thread ----
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    float acc[TM][TN];
    SOFTBIO_UNROLL
    for (int i = 0; i < TM; ++i)
        SOFTBIO_UNROLL
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    auto compute_tile = [&](int stage) {
        const float* as = As + stage * (BM * BK) + ty * TM * BK;
        const float* bs = Bs + stage * (BK * BN) + tx * 4;
        SOFTBIO_UNROLL
        for (int kk = 0; kk < BK; kk += 4) {
            float4 av[TM];
            SOFTBIO_UNROLL
            for (int i = 0; i < TM; ++i) av[i] = *reinterpret_cast<const float4*>(as + i * BK + kk);
            SOFTBIO_UNROLL
            for (int j = 0; j < 4; ++j) {
                float bv[TN];
                SOFTBIO_UNROLL
                for (int q = 0; q < NQ; ++q) {
                    const float4 b4 = *reinterpret_cast<const float4*>(bs + (kk + j) * BN + q * QW);
                    bv[q * 4 + 0] = b4.x, bv[q * 4 + 1] = b4.y, bv[q * 4 + 2] = b4.z, bv[q * 4 + 3] = b4.w;
                }
                SOFTBIO_UNROLL
                for (int i = 0; i < TM; ++i) {
                    const float x = component(av[i], j);
                    SOFTBIO_UNROLL
                    for (int cc = 0; cc < TN; ++cc) acc[i][cc] = fmaf(x, bv[cc], acc[i][cc]);
                }
            }
        }
    };

    // ---- the double-buffered main loop ----
    load_tile(kt_begin, 0);
    c.cp_async_commit();
    for (int t = 0; t < ntiles; ++t) {
        if (t + 1 < ntiles) load_tile(kt_begin + t + 1, (t + 1) & 1);
        c.cp_async_commit();  // possibly empty: keeps "all but the newest group" = tile t
        c.template cp_async_wait<1>();
        c.sync();             // tile t visible to all threads
        compute_tile(t & 1);
        c.sync();             // everyone done with stage t&1 before it is refilled
    }

    // ---- epilogue and store ----
    float* out = a.out + (a.partial ? size_t(split) * size_t(a.m) * size_t(a.n) : 0);
    SOFTBIO_UNROLL
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + ty * TM + i;
        if (m >= a.m) continue;
        const size_t row = size_t(m) * size_t(a.n);
        SOFTBIO_UNROLL
        for (int q = 0; q < NQ; ++q) {
            const int col = n0 + q * QW + tx * 4;
            if (a.bvec) {
                if (col >= a.n) continue;
                float4 v = make_f4(acc[i][q * 4], acc[i][q * 4 + 1], acc[i][q * 4 + 2], acc[i][q * 4 + 3]);
                if (!a.partial) v = apply_epilogue_four(c, a.e, v, col, row + col);
                c.st(reinterpret_cast<float4*>(out + row + col), v);
            } else {
                SOFTBIO_UNROLL
                for (int j = 0; j < 4; ++j) {
                    if (col + j >= a.n) continue;
                    float v = acc[i][q * 4 + j];
                    if (!a.partial) v = apply_epilogue_one(c, a.e, v, col + j, row + col + j);
                    c.st(out + row + col + j, v);
                }
            }
        }
    }
}

// ---- launch description (host; shared by the GPU launcher and the emulator tests) -------

/// One convolution, fully decided: plan, gather, kernel arguments, and (split-K) the
/// reduction pass.
struct ConvLaunch {
    ConvPlan plan;
    ConvGather gather = ConvGather::kScalar;
    ConvArgs args;
    bool reduce = false;  // run the split-K reduction after the main kernel
    EpilogueArgs reduce_args;
};

/// Decide everything for conv2d(p, in, w, out, e) on a device with `sm_count` SMs.
/// `workspace` must hold plan.workspace_floats floats when that is non-zero.
inline ConvLaunch make_conv_launch(const Conv2dParams& p, const float* in, const float* w, float* out, const Epilogue& e,
                                   float* workspace, int sm_count, int force_tile = -1, int force_splits = 0) {
    ConvLaunch L;
    L.plan = plan_conv2d(p, sm_count, force_tile, force_splits);
    const bool vec_in = p.in_c % 4 == 0 && aligned16(in);
    if (vec_in && p.is_pointwise()) L.gather = ConvGather::kPointwise;
    else if (vec_in) L.gather = ConvGather::kVec4;
    else L.gather = ConvGather::kScalar;

    ConvArgs& a = L.args;
    a.in = in, a.w = w, a.e = e;
    a.in_h = p.in_h, a.in_w = p.in_w, a.in_c = p.in_c, a.out_h = p.out_h(), a.out_w = p.out_w();
    const Padding2d pad = p.padding();
    a.kernel_h = p.kernel_h, a.kernel_w = p.kernel_w, a.stride = p.stride, a.pad_top = pad.top, a.pad_left = pad.left;
    a.m = int(p.gemm_m()), a.n = p.out_c, a.k = p.gemm_k();
    a.ktiles = L.plan.ktiles, a.ktiles_per_split = L.plan.ktiles_per_split;
    a.partial = L.plan.splits > 1;
    if (a.partial) {
        if (!workspace)
            throw Error("cuda conv2d: split-K plan needs a workspace of " + std::to_string(L.plan.workspace_floats) +
                        " floats (conv2d_workspace_floats) but none was given");
        a.out = workspace;
        a.bvec = p.out_c % 4 == 0 && aligned16(w) && aligned16(workspace);
        L.reduce = true;
        EpilogueArgs& r = L.reduce_args;
        r.in = workspace, r.out = out, r.splits = L.plan.splits, r.split_stride = size_t(a.m) * size_t(a.n);
        r.rows = size_t(a.m), r.channels = a.n, r.e = e;
        choose_epilogue_vec(r);
    } else {
        a.out = out;
        a.bvec = p.out_c % 4 == 0 && aligned16(w) && aligned16(out) && (!e.residual || aligned16(e.residual));
    }
    return L;
}

/// Call f(TileShape{}, std::integral_constant<ConvGather, G>{}) for the launch's kernel.
template <class F>
void with_conv_kernel(ConvTile t, ConvGather g, F&& f) {
    with_tile(t, [&](auto shape) {
        switch (g) {
            case ConvGather::kPointwise: f(shape, std::integral_constant<ConvGather, ConvGather::kPointwise>{}); break;
            case ConvGather::kVec4: f(shape, std::integral_constant<ConvGather, ConvGather::kVec4>{}); break;
            default: f(shape, std::integral_constant<ConvGather, ConvGather::kScalar>{}); break;
        }
    });
}

#if defined(__CUDACC__)

template <class T>
constexpr int conv_min_blocks() {
    return T::BM == 128 ? SOFTBIO_CONV128_MIN_BLOCKS : 1;
}

template <class T, ConvGather G>
__global__ void __launch_bounds__(T::kThreads, conv_min_blocks<T>()) conv2d_implicit_gemm_kernel(ConvArgs a) {
    DeviceCtx c;
    conv2d_block<T, G>(c, a);
}

/// Enqueue a fully decided convolution on `stream`.
inline void launch_conv(const ConvLaunch& L, int sm_count, cudaStream_t stream) {
    const dim3 grid(unsigned(L.plan.m_tiles), unsigned(L.plan.n_tiles), unsigned(L.plan.splits));
    with_conv_kernel(L.plan.tile, L.gather, [&](auto shape, auto gather) {
        using T = decltype(shape);
        conv2d_implicit_gemm_kernel<T, decltype(gather)::value><<<grid, T::kThreads, T::kSmemBytes, stream>>>(L.args);
    });
    SOFTBIO_CUDA_CHECK_LAUNCH("conv2d", stream);
    if (L.reduce) launch_epilogue(L.reduce_args, sm_count, stream, "conv2d split-K reduction");
}

/// out = epilogue(conv(in, w)) on `stream`. `w` from pack_conv_weights (uploaded);
/// `workspace`: conv2d_workspace_floats(p, sm_count) floats (may be null when that is 0).
inline void conv2d(const Conv2dParams& p, const float* in, const float* w, float* out, const Epilogue& e,
                   float* workspace, int sm_count, cudaStream_t stream) {
    launch_conv(make_conv_launch(p, in, w, out, e, workspace, sm_count), sm_count, stream);
}

#endif  // __CUDACC__

/// Floats of device workspace conv2d() needs for `p` on a device with `sm_count` SMs.
inline size_t conv2d_workspace_floats(const Conv2dParams& p, int sm_count) {
    return plan_conv2d(p, sm_count).workspace_floats;
}

}  // namespace softbio::cuda
