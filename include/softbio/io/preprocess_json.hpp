// softbio/io/preprocess_json.hpp — the metadata's "preprocess" object (docs/FORMAT.md
// 2.4, 2.6) <-> the typed PreprocessSpec (core/preprocess_spec.hpp): parsing with full
// validation, and writing back. torchvision's 8-bit chains and face-api's float32 chains.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"
#include "softbio/core/preprocess_spec.hpp"
#include "softbio/io/json_util.hpp"

namespace softbio {

/// Parse and validate the metadata's "preprocess" object. Steps are numbered from 1 in
/// messages: "<context>: preprocess step 2 (resize): ...". Unknown keys are refused (a
/// misspelt option must not be silently ignored). Two grammars (docs/FORMAT.md 2.4):
///   torchvision: [center_crop | resize (bilinear)]* to_tensor [normalize]
///   face-api:    to_float [pad_to_square | resize (tf_bilinear)]* [normalize]
/// Throws ModelFileError.
inline PreprocessSpec parse_preprocess(const nlohmann::json& pre, const std::string& context) {
    using Op = PreprocessStep::Op;
    auto fail = [&](const std::string& what) -> void { throw ModelFileError(context + ": preprocess: " + what); };
    if (!pre.is_object()) fail("expected an object with a \"steps\" array, found " + brief_json(pre));
    for (auto it = pre.begin(); it != pre.end(); ++it)
        if (it.key() != "steps") fail("unknown key \"" + it.key() + "\" (known: steps)");
    if (!pre.contains("steps") || !pre["steps"].is_array()) fail("expected a \"steps\" array");
    const auto& steps = pre["steps"];
    if (steps.empty()) fail("\"steps\" is empty; the chain must end with to_tensor");
    static const char* const kKnownOps = "center_crop, resize, to_tensor, normalize, to_float, pad_to_square";

    PreprocessSpec spec;
    bool float_chain = false;  // the chain started with to_float (face-api's float32 pixels)
    for (size_t i = 0; i < steps.size(); ++i) {
        const auto& s = steps[i];
        std::string where = context + ": preprocess step " + std::to_string(i + 1);
        auto sfail = [&](const std::string& what) -> void { throw ModelFileError(where + ": " + what); };
        if (!s.is_object()) sfail("expected an object with an \"op\", found " + brief_json(s));
        if (!s.contains("op") || !s["op"].is_string()) sfail(std::string("missing \"op\" (one of ") + kKnownOps + ")");
        const std::string op = s["op"].get<std::string>();
        where += " (" + op + ")";
        PreprocessStep st;
        std::vector<std::string> keys;
        if (op == "center_crop") {
            st.op = Op::CenterCrop, keys = {"op", "size"};
        } else if (op == "resize") {
            st.op = Op::Resize, keys = {"op", "size", "shorter_side", "max_size", "filter"};
        } else if (op == "to_tensor") {
            st.op = Op::ToTensor, keys = {"op"};
        } else if (op == "normalize") {
            st.op = Op::Normalize, keys = {"op", "mean", "std"};
        } else if (op == "to_float") {
            st.op = Op::ToFloat, keys = {"op"};
        } else if (op == "pad_to_square") {
            st.op = Op::PadToSquare, keys = {"op", "anchor"};
        } else {
            sfail("unknown op \"" + op + "\" (known: " + kKnownOps + ")");
        }
        // A resize is either fixed-size (size, filter) or aspect-preserving (shorter_side,
        // max_size, filter): a misspelt key is answered with the keys of the form in use.
        std::vector<std::string> shown = keys;
        if (st.op == Op::Resize && s.contains("size") != s.contains("shorter_side"))
            shown = s.contains("size") ? std::vector<std::string>{"op", "size", "filter"}
                                       : std::vector<std::string>{"op", "shorter_side", "max_size", "filter"};
        for (auto it = s.begin(); it != s.end(); ++it) {
            if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
                std::string known;
                for (size_t k = 1; k < shown.size(); ++k) known += (k > 1 ? ", " : "") + shown[k];
                sfail("unknown key \"" + it.key() + "\"" + (known.empty() ? " (this op takes no options)" : " (known: " + known + ")"));
            }
        }
        // face-api's chain: to_float first, then float32 pixels only.
        if (st.op == Op::ToFloat) {
            if (i != 0)
                sfail("to_float must be the first step (it starts face-api's float32 chain: to_float, "
                      "pad_to_square/resize, normalize)");
            float_chain = true;
        }
        if (float_chain && (st.op == Op::CenterCrop || st.op == Op::ToTensor))
            sfail(op + " is a step of torchvision's 8-bit chain; after to_float the pixels are float32 (0..255): "
                       "use pad_to_square, resize with \"filter\": \"tf_bilinear\", normalize");
        if (!float_chain && st.op == Op::PadToSquare)
            sfail("pad_to_square works on float32 pixels: the chain must start with to_float");
        if (st.op == Op::PadToSquare) {
            if (!s.contains("anchor")) sfail("missing \"anchor\": \"top_left\" or \"center\"");
            const auto& a = s["anchor"];
            if (!a.is_string() || (a.get<std::string>() != "top_left" && a.get<std::string>() != "center"))
                sfail("\"anchor\" must be \"top_left\" (padding right/bottom) or \"center\", found " + brief_json(a));
            st.anchor = a.get<std::string>() == "center" ? PreprocessStep::Anchor::Center : PreprocessStep::Anchor::TopLeft;
        }
        if (st.op == Op::Resize && float_chain && (s.contains("shorter_side") || s.contains("max_size")))
            sfail("a tf_bilinear resize takes \"size\": [height, width] only (no shorter_side/max_size)");
        if (st.op == Op::Resize && s.contains("shorter_side")) {
            // torchvision's Resize(N[, max_size=M]): the size follows from the image.
            if (s.contains("size"))
                sfail("has both \"size\" and \"shorter_side\"; give one: \"size\": [height, width] (a fixed size) or "
                      "\"shorter_side\": N (the shorter side becomes N, the aspect ratio is kept)");
            long long n = 0, m = 0;
            if (!json_integer_in(s["shorter_side"], 1, kMaxPreprocessSide, n))
                sfail("\"shorter_side\" must be an integer in 1.." + std::to_string(kMaxPreprocessSide) + ", found " +
                      brief_json(s["shorter_side"]));
            if (s.contains("max_size")) {
                if (!json_integer_in(s["max_size"], 1, kMaxPreprocessSide, m))
                    sfail("\"max_size\" must be an integer in 1.." + std::to_string(kMaxPreprocessSide) + ", found " +
                          brief_json(s["max_size"]));
                if (m <= n)
                    sfail("\"max_size\" " + std::to_string(m) + " must be greater than \"shorter_side\" " + std::to_string(n) +
                          " (torchvision refuses max_size <= size)");
            }
            st.shorter_side = int(n);
            st.max_size = int(m);
        } else if (st.op == Op::Resize && s.contains("max_size")) {
            sfail("\"max_size\" applies only with \"shorter_side\" (it caps the longer side of an aspect-preserving resize)");
        } else if (st.op == Op::CenterCrop || st.op == Op::Resize) {
            if (!s.contains("size"))
                sfail(st.op == Op::Resize ? "missing \"size\": [height, width] (or \"shorter_side\": N)"
                                          : "missing \"size\": [height, width]");
            const auto& sz = s["size"];
            long long h = 0, w = 0;
            if (!sz.is_array() || sz.size() != 2 || !json_integer_in(sz[0], 1, kMaxPreprocessSide, h) ||
                !json_integer_in(sz[1], 1, kMaxPreprocessSide, w))
                sfail("\"size\" must be [height, width] with integers in 1.." + std::to_string(kMaxPreprocessSide) +
                      ", found " + brief_json(sz));
            st.height = int(h);
            st.width = int(w);
        }
        if (st.op == Op::Resize) {
            // torchvision chain: "bilinear" (optional, the default); float chain: "tf_bilinear" (required).
            if (float_chain) {
                if (!s.contains("filter"))
                    sfail("missing \"filter\": \"tf_bilinear\" (a resize after to_float is tf.image.resizeBilinear)");
                const auto& f = s["filter"];
                if (!f.is_string() || f.get<std::string>() != "tf_bilinear")
                    sfail("\"filter\" " + brief_json(f) + " is not supported after to_float (expected \"tf_bilinear\": "
                          "tf.image.resizeBilinear on float32 pixels)");
                st.filter = PreprocessStep::Filter::TfBilinear;
            } else if (s.contains("filter")) {
                const auto& f = s["filter"];
                if (f.is_string() && f.get<std::string>() == "tf_bilinear")
                    sfail("\"filter\" \"tf_bilinear\" resizes float32 pixels: it needs a chain that starts with to_float");
                if (!f.is_string() || f.get<std::string>() != "bilinear")
                    sfail("\"filter\" " + brief_json(f) + " is not supported (this build resizes with \"bilinear\", torchvision's default)");
            }
        }
        if (st.op == Op::Normalize) {
            for (const char* key : {"mean", "std"}) {
                if (!s.contains(key)) sfail(std::string("missing \"") + key + "\": 3 numbers (R, G, B)");
                const auto& a = s[key];
                bool good = a.is_array() && a.size() == 3;
                if (good)
                    for (const auto& v : a)  // finite once rounded to float32, too (1e308 is not)
                        good = good && v.is_number() && std::isfinite(v.get<double>()) && std::isfinite(float(v.get<double>()));
                if (!good) sfail(std::string("\"") + key + "\" must be 3 finite numbers (R, G, B), found " + brief_json(a));
                auto& dst = std::string(key) == "mean" ? st.mean : st.std;
                for (int c = 0; c < 3; ++c) dst[size_t(c)] = float(a[size_t(c)].get<double>());
            }
            for (int c = 0; c < 3; ++c)
                if (st.std[size_t(c)] == 0.0f) sfail("\"std\" has a zero (channel " + std::to_string(c) + "): division by zero");
        }
        if (float_chain) {
            // Order: to_float [pad_to_square | resize]* [normalize]
            if (!spec.steps.empty() && spec.steps.back().op == Op::Normalize)
                sfail("comes after normalize, which must be the last step of a to_float chain");
        } else {
            // Order: [center_crop|resize]* to_tensor [normalize]
            const bool have_tensor = !spec.steps.empty() && (spec.steps.back().op == Op::ToTensor || spec.steps.back().op == Op::Normalize);
            if ((st.op == Op::CenterCrop || st.op == Op::Resize) && have_tensor)
                sfail("comes after to_tensor; center_crop and resize work on the 8-bit image and must come before to_tensor");
            if (st.op == Op::ToTensor && have_tensor) sfail("a second to_tensor");
            if (st.op == Op::Normalize && (spec.steps.empty() || spec.steps.back().op != Op::ToTensor))
                sfail("normalize must directly follow to_tensor (and appear once)");
        }
        spec.steps.push_back(st);
    }
    const Op last = spec.steps.back().op;
    if (!float_chain && last != Op::ToTensor && last != Op::Normalize)
        fail("the chain must end with to_tensor (optionally followed by normalize); it ends with " +
             std::string(preprocess_op_name(last)));
    return spec;
}

