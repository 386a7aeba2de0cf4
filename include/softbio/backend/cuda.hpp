// softbio/backend/cuda.hpp — the CUDA backend: the same seam as CpuBackend, over device
// pointers. Include it from a .cu file (nvcc):
//
//     #include <softbio/backend/cuda.hpp>
//     #include <softbio/model/resnet.hpp>
//     using GpuModel = softbio::ResNet<softbio::CudaBackend>;
//     auto model = GpuModel::load(path);                              // weights uploaded once
//     auto ws = model->make_workspace(/*max_batch=*/8);              // device memory
//     softbio::cuda::copy_to_device(ws->input(), host_nhwc, n);      // or to_tensor_u8()
//     model->forward(ws->input(), batch, *ws);                       // enqueued on the stream
//     model->decode(*ws, batch, out);                                // copies logits back (waits)
//
// What differs from the CPU backend:
//  * Memory. Buffer is a DeviceBuffer: cudaMalloc'd, zero-initialised, move-only. All
//    pointers a layer passes to the functions below are device pointers; so are
//    Workspace::input(), features() and logits(i). Conv weights are packed on the host
//    (pack_conv_weights, as on the CPU) and uploaded once at load; head weights, which
//    the CPU reads in place from the mapped file, are uploaded too (use_weights).
//  * Streams. Every kernel is enqueued on the calling thread's current stream:
//    cudaStreamPerThread unless a CudaStreamScope says otherwise. forward() returns as
//    soon as the work is queued; download()/decode() wait for it. One model can serve
//    several threads, each with its own Workspace and stream.
//  * The `threads` arguments of the seam are ignored (the GPU's parallelism is planned
//    per kernel from the SM count: kernels/cuda/conv2d_implicit_gemm.cuh).
//  * LayerObserver: it is called with device pointers and host-clock times of the
//    *enqueueing*; do not use it with this backend (compare layers by downloading).
//  * CUDA graphs: see softbio/backend/cuda_graph.hpp (batch-1 latency).
//
// Errors: every CUDA call is checked; failures throw softbio::cuda::CudaError (a
// softbio::Error) naming the op (kernels/cuda/check.cuh). Kernel faults surface at the
// next synchronising call; SOFTBIO_CUDA_SYNC=1 makes each launch synchronous for debugging.
//
// Eigen: this header does not include it. A .cu file that also includes the CPU backend
// (softbio/softbio.hpp) should `#define EIGEN_NO_CUDA` before any include: Eigen then
// compiles as plain host code under nvcc, quickly and without warnings.
#pragma once

#if !defined(__CUDACC__)
#error "softbio/backend/cuda.hpp contains CUDA kernels: include it from a .cu file compiled by nvcc"
#endif

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "softbio/core/error.hpp"
#include "softbio/core/tensor.hpp"
#include "softbio/kernels/cuda/check.cuh"
#include "softbio/kernels/cuda/conv2d_implicit_gemm.cuh"
#include "softbio/kernels/cuda/epilogue.cuh"
#include "softbio/kernels/cuda/linear.cuh"
#include "softbio/kernels/cuda/pool.cuh"
#include "softbio/kernels/cuda/preprocess.cuh"

namespace softbio {
namespace cuda {

// ---- streams ------------------------------------------------------------------------------

namespace detail {
inline cudaStream_t& stream_slot() {
    thread_local cudaStream_t s = cudaStreamPerThread;
    return s;
}
}  // namespace detail

/// The stream this thread's softbio kernels are enqueued on.
inline cudaStream_t current_stream() { return detail::stream_slot(); }

/// Makes `s` the current stream of this thread until the scope ends (then restores the
/// previous one). Scopes nest. The stream is not owned.
class CudaStreamScope {
public:
    explicit CudaStreamScope(cudaStream_t s) : previous_(detail::stream_slot()) { detail::stream_slot() = s; }
    ~CudaStreamScope() { detail::stream_slot() = previous_; }
    CudaStreamScope(const CudaStreamScope&) = delete;
    CudaStreamScope& operator=(const CudaStreamScope&) = delete;

private:
    cudaStream_t previous_;
};

/// An owned stream (RAII around cudaStreamCreateWithFlags).
class Stream {
public:
    explicit Stream(unsigned flags = cudaStreamNonBlocking) {
        SOFTBIO_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, flags), "cudaStreamCreate");
    }
    ~Stream() {
        if (s_) cudaStreamDestroy(s_);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return s_; }
    operator cudaStream_t() const { return s_; }
    void synchronize() const { SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

private:
    cudaStream_t s_ = nullptr;
};

// ---- device facts ---------------------------------------------------------------------------

/// Multiprocessor count of the current device (cached per device). The convolution plans
/// (and so the workspace sizes) depend on it: plan and run on the same device.
inline int sm_count() {
    static std::atomic<int> cache[64];  // static storage: zero-initialised
    int dev = 0;
    SOFTBIO_CUDA_CHECK(cudaGetDevice(&dev), "cudaGetDevice");
    if (dev >= 0 && dev < 64) {
        const int v = cache[dev].load(std::memory_order_relaxed);
        if (v > 0) return v;
    }
    int v = 0;
    SOFTBIO_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    if (dev >= 0 && dev < 64) cache[dev].store(v, std::memory_order_relaxed);
    return v;
}

/// Number of CUDA devices; 0 when there is no device or no usable driver (never throws).
inline int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear
        return 0;
    }
    return n;
}

