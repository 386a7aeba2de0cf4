// softbio/backend/cuda_model.hpp — the CUDA backend behind the run-time device choice:
// LoadOptions::device = Device::Cuda for load_device_model() and Predictor (io/load.hpp,
// predictor.hpp), and `softbio-predict --device cuda`.
//
// Compile this header in ONE .cu file of a program (nvcc; examples/predict_cuda.cu is
// the whole file for softbio-predict):
//
//     #define EIGEN_NO_CUDA
//     #include <softbio/backend/cuda_model.hpp>
//
// It registers the CUDA loader in softbio::cuda_hooks() when the program starts (the
// inline variable `registered` below; register_cuda_device() does the same by hand).
// The rest of the program stays plain C++: it asks for Device::Cuda and gets a
// DeviceModel whose sessions run ResNet<CudaBackend> on the current device (device 0
// unless the thread chose another with cudaSetDevice before loading). Without a usable
// GPU, loading throws DeviceUnavailable with the CUDA runtime's reason.
//
// ---- The input pipeline of one session (CudaSession, one per calling thread) ----------------
//
// What a session owns, all allocated when it is made (make_session), none in the hot
// path (input_slot / submit / collect never allocate device or host memory):
//   * the Workspace (activations, conv scratch, logits) with its own compute stream;
//   * a copy stream for host-to-device uploads;
//   * kDepth = 2 slots, used in turn by successive batches (batch k in slot k % 2), each:
//       staging[s]  pinned host memory (cudaHostAlloc), [max_batch, H, W, C] floats: the
//                   preprocessed images are written here directly (Predictor::set_input),
//                   so the upload is a true asynchronous DMA, with no extra host copy;
//       input[s]    device memory for the batch (slot 0 uses the Workspace's input buffer);
//       logits[s]   pinned host memory for every head's logits of the batch;
//       events uploaded[s], consumed[s], done[s] (cudaEventDisableTiming).
//
// submit(batch) on slot s:
//   copy stream:    wait consumed[s]     (the forward of batch k-2 has read input[s])
//                   staging[s] -> input[s]          (cudaMemcpyAsync)
//                   record uploaded[s]
//   compute stream: wait uploaded[s]
//                   forward(input[s])    (every kernel on the Workspace's stream)
//                   record consumed[s]
//                   logits -> logits[s]             (cudaMemcpyAsync, device to pinned host)
//                   record done[s]
//   and returns: nothing has waited on the host.
// input_slot() for the next batch (slot s'): before the host writes staging[s'], it waits
//   for uploaded[s'] (the upload of batch k-1 out of it; long done in steady state).
// collect(): waits for done[oldest] and decodes logits[oldest] on the host (heads.hpp).
//
// Timeline with the Predictor's cycle (fill k+1 and submit it before collecting k):
//
//   host     | fill 0 | submit 0 | fill 1 (decode + preprocess) | submit 1 | collect 0 | fill 2 ...
//   copy     |        | up 0     |                              | up 1     |
//   compute  |        |    forward 0 ........................ logits 0 | forward 1 ....
//
// so the upload of batch k+1 (and the host's decoding and preprocessing of it) overlap
// the forward pass of batch k; the compute stream only waits for an upload when the
// host is the bottleneck. Two batches in flight at most: submit() throws when both slots
// hold uncollected results.
//
// Results are the same as a plain ResNet<CudaBackend>::forward + decode of the same
// input (same kernels, same order); against the CPU backend they follow the whole-network
// tolerance rule of tests/test_model.cpp in fp32, and the TF32 / FP16 / BF16 rules of
// tests/cuda/tf32_model.hpp with LoadOptions::precision = Tf32 / Fp16 / Bf16 (the model's
// load options reach every session's workspace context: every convolution through
// conv2d_tf32, or conv2d_mma_f32io on the filters the load stored in 16 bits).
#pragma once

#if !defined(__CUDACC__)
#error "softbio/backend/cuda_model.hpp contains CUDA kernels: include it from a .cu file compiled by nvcc"
#endif