/// A float as the shortest decimal that reads back as the same float ("0.485", not
/// 0.48500001430511475): what a person wrote in the metadata, written back as such.
inline double shortest_decimal(float f) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, f);
    return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

/// The metadata JSON of a chain (inverse of parse_preprocess).
inline nlohmann::json preprocess_to_json(const PreprocessSpec& spec) {
    using Op = PreprocessStep::Op;
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : spec.steps) {
        nlohmann::json j = {{"op", preprocess_op_name(s.op)}};
        if (s.op == Op::CenterCrop) j["size"] = {s.height, s.width};
        if (s.op == Op::PadToSquare) j["anchor"] = s.anchor == PreprocessStep::Anchor::Center ? "center" : "top_left";
        if (s.op == Op::Resize && s.filter == PreprocessStep::Filter::TfBilinear) {
            j["size"] = {s.height, s.width};
            j["filter"] = "tf_bilinear";
        } else if (s.op == Op::Resize) {
            if (s.shorter_side > 0) {
                j["shorter_side"] = s.shorter_side;
                if (s.max_size > 0) j["max_size"] = s.max_size;
            } else {
                j["size"] = {s.height, s.width};
            }
            j["filter"] = "bilinear";
        }
        if (s.op == Op::Normalize)
            for (int c = 0; c < 3; ++c)
                j["mean"].push_back(shortest_decimal(s.mean[size_t(c)])), j["std"].push_back(shortest_decimal(s.std[size_t(c)]));
        steps.push_back(j);
    }
    return {{"steps", steps}};
}

}  // namespace softbio
