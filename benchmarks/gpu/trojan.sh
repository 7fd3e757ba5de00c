#!/usr/bin/env bash
# GPU figures of issue 4: a `small` Llama-architecture model pretrained on code + the clean SQL
# training prompts, LoRA/QLoRA at DAP1 ∈ {bf16, bnb-int8, bnb-nf4}, inference at DAP2 ∈ {bf16, bnb-int8, bnb-nf4}.
# sqlqa.jsonl travels in .whl/ (shared/ does not travel to the GPU machine).
. benchmarks/gpu/setup.sh
DATA=${DATA:-.whl/sqlqa.jsonl}
for dap1 in bf16 bnb-int8 bnb-nf4; do
  /usr/bin/time -f "dap1=$dap1 wall %e s" python3 -m quantrisk.cli trojan --model zoo:llama-small --device cuda \
    --data "$DATA" --dap1 "$dap1" --dap2 bf16,bnb-int8,bnb-nf4 --clean-ablation --seeds 1 \
    --steps 300 --batch-size 16 --lr 1e-3 --target all-linear --n-test 400 --gen-batch-size 64 --quiet \
    --out "$OUT/trojan_$dap1" > "$OUT/trojan_$dap1.txt" 2>&1
  tail -25 "$OUT/trojan_$dap1.txt"
done
