// kernels/cuda/epilogue.cuh — the per-channel tail of a convolution, as its own pass;
// and the reduction that finishes a split-K convolution.
//
// The math is kernels/cpu/epilogue.hpp's, in the same order:
//     y = y * scale[c];  y = y + bias[c];  y = y + residual[m, c];  y = relu(y)
// (each step skipped when its pointer is null / relu is false; relu is softbio::relu of
// kernels/op_params.hpp, the one every backend uses: NaN stays NaN). A fused convolution
// applies it to its accumulators before the single store (conv2d_implicit_gemm.cuh);
// this kernel is for the two cases where that is not possible:
//
//  * the unfused graph (LoadOptions::fold_batchnorm = false): BatchNorm, residual add
//    and ReLU each run as a separate pass over an [M, C] tensor, in place;
//  * split-K: a convolution with few output tiles (batch 1, late stages) cuts its K
//    (= kh*kw*Cin) loop into S slices run by S times more thread blocks, each writing raw
//    partial sums to part[s][M][C] in a workspace. This kernel then computes
//        out[m, c] = epilogue( part[0][m, c] + part[1][m, c] + ... + part[S-1][m, c] )
//    summing in slice order, so the result is deterministic (no atomics).
//
// GPU technique: a memory-bound elementwise pass. One thread per 4 channels when C % 4 == 0
// and the pointers are 16-byte aligned (one 16-byte load per tensor per thread, fully
// coalesced across the warp), else one thread per element; a grid-stride loop so the
// grid size is capped independently of the tensor size.
#pragma once

#include <cstddef>

#include "simt.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

// The Epilogue struct (scale, bias, residual, relu / leaky_alpha; device pointers here),
// relu() and leaky_relu() are shared with the CPU: kernels/op_params.hpp (one comparison
// and one multiplication: the same bits as the CPU).

/// One output element through the epilogue (loads through the context `c`).
template <class Ctx>
SOFTBIO_KERNEL_BODY float apply_epilogue_one(Ctx& c, const Epilogue& e, float y, int channel, size_t index) {
    if (e.scale) y = y * c.ld(e.scale + channel);
    if (e.bias) y = y + c.ld(e.bias + channel);
    if (e.residual) y = y + c.ld(e.residual + index);
    return activate(e, y);  // ReLU or leaky ReLU (op_params.hpp), or nothing
}

/// Four consecutive channels [channel, channel+4) of one row; `index` is 4-aligned.
template <class Ctx>
SOFTBIO_KERNEL_BODY float4 apply_epilogue_four(Ctx& c, const Epilogue& e, float4 y, int channel, size_t index) {
    if (e.scale) {
        y.x = y.x * c.ld(e.scale + channel), y.y = y.y * c.ld(e.scale + channel + 1);
        y.z = y.z * c.ld(e.scale + channel + 2), y.w = y.w * c.ld(e.scale + channel + 3);
    }
    if (e.bias) {
        y.x = y.x + c.ld(e.bias + channel), y.y = y.y + c.ld(e.bias + channel + 1);
        y.z = y.z + c.ld(e.bias + channel + 2), y.w = y.w + c.ld(e.bias + channel + 3);
    }
    if (e.residual) {
        const float4 r = c.ld(reinterpret_cast<const float4*>(e.residual + index));
        y.x = y.x + r.x, y.y = y.y + r.y, y.z = y.z + r.z, y.w = y.w + r.w;
    }
    if (e.leaky_alpha != 0.0f) {
        const float a = e.leaky_alpha;
        y.x = leaky_relu(y.x, a), y.y = leaky_relu(y.y, a), y.z = leaky_relu(y.z, a), y.w = leaky_relu(y.w, a);
    } else if (e.relu) {
        y.x = relu(y.x), y.y = relu(y.y), y.z = relu(y.z), y.w = relu(y.w);
    }
    return y;
}

/// out[m, c] = epilogue(sum_s in[s * split_stride + m * channels + c]), for m < rows.
/// In-place use (the unfused path): in == out, splits == 1.
struct EpilogueArgs {
    const float* in = nullptr;
    float* out = nullptr;
    int splits = 1;
    size_t split_stride = 0;  // floats between slices of `in`
    size_t rows = 0;
    int channels = 0;
    Epilogue e;
    bool vec = false;  // channels % 4 == 0 and in/out/residual 16-byte aligned
    SOFTBIO_HOST_DEVICE size_t units() const { return vec ? rows * size_t(channels) / 4 : rows * size_t(channels); }
};

template <class Ctx>
SOFTBIO_KERNEL_BODY void epilogue_body(Ctx& c, const EpilogueArgs& a) {
    const size_t total = a.units();
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t u = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); u < total; u += step) {
        if (a.vec) {
            const size_t i = u * 4;
            const int ch = int(i % size_t(a.channels));
            float4 y = c.ld(reinterpret_cast<const float4*>(a.in + i));
            for (int s = 1; s < a.splits; ++s) {
                const float4 p = c.ld(reinterpret_cast<const float4*>(a.in + size_t(s) * a.split_stride + i));
                y.x = y.x + p.x, y.y = y.y + p.y, y.z = y.z + p.z, y.w = y.w + p.w;
            }
            c.st(reinterpret_cast<float4*>(a.out + i), apply_epilogue_four(c, a.e, y, ch, i));
        } else {
            const int ch = int(u % size_t(a.channels));
            float y = c.ld(a.in + u);
            for (int s = 1; s < a.splits; ++s) y = y + c.ld(a.in + size_t(s) * a.split_stride + u);
            c.st(a.out + u, apply_epilogue_one(c, a.e, y, ch, u));
        }
    }
}

/// Grid for a grid-stride elementwise kernel over `units` work items.
inline int elementwise_blocks(size_t units, int threads, int sm_count) {
    const size_t want = (units + size_t(threads) - 1) / size_t(threads);
    const size_t cap = size_t(sm_count > 0 ? sm_count : 132) * 16;  // ~16 blocks per SM, then loop
    return int(want < 1 ? 1 : want > cap ? cap : want);
}

/// Fill in the vectorisation flag for an EpilogueArgs (pointers and channels set).
inline void choose_epilogue_vec(EpilogueArgs& a) {
    a.vec = a.channels % 4 == 0 && aligned16(a.in) && aligned16(a.out) && (!a.e.residual || aligned16(a.e.residual)) &&
            (a.splits == 1 || a.split_stride % 4 == 0);
}

constexpr int kEpilogueThreads = 256;

#if defined(__CUDACC__)

__global__ void __launch_bounds__(kEpilogueThreads) epilogue_kernel(EpilogueArgs a) {
    DeviceCtx c;
    epilogue_body(c, a);
}

/// Launch the epilogue pass described by `a` (vec must already be chosen).
inline void launch_epilogue(const EpilogueArgs& a, int sm_count, cudaStream_t stream, const char* op) {
    if (a.units() == 0) return;
    epilogue_kernel<<<elementwise_blocks(a.units(), kEpilogueThreads, sm_count), kEpilogueThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH(op, stream);
}

/// data[rows, channels] = epilogue(data), in place (the unfused BatchNorm / ReLU / add).
inline void epilogue_inplace(const Epilogue& e, float* data, size_t rows, int channels, int sm_count,
                             cudaStream_t stream) {
    if (e.empty() || rows == 0 || channels == 0) return;
    EpilogueArgs a;
    a.in = data, a.out = data, a.rows = rows, a.channels = channels, a.e = e;
    choose_epilogue_vec(a);
    launch_epilogue(a, sm_count, stream, "epilogue");
}

#endif  // __CUDACC__

}  // namespace softbio::cuda
