// softbio/core/limits.hpp — the limits softbio checks before it allocates, so that a
// hostile file or a mistaken argument ends in a clear error instead of an out-of-memory
// kill, a bare std::bad_alloc or an OpenMP failure. docs/RELIABILITY.md lists them all.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>
#include <string>

#include "softbio/core/error.hpp"

namespace softbio {

/// Most threads one workspace may use (OpenMP runtimes fail in odd ways far beyond
/// the core count; no machine softbio targets needs more).
inline constexpr int kMaxThreads = 256;

namespace detail {
inline std::atomic<size_t>& workspace_limit() {
    static std::atomic<size_t> bytes{size_t(4) << 30};  // 4 GiB
    return bytes;
}
}  // namespace detail

/// Largest working memory one Workspace may plan (activations, scratch, logits), in
/// bytes; make_workspace() refuses more before allocating anything. Default 4 GiB.
inline void set_workspace_limit(size_t bytes) { detail::workspace_limit() = bytes; }
inline size_t workspace_limit() { return detail::workspace_limit(); }

/// Run `allocate`, turning an allocation failure into an Error that says what was
/// being allocated (`what`) and how much.
template <class F>
auto allocate_or_explain(const std::string& what, size_t bytes, F&& allocate) -> decltype(allocate()) {
    try {
        return allocate();
    } catch (const std::bad_alloc&) {
        throw Error("out of memory allocating " + what + " (" + std::to_string(bytes >> 20) + " MiB)");
    }
}

}  // namespace softbio
