// softbio/core/face_crop_spec.hpp — how a model's faces were cut from photos, as typed
// data (docs/FORMAT.md 2.7, docs/FACE_MODELS.md §9): the crop the face pipeline makes for
// the model from a detected face before the model's own preprocessing chain runs. Parsed
// once from the metadata (io/metadata.hpp) and applied by face/align.hpp; this header
// holds no pixels and no JSON.
//
// Two methods, both an affine map from the photo to a crop of size x size pixels:
//   similarity  a least-squares similarity transform (rotation, uniform scale, shift; no
//               reflection) taking named landmarks of the face onto fixed target points
//               of the crop, as CelebA's alignment does (rotation off: scale and shift
//               only, as eye-based alignments without rotation do);
//   box         the detector's box, widened by `margin` of its size on every side, moved
//               up by `shift` of its height, made square by widening its shorter side,
//               and scaled to the crop.
// Coordinates are continuous: pixel (row r, column c) covers [c, c+1) x [r, r+1), so its
// centre is (c + 0.5, r + 0.5), in the photo and in the crop alike.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"

namespace softbio {

/// Largest side of a face crop, in pixels (the crop is an image the model's chain then
/// resizes; datasets' crops are a few hundred pixels).
inline constexpr int kMaxFaceCropSide = 4096;

/// A landmark the similarity method can use: one of the 68 points, or a mean of several.
enum class FaceLandmark {
    LeftEye,      // mean of points 36-41 (the eye with the smaller x in the photo)
    RightEye,     // mean of points 42-47
    NoseTip,      // point 30
    MouthLeft,    // point 48
    MouthRight,   // point 54
    MouthCenter,  // mean of points 48 and 54
    Point68,      // one of the 68 points by index (FaceCropPoint::index)
};

struct FaceCropPoint {
    FaceLandmark landmark = FaceLandmark::LeftEye;
    int index = -1;  // Point68: 0..67
};

struct FaceCropSpec {
    enum class Method { Similarity, Box } method = Method::Similarity;
    enum class Filter { Bilinear, Bicubic } filter = Filter::Bicubic;
    int height = 0, width = 0;  // the crop's size in pixels
    // similarity
    std::vector<FaceCropPoint> points;        // landmarks of the face ...
    std::vector<std::array<double, 2>> targets;  // ... and where they go in the crop, (x, y)
    bool rotation = true;                     // false: scale and shift only
    // box
    double margin = 0, shift = 0;
    std::string name;  // free text naming the geometry (e.g. "celeba"), shown to users
};

/// Named crops of docs/FACE_MODELS.md §9, for tools that write model files.
///   celeba  CelebA's img_align_celeba: 178 x 218, similarity on the eyes and the mouth
///           centre to MATLAB's (70.745, 112), (108.237, 112), (89.432, 153.514), which
///           are 1-based pixel centres: minus 0.5 in continuous coordinates; bicubic.
///   cacd    coral-cnn's CACD faces: the detector's box with a margin of 0.15 of its
///           size, moved up 0.05 of its height, squared, 120 x 120, bilinear. (CACD
///           used 15 px and 5 px around dlib's box in 250 x 250 photos; softbio scales
///           them to the box, taking dlib's box as about 100 px, and face-api's box is
///           not dlib's: an approximation, stated as one.)
/// Throws Error for another name.
inline FaceCropSpec named_face_crop(const std::string& name) {
    FaceCropSpec s;
    s.name = name;
    if (name == "celeba") {
        s.method = FaceCropSpec::Method::Similarity, s.filter = FaceCropSpec::Filter::Bicubic;
        s.height = 218, s.width = 178;
        s.points = {{FaceLandmark::LeftEye, -1}, {FaceLandmark::RightEye, -1}, {FaceLandmark::MouthCenter, -1}};
        s.targets = {{70.245, 111.5}, {107.737, 111.5}, {88.932, 153.014}};
        return s;
    }
    if (name == "cacd") {
        s.method = FaceCropSpec::Method::Box, s.filter = FaceCropSpec::Filter::Bilinear;
        s.height = s.width = 120;
        s.margin = 0.15, s.shift = 0.05;
        return s;
    }
    throw Error("unknown face crop \"" + name + "\" (known: celeba, cacd)");
}

}  // namespace softbio
