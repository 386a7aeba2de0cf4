// softbio/core/random.hpp — SplitMix64: a tiny, fully specified random generator.
//
// Used wherever softbio needs reproducible random numbers (synthetic weights, test
// data on every backend): the same seed gives the same numbers with every compiler and
// standard library, which <random>'s distributions do not promise.
#pragma once

#include <cmath>
#include <cstdint>

namespace softbio {

class SplitMix64 {
public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// Uniform in (0, 1).
    double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
    /// Standard normal (Box-Muller).
    double normal() {
        const double u1 = uniform(), u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }

private:
    uint64_t state_;
};

}  // namespace softbio