// ---- memory ---------------------------------------------------------------------------------

/// Owning device memory for `count` floats: cudaMalloc'd (256-byte aligned), zeroed,
/// move-only. The backend's Buffer.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t count) {
        if (count == 0) return;
        const size_t bytes = align_floats(count) * sizeof(float);
        void* p = nullptr;
        const cudaError_t err = cudaMalloc(&p, bytes);
        if (err != cudaSuccess) {
            cudaGetLastError();
            throw CudaError(err, "CUDA error in DeviceBuffer: cudaMalloc of " + std::to_string(bytes) +
                                     " bytes failed: " + cudaGetErrorString(err));
        }
        data_ = static_cast<float*>(p);
        size_ = count;
        try {
            const cudaStream_t s = current_stream();
            SOFTBIO_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, s), "DeviceBuffer (zero fill)");
            SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(s), "DeviceBuffer (zero fill)");
        } catch (...) {
            reset();
            throw;
        }
    }
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(DeviceBuffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = o.data_, size_ = o.size_;
            o.data_ = nullptr, o.size_ = 0;
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    float* data() { return data_; }
    const float* data() const { return data_; }
    size_t size() const { return size_; }
    /// Free the memory now (cudaFree waits for the device).
    void reset() noexcept {
        if (data_) cudaFree(data_);  // errors ignored: destructors must not throw
        data_ = nullptr;
        size_ = 0;
    }

private:
    float* data_ = nullptr;
    size_t size_ = 0;
};

/// Page-locked host memory for `count` elements of T (cudaMallocHost): copies from/to it
/// are truly asynchronous and run at full PCIe speed. Move-only, zeroed.
template <class T>
class PinnedArray {
public:
    PinnedArray() = default;
    explicit PinnedArray(size_t count) {
        if (count == 0) return;
        void* p = nullptr;
        SOFTBIO_CUDA_CHECK(cudaMallocHost(&p, count * sizeof(T)), "PinnedArray (cudaMallocHost)");
        data_ = static_cast<T*>(p);
        size_ = count;
        for (size_t i = 0; i < count; ++i) data_[i] = T{};
    }
    ~PinnedArray() { reset(); }
    PinnedArray(PinnedArray&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
    PinnedArray& operator=(PinnedArray&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = o.data_, size_ = o.size_;
            o.data_ = nullptr, o.size_ = 0;
        }
        return *this;
    }
    PinnedArray(const PinnedArray&) = delete;
    PinnedArray& operator=(const PinnedArray&) = delete;
    T* data() { return data_; }
    const T* data() const { return data_; }
    size_t size() const { return size_; }
    void reset() noexcept {
        if (data_) cudaFreeHost(data_);
        data_ = nullptr;
        size_ = 0;
    }

private:
    T* data_ = nullptr;
    size_t size_ = 0;
};
using PinnedBuffer = PinnedArray<float>;

/// Whether `p` is page-locked (or registered) host memory.
inline bool is_pinned(const void* p) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return attr.type == cudaMemoryTypeHost;
}

/// Copy `bytes` from host to device on `stream`. From pinned memory the copy is
/// asynchronous (keep the source alive and unchanged until the stream reaches it); from
/// pageable memory this waits for the copy, so the source may be reused at once.
inline void copy_bytes_to_device(void* dst, const void* host, size_t bytes, cudaStream_t stream = current_stream()) {
    if (bytes == 0) return;
    SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream), "copy_to_device");
    if (!is_pinned(host)) SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(stream), "copy_to_device");
}
inline void copy_to_device(float* dst, const float* host, size_t count, cudaStream_t stream = current_stream()) {
    copy_bytes_to_device(dst, host, count * sizeof(float), stream);
}
/// Copy `count` floats from device to host after all work queued on `stream`; waits.
inline void copy_to_host(float* host, const float* src, size_t count, cudaStream_t stream = current_stream()) {
    if (count == 0) return;
    SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(host, src, count * sizeof(float), cudaMemcpyDeviceToHost, stream), "download");
    SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(stream), "download");
}

