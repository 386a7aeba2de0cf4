// tests/cuda/test_cuda_model.cu — whole ResNets on the GPU (ResNet<CudaBackend>) against
// the CPU engine (ResNet<CpuBackend>) on the same synthetic weight files and inputs.
//
// TOLERANCE RULE (as tests/test_model.cpp): after ~100 layers fp32 rounding differences
// compound, so outputs are compared relative to their spread:
//     max |gpu - cpu| <= 1e-4 * (max - min of the CPU values)
// for the pooled features and every head's logits; labels must be identical. A wrong
// layer (stride, padding, fold, order) moves logits by a sizeable fraction of the spread.
// Cases: test configurations (tests/test_util.hpp's make_config) folded and unfused, a
// two-head ResNet-101 at 224, the published presets (model/presets.hpp: every depth
// 18/34/50/101/152 at 128 and at 224), a CUDA-graph replay (bit-identical to eager),
// two threads with their own workspaces and streams sharing one model, the uint8
// preprocessing path, and the run-time device choice: Predictor with Device::Cuda
// (backend/cuda_model.hpp: pinned staging, uploads on a copy stream overlapping the
// previous batch's forward pass) against Predictor on the CPU, same rule, over
// pipelined batches (submit k+1 before collect k), and identical to the synchronous run.
//
// TF32 (LoadOptions::precision = Tf32: every convolution through conv2d_tf32, the tensor
// cores): ResNet-18 (celeba-r18) and ResNet-101 (flagship, two heads) at 128 px against
// the CPU's fp32 path, with the TF32 rule of tests/cuda/tf32_model.hpp:
//     max |tf32 - cpu| <= 5e-3 * (max - min of the CPU values)
// for the features and every head's logits (50x the fp32 rule: each conv's operands are
// rounded to 10 mantissa bits, u_p = 2^-11, which gives ~4e-4 of a conv output's scale
// per layer, growing like sqrt(depth) through BatchNorm and the residual stream; the
// derivation and the values measured on the host model are in tf32_model.hpp), labels
// identical except a CPU decision within the bound of flipping (reported); the workspace
// context carries Tf32 (fp32 loads: Fp32); the result differs from the GPU's fp32 path
// (the tensor cores did run); CUDA-graph replay == eager in tf32; load_device_model with
// Device::Cuda + Tf32 (a session: the Predictor's path) == the direct forward, bit for
// bit.
// FP16 / BF16 (every convolution through conv2d_mma_f32io: filters stored in 16 bits at
// load, BatchNorm folded first; each conv's fp32 input rounded to 16 bits as gathered;
// fp32 accumulation, epilogue, pools, residual stream and heads): the same cases as TF32
// with tf32_model.hpp's rules, max |x - cpu| <= kFp16Relative (5e-3, tf32's: the same
// unit roundoff 2^-11) / kBf16Relative (6e-2: 8 x the unit roundoff, 2^-8, measured
// up to 16 x fp16 on the host model) x the spread;
// plus the unfused BatchNorm graph (filters stored unscaled, BN as an fp32 pass) on
// ResNet-18.
//
// Exit code 77 (ctest: skipped) when there is no CUDA device.
#define EIGEN_NO_CUDA  // the CPU engine includes Eigen: compile it as plain host code
#include <softbio/backend/cuda.hpp>
#include <softbio/backend/cuda_graph.hpp>
#include <softbio/backend/cuda_model.hpp>
#include <softbio/predictor.hpp>
#include <softbio/io/load.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/model/presets.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

// tests/test_util.hpp is written for the doctest tests; this program only takes its model
// configurations, so doctest's macros are compiled out (no doctest runner is linked).
#define DOCTEST_CONFIG_DISABLE
#include "../test_util.hpp"
#include "dev_common.cuh"
#include "tf32_model.hpp"

using namespace softbio;
using namespace softbio::cuda::dev;
using GpuModel = ResNet<CudaBackend>;

