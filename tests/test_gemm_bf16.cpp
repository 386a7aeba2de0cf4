// tests/test_gemm_bf16.cpp — the bf16 convolution GEMM (kernels/cpu/gemm_bf16.hpp): the
// rounding to bf16, the pair panels, the kernel over the shape grid, and a whole ResNet
// in bf16 against fp32.
//
// TOLERANCE, kernel level. The kernel rounds the filters and the activations to bf16
// and then sums exact products in fp32. So the reference is conv2d_reference (double
// sums) on the bf16-ROUNDED inputs and filters (to_bf16, the scalar definition), and what
// is left between the two is the fp32 summation: tests/tolerance.hpp's rule, unchanged
// (8 u sqrt(K) S, u = 2^-24), plus the epilogue's terms as in test_gemm_packed.cpp. A
// kernel that skipped the rounding, or rounded differently, is off by about
// 2^-9 sqrt(K) S / K: above the rule for every K here (a case below checks that the
// unrounded reference indeed fails it), and a wrong pair, tap or channel far more.
//
// TOLERANCE, network level. bf16 keeps 8 significant bits: each conv's input and filter
// are rounded by up to 2^-8 relative, and the errors of 100 layers add up. The rule is
// the CUDA backend's bf16 rule (tests/cuda/tf32_model.hpp), since the arithmetic is the
// same (filters rounded after BatchNorm folding, activations rounded as each conv
// gathers them, fp32 sums and epilogue): the logits within 6e-2 of their spread
// (max - min over the batch) of fp32's, and the same labels. The measured fraction is
// printed.
//
// Without AVX512_BF16 (the build, or the CPU) the kernel cases report themselves
// skipped, and the refusal of precision bf16 at load is checked instead.
#include <doctest/doctest.h>

#include <softbio/backend/cpu.hpp>
#include <softbio/core/tensor.hpp>
#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/gemm_bf16.hpp>

#include <array>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "shape_grid.hpp"
#include "tolerance.hpp"

using namespace softbio;

namespace {

bool bf16_runs() {
    std::string why;
    if (cpu::bf16_gemm_available(&why)) return true;
    std::printf("gemm_bf16: SKIPPED (%s)\n", why.c_str());
    return false;
}

std::vector<float> rounded_to_bf16(const std::vector<float>& v) {
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = cpu::from_bf16(cpu::to_bf16(v[i]));
    return r;
}

struct Bf16Run {
    std::vector<float> fast, ref, abs_sum, ref_unrounded;
};

// conv2d on bf16 panels (through cpu::conv2d, which reads the tag) with epilogue e; the
// reference on the rounded operands, and on the unrounded ones.
Bf16Run run_bf16(const Conv2dParams& p, int threads, uint64_t seed, const Epilogue& e, const std::vector<float>& scale,
                 const std::vector<float>& bias, const std::vector<float>& residual) {
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    std::vector<float> plain(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w.data(), nullptr, plain.data());
    AlignedBuffer packed(cpu::packed_bf16_weights_floats(p));
    cpu::pack_conv_weights_bf16(p, plain.data(), packed.data());
    REQUIRE(cpu::is_packed_bf16_weights(packed.data()));
    REQUIRE(!cpu::is_packed_conv_weights(packed.data()));
    const size_t out_n = p.gemm_m() * p.out_c;
    // Guard floats after the output and the workspace must survive.
    AlignedBuffer out(out_n + 64), ws(cpu::conv2d_workspace_floats(p, threads) + 64);
    std::fill(out.data(), out.data() + out.size(), -7.0f);
    for (size_t g = 0; g < 64; ++g) ws.data()[ws.size() - 64 + g] = 1234.5f;
    cpu::conv2d(p, in.data(), packed.data(), out.data(), e, ws.data(), threads);
    for (size_t g = 0; g < 64; ++g) {
        CHECK(out.data()[out_n + g] == -7.0f);
        CHECK(ws.data()[ws.size() - 64 + g] == 1234.5f);
    }
    Bf16Run r;
    r.fast.assign(out.data(), out.data() + out_n);
    r.ref.resize(out_n), r.abs_sum.resize(out_n), r.ref_unrounded.resize(out_n);
    const auto in_b = rounded_to_bf16(in), w_b = rounded_to_bf16(w);
    cpu::conv2d_reference(p, in_b.data(), w_b.data(), r.ref.data());
    cpu::apply_epilogue_reference(e, r.ref.data(), p.gemm_m(), p.out_c);
    cpu::conv2d_reference(p, in.data(), w.data(), r.ref_unrounded.data());
    cpu::apply_epilogue_reference(e, r.ref_unrounded.data(), p.gemm_m(), p.out_c);
    cpu::conv2d_reference(p, test::abs_of(in_b).data(), test::abs_of(w_b).data(), r.abs_sum.data());
    for (size_t i = 0; i < out_n; ++i) {
        const int c = int(i % size_t(p.out_c));
        r.abs_sum[i] = r.abs_sum[i] * (e.scale ? std::fabs(scale[c]) : 1.0f) + (e.bias ? std::fabs(bias[c]) : 0.0f) +
                       (e.residual ? std::fabs(residual[i]) : 0.0f);
    }
    return r;
}

void check_bf16(const Conv2dParams& p, int threads, uint64_t seed, const Epilogue& e = {},
                const std::vector<float>& scale = {}, const std::vector<float>& bias = {},
                const std::vector<float>& residual = {}) {
    const Bf16Run r = run_bf16(p, threads, seed, e, scale, bias, residual);
    const auto rep = test::compare_within_tolerance(r.fast.data(), r.ref.data(), r.abs_sum.data(), r.fast.size(), p.gemm_k());
    INFO(test::describe(p) << " threads " << threads << (e.scale ? " scale" : "") << (e.bias ? " bias" : "")
                           << (e.residual ? " residual" : "") << (e.relu ? " relu" : "")
                           << (e.leaky_alpha != 0 ? " leaky" : "") << ": " << rep.bad << " of " << r.fast.size()
                           << " outside tolerance; first at " << rep.first << " fast=" << (rep.bad ? r.fast[rep.first] : 0)
                           << " ref=" << (rep.bad ? r.ref[rep.first] : 0) << " worst ratio " << rep.worst_ratio);
    CHECK(rep.ok());
}

}  // namespace

