// softbio/face/align.hpp — cutting a face out of a photo the way a model's training faces
// were cut (core/face_crop_spec.hpp; docs/FACE_MODELS.md §9): an affine map from the
// photo to the crop, fitted to the face, then the crop's pixels sampled from the photo.
//
// Coordinates are continuous: pixel (row r, column c) covers [c, c+1) x [r, r+1).
//
// Similarity fit (least squares, no reflection). Photo points p_i = (x_i, y_i), crop
// targets q_i = (u_i, v_i). The map is
//     u = a x - b y + tx,   v = b x + a y + ty        (scale sqrt(a^2+b^2), angle atan2(b, a))
// and minimises sum_i |T(p_i) - q_i|^2. With the points centred (x' = x - mean x, ...):
//     S = sum(x'^2 + y'^2),  a = sum(x' u' + y' v') / S,  b = sum(x' v' - y' u') / S,
//     tx = mean u - a mean x + b mean y,   ty = mean v - b mean x - a mean y.
// Without rotation b = 0 and a is the same formula (the least-squares scale).
//
// Sampling: crop pixel (r, c) takes the photo at T^-1(c + 0.5, r + 0.5), i.e. at the
// fractional pixel index (x - 0.5, y - 0.5), interpolated from its neighbours, with the
// photo's edge pixels repeated outside it (as CelebA's script does). Bilinear uses the
// 2 x 2 neighbours; bicubic the 4 x 4 with Keys' kernel, a = -0.5 (MATLAB's and
// OpenCV's "cubic"):
//     k(t) = (a+2)|t|^3 - (a+3)|t|^2 + 1      for |t| <= 1
//            a|t|^3 - 5a|t|^2 + 8a|t| - 4a    for 1 < |t| < 2,   0 beyond.
// Each channel is rounded to the nearest integer (halves up) and clamped to 0..255.
// Both kernels give the photo's pixel exactly where a sample falls on a pixel centre.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "softbio/core/error.hpp"
#include "softbio/core/face_crop_spec.hpp"
#include "softbio/face/geometry.hpp"
#include "softbio/image/decode.hpp"

