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
// of a tap. Each output pixel is one row of C accumulators; for each in-bounds tap the
// kernel adds in_pixel[0..C) * w_tap[0..C) to it — a unit-stride loop the compiler
// vectorises for any C (a scalar tail handles C % vector width). The row lives in the
// output itself (L1-resident while its k*k taps are added), then the epilogue runs on
// it, still hot. Threads split the (image, output row) pairs. The bounds of the window
// are clipped once per pixel, so there is no test in the inner loop, and no working
// memory: nothing is allocated.
//
// depthwise_conv2d_reference() is the definition above, literally, in double, with the
// weights in PyTorch's [C, 1, kh, kw] layout: the tests' ground truth.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../op_params.hpp"
#include "epilogue.hpp"

namespace softbio::cpu {

/// out[N, oh, ow, C] = epilogue(depthwise(in, Wd)). `p.in_c` is C (`p.out_c` must equal
/// it); `packed_w` from pack_depthwise_weights(); `e.residual`, if any, must not alias
/// `out`, and `in` must not alias `out`.
inline void depthwise_conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out,
                             const Epilogue& e, int threads) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.in_c;
    const int kh = p.kernel_h, kw = p.kernel_w, s = p.stride;
    const Padding2d pad = p.padding();
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy) {
            const int y0 = oy * s - pad.top;
            const int ky0 = std::max(0, -y0), ky1 = std::min(kh, p.in_h - y0);  // in-bounds taps [ky0, ky1)
            const size_t row0 = (size_t(n) * oh + oy) * ow;                     // first output pixel of the row
            for (int ox = 0; ox < ow; ++ox) {
                const int x0 = ox * s - pad.left;
                const int kx0 = std::max(0, -x0), kx1 = std::min(kw, p.in_w - x0);
                float* __restrict dst = out + (row0 + ox) * c;
                std::fill(dst, dst + c, 0.0f);
                for (int ky = ky0; ky < ky1; ++ky) {
                    const size_t in_row = size_t(n) * p.in_h + size_t(y0 + ky);
                    for (int kx = kx0; kx < kx1; ++kx) {
                        const float* __restrict src = in + (in_row * p.in_w + size_t(x0 + kx)) * c;
                        const float* __restrict w = packed_w + (size_t(ky) * kw + kx) * c;
                        for (int ch = 0; ch < c; ++ch) dst[ch] += src[ch] * w[ch];
                    }
                }
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
