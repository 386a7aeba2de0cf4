// tests/cuda/test_cuda_emulated.cpp — every CUDA kernel body, run by the host SIMT
// emulator (simt_emulator.hpp), against the CPU references. No GPU needed: this runs in
// CI on any machine and tests the indexing, tiling, zero padding, split-K and cp.async
// pipeline of the kernels that the GPU will run (kernels/cuda/*.cuh), the launch
// planning (plan_conv2d, make_conv_launch) and the weight packing.
//
// Tolerances: the rule of tests/test_util.hpp (|fast - ref| <= 8 u sqrt(K) S, S from the
// reference on |a|, |b|) for sums; bit-exact where the kernel reproduces the CPU kernel's
// order of operations (max/avg/global pooling, coral, flatten, preprocessing).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>
#include <softbio/kernels/cuda/conv2d_implicit_gemm.cuh>
#include <softbio/kernels/cuda/epilogue.cuh>
#include <softbio/kernels/cuda/linear.cuh>
#include <softbio/kernels/cuda/pool.cuh>
#include <softbio/kernels/cuda/preprocess.cuh>

#if __has_include(<softbio/image/preprocess.hpp>)
#include <softbio/image/preprocess.hpp>
#define SOFTBIO_TEST_HAVE_IMAGE 1
#endif

#include "../test_util.hpp"
#include "simt_emulator.hpp"

using namespace softbio;
namespace sc = softbio::cuda;

