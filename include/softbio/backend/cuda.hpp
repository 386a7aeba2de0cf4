// softbio/backend/cuda.hpp — the CUDA backend: the same seam as CpuBackend
// (backend/cpu.hpp), over device pointers. Include it from a .cu file (nvcc):
//
//     #include <softbio/backend/cuda.hpp>
//     #include <softbio/io/load.hpp>
//     using GpuModel = softbio::ResNet<softbio::CudaBackend>;
//     auto model = softbio::load_network<GpuModel>(path);           // weights uploaded once
//     auto ws = model->make_workspace(/*max_batch=*/8);            // device memory + CudaContext
//     const softbio::CudaContext& ctx = ws->context();              // its stream, device, SM count
//     softbio::cuda::copy_to_device(ws->input(), host_nhwc, n, ctx.stream);   // or to_tensor_u8()
//     model->forward(ws->input(), batch, *ws);                      // enqueued on ctx.stream
//     model->decode(*ws, batch, out);                               // copies logits back (waits)
//
// What differs from the CPU backend:
//  * Context. Every kernel runs with a CudaContext (below): the stream it is enqueued on
//    and the SM count its launch is planned for. A Workspace holds one, made by
//    make_context() when the workspace is made, so each caller's work goes to its own
//    workspace's stream; nothing is global or per-thread. To run a workspace on another
//    stream, set ws->context().stream (cuda_graph.hpp does this to capture a forward).
//  * Memory. Buffer is a DeviceBuffer: cudaMalloc'd, zero-filled before the constructor
//    returns, move-only. All pointers a layer passes to the functions below are device
//    pointers; so are Workspace::input(), features() and logits(i). Conv weights are
//    packed on the host (softbio::pack_conv_weights, as on the CPU) and uploaded once at
//    load; head weights, which the CPU reads in place from the mapped file, are uploaded
//    too (use_weights). upload() is a complete, synchronous copy; download() waits for
//    the context's stream.
//  * Asynchrony. forward() returns as soon as the work is queued; download()/decode()
//    and synchronize() wait for it. One model can serve several threads, each with its
//    own Workspace (and so its own stream, if it sets one).
//  * The `threads` argument of make_context is ignored (the GPU's parallelism is planned
//    per kernel from the SM count: kernels/cuda/conv2d_implicit_gemm.cuh).
//  * Precision. CudaContext::precision (set from LoadOptions::precision when a ResNet
//    makes its workspace) chooses the convolutions' arithmetic: Fp32 runs conv2d()
//    (CUDA cores, fp32: the default and the reference); Tf32 runs every convolution
//    through conv2d_tf32() (kernels/cuda/conv2d_mma.cuh: tensor cores, mma.sync m16n8k8,
//    activations and weights rounded to tf32 as read, fp32 accumulation and epilogue,
//    the same fp32 weights and buffers); Fp16 / Bf16 through conv2d_mma_f32io()
//    (m16n8k16): the filters stored in the 16-bit type, converted once at load after
//    BatchNorm is folded into them (upload() inside ResNet's FilterStorageScope), each
//    conv's fp32 input rounded to 16 bits as it is gathered into shared memory, fp32
//    accumulation, epilogue (bias, residual, ReLU) and output.
//    The activation buffers stay fp32 in every precision, and so do the pools, the
//    residual stream and the heads. Why not 16-bit buffers between layers: the backend's
//    calls get untyped float buffers, and which of them would hold 16 bits (every one
//    but the caller's input, the features and the logits) is known only to the network
//    (model/resnet.hpp's Workspace, residual_block.hpp, LayerObserver's copy_output,
//    decode): 16-bit buffers need typed buffers there, a conversion unit after the input
//    and before the features, 16-bit pools. This way each activation is read and written
//    in fp32 (twice the bytes of 16-bit storage: the cost, at large batches), while the
//    products are exactly those of 16-bit storage (the input is rounded once, as it
//    would have been when stored) and nothing else changes (observers, --dump, the
//    unfused BatchNorm graph, CUDA graphs all work as in fp32).
//  * LayerObserver works: forward() synchronises the stream before each report, so the
//    times are the layers' real times and LayerEvent::copy_output() downloads the output.
//  * CUDA graphs: softbio/backend/cuda_graph.hpp (batch-1 latency).
//  * Choosing CPU or CUDA at run time (Predictor, load_device_model, softbio-predict
//    --device cuda), with pinned input staging and the upload of the next batch
//    overlapping the current computation: softbio/backend/cuda_model.hpp.
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

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/core/precision.hpp"
#include "softbio/kernels/cuda/check.cuh"
#include "softbio/kernels/cuda/conv2d_implicit_gemm.cuh"
#include "softbio/kernels/cuda/conv2d_mma.cuh"
#include "softbio/kernels/cuda/epilogue.cuh"
#include "softbio/kernels/cuda/linear.cuh"
#include "softbio/kernels/cuda/pool.cuh"
#include "softbio/kernels/cuda/preprocess.cuh"

