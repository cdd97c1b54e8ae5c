"""
dev/torch_models.py -- plain PyTorch versions of the two models this repo trains, and a reader (and writer)
of the trainers' checkpoint files. It is the independent cross-check of the CUDA trainers
(dev/torch_check.py) and the PyTorch baseline of dev/torch_bench.py. It is NOT fla or mamba_ssm.

Written from the specs, not from the CUDA code:
  GLA   (fla GLAForCausalLM)         ../shared/docs/gla.md 1.3-1.7 (recurrence 2.1, chunk form 2.2)
  Mamba (MambaLMHeadModel, Mamba-1)  ../shared/docs/mamba.md 1.2-1.3
Naive on purpose: the sequence mixers run in fp32 (or fp64) with autocast off:
  GLA   form="recurrent": S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = K^-0.5 q_t S_t, one step at a time;
        form="chunk": the same sum regrouped by chunks of 64 (gla.md 2.2): states between chunks, and inside
        a chunk A_ij = sum_a q_i[a] k_j[a] exp(Gc_i[a] - Gc_j[a]) with every kept exponent <= 0 (exact, no
        overflow); 16x16 sub-blocks off the diagonal use one reference row (gla.md 2.4), the diagonal ones
        take the pairwise exponent directly.
  Mamba scan_chunk=0: h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t . h_t, one step at a time;
        scan_chunk=C: the same recurrence run over all chunks of C steps at once (local states), then the
        chunk-start states (sequential over chunks), then the recurrence again from those starts.
        Same arithmetic up to rounding, ~2C + T/C Python steps instead of T.
When gradients are recorded, the two big intermediates (GLA's intra-chunk pairwise decays, Mamba's scan
states) are recomputed in backward (torch.utils.checkpoint): only their inputs are kept per layer.

Checkpoint format (common/checkpoint.h): a 2048-byte header of 256 little-endian int64 slots (0 magic
20251129, 1 version, 2 model kind 1 GLA / 2 Mamba, 3 data start, 4 nsec, 5 num_params, 6 step, 7 file bytes,
12 ncfg, 13 float mask, 14 header checksum, 32..63 config values, 64..127 config names as 32 x char[16]),
then nsec table entries of 64 bytes {char name[40]; u64 offset, bytes, checksum}, then the sections:
"master" (fp32 flat parameters), "adam_m", "adam_v" (fp32), "copy_bf16" (the bf16 working copy).
Flat layout (train_gla.cu gla_build_params, train_mamba.cu mamba_build_params, common/tensors.cuh
param_add): tensors in table order, each offset rounded up to a multiple of 8 elements.

  python3 dev/torch_models.py        # self-test (CPU is enough): checkpoint round trip, forms agree
"""
import ctypes
import math
import struct
import sys

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# ----------------------------------------------------------------------------- checkpoint file

