// softbio/model/networks.hpp — every network family this build knows, by the name a
// model file's metadata gives it ("model.family").
//
// Adding a family (say, a face detector built from separable convolutions): write one
// file like model/resnet.hpp with its describe_<family>(cfg) -> NetworkDesc (units,
// tensor names, shapes) and its network class (build() from the units, forward() over
// the shared layers), add its hyper-parameters to ModelConfig and their parsing to
// io/metadata.hpp, and one line below. The loader, the tensor validation, parameter and
// MAC counts, --profile names and the synthetic writer then work for it unchanged.
#pragma once

#include "softbio/core/error.hpp"
#include "softbio/model/config.hpp"
#include "softbio/model/faceapi_age_gender.hpp"
#include "softbio/model/faceapi_landmark68.hpp"
#include "softbio/model/faceapi_tiny_face_detector.hpp"
#include "softbio/model/network.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {

/// The description of the network `cfg` configures. Throws ShapeError when its input
/// size is too small for it, Error for an unknown family.
inline NetworkDesc describe_network(const ModelConfig& cfg) {
    if (cfg.family == kFamilyResNet) return describe_resnet(cfg);
    if (cfg.family == kFamilyFaceDetector) return describe_faceapi_tiny_face_detector(cfg);
    if (cfg.family == kFamilyFaceLandmarks) return describe_faceapi_landmark68(cfg);
    if (cfg.family == kFamilyFaceAgeGender) return describe_faceapi_age_gender(cfg);
    throw Error("unknown network family \"" + cfg.family + "\" (this build knows: resnet, " + kFamilyFaceDetector +
                ", " + kFamilyFaceLandmarks + ", " + kFamilyFaceAgeGender + ")");
}

}  // namespace softbio
