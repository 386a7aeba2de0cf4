// softbio/core/preprocess_spec.hpp — a model's preprocessing chain as typed data
// (docs/FORMAT.md 2.4): which steps turn a decoded 8-bit RGB image into the network's
// input tensor. Parsed once from the metadata (io/preprocess_json.hpp) and run by
// image/preprocess.hpp; this header holds no pixels and no JSON.
//
// Two kinds of chain:
//   torchvision's, on 8-bit pixels:  [center_crop | resize (Pillow bilinear)]* to_tensor [normalize]
//   face-api's, on float32 pixels:   to_float [pad_to_square | resize (tf_bilinear)]* [normalize]
#pragma once

#include <array>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"

namespace softbio {

/// Largest height or width a center_crop/resize step may produce (per side). Not the
/// decoded-image limit (image/decode.hpp's kMaxImageSide): this bounds the tensor a
/// model file asks for, before anything is allocated for it. A shorter-side resize,
/// whose output size depends on the image, is held to the same limit per image.
inline constexpr int kMaxPreprocessSide = 32768;

/// One step of the chain.
struct PreprocessStep {
    enum class Op { CenterCrop, Resize, ToTensor, Normalize, ToFloat, PadToSquare } op = Op::ToTensor;
    /// Resize's resampling: Pillow's antialiased bilinear on 8-bit pixels (torchvision),
    /// or tf.image.resizeBilinear in float32 (face-api; docs/FACE_MODELS.md §2).
    enum class Filter { Bilinear, TfBilinear };
    /// Where PadToSquare puts the image: TopLeft (all padding right/bottom, the detector)
    /// or Center (right/bottom get Math.round(d / 2) of the difference d, left/top the rest).
    enum class Anchor { TopLeft, Center };
    int height = 0, width = 0;    // CenterCrop, Resize to a fixed size: output size
    std::array<float, 3> mean{};  // Normalize: (x - mean) / std per channel R, G, B
    std::array<float, 3> std{};
    int shorter_side = 0;         // Resize(N) with one number (torchvision): the shorter side becomes N,
    int max_size = 0;             //   the longer one keeps the aspect ratio, capped at max_size (0: none)
    Filter filter = Filter::Bilinear;  // Resize
    Anchor anchor = Anchor::TopLeft;   // PadToSquare

    static PreprocessStep center_crop(int h, int w) { return {Op::CenterCrop, h, w, {}, {}}; }
    /// face-api's steps.
    static PreprocessStep to_float() { return {Op::ToFloat, 0, 0, {}, {}}; }
    static PreprocessStep pad_to_square(Anchor a) {
        PreprocessStep s{Op::PadToSquare, 0, 0, {}, {}};
        s.anchor = a;
        return s;
    }
    static PreprocessStep resize_tf(int h, int w) {
        PreprocessStep s{Op::Resize, h, w, {}, {}};
        s.filter = Filter::TfBilinear;
        return s;
    }
    static PreprocessStep resize(int h, int w) { return {Op::Resize, h, w, {}, {}}; }
    /// torchvision's Resize(side) / Resize(side, max_size=m) (docs/FORMAT.md 2.4).
    static PreprocessStep resize_shorter(int side, int max = 0) { return {Op::Resize, 0, 0, {}, {}, side, max}; }
    static PreprocessStep to_tensor() { return {Op::ToTensor, 0, 0, {}, {}}; }
    static PreprocessStep normalize(std::array<float, 3> m, std::array<float, 3> s) { return {Op::Normalize, 0, 0, m, s}; }

    /// A step whose output size does not depend on its input: center_crop, resize [h, w].
    bool fixed_size() const { return op == Op::CenterCrop || (op == Op::Resize && shorter_side == 0); }

