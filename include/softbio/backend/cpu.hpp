// softbio/backend/cpu.hpp — the CPU backend: the seam between layers and kernels.
//
// Layers (softbio/layers/*.hpp) are templates over a Backend type and call only the
// static functions below; they never see SIMD, OpenMP or CUDA. The CUDA backend
// (backend/cuda.hpp) provides the same names over device pointers. The op parameters
// (Conv2dParams, Pool2dParams, Epilogue) and the filter packing are shared by both:
// kernels/op_params.hpp. Each function here hands its work to a kernel in kernels/cpu/,
// where the math is documented, with the thread count from the context.
#pragma once

#include <cstring>

#include "softbio/core/tensor.hpp"
#include "softbio/kernels/cpu/conv2d.hpp"
#include "softbio/kernels/cpu/depthwise.hpp"
#include "softbio/kernels/cpu/epilogue.hpp"
#include "softbio/kernels/cpu/linear.hpp"
#include "softbio/kernels/cpu/pool.hpp"
#include "softbio/kernels/cpu/winograd.hpp"

namespace softbio {

/// What a CPU kernel needs besides its operands: how many OpenMP threads to run.
struct CpuContext {
    int threads = 1;
};

struct CpuBackend {
    static constexpr const char* name = "cpu";
    using Buffer = AlignedBuffer;  // owning storage for weights and activations
    using Context = CpuContext;

    static Context make_context(int threads) { return Context{threads}; }

    /// Copy `count` host floats into a new buffer (weights, at load time).
    static Buffer upload(const float* host, size_t count) {
        Buffer b(count);
        if (count) std::memcpy(b.data(), host, count * sizeof(float));
        return b;
    }
    /// Weights the backend can read where they are: on the CPU, the memory-mapped file
    /// itself (zero-copy; `storage` stays empty). The CUDA backend uploads into `storage`.
    static const float* use_weights(const float* host, size_t /*count*/, Buffer& /*storage*/) { return host; }
    /// Copy `count` result floats to host memory.
    static void download(float* host, const float* src, size_t count, const Context&) {
        if (count) std::memcpy(host, src, count * sizeof(float));
    }
    /// Wait until the queued work is done (CPU kernels run synchronously: nothing to do).
    static void synchronize(const Context&) {}

    static size_t conv2d_workspace_floats(const Conv2dParams& p, const Context& c) {
        return cpu::conv2d_workspace_floats(p, c.threads);
    }
    static void conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                       float* workspace, const Context& c) {
        cpu::conv2d(p, in, packed_w, out, e, workspace, c.threads);
    }
    /// 3x3 stride-1 convolution by F(4x4, 3x3), weights from cpu::pack_winograd_weights*.
    static size_t conv2d_winograd_workspace_floats(const Conv2dParams& p, const Context& c) {
        return cpu::winograd_workspace_floats(p, c.threads);
    }
    static void conv2d_winograd(const Conv2dParams& p, const float* in, const float* u, float* out, const Epilogue& e,
                                float* workspace, const Context& c) {
        cpu::conv2d_winograd(p, in, u, out, e, workspace, c.threads);
    }
    /// Depthwise convolution (p.out_c == p.in_c), epilogue fused; weights from
    /// pack_depthwise_weights. Needs no workspace.
    static void depthwise_conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out,
                                 const Epilogue& e, const Context& c) {
        cpu::depthwise_conv2d(p, in, packed_w, out, e, c.threads);
    }
    static void epilogue(const Epilogue& e, float* data, size_t rows, int channels, const Context& c) {
        cpu::apply_epilogue_rows(e, data, rows, channels, c.threads);
    }
    static void maxpool2d(const Pool2dParams& p, const float* in, float* out, const Context& c) {
        cpu::maxpool2d(p, in, out, c.threads);
    }
    static void avgpool2d(const Pool2dParams& p, const float* in, float* out, const Context& c) {
        cpu::avgpool2d(p, in, out, c.threads);
    }
    static void global_avgpool(int n, int h, int w, int ch, const float* in, float* out, const Context& c) {
        cpu::global_avgpool(n, h, w, ch, in, out, c.threads);
    }
    static void flatten_nchw_order(int n, int h, int w, int ch, const float* in, float* out, const Context&) {
        cpu::flatten_nchw_order(n, h, w, ch, in, out);
    }
    static void linear(int n, int in_f, int out_f, const float* x, const float* w, const float* b, float* y,
                       const Context& c) {
        cpu::linear(n, in_f, out_f, x, w, b, y, c.threads);
    }
    static void coral_logits(int n, int k1, const float* g, const float* bias, float* z, const Context&) {
        cpu::coral_logits(n, k1, g, bias, z);
    }
};

}  // namespace softbio
