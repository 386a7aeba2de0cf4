// tests/test_image.cpp — image decoding (softbio/image/decode.hpp) and preprocessing
// (softbio/image/preprocess.hpp).
//
// Test images are made here, at test time, by small encoders written for the purpose
// (PNG with stored deflate blocks, BMP, TGA raw and RLE, GIF with uncompressed LZW) and
// by stb_image_write (baseline JPEG); one 556-byte progressive JPEG made by PIL is
// embedded. Known answers that come from PIL/torchvision (the astronaut hashes, the
// 1-D resize values) were computed with PIL 9.4 / torchvision 0.14 and are quoted where
// used, the hashes with the Python line that reproduces them. The exhaustive
// bit-exactness check against torchvision is the Python test
// tests/python/test_preprocess_parity.py.
//
// SOFTBIO_DATA_DIR (set by CMake) is the folder holding astronaut.png.
#include <doctest/doctest.h>

#include <softbio/image/decode.hpp>
#include <softbio/image/preprocess.hpp>
#include <softbio/io/preprocess_json.hpp>  // parse_preprocess, preprocess_to_json

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if __has_include(<stb/stb_image_write.h>)
#include <stb/stb_image_write.h>
#else
#include <stb_image_write.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>
#include <string>
#include <vector>

#ifndef SOFTBIO_DATA_DIR
#define SOFTBIO_DATA_DIR "data"
#endif

