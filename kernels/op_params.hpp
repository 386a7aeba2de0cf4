// kernels/op_params.hpp — what every backend's kernels are told: the parameters of each
// op, the fused epilogue, and the one weight packing. Written once, used by kernels/cpu
// and kernels/cuda alike; it needs neither Eigen nor CUDA (plain C++17).
//
// Conventions shared by all kernels:
//  * Activations are NHWC fp32: element (n, y, x, c) of an [N, H, W, C] map lives at
//    ((n*H + y)*W + x)*C + c.
//  * Output size of a window op (conv, depthwise conv, pool), floor mode as in PyTorch:
//        out = floor((in + pad_before + pad_after - kernel) / stride) + 1
//    where pad_before/pad_after are top/bottom (rows) or left/right (columns). The
//    simple case is PyTorch's symmetric `pad` on all four sides; a window op may instead
//    give each side (pad_top/left/bottom/right) or ask for TensorFlow's "same" padding
//    (tf_same_padding below, which puts an odd pixel at the bottom/right). Window
//    (oy, ox) starts at input row oy*stride - pad_top, column ox*stride - pad_left.
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

/// The padding of a window op on each side, in pixels (zero for convolutions, -inf for
/// max pooling).
struct Padding2d {
    int top = 0, left = 0, bottom = 0, right = 0;
    bool operator==(const Padding2d& o) const {
        return top == o.top && left == o.left && bottom == o.bottom && right == o.right;
    }
    bool operator!=(const Padding2d& o) const { return !(*this == o); }
    bool is_zero() const { return top == 0 && left == 0 && bottom == 0 && right == 0; }
    bool is_symmetric() const { return top == bottom && left == right && top == left; }
};

/// TensorFlow's "same" padding along one axis of `in` pixels for a window of `kernel`
/// taps moved by `stride` (tf.nn.conv2d / max_pool with padding="SAME"):
///
///     out    = ceil(in / stride)
///     total  = max((out - 1) * stride + kernel - in, 0)     pixels the windows overhang
///     before = floor(total / 2),  after = total - before     (an odd pixel goes after:
///                                                            to the bottom / right)
///
/// so that floor((in + total - kernel) / stride) + 1 == out. Examples (face-api):
/// 3x3 stride 2 on 112 -> out 56, pad 0 before, 1 after; 2x2 stride 1 on 13 -> out 13,
/// 0 / 1; 2x2 stride 2 on 414 -> 207, 0 / 0; 1x1 stride 2 on 56 -> 28, 0 / 0.
struct SamePadding {
    int before = 0, after = 0, out = 0;
};
inline SamePadding tf_same_padding(int in, int kernel, int stride) {
    SamePadding s;
    s.out = (in + stride - 1) / stride;
    const int total = (s.out - 1) * stride + kernel - in;
    s.before = total > 0 ? total / 2 : 0;
    s.after = total > 0 ? total - s.before : 0;
    return s;
}

namespace detail {
// The four sides of a window op: TF "same" from the input size, else each side given
// (>= 0) or the symmetric `pad`.
inline Padding2d resolve_padding(bool same, int pad, int top, int left, int bottom, int right, int in_h, int in_w,
                                 int kernel_h, int kernel_w, int stride) {
    Padding2d p;
    if (same) {
        const SamePadding y = tf_same_padding(in_h, kernel_h, stride), x = tf_same_padding(in_w, kernel_w, stride);
        p.top = y.before, p.bottom = y.after, p.left = x.before, p.right = x.after;
        return p;
    }
    p.top = top >= 0 ? top : pad;
    p.left = left >= 0 ? left : pad;
    p.bottom = bottom >= 0 ? bottom : pad;
    p.right = right >= 0 ? right : pad;
    return p;
}
}  // namespace detail

/// Shape and hyper-parameters of one 2-d convolution over a batch (PyTorch Conv2d with
/// groups = 1, dilation = 1, zero padding, no bias: the bias comes in the epilogue).
/// The same struct describes a depthwise convolution (kernels/cpu/depthwise.hpp:
/// groups = channels, one filter per channel), with out_c == in_c.
///
/// Padding: `pad` on all four sides (PyTorch's `padding`), unless a side is given in
/// pad_top / pad_left / pad_bottom / pad_right (>= 0 overrides `pad` on that side), or
/// `same` asks for TensorFlow's "same" padding, computed from the input size
/// (tf_same_padding). Kernels read the four sides from padding().
struct Conv2dParams {
    int batch = 1;
    int in_h = 0, in_w = 0, in_c = 0;
    int out_c = 0;
    int kernel_h = 1, kernel_w = 1;
    int stride = 1;
    int pad = 0;
    int pad_top = -1, pad_left = -1, pad_bottom = -1, pad_right = -1;  // -1: `pad`
    bool same = false;                                                 // TF "same"

