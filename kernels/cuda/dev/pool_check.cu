// kernels/cuda/dev/pool_check.cu — check and time the pooling kernels
// (kernels/cuda/pool.cuh) at the shapes ResNets use.
//
// Build: tests/cuda/CMakeLists.txt builds it as softbio-cuda-pool-check; by hand, from
// the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Itests/cuda -Xcompiler=-fopenmp kernels/cuda/dev/pool_check.cu -o pool_check
// Run:  ./pool_check [--batch 256] [--iters 50]
//
// Cases: the stem max-pool 3x3/2 pad 1 on [N,112,112,64] (and [N,64,64,64] at 128 px),
// Raschka's AvgPool2d(7,1,2) on [N,4,4,2048], the global average pool on [N,7,7,2048].
// Correctness: bit-identical to the CPU kernels (kernels/cpu/pool.hpp), which the
// GPU kernels reproduce operation for operation, plus the tolerance rule (tests/tolerance.hpp)
// against the double-precision references (the full grid of shapes is tests/cuda/test_cuda_kernels.cu's). Bandwidth: (bytes read once + bytes written) / time — these
// kernels are memory-bound, so GB/s against the ~3 TB/s of HBM3 is the figure of merit
// (windows overlap for the max-pool: its input is read ~2.25x, mostly from L2).
// Exit code 77 without a GPU.
#include <softbio/kernels/cpu/pool.hpp>

#include <cstdio>

#include "dev_common.cuh"

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;

int main(int argc, char** argv) {
    skip_without_gpu("pool_check");
    const int batch = int_arg(argc, argv, "--batch", 256), iters = int_arg(argc, argv, "--iters", 50);
    Checker chk;
    enum Kind { kMax, kAvg, kGlobal };
    struct Case {
        const char* name;
        Kind kind;
        int h, w, c, k, s, p;
    };
    const Case cases[] = {{"stem maxpool 224", kMax, 112, 112, 64, 3, 2, 1},  {"stem maxpool 128", kMax, 64, 64, 64, 3, 2, 1},
                          {"avgpool(7,1,2) 4x4", kAvg, 4, 4, 2048, 7, 1, 2},  {"global avgpool 7x7", kGlobal, 7, 7, 2048, 1, 1, 0},
                          {"global avgpool 4x4", kGlobal, 4, 4, 2048, 1, 1, 0}, {"odd channels max", kMax, 9, 11, 19, 3, 2, 1}};
    try {
        const CudaContext ctx = sc::make_context();
        for (int n : {1, batch})
            for (const Case& cs : cases) {
                Pool2dParams p;
                p.batch = n, p.in_h = cs.h, p.in_w = cs.w, p.channels = cs.c, p.kernel = cs.k, p.stride = cs.s, p.pad = cs.p;
                const size_t in_n = size_t(n) * cs.h * cs.w * cs.c;
                const size_t out_n = cs.kind == kGlobal ? size_t(n) * cs.c : size_t(n) * p.out_h() * p.out_w() * cs.c;
                auto in = test::random_vector(in_n, 3);
                const auto abs_in = test::abs_of(in);
                auto d_in = to_device(in);
                sc::DeviceBuffer d_out(out_n);
                std::vector<float> fast(out_n), ref(out_n), abs_sum(out_n);
                auto run = [&] {
                    if (cs.kind == kMax) sc::maxpool2d(p, d_in.data(), d_out.data(), ctx.sm_count, ctx.stream);
                    else if (cs.kind == kAvg) sc::avgpool2d(p, d_in.data(), d_out.data(), ctx.sm_count, ctx.stream);
                    else sc::global_avgpool(n, cs.h, cs.w, cs.c, d_in.data(), d_out.data(), ctx.sm_count, ctx.stream);
                };
                poison(d_out);
                run();
                double k = 1;  // terms per output
                if (cs.kind == kMax) {
                    cpu::maxpool2d(p, in.data(), fast.data(), 4);
                    cpu::maxpool2d_reference(p, in.data(), ref.data());
                    abs_sum.assign(out_n, 0.0f);  // a maximum is exact
                } else if (cs.kind == kAvg) {
                    cpu::avgpool2d(p, in.data(), fast.data(), 4);
                    cpu::avgpool2d_reference(p, in.data(), ref.data());
                    cpu::avgpool2d_reference(p, abs_in.data(), abs_sum.data());
                    k = double(cs.k) * cs.k;
                } else {
                    cpu::global_avgpool(n, cs.h, cs.w, cs.c, in.data(), fast.data(), 4);
                    cpu::global_avgpool_reference(n, cs.h, cs.w, cs.c, in.data(), ref.data());
                    cpu::global_avgpool_reference(n, cs.h, cs.w, cs.c, abs_in.data(), abs_sum.data());
                    k = double(cs.h) * cs.w;
                }
                const auto got = to_host(d_out);
                chk.expect(same_values(got, fast), std::string(cs.name) + ": bit-identical to the CPU kernel");
                expect_within_tolerance(got, ref, abs_sum, k, cs.name, chk);
                const double ms = time_ms(run, ctx.stream, iters).median_ms;
                const double gb = (in_n + out_n) * sizeof(float) / 1e9;
                std::printf("%-22s batch %4d: %8.4f ms  %7.1f GB/s\n", cs.name, n, ms, gb / ms * 1e3);
            }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("pool_check");
}
