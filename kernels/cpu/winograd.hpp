// kernels/cpu/winograd.hpp — 3x3 stride-1 convolution by Winograd's minimal filtering,
// F(4x4, 3x3), on NHWC fp32 tensors (any padding: PyTorch's, per side, TF "same").
//
// The idea (Lavin & Gray 2015). A 4x4 block of outputs of a 3x3 filter g reads a 6x6
// tile d of the input. Instead of 4*4*9 = 144 multiplications per channel pair,
//
//     Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A          (⊙: element-wise, 6x6)
//
// costs 36: the filter transform U = G g G^T (6x6) is computed once at load, the input
// transform V = B^T d B once per tile and input channel, and the 6x6 element-wise
// products, summed over input channels, are 36 independent matrix products
//
//     M[ξ,ν] (tiles x Cout) = V[ξ,ν] (tiles x Cin) · U[ξ,ν] (Cin x Cout),   ξ,ν = 0..5,
//
// after which the output transform Y = A^T M A (4x4) runs once per tile and output
// channel. The matrices (interpolation points 0, ±1, ±2 and infinity):
//
//   B^T = | 4  0 -5  0  1  0 |    G = |  1/4    0     0   |    A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |        | -1/6   1/6  -1/6  |          | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |        |  1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |        |  1/24 -1/12  1/6  |
//         | 0  4  0 -5  0  1 |        |  0     0     1    |
//
// Accuracy: the transforms have coefficients up to 8 (and 5, 1/24), so rounding errors
// are amplified: F(4x4, 3x3) in fp32 is about an order of magnitude less accurate than
// the direct sum (tests/test_winograd.cpp measures and bounds it). The weight memory is
// 36/9 = 4x the direct conv's. Both are why the choice is per layer (LoadOptions).
//
// How it runs: the tiles (n, ty, tx) of the output, 4x4 pixels each (the last ones
// clipped), are cut into blocks of TB tiles; OpenMP threads take blocks. Per block, in
// the thread's workspace: (1) the input transform of every tile, channels innermost
// (NHWC: a pixel's channels are contiguous, so the transform runs on channel vectors),
// into V[36][TB][Cin]; (2) the 36 products M[ξν] = V[ξν] U[ξν] into M[36][TB][Cout] on
// softbio's packed GEMM micro-kernel (kernels/cpu/gemm_packed.hpp, gemm_rows_packed):
// V[ξν] is already a row-major [TB x Cin] matrix, so the micro-kernel reads its rows in
// place (lda = Cin), and U[ξν] was packed ONCE, at load, into the micro-kernel's panels
// (see THE BUFFER); (3) the output transform per tile into the output, then the
// epilogue (bias, residual, ReLU) on the tile's rows while they are in cache. No
// allocation per call: the workspace is sized by winograd_workspace_floats().
//
// THE BUFFER (pack_winograd_weights): a 16-float header, then 36 panel sets, set ξν being
// exactly what pack_conv_weights_panels writes after its header for the [Cin x Cout]
// matrix U[ξν] (a K = Cin, N = Cout GEMM: K blocks of packed_kc(Cin), column panels of
// NR channels, zero columns past Cout). The header: a quiet NaN with its own payload
// (kWinogradWeightsTag: no checked filter holds a NaN, and it differs from the packed and
// bf16 panels' tags), then Cin, Cout, NR, KC and 36. conv2d_winograd refuses, with an
// exception, a buffer whose header does not match the call and this build (another
// layout, other channels, a build with another NR or KC): it is never misread.
//
// Block size TB (winograd_tile_block): a multiple of MR (full micro-kernel row groups)
// with V and M of the block, 36 * TB * (Cin + Cout) floats, within about half the L2
// (so the streamed U panels and the output tile fit beside them): 512 KiB of the Zen 5's
// 1 MiB (256 and 1024 measured too, no clear winner; docs/PERFORMANCE.md, "Winograd on
// the packed GEMM"). With several threads the driver
// evens the blocks out (a multiple of the thread count, equal sizes <= TB), so that a
// small map (16 tiles at 14 x 14) is not 14 tiles on one thread and 2 on the other.
//
// When it pays (winograd_preferred, ConvKernel::Auto in layers/conv2d.hpp): Winograd does
// 36 / (16 * 9) = 1/4 of the direct conv's multiplications, but U is 4x the direct
// filters and is streamed once per block of TB tiles, and the transforms cost memory
// passes over V and M (per channel, while the saving is per channel pair). Measured on
// the Zen 5 (1 thread): 1.2-2.3x faster than the packed direct GEMM for ResNet's 3x3s at
// 64-256 channels, from 56 x 56 down to 7 x 7; slower with few channels (3 -> 16: 0.6x)
// and at 512 channels on a 4 x 4 map (4 tiles against 37.7 MB of U: 0.5-0.9x).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../op_params.hpp"
#include "epilogue.hpp"
#include "gemm_packed.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio::cpu {

