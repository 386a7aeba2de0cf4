// softbio-predict — gender and age from photos, on the command line.
//
//   softbio-predict [options] IMAGE_OR_DIR...                 faces found and analysed
//   softbio-predict --model FILE... [options] IMAGE_OR_DIR...  your models
//
// By default each photo goes through the face pipeline (include/softbio/face/): face-api's
// trained detector, 68-landmark and age/gender networks (data/models), one row per face
// (predict_faces.hpp). A --model file that declares its face crop (metadata face_crop)
// runs on each detected face, cut as its training faces were, in place of face-api's
// age/gender network. A --model file without one (or any model with --no-detect) takes
// each image as an already cropped face; without --model that is the demo ResNet-101
// whose weights are UNTRAINED (generated deterministically by softbio-make-model and
// cached), which the output says once per run.
#include <softbio/io/dump.hpp>
#include <softbio/model/presets.hpp>
#include <softbio/io/synthetic.hpp>
#include <softbio/predictor.hpp>
#include <softbio/face/annotate.hpp>
#include <softbio/face/pipeline.hpp>
#include <softbio/kernels/cpu/peak.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

// --annotate writes PNG; stb_image_write is compiled here, privately.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if __has_include(<stb/stb_image_write.h>)
#include <stb/stb_image_write.h>
#else
#include <stb_image_write.h>
#endif

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: softbio-predict [options] IMAGE_OR_DIR...
       softbio-predict --model FILE... [options] IMAGE_OR_DIR...

Predicts gender and age from photos. By default every face in each photo is found and
analysed with face-api's trained networks (tiny face detector, 68 landmarks, age/gender;
data/models): one output row per face. --model adds your softbio model files (converted
ResNets, ...): on each detected face when the file declares its face crop, else on each
whole image taken as one already cropped face (always so with --no-detect).
Directories are walked recursively for .jpg .jpeg .png .bmp .tga .gif files.

options:
  --models DIR      the face pipeline's networks (default: $SOFTBIO_FACE_MODELS, else
                    this source tree's data/models)
  --annotate DIR    face pipeline: also write each photo as DIR/<name>.png with the
                    boxes, landmarks and labels drawn
  --input-size S    face pipeline: the detector's input side, a multiple of 32 (default
                    416; larger finds smaller faces, slower)
  --score-threshold T
                    face pipeline: keep detections scoring above T (default 0.5)
  --crops DIR       face pipeline with --model: also write each face's crop as each
                    model gets it (before its preprocessing) as DIR/<name>-<face>[-m<k>].png
  --no-detect       no face detection: each image is a face crop for --model (default
                    model: the untrained demo ResNet-101)
  --model FILE      a softbio model file (repeat for several models, e.g. one gender
                    and one age model; each uses its own preprocessing). A file that
                    declares how its faces were cut (metadata face_crop, e.g. CelebA's
                    alignment) runs on every face the detector finds, in place of
                    face-api's age/gender network; a file without one is given whole
                    images, as with --no-detect. Default (--no-detect): the untrained
                    demo model (ResNet-101, gender + CORAL age), generated into
                    $SOFTBIO_DEMO_MODEL or ~/.cache/softbio/ on first use
  --format F        table (default), jsonl or csv
  --probs           also print the age heads' cumulative probabilities P(age > k)
  --batch N         images per forward pass (default 8)
  --threads N       CPU threads (default: OMP_NUM_THREADS or all cores)
  --device D        cpu (default) or cuda: run the networks on the GPU (needs a
                    softbio-predict built with nvcc, and a CUDA device); images are
                    decoded and preprocessed on the CPU while the GPU computes
  --precision P     fp32 (default, the reference), or with --device cuda the tensor
                    cores, fp32 accumulation: tf32 (operands rounded to 10 bits),
                    fp16 or bf16 (filters stored in 16 bits, each conv's input
                    rounded to 16 bits); logits within 5e-3 (tf32, fp16) or 6e-2
                    (bf16) of their spread from fp32's. The CPU runs fp32, and bf16
                    where it has AVX512_BF16 (Zen 4+, Sapphire Rapids+): the same
                    rounding, about 1.5-2x faster
  --profile         print a per-layer table: time, GFLOP, GFLOP/s, % of this
                    machine's measured fp32 FMA peak (CPU; the bf16 peak with
                    --precision bf16), output shape (after one untimed warm-up pass)
  --dump DIR        write every layer's output for the first batch as DIR/<layer>.npy
                    (NCHW float32, comparable with PyTorch forward hooks)
  --no-progress     never show the progress bar
  -h, --help        this text

