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

#include <algorithm>
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
#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/kernels/cuda/conv2d_implicit_gemm.cuh>
#include <softbio/kernels/cuda/conv2d_mma.cuh>
#include <softbio/kernels/cuda/depthwise.cuh>
#include <softbio/kernels/cuda/epilogue.cuh>
#include <softbio/kernels/cuda/linear.cuh>
#include <softbio/kernels/cuda/pool.cuh>
#include <softbio/kernels/cuda/preprocess.cuh>

#include "../test_util.hpp"
#include "host_helpers.hpp"
#include "mma_tolerance.hpp"
#include "simt_emulator.hpp"
#include "tf32_model.hpp"

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

// ================================================================================================
// Tensor cores (kernels/cuda/conv2d_mma.cuh): the emulated mma.sync, the fragment layouts,
// the 16-bit / tf32 conversions, and the TF32 / FP16 / BF16 convolutions over the grids.
// ================================================================================================

namespace {

using sc::MmaPrecision;

/// One warp issues one mma.sync with fragments cut from A [16 x kdim], B [kdim x 8] and C
/// [16 x 8] by the kernel's layout functions; returns D as a 16 x 8 matrix (scattered back
/// by the same layout). A/B hold the values as stored: fp32 bit patterns (tf32) or 16-bit.
std::vector<float> emulate_one_mma(MmaPrecision prec, const std::vector<uint32_t>& a_bits, const std::vector<uint32_t>& b_bits,
                                   const std::vector<float>& cm) {
    const int kdim = prec == MmaPrecision::kTf32 ? 8 : 16;
    std::vector<float> d(16 * 8, std::numeric_limits<float>::quiet_NaN());
    simt::Emulator emu(3);
    emu.launch({1, 1, 1}, 32, 0, [&](simt::Ctx& c) {
        const int lane = c.tid();
        uint32_t a[4] = {}, b[2] = {};
        float acc[4];
        const bool tf32 = prec == MmaPrecision::kTf32;
        for (int e = 0; e < (tf32 ? 4 : 8); ++e) {
            const sc::RowCol rc = sc::mma_a_coord(prec, lane, e);
            const uint32_t v = a_bits[size_t(rc.row) * kdim + rc.col];
            if (tf32) a[e] = v;
            else a[e / 2] |= (v & 0xffffu) << (16 * (e & 1));
        }
        for (int e = 0; e < (tf32 ? 2 : 4); ++e) {
            const sc::RowCol rc = sc::mma_b_coord(prec, lane, e);
            const uint32_t v = b_bits[size_t(rc.row) * 8 + rc.col];
            if (tf32) b[e] = v;
            else b[e / 2] |= (v & 0xffffu) << (16 * (e & 1));
        }
        for (int e = 0; e < 4; ++e) {
            const sc::RowCol rc = sc::mma_c_coord(lane, e);
            acc[e] = cm[size_t(rc.row) * 8 + rc.col];
        }
        c.mma(prec, acc, a, b);
        for (int e = 0; e < 4; ++e) {
            const sc::RowCol rc = sc::mma_c_coord(lane, e);
            d[size_t(rc.row) * 8 + rc.col] = acc[e];
        }
    });
    CHECK(emu.mmas() == 1);
    return d;
}

/// What a stored value means to the tensor core (tf32: low 13 bits dropped).
double operand_value(MmaPrecision prec, uint32_t bits) {
    if (prec == MmaPrecision::kTf32) return simt::ptx::tf32_operand(bits);
    return prec == MmaPrecision::kFp16 ? sc::f16_bits_to_f32(uint16_t(bits)) : sc::bf16_bits_to_f32(uint16_t(bits));
}

uint32_t store_bits(MmaPrecision prec, float x) {
    if (prec == MmaPrecision::kTf32) return sc::tf32_bits(x);
    return prec == MmaPrecision::kFp16 ? sc::f32_to_f16_bits(x) : sc::f32_to_bf16_bits(x);
}

}  // namespace

TEST_CASE("cuda emulated mma: the kernel's fragment layouts are the PTX ISA tables (and the emulator's copy)") {
    using sc::RowCol;
    // Spot values read off the PTX ISA's figures (groupID = lane >> 2, threadID_in_group = lane % 4).
    // m16n8k8 .tf32, lane 0 and lane 31 (g 7, t 3): a0 (g,t) a1 (g+8,t) a2 (g,t+4) a3 (g+8,t+4).
    const RowCol a_tf32_lane31[4] = {{7, 3}, {15, 3}, {7, 7}, {15, 7}};
    for (int e = 0; e < 4; ++e) {
        CHECK(sc::mma_a_coord(MmaPrecision::kTf32, 31, e).row == a_tf32_lane31[e].row);
        CHECK(sc::mma_a_coord(MmaPrecision::kTf32, 31, e).col == a_tf32_lane31[e].col);
    }
    CHECK(sc::mma_a_coord(MmaPrecision::kTf32, 0, 3).row == 8);
    CHECK(sc::mma_a_coord(MmaPrecision::kTf32, 0, 3).col == 4);
    // .tf32 B, lane 5 (g 1, t 1): b0 (t, g) = (1, 1), b1 (t+4, g) = (5, 1).
    CHECK(sc::mma_b_coord(MmaPrecision::kTf32, 5, 0).row == 1);
    CHECK(sc::mma_b_coord(MmaPrecision::kTf32, 5, 1).row == 5);
    CHECK(sc::mma_b_coord(MmaPrecision::kTf32, 5, 1).col == 1);
    // m16n8k16 .f16/.bf16, lane 6 (g 1, t 2): a0..a7 = (1,4) (1,5) (9,4) (9,5) (1,12) (1,13) (9,12) (9,13).
    const RowCol a16_lane6[8] = {{1, 4}, {1, 5}, {9, 4}, {9, 5}, {1, 12}, {1, 13}, {9, 12}, {9, 13}};
    // B lane 6: b0..b3 = (4,1) (5,1) (12,1) (13,1); C/D lane 6: c0..c3 = (1,4) (1,5) (9,4) (9,5).
    const RowCol b16_lane6[4] = {{4, 1}, {5, 1}, {12, 1}, {13, 1}};
    const RowCol c_lane6[4] = {{1, 4}, {1, 5}, {9, 4}, {9, 5}};
    for (MmaPrecision p : {MmaPrecision::kFp16, MmaPrecision::kBf16}) {
        for (int e = 0; e < 8; ++e) {
            CHECK(sc::mma_a_coord(p, 6, e).row == a16_lane6[e].row);
            CHECK(sc::mma_a_coord(p, 6, e).col == a16_lane6[e].col);
        }
        for (int e = 0; e < 4; ++e) {
            CHECK(sc::mma_b_coord(p, 6, e).row == b16_lane6[e].row);
            CHECK(sc::mma_b_coord(p, 6, e).col == b16_lane6[e].col);
        }
    }
    for (int e = 0; e < 4; ++e) {
        CHECK(sc::mma_c_coord(6, e).row == c_lane6[e].row);
        CHECK(sc::mma_c_coord(6, e).col == c_lane6[e].col);
    }
    // Every lane and register: the kernel's functions equal the emulator's transcription of
    // the ISA's formulas, and each fragment covers its matrix exactly once.
    for (MmaPrecision p : {MmaPrecision::kTf32, MmaPrecision::kFp16}) {
        const bool tf32 = p == MmaPrecision::kTf32;
        const int kdim = tf32 ? 8 : 16;
        std::vector<int> seen_a(16 * kdim, 0), seen_b(kdim * 8, 0), seen_c(16 * 8, 0);
        for (int lane = 0; lane < 32; ++lane) {
            int r, col;
            for (int e = 0; e < (tf32 ? 4 : 8); ++e) {
                const RowCol k = sc::mma_a_coord(p, lane, e);
                if (tf32) simt::ptx::a_tf32(lane, e, r, col);
                else simt::ptx::a_16(lane, e, r, col);
                CHECK(k.row == r);
                CHECK(k.col == col);
                ++seen_a[size_t(k.row) * kdim + k.col];
            }
            for (int e = 0; e < (tf32 ? 2 : 4); ++e) {
                const RowCol k = sc::mma_b_coord(p, lane, e);
                if (tf32) simt::ptx::b_tf32(lane, e, r, col);
                else simt::ptx::b_16(lane, e, r, col);
                CHECK(k.row == r);
                CHECK(k.col == col);
                ++seen_b[size_t(k.row) * 8 + k.col];
            }
            for (int e = 0; e < 4; ++e) {
                const RowCol k = sc::mma_c_coord(lane, e);
                simt::ptx::c_f32(lane, e, r, col);
                CHECK(k.row == r);
                CHECK(k.col == col);
                ++seen_c[size_t(k.row) * 8 + k.col];
            }
        }
        for (int v : seen_a) CHECK(v == 1);
        for (int v : seen_b) CHECK(v == 1);
        for (int v : seen_c) CHECK(v == 1);
    }
}

