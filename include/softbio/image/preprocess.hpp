// softbio/image/preprocess.hpp — the model's preprocessing chain, bit-exact with
// torchvision 0.14 transforms applied to a PIL 9.4 RGB image.
//
//     const PreprocessSpec& spec = model->config().preprocess;   // parsed from the metadata
//     PreprocessWorkspace ws;                                          // one per thread
//     preprocess(image, spec, ws, input_hwc);   // writes oh * ow * 3 floats, no allocation
//
// The chain (docs/FORMAT.md 2.4) is a list of steps applied to 8-bit RGB pixels. Every
// step below says what torchvision/PIL does and how it is reproduced here.
//
// center_crop [h, w]  — transforms.CenterCrop((h, w))
//   Per axis, with input length L and crop length C:
//     C <= L: the crop starts at  o = int(round((L - C) / 2))  with Python's round, i.e.
//             round half to EVEN: (L - C) = 1 -> 0, 3 -> 2 (1.5 -> 2), 5 -> 2 (2.5 -> 2), 7 -> 4.
//     C >  L: torchvision first pads with zeros, (C - L) // 2 before and (C - L + 1) // 2
//             after, so the padded length is C and the crop starts at 0. Output pixel j
//             is input pixel j - (C - L) // 2, or black outside the input.
//   The two axes are independent (one can be padded while the other is cropped).
//   Without padding the crop is only a view (no copy).
//
// resize [h, w]  — transforms.Resize((h, w)) = PIL Image.resize((w, h), BILINEAR)
// resize shorter_side N [max_size M]  — transforms.Resize(N[, max_size=M]): the same
//   resampling to a size computed from the current image, as torchvision 0.14's
//   _compute_resized_output_size (PreprocessStep::shorter_side_output): the shorter side
//   becomes N, the longer int(N * long / short) (truncated), both scaled down to fit
//   max_size when the longer exceeds it. E.g. 333x257 (w x h), N = 256 -> 331x256.
//   A side of 0 (Pillow refuses) or above kMaxPreprocessSide throws ImageError.
//   torchvision returns the image unchanged when it already has size (h, w). Otherwise
//   PIL resamples each axis separately with a convolution ("antialiased" bilinear):
//     scale   s = L_in / L_out               (L_in input length, L_out output length)
//     fs      = max(s, 1)                    (the filter is stretched only when shrinking)
//     support = 1 * fs                       (the triangle filter has radius 1)
//     for output index i:  centre c = (i + 0.5) * s           (in input pixel units)
//        taps  j = lo .. hi-1,  lo = max(0, int(c - support + 0.5)),
//                               hi = min(L_in, int(c + support + 0.5))
//        raw weight  w_j = tri((j - c + 0.5) / fs),   tri(t) = max(0, 1 - |t|)
//        (j + 0.5 is the centre of input pixel j), then normalised: w_j /= sum_j w_j,
//        so weights cut off by the image border are redistributed to the taps inside.
//   All of this is in double precision. For 8-bit images PIL then turns the weights into
//   fixed point with P = 22 fraction bits: W_j = int(0.5 + w_j * 2^22) (truncation of
//   a positive number: round half up), and every output sample is
//       out = clamp((2^21 + sum_j W_j * in_j) >> 22, 0, 255)     (32-bit integers)
//   i.e. rounded to nearest. PIL does the horizontal pass first (only over the input rows
//   the vertical pass will read) into an 8-bit intermediate image, then the vertical pass
//   on that; a pass whose length does not change is skipped entirely. Because the sums
//   are integers, the order of summation does not matter and the result is bit-exact.
//   The weights depend only on (L_in, L_out); they are cached in the workspace.
//
// to_tensor  — transforms.ToTensor(): x = float32(v) / 255 (a true float32 division,
//   as torch does; not a multiplication by 1/255, which rounds differently).
//
// normalize mean[3] std[3]  — transforms.Normalize: x = (x - mean_c) / std_c in float32,
//   mean and std first rounded to float32 (torch.as_tensor(..., dtype=float32)).
//   Two float32 operations, a subtraction then a division, exactly like torch.
//
// The chain must end with to_tensor, optionally followed by normalize; center_crop and
// resize come before to_tensor. The output is written HWC (H x W x 3 floats, NHWC for a
// batch slot): the engine's layout. torchvision's tensor is CHW; the values are the same.
//
// face-api's chain (docs/FACE_MODELS.md §2-§4; a chain that starts with to_float), bit-exact
// with tfjs 4.22's wasm backend (the inputs of tests/face/data):
//
// to_float  — the 8-bit pixels as float32 (0..255, unchanged).
// pad_to_square anchor  — zeros around the image up to a square of side max(H, W):
//   top_left: all padding right/bottom (the detector); center: of the difference d, the
//   right/bottom side gets Math.round(d / 2) = (d + 1) / 2 (halves up), the left/top side
//   the rest (the 112-px nets). Nothing is copied: the padding is read as zeros.
// resize [h, w] filter tf_bilinear  — tf.image.resizeBilinear with alignCorners = false,
//   halfPixelCenters = false, no antialiasing, skipped when the size already matches. Per
//   axis, every quantity in float32 as tfjs-backend-wasm computes it:
//     ratio = f32(in) / f32(out);   src = f32(dst) * ratio
//     lo = max(floor(src), 0);   hi = min(ceil(src), in - 1);   f = src - f32(lo)
//   and per output pixel, with the four neighbours tl, tr (row lo_y) and bl, br (row hi_y):
//     top = tl + (tr - tl) * fx;   bottom = bl + (br - bl) * fx;   out = top + (bottom - top) * fy
//   each operation rounded to float32 on its own: the products pass through rounded_f32
//   (core/fp32.hpp), so a * b + c is never contracted into a fused multiply-add.
// normalize mean std  — (x - mean_c) / std_c in float32, a subtraction then a division (face-api
//   divides by 255; it does not multiply by 1/255).
//
// Memory: PreprocessWorkspace keeps two 8-bit ping-pong images, the horizontal-pass
// image, a row of 32-bit accumulators and the resampling weights, and for face-api's
// chain two float images and the per-axis tables. Vectors only grow, so after the first
// image of the largest size, preprocess() allocates nothing.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/fp32.hpp"
#include "softbio/core/preprocess_spec.hpp"
#include "softbio/image/decode.hpp"