A photo in which no face is found prints "no face found" and is not a failure.
Exit status: 0 if every image was processed, 1 if any image failed, 2 on bad usage
(including a --device or --precision this build or this machine does not have), 3 if a model could
not be loaded.
)";

struct Options {
    std::vector<std::string> models, inputs;
    std::string format = "table", dump_dir, device = "cpu", precision = "fp32";
    bool probs = false, profile = false, progress = true, no_detect = false;
    std::string models_dir, annotate_dir, crops_dir;
    int input_size = 0;
    double score_threshold = -1;
    int batch = 8, threads = 0;
};

std::string default_demo_model() {
    if (const char* p = std::getenv("SOFTBIO_DEMO_MODEL")) return p;
    std::string base;
    if (const char* x = std::getenv("XDG_CACHE_HOME")) base = x;
    else if (const char* h = std::getenv("HOME")) base = std::string(h) + "/.cache";
    else base = "/tmp";
    return base + "/softbio/flagship-untrained-seed1.safetensors";
}

// The demo model is generated, not downloaded: same seed, same bytes, every machine.
std::string ensure_demo_model() {
    const std::string path = default_demo_model();
    if (fs::exists(path)) return path;
    fs::create_directories(fs::path(path).parent_path());
    std::fprintf(stderr, "softbio-predict: generating the untrained demo model at %s (once)\n", path.c_str());
    softbio::ModelConfig cfg = softbio::preset_config("flagship");
    cfg.source = "softbio-make-model --preset flagship --seed 1 (UNTRAINED random weights)";
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    softbio::write_synthetic_model(tmp, cfg, {});
    fs::rename(tmp, path);
    return path;
}

bool is_image_name(const fs::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    for (const char* e : {".jpg", ".jpeg", ".png", ".bmp", ".tga", ".gif"})
        if (ext == e) return true;
    return false;
}

std::vector<std::string> collect_inputs(const std::vector<std::string>& args, std::vector<std::pair<std::string, std::string>>& errors) {
    std::vector<std::string> files;
    for (const auto& a : args) {
        std::error_code ec;
        const fs::file_status st = fs::status(a, ec);
        if (fs::is_directory(st)) {
            std::vector<std::string> found;
            for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
                 it != fs::recursive_directory_iterator(); it.increment(ec)) {
                if (ec) break;
                if (it->is_regular_file(ec) && is_image_name(it->path())) found.push_back(it->path().string());
            }
            if (found.empty())
                errors.push_back({a, a + ": no image files (.jpg .jpeg .png .bmp .tga .gif) in this directory"});
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::exists(st)) {
            files.push_back(a);  // named explicitly: try it whatever its extension (the decoder says what it is)
        } else {
            // ENOENT, ELOOP (a loop of symbolic links), EACCES...: say which.
            errors.push_back({a, a + ": " + (ec ? ec.message() : std::string("no such file or directory"))});
        }
    }
    return files;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid.
size_t utf8_sequence(const std::string& s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 0;
    return n;
}

// A JSON string body. File names are bytes, not always UTF-8: a byte that is not part
// of valid UTF-8 is written as \udcXX (Python's "surrogateescape": json.loads then
// os.fsencode give back the original bytes), so every line stays valid JSON.
std::string json_escape(const std::string& s) {
    std::string o;
    char buf[8];
    for (size_t i = 0; i < s.size();) {
        const char c = s[i];
        const size_t n = utf8_sequence(s, i);
        if (n == 0) {
            std::snprintf(buf, sizeof buf, "\\udc%02x", static_cast<unsigned char>(c));
            o += buf, ++i;
        } else if (c == '"' || c == '\\') {
            o += '\\', o += c, ++i;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            o += buf, ++i;
        } else {
            o.append(s, i, n), i += n;
        }
    }
    return o;
}

