// kernels/cuda/conv2d_mma.cuh — 2-d convolution on NHWC tensors as an implicit GEMM on
// the tensor cores (mma.sync, sm_80+): a TF32 path (fp32 storage, inputs rounded to tf32)
// and an FP16 / BF16 path (16-bit storage of weights and activations), both with fp32
// accumulation and the same fused epilogue and padding as the fp32 CUDA-core kernel
// (conv2d_implicit_gemm.cuh, which stays the default and the reference).
//
// THE MATH. The same matrix product as conv2d_implicit_gemm.cuh:
//
//   C[M x N] = A[M x K] * B[K x N],  M = batch*out_h*out_w, K = kh*kw*Cin (ci fastest), N = Cout
//   A[m, k] = in[n, oy*s - pt + ky, ox*s - pl + kx, ci]   (0 in the padding; pt/pl: top/left pads)
//   B[k, co] = W[co, ci, ky, kx] * scale[co]               (BatchNorm folded at load)
//   out[m, co] = epilogue(C[m, co])  = act(C*scale + bias + residual)   (epilogue.cuh's order)
//
// but the products are taken on rounded inputs and summed in fp32 by the tensor cores:
//   tf32: a, b rounded to 10 mantissa bits (round to nearest, ties away from zero: PTX
//         cvt.rna.tf32.f32; the weights once at load, the activations as they are read
//         into registers). Each product of two tf32 numbers is exact in fp32.
//   fp16: a, b stored as IEEE half (weights converted once at load, activations are fp16
//         tensors: each layer writes its output rounded to fp16, round to nearest even; or,
//         conv2d_mma_f32io, fp32 tensors rounded to fp16 as the kernel gathers them);
//   bf16: the same with bfloat16 (8 mantissa bits, fp32's exponent range).
// Relative input rounding u_p = 2^-11 (tf32, fp16) or 2^-8 (bf16), so against the fp32
// convolution |out - out_fp32| <= (2 u_p + u_p^2) * S + fp32 accumulation error
// (+ u_p |out| for the rounding of a 16-bit output), S = sum_k |a_k b_k|: the bound the
// tests (tests/cuda/test_cuda_emulated.cpp) and kernels/cuda/dev/conv2d_check.cu check.
//
// THE INSTRUCTION. One warp executes
//   tf32:      mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32    D[16x8] = A[16x8]  * B[8x8]  + C
//   fp16/bf16: mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}x2.f32 D[16x8] = A[16x16] * B[16x8] + C
// Every lane holds a fixed part ("fragment") of A, B, C and D in registers. With
//   g = lane / 4 ("groupID")  and  t = lane % 4 ("threadID_in_group"), as the PTX ISA
//   ("Matrix fragments for mma.m16n8k8 / m16n8k16") defines them:
//
//   m16n8k8 .tf32 — A: 4 x .b32 (one tf32 each), B: 2 x .b32, C/D: 4 x .f32
//     a0: (row g,   col t)    a1: (row g+8, col t)    a2: (row g, col t+4)    a3: (row g+8, col t+4)
//     b0: (row t,   col g)    b1: (row t+4, col g)
//   m16n8k16 .f16/.bf16 — A: 4 x .b32 (two 16-bit values each, the lower column in the
//   low half), B: 2 x .b32, C/D: 4 x .f32
//     a0: (g,   2t..2t+1)     a1: (g+8, 2t..2t+1)     a2: (g, 2t+8..2t+9)     a3: (g+8, 2t+8..2t+9)
//     b0: (rows 2t..2t+1, col g)                      b1: (rows 2t+8..2t+9, col g)
//   C and D (both shapes):
//     c0: (g, 2t)   c1: (g, 2t+1)   c2: (g+8, 2t)   c3: (g+8, 2t+1)
// (mma_a_coord / mma_b_coord / mma_c_coord below write these tables as code; the host
// SIMT emulator has its own copy, and a test holds both against the PTX tables.)
//
// THE TILING, from the outside in:
// 1. Block tile BM x BN of C, walked along K in steps of BK = 64 bytes of one input row:
//    16 tf32 values or 32 fp16/bf16 values. Shapes (MmaTileShape):
//       k128x128: 8 warps (2 x 4), warp tile 64 x 32 (4 x 4 mma tiles of 16 x 8)
//       k64x64:   4 warps (2 x 2), warp tile 32 x 32 (2 x 4)
//       k32x32:   4 warps (2 x 2), warp tile 16 x 16 (1 x 2), with split-K for small M
//    chosen by plan_conv2d_mma with the thresholds of plan_conv2d.
// 2. Shared memory, both operands k-contiguous: As[BM][LDS], Bs[BN][LDS] (B is stored
//    transposed: the weights are packed [Cout][ldk], see pack_conv_weights_mma), with a
//    row pitch LDS of 80 bytes (64 bytes of data + 16 of padding). A fragment load of the
//    warp then touches, for each register, words g*20 + t (+ const): the 32 lanes hit 32
//    different banks (20 g mod 32 = 0,20,8,28,16,4,24,12 plus t = 0..3) — conflict free
//    without swizzling, and every row start stays 16-byte aligned for cp.async.
//    Two stages: 2 * (BM + BN) * 80 bytes (40 KiB for 128 x 128).
// 3. cp.async double buffering exactly as in conv2d_implicit_gemm.cuh (issue t+1, commit,
//    wait_group 1, barrier, compute t, barrier); zero-fill copies for padding taps, rows
//    past M, taps past K and columns past N.
//    The TF32 drop-in (conv2d_tf32: the arguments of conv2d(), fp32 tensors, the fp32
//    kernel's weight packing [K][N]) reads B as Bs[BK][BN + 8] instead (pitch 8 words mod
//    32: the b0/b1 reads, words (k + t) * pitch + g, are conflict free as well) and rounds
//    B with cvt.rna as it reads it: so the CUDA backend can switch a convolution to TF32
//    without repacking its weights.
//    The FP16 / BF16 drop-in (conv2d_mma_f32io, what the CUDA backend runs for fp16 /
//    bf16): the same [K][N] packing converted once at load to the 16-bit type
//    (convert_packed_weights), Bs[BK][BN + 8] of 16-bit values; fp32 activations (input,
//    output, Epilogue::residual as in conv2d()), the input read into registers one tile
//    ahead and rounded to 16 bits (round to nearest even) as it is stored into As; the
//    output is not rounded (the next conv rounds its input). Why fp32 activations: the
//    backend's calls carry untyped float buffers (backend/cuda.hpp, "Precision").
// 4. Gathers of A: kPointwise (1x1, pad 0) and kVec4 (any k x k) copy 16 bytes = 4 tf32
//    or 8 fp16 channels of one pixel (Cin % 4 resp. % 8 == 0, input 16-byte aligned);
//    kScalar copies one element per load (plain loads into shared memory: cp.async has no
//    2-byte form), e.g. the 7x7 stem with Cin = 3. B: always 16-byte copies (the packed
//    rows are padded with zeros to ldk, a multiple of 16 bytes).
// 5. Per BK step each warp loads its A fragments (MI of them) and B fragments (NI) from
//    shared memory (tf32: cvt.rna of each A element; B was rounded at load) and issues
//    MI x NI mma.sync into MI x NI x 4 fp32 accumulators per lane.
// 6. Epilogue from the C fragment: lane (g, t) owns columns 2t, 2t+1 of rows g and g+8 of
//    each mma tile: scale, bias, residual (read in the storage type), ReLU / leaky ReLU in
//    fp32 (epilogue.cuh's order), rounded once to the storage type; pairs of columns
//    stored together when N is even. Split-K: raw fp32 partial sums to a workspace
//    [S][M][N], then mma_reduce_body sums the slices in order and applies the epilogue
//    (deterministic, no atomics).
//
// CORRECTNESS WITHOUT A GPU: the block body conv2d_mma_block<Tile, Prec, Gather>(Ctx&,
// args) is a template over the execution context (simt.cuh). On the GPU, mma_sync and
// the tf32 conversion are inline PTX; on the host, tests/cuda/simt_emulator.hpp runs the
// body for every thread and models mma.sync per warp: it gathers the 32 lanes' fragment
// registers by the PTX layout, computes D = A*B + C (products exact, the sum of the k
// products and C rounded once to fp32) and scatters D back into the lanes' registers.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "conv2d_implicit_gemm.cuh"  // ConvPlan, ConvTile, ConvGather, plan_conv2d's checks
#include "epilogue.cuh"
#include "simt.cuh"
#include "softbio/core/error.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "check.cuh"
#endif

