// softbio/face/annotate.hpp — draws what the face pipeline found onto the photo: each
// face's box, its 68 landmarks and a label ("female 0.82 age 28"), in plain RGB pixels.
// No image library: lines are runs of pixels, text is a 5 x 7 bitmap font of the
// characters labels use, scaled by a whole factor for large photos. Writing the file is
// the caller's (softbio-predict --annotate writes PNG with stb_image_write).
//
// Everything is clipped to the image, so boxes reaching past its edges are fine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "softbio/face/pipeline.hpp"

namespace softbio::face {

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
};

namespace detail {

inline void put(RgbImage& img, int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    uint8_t* p = img.at(y, x);
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

inline void fill_rect(RgbImage& img, int x0, int y0, int x1, int y1, Rgb c) {  // [x0, x1) x [y0, y1)
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) put(img, x, y, c);
}

/// Rows of a 5 x 7 glyph, bit 4 = leftmost column; nullptr for characters not drawn.
inline const uint8_t* glyph(char ch) {
    static const uint8_t digits[10][7] = {
        {14, 17, 19, 21, 25, 17, 14}, {4, 12, 4, 4, 4, 4, 14},   {14, 17, 1, 2, 4, 8, 31},  {31, 2, 4, 2, 1, 17, 14},
        {2, 6, 10, 18, 31, 2, 2},     {31, 16, 30, 1, 1, 17, 14}, {6, 8, 16, 30, 17, 17, 14}, {31, 1, 2, 4, 8, 8, 8},
        {14, 17, 17, 14, 17, 17, 14}, {14, 17, 17, 15, 1, 2, 12}};
    static const uint8_t lower[26][7] = {
        {0, 0, 14, 1, 15, 17, 15},   {16, 16, 22, 25, 17, 17, 30}, {0, 0, 14, 16, 16, 17, 14}, {1, 1, 13, 19, 17, 17, 15},
        {0, 0, 14, 17, 31, 16, 14},  {6, 9, 8, 28, 8, 8, 8},       {0, 15, 17, 17, 15, 1, 14}, {16, 16, 22, 25, 17, 17, 17},
        {4, 0, 12, 4, 4, 4, 14},     {2, 0, 6, 2, 2, 18, 12},      {16, 16, 18, 20, 24, 20, 18}, {12, 4, 4, 4, 4, 4, 14},
        {0, 0, 26, 21, 21, 17, 17},  {0, 0, 22, 25, 17, 17, 17},   {0, 0, 14, 17, 17, 17, 14}, {0, 0, 30, 17, 30, 16, 16},
        {0, 0, 13, 19, 15, 1, 1},    {0, 0, 22, 25, 16, 16, 16},   {0, 0, 14, 16, 14, 1, 30},  {8, 8, 28, 8, 8, 9, 6},
        {0, 0, 17, 17, 17, 19, 13},  {0, 0, 17, 17, 17, 10, 4},    {0, 0, 17, 17, 21, 21, 10}, {0, 0, 17, 10, 4, 10, 17},
        {0, 0, 17, 17, 15, 1, 14},   {0, 0, 31, 2, 4, 8, 31}};
    static const uint8_t dot[7] = {0, 0, 0, 0, 0, 12, 12}, comma[7] = {0, 0, 0, 0, 12, 4, 8},
                         colon[7] = {0, 12, 12, 0, 12, 12, 0}, dash[7] = {0, 0, 0, 31, 0, 0, 0},
                         hash[7] = {10, 10, 31, 10, 31, 10, 10}, blank[7] = {0, 0, 0, 0, 0, 0, 0};
    if (ch >= '0' && ch <= '9') return digits[ch - '0'];
    if (ch >= 'a' && ch <= 'z') return lower[ch - 'a'];
    if (ch >= 'A' && ch <= 'Z') return lower[ch - 'A'];
    switch (ch) {
        case '.': return dot;
        case ',': return comma;
        case ':': return colon;
        case '-': return dash;
        case '#': return hash;
        case ' ': return blank;
        default: return nullptr;
    }
}

}  // namespace detail

