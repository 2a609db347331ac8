#!/usr/bin/env bash
# The GPU figures of the throughput issue in one run (for a session that has a GPU lent):
# HiFi-GAN sweep (V1 and V3, batch 16..128 x fp32/bf16, the plain loop at each batch), the fit check,
# the autoregressive model at batch 8 and 16, vocoding RTF at batch 1 and 8, the tortoise decoder fine-tune
# (latent extraction clips/s, full-size training at batch 16, segment 32, bf16). JSON and logs go to $OUT (or out/).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
$PY bench/train_hifigan.py --device cuda --sweep --steps 20 --warmup 5 --json "$OUT/hifigan_v1.json" 2>&1 | grep -v "^step " | tee "$OUT/hifigan_v1.txt"
$PY bench/train_hifigan.py --device cuda --preset v3 --sweep --steps 20 --warmup 5 --json "$OUT/hifigan_v3.json" 2>&1 | grep -v "^step " | tee "$OUT/hifigan_v3.txt"
$PY bench/train_hifigan.py --device cuda --batch 64 --amp --compile none,default,graphs --steps 20 --warmup 10 --json "$OUT/hifigan_compile.json" 2>&1 | grep -v "^step " | tee "$OUT/hifigan_compile.txt"
$PY bench/compile_losses.py --device cuda --precision bf16 --steps 20 --modes none,default,graphs 2>&1 | grep -v "^step " | tee "$OUT/compile_losses.txt"
$PY bench/train_autoregressive.py --batches 8,16 2>&1 | tee "$OUT/autoregressive.txt"
$PY bench/vocode.py --device cuda --seconds 10 --amp 2>&1 | tee "$OUT/vocode_b1.txt"
$PY bench/vocode.py --device cuda --seconds 10 --batch 8 --amp 2>&1 | tee "$OUT/vocode_b8.txt"
$PY bench/train_hifidecoder.py --device cuda --full --batch 16 --segment 32 --precision bf16 --steps 20 --warmup 5 --workers 2 --json "$OUT/hifidecoder.json" 2>&1 | grep -v "^step " | tee "$OUT/hifidecoder.txt"