namespace softbio::cuda {

// ---- precisions ----------------------------------------------------------------------------

enum class MmaPrecision : int { kTf32 = 1, kFp16 = 2, kBf16 = 3 };

inline const char* precision_name(MmaPrecision p) {
    return p == MmaPrecision::kTf32 ? "tf32" : p == MmaPrecision::kFp16 ? "fp16" : "bf16";
}

SOFTBIO_HOST_DEVICE uint32_t f32_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
#endif
}
SOFTBIO_HOST_DEVICE float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x;
    std::memcpy(&x, &u, 4);
    return x;
#endif
}

/// x rounded to tf32 (10 explicit mantissa bits, fp32's exponent), round to nearest with
/// ties away from zero, as the fp32 bit pattern with the low 13 bits zero: PTX
/// cvt.rna.tf32.f32. Inf stays Inf, NaN stays NaN.
SOFTBIO_HOST_DEVICE uint32_t tf32_bits(float x) {
#if defined(__CUDA_ARCH__)
    uint32_t u;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
    return u;
#else
    uint32_t u = f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x007fffffu) ? 0x7fffffffu : u;  // NaN, Inf
    return (u + 0x1000u) & 0xffffe000u;  // add half of the dropped ulp to the magnitude: ties away
#endif
}
SOFTBIO_HOST_DEVICE float round_tf32(float x) { return bits_f32(tf32_bits(x)); }

/// IEEE binary16 bits of x, round to nearest even (overflow to Inf, subnormals kept).
SOFTBIO_HOST_DEVICE uint16_t f32_to_f16_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __half_as_ushort(__float2half_rn(f));
#else
    const uint32_t x = f32_bits(f);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN (quiet)
    if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520: Inf
    if (ax >= 0x38800000u) {                                  // normal half (>= 2^-14)
        const uint32_t r = ax - (112u << 23);                 // rebias 127 -> 15
        return uint16_t(sign | ((r + 0x0fffu + ((r >> 13) & 1u)) >> 13));
    }
    // subnormal half: units of 2^-24
    const int e = int(ax >> 23);
    const int shift = 126 - e;  // >= 14
    if (shift > 24) return sign;
    const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
#endif
}
SOFTBIO_HOST_DEVICE float f16_bits_to_f32(uint16_t h) {
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        const float v = float(m) * (1.0f / 16777216.0f);  // m * 2^-24, exact
        return sign ? -v : v;
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
#endif
}
/// bfloat16 bits of x, round to nearest even; NaN stays NaN.
SOFTBIO_HOST_DEVICE uint16_t f32_to_bf16_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
}
SOFTBIO_HOST_DEVICE float bf16_bits_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

/// The three precisions as types: storage, mma shape, shared-memory geometry.
struct MmaTf32 {
    using Act = float;                       // storage of activations and packed weights
    static constexpr MmaPrecision kId = MmaPrecision::kTf32;
    static constexpr int kMmaK = 8;          // m16n8k8
    static constexpr int kBK = 16;           // K per block step (64 bytes)
    static constexpr int kLds = 20;          // shared-memory row pitch in elements (80 bytes)
    static constexpr int kVec = 4;           // elements per 16-byte copy
    SOFTBIO_HOST_DEVICE static float to_float(float v) { return v; }
    SOFTBIO_HOST_DEVICE static float from_float(float v) { return v; }
    /// What the tensor core multiplies when given this stored value (tests: pre-rounding).
    SOFTBIO_HOST_DEVICE static float operand(float v) { return round_tf32(v); }
};
struct MmaFp16 {
    using Act = uint16_t;
    static constexpr MmaPrecision kId = MmaPrecision::kFp16;
    static constexpr int kMmaK = 16;  // m16n8k16
    static constexpr int kBK = 32;
    static constexpr int kLds = 40;
    static constexpr int kVec = 8;
    SOFTBIO_HOST_DEVICE static float to_float(uint16_t v) { return f16_bits_to_f32(v); }
    SOFTBIO_HOST_DEVICE static uint16_t from_float(float v) { return f32_to_f16_bits(v); }
    SOFTBIO_HOST_DEVICE static float operand(uint16_t v) { return f16_bits_to_f32(v); }
};
struct MmaBf16 {
    using Act = uint16_t;
    static constexpr MmaPrecision kId = MmaPrecision::kBf16;
    static constexpr int kMmaK = 16;
    static constexpr int kBK = 32;
    static constexpr int kLds = 40;
    static constexpr int kVec = 8;
    SOFTBIO_HOST_DEVICE static float to_float(uint16_t v) { return bf16_bits_to_f32(v); }
    SOFTBIO_HOST_DEVICE static uint16_t from_float(float v) { return f32_to_bf16_bits(v); }
    SOFTBIO_HOST_DEVICE static float operand(uint16_t v) { return bf16_bits_to_f32(v); }
};

/// Call f(PrecisionType{}) for the runtime precision.
template <class F>
void with_mma_precision(MmaPrecision p, F&& f) {
    switch (p) {
        case MmaPrecision::kTf32: f(MmaTf32{}); break;
        case MmaPrecision::kFp16: f(MmaFp16{}); break;
        default: f(MmaBf16{}); break;
    }
}

/// Relative rounding of one input (half an ulp at 1): 2^-11 for tf32 and fp16, 2^-8 for bf16.
inline double mma_unit_roundoff(MmaPrecision p) { return p == MmaPrecision::kBf16 ? 1.0 / 256 : 1.0 / 2048; }

// ---- fragment layouts (the PTX ISA tables in the file comment, as code) -------------------

