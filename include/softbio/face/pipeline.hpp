// softbio/face/pipeline.hpp — a photo in, its faces out: face-api's detect -> landmarks
// -> age/gender chain on softbio's own layers (docs/FACE_MODELS.md §3-§6).
//
//   1. detect: the image padded right/bottom to a square, resized to S x S (416; any
//      multiple of 32), through the tiny face detector; its grid decoded into boxes
//      (face/detections.hpp: scores > threshold, greedy NMS).
//   2. per face, landmarks: the detection box cut from the image (clipped, floored),
//      padded to a centred square, resized to 112 x 112; 68 points mapped back to the
//      image (face/crops.hpp).
//   3. per face, age and gender: the landmarks' bounding box widened by 20% (the
//      "aligned rect") cut the same way, through the age/gender network: age in years (a
//      regression) and softmax(P(male), P(female)).
// Every crop goes through the network's own preprocessing chain from its file (to_float,
// pad_to_square, tf_bilinear resize, normalize), so the pixels each network sees are the
// original's, bit for bit.
//
// Your own models (e.g. converted ResNets) replace step 3 with add_model(): a model file
// that declares its "face_crop" (docs/FORMAT.md 2.7: CelebA's eye-and-mouth similarity
// alignment, coral-cnn's box crops, ...) gets, for each face, a crop cut from the photo
// the way its training faces were cut (face/align.hpp: an affine map fitted to the
// landmarks or the box), then its own preprocessing chain and its heads
// (FaceAnalysis::models, in the order added). face-api's age/gender network then does not
// run.
//
//     auto faces = softbio::face::FacePipeline::load("data/models");
//     auto ws = faces.make_workspace();              // one per calling thread
//     for (const auto& f : faces.analyze(image, *ws))
//         std::printf("%s %.2f, age %.1f\n", f.male() ? "male" : "female", f.gender_probability(), f.age);
//
// Threads: the detector splits each layer across PipelineOptions::threads; the faces are
// then shared among the same threads, each analysing whole faces with single-threaded
// networks (small layers split badly: one barrier per layer for a few microseconds of
// work). Results do not depend on the thread count.
//
// The networks are loaded once and shared read-only; a Workspace holds everything one
// call needs (network buffers per thread, the decoding scratch, the results), so a warm
// workspace does not allocate for images and face counts it has already seen. A face
// whose detection box or aligned rect lies wholly outside the image is dropped (face-api
// drops its crop too, and then pairs later results with the wrong faces; softbio keeps
// every result with its own face).
#pragma once

#include <algorithm>
#include <array>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "softbio/face/align.hpp"
#include "softbio/face/crops.hpp"
#include "softbio/face/detections.hpp"
#include "softbio/image/decode.hpp"
#include "softbio/image/preprocess.hpp"
#include "softbio/io/load_face.hpp"
#include "softbio/predictor.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace softbio::face {

/// One face found in a photo, with what the networks say about it.
struct FaceAnalysis {
    Detection detection;              // box in image pixels and the detector's score
    std::array<Point, 68> landmarks;  // the 68 points, image pixels
    Box aligned_rect;                 // the region the age/gender network saw
    // face-api's age/gender network (when no model was added with add_model()):
    bool has_age_gender = false;
    float age = 0;                    // years: the model's estimate
    float male_probability = 0;       // softmax output P(male); P(female) = 1 - this
    // The models added with add_model(), in that order: their heads for this face (check
    // Prediction::ok(): a face whose landmarks give no usable crop has an error instead).
    std::vector<Prediction> models;
    bool male() const { return male_probability > 0.5f; }
    /// The probability of the label male() gives (face-api's genderProbability).
    float gender_probability() const { return male() ? male_probability : 1.0f - male_probability; }
};

/// Choices per workspace.
struct PipelineOptions {
    int detector_size = 0;         // S, a multiple of 32 (0: the detector's own, 416)
    double score_threshold = -1;   // keep boxes scoring above this (< 0: the detector's own, 0.5)
    int threads = 0;               // OpenMP threads per network call (0: the default)
};

/// The most threads that analyse faces side by side (PipelineOptions::threads above this
/// still split the detector's layers).
inline constexpr int kMaxFaceWorkers = 8;

