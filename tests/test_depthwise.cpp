// tests/test_depthwise.cpp — the operations the face-api networks need (docs/FACE_MODELS.md
// §2-§6), each against a slow, obviously-correct reference:
//  * depthwise convolution (kernels/cpu/depthwise.hpp) over a shape grid, and its
//    reference against an independent construction (a dense conv with a diagonal filter);
//  * asymmetric / TensorFlow "same" padding (tf_same_padding, Conv2dParams/Pool2dParams)
//    in conv2d, depthwise and the pools, against the references run on an input padded
//    explicitly (zeros for convolutions, -inf for max pooling) with no padding;
//  * leaky ReLU in the epilogue (face-api's relu(x - 0.1x) + 0.1x; NaN stays NaN);
//  * the layers DepthwiseConv2d and SeparableConv2d, PyTorch and TensorFlow filter
//    layouts, and the face-api networks' "same" shapes.
// Tolerance: tests/tolerance.hpp's rule for sums; exact where nothing is summed (max pool).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <softbio/backend/cpu.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/depthwise.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/pool.hpp>
#include <softbio/layers/conv2d.hpp>
#include <softbio/layers/depthwise_conv.hpp>
#include <softbio/layers/pooling.hpp>
#include <softbio/layers/separable_conv.hpp>

#include "test_util.hpp"

using namespace softbio;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

/// An NHWC batch copied into a larger map with `q` pixels of `fill` on each side.
std::vector<float> pad_explicitly(const std::vector<float>& in, int n, int h, int w, int c, Padding2d q, float fill) {
    const int ph = h + q.top + q.bottom, pw = w + q.left + q.right;
    std::vector<float> out(size_t(n) * ph * pw * c, fill);
    for (int b = 0; b < n; ++b)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int ch = 0; ch < c; ++ch)
                    out[((size_t(b) * ph + y + q.top) * pw + x + q.left) * c + ch] = in[((size_t(b) * h + y) * w + x) * c + ch];
    return out;
}

/// The same op on the explicitly padded input, with no padding of its own.
template <class P>
P unpadded(const P& p) {
    const Padding2d q = p.padding();
    P u = p;
    u.in_h = p.in_h + q.top + q.bottom, u.in_w = p.in_w + q.left + q.right;
    u.pad = 0, u.same = false;
    u.set_padding(0, 0, 0, 0);
    return u;
}

/// Depthwise filters [C, 1, kh, kw] as a dense conv's [C, C, kh, kw] (zero off the diagonal).
std::vector<float> dense_from_depthwise(const Conv2dParams& p, const std::vector<float>& w) {
    const size_t taps = size_t(p.kernel_h) * p.kernel_w;
    std::vector<float> dense(size_t(p.in_c) * p.in_c * taps, 0.0f);
    for (int c = 0; c < p.in_c; ++c)
        for (size_t t = 0; t < taps; ++t) dense[(size_t(c) * p.in_c + c) * taps + t] = w[size_t(c) * taps + t];
    return dense;
}

size_t out_count(const Conv2dParams& p) { return p.gemm_m() * size_t(p.out_c); }

/// Run the depthwise kernel and compare with its reference (+ the epilogue's reference).
void check_depthwise(const Conv2dParams& p, int threads, uint64_t seed, const Epilogue& e = {},
                     const std::vector<float>* scale = nullptr, const std::vector<float>* bias = nullptr,
                     const std::vector<float>* residual = nullptr) {
    const size_t taps = size_t(p.kernel_h) * p.kernel_w;
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.in_c) * taps, seed + 1);
    std::vector<float> packed(w.size());
    pack_depthwise_weights(p, w.data(), nullptr, packed.data());
    const size_t out_n = out_count(p);
    std::vector<float> fast(out_n, kNaN), ref(out_n), abs_sum(out_n);  // NaN: every output must be written
    cpu::depthwise_conv2d(p, in.data(), packed.data(), fast.data(), e, threads);
    cpu::depthwise_conv2d_reference(p, in.data(), w.data(), ref.data());
    cpu::apply_epilogue_reference(e, ref.data(), p.gemm_m(), p.in_c);
    cpu::depthwise_conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
    for (size_t i = 0; i < out_n; ++i) {
        const size_t c = i % size_t(p.in_c);
        abs_sum[i] = abs_sum[i] * (e.scale ? std::fabs((*scale)[c]) : 1.0f) + (e.bias ? std::fabs((*bias)[c]) : 0.0f) +
                     (e.residual ? std::fabs((*residual)[i]) : 0.0f);
    }
    test::check_close(fast, ref, abs_sum, double(taps), test::describe(p) + " depthwise, threads " + std::to_string(threads));
}

}  // namespace

