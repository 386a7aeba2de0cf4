// tests/cuda/test_device_choice.cpp — the run-time device choice (io/load.hpp: LoadOptions::
// device, load_device_model, DeviceSession; predictor.hpp) in a program WITHOUT the CUDA
// backend: plain C++, no nvcc translation unit linked, runs everywhere (labels cuda;unit).
//
//  * Device::Cuda is refused with DeviceUnavailable naming what is missing (the backend is
//    not compiled into this program), by require_device, load_device_model and Predictor;
//    load_model refuses a CUDA LoadOptions; parse_device names the choices.
//  * The CPU session's submit/collect cycle: results in submission order, at most kDepth
//    batches in flight, collect() with nothing in flight and Predictor::run() with a batch
//    in flight throw; the results are bit for bit those of forward() + decode() on a
//    workspace of one's own (the CPU path the Predictor always ran).
//  * The precision plumbing with a stand-in CUDA backend (cuda_hooks() set by hand, a GPU
//    "present"): require_precision(cuda, tf32 / fp16 / bf16) passes, the CPU refuses them
//    naming the device that runs them, and load_device_model hands LoadOptions::precision
//    to the backend's loader (which passes it to the model, whose workspaces' CudaContext
//    then runs conv2d_tf32 / conv2d_mma_f32io: checked on a GPU by test_cuda_model.cu).
#include <softbio/io/synthetic.hpp>
#include <softbio/predictor.hpp>

#include <cstdio>
#include <string>
#include <vector>

#define DOCTEST_CONFIG_DISABLE  // tests/test_util.hpp's model configurations only
#include "../test_util.hpp"

using namespace softbio;

namespace {

int checks = 0, failures = 0;
void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) ++failures;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
}

/// The message of the exception f() throws as E ("" if none, "<other>" for another type).
template <class E, class F>
std::string thrown(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<other> ") + e.what();
    }
    return "";
}

bool same_heads(const std::vector<HeadOutput>& a, const std::vector<HeadOutput>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].label != b[i].label || a[i].logits != b[i].logits || a[i].probabilities != b[i].probabilities ||
            !(a[i].value == b[i].value || (a[i].value != a[i].value && b[i].value != b[i].value)))
            return false;
    return true;
}

LoadOptions seen_by_loader;
std::shared_ptr<const DeviceModel> stand_in_load(const std::string& path, const LoadOptions& opt) {
    seen_by_loader = opt;
    return as_device_model(load_model(path));
}
std::string stand_in_no_reason() { return ""; }

}  // namespace

