// softbio/model/faceapi_landmark68.hpp — face-api's 68-point landmark network
// (docs/FACE_MODELS.md §6): four dense blocks of separable convolutions, a 7x7 average
// pool and a fully connected layer.
//
//   input 112 x 112 x 3, normalised: (p - mean) / 255
//   dense b (b = 0..3; C = 32, 64, 128, 256; sizes 112 -> 56 -> 28 -> 14 -> 7):
//     o1 = relu(first(x))            first: 3x3 stride-2 "same" conv (b = 0) or separable (b > 0)
//     o2 = sep(o1)                   sep: depthwise 3x3 + pointwise 1x1 + bias, "same", stride 1
//     o3 = sep(relu(o1 + o2))
//     o4 = sep(relu(o1 + o2 + o3))
//     out = relu(o1 + o2 + o3 + o4)
//   pool   7x7 stride-2 "valid" average            1 x 1 x 256
//   fc     256 -> 136 (+ bias), no activation     x0, y0, x1, y1, ... relative to the input
// The running sums are the units' outputs: conv1 = o1 + o2, conv2 = (o1 + o2) + o3 and
// conv3 = relu(((o1 + o2) + o3) + o4), each one conv + bias + the previous sum (an `add`);
// relu1/relu2 keep the sums and feed their ReLU to the next conv. (face-api adds
// o1 + (o2 + o3): a different rounding of the same sum, far below the tolerance.)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "softbio/model/faceapi_network.hpp"

namespace softbio {

/// The units of the landmark network (tensor names of docs/FACE_MODELS.md §10.2).
inline NetworkDesc describe_faceapi_landmark68(const ModelConfig& cfg) {
    detail::faceapi::Builder b;
    const int channels[4] = {32, 64, 128, 256};
    int x = kNetworkInput, ci = cfg.arch.in_channels;
    for (int blk = 0; blk < 4; ++blk) {
        const std::string p = "dense" + std::to_string(blk);
        const int c = channels[blk];
        const int o1 = blk == 0 ? b.conv(p + "/conv0", x, ci, c, 3, 2, /*same=*/true)
                                : b.sep(p + "/conv0", x, ci, c, 2, /*same=*/true);
        b[o1].relu = true;
        const int s2 = b.sep(p + "/conv1", o1, c, c, 1, true);  // o1 + o2
        b[s2].add = o1;
        const int r2 = b.relu(p + "/relu1", s2, c);
        const int s3 = b.sep(p + "/conv2", r2, c, c, 1, true);  // o1 + o2 + o3
        b[s3].add = s2;
        const int r3 = b.relu(p + "/relu2", s3, c);
        x = b.sep(p + "/conv3", r3, c, c, 1, true);  // relu(o1 + o2 + o3 + o4): the block's output
        b[x].add = s3;
        b[x].relu = true;
        ci = c;
    }
    x = b.avgpool_valid("pool", x, 7, 2);
    b.dense("fc", x, 256, 2 * cfg.faceapi.points);
    return b.d;
}

/// The landmark network on a backend: forward() on normalised 112 x 112 crops gives 136
/// numbers per face, x0, y0, ..., x67, y67, relative to the padded 112-px input.
template <class Backend>
class FaceApiLandmark68 : public FaceApiNetwork<Backend> {
public:
    using Base = FaceApiNetwork<Backend>;
    using WorkspaceType = FaceApiWorkspace<Backend>;
    static constexpr const char* family = kFamilyFaceLandmarks;

    FaceApiLandmark68(const ModelConfig& cfg, const WeightSource& weights, const LoadOptions& = {}, std::string path = {},
                      std::shared_ptr<const void> keep_alive = {})
        : Base(cfg, describe_checked(cfg, path), weights, path, std::move(keep_alive)) {
        this->set_outputs({this->description().units.size() - 1});
    }

    /// Working memory for up to `max_batch` faces at 112 x 112.
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int threads = 0) const {
        return Base::make_workspace(max_batch, 0, 0, threads);
    }
    /// Number of outputs per face (136 = 68 points x (x, y)).
    int outputs_per_face() const { return 2 * this->config().faceapi.points; }
    /// The last forward()'s outputs, [batch, 136] (face n at landmarks(ws) + 136 n).
    const float* landmarks(const WorkspaceType& ws) const { return ws.unit_output(this->outputs()[0]); }

private:
    static NetworkDesc describe_checked(const ModelConfig& cfg, const std::string& path) {
        if (cfg.family != kFamilyFaceLandmarks)
            throw ModelFileError(path + ": holds a \"" + cfg.family + "\" network, expected \"" + kFamilyFaceLandmarks + "\"");
        return describe_faceapi_landmark68(cfg);
    }
};

}  // namespace softbio
