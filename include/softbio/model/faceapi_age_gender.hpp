// softbio/model/faceapi_age_gender.hpp — face-api's age/gender network
// (docs/FACE_MODELS.md §5), a small Xception: reduction blocks, two residual main blocks,
// a separable conv to 512 channels, a 7x7 average pool and two fully connected heads.
//
//   input 112 x 112 x 3, normalised: (p - mean) / 255
//   conv_in      3x3 stride-2 "same" conv 3 -> 32 + bias, relu                56 x 56 x 32
//   reduction block 0 (no leading relu), 32 -> 64                            28 x 28 x 64
//   reduction block 1, 64 -> 128                                             14 x 14 x 128
//   main block 0, 1:  y = sep(relu(sep(relu(sep(relu(x)))))) + x             14 x 14 x 128
//   exit: reduction block 128 -> 256                                         7 x 7 x 256
//         relu(sep 256 -> 512)                                               7 x 7 x 512
//   pool 7x7 stride-2 "valid" average                                        512
//   age    = fc 512 -> 1 (+ bias), in years
//   gender = softmax(fc 512 -> 2 (+ bias)); index 0 = P(male)
// reduction block(x): main = maxpool3x3/2 "same"(sep(relu(sep([relu](x))))) ; side = 1x1
// stride-2 conv + bias of x itself; out = side + main (the expansion conv's `add`).
// sep = depthwise 3x3 + pointwise 1x1 + bias, "same", stride 1.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "softbio/model/faceapi_network.hpp"

namespace softbio {

/// The units of the age/gender network (tensor names of docs/FACE_MODELS.md §10.2).
inline NetworkDesc describe_faceapi_age_gender(const ModelConfig& cfg) {
    detail::faceapi::Builder b;
    int x = b.conv("entry_flow/conv_in", kNetworkInput, cfg.arch.in_channels, 32, 3, 2, /*same=*/true);
    b[x].relu = true;
    auto reduction = [&](const std::string& p, int in, int ci, int co, bool activate) {
        const int a = activate ? b.relu(p + "/relu", in, ci) : in;
        const int s0 = b.sep(p + "/separable_conv0", a, ci, co, 1, true);
        b[s0].relu = true;
        const int s1 = b.sep(p + "/separable_conv1", s0, co, co, 1, true);
        const int pool = b.maxpool_same(p + "/pool", s1, 3, 2);
        const int out = b.conv(p + "/expansion_conv", in, ci, co, 1, 2, /*same=*/true);
        b[out].add = pool;
        return out;
    };
    x = reduction("entry_flow/reduction_block_0", x, 32, 64, false);
    x = reduction("entry_flow/reduction_block_1", x, 64, 128, true);
    for (int m = 0; m < 2; ++m) {
        const std::string p = "middle_flow/main_block_" + std::to_string(m);
        int y = b.relu(p + "/relu", x, 128);
        y = b.sep(p + "/separable_conv0", y, 128, 128, 1, true);
        b[y].relu = true;
        y = b.sep(p + "/separable_conv1", y, 128, 128, 1, true);
        b[y].relu = true;
        y = b.sep(p + "/separable_conv2", y, 128, 128, 1, true);
        b[y].add = x;
        x = y;
    }
    x = reduction("exit_flow/reduction_block", x, 128, 256, true);
    x = b.sep("exit_flow/separable_conv", x, 256, 512, 1, true);
    b[x].relu = true;
    x = b.avgpool_valid("pool", x, 7, 2);
    b.dense("fc/age", x, 512, 1);
    b.dense("fc/gender", x, 512, 2);
    return b.d;
}

/// The age/gender network on a backend: forward() on normalised 112 x 112 crops, then
/// age(ws, n) in years and gender(ws, n) = softmax probabilities {P(male), P(female)}.
template <class Backend>
class FaceApiAgeGender : public FaceApiNetwork<Backend> {
public:
    using Base = FaceApiNetwork<Backend>;
    using WorkspaceType = FaceApiWorkspace<Backend>;
    static constexpr const char* family = kFamilyFaceAgeGender;

    FaceApiAgeGender(const ModelConfig& cfg, const WeightSource& weights, const LoadOptions& = {}, std::string path = {},
                     std::shared_ptr<const void> keep_alive = {})
        : Base(cfg, describe_checked(cfg, path), weights, path, std::move(keep_alive)) {
        const size_t n = this->description().units.size();
        this->set_outputs({n - 2, n - 1});  // fc/age, fc/gender
    }

    /// Working memory for up to `max_batch` faces at 112 x 112.
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int threads = 0) const {
        return Base::make_workspace(max_batch, 0, 0, threads);
    }
    /// The last forward()'s ages [batch] and gender logits [batch, 2] (backend memory).
    const float* ages(const WorkspaceType& ws) const { return ws.unit_output(this->outputs()[0]); }
    const float* gender_logits(const WorkspaceType& ws) const { return ws.unit_output(this->outputs()[1]); }

    /// Face n's age in years.
    float age(const WorkspaceType& ws, int n) const {
        check(ws, n);
        float a = 0;
        Backend::download(&a, ages(ws) + n, 1, ws.context());
        return a;
    }
    /// Face n's gender probabilities: p[0] = P(male), p[1] = P(female) = softmax(logits),
    /// computed as exp(z_i - max) / sum in double precision, then rounded to float.
    void gender(const WorkspaceType& ws, int n, float p[2]) const {
        check(ws, n);
        float z[2];
        Backend::download(z, gender_logits(ws) + 2 * size_t(n), 2, ws.context());
        const double m = std::max(z[0], z[1]);
        const double e0 = std::exp(double(z[0]) - m), e1 = std::exp(double(z[1]) - m);
        p[0] = float(e0 / (e0 + e1));
        p[1] = float(e1 / (e0 + e1));
    }

private:
    static void check(const WorkspaceType& ws, int n) {
        if (n < 0 || n >= ws.batch())
            throw ShapeError("age/gender: face " + std::to_string(n) + " outside the last batch of " + std::to_string(ws.batch()));
    }
    static NetworkDesc describe_checked(const ModelConfig& cfg, const std::string& path) {
        if (cfg.family != kFamilyFaceAgeGender)
            throw ModelFileError(path + ": holds a \"" + cfg.family + "\" network, expected \"" + kFamilyFaceAgeGender + "\"");
        return describe_faceapi_age_gender(cfg);
    }
};

}  // namespace softbio
