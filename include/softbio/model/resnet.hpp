// softbio/model/resnet.hpp — a whole ResNet: stem, four stages of residual blocks,
// pooling, flatten, one or more heads; and the Workspace a forward pass runs in.
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
//
// Ownership: a ResNet holds only read-only weights (packed conv filters, folded BN
// constants, head matrices mapped from the file) and is never modified by forward(),
// so one loaded model serves any number of threads. Everything a forward pass writes
// lives in a Workspace (activations, conv scratch, logits), planned once for a
// maximum batch size: forward() never allocates.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/core/threading.hpp"
#include "softbio/io/model_file.hpp"
#include "softbio/layers/linear.hpp"
#include "softbio/layers/pooling.hpp"
#include "softbio/model/heads.hpp"
#include "softbio/model/residual_block.hpp"

namespace softbio {

/// Options for building a model from a weight file.
struct LoadOptions {
    /// Fold each BatchNorm into the conv before it (fast). false = run BN as its own
    /// layer, exactly PyTorch's graph (for study and debugging).
    bool fold_batchnorm = true;
};

/// Reported to a LayerObserver after each layer when one is passed to forward().
struct LayerEvent {
    const std::string& name;  // "conv1", "maxpool", "layer3.4.conv2", "layer3.4", "layer3", "pool", "features", "head.age"
    const char* kind;         // "conv" (conv+BN[+add]+ReLU), "pool", "block", "stage", "flatten", "head"
    ConstTensorView output;   // NHWC; features and logits are [N, 1, 1, F]
    double macs;              // multiply-accumulates of this layer (0 for "block"/"stage": counted by their convs)
    double seconds;           // wall time of this layer
};
using LayerObserver = std::function<void(const LayerEvent&)>;

template <class Backend>
class ResNet;

/// Per-call working memory of a ResNet forward pass (one per concurrent caller).
template <class Backend>
class Workspace {
public:
    int max_batch() const { return max_batch_; }
    int threads() const { return threads_; }
    int input_h() const { return in_h_; }
    int input_w() const { return in_w_; }
    /// A buffer for a batch of inputs, NHWC [max_batch, H, W, C], for callers to fill.
    float* input() { return input_.data(); }
    /// Logits of head `i` from the last forward(), [batch, logits].
    const float* logits(size_t i) const { return logits_.data() + logit_offset_[i]; }
    /// Pooled, flattened features from the last forward(), [batch, F].
    const float* features() const { return features_.data(); }

private:
    friend class ResNet<Backend>;
    int max_batch_ = 0, threads_ = 1, in_h_ = 0, in_w_ = 0;
    typename Backend::Buffer input_, act_[2], mid_[2], shortcut_, pooled_, features_, logits_, head_tmp_, scratch_;
    std::vector<size_t> logit_offset_;
    std::vector<float> host_logits_;  // decode()'s host copy of one head's logits
};

template <class Backend>
class ResNet {
public:
    using WorkspaceType = Workspace<Backend>;

    /// Build from a validated model file. Throws ModelFileError; on failure nothing
    /// is returned, so no half-built model can exist.
    static std::shared_ptr<const ResNet> load(const std::string& path, const LoadOptions& opt = {}) {
        return std::shared_ptr<const ResNet>(new ResNet(open_model_file(path), opt));
    }
    ResNet(ModelFile file, const LoadOptions& opt) : file_(std::move(file)), options_(opt) { build(); }

    const ModelConfig& config() const { return file_.config(); }
    const ArchConfig& arch() const { return file_.config().arch; }
    const std::string& path() const { return file_.path(); }
    const std::vector<ResidualBlock<Backend>>& blocks() const { return blocks_; }
    const std::vector<Head<Backend>>& heads() const { return heads_; }
    int feature_width() const { return int(arch().feature_width()); }
    /// Learned parameters (conv + BN + heads), as in PyTorch's count.
    long long parameter_count() const { return params_; }

    /// Plan the working memory for up to `max_batch` images of size (h, w) (default:
    /// the model's input size) with `threads` threads (default: set_num_threads()).
    std::unique_ptr<WorkspaceType> make_workspace(int max_batch, int h = 0, int w = 0, int threads = 0) const {
        if (max_batch < 1) throw ShapeError("make_workspace: max_batch must be >= 1, got " + std::to_string(max_batch));
        auto ws = std::make_unique<WorkspaceType>();
        ws->max_batch_ = max_batch;
        ws->threads_ = threads > 0 ? threads : num_threads();
        ws->in_h_ = h > 0 ? h : arch().input_h;
        ws->in_w_ = w > 0 ? w : arch().input_w;
        Plan plan = plan_shapes({max_batch, ws->in_h_, ws->in_w_, arch().in_channels}, ws->threads_);
        if (plan.features != feature_width())
            throw ShapeError(path() + ": input " + std::to_string(ws->in_h_) + "x" + std::to_string(ws->in_w_) +
                             " gives " + std::to_string(plan.features) + " features, but the heads expect " +
                             std::to_string(feature_width()) + " (the model was built for " +
                             std::to_string(arch().input_h) + "x" + std::to_string(arch().input_w) + ")");
        ws->input_ = typename Backend::Buffer(plan.input);
        for (auto& b : ws->act_) b = typename Backend::Buffer(plan.act);
        for (auto& b : ws->mid_) b = typename Backend::Buffer(plan.mid);
        ws->shortcut_ = typename Backend::Buffer(std::max<size_t>(plan.shortcut, 1));
        ws->pooled_ = typename Backend::Buffer(plan.pooled);
        ws->features_ = typename Backend::Buffer(size_t(max_batch) * plan.features);
        size_t total = 0;
        for (const auto& h : heads_) {
            ws->logit_offset_.push_back(total);
            total += align_floats(size_t(max_batch) * h.logits());
        }
        ws->logits_ = typename Backend::Buffer(total);
        ws->head_tmp_ = typename Backend::Buffer(size_t(max_batch));
        ws->scratch_ = typename Backend::Buffer(std::max<size_t>(plan.scratch, 1));
        return ws;
    }

