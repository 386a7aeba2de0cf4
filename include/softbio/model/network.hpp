// softbio/model/network.hpp — the one description of a network: a flat list of units.
//
// Each network family has one function that turns a ModelConfig into a NetworkDesc
// (describe_resnet() in model/resnet.hpp). Everything that needs to know the topology
// reads it from there and nowhere else:
//   * the loader (io/model_file.hpp): the exact tensors a file must hold, tensors();
//   * the network's build(): which layer each unit becomes, with which weights;
//   * parameter and multiply-accumulate counts, output shapes (shapes());
//   * the names --profile and --dump report (unit names);
//   * the synthetic weight writer (io/synthetic.hpp): initialisation by unit role.
//
// A unit is one layer as PyTorch names it: a convolution with its BatchNorm, a pool, the
// flatten, a head. Data flow is explicit: `input` is the unit whose output this unit
// reads (kNetworkInput for the image) and `add` the unit whose output is added before the
// activation (a residual shortcut), so shapes can be walked without knowing the family.
//
// Besides the ResNet's kinds (ConvBn, pools, Flatten, Head), the face-api networks
// (model/faceapi_*.hpp) use plain layers in TensorFlow's layouts:
//   Conv           y = act(conv(x) + bias [+ add])            act: none, relu or leaky
//   SeparableConv  y = act(pointwise(depthwise(x)) + bias [+ add])
//   Relu           y = relu(x) into a new buffer (x stays: a pre-activation branch)
//   Dense          y = x W + b on the NHWC map read as a vector (TF's flatten order)
// with padding symmetric (`padding`) or TensorFlow "same" (`same`), and max/avg pools
// that may use "same" too. A dense block's running sums and a reduction block's two
// paths are `add`s: y = act(conv(x) + bias + out[add]), summed in that order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/precision.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/layers/conv2d.hpp"  // ConvKernel
#include "softbio/layers/layer_common.hpp"
#include "softbio/model/config.hpp"

namespace softbio {

enum class UnitKind {
    ConvBn,         // Conv2d (no bias) + BatchNorm2d [+ residual add] [+ ReLU]
    MaxPool,        // MaxPool2d(kernel, stride, padding)
    AvgPool,        // AvgPool2d(kernel, stride, padding), count_include_pad
    GlobalAvgPool,  // AdaptiveAvgPool2d(1)
    Flatten,        // x.view(N, -1) in PyTorch's NCHW order -> the feature vector
    Head,           // Linear(F, outputs) + the head's decoding rule (model/heads.hpp)
    Conv,           // Conv2d + bias [+ add] [+ ReLU / leaky ReLU] (no BatchNorm)
    SeparableConv,  // depthwise KxK, pointwise 1x1, bias [+ add] [+ activation]
    Relu,           // relu(x) into its own buffer
    Dense,          // fully connected on the flattened NHWC map: [N, F] x [F, out] + bias
};

/// What part a unit plays; used for initialisation and for reading a profile.
enum class UnitRole {
    Stem,        // the first conv
    Branch,      // a conv inside a residual branch, ReLU after it
    BranchLast,  // the last conv of a residual branch: adds the shortcut, then ReLU
    Shortcut,    // the projection (downsample) of a residual shortcut: no ReLU
    Pool,
    Flatten,
    Head,
    Layer,       // a layer of a network without residual blocks (face-api)
};

inline constexpr int kNetworkInput = -1;  // `input` of a unit that reads the image
inline constexpr int kNoAdd = -1;         // `add` of a unit without a residual

struct UnitDesc {
    std::string name;  // PyTorch's module name: "conv1", "layer3.4.conv2", "head.age"
    UnitKind kind = UnitKind::ConvBn;
    UnitRole role = UnitRole::Stem;
    int input = kNetworkInput;  // index of the unit whose output this one reads
    int add = kNoAdd;           // index of the unit whose output is added (shortcut)
    bool relu = false;
    int in_channels = 0, out_channels = 0;  // Head: F and the weight matrix's rows
    int kernel = 1, stride = 1, padding = 0;
    std::string weight;  // ConvBn: conv tensor prefix ("layer1.0.conv1"); Head: "head.age"
    std::string norm;    // ConvBn: BatchNorm tensor prefix ("layer1.0.bn1")
    int head = -1;       // Head: index into ModelConfig::heads
    // Conv, SeparableConv, Dense (face-api):
    bool same = false;            // TensorFlow "same" padding instead of `padding` (also MaxPool/AvgPool)
    float leaky_alpha = 0.0f;     // != 0: leaky ReLU with this slope instead of `relu`
    FilterLayout layout = FilterLayout::kTensorFlow;  // tensor names and layouts, see tensors()
};

/// A tensor a network needs: name, PyTorch shape, and whether it is learned (counted
/// as a parameter: BatchNorm's running statistics are not).
struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;
    bool learned = true;
    size_t numel() const {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        return n;
    }
};

