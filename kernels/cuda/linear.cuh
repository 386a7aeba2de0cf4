// kernels/cuda/linear.cuh — fully connected layer, CORAL thresholds, and PyTorch's NCHW
// flatten order, on the GPU.
//
// THE MATH (kernels/cpu/linear.hpp):
//   linear:   y[n, o] = sum_f W[o, f] * x[n, f] + b[o]       W as PyTorch stores it, [O, F]
//   coral:    z[n, k] = g[n] + bias[k], k < K-1              (one shared score, K-1 thresholds)
//   flatten:  [N, H, W, C] (NHWC) -> [N, C*H*W] with feature index c*H*W + h*W + w, i.e.
//             what `x.view(N, -1)` gives on PyTorch's NCHW map (a copy for 1x1 maps).
//
// GPU TECHNIQUE. The heads are tiny next to the backbone (ResNet-101: 2 MFLOP of 7.8
// GFLOP per image), but at batch 1 a naive kernel still costs tens of microseconds, so:
//
//  * batch <= 8 (GEMV-like, memory-bound: every weight is used `batch` times): a block of
//    256 threads handles 8 outputs, one group of 32 threads per output row of W. The 32
//    threads stride along F together — each reads 16 bytes (float4) per step, so a group
//    reads 512 contiguous bytes of W per step, coalesced — and keep one partial sum per
//    batch row. The 32 partials per (row, output) are then summed by one thread through
//    shared memory (stride 33 floats: no bank conflicts). 1000 outputs -> 125 blocks.
//  * batch > 8 (a real GEMM, N x O x F): shared-memory tiling. A block computes a 32 x 64
//    tile of y; it stages 32 x 32 slices of x and of W (both read along F, coalesced) in
//    shared memory with a one-float pad per row (row stride 33: the 16 threads that read
//    16 different W rows at the same f hit 16 different banks), and each thread keeps a
//    2 x 4 register tile (rows r, r+16; outputs o, o+16, o+32, o+48).
//  * coral and flatten: one thread per output element.
//
// Summation order differs from the CPU's (8 partial sums there, 32 strided partials
// here), so linear is compared under the tolerance rule (tests/tolerance.hpp); coral and
// flatten are exact.
#pragma once

#include <cstddef>

#include "epilogue.cuh"  // elementwise_blocks
#include "simt.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

struct LinearArgs {
    const float* x = nullptr;  // [batch, in_f]
    const float* w = nullptr;  // [out_f, in_f]
    const float* b = nullptr;  // [out_f] or null
    float* y = nullptr;        // [batch, out_f]
    int batch = 0, in_f = 0, out_f = 0;
    bool vec = false;  // in_f % 4 == 0 and x, w 16-byte aligned (small-batch kernel)
};

inline LinearArgs make_linear_args(int batch, int in_f, int out_f, const float* x, const float* w, const float* b,
                                   float* y) {
    LinearArgs a;
    a.x = x, a.w = w, a.b = b, a.y = y, a.batch = batch, a.in_f = in_f, a.out_f = out_f;
    a.vec = in_f % 4 == 0 && aligned16(x) && aligned16(w);
    return a;
}

// ---- batch <= 8 ----
constexpr int kLinearSmallRows = 8;       // max batch of the small kernel
constexpr int kLinearSmallOutputs = 8;    // outputs per block (one 32-thread group each)
constexpr int kLinearSmallThreads = 256;  // 8 groups x 32
constexpr int kLinearRedStride = 33;
constexpr size_t kLinearSmallSmemBytes = size_t(kLinearSmallOutputs) * kLinearSmallRows * kLinearRedStride * sizeof(float);

