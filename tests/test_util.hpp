// tests/test_util.hpp — helpers shared by the C++ tests: deterministic random data and
// the one tolerance rule used to compare a fast kernel with its reference.
//
// TOLERANCE RULE (all kernel and layer tests). A fast kernel and its reference compute
// the same sum of K products in a different order (and the reference in double). The
// rounding error of an fp32 sum of K terms is bounded in practice by
//     |fast - exact| <= c * u * sqrt(K) * S,    S = sum_i |a_i * b_i|,  u = 2^-24
// (random-walk accumulation of the per-add error u|partial sum|). We take c = 8 and get
// S per output by running the reference on |a| and |b|. A bug — a wrong tap, a
// misplaced channel, a missing term — moves an output by about one |a_i b_i| ~ S/K,
// which is far above this bound for every K used here, so the tests can fail.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <softbio/model/synthetic.hpp>

namespace test {

/// Uniform values in [-1, 1), deterministic.
inline std::vector<float> random_vector(size_t n, uint64_t seed) {
    softbio::SplitMix64 rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = float(rng.uniform() * 2 - 1);
    return v;
}

inline std::vector<float> abs_of(const std::vector<float>& v) {
    std::vector<float> a(v.size());
    for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
    return a;
}

/// Check fast against reference under the rule above. Reports the first violation.
inline void check_close(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<float>& abs_sum,
                        double k, const std::string& what) {
    REQUIRE(fast.size() == ref.size());
    const double u = std::ldexp(1.0, -24);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < fast.size(); ++i) {
        const double tol = 8 * u * std::sqrt(std::max(1.0, k)) * abs_sum[i] + 1e-30;
        if (!(std::fabs(double(fast[i]) - double(ref[i])) <= tol)) {
            if (!bad) first = i;
            ++bad;
        }
    }
    INFO(what << ": " << bad << " of " << fast.size() << " outputs outside tolerance; first at " << first
              << " fast=" << (bad ? fast[first] : 0) << " ref=" << (bad ? ref[first] : 0));
    CHECK(bad == 0);
}

}  // namespace test

namespace test {

/// A model configuration for tests: the given block type, block counts, input size
/// and pool, with a softmax "gender" head and a CORAL "age" head (K = 26, offset 15).
inline softbio::ModelConfig make_config(softbio::BlockType block, std::array<int, 4> layers, int input,
                                        bool raschka_pool, softbio::StrideIn stride_in = softbio::StrideIn::Conv2) {
    softbio::ModelConfig cfg;
    cfg.arch.block = block;
    cfg.arch.layers = layers;
    cfg.arch.stride_in = block == softbio::BlockType::Basic ? softbio::StrideIn::Conv1 : stride_in;
    cfg.arch.input_h = cfg.arch.input_w = input;
    if (raschka_pool) {
        cfg.arch.pool.type = softbio::PoolConfig::Type::Avg;
        cfg.arch.pool.kernel = 7, cfg.arch.pool.stride = 1, cfg.arch.pool.padding = 2;
    }
    softbio::HeadConfig g;
    g.name = "gender", g.type = softbio::HeadType::Softmax, g.classes = {"female", "male"}, g.num_classes = 2;
    softbio::HeadConfig a;
    a.name = "age", a.type = softbio::HeadType::Coral, a.num_classes = 26, a.has_offset = true, a.label_offset = 15;
    cfg.heads = {g, a};
    cfg.preprocess = {{"steps", {{{"op", "resize"}, {"size", {input, input}}, {"filter", "bilinear"}}, {{"op", "to_tensor"}}}}};
    cfg.trained = false;
    return cfg;
}

/// A unique temporary file path for this test process.
inline std::string temp_path(const std::string& name) {
    return "/tmp/softbio_test_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace test
