// kernels/cpu/common.hpp — small helpers shared by the CPU kernels.
#pragma once

#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio::cpu {

/// Round a float count up to a multiple of 16 floats (64 bytes), so that a block
/// carved out of a workspace right after it stays 64-byte aligned.
constexpr size_t align_up16(size_t floats) { return (floats + 15) / 16 * 16; }

}  // namespace softbio::cpu
