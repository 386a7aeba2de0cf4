// softbio/core/precision.hpp — the arithmetic of the convolutions (LoadOptions::precision),
// here in core so that a backend's context can carry it (backend/cuda.hpp: CudaContext)
// without the backends depending on the model layer.
#pragma once

namespace softbio {

/// The arithmetic of the convolutions. Fp32 (CUDA cores or the CPU) is the default and
/// the reference. On the CUDA backend (kernels/cuda/conv2d_mma.cuh), with fp32
/// accumulation and an fp32 epilogue (BatchNorm bias, residual, ReLU) in every case:
///  * Tf32: fp32 weights and activations, both rounded to tf32 (cvt.rna) as the tensor
///    cores read them (conv2d_tf32);
///  * Fp16 / Bf16: the filters (BatchNorm folded first) stored in the 16-bit type,
///    converted once at load (round to nearest even); the activations between layers
///    stay fp32 and each convolution rounds its input to the 16-bit type as it gathers
///    it (conv2d_mma_f32io); pools, the residual stream and the heads stay fp32.
/// On the CPU backend (kernels/cpu/gemm_bf16.hpp), Bf16 the same way: bf16 filter panels
/// packed once at load, each convolution's input rounded to bf16 pairs as it is packed,
/// AVX512_BF16's vdpbf16ps summing the products in fp32, the fp32 epilogue; everything
/// between the convolutions fp32.
/// Loads refuse what the backend cannot run (io/load.hpp: require_precision): the CPU
/// backend runs Fp32, and Bf16 where the CPU has AVX512_BF16 (and the build targets it);
/// the CUDA backend runs all four.
enum class Precision { Fp32, Tf32, Fp16, Bf16 };

/// The storage of the convolution filters a backend uploads on this thread: Fp32 except
/// while a FilterStorageScope is alive. ResNet's build opens one with the model's
/// LoadOptions::precision around each ConvBn's construction, whose only upload is its
/// filter (pack_conv_weights' [K][N]), so that CudaBackend::upload stores that filter
/// in 16 bits, once, for Fp16 / Bf16 (other backends ignore it). A thread-local rather
/// than an argument because the layers' upload call (layers/conv2d.hpp:
/// Backend::upload(data, count)) has no precision; a conv-filter upload with one
/// (Backend::upload_filters) would replace it.
inline Precision& filter_storage_precision() {
    thread_local Precision p = Precision::Fp32;
    return p;
}

/// Sets filter_storage_precision() for its lifetime (restores the previous one).
class FilterStorageScope {
public:
    explicit FilterStorageScope(Precision p) : saved_(filter_storage_precision()) { filter_storage_precision() = p; }
    ~FilterStorageScope() { filter_storage_precision() = saved_; }
    FilterStorageScope(const FilterStorageScope&) = delete;
    FilterStorageScope& operator=(const FilterStorageScope&) = delete;

private:
    Precision saved_;
};

}  // namespace softbio
