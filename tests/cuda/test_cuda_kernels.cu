// tests/cuda/test_cuda_kernels.cu — every CUDA kernel on the GPU against the CPU
// references (kernels/cpu), over the shape grid of tests/test_kernels.cpp, plus the
// things only a real device shows: every tile shape x gather x split-K variant of the
// convolution as compiled for sm_90, the backend entry points (CudaBackend::*), error
// reporting, stream scopes and graph capture.
//
// Exit code 77 (ctest: skipped) when there is no CUDA device. Tolerances: see
// kernels/cuda/dev/dev_common.cuh (sum_rule = tests/test_util.hpp's rule); pooling,
// coral, flatten and preprocessing must be bit-identical to the CPU kernels.
#define EIGEN_NO_CUDA  // the CPU references include Eigen: compile it as plain host code
#include <softbio/backend/cuda.hpp>
#include <softbio/backend/cuda_graph.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>
#include <softbio/kernels/cpu/epilogue.hpp>
#include <softbio/kernels/cpu/linear.hpp>
#include <softbio/kernels/cpu/pool.hpp>
#include <softbio/kernels/cuda/dev/dev_common.cuh>

#include <array>
#include <cstring>
#include <string>
#include <vector>

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;

namespace {

Checker chk;

cpu::Conv2dParams to_cpu(const sc::Conv2dParams& p) {
    cpu::Conv2dParams q;
    q.batch = p.batch, q.in_h = p.in_h, q.in_w = p.in_w, q.in_c = p.in_c, q.out_c = p.out_c;
    q.kernel_h = p.kernel_h, q.kernel_w = p.kernel_w, q.stride = p.stride, q.pad = p.pad;
    return q;
}

std::string describe(const sc::Conv2dParams& p) {
    return "conv k" + std::to_string(p.kernel_h) + " s" + std::to_string(p.stride) + " p" + std::to_string(p.pad) + " N" +
           std::to_string(p.batch) + " " + std::to_string(p.in_h) + "x" + std::to_string(p.in_w) + "x" +
           std::to_string(p.in_c) + "->" + std::to_string(p.out_c);
}

// One convolution on the GPU (planned, or forced tile/splits; via the backend when
// `backend` is set) against cpu::conv2d_reference (+ the reference epilogue).
void check_conv(const sc::Conv2dParams& p, uint64_t seed, int force_tile = -1, int force_splits = 0,
                const std::vector<float>* scale = nullptr, const std::vector<float>* bias = nullptr,
                bool with_residual = false, bool relu = false, bool backend = false) {
    const size_t in_n = size_t(p.batch) * p.in_h * p.in_w * p.in_c, out_n = p.gemm_m() * p.out_c;
    auto in = random_vector(in_n, seed);
    auto w = random_vector(size_t(p.out_c) * p.in_c * p.kernel_h * p.kernel_w, seed + 1);
    auto residual = random_vector(out_n, seed + 2);
    std::vector<float> packed(size_t(p.gemm_k()) * p.out_c);
    sc::pack_conv_weights(p, w.data(), nullptr, packed.data());

    DeviceArray<float> d_in(in), d_w(packed), d_out(out_n), d_res(residual);
    DeviceArray<float> d_scale(scale ? *scale : std::vector<float>(1)), d_bias(bias ? *bias : std::vector<float>(1));
    d_out.poison();
    sc::Epilogue e;
    e.scale = scale ? d_scale.get() : nullptr;
    e.bias = bias ? d_bias.get() : nullptr;
    e.residual = with_residual ? d_res.get() : nullptr;
    e.relu = relu;
    std::string variant;
    if (backend) {
        sc::DeviceBuffer ws(CudaBackend::conv2d_workspace_floats(p, 1));
        CudaBackend::conv2d(p, d_in.get(), d_w.get(), d_out.get(), e, ws.data(), 1);
        variant = "backend";
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(sc::current_stream()), "conv2d");
    } else {
        const sc::ConvPlan plan = sc::plan_conv2d(p, sc::sm_count(), force_tile, force_splits);
        DeviceArray<float> ws(plan.workspace_floats + 1);
        const sc::ConvLaunch L = sc::make_conv_launch(p, d_in.get(), d_w.get(), d_out.get(), e,
                                                      plan.workspace_floats ? ws.get() : nullptr, sc::sm_count(),
                                                      force_tile, force_splits);
        sc::launch_conv(L, sc::sm_count(), 0);
        SOFTBIO_CUDA_CHECK(cudaDeviceSynchronize(), "conv2d");
        variant = std::string("tile ") + sc::tile_name(L.plan.tile) + " gather " + sc::gather_name(L.gather) + " splits " +
                  std::to_string(L.plan.splits);
    }
    std::vector<float> ref(out_n), abs_sum(out_n);
    cpu::conv2d_reference(to_cpu(p), in.data(), w.data(), ref.data());
    cpu::conv2d_reference(to_cpu(p), abs_of(in).data(), abs_of(w).data(), abs_sum.data());
    cpu::Epilogue ce;
    ce.scale = scale ? scale->data() : nullptr;
    ce.bias = bias ? bias->data() : nullptr;
    ce.residual = with_residual ? residual.data() : nullptr;
    ce.relu = relu;
    cpu::apply_epilogue_reference(ce, ref.data(), p.gemm_m(), p.out_c);
    for (size_t i = 0; i < out_n; ++i) {
        const int c = int(i % size_t(p.out_c));
        abs_sum[i] = abs_sum[i] * (scale ? std::fabs((*scale)[size_t(c)]) : 1.0f) +
                     (bias ? std::fabs((*bias)[size_t(c)]) : 0.0f) + (with_residual ? std::fabs(residual[i]) : 0.0f);
    }
    sum_rule(d_out.download(), ref, abs_sum, p.gemm_k(), describe(p) + " " + variant, chk);
}