#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "softbio/backend/cuda.hpp"
#include "softbio/io/load.hpp"

namespace softbio {
namespace cuda {

/// "" when a CUDA device is usable, else why not (the CUDA runtime's words). Never throws.
inline std::string why_no_device() {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear
        return std::string("no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorName(err) + ": " +
               cudaGetErrorString(err) + ")";
    }
    if (n == 0) return "no CUDA device found (cudaGetDeviceCount returned 0)";
    return "";
}

/// A DeviceSession on the GPU: the pipeline described at the top of this file.
class CudaSession final : public DeviceSession {
public:
    using Net = ResNet<CudaBackend>;

    /// Batches of up to `max_batch` images of h x w (0: the model's input size).
    CudaSession(std::shared_ptr<const Net> model, int max_batch, int h = 0, int w = 0) : model_(std::move(model)) {
        ws_ = model_->make_workspace(max_batch, h, w);
        ws_->context().stream = compute_;
        image_floats_ = size_t(ws_->input_h()) * ws_->input_w() * model_->arch().in_channels;
        const size_t input_floats = image_floats_ * size_t(max_batch);
        size_t logits = 0;
        for (const auto& head : model_->heads()) {
            logit_offset_.push_back(logits);
            logits += size_t(max_batch) * head.logits();
        }
        second_input_ = DeviceBuffer(input_floats);
        for (int s = 0; s < kDepth; ++s) {
            Slot& slot = slots_[s];
            slot.staging = PinnedBuffer(input_floats);
            slot.logits = PinnedBuffer(logits);
            slot.input = s == 0 ? ws_->input() : second_input_.data();
        }
    }
    ~CudaSession() override {
        // Work still queued reads and writes this session's buffers: let it finish
        // before they are freed (errors are ignored: destructors must not throw).
        cudaStreamSynchronize(copy_.get());
        cudaStreamSynchronize(compute_.get());
    }
    CudaSession(const CudaSession&) = delete;
    CudaSession& operator=(const CudaSession&) = delete;

    int max_batch() const override { return ws_->max_batch(); }

    float* input_slot(int slot) override {
        if (slot < 0 || slot >= max_batch())
            throw ShapeError("input slot " + std::to_string(slot) + " outside 0.." + std::to_string(max_batch() - 1));
        Slot& s = slots_[filling()];
        if (s.uploading) {  // the previous batch of this slot may still be on its way to the GPU
            s.uploaded.synchronize();
            s.uploading = false;
        }
        return s.staging.data() + image_floats_ * size_t(slot);
    }

    void submit(int batch, const LayerObserver* observer = nullptr) override {
        if (count_ == kDepth)
            throw Error("submit: " + std::to_string(kDepth) + " batches are in flight already; collect() one first");
        if (batch < 1 || batch > max_batch())
            throw ShapeError("submit: batch " + std::to_string(batch) + " outside 1.." + std::to_string(max_batch()) +
                             " (the session's max_batch)");
        const int index = filling();
        Slot& s = slots_[index];
        if (s.uploading) {  // filled without input_slot() (the same images again): still fine to upload
            s.uploaded.synchronize();
            s.uploading = false;
        }
        const cudaStream_t copy = copy_.get(), compute = compute_.get();
        s.consumed.wait_on(copy);
        SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(s.input, s.staging.data(), size_t(batch) * image_floats_ * sizeof(float),
                                           cudaMemcpyHostToDevice, copy),
                           "CudaSession (upload)");
        s.uploaded.record(copy);
        s.uploading = true;
        s.uploaded.wait_on(compute);
        model_->forward(s.input, batch, *ws_, observer);
        s.consumed.record(compute);
        for (size_t i = 0; i < model_->heads().size(); ++i)
            SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(s.logits.data() + logit_offset_[i], ws_->logits(i),
                                               size_t(batch) * model_->heads()[i].logits() * sizeof(float),
                                               cudaMemcpyDeviceToHost, compute),
                               "CudaSession (logits)");
        s.done.record(compute);
        s.batch = batch;
        ++count_;
    }

