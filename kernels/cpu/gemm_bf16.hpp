// kernels/cpu/gemm_bf16.hpp — the packed convolution GEMM in bfloat16: filters stored in
// bf16, activations rounded to bf16 as they are packed, products summed in fp32
// (AVX512_BF16's vdpbf16ps), the epilogue in fp32. LoadOptions::precision = Bf16 on the CPU.
//
// BFLOAT16 is fp32 with the low 16 bits of the mantissa cut off: 1 sign bit, fp32's 8
// exponent bits (same range, no overflow when converting finite values below 3.39e38),
// 7 stored mantissa bits. to_bf16() rounds to the nearest bf16, ties to even: relative
// error at most u = 2^-8 = 0.39 % per value. A product of two bf16 values is exact in
// fp32 (8 + 8 significant bits fit in 24), so the only roundings are the two inputs' and
// the fp32 sums'.
//
// THE INSTRUCTION. vdpbf16ps (_mm512_dpbf16_ps) takes 32 bf16 values in each source,
// seen as 16 pairs, and adds each pair's dot product to one fp32 lane:
//
//     acc[i] += a[2i] * b[2i] + a[2i+1] * b[2i+1]         i = 0..15
//
// 64 FLOP per instruction where an fp32 FMA does 32, at the same issue rate on cores that
// run it at full width: twice the fp32 peak (bench_kernels' BM_peak_bf16 measures it).
// Denormal inputs and results are taken as zero (no MXCSR control): the difference is
// below 1.2e-38 per product, far under the bf16 rounding of any normal value.
//
// THE GEMM is gemm_packed.hpp's (read that first: MR x NR register block, weight panels
// packed once, activation blocks packed per tile, the epilogue in the store), with K
// taken two at a time:
//  * the weight panel block stores, per PAIR of filter taps (k, k+1) and per channel c,
//    the two bf16 values W[k][c] (low half) and W[k+1][c] (high half) in one 32-bit
//    word: NR words per pair row, so one pair row is NR/16 vectors of 16 channels;
//  * the activation block stores per pixel row the pairs (P[m][k], P[m][k+1]), also one
//    32-bit word each: broadcasting that word to all 16 lanes gives the `a` operand;
//  * so per pair of taps: NR/16 vector loads of W, MR broadcasts, MR x NR/16 vdpbf16ps,
//    the same schedule as fp32's per single tap, doing twice the work.
// A K block of odd length ends with a half pair, (value, 0), on both sides. K blocks are
// KC_BF16 = 384 taps long at most: 192 pairs x 32 channels x 4 bytes = 24 KiB of weights
// per panel block, the fp32 kernel's L1 footprint.
// The activations are gathered in fp32 by gemm_packed.hpp's pack_patch_block (or read in
// place for a 1x1 stride-1 conv) and rounded to bf16 pairs per K block, into a second
// per-thread block: each value is rounded once per K block, then reused by every panel.
//
// THE BUFFER. pack_conv_weights_bf16 writes gemm_packed.hpp's 16-float header with its
// own tag (kPackedBf16Tag) and K, N, NR, KC_BF16; conv2d() (kernels/cpu/conv2d.hpp) reads
// the tag and comes here. Half the bytes of the fp32 panels.
//
// AVAILABILITY. The kernel is compiled when the compiler targets AVX512_BF16
// (__AVX512BF16__: -march=native on AMD Zen 4 / Zen 5, Intel Sapphire Rapids and later).
// bf16_gemm_available() says whether this build has it and this CPU runs it; otherwise
// loads refuse precision bf16 with that reason (io/load.hpp), and conv2d_packed_bf16
// throws. to_bf16 and the packing are plain C++ and always compiled (and tested).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "gemm_packed.hpp"