namespace {

constexpr int kFakeSms = 2;  // small grids for the elementwise kernels: exercises the grid-stride loops

cpu::Conv2dParams to_cpu(const sc::Conv2dParams& p) {
    cpu::Conv2dParams q;
    q.batch = p.batch, q.in_h = p.in_h, q.in_w = p.in_w, q.in_c = p.in_c, q.out_c = p.out_c;
    q.kernel_h = p.kernel_h, q.kernel_w = p.kernel_w, q.stride = p.stride, q.pad = p.pad;
    return q;
}

std::string describe(const sc::Conv2dParams& p) {
    return "conv k" + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " s" + std::to_string(p.stride) +
           " p" + std::to_string(p.pad) + " N" + std::to_string(p.batch) + " " + std::to_string(p.in_h) + "x" +
           std::to_string(p.in_w) + "x" + std::to_string(p.in_c) + "->" + std::to_string(p.out_c);
}

void emulate_epilogue(simt::Emulator& emu, const sc::EpilogueArgs& a) {
    const int blocks = sc::elementwise_blocks(a.units(), sc::kEpilogueThreads, kFakeSms);
    emu.launch({blocks, 1, 1}, sc::kEpilogueThreads, 0, [&](simt::Ctx& c) { sc::epilogue_body(c, a); });
}

void emulate_conv(simt::Emulator& emu, const sc::ConvLaunch& L) {
    sc::with_conv_kernel(L.plan.tile, L.gather, [&](auto shape, auto gather) {
        using T = decltype(shape);
        constexpr sc::ConvGather G = decltype(gather)::value;
        emu.launch({int(L.plan.m_tiles), L.plan.n_tiles, L.plan.splits}, T::kThreads, T::kSmemBytes,
                   [&](simt::Ctx& c) { sc::conv2d_block<T, G>(c, L.args); });
    });
    if (L.reduce) emulate_epilogue(emu, L.reduce_args);
}

struct ConvCase {
    sc::ConvGather gather;
    sc::ConvTile tile;
    int splits;
};

/// Run one convolution through the emulated kernel and compare with the reference.
/// `misalign` shifts the input by one float (forces the scalar gather on Cin % 4 == 0).
ConvCase check_conv(const sc::Conv2dParams& p, uint64_t seed, int sm_count, int force_tile = -1, int force_splits = 0,
                    const cpu::Epilogue* epi_cpu = nullptr, bool misalign = false) {
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c;
    auto in_store = test::random_vector(in_n + 4, seed);
    const float* in = in_store.data() + (misalign ? 1 : 0);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    const size_t out_n = p.gemm_m() * p.out_c;
    std::vector<float> packed(size_t(p.gemm_k()) * p.out_c), packed_cpu(packed.size());
    sc::pack_conv_weights(p, w.data(), nullptr, packed.data());
    cpu::pack_conv_weights(to_cpu(p), w.data(), nullptr, packed_cpu.data());
    REQUIRE(packed == packed_cpu);

    std::vector<float> out(out_n, std::numeric_limits<float>::quiet_NaN());  // poison: every output must be written
    const sc::ConvPlan plan = sc::plan_conv2d(p, sm_count, force_tile, force_splits);
    std::vector<float> ws(plan.workspace_floats + 1, std::numeric_limits<float>::quiet_NaN());
    sc::Epilogue e;
    if (epi_cpu) e.scale = epi_cpu->scale, e.bias = epi_cpu->bias, e.residual = epi_cpu->residual, e.relu = epi_cpu->relu;
    const sc::ConvLaunch L = sc::make_conv_launch(p, in, packed.data(), out.data(), e,
                                                  plan.workspace_floats ? ws.data() : nullptr, sm_count, force_tile, force_splits);
    REQUIRE(L.plan.splits == plan.splits);

    simt::Emulator emu(seed);
    emu.allow(in, in_n * sizeof(float), false);
    emu.allow(packed.data(), packed.size() * sizeof(float), false);
    emu.allow(out.data(), out.size() * sizeof(float), true);
    if (plan.workspace_floats) emu.allow(ws.data(), plan.workspace_floats * sizeof(float), true);
    if (epi_cpu) {
        if (e.scale) emu.allow(e.scale, size_t(p.out_c) * sizeof(float), false);
        if (e.bias) emu.allow(e.bias, size_t(p.out_c) * sizeof(float), false);
        if (e.residual) emu.allow(e.residual, out_n * sizeof(float), false);
    }
    emulate_conv(emu, L);

    std::vector<float> ref(out_n), abs_sum(out_n);
    std::vector<float> in_vec(in, in + in_n);
    cpu::conv2d_reference(to_cpu(p), in_vec.data(), w.data(), ref.data());
    cpu::conv2d_reference(to_cpu(p), test::abs_of(in_vec).data(), test::abs_of(w).data(), abs_sum.data());
    if (epi_cpu) {
        cpu::apply_epilogue_reference(*epi_cpu, ref.data(), p.gemm_m(), p.out_c);
        for (size_t i = 0; i < out_n; ++i) {
            const int c = int(i % size_t(p.out_c));
            abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs(e.scale[c]) : 1.0f) + (e.bias ? std::fabs(e.bias[c]) : 0.0f) +
                         (e.residual ? std::fabs(e.residual[i]) : 0.0f);
        }
    }
    test::check_close(out, ref, abs_sum, p.gemm_k(),
                      describe(p) + " tile " + sc::tile_name(L.plan.tile) + " gather " + sc::gather_name(L.gather) +
                          " splits " + std::to_string(L.plan.splits) + (L.args.bvec ? " bvec" : " bscalar"));
    return {L.gather, L.plan.tile, L.plan.splits};
}

}  // namespace

TEST_CASE("cuda emulated: conv2d over the CPU test grid (kernel/stride/padding/size/batch), planned as on an H100") {
    uint64_t seed = 100;
    int cases = 0, scalar = 0, vec = 0, pointwise = 0, split = 0;
    for (int k : {1, 3, 7})
        for (int stride : {1, 2})
            for (int pad = 0; pad <= 3; ++pad) {
                if (pad > k / 2 + 1) continue;
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{7, 7}, {9, 5}, {11, 13}})
                        for (bool quad_channels : {false, true}) {
                            sc::Conv2dParams p;
                            p.batch = batch, p.in_h = hw.first, p.in_w = hw.second;
                            // 17 / 3 as in tests/test_kernels.cpp (scalar gather), 16 / 4 for the vector gathers
                            p.in_c = (k == 7) ? (quad_channels ? 4 : 3) : (quad_channels ? 16 : 17);
                            p.out_c = (batch == 1) ? 20 : 33;
                            p.kernel_h = p.kernel_w = k, p.stride = stride, p.pad = pad;
                            if (p.in_h + 2 * pad < k || p.in_w + 2 * pad < k) continue;
                            const ConvCase r = check_conv(p, seed += 2, 132);
                            ++cases;
                            scalar += r.gather == sc::ConvGather::kScalar;
                            vec += r.gather == sc::ConvGather::kVec4;
                            pointwise += r.gather == sc::ConvGather::kPointwise;
                            split += r.splits > 1;
                        }
            }
    CHECK(cases > 120);
    CHECK(scalar > 0);
    CHECK(vec > 0);
    CHECK(pointwise > 0);
    CHECK(split > 0);
}

