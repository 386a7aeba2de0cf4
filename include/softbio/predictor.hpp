// softbio/predictor.hpp — the one-call API: image file in, gender/age out.
//
//     softbio::Predictor p("gender_age.safetensors");
//     softbio::Prediction r = p.predict_file("face.jpg");
//     const softbio::HeadOutput* age = r.find("age");   // age->value = years
//
// A Predictor couples a shared, read-only Model with everything one caller needs per
// call: a Workspace (activations), the preprocessing chain from the model's metadata
// and its buffers. It is not thread-safe; give each thread its own Predictor built
// from the same `std::shared_ptr<const Model>` — the weights are loaded once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "softbio/image/decode.hpp"
#include "softbio/image/preprocess.hpp"
#include "softbio/softbio.hpp"

namespace softbio {

/// Everything the model's heads say about one image.
struct Prediction {
    std::vector<HeadOutput> heads;
    /// Empty when every head gave a finite answer; else why this image has no result
    /// (e.g. "head age: non-finite logits ..."). Check it before reading `heads`.
    std::string error;
    bool ok() const { return error.empty(); }
    /// The head called `name`, or null.
    const HeadOutput* find(const std::string& name) const {
        for (const auto& h : heads)
            if (h.name == name) return &h;
        return nullptr;
    }
};

struct PredictorOptions {
    int max_batch = 1;  // largest batch predict_batch() accepts
    int threads = 0;    // 0 = softbio::num_threads()
    LoadOptions load;
};

class Predictor {
public:
    explicit Predictor(const std::string& model_path, const PredictorOptions& opt = {})
        : Predictor(load_model(model_path, opt.load), opt) {}

    Predictor(std::shared_ptr<const Model> model, const PredictorOptions& opt = {})
        : model_(std::move(model)),
          spec_(model_->config().preprocess),
          workspace_(model_->make_workspace(opt.max_batch, 0, 0, opt.threads)) {
        // A chain without crop/resize keeps each image's size (checked per image instead).
        if (spec_.output_height() != 0 &&
            (spec_.output_height() != model_->arch().input_h || spec_.output_width() != model_->arch().input_w))
            throw ModelFileError(model_->path() + ": preprocessing produces " + std::to_string(spec_.output_height()) +
                                 "x" + std::to_string(spec_.output_width()) + " but model.input_size is " +
                                 std::to_string(model_->arch().input_h) + "x" + std::to_string(model_->arch().input_w));
        if (model_->arch().in_channels != 3)
            throw ModelFileError(model_->path() + ": the image predictor needs an RGB model (in_channels 3), file has " +
                                 std::to_string(model_->arch().in_channels));
    }

    const Model& model() const { return *model_; }
    std::shared_ptr<const Model> shared_model() const { return model_; }
    const PreprocessSpec& preprocessing() const { return spec_; }
    /// False for generated (untrained) weights: say so next to every result.
    bool trained() const { return model_->config().trained; }
    int max_batch() const { return workspace_->max_batch(); }
    Workspace<CpuBackend>& workspace() { return *workspace_; }

    /// Preprocess `image` into slot `slot` of the input batch.
    void set_input(const RgbImage& image, int slot) {
        if (slot < 0 || slot >= max_batch())
            throw ShapeError("Predictor: batch slot " + std::to_string(slot) + " outside 0.." + std::to_string(max_batch() - 1));
        const int h = model_->arch().input_h, w = model_->arch().input_w;
        int oh = 0, ow = 0;
        spec_.output_size(image.height, image.width, oh, ow);
        if (oh != h || ow != w)
            throw ImageError("image of " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                             " pixels preprocesses to " + std::to_string(ow) + "x" + std::to_string(oh) +
                             ", but the model takes " + std::to_string(w) + "x" + std::to_string(h));
        preprocess(image, spec_, pre_ws_, workspace_->input() + size_t(h) * w * 3 * size_t(slot));
    }

    /// Run the network on the first `batch` slots set by set_input().
    void run(int batch, std::vector<Prediction>& out, const LayerObserver* observer = nullptr) {
        model_->forward(workspace_->input(), batch, *workspace_, observer);
        model_->decode(*workspace_, batch, decoded_);
        out.resize(size_t(batch));
        for (int n = 0; n < batch; ++n) {
            Prediction& p = out[size_t(n)];
            p.heads = decoded_[size_t(n)];
            p.error.clear();
            for (const auto& h : p.heads)
                if (!h.finite && p.error.empty())
                    p.error = "head " + h.name + ": non-finite logits (NaN or infinity): the model's weights or this "
                              "input overflow fp32; no prediction";
        }
    }

    Prediction predict(const RgbImage& image, const LayerObserver* observer = nullptr) {
        set_input(image, 0);
        std::vector<Prediction> out;
        run(1, out, observer);
        return out[0];
    }
    Prediction predict_file(const std::string& path) { return predict(load_rgb_image(path)); }

private:
    std::shared_ptr<const Model> model_;
    PreprocessSpec spec_;
    std::unique_ptr<Workspace<CpuBackend>> workspace_;
    PreprocessWorkspace pre_ws_;
    std::vector<std::vector<HeadOutput>> decoded_;
};

}  // namespace softbio