void test_conv_grid() {
    uint64_t seed = 100;
    int cases = 0;
    for (int k : {1, 3, 7})
        for (int stride : {1, 2})
            for (int pad = 0; pad <= 3; ++pad) {
                if (pad > k / 2 + 1) continue;
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{7, 7}, {9, 5}, {11, 13}})
                        for (bool quad : {false, true}) {
                            sc::Conv2dParams p;
                            p.batch = batch, p.in_h = hw.first, p.in_w = hw.second;
                            p.in_c = (k == 7) ? (quad ? 4 : 3) : (quad ? 16 : 17);
                            p.out_c = (batch == 1) ? 20 : 33;
                            p.kernel_h = p.kernel_w = k, p.stride = stride, p.pad = pad;
                            if (p.in_h + 2 * pad < k || p.in_w + 2 * pad < k) continue;
                            check_conv(p, seed += 3, -1, 0, nullptr, nullptr, false, false, /*backend=*/cases % 2 == 0);
                            ++cases;
                        }
            }
    std::printf("conv grid: %d shapes\n", cases);
}

void test_conv_variants() {
    // Layer-like shapes (and the tiling cases of tests/test_kernels.cpp) through every
    // tile shape, with and without split-K.
    std::vector<sc::Conv2dParams> shapes;
    auto add = [&](int n, int h, int w, int cin, int cout, int k, int s, int pad) {
        sc::Conv2dParams p;
        p.batch = n, p.in_h = h, p.in_w = w, p.in_c = cin, p.out_c = cout, p.kernel_h = p.kernel_w = k, p.stride = s, p.pad = pad;
        shapes.push_back(p);
    };
    add(3, 19, 23, 19, 37, 3, 1, 1);   // "big": many row tiles, odd channels
    add(2, 14, 15, 256, 64, 3, 1, 1);  // "deep": K = 2304
    add(1, 7, 7, 40, 300, 3, 1, 1);    // "wide"
    add(2, 15, 11, 64, 129, 1, 1, 0);  // pointwise, Cout % 4 != 0
    add(2, 15, 11, 64, 128, 1, 2, 0);  // strided 1x1 (downsample)
    add(2, 30, 26, 3, 64, 7, 2, 3);    // the stem
    add(1, 7, 7, 512, 512, 3, 1, 1);   // layer4 3x3 at batch 1 (split-K territory)
    add(1, 14, 14, 1024, 256, 1, 1, 0);
    uint64_t seed = 700;
    for (const auto& p : shapes) {
        check_conv(p, seed += 3);  // planned
        for (int tile = 0; tile < 3; ++tile)
            for (int splits : {1, 4}) check_conv(p, seed += 3, tile, splits);
    }
    // Fused epilogue combinations, direct (tile 64, no split) and through the split-K reduction.
    sc::Conv2dParams p;
    p.batch = 3, p.in_h = 9, p.in_w = 7, p.in_c = 8, p.kernel_h = p.kernel_w = 3, p.stride = 2, p.pad = 1;
    for (int out_c : {21, 24}) {
        p.out_c = out_c;
        auto scale = random_vector(size_t(out_c), 13), bias = random_vector(size_t(out_c), 14);
        for (int splits : {1, 3})
            for (bool s : {false, true})
                for (bool r : {false, true})
                    for (bool relu : {false, true}) check_conv(p, 11, 1, splits, s ? &scale : nullptr, &bias, r, relu);
    }
}