namespace softbio {

/// torchvision's CenterCrop start along one axis: the input index of output index 0.
/// Negative when the input is shorter than the crop (zero padding before the input).
inline int center_crop_offset(int in_size, int crop_size) {
    if (crop_size > in_size) return -((crop_size - in_size) / 2);
    const int d = in_size - crop_size;  // round(d / 2), ties to even
    const int half = d / 2;
    if (d % 2 == 0) return half;
    return (half % 2 == 0) ? half : half + 1;
}

/// PIL's bilinear resampling weights for one axis (see the header comment), fixed point.
struct ResampleAxis {
    static constexpr int kPrecisionBits = 22;  // 32 - 8 (sample bits) - 2 (headroom)
    int in_size = -1, out_size = -1;
    int taps = 0;                   // weights per output sample (stride of `weights`)
    std::vector<int> first, count;  // per output sample: first input index, number of taps
    std::vector<int32_t> weights;   // out_size * taps
    std::vector<double> scratch;

    void prepare(int in, int out) {
        if (in == in_size && out == out_size) return;
        const double scale = double(in) / double(out);
        const double fs = scale < 1.0 ? 1.0 : scale;
        const double support = 1.0 * fs;  // bilinear: radius 1
        const double inv_fs = 1.0 / fs;
        taps = int(std::ceil(support)) * 2 + 1;
        first.resize(size_t(out));
        count.resize(size_t(out));
        weights.assign(size_t(out) * size_t(taps), 0);
        scratch.resize(size_t(taps));
        for (int i = 0; i < out; ++i) {
            const double centre = (i + 0.5) * scale;
            int lo = int(centre - support + 0.5);  // C truncation, as PIL
            if (lo < 0) lo = 0;
            int hi = int(centre + support + 0.5);
            if (hi > in) hi = in;
            const int n = hi - lo;
            double sum = 0.0;
            for (int t = 0; t < n; ++t) {
                double x = ((lo + t) - centre + 0.5) * inv_fs;
                if (x < 0.0) x = -x;
                const double w = x < 1.0 ? 1.0 - x : 0.0;
                scratch[size_t(t)] = w;
                sum += w;
            }
            int32_t* k = weights.data() + size_t(i) * size_t(taps);
            for (int t = 0; t < n; ++t) {
                double w = scratch[size_t(t)];
                if (sum != 0.0) w /= sum;
                const double fixed = w * double(1 << kPrecisionBits);
                k[t] = int32_t(w < 0.0 ? -0.5 + fixed : 0.5 + fixed);
            }
            first[size_t(i)] = lo;
            count[size_t(i)] = n;
        }
        in_size = in;
        out_size = out;
    }
};

/// Reusable memory for preprocess(). Not shared between threads.
class PreprocessWorkspace {
public:
    std::vector<uint8_t> buffer[2];   // ping-pong 8-bit images
    std::vector<uint8_t> horizontal;  // result of the horizontal pass
    std::vector<int32_t> accum;       // one row of vertical-pass sums
    ResampleAxis axis_x, axis_y;
    std::vector<float> fbuffer[2];    // face-api's chain: float images (resize outputs)
    std::vector<int> tf_lo[2], tf_hi[2];  // tf_bilinear per axis (0: y, 1: x): neighbours
    std::vector<float> tf_frac[2];        //   and fractions

