// softbio/io/load.hpp — load a network from a model file:
//
//     auto model = softbio::load_model("gender_age.safetensors");            // CPU ResNet
//     auto gpu = softbio::load_network<softbio::ResNet<softbio::CudaBackend>>(path);  // .cu file
//     auto r101 = softbio::load_as<softbio::ResNet101>("gender_age.safetensors");
//
//     softbio::LoadOptions opt;
//     opt.device = softbio::Device::Cuda;                       // or Device::Cpu (default)
//     auto any = softbio::load_device_model(path, opt);          // backend chosen at run time
//     auto session = any->make_session(/*max_batch=*/8);         // one per calling thread
//
// The file is opened and validated (io/model_file.hpp), then the network class builds
// its layers from its description, taking each tensor once. The returned model is
// read-only and may be shared by any number of threads.
//
// Choosing the device at run time (DeviceModel, DeviceSession below). The typed loads
// (load_model, load_network<Net>) fix the backend at compile time. load_device_model
// picks it from LoadOptions::device and hands back a DeviceModel: a loaded model behind
// an interface that plain C++ code can call whatever the backend. The CPU implementation
// is here. The CUDA one is in softbio/backend/cuda_model.hpp, which only nvcc compiles:
// a program gets it by compiling that header in one .cu file (softbio-predict does, in
// examples/predict_cuda.cu, when CMake finds nvcc); the header registers its loader in
// cuda_hooks() below when the program starts. Without it, Device::Cuda is refused with
// DeviceUnavailable saying the program was built without the CUDA backend; with it but
// without a usable GPU, DeviceUnavailable says so, with the CUDA runtime's reason.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "softbio/backend/cpu.hpp"
#include "softbio/io/model_file.hpp"
#include "softbio/model/architectures.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {

/// "cpu" or "cuda".
inline const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

/// The device called `name` ("cpu" or "cuda"); Error naming both choices otherwise.
inline Device parse_device(const std::string& name) {
    if (name == "cpu") return Device::Cpu;
    if (name == "cuda") return Device::Cuda;
    throw Error("unknown device \"" + name + "\": expected cpu or cuda");
}

/// "fp32", "tf32", "fp16" or "bf16".
inline const char* precision_name(Precision p) {
    return p == Precision::Tf32 ? "tf32" : p == Precision::Fp16 ? "fp16" : p == Precision::Bf16 ? "bf16" : "fp32";
}

/// The precision called `name`; Error naming the choices otherwise.
inline Precision parse_precision(const std::string& name) {
    for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Fp16, Precision::Bf16})
        if (name == precision_name(p)) return p;
    throw Error("unknown precision \"" + name + "\": expected fp32, tf32, fp16 or bf16");
}

/// A precision this backend (or this program, or this machine) cannot run.
class PrecisionUnavailable : public Error {
public:
    using Error::Error;
};

inline void require_device(Device d);

namespace detail {
/// Whether the network type runs on the CPU backend (Net<CpuBackend>); other types: the GPU.
template <template <class> class N, class B>
constexpr bool runs_on_cpu(const N<B>*) {
    return std::is_same<B, CpuBackend>::value;
}
constexpr bool runs_on_cpu(const void*) { return true; }
}  // namespace detail

namespace detail {
/// require_precision without the device check: whether the backend of device `d` runs
/// precision `p` at all (load_network's check: a typed CUDA load is compiled with the backend).
inline void require_backend_precision(Device d, Precision p) {
    if (p == Precision::Fp32 || d == Device::Cuda) return;
    if (p == Precision::Bf16) {  // the CPU's bf16 GEMM (kernels/cpu/gemm_bf16.hpp)
        std::string why;
        if (cpu::bf16_gemm_available(&why)) return;
        throw PrecisionUnavailable("precision bf16: the CPU backend's bf16 needs AVX512_BF16, and " + why);
    }
    throw PrecisionUnavailable("precision " + std::string(precision_name(p)) +
                               ": the CPU backend computes in fp32 or bf16 (with AVX512_BF16); tf32 and fp16 run on the "
                               "tensor cores of a GPU (device cuda)");
}
}  // namespace detail

/// Throw (naming what is missing) unless models can run in precision `p` on device `d`:
/// fp32 runs everywhere; tf32, fp16 and bf16 run on the CUDA backend (every convolution
/// on the tensor cores: conv2d_tf32, or conv2d_mma_f32io with 16-bit filters,
/// kernels/cuda/conv2d_mma.cuh), so they need a program with the CUDA backend and a GPU
/// (DeviceUnavailable says which is missing); on the CPU, bf16 runs where the program
/// was built for AVX512_BF16 and the CPU has it (kernels/cpu/gemm_bf16.hpp), and the
/// rest is refused (PrecisionUnavailable, with the reason).
inline void require_precision(Device d, Precision p) {
    detail::require_backend_precision(d, p);
    if (p != Precision::Fp32) require_device(d);
}