namespace {

Checker chk;

double spread(const std::vector<float>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return double(*hi) - double(*lo);
}

void check_relative(const std::vector<float>& got, const std::vector<float>& ref, const std::string& what) {
    double worst = 0;
    bool finite = got.size() == ref.size();
    for (size_t i = 0; i < ref.size() && finite; ++i) {
        finite = std::isfinite(got[i]);
        worst = std::max(worst, std::fabs(double(got[i]) - double(ref[i])));
    }
    const double s = spread(ref);
    char buf[160];
    std::snprintf(buf, sizeof buf, ": max|diff| = %.3g, spread = %.3g (limit %.3g)", worst, s, 1e-4 * s);
    chk.expect(finite && s > 0 && worst <= 1e-4 * s, what + buf);
    std::printf("  %s%s\n", what.c_str(), buf);
}

struct Outputs {
    std::vector<float> features;
    std::vector<std::vector<float>> logits;
    std::vector<std::vector<HeadOutput>> decoded;
};

/// The last forward()'s features, logits and decoded heads, on either backend.
template <class Backend>
Outputs read_outputs(const ResNet<Backend>& model, Workspace<Backend>& ws, int batch) {
    Outputs o;
    auto fetch = [&](const float* src, size_t n) {
        std::vector<float> h(n);
        Backend::download(h.data(), src, n, ws.context());
        return h;
    };
    o.features = fetch(ws.features(), size_t(batch) * model.feature_width());
    for (size_t i = 0; i < model.heads().size(); ++i)
        o.logits.push_back(fetch(ws.logits(i), size_t(batch) * model.heads()[i].logits()));
    model.decode(ws, batch, o.decoded);
    return o;
}

Outputs cpu_forward(const std::string& path, const std::vector<float>& input, int batch, int h, int w, bool fold) {
    auto model = load_model(path, LoadOptions{fold});
    auto ws = model->make_workspace(batch, h, w);
    model->forward(input.data(), batch, *ws);
    return read_outputs(*model, *ws, batch);
}

void compare(const Outputs& gpu, const Outputs& cpu, const std::string& tag) {
    check_relative(gpu.features, cpu.features, tag + " features");
    for (size_t i = 0; i < cpu.logits.size(); ++i) check_relative(gpu.logits[i], cpu.logits[i], tag + " head " + std::to_string(i));
    bool labels = gpu.decoded.size() == cpu.decoded.size();
    for (size_t n = 0; n < cpu.decoded.size() && labels; ++n)
        for (size_t i = 0; i < cpu.decoded[n].size(); ++i) labels &= gpu.decoded[n][i].label == cpu.decoded[n][i].label;
    chk.expect(labels, tag + " labels identical");
}

bool same_outputs(const Outputs& a, const Outputs& b) {
    bool same = same_values(a.features, b.features) && a.logits.size() == b.logits.size();
    for (size_t i = 0; i < a.logits.size() && same; ++i) same = same_values(a.logits[i], b.logits[i]);
    return same;
}

/// `batch` random images in [0, 1] (like ToTensor) of the model's input size.
std::vector<float> random_input(const ModelConfig& cfg, int batch, uint64_t seed) {
    auto x = test::random_vector(size_t(batch) * cfg.arch.input_h * cfg.arch.input_w * cfg.arch.in_channels, seed);
    for (auto& v : x) v = 0.5f * (v + 1.0f);
    return x;
}

// Build `cfg`, run CPU and GPU (folded, and unfused when asked) on `batch` random images.
void check_model(const ModelConfig& cfg, int batch, const std::string& label, bool unfused_too = true) {
    const std::string path = test::temp_path("cuda_" + std::to_string(chk.checks) + ".safetensors");
    write_synthetic_model(path, cfg);
    const int h = cfg.arch.input_h, w = cfg.arch.input_w;
    const auto input = random_input(cfg, batch, 7);
    std::printf("%s, batch %d, %dx%d\n", label.c_str(), batch, h, w);
    for (bool fold : {true, false}) {
        if (!fold && !unfused_too) continue;
        const Outputs ref = cpu_forward(path, input, batch, h, w, fold);
        auto model = load_network<GpuModel>(path, LoadOptions{fold});
        auto ws = model->make_workspace(batch);
        cuda::copy_to_device(ws->input(), input.data(), input.size(), ws->context().stream);
        model->forward(ws->input(), batch, *ws);
        compare(read_outputs(*model, *ws, batch), ref, label + (fold ? " folded" : " unfused"));
    }
    std::remove(path.c_str());
}

void check_graph_and_threads() {
    const auto cfg = test::make_config(BlockType::Bottleneck, {1, 2, 2, 1}, 96, false);
    const std::string path = test::temp_path("cuda_graph.safetensors");
    write_synthetic_model(path, cfg);
    auto model = load_network<GpuModel>(path);
    // CUDA graph replay == eager forward, bit for bit (same kernels, same order), and the
    // workspace's stream is restored after the capture.
    for (int batch : {1, 4}) {
        const auto input = random_input(cfg, batch, 11 + batch);
        auto ws = model->make_workspace(batch);
        const cudaStream_t own = ws->context().stream;
        cuda::copy_to_device(ws->input(), input.data(), input.size(), own);
        model->forward(ws->input(), batch, *ws);
        const Outputs eager = read_outputs(*model, *ws, batch);
        cuda::ForwardGraph graph(*model, *ws, batch);
        chk.expect(ws->context().stream == own, "ForwardGraph restores the workspace's stream");
        std::printf("graph batch %d: %zu nodes\n", batch, graph.nodes());
        // Poison the outputs: the replay must rewrite them.
        for (size_t i = 0; i < model->heads().size(); ++i)
            SOFTBIO_CUDA_CHECK(cudaMemsetAsync(const_cast<float*>(ws->logits(i)), 0xFF,
                                               size_t(batch) * model->heads()[i].logits() * sizeof(float), own),
                               "poison");
        SOFTBIO_CUDA_CHECK(cudaMemsetAsync(const_cast<float*>(ws->features()), 0xFF,
                                           size_t(batch) * model->feature_width() * sizeof(float), own),
                           "poison");
        graph.run();
        chk.expect(same_outputs(eager, read_outputs(*model, *ws, batch)),
                   "graph replay == eager forward (batch " + std::to_string(batch) + ")");
    }
    // Two threads, one model, own workspace and stream each: same results as one thread.
    const auto input = random_input(cfg, 2, 21);
    auto ws0 = model->make_workspace(2);
    cuda::copy_to_device(ws0->input(), input.data(), input.size(), ws0->context().stream);
    model->forward(ws0->input(), 2, *ws0);
    const Outputs single = read_outputs(*model, *ws0, 2);
    std::vector<Outputs> per(2);
    std::vector<std::string> errors(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            try {
                cuda::Stream stream;
                auto ws = model->make_workspace(2);
                ws->context().stream = stream;
                cuda::copy_to_device(ws->input(), input.data(), input.size(), stream);
                for (int r = 0; r < 5; ++r) model->forward(ws->input(), 2, *ws);
                per[size_t(t)] = read_outputs(*model, *ws, 2);
            } catch (const std::exception& e) {
                errors[size_t(t)] = e.what();
            }
        });
    for (auto& th : threads) th.join();
    for (int t = 0; t < 2; ++t) {
        chk.expect(errors[size_t(t)].empty(), "thread " + std::to_string(t) + ": " + errors[size_t(t)]);
        chk.expect(same_outputs(single, per[size_t(t)]), "thread " + std::to_string(t) + " on its own stream == single-threaded");
    }
    std::remove(path.c_str());
}

