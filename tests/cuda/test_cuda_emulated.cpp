// tests/cuda/test_cuda_emulated.cpp — every CUDA kernel body, run by the host SIMT
// emulator (simt_emulator.hpp), against the CPU references. No GPU needed: this runs in
// CI on any machine and tests the indexing, tiling, zero padding, split-K and cp.async
// pipeline of the kernels that the GPU will run (kernels/cuda/*.cuh), the launch
// planning (plan_conv2d, make_conv_launch) and the NaN behaviour of the epilogue.
//
// Shapes: the shared grids (tests/shape_grid.hpp) with the CUDA variants of
// host_helpers.hpp, plus the special cases below. Tolerances: tests/tolerance.hpp's
// rule for sums (|fast - ref| <= 8 u sqrt(K) S, S from the reference on |a|, |b|);
// bit-exact where the kernel reproduces the CPU kernel's order of operations (epilogue,
// max/avg/global pooling, coral, flatten, preprocessing). Built with -ffp-contract=off
// so that the host compiler does not fuse what the CPU kernels compute unfused.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/depthwise.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>
#include <softbio/kernels/cuda/conv2d_implicit_gemm.cuh>
#include <softbio/kernels/cuda/depthwise.cuh>
#include <softbio/kernels/cuda/epilogue.cuh>
#include <softbio/kernels/cuda/linear.cuh>
#include <softbio/kernels/cuda/pool.cuh>
#include <softbio/kernels/cuda/preprocess.cuh>

#include "../test_util.hpp"
#include "host_helpers.hpp"
#include "simt_emulator.hpp"

// The CPU image pipeline needs stb (softbio/image/decode.hpp); without it the device-side
// preprocessing is checked against the documented formula only.
#if __has_include(<stb/stb_image.h>)
#include <softbio/image/preprocess.hpp>
#define SOFTBIO_TEST_HAVE_STB 1
#endif

using namespace softbio;
namespace sc = softbio::cuda;