void test_pools() {
    int cases = 0;
    for (int k : {1, 2, 3, 4, 7})
        for (int s : {1, 2, 3, 4})
            for (int pad = 0; pad <= k / 2; ++pad)
                for (int batch : {1, 3})
                    for (auto hw : {std::pair<int, int>{4, 4}, {7, 9}, {8, 5}})
                        for (int channels : {19, 20}) {
                            sc::Pool2dParams p;
                            p.batch = batch, p.in_h = hw.first, p.in_w = hw.second, p.channels = channels, p.kernel = k,
                            p.stride = s, p.pad = pad;
                            if (p.in_h + 2 * pad < k || p.in_w + 2 * pad < k) continue;
                            cpu::Pool2dParams q;
                            q.batch = batch, q.in_h = p.in_h, q.in_w = p.in_w, q.channels = channels, q.kernel = k,
                            q.stride = s, q.pad = pad;
                            auto in = random_vector(size_t(batch) * p.in_h * p.in_w * channels, 40 + cases);
                            const size_t out_n = size_t(batch) * p.out_h() * p.out_w() * channels;
                            DeviceArray<float> d_in(in), d_out(out_n);
                            std::vector<float> fast(out_n);
                            d_out.poison();
                            CudaBackend::maxpool2d(p, d_in.get(), d_out.get(), 1);
                            cpu::maxpool2d(q, in.data(), fast.data(), 1);
                            chk.expect(bit_equal(d_out.download(), fast), "maxpool k" + std::to_string(k) + " s" +
                                                                              std::to_string(s) + " p" + std::to_string(pad) +
                                                                              " c" + std::to_string(channels));
                            d_out.poison();
                            CudaBackend::avgpool2d(p, d_in.get(), d_out.get(), 1);
                            cpu::avgpool2d(q, in.data(), fast.data(), 1);
                            chk.expect(bit_equal(d_out.download(), fast), "avgpool k" + std::to_string(k) + " s" +
                                                                              std::to_string(s) + " p" + std::to_string(pad) +
                                                                              " c" + std::to_string(channels));
                            ++cases;
                        }
    std::printf("pool grid: %d shapes\n", cases);
    for (int batch : {1, 3})
        for (int c : {33, 36, 2048}) {
            const int h = 7, w = 5;
            auto in = random_vector(size_t(batch) * h * w * c, 50 + batch);
            std::vector<float> fast(size_t(batch) * c);
            DeviceArray<float> d_in(in), d_out(fast.size());
            d_out.poison();
            CudaBackend::global_avgpool(batch, h, w, c, d_in.get(), d_out.get(), 1);
            cpu::global_avgpool(batch, h, w, c, in.data(), fast.data(), 1);
            chk.expect(bit_equal(d_out.download(), fast), "global avgpool c" + std::to_string(c));
        }
}

