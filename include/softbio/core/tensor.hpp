// softbio/core/tensor.hpp — fp32 tensors in NHWC layout.
//
// Layout: a 4-d activation tensor is stored N x H x W x C ("channels last"): the C
// values of one pixel are contiguous, then pixels run along a row, then rows, then
// images. Element (n, h, w, c) lives at ((n*H + h)*W + w)*C + c.
//
// Why NHWC: a convolution is a matrix product between "patches" and "filters". In NHWC
// the activations of an image already form a matrix with one row per pixel and one
// column per channel, [N*H*W, C]. A 1x1 convolution is then literally one GEMM,
// [N*H*W, Cin] x [Cin, Cout], with no data movement at all; a k x k convolution
// gathers k*k contiguous runs of Cin floats per output pixel (cheap, vector-friendly
// copies). Per-channel epilogues (bias, BN scale) become row-broadcasts.
// PyTorch uses NCHW; the tools that talk to PyTorch (--dump, parity tests) convert.
//
// Storage is 64-byte aligned (one cache line, one AVX-512 register). `Tensor` owns
// its memory; `TensorView` / `ConstTensorView` are non-owning (pointer + shape) and are
// what kernels and layers take, so working memory can come from a pre-planned arena.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "softbio/core/error.hpp"
#include "softbio/kernels/op_params.hpp"  // align_floats

namespace softbio {

/// Shape of an NHWC activation tensor. A feature vector batch [N, F] is {N, 1, 1, F}.
struct Shape {
    int n = 0, h = 0, w = 0, c = 0;

    constexpr size_t numel() const { return size_t(n) * size_t(h) * size_t(w) * size_t(c); }
    constexpr size_t pixels() const { return size_t(n) * size_t(h) * size_t(w); }
    constexpr bool operator==(const Shape& o) const { return n == o.n && h == o.h && w == o.w && c == o.c; }
    constexpr bool operator!=(const Shape& o) const { return !(*this == o); }
    std::string str() const {
        return "[N=" + std::to_string(n) + ",H=" + std::to_string(h) + ",W=" + std::to_string(w) +
               ",C=" + std::to_string(c) + "]";
    }
};

/// Alignment of every tensor allocation, in bytes.
inline constexpr size_t kTensorAlignment = 64;

/// A 64-byte aligned, zero-initialised float buffer that owns its memory.
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(size_t count) { resize(count); }

    /// A buffer of `count` floats whose contents are NOT set: for a caller that writes
    /// every float before reading any (the packed filters at load: zeroing 170 MB first
    /// would be a second pass over them).
    static AlignedBuffer uninitialized(size_t count) {
        AlignedBuffer b;
        b.allocate(count, false);
        return b;
    }

    /// Reallocate to hold `count` floats (contents are zeroed). Not for hot paths.
    void resize(size_t count) { allocate(count, true); }
    float* data() { return data_.get(); }
    const float* data() const { return data_.get(); }
    size_t size() const { return size_; }

private:
    void allocate(size_t count, bool zero) {
        data_.reset();
        size_ = 0;
        if (count == 0) return;
        size_t bytes = align_floats(count) * sizeof(float);
        void* p = std::aligned_alloc(kTensorAlignment, bytes);
        if (!p) throw std::bad_alloc();
        if (zero) std::memset(p, 0, bytes);
        data_.reset(static_cast<float*>(p));
        size_ = count;
    }
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float, Free> data_;
    size_t size_ = 0;
};

/// A read-only fp32 tensor from a weight file, in PyTorch's layout (any rank).
struct TensorRef {
    const float* data = nullptr;
    std::vector<int64_t> shape;
    size_t numel() const {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        return n;
    }
};

/// Non-owning read-only view of an NHWC tensor.
struct ConstTensorView {
    const float* data = nullptr;
    Shape shape;
    const float* pixel(int n, int h, int w) const {
        return data + ((size_t(n) * shape.h + h) * shape.w + w) * shape.c;
    }
};

/// Non-owning mutable view of an NHWC tensor.
struct TensorView {
    float* data = nullptr;
    Shape shape;
    operator ConstTensorView() const { return {data, shape}; }
    float* pixel(int n, int h, int w) const {
        return data + ((size_t(n) * shape.h + h) * shape.w + w) * shape.c;
    }
};

/// An owning NHWC tensor (aligned, zero-initialised).
class Tensor {
public:
    Tensor() = default;
    explicit Tensor(Shape shape) : shape_(shape), buffer_(shape.numel()) {}

    const Shape& shape() const { return shape_; }
    float* data() { return buffer_.data(); }
    const float* data() const { return buffer_.data(); }
    size_t numel() const { return shape_.numel(); }
    float& at(int n, int h, int w, int c) { return data()[((size_t(n) * shape_.h + h) * shape_.w + w) * shape_.c + c]; }
    float at(int n, int h, int w, int c) const {
        return data()[((size_t(n) * shape_.h + h) * shape_.w + w) * shape_.c + c];
    }
    TensorView view() { return {data(), shape_}; }
    ConstTensorView view() const { return {data(), shape_}; }
    operator TensorView() { return view(); }
    operator ConstTensorView() const { return view(); }

private:
    Shape shape_;
    AlignedBuffer buffer_;
};

}  // namespace softbio
