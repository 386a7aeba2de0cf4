// softbio/core/fp32.hpp — one float32 operation rounded on its own, as an original that
// computes in float32 tensors (tfjs, face-api) rounds it.
//
// C++ compilers may fuse a multiplication with the addition that follows into one FMA
// (GCC does so by default when the target has FMA: -ffp-contract=fast, even across
// statements), which skips the rounding of the product. Where softbio must reproduce
// another implementation's float32 results bit for bit, the intermediate result goes
// through a volatile float: the compiler must store and reload it, so it is rounded.
#pragma once

namespace softbio {

/// `v` rounded to float32 here, never fused with the next operation into an FMA.
inline float rounded_f32(float v) {
    volatile float barrier = v;
    return barrier;
}

}  // namespace softbio
