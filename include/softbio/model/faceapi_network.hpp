// softbio/model/faceapi_network.hpp — what face-api's three networks share: the
// FaceApiNetwork that turns a flat description (model/network.hpp: Conv, SeparableConv,
// Relu, pools, Dense units with `input`/`add` data flow) into layers and runs it, and the
// FaceApiWorkspace a forward pass writes into. Each network's own file
// (faceapi_tiny_face_detector.hpp, faceapi_landmark68.hpp, faceapi_age_gender.hpp) only
// describes its units and names its outputs.
//
// Every unit computes, over NHWC float32 maps (docs/FACE_MODELS.md §2 for the conventions):
//   Conv           y = act(conv(x) + bias + out[add])        conv: TF filter [k, k, Cin, Cout]
//   SeparableConv  y = act(pw(dw(x)) + bias + out[add])      dw [k, k, Cin, 1], pw [1, 1, Cin, Cout]
//   Relu           y = relu(x)                               (x is kept: a pre-activation branch)
//   MaxPool        y = max over the window (padding = -inf; "same" or symmetric)
//   AvgPool        y = sum over the window / window size ("valid" here)
//   Dense          y = x W + b                               x: the NHWC map as a vector, W [F, out]
// act: none, relu(y) = max(y, 0), or leaky(y) = y < 0 ? alpha*y : y. The addition order is
// conv + bias first, then the added unit's output, then the activation (kernels/op_params.hpp
// Epilogue). Relu runs as a 1x1 depthwise conv with weight 1 and a ReLU epilogue (x * 1 = x
// exactly), so it needs no op beyond the backend seam every network uses.
//
// Memory: one loaded network is read-only (packed filters, biases, transposed fc weights)
// and shared by any number of threads; make_workspace() plans every activation buffer for
// a maximum batch and input size once (buffers are reused when a unit's output is no longer
// read: a liveness plan over the description), so forward() never allocates.
//
// Backends: written against the backend seam only (conv2d, the depthwise seam, pools,
// linear, upload/use_weights/download), so FaceApiNetwork<CudaBackend> compiles (checked
// with nvcc by explicit instantiation of the three networks); it has not run on a GPU, and
// io/load_face.hpp loads these networks on the CPU only.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/limits.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/core/threading.hpp"
#include "softbio/layers/conv2d.hpp"
#include "softbio/layers/depthwise_conv.hpp"
#include "softbio/layers/linear.hpp"
#include "softbio/layers/pooling.hpp"
#include "softbio/layers/separable_conv.hpp"
#include "softbio/model/network.hpp"

namespace softbio {

template <class Backend>
class FaceApiNetwork;

/// Per-call working memory of a face-api network (one per concurrent caller).
template <class Backend>
class FaceApiWorkspace {
public:
    int max_batch() const { return max_batch_; }
    int input_h() const { return in_h_; }
    int input_w() const { return in_w_; }
    /// Batch size of the last forward().
    int batch() const { return batch_; }
    const typename Backend::Context& context() const { return ctx_; }
    typename Backend::Context& context() { return ctx_; }
    /// A buffer for a batch of inputs, NHWC [max_batch, H, W, 3] (preprocessed: normalised).
    float* input() { return input_.data(); }
    /// The output of unit `i` from the last forward(), NHWC, and its shape. A unit's buffer
    /// may be reused by a later unit: only the units a network reports as outputs (never
    /// overwritten) are meant to be read here.
    const float* unit_output(size_t i) const { return slots_[size_t(slot_of_[i])].data(); }
    Shape unit_shape(size_t i) const { return Shape{batch_, shapes_[i].h, shapes_[i].w, shapes_[i].c}; }
    /// Bytes this workspace holds.
    size_t bytes() const {
        size_t n = input_.size() + scratch_.size();
        for (const auto& s : slots_) n += s.size();
        return n * sizeof(float);
    }

private:
    friend class FaceApiNetwork<Backend>;
    int max_batch_ = 0, in_h_ = 0, in_w_ = 0, batch_ = 0;
    typename Backend::Context ctx_{};
    typename Backend::Buffer input_, scratch_;
    std::vector<typename Backend::Buffer> slots_;
    std::vector<int> slot_of_;   // unit -> slot
    std::vector<Shape> shapes_;  // unit output shapes at max_batch
};

template <class Backend>
class FaceApiNetwork {
public:
    using WorkspaceType = FaceApiWorkspace<Backend>;

