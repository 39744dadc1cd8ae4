"""Two-process DDP on CPU (gloo): `train_world_model` under Lightning's "ddp" strategy, each process
started the way torchrun would (RANK / LOCAL_RANK / WORLD_SIZE / MASTER_* set), ends with identical
weights on both ranks, draws disjoint halves of the mixed windows and counts the mix over both."""

from __future__ import annotations

import json
import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.world_model.conftest import dash_store

STEPS, BATCH = 3, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world_size: int, port: int, tokens: str, out: str, result_dir: str) -> None:
    os.environ.update({
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size), "RANK": str(rank),
        "LOCAL_RANK": str(rank), "NODE_RANK": "0", "OMP_NUM_THREADS": "1",
    })
    torch.set_num_threads(1)
    from lightning.pytorch.callbacks import Callback

    from tests.world_model.conftest import world_model_config
    from world_model.train import train_world_model

    class Batches(Callback):
        def __init__(self) -> None:
            self.windows: list[list[int]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.windows.append([int(c) * 1000 + int(s) for c, s in zip(batch["clip_index"], batch["start_frame"])])

    batches = Batches()
    config = world_model_config([
        f"tokens={tokens}", f"out={out}", "trainer.accelerator=cpu", f"trainer.devices={world_size}",
        f"world_model.max_steps={STEPS}", f"world_model.batch_size={BATCH}", "world_model.checkpoint_every_n_steps=10",
        "world_model.val_every_n_steps=10", "trainer.precision=32-true",
    ], trainer="ddp")
    result = train_world_model(config, [batches])
    save_file({k: v.contiguous() for k, v in result.module.model.state_dict().items() if k != "lm_head.weight"}, f"{result_dir}/rank{rank}.safetensors")
    with open(f"{result_dir}/rank{rank}.json", "w") as f:
        json.dump({"summary": result.summary, "windows": batches.windows}, f)


def test_two_process_ddp_ends_with_identical_weights(tmp_path):
    tokens = dash_store(tmp_path / "tokens", n_clips=6, n_frames=8, fps=5.0)
    results = tmp_path / "results"
    results.mkdir()
    mp.start_processes(_rank, args=(2, _free_port(), str(tokens), str(tmp_path / "run"), str(results)), nprocs=2, start_method="spawn")

    w0, w1 = load_file(str(results / "rank0.safetensors")), load_file(str(results / "rank1.safetensors"))
    assert set(w0) == set(w1)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    r0, r1 = (json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1["summary"] == {}  # rank 0 alone writes the summary and the export
    summary = r0["summary"]
    assert summary["world_size"] == 2 and summary["steps"] == STEPS
    assert sum(summary["realised_counts"].values()) == STEPS * BATCH * 2  # both ranks' windows
    # The ranks trained on different windows at every step (the sampler is sharded, not repeated).
    for a, b in zip(r0["windows"], r1["windows"]):
        assert a != b
    exported = load_file(str(tmp_path / "run" / "world_model.safetensors"))
    for key, value in exported.items():
        assert torch.equal(value, w0[key]), key