namespace softbio::cpu {

/// The bf16 nearest to x, ties to even (NaN stays a quiet NaN; +-inf and values that
/// round past the largest bf16 become +-inf), as its 16 bits. The reference for the
/// vector conversion (_mm512_cvtne2ps_pbh), which does the same except that fp32
/// denormals become (signed) zero.
inline uint16_t to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu))  // NaN: keep it a NaN
        return uint16_t((bits >> 16) | 0x0040u);
    const uint32_t lsb = (bits >> 16) & 1u;  // ties go to the even neighbour
    return uint16_t((bits + 0x7FFFu + lsb) >> 16);
}

/// The float a bf16 stands for (exact: the low 16 bits become zeros).
inline float from_bf16(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

/// Two bf16 values in one 32-bit word: lo in bits 0-15, hi in bits 16-31 (the pair
/// layout vdpbf16ps reads).
inline uint32_t bf16_pair(float lo, float hi) { return uint32_t(to_bf16(lo)) | (uint32_t(to_bf16(hi)) << 16); }

/// The header's tag of bf16 panels (a quiet NaN with another payload than fp32's).
inline constexpr uint32_t kPackedBf16Tag = 0x7FC5B16Fu;

/// Taps per K block (at most): see the file comment.
inline constexpr int kBf16KC = 2 * kPackedKC;

inline int bf16_k_blocks(int k) { return std::max(1, (k + kBf16KC - 1) / kBf16KC); }
/// Block length for K (blocks of nearly equal size, even so that only the last one can
/// end with a half pair).
inline int bf16_kc(int k) {
    const int kc = (k + bf16_k_blocks(k) - 1) / bf16_k_blocks(k);
    return kc + (kc & 1);
}
inline int bf16_pairs(int taps) { return (taps + 1) / 2; }

/// 32-bit words of pack_conv_weights_bf16's output, in floats (the buffer is a float buffer).
inline size_t packed_bf16_weights_floats(const Conv2dParams& p) {
    const int k = p.gemm_k(), kc = bf16_kc(k), blocks = (k + kc - 1) / kc;
    const int last = k - (blocks - 1) * kc;
    const size_t pair_rows = size_t(blocks - 1) * size_t(bf16_pairs(kc)) + size_t(bf16_pairs(last));
    return kPackedHeaderFloats + size_t(packed_panels(p.out_c)) * kPackedNR * pair_rows;
}

/// Where the block of panel j for the K block starting at tap k0 (taps kcb long) starts,
/// in 32-bit words after the header (k0 is a multiple of bf16_kc: every earlier block is
/// bf16_kc / 2 whole pairs).
inline size_t bf16_block_offset(int k0, int kcb, int j, int n_pad) {
    return size_t(k0 / 2) * size_t(n_pad) + size_t(j) * size_t(bf16_pairs(kcb)) * kPackedNR;
}

/// Round the plain GEMM operand W[K x N] (BatchNorm folded) to bf16 and store it in the
/// pair panels, behind the header. `packed`: packed_bf16_weights_floats(p) floats. Once,
/// at load.
inline void pack_conv_weights_bf16(const Conv2dParams& p, const float* w_kn, float* packed) {
    using packed_detail::put_u32;
    const int k = p.gemm_k(), n = p.out_c, nr = kPackedNR, kc = bf16_kc(k), n_pad = packed_panels(n) * nr;
    std::fill(packed, packed + kPackedHeaderFloats, 0.0f);
    put_u32(packed + 0, kPackedBf16Tag);
    put_u32(packed + 1, uint32_t(k));
    put_u32(packed + 2, uint32_t(n));
    put_u32(packed + 3, uint32_t(nr));
    put_u32(packed + 4, uint32_t(kc));
    uint32_t* words = reinterpret_cast<uint32_t*>(packed + kPackedHeaderFloats);  // float and uint32_t: same size
    for (int k0 = 0; k0 < k; k0 += kc) {
        const int kcb = std::min(kc, k - k0);
        for (int j = 0; j < packed_panels(n); ++j) {
            uint32_t* dst = words + bf16_block_offset(k0, kcb, j, n_pad);
            for (int pr = 0; pr < bf16_pairs(kcb); ++pr) {
                const int k_lo = k0 + 2 * pr, k_hi = k_lo + 1;
                for (int c = 0; c < nr; ++c) {
                    const int col = j * nr + c;
                    const float lo = col < n ? w_kn[size_t(k_lo) * n + col] : 0.0f;
                    const float hi = col < n && k_hi < k0 + kcb ? w_kn[size_t(k_hi) * n + col] : 0.0f;
                    dst[size_t(pr) * nr + c] = bf16_pair(lo, hi);
                }
            }
        }
    }
}

inline bool is_packed_bf16_weights(const float* w) { return w && packed_detail::get_u32(w) == kPackedBf16Tag; }

inline bool packed_bf16_weights_match(const Conv2dParams& p, const float* w) {
    return is_packed_bf16_weights(w) && packed_detail::get_u32(w + 1) == uint32_t(p.gemm_k()) &&
           packed_detail::get_u32(w + 2) == uint32_t(p.out_c) && packed_detail::get_u32(w + 3) == uint32_t(kPackedNR) &&
           packed_detail::get_u32(w + 4) == uint32_t(bf16_kc(p.gemm_k()));
}

/// Round rows x taps fp32 values (row r at src + r*lds) to bf16 pairs (row r at
/// dst + r*ldd words; an odd last tap pairs with 0). Plain C++: the reference of the
/// vector version below, and what a build without AVX512_BF16 compiles.
inline void round_rows_to_bf16_pairs_scalar(const float* src, size_t lds, int rows, int taps, uint32_t* dst,
                                            size_t ldd) {
    for (int r = 0; r < rows; ++r) {
        const float* s = src + size_t(r) * lds;
        uint32_t* d = dst + size_t(r) * ldd;
        for (int pr = 0; pr < taps / 2; ++pr) d[pr] = bf16_pair(s[2 * pr], s[2 * pr + 1]);
        if (taps & 1) d[taps / 2] = bf16_pair(s[taps - 1], 0.0f);
    }
}

// ---- the AVX512_BF16 kernel ----------------------------------------------------------------

#if defined(__AVX512BF16__) && defined(__AVX512F__)
inline constexpr bool kBf16GemmCompiled = true;

namespace bf16_detail {

/// round_rows_to_bf16_pairs_scalar with vcvtne2ps2bf16: 32 floats -> 16 pair words per
/// instruction (lanes past `taps` loaded as zeros).
inline void round_rows_to_bf16_pairs(const float* src, size_t lds, int rows, int taps, uint32_t* dst, size_t ldd) {
    for (int r = 0; r < rows; ++r) {
        const float* s = src + size_t(r) * lds;
        uint32_t* d = dst + size_t(r) * ldd;
        for (int t = 0; t < taps; t += 32) {
            const int n_lo = std::min(16, taps - t), n_hi = std::max(0, std::min(16, taps - t - 16));
            const __m512 lo = _mm512_maskz_loadu_ps(__mmask16((1u << n_lo) - 1u), s + t);
            const __m512 hi = _mm512_maskz_loadu_ps(__mmask16((1u << n_hi) - 1u), s + t + 16);
            // Word j of the result: taps t+2j (low half) and t+2j+1 (high half).
            const __m512i words = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            const int n_words = (std::min(32, taps - t) + 1) / 2;
            _mm512_mask_storeu_epi32(d + t / 2, __mmask16((1u << n_words) - 1u), words);
        }
    }
}

/// C[R x NR] (+)= A[R x pairs] * B[pairs x NR] on bf16 pairs, fp32 sums, then (last K
/// block) the epilogue: gemm_packed.hpp's micro_kernel with vdpbf16ps for vfmadd.
///   a: row r at a + r*lda words; b: the panel's pair rows, NR words each.
template <int R>
void micro_kernel_bf16(int pairs, const uint32_t* a, size_t lda, const uint32_t* b, float* c, size_t ldc, int cols,
                       bool accumulate, const packed_detail::TileEpilogue* ep) {
    constexpr int NV = packed_detail::kNV, NR = kPackedNR;
    static_assert(NR == NV * 16, "the bf16 kernel runs on the AVX-512 register block");
    __m512 acc[R][NV];
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r)
SOFTBIO_CPU_UNROLL(4)
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
    const uint32_t* arow[R];
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r) arow[r] = a + size_t(r) * lda;
SOFTBIO_CPU_UNROLL(16)
    for (int r = 0; r < R; ++r)
SOFTBIO_CPU_UNROLL(4)
        for (int l = 0; l < NR; l += 16) packed_detail::prefetch_line(c + size_t(r) * ldc + l);
SOFTBIO_CPU_UNROLL(4)
    for (int k = 0; k < pairs; ++k) {
        __m512bh bv[NV];
SOFTBIO_CPU_UNROLL(4)
        for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + size_t(k) * NR + v * 16);
SOFTBIO_CPU_UNROLL(16)
        for (int r = 0; r < R; ++r) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32(int(arow[r][k]));
SOFTBIO_CPU_UNROLL(4)
            for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    packed_detail::store_block<R>(acc, c, ldc, cols, accumulate, ep);
}