namespace softbio {

/// What a CUDA kernel needs besides its operands.
///  * stream: where the work is enqueued (not owned). The default, cudaStreamPerThread,
///    is the calling thread's own default stream: threads do not serialise on it.
///  * device: the device the context was made for. The calling thread must have it
///    current (cudaSetDevice) when it runs work with this context; the backend does not
///    switch devices.
///  * sm_count: that device's multiprocessor count. Launch grids and the convolution
///    plans (and so the workspace sizes: conv2d_workspace_floats) depend on it, so plan
///    and run with the same context. 0 (a context not made by make_context) plans for
///    one SM: correct but slow.
///  * precision: the convolutions' arithmetic: Fp32 (conv2d, CUDA cores), Tf32
///    (conv2d_tf32, tensor cores), Fp16 / Bf16 (conv2d_mma_f32io, tensor cores, 16-bit
///    filters). ResNet::make_workspace sets it from the model's LoadOptions::precision;
///    for Fp16 / Bf16 it must be the precision the model's filters were stored in (the
///    model's own: do not change it by hand). It changes the workspace size (the split-K
///    plans differ), so plan and run with the same precision too.
struct CudaContext {
    cudaStream_t stream = cudaStreamPerThread;
    int device = 0;
    int sm_count = 0;
    Precision precision = Precision::Fp32;
};

namespace cuda {

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

/// An owned event (RAII around cudaEventCreateWithFlags; by default without timing,
/// the cheapest kind, for ordering streams and waiting on the host).
class Event {
public:
    explicit Event(unsigned flags = cudaEventDisableTiming) {
        SOFTBIO_CUDA_CHECK(cudaEventCreateWithFlags(&e_, flags), "cudaEventCreate");
    }
    ~Event() {
        if (e_) cudaEventDestroy(e_);
    }
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    cudaEvent_t get() const { return e_; }
    operator cudaEvent_t() const { return e_; }
    /// Mark the point the work queued on `stream` has reached.
    void record(cudaStream_t stream) { SOFTBIO_CUDA_CHECK(cudaEventRecord(e_, stream), "cudaEventRecord"); }
    /// Make `stream` wait (on the device) until the last record() is reached. An event
    /// never recorded is complete.
    void wait_on(cudaStream_t stream) const {
        SOFTBIO_CUDA_CHECK(cudaStreamWaitEvent(stream, e_, 0), "cudaStreamWaitEvent");
    }
    /// Wait on the host until the last record() is reached.
    void synchronize() const { SOFTBIO_CUDA_CHECK(cudaEventSynchronize(e_), "cudaEventSynchronize"); }

private:
    cudaEvent_t e_ = nullptr;
};

// ---- device facts ---------------------------------------------------------------------------

/// Number of CUDA devices; 0 when there is no device or no usable driver (never throws).
inline int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear
        return 0;
    }
    return n;
}

