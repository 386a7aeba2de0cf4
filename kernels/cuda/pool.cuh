// kernels/cuda/pool.cuh — max pooling, average pooling (count_include_pad) and global
// average pooling on NHWC fp32 tensors, with PyTorch's exact semantics.
//
// The math is kernels/cpu/pool.hpp's (floor mode), with padding pt/pl/pb/pr on the
// top/left/bottom/right (Pool2dParams::padding(): PyTorch's symmetric p, or TF "same"):
//   out_h = floor((H + pt + pb - k) / s) + 1; window of (oy, ox): rows y0 = oy*s - pt ..
//   y0+k-1, columns from x0 = ox*s - pl.
//   max:  maximum over the in-bounds taps (padding never wins: it acts as -inf).
//   avg:  sum over the in-bounds taps / ((min(y0+k, H+pb) - y0) * (min(x0+k, W+pr) - x0)):
//         padding zeros count in the divisor, a window hanging past the padding does not.
//         (Raschka's AvgPool2d(7, 1, 2) on a 4x4 map: every output is sum / 49.)
//   global average (AdaptiveAvgPool2d(1)): the mean over all H*W pixels.
//
// Bit-exact with the CPU kernels: each output is computed by one thread in the CPU's
// order — the running max with `best < v ? v : best` (= std::max), the sum starting at
// 0 in row-major window order followed by one multiplication by 1.0f / count. Max is
// exact anyway; for the averages the same order of fp32 additions gives the same bits,
// which the tests check (in addition to the tolerance against the double references).
//
// GPU technique: memory-bound gathers. NHWC puts the C channels of a pixel side by
// side, so the thread index runs fastest over channels: a warp reads 32 (or, with
// float4, 128) consecutive floats of one pixel per tap — fully coalesced — and the
// window loop is the same for all threads of a warp (no divergence except at the edge of
// the batch). Channel quads (float4) when C % 4 == 0 and the pointers are 16-byte
// aligned. Global average pool: one thread per (n, channel quad), looping over the H*W
// pixels; consecutive threads read consecutive channels of a pixel.
#pragma once

#include <cstddef>

#include "epilogue.cuh"  // elementwise_blocks
#include "simt.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

// Pool2dParams is shared with the CPU: kernels/op_params.hpp.

struct PoolArgs {
    const float* in = nullptr;
    float* out = nullptr;
    int in_h = 0, in_w = 0, channels = 0, out_h = 0, out_w = 0;
    int kernel = 1, stride = 1;
    int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    bool vec = false;  // channels % 4 == 0, 16-byte aligned: one float4 per thread
    size_t units = 0;  // batch * out_h * out_w * channels / (vec ? 4 : 1)
};

inline PoolArgs make_pool_args(const Pool2dParams& p, const float* in, float* out) {
    PoolArgs a;
    a.in = in, a.out = out;
    a.in_h = p.in_h, a.in_w = p.in_w, a.channels = p.channels, a.out_h = p.out_h(), a.out_w = p.out_w();
    const Padding2d pad = p.padding();
    a.kernel = p.kernel, a.stride = p.stride;
    a.pad_top = pad.top, a.pad_left = pad.left, a.pad_bottom = pad.bottom, a.pad_right = pad.right;
    a.vec = p.channels % 4 == 0 && aligned16(in) && aligned16(out);
    a.units = size_t(p.batch) * a.out_h * a.out_w * size_t(p.channels) / (a.vec ? 4 : 1);
    return a;
}

SOFTBIO_HOST_DEVICE float max_like_cpu(float best, float v) { return best < v ? v : best; }

/// kAvg = false: max pool; true: average pool with count_include_pad.
template <bool kAvg, class Ctx>
SOFTBIO_KERNEL_BODY void pool2d_body(Ctx& c, const PoolArgs& a) {
    const int cu_n = a.vec ? a.channels / 4 : a.channels;  // channel units per pixel
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t u = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); u < a.units; u += step) {
        const int cu = int(u % size_t(cu_n));
        size_t pix = u / size_t(cu_n);  // output pixel index (n, oy, ox)
        const int ox = int(pix % size_t(a.out_w));
        const size_t t = pix / size_t(a.out_w);
        const int oy = int(t % size_t(a.out_h));
        const int n = int(t / size_t(a.out_h));
        const int y0 = oy * a.stride - a.pad_top, x0 = ox * a.stride - a.pad_left;
        const int ys = imax(y0, 0), ye = imin(y0 + a.kernel, a.in_h);
        const int xs = imax(x0, 0), xe = imin(x0 + a.kernel, a.in_w);
        const size_t ch = size_t(cu) * (a.vec ? 4 : 1);
        const float init = kAvg ? 0.0f : neg_infinity();
        float inv = 1.0f;
        if (kAvg) {
            const int pool_h = imin(y0 + a.kernel, a.in_h + a.pad_bottom) - y0;
            const int pool_w = imin(x0 + a.kernel, a.in_w + a.pad_right) - x0;
            inv = div_rn(1.0f, float(pool_h * pool_w));
        }
        if (a.vec) {
            float4 acc = f4_splat(init);
            for (int y = ys; y < ye; ++y)
                for (int x = xs; x < xe; ++x) {
                    const float4 v =
                        c.ld(reinterpret_cast<const float4*>(a.in + ((size_t(n) * a.in_h + y) * a.in_w + x) * a.channels + ch));
                    if (kAvg) acc.x = acc.x + v.x, acc.y = acc.y + v.y, acc.z = acc.z + v.z, acc.w = acc.w + v.w;
                    else acc = make_f4(max_like_cpu(acc.x, v.x), max_like_cpu(acc.y, v.y), max_like_cpu(acc.z, v.z),
                                       max_like_cpu(acc.w, v.w));
                }
            if (kAvg) acc.x = acc.x * inv, acc.y = acc.y * inv, acc.z = acc.z * inv, acc.w = acc.w * inv;
            c.st(reinterpret_cast<float4*>(a.out + pix * a.channels + ch), acc);
        } else {
            float acc = init;
            for (int y = ys; y < ye; ++y)
                for (int x = xs; x < xe; ++x) {
                    const float v = c.ld(a.in + ((size_t(n) * a.in_h + y) * a.in_w + x) * a.channels + ch);
                    acc = kAvg ? acc + v : max_like_cpu(acc, v);
                }
            if (kAvg) acc = acc * inv;
            c.st(a.out + pix * a.channels + ch, acc);
        }
    }
}

