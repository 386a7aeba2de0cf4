// tests/test_no_alloc.cpp — forward() must not allocate: weights are loaded once and
// every buffer a pass writes was planned in the Workspace. Checked on a ResNet (synthetic
// weights) and on face-api's three networks (data/models/faceapi_*.safetensors).
//
// This binary replaces malloc/calloc/realloc/free/aligned_alloc/posix_memalign (glibc
// lets a program interpose them and forward to the __libc_* originals) and counts calls
// while forward() runs, after one warm-up pass (which may start OpenMP's thread pool).
// Operator new ends in malloc, and Eigen's aligned_malloc too, so nothing escapes.
#include <softbio/io/load_face.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/softbio.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

static std::atomic<long> g_allocations{0};
static std::atomic<bool> g_counting{false};
static void count() {
    if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}

extern "C" {
void* malloc(size_t n) { count(); return __libc_malloc(n); }
void* calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { count(); return __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
    count();
    *out = __libc_memalign(a, n);
    return *out ? 0 : 12;
}
}

int main() {
    const std::string path = "/tmp/softbio_no_alloc_" + std::to_string(::getpid()) + ".safetensors";
    softbio::ModelConfig cfg;
    cfg.arch.block = softbio::BlockType::Bottleneck;
    cfg.arch.layers = {3, 4, 6, 3};
    cfg.arch.input_h = cfg.arch.input_w = 96;
    cfg.arch.pool.type = softbio::PoolConfig::Type::Avg;
    cfg.arch.pool.kernel = 3, cfg.arch.pool.stride = 1, cfg.arch.pool.padding = 1;
    softbio::HeadConfig g;
    g.name = "gender", g.type = softbio::HeadType::Softmax, g.classes = {"female", "male"}, g.num_classes = 2;
    softbio::HeadConfig a;
    a.name = "age", a.type = softbio::HeadType::Coral, a.num_classes = 26, a.has_offset = true, a.label_offset = 15;
    cfg.heads = {g, a};
    cfg.preprocess = {{softbio::PreprocessStep::to_tensor()}};
    softbio::write_synthetic_model(path, cfg);
    int failures = 0;
    // The counter itself must see allocations, or this test could never fail.
    g_counting = true;
    void* volatile probe = std::malloc(16);
    std::free(probe);
    std::vector<float>* volatile v = new std::vector<float>(100);
    delete v;
    g_counting = false;
    if (g_allocations.load() < 2) {
        std::printf("the allocation counter does not work (%ld)\n", g_allocations.load());
        return 1;
    }
    for (bool fold : {true, false}) {
        auto model = softbio::load_model(path, softbio::LoadOptions{fold});
        auto ws = model->make_workspace(3, 0, 0, 2);
        for (size_t i = 0; i < size_t(3) * 96 * 96 * 3; ++i) ws->input()[i] = float(i % 251) / 251.0f;
        std::vector<std::vector<softbio::HeadOutput>> out;
        model->forward(ws->input(), 3, *ws);  // warm-up
        model->decode(*ws, 3, out);
        g_allocations = 0;
        g_counting = true;
        for (int batch : {3, 1, 2}) model->forward(ws->input(), batch, *ws);
        g_counting = false;
        const long during_forward = g_allocations.load();
        std::printf("%s: %ld allocations during 3 forward passes\n", fold ? "folded" : "unfused", during_forward);
        failures += during_forward != 0;
    }
    std::remove(path.c_str());
#ifdef SOFTBIO_DATA_DIR
    // face-api's three networks (model/faceapi_*.hpp), 1 and 2 threads, batches of 2 and 1.
    const std::string models = std::string(SOFTBIO_DATA_DIR) + "/models/faceapi_";
    auto face_check = [&](const char* name, const auto& net, auto& ws, size_t input_floats) {
        for (size_t i = 0; i < input_floats; ++i) ws.input()[i] = float(i % 251) / 251.0f - 0.5f;
        net.forward(ws.input(), 2, ws);  // warm-up
        g_allocations = 0;
        g_counting = true;
        for (int batch : {2, 1}) net.forward(ws.input(), batch, ws);
        g_counting = false;
        std::printf("%s: %ld allocations during 2 forward passes\n", name, g_allocations.load());
        failures += g_allocations.load() != 0;
    };
    for (int threads : {1, 2}) {
        auto det = softbio::load_face_detector(models + "tiny_face_detector.safetensors");
        auto lm = softbio::load_face_landmarks(models + "landmark68.safetensors");
        auto ag = softbio::load_face_age_gender(models + "age_gender.safetensors");
        auto dws = det->make_workspace(2, 416, threads);
        auto lws = lm->make_workspace(2, threads);
        auto aws = ag->make_workspace(2, threads);
        face_check("face detector 416", *det, *dws, size_t(2) * 416 * 416 * 3);
        face_check("face landmarks", *lm, *lws, size_t(2) * 112 * 112 * 3);
        face_check("face age/gender", *ag, *aws, size_t(2) * 112 * 112 * 3);
    }
#endif
    return failures ? 1 : 0;
}