    /// Bytes currently held (for diagnostics).
    size_t bytes() const {
        return buffer[0].capacity() + buffer[1].capacity() + horizontal.capacity() + accum.capacity() * 4 +
               (axis_x.weights.capacity() + axis_y.weights.capacity()) * 4 +
               (fbuffer[0].capacity() + fbuffer[1].capacity()) * 4 +
               (tf_lo[0].capacity() + tf_lo[1].capacity() + tf_hi[0].capacity() + tf_hi[1].capacity() +
                tf_frac[0].capacity() + tf_frac[1].capacity()) * 4;
    }
};

namespace detail::pre {

/// A read-only 8-bit RGB image view: `stride` bytes between rows.
struct View {
    const uint8_t* data;
    int h, w;
    size_t stride;
};

inline uint8_t clip_fixed(int32_t acc) {
    const int32_t v = acc >> ResampleAxis::kPrecisionBits;
    return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

/// Horizontal pass over rows [row0, row1) of `src` into `dst` (row1 - row0 rows, ow wide).
inline void resample_rows(const View& src, int row0, int row1, const ResampleAxis& ax, uint8_t* dst) {
    const int ow = ax.out_size;
    const int32_t half = 1 << (ResampleAxis::kPrecisionBits - 1);
    for (int y = row0; y < row1; ++y) {
        const uint8_t* in = src.data + size_t(y) * src.stride;
        uint8_t* out = dst + size_t(y - row0) * size_t(ow) * 3;
        for (int x = 0; x < ow; ++x) {
            const int32_t* k = ax.weights.data() + size_t(x) * size_t(ax.taps);
            const uint8_t* p = in + size_t(ax.first[size_t(x)]) * 3;
            int32_t r = half, g = half, b = half;
            for (int t = 0, n = ax.count[size_t(x)]; t < n; ++t, p += 3) {
                r += int32_t(p[0]) * k[t];
                g += int32_t(p[1]) * k[t];
                b += int32_t(p[2]) * k[t];
            }
            out[3 * x] = clip_fixed(r);
            out[3 * x + 1] = clip_fixed(g);
            out[3 * x + 2] = clip_fixed(b);
        }
    }
}

/// Vertical pass: output row i = weighted sum of rows first[i] - row0 ... of `src`.
inline void resample_columns(const View& src, int row0, const ResampleAxis& ax, std::vector<int32_t>& acc, uint8_t* dst) {
    const size_t rowlen = size_t(src.w) * 3;
    const int32_t half = 1 << (ResampleAxis::kPrecisionBits - 1);
    acc.resize(rowlen);
    for (int i = 0; i < ax.out_size; ++i) {
        std::fill(acc.begin(), acc.end(), half);
        const int32_t* k = ax.weights.data() + size_t(i) * size_t(ax.taps);
        int32_t* a = acc.data();
        for (int t = 0, n = ax.count[size_t(i)]; t < n; ++t) {
            const uint8_t* in = src.data + size_t(ax.first[size_t(i)] + t - row0) * src.stride;
            const int32_t kt = k[t];
            for (size_t j = 0; j < rowlen; ++j) a[j] += int32_t(in[j]) * kt;
        }
        uint8_t* out = dst + size_t(i) * rowlen;
        for (size_t j = 0; j < rowlen; ++j) out[j] = clip_fixed(a[j]);
    }
}

/// PIL Image.resize((ow, oh), BILINEAR) of `src` into `dst` (oh * ow * 3 bytes).
inline void resize_bilinear(const View& src, int oh, int ow, PreprocessWorkspace& ws, uint8_t* dst) {
    const bool need_x = ow != src.w, need_y = oh != src.h;
    if (!need_x && !need_y) {
        for (int y = 0; y < oh; ++y) std::memcpy(dst + size_t(y) * size_t(ow) * 3, src.data + size_t(y) * src.stride, size_t(ow) * 3);
        return;
    }
    if (need_y) ws.axis_y.prepare(src.h, oh);
    if (need_x) ws.axis_x.prepare(src.w, ow);
    if (need_x && !need_y) {
        resample_rows(src, 0, src.h, ws.axis_x, dst);
        return;
    }
    if (!need_x) {
        resample_columns(src, 0, ws.axis_y, ws.accum, dst);
        return;
    }
    // Both: horizontal pass only over the rows the vertical pass reads.
    const ResampleAxis& ay = ws.axis_y;
    const int row0 = ay.first[0];
    const int row1 = ay.first[size_t(oh - 1)] + ay.count[size_t(oh - 1)];
    ws.horizontal.resize(size_t(row1 - row0) * size_t(ow) * 3);
    resample_rows(src, row0, row1, ws.axis_x, ws.horizontal.data());
    const View mid{ws.horizontal.data(), row1 - row0, ow, size_t(ow) * 3};
    resample_columns(mid, row0, ay, ws.accum, dst);
}

/// A float32 image as face-api's chain sees it: the content (8-bit or float pixels,
/// `stride` elements per row) at (top, left) of an h x w canvas of zeros.
struct FloatCanvas {
    const uint8_t* u8 = nullptr;
    const float* f32 = nullptr;
    size_t stride = 0;
    int content_h = 0, content_w = 0;
    int h = 0, w = 0, top = 0, left = 0;
    float at(int y, int x, int c) const {
        const int yy = y - top, xx = x - left;
        if (yy < 0 || yy >= content_h || xx < 0 || xx >= content_w) return 0.0f;
        const size_t i = size_t(yy) * stride + size_t(xx) * 3 + size_t(c);
        return u8 ? float(u8[i]) : f32[i];
    }
};

/// tf_bilinear's table for one axis (see the header comment).
inline void tf_bilinear_axis(int in, int out, std::vector<int>& lo, std::vector<int>& hi, std::vector<float>& frac) {
    lo.resize(size_t(out));
    hi.resize(size_t(out));
    frac.resize(size_t(out));
    const float ratio = float(in) / float(out);
    for (int d = 0; d < out; ++d) {
        const float src = float(d) * ratio;
        const float fl = std::floor(src);
        int l = int(fl), h = int(std::ceil(src));
        if (l < 0) l = 0;
        if (h > in - 1) h = in - 1;
        lo[size_t(d)] = l;
        hi[size_t(d)] = h;
        frac[size_t(d)] = src - float(l);
    }
}

/// tf.image.resizeBilinear of `src` to oh x ow x 3 floats at `dst`. Each product is
/// rounded on its own (core/fp32.hpp: never fused with the following addition into an
/// FMA), as in tfjs.
inline void resize_tf_bilinear(const FloatCanvas& src, int oh, int ow, PreprocessWorkspace& ws, float* dst) {    tf_bilinear_axis(src.h, oh, ws.tf_lo[0], ws.tf_hi[0], ws.tf_frac[0]);
    tf_bilinear_axis(src.w, ow, ws.tf_lo[1], ws.tf_hi[1], ws.tf_frac[1]);
    for (int y = 0; y < oh; ++y) {
        const int r0 = ws.tf_lo[0][size_t(y)], r1 = ws.tf_hi[0][size_t(y)];
        const float fy = ws.tf_frac[0][size_t(y)];
        for (int x = 0; x < ow; ++x) {
            const int c0 = ws.tf_lo[1][size_t(x)], c1 = ws.tf_hi[1][size_t(x)];
            const float fx = ws.tf_frac[1][size_t(x)];
            float* o = dst + (size_t(y) * size_t(ow) + size_t(x)) * 3;
            for (int c = 0; c < 3; ++c) {
                const float tl = src.at(r0, c0, c), tr = src.at(r0, c1, c);
                const float bl = src.at(r1, c0, c), br = src.at(r1, c1, c);
                const float top = tl + rounded_f32((tr - tl) * fx), bottom = bl + rounded_f32((br - bl) * fx);
                o[c] = top + rounded_f32((bottom - top) * fy);
            }
        }
    }
}

/// face-api's chain: to_float [pad_to_square | resize tf_bilinear]* [normalize].
inline void preprocess_float_chain(const uint8_t* pixels, int height, int width, size_t stride,
                                   const PreprocessSpec& spec, PreprocessWorkspace& ws, float* out_hwc) {
    using Op = PreprocessStep::Op;
    FloatCanvas cur;
    cur.u8 = pixels, cur.stride = stride, cur.content_h = cur.h = height, cur.content_w = cur.w = width;
    int buf = -1;
    const PreprocessStep* norm = nullptr;
    for (size_t i = 1; i < spec.steps.size(); ++i) {
        const PreprocessStep& s = spec.steps[i];
        if (s.op == Op::PadToSquare) {
            int top = 0, left = 0;
            pad_to_square_offsets(cur.h, cur.w, s.anchor, top, left);
            cur.top += top, cur.left += left;
            cur.h = cur.w = std::max(cur.h, cur.w);
        } else if (s.op == Op::Resize) {
            if (cur.h == s.height && cur.w == s.width) continue;  // tfjs resizes only when the size differs
            buf = buf == 0 ? 1 : 0;
            ws.fbuffer[buf].resize(size_t(s.height) * size_t(s.width) * 3);
            resize_tf_bilinear(cur, s.height, s.width, ws, ws.fbuffer[buf].data());
            FloatCanvas next;
            next.f32 = ws.fbuffer[buf].data(), next.stride = size_t(s.width) * 3;
            next.content_h = next.h = s.height, next.content_w = next.w = s.width;
            cur = next;
        } else if (s.op == Op::Normalize) {
            norm = &s;
        } else {
            throw ShapeError(std::string("preprocess: step ") + preprocess_op_name(s.op) +
                             " cannot follow to_float (a chain from parse_preprocess never has it there)");
        }
    }
    for (int y = 0; y < cur.h; ++y) {
        float* out = out_hwc + size_t(y) * size_t(cur.w) * 3;
        for (int x = 0; x < cur.w; ++x)
            for (int c = 0; c < 3; ++c) {
                const float v = cur.at(y, x, c);
                if (!norm) {
                    out[size_t(x) * 3 + size_t(c)] = v;
                } else {
                    const float d = v - norm->mean[size_t(c)];          // two float32 roundings:
                    out[size_t(x) * 3 + size_t(c)] = d / norm->std[size_t(c)];  // a subtraction, a division
                }
            }
    }
}

}  // namespace detail::pre

/// Run the chain on `height` x `width` RGB pixels (`pixels`: HWC, `stride` bytes per row)
/// and write the output tensor, output_size(height, width) x 3 floats in HWC order, to
/// `out_hwc`. Throws ShapeError for an empty image, ImageError for an image a
/// shorter-side resize cannot handle (before anything is written).
inline void preprocess_pixels(const uint8_t* pixels, int height, int width, size_t stride, const PreprocessSpec& spec,
                              PreprocessWorkspace& ws, float* out_hwc) {
    using Op = PreprocessStep::Op;
    using detail::pre::View;
    if (height <= 0 || width <= 0 || pixels == nullptr)
        throw ShapeError("preprocess: empty image (" + std::to_string(width) + "x" + std::to_string(height) + ")");
    if (spec.float_chain()) {
        detail::pre::preprocess_float_chain(pixels, height, width, stride, spec, ws, out_hwc);
        return;
    }
    View cur{pixels, height, width, stride};
    int in_buf = -1;  // which ws.buffer `cur` points into; -1: the caller's pixels
    auto next_buffer = [&](size_t bytes) -> uint8_t* {
        const int b = in_buf == 0 ? 1 : 0;
        ws.buffer[b].resize(bytes);
        in_buf = b;
        return ws.buffer[b].data();
    };
    for (size_t i = 0; i < spec.steps.size(); ++i) {
        const PreprocessStep& s = spec.steps[i];
        if (s.op == Op::CenterCrop) {
            const int oy = center_crop_offset(cur.h, s.height), ox = center_crop_offset(cur.w, s.width);
            if (s.height <= cur.h && s.width <= cur.w) {  // no padding: a view
                cur.data += size_t(oy) * cur.stride + size_t(ox) * 3;
                cur.h = s.height, cur.w = s.width;
                continue;
            }
            const size_t rowlen = size_t(s.width) * 3;
            const View src = cur;
            uint8_t* dst = next_buffer(size_t(s.height) * rowlen);
            std::memset(dst, 0, size_t(s.height) * rowlen);
            // Output (y, x) = input (y + oy, x + ox) where inside the input.
            const int y0 = std::max(0, -oy), y1 = std::min(s.height, src.h - oy);
            const int x0 = std::max(0, -ox), x1 = std::min(s.width, src.w - ox);
            for (int y = y0; y < y1; ++y)
                if (x1 > x0)
                    std::memcpy(dst + size_t(y) * rowlen + size_t(x0) * 3, src.data + size_t(y + oy) * src.stride + size_t(x0 + ox) * 3,
                                size_t(x1 - x0) * 3);
            cur = View{dst, s.height, s.width, rowlen};
        } else if (s.op == Op::Resize) {
            int oh = s.height, ow = s.width;
            if (s.shorter_side > 0) s.shorter_side_output(cur.h, cur.w, oh, ow);  // from the current size
            if (cur.h == oh && cur.w == ow) continue;  // torchvision returns the image as is
            const View src = cur;
            uint8_t* dst = next_buffer(size_t(oh) * size_t(ow) * 3);
            detail::pre::resize_bilinear(src, oh, ow, ws, dst);
            cur = View{dst, oh, ow, size_t(ow) * 3};
        } else if (s.op == Op::ToTensor) {
            const bool norm = i + 1 < spec.steps.size() && spec.steps[i + 1].op == Op::Normalize;
            const PreprocessStep* ns = norm ? &spec.steps[i + 1] : nullptr;
            for (int y = 0; y < cur.h; ++y) {
                const uint8_t* in = cur.data + size_t(y) * cur.stride;
                float* out = out_hwc + size_t(y) * size_t(cur.w) * 3;
                const size_t rowlen = size_t(cur.w) * 3;
                if (!norm) {
                    for (size_t j = 0; j < rowlen; ++j) out[j] = float(in[j]) / 255.0f;
                } else {
                    for (size_t j = 0; j < rowlen; j += 3)
                        for (size_t c = 0; c < 3; ++c) {
                            const float x = float(in[j + c]) / 255.0f;
                            const float d = x - ns->mean[c];  // two float32 roundings,
                            out[j + c] = d / ns->std[c];       // as torch's sub_ then div_
                        }
                }
            }
            return;
        }
    }
    throw ShapeError("preprocess: the chain has no to_tensor step (a chain from parse_preprocess always has one)");
}

/// Run the chain on `image`; writes spec.output_size(image) x 3 floats (HWC) to `out_hwc`.
inline void preprocess(const RgbImage& image, const PreprocessSpec& spec, PreprocessWorkspace& ws, float* out_hwc) {
    if (image.pixels.size() != size_t(image.width) * size_t(image.height) * 3 || image.width <= 0 || image.height <= 0)
        throw ShapeError("preprocess: image is " + std::to_string(image.width) + "x" + std::to_string(image.height) + " but holds " +
                         std::to_string(image.pixels.size()) + " bytes (expected width * height * 3)");
    preprocess_pixels(image.pixels.data(), image.height, image.width, size_t(image.width) * 3, spec, ws, out_hwc);
}

}  // namespace softbio