/// A context for the calling thread's current device, on `stream`: the device and its
/// SM count, asked from the driver on every call (no cache: cheap, and always right for
/// the device that is current now).
inline CudaContext make_context(cudaStream_t stream = cudaStreamPerThread) {
    CudaContext c;
    c.stream = stream;
    SOFTBIO_CUDA_CHECK(cudaGetDevice(&c.device), "cudaGetDevice");
    SOFTBIO_CUDA_CHECK(cudaDeviceGetAttribute(&c.sm_count, cudaDevAttrMultiProcessorCount, c.device),
                       "cudaDeviceGetAttribute(MultiProcessorCount)");
    return c;
}

// ---- memory ---------------------------------------------------------------------------------

/// Owning device memory for `count` elements of T: cudaMalloc'd (256-byte aligned, the
/// size rounded up to whole 64-byte lines), zero-filled before the constructor returns
/// (on the calling thread's default stream, then waited for: the zeros are in place
/// for every stream), move-only. DeviceBuffer (floats) is the backend's Buffer.
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(size_t count) {
        if (count == 0) return;
        const size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
        void* p = nullptr;
        const cudaError_t err = cudaMalloc(&p, bytes);
        if (err != cudaSuccess) {
            cudaGetLastError();
            throw CudaError(err, "CUDA error in DeviceBuffer: cudaMalloc of " + std::to_string(bytes) +
                                     " bytes failed: " + cudaGetErrorString(err));
        }
        data_ = static_cast<T*>(p);
        size_ = count;
        try {
            SOFTBIO_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cudaStreamPerThread), "DeviceBuffer (zero fill)");
            SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread), "DeviceBuffer (zero fill)");
        } catch (...) {
            reset();
            throw;
        }
    }
    ~DeviceArray() { reset(); }
    DeviceArray(DeviceArray&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        if (this != &o) {
            reset();
            data_ = o.data_, size_ = o.size_;
            o.data_ = nullptr, o.size_ = 0;
        }
        return *this;
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    T* data() { return data_; }
    const T* data() const { return data_; }
    size_t size() const { return size_; }
    /// Free the memory now (cudaFree waits for the device).
    void reset() noexcept {
        if (data_) cudaFree(data_);  // errors ignored: destructors must not throw
        data_ = nullptr;
        size_ = 0;
    }

private:
    T* data_ = nullptr;
    size_t size_ = 0;
};
using DeviceBuffer = DeviceArray<float>;

/// Page-locked host memory for `count` elements of T (cudaHostAlloc with `flags`):
/// copies from/to it are truly asynchronous and run at full PCIe speed. Move-only, zeroed.
template <class T>
class PinnedArray {
public:
    PinnedArray() = default;
    explicit PinnedArray(size_t count, unsigned flags = cudaHostAllocDefault) {
        if (count == 0) return;
        void* p = nullptr;
        SOFTBIO_CUDA_CHECK(cudaHostAlloc(&p, count * sizeof(T), flags), "PinnedArray (cudaHostAlloc)");
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

/// Copy `bytes` from host to device on `stream`, after the work already queued there.
/// From pinned memory the copy is asynchronous (keep the source alive and unchanged
/// until the stream reaches it); from pageable memory this waits for the copy, so the
/// source may be reused at once.
inline void copy_bytes_to_device(void* dst, const void* host, size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream), "copy_to_device");
    if (!is_pinned(host)) SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(stream), "copy_to_device");
}
inline void copy_to_device(float* dst, const float* host, size_t count, cudaStream_t stream) {
    copy_bytes_to_device(dst, host, count * sizeof(float), stream);
}
/// Copy `count` floats from device to host after all work queued on `stream`; waits.
inline void copy_to_host(float* host, const float* src, size_t count, cudaStream_t stream) {
    if (count == 0) return;
    SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(host, src, count * sizeof(float), cudaMemcpyDeviceToHost, stream), "download");
    SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(stream), "download");
}

