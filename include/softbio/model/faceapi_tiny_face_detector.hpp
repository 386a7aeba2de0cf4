// softbio/model/faceapi_tiny_face_detector.hpp — face-api's tiny face detector
// (docs/FACE_MODELS.md §3), a YOLOv2-style net of depthwise-separable convolutions.
//
//   input S x S x 3 (S a multiple of 32; face-api's default 416), normalised: (p - mean) / 255
//   conv0   3x3 conv 3 -> 16, "valid", + bias, leaky          S - 2
//   pool0   2x2 / 2 max, "same"                               (S - 2) / 2
//   conv1..4  zero pad 1, depthwise 3x3, pointwise 1x1, + bias, leaky;  2x2 / 2 max "same"
//   conv5   the same, then a 2x2 / 1 max "same"               (S / 32)
//   conv8   1x1 conv 512 -> 25, + bias                         grid g x g x 25
// leaky(y) = y < 0 ? 0.1 y : y (the metadata's leaky_relu_alpha). Channels 16, 32, 64, 128,
// 256, 512. At 416: 414 -> 207 -> 104 -> 52 -> 26 -> 13 -> 13.
// The output grid: per cell (row, col) and anchor a, channels 5a..5a+4 = tx, ty, tw, th, to
// (raw: the box decoding and NMS are include/softbio/face's). The "explicit pad 1 then valid
// depthwise" of conv1..5 is a depthwise conv with symmetric padding 1 (the same sums).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "softbio/model/faceapi_network.hpp"

namespace softbio {

/// The units of the tiny face detector (tensor names of docs/FACE_MODELS.md §10.2).
inline NetworkDesc describe_faceapi_tiny_face_detector(const ModelConfig& cfg) {
    detail::faceapi::Builder b;
    const float alpha = cfg.faceapi.leaky_alpha;
    const int anchors = cfg.faceapi.boxes_per_cell();
    if (anchors < 1) throw ShapeError("tiny face detector: no anchors (model.anchors)");
    int x = b.conv("conv0", kNetworkInput, cfg.arch.in_channels, 16, 3, 1, /*same=*/false);
    b[x].leaky_alpha = alpha;
    x = b.maxpool_same("pool0", x, 2, 2);
    const int channels[6] = {16, 32, 64, 128, 256, 512};
    for (int i = 1; i <= 5; ++i) {
        const std::string name = "conv" + std::to_string(i);
        x = b.sep(name, x, channels[i - 1], channels[i], 1, /*same=*/false, /*pad=*/1);
        b[x].leaky_alpha = alpha;
        x = b.maxpool_same("pool" + std::to_string(i), x, 2, i < 5 ? 2 : 1);
    }
    b.conv("conv8", x, 512, 5 * anchors, 1, 1, /*same=*/false);
    return b.d;
}

/// The tiny face detector on a backend. forward() on a normalised S x S input (S a
/// multiple of 32, chosen at make_workspace) gives the raw grid [N, S/32, S/32, 25].
template <class Backend>
class FaceApiTinyFaceDetector : public FaceApiNetwork<Backend> {
public:
    using Base = FaceApiNetwork<Backend>;
    using WorkspaceType = FaceApiWorkspace<Backend>;
    static constexpr const char* family = kFamilyFaceDetector;

    FaceApiTinyFaceDetector(const ModelConfig& cfg, const WeightSource& weights, const LoadOptions& = {},
                            std::string path = {}, std::shared_ptr<const void> keep_alive = {})
        : Base(cfg, describe_checked(cfg, path), weights, path, std::move(keep_alive)) {
        this->set_outputs({this->description().units.size() - 1});
    }

    /// Working memory for up to `max_batch` inputs of size x size (0: the model's
    /// input_size, 416). Throws ShapeError unless size is a positive multiple of 32.
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int size = 0, int threads = 0) const {
        const int s = size > 0 ? size : this->config().arch.input_h;
        if (s % 32 != 0 || s < 32)
            throw ShapeError("tiny face detector: input size " + std::to_string(s) + " is not a positive multiple of 32");
        return Base::make_workspace(max_batch, s, s, threads);
    }

    /// Grid side g = S / 32 of the last forward().
    static int grid_size(const WorkspaceType& ws) { return ws.input_h() / 32; }
    /// The raw grid of the last forward(), NHWC [batch, g, g, 5 * anchors]: element
    /// (n, row, col, 5a + k) with k = tx, ty, tw, th, to.
    const float* grid(const WorkspaceType& ws) const { return ws.unit_output(this->outputs()[0]); }
    /// Image n's grid as [25, g, g] (NCHW, channel-major) into `out` (25 * g * g floats).
    void grid_chw(const WorkspaceType& ws, int n, float* out) const {
        const Shape s = ws.unit_shape(this->outputs()[0]);
        if (n < 0 || n >= s.n) throw ShapeError("grid_chw: image " + std::to_string(n) + " outside the last batch");
        std::vector<float> host(s.numel());  // small (25 g^2 per image); not on the forward path
        Backend::download(host.data(), grid(ws), host.size(), ws.context());
        const size_t plane = size_t(s.h) * s.w;
        for (size_t p = 0; p < plane; ++p)
            for (int c = 0; c < s.c; ++c) out[size_t(c) * plane + p] = host[(size_t(n) * plane + p) * s.c + c];
    }

private:
    static NetworkDesc describe_checked(const ModelConfig& cfg, const std::string& path) {
        if (cfg.family != kFamilyFaceDetector)
            throw ModelFileError(path + ": holds a \"" + cfg.family + "\" network, expected \"" + kFamilyFaceDetector + "\"");
        return describe_faceapi_tiny_face_detector(cfg);
    }
};

}  // namespace softbio
