// softbio-predict's face mode (the default with --no-detect absent): each photo through
// include/softbio/face/pipeline.hpp (detect, 68 landmarks, then age and gender with
// face-api's trained networks from data/models, or the --model files that declare their
// face crop), one output row per face:
//
//   table  image, face index, box (x y width height, pixels), detector score, then
//          gender and its probability and age (years), or each model head's answer
//   jsonl  {"image", "ok", "face", "box": {x, y, width, height}, "score", "gender",
//           "gender_probability", "age" | "trained", "heads": {...} (as without the
//           detector), "landmarks": [[x, y] x 68], "ms"}; a photo with no face:
//           {"image", "ok": true, "faces": 0}
//   csv    image,ok,face,x,y,width,height,score, gender,gender_probability,age | per head
//          <name>_label,<name>_score,<name>_value, ms, (trained,) error
//
// A photo without faces prints "no face found" and is not a failure; a photo that cannot
// be read is (exit status 1 at the end), and so is a face no model crop can be cut for.
// --annotate DIR writes each photo as DIR/<name>.png with the boxes, landmarks and labels
// drawn (face/annotate.hpp); --crops DIR each face's crop as each model gets it.
//
// Included by predict.cpp inside its anonymous namespace, after its output helpers
// (json_escape, table_safe, csv_escape, json_number, json_heads, csv_heads, cell,
// collect_inputs).

struct FaceModeOptions {
    std::string models_dir;    // the three face-api files
    std::string annotate_dir;  // empty: no annotated copies
    int input_size = 0;        // detector input (0: the model's, 416)
    double score_threshold = -1;
    std::vector<std::string> attribute_models;  // --model files with a face crop (empty: face-api's age/gender)
    std::string crops_dir;                      // empty: no crops written
};

// The default folder of the face-api models: $SOFTBIO_FACE_MODELS, else the data/models
// of the source tree this program was built from (or, installed, share/softbio/models).
std::string default_face_models() {
    if (const char* p = std::getenv("SOFTBIO_FACE_MODELS")) return p;
#ifdef SOFTBIO_DEFAULT_FACE_MODELS
    return SOFTBIO_DEFAULT_FACE_MODELS;
#else
    return "data/models";
#endif
}

// DIR/<file name without extension>.png, with -1, -2... when two inputs share a name.
std::string annotated_path(const std::string& dir, const std::string& image, std::map<std::string, int>& used) {
    std::string stem = fs::path(image).stem().string();
    if (stem.empty()) stem = "image";
    const int n = used[stem]++;
    return (fs::path(dir) / (n ? stem + "-" + std::to_string(n) : stem)).string() + ".png";
}

void write_png(const std::string& path, const softbio::RgbImage& img) {
    if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.pixels.data(), img.width * 3))
        throw softbio::Error(path + ": cannot write the annotated image");
}

class FacePrinter {
public:
    // `heads`: the output names of the --model heads (empty: face-api's age/gender).
    FacePrinter(const std::string& format, std::vector<std::string> heads, bool untrained)
        : format_(format), heads_(std::move(heads)), untrained_(untrained) {}

    void header() const {
        if (format_ == "table") {
            if (untrained_) std::printf("%s\n", Printer::banner());
            std::printf("%-32s %4s  %-23s %6s", "image", "face", "box (x y w h)", "score");
            if (heads_.empty()) std::printf("  %-14s %6s", "gender", "age");
            for (const auto& n : heads_) std::printf("  %-22s", n.c_str());
            std::printf(" %8s\n", "ms");
        } else if (format_ == "csv") {
            std::printf("image,ok,face,x,y,width,height,score");
            if (heads_.empty()) std::printf(",gender,gender_probability,age");
            for (const auto& n : heads_) std::printf(",%s_label,%s_score,%s_value", n.c_str(), n.c_str(), n.c_str());
            std::printf(",ms%s,error\n", heads_.empty() ? "" : ",trained");
        }
    }