using MicroKernelBf16 = void (*)(int, const uint32_t*, size_t, const uint32_t*, float*, size_t, int, bool,
                                 const packed_detail::TileEpilogue*);

template <size_t... I>
constexpr std::array<MicroKernelBf16, sizeof...(I)> micro_kernel_table(std::index_sequence<I...>) {
    return {{&micro_kernel_bf16<int(I) + 1>...}};
}
inline const std::array<MicroKernelBf16, kPackedMR>& micro_kernels() {
    static constexpr std::array<MicroKernelBf16, kPackedMR> table =
        micro_kernel_table(std::make_index_sequence<kPackedMR>{});
    return table;
}

}  // namespace bf16_detail
#else
inline constexpr bool kBf16GemmCompiled = false;
#endif

/// Whether this program can run the bf16 GEMM: built for AVX512_BF16 and running on a
/// CPU that has it. `why` (if given) gets the reason when not.
inline bool bf16_gemm_available(std::string* why = nullptr) {
    if (!kBf16GemmCompiled) {
        if (why)
            *why = std::string("this program was built without AVX512_BF16 (its packed GEMM targets ") +
                   packed_gemm_isa() +
                   "); build with -march=native on a CPU that has it (AMD Zen 4 or later, Intel Sapphire Rapids or later)";
        return false;
    }
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    if (!__builtin_cpu_supports("avx512bf16")) {
        if (why) *why = "this CPU lacks the AVX512_BF16 instructions the program was built for";
        return false;
    }
#endif
    return true;
}