// 8-bit images through the device-side ToTensor + Normalize, vs the CPU engine fed the
// same conversion done on the host.
void check_u8_input() {
    const auto cfg = test::make_config(BlockType::Basic, {1, 1, 1, 1}, 64, false);
    const std::string path = test::temp_path("cuda_u8.safetensors");
    write_synthetic_model(path, cfg);
    const int batch = 2, s = 64;
    std::vector<std::uint8_t> img(size_t(batch) * s * s * 3);
    for (size_t i = 0; i < img.size(); ++i) img[i] = std::uint8_t((i * 2654435761u) >> 24);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    std::vector<float> input(img.size());
    for (size_t i = 0; i < img.size(); ++i) input[i] = (float(img[i]) / 255.0f - mean[i % 3]) / stdv[i % 3];
    const Outputs ref = cpu_forward(path, input, batch, s, s, true);
    auto model = load_network<GpuModel>(path);
    auto ws = model->make_workspace(batch);
    const CudaContext& ctx = ws->context();
    cuda::PinnedArray<std::uint8_t> pinned(img.size());
    std::copy(img.begin(), img.end(), pinned.data());
    cuda::DeviceArray<std::uint8_t> d_img(img.size());
    cuda::copy_bytes_to_device(d_img.data(), pinned.data(), img.size(), ctx.stream);
    cuda::to_tensor_u8(d_img.data(), batch, s, s, size_t(s) * 3, size_t(s) * s * 3, mean, stdv, ws->input(), ctx);
    std::vector<float> converted(input.size());
    CudaBackend::download(converted.data(), ws->input(), converted.size(), ctx);
    chk.expect(same_values(converted, input), "to_tensor_u8 into the workspace == host conversion");
    model->forward(ws->input(), batch, *ws);
    compare(read_outputs(*model, *ws, batch), ref, "uint8 input path");
    std::remove(path.c_str());
}