namespace {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------------------
// Tiny encoders
// ---------------------------------------------------------------------------------------

void put_be32(Bytes& b, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
void put_le16(Bytes& b, uint32_t v) {
    b.push_back(uint8_t(v)), b.push_back(uint8_t(v >> 8));
}
void put_le32(Bytes& b, uint32_t v) {
    for (int s = 0; s <= 24; s += 8) b.push_back(uint8_t(v >> s));
}

uint32_t crc32(const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
        c ^= p[i];
        for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

void png_chunk(Bytes& out, const char* type, const Bytes& data) {
    put_be32(out, uint32_t(data.size()));
    Bytes td(type, type + 4);
    td.insert(td.end(), data.begin(), data.end());
    out.insert(out.end(), td.begin(), td.end());
    put_be32(out, crc32(td.data(), td.size()));
}

/// zlib stream of stored (uncompressed) deflate blocks.
Bytes zlib_stored(const Bytes& raw) {
    Bytes z = {0x78, 0x01};
    size_t p = 0;
    do {
        const size_t len = std::min<size_t>(65535, raw.size() - p);
        z.push_back(p + len == raw.size() ? 1 : 0);
        put_le16(z, uint32_t(len));
        put_le16(z, uint32_t(~len & 0xFFFF));
        z.insert(z.end(), raw.begin() + long(p), raw.begin() + long(p + len));
        p += len;
    } while (p < raw.size());
    uint32_t a = 1, b = 0;
    for (uint8_t v : raw) a = (a + v) % 65521, b = (b + a) % 65521;
    put_be32(z, (b << 16) | a);
    return z;
}

/// PNG of 8- or 16-bit samples (channels = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA, or
/// palette indices with `palette`), filter type 0 on every row.
Bytes png_encode(int w, int h, int depth, int channels, const std::vector<uint16_t>& samples, const Bytes& palette = {},
                 const Bytes& trns = {}) {
    const int ctype = !palette.empty() ? 3 : channels == 1 ? 0 : channels == 2 ? 4 : channels == 3 ? 2 : 6;
    Bytes raw;
    for (int y = 0; y < h; ++y) {
        raw.push_back(0);
        for (int i = 0; i < w * channels; ++i) {
            const uint16_t v = samples[size_t(y) * size_t(w * channels) + size_t(i)];
            if (depth == 16) raw.push_back(uint8_t(v >> 8));
            raw.push_back(uint8_t(v));
        }
    }
    Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    Bytes ihdr;
    put_be32(ihdr, uint32_t(w)), put_be32(ihdr, uint32_t(h));
    ihdr.insert(ihdr.end(), {uint8_t(depth), uint8_t(ctype), 0, 0, 0});
    png_chunk(out, "IHDR", ihdr);
    if (!palette.empty()) png_chunk(out, "PLTE", palette);
    if (!trns.empty()) png_chunk(out, "tRNS", trns);
    png_chunk(out, "IDAT", zlib_stored(raw));
    png_chunk(out, "IEND", {});
    return out;
}

/// 24-bit BMP from RGB pixels.
Bytes bmp_encode(int w, int h, const Bytes& rgb, bool top_down = false) {
    const uint32_t stride = uint32_t((w * 3 + 3) / 4 * 4);
    Bytes b = {'B', 'M'};
    put_le32(b, 54 + stride * uint32_t(h)), put_le32(b, 0), put_le32(b, 54);
    put_le32(b, 40), put_le32(b, uint32_t(w)), put_le32(b, uint32_t(top_down ? -h : h));
    put_le16(b, 1), put_le16(b, 24), put_le32(b, 0), put_le32(b, stride * uint32_t(h));
    put_le32(b, 2835), put_le32(b, 2835), put_le32(b, 0), put_le32(b, 0);
    for (int r = 0; r < h; ++r) {
        const int y = top_down ? r : h - 1 - r;
        for (int x = 0; x < w; ++x) {
            const uint8_t* p = &rgb[(size_t(y) * size_t(w) + size_t(x)) * 3];
            b.insert(b.end(), {p[2], p[1], p[0]});
        }
        for (uint32_t k = uint32_t(w) * 3; k < stride; ++k) b.push_back(0);
    }
    return b;
}

/// 24-bit TGA (type 2) or RLE TGA (type 10) from RGB pixels.
Bytes tga_encode(int w, int h, const Bytes& rgb, bool rle, bool top_down) {
    Bytes b = {0, 0, uint8_t(rle ? 10 : 2), 0, 0, 0, 0, 0};
    put_le16(b, 0), put_le16(b, 0), put_le16(b, uint32_t(w)), put_le16(b, uint32_t(h));
    b.push_back(24), b.push_back(top_down ? 0x20 : 0);
    for (int r = 0; r < h; ++r) {
        const int y = top_down ? r : h - 1 - r;
        auto px = [&](int x) { return &rgb[(size_t(y) * size_t(w) + size_t(x)) * 3]; };
        if (!rle) {
            for (int x = 0; x < w; ++x) b.insert(b.end(), {px(x)[2], px(x)[1], px(x)[0]});
            continue;
        }
        // per row: runs of equal pixels as run packets, the rest as raw packets of one pixel
        for (int x = 0; x < w;) {
            int run = 1;
            while (x + run < w && run < 128 && std::equal(px(x), px(x) + 3, px(x + run))) ++run;
            b.push_back(uint8_t(run > 1 ? 0x80 | (run - 1) : 0));
            b.insert(b.end(), {px(x)[2], px(x)[1], px(x)[0]});
            x += run;
        }
    }
    return b;
}

/// GIF89a with one frame of 8-bit palette indices at (left, top) on a sw x sh screen.
/// LZW "uncompressed": a clear code every 250 pixels keeps every code 9 bits wide.
Bytes gif_encode(int sw, int sh, const Bytes& palette256, int left, int top, int fw, int fh, const Bytes& idx,
                 int transparent = -1) {
    Bytes b = {'G', 'I', 'F', '8', '9', 'a'};
    put_le16(b, uint32_t(sw)), put_le16(b, uint32_t(sh));
    b.insert(b.end(), {0xF7, 0, 0});  // global table of 256 colours, background 0
    b.insert(b.end(), palette256.begin(), palette256.end());
    if (transparent >= 0) b.insert(b.end(), {0x21, 0xF9, 4, 1, 0, 0, uint8_t(transparent), 0});
    b.push_back(0x2C);
    put_le16(b, uint32_t(left)), put_le16(b, uint32_t(top)), put_le16(b, uint32_t(fw)), put_le16(b, uint32_t(fh));
    b.push_back(0);
    b.push_back(8);  // LZW minimum code size
    Bytes codes;
    uint32_t acc = 0;
    int nbits = 0;
    auto emit = [&](uint32_t code) {
        acc |= code << nbits;
        nbits += 9;
        while (nbits >= 8) codes.push_back(uint8_t(acc)), acc >>= 8, nbits -= 8;
    };
    for (size_t i = 0; i < idx.size(); ++i) {
        if (i % 250 == 0) emit(256);
        emit(idx[i]);
    }
    emit(257);
    if (nbits) codes.push_back(uint8_t(acc));
    for (size_t p = 0; p < codes.size(); p += 255) {
        const size_t n = std::min<size_t>(255, codes.size() - p);
        b.push_back(uint8_t(n));
        b.insert(b.end(), codes.begin() + long(p), codes.begin() + long(p + n));
    }
    b.push_back(0);
    b.push_back(0x3B);
    return b;
}

Bytes jpeg_encode(int w, int h, const Bytes& rgb, int quality) {
    Bytes out;
    stbi_write_jpg_to_func([](void* ctx, void* data, int size) {
        auto* o = static_cast<Bytes*>(ctx);
        o->insert(o->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
    }, &out, w, h, 3, rgb.data(), quality);
    return out;
}

Bytes pattern_rgb(int w, int h, uint32_t seed) {
    Bytes p(size_t(w) * size_t(h) * 3);
    uint32_t s = seed * 2654435761u + 1;
    for (auto& v : p) {
        s = s * 1664525u + 1013904223u;
        v = uint8_t(s >> 24);
    }
    return p;
}

/// Smooth RGB (compresses well in JPEG).
Bytes smooth_rgb(int w, int h) {
    Bytes p(size_t(w) * size_t(h) * 3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* q = &p[(size_t(y) * size_t(w) + size_t(x)) * 3];
            q[0] = uint8_t(x * 255 / (w - 1)), q[1] = uint8_t(y * 255 / (h - 1)), q[2] = 128;
        }
    return p;
}

softbio::RgbImage decode(const Bytes& b, const std::string& name = "test") { return softbio::decode_rgb_image(b.data(), b.size(), name); }

std::string decode_error(const Bytes& b, const std::string& name) {
    try {
        decode(b, name);
    } catch (const softbio::ImageError& e) {
        return e.what();
    }
    return "(no error)";
}

/// 64-bit FNV-1a of n bytes. Unlike a sum, it changes when bytes are swapped or moved.
uint64_t fnv1a64(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

int max_abs_diff(const Bytes& a, const Bytes& b) {
    int m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(int(a[i]) - int(b[i])));
    return m;
}

struct TempFile {
    std::string path;
    TempFile(const std::string& name, const Bytes& data) {
        path = "/tmp/softbio_test_image_" + std::to_string(getpid()) + "_" + name;
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    }
    ~TempFile() { std::remove(path.c_str()); }
};

// A 16x16 progressive JPEG made by PIL 9.4 (Image.save(quality=90, progressive=True,
// optimize=True)) of the pattern R = 16x, G = 16y, B = 128.
const uint8_t kProgressiveJpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
    0xff, 0xdb, 0x00, 0x43, 0x00, 0x03, 0x02, 0x02, 0x03, 0x02, 0x02, 0x03, 0x03, 0x03, 0x03, 0x04, 0x03, 0x03, 0x04, 0x05,
    0x08, 0x05, 0x05, 0x04, 0x04, 0x05, 0x0a, 0x07, 0x07, 0x06, 0x08, 0x0c, 0x0a, 0x0c, 0x0c, 0x0b, 0x0a, 0x0b, 0x0b, 0x0d,
    0x0e, 0x12, 0x10, 0x0d, 0x0e, 0x11, 0x0e, 0x0b, 0x0b, 0x10, 0x16, 0x10, 0x11, 0x13, 0x14, 0x15, 0x15, 0x15, 0x0c, 0x0f,
    0x17, 0x18, 0x16, 0x14, 0x18, 0x12, 0x14, 0x15, 0x14, 0xff, 0xdb, 0x00, 0x43, 0x01, 0x03, 0x04, 0x04, 0x05, 0x04, 0x05,
    0x09, 0x05, 0x05, 0x09, 0x14, 0x0d, 0x0b, 0x0d, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14,
    0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0xff, 0xc2,
    0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x10, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xff, 0xc4, 0x00,
    0x15, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x07,
    0xff, 0xc4, 0x00, 0x15, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x03, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01, 0x00, 0x02, 0x10, 0x03, 0x10, 0x00, 0x00, 0x01, 0x95, 0x33, 0x62,
    0xce, 0xa7, 0xff, 0xc4, 0x00, 0x16, 0x10, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x05, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x05, 0x02, 0x56, 0x50, 0xa4, 0xa1,
    0x49, 0x42, 0xb2, 0x8f, 0xff, 0xc4, 0x00, 0x18, 0x11, 0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x06, 0x21, 0x31, 0xff, 0xda, 0x00, 0x08, 0x01, 0x03, 0x01, 0x01, 0x3f, 0x01,
    0x8d, 0xbe, 0xcb, 0x3f, 0xff, 0xc4, 0x00, 0x17, 0x11, 0x00, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x05, 0x61, 0xff, 0xda, 0x00, 0x08, 0x01, 0x02, 0x01, 0x01, 0x3f, 0x01, 0x72,
    0xc6, 0x9f, 0xff, 0xc4, 0x00, 0x15, 0x10, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x31, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x06, 0x3f, 0x02, 0x88, 0x88, 0xff, 0xc4, 0x00,
    0x15, 0x10, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31,
    0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x3f, 0x21, 0x9b, 0x16, 0x2c, 0xdf, 0xff, 0xda, 0x00, 0x0c, 0x03, 0x01,
    0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x10, 0x0b, 0xff, 0xc4, 0x00, 0x15, 0x11, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa1, 0xff, 0xda, 0x00, 0x08, 0x01, 0x03, 0x01, 0x01,
    0x3f, 0x10, 0x9e, 0xff, 0xc4, 0x00, 0x15, 0x11, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x31, 0xff, 0xda, 0x00, 0x08, 0x01, 0x02, 0x01, 0x01, 0x3f, 0x10, 0xb1, 0xff, 0xc4, 0x00,
    0x15, 0x10, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf1,
    0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x01, 0x3f, 0x10, 0x94, 0x84, 0x84, 0x94, 0xff, 0xd9,
};

}  // namespace

// =========================================================================================
// Decoding
// =========================================================================================

TEST_CASE("image: PNG 8-bit RGB, RGBA, gray, gray+alpha and palette decode to the RGB PIL gives") {
    const int w = 13, h = 7;
    const Bytes rgb = pattern_rgb(w, h, 1);
    std::vector<uint16_t> s3(rgb.begin(), rgb.end()), s4, s1, s2, sp;
    for (size_t i = 0; i < size_t(w * h); ++i) {
        s4.insert(s4.end(), {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], uint16_t(i % 256)});
        s1.push_back(rgb[3 * i]);
        s2.insert(s2.end(), {rgb[3 * i], uint16_t(255 - rgb[3 * i])});
        sp.push_back(uint16_t(i % 4));
    }
    SUBCASE("RGB") { CHECK(decode(png_encode(w, h, 8, 3, s3)).pixels == rgb); }
    SUBCASE("RGBA: alpha dropped, not composited") { CHECK(decode(png_encode(w, h, 8, 4, s4)).pixels == rgb); }
    SUBCASE("gray and gray+alpha: gray replicated") {
        for (int ch : {1, 2}) {
            const auto img = decode(png_encode(w, h, 8, ch, ch == 1 ? s1 : s2));
            REQUIRE(img.width == w);
            REQUIRE(img.height == h);
            for (int i = 0; i < w * h; ++i)
                for (int c = 0; c < 3; ++c) CHECK(img.pixels[size_t(3 * i + c)] == rgb[size_t(3 * i)]);
        }
    }
    SUBCASE("palette with tRNS: the palette colour, transparency ignored") {
        const Bytes pal = {10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220};
        const auto img = decode(png_encode(w, h, 8, 1, sp, pal, Bytes{0, 128}));
        for (int i = 0; i < w * h; ++i)
            for (int c = 0; c < 3; ++c) CHECK(img.pixels[size_t(3 * i + c)] == pal[size_t(3 * (i % 4) + c)]);
    }
}

TEST_CASE("image: 16-bit PNG: RGB/RGBA/gray+alpha take the high byte, gray clips at 255 (PIL mode I)") {
    const std::vector<uint16_t> vals = {0, 1, 255, 256, 257, 1000, 32767, 65535};
    const int w = int(vals.size());
    std::vector<uint16_t> rgb, rgba, la;
    for (uint16_t v : vals) {
        rgb.insert(rgb.end(), {v, uint16_t(65535 - v), 4660});
        rgba.insert(rgba.end(), {v, v, v, 7});
        la.insert(la.end(), {v, 1234});
    }
    const auto a = decode(png_encode(w, 1, 16, 3, rgb));
    const auto b = decode(png_encode(w, 1, 16, 4, rgba));
    const auto c = decode(png_encode(w, 1, 16, 2, la));
    const auto g = decode(png_encode(w, 1, 16, 1, vals));
    for (int i = 0; i < w; ++i) {
        CHECK(a.pixels[size_t(3 * i)] == vals[size_t(i)] >> 8);
        CHECK(a.pixels[size_t(3 * i + 1)] == (65535 - vals[size_t(i)]) >> 8);
        CHECK(a.pixels[size_t(3 * i + 2)] == 4660 >> 8);
        CHECK(b.pixels[size_t(3 * i)] == vals[size_t(i)] >> 8);
        CHECK(c.pixels[size_t(3 * i + 2)] == vals[size_t(i)] >> 8);
        for (int k = 0; k < 3; ++k) CHECK(g.pixels[size_t(3 * i + k)] == std::min<int>(vals[size_t(i)], 255));
    }
}

TEST_CASE("image: BMP bottom-up and top-down, odd width (row padding)") {
    const int w = 7, h = 5;
    const Bytes rgb = pattern_rgb(w, h, 2);
    CHECK(decode(bmp_encode(w, h, rgb, false)).pixels == rgb);
    const auto td = decode(bmp_encode(w, h, rgb, true));
    CHECK(td.height == h);
    CHECK(td.pixels == rgb);
}

TEST_CASE("image: TGA raw and RLE, bottom-up and top-down") {
    const int w = 9, h = 6;
    Bytes rgb = pattern_rgb(w, h, 3);
    for (int x = 2; x < 8; ++x) std::copy_n(&rgb[size_t(2 * w + 1) * 3], 3, &rgb[size_t(3 * w + x) * 3]);  // a run
    for (bool rle : {false, true})
        for (bool top : {false, true}) {
            CAPTURE(rle);
            CAPTURE(top);
            CHECK(decode(tga_encode(w, h, rgb, rle, top)).pixels == rgb);
        }
}

TEST_CASE("image: GIF first frame: palette colours, transparent index keeps its colour, canvas outside the frame") {
    Bytes pal(768);
    for (int i = 0; i < 256; ++i) pal[size_t(3 * i)] = uint8_t(i), pal[size_t(3 * i + 1)] = uint8_t(255 - i), pal[size_t(3 * i + 2)] = uint8_t(i * 7);
    const int fw = 30, fh = 20;  // 600 pixels: several clear codes
    Bytes idx(size_t(fw * fh));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = uint8_t((i * 37) % 256);
    auto colour = [&](int i, int c) { return pal[size_t(3 * i + c)]; };
    SUBCASE("full frame") {
        const auto img = decode(gif_encode(fw, fh, pal, 0, 0, fw, fh, idx));
        REQUIRE(img.width == fw);
        for (size_t i = 0; i < idx.size(); ++i)
            for (int c = 0; c < 3; ++c) CHECK(img.pixels[3 * i + size_t(c)] == colour(idx[i], c));
    }
    SUBCASE("frame smaller than the screen, with a transparent index") {
        const int sw = 40, sh = 25, left = 6, top = 3, t = 37;
        const auto img = decode(gif_encode(sw, sh, pal, left, top, fw, fh, idx, t));
        REQUIRE(img.width == sw);
        REQUIRE(img.height == sh);
        for (int y = 0; y < sh; ++y)
            for (int x = 0; x < sw; ++x) {
                const bool inside = x >= left && x < left + fw && y >= top && y < top + fh;
                const int want = inside ? idx[size_t((y - top) * fw + (x - left))] : t;  // PIL: canvas of the transparent index
                for (int c = 0; c < 3; ++c) CHECK(img.at(y, x)[c] == colour(want, c));
            }
    }
}

TEST_CASE("image: JPEG baseline (stb writer) and progressive (PIL-made) decode close to the source") {
    const int w = 48, h = 32;
    const Bytes src = smooth_rgb(w, h);
    const auto img = decode(jpeg_encode(w, h, src, 95));
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    CHECK(max_abs_diff(img.pixels, src) <= 12);

    const auto prog = softbio::decode_rgb_image(kProgressiveJpeg, sizeof kProgressiveJpeg, "progressive.jpg");
    REQUIRE(prog.width == 16);
    REQUIRE(prog.height == 16);
    int worst = 0;
    for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x) {
            const int want[3] = {16 * x, 16 * y, 128};
            for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(int(prog.at(y, x)[c]) - want[c]));
        }
    CHECK(worst <= 16);  // PIL's own decode of this file is within 11 of the pattern
}

