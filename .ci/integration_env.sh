#!/usr/bin/env bash
# The integration environment: inference_accel beside Roboflow's inference-models
# (the engine of the `inference` server), for tests/integration/.
#
#   bash .ci/integration_env.sh [VENV]      (default: <checkout>/.venv-integration)
#
# then
#
#   VENV/bin/python -m pytest -q -p no:cacheprovider tests/integration
#
# What it installs:
#   - this checkout, editable, with its core dependencies only (no `dev`:
#     no rfdetr, triton or TensorRT; the tests need none of them);
#   - inference-models 0.39.x with its `onnx-cpu` extra (onnxruntime + onnx),
#     which is what runs an RF-DETR-Seg ONNX package on a CPU;
#   - pytest and hypothesis.
#
# Versions: constraints.txt (the tested set of the main venv) minus the pins
# inference-models 0.39 contradicts, which are replaced here:
#   pillow        13.0.0  -> >=12.3,<13  (inference-models: pillow>=12.3,<13)
#   onnxruntime   1.32.0  -> 1.22.1      (onnx-cpu extra: onnxruntime<1.23)
#   scikit-image  0.26.0  -> 0.25.2      (inference-models: scikit-image<0.26)
#   opencv-python  (new)  -> the same release as opencv-python-headless: both
#                            write the same cv2/ folder, so they must agree.
# torch stays 2.14.1 / torchvision 0.29.1 (they lie on this machine's disk; any
# other torch is a multi-GB download).
#
# Measured on the 2-core development machine (torch from the local disk, the
# rest from PyPI): 289 s, venv 6.7 GB (inference-models brings transformers,
# diffusers, timm, doctr, easyocr, SAM, ...). The script prints both at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${1:-$ROOT/.venv-integration}"
START=$(date +%s)

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
grep -v -E '^(pillow|onnxruntime|scikit-image)==' "$ROOT/constraints.txt" > "$CONSTRAINTS"
OPENCV="$(sed -n 's/^opencv-python-headless==//p' "$ROOT/constraints.txt")"
cat >> "$CONSTRAINTS" <<EOF
# integration overrides (.ci/integration_env.sh)
pillow>=12.3,<13
onnxruntime==1.22.1
scikit-image==0.25.2
opencv-python==$OPENCV
inference-models>=0.39,<0.40
EOF

echo "=== venv $VENV ($(date +%T))"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -c "$CONSTRAINTS" -e "$ROOT" \
  "inference-models[onnx-cpu]>=0.39,<0.40" pytest hypothesis

"$VENV/bin/python" - <<'EOF'
import PIL, numpy, onnxruntime, torch, torchvision, supervision
import inference_models, inference_accel
from importlib.metadata import version
print("inference-models", version("inference-models"), "| inference_accel", inference_accel.__version__)
print("Pillow", PIL.__version__, "| numpy", numpy.__version__, "| onnxruntime", onnxruntime.__version__,
      "| torch", torch.__version__, "| torchvision", torchvision.__version__, "| supervision", supervision.__version__)
assert PIL.__version__.startswith("12."), PIL.__version__
EOF
END=$(date +%s)
echo "=== done in $((END - START)) s; venv size $(du -sh "$VENV" | cut -f1)"