    // One face; `heads` are the --model heads' answers for it, in heads_ order.
    void face(const std::string& image, size_t i, const softbio::face::FaceAnalysis& f,
              const std::vector<softbio::HeadOutput>& heads, double ms) const {
        const auto& b = f.detection.box;
        const char* gender = f.male() ? "male" : "female";
        if (format_ == "table") {
            char box[64], g[32];
            std::snprintf(box, sizeof box, "%.0f %.0f %.0f %.0f", b.x, b.y, b.width, b.height);
            std::printf("%-32s %4zu  %-23s %6.2f", table_safe(image).c_str(), i, box, f.detection.score);
            if (heads_.empty()) {
                std::snprintf(g, sizeof g, "%s %.2f", gender, double(f.gender_probability()));
                std::printf("  %-14s %6.1f", g, double(f.age));
            }
            for (const auto& h : heads) std::printf("  %-22s", cell(h).c_str());
            std::printf(" %8.1f\n", ms);
        } else if (format_ == "jsonl") {
            std::printf("{\"image\": \"%s\", \"ok\": true, \"face\": %zu, \"box\": {\"x\": %s, \"y\": %s, \"width\": %s, "
                        "\"height\": %s}, \"score\": %s, ",
                        json_escape(image).c_str(), i, json_number(b.x, "%.3f").c_str(), json_number(b.y, "%.3f").c_str(),
                        json_number(b.width, "%.3f").c_str(), json_number(b.height, "%.3f").c_str(),
                        json_number(f.detection.score, "%.5f").c_str());
            if (heads_.empty())
                std::printf("\"gender\": \"%s\", \"gender_probability\": %s, \"age\": %s, ", gender,
                            json_number(f.gender_probability(), "%.5f").c_str(), json_number(f.age, "%.3f").c_str());
            else
                std::printf("\"trained\": %s, \"heads\": %s, ", untrained_ ? "false" : "true",
                            json_heads(heads_, heads, false).c_str());
            std::printf("\"landmarks\": [");
            for (size_t k = 0; k < f.landmarks.size(); ++k)
                std::printf("%s[%s, %s]", k ? ", " : "", json_number(f.landmarks[k].x, "%.2f").c_str(),
                            json_number(f.landmarks[k].y, "%.2f").c_str());
            std::printf("], \"ms\": %s}\n", json_number(ms, "%.2f").c_str());
        } else {
            std::printf("%s,true,%zu,%.3f,%.3f,%.3f,%.3f,%.5f", csv_escape(image).c_str(), i, b.x, b.y, b.width, b.height,
                        f.detection.score);
            if (heads_.empty())
                std::printf(",%s,%.5f,%.3f,%.2f,\n", gender, double(f.gender_probability()), double(f.age), ms);
            else
                std::printf("%s,%.2f,%s,\n", csv_heads(heads_.size(), heads).c_str(), ms, untrained_ ? "false" : "true");
        }
    }

    void no_face(const std::string& image, double ms) const {
        if (format_ == "table")
            std::printf("%-32s %4s  no face found%44.1f\n", table_safe(image).c_str(), "-", ms);
        else if (format_ == "jsonl")
            std::printf("{\"image\": \"%s\", \"ok\": true, \"faces\": 0, \"ms\": %s}\n", json_escape(image).c_str(),
                        json_number(ms, "%.2f").c_str());
        else
            std::printf("%s,true,,,,,,%s,%.2f,%sno face found\n", csv_escape(image).c_str(), empty_attribute_cells().c_str(),
                        ms, heads_.empty() ? "" : ",");
    }

    // The image failed (`face` < 0), or one face of it did.
    void error(const std::string& image, const std::string& why, long face = -1) const {
        const std::string f = face >= 0 ? std::to_string(face) : "";
        if (format_ == "table")
            std::printf("%-32s %4s  ERROR: %s\n", table_safe(image).c_str(), face >= 0 ? f.c_str() : "-",
                        table_safe(why).c_str());
        else if (format_ == "jsonl")
            std::printf("{\"image\": \"%s\", \"ok\": false%s, \"error\": \"%s\"}\n", json_escape(image).c_str(),
                        face >= 0 ? (", \"face\": " + f).c_str() : "", json_escape(why).c_str());
        else
            std::printf("%s,false,%s,,,,,%s,,%s%s\n", csv_escape(image).c_str(), f.c_str(), empty_attribute_cells().c_str(),
                        heads_.empty() ? "" : ",", csv_escape(why).c_str());
    }

private:
    // The empty attribute cells of a CSV row, after "score" (gender, probability, age; or
    // three per head): one comma each.
    std::string empty_attribute_cells() const { return std::string(heads_.empty() ? 3 : 3 * heads_.size(), ','); }

