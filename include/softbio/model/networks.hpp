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
#include "softbio/model/network.hpp"
#include "softbio/model/resnet.hpp"

namespace softbio {

/// The description of the network `cfg` configures. Throws ShapeError when its input
/// size is too small for it, Error for an unknown family.
inline NetworkDesc describe_network(const ModelConfig& cfg) {
    if (cfg.family == "resnet") return describe_resnet(cfg);
    throw Error("unknown network family \"" + cfg.family + "\" (this build knows: resnet)");
}

}  // namespace softbio
