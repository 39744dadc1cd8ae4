#!/usr/bin/env bash
# The GPU checks in one call (a machine with one CUDA GPU and the project's dependencies):
#   1. `foresight bench world_model experiment=S` at 288x512 (8 frames x 576 tokens), bf16, compiled
#      as the S profile trains: tokens/s, MFU, the same-run Hugging Face GPT-2 ratio;
#   2. the same without torch.compile (what compile buys);
#   3. `foresight demo profile=smoke` end to end on the GPU (every stage's CUDA path);
#   4. the smoke planner in closed loop on the GPU, batch 1 against one lockstep batch, and an S
#      planner's plans/s at batch 1 and 64 (`bench planner`, random weights);
#   5. imagined S frames at batch 32 (steps 1-2 give batch 1): token by token, speculative, and
#      speculative through fixed-shape steps (CUDA graphs when compiled).
# Results land in $OUT (default runs/gpu_check): bench_S_compiled.json, bench_S_eager.json,
# demo_smoke.log, demo_metrics.json, demo_report.md (the demo itself in $DEMO_OUT), and this run's
# log. Each step has its own time limit so a slow one cannot starve the next; a failed step is logged and the rest still run.
#
#   bash benchmarks/gpu_check.sh                  # where `foresight` is installed
#   FORESIGHT="python3 -m foresight.cli" bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-runs/gpu_check}
FORESIGHT=${FORESIGHT:-foresight}
EXPERIMENT=${EXPERIMENT:-S}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-300}
DEMO_LIMIT_S=${DEMO_LIMIT_S:-180}
DEMO_OUT=${DEMO_OUT:-$OUT/demo}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, report its status and seconds
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: $*" >&2
    timeout "$limit" "$@"
    echo "== $name: exit $? after $((SECONDS - t0)) s" >&2
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

bench=(bench world_model "experiment=$EXPERIMENT" image_height=288 image_width=512 "precisions=[bf16]" train_steps=8 warmup_steps=3 tokenizer_steps=3)
step bench_compiled "$BENCH_LIMIT_S" $FORESIGHT "${bench[@]}" compile=auto > "$OUT/bench_${EXPERIMENT}_compiled.json"
step bench_eager "$BENCH_LIMIT_S" $FORESIGHT "${bench[@]}" compile=false hf_baseline=false > "$OUT/bench_${EXPERIMENT}_eager.json"
step demo_smoke "$DEMO_LIMIT_S" $FORESIGHT demo "out=$DEMO_OUT" profile=smoke > "$OUT/demo_smoke.log" 2>&1
cp "$DEMO_OUT/metrics.json" "$OUT/demo_metrics.json" 2>/dev/null || true
# The smoke demo's planner in closed loop on the GPU: one episode at a time vs one lockstep batch.
step closed_loop_gpu "$BENCH_LIMIT_S" $FORESIGHT bench closed_loop "checkpoint=$DEMO_OUT/planner/vam" vam.device=cuda vam.precision=bf16 \
    episodes=64 workers=1 > "$OUT/bench_closed_loop_gpu.json"
cp "$DEMO_OUT/report.md" "$OUT/demo_report.md" 2>/dev/null || true
# An S planner (random weights; speed does not depend on them) on the GPU: plans/s at batch 1 and 64.
step planner_S "$BENCH_LIMIT_S" $FORESIGHT bench planner "experiment=$EXPERIMENT" image_height=288 image_width=512 device=cuda \
    precision=bf16 "batch_sizes=[1,64]" rounds=1 > "$OUT/bench_planner_${EXPERIMENT}.json"
step imagine_batch32 "$BENCH_LIMIT_S" $FORESIGHT "${bench[@]}" compile=auto hf_baseline=false train_steps=1 warmup_steps=1 \
    imagine_batch=32 imagine_windows=32 > "$OUT/bench_${EXPERIMENT}_imagine_batch32.json"
tail -n 5 "$OUT/demo_smoke.log"

python3 - "$OUT" "$EXPERIMENT" <<'EOF'
import json, sys
out, experiment = sys.argv[1], sys.argv[2]
for name in ("compiled", "eager", "imagine_batch32"):
    try:
        r = json.load(open(f"{out}/bench_{experiment}_{name}.json"))
    except (OSError, ValueError) as exc:
        print(name, "no result:", exc)
        continue
    keys = ("device", "compiled", "train_tokens_per_s", "mfu", "mfu_vs_matmul", "matmul_bf16_tflops", "flops_per_token",
            "hf_gpt2_train_tokens_per_s", "hf_gpt2_train_tokens_per_s_bf16", "train_ratio_vs_hf", "train_ratio_vs_hf_bf16",
            "decode_cached_tokens_per_s", "decode_uncached_tokens_per_s", "tokenizer_images_per_s",
            "imagine_batch", "imagine_frame_s_plain", "imagine_frame_s", "imagine_frame_s_static", "imagine_static_compile",
            "imagine_identical", "imagine_static_identical", "model_calls_per_frame")
    print(name, json.dumps({k: r.get(k) for k in keys}))
try:
    print("planner", open(f"{out}/bench_planner_{experiment}.json").read().strip())
except OSError as exc:
    print("planner no result:", exc)
EOF