namespace {

constexpr int kFakeSms = 2;  // small grids for the elementwise kernels: exercises the grid-stride loops

void emulate_epilogue(simt::Emulator& emu, const sc::EpilogueArgs& a) {
    const int blocks = sc::elementwise_blocks(a.units(), sc::kEpilogueThreads, kFakeSms);
    emu.launch({blocks, 1, 1}, sc::kEpilogueThreads, 0, [&](simt::Ctx& c) { sc::epilogue_body(c, a); });
}

/// Run the unfused epilogue pass over x [rows, channels] in place (pointers of `e` are
/// host memory: scale/bias [channels], residual like x). Returns whether the float4 path ran.
bool emulate_epilogue_in_place(const softbio::Epilogue& e, std::vector<float>& x, int channels) {
    sc::EpilogueArgs a;
    a.in = x.data(), a.out = x.data(), a.rows = x.size() / size_t(channels), a.channels = channels, a.e = e;
    sc::choose_epilogue_vec(a);
    simt::Emulator emu;
    emu.allow(x.data(), x.size() * 4, true);
    if (e.scale) emu.allow(e.scale, size_t(channels) * 4, false);
    if (e.bias) emu.allow(e.bias, size_t(channels) * 4, false);
    if (e.residual) emu.allow(e.residual, x.size() * 4, false);
    emulate_epilogue(emu, a);
    return a.vec;
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
/// `e` holds host pointers (the emulated kernel reads them where they are).
ConvCase check_conv(const softbio::Conv2dParams& p, uint64_t seed, int sm_count, int force_tile = -1, int force_splits = 0,
                    const softbio::Epilogue& e = {}, bool misalign = false) {
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c;
    auto in_store = test::random_vector(in_n + 4, seed);
    const float* in = in_store.data() + (misalign ? 1 : 0);
    auto w = test::random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    const size_t out_n = p.gemm_m() * p.out_c;
    std::vector<float> packed(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w.data(), nullptr, packed.data());

    std::vector<float> out(out_n, std::numeric_limits<float>::quiet_NaN());  // poison: every output must be written
    const sc::ConvPlan plan = sc::plan_conv2d(p, sm_count, force_tile, force_splits);
    std::vector<float> ws(plan.workspace_floats + 1, std::numeric_limits<float>::quiet_NaN());
    const sc::ConvLaunch L = sc::make_conv_launch(p, in, packed.data(), out.data(), e,
                                                  plan.workspace_floats ? ws.data() : nullptr, sm_count, force_tile, force_splits);
    REQUIRE(L.plan.splits == plan.splits);

    simt::Emulator emu(seed);
    emu.allow(in, in_n * sizeof(float), false);
    emu.allow(packed.data(), packed.size() * sizeof(float), false);
    emu.allow(out.data(), out.size() * sizeof(float), true);
    if (plan.workspace_floats) emu.allow(ws.data(), plan.workspace_floats * sizeof(float), true);
    if (e.scale) emu.allow(e.scale, size_t(p.out_c) * sizeof(float), false);
    if (e.bias) emu.allow(e.bias, size_t(p.out_c) * sizeof(float), false);
    if (e.residual) emu.allow(e.residual, out_n * sizeof(float), false);
    emulate_conv(emu, L);

    std::vector<float> ref, abs_sum;
    test::conv_reference(p, std::vector<float>(in, in + in_n), w, e, ref, abs_sum);
    test::check_close(out, ref, abs_sum, p.gemm_k(),
                      test::describe(p) + " tile " + sc::tile_name(L.plan.tile) + " gather " + sc::gather_name(L.gather) +
                          " splits " + std::to_string(L.plan.splits) + (L.args.bvec ? " bvec" : " bscalar"));
    return {L.gather, L.plan.tile, L.plan.splits};
}

}  // namespace

TEST_CASE("cuda emulated: conv2d over the shared shape grid (+ vector-width channels), planned as on an H100") {
    uint64_t seed = 100;
    int cases = 0, scalar = 0, vec = 0, pointwise = 0, split = 0;
    for (const softbio::Conv2dParams& p : test::cuda_conv_grid()) {
        const ConvCase r = check_conv(p, seed += 2, 132);
        ++cases;
        scalar += r.gather == sc::ConvGather::kScalar;
        vec += r.gather == sc::ConvGather::kVec4;
        pointwise += r.gather == sc::ConvGather::kPointwise;
        split += r.splits > 1;
    }
    CHECK(cases > 120);
    CHECK(scalar > 0);
    CHECK(vec > 0);
    CHECK(pointwise > 0);
    CHECK(split > 0);
}

TEST_CASE("cuda emulated: every tile shape x gather x split-K on the tiling shapes and the stem") {
    // The shared tiling shapes cover the scalar (Cin 19), vec4 (Cin 256, 40) and
    // pointwise gathers, 16-byte (Cout 64, 300) and scalar (Cout 129) weight paths; the
    // stem adds the scalar gather with 16-byte weights.
    std::vector<softbio::Conv2dParams> shapes = test::conv_tiling_shapes();
    const softbio::Conv2dParams pointwise = shapes[3];
    REQUIRE(pointwise.input_is_patch_matrix());
    shapes.push_back(test::conv_shape(1, 20, 18, 3, 64, 7, 2, 3));  // the 7x7/2 stem, Cin = 3, Cout = 64
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
    const ConvCase r = check_conv(pointwise, 900, 132, 1, 1, {}, /*misalign=*/true);
    CHECK(r.gather == sc::ConvGather::kScalar);
}

TEST_CASE("cuda emulated: fused epilogue (scale, bias, residual, ReLU), direct and through the split-K reduction") {
    for (int out_c : {21, 24})  // scalar and float4 epilogue paths
        for (int splits : {1, 2}) {
            softbio::Conv2dParams p;
            p.batch = 3, p.in_h = 9, p.in_w = 7, p.in_c = 8, p.out_c = out_c, p.kernel_h = p.kernel_w = 3, p.stride = 2,
            p.pad = 1;
            const size_t out_n = p.gemm_m() * p.out_c;
            auto scale = test::random_vector(size_t(p.out_c), 13), bias = test::random_vector(size_t(p.out_c), 14);
            auto residual = test::random_vector(out_n, 15);
            for (const softbio::Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
                check_conv(p, 11, 132, 2, splits, e);
        }
}

TEST_CASE("cuda emulated: unfused epilogue pass in place matches the element-wise reference") {
    for (int c : {19, 20}) {
        const size_t m = 301;
        auto x = test::random_vector(m * c, 31), res = test::random_vector(m * c, 32);
        auto scale = test::random_vector(size_t(c), 33), bias = test::random_vector(size_t(c), 34);
        softbio::Epilogue ec{scale.data(), bias.data(), res.data(), true};
        auto ref = x;
        cpu::apply_epilogue_reference(ec, ref.data(), m, c);
        CHECK(emulate_epilogue_in_place(ec, x, c) == (c % 4 == 0));
        CHECK(x == ref);  // same operations in the same order: bit-identical
    }
}

TEST_CASE("cuda emulated: epilogue NaN, -0, negative and positive values are bit-identical to the CPU reference") {
    // One definition of ReLU (softbio::relu, kernels/op_params.hpp) for every backend:
    // NaN stays NaN, -0 stays -0, negatives become +0. Both epilogue paths (one float
    // per thread; float4 when C % 4 == 0) must give the reference's bits exactly.
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> specials = {nan, -nan, -0.0f, 0.0f, -1.5f, 2.25f, -inf, inf, -1e-40f, 1e-40f, -3.0f, 7.0f};
    for (int c : {3, 4})  // scalar and float4 paths
        for (bool with_affine : {false, true})
            for (bool relu : {false, true}) {
                const size_t m = specials.size();  // every special value in every channel
                std::vector<float> x(m * c);
                for (size_t i = 0; i < x.size(); ++i) x[i] = specials[(i + i / size_t(c)) % specials.size()];
                std::vector<float> scale(size_t(c), 1.0f), bias(size_t(c), -0.0f);
                if (with_affine)  // keeps the specials special: a positive scale, a -0 bias
                    for (int j = 0; j < c; ++j) scale[size_t(j)] = 0.5f + float(j);
                softbio::Epilogue e;
                e.scale = with_affine ? scale.data() : nullptr;
                e.bias = with_affine ? bias.data() : nullptr;
                e.relu = relu;
                auto ref = x;
                cpu::apply_epilogue_reference(e, ref.data(), m, c);
                CHECK(emulate_epilogue_in_place(e, x, c) == (c % 4 == 0));
                INFO("channels " << c << (with_affine ? " scale+bias" : "") << (relu ? " relu" : ""));
                CHECK(std::memcmp(x.data(), ref.data(), x.size() * sizeof(float)) == 0);
                if (relu)
                    for (size_t i = 0; i < x.size(); ++i) {
                        CHECK(std::isnan(x[i]) == std::isnan(ref[i]));
                        CHECK(!(x[i] < 0.0f));
                    }
            }
}

TEST_CASE("cuda emulated: a NaN input reaches the fused conv + ReLU output as NaN, where the reference has NaN") {
    const softbio::Conv2dParams p = test::conv_shape(1, 5, 5, 4, 8, 3, 1, 1);
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, 3);
    in[size_t(2 * p.in_w + 2) * p.in_c + 1] = std::numeric_limits<float>::quiet_NaN();  // pixel (2, 2), channel 1
    auto w = test::random_vector(size_t(p.out_c) * p.gemm_k(), 4);
    std::vector<float> packed(w.size()), out(p.gemm_m() * p.out_c, 0.0f), ref, abs_sum;
    softbio::pack_conv_weights(p, w.data(), nullptr, packed.data());
    softbio::Epilogue e;
    e.relu = true;
    for (int splits : {1, 2}) {
        std::vector<float> ws(size_t(splits) * out.size());
        const sc::ConvLaunch L = sc::make_conv_launch(p, in.data(), packed.data(), out.data(), e,
                                                      splits > 1 ? ws.data() : nullptr, 132, 2, splits);
        simt::Emulator emu;
        emu.allow(in.data(), in.size() * 4, false);
        emu.allow(packed.data(), packed.size() * 4, false);
        emu.allow(out.data(), out.size() * 4, true);
        emu.allow(ws.data(), ws.size() * 4, true);
        emulate_conv(emu, L);
        test::conv_reference(p, in, w, e, ref, abs_sum);
        int nans = 0;
        for (size_t i = 0; i < out.size(); ++i) {
            CHECK(std::isnan(out[i]) == std::isnan(ref[i]));
            nans += std::isnan(out[i]);
        }
        CHECK(nans == 9 * p.out_c);  // every output whose 3x3 window covers the NaN pixel
    }
}

TEST_CASE("cuda emulated: max/avg pooling are bit-identical to the CPU kernels over the shared pool grid") {
    int cases = 0;
    for (const softbio::Pool2dParams& p : test::cuda_pool_grid()) {
        auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.channels, 40 + cases);
        const size_t out_n = size_t(p.batch) * p.out_h() * p.out_w() * p.channels;
        for (bool avg : {false, true}) {
            std::vector<float> got(out_n, std::numeric_limits<float>::quiet_NaN()), fast(out_n), ref(out_n);
            const sc::PoolArgs a = sc::make_pool_args(p, in.data(), got.data());
            CHECK(a.vec == (p.channels % 4 == 0));
            simt::Emulator emu;
            emu.allow(in.data(), in.size() * 4, false);
            emu.allow(got.data(), got.size() * 4, true);
            const int blocks = sc::elementwise_blocks(a.units, sc::kPoolThreads, kFakeSms);
            emu.launch({blocks, 1, 1}, sc::kPoolThreads, 0, [&](simt::Ctx& c) {
                if (avg) sc::pool2d_body<true>(c, a);
                else sc::pool2d_body<false>(c, a);
            });
            INFO(test::describe_pool(p) << (avg ? " avg" : " max"));
            if (avg) {
                std::vector<float> abs_sum(out_n);
                cpu::avgpool2d(p, in.data(), fast.data(), 1);
                cpu::avgpool2d_reference(p, in.data(), ref.data());
                cpu::avgpool2d_reference(p, test::abs_of(in).data(), abs_sum.data());
                test::check_close(got, ref, abs_sum, p.kernel * p.kernel, "avgpool");
            } else {
                cpu::maxpool2d(p, in.data(), fast.data(), 1);
                cpu::maxpool2d_reference(p, in.data(), ref.data());
                CHECK(got == ref);
            }
            CHECK(got == fast);
        }
        ++cases;
    }
    CHECK(cases > 200);
}