TEST_CASE("gemm_bf16: to_bf16 rounds to nearest, ties to even; NaN, infinities, zeros, overflow") {
    CHECK(cpu::to_bf16(1.0f) == 0x3F80);
    CHECK(cpu::to_bf16(-2.0f) == 0xC000);
    CHECK(cpu::to_bf16(0.0f) == 0x0000);
    CHECK(cpu::to_bf16(-0.0f) == 0x8000);
    // The bf16 neighbours of 1 are 1 and 1 + 2^-7. Halfway (1 + 2^-8) ties to the even 1;
    // 1 + 3*2^-8, halfway between 1 + 2^-7 (odd) and 1 + 2^-6, goes up to the even one.
    CHECK(cpu::to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);
    CHECK(cpu::to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3F82);
    CHECK(cpu::to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);  // above halfway: up
    CHECK(cpu::to_bf16(INFINITY) == 0x7F80);
    CHECK(cpu::to_bf16(-INFINITY) == 0xFF80);
    CHECK(cpu::to_bf16(FLT_MAX) == 0x7F80);  // past the largest bf16 (0x7F7F): infinity
    const uint16_t nan = cpu::to_bf16(NAN);
    CHECK((nan & 0x7F80) == 0x7F80);
    CHECK((nan & 0x007F) != 0);
    CHECK(std::isnan(cpu::from_bf16(nan)));
    CHECK(cpu::from_bf16(0x3F80) == 1.0f);
    CHECK(cpu::from_bf16(0x4049) == 3.140625f);
    // Round trip of every bf16 value that is a finite normal number, and its relative error bound.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float x = cpu::from_bf16(uint16_t(h));
        if (!std::isfinite(x)) continue;
        REQUIRE(cpu::to_bf16(x) == h);
    }
    auto v = test::random_vector(10000, 7);
    double worst = 0;
    for (float x : v) worst = std::max(worst, std::fabs(double(cpu::from_bf16(cpu::to_bf16(x))) - x) / std::fabs(x));
    CHECK(worst <= std::ldexp(1.0, -8));
    CHECK(worst > std::ldexp(1.0, -10));  // it does round
    CHECK(cpu::bf16_pair(1.0f, -2.0f) == 0xC0003F80u);
}

