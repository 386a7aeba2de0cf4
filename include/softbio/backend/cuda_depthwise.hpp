// softbio/backend/cuda_depthwise.hpp — the CUDA backend's depthwise convolution seam
// (nvcc only), kept beside backend/cuda.hpp:
//
//     #include <softbio/backend/cuda.hpp>
//     #include <softbio/backend/cuda_depthwise.hpp>   // DepthwiseConv2d / SeparableConv2d on CudaBackend
//
// The math and the kernel are in kernels/cuda/depthwise.cuh (one thread per output pixel
// and channel quad, epilogue fused, no workspace):
//
//     out[n, oy, ox, c] = epilogue( sum_{ky, kx} in[n, oy*s - pt + ky, ox*s - pl + kx, c] * Wd[ky*kw + kx, c] )
//
// with the weights packed as on the CPU (pack_depthwise_weights, uploaded once) and the
// padding pt/pl/pb/pr from Conv2dParams::padding() (symmetric, per side or TF "same").
// cuda_depthwise_conv2d() enqueues it on the context's stream; DepthwiseSeam<CudaBackend>
// lets the layers (layers/depthwise_conv.hpp) call it as they call every backend op.
#pragma once

#if !defined(__CUDACC__)
#error "softbio/backend/cuda_depthwise.hpp contains CUDA kernels: include it from a .cu file compiled by nvcc"
#endif

#include "softbio/backend/cuda.hpp"
#include "softbio/kernels/cuda/depthwise.cuh"
#include "softbio/layers/depthwise_conv.hpp"

namespace softbio {

/// out = epilogue(depthwise(in)) on c.stream; all pointers are device pointers; no workspace.
inline void cuda_depthwise_conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out,
                                  const Epilogue& e, const CudaContext& c) {
    cuda::depthwise_conv2d(p, in, packed_w, out, e, c.sm_count, c.stream);
}

template <>
struct DepthwiseSeam<CudaBackend> {
    static void run(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                    const CudaContext& c) {
        cuda_depthwise_conv2d(p, in, packed_w, out, e, c);
    }
};

}  // namespace softbio
