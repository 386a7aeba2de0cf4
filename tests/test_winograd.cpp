// tests/test_winograd.cpp — F(4x4, 3x3) Winograd convolution (kernels/cpu/winograd.hpp)
// against the definition (conv2d_reference, in double), over a grid of shapes, paddings,
// batch sizes, channel counts, thread counts and every epilogue.
//
// TOLERANCE (Winograd's own rule; the direct kernels use tests/tolerance.hpp's). The
// transforms mix up to 36 inputs with coefficients up to 8 (and 1/24), so an output's
// rounding error is not bounded by the sum of |products| of that output alone but by the
// magnitudes inside its 6x6 tile. The rule is
//     |fast - exact| <= c * u * sqrt(K') * max|x| * sum|W[co]|,   u = 2^-24,
// K' = max(9 Cin, 36) (the transforms' own rounding is a floor that does not shrink with
// fewer channels), max|x| over the input, sum|W[co]| over output channel co's filter (the
// largest any output of that channel can be), plus the epilogue's terms. The worst ratio
// the grid reaches is printed: 8.7 (Cin = 1; AVX2 machine with Eigen's GEMM, and again
// 8.7 on the Zen 5's AVX-512 micro-kernel, 2026-12-02); c = 32 leaves a margin of 3.7x.
// A bug (a wrong tap, tile, channel or transform coefficient) moves an
// output by about max|x| * |W| ~ sum|W[co]| / K, more than 1000 times this bound for
// every K here, so the tests can fail (checked, 2026-12-02: with the K-block accumulation
// of gemm_rows_packed dropped, the Cin = 200 / 256 / 500 / 512 cases fail at 8000-17000x
// the rule's unit). Then: the packed-U buffer's layout, the refusal of a buffer that is
// not this conv's, the per-shape choice (ConvKernel::Auto), a ResNet with Winograd / Auto.
#include <doctest/doctest.h>

#include <softbio/core/tensor.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/winograd.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "shape_grid.hpp"
#include "tolerance.hpp"

using namespace softbio;

namespace {

constexpr double kWinogradC = 32;
double worst_seen = 0;

void check_winograd(const Conv2dParams& p, int threads, uint64_t seed, const Epilogue& e = {},
                    const std::vector<float>& scale = {}, const std::vector<float>& bias = {},
                    const std::vector<float>& residual = {}) {
    REQUIRE(cpu::winograd_applies(p));
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * 9, seed + 1);
    AlignedBuffer u(cpu::winograd_weight_floats(p));
    cpu::pack_winograd_weights(p, w.data(), nullptr, u.data());
    const size_t out_n = p.gemm_m() * p.out_c;
    AlignedBuffer out(out_n + 64), ws(cpu::winograd_workspace_floats(p, threads) + 64);
    std::fill(out.data(), out.data() + out.size(), -7.0f);
    for (size_t g = 0; g < 64; ++g) ws.data()[ws.size() - 64 + g] = 1234.5f;
    cpu::conv2d_winograd(p, in.data(), u.data(), out.data(), e, ws.data(), threads);
    for (size_t g = 0; g < 64; ++g) {
        REQUIRE(out.data()[out_n + g] == -7.0f);  // nothing past the output
        REQUIRE(ws.data()[ws.size() - 64 + g] == 1234.5f);  // nor past the workspace
    }
    std::vector<float> ref(out_n);
    cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.out_c);
    double max_x = 0;
    for (float x : in) max_x = std::max(max_x, double(std::fabs(x)));
    std::vector<double> w_sum(size_t(p.out_c), 0.0);
    for (size_t i = 0; i < w.size(); ++i) w_sum[i / (size_t(p.in_c) * 9)] += std::fabs(w[i]);
    const double u_sqrt_k = std::ldexp(1.0, -24) * std::sqrt(std::max(9.0 * p.in_c, 36.0));
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < out_n; ++i) {
        const size_t c = i % size_t(p.out_c);
        const double conv_bound = u_sqrt_k * max_x * w_sum[c];
        const double bound = kWinogradC * conv_bound * (e.scale ? std::fabs(scale[c]) : 1.0) +
                             (e.bias ? 4 * std::ldexp(std::fabs(bias[c]), -24) : 0.0) +
                             (e.residual ? 4 * std::ldexp(std::fabs(residual[i]), -24) : 0.0) + 1e-30;
        const double err = std::fabs(double(out.data()[i]) - double(ref[i]));
        worst = std::max(worst, err / (bound / kWinogradC));
        if (!(err <= bound)) {
            if (!bad) first = i;
            ++bad;
        }
    }
    worst_seen = std::max(worst_seen, worst);
    INFO(test::describe(p) << " threads " << threads << ": " << bad << " of " << out_n << " outside; first at " << first
                           << " fast=" << out.data()[first] << " ref=" << ref[first] << "; worst error / (u sqrt(K) "
                           << "max|x| sum|W|) = " << worst);
    CHECK(bad == 0);
}

}  // namespace

