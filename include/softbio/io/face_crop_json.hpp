// softbio/io/face_crop_json.hpp — the "face_crop" key of the metadata (docs/FORMAT.md 2.7)
// <-> FaceCropSpec (core/face_crop_spec.hpp): how the model's faces were cut, parsed with
// every value checked (messages name the file and the key), and written back.
//
//   "face_crop": {"method": "similarity", "size": [218, 178], "filter": "bicubic",
//                 "points": ["left_eye", "right_eye", "mouth_center"],
//                 "targets": [[70.245, 111.5], [107.737, 111.5], [88.932, 153.014]],
//                 "rotation": true, "name": "celeba"}
//   "face_crop": {"method": "box", "size": [120, 120], "filter": "bilinear",
//                 "margin": 0.15, "shift": 0.05, "name": "cacd"}
//
// A point is a name (left_eye, right_eye, nose_tip, mouth_left, mouth_right,
// mouth_center) or an index 0..67 of face-api's 68 landmarks.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"
#include "softbio/core/face_crop_spec.hpp"
#include "softbio/io/json_util.hpp"

namespace softbio {

namespace detail {

struct FaceLandmarkName {
    const char* name;
    FaceLandmark landmark;
};
inline constexpr FaceLandmarkName kFaceLandmarkNames[] = {
    {"left_eye", FaceLandmark::LeftEye},     {"right_eye", FaceLandmark::RightEye},
    {"nose_tip", FaceLandmark::NoseTip},     {"mouth_left", FaceLandmark::MouthLeft},
    {"mouth_right", FaceLandmark::MouthRight}, {"mouth_center", FaceLandmark::MouthCenter},
};

}  // namespace detail

/// Parses `v` (the value of "face_crop" in `file`'s metadata); ModelFileError naming the
/// file and the key for anything it cannot use.
inline FaceCropSpec parse_face_crop(const nlohmann::json& v, const std::string& file) {
    auto fail = [&](const std::string& key, const std::string& why) {
        throw ModelFileError(file + ": metadata " + key + ": " + why);
    };
    const std::string at = "face_crop.";
    if (!v.is_object()) fail("face_crop", "expected an object, found " + brief_json(v));
    FaceCropSpec s;
    auto get = [&](const char* key) -> const nlohmann::json& {
        if (!v.contains(key)) fail(at + key, "missing");
        return v.at(key);
    };
    auto number = [&](const char* key, double lo, double hi) {
        const auto& x = get(key);
        if (!x.is_number() || !(x.get<double>() >= lo && x.get<double>() <= hi))
            fail(at + key, "expected a number in " + brief_json(lo) + ".." + brief_json(hi) + ", found " + brief_json(x));
        return x.get<double>();
    };
    const auto& method = get("method");
    const bool similarity = method == "similarity";
    if (!similarity && method != "box")
        fail(at + "method", "expected \"similarity\" or \"box\", found " + brief_json(method));
    s.method = similarity ? FaceCropSpec::Method::Similarity : FaceCropSpec::Method::Box;
    const std::vector<std::string> known = similarity
        ? std::vector<std::string>{"method", "size", "filter", "points", "targets", "rotation", "name"}
        : std::vector<std::string>{"method", "size", "filter", "margin", "shift", "name"};
    for (auto it = v.begin(); it != v.end(); ++it)
        if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
            std::string list;
            for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
            fail(at + it.key(), "unknown key for method " + method.get<std::string>() + " (known: " + list + ")");
        }
    const auto& size = get("size");
    long long h = 0, w = 0;
    if (!size.is_array() || size.size() != 2 || !json_integer_in(size[0], 1, kMaxFaceCropSide, h) ||
        !json_integer_in(size[1], 1, kMaxFaceCropSide, w))
        fail(at + "size", "expected [height, width] of integers in 1.." + std::to_string(kMaxFaceCropSide) + ", found " +
                              brief_json(size));
    s.height = int(h), s.width = int(w);
    if (v.contains("filter")) {
        const auto& f = v.at("filter");
        if (f != "bilinear" && f != "bicubic") fail(at + "filter", "expected \"bilinear\" or \"bicubic\", found " + brief_json(f));
        s.filter = f == "bilinear" ? FaceCropSpec::Filter::Bilinear : FaceCropSpec::Filter::Bicubic;
    }
    if (v.contains("name")) {
        if (!v.at("name").is_string()) fail(at + "name", "expected a string, found " + brief_json(v.at("name")));
        s.name = v.at("name").get<std::string>();
    }
    if (!similarity) {
        s.margin = number("margin", -0.45, 10);  // > -0.5: the widened box keeps a positive size
        s.shift = number("shift", -1, 1);
        return s;
    }
    const auto& points = get("points");
    if (!points.is_array() || points.size() < 2 || points.size() > 68)
        fail(at + "points", "expected 2 to 68 landmarks, found " + brief_json(points));
    for (size_t i = 0; i < points.size(); ++i) {
        const auto& p = points[i];
        FaceCropPoint fp;
        long long index = 0;
        bool found = false;
        if (p.is_string()) {
            for (const auto& n : detail::kFaceLandmarkNames)
                if (p == n.name) fp.landmark = n.landmark, found = true;
        } else if (json_integer_in(p, 0, 67, index)) {
            fp.landmark = FaceLandmark::Point68, fp.index = int(index), found = true;
        }
        if (!found)
            fail(at + "points[" + std::to_string(i) + "]",
                 "expected left_eye, right_eye, nose_tip, mouth_left, mouth_right, mouth_center or an index 0..67, found " +
                     brief_json(p));
        s.points.push_back(fp);
    }
    const auto& targets = get("targets");
    if (!targets.is_array() || targets.size() != points.size())
        fail(at + "targets", "expected " + std::to_string(points.size()) + " [x, y] pairs (one per point), found " +
                                 brief_json(targets));
    const double limit = 4.0 * kMaxFaceCropSide;
    for (size_t i = 0; i < targets.size(); ++i) {
        const auto& t = targets[i];
        if (!t.is_array() || t.size() != 2 || !t[0].is_number() || !t[1].is_number() ||
            !(std::abs(t[0].get<double>()) <= limit) || !(std::abs(t[1].get<double>()) <= limit))
            fail(at + "targets[" + std::to_string(i) + "]", "expected [x, y], numbers within +-" + brief_json(limit) +
                                                                ", found " + brief_json(t));
        s.targets.push_back({t[0].get<double>(), t[1].get<double>()});
    }
    if (v.contains("rotation")) {
        if (!v.at("rotation").is_boolean()) fail(at + "rotation", "expected true or false, found " + brief_json(v.at("rotation")));
        s.rotation = v.at("rotation").get<bool>();
    }
    // The targets must span something, or no scale can be fitted to them.
    double spread = 0;
    for (const auto& t : s.targets)
        spread = std::max({spread, std::abs(t[0] - s.targets[0][0]), std::abs(t[1] - s.targets[0][1])});
    if (!(spread > 0)) fail(at + "targets", "all targets are the same point; no scale can be fitted");
    return s;
}

inline nlohmann::json face_crop_to_json(const FaceCropSpec& s) {
    nlohmann::json j = {{"method", s.method == FaceCropSpec::Method::Similarity ? "similarity" : "box"},
                        {"size", {s.height, s.width}},
                        {"filter", s.filter == FaceCropSpec::Filter::Bicubic ? "bicubic" : "bilinear"}};
    if (s.method == FaceCropSpec::Method::Similarity) {
        nlohmann::json points = nlohmann::json::array(), targets = nlohmann::json::array();
        for (const auto& p : s.points) {
            if (p.landmark == FaceLandmark::Point68) {
                points.push_back(p.index);
                continue;
            }
            for (const auto& n : detail::kFaceLandmarkNames)
                if (n.landmark == p.landmark) points.push_back(n.name);
        }
        for (const auto& t : s.targets) targets.push_back({t[0], t[1]});
        j["points"] = points, j["targets"] = targets, j["rotation"] = s.rotation;
    } else {
        j["margin"] = s.margin, j["shift"] = s.shift;
    }
    if (!s.name.empty()) j["name"] = s.name;
    return j;
}

}  // namespace softbio
