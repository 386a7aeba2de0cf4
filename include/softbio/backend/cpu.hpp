// softbio/backend/cpu.hpp — the CPU backend: the seam between layers and kernels.
//
// Layers (softbio/layers/*.hpp) are templates over a Backend type and call only the
// static functions below; they never see SIMD, OpenMP or CUDA. A CUDA backend provides
// the same names over device pointers. Each function forwards to a kernel in
// kernels/cpu/, where the math is documented.
#pragma once

#include <cstring>

#include "softbio/core/tensor.hpp"
#include "softbio/kernels/cpu/conv2d.hpp"
#include "softbio/kernels/cpu/epilogue.hpp"
#include "softbio/kernels/cpu/linear.hpp"
#include "softbio/kernels/cpu/pool.hpp"

namespace softbio {

struct CpuBackend {
    static constexpr const char* name = "cpu";
    /// Owning storage for weights and activations on this backend.
    using Buffer = AlignedBuffer;
    using Conv2dParams = cpu::Conv2dParams;
    using Pool2dParams = cpu::Pool2dParams;
    using Epilogue = cpu::Epilogue;

    /// Copy `count` host floats into a new backend buffer (weights, at load time).
    static Buffer upload(const float* host, size_t count) {
        Buffer b(count);
        if (count) std::memcpy(b.data(), host, count * sizeof(float));
        return b;
    }
    /// Host-side repack of PyTorch conv weights into the layout conv2d() reads.
    static void pack_conv_weights(const Conv2dParams& p, const float* w_oihw, const float* scale, float* packed) {
        cpu::pack_conv_weights(p, w_oihw, scale, packed);
    }
    /// Weights the backend can read where they are: on the CPU, the memory-mapped file
    /// itself (zero-copy; `storage` stays empty). A GPU backend uploads into `storage`.
    static const float* use_weights(const float* host, size_t /*count*/, Buffer& /*storage*/) { return host; }
    /// Copy `count` floats from a backend buffer to host memory (results).
    static void download(float* host, const float* src, size_t count) {
        if (count) std::memcpy(host, src, count * sizeof(float));
    }
    static size_t conv2d_workspace_floats(const Conv2dParams& p, int threads) {
        return cpu::conv2d_workspace_floats(p, threads);
    }
    static void conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                       float* workspace, int threads) {
        cpu::conv2d(p, in, packed_w, out, e, workspace, threads);
    }
    static void epilogue(const Epilogue& e, float* data, size_t rows, int channels, int threads) {
        cpu::apply_epilogue_rows(e, data, rows, channels, threads);
    }
    static void maxpool2d(const Pool2dParams& p, const float* in, float* out, int threads) {
        cpu::maxpool2d(p, in, out, threads);
    }
    static void avgpool2d(const Pool2dParams& p, const float* in, float* out, int threads) {
        cpu::avgpool2d(p, in, out, threads);
    }
    static void global_avgpool(int n, int h, int w, int c, const float* in, float* out, int threads) {
        cpu::global_avgpool(n, h, w, c, in, out, threads);
    }
    static void flatten_nchw_order(int n, int h, int w, int c, const float* in, float* out) {
        cpu::flatten_nchw_order(n, h, w, c, in, out);
    }
    static void linear(int n, int in_f, int out_f, const float* x, const float* w, const float* b, float* y,
                       int threads) {
        cpu::linear(n, in_f, out_f, x, w, b, y, threads);
    }
    /// CORAL thresholds: z[n, k] = g[n] + bias[k] for k < k1.
    static void coral_logits(int n, int k1, const float* g, const float* bias, float* z) {
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < k1; ++k) z[size_t(i) * k1 + k] = g[i] + bias[k];
    }
};

}  // namespace softbio
