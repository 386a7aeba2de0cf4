// softbio/model/synthetic.hpp — write a model file with deterministic random weights.
//
// Used by the tests (build a ResNet-18/101 through the public API without PyTorch) and
// by the demo (no trained gender/age checkpoint is downloadable, so the demo runs an
// *untrained* flagship-shaped net; its file says `"trained": false` and every
// prediction made with it carries a banner).
//
// The weights follow the usual initialisation so that activations neither explode nor
// vanish through 100 layers: conv filters ~ N(0, 2/fan_in) (He et al. 2015), BN
// gamma ~ 1 +- 0.1, beta ~ +-0.1, running mean ~ +-0.1, running var ~ 1 +- 0.25; the
// last BN of every residual branch gets gamma scaled by `residual_gamma` so the sum of
// many blocks stays O(1). Random numbers come from a fixed 64-bit generator
// (SplitMix64) and Box-Muller, not <random>'s distributions, so the same seed gives the
// same file with every compiler and standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "softbio/io/model_file.hpp"
#include "softbio/io/safetensors.hpp"

namespace softbio {

/// SplitMix64: tiny, fast, fully specified — identical output on every platform.
class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// Uniform in (0, 1).
    double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    /// Standard normal (Box-Muller).
    double normal() {
        const double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

private:
    uint64_t state_;
};

struct SyntheticOptions {
    uint64_t seed = 1;
    float residual_gamma = 0.2f;  // scale of the last BN gamma in each residual branch
    float head_scale = 1.0f;      // std of head weights = head_scale / sqrt(F)
};

/// Write `cfg` with random weights to `path` (docs/FORMAT.md). Returns nothing; the
/// file is then loadable with Model::load.
inline void write_synthetic_model(const std::string& path, const ModelConfig& cfg, const SyntheticOptions& opt = {}) {
    SplitMix64 rng(opt.seed);
    const auto expected = expected_tensors(cfg);
    std::vector<std::vector<float>> storage;
    storage.reserve(expected.size());
    std::vector<TensorToWrite> tensors;
    auto ends_with = [](const std::string& s, const std::string& suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    const bool bottleneck = cfg.arch.block == BlockType::Bottleneck;
    for (const auto& e : expected) {
        size_t count = 1;
        for (int64_t d : e.shape) count *= size_t(d);
        std::vector<float> v(count);
        const std::string& n = e.name;
        if (e.shape.size() == 4) {  // conv: He normal
            const double std = std::sqrt(2.0 / double(e.shape[1] * e.shape[2] * e.shape[3]));
            for (auto& x : v) x = float(rng.normal() * std);
        } else if (n.rfind("head.", 0) == 0) {
            const double std = ends_with(n, ".weight") ? opt.head_scale / std::sqrt(double(e.shape[1])) : 0.5;
            for (auto& x : v) x = float(rng.normal() * std);
        } else if (ends_with(n, ".running_var")) {
            for (auto& x : v) x = float(1.0 + 0.25 * (rng.uniform() * 2 - 1));
        } else if (ends_with(n, ".running_mean") || ends_with(n, ".bias")) {
            for (auto& x : v) x = float(0.1 * (rng.uniform() * 2 - 1));
        } else {  // BN gamma
            const bool last_in_branch = ends_with(n, bottleneck ? ".bn3.weight" : ".bn2.weight") && n.rfind("layer", 0) == 0;
            const double g = last_in_branch ? opt.residual_gamma : 1.0;
            for (auto& x : v) x = float(g * (1.0 + 0.1 * (rng.uniform() * 2 - 1)));
        }
        storage.push_back(std::move(v));
        tensors.push_back({e.name, e.shape, storage.back().data()});
    }
    write_safetensors(path, tensors, {{"softbio", model_config_to_json(cfg)}});
}

}  // namespace softbio
