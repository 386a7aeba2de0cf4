// softbio/io/load_face.hpp — load face-api's three networks (model/faceapi_*.hpp) from
// their converted files (data/models/faceapi_*.safetensors, docs/FORMAT.md 2.6):
//
//     auto det = softbio::load_face_detector("data/models/faceapi_tiny_face_detector.safetensors");
//     auto ws = det->make_workspace(/*max_batch=*/1, /*size=*/416);   // one per calling thread
//     softbio::PreprocessWorkspace pws;
//     softbio::preprocess(image, det->config().preprocess, pws, ws->input());
//     det->forward(ws->input(), 1, *ws);
//     const float* grid = det->grid(*ws);                               // [g, g, 25], g = 416 / 32
//
// Each load opens and validates the file (io/model_file.hpp: metadata, the exact tensor
// list with shapes), checks that it holds the expected family, and builds the network
// once; the result is read-only and may be shared by any number of threads. These
// networks run on the CPU in fp32 only in this build: LoadOptions::device = Cuda and
// another LoadOptions::precision are refused.
#pragma once

#include <memory>
#include <string>

#include "softbio/backend/cpu.hpp"
#include "softbio/io/model_file.hpp"
#include "softbio/model/faceapi_age_gender.hpp"
#include "softbio/model/faceapi_landmark68.hpp"
#include "softbio/model/faceapi_tiny_face_detector.hpp"

namespace softbio {

namespace detail {
template <class Net>
std::shared_ptr<const Net> load_face_network(const std::string& path, const LoadOptions& opt) {
    if (opt.device != Device::Cpu)
        throw Error(path + ": face-api networks run on the CPU only in this build (LoadOptions::device must be cpu)");
    if (opt.precision != Precision::Fp32)
        throw Error(path + ": face-api networks run in fp32 only (LoadOptions::precision must be Fp32)");
    auto file = std::make_shared<const ModelFile>(open_model_file(path));
    if (file->config().family != Net::family)
        throw ModelFileError(path + ": holds a \"" + file->config().family + "\" network, expected \"" + Net::family + "\"");
    return std::make_shared<const Net>(file->config(), *file, opt, path, file);
}
}  // namespace detail

/// The tiny face detector of a faceapi_tiny_face_detector file.
inline std::shared_ptr<const FaceApiTinyFaceDetector<CpuBackend>> load_face_detector(const std::string& path,
                                                                                     const LoadOptions& opt = {}) {
    return detail::load_face_network<FaceApiTinyFaceDetector<CpuBackend>>(path, opt);
}
/// The 68-point landmark network of a faceapi_landmark68 file.
inline std::shared_ptr<const FaceApiLandmark68<CpuBackend>> load_face_landmarks(const std::string& path,
                                                                                const LoadOptions& opt = {}) {
    return detail::load_face_network<FaceApiLandmark68<CpuBackend>>(path, opt);
}
/// The age/gender network of a faceapi_age_gender file.
inline std::shared_ptr<const FaceApiAgeGender<CpuBackend>> load_face_age_gender(const std::string& path,
                                                                               const LoadOptions& opt = {}) {
    return detail::load_face_network<FaceApiAgeGender<CpuBackend>>(path, opt);
}

}  // namespace softbio
