"""`foresight bench world_model`: training and decoding speed of the world model, and tokenizer speed.

All ratios are measured in the same run on the same machine:
  train_tokens_per_s: our GPT's training step (forward, backward, clip, AdamW) in the fastest of
    the configured autocast precisions (each one is reported too);
  hf_gpt2_train_tokens_per_s: Hugging Face `transformers` GPT2LMHeadModel built from a GPT2Config
    of the same width, depth, heads, vocabulary and sequence length (never downloaded), same
    optimizer, as it trains by default (fp32); null with `hf_note` when transformers is missing;
  train_ratio_vs_hf: the first over the second (our recipe, bf16 autocast where faster, against
    GPT-2 as shipped); train_ratio_vs_hf_<precision>: both at the same precision (GPT-2 under the
    same autocast), which isolates the architecture and kernels;
  decode_cached / uncached_tokens_per_s: greedy token-by-token decoding after a full context
    window, with the KV cache and by rerunning the whole sequence per token;
  imagine_frame_s / imagine_frame_s_plain: seconds per imagined frame (greedy, after a context of
    max_frames - 1 frames, KV cache) with speculative decoding (the previous frame as the draft,
    world_model/gpt/speculative.py) and token by token; imagine_speedup, their ratio;
    imagine_identical, whether both gave the same tokens; draft_acceptance and
    model_calls_per_frame of the speculative run. With `imagine_world_model` (a trained model) and
    `imagine_tokens` (a token store) the frames are real; otherwise random weights on tokens that
    keep two thirds of the previous frame, where the model rarely agrees with the draft
    (imagine_weights says which). With `imagine_conditioned` (the default) a world model told the
    ego's motion and the warped previous frame (GPTConfig.ego_motion_input / prev_frame_warp) is told
    both for each imagined frame, from the store's poses and warped tokens, as the planner's imagine
    mode tells it its plan's motion (the warped frame is then the draft): imagine_conditioning says
    what it was told ("motion+warp", "motion" or "none"); imagine_frame_s_static, imagine_speedup_static and
    imagine_static_identical: the same speculative decoding through fixed-shape steps of
    imagine_static_block draft tokens (world_model/gpt/static_step.py), under torch.compile when
    `compile` is on (mode reduce-overhead, i.e. CUDA graphs, on a GPU; imagine_static_compile); if that
    path fails (e.g. the compiler), imagine_static_error says why and its figures are null;
  tokenizer_images_per_s (encode) and tokenizer_decode_images_per_s;
  mfu: model FLOPs utilisation of the training step, on CUDA only: flops_per_token (6N + 12 L d T,
    N = the parameters that multiply, i.e. all but the embedding lookups; the tied output head
    counts) times train_tokens_per_s over the GPU's dense bf16 datasheet peak; beside it
    matmul_bf16_tflops (an 8192^3 bf16 matrix product measured in the same run) and
    mfu_vs_matmul, the same FLOP rate against that achievable ceiling.
  train_steps=0 times no training (train_* and mfu null), only decoding, imagined frames and the tokenizer;
  compiled: whether our GPT ran under torch.compile (`compile: auto` = the profile's `compile` on
    CUDA, never on CPU), which is how the training command runs it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from configs import build, plain
from world_model.artifact import load_world_model
from world_model.gpt.config import GPTConfig
from world_model.gpt.generate import generate_frame
from world_model.gpt.kv_cache import KVCache
from world_model.gpt.model import GPT
from world_model.gpt.speculative import DecodeStats
from world_model.gpt.static_step import StaticDecoder
from world_model.tokenizer.model import ConvTokenizer, TokenizerConfig, tokenizer_config
from world_model.tokens.reader import TokenStore
from world_model.tokens_dataset import TokenWindowDataset
from world_model.train_config import WorldModelProfile

PRECISIONS = ("fp32", "bf16")
# Dense bf16 peak FLOP/s by GPU name fragment (vendor datasheets, without sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


@dataclass(frozen=True)
class BenchConfig:
    """The `bench world_model` settings (configs/bench/world_model.yaml holds the defaults); gpt and
    tokenizer come from the experiment's profiles, profile_compile is the world_model profile's `compile`."""

    gpt: GPTConfig
    tokenizer: TokenizerConfig
    image_height: int
    image_width: int
    train_batch: int
    train_steps: int
    warmup_steps: int
    precisions: tuple[str, ...]
    decode_batch: int
    decode_tokens: int
    imagine_world_model: str | None
    imagine_tokens: str | None
    imagine_windows: int
    imagine_batch: int
    imagine_static_block: int
    imagine_conditioned: bool
    tokenizer_batch: int
    tokenizer_steps: int
    hf_baseline: bool
    device: str
    seed: int
    compile: str
    profile_compile: bool

    def __post_init__(self) -> None:
        bad = sorted(set(self.precisions) - set(PRECISIONS)) or ([] if self.precisions else ["(none)"])
        if bad:
            raise ValueError(f"bench world_model: precisions must be a non-empty subset of {PRECISIONS}, got {list(self.precisions)}")
        if self.train_steps < 0:
            raise ValueError(f"bench world_model: train_steps must be >= 0 (0 skips the training figures), got {self.train_steps}")
        for name in ("train_batch", "decode_batch", "decode_tokens", "tokenizer_batch", "tokenizer_steps", "imagine_windows", "imagine_batch", "imagine_static_block"):
            if getattr(self, name) < 1:
                raise ValueError(f"bench world_model: {name} must be >= 1, got {getattr(self, name)}")
        if self.decode_tokens >= self.gpt.max_tokens:
            raise ValueError(f"bench world_model: decode_tokens {self.decode_tokens} must be < the context of {self.gpt.max_tokens} tokens")

    @classmethod
    def from_config(cls, cfg: Any) -> "BenchConfig":
        """The composed configs/bench/world_model.yaml: each of its keys is a field (a missing one is
        named), except the experiment's profiles: tokenizer and world_model give gpt, tokenizer and
        profile_compile. What the experiment adds for other commands (planner, sources, ...) is not read."""
        d = plain(cfg)
        tok = dict(d["tokenizer"])
        tconfig = tokenizer_config(tok["size"], **dict(tok.get("model") or {}))
        f = tconfig.downsample_factor
        h, w = int(d["image_height"]), int(d["image_width"])
        if h % f or w % f:
            raise ValueError(f"bench world_model: image {h}x{w} is not a multiple of the tokenizer's factor {f}")
        profile = WorldModelProfile.from_mapping(d["world_model"])
        compile_mode = str(d["compile"]).lower()
        if compile_mode not in ("auto", "true", "false"):
            raise ValueError(f"bench world_model: compile must be auto, true or false, got {d['compile']!r}")
        derived = {"gpt": profile.gpt(tconfig.codebook_size, (h // f, w // f)), "tokenizer": tconfig, "profile_compile": bool(profile.compile)}
        own = {name: d[name] for name in BENCH_KEYS if name in d}
        return build(cls, {**own, **derived, "image_height": h, "image_width": w, "compile": compile_mode}, "bench world_model")

    def compile_on(self, device: torch.device) -> bool:
        """Whether our GPT is torch.compiled: `auto` follows the profile on CUDA and is off on CPU."""
        if self.compile == "auto":
            return self.profile_compile and device.type == "cuda"
        return self.compile == "true"


# The keys of configs/bench/world_model.yaml's own section (the fields not derived from the profiles).
BENCH_KEYS = tuple(f.name for f in fields(BenchConfig) if f.name not in ("gpt", "tokenizer", "profile_compile"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _time_steps(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of `step`, after `warmup` untimed calls (median of the timed calls)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _train_step_fn(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], device: torch.device, precision: str) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def step() -> None:
        with _autocast(device, precision):
            loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _tokens(c: BenchConfig, batch: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(c.seed)
    return torch.randint(0, c.gpt.vocab_size, (batch, c.gpt.max_frames, c.gpt.tokens_h, c.gpt.tokens_w), generator=g).to(device)


def bench_ours_train(c: BenchConfig, device: torch.device, precision: str) -> float:
    """Training tokens/s of our GPT at `precision`."""
    torch.manual_seed(c.seed)
    model = GPT(c.gpt).to(device).train()
    if c.compile_on(device):
        model.compile()  # compiles during the warmup steps
    tokens = _tokens(c, c.train_batch, device)
    step = _train_step_fn(model, lambda: model(tokens, targets=tokens).loss, device, precision)
    return c.train_batch * c.gpt.max_tokens / _time_steps(step, c.train_steps, c.warmup_steps, device)


def hf_gpt2(config: GPTConfig) -> torch.nn.Module:
    """GPT2LMHeadModel of the same shape (raises ImportError without transformers); no dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_config = GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.max_tokens, n_embd=config.n_embd, n_layer=config.n_layer,
        n_head=config.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,  # GPT-2's 50256 is outside our vocabulary; no special tokens here
    )
    return GPT2LMHeadModel(hf_config)