TEST_CASE("padding: tf_same_padding follows TensorFlow (out = ceil(in/s), the odd pixel at the bottom/right)") {
    struct Row {
        int in, k, s, before, after, out;
    };
    const Row rows[] = {
        {112, 3, 2, 0, 1, 56},  // FACE_MODELS.md §2's example: 3x3/2 on 112
        {56, 3, 2, 0, 1, 28},   {28, 3, 1, 1, 1, 28},  {13, 2, 1, 0, 1, 13},  // detector's stride-1 pool
        {414, 2, 2, 0, 0, 207}, {207, 2, 2, 0, 1, 104}, {104, 2, 2, 0, 0, 52}, {56, 1, 2, 0, 0, 28},
        {7, 7, 2, 3, 3, 4},     {5, 1, 3, 0, 0, 2},     {1, 3, 1, 1, 1, 1},    {6, 4, 1, 1, 2, 6},
    };
    for (const Row& r : rows) {
        INFO("in " << r.in << " k " << r.k << " s " << r.s);
        const SamePadding sp = tf_same_padding(r.in, r.k, r.s);
        CHECK(sp.before == r.before);
        CHECK(sp.after == r.after);
        CHECK(sp.out == r.out);
        // The window op's floor formula gives the same size with these pads.
        Conv2dParams c = Conv2dParams::geometry_same(3, 4, r.k, r.s).for_input(1, r.in, r.in);
        CHECK(c.out_h() == r.out);
        CHECK(c.out_w() == r.out);
        CHECK(c.padding() == Padding2d{r.before, r.before, r.after, r.after});
        Pool2dParams q = Pool2dParams::window_same(r.k, r.s).for_input(1, r.in, r.in, 2);
        CHECK(q.out_h() == r.out);
        CHECK(q.padding() == Padding2d{r.before, r.before, r.after, r.after});
    }
    // Rows and columns resolve separately; per-side pads override `pad`, side by side.
    Conv2dParams c = Conv2dParams::geometry_same(3, 4, 3, 2).for_input(1, 112, 111);
    CHECK(c.padding() == Padding2d{0, 1, 1, 1});
    Conv2dParams d = Conv2dParams::geometry(3, 4, 3, 1, 2);
    CHECK(d.padding() == Padding2d{2, 2, 2, 2});
    CHECK(d.padding().is_symmetric());
    d.pad_bottom = 0;
    CHECK(d.padding() == Padding2d{2, 2, 0, 2});
    d.set_padding(0, 1, 2, 3);
    CHECK(d.padding() == Padding2d{0, 1, 2, 3});
    CHECK_FALSE(Conv2dParams::geometry(3, 4, 1, 1, 0).set_padding(0, 0, 1, 0).is_pointwise());
}