template <class Ctx>
SOFTBIO_KERNEL_BODY void linear_small_body(Ctx& c, const LinearArgs& a) {
    const int tid = c.tid();
    const int g = tid / 32, lane = tid % 32;
    const int o = c.bid_x() * kLinearSmallOutputs + g;
    float acc[kLinearSmallRows];
    SOFTBIO_UNROLL
    for (int r = 0; r < kLinearSmallRows; ++r) acc[r] = 0.0f;
    if (o < a.out_f) {
        const float* wr = a.w + size_t(o) * a.in_f;
        if (a.vec) {
            const int f4n = a.in_f / 4;
            for (int f4 = lane; f4 < f4n; f4 += 32) {
                const float4 wv = c.ld(reinterpret_cast<const float4*>(wr) + f4);
                SOFTBIO_UNROLL
                for (int r = 0; r < kLinearSmallRows; ++r) {
                    if (r >= a.batch) break;
                    const float4 xv = c.ld(reinterpret_cast<const float4*>(a.x + size_t(r) * a.in_f) + f4);
                    acc[r] = fmaf(wv.x, xv.x, acc[r]);
                    acc[r] = fmaf(wv.y, xv.y, acc[r]);
                    acc[r] = fmaf(wv.z, xv.z, acc[r]);
                    acc[r] = fmaf(wv.w, xv.w, acc[r]);
                }
            }
        } else {
            for (int f = lane; f < a.in_f; f += 32) {
                const float wv = c.ld(wr + f);
                SOFTBIO_UNROLL
                for (int r = 0; r < kLinearSmallRows; ++r) {
                    if (r >= a.batch) break;
                    acc[r] = fmaf(wv, c.ld(a.x + size_t(r) * a.in_f + f), acc[r]);
                }
            }
        }
    }
    float* red = c.smem();  // [group][row][33]
    SOFTBIO_UNROLL
    for (int r = 0; r < kLinearSmallRows; ++r) red[(g * kLinearSmallRows + r) * kLinearRedStride + lane] = acc[r];
    c.sync();
    if (lane < a.batch && o < a.out_f) {
        const float* p = red + (g * kLinearSmallRows + lane) * kLinearRedStride;
        float s = 0.0f;
        for (int l = 0; l < 32; ++l) s += p[l];
        c.st(a.y + size_t(lane) * a.out_f + o, s + (a.b ? c.ld(a.b + o) : 0.0f));
    }
}

// ---- batch > 8 ----
constexpr int kLinearTileRows = 32, kLinearTileOutputs = 64, kLinearTileF = 32, kLinearTileThreads = 256;
constexpr int kLinearTileStride = kLinearTileF + 1;
constexpr size_t kLinearTileSmemBytes = size_t(kLinearTileRows + kLinearTileOutputs) * kLinearTileStride * sizeof(float);

template <class Ctx>
SOFTBIO_KERNEL_BODY void linear_tiled_body(Ctx& c, const LinearArgs& a) {
    const int tid = c.tid();
    const int o0 = c.bid_x() * kLinearTileOutputs, n0 = c.bid_y() * kLinearTileRows;
    const int r_lane = tid / 16, o_lane = tid % 16;
    float* xs = c.smem();                                  // [32][33]
    float* ws = xs + kLinearTileRows * kLinearTileStride;  // [64][33]
    float acc[2][4];
    SOFTBIO_UNROLL
    for (int i = 0; i < 2; ++i)
        SOFTBIO_UNROLL
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    for (int f0 = 0; f0 < a.in_f; f0 += kLinearTileF) {
        SOFTBIO_UNROLL
        for (int e = 0; e < kLinearTileRows * kLinearTileF / kLinearTileThreads; ++e) {
            const int l = tid + e * kLinearTileThreads, r = l / kLinearTileF, f = l % kLinearTileF;
            const int n = n0 + r, ff = f0 + f;
            xs[r * kLinearTileStride + f] = (n < a.batch && ff < a.in_f) ? c.ld(a.x + size_t(n) * a.in_f + ff) : 0.0f;
        }
        SOFTBIO_UNROLL
        for (int e = 0; e < kLinearTileOutputs * kLinearTileF / kLinearTileThreads; ++e) {
            const int l = tid + e * kLinearTileThreads, o = l / kLinearTileF, f = l % kLinearTileF;
            const int oo = o0 + o, ff = f0 + f;
            ws[o * kLinearTileStride + f] = (oo < a.out_f && ff < a.in_f) ? c.ld(a.w + size_t(oo) * a.in_f + ff) : 0.0f;
        }
        c.sync();
        SOFTBIO_UNROLL
        for (int f = 0; f < kLinearTileF; ++f) {
            const float x0 = xs[r_lane * kLinearTileStride + f], x1 = xs[(r_lane + 16) * kLinearTileStride + f];
            SOFTBIO_UNROLL
            for (int j = 0; j < 4; ++j) {
                const float wv = ws[(o_lane + 16 * j) * kLinearTileStride + f];
                acc[0][j] = fmaf(x0, wv, acc[0][j]);
                acc[1][j] = fmaf(x1, wv, acc[1][j]);
            }
        }
        c.sync();
    }
    SOFTBIO_UNROLL
    for (int i = 0; i < 2; ++i) {
        const int n = n0 + r_lane + 16 * i;
        if (n >= a.batch) continue;
        SOFTBIO_UNROLL
        for (int j = 0; j < 4; ++j) {
            const int o = o0 + o_lane + 16 * j;
            if (o < a.out_f) c.st(a.y + size_t(n) * a.out_f + o, acc[i][j] + (a.b ? c.ld(a.b + o) : 0.0f));
        }
    }
}