    void collect(std::vector<std::vector<HeadOutput>>& out) override {
        if (count_ == 0) throw Error("collect: no batch was submitted");
        Slot& s = slots_[oldest_];
        oldest_ = (oldest_ + 1) % kDepth;  // taken off the queue even when waiting fails
        --count_;
        s.done.synchronize();
        const auto& heads = model_->heads();
        out.resize(size_t(s.batch));
        for (int n = 0; n < s.batch; ++n) {
            out[size_t(n)].resize(heads.size());
            for (size_t i = 0; i < heads.size(); ++i)
                decode_head(heads[i].config(), s.logits.data() + logit_offset_[i] + size_t(n) * heads[i].logits(),
                            out[size_t(n)][i]);
        }
    }

    int in_flight() const override { return count_; }

    /// The workspace (its context's stream is this session's compute stream).
    Workspace<CudaBackend>& workspace() { return *ws_; }
    cudaStream_t copy_stream() const { return copy_.get(); }
    cudaStream_t compute_stream() const { return compute_.get(); }

private:
    struct Slot {
        PinnedBuffer staging, logits;
        float* input = nullptr;
        Event uploaded, consumed, done;
        bool uploading = false;
        int batch = 0;
    };
    int filling() const { return (oldest_ + count_) % kDepth; }

    std::shared_ptr<const Net> model_;
    Stream compute_, copy_;  // declared before the workspace and buffers: destroyed after them
    std::unique_ptr<Workspace<CudaBackend>> ws_;
    DeviceBuffer second_input_;
    size_t image_floats_ = 0;
    std::vector<size_t> logit_offset_;
    Slot slots_[kDepth];
    int oldest_ = 0, count_ = 0;
};

/// A ResNet<CudaBackend> as a DeviceModel.
class CudaDeviceModel final : public DeviceModel {
public:
    CudaDeviceModel(std::shared_ptr<const ResNet<CudaBackend>> model, int device)
        : model_(std::move(model)), device_(device) {
        cudaDeviceProp prop{};
        SOFTBIO_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
        description_ = "cuda:" + std::to_string(device_) + " (" + prop.name + ", " +
                       std::to_string(prop.multiProcessorCount) + " SMs" +
                       (model_->options().precision == Precision::Fp32
                            ? std::string()
                            : std::string(", ") + softbio::precision_name(model_->options().precision)) +
                       ")";
    }
    Device device() const override { return Device::Cuda; }
    std::string device_description() const override { return description_; }
    const ModelConfig& config() const override { return model_->config(); }
    const std::string& path() const override { return model_->path(); }
    std::unique_ptr<DeviceSession> make_session(int max_batch, int /*threads*/) const override {
        return std::make_unique<CudaSession>(model_, max_batch);
    }
    const ResNet<CudaBackend>& network() const { return *model_; }
    int cuda_device() const { return device_; }

private:
    std::shared_ptr<const ResNet<CudaBackend>> model_;
    int device_;
    std::string description_;
};

/// Load a model file onto the calling thread's current CUDA device.
inline std::shared_ptr<const DeviceModel> load_device_model(const std::string& path, const LoadOptions& opt) {
    const std::string why = why_no_device();
    if (!why.empty()) throw DeviceUnavailable("device cuda: " + why);
    int device = 0;
    SOFTBIO_CUDA_CHECK(cudaGetDevice(&device), "cudaGetDevice");
    return std::make_shared<const CudaDeviceModel>(load_network<ResNet<CudaBackend>>(path, opt), device);
}

/// Make Device::Cuda available to load_device_model() and Predictor in this program.
inline bool register_cuda_device() {
    DeviceBackendHooks& h = cuda_hooks();
    h.load = &cuda::load_device_model;
    h.why_unavailable = &why_no_device;
    return true;
}

/// Registers the CUDA backend when the program starts (in every program that compiles
/// this header).
inline const bool registered = register_cuda_device();

}  // namespace cuda
}  // namespace softbio