TEST_CASE("padding: the face-api networks' shapes (detector at 416, the 112-pixel nets)") {
    // Tiny face detector: conv0 3x3 valid, then 2x2/2 "same" max pools, the last 2x2/1.
    Conv2dParams conv0 = Conv2dParams::geometry(3, 16, 3, 1, 0).for_input(1, 416, 416);
    int size = conv0.out_h();
    CHECK(size == 414);
    const int expect[] = {207, 104, 52, 26, 13};
    for (int i = 0; i < 5; ++i) {
        size = Pool2dParams::window_same(2, 2).for_input(1, size, size, 16).out_h();
        CHECK(size == expect[i]);
        // the separable convs in between keep the size (explicit zero pad 1, 3x3)
        CHECK(Conv2dParams::depthwise(16, 3, 1, 1).for_input(1, size, size).out_h() == size);
    }
    CHECK(Pool2dParams::window_same(2, 1).for_input(1, 13, 13, 512).out_h() == 13);
    // Age/gender: 3x3/2 "same" conv 112 -> 56, 3x3/2 "same" max pool 56 -> 28, 1x1/2 side conv 56 -> 28.
    CHECK(Conv2dParams::geometry_same(3, 32, 3, 2).for_input(1, 112, 112).out_h() == 56);
    CHECK(Pool2dParams::window_same(3, 2).for_input(1, 56, 56, 64).out_h() == 28);
    CHECK(Conv2dParams::geometry_same(32, 64, 1, 2).for_input(1, 56, 56).out_h() == 28);
    CHECK(Conv2dParams::geometry_same(32, 64, 1, 2).for_input(1, 56, 56).is_pointwise());
}

TEST_CASE("depthwise: the kernel matches the reference over the depthwise grid, 1/2/3 threads") {
    uint64_t seed = 300;
    const auto grid = test::depthwise_grid();
    for (const Conv2dParams& p : grid) check_depthwise(p, 2, seed += 2);
    for (int threads : {1, 3})
        for (size_t i = 0; i < grid.size(); i += 7) check_depthwise(grid[i], threads, seed += 2);
    CHECK(grid.size() > 100);
}

TEST_CASE("depthwise: the reference equals a dense conv2d_reference with a diagonal filter, and explicit padding") {
    uint64_t seed = 700;
    int cases = 0;
    for (const Conv2dParams& p : test::depthwise_grid()) {
        if (p.in_c > 17 && cases > 20) continue;  // the dense conv is C times the work: keep it small
        const size_t taps = size_t(p.kernel_h) * p.kernel_w;
        auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed += 2);
        auto w = test::random_vector(size_t(p.in_c) * taps, seed + 1);
        std::vector<float> ref(out_count(p)), dense(out_count(p)), padded(out_count(p));
        cpu::depthwise_conv2d_reference(p, in.data(), w.data(), ref.data());
        cpu::conv2d_reference(p, in.data(), dense_from_depthwise(p, w).data(), dense.data());
        const Conv2dParams u = unpadded(p);
        REQUIRE(u.out_h() == p.out_h());
        REQUIRE(u.out_w() == p.out_w());
        cpu::depthwise_conv2d_reference(u, pad_explicitly(in, p.batch, p.in_h, p.in_w, p.in_c, p.padding(), 0.0f).data(),
                                        w.data(), padded.data());
        INFO(test::describe(p));
        CHECK(ref == dense);   // zeros add nothing: the same double sums, rounded once
        CHECK(ref == padded);  // padding is only zeros in the right places
        ++cases;
    }
    CHECK(cases > 40);
}

TEST_CASE("depthwise: fused epilogue (scale, bias, residual, ReLU, leaky ReLU)") {
    for (int c : {17, 32}) {
        Conv2dParams p = test::depthwise_shape(3, 9, 8, c, 3, 2, 0);
        p.same = true;
        auto scale = test::random_vector(size_t(c), 13), bias = test::random_vector(size_t(c), 14);
        auto residual = test::random_vector(out_count(p), 15);
        for (const Epilogue& e : test::epilogue_variants(scale.data(), bias.data(), residual.data()))
            check_depthwise(p, 2, 21, e, &scale, &bias, &residual);
    }
}

TEST_CASE("depthwise: a NaN input reaches exactly the outputs whose window covers it") {
    const Conv2dParams p = test::depthwise_shape(1, 6, 6, 5, 3, 1, 1);
    auto in = test::random_vector(size_t(6) * 6 * 5, 3);
    in[(size_t(2) * 6 + 3) * 5 + 4] = kNaN;  // pixel (2, 3), channel 4
    auto w = test::random_vector(5 * 9, 4);
    std::vector<float> packed(w.size()), out(out_count(p));
    pack_depthwise_weights(p, w.data(), nullptr, packed.data());
    Epilogue e;
    e.leaky_alpha = 0.1f;
    cpu::depthwise_conv2d(p, in.data(), packed.data(), out.data(), e, 2);
    int nans = 0;
    for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x)
            for (int c = 0; c < 5; ++c) {
                const bool covered = c == 4 && std::abs(y - 2) <= 1 && std::abs(x - 3) <= 1;
                CHECK(std::isnan(out[(size_t(y) * 6 + x) * 5 + c]) == covered);
                nans += covered;
            }
    CHECK(nans == 9);
}