TEST_CASE("cuda emulated mma: tf32 / fp16 / bf16 rounding of single values") {
    const auto f = [](uint32_t u) { return sc::bits_f32(u); };
    // tf32, round to nearest, ties away from zero (cvt.rna): 1 + 2^-11 is a tie.
    CHECK(sc::round_tf32(1.0f + std::ldexp(1.0f, -11)) == 1.0f + std::ldexp(1.0f, -10));
    CHECK(sc::round_tf32(-1.0f - std::ldexp(1.0f, -11)) == -1.0f - std::ldexp(1.0f, -10));
    CHECK(sc::round_tf32(1.0f + std::ldexp(1.0f, -12)) == 1.0f);
    CHECK(sc::round_tf32(1.0f + 3 * std::ldexp(1.0f, -12)) == 1.0f + std::ldexp(1.0f, -10));
    CHECK((sc::tf32_bits(0.1f) & 0x1fffu) == 0u);
    CHECK(std::isnan(sc::round_tf32(std::numeric_limits<float>::quiet_NaN())));
    CHECK(sc::round_tf32(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
    CHECK(f(sc::tf32_bits(f(0x3f800fffu))) == 1.0f);          // below the tie: down
    CHECK(sc::tf32_bits(f(0x3f801000u)) == 0x3f802000u);       // the tie: away from zero
    // fp16: round to nearest even, subnormals, overflow.
    CHECK(sc::f32_to_f16_bits(1.0f) == 0x3c00);
    CHECK(sc::f32_to_f16_bits(-2.0f) == 0xc000);
    CHECK(sc::f32_to_f16_bits(65504.0f) == 0x7bff);
    CHECK(sc::f32_to_f16_bits(65519.0f) == 0x7bff);
    CHECK(sc::f32_to_f16_bits(65520.0f) == 0x7c00);
    CHECK(sc::f32_to_f16_bits(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(sc::f32_to_f16_bits(std::ldexp(1.0f, -25)) == 0x0000);            // tie to even (0)
    CHECK(sc::f32_to_f16_bits(std::ldexp(3.0f, -26)) == 0x0001);            // 0.75 ulp: up
    CHECK(sc::f32_to_f16_bits(std::ldexp(3.0f, -25)) == 0x0002);            // 1.5 ulp: tie to even 2
    CHECK(sc::f32_to_f16_bits(std::ldexp(1.0f, -14)) == 0x0400);            // smallest normal
    CHECK(sc::f32_to_f16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);     // tie: even
    CHECK(sc::f32_to_f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: even (up)
    CHECK(sc::f16_bits_to_f32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(sc::f16_bits_to_f32(0xfbff) == -65504.0f);
    CHECK(std::isnan(sc::f16_bits_to_f32(sc::f32_to_f16_bits(std::numeric_limits<float>::quiet_NaN()))));
    // bf16
    CHECK(sc::f32_to_bf16_bits(1.0f) == 0x3f80);
    CHECK(sc::f32_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    CHECK(sc::f32_to_bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    CHECK(sc::bf16_bits_to_f32(0xc040) == -3.0f);
    CHECK(std::isnan(sc::bf16_bits_to_f32(sc::f32_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
    // Every finite 16-bit pattern survives float and back; conversion is monotone.
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7c00u) != 0x7c00u && sc::f32_to_f16_bits(sc::f16_bits_to_f32(uint16_t(h))) != h) ++bad16;
        if ((h & 0x7f80u) != 0x7f80u && sc::f32_to_bf16_bits(sc::bf16_bits_to_f32(uint16_t(h))) != h) ++badbf;
    }
    CHECK(bad16 == 0);
    CHECK(badbf == 0);
    // Random values: the result is one of the two neighbours and the nearer one.
    auto v = test::random_vector(2000, 77);
    for (float x : v) {
        x *= 300.0f;
        const float h = sc::f16_bits_to_f32(sc::f32_to_f16_bits(x));
        CHECK(std::fabs(h - x) <= std::ldexp(std::fabs(x), -11) + std::ldexp(1.0, -25));
        const float b = sc::bf16_bits_to_f32(sc::f32_to_bf16_bits(x));
        CHECK(std::fabs(b - x) <= std::ldexp(std::fabs(x), -8));
        CHECK(std::fabs(sc::round_tf32(x) - x) <= std::ldexp(std::fabs(x), -11));
    }
}

TEST_CASE("cuda emulated mma: one warp's mma.sync equals the naive matrix product, each precision") {
    // The product of two rounded operands is exact in fp32 and the emulator rounds the
    // sum once, so D is the exact A*B + C rounded to fp32: |D - exact| <= 2^-24 |exact|.
    uint64_t seed = 4000;
    for (MmaPrecision prec : {MmaPrecision::kTf32, MmaPrecision::kFp16, MmaPrecision::kBf16}) {
        const int kdim = prec == MmaPrecision::kTf32 ? 8 : 16;
        for (int round = 0; round < 3; ++round) {
            auto av = test::random_vector(size_t(16) * kdim, seed++), bv = test::random_vector(size_t(kdim) * 8, seed++);
            auto cm = test::random_vector(16 * 8, seed++);
            std::vector<uint32_t> a(av.size()), b(bv.size());
            for (size_t i = 0; i < av.size(); ++i) a[i] = store_bits(prec, av[i] * (round == 2 ? 1e3f : 1.0f));
            for (size_t i = 0; i < bv.size(); ++i) b[i] = store_bits(prec, bv[i]);
            if (round == 1 && prec == MmaPrecision::kTf32)  // unrounded tf32 operands: the low 13 bits are ignored
                for (size_t i = 0; i < av.size(); ++i) a[i] = sc::f32_bits(av[i]);
            const std::vector<float> d = emulate_one_mma(prec, a, b, cm);
            for (int r = 0; r < 16; ++r)
                for (int col = 0; col < 8; ++col) {
                    double exact = cm[size_t(r) * 8 + col];
                    for (int k = 0; k < kdim; ++k)
                        exact += operand_value(prec, a[size_t(r) * kdim + k]) * operand_value(prec, b[size_t(k) * 8 + col]);
                    INFO(sc::precision_name(prec) << " round " << round << " D[" << r << "][" << col << "]");
                    CHECK(std::fabs(double(d[size_t(r) * 8 + col]) - exact) <= std::ldexp(std::fabs(exact), -24));
                }
            if (round == 1 && prec == MmaPrecision::kTf32) {  // truncation, not rounding: differs from rna operands
                int differ = 0;
                for (size_t i = 0; i < av.size(); ++i)
                    differ += simt::ptx::tf32_operand(a[i]) != double(sc::round_tf32(av[i]));
                CHECK(differ > 0);
            }
        }
    }
    // Divergence: a lane that skips the mma is reported.
    simt::Emulator emu;
    CHECK_THROWS_AS(emu.launch({1, 1, 1}, 32, 0,
                               [&](simt::Ctx& c) {
                                   float acc[4] = {};
                                   const uint32_t a[4] = {}, b[2] = {};
                                   if (c.tid() != 5) c.mma(MmaPrecision::kFp16, acc, a, b);
                               }),
                    std::runtime_error);
    CHECK_THROWS_AS(emu.launch({1, 1, 1}, 48, 0,
                               [&](simt::Ctx& c) {
                                   float acc[4] = {};
                                   const uint32_t a[4] = {}, b[2] = {};
                                   c.mma(MmaPrecision::kTf32, acc, a, b);
                               }),
                    std::runtime_error);
}

namespace {

struct MmaCaseResult {
    sc::ConvGather gather;
    sc::ConvTile tile;
    int splits;
    double worst_rounded = 0, worst_fp32 = 0;  // max error / bound
};

/// Run one tensor-core convolution on the emulator and check it twice (the rules, with
/// their reasons, are written in tests/cuda/mma_tolerance.hpp):
///  (1) against the CPU reference on the inputs the tensor cores see (pre-rounded to the
///      precision): only the fp32 accumulation order differs, so tests/tolerance.hpp's
///      rule |out - ref| <= 8 u sqrt(K) S holds (+ u_p |ref| for a 16-bit output);
///  (2) against the fp32 reference with the precision's documented worst-case bound,
///      (2 u_p + u_p^2) S + the fp32 rule (+ the 16-bit output / residual roundings).
template <class P>
MmaCaseResult check_conv_mma(const softbio::Conv2dParams& p, uint64_t seed, int sm_count, int force_tile = -1,
                             int force_splits = 0, const std::vector<float>* scale = nullptr,
                             const std::vector<float>* bias = nullptr, bool with_residual = false, int activation = 0,
                             bool kn = false) {
    using Act = typename P::Act;
    const MmaPrecision prec = P::kId;
    const bool act16 = prec != MmaPrecision::kTf32;
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c, out_n = p.gemm_m() * p.out_c;
    auto in32 = test::random_vector(in_n, seed);
    auto w32 = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    auto res32 = test::random_vector(out_n, seed + 2);
    // Storage: tf32 keeps fp32 activations (the kernel rounds them); fp16/bf16 store 16 bits.
    std::vector<Act> in(in_n), res(with_residual ? out_n : 0);
    std::vector<float> in_seen(in_n), res_seen(out_n), w_seen(w32.size());
    for (size_t i = 0; i < in_n; ++i) {
        in[i] = P::from_float(in32[i]);
        in_seen[i] = P::operand(in[i]);
    }
    for (size_t i = 0; i < res.size(); ++i) res[i] = P::from_float(res32[i]), res_seen[i] = P::to_float(res[i]);
    for (size_t i = 0; i < w32.size(); ++i) w_seen[i] = act16 ? P::to_float(P::from_float(w32[i])) : sc::round_tf32(w32[i]);
    // kn (tf32): the fp32 kernel's packing [K][N] and the fp32 Epilogue::residual (conv2d_tf32, the drop-in).
    std::vector<Act> packed(kn ? size_t(p.gemm_k()) * p.out_c : sc::mma_packed_weights_count(p, prec));
    if constexpr (std::is_same<Act, float>::value) {
        if (kn) softbio::pack_conv_weights(p, w32.data(), nullptr, packed.data());
    }
    if (!kn) sc::pack_conv_weights_mma<P>(p, w32.data(), nullptr, packed.data());

    softbio::Epilogue e;
    e.scale = scale ? scale->data() : nullptr;
    e.bias = bias ? bias->data() : nullptr;
    e.relu = activation == 1;
    e.leaky_alpha = activation == 2 ? 0.1f : 0.0f;
    const Act* residual_arg = with_residual ? res.data() : nullptr;
    if constexpr (std::is_same<Act, float>::value) {
        if (kn && with_residual) e.residual = res.data(), residual_arg = nullptr;
    }
    std::vector<Act> out(out_n, P::from_float(std::numeric_limits<float>::quiet_NaN()));
    const sc::ConvPlan plan = sc::plan_conv2d_mma(p, prec, sm_count, force_tile, force_splits);
    std::vector<float> ws(plan.workspace_floats + 2, std::numeric_limits<float>::quiet_NaN());
    const sc::MmaConvLaunch<P> L =
        sc::make_mma_conv_launch<P>(p, in.data(), packed.data(), out.data(), e, residual_arg,
                                    plan.workspace_floats ? ws.data() : nullptr, sm_count, force_tile, force_splits, kn);
    CHECK(L.args.w_kn == kn);
    simt::Emulator emu(seed);
    emu.allow(in.data(), in.size() * sizeof(Act), false);
    emu.allow(packed.data(), packed.size() * sizeof(Act), false);
    emu.allow(out.data(), out.size() * sizeof(Act), true);
    if (plan.workspace_floats) emu.allow(ws.data(), plan.workspace_floats * sizeof(float), true);
    if (scale) emu.allow(scale->data(), scale->size() * 4, false);
    if (bias) emu.allow(bias->data(), bias->size() * 4, false);
    if (with_residual) emu.allow(res.data(), res.size() * sizeof(Act), false);
    sc::with_mma_kernel(L.plan.tile, L.gather, [&](auto shape, auto gather) {
        using T = decltype(shape);
        constexpr sc::ConvGather G = decltype(gather)::value;
        emu.launch({int(L.plan.m_tiles), L.plan.n_tiles, L.plan.splits}, T::kThreads, T::kSmemBytes, [&](simt::Ctx& c) {
            if constexpr (P::kId == MmaPrecision::kTf32) {
                if (kn) return sc::conv2d_mma_block<T, P, G, true>(c, L.args);
            }
            sc::conv2d_mma_block<T, P, G>(c, L.args);
        });
    });
    if (L.reduce)
        emu.launch({sc::elementwise_blocks(L.reduce_args.rows * size_t(L.reduce_args.channels), sc::kEpilogueThreads, kFakeSms),
                    1, 1},
                   sc::kEpilogueThreads, 0, [&](simt::Ctx& c) { sc::mma_reduce_body<P>(c, L.reduce_args); });
    std::vector<float> got(out_n);
    for (size_t i = 0; i < out_n; ++i) got[i] = P::to_float(out[i]);

    const std::string what = test::describe(p) + " " + sc::precision_name(prec) + " tile " + sc::tile_name(L.plan.tile) +
                             " gather " + sc::gather_name(L.gather) + " splits " + std::to_string(L.plan.splits) +
                             (L.args.pair ? " pair" : " single") + (kn ? (L.args.bvec ? " kn-vec" : " kn-scalar") : "") +
                             (with_residual ? " residual" : "") +
                             (scale ? " scale" : "") + (activation ? " act" + std::to_string(activation) : "");
    MmaCaseResult result{L.gather, L.plan.tile, L.plan.splits};
    const double k = p.gemm_k();
    {  // (1) pre-rounded inputs
        softbio::Epilogue er = e;
        er.residual = with_residual ? res_seen.data() : nullptr;
        std::vector<float> ref, abs_sum;
        test::conv_reference(p, in_seen, w_seen, er, ref, abs_sum);
        const test::MmaReport r = test::compare_mma_rounded(prec, got, ref, abs_sum, k);
        result.worst_rounded = r.worst;
        INFO(what << " vs the pre-rounded reference: " << r.bad << " of " << out_n << " outside; first at " << r.first
                  << " got " << got[r.first] << " ref " << ref[r.first]);
        CHECK(r.ok());
    }
    {  // (2) the fp32 reference
        softbio::Epilogue er = e;
        er.residual = with_residual ? res32.data() : nullptr;
        std::vector<float> ref, abs_sum;
        test::conv_reference(p, in32, w32, er, ref, abs_sum);
        const test::MmaReport r =
            test::compare_mma_fp32(prec, got, ref, abs_sum, k, act16 && with_residual ? res32.data() : nullptr);
        result.worst_fp32 = r.worst;
        INFO(what << " vs the fp32 reference: " << r.bad << " of " << out_n << " outside the precision bound; first at "
                  << r.first << " got " << got[r.first] << " ref " << ref[r.first]);
        CHECK(r.ok());
    }
    return result;
}

/// The CUDA backend's 16-bit path (conv2d_mma_f32io): fp32 input, output and residual
/// (Epilogue::residual), the fp32 packing [K][N] converted to P's 16-bit type at load
/// (convert_packed_weights), the input rounded to 16 bits as it is gathered. Checked as
/// check_conv_mma does, with the output and residual unrounded (out16 = false).
template <class P>
MmaCaseResult check_conv_mma_f32io(const softbio::Conv2dParams& p, uint64_t seed, int sm_count, int force_tile = -1,
                                   int force_splits = 0, const std::vector<float>* scale = nullptr,
                                   const std::vector<float>* bias = nullptr, bool with_residual = false,
                                   int activation = 0, bool misalign_in = false) {
    using Act = typename P::Act;
    const MmaPrecision prec = P::kId;
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c, out_n = p.gemm_m() * p.out_c;
    const auto in32 = test::random_vector(in_n, seed);
    const auto w32 = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    const auto res32 = test::random_vector(out_n, seed + 2);
    // misalign_in: the input one float past a 16-byte boundary (the scalar gather must take it).
    std::vector<float> in_store(in_n + 1);
    float* in = in_store.data() + (misalign_in ? 1 : 0);
    std::copy(in32.begin(), in32.end(), in);
    const std::vector<float> in_seen = test::mma_operand_values(prec, in32);
    const std::vector<float> w_seen = test::mma_operand_values(prec, w32);
    std::vector<float> packed32(size_t(p.gemm_k()) * p.out_c);
    softbio::pack_conv_weights(p, w32.data(), nullptr, packed32.data());
    std::vector<Act> packed(packed32.size());
    sc::convert_packed_weights<P>(packed32.data(), packed32.size(), packed.data());
    for (size_t i = 0; i < packed.size(); ++i)  // the load-time conversion is the per-element one, bit for bit
        if (packed[i] != P::from_float(packed32[i])) FAIL("convert_packed_weights differs at " << i);

    softbio::Epilogue e;
    e.scale = scale ? scale->data() : nullptr;
    e.bias = bias ? bias->data() : nullptr;
    e.relu = activation == 1;
    e.leaky_alpha = activation == 2 ? 0.1f : 0.0f;
    e.residual = with_residual ? res32.data() : nullptr;
    std::vector<float> out(out_n, std::numeric_limits<float>::quiet_NaN());
    const sc::ConvPlan plan = sc::plan_conv2d_mma(p, prec, sm_count, force_tile, force_splits);
    std::vector<float> ws(plan.workspace_floats + 2, std::numeric_limits<float>::quiet_NaN());
    const sc::MmaConvLaunch<P, true> L = sc::make_mma_conv_launch_f32io<P>(
        p, in, packed.data(), out.data(), e, plan.workspace_floats ? ws.data() : nullptr, sm_count, force_tile, force_splits);
    CHECK(L.args.w_kn);
    CHECK(L.args.e.residual == nullptr);
    CHECK(L.args.residual == (with_residual ? res32.data() : nullptr));
    simt::Emulator emu(seed);
    emu.allow(in, in_n * sizeof(float), false);
    emu.allow(packed.data(), packed.size() * sizeof(Act), false);
    emu.allow(out.data(), out.size() * sizeof(float), true);
    if (plan.workspace_floats) emu.allow(ws.data(), plan.workspace_floats * sizeof(float), true);
    if (scale) emu.allow(scale->data(), scale->size() * 4, false);
    if (bias) emu.allow(bias->data(), bias->size() * 4, false);
    if (with_residual) emu.allow(res32.data(), res32.size() * sizeof(float), false);
    sc::with_mma_kernel(L.plan.tile, L.gather, [&](auto shape, auto gather) {
        using T = decltype(shape);
        constexpr sc::ConvGather G = decltype(gather)::value;
        emu.launch({int(L.plan.m_tiles), L.plan.n_tiles, L.plan.splits}, T::kThreads, T::kSmemBytes,
                   [&](simt::Ctx& c) { sc::conv2d_mma_block<T, P, G, true, true>(c, L.args); });
    });
    if (L.reduce)
        emu.launch({sc::elementwise_blocks(L.reduce_args.rows * size_t(L.reduce_args.channels), sc::kEpilogueThreads, kFakeSms),
                    1, 1},
                   sc::kEpilogueThreads, 0, [&](simt::Ctx& c) { sc::mma_reduce_body<sc::MmaReduceP<P, true>>(c, L.reduce_args); });

    const std::string what = test::describe(p) + " " + sc::precision_name(prec) + " f32io tile " +
                             sc::tile_name(L.plan.tile) + " gather " + sc::gather_name(L.gather) + " splits " +
                             std::to_string(L.plan.splits) + (L.args.pair ? " pair" : " single") +
                             (L.args.bvec ? " kn-vec" : " kn-scalar") + (with_residual ? " residual" : "") +
                             (scale ? " scale" : "") + (activation ? " act" + std::to_string(activation) : "");
    MmaCaseResult result{L.gather, L.plan.tile, L.plan.splits};
    const double k = p.gemm_k();
    {  // (1) pre-rounded inputs, fp32 output: the fp32 rule
        softbio::Epilogue er = e;
        std::vector<float> ref, abs_sum;
        test::conv_reference(p, in_seen, w_seen, er, ref, abs_sum);
        const test::MmaReport r = test::compare_mma_rounded(prec, out, ref, abs_sum, k, 1, 0);
        result.worst_rounded = r.worst;
        INFO(what << " vs the pre-rounded reference: " << r.bad << " of " << out_n << " outside; first at " << r.first
                  << " got " << out[r.first] << " ref " << ref[r.first]);
        CHECK(r.ok());
    }
    {  // (2) the fp32 reference, the precision's bound
        softbio::Epilogue er = e;
        std::vector<float> ref, abs_sum;
        test::conv_reference(p, in32, w32, er, ref, abs_sum);
        const test::MmaReport r = test::compare_mma_fp32(prec, out, ref, abs_sum, k, nullptr, 1, 0);
        result.worst_fp32 = r.worst;
        INFO(what << " vs the fp32 reference: " << r.bad << " of " << out_n << " outside the precision bound; first at "
                  << r.first << " got " << out[r.first] << " ref " << ref[r.first]);
        CHECK(r.ok());
    }
    return result;
}

template <class F>
void for_each_mma_precision(F&& f) {
    f(sc::MmaTf32{});
    f(sc::MmaFp16{});
    f(sc::MmaBf16{});
}

}  // namespace

TEST_CASE("cuda emulated mma: conv2d over the shared shape grid (+ vector-width channels), tf32 / fp16 / bf16") {
    // Every shape in every precision would take minutes on the emulator; each shape runs in
    // one precision, rotating, so each precision sees a third of the grid (all kernels, odd
    // sizes, strides, paddings, batch 1 and 3, Cin 3/4/16/17, Cout 20/33).
    const std::vector<softbio::Conv2dParams> grid = test::cuda_conv_grid();
    uint64_t seed = 7000;
    int counts[3][3] = {};  // precision x gather
    int split = 0;
    for (size_t i = 0; i < grid.size(); ++i) {
        MmaCaseResult r;
        const int which = int((i / 2) % 3);  // the two channel variants of a shape stay together
        // Every fifth shape on 32x32 tiles with 2 split-K slices (the planner gives these
        // small K no split), the others as planned for an H100.
        const int splits = i % 5 == 4 ? 2 : 0, tile = splits ? 2 : -1;
        if (which == 0) r = check_conv_mma<sc::MmaTf32>(grid[i], seed += 3, 132, tile, splits);
        else if (which == 1) r = check_conv_mma<sc::MmaFp16>(grid[i], seed += 3, 132, tile, splits);
        else r = check_conv_mma<sc::MmaBf16>(grid[i], seed += 3, 132, tile, splits);
        ++counts[which][int(r.gather)];
        split += r.splits > 1;
    }
    for (int p = 0; p < 3; ++p) {
        INFO("precision " << p);
        CHECK(counts[p][int(sc::ConvGather::kScalar)] > 0);
        CHECK(counts[p][int(sc::ConvGather::kVec4)] + counts[p][int(sc::ConvGather::kPointwise)] > 0);
    }
    CHECK(split > 0);
}

TEST_CASE("cuda emulated mma: every tile shape x split-K x precision on the tiling shapes and the stem") {
    std::vector<softbio::Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(1, 20, 18, 3, 64, 7, 2, 3));  // the stem
    uint64_t seed = 8000;
    int pointwise = 0;
    for_each_mma_precision([&](auto prec) {
        using P = decltype(prec);
        for (size_t s = 0; s < shapes.size(); ++s)
            for (int tile = 0; tile < 3; ++tile) {
                const int splits = (s + size_t(tile)) % 2 ? 3 : 1;
                const MmaCaseResult r = check_conv_mma<P>(shapes[s], seed += 3, 132, tile, splits);
                CHECK(int(r.tile) == tile);
                pointwise += r.gather == sc::ConvGather::kPointwise;
            }
    });
    CHECK(pointwise > 0);
}

TEST_CASE("cuda emulated mma: fused epilogue (scale, bias, residual, ReLU / leaky) direct and through split-K") {
    softbio::Conv2dParams p = test::conv_shape(3, 9, 7, 16, 21, 3, 2, 1);
    uint64_t seed = 9000;
    for (int out_c : {21, 24}) {  // odd N: single stores; even N: pairs
        p.out_c = out_c;
        auto scale = test::random_vector(size_t(out_c), 13), bias = test::random_vector(size_t(out_c), 14);
        for_each_mma_precision([&](auto prec) {
            using P = decltype(prec);
            for (int splits : {1, 2})
                for (int variant = 0; variant < 4; ++variant) {
                    const bool with_scale = variant & 1, with_residual = variant >= 2;
                    check_conv_mma<P>(p, seed += 3, 132, 2, splits, with_scale ? &scale : nullptr, &bias, with_residual,
                                      (variant + splits) % 3);
                }
        });
    }
}

TEST_CASE("cuda emulated mma: asymmetric / TF same padding, every gather, planned, split-K and 64x64") {
    uint64_t seed = 9500;
    int i = 0;
    for (const softbio::Conv2dParams& base : test::conv_asym_shapes()) {
        for (int cin : {base.in_c, 16}) {  // the grid's 5 / 8 and a 16-bit vector width
            softbio::Conv2dParams p = base;
            p.in_c = cin;
            switch (i++ % 3) {
                case 0: check_conv_mma<sc::MmaTf32>(p, seed += 3, 132), check_conv_mma<sc::MmaFp16>(p, seed += 3, 132, 2, 2); break;
                case 1: check_conv_mma<sc::MmaFp16>(p, seed += 3, 132), check_conv_mma<sc::MmaBf16>(p, seed += 3, 132, 1, 1); break;
                default: check_conv_mma<sc::MmaBf16>(p, seed += 3, 132), check_conv_mma<sc::MmaTf32>(p, seed += 3, 132, 2, 2); break;
            }
        }
    }
}

TEST_CASE("cuda planning (tensor cores): ResNet-101 layers get sane plans; weights pack to 16-byte rows") {
    for (MmaPrecision prec : {MmaPrecision::kTf32, MmaPrecision::kFp16})
        for (int batch : {1, 256})
            for (const test::ConvUse& use : test::distinct_convs("torchvision-r101", batch, 224)) {
                const sc::ConvPlan plan = sc::plan_conv2d_mma(use.p, prec, 132);
                INFO(use.where);
                CHECK(plan.m_tiles * plan.bm >= (long long)use.p.gemm_m());
                CHECK(plan.n_tiles * plan.bn >= use.p.out_c);
                CHECK((long long)plan.ktiles_per_split * (plan.splits - 1) < plan.ktiles);
                CHECK(plan.smem_bytes <= 48u * 1024u);
                if (batch == 256) CHECK(plan.splits == 1);
                CHECK(sc::mma_ldk(use.p.gemm_k(), prec) * (prec == MmaPrecision::kTf32 ? 4 : 2) % 16 == 0);
            }
    // A residual in the fp32 Epilogue slot is refused (the kernel reads it in the storage type).
    const softbio::Conv2dParams p = test::conv_shape(1, 5, 5, 8, 8, 3, 1, 1);
    std::vector<uint16_t> buf(1024);
    std::vector<float> r(256);
    softbio::Epilogue e;
    e.residual = r.data();
    CHECK_THROWS_AS(sc::make_mma_conv_launch<sc::MmaFp16>(p, buf.data(), buf.data(), buf.data(), e, nullptr, nullptr, 132),
                    Error);
}

TEST_CASE("precision selection: what each device runs, and the refusals naming what is missing") {
    CHECK_NOTHROW(softbio::require_precision(softbio::Device::Cpu, softbio::Precision::Fp32));
    CHECK_NOTHROW(softbio::require_precision(softbio::Device::Cuda, softbio::Precision::Fp32));
    for (softbio::Precision p : {softbio::Precision::Tf32, softbio::Precision::Fp16, softbio::Precision::Bf16}) {
        CHECK(softbio::parse_precision(softbio::precision_name(p)) == p);
        if (p == softbio::Precision::Bf16 && softbio::cpu::bf16_gemm_available()) {  // the CPU's bf16 GEMM runs here
            CHECK_NOTHROW(softbio::require_precision(softbio::Device::Cpu, p));
            continue;
        }
        try {
            softbio::require_precision(softbio::Device::Cpu, p);
            FAIL("accepted");
        } catch (const softbio::PrecisionUnavailable& e) {
            const std::string m = e.what();
            if (p == softbio::Precision::Bf16) {
                CHECK(m.find("precision bf16: the CPU backend's bf16 needs AVX512_BF16") == 0);
            } else {
                CHECK(m.find(std::string("precision ") + softbio::precision_name(p) +
                             ": the CPU backend computes in fp32 or bf16") == 0);
                CHECK(m.find("run on the tensor cores of a GPU (device cuda)") != std::string::npos);
            }
        }
        softbio::LoadOptions opt;
        opt.precision = p;  // refused before the file is opened
        CHECK_THROWS_AS(softbio::load_model("/nonexistent.safetensors", opt), softbio::PrecisionUnavailable);
        CHECK_THROWS_AS(softbio::load_device_model("/nonexistent.safetensors", opt), softbio::PrecisionUnavailable);
        // CudaBackend runs tf32, fp16 and bf16; this program has no CUDA backend compiled in -> DeviceUnavailable.
        CHECK_THROWS_AS(softbio::require_precision(softbio::Device::Cuda, p), softbio::DeviceUnavailable);
        opt.device = softbio::Device::Cuda;
        CHECK_THROWS_AS(softbio::load_device_model("/nonexistent.safetensors", opt), softbio::DeviceUnavailable);
        // A typed load onto a non-CPU backend accepts it (the host models below are such loads).
        CHECK_NOTHROW(softbio::detail::require_backend_precision(softbio::Device::Cuda, p));
    }
    CHECK_THROWS_AS(softbio::parse_precision("fp8"), softbio::Error);
}

TEST_CASE("cuda emulated mma: conv2d_tf32, the drop-in (fp32 [K][N] weights, fp32 residual), over the grid and tiles") {
    // The fp32 kernel's packing read straight into Bs[BK][BN + 8], rounded with cvt.rna as
    // read: scalar (Cout % 4 != 0) and 16-byte copies, every tile, split-K, the epilogue
    // with the residual in Epilogue::residual.
    uint64_t seed = 11000;
    int vec = 0, scalar = 0;
    const std::vector<softbio::Conv2dParams> grid = test::cuda_conv_grid();
    for (size_t i = 0; i < grid.size(); i += 3) {
        softbio::Conv2dParams p = grid[i];
        if (i % 2) p.out_c = 36;  // a 16-byte Cout
        const int splits = i % 5 == 4 ? 2 : 0, tile = splits ? 2 : -1;
        check_conv_mma<sc::MmaTf32>(p, seed += 3, 132, tile, splits, nullptr, nullptr, false, 0, true);
        (p.out_c % 4 ? scalar : vec)++;
    }
    std::vector<softbio::Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(1, 20, 18, 3, 64, 7, 2, 3));
    for (size_t s = 0; s < shapes.size(); ++s)
        for (int tile = 0; tile < 3; ++tile)
            check_conv_mma<sc::MmaTf32>(shapes[s], seed += 3, 132, tile, (s + size_t(tile)) % 2 ? 3 : 1, nullptr, nullptr, false,
                                        0, true);
    softbio::Conv2dParams p = test::conv_shape(3, 9, 7, 16, 21, 3, 2, 1);
    for (int out_c : {21, 24}) {
        p.out_c = out_c;
        auto scale = test::random_vector(size_t(out_c), 13), bias = test::random_vector(size_t(out_c), 14);
        for (int splits : {1, 2})
            for (int variant = 0; variant < 4; ++variant)
                check_conv_mma<sc::MmaTf32>(p, seed += 3, 132, 2, splits, variant & 1 ? &scale : nullptr, &bias, variant >= 2,
                                            (variant + splits) % 3, true);
    }
    for (const softbio::Conv2dParams& q : test::conv_asym_shapes()) check_conv_mma<sc::MmaTf32>(q, seed += 3, 132, -1, 0, nullptr, nullptr, true, 1, true);
    CHECK(vec > 0);
    CHECK(scalar > 0);
}

TEST_CASE("cuda emulated mma: 16-bit conversions equal an independent round-to-nearest-even, over float bit patterns") {
    // The reference: the value's exact multiple of the format's spacing at its exponent
    // (clamped to the smallest normal's: subnormals), rounded to nearest, ties to the even
    // multiple, in double (exact: a float has 24 bits); past the largest finite: Inf.
    auto reference = [](float x, int digits, int emin, double largest) -> double {
        if (x == 0.0f || !std::isfinite(x)) return double(x);
        const double ax = std::fabs(double(x));
        int ex = 0;
        std::frexp(ax, &ex);  // ax = m 2^ex, m in [0.5, 1): exponent ex - 1
        const double ulp = std::ldexp(1.0, std::max(ex - 1, emin) - (digits - 1));
        const double r = ax / ulp, fl = std::floor(r), rest = r - fl;
        double q = fl;
        if (rest > 0.5 || (rest == 0.5 && std::fmod(fl, 2.0) != 0.0)) q += 1.0;
        double v = q * ulp;
        if (v > largest) v = INFINITY;
        return x < 0 ? -v : v;
    };
    const double f16_max = 65504.0, bf16_max = std::ldexp(255.0, 120);  // (2 - 2^-7) 2^127
    size_t checked = 0, bad16 = 0, badbf = 0;
    auto check_bits = [&](uint32_t u) {
        const float x = sc::bits_f32(u);
        if (std::isnan(x)) return;
        const double h = sc::f16_bits_to_f32(sc::f32_to_f16_bits(x)), hr = reference(x, 11, -14, f16_max);
        const double b = sc::bf16_bits_to_f32(sc::f32_to_bf16_bits(x)), br = reference(x, 8, -126, bf16_max);
        bad16 += !(h == hr && std::signbit(h) == std::signbit(hr));
        badbf += !(b == br && std::signbit(b) == std::signbit(br));
        ++checked;
    };
    for (uint64_t u = 0; u < (1ull << 32); u += 997) check_bits(uint32_t(u));
    // Every tie and its neighbours: half-way points of fp16 (13 dropped bits) and bf16 (16).
    for (uint32_t hi = 0; hi < 0x10000u; hi += 7) {
        for (int d = -1; d <= 1; ++d) {
            check_bits((hi << 16) + 0x8000u + uint32_t(d));
            check_bits((hi << 13) + 0x1000u + uint32_t(d));
        }
    }
    INFO(checked << " values");
    CHECK(bad16 == 0);
    CHECK(badbf == 0);
#if defined(__FLT16_MAX__)
    // And the compiler's own _Float16 conversion (IEEE round to nearest even), where it has one.
    size_t bad_native = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 1009) {
        const float x = sc::bits_f32(uint32_t(u));
        if (std::isnan(x)) continue;
        const _Float16 n = static_cast<_Float16>(x);
        uint16_t nb;
        std::memcpy(&nb, &n, 2);
        bad_native += nb != sc::f32_to_f16_bits(x);
    }
    CHECK(bad_native == 0);
#endif
    // The load-time conversion of packed weights: the same per element; out of range refused.
    const std::vector<float> w = {1.0f, -0.1f, 65504.0f, 1e-8f, 3.0e5f};
    std::vector<uint16_t> o(w.size());
    CHECK_THROWS_WITH_AS(sc::convert_packed_weights(MmaPrecision::kFp16, w.data(), w.size(), o.data()),
                         doctest::Contains("does not fit in fp16"), softbio::Error);
    CHECK_NOTHROW(sc::convert_packed_weights(MmaPrecision::kBf16, w.data(), w.size(), o.data()));
    for (size_t i = 0; i < w.size(); ++i) CHECK(o[i] == sc::f32_to_bf16_bits(w[i]));
    CHECK_NOTHROW(sc::convert_packed_weights(MmaPrecision::kFp16, w.data(), 4, o.data()));
    for (size_t i = 0; i < 4; ++i) CHECK(o[i] == sc::f32_to_f16_bits(w[i]));
}

TEST_CASE("cuda emulated mma: conv2d_mma_f32io, the fp16 / bf16 drop-in (fp32 tensors, 16-bit [K][N] weights)") {
    // The CUDA backend's 16-bit path: fp32 activations rounded to 16 bits as gathered
    // (two 16-byte loads per 8 channels, or one float per element), the [K][N] weights
    // converted at load (16-byte copies when Cout % 8 == 0, else per element), fp32
    // output and residual. The shared grid (odd sizes, strides, padding, batch 1 and 3,
    // Cin 3/4/16/17: scalar and vector gathers, Cout 20/33 and 40: scalar and 16-byte B),
    // alternating fp16 / bf16.
    uint64_t seed = 12000;
    int counts[2][3] = {}, bvec = 0, bscalar = 0, split = 0;
    const std::vector<softbio::Conv2dParams> grid = test::cuda_conv_grid();
    for (size_t i = 0; i < grid.size(); ++i) {
        softbio::Conv2dParams p = grid[i];
        if (i % 3 == 1) p.out_c = 40;  // a 16-byte Cout for the 16-bit B copies
        const int which = int((i / 2) % 2);
        const int splits = i % 5 == 4 ? 2 : 0, tile = splits ? 2 : -1;
        const MmaCaseResult r = which ? check_conv_mma_f32io<sc::MmaBf16>(p, seed += 3, 132, tile, splits)
                                      : check_conv_mma_f32io<sc::MmaFp16>(p, seed += 3, 132, tile, splits);
        ++counts[which][int(r.gather)];
        (p.out_c % 8 ? bscalar : bvec)++;
        split += r.splits > 1;
    }
    for (int w = 0; w < 2; ++w) {
        INFO("precision " << (w ? "bf16" : "fp16"));
        CHECK(counts[w][int(sc::ConvGather::kScalar)] > 0);
        CHECK(counts[w][int(sc::ConvGather::kVec4)] > 0);
        CHECK(counts[w][int(sc::ConvGather::kPointwise)] > 0);
    }
    CHECK(bvec > 0);
    CHECK(bscalar > 0);
    CHECK(split > 0);
}

TEST_CASE("cuda emulated mma: conv2d_mma_f32io on every tile x split-K, the stem, the epilogue, padding, misalignment") {
    uint64_t seed = 13000;
    std::vector<softbio::Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(1, 20, 18, 3, 64, 7, 2, 3));  // the stem (Cin 3: the scalar gather)
    for (size_t s = 0; s < shapes.size(); ++s)
        for (int tile = 0; tile < 3; ++tile) {
            const int splits = (s + size_t(tile)) % 2 ? 3 : 1;
            const MmaCaseResult r = (s + size_t(tile)) % 2 ? check_conv_mma_f32io<sc::MmaFp16>(shapes[s], seed += 3, 132, tile, splits)
                                                           : check_conv_mma_f32io<sc::MmaBf16>(shapes[s], seed += 3, 132, tile, splits);
            CHECK(int(r.tile) == tile);
        }
    // Fused epilogue: scale, bias, fp32 residual, ReLU / leaky ReLU; odd and even N, direct and split-K.
    softbio::Conv2dParams p = test::conv_shape(3, 9, 7, 16, 21, 3, 2, 1);
    for (int out_c : {21, 24}) {
        p.out_c = out_c;
        auto scale = test::random_vector(size_t(out_c), 13), bias = test::random_vector(size_t(out_c), 14);
        for (int splits : {1, 2})
            for (int variant = 0; variant < 4; ++variant) {
                const bool with_scale = variant & 1, with_residual = variant >= 2;
                if (variant % 2)
                    check_conv_mma_f32io<sc::MmaFp16>(p, seed += 3, 132, 2, splits, with_scale ? &scale : nullptr, &bias,
                                                      with_residual, (variant + splits) % 3);
                else
                    check_conv_mma_f32io<sc::MmaBf16>(p, seed += 3, 132, 2, splits, with_scale ? &scale : nullptr, &bias,
                                                      with_residual, (variant + splits) % 3);
            }
    }
    // Asymmetric / TF "same" padding with 8-channel inputs (vector gather) and the grid's.
    int i = 0;
    for (const softbio::Conv2dParams& base : test::conv_asym_shapes())
        for (int cin : {base.in_c, 16}) {
            softbio::Conv2dParams q = base;
            q.in_c = cin;
            if (i++ % 2) check_conv_mma_f32io<sc::MmaFp16>(q, seed += 3, 132, -1, 0, nullptr, nullptr, true, 1);
            else check_conv_mma_f32io<sc::MmaBf16>(q, seed += 3, 132, 1, 2, nullptr, nullptr, true, 1);
        }
    // An input that is not 16-byte aligned: the scalar gather, even with Cin % 8 == 0.
    const softbio::Conv2dParams q = test::conv_shape(2, 7, 6, 16, 24, 3, 1, 1);
    const MmaCaseResult r = check_conv_mma_f32io<sc::MmaFp16>(q, seed += 3, 132, -1, 0, nullptr, nullptr, false, 0, true);
    CHECK(r.gather == sc::ConvGather::kScalar);
    // A ResNet-like 3x3 with 64 channels in and out at batch 2, planned on 132 SMs (vec4, 16-byte B).
    check_conv_mma_f32io<sc::MmaBf16>(test::conv_shape(2, 10, 9, 64, 64, 3, 1, 1), seed += 3, 132);
    check_conv_mma_f32io<sc::MmaFp16>(test::conv_shape(1, 9, 9, 64, 128, 1, 2, 0), seed += 3, 132);
}

TEST_CASE("precision plumbing: LoadOptions::precision reaches a context that has a precision (CudaContext)") {
    // ResNet::make_workspace calls detail::set_context_precision on the backend context
    // it made: a context with a `precision` member (CudaContext; this stand-in has the same
    // member, CudaContext itself needs nvcc) takes the model's precision, CpuContext is
    // left alone. CudaBackend::conv2d / conv2d_workspace_floats then choose conv2d_tf32.
    struct WithPrecision {
        int threads = 1;
        softbio::Precision precision = softbio::Precision::Fp32;
    };
    static_assert(softbio::detail::context_has_precision<WithPrecision>::value, "");
    static_assert(!softbio::detail::context_has_precision<softbio::CpuContext>::value, "");
    WithPrecision c;
    softbio::detail::set_context_precision(c, softbio::Precision::Tf32);
    CHECK(c.precision == softbio::Precision::Tf32);
    softbio::CpuContext cpu{3};
    softbio::detail::set_context_precision(cpu, softbio::Precision::Tf32);
    CHECK(cpu.threads == 3);
}

TEST_CASE("whole network in TF32 (host model): ResNet-18 at 128 within tf32_model.hpp's rule of the fp32 path") {
    // Tf32HostBackend = the CPU engine with every conv's activations and weights rounded
    // as conv2d_tf32 rounds them (the GPU differs only in the fp32 accumulation order).
    // This is where tf32_model.hpp's measured fractions come from; the GPU test
    // (test_cuda_model.cu) holds the real tensor cores to the same rule.
    const softbio::ModelConfig cfg = softbio::preset_config("celeba-r18");
    const std::string path = test::temp_path("emulated_tf32_r18.safetensors");
    softbio::write_synthetic_model(path, cfg);
    const int batch = 4;
    auto x = test::random_vector(size_t(batch) * cfg.arch.input_h * cfg.arch.input_w * 3, 29);
    for (auto& v : x) v = 0.5f * (v + 1.0f);
    auto run = [&](auto model) {
        auto ws = model->make_workspace(batch);
        model->forward(x.data(), batch, *ws);
        std::vector<std::vector<float>> o;
        o.emplace_back(ws->features(), ws->features() + size_t(batch) * model->feature_width());
        for (size_t i = 0; i < model->heads().size(); ++i)
            o.emplace_back(ws->logits(i), ws->logits(i) + size_t(batch) * model->heads()[i].logits());
        return o;
    };
    const auto ref = run(softbio::load_model(path));
    const auto tf32 = run(softbio::load_network<softbio::ResNet<test::Tf32HostBackend>>(path));
    REQUIRE(ref.size() == tf32.size());
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = test::max_abs_diff(tf32[i], ref[i]), s = test::spread_of(ref[i]);
        INFO("output " << i << ": max|diff| " << d << ", spread " << s << ", fraction " << d / s);
        CHECK(d > 0);                                // the rounding did change the values
        CHECK(d <= test::kTf32Relative * s);         // the rule
        CHECK(d <= test::kTf32Relative * s / 4);     // with the margin tf32_model.hpp states (measured ~4e-4)
    }
    std::remove(path.c_str());
}

namespace {
/// Features and every head's logits of `model` on `x` (batch images).
template <class M>
std::vector<std::vector<float>> whole_outputs(const M& model, const std::vector<float>& x, int batch) {
    auto ws = model->make_workspace(batch);
    model->forward(x.data(), batch, *ws);
    std::vector<std::vector<float>> o;
    o.emplace_back(ws->features(), ws->features() + size_t(batch) * model->feature_width());
    for (size_t i = 0; i < model->heads().size(); ++i)
        o.emplace_back(ws->logits(i), ws->logits(i) + size_t(batch) * model->heads()[i].logits());
    return o;
}
}  // namespace

TEST_CASE("whole network in FP16 / BF16 (host model): ResNet-18 and ResNet-101 at 128 within tf32_model.hpp's rules") {
    // Mma16HostBackend = the CPU engine with every conv's input and filters rounded to the
    // 16-bit type as conv2d_mma_f32io rounds them (the GPU differs only in the fp32
    // accumulation order). tf32_model.hpp's measured fractions come from here; the GPU
    // test (test_cuda_model.cu) holds the real tensor cores to the same rules.
    for (const char* preset : {"celeba-r18", "flagship"}) {
        const softbio::ModelConfig cfg = softbio::preset_config(preset);
        const std::string path = test::temp_path(std::string("emulated_16bit_") + preset + ".safetensors");
        softbio::write_synthetic_model(path, cfg);
        const int batch = 4;
        auto x = test::random_vector(size_t(batch) * cfg.arch.input_h * cfg.arch.input_w * 3, 31);
        for (auto& v : x) v = 0.5f * (v + 1.0f);
        const auto ref = whole_outputs(softbio::load_model(path), x, batch);
        const auto f16 = whole_outputs(softbio::load_network<softbio::ResNet<test::Fp16HostBackend>>(path), x, batch);
        const auto b16 = whole_outputs(softbio::load_network<softbio::ResNet<test::Bf16HostBackend>>(path), x, batch);
        REQUIRE(ref.size() == f16.size());
        REQUIRE(ref.size() == b16.size());
        for (size_t i = 0; i < ref.size(); ++i) {
            const double s = test::spread_of(ref[i]);
            const double dh = test::max_abs_diff(f16[i], ref[i]), db = test::max_abs_diff(b16[i], ref[i]);
            MESSAGE(std::string(preset) << " output " << i << ": spread " << s << ", fp16 fraction " << dh / s << ", bf16 fraction "
                           << db / s);
            CHECK(dh > 0);
            CHECK(db > dh);                             // 8 x the unit roundoff
            CHECK(dh <= test::kFp16Relative * s / 4);   // the rule, with the margin tf32_model.hpp states
            CHECK(db <= test::kBf16Relative * s / 4);
        }
        std::remove(path.c_str());
    }
}

namespace {
/// A stand-in backend recording what upload() is asked to store and under which filter
/// storage precision (core/precision.hpp: FilterStorageScope).
struct RecordingBackend : softbio::CpuBackend {
    static std::vector<std::pair<softbio::Precision, size_t>>& seen() {
        static std::vector<std::pair<softbio::Precision, size_t>> s;
        return s;
    }
    static Buffer upload(const float* host, size_t count) {
        seen().emplace_back(softbio::filter_storage_precision(), count);
        return softbio::CpuBackend::upload(host, count);
    }
};
}  // namespace

TEST_CASE("precision plumbing: a ResNet's build uploads each conv filter, and only those, inside its precision's scope") {
    // CudaBackend::upload stores what it gets inside a FilterStorageScope of fp16 / bf16 in
    // that 16-bit type: so exactly the conv filters must be uploaded inside it.
    for (softbio::Precision prec : {softbio::Precision::Fp16, softbio::Precision::Bf16, softbio::Precision::Fp32}) {
        const softbio::ModelConfig cfg = softbio::preset_config("celeba-r18");
        const std::string path = test::temp_path("emulated_scope_r18.safetensors");
        softbio::write_synthetic_model(path, cfg);
        RecordingBackend::seen().clear();
        softbio::LoadOptions opt;
        opt.precision = prec;
        auto model = softbio::load_network<softbio::ResNet<RecordingBackend>>(path, opt);
        CHECK(softbio::filter_storage_precision() == softbio::Precision::Fp32);  // the scope is closed again
        std::vector<size_t> filters;  // every conv of the description: gemm_k * out_c values
        for (const softbio::UnitDesc& u : model->description().units)
            if (u.kind == softbio::UnitKind::ConvBn)
                filters.push_back(size_t(u.in_channels) * size_t(u.kernel) * size_t(u.kernel) * size_t(u.out_channels));
        std::vector<size_t> scoped, unscoped;
        for (const auto& pn : RecordingBackend::seen()) (pn.first == prec ? scoped : unscoped).push_back(pn.second);
        if (prec == softbio::Precision::Fp32) {
            CHECK(scoped.size() == RecordingBackend::seen().size());
        } else {
            std::sort(filters.begin(), filters.end());
            std::sort(scoped.begin(), scoped.end());
            CHECK(scoped == filters);                      // the filters, each once, in the scope
            CHECK(unscoped.size() >= 2 * filters.size());  // BatchNorm scale and bias outside it
        }
        std::remove(path.c_str());
    }
}

namespace {
/// CudaBackend::upload's 16-bit step on the CPU backend: inside a FilterStorageScope of
/// fp16 / bf16 the filter goes through cuda::convert_packed_weights (which refuses a value
/// the type cannot hold), then is stored as the CPU stores it.
struct Converting16Backend : softbio::CpuBackend {
    static Buffer upload(const float* host, size_t count) {
        const softbio::Precision p = softbio::filter_storage_precision();
        if (p == softbio::Precision::Fp16 || p == softbio::Precision::Bf16) {
            std::vector<uint16_t> h(count);
            sc::convert_packed_weights(p == softbio::Precision::Fp16 ? MmaPrecision::kFp16 : MmaPrecision::kBf16, host,
                                       count, h.data());
        }
        return softbio::CpuBackend::upload(host, count);
    }
};

/// A model file's tensors with one of them multiplied by `factor`.
struct ScaledWeights : softbio::WeightSource {
    const softbio::WeightSource& base;
    std::string name;
    softbio::TensorRef scaled;
    std::vector<float> data;
    ScaledWeights(const softbio::WeightSource& b, std::string n, float factor) : base(b), name(std::move(n)) {
        const softbio::TensorRef& t = base.tensor(name);
        data.assign(t.data, t.data + t.numel());
        for (float& v : data) v *= factor;
        scaled.data = data.data(), scaled.shape = t.shape;
    }
    const softbio::TensorRef& tensor(const std::string& n) const override { return n == name ? scaled : base.tensor(n); }
};
}  // namespace

TEST_CASE("precision plumbing: a filter past fp16's range is refused at load, naming the unit; bf16 holds it") {
    const softbio::ModelConfig cfg = softbio::preset_config("celeba-r18");
    const std::string path = test::temp_path("emulated_overflow_r18.safetensors");
    softbio::write_synthetic_model(path, cfg);
    const softbio::ModelFile file = softbio::open_model_file(path);
    const ScaledWeights big(file, "layer2.0.conv1.weight", 1e8f);  // folded values far past 65504 (fp32 holds them)
    softbio::LoadOptions opt;
    opt.precision = softbio::Precision::Fp16;
    CHECK_THROWS_WITH_AS(softbio::ResNet<Converting16Backend>(file.config(), big, opt, path),
                         doctest::Contains("layer2.0.conv1"), softbio::ModelFileError);
    CHECK_THROWS_WITH_AS(softbio::ResNet<Converting16Backend>(file.config(), big, opt, path),
                         doctest::Contains("does not fit in fp16"), softbio::ModelFileError);
    CHECK(softbio::filter_storage_precision() == softbio::Precision::Fp32);  // the scope closed on the way out
    opt.precision = softbio::Precision::Bf16;
    CHECK_NOTHROW(softbio::ResNet<Converting16Backend>(file.config(), big, opt, path));
    opt.precision = softbio::Precision::Fp16;
    CHECK_NOTHROW(softbio::ResNet<Converting16Backend>(file.config(), file, opt, path));  // the unscaled file fits
    std::remove(path.c_str());
}