// ---- coral and flatten ----
struct CoralArgs {
    const float* g = nullptr;     // [n]
    const float* bias = nullptr;  // [k1]
    float* z = nullptr;           // [n, k1]
    int n = 0, k1 = 0;
};

template <class Ctx>
SOFTBIO_KERNEL_BODY void coral_body(Ctx& c, const CoralArgs& a) {
    const size_t total = size_t(a.n) * size_t(a.k1);
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t i = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); i < total; i += step)
        c.st(a.z + i, c.ld(a.g + i / size_t(a.k1)) + c.ld(a.bias + i % size_t(a.k1)));
}

struct FlattenArgs {
    const float* in = nullptr;  // [n, h, w, c]
    float* out = nullptr;       // [n, c*h*w]
    int n = 0, h = 0, w = 0, c = 0;
};

template <class Ctx>
SOFTBIO_KERNEL_BODY void flatten_body(Ctx& cx, const FlattenArgs& a) {
    const size_t per = size_t(a.h) * a.w * a.c;
    const size_t total = size_t(a.n) * per;
    const size_t step = size_t(cx.nbid_x()) * size_t(cx.ntid());
    for (size_t i = size_t(cx.bid_x()) * size_t(cx.ntid()) + size_t(cx.tid()); i < total; i += step) {
        // output index i = n*per + (ch*h + y)*w + x
        const size_t n = i / per;
        size_t r = i % per;
        const int x = int(r % size_t(a.w));
        r /= size_t(a.w);
        const int y = int(r % size_t(a.h));
        const int ch = int(r / size_t(a.h));
        cx.st(a.out + i, cx.ld(a.in + ((n * a.h + y) * a.w + x) * a.c + ch));
    }
}

constexpr int kSmallOpThreads = 256;

#if defined(__CUDACC__)

__global__ void __launch_bounds__(kLinearSmallThreads) linear_small_kernel(LinearArgs a) {
    DeviceCtx c;
    linear_small_body(c, a);
}
__global__ void __launch_bounds__(kLinearTileThreads) linear_tiled_kernel(LinearArgs a) {
    DeviceCtx c;
    linear_tiled_body(c, a);
}
__global__ void __launch_bounds__(kSmallOpThreads) coral_kernel(CoralArgs a) {
    DeviceCtx c;
    coral_body(c, a);
}
__global__ void __launch_bounds__(kSmallOpThreads) flatten_kernel(FlattenArgs a) {
    DeviceCtx c;
    flatten_body(c, a);
}

/// y[batch, out_f] = x[batch, in_f] W^T + b on `stream`.
inline void linear(int batch, int in_f, int out_f, const float* x, const float* w, const float* b, float* y,
                   cudaStream_t stream) {
    if (batch <= 0 || out_f <= 0) return;
    const LinearArgs a = make_linear_args(batch, in_f, out_f, x, w, b, y);
    if (batch <= kLinearSmallRows) {
        const unsigned blocks = unsigned((out_f + kLinearSmallOutputs - 1) / kLinearSmallOutputs);
        linear_small_kernel<<<blocks, kLinearSmallThreads, kLinearSmallSmemBytes, stream>>>(a);
    } else {
        const dim3 grid(unsigned((out_f + kLinearTileOutputs - 1) / kLinearTileOutputs),
                        unsigned((batch + kLinearTileRows - 1) / kLinearTileRows));
        linear_tiled_kernel<<<grid, kLinearTileThreads, kLinearTileSmemBytes, stream>>>(a);
    }
    SOFTBIO_CUDA_CHECK_LAUNCH("linear", stream);
}

inline void coral_logits(int n, int k1, const float* g, const float* bias, float* z, int sm_count,
                         cudaStream_t stream) {
    if (n <= 0 || k1 <= 0) return;
    const CoralArgs a{g, bias, z, n, k1};
    coral_kernel<<<elementwise_blocks(size_t(n) * k1, kSmallOpThreads, sm_count), kSmallOpThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("coral_logits", stream);
}

inline void flatten_nchw_order(int n, int h, int w, int c, const float* in, float* out, int sm_count,
                               cudaStream_t stream) {
    const size_t total = size_t(n) * h * w * c;
    if (total == 0) return;
    const FlattenArgs a{in, out, n, h, w, c};
    flatten_kernel<<<elementwise_blocks(total, kSmallOpThreads, sm_count), kSmallOpThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("flatten_nchw_order", stream);
}

#endif  // __CUDACC__

}  // namespace softbio::cuda