TEST_CASE("winograd F(4x4,3x3): sizes, paddings, channel counts, batch 1 and 3, threads 1-3") {
    uint64_t seed = 9100;
    int shapes = 0;
    for (int pad : {0, 1, 2})
        for (int h : {3, 4, 5, 9, 14})
            for (int w : {3, 6, 7, 13})
                for (int cin : {1, 3, 17}) {
                    const int cout = (h + w + cin) % 3 == 0 ? 16 : (h + cin) % 2 ? 5 : 33;
                    const int batch = (h + w + pad) % 2 ? 1 : 3;
                    if (h + 2 * pad < 3 || w + 2 * pad < 3) continue;
                    check_winograd(test::conv_shape(batch, h, w, cin, cout, 3, 1, pad), 1 + (h + w) % 3, seed += 2);
                    ++shapes;
                }
    CHECK(shapes > 150);
    MESSAGE("worst error / (u sqrt(K') max|x| sum|W|) over the grid: " << worst_seen << " (bound " << kWinogradC << ")");
}

TEST_CASE("winograd F(4x4,3x3): TF-same, asymmetric padding, ResNet's channel counts, many tile blocks") {
    uint64_t seed = 9700;
    Conv2dParams p = test::conv_shape(1, 13, 10, 8, 12, 3, 1, 0);
    p.same = true;
    check_winograd(p, 2, seed += 2);
    check_winograd(test::conv_shape(2, 8, 9, 5, 19, 3, 1, 0).set_padding(0, 1, 2, 0), 2, seed += 2);
    check_winograd(test::conv_shape(1, 7, 8, 6, 7, 3, 1, 0).set_padding(2, 0, 1, 2), 3, seed += 2);
    check_winograd(test::conv_shape(1, 14, 14, 256, 256, 3, 1, 1), 2, seed += 2);  // layer3 at 224
    check_winograd(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1), 2, seed += 2);    // layer4: one block of 4 tiles
    check_winograd(test::conv_shape(3, 29, 31, 64, 64, 3, 1, 1), 3, seed += 2);    // many blocks, a partial last one
    // Several K blocks of the packed GEMM (Cin > KC = 192: 2 blocks of 100 / 3 of 167),
    // a column tail (Cout not a multiple of 16 or 32), batch 2, odd sizes.
    check_winograd(test::conv_shape(2, 11, 9, 200, 37, 3, 1, 1), 2, seed += 2);
    check_winograd(test::conv_shape(1, 10, 13, 500, 70, 3, 1, 1).set_padding(1, 0, 0, 1), 1, seed += 2);
    MESSAGE("worst error / (u sqrt(K') max|x| sum|W|) so far: " << worst_seen);
}