/// Whether F(4x4, 3x3) computes this convolution: a 3x3 kernel at stride 1.
inline bool winograd_applies(const Conv2dParams& p) {
    return p.kernel_h == 3 && p.kernel_w == 3 && p.stride == 1;
}

/// Whether ConvKernel::Auto (layers/conv2d.hpp) runs this conv by Winograd: a 3x3 stride-1
/// conv with at least 64 input and output channels and at most 256 x 256 of them (the
/// transformed filters at most 9.4 MB). Decided from the geometry alone (the weights are
/// stored once, at load, before any input size is known). Measured on the Zen 5, 1
/// thread, batch 1 (docs/PERFORMANCE.md, "Winograd on the packed GEMM"): Winograd
/// 1.1-2.3x faster than the packed direct GEMM for ResNet's 3x3s at 64, 128 and 256
/// channels at every spatial size from 56 down to 7; about even (0.96-1.08x) at 32
/// channels, slower with fewer (0.6x for 3 -> 16 at 416, 0.8x for 16 -> 32 at 208: the
/// transforms cost per channel, the saving per channel pair); at 512 channels it wins
/// 1.0-1.2x at 7 x 7 but loses 0.7-0.86x at 4 x 4 (37.7 MB of U streamed for 4 tiles),
/// so 512 stays direct.
inline bool winograd_preferred(const Conv2dParams& p) {
    return winograd_applies(p) && p.in_c >= 64 && p.out_c >= 64 && size_t(p.in_c) * size_t(p.out_c) <= size_t(256) * 256;
}

/// The header's tag of Winograd panels: a quiet NaN with a payload of its own (not
/// kPackedWeightsTag nor the bf16 one).
inline constexpr uint32_t kWinogradWeightsTag = 0x7FC5B136u;

/// Floats of one of the 36 panel sets: U[ξν] (Cin x Cout) in the micro-kernel's panels.
inline size_t winograd_panel_set_floats(const Conv2dParams& p) {
    return size_t(packed_panels(p.out_c)) * kPackedNR * size_t(p.in_c);
}

/// Floats of pack_winograd_weights' output: the header and the 36 panel sets.
inline size_t winograd_weight_floats(const Conv2dParams& p) {
    return kPackedHeaderFloats + 36 * winograd_panel_set_floats(p);
}

/// Floats of the plain transformed filters U[36][Cin][Cout] (transform_winograd_filters).
inline size_t winograd_plain_floats(const Conv2dParams& p) { return size_t(36) * p.in_c * p.out_c; }