    /// A square convolution's geometry; the input size comes later (for_input).
    static Conv2dParams geometry(int in_channels, int out_channels, int kernel, int stride, int pad) {
        Conv2dParams p;
        p.in_c = in_channels, p.out_c = out_channels, p.kernel_h = p.kernel_w = kernel, p.stride = stride, p.pad = pad;
        return p;
    }
    /// A square convolution with TensorFlow's "same" padding (resolved per input size).
    static Conv2dParams geometry_same(int in_channels, int out_channels, int kernel, int stride) {
        Conv2dParams p = geometry(in_channels, out_channels, kernel, stride, 0);
        p.same = true;
        return p;
    }
    /// A depthwise convolution's geometry (out_c = in_c = channels).
    static Conv2dParams depthwise(int channels, int kernel, int stride, int pad) {
        return geometry(channels, channels, kernel, stride, pad);
    }
    static Conv2dParams depthwise_same(int channels, int kernel, int stride) {
        return geometry_same(channels, channels, kernel, stride);
    }
    /// Give each side its own padding (overrides `pad` and `same`).
    Conv2dParams& set_padding(int top, int left, int bottom, int right) {
        pad_top = top, pad_left = left, pad_bottom = bottom, pad_right = right, same = false;
        return *this;
    }
    /// The same convolution over a batch of `n` inputs of h x w.
    Conv2dParams for_input(int n, int h, int w) const {
        Conv2dParams p = *this;
        p.batch = n, p.in_h = h, p.in_w = w;
        return p;
    }
    /// The four sides of padding for the current input size.
    Padding2d padding() const {
        return detail::resolve_padding(same, pad, pad_top, pad_left, pad_bottom, pad_right, in_h, in_w, kernel_h, kernel_w,
                                       stride);
    }
    int out_h() const {
        const Padding2d q = padding();
        return (in_h + q.top + q.bottom - kernel_h) / stride + 1;
    }
    int out_w() const {
        const Padding2d q = padding();
        return (in_w + q.left + q.right - kernel_w) / stride + 1;
    }
    /// Whether the window fits the padded input (at least one output per axis).
    bool window_fits() const {
        const Padding2d q = padding();
        return in_h + q.top + q.bottom >= kernel_h && in_w + q.left + q.right >= kernel_w;
    }
    /// GEMM sizes: M output pixels, K taps per output, N = out_c.
    size_t gemm_m() const { return size_t(batch) * size_t(out_h()) * size_t(out_w()); }
    int gemm_k() const { return kernel_h * kernel_w * in_c; }
    /// A pointwise convolution: 1x1 filter, no padding (any stride).
    bool is_pointwise() const { return kernel_h == 1 && kernel_w == 1 && padding().is_zero(); }
    /// True when the NHWC input, read as [M, Cin], already is the patch matrix P
    /// (pointwise and stride 1): the conv is one GEMM on the activations, no gather.
    bool input_is_patch_matrix() const { return is_pointwise() && stride == 1; }
    /// Multiply-accumulates of the whole convolution.
    double macs() const { return double(gemm_m()) * gemm_k() * out_c; }
    /// Multiply-accumulates of the same geometry run as a depthwise convolution.
    double depthwise_macs() const { return double(gemm_m()) * kernel_h * kernel_w * in_c; }
};

/// Shape and hyper-parameters of a pooling window over a batch (max or average).
/// Padding as in Conv2dParams: `pad` on all sides, or per side, or TF "same".
struct Pool2dParams {
    int batch = 1;
    int in_h = 0, in_w = 0, channels = 0;
    int kernel = 1, stride = 1, pad = 0;
    int pad_top = -1, pad_left = -1, pad_bottom = -1, pad_right = -1;  // -1: `pad`
    bool same = false;                                                 // TF "same"
    /// A square window; the input comes later (for_input).
    static Pool2dParams window(int kernel, int stride, int pad) {
        Pool2dParams p;
        p.kernel = kernel, p.stride = stride, p.pad = pad;
        return p;
    }
    /// A square window with TensorFlow's "same" padding (face-api's max pools).
    static Pool2dParams window_same(int kernel, int stride) {
        Pool2dParams p = window(kernel, stride, 0);
        p.same = true;
        return p;
    }
    /// Give each side its own padding (overrides `pad` and `same`).
    Pool2dParams& set_padding(int top, int left, int bottom, int right) {
        pad_top = top, pad_left = left, pad_bottom = bottom, pad_right = right, same = false;
        return *this;
    }
    Padding2d padding() const {
        return detail::resolve_padding(same, pad, pad_top, pad_left, pad_bottom, pad_right, in_h, in_w, kernel, kernel,
                                       stride);
    }
    bool window_fits() const {
        const Padding2d q = padding();
        return in_h + q.top + q.bottom >= kernel && in_w + q.left + q.right >= kernel;
    }
    /// The same window over a batch of `n` maps of h x w x c.
    Pool2dParams for_input(int n, int h, int w, int c) const {
        Pool2dParams p = *this;
        p.batch = n, p.in_h = h, p.in_w = w, p.channels = c;
        return p;
    }
    int out_h() const {
        const Padding2d q = padding();
        return (in_h + q.top + q.bottom - kernel) / stride + 1;
    }
    int out_w() const {
        const Padding2d q = padding();
        return (in_w + q.left + q.right - kernel) / stride + 1;
    }
};

