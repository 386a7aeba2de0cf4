// kernels/cpu/depthwise.hpp — depthwise 2-d convolution on NHWC fp32 tensors: one KxK
// filter per channel (PyTorch Conv2d with groups = C and channel multiplier 1;
// tf.nn.depthwiseConv2d), with the epilogue (bias, residual, ReLU / leaky ReLU) fused.
//
// The math, for channel c (pt/pl = padding on the top/left, Conv2dParams::padding()):
//
//   out[n, oy, ox, c] = sum_{ky, kx} in[n, oy*s - pt + ky, ox*s - pl + kx, c] * W[c, ky, kx]
//
//   out_h = floor((H + pt + pb - kh) / s) + 1 (likewise out_w); taps outside the image
//   read zero. Any padding: PyTorch's symmetric, per side, or TensorFlow "same" (the odd
//   pixel at the bottom/right). Conv2dParams describes it with out_c == in_c = C.
//
// Weights: packed once as Wd[kh*kw x C] (pack_depthwise_weights, kernels/op_params.hpp):
// row ky*kw + kx holds that tap of every channel, contiguous. TensorFlow's [kh, kw, C, 1]
// is this layout already.
//
// How it runs: in NHWC the C channels of a pixel are contiguous, and so are the C weights
// of a tap. For each output pixel the channels go in blocks of 16 (then 8, 4, 1 for the
// rest, so any C works): a block's 16 accumulators stay in registers while the
// in-bounds taps add in_pixel[block] * w_tap[block] — unit-stride, vectorised — and are
// stored once. The window is clipped to the image once per pixel, so the inner loop has
// no bounds test. After a row of outputs the epilogue runs on it while it is still in
// cache. Threads split the (image, output row) pairs. No working memory: nothing is
// allocated.
//
// depthwise_conv2d_reference() is the definition above, literally, in double, with the
// weights in PyTorch's [C, 1, kh, kw] layout: the tests' ground truth.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../op_params.hpp"
#include "epilogue.hpp"

namespace softbio::cpu {

namespace detail {

/// One output pixel, channels [0, V) of the given pointers: the sum over a rows x cols
/// block of in-bounds taps. `in` points at the first tap's pixel, `w` at its weights;
/// taps are `c` floats apart along a row, rows `in_row` / `w_row` floats apart. The V
/// accumulators stay in registers (V is a compile-time width: 16 = one AVX-512 or two
/// AVX registers), summed in tap order (ky, kx), then stored once.
template <int V>
inline void depthwise_pixel(const float* __restrict in, size_t in_row, const float* __restrict w, size_t w_row, int c,
                            int rows, int cols, float* __restrict dst) {
    float acc[V];
    for (int j = 0; j < V; ++j) acc[j] = 0.0f;
    for (int r = 0; r < rows; ++r) {
        const float* s = in + size_t(r) * in_row;
        const float* k = w + size_t(r) * w_row;
        for (int t = 0; t < cols; ++t, s += c, k += c)
            for (int j = 0; j < V; ++j) acc[j] += s[j] * k[j];
    }
    for (int j = 0; j < V; ++j) dst[j] = acc[j];
}

}  // namespace detail

/// out[N, oh, ow, C] = epilogue(depthwise(in, Wd)). `p.in_c` is C (`p.out_c` must equal
/// it); `packed_w` from pack_depthwise_weights(); `e.residual`, if any, must not alias
/// `out`, and `in` must not alias `out`.
inline void depthwise_conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out,
                             const Epilogue& e, int threads) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.in_c;
    const int kh = p.kernel_h, kw = p.kernel_w, s = p.stride;
    const Padding2d pad = p.padding();
    const size_t in_row = size_t(p.in_w) * c, w_row = size_t(kw) * c;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy) {
            const int y0 = oy * s - pad.top;
            const int ky0 = std::max(0, -y0), ky1 = std::min(kh, p.in_h - y0);  // in-bounds taps [ky0, ky1)
            const size_t row0 = (size_t(n) * oh + oy) * ow;                     // first output pixel of the row
            for (int ox = 0; ox < ow; ++ox) {
                const int x0 = ox * s - pad.left;
                const int kx0 = std::max(0, -x0), kx1 = std::min(kw, p.in_w - x0);
                float* dst = out + (row0 + ox) * c;
                if (ky1 <= ky0 || kx1 <= kx0) {  // a window wholly in the padding (pads >= kernel)
                    std::fill(dst, dst + c, 0.0f);
                    continue;
                }
                // first in-bounds tap (y0 + ky0, x0 + kx0) and its weights
                const float* src = in + ((size_t(n) * p.in_h + size_t(y0 + ky0)) * p.in_w + size_t(x0 + kx0)) * c;
                const float* w = packed_w + (size_t(ky0) * kw + kx0) * c;
                const int rows = ky1 - ky0, cols = kx1 - kx0;
                int ch = 0;
                for (; ch + 16 <= c; ch += 16)
                    detail::depthwise_pixel<16>(src + ch, in_row, w + ch, w_row, c, rows, cols, dst + ch);
                if (ch + 8 <= c) {
                    detail::depthwise_pixel<8>(src + ch, in_row, w + ch, w_row, c, rows, cols, dst + ch);
                    ch += 8;
                }
                if (ch + 4 <= c) {
                    detail::depthwise_pixel<4>(src + ch, in_row, w + ch, w_row, c, rows, cols, dst + ch);
                    ch += 4;
                }
                for (; ch < c; ++ch) detail::depthwise_pixel<1>(src + ch, in_row, w + ch, w_row, c, rows, cols, dst + ch);
            }
            apply_epilogue(e, out + row0 * c, row0, ow, 0, c, c);
        }
}

/// Reference: the definition above, literally, accumulated in double. Weights in
/// PyTorch's layout [C, 1, kh, kw]. No epilogue (tests apply apply_epilogue_reference).
inline void depthwise_conv2d_reference(const Conv2dParams& p, const float* in, const float* w_c1hw, float* out) {
    const int oh = p.out_h(), ow = p.out_w(), c_n = p.in_c;
    const Padding2d pad = p.padding();
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy)
            for (int ox = 0; ox < ow; ++ox)
                for (int c = 0; c < c_n; ++c) {
                    double sum = 0.0;
                    for (int ky = 0; ky < p.kernel_h; ++ky)
                        for (int kx = 0; kx < p.kernel_w; ++kx) {
                            const int iy = oy * p.stride - pad.top + ky;
                            const int ix = ox * p.stride - pad.left + kx;
                            if (iy < 0 || iy >= p.in_h || ix < 0 || ix >= p.in_w) continue;
                            sum += double(in[((size_t(n) * p.in_h + iy) * p.in_w + ix) * c_n + c]) *
                                   double(w_c1hw[(size_t(c) * p.kernel_h + ky) * p.kernel_w + kx]);
                        }
                    out[((size_t(n) * oh + oy) * ow + ox) * c_n + c] = float(sum);
                }
}

}  // namespace softbio::cpu
