#!/usr/bin/env bash
# Installs the ONNX Runtime anchor for benchmarks only (never used by softbio itself):
# onnxruntime-node from the npm registry into build/ort, and exports torchvision's
# resnet101 to ONNX (opset 13) with PyTorch. Needs node + npm (Debian: nodejs npm).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/ort
if [[ ! -d build/ort/node_modules/onnxruntime-node ]]; then
  (cd build/ort && npm install --no-save --ignore-scripts onnxruntime-node@1.30.0)
fi
if [[ ! -f build/ort/resnet101.onnx ]]; then
  /usr/bin/python3 - <<'PY'
import torch, torchvision
net = torchvision.models.resnet101(weights=None).eval()
torch.onnx.export(net, torch.rand(1, 3, 224, 224), "build/ort/resnet101.onnx", opset_version=13,
                  input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
PY
fi
echo "ONNX Runtime anchor ready in build/ort"
