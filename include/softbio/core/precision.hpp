// softbio/core/precision.hpp — the arithmetic of the convolutions (LoadOptions::precision),
// here in core so that a backend's context can carry it (backend/cuda.hpp: CudaContext)
// without the backends depending on the model layer.
#pragma once

namespace softbio {

/// The arithmetic of the convolutions. Fp32 (CUDA cores or the CPU) is the default and
/// the reference; Tf32 (fp32 storage, inputs rounded to tf32), Fp16 and Bf16 (16-bit
/// storage) run on the tensor cores with fp32 accumulation (kernels/cuda/conv2d_mma.cuh).
/// Loads refuse what the backend cannot run (io/load.hpp: require_precision): the CUDA
/// backend runs Fp32 and Tf32; Fp16 and Bf16 are not wired into it yet.
enum class Precision { Fp32, Tf32, Fp16, Bf16 };

}  // namespace softbio