// Predictor on Device::Cuda vs Predictor on the CPU, through the pipelined cycle.
void check_predictor_device() {
    ModelConfig cfg = preset_config("flagship");  // ResNet-101, gender softmax + CORAL age, 128 px
    const std::string path = test::temp_path("cuda_predictor.safetensors");
    write_synthetic_model(path, cfg);
    chk.expect(cuda_compiled_in(), "cuda_model.hpp registered the CUDA backend");
    const int max_batch = 3, images = 7;
    // Images of another size than the model's: the model's preprocessing (resize, crop)
    // runs on the host into the session's input slots (pinned memory on the GPU).
    std::vector<RgbImage> pics;
    for (int i = 0; i < images; ++i) {
        RgbImage im;
        im.width = 180 + 3 * i, im.height = 190 + 5 * i;
        im.pixels.resize(size_t(im.width) * im.height * 3);
        SplitMix64 rng(100 + uint64_t(i));
        for (auto& p : im.pixels) p = std::uint8_t(rng.next() >> 56);
        pics.push_back(std::move(im));
    }
    PredictorOptions opt;
    opt.max_batch = max_batch;
    Predictor cpu(path, opt);
    opt.load.device = Device::Cuda;
    Predictor gpu(path, opt);
    chk.expect(gpu.device() == Device::Cuda && cpu.device() == Device::Cpu, "Predictor devices");
    std::printf("predictor on %s\n", gpu.device_model().device_description().c_str());
    bool threw = false;
    try {
        gpu.model();
    } catch (const Error&) {
        threw = true;
    }
    chk.expect(threw, "Predictor::model() on CUDA throws (the CPU network does not exist)");

    // Synchronous runs, batch by batch, on both devices; then the pipelined cycle on the GPU.
    std::vector<Prediction> ref, sync, piped, out;
    for (int b0 = 0; b0 < images; b0 += max_batch) {
        const int n = std::min(max_batch, images - b0);
        for (int i = 0; i < n; ++i) cpu.set_input(pics[size_t(b0 + i)], i), gpu.set_input(pics[size_t(b0 + i)], i);
        cpu.run(n, out);
        ref.insert(ref.end(), out.begin(), out.end());
        gpu.run(n, out);
        sync.insert(sync.end(), out.begin(), out.end());
    }
    int submitted = 0;
    for (int b0 = 0; b0 < images; b0 += max_batch) {
        const int n = std::min(max_batch, images - b0);
        for (int i = 0; i < n; ++i) gpu.set_input(pics[size_t(b0 + i)], i);
        gpu.submit(n);
        if (++submitted == 2) {
            chk.expect(gpu.in_flight() == 2, "two batches in flight");
            bool full = false;
            try {
                gpu.submit(n);
            } catch (const Error&) {
                full = true;
            }
            chk.expect(full, "a third submit() while two batches are in flight throws");
        }
        if (gpu.in_flight() == 2) {
            gpu.collect(out);
            piped.insert(piped.end(), out.begin(), out.end());
        }
    }
    while (gpu.in_flight() > 0) {
        gpu.collect(out);
        piped.insert(piped.end(), out.begin(), out.end());
    }
    chk.expect(ref.size() == size_t(images) && sync.size() == ref.size() && piped.size() == ref.size(),
               "every image predicted on both devices");
    for (size_t h = 0; h < cfg.heads.size() && ref.size() == size_t(images); ++h) {
        std::vector<float> r, g, p;
        bool labels = true, same = true;
        for (size_t n = 0; n < ref.size() && n < sync.size() && n < piped.size(); ++n) {
            const HeadOutput &a = ref[n].heads[h], &b = sync[n].heads[h], &c = piped[n].heads[h];
            r.insert(r.end(), a.logits.begin(), a.logits.end());
            g.insert(g.end(), b.logits.begin(), b.logits.end());
            p.insert(p.end(), c.logits.begin(), c.logits.end());
            labels &= a.label == b.label && b.label == c.label;
            same &= b.logits == c.logits && b.probabilities == c.probabilities && b.label == c.label;
        }
        check_relative(g, r, "Predictor cuda vs cpu, head " + cfg.heads[h].name + " logits");
        chk.expect(labels, "Predictor cuda vs cpu, head " + cfg.heads[h].name + ": labels identical");
        chk.expect(same, "Predictor cuda: pipelined == synchronous, head " + cfg.heads[h].name);
    }
    std::remove(path.c_str());
}