TEST_CASE("cuda emulated: every tile shape x gather x split-K on layer-like shapes") {
    std::vector<sc::Conv2dParams> shapes;
    sc::Conv2dParams big;  // M = 3*19*23 = 1311: several 128-row tiles, the last partial
    big.batch = 3, big.in_h = 19, big.in_w = 23, big.in_c = 20, big.out_c = 36, big.kernel_h = big.kernel_w = 3,
    big.stride = 1, big.pad = 1;
    shapes.push_back(big);
    sc::Conv2dParams deep;  // K = 9*64 = 576
    deep.batch = 1, deep.in_h = 9, deep.in_w = 10, deep.in_c = 64, deep.out_c = 132, deep.kernel_h = deep.kernel_w = 3,
    deep.stride = 2, deep.pad = 1;
    shapes.push_back(deep);
    sc::Conv2dParams pointwise;  // 1x1 stride 1: A is the activation matrix
    pointwise.batch = 2, pointwise.in_h = 15, pointwise.in_w = 11, pointwise.in_c = 64, pointwise.out_c = 132;
    shapes.push_back(pointwise);
    sc::Conv2dParams down = pointwise;  // strided 1x1 (downsample shortcut)
    down.stride = 2, down.out_c = 129;  // Cout % 4 != 0: scalar B and C
    shapes.push_back(down);
    sc::Conv2dParams stem;  // the 7x7/2 stem, Cin = 3, Cout = 64
    stem.batch = 1, stem.in_h = 20, stem.in_w = 18, stem.in_c = 3, stem.out_c = 64, stem.kernel_h = stem.kernel_w = 7,
    stem.stride = 2, stem.pad = 3;
    shapes.push_back(stem);
    uint64_t seed = 500;
    for (const auto& p : shapes)
        for (int tile = 0; tile < 3; ++tile)
            for (int splits : {1, 3}) {
                const ConvCase r = check_conv(p, seed += 2, 132, tile, splits);
                CHECK(int(r.tile) == tile);
                // forced splits, adjusted so that every slice has the same number of K tiles but the last
                const long long kt = sc::plan_conv2d(p, 132, tile, 1).ktiles;
                const long long per = (kt + std::min<long long>(splits, kt) - 1) / std::min<long long>(splits, kt);
                CHECK(r.splits == (kt + per - 1) / per);
            }
    // Misaligned input (not 16-byte aligned): the vector gathers must not be chosen.
    const ConvCase r = check_conv(pointwise, 900, 132, 1, 1, nullptr, /*misalign=*/true);
    CHECK(r.gather == sc::ConvGather::kScalar);
}

TEST_CASE("cuda emulated: fused epilogue (scale, bias, residual, ReLU), direct and through the split-K reduction") {
    for (int out_c : {21, 24})  // scalar and float4 epilogue paths
        for (int splits : {1, 2}) {
            sc::Conv2dParams p;
            p.batch = 3, p.in_h = 9, p.in_w = 7, p.in_c = 8, p.out_c = out_c, p.kernel_h = p.kernel_w = 3, p.stride = 2,
            p.pad = 1;
            const size_t out_n = p.gemm_m() * p.out_c;
            auto scale = test::random_vector(size_t(p.out_c), 13), bias = test::random_vector(size_t(p.out_c), 14);
            auto residual = test::random_vector(out_n, 15);
            for (bool with_scale : {false, true})
                for (bool with_residual : {false, true})
                    for (bool relu : {false, true}) {
                        cpu::Epilogue e;
                        e.scale = with_scale ? scale.data() : nullptr;
                        e.bias = bias.data();
                        e.residual = with_residual ? residual.data() : nullptr;
                        e.relu = relu;
                        check_conv(p, 11, 132, 2, splits, &e);
                    }
        }
}