TEST_CASE("cuda emulated: AvgPool2d(7, 1, 2) on a 4x4 map gives sum/49; max-pool padding is -inf") {
    softbio::Pool2dParams p;
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

    softbio::Pool2dParams m;
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
        std::vector<float> ref(z.size());
        cpu::coral_logits(n, k1, g.data(), bias.data(), ref.data());
        CHECK(z == ref);
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
        CHECK(got == test::to_tensor_reference(src.data(), batch, h, w, row_stride, image_stride,
                                               normalize ? mean : nullptr, normalize ? stdv : nullptr));
#if SOFTBIO_TEST_HAVE_STB
        // And the CPU pipeline itself (softbio/image/preprocess.hpp).
        PreprocessSpec spec;
        spec.steps.push_back(PreprocessStep::to_tensor());
        if (normalize) spec.steps.push_back(PreprocessStep::normalize({mean[0], mean[1], mean[2]}, {stdv[0], stdv[1], stdv[2]}));
        PreprocessWorkspace pws;
        std::vector<float> cpu_out(size_t(h) * w * 3);
        for (int n = 0; n < batch; ++n) {
            preprocess_pixels(src.data() + n * image_stride, h, w, row_stride, spec, pws, cpu_out.data());
            CHECK(std::memcmp(cpu_out.data(), got.data() + size_t(n) * h * w * 3, cpu_out.size() * 4) == 0);
        }
#endif
    }
}

