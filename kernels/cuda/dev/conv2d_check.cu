// kernels/cuda/dev/conv2d_check.cu — check and time the implicit-GEMM convolution
// (kernels/cuda/conv2d_implicit_gemm.cuh) on every distinct convolution of ResNet-101.
//
// Build: tests/cuda/CMakeLists.txt builds it as softbio-cuda-conv2d-check; by hand, from
// the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Itests/cuda -I/usr/include/eigen3 -Xcompiler=-fopenmp \
//        kernels/cuda/dev/conv2d_check.cu -o conv2d_check
// Run:
//   ./conv2d_check [--batch 1] [--size 224] [--iters 20] [--check-batch 2] [--variants] [--no-check]
//
// For each of the 23 distinct conv shapes of torchvision's ResNet-101 at --size (taken
// from the network's description: tests/cuda/host_helpers.hpp):
//  1. correctness: the kernel variant the plan picks for --batch (tile shape, split-K),
//     forced onto a batch of --check-batch images, against the CPU: the direct reference
//     (kernels/cpu/conv2d.hpp, conv2d_reference) when small, else the CPU engine's own
//     conv2d, under the tolerance rule (tests/tolerance.hpp) with a doubled allowance;
//  2. time: median of --iters launches at --batch (CUDA events), GFLOP/s = 2*MACs/time;
//     with --variants also every tile shape without split-K (to tune plan_conv2d);
//  3. a total weighted by how often the shape occurs in the network (104 convolutions):
//     the convolution time of one forward pass, to compare with the end-to-end numbers.
//
// Kernel variants (plan_conv2d chooses; see the header of conv2d_implicit_gemm.cuh):
//   tile 128x128 (256 threads, 8x8 per thread) — large M, Cout >= 128
//   tile 64x64   (64 threads, 8x8 per thread)  — Cout = 64 layers at large M, medium M
//   tile 32x32   (64 threads, 4x4 per thread)  + split-K — batch 1..8 late stages
// each with a pointwise (1x1), vec4 (Cin % 4 == 0) or scalar (stem) gather. Compile-time
// knobs: -DSOFTBIO_CONV128_BK=16, -DSOFTBIO_CONV128_MIN_BLOCKS=2.
//
// Exit code 77 without a GPU; 1 if any check fails.
#define EIGEN_NO_CUDA
#include <softbio/core/tensor.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "dev_common.cuh"
#include "host_helpers.hpp"

using namespace softbio;
using namespace softbio::cuda::dev;
namespace sc = softbio::cuda;

namespace {

struct Buffers {
    sc::DeviceBuffer in, w, out, bias, ws;
};

Buffers make_buffers(const Conv2dParams& p, const sc::ConvPlan& plan, uint64_t seed, std::vector<float>* h_in,
                     std::vector<float>* h_w, std::vector<float>* h_packed) {
    auto in = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    std::vector<float> packed(w.size());
    pack_conv_weights(p, w.data(), nullptr, packed.data());
    Buffers b{to_device(in), to_device(packed), sc::DeviceBuffer(p.gemm_m() * p.out_c),
              to_device(test::random_vector(size_t(p.out_c), seed + 2)), sc::DeviceBuffer(plan.workspace_floats + 1)};
    if (h_in) *h_in = std::move(in);
    if (h_w) *h_w = std::move(w);
    if (h_packed) *h_packed = std::move(packed);
    return b;
}

// Check the variant `planned` (tile, splits) on a batch of `check_batch`.
void check_variant(const Conv2dParams& big, const sc::ConvPlan& planned, int check_batch, const CudaContext& ctx,
                   Checker& chk, int threads) {
    Conv2dParams p = big;
    p.batch = check_batch;
    const sc::ConvPlan plan = sc::plan_conv2d(p, ctx.sm_count, int(planned.tile), planned.splits);
    std::vector<float> in, w, packed;
    Buffers b = make_buffers(p, plan, 42, &in, &w, &packed);
    poison(b.out);
    const sc::ConvLaunch L = sc::make_conv_launch(p, b.in.data(), b.w.data(), b.out.data(), {},
                                                  plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count,
                                                  int(planned.tile), planned.splits);
    sc::launch_conv(L, ctx.sm_count, ctx.stream);
    std::vector<float> ref, abs_sum;
    double allowance_k = p.gemm_k();
    if (p.macs() < 3e7) {
        test::conv_reference(p, in, w, {}, ref, abs_sum);
    } else {  // the CPU engine's conv as reference: both sides round, so allow twice the error
        ref.resize(p.gemm_m() * p.out_c), abs_sum.resize(ref.size());
        AlignedBuffer ws(cpu::conv2d_workspace_floats(p, threads));  // 64-byte aligned, as the CPU kernel wants
        cpu::conv2d(p, in.data(), packed.data(), ref.data(), {}, ws.data(), threads);
        std::vector<float> abs_packed = test::abs_of(packed);
        cpu::conv2d(p, test::abs_of(in).data(), abs_packed.data(), abs_sum.data(), {}, ws.data(), threads);
        allowance_k *= 4;
    }
    char what[200];
    std::snprintf(what, sizeof what, "%dx%dx%d->%d k%d s%d (tile %s, %s, splits %d) at batch %d", p.in_h, p.in_w, p.in_c,
                  p.out_c, p.kernel_h, p.stride, sc::tile_name(L.plan.tile), sc::gather_name(L.gather), L.plan.splits,
                  check_batch);
    expect_within_tolerance(to_host(b.out), ref, abs_sum, allowance_k, what, chk);
}

double time_variant(const Conv2dParams& p, int force_tile, int force_splits, int iters, const CudaContext& ctx,
                    sc::ConvLaunch* used) {
    const sc::ConvPlan plan = sc::plan_conv2d(p, ctx.sm_count, force_tile, force_splits);
    Buffers b = make_buffers(p, plan, 7, nullptr, nullptr, nullptr);
    Epilogue e;
    e.bias = b.bias.data(), e.relu = true;  // the usual folded-BN epilogue
    const sc::ConvLaunch L = sc::make_conv_launch(p, b.in.data(), b.w.data(), b.out.data(), e,
                                                  plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count,
                                                  force_tile, force_splits);
    if (used) *used = L;
    return time_ms([&] { sc::launch_conv(L, ctx.sm_count, ctx.stream); }, ctx.stream, iters).median_ms;
}

}  // namespace