class FacePipeline {
public:
    using Detector = FaceApiTinyFaceDetector<CpuBackend>;
    using Landmarks = FaceApiLandmark68<CpuBackend>;
    using AgeGender = FaceApiAgeGender<CpuBackend>;

    FacePipeline(std::shared_ptr<const Detector> detector, std::shared_ptr<const Landmarks> landmarks,
                 std::shared_ptr<const AgeGender> age_gender)
        : detector_(std::move(detector)), landmarks_(std::move(landmarks)), age_gender_(std::move(age_gender)) {
        if (!detector_ || !landmarks_ || !age_gender_) throw Error("FacePipeline: a network is missing");
        if (landmarks_->outputs_per_face() != 2 * 68)
            throw ModelFileError(landmarks_->path() + ": gives " + std::to_string(landmarks_->outputs_per_face() / 2) +
                                 " landmarks; the face pipeline needs 68");
    }

    /// The three networks from `dir`: faceapi_tiny_face_detector.safetensors,
    /// faceapi_landmark68.safetensors and faceapi_age_gender.safetensors (data/models).
    static FacePipeline load(const std::string& dir, const LoadOptions& opt = {}) {
        const std::string d = dir.empty() || dir.back() == '/' ? dir : dir + "/";
        auto detector = load_face_detector(d + "faceapi_tiny_face_detector.safetensors", opt);  // in this order:
        auto landmarks = load_face_landmarks(d + "faceapi_landmark68.safetensors", opt);     // the first missing
        auto age_gender = load_face_age_gender(d + "faceapi_age_gender.safetensors", opt);   // file is named
        return FacePipeline(std::move(detector), std::move(landmarks), std::move(age_gender));
    }

    /// Adds a model that runs on each face instead of face-api's age/gender network (see
    /// the file comment). Its file must declare a face crop; call before make_workspace().
    void add_model(std::shared_ptr<const Model> model) {
        if (!model) throw Error("FacePipeline::add_model: no model");
        if (!model->config().face_crop)
            throw ModelFileError(model->path() + ": declares no face crop (metadata key face_crop), so the face pipeline "
                                 "cannot know how its faces were cut; convert it with --face-crop celeba|cacd|..., or "
                                 "give it pre-cropped faces (softbio-predict --no-detect)");
        if (model->arch().in_channels != 3)
            throw ModelFileError(model->path() + ": the face pipeline needs an RGB model (in_channels 3), file has " +
                                 std::to_string(model->arch().in_channels));
        const FaceCropSpec& c = *model->config().face_crop;
        int oh = 0, ow = 0;
        model->config().preprocess.output_size(c.height, c.width, oh, ow);
        if (oh != model->arch().input_h || ow != model->arch().input_w)
            throw ModelFileError(model->path() + ": its " + std::to_string(c.width) + "x" + std::to_string(c.height) +
                                 " face crop preprocesses to " + std::to_string(ow) + "x" + std::to_string(oh) +
                                 ", but the network takes " + std::to_string(model->arch().input_w) + "x" +
                                 std::to_string(model->arch().input_h));
        models_.push_back(std::move(model));
    }
    const std::vector<std::shared_ptr<const Model>>& models() const { return models_; }

    /// Everything one call needs; one per calling thread.
    class Workspace {
    public:
        int detector_size() const { return size_; }
        const PipelineOptions& options() const { return options_; }

    private:
        friend class FacePipeline;
        PipelineOptions options_;
        int size_ = 0;
        PreprocessSpec detector_chain;  // the file's chain, resized to size_
        DetectorDecoding decoding;
        // What one thread needs to analyse one face (the per-face networks at 1 thread).
        struct FaceWorker {
            std::unique_ptr<Landmarks::WorkspaceType> lm;
            std::unique_ptr<AgeGender::WorkspaceType> ag;
            PreprocessWorkspace pre;
            std::vector<std::unique_ptr<Predictor>> models;  // one per add_model(), batch 1
            RgbImage crop;                                   // the face crop of the model running
            std::vector<Prediction> model_out;
        };
        std::unique_ptr<Detector::WorkspaceType> det;
        PreprocessWorkspace pre;
        std::vector<FaceWorker> workers;  // one per thread
        DetectionScratch scratch;
        std::vector<Detection> detections;
        std::vector<FaceAnalysis> faces;
        std::vector<char> face_kept;
    };

