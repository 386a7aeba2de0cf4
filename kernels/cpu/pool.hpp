// kernels/cpu/pool.hpp — max pooling, average pooling and global average pooling on
// NHWC fp32 tensors, with PyTorch's exact semantics.
//
// Output size (floor mode, PyTorch's default ceil_mode=False), with padding pt/pb on
// the top/bottom and pl/pr on the left/right (Pool2dParams::padding(); all = p in
// PyTorch's symmetric case, TensorFlow "same" puts an odd pixel at the bottom/right):
//     out_h = floor((H + pt + pb - k) / s) + 1        (likewise out_w with pl, pr)
// Window of output (oy, ox): rows  y0 = oy*s - pt .. y0 + k - 1,  cols from x0 = ox*s - pl.
//
// Max pool (MaxPool2d, tf max_pool): the maximum over the in-bounds taps of the window;
//   padding acts as -inf, i.e. it never wins (PyTorch requires p <= k/2 and "same"
//   padding is < k, so every window holds at least one real pixel).
//
// Average pool (AvgPool2d with count_include_pad=True, the default):
//   sum over the in-bounds taps, divided by the window size clipped to the *padded*
//   extent:  (min(y0 + k, H + pb) - y0) * (min(x0 + k, W + pr) - x0).
//   Padding zeros are counted in the divisor, but a window hanging past the padding
//   is not. Example, Raschka's AvgPool2d(7, 1, 2) on a 4x4 map: both windows per axis
//   span all 4 real rows and the divisor is 7*7 = 49, so every output is sum/49.
//
// Global average pool (AdaptiveAvgPool2d(1)): the mean over all H*W pixels.
//
// In NHWC all channels of a pixel are contiguous, so every kernel below runs its inner
// loop over channels: unit-stride, vectorised. The *_reference versions are the same
// definitions with no loop reordering, used by the tests.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>

#include "../op_params.hpp"

namespace softbio::cpu {

inline void maxpool2d(const Pool2dParams& p, const float* in, float* out, int threads) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.channels;
    const Padding2d pad = p.padding();
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy) {
            const int y0 = oy * p.stride - pad.top;
            const int ys = std::max(y0, 0), ye = std::min(y0 + p.kernel, p.in_h);
            for (int ox = 0; ox < ow; ++ox) {
                const int x0 = ox * p.stride - pad.left;
                const int xs = std::max(x0, 0), xe = std::min(x0 + p.kernel, p.in_w);
                float* dst = out + ((size_t(n) * oh + oy) * ow + ox) * c;
                std::fill(dst, dst + c, -std::numeric_limits<float>::infinity());
                for (int y = ys; y < ye; ++y)
                    for (int x = xs; x < xe; ++x) {
                        const float* src = in + ((size_t(n) * p.in_h + y) * p.in_w + x) * c;
                        for (int ch = 0; ch < c; ++ch) dst[ch] = std::max(dst[ch], src[ch]);
                    }
            }
        }
}

inline void avgpool2d(const Pool2dParams& p, const float* in, float* out, int threads) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.channels;
    const Padding2d pad = p.padding();
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy) {
            const int y0 = oy * p.stride - pad.top;
            const int ys = std::max(y0, 0), ye = std::min(y0 + p.kernel, p.in_h);
            const int pool_h = std::min(y0 + p.kernel, p.in_h + pad.bottom) - y0;
            for (int ox = 0; ox < ow; ++ox) {
                const int x0 = ox * p.stride - pad.left;
                const int xs = std::max(x0, 0), xe = std::min(x0 + p.kernel, p.in_w);
                const int pool_w = std::min(x0 + p.kernel, p.in_w + pad.right) - x0;
                float* dst = out + ((size_t(n) * oh + oy) * ow + ox) * c;
                std::fill(dst, dst + c, 0.0f);
                for (int y = ys; y < ye; ++y)
                    for (int x = xs; x < xe; ++x) {
                        const float* src = in + ((size_t(n) * p.in_h + y) * p.in_w + x) * c;
                        for (int ch = 0; ch < c; ++ch) dst[ch] += src[ch];
                    }
                const float inv = 1.0f / float(pool_h * pool_w);
                for (int ch = 0; ch < c; ++ch) dst[ch] *= inv;
            }
        }
}

/// out[n, c] = mean over (h, w) of in[n, h, w, c].
inline void global_avgpool(int batch, int h, int w, int c, const float* in, float* out, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < batch; ++n) {
        float* dst = out + size_t(n) * c;
        std::fill(dst, dst + c, 0.0f);
        const float* src = in + size_t(n) * h * w * c;
        for (int i = 0; i < h * w; ++i)
            for (int ch = 0; ch < c; ++ch) dst[ch] += src[size_t(i) * c + ch];
        const float inv = 1.0f / float(h * w);
        for (int ch = 0; ch < c; ++ch) dst[ch] *= inv;
    }
}

// ---- references ---------------------------------------------------------------------

inline void maxpool2d_reference(const Pool2dParams& p, const float* in, float* out) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.channels;
    const Padding2d pad = p.padding();
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy)
            for (int ox = 0; ox < ow; ++ox)
                for (int ch = 0; ch < c; ++ch) {
                    float best = -std::numeric_limits<float>::infinity();
                    for (int ky = 0; ky < p.kernel; ++ky)
                        for (int kx = 0; kx < p.kernel; ++kx) {
                            const int y = oy * p.stride - pad.top + ky, x = ox * p.stride - pad.left + kx;
                            if (y < 0 || y >= p.in_h || x < 0 || x >= p.in_w) continue;  // -inf padding
                            best = std::max(best, in[((size_t(n) * p.in_h + y) * p.in_w + x) * c + ch]);
                        }
                    out[((size_t(n) * oh + oy) * ow + ox) * c + ch] = best;
                }
}

inline void avgpool2d_reference(const Pool2dParams& p, const float* in, float* out) {
    const int oh = p.out_h(), ow = p.out_w(), c = p.channels;
    const Padding2d pad = p.padding();
    for (int n = 0; n < p.batch; ++n)
        for (int oy = 0; oy < oh; ++oy)
            for (int ox = 0; ox < ow; ++ox)
                for (int ch = 0; ch < c; ++ch) {
                    double sum = 0.0;
                    int counted = 0;  // taps inside the padded image (count_include_pad)
                    for (int ky = 0; ky < p.kernel; ++ky)
                        for (int kx = 0; kx < p.kernel; ++kx) {
                            const int y = oy * p.stride - pad.top + ky, x = ox * p.stride - pad.left + kx;
                            if (y >= p.in_h + pad.bottom || x >= p.in_w + pad.right) continue;  // beyond padding
                            ++counted;
                            if (y < 0 || y >= p.in_h || x < 0 || x >= p.in_w) continue;  // a zero pad
                            sum += in[((size_t(n) * p.in_h + y) * p.in_w + x) * c + ch];
                        }
                    out[((size_t(n) * oh + oy) * ow + ox) * c + ch] = float(sum / counted);
                }
}

inline void global_avgpool_reference(int batch, int h, int w, int c, const float* in, float* out) {
    for (int n = 0; n < batch; ++n)
        for (int ch = 0; ch < c; ++ch) {
            double sum = 0.0;
            for (int i = 0; i < h * w; ++i) sum += in[(size_t(n) * h * w + i) * c + ch];
            out[size_t(n) * c + ch] = float(sum / (h * w));
        }
}

}  // namespace softbio::cpu