/// Device-side ToTensor (+ Normalize): `batch` 8-bit RGB images (device memory, HWC with
/// the given byte strides) -> dst [batch, h, w, 3] floats. mean/std null: no normalize.
inline void to_tensor_u8(const std::uint8_t* src, int batch, int h, int w, size_t row_stride, size_t image_stride,
                         const float* mean, const float* std, float* dst, cudaStream_t stream = current_stream()) {
    PreprocessArgs a;
    a.src = src, a.dst = dst, a.batch = batch, a.h = h, a.w = w, a.row_stride = row_stride, a.image_stride = image_stride;
    a.normalize = mean && std;
    for (int c = 0; c < 3 && a.normalize; ++c) a.mean[c] = mean[c], a.std[c] = std[c];
    preprocess_u8(a, sm_count(), stream);
}

}  // namespace cuda

// ---- the backend ------------------------------------------------------------------------------

struct CudaBackend {
    static constexpr const char* name = "cuda";
    using Buffer = cuda::DeviceBuffer;
    using Conv2dParams = cuda::Conv2dParams;
    using Pool2dParams = cuda::Pool2dParams;
    using Epilogue = cuda::Epilogue;

    /// Copy `count` host floats into a new device buffer (weights, at load time).
    static Buffer upload(const float* host, size_t count) {
        Buffer b(count);
        cuda::copy_to_device(b.data(), host, count);
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(cuda::current_stream()), "upload");
        return b;
    }
    /// Host-side repack into the [kh*kw*Cin, Cout] layout conv2d() reads (as on the CPU).
    static void pack_conv_weights(const Conv2dParams& p, const float* w_oihw, const float* scale, float* packed) {
        cuda::pack_conv_weights(p, w_oihw, scale, packed);
    }
    /// Weights in host memory (the mapped file): uploaded into `storage`.
    static const float* use_weights(const float* host, size_t count, Buffer& storage) {
        storage = upload(host, count);
        return storage.data();
    }
    /// Copy `count` floats of device results to the host (waits for the queued work).
    static void download(float* host, const float* src, size_t count) { cuda::copy_to_host(host, src, count); }

    static size_t conv2d_workspace_floats(const Conv2dParams& p, int /*threads*/) {
        return cuda::conv2d_workspace_floats(p, cuda::sm_count());
    }
    static void conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                       float* workspace, int /*threads*/) {
        cuda::conv2d(p, in, packed_w, out, e, workspace, cuda::sm_count(), cuda::current_stream());
    }
    static void epilogue(const Epilogue& e, float* data, size_t rows, int channels, int /*threads*/) {
        cuda::epilogue_inplace(e, data, rows, channels, cuda::sm_count(), cuda::current_stream());
    }
    static void maxpool2d(const Pool2dParams& p, const float* in, float* out, int /*threads*/) {
        cuda::maxpool2d(p, in, out, cuda::sm_count(), cuda::current_stream());
    }
    static void avgpool2d(const Pool2dParams& p, const float* in, float* out, int /*threads*/) {
        cuda::avgpool2d(p, in, out, cuda::sm_count(), cuda::current_stream());
    }
    static void global_avgpool(int n, int h, int w, int c, const float* in, float* out, int /*threads*/) {
        cuda::global_avgpool(n, h, w, c, in, out, cuda::sm_count(), cuda::current_stream());
    }
    static void flatten_nchw_order(int n, int h, int w, int c, const float* in, float* out) {
        cuda::flatten_nchw_order(n, h, w, c, in, out, cuda::sm_count(), cuda::current_stream());
    }
    static void linear(int n, int in_f, int out_f, const float* x, const float* w, const float* b, float* y,
                       int /*threads*/) {
        cuda::linear(n, in_f, out_f, x, w, b, y, cuda::current_stream());
    }
    /// CORAL thresholds: z[n, k] = g[n] + bias[k] for k < k1.
    static void coral_logits(int n, int k1, const float* g, const float* bias, float* z) {
        cuda::coral_logits(n, k1, g, bias, z, cuda::sm_count(), cuda::current_stream());
    }
};

}  // namespace softbio