    /// Build from a configuration, its description (describe_faceapi_*) and its weights
    /// (validated by the loader against desc.tensors()). Throws ModelFileError.
    FaceApiNetwork(const ModelConfig& cfg, NetworkDesc desc, const WeightSource& weights, std::string path,
                   std::shared_ptr<const void> keep_alive)
        : config_(cfg), path_(std::move(path)), keep_alive_(std::move(keep_alive)), desc_(std::move(desc)) {
        if (cfg.tensor_layout != "tfjs")
            throw ModelFileError(path_ + ": family " + cfg.family + " needs tensor_layout \"tfjs\", the file says \"" +
                                 cfg.tensor_layout + "\"");
        try {
            build(weights);
        } catch (const std::bad_alloc&) {
            throw Error(path_ + ": out of memory while building the network's layers (about " +
                        std::to_string(desc_.parameter_count() * 4 >> 20) + " MiB of weights)");
        }
    }

    const ModelConfig& config() const { return config_; }
    const std::string& path() const { return path_; }
    const NetworkDesc& description() const { return desc_; }
    long long parameter_count() const { return desc_.parameter_count(); }
    double macs(Shape in) const { return desc_.macs(in); }
    int input_channels() const { return config_.arch.in_channels; }

    /// Plan the working memory for up to `max_batch` inputs of h x w (default: the model's
    /// input size), with `threads` CPU threads (default: set_num_threads()). Throws
    /// ShapeError when the network cannot take that size.
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int h = 0, int w = 0, int threads = 0) const {
        if (max_batch < 1) throw ShapeError("make_workspace: max_batch must be >= 1, got " + std::to_string(max_batch));
        const int nthreads = threads > 0 ? threads : num_threads();
        if (nthreads > kMaxThreads)
            throw Error("make_workspace: " + std::to_string(nthreads) + " threads asked for, at most " +
                        std::to_string(kMaxThreads) + " are supported");
        auto ws = std::make_unique<WorkspaceType>();
        ws->max_batch_ = max_batch;
        ws->ctx_ = Backend::make_context(nthreads);
        ws->in_h_ = h > 0 ? h : config_.arch.input_h;
        ws->in_w_ = w > 0 ? w : config_.arch.input_w;
        const Shape in{max_batch, ws->in_h_, ws->in_w_, input_channels()};
        ws->shapes_ = desc_.shapes(in);  // throws ShapeError naming the unit
        const size_t n = desc_.units.size();

        // Liveness: a unit's output is needed until the last unit that reads it (as input
        // or add); the final units' outputs (the network's results) live to the end.
        std::vector<size_t> last_use(n, 0);
        for (size_t i = 0; i < n; ++i) {
            last_use[i] = std::max(last_use[i], i);
            const UnitDesc& u = desc_.units[i];
            if (u.input != kNetworkInput) last_use[size_t(u.input)] = std::max(last_use[size_t(u.input)], i);
            if (u.add != kNoAdd) last_use[size_t(u.add)] = std::max(last_use[size_t(u.add)], i);
        }
        for (size_t i : outputs_) last_use[i] = n;
        std::vector<size_t> slot_size;    // floats
        std::vector<size_t> slot_free_at;  // the slot is free for units after this index
        ws->slot_of_.assign(n, -1);
        size_t scratch = 1;
        for (size_t i = 0; i < n; ++i) {
            const UnitDesc& u = desc_.units[i];
            const Shape u_in = u.input == kNetworkInput ? in : ws->shapes_[size_t(u.input)];
            scratch = std::max(scratch, scratch_floats(i, u_in, ws->ctx_));
            // A free slot: not read by this unit (its input/add are still live at i).
            int pick = -1;
            for (size_t s = 0; s < slot_size.size(); ++s)
                if (slot_free_at[s] < i && (pick < 0 || slot_size[s] > slot_size[size_t(pick)])) pick = int(s);
            if (pick < 0) {
                slot_size.push_back(0);
                slot_free_at.push_back(0);
                pick = int(slot_size.size()) - 1;
            }
            slot_size[size_t(pick)] = std::max(slot_size[size_t(pick)], ws->shapes_[i].numel());
            slot_free_at[size_t(pick)] = last_use[i];
            ws->slot_of_[i] = pick;
        }
        size_t floats = in.numel() + scratch;
        for (size_t s : slot_size) floats += align_floats(s);
        const double mib = double(floats) * sizeof(float) / (1 << 20);
        const std::string plan = "workspace for batch " + std::to_string(max_batch) + " at " + std::to_string(in.h) +
                                 "x" + std::to_string(in.w) + " with " + std::to_string(nthreads) + " threads";
        if (floats > workspace_limit() / sizeof(float))
            throw Error(path_ + ": the " + plan + " needs " + std::to_string(int64_t(mib)) + " MiB, more than the limit of " +
                        std::to_string(workspace_limit() >> 20) + " MiB (softbio::set_workspace_limit; or use a smaller batch)");
        allocate_or_explain("the " + plan, size_t(mib) << 20, [&] {
            ws->input_ = typename Backend::Buffer(in.numel());
            ws->scratch_ = typename Backend::Buffer(scratch);
            for (size_t s : slot_size) ws->slots_.emplace_back(std::max<size_t>(s, 1));
            return 0;
        });
        return ws;
    }