/// The plan of conv2d_packed_bf16: gemm_packed.hpp's tiles, K blocks of bf16_kc taps.
inline PackedConvPlan plan_conv2d_bf16(const Conv2dParams& p, int threads) {
    PackedConvPlan t = plan_conv2d_packed(p, threads);
    t.kc = bf16_kc(p.gemm_k());
    t.k_blocks = (p.gemm_k() + t.kc - 1) / t.kc;
    return t;
}

/// Per thread: the fp32 gather block (none for a 1x1 stride-1 conv) and the pair block.
inline size_t conv2d_bf16_workspace_floats_per_thread(const Conv2dParams& p, int threads) {
    const PackedConvPlan t = plan_conv2d_bf16(p, threads);
    const size_t gather = p.input_is_patch_matrix() ? 0 : size_t(t.mc) * align_floats(size_t(t.kc));
    return align_floats(gather) + size_t(t.mc) * align_floats(size_t(bf16_pairs(t.kc)));
}

inline size_t conv2d_bf16_workspace_floats(const Conv2dParams& p, int threads) {
    return conv2d_bf16_workspace_floats_per_thread(p, threads) * size_t(threads);
}

/// out[M x N] = epilogue(bf16(P) * W) with W from pack_conv_weights_bf16, sums in fp32.
/// `workspace`: conv2d_bf16_workspace_floats(p, threads) floats, 64-byte aligned. Never
/// allocates. Throws where bf16_gemm_available() is false.
inline void conv2d_packed_bf16(const Conv2dParams& p, const float* in, const float* packed_w, float* out,
                               const Epilogue& e, float* workspace, int threads) {
    if (!packed_bf16_weights_match(p, packed_w))
        throw std::invalid_argument("conv2d_packed_bf16: the weights were not packed for this convolution and this build");
#if defined(__AVX512BF16__) && defined(__AVX512F__)
    const PackedConvPlan t = plan_conv2d_bf16(p, threads);
    const size_t per_thread = conv2d_bf16_workspace_floats_per_thread(p, threads);
    const size_t m = p.gemm_m();
    const int k = p.gemm_k(), n = p.out_c, nr = kPackedNR, mr = kPackedMR, n_pad = packed_panels(n) * nr;
    const bool direct = p.input_is_patch_matrix();
    const size_t ld_gather = align_floats(size_t(t.kc)), ld_pairs = align_floats(size_t(bf16_pairs(t.kc)));
    const size_t gather_floats = direct ? 0 : align_floats(size_t(t.mc) * ld_gather);
    const uint32_t* panels = reinterpret_cast<const uint32_t*>(packed_w + kPackedHeaderFloats);
    const auto& kernels = bf16_detail::micro_kernels();
    packed_detail::for_each_tile(t, m, n, threads, [&](packed_detail::ThreadBlock& held, int tid, size_t m0, int rows,
                                                       int c0, int c_end) {
        float* gather = workspace + per_thread * size_t(tid);
        uint32_t* a = reinterpret_cast<uint32_t*>(gather + gather_floats);
        for (int kb = 0; kb < t.k_blocks; ++kb) {
            const int k0 = kb * t.kc, kc = std::min(t.kc, k - k0);
            if (t.k_blocks > 1 || held.m0 != m0) {  // fp32 rows -> bf16 pairs, once per K block
                if (direct) {
                    bf16_detail::round_rows_to_bf16_pairs(in + m0 * size_t(k) + size_t(k0), size_t(k), rows, kc, a,
                                                          ld_pairs);
                } else {
                    pack_patch_block(p, in, m0, rows, k0, kc, gather, ld_gather);
                    bf16_detail::round_rows_to_bf16_pairs(gather, ld_gather, rows, kc, a, ld_pairs);
                }
            }
            held.m0 = t.k_blocks == 1 ? m0 : size_t(-1);
            for (int c = c0; c < c_end; c += nr) {
                const int cols = std::min(nr, c_end - c);
                const uint32_t* b = panels + bf16_block_offset(k0, kc, c / nr, n_pad);
                for (int i = 0; i < rows; i += mr) {
                    const int r = std::min(mr, rows - i);
                    packed_detail::TileEpilogue te;
                    const auto* ep = packed_detail::tile_epilogue(e, kb == t.k_blocks - 1, m0 + size_t(i), c, n, te);
                    kernels[size_t(r - 1)](bf16_pairs(kc), a + size_t(i) * ld_pairs, ld_pairs, b,
                                           out + (m0 + size_t(i)) * size_t(n) + size_t(c), size_t(n), cols, kb > 0, ep);
                }
            }
        }
    });
#else
    (void)in, (void)out, (void)e, (void)workspace, (void)threads;
    std::string why;
    bf16_gemm_available(&why);
    throw std::runtime_error("conv2d_packed_bf16: " + why);
#endif
}

}  // namespace softbio::cpu