void test_linear_coral_flatten_epilogue() {
    for (int batch : {1, 3, 8, 9, 40, 256})
        for (auto io : {std::pair<int, int>{8192, 2}, {2048, 25}, {7, 3}, {513, 1000}, {2048, 1000}}) {
            auto x = random_vector(size_t(batch) * io.first, 60), w = random_vector(size_t(io.second) * io.first, 61);
            auto b = random_vector(size_t(io.second), 62);
            std::vector<float> ref(size_t(batch) * io.second), abs_sum(ref.size());
            DeviceArray<float> d_x(x), d_w(w), d_b(b), d_y(ref.size());
            d_y.poison();
            CudaBackend::linear(batch, io.first, io.second, d_x.get(), d_w.get(), d_b.get(), d_y.get(), 1);
            cpu::linear_reference(batch, io.first, io.second, x.data(), w.data(), b.data(), ref.data());
            cpu::linear_reference(batch, io.first, io.second, abs_of(x).data(), abs_of(w).data(), abs_of(b).data(),
                                  abs_sum.data());
            sum_rule(d_y.download(), ref, abs_sum, io.first,
                     "linear batch " + std::to_string(batch) + " " + std::to_string(io.first) + "->" + std::to_string(io.second),
                     chk);
        }
    {  // coral
        const int n = 5, k1 = 25;
        auto g = random_vector(n, 70), bias = random_vector(k1, 71);
        DeviceArray<float> d_g(g), d_b(bias), d_z(size_t(n) * k1);
        d_z.poison();
        CudaBackend::coral_logits(n, k1, d_g.get(), d_b.get(), d_z.get());
        std::vector<float> ref(size_t(n) * k1);
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < k1; ++k) ref[size_t(i) * k1 + k] = g[size_t(i)] + bias[size_t(k)];
        chk.expect(bit_equal(d_z.download(), ref), "coral_logits");
    }
    for (auto s : {std::array<int, 4>{2, 2, 2, 3}, {3, 2, 2, 512}, {2, 1, 1, 2048}}) {  // flatten
        auto in = random_vector(size_t(s[0]) * s[1] * s[2] * s[3], 72);
        std::vector<float> ref(in.size());
        DeviceArray<float> d_in(in), d_out(in.size());
        d_out.poison();
        CudaBackend::flatten_nchw_order(s[0], s[1], s[2], s[3], d_in.get(), d_out.get());
        cpu::flatten_nchw_order(s[0], s[1], s[2], s[3], in.data(), ref.data());
        chk.expect(bit_equal(d_out.download(), ref), "flatten_nchw_order");
    }
    for (int c : {19, 20}) {  // unfused epilogue, in place
        const size_t m = 301;
        auto x = random_vector(m * c, 31), res = random_vector(m * c, 32);
        auto scale = random_vector(size_t(c), 33), bias = random_vector(size_t(c), 34);
        DeviceArray<float> d_x(x), d_res(res), d_s(scale), d_b(bias);
        CudaBackend::Epilogue e;
        e.scale = d_s.get(), e.bias = d_b.get(), e.residual = d_res.get(), e.relu = true;
        CudaBackend::epilogue(e, d_x.get(), m, c, 1);
        cpu::Epilogue ce{scale.data(), bias.data(), res.data(), true};
        cpu::apply_epilogue_reference(ce, x.data(), m, c);
        std::vector<float> tol(x.size(), 1e-6f);
        allclose(d_x.download(), x, 1e-6, 1e-6, "epilogue c" + std::to_string(c), chk);
    }
}