TEST_CASE("padding: conv2d with asymmetric / TF same padding = the reference, = the unpadded conv of a zero-padded input") {
    uint64_t seed = 900;
    for (const Conv2dParams& p : test::conv_asym_shapes()) {
        INFO(test::describe(p));
        auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed += 2);
        auto w = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
        const size_t out_n = out_count(p);
        std::vector<float> packed(w.size()), ref(out_n), padded(out_n), abs_sum(out_n);
        pack_conv_weights(p, w.data(), nullptr, packed.data());
        cpu::conv2d_reference(p, in.data(), w.data(), ref.data());
        const Conv2dParams u = unpadded(p);
        cpu::conv2d_reference(u, pad_explicitly(in, p.batch, p.in_h, p.in_w, p.in_c, p.padding(), 0.0f).data(), w.data(),
                              padded.data());
        CHECK(ref == padded);
        cpu::conv2d_reference(p, test::abs_of(in).data(), test::abs_of(w).data(), abs_sum.data());
        for (int threads : {1, 2}) {
            std::vector<float> fast(out_n, kNaN);
            AlignedBuffer ws(cpu::conv2d_workspace_floats(p, threads));
            cpu::conv2d(p, in.data(), packed.data(), fast.data(), {}, ws.data(), threads);
            test::check_close(fast, ref, abs_sum, p.gemm_k(), test::describe(p));
        }
    }
}

TEST_CASE("padding: max-pool with asymmetric / TF same padding pads with -inf; avg-pool counts the padded extent") {
    int cases = 0;
    for (const Pool2dParams& p : test::pool_asym_shapes()) {
        INFO("pool k" << p.kernel << " s" << p.stride << " pad " << test::describe_padding(p.padding()) << " N" << p.batch
                      << " " << p.in_h << "x" << p.in_w);
        // All-negative inputs: a zero-padded max would show 0 in the edge windows.
        auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.channels, 40 + cases);
        for (auto& v : in) v = -1.5f - std::fabs(v);
        const size_t out_n = size_t(p.batch) * p.out_h() * p.out_w() * p.channels;
        std::vector<float> fast(out_n, kNaN), ref(out_n), padded(out_n);
        cpu::maxpool2d(p, in.data(), fast.data(), 2);
        cpu::maxpool2d_reference(p, in.data(), ref.data());
        const Pool2dParams u = unpadded(p);
        REQUIRE(u.out_h() == p.out_h());
        cpu::maxpool2d_reference(u, pad_explicitly(in, p.batch, p.in_h, p.in_w, p.channels, p.padding(), -kInf).data(),
                                 padded.data());
        CHECK(fast == ref);
        CHECK(ref == padded);
        for (float v : fast) CHECK(v < -1.0f);  // never a padded cell
        // Average pool: count_include_pad over the padded extent, as PyTorch with these pads.
        std::vector<float> avg(out_n, kNaN), avg_ref(out_n), ones(out_n, 2.5f);
        cpu::avgpool2d(p, in.data(), avg.data(), 2);
        cpu::avgpool2d_reference(p, in.data(), avg_ref.data());
        test::check_close(avg, avg_ref, ones, p.kernel * p.kernel, "avgpool");
        ++cases;
    }
    CHECK(cases > 40);
    // A 2x2/2 "same" max pool of a 3x3 map: the last row/column windows hold one real row/column.
    const std::vector<float> m = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    std::vector<float> o(4);
    cpu::maxpool2d(Pool2dParams::window_same(2, 2).for_input(1, 3, 3, 1), m.data(), o.data(), 1);
    CHECK(o == std::vector<float>{-1, -3, -7, -9});
}