// ---- TF32, FP16, BF16 ---------------------------------------------------------------------

/// tf32_model.hpp's whole-network rule for precision p (fraction of the CPU values' spread).
double mma_rule(Precision p) {
    return p == Precision::Tf32 ? test::kTf32Relative : p == Precision::Fp16 ? test::kFp16Relative : test::kBf16Relative;
}

void check_relative_mma(const std::vector<float>& got, const std::vector<float>& ref, double rule, const std::string& what) {
    const double worst = test::max_abs_diff(got, ref), s = spread(ref), limit = rule * s;
    char buf[200];
    std::snprintf(buf, sizeof buf, ": max|diff| = %.3g, spread = %.3g, %.3g of the spread (limit %.3g: %.3g)", worst, s,
                  worst / s, rule, limit);
    chk.expect(s > 0 && worst <= limit, what + buf);
    std::printf("  %s%s\n", what.c_str(), buf);
}

/// A tensor-core precision vs the CPU's fp32 (tf32_model.hpp's rules).
void compare_mma(const Outputs& gpu, const Outputs& cpu, const ModelConfig& cfg, double rule, const std::string& tag) {
    check_relative_mma(gpu.features, cpu.features, rule, tag + " features");
    for (size_t i = 0; i < cpu.logits.size(); ++i) {
        check_relative_mma(gpu.logits[i], cpu.logits[i], rule, tag + " head " + cfg.heads[i].name + " logits");
        const int k = int(cpu.logits[i].size() / cpu.decoded.size());
        const double allowed = rule * spread(cpu.logits[i]);
        bool labels = gpu.decoded.size() == cpu.decoded.size();
        for (size_t n = 0; n < cpu.decoded.size() && labels; ++n) {
            if (gpu.decoded[n][i].label == cpu.decoded[n][i].label) continue;
            const double margin = test::decision_margin(cfg.heads[i], cpu.logits[i].data() + n * size_t(k), k);
            std::printf("  %s head %s image %zu: label %d (gpu) vs %d (cpu), cpu margin %.3g vs 2 x allowed %.3g%s\n",
                        tag.c_str(), cfg.heads[i].name.c_str(), n, gpu.decoded[n][i].label, cpu.decoded[n][i].label,
                        margin, 2 * allowed, margin <= 2 * allowed ? ": a near-tie, not a failure" : "");
            labels = margin <= 2 * allowed;
        }
        chk.expect(labels, tag + " head " + cfg.heads[i].name + ": labels identical (near-ties excepted)");
    }
}