namespace {

/// Run the depthwise kernel body on the emulator and compare with the CPU reference
/// (+ the epilogue's reference). Returns whether the float4 path ran.
bool check_depthwise_emulated(const softbio::Conv2dParams& p, uint64_t seed, const softbio::Epilogue& e = {},
                              const std::vector<float>* scale = nullptr, const std::vector<float>* bias = nullptr,
                              const std::vector<float>* residual = nullptr) {
    const size_t taps = size_t(p.kernel_h) * p.kernel_w;
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.in_c) * taps, seed + 1);
    std::vector<float> packed(w.size());
    softbio::pack_depthwise_weights(p, w.data(), nullptr, packed.data());
    const size_t out_n = p.gemm_m() * size_t(p.in_c);
    std::vector<float> got(out_n, std::numeric_limits<float>::quiet_NaN()), ref(out_n), abs_sum(out_n), fast(out_n);
    const sc::DepthwiseArgs a = sc::make_depthwise_args(p, in.data(), packed.data(), got.data(), e);
    simt::Emulator emu(seed);
    emu.allow(in.data(), in.size() * 4, false);
    emu.allow(packed.data(), packed.size() * 4, false);
    emu.allow(got.data(), got.size() * 4, true);
    if (e.scale) emu.allow(e.scale, size_t(p.in_c) * 4, false);
    if (e.bias) emu.allow(e.bias, size_t(p.in_c) * 4, false);
    if (e.residual) emu.allow(e.residual, out_n * 4, false);
    const int blocks = sc::elementwise_blocks(a.units, sc::kDepthwiseThreads, kFakeSms);
    emu.launch({blocks, 1, 1}, sc::kDepthwiseThreads, 0, [&](simt::Ctx& c) { sc::depthwise_body(c, a); });
    cpu::depthwise_conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.in_c);
    cpu::depthwise_conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
    for (size_t i = 0; i < out_n; ++i) {
        const size_t c = i % size_t(p.in_c);
        abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs((*scale)[c]) : 1.0f) + (e.bias ? std::fabs((*bias)[c]) : 0.0f) +
                     (e.residual ? std::fabs((*residual)[i]) : 0.0f);
    }
    test::check_close(got, ref, abs_sum, double(taps), test::describe(p) + (a.vec ? " depthwise vec4" : " depthwise scalar"));
    // Same order of fp32 operations as the CPU kernel (no contraction here): same bits.
    cpu::depthwise_conv2d(p, in.data(), packed.data(), fast.data(), e, 1);
    CHECK(std::memcmp(got.data(), fast.data(), out_n * sizeof(float)) == 0);
    return a.vec;
}

}  // namespace

