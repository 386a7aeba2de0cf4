// tests/test_gemm_packed.cpp — the packed-GEMM convolution (kernels/cpu/gemm_packed.hpp)
// against the direct definition (conv2d_reference, accumulating in double), over a grid
// of shapes and every epilogue variant.
//
// TOLERANCE. The rule of tests/tolerance.hpp: |fast - exact| <= 8 * 2^-24 * sqrt(K) * S
// per output, S = the reference run on |input| and |weights| (the sum of |products|),
// plus the epilogue's own terms: S * |scale| + |bias| + |residual| (each of those adds
// at most one rounding of its own size). A wrong tap, channel or row moves an output by
// about S/K, far above this bound, so every bug in the packing or the edges fails.
//
// Which micro-kernel is tested depends on how this file is compiled: with -march=native
// on an AVX-512 machine the AVX-512 one; tests/CMakeLists.txt builds the same file again
// with -mno-avx512f (the AVX2 kernel, what an AVX2-only CI machine runs) and with AVX2
// and FMA off too (the plain C++ fallback), as softbio_tests_gemm_avx2 / _scalar. The
// first test case prints which one ran.
#include <doctest/doctest.h>

#include <softbio/core/finite.hpp>
#include <softbio/core/tensor.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/gemm_packed.hpp>
#include <softbio/backend/cpu.hpp>
#include <softbio/layers/conv2d.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "shape_grid.hpp"
#include "tolerance.hpp"

using namespace softbio;

namespace {

void check_close(const std::vector<float>& fast, const std::vector<float>& ref, const std::vector<float>& abs_sum,
                 double k, const std::string& what) {
    REQUIRE(fast.size() == ref.size());
    const test::ToleranceReport r = test::compare_within_tolerance(fast.data(), ref.data(), abs_sum.data(), fast.size(), k);
    INFO(what << " [" << cpu::packed_gemm_isa() << "]: " << r.bad << " of " << fast.size()
              << " outputs outside tolerance; first at " << r.first << " fast=" << (r.bad ? fast[r.first] : 0)
              << " ref=" << (r.bad ? ref[r.first] : 0) << " worst ratio " << r.worst_ratio);
    CHECK(r.ok());
}

std::vector<float> packed_weights(const Conv2dParams& p, const std::vector<float>& w_oihw) {
    std::vector<float> plain(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w_oihw.data(), nullptr, plain.data());
    AlignedBuffer aligned(cpu::packed_conv_weights_floats(p));
    cpu::pack_conv_weights_panels(p, plain.data(), aligned.data());
    return std::vector<float>(aligned.data(), aligned.data() + aligned.size());
}

// Run conv2d_packed (through cpu::conv2d, which reads the header) with epilogue `e`
// against the reference + apply_epilogue_reference.
void check_packed(const Conv2dParams& p, int threads, uint64_t seed, const Epilogue& e, const std::vector<float>& scale,
                  const std::vector<float>& bias, const std::vector<float>& residual) {
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    const size_t out_n = p.gemm_m() * p.out_c;
    std::vector<float> ref(out_n), abs_sum(out_n);
    AlignedBuffer packed(cpu::packed_conv_weights_floats(p));
    {
        auto v = packed_weights(p, w);
        std::copy(v.begin(), v.end(), packed.data());
    }
    REQUIRE(cpu::is_packed_conv_weights(packed.data()));
    // Guard floats after the output and the workspace must survive.
    AlignedBuffer out(out_n + 64), ws(cpu::conv2d_workspace_floats(p, threads) + 64);
    std::fill(out.data(), out.data() + out.size(), -7.0f);
    for (size_t g = 0; g < 64; ++g) ws.data()[ws.size() - 64 + g] = 1234.5f;
    cpu::conv2d(p, in.data(), packed.data(), out.data(), e, ws.data(), threads);
    for (size_t g = 0; g < 64; ++g) {
        CHECK(out.data()[out_n + g] == -7.0f);
        CHECK(ws.data()[ws.size() - 64 + g] == 1234.5f);
    }
    cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.out_c);
    cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
    for (size_t i = 0; i < out_n; ++i) {
        const int c = int(i % size_t(p.out_c));
        abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs(scale[c]) : 1.0f) + (e.bias ? std::fabs(bias[c]) : 0.0f) +
                     (e.residual ? std::fabs(residual[i]) : 0.0f);
    }
    std::vector<float> fast(out.data(), out.data() + out_n);
    std::string what = test::describe(p) + " threads " + std::to_string(threads) +
                       (e.scale ? " scale" : "") + (e.bias ? " bias" : "") + (e.residual ? " residual" : "") +
                       (e.relu ? " relu" : "") + (e.leaky_alpha != 0 ? " leaky" : "");
    check_close(fast, ref, abs_sum, p.gemm_k(), what);
}