/// 8-bit palette BMP whose header declares `declared` colours (biClrUsed) and that holds
/// `present` palette entries (grey ramp, 4 bytes each) before its pixels.
Bytes bmp8_encode(int w, int h, const Bytes& idx, uint32_t declared, uint32_t present) {
    const uint32_t stride = uint32_t((w + 3) / 4 * 4), offset = 54 + 4 * present;
    Bytes b = {'B', 'M'};
    put_le32(b, offset + stride * uint32_t(h)), put_le32(b, 0), put_le32(b, offset);
    put_le32(b, 40), put_le32(b, uint32_t(w)), put_le32(b, uint32_t(h));
    put_le16(b, 1), put_le16(b, 8), put_le32(b, 0), put_le32(b, stride * uint32_t(h));
    put_le32(b, 2835), put_le32(b, 2835), put_le32(b, declared), put_le32(b, 0);
    for (uint32_t i = 0; i < present; ++i) b.insert(b.end(), {uint8_t(i), uint8_t(i), uint8_t(i), 0});
    for (int r = 0; r < h; ++r) {
        for (int x = 0; x < w; ++x) b.push_back(idx[size_t(h - 1 - r) * size_t(w) + size_t(x)]);
        for (uint32_t k = uint32_t(w); k < stride; ++k) b.push_back(0);
    }
    return b;
}

TEST_CASE("image: BMP palettes and GIF LZW data that PIL refuses (stb would decode them)") {
    SUBCASE("BMP: more than 65536 colours declared, or more than 256 present") {
        const Bytes idx = {0, 1, 2, 3, 4, 5};
        CHECK_NOTHROW(decode(bmp8_encode(3, 2, idx, 256, 256)));
        CHECK_NOTHROW(decode(bmp8_encode(3, 2, idx, 0, 256)));  // 0: 1 << 8 colours
        CHECK(decode_error(bmp8_encode(3, 2, idx, 70000, 16), "p.bmp") ==
              "p.bmp: corrupt BMP file: the header declares a palette of 70000 colours (at most 65536)");
        CHECK(decode_error(bmp8_encode(3, 2, idx, 300, 300), "p.bmp") ==
              "p.bmp: corrupt BMP file: the header declares a palette of 300 colours, 300 of them in the file; pixel indices address at most 256");
        // PIL reads a palette only as far as the file goes: 300 declared, the file ends
        // after 20 entries' worth of bytes: accepted, as PIL accepts it
        Bytes short_file = bmp8_encode(3, 2, idx, 300, 16);
        CHECK_NOTHROW(decode(short_file));
    }
    SUBCASE("BMP: an info header of 56 bytes (stb reads it, PIL does not)") {
        Bytes v3 = bmp_encode(3, 2, pattern_rgb(3, 2, 1));
        v3[14] = 56;
        CHECK(decode_error(v3, "v.bmp") == "v.bmp: corrupt BMP file: unknown BMP info header size 56 (expected 12, 40, 64, 108 or 124)");
    }
    SUBCASE("GIF: the LZW data ends before the image's last pixel") {
        Bytes pal(768, 0);
        const Bytes idx = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
        CHECK_NOTHROW(decode(gif_encode(4, 3, pal, 0, 0, 4, 3, idx)));
        const Bytes ten(idx.begin(), idx.begin() + 10);  // an end code after 10 of 12 pixels
        CHECK(decode_error(gif_encode(4, 3, pal, 0, 0, 4, 3, ten), "g.gif") ==
              "g.gif: truncated GIF file: the first image's LZW data ends after 10 of its 4x3 pixels");
        // more pixels than the frame needs: the rest is ignored (PIL and stb alike)
        Bytes more = idx;
        more.insert(more.end(), {1, 1, 1});
        CHECK_NOTHROW(decode(gif_encode(4, 3, pal, 0, 0, 4, 3, more)));
    }
}

TEST_CASE("image: pixel order: R, G, B in that order, top row first, left pixel first (PNG, BMP, TGA)") {
    // A 3 x 2 image with no symmetry: every pixel differs from its mirror images, and R != B
    // in each, so swapped channels, flipped rows or mirrored columns all change some pixel.
    const int w = 3, h = 2;
    const uint8_t want[2][3][3] = {{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}},    // top: red, green, blue
                                   {{10, 20, 30}, {40, 50, 60}, {200, 100, 7}}};  // bottom
    const Bytes rgb(&want[0][0][0], &want[0][0][0] + sizeof want);
    auto check_pixels = [&](const softbio::RgbImage& img) {
        REQUIRE(img.width == w);
        REQUIRE(img.height == h);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x)
                for (int c = 0; c < 3; ++c) {
                    CAPTURE(y);
                    CAPTURE(x);
                    CAPTURE(c);
                    CHECK(int(img.at(y, x)[c]) == int(want[y][x][c]));
                }
    };
    SUBCASE("PNG (samples stored R, G, B, top row first)") {
        check_pixels(decode(png_encode(w, h, 8, 3, std::vector<uint16_t>(rgb.begin(), rgb.end()))));
    }
    SUBCASE("BMP bottom-up and top-down (stored B, G, R)") {
        const Bytes up = bmp_encode(w, h, rgb, false);
        CHECK(Bytes(up.begin() + 54, up.begin() + 57) == Bytes{30, 20, 10});  // first stored: bottom-left, as B, G, R
        check_pixels(decode(up));
        const Bytes down = bmp_encode(w, h, rgb, true);
        CHECK(Bytes(down.begin() + 54, down.begin() + 57) == Bytes{0, 0, 255});  // first stored: top-left
        check_pixels(decode(down));
    }
    SUBCASE("TGA bottom-up and top-down, raw and RLE (stored B, G, R)") {
        for (bool rle : {false, true})
            for (bool top : {false, true}) {
                CAPTURE(rle);
                CAPTURE(top);
                check_pixels(decode(tga_encode(w, h, rgb, rle, top)));
            }
    }
}

TEST_CASE("image: astronaut.png decodes to PIL's pixels (FNV-1a of every byte, from PIL 9.4)") {
    const auto img = softbio::load_rgb_image(std::string(SOFTBIO_DATA_DIR) + "/astronaut.png");
    REQUIRE(img.width == 512);
    REQUIRE(img.height == 512);
    CHECK(fnv1a64("", 0) == 0xcbf29ce484222325u);  // the standard FNV-1a 64 test vectors
    CHECK(fnv1a64("a", 1) == 0xaf63dc4c8601ec8cu);
    CHECK(fnv1a64("foobar", 6) == 0x85944171f73967e8u);
    // 64-bit FNV-1a of PIL's 512 x 512 x 3 RGB bytes in row-major HWC order, as softbio stores
    // them; in the repository root:
    // /usr/bin/python3 -c "import functools,numpy as np;from PIL import Image;print(hex(functools.reduce(lambda h,b:(h^b)*0x100000001b3%2**64,np.asarray(Image.open('data/astronaut.png').convert('RGB')).tobytes(),0xcbf29ce484222325)))"
    CHECK(fnv1a64(img.pixels.data(), img.pixels.size()) == 0xfa4e6bff08e5e8fbu);
    CHECK(img.at(0, 0)[0] == 154);
    CHECK(img.at(0, 0)[1] == 147);
    CHECK(img.at(0, 0)[2] == 151);
    CHECK(img.at(100, 200)[0] == 81);
    CHECK(img.at(100, 200)[1] == 57);
    CHECK(img.at(100, 200)[2] == 17);
}

