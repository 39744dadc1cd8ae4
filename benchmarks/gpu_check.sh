#!/usr/bin/env bash
# The GPU checks in one call (a machine with one CUDA GPU and the project's dependencies). Steps:
#   bench_compiled   `foresight bench world_model experiment=S` at 288x512 (8 frames x 576 tokens), bf16,
#                    compiled as the S profile trains: tokens/s, MFU, the same-run Hugging Face GPT-2 ratio;
#   bench_eager      the same without torch.compile (what compile buys);
#   demo_smoke       `foresight demo profile=smoke` end to end on the GPU, its planner on CUDA in closed loop;
#   closed_loop_gpu  the smoke planner (or $VAM) in closed loop on the GPU, one episode at a time against
#                    one lockstep batch (`bench closed_loop`);
#   planner_S        an S planner's plans/s at batch 1 and 64 (`bench planner`, random weights);
#   imagine_S_b1, imagine_S_b32   imagined S frames (random weights) at batch 1 and 32, decoding only
#                    (train_steps=0): token by token, speculative, and speculative through fixed-shape
#                    steps under torch.compile (CUDA graphs);
#   imagine_trained  the same with a trained world model ($WORLD_MODEL) on real token windows ($TOKENS),
#                    at batch 1 and 32: what the draft accepts when the model has learnt something.
# STEPS picks a subset (default: all but imagine_trained unless WORLD_MODEL and TOKENS are set). Results
# land in $OUT (default runs/gpu_check), one JSON per step, and this run's log. Each step has its own time
# limit so a slow one cannot starve the next; a failed step is logged and the rest still run.
#
#   bash benchmarks/gpu_check.sh                  # where `foresight` is installed
#   FORESIGHT="python3 -m foresight.cli" STEPS="planner_S imagine_S_b1" bash benchmarks/gpu_check.sh
# DEVICE=cpu runs the planner steps on the CPU (to check the script itself without a GPU).
set -u
OUT=${OUT:-runs/gpu_check}
FORESIGHT=${FORESIGHT:-foresight}
EXPERIMENT=${EXPERIMENT:-S}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-300}
DEMO_LIMIT_S=${DEMO_LIMIT_S:-180}
IMAGINE_LIMIT_S=${IMAGINE_LIMIT_S:-240}
DEMO_OUT=${DEMO_OUT:-$OUT/demo}
VAM=${VAM:-$DEMO_OUT/planner/vam}
WORLD_MODEL=${WORLD_MODEL:-}
TOKENS=${TOKENS:-}
DEFAULT_STEPS="bench_compiled bench_eager demo_smoke closed_loop_gpu planner_S imagine_S_b1 imagine_S_b32"
[ -n "$WORLD_MODEL" ] && [ -n "$TOKENS" ] && DEFAULT_STEPS="$DEFAULT_STEPS imagine_trained"
STEPS=${STEPS:-$DEFAULT_STEPS}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