TEST_CASE("cuda emulated: unfused epilogue pass in place matches the element-wise reference") {
    for (int c : {19, 20}) {
        const size_t m = 301;
        auto x = test::random_vector(m * c, 31), res = test::random_vector(m * c, 32);
        auto scale = test::random_vector(size_t(c), 33), bias = test::random_vector(size_t(c), 34);
        cpu::Epilogue ec{scale.data(), bias.data(), res.data(), true};
        auto ref = x;
        cpu::apply_epilogue_reference(ec, ref.data(), m, c);
        sc::EpilogueArgs a;
        a.in = x.data(), a.out = x.data(), a.rows = m, a.channels = c;
        a.e.scale = scale.data(), a.e.bias = bias.data(), a.e.residual = res.data(), a.e.relu = true;
        sc::choose_epilogue_vec(a);
        CHECK(a.vec == (c % 4 == 0));
        simt::Emulator emu;
        emu.allow(x.data(), x.size() * 4, true);
        emu.allow(res.data(), res.size() * 4, false);
        emu.allow(scale.data(), scale.size() * 4, false);
        emu.allow(bias.data(), bias.size() * 4, false);
        emulate_epilogue(emu, a);
        CHECK(x == ref);  // same operations in the same order: bit-identical
    }
}

TEST_CASE("cuda emulated: max/avg pooling are bit-identical to the CPU kernels over the CPU test grid") {
    int cases = 0;
    for (int k : {1, 2, 3, 4, 7})
        for (int s : {1, 2, 3, 4})
            for (int pad = 0; pad <= k / 2; ++pad)
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{4, 4}, {7, 9}, {8, 5}})
                        for (int channels : {19, 20}) {
                            sc::Pool2dParams p;
                            p.batch = batch, p.in_h = hw.first, p.in_w = hw.second, p.channels = channels;
                            p.kernel = k, p.stride = s, p.pad = pad;
                            if (p.in_h + 2 * pad < k || p.in_w + 2 * pad < k) continue;
                            cpu::Pool2dParams q;
                            q.batch = batch, q.in_h = p.in_h, q.in_w = p.in_w, q.channels = channels, q.kernel = k,
                            q.stride = s, q.pad = pad;
                            auto in = test::random_vector(size_t(batch) * p.in_h * p.in_w * channels, 40 + cases);
                            const size_t out_n = size_t(batch) * p.out_h() * p.out_w() * channels;
                            for (bool avg : {false, true}) {
                                std::vector<float> got(out_n, std::numeric_limits<float>::quiet_NaN()), fast(out_n), ref(out_n);
                                const sc::PoolArgs a = sc::make_pool_args(p, in.data(), got.data());
                                CHECK(a.vec == (channels % 4 == 0));
                                simt::Emulator emu;
                                emu.allow(in.data(), in.size() * 4, false);
                                emu.allow(got.data(), got.size() * 4, true);
                                const int blocks = sc::elementwise_blocks(a.units, sc::kPoolThreads, kFakeSms);
                                emu.launch({blocks, 1, 1}, sc::kPoolThreads, 0, [&](simt::Ctx& c) {
                                    if (avg) sc::pool2d_body<true>(c, a);
                                    else sc::pool2d_body<false>(c, a);
                                });
                                if (avg) {
                                    cpu::avgpool2d(q, in.data(), fast.data(), 1);
                                    cpu::avgpool2d_reference(q, in.data(), ref.data());
                                    test::check_close(got, ref, std::vector<float>(out_n, 1.0f), k * k, "avgpool");
                                } else {
                                    cpu::maxpool2d(q, in.data(), fast.data(), 1);
                                    cpu::maxpool2d_reference(q, in.data(), ref.data());
                                    CHECK(got == ref);
                                }
                                CHECK(got == fast);
                            }
                            ++cases;
                        }
    CHECK(cases > 200);
}