/// The whole network in precision `prec` (Tf32: every conv through conv2d_tf32; Fp16 /
/// Bf16: through conv2d_mma_f32io with the filters stored in 16 bits at load) against the
/// CPU's fp32 with tf32_model.hpp's rule; the workspace context carries the precision, the
/// result differs from the GPU's fp32 (the tensor cores ran), graph replay == eager, and
/// load_device_model(Cuda, prec) (the Predictor's path) == the direct forward bit for bit.
/// `fold` false: the unfused BatchNorm graph (filters stored unscaled, BN in fp32).
void check_mma_model(const char* preset, int batch, Precision prec, bool fold = true) {
    const ModelConfig cfg = preset_config(preset);
    const char* pname = precision_name(prec);
    const std::string path = test::temp_path(std::string("cuda_") + pname + "_" + preset + ".safetensors");
    write_synthetic_model(path, cfg);
    const int h = cfg.arch.input_h, w = cfg.arch.input_w;
    const auto input = random_input(cfg, batch, 29);
    const std::string tag = std::string(preset) + " " + pname + (fold ? "" : " unfused");
    std::printf("%s, batch %d, %dx%d, %s vs cpu fp32\n", preset, batch, h, w, tag.c_str());
    const Outputs ref = cpu_forward(path, input, batch, h, w, true);

    LoadOptions opt;
    opt.precision = prec;
    opt.fold_batchnorm = fold;
    auto model = load_network<GpuModel>(path, opt);
    chk.expect(model->options().precision == prec, tag + ": the model keeps LoadOptions::precision");
    auto ws = model->make_workspace(batch);
    chk.expect(ws->context().precision == prec, tag + ": the workspace context runs " + pname);
    cuda::copy_to_device(ws->input(), input.data(), input.size(), ws->context().stream);
    model->forward(ws->input(), batch, *ws);
    const Outputs got = read_outputs(*model, *ws, batch);
    compare_mma(got, ref, cfg, mma_rule(prec), tag);

    // The tensor cores did run: the fp32 GPU path (CUDA cores) gives other values.
    auto model32 = load_network<GpuModel>(path);
    auto ws32 = model32->make_workspace(batch);
    chk.expect(ws32->context().precision == Precision::Fp32, tag + ": an fp32 load's workspace context runs fp32");
    cuda::copy_to_device(ws32->input(), input.data(), input.size(), ws32->context().stream);
    model32->forward(ws32->input(), batch, *ws32);
    const Outputs fp32 = read_outputs(*model32, *ws32, batch);
    chk.expect(!same_outputs(got, fp32), tag + ": differs from the GPU's fp32 path (the tensor cores ran)");
    std::printf("  %s: vs gpu fp32: features max|diff| %.3g\n", tag.c_str(), test::max_abs_diff(got.features, fp32.features));
    if (!fold) {
        std::remove(path.c_str());
        return;
    }

    // CUDA-graph replay == eager, bit for bit.
    {
        cuda::ForwardGraph graph(*model, *ws, batch);
        SOFTBIO_CUDA_CHECK(cudaMemsetAsync(const_cast<float*>(ws->features()), 0xFF,
                                           size_t(batch) * model->feature_width() * sizeof(float), ws->context().stream),
                           "poison");
        graph.run();
        chk.expect(same_outputs(got, read_outputs(*model, *ws, batch)), tag + ": graph replay == eager forward");
    }

    // The run-time device choice (Predictor's path): Device::Cuda + prec.
    LoadOptions dopt = opt;
    dopt.device = Device::Cuda;
    auto dm = load_device_model(path, dopt);
    const std::string desc = dm->device_description();
    chk.expect(desc.find(std::string(", ") + pname + ")") != std::string::npos,
               tag + ": device description names " + pname + ": " + desc);
    auto session = dm->make_session(batch);
    const size_t image = input.size() / size_t(batch);
    for (int n = 0; n < batch; ++n)
        std::copy(input.begin() + ptrdiff_t(image) * n, input.begin() + ptrdiff_t(image) * (n + 1), session->input_slot(n));
    session->submit(batch);
    std::vector<std::vector<HeadOutput>> out;
    session->collect(out);
    bool same = out.size() == size_t(batch);
    for (size_t n = 0; n < out.size() && same; ++n)
        for (size_t i = 0; i < cfg.heads.size() && same; ++i) {
            const int k = model->heads()[i].logits();
            same = std::equal(out[n][i].logits.begin(), out[n][i].logits.end(), got.logits[i].begin() + ptrdiff_t(n) * k) &&
                   int(out[n][i].logits.size()) == k && out[n][i].label == got.decoded[n][i].label;
        }
    chk.expect(same, tag + ": load_device_model(Cuda, " + pname + ") session == the direct forward, bit for bit");
    std::remove(path.c_str());
}

