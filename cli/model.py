"""`finsent model ...`: train, inspect, evaluate and explain the sentiment model (the `model/` library)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import wiring
from cli.wiring import CheckpointOpt, DatabaseOpt, DateOpt

if TYPE_CHECKING:
    from scoring.compare import Comparison

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # ../shared/data beside the checkout

TEACHERS = Path.home() / ".cache" / "finsent" / "teachers"  # teacher checkpoints: too big for git

model_app = typer.Typer(help="Train, inspect, evaluate and explain the sentiment model.", no_args_is_help=True)


@model_app.command("train")
def model_train(
    data_dir: Annotated[Path, typer.Option(help="Folder with the labelled development data.")] = SHARED_DATA,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write <version>/ (default: model/weights).")] = None,
    epochs: int = 5,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 13,
    max_length: int = 128,
    phrasebank_repeat: int = 2,
    class_weighting: str = "sqrt",
    label_smoothing: float = 0.0,
    mlm_epochs: Annotated[float, typer.Option(help="Domain-adaptive MLM epochs on news_stream first.")] = 0.0,
    head_lr: float = 1e-3,
    align_rollout: Annotated[
        float, typer.Option(help="Weight of the loss aligning pooling weights with attention rollout (0: off).")
    ] = 0.0,
    init_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint instead of a new head.")] = None,
    soft_labels: Annotated[
        Path | None, typer.Option(help="Distil: a teacher's soft labels (finsent model soft-labels writes them).")
    ] = None,
    distill_weight: Annotated[float, typer.Option(help="Share of the teacher's KL on a labelled text.")] = 0.5,
    max_news: Annotated[int, typer.Option(help="Use at most N of the soft-labelled news headlines (0: all).")] = 0,
    pool_content_words: Annotated[
        bool, typer.Option(help="Never pool function words and punctuation (the stored words are content words).")
    ] = False,
    indomain_val: Annotated[
        bool, typer.Option(help="Add the in-domain headline set's validation half to early stopping.")
    ] = False,
    device: str = "auto",
    max_train: Annotated[int, typer.Option(help="Cap the training set (smoke runs); 0 = all.")] = 0,
    faithfulness_n: int = 300,
    evaluate_paths: Annotated[bool, typer.Option(help="Evaluate CPU paths and faithfulness into the card.")] = True,
    set_default: Annotated[bool, typer.Option(help="Point model/weights/DEFAULT at the new checkpoint.")] = True,
) -> None:
    """Train the model on ../shared/data and write a checkpoint with its model card."""
    from model.checkpoints import WEIGHTS_DIR
    from model.train import TrainConfig, train

    if not data_dir.is_dir():
        wiring.fail(f"{data_dir}: no such data folder")
    if soft_labels and not soft_labels.is_file():
        wiring.fail(f"{soft_labels}: no such soft-label file")
    cfg = TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(out_dir or WEIGHTS_DIR),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        max_length=max_length,
        phrasebank_repeat=phrasebank_repeat,
        class_weighting=class_weighting,
        label_smoothing=label_smoothing,
        mlm_epochs=mlm_epochs,
        head_lr=head_lr,
        align_rollout=align_rollout,
        init_from=str(init_from) if init_from else None,
        soft_labels=str(soft_labels) if soft_labels else None,
        distill_weight=distill_weight,
        max_news=max_news,
        pool_content_words=pool_content_words,
        indomain_val=indomain_val,
        device=device,
        max_train=max_train,
        faithfulness_n=faithfulness_n,
        evaluate_paths=evaluate_paths,
    )
    from model.distill import SoftLabelError

    try:
        path = train(cfg, log=typer.echo, command="finsent " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except SoftLabelError as exc:
        wiring.fail(str(exc))
    if set_default:
        (Path(cfg.out_dir) / "DEFAULT").write_text(path.name + "\n")
        typer.echo(f"DEFAULT -> {path.name}")


@model_app.command("train-teacher")
def model_train_teacher(
    data_dir: Annotated[Path, typer.Option(help="Folder with the labelled development data.")] = SHARED_DATA,
    out_dir: Annotated[Path, typer.Option(help="Where to write <version>/ (about 220 MB; not in git).")] = TEACHERS,
    epochs: int = 2,
    lr: float = 3e-5,
    batch_size: int = 16,
    max_length: int = 96,
    device: str = "auto",
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    max_train: Annotated[int, typer.Option(help="Cap the training set (smoke runs); 0 = all.")] = 0,
    evaluate_paths: Annotated[bool, typer.Option(help="Evaluate CPU paths and faithfulness into the card.")] = True,
) -> None:
    """Fine-tune the teacher (all-mpnet-base-v2 under the same attention-pooling head) on the student's splits.

    Needs the teacher extra (make teacher). The same splits, seed and head as the student; the checkpoint goes to a
    cache outside the repository, and its card records the encoder's sha256.
    """
    from model.teacher_weights import TeacherWeightsError, assemble
    from model.train import TrainConfig, train

    if not data_dir.is_dir():
        wiring.fail(f"{data_dir}: no such data folder")
    try:
        encoder = assemble(log=typer.echo)
    except TeacherWeightsError as exc:
        wiring.fail(str(exc))
    cfg = TrainConfig(
        data_dir=str(data_dir), out_dir=str(out_dir), encoder_dir=str(encoder), name="mpnet-teacher", epochs=epochs,
        lr=lr, head_lr=1e-3, batch_size=batch_size, max_length=max_length, device=device, threads=threads,
        max_train=max_train, evaluate_paths=evaluate_paths, faithfulness_n=100, evals_per_epoch=2,
    )  # fmt: skip
    path = train(cfg, log=typer.echo, command="finsent " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    typer.echo(f"teacher written to {path}")


@model_app.command("soft-labels")
def model_soft_labels(
    teacher: Annotated[Path, typer.Argument(help="The teacher's checkpoint folder (finsent model train-teacher).")],
    data_dir: Annotated[Path, typer.Option(help="Folder with the labelled development data.")] = SHARED_DATA,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write <teacher>.csv.gz (model/distill).")] = None,
    max_news: Annotated[int, typer.Option(help="Label at most N news_stream headlines (0: all).")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
) -> None:
    """The teacher's calibrated probabilities on the training texts and the news headlines, for distillation
    (docs/teacher.md): a small gzip CSV keyed by text hash, committed so the student can be retrained without it."""
    import torch

    from model.checkpoints import CheckpointError, read_card
    from model.distill import SOFT_DIR, label_with_teacher

    if not data_dir.is_dir():
        wiring.fail(f"{data_dir}: no such data folder")
    try:
        read_card(teacher)
    except CheckpointError as exc:
        wiring.fail(str(exc))
    if threads:
        torch.set_num_threads(threads)
    label_with_teacher(teacher, data_dir, out_dir or SOFT_DIR, max_news=max_news, log=typer.echo)


def linked_spans(text: str) -> list[tuple[str, int, int]]:
    """(ticker, start, end) of every company the linker finds in a text: how the per-company commands know the
    other companies of a text (the worker hands its own spans to the model)."""
    from scoring.entities import find

    return [(s.ticker, s.start, s.end) for s in find(text) if not s.skipped]


@model_app.command("train-target")
def model_train_target(
    checkpoint: CheckpointOpt = None,
    data_dir: Annotated[Path, typer.Option(help="Folder with the labelled development data.")] = SHARED_DATA,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training pairs; the dev half picks one.")] = 8,
    composed: Annotated[int, typer.Option(min=0, help="Two-company texts composed from the train splits.")] = 12000,
) -> None:
    """Train a checkpoint's per-company head (docs/model.md, "Sentiment per company") on its frozen network; writes
    target_head.safetensors and target_head.json beside it. About 7 minutes on 2 CPU cores."""
    from model.checkpoints import CheckpointError, default_checkpoint, read_card
    from model.target import FIXTURE, train

    path = checkpoint or default_checkpoint()
    if not data_dir.is_dir():
        wiring.fail(f"{data_dir}: no such data folder")
    try:
        read_card(path)
    except CheckpointError as exc:
        wiring.fail(str(exc))
    _, card = train(path, data_dir, FIXTURE, linked_spans, epochs=epochs, n_composed=composed)
    typer.echo(json.dumps(card, indent=2))


@model_app.command("info")
def model_info(checkpoint: CheckpointOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Version, architecture, inference paths and headline metrics of a checkpoint."""
    from model.checkpoints import CheckpointError, default_checkpoint, read_card

    try:
        path = checkpoint or default_checkpoint()
        card = read_card(path)
    except CheckpointError as exc:
        wiring.fail(str(exc))
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    typer.echo(f"version      {card['version']}")
    typer.echo(f"path         {path}")
    typer.echo(f"encoder      {card['architecture']['encoder']}")
    typer.echo(f"parameters   {card['architecture']['parameters']:,}")
    if "inference" in card:
        typer.echo(
            f"cpu default  {card['inference']['cpu_default']}   cuda default  {card['inference']['cuda_default']}"
        )
    typer.echo(f"temperature  {card['calibration']['temperature']:.3f}")
    for precision, metrics in card.get("metrics", {}).get("test", {}).items():
        typer.echo(f"\ntest metrics ({precision})")
        for name, m in metrics.items():
            typer.echo(f"  {name:<22} n={m['n']:<5} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    distilled = card["data"].get("distillation")
    if distilled:
        typer.echo(
            f"\ndistilled from {distilled['teacher']} ({distilled['labelled_with_soft']} labelled texts, "
            f"{distilled['news_headlines']} news headlines; model/distill/{distilled['soft_labels']})"
        )
    if "side_by_side" in card:
        cols = card["side_by_side"]["columns"]
        typer.echo(
            "\nside by side, fp32 test accuracy / macro-F1: " + "; ".join(f"({i + 1}) {c}" for i, c in enumerate(cols))
        )
        typer.echo(f"  {'split':<22}" + "".join(f"{f'({i + 1})':>16}" for i in range(len(cols))))
        for split, row in card["side_by_side"]["rows"].items():
            cells = [f"{row[c]['accuracy']:.3f} / {row[c]['macro_f1']:.3f}" if c in row else "-" for c in cols]
            typer.echo(f"  {split:<22}" + "".join(f"{c:>16}" for c in cells))
    if "explanation_words" in card:
        e = card["explanation_words"]
        typer.echo(f"\nfunction words among the top-{e['k']} stored words: {e['share']:.1%} ({e['texts_from']})")


def mark_words(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each [start, end) span wrapped in [[ ]]."""
    out, pos = [], 0
    for s, e in sorted(spans):
        out += [text[pos:s], "[[", text[s:e], "]]"]
        pos = e
    out.append(text[pos:])
    return "".join(out)


@model_app.command("explain")
def model_explain(
    texts: Annotated[list[str] | None, typer.Argument(help="Text(s) to classify and explain.")] = None,
    file: Annotated[Path | None, typer.Option(help="A file with one text per line.")] = None,
    method: Annotated[str, typer.Option(help="pooling | rollout | ig")] = "pooling",
    top_k: int = 5,
    checkpoint: CheckpointOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
    target: Annotated[
        str | None, typer.Option(help="A company as written in the text: its sentiment, not the headline's.")
    ] = None,
    span: Annotated[str | None, typer.Option(help="The company's mention as START:END character offsets.")] = None,
) -> None:
    """Label, probabilities, and the text with its most-attended words marked [[like this]]."""
    from model.checkpoints import CheckpointError
    from model.explain import METHODS, Explainer
    from model.scorer import ScoreInputError

    if target is not None or span is not None:
        _explain_target(texts, file, target, span, top_k, checkpoint, as_json, method)
        return
    if method not in METHODS:
        wiring.fail(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    items = list(texts or [])
    if file is not None:
        if not file.is_file():
            wiring.fail(f"{file}: no such file")
        try:
            items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as exc:
            wiring.fail(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    if not items:
        wiring.fail("nothing to explain: give a TEXT argument or --file")
    try:
        explainer = Explainer(checkpoint)
    except CheckpointError as exc:
        wiring.fail(str(exc))
    for text in items:
        try:
            explanation = explainer.explain(text, method=method, top_k=top_k)
        except ScoreInputError as exc:
            wiring.fail(str(exc))
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "text": text,
                        "label": explanation.label,
                        "probabilities": explanation.probabilities,
                        "method": method,
                        "model_version": explainer.version,
                        "attributions": [a.__dict__ for a in explanation.attributions],
                    }
                )
            )
            continue
        probs = "  ".join(f"{k} {v:.3f}" for k, v in explanation.probabilities.items())
        typer.echo(f"\n{wiring.printable(mark_words(text, [(a.start, a.end) for a in explanation.attributions]))}")
        typer.echo(f"  label {explanation.label}   {probs}   ({method})")
        for a in explanation.attributions:
            typer.echo(f"  {a.rank}. {a.word!r:<24} {a.weight:.4f}  [{a.start}:{a.end}]")  # repr escapes


def _span_option(span: str) -> tuple[int, int]:
    try:
        start, end = (int(x) for x in span.split(":"))
    except ValueError:
        wiring.fail(f"--span {span!r}: write START:END, two character offsets such as 0:6")
    return start, end


def _explain_target(texts, file, target, span, top_k, checkpoint, as_json, method) -> None:
    """`explain --target NAME` / `--span START:END`: one company's sentiment in one text, and its words."""
    from model.checkpoints import CheckpointError
    from model.scorer import ScoreInputError
    from model.target import TargetError, TargetScorer, check_span, find_target

    if target is not None and span is not None:
        wiring.fail("give --target or --span, not both")
    if method != "pooling":
        wiring.fail("--target explains with the pooling weights its decision used: leave --method out")
    if file is not None or len(texts or []) != 1:
        wiring.fail("--target and --span explain one TEXT argument")
    text = texts[0]
    try:
        where = find_target(text, target) if target is not None else check_span(text, _span_option(span))
        scorer = TargetScorer(checkpoint, linker=linked_spans)
        r = scorer.score(text, where, top_k=top_k)
    except (TargetError, ScoreInputError, CheckpointError) as exc:
        wiring.fail(str(exc))
    if as_json:
        typer.echo(json.dumps({
            "text": text, "target": {"text": r.target, "start": r.start, "end": r.end}, "targeted": r.targeted,
            "label": r.label, "probabilities": r.probabilities, "score": r.score, "method": "pooling",
            "model_version": scorer.version, "attributions": [a.__dict__ for a in r.attributions],
        }))  # fmt: skip
        return
    probs = "  ".join(f"{k} {v:.3f}" for k, v in r.probabilities.items())
    typer.echo(f"\n{wiring.printable(mark_words(text, [(a.start, a.end) for a in r.attributions]))}")
    how = "targeted" if r.targeted else "the headline's result: no other company in the text"
    typer.echo(f"  target {r.target!r} [{r.start}:{r.end}]   label {r.label}   {probs}   ({how})")
    for a in r.attributions:
        typer.echo(f"  {a.rank}. {a.word!r:<24} {a.weight:.4f}  [{a.start}:{a.end}]")


@model_app.command("evaluate")
def model_evaluate(
    file: Annotated[Path, typer.Argument(help="CSV with a text column and a negative/neutral/positive label.")],
    text_col: str = "text",
    label_col: str = "label",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    checkpoint: CheckpointOpt = None,
    precision: Annotated[str, typer.Option(help="auto | fp32 | int8 | bf16")] = "auto",
    device: str = "cpu",
    batch_size: int = 64,
    target_col: Annotated[
        str | None, typer.Option(help="Entity-level file: the column naming the company as written in the text.")
    ] = None,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix on a labelled CSV."""
    from model.evaluate import EvaluationInputError, evaluate_texts, format_report, read_labelled_csv
    from model.scorer import ScoreInputError

    if target_col is not None:
        _evaluate_targets(file, text_col, label_col, target_col, wiring.scorer(checkpoint, device, precision), as_json)
        return
    try:
        texts, labels = read_labelled_csv(file, text_col, label_col)
    except EvaluationInputError as exc:
        wiring.fail(str(exc))
    scorer = wiring.scorer(checkpoint, device, precision)
    try:
        metrics = evaluate_texts(scorer, texts, labels, batch_size=batch_size)
    except ScoreInputError as exc:
        wiring.fail(f"{file}: {exc} (row numbers count from the first data row as item 0)")
    if as_json:
        keys = ("n", "accuracy", "macro_f1", "per_class", "confusion", "ece")
        typer.echo(
            json.dumps({k: metrics[k] for k in keys} | {"model_version": scorer.version, "precision": scorer.precision})
        )
    else:
        typer.echo(f"model {scorer.version} ({scorer.device.type} {scorer.precision})\n{format_report(metrics)}")


def _evaluate_targets(file, text_col, label_col, target_col, headline_scorer, as_json) -> None:
    """`evaluate --target-col`: one row per text x company; the company's label against the targeted result."""
    from model.checkpoints import CheckpointError
    from model.evaluate import EvaluationInputError, evaluate_targets, format_report, read_labelled_csv
    from model.scorer import ScoreInputError
    from model.target import TargetError, TargetScorer

    try:
        texts, labels, targets = read_labelled_csv(file, text_col, label_col, target_col)
        scorer = TargetScorer(scorer=headline_scorer, linker=linked_spans)
        metrics = evaluate_targets(scorer, texts, labels, targets)
    except (EvaluationInputError, CheckpointError) as exc:
        wiring.fail(str(exc))
    except (TargetError, ScoreInputError) as exc:
        wiring.fail(f"{file}: {exc}")
    if as_json:
        keys = ("n", "n_texts", "accuracy", "macro_f1", "per_class", "confusion", "ece")
        extra = {"model_version": scorer.version, "precision": headline_scorer.precision}
        typer.echo(json.dumps({k: metrics[k] for k in keys} | extra))
    else:
        where = f"{headline_scorer.device.type} {headline_scorer.precision}"
        typer.echo(f"model {scorer.version} ({where}, per company)\ntexts      {metrics['n_texts']}\n"
                   f"{format_report(metrics)}")  # fmt: skip


@model_app.command("compare")
def model_compare(
    candidate: Annotated[str, typer.Option("--candidate", help="The model version to compare with the active one.")],
    since: DateOpt = None,
    until: DateOpt = None,
    examples: Annotated[int, typer.Option(min=0, max=100, help="How many flips to show.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Compare a candidate version's stored scores with the active version's (FINSENT_MODEL_VERSION) on the articles
    both scored: agreement, label shifts, mean score change, and the largest flips with their headlines.

    Example: finsent model compare --candidate minilm6-attnpool-0e79fb4c9106 --since 2020-03-01
    """
    from core.versions import VersionError
    from scoring.compare import compare_versions

    start, end = wiring.when(since, "since"), wiring.when(until, "until")
    if start is not None and end is not None and start >= end:
        wiring.fail(f"--since {since} is not before --until {until}: no article could be compared")
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)
    active = wiring.model_version(settings, session_factory)
    with session_factory() as session:
        try:
            result = compare_versions(session=session, active=active, candidate=candidate, since=start, until=end,
                                      examples=examples)  # fmt: skip
        except (VersionError, ValueError) as exc:
            wiring.fail(f"--candidate {candidate}: {exc}")
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
        return
    for line in comparison_lines(result):
        typer.echo(wiring.printable(line))


def comparison_lines(result: Comparison) -> list[str]:
    """`finsent model compare`'s report as lines of text."""
    from datetime import UTC

    from core.schema import LABELS

    active, candidate = result.active, result.candidate
    since, until = (f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if t else None for t in (result.since, result.until))
    span = {(True, True): f"{since} .. {until}", (True, False): f"since {since}", (False, True): f"before {until}"}
    lines = [
        f"active      {active} (the version the readers show: FINSENT_MODEL_VERSION)",
        f"candidate   {candidate}",
        f"range       published {span.get((bool(since), bool(until)), 'at any time')}",
        f"compared    {result.compared} articles scored by both",
        f"not compared  {result.only_active} scored only by {active}, {result.only_candidate} only by {candidate}",
    ]
    if not result.compared:
        unscored = candidate if result.only_active or not result.only_candidate else active
        lines.append(f"nothing to compare: score these articles with {unscored} first, "
                     f"`finsent rescore --model {unscored}` (with --since / --until for a range)")  # fmt: skip
        return lines
    lines += [
        f"agreement   {result.agreement:.1%} ({result.agreed} of {result.compared}; "
        f"{result.compared - result.agreed} labels change)",
        f"score       mean change {result.mean_score_change:+.3f} (candidate - active)",
        "",
        "label shift (rows: active label, columns: candidate label)",
        f"  {'':<10}" + "".join(f"{label:>10}" for label in LABELS),
        *(f"  {a:<10}" + "".join(f"{result.shift[a][c]:>10}" for c in LABELS) for a in LABELS),
    ]
    if result.flips:
        lines += ["", "flips, the largest score change first"]
        lines += [
            f"  #{f.article_id:<7} {f.published_at:%Y-%m-%d}  {f.active_label:>8} -> {f.candidate_label:<8} "
            f"{f.active_score:+.2f} -> {f.candidate_score:+.2f}  {f.title[:100]}"
            for f in result.flips
        ]
    return lines