void check_packed_plain(const Conv2dParams& p, int threads, uint64_t seed) {
    check_packed(p, threads, seed, Epilogue{}, {}, {}, {});
}

void check_packed_all_epilogues(const Conv2dParams& p, int threads, uint64_t seed) {
    const size_t out_n = p.gemm_m() * p.out_c;
    auto scale = test::random_vector(size_t(p.out_c), seed + 7), bias = test::random_vector(size_t(p.out_c), seed + 8);
    auto residual = test::random_vector(out_n, seed + 9);
    for (const Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
        check_packed(p, threads, seed, e, scale, bias, residual);
}

}  // namespace

TEST_CASE("gemm_packed: the micro-kernel this build runs") {
    std::printf("gemm_packed: %s micro-kernel, MR %d x NR %d\n", cpu::packed_gemm_isa(), cpu::kPackedMR, cpu::kPackedNR);
#if defined(__AVX512F__)
    CHECK(std::string(cpu::packed_gemm_isa()) == "avx512");
#elif defined(__AVX2__) && defined(__FMA__)
    CHECK(std::string(cpu::packed_gemm_isa()) == "avx2");
#else
    CHECK(std::string(cpu::packed_gemm_isa()) == "scalar");
#endif
}

TEST_CASE("gemm_packed: weight panels hold W[k, n] at K block k/KC, panel n/NR, row k, lane n%NR; zero past N; header") {
    for (int cout : {1, 5, 33, 64, 70})
        for (int cin : {3, 50}) {  // K = 27 (one K block) and 450 (several)
            Conv2dParams p = test::conv_shape(1, 5, 5, cin, cout, 3, 1, 1);
            std::vector<float> plain(size_t(p.gemm_k()) * cout);
            for (size_t i = 0; i < plain.size(); ++i) plain[i] = float(i + 1);
            AlignedBuffer buf(cpu::packed_conv_weights_floats(p));
            cpu::pack_conv_weights_panels(p, plain.data(), buf.data());
            CHECK(cpu::is_packed_conv_weights(buf.data()));
            CHECK(cpu::packed_conv_weights_match(p, buf.data()));
            Conv2dParams other = p;
            other.out_c += 1;
            CHECK(!cpu::packed_conv_weights_match(other, buf.data()));
            CHECK(!cpu::is_packed_conv_weights(plain.data()));  // a plain (finite) filter is never taken for one
            const int nr = cpu::kPackedNR, k = p.gemm_k(), kc = cpu::packed_kc(k), n_pad = cpu::packed_panels(cout) * nr;
            CHECK(kc <= cpu::kPackedKC);
            CHECK((k > cpu::kPackedKC) == (kc < k));
            const float* panels = buf.data() + cpu::kPackedHeaderFloats;
            size_t mismatches = 0;
            for (int j = 0; j < cpu::packed_panels(cout); ++j)
                for (int kk = 0; kk < k; ++kk)
                    for (int l = 0; l < nr; ++l) {
                        const int n = j * nr + l;
                        const int k0 = kk / kc * kc, kcb = std::min(kc, k - k0);
                        const float want = n < cout ? plain[size_t(kk) * cout + n] : 0.0f;
                        const size_t at = size_t(k0) * n_pad + size_t(j) * kcb * nr + size_t(kk - k0) * nr + size_t(l);
                        mismatches += panels[at] != want;
                    }
            CHECK(mismatches == 0);
            CHECK(cpu::packed_conv_weights_floats(p) == cpu::kPackedHeaderFloats + size_t(n_pad) * k);
        }
}