void check_precisions_accepted() {
    for (Precision p : {Precision::Tf32, Precision::Fp16, Precision::Bf16}) {
        std::string m;
        try {
            require_precision(Device::Cuda, p);
        } catch (const Error& e) {
            m = e.what();
        }
        chk.expect(m.empty(), std::string("require_precision(cuda, ") + precision_name(p) + ") passes on a machine with a GPU " + m);
    }
}

}  // namespace

int main() {
    skip_without_gpu("test_cuda_model");
    try {
        check_model(test::make_config(BlockType::Basic, {2, 2, 2, 2}, 128, true), 1, "ResNet-18 Raschka pool");
        check_model(test::make_config(BlockType::Basic, {2, 2, 2, 2}, 128, true), 3, "ResNet-18 Raschka pool");
        check_model(test::make_config(BlockType::Bottleneck, {2, 1, 2, 1}, 96, false), 2, "bottleneck [2,1,2,1] adaptive pool");
        check_model(test::make_config(BlockType::Bottleneck, {3, 4, 23, 3}, 128, true), 8, "ResNet-101 Raschka layout", false);
        // Multi-head (gender softmax + CORAL age) ResNet-101 at 224 with torchvision's pool.
        check_model(test::make_config(BlockType::Bottleneck, {3, 4, 23, 3}, 224, false), 1, "ResNet-101 two heads 224", false);
        // Every depth (18/34/50/101/152) at 128 (Raschka CelebA layouts) and at 224 (torchvision).
        for (const char* preset : {"celeba-r18", "celeba-r34", "celeba-r50", "coral-afad", "flagship", "celeba-r152",
                                   "torchvision-r18", "torchvision-r34", "torchvision-r50", "torchvision-r101"})
            check_model(preset_config(preset), 2, preset, false);
        check_model(preset_config("torchvision-r152"), 1, "torchvision-r152", false);
        check_graph_and_threads();
        check_u8_input();
        check_predictor_device();
        check_precisions_accepted();
        for (Precision p : {Precision::Tf32, Precision::Fp16, Precision::Bf16}) {
            check_mma_model("celeba-r18", 8, p);  // ResNet-18, 128 px
            check_mma_model("flagship", 8, p);    // ResNet-101, 128 px, gender softmax + CORAL age
        }
        check_mma_model("celeba-r18", 4, Precision::Fp16, /*fold=*/false);  // unfused BatchNorm: filters unscaled
        check_mma_model("celeba-r18", 4, Precision::Bf16, /*fold=*/false);
    } catch (const std::exception& e) {
        std::printf("FAIL: exception: %s\n", e.what());
        return 1;
    }
    return chk.finish("test_cuda_model");
}