TEST_CASE("cuda emulated: AvgPool2d(7, 1, 2) on a 4x4 map gives sum/49; max-pool padding is -inf") {
    sc::Pool2dParams p;
    p.batch = 1, p.in_h = 4, p.in_w = 4, p.channels = 2, p.kernel = 7, p.stride = 1, p.pad = 2;
    REQUIRE(p.out_h() == 2);
    std::vector<float> in(32), out(8);
    double sum0 = 0;
    for (int i = 0; i < 16; ++i) in[size_t(i) * 2] = float(i + 1), in[size_t(i) * 2 + 1] = 0.0f, sum0 += i + 1;
    simt::Emulator emu;
    emu.allow(in.data(), in.size() * 4, false);
    emu.allow(out.data(), out.size() * 4, true);
    const sc::PoolArgs a = sc::make_pool_args(p, in.data(), out.data());
    emu.launch({1, 1, 1}, 32, 0, [&](simt::Ctx& c) { sc::pool2d_body<true>(c, a); });
    for (int q = 0; q < 4; ++q) CHECK(out[size_t(q) * 2] == doctest::Approx(sum0 / 49).epsilon(1e-6));

    sc::Pool2dParams m;
    m.batch = 1, m.in_h = 2, m.in_w = 2, m.channels = 1, m.kernel = 3, m.stride = 2, m.pad = 1;
    std::vector<float> neg = {-5, -6, -7, -8}, mo(1);
    simt::Emulator emu2;
    emu2.allow(neg.data(), 16, false);
    emu2.allow(mo.data(), 4, true);
    const sc::PoolArgs b = sc::make_pool_args(m, neg.data(), mo.data());
    emu2.launch({1, 1, 1}, 32, 0, [&](simt::Ctx& c) { sc::pool2d_body<false>(c, b); });
    CHECK(mo[0] == -5.0f);
}

TEST_CASE("cuda emulated: global average pool is bit-identical to the CPU kernel") {
    for (int batch : {1, 3})
        for (int c : {33, 36}) {
            const int h = 7, w = 5;
            auto in = test::random_vector(size_t(batch) * h * w * c, 50 + batch);
            std::vector<float> got(size_t(batch) * c, std::numeric_limits<float>::quiet_NaN()), fast(got.size()), ref(got.size());
            const sc::GlobalPoolArgs a = sc::make_global_pool_args(batch, h, w, c, in.data(), got.data());
            simt::Emulator emu;
            emu.allow(in.data(), in.size() * 4, false);
            emu.allow(got.data(), got.size() * 4, true);
            emu.launch({1, 1, 1}, 32, 0, [&](simt::Ctx& cx) { sc::global_avgpool_body(cx, a); });
            cpu::global_avgpool(batch, h, w, c, in.data(), fast.data(), 1);
            cpu::global_avgpool_reference(batch, h, w, c, in.data(), ref.data());
            CHECK(got == fast);
            test::check_close(got, ref, std::vector<float>(got.size(), 1.0f), h * w, "global avgpool");
        }
}

