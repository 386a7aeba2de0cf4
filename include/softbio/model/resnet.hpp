// softbio/model/resnet.hpp — a whole ResNet: its description (describe_resnet, the one
// place that knows its topology and tensor names), the layers built from it, and its
// forward pass; and the Workspace a forward pass runs in.
//
//   input [N, H, W, 3]
//   stem:    conv 7x7/2 (64) -> BN -> ReLU -> maxpool 3x3/2 pad 1       (H/4)
//   layer1:  blocks at 1x,  64 planes                                     (H/4)
//   layer2:  blocks at /2, 128 planes (first block strides)               (H/8)
//   layer3:  blocks at /2, 256 planes                                     (H/16)
//   layer4:  blocks at /2, 512 planes                                     (H/32)
//   pool:    AdaptiveAvgPool2d(1) (torchvision) or AvgPool2d(k, s, p) (Raschka: 7,1,2)
//   flatten: NCHW order (c*H*W + h*W + w), F features
//   heads:   each a Linear(F, .) + decoding rule (heads.hpp), sharing the backbone
// The blocks (residual_block.hpp) are BasicBlock (18/34) or Bottleneck (50/101/152);
// the depths are the table in config.hpp; docs/MODELS.md has the published variants.
//
// Ownership: a ResNet holds only read-only weights (packed conv filters, folded BN
// constants, head matrices mapped from the file) and is never modified by forward(),
// so one loaded model serves any number of threads. Everything a forward pass writes
// lives in a Workspace (activations, conv scratch, logits, the backend context),
// planned once for a maximum batch size: forward() never allocates.
//
// Loading from a file is io/load.hpp's job (softbio::load_model); this file only
// needs a WeightSource.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/limits.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/core/threading.hpp"
#include "softbio/layers/linear.hpp"
#include "softbio/layers/pooling.hpp"
#include "softbio/model/heads.hpp"
#include "softbio/model/network.hpp"
#include "softbio/model/residual_block.hpp"