/// Load a model file as network type `Net` (e.g. ResNet<CpuBackend>). Throws
/// ModelFileError when the file is invalid or holds another network family, and
/// PrecisionUnavailable for a LoadOptions::precision the backend cannot run.
template <class Net>
std::shared_ptr<const Net> load_network(const std::string& path, const LoadOptions& opt = {}) {
    detail::require_backend_precision(detail::runs_on_cpu(static_cast<const Net*>(nullptr)) ? Device::Cpu : Device::Cuda,
                                      opt.precision);
    // The file object outlives the load: head weights stay in its mapping (or in its
    // copies of unaligned tensors) and are read from there at every forward pass.
    auto file = std::make_shared<const ModelFile>(open_model_file(path));
    if (file->config().family != Net::family)
        throw ModelFileError(path + ": holds a \"" + file->config().family + "\" network, expected \"" + Net::family + "\"");
    if (opt.precision == Precision::Bf16 && opt.conv_kernel != ConvKernel::Packed &&
        detail::runs_on_cpu(static_cast<const Net*>(nullptr)))
        throw PrecisionUnavailable(std::string("precision bf16 runs every convolution on the bf16 packed GEMM; conv "
                                               "kernel ") + conv_kernel_name(opt.conv_kernel) + " computes in fp32");
    const ConvKernelScope conv_kernel(opt.conv_kernel);  // every Conv2d the build makes (layers/conv2d.hpp)
    return std::make_shared<const Net>(file->config(), *file, opt, path, file);
}

/// The CPU ResNet of a model file (the common case). LoadOptions::device must be Cpu:
/// for CUDA use load_device_model (or load_network<ResNet<CudaBackend>> from a .cu file).
inline std::shared_ptr<const ResNet<CpuBackend>> load_model(const std::string& path, const LoadOptions& opt = {}) {
    if (opt.device != Device::Cpu)
        throw Error("load_model loads a CPU model, but LoadOptions::device is " + std::string(device_name(opt.device)) +
                    ": use load_device_model(path, options) or Predictor to load onto another device");
    return load_network<ResNet<CpuBackend>>(path, opt);
}

/// Load a model file and check it holds the architecture `Arch` (ModelFileError if not).
template <class Arch, class Backend = CpuBackend>
std::shared_ptr<const ResNet<Backend>> load_as(const std::string& path, const LoadOptions& opt = {}) {
    auto model = load_network<ResNet<Backend>>(path, opt);
    Arch::check(model->arch(), path);
    return model;
}

// ---- the device chosen at run time -------------------------------------------------------

/// A device that this program or this machine does not have (the message says which and why).
class DeviceUnavailable : public Error {
public:
    using Error::Error;
};

class DeviceSession;

/// A loaded model on some device, whatever its backend. Read-only, shared by any number
/// of threads (each with its own DeviceSession), like the typed models it wraps.
class DeviceModel {
public:
    virtual ~DeviceModel() = default;
    virtual Device device() const = 0;
    /// For messages: "cpu", "cuda:0 (NVIDIA H100 80GB HBM3, 132 SMs)".
    virtual std::string device_description() const = 0;
    virtual const ModelConfig& config() const = 0;
    const ArchConfig& arch() const { return config().arch; }
    /// The file the model was loaded from.
    virtual const std::string& path() const = 0;
    /// Per-caller working memory for batches of up to `max_batch` images at the model's
    /// input size, with `threads` CPU threads (0: softbio::num_threads(); CUDA ignores it).
    virtual std::unique_ptr<DeviceSession> make_session(int max_batch, int threads = 0) const = 0;
    /// The CPU network when device() is Cpu, else null.
    virtual std::shared_ptr<const ResNet<CpuBackend>> cpu_model() const { return nullptr; }
};

/// One caller's working state for a DeviceModel (not thread-safe): its input slots, its
/// workspace, and up to kDepth batches in flight. The cycle:
///
///     float* x = s->input_slot(i);   // fill image i of the next batch (H*W*C floats, NHWC)
///     s->submit(batch);               // start it: on CUDA it returns at once, the GPU works
///     ... fill the next batch, submit it (at most kDepth submitted and not collected) ...
///     s->collect(out);                // the oldest submitted batch's results (waits)
///
/// While one batch computes, the next one can be filled and submitted: on CUDA its upload
/// then overlaps the computation (softbio/backend/cuda_model.hpp). No call of this cycle
/// allocates once the first batches of each size have been decoded.
class DeviceSession {
public:
    static constexpr int kDepth = 2;
    virtual ~DeviceSession() = default;
    virtual int max_batch() const = 0;
    /// Host memory for image `slot` of the batch being filled (input_h * input_w *
    /// in_channels floats, HWC). Valid until the next input_slot()/submit() call; the
    /// batch's slots keep what was written until submit() takes them.
    virtual float* input_slot(int slot) = 0;
    /// Run the network on slots 0..batch-1 of the batch being filled (the observer, if
    /// any, sees every layer: the call then waits for each). Throws when kDepth batches
    /// are already in flight.
    virtual void submit(int batch, const LayerObserver* observer = nullptr) = 0;
    /// Decode the oldest submitted batch: out[n][i] = head i's result for image n. Waits
    /// for it. Throws when nothing is in flight.
    virtual void collect(std::vector<std::vector<HeadOutput>>& out) = 0;
    /// Batches submitted and not yet collected.
    virtual int in_flight() const = 0;
};