    /// Run the network on `batch` images, NHWC [batch, H, W, C] at `input` (may be
    /// ws.input()). Results: ws.logits(i), or decode() them. Never allocates; the model
    /// is not modified. `observer` (optional) sees every layer's output and time.
    void forward(const float* input, int batch, WorkspaceType& ws, const LayerObserver* observer = nullptr) const {
        if (batch < 1 || batch > ws.max_batch_)
            throw ShapeError("forward: batch " + std::to_string(batch) + " outside 1.." + std::to_string(ws.max_batch_) +
                             " (the workspace's max_batch)");
        LayerContext ctx{ws.scratch_.data(), ws.scratch_.size(), ws.threads_};
        using Clock = std::chrono::steady_clock;
        auto t0 = Clock::now();
        auto report = [&](const std::string& name, const char* kind, ConstTensorView out, double macs) {
            if (!observer) return;
            const auto t1 = Clock::now();
            (*observer)(LayerEvent{name, kind, out, macs, std::chrono::duration<double>(t1 - t0).count()});
            t0 = Clock::now();
        };

        // Stem.
        ConstTensorView x{input, {batch, ws.in_h_, ws.in_w_, arch().in_channels}};
        TensorView stem{ws.act_[0].data(), stem_.output_shape(x.shape)};
        stem_.forward(x, stem, nullptr, /*relu=*/true, ctx);
        report(names_.conv1, "conv", stem, stem_.macs(x.shape));
        TensorView pooled{ws.act_[1].data(), maxpool_.output_shape(stem.shape)};
        maxpool_.forward(stem, pooled, ctx);
        report(names_.maxpool, "pool", pooled, 0);

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
            if (b + 1 == stage_end_[0] || b + 1 == stage_end_[1] || b + 1 == stage_end_[2] || b + 1 == stage_end_[3]) {
                const int s = b + 1 == stage_end_[0] ? 0 : b + 1 == stage_end_[1] ? 1 : b + 1 == stage_end_[2] ? 2 : 3;
                report(names_.stage[s], "stage", cur, 0);
            }
        }

        // Pool + flatten -> features [N, F].
        TensorView features{ws.features_.data(), {batch, 1, 1, feature_width()}};
        if (arch().pool.type == PoolConfig::Type::AdaptiveAvg) {
            global_pool_.forward(cur, features, ctx);
            report(names_.pool, "pool", features, 0);
        } else {
            TensorView p{ws.pooled_.data(), avgpool_.output_shape(cur.shape)};
            avgpool_.forward(cur, p, ctx);
            report(names_.pool, "pool", p, 0);
            flatten_.forward(p, features, ctx);
        }
        report(names_.features, "flatten", features, 0);

        for (size_t i = 0; i < heads_.size(); ++i) {
            float* z = ws.logits_.data() + ws.logit_offset_[i];
            heads_[i].forward(features.data, batch, z, ws.head_tmp_.data(), ctx);
            report(names_.heads[i], "head", ConstTensorView{z, {batch, 1, 1, heads_[i].logits()}}, heads_[i].macs(batch));
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
            Backend::download(ws.host_logits_.data(), ws.logits(i), size_t(batch) * k);
            for (int n = 0; n < batch; ++n)
                decode_head(heads_[i].config(), ws.host_logits_.data() + size_t(n) * k, out[size_t(n)][i]);
        }
    }

    /// Total multiply-accumulates of one forward pass at this input shape.
    double macs(Shape in) const {
        double total = stem_.macs(in);
        Shape s = maxpool_.output_shape(stem_.output_shape(in));
        for (const auto& b : blocks_) {
            total += b.macs(s);
            s = b.output_shape(s);
        }
        for (const auto& h : heads_) total += h.macs(in.n);
        return total;
    }

private:
    struct Plan {
        size_t input = 0, act = 0, mid = 0, shortcut = 0, pooled = 1, scratch = 0;
        int features = 0;
    };

