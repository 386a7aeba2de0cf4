// kernels/cpu/conv2d.hpp — 2-d convolution on NHWC fp32 tensors, as tiled GEMMs.
//
// The math (PyTorch's Conv2d, groups = 1, dilation = 1, zero padding):
//
//   out[n, oy, ox, co] = sum_{ky, kx, ci} in[n, oy*s - pt + ky, ox*s - pl + kx, ci] * W[co, ci, ky, kx]
//
//   with out_h = floor((H + pt + pb - kh) / s) + 1 (likewise out_w with pl, pr); taps
//   outside the image read zero. pt/pl/pb/pr are the padding on the top/left/bottom/
//   right (Conv2dParams::padding()): all equal to PyTorch's `padding` in the simple
//   case, TensorFlow's "same" (odd pixel at the bottom/right) for the face-api nets.
//
// As a matrix product: let M = N*out_h*out_w (one row per output pixel) and
// K = kh*kw*Cin (one column per filter tap). Row m of the "patch matrix" P[M x K]
// holds the input values under output pixel m's window, in (ky, kx, ci) order; the
// filters are repacked once at load into Wp[K x Cout] with the same (ky, kx, ci) row
// order. Then out[M x Cout] = P * Wp.
//
//  * 1x1, stride 1, no padding: P *is* the input tensor (NHWC = [pixels, Cin]), so the
//    conv is one GEMM straight on the activations, no copy.
//  * everything else (3x3, 7x7 stem, strided 1x1 downsample): P is materialised one
//    tile of rows at a time ("im2col" per tile) into a small per-thread buffer, so the
//    patch matrix never exists in full. In NHWC each tap is a contiguous run of Cin
//    floats: a memcpy, or zeros for padding.
//
// Parallelism: the M x Cout output is cut into tiles (row tiles, and for the small-M
// late stages also column tiles); OpenMP threads take tiles, each runs its own
// im2col + single-threaded GEMM + fused epilogue (epilogue.hpp) while the tile is hot.
// The tiling depends only on the shape and thread count, so the workspace is sized
// before the first call (conv2d_workspace_floats) and nothing is allocated per call.
//
// Three GEMMs, chosen by the weights (kernels/cpu/gemm_packed.hpp explains the first):
//  * softbio's packed GEMM (the default of the layers): weights packed once at load into
//    the micro-kernel's panels by pack_conv_weights_panels, im2col folded into the
//    packing of the activations, epilogue in the micro-kernel's store;
//  * the same in bfloat16 (gemm_bf16.hpp; LoadOptions::precision = Bf16): bf16 weight
//    panels from pack_conv_weights_bf16, activations rounded as they are packed;
//  * Eigen's GEBP (gemm.hpp) on the plain W[K x Cout] of pack_conv_weights: the baseline,
//    selectable per model (ConvKernel::Eigen, layers/conv2d.hpp), and what a caller that
//    packs with pack_conv_weights gets.
// conv2d() looks at the weight buffer's header (is_packed_conv_weights,
// is_packed_bf16_weights) and runs the matching one, so the backend seam
// (backend/cpu.hpp) is the same call for all three; the workspace plan covers any.
//
// conv2d_reference() is the direct 7-deep loop over the definition above, taking the
// weights in PyTorch's [Cout, Cin, kh, kw] layout — the tests' ground truth.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "../op_params.hpp"
#include "epilogue.hpp"
#include "gemm.hpp"
#include "gemm_bf16.hpp"
#include "gemm_packed.hpp"
#include "winograd.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio::cpu {

/// How conv2d() cuts the output into tiles for a given thread count.
struct Conv2dTiling {
    int row_tile = 0;   // output pixels per tile
    int col_tile = 0;   // output channels per tile
    size_t row_tiles = 0;
    int col_tiles = 0;
    size_t tiles() const { return row_tiles * size_t(col_tiles); }
};

inline Conv2dTiling plan_conv2d_tiling(const Conv2dParams& p, int threads) {
    Conv2dTiling t;
    const size_t m = p.gemm_m();
    // ~256 rows keeps a patch tile (256 x K floats) in L2 for the 3x3 convs while
    // giving the GEMM enough rows to amortise packing of the weights.
    t.row_tile = int(std::min<size_t>(m, 256));
    t.row_tiles = (m + t.row_tile - 1) / t.row_tile;
    // Late stages at batch 1 have few pixels (7x7 = 49): split output channels too,
    // until every thread has a couple of tiles, keeping >= 64 channels per tile.
    int splits = 1;
    while (t.row_tiles * splits < size_t(2 * threads) && p.out_c / (splits * 2) >= 64) splits *= 2;
    t.col_tile = (p.out_c + splits - 1) / splits;
    t.col_tile = (t.col_tile + 15) / 16 * 16;  // whole AVX-512 vectors
    t.col_tiles = (p.out_c + t.col_tile - 1) / t.col_tile;
    return t;
}

/// Floats of working memory conv2d() needs per thread for these parameters.
inline size_t conv2d_workspace_floats_per_thread(const Conv2dParams& p, int threads) {
    const Conv2dTiling t = plan_conv2d_tiling(p, threads);
    const size_t patch = p.input_is_patch_matrix() ? 0 : align_floats(size_t(t.row_tile) * p.gemm_k());
    return patch + plan_gemm(t.row_tile, t.col_tile, p.gemm_k()).workspace_floats();
}

