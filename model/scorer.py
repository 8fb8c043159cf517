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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from model.checkpoints import NETWORK_FILES, CheckpointError, default_checkpoint
from model.network import LABELS, NetworkConfig, PoolingRule, SentimentNet
from model.tokens import (
    WORD_SIGNS,
    Batch,
    Chunks,
    Tokens,
    Words,
    encode,
    fill_batch,
    host_threads,
    merge_words,
    plan_chunks,
    punct_table,
    ranges,
    spans,
    text_is_punct,
)

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


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(word for line in text.splitlines() if line.startswith("flags") for word in line.split())


def cpu_has_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX); else bf16 is slower than fp32."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_int8_dot() -> bool:
    """True when this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX); without them the int8
    path runs 20 times slower than fp32 (docs/performance.md, 'int8 only where the CPU has int8 dot products')."""
    return bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while many small objects are built: every few hundred new objects
    it would otherwise scan the generations they join, which quadrupled the time to build a large call's per-item
    results (docs/performance.md, 'The Scorer's host path'). The objects built hold no cycles; collection resumes
    after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class ScoreBatch:
    """The results of one call as columns (row i is the i-th text): what bulk callers (the worker, backfill, rescore)
    store without building an object per item. `results()` gives the per-item `ScoreResult`s."""

    model_version: str
    texts: list[str]  # as given: the words are cut from them
    probabilities: np.ndarray  # (N, 3) float32, columns in LABELS order
    n_chunks: np.ndarray  # (N,) int64
    n_tokens: np.ndarray  # (N,) int64
    words: Words  # each text's top-k words, ranked, grouped by text
    seconds: dict[str, float] = field(default_factory=dict)  # host stages and the network, for benchmarks

    def __len__(self) -> int:
        return len(self.probabilities)

    @classmethod
    def concat(cls, parts: list[ScoreBatch]) -> ScoreBatch:
        """One batch of the parts' rows, in order (a call scored in pieces; no parts: no rows)."""
        base = np.cumsum([0] + [len(p) for p in parts])[:-1]
        words = [p.words for p in parts]
        cat = np.concatenate
        return cls(
            model_version=parts[0].model_version if parts else "",
            texts=[t for p in parts for t in p.texts],
            probabilities=cat([p.probabilities for p in parts]) if parts else np.zeros((0, len(LABELS)), np.float32),
            n_chunks=cat([p.n_chunks for p in parts] or [np.zeros(0, np.int64)]),
            n_tokens=cat([p.n_tokens for p in parts] or [np.zeros(0, np.int64)]),
            words=Words(
                cat([w.doc + b for w, b in zip(words, base, strict=True)] or [np.zeros(0, np.int64)]),
                cat([w.start for w in words] or [np.zeros(0, np.int64)]),
                cat([w.end for w in words] or [np.zeros(0, np.int64)]),
                cat([w.weight for w in words] or [np.zeros(0, np.float64)]),
                cat([w.rank for w in words] or [np.zeros(0, np.int64)]),
            ),
        )

    @property
    def label_index(self) -> np.ndarray:
        """(N,) index into LABELS of each text's label (the first of equal probabilities)."""
        return self.probabilities.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        return [LABELS[k] for k in self.label_index.tolist()]

    @property
    def scores(self) -> np.ndarray:
        """(N,) float32 p_positive - p_negative."""
        return self.probabilities[:, LABELS.index("positive")] - self.probabilities[:, LABELS.index("negative")]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self)), self.label_index]

    def word_rows(self) -> list[tuple[int, int, str, float, int, int]]:
        """Every top word as (text index, rank, word, weight, start, end), texts in order, ranks in order."""
        w = self.words
        docs, starts, ends = w.doc.tolist(), w.start.tolist(), w.end.tolist()
        texts = self.texts
        return list(
            zip(
                docs,
                w.rank.tolist(),
                [texts[d][s:e] for d, s, e in zip(docs, starts, ends, strict=True)],
                w.weight.tolist(),
                starts,
                ends,
                strict=True,
            )
        )

    def results(self) -> list[ScoreResult]:
        with _collector_paused():
            return self._results()

    def _results(self) -> list[ScoreResult]:
        attributions: list[list[Attribution]] = [[] for _ in range(len(self))]
        for d, rank, word, weight, start, end in self.word_rows():
            attributions[d].append(Attribution(rank, word, weight, start, end))
        return [
            ScoreResult(
                label=LABELS[k],
                probabilities=dict(zip(LABELS, p, strict=True)),
                score=s,
                confidence=c,
                attributions=a,
                model_version=self.model_version,
                n_chunks=nc,
                n_tokens=nt,
            )
            for k, p, s, c, a, nc, nt in zip(
                self.label_index.tolist(),
                self.probabilities.tolist(),
                self.scores.tolist(),
                self.confidence.tolist(),
                attributions,
                self.n_chunks.tolist(),
                self.n_tokens.tolist(),
                strict=True,
            )
        ]


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
        tokenizer_threads: int | None = None,
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
        # The host path calls the `tokenizers` library directly (no per-item objects from the transformers wrapper),
        # without truncation or padding: long texts are chunked here, rows padded by their own length.
        self.fast_tokenizer = Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        self.fast_tokenizer.no_truncation()
        self.fast_tokenizer.no_padding()
        # Threads that tokenise a call's texts at once (the library releases the GIL): every core by default; the
        # network runs after them, never beside them.
        self.tokenizer_threads = tokenizer_threads or host_threads()
        vocab = self.tokenizer.get_vocab()
        self.punct = punct_table(vocab, max(len(self.tokenizer), max(vocab.values()) + 1))
        self.sign_ids = np.asarray([vocab[s] for s in WORD_SIGNS if s in vocab], np.int64)
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
            if chosen == "int8" and not cpu_has_int8_dot():  # the card was made on a CPU with VNNI
                chosen = "fp32"
            return chosen
        if precision not in allowed:
            raise ValueError(f"precision {precision!r} is not available on {self.device.type} (choose from {allowed})")
        return precision

    # -- the host path: tokens, chunks and batches as arrays (model/tokens.py) ---------------------------

    def padded_width(self, n: int) -> int:
        """The width a row of `n` word-pieces ([CLS] and [SEP] included) is padded to: `n` rounded up to a
        multiple of WIDTH_STEP, never past the window unless `n` is. It depends on the row alone, so a text is
        computed on the same tensor shape whatever else is in its batch: that is what makes its score independent
        of its batch (docs/model.md, 'One text, one score')."""
        return int(self._padded_widths(np.asarray([n]))[0])

    def _padded_widths(self, n: np.ndarray) -> np.ndarray:
        return np.maximum(n, np.minimum(-(-n // WIDTH_STEP) * WIDTH_STEP, self.config.max_length))

    @staticmethod
    def _spans(widths, batch_size: int) -> Iterator[tuple[int, int]]:
        """[start, end) spans of rows sorted by padded width: one width per span (a row's width depends on its own
        length only), at most `batch_size` rows and `batch_size` x TOKENS_PER_ROW padded tokens each (a batch of
        long texts gets fewer rows, never fewer than one)."""
        return spans(widths, batch_size, batch_size * TOKENS_PER_ROW)

    def _tokens(self, cleaned: list[str]) -> Tokens:
        tokens = encode(self.fast_tokenizer, cleaned, self.tokenizer_threads)
        if not tokens.lengths.all():
            i = int(np.flatnonzero(tokens.lengths == 0)[0])
            raise ScoreInputError(
                f"item {i}: text has no word-pieces: only characters the tokenizer drops (zero-width, combining"
                " marks, U+FFFD)"
            )
        return tokens

    def _batches(self, tokens: Tokens, chunks: Chunks, batch_size: int) -> Iterator[tuple[Batch, tuple]]:
        """Length-bucketed model batches: (batch, (input ids, attention mask, pool mask) as CPU tensors)."""
        tok = self.tokenizer
        widths = self._padded_widths(chunks.length + 2)
        order = np.argsort(widths, kind="stable")  # length bucketing
        sorted_widths = widths[order]
        pin = self.device.type == "cuda"
        for s, e in self._spans(sorted_widths, batch_size):
            batch = fill_batch(
                tokens, chunks, order[s:e], int(sorted_widths[s]), tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
            )
            ids, attn = torch.from_numpy(batch.ids), torch.from_numpy(batch.attention)
            pool = self.rule.mask(ids, attn)  # [CLS], [SEP] and the checkpoint's skipped words are never pooled
            tensors = (ids, attn, pool)
            yield batch, tuple(t.pin_memory() for t in tensors) if pin else tensors

    def _run(self, tokens: Tokens, chunks: Chunks, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities per chunk (C, 3) and each content piece's pooling weight in its chunk, laid out
        like the chunks' pieces (chunk after chunk; the overlap of a long text's chunks appears once per chunk).

        With `prefetch` (the default on CUDA) a thread builds the next padded batches in pinned memory while the
        GPU runs the current one; copies to the device are asynchronous and every output stays on the device
        until the last batch was queued: the host waits on the device once per call, and copies back once.
        """
        batches = (
            _prefetched(self._batches(tokens, chunks, batch_size))
            if self.prefetch
            else self._batches(tokens, chunks, batch_size)
        )
        rows, gathers, probs, weights = [], [], [], []
        base = 0
        with torch.inference_mode():
            for batch, tensors in batches:
                ids, attn, pool = (t.to(self.device, non_blocking=True) for t in tensors)
                with self.amp:
                    out = self.net(ids, attn, pool)
                probs.append(torch.softmax(out.logits.float() / self.config.temperature, dim=-1))
                weights.append(out.pooling_weights.float().reshape(-1))
                rows.append(batch.rows)
                # where each content piece's weight goes (its chunk's slots) and where it is in the batch's output
                gathers.append((ranges(chunks.slot[batch.rows], chunks.length[batch.rows]), batch.dst + base))
                base += batch.ids.size
            p = torch.cat(probs).cpu().numpy() if probs else np.zeros((0, len(LABELS)), np.float32)
            w = torch.cat(weights).cpu().numpy() if weights else np.zeros(0, np.float32)
        chunk_probs = np.empty((len(chunks.doc), len(LABELS)), np.float32)
        if rows:
            chunk_probs[np.concatenate(rows)] = p
        piece_weights = np.zeros(int(chunks.length.sum()), np.float32)
        for slots, at in gathers:
            piece_weights[slots] = w[at]
        return chunk_probs, piece_weights

    def _documents(
        self, tokens: Tokens, chunks: Chunks, chunk_probs: np.ndarray, piece_weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per text: probabilities (N, 3) and every piece's weight (T,). A one-chunk text takes its chunk's values
        as they are. A longer text's probabilities are its chunks' weighted by their share of pieces, and a piece's
        weight is the sum, over the chunks that hold it, of chunk share x its weight there (so they sum to 1)."""
        single = chunks.single
        probs = np.empty((len(tokens.lengths), len(LABELS)), np.float32)
        probs[chunks.doc[single]] = chunk_probs[single]
        token_w = np.zeros(len(tokens.ids), np.float32)
        one = np.flatnonzero(single)
        token_w[ranges(chunks.first[one], chunks.length[one])] = piece_weights[
            ranges(chunks.slot[one], chunks.length[one])
        ]
        for d in np.flatnonzero(chunks.per_doc > 1).tolist():  # long texts: few, chunk by chunk in order
            cis = np.flatnonzero(chunks.doc == d)
            share = chunks.share[cis]
            probs[d] = (share[:, None] * chunk_probs[cis]).sum(0)
            for s, ci in zip(share, cis.tolist(), strict=True):
                n = int(chunks.length[ci])
                at = slice(int(chunks.first[ci]), int(chunks.first[ci]) + n)
                token_w[at] = token_w[at] + s * piece_weights[chunks.slot[ci] : chunks.slot[ci] + n]
        return probs, token_w

    def _top_words(self, texts: list[str], tokens: Tokens, token_w: np.ndarray, top_k: int) -> Words:
        doc = tokens.doc
        punct = self.punct[tokens.ids]
        unknown = np.flatnonzero(tokens.ids == self.tokenizer.unk_token_id)
        if len(unknown):  # an unknown piece's characters are not in the vocabulary: read them from the text
            punct[unknown] = [
                text_is_punct(texts[d], s, e)
                for d, s, e in zip(
                    doc[unknown].tolist(), tokens.starts[unknown].tolist(), tokens.ends[unknown].tolist(), strict=True
                )
            ]
        sign = np.isin(tokens.ids, self.sign_ids)
        words = merge_words(doc, tokens.starts, tokens.ends, token_w, punct, sign)
        return words.top(top_k)

    # -- words ----------------------------------------------------------------------------------------

    @staticmethod
    def merge_words(
        text: str, offsets: list[tuple[int, int]], token_weights: list[float]
    ) -> list[tuple[str, float, int, int]]:
        """One text's words: (word, weight, start, end), pure punctuation dropped (model.tokens.merge_words, with
        punctuation read from the text)."""
        n = len(offsets)
        starts = np.asarray([s for s, _ in offsets], np.int64).reshape(n)
        ends = np.asarray([e for _, e in offsets], np.int64).reshape(n)
        punct = np.asarray([text_is_punct(text, s, e) for s, e in offsets], bool).reshape(n)
        sign = np.asarray([text[s:e] in WORD_SIGNS for s, e in offsets], bool).reshape(n)
        weights = np.asarray(token_weights, np.float64).reshape(n)
        words = merge_words(np.zeros(n, np.int64), starts, ends, weights, punct, sign)
        return [
            (text[s:e], w, s, e)
            for s, e, w in zip(words.start.tolist(), words.end.tolist(), words.weight.tolist(), strict=True)
        ]

    # -- public API -----------------------------------------------------------------------------------

    def score(self, texts: list[str] | str, batch_size: int | None = None, top_k: int = 5) -> list[ScoreResult]:
        """Score a list of texts (or one text); raises ScoreInputError naming the first bad item.

        `batch_size` is the model's batch (default `self.batch_size`: 32 on a CPU, 512 on a GPU).
        """
        return self.score_batch(texts, batch_size, top_k).results()

    def score_batch(self, texts: list[str] | str, batch_size: int | None = None, top_k: int = 5) -> ScoreBatch:
        """`score` with the results as columns (ScoreBatch): for callers that store many."""
        texts, cleaned, batch_size = self._validated(texts, batch_size)
        return on_torch_thread(self._score, texts, cleaned, batch_size, top_k)

    def submit(self, texts: list[str] | str, batch_size: int | None = None, top_k: int = 5) -> Future[ScoreBatch]:
        """`score_batch` without waiting: the texts are checked here (ScoreInputError raises at once) and scored on
        the torch thread; the caller can do other work (a worker prepares the batch's storage) until `.result()`
        (which raises ScoreInputError for a text that has no word-pieces)."""
        texts, cleaned, batch_size = self._validated(texts, batch_size)
        return _torch_executor().submit(self._score, texts, cleaned, batch_size, top_k)

    def _validated(self, texts: list[str] | str, batch_size: int | None) -> tuple[list[str], list[str], int]:
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [validate_text(t, i, self.max_chars) for i, t in enumerate(texts)]
        return texts, cleaned, batch_size or self.batch_size

    def _score(self, texts: list[str], cleaned: list[str], batch_size: int, top_k: int) -> ScoreBatch:
        clock = time.perf_counter
        t0 = clock()
        tokens = self._tokens(cleaned)
        chunks = plan_chunks(tokens, self.window, self.overlap)
        t1 = clock()
        chunk_probs, piece_weights = self._run(tokens, chunks, batch_size)
        t2 = clock()
        probs, token_w = self._documents(tokens, chunks, chunk_probs, piece_weights)
        words = self._top_words(texts, tokens, token_w, top_k) if top_k else Words.empty()
        t3 = clock()
        return ScoreBatch(
            model_version=self.version,
            texts=texts,
            probabilities=probs,
            n_chunks=chunks.per_doc,
            n_tokens=tokens.lengths,
            words=words,
            seconds={"tokenize": t1 - t0, "batches_and_network": t2 - t1, "words": t3 - t2},
        )
