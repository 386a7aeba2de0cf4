// softbio/model/residual_block.hpp — the two ResNet blocks, as one flat structure.
//
// BasicBlock (ResNet-18/34), expansion 1:
//     x -> conv3x3(stride s) -> BN -> ReLU -> conv3x3 -> BN -> (+ shortcut) -> ReLU
// Bottleneck (ResNet-50/101/152), expansion 4:
//     x -> conv1x1 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv1x1(4x) -> BN -> (+ shortcut) -> ReLU
//     The stride s sits on the 3x3 conv2 in torchvision ("v1.5") and in Raschka's
//     notebooks; the original paper ("v1") puts it on conv1. Same weights, other net.
// Shortcut: the input itself, or, in the first block of a stage where the stride or
// the width changes, `downsample` = conv1x1(stride s) -> BN.
//
// Both are "a chain of ConvBn units, ReLU after each but the last, the last one adds
// the shortcut then applies ReLU", so one class holds 2 or 3 units. A network is a
// flat std::vector of these: a ResNet-152 is 50 elements of one type, not 50 nested
// template instantiations.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "softbio/layers/conv_bn.hpp"

namespace softbio {

template <class Backend>
class ResidualBlock {
public:
    /// Working buffers a block needs besides its input and output (each at least as
    /// large as any intermediate map of the block).
    struct Buffers {
        TensorView mid[2];     // outputs of the units before the last
        TensorView shortcut;   // output of the downsample branch
    };

    ResidualBlock() = default;
    /// Called after each unit with (unit name, its output, its multiply-accumulates).
    using UnitReport = std::function<void(const std::string&, ConstTensorView, double)>;

    /// `units`: the branch convs in order, named `unit_names` (from the network's
    /// description); `downsample`: the shortcut projection when `has_downsample`.
    ResidualBlock(std::string name, std::vector<ConvBn<Backend>> units, std::vector<std::string> unit_names,
                  bool has_downsample, ConvBn<Backend> downsample, std::string downsample_name)
        : name_(std::move(name)), unit_names_(std::move(unit_names)), units_(std::move(units)),
          has_downsample_(has_downsample), downsample_(std::move(downsample)) {
        unit_names_.push_back(std::move(downsample_name));
    }

    const std::string& name() const { return name_; }
    const std::vector<ConvBn<Backend>>& units() const { return units_; }
    bool has_downsample() const { return has_downsample_; }
    const ConvBn<Backend>& downsample() const { return downsample_; }

    /// Shapes of the intermediate maps for an input shape (for planning buffers).
    std::vector<Shape> unit_shapes(Shape in) const {
        std::vector<Shape> shapes;
        Shape s = in;
        for (const auto& u : units_) shapes.push_back(s = u.output_shape(s));
        return shapes;
    }
    Shape output_shape(Shape in) const { return unit_shapes(in).back(); }

    size_t scratch_floats(Shape in, const typename Backend::Context& backend) const {
        size_t most = 0;
        Shape s = in;
        for (const auto& u : units_) {
            most = std::max(most, u.scratch_floats(s, backend));
            s = u.output_shape(s);
        }
        if (has_downsample_) most = std::max(most, downsample_.scratch_floats(in, backend));
        return most;
    }

    double macs(Shape in) const {
        double total = 0;
        Shape s = in;
        for (const auto& u : units_) {
            total += u.macs(s);
            s = u.output_shape(s);
        }
        if (has_downsample_) total += downsample_.macs(in);
        return total;
    }

    /// Writes block(in) to `out_data` and returns it as a view. `in` stays intact (it
    /// may be the shortcut).
    /// `report` (optional) sees each unit's output: "<block>.conv1" = ReLU(BN(conv1)),
    /// ..., "<block>.downsample", and the last unit's output after the add and ReLU.
    TensorView forward(ConstTensorView in, float* out_data, Buffers& buf, const LayerContext<Backend>& ctx,
                       const UnitReport* report = nullptr) const {
        ConstTensorView x = in;
        const size_t last = units_.size() - 1;
        for (size_t i = 0; i < last; ++i) {
            TensorView y{buf.mid[i].data, units_[i].output_shape(x.shape)};
            units_[i].forward(x, y, nullptr, /*relu=*/true, ctx);
            if (report) (*report)(unit_names_[i], y, units_[i].macs(x.shape));
            x = y;
        }
        const float* shortcut = in.data;
        if (has_downsample_) {
            TensorView s{buf.shortcut.data, downsample_.output_shape(in.shape)};
            downsample_.forward(in, s, nullptr, /*relu=*/false, ctx);
            if (report) (*report)(unit_names_.back(), s, downsample_.macs(in.shape));
            shortcut = s.data;
        }
        TensorView out{out_data, units_[last].output_shape(x.shape)};
        units_[last].forward(x, out, shortcut, /*relu=*/true, ctx);
        if (report) (*report)(unit_names_[last], out, units_[last].macs(x.shape));
        return out;
    }

private:
    std::string name_;
    std::vector<std::string> unit_names_;  // conv1..convN, then downsample
    std::vector<ConvBn<Backend>> units_;
    bool has_downsample_ = false;
    ConvBn<Backend> downsample_;
};

}  // namespace softbio