TEST_CASE("cuda emulated: linear (small-batch and tiled kernels) matches the reference; coral and flatten exact") {
    for (int batch : {1, 3, 8, 9, 40})
        for (auto io : {std::pair<int, int>{2048, 2}, {2048, 25}, {7, 3}, {513, 130}, {96, 1000}}) {
            if (batch > 8 && io.second == 1000 && io.first > 100) continue;
            auto x = test::random_vector(size_t(batch) * io.first, 60), w = test::random_vector(size_t(io.second) * io.first, 61);
            auto b = test::random_vector(size_t(io.second), 62);
            std::vector<float> got(size_t(batch) * io.second, std::numeric_limits<float>::quiet_NaN()), ref(got.size()),
                abs_sum(got.size());
            const sc::LinearArgs a = sc::make_linear_args(batch, io.first, io.second, x.data(), w.data(), b.data(), got.data());
            simt::Emulator emu;
            emu.allow(x.data(), x.size() * 4, false);
            emu.allow(w.data(), w.size() * 4, false);
            emu.allow(b.data(), b.size() * 4, false);
            emu.allow(got.data(), got.size() * 4, true);
            if (batch <= sc::kLinearSmallRows) {
                const int blocks = (io.second + sc::kLinearSmallOutputs - 1) / sc::kLinearSmallOutputs;
                emu.launch({blocks, 1, 1}, sc::kLinearSmallThreads, sc::kLinearSmallSmemBytes,
                           [&](simt::Ctx& c) { sc::linear_small_body(c, a); });
            } else {
                emu.launch({(io.second + sc::kLinearTileOutputs - 1) / sc::kLinearTileOutputs,
                            (batch + sc::kLinearTileRows - 1) / sc::kLinearTileRows, 1},
                           sc::kLinearTileThreads, sc::kLinearTileSmemBytes, [&](simt::Ctx& c) { sc::linear_tiled_body(c, a); });
            }
            cpu::linear_reference(batch, io.first, io.second, x.data(), w.data(), b.data(), ref.data());
            cpu::linear_reference(batch, io.first, io.second, test::abs_of(x).data(), test::abs_of(w).data(),
                                  test::abs_of(b).data(), abs_sum.data());
            test::check_close(got, ref, abs_sum, io.first,
                              "linear batch " + std::to_string(batch) + " " + std::to_string(io.first) + "->" +
                                  std::to_string(io.second));
        }
    // CORAL thresholds.
    {
        const int n = 5, k1 = 25;
        auto g = test::random_vector(n, 70), bias = test::random_vector(k1, 71);
        std::vector<float> z(size_t(n) * k1, std::numeric_limits<float>::quiet_NaN());
        simt::Emulator emu;
        emu.allow(g.data(), g.size() * 4, false);
        emu.allow(bias.data(), bias.size() * 4, false);
        emu.allow(z.data(), z.size() * 4, true);
        const sc::CoralArgs a{g.data(), bias.data(), z.data(), n, k1};
        emu.launch({1, 1, 1}, 64, 0, [&](simt::Ctx& c) { sc::coral_body(c, a); });
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < k1; ++k) CHECK(z[size_t(i) * k1 + k] == g[size_t(i)] + bias[size_t(k)]);
    }
    // Flatten: 2x2 maps, 3 channels, batch 2, vs the CPU kernel.
    {
        auto in = test::random_vector(2 * 2 * 2 * 3, 72);
        std::vector<float> got(in.size(), std::numeric_limits<float>::quiet_NaN()), ref(in.size());
        simt::Emulator emu;
        emu.allow(in.data(), in.size() * 4, false);
        emu.allow(got.data(), got.size() * 4, true);
        const sc::FlattenArgs a{in.data(), got.data(), 2, 2, 2, 3};
        emu.launch({1, 1, 1}, 7, 0, [&](simt::Ctx& c) { sc::flatten_body(c, a); });
        cpu::flatten_nchw_order(2, 2, 2, 3, in.data(), ref.data());
        CHECK(got == ref);
    }
}

