#!/usr/bin/env bash
# LoRA fine-tuning of LLaVA-1.5-7B on the RefCOCO family: the Text4Seg reference recipe
# (2 epochs, lr 2e-4, batch 4 per device x grad-accum 4, warmup 0.03, cosine, max length 3072,
# LoRA r 64 / alpha 128 / dropout 0.05 on every LLM linear layer, projector trained fully, vision tower frozen,
# 16 x 16 R-RLE descriptors).
#
# Build the data first (reference layout under $DATA_ROOT, see playground/README.md):
#   for d in refcoco refcoco+ refcocog refclef; do
#     python -m data_builders refcoco --dataset $d --data-root playground/data --out playground/data/text4seg/${d}_p16.json
#   done
#
# Usage: scripts/finetune_lora.sh [extra text4seg-train options]
# Environment: MODEL, DATA_ROOT, DATA_DIR, OUT, NUM_GPUS, ACCELERATE_CONFIG (scripts/accelerate_ddp.yaml or
# scripts/accelerate_zero2.yaml), PROJECTOR_LR.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-llava-hf/llava-1.5-7b-hf}
DATA_ROOT=${DATA_ROOT:-playground/data}
DATA_DIR=${DATA_DIR:-$DATA_ROOT/text4seg}
OUT=${OUT:-runs/llava-1.5-7b-lora-refcoco-p16}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-scripts/accelerate_ddp.yaml}
PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
if [[ -z "${NUM_GPUS:-}" ]]; then
  NUM_GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
  NUM_GPUS=$(( NUM_GPUS > 0 ? NUM_GPUS : 1 ))
fi

DATA_ARGS=()
for name in refcoco refcoco+ refcocog refclef; do
  DATA_ARGS+=(--data "$DATA_DIR/${name}_p16.json")
done

exec accelerate launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NUM_GPUS" \
  -m text4seg.cli train \
  --model "$MODEL" \
  "${DATA_ARGS[@]}" \
  --data-root "$DATA_ROOT" \
  --out "$OUT" \
  --grid 16 --descriptor-form rle --fg-label sentence --image-position before \
  --epochs 2 \
  --lr 2e-4 --projector-lr "$PROJECTOR_LR" \
  --batch-size 4 --grad-accum 4 \
  --warmup-ratio 0.03 --lr-scheduler cosine --weight-decay 0 \
  --max-length 3072 \
  --lora-r 64 --lora-alpha 128 --lora-dropout 0.05 \
  --precision bf16 --gradient-checkpointing --group-by-length \
  --save-steps 2000 --save-total-limit 2 --logging-steps 10 \
  --workers 4 \
  "$@"