TEST_CASE("gemm_packed: panels straight from PyTorch's [Cout, Cin, kh, kw] equal pack_conv_weights then the panels, bit for bit") {
    // The load's direct path (layers/conv2d.hpp) must write exactly what the two-step path
    // writes: the same products w * scale, rounded once, in the same places.
    for (int kernel : {1, 3, 7})
        for (int cout : {1, 31, 33, 70})
            for (int cin : {3, 50}) {  // with 7x7, K = 147 and 2450 (several K blocks)
                Conv2dParams p = test::conv_shape(1, 9, 9, cin, cout, kernel, 2, kernel / 2);
                std::vector<float> oihw(size_t(p.gemm_k()) * cout), scale(static_cast<size_t>(cout));
                for (size_t i = 0; i < oihw.size(); ++i) oihw[i] = 0.001f * float(int(i % 1999) - 999);
                for (int c = 0; c < cout; ++c) scale[size_t(c)] = 0.37f + 0.11f * float(c % 7);
                for (const float* s : {static_cast<const float*>(nullptr), static_cast<const float*>(scale.data())}) {
                    std::vector<float> plain(oihw.size());
                    pack_conv_weights(p, oihw.data(), s, plain.data());
                    AlignedBuffer two_step(cpu::packed_conv_weights_floats(p));
                    cpu::pack_conv_weights_panels(p, plain.data(), two_step.data());
                    AlignedBuffer direct = AlignedBuffer::uninitialized(cpu::packed_conv_weights_floats(p));
                    cpu::pack_conv_weights_panels_oihw(p, oihw.data(), s, direct.data());
                    CHECK(std::memcmp(direct.data(), two_step.data(), two_step.size() * sizeof(float)) == 0);
                }
            }
}

TEST_CASE("first_non_finite: the index of the first NaN or infinity, at any place in or across its blocks") {
    std::vector<float> v(1000, 1.5f);
    CHECK(first_non_finite(v.data(), v.size()) == v.size());
    CHECK(first_non_finite(v.data(), 0) == 0);
    v[999] = std::numeric_limits<float>::max();  // the largest finite value is finite
    v[998] = -std::numeric_limits<float>::denorm_min();
    CHECK(first_non_finite(v.data(), v.size()) == v.size());
    for (size_t at : {size_t(0), size_t(255), size_t(256), size_t(700), size_t(999)})
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
            std::vector<float> w = v;
            w[at] = bad;
            if (at < 999) w[999] = bad;  // a later bad value does not hide the first
            CHECK(first_non_finite(w.data(), w.size()) == at);
        }
}

TEST_CASE("gemm_packed: conv matches the direct definition over kernel/stride/padding/size/batch grid") {
    uint64_t seed = 500;
    const auto grid = test::conv_grid();
    for (const auto& p : grid) check_packed_plain(p, 2, seed += 2);
    CHECK(grid.size() > 60);
}

TEST_CASE("gemm_packed: asymmetric and TF-same padding") {
    uint64_t seed = 900;
    for (const auto& p : test::conv_asym_shapes()) check_packed_plain(p, 2, seed += 2);
}

TEST_CASE("gemm_packed: odd channel counts (3, 5, 17, 33), kernels 1/3/7, strides 1/2, batch 1 and 3") {
    uint64_t seed = 1300;
    for (int cin : {3, 5, 17, 33})
        for (int cout : {3, 5, 17, 33})
            for (int k : {1, 3, 7})
                for (int stride : {1, 2}) {
                    const int batch = (cin + cout + k) % 2 ? 1 : 3;
                    const int pad = k == 1 ? (cout == 17 ? 1 : 0) : k / 2;
                    check_packed_plain(test::conv_shape(batch, 9, 11, cin, cout, k, stride, pad), 2, seed += 2);
                }
}

TEST_CASE("gemm_packed: tiling: many row tiles, K blocks, column splits, 1/2/3/5 threads") {
    std::vector<Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1));     // K = 4608: many K blocks, column split
    shapes.push_back(test::conv_shape(1, 4, 4, 2048, 96, 1, 1, 0));     // 16 rows, K = 2048 direct
    shapes.push_back(test::conv_shape(2, 17, 13, 200, 45, 1, 2, 0));    // strided 1x1, K block ends mid-row
    shapes.push_back(test::conv_shape(1, 23, 23, 3, 64, 7, 2, 3));      // the stem: K = 147
    shapes.push_back(test::conv_shape(1, 31, 29, 70, 40, 3, 1, 1));     // K = 630: a K block ends mid-tap
    for (int threads : {1, 2, 3, 5})
        for (size_t i = 0; i < shapes.size(); ++i) check_packed_plain(shapes[i], threads, 60 + i);
    const auto late = cpu::plan_conv2d_packed(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1), 2);
    CHECK(late.col_tiles > 1);
    CHECK(late.k_blocks > 1);
    CHECK(cpu::plan_conv2d_packed(shapes[0], 2).row_tiles > 1);
}

