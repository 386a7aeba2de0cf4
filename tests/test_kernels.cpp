// tests/test_kernels.cpp — every CPU kernel against its reference, over a grid of shapes.
// Tolerance: the rule in test_util.hpp (pooling is exact up to the order of a sum).
#include <doctest/doctest.h>

#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/gemm.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>

#include <softbio/core/tensor.hpp>

#include "test_util.hpp"

using namespace softbio;
using softbio::Conv2dParams;

TEST_CASE("kernel: gemm matches the triple loop, including odd sizes and leading dimensions") {
    const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {49, 130, 67}, {300, 17, 129}, {64, 256, 1152}};
    for (const auto& s : shapes) {
        const int m = s[0], n = s[1], k = s[2];
        const int lda = k + 3, ldb = n + 5, ldc = n + 1;  // strided sub-matrices
        auto a = test::random_vector(size_t(m) * lda, 1), b = test::random_vector(size_t(k) * ldb, 2);
        std::vector<float> c(size_t(m) * ldc, 42.0f), ref(c), abs_sum(c);
        const cpu::GemmBlockSizes sizes = cpu::plan_gemm(m, n, k);
        AlignedBuffer ws(sizes.workspace_floats());
        cpu::gemm(m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc, sizes, ws.data());
        cpu::gemm_reference(m, n, k, a.data(), lda, b.data(), ldb, ref.data(), ldc);
        cpu::gemm_reference(m, n, k, test::abs_of(a).data(), lda, test::abs_of(b).data(), ldb, abs_sum.data(), ldc);
        for (int i = 0; i < m; ++i)  // padding columns of C are untouched by both
            for (int j = n; j < ldc; ++j) ref[size_t(i) * ldc + j] = c[size_t(i) * ldc + j];
        test::check_close(c, ref, abs_sum, k, "gemm " + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k));
    }
}

namespace {

// Run conv2d (fast) and conv2d_reference for one parameter set and compare.
void check_conv(const Conv2dParams& p, int threads, uint64_t seed) {
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    const size_t out_n = p.gemm_m() * p.out_c;
    std::vector<float> fast(out_n, -7.0f), ref(out_n), abs_sum(out_n);
    std::vector<float> packed(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w.data(), nullptr, packed.data());
    AlignedBuffer ws(cpu::conv2d_workspace_floats(p, threads));
    cpu::conv2d(p, in.data(), packed.data(), fast.data(), {}, ws.data(), threads);
    cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
    test::check_close(fast, ref, abs_sum, p.gemm_k(), test::describe(p) + " threads " + std::to_string(threads));
}

}  // namespace

TEST_CASE("kernel: conv2d matches the direct definition over kernel/stride/padding/size/batch grid") {
    uint64_t seed = 100;
    const auto grid = test::conv_grid();
    for (const auto& p : grid) check_conv(p, 2, seed += 2);
    CHECK(grid.size() > 60);
}

TEST_CASE("kernel: gemm with a plan made for a larger product (as conv2d's last, partial tile) stays in its workspace") {
    // Eigen's heuristic may give a *smaller* product a larger kc; gemm() must use the
    // planned sizes, not recompute them. Guard bytes after the workspace must survive.
    const int m = 256, n = 256, k = 2304;
    const cpu::GemmBlockSizes sizes = cpu::plan_gemm(m, n, k);
    for (auto mn : {std::pair<int, int>{256, 256}, {17, 256}, {256, 5}, {3, 7}}) {
        auto a = test::random_vector(size_t(mn.first) * k, 3), b = test::random_vector(size_t(k) * mn.second, 4);
        std::vector<float> c(size_t(mn.first) * mn.second), ref(c.size()), abs_sum(c.size());
        AlignedBuffer ws(sizes.workspace_floats() + 64);
        for (int g = 0; g < 64; ++g) ws.data()[sizes.workspace_floats() + g] = 1234.5f;
        cpu::gemm(mn.first, mn.second, k, a.data(), k, b.data(), mn.second, c.data(), mn.second, sizes, ws.data());
        for (int g = 0; g < 64; ++g) CHECK(ws.data()[sizes.workspace_floats() + g] == 1234.5f);
        cpu::gemm_reference(mn.first, mn.second, k, a.data(), k, b.data(), mn.second, ref.data(), mn.second);
        cpu::gemm_reference(mn.first, mn.second, k, test::abs_of(a).data(), k, test::abs_of(b).data(), mn.second,
                            abs_sum.data(), mn.second);
        test::check_close(c, ref, abs_sum, k, "gemm with a larger plan");
    }
}

TEST_CASE("kernel: conv2d tiling: many row tiles, column splits, thread counts") {
    // M = 3*19*23 = 1311 rows (6 row tiles, last partial); few rows + wide Cout
    // (column tiles); 1, 2, 3 and 5 threads; 1x1 direct path and strided 1x1.
    const auto shapes = test::conv_tiling_shapes();
    for (int threads : {1, 2, 3, 5})
        for (size_t i = 0; i < shapes.size(); ++i) check_conv(shapes[i], threads, 6 + i);
    const Conv2dParams& big = shapes[0];
    const Conv2dParams& wide = shapes[2];
    CHECK(cpu::plan_conv2d_tiling(wide, 2).col_tiles > 1);
    CHECK(cpu::plan_conv2d_tiling(big, 2).row_tiles > 1);
}