namespace detail {

/// U[ξν][ci][co] = (G g G^T)[ξ][ν] * s_co for every filter, g read through
/// `tap(co, ci, ky, kx)`; in double, rounded once.
template <class Tap>
inline void transform_winograd_filters(const Conv2dParams& p, Tap&& tap, const float* out_scale, float* u) {
    static const double G[6][3] = {{1.0 / 4, 0, 0},          {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    const size_t cin = size_t(p.in_c), cout = size_t(p.out_c);
    for (size_t co = 0; co < cout; ++co)
        for (size_t ci = 0; ci < cin; ++ci) {
            const double s = out_scale ? double(out_scale[co]) : 1.0;
            double g[3][3], gt[6][3];  // the filter, then G g
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) g[ky][kx] = tap(co, ci, ky, kx);
            for (int i = 0; i < 6; ++i)
                for (int j = 0; j < 3; ++j) gt[i][j] = G[i][0] * g[0][j] + G[i][1] * g[1][j] + G[i][2] * g[2][j];
            for (int i = 0; i < 6; ++i)
                for (int j = 0; j < 6; ++j) {
                    const double v = gt[i][0] * G[j][0] + gt[i][1] * G[j][1] + gt[i][2] * G[j][2];  // (G g) G^T
                    u[(size_t(i * 6 + j) * cin + ci) * cout + co] = float(v * s);
                }
        }
}

/// The plain U[36][Cin][Cout] into the header + 36 panel sets (see THE BUFFER): each
/// U[ξν] through pack_conv_weights_panels as the weights of a 1x1 conv Cin -> Cout (a
/// K = Cin, N = Cout GEMM), its header dropped. At load: allocates one set's scratch.
inline void pack_winograd_panels(const Conv2dParams& p, const float* u_plain, float* packed) {
    using packed_detail::put_u32;
    Conv2dParams gemm;  // the GEMM of one ξν as a 1x1 convolution's geometry
    gemm.in_c = p.in_c, gemm.out_c = p.out_c, gemm.kernel_h = gemm.kernel_w = 1;
    const size_t set = winograd_panel_set_floats(p);
    std::vector<float> one(packed_conv_weights_floats(gemm));
    for (int xi = 0; xi < 36; ++xi) {
        pack_conv_weights_panels(gemm, u_plain + size_t(xi) * p.in_c * p.out_c, one.data());
        std::copy(one.begin() + kPackedHeaderFloats, one.end(), packed + kPackedHeaderFloats + size_t(xi) * set);
    }
    std::fill(packed, packed + kPackedHeaderFloats, 0.0f);
    put_u32(packed + 0, kWinogradWeightsTag);
    put_u32(packed + 1, uint32_t(p.in_c));
    put_u32(packed + 2, uint32_t(p.out_c));
    put_u32(packed + 3, uint32_t(kPackedNR));
    put_u32(packed + 4, uint32_t(packed_kc(p.in_c)));
    put_u32(packed + 5, 36u);
}

}  // namespace detail

/// The plain transformed filters U[ξν][ci][co] = (G g G^T)[ξ][ν] for filter g = W[co, ci]
/// (PyTorch layout [Cout, Cin, 3, 3]) times out_scale[co] (a folded BatchNorm; may be
/// null), winograd_plain_floats(p) of them. Computed in double, rounded once. (What the
/// panels hold; for tests and tools.)
inline void transform_winograd_weights(const Conv2dParams& p, const float* w_oihw, const float* out_scale, float* u) {
    const size_t cin = size_t(p.in_c);
    detail::transform_winograd_filters(
        p, [&](size_t co, size_t ci, int ky, int kx) { return double(w_oihw[(co * cin + ci) * 9 + size_t(ky * 3 + kx)]); },
        out_scale, u);
}

/// The weights conv2d_winograd takes: the transformed filters of W (PyTorch layout [Cout,
/// Cin, 3, 3], times out_scale[co] when not null) packed into 36 panel sets behind the
/// header. `packed`: winograd_weight_floats(p) floats, 64-byte aligned (AlignedBuffer) for
/// whole-line panel rows. Done once, at load.
inline void pack_winograd_weights(const Conv2dParams& p, const float* w_oihw, const float* out_scale, float* packed) {
    std::vector<float> u(winograd_plain_floats(p));
    transform_winograd_weights(p, w_oihw, out_scale, u.data());
    detail::pack_winograd_panels(p, u.data(), packed);
}

/// The same from the plain GEMM operand Wp[K x Cout] (pack_conv_weights' layout, row
/// (ky*3 + kx)*Cin + ci; any BatchNorm scale already in it): what Conv2d holds at load.
inline void pack_winograd_weights_plain(const Conv2dParams& p, const float* plain, float* packed) {
    const size_t cin = size_t(p.in_c), cout = size_t(p.out_c);
    std::vector<float> u(winograd_plain_floats(p));
    detail::transform_winograd_filters(
        p, [&](size_t co, size_t ci, int ky, int kx) { return double(plain[(size_t(ky * 3 + kx) * cin + ci) * cout + co]); },
        nullptr, u.data());
    detail::pack_winograd_panels(p, u.data(), packed);
}

/// Whether `w` starts with pack_winograd_weights' header (whatever it was made for).
inline bool is_winograd_weights(const float* w) { return w && packed_detail::get_u32(w) == kWinogradWeightsTag; }

/// The header matches convolution `p` (Cin, Cout) and this build (NR, KC).
inline bool winograd_weights_match(const Conv2dParams& p, const float* w) {
    using packed_detail::get_u32;
    return is_winograd_weights(w) && get_u32(w + 1) == uint32_t(p.in_c) && get_u32(w + 2) == uint32_t(p.out_c) &&
           get_u32(w + 3) == uint32_t(kPackedNR) && get_u32(w + 4) == uint32_t(packed_kc(p.in_c)) &&
           get_u32(w + 5) == 36u;
}

/// Bytes of L2 a block's V and M may take (see the file comment; -DSOFTBIO_WINOGRAD_BLOCK_KB
/// overrides it, for tuning).
#ifndef SOFTBIO_WINOGRAD_BLOCK_KB
#define SOFTBIO_WINOGRAD_BLOCK_KB 512
#endif

/// Tiles per block: a multiple of MR, with V and M (36 x TB x (Cin + Cout) floats)
/// within SOFTBIO_WINOGRAD_BLOCK_KB; at least MR, at most 8 MR.
inline int winograd_tile_block(const Conv2dParams& p) {
    const size_t per_tile = size_t(36) * (size_t(p.in_c) + size_t(p.out_c)) * sizeof(float);
    const size_t fit = size_t(SOFTBIO_WINOGRAD_BLOCK_KB) * 1024 / std::max<size_t>(per_tile, 1);
    const size_t groups = std::clamp<size_t>(fit / size_t(kPackedMR), 1, 8);
    return int(groups) * kPackedMR;
}

inline size_t winograd_tiles(const Conv2dParams& p) {
    return size_t(p.batch) * size_t((p.out_h() + 3) / 4) * size_t((p.out_w() + 3) / 4);
}

/// Working memory per thread: V and M of one block.
inline size_t winograd_workspace_floats_per_thread(const Conv2dParams& p) {
    const size_t tb = size_t(winograd_tile_block(p));
    return align_floats(36 * tb * size_t(p.in_c)) + align_floats(36 * tb * size_t(p.out_c));
}

inline size_t winograd_workspace_floats(const Conv2dParams& p, int threads) {
    return winograd_workspace_floats_per_thread(p) * size_t(threads);
}

namespace detail {

/// Channels per step of the transforms: arrays of this many floats, the innermost loop,
/// which the compiler vectorises.
inline constexpr int kWinogradLanes = 16;

/// V[36][TB][Cin], row `t` of the block: B^T d B for the 6x6 input tile whose top-left
/// is (y0, x0) in image n (taps outside the image are zero).
inline void winograd_input_tile(const Conv2dParams& p, const float* in, int n, int y0, int x0, float* v, size_t tb,
                                int t) {
    constexpr int L = kWinogradLanes;
    const int cin = p.in_c;
    const float* rows[6][6];  // each tap's pixel, or null for padding
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
            const int y = y0 + i, x = x0 + j;
            rows[i][j] = (y >= 0 && y < p.in_h && x >= 0 && x < p.in_w)
                             ? in + ((size_t(n) * p.in_h + size_t(y)) * p.in_w + size_t(x)) * cin
                             : nullptr;
        }
    for (int c0 = 0; c0 < cin; c0 += L) {
        const int lanes = std::min(L, cin - c0);
        float d[6][6][L], w[6][6][L];
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 6; ++j)
                for (int l = 0; l < L; ++l) d[i][j][l] = rows[i][j] && l < lanes ? rows[i][j][c0 + l] : 0.0f;
        // w = B^T d (rows), then V = w B (columns): the same six combinations each way.
        auto bt = [](const float (*a)[L], int stride, float (*o)[L], int ostride) {
            for (int l = 0; l < L; ++l) {
                const float a0 = a[0 * stride][l], a1 = a[1 * stride][l], a2 = a[2 * stride][l];
                const float a3 = a[3 * stride][l], a4 = a[4 * stride][l], a5 = a[5 * stride][l];
                o[0 * ostride][l] = 4 * a0 - 5 * a2 + a4;
                o[1 * ostride][l] = -4 * a1 - 4 * a2 + a3 + a4;
                o[2 * ostride][l] = 4 * a1 - 4 * a2 - a3 + a4;
                o[3 * ostride][l] = -2 * a1 - a2 + 2 * a3 + a4;
                o[4 * ostride][l] = 2 * a1 - a2 - 2 * a3 + a4;
                o[5 * ostride][l] = 4 * a1 - 5 * a3 + a5;
            }
        };
        for (int j = 0; j < 6; ++j) bt(&d[0][j], 6, &w[0][j], 6);  // column j of d -> column j of w
        for (int i = 0; i < 6; ++i) bt(&w[i][0], 1, &d[i][0], 1);  // row i of w -> row i of V (reusing d)
        for (int xi = 0; xi < 36; ++xi) {
            float* dst = v + (size_t(xi) * tb + size_t(t)) * cin + c0;
            for (int l = 0; l < lanes; ++l) dst[l] = d[xi / 6][xi % 6][l];
        }
    }
}