struct RowCol {
    int row, col;
};
/// Element e of lane `lane`'s A fragment: tf32 (e = register 0..3) or 16-bit (e = 0..7:
/// register e/2, low half when e is even).
SOFTBIO_HOST_DEVICE RowCol mma_a_coord(MmaPrecision p, int lane, int e) {
    const int g = lane >> 2, t = lane & 3;
    if (p == MmaPrecision::kTf32) return {g + (e & 1) * 8, t + (e >> 1) * 4};
    const int reg = e >> 1;
    return {g + (reg & 1) * 8, 2 * t + (e & 1) + (reg >> 1) * 8};
}
/// Element e of B: tf32 e = 0..1, 16-bit e = 0..3 (register e/2).
SOFTBIO_HOST_DEVICE RowCol mma_b_coord(MmaPrecision p, int lane, int e) {
    const int g = lane >> 2, t = lane & 3;
    if (p == MmaPrecision::kTf32) return {t + e * 4, g};
    return {2 * t + (e & 1) + (e >> 1) * 8, g};
}
/// Element e (0..3) of C and D.
SOFTBIO_HOST_DEVICE RowCol mma_c_coord(int lane, int e) {
    const int g = lane >> 2, t = lane & 3;
    return {g + (e >> 1) * 8, 2 * t + (e & 1)};
}

// ---- the warp-wide mma ------------------------------------------------------------------------

/// acc = A * B + acc for the warp (every lane calls it with its fragments). Host
/// emulator: Ctx::mma. GPU: the DeviceCtx overload below (inline PTX).
template <class P, class Ctx>
SOFTBIO_KERNEL_BODY void mma_sync(Ctx& c, float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    c.mma(P::kId, acc, a, b);
}

