// softbio/core/finite.hpp — find the first NaN or infinity in an array of floats, fast.
//
// A float is non-finite exactly when its 8 exponent bits are all ones:
//     (bits & 0x7F800000) == 0x7F800000      (NaN: mantissa != 0; Inf: mantissa == 0)
// The test over a block of 256 values is written without branches (the flags are ORed
// together), so the compiler turns it into vector code; only a block that holds a bad
// value is searched again, one by one, for its index. Loading a model checks every
// weight this way (ModelFile::tensor, Conv2d's folded filters): at memory speed, not at
// one compare-and-branch per value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace softbio {

/// Index of the first NaN or infinity in p[0..n), or n when every value is finite.
inline size_t first_non_finite(const float* p, size_t n) {
    constexpr size_t kBlock = 256;
    constexpr uint32_t kExponent = 0x7F800000u;
    for (size_t b = 0; b < n; b += kBlock) {
        const size_t len = n - b < kBlock ? n - b : kBlock;
        uint32_t bad = 0;
        for (size_t i = 0; i < len; ++i) {
            uint32_t bits;
            std::memcpy(&bits, p + b + i, sizeof bits);
            bad |= uint32_t((bits & kExponent) == kExponent);
        }
        if (bad)
            for (size_t i = 0; i < len; ++i) {
                uint32_t bits;
                std::memcpy(&bits, p + b + i, sizeof bits);
                if ((bits & kExponent) == kExponent) return b + i;
            }
    }
    return n;
}

}  // namespace softbio
