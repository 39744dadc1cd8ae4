"""The subcommand registry of the `foresight` console script.

Each entry names its Hydra config (under configs/) and the function that runs it, imported only
when the subcommand runs, so `foresight --help` stays fast. tests/test_cli.py freezes this set.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    config: str   # Hydra config name relative to configs/, e.g. "data/nuscenes"
    target: str   # "package.module:function" taking the composed DictConfig
    help: str


# A group maps to its subcommands, or (a leaf command such as `foresight demo out=DIR`) to one Subcommand.
GROUPS: dict[str, str] = {
    "data": "Convert datasets into clip stores (nuScenes, nuPlan, OpenDV-YouTube, the procedural world).",
    "train": "Train the tokenizer, the world model and the planner.",
    "eval": "Evaluate: closed-loop simulation, world-model quality, open-loop planning.",
    "demo": "Run the whole pipeline at a chosen profile and write a report.",
    "bench": "Speed benchmarks; each prints one JSON object.",
    "viz": "Pictures of data and results.",
    "serve": "Serve a planner over the NeuroNCAP HTTP contract (/alive, /reset, /infer).",
}

COMMANDS: dict[str, dict[str, Subcommand] | Subcommand] = {
    "data": {
        "nuscenes": Subcommand("data/nuscenes", "data.sources.nuscenes:run", "nuScenes (devkit) -> clip store"),
        "nuplan": Subcommand("data/nuplan", "data.sources.nuplan:run", "nuPlan SQLite logs + sensor_blobs -> clip store"),
        "opendv": Subcommand("data/opendv", "data.sources.opendv:run", "OpenDV-YouTube videos or frame folders -> clip store"),
        "synth": Subcommand("data/synth", "sim_eval.synth:run", "Synthetic clips recorded by the expert in the procedural world"),
        "tokenize": Subcommand("data/tokenize", "world_model.cli:run_tokenize", "Clip store -> uint16 image-token store (resumable)"),
        "merge": Subcommand("data/merge", "data.merge:run", "Merge the journals of conversion ranks run as separate jobs into manifest.json"),
    },
    "train": {
        "tokenizer": Subcommand("train/tokenizer", "world_model.cli:run_train_tokenizer", "Train the image tokenizer on a clip store"),
        "world_model": Subcommand("train/world_model", "world_model.cli:run_train_world_model", "Train the GPT world model on token stores"),
        "planner": Subcommand("train/planner", "planner.cli:run_train_planner", "Train the flow-matching planner on a frozen world model"),
    },
    "eval": {
        "closed_loop": Subcommand("eval/closed_loop", "foresight.closed_loop:run_closed_loop", "Closed-loop simulation of a planner on a scenario suite"),
        "world_model": Subcommand("eval/world_model", "world_model.cli:run_eval_world_model", "Next-token loss, PSNR/SSIM of predicted frames vs copy-last"),
        "open_loop": Subcommand("eval/open_loop", "planner.cli:run_eval_open_loop", "minADE/FDE and L2 of the planner vs baselines on logged clips"),
        "ablation": Subcommand("eval/ablation", "foresight.closed_loop:run_ablation", "Planner with observed / imagined / no video in closed loop"),
    },
    "demo": Subcommand("demo", "foresight.demo:run", "The whole pipeline on the procedural world, then DIR/report.md/.html"),
    "bench": {
        "data": Subcommand("bench/data", "data.bench:run", "Dataset read speed (windows/s, MB/s) per frame codec"),
        "sim": Subcommand("bench/sim", "sim_eval.bench:run", "Simulator steps/s and camera frames/s vs highway-env"),
        "world_model": Subcommand("bench/world_model", "world_model.cli:run_bench", "World-model training/decoding tokens/s vs Hugging Face GPT-2"),
        "planner": Subcommand("bench/planner", "planner.cli:run_bench", "Planner latency: encode, flow steps, total (JSON)"),
        "closed_loop": Subcommand("bench/closed_loop", "foresight.bench_closed_loop:run", "Closed-loop episodes/s, one at a time vs lockstep batches"),
        "convert": Subcommand("bench/convert", "data.bench_convert:run", "OpenDV-like video conversion speed: 1 vs 2 workers vs decoding alone"),
    },
    "viz": {
        "clip": Subcommand("viz/clip", "data.viz:run", "PNG strip of a clip's frames beside its bird's-eye trajectory"),
    },
    "serve": Subcommand("serve", "foresight.serve:run", "Serve a planner over the NeuroNCAP HTTP contract"),
}