namespace softbio {

/// The units of a ResNet with this configuration (see the file comment). Throws
/// ShapeError when the input size is too small for the network and its pooling.
inline NetworkDesc describe_resnet(const ModelConfig& cfg) {
    const ArchConfig& a = cfg.arch;
    NetworkDesc d;
    d.heads = cfg.heads;
    auto add = [&](UnitDesc u) {
        d.units.push_back(std::move(u));
        return int(d.units.size()) - 1;
    };
    auto conv = [](std::string name, UnitRole role, int input, int ci, int co, int k, int stride, std::string weight,
                   std::string norm) {
        UnitDesc u;
        u.name = std::move(name), u.kind = UnitKind::ConvBn, u.role = role, u.input = input;
        u.relu = role != UnitRole::Shortcut;
        u.in_channels = ci, u.out_channels = co, u.kernel = k, u.stride = stride, u.padding = k / 2;
        u.weight = std::move(weight), u.norm = std::move(norm);
        return u;
    };
    int prev = add(conv("conv1", UnitRole::Stem, kNetworkInput, a.in_channels, a.base_width, 7, 2, "conv1", "bn1"));
    UnitDesc maxpool;
    maxpool.name = "maxpool", maxpool.kind = UnitKind::MaxPool, maxpool.role = UnitRole::Pool, maxpool.input = prev;
    maxpool.kernel = 3, maxpool.stride = 2, maxpool.padding = 1;
    prev = add(maxpool);

    int in_c = a.base_width;
    for (int s = 0; s < 4; ++s) {
        const int planes = a.planes(s), out_c = a.stage_channels(s);
        for (int b = 0; b < a.layers[s]; ++b) {
            const int stride = (s > 0 && b == 0) ? 2 : 1;
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
            const int block_input = prev;
            // The branch: (ky x kx, stride) of each conv; the stride sits on conv1 in a
            // basic block and in a v1 bottleneck, on conv2 (the 3x3) in v1.5.
            struct Step { int k, co, stride; };
            std::vector<Step> steps;
            if (a.block == BlockType::Basic) {
                steps = {{3, planes, stride}, {3, planes, 1}};
            } else {
                const bool v1 = a.stride_in == StrideIn::Conv1;
                steps = {{1, planes, v1 ? stride : 1}, {3, planes, v1 ? 1 : stride}, {1, out_c, 1}};
            }
            // PyTorch's order: the branch convs, then the downsample (tensor order too).
            int x = block_input, ci = in_c;
            for (size_t i = 0; i < steps.size(); ++i) {
                const bool last = i + 1 == steps.size();
                const std::string n = std::to_string(i + 1);
                x = add(conv(p + ".conv" + n, last ? UnitRole::BranchLast : UnitRole::Branch, x, ci, steps[i].co,
                             steps[i].k, steps[i].stride, p + ".conv" + n, p + ".bn" + n));
                ci = steps[i].co;
            }
            d.units[size_t(x)].add = block_input;  // identity shortcut
            if (b == 0 && (stride != 1 || in_c != out_c))
                d.units[size_t(x)].add = add(conv(p + ".downsample", UnitRole::Shortcut, block_input, in_c, out_c, 1,
                                                  stride, p + ".downsample.0", p + ".downsample.1"));
            prev = x;
            in_c = out_c;
        }
    }

    UnitDesc pool;
    pool.name = "pool", pool.role = UnitRole::Pool, pool.input = prev;
    if (a.pool.type == PoolConfig::Type::AdaptiveAvg) {
        pool.kind = UnitKind::GlobalAvgPool;
    } else {
        pool.kind = UnitKind::AvgPool;
        pool.kernel = a.pool.kernel, pool.stride = a.pool.stride, pool.padding = a.pool.padding;
    }
    prev = add(pool);
    UnitDesc flatten;
    flatten.name = "features", flatten.kind = UnitKind::Flatten, flatten.role = UnitRole::Flatten, flatten.input = prev;
    prev = add(flatten);

    const int features = d.shapes(Shape{1, a.input_h, a.input_w, a.in_channels}).back().c;
    for (size_t i = 0; i < cfg.heads.size(); ++i) {
        UnitDesc h;
        h.name = h.weight = "head." + cfg.heads[i].name;
        h.kind = UnitKind::Head, h.role = UnitRole::Head, h.input = prev, h.head = int(i);
        h.in_channels = features, h.out_channels = cfg.heads[i].outputs();
        add(h);
    }
    return d;
}

template <class Backend>
class ResNet;

namespace detail {
/// A backend context with a `precision` member (CudaContext) computes the convolutions in
/// the model's LoadOptions::precision; other contexts (CpuContext: fp32 only) are left as
/// they are (the loader refuses what the backend cannot run: io/load.hpp).
template <class C, class = void>
struct context_has_precision : std::false_type {};
template <class C>
struct context_has_precision<C, std::void_t<decltype(std::declval<C&>().precision = Precision::Fp32)>> : std::true_type {};
template <class C>
void set_context_precision(C& ctx, Precision p) {
    if constexpr (context_has_precision<C>::value) ctx.precision = p;
    else (void)ctx, (void)p;
}
}  // namespace detail

/// Per-call working memory of a ResNet forward pass (one per concurrent caller).
template <class Backend>
class Workspace {
public:
    int max_batch() const { return max_batch_; }
    int input_h() const { return in_h_; }
    int input_w() const { return in_w_; }
    /// The backend context every kernel of this workspace's forward passes runs with
    /// (CPU: thread count; CUDA: stream and device facts). Set at make_workspace().
    const typename Backend::Context& context() const { return ctx_; }
    typename Backend::Context& context() { return ctx_; }
    /// A buffer for a batch of inputs, NHWC [max_batch, H, W, C], for callers to fill.
    float* input() { return input_.data(); }
    /// Logits of head `i` from the last forward(), [batch, logits].
    const float* logits(size_t i) const { return logits_.data() + logit_offset_[i]; }
    /// Pooled, flattened features from the last forward(), [batch, F].
    const float* features() const { return features_.data(); }

private:
    friend class ResNet<Backend>;
    int max_batch_ = 0, in_h_ = 0, in_w_ = 0;
    typename Backend::Context ctx_{};
    typename Backend::Buffer input_, act_[2], mid_[2], shortcut_, pooled_, features_, logits_, head_tmp_, scratch_;
    std::vector<size_t> logit_offset_;
    std::vector<float> host_logits_;  // decode()'s host copy of one head's logits
};

template <class Backend>
class ResNet {
public:
    using WorkspaceType = Workspace<Backend>;
    static constexpr const char* family = "resnet";