// A file name on one line of the table: control characters (a newline would split the
// row) written as \n, \t or \xNN.
std::string table_safe(const std::string& s) {
    std::string o;
    for (char c : s) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (c == '\n') o += "\\n";
        else if (c == '\t') o += "\\t";
        else if (u < 0x20 || u == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            o += buf;
        } else o += c;
    }
    return o;
}

// A number for JSON: non-finite values have no JSON spelling; they are null.
std::string json_number(double v, const char* f = "%.6g") {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string csv_escape(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// One image's outcome across all models.
struct Row {
    std::string image, error;
    double ms = 0;
    std::vector<softbio::HeadOutput> heads;
};

// Human-readable cell for a head.
std::string cell(const softbio::HeadOutput& h) {
    if (h.type == softbio::HeadType::Softmax) {
        std::string s = (h.class_name.empty() ? std::to_string(h.label) : h.class_name) + " " + fmt("%.3f", h.confidence());
        if (h.has_value) s += " (" + fmt("%g", h.value) + ")";
        return s;
    }
    if (h.type == softbio::HeadType::Logits) return "class " + std::to_string(h.label);
    return fmt("%g", h.value) + " (rank " + std::to_string(h.label) + ")";
}

// The "heads" object of a JSON line: {"<name>": {"type", "label", "class", "probability",
// "value", "logits", "probabilities" | "cumulative_probabilities"}, ...}.
std::string json_heads(const std::vector<std::string>& names, const std::vector<softbio::HeadOutput>& heads, bool probs) {
    std::string o = "{";
    for (size_t i = 0; i < heads.size(); ++i) {
        const auto& h = heads[i];
        o += (i ? ", \"" : "\"") + json_escape(i < names.size() ? names[i] : h.name) + "\": {\"type\": \"" +
             softbio::head_type_name(h.type) + "\", \"label\": " + std::to_string(h.label);
        if (!h.class_name.empty()) o += ", \"class\": \"" + json_escape(h.class_name) + "\"";
        if (h.type == softbio::HeadType::Softmax) o += ", \"probability\": " + json_number(h.confidence(), "%.6f");
        if (h.has_value) o += ", \"value\": " + json_number(h.value, "%g");
        o += ", \"logits\": [";
        for (size_t k = 0; k < h.logits.size(); ++k) o += (k ? ", " : "") + json_number(h.logits[k]);
        o += "]";
        if (probs || h.type == softbio::HeadType::Softmax) {
            o += std::string(", \"") + (h.type == softbio::HeadType::Softmax ? "probabilities" : "cumulative_probabilities") +
                 "\": [";
            for (size_t k = 0; k < h.probabilities.size(); ++k) o += (k ? ", " : "") + json_number(h.probabilities[k]);
            o += "]";
        }
        o += "}";
    }
    return o + "}";
}

// The CSV cells of the heads: label,score,value per head name (empty where a head is missing).
std::string csv_heads(size_t names, const std::vector<softbio::HeadOutput>& heads) {
    std::string o;
    for (size_t i = 0; i < names; ++i) {
        if (i < heads.size()) {
            const auto& h = heads[i];
            const std::string label = h.class_name.empty() ? std::to_string(h.label) : h.class_name;
            o += "," + csv_escape(label) + "," + (h.type == softbio::HeadType::Softmax ? fmt("%.6f", h.confidence()) : "") +
                 "," + (h.has_value ? fmt("%g", h.value) : "");
        } else {
            o += ",,,";
        }
    }
    return o;
}

class Printer {
public:
    Printer(const Options& o, std::vector<std::string> head_names, bool untrained)
        : o_(o), names_(std::move(head_names)), untrained_(untrained) {}

    void header() {
        if (o_.format == "table") {
            if (untrained_) std::printf("%s\n", banner());
            std::printf("%-40s", "image");
            for (const auto& n : names_) std::printf("  %-22s", n.c_str());
            std::printf("  %8s\n", "ms");
        } else if (o_.format == "csv") {
            std::printf("image,ok,ms");
            for (const auto& n : names_) std::printf(",%s_label,%s_score,%s_value", n.c_str(), n.c_str(), n.c_str());
            if (o_.probs) for (const auto& n : names_) std::printf(",%s_probabilities", n.c_str());
            std::printf(",trained,error\n");
        }
    }

    void row(const Row& r) {
        if (o_.format == "table") table_row(r);
        else if (o_.format == "jsonl") json_row(r);
        else csv_row(r);
        std::fflush(stdout);
    }

    void footer() {}

    static const char* banner() {
        return "*** UNTRAINED WEIGHTS: these outputs are NOT predictions of gender or age. The model's weights were "
               "generated, not learned (no trained checkpoint is bundled). Convert a trained checkpoint with "
               "weights_converter/convert.py and pass it with --model. ***";
    }

private:
    void table_row(const Row& r) {
        std::printf("%-40s", table_safe(r.image).c_str());
        if (!r.error.empty()) {
            std::printf("  ERROR: %s\n", table_safe(r.error).c_str());
            return;
        }
        for (const auto& h : r.heads) std::printf("  %-22s", cell(h).c_str());
        std::printf("  %8.1f\n", r.ms);
        if (o_.probs)
            for (const auto& h : r.heads)
                if (h.type != softbio::HeadType::Softmax && h.type != softbio::HeadType::Logits) {
                    std::printf("    %s P(y > k):", h.name.c_str());
                    for (float p : h.probabilities) std::printf(" %.3f", p);
                    std::printf("\n");
                }
    }

    void json_row(const Row& r) {
        std::printf("{\"image\": \"%s\", \"ok\": %s", json_escape(r.image).c_str(), r.error.empty() ? "true" : "false");
        if (!r.error.empty()) {
            std::printf(", \"error\": \"%s\"}\n", json_escape(r.error).c_str());
            return;
        }
        std::printf(", \"ms\": %s, \"trained\": %s, \"heads\": %s}\n", json_number(r.ms, "%.2f").c_str(),
                    untrained_ ? "false" : "true", json_heads(names_, r.heads, o_.probs).c_str());
    }

    void csv_row(const Row& r) {
        std::printf("%s,%s,", csv_escape(r.image).c_str(), r.error.empty() ? "true" : "false");
        if (r.error.empty()) std::printf("%.2f", r.ms);
        std::printf("%s", csv_heads(names_.size(), r.heads).c_str());
        if (o_.probs)
            for (size_t i = 0; i < names_.size(); ++i) {
                std::string ps;
                if (i < r.heads.size())
                    for (float p : r.heads[i].probabilities) ps += (ps.empty() ? "" : " ") + fmt("%.4f", p);
                std::printf(",%s", ps.c_str());
            }
        std::printf(",%s,%s\n", untrained_ ? "false" : "true", csv_escape(r.error).c_str());
    }

    const Options& o_;
    std::vector<std::string> names_;
    bool untrained_;
};

// Accumulates per-layer time and work for --profile. `peak` (print) is the measured fp32
// FMA peak for the threads in use (kernels/cpu/peak.hpp); none on a GPU, where the
// "% peak" column shows "-".
struct Profile {
    struct Entry {
        double seconds = 0, macs = 0;
        softbio::Shape shape;
        int calls = 0;
    };
    std::vector<std::string> order;
    std::map<std::string, Entry> entries;
    void add(const softbio::LayerEvent& e) {
        if (std::strcmp(e.kind, "stage") == 0 || std::strcmp(e.kind, "block") == 0) return;  // their convs are listed
        auto [it, inserted] = entries.try_emplace(e.name);
        if (inserted) order.push_back(e.name);
        it->second.seconds += e.seconds;
        it->second.macs += e.macs;
        it->second.shape = e.output.shape;
        it->second.calls++;
    }
    void print(const std::string& model, const softbio::cpu::Peak& peak) const {
        const double peak_gflops = peak.gflops;
        double total_s = 0, total_macs = 0;
        for (const auto& [n, e] : entries) total_s += e.seconds, total_macs += e.macs;
        std::printf("\nprofile of %s (summed over %d forward passes)\n", model.c_str(),
                    entries.empty() ? 0 : entries.begin()->second.calls);
        if (peak_gflops > 0)
            std::printf("%s peak measured on this machine, %d thread%s: %.1f GFLOP/s (%s)\n",
                        std::strcmp(peak.isa, "avx512_bf16") == 0 ? "bf16 dot-product" : "fp32 FMA", peak.threads,
                        peak.threads == 1 ? "" : "s", peak_gflops, peak.isa);
        std::printf("%-22s %10s %8s %9s %10s %7s  %s\n", "layer", "ms", "% time", "GFLOP", "GFLOP/s", "% peak",
                    "output [N,H,W,C]");
        auto pct = [&](double macs, double s) {  // "% peak" cell
            char cell[16] = "      -";
            if (peak_gflops > 0 && macs > 0 && s > 0) std::snprintf(cell, sizeof cell, "%6.1f%%", 100 * 2 * macs / 1e9 / s / peak_gflops);
            return std::string(cell);
        };
        for (const auto& n : order) {
            const Entry& e = entries.at(n);
            std::printf("%-22s %10.3f %7.1f%% %9.3f %10.1f %7s  %s\n", n.c_str(), e.seconds * 1e3, 100 * e.seconds / total_s,
                        2 * e.macs / 1e9, e.seconds > 0 ? 2 * e.macs / 1e9 / e.seconds : 0.0,
                        pct(e.macs, e.seconds).c_str(), e.shape.str().c_str());
        }
        std::printf("%-22s %10.3f %7.1f%% %9.3f %10.1f %7s\n", "total", total_s * 1e3, 100.0, 2 * total_macs / 1e9,
                    total_s > 0 ? 2 * total_macs / 1e9 / total_s : 0.0, pct(total_macs, total_s).c_str());
    }
};

// Images per forward pass at most (each slot holds one preprocessed image per model).
constexpr int kMaxBatch = 1024;

int parse_int(const std::string& flag, const std::string& v, int lo, int hi) {
    try {
        size_t used = 0;
        int x = std::stoi(v, &used);
        if (used == v.size() && x >= lo && x <= hi) return x;
    } catch (...) {
    }
    std::fprintf(stderr, "softbio-predict: %s expects an integer in %d..%d, got \"%s\"\n", flag.c_str(), lo, hi, v.c_str());
    std::exit(2);
}

double parse_probability(const std::string& flag, const std::string& v) {
    try {
        size_t used = 0;
        const double x = std::stod(v, &used);
        if (used == v.size() && x >= 0 && x < 1) return x;
    } catch (...) {
    }
    std::fprintf(stderr, "softbio-predict: %s expects a number from 0 up to (not including) 1, got \"%s\"\n", flag.c_str(),
                 v.c_str());
    std::exit(2);
}

#include "predict_faces.hpp"

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "softbio-predict: %s needs a value\n%s", a.c_str(), kUsage);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "-h" || a == "--help") { std::printf("%s", kUsage); return 0; }
        else if (a == "--model") o.models.push_back(value());
        else if (a == "--format") o.format = value();
        else if (a == "--probs") o.probs = true;
        else if (a == "--batch") o.batch = parse_int(a, value(), 1, kMaxBatch);
        else if (a == "--threads") o.threads = parse_int(a, value(), 1, softbio::kMaxThreads);
        else if (a == "--device") o.device = value();
        else if (a == "--precision") o.precision = value();
        else if (a == "--profile") o.profile = true;
        else if (a == "--dump") o.dump_dir = value();
        else if (a == "--no-progress") o.progress = false;
        else if (a == "--no-detect") o.no_detect = true;
        else if (a == "--models") o.models_dir = value();
        else if (a == "--annotate") o.annotate_dir = value();
        else if (a == "--crops") o.crops_dir = value();
        else if (a == "--input-size") {
            o.input_size = parse_int(a, value(), 32, 4096);
            if (o.input_size % 32) {
                std::fprintf(stderr, "softbio-predict: --input-size expects a multiple of 32 (the detector's stride), got %d\n",
                             o.input_size);
                return 2;
            }
        }
        else if (a == "--score-threshold") o.score_threshold = parse_probability(a, value());
        else if (!a.empty() && a[0] == '-') { std::fprintf(stderr, "softbio-predict: unknown option %s\n%s", a.c_str(), kUsage); return 2; }
        else o.inputs.push_back(a);
    }
    if (o.format != "table" && o.format != "jsonl" && o.format != "csv") {
        std::fprintf(stderr, "softbio-predict: --format must be table, jsonl or csv, got \"%s\"\n", o.format.c_str());
        return 2;
    }
    softbio::Device device = softbio::Device::Cpu;
    if (o.device != "cpu" && o.device != "cuda") {
        std::fprintf(stderr, "softbio-predict: --device must be cpu or cuda, got \"%s\"\n", o.device.c_str());
        return 2;
    }
    if (o.device == "cuda") {
        device = softbio::Device::Cuda;
        try {
            softbio::require_device(device);
        } catch (const softbio::DeviceUnavailable& e) {
            std::fprintf(stderr, "softbio-predict: --%s; use --device cpu\n", e.what());  // what(): "device cuda: ..."
            return 2;
        }
    }
    softbio::Precision precision = softbio::Precision::Fp32;
    try {
        precision = softbio::parse_precision(o.precision);
        softbio::require_precision(device, precision);
    } catch (const softbio::Error& e) {
        std::fprintf(stderr, "softbio-predict: %s; use --precision fp32\n", e.what());
        return 2;
    }
    if (o.inputs.empty()) { std::fprintf(stderr, "softbio-predict: no images given\n%s", kUsage); return 2; }
    if (o.threads) softbio::set_num_threads(o.threads);

    // --model files that declare how their faces were cut (metadata face_crop) run on the
    // faces the detector finds; files that do not are given whole images, as with
    // --no-detect. A mix of the two is refused: one run, one meaning of "image".
    bool models_on_faces = false;
    std::string no_crop_model;
    if (!o.models.empty() && !o.no_detect) {
        size_t with_crop = 0;
        try {
            for (const auto& m : o.models) {
                if (softbio::open_model_file(m).config().face_crop) ++with_crop;
                else if (no_crop_model.empty()) no_crop_model = m;
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "softbio-predict: %s\n", e.what());
            return 3;
        }
        if (with_crop && !no_crop_model.empty()) {
            std::fprintf(stderr, "softbio-predict: %s declares no face crop (metadata face_crop) but other --model files "
                                 "do: either every model runs on the detected faces (each declares its crop; "
                                 "weights_converter --face-crop) or every model takes whole images (--no-detect)\n",
                         no_crop_model.c_str());
            return 2;
        }
        models_on_faces = with_crop > 0;
    }
    const bool face_mode = (o.models.empty() && !o.no_detect) || models_on_faces;
    const char* face_only = !o.models_dir.empty() ? "--models" : !o.annotate_dir.empty() ? "--annotate"
                            : !o.crops_dir.empty() ? "--crops" : o.input_size ? "--input-size"
                            : o.score_threshold >= 0 ? "--score-threshold" : nullptr;
    if (!face_mode && face_only) {
        if (o.no_detect)
            std::fprintf(stderr, "softbio-predict: %s belongs to the face pipeline, which --no-detect turns off\n", face_only);
        else
            std::fprintf(stderr, "softbio-predict: %s belongs to the face pipeline; %s declares no face crop (metadata "
                                 "face_crop), so it takes whole images, not detected faces\n", face_only,
                         no_crop_model.c_str());
        return 2;
    }
    if (!o.crops_dir.empty() && !models_on_faces) {
        std::fprintf(stderr, "softbio-predict: --crops writes the face crops of --model files that declare one; "
                             "face-api's own networks cut theirs internally\n");
        return 2;
    }
    if (face_mode) {
        const char* model_only = o.device != "cpu" ? "--device cuda" : precision != softbio::Precision::Fp32 ? "--precision"
                                 : o.profile ? "--profile" : !o.dump_dir.empty() ? "--dump" : o.probs ? "--probs" : nullptr;
        if (model_only) {
            std::fprintf(stderr, "softbio-predict: %s applies to models given whole images (--no-detect, or --model "
                                 "files without a face crop); the face pipeline runs on the CPU in fp32 and has no such "
                                 "option\n", model_only);
            return 2;
        }
        FaceModeOptions f;
        f.models_dir = o.models_dir.empty() ? default_face_models() : o.models_dir;
        f.annotate_dir = o.annotate_dir;
        f.input_size = o.input_size;
        f.score_threshold = o.score_threshold;
        f.crops_dir = o.crops_dir;
        if (models_on_faces) f.attribute_models = o.models;
        return run_face_mode(o, f);
    }

    std::vector<std::pair<std::string, std::string>> missing;
    const std::vector<std::string> files = collect_inputs(o.inputs, missing);

    std::vector<std::unique_ptr<softbio::Predictor>> predictors;
    bool untrained = false;
    std::vector<std::string> head_names;
    try {
        if (o.models.empty()) o.models.push_back(ensure_demo_model());
        softbio::PredictorOptions popt;
        // The workspace holds one batch of activations: no larger than the images given
        // (one photo with the default --batch 8 would hold 8 images' worth, ~100 MiB for
        // ResNet-101 at 224x224, for nothing).
        popt.max_batch = int(std::clamp<size_t>(files.size(), 1, size_t(o.batch)));
        popt.load.device = device;
        popt.load.precision = precision;
        for (const auto& m : o.models) {
            predictors.push_back(std::make_unique<softbio::Predictor>(m, popt));
            untrained = untrained || !predictors.back()->trained();
            // Output keys are unique: a head name already used by an earlier model gets
            // "#<model number>" (two age models: "age" and "age#2").
            for (const auto& h : predictors.back()->config().heads) {
                const bool taken = std::find(head_names.begin(), head_names.end(), h.name) != head_names.end();
                head_names.push_back(taken ? h.name + "#" + std::to_string(predictors.size()) : h.name);
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-predict: %s\n", e.what());
        return 3;
    }
    // Once per run: in the table's first line, else on stderr (jsonl and csv rows also
    // carry "trained": false).
    if (untrained && o.format != "table") std::fprintf(stderr, "%s\n", Printer::banner());

    Printer printer(o, head_names, untrained);
    printer.header();
    size_t failures = 0;
    for (const auto& [name, err] : missing) {
        printer.row(Row{name, err, 0, {}});
        ++failures;
    }

    const bool show_progress = o.progress && files.size() > 4 && ::isatty(STDERR_FILENO);
    std::vector<Profile> profiles(predictors.size());
    const auto start = Clock::now();
    size_t done = 0;
    bool dumped = false;
    std::vector<softbio::Prediction> preds;

    // One batch of images on its way through the models. Batches are pipelined: batch
    // b+1 is decoded, preprocessed and submitted before batch b's results are collected,
    // so on a GPU its upload and the CPU's decoding overlap batch b's forward pass (on
    // the CPU, submit() computes at once and nothing changes but the order of the work).
    struct Batch {
        std::vector<Row> rows;
        std::vector<size_t> ok_rows;   // row of each filled slot
        std::vector<char> submitted;   // per model: its results are to be collected
        double seconds = 0;            // time spent on this batch (decode, submit, collect)
        size_t end = 0;                // one past its last file
    };
    // Decode and preprocess one image at a time into the next batch slot of every model,
    // then drop its pixels: one decoded image in memory, whatever the batch. An image
    // that fails (decoding, or a model's preprocessing) is reported and its slot reused.
    auto prepare = [&](size_t b0) {
        const auto t0 = Clock::now();
        Batch batch;
        batch.end = std::min(files.size(), b0 + size_t(o.batch));
        batch.submitted.assign(predictors.size(), 0);
        for (size_t i = b0; i < batch.end; ++i) {
            batch.rows.push_back(Row{files[i], "", 0, {}});
            try {
                const softbio::RgbImage image = softbio::load_rgb_image(files[i]);
                for (auto& p : predictors) p->set_input(image, int(batch.ok_rows.size()));
                batch.ok_rows.push_back(batch.rows.size() - 1);
            } catch (const std::exception& e) {
                batch.rows.back().error = e.what();
            }
        }
        batch.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
        return batch;
    };
    auto fail_batch = [](Batch& batch, const std::string& why) {  // the whole batch failed in one model
        for (size_t k : batch.ok_rows)
            if (batch.rows[k].error.empty()) batch.rows[k].error = why;
    };
    auto submit = [&](Batch& batch, bool first) {
        const auto t0 = Clock::now();
        const int filled = int(batch.ok_rows.size());
        if (filled > 0) {
            for (size_t m = 0; m < predictors.size(); ++m) {
                auto& p = *predictors[m];
                softbio::LayerObserver obs = [&](const softbio::LayerEvent& e) {
                    if (o.profile) profiles[m].add(e);
                    if (!o.dump_dir.empty() && !dumped) {
                        const std::string prefix = predictors.size() > 1 ? "model" + std::to_string(m) + "." : "";
                        softbio::write_npy_nchw(o.dump_dir + "/" + prefix + e.name + ".npy", e);
                    }
                };
                if (!o.dump_dir.empty() && !dumped) fs::create_directories(o.dump_dir);
                const bool observe = o.profile || (!o.dump_dir.empty() && !dumped);
                // A process's first pass pays page faults on weights and workspace;
                // --profile shows steady state, so it runs one untimed pass first.
                try {
                    if (o.profile && first) p.run(filled, preds, nullptr);
                    p.submit(filled, observe ? &obs : nullptr);
                    batch.submitted[m] = 1;
                } catch (const std::exception& e) {
                    fail_batch(batch, e.what());
                }
            }
            dumped = true;
        }
        batch.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    };
    auto finish = [&](Batch& batch) {
        const auto t0 = Clock::now();
        for (size_t m = 0; m < predictors.size(); ++m) {
            if (!batch.submitted[m]) continue;
            try {
                predictors[m]->collect(preds);
            } catch (const std::exception& e) {
                fail_batch(batch, e.what());
                continue;
            }
            for (size_t k = 0; k < batch.ok_rows.size(); ++k) {
                Row& r = batch.rows[batch.ok_rows[k]];
                if (!preds[k].ok() && r.error.empty()) r.error = preds[k].error;  // e.g. non-finite logits
                for (auto& h : preds[k].heads) r.heads.push_back(h);
            }
        }
        batch.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
        const double ms = batch.seconds * 1e3 / double(batch.rows.size());
        for (auto& r : batch.rows) {
            r.ms = ms;
            if (!r.error.empty()) ++failures;
            printer.row(r);
        }
        done = batch.end;
        if (show_progress) {
            const double s = std::chrono::duration<double>(Clock::now() - start).count();
            const int width = 30, filled = int(width * done / files.size());
            std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.1f images/s ", std::string(size_t(filled), '#').c_str(),
                         std::string(size_t(width - filled), '.').c_str(), done, files.size(), double(done) / s);
        }
    };
    std::vector<Batch> pending;  // submitted, not yet collected: at most one
    for (size_t b0 = 0; b0 < files.size(); b0 += size_t(o.batch)) {
        Batch batch = prepare(b0);
        submit(batch, b0 == 0);
        if (!pending.empty()) {
            finish(pending.front());
            pending.clear();
        }
        pending.push_back(std::move(batch));
    }
    for (auto& batch : pending) finish(batch);
    if (show_progress) std::fprintf(stderr, "\n");
    printer.footer();
    if (o.profile) {
        // The roof for "% peak": measured once, after the timed passes, for the threads in use.
        const softbio::cpu::Peak peak =
            device != softbio::Device::Cpu             ? softbio::cpu::Peak{}
            : precision == softbio::Precision::Bf16 ? softbio::cpu::bf16_peak(softbio::num_threads())
                                                    : softbio::cpu::fma_peak(softbio::num_threads());
        for (size_t m = 0; m < predictors.size(); ++m) profiles[m].print(o.models[m], peak);
    }
    if (!o.dump_dir.empty()) std::fprintf(stderr, "softbio-predict: layer outputs of the first batch written to %s\n", o.dump_dir.c_str());
    if (failures) {
        std::fprintf(stderr, "softbio-predict: %zu of %zu inputs failed\n", failures, files.size() + missing.size());
        return 1;
    }
    return 0;
}