TEST_CASE("gemm_bf16: pair panels hold (W[k], W[k+1]) per channel, zero past N and past K; header") {
    for (int cout : {1, 33, 70})
        for (int cin : {3, 90}) {  // K = 27 (one block, odd: a half pair) and 810 (three blocks)
            Conv2dParams p = test::conv_shape(1, 5, 5, cin, cout, 3, 1, 1);
            const int k = p.gemm_k();
            std::vector<float> plain(size_t(k) * cout);
            for (size_t i = 0; i < plain.size(); ++i) plain[i] = float(int(i % 250) - 125);  // exact in bf16
            AlignedBuffer buf(cpu::packed_bf16_weights_floats(p));
            cpu::pack_conv_weights_bf16(p, plain.data(), buf.data());
            CHECK(cpu::is_packed_bf16_weights(buf.data()));
            CHECK(cpu::packed_bf16_weights_match(p, buf.data()));
            Conv2dParams other = p;
            other.out_c += 1;
            CHECK(!cpu::packed_bf16_weights_match(other, buf.data()));
            const int nr = cpu::kPackedNR, kc = cpu::bf16_kc(k), n_pad = cpu::packed_panels(cout) * nr;
            CHECK(kc % 2 == 0);
            CHECK(kc <= cpu::kBf16KC);
            const uint32_t* words = reinterpret_cast<const uint32_t*>(buf.data() + cpu::kPackedHeaderFloats);
            size_t mismatches = 0, words_seen = 0;
            for (int k0 = 0; k0 < k; k0 += kc) {
                const int kcb = std::min(kc, k - k0);
                for (int j = 0; j < cpu::packed_panels(cout); ++j)
                    for (int pr = 0; pr < cpu::bf16_pairs(kcb); ++pr)
                        for (int l = 0; l < nr; ++l) {
                            const int n = j * nr + l, klo = k0 + 2 * pr, khi = klo + 1;
                            const float lo = n < cout ? plain[size_t(klo) * cout + n] : 0.0f;
                            const float hi = n < cout && khi < k0 + kcb ? plain[size_t(khi) * cout + n] : 0.0f;
                            const uint32_t w = words[cpu::bf16_block_offset(k0, kcb, j, n_pad) + size_t(pr) * nr + l];
                            mismatches += cpu::from_bf16(uint16_t(w)) != lo || cpu::from_bf16(uint16_t(w >> 16)) != hi;
                            ++words_seen;
                        }
            }
            CHECK(mismatches == 0);
            CHECK(cpu::packed_bf16_weights_floats(p) == cpu::kPackedHeaderFloats + words_seen);
        }
}

TEST_CASE("gemm_bf16: the vector rounding of the activations equals to_bf16, for every row length") {
    if (!bf16_runs()) return;
#if defined(__AVX512BF16__) && defined(__AVX512F__)
    auto src = test::random_vector(3 * 80, 11);
    src[5] = 1.0f + std::ldexp(1.0f, -8), src[6] = 1.0f + 3 * std::ldexp(1.0f, -8);  // ties
    src[7] = NAN, src[8] = -INFINITY, src[9] = FLT_MAX, src[10] = -0.0f;
    for (int taps = 1; taps <= 70; ++taps) {
        std::vector<uint32_t> fast(3 * 40, 0xDEADBEEFu), ref(3 * 40, 0xDEADBEEFu);
        cpu::bf16_detail::round_rows_to_bf16_pairs(src.data(), 80, 3, taps, fast.data(), 40);
        cpu::round_rows_to_bf16_pairs_scalar(src.data(), 80, 3, taps, ref.data(), 40);
        size_t diff = 0;
        for (size_t i = 0; i < fast.size(); ++i) {
            const bool nan_both = std::isnan(cpu::from_bf16(uint16_t(fast[i]))) && std::isnan(cpu::from_bf16(uint16_t(ref[i])));
            diff += fast[i] != ref[i] && !nan_both;
        }
        INFO("taps " << taps);
        CHECK(diff == 0);  // also: nothing written past (taps + 1) / 2 words of a row
    }
#endif
}

TEST_CASE("gemm_bf16: conv matches the direct definition on bf16-rounded operands over the shape grid") {
    if (!bf16_runs()) return;
    uint64_t seed = 3500;
    const auto grid = test::conv_grid();
    for (const auto& p : grid) check_bf16(p, 2, seed += 2);
    for (const auto& p : test::conv_asym_shapes()) check_bf16(p, 2, seed += 2);
    CHECK(grid.size() > 60);
}

