// kernels/cuda/dev/conv2d_check.cu — check and time the implicit-GEMM convolution
// (kernels/cuda/conv2d_implicit_gemm.cuh) on every distinct convolution of ResNet-101.
//
// Build: tests/cuda/CMakeLists.txt builds it as softbio-cuda-conv2d-check; by hand, from
// the repository root:
//   nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude -Itests/cuda -I/usr/include/eigen3 -Xcompiler=-fopenmp \
//        kernels/cuda/dev/conv2d_check.cu -o conv2d_check
// Run:
//   ./conv2d_check [--batch 1] [--size 224] [--iters 20] [--check-batch 2] [--variants] [--no-check]
//                  [--precision fp32|tf32|tf32kn|fp16|bf16|fp16io|bf16io|all|LIST]
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
// Tensor cores (kernels/cuda/conv2d_mma.cuh): --precision tf32|fp16|bf16 runs the same
// sweep on the tensor-core kernels (the same tile names, BK = 64 bytes: 16 tf32 or 32
// fp16/bf16 values; inputs and weights generated in fp32 and converted to the storage
// type, weights packed [Cout][ldk] by pack_conv_weights_mma), and checks each planned
// variant twice (tests/cuda/mma_tolerance.hpp): against the CPU reference on the
// pre-rounded inputs under the fp32 rule with a hardware factor h = 4 (tensor cores
// accumulate in their own order and may truncate; 8 when the CPU engine is the reference,
// which rounds too), and against the fp32 reference under the precision's worst-case
// bound. tf32kn is tf32 through conv2d_tf32, the drop-in for conv2d(): the fp32 packing
// [K][N], rounded with cvt.rna as read. fp16io / bf16io are conv2d_mma_f32io, the CUDA
// backend's 16-bit path: fp32 input and output, the fp32 packing [K][N] converted to the
// 16-bit type (as at load), the input rounded to 16 bits as gathered (checked with the
// output unrounded: mma_tolerance.hpp's out16 = false). --precision all runs fp32, tf32,
// tf32kn, fp16, bf16, fp16io and bf16io one after the other; --precision tf32,fp16 a list.
//
// Exit code 77 without a GPU; 1 if any check fails.
#define EIGEN_NO_CUDA
#include <softbio/core/tensor.hpp>
#include <softbio/kernels/cpu/conv2d.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include <softbio/kernels/cuda/conv2d_mma.cuh>

#include "dev_common.cuh"
#include "host_helpers.hpp"
#include "mma_tolerance.hpp"

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

// ---- tensor cores ---------------------------------------------------------------------------

template <class P>
struct MmaBuffers {
    sc::DeviceArray<typename P::Act> in, w, out;
    sc::DeviceBuffer bias, ws;
};

template <class P>
MmaBuffers<P> make_mma_buffers(const Conv2dParams& p, const sc::ConvPlan& plan, uint64_t seed, std::vector<float>* h_in,
                               std::vector<float>* h_w, bool kn) {
    using Act = typename P::Act;
    auto in32 = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w32 = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    std::vector<Act> in(in32.size()), packed(kn ? w32.size() : sc::mma_packed_weights_count(p, P::kId));
    for (size_t i = 0; i < in.size(); ++i) in[i] = P::from_float(in32[i]);
    if constexpr (std::is_same<Act, float>::value) {
        if (kn) pack_conv_weights(p, w32.data(), nullptr, packed.data());  // conv2d_tf32: the fp32 packing
    }
    if (!kn) sc::pack_conv_weights_mma<P>(p, w32.data(), nullptr, packed.data());
    MmaBuffers<P> b{to_device(in), to_device(packed), sc::DeviceArray<Act>(p.gemm_m() * p.out_c),
                    to_device(test::random_vector(size_t(p.out_c), seed + 2)), sc::DeviceBuffer(plan.workspace_floats + 1)};
    if (h_in) *h_in = std::move(in32);
    if (h_w) *h_w = std::move(w32);
    return b;
}

/// fp16io / bf16io: conv2d_mma_f32io (the CUDA backend's 16-bit path): fp32 input and
/// output, the fp32 packing [K][N] converted to the 16-bit type (convert_packed_weights).
template <class P>
struct IoBuffers {
    sc::DeviceBuffer in, out, bias, ws;
    sc::DeviceArray<typename P::Act> w;
};