TEST_CASE("cuda emulated: uint8 HWC -> normalised NHWC floats, bit-exact with the CPU's to_tensor/normalize") {
    const int batch = 2, h = 5, w = 7;
    const size_t row_stride = size_t(w) * 3 + 5, image_stride = row_stride * h + 3;  // padded rows and images
    std::vector<std::uint8_t> src(image_stride * batch);
    for (size_t i = 0; i < src.size(); ++i) src[i] = std::uint8_t((i * 37 + 11) % 256);
    for (bool normalize : {false, true}) {
        sc::PreprocessArgs a;
        std::vector<float> got(size_t(batch) * h * w * 3, std::numeric_limits<float>::quiet_NaN());
        a.src = src.data(), a.dst = got.data(), a.batch = batch, a.h = h, a.w = w, a.row_stride = row_stride,
        a.image_stride = image_stride, a.normalize = normalize;
        const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
        for (int c = 0; c < 3; ++c) a.mean[c] = mean[c], a.std[c] = stdv[c];
        simt::Emulator emu;
        emu.allow(src.data(), src.size(), false);
        emu.allow(got.data(), got.size() * 4, true);
        emu.launch({2, 1, 1}, 64, 0, [&](simt::Ctx& c) { sc::preprocess_body(c, a); });
        // The documented formula, in fp32.
        for (int n = 0; n < batch; ++n)
            for (int y = 0; y < h; ++y)
                for (int j = 0; j < w * 3; ++j) {
                    float x = float(src[n * image_stride + y * row_stride + size_t(j)]) / 255.0f;
                    if (normalize) x = (x - mean[j % 3]) / stdv[j % 3];
                    CHECK(got[(size_t(n) * h + y) * w * 3 + size_t(j)] == x);
                }
#ifdef SOFTBIO_TEST_HAVE_IMAGE
        // And the CPU pipeline itself (softbio/image/preprocess.hpp).
        nlohmann::json steps = nlohmann::json::array({{{"op", "to_tensor"}}});
        if (normalize)
            steps.push_back({{"op", "normalize"}, {"mean", {0.485, 0.456, 0.406}}, {"std", {0.229, 0.224, 0.225}}});
        const PreprocessSpec spec = parse_preprocess({{"steps", steps}}, "test");
        PreprocessWorkspace pws;
        std::vector<float> cpu_out(size_t(h) * w * 3);
        for (int n = 0; n < batch; ++n) {
            preprocess_pixels(src.data() + n * image_stride, h, w, row_stride, spec, pws, cpu_out.data());
            CHECK(std::memcmp(cpu_out.data(), got.data() + size_t(n) * h * w * 3, cpu_out.size() * 4) == 0);
        }
#endif
    }
}

TEST_CASE("cuda planning: ResNet-101 layers at batch 1 and 256 get sane plans on an H100 (132 SMs)") {
    struct L {
        int hw, cin, cout, k, s;
    };
    // The distinct conv shapes of torchvision's ResNet-101 at 224 px (input sizes).
    const L layers[] = {{224, 3, 64, 7, 2},  {56, 64, 64, 1, 1},   {56, 64, 64, 3, 1},   {56, 64, 256, 1, 1},
                        {56, 256, 64, 1, 1}, {56, 256, 128, 1, 1}, {56, 128, 128, 3, 2}, {28, 128, 512, 1, 1},
                        {56, 256, 512, 1, 2}, {28, 512, 128, 1, 1}, {28, 128, 128, 3, 1}, {28, 512, 256, 1, 1},
                        {28, 256, 256, 3, 2}, {14, 256, 1024, 1, 1}, {28, 512, 1024, 1, 2}, {14, 1024, 256, 1, 1},
                        {14, 256, 256, 3, 1}, {14, 1024, 512, 1, 1}, {14, 512, 512, 3, 2}, {7, 512, 2048, 1, 1},
                        {14, 1024, 2048, 1, 2}, {7, 2048, 512, 1, 1}, {7, 512, 512, 3, 1}};
    for (int batch : {1, 256})
        for (double scale : {1.0, 128.0 / 224.0})
            for (const auto& l : layers) {
                sc::Conv2dParams p;
                p.batch = batch, p.in_h = p.in_w = int(std::lround(l.hw * scale)), p.in_c = l.cin, p.out_c = l.cout;
                p.kernel_h = p.kernel_w = l.k, p.stride = l.s, p.pad = l.k / 2;
                const sc::ConvPlan plan = sc::plan_conv2d(p, 132);
                INFO(describe(p) << ": tile " << std::string(sc::tile_name(plan.tile)) << " splits " << plan.splits
                                 << " blocks " << plan.blocks());
                CHECK(plan.splits >= 1);
                CHECK((long long)plan.ktiles_per_split * plan.splits >= plan.ktiles);
                CHECK((long long)plan.ktiles_per_split * (plan.splits - 1) < plan.ktiles);  // no empty slice
                CHECK(plan.m_tiles * plan.bm >= (long long)p.gemm_m());
                CHECK(plan.n_tiles * plan.bn >= p.out_c);
                CHECK(plan.workspace_floats == (plan.splits > 1 ? size_t(plan.splits) * p.gemm_m() * p.out_c : 0));
                CHECK(plan.n_tiles <= 65535);
                CHECK(plan.splits <= 65535);
                if (batch == 256) {
                    CHECK(plan.splits == 1);                    // big batches never need split-K
                    CHECK(plan.tile != sc::ConvTile::k32x32);   // nor small tiles
                } else if (plan.ktiles >= 2 * sc::kMinKtilesPerSplit) {
                    CHECK(plan.blocks() >= 132);  // batch 1: at least one block per SM (unless K is tiny)
                }
            }
}