    /// Build from a configuration and its weights (validated by the loader). `keep_alive`
    /// owns what the weights point into (the mapped file: head weights are read in
    /// place on the CPU). Throws ModelFileError; no half-built model can exist.
    ResNet(const ModelConfig& cfg, const WeightSource& weights, const LoadOptions& opt, std::string path = {},
           std::shared_ptr<const void> keep_alive = {})
        : config_(cfg), path_(std::move(path)), keep_alive_(std::move(keep_alive)), options_(opt),
          desc_(describe_resnet(cfg)) {
        try {
            build(weights);
        } catch (const std::bad_alloc&) {
            throw Error(path_ + ": out of memory while building the network's layers (packed weights: about " +
                        std::to_string(desc_.parameter_count() * 4 >> 20) + " MiB)");
        }
    }

    const ModelConfig& config() const { return config_; }
    const ArchConfig& arch() const { return config_.arch; }
    /// The options the model was built with (LoadOptions::precision reaches the backend
    /// context of every workspace it makes).
    const LoadOptions& options() const { return options_; }
    /// The file the model was loaded from ("" when built from memory).
    const std::string& path() const { return path_; }
    /// The network's units (names, shapes, roles): model/network.hpp.
    const NetworkDesc& description() const { return desc_; }
    const std::vector<ResidualBlock<Backend>>& blocks() const { return blocks_; }
    const std::vector<Head<Backend>>& heads() const { return heads_; }
    int feature_width() const { return feature_width_; }
    /// Learned parameters (conv + BN + heads), as in PyTorch's count.
    long long parameter_count() const { return desc_.parameter_count(); }
    /// Total multiply-accumulates of one forward pass at this input shape.
    double macs(Shape in) const { return desc_.macs(in); }

