// kernels/cuda/check.cuh — turning CUDA errors into softbio::Error exceptions.
//
// Every CUDA runtime call returns a cudaError_t, and a kernel launch reports its errors
// twice: a bad configuration (too many threads, too much shared memory) at once, through
// cudaGetLastError(); a fault while it runs (an illegal address) only later, at the next
// synchronising call, and then from whatever call happens to come next. So:
//
//   SOFTBIO_CUDA_CHECK(cudaMalloc(&p, bytes), "DeviceBuffer");   // any runtime call
//   my_kernel<<<grid, block, smem, stream>>>(...);
//   softbio::cuda::check_launch("conv2d", stream);                 // after every launch
//
// Both throw softbio::cuda::CudaError (a softbio::Error) whose message names the op,
// the file and line, the error's name and its description:
//   "CUDA error in conv2d (kernels/cuda/conv2d_implicit_gemm.cuh:512): cudaErrorInvalidConfiguration: invalid configuration argument"
//
// Asynchronous faults: set the environment variable SOFTBIO_CUDA_SYNC=1 and
// check_launch() synchronises the stream after every launch (unless the stream is being
// captured into a CUDA graph), so a fault is reported by the op that caused it. Slow;
// for debugging only.
//
// This header is host code only and needs nvcc or a host compiler with the CUDA
// runtime headers on the include path.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <string>

#include "softbio/core/error.hpp"

namespace softbio::cuda {

/// A CUDA runtime error, with the op that saw it. `code()` is the cudaError_t.
class CudaError : public Error {
public:
    CudaError(cudaError_t code, const std::string& what) : Error(what), code_(code) {}
    cudaError_t code() const { return code_; }

private:
    cudaError_t code_;
};

/// Throw a CudaError for `err` (a no-op for cudaSuccess).
inline void throw_on_error(cudaError_t err, const char* op, const char* file, int line) {
    if (err == cudaSuccess) return;
    std::string where = std::string(file) + ":" + std::to_string(line);
    throw CudaError(err, std::string("CUDA error in ") + op + " (" + where + "): " + cudaGetErrorName(err) + ": " +
                             cudaGetErrorString(err));
}

/// True when SOFTBIO_CUDA_SYNC is set to something other than "0" (read once).
inline bool sync_after_launch() {
    static const bool on = [] {
        const char* v = std::getenv("SOFTBIO_CUDA_SYNC");
        return v && *v && std::string(v) != "0";
    }();
    return on;
}

}  // namespace softbio::cuda

/// Check a CUDA runtime call; `op` names the softbio operation for the message.
#define SOFTBIO_CUDA_CHECK(call, op) ::softbio::cuda::throw_on_error((call), (op), __FILE__, __LINE__)

/// After a kernel launch: throw on a launch error; with SOFTBIO_CUDA_SYNC=1 also wait for
/// the kernel and throw on a fault it raised.
#define SOFTBIO_CUDA_CHECK_LAUNCH(op, stream) ::softbio::cuda::check_launch_at((op), (stream), __FILE__, __LINE__)

namespace softbio::cuda {

inline void check_launch_at(const char* op, cudaStream_t stream, const char* file, int line) {
    // cudaGetLastError also clears a (non-sticky) launch error, so the next op starts clean.
    throw_on_error(cudaGetLastError(), op, file, line);
    if (!sync_after_launch()) return;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    throw_on_error(cudaStreamIsCapturing(stream, &capture), op, file, line);
    if (capture != cudaStreamCaptureStatusNone) return;  // synchronising would break the capture
    throw_on_error(cudaStreamSynchronize(stream), op, file, line);
}

}  // namespace softbio::cuda
