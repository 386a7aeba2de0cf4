// softbio/io/json_util.hpp — reading untrusted JSON (model file headers and metadata)
// without trusting it: bounded nesting, integers range-checked before any narrowing,
// and error messages that describe a bad value briefly instead of printing it whole.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"

namespace softbio {

/// Deepest nesting a softbio header or metadata document may have. The real documents
/// nest 4 levels; a limit well above that refuses a file built to exhaust the stack
/// of whatever walks the document later.
inline constexpr int kMaxJsonDepth = 32;

/// Free a document bottom-up without allocating. nlohmann-json's destructor moves the
/// children of a non-empty container onto a heap-allocated work stack; if that
/// allocation failed, the exception would leave a destructor and end the process. Once
/// every container below is empty, destroying it needs no memory. The recursion is
/// bounded by kMaxJsonDepth.
inline void release_json(nlohmann::json& v) noexcept {
    if (v.is_array()) {
        auto& a = v.get_ref<nlohmann::json::array_t&>();
        for (auto& e : a) release_json(e);
        a.clear();
    } else if (v.is_object()) {
        auto& o = v.get_ref<nlohmann::json::object_t&>();
        for (auto& kv : o) release_json(kv.second);
        o.clear();
    }
}

/// A parsed untrusted document; frees itself with release_json().
struct JsonDocument {
    nlohmann::json root;
    JsonDocument() = default;
    JsonDocument(const JsonDocument&) = delete;
    JsonDocument& operator=(const JsonDocument&) = delete;
    ~JsonDocument() { release_json(root); }
};

/// Parse `n` bytes of JSON into `doc`. Throws ModelFileError starting with `what` when
/// the text holds a NUL byte, is not valid JSON, or nests deeper than kMaxJsonDepth.
inline void parse_untrusted_json(const char* text, size_t n, const std::string& what, JsonDocument& doc) {
    if (const void* nul = std::memchr(text, 0, n))
        throw ModelFileError(what + " holds a NUL byte at offset " +
                             std::to_string(static_cast<const char*>(nul) - text) + " (JSON text never does)");
    try {
        doc.root = nlohmann::json::parse(text, text + n, [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
            if (depth > kMaxJsonDepth)
                throw ModelFileError(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
            return true;
        });
    } catch (const nlohmann::json::exception& e) {
        throw ModelFileError(what + " is not valid JSON: " + e.what());
    }
}

/// A short description of a JSON value for an error message: scalars as written
/// (strings cut at 60 characters), a short flat array element by element, other
/// containers by kind and size; never recursively.
inline std::string brief_json(const nlohmann::json& v) {
    if (v.is_object()) return "an object with " + std::to_string(v.size()) + " keys";
    if (v.is_array()) {
        bool flat = v.size() <= 8;
        for (const auto& e : v) flat = flat && e.is_primitive();
        if (!flat) return "an array of " + std::to_string(v.size()) + " elements";
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + brief_json(v[i]);  // scalars: one level
        return out + "]";
    }
    if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        // Cut at 60 bytes, and write invalid UTF-8 (from the file, or from the cut) as
        // U+FFFD instead of letting dump() throw.
        const auto quoted = [](const std::string& t) {
            return nlohmann::json(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        };
        return s.size() <= 60 ? quoted(s) : quoted(s.substr(0, 60)) + "...";
    }
    return v.dump();  // a number, true/false or null: one token
}

/// True when `v` is an integer in [lo, hi] (checked on the JSON's own 64-bit value,
/// before any narrowing: 2^32 + 1 is not 1). Stores it in `out`.
inline bool json_integer_in(const nlohmann::json& v, long long lo, long long hi, long long& out) {
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > uint64_t(INT64_MAX) || (long long)u < lo || (long long)u > hi) return false;
        out = (long long)u;
        return true;
    }
    if (!v.is_number_integer()) return false;
    const long long x = v.get<long long>();
    if (x < lo || x > hi) return false;
    out = x;
    return true;
}

}  // namespace softbio