    /// Run the network on `batch` inputs, NHWC [batch, H, W, 3] at `input` (may be
    /// ws.input()), H x W the workspace's size. Never allocates; the model is not
    /// modified. `observer` (optional) sees every unit's output and time.
    void forward(const float* input, int batch, WorkspaceType& ws, const LayerObserver* observer = nullptr) const {
        if (batch < 1 || batch > ws.max_batch_)
            throw ShapeError("forward: batch " + std::to_string(batch) + " outside 1.." + std::to_string(ws.max_batch_) +
                             " (the workspace's max_batch)");
        if (ws.slot_of_.size() != desc_.units.size())
            throw Error("forward: the workspace was made by another network");
        ws.batch_ = batch;
        const LayerContext<Backend> ctx{ws.scratch_.data(), ws.scratch_.size(), ws.ctx_};
        using Clock = std::chrono::steady_clock;
        auto t0 = Clock::now();
        const Shape in{batch, ws.in_h_, ws.in_w_, input_channels()};
        for (size_t i = 0; i < desc_.units.size(); ++i) {
            const UnitDesc& u = desc_.units[i];
            const Built& b = built_[i];
            const ConstTensorView x{u.input == kNetworkInput ? input : ws.unit_output(size_t(u.input)),
                                    u.input == kNetworkInput ? in : ws.unit_shape(size_t(u.input))};
            const TensorView y{ws.slots_[size_t(ws.slot_of_[i])].data(), ws.unit_shape(i)};
            Epilogue e;
            e.residual = u.add != kNoAdd ? ws.unit_output(size_t(u.add)) : nullptr;
            e.relu = u.relu;
            e.leaky_alpha = u.leaky_alpha;
            const char* kind = "conv";
            switch (u.kind) {
                case UnitKind::Conv:
                    e.bias = b.bias_ptr;
                    b.conv.forward(x, y, e, ctx);
                    break;
                case UnitKind::SeparableConv: b.separable.forward(x, y, e, ctx); break;
                case UnitKind::Relu: {
                    Epilogue r;
                    r.relu = true;
                    b.identity.forward(x, y, r, ctx);
                    kind = "relu";
                    break;
                }
                case UnitKind::MaxPool: b.maxpool.forward(x, y, ctx), kind = "pool"; break;
                case UnitKind::AvgPool: b.avgpool.forward(x, y, ctx), kind = "pool"; break;
                case UnitKind::Dense:
                    b.dense.forward(x.data, batch, y.data, ctx);
                    kind = "dense";
                    break;
                default: throw Error(path_ + ": unit " + u.name + ": kind not supported by face-api networks");
            }
            if (observer) {
                Backend::synchronize(ctx.backend);
                const auto t1 = Clock::now();
                (*observer)(LayerEvent{u.name, kind, y, desc_.unit_macs(i, in, ws.shapes_),
                                       std::chrono::duration<double>(t1 - t0).count(), &ws.ctx_, &download_for_observer});
                t0 = Clock::now();
            }
        }
    }

protected:
    /// The units whose outputs the network reports (kept to the end of forward()).
    void set_outputs(std::vector<size_t> units) { outputs_ = std::move(units); }
    const std::vector<size_t>& outputs() const { return outputs_; }

private:
    struct Built {
        Conv2d<Backend> conv;
        SeparableConv2d<Backend> separable;
        DepthwiseConv2d<Backend> identity;  // Relu
        MaxPool2d<Backend> maxpool;
        AvgPool2d<Backend> avgpool;
        Linear<Backend> dense;
        typename Backend::Buffer bias_storage, dense_w, dense_b;
        const float* bias_ptr = nullptr;
    };

