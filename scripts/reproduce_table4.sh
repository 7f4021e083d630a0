#!/usr/bin/env bash
# Table 4 of the Text4Seg paper (referring expression segmentation, cIoU) with a converted official checkpoint:
# RefCOCO val/testA/testB, RefCOCO+ val/testA/testB, RefCOCOg val/test, without and with SAM-H refinement.
#
#   text4seg convert text4seg-llava lmc22/text4seg-llava-7b-p24 --out models/t4s-llava-7b \
#       --vision-tower openai/clip-vit-large-patch14-336
#   DATA=playground/data SAM=sam_vit_h_4b8939.pth bash scripts/reproduce_table4.sh models/t4s-llava-7b
#
# Greedy plain decoding (the original's), batch 1, fp16 on a GPU. Scores land in runs/table4/*/scores.json.
set -euo pipefail
MODEL=${1:?usage: reproduce_table4.sh MODEL_DIR}
DATA=${DATA:-playground/data}
SAM=${SAM:-sam_vit_h_4b8939.pth}
OUT=${OUT:-runs/table4}
for spec in refcoco:val refcoco:testA refcoco:testB refcoco+:val refcoco+:testA refcoco+:testB \
            refcocog:val refcocog:test; do
  dataset=${spec%%:*}; split=${spec##*:}
  for refiner in none sam; do
    text4seg eval refer-seg --model "$MODEL" --data-root "$DATA" --dataset "$dataset" --split "$split" \
      --decoding plain --dtype float16 --refiner "$refiner" --sam-checkpoint "$SAM" \
      --out "$OUT/${dataset}_${split}_${refiner}"
  done
done