    /// Plan the working memory for up to `max_batch` images of size (h, w) (default:
    /// the model's input size) with `threads` CPU threads (default: set_num_threads();
    /// the CUDA backend ignores it).
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int h = 0, int w = 0, int threads = 0) const {
        if (max_batch < 1) throw ShapeError("make_workspace: max_batch must be >= 1, got " + std::to_string(max_batch));
        const int nthreads = threads > 0 ? threads : num_threads();
        if (nthreads > kMaxThreads)
            throw Error("make_workspace: " + std::to_string(nthreads) + " threads asked for, at most " +
                        std::to_string(kMaxThreads) + " are supported");
        auto ws = std::make_unique<WorkspaceType>();
        ws->max_batch_ = max_batch;
        ws->ctx_ = Backend::make_context(nthreads);
        detail::set_context_precision(ws->ctx_, options_.precision);  // before the conv plans: they depend on it
        ws->in_h_ = h > 0 ? h : arch().input_h;
        ws->in_w_ = w > 0 ? w : arch().input_w;
        const Shape in{max_batch, ws->in_h_, ws->in_w_, arch().in_channels};
        const std::vector<Shape> shapes = desc_.shapes(in);
        size_t act = 0, mid = 0, shortcut = 1, pooled = 1, scratch = 1;
        for (size_t i = 0; i < desc_.units.size(); ++i) {
            const UnitDesc& u = desc_.units[i];
            const Shape& s = shapes[i];
            const Shape u_in = u.input == kNetworkInput ? in : shapes[size_t(u.input)];
            if (u.kind == UnitKind::ConvBn)
                scratch = std::max(scratch, Backend::conv2d_workspace_floats(NetworkDesc::conv_params(u, u_in), ws->ctx_));
            switch (u.role) {
                case UnitRole::Stem: case UnitRole::BranchLast: act = std::max(act, s.numel()); break;
                case UnitRole::Branch: mid = std::max(mid, s.numel()); break;
                case UnitRole::Shortcut: shortcut = std::max(shortcut, s.numel()); break;
                case UnitRole::Pool:
                    if (u.kind == UnitKind::MaxPool) act = std::max(act, s.numel());
                    else pooled = std::max(pooled, s.numel());
                    break;
                default: break;
            }
        }
        const int features = shapes[size_t(flatten_unit_)].c;
        if (features != feature_width())
            throw ShapeError(path() + ": input " + std::to_string(ws->in_h_) + "x" + std::to_string(ws->in_w_) +
                             " gives " + std::to_string(features) + " features, but the heads expect " +
                             std::to_string(feature_width()) + " (the model was built for " +
                             std::to_string(arch().input_h) + "x" + std::to_string(arch().input_w) + ")");
        size_t logits = 0;
        for (const auto& head : heads_) {
            ws->logit_offset_.push_back(logits);
            logits += align_floats(size_t(max_batch) * head.logits());
        }
        // Check the whole plan against the limit before allocating any of it.
        const size_t floats = in.numel() + 2 * act + 2 * std::max<size_t>(mid, 1) + shortcut + pooled +
                              size_t(max_batch) * features + logits + size_t(max_batch) + scratch;
        const double mib = double(floats) * sizeof(float) / (1 << 20);
        const std::string plan = "workspace for batch " + std::to_string(max_batch) + " at " + std::to_string(in.h) +
                                 "x" + std::to_string(in.w) + " with " + std::to_string(nthreads) + " threads";
        if (floats > workspace_limit() / sizeof(float))
            throw Error(path() + ": the " + plan + " needs " + std::to_string(int64_t(mib)) + " MiB, more than the limit of " +
                        std::to_string(workspace_limit() >> 20) + " MiB (softbio::set_workspace_limit; or use a smaller batch)");
        allocate_or_explain("the " + plan, size_t(mib) << 20, [&] {
            ws->input_ = typename Backend::Buffer(in.numel());
            for (auto& b : ws->act_) b = typename Backend::Buffer(act);
            for (auto& b : ws->mid_) b = typename Backend::Buffer(std::max<size_t>(mid, 1));
            ws->shortcut_ = typename Backend::Buffer(shortcut);
            ws->pooled_ = typename Backend::Buffer(pooled);
            ws->features_ = typename Backend::Buffer(size_t(max_batch) * features);
            ws->logits_ = typename Backend::Buffer(logits);
            ws->head_tmp_ = typename Backend::Buffer(size_t(max_batch));
            ws->scratch_ = typename Backend::Buffer(scratch);
            return 0;
        });
        return ws;
    }