CKPT_MAGIC = 20251129
CKPT_VERSION = 1
CKPT_HEADER_BYTES = 2048
CKPT_ENTRY_BYTES = 64
KIND_GLA, KIND_MAMBA = 1, 2
KIND_NAMES = {KIND_GLA: "gla", KIND_MAMBA: "mamba"}
_M64 = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def ckpt_hash64(data):
    """common/checkpoint.h ckpt_hash64 in Python (slow: ~1 s per 10 MB; fine for headers and tiny models)."""
    P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
    data = bytes(data)
    n = len(data)
    v = [(P1 + P2) & _M64, P2, 0x0123456789ABCDEF, (-P1) & _M64]
    full = n // 32 * 32
    words = struct.unpack_from("<%dQ" % (full // 8), data, 0)
    for s in range(0, len(words), 4):
        for lane in range(4):
            v[lane] = (_rotl((v[lane] + words[s + lane] * P2) & _M64, 31) * P1) & _M64
    h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
    h ^= (n * P3) & _M64
    i = full
    while i + 8 <= n:
        (w,) = struct.unpack_from("<Q", data, i)
        h = (_rotl(h ^ ((_rotl((w * P2) & _M64, 31) * P1) & _M64), 27) * P1 + P3) & _M64
        i += 8
    while i < n:
        h = (_rotl(h ^ ((data[i] * P3) & _M64), 11) * P1) & _M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & _M64
    h ^= h >> 29
    h = (h * P3) & _M64
    h ^= h >> 32
    return h


class Checkpoint:
    """Header, config and section table of one checkpoint file; sections are read on demand."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(CKPT_HEADER_BYTES)
            if len(head) < CKPT_HEADER_BYTES:
                raise ValueError("%s is truncated: the header alone needs %d bytes" % (path, CKPT_HEADER_BYTES))
            s = struct.unpack("<256q", head)
            if s[0] != CKPT_MAGIC:
                raise ValueError("%s is not a checkpoint (magic %d, expected %d)" % (path, s[0], CKPT_MAGIC))
            if s[1] != CKPT_VERSION:
                raise ValueError("%s has checkpoint format version %d; this reader knows %d" % (path, s[1], CKPT_VERSION))
            nsec, ncfg = s[4], s[12]
            if not (0 <= nsec <= 64 and 0 <= ncfg <= 32) or s[3] != CKPT_HEADER_BYTES + nsec * CKPT_ENTRY_BYTES:
                raise ValueError("%s has a corrupt header (section/config counts)" % path)
            table = f.read(nsec * CKPT_ENTRY_BYTES)
            f.seek(0, 2)
            size = f.tell()
        whole = bytearray(head + table)
        whole[14 * 8:15 * 8] = bytes(8)  # the checksum is taken with its own slot zeroed
        if ckpt_hash64(whole) != (s[14] & _M64):
            raise ValueError("%s has a corrupt header (checksum mismatch)" % path)
        if s[7] != size:
            raise ValueError("%s is %d bytes on disk, its header says %d" % (path, size, s[7]))
        self.kind, self.num_params, self.step = s[2], s[5], s[6]
        self.config = {}
        for i in range(ncfg):
            raw = head[64 * 8 + 16 * i: 64 * 8 + 16 * (i + 1)]
            name = raw.split(b"\0", 1)[0].decode()
            if (s[13] >> i) & 1:
                self.config[name] = struct.unpack("<d", struct.pack("<q", s[32 + i]))[0]
            else:
                self.config[name] = s[32 + i]
        self.sections = {}
        for i in range(nsec):
            e = table[i * CKPT_ENTRY_BYTES:(i + 1) * CKPT_ENTRY_BYTES]
            name = e[:40].split(b"\0", 1)[0].decode()
            off, nbytes, csum = struct.unpack_from("<3Q", e, 40)
            if off + nbytes > size:
                raise ValueError("%s: section '%s' lies outside the file" % (path, name))
            self.sections[name] = (off, nbytes, csum)

    def read(self, name, dtype, verify=None):
        """Section `name` as a 1-D tensor of dtype (torch.float32 or torch.bfloat16). verify: check the
        section checksum (None = only when the section is under 16 MiB, since the hash is pure Python)."""
        if name not in self.sections:
            raise ValueError("%s has no section '%s' (it has: %s)" % (self.path, name, ", ".join(self.sections)))
        off, nbytes, csum = self.sections[name]
        buf = bytearray(nbytes)
        with open(self.path, "rb") as f:
            f.seek(off)
            if f.readinto(buf) != nbytes:
                raise ValueError("%s: section '%s' is truncated" % (self.path, name))
        if verify or (verify is None and nbytes <= (16 << 20)):
            if ckpt_hash64(buf) != csum:
                raise ValueError("%s: section '%s' is corrupt (checksum mismatch)" % (self.path, name))
        esize = torch.tensor([], dtype=dtype).element_size()
        if nbytes != self.num_params * esize:
            raise ValueError("%s: section '%s' has %d bytes, %d parameters need %d" %
                             (self.path, name, nbytes, self.num_params, self.num_params * esize))
        return torch.frombuffer(buf, dtype=dtype) if nbytes else torch.zeros(0, dtype=dtype)


def write_checkpoint(path, kind, config, sections, step=0, num_params=0):
    """Writes a checkpoint in the trainers' format (for tests and conversions).
    config: list of (name, int or float); sections: list of (name, bytes-like)."""
    nsec = len(sections)
    head_bytes = CKPT_HEADER_BYTES + nsec * CKPT_ENTRY_BYTES
    align = lambda x: (x + 63) // 64 * 64
    offs, off = [], align(head_bytes)
    for _, data in sections:
        offs.append(off)
        off = align(off + len(data))
    file_bytes = offs[-1] + len(sections[-1][1]) if nsec else head_bytes
    s = [0] * 256
    s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7] = (CKPT_MAGIC, CKPT_VERSION, kind, head_bytes, nsec,
                                                      num_params, step, file_bytes)
    s[12] = len(config)
    names = bytearray(32 * 16)
    for i, (name, val) in enumerate(config):
        if isinstance(val, float):
            s[13] |= 1 << i
            s[32 + i] = struct.unpack("<q", struct.pack("<d", val))[0]
        else:
            s[32 + i] = int(val)
        names[16 * i:16 * i + len(name)] = name.encode()
    head = bytearray(struct.pack("<256q", *s))
    head[64 * 8:128 * 8] = names
    for (name, data), o in zip(sections, offs):
        head += name.encode().ljust(40, b"\0") + struct.pack("<3Q", o, len(data), ckpt_hash64(data))
    head[14 * 8:15 * 8] = struct.pack("<Q", ckpt_hash64(head))
    with open(path, "wb") as f:
        f.write(head)
        for (_, data), o in zip(sections, offs):
            f.write(bytes(o - f.tell()))
            f.write(bytes(data))


# ----------------------------------------------------------------------------- parameter tables
# One entry per tensor, in the trainers' order: (name, shape, init, decay, mm). init is ("normal", std),
# ("uniform", bound), ("one",), ("zero",), ("dt_bias",) or ("a_log",). mm = 1 when the trainer reads the
# tensor from the bf16 copy (it enters a matrix product); the rest it reads from the fp32 master.
GATE_RANK = 16  # fla's gate_low_rank_dim


def gla_dims(c):
    H, Dk, Dv = c["H"], c["key_dim"], c["value_dim"]
    if Dk % H or Dv % H:
        raise ValueError("GLA: key_dim %d and value_dim %d must divide into H=%d heads" % (Dk, Dv, H))
    return Dk, Dv, Dk // H, Dv // H


def gla_table(c):
    D, I, Vc = c["D"], c["I"], c["Vc"]
    Dk, Dv, K, V = gla_dims(c)
    t = [("embed", (Vc, D), ("normal", 0.02), 1, 0)]
    for l in range(c["L"]):
        p = "layers.%d." % l
        t += [(p + "attn_norm", (D,), ("one",), 0, 0),
              (p + "w_in", (2 * Dk + 2 * Dv + GATE_RANK, D), ("normal", 0.02), 1, 1),  # q | k | v | gate | gk0
              (p + "gk1_w", (Dk, GATE_RANK), ("normal", 0.02), 1, 1),
              (p + "gk1_b", (Dk,), ("zero",), 0, 0),
              (p + "gnorm", (V,), ("one",), 0, 0),
              (p + "w_o", (D, Dv), ("normal", 0.02), 1, 1),
              (p + "mlp_norm", (D,), ("one",), 0, 0),
              (p + "w_gateup", (2 * I, D), ("normal", 0.02), 1, 1),  # gate I | up I
              (p + "w_down", (D, I), ("normal", 0.02), 1, 1)]
    t.append(("final_norm", (D,), ("one",), 0, 0))
    if not c["tied"]:
        t.append(("lm_head", (Vc, D), ("normal", 0.02), 1, 1))
    return t


def mamba_table(c):
    D, L, Di, N, R, W, Vc = c["D"], c["L"], c["d_inner"], c["d_state"], c["dt_rank"], c["conv"], c["Vc"]
    t = [("embed", (Vc, D), ("normal", 0.02), 0, 0)]
    for l in range(L):
        p = "layers.%d." % l
        t += [(p + "norm", (D,), ("one",), 0, 0),
              (p + "w_in", (2 * Di, D), ("uniform", D ** -0.5), 1, 1),  # x | z
              (p + "conv_w", (Di, W), ("uniform", W ** -0.5), 1, 0),
              (p + "conv_b", (Di,), ("uniform", W ** -0.5), 0, 0),
              (p + "w_x", (R + 2 * N, Di), ("uniform", Di ** -0.5), 1, 1),  # dt R | B N | C N
              (p + "w_dt", (Di, R), ("uniform", R ** -0.5), 1, 1),
              (p + "dt_bias", (Di,), ("dt_bias",), 0, 0),
              (p + "A_log", (Di, N), ("a_log",), 0, 0),
              (p + "Dskip", (Di,), ("one",), 0, 0),
              (p + "w_out", (D, Di), ("uniform", Di ** -0.5 / math.sqrt(L)), 1, 1)]
    t.append(("final_norm", (D,), ("one",), 0, 0))
    if not c["tied"]:
        t.append(("lm_head", (Vc, D), ("normal", 0.02), 1, 1))
    return t


def layout(table):
    """{name: (offset, shape)} and the total element count, offsets rounded up to 8 (param_add)."""
    offs, total = {}, 0
    for name, shape, *_ in table:
        off = (total + 7) & ~7
        offs[name] = (off, shape)
        total = off + math.prod(shape)
    return offs, total


# ----------------------------------------------------------------------------- shared pieces

def rmsnorm(x, w, eps):
    x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _mixer_precision(x):
    """the sequence mixers run in fp32 (fp64 when the model is fp64), with autocast off"""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def cross_entropy(logits, targets):
    """mean over targets >= 0 of -log softmax(logits)[target] (targets -1 are ignored), in fp32"""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float() if logits.dtype != torch.float64
                           else logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


# ----------------------------------------------------------------------------- the GLA operator

def gla_recurrent(q, k, v, g, scale):
    """q, k, g [B,T,H,K], v [B,T,H,V] -> o [B,T,H,V]. The definition (gla.md 2.1), one step at a time."""
    B, T, H, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        S = torch.exp(g[:, t]).unsqueeze(-1) * S + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        out.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    return torch.stack(out, 1)


def recomputed(fn, *args):
    """fn(*args); when gradients are being recorded, keep only args for backward and rerun fn there
    (torch.utils.checkpoint): for the big intermediates of the mixers (pairwise decays, scan states)."""
    if torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in args):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _gla_intra(q, k, Gc, S):
    """A_ij = sum_a q_i[a] k_j[a] exp(Gc_i[a] - Gc_j[a]) for j <= i in each chunk (no scale); q, k, Gc
    [B,H,NT,C,K] -> [B,H,NT,C,C]. Sub-blocks of S rows: left of the diagonal through a reference row,
    on the diagonal with the pairwise exponent."""
    B, H, NT, C, K = q.shape
    nS = C // S
    qs, ks, Gs = (x.reshape(B, H, NT, nS, S, K) for x in (q, k, Gc))
    # blocks left of the diagonal: reference row r = first row of the query block I; j < r <= i
    Gr = Gs[..., :1, :]                                             # [B,H,NT,nS,1,K]
    qf = qs * torch.exp(Gs - Gr)
    ex = Gr - Gc.unsqueeze(3)                                       # [B,H,NT,nS,C,K]: Gc_r(I) - Gc_j
    col = torch.arange(C, device=q.device)
    left = (col.view(1, C) < (torch.arange(nS, device=q.device) * S).view(nS, 1)).view(nS, C, 1)
    kf = k.unsqueeze(3) * torch.exp(ex.masked_fill(~left, float("-inf")))
    A = qf @ kf.transpose(-1, -2)                                   # [B,H,NT,nS,S,C]
    # diagonal blocks: the pairwise exponent Gc_i - Gc_j, j <= i
    d = Gs.unsqueeze(-2) - Gs.unsqueeze(-3)                         # [B,H,NT,nS,S,S,K]
    tri = torch.ones(S, S, dtype=torch.bool, device=q.device).tril().unsqueeze(-1)
    Ad = (qs.unsqueeze(-2) * ks.unsqueeze(-3) * torch.exp(d.masked_fill(~tri, float("-inf")))).sum(-1)
    eye = torch.eye(nS, dtype=A.dtype, device=q.device).view(nS, 1, nS, 1)
    return (A.reshape(B, H, NT, nS, S, nS, S) + eye * Ad.unsqueeze(-2)).reshape(B, H, NT, C, C)


def gla_chunk(q, k, v, g, scale, chunk=64, sub=16):
    """Same result as gla_recurrent, by chunks (gla.md 2.2). Every exponent used on a kept entry is <= 0."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    pad = (-T) % chunk
    if pad:  # zero k, v add nothing; zero g (no decay) on the padded tail, whose outputs are dropped
        q, k, v, g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, g))
    NT, C = (T + pad) // chunk, chunk
    to_chunks = lambda x: x.reshape(B, NT, C, H, x.shape[-1]).permute(0, 3, 1, 2, 4)  # [B,H,NT,C,*]
    q, k, v, g = map(to_chunks, (q, k, v, g))
    Gc = g.cumsum(-2)                      # chunk-local cumulative log gate, non-increasing
    Glast = Gc[..., -1:, :]                # [B,H,NT,1,K]
    # states at chunk starts: H_{n+1} = diag(exp(Gc_last)) H_n + (k * exp(Gc_last - Gc))^T v
    U = (k * torch.exp(Glast - Gc)).transpose(-1, -2) @ v          # [B,H,NT,K,V]
    decay = torch.exp(Glast).squeeze(-2).unsqueeze(-1)              # [B,H,NT,K,1]
    state, starts = q.new_zeros(B, H, K, V), []
    for n in range(NT):
        starts.append(state)
        state = decay[:, :, n] * state + U[:, :, n]
    Hn = torch.stack(starts, 2)                                     # [B,H,NT,K,V]
    o = (q * torch.exp(Gc)) @ Hn                                    # inter-chunk part
    A = recomputed(_gla_intra, q, k, Gc, sub)                       # [B,H,NT,C,C], without the scale
    o = scale * (o + A @ v)
    o = o.permute(0, 2, 3, 1, 4).reshape(B, NT * C, H, V)
    return o[:, :T]