TEST_CASE("gemm_bf16: odd channel counts, kernels 1/3/7, strides 1/2; tiling with K blocks, column splits, 1/2/3 threads") {
    if (!bf16_runs()) return;
    uint64_t seed = 4100;
    for (int cin : {3, 5, 17, 33})
        for (int cout : {5, 33})
            for (int k : {1, 3, 7})
                for (int stride : {1, 2}) {
                    const int batch = (cin + cout + k) % 2 ? 1 : 3;
                    check_bf16(test::conv_shape(batch, 9, 11, cin, cout, k, stride, k / 2), 2, seed += 2);
                }
    std::vector<Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1));   // K = 4608: many K blocks, column split
    shapes.push_back(test::conv_shape(1, 4, 4, 1025, 96, 1, 1, 0));   // 1x1 direct, odd K: half pairs in the last block
    shapes.push_back(test::conv_shape(2, 17, 13, 201, 45, 1, 2, 0));  // strided 1x1, odd K
    shapes.push_back(test::conv_shape(1, 23, 23, 3, 64, 7, 2, 3));    // the stem: K = 147
    for (int threads : {1, 2, 3})
        for (size_t i = 0; i < shapes.size(); ++i) check_bf16(shapes[i], threads, 60 + i);
}

TEST_CASE("gemm_bf16: every epilogue variant, after the last K block only") {
    if (!bf16_runs()) return;
    const Conv2dParams shapes[] = {test::conv_shape(3, 9, 7, 5, 21, 3, 2, 1), test::conv_shape(1, 8, 9, 801, 37, 1, 1, 0),
                                   test::conv_shape(2, 6, 5, 33, 70, 3, 1, 1)};
    uint64_t seed = 5000;
    for (const auto& p : shapes) {
        const size_t out_n = p.gemm_m() * p.out_c;
        auto scale = test::random_vector(size_t(p.out_c), seed + 7), bias = test::random_vector(size_t(p.out_c), seed + 8);
        auto residual = test::random_vector(out_n, seed + 9);
        for (const Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
            for (int threads : {1, 2}) check_bf16(p, threads, seed, e, scale, bias, residual);
        seed += 10;
    }
}

TEST_CASE("gemm_bf16: the rule can fail: the unrounded fp32 reference breaks it, a wrong pair order too") {
    if (!bf16_runs()) return;
    const Conv2dParams p = test::conv_shape(1, 9, 9, 64, 40, 3, 1, 1);  // K = 576
    const Bf16Run r = run_bf16(p, 2, 77, {}, {}, {}, {});
    const auto exact = test::compare_within_tolerance(r.fast.data(), r.ref.data(), r.abs_sum.data(), r.fast.size(), p.gemm_k());
    const auto unrounded =
        test::compare_within_tolerance(r.fast.data(), r.ref_unrounded.data(), r.abs_sum.data(), r.fast.size(), p.gemm_k());
    INFO("rounded reference: worst ratio " << exact.worst_ratio << "; unrounded: " << unrounded.bad << " of "
                                           << r.fast.size() << " outside, worst ratio " << unrounded.worst_ratio);
    CHECK(exact.ok());
    CHECK(unrounded.bad > r.fast.size() / 2);
    // Swapping the halves of every weight pair (tap k with k+1) must be caught.
    std::vector<float> w = test::random_vector(size_t(p.out_c) * p.in_c * 9, 78), plain(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w.data(), nullptr, plain.data());
    AlignedBuffer good(cpu::packed_bf16_weights_floats(p)), bad(cpu::packed_bf16_weights_floats(p));
    cpu::pack_conv_weights_bf16(p, plain.data(), good.data());
    std::copy(good.data(), good.data() + good.size(), bad.data());
    uint32_t* words = reinterpret_cast<uint32_t*>(bad.data() + cpu::kPackedHeaderFloats);
    for (size_t i = 0; i + cpu::kPackedHeaderFloats < bad.size(); ++i) words[i] = (words[i] << 16) | (words[i] >> 16);
    auto in = test::random_vector(size_t(81) * 64, 79);
    std::vector<float> a(p.gemm_m() * p.out_c), b(a.size());
    AlignedBuffer ws(cpu::conv2d_workspace_floats(p, 1));
    cpu::conv2d(p, in.data(), good.data(), a.data(), {}, ws.data(), 1);
    cpu::conv2d(p, in.data(), bad.data(), b.data(), {}, ws.data(), 1);
    double moved = 0;
    for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, std::fabs(double(a[i]) - b[i]));
    CHECK(moved > 0.1);
}

