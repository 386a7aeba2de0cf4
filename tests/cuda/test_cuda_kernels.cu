// tests/cuda/test_cuda_kernels.cu — every CUDA kernel on the GPU against the CPU
// references (kernels/cpu), over the shared shape grids (tests/shape_grid.hpp, with the
// CUDA variants of host_helpers.hpp), plus the things only a real device shows: every
// tile shape x gather x split-K variant of the convolution as compiled for sm_90, the
// backend entry points (CudaBackend::*) with their contexts and streams, error
// reporting, NaN through the epilogue, and graph capture.
//
// Exit code 77 (ctest: skipped) when there is no CUDA device. Tolerances: the rule of
// tests/tolerance.hpp for sums; pooling, coral, flatten and preprocessing must be
// bit-identical to the CPU kernels.
#define EIGEN_NO_CUDA  // the CPU references include Eigen: compile it as plain host code
#include <softbio/backend/cuda.hpp>
#include <softbio/backend/cuda_graph.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>

#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "dev_common.cuh"
#include "host_helpers.hpp"

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;
using test::abs_of;
using test::random_vector;

namespace {

Checker chk;

/// The context every backend call here runs with (the default stream of this thread).
const CudaContext& ctx() {
    static const CudaContext c = CudaBackend::make_context(1);
    return c;
}

// One convolution on the GPU (planned, or forced tile/splits; via the backend when
// `backend` is set) against the CPU references with the same epilogue.
void check_conv(const Conv2dParams& p, uint64_t seed, int force_tile = -1, int force_splits = 0,
                const std::vector<float>* scale = nullptr, const std::vector<float>* bias = nullptr,
                bool with_residual = false, bool relu = false, bool backend = false) {
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c, out_n = p.gemm_m() * p.out_c;
    auto in = random_vector(in_n, seed);
    auto w = random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    auto residual = random_vector(out_n, seed + 2);
    std::vector<float> packed(size_t(p.gemm_k()) * p.out_c);
    pack_conv_weights(p, w.data(), nullptr, packed.data());

    auto d_in = to_device(in), d_w = to_device(packed), d_res = to_device(residual);
    auto d_scale = to_device(scale ? *scale : std::vector<float>(1)), d_bias = to_device(bias ? *bias : std::vector<float>(1));
    sc::DeviceBuffer d_out(out_n);
    poison(d_out);
    Epilogue e;
    e.scale = scale ? d_scale.data() : nullptr;
    e.bias = bias ? d_bias.data() : nullptr;
    e.residual = with_residual ? d_res.data() : nullptr;
    e.relu = relu;
    std::string variant;
    if (backend) {
        sc::DeviceBuffer ws(CudaBackend::conv2d_workspace_floats(p, ctx()));
        CudaBackend::conv2d(p, d_in.data(), d_w.data(), d_out.data(), e, ws.data(), ctx());
        CudaBackend::synchronize(ctx());
        variant = "backend";
    } else {
        const sc::ConvPlan plan = sc::plan_conv2d(p, ctx().sm_count, force_tile, force_splits);
        sc::DeviceBuffer ws(plan.workspace_floats + 1);
        const sc::ConvLaunch L = sc::make_conv_launch(p, d_in.data(), d_w.data(), d_out.data(), e,
                                                      plan.workspace_floats ? ws.data() : nullptr, ctx().sm_count,
                                                      force_tile, force_splits);
        sc::launch_conv(L, ctx().sm_count, ctx().stream);
        variant = std::string("tile ") + sc::tile_name(L.plan.tile) + " gather " + sc::gather_name(L.gather) + " splits " +
                  std::to_string(L.plan.splits);
    }
    Epilogue ce;  // the same epilogue on host memory
    ce.scale = scale ? scale->data() : nullptr;
    ce.bias = bias ? bias->data() : nullptr;
    ce.residual = with_residual ? residual.data() : nullptr;
    ce.relu = relu;
    std::vector<float> ref, abs_sum;
    test::conv_reference(p, in, w, ce, ref, abs_sum);
    expect_within_tolerance(to_host(d_out), ref, abs_sum, p.gemm_k(), test::describe(p) + " " + variant, chk);
}

void test_conv_grid() {
    uint64_t seed = 100;
    int cases = 0;
    for (const Conv2dParams& p : test::cuda_conv_grid()) {
        check_conv(p, seed += 3, -1, 0, nullptr, nullptr, false, false, /*backend=*/cases % 2 == 0);
        ++cases;
    }
    std::printf("conv grid: %d shapes\n", cases);
}

void test_conv_variants() {
    // The shared tiling shapes and a few layer-like ones through every tile shape, with
    // and without split-K.
    std::vector<Conv2dParams> shapes = test::conv_tiling_shapes();
    shapes.push_back(test::conv_shape(2, 30, 26, 3, 64, 7, 2, 3));       // the stem
    shapes.push_back(test::conv_shape(1, 7, 7, 512, 512, 3, 1, 1));      // layer4 3x3 at batch 1 (split-K territory)
    shapes.push_back(test::conv_shape(1, 14, 14, 1024, 256, 1, 1, 0));  // layer3 conv1 at batch 1
    uint64_t seed = 700;
    for (const auto& p : shapes) {
        check_conv(p, seed += 3);  // planned
        for (int tile = 0; tile < 3; ++tile)
            for (int splits : {1, 4}) check_conv(p, seed += 3, tile, splits);
    }
    // Fused epilogue combinations, direct (tile 64, no split) and through the split-K reduction.
    for (int out_c : {21, 24}) {
        const Conv2dParams p = test::conv_shape(3, 9, 7, 8, out_c, 3, 2, 1);
        auto scale = random_vector(size_t(out_c), 13), bias = random_vector(size_t(out_c), 14);
        for (int splits : {1, 3})
            for (bool s : {false, true})
                for (bool r : {false, true})
                    for (bool relu : {false, true}) check_conv(p, 11, 1, splits, s ? &scale : nullptr, &bias, r, relu);
    }
}

void test_pools() {
    int cases = 0;
    for (const Pool2dParams& p : test::cuda_pool_grid()) {
        auto in = random_vector(size_t(p.batch) * p.in_h * p.in_w * p.channels, 40 + cases);
        const size_t out_n = size_t(p.batch) * p.out_h() * p.out_w() * p.channels;
        auto d_in = to_device(in);
        sc::DeviceBuffer d_out(out_n);
        std::vector<float> fast(out_n);
        poison(d_out);
        CudaBackend::maxpool2d(p, d_in.data(), d_out.data(), ctx());
        cpu::maxpool2d(p, in.data(), fast.data(), 1);
        chk.expect(same_values(to_host(d_out), fast), "max" + test::describe_pool(p));
        poison(d_out);
        CudaBackend::avgpool2d(p, d_in.data(), d_out.data(), ctx());
        cpu::avgpool2d(p, in.data(), fast.data(), 1);
        chk.expect(same_values(to_host(d_out), fast), "avg" + test::describe_pool(p));
        ++cases;
    }
    std::printf("pool grid: %d shapes\n", cases);
    for (int batch : {1, 3})
        for (int c : {33, 36, 2048}) {
            const int h = 7, w = 5;
            auto in = random_vector(size_t(batch) * h * w * c, 50 + batch);
            std::vector<float> fast(size_t(batch) * c);
            auto d_in = to_device(in);
            sc::DeviceBuffer d_out(fast.size());
            poison(d_out);
            CudaBackend::global_avgpool(batch, h, w, c, d_in.data(), d_out.data(), ctx());
            cpu::global_avgpool(batch, h, w, c, in.data(), fast.data(), 1);
            chk.expect(same_values(to_host(d_out), fast), "global avgpool c" + std::to_string(c));
        }
}

void test_linear_coral_flatten() {
    for (int batch : {1, 3, 8, 9, 40, 256})
        for (auto io : {std::pair<int, int>{8192, 2}, {2048, 25}, {7, 3}, {513, 1000}, {2048, 1000}}) {
            auto x = random_vector(size_t(batch) * io.first, 60), w = random_vector(size_t(io.second) * io.first, 61);
            auto b = random_vector(size_t(io.second), 62);
            std::vector<float> ref(size_t(batch) * io.second), abs_sum(ref.size());
            auto d_x = to_device(x), d_w = to_device(w), d_b = to_device(b);
            sc::DeviceBuffer d_y(ref.size());
            poison(d_y);
            CudaBackend::linear(batch, io.first, io.second, d_x.data(), d_w.data(), d_b.data(), d_y.data(), ctx());
            cpu::linear_reference(batch, io.first, io.second, x.data(), w.data(), b.data(), ref.data());
            cpu::linear_reference(batch, io.first, io.second, abs_of(x).data(), abs_of(w).data(), abs_of(b).data(),
                                  abs_sum.data());
            expect_within_tolerance(to_host(d_y), ref, abs_sum, io.first,
                                    "linear batch " + std::to_string(batch) + " " + std::to_string(io.first) + "->" +
                                        std::to_string(io.second),
                                    chk);
        }
    {  // coral (a batch large enough for several blocks)
        const int n = 256, k1 = 25;
        auto g = random_vector(n, 70), bias = random_vector(k1, 71);
        auto d_g = to_device(g), d_b = to_device(bias);
        sc::DeviceBuffer d_z(size_t(n) * k1);
        poison(d_z);
        CudaBackend::coral_logits(n, k1, d_g.data(), d_b.data(), d_z.data(), ctx());
        std::vector<float> ref(size_t(n) * k1);
        cpu::coral_logits(n, k1, g.data(), bias.data(), ref.data());
        chk.expect(same_values(to_host(d_z), ref), "coral_logits");
    }
    for (auto s : {std::array<int, 4>{2, 2, 2, 3}, {3, 2, 2, 512}, {2, 1, 1, 2048}}) {  // flatten
        auto in = random_vector(size_t(s[0]) * s[1] * s[2] * s[3], 72);
        std::vector<float> ref(in.size());
        auto d_in = to_device(in);
        sc::DeviceBuffer d_out(in.size());
        poison(d_out);
        CudaBackend::flatten_nchw_order(s[0], s[1], s[2], s[3], d_in.data(), d_out.data(), ctx());
        cpu::flatten_nchw_order(s[0], s[1], s[2], s[3], in.data(), ref.data());
        chk.expect(same_values(to_host(d_out), ref), "flatten_nchw_order");
    }
}

void test_epilogue() {
    for (int c : {19, 20}) {  // unfused epilogue, in place: scalar and float4 paths
        const size_t m = 301;
        auto x = random_vector(m * c, 31), res = random_vector(m * c, 32);
        auto scale = random_vector(size_t(c), 33), bias = random_vector(size_t(c), 34);
        auto d_x = to_device(x), d_res = to_device(res), d_s = to_device(scale), d_b = to_device(bias);
        Epilogue e;
        e.scale = d_s.data(), e.bias = d_b.data(), e.residual = d_res.data(), e.relu = true;
        CudaBackend::epilogue(e, d_x.data(), m, c, ctx());
        std::vector<float> abs_sum(x.size());  // |y * scale| + |bias| + |residual|: three terms
        for (size_t i = 0; i < x.size(); ++i) {
            const size_t j = i % size_t(c);
            abs_sum[i] = std::fabs(x[i] * scale[j]) + std::fabs(bias[j]) + std::fabs(res[i]);
        }
        Epilogue ce{scale.data(), bias.data(), res.data(), true};
        cpu::apply_epilogue_reference(ce, x.data(), m, c);
        // nvcc may fuse y * scale + bias into one FMA: within the rule, not bit-identical.
        expect_within_tolerance(to_host(d_x), x, abs_sum, 3, "epilogue c" + std::to_string(c), chk);
    }
    // NaN stays NaN, -0 stays -0, negatives become 0 (softbio::relu), on both paths.
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> specials = {nan, -0.0f, 0.0f, -1.5f, 2.25f, -inf, inf, -3.0f};
    for (int c : {3, 4}) {
        std::vector<float> x(specials.size() * c);
        for (size_t i = 0; i < x.size(); ++i) x[i] = specials[(i + i / size_t(c)) % specials.size()];
        auto d_x = to_device(x);
        Epilogue e;
        e.relu = true;
        CudaBackend::epilogue(e, d_x.data(), specials.size(), c, ctx());
        cpu::apply_epilogue_reference(e, x.data(), specials.size(), c);
        const auto got = to_host(d_x);
        chk.expect(std::memcmp(got.data(), x.data(), x.size() * sizeof(float)) == 0,
                   "epilogue ReLU of NaN/-0/inf bit-identical to the CPU reference, c" + std::to_string(c));
    }
}

void test_preprocess() {
    const int batch = 3, h = 37, w = 29;
    const size_t row_stride = size_t(w) * 3 + 7, image_stride = row_stride * h + 5;
    std::vector<std::uint8_t> src(image_stride * batch);
    for (size_t i = 0; i < src.size(); ++i) src[i] = std::uint8_t((i * 37 + 11) % 256);
    auto d_src = to_device(src);
    sc::DeviceBuffer d_dst(size_t(batch) * h * w * 3);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    for (bool normalize : {false, true}) {
        poison(d_dst);
        sc::to_tensor_u8(d_src.data(), batch, h, w, row_stride, image_stride, normalize ? mean : nullptr,
                         normalize ? stdv : nullptr, d_dst.data(), ctx());
        const auto ref = test::to_tensor_reference(src.data(), batch, h, w, row_stride, image_stride,
                                                   normalize ? mean : nullptr, normalize ? stdv : nullptr);
        chk.expect(same_values(to_host(d_dst), ref), normalize ? "to_tensor + normalize" : "to_tensor");
    }
}

void test_runtime() {
    // The context describes the current device.
    int dev = -1, sms = 0;
    SOFTBIO_CUDA_CHECK(cudaGetDevice(&dev), "cudaGetDevice");
    SOFTBIO_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "attr");
    chk.expect(ctx().device == dev && ctx().sm_count == sms && ctx().stream == cudaStreamPerThread,
               "make_context: current device, its SM count, the per-thread default stream");
    // Errors become CudaError naming the op.
    bool threw = false;
    try {
        sc::DeviceBuffer huge(size_t(1) << 46);  // 256 TiB
    } catch (const sc::CudaError& e) {
        threw = std::string(e.what()).find("DeviceBuffer") != std::string::npos;
    }
    chk.expect(threw, "cudaMalloc failure throws CudaError naming DeviceBuffer");
    threw = false;
    try {
        SOFTBIO_CUDA_CHECK(cudaErrorInvalidValue, "my_op");
    } catch (const softbio::Error& e) {
        threw = std::string(e.what()).find("my_op") != std::string::npos &&
                std::string(e.what()).find("cudaErrorInvalidValue") != std::string::npos;
    }
    chk.expect(threw, "SOFTBIO_CUDA_CHECK message names op and error");
    // Buffers are zeroed and move-only; upload is complete when it returns.
    sc::DeviceBuffer b(1000);
    std::vector<float> h(1000, 1.0f);
    CudaBackend::download(h.data(), b.data(), h.size(), ctx());
    chk.expect(std::all_of(h.begin(), h.end(), [](float v) { return v == 0.0f; }), "DeviceBuffer is zero-initialised");
    sc::DeviceBuffer moved = std::move(b);
    chk.expect(b.data() == nullptr && moved.size() == 1000, "DeviceBuffer moves");
    auto vals = random_vector(1000, 90);
    sc::DeviceBuffer up = CudaBackend::upload(vals.data(), vals.size());
    CudaBackend::download(h.data(), up.data(), h.size(), ctx());
    chk.expect(h == vals, "upload + download round trip");

