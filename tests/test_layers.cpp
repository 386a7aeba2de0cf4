// tests/test_layers.cpp — each layer template on the CPU backend against the plain
// definition, and the head decoding rules against the published formulas.
// Tolerance: test_util.hpp's rule for anything that sums; exact where nothing is summed.
#include <doctest/doctest.h>

#include <softbio/softbio.hpp>

#include "test_util.hpp"

using namespace softbio;

namespace {
TensorRef ref(const std::vector<float>& v, std::vector<int64_t> shape) { return TensorRef{v.data(), std::move(shape)}; }
}  // namespace

TEST_CASE("layer: ConvBn folded and unfused = conv, then (x - mean)/sqrt(var + eps)*gamma + beta, residual, ReLU") {
    const int ci = 13, co = 24, k = 3;
    auto w = test::random_vector(size_t(co) * ci * k * k, 1);
    auto gamma = test::random_vector(co, 2), beta = test::random_vector(co, 3), mean = test::random_vector(co, 4);
    auto var = test::random_vector(co, 5);
    for (auto& v : var) v = v + 1.5f;  // positive
    const Conv2dParams o = Conv2dParams::geometry(ci, co, k, /*stride=*/2, /*pad=*/1);
    const Shape in_shape{3, 9, 11, ci};
    auto x = test::random_vector(in_shape.numel(), 6);
    softbio::Conv2dParams p;
    p.batch = 3, p.in_h = 9, p.in_w = 11, p.in_c = ci, p.out_c = co, p.kernel_h = p.kernel_w = k, p.stride = 2, p.pad = 1;
    const size_t out_n = p.gemm_m() * co;
    std::vector<float> conv(out_n), abs_conv(out_n);
    cpu::conv2d_reference(p, x.data(), w.data(), conv.data());
    cpu::conv2d_reference(p, test::abs_of(x).data(), test::abs_of(w).data(), abs_conv.data());
    auto residual = test::random_vector(out_n, 7);
    std::vector<float> expect(out_n), abs_sum(out_n);
    for (size_t i = 0; i < out_n; ++i) {
        const int c = int(i % co);
        const double s = gamma[c] / std::sqrt(double(var[c]) + 1e-5);
        const double y = (conv[i] - mean[c]) * s + beta[c] + residual[i];
        expect[i] = float(std::max(0.0, y));
        abs_sum[i] = float(abs_conv[i] * std::fabs(s) + std::fabs(mean[c] * s) + std::fabs(beta[c]) + std::fabs(residual[i]));
    }
    for (bool fold : {true, false}) {
        BatchNorm2d<CpuBackend> bn(ref(gamma, {co}), ref(beta, {co}), ref(mean, {co}), ref(var, {co}), 1e-5f);
        ConvBn<CpuBackend> layer(o, ref(w, {co, ci, k, k}), std::move(bn), fold);
        const Shape out_shape = layer.output_shape(in_shape);
        CHECK(out_shape == Shape{3, 5, 6, co});
        AlignedBuffer scratch(layer.scratch_floats(in_shape, CpuContext{2}));
        std::vector<float> out(out_shape.numel());
        layer.forward({x.data(), in_shape}, {out.data(), out_shape}, residual.data(), true,
                      LayerContext<CpuBackend>{scratch.data(), scratch.size(), CpuContext{2}});
        test::check_close(out, expect, abs_sum, ci * k * k, fold ? "folded ConvBn" : "unfused ConvBn");
    }
}

TEST_CASE("layer: pool layers compute PyTorch's output shapes and refuse windows larger than the input") {
    MaxPool2d<CpuBackend> mp(3, 2, 1);
    CHECK(mp.output_shape({1, 64, 64, 64}) == Shape{1, 32, 32, 64});
    CHECK(mp.output_shape({1, 7, 5, 8}) == Shape{1, 4, 3, 8});
    AvgPool2d<CpuBackend> raschka(7, 1, 2);
    CHECK(raschka.output_shape({2, 4, 4, 2048}) == Shape{2, 2, 2, 2048});
    AvgPool2d<CpuBackend> coral2020(4, 4, 0);
    CHECK(coral2020.output_shape({1, 4, 4, 512}) == Shape{1, 1, 1, 512});
    CHECK_THROWS_AS(raschka.output_shape({1, 2, 2, 8}), ShapeError);
    Flatten<CpuBackend> flat;
    CHECK(flat.output_shape({2, 2, 2, 2048}) == Shape{2, 1, 1, 8192});
}

TEST_CASE("layer: softmax head: probabilities, argmax, class names (0 = female, 1 = male)") {
    HeadConfig h;
    h.name = "gender", h.type = HeadType::Softmax, h.classes = {"female", "male"}, h.num_classes = 2;
    const float z[2] = {0.25f, 1.5f};
    HeadOutput out;
    decode_head(h, z, out);
    CHECK(out.label == 1);
    CHECK(out.class_name == "male");
    CHECK(out.probabilities[1] == doctest::Approx(1.0 / (1.0 + std::exp(-1.25))));
    CHECK(out.probabilities[0] + out.probabilities[1] == doctest::Approx(1.0));
    CHECK_FALSE(out.has_value);
}

TEST_CASE("layer: CORAL head: label = count of sigmoid(z_k) > 0.5 (strict), value = label + offset") {
    HeadConfig h;
    h.name = "age", h.type = HeadType::Coral, h.num_classes = 5, h.has_offset = true, h.label_offset = 15;
    const float z[4] = {2.0f, 0.5f, 0.0f, -1.0f};  // sigmoid(0) = 0.5 is not > 0.5
    HeadOutput out;
    decode_head(h, z, out);
    CHECK(out.label == 2);
    CHECK(out.value == 17.0);
    CHECK(out.probabilities.size() == 4);
    CHECK(out.probabilities[2] == doctest::Approx(0.5));
}

TEST_CASE("layer: CORN head: cumulative product of sigmoids (coral-pytorch docstring example gives labels 1 and 3)") {
    HeadConfig h;
    h.name = "age", h.type = HeadType::Corn, h.num_classes = 5;
    const float a[4] = {14.152f, -6.1942f, 0.4771f, 0.9685f};
    const float b[4] = {65.667f, 0.303f, 11.5f, -4.524f};
    HeadOutput out;
    decode_head(h, a, out);
    CHECK(out.label == 1);
    decode_head(h, b, out);
    CHECK(out.label == 3);
    CHECK(out.probabilities[1] == doctest::Approx(1.0 / (1.0 + std::exp(-0.303))).epsilon(1e-5));
}

TEST_CASE("layer: OR-CNN head: 2-way softmax per task, index 1 = P(y > k)") {
    HeadConfig h;
    h.name = "age", h.type = HeadType::OrCnn, h.num_classes = 4, h.has_offset = true, h.label_offset = 16;
    const float z[6] = {0.0f, 1.0f, 0.5f, 0.2f, 2.0f, -3.0f};  // p = .73, .43, .007
    HeadOutput out;
    decode_head(h, z, out);
    CHECK(out.label == 1);
    CHECK(out.value == 17.0);
    CHECK(out.probabilities[0] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
}

TEST_CASE("layer: thread-count knob: a setting wins, 0 or a negative count means OpenMP's default") {
    const int cores = available_cores();
    set_num_threads(cores + 2);  // differs from the default, so a knob that does nothing fails
    CHECK(num_threads() == cores + 2);
    set_num_threads(0);
    CHECK(num_threads() == cores);
    set_num_threads(-5);
    CHECK(num_threads() == cores);
#ifdef _OPENMP
    CHECK(cores == omp_get_max_threads());
#endif
}