    std::unique_ptr<Workspace> make_workspace(const PipelineOptions& options = {}) const {
        auto ws = std::make_unique<Workspace>();
        ws->options_ = options;
        const int multiple = detector_->config().faceapi.input_multiple > 0 ? detector_->config().faceapi.input_multiple : 32;
        const int size = options.detector_size > 0 ? options.detector_size : detector_->config().arch.input_h;
        if (size < multiple || size % multiple != 0 || size > 4096)
            throw Error("face detector size " + std::to_string(size) + ": expected a multiple of " + std::to_string(multiple) +
                        " from " + std::to_string(multiple) + " to 4096 (face-api's default is 416)");
        ws->size_ = size;
        ws->detector_chain = detector_->config().preprocess;
        for (PreprocessStep& s : ws->detector_chain.steps)
            if (s.op == PreprocessStep::Op::Resize) s.height = s.width = size;
        const FaceApiConfig& fc = detector_->config().faceapi;
        ws->decoding.anchors = fc.anchors;
        ws->decoding.iou_threshold = fc.iou_threshold;
        ws->decoding.score_threshold = options.score_threshold >= 0 ? options.score_threshold : fc.score_threshold;
        if (!(ws->decoding.score_threshold < 1.0))
            throw Error("face score threshold " + std::to_string(ws->decoding.score_threshold) + ": expected 0 to 1");
        ws->det = detector_->make_workspace(1, size, options.threads);
        // The per-face networks are small: their layers gain little from splitting across
        // threads, so each thread analyses whole faces with its own single-threaded
        // workspaces instead (no barrier per layer; results independent of `threads`).
        // At most kMaxFaceWorkers: each holds its own network buffers (a user's ResNet's
        // among them), and photos rarely have more faces than that to share.
        const int threads = options.threads > 0 ? options.threads : num_threads();
        ws->workers.resize(size_t(std::clamp(threads, 1, kMaxFaceWorkers)));
        PredictorOptions popt;
        popt.threads = 1;
        for (auto& w : ws->workers) {
            w.lm = landmarks_->make_workspace(1, 1);
            if (models_.empty()) w.ag = age_gender_->make_workspace(1, 1);
            for (const auto& m : models_) w.models.push_back(std::make_unique<Predictor>(m, popt));
        }
        return ws;
    }

    /// The faces in `image`: boxes in image pixels and scores, best first. The vector is
    /// the workspace's (valid until its next call).
    const std::vector<Detection>& detect(const RgbImage& image, Workspace& ws) const {
        check_image(image);
        preprocess(image, ws.detector_chain, ws.pre, ws.det->input());
        detector_->forward(ws.det->input(), 1, *ws.det);
        decode_detections(detector_->grid(*ws.det), ws.size_ / 32, ws.size_, ws.decoding, image.width, image.height,
                          ws.detections, ws.scratch);
        return ws.detections;
    }

