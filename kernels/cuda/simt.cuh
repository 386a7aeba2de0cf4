// kernels/cuda/simt.cuh — one kernel body, two executors: the GPU and a host emulator.
//
// Every softbio CUDA kernel is written as a function template over an execution
// context `Ctx`, called once per thread:
//
//     template <class Ctx> SOFTBIO_KERNEL_BODY void my_body(Ctx& c, const Args& a) {
//         const int i = c.bid_x() * c.ntid() + c.tid();       // blockIdx.x*blockDim.x+threadIdx.x
//         float* tile = c.smem();                              // dynamic shared memory
//         c.cp_async_f128(tile + 4 * c.tid(), a.src + 4 * i, true);
//         c.cp_async_commit(); c.cp_async_wait<0>(); c.sync();  // cp.async.wait_group; __syncthreads
//         c.st(a.dst + i, c.ld(a.src + i) + tile[...]);
//     }
//     template <class Args> __global__ void my_kernel(Args a) { DeviceCtx c; my_body(c, a); }
//
// On the GPU, DeviceCtx (below) maps each call to the CUDA built-in or PTX instruction
// and everything inlines away: the generated code is what hand-written CUDA would give.
// On the host, tests/cuda/simt_emulator.hpp runs the same body for every thread of every
// block — each thread a coroutine, __syncthreads a real barrier, cp.async a queue of
// copies that only land at cp.async.wait_group, shared memory poisoned with NaN at block
// start, every global access bounds-checked against the test's buffers, threads
// scheduled in forward, reverse and shuffled order between barriers. So the indexing,
// the tiling, the zero padding and the pipeline of every kernel are tested on a machine
// without a GPU, and a missing barrier or wait shows up as a wrong number there.
//
// The Ctx interface (1-D thread blocks only):
//   tid(), ntid()                 threadIdx.x, blockDim.x
//   bid_x/y/z(), nbid_x/y/z()     blockIdx, gridDim
//   sync()                        __syncthreads()
//   smem()                        the block's dynamic shared memory (16-byte aligned floats)
//   ld(p), st(p, v)               a global-memory load / store (float, float4, uint8_t)
//   cp_async_f32(dst, src, ok)    4-byte  global -> shared copy; ok = false writes zeros
//   cp_async_f128(dst, src, ok)   16-byte global -> shared copy (both 16-byte aligned)
//   cp_async_commit()             close the current group of copies
//   cp_async_wait<N>()            wait until at most N of this thread's groups are pending
//
// cp.async (sm_80+): the copy goes from global to shared memory without passing through
// registers and without stalling the issuing thread; a thread commits its copies in
// groups and later waits for all but the newest N groups. That is what lets a kernel
// fetch tile k+1 while it computes on tile k (double buffering) with one buffer of
// registers fewer. The "ignore-src" form (src-size 0) writes zeros: the padding of a
// convolution costs no branch around the copy. The waited-for data is only visible to the
// other threads of the block after a __syncthreads.
#pragma once

#include <vector_types.h>  // float4 (plain C structs; also fine for a host compiler)

#include <cmath>  // fmaf on the host
#include <cstddef>
#include <cstdint>

#include "../op_params.hpp"  // SOFTBIO_HOST_DEVICE, the op parameter structs

#if defined(__CUDACC__)
#define SOFTBIO_KERNEL_BODY __device__ __forceinline__           // kernel bodies: device code on nvcc
#define SOFTBIO_UNROLL _Pragma("unroll")
#else
#define SOFTBIO_KERNEL_BODY inline
#define SOFTBIO_UNROLL
#endif

namespace softbio::cuda {

SOFTBIO_HOST_DEVICE int imin(int a, int b) { return a < b ? a : b; }
SOFTBIO_HOST_DEVICE int imax(int a, int b) { return a > b ? a : b; }
SOFTBIO_HOST_DEVICE long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

/// Component j (0..3) of a float4; j must be a compile-time constant after unrolling
/// (otherwise the float4 would be spilled to local memory to be indexed).
SOFTBIO_HOST_DEVICE float component(const float4& v, int j) { return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w; }

SOFTBIO_HOST_DEVICE float4 make_f4(float x, float y, float z, float w) {
    float4 v;
    v.x = x, v.y = y, v.z = z, v.w = w;
    return v;
}
SOFTBIO_HOST_DEVICE float4 f4_splat(float x) { return make_f4(x, x, x, x); }

/// IEEE round-to-nearest a / b and a - b, even under -use_fast_math (the results must
/// match the CPU's bit for bit where the tests say so).
SOFTBIO_HOST_DEVICE float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
SOFTBIO_HOST_DEVICE float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
SOFTBIO_HOST_DEVICE float neg_infinity() { return -HUGE_VALF; }

/// Whether a pointer is 16-byte aligned (the float4 / cp.async 16 paths need it).
inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

#if defined(__CUDACC__)

/// The GPU executor of a kernel body (see the file comment).
struct DeviceCtx {
    __device__ __forceinline__ int tid() const { return int(threadIdx.x); }
    __device__ __forceinline__ int ntid() const { return int(blockDim.x); }
    __device__ __forceinline__ int bid_x() const { return int(blockIdx.x); }
    __device__ __forceinline__ int bid_y() const { return int(blockIdx.y); }
    __device__ __forceinline__ int bid_z() const { return int(blockIdx.z); }
    __device__ __forceinline__ int nbid_x() const { return int(gridDim.x); }
    __device__ __forceinline__ int nbid_y() const { return int(gridDim.y); }
    __device__ __forceinline__ int nbid_z() const { return int(gridDim.z); }
    __device__ __forceinline__ void sync() const { __syncthreads(); }
    __device__ __forceinline__ float* smem() const {
        extern __shared__ float4 softbio_dynamic_smem[];  // float4: 16-byte alignment
        return reinterpret_cast<float*>(softbio_dynamic_smem);
    }
    template <class T>
    __device__ __forceinline__ T ld(const T* p) const { return *p; }
    template <class T>
    __device__ __forceinline__ void st(T* p, const T& v) const { *p = v; }

    __device__ __forceinline__ void cp_async_f32(float* dst, const float* src, bool ok) const {
        const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
        const size_t g = __cvta_generic_to_global(src);
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(g), "r"(ok ? 4 : 0) : "memory");
    }
    __device__ __forceinline__ void cp_async_f128(float* dst, const float* src, bool ok) const {
        const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
        const size_t g = __cvta_generic_to_global(src);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(g), "r"(ok ? 16 : 0) : "memory");
    }
    __device__ __forceinline__ void cp_async_commit() const { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
    template <int N>
    __device__ __forceinline__ void cp_async_wait() const {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
    }
};

#endif  // __CUDACC__

}  // namespace softbio::cuda