TEST_CASE("image: refused files: empty, missing, directory, truncated, not an image, absurd size") {
    const Bytes jpg = jpeg_encode(48, 32, smooth_rgb(48, 32), 90);
    const Bytes png = png_encode(5, 4, 8, 3, std::vector<uint16_t>(60, 9));
    auto has = [](const std::string& msg, const std::string& part) {
        INFO(msg);
        CHECK(msg.find(part) != std::string::npos);
    };
    auto marker = [](const Bytes& b, uint8_t m) {  // offset of the first FF m in a JPEG's header
        size_t i = 0;
        while (i + 1 < b.size() && !(b[i] == 0xFF && b[i + 1] == m)) ++i;
        return i;
    };
    SUBCASE("empty") {
        TempFile f("empty.jpg", {});
        try {
            softbio::load_rgb_image(f.path);
            FAIL("no error");
        } catch (const softbio::ImageError& e) {
            has(e.what(), f.path + ": empty file");
        }
        has(decode_error({}, "mem.png"), "mem.png: empty file (0 bytes)");
    }
    SUBCASE("missing file and directory") {
        CHECK_THROWS_AS(softbio::load_rgb_image("/nonexistent/face.jpg"), softbio::ImageError);
        try {
            softbio::load_rgb_image("/nonexistent/face.jpg");
        } catch (const softbio::ImageError& e) {
            has(e.what(), "/nonexistent/face.jpg: cannot open");
        }
        CHECK_THROWS_AS(softbio::load_rgb_image("/tmp"), softbio::ImageError);
        try {
            softbio::load_rgb_image("/tmp");
        } catch (const softbio::ImageError& e) {
            has(e.what(), "/tmp: is a directory, not a regular file");
        }
    }
    SUBCASE("truncated JPEG: half, without EOI, header only") {
        has(decode_error(Bytes(jpg.begin(), jpg.begin() + long(jpg.size() / 2)), "half.jpg"), "half.jpg: truncated JPEG file");
        has(decode_error(Bytes(jpg.begin(), jpg.end() - 2), "noeoi.jpg"), "noeoi.jpg: truncated JPEG file");
        has(decode_error(Bytes(jpg.begin(), jpg.begin() + 30), "head.jpg"), "head.jpg: truncated JPEG file");
        // bytes after EOI are fine (PIL accepts them too)
        Bytes trailing = jpg;
        trailing.insert(trailing.end(), {1, 2, 3, 4});
        CHECK_NOTHROW(decode(trailing));
    }
    SUBCASE("truncated progressive JPEG") {
        const Bytes prog(kProgressiveJpeg, kProgressiveJpeg + sizeof kProgressiveJpeg);
        has(decode_error(Bytes(prog.begin(), prog.begin() + long(prog.size() * 2 / 3)), "p.jpg"), "p.jpg: truncated JPEG file");
    }
    SUBCASE("truncated PNG, BMP, TGA, GIF") {
        has(decode_error(Bytes(png.begin(), png.end() - 20), "t.png"), "t.png: truncated PNG file");
        const Bytes bmp = bmp_encode(7, 5, pattern_rgb(7, 5, 4));
        has(decode_error(Bytes(bmp.begin(), bmp.end() - 3), "t.bmp"), "t.bmp: truncated BMP file");
        const Bytes tga = tga_encode(9, 6, pattern_rgb(9, 6, 5), true, false);
        has(decode_error(Bytes(tga.begin(), tga.end() - 3), "t.tga"), "t.tga: truncated TGA file");
        Bytes pal(768, 0);
        const Bytes gif = gif_encode(30, 20, pal, 0, 0, 30, 20, Bytes(600, 1));
        has(decode_error(Bytes(gif.begin(), gif.end() - 40), "t.gif"), "t.gif: truncated GIF file");
    }
    SUBCASE("text file named .jpg, other formats") {
        const std::string text = "Hello, this is not an image at all.\n";
        const std::string msg = decode_error(Bytes(text.begin(), text.end()), "photo.jpg");
        has(msg, "photo.jpg: not a supported image: expected JPEG, PNG, BMP, GIF or TGA");
        has(msg, "(\"Hello, t\")");
        has(msg, "the name ends in .jpg but the data is not JPEG");
        const std::string webp("RIFF\x10\0\0\0WEBPVP8 ", 16);
        has(decode_error(Bytes(webp.begin(), webp.end()), "x.webp"), "x.webp: is a WebP image");
        has(decode_error(Bytes{'I', 'I', '*', 0, 8, 0, 0, 0}, "x.tif"), "x.tif: is a TIFF image");
    }
    SUBCASE("absurd size in the header, refused before any allocation") {
        Bytes bmp = {'B', 'M'};  // 100000 x 100000, 24-bit, no pixels
        put_le32(bmp, 54), put_le32(bmp, 0), put_le32(bmp, 54), put_le32(bmp, 40), put_le32(bmp, 100000), put_le32(bmp, 100000);
        put_le16(bmp, 1), put_le16(bmp, 24);
        for (int i = 0; i < 6; ++i) put_le32(bmp, 0);
        const std::string msg = decode_error(bmp, "huge.bmp");
        has(msg, "huge.bmp: BMP image is 100000x100000 pixels");
        has(msg, "at most 32768 pixels per side and 100 megapixels");
        Bytes hpng = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        Bytes ihdr;
        put_be32(ihdr, 20000), put_be32(ihdr, 20000);
        ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
        png_chunk(hpng, "IHDR", ihdr);
        png_chunk(hpng, "IEND", {});
        has(decode_error(hpng, "huge.png"), "huge.png: PNG image is 20000x20000 pixels");  // 400 MP, 20000 < 32768
        // the same as 8-bit gray: under stb's own 1 GiB limit, so the size comes from stbi_info
        hpng.resize(8), ihdr[9] = 0;
        png_chunk(hpng, "IHDR", ihdr);
        png_chunk(hpng, "IEND", {});
        has(decode_error(hpng, "gray.png"), "gray.png: PNG image is 20000x20000 pixels");
    }
    SUBCASE("a side over 32768: stb refuses the header itself; the message still gives the declared size") {
        const std::string limits = "softbio accepts at most 32768 pixels per side and 100 megapixels in total";
        auto gray_png = [](int w) { return png_encode(w, 1, 8, 1, std::vector<uint16_t>(size_t(w), 77)); };
        const auto edge = decode(gray_png(32768));  // exactly the limit: accepted
        CHECK(edge.width == 32768);
        CHECK(edge.at(0, 32767)[2] == 77);
        has(decode_error(gray_png(32769), "wide.png"), "wide.png: PNG image is 32769x1 pixels; " + limits);
        Bytes jpg_wide = jpg;  // SOF0 (FF C0): length, precision, height, width
        const size_t sof = marker(jpg_wide, 0xC0);
        REQUIRE(sof + 9 <= jpg_wide.size());
        jpg_wide[sof + 7] = 40000 >> 8, jpg_wide[sof + 8] = 40000 & 255;
        has(decode_error(jpg_wide, "wide.jpg"), "wide.jpg: JPEG image is 40000x32 pixels; " + limits);
        has(decode_error(gif_encode(40000, 20, Bytes(768, 9), 0, 0, 30, 20, Bytes(600, 1)), "wide.gif"),
            "wide.gif: GIF image is 40000x20 pixels; " + limits);
    }
    SUBCASE("a header stb_image refuses: named as such, an empty size as such") {
        Bytes png3 = png;  // IHDR bit depth 3: not a PNG depth (CRC made to match)
        png3[24] = 3;
        const uint32_t crc = crc32(&png3[12], 4 + 13);
        for (int i = 0; i < 4; ++i) png3[size_t(29 + i)] = uint8_t(crc >> (24 - 8 * i));
        has(decode_error(png3, "depth3.png"), "depth3.png: cannot read the PNG header: stb_image refuses it");
        Bytes jpg0 = jpg;  // height 0: "defined later by a DNL marker", which stb does not read
        const size_t sof = marker(jpg0, 0xC0);
        REQUIRE(sof + 9 <= jpg0.size());
        jpg0[sof + 5] = jpg0[sof + 6] = 0;
        has(decode_error(jpg0, "dnl.jpg"), "dnl.jpg: JPEG header declares an empty image (48x0)");
    }
    SUBCASE("a JPEG Huffman table with more than 256 codes (stb 2.27 would overflow), also when the file is cut in it") {
        Bytes bad = jpg;  // DHT (FF C4): length, then per table class/id and 16 code counts
        const size_t dht = marker(bad, 0xC4);
        REQUIRE(dht + 21 <= bad.size());
        bad[dht + 5] = bad[dht + 6] = 200;
        has(decode_error(bad, "dht.jpg"), "dht.jpg: corrupt JPEG file: a Huffman table (DHT) declares");
        for (size_t cut : {dht + 7, dht + 21}) {
            CAPTURE(cut);
            has(decode_error(Bytes(bad.begin(), bad.begin() + long(cut)), "dht_cut.jpg"), "dht_cut.jpg: corrupt JPEG file: a Huffman table (DHT) declares");
        }
        // SOI, then a DHT before any frame header, cut after its counts: stbi_info_from_memory
        // (called on truncated files, for the size) would build this table
        Bytes early = {0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0xA2, 0x13};
        early.insert(early.end(), 16, 255);
        has(decode_error(early, "early.jpg"), "early.jpg: corrupt JPEG file: a Huffman table (DHT) declares 4080 codes (at most 256)");
    }
}