/// The BatchNorm2d tensor names of a norm prefix, in PyTorch's order.
inline const char* const kBatchNormSuffixes[4] = {".weight", ".bias", ".running_mean", ".running_var"};

struct NetworkDesc {
    std::vector<UnitDesc> units;
    std::vector<HeadConfig> heads;

    /// Every tensor of the network, in unit order: what a weight file must hold exactly.
    /// Conv, SeparableConv and Dense name theirs after `weight` (a prefix):
    ///   kTensorFlow (tfjs, face-api)         kPyTorch
    ///   P/filters [k, k, Cin, Cout]          P.weight [Cout, Cin, k, k]        Conv
    ///   P/depthwise_filter [k, k, Cin, 1]    P.depthwise.weight [Cin, 1, k, k] SeparableConv
    ///   P/pointwise_filter [1, 1, Cin, Cout] P.pointwise.weight [Cout, Cin, 1, 1]
    ///   P/weights [F, out]                   P.weight [out, F]                 Dense
    ///   P/bias [Cout]                        P.bias [Cout]                     all three
    std::vector<TensorSpec> tensors() const {
        std::vector<TensorSpec> out;
        for (const auto& u : units) {
            const bool tf = u.layout == FilterLayout::kTensorFlow;
            const int64_t ci = u.in_channels, co = u.out_channels, k = u.kernel;
            if (u.kind == UnitKind::Conv) {
                if (tf) out.push_back({u.weight + "/filters", {k, k, ci, co}, true});
                else out.push_back({u.weight + ".weight", {co, ci, k, k}, true});
            } else if (u.kind == UnitKind::SeparableConv) {
                if (tf) {
                    out.push_back({u.weight + "/depthwise_filter", {k, k, ci, 1}, true});
                    out.push_back({u.weight + "/pointwise_filter", {1, 1, ci, co}, true});
                } else {
                    out.push_back({u.weight + ".depthwise.weight", {ci, 1, k, k}, true});
                    out.push_back({u.weight + ".pointwise.weight", {co, ci, 1, 1}, true});
                }
            } else if (u.kind == UnitKind::Dense) {
                if (tf) out.push_back({u.weight + "/weights", {ci, co}, true});
                else out.push_back({u.weight + ".weight", {co, ci}, true});
            }
            if (u.kind == UnitKind::Conv || u.kind == UnitKind::SeparableConv || u.kind == UnitKind::Dense)
                out.push_back({u.weight + (tf ? "/bias" : ".bias"), {co}, true});
            if (u.kind == UnitKind::ConvBn) {
                out.push_back({u.weight + ".weight", {u.out_channels, u.in_channels, u.kernel, u.kernel}, true});
                for (int i = 0; i < 4; ++i) out.push_back({u.norm + kBatchNormSuffixes[i], {u.out_channels}, i < 2});
            } else if (u.kind == UnitKind::Head) {
                const HeadConfig& h = heads[size_t(u.head)];
                out.push_back({u.weight + ".weight", {h.outputs(), u.in_channels}, true});
                out.push_back({u.weight + ".bias", {h.logits()}, true});
            }
        }
        return out;
    }

    /// Learned parameters, as PyTorch counts them (sum of numel over parameters()).
    long long parameter_count() const {
        long long n = 0;
        for (const auto& t : tensors())
            if (t.learned) n += (long long)t.numel();
        return n;
    }

