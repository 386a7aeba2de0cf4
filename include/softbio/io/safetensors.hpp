// softbio/io/safetensors.hpp — read a safetensors file through mmap; write one.
//
// Layout (https://github.com/huggingface/safetensors, docs/FORMAT.md section 1):
//     u64 little-endian N | N bytes of JSON header | tensor data
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end)}
// relative to the start of the data; "__metadata__" maps strings to strings.
//
// The reader maps the file read-only (pages are shared by every process and thread
// using the same file and loaded lazily by the OS) and validates everything before
// anyone looks at a byte of tensor data: header length, JSON syntax, each entry's
// types, that every range lies inside the file, matches its shape's byte count and
// does not overlap another. Tensors whose data is 4-byte aligned are used in place
// (zero-copy); the rare unaligned one is copied once.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "softbio/core/error.hpp"
#include "softbio/core/file_type.hpp"
#include "softbio/io/json_util.hpp"

namespace softbio {

/// Format a shape as "[256,256,3,3]".
inline std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

/// A read-only memory mapping of a whole file; unmapped on destruction.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) : path_(path) {
        // O_NONBLOCK: opening a named pipe must not wait for a writer; the type check
        // below refuses it (and devices such as /dev/zero) before anything is read.
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            const int err = errno;
            throw ModelFileError(path + ": cannot open (" + std::strerror(err) +
                                 (err == ELOOP ? ": a loop of symbolic links" : "") + ")");
        }
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            const bool got = ::fstat(fd, &st) == 0;
            ::close(fd);
            throw ModelFileError(path + ": not a regular file" + (got ? " (" + std::string(file_type_name(st.st_mode)) + ")" : ""));
        }
        size_ = size_t(st.st_size);
        if (size_ > 0) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                throw ModelFileError(path + ": mmap failed (" + std::strerror(errno) + ")");
            }
            data_ = static_cast<const uint8_t*>(p);
        }
        ::close(fd);
    }
    ~MappedFile() {
        if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

    /// Tell the kernel that [p, p+bytes) (inside this mapping) will not be read soon: the
    /// whole pages inside the range leave the process's resident set (MADV_DONTNEED; the
    /// file stays in the page cache, and a later read maps the page again, with the same
    /// bytes: the mapping is read-only). Used once a tensor has been copied into the
    /// engine's own layout, so that the file's copy and the packed copy are not both
    /// resident (peak RSS). Advisory: errors are ignored.
    void release(const void* p, size_t bytes) const {
        const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
        const uintptr_t begin = uintptr_t(p), end = begin + bytes;
        const uintptr_t lo = (begin + page - 1) / page * page, hi = end / page * page;
        if (!data_ || begin < uintptr_t(data_) || end > uintptr_t(data_) + size_ || lo >= hi) return;
        ::madvise(reinterpret_cast<void*>(lo), size_t(hi - lo), MADV_DONTNEED);
    }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

/// One tensor entry of a safetensors file.
struct SafetensorInfo {
    std::string dtype;             // "F32", "F16", "I64", ...
    std::vector<int64_t> shape;
    size_t begin = 0, end = 0;     // byte range within the data section
};

/// Bytes per element of the safetensors dtypes; 0 for unknown ones.
inline size_t dtype_size(const std::string& dtype) {
    static const std::map<std::string, size_t> sizes = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"I64", 8}, {"U64", 8}, {"F64", 8}};
    auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

/// A validated, memory-mapped safetensors file.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) { parse(); }

    const std::string& path() const { return file_->path(); }
    const std::map<std::string, SafetensorInfo>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    /// The mapping, to keep alive as long as zero-copy tensors are in use.
    std::shared_ptr<const MappedFile> mapping() const { return file_; }

    bool has(const std::string& name) const { return tensors_.count(name) != 0; }
    const SafetensorInfo& info(const std::string& name) const {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) throw ModelFileError(path() + ": tensor " + name + " is missing");
        return it->second;
    }
    /// Pointer to the tensor's bytes inside the mapping.
    const uint8_t* bytes(const SafetensorInfo& t) const { return file_->data() + data_start_ + t.begin; }

