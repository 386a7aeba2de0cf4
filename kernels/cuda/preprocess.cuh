// kernels/cuda/preprocess.cuh — 8-bit RGB images (HWC) to the network's float input
// (NHWC) on the device: torchvision's ToTensor, optionally followed by Normalize.
//
// THE MATH (softbio/image/preprocess.hpp, bit-exact with torch):
//   to_tensor:  x = float32(v) / 255            a true fp32 division, not v * (1/255)
//   normalize:  x = (x - mean[c]) / std[c]      two fp32 roundings: a subtraction, a division
// The channel of byte j of a pixel row is j % 3 (RGB interleaved); the output keeps that
// layout — HWC per image is exactly NHWC for the batch, the engine's layout — so the
// kernel is a 1:1 elementwise map from bytes to floats.
//
// What stays on the CPU: decoding, center-crop and the PIL-exact antialiased resize
// (integer arithmetic, cheap, and bit-exactness with PIL is easier to keep in one place).
// This kernel saves the 4x larger float upload: a 224x224 image crosses PCIe as 150 KB
// of bytes instead of 600 KB of floats, and the conversion runs at memory speed.
//
// GPU technique: one thread per output float, a grid-stride loop; the uint8 loads of a
// warp are 32 consecutive bytes (one sector) and the float stores 128 contiguous bytes.
// __fdiv_rn / __fsub_rn (div_rn/sub_rn in simt.cuh) force IEEE round-to-nearest so the
// result matches the CPU bit for bit even if the file is compiled with -use_fast_math.
//
// Input addressing: image n, row y, byte j lives at src + n*image_stride + y*row_stride + j
// (strides in bytes), so a batch of separately padded rows or a cropped view can be read in
// place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "epilogue.cuh"  // elementwise_blocks
#include "simt.cuh"

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

struct PreprocessArgs {
    const std::uint8_t* src = nullptr;
    float* dst = nullptr;  // [batch, h, w, 3]
    int batch = 0, h = 0, w = 0;
    size_t row_stride = 0, image_stride = 0;  // bytes
    bool normalize = false;
    float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
};

template <class Ctx>
SOFTBIO_KERNEL_BODY void preprocess_body(Ctx& c, const PreprocessArgs& a) {
    const size_t row = size_t(a.w) * 3;
    const size_t per_image = size_t(a.h) * row;
    const size_t total = size_t(a.batch) * per_image;
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t i = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); i < total; i += step) {
        const size_t n = i / per_image, r = i % per_image;
        const size_t y = r / row, j = r % row;
        const std::uint8_t v = c.ld(a.src + n * a.image_stride + y * a.row_stride + j);
        float x = div_rn(float(v), 255.0f);
        if (a.normalize) {
            const int ch = int(j % 3);  // selects, not a[ch]: a runtime index would put the arrays on the stack
            const float m = ch == 0 ? a.mean[0] : ch == 1 ? a.mean[1] : a.mean[2];
            const float sd = ch == 0 ? a.std[0] : ch == 1 ? a.std[1] : a.std[2];
            x = div_rn(sub_rn(x, m), sd);
        }
        c.st(a.dst + i, x);
    }
}

constexpr int kPreprocessThreads = 256;

#if defined(__CUDACC__)

__global__ void __launch_bounds__(kPreprocessThreads) preprocess_kernel(PreprocessArgs a) {
    DeviceCtx c;
    preprocess_body(c, a);
}

/// dst[batch, h, w, 3] = to_tensor(src) (then normalize when a.normalize), on `stream`.
inline void preprocess_u8(const PreprocessArgs& a, int sm_count, cudaStream_t stream) {
    const size_t total = size_t(a.batch) * a.h * a.w * 3;
    if (total == 0) return;
    preprocess_kernel<<<elementwise_blocks(total, kPreprocessThreads, sm_count), kPreprocessThreads, 0, stream>>>(a);
    SOFTBIO_CUDA_CHECK_LAUNCH("preprocess_u8", stream);
}

#endif  // __CUDACC__

}  // namespace softbio::cuda
