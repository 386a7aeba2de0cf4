// tests/fuzz/fuzz_image.cpp — libFuzzer target: image decoding from memory and the
// preprocessing chains (image/decode.hpp, image/preprocess.hpp).
//
// decode_rgb_image must either refuse the bytes with an ImageError or return an image of
// 1..kMaxImageSide pixels per side holding exactly width * height * 3 bytes. Every
// decoded image then goes through fixed chains that cover the preprocessing code paths
// (downscale and upscale on both axes, one axis only, center crop as a view and with
// zero padding, to_tensor alone, normalize, torchvision's shorter-side Resize(N) with and
// without max_size), with one workspace reused across inputs
// (its cached resampling weights and buffers must stay correct when sizes change). The
// chains must not throw (a shorter-side resize may refuse an extreme aspect ratio with an
// ImageError), and their outputs must be finite and in range. Anything else
// escaping is reported by libFuzzer as a crash; ASan and UBSan watch the rest.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <softbio/image/decode.hpp>
#include <softbio/image/preprocess.hpp>

#include "fuzz_util.hpp"

namespace {

using softbio::PreprocessSpec;
using softbio::PreprocessStep;

// Full-size to_tensor output only for images up to this many pixels (4 bytes per
// channel value; the decoder allows 100 megapixels).
constexpr long long kMaxFullSizePixels = 1 << 20;

// Inputs whose header declares more pixels than this are skipped. A GIF or JPEG of a few
// hundred bytes may declare (and legitimately decode to) up to 100 megapixels, seconds of
// work under the sanitizers: the fuzzer would spend its time filling pixel buffers
// instead of exploring the parsers. The size limits themselves are unit-tested
// (tests/test_image.cpp). stb_image's own header reader gives the size; where it
// fails, PNG, GIF and JPEG are peeked here: a BMP or TGA must hold its
// pixels, which -max_len bounds. The peek is deliberately simple (first SOF marker of a
// JPEG): a file it misjudges is decoded slowly or skipped; neither gives a false report.
constexpr long long kMaxDeclaredPixels = 1 << 22;

long long declared_pixels(const uint8_t* d, size_t n) {
    // First what the decoder itself will read: stb_image's header parser (compiled into
    // this translation unit by decode.hpp), given only what passes decode.hpp's structure
    // walk, as in the decoder (stbi_info parses a JPEG's DHT segments too, and a bad one
    // writes past stb's table); the simple peek below for what stb refuses.
    std::string other;
    const auto format = softbio::detail::image::sniff(d, n, other);
    if (format != softbio::ImageFormat::Unknown && n <= size_t(INT32_MAX) &&
        softbio::detail::image::walk(format, d, n).ok) {
        int sw = 0, sh = 0, sc = 0;
        if (stbi_info_from_memory(d, int(n), &sw, &sh, &sc)) return (long long)sw * sh;
    }
    auto be16 = [&](size_t i) { return (long long)(d[i]) << 8 | d[i + 1]; };
    auto le16 = [&](size_t i) { return (long long)(d[i + 1]) << 8 | d[i]; };
    if (n >= 10 && std::memcmp(d, "GIF8", 4) == 0) return le16(6) * le16(8);  // logical screen
    if (n >= 24 && std::memcmp(d, "\x89PNG", 4) == 0) {  // IHDR width x height, 32 bits each
        const long long w = be16(16) << 16 | be16(18), h = be16(20) << 16 | be16(22);
        return w > kMaxDeclaredPixels || h > kMaxDeclaredPixels ? kMaxDeclaredPixels + 1 : w * h;
    }
    if (n >= 4 && d[0] == 0xFF && d[1] == 0xD8) {
        size_t i = 2;
        while (i + 4 <= n) {
            if (d[i] != 0xFF) { ++i; continue; }
            const int m = d[i + 1];
            if (m == 0xFF || m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { i += 2; continue; }
            if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
                return i + 9 <= n ? be16(i + 5) * be16(i + 7) : -1;  // SOFn: P, Y (height), X (width)
            i += 2 + size_t(be16(i + 2));
        }
    }
    return -1;
}

// `may_refuse`: a shorter-side resize refuses (ImageError) an image whose aspect ratio
// would make a side 0 or larger than kMaxPreprocessSide; other chains never refuse.
void run_chain(const softbio::RgbImage& img, const PreprocessSpec& spec, bool normalized, softbio::PreprocessWorkspace& ws,
               bool may_refuse = false) {
    int oh = 0, ow = 0;
    std::vector<float> out;
    try {
        spec.output_size(img.height, img.width, oh, ow);
        SOFTBIO_FUZZ_CHECK(oh >= 1 && ow >= 1 && oh <= softbio::kMaxPreprocessSide && ow <= softbio::kMaxPreprocessSide);
        if (static_cast<long long>(oh) * ow > kMaxFullSizePixels) return;
        out.assign(size_t(oh) * size_t(ow) * 3, -1234.5f);
        softbio::preprocess(img, spec, ws, out.data());
    } catch (const softbio::ImageError&) {
        if (!may_refuse) throw;
        return;
    }
    for (float v : out) {
        SOFTBIO_FUZZ_CHECK(std::isfinite(v));
        if (!normalized) SOFTBIO_FUZZ_CHECK(v >= 0.0f && v <= 1.0f);
        else SOFTBIO_FUZZ_CHECK(v >= -2.2f && v <= 2.7f);  // ImageNet mean/std: (0 - 0.485) / 0.229 .. (1 - 0.406) / 0.225
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static softbio::RgbImage img;  // pixel buffer reused, as softbio-predict does
    static softbio::PreprocessWorkspace ws;
    if (declared_pixels(data, size) > kMaxDeclaredPixels) return 0;
    try {
        softbio::decode_rgb_image(data, size, "fuzz-input", img);
    } catch (const softbio::ImageError&) {
        return 0;
    }
    SOFTBIO_FUZZ_CHECK(img.width >= 1 && img.height >= 1);
    SOFTBIO_FUZZ_CHECK(img.width <= softbio::kMaxImageSide && img.height <= softbio::kMaxImageSide);
    SOFTBIO_FUZZ_CHECK(img.pixels.size() == size_t(img.width) * size_t(img.height) * 3);
    unsigned sum = 0;
    for (uint8_t p : img.pixels) sum += p;  // every byte initialised (MSan would say; ASan checks the bounds)
    volatile unsigned sink = sum;
    (void)sink;

    const int h = img.height, w = img.width;
    const std::array<float, 3> mean{0.485f, 0.456f, 0.406f}, stdev{0.229f, 0.224f, 0.225f};
    // 1. The usual: resize to the network input, to_tensor, normalize.
    run_chain(img, {{PreprocessStep::resize(32, 32), PreprocessStep::to_tensor(), PreprocessStep::normalize(mean, stdev)}},
              true, ws);
    // 2. Crop (a view when it fits, zero padding where it does not), then resize, one axis
    //    up and one down.
    run_chain(img, {{PreprocessStep::center_crop(20, 28), PreprocessStep::resize(9, 41), PreprocessStep::to_tensor()}}, false, ws);
    // 3. Sizes that follow the image: upscale the height, keep the width when it is small
    //    (one resampling pass only), then a crop that pads one axis and crops the other.
    const int rh = std::min(2 * h + 1, 97), rw = w;
    run_chain(img,
              {{PreprocessStep::resize(rh, std::min(rw, 97)), PreprocessStep::center_crop(rh + 3, std::max(1, std::min(rw, 97) - 1)),
                PreprocessStep::to_tensor(), PreprocessStep::normalize(mean, stdev)}},
              true, ws);
    // 4. to_tensor alone: the output has the image's size (skipped above 1 megapixel).
    run_chain(img, {{PreprocessStep::to_tensor()}}, false, ws);
    // 5. torchvision's eval transform: Resize(N) keeps the aspect ratio, then CenterCrop.
    run_chain(img, {{PreprocessStep::resize_shorter(24), PreprocessStep::center_crop(20, 20), PreprocessStep::to_tensor()}},
              false, ws, true);
    // 6. Resize(N, max_size=M) alone: the output size follows the image (extreme aspect
    //    ratios are refused with an ImageError when a side would be 0).
    run_chain(img, {{PreprocessStep::resize_shorter(16, 40), PreprocessStep::to_tensor(), PreprocessStep::normalize(mean, stdev)}},
              true, ws, true);
    return 0;
}
