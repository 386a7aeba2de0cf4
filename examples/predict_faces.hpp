// softbio-predict's face mode (the default without --model / --no-detect): each photo
// through include/softbio/face/pipeline.hpp (detect, 68 landmarks, age and gender with
// face-api's trained networks from data/models), one output row per face:
//
//   table  image, face index, box (x y width height, pixels), detector score,
//          gender and its probability, age (years)
//   jsonl  {"image", "ok", "face", "box": {x, y, width, height}, "score", "gender",
//           "gender_probability", "age", "landmarks": [[x, y] x 68], "ms"}; a photo with
//          no face: {"image", "ok": true, "faces": 0}
//   csv    image,ok,face,x,y,width,height,score,gender,gender_probability,age,ms,error
//
// A photo without faces prints "no face found" and is not a failure; a photo that cannot
// be read is (exit status 1 at the end). --annotate DIR writes each photo as
// DIR/<name>.png with the boxes, landmarks and labels drawn (face/annotate.hpp).
//
// Included by predict.cpp inside its anonymous namespace, after its output helpers
// (json_escape, table_safe, csv_escape, json_number, collect_inputs).

struct FaceModeOptions {
    std::string models_dir;    // the three face-api files
    std::string annotate_dir;  // empty: no annotated copies
    int input_size = 0;        // detector input (0: the model's, 416)
    double score_threshold = -1;
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
    explicit FacePrinter(const std::string& format) : format_(format) {}

    void header() const {
        if (format_ == "table")
            std::printf("%-32s %4s  %-23s %6s  %-14s %6s %8s\n", "image", "face", "box (x y w h)", "score", "gender", "age",
                        "ms");
        else if (format_ == "csv")
            std::printf("image,ok,face,x,y,width,height,score,gender,gender_probability,age,ms,error\n");
    }

    void face(const std::string& image, size_t i, const softbio::face::FaceAnalysis& f, double ms) const {
        const auto& b = f.detection.box;
        const char* gender = f.male() ? "male" : "female";
        if (format_ == "table") {
            char box[64], g[32];
            std::snprintf(box, sizeof box, "%.0f %.0f %.0f %.0f", b.x, b.y, b.width, b.height);
            std::snprintf(g, sizeof g, "%s %.2f", gender, double(f.gender_probability()));
            std::printf("%-32s %4zu  %-23s %6.2f  %-14s %6.1f %8.1f\n", table_safe(image).c_str(), i, box,
                        f.detection.score, g, double(f.age), ms);
        } else if (format_ == "jsonl") {
            std::printf("{\"image\": \"%s\", \"ok\": true, \"face\": %zu, \"box\": {\"x\": %s, \"y\": %s, \"width\": %s, "
                        "\"height\": %s}, \"score\": %s, \"gender\": \"%s\", \"gender_probability\": %s, \"age\": %s, "
                        "\"landmarks\": [",
                        json_escape(image).c_str(), i, json_number(b.x, "%.3f").c_str(), json_number(b.y, "%.3f").c_str(),
                        json_number(b.width, "%.3f").c_str(), json_number(b.height, "%.3f").c_str(),
                        json_number(f.detection.score, "%.5f").c_str(), gender,
                        json_number(f.gender_probability(), "%.5f").c_str(), json_number(f.age, "%.3f").c_str());
            for (size_t k = 0; k < f.landmarks.size(); ++k)
                std::printf("%s[%s, %s]", k ? ", " : "", json_number(f.landmarks[k].x, "%.2f").c_str(),
                            json_number(f.landmarks[k].y, "%.2f").c_str());
            std::printf("], \"ms\": %s}\n", json_number(ms, "%.2f").c_str());
        } else {
            std::printf("%s,true,%zu,%.3f,%.3f,%.3f,%.3f,%.5f,%s,%.5f,%.3f,%.2f,\n", csv_escape(image).c_str(), i, b.x, b.y,
                        b.width, b.height, f.detection.score, gender, double(f.gender_probability()), double(f.age), ms);
        }
    }

    void no_face(const std::string& image, double ms) const {
        if (format_ == "table")
            std::printf("%-32s %4s  no face found%44.1f\n", table_safe(image).c_str(), "-", ms);
        else if (format_ == "jsonl")
            std::printf("{\"image\": \"%s\", \"ok\": true, \"faces\": 0, \"ms\": %s}\n", json_escape(image).c_str(),
                        json_number(ms, "%.2f").c_str());
        else
            std::printf("%s,true,,,,,,,,,,%.2f,no face found\n", csv_escape(image).c_str(), ms);
    }

    void error(const std::string& image, const std::string& why) const {
        if (format_ == "table")
            std::printf("%-32s %4s  ERROR: %s\n", table_safe(image).c_str(), "-", table_safe(why).c_str());
        else if (format_ == "jsonl")
            std::printf("{\"image\": \"%s\", \"ok\": false, \"error\": \"%s\"}\n", json_escape(image).c_str(),
                        json_escape(why).c_str());
        else
            std::printf("%s,false,,,,,,,,,,,%s\n", csv_escape(image).c_str(), csv_escape(why).c_str());
    }

private:
    std::string format_;
};

// Runs the face pipeline on every input. Returns the exit status.
int run_face_mode(const Options& o, const FaceModeOptions& f) {
    std::unique_ptr<softbio::face::FacePipeline> pipeline;
    std::unique_ptr<softbio::face::FacePipeline::Workspace> ws;
    try {
        pipeline = std::make_unique<softbio::face::FacePipeline>(softbio::face::FacePipeline::load(f.models_dir));
        softbio::face::PipelineOptions popt;
        popt.detector_size = f.input_size;
        popt.score_threshold = f.score_threshold;
        popt.threads = o.threads;
        ws = pipeline->make_workspace(popt);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "softbio-predict: %s\n", e.what());
        return 3;
    }
    if (!f.annotate_dir.empty()) {
        std::error_code ec;
        fs::create_directories(f.annotate_dir, ec);
        if (ec || !fs::is_directory(f.annotate_dir)) {
            std::fprintf(stderr, "softbio-predict: --annotate %s: cannot create the directory (%s)\n", f.annotate_dir.c_str(),
                         ec ? ec.message().c_str() : "not a directory");
            return 2;
        }
    }
    std::vector<std::pair<std::string, std::string>> missing;
    const std::vector<std::string> files = collect_inputs(o.inputs, missing);
    FacePrinter printer(o.format);
    printer.header();
    size_t failures = 0;
    for (const auto& [name, err] : missing) {
        printer.error(name, err);
        ++failures;
    }
    std::map<std::string, int> used_names;
    softbio::RgbImage image;
    for (const std::string& file : files) {
        try {
            image = softbio::load_rgb_image(file);
            const auto t0 = Clock::now();
            const auto& faces = pipeline->analyze(image, *ws);
            const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            if (faces.empty()) printer.no_face(file, ms);
            for (size_t i = 0; i < faces.size(); ++i) printer.face(file, i, faces[i], ms);
            if (!f.annotate_dir.empty()) {
                softbio::face::annotate(image, faces);
                write_png(annotated_path(f.annotate_dir, file, used_names), image);
            }
        } catch (const std::exception& e) {
            printer.error(file, e.what());
            ++failures;
        }
        std::fflush(stdout);
    }
    if (failures) {
        std::fprintf(stderr, "softbio-predict: %zu of %zu inputs failed\n", failures, files.size() + missing.size());
        return 1;
    }
    return 0;
}