TEST_CASE("kernel: conv2d fused epilogue = reference conv, then scale, bias, residual, ReLU") {
    Conv2dParams p;
    p.batch = 3, p.in_h = 9, p.in_w = 7, p.in_c = 5, p.out_c = 21, p.kernel_h = p.kernel_w = 3, p.stride = 2, p.pad = 1;
    const size_t out_n = p.gemm_m() * p.out_c;
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, 11);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * 9, 12);
    auto scale = test::random_vector(size_t(p.out_c), 13), bias = test::random_vector(size_t(p.out_c), 14);
    auto residual = test::random_vector(out_n, 15);
    for (const softbio::Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data())) {
        std::vector<float> packed(size_t(p.gemm_k()) * p.out_c), fast(out_n), ref(out_n), abs_sum(out_n);
        softbio::pack_conv_weights(p, w.data(), nullptr, packed.data());
        AlignedBuffer ws(cpu::conv2d_workspace_floats(p, 2));
        cpu::conv2d(p, in.data(), packed.data(), fast.data(), e, ws.data(), 2);
        cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
        cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.out_c);
        cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
        for (size_t i = 0; i < out_n; ++i)  // the epilogue's own terms
            abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs(scale[i % p.out_c]) : 1.0f) + std::fabs(bias[i % p.out_c]) +
                         (e.residual ? std::fabs(residual[i]) : 0.0f);
        test::check_close(fast, ref, abs_sum, p.gemm_k(), "fused epilogue");
        if (e.relu) {
            size_t zeros = 0;
            for (float v : fast) zeros += v == 0.0f;
            CHECK(zeros > out_n / 10);  // ReLU really clipped something
        }
    }
}

TEST_CASE("kernel: pack_conv_weights folds a per-output-channel scale") {
    Conv2dParams p;
    p.in_c = 3, p.out_c = 4, p.kernel_h = p.kernel_w = 3;
    auto w = test::random_vector(4 * 3 * 9, 21);
    const float scale[4] = {0.5f, -2.0f, 1.0f, 3.0f};
    std::vector<float> packed(27 * 4);
    softbio::pack_conv_weights(p, w.data(), scale, packed.data());
    for (int co = 0; co < 4; ++co)
        for (int ci = 0; ci < 3; ++ci)
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx)
                    CHECK(packed[size_t((ky * 3 + kx) * 3 + ci) * 4 + co] == w[size_t(((co * 3 + ci) * 3 + ky) * 3 + kx)] * scale[co]);
}

TEST_CASE("kernel: epilogue over rows matches the element-wise reference") {
    const size_t m = 301;
    const int c = 19;
    auto x = test::random_vector(m * c, 31), res = test::random_vector(m * c, 32);
    auto scale = test::random_vector(c, 33), bias = test::random_vector(c, 34);
    softbio::Epilogue e{scale.data(), bias.data(), res.data(), true};
    auto fast = x, ref = x;
    cpu::apply_epilogue_rows(e, fast.data(), m, c, 3);
    cpu::apply_epilogue_reference(e, ref.data(), m, c);
    std::vector<float> abs_sum(m * c);
    for (size_t i = 0; i < m * c; ++i) abs_sum[i] = std::fabs(x[i] * scale[i % c]) + std::fabs(bias[i % c]) + std::fabs(res[i]);
    test::check_close(fast, ref, abs_sum, 3, "epilogue");
}

TEST_CASE("kernel: ReLU keeps NaN and -0.0 in the fused epilogue, the row epilogue and the reference alike") {
    // The NaN rule is defined once (softbio::relu, kernels/op_params.hpp): negative -> 0,
    // anything else passes, like torch.relu. A NaN must surface, never become a 0.
    const float nan = std::nanf("");
    const std::vector<float> x = {nan, -0.0f, -1.5f, 0.0f, 2.5f, -nan, 1e-30f, -1e-30f};
    softbio::Epilogue e;
    e.relu = true;
    auto rows = x, ref = x, tile = x;
    cpu::apply_epilogue_rows(e, rows.data(), 1, int(x.size()), 2);
    cpu::apply_epilogue_reference(e, ref.data(), 1, int(x.size()));
    cpu::apply_epilogue(e, tile.data(), 0, 1, 0, int(x.size()), int(x.size()));
    const std::vector<float> expect = {nan, -0.0f, 0.0f, 0.0f, 2.5f, -nan, 1e-30f, 0.0f};
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i);
        for (const auto* got : {&rows, &ref, &tile}) {
            CHECK(std::isnan((*got)[i]) == std::isnan(expect[i]));
            if (!std::isnan(expect[i])) CHECK(std::signbit((*got)[i]) == std::signbit(expect[i]));
            if (!std::isnan(expect[i])) CHECK((*got)[i] == expect[i]);
        }
    }
}