    static void download_for_observer(const void* context, float* host, const float* src, size_t count) {
        Backend::download(host, src, count, *static_cast<const typename Backend::Context*>(context));
    }

    size_t scratch_floats(size_t i, Shape in, const typename Backend::Context& c) const {
        const UnitDesc& u = desc_.units[i];
        if (u.kind == UnitKind::Conv) return built_[i].conv.scratch_floats(in, c);
        if (u.kind == UnitKind::SeparableConv) return built_[i].separable.scratch_floats(in, c);
        return 0;
    }

    void build(const WeightSource& weights) {
        built_.resize(desc_.units.size());
        for (size_t i = 0; i < desc_.units.size(); ++i) {
            const UnitDesc& u = desc_.units[i];
            Built& b = built_[i];
            const bool tf = u.layout == FilterLayout::kTensorFlow;
            const std::string bias_name = u.weight + (tf ? "/bias" : ".bias");
            try {
                switch (u.kind) {
                    case UnitKind::Conv: {
                        b.conv = Conv2d<Backend>(NetworkDesc::conv_geometry(u),
                                                 weights.tensor(u.weight + (tf ? "/filters" : ".weight")), nullptr, u.layout);
                        const TensorRef& bias = weights.tensor(bias_name);
                        b.bias_ptr = Backend::use_weights(bias.data, bias.numel(), b.bias_storage);
                        break;
                    }
                    case UnitKind::SeparableConv:
                        b.separable = SeparableConv2d<Backend>(
                            NetworkDesc::depthwise_geometry(u),
                            weights.tensor(u.weight + (tf ? "/depthwise_filter" : ".depthwise.weight")),
                            weights.tensor(u.weight + (tf ? "/pointwise_filter" : ".pointwise.weight")),
                            weights.tensor(bias_name), u.layout);
                        break;
                    case UnitKind::Relu: {
                        const std::vector<float> ones(size_t(u.in_channels), 1.0f);
                        TensorRef w;
                        w.data = ones.data();
                        w.shape = {1, 1, u.in_channels, 1};
                        b.identity = DepthwiseConv2d<Backend>(Conv2dParams::depthwise(u.in_channels, 1, 1, 0), w, nullptr,
                                                              FilterLayout::kTensorFlow);
                        break;
                    }
                    case UnitKind::MaxPool:
                    case UnitKind::AvgPool: {
                        const Pool2dParams window = u.same ? Pool2dParams::window_same(u.kernel, u.stride)
                                                           : Pool2dParams::window(u.kernel, u.stride, u.padding);
                        if (u.kind == UnitKind::MaxPool) b.maxpool = MaxPool2d<Backend>(window);
                        else b.avgpool = AvgPool2d<Backend>(window);
                        break;
                    }
                    case UnitKind::Dense: {
                        // Linear wants [out, F]; TensorFlow stores [F, out]: transposed once here.
                        const TensorRef& w = weights.tensor(u.weight + (tf ? "/weights" : ".weight"));
                        const TensorRef& bias = weights.tensor(bias_name);
                        const size_t f = size_t(u.in_channels), o = size_t(u.out_channels);
                        std::vector<float> wt(f * o);
                        for (size_t r = 0; r < f; ++r)
                            for (size_t c = 0; c < o; ++c) wt[c * f + r] = tf ? w.data[r * o + c] : w.data[c * f + r];
                        b.dense_w = Backend::upload(wt.data(), wt.size());
                        b.dense_b = Backend::upload(bias.data, o);
                        b.dense = Linear<Backend>(u.in_channels, u.out_channels, b.dense_w.data(), b.dense_b.data());
                        break;
                    }
                    default: throw Error("unit kind not supported by face-api networks");
                }
            } catch (const ModelFileError&) {
                throw;
            } catch (const Error& e) {
                throw ModelFileError(path_ + ": " + u.name + " (" + u.weight + "): " + e.what());
            }
        }
    }

