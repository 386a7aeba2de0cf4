// softbio/image/stb_image_private.hpp — how softbio gets stb_image into a header-only library.
//
// stb_image (public domain, Sean Barrett; Debian package libstb-dev) is one C header that
// holds both the declarations and, when STB_IMAGE_IMPLEMENTATION is defined, the code.
// A program must compile the code exactly once, or, with STB_IMAGE_STATIC, once per
// translation unit as private (static) functions.
//
// CHOICE: softbio compiles a private static copy in every translation unit that includes
// softbio/image/decode.hpp (STB_IMAGE_STATIC + STB_IMAGE_IMPLEMENTATION, here).
//   + nothing to link: consumers of the INTERFACE target softbio::softbio need only the
//     stb header on the include path (/usr/include/stb/stb_image.h on Debian); Debian's
//     libstb.so is not used.
//   + no symbol clash with a program that links its own stb_image: every function of our
//     copy has internal linkage.
//   - each including translation unit carries its own ~100 KB of decoder code (the linker
//     cannot merge static functions). Include decode.hpp in one or a few .cpp files.
//
// GUARD: stb_image.h has an include guard (STBI_INCLUDE_STB_IMAGE_H).
//   * The program included stb_image.h BEFORE softbio (with or without its own
//     implementation): we use the program's declarations and the program's implementation,
//     which it must provide anyway. Nothing is compiled here.
//   * The program includes stb_image.h AFTER softbio in the same file: the declarations are
//     already there (ours, static) and the program's calls use our copy, which decodes
//     only the five formats below. Defining
//     STB_IMAGE_IMPLEMENTATION for that later include would compile the code a second time
//     in the same file and fail with "redefinition": include your stb implementation
//     before softbio's image headers, or in a different .cpp file.
//   * A program that set stbi_set_flip_vertically_on_load(1) globally flips our images
//     too when it shares its stb copy with us (first case only).
//
// WHAT IS COMPILED (our copy only; a program's own copy, first case above, is used as the
// program built it, and decode.hpp's own checks still apply):
//   * STBI_ONLY_JPEG, _PNG, _BMP, _GIF, _TGA: the five formats softbio accepts. The format
//     is decided before stb is called (see decode.hpp); the PSD, HDR, PIC and PNM loaders
//     are left out.
//   * STBI_MAX_DIMENSIONS = softbio::kMaxImageSide (declared by decode.hpp before it
//     includes this header): stb itself refuses an image with a larger side before it
//     allocates its pixels (for JPEG, PNG and GIF already in stbi_info_from_memory).
// Entry points used: stbi_info_from_memory, stbi_is_16_bit_from_memory (the header's size
// and channels), stbi_load_from_memory, stbi_load_16_from_memory, stbi_image_free and
// stbi_failure_reason.
#pragma once

#if !defined(STBI_INCLUDE_STB_IMAGE_H)
#define SOFTBIO_OWN_STB_IMAGE 1
#if defined(__GNUC__)
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#if !defined(STBI_MAX_DIMENSIONS)
#define STBI_MAX_DIMENSIONS (::softbio::kMaxImageSide)
#endif
#if defined(__has_include)
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#elif __has_include(<stb_image.h>)
#include <stb_image.h>
#else
#error "softbio/image needs stb_image.h (Debian/Ubuntu: apt install libstb-dev; or put stb_image.h on the include path)"
#endif
#else
#include <stb/stb_image.h>
#endif
#undef STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif  // !STBI_INCLUDE_STB_IMAGE_H