template <class P>
IoBuffers<P> make_io_buffers(const Conv2dParams& p, const sc::ConvPlan& plan, uint64_t seed, std::vector<float>* h_in,
                             std::vector<float>* h_w) {
    auto in32 = test::random_vector(size_t(p.batch) * p.in_h * p.in_w * p.in_c, seed);
    auto w32 = test::random_vector(size_t(p.out_c) * p.gemm_k(), seed + 1);
    std::vector<float> packed32(w32.size());
    pack_conv_weights(p, w32.data(), nullptr, packed32.data());
    std::vector<typename P::Act> w16(w32.size());
    sc::convert_packed_weights<P>(packed32.data(), packed32.size(), w16.data());
    IoBuffers<P> b{to_device(in32), sc::DeviceBuffer(p.gemm_m() * p.out_c),
                   to_device(test::random_vector(size_t(p.out_c), seed + 2)), sc::DeviceBuffer(plan.workspace_floats + 1),
                   to_device(w16)};
    if (h_in) *h_in = std::move(in32);
    if (h_w) *h_w = std::move(w32);
    return b;
}

/// Run the planned variant at check_batch: `got` the outputs as fp32, `in32` / `w32` the
/// fp32 inputs, the launch's plan and gather.
template <class P>
void run_check_mma(const Conv2dParams& p, const sc::ConvPlan& planned, const CudaContext& ctx, bool kn, bool io,
                   std::vector<float>& got, std::vector<float>& in32, std::vector<float>& w32, sc::ConvPlan& used,
                   sc::ConvGather& gather) {
    const sc::ConvPlan plan = sc::plan_conv2d_mma(p, P::kId, ctx.sm_count, int(planned.tile), planned.splits);
    if constexpr (P::kId != sc::MmaPrecision::kTf32) {
        if (io) {
            IoBuffers<P> b = make_io_buffers<P>(p, plan, 42, &in32, &w32);
            poison(b.out);
            const sc::MmaConvLaunch<P, true> L = sc::make_mma_conv_launch_f32io<P>(
                p, b.in.data(), b.w.data(), b.out.data(), {}, plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count,
                int(planned.tile), planned.splits);
            sc::launch_conv_mma<P, true>(L, ctx.sm_count, ctx.stream);
            got = to_host(b.out);
            used = L.plan, gather = L.gather;
            return;
        }
    }
    MmaBuffers<P> b = make_mma_buffers<P>(p, plan, 42, &in32, &w32, kn);
    poison(b.out);
    const sc::MmaConvLaunch<P> L =
        sc::make_mma_conv_launch<P>(p, b.in.data(), b.w.data(), b.out.data(), {}, nullptr,
                                    plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count, int(planned.tile), planned.splits,
                                    kn);
    sc::launch_conv_mma<P>(L, ctx.sm_count, ctx.stream);
    const auto out = to_host(b.out);
    got.resize(out.size());
    for (size_t i = 0; i < out.size(); ++i) got[i] = P::to_float(out[i]);
    used = L.plan, gather = L.gather;
}