/// out[n, c] = mean over the h*w pixels of in[n, :, :, c].
struct GlobalPoolArgs {
    const float* in = nullptr;
    float* out = nullptr;
    int hw = 0, channels = 0;
    bool vec = false;
    size_t units = 0;  // batch * channels / (vec ? 4 : 1)
};

inline GlobalPoolArgs make_global_pool_args(int batch, int h, int w, int c, const float* in, float* out) {
    GlobalPoolArgs a;
    a.in = in, a.out = out, a.hw = h * w, a.channels = c;
    a.vec = c % 4 == 0 && aligned16(in) && aligned16(out);
    a.units = size_t(batch) * size_t(c) / (a.vec ? 4 : 1);
    return a;
}

template <class Ctx>
SOFTBIO_KERNEL_BODY void global_avgpool_body(Ctx& c, const GlobalPoolArgs& a) {
    const int cu_n = a.vec ? a.channels / 4 : a.channels;
    const float inv = div_rn(1.0f, float(a.hw));
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t u = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); u < a.units; u += step) {
        const size_t n = u / size_t(cu_n);
        const size_t ch = (u % size_t(cu_n)) * (a.vec ? 4 : 1);
        const float* src = a.in + n * size_t(a.hw) * a.channels + ch;
        if (a.vec) {
            float4 acc = f4_splat(0.0f);
            for (int i = 0; i < a.hw; ++i) {
                const float4 v = c.ld(reinterpret_cast<const float4*>(src + size_t(i) * a.channels));
                acc.x = acc.x + v.x, acc.y = acc.y + v.y, acc.z = acc.z + v.z, acc.w = acc.w + v.w;
            }
            c.st(reinterpret_cast<float4*>(a.out + n * a.channels + ch),
                 make_f4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv));
        } else {
            float acc = 0.0f;
            for (int i = 0; i < a.hw; ++i) acc = acc + c.ld(src + size_t(i) * a.channels);
            c.st(a.out + n * a.channels + ch, acc * inv);
        }
    }
}

constexpr int kPoolThreads = 256;

#if defined(__CUDACC__)

template <bool kAvg>
__global__ void __launch_bounds__(kPoolThreads) pool2d_kernel(PoolArgs a) {
    DeviceCtx c;
    pool2d_body<kAvg>(c, a);
}

__global__ void __launch_bounds__(kPoolThreads) global_avgpool_kernel(GlobalPoolArgs a) {
    DeviceCtx c;
    global_avgpool_body(c, a);
}

inline void maxpool2d(const Pool2dParams& p, const float* in, float* out, int sm_count, cudaStream_t stream) {
    const PoolArgs a = make_pool_args(p, in, out);
    if (a.units == 0) return;
    pool2d_kernel<false><<<elementwise_blocks(a.units, kPoolThreads, sm_count), kPoolThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("maxpool2d", stream);
}

inline void avgpool2d(const Pool2dParams& p, const float* in, float* out, int sm_count, cudaStream_t stream) {
    const PoolArgs a = make_pool_args(p, in, out);
    if (a.units == 0) return;
    pool2d_kernel<true><<<elementwise_blocks(a.units, kPoolThreads, sm_count), kPoolThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("avgpool2d", stream);
}

inline void global_avgpool(int batch, int h, int w, int c, const float* in, float* out, int sm_count,
                           cudaStream_t stream) {
    const GlobalPoolArgs a = make_global_pool_args(batch, h, w, c, in, out);
    if (a.units == 0) return;
    global_avgpool_kernel<<<elementwise_blocks(a.units, kPoolThreads, sm_count), kPoolThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("global_avgpool", stream);
}

#endif  // __CUDACC__

}  // namespace softbio::cuda