    ModelConfig config_;
    std::string path_;
    std::shared_ptr<const void> keep_alive_;  // the mapping the biases may point into
    NetworkDesc desc_;
    std::vector<Built> built_;
    std::vector<size_t> outputs_;
};

namespace detail::faceapi {

/// Appends units to a description and returns their indices: the vocabulary the three
/// networks' files are written in.
struct Builder {
    NetworkDesc d;
    int add(UnitDesc u) {
        d.units.push_back(std::move(u));
        return int(d.units.size()) - 1;
    }
    static UnitDesc unit(std::string name, UnitKind kind, int input) {
        UnitDesc u;
        u.name = std::move(name), u.kind = kind, u.input = input, u.layout = FilterLayout::kTensorFlow;
        u.role = kind == UnitKind::MaxPool || kind == UnitKind::AvgPool ? UnitRole::Pool : UnitRole::Layer;
        return u;
    }
    /// k x k conv + bias (tensors P/filters, P/bias), TF "same" or symmetric padding `pad`.
    int conv(const std::string& p, int input, int ci, int co, int k, int stride, bool same, int pad = 0) {
        UnitDesc u = unit(p, UnitKind::Conv, input);
        u.weight = p, u.in_channels = ci, u.out_channels = co, u.kernel = k, u.stride = stride, u.same = same, u.padding = pad;
        return add(u);
    }
    /// depthwise k x k + pointwise 1x1 + bias (P/depthwise_filter, P/pointwise_filter, P/bias).
    int sep(const std::string& p, int input, int ci, int co, int stride, bool same, int pad = 0) {
        UnitDesc u = unit(p, UnitKind::SeparableConv, input);
        u.weight = p, u.in_channels = ci, u.out_channels = co, u.kernel = 3, u.stride = stride, u.same = same, u.padding = pad;
        return add(u);
    }
    int relu(const std::string& name, int input, int channels) {
        UnitDesc u = unit(name, UnitKind::Relu, input);
        u.in_channels = u.out_channels = channels;
        return add(u);
    }
    int maxpool_same(const std::string& name, int input, int k, int stride) {
        UnitDesc u = unit(name, UnitKind::MaxPool, input);
        u.kernel = k, u.stride = stride, u.same = true;
        return add(u);
    }
    int avgpool_valid(const std::string& name, int input, int k, int stride) {
        UnitDesc u = unit(name, UnitKind::AvgPool, input);
        u.kernel = k, u.stride = stride;
        return add(u);
    }
    /// fully connected F -> out (P/weights [F, out], P/bias).
    int dense(const std::string& p, int input, int features, int out) {
        UnitDesc u = unit(p, UnitKind::Dense, input);
        u.weight = p, u.in_channels = features, u.out_channels = out;
        return add(u);
    }
    UnitDesc& operator[](int i) { return d.units[size_t(i)]; }
};

}  // namespace detail::faceapi

}  // namespace softbio
