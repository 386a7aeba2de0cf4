// kernels/cuda/dev/linear_check.cu — check and time the head kernels
// (kernels/cuda/linear.cuh): linear and the NCHW-order flatten.
//
// Build: tests/cuda/CMakeLists.txt builds it as softbio-cuda-linear-check; by hand, from
// the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Itests/cuda -Xcompiler=-fopenmp kernels/cuda/dev/linear_check.cu -o linear_check
// Run:  ./linear_check [--iters 50]
//
// Kernel versions (linear.cuh picks by batch):
//   small (batch <= 8): 8 outputs per 256-thread block, 32 threads per output row of W,
//                       float4 loads along F, per-row partials reduced through shared memory
//   tiled (batch > 8):  32 x 64 output tile, 32-wide F slices of x and W in shared memory
// Cases: torchvision's fc (2048 -> 1000), the flagship's heads (8192 -> 2 softmax, 8192 -> 1
// CORAL score) at batch 1, 8, 64, 256. Correctness: the tolerance rule (tests/tolerance.hpp) against
// cpu::linear_reference (double), flatten exact (coral: tests/cuda/test_cuda_kernels.cu).
// Speed: GFLOP/s and GB/s (W read once).
// Exit code 77 without a GPU.
#include <softbio/kernels/cpu/linear.hpp>

#include <cstdio>

#include "dev_common.cuh"

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;
using test::abs_of;
using test::random_vector;

int main(int argc, char** argv) {
    skip_without_gpu("linear_check");
    const int iters = int_arg(argc, argv, "--iters", 50);
    Checker chk;
    try {
        const CudaContext ctx = sc::make_context();
        for (auto io : {std::pair<int, int>{2048, 1000}, {8192, 2}, {8192, 1}, {513, 37}})
            for (int batch : {1, 3, 8, 9, 64, 256}) {
                auto x = random_vector(size_t(batch) * io.first, 1), w = random_vector(size_t(io.second) * io.first, 2);
                auto b = random_vector(size_t(io.second), 3);
                auto d_x = to_device(x), d_w = to_device(w), d_b = to_device(b);
                sc::DeviceBuffer d_y(size_t(batch) * io.second);
                std::vector<float> ref(d_y.size()), abs_sum(d_y.size());
                poison(d_y);
                auto run = [&] {
                    sc::linear(batch, io.first, io.second, d_x.data(), d_w.data(), d_b.data(), d_y.data(), ctx.stream);
                };
                run();
                cpu::linear_reference(batch, io.first, io.second, x.data(), w.data(), b.data(), ref.data());
                cpu::linear_reference(batch, io.first, io.second, abs_of(x).data(), abs_of(w).data(), abs_of(b).data(),
                                      abs_sum.data());
                char what[96];
                std::snprintf(what, sizeof what, "linear %d -> %d, batch %d", io.first, io.second, batch);
                expect_within_tolerance(to_host(d_y), ref, abs_sum, io.first, what, chk);
                const double ms = time_ms(run, ctx.stream, iters).median_ms;
                const double flop = 2.0 * batch * io.first * io.second;
                const double bytes = (double(io.second) * io.first + double(batch) * (io.first + io.second)) * 4;
                std::printf("%-32s %s: %8.4f ms  %8.1f GFLOP/s  %7.1f GB/s\n", what, batch <= sc::kLinearSmallRows ? "small" : "tiled",
                            ms, flop / ms / 1e6, bytes / ms / 1e6);
            }
        {  // flatten, Raschka's 2x2 pooled map
            const int n = 256, h = 2, w = 2, c = 2048;
            auto in = random_vector(size_t(n) * h * w * c, 6);
            auto d_in = to_device(in);
            sc::DeviceBuffer d_out(in.size());
            std::vector<float> ref(in.size());
            poison(d_out);
            auto run = [&] { sc::flatten_nchw_order(n, h, w, c, d_in.data(), d_out.data(), ctx.sm_count, ctx.stream); };
            run();
            cpu::flatten_nchw_order(n, h, w, c, in.data(), ref.data());
            chk.expect(same_values(to_host(d_out), ref), "flatten_nchw_order");
            const double ms = time_ms(run, ctx.stream, iters).median_ms;
            std::printf("flatten [256,2,2,2048]: %8.4f ms  %7.1f GB/s\n", ms, 2.0 * in.size() * 4 / ms / 1e6);
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("linear_check");
}