TEST_CASE("cuda planning: invalid shapes and a missing split-K workspace are reported") {
    sc::Conv2dParams p;
    p.batch = 1, p.in_h = 2, p.in_w = 2, p.in_c = 3, p.out_c = 4, p.kernel_h = p.kernel_w = 7, p.stride = 1, p.pad = 1;
    CHECK_THROWS_AS(sc::plan_conv2d(p, 132), ShapeError);
    p.in_h = p.in_w = 7, p.pad = 3, p.in_c = 512;
    const sc::ConvPlan plan = sc::plan_conv2d(p, 132);
    REQUIRE(plan.splits > 1);
    std::vector<float> dummy(16);
    CHECK_THROWS_AS(sc::make_conv_launch(p, dummy.data(), dummy.data(), dummy.data(), {}, nullptr, 132), Error);
}

TEST_CASE("simt emulator: catches a missing cp.async wait, a missing barrier, divergent barriers, out-of-bounds access") {
    std::vector<float> src(64), dst(64, 0.0f);
    for (int i = 0; i < 64; ++i) src[size_t(i)] = float(i + 1);
    auto run = [&](auto body) {
        simt::Emulator emu(7);
        emu.allow(src.data(), src.size() * 4, false);
        emu.allow(dst.data(), dst.size() * 4, true);
        emu.launch({1, 1, 1}, 64, 64 * 4, body);
    };
    // Correct: copy to shared, wait, barrier, read a neighbour's element.
    run([&](simt::Ctx& c) {
        c.cp_async_f32(c.smem() + c.tid(), src.data() + c.tid(), true);
        c.cp_async_commit();
        c.cp_async_wait<0>();
        c.sync();
        c.st(dst.data() + c.tid(), c.smem()[(c.tid() + 1) % 64]);
    });
    for (int i = 0; i < 64; ++i) CHECK(dst[size_t(i)] == float((i + 1) % 64 + 1));
    // Missing wait: the shared tile is still poison when read.
    run([&](simt::Ctx& c) {
        c.cp_async_f32(c.smem() + c.tid(), src.data() + c.tid(), true);
        c.cp_async_commit();
        c.sync();
        c.st(dst.data() + c.tid(), c.smem()[(c.tid() + 1) % 64]);
        c.cp_async_wait<0>();
    });
    int nans = 0;
    for (float v : dst) nans += std::isnan(v);
    CHECK(nans > 0);  // (a neighbour that already passed its own wait has landed its copy)
    // Missing barrier between a write and a neighbour's read: wrong in some order.
    bool wrong = false;
    for (int attempt = 0; attempt < 3 && !wrong; ++attempt) {
        run([&](simt::Ctx& c) {
            c.smem()[c.tid()] = float(c.tid());
            c.st(dst.data() + c.tid(), c.smem()[(c.tid() + 1) % 64]);
        });
        for (int i = 0; i < 64; ++i) wrong |= dst[size_t(i)] != float((i + 1) % 64);
    }
    CHECK(wrong);
    // Divergent barrier.
    CHECK_THROWS_AS(run([&](simt::Ctx& c) {
                        if (c.tid() < 32) c.sync();
                    }),
                    std::runtime_error);
    // Out-of-bounds load and store.
    CHECK_THROWS_AS(run([&](simt::Ctx& c) { c.st(dst.data() + c.tid(), c.ld(src.data() + c.tid() + 1)); }), std::runtime_error);
    CHECK_THROWS_AS(run([&](simt::Ctx& c) { c.st(const_cast<float*>(src.data()) + c.tid(), 1.0f); }), std::runtime_error);
}