TEST_CASE("gemm_bf16: panels for another shape are refused, also through cpu::conv2d") {
    Conv2dParams p = test::conv_shape(1, 6, 6, 8, 16, 3, 1, 1);
    std::vector<float> plain(size_t(p.gemm_k()) * p.out_c, 0.5f);
    AlignedBuffer packed(cpu::packed_bf16_weights_floats(p)), ws(cpu::conv2d_workspace_floats(p, 1) + 64);
    cpu::pack_conv_weights_bf16(p, plain.data(), packed.data());
    std::vector<float> in(36 * 8, 1.0f), out(36 * 32);
    Conv2dParams q = p;
    q.out_c = 32;
    CHECK_THROWS_AS(cpu::conv2d(q, in.data(), packed.data(), out.data(), {}, ws.data(), 1), std::invalid_argument);
}

namespace {
std::string write_bf16_test_model(const std::string& tag) {
    ModelConfig cfg;
    cfg.arch.block = BlockType::Bottleneck;
    cfg.arch.layers = {1, 1, 2, 1};
    cfg.arch.input_h = cfg.arch.input_w = 64;
    HeadConfig g;
    g.name = "gender", g.type = HeadType::Softmax, g.classes = {"female", "male"}, g.num_classes = 2;
    cfg.heads = {g};
    cfg.preprocess = {{PreprocessStep::resize(64, 64), PreprocessStep::to_tensor()}};
    cfg.trained = false;
    const std::string path = "/tmp/softbio_test_" + std::to_string(::getpid()) + "_" + tag + ".safetensors";
    write_synthetic_model(path, cfg, {});
    return path;
}
}  // namespace

TEST_CASE("gemm_bf16: a ResNet loaded with precision bf16 gives fp32's labels, logits within 6e-2 of the spread") {
    const std::string path = write_bf16_test_model("bf16_model");
    LoadOptions bf16;
    bf16.precision = Precision::Bf16;
    std::string why;
    if (!cpu::bf16_gemm_available(&why)) {
        // Refused at load, saying why.
        try {
            load_model(path, bf16);
            FAIL("precision bf16 loaded without AVX512_BF16");
        } catch (const PrecisionUnavailable& e) {
            CHECK(std::string(e.what()).find("AVX512_BF16") != std::string::npos);
        }
        std::remove(path.c_str());
        std::printf("gemm_bf16: model SKIPPED (%s); the refusal was checked\n", why.c_str());
        return;
    }
    LoadOptions eigen = bf16;
    eigen.conv_kernel = ConvKernel::Eigen;
    CHECK_THROWS_AS(load_model(path, eigen), PrecisionUnavailable);  // bf16 runs on its own GEMM only
    LoadOptions fp16;
    fp16.precision = Precision::Fp16;
    CHECK_THROWS_AS(load_model(path, fp16), PrecisionUnavailable);  // the CPU has no fp16 mode
    const int batch = 6;
    auto input = test::random_vector(size_t(batch) * 64 * 64 * 3, 5);
    std::array<std::vector<float>, 2> logits;
    for (int i = 0; i < 2; ++i) {
        auto model = load_model(path, i == 0 ? LoadOptions{} : bf16);
        const auto& conv = model->blocks().front().units().front().conv();
        CHECK(conv.precision() == (i == 0 ? Precision::Fp32 : Precision::Bf16));
        auto ws = model->make_workspace(batch);
        model->forward(input.data(), batch, *ws);
        logits[size_t(i)].assign(ws->logits(0), ws->logits(0) + size_t(batch) * 2);
    }
    std::remove(path.c_str());
    double lo = 1e30, hi = -1e30, worst = 0;
    for (size_t i = 0; i < logits[0].size(); ++i) {
        lo = std::min(lo, double(logits[0][i])), hi = std::max(hi, double(logits[0][i]));
        worst = std::max(worst, std::fabs(double(logits[0][i]) - double(logits[1][i])));
    }
    int same_labels = 0;
    for (int b = 0; b < batch; ++b)
        same_labels += (logits[0][size_t(b) * 2] < logits[0][size_t(b) * 2 + 1]) ==
                       (logits[1][size_t(b) * 2] < logits[1][size_t(b) * 2 + 1]);
    std::printf("gemm_bf16: ResNet (synthetic) bf16 vs fp32: max |diff| %.3g = %.3g of the logits' spread %.3g\n", worst,
                worst / (hi - lo), hi - lo);
    CHECK(hi > lo);
    CHECK(worst <= 6e-2 * (hi - lo));
    CHECK(worst > 0);  // bf16 did run: the rounding moves the logits
    CHECK(same_labels == batch);
}
