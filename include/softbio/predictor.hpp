// softbio/predictor.hpp — the one-call API: image file in, gender/age out.
//
//     softbio::Predictor p("gender_age.safetensors");
//     softbio::Prediction r = p.predict_file("face.jpg");
//     const softbio::HeadOutput* age = r.find("age");   // age->value = years
//
// A Predictor couples a shared, read-only model with everything one caller needs per
// call: a session (io/load.hpp: DeviceSession: the workspace and input buffers), the
// preprocessing chain from the model's metadata and its buffers. It is not thread-safe;
// give each thread its own Predictor built from the same shared model (a
// `std::shared_ptr<const Model>` or `std::shared_ptr<const DeviceModel>`): the weights
// are loaded once.
//
// Device: PredictorOptions::load.device = Device::Cuda runs the network on the GPU
// (preprocessing stays on the CPU, into pinned memory; the upload of one batch overlaps
// the computation of the one before: submit()/collect()). The program must compile
// softbio/backend/cuda_model.hpp in one .cu file; otherwise, or without a GPU, the
// constructor throws DeviceUnavailable naming what is missing. Device::Cpu (the default)
// runs exactly the CPU code it always did.
//
//     softbio::PredictorOptions opt;
//     opt.max_batch = 16;
//     opt.load.device = softbio::Device::Cuda;
//     softbio::Predictor p("model.safetensors", opt);
//     for (each batch) {
//         for (int i = 0; i < n; ++i) p.set_input(images[i], i);   // fills the next batch
//         p.submit(n);                     // GPU starts; the next batch can be filled now
//         if (a batch was submitted before) p.collect(out);   // the older batch's results
//     }
//
// The CPU path is exactly what it was before there was a choice: set_input preprocesses
// into the CPU workspace's input, submit runs forward + decode, collect hands them over.
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
    int threads = 0;    // 0 = softbio::num_threads() (CPU only)
    LoadOptions load;   // load.device: Device::Cpu (default) or Device::Cuda
};

class Predictor {
public:
    /// Load `model_path` onto opt.load.device.
    explicit Predictor(const std::string& model_path, const PredictorOptions& opt = {})
        : Predictor(load_device_model(model_path, opt.load), opt) {}

    /// A loaded CPU model.
    Predictor(std::shared_ptr<const Model> model, const PredictorOptions& opt = {})
        : Predictor(as_device_model(std::move(model)), opt) {}

    /// A loaded model on any device (load_device_model).
    Predictor(std::shared_ptr<const DeviceModel> model, const PredictorOptions& opt = {})
        : model_(std::move(model)), spec_(model_->config().preprocess) {
        // A chain without crop/resize keeps each image's size (checked per image instead).
        if (spec_.output_height() != 0 &&
            (spec_.output_height() != model_->arch().input_h || spec_.output_width() != model_->arch().input_w))
            throw ModelFileError(model_->path() + ": preprocessing produces " + std::to_string(spec_.output_height()) +
                                 "x" + std::to_string(spec_.output_width()) + " but model.input_size is " +
                                 std::to_string(model_->arch().input_h) + "x" + std::to_string(model_->arch().input_w));
        if (model_->arch().in_channels != 3)
            throw ModelFileError(model_->path() + ": the image predictor needs an RGB model (in_channels 3), file has " +
                                 std::to_string(model_->arch().in_channels));
        session_ = model_->make_session(opt.max_batch, opt.threads);
    }

    Device device() const { return model_->device(); }
    const DeviceModel& device_model() const { return *model_; }
    std::shared_ptr<const DeviceModel> shared_device_model() const { return model_; }
    const ModelConfig& config() const { return model_->config(); }
    /// The CPU network (device() == Device::Cpu); Error on another device.
    const Model& model() const { return *cpu_model("model"); }
    /// The CPU network, or null on another device.
    std::shared_ptr<const Model> shared_model() const { return model_->cpu_model(); }
    const PreprocessSpec& preprocessing() const { return spec_; }
    /// False for generated (untrained) weights: say so next to every result.
    bool trained() const { return model_->config().trained; }
    int max_batch() const { return session_->max_batch(); }
    /// The CPU workspace (device() == Device::Cpu); Error on another device.
    Workspace<CpuBackend>& workspace() {
        cpu_model("workspace");
        return static_cast<detail::CpuSession&>(*session_).workspace();
    }
    /// Batches submitted and not yet collected (0..DeviceSession::kDepth).
    int in_flight() const { return session_->in_flight(); }

    /// Preprocess `image` into slot `slot` of the batch being filled.
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
        preprocess(image, spec_, pre_ws_, session_->input_slot(slot));
    }

    /// Start the network on the first `batch` slots set by set_input(). On the GPU this
    /// returns once the work is queued: fill and submit the next batch meanwhile (at most
    /// DeviceSession::kDepth batches in flight), then collect().
    void submit(int batch, const LayerObserver* observer = nullptr) { session_->submit(batch, observer); }

    /// The results of the oldest submitted batch (waits for it).
    void collect(std::vector<Prediction>& out) {
        session_->collect(decoded_);
        out.resize(decoded_.size());
        for (size_t n = 0; n < decoded_.size(); ++n) {
            Prediction& p = out[n];
            p.heads = decoded_[n];
            p.error.clear();
            for (const auto& h : p.heads)
                if (!h.finite && p.error.empty())
                    p.error = "head " + h.name + ": non-finite logits (NaN or infinity): the model's weights or this "
                              "input overflow fp32; no prediction";
        }
    }

    /// Run the network on the first `batch` slots set by set_input() and wait for the
    /// results (nothing may be in flight: submit() and collect() are the pipelined way).
    void run(int batch, std::vector<Prediction>& out, const LayerObserver* observer = nullptr) {
        if (in_flight() != 0)
            throw Error("Predictor::run: " + std::to_string(in_flight()) +
                        " submitted batch(es) not collected yet; collect() them first");
        submit(batch, observer);
        collect(out);
    }

    Prediction predict(const RgbImage& image, const LayerObserver* observer = nullptr) {
        set_input(image, 0);
        std::vector<Prediction> out;
        run(1, out, observer);
        return out[0];
    }
    Prediction predict_file(const std::string& path) { return predict(load_rgb_image(path)); }

private:
    const Model* cpu_model(const char* what) const {
        if (model_->device() != Device::Cpu)
            throw Error(std::string("Predictor::") + what + "(): this predictor runs on " + model_->device_description() +
                        ", not on the CPU (use config(), device_model())");
        return static_cast<const detail::CpuDeviceModel&>(*model_).cpu_model().get();
    }

    std::shared_ptr<const DeviceModel> model_;
    PreprocessSpec spec_;
    std::unique_ptr<DeviceSession> session_;
    PreprocessWorkspace pre_ws_;
    std::vector<std::vector<HeadOutput>> decoded_;
};

}  // namespace softbio