TEST_CASE("gemm_packed: every epilogue variant (scale, bias, residual, ReLU / leaky) fused in the store") {
    // One K block and several (the epilogue must run only after the last one), 1x1 direct,
    // partial panels and partial row groups.
    const Conv2dParams shapes[] = {test::conv_shape(3, 9, 7, 5, 21, 3, 2, 1), test::conv_shape(1, 8, 9, 300, 37, 1, 1, 0),
                                   test::conv_shape(2, 6, 5, 33, 70, 3, 1, 1), test::conv_shape(1, 5, 5, 17, 33, 7, 1, 3)};
    uint64_t seed = 2000;
    for (const auto& p : shapes)
        for (int threads : {1, 2}) check_packed_all_epilogues(p, threads, seed += 10);
}

TEST_CASE("gemm_packed: ReLU keeps NaN and -0 like the reference; leaky ReLU too") {
    // An input NaN must reach the outputs it touches, through the fused activation.
    Conv2dParams p = test::conv_shape(1, 3, 3, 4, 5, 1, 1, 0);
    std::vector<float> in(size_t(9) * 4, 1.0f), w(size_t(5) * 4, -0.5f);
    in[4 * 4 + 2] = NAN;  // pixel 4
    AlignedBuffer packed(cpu::packed_conv_weights_floats(p));
    {
        auto v = packed_weights(p, w);
        std::copy(v.begin(), v.end(), packed.data());
    }
    for (int act : {1, 2}) {
        Epilogue e;
        e.relu = act == 1;
        e.leaky_alpha = act == 2 ? 0.1f : 0.0f;
        std::vector<float> out(size_t(9) * 5);
        AlignedBuffer ws(cpu::conv2d_workspace_floats(p, 1) + 1);
        cpu::conv2d(p, in.data(), packed.data(), out.data(), e, ws.data(), 1);
        for (int m = 0; m < 9; ++m)
            for (int c = 0; c < 5; ++c) {
                const float y = out[size_t(m) * 5 + c];
                if (m == 4) CHECK(std::isnan(y));
                else CHECK(y == (act == 1 ? 0.0f : 0.1f * -2.0f));
            }
    }
}

TEST_CASE("gemm_packed: plain [K x N] weights still take Eigen's path through cpu::conv2d") {
    Conv2dParams p = test::conv_shape(2, 9, 8, 17, 33, 3, 1, 1);
    auto in = test::random_vector(size_t(2) * 9 * 8 * 17, 77), w = test::random_vector(size_t(33) * 17 * 9, 78);
    std::vector<float> plain(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w.data(), nullptr, plain.data());
    AlignedBuffer packed(cpu::packed_conv_weights_floats(p));
    cpu::pack_conv_weights_panels(p, plain.data(), packed.data());
    const size_t out_n = p.gemm_m() * p.out_c;
    std::vector<float> a(out_n), b(out_n), ref(out_n), abs_sum(out_n);
    AlignedBuffer ws(cpu::conv2d_workspace_floats(p, 2));
    cpu::conv2d(p, in.data(), plain.data(), a.data(), {}, ws.data(), 2);
    cpu::conv2d(p, in.data(), packed.data(), b.data(), {}, ws.data(), 2);
    cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
    check_close(a, ref, abs_sum, p.gemm_k(), "eigen path");
    check_close(b, ref, abs_sum, p.gemm_k(), "packed path");
    // The packed kernel refuses weights packed for another shape.
    Conv2dParams q = p;
    q.out_c = 32;
    CHECK_THROWS_AS(cpu::conv2d_packed(q, in.data(), packed.data(), b.data(), {}, ws.data(), 2), std::invalid_argument);
    // ... also through cpu::conv2d: a tagged buffer is never read as plain weights.
    CHECK_THROWS_AS(cpu::conv2d(q, in.data(), packed.data(), b.data(), {}, ws.data(), 2), std::invalid_argument);
}

// ---- the layer and the model: the packed layout is what is stored after load ------------

#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>

#include <array>
#include <cstdio>
#include <unistd.h>

