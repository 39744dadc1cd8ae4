"""Prototype (not shipped): the GPT's previous-frame token input taken from the last frame warped on the
ground plane by the known ego motion (tokenized), instead of the raw previous frame's tokens; when the
motion is unknown (dropout) the raw previous frame's tokens, as now. Trains variant A (baseline: never
warped) or B (warped when the motion is known) with the tiny recipe, evaluates on held-out windows.

Usage (after `foresight demo out=RUN`; one thread per run, A and B side by side, ~285 s of training each
on 2 cores plus ~90 s of data preparation):
    OMP_NUM_THREADS=1 python docs/experiments/warp_prev_tokens.py {A|B} RUN/tokenizer RUN/data/train RUN/data/heldout [steps=500] [seed=0]
Prints one JSON line: psnr_{cond,uncond}_t{1,2}, gain_{cond,uncond}_vs_warp_t*, gain_cond_vs_uncond_t*, psnr_warp_t*,
psnr_copy_raw_t* as [mean, standard error] over the 64 held-out windows (3 context frames, greedy).
Measured 2026-12-06 (docs/experiments.md, "the warped last frame as the token to copy")."""
import sys, json, math, time
import numpy as np, torch, torch.nn.functional as F
from torch.utils.data import DataLoader
from data.store.reader import ClipStore
from data.dataset import WindowSpec
from data.schema import CameraIntrinsics, CameraExtrinsics
from world_model.evaluate import _windows, _warp_baseline
from world_model.gpt.config import gpt_config
from world_model.gpt.model import GPT
from world_model.gpt.ego_motion import frame_motions, window_motions
from world_model.gpt.generate import generate_frame
from world_model.tokenizer.export import load_image_tokenizer
from world_model.tokenizer.pixels import frames_to_images
from world_model.tokenizer.metrics import psnr_db
from world_model.tokens.tokenize import frame_poses
from world_model.warp import warp_frames

variant, tok_path, train_dir, held_dir = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
steps = int(sys.argv[5]) if len(sys.argv) > 5 else 500
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
tok = load_image_tokenizer(tok_path).model.eval()

def encode(frames_u8):  # (N, H, W, 3) uint8 -> (N, h, w) int64
    out = []
    with torch.no_grad():
        for i in range(0, len(frames_u8), 256):
            out.append(tok.encode(frames_to_images(torch.from_numpy(np.ascontiguousarray(frames_u8[i:i + 256])))).indices)
    return torch.cat(out)

def camera(store, ci):
    m = store.meta(ci)
    return CameraIntrinsics(**m["intrinsics"]), CameraExtrinsics.from_dict(m["extrinsics"])

t0 = time.perf_counter()
store = ClipStore(train_dir)
clips = []
for ci in range(len(store)):
    n = store.refs[ci].num_frames
    if n < 4: continue
    frames = store.load_frames(ci, np.arange(n))
    poses = frame_poses(store, ci)[:, [0, 1, 3]]
    motions = frame_motions(poses)  # (T, 3), row 0 NaN
    intr, extr = camera(store, ci)
    warped = warp_frames(frames[:-1], intr, extr, motions[1:]).frames  # frame f-1 warped to f, f >= 1
    toks = encode(frames)
    wt = torch.cat([toks[:1], encode(warped)])  # row 0: a placeholder, never read
    clips.append((toks, wt, torch.from_numpy(motions)))
print(f"data: {len(clips)} clips in {time.perf_counter() - t0:.0f} s", flush=True)

class WarpGPT(GPT):
    warped_flat = None  # (B, L) int64 warped previous-frame token of each position's frame
    use_warp = None     # (B,) bool

    def _embed_at(self, tokens_flat, positions, ego_motion=None):
        x = super()._embed_at(tokens_flat, positions, ego_motion)
        if self.warped_flat is None:
            return x
        c, hw = self.config, self.config.tokens_per_frame
        tgt = positions + 1
        orig_pos = tgt - hw
        orig = tokens_flat[:, orig_pos.clamp(0, tokens_flat.shape[1] - 1)]
        orig = torch.where(orig_pos >= 0, orig, c.vocab_size)
        valid = (tgt >= hw) & (tgt < self.warped_flat.shape[1])
        warped = self.warped_flat[:, tgt.clamp(max=self.warped_flat.shape[1] - 1)]
        new = torch.where(self.use_warp[:, None] & valid[None], warped, orig)
        return x - self.prev_token_emb(orig) + self.prev_token_emb(new)

torch.manual_seed(seed)
cfg = gpt_config("tiny", vocab_size=tok.codebook_size, tokens_h=8, tokens_w=16, max_frames=4,
                 prev_frame_token_input=True, prev_frame_token_position="target", dropout=0.0, mup=False, ego_motion_input=True)