template <class P>
void check_variant_mma(const Conv2dParams& big, const sc::ConvPlan& planned, int check_batch, const CudaContext& ctx,
                       Checker& chk, int threads, bool kn, bool io = false) {
    Conv2dParams p = big;
    p.batch = check_batch;
    const sc::MmaPrecision prec = P::kId;
    std::vector<float> got, in32, w32;
    struct {
        sc::ConvPlan plan;
        sc::ConvGather gather;
    } L;
    run_check_mma<P>(p, planned, ctx, kn, io, got, in32, w32, L.plan, L.gather);
    const std::vector<float> in_r = test::mma_operand_values(prec, in32), w_r = test::mma_operand_values(prec, w32);
    std::vector<float> ref_r, abs_r, ref32, abs32;
    double h = 4;  // tensor cores: their own accumulation order, possibly truncating (mma_tolerance.hpp)
    if (p.macs() < 3e7) {
        test::conv_reference(p, in_r, w_r, {}, ref_r, abs_r);
        test::conv_reference(p, in32, w32, {}, ref32, abs32);
    } else {  // the CPU engine's conv: it rounds too, so twice the allowance
        auto engine = [&](const std::vector<float>& in, const std::vector<float>& w, std::vector<float>& ref,
                          std::vector<float>& abs_sum) {
            std::vector<float> packed(w.size());
            pack_conv_weights(p, w.data(), nullptr, packed.data());
            ref.resize(p.gemm_m() * p.out_c), abs_sum.resize(ref.size());
            AlignedBuffer ws(cpu::conv2d_workspace_floats(p, threads));
            cpu::conv2d(p, in.data(), packed.data(), ref.data(), {}, ws.data(), threads);
            std::vector<float> abs_packed = test::abs_of(packed);
            cpu::conv2d(p, test::abs_of(in).data(), abs_packed.data(), abs_sum.data(), {}, ws.data(), threads);
        };
        engine(in_r, w_r, ref_r, abs_r);
        engine(in32, w32, ref32, abs32);
        h = 8;
    }
    char what[240];
    const std::string name = kn ? "tf32kn" : io ? std::string(sc::precision_name(prec)) + "io" : sc::precision_name(prec);
    std::snprintf(what, sizeof what, "%s %dx%dx%d->%d k%d s%d (tile %s, %s, splits %d) at batch %d", name.c_str(),
                  p.in_h, p.in_w, p.in_c, p.out_c, p.kernel_h, p.stride, sc::tile_name(L.plan.tile), sc::gather_name(L.gather),
                  L.plan.splits, check_batch);
    const double k = p.gemm_k();
    const int out16 = io ? 0 : -1;  // fp32 output with io
    const test::MmaReport r1 = test::compare_mma_rounded(prec, got, ref_r, abs_r, k, h, out16);
    const test::MmaReport r2 = test::compare_mma_fp32(prec, got, ref32, abs32, k, nullptr, h, out16);
    auto detail = [&](const test::MmaReport& r, const std::vector<float>& ref) {
        return std::to_string(r.bad) + " of " + std::to_string(got.size()) + " outside (worst " + std::to_string(r.worst) +
               " of the bound)" +
               (r.bad ? ", first at " + std::to_string(r.first) + ": got " + std::to_string(got[r.first]) + " ref " +
                            std::to_string(ref[r.first])
                      : std::string());
    };
    chk.expect(r1.ok(), std::string(what) + " vs pre-rounded reference: " + detail(r1, ref_r));
    chk.expect(r2.ok(), std::string(what) + " vs fp32 reference: " + detail(r2, ref32));
}

template <class P>
double time_variant_mma(const Conv2dParams& p, int force_tile, int force_splits, int iters, const CudaContext& ctx,
                        sc::ConvPlan* used_plan, sc::ConvGather* used_gather, bool kn, bool io = false) {
    const sc::ConvPlan plan = sc::plan_conv2d_mma(p, P::kId, ctx.sm_count, force_tile, force_splits);
    if constexpr (P::kId != sc::MmaPrecision::kTf32) {
        if (io) {
            IoBuffers<P> b = make_io_buffers<P>(p, plan, 7, nullptr, nullptr);
            Epilogue e;
            e.bias = b.bias.data(), e.relu = true;
            const sc::MmaConvLaunch<P, true> L = sc::make_mma_conv_launch_f32io<P>(
                p, b.in.data(), b.w.data(), b.out.data(), e, plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count,
                force_tile, force_splits);
            if (used_plan) *used_plan = L.plan;
            if (used_gather) *used_gather = L.gather;
            return time_ms([&] { sc::launch_conv_mma<P, true>(L, ctx.sm_count, ctx.stream); }, ctx.stream, iters).median_ms;
        }
    }
    MmaBuffers<P> b = make_mma_buffers<P>(p, plan, 7, nullptr, nullptr, kn);
    Epilogue e;
    e.bias = b.bias.data(), e.relu = true;
    const sc::MmaConvLaunch<P> L = sc::make_mma_conv_launch<P>(p, b.in.data(), b.w.data(), b.out.data(), e, nullptr,
                                                               plan.workspace_floats ? b.ws.data() : nullptr, ctx.sm_count,
                                                               force_tile, force_splits, kn);
    if (used_plan) *used_plan = L.plan;
    if (used_gather) *used_gather = L.gather;
    return time_ms([&] { sc::launch_conv_mma<P>(L, ctx.sm_count, ctx.stream); }, ctx.stream, iters).median_ms;
}

struct Options {
    int batch = 1, size = 224, iters = 20, check_batch = 2, threads = 16;
    bool variants = false, no_check = false;
};

