// tests/fuzz/fuzz_util.hpp — what the libFuzzer targets share.
//
// The model loader reads from a path only (SafetensorsFile maps the file), so a target
// hands it the fuzz input as a file. MemFile is an anonymous in-memory file (memfd)
// reopened through /proc/self/fd/N: nothing touches the disk, nothing is left behind when
// the fuzzer is killed, and parallel fuzzers (-jobs) never share a name. Without memfd
// (very old kernels) it falls back to an unlinked file in /dev/shm or /tmp.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace softbio_fuzz {

/// Stops the fuzzer with a message: an invariant the library promises does not hold.
[[noreturn]] inline void violated(const char* what) {
    std::fprintf(stderr, "softbio fuzz: invariant violated: %s\n", what);
    std::abort();
}

/// SOFTBIO_FUZZ_STRICT=1: stop at known open bugs too (see known_open_bug).
inline bool strict() {
    static const bool on = [] {
        const char* e = std::getenv("SOFTBIO_FUZZ_STRICT");
        return e != nullptr && e[0] == '1';
    }();
    return on;
}

/// An input that hits a bug already reported and not fixed yet (tests/fuzz/crashes/
/// README.md, "Open"). It is skipped, so that a run (and CI's minute) goes on looking for
/// new bugs instead of stopping at the same one; the first hit of each is printed
/// ("known open bug hit", which run_fuzzer.sh counts). With SOFTBIO_FUZZ_STRICT=1 it
/// stops the run like any crash. Remove the call once the bug is fixed.
inline void known_open_bug(const char* what) {
    if (strict()) {
        std::fprintf(stderr, "softbio fuzz: known open bug (SOFTBIO_FUZZ_STRICT=1 stops here): %s\n", what);
        std::abort();
    }
    static std::string seen;
    if (seen.find(what) == std::string::npos) {
        seen += what;
        std::fprintf(stderr, "softbio fuzz: known open bug hit, input skipped: %s\n", what);
    }
}

#define SOFTBIO_FUZZ_CHECK(cond) \
    do {                         \
        if (!(cond)) ::softbio_fuzz::violated(#cond); \
    } while (0)

class MemFile {
public:
    MemFile() {
        fd_ = int(::memfd_create("softbio-fuzz", MFD_CLOEXEC));
        if (fd_ < 0) {
            for (const char* dir : {"/dev/shm", "/tmp"}) {
                std::string tmpl = std::string(dir) + "/softbio-fuzz-XXXXXX";
                fd_ = ::mkstemp(tmpl.data());
                if (fd_ >= 0) {
                    ::unlink(tmpl.c_str());  // reachable through /proc/self/fd only
                    break;
                }
            }
        }
        if (fd_ < 0) {
            std::perror("softbio fuzz: no memfd and no temporary file");
            std::abort();
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~MemFile() { ::close(fd_); }
    MemFile(const MemFile&) = delete;
    MemFile& operator=(const MemFile&) = delete;

    /// Replace the file's content with `n` bytes; returns a path that opens it.
    const std::string& write(const uint8_t* data, size_t n) {
        if (::ftruncate(fd_, 0) != 0) fail("ftruncate");
        size_t done = 0;
        while (done < n) {
            const ssize_t r = ::pwrite(fd_, data + done, n - done, off_t(done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) fail("pwrite");
            done += size_t(r);
        }
        return path_;
    }
    const std::string& path() const { return path_; }

private:
    [[noreturn]] static void fail(const char* what) {
        std::perror(what);
        std::abort();
    }
    int fd_ = -1;
    std::string path_;
};

}  // namespace softbio_fuzz