namespace softbio::face {

/// (u, v) = (m00 x + m01 y + m02, m10 x + m11 y + m12): photo point to crop point.
struct Affine2d {
    double m00 = 1, m01 = 0, m02 = 0, m10 = 0, m11 = 1, m12 = 0;
    Point apply(Point p) const { return {m00 * p.x + m01 * p.y + m02, m10 * p.x + m11 * p.y + m12}; }
    double determinant() const { return m00 * m11 - m01 * m10; }
    /// The inverse map; the determinant must be non-zero and finite.
    Affine2d inverse() const {
        const double d = determinant();
        Affine2d r;
        r.m00 = m11 / d, r.m01 = -m01 / d, r.m10 = -m10 / d, r.m11 = m00 / d;
        r.m02 = -(r.m00 * m02 + r.m01 * m12);
        r.m12 = -(r.m10 * m02 + r.m11 * m12);
        return r;
    }
    bool finite() const {
        return std::isfinite(m00) && std::isfinite(m01) && std::isfinite(m02) && std::isfinite(m10) &&
               std::isfinite(m11) && std::isfinite(m12);
    }
};

/// The least-squares similarity taking `from[i]` onto `to[i]` (see the file comment).
/// False, and `out` untouched, when the points are degenerate (fewer than 2, all at one
/// place, a zero or non-finite scale; without rotation also a negative scale).
inline bool fit_similarity(const Point* from, const Point* to, int n, bool rotation, Affine2d& out) {
    if (n < 2) return false;
    double mx = 0, my = 0, mu = 0, mv = 0;
    for (int i = 0; i < n; ++i) mx += from[i].x, my += from[i].y, mu += to[i].x, mv += to[i].y;
    mx /= n, my /= n, mu /= n, mv /= n;
    double s = 0, sa = 0, sb = 0;
    for (int i = 0; i < n; ++i) {
        const double x = from[i].x - mx, y = from[i].y - my, u = to[i].x - mu, v = to[i].y - mv;
        s += x * x + y * y;
        sa += x * u + y * v;
        sb += x * v - y * u;
    }
    if (!(s > 0) || !std::isfinite(s)) return false;
    const double a = sa / s, b = rotation ? sb / s : 0.0;
    if (!(a * a + b * b > 0) || (!rotation && !(a > 0))) return false;
    Affine2d t;
    t.m00 = a, t.m01 = -b, t.m02 = mu - a * mx + b * my;
    t.m10 = b, t.m11 = a, t.m12 = mv - b * mx - a * my;
    if (!t.finite()) return false;
    out = t;
    return true;
}

/// The photo position of landmark `p` of a face's 68 points.
inline Point landmark_position(const std::array<Point, 68>& lm, const FaceCropPoint& p) {
    auto mean = [&](int first, int last) {
        Point m;
        for (int i = first; i <= last; ++i) m.x += lm[size_t(i)].x, m.y += lm[size_t(i)].y;
        const int k = last - first + 1;
        return Point{m.x / k, m.y / k};
    };
    switch (p.landmark) {
    case FaceLandmark::LeftEye: return mean(36, 41);
    case FaceLandmark::RightEye: return mean(42, 47);
    case FaceLandmark::NoseTip: return lm[30];
    case FaceLandmark::MouthLeft: return lm[48];
    case FaceLandmark::MouthRight: return lm[54];
    case FaceLandmark::MouthCenter: return Point{(lm[48].x + lm[54].x) / 2, (lm[48].y + lm[54].y) / 2};
    case FaceLandmark::Point68: return lm[size_t(std::clamp(p.index, 0, 67))];
    }
    return {};
}

/// The map from the photo to the crop `spec` describes, for a face detected at `box` with
/// landmarks `lm`. False when the face gives no usable map (degenerate landmarks, an
/// empty box).
inline bool face_crop_transform(const FaceCropSpec& spec, const Box& box, const std::array<Point, 68>& lm, Affine2d& out) {
    if (spec.method == FaceCropSpec::Method::Similarity) {
        const size_t n = std::min(spec.points.size(), spec.targets.size());
        if (n < 2 || n > 68) return false;
        std::array<Point, 68> from, to;
        for (size_t i = 0; i < n; ++i) {
            from[i] = landmark_position(lm, spec.points[i]);
            to[i] = Point{spec.targets[i][0], spec.targets[i][1]};
        }
        return fit_similarity(from.data(), to.data(), int(n), spec.rotation, out);
    }
    const double x0 = box.x - spec.margin * box.width, x1 = box.right() + spec.margin * box.width;
    const double y0 = box.y - (spec.margin + spec.shift) * box.height;
    const double y1 = box.bottom() + (spec.margin - spec.shift) * box.height;
    const double side = std::max(x1 - x0, y1 - y0);
    if (!(side > 0) || !std::isfinite(side)) return false;
    const double left = (x0 + x1) / 2 - side / 2, top = (y0 + y1) / 2 - side / 2;
    Affine2d t;
    t.m00 = spec.width / side, t.m01 = 0, t.m02 = -left * t.m00;
    t.m10 = 0, t.m11 = spec.height / side, t.m12 = -top * t.m11;
    if (!t.finite()) return false;
    out = t;
    return true;
}

namespace detail {

/// Keys' cubic convolution kernel with a = -0.5.
inline double keys_cubic(double t) {
    constexpr double a = -0.5;
    t = std::abs(t);
    if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

inline uint8_t to_byte(double v) {
    const double r = std::floor(v + 0.5);
    return uint8_t(r < 0 ? 0 : r > 255 ? 255 : r);
}

}  // namespace detail

/// Fills `crop` (resized to width x height; its buffer is reused) with the photo sampled
/// through `photo_to_crop` (see the file comment). Throws ImageError for an empty photo
/// or a map that cannot be inverted.
inline void warp_affine(const RgbImage& photo, const Affine2d& photo_to_crop, int width, int height,
                        FaceCropSpec::Filter filter, RgbImage& crop) {
    if (photo.width < 1 || photo.height < 1 || photo.pixels.size() != size_t(photo.width) * size_t(photo.height) * 3)
        throw ImageError("face crop: the photo is " + std::to_string(photo.width) + "x" + std::to_string(photo.height) +
                         " with " + std::to_string(photo.pixels.size()) + " bytes; expected width * height * 3");
    if (width < 1 || height < 1 || width > kMaxFaceCropSide || height > kMaxFaceCropSide)
        throw ImageError("face crop: size " + std::to_string(width) + "x" + std::to_string(height) + " outside 1.." +
                         std::to_string(kMaxFaceCropSide));
    const double det = photo_to_crop.determinant();
    if (!photo_to_crop.finite() || !(std::abs(det) > 0) || !std::isfinite(det))
        throw ImageError("face crop: the map from the photo to the crop cannot be inverted (determinant " +
                         std::to_string(det) + ")");
    const Affine2d back = photo_to_crop.inverse();
    crop.width = width, crop.height = height;
    crop.pixels.resize(size_t(width) * size_t(height) * 3);
    const int W = photo.width, H = photo.height;
    auto clamp_x = [W](long long x) { return int(x < 0 ? 0 : x >= W ? W - 1 : x); };
    auto clamp_y = [H](long long y) { return int(y < 0 ? 0 : y >= H ? H - 1 : y); };
    const bool cubic = filter == FaceCropSpec::Filter::Bicubic;
    const int taps = cubic ? 4 : 2;
    for (int r = 0; r < height; ++r) {
        uint8_t* dst = crop.at(r, 0);
        for (int c = 0; c < width; ++c, dst += 3) {
            const Point p = back.apply(Point{c + 0.5, r + 0.5});
            // Far outside the photo every tap is an edge pixel: clamp before the floor so
            // that huge coordinates stay in range.
            const double fx = std::clamp(p.x - 0.5, -4.0, double(W) + 4.0);
            const double fy = std::clamp(p.y - 0.5, -4.0, double(H) + 4.0);
            const long long ix = (long long)std::floor(fx), iy = (long long)std::floor(fy);
            const double tx = fx - double(ix), ty = fy - double(iy);
            const long long first_x = cubic ? ix - 1 : ix, first_y = cubic ? iy - 1 : iy;
            double wx[4], wy[4];
            for (int k = 0; k < taps; ++k) {
                wx[k] = cubic ? detail::keys_cubic(tx - (k - 1)) : (k == 0 ? 1 - tx : tx);
                wy[k] = cubic ? detail::keys_cubic(ty - (k - 1)) : (k == 0 ? 1 - ty : ty);
            }
            double acc[3] = {0, 0, 0};
            for (int j = 0; j < taps; ++j) {
                const int y = clamp_y(first_y + j);
                double row[3] = {0, 0, 0};
                for (int k = 0; k < taps; ++k) {
                    const uint8_t* s = photo.at(y, clamp_x(first_x + k));
                    row[0] += wx[k] * s[0], row[1] += wx[k] * s[1], row[2] += wx[k] * s[2];
                }
                acc[0] += wy[j] * row[0], acc[1] += wy[j] * row[1], acc[2] += wy[j] * row[2];
            }
            dst[0] = detail::to_byte(acc[0]), dst[1] = detail::to_byte(acc[1]), dst[2] = detail::to_byte(acc[2]);
        }
    }
}

/// The crop `spec` describes for one detected face: the map fitted, the pixels sampled
/// into `crop`. False (crop untouched) when the face gives no usable map.
inline bool cut_face(const RgbImage& photo, const FaceCropSpec& spec, const Box& box, const std::array<Point, 68>& lm,
                     RgbImage& crop, Affine2d* map = nullptr) {
    Affine2d t;
    if (!face_crop_transform(spec, box, lm, t)) return false;
    warp_affine(photo, t, spec.width, spec.height, spec.filter, crop);
    if (map) *map = t;
    return true;
}

}  // namespace softbio::face
