// softbio/io/npy.hpp — read and write NumPy .npy files (format version 1.0).
//
// Used to exchange tensors with PyTorch/NumPy: `--dump DIR` writes every layer's
// output, the parity tests feed inputs and read outputs this way.
//
// A .npy file is: the magic "\x93NUMPY", version bytes (1, 0), a little-endian u16
// header length, then an ASCII Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and a final '\n' so the data starts at a multiple of 64 bytes,
// then the raw C-order data.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace softbio::npy {

/// A float32 array read from a .npy file: its shape and its C-order values.
struct FloatArray {
    std::vector<int64_t> shape;
    std::vector<float> data;
};

/// Write `data` (C order, prod(shape) values) as a '<f4' .npy file. Throws on I/O failure.
inline void write_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < shape.size(); ++i) {
        dict += std::to_string(shape[i]);
        if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
        if (i + 1 < shape.size()) dict += " ";
    }
    dict += "), }";
    const size_t preamble = 10;  // magic(6) + version(2) + header length(2)
    size_t total = preamble + dict.size() + 1;
    size_t padded = (total + 63) / 64 * 64;
    dict.append(padded - total, ' ');
    dict += '\n';

    std::ofstream out(path, std::ios::binary);
    if (!out) throw std::runtime_error(path + ": cannot open for writing");
    const unsigned char head[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    out.write(reinterpret_cast<const char*>(head), 8);
    const uint16_t len = static_cast<uint16_t>(dict.size());
    const unsigned char len_le[2] = {static_cast<unsigned char>(len & 0xff), static_cast<unsigned char>(len >> 8)};
    out.write(reinterpret_cast<const char*>(len_le), 2);
    out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(float)));
    if (!out) throw std::runtime_error(path + ": write failed");
}

/// Read a little-endian float32 C-order .npy file (version 1.x or 2.x).
/// Throws std::runtime_error naming the file for anything else.
inline FloatArray read_f32(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    unsigned char magic[8];
    if (!in.read(reinterpret_cast<char*>(magic), 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        throw std::runtime_error(path + ": not a .npy file (bad magic)");
    uint32_t header_len = 0;
    if (magic[6] == 1) {
        unsigned char b[2];
        if (!in.read(reinterpret_cast<char*>(b), 2)) throw std::runtime_error(path + ": truncated header");
        header_len = b[0] | (b[1] << 8);
    } else {
        unsigned char b[4];
        if (!in.read(reinterpret_cast<char*>(b), 4)) throw std::runtime_error(path + ": truncated header");
        header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
    }
    std::string dict(header_len, '\0');
    if (!in.read(dict.data(), header_len)) throw std::runtime_error(path + ": truncated header");
    if (dict.find("'descr': '<f4'") == std::string::npos)
        throw std::runtime_error(path + ": expected dtype '<f4' (little-endian float32), header is " + dict);
    if (dict.find("'fortran_order': False") == std::string::npos)
        throw std::runtime_error(path + ": Fortran-order arrays are not supported");
    FloatArray arr;
    size_t open = dict.find("'shape': (");
    if (open == std::string::npos) throw std::runtime_error(path + ": header has no shape");
    size_t pos = open + 10;
    size_t close = dict.find(')', pos);
    std::string dims = dict.substr(pos, close - pos);
    size_t count = 1;
    for (size_t i = 0; i < dims.size();) {
        while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
        if (i >= dims.size()) break;
        size_t j = i;
        while (j < dims.size() && dims[j] >= '0' && dims[j] <= '9') ++j;
        if (j == i) throw std::runtime_error(path + ": malformed shape (" + dims + ")");
        arr.shape.push_back(std::stoll(dims.substr(i, j - i)));
        count *= static_cast<size_t>(arr.shape.back());
        i = j;
    }
    arr.data.resize(count);
    if (!in.read(reinterpret_cast<char*>(arr.data.data()), static_cast<std::streamsize>(count * sizeof(float))))
        throw std::runtime_error(path + ": truncated data (expected " + std::to_string(count) + " floats)");
    return arr;
}

}  // namespace softbio::npy
