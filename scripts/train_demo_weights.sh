#!/usr/bin/env bash
# Train the bundled demo weights, src/napari_cellflux/weights/demo.safetensors.
#
#   bash scripts/train_demo_weights.sh [extra training.run flags, e.g. --threads 1]
#
# Data: procedural crops from napari_cellflux.core.synthetic.generator (our own ground truth, no real
# data): 4 plates x (DMSO + 4 compounds x 4 doses) x 32 crops (96 DMSO) of 64 px = 2432 crops.
# Model: the `fast` preset with jump inputs (--objective jump: a one-jump preview and guidance
# in one pass; docs/jump-sampler.md), 1.15 M parameters, 800 steps of 32 pairs on one CPU,
# with the dose recipe of the earlier demo weights (log1p, no control anchors: the default
# before the dose-response work of docs/dose-curves.md), so this command reproduces it.
# See docs/model-card.md for what the weights can and cannot do.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
WORK=${WORK:-${TMPDIR:-/tmp}/napari-cellflux-demo}
DESCRIPTION="napari_cellflux.core.synthetic.generator.make_crops(32, size=64, seed=0, n_controls=96): plates SynPlate1-4, DMSO + cyclohexamide, taxol, nocodazole, latrunculin B at 0.3, 1, 3, 10 uM, 32 crops per condition and plate, 96 DMSO crops per plate (procedural, not real cells)"

rm -rf "$WORK"
"$PYTHON" - "$WORK/data" <<'PY'
import sys

from napari_cellflux.core.formats.crops_dataset import save_crops
from napari_cellflux.core.synthetic.generator import make_crops

images, metadata = make_crops(32, size=64, seed=0, n_controls=96)
save_crops(sys.argv[1], images, metadata)
print(f"procedural crops: {images.shape} -> {sys.argv[1]}")
PY

"$PYTHON" -m training.run --data "$WORK/data" --out "$WORK/run" \
    --preset fast --steps 800 --batch-size 32 --lr 1e-3 --seed 0 \
    --ckpt-every 100 --log-every 25 --dose-encoding log1p --control-anchor 0 \
    --objective jump --name "demo-synthetic-fast-jump" \
    --description "Demo weights: fast preset trained on procedural cells with known effects (napari_cellflux.core.synthetic.generator), jump objective: one network evaluation per frame. For trying the plugin; not a model of real biology." \
    --data-description "$DESCRIPTION" "$@"

mkdir -p src/napari_cellflux/weights
# Stored as float16 (half the size; the model computes in float32 after loading).
"$PYTHON" -c "import sys; from napari_cellflux import load_model; load_model(sys.argv[1], device='cpu').save(sys.argv[2], storage_dtype='float16')" \
    "$WORK/run/model.safetensors" src/napari_cellflux/weights/demo.safetensors
echo "wrote src/napari_cellflux/weights/demo.safetensors ($(du -h src/napari_cellflux/weights/demo.safetensors | cut -f1))"
