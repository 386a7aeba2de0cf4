// tests/test_alloc_failure.cpp — running out of memory at any point of loading a model
// or planning a workspace gives an exception, leaks nothing, and leaves what was
// already loaded usable.
//
// Like test_no_alloc.cpp, this binary interposes malloc & co (forwarding to glibc's
// __libc_* functions). When armed, the k-th allocation fails (returns null, which
// operator new turns into std::bad_alloc). For every k up to the number of allocations a
// successful load makes, the load must throw; the allocations made during the attempt
// must all be freed again (live count back to where it was); and a model loaded
// earlier must still give the same logits.
#include <softbio/io/synthetic.hpp>
#include <softbio/softbio.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <unistd.h>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

static std::atomic<bool> g_armed{false};
static std::atomic<long> g_count{0}, g_fail_at{0}, g_live{0};

// Returns false when this allocation is the one to fail.
static bool allow() {
    if (!g_armed.load(std::memory_order_relaxed)) return true;
    return g_count.fetch_add(1, std::memory_order_relaxed) + 1 != g_fail_at.load(std::memory_order_relaxed);
}
static void* track(void* p) {
    if (p && g_armed.load(std::memory_order_relaxed)) g_live.fetch_add(1, std::memory_order_relaxed);
    return p;
}

extern "C" {
void* malloc(size_t n) { return allow() ? track(__libc_malloc(n)) : nullptr; }
void* calloc(size_t a, size_t b) { return allow() ? track(__libc_calloc(a, b)) : nullptr; }
void* realloc(void* p, size_t n) {
    if (!allow()) return nullptr;
    void* q = __libc_realloc(p, n);
    if (!p) track(q);
    return q;
}
void free(void* p) {
    if (p && g_armed.load(std::memory_order_relaxed)) g_live.fetch_sub(1, std::memory_order_relaxed);
    __libc_free(p);
}
void* aligned_alloc(size_t a, size_t n) { return allow() ? track(__libc_memalign(a, n)) : nullptr; }
int posix_memalign(void** out, size_t a, size_t n) {
    if (!allow()) return 12;
    *out = track(__libc_memalign(a, n));
    return *out ? 0 : 12;
}
}

namespace {

// Allocations `f` makes when nothing fails.
long count_allocations(const std::function<void()>& f) {
    g_count = 0, g_fail_at = 0, g_live = 0;
    g_armed = true;
    f();
    g_armed = false;
    return g_count.load();
}

// Fail the k-th allocation of `f` for every k; count the runs that did not throw or
// that leaked.
int check_every_failure(const char* what, long total, const std::function<void()>& f) {
    int bad = 0;
    for (long k = 1; k <= total; ++k) {
        g_count = 0, g_fail_at = k, g_live = 0;
        if (std::getenv("SOFTBIO_TRACE_K")) std::fprintf(stderr, "%s k=%ld\n", what, k);
        bool threw = false;
        g_armed = true;
        try {
            f();
        } catch (const std::bad_alloc&) {
            threw = true;
        } catch (const softbio::Error&) {  // "out of memory allocating <what> (<n> MiB)"
            threw = true;
        }
        g_armed = false;
        if (!threw || g_live.load() != 0) {
            std::printf("%s: allocation %ld of %ld failing: %s, %ld allocations not freed\n", what, k, total,
                        threw ? "threw" : "DID NOT THROW", g_live.load());
            ++bad;
        }
    }
    std::printf("%s: each of %ld allocations made to fail: %s\n", what, total, bad ? "FAILED" : "exception, nothing leaked");
    return bad;
}

}  // namespace

int main() {
    const std::string path = "/tmp/softbio_alloc_failure_" + std::to_string(::getpid()) + ".safetensors";
    softbio::ModelConfig cfg;
    softbio::apply_variant(cfg.arch, softbio::kResNet18);
    cfg.arch.input_h = cfg.arch.input_w = 64;
    cfg.arch.base_width = 8;  // a thin ResNet-18: every allocation of a real load, little arithmetic
    cfg.heads.resize(1);
    cfg.heads[0].name = "gender", cfg.heads[0].type = softbio::HeadType::Softmax;
    cfg.heads[0].classes = {"female", "male"}, cfg.heads[0].num_classes = 2;
    cfg.preprocess = {{softbio::PreprocessStep::to_tensor()}};
    softbio::write_synthetic_model(path, cfg);

    // A model loaded before the failures, and its answer.
    auto survivor = softbio::load_model(path);
    auto ws = survivor->make_workspace(2, 0, 0, 2);
    for (size_t i = 0; i < size_t(2) * 64 * 64 * 3; ++i) ws->input()[i] = float(i % 97) / 97.0f;
    survivor->forward(ws->input(), 2, *ws);
    const float before = ws->logits(0)[1];

    int bad = 0;
    const long loads = count_allocations([&] { softbio::load_model(path); });
    const long plans = count_allocations([&] { survivor->make_workspace(4, 0, 0, 2); });
    // The injection must be able to fail, or this test could never fail.
    if (loads < 10 || plans < 5) {
        std::printf("too few allocations seen (load %ld, workspace %ld): the interposition does not work\n", loads, plans);
        return 1;
    }
    bad += check_every_failure("load_model", loads, [&] { softbio::load_model(path); });
    bad += check_every_failure("make_workspace", plans, [&] { survivor->make_workspace(4, 0, 0, 2); });

    survivor->forward(ws->input(), 2, *ws);
    if (ws->logits(0)[1] != before) {
        std::printf("the model loaded before the failures changed its answer\n");
        ++bad;
    }
    auto again = softbio::load_model(path);  // and loading works again
    std::remove(path.c_str());
    return bad ? 1 : 0;
}