    /// detect(), then landmarks, and age and gender (or the added models) for each face,
    /// in the detector's order. The faces are shared among the workspace's threads, one
    /// whole face per thread at a time.
    const std::vector<FaceAnalysis>& analyze(const RgbImage& image, Workspace& ws) const {
        detect(image, ws);
        const int count = int(ws.detections.size());
        ws.faces.resize(size_t(count));  // elements keep their buffers between calls
        ws.face_kept.assign(size_t(count), 0);
        std::exception_ptr first_error;  // an exception must not leave the parallel region
#pragma omp parallel for num_threads(int(ws.workers.size())) schedule(dynamic, 1) if (count > 1)
        for (int i = 0; i < count; ++i) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            try {
                ws.face_kept[size_t(i)] = analyze_face(image, ws.detections[size_t(i)], ws.workers[size_t(tid)], ws.faces[size_t(i)]);
            } catch (...) {
#pragma omp critical(softbio_face_pipeline_error)
                if (!first_error) first_error = std::current_exception();
            }
        }
        if (first_error) std::rethrow_exception(first_error);
        size_t kept = 0;  // drop the faces without a crop, keeping the detector's order
        for (size_t i = 0; i < size_t(count); ++i)
            if (ws.face_kept[i]) {
                if (kept != i) std::swap(ws.faces[kept], ws.faces[i]);
                ++kept;
            }
        ws.faces.resize(kept);
        return ws.faces;
    }

    /// The crop add_model()'s model `m` gets for face `f` of `image` (what the model
    /// sees before its preprocessing chain; for inspection, e.g. softbio-predict --crops).
    /// False when the face gives no usable map.
    bool face_crop(const RgbImage& image, const FaceAnalysis& f, size_t m, RgbImage& crop) const {
        if (m >= models_.size()) throw Error("FacePipeline::face_crop: no model " + std::to_string(m));
        return cut_face(image, *models_[m]->config().face_crop, f.detection.box, f.landmarks, crop);
    }

    const Detector& detector() const { return *detector_; }
    const Landmarks& landmarks() const { return *landmarks_; }
    const AgeGender& age_gender() const { return *age_gender_; }

private:
    static void check_image(const RgbImage& image) {
        if (image.width < 1 || image.height < 1 || image.pixels.size() != size_t(image.width) * size_t(image.height) * 3)
            throw ImageError("face pipeline: the image is " + std::to_string(image.width) + "x" +
                             std::to_string(image.height) + " with " + std::to_string(image.pixels.size()) +
                             " bytes; expected width * height * 3 bytes of RGB");
    }

    /// Landmarks, then age and gender or the added models, for detection `d`, into `f`.
    /// False when the face has no crop inside the image (it is dropped).
    bool analyze_face(const RgbImage& image, const Detection& d, Workspace::FaceWorker& w, FaceAnalysis& f) const {
        f.detection = d;
        const PixelRegion box_region = crop_region(d.box, image.width, image.height);
        if (box_region.empty()) return false;
        preprocess_region(image, box_region, landmarks_->config().preprocess, w.pre, w.lm->input());
        landmarks_->forward(w.lm->input(), 1, *w.lm);
        landmarks_to_image(landmarks_->landmarks(*w.lm), 68, landmarks_->config().arch.input_h, box_region, d.box,
                           f.landmarks.data());
        f.aligned_rect = aligned_rect(f.landmarks.data(), 68);
        f.has_age_gender = false;
        f.models.resize(models_.size());
        if (models_.empty()) {
            const PixelRegion face_region = crop_region(f.aligned_rect, image.width, image.height);
            if (face_region.empty()) return false;
            preprocess_region(image, face_region, age_gender_->config().preprocess, w.pre, w.ag->input());
            age_gender_->forward(w.ag->input(), 1, *w.ag);
            f.age = age_gender_->age(*w.ag, 0);
            float p[2];
            age_gender_->gender(*w.ag, 0, p);
            f.male_probability = p[0];
            f.has_age_gender = true;
        }
        for (size_t m = 0; m < models_.size(); ++m) {
            Prediction& out = f.models[m];
            if (!cut_face(image, *models_[m]->config().face_crop, f.detection.box, f.landmarks, w.crop)) {
                out.heads.clear();
                out.error = "face crop: this face's landmarks or box give no usable map to the model's crop";
                continue;
            }
            w.models[m]->set_input(w.crop, 0);
            w.models[m]->run(1, w.model_out);
            std::swap(out, w.model_out[0]);
        }
        return true;
    }

    /// Runs `spec` on the pixels of region `r` of `image`, read in place (a strided view:
    /// no copy of the crop).
    static void preprocess_region(const RgbImage& image, const PixelRegion& r, const PreprocessSpec& spec,
                                  PreprocessWorkspace& pre, float* out) {
        preprocess_pixels(image.at(r.y, r.x), r.height, r.width, size_t(image.width) * 3, spec, pre, out);
    }

    std::shared_ptr<const Detector> detector_;
    std::shared_ptr<const Landmarks> landmarks_;
    std::shared_ptr<const AgeGender> age_gender_;
    std::vector<std::shared_ptr<const Model>> models_;
};

}  // namespace softbio::face