TEST_CASE("padding: symmetric geometry is exactly PyTorch's (per-side fields unset = `pad`)") {
    for (const Conv2dParams& p : test::conv_grid()) {
        CHECK(p.padding() == Padding2d{p.pad, p.pad, p.pad, p.pad});
        CHECK(p.out_h() == (p.in_h + 2 * p.pad - p.kernel_h) / p.stride + 1);
        CHECK(p.out_w() == (p.in_w + 2 * p.pad - p.kernel_w) / p.stride + 1);
    }
    for (const Pool2dParams& p : test::pool_grid()) CHECK(p.out_h() == (p.in_h + 2 * p.pad - p.kernel) / p.stride + 1);
}

TEST_CASE("leaky ReLU: y < 0 ? 0.1y : y in every epilogue path; NaN stays NaN; = face-api's relu(y - 0.1y) + 0.1y") {
    const std::vector<float> x = {kNaN, -kNaN, -0.0f, 0.0f, -1.5f, 2.5f, -kInf, kInf, 1e-30f, -1e-30f, -3.0f, 7.0f, 0.3f, -1e-40f};
    Epilogue e;
    e.leaky_alpha = 0.1f;
    CHECK_FALSE(e.empty());
    CHECK(e.activates());
    auto rows = x, ref = x, tile = x;
    cpu::apply_epilogue_rows(e, rows.data(), 1, int(x.size()), 2);
    cpu::apply_epilogue_reference(e, ref.data(), 1, int(x.size()));
    cpu::apply_epilogue(e, tile.data(), 0, 1, 0, int(x.size()), int(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i << " = " << x[i]);
        const float v = x[i];
        const float expect = v < 0.0f ? 0.1f * v : v;
        for (const auto* got : {&rows, &ref, &tile}) {
            const float g = (*got)[i];
            CHECK(std::isnan(g) == std::isnan(v));
            if (std::isnan(v)) continue;
            CHECK(std::memcmp(&g, &expect, sizeof(float)) == 0);  // bits: -0 stays -0
        }
    }
    // face-api's formula, three fp32 operations: exactly equal for negatives, within one
    // rounding for positives.
    for (float v : {-2.0f, -0.7f, -1e-20f, -123.456f, 0.3f, 1.0f, 123.456f, 7e-12f}) {
        const float a = 0.1f * v;
        const float r = v - a;
        const float tfjs = (r < 0 ? 0.0f : r) + a;
        INFO(v);
        if (v < 0) CHECK(leaky_relu(v, 0.1f) == tfjs);
        else CHECK(std::fabs(leaky_relu(v, 0.1f) - tfjs) <= std::ldexp(std::fabs(v), -23));
    }
    // leaky_alpha wins over relu; relu alone is unchanged.
    Epilogue both;
    both.relu = true, both.leaky_alpha = 0.1f;
    CHECK(activate(both, -1.0f) == -0.1f);
    Epilogue plain;
    plain.relu = true;
    CHECK(activate(plain, -1.0f) == 0.0f);
    CHECK(std::signbit(activate(plain, -0.0f)));
    CHECK(activate(Epilogue{}, -1.0f) == -1.0f);
}

TEST_CASE("packing: TensorFlow layouts (HWIO, HWC1) pack like the transposed PyTorch ones") {
    Conv2dParams p = Conv2dParams::geometry(5, 7, 3, 1, 1);
    auto w = test::random_vector(size_t(7) * 5 * 9, 50);  // OIHW
    std::vector<float> hwio(w.size());
    for (int co = 0; co < 7; ++co)
        for (int ci = 0; ci < 5; ++ci)
            for (int t = 0; t < 9; ++t) hwio[(size_t(t) * 5 + ci) * 7 + co] = w[(size_t(co) * 5 + ci) * 9 + t];
    const float scale[7] = {1, -2, 0.5f, 3, 1, 1, 0.25f};
    std::vector<float> a(w.size()), b(w.size());
    pack_conv_weights(p, w.data(), scale, a.data());
    pack_conv_weights_hwio(p, hwio.data(), scale, b.data());
    CHECK(a == b);
    Conv2dParams d = Conv2dParams::depthwise(6, 3, 2, 1);
    auto dw = test::random_vector(6 * 9, 51);  // [C, 1, 3, 3]
    std::vector<float> hwc(dw.size()), pa(dw.size()), pb(dw.size());
    for (int c = 0; c < 6; ++c)
        for (int t = 0; t < 9; ++t) hwc[size_t(t) * 6 + c] = dw[size_t(c) * 9 + t];
    pack_depthwise_weights(d, dw.data(), scale, pa.data());
    pack_depthwise_weights_hwc(d, hwc.data(), scale, pb.data());
    CHECK(pa == pb);
    for (int c = 0; c < 6; ++c)
        for (int t = 0; t < 9; ++t) CHECK(pa[size_t(t) * 6 + c] == dw[size_t(c) * 9 + t] * scale[c]);
}

