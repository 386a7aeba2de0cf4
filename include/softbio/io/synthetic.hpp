// softbio/io/synthetic.hpp — write a model file with deterministic random weights.
//
// Used by the tests (build a ResNet-18/101 through the public API without PyTorch) and
// by the demo (no trained gender/age checkpoint is downloadable, so the demo runs an
// *untrained* flagship-shaped net; its file says `"trained": false` and every
// prediction made with it carries a banner).
//
// The weights follow the usual initialisation so that activations neither explode nor
// vanish through 100 layers: conv filters ~ N(0, 2/fan_in) (He et al. 2015), BN
// gamma ~ 1 +- 0.1, beta ~ +-0.1, running mean ~ +-0.1, running var ~ 1 +- 0.25; the
// last BN of every residual branch (UnitRole::BranchLast in the network's description)
// gets gamma scaled by `residual_gamma` so the sum of many blocks stays O(1). Random
// numbers come from SplitMix64 (core/random.hpp) and Box-Muller, so the same seed gives
// the same file with every compiler and standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "softbio/core/random.hpp"
#include "softbio/io/metadata.hpp"
#include "softbio/io/safetensors.hpp"
#include "softbio/model/networks.hpp"

namespace softbio {

struct SyntheticOptions {
    uint64_t seed = 1;
    float residual_gamma = 0.2f;  // scale of the last BN gamma in each residual branch
    float head_scale = 1.0f;      // std of head weights = head_scale / sqrt(F)
};

/// Write `cfg` with random weights to `path` (docs/FORMAT.md). Returns nothing; the
/// file is then loadable with load_model().
inline void write_synthetic_model(const std::string& path, const ModelConfig& cfg, const SyntheticOptions& opt = {}) {
    SplitMix64 rng(opt.seed);
    const NetworkDesc desc = describe_network(cfg);
    const std::vector<TensorSpec> expected = desc.tensors();
    // The norm prefixes of the units that end a residual branch.
    std::set<std::string> branch_ends;
    for (const auto& u : desc.units)
        if (u.role == UnitRole::BranchLast) branch_ends.insert(u.norm + ".weight");
    std::vector<std::vector<float>> storage;
    storage.reserve(expected.size());
    std::vector<TensorToWrite> tensors;
    auto ends_with = [](const std::string& s, const std::string& suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    for (const auto& e : expected) {
        std::vector<float> v(e.numel());
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
            const double g = branch_ends.count(n) ? opt.residual_gamma : 1.0;
            for (auto& x : v) x = float(g * (1.0 + 0.1 * (rng.uniform() * 2 - 1)));
        }
        storage.push_back(std::move(v));
        tensors.push_back({e.name, e.shape, storage.back().data()});
    }
    write_safetensors(path, tensors, {{"softbio", model_config_to_json(cfg)}});
}

}  // namespace softbio