TEST_CASE("cuda emulated: depthwise conv over the depthwise grid (TF same, asymmetric pads, scalar and float4)") {
    uint64_t seed = 1300;
    int scalar = 0, vec = 0;
    for (const softbio::Conv2dParams& p : test::depthwise_grid()) (check_depthwise_emulated(p, seed += 2) ? vec : scalar)++;
    CHECK(scalar > 50);
    CHECK(vec > 20);
}

TEST_CASE("cuda emulated: depthwise fused epilogue (scale, bias, residual, ReLU, leaky ReLU)") {
    for (int c : {17, 32}) {
        softbio::Conv2dParams p = test::depthwise_shape(2, 9, 8, c, 3, 2, 0);
        p.same = true;
        auto scale = test::random_vector(size_t(c), 13), bias = test::random_vector(size_t(c), 14);
        auto residual = test::random_vector(p.gemm_m() * size_t(c), 15);
        for (const softbio::Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
            CHECK(check_depthwise_emulated(p, 21, e, &scale, &bias, &residual) == (c % 4 == 0));
    }
}

TEST_CASE("cuda emulated: conv2d with asymmetric / TF same padding, every gather, planned and split-K") {
    uint64_t seed = 1500;
    int vec = 0, scalar = 0;
    for (const softbio::Conv2dParams& p : test::conv_asym_shapes()) {
        const ConvCase r = check_conv(p, seed += 2, 132);
        vec += r.gather != sc::ConvGather::kScalar;
        scalar += r.gather == sc::ConvGather::kScalar;
        check_conv(p, seed += 2, 132, 2, 2);  // 32x32 tiles, split-K through the reduction
        check_conv(p, seed += 2, 132, 1, 1);  // 64x64 tiles
    }
    CHECK(vec > 0);
    CHECK(scalar > 0);
}

TEST_CASE("cuda emulated: max/avg pooling with asymmetric / TF same padding are bit-identical to the CPU kernels") {
    int cases = 0;
    for (softbio::Pool2dParams p : test::pool_asym_shapes())
        for (int channels : {19, 20}) {
            p.channels = channels;
            auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.channels, 80 + cases);
            for (auto& v : in) v = v - 2.0f;  // all negative: a zero pad would win a max
            const size_t out_n = size_t(p.batch) * p.out_h() * p.out_w() * p.channels;
            for (bool avg : {false, true}) {
                std::vector<float> got(out_n, std::numeric_limits<float>::quiet_NaN()), fast(out_n);
                const sc::PoolArgs a = sc::make_pool_args(p, in.data(), got.data());
                simt::Emulator emu;
                emu.allow(in.data(), in.size() * 4, false);
                emu.allow(got.data(), got.size() * 4, true);
                emu.launch({sc::elementwise_blocks(a.units, sc::kPoolThreads, kFakeSms), 1, 1}, sc::kPoolThreads, 0,
                           [&](simt::Ctx& c) {
                               if (avg) sc::pool2d_body<true>(c, a);
                               else sc::pool2d_body<false>(c, a);
                           });
                INFO(test::describe_pool(p) << " pads " << test::describe_padding(p.padding()) << (avg ? " avg" : " max"));
                if (avg) cpu::avgpool2d(p, in.data(), fast.data(), 1);
                else cpu::maxpool2d(p, in.data(), fast.data(), 1);
                CHECK(std::memcmp(got.data(), fast.data(), out_n * sizeof(float)) == 0);
                if (!avg) {
                    std::vector<float> ref(out_n);
                    cpu::maxpool2d_reference(p, in.data(), ref.data());
                    CHECK(got == ref);
                    for (float v : got) CHECK(v < -0.5f);
                }
            }
            ++cases;
        }
    CHECK(cases > 80);
}