    /// Run the network on `batch` images, NHWC [batch, H, W, C] at `input` (may be
    /// ws.input()). Results: ws.logits(i), or decode() them. Never allocates; the model
    /// is not modified. `observer` (optional) sees every layer's output and time.
    void forward(const float* input, int batch, WorkspaceType& ws, const LayerObserver* observer = nullptr) const {
        if (batch < 1 || batch > ws.max_batch_)
            throw ShapeError("forward: batch " + std::to_string(batch) + " outside 1.." + std::to_string(ws.max_batch_) +
                             " (the workspace's max_batch)");
        const LayerContext<Backend> ctx{ws.scratch_.data(), ws.scratch_.size(), ws.ctx_};
        using Clock = std::chrono::steady_clock;
        auto t0 = Clock::now();
        auto report = [&](const std::string& name, const char* kind, ConstTensorView out, double macs) {
            if (!observer) return;
            Backend::synchronize(ctx.backend);  // the layer's real time, on every backend
            const auto t1 = Clock::now();
            (*observer)(LayerEvent{name, kind, out, macs, std::chrono::duration<double>(t1 - t0).count(), &ws.ctx_,
                                   &download_for_observer});
            t0 = Clock::now();
        };

        // Stem.
        ConstTensorView x{input, {batch, ws.in_h_, ws.in_w_, arch().in_channels}};
        TensorView stem{ws.act_[0].data(), stem_.output_shape(x.shape)};
        stem_.forward(x, stem, nullptr, /*relu=*/true, ctx);
        report(desc_.units[0].name, "conv", stem, stem_.macs(x.shape));
        TensorView pooled{ws.act_[1].data(), maxpool_.output_shape(stem.shape)};
        maxpool_.forward(stem, pooled, ctx);
        report(desc_.units[1].name, "pool", pooled, 0);

        // Stages: blocks ping-pong between the two activation buffers.
        ConstTensorView cur = pooled;
        int which = 0;
        typename ResidualBlock<Backend>::Buffers buf{{{ws.mid_[0].data(), {}}, {ws.mid_[1].data(), {}}},
                                                     {ws.shortcut_.data(), {}}};
        const typename ResidualBlock<Backend>::UnitReport unit_report = [&](const std::string& name, ConstTensorView out,
                                                                            double macs) { report(name, "conv", out, macs); };
        for (size_t b = 0; b < blocks_.size(); ++b) {
            const TensorView out =
                blocks_[b].forward(cur, ws.act_[which].data(), buf, ctx, observer ? &unit_report : nullptr);
            report(blocks_[b].name(), "block", out, 0);
            cur = out;
            which ^= 1;
            if (b + 1 == blocks_.size() || stage_of_block_[b + 1] != stage_of_block_[b])
                report(stage_names_[size_t(stage_of_block_[b])], "stage", cur, 0);
        }

        // Pool + flatten -> features [N, F].
        const std::string& pool_name = desc_.units[size_t(flatten_unit_ - 1)].name;
        TensorView features{ws.features_.data(), {batch, 1, 1, feature_width()}};
        if (arch().pool.type == PoolConfig::Type::AdaptiveAvg) {
            global_pool_.forward(cur, features, ctx);
            report(pool_name, "pool", features, 0);
        } else {
            TensorView p{ws.pooled_.data(), avgpool_.output_shape(cur.shape)};
            avgpool_.forward(cur, p, ctx);
            report(pool_name, "pool", p, 0);
            flatten_.forward(p, features, ctx);
        }
        report(desc_.units[size_t(flatten_unit_)].name, "flatten", features, 0);

        for (size_t i = 0; i < heads_.size(); ++i) {
            float* z = ws.logits_.data() + ws.logit_offset_[i];
            heads_[i].forward(features.data, batch, z, ws.head_tmp_.data(), ctx);
            report(desc_.units[size_t(flatten_unit_) + 1 + i].name, "head",
                   ConstTensorView{z, {batch, 1, 1, heads_[i].logits()}}, heads_[i].macs(batch));
        }
    }

    /// Decode the last forward()'s logits: out[n][i] = head i's result for image n.
    /// Reuses `out`'s storage when it already has the right size.
    void decode(WorkspaceType& ws, int batch, std::vector<std::vector<HeadOutput>>& out) const {
        out.resize(size_t(batch));
        for (int n = 0; n < batch; ++n) out[size_t(n)].resize(heads_.size());
        for (size_t i = 0; i < heads_.size(); ++i) {
            const int k = heads_[i].logits();
            ws.host_logits_.resize(size_t(ws.max_batch_) * k);  // no-op after the first call
            Backend::download(ws.host_logits_.data(), ws.logits(i), size_t(batch) * k, ws.ctx_);
            for (int n = 0; n < batch; ++n)
                decode_head(heads_[i].config(), ws.host_logits_.data() + size_t(n) * k, out[size_t(n)][i]);
        }
    }

private:
    static void download_for_observer(const void* context, float* host, const float* src, size_t count) {
        Backend::download(host, src, count, *static_cast<const typename Backend::Context*>(context));
    }