    // Work on a context with its own stream, then graph capture of a few kernels:
    // replay == eager.
    sc::Stream stream;
    const CudaContext on_stream = sc::make_context(stream);
    chk.expect(on_stream.stream == stream.get() && on_stream.sm_count == sms, "make_context(stream)");
    auto in = random_vector(2 * 9 * 9 * 16, 80);
    auto d_in = to_device(in);
    sc::DeviceBuffer d_mid(2 * 5 * 5 * 16), d_out_eager(2 * 16), d_out_graph(2 * 16);
    Pool2dParams p = test::pool_shape(2, 9, 9, 16, 3, 2, 1);
    CudaBackend::maxpool2d(p, d_in.data(), d_mid.data(), on_stream);
    CudaBackend::global_avgpool(2, 5, 5, 16, d_mid.data(), d_out_eager.data(), on_stream);
    CudaBackend::synchronize(on_stream);
    poison(d_out_graph);
    sc::CudaGraph graph([&](cudaStream_t s) {
        CudaContext c = on_stream;
        c.stream = s;
        CudaBackend::maxpool2d(p, d_in.data(), d_mid.data(), c);
        CudaBackend::global_avgpool(2, 5, 5, 16, d_mid.data(), d_out_graph.data(), c);
    });
    chk.expect(graph.nodes() == 2, "graph has 2 kernel nodes (got " + std::to_string(graph.nodes()) + ")");
    chk.expect(std::isnan(to_host(d_out_graph)[0]), "capture records the kernels without running them");
    graph.launch(stream);
    stream.synchronize();
    chk.expect(same_values(to_host(d_out_eager), to_host(d_out_graph)), "graph replay == eager");
    // Pinned buffers and async copies.
    sc::PinnedBuffer pinned(256);
    for (size_t i = 0; i < 256; ++i) pinned.data()[i] = float(i);
    chk.expect(sc::is_pinned(pinned.data()) && !sc::is_pinned(h.data()), "is_pinned");
    sc::DeviceBuffer dev_buf(256);
    sc::copy_to_device(dev_buf.data(), pinned.data(), 256, stream);
    std::vector<float> back(256);
    sc::copy_to_host(back.data(), dev_buf.data(), 256, stream);
    chk.expect(std::equal(back.begin(), back.end(), pinned.data()), "pinned round trip");
}

}  // namespace

int main() {
    skip_without_gpu("test_cuda_kernels");
    try {
        test_runtime();
        test_conv_grid();
        test_conv_variants();
        test_pools();
        test_linear_coral_flatten();
        test_epilogue();
        test_preprocess();
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("test_cuda_kernels");
}