TEST_CASE("kernel: max-pool and avg-pool match PyTorch semantics over a grid") {
    int cases = 0;
    for (const auto& p : test::pool_grid()) {
        auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.channels, 40 + cases);
        const size_t out_n = size_t(p.batch) * p.out_h() * p.out_w() * p.channels;
        std::vector<float> fast(out_n), ref(out_n);
        cpu::maxpool2d(p, in.data(), fast.data(), 2);
        cpu::maxpool2d_reference(p, in.data(), ref.data());
        CHECK(fast == ref);  // max is exact
        cpu::avgpool2d(p, in.data(), fast.data(), 2);
        cpu::avgpool2d_reference(p, in.data(), ref.data());
        std::vector<float> abs_sum(out_n, 1.0f);  // |mean of values in [-1,1]| <= 1
        test::check_close(fast, ref, abs_sum, p.kernel * p.kernel, "avgpool");
        ++cases;
    }
    CHECK(cases > 100);
}

TEST_CASE("kernel: AvgPool2d(7, 1, 2) on a 4x4 map: four identical outputs, sum/49 (Raschka's pool)") {
    softbio::Pool2dParams p;
    p.batch = 1, p.in_h = 4, p.in_w = 4, p.channels = 2, p.kernel = 7, p.stride = 1, p.pad = 2;
    REQUIRE(p.out_h() == 2);
    std::vector<float> in(32), out(8);
    double sum0 = 0, sum1 = 0;
    for (int i = 0; i < 16; ++i) {
        in[size_t(i) * 2] = float(i + 1);
        in[size_t(i) * 2 + 1] = float(i * i) * 0.25f;
        sum0 += i + 1;
        sum1 += i * i * 0.25;
    }
    cpu::avgpool2d(p, in.data(), out.data(), 1);
    for (int q = 0; q < 4; ++q) {
        CHECK(out[size_t(q) * 2] == doctest::Approx(sum0 / 49).epsilon(1e-6));
        CHECK(out[size_t(q) * 2 + 1] == doctest::Approx(sum1 / 49).epsilon(1e-6));
    }
}

TEST_CASE("kernel: max-pool padding is -inf, not zero") {
    softbio::Pool2dParams p;
    p.batch = 1, p.in_h = 2, p.in_w = 2, p.channels = 1, p.kernel = 3, p.stride = 2, p.pad = 1;
    std::vector<float> in = {-5, -6, -7, -8}, out(1);
    cpu::maxpool2d(p, in.data(), out.data(), 1);
    CHECK(out[0] == -5.0f);
}

TEST_CASE("kernel: global average pool matches the reference") {
    for (int batch : {1, 3}) {
        const int h = 7, w = 5, c = 33;
        auto in = test::random_vector(size_t(batch) * h * w * c, 50 + batch);
        std::vector<float> fast(size_t(batch) * c), ref(fast.size()), ones(fast.size(), 1.0f);
        cpu::global_avgpool(batch, h, w, c, in.data(), fast.data(), 2);
        cpu::global_avgpool_reference(batch, h, w, c, in.data(), ref.data());
        test::check_close(fast, ref, ones, h * w, "global avgpool");
    }
}

TEST_CASE("kernel: linear matches the reference, and flatten follows PyTorch's NCHW order") {
    for (int batch : {1, 3})
        for (auto io : {std::pair<int, int>{8192, 2}, {2048, 25}, {7, 3}, {513, 1000}}) {
            auto x = test::random_vector(size_t(batch) * io.first, 60), w = test::random_vector(size_t(io.second) * io.first, 61);
            auto b = test::random_vector(size_t(io.second), 62);
            std::vector<float> fast(size_t(batch) * io.second), ref(fast.size()), abs_sum(fast.size());
            cpu::linear(batch, io.first, io.second, x.data(), w.data(), b.data(), fast.data(), 2);
            cpu::linear_reference(batch, io.first, io.second, x.data(), w.data(), b.data(), ref.data());
            cpu::linear_reference(batch, io.first, io.second, test::abs_of(x).data(), test::abs_of(w).data(),
                                  test::abs_of(b).data(), abs_sum.data());
            test::check_close(fast, ref, abs_sum, io.first, "linear");
        }
    // 2x2 map, 3 channels: NCHW flatten index = 4c + 2h + w.
    std::vector<float> nhwc(12), flat(12);
    for (int h = 0; h < 2; ++h)
        for (int w = 0; w < 2; ++w)
            for (int c = 0; c < 3; ++c) nhwc[size_t((h * 2 + w) * 3 + c)] = float(100 * c + 10 * h + w);
    cpu::flatten_nchw_order(1, 2, 2, 3, nhwc.data(), flat.data());
    for (int h = 0; h < 2; ++h)
        for (int w = 0; w < 2; ++w)
            for (int c = 0; c < 3; ++c) CHECK(flat[size_t(4 * c + 2 * h + w)] == float(100 * c + 10 * h + w));
}