    /// Turn the description into layers, taking each unit's weights from `weights`.
    void build(const WeightSource& weights) {
        const float eps = arch().bn_eps;
        auto conv_bn = [&](const UnitDesc& u) {
            const std::string& n = u.norm;
            const TensorRef& var = weights.tensor(n + ".running_var");
            for (size_t c = 0; c < var.numel(); ++c)
                if (!(var.data[c] >= 0))
                    throw ModelFileError(path_ + ": tensor " + n + ".running_var[" + std::to_string(c) + "] = " +
                                         number_string(var.data[c]) + " is negative: a variance never is (corrupt file?)");
            try {
                BatchNorm2d<Backend> bn(weights.tensor(n + kBatchNormSuffixes[0]), weights.tensor(n + kBatchNormSuffixes[1]),
                                        weights.tensor(n + kBatchNormSuffixes[2]), var, eps);
                const FilterStorageScope filters(options_.precision);  // the filter upload below: 16-bit for fp16 / bf16
                ConvBn<Backend> conv(NetworkDesc::conv_geometry(u), weights.tensor(u.weight + ".weight"), std::move(bn),
                                     options_.fold_batchnorm);
                weights.release(u.weight + ".weight");  // packed (or uploaded) now: the file's copy may leave memory
                return conv;
            } catch (const ModelFileError&) {
                throw;
            } catch (const Error& e) {  // constants that overflow fp32
                throw ModelFileError(path_ + ": " + u.name + " (" + u.weight + ", " + n + "): " + e.what());
            }
        };
        // A block is its branch units up to the BranchLast one, whose `add` names the
        // shortcut: the block's input (identity) or a Shortcut (downsample) unit.
        std::vector<ConvBn<Backend>> branch;
        std::vector<std::string> branch_names;
        for (size_t i = 0; i < desc_.units.size(); ++i) {
            const UnitDesc& u = desc_.units[i];
            switch (u.role) {
                case UnitRole::Stem: stem_ = conv_bn(u); break;
                case UnitRole::Shortcut: break;  // built with its block, below
                case UnitRole::Branch:
                case UnitRole::BranchLast:
                    branch.push_back(conv_bn(u));
                    branch_names.push_back(u.name);
                    if (u.role == UnitRole::BranchLast) {
                        const std::string block = u.name.substr(0, u.name.rfind('.'));  // "layer3.4"
                        const std::string stage = block.substr(0, block.find('.'));     // "layer3"
                        if (stage_names_.empty() || stage_names_.back() != stage) stage_names_.push_back(stage);
                        stage_of_block_.push_back(int(stage_names_.size()) - 1);
                        const UnitDesc& sc = desc_.units[size_t(u.add)];
                        const bool projected = sc.role == UnitRole::Shortcut;
                        blocks_.emplace_back(block, std::move(branch), std::move(branch_names), projected,
                                             projected ? conv_bn(sc) : ConvBn<Backend>(), projected ? sc.name : "");
                        branch.clear(), branch_names.clear();  // moved-from: make them empty
                    }
                    break;
                case UnitRole::Pool:
                    if (u.kind == UnitKind::MaxPool) maxpool_ = MaxPool2d<Backend>(u.kernel, u.stride, u.padding);
                    if (u.kind == UnitKind::AvgPool) avgpool_ = AvgPool2d<Backend>(u.kernel, u.stride, u.padding);
                    break;
                case UnitRole::Flatten:
                    flatten_unit_ = int(i);
                    break;
                case UnitRole::Head: {
                    const TensorRef& w = weights.tensor(u.weight + ".weight");
                    const TensorRef& b = weights.tensor(u.weight + ".bias");
                    heads_.emplace_back(config_.heads[size_t(u.head)], u.in_channels, w.data, b.data);
                    break;
                }
                case UnitRole::Layer: break;  // face-api's plain layers: describe_resnet makes none
            }
        }
        feature_width_ = desc_.shapes(Shape{1, arch().input_h, arch().input_w, arch().in_channels})[size_t(flatten_unit_)].c;
    }

    ModelConfig config_;
    std::string path_;
    std::shared_ptr<const void> keep_alive_;  // the mapping head weights point into
    LoadOptions options_;
    NetworkDesc desc_;
    ConvBn<Backend> stem_;
    MaxPool2d<Backend> maxpool_;
    std::vector<ResidualBlock<Backend>> blocks_;
    std::vector<int> stage_of_block_;
    std::vector<std::string> stage_names_;
    AvgPool2d<Backend> avgpool_;
    AdaptiveAvgPool2d<Backend> global_pool_;
    Flatten<Backend> flatten_;
    int flatten_unit_ = 0, feature_width_ = 0;
    std::vector<Head<Backend>> heads_;
};

}  // namespace softbio