TEST_CASE("layer: DepthwiseConv2d (PyTorch and TensorFlow layouts, TF same, stride 2) = reference + epilogue") {
    const int c = 19;
    const Conv2dParams geo = Conv2dParams::depthwise_same(c, 3, 2);
    const Shape in_shape{2, 12, 11, c};
    auto x = test::random_vector(in_shape.numel(), 60);
    auto w = test::random_vector(size_t(c) * 9, 61);
    std::vector<float> hwc(w.size());
    for (int ch = 0; ch < c; ++ch)
        for (int t = 0; t < 9; ++t) hwc[size_t(t) * c + ch] = w[size_t(ch) * 9 + t];
    auto bias = test::random_vector(size_t(c), 62);
    const Conv2dParams p = geo.for_input(2, 12, 11);
    std::vector<float> expect(out_count(p)), abs_sum(out_count(p));
    cpu::depthwise_conv2d_reference(p, x.data(), w.data(), expect.data());
    cpu::depthwise_conv2d_reference(p, test::abs_of(x).data(), test::abs_of(w).data(), abs_sum.data());
    Epilogue e;
    e.bias = bias.data(), e.leaky_alpha = 0.1f;
    cpu::apply_epilogue_reference(e, expect.data(), p.gemm_m(), c);
    for (size_t i = 0; i < abs_sum.size(); ++i) abs_sum[i] += std::fabs(bias[i % c]);
    for (FilterLayout layout : {FilterLayout::kPyTorch, FilterLayout::kTensorFlow}) {
        const bool tf = layout == FilterLayout::kTensorFlow;
        DepthwiseConv2d<CpuBackend> layer(geo, TensorRef{tf ? hwc.data() : w.data(), tf ? std::vector<int64_t>{3, 3, c, 1} : std::vector<int64_t>{c, 1, 3, 3}},
                                          nullptr, layout);
        const Shape out_shape = layer.output_shape(in_shape);
        CHECK(out_shape == Shape{2, 6, 6, c});
        CHECK(layer.macs(in_shape) == doctest::Approx(2.0 * 36 * 9 * c));
        std::vector<float> out(out_shape.numel(), kNaN);
        layer.forward({x.data(), in_shape}, {out.data(), out_shape}, e, LayerContext<CpuBackend>{nullptr, 0, CpuContext{2}});
        test::check_close(out, expect, abs_sum, 9, tf ? "DepthwiseConv2d TF layout" : "DepthwiseConv2d PyTorch layout");
    }
    CHECK_THROWS_AS(DepthwiseConv2d<CpuBackend>(Conv2dParams::geometry(4, 8, 3, 1, 1), TensorRef{w.data(), {8, 1, 3, 3}}, nullptr),
                    ShapeError);
    CHECK_THROWS_AS(DepthwiseConv2d<CpuBackend>(geo, TensorRef{w.data(), {c, 1, 3, 2}}, nullptr), ShapeError);
}