step() {  # step NAME LIMIT_S OUTPUT COMMAND...: if NAME is in STEPS, run with a time limit, stdout to OUTPUT (stderr too for a .log)
    local name=$1 limit=$2 output=$3
    shift 3
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    local t0=$SECONDS
    echo "== $name: $*" >&2
    if [[ $output == *.log ]]; then timeout "$limit" "$@" > "$output" 2>&1; else timeout "$limit" "$@" > "$output"; fi
    echo "== $name: exit $? after $((SECONDS - t0)) s" >&2
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

bench=(bench world_model "experiment=$EXPERIMENT" image_height=288 image_width=512 "precisions=[bf16]" train_steps=8 warmup_steps=3 tokenizer_steps=3)
step bench_compiled "$BENCH_LIMIT_S" "$OUT/bench_${EXPERIMENT}_compiled.json" $FORESIGHT "${bench[@]}" compile=auto
step bench_eager "$BENCH_LIMIT_S" "$OUT/bench_${EXPERIMENT}_eager.json" $FORESIGHT "${bench[@]}" compile=false hf_baseline=false
# The smoke demo on the GPU, its learned planner on CUDA in closed loop and in the ablation.
step demo_smoke "$DEMO_LIMIT_S" "$OUT/demo_smoke.log" $FORESIGHT demo "out=$DEMO_OUT" profile=smoke +profile.vam.device=cuda +profile.vam.precision=bf16
cp "$DEMO_OUT/metrics.json" "$OUT/demo_metrics.json" 2>/dev/null || true
cp "$DEMO_OUT/report.md" "$OUT/demo_report.md" 2>/dev/null || true
# A learned planner in closed loop on the GPU: one episode at a time vs one lockstep batch, same episodes.
step closed_loop_gpu "$BENCH_LIMIT_S" "$OUT/bench_closed_loop_gpu.json" $FORESIGHT bench closed_loop "checkpoint=$VAM" vam.device=${DEVICE:-cuda} vam.precision=bf16 \
    episodes=${CLOSED_LOOP_EPISODES:-64} workers=1
# An S planner (random weights; speed does not depend on them) on the GPU: plans/s at batch 1 and 64.
step planner_S "$BENCH_LIMIT_S" "$OUT/bench_planner_${EXPERIMENT}.json" $FORESIGHT bench planner "experiment=$EXPERIMENT" image_height=288 image_width=512 device=${DEVICE:-cuda} \
    precision=bf16 "batch_sizes=[1,64]" rounds=1
# Imagined S frames, decoding only: batch 1 (one window) and batch 32 (one batch of 32 windows).
imagine=(bench world_model "experiment=$EXPERIMENT" image_height=288 image_width=512 "precisions=[bf16]" train_steps=0 compile=true \
    hf_baseline=false tokenizer_steps=1)
step imagine_S_b1 "$IMAGINE_LIMIT_S" "$OUT/bench_${EXPERIMENT}_imagine_batch1.json" $FORESIGHT "${imagine[@]}" imagine_batch=1 imagine_windows=1
step imagine_S_b32 "$IMAGINE_LIMIT_S" "$OUT/bench_${EXPERIMENT}_imagine_batch32.json" $FORESIGHT "${imagine[@]}" imagine_batch=32 imagine_windows=32
# A trained world model on real windows (its own experiment's frame size): what the draft accepts in practice.
trained=(bench world_model "imagine_world_model=$WORLD_MODEL" "imagine_tokens=$TOKENS" "precisions=[bf16]" train_steps=0 compile=true hf_baseline=false)
step imagine_trained "$IMAGINE_LIMIT_S" "$OUT/bench_trained_imagine_batch1.json" $FORESIGHT "${trained[@]}" imagine_batch=1 imagine_windows=16
step imagine_trained "$IMAGINE_LIMIT_S" "$OUT/bench_trained_imagine_batch32.json" $FORESIGHT "${trained[@]}" imagine_batch=32 imagine_windows=64
tail -n 5 "$OUT/demo_smoke.log" 2>/dev/null

python3 - "$OUT" "$EXPERIMENT" <<'EOF'
import json, sys
out, experiment = sys.argv[1], sys.argv[2]
for name in (f"{experiment}_compiled", f"{experiment}_eager", f"{experiment}_imagine_batch1", f"{experiment}_imagine_batch32",
             "trained_imagine_batch1", "trained_imagine_batch32", "closed_loop_gpu"):
    try:
        r = json.load(open(f"{out}/bench_{name}.json"))
    except (OSError, ValueError) as exc:
        print(name, "no result:", exc)
        continue
    keys = ("device", "compiled", "train_tokens_per_s", "mfu", "mfu_vs_matmul", "matmul_bf16_tflops", "flops_per_token",
            "hf_gpt2_train_tokens_per_s", "hf_gpt2_train_tokens_per_s_bf16", "train_ratio_vs_hf", "train_ratio_vs_hf_bf16",
            "decode_cached_tokens_per_s", "decode_uncached_tokens_per_s", "tokenizer_images_per_s",
            "imagine_batch", "imagine_frame_s_plain", "imagine_frame_s", "imagine_frame_s_static", "imagine_static_compile",
            "imagine_identical", "imagine_static_identical", "imagine_static_error", "model_calls_per_frame", "draft_acceptance",
            "episodes_per_s_batched", "episodes_per_s_unbatched", "batched_ratio", "scores_identical", "max_score_difference")
    if name == "closed_loop_gpu":
        keys = tuple(k for k in r if not isinstance(r[k], (list, dict)))
    print(name, json.dumps({k: r.get(k) for k in keys}))
try:
    print("planner", open(f"{out}/bench_planner_{experiment}.json").read().strip())
except OSError as exc:
    print("planner no result:", exc)
EOF