#if defined(__CUDACC__)
template <class P>
__device__ __forceinline__ void mma_sync(DeviceCtx&, float (&acc)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (P::kId == MmaPrecision::kTf32) {
        asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else if constexpr (P::kId == MmaPrecision::kFp16) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#else
    (void)acc, (void)a, (void)b;
#endif
}
#endif

SOFTBIO_HOST_DEVICE float2 make_f2(float x, float y) {
    float2 v;
    v.x = x, v.y = y;
    return v;
}

/// A 32-bit word of shared memory at p (two 16-bit values, or one float).
template <class T>
SOFTBIO_HOST_DEVICE uint32_t ld_word(const T* p) {
#if defined(__CUDA_ARCH__)
    return *reinterpret_cast<const uint32_t*>(p);
#else
    uint32_t u;
    std::memcpy(&u, p, 4);
    return u;
#endif
}

// ---- tile shapes and planning -------------------------------------------------------------

template <int BM_, int BN_, int WM_, int WN_>
struct MmaTileShape {
    static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_;
    static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN, kWarps = kWarpsM * kWarpsN;
    static constexpr int kThreads = 32 * kWarps;
    static constexpr int MI = WM / 16, NI = WN / 8;  // mma tiles per warp
    static constexpr int kRowPitchBytes = 80;        // 64 bytes of K + 16 of padding
    static constexpr size_t kSmemBytes = 2 * size_t(BM + BN) * kRowPitchBytes;
    static_assert(BM % WM == 0 && BN % WN == 0 && WM % 16 == 0 && WN % 8 == 0, "mma tile shape");
    static_assert((BM * 4) % kThreads == 0 && (BN * 4) % kThreads == 0, "16-byte loaders");
    static_assert(kThreads % 32 == 0 && kSmemBytes <= 48 * 1024, "mma tile resources");
};
using MmaTile128 = MmaTileShape<128, 128, 64, 32>;
using MmaTile64 = MmaTileShape<64, 64, 32, 32>;
using MmaTile32 = MmaTileShape<32, 32, 16, 16>;

/// Call f(TileShape{}) for the runtime tile id (same ids as the fp32 kernel's ConvTile).
template <class F>
void with_mma_tile(ConvTile t, F&& f) {
    switch (t) {
        case ConvTile::k128x128: f(MmaTile128{}); break;
        case ConvTile::k64x64: f(MmaTile64{}); break;
        default: f(MmaTile32{}); break;
    }
}

/// Row length of the packed weights [Cout][ldk]: K rounded up to 16 bytes.
inline int mma_ldk(int k, MmaPrecision p) {
    const int v = p == MmaPrecision::kTf32 ? 4 : 8;
    return (k + v - 1) / v * v;
}

/// Plan a tensor-core convolution: the tile and split-K rules of plan_conv2d (same
/// thresholds, same ConvPlan), with the mma tiles' sizes and BK.
inline ConvPlan plan_conv2d_mma(const Conv2dParams& p, MmaPrecision prec, int sm_count, int force_tile = -1,
                                int force_splits = 0) {
    (void)plan_conv2d(p, sm_count, 2, 1);  // the parameter and size checks (throws ShapeError)
    const long long m = (long long)p.gemm_m(), n = p.out_c;
    const int sms = sm_count > 0 ? sm_count : 1;
    auto tiles = [&](int bm, int bn) { return ceil_div(m, bm) * ceil_div(n, bn); };
    ConvPlan plan;
    if (force_tile >= 0) plan.tile = ConvTile(force_tile);
    else if (n >= 128 && tiles(128, 128) >= sms) plan.tile = ConvTile::k128x128;
    else if (tiles(64, 64) >= 2LL * sms) plan.tile = ConvTile::k64x64;
    else plan.tile = ConvTile::k32x32;
    with_mma_tile(plan.tile, [&](auto shape) {
        using T = decltype(shape);
        plan.bm = T::BM, plan.bn = T::BN, plan.threads = T::kThreads, plan.smem_bytes = T::kSmemBytes;
    });
    plan.bk = prec == MmaPrecision::kTf32 ? MmaTf32::kBK : MmaFp16::kBK;
    plan.m_tiles = ceil_div(m, plan.bm);
    plan.n_tiles = int(ceil_div(n, plan.bn));
    plan.ktiles = int(ceil_div(p.gemm_k(), plan.bk));
    long long splits = 1;
    if (force_splits > 0) {
        splits = force_splits;
    } else if (plan.tile == ConvTile::k32x32) {
        const long long base = plan.m_tiles * plan.n_tiles, target = (long long)kSmallTileBlocksPerSm * sms;
        if (base < target) {
            const long long most = plan.ktiles / kMinKtilesPerSplit;
            splits = ceil_div(target, base);
            if (splits > most) splits = most;
            if (splits < 1) splits = 1;
        }
    }
    if (splits > plan.ktiles) splits = plan.ktiles;
    if (splits > 65535) splits = 65535;
    plan.ktiles_per_split = int(ceil_div(plan.ktiles, splits));
    plan.splits = int(ceil_div(plan.ktiles, plan.ktiles_per_split));
    if (plan.n_tiles > 65535) throw ShapeError("cuda conv2d (tensor cores): too many output channels (" + std::to_string(n) + ")");
    plan.workspace_floats = plan.splits > 1 ? size_t(plan.splits) * size_t(m) * size_t(n) : 0;
    return plan;
}

/// Floats of device workspace conv2d_mma needs (split-K partial sums; 0 without split-K).
inline size_t conv2d_mma_workspace_floats(const Conv2dParams& p, MmaPrecision prec, int sm_count) {
    return plan_conv2d_mma(p, prec, sm_count).workspace_floats;
}

// ---- weights and activations on the host (load time, tests) --------------------------------

/// PyTorch's [Cout, Cin, kh, kw] (times out_scale[co] when given: the folded BatchNorm)
/// -> [Cout][ldk] in the storage type, k = (ky*kw + kx)*Cin + ci, zeros from K to ldk;
/// tf32 weights rounded to tf32 here, once.
template <class P>
void pack_conv_weights_mma(const Conv2dParams& p, const float* w_oihw, const float* out_scale, typename P::Act* packed) {
    const int k_n = p.gemm_k(), ldk = mma_ldk(k_n, P::kId), kh = p.kernel_h, kw = p.kernel_w;
    for (int co = 0; co < p.out_c; ++co) {
        const float s = out_scale ? out_scale[co] : 1.0f;
        typename P::Act* row = packed + size_t(co) * size_t(ldk);
        for (int k = k_n; k < ldk; ++k) row[k] = typename P::Act(0);
        for (int ci = 0; ci < p.in_c; ++ci)
            for (int ky = 0; ky < kh; ++ky)
                for (int kx = 0; kx < kw; ++kx) {
                    const float v = w_oihw[((size_t(co) * p.in_c + ci) * kh + ky) * kw + kx] * s;
                    const float r = P::kId == MmaPrecision::kTf32 ? round_tf32(v) : v;
                    row[(ky * kw + kx) * p.in_c + ci] = P::from_float(r);
                }
    }
}
/// Elements of pack_conv_weights_mma's output.
inline size_t mma_packed_weights_count(const Conv2dParams& p, MmaPrecision prec) {
    return size_t(p.out_c) * size_t(mma_ldk(p.gemm_k(), prec));
}

// ---- the kernel body ---------------------------------------------------------------------

/// The storage of the activations (input, output, residual) a kernel reads and writes:
/// the precision's own (Act) or, with F32IO (fp16 / bf16 only: the CUDA backend's 16-bit
/// path, conv2d_mma_f32io), fp32 tensors whose values are rounded to the 16-bit type as
/// they are gathered into shared memory.
template <class P, bool F32IO>
using MmaIo = std::conditional_t<F32IO, float, typename P::Act>;

/// Kernel arguments (by value; device pointers). `e` gives scale / bias / activation; its
/// residual must be null: the residual is `residual`, in the activations' storage type.
/// Io: the activations' storage; W: the weights' (the precision's Act).
template <class Io, class W = Io>
struct MmaConvArgs {
    const Io* in = nullptr;         // NHWC [batch, in_h, in_w, in_c]
    const W* w = nullptr;           // packed [n][ldk], or [K][N] (w_kn)
    Io* out = nullptr;              // [M, N] (when !partial)
    float* ws = nullptr;            // split-K partial sums [splits][M][N] (when partial)
    const Io* residual = nullptr;   // [M, N] or null
    Epilogue e;
    int in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0;
    int kernel_h = 1, kernel_w = 1, stride = 1, pad_top = 0, pad_left = 0;
    int m = 0, n = 0, k = 0, ldk = 0;
    int ktiles = 0, ktiles_per_split = 0;
    bool w_kn = false;     // w is the [K][N] packing (pack_conv_weights' layout; tf32: the fp32 weights, rounded
                           // by cvt.rna as read; fp16 / bf16: converted once at load, convert_packed_weights)
    bool bvec = false;     // w_kn: N % (16 bytes) == 0 and w 16-byte aligned (16-byte B copies, else per element)
    bool pair = false;     // N even: two columns per store (8-byte fp32 / 4-byte 16-bit)
    bool partial = false;  // split-K: raw sums to ws + blockIdx.z * M * N
};

/// A stored activation as fp32 (the residual): fp32 as it is, 16-bit through P.
template <class P>
SOFTBIO_HOST_DEVICE float io_to_float(float v) {
    return v;
}
template <class P>
SOFTBIO_HOST_DEVICE float io_to_float(uint16_t v) {
    return P::to_float(v);
}

/// y through scale, bias, residual (stored as R: the activations' storage) and the
/// activation, in fp32.
template <class P, class R, class Ctx>
SOFTBIO_KERNEL_BODY float mma_epilogue_one(Ctx& c, const Epilogue& e, const R* residual, float y, int col, size_t index) {
    if (e.scale) y = y * c.ld(e.scale + col);
    if (e.bias) y = y + c.ld(e.bias + col);
    if (residual) y = y + io_to_float<P>(c.ld(residual + index));
    return activate(e, y);
}

/// Two 16-bit values as one 32-bit fragment register (lo: the lower k).
SOFTBIO_HOST_DEVICE uint32_t pack16(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

/// Store 8 16-bit values (4 words) to 16-byte aligned shared memory at p: one 16-byte store.
template <class Act>
SOFTBIO_HOST_DEVICE void st_shared_x4(Act* p, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
#if defined(__CUDA_ARCH__)
    *reinterpret_cast<uint4*>(p) = make_uint4(w0, w1, w2, w3);
#else
    const uint32_t w[4] = {w0, w1, w2, w3};
    std::memcpy(static_cast<void*>(p), w, 16);
#endif
}

/// KN: the weights in the [K][N] packing (the fp32 kernel's, pack_conv_weights; for fp16 /
/// bf16 that packing converted once at load) instead of [N][ldk]; B then sits in shared
/// memory as Bs[BK][BN + 8]: tf32 rounds it with cvt.rna as read (b0/b1: words
/// (k + t) * pitch + g, pitch = 8 words mod 32: 32 different banks); 16-bit forms each
/// register from two rows, (2t, 2t+1) and (2t+8, 2t+9) of column g (pitch (BN + 8) / 2
/// words, twice which is 8 mod 32 for BN = 32, 64, 128: rows 2t hit banks 8t + g/2, two
/// lanes per word: conflict free).
/// F32IO (fp16 / bf16 only): the activations are fp32 tensors (input, output, residual);
/// A is read from global memory into registers (two 16-byte loads per 8 channels, or one
/// float per element for the scalar gather) while the previous tile is multiplied, rounded
/// to the 16-bit type (round to nearest even) and stored into the same 16-bit As after
/// it; the output is written in fp32 (not rounded: the next layer rounds its own input).
template <class T, class P, ConvGather G, bool KN = false, bool F32IO = false, class Ctx>
SOFTBIO_KERNEL_BODY void conv2d_mma_block(Ctx& c, const MmaConvArgs<MmaIo<P, F32IO>, typename P::Act>& a) {
    using Act = typename P::Act;
    using Io = MmaIo<P, F32IO>;
    constexpr bool kTf32 = P::kId == MmaPrecision::kTf32;
    constexpr int BM = T::BM, BN = T::BN, NT = T::kThreads, MI = T::MI, NI = T::NI;
    constexpr int BK = P::kBK, LDS = P::kLds, VE = P::kVec;
    constexpr int CHUNKS = BK / VE;  // 16-byte chunks per row of a stage (4)
    constexpr bool kVecA = G != ConvGather::kScalar;
    constexpr int A_PER = kVecA ? BM * CHUNKS / NT : BM * BK / NT;
    constexpr int A_ROW_STEP = kVecA ? NT / CHUNKS : NT / BK;
    constexpr int B_PER = BN * CHUNKS / NT;
    static_assert(NT % BK == 0 && (BM * BK) % NT == 0, "scalar A loader");
    constexpr int LDB = BN + 8;  // KN: pitch of Bs[BK][LDB]
    static_assert(!KN || (BK * LDB <= BN * LDS && (BK * BN / VE) % NT == 0 && (BK * BN) % NT == 0 && BN % 32 == 0),
                  "[K][N] weights: within the stage");
    static_assert(!F32IO || (!kTf32 && KN), "fp32 activations: fp16 / bf16 with [K][N] weights");

    const int tid = c.tid();
    const int m0 = c.bid_x() * BM, n0 = c.bid_y() * BN, split = c.bid_z();
    const int kt_begin = split * a.ktiles_per_split;
    const int kt_end = imin(a.ktiles, kt_begin + a.ktiles_per_split);
    const int ntiles = kt_end - kt_begin;

    Act* const As = reinterpret_cast<Act*>(c.smem());  // [2][BM][LDS]
    Act* const Bs = As + 2 * BM * LDS;                  // [2][BN][LDS]

    // ---- A loader state (as in conv2d_implicit_gemm.cuh) ----
    const int a_kk = kVecA ? (tid % CHUNKS) * VE : tid % BK;
    const int a_r0 = kVecA ? tid / CHUNKS : tid / BK;
    int a_img[A_PER], a_iy0[A_PER], a_ix0[A_PER];
    const int ohw = a.out_h * a.out_w;
    SOFTBIO_UNROLL
    for (int e = 0; e < A_PER; ++e) {
        const int m = m0 + a_r0 + e * A_ROW_STEP;
        if (m < a.m) {
            const int nimg = m / ohw, rem = m - nimg * ohw;
            const int oy = rem / a.out_w, ox = rem - oy * a.out_w;
            a_img[e] = nimg * a.in_h;
            a_iy0[e] = oy * a.stride - a.pad_top;
            a_ix0[e] = ox * a.stride - a.pad_left;
        } else {  // rows past M: every tap is "padding"
            a_img[e] = 0;
            a_iy0[e] = -(1 << 29);
            a_ix0[e] = -(1 << 29);
        }
    }
    int t_ky, t_kx, t_ci;  // tap of k = kt * BK + a_kk, advanced by BK per tile
    {
        const int k = kt_begin * BK + a_kk;
        const int tap = k / a.in_c;
        t_ci = k - tap * a.in_c;
        t_ky = tap / a.kernel_w;
        t_kx = tap - t_ky * a.kernel_w;
    }
    auto advance_tap = [&]() {
        t_ci += BK;
        while (t_ci >= a.in_c) {
            t_ci -= a.in_c;
            if (++t_kx == a.kernel_w) t_kx = 0, ++t_ky;
        }
    };
    /// Where element e's gather reads for tile kt (null: a padding tap, a row past M or k past K).
    auto a_source = [&](int kt, int e) -> const Io* {
        if (G == ConvGather::kPointwise) {
            const int k = kt * BK + a_kk;
            return k < a.k && a_iy0[e] >= 0 ? a.in + (size_t(a_img[e] + a_iy0[e]) * a.in_w + a_ix0[e]) * a.in_c + k
                                            : nullptr;
        }
        const int iy = a_iy0[e] + t_ky, ix = a_ix0[e] + t_kx;
        const bool ok = t_ky < a.kernel_h && unsigned(iy) < unsigned(a.in_h) && unsigned(ix) < unsigned(a.in_w);
        return ok ? a.in + (size_t(a_img[e] + iy) * a.in_w + ix) * a.in_c + t_ci : nullptr;
    };

    // A in the storage type: cp.async (16 bytes) or a plain load per element, into stage `stage`.
    auto load_a = [&](int kt, int stage) {
        Act* as = As + stage * (BM * LDS);
        SOFTBIO_UNROLL
        for (int e = 0; e < A_PER; ++e) {
            const Io* src = a_source(kt, e);
            Act* dst = as + (a_r0 + e * A_ROW_STEP) * LDS + a_kk;
            if constexpr (F32IO) {
                (void)src, (void)dst;  // fp32 activations go through fetch_a32 / store_a32
            } else if (kVecA) {
                c.cp_async_f128(reinterpret_cast<float*>(dst), reinterpret_cast<const float*>(src ? src : a.in), src != nullptr);
            } else {
                *dst = src ? c.ld(src) : Act(0);  // no 2-byte cp.async: a plain load
            }
        }
        if (G != ConvGather::kPointwise) advance_tap();
    };

    // F32IO: A (fp32) into registers for tile kt, then (after the current tile's mma) rounded
    // into stage `stage` of As.
    constexpr int kRegV = F32IO && kVecA ? A_PER : 1, kRegS = F32IO && !kVecA ? A_PER : 1;
    float4 ra_v[kRegV][2];
    float ra_s[kRegS];
    (void)ra_v, (void)ra_s;
    auto fetch_a32 = [&](int kt) {
        if constexpr (F32IO) {
            SOFTBIO_UNROLL
            for (int e = 0; e < A_PER; ++e) {
                const Io* src = a_source(kt, e);
                if constexpr (kVecA) {
                    ra_v[e][0] = src ? c.ld(reinterpret_cast<const float4*>(src)) : f4_splat(0.0f);
                    ra_v[e][1] = src ? c.ld(reinterpret_cast<const float4*>(src) + 1) : f4_splat(0.0f);
                } else {
                    ra_s[e] = src ? c.ld(src) : 0.0f;
                }
            }
            if (G != ConvGather::kPointwise) advance_tap();
        } else {
            (void)kt;
        }
    };
    auto store_a32 = [&](int stage) {
        if constexpr (F32IO) {
            Act* as = As + stage * (BM * LDS);
            SOFTBIO_UNROLL
            for (int e = 0; e < A_PER; ++e) {
                Act* dst = as + (a_r0 + e * A_ROW_STEP) * LDS + a_kk;
                if constexpr (kVecA) {
                    const float4 lo = ra_v[e][0], hi = ra_v[e][1];
                    st_shared_x4(dst, pack16(P::from_float(lo.x), P::from_float(lo.y)),
                                 pack16(P::from_float(lo.z), P::from_float(lo.w)),
                                 pack16(P::from_float(hi.x), P::from_float(hi.y)),
                                 pack16(P::from_float(hi.z), P::from_float(hi.w)));
                } else {
                    *dst = P::from_float(ra_s[e]);
                }
            }
        } else {
            (void)stage;
        }
    };

    // B: the packed weights of tile kt into stage `stage`.
    auto load_b = [&](int kt, int stage) {
        Act* bs = Bs + stage * (BN * LDS);
        if constexpr (KN) {  // BK rows of the [K][N] packing -> Bs[BK][LDB]
            if (a.bvec) {
                SOFTBIO_UNROLL
                for (int e = 0; e < BK * BN / VE / NT; ++e) {
                    const int l = tid + e * NT;
                    const int kr = l / (BN / VE), cq = (l % (BN / VE)) * VE;
                    const int k = kt * BK + kr, col = n0 + cq;
                    const bool ok = k < a.k && col < a.n;  // N % VE == 0: a chunk is all in or all out
                    c.cp_async_f128(reinterpret_cast<float*>(bs + kr * LDB + cq),
                                    reinterpret_cast<const float*>(ok ? a.w + size_t(k) * a.n + col : a.w), ok);
                }
            } else {
                SOFTBIO_UNROLL
                for (int e = 0; e < BK * BN / NT; ++e) {
                    const int l = tid + e * NT;
                    const int kr = l / BN, cc = l % BN;
                    const int k = kt * BK + kr, col = n0 + cc;
                    const bool ok = k < a.k && col < a.n;
                    if constexpr (kTf32)
                        c.cp_async_f32(reinterpret_cast<float*>(bs + kr * LDB + cc),
                                       reinterpret_cast<const float*>(ok ? a.w + size_t(k) * a.n + col : a.w), ok);
                    else
                        bs[kr * LDB + cc] = ok ? c.ld(a.w + size_t(k) * a.n + col) : Act(0);  // no 2-byte cp.async
                }
            }
        } else {  // BN rows (output channels) of BK packed weights, 16-byte copies.
            SOFTBIO_UNROLL
            for (int e = 0; e < B_PER; ++e) {
                const int l = tid + e * NT;
                const int r = l / CHUNKS, q = (l % CHUNKS) * VE;
                const int col = n0 + r, k = kt * BK + q;
                const bool ok = col < a.n && k < a.ldk;
                c.cp_async_f128(reinterpret_cast<float*>(bs + r * LDS + q),
                                reinterpret_cast<const float*>(ok ? a.w + size_t(col) * a.ldk + k : a.w), ok);
            }
        }
    };

    // ---- compute: MI x NI mma tiles per warp ----
    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t4 = lane & 3;
    const int wm0 = (warp / T::kWarpsN) * T::WM, wn0 = (warp % T::kWarpsN) * T::WN;
    float acc[MI][NI][4];
    SOFTBIO_UNROLL
    for (int i = 0; i < MI; ++i)
        SOFTBIO_UNROLL
        for (int j = 0; j < NI; ++j)
            SOFTBIO_UNROLL
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    auto compute_tile = [&](int stage) {
        const Act* as = As + stage * (BM * LDS) + (wm0 + g) * LDS;  // row g of the warp's first mma tile
        const Act* bs = KN ? Bs + stage * (BN * LDS) + wn0 + g          // KN: Bs[k][n], column g
                           : Bs + stage * (BN * LDS) + (wn0 + g) * LDS;  // column g of the warp's first n tile
        SOFTBIO_UNROLL
        for (int kk = 0; kk < BK; kk += P::kMmaK) {
            uint32_t af[MI][4], bf[NI][2];
            SOFTBIO_UNROLL
            for (int i = 0; i < MI; ++i) {
                const Act* p = as + i * 16 * LDS + kk;
                if constexpr (kTf32) {  // a0 (g,t) a1 (g+8,t) a2 (g,t+4) a3 (g+8,t+4)
                    af[i][0] = tf32_bits(p[t4]);
                    af[i][1] = tf32_bits(p[8 * LDS + t4]);
                    af[i][2] = tf32_bits(p[t4 + 4]);
                    af[i][3] = tf32_bits(p[8 * LDS + t4 + 4]);
                } else {  // a0 (g,2t..) a1 (g+8,2t..) a2 (g,2t+8..) a3 (g+8,2t+8..)
                    af[i][0] = ld_word(p + 2 * t4);
                    af[i][1] = ld_word(p + 8 * LDS + 2 * t4);
                    af[i][2] = ld_word(p + 2 * t4 + 8);
                    af[i][3] = ld_word(p + 8 * LDS + 2 * t4 + 8);
                }
            }
            SOFTBIO_UNROLL
            for (int j = 0; j < NI; ++j) {
                if constexpr (KN) {
                    const Act* p = bs + j * 8 + kk * LDB;
                    if constexpr (kTf32) {  // b0 (t,g) b1 (t+4,g) from Bs[k][n], rounded here
                        bf[j][0] = tf32_bits(p[t4 * LDB]);
                        bf[j][1] = tf32_bits(p[(t4 + 4) * LDB]);
                    } else {  // b0 (2t..2t+1, g) b1 (2t+8..2t+9, g): two rows each
                        bf[j][0] = pack16(p[2 * t4 * LDB], p[(2 * t4 + 1) * LDB]);
                        bf[j][1] = pack16(p[(2 * t4 + 8) * LDB], p[(2 * t4 + 9) * LDB]);
                    }
                } else {
                    const Act* p = bs + j * 8 * LDS + kk;
                    if constexpr (kTf32) {  // b0 (t,g) b1 (t+4,g); rounded at load
                        bf[j][0] = ld_word(p + t4);
                        bf[j][1] = ld_word(p + t4 + 4);
                    } else {  // b0 (2t..2t+1, g) b1 (2t+8..2t+9, g)
                        bf[j][0] = ld_word(p + 2 * t4);
                        bf[j][1] = ld_word(p + 2 * t4 + 8);
                    }
                }
            }
            SOFTBIO_UNROLL
            for (int i = 0; i < MI; ++i)
                SOFTBIO_UNROLL
                for (int j = 0; j < NI; ++j) mma_sync<P>(c, acc[i][j], af[i], bf[j]);
        }
    };

    // ---- the double-buffered main loop (conv2d_implicit_gemm.cuh's) ----
    // F32IO: tile t+1's A is fetched into registers before tile t's mma and stored into
    // stage (t+1)&1 after it: that stage was last read by tile t-1's mma, which every
    // thread finished before the trailing barrier of iteration t-1.
    if constexpr (F32IO) {
        fetch_a32(kt_begin);
        store_a32(0);
    } else {
        load_a(kt_begin, 0);
    }
    load_b(kt_begin, 0);
    c.cp_async_commit();
    for (int t = 0; t < ntiles; ++t) {
        const bool more = t + 1 < ntiles;
        if (more) {
            if constexpr (F32IO) fetch_a32(kt_begin + t + 1);
            else load_a(kt_begin + t + 1, (t + 1) & 1);
            load_b(kt_begin + t + 1, (t + 1) & 1);
        }
        c.cp_async_commit();
        c.template cp_async_wait<1>();
        c.sync();
        compute_tile(t & 1);
        if constexpr (F32IO) {
            if (more) store_a32((t + 1) & 1);
        }
        c.sync();
    }

    // ---- epilogue from the C fragments: (g, 2t..2t+1) and (g+8, 2t..2t+1) of each tile ----
    float* ws = a.ws + (a.partial ? size_t(split) * size_t(a.m) * size_t(a.n) : 0);
    SOFTBIO_UNROLL
    for (int i = 0; i < MI; ++i)
        SOFTBIO_UNROLL
        for (int h = 0; h < 2; ++h) {
            const int row = m0 + wm0 + i * 16 + g + 8 * h;
            if (row >= a.m) continue;
            SOFTBIO_UNROLL
            for (int j = 0; j < NI; ++j) {
                const int col = n0 + wn0 + j * 8 + 2 * t4;
                if (col >= a.n) continue;
                const size_t index = size_t(row) * size_t(a.n) + size_t(col);
                float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                const bool two = col + 1 < a.n;
                if (a.partial) {
                    if (a.pair) c.st(reinterpret_cast<float2*>(ws + index), make_f2(v0, v1));
                    else {
                        c.st(ws + index, v0);
                        if (two) c.st(ws + index + 1, v1);
                    }
                    continue;
                }
                v0 = mma_epilogue_one<P>(c, a.e, a.residual, v0, col, index);
                if (two) v1 = mma_epilogue_one<P>(c, a.e, a.residual, v1, col + 1, index + 1);
                if constexpr (std::is_same<Io, float>::value) {  // fp32 storage: tf32, F32IO
                    if (a.pair) c.st(reinterpret_cast<float2*>(a.out + index), make_f2(v0, v1));
                    else {
                        c.st(a.out + index, v0);
                        if (two) c.st(a.out + index + 1, v1);
                    }
                } else {
                    const Act h0 = P::from_float(v0), h1 = P::from_float(v1);
                    if (a.pair) c.st(reinterpret_cast<uint32_t*>(a.out + index), pack16(h0, h1));
                    else {
                        c.st(a.out + index, h0);
                        if (two) c.st(a.out + index + 1, h1);
                    }
                }
            }
        }
}

// ---- split-K reduction ------------------------------------------------------------------

template <class Act>
struct MmaReduceArgs {
    const float* ws = nullptr;  // [splits][rows][channels]
    Act* out = nullptr;
    const Act* residual = nullptr;
    Epilogue e;  // residual null
    int splits = 1;
    size_t split_stride = 0, rows = 0;
    int channels = 0;
};

/// out[m, c] = epilogue(sum_s ws[s][m][c]) in the storage type, slices summed in order.
template <class P, class Ctx>
SOFTBIO_KERNEL_BODY void mma_reduce_body(Ctx& c, const MmaReduceArgs<typename P::Act>& a) {
    const size_t total = a.rows * size_t(a.channels);
    const size_t step = size_t(c.nbid_x()) * size_t(c.ntid());
    for (size_t u = size_t(c.bid_x()) * size_t(c.ntid()) + size_t(c.tid()); u < total; u += step) {
        float y = c.ld(a.ws + u);
        for (int s = 1; s < a.splits; ++s) y = y + c.ld(a.ws + size_t(s) * a.split_stride + u);
        y = mma_epilogue_one<P>(c, a.e, a.residual, y, int(u % size_t(a.channels)), u);
        c.st(a.out + u, P::from_float(y));
    }
}

// ---- launch description (host; shared by the GPU launcher and the emulator tests) -------

/// The precision whose reduction body sums a launch's split-K slices: the precision's own,
/// or with fp32 activations (F32IO) the fp32 one (MmaTf32's: fp32 in, fp32 out, no rounding).
template <class P, bool F32IO>
using MmaReduceP = std::conditional_t<F32IO, MmaTf32, P>;

template <class P, bool F32IO = false>
struct MmaConvLaunch {
    using Io = MmaIo<P, F32IO>;
    ConvPlan plan;
    ConvGather gather = ConvGather::kScalar;
    MmaConvArgs<Io, typename P::Act> args;
    bool reduce = false;
    MmaReduceArgs<Io> reduce_args;
};

namespace detail {
template <class P, bool F32IO>
MmaConvLaunch<P, F32IO> make_mma_launch(const Conv2dParams& p, const MmaIo<P, F32IO>* in, const typename P::Act* w,
                                        MmaIo<P, F32IO>* out, const Epilogue& e_in, const MmaIo<P, F32IO>* residual,
                                        float* workspace, int sm_count, int force_tile, int force_splits, bool weights_kn) {
    using Io = MmaIo<P, F32IO>;
    Epilogue e = e_in;
    if constexpr (std::is_same<Io, float>::value) {
        if (e.residual && !residual) residual = e.residual, e.residual = nullptr;  // fp32 storage: the same thing
    }
    if (e.residual)
        throw Error("cuda conv2d (tensor cores): Epilogue::residual is fp32; pass the residual in the storage type");
    if (!weights_kn && !aligned16(w)) throw Error("cuda conv2d (tensor cores): packed weights must be 16-byte aligned");
    MmaConvLaunch<P, F32IO> L;
    L.plan = plan_conv2d_mma(p, P::kId, sm_count, force_tile, force_splits);
    // A chunk is 16 bytes of the 16-bit type (8 channels) or of fp32 (4): with fp32
    // activations rounded to 16 bits, 8 channels (two 16-byte loads) per chunk.
    const bool vec_in = p.in_c % P::kVec == 0 && aligned16(in);
    L.gather = vec_in && p.is_pointwise() ? ConvGather::kPointwise : vec_in ? ConvGather::kVec4 : ConvGather::kScalar;
    MmaConvArgs<Io, typename P::Act>& a = L.args;
    a.in = in, a.w = w, a.e = e, a.residual = residual;
    a.in_h = p.in_h, a.in_w = p.in_w, a.in_c = p.in_c, a.out_h = p.out_h(), a.out_w = p.out_w();
    const Padding2d pad = p.padding();
    a.kernel_h = p.kernel_h, a.kernel_w = p.kernel_w, a.stride = p.stride, a.pad_top = pad.top, a.pad_left = pad.left;
    a.m = int(p.gemm_m()), a.n = p.out_c, a.k = p.gemm_k(), a.ldk = weights_kn ? p.out_c : mma_ldk(a.k, P::kId);
    a.w_kn = weights_kn, a.bvec = weights_kn && p.out_c % P::kVec == 0 && aligned16(w);
    a.ktiles = L.plan.ktiles, a.ktiles_per_split = L.plan.ktiles_per_split;
    a.partial = L.plan.splits > 1;
    const size_t pair_align = a.partial || std::is_same<Io, float>::value ? 8 : 4;
    auto aligned = [&](const void* q) { return !q || reinterpret_cast<std::uintptr_t>(q) % pair_align == 0; };
    if (a.partial) {
        if (!workspace)
            throw Error("cuda conv2d (tensor cores): split-K plan needs a workspace of " +
                        std::to_string(L.plan.workspace_floats) + " floats (conv2d_mma_workspace_floats) but none was given");
        a.ws = workspace;
        a.pair = a.n % 2 == 0 && aligned(workspace);
        L.reduce = true;
        MmaReduceArgs<Io>& r = L.reduce_args;
        r.ws = workspace, r.out = out, r.residual = residual, r.e = e, r.splits = L.plan.splits;
        r.split_stride = size_t(a.m) * size_t(a.n), r.rows = size_t(a.m), r.channels = a.n;
    } else {
        a.out = out;
        a.pair = a.n % 2 == 0 && aligned(out);
    }
    return L;
}
}  // namespace detail

/// Decide everything for out = epilogue(conv(in, w)) + residual in precision P.
/// `w`: pack_conv_weights_mma's layout (16-byte aligned); `e.residual` must be null
/// (pass the residual, in the storage type, as `residual`); `workspace`: plan's
/// workspace_floats floats when split-K is planned.
/// `weights_kn`: `w` is the [K][N] packing (any alignment; 16-byte copies when aligned and
/// N fills them): for tf32 the fp32 kernel's (pack_conv_weights), and then
/// Epilogue::residual (fp32) may be used: the drop-in for conv2d().
template <class P>
MmaConvLaunch<P> make_mma_conv_launch(const Conv2dParams& p, const typename P::Act* in, const typename P::Act* w,
                                      typename P::Act* out, const Epilogue& e_in, const typename P::Act* residual,
                                      float* workspace, int sm_count, int force_tile = -1, int force_splits = 0,
                                      bool weights_kn = false) {
    return detail::make_mma_launch<P, false>(p, in, w, out, e_in, residual, workspace, sm_count, force_tile, force_splits,
                                             weights_kn);
}

/// fp16 / bf16 with fp32 activations (the CUDA backend's 16-bit path): `in`, `out` and
/// Epilogue::residual are fp32 tensors as in conv2d(); `w_kn` is the fp32 packing [K][N]
/// converted once to the 16-bit type (convert_packed_weights). The input is rounded to the
/// 16-bit type as it is gathered; the products are exact, the sums fp32, the epilogue
/// fp32 and the output fp32 (unrounded).
template <class P>
MmaConvLaunch<P, true> make_mma_conv_launch_f32io(const Conv2dParams& p, const float* in, const typename P::Act* w_kn,
                                                  float* out, const Epilogue& e, float* workspace, int sm_count,
                                                  int force_tile = -1, int force_splits = 0) {
    static_assert(P::kId != MmaPrecision::kTf32, "tf32 keeps fp32 activations anyway: make_mma_conv_launch");
    return detail::make_mma_launch<P, true>(p, in, w_kn, out, e, nullptr, workspace, sm_count, force_tile, force_splits,
                                            true);
}

/// Call f(TileShape{}, std::integral_constant<ConvGather, G>{}) for the launch's kernel.
template <class F>
void with_mma_kernel(ConvTile t, ConvGather g, F&& f) {
    with_mma_tile(t, [&](auto shape) {
        switch (g) {
            case ConvGather::kPointwise: f(shape, std::integral_constant<ConvGather, ConvGather::kPointwise>{}); break;
            case ConvGather::kVec4: f(shape, std::integral_constant<ConvGather, ConvGather::kVec4>{}); break;
            default: f(shape, std::integral_constant<ConvGather, ConvGather::kScalar>{}); break;
        }
    });
}

// ---- 16-bit weights at load (host) -----------------------------------------------------------

/// The fp32 packing [K][N] (pack_conv_weights: BatchNorm's scale already folded in)
/// converted element by element to P's 16-bit type (round to nearest even), once at load.
/// Throws Error naming the first value that does not fit (fp16 overflows past 65504;
/// bf16 has fp32's range).
template <class P>
void convert_packed_weights(const float* w, size_t count, typename P::Act* out) {
    static_assert(P::kId != MmaPrecision::kTf32, "16-bit types only");
    for (size_t i = 0; i < count; ++i) {
        out[i] = P::from_float(w[i]);
        const float back = P::to_float(out[i]);
        if (!std::isfinite(back) && std::isfinite(w[i]))
            throw Error(std::string("conv filter value ") + std::to_string(w[i]) + " (packed element " + std::to_string(i) +
                        ", BatchNorm folded) does not fit in " + precision_name(P::kId) +
                        (P::kId == MmaPrecision::kFp16 ? " (largest 65504): load in bf16 or fp32" : ""));
    }
}
inline void convert_packed_weights(MmaPrecision prec, const float* w, size_t count, uint16_t* out) {
    if (prec == MmaPrecision::kFp16) convert_packed_weights<MmaFp16>(w, count, out);
    else if (prec == MmaPrecision::kBf16) convert_packed_weights<MmaBf16>(w, count, out);
    else throw Error("convert_packed_weights: tf32 keeps fp32 weights");
}

#if defined(__CUDACC__)

template <class T, class P, ConvGather G, bool KN, bool F32IO>
__global__ void __launch_bounds__(T::kThreads) conv2d_mma_kernel(MmaConvArgs<MmaIo<P, F32IO>, typename P::Act> a) {
    DeviceCtx c;
    conv2d_mma_block<T, P, G, KN, F32IO>(c, a);
}

template <class P>
__global__ void __launch_bounds__(kEpilogueThreads) mma_reduce_kernel(MmaReduceArgs<typename P::Act> a) {
    DeviceCtx c;
    mma_reduce_body<P>(c, a);
}

/// Enqueue a fully decided tensor-core convolution on `stream`.
template <class P, bool F32IO = false>
void launch_conv_mma(const MmaConvLaunch<P, F32IO>& L, int sm_count, cudaStream_t stream) {
    const dim3 grid(unsigned(L.plan.m_tiles), unsigned(L.plan.n_tiles), unsigned(L.plan.splits));
    with_mma_kernel(L.plan.tile, L.gather, [&](auto shape, auto gather) {
        using T = decltype(shape);
        constexpr ConvGather G = decltype(gather)::value;
        if constexpr (F32IO) {
            conv2d_mma_kernel<T, P, G, true, true><<<grid, T::kThreads, T::kSmemBytes, stream>>>(L.args);
        } else {
            if (L.args.w_kn)
                conv2d_mma_kernel<T, P, G, true, false><<<grid, T::kThreads, T::kSmemBytes, stream>>>(L.args);
            else
                conv2d_mma_kernel<T, P, G, false, false><<<grid, T::kThreads, T::kSmemBytes, stream>>>(L.args);
        }
    });
    SOFTBIO_CUDA_CHECK_LAUNCH("conv2d (tensor cores)", stream);
    if (L.reduce) {
        const size_t units = L.reduce_args.rows * size_t(L.reduce_args.channels);
        mma_reduce_kernel<MmaReduceP<P, F32IO>>
            <<<elementwise_blocks(units, kEpilogueThreads, sm_count), kEpilogueThreads, 0, stream>>>(L.reduce_args);
        SOFTBIO_CUDA_CHECK_LAUNCH("conv2d (tensor cores) split-K reduction", stream);
    }
}

/// out = epilogue(conv(in, w)) (+ residual) in precision P on `stream`.
template <class P>
void conv2d_mma(const Conv2dParams& p, const typename P::Act* in, const typename P::Act* w, typename P::Act* out,
                const Epilogue& e, const typename P::Act* residual, float* workspace, int sm_count, cudaStream_t stream) {
    launch_conv_mma<P>(make_mma_conv_launch<P>(p, in, w, out, e, residual, workspace, sm_count), sm_count, stream);
}

/// The TF32 drop-in for conv2d() (conv2d_implicit_gemm.cuh): the same arguments, the
/// same fp32 packed weights [K][N] and fp32 tensors, the tensor cores' arithmetic.
/// `workspace`: conv2d_tf32_workspace_floats(p, sm_count) floats.
inline void conv2d_tf32(const Conv2dParams& p, const float* in, const float* w_kn, float* out, const Epilogue& e,
                        float* workspace, int sm_count, cudaStream_t stream) {
    launch_conv_mma<MmaTf32>(make_mma_conv_launch<MmaTf32>(p, in, w_kn, out, e, nullptr, workspace, sm_count, -1, 0, true),
                             sm_count, stream);
}

/// The FP16 / BF16 drop-in for conv2d() (the CUDA backend's 16-bit path): fp32 tensors
/// and fp32 Epilogue (residual included) as in conv2d(); `w_kn`: the [K][N] packing in
/// P's 16-bit type (convert_packed_weights, once at load). `workspace`:
/// conv2d_mma_workspace_floats(p, P::kId, sm_count) floats.
template <class P>
void conv2d_mma_f32io(const Conv2dParams& p, const float* in, const typename P::Act* w_kn, float* out, const Epilogue& e,
                      float* workspace, int sm_count, cudaStream_t stream) {
    launch_conv_mma<P, true>(make_mma_conv_launch_f32io<P>(p, in, w_kn, out, e, workspace, sm_count), sm_count, stream);
}

#endif  // __CUDACC__

/// Workspace floats of conv2d_tf32 (the split-K partial sums; 0 without split-K).
inline size_t conv2d_tf32_workspace_floats(const Conv2dParams& p, int sm_count) {
    return conv2d_mma_workspace_floats(p, MmaPrecision::kTf32, sm_count);
}

}  // namespace softbio::cuda