/// The output tile (image n, top-left (oy0, ox0)) from M[36][TB][Cout] row `t`: A^T M A,
/// the pixels inside the output written, then the epilogue on them.
inline void winograd_output_tile(const Conv2dParams& p, const float* m, size_t tb, int t, int n, int oy0, int ox0,
                                 float* out, const Epilogue& e) {
    constexpr int L = kWinogradLanes;
    const int cout = p.out_c, oh = p.out_h(), ow = p.out_w();
    const int rows = std::min(4, oh - oy0), cols = std::min(4, ow - ox0);
    for (int c0 = 0; c0 < cout; c0 += L) {
        const int lanes = std::min(L, cout - c0);
        float a[6][6][L], w[6][6][L];
        for (int xi = 0; xi < 36; ++xi) {
            const float* src = m + (size_t(xi) * tb + size_t(t)) * cout + c0;
            for (int l = 0; l < L; ++l) a[xi / 6][xi % 6][l] = l < lanes ? src[l] : 0.0f;
        }
        auto at = [](const float (*s)[L], int stride, float (*o)[L], int ostride) {
            for (int l = 0; l < L; ++l) {
                const float s0 = s[0 * stride][l], s1 = s[1 * stride][l], s2 = s[2 * stride][l];
                const float s3 = s[3 * stride][l], s4 = s[4 * stride][l], s5 = s[5 * stride][l];
                o[0 * ostride][l] = s0 + s1 + s2 + s3 + s4;
                o[1 * ostride][l] = s1 - s2 + 2 * (s3 - s4);
                o[2 * ostride][l] = s1 + s2 + 4 * (s3 + s4);
                o[3 * ostride][l] = s1 - s2 + 8 * (s3 - s4) + s5;
            }
        };
        for (int j = 0; j < 6; ++j) at(&a[0][j], 6, &w[0][j], 6);  // columns: w[0..3][j] = A^T M
        for (int i = 0; i < 4; ++i) at(&w[i][0], 1, &a[i][0], 1);  // rows: a[i][0..3] = (A^T M) A
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) {
                float* dst = out + ((size_t(n) * oh + size_t(oy0 + i)) * ow + size_t(ox0 + j)) * cout + c0;
                for (int l = 0; l < lanes; ++l) dst[l] = a[i][j][l];
            }
    }
    for (int i = 0; i < rows; ++i) {
        const size_t row0 = (size_t(n) * oh + size_t(oy0 + i)) * ow + size_t(ox0);
        apply_epilogue(e, out + row0 * cout, row0, cols, 0, cout, cout);
    }
}

}  // namespace detail