namespace {

/// Where `part` is missing from `msg`, fail showing both.
void check_has(const std::string& msg, const std::string& part) {
    INFO(msg);
    CHECK(msg.find(part) != std::string::npos);
}

/// Offset of the first FF m in a JPEG (the marker of a segment).
size_t jpeg_marker(const Bytes& b, uint8_t m) {
    size_t i = 2;
    while (i + 1 < b.size() && !(b[i] == 0xFF && b[i + 1] == m)) ++i;
    REQUIRE(i + 1 < b.size());
    return i;
}

/// load_rgb_image's message, run on another thread: when it has not returned after
/// `seconds` (it blocks: a regression), the check fails and `unblock` is called so that the
/// test ends instead of hanging.
std::string load_error_within(const std::string& path, int seconds, void (*unblock)(const std::string&) = nullptr) {
    auto result = std::async(std::launch::async, [path]() -> std::string {
        try {
            softbio::load_rgb_image(path);
        } catch (const softbio::ImageError& e) {
            return e.what();
        }
        return "(no error)";
    });
    const bool done = result.wait_for(std::chrono::seconds(seconds)) == std::future_status::ready;
    CHECK_MESSAGE(done, "load_rgb_image(\"" << path << "\") had not returned after " << seconds << " s");
    if (!done && unblock) unblock(path);
    return result.get();
}

}  // namespace

TEST_CASE("image: a PNG whose chunk CRC-32 does not match is refused, naming the chunk and its offset") {
    const Bytes png = png_encode(5, 4, 8, 3, std::vector<uint16_t>(60, 9));  // IHDR at byte 8, IDAT at 33
    REQUIRE(std::string(png.begin() + 37, png.begin() + 41) == "IDAT");
    CHECK_NOTHROW(decode(png));
    SUBCASE("a pixel byte of IDAT changed: stb would decode it (stored deflate block), PIL refuses") {
        Bytes bad = png;
        bad[41 + 2 + 5 + 3] ^= 0x10;  // IDAT data: zlib header (2), stored block header (5), filter byte, samples
        CHECK(decode_error(bad, "x.png") == "x.png: PNG chunk IDAT at byte 33 is corrupt (CRC mismatch)");
    }
    SUBCASE("the CRC field itself, the chunk type, IEND") {
        Bytes crc = png;
        crc[8 + 8 + 13] ^= 1;  // IHDR's CRC
        CHECK(decode_error(crc, "c.png") == "c.png: PNG chunk IHDR at byte 8 is corrupt (CRC mismatch)");
        Bytes type = png;
        type[12] = 0x89;  // "IHDR" -> "\x89HDR": shown escaped, not as a raw byte
        CHECK(decode_error(type, "t.png") == "t.png: PNG chunk \\x89HDR at byte 8 is corrupt (CRC mismatch)");
        Bytes iend = png;
        iend.back() ^= 0x80;
        check_has(decode_error(iend, "e.png"), "e.png: PNG chunk IEND at byte " + std::to_string(png.size() - 12) +
                                                   " is corrupt (CRC mismatch)");
    }
    SUBCASE("the CRC-32 itself: the standard check value, and the CRC of an empty IEND chunk") {
        const std::string check = "123456789";
        CHECK(softbio::detail::image::crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()) == 0xCBF43926u);
        const uint8_t iend[4] = {'I', 'E', 'N', 'D'};
        CHECK(softbio::detail::image::crc32(iend, 4) == 0xAE426082u);
        // in pieces (and so every tail length of the 8-byte steps) = in one go = the test's bitwise CRC
        const Bytes data = pattern_rgb(37, 11, 12);
        for (size_t cut : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(600), data.size()}) {
            CAPTURE(cut);
            const uint32_t first = softbio::detail::image::crc32(data.data(), cut);
            CHECK(softbio::detail::image::crc32(data.data() + cut, data.size() - cut, first) == crc32(data.data(), data.size()));
        }
    }
}

TEST_CASE("image: JPEG tables and scan headers that libjpeg (PIL) refuses and stb would decode through") {
    const Bytes jpg = jpeg_encode(48, 32, smooth_rgb(48, 32), 90);  // SOF0: components 1 (2x2, table 0), 2, 3 (1x1, table 1)
    const size_t sof = jpeg_marker(jpg, 0xC0), dht = jpeg_marker(jpg, 0xC4), sos = jpeg_marker(jpg, 0xDA);
    REQUIRE(jpg[sof + 9] == 3);
    REQUIRE(jpg[sof + 11] == 0x22);
    REQUIRE(jpg[dht + 4] == 0x00);  // the DHT segment starts with DC table 0: 16 counts, then its 12 symbols
    REQUIRE(jpg[sos + 4] == 3);
    CHECK_NOTHROW(decode(jpg));
    const std::string pre = "q.jpg: corrupt JPEG file: ";
    SUBCASE("a quantization table no DQT defines") {
        Bytes bad = jpg;
        bad[sof + 12] = 3;  // component 1 uses table 3
        CHECK(decode_error(bad, "q.jpg") == pre + "scan 1 needs quantization table 3 for component 1, which no DQT segment defines");
    }
    SUBCASE("a Huffman table no DHT defines (sequential: tables 2 and 3 have no standard default)") {
        Bytes bad = jpg;
        bad[sos + 6] = 0x20;  // component 1: DC table 2
        CHECK(decode_error(bad, "q.jpg") == pre + "scan 1 uses DC Huffman table 2, which no DHT segment defines");
    }
    SUBCASE("a DC table with a symbol above 15") {
        Bytes bad = jpg;
        bad[dht + 4 + 17 + 3] = 200;
        CHECK(decode_error(bad, "q.jpg") == pre + "scan 1 uses DC Huffman table 0, which has a symbol above 15 (not a DC difference size)");
    }
    SUBCASE("code lengths with a code of all 1 bits (stb accepts it, libjpeg does not)") {
        Bytes bad = jpg;  // 12 codes: 3 of 2 bits, one each of 3..9 bits, 2 of 10 bits: the last is 1111111111
        const uint8_t counts[16] = {0, 3, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0};
        std::copy(counts, counts + 16, bad.begin() + long(dht + 5));
        CHECK(decode_error(bad, "q.jpg") ==
              pre + "scan 1 uses DC Huffman table 0, whose code lengths do not form a Huffman code (more codes of a length than fit)");
    }
    SUBCASE("a scan that names a component twice, or one the frame lacks") {
        Bytes twice = jpg;
        twice[sos + 7] = 1;  // components 1, 1, 3
        CHECK(decode_error(twice, "q.jpg") == pre + "scan 1 names component 1 twice");
        Bytes absent = jpg;
        absent[sos + 5] = 9;
        CHECK(decode_error(absent, "q.jpg") == pre + "scan 1 names component 9, which the frame header (SOF) does not declare");
    }
    SUBCASE("an interleaved scan of more than 10 blocks per MCU; sampling factors outside 1..4") {
        Bytes big = jpg;
        big[sof + 11] = 0x33;  // 9 + 1 + 1 blocks
        CHECK(decode_error(big, "q.jpg") == pre + "scan 1 interleaves 3 components in MCUs of 11 blocks (the sampling factors allow at most 10)");
        Bytes five = jpg;
        five[sof + 11] = 0x52;
        CHECK(decode_error(five, "q.jpg") == pre + "the frame header gives component 1 sampling factors 5x2 (each must be 1 to 4)");
    }
    SUBCASE("a quantization table segment (DQT) with table id 5") {
        Bytes bad = jpg;
        const size_t dqt = jpeg_marker(jpg, 0xDB);
        bad[dqt + 4] = 0x05;
        CHECK(decode_error(bad, "q.jpg") == pre + "a quantization table (DQT) has id 5 (at most 3)");
    }
    SUBCASE("progressive: every table a scan uses must be defined, even 0 and 1; Ss, Se, Ah, Al consistent") {
        const Bytes prog(kProgressiveJpeg, kProgressiveJpeg + sizeof kProgressiveJpeg);
        const size_t pdht = jpeg_marker(prog, 0xC4), psos = jpeg_marker(prog, 0xDA);
        REQUIRE(prog[pdht + 4] == 0x00);  // the first DHT defines DC table 0, which the first scan uses
        Bytes undefined = prog;
        undefined[pdht + 4] = 0x02;  // ... now table 2
        CHECK(decode_error(undefined, "p.jpg") == "p.jpg: corrupt JPEG file: scan 1 uses DC Huffman table 0, which no DHT segment defines");
        Bytes params = prog;  // first scan: 3 components, then Ss, Se, Ah/Al = 0, 0, 0x01
        REQUIRE(params[psos + 4] == 3);
        params[psos + 12] = 5;  // Se = 5 in a DC scan
        CHECK(decode_error(params, "p.jpg") == "p.jpg: corrupt JPEG file: scan 1 has invalid progressive parameters (Ss=0 Se=5 Ah=0 Al=1)");
    }
    SUBCASE("what libjpeg accepts stays accepted: an unused bad table, a sequential scan using the undefined table 1") {
        Bytes unused = jpg;  // insert a DHT defining DC table 2 with a symbol of 200: no scan uses it
        Bytes seg = {0xFF, 0xC4, 0x00, 2 + 1 + 16 + 1, 0x02, 1};  // DC table 2: one code of 1 bit, ...
        seg.resize(seg.size() + 15, 0);                             // ... none longer, ...
        seg.push_back(200);                                         // ... for the symbol 200
        unused.insert(unused.begin() + long(dht), seg.begin(), seg.end());
        CHECK_NOTHROW(decode(unused));
        // DC table 1 renamed 3: the chroma scan's DC table 1 is undefined, which libjpeg
        // allows in a sequential file (it takes the standard table, which is what the stb
        // writer used), so the structure walk must not refuse it
        Bytes std_table = jpg;
        const size_t dc1 = dht + 4 + (1 + 16 + 12) + (1 + 16 + 162);
        REQUIRE(std_table[dc1] == 0x01);
        std_table[dc1] = 0x03;
        // ... and since softbio then supplies the standard tables, the pixels are those of
        // the intact file
        CHECK(decode(std_table).pixels == decode(jpg).pixels);
    }
    SUBCASE("no DHT at all (motion-JPEG style): the standard tables of the spec, as libjpeg") {
        // stb's writer encodes with the standard tables (in one DHT segment), so removing
        // that segment must change nothing: a wrong byte in kStandardHuffmanTables changes
        // the pixels or fails the decode. A noisy 4:4:4 image (quality 95) uses most AC
        // codes; the smooth 4:2:0 one both chroma tables.
        for (const Bytes& original : {jpg, jpeg_encode(37, 29, pattern_rgb(37, 29, 5), 95)}) {
            const size_t at = jpeg_marker(original, 0xC4);
            const size_t seg_len = size_t(original[at + 2]) << 8 | original[at + 3];
            Bytes no_dht = original;
            no_dht.erase(no_dht.begin() + long(at), no_dht.begin() + long(at + 2 + seg_len));
            CHECK(decode(no_dht).pixels == decode(original).pixels);
        }
    }
}

