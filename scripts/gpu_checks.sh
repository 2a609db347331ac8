#!/usr/bin/env bash
# The GPU figures of the throughput issue in one command that fits a short device lease (about 9 minutes):
# the HiFi-GAN V1 sweep (batch 128..16 x bf16/fp32, the plain loop at each batch), vocoding RTF at batch 1
# and 8, eager against CUDA graphs and compile (speed, then the first 20 steps' losses), then, as time
# allows, the autoregressive model at batch 8 and 16, the V3 sweep and the tortoise decoder fine-tune.
# Each part runs under its own time limit, in that order of priority, and a part that runs out of time still
# leaves what it measured; the whole stays under BUDGET_S seconds (default 540).
#
# Output (at most 5 files, for a lease that returns 8): $OUT/log.txt (everything printed, with each part's
# command, exit status and seconds) and one JSON list per HiFi-GAN bench part.
#
# On a machine without this checkout's .venv (a lent GPU image has torch but not soundfile and the
# rest), it uses python3 and installs the wheels scripts/device_wheels.sh put in .whl/, offline (.whl/ is
# ignored by git: a copy of the checkout must bring it along, e.g. the device tool's carry: [".whl"]).
# SMOKE=1 runs every part tiny on the CPU (tests/bench/test_gpu_checks_script.py does, to keep this working).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
mkdir -p "$OUT"
LOG="$OUT/log.txt"
: > "$LOG"
export PYTHONUNBUFFERED=1
DEADLINE=$((SECONDS + ${BUDGET_S:-540}))

if [ -n "${PY:-}" ]; then :
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else
  PY=python3
  if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl 2>&1 | tee -a "$LOG" || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # `import modules` from the checkout
fi

# part LIMIT NAME ARGS...: run "$PY ARGS..." for at most LIMIT seconds (less if the budget is nearly spent),
# logging its output without the per-step lines; skipped when under MIN_PART_S (20) seconds of the budget are left
part() {
  local limit=$1 name=$2
  shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt "${MIN_PART_S:-20}" ]; then
    echo "### $name: skipped, ${left} s of the budget left" | tee -a "$LOG"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "### $name (limit ${limit} s): $PY $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$PY" "$@" 2>&1 | grep --line-buffered -v "^step " | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "### $name: exit status $rc after $((SECONDS - t0)) s$([ "$rc" = 124 ] && echo ' (time limit)')" | tee -a "$LOG"
}

if [ "${SMOKE:-0}" = 1 ]; then
  DEV=cpu
  HG=(--preset v2 --segment 4096 --disc-width 0.25 --steps 2 --warmup 1 --clips 8 --workers 0 --plain-workers 0)
  SWEEP=(--batch 2 --amp)
  COMPILE_BATCH=(--batch 2)
  LOSSES=(--preset v2 --batch 2 --segment 4096 --disc-width 0.25 --steps 2 --modes none)  # compiling: tests/hifigan
  AR=(--device cpu --tiny --batches 2 --steps 2 --warmup 1)
  VOC=(--preset v2 --seconds 0.5 --repeats 1)
  DEC=(--device cpu --clips 4 --seconds 2 --batch 2 --segment 8 --steps 2 --warmup 1 --workers 0)
else
  DEV=cuda
  HG=(--steps 10 --warmup 3)
  SWEEP=(--sweep)
  COMPILE_BATCH=(--batch 64 --amp --only ours --compile none,graphs,default --steps 20 --warmup 10)
  LOSSES=(--batch 64 --precision bf16 --steps 20 --modes none,graphs,default)  # the compile part's shapes: cached
  AR=(--batches 8,16)
  VOC=(--seconds 10 --amp)
  DEC=(--device cuda --full --batch 16 --segment 32 --precision bf16 --steps 20 --warmup 5 --workers 2)
  command -v nvidia-smi > /dev/null && timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    2>&1 | tee -a "$LOG"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
"$PY" -c "import triton; print('triton', triton.__version__)" 2>&1 | tail -1 | tee -a "$LOG"  # compile needs both
{ gcc --version 2>&1 || echo "no gcc: torch.compile's CPU-side code cannot build"; } | head -1 | tee -a "$LOG"

part 240 "HiFi-GAN V1 sweep" bench/train_hifigan.py --device "$DEV" "${HG[@]}" "${SWEEP[@]}" \
  --json "$OUT/hifigan_v1.json"
part 40 "vocoding, batch 1" bench/vocode.py --device "$DEV" "${VOC[@]}"
part 40 "vocoding, batch 8" bench/vocode.py --device "$DEV" "${VOC[@]}" --batch 8
part 150 "HiFi-GAN eager, compile and graphs" bench/train_hifigan.py --device "$DEV" "${HG[@]}" \
  "${COMPILE_BATCH[@]}" --json "$OUT/hifigan_compile.json"
part 90 "first steps' losses per compile mode" bench/compile_losses.py --device "$DEV" "${LOSSES[@]}"
part 90 "autoregressive model" bench/train_autoregressive.py "${AR[@]}"
part 150 "HiFi-GAN V3 sweep" bench/train_hifigan.py --device "$DEV" "${HG[@]}" "${SWEEP[@]}" --preset v3 \
  --json "$OUT/hifigan_v3.json"
part 120 "tortoise decoder fine-tune" bench/train_hifidecoder.py "${DEC[@]}" --json "$OUT/hifidecoder.json"
echo "### done in $SECONDS s" | tee -a "$LOG"