/// out[N, oh, ow, Cout] = epilogue(conv3x3(in, W)) by F(4x4, 3x3). `u` from
/// pack_winograd_weights*() (refused with std::invalid_argument otherwise); `workspace`
/// holds winograd_workspace_floats(p, threads) floats, 64-byte aligned. `in` and
/// `e.residual` must not alias `out`. Never allocates.
inline void conv2d_winograd(const Conv2dParams& p, const float* in, const float* u, float* out, const Epilogue& e,
                            float* workspace, int threads) {
    if (!winograd_applies(p))
        throw std::invalid_argument("conv2d_winograd: F(4x4, 3x3) needs a 3x3 kernel at stride 1");
    if (!winograd_weights_match(p, u))
        throw std::invalid_argument(
            "conv2d_winograd: the weights were not packed by pack_winograd_weights for this convolution and this build");
    const float* panels = u + kPackedHeaderFloats;
    const size_t set_floats = winograd_panel_set_floats(p);
    const Padding2d pad = p.padding();
    const int tiles_y = (p.out_h() + 3) / 4, tiles_x = (p.out_w() + 3) / 4;
    const size_t tiles = winograd_tiles(p);
    const int tb_max = winograd_tile_block(p);  // what the workspace holds
    // With several threads, as many blocks as a multiple of the thread count, of equal
    // size (<= tb_max): 16 tiles (14 x 14) on 2 threads are 8 + 8, not 14 + 2.
    // (One thread: whole blocks of tb_max, a multiple of MR, the last one partial.)
    int tb = tb_max;
    if (threads > 1) {
        size_t block_count = (tiles + size_t(tb_max) - 1) / size_t(tb_max);
        block_count = (block_count + size_t(threads) - 1) / size_t(threads) * size_t(threads);
        tb = int(std::max<size_t>(1, (tiles + block_count - 1) / block_count));
    }
    const long long blocks = (long long)((tiles + size_t(tb) - 1) / size_t(tb));
    const size_t per_thread = winograd_workspace_floats_per_thread(p);
    const size_t v_floats = align_floats(36 * size_t(tb_max) * p.in_c);
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float* v = workspace + per_thread * size_t(tid);
        float* m = v + v_floats;
#pragma omp for schedule(static)
        for (long long b = 0; b < blocks; ++b) {
            const size_t first = size_t(b) * size_t(tb);
            const int count = int(std::min<size_t>(size_t(tb), tiles - first));
            auto tile_origin = [&](int t, int& n, int& oy0, int& ox0) {
                const size_t id = first + size_t(t);
                n = int(id / (size_t(tiles_y) * tiles_x));
                const int rem = int(id % (size_t(tiles_y) * tiles_x));
                oy0 = (rem / tiles_x) * 4, ox0 = (rem % tiles_x) * 4;
            };
            for (int t = 0; t < count; ++t) {
                int n, oy0, ox0;
                tile_origin(t, n, oy0, ox0);
                detail::winograd_input_tile(p, in, n, oy0 - pad.top, ox0 - pad.left, v, size_t(tb), t);
            }
            for (int xi = 0; xi < 36; ++xi)  // M[ξν] = V[ξν] U[ξν], V's rows read in place
                gemm_rows_packed(count, p.out_c, p.in_c, v + size_t(xi) * tb * p.in_c, size_t(p.in_c),
                                 panels + size_t(xi) * set_floats, m + size_t(xi) * tb * p.out_c, size_t(p.out_c));
            for (int t = 0; t < count; ++t) {
                int n, oy0, ox0;
                tile_origin(t, n, oy0, ox0);
                detail::winograd_output_tile(p, m, size_t(tb), t, n, oy0, ox0, out, e);
            }
        }
    }
}

}  // namespace softbio::cpu
