"""The Scorer: loads a shipped checkpoint and turns texts into labels, probabilities and attended words.

Paths:
- CPU `fp32`, CPU `int8` (torchao int8 of every Linear layer, activations scaled per token), CPU `bf16` (autocast, only
  where the CPU has native bf16),
- CUDA `bf16` (weights in bf16, fused SDPA attention).

Long texts are never silently truncated. A text whose word-pieces do not fit one window (max_length - 2) is
cut into overlapping chunks (overlap `CHUNK_OVERLAP` word-pieces, at most a quarter of the window). The
document's probabilities are the mean of the chunks' calibrated probabilities weighted by each chunk's
share of word-pieces, and a token's weight is the sum, over the chunks that hold it, of chunk share × its
pooling weight in that chunk; so the document's token weights still sum to 1 and still describe exactly
what produced the probabilities.

Every torch computation of every Scorer in a process runs on one thread, `finsent-torch` (`on_torch_thread`).
torch's CPU kernels use OpenMP, and OpenMP keeps a thread team per calling thread: once a second thread has run
a parallel kernel (a scoring worker thread after the model was loaded or warmed up on the main thread), the
process holds more OpenMP threads than cores and libgomp stops spinning at its barriers, which costs a clear share
of CPU throughput (docs/performance.md, 'Measurements behind code choices'). One torch thread keeps one team.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoTokenizer

from model.checkpoints import NETWORK_FILES, CheckpointError, default_checkpoint
from model.network import LABELS, NetworkConfig, PoolingRule, SentimentNet

CHUNK_OVERLAP = 32
MAX_CHARS = 200_000
# Padded tokens a model batch may hold per row of its batch size: a typical headline fills a row (~15-25 word-pieces
# with [CLS] and [SEP]), so short texts run in full batches while long ones run in fewer rows. Activations grow with
# tokens, not rows: a full batch of long texts raised a worker's resident memory, and glibc kept it afterwards
# (docs/performance.md, 'Measurements behind code choices').
TOKENS_PER_ROW = 32
# Rows are padded to a multiple of this many word-pieces, by their own length (Scorer.padded_width).
WIDTH_STEP = 16
# Importing torchao (transformers does it too, whenever it is installed) logs a warning per optional CUDA kernel
# library it cannot load on a CPU machine, and torch one per Enum torchao registers: noise on every command's
# stderr, not news.
for _noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_noisy).setLevel(logging.ERROR)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class ScoreInputError(ValueError):
    """A text the scorer will not score; the message names the item and the problem."""


@dataclass
class Attribution:
    """One attended word: its text, weight (share of the pooling mass) and [start, end) character offsets."""

    rank: int
    word: str
    weight: float
    start: int
    end: int


@dataclass
class ScoreResult:
    label: str
    probabilities: dict[str, float]
    score: float  # p_positive - p_negative, in [-1, 1]
    confidence: float  # probability of the predicted label
    attributions: list[Attribution] = field(default_factory=list)
    model_version: str = ""
    n_chunks: int = 1
    n_tokens: int = 0


def validate_text(text: object, index: int | None = None, max_chars: int = MAX_CHARS) -> str:
    """Return the text to score, or raise ScoreInputError naming the problem.

    Control characters (C0/C1 except tab, newline, carriage return) are replaced by spaces one for one,
    so character offsets still index the original text.
    """
    where = f"item {index}: " if index is not None else ""
    if text is None:
        raise ScoreInputError(f"{where}text is None")
    if not isinstance(text, str):
        raise ScoreInputError(f"{where}text must be a str, got {type(text).__name__}")
    if len(text) > max_chars:
        raise ScoreInputError(f"{where}text is {len(text):,} characters, over the limit of {max_chars:,}")
    cleaned = _CONTROL.sub(" ", text)
    if not cleaned.strip():
        raise ScoreInputError(f"{where}text is empty or whitespace only")
    return cleaned


def load_network(path: Path, attn_implementation: str = "sdpa") -> tuple[SentimentNet, dict]:
    """Rebuild the network from a checkpoint directory (fp32 weights on CPU); returns (net, config dict)."""
    path = Path(path)
    for name in NETWORK_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} has no {name}")
    raw = json.loads((path / "config.json").read_text())
    version = raw.pop("version", path.name)
    net = SentimentNet(NetworkConfig.from_dict(raw), attn_implementation=attn_implementation)
    net.load_state_dict(load_file(str(path / "model.safetensors")))  # copied into the fp32 parameters, cast on the way
    net.eval()
    return net, {"version": version, **raw}


def _stored_dtype(path: Path, name: str) -> str | None:
    """The dtype ("F16", "F32", ...) a checkpoint stores tensor `name` in, or None when it has no such tensor."""
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return f.get_slice(name).get_dtype() if name in f.keys() else None  # noqa: SIM118 - a safetensors handle


_TORCH_THREAD_NAME = "finsent-torch"
T = TypeVar("T")


@lru_cache(maxsize=1)
def _torch_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=_TORCH_THREAD_NAME)


def on_torch_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run `fn` on the process's one torch thread and return its result (its exception re-raises here).

    See the module docstring for why: one OpenMP team per process. Calls from the torch thread itself run inline.
    """
    if threading.current_thread().name.startswith(_TORCH_THREAD_NAME):
        return fn(*args, **kwargs)
    return _torch_executor().submit(fn, *args, **kwargs).result()


@lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (malloc_trim): glibc otherwise keeps what a model load or a batch freed,
    and a worker's RSS is its footprint on the machine. A no-op where there is no glibc."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX); else bf16 is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def quantize_int8(net: SentimentNet) -> torch.nn.Module:
    """int8 quantisation of every Linear layer (torchao): weights per output channel, activations per token.

    Each token's activations get their own scale, computed from that token alone, so a text's result does not
    depend on the other texts of its batch. torch's own dynamic quantisation scales a whole batch tensor at once,
    padding included, and moved a headline's probabilities by up to 0.6 between batches (docs/model.md, 'One text,
    one score').
    """
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(net, Int8DynamicActivationInt8WeightConfig())  # in place: no second fp32 copy while quantising
    return net


def _prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate `items` produced by a background thread, at most `depth` ahead; its exceptions re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def offer(entry: tuple) -> bool:
        while not stop.is_set():  # the consumer may have stopped early; never block on a full queue then
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((True, item)):
                    return
            offer((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            offer((False, exc))

    thread = threading.Thread(target=produce, name="scorer-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass
class _Chunk:
    doc: int
    ids: list[int]
    token_index: list[int]  # position of each content token in its document's token list


class Scorer:
    """Score texts with a shipped checkpoint. Thread-compatible, not thread-safe: one per worker."""

    def __init__(
        self,
        path: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        max_chars: int = MAX_CHARS,
        batch_size: int | None = None,
        prefetch: bool | None = None,
    ) -> None:
        self.path = Path(path) if path else default_checkpoint()
        if threads:
            torch.set_num_threads(threads)
            on_torch_thread(torch.set_num_threads, threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
        self.device = torch.device(device)
        net, cfg = on_torch_thread(load_network, self.path)
        self.version: str = cfg["version"]
        self.config = net.config
        self.card = self._read_card()
        self.precision = self._choose_precision(precision)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.rule = PoolingRule(self.tokenizer, self.config)
        self.max_chars = max_chars
        self.window = self.config.max_length - 2  # content word-pieces per chunk ([CLS] and [SEP] added)
        self.overlap = min(CHUNK_OVERLAP, self.window // 4)  # a small window must still advance
        self.amp = nullcontext()
        # Rows per forward pass: a CPU is saturated by a few dozen (bench/scoring.py measures 1, 32 and 256); a GPU
        # wants hundreds per kernel launch.
        self.batch_size = batch_size or (512 if self.device.type == "cuda" else 32)
        # Building batches in a thread pays off only when the model runs elsewhere (a GPU); on a CPU the thread
        # would compete with the model's own threads for the cores.
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch
        if self.device.type == "cuda":
            net = on_torch_thread(
                net.to, self.device, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float32
            )
        else:
            if self.precision == "int8":
                net = on_torch_thread(quantize_int8, net)
            elif self.precision == "bf16":
                self.amp = torch.autocast("cpu", dtype=torch.bfloat16)
            # The word-embedding table (30k x 384, a third of the network) is kept in fp16 when the checkpoint
            # ships it so: the rows it returns are added to fp32 embeddings, so every sum is the fp32 value it was
            # before, and a worker keeps half the table's bytes less resident (docs/performance.md, 'Measurements
            # behind code choices'). (On the torch thread: the cast is a parallel kernel.)
            if _stored_dtype(self.path, "encoder.embeddings.word_embeddings.weight") == "F16":
                on_torch_thread(net.encoder.embeddings.word_embeddings.half)
        self.net = net
        del net
        gc.collect()
        release_freed_memory()

    def _read_card(self) -> dict:
        card = self.path / "card.json"
        return json.loads(card.read_text()) if card.is_file() else {}

    def _choose_precision(self, precision: str) -> str:
        allowed = {"cpu": ("fp32", "int8", "bf16"), "cuda": ("fp32", "bf16")}[self.device.type]
        if precision == "auto":
            if self.device.type == "cuda":
                return "bf16"
            inference = self.card.get("inference", {})
            chosen = inference.get("cpu_default", "fp32")
            if chosen == "bf16" and not cpu_has_bf16():  # the card was made on a CPU with native bf16
                chosen = inference.get("cpu_fallback", "fp32")
            return chosen
        if precision not in allowed:
            raise ValueError(f"precision {precision!r} is not available on {self.device.type} (choose from {allowed})")
        return precision

    # -- tokenisation and chunking --------------------------------------------------------------------

    def _tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        return enc["input_ids"], enc["offset_mapping"]

    def _chunks(self, doc: int, ids: list[int]) -> list[_Chunk]:
        if len(ids) <= self.window:
            return [_Chunk(doc, ids, list(range(len(ids))))]
        step = self.window - self.overlap
        out, start = [], 0
        while True:
            end = min(start + self.window, len(ids))
            out.append(_Chunk(doc, ids[start:end], list(range(start, end))))
            if end == len(ids):
                return out
            start += step

    @staticmethod
    def _spans(widths: list[int], batch_size: int) -> Iterator[tuple[int, int]]:
        """[start, end) spans of rows sorted by padded width: one width per span (a row's width depends on its own
        length only), at most `batch_size` rows and `batch_size` x TOKENS_PER_ROW padded tokens each (a batch of
        long texts gets fewer rows, never fewer than one)."""
        budget = batch_size * TOKENS_PER_ROW
        start = 0
        while start < len(widths):
            end = min(start + batch_size, len(widths))
            while end - start > 1 and (widths[end - 1] != widths[start] or (end - start) * widths[end - 1] > budget):
                end -= 1
            yield start, end
            start = end

    def padded_width(self, n: int) -> int:
        """The width a row of `n` word-pieces ([CLS] and [SEP] included) is padded to: `n` rounded up to a
        multiple of WIDTH_STEP, never past the window unless `n` is. It depends on the row alone, so a text is
        computed on the same tensor shape whatever else is in its batch: that is what makes its score independent
        of its batch (docs/model.md, 'One text, one score')."""
        return max(n, min(-(-n // WIDTH_STEP) * WIDTH_STEP, self.config.max_length))

    def _batches(self, chunks: list[_Chunk], batch_size: int) -> Iterator[tuple[list[int], tuple[torch.Tensor, ...]]]:
        """Length-bucketed model batches: (chunk indices, (input ids, attention mask, pool mask)) on the CPU."""
        tok = self.tokenizer
        widths = [self.padded_width(len(c.ids) + 2) for c in chunks]
        order = sorted(range(len(chunks)), key=lambda i: widths[i])  # length bucketing
        pin = self.device.type == "cuda"
        for s, e in self._spans([widths[i] for i in order], batch_size):
            idx = order[s:e]
            width = widths[idx[0]]
            ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            attn = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                n = len(chunks[i].ids)
                ids[row, : n + 2] = torch.tensor([tok.cls_token_id, *chunks[i].ids, tok.sep_token_id])
                attn[row, : n + 2] = 1
            pool = self.rule.mask(ids, attn)  # [CLS], [SEP] and the checkpoint's skipped words are never pooled
            tensors = (ids, attn, pool)
            yield idx, tuple(t.pin_memory() for t in tensors) if pin else tensors

    def _run(self, chunks: list[_Chunk], batch_size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Calibrated probabilities (C, 3) and per-chunk pooling weights over content tokens.

        With `prefetch` (the default on CUDA) a thread builds the next padded batches in pinned memory while the
        GPU runs the current one; copies to the device are asynchronous and results stay on the device until
        every batch was queued, so the host waits on the GPU once per call rather than once per batch.
        """
        batches = _prefetched(self._batches(chunks, batch_size)) if self.prefetch else self._batches(chunks, batch_size)
        outputs = []
        with torch.inference_mode():
            for idx, tensors in batches:
                ids, attn, pool = (t.to(self.device, non_blocking=True) for t in tensors)
                with self.amp:
                    out = self.net(ids, attn, pool)
                p = torch.softmax(out.logits.float() / self.config.temperature, dim=-1)
                outputs.append((idx, p, out.pooling_weights.float()))
        probs = torch.empty((len(chunks), len(LABELS)))
        weights: list[torch.Tensor] = [torch.empty(0)] * len(chunks)
        for idx, p, w in outputs:
            p, w = p.cpu(), w.cpu()
            for row, i in enumerate(idx):
                probs[i] = p[row]
                weights[i] = w[row, 1 : len(chunks[i].ids) + 1]
        return probs, weights

    # -- words ----------------------------------------------------------------------------------------

    @staticmethod
    def merge_words(
        text: str, offsets: list[tuple[int, int]], token_weights: list[float]
    ) -> list[tuple[str, float, int, int]]:
        """Merge word-pieces into words: (word, weight, start, end), pure punctuation dropped.

        Pieces whose character spans touch form one word ("$AAPL", "5.5", "Nokia's"), except that
        punctuation at a word's edges is split off (a trailing "," or a bracket), keeping a leading "$"
        or "#" that introduces a cashtag or hashtag.
        """
        groups: list[list[int]] = []
        for i, (start, end) in enumerate(offsets):
            if end <= start:
                continue
            if groups and offsets[groups[-1][-1]][1] == start:
                groups[-1].append(i)
            else:
                groups.append([i])

        def is_punct(i: int) -> bool:
            s, e = offsets[i]
            return not any(ch.isalnum() for ch in text[s:e])

        words = []
        for g in groups:
            lo, hi = 0, len(g)
            while (
                lo < hi
                and is_punct(g[lo])
                and not (
                    text[offsets[g[lo]][0] : offsets[g[lo]][1]] in ("$", "#")
                    and lo + 1 < hi
                    and not is_punct(g[lo + 1])
                )
            ):
                lo += 1
            while hi > lo and is_punct(g[hi - 1]):
                hi -= 1
            if lo == hi:
                continue
            start, end = offsets[g[lo]][0], offsets[g[hi - 1]][1]
            weight = sum(token_weights[i] for i in g[lo:hi])
            words.append((text[start:end], weight, start, end))
        return words

    # -- public API -----------------------------------------------------------------------------------

    def score(self, texts: list[str] | str, batch_size: int | None = None, top_k: int = 5) -> list[ScoreResult]:
        """Score a list of texts (or one text); raises ScoreInputError naming the first bad item.

        `batch_size` is the model's batch (default `self.batch_size`: 32 on a CPU, 512 on a GPU).
        """
        texts, cleaned, batch_size = self._validated(texts, batch_size)
        return on_torch_thread(self._score, texts, cleaned, batch_size, top_k)

    def submit(
        self, texts: list[str] | str, batch_size: int | None = None, top_k: int = 5
    ) -> Future[list[ScoreResult]]:
        """`score` without waiting: the texts are checked here (ScoreInputError raises at once) and scored on the
        torch thread; the caller can do other work (a worker prepares the batch's storage) until `.result()`."""
        texts, cleaned, batch_size = self._validated(texts, batch_size)
        return _torch_executor().submit(self._score, texts, cleaned, batch_size, top_k)

    def _validated(self, texts: list[str] | str, batch_size: int | None) -> tuple[list[str], list[str], int]:
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [validate_text(t, i, self.max_chars) for i, t in enumerate(texts)]
        return texts, cleaned, batch_size or self.batch_size

    def _score(self, texts: list[str], cleaned: list[str], batch_size: int, top_k: int) -> list[ScoreResult]:
        all_ids, all_offsets = self._tokenize(cleaned)
        chunks = [c for d, ids in enumerate(all_ids) for c in self._chunks(d, ids)]
        probs, weights = self._run(chunks, batch_size)
        by_doc: dict[int, list[int]] = {}
        for ci, c in enumerate(chunks):
            by_doc.setdefault(c.doc, []).append(ci)
        results = []
        for d in range(len(cleaned)):
            cis = by_doc[d]
            sizes = torch.tensor([len(chunks[ci].ids) for ci in cis], dtype=torch.float32)
            share = sizes / sizes.sum()
            p = (share[:, None] * probs[cis]).sum(0)
            token_w = torch.zeros(len(all_ids[d]))
            for s, ci in zip(share, cis, strict=True):
                token_w[chunks[ci].token_index] += s * weights[ci]
            k = int(p.argmax())
            attributions = []
            if top_k:
                words = self.merge_words(texts[d], all_offsets[d], token_w.tolist())
                # words the head may not pool (the checkpoint's function words) weigh 0: the decision did not use them
                ranked = sorted((w for w in words if w[1] > 0), key=lambda w: (-w[1], w[2]))[:top_k]
                attributions = [Attribution(r + 1, w, float(wt), s, e) for r, (w, wt, s, e) in enumerate(ranked)]
            results.append(
                ScoreResult(
                    label=LABELS[k],
                    probabilities={name: float(p[j]) for j, name in enumerate(LABELS)},
                    score=float(p[LABELS.index("positive")] - p[LABELS.index("negative")]),
                    confidence=float(p[k]),
                    attributions=attributions,
                    model_version=self.version,
                    n_chunks=len(cis),
                    n_tokens=len(all_ids[d]),
                )
            )
        return results