def bench_hf_train(c: BenchConfig, device: torch.device, precision: str) -> float:
    """Training tokens/s of Hugging Face GPT-2 of our shape at `precision`."""
    torch.manual_seed(c.seed)
    model = hf_gpt2(c.gpt).to(device).train()
    ids = _tokens(c, c.train_batch, device).flatten(1)  # (B, L)
    step = _train_step_fn(model, lambda: model(input_ids=ids, labels=ids).loss, device, precision)
    return c.train_batch * c.gpt.max_tokens / _time_steps(step, c.train_steps, c.warmup_steps, device)


@torch.no_grad()
def bench_decode(c: BenchConfig, device: torch.device, precision: str) -> dict[str, float]:
    """Greedy decoding tokens/s after a context of (max_frames - 1) frames, with and without the KV cache."""
    torch.manual_seed(c.seed)
    model = GPT(c.gpt).to(device).eval()
    n_known = (c.gpt.max_frames - 1) * c.gpt.tokens_per_frame
    n_new = min(c.decode_tokens, c.gpt.max_tokens - n_known) if n_known < c.gpt.max_tokens else 0
    if n_new < 1:
        raise ValueError("bench world_model: no room to decode after the context")
    sequence = _tokens(c, c.decode_batch, device).flatten(1)  # (B, L)

    def cached() -> None:
        cache = KVCache(c.gpt.n_layer, c.gpt.max_tokens)
        logits = model.forward_flat(sequence[:, :n_known], cache, only_last_logits=True)
        for i in range(n_new):
            sequence[:, n_known + i] = logits[:, -1].argmax(-1)
            logits = model.forward_flat(sequence[:, : n_known + i + 1], cache, only_last_logits=True)

    def prefill() -> None:
        model.forward_flat(sequence[:, :n_known], KVCache(c.gpt.n_layer, c.gpt.max_tokens), only_last_logits=True)

    def uncached() -> None:
        for i in range(n_new):
            sequence[:, n_known + i] = model.forward_flat(sequence[:, : n_known + i], only_last_logits=True)[:, -1].argmax(-1)

    with _autocast(device, precision):
        t_prefill = _time_steps(prefill, 3, 1, device)
        t_cached = _time_steps(cached, 3, 1, device) - t_prefill
        t_uncached = _time_steps(uncached, 1, 0, device)
    n = c.decode_batch * n_new
    return {
        "decode_cached_tokens_per_s": n / max(t_cached, 1e-9),
        "decode_uncached_tokens_per_s": n / t_uncached,
        "prefill_tokens_per_s": c.decode_batch * n_known / t_prefill,
    }