private:
    [[noreturn]] void fail(const std::string& why) const { throw ModelFileError(path() + ": " + why); }

    void parse() {
        const size_t size = file_->size();
        if (size < 8) fail("file is " + std::to_string(size) + " bytes, too short for a safetensors header (truncated?)");
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | file_->data()[i];
        if (n > size - 8)
            fail("header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) +
                 " (truncated or not a safetensors file)");
        data_start_ = 8 + size_t(n);
        const char* text = reinterpret_cast<const char*>(file_->data() + 8);
        JsonDocument parsed;
        parse_untrusted_json(text, size_t(n), path() + ": header", parsed);
        const nlohmann::json& header = parsed.root;
        if (!header.is_object()) fail("header is not a JSON object");
        const size_t data_size = size - data_start_;
        std::vector<std::pair<size_t, size_t>> ranges;
        for (auto it = header.begin(); it != header.end(); ++it) {
            if (it.key() == "__metadata__") {
                if (!it->is_object()) fail("__metadata__ is not an object");
                for (auto m = it->begin(); m != it->end(); ++m) {
                    if (!m->is_string()) fail("__metadata__." + m.key() + " is not a string");
                    metadata_[m.key()] = m->get<std::string>();
                }
                continue;
            }
            const std::string where = "tensor " + it.key() + ": ";
            const auto& e = *it;
            if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
                fail(where + "entry needs dtype, shape and data_offsets");
            if (!e["dtype"].is_string()) fail(where + "dtype is not a string");
            SafetensorInfo t;
            t.dtype = e["dtype"].get<std::string>();
            const size_t elem = dtype_size(t.dtype);
            if (elem == 0) fail(where + "unknown dtype " + t.dtype);
            if (!e["shape"].is_array()) fail(where + "shape is not an array");
            if (e["shape"].size() > 8) fail(where + "shape has " + std::to_string(e["shape"].size()) + " dimensions (at most 8)");
            // The element count may not overflow: every product stays within the file's size.
            size_t count = 1;
            for (const auto& d : e["shape"]) {
                long long dim = 0;
                if (!json_integer_in(d, 0, INT64_MAX, dim)) fail(where + "shape has a non-integer or negative dimension");
                t.shape.push_back(dim);
                if (dim != 0 && count > (size / elem) / size_t(dim))
                    fail(where + "shape " + brief_json(e["shape"]) + " holds more elements than the file has bytes");
                count *= size_t(dim);
            }
            const auto& off = e["data_offsets"];
            long long begin = 0, end = 0;
            if (!off.is_array() || off.size() != 2 || !json_integer_in(off[0], 0, INT64_MAX, begin) ||
                !json_integer_in(off[1], 0, INT64_MAX, end))
                fail(where + "data_offsets must be two non-negative integers");
            t.begin = size_t(begin);
            t.end = size_t(end);
            if (t.begin > t.end) fail(where + "data_offsets [" + std::to_string(t.begin) + "," + std::to_string(t.end) + "] are reversed");
            if (t.end > data_size)
                fail(where + "data_offsets end " + std::to_string(t.end) + " lies outside the file (data section is " +
                     std::to_string(data_size) + " bytes; truncated file?)");
            if (t.end - t.begin != count * elem)
                fail(where + "data_offsets span " + std::to_string(t.end - t.begin) + " bytes but shape " +
                     shape_string(t.shape) + " " + t.dtype + " needs " + std::to_string(count * elem));
            ranges.push_back({t.begin, t.end});
            tensors_[it.key()] = std::move(t);
        }
        std::sort(ranges.begin(), ranges.end());
        for (size_t i = 1; i < ranges.size(); ++i)
            if (ranges[i].first < ranges[i - 1].second) fail("two tensors' data ranges overlap");
    }

    std::shared_ptr<MappedFile> file_;
    size_t data_start_ = 0;
    std::map<std::string, SafetensorInfo> tensors_;
    std::map<std::string, std::string> metadata_;
};

/// A tensor to write: name, shape, fp32 values.
struct TensorToWrite {
    std::string name;
    std::vector<int64_t> shape;
    const float* data = nullptr;
};

/// Write an F32 safetensors file with the softbio alignment rules (data section and
/// every tensor start on a 64-byte boundary). `metadata` goes into "__metadata__".
inline void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    size_t offset = 0;
    std::vector<size_t> starts;
    for (const auto& t : tensors) {
        size_t count = 1;
        for (int64_t d : t.shape) count *= size_t(d);
        starts.push_back(offset);
        header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + count * 4}}};
        offset = (offset + count * 4 + 63) / 64 * 64;
    }
    std::string text = header.dump();
    const size_t padded = (8 + text.size() + 63) / 64 * 64 - 8;
    text.append(padded - text.size(), ' ');
    std::ofstream out(path, std::ios::binary);
    if (!out) throw ModelFileError(path + ": cannot open for writing");
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(text.size()) >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    size_t written = 0;
    const char zeros[64] = {};
    for (size_t i = 0; i < tensors.size(); ++i) {
        out.write(zeros, std::streamsize(starts[i] - written));
        size_t count = 1;
        for (int64_t d : tensors[i].shape) count *= size_t(d);
        out.write(reinterpret_cast<const char*>(tensors[i].data), std::streamsize(count * 4));
        written = starts[i] + count * 4;
    }
    if (!out) throw ModelFileError(path + ": write failed");
}

}  // namespace softbio