    /// Output size of a resize with shorter_side for an in_h x in_w input, computed as
    /// torchvision 0.14's _compute_resized_output_size: with short/long the input's
    /// shorter/longer side (short = width when width <= height),
    ///     new_short = N,  new_long = int(N * long / short)          (truncated)
    ///     if max_size and new_long > max_size:
    ///         new_short = int(max_size * N / new_long),  new_long = max_size
    /// The quotients are float64 divisions of exact integers, as in Python, then truncated.
    /// False (out_h/out_w untouched) when a side would be 0 (Pillow refuses it) or exceed
    /// kMaxPreprocessSide (torchvision would go on; softbio refuses such an image).
    bool try_shorter_side_output(int in_h, int in_w, int& out_h, int& out_w) const {
        long long oh = 0, ow = 0;
        torchvision_size(in_h, in_w, oh, ow);
        if (oh < 1 || ow < 1 || oh > kMaxPreprocessSide || ow > kMaxPreprocessSide) return false;
        out_h = int(oh);
        out_w = int(ow);
        return true;
    }
    /// The same; throws ImageError naming the step and the image where it returns false.
    void shorter_side_output(int in_h, int in_w, int& out_h, int& out_w) const {
        if (try_shorter_side_output(in_h, in_w, out_h, out_w)) return;
        long long oh = 0, ow = 0;
        torchvision_size(in_h, in_w, oh, ow);
        throw ImageError("preprocess: resize shorter_side " + std::to_string(shorter_side) +
                         (max_size > 0 ? " max_size " + std::to_string(max_size) : std::string()) + " turns a " +
                         std::to_string(in_w) + "x" + std::to_string(in_h) + " image into " + std::to_string(ow) + "x" +
                         std::to_string(oh) + " (width x height); each side must be 1.." +
                         std::to_string(kMaxPreprocessSide));
    }

private:
    /// The formula above, without the limits (0 x 0 for an empty input).
    void torchvision_size(int in_h, int in_w, long long& oh, long long& ow) const {
        oh = ow = 0;
        if (in_h < 1 || in_w < 1) return;
        const bool portrait = in_w <= in_h;  // the width is the shorter side (ties: too)
        const long long shorter = portrait ? in_w : in_h, longer = portrait ? in_h : in_w;
        long long new_short = shorter_side;
        long long new_long = (long long)(double(new_short * longer) / double(shorter));
        if (max_size > 0 && new_long > max_size) {
            new_short = (long long)(double((long long)max_size * new_short) / double(new_long));
            new_long = max_size;
        }
        oh = portrait ? new_long : new_short;
        ow = portrait ? new_short : new_long;
    }
};

inline const char* preprocess_op_name(PreprocessStep::Op op) {
    switch (op) {
        case PreprocessStep::Op::CenterCrop: return "center_crop";
        case PreprocessStep::Op::Resize: return "resize";
        case PreprocessStep::Op::ToTensor: return "to_tensor";
        case PreprocessStep::Op::ToFloat: return "to_float";
        case PreprocessStep::Op::PadToSquare: return "pad_to_square";
        default: return "normalize";
    }
}

/// The rows (top or left) and columns given to the start of an axis when an image of
/// `h` x `w` is padded to a square (PadToSquare). For Center the side after the image
/// gets Math.round(d / 2) = (d + 1) / 2 of the difference d (halves up), the side before
/// it the rest; for TopLeft everything goes after.
inline void pad_to_square_offsets(int h, int w, PreprocessStep::Anchor anchor, int& top, int& left) {
    top = left = 0;
    if (anchor == PreprocessStep::Anchor::TopLeft || h == w) return;
    const int d = h > w ? h - w : w - h;
    const int before = d - (d + 1) / 2;
    (h > w ? left : top) = before;
}

/// A validated chain: [center_crop | resize]* to_tensor [normalize], or face-api's
/// to_float [pad_to_square | resize tf_bilinear]* [normalize].
struct PreprocessSpec {
    std::vector<PreprocessStep> steps;

    /// A face-api chain (starts with to_float: float32 pixels from then on).
    bool float_chain() const { return !steps.empty() && steps.front().op == PreprocessStep::Op::ToFloat; }

    /// Height of the tensor the chain produces whatever the image: walking the chain,
    /// a center_crop or resize [h, w] fixes the size, and a shorter-side resize of a
    /// fixed size gives a fixed size again (torchvision's Resize(256) -> CenterCrop(224)
    /// gives 224x224; CenterCrop(100, 80) -> Resize(50) gives 62x50). 0 when the output
    /// size depends on the input: no center_crop/resize at all (the output has the
    /// input's size), or a shorter-side resize before any fixed-size step (or one that
    /// cannot produce a legal size, see PreprocessStep::try_shorter_side_output).
    int output_height() const {
        int h = 0, w = 0;
        return fixed_output(h, w) ? h : 0;
    }
    int output_width() const {
        int h = 0, w = 0;
        return fixed_output(h, w) ? w : 0;
    }
    /// Output size for an input of in_h x in_w, computed through the chain (every step
    /// takes the size the previous one produced). Throws ImageError where a
    /// shorter-side resize cannot handle the image (PreprocessStep::shorter_side_output).
    void output_size(int in_h, int in_w, int& out_h, int& out_w) const {
        int h = in_h, w = in_w;
        for (const auto& s : steps) {
            if (s.op == PreprocessStep::Op::Resize && s.shorter_side > 0) {
                s.shorter_side_output(h, w, h, w);
            } else if (s.op == PreprocessStep::Op::PadToSquare) {
                h = w = h > w ? h : w;
            } else if (s.fixed_size()) {
                h = s.height;
                w = s.width;
            }
        }
        out_h = h;
        out_w = w;
    }

private:
    bool fixed_output(int& h, int& w) const {
        bool known = false;
        for (const auto& s : steps) {
            if (s.fixed_size()) {
                h = s.height, w = s.width, known = true;
            } else if (s.op == PreprocessStep::Op::PadToSquare && known) {
                h = w = h > w ? h : w;
            } else if (s.op == PreprocessStep::Op::Resize && known) {
                known = s.try_shorter_side_output(h, w, h, w);
                if (!known) return false;  // every image fails at this step
            }
        }
        return known;
    }
};

}  // namespace softbio
