// kernels/cuda/depthwise.cuh — depthwise 2-d convolution on NHWC fp32 tensors, with the
// epilogue (scale, bias, residual, ReLU / leaky ReLU) fused into the store.
//
// THE MATH (kernels/cpu/depthwise.hpp): one KxK filter per channel c,
//
//   out[n, oy, ox, c] = epilogue( sum_{ky, kx} in[n, oy*s - pt + ky, ox*s - pl + kx, c] * Wd[ky*kw + kx, c] )
//
//   out_h = floor((H + pt + pb - kh) / s) + 1 (likewise out_w); taps outside the image
//   read zero; pt/pl/pb/pr are Conv2dParams::padding() (symmetric, per side, or TF "same").
//   Wd is the packed [kh*kw, C] layout of pack_depthwise_weights (the CPU's).
//
// GPU TECHNIQUE: there is no reuse across channels to exploit (each output channel reads
// one input channel), so this is a gather, like the pools: one thread per (output
// pixel, channel quad) when C % 4 == 0 and the pointers are 16-byte aligned (one float4
// load of input and of weights per tap), else per (pixel, channel). The thread index
// runs fastest over channels, so a warp reads 32 (x4) consecutive floats of one input
// pixel and of one weight tap per step: fully coalesced, and the window loop is the same
// for all threads of a warp (no divergence except where the warp spans two pixels). The
// window is clipped to the image once per output (no test per tap). The kh*kw*C weights
// are small and read by every pixel: they stay in L1/L2. A grid-stride loop caps the
// grid (elementwise_blocks). Accumulation is in tap order, like the CPU kernel; the GPU
// may contract it into FMAs, so results agree with the CPU within the tolerance rule
// (tests/tolerance.hpp), not bit for bit.
//
// CORRECTNESS WITHOUT A GPU: depthwise_body<Ctx> runs on the host SIMT emulator
// (tests/cuda/test_cuda_emulated.cpp) against cpu::depthwise_conv2d_reference.
#pragma once

#include <cstddef>

#include "epilogue.cuh"  // apply_epilogue_one/four, elementwise_blocks
#include "simt.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

struct DepthwiseArgs {
    const float* in = nullptr;  // [batch, in_h, in_w, channels]
    const float* w = nullptr;   // packed [kh*kw, channels]
    float* out = nullptr;       // [batch, out_h, out_w, channels]
    Epilogue e;
    int in_h = 0, in_w = 0, channels = 0, out_h = 0, out_w = 0;
    int kernel_h = 1, kernel_w = 1, stride = 1;
    int pad_top = 0, pad_left = 0;
    bool vec = false;  // channels % 4 == 0, all pointers 16-byte aligned: one float4 per thread
    size_t units = 0;  // batch * out_h * out_w * channels / (vec ? 4 : 1)
};

inline DepthwiseArgs make_depthwise_args(const Conv2dParams& p, const float* in, const float* w, float* out,
                                         const Epilogue& e) {
    DepthwiseArgs a;
    a.in = in, a.w = w, a.out = out, a.e = e;
    a.in_h = p.in_h, a.in_w = p.in_w, a.channels = p.in_c, a.out_h = p.out_h(), a.out_w = p.out_w();
    a.kernel_h = p.kernel_h, a.kernel_w = p.kernel_w, a.stride = p.stride;
    const Padding2d pad = p.padding();
    a.pad_top = pad.top, a.pad_left = pad.left;
    a.vec = p.in_c % 4 == 0 && aligned16(in) && aligned16(w) && aligned16(out) && (!e.residual || aligned16(e.residual));
    a.units = size_t(p.batch) * size_t(a.out_h) * size_t(a.out_w) * size_t(p.in_c) / (a.vec ? 4 : 1);
    return a;
}

template <class Ctx>
SOFTBIO_KERNEL_BODY void depthwise_body(Ctx& c, const DepthwiseArgs& a) {
    const int cu_n = a.vec ? a.channels / 4 : a.channels;  // channel units per pixel
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t u = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); u < a.units; u += step) {
        const int cu = int(u % size_t(cu_n));
        const size_t pix = u / size_t(cu_n);  // output pixel (n, oy, ox)
        const int ox = int(pix % size_t(a.out_w));
        const size_t t = pix / size_t(a.out_w);
        const int oy = int(t % size_t(a.out_h));
        const int n = int(t / size_t(a.out_h));
        const int y0 = oy * a.stride - a.pad_top, x0 = ox * a.stride - a.pad_left;
        const int ky0 = imax(0, -y0), ky1 = imin(a.kernel_h, a.in_h - y0);
        const int kx0 = imax(0, -x0), kx1 = imin(a.kernel_w, a.in_w - x0);
        const int ch = cu * (a.vec ? 4 : 1);
        const size_t out_index = pix * size_t(a.channels) + size_t(ch);
        if (a.vec) {
            float4 acc = f4_splat(0.0f);
            for (int ky = ky0; ky < ky1; ++ky) {
                const size_t in_row = size_t(n) * a.in_h + size_t(y0 + ky);
                for (int kx = kx0; kx < kx1; ++kx) {
                    const float4 v = c.ld(reinterpret_cast<const float4*>(
                        a.in + (in_row * a.in_w + size_t(x0 + kx)) * a.channels + ch));
                    const float4 w = c.ld(reinterpret_cast<const float4*>(
                        a.w + size_t(ky * a.kernel_w + kx) * a.channels + ch));
                    acc.x = acc.x + v.x * w.x, acc.y = acc.y + v.y * w.y;
                    acc.z = acc.z + v.z * w.z, acc.w = acc.w + v.w * w.w;
                }
            }
            c.st(reinterpret_cast<float4*>(a.out + out_index), apply_epilogue_four(c, a.e, acc, ch, out_index));
        } else {
            float acc = 0.0f;
            for (int ky = ky0; ky < ky1; ++ky) {
                const size_t in_row = size_t(n) * a.in_h + size_t(y0 + ky);
                for (int kx = kx0; kx < kx1; ++kx)
                    acc = acc + c.ld(a.in + (in_row * a.in_w + size_t(x0 + kx)) * a.channels + ch) *
                                    c.ld(a.w + size_t(ky * a.kernel_w + kx) * a.channels + ch);
            }
            c.st(a.out + out_index, apply_epilogue_one(c, a.e, acc, ch, out_index));
        }
    }
}

constexpr int kDepthwiseThreads = 256;

#if defined(__CUDACC__)

__global__ void __launch_bounds__(kDepthwiseThreads) depthwise_kernel(DepthwiseArgs a) {
    DeviceCtx c;
    depthwise_body(c, a);
}

/// out = epilogue(depthwise(in, w)) on `stream`; `w` from pack_depthwise_weights (uploaded).
/// Needs no workspace.
inline void depthwise_conv2d(const Conv2dParams& p, const float* in, const float* w, float* out, const Epilogue& e,
                             int sm_count, cudaStream_t stream) {
    const DepthwiseArgs a = make_depthwise_args(p, in, w, out, e);
    if (a.units == 0) return;
    depthwise_kernel<<<elementwise_blocks(a.units, kDepthwiseThreads, sm_count), kDepthwiseThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("depthwise_conv2d", stream);
}

#endif  // __CUDACC__

}  // namespace softbio::cuda