TEST_CASE("image: TGA as PIL reads it: right-to-left rows mirrored, damaged RLE and headers refused") {
    const int w = 5, h = 3;
    const Bytes rgb = pattern_rgb(w, h, 21);
    Bytes mirrored(rgb.size());
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) std::copy_n(&rgb[(size_t(y) * w + size_t(x)) * 3], 3, &mirrored[(size_t(y) * w + size_t(w - 1 - x)) * 3]);
    SUBCASE("descriptor bit 4 (right to left): PIL mirrors each row") {
        for (bool rle : {false, true})
            for (bool top : {false, true}) {
                CAPTURE(rle);
                CAPTURE(top);
                Bytes t = tga_encode(w, h, rgb, rle, top);
                t[17] |= 0x10;
                CHECK(decode(t).pixels == mirrored);
            }
    }
    // Hand-made RLE TGA, 4 x 2, 24-bit, bottom-up, from packets
    auto rle_tga = [](const Bytes& packets, uint8_t type = 10, uint8_t bpp = 24) {
        const uint8_t header[18] = {0, 0, type, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 2, 0, bpp, 0};
        Bytes b(header, header + 18);
        b.resize(18 + packets.size());
        std::copy(packets.begin(), packets.end(), b.begin() + 18);
        return b;
    };
    auto raw_packet = [](int count, uint8_t v) {
        Bytes p = {uint8_t(count - 1)};
        for (int i = 0; i < count * 3; ++i) p.push_back(uint8_t(v + i));
        return p;
    };
    auto run_packet = [](int count, uint8_t v) { return Bytes{uint8_t(0x80 | (count - 1)), v, v, v}; };
    auto cat = [](std::initializer_list<Bytes> parts) {
        Bytes b;
        for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
        return b;
    };
    SUBCASE("a raw packet may cross the end of a row (PIL accepts it)") {
        CHECK_NOTHROW(decode(rle_tga(cat({raw_packet(6, 10), raw_packet(2, 90)}))));
        CHECK(decode(rle_tga(cat({raw_packet(3, 10), run_packet(1, 7), run_packet(4, 9)}))).width == 4);
    }
    SUBCASE("a repeated run that crosses the end of a row, or of the image: PIL refuses (buffer overrun)") {
        // 3 raw pixels, then a run of 2 from the 4th pixel of row 0: 1 pixel is left in the row
        CHECK(decode_error(rle_tga(cat({raw_packet(3, 10), run_packet(2, 7), raw_packet(3, 50)})), "r.tga") ==
              "r.tga: corrupt TGA file: the run-length packet at byte 28 repeats a pixel 2 times, past the end of its row (1 pixel left in the row)");
        CHECK(decode_error(rle_tga(cat({raw_packet(4, 10), run_packet(6, 7)})), "r.tga") ==
              "r.tga: corrupt TGA file: the run-length packet at byte 31 repeats a pixel 6 times, past the end of its row (4 pixels left in the row)");
    }
    SUBCASE("true colour with 8 bits per pixel: PIL cannot load it") {
        Bytes t = tga_encode(w, h, rgb, false, false);
        t[16] = 8;
        CHECK(decode_error(t, "b.tga") == "b.tga: corrupt TGA file: a true-colour image (type 2) cannot have 8 bits per pixel");
    }
    SUBCASE("an 8-bit colour map of more than 256 entries: PIL refuses the palette") {
        auto mapped = [](uint16_t first, uint16_t len) {
            Bytes b = {0, 1, 1, uint8_t(first), uint8_t(first >> 8), uint8_t(len), uint8_t(len >> 8), 24, 0, 0, 0, 0, 2, 0, 2, 0, 8, 0};
            for (int i = 0; i < len * 3; ++i) b.push_back(uint8_t(i));
            b.insert(b.end(), {0, 1, 2, 3});
            return b;
        };
        const auto ok = decode(mapped(0, 256));
        CHECK(ok.at(1, 1)[0] == 5);  // index 1 (rows stored bottom first): entry 1 is B, G, R = 3, 4, 5
        CHECK(decode_error(mapped(0, 257), "m.tga") ==
              "m.tga: corrupt TGA file: the colour map has 257 entries (first index 0, 257 colours); 8-bit pixel indices address at most 256");
        CHECK(decode_error(mapped(200, 60), "m.tga") ==
              "m.tga: corrupt TGA file: the colour map has 260 entries (first index 200, 60 colours); 8-bit pixel indices address at most 256");
    }
}

namespace {
void open_fifo_for_writing(const std::string& path) {  // releases a reader blocked in open() or read()
    for (int i = 0; i < 50; ++i) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            ::close(fd);
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}
}  // namespace

TEST_CASE("image: load_rgb_image refuses what is not a regular file before reading it: FIFO, device, directory, link loop") {
    const std::string base = "/tmp/softbio_test_image_" + std::to_string(getpid()) + "_";
    SUBCASE("a named pipe (FIFO): refused at once, not waiting for a writer") {
        const std::string fifo = base + "fifo.png";
        ::unlink(fifo.c_str());
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        const std::string msg = load_error_within(fifo, 5, open_fifo_for_writing);
        ::unlink(fifo.c_str());
        CHECK(msg == fifo + ": is a named pipe (FIFO), not a regular file");
    }
    SUBCASE("/dev/zero (would never end), /dev/null: character devices") {
        CHECK(load_error_within("/dev/zero", 10) == "/dev/zero: is a character device, not a regular file");
        CHECK(load_error_within("/dev/null", 5) == "/dev/null: is a character device, not a regular file");
    }
    SUBCASE("a directory") {
        CHECK(load_error_within("/tmp", 5) == "/tmp: is a directory, not a regular file");
        CHECK(load_error_within("/tmp/", 5) == "/tmp/: is a directory, not a regular file");
    }
    SUBCASE("a loop of symbolic links: ELOOP, not 'no such file'") {
        const std::string a = base + "loop_a.png", b = base + "loop_b.png";
        ::unlink(a.c_str()), ::unlink(b.c_str());
        REQUIRE(::symlink(b.c_str(), a.c_str()) == 0);
        REQUIRE(::symlink(a.c_str(), b.c_str()) == 0);
        const std::string msg = load_error_within(a, 5);
        ::unlink(a.c_str()), ::unlink(b.c_str());
        check_has(msg, a + ": cannot open: a symbolic link loop (ELOOP");
    }
    SUBCASE("a symbolic link to a regular file is read") {
        const Bytes png = png_encode(3, 2, 8, 3, std::vector<uint16_t>(18, 77));
        TempFile f("linked.png", png);
        const std::string link = base + "link.png";
        ::unlink(link.c_str());
        REQUIRE(::symlink(f.path.c_str(), link.c_str()) == 0);
        const auto img = softbio::load_rgb_image(link);
        ::unlink(link.c_str());
        CHECK(img.width == 3);
        CHECK(img.at(1, 2)[0] == 77);
    }
}

// =========================================================================================
// Preprocessing
// =========================================================================================