int main() {
    const std::string path = test::temp_path("device_choice.safetensors");
    write_synthetic_model(path, test::make_config(BlockType::Basic, {1, 1, 1, 1}, 64, false));
    const std::string not_built = "device cuda: this program was built without softbio's CUDA backend";

    // ---- Device::Cuda without the CUDA backend ---------------------------------------------------
    expect(!cuda_compiled_in(), "cuda_compiled_in() is false without a .cu file");
    expect(parse_device("cpu") == Device::Cpu && parse_device("cuda") == Device::Cuda, "parse_device cpu/cuda");
    expect(thrown<Error>([] { parse_device("tpu"); }) == "unknown device \"tpu\": expected cpu or cuda",
           "parse_device names the choices");
    std::string m = thrown<DeviceUnavailable>([] { require_device(Device::Cuda); });
    expect(m.rfind(not_built, 0) == 0, "require_device(Cuda): " + m);
    expect(thrown<DeviceUnavailable>([] { require_device(Device::Cpu); }).empty(), "require_device(Cpu) passes");
    LoadOptions cuda_opt;
    cuda_opt.device = Device::Cuda;
    m = thrown<DeviceUnavailable>([&] { load_device_model(path, cuda_opt); });
    expect(m.rfind(not_built, 0) == 0, "load_device_model(Cuda): " + m);
    PredictorOptions popt;
    popt.load.device = Device::Cuda;
    m = thrown<DeviceUnavailable>([&] { Predictor p(path, popt); });
    expect(m.rfind(not_built, 0) == 0, "Predictor(Cuda): " + m);
    m = thrown<Error>([&] { load_model(path, cuda_opt); });
    expect(m.find("load_model loads a CPU model, but LoadOptions::device is cuda") == 0, "load_model(Cuda): " + m);

    // ---- the CPU session ----------------------------------------------------------------------------
    auto model = load_model(path);
    auto dm = load_device_model(path);
    expect(dm->device() == Device::Cpu && dm->device_description() == "cpu" && dm->cpu_model(), "CPU DeviceModel");
    const int max_batch = 3, image = 64 * 64 * 3;
    auto session = dm->make_session(max_batch, 2);
    const std::vector<std::vector<float>> batches = {test::random_vector(size_t(image) * 3, 1),
                                                     test::random_vector(size_t(image) * 2, 2),
                                                     test::random_vector(size_t(image) * 3, 3)};
    // References: forward + decode on a workspace of our own.
    std::vector<std::vector<std::vector<HeadOutput>>> ref;
    auto ws = model->make_workspace(max_batch, 0, 0, 2);
    for (const auto& b : batches) {
        const int n = int(b.size() / image);
        model->forward(b.data(), n, *ws);
        ref.emplace_back();
        model->decode(*ws, n, ref.back());
    }
    auto fill = [&](const std::vector<float>& b) {
        for (size_t i = 0; i < b.size() / image; ++i)
            std::copy(b.begin() + ptrdiff_t(i * image), b.begin() + ptrdiff_t((i + 1) * image), session->input_slot(int(i)));
    };
    std::vector<std::vector<HeadOutput>> out;
    expect(!thrown<Error>([&] { session->collect(out); }).empty(), "collect() with nothing in flight throws");
    fill(batches[0]);
    session->submit(3);
    fill(batches[1]);
    session->submit(2);
    expect(session->in_flight() == 2, "two batches in flight");
    fill(batches[2]);
    m = thrown<Error>([&] { session->submit(3); });
    expect(m.find("2 batches are in flight already") != std::string::npos, "a third submit() throws: " + m);
    bool order = true;
    for (int k = 0; k < 3; ++k) {
        if (k == 2) {
            fill(batches[2]);
            session->submit(3);
        }
        session->collect(out);
        order &= out.size() == ref[size_t(k)].size();
        for (size_t n = 0; n < out.size() && order; ++n) order &= same_heads(out[n], ref[size_t(k)][n]);
    }
    expect(order, "collect() returns the batches in submission order, bit for bit forward + decode");
    expect(session->in_flight() == 0, "nothing left in flight");
    m = thrown<ShapeError>([&] { session->input_slot(3); });
    expect(m == "input slot 3 outside 0..2", "input_slot out of range: " + m);

    // ---- Predictor on the CPU: run() refuses to mix with the pipelined cycle ---------------------
    PredictorOptions cpu_opt;
    cpu_opt.max_batch = 2;
    Predictor p(model, cpu_opt);
    expect(p.device() == Device::Cpu && &p.model() == model.get() && p.shared_model() == model, "Predictor on the CPU");
    RgbImage img;
    img.width = img.height = 64;
    img.pixels.assign(size_t(64) * 64 * 3, 128);
    p.set_input(img, 0);
    p.submit(1);
    std::vector<Prediction> preds;
    m = thrown<Error>([&] { p.run(1, preds); });
    expect(m.find("Predictor::run: 1 submitted batch(es) not collected yet") == 0, "run() with a batch in flight: " + m);
    p.collect(preds);
    const Prediction direct = p.predict(img);
    expect(preds.size() == 1 && same_heads(preds[0].heads, direct.heads), "submit/collect == predict()");

    // ---- precision, with a stand-in CUDA backend (as if cuda_model.hpp were compiled in and a GPU present) --
    cuda_hooks().load = &stand_in_load;
    cuda_hooks().why_unavailable = &stand_in_no_reason;
    for (Precision pr : {Precision::Tf32, Precision::Fp16, Precision::Bf16}) {
        expect(thrown<Error>([&] { require_precision(Device::Cuda, pr); }).empty(),
               std::string("require_precision(cuda, ") + precision_name(pr) + ") passes with the CUDA backend and a device");
        const bool cpu_runs_it = pr == Precision::Bf16 && cpu::bf16_gemm_available();  // the CPU's bf16 GEMM
        m = thrown<PrecisionUnavailable>([&] { require_precision(Device::Cpu, pr); });
        if (cpu_runs_it)
            expect(m.empty(), "require_precision(cpu, bf16) passes where the CPU has AVX512_BF16: " + m);
        else if (pr == Precision::Bf16)
            expect(m.find("precision bf16: the CPU backend's bf16 needs AVX512_BF16") == 0,
                   "require_precision(cpu, bf16) refused without AVX512_BF16: " + m);
        else
            expect(m.find(std::string("precision ") + precision_name(pr) +
                          ": the CPU backend computes in fp32 or bf16 (with AVX512_BF16); tf32 and fp16 run on the "
                          "tensor cores of a GPU (device cuda)") == 0,
                   std::string("require_precision(cpu, ") + precision_name(pr) + ") refused: " + m);
        LoadOptions opt;
        opt.device = Device::Cuda;
        opt.precision = pr;
        seen_by_loader = LoadOptions{};
        m = thrown<Error>([&] { load_device_model(path, opt); });
        expect(m.empty() && seen_by_loader.precision == pr && seen_by_loader.device == Device::Cuda,
               std::string("load_device_model(cuda, ") + precision_name(pr) + ") hands the precision to the CUDA loader " + m);
        opt.device = Device::Cpu;
        seen_by_loader = LoadOptions{};
        if (cpu_runs_it) continue;  // (test_gemm_bf16.cpp loads and runs it)
        m = thrown<PrecisionUnavailable>([&] { load_device_model(path, opt); });
        expect(!m.empty() && seen_by_loader.device == Device::Cpu,
               std::string("load_device_model(cpu, ") + precision_name(pr) + ") refused before loading: " + m);
    }
    cuda_hooks() = DeviceBackendHooks{};

    std::remove(path.c_str());
    std::printf("test_device_choice: %d checks, %d failed -> %s\n", checks, failures, failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