void test_preprocess() {
    const int batch = 3, h = 37, w = 29;
    const size_t row_stride = size_t(w) * 3 + 7, image_stride = row_stride * h + 5;
    std::vector<std::uint8_t> src(image_stride * batch);
    for (size_t i = 0; i < src.size(); ++i) src[i] = std::uint8_t((i * 37 + 11) % 256);
    DeviceArray<std::uint8_t> d_src(src);
    DeviceArray<float> d_dst(size_t(batch) * h * w * 3);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    for (bool normalize : {false, true}) {
        d_dst.poison();
        sc::to_tensor_u8(d_src.get(), batch, h, w, row_stride, image_stride, normalize ? mean : nullptr,
                         normalize ? stdv : nullptr, d_dst.get());
        std::vector<float> ref(d_dst.size());
        for (int n = 0; n < batch; ++n)
            for (int y = 0; y < h; ++y)
                for (int j = 0; j < w * 3; ++j) {
                    float x = float(src[n * image_stride + y * row_stride + size_t(j)]) / 255.0f;
                    if (normalize) x = (x - mean[j % 3]) / stdv[j % 3];
                    ref[(size_t(n) * h + y) * w * 3 + size_t(j)] = x;
                }
        chk.expect(bit_equal(d_dst.download(), ref), normalize ? "to_tensor + normalize" : "to_tensor");
    }
}

void test_runtime() {
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
    // Buffers are zeroed and move-only.
    sc::DeviceBuffer b(1000);
    std::vector<float> h(1000, 1.0f);
    CudaBackend::download(h.data(), b.data(), h.size());
    chk.expect(std::all_of(h.begin(), h.end(), [](float v) { return v == 0.0f; }), "DeviceBuffer is zero-initialised");
    sc::DeviceBuffer moved = std::move(b);
    chk.expect(b.data() == nullptr && moved.size() == 1000, "DeviceBuffer moves");
    // Stream scope + graph capture of a few kernels: replay == eager.
    sc::Stream stream;
    auto in = random_vector(2 * 9 * 9 * 16, 80);
    DeviceArray<float> d_in(in), d_mid(2 * 5 * 5 * 16), d_out_eager(2 * 16), d_out_graph(2 * 16);
    sc::Pool2dParams p;
    p.batch = 2, p.in_h = p.in_w = 9, p.channels = 16, p.kernel = 3, p.stride = 2, p.pad = 1;
    {
        sc::CudaStreamScope scope(stream);
        chk.expect(sc::current_stream() == stream.get(), "CudaStreamScope sets the current stream");
        CudaBackend::maxpool2d(p, d_in.get(), d_mid.get(), 1);
        CudaBackend::global_avgpool(2, 5, 5, 16, d_mid.get(), d_out_eager.get(), 1);
        stream.synchronize();
        sc::CudaGraph graph([&] {
            CudaBackend::maxpool2d(p, d_in.get(), d_mid.get(), 1);
            CudaBackend::global_avgpool(2, 5, 5, 16, d_mid.get(), d_out_graph.get(), 1);
        });
        chk.expect(graph.nodes() == 2, "graph has 2 kernel nodes (got " + std::to_string(graph.nodes()) + ")");
        d_out_graph.poison();
        graph.launch();
        stream.synchronize();
    }
    chk.expect(sc::current_stream() == cudaStreamPerThread, "CudaStreamScope restores the stream");
    chk.expect(bit_equal(d_out_eager.download(), d_out_graph.download()), "graph replay == eager");
    // Pinned buffers and async copies.
    sc::PinnedBuffer pinned(256);
    for (size_t i = 0; i < 256; ++i) pinned.data()[i] = float(i);
    chk.expect(sc::is_pinned(pinned.data()) && !sc::is_pinned(h.data()), "is_pinned");
    sc::DeviceBuffer dev(256);
    sc::copy_to_device(dev.data(), pinned.data(), 256);
    std::vector<float> back(256);
    sc::copy_to_host(back.data(), dev.data(), 256);
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
        test_linear_coral_flatten_epilogue();
        test_preprocess();
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("test_cuda_kernels");
}