TEST_CASE("layer: SeparableConv2d = depthwise, then pointwise 1x1, then bias and the activation") {
    const int cin = 17, cout = 24;
    for (bool same_stride2 : {false, true})
        for (FilterLayout layout : {FilterLayout::kPyTorch, FilterLayout::kTensorFlow}) {
            const bool tf = layout == FilterLayout::kTensorFlow;
            // the detector's sep conv (explicit pad 1, stride 1) and a "same" stride-2 one
            const Conv2dParams geo = same_stride2 ? Conv2dParams::depthwise_same(cin, 3, 2) : Conv2dParams::depthwise(cin, 3, 1, 1);
            const Shape in_shape{2, 10, 9, cin};
            auto x = test::random_vector(in_shape.numel(), 70);
            auto dw = test::random_vector(size_t(cin) * 9, 71);           // [Cin, 1, 3, 3]
            auto pw = test::random_vector(size_t(cout) * cin, 72);        // [Cout, Cin, 1, 1]
            auto bias = test::random_vector(size_t(cout), 73);
            std::vector<float> dw_tf(dw.size()), pw_tf(pw.size());
            for (int c = 0; c < cin; ++c)
                for (int t = 0; t < 9; ++t) dw_tf[size_t(t) * cin + c] = dw[size_t(c) * 9 + t];
            for (int co = 0; co < cout; ++co)
                for (int ci = 0; ci < cin; ++ci) pw_tf[size_t(ci) * cout + co] = pw[size_t(co) * cin + ci];
            SeparableConv2d<CpuBackend> layer(
                geo, TensorRef{tf ? dw_tf.data() : dw.data(), tf ? std::vector<int64_t>{3, 3, cin, 1} : std::vector<int64_t>{cin, 1, 3, 3}},
                TensorRef{tf ? pw_tf.data() : pw.data(), tf ? std::vector<int64_t>{1, 1, cin, cout} : std::vector<int64_t>{cout, cin, 1, 1}},
                TensorRef{bias.data(), {cout}}, layout);
            const Shape out_shape = layer.output_shape(in_shape);
            CHECK(out_shape == (same_stride2 ? Shape{2, 5, 5, cout} : Shape{2, 10, 9, cout}));
            // The reference: the two definitions one after the other, in double, then the tail.
            const Conv2dParams dp = geo.for_input(2, 10, 9);
            std::vector<float> mid(out_count(dp)), abs_mid(out_count(dp));
            cpu::depthwise_conv2d_reference(dp, x.data(), dw.data(), mid.data());
            cpu::depthwise_conv2d_reference(dp, test::abs_of(x).data(), test::abs_of(dw).data(), abs_mid.data());
            const Conv2dParams pp = Conv2dParams::geometry(cin, cout, 1, 1, 0).for_input(2, dp.out_h(), dp.out_w());
            std::vector<float> expect(out_count(pp)), abs_sum(out_count(pp));
            cpu::conv2d_reference(pp, mid.data(), pw.data(), expect.data());
            cpu::conv2d_reference(pp, abs_mid.data(), test::abs_of(pw).data(), abs_sum.data());
            auto residual = test::random_vector(expect.size(), 74);
            Epilogue ref_e;
            ref_e.bias = bias.data(), ref_e.residual = residual.data(), ref_e.leaky_alpha = 0.1f;
            cpu::apply_epilogue_reference(ref_e, expect.data(), pp.gemm_m(), cout);
            for (size_t i = 0; i < abs_sum.size(); ++i) abs_sum[i] += std::fabs(bias[i % cout]) + std::fabs(residual[i]);

            const CpuContext cpu_ctx{2};
            AlignedBuffer scratch(layer.scratch_floats(in_shape, cpu_ctx));
            std::vector<float> out(out_shape.numel(), kNaN);
            Epilogue tail;
            tail.residual = residual.data(), tail.leaky_alpha = 0.1f;
            layer.forward({x.data(), in_shape}, {out.data(), out_shape}, tail,
                          LayerContext<CpuBackend>{scratch.data(), scratch.size(), cpu_ctx});
            // K: 9 depthwise taps feed each of the cin pointwise terms.
            test::check_close(out, expect, abs_sum, 9.0 * cin, std::string("SeparableConv2d") + (tf ? " TF" : " PyTorch"));
            CHECK(layer.macs(in_shape) == doctest::Approx(dp.depthwise_macs() + pp.macs()));
            // Too little scratch is refused, and so is a second bias.
            CHECK_THROWS_AS(layer.forward({x.data(), in_shape}, {out.data(), out_shape}, tail,
                                          LayerContext<CpuBackend>{scratch.data(), scratch.size() - 1, cpu_ctx}),
                            Error);
            Epilogue with_bias = tail;
            with_bias.bias = bias.data();
            CHECK_THROWS_AS(layer.forward({x.data(), in_shape}, {out.data(), out_shape}, with_bias,
                                          LayerContext<CpuBackend>{scratch.data(), scratch.size(), cpu_ctx}),
                            Error);
        }
}