    Plan plan_shapes(Shape in, int threads) const {
        Plan p;
        p.input = in.numel();
        Shape s = stem_.output_shape(in);
        p.act = s.numel();
        p.scratch = stem_.scratch_floats(in, threads);
        s = maxpool_.output_shape(s);
        p.act = std::max(p.act, s.numel());
        for (const auto& b : blocks_) {
            const auto shapes = b.unit_shapes(s);
            for (size_t i = 0; i + 1 < shapes.size(); ++i) p.mid = std::max(p.mid, shapes[i].numel());
            if (b.has_downsample()) p.shortcut = std::max(p.shortcut, b.downsample().output_shape(s).numel());
            p.scratch = std::max(p.scratch, b.scratch_floats(s, threads));
            s = shapes.back();
            p.act = std::max(p.act, s.numel());
        }
        if (arch().pool.type == PoolConfig::Type::AdaptiveAvg) {
            p.features = s.c;
        } else {
            const Shape pooled = avgpool_.output_shape(s);
            p.pooled = pooled.numel();
            p.features = pooled.h * pooled.w * pooled.c;
        }
        return p;
    }

    /// Turn the validated file into layers (the only place that knows tensor names).
    void build() {
        const ArchConfig& a = arch();
        const float eps = a.bn_eps;
        auto bn = [&](const std::string& n) {
            params_ += 2 * (long long)file_.tensor(n + ".weight").numel();
            return BatchNorm2d<Backend>(file_.tensor(n + ".weight"), file_.tensor(n + ".bias"),
                                        file_.tensor(n + ".running_mean"), file_.tensor(n + ".running_var"), eps);
        };
        auto conv_bn = [&](const std::string& conv, const std::string& norm, int ci, int co, int k, int stride) {
            typename Conv2d<Backend>::Options o;
            o.in_channels = ci;
            o.out_channels = co;
            o.kernel = k;
            o.stride = stride;
            o.padding = k / 2;
            params_ += (long long)file_.tensor(conv + ".weight").numel();
            return ConvBn<Backend>(o, file_.tensor(conv + ".weight"), bn(norm), options_.fold_batchnorm);
        };
        stem_ = conv_bn("conv1", "bn1", a.in_channels, a.base_width, 7, 2);
        maxpool_ = MaxPool2d<Backend>(3, 2, 1);
        int in_c = a.base_width;
        size_t count = 0;
        for (int s = 0; s < 4; ++s) {
            const int planes = a.planes(s), out_c = a.stage_channels(s);
            names_.stage[s] = "layer" + std::to_string(s + 1);
            for (int b = 0; b < a.layers[s]; ++b) {
                const int stride = (s > 0 && b == 0) ? 2 : 1;
                const std::string p = names_.stage[s] + "." + std::to_string(b);
                std::vector<ConvBn<Backend>> units;
                if (a.block == BlockType::Basic) {
                    units.push_back(conv_bn(p + ".conv1", p + ".bn1", in_c, planes, 3, stride));
                    units.push_back(conv_bn(p + ".conv2", p + ".bn2", planes, planes, 3, 1));
                } else {
                    const bool v1 = a.stride_in == StrideIn::Conv1;
                    units.push_back(conv_bn(p + ".conv1", p + ".bn1", in_c, planes, 1, v1 ? stride : 1));
                    units.push_back(conv_bn(p + ".conv2", p + ".bn2", planes, planes, 3, v1 ? 1 : stride));
                    units.push_back(conv_bn(p + ".conv3", p + ".bn3", planes, out_c, 1, 1));
                }
                const bool down = b == 0 && (stride != 1 || in_c != out_c);
                ConvBn<Backend> ds;
                if (down) ds = conv_bn(p + ".downsample.0", p + ".downsample.1", in_c, out_c, 1, stride);
                blocks_.emplace_back(p, std::move(units), down, std::move(ds));
                in_c = out_c;
            }
            count += size_t(a.layers[s]);
            stage_end_[s] = count;
        }
        if (a.pool.type == PoolConfig::Type::Avg) avgpool_ = AvgPool2d<Backend>(a.pool.kernel, a.pool.stride, a.pool.padding);
        const int f = feature_width();
        for (const auto& h : config().heads) {
            const TensorRef& w = file_.tensor("head." + h.name + ".weight");
            const TensorRef& b = file_.tensor("head." + h.name + ".bias");
            params_ += (long long)(w.numel() + b.numel());
            heads_.emplace_back(h, f, w.data, b.data);
            names_.heads.push_back("head." + h.name);
        }
    }

    ModelFile file_;  // keeps the mapping (zero-copy head weights) alive
    LoadOptions options_;
    long long params_ = 0;
    ConvBn<Backend> stem_;
    MaxPool2d<Backend> maxpool_;
    std::vector<ResidualBlock<Backend>> blocks_;
    size_t stage_end_[4] = {0, 0, 0, 0};
    AvgPool2d<Backend> avgpool_;
    AdaptiveAvgPool2d<Backend> global_pool_;
    Flatten<Backend> flatten_;
    std::vector<Head<Backend>> heads_;
    struct Names {
        std::string conv1 = "conv1", maxpool = "maxpool", pool = "pool", features = "features";
        std::string stage[4];
        std::vector<std::string> heads;
    } names_;
};

}  // namespace softbio