TEST_CASE("winograd F(4x4,3x3): every epilogue variant, folded scale in the weights") {
    uint64_t seed = 9900;
    const Conv2dParams shapes[] = {test::conv_shape(2, 9, 11, 7, 21, 3, 1, 1), test::conv_shape(1, 6, 5, 33, 16, 3, 1, 0)};
    for (const auto& p : shapes) {
        const size_t out_n = p.gemm_m() * p.out_c;
        auto scale = test::random_vector(size_t(p.out_c), seed + 7), bias = test::random_vector(size_t(p.out_c), seed + 8);
        auto residual = test::random_vector(out_n, seed + 9);
        for (int threads : {1, 2})
            for (const Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
                check_winograd(p, threads, seed += 10, e, scale, bias, residual);
    }
    // A BatchNorm scale folded into the transformed filters equals the scale applied after.
    const Conv2dParams p = test::conv_shape(1, 8, 8, 4, 6, 3, 1, 1);
    auto in = test::random_vector(size_t(8) * 8 * 4, 1), w = test::random_vector(size_t(6) * 4 * 9, 2);
    auto scale = test::random_vector(6, 3);
    std::vector<float> folded(cpu::winograd_plain_floats(p)), plain(folded.size());
    cpu::transform_winograd_weights(p, w.data(), scale.data(), folded.data());
    cpu::transform_winograd_weights(p, w.data(), nullptr, plain.data());
    for (size_t i = 0; i < folded.size(); ++i)
        CHECK(folded[i] == doctest::Approx(plain[i] * scale[i % 6]).epsilon(1e-6));
}

TEST_CASE("winograd F(4x4,3x3): the packed U layout: header, then 36 panel sets of the micro-kernel's order") {
    // Read every U[ξν][ci][co] back from where THE BUFFER (winograd.hpp) says it is: set ξν,
    // K block of ci, panel of co, row ci - k0, column co % NR; zeros past Cout.
    for (const Conv2dParams& p : {test::conv_shape(1, 8, 8, 5, 37, 3, 1, 1), test::conv_shape(1, 8, 8, 400, 20, 3, 1, 1)}) {
        auto w = test::random_vector(size_t(p.out_c) * p.in_c * 9, 77);
        std::vector<float> plain(cpu::winograd_plain_floats(p));
        cpu::transform_winograd_weights(p, w.data(), nullptr, plain.data());
        AlignedBuffer packed(cpu::winograd_weight_floats(p));
        cpu::pack_winograd_weights(p, w.data(), nullptr, packed.data());
        REQUIRE(cpu::winograd_weights_match(p, packed.data()));
        CHECK(std::isnan(packed.data()[0]));
        CHECK_FALSE(cpu::is_packed_conv_weights(packed.data()));  // not the direct conv's panels
        const int nr = cpu::kPackedNR, kc = cpu::packed_kc(p.in_c), n_pad = cpu::packed_panels(p.out_c) * nr;
        CHECK(cpu::winograd_weight_floats(p) == cpu::kPackedHeaderFloats + size_t(36) * size_t(n_pad) * p.in_c);
        size_t wrong = 0;
        for (int xi = 0; xi < 36; ++xi)
            for (int ci = 0; ci < p.in_c; ++ci)
                for (int co = 0; co < n_pad; ++co) {
                    const int k0 = ci / kc * kc, kcb = std::min(kc, p.in_c - k0);
                    const float* set = packed.data() + cpu::kPackedHeaderFloats + size_t(xi) * cpu::winograd_panel_set_floats(p);
                    const float got = set[cpu::packed_block_offset(k0, kcb, co / nr, n_pad) + size_t(ci - k0) * nr + co % nr];
                    const float want = co < p.out_c ? plain[(size_t(xi) * p.in_c + ci) * p.out_c + co] : 0.0f;
                    wrong += got != want;
                }
        CHECK(wrong == 0);
        // From the plain GEMM operand (what Conv2d holds): the same panels.
        std::vector<float> kn(size_t(9) * p.in_c * p.out_c);
        pack_conv_weights(p, w.data(), nullptr, kn.data());
        AlignedBuffer from_plain(packed.size());
        cpu::pack_winograd_weights_plain(p, kn.data(), from_plain.data());
        CHECK(std::equal(packed.data(), packed.data() + packed.size(), from_plain.data(),
                         [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }));
    }
}

TEST_CASE("winograd F(4x4,3x3): a buffer that is not this conv's packed U is refused, never read") {
    const Conv2dParams p = test::conv_shape(1, 8, 8, 6, 10, 3, 1, 1);
    auto in = test::random_vector(size_t(8) * 8 * 6, 1), w = test::random_vector(size_t(10) * 6 * 9, 2);
    AlignedBuffer u(cpu::winograd_weight_floats(p)), out(size_t(64) * 10 + 16), ws(cpu::winograd_workspace_floats(p, 1));
    cpu::pack_winograd_weights(p, w.data(), nullptr, u.data());
    std::fill(out.data(), out.data() + out.size(), -7.0f);
    auto refused = [&](const Conv2dParams& q, const float* weights) {
        CHECK_THROWS_AS(cpu::conv2d_winograd(q, in.data(), weights, out.data(), {}, ws.data(), 1), std::invalid_argument);
    };
    Conv2dParams other_cin = p, other_cout = p;
    other_cin.in_c = 5, other_cout.out_c = 9;
    refused(other_cin, u.data());   // packed for Cin 6
    refused(other_cout, u.data());  // packed for Cout 10
    refused(p, w.data());           // the raw filters
    std::vector<float> plain(cpu::winograd_plain_floats(p));
    cpu::transform_winograd_weights(p, w.data(), nullptr, plain.data());
    refused(p, plain.data());  // the unpacked transform
    AlignedBuffer direct(cpu::packed_conv_weights_floats(p));
    std::vector<float> kn(size_t(9) * 6 * 10);
    pack_conv_weights(p, w.data(), nullptr, kn.data());
    cpu::pack_conv_weights_panels(p, kn.data(), direct.data());
    refused(p, direct.data());  // the direct conv's panels
    for (uint32_t field = 3; field <= 5; ++field) {  // another build's NR or KC, another set count
        AlignedBuffer bad(u.size());
        std::copy(u.data(), u.data() + u.size(), bad.data());
        uint32_t x;
        std::memcpy(&x, bad.data() + field, 4);
        x += 1;
        std::memcpy(bad.data() + field, &x, 4);
        refused(p, bad.data());
    }
    Conv2dParams strided = p;
    strided.stride = 2;
    refused(strided, u.data());
    for (size_t i = 0; i < out.size(); ++i) REQUIRE(out.data()[i] == -7.0f);  // nothing written
    cpu::conv2d_winograd(p, in.data(), u.data(), out.data(), {}, ws.data(), 1);  // the right one runs
    CHECK(out.data()[0] != -7.0f);
}

TEST_CASE("winograd F(4x4,3x3): applies to 3x3 stride 1 only") {
    CHECK(cpu::winograd_applies(test::conv_shape(1, 56, 56, 64, 64, 3, 1, 1)));
    CHECK_FALSE(cpu::winograd_applies(test::conv_shape(1, 56, 56, 64, 64, 3, 2, 1)));
    CHECK_FALSE(cpu::winograd_applies(test::conv_shape(1, 56, 56, 64, 64, 1, 1, 0)));
    CHECK_FALSE(cpu::winograd_applies(test::conv_shape(1, 56, 56, 3, 64, 7, 2, 3)));
}

// ---- the layer and a whole network with LoadOptions::conv_kernel = Winograd ----------
#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>

TEST_CASE("winograd: the per-shape choice (ConvKernel::Auto) follows the measurements") {
    // Where Winograd was measured faster (docs/PERFORMANCE.md): ResNet's 3x3 stride-1
    // convs at 64, 128 and 256 channels. Not: 512 channels (slower at 4 x 4), few channels
    // (the face detector's 3 -> 16, 16 -> 32), or any conv it does not compute.
    CHECK(cpu::winograd_preferred(test::conv_shape(1, 56, 56, 64, 64, 3, 1, 1)));
    CHECK(cpu::winograd_preferred(test::conv_shape(1, 28, 28, 128, 128, 3, 1, 1)));
    CHECK(cpu::winograd_preferred(test::conv_shape(1, 14, 14, 256, 256, 3, 1, 1)));
    CHECK_FALSE(cpu::winograd_preferred(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1)));
    CHECK_FALSE(cpu::winograd_preferred(test::conv_shape(1, 416, 416, 3, 16, 3, 1, 1)));
    CHECK_FALSE(cpu::winograd_preferred(test::conv_shape(1, 208, 208, 16, 32, 3, 1, 1)));
    CHECK_FALSE(cpu::winograd_preferred(test::conv_shape(1, 56, 56, 128, 128, 3, 2, 1)));
    CHECK_FALSE(cpu::winograd_preferred(test::conv_shape(1, 56, 56, 64, 256, 1, 1, 0)));
    // The layer resolves Auto at construction and runs what it chose.
    for (const Conv2dParams& geo : {test::conv_shape(1, 9, 9, 64, 70, 3, 1, 1), test::conv_shape(1, 9, 9, 16, 24, 3, 1, 1),
                                    test::conv_shape(1, 9, 9, 64, 64, 3, 2, 1)}) {
        auto w = test::random_vector(size_t(geo.out_c) * geo.in_c * 9, 3);
        const Conv2d<CpuBackend> conv(geo, TensorRef{w.data(), {geo.out_c, geo.in_c, 3, 3}}, nullptr,
                                      FilterLayout::kPyTorch, ConvKernel::Auto);
        CHECK(conv.kernel() == (cpu::winograd_preferred(geo) ? ConvKernel::Winograd : ConvKernel::Packed));
    }
    {
        const ConvKernelScope scope(ConvKernel::Auto);
        const Conv2dParams geo = test::conv_shape(1, 9, 9, 128, 128, 3, 1, 1);
        auto w = test::random_vector(size_t(128) * 128 * 9, 4);
        CHECK(Conv2d<CpuBackend>(geo, TensorRef{w.data(), {128, 128, 3, 3}}, nullptr).kernel() == ConvKernel::Winograd);
    }
}

