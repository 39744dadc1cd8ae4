"""Feasibility: PSNR of the ground-plane warp through the tokenizer (decode(encode(warp))) vs the raw warp,
copy-last raw / through the tokenizer, on held-out windows (64, context 3 as `foresight eval world_model`), horizon 2.
Usage: python docs/experiments/warp_through_tokenizer.py RUN/tokenizer RUN/data/heldout 3 [max_windows=64]"""
import sys, json, torch, numpy as np
from torch.utils.data import DataLoader
from data.store.reader import ClipStore
from data.dataset import WindowSpec
from world_model.evaluate import _windows, _warp_baseline, _encode
from world_model.tokenizer.export import load_image_tokenizer
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokenizer.metrics import psnr_db
tok = load_image_tokenizer(sys.argv[1]).model.eval()
store = ClipStore(sys.argv[2]); n_context = int(sys.argv[3]); horizon = 2
spec = WindowSpec(n_frames=n_context + horizon, fps=5.0, window_stride=n_context + horizon)
ws = _windows(store, spec, int(sys.argv[4]) if len(sys.argv) > 4 else 64)
acc = {}
def add(k, v): acc.setdefault(k, []).append(v)
with torch.no_grad():
    for batch in DataLoader(ws, batch_size=64):
        frames = batch["frames"]; b, t = frames.shape[:2]
        images = frames_to_images(frames.flatten(0, 1)).view(b, t, 3, *frames.shape[2:4])
        last = images[:, n_context - 1]
        warped, has = _warp_baseline(store, batch, last, n_context, horizon)
        _, last_tok = _encode(tok, last)
        for i in range(horizon):
            truth = images[:, n_context + i]
            _, wt = _encode(tok, warped[:, i])
            _, tt = _encode(tok, truth)
            add(f"warp_t{i+1}", psnr_db(warped[:, i], truth)); add(f"warp_tok_t{i+1}", psnr_db(wt, truth))
            add(f"copy_raw_t{i+1}", psnr_db(last, truth)); add(f"copy_tok_t{i+1}", psnr_db(last_tok, truth))
            add(f"truth_tok_t{i+1}", psnr_db(tt, truth))
            add(f"gain_warp_tok_vs_warp_t{i+1}", psnr_db(wt, truth) - psnr_db(warped[:, i], truth))
out = {k: [round(float(torch.cat(v).mean()), 3), round(float(torch.cat(v).std() / len(torch.cat(v)) ** 0.5), 3)] for k, v in acc.items()}
out["n"] = len(torch.cat(acc["warp_t1"]))
print(json.dumps(out))