@dataclass(frozen=True)
class ImagineWindows:
    """Context windows to imagine one frame after: tokens (N, T, h, w) int64; with conditioning,
    ego_motion (N, T + 1, 3) float32 the motions into the window's frames and into the frame to
    imagine (NaN = unknown) and warped_prev (N, T + 1, h, w) int64 their warped previous-frame
    tokens (-1 = unknown), else None."""

    tokens: torch.Tensor
    ego_motion: torch.Tensor | None = None
    warped_prev: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def to(self, device: torch.device) -> "ImagineWindows":
        return ImagineWindows(*(None if t is None else t.to(device) for t in (self.tokens, self.ego_motion, self.warped_prev)))

    def batch(self, start: int, size: int) -> dict[str, torch.Tensor | None]:
        """generate_frame's inputs for windows start .. start + size - 1."""
        parts = (None if t is None else t[start : start + size] for t in (self.tokens, self.ego_motion, self.warped_prev))
        return dict(zip(("window_tokens", "ego_motion", "warped_prev"), parts))

    @property
    def conditioning(self) -> str:
        return "+".join(n for n, t in (("motion", self.ego_motion), ("warp", self.warped_prev)) if t is not None) or "none"


def _store_windows(store: TokenStore, fps: float | None, n_frames: int, n_windows: int, motion: bool = False, warp: bool = False) -> ImagineWindows:
    """n_windows context windows of n_frames frames at the model's frame rate, evenly spread over the
    store. With `motion` / `warp` (for a model told them) each window also carries the motions into
    its frames and the next one (from the store's poses) / their warped previous-frame tokens (stored
    at the store's own frame rate, so only where it is the model's); None when no clip has them. The
    windows are the world model's training windows (`TokenWindowDataset`), cut without overlap."""
    n_cut = n_frames + 1 if motion or warp else n_frames  # the frame after the window gives its motion and warped tokens
    clips, poses, warped = [], [], []
    for i in range(len(store)):
        stride = max(1, round(float(store.meta(i)["fps"]) / fps)) if fps else 1
        clip_poses = store.clip_poses(i) if motion else None
        clips.append(store.clip_tokens(i)[::stride])
        poses.append(None if clip_poses is None else clip_poses[::stride])
        warped.append(store.clip_warped(i) if warp and stride == 1 else None)
    windows = TokenWindowDataset(clips, n_cut, stride=n_cut, poses=poses, warped=warped)
    if not len(windows):
        raise ValueError(f"bench world_model: token store {store.root} has no clip of {n_cut} frames at {fps} fps")
    picks = torch.linspace(0, len(windows) - 1, min(n_windows, len(windows))).round().long().unique()
    items = [windows[int(i)] for i in picks]
    tokens = torch.stack([item["tokens"][:n_frames] for item in items])  # (N, n_frames, h, w)
    motions = torch.stack([item["ego_motion"] for item in items])  # (N, n_cut, 3), NaN = unknown
    warps = torch.stack([item["warped_prev"] for item in items])  # (N, n_cut, h, w), -1 = unknown
    told_motion = motion and bool(torch.isfinite(motions).any())
    told_warp = warp and bool((warps >= 0).any())
    return ImagineWindows(tokens, motions if told_motion else None, warps if told_warp else None)