    /// The convolution of a ConvBn unit (for_input() adds the input's size).
    static Conv2dParams conv_geometry(const UnitDesc& u) {
        if (u.same) return Conv2dParams::geometry_same(u.in_channels, u.out_channels, u.kernel, u.stride);
        return Conv2dParams::geometry(u.in_channels, u.out_channels, u.kernel, u.stride, u.padding);
    }
    /// The depthwise step of a SeparableConv unit (its pointwise step is 1x1, stride 1).
    static Conv2dParams depthwise_geometry(const UnitDesc& u) {
        if (u.same) return Conv2dParams::depthwise_same(u.in_channels, u.kernel, u.stride);
        return Conv2dParams::depthwise(u.in_channels, u.kernel, u.stride, u.padding);
    }
    static Conv2dParams conv_params(const UnitDesc& u, Shape in) { return conv_geometry(u).for_input(in.n, in.h, in.w); }
    /// The window of a MaxPool/AvgPool unit for an input shape.
    static Pool2dParams pool_params(const UnitDesc& u, Shape in) {
        const Pool2dParams w = u.same ? Pool2dParams::window_same(u.kernel, u.stride)
                                      : Pool2dParams::window(u.kernel, u.stride, u.padding);
        return w.for_input(in.n, in.h, in.w, in.c);
    }

    /// Output shape of every unit for an input [N, H, W, C]. Throws ShapeError naming
    /// the unit where the input is too small (a window larger than its padded input).
    std::vector<Shape> shapes(Shape input) const {
        std::vector<Shape> out;
        out.reserve(units.size());
        for (const auto& u : units) {
            const Shape in = u.input == kNetworkInput ? input : out[size_t(u.input)];
            auto too_small = [&](int padding) {
                if (in.h + 2 * padding < u.kernel || in.w + 2 * padding < u.kernel)
                    throw ShapeError(u.name + " (kernel " + std::to_string(u.kernel) + ", padding " +
                                     std::to_string(padding) + "): input " + in.str() + " is smaller than the window");
            };
            switch (u.kind) {
                case UnitKind::Conv:
                case UnitKind::SeparableConv: {
                    if (!u.same) too_small(u.padding);
                    if (in.c != u.in_channels)
                        throw ShapeError(u.name + ": input " + in.str() + " has " + std::to_string(in.c) +
                                         " channels, expected " + std::to_string(u.in_channels));
                    const Conv2dParams p = u.kind == UnitKind::Conv ? conv_params(u, in)
                                                                    : depthwise_geometry(u).for_input(in.n, in.h, in.w);
                    out.push_back({in.n, p.out_h(), p.out_w(), u.out_channels});
                    break;
                }
                case UnitKind::Relu: out.push_back(in); break;
                case UnitKind::Dense:
                    if (size_t(in.h) * size_t(in.w) * size_t(in.c) != size_t(u.in_channels))
                        throw ShapeError(u.name + ": input " + in.str() + " has " +
                                         std::to_string(size_t(in.h) * size_t(in.w) * size_t(in.c)) +
                                         " features, the layer takes " + std::to_string(u.in_channels));
                    out.push_back({in.n, 1, 1, u.out_channels});
                    break;
                case UnitKind::ConvBn: {
                    too_small(u.padding);
                    const Conv2dParams p = conv_params(u, in);
                    out.push_back({in.n, p.out_h(), p.out_w(), u.out_channels});
                    break;
                }
                case UnitKind::MaxPool:
                case UnitKind::AvgPool: {
                    if (!u.same) too_small(u.padding);
                    const Pool2dParams p = pool_params(u, in);
                    out.push_back({in.n, p.out_h(), p.out_w(), in.c});
                    break;
                }
                case UnitKind::GlobalAvgPool: out.push_back({in.n, 1, 1, in.c}); break;
                case UnitKind::Flatten: out.push_back({in.n, 1, 1, in.h * in.w * in.c}); break;
                case UnitKind::Head: out.push_back({in.n, 1, 1, heads[size_t(u.head)].logits()}); break;
            }
        }
        // A unit's `add` may come later in the list (a ResNet's downsample follows its branch).
        for (size_t i = 0; i < units.size(); ++i) {
            const int a = units[i].add;
            if (a != kNoAdd && out[size_t(a)] != out[i])
                throw ShapeError(units[i].name + ": output " + out[i].str() + " cannot be added to " +
                                 units[size_t(a)].name + "'s " + out[size_t(a)].str());
        }
        return out;
    }