/// An outline of `box` (rounded to pixels), `thickness` pixels wide, inside the box.
inline void draw_box(RgbImage& img, const Box& box, Rgb c, int thickness) {
    const int x0 = int(std::lround(box.x)), y0 = int(std::lround(box.y));
    const int x1 = int(std::lround(box.right())), y1 = int(std::lround(box.bottom()));
    detail::fill_rect(img, x0, y0, x1, y0 + thickness, c);
    detail::fill_rect(img, x0, y1 - thickness, x1, y1, c);
    detail::fill_rect(img, x0, y0, x0 + thickness, y1, c);
    detail::fill_rect(img, x1 - thickness, y0, x1, y1, c);
}

/// A filled square of side 2 * radius + 1 at `p`.
inline void draw_point(RgbImage& img, Point p, Rgb c, int radius) {
    const int x = int(std::floor(p.x)), y = int(std::floor(p.y));
    detail::fill_rect(img, x - radius, y - radius, x + radius + 1, y + radius + 1, c);
}

/// Text with its top-left corner at (x, y) on a filled background, each font pixel
/// `scale` x `scale`. Characters the font lacks are drawn as '#'. Returns the width drawn.
inline int draw_text(RgbImage& img, int x, int y, const std::string& text, Rgb fg, Rgb bg, int scale) {
    const int advance = 6 * scale;
    detail::fill_rect(img, x, y, x + advance * int(text.size()) + scale, y + 9 * scale, bg);
    for (size_t i = 0; i < text.size(); ++i) {
        const uint8_t* rows = detail::glyph(text[i]);
        if (!rows) rows = detail::glyph('#');
        for (int r = 0; r < 7; ++r)
            for (int col = 0; col < 5; ++col)
                if (rows[r] & (16 >> col))
                    detail::fill_rect(img, x + scale + int(i) * advance + col * scale, y + scale + r * scale,
                                      x + scale + int(i) * advance + (col + 1) * scale, y + scale + (r + 1) * scale, fg);
    }
    return advance * int(text.size()) + scale;
}

/// The label softbio-predict prints for a face, in the font's characters:
/// "female 0.82 age 28" (face-api's age/gender), or with added models each head's answer,
/// "female 0.82 age 31" likewise (softmax: class and probability; ordinal: value).
inline std::string face_label(const FaceAnalysis& f) {
    char buf[64];
    if (f.has_age_gender || f.models.empty()) {
        std::snprintf(buf, sizeof buf, "%s %.2f age %.0f", f.male() ? "male" : "female", double(f.gender_probability()),
                      double(f.age));
        return buf;
    }
    std::string label;
    for (const Prediction& p : f.models) {
        if (!p.ok()) {
            label += (label.empty() ? "" : " ") + std::string("no crop");
            continue;
        }
        for (const HeadOutput& h : p.heads) {
            if (h.type == HeadType::Softmax)
                std::snprintf(buf, sizeof buf, "%s %.2f",
                              h.class_name.empty() ? std::to_string(h.label).c_str() : h.class_name.c_str(),
                              double(h.confidence()));
            else if (h.type == HeadType::Logits)
                std::snprintf(buf, sizeof buf, "%s %d", h.name.c_str(), h.label);
            else
                std::snprintf(buf, sizeof buf, "%s %.0f", h.name.c_str(), h.value);
            label += (label.empty() ? "" : " ") + std::string(buf);
        }
    }
    return label;
}

/// Draws every face of `faces` onto `img`: box (green), landmarks (red), label (white on
/// black) above the box, or inside it when the box touches the top. Sizes follow the
/// image: lines and points about 1/400 of the longer side, at least 1 pixel.
inline void annotate(RgbImage& img, const std::vector<FaceAnalysis>& faces) {
    const int unit = std::max(1, std::max(img.width, img.height) / 400);
    for (const FaceAnalysis& f : faces) {
        draw_box(img, f.detection.box, Rgb{0, 220, 0}, unit);
        for (const Point& p : f.landmarks) draw_point(img, p, Rgb{230, 30, 30}, unit);
        const int scale = std::max(1, unit);
        const int h = 9 * scale;
        const int x = int(std::lround(f.detection.box.x));
        int y = int(std::lround(f.detection.box.y)) - h;
        if (y < 0) y = int(std::lround(f.detection.box.y)) + unit;
        draw_text(img, x, y, face_label(f), Rgb{255, 255, 255}, Rgb{0, 0, 0}, scale);
    }
}

}  // namespace softbio::face