int main(int argc, char** argv) {
    skip_without_gpu("conv2d_check");
    const int batch = int_arg(argc, argv, "--batch", 1), size = int_arg(argc, argv, "--size", 224);
    const int iters = int_arg(argc, argv, "--iters", 20);
    const int check_batch = std::min(batch, int_arg(argc, argv, "--check-batch", 2));
    const int threads = int_arg(argc, argv, "--cpu-threads", 16);
    const bool variants = flag_arg(argc, argv, "--variants"), no_check = flag_arg(argc, argv, "--no-check");
    Checker chk;
    double total_ms = 0, total_gflop = 0;
    int total_convs = 0;
    try {
        const CudaContext ctx = sc::make_context();
        std::printf("# ResNet-101 convolutions, batch %d, %dx%d, %d SMs, SOFTBIO_CONV128_BK=%d, SOFTBIO_CONV128_MIN_BLOCKS=%d\n",
                    batch, size, size, ctx.sm_count, SOFTBIO_CONV128_BK, SOFTBIO_CONV128_MIN_BLOCKS);
        std::printf("%-22s %-22s %5s %-8s %-9s %6s %9s %9s %s\n", "layer", "shape", "count", "tile", "gather", "splits",
                    "ms", "GFLOP/s", variants ? "  [no split-K: 128x128 / 64x64 / 32x32 ms]" : "");
        for (const test::ConvUse& s : test::distinct_convs("torchvision-r101", batch, size)) {
            const Conv2dParams& p = s.p;
            sc::ConvLaunch used;
            const double ms = time_variant(p, -1, 0, iters, ctx, &used);
            if (!no_check) check_variant(p, used.plan, check_batch, ctx, chk, threads);
            const double gflop = 2 * p.macs() / 1e9;
            total_ms += ms * s.count;
            total_gflop += gflop * s.count;
            total_convs += s.count;
            char shape[64];
            std::snprintf(shape, sizeof shape, "%dx%dx%d->%d k%d/%d", p.in_h, p.in_w, p.in_c, p.out_c, p.kernel_h, p.stride);
            std::printf("%-22s %-22s %5d %-8s %-9s %6d %9.4f %9.0f", s.where.c_str(), shape, s.count,
                        sc::tile_name(used.plan.tile), sc::gather_name(used.gather), used.plan.splits, ms, gflop / ms * 1e3);
            if (variants)
                for (int t = 0; t < 3; ++t) std::printf(" %8.4f", time_variant(p, t, 1, iters, ctx, nullptr));
            std::printf("\n");
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    std::printf("# all %d convolutions: %.3f ms per forward at batch %d (%.3f ms/image), %.0f GFLOP/s overall\n",
                total_convs, total_ms, batch, total_ms / batch, total_gflop / total_ms * 1e3);
    return chk.finish("conv2d_check");
}
