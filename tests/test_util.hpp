// tests/test_util.hpp — helpers shared by the C++ (doctest) tests: the tolerance rule of
// tests/tolerance.hpp as a doctest check, model configurations and temporary paths.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <softbio/io/synthetic.hpp>

#include "shape_grid.hpp"
#include "tolerance.hpp"

namespace test {

/// Check fast against reference under the rule above. Reports the first violation.
inline void check_close(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<float>& abs_sum,
                        double k, const std::string& what) {
    REQUIRE(fast.size() == ref.size());
    REQUIRE(abs_sum.size() == ref.size());
    const ToleranceReport r = compare_within_tolerance(fast.data(), ref.data(), abs_sum.data(), fast.size(), k);
    INFO(what << ": " << r.bad << " of " << fast.size() << " outputs outside tolerance; first at " << r.first
              << " fast=" << (r.bad ? fast[r.first] : 0) << " ref=" << (r.bad ? ref[r.first] : 0));
    CHECK(r.ok());
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
    cfg.preprocess = {{softbio::PreprocessStep::resize(input, input), softbio::PreprocessStep::to_tensor()}};
    cfg.trained = false;
    return cfg;
}

/// A unique temporary file path for this test process.
inline std::string temp_path(const std::string& name) {
    return "/tmp/softbio_test_" + std::to_string(::getpid()) + "_" + name;
}

}  // namespace test
