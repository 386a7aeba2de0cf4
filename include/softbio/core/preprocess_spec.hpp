// softbio/core/preprocess_spec.hpp — a model's preprocessing chain as typed data
// (docs/FORMAT.md 2.4): which steps turn a decoded 8-bit RGB image into the network's
// input tensor. Parsed once from the metadata (io/preprocess_json.hpp) and run by
// image/preprocess.hpp; this header holds no pixels and no JSON.
#pragma once

#include <array>
#include <vector>

namespace softbio {

/// Largest height or width a center_crop/resize step may produce (per side). Not the
/// decoded-image limit (image/decode.hpp's kMaxImageSide): this bounds the tensor a
/// model file asks for, before anything is allocated for it.
inline constexpr int kMaxPreprocessSide = 32768;

/// One step of the chain.
struct PreprocessStep {
    enum class Op { CenterCrop, Resize, ToTensor, Normalize } op = Op::ToTensor;
    int height = 0, width = 0;    // CenterCrop, Resize: output size
    std::array<float, 3> mean{};  // Normalize: (x - mean) / std per channel R, G, B
    std::array<float, 3> std{};

    static PreprocessStep center_crop(int h, int w) { return {Op::CenterCrop, h, w, {}, {}}; }
    static PreprocessStep resize(int h, int w) { return {Op::Resize, h, w, {}, {}}; }
    static PreprocessStep to_tensor() { return {Op::ToTensor, 0, 0, {}, {}}; }
    static PreprocessStep normalize(std::array<float, 3> m, std::array<float, 3> s) { return {Op::Normalize, 0, 0, m, s}; }
};

inline const char* preprocess_op_name(PreprocessStep::Op op) {
    switch (op) {
        case PreprocessStep::Op::CenterCrop: return "center_crop";
        case PreprocessStep::Op::Resize: return "resize";
        case PreprocessStep::Op::ToTensor: return "to_tensor";
        default: return "normalize";
    }
}

/// A validated chain: [center_crop | resize]* to_tensor [normalize].
struct PreprocessSpec {
    std::vector<PreprocessStep> steps;

    /// Height of the tensor the chain produces: the size of the last center_crop or
    /// resize. 0 when the chain has neither (then the output has the input's size).
    int output_height() const {
        int h = 0;
        for (const auto& s : steps)
            if (s.op == PreprocessStep::Op::CenterCrop || s.op == PreprocessStep::Op::Resize) h = s.height;
        return h;
    }
    int output_width() const {
        int w = 0;
        for (const auto& s : steps)
            if (s.op == PreprocessStep::Op::CenterCrop || s.op == PreprocessStep::Op::Resize) w = s.width;
        return w;
    }
    /// Output size for an input of in_h x in_w (differs from output_height/width() only
    /// for a chain without center_crop/resize).
    void output_size(int in_h, int in_w, int& out_h, int& out_w) const {
        out_h = output_height() ? output_height() : in_h;
        out_w = output_width() ? output_width() : in_w;
    }
};

}  // namespace softbio