def _drifting_windows(config: GPTConfig, n_windows: int, n_frames: int, seed: int, keep: float = 2 / 3) -> torch.Tensor:
    """(N, n_frames, h, w) random tokens where each frame keeps a fraction `keep` of the previous one."""
    g = torch.Generator().manual_seed(seed)
    shape = (n_windows, config.tokens_h, config.tokens_w)
    frames = [torch.randint(0, config.vocab_size, shape, generator=g)]
    for _ in range(n_frames - 1):
        redraw = torch.rand(shape, generator=g) >= keep
        frames.append(torch.where(redraw, torch.randint(0, config.vocab_size, shape, generator=g), frames[-1]))
    return torch.stack(frames, dim=1)


@torch.no_grad()
def bench_imagine(c: BenchConfig, device: torch.device, precision: str) -> dict[str, Any]:
    """Seconds per greedy imagined frame, speculative against token by token, on the same windows."""
    loaded = None
    if c.imagine_world_model:
        loaded = load_world_model(c.imagine_world_model, map_location=device)
        model, fps, weights = loaded.model, loaded.meta.fps, str(loaded.path)
    else:
        torch.manual_seed(c.seed)
        model, fps, weights = GPT(c.gpt).to(device).eval(), None, "random"
    n_context = model.config.max_frames - 1
    if c.imagine_tokens:
        store = TokenStore(c.imagine_tokens)
        if (tuple(store.grid_hw), store.codebook_size) != ((model.config.tokens_h, model.config.tokens_w), model.config.vocab_size):
            raise ValueError(f"bench world_model: token store {store.root} ({store.grid_hw}, {store.codebook_size} codes) does not fit the world model")
        conditioned = c.imagine_conditioned and loaded is not None
        windows = _store_windows(store, fps, n_context, c.imagine_windows, motion=conditioned and model.config.ego_motion_input,
                                 warp=conditioned and model.config.prev_frame_warp)
    else:
        windows = ImagineWindows(_drifting_windows(model.config, c.imagine_windows, n_context, c.seed))
    windows = windows.to(device)
    stats = DecodeStats()
    times: dict[str, list[float]] = {"plain": [], "fast": [], "static": []}
    identical = {"fast": True, "static": True}
    compile_mode = ("reduce-overhead" if device.type == "cuda" else "default") if c.compile_on(device) else "none"
    decoders: dict[int, StaticDecoder] = {}  # one per batch size (a smaller last batch)
    static_error = None  # a compiler failure in the fixed-shape path is reported, and the other two paths still count
    with _autocast(device, precision):
        for start in range(0, len(windows), c.imagine_batch):
            inputs = windows.batch(start, c.imagine_batch)
            batch = inputs["window_tokens"]
            frame = {}
            for name in ("plain", "fast", "static"):
                if name == "static" and static_error is not None:
                    continue
                try:
                    if name == "static" and len(batch) not in decoders:
                        decoders[len(batch)] = StaticDecoder(model, len(batch), c.imagine_static_block, device, compile_mode=compile_mode)
                    kwargs = {"plain": {"speculative_block": 0}, "fast": {}, "static": {"static_decoder": decoders.get(len(batch))}}[name]
                    generate_frame(model, **inputs, **kwargs)  # warm-up (allocations, kernels, compilation)
                    _sync(device)
                    t0 = time.perf_counter()
                    frame[name] = generate_frame(model, **inputs, stats=stats if name == "fast" else None, **kwargs)
                    _sync(device)
                except Exception as exc:  # noqa: BLE001 - only the fixed-shape (compiled) path may fail without failing the bench
                    if name != "static":
                        raise
                    static_error = f"{type(exc).__name__}: {exc}"[:500]
                    continue
                times[name].append((time.perf_counter() - t0) / len(batch))
            for name in identical:
                if name in frame:
                    identical[name] &= bool(torch.equal(frame["plain"], frame[name]))
    plain, fast = (sum(times[n]) / len(times[n]) for n in ("plain", "fast"))
    static = sum(times["static"]) / len(times["static"]) if static_error is None else None
    return {
        "imagine_frame_s": fast, "imagine_frame_s_plain": plain, "imagine_speedup": plain / fast, "imagine_identical": identical["fast"],
        "imagine_frame_s_static": static, "imagine_speedup_static": plain / static if static else None,
        "imagine_static_identical": identical["static"] if static_error is None else None,
        "imagine_static_block": c.imagine_static_block, "imagine_static_compile": compile_mode, "imagine_static_error": static_error,
        "draft_acceptance": stats.acceptance, "model_calls_per_frame": stats.calls_per_frame,
        "model_calls_per_frame_plain": model.config.tokens_per_frame, "imagine_windows": len(windows), "imagine_batch": c.imagine_batch,
        "imagine_weights": weights, "imagine_conditioning": windows.conditioning,
    }