TEST_CASE("layer: Conv2d with TF same padding and HWIO filters; MaxPool2d same; small inputs refused") {
    const int ci = 3, co = 8;
    const Conv2dParams geo = Conv2dParams::geometry_same(ci, co, 3, 2);
    const Shape in_shape{1, 112, 112, ci};
    auto x = test::random_vector(in_shape.numel(), 80);
    auto w = test::random_vector(size_t(co) * ci * 9, 81);
    std::vector<float> hwio(w.size());
    for (int o = 0; o < co; ++o)
        for (int i = 0; i < ci; ++i)
            for (int t = 0; t < 9; ++t) hwio[(size_t(t) * ci + i) * co + o] = w[(size_t(o) * ci + i) * 9 + t];
    Conv2d<CpuBackend> a(geo, TensorRef{w.data(), {co, ci, 3, 3}}, nullptr);
    Conv2d<CpuBackend> b(geo, TensorRef{hwio.data(), {3, 3, ci, co}}, nullptr, FilterLayout::kTensorFlow);
    const Shape out_shape = a.output_shape(in_shape);
    CHECK(out_shape == Shape{1, 56, 56, co});
    const CpuContext cpu_ctx{2};
    AlignedBuffer scratch(a.scratch_floats(in_shape, cpu_ctx));
    std::vector<float> oa(out_shape.numel()), ob(out_shape.numel()), ref(out_shape.numel());
    a.forward({x.data(), in_shape}, {oa.data(), out_shape}, {}, LayerContext<CpuBackend>{scratch.data(), scratch.size(), cpu_ctx});
    b.forward({x.data(), in_shape}, {ob.data(), out_shape}, {}, LayerContext<CpuBackend>{scratch.data(), scratch.size(), cpu_ctx});
    CHECK(oa == ob);  // the same packed operand
    cpu::conv2d_reference(geo.for_input(1, 112, 112), x.data(), w.data(), ref.data());
    std::vector<float> abs_sum(ref.size());
    cpu::conv2d_reference(geo.for_input(1, 112, 112), test::abs_of(x).data(), test::abs_of(w).data(), abs_sum.data());
    test::check_close(oa, ref, abs_sum, ci * 9, "Conv2d same");
    CHECK_THROWS_AS(Conv2d<CpuBackend>(geo, TensorRef{w.data(), {co, ci, 3, 2}}, nullptr), ShapeError);

    MaxPool2d<CpuBackend> pool(Pool2dParams::window_same(3, 2));
    CHECK(pool.output_shape({1, 56, 56, 64}) == Shape{1, 28, 28, 64});
    MaxPool2d<CpuBackend> pool1(Pool2dParams::window_same(2, 1));
    CHECK(pool1.output_shape({1, 13, 13, 512}) == Shape{1, 13, 13, 512});
    MaxPool2d<CpuBackend> valid(Pool2dParams::window(3, 1, 0).set_padding(0, 0, 1, 0));
    CHECK(valid.output_shape({1, 2, 3, 1}) == Shape{1, 1, 1, 1});
    CHECK_THROWS_AS(valid.output_shape({1, 1, 3, 1}), ShapeError);
    DepthwiseConv2d<CpuBackend> dw(Conv2dParams::depthwise(4, 5, 1, 0), TensorRef{w.data(), {4, 1, 5, 5}}, nullptr);
    CHECK_THROWS_AS(dw.output_shape({1, 4, 9, 4}), ShapeError);
}
