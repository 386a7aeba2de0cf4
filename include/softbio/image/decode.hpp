// softbio/image/decode.hpp — read an image file into 8-bit RGB pixels, as PIL would.
//
//     softbio::RgbImage img = softbio::load_rgb_image("face.jpg");   // throws ImageError
//     // img.pixels: img.height rows of img.width pixels of 3 bytes R, G, B (HWC, row-major)
//
// The reference pipeline this engine reproduces is PyTorch's:
//     PIL.Image.open(path).convert("RGB")  ->  torchvision transforms
// so "correct" here means "the bytes PIL 9.4 gives after convert('RGB')".
//
// FORMATS. JPEG (baseline and progressive), PNG (1/2/4/8/16-bit, palette, interlaced),
// BMP (uncompressed 1/4/8/16/24/32-bit, bit fields), GIF (first frame only) and TGA
// (uncompressed and RLE). The format is recognised from the first bytes, never from the
// file name. Anything else — a WebP, a TIFF, a text file named .jpg — is refused with an
// ImageError that says what was expected and what was found. The header is read and the
// pixels are decoded by stb_image (see stb_image_private.hpp for how it is compiled into a
// header-only library).
//
// CHANNELS -> RGB, as PIL's convert("RGB"):
//   gray           R = G = B = gray
//   gray + alpha   R = G = B = gray, alpha dropped (not composited on any background)
//   RGBA           alpha dropped
//   palette        the palette colour of each index (a transparent index keeps its colour)
//   16-bit RGB(A), 16-bit gray+alpha   the high byte of every sample (v >> 8)
//   16-bit gray    min(v, 255): PIL opens it as a 32-bit integer image ("I") and
//                  convert("RGB") clips. A 16-bit gray photo therefore comes out almost
//                  white — that is what PIL does and so what the models were fed; we
//                  match it rather than "fix" it.
//   CMYK JPEG      stb's conversion (R = C*K/255 on Adobe-inverted samples), the same
//                  formula as PIL's up to rounding (PIL-written CMYK test file: within 1 level).
//
// EXACTNESS against PIL 9.4 (tests/python/test_preprocess_parity.py checks it):
//   PNG, BMP, TGA, GIF: bit-exact (lossless formats; the channel rules above, and the two
//     16-bit BMP layouts rescaled the way PIL does: v * 255 / 31 and v * 255 / 63).
//   JPEG: NOT bit-exact. PIL uses libjpeg(-turbo) (islow IDCT, its own YCbCr->RGB tables);
//     stb has its own IDCT, chroma upsampling and colour conversion. Measured on the test
//     images: at most 1-3 levels (of 255), mean under 0.1, for 4:4:4, 4:2:0, gray,
//     progressive and odd sizes; the last column of an odd-width 4:2:2 image differs by up
//     to ~20 levels (stb's horizontal chroma upsampler treats the right edge differently).
//   PNG without its IEND chunk: refused as truncated, although PIL opens it.
//   JPEG without Huffman tables 0/1 (no DHT, as in motion-JPEG frames): libjpeg and so PIL
//     use the standard tables of the JPEG spec (Annex K.3); stb has none, so softbio
//     inserts a DHT segment with those tables right after SOI before stb sees the file
//     (a DHT the file itself has still replaces them, as in libjpeg). See
//     kStandardHuffmanTables.
//   GIF: the first frame as PIL 9.4 shows it: transparent pixels keep their palette
//     colour; pixels outside the first frame's rectangle take the colour of the
//     transparent index (index 0 when there is none), not the "background" index.
//   Orientation: like PIL.Image.open (and torchvision), the EXIF orientation tag is ignored.
//     A TGA whose descriptor says right-to-left (bit 4) is mirrored, as PIL does.
//   Known TGA differences (no test image of PIL's has them): a colour map whose first
//     index is not 0, a pixel index past the colour map, a 15-bit colour map; and softbio
//     decodes what PIL 9.4 refuses to: 15-bit true colour, 16-bit indices, 32-bit colour maps.
//
// SAFETY. load_rgb_image reads only a regular file (or a link to one): a named pipe, a
// device (/dev/zero), a directory or a socket is refused before it is read, without
// blocking (see read_image_file). The bytes are refused, not decoded with garbage, when
//   * it is empty, or larger than kMaxImageFileBytes;
//   * its header declares more than kMaxImageSide pixels on a side or more than
//     kMaxImagePixels pixels in total (size from stbi_info_from_memory, before stb
//     allocates the pixels; our stb copy refuses a larger side itself, and the message
//     then gives the size the header declares);
//   * stb_image cannot read its header (corrupt, or e.g. a 12-bit JPEG);
//   * a JPEG Huffman table declares more than 256 codes (stb_image 2.27 would write past
//     its table, even in stbi_info; found by fuzzing the decoder under AddressSanitizer);
//   * it is truncated. stb_image pads a short input with zeros and "succeeds", so every
//     format's structure is walked first: JPEG markers up to the EOI marker (FF D9), PNG
//     chunks up to IEND, GIF blocks to the end of the first image's data, BMP and TGA up to
//     the last pixel byte (RLE packets walked one by one). Bytes after the end are allowed
//     (PIL allows them too);
//   * it is damaged in a way PIL (libjpeg for JPEG) refuses; found by mutating valid files
//     and keeping what PIL refused and stb_image decoded as if whole (a few, marked *, stb
//     refused too, with a message that did not say why):
//       PNG   a chunk's CRC-32 does not match (every chunk is checked; PIL checks those
//             before the first IDAT, so softbio also refuses a file whose IDAT or IEND CRC
//             alone is damaged, which PIL decodes);
//       JPEG  a scan uses an undefined quantization or Huffman table, a Huffman table whose
//             code lengths are impossible or a DC table with a symbol above 15, names a
//             component the frame lacks (or one twice), has over 10 blocks per MCU, or
//             invalid progressive parameters; a DQT with an id over 3 or running past its
//             segment*; sampling factors outside 1..4* (see walk_jpeg);
//       TGA   a repeated RLE run that crosses the end of a row, 8-bit true colour, an
//             8-bit colour map of more than 256 entries (see walk_tga).
// Every message starts with the file name (or the name given to decode_rgb_image) and
// says what was expected and what was found.
#pragma once

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "softbio/core/error.hpp"
#include "softbio/core/file_type.hpp"

namespace softbio {

/// An 8-bit RGB image: `height` rows of `width` pixels, 3 bytes (R, G, B) per pixel.
struct RgbImage {
    int width = 0, height = 0;
    std::vector<uint8_t> pixels;  // height * width * 3 bytes, row-major HWC

