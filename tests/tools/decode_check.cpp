// decode_check — decodes each image file named on standard input (one path per line) with
// softbio::load_rgb_image and prints one line per file:
//   OK <path> <width>x<height>
//   ERR <path>\t<softbio's message>
// Used by tests/python/test_image_mutations.py to compare with what Pillow accepts.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "softbio/image/decode.hpp"

int main() {
    std::string path;
    while (std::getline(std::cin, path)) {
        try {
            const softbio::RgbImage img = softbio::load_rgb_image(path);
            std::printf("OK %s %dx%d\n", path.c_str(), img.width, img.height);
        } catch (const std::exception& e) {
            std::printf("ERR %s\t%s\n", path.c_str(), e.what());
        }
        std::fflush(stdout);
    }
    return 0;
}