namespace {

softbio::PreprocessSpec spec_of(const std::string& steps_json) {
    return softbio::parse_preprocess(nlohmann::json{{"steps", nlohmann::json::parse(steps_json)}}, "test.safetensors");
}

softbio::RgbImage image_of(int w, int h, const Bytes& rgb) {
    softbio::RgbImage img;
    img.width = w, img.height = h, img.pixels = rgb;
    return img;
}

/// Run the chain and return its float output (HWC).
std::vector<float> run_chain(const softbio::RgbImage& img, const std::string& steps_json, int& oh, int& ow) {
    const auto spec = spec_of(steps_json);
    spec.output_size(img.height, img.width, oh, ow);
    std::vector<float> out(size_t(oh) * size_t(ow) * 3, -1.0f);
    softbio::PreprocessWorkspace ws;
    softbio::preprocess(img, spec, ws, out.data());
    return out;
}

/// Run the chain and return the output as 8-bit levels (exact for chains without normalize).
Bytes run_levels(const softbio::RgbImage& img, const std::string& steps_json, int& oh, int& ow) {
    const std::vector<float> out = run_chain(img, steps_json, oh, ow);
    Bytes levels(out.size());
    for (size_t i = 0; i < out.size(); ++i) {
        const float l = out[i] * 255.0f;
        REQUIRE(std::fabs(l - std::round(l)) < 1e-3f);
        levels[i] = uint8_t(std::lround(l));
    }
    return levels;
}

}  // namespace

TEST_CASE("image: center_crop_offset = int(round((L - C) / 2)) with ties to even, -((C - L) // 2) when padding") {
    using softbio::center_crop_offset;
    CHECK(center_crop_offset(218, 178) == 20);  // CelebA: top 20
    CHECK(center_crop_offset(178, 178) == 0);
    CHECK(center_crop_offset(128, 120) == 4);   // coral-cnn
    CHECK(center_crop_offset(3, 2) == 0);       // round(0.5) = 0
    CHECK(center_crop_offset(5, 2) == 2);       // round(1.5) = 2
    CHECK(center_crop_offset(7, 2) == 2);       // round(2.5) = 2
    CHECK(center_crop_offset(9, 2) == 4);       // round(3.5) = 4
    CHECK(center_crop_offset(11, 2) == 4);      // round(4.5) = 4
    CHECK(center_crop_offset(90, 77) == 6);     // round(6.5) = 6
    CHECK(center_crop_offset(100, 101) == 0);   // pad 0 before, 1 after
    CHECK(center_crop_offset(100, 103) == -1);  // pad 1 before, 2 after
    CHECK(center_crop_offset(90, 300) == -105);
}

TEST_CASE("image: center_crop: view when it fits, zero padding when the image is smaller (per axis)") {
    const int w = 5, h = 4;
    const Bytes rgb = pattern_rgb(w, h, 6);
    const auto img = image_of(w, h, rgb);
    auto src = [&](int y, int x, int c) { return rgb[(size_t(y) * size_t(w) + size_t(x)) * 3 + size_t(c)]; };
    struct Case { int ch, cw; };
    for (Case cs : {Case{2, 3}, Case{3, 2}, Case{4, 5}, Case{1, 1}, Case{7, 8}, Case{6, 3}, Case{2, 9}, Case{5, 5}}) {
        CAPTURE(cs.ch);
        CAPTURE(cs.cw);
        int oh = 0, ow = 0;
        const Bytes out = run_levels(img, "[{\"op\":\"center_crop\",\"size\":[" + std::to_string(cs.ch) + "," + std::to_string(cs.cw) +
                                              "]},{\"op\":\"to_tensor\"}]", oh, ow);
        REQUIRE(oh == cs.ch);
        REQUIRE(ow == cs.cw);
        const int oy = softbio::center_crop_offset(h, cs.ch), ox = softbio::center_crop_offset(w, cs.cw);
        for (int y = 0; y < oh; ++y)
            for (int x = 0; x < ow; ++x)
                for (int c = 0; c < 3; ++c) {
                    const int sy = y + oy, sx = x + ox;
                    const int want = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? src(sy, sx, c) : 0;
                    CHECK(out[(size_t(y) * size_t(ow) + size_t(x)) * 3 + size_t(c)] == want);
                }
    }
}

TEST_CASE("image: resize known answers from PIL 9.4 (1-D up and down), identity, constants") {
    auto row = [](std::vector<int> v) {
        Bytes rgb;
        for (int x : v) rgb.insert(rgb.end(), {uint8_t(x), uint8_t(x), uint8_t(x)});
        return image_of(int(v.size()), 1, rgb);
    };
    auto resized = [&](const softbio::RgbImage& img, int ow) {
        int oh = 0, w = 0;
        const Bytes out = run_levels(img, "[{\"op\":\"resize\",\"size\":[1," + std::to_string(ow) + "]},{\"op\":\"to_tensor\"}]", oh, w);
        std::vector<int> r;
        for (int x = 0; x < w; ++x) r.push_back(out[size_t(3 * x)]);
        return r;
    };
    // PIL: Image.fromarray(np.array([[0, 255]], np.uint8)).resize((4, 1), BILINEAR)
    CHECK(resized(row({0, 255}), 4) == std::vector<int>{0, 64, 191, 255});
    CHECK(resized(row({0, 100, 200, 255}), 2) == std::vector<int>{71, 209});
    CHECK(resized(row({0, 100, 200, 255, 7, 9, 31}), 3) == std::vector<int>{86, 160, 16});

    const Bytes rgb = pattern_rgb(11, 9, 7);
    int oh = 0, ow = 0;
    CHECK(run_levels(image_of(11, 9, rgb), R"([{"op":"resize","size":[9,11]},{"op":"to_tensor"}])", oh, ow) == rgb);

    Bytes flat(size_t(13 * 17) * 3);
    for (size_t i = 0; i < flat.size(); i += 3) flat[i] = 17, flat[i + 1] = 200, flat[i + 2] = 255;
    for (auto sz : {std::pair<int, int>{5, 4}, {40, 33}, {13, 100}, {1, 1}}) {
        const Bytes out = run_levels(image_of(17, 13, flat),
                                     "[{\"op\":\"resize\",\"size\":[" + std::to_string(sz.first) + "," + std::to_string(sz.second) +
                                         "]},{\"op\":\"to_tensor\"}]", oh, ow);
        for (size_t i = 0; i < out.size(); i += 3) {
            CHECK(out[i] == 17);
            CHECK(out[i + 1] == 200);
            CHECK(out[i + 2] == 255);
        }
    }
}

TEST_CASE("image: resize weights: support 1*scale when shrinking, 1 when enlarging, normalised fixed point") {
    softbio::ResampleAxis ax;
    ax.prepare(10, 4);  // scale 2.5: support 2.5, taps = ceil(2.5)*2+1 = 7
    CHECK(ax.taps == 7);
    for (int i = 0; i < 4; ++i) {
        int64_t sum = 0;
        for (int t = 0; t < ax.count[size_t(i)]; ++t) sum += ax.weights[size_t(i * ax.taps + t)];
        CHECK(std::llabs(sum - (int64_t(1) << 22)) <= ax.count[size_t(i)]);
    }
    ax.prepare(4, 10);  // enlarging: support 1, taps 3
    CHECK(ax.taps == 3);
    CHECK(ax.first[0] == 0);
    CHECK(ax.count[0] == 1);  // centre 0.2: only pixel 0
}

TEST_CASE("image: chains on astronaut.png equal torchvision (FNV-1a of the float output, torchvision 0.14 / PIL 9.4)") {
    // `fnv` is the 64-bit FNV-1a of the output's float32 bytes (little-endian) in softbio's HWC
    // order, i.e. of torchvision's CHW tensor permuted to HWC. Each comes from the Python line
    // above it, run in the repository root.
    const auto img = softbio::load_rgb_image(std::string(SOFTBIO_DATA_DIR) + "/astronaut.png");
    struct Chain {
        const char* steps;
        int size;
        uint64_t fnv;
        int px[4][3];  // levels at (0,0), (17,93), (last,last), (64,31), for a readable failure
    };
    const Chain chains[] = {
        // /usr/bin/python3 -c "import functools,torchvision.transforms as T;from PIL import Image;t=T.Compose([T.CenterCrop(178),T.Resize((128,128)),T.ToTensor()])(Image.open('data/astronaut.png').convert('RGB'));print(hex(functools.reduce(lambda h,b:(h^b)*0x100000001b3%2**64,t.permute(1,2,0).contiguous().numpy().tobytes(),0xcbf29ce484222325)))"
        {R"([{"op":"center_crop","size":[178,178]},{"op":"resize","size":[128,128],"filter":"bilinear"},{"op":"to_tensor"}])", 128,
         0x2747d9d4bf0ff51cu, {{2, 1, 1}, {222, 212, 210}, {136, 17, 17}, {158, 156, 164}}},
        // /usr/bin/python3 -c "import functools,torchvision.transforms as T;from PIL import Image;t=T.Compose([T.Resize((128,128)),T.CenterCrop(120),T.ToTensor()])(Image.open('data/astronaut.png').convert('RGB'));print(hex(functools.reduce(lambda h,b:(h^b)*0x100000001b3%2**64,t.permute(1,2,0).contiguous().numpy().tobytes(),0xcbf29ce484222325)))"
        {R"([{"op":"resize","size":[128,128]},{"op":"center_crop","size":[120,120]},{"op":"to_tensor"}])", 120, 0x737efb812848bd30u,
         {{9, 4, 22}, {166, 164, 169}, {93, 90, 89}, {226, 111, 72}}},
        // /usr/bin/python3 -c "import functools,torchvision.transforms as T;from PIL import Image;t=T.Compose([T.CenterCrop(140),T.Resize((128,128)),T.CenterCrop(120),T.ToTensor()])(Image.open('data/astronaut.png').convert('RGB'));print(hex(functools.reduce(lambda h,b:(h^b)*0x100000001b3%2**64,t.permute(1,2,0).contiguous().numpy().tobytes(),0xcbf29ce484222325)))"
        {R"([{"op":"center_crop","size":[140,140]},{"op":"resize","size":[128,128]},{"op":"center_crop","size":[120,120]},{"op":"to_tensor"}])",
         120, 0x69d1f7d2c6dd710eu, {{19, 13, 6}, {113, 102, 113}, {214, 89, 48}, {189, 188, 196}}},
    };
    static_assert(sizeof(float) == 4, "the hashes are of float32 bytes");
    for (const Chain& ch : chains) {
        CAPTURE(ch.steps);
        int oh = 0, ow = 0;
        const std::vector<float> out = run_chain(img, ch.steps, oh, ow);
        REQUIRE(oh == ch.size);
        REQUIRE(ow == ch.size);
        CHECK(fnv1a64(out.data(), out.size() * sizeof(float)) == ch.fnv);
        const int at[4][2] = {{0, 0}, {17, 93}, {ch.size - 1, ch.size - 1}, {64, 31}};
        for (int k = 0; k < 4; ++k)
            for (int c = 0; c < 3; ++c)
                CHECK(std::lround(out[(size_t(at[k][0]) * size_t(ow) + size_t(at[k][1])) * 3 + size_t(c)] * 255.0f) == ch.px[k][c]);
    }
}