@torch.no_grad()
def bench_tokenizer(c: BenchConfig, device: torch.device, precision: str) -> dict[str, float]:
    torch.manual_seed(c.seed)
    model = ConvTokenizer(c.tokenizer).to(device).eval()
    images = torch.rand(c.tokenizer_batch, 3, c.image_height, c.image_width, device=device) * 2 - 1
    with _autocast(device, precision):
        indices = model.encode(images).indices
        t_enc = _time_steps(lambda: model.encode(images), c.tokenizer_steps, 1, device)
        t_dec = _time_steps(lambda: model.decode_indices(indices), c.tokenizer_steps, 1, device)
    return {"tokenizer_images_per_s": c.tokenizer_batch / t_enc, "tokenizer_decode_images_per_s": c.tokenizer_batch / t_dec}


def flops_per_token(config: GPTConfig, num_params: int) -> float:
    """Training FLOPs per token: 6N + attention 12 * layers * width * sequence (PaLM appendix B).

    N counts the parameters that take part in matrix products: all but the embedding lookups
    (spatial, temporal, previous-frame, and the token table unless it is tied to the output head,
    whose (V x C) product every position pays). Attention is counted unmasked, as PaLM does.
    """
    lookups = (config.tokens_per_frame + config.max_frames) * config.n_embd
    if config.prev_frame_token_input:
        lookups += (config.vocab_size + 1) * config.n_embd
    if not config.tie_weights:
        lookups += config.vocab_size * config.n_embd  # the input table; the separate head is in num_params
    return 6 * (num_params - lookups) + 12 * config.n_layer * config.n_embd * config.max_tokens


