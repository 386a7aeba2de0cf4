// kernels/op_params.hpp — what every backend's kernels are told: the parameters of each
// op, the fused epilogue, and the one weight packing. Written once, used by kernels/cpu
// and kernels/cuda alike; it needs neither Eigen nor CUDA (plain C++17).
//
// Conventions shared by all kernels:
//  * Activations are NHWC fp32: element (n, y, x, c) of an [N, H, W, C] map lives at
//    ((n*H + y)*W + x)*C + c.
//  * Output size of a window op (conv, pool), floor mode as in PyTorch:
//        out = floor((in + 2*pad - kernel) / stride) + 1
//  * A convolution is a matrix product out[M x Cout] = P[M x K] * W[K x Cout] with
//    M = N*out_h*out_w output pixels and K = kh*kw*Cin taps (kernels/cpu/conv2d.hpp).
#pragma once

#include <cstddef>

// Small helpers that both host code and CUDA device code call.
#if defined(__CUDACC__)
#define SOFTBIO_HOST_DEVICE __host__ __device__ inline
#else
#define SOFTBIO_HOST_DEVICE inline
#endif

namespace softbio {

/// Floats per 64-byte line: the alignment unit of every buffer softbio carves memory
/// from (one cache line, one AVX-512 register).
inline constexpr size_t kFloatsPerLine = 16;

/// Round a float count up to a whole number of 64-byte lines, so that a block placed
/// right after it starts 64-byte aligned.
constexpr size_t align_floats(size_t count) { return (count + kFloatsPerLine - 1) / kFloatsPerLine * kFloatsPerLine; }

/// Shape and hyper-parameters of one 2-d convolution over a batch (PyTorch Conv2d with
/// groups = 1, dilation = 1, zero padding, no bias: the bias comes in the epilogue).
struct Conv2dParams {
    int batch = 1;
    int in_h = 0, in_w = 0, in_c = 0;
    int out_c = 0;
    int kernel_h = 1, kernel_w = 1;
    int stride = 1;
    int pad = 0;

    /// A square convolution's geometry; the input size comes later (for_input).
    static Conv2dParams geometry(int in_channels, int out_channels, int kernel, int stride, int pad) {
        Conv2dParams p;
        p.in_c = in_channels, p.out_c = out_channels, p.kernel_h = p.kernel_w = kernel, p.stride = stride, p.pad = pad;
        return p;
    }
    /// The same convolution over a batch of `n` inputs of h x w.
    Conv2dParams for_input(int n, int h, int w) const {
        Conv2dParams p = *this;
        p.batch = n, p.in_h = h, p.in_w = w;
        return p;
    }
    int out_h() const { return (in_h + 2 * pad - kernel_h) / stride + 1; }
    int out_w() const { return (in_w + 2 * pad - kernel_w) / stride + 1; }
    /// GEMM sizes: M output pixels, K taps per output, N = out_c.
    size_t gemm_m() const { return size_t(batch) * size_t(out_h()) * size_t(out_w()); }
    int gemm_k() const { return kernel_h * kernel_w * in_c; }
    /// A pointwise convolution: 1x1 filter, no padding (any stride).
    bool is_pointwise() const { return kernel_h == 1 && kernel_w == 1 && pad == 0; }
    /// True when the NHWC input, read as [M, Cin], already is the patch matrix P
    /// (pointwise and stride 1): the conv is one GEMM on the activations, no gather.
    bool input_is_patch_matrix() const { return is_pointwise() && stride == 1; }
    /// Multiply-accumulates of the whole convolution.
    double macs() const { return double(gemm_m()) * gemm_k() * out_c; }
};

/// Shape and hyper-parameters of a pooling window over a batch (max or average).
struct Pool2dParams {
    int batch = 1;
    int in_h = 0, in_w = 0, channels = 0;
    int kernel = 1, stride = 1, pad = 0;
    /// A square window; the input comes later (for_input).
    static Pool2dParams window(int kernel, int stride, int pad) {
        Pool2dParams p;
        p.kernel = kernel, p.stride = stride, p.pad = pad;
        return p;
    }
    /// The same window over a batch of `n` maps of h x w x c.
    Pool2dParams for_input(int n, int h, int w, int c) const {
        Pool2dParams p = *this;
        p.batch = n, p.in_h = h, p.in_w = w, p.channels = c;
        return p;
    }
    int out_h() const { return (in_h + 2 * pad - kernel) / stride + 1; }
    int out_w() const { return (in_w + 2 * pad - kernel) / stride + 1; }
};

/// The per-channel tail of a convolution, applied to each output y[m, c]:
///
///     y = y * scale[c] + bias[c]     inference BatchNorm as an affine map (scale is
///                                     null once BN is folded into the filters)
///     y = y + residual[m, c]         the shortcut of a residual block
///     y = relu(y)                    max(y, 0); NaN stays NaN (see relu below)
///
/// in that order: BN -> (+ identity) -> ReLU, the end of a ResNet block. Null pointers
/// skip a step. Pointers are the backend's (host on the CPU, device on CUDA);
/// `residual` has the output's NHWC shape and must not alias the output.
struct Epilogue {
    const float* scale = nullptr;     // [C]
    const float* bias = nullptr;      // [C]
    const float* residual = nullptr;  // [M, C]
    bool relu = false;
    bool empty() const { return !scale && !bias && !residual && !relu; }
};

/// ReLU as every backend and every reference computes it: negative -> 0, anything else
/// (including NaN) passes through, like torch.relu. A NaN must never be hidden as 0: it
/// would turn a broken input into a confident-looking answer.
SOFTBIO_HOST_DEVICE float relu(float y) { return y < 0.0f ? 0.0f : y; }

/// The filter layout every backend's convolution reads: PyTorch's [Cout, Cin, kh, kw]
/// repacked into the GEMM operand W[K x Cout], row (ky*kw + kx)*Cin + ci, i.e. the tap
/// order of the patch matrix. With `out_scale` (may be null) each output channel's
/// filter is multiplied by out_scale[co]: this is how a BatchNorm is folded into the
/// convolution before it. Done once, at load.
inline void pack_conv_weights(const Conv2dParams& p, const float* w_oihw, const float* out_scale, float* packed) {
    const int ci_n = p.in_c, kh = p.kernel_h, kw = p.kernel_w;
    for (int co = 0; co < p.out_c; ++co) {
        const float s = out_scale ? out_scale[co] : 1.0f;
        for (int ci = 0; ci < ci_n; ++ci)
            for (int ky = 0; ky < kh; ++ky)
                for (int kx = 0; kx < kw; ++kx) {
                    const float v = w_oihw[((size_t(co) * ci_n + ci) * kh + ky) * kw + kx];
                    const size_t row = (size_t(ky) * kw + kx) * ci_n + ci;
                    packed[row * p.out_c + co] = v * s;
                }
    }
}

}  // namespace softbio