    /// Multiply-accumulates of unit i given all input shapes (from shapes()).
    double unit_macs(size_t i, Shape input, const std::vector<Shape>& shape) const {
        const UnitDesc& u = units[i];
        const Shape in = u.input == kNetworkInput ? input : shape[size_t(u.input)];
        if (u.kind == UnitKind::ConvBn || u.kind == UnitKind::Conv) return conv_params(u, in).macs();
        if (u.kind == UnitKind::SeparableConv) {
            const Conv2dParams d = depthwise_geometry(u).for_input(in.n, in.h, in.w);
            return d.depthwise_macs() + double(d.gemm_m()) * u.in_channels * u.out_channels;
        }
        if (u.kind == UnitKind::Head || u.kind == UnitKind::Dense) return double(in.n) * u.in_channels * u.out_channels;
        return 0;
    }
    /// Multiply-accumulates of one forward pass at this input shape.
    double macs(Shape input) const {
        const auto s = shapes(input);
        double total = 0;
        for (size_t i = 0; i < units.size(); ++i) total += unit_macs(i, input, s);
        return total;
    }
    /// Index of the unit called `name`, or -1.
    int find(const std::string& name) const {
        for (size_t i = 0; i < units.size(); ++i)
            if (units[i].name == name) return int(i);
        return -1;
    }
};

/// Where a network's build() takes its weights from: the validated model file
/// (io/model_file.hpp), or anything else that can hand out tensors by name.
class WeightSource {
public:
    virtual ~WeightSource() = default;
    /// The tensor `name`, fp32, with the shape NetworkDesc::tensors() gives it. Throws
    /// ModelFileError naming the file and tensor when it is missing or holds a
    /// non-finite value.
    virtual const TensorRef& tensor(const std::string& name) const = 0;
    /// The build has copied tensor `name` into its own storage (a conv filter, packed)
    /// and will not read it again: the source may drop it from memory (the model file
    /// lets its pages leave the resident set). Reading it later stays valid.
    virtual void release(const std::string& /*name*/) const {}
};

/// Where a model runs. Chosen at load by the calls that pick the backend at run time
/// (load_device_model, Predictor: io/load.hpp); a typed load (load_network<Net>) runs on
/// Net's backend.
enum class Device { Cpu, Cuda };

// Precision (the arithmetic of the convolutions): core/precision.hpp.

/// Options for building a model from a weight file.
struct LoadOptions {
    /// Fold each BatchNorm into the conv before it (fast). false = run BN as its own
    /// layer, exactly PyTorch's graph (for study and debugging).
    bool fold_batchnorm = true;
    /// The backend (io/load.hpp: load_device_model). Cuda needs a program that compiled
    /// softbio/backend/cuda_model.hpp with nvcc, and a CUDA device.
    Device device = Device::Cpu;
    /// Fp32 everywhere; Tf32, Fp16, Bf16 on the CUDA backend only (every convolution on
    /// the tensor cores: conv2d_tf32, or conv2d_mma_f32io with the filters stored in 16
    /// bits; core/precision.hpp), refused on the CPU (io/load.hpp: require_precision).
    Precision precision = Precision::Fp32;
    /// The CPU convolutions' GEMM: softbio's packed GEMM (default) or Eigen's, the
    /// baseline (layers/conv2d.hpp: ConvKernel). No effect on the CUDA backend.
    ConvKernel conv_kernel = ConvKernel::Packed;
};

/// Reported to a LayerObserver after each layer when one is passed to forward(). The
/// backend has finished the layer when the observer runs, so `seconds` is its real time
/// on every backend (the queue is drained before each report: observe to study, not
/// to serve).
struct LayerEvent {
    const std::string& name;  // the unit name: "conv1", "layer3.4.conv2", "layer3.4", "layer3", "head.age"
    const char* kind;         // "conv" (conv+BN[+add]+ReLU), "pool", "block", "stage", "flatten", "head"
    ConstTensorView output;   // NHWC, in the backend's memory; features and logits are [N, 1, 1, F]
    double macs;              // multiply-accumulates of this layer (0 for "block"/"stage": counted by their convs)
    double seconds;           // wall time of this layer
    const void* backend_context;                                             // for copy_output
    void (*download)(const void* context, float* host, const float* src, size_t count);  // the backend's copy

    /// Copy the output to host memory (output.shape.numel() floats), on any backend.
    void copy_output(float* host) const { download(backend_context, host, output.data, output.shape.numel()); }
};
using LayerObserver = std::function<void(const LayerEvent&)>;

}  // namespace softbio