TEST_CASE("image: to_tensor is v / 255 in float32, normalize is (x - mean) / std in float32") {
    Bytes rgb;
    for (int v = 0; v < 256; ++v) rgb.insert(rgb.end(), {uint8_t(v), uint8_t(255 - v), uint8_t(v / 2)});
    const auto img = image_of(256, 1, rgb);
    const auto spec = spec_of(R"([{"op":"to_tensor"},{"op":"normalize","mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}])");
    const auto plain = spec_of(R"([{"op":"to_tensor"}])");
    std::vector<float> out(256 * 3), raw(256 * 3);
    softbio::PreprocessWorkspace ws;
    softbio::preprocess(img, spec, ws, out.data());
    softbio::preprocess(img, plain, ws, raw.data());
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (size_t i = 0; i < raw.size(); ++i) {
        const volatile float x = float(rgb[i]) / 255.0f;  // volatile: no contraction
        CHECK(raw[i] == x);
        const volatile float d = x - mean[i % 3];
        CHECK(out[i] == d / sd[i % 3]);
    }
    CHECK(raw[0] == 0.0f);
    CHECK(raw[3 * 255] == 1.0f);
}

TEST_CASE("image: workspace reuse: same results, no growth after the largest image") {
    const auto spec = spec_of(R"([{"op":"center_crop","size":[40,40]},{"op":"resize","size":[32,32]},{"op":"center_crop","size":[30,30]},{"op":"to_tensor"}])");
    const auto a = image_of(50, 60, pattern_rgb(50, 60, 8));
    const auto b = image_of(23, 31, pattern_rgb(23, 31, 9));  // smaller than the crop: padding path
    softbio::PreprocessWorkspace ws;
    std::vector<float> ra(30 * 30 * 3), rb(ra.size()), tmp(ra.size());
    softbio::preprocess(a, spec, ws, ra.data());
    softbio::preprocess(b, spec, ws, rb.data());
    const size_t bytes = ws.bytes();
    for (int k = 0; k < 3; ++k) {
        softbio::preprocess(a, spec, ws, tmp.data());
        CHECK(tmp == ra);
        softbio::preprocess(b, spec, ws, tmp.data());
        CHECK(tmp == rb);
    }
    CHECK(ws.bytes() == bytes);
    softbio::PreprocessWorkspace fresh;
    softbio::preprocess(b, spec, fresh, tmp.data());
    CHECK(tmp == rb);
}

TEST_CASE("image: parse_preprocess accepts FORMAT.md's chains and reports output sizes") {
    const auto celeba = spec_of(R"([{"op":"center_crop","size":[178,178]},{"op":"resize","size":[128,128],"filter":"bilinear"},{"op":"to_tensor"}])");
    CHECK(celeba.steps.size() == 3);
    CHECK(celeba.output_height() == 128);
    CHECK(celeba.output_width() == 128);
    const auto morph = spec_of(R"([{"op":"center_crop","size":[140,140]},{"op":"resize","size":[128,128]},{"op":"center_crop","size":[120,110]},{"op":"to_tensor"}])");
    CHECK(morph.output_height() == 120);
    CHECK(morph.output_width() == 110);
    const auto none = spec_of(R"([{"op":"to_tensor"}])");
    CHECK(none.output_height() == 0);  // input-sized
    int oh = 0, ow = 0;
    none.output_size(64, 48, oh, ow);
    CHECK(oh == 64);
    CHECK(ow == 48);
    const auto norm = spec_of(R"([{"op":"resize","size":[8,9]},{"op":"to_tensor"},{"op":"normalize","mean":[0.5,0.5,0.5],"std":[0.25,0.5,1]}])");
    CHECK(norm.steps[2].std[0] == 0.25f);
    const auto round_trip = softbio::parse_preprocess(softbio::preprocess_to_json(norm), "rt");
    CHECK(softbio::preprocess_to_json(round_trip) == softbio::preprocess_to_json(norm));
}

TEST_CASE("image: parse_preprocess refuses bad chains with '<context>: preprocess step N (op): ...'") {
    auto err = [](const nlohmann::json& pre) -> std::string {
        try {
            softbio::parse_preprocess(pre, "m.safetensors");
        } catch (const softbio::ModelFileError& e) {
            return e.what();
        }
        return "(no error)";
    };
    auto steps = [](const char* s) { return nlohmann::json{{"steps", nlohmann::json::parse(s)}}; };
    auto has = [](const std::string& msg, const std::string& part) {
        INFO(msg);
        CHECK(msg.find(part) != std::string::npos);
    };
    has(err(nlohmann::json::array()), "m.safetensors: preprocess: expected an object");
    has(err(nlohmann::json::object()), "m.safetensors: preprocess: expected a \"steps\" array");
    has(err(steps("[]")), "\"steps\" is empty");
    has(err(nlohmann::json{{"steps", nlohmann::json::array({{{"op", "to_tensor"}}})}, {"colour", "rgb"}}), "unknown key \"colour\"");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"flip"}])")), "m.safetensors: preprocess step 2 (flip): unknown op \"flip\"");
    has(err(steps(R"([{"size":[3,3]}])")), "preprocess step 1: missing \"op\"");
    has(err(steps(R"([{"op":"resize","size":[128]},{"op":"to_tensor"}])")), "preprocess step 1 (resize): \"size\" must be [height, width]");
    has(err(steps(R"([{"op":"center_crop","size":[0,5]},{"op":"to_tensor"}])")), "step 1 (center_crop): \"size\" must be");
    has(err(steps(R"([{"op":"center_crop","size":[5,40000]},{"op":"to_tensor"}])")), "1..32768");
    has(err(steps(R"([{"op":"center_crop","size":[5.5,4]},{"op":"to_tensor"}])")), "\"size\" must be");
    has(err(steps(R"([{"op":"center_crop"},{"op":"to_tensor"}])")), "missing \"size\"");
    has(err(steps(R"([{"op":"resize","size":[4,4],"filter":"bicubic"},{"op":"to_tensor"}])")), "\"filter\" \"bicubic\" is not supported");
    has(err(steps(R"([{"op":"resize","size":[4,4],"interpolation":"bilinear"},{"op":"to_tensor"}])")),
        "step 1 (resize): unknown key \"interpolation\" (known: size, filter)");
    has(err(steps(R"([{"op":"to_tensor","scale":1}])")), "unknown key \"scale\" (this op takes no options)");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"resize","size":[4,4]}])")), "step 2 (resize): comes after to_tensor");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"to_tensor"}])")), "step 2 (to_tensor): a second to_tensor");
    has(err(steps(R"([{"op":"normalize","mean":[0,0,0],"std":[1,1,1]},{"op":"to_tensor"}])")), "step 1 (normalize): normalize must directly follow to_tensor");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"normalize","mean":[0,0,0],"std":[1,1,1]},{"op":"normalize","mean":[0,0,0],"std":[1,1,1]}])")),
        "step 3 (normalize): normalize must directly follow to_tensor");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"normalize","mean":[0,0],"std":[1,1,1]}])")), "\"mean\" must be 3 finite numbers");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"normalize","mean":[0,0,0],"std":[1,0,1]}])")), "\"std\" has a zero");
    has(err(steps(R"([{"op":"to_tensor"},{"op":"normalize","mean":[0,0,0]}])")), "missing \"std\"");
    has(err(steps(R"([{"op":"resize","size":[4,4]}])")), "m.safetensors: preprocess: the chain must end with to_tensor");
}

TEST_CASE("image: preprocess refuses an image whose buffer does not match its size") {
    softbio::RgbImage img;
    img.width = 4, img.height = 4;
    img.pixels.resize(10);
    softbio::PreprocessWorkspace ws;
    std::vector<float> out(48);
    CHECK_THROWS_AS(softbio::preprocess(img, spec_of(R"([{"op":"to_tensor"}])"), ws, out.data()), softbio::ShapeError);
}