TEST_CASE("gemm_packed: Conv2d<CpuBackend> stores the panels by default, the plain operand for ConvKernel::Eigen") {
    const int ci = 19, co = 40;
    Conv2dParams geo = Conv2dParams::geometry(ci, co, 3, 2, 1);
    auto w = test::random_vector(size_t(co) * ci * 9, 91), scale = test::random_vector(size_t(co), 92);
    auto bias = test::random_vector(size_t(co), 93);
    const TensorRef ref{w.data(), {co, ci, 3, 3}};
    Conv2d<CpuBackend> packed(geo, ref, scale.data());  // default: Packed
    Conv2d<CpuBackend> eigen(geo, ref, scale.data(), FilterLayout::kPyTorch, ConvKernel::Eigen);
    CHECK(packed.kernel() == ConvKernel::Packed);
    CHECK(eigen.kernel() == ConvKernel::Eigen);
    {
        const ConvKernelScope scope(ConvKernel::Eigen);
        CHECK(Conv2d<CpuBackend>(geo, ref, nullptr).kernel() == ConvKernel::Eigen);
    }
    CHECK(current_conv_kernel() == ConvKernel::Packed);
    CHECK(parse_conv_kernel("eigen") == ConvKernel::Eigen);
    CHECK_THROWS_AS(parse_conv_kernel("mkl"), Error);

    const Shape in_shape{2, 13, 11, ci};
    auto in = test::random_vector(in_shape.numel(), 94);
    const Shape out_shape = packed.output_shape(in_shape);
    std::vector<float> a(out_shape.numel()), b(out_shape.numel());
    LayerContext<CpuBackend> ctx;
    ctx.backend = CpuBackend::make_context(2);
    AlignedBuffer scratch(std::max(packed.scratch_floats(in_shape, ctx.backend), eigen.scratch_floats(in_shape, ctx.backend)));
    ctx.scratch = scratch.data(), ctx.scratch_floats = scratch.size();
    Epilogue e;
    e.bias = bias.data(), e.relu = true;
    packed.forward(ConstTensorView{in.data(), in_shape}, TensorView{a.data(), out_shape}, e, ctx);
    eigen.forward(ConstTensorView{in.data(), in_shape}, TensorView{b.data(), out_shape}, e, ctx);
    // Both against the reference with the folded filter (scale multiplied in).
    std::vector<float> wf(w), ref_out(out_shape.numel()), abs_sum(out_shape.numel());
    for (size_t i = 0; i < wf.size(); ++i) wf[i] *= scale[i / (size_t(ci) * 9)];
    const Conv2dParams p = packed.params_for(in_shape);
    cpu::conv2d_reference(p, in.data(), wf.data(), ref_out.data());
    cpu::apply_epilogue_reference(e, ref_out.data(), p.gemm_m(), co);
    cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(wf).data(), abs_sum.data());
    for (size_t i = 0; i < abs_sum.size(); ++i) abs_sum[i] += std::fabs(bias[i % co]);
    check_close(a, ref_out, abs_sum, p.gemm_k(), "layer packed");
    check_close(b, ref_out, abs_sum, p.gemm_k(), "layer eigen");
}

TEST_CASE("gemm_packed: a ResNet loaded with LoadOptions::conv_kernel Packed and Eigen agrees") {
    // Tolerance: the two GEMMs sum in different orders; through a whole (untrained,
    // synthetic) network the logits may differ by a few ulps of the activations per
    // layer: we ask for 1e-4 of the logits' range, the whole-network rule of test_model.cpp.
    ModelConfig cfg;
    cfg.arch.block = BlockType::Bottleneck;
    cfg.arch.layers = {1, 1, 2, 1};
    cfg.arch.input_h = cfg.arch.input_w = 64;
    HeadConfig g;
    g.name = "gender", g.type = HeadType::Softmax, g.classes = {"female", "male"}, g.num_classes = 2;
    cfg.heads = {g};
    cfg.preprocess = {{PreprocessStep::resize(64, 64), PreprocessStep::to_tensor()}};
    cfg.trained = false;
    const std::string path = "/tmp/softbio_test_" + std::to_string(::getpid()) + "_gemm_packed.safetensors";
    write_synthetic_model(path, cfg, {});
    const int batch = 2;
    auto input = test::random_vector(size_t(batch) * 64 * 64 * 3, 5);
    std::array<std::vector<float>, 2> logits;
    for (int i = 0; i < 2; ++i) {
        LoadOptions opt;
        opt.conv_kernel = i == 0 ? ConvKernel::Packed : ConvKernel::Eigen;
        auto model = load_model(path, opt);
        CHECK(model->blocks().front().units().front().conv().kernel() == opt.conv_kernel);
        auto ws = model->make_workspace(batch);
        model->forward(input.data(), batch, *ws);
        logits[size_t(i)].assign(ws->logits(0), ws->logits(0) + size_t(batch) * 2);
    }
    std::remove(path.c_str());
    double lo = 1e30, hi = -1e30, worst = 0;
    for (size_t i = 0; i < logits[1].size(); ++i) {
        lo = std::min(lo, double(logits[1][i])), hi = std::max(hi, double(logits[1][i]));
        worst = std::max(worst, std::fabs(double(logits[0][i]) - double(logits[1][i])));
    }
    INFO("max |packed - eigen| = " << worst << ", logit range " << hi - lo);
    CHECK(hi > lo);
    CHECK(worst <= 1e-4 * (hi - lo));
}