def matmul_bf16_tflops(device: torch.device, n: int = 8192, steps: int = 10) -> float:
    """Achieved TFLOP/s of an n x n x n bf16 matrix product on random data (the practical ceiling)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    seconds = _time_steps(lambda: torch.mm(a, b), steps, 3, device)
    return 2 * n**3 / seconds / 1e12


def run_bench(c: BenchConfig) -> dict[str, Any]:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if c.device == "auto" else c.device)
    # train_steps=0 skips training (and the Hugging Face baseline): the decoding figures alone, e.g. on a short GPU lease.
    ours = {p: bench_ours_train(c, device, p) for p in c.precisions} if c.train_steps else {}
    best = max(ours, key=ours.get) if ours else None
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "gpt": {"n_layer": c.gpt.n_layer, "n_head": c.gpt.n_head, "n_embd": c.gpt.n_embd, "vocab_size": c.gpt.vocab_size,
                "sequence_tokens": c.gpt.max_tokens, "num_params": GPT(c.gpt).num_params(), "prev_frame_token_input": c.gpt.prev_frame_token_input},
        "train_batch": c.train_batch,
        "train_tokens_per_s": ours.get(best),
        "train_precision": best,
        "compiled": c.compile_on(device),
        **{f"train_tokens_per_s_{p}": v for p, v in ours.items()},
        "hf_gpt2_train_tokens_per_s": None,
        "train_ratio_vs_hf": None,
        "hf_note": None,
    }
    if not ours:
        result["hf_note"] = "training not timed (train_steps=0)"
    elif not c.hf_baseline:
        result["hf_note"] = "Hugging Face baseline disabled (hf_baseline=false)"
    else:
        try:
            # fp32 always: how Hugging Face GPT-2 trains unless the user adds autocast.
            hf = {p: bench_hf_train(c, device, p) for p in ("fp32", *[q for q in c.precisions if q != "fp32"])}
        except ImportError as exc:
            result["hf_note"] = f"transformers is not installed ({exc}); pip install 'foresight-drive[bench]' for the same-run baseline"
        else:
            result.update({
                "hf_gpt2_train_tokens_per_s": hf["fp32"],
                **{f"hf_gpt2_train_tokens_per_s_{p}": v for p, v in hf.items()},
                "train_ratio_vs_hf": ours[best] / hf["fp32"],
                **{f"train_ratio_vs_hf_{p}": ours[p] / hf[p] for p in c.precisions},
            })
    inference_precision = "bf16" if device.type == "cuda" else "fp32"
    result.update(bench_decode(c, device, inference_precision))
    result["decode_cache_speedup"] = result["decode_cached_tokens_per_s"] / result["decode_uncached_tokens_per_s"]
    result.update(bench_imagine(c, device, inference_precision))
    result.update(bench_tokenizer(c, device, inference_precision))
    result["inference_precision"] = inference_precision
    result["flops_per_token"] = flops_per_token(c.gpt, result["gpt"]["num_params"])
    result["mfu"] = None
    if device.type == "cuda" and ours:
        name = result["device"]
        achieved = ours[best] * result["flops_per_token"]  # FLOP/s
        result["matmul_bf16_tflops"] = matmul_bf16_tflops(device)
        result["mfu_vs_matmul"] = achieved / (result["matmul_bf16_tflops"] * 1e12)
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
        if peak is not None:
            result["peak_bf16_tflops"] = peak / 1e12
            result["mfu"] = achieved / peak
        else:
            result["mfu_note"] = f"no peak FLOP/s known for {name}"
    return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in result.items()}