/// The sweep over ResNet-101's convolutions for one precision ("fp32" = the CUDA-core kernel).
void run_precision(const std::string& precision, const Options& o, const CudaContext& ctx, Checker& chk) {
    double total_ms = 0, total_gflop = 0;
    int total_convs = 0;
    const bool fp32 = precision == "fp32", kn = precision == "tf32kn";
    const bool io = precision == "fp16io" || precision == "bf16io";
    sc::MmaPrecision prec = sc::MmaPrecision::kTf32;
    if (!fp32) {
        if (precision == "fp16" || precision == "fp16io") prec = sc::MmaPrecision::kFp16;
        else if (precision == "bf16" || precision == "bf16io") prec = sc::MmaPrecision::kBf16;
        else if (precision != "tf32" && !kn)
            throw Error("--precision: '" + precision + "' is none of fp32, tf32, tf32kn, fp16, bf16, fp16io, bf16io, all");
    }
    std::printf("# %s: ResNet-101 convolutions, batch %d, %dx%d, %d SMs%s\n", precision.c_str(), o.batch, o.size, o.size,
                ctx.sm_count,
                fp32 ? (", SOFTBIO_CONV128_BK=" + std::to_string(SOFTBIO_CONV128_BK) +
                        ", SOFTBIO_CONV128_MIN_BLOCKS=" + std::to_string(SOFTBIO_CONV128_MIN_BLOCKS))
                           .c_str()
                     : ", tensor cores (conv2d_mma.cuh)");
    std::printf("%-6s %-22s %-22s %5s %-8s %-9s %6s %9s %9s %s\n", "prec", "layer", "shape", "count", "tile", "gather",
                "splits", "ms", "GFLOP/s", o.variants ? "  [no split-K: 128x128 / 64x64 / 32x32 ms]" : "");
    for (const test::ConvUse& s : test::distinct_convs("torchvision-r101", o.batch, o.size)) {
        const Conv2dParams& p = s.p;
        sc::ConvPlan plan;
        sc::ConvGather gather = sc::ConvGather::kScalar;
        double ms = 0;
        if (fp32) {
            sc::ConvLaunch used;
            ms = time_variant(p, -1, 0, o.iters, ctx, &used);
            plan = used.plan, gather = used.gather;
            if (!o.no_check) check_variant(p, used.plan, o.check_batch, ctx, chk, o.threads);
        } else {
            sc::with_mma_precision(prec, [&](auto tag) {
                using P = decltype(tag);
                ms = time_variant_mma<P>(p, -1, 0, o.iters, ctx, &plan, &gather, kn, io);
                if (!o.no_check) check_variant_mma<P>(p, plan, o.check_batch, ctx, chk, o.threads, kn, io);
            });
        }
        const double gflop = 2 * p.macs() / 1e9;
        total_ms += ms * s.count;
        total_gflop += gflop * s.count;
        total_convs += s.count;
        char shape[64];
        std::snprintf(shape, sizeof shape, "%dx%dx%d->%d k%d/%d", p.in_h, p.in_w, p.in_c, p.out_c, p.kernel_h, p.stride);
        std::printf("%-6s %-22s %-22s %5d %-8s %-9s %6d %9.4f %9.0f", precision.c_str(), s.where.c_str(), shape, s.count,
                    sc::tile_name(plan.tile), sc::gather_name(gather), plan.splits, ms, gflop / ms * 1e3);
        if (o.variants)
            for (int t = 0; t < 3; ++t) {
                double vms = 0;
                if (fp32) vms = time_variant(p, t, 1, o.iters, ctx, nullptr);
                else
                    sc::with_mma_precision(prec, [&](auto tag) {
                        vms = time_variant_mma<decltype(tag)>(p, t, 1, o.iters, ctx, nullptr, nullptr, kn, io);
                    });
                std::printf(" %8.4f", vms);
            }
        std::printf("\n");
    }
    std::printf("# %s: all %d convolutions: %.3f ms per forward at batch %d (%.3f ms/image), %.0f GFLOP/s overall\n",
                precision.c_str(), total_convs, total_ms, o.batch, total_ms / o.batch, total_gflop / total_ms * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
    skip_without_gpu("conv2d_check");
    Options o;
    o.batch = int_arg(argc, argv, "--batch", 1), o.size = int_arg(argc, argv, "--size", 224);
    o.iters = int_arg(argc, argv, "--iters", 20);
    o.check_batch = std::min(o.batch, int_arg(argc, argv, "--check-batch", 2));
    o.threads = int_arg(argc, argv, "--cpu-threads", 16);
    o.variants = flag_arg(argc, argv, "--variants"), o.no_check = flag_arg(argc, argv, "--no-check");
    std::string list = string_arg(argc, argv, "--precision", "fp32");
    if (list == "all") list = "fp32,tf32,tf32kn,fp16,bf16,fp16io,bf16io";
    Checker chk;
    try {
        const CudaContext ctx = sc::make_context();
        size_t start = 0;
        while (start <= list.size()) {
            const size_t comma = list.find(',', start);
            const std::string one = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!one.empty()) run_precision(one, o, ctx, chk);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("conv2d_check");
}