model = WarpGPT(cfg)
opt = torch.optim.AdamW(model.param_groups(2e-3, 0.1), lr=2e-3, betas=(0.9, 0.95), eps=1e-8)
warm, decay_start = int(0.05 * steps), int(0.8 * steps)
def factor(s):
    if s < warm: return (s + 1) / warm
    if s < decay_start: return 1.0
    return 1.0 - 0.9 * (s - decay_start) / max(1, steps - decay_start)
sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
g = np.random.default_rng(seed)
t0 = time.perf_counter()
for s in range(steps):
    toks, wts, mots = [], [], []
    for _ in range(8):
        ct, cw, cm = clips[g.integers(len(clips))]
        st = g.integers(len(ct) - 3)
        toks.append(ct[st:st + 4]); wts.append(cw[st:st + 4]); m = cm[st:st + 4].clone(); m[0] = float("nan"); mots.append(m)
    tokens, wt, mot = torch.stack(toks), torch.stack(wts), torch.stack(mots)
    drop = torch.from_numpy(g.random(8) < 0.25)
    mot = torch.where(drop[:, None, None], torch.full_like(mot, float("nan")), mot)
    model.warped_flat = wt.flatten(1)
    model.use_warp = ~drop if variant == "B" else torch.zeros(8, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tokens, targets=tokens, ego_motion=mot)
    opt.zero_grad(set_to_none=True); out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
    if s % 100 == 0: print(s, float(out.loss.detach()), flush=True)
print(f"train {time.perf_counter() - t0:.0f} s", flush=True)
model.eval()

hs = ClipStore(held_dir)
spec = WindowSpec(n_frames=5, fps=5.0, window_stride=5)
ws = _windows(hs, spec, 64)
acc = {}
def add(k, v): acc.setdefault(k, []).append(v.float())
def decode(t): return tok.decode_indices(t)
with torch.no_grad():
    for batch in DataLoader(ws, batch_size=64):
        frames = batch["frames"]; b = frames.shape[0]
        images = frames_to_images(frames.flatten(0, 1)).view(b, 5, 3, 64, 128)
        u8 = frames.numpy()
        toks = encode(u8.reshape(-1, 64, 128, 3)).view(b, 5, 8, 16)
        M = window_motions(batch["past_poses"], batch["has_poses"])  # (B, 5, 3)
        cams = [camera(hs, int(ci)) for ci in batch["clip_index"]]
        def warp_u8(fr, f):  # fr (B, H, W, 3) uint8, motion into frame f
            return np.stack([warp_frames(fr[j:j + 1], *cams[j], M[j, f:f + 1].numpy()).frames[0] for j in range(b)])
        W = torch.zeros_like(toks)
        for f in range(1, 4):
            W[:, f] = encode(warp_u8(u8[:, f - 1], f))
        warped_base, _ = _warp_baseline(hs, batch, images[:, 2], 3, 2)
        for mode in ("cond", "uncond"):
            cond = mode == "cond"
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model.warped_flat = W[:, :4].flatten(1)
                model.use_warp = torch.full((b,), cond and variant == "B")
                p1 = generate_frame(model, toks[:, :3], ego_motion=M[:, :4] if cond else None)
                img1 = decode(p1).float()
                p1_u8 = ((img1.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                W2 = torch.cat([W[:, 1:4], encode(warp_u8(p1_u8, 4))[:, None]], 1)
                model.warped_flat = W2.flatten(1)
                p2 = generate_frame(model, torch.cat([toks[:, 1:3], p1[:, None]], 1), ego_motion=M[:, 1:5] if cond else None)
                img2 = decode(p2).float()
            for i, img in ((1, img1), (2, img2)):
                truth = images[:, 2 + i]
                add(f"psnr_{mode}_t{i}", psnr_db(img, truth))
                add(f"gain_{mode}_vs_warp_t{i}", psnr_db(img, truth) - psnr_db(warped_base[:, i - 1], truth))
        for i in (1, 2):
            truth = images[:, 2 + i]
            add(f"psnr_warp_t{i}", psnr_db(warped_base[:, i - 1], truth)); add(f"psnr_copy_raw_t{i}", psnr_db(images[:, 2], truth))
            add(f"gain_cond_vs_uncond_t{i}", torch.cat(acc[f"psnr_cond_t{i}"][-1:]) - torch.cat(acc[f"psnr_uncond_t{i}"][-1:]))
res = {k: [round(float(torch.cat(v).mean()), 3), round(float(torch.cat(v).std() / math.sqrt(len(torch.cat(v)))), 3)] for k, v in acc.items()}
res.update(variant=variant, steps=steps, seed=seed, n=len(torch.cat(acc["psnr_warp_t1"])))
print(json.dumps(res), flush=True)