/// What a program that compiled the CUDA backend registers (softbio/backend/cuda_model.hpp).
struct DeviceBackendHooks {
    /// Load a model file onto the device.
    std::shared_ptr<const DeviceModel> (*load)(const std::string& path, const LoadOptions& opt) = nullptr;
    /// "" when a device is usable, else why not.
    std::string (*why_unavailable)() = nullptr;
};
/// The CUDA backend's hooks in this program (all null: not compiled in).
inline DeviceBackendHooks& cuda_hooks() {
    static DeviceBackendHooks hooks;
    return hooks;
}

/// Whether this program contains the CUDA backend (a .cu file compiled
/// softbio/backend/cuda_model.hpp). Says nothing about a GPU being present.
inline bool cuda_compiled_in() { return cuda_hooks().load != nullptr; }

/// Throw DeviceUnavailable (naming what is missing) unless models can run on `d` here.
inline void require_device(Device d) {
    if (d == Device::Cpu) return;
    const DeviceBackendHooks& h = cuda_hooks();
    if (!h.load)
        throw DeviceUnavailable("device cuda: this program was built without softbio's CUDA backend (no part of it "
                                "was compiled by nvcc with softbio/backend/cuda_model.hpp)");
    const std::string why = h.why_unavailable ? h.why_unavailable() : std::string();
    if (!why.empty()) throw DeviceUnavailable("device cuda: " + why);
}

namespace detail {

/// DeviceSession over a CPU workspace: submit() runs the network and decodes at once;
/// collect() hands the results over in submission order.
class CpuSession final : public DeviceSession {
public:
    CpuSession(std::shared_ptr<const ResNet<CpuBackend>> model, int max_batch, int threads)
        : model_(std::move(model)), ws_(model_->make_workspace(max_batch, 0, 0, threads)),
          image_floats_(size_t(ws_->input_h()) * ws_->input_w() * model_->arch().in_channels) {}
    int max_batch() const override { return ws_->max_batch(); }
    float* input_slot(int slot) override {
        if (slot < 0 || slot >= max_batch())
            throw ShapeError("input slot " + std::to_string(slot) + " outside 0.." + std::to_string(max_batch() - 1));
        return ws_->input() + image_floats_ * size_t(slot);
    }
    void submit(int batch, const LayerObserver* observer = nullptr) override {
        if (count_ == kDepth)
            throw Error("submit: " + std::to_string(kDepth) + " batches are in flight already; collect() one first");
        model_->forward(ws_->input(), batch, *ws_, observer);
        model_->decode(*ws_, batch, results_[(oldest_ + count_) % kDepth]);
        ++count_;
    }
    void collect(std::vector<std::vector<HeadOutput>>& out) override {
        if (count_ == 0) throw Error("collect: no batch was submitted");
        std::swap(out, results_[oldest_]);  // keeps both vectors' storage for later batches
        oldest_ = (oldest_ + 1) % kDepth;
        --count_;
    }
    int in_flight() const override { return count_; }
    Workspace<CpuBackend>& workspace() { return *ws_; }

private:
    std::shared_ptr<const ResNet<CpuBackend>> model_;
    std::unique_ptr<Workspace<CpuBackend>> ws_;
    size_t image_floats_;
    std::vector<std::vector<HeadOutput>> results_[kDepth];
    int oldest_ = 0, count_ = 0;
};

class CpuDeviceModel final : public DeviceModel {
public:
    explicit CpuDeviceModel(std::shared_ptr<const ResNet<CpuBackend>> m) : model_(std::move(m)) {
        if (!model_) throw Error("CpuDeviceModel: null model");
    }
    Device device() const override { return Device::Cpu; }
    std::string device_description() const override { return "cpu"; }
    const ModelConfig& config() const override { return model_->config(); }
    const std::string& path() const override { return model_->path(); }
    std::unique_ptr<DeviceSession> make_session(int max_batch, int threads) const override {
        return std::make_unique<CpuSession>(model_, max_batch, threads);
    }
    std::shared_ptr<const ResNet<CpuBackend>> cpu_model() const override { return model_; }

private:
    std::shared_ptr<const ResNet<CpuBackend>> model_;
};

}  // namespace detail

/// A loaded CPU model as a DeviceModel.
inline std::shared_ptr<const DeviceModel> as_device_model(std::shared_ptr<const ResNet<CpuBackend>> model) {
    return std::make_shared<const detail::CpuDeviceModel>(std::move(model));
}

/// Load a model file onto LoadOptions::device. Throws DeviceUnavailable when the
/// device is not compiled into this program or not present, ModelFileError for a bad file.
inline std::shared_ptr<const DeviceModel> load_device_model(const std::string& path, const LoadOptions& opt = {}) {
    require_precision(opt.device, opt.precision);
    if (opt.device == Device::Cpu) return as_device_model(load_network<ResNet<CpuBackend>>(path, opt));
    require_device(opt.device);
    return cuda_hooks().load(path, opt);
}

}  // namespace softbio
