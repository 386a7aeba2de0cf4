// softbio/face/crops.hpp — which pixels each per-face network sees, and how its outputs
// map back to the image (docs/FACE_MODELS.md §4 and §6), as face-api does it.
//
// Cutting a box: clip it to the image, then floor x, y, width and height:
//   x0 = max(x, 0), y0 = max(y, 0), w = min(x + width - x0, W - x0), h likewise;
//   region = (floor(x0), floor(y0), floor(w), floor(h)); empty when w or h <= 0.
// (The crop is then padded to a centred square and resized by the network's own
// preprocessing chain, image/preprocess.hpp.)
//
// Landmarks: the network gives 68 (x, y) pairs relative to its S x S input. With the crop
// of cw x ch pixels, s = S / max(cw, ch), sw = cw * s, sh = ch * s and the centring pad
// px = |sw - sh| / 2 on the shorter side (0 on the other), face-api computes in float32
// tensors (each operation rounded to float32)
//   rel_x = (out_x * S - px) / sw,   rel_y = (out_y * S - py) / sh
// and then, in JavaScript doubles, x = rel_x * cw + box.x, y = rel_y * ch + box.y, where
// box is the detection box as detected: neither clipped nor floored.
// Aligned rect (the age/gender crop): the bounding box of the 68 points, whose maxima
// start at 0 (not -infinity; face-api's quirk), widened by 20%:
//   (x0 - 0.1 w, y0 - 0.1 h, 1.2 w, 1.2 h), w = x1 - x0, h = y1 - y0. Not made square.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "softbio/core/fp32.hpp"
#include "softbio/face/geometry.hpp"

namespace softbio::face {

/// An integer pixel region of an image; empty() when nothing of the box lies inside.
struct PixelRegion {
    int x = 0, y = 0, width = 0, height = 0;
    bool empty() const { return width <= 0 || height <= 0; }
};

/// The pixels face-api cuts for `box` from an image_width x image_height image.
inline PixelRegion crop_region(const Box& box, int image_width, int image_height) {
    const double x0 = std::max(box.x, 0.0), y0 = std::max(box.y, 0.0);
    const double w = std::min(box.x + box.width - x0, double(image_width) - x0);
    const double h = std::min(box.y + box.height - y0, double(image_height) - y0);
    // NaN or a box wholly outside: empty. Floors of finite values within the image fit in int.
    if (!(w > 0) || !(h > 0) || !(x0 < image_width) || !(y0 < image_height)) return PixelRegion{};
    return PixelRegion{int(std::floor(x0)), int(std::floor(y0)), int(std::floor(w)), int(std::floor(h))};
}

/// Maps the landmark network's `count` (x, y) outputs (relative to its input_size x
/// input_size input) for the crop `region` of detection `box` to image pixels.
inline void landmarks_to_image(const float* out, int count, int input_size, const PixelRegion& region,
                               const Box& box, Point* points) {
    const double S = input_size, cw = region.width, ch = region.height;
    const double s = S / std::max(cw, ch), sw = cw * s, sh = ch * s;
    const double px = sw < sh ? std::abs(sw - sh) / 2 : 0.0, py = sh < sw ? std::abs(sw - sh) / 2 : 0.0;
    const float Sf = float(S), pxf = float(px), pyf = float(py), swf = float(sw), shf = float(sh);
    for (int i = 0; i < count; ++i) {
        const float rx = rounded_f32(rounded_f32(rounded_f32(out[2 * i] * Sf) - pxf) / swf);
        const float ry = rounded_f32(rounded_f32(rounded_f32(out[2 * i + 1] * Sf) - pyf) / shf);
        points[i].x = double(rx) * cw + box.x;
        points[i].y = double(ry) * ch + box.y;
    }
}

/// face-api's "aligned rect" of `count` landmarks (see the file comment).
inline Box aligned_rect(const Point* points, int count) {
    double x0 = std::numeric_limits<double>::infinity(), y0 = x0, x1 = 0, y1 = 0;
    for (int i = 0; i < count; ++i) {
        x0 = std::min(x0, points[i].x), y0 = std::min(y0, points[i].y);
        x1 = std::max(x1, points[i].x), y1 = std::max(y1, points[i].y);
    }
    const double w = x1 - x0, h = y1 - y0;
    return Box{x0 - 0.1 * w, y0 - 0.1 * h, w * 1.2, h * 1.2};
}

}  // namespace softbio::face
