// softbio/model/heads.hpp — output heads: a linear map of the pooled features, then a
// decoding rule that turns logits into a label.
//
// softmax  (gender, cross-entropy age):  p = softmax(z), label = argmax p
// coral    (Cao, Mirjalili, Raschka 2020): one shared weight vector w and K-1 biases b_k,
//          z_k = w.x + b_k,  p_k = sigmoid(z_k) = P(y > k),  label = #{k : p_k > 0.5}
// corn     (Shi, Cao, Raschka): K-1 independent outputs, each the conditional
//          P(y > k | y > k-1) = sigmoid(z_k); P(y > k) = prod_{j<=k} sigmoid(z_j);
//          label = #{k : P(y > k) > 0.5}
// orcnn    (Niu et al. 2016): K-1 binary 2-way softmaxes over the logit pairs
//          (z_2k, z_2k+1); p_k = softmax(pair)[1]; label = #{k : p_k > 0.5}
// logits   raw outputs (e.g. torchvision's ImageNet fc); label = argmax z
// For the ordinal heads the value in years is label + label_offset (the dataset's
// youngest age: AFAD 15, MORPH-2 16, CACD 14, UTKFace 21).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "softbio/layers/linear.hpp"
#include "softbio/model/config.hpp"

namespace softbio {

/// What one head says about one image.
struct HeadOutput {
    std::string name;
    HeadType type = HeadType::Softmax;
    std::vector<float> logits;         // softmax/logits: C; coral/corn: K-1; orcnn: 2(K-1)
    std::vector<float> probabilities;  // softmax: class probabilities; ordinal: P(y > k), k = 0..K-2
    int label = 0;                     // class index, or rank 0..K-1
    std::string class_name;            // softmax/logits heads with named classes
    bool has_value = false;
    double value = 0;                  // label + label_offset (e.g. age in years)
    /// False when a logit is NaN or infinite (weights or input overflowed fp32): then
    /// label, probabilities and value mean nothing and must not be reported.
    bool finite = true;
    /// Probability of the chosen class (softmax heads), else 0.
    float confidence() const {
        return type == HeadType::Softmax && label < int(probabilities.size()) ? probabilities[size_t(label)] : 0.0f;
    }
};

inline float sigmoid(float z) { return float(1.0 / (1.0 + std::exp(-double(z)))); }

/// Decode one image's logits according to the head's rule (see the file comment).
inline void decode_head(const HeadConfig& h, const float* z, HeadOutput& out) {
    out.name = h.name;
    out.type = h.type;
    const int n = h.logits();
    out.logits.assign(z, z + n);
    out.finite = true;
    for (int i = 0; i < n; ++i) out.finite = out.finite && std::isfinite(z[i]);
    out.probabilities.clear();
    out.class_name.clear();
    switch (h.type) {
        case HeadType::Softmax:
        case HeadType::Logits: {
            int best = 0;
            for (int i = 1; i < n; ++i)
                if (z[i] > z[best]) best = i;  // first maximum, like torch.argmax
            out.label = best;
            if (h.type == HeadType::Softmax) {
                double sum = 0;
                for (int i = 0; i < n; ++i) sum += std::exp(double(z[i]) - double(z[best]));
                for (int i = 0; i < n; ++i) out.probabilities.push_back(float(std::exp(double(z[i]) - double(z[best])) / sum));
            }
            if (best < int(h.classes.size())) out.class_name = h.classes[size_t(best)];
            break;
        }
        case HeadType::Coral:
            for (int k = 0; k < n; ++k) out.probabilities.push_back(sigmoid(z[k]));
            break;
        case HeadType::Corn: {
            float cumulative = 1.0f;
            for (int k = 0; k < n; ++k) out.probabilities.push_back(cumulative *= sigmoid(z[k]));
            break;
        }
        case HeadType::OrCnn:
            for (int k = 0; k + 1 < n; k += 2) out.probabilities.push_back(sigmoid(z[k + 1] - z[k]));  // 2-way softmax
            break;
    }
    if (h.ordinal()) {
        out.label = 0;
        for (float p : out.probabilities) out.label += p > 0.5f ? 1 : 0;  // strict, as in the papers' code
    }
    out.has_value = h.has_offset || h.ordinal();
    out.value = out.label + h.label_offset;
}

/// A head's parameters and forward: logits = features W^T + b.
template <class Backend>
class Head {
public:
    Head() = default;
    /// weight [outputs, F] and bias [logits] in host memory (the mapped file), which
    /// must outlive the head; the CPU backend reads them in place (zero-copy).
    Head(HeadConfig cfg, int features, const float* weight, const float* bias) : cfg_(std::move(cfg)) {
        const float* w = Backend::use_weights(weight, size_t(cfg_.outputs()) * features, weight_);
        const float* b = Backend::use_weights(bias, size_t(cfg_.logits()), bias_);
        fc_ = Linear<Backend>(features, cfg_.outputs(), w, cfg_.type == HeadType::Coral ? nullptr : b);
        coral_bias_ = cfg_.type == HeadType::Coral ? b : nullptr;
    }

    const HeadConfig& config() const { return cfg_; }
    int logits() const { return cfg_.logits(); }
    double macs(int batch) const { return fc_.macs(batch); }

    /// features [N, F] -> logits [N, logits()]. `tmp` holds N floats (CORAL's g(x)).
    void forward(const float* features, int batch, float* logits, float* tmp, const LayerContext<Backend>& ctx) const {
        if (cfg_.type != HeadType::Coral) {
            fc_.forward(features, batch, logits, ctx);
            return;
        }
        // CORAL: one shared score g(x) = w.x, then K-1 thresholds: z_k = g(x) + b_k.
        fc_.forward(features, batch, tmp, ctx);
        Backend::coral_logits(batch, cfg_.num_classes - 1, tmp, coral_bias_, logits, ctx.backend);
    }

private:
    HeadConfig cfg_;
    typename Backend::Buffer weight_, bias_;
    Linear<Backend> fc_;
    const float* coral_bias_ = nullptr;
};

}  // namespace softbio