/// The per-channel tail of a convolution, applied to each output y[m, c]:
///
///     y = y * scale[c] + bias[c]     inference BatchNorm as an affine map (scale is
///                                     null once BN is folded into the filters)
///     y = y + residual[m, c]         the shortcut of a residual block
///     y = relu(y)                    max(y, 0); NaN stays NaN (see relu below)
///   or
///     y = leaky_relu(y, alpha)       when leaky_alpha != 0 (face-api: 0.1f); it takes
///                                     the place of `relu`, which is then ignored
///
/// in that order: BN -> (+ identity) -> activation, the end of a ResNet block. Null
/// pointers skip a step. Pointers are the backend's (host on the CPU, device on CUDA);
/// `residual` has the output's NHWC shape and must not alias the output.
struct Epilogue {
    const float* scale = nullptr;     // [C]
    const float* bias = nullptr;      // [C]
    const float* residual = nullptr;  // [M, C]
    bool relu = false;
    float leaky_alpha = 0.0f;  // != 0: leaky ReLU with this negative slope instead of relu
    bool empty() const { return !scale && !bias && !residual && !relu && leaky_alpha == 0.0f; }
    bool activates() const { return relu || leaky_alpha != 0.0f; }
};

/// ReLU as every backend and every reference computes it: negative -> 0, anything else
/// (including NaN) passes through, like torch.relu. A NaN must never be hidden as 0: it
/// would turn a broken input into a confident-looking answer.
SOFTBIO_HOST_DEVICE float relu(float y) { return y < 0.0f ? 0.0f : y; }

/// Leaky ReLU: y for y >= 0, alpha*y for y < 0 (one fp32 multiplication); NaN (not < 0)
/// passes through, like relu, and so do +-inf and -0. face-api (tfjs) writes it as
/// relu(y - alpha*y) + alpha*y (docs/FACE_MODELS.md §2): for y < 0 that is exactly
/// alpha*y too; for y > 0 it can differ from y by one rounding (1 ulp), and it would
/// turn +-inf into NaN. Being a single multiplication, it gives the same bits on every
/// backend (nothing to contract into an FMA).
SOFTBIO_HOST_DEVICE float leaky_relu(float y, float alpha) { return y < 0.0f ? alpha * y : y; }

/// The epilogue's activation step alone (none, ReLU or leaky ReLU).
SOFTBIO_HOST_DEVICE float activate(const Epilogue& e, float y) {
    if (e.leaky_alpha != 0.0f) return leaky_relu(y, e.leaky_alpha);
    return e.relu ? relu(y) : y;
}

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

/// The same packing from TensorFlow's filter layout [kh, kw, Cin, Cout] (HWIO): that
/// layout already is W[K x Cout] row by row, so this is a copy (times out_scale[co]).
inline void pack_conv_weights_hwio(const Conv2dParams& p, const float* w_hwio, const float* out_scale, float* packed) {
    const size_t k = size_t(p.gemm_k());
    for (size_t row = 0; row < k; ++row)
        for (int co = 0; co < p.out_c; ++co)
            packed[row * p.out_c + co] = w_hwio[row * p.out_c + co] * (out_scale ? out_scale[co] : 1.0f);
}

/// The filter layout of a depthwise convolution (kernels/cpu/depthwise.hpp): PyTorch's
/// [C, 1, kh, kw] (Conv2d with groups = C) repacked as Wd[kh*kw x C], row ky*kw + kx,
/// channel fastest, so that the C weights of one tap are contiguous, like the C channels
/// of one NHWC pixel. TensorFlow's depthwise layout [kh, kw, C, 1] is this layout already.
/// With `out_scale` (may be null) channel c's filter is multiplied by out_scale[c].
inline void pack_depthwise_weights(const Conv2dParams& p, const float* w_c1hw, const float* out_scale, float* packed) {
    const int c_n = p.in_c, taps = p.kernel_h * p.kernel_w;
    for (int c = 0; c < c_n; ++c)
        for (int t = 0; t < taps; ++t)
            packed[size_t(t) * c_n + c] = w_c1hw[size_t(c) * taps + t] * (out_scale ? out_scale[c] : 1.0f);
}

/// The same from TensorFlow's [kh, kw, C, 1] (a copy, times out_scale[c]).
inline void pack_depthwise_weights_hwc(const Conv2dParams& p, const float* w_hwc1, const float* out_scale, float* packed) {
    const size_t taps = size_t(p.kernel_h) * p.kernel_w;
    for (size_t t = 0; t < taps; ++t)
        for (int c = 0; c < p.in_c; ++c)
            packed[t * p.in_c + c] = w_hwc1[t * p.in_c + c] * (out_scale ? out_scale[c] : 1.0f);
}

}  // namespace softbio