/// Device-side ToTensor (+ Normalize): `batch` 8-bit RGB images (device memory, HWC with
/// the given byte strides) -> dst [batch, h, w, 3] floats, enqueued on ctx.stream.
/// mean/std (host arrays of 3) null: no normalize.
inline void to_tensor_u8(const std::uint8_t* src, int batch, int h, int w, size_t row_stride, size_t image_stride,
                         const float* mean, const float* std, float* dst, const CudaContext& ctx) {
    PreprocessArgs a;
    a.src = src, a.dst = dst, a.batch = batch, a.h = h, a.w = w, a.row_stride = row_stride, a.image_stride = image_stride;
    a.normalize = mean && std;
    for (int c = 0; c < 3 && a.normalize; ++c) a.mean[c] = mean[c], a.std[c] = std[c];
    preprocess_u8(a, ctx.sm_count, ctx.stream);
}

}  // namespace cuda

// ---- the backend ------------------------------------------------------------------------------

struct CudaBackend {
    static constexpr const char* name = "cuda";
    using Buffer = cuda::DeviceBuffer;
    using Context = CudaContext;

    /// A context on the calling thread's default stream for its current device.
    static Context make_context(int /*threads*/) { return cuda::make_context(); }

    /// Copy `count` host floats into a new device buffer (weights, at load time). The
    /// copy is complete when this returns. Inside a FilterStorageScope of Fp16 / Bf16
    /// (core/precision.hpp: ResNet's build opens one around each conv filter's upload)
    /// the values are a conv filter's [K][N] packing and are stored converted to that
    /// 16-bit type instead (cuda::convert_packed_weights: round to nearest even, an Error
    /// for a value past fp16's range), in a buffer of ceil(count / 2) floats' bytes:
    /// conv2d() reads it in that type when the context's precision is the same.
    static Buffer upload(const float* host, size_t count) {
        const Precision filters = filter_storage_precision();
        if (filters == Precision::Fp16 || filters == Precision::Bf16) return upload_filters_16(host, count, filters);
        Buffer b(count);
        if (count == 0) return b;
        // On the calling thread's default stream, then waited for (a copy from pageable
        // memory may otherwise return before the data has landed): afterwards the weights
        // are in place for every stream.
        SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(b.data(), host, count * sizeof(float), cudaMemcpyHostToDevice,
                                           cudaStreamPerThread), "upload");
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread), "upload");
        return b;
    }
    /// A conv filter's fp32 packing [K][N] converted to fp16 / bf16 on the host and
    /// uploaded (synchronously, like upload()).
    static Buffer upload_filters_16(const float* host, size_t count, Precision p) {
        std::vector<std::uint16_t> h(count);
        cuda::convert_packed_weights(p == Precision::Fp16 ? cuda::MmaPrecision::kFp16 : cuda::MmaPrecision::kBf16, host,
                                     count, h.data());
        Buffer b((count + 1) / 2);
        if (count == 0) return b;
        SOFTBIO_CUDA_CHECK(cudaMemcpyAsync(b.data(), h.data(), count * sizeof(std::uint16_t), cudaMemcpyHostToDevice,
                                           cudaStreamPerThread), "upload (16-bit filters)");
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(cudaStreamPerThread), "upload (16-bit filters)");
        return b;
    }
    /// Weights in host memory (the mapped file): uploaded into `storage`.
    static const float* use_weights(const float* host, size_t count, Buffer& storage) {
        storage = upload(host, count);
        return storage.data();
    }
    /// Copy `count` floats of device results to the host, after the work queued on the
    /// context's stream (waits).
    static void download(float* host, const float* src, size_t count, const Context& c) {
        cuda::copy_to_host(host, src, count, c.stream);
    }
    /// Wait until the work queued on the context's stream is done.
    static void synchronize(const Context& c) {
        SOFTBIO_CUDA_CHECK(cudaStreamSynchronize(c.stream), "synchronize");
    }

    /// The tensor-core precision of the context's convolutions (Fp32: none).
    static cuda::MmaPrecision mma_precision(const Context& c) {
        return c.precision == Precision::Tf32   ? cuda::MmaPrecision::kTf32
               : c.precision == Precision::Fp16 ? cuda::MmaPrecision::kFp16
                                                : cuda::MmaPrecision::kBf16;
    }
    static size_t conv2d_workspace_floats(const Conv2dParams& p, const Context& c) {
        return c.precision == Precision::Fp32 ? cuda::conv2d_workspace_floats(p, c.sm_count)
                                              : cuda::conv2d_mma_workspace_floats(p, mma_precision(c), c.sm_count);
    }
    /// out = epilogue(conv(in)) with fp32 tensors, in the context's precision:
    ///  fp32: conv2d (CUDA cores), `packed_w` the fp32 [K][N] packing;
    ///  tf32: conv2d_tf32 (tensor cores), the same weights, rounded to tf32 as read;
    ///  fp16 / bf16: conv2d_mma_f32io (tensor cores), `packed_w` the [K][N] packing stored
    ///  in that 16-bit type by upload() inside a FilterStorageScope of the same precision
    ///  (ResNet's build does this from LoadOptions::precision, and make_workspace sets the
    ///  context's precision from it too: a model and its workspaces always agree; a context
    ///  switched by hand between fp32 / tf32 and fp16 / bf16 would misread the filters).
    /// The workspace: conv2d_workspace_floats(p, c) floats.
    static void conv2d(const Conv2dParams& p, const float* in, const float* packed_w, float* out, const Epilogue& e,
                       float* workspace, const Context& c) {
        switch (c.precision) {
            case Precision::Fp32: cuda::conv2d(p, in, packed_w, out, e, workspace, c.sm_count, c.stream); break;
            case Precision::Tf32: cuda::conv2d_tf32(p, in, packed_w, out, e, workspace, c.sm_count, c.stream); break;
            case Precision::Fp16:
                cuda::conv2d_mma_f32io<cuda::MmaFp16>(p, in, reinterpret_cast<const std::uint16_t*>(packed_w), out, e,
                                                      workspace, c.sm_count, c.stream);
                break;
            case Precision::Bf16:
                cuda::conv2d_mma_f32io<cuda::MmaBf16>(p, in, reinterpret_cast<const std::uint16_t*>(packed_w), out, e,
                                                      workspace, c.sm_count, c.stream);
                break;
        }
    }
    static void epilogue(const Epilogue& e, float* data, size_t rows, int channels, const Context& c) {
        cuda::epilogue_inplace(e, data, rows, channels, c.sm_count, c.stream);
    }
    static void maxpool2d(const Pool2dParams& p, const float* in, float* out, const Context& c) {
        cuda::maxpool2d(p, in, out, c.sm_count, c.stream);
    }
    static void avgpool2d(const Pool2dParams& p, const float* in, float* out, const Context& c) {
        cuda::avgpool2d(p, in, out, c.sm_count, c.stream);
    }
    static void global_avgpool(int n, int h, int w, int ch, const float* in, float* out, const Context& c) {
        cuda::global_avgpool(n, h, w, ch, in, out, c.sm_count, c.stream);
    }
    static void flatten_nchw_order(int n, int h, int w, int ch, const float* in, float* out, const Context& c) {
        cuda::flatten_nchw_order(n, h, w, ch, in, out, c.sm_count, c.stream);
    }
    static void linear(int n, int in_f, int out_f, const float* x, const float* w, const float* b, float* y,
                       const Context& c) {
        cuda::linear(n, in_f, out_f, x, w, b, y, c.stream);
    }
    /// CORAL thresholds: z[n, k] = g[n] + bias[k] for k < k1.
    static void coral_logits(int n, int k1, const float* g, const float* bias, float* z, const Context& c) {
        cuda::coral_logits(n, k1, g, bias, z, c.sm_count, c.stream);
    }
};

}  // namespace softbio
