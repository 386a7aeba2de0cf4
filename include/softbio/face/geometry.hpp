// softbio/face/geometry.hpp — boxes, points, intersection-over-union and greedy
// non-maximum suppression, computed the way face-api computes them
// (docs/FACE_MODELS.md §3-4), so that softbio finds the same faces as the original.
//
// Numbers are doubles, as JavaScript numbers are; only the networks run in float32.
//
//   right = x + width, bottom = y + height, area = width * height
//   IoU(a, b) = inter / (area(a) + area(b) - inter),
//     inter = max(0, min(right) - max(x)) * max(0, min(bottom) - max(y))
//
// Greedy NMS: sort the candidates by score, ascending, with a stable sort; repeatedly take
// the last (highest) one, keep it, and drop every remaining candidate whose IoU with it is
// above the threshold (kept: IoU <= threshold; a NaN IoU, from two empty boxes, drops).
// Among equal scores the candidate that came later in the input wins.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace softbio::face {

/// A point in image pixels (x to the right, y down; (0, 0) is the top-left corner of the
/// top-left pixel).
struct Point {
    double x = 0, y = 0;
};

/// An axis-aligned rectangle in image pixels: top-left corner and size. Not clipped to
/// the image: a detection may reach past its edges.
struct Box {
    double x = 0, y = 0, width = 0, height = 0;
    double right() const { return x + width; }
    double bottom() const { return y + height; }
    double area() const { return width * height; }
};

/// JavaScript's Math.round: the nearest integer, halves rounded up (towards +infinity),
/// so js_round(2.5) = 3 and js_round(-2.5) = -2. Not std::round (halves away from zero)
/// nor banker's rounding; written without the x + 0.5 trick, which rounds
/// 0.49999999999999994 up.
inline double js_round(double v) {
    const double f = std::floor(v);
    return v - f >= 0.5 ? f + 1.0 : f;
}

/// Intersection over union of two boxes (face-api's iou with isIOU = true).
inline double iou(const Box& a, const Box& b) {
    const double w = std::max(0.0, std::min(a.right(), b.right()) - std::max(a.x, b.x));
    const double h = std::max(0.0, std::min(a.bottom(), b.bottom()) - std::max(a.y, b.y));
    const double inter = w * h;
    return inter / (a.area() + b.area() - inter);
}

/// Greedy non-maximum suppression (see the file comment). Writes the indices of the kept
/// boxes into `keep`, highest score first. `order` is scratch space; both vectors keep
/// their capacity between calls.
inline void non_max_suppression(const std::vector<Box>& boxes, const std::vector<double>& scores,
                                double iou_threshold, std::vector<int>& order, std::vector<int>& keep) {
    keep.clear();
    order.resize(scores.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[size_t(a)] < scores[size_t(b)]; });
    while (!order.empty()) {
        const int best = order.back();
        order.pop_back();
        keep.push_back(best);
        const Box& kept = boxes[size_t(best)];
        order.erase(std::remove_if(order.begin(), order.end(),
                                   [&](int i) { return !(iou(kept, boxes[size_t(i)]) <= iou_threshold); }),
                    order.end());
    }
}

}  // namespace softbio::face
