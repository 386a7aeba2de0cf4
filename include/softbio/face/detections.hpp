// softbio/face/detections.hpp — from the tiny face detector's output grid to face boxes
// in image pixels (docs/FACE_MODELS.md §3), as face-api decodes them.
//
// The network sees the image padded at the right/bottom to a square and resized to S x S
// (S a multiple of 32); it outputs a g x g grid (g = S / 32) with, per cell and anchor a,
// five numbers (tx, ty, tw, th, to). With sigma the logistic function:
//   score  = sigma(to); a candidate when score > threshold (strict)
//   centre = ((col + sigma(tx)) / g * cx, (row + sigma(ty)) / g * cy)
//   size   = (exp(tw) * anchor_w / g * cx, exp(th) * anchor_h / g * cy)
// in units of the padded square, where cx = m / rw and cy = m / rh undo the padding:
// rw = round(W * S / max(W, H)), rh likewise, m = max(rw, rh) (JavaScript rounding). The
// candidates then go through greedy NMS (geometry.hpp) at the model's IoU threshold,
// compared in S-pixel units as face-api does, and are scaled by (W, H) to image pixels.
// Boxes are not clipped to the image.
//
// Layout: softbio's tensors are NHWC, as TensorFlow's: the grid is [g, g, anchors * 5]
// and value k of anchor a at (row, col) is grid[(row * g + col) * anchors * 5 + a * 5 + k].
#pragma once

#include <array>
#include <cmath>
#include <vector>

#include "softbio/face/geometry.hpp"

namespace softbio::face {

/// What the decoding needs from the detector's metadata (model: anchors, thresholds).
struct DetectorDecoding {
    std::vector<std::array<double, 2>> anchors;  // (width, height) in grid cells
    double score_threshold = 0.5;                // a candidate needs score > this
    double iou_threshold = 0.4;                  // NMS drops IoU > this
};

/// One detected face: its box in image pixels and the detector's score in (0, 1).
struct Detection {
    Box box;
    double score = 0;
};

/// Scratch space of decode_detections, kept between calls (no allocation once warm).
struct DetectionScratch {
    std::vector<Box> boxes;   // candidates, relative to the padded square (0..1)
    std::vector<Box> scaled;  // the same in input pixels, for NMS
    std::vector<double> scores;
    std::vector<int> order, keep;
};

inline double logistic(double v) { return 1.0 / (1.0 + std::exp(-v)); }

/// Decodes `grid` (see the file comment) of a detector run at `input_size` on an image of
/// `image_width` x `image_height` pixels into `out`, best score first.
inline void decode_detections(const float* grid, int grid_size, int input_size, const DetectorDecoding& dec,
                              int image_width, int image_height, std::vector<Detection>& out,
                              DetectionScratch& scratch) {
    out.clear();
    scratch.boxes.clear();
    scratch.scaled.clear();
    scratch.scores.clear();
    const int g = grid_size;
    const double scale = double(input_size) / double(std::max(image_width, image_height));
    const double rw = js_round(image_width * scale), rh = js_round(image_height * scale);
    const double m = std::max(rw, rh), cx = m / rw, cy = m / rh;
    const size_t per_cell = dec.anchors.size() * 5;
    for (int row = 0; row < g; ++row)
        for (int col = 0; col < g; ++col)
            for (size_t a = 0; a < dec.anchors.size(); ++a) {
                const float* v = grid + (size_t(row) * size_t(g) + size_t(col)) * per_cell + a * 5;  // tx ty tw th to
                const double score = logistic(double(v[4]));
                if (!(score > dec.score_threshold)) continue;
                const double w = std::exp(double(v[2])) * dec.anchors[a][0] / g * cx;
                const double h = std::exp(double(v[3])) * dec.anchors[a][1] / g * cy;
                const double x = (col + logistic(double(v[0]))) / g * cx - w / 2;
                const double y = (row + logistic(double(v[1]))) / g * cy - h / 2;
                scratch.boxes.push_back(Box{x, y, w, h});
                scratch.scores.push_back(score);
            }
    // NMS in input pixels (face-api rescales the relative boxes by S first); the kept
    // relative boxes are then scaled by the image size.
    const double S = input_size;
    for (const Box& b : scratch.boxes) scratch.scaled.push_back(Box{b.x * S, b.y * S, b.width * S, b.height * S});
    non_max_suppression(scratch.scaled, scratch.scores, dec.iou_threshold, scratch.order, scratch.keep);
    const double W = image_width, H = image_height;
    for (int i : scratch.keep) {
        const Box& b = scratch.boxes[size_t(i)];
        out.push_back(Detection{Box{b.x * W, b.y * H, b.width * W, b.height * H}, scratch.scores[size_t(i)]});
    }
}

}  // namespace softbio::face