# ----------------------------------------------------------------------------- the selective scan

def selective_scan(u, delta, A, Bm, Cm, chunk=0):
    """u, delta [B,T,Di]; A [Di,N] (negative); Bm, Cm [B,T,N] -> sum_n C_t[n] h_t[n], [B,T,Di], with
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, h_{-1} = 0 (mamba.md 1.2 steps 6-7).
    chunk = 0: one step at a time. chunk = C: see the file comment (same recurrence, fewer Python steps)."""
    B, T, Di = u.shape
    N = A.shape[1]
    if chunk <= 0 or chunk >= T:
        h, ys = u.new_zeros(B, Di, N), []
        for t in range(T):
            h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] * Bm[:, t, None, :]
            ys.append((h * Cm[:, t, None, :]).sum(-1))
        return torch.stack(ys, 1)
    pad = (-T) % chunk
    if pad:  # delta = 0 on the tail: decay 1 and no input, outputs dropped
        u, delta, Bm, Cm = (F.pad(x, (0, 0, 0, pad)) for x in (u, delta, Bm, Cm))
    NT, C = (T + pad) // chunk, chunk
    dl, uu = delta.view(B, NT, C, Di), u.view(B, NT, C, Di)
    Bc, Cc = Bm.view(B, NT, C, N), Cm.view(B, NT, C, N)

    def step(h, t):  # one step of every chunk at once, [B,NT,Di,N]
        return torch.exp(dl[:, :, t, :, None] * A) * h + (dl[:, :, t] * uu[:, :, t])[..., None] * Bc[:, :, t, None, :]

    h = u.new_zeros(B, NT, Di, N)
    for t in range(C):  # 1. each chunk from a zero state
        h = step(h, t)
    total = torch.exp(dl.sum(2)[..., None] * A)  # product of the chunk's decays
    s, starts = u.new_zeros(B, Di, N), []
    for n in range(NT):  # 2. true state at each chunk start
        starts.append(s)
        s = total[:, n] * s + h[:, n]
    h, ys = torch.stack(starts, 1), []
    for t in range(C):  # 3. the recurrence again, from the true starts
        h = step(h, t)
        ys.append((h * Cc[:, :, t, None, :]).sum(-1))
    return torch.stack(ys, 2).reshape(B, NT * C, Di)[:, :T]