/// Floats of working memory conv2d() needs in total with `threads` threads, whichever
/// GEMM the weights ask for (the largest of the three plans).
inline size_t conv2d_workspace_floats(const Conv2dParams& p, int threads) {
    return std::max({conv2d_workspace_floats_per_thread(p, threads) * size_t(threads),
                     conv2d_packed_workspace_floats(p, threads), conv2d_bf16_workspace_floats(p, threads)});
}

/// Gather rows [m0, m0+rows) of the patch matrix into `patch` ([rows x K], row-major).
inline void im2col_rows(const Conv2dParams& p, const float* in, size_t m0, int rows, float* patch) {
    const int oh = p.out_h(), ow = p.out_w(), cin = p.in_c;
    const Padding2d pad = p.padding();
    const size_t k = size_t(p.gemm_k());
    for (int r = 0; r < rows; ++r) {
        const size_t m = m0 + r;
        const int n = int(m / (size_t(oh) * ow));
        const int rem = int(m % (size_t(oh) * ow));
        const int oy = rem / ow, ox = rem % ow;
        float* dst = patch + size_t(r) * k;
        for (int ky = 0; ky < p.kernel_h; ++ky) {
            const int iy = oy * p.stride - pad.top + ky;
            for (int kx = 0; kx < p.kernel_w; ++kx) {
                const int ix = ox * p.stride - pad.left + kx;
                if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) {
                    std::memset(dst, 0, sizeof(float) * cin);
                } else {
                    const float* src = in + ((size_t(n) * p.in_h + iy) * p.in_w + ix) * cin;
                    std::memcpy(dst, src, sizeof(float) * cin);
                }
                dst += cin;
            }
        }
    }
}

/// out[M x Cout] = epilogue(conv(in, W)). `packed_w` comes from
/// pack_conv_weights_panels() (softbio's packed GEMM) or pack_conv_weights() (Eigen's);
/// `workspace` holds conv2d_workspace_floats(p, threads) floats, 64-byte aligned.
/// `epilogue.residual` may alias nothing but must not alias `out`.
inline void conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& epilogue,
                   float* workspace, int threads) {
    if (is_packed_conv_weights(packed_w)) {
        conv2d_packed(p, in, packed_w, out, epilogue, workspace, threads);
        return;
    }
    if (is_packed_bf16_weights(packed_w)) {
        conv2d_packed_bf16(p, in, packed_w, out, epilogue, workspace, threads);
        return;
    }
    if (is_winograd_weights(packed_w))  // never read transformed filters as plain ones
        throw std::invalid_argument("cpu::conv2d: these are Winograd-transformed filters; run them with conv2d_winograd");
    const Conv2dTiling t = plan_conv2d_tiling(p, threads);
    const GemmBlockSizes blocks = plan_gemm(t.row_tile, t.col_tile, p.gemm_k());  // one plan for every tile
    const size_t per_thread = conv2d_workspace_floats_per_thread(p, threads);
    const size_t m = p.gemm_m();
    const int k = p.gemm_k();
    const bool direct = p.input_is_patch_matrix();
    const long long tiles = (long long)t.tiles();
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float* mine = workspace + per_thread * size_t(tid);
        float* patch = mine;
        float* gemm_ws = direct ? mine : mine + align_floats(size_t(t.row_tile) * k);
        size_t patch_rows_start = size_t(-1);  // which row tile `patch` currently holds
#pragma omp for schedule(static)
        for (long long tile = 0; tile < tiles; ++tile) {
            const size_t rt = size_t(tile) / t.col_tiles;
            const int ct = int(size_t(tile) % t.col_tiles);
            const size_t m0 = rt * t.row_tile;
            const int rows = int(std::min<size_t>(t.row_tile, m - m0));
            const int c0 = ct * t.col_tile;
            const int cols = std::min(t.col_tile, p.out_c - c0);
            const float* a = in + m0 * k;  // direct: the activations are the patches
            if (!direct) {
                if (patch_rows_start != m0) {  // consecutive column tiles reuse the patch
                    im2col_rows(p, in, m0, rows, patch);
                    patch_rows_start = m0;
                }
                a = patch;
            }
            float* c = out + m0 * p.out_c + c0;
            gemm(rows, cols, k, a, k, packed_w + c0, p.out_c, c, p.out_c, blocks, gemm_ws);
            apply_epilogue(epilogue, c, m0, rows, c0, cols, p.out_c);
        }
    }
}

/// Reference: the definition above, literally. Weights in PyTorch layout [Cout,Cin,kh,kw].
inline void conv2d_reference(const Conv2dParams& p, const float* in, const float* w_oihw, float* out) {
    const int oh = p.out_h(), ow = p.out_w();
    const Padding2d pad = p.padding();
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy)
            for (int ox = 0; ox < ow; ++ox)
                for (int co = 0; co < p.out_c; ++co) {
                    double sum = 0.0;
                    for (int ci = 0; ci < p.in_c; ++ci)
                        for (int ky = 0; ky < p.kernel_h; ++ky)
                            for (int kx = 0; kx < p.kernel_w; ++kx) {
                                const int iy = oy * p.stride - pad.top + ky;
                                const int ix = ox * p.stride - pad.left + kx;
                                if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
                                sum += double(in[((size_t(n) * p.in_h + iy) * p.in_w + ix) * p.in_c + ci]) *
                                       double(w_oihw[((size_t(co) * p.in_c + ci) * p.kernel_h + ky) * p.kernel_w + kx]);
                            }
                    out[((size_t(n) * oh + oy) * ow + ox) * p.out_c + co] = float(sum);
                }
}

}  // namespace softbio::cpu