    std::string format_;
    std::vector<std::string> heads_;
    bool untrained_ = false;
};

// Creates `dir` (for --annotate / --crops); false, with the message printed, when it cannot.
bool make_output_dir(const char* flag, const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
        std::fprintf(stderr, "softbio-predict: %s %s: cannot create the directory (%s)\n", flag, dir.c_str(),
                     ec ? ec.message().c_str() : "not a directory");
        return false;
    }
    return true;
}

// Runs the face pipeline on every input. Returns the exit status.
int run_face_mode(const Options& o, const FaceModeOptions& f) {
    std::unique_ptr<softbio::face::FacePipeline> pipeline;
    std::unique_ptr<softbio::face::FacePipeline::Workspace> ws;
    std::vector<std::string> head_names;  // of the --model heads, made unique as without the detector
    bool untrained = false;
    try {
        pipeline = std::make_unique<softbio::face::FacePipeline>(softbio::face::FacePipeline::load(f.models_dir));
        for (const auto& path : f.attribute_models) {
            auto model = softbio::load_model(path);
            untrained = untrained || !model->config().trained;
            for (const auto& h : model->config().heads) {
                const bool taken = std::find(head_names.begin(), head_names.end(), h.name) != head_names.end();
                head_names.push_back(taken ? h.name + "#" + std::to_string(pipeline->models().size() + 1) : h.name);
            }
            pipeline->add_model(std::move(model));
        }
        softbio::face::PipelineOptions popt;
        popt.detector_size = f.input_size;
        popt.score_threshold = f.score_threshold;
        popt.threads = o.threads;
        ws = pipeline->make_workspace(popt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-predict: %s\n", e.what());
        return 3;
    }
    if (!f.annotate_dir.empty() && !make_output_dir("--annotate", f.annotate_dir)) return 2;
    if (!f.crops_dir.empty() && !make_output_dir("--crops", f.crops_dir)) return 2;
    // Once per run: in the table's first line, else on stderr (rows carry "trained": false).
    if (untrained && o.format != "table") std::fprintf(stderr, "%s\n", Printer::banner());
    std::vector<std::pair<std::string, std::string>> missing;
    const std::vector<std::string> files = collect_inputs(o.inputs, missing);
    FacePrinter printer(o.format, head_names, untrained);
    printer.header();
    size_t failures = 0;
    for (const auto& [name, err] : missing) {
        printer.error(name, err);
        ++failures;
    }
    std::map<std::string, int> used_names, used_crop_names;
    softbio::RgbImage image, crop;
    std::vector<softbio::HeadOutput> heads;
    for (const std::string& file : files) {
        bool failed = false;  // one count per input, however many of its faces fail
        try {
            image = softbio::load_rgb_image(file);
            const auto t0 = Clock::now();
            const auto& faces = pipeline->analyze(image, *ws);
            const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            if (faces.empty()) printer.no_face(file, ms);
            for (size_t i = 0; i < faces.size(); ++i) {
                heads.clear();
                std::string face_error;
                for (const auto& p : faces[i].models) {
                    if (!p.ok() && face_error.empty()) face_error = p.error;
                    heads.insert(heads.end(), p.heads.begin(), p.heads.end());
                }
                if (face_error.empty()) {
                    printer.face(file, i, faces[i], heads, ms);
                } else {
                    printer.error(file, face_error, long(i));
                    failed = true;
                }
                for (size_t m = 0; m < faces[i].models.size() && !f.crops_dir.empty(); ++m) {
                    const std::string suffix = "-" + std::to_string(i) + (faces[i].models.size() > 1 ? "-m" + std::to_string(m) : "");
                    if (pipeline->face_crop(image, faces[i], m, crop))
                        write_png(annotated_path(f.crops_dir, fs::path(file).stem().string() + suffix + ".png", used_crop_names), crop);
                }
            }
            if (!f.annotate_dir.empty()) {
                softbio::face::annotate(image, faces);
                write_png(annotated_path(f.annotate_dir, file, used_names), image);
            }
        } catch (const std::exception& e) {
            printer.error(file, e.what());
            failed = true;
        }
        failures += failed ? 1 : 0;
        std::fflush(stdout);
    }
    if (failures) {
        std::fprintf(stderr, "softbio-predict: %zu of %zu inputs failed\n", failures, files.size() + missing.size());
        return 1;
    }
    return 0;
}