    /// Pointer to pixel (y, x): 3 bytes R, G, B.
    const uint8_t* at(int y, int x) const { return pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
    uint8_t* at(int y, int x) { return pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
};

/// Largest width or height, in pixels, of a decoded image (as its file's header declares
/// it); our stb copy's STBI_MAX_DIMENSIONS. Not the limit on the sizes a preprocessing step
/// may ask for: that is kMaxPreprocessSide.
inline constexpr int kMaxImageSide = 32768;
/// Largest accepted width * height of a decoded image (100 megapixels: 300 MB of RGB).
inline constexpr int64_t kMaxImagePixels = 100'000'000;
/// Largest accepted file (1 GiB).
inline constexpr size_t kMaxImageFileBytes = size_t(1) << 30;

}  // namespace softbio

#include "softbio/image/stb_image_private.hpp"  // after kMaxImageSide: STBI_MAX_DIMENSIONS

namespace softbio {

/// The container formats softbio decodes.
enum class ImageFormat { Unknown, Jpeg, Png, Bmp, Gif, Tga };

inline const char* image_format_name(ImageFormat f) {
    switch (f) {
        case ImageFormat::Jpeg: return "JPEG";
        case ImageFormat::Png: return "PNG";
        case ImageFormat::Bmp: return "BMP";
        case ImageFormat::Gif: return "GIF";
        case ImageFormat::Tga: return "TGA";
        default: return "unknown";
    }
}

namespace detail::image {

[[noreturn]] inline void fail(const std::string& name, const std::string& what) { throw ImageError(name + ": " + what); }

inline uint32_t be16(const uint8_t* p) { return uint32_t(p[0]) << 8 | p[1]; }
inline uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline uint32_t le16(const uint8_t* p) { return uint32_t(p[1]) << 8 | p[0]; }
inline uint32_t le32(const uint8_t* p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }

inline bool starts_with(const uint8_t* b, size_t n, const char* sig, size_t len) {
    return n >= len && std::memcmp(b, sig, len) == 0;
}

/// The first bytes of a file, for messages: `48 65 6c 6c ("Hell")`.
inline std::string describe_bytes(const uint8_t* b, size_t n) {
    const size_t k = std::min<size_t>(n, 8);
    std::string hex, txt;
    char buf[4];
    for (size_t i = 0; i < k; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        if (i) hex += ' ';
        hex += buf;
        txt += (b[i] >= 32 && b[i] < 127) ? char(b[i]) : '.';
    }
    return "first bytes " + hex + " (\"" + txt + "\")";
}

/// The TGA header has no signature: it is recognised by values that make sense.
inline bool plausible_tga(const uint8_t* b, size_t n) {
    if (n < 18) return false;
    const int cmap_type = b[1], type = b[2], cmap_bits = b[7], bpp = b[16];
    const uint32_t w = le16(b + 12), h = le16(b + 14);
    if (cmap_type > 1) return false;
    if (type != 1 && type != 2 && type != 3 && type != 9 && type != 10 && type != 11) return false;
    const bool mapped = type == 1 || type == 9;
    if (mapped != (cmap_type == 1)) return false;
    if (mapped && bpp != 8 && bpp != 16) return false;
    if (!mapped && bpp != 8 && bpp != 15 && bpp != 16 && bpp != 24 && bpp != 32) return false;
    if (cmap_type == 1 && cmap_bits != 15 && cmap_bits != 16 && cmap_bits != 24 && cmap_bits != 32) return false;
    if ((type == 3 || type == 11) && bpp != 8 && bpp != 16) return false;  // gray, gray + alpha
    return w > 0 && h > 0;
}

/// Recognise the format from the signature. Known but unsupported formats are named in
/// `other` so the message can say "found a WebP image".
inline ImageFormat sniff(const uint8_t* b, size_t n, std::string& other) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFormat::Jpeg;
    if (starts_with(b, n, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
    if (starts_with(b, n, "GIF87a", 6) || starts_with(b, n, "GIF89a", 6)) return ImageFormat::Gif;
    if (starts_with(b, n, "BM", 2) && n >= 18) return ImageFormat::Bmp;
    if (n >= 12 && std::memcmp(b, "RIFF", 4) == 0 && std::memcmp(b + 8, "WEBP", 4) == 0) other = "a WebP image";
    else if (starts_with(b, n, "II*\0", 4) || starts_with(b, n, "MM\0*", 4)) other = "a TIFF image";
    else if (starts_with(b, n, "8BPS", 4)) other = "a Photoshop (PSD) image";
    else if (starts_with(b, n, "#?RADIANCE", 10) || starts_with(b, n, "#?RGBE", 6)) other = "a Radiance HDR image";
    else if (n >= 12 && std::memcmp(b + 4, "ftyp", 4) == 0) other = "an ISO media file (HEIF/AVIF/MP4)";
    else if (starts_with(b, n, "\0\0\0\x0cjP  ", 8) || starts_with(b, n, "\xff\x4f\xff\x51", 4)) other = "a JPEG 2000 image";
    else if (starts_with(b, n, "\xff\x0a", 2) || starts_with(b, n, "\0\0\0\x0cJXL ", 8)) other = "a JPEG XL image";
    else if (starts_with(b, n, "\x76\x2f\x31\x01", 4)) other = "an OpenEXR image";
    else if (starts_with(b, n, "qoif", 4)) other = "a QOI image";
    else if (starts_with(b, n, "%PDF", 4)) other = "a PDF document";
    else if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' && (n == 2 || b[2] == '\n' || b[2] == ' ' || b[2] == '\r'))
        other = "a PNM (PBM/PGM/PPM/PAM) image";
    if (!other.empty()) return ImageFormat::Unknown;
    if (plausible_tga(b, n)) return ImageFormat::Tga;
    return ImageFormat::Unknown;
}

/// CRC-32 as PNG (and zlib, gzip) define it: polynomial 0xEDB88320 (reflected), initial
/// value and final XOR 0xFFFFFFFF. Table-driven, eight bytes per step ("slicing by 8":
/// table k gives the CRC of a byte followed by k zero bytes), about 2 GB/s; the tables
/// (8 KB) are built at compile time.
struct Crc32Tables {
    uint32_t t[8][256];
};
constexpr Crc32Tables make_crc32_tables() {
    Crc32Tables x{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        x.t[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
        for (uint32_t i = 0; i < 256; ++i) x.t[k][i] = (x.t[k - 1][i] >> 8) ^ x.t[0][x.t[k - 1][i] & 0xFFu];
    return x;
}
inline constexpr Crc32Tables kCrc32Tables = make_crc32_tables();

/// CRC-32 of n bytes; `crc` continues an earlier CRC (0 to start).
inline uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
    const auto& t = kCrc32Tables.t;
    uint32_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        const uint32_t lo = c ^ le32(p), hi = le32(p + 4);
        c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^ t[3][hi & 0xFFu] ^
            t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    }
    for (; n > 0; ++p, --n) c = t[0][(c ^ *p) & 0xFFu] ^ (c >> 8);
    return ~c;
}

/// A PNG chunk type for messages: "IDAT"; bytes that are not ASCII letters as \xNN.
inline std::string chunk_name(const uint8_t* t) {
    std::string s;
    char buf[8];
    for (int i = 0; i < 4; ++i) {
        if (std::isalpha(t[i]) && t[i] < 128) {
            s += char(t[i]);
        } else {
            std::snprintf(buf, sizeof buf, "\\x%02x", t[i]);
            s += buf;
        }
    }
    return s;
}

/// What the structure walk found. `truncated` distinguishes "ran out of bytes" from
/// "malformed". The image size is stb's (stbi_info_from_memory).
struct Walk {
    bool ok = false;
    bool truncated = false;
    std::string problem;
    bool whole_message = false;  // `problem` is the whole message after "name: " (no "corrupt PNG file: ")
    size_t jpeg_sof = 0;  // JPEG only: offset of the first frame header's length field (0: none)
    // GIF only: PIL's first frame starts as a canvas filled with the transparent index (or
    // index 0), and the frame's palette colours every index.
    int gif_transparent = -1;
    int64_t gif_left = 0, gif_top = 0, gif_w = 0, gif_h = 0;
    std::vector<uint8_t> gif_palette;  // RGB triples of the palette the first image uses
    // BMP only: 16-bit layouts rescaled after stb (bits of R, G, B; 0 = leave as is)
    int bmp_bits[3] = {0, 0, 0};
    // TGA only: the descriptor's "right to left" bit (0x10). PIL mirrors the rows; stb ignores it.
    bool tga_mirror = false;
    // JPEG only: a sequential scan uses Huffman table 0 or 1 before any DHT defines it;
    // libjpeg then takes the standard table (see kStandardHuffmanTables).
    bool jpeg_needs_standard_tables = false;
};

inline void cut(Walk& w, const std::string& what) {
    w.ok = false;
    w.truncated = true;
    w.problem = what;
}
inline void bad(Walk& w, const std::string& what) {
    w.ok = false;
    w.problem = what;
}

// JPEG: a sequence of marker segments. Every marker is FF xx. Segments other than SOI,
// EOI, RSTn and TEM carry a 2-byte big-endian length (including itself). After a start of
// scan (SOS) segment comes entropy-coded data, in which FF is followed by 00 (a stuffed
// FF) or by a restart marker D0..D7; any other FF xx ends the scan. The image is complete
// when the EOI marker FF D9 is reached. The frame header is a SOFn segment (C0..CF except
// C4 DHT, C8 JPG, CC DAC): precision, height, width, components.
//
// The tables and scan headers are also checked the way libjpeg (PIL's decoder) checks them
// when a scan starts; stb_image would decode on (an undefined table reads as zeros) and so
// give the pixels of a damaged file that PIL refuses:
//   * every quantization table a component uses is defined (DQT) before the component's
//     first scan;
//   * every Huffman table a scan uses is defined (DHT) — in a sequential file tables 0 and 1
//     may be missing (libjpeg then uses the standard tables of the JPEG spec, and so does
//     softbio: decode_rgb_image inserts them), in a progressive file none may — with code lengths that form a Huffman code (no more codes
//     of a length than fit, no code of all 1 bits, which stb lets pass), and a DC table's
//     symbols are at most 15;
//   * a scan names components of the frame header, each once; an interleaved scan has at
//     most 10 blocks per MCU; a progressive scan's Ss, Se, Ah, Al are a valid combination.
// A table that no scan uses is not checked (libjpeg does not look at it either).
// The standard Huffman tables of the JPEG spec (ITU T.81 Annex K.3, tables K.3-K.6), as
// one DHT segment: what libjpeg uses for a sequential scan whose table 0 or 1 no DHT
// defines (motion-JPEG frames leave them out). Each table: class/id byte (high nibble 0 =
// DC, 1 = AC), 16 counts of codes of length 1..16, then the symbols in code order.
inline constexpr uint8_t kStandardHuffmanTables[] = {
    0xFF, 0xC4, 0x01, 0xA2,  // DHT, segment length 418 = 2 + 4 * 17 + 12 + 162 + 12 + 162
    0x00,  // DC luminance (table 0): symbols 0..11
    0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    0x01,  // DC chrominance (table 1)
    0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    0x10,  // AC luminance (table 0): symbol = run of zeros (high nibble), size (low nibble)
    0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
    0x11,  // AC chrominance (table 1)
    0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
};
static_assert(sizeof kStandardHuffmanTables == 2 + 418, "DHT segment: marker + the length it declares");

struct JpegFrame {
    int marker = -1;  // SOF marker of a well-formed frame header (0xC0..0xCF); -1: none yet
    int count = 0;    // components
    uint8_t id[4] = {}, h[4] = {}, v[4] = {}, tq[4] = {};
    bool latched[4] = {};  // the component's quantization table was taken by a scan
};
enum : uint8_t { kHuffUndefined = 0, kHuffUsable, kHuffBadLengths, kHuffBadDcSymbol };

inline void walk_jpeg(const uint8_t* b, size_t n, Walk& w) {
    size_t p = 2;  // after SOI
    bool seen_scan = false;
    const char* scan_cut = "the compressed data ends in the middle of a scan (no FF D9 end marker)";
    JpegFrame fr;
    bool quant[4] = {false, false, false, false};  // DQT defined table 0..3
    uint8_t huff[2][4] = {};                        // [DC, AC][table]: kHuff*
    int scans = 0;
    while (true) {
        // Find the next marker; libjpeg skips stray bytes before a marker, so do we.
        while (p < n && b[p] != 0xFF) ++p;
        while (p < n && b[p] == 0xFF) ++p;  // fill bytes
        if (p >= n) return cut(w, seen_scan ? "the end of image marker (FF D9) is missing" : "the file ends before the image data");
        const uint8_t m = b[p++];
        if (m == 0xD9) {
            if (!seen_scan) return bad(w, "end of image marker (FF D9) before any image data");
            w.ok = true;
            return;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length
        if (p + 2 > n) return cut(w, "a marker segment is cut off");
        const size_t len = be16(b + p);
        if (len < 2) return bad(w, "a marker segment has length " + std::to_string(len));
        const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof && w.jpeg_sof == 0 && len >= 8 && p + 7 <= n) w.jpeg_sof = p;
        if (m == 0xC4) {
            // DHT: tables of (class/id, 16 code-length counts, symbols). stb_image 2.27 does
            // not check that the counts add up to at most 256 and then writes past its
            // table. stbi_info reads it in truncated files too (zeros past the end), so
            // the counts present are checked even when the segment is cut off.
            const size_t end = p + len, have = std::min(end, n);
            size_t q = p + 2;
            while (q < have) {
                if (q + 17 > end) return bad(w, "a Huffman table (DHT) is shorter than its header");
                if ((b[q] >> 4) > 1 || (b[q] & 15) > 3) return bad(w, "a Huffman table (DHT) has an invalid class or id");
                size_t symbols = 0;
                for (size_t i = q + 1; i < q + 17 && i < have; ++i) symbols += b[i];
                if (symbols > 256) return bad(w, "a Huffman table (DHT) declares " + std::to_string(symbols) + " codes (at most 256)");
                if (q + 17 + symbols <= have) {
                    // Canonical codes: `code` is one past the last code of length l; it must
                    // stay below 2^l (libjpeg's rule: a code of all 1 bits is not allowed).
                    uint32_t code = 0;
                    bool fits = true;
                    for (int l = 1; l <= 16; ++l) {
                        code += b[q + size_t(l)];
                        if (code >= (1u << l)) fits = false;
                        code <<= 1;
                    }
                    bool dc_symbols = true;
                    if ((b[q] >> 4) == 0)
                        for (size_t i = q + 17; i < q + 17 + symbols; ++i) dc_symbols = dc_symbols && b[i] <= 15;
                    huff[b[q] >> 4][b[q] & 15] = !fits ? kHuffBadLengths : !dc_symbols ? kHuffBadDcSymbol : kHuffUsable;
                }
                q += 17 + symbols;
            }
            if (q > end) return bad(w, "a Huffman table (DHT) runs past its segment");
        }
        if (p + len > n) return cut(w, "a marker segment is cut off");
        if (m == 0xDB) {
            // DQT: tables of (precision/id, 64 values of 1 or 2 bytes).
            size_t q = p + 2;
            while (q < p + len) {
                const int id = b[q] & 15;
                if (id > 3) return bad(w, "a quantization table (DQT) has id " + std::to_string(id) + " (at most 3)");
                const size_t size = (b[q] >> 4) ? 129 : 65;
                if (q + size > p + len) return bad(w, "a quantization table (DQT) runs past its segment");
                quant[id] = true;
                q += size;
            }
        }
        if (sof && fr.marker < 0 && len >= 8) {
            const int count = b[p + 7];
            bool good = count >= 1 && count <= 4 && len == size_t(8 + 3 * count);
            for (int i = 0; good && i < count; ++i) {
                const uint8_t* c = b + p + 8 + 3 * i;
                fr.id[i] = c[0], fr.h[i] = uint8_t(c[1] >> 4), fr.v[i] = uint8_t(c[1] & 15), fr.tq[i] = c[2];
                for (int j = 0; j < i; ++j) good = good && fr.id[j] != fr.id[i];
                if (good && (fr.h[i] < 1 || fr.h[i] > 4 || fr.v[i] < 1 || fr.v[i] > 4))
                    return bad(w, "the frame header gives component " + std::to_string(fr.id[i]) + " sampling factors " +
                                      std::to_string(fr.h[i]) + "x" + std::to_string(fr.v[i]) + " (each must be 1 to 4)");
            }
            if (good) fr.marker = m, fr.count = count;  // else: stb and libjpeg refuse it themselves
            else fr.marker = 0;                          // not checked further
        }
        if (m == 0xDA) {
            if (w.jpeg_sof == 0) return bad(w, "image data (SOS) before the frame header (SOF)");
            ++scans;
            const std::string scan = "scan " + std::to_string(scans);
            const int ns = len > 2 ? b[p + 2] : 0;  // components in the scan
            if (ns < 1 || ns > 4 || len != size_t(6 + 2 * ns))
                return bad(w, "the header of " + scan + " (SOS) has length " + std::to_string(len) + " for " +
                                  std::to_string(ns) + " components");
            if (fr.marker == 0xC0 || fr.marker == 0xC1 || fr.marker == 0xC2) {
                const bool progressive = fr.marker == 0xC2;
                const uint8_t* sel = b + p + 3;  // ns pairs (component id, DC table << 4 | AC table)
                const int ss = sel[2 * ns], se = sel[2 * ns + 1], ah = sel[2 * ns + 2] >> 4, al = sel[2 * ns + 2] & 15;
                int comp[4] = {0, 0, 0, 0}, blocks = 0;
                for (int i = 0; i < ns; ++i) {
                    int k = 0;
                    while (k < fr.count && fr.id[k] != sel[2 * i]) ++k;
                    if (k == fr.count)
                        return bad(w, scan + " names component " + std::to_string(sel[2 * i]) +
                                          ", which the frame header (SOF) does not declare");
                    for (int j = 0; j < i; ++j)
                        if (comp[j] == k) return bad(w, scan + " names component " + std::to_string(sel[2 * i]) + " twice");
                    comp[i] = k;
                    blocks += fr.h[k] * fr.v[k];
                }
                if (progressive && ((ss == 0 && se != 0) || (ss != 0 && (ss > se || se > 63 || ns != 1)) ||
                                    (ah != 0 && al != ah - 1) || al > 13))
                    return bad(w, scan + " has invalid progressive parameters (Ss=" + std::to_string(ss) + " Se=" +
                                      std::to_string(se) + " Ah=" + std::to_string(ah) + " Al=" + std::to_string(al) + ")");
                if (ns > 1 && blocks > 10)
                    return bad(w, scan + " interleaves " + std::to_string(ns) + " components in MCUs of " +
                                      std::to_string(blocks) + " blocks (the sampling factors allow at most 10)");
                for (int i = 0; i < ns; ++i) {
                    const int k = comp[i], t = fr.tq[k];
                    if (!fr.latched[k] && (t > 3 || !quant[t]))
                        return bad(w, scan + " needs quantization table " + std::to_string(t) + " for component " +
                                          std::to_string(fr.id[k]) + ", which no DQT segment defines");
                    fr.latched[k] = true;
                    // Tables the scan decodes with: sequential, DC and AC; progressive, DC in a
                    // first DC scan (a refinement uses none), AC in an AC scan.
                    const int dc = sel[2 * i + 1] >> 4, ac = sel[2 * i + 1] & 15;
                    const bool use_dc = !progressive || (ss == 0 && ah == 0), use_ac = !progressive || ss != 0;
                    for (int cls = 0; cls < 2; ++cls) {
                        if (!(cls == 0 ? use_dc : use_ac)) continue;
                        const int t2 = cls == 0 ? dc : ac;
                        const std::string what = scan + " uses " + (cls == 0 ? "DC" : "AC") + " Huffman table " + std::to_string(t2);
                        const uint8_t state = t2 <= 3 ? huff[cls][t2] : uint8_t(kHuffUndefined);
                        if (state == kHuffUndefined && (progressive || t2 > 1))
                            return bad(w, what + ", which no DHT segment defines");
                        if (state == kHuffUndefined) w.jpeg_needs_standard_tables = true;
                        if (state == kHuffBadLengths)
                            return bad(w, what + ", whose code lengths do not form a Huffman code (more codes of a length than fit)");
                        if (state == kHuffBadDcSymbol) return bad(w, what + ", which has a symbol above 15 (not a DC difference size)");
                    }
                }
            }
        }
        p += len;
        if (m != 0xDA) continue;
        // Entropy-coded data of a scan.
        seen_scan = true;
        while (true) {
            const void* ff = p < n ? std::memchr(b + p, 0xFF, n - p) : nullptr;
            if (!ff) return cut(w, scan_cut);
            p = size_t(static_cast<const uint8_t*>(ff) - b);
            if (p + 1 >= n) return cut(w, scan_cut);
            const uint8_t nx = b[p + 1];
            if (nx == 0x00 || (nx >= 0xD0 && nx <= 0xD7)) {
                p += 2;
            } else if (nx == 0xFF) {
                p += 1;
            } else {
                break;  // a marker: back to the segment loop (p points at FF)
            }
        }
    }
}

// PNG: 8-byte signature, then chunks: u32 length, 4-byte type, data, u32 CRC. IHDR first
// (stb checks it), IEND last. The CRC-32 of every chunk (of its type and data) is checked:
// stb checks none, so a damaged file would decode to damaged pixels. (PIL checks those
// before the first IDAT; libpng, by default, those of all critical chunks.)
inline void walk_png(const uint8_t* b, size_t n, Walk& w) {
    size_t p = 8;
    while (true) {
        if (p + 8 > n) return cut(w, "the file ends before the IEND chunk");
        const uint32_t len = be32(b + p);
        if (len > 0x7fffffffu) return bad(w, "chunk length " + std::to_string(len) + " is larger than 2^31 - 1");
        const std::string type = chunk_name(b + p + 4);
        if (uint64_t(p) + 12 + len > n) return cut(w, "the " + type + " chunk is cut off (the file ends before IEND)");
        if (crc32(b + p + 4, 4 + size_t(len)) != be32(b + p + 8 + len)) {
            w.whole_message = true;
            return bad(w, "PNG chunk " + type + " at byte " + std::to_string(p) + " is corrupt (CRC mismatch)");
        }
        p += 12 + size_t(len);
        if (type == "IEND") {
            w.ok = true;
            return;
        }
    }
}

// GIF: header, logical screen descriptor (+ global colour table), then blocks: 0x21
// extensions (label, then sub-blocks of 1..255 bytes ended by a 0 byte), 0x2C images
// (descriptor, optional local colour table, LZW code size, sub-blocks), 0x3B trailer.
// Only the first image is needed. The image size is the logical screen's.
// How many pixels a GIF image's LZW data decodes to, without decoding them: the codes
// are read (least significant bit first, across the sub-blocks) and only the length of
// each dictionary string is tracked. Codes: clear = 2^m, end = 2^m + 1, then the
// dictionary; a code one past the dictionary's end is the previous string plus its own
// first pixel (KwKwK); the code width grows from m + 1 bits when the dictionary reaches
// 2^width entries, up to 12 bits. Stops at the end code, at an invalid code (stb reports
// those itself), at the end of the data, or once `enough` pixels are reached.
// PIL refuses an image whose data ends, by its end code or its last sub-block, before its
// last pixel (stb leaves the rest blank); softbio does too.
struct GifLzwCount {
    uint64_t pixels = 0;
    bool invalid = false;  // a code stb refuses ("illegal code in raster"): stb reports it
};
inline GifLzwCount count_gif_lzw_pixels(const uint8_t* b, size_t p, size_t n, int min_code_size, uint64_t enough) {
    GifLzwCount r;
    if (min_code_size < 1 || min_code_size > 11) return r.invalid = true, r;  // stb refuses it
    const int clear = 1 << min_code_size, end = clear + 1;
    uint16_t length[4096];
    for (int i = 0; i < clear; ++i) length[i] = 1;
    int next = clear + 2, width = min_code_size + 1, prev = -1;
    uint32_t bits = 0;
    int nbits = 0;
    size_t block_left = 0;
    while (true) {
        while (nbits < width) {  // refill from the sub-blocks
            if (block_left == 0) {
                if (p >= n || b[p] == 0) return r;  // data over without an end code
                block_left = b[p++];
            }
            if (p >= n) return r;
            bits |= uint32_t(b[p++]) << nbits;
            nbits += 8;
            --block_left;
        }
        const int code = int(bits & ((1u << width) - 1));
        bits >>= width;
        nbits -= width;
        if (code == clear) {
            next = clear + 2, width = min_code_size + 1, prev = -1;
            continue;
        }
        if (code == end) return r;
        uint64_t len;
        if (prev < 0) {
            if (code >= clear) return r.invalid = true, r;
            len = 1;
        } else if (code < next) {
            len = length[code];
            if (next < 4096) length[next++] = uint16_t(std::min<int>(length[prev] + 1, 4096));
        } else if (code == next && next < 4096) {
            len = uint64_t(length[prev]) + 1;
            length[next++] = uint16_t(std::min<uint64_t>(len, 4096));
        } else {
            return r.invalid = true, r;
        }
        r.pixels += len;
        if (r.pixels >= enough) return r;
        prev = code;
        if (next == (1 << width) && width < 12) ++width;
    }
}

inline void walk_gif(const uint8_t* b, size_t n, Walk& w) {
    if (n < 13) return cut(w, "the logical screen descriptor is cut off");
    const int flags = b[10];
    size_t p = 13;
    std::vector<uint8_t> global;
    if (flags & 0x80) {
        const size_t sz = size_t(3) << ((flags & 7) + 1);
        if (p + sz > n) return cut(w, "the global colour table is cut off");
        global.assign(b + p, b + p + sz);
        p += sz;
    }
    auto skip_sub_blocks = [&](size_t& q) -> bool {
        while (true) {
            if (q >= n) return false;
            const size_t sz = b[q++];
            if (sz == 0) return true;
            if (q + sz > n) return false;
            q += sz;
        }
    };
    int transparent = -1;
    while (true) {
        if (p >= n) return cut(w, "the file ends before the first image");
        const uint8_t block = b[p++];
        if (block == 0x3B) return bad(w, "the file has no image (trailer before the first image)");
        if (block == 0x21) {
            if (p >= n) return cut(w, "an extension block is cut off");
            const uint8_t label = b[p++];
            if (label == 0xF9 && p + 5 <= n && b[p] >= 4) transparent = (b[p + 1] & 1) ? b[p + 4] : -1;  // graphic control
            if (!skip_sub_blocks(p)) return cut(w, "an extension block is cut off");
            continue;
        }
        if (block != 0x2C) return bad(w, "unexpected block type " + std::to_string(block) + " (expected 0x21, 0x2C or 0x3B)");
        if (p + 9 > n) return cut(w, "the image descriptor is cut off");
        w.gif_left = le16(b + p);
        w.gif_top = le16(b + p + 2);
        w.gif_w = le16(b + p + 4);
        w.gif_h = le16(b + p + 6);
        const int iflags = b[p + 8];
        p += 9;
        if (iflags & 0x80) {
            const size_t sz = size_t(3) << ((iflags & 7) + 1);
            if (p + sz > n) return cut(w, "the local colour table is cut off");
            w.gif_palette.assign(b + p, b + p + sz);
            p += sz;
        } else {
            w.gif_palette = global;
        }
        if (p >= n) return cut(w, "the image data is cut off");
        const int min_code_size = b[p++];
        const size_t data = p;
        if (!skip_sub_blocks(p)) return cut(w, "the first image's compressed data is cut off");
        // PIL refuses an image whose LZW data ends before its last pixel; stb would leave
        // the rest blank.
        const uint64_t want = uint64_t(w.gif_w) * uint64_t(w.gif_h);
        const GifLzwCount lzw = count_gif_lzw_pixels(b, data, p, min_code_size, want);
        if (!lzw.invalid && lzw.pixels < want)
            return cut(w, "the first image's LZW data ends after " + std::to_string(lzw.pixels) + " of its " +
                              std::to_string(w.gif_w) + "x" + std::to_string(w.gif_h) + " pixels");
        w.gif_transparent = transparent;
        w.ok = true;
        return;
    }
}

// BMP: 14-byte file header (offset of the pixels at byte 10), then an info header
// (12 bytes for OS/2 v1, 40+ otherwise; a negative height means top-down rows).
// Uncompressed rows are padded to 4 bytes.
inline void walk_bmp(const uint8_t* b, size_t n, Walk& w) {
    if (n < 26) return cut(w, "the BMP header is cut off");
    const uint32_t offset = le32(b + 10), hsize = le32(b + 14);
    int64_t width, height;
    int bpp;
    uint32_t compression = 0;
    if (hsize == 12) {
        width = int64_t(le16(b + 18));
        height = int64_t(le16(b + 20));  // unsigned, as stb and PIL read it
        bpp = int(le16(b + 24));
    } else {
        // The info header sizes PIL 9.4 reads (stb also reads 56, which PIL refuses).
        if (hsize != 40 && hsize != 64 && hsize != 108 && hsize != 124)
            return bad(w, "unknown BMP info header size " + std::to_string(hsize) + " (expected 12, 40, 64, 108 or 124)");
        if (n < 14 + 40) return cut(w, "the BMP info header is cut off");
        width = int64_t(int32_t(le32(b + 18)));
        height = int64_t(int32_t(le32(b + 22)));
        bpp = int(le16(b + 28));
        compression = le32(b + 30);
    }
    const int64_t rows = height < 0 ? -height : height;
    if (compression == 1 || compression == 2)
        return bad(w, "run-length encoded BMP (compression " + std::to_string(compression) + ") is not supported; expected an uncompressed BMP");
    if (compression != 0 && compression != 3 && compression != 6)
        return bad(w, "BMP compression " + std::to_string(compression) + " is not supported; expected 0 (none) or 3 (bit fields)");
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return bad(w, "BMP with " + std::to_string(bpp) + " bits per pixel; expected 1, 4, 8, 16, 24 or 32");
    if (width <= 0 || rows == 0) return bad(w, "BMP size " + std::to_string(width) + "x" + std::to_string(height));
    const uint64_t stride = (uint64_t(width) * uint64_t(bpp) + 31) / 32 * 4;
    const uint64_t end = uint64_t(offset) + stride * uint64_t(rows);
    if (end > n)
        return cut(w, "the pixel data is cut off: " + std::to_string(width) + "x" + std::to_string(rows) + " at " +
                          std::to_string(bpp) + " bits per pixel needs " + std::to_string(end) + " bytes, the file has " +
                          std::to_string(n));
    if (bpp <= 8) {
        // The palette, as PIL 9.4 reads it: clrUsed entries of 4 bytes right after the info
        // header (1 << bpp when clrUsed is 0; 3-byte entries in an OS/2 header). PIL refuses
        // more than 65536 colours, and a palette of which more than 256 entries are present
        // in the file (its palette object takes at most 256); a palette the end of the file
        // cuts short is read as far as it goes. stb sizes the palette from the pixel data
        // offset instead, and would decode what PIL refuses.
        const uint64_t colours = hsize == 12 || le32(b + 46) == 0 ? uint64_t(1) << bpp : le32(b + 46);
        if (colours > 65536)
            return bad(w, "the header declares a palette of " + std::to_string(colours) + " colours (at most 65536)");
        const uint64_t entry = hsize == 12 ? 3 : 4, start = 14 + uint64_t(hsize);
        const uint64_t present = std::min(colours * entry, n > start ? uint64_t(n) - start : 0) / entry;
        if (present > 256)
            return bad(w, "the header declares a palette of " + std::to_string(colours) + " colours, " +
                              std::to_string(present) + " of them in the file; pixel indices address at most 256");
    }
    if (bpp == 16) {
        uint32_t rm = 0x7C00, gm = 0x03E0, bm = 0x001F;
        if (compression == 3 || compression == 6) {
            // Masks follow a 40-byte header, or are part of a larger (v2+) header: byte 54 either way.
            if (n < 14 + 40 + 12) return cut(w, "the BMP bit masks are cut off");
            rm = le32(b + 54), gm = le32(b + 58), bm = le32(b + 62);
        }
        if (rm == 0x7C00 && gm == 0x03E0 && bm == 0x001F) w.bmp_bits[0] = w.bmp_bits[1] = w.bmp_bits[2] = 5;
        else if (rm == 0xF800 && gm == 0x07E0 && bm == 0x001F) w.bmp_bits[0] = 5, w.bmp_bits[1] = 6, w.bmp_bits[2] = 5;
    }
    w.ok = true;
}

// TGA: 18-byte header, image ID, colour map, then pixels: raw, or RLE packets (a header
// byte: bit 7 set = one pixel repeated (low 7 bits + 1) times, clear = that many raw
// pixels). A TGA 2.0 footer may follow; it is not needed.
// Refused as PIL refuses them (stb would decode them): a repeated run that crosses the end
// of a row (the TGA 2.0 spec forbids it; in practice the file is damaged), a true-colour
// image of 8 bits per pixel, an 8-bit colour-mapped image whose colour map (first index +
// length) has more than 256 entries. The descriptor's right-to-left bit is recorded: PIL
// mirrors such an image, stb does not.
inline void walk_tga(const uint8_t* b, size_t n, Walk& w) {
    const int id_len = b[0], cmap_type = b[1], type = b[2];
    const uint32_t cmap_first = le16(b + 3), cmap_len = le16(b + 5);
    const int cmap_bits = b[7];
    const uint32_t width = le16(b + 12), height = le16(b + 14);
    const int bpp = b[16];
    w.tga_mirror = (b[17] & 0x10) != 0;
    if ((type == 2 || type == 10) && bpp == 8)
        return bad(w, "a true-colour image (type " + std::to_string(type) + ") cannot have 8 bits per pixel");
    if ((type == 1 || type == 9) && bpp == 8 && (cmap_bits == 16 || cmap_bits == 24 || cmap_bits == 32) &&
        cmap_first + cmap_len > 256)
        return bad(w, "the colour map has " + std::to_string(cmap_first + cmap_len) + " entries (first index " +
                          std::to_string(cmap_first) + ", " + std::to_string(cmap_len) +
                          " colours); 8-bit pixel indices address at most 256");
    size_t p = 18 + size_t(id_len);
    if (cmap_type == 1) p += size_t(cmap_len) * size_t((cmap_bits + 7) / 8);
    if (p > n) return cut(w, "the TGA header or colour map is cut off");
    const uint64_t px = uint64_t((bpp + 7) / 8);
    const uint64_t count = uint64_t(width) * uint64_t(height);
    if (type < 9) {
        if (p + count * px > n)
            return cut(w, "the pixel data is cut off: " + std::to_string(width) + "x" + std::to_string(height) + " at " +
                              std::to_string(bpp) + " bits per pixel needs " + std::to_string(p + count * px) +
                              " bytes, the file has " + std::to_string(n));
    } else {
        uint64_t done = 0, x = 0;  // x: pixels of the current row already decoded
        while (done < count) {
            if (p >= n) return cut(w, "the run-length encoded pixel data is cut off");
            const size_t at = p;
            const uint8_t h = b[p++];
            const uint64_t c = uint64_t(h & 0x7f) + 1;
            const uint64_t bytes = (h & 0x80) ? px : c * px;
            if (p + bytes > n) return cut(w, "the run-length encoded pixel data is cut off");
            if ((h & 0x80) && x + c > width)
                return bad(w, "the run-length packet at byte " + std::to_string(at) + " repeats a pixel " + std::to_string(c) +
                                  " times, past the end of its row (" + std::to_string(width - x) +
                                  (width - x == 1 ? " pixel" : " pixels") + " left in the row)");
            p += size_t(bytes);
            done += c;
            x = (x + c) % width;
        }
    }
    w.ok = true;
}

inline Walk walk(ImageFormat f, const uint8_t* b, size_t n) {
    Walk w;
    switch (f) {
        case ImageFormat::Jpeg: walk_jpeg(b, n, w); break;
        case ImageFormat::Png: walk_png(b, n, w); break;
        case ImageFormat::Gif: walk_gif(b, n, w); break;
        case ImageFormat::Bmp: walk_bmp(b, n, w); break;
        case ImageFormat::Tga: walk_tga(b, n, w); break;
        default: bad(w, "unknown format");
    }
    return w;
}

/// The size a JPEG, PNG or GIF header declares, for the message when stb refuses the header
/// (stbi_info_from_memory then reports neither the size nor why). False when not found.
inline bool declared_size(ImageFormat f, const uint8_t* b, size_t n, const Walk& wk, int64_t& w, int64_t& h) {
    if (f == ImageFormat::Jpeg && wk.jpeg_sof) h = be16(b + wk.jpeg_sof + 3), w = be16(b + wk.jpeg_sof + 5);
    else if (f == ImageFormat::Png && n >= 24 && std::memcmp(b + 12, "IHDR", 4) == 0) w = be32(b + 16), h = be32(b + 20);
    else if (f == ImageFormat::Gif && n >= 10) w = le16(b + 6), h = le16(b + 8);
    else return false;
    return true;
}

inline std::string stb_reason() {
    const char* r = stbi_failure_reason();
    return r ? std::string(r) : std::string("unknown reason");
}

/// Frees an stb buffer on every path.
struct StbBuffer {
    void* p = nullptr;
    ~StbBuffer() {
        if (p) stbi_image_free(p);
    }
};

inline std::string ext_lower(const std::string& name) {
    const size_t dot = name.find_last_of('.');
    const size_t slash = name.find_last_of("/\\");
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string e = name.substr(dot + 1);
    for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
    return e;
}

/// "The name says JPEG" hint for messages when the extension disagrees with the bytes.
inline std::string name_hint(const std::string& name) {
    const std::string e = ext_lower(name);
    const char* said = e == "jpg" || e == "jpeg" || e == "jpe" || e == "jfif" ? "JPEG"
                       : e == "png"                                          ? "PNG"
                       : e == "bmp" || e == "dib"                            ? "BMP"
                       : e == "gif"                                          ? "GIF"
                       : e == "tga" || e == "tpic"                           ? "TGA"
                                                                             : nullptr;
    if (!said) return "";
    return " (the name ends in ." + e + " but the data is not " + said + ")";
}

}  // namespace detail::image

/// Decode an image held in memory into `out` (its pixel buffer is reused when large
/// enough). `name` is used in error messages. Throws ImageError.
inline void decode_rgb_image(const uint8_t* bytes, size_t n, const std::string& name, RgbImage& out) {
    using namespace detail::image;
    if (n == 0 || bytes == nullptr) fail(name, "empty file (0 bytes); expected a JPEG, PNG, BMP, GIF or TGA image");
    if (n > kMaxImageFileBytes)
        fail(name, "file is " + std::to_string(n) + " bytes; softbio reads image files of at most " +
                       std::to_string(kMaxImageFileBytes) + " bytes");
    std::string other;
    const ImageFormat fmt = sniff(bytes, n, other);
    if (fmt == ImageFormat::Unknown) {
        if (!other.empty()) fail(name, "is " + other + "; softbio reads JPEG, PNG, BMP, GIF and TGA");
        fail(name, "not a supported image: expected JPEG, PNG, BMP, GIF or TGA, found " + describe_bytes(bytes, n) +
                       (n < 18 ? " and only " + std::to_string(n) + " bytes" : "") + name_hint(name));
    }
    const std::string fname = image_format_name(fmt);

    // Walk the structure first (stb must not see a bad Huffman table), then the size from
    // the header, reported before truncation: an absurd size even if the rest is missing.
    const Walk wk = walk(fmt, bytes, n);
    if (!wk.ok && !wk.truncated) fail(name, wk.whole_message ? wk.problem : "corrupt " + fname + " file: " + wk.problem);
    const uint8_t* const file = bytes;  // offsets in `wk` refer to the file as given
    const size_t file_n = n;
    std::vector<uint8_t> with_tables;  // a JPEG relying on the standard Huffman tables gets them after SOI
    if (wk.ok && wk.jpeg_needs_standard_tables) {
        with_tables.reserve(n + sizeof kStandardHuffmanTables);
        with_tables.insert(with_tables.end(), bytes, bytes + 2);
        with_tables.insert(with_tables.end(), std::begin(kStandardHuffmanTables), std::end(kStandardHuffmanTables));
        with_tables.insert(with_tables.end(), bytes + 2, bytes + n);
        bytes = with_tables.data();
        n = with_tables.size();
    }
    const int len = int(n);  // n <= kMaxImageFileBytes + 420 < INT_MAX
    int iw = 0, ih = 0, channels = 0;
    const bool stb_reads_header = stbi_info_from_memory(bytes, len, &iw, &ih, &channels) != 0;
    int64_t w64 = iw, h64 = ih < 0 ? -int64_t(ih) : ih;  // stb gives a top-down BMP a negative height
    const bool sized = stb_reads_header || declared_size(fmt, file, file_n, wk, w64, h64);
    if (w64 > kMaxImageSide || h64 > kMaxImageSide || w64 * h64 > kMaxImagePixels)
        fail(name, fname + " image is " + std::to_string(w64) + "x" + std::to_string(h64) +
                       " pixels; softbio accepts at most " + std::to_string(kMaxImageSide) + " pixels per side and " +
                       std::to_string(kMaxImagePixels / 1000000) + " megapixels in total");
    if (wk.truncated) fail(name, "truncated " + fname + " file: " + wk.problem);
    if (sized && (w64 <= 0 || h64 <= 0))
        fail(name, fname + " header declares an empty image (" + std::to_string(w64) + "x" + std::to_string(h64) + ")");
    if (!stb_reads_header)
        fail(name, "cannot read the " + fname + " header: stb_image refuses it (corrupt, or a kind of " + fname +
                       " it does not decode)");
    const int w = int(w64), h = int(h64);
    auto check_size = [&](int dw, int dh) {
        if (dw != w || dh != h)
            fail(name, "the decoder returned " + std::to_string(dw) + "x" + std::to_string(dh) + " pixels, the header says " +
                           std::to_string(w) + "x" + std::to_string(h));
    };

    const size_t count = size_t(w) * size_t(h);
    int dw = 0, dh = 0, dc = 0;
    StbBuffer buf;
    if (fmt == ImageFormat::Png && channels == 1 && stbi_is_16_bit_from_memory(bytes, len)) {
        // 16-bit gray: PIL mode "I", convert("RGB") clips to 255.
        buf.p = stbi_load_16_from_memory(bytes, len, &dw, &dh, &dc, 1);
        if (!buf.p) fail(name, "cannot decode " + fname + " (stb_image: " + stb_reason() + ")");
        check_size(dw, dh);
        const uint16_t* src = static_cast<const uint16_t*>(buf.p);
        out.pixels.resize(count * 3);
        for (size_t i = 0; i < count; ++i) {
            const uint8_t v = uint8_t(std::min<unsigned>(src[i], 255u));
            out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = v;
        }
    } else {
        const int want = fmt == ImageFormat::Gif ? 4 : 3;  // GIF: alpha tells which pixels stb left blank
        buf.p = stbi_load_from_memory(bytes, len, &dw, &dh, &dc, want);
        if (!buf.p) fail(name, "cannot decode " + fname + " (stb_image: " + stb_reason() + ")");
        check_size(dw, dh);
        const uint8_t* src = static_cast<const uint8_t*>(buf.p);
        out.pixels.resize(count * 3);
        if (want == 3) {
            std::memcpy(out.pixels.data(), src, count * 3);
        } else {
            // PIL's first frame is a palette image: a canvas of the transparent index (index 0
            // without transparency) with the frame's indices drawn on it; convert("RGB")
            // shows every index in its palette colour, the transparent one included. stb
            // leaves transparent pixels as (0,0,0,0) and paints the area outside the frame
            // with its own idea of the background, so both are recoloured here.
            const std::vector<uint8_t>& pal = wk.gif_palette;
            uint8_t fillc[3] = {0, 0, 0}, transc[3] = {0, 0, 0};
            auto colour = [&](int idx, uint8_t* dst) {
                if (idx >= 0 && size_t(idx) * 3 + 2 < pal.size())
                    dst[0] = pal[size_t(idx) * 3], dst[1] = pal[size_t(idx) * 3 + 1], dst[2] = pal[size_t(idx) * 3 + 2];
            };
            colour(wk.gif_transparent >= 0 ? wk.gif_transparent : 0, fillc);
            colour(wk.gif_transparent, transc);
            for (int y = 0; y < h; ++y) {
                for (int x = 0; x < w; ++x) {
                    const size_t i = size_t(y) * size_t(w) + size_t(x);
                    uint8_t* d = out.pixels.data() + 3 * i;
                    const uint8_t* s = src + 4 * i;
                    const bool inside = x >= wk.gif_left && x < wk.gif_left + wk.gif_w && y >= wk.gif_top && y < wk.gif_top + wk.gif_h;
                    const uint8_t* c = !inside ? fillc : s[3] == 0 ? transc : s;
                    d[0] = c[0], d[1] = c[1], d[2] = c[2];
                }
            }
        }
        if (fmt == ImageFormat::Tga && wk.tga_mirror) {
            // Right-to-left pixel order (descriptor bit 4): PIL mirrors each row; stb does not.
            for (int y = 0; y < h; ++y) {
                uint8_t* row = out.pixels.data() + size_t(y) * size_t(w) * 3;
                for (int l = 0, r = w - 1; l < r; ++l, --r) std::swap_ranges(row + 3 * l, row + 3 * l + 3, row + 3 * r);
            }
        }
        if (fmt == ImageFormat::Bmp && wk.bmp_bits[0]) {
            // stb widens an n-bit field by bit replication; PIL computes v * 255 / (2^n - 1).
            uint8_t lut[3][256];
            for (int c = 0; c < 3; ++c) {
                const int bits = wk.bmp_bits[c], maxv = (1 << bits) - 1;
                for (int v = 0; v < 256; ++v) lut[c][v] = uint8_t((v >> (8 - bits)) * 255 / maxv);
            }
            for (size_t i = 0; i < count; ++i)
                for (int c = 0; c < 3; ++c) out.pixels[3 * i + size_t(c)] = lut[c][out.pixels[3 * i + size_t(c)]];
        }
    }
    out.width = w;
    out.height = h;
}

/// Decode an image held in memory. `name` is used in error messages. Throws ImageError.
inline RgbImage decode_rgb_image(const uint8_t* bytes, size_t n, const std::string& name) {
    RgbImage img;
    decode_rgb_image(bytes, n, name, img);
    return img;
}

namespace detail::image {


[[noreturn]] inline void fail_open(const std::string& path, int err) {
    if (err == ELOOP) fail(path, std::string("cannot open: a symbolic link loop (ELOOP: ") + std::strerror(err) + ")");
    fail(path, std::string("cannot open: ") + std::strerror(err));
}

}  // namespace detail::image

/// Read all bytes of a file into `bytes` (reused). Throws ImageError naming the file.
///
/// Only a regular file (or a symbolic link to one) is read. A named pipe would block —
/// open() waits for a writer, read() for data — and a device such as /dev/zero never ends,
/// so both are refused before anything is read: stat() first (nothing else is opened),
/// then open with O_NONBLOCK (a pipe put in the file's place meanwhile cannot block the
/// open either) and fstat() on what was opened.
inline void read_image_file(const std::string& path, std::vector<uint8_t>& bytes) {
    using detail::image::fail;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) detail::image::fail_open(path, errno);
    if (!S_ISREG(st.st_mode)) fail(path, std::string("is ") + file_type_name(st.st_mode) + ", not a regular file");
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) detail::image::fail_open(path, errno);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::fstat(fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(path, std::string("is ") + file_type_name(st.st_mode) + ", not a regular file");
    if (uint64_t(st.st_size) > kMaxImageFileBytes)
        fail(path, "file is " + std::to_string(st.st_size) + " bytes; softbio reads image files of at most " +
                       std::to_string(kMaxImageFileBytes) + " bytes");
    const int flags = ::fcntl(fd, F_GETFL);  // a regular file: reads may block again (no EAGAIN on odd file systems)
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    auto read_some = [&](uint8_t* dst, size_t cap) -> size_t {  // 0: end of file
        while (true) {
            const ssize_t r = ::read(fd, dst, cap);
            if (r >= 0) return size_t(r);
            if (errno != EINTR) fail(path, std::string("read error: ") + std::strerror(errno));
        }
    };
    const size_t size = size_t(st.st_size);
    bytes.resize(size);
    size_t got = 0;
    while (got < size) {
        const size_t r = read_some(bytes.data() + got, size - got);
        if (r == 0) break;  // shorter than fstat said (cut meanwhile): what is there
        got += r;
    }
    bytes.resize(got);
    if (got < size) return;
    // Longer than fstat said (growing, or a /proc file of size 0): read on, up to the limit.
    uint8_t chunk[1 << 16];
    while (const size_t r = read_some(chunk, sizeof chunk)) {
        if (bytes.size() + r > kMaxImageFileBytes)
            fail(path, "file is larger than " + std::to_string(kMaxImageFileBytes) + " bytes, the most softbio reads as an image");
        bytes.insert(bytes.end(), chunk, chunk + r);
    }
}

/// Read and decode an image file. Throws ImageError naming the file.
inline RgbImage load_rgb_image(const std::string& path) {
    std::vector<uint8_t> bytes;
    read_image_file(path, bytes);
    return decode_rgb_image(bytes.data(), bytes.size(), path);
}

}  // namespace softbio