TEST_CASE("cuda emulated: leaky ReLU epilogue (scalar and float4) is bit-identical to the CPU reference; NaN stays NaN") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> specials = {nan, -nan, -0.0f, 0.0f, -1.5f, 2.25f, -inf, inf, -1e-40f, 1e-40f, -3.0f, 7.0f};
    for (int c : {3, 4})
        for (bool with_affine : {false, true}) {
            const size_t m = specials.size();
            std::vector<float> x(m * c);
            for (size_t i = 0; i < x.size(); ++i) x[i] = specials[(i + i / size_t(c)) % specials.size()];
            std::vector<float> scale(size_t(c), 1.0f), bias(size_t(c), -0.0f);
            if (with_affine)
                for (int j = 0; j < c; ++j) scale[size_t(j)] = 0.5f + float(j);
            softbio::Epilogue e;
            e.scale = with_affine ? scale.data() : nullptr;
            e.bias = with_affine ? bias.data() : nullptr;
            e.relu = true;  // ignored: leaky_alpha takes its place
            e.leaky_alpha = 0.1f;
            auto ref = x;
            cpu::apply_epilogue_reference(e, ref.data(), m, c);
            CHECK(emulate_epilogue_in_place(e, x, c) == (c % 4 == 0));
            INFO("channels " << c << (with_affine ? " scale+bias" : ""));
            CHECK(std::memcmp(x.data(), ref.data(), x.size() * sizeof(float)) == 0);
            for (size_t i = 0; i < x.size(); ++i) CHECK(std::isnan(x[i]) == std::isnan(ref[i]));
        }
}

TEST_CASE("cuda planning: ResNet-101 layers at batch 1 and 256 get sane plans on an H100 (132 SMs)") {
    int layers = 0;
    for (int batch : {1, 256})
        for (int size : {224, 128})
            for (const test::ConvUse& use : test::distinct_convs("torchvision-r101", batch, size)) {
                const softbio::Conv2dParams& p = use.p;
                const sc::ConvPlan plan = sc::plan_conv2d(p, 132);
                ++layers;
                INFO(use.where << " " << test::describe(p) << ": tile " << std::string(sc::tile_name(plan.tile))
                               << " splits " << plan.splits << " blocks " << plan.blocks());
                CHECK(plan.splits >= 1);
                CHECK((long long)plan.ktiles_per_split * plan.splits >= plan.ktiles);
                CHECK((long long)plan.ktiles_per_split * (plan.splits - 1) < plan.ktiles);  // no empty slice
                CHECK(plan.m_tiles * plan.bm >= (long long)p.gemm_m());
                CHECK(plan.n_tiles * plan.bn >= p.out_c);
                CHECK(plan.workspace_floats == (plan.splits > 1 ? size_t(plan.splits) * p.gemm_m() * p.out_c : 0));
                CHECK(plan.n_tiles <= 65535);
                CHECK(plan.splits <= 65535);
                if (batch == 256) {
                    CHECK(plan.splits == 1);                   // big batches never need split-K
                    CHECK(plan.tile != sc::ConvTile::k32x32);  // nor small tiles
                } else if (plan.ktiles >= 2 * sc::kMinKtilesPerSplit) {
                    CHECK(plan.blocks() >= 132);  // batch 1: at least one block per SM (unless K is tiny)
                }
            }
    CHECK(layers == 4 * 23);  // ResNet-101 has 23 distinct convolutions (104 in all)
}

TEST_CASE("cuda planning: invalid shapes and a missing split-K workspace are reported") {
    softbio::Conv2dParams p;
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