#include <array>
#include <cstdio>
#include <unistd.h>

TEST_CASE("winograd: a ResNet loaded with conv_kernel Winograd runs its 3x3 stride-1 convs by F(4x4,3x3)") {
    // Tolerance: Winograd's rounding is about 10x the direct sum's (the rule above), and
    // it compounds through the network; on this untrained synthetic ResNet we ask for
    // 1e-3 of the logits' range (test_gemm_packed.cpp asks 1e-4 between two direct GEMMs).
    // The ResNet parity tests against PyTorch run the default kernel (Packed).
    ModelConfig cfg;
    cfg.arch.block = BlockType::Bottleneck;
    cfg.arch.layers = {1, 1, 2, 1};
    cfg.arch.input_h = cfg.arch.input_w = 64;
    HeadConfig g;
    g.name = "gender", g.type = HeadType::Softmax, g.classes = {"female", "male"}, g.num_classes = 2;
    cfg.heads = {g};
    cfg.preprocess = {{PreprocessStep::resize(64, 64), PreprocessStep::to_tensor()}};
    cfg.trained = false;
    const std::string path = "/tmp/softbio_test_" + std::to_string(::getpid()) + "_winograd.safetensors";
    write_synthetic_model(path, cfg, {});
    const int batch = 2;
    auto input = test::random_vector(size_t(batch) * 64 * 64 * 3, 5);
    const ConvKernel kernels[] = {ConvKernel::Packed, ConvKernel::Winograd, ConvKernel::Auto};
    std::array<std::vector<float>, 3> logits;
    for (int i = 0; i < 3; ++i) {
        LoadOptions opt;
        opt.conv_kernel = kernels[i];
        auto model = load_model(path, opt);
        int winograd = 0, convs = 0;
        for (const auto& b : model->blocks())
            for (const auto& u : b.units()) {
                ++convs;
                const Conv2dParams& gm = u.conv().geometry();
                const bool applies = gm.kernel_h == 3 && gm.stride == 1;
                // Auto: Winograd on the 3x3 stride-1 convs of 64..256 channels (layer1.0: 64,
                // layer3.1: 256), never on layer4's 512.
                const bool want = i == 1 ? applies : i == 2 ? cpu::winograd_preferred(gm) : false;
                if (i == 2) CHECK(cpu::winograd_preferred(gm) == (applies && gm.in_c <= 256));
                CHECK(u.conv().kernel() == (want ? ConvKernel::Winograd : ConvKernel::Packed));
                winograd += u.conv().kernel() == ConvKernel::Winograd;
            }
        if (i > 0) CHECK(winograd == 2);  // layer1.0 and layer3.1: the blocks that do not stride
        CHECK(convs > winograd);
        auto ws = model->make_workspace(batch);
        model->forward(input.data(), batch, *ws);
        logits[size_t(i)].assign(ws->logits(0), ws->logits(0) + size_t(batch) * 2);
    }
    std::remove(path.c_str());
    double lo = 1e30, hi = -1e30, worst = 0, worst_auto = 0;
    for (size_t i = 0; i < logits[0].size(); ++i) {
        lo = std::min(lo, double(logits[0][i])), hi = std::max(hi, double(logits[0][i]));
        worst = std::max(worst, std::fabs(double(logits[0][i]) - double(logits[1][i])));
        worst_auto = std::max(worst_auto, std::fabs(double(logits[0][i]) - double(logits[2][i])));
    }
    MESSAGE("max |winograd - packed| = " << worst << ", |auto - packed| = " << worst_auto << ", logit range " << hi - lo);
    CHECK(hi > lo);
    CHECK(worst <= 1e-3 * (hi - lo));
    CHECK(worst_auto <= 1e-3 * (hi - lo));
    CHECK(parse_conv_kernel("auto") == ConvKernel::Auto);
    CHECK(std::string(conv_kernel_name(ConvKernel::Auto)) == "auto");
    CHECK(parse_conv_kernel("winograd") == ConvKernel::Winograd);
    CHECK(std::string(conv_kernel_name(ConvKernel::Winograd)) == "winograd");
}