# ----------------------------------------------------------------------------- models

class FlatModel(torch.nn.Module):
    """Parameters named and shaped as in the trainer's table, with load/store from the flat buffer."""

    def __init__(self, config, table, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.cfg = dict(config)
        self.table = table
        self.offsets, self.total = layout(table)
        self.params = torch.nn.ParameterDict({
            n.replace(".", "_"): torch.nn.Parameter(torch.zeros(s, dtype=dtype, device=device)) for n, s, *_ in table})
        self.classifier_override = None  # set by load_flat(copy=...) when tied: the head reads the bf16 copy

    def p(self, name):
        return self.params[name.replace(".", "_")]

    def layer(self, l, names):
        return [self.p("layers.%d.%s" % (l, n)) for n in names]

    @torch.no_grad()
    def load_flat(self, master, copy=None):
        """master: fp32 flat buffer. copy (optional): the bf16 working copy; then tensors the trainer
        multiplies in bf16 (mm = 1) are taken from it, so the model sees the trainer's exact weights."""
        if master.numel() != self.total:
            raise ValueError("flat buffer has %d elements, this config needs %d" % (master.numel(), self.total))
        for name, shape, _, _, mm in self.table:
            off, _ = self.offsets[name]
            src = copy if (copy is not None and mm) else master
            self.p(name).copy_(src[off:off + math.prod(shape)].view(shape).to(self.p(name).dtype))
        self.classifier_override = None
        if copy is not None and self.cfg["tied"]:
            off, shape = self.offsets["embed"]
            self.classifier_override = copy[off:off + math.prod(shape)].view(shape).to(self.p("embed").dtype)

    @torch.no_grad()
    def to_flat(self):
        flat = torch.zeros(self.total, dtype=torch.float32)
        for name, shape, *_ in self.table:
            off, _ = self.offsets[name]
            flat[off:off + math.prod(shape)] = self.p(name).detach().reshape(-1).float().cpu()
        return flat

    @torch.no_grad()
    def init_params(self, seed=0):
        """The trainers' init rules (fla for GLA, mamba_ssm for Mamba); not their random streams.
        Drawn on the parameters' device, in their dtype."""
        dev = self.p("embed").device
        gen = torch.Generator(device=dev).manual_seed(seed)
        for name, shape, init, *_ in self.table:
            p, kind = self.p(name), init[0]
            rand = lambda fn: fn(shape, generator=gen, dtype=p.dtype, device=dev)
            if kind == "normal":
                p.copy_(rand(torch.randn) * init[1])
            elif kind == "uniform":
                p.copy_((rand(torch.rand) * 2 - 1) * init[1])
            elif kind in ("one", "zero"):
                p.fill_(1.0 if kind == "one" else 0.0)
            elif kind == "dt_bias":  # inverse softplus of dt, log-uniform in [1e-3, 1e-1], floored at 1e-4
                dt = torch.exp(rand(torch.rand) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif kind == "a_log":  # A = -(1..N) per channel
                p.copy_(torch.log(torch.arange(1, shape[1] + 1, dtype=p.dtype, device=dev)).expand(shape))

    def param_groups(self, weight_decay):
        """AdamW groups with the trainer's decay flags"""
        dec = [self.p(n) for n, _, _, d, _ in self.table if d]
        nodec = [self.p(n) for n, _, _, d, _ in self.table if not d]
        return [{"params": dec, "weight_decay": weight_decay}, {"params": nodec, "weight_decay": 0.0}]

    def classifier(self):
        if self.classifier_override is not None:
            # a plain attribute, so Module.to() does not move it: follow the embedding's device
            dev = self.p("embed").device
            if self.classifier_override.device != dev:
                self.classifier_override = self.classifier_override.to(dev)
            return self.classifier_override
        return self.p("embed") if self.cfg["tied"] else self.p("lm_head")

    def trunk(self, ids, block_fn=None):
        """ids [B,T] -> residual stream after the last layer [B,T,D]. block_fn(*args) replaces self.block
        (a compiled or recomputed version of it); args are the stream and the layer's tensors."""
        run = block_fn or self.block
        h = F.embedding(ids, self.p("embed"))  # residual stream, kept in the parameter dtype
        for l in range(self.cfg["L"]):
            h = run(h, *self.layer(l, self.LAYER_NAMES))
        return h

    def head(self, h):
        """final norm and classifier: logits [B,T,Vc]"""
        return rmsnorm(h, self.p("final_norm"), self.cfg["eps"]) @ self.classifier().t()

    def forward(self, ids, block_fn=None):
        return self.head(self.trunk(ids, block_fn))


class GLA(FlatModel):
    """fla GLAForCausalLM (gla.md 1.3-1.7): pre-norm blocks h += GLA(RMSNorm(h)); h += SwiGLU(RMSNorm(h))."""
    LAYER_NAMES = ["attn_norm", "w_in", "gk1_w", "gk1_b", "gnorm", "w_o", "mlp_norm", "w_gateup", "w_down"]

    def __init__(self, config, dtype=torch.float32, device="cpu", form="chunk", chunk=64):
        super().__init__(config, gla_table(config), dtype, device)
        self.form, self.chunk = form, chunk
        self.block = self._block  # a bound method: one code object for every layer (torch.compile reuses it)

    def _block(self, h, attn_norm, w_in, gk1_w, gk1_b, gnorm, w_o, mlp_norm, w_gateup, w_down):
        c = self.cfg
        B, T, _ = h.shape
        H, eps = c["H"], c["eps"]
        Dk, Dv, K, V = gla_dims(c)
        a = rmsnorm(h, attn_norm, eps)
        q, k, v, gt, z1 = torch.split(a @ w_in.t(), [Dk, Dk, Dv, Dv, GATE_RANK], dim=-1)
        z = z1 @ gk1_w.t()
        prec = _mixer_precision(h)
        with torch.autocast(h.device.type, enabled=False):
            g = F.logsigmoid(z.to(prec) + gk1_b.to(prec)) / 16.0   # log forget gate, <= 0
            heads = lambda x, d: x.to(prec).reshape(B, T, H, d)
            op = gla_recurrent if self.form == "recurrent" else (lambda *x: gla_chunk(*x, chunk=self.chunk))
            o = op(heads(q, K), heads(k, K), heads(v, V), heads(g, K), K ** -0.5)
            y = rmsnorm(o, gnorm.to(prec), eps) * F.silu(heads(gt, V))   # per-head norm, shared weight
        h = h + (y.reshape(B, T, Dv).to(h.dtype) @ w_o.t()).to(h.dtype)
        m = rmsnorm(h, mlp_norm, eps)
        gate, up = (m @ w_gateup.t()).chunk(2, dim=-1)
        return h + ((F.silu(gate) * up) @ w_down.t()).to(h.dtype)


class Mamba(FlatModel):
    """MambaLMHeadModel with Mamba-1 mixers (mamba.md 1.2-1.3): h += Mixer(RMSNorm(h))."""
    LAYER_NAMES = ["norm", "w_in", "conv_w", "conv_b", "w_x", "w_dt", "dt_bias", "A_log", "Dskip", "w_out"]

    def __init__(self, config, dtype=torch.float32, device="cpu", scan_chunk=0):
        super().__init__(config, mamba_table(config), dtype, device)
        self.scan_chunk = scan_chunk
        self.block = self._block

    def _block(self, h, norm, w_in, conv_w, conv_b, w_x, w_dt, dt_bias, A_log, Dskip, w_out):
        c = self.cfg
        B, T, _ = h.shape
        Di, N, R, W = c["d_inner"], c["d_state"], c["dt_rank"], c["conv"]
        a = rmsnorm(h, norm, c["eps"])
        x, z = (a @ w_in.t()).chunk(2, dim=-1)
        prec = _mixer_precision(h)
        with torch.autocast(h.device.type, enabled=False):
            # depthwise causal conv: xc_t = b + sum_k w[k] x_{t-(W-1)+k}, then SiLU
            xc = F.conv1d(x.to(prec).transpose(1, 2), conv_w.to(prec).unsqueeze(1), conv_b.to(prec),
                          padding=W - 1, groups=Di)[..., :T].transpose(1, 2)
            u = F.silu(xc)
            dtl, Bm, Cm = torch.split(u @ w_x.to(prec).t(), [R, N, N], dim=-1)
            delta = F.softplus(dtl @ w_dt.to(prec).t() + dt_bias.to(prec))   # threshold 20, as the kernel
            A = -torch.exp(A_log.to(prec))
            y = recomputed(selective_scan, u, delta, A, Bm, Cm, self.scan_chunk) + Dskip.to(prec) * u
            y = y * F.silu(z.to(prec))
        return h + (y.to(h.dtype) @ w_out.t()).to(h.dtype)


def model_from_checkpoint(ck, dtype=torch.float32, device="cpu", weights="master", **kw):
    """Builds the model a Checkpoint describes and loads its weights. weights: "master" (fp32 master) or
    "trainer" (bf16 copy for the matrix-product weights, fp32 master for the rest, as the trainer reads them)."""
    cls = {KIND_GLA: GLA, KIND_MAMBA: Mamba}.get(ck.kind)
    if cls is None:
        raise ValueError("%s: unknown model kind %d" % (ck.path, ck.kind))
    model = cls(ck.config, dtype=dtype, device="cpu", **kw)
    if model.total != ck.num_params:
        raise ValueError("%s holds %d parameters; its config (%s) gives %d" %
                         (ck.path, ck.num_params, ck.config, model.total))
    master = ck.read("master", torch.float32)
    copy = ck.read("copy_bf16", torch.bfloat16) if weights == "trainer" else None
    model.load_flat(master, copy)
    return model.to(device)


# ----------------------------------------------------------------------------- presets (as the trainers')

GLA_PRESETS = {"gla-tiny": (512, 6, 4, 1), "gla-125m": (768, 12, 4, 1), "gla-340m": (1024, 24, 4, 0),
               "gla-1.3b": (2048, 24, 4, 0)}  # D, L, H, tied
MAMBA_PRESETS = {"mamba-tiny": (256, 4), "mamba-130m": (768, 24), "mamba-370m": (1024, 48),
                 "mamba-790m": (1536, 48), "mamba-1.4b": (2048, 48)}  # D, L (tied)


def gla_config(Vc, D, L, H, expand_k=0.5, expand_v=1.0, I=0, tied=1, eps=1e-6):
    if I <= 0:  # fla's rule: 256 * ceil(int(D*4*2/3) / 256)
        I = 256 * ((int(D * 8 / 3) + 255) // 256)
    return {"Vc": Vc, "D": D, "L": L, "H": H, "key_dim": int(D * expand_k), "value_dim": int(D * expand_v),
            "I": I, "tied": tied, "eps": eps}


def mamba_config(Vc, D, L, d_inner=0, d_state=16, dt_rank=0, conv=4, tied=1, eps=1e-5):
    return {"Vc": Vc, "D": D, "L": L, "d_inner": d_inner or 2 * D, "d_state": d_state,
            "dt_rank": dt_rank or (D + 15) // 16, "conv": conv, "tied": tied, "eps": eps}


# ----------------------------------------------------------------------------- self-test

def tensor_bytes(t):
    """the raw bytes of a CPU tensor (no numpy needed)"""
    t = t.detach().contiguous().cpu()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


def _selftest():
    import os
    import tempfile
    torch.manual_seed(0)
    counts = [0, 0]

    def report(what, err, tol):
        ok = err <= tol
        counts[0 if ok else 1] += 1
        print("%s %-58s %.3e (tol %.0e)" % ("PASS" if ok else "FAIL", what, err, tol))

    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    # GLA operator: chunk form == recurrence (fp64), with strong decays and a ragged T
    for T, gate_mult in ((1, 1.0), (77, 1.0), (150, 0.25), (130, 4.0)):
        q, k, g = (torch.randn(2, T, 3, 32, dtype=torch.float64) for _ in range(3))
        v = torch.randn(2, T, 3, 48, dtype=torch.float64)
        g = F.logsigmoid(g * 3) * gate_mult
        report("gla_chunk vs gla_recurrent, T=%d, gates x%g" % (T, gate_mult),
               rel(gla_chunk(q, k, v, g, 32 ** -0.5), gla_recurrent(q, k, v, g, 32 ** -0.5)), 1e-12)
    # selective scan: chunked == sequential (fp64)
    for T, C in ((1, 4), (100, 16), (67, 8)):
        u, dlt = torch.randn(2, T, 24, dtype=torch.float64), F.softplus(torch.randn(2, T, 24, dtype=torch.float64))
        A = -torch.exp(torch.randn(24, 8, dtype=torch.float64))
        Bm, Cm = torch.randn(2, T, 8, dtype=torch.float64), torch.randn(2, T, 8, dtype=torch.float64)
        report("selective_scan chunk=%d vs step by step, T=%d" % (C, T),
               rel(selective_scan(u, dlt, A, Bm, Cm, C), selective_scan(u, dlt, A, Bm, Cm, 0)), 1e-12)
    # checkpoint round trip and both forms of each model, tiny configs, tied and untied
    cfgs = [(KIND_GLA, gla_config(67, 32, 2, 2, I=40, tied=0)), (KIND_GLA, gla_config(64, 16, 1, 1, tied=1)),
            (KIND_MAMBA, mamba_config(61, 16, 2, tied=1)),
            (KIND_MAMBA, mamba_config(64, 24, 1, d_state=4, conv=3, tied=0))]
    with tempfile.TemporaryDirectory() as tmp:
        for kind, cfg in cfgs:
            m = (GLA if kind == KIND_GLA else Mamba)(cfg, dtype=torch.float64)
            m.init_params(seed=1)
            flat = m.to_flat()
            path = os.path.join(tmp, "ckpt_00000007.bin")
            conf = [(n, float(v) if n == "eps" else int(v)) for n, v in cfg.items()]
            zeros = bytes(flat.numel() * 4)
            write_checkpoint(path, kind, conf, [("master", tensor_bytes(flat)), ("adam_m", zeros), ("adam_v", zeros),
                                                ("copy_bf16", tensor_bytes(flat.to(torch.bfloat16)))],
                             step=7, num_params=m.total)
            ck = Checkpoint(path)
            assert ck.step == 7 and ck.kind == kind and ck.config == dict(conf), ck.config
            name = "%s %s" % (KIND_NAMES[kind], "tied" if cfg["tied"] else "untied")
            ids = torch.randint(0, cfg["Vc"], (2, 70))
            for form in ("recurrent", "chunk"):
                kw = {"form": form, "chunk": 16} if kind == KIND_GLA else {"scan_chunk": 0 if form == "recurrent" else 16}
                mm = model_from_checkpoint(ck, dtype=torch.float64, **kw)
                report("%s: checkpoint round trip (%s)" % (name, form), (mm.to_flat() - flat).abs().max().item(), 0)
                lg = mm(ids)
                if form == "recurrent":
                    base = lg
                else:
                    report("%s: logits, chunked vs step by step" % name, rel(lg, base), 1e-12)
            tr = model_from_checkpoint(ck, dtype=torch.float64, weights="trainer")
            loss_m = cross_entropy(base[:, :-1], ids[:, 1:]).item()
            loss_t = cross_entropy(tr(ids)[:, :-1], ids[:, 1:]).item()
            report("%s: loss, bf16-copy weights vs master" % name, abs(loss_m - loss_t) / loss_m, 2e-2)
    print("%d passed, %d failed" % tuple(counts))
    return counts[1]


if __name__ == "__main__":
    sys.exit(1 if _selftest() else 0)
