// softbio/core/error.hpp — the exceptions softbio throws.
//
// Every error message names the thing that was wrong (file, tensor, pixel, layer),
// what was expected and what was found. A function that throws leaves the objects it
// was given usable: loading builds everything on the side and only hands a model back
// once it is complete; a failed forward pass leaves the model and its weights intact.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

namespace softbio {

/// A number for an error message, as printf's %g writes it ("-0.5", "3.16228e+40").
inline std::string number_string(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

/// Base class of all softbio errors; catch this to catch them all.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A model file (safetensors + metadata) is missing, malformed or does not describe a
/// network softbio can build. The message starts with the file path.
class ModelFileError : public Error {
public:
    using Error::Error;
};

/// An image could not be decoded or is not acceptable (empty, truncated, too large,
/// unsupported format). The message starts with the file path (or "<memory>").
class ImageError : public Error {
public:
    using Error::Error;
};

/// A caller passed tensors whose shapes do not fit the operation (e.g. a batch with
/// the wrong input size). The message names the layer or function and both shapes.
class ShapeError : public Error {
public:
    using Error::Error;
};

}  // namespace softbio
