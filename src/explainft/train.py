"""Fine-tuning with ``transformers.Trainer``: score-only evaluation loss, dvclive curves, resume.

One idea, over 500 lines: the training loop and the losses, collator, sampler and callbacks only it uses.

:func:`finetune` trains a model the caller has prepared (LoRA-wrapped or
full; see ``students.py``) on the encoded training examples
(:func:`explainft.encode.encode_all`):

* **Training loss** covers the whole target (score, explanation, EOS): the
  batch's ``labels`` are the encoded ``labels`` (prompt masked with -100).
  With ``score_target: soft`` the score token is trained against a two-hot
  distribution on the unrounded score (:func:`two_hot`) instead of the
  rounded label's token; ``score_weight`` multiplies the score token's term
  (1, the default and the paper's: every target token weighs the same, so a
  long explanation dilutes the score's share of the loss). The rest of the
  target is unchanged (:func:`supervised_loss`).
* **Evaluation loss is the score-token loss.** Each named evaluation set is
  encoded the same way, then its ``labels`` are replaced by ``eval_labels``
  (-100 everywhere but the score token), so the ``eval_<name>_loss`` that the
  Trainer reports *is* the mean cross-entropy at the score position. With
  exactly one supervised token per example, the Trainer's batch-size-weighted
  mean of per-batch means is the plain mean over examples (exact, no padding
  effect). Evaluation runs once before training (step 0, recorded in
  ``checkpoints/initial_eval.json`` so a resumed run keeps it), every ``eval_steps``
  optimizer steps when set, and at the end of every epoch.
* **Length grouping** (``group_by_length``): the Trainer's
  ``LengthGroupedSampler`` (``train_sampling_strategy="group_by_length"``,
  lengths from the dataset's ``length`` column), seeded per epoch from
  ``seed`` (see :class:`_EpochSeededLengthSampler`) so that a resumed run sees
  the same batches. The padding share actually seen in the training batches
  (pad tokens / all tokens) is counted by the collator and reported.
* **Curves**: in dvclive's file layout (``out_dir/live``; see
  :func:`_write_live`) ``train/loss`` per logging step and ``eval/<name>/loss``
  per evaluation, x = optimizer step. They are written from the
  Trainer's ``log_history`` after training, which a resumed run restores from
  the checkpoint, so the curves of a killed-and-resumed run have no gaps and
  no duplicated steps.
* **Resume**: checkpoints go to ``out_dir/checkpoints`` (a ``persist: true``
  output in dvc.yaml); when one exists the run resumes from the newest
  (optimizer, scheduler, RNG states and data position restored by the
  Trainer). Determinism on CPU: the data order is a function of
  ``(seed, epoch)`` alone and the Trainer restores the RNG states, so a run
  killed after a checkpoint and rerun repeats the same float operations as an
  uninterrupted run; tests/test_train.py checks that the final weights match
  to 1e-6 (observed: bitwise equal on CPU with the same thread count). On
  GPU, non-deterministic kernels (atomics in backward) make it close, not
  equal.
* **Outputs**: ``out_dir/model`` (``save_pretrained``, safetensors; the
  adapter only for a peft model; the tokenizer beside it; ``LOADING.json``, how the
  base was loaded, when the caller says: see :func:`finetune`),
  ``out_dir/model/metrics.json`` (see :func:`finetune`), ``out_dir/live``.
  Both are functions of the inputs (a DVC output must be): no timing goes
  into them (:data:`TIMING_KEYS` are returned, not written), and the
  Trainer's ``trainer_state.json`` stays out of ``model/``, since its log
  history carries run times (``train_runtime``, ``eval_*_runtime``,
  ``*_per_second``, ``eval_*_model_preparation_time``). Nothing reads it
  there: resuming reads the checkpoints' own copy, and its losses are in
  ``metrics.json`` and the curves.

Saving checkpoints follows evaluation: every ``eval_steps`` steps when it is
set, else at every epoch end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config.train import TrainConfig
from .devices import compute_dtype, resolve_device
from .encode import IGNORE, Encoded, EncodeError, collate, encode_all, pad_id_for, score_token_ids
from .progress import quiet_library_bars, training_callback
from .records import Example
from .students import LOADING_FILE, Loading

CHECKPOINTS = "checkpoints"
MODEL = "model"
LIVE = "live"
METRICS = "metrics.json"
# finetune()'s wall-clock figures: returned, never written into out_dir (see "Outputs" above)
TIMING_KEYS = ("seconds", "train_seconds", "steps_per_second", "supervised_tokens_per_second")
INITIAL_EVAL = "initial_eval.json"  # in CHECKPOINTS, so that a resumed run keeps its step-0 evaluation
RUN = "RUN.json"  # in CHECKPOINTS: the fingerprint of the run that wrote them

# --------------------------------------------------------------------------- data


def _dataset_cls():
    import torch

    class EncodedDataset(torch.utils.data.Dataset):
        """Encoded examples as Trainer items: ``input_ids`` (for length grouping) and the Encoded itself."""

        def __init__(
            self, encoded: Sequence[Encoded], *, split: str, score_weights: Sequence[tuple[float, ...]] | None = None
        ):
            for e in encoded:  # an all-masked example would be a silent zero loss: never let one in
                if all(t == IGNORE for t in e.labels) or all(t == IGNORE for t in e.eval_labels):
                    raise EncodeError(f"{split}: example {e.id!r} has no supervised token; it cannot be trained on")
            if score_weights is not None and len(score_weights) != len(encoded):
                raise ValueError(f"{split}: {len(score_weights)} score-weight rows for {len(encoded)} examples")
            self.encoded = list(encoded)
            self.score_weights = list(score_weights) if score_weights is not None else None
            self.split = split
            self.column_names = ["input_ids", "length"]

        def __len__(self) -> int:
            return len(self.encoded)

        def __getitem__(self, i: int) -> dict[str, Any]:
            e = self.encoded[i]
            item = {"input_ids": e.input_ids, "length": len(e), "encoded": e, "split": self.split}
            if self.score_weights is not None:
                item["score_weights"] = self.score_weights[i]
            return item

    return EncodedDataset


class Collator:
    """Pads a batch with :func:`explainft.encode.collate`; keeps what the model takes and counts padding.

    Training items keep their ``labels`` (the whole target); evaluation items
    were built with ``labels = eval_labels``. Training batches also carry
    ``score_index`` (B: each row's score token), and ``score_weights`` (B x 5)
    when the items have soft score targets; the trainer's loss takes both out
    before the forward pass. Counts (training batches only):
    batches, tokens, pad tokens, supervised tokens, per-batch padding shares.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id
        self.reset()

    def reset(self) -> None:
        self.batches = 0
        self.tokens = 0
        self.pad_tokens = 0
        self.supervised = 0
        self.shares: list[float] = []

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = collate([it["encoded"] for it in items], self.pad_id)
        if items[0]["split"] == "train":
            total = batch["attention_mask"].numel()
            pads = total - int(batch["attention_mask"].sum())
            self.batches += 1
            self.tokens += total
            self.pad_tokens += pads
            self.supervised += int((batch["labels"] != IGNORE).sum())
            self.shares.append(pads / total)
        out = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        if items[0]["split"] != "train":
            return out
        out["score_index"] = batch["score_index"]
        soft = ["score_weights" in it for it in items]
        if any(soft):
            if not all(soft):
                raise ValueError("a batch mixes examples with and without soft score targets")
            import torch

            out["score_weights"] = torch.tensor([it["score_weights"] for it in items], dtype=torch.float32)
        return out


def _as_eval(encoded: Sequence[Encoded]) -> list[Encoded]:
    return [dataclasses.replace(e, labels=list(e.eval_labels)) for e in encoded]


def two_hot(score: float) -> tuple[float, ...]:
    """The soft target of the score token: weights over labels 1..5 whose mean is the score on the 1-5 scale.

    A normalised score ``s`` is ``1 + 4s`` on the 1-5 scale; its weight is split
    between the two labels around it in proportion to nearness (``s = 0.6``,
    3.4 -> label 3: 0.6, label 4: 0.4), so that ``sum(k * w_k) = 1 + 4s``
    exactly. Trained with cross-entropy against these weights, the student's
    score distribution estimates them, and its expected score (what
    evaluation reads) estimates the mean score rather than the mean *rounded*
    label: with the hard target, items whose scores all round to 5 pull the
    expected score to the top of the scale, above the labels' mean (REPORT.md,
    the baseline check's *bias* column).
    """
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    x = 4.0 * float(score)
    lo = min(int(math.floor(x)), 3)
    frac = x - lo
    weights = [0.0] * 5
    weights[lo] = 1.0 - frac
    weights[lo + 1] = frac
    return tuple(weights)


def _soft_targets(
    tokenizer: Any, train: Sequence[Example], encoded: Sequence[Encoded], cfg: TrainConfig
) -> tuple[list[tuple[float, ...]], tuple[int, ...]]:
    """Two-hot weights per training example, and the ids of the five score tokens (checked against each example)."""
    ids = score_token_ids(tokenizer, train[0], cfg.max_length, position=cfg.explanation_position)
    for ex, e in zip(train, encoded, strict=True):
        if e.score_token_id != ids[ex.label - 1]:
            raise EncodeError(
                f"train: example {ex.id!r}: its score token (id {e.score_token_id}) is not the token of "
                f"label {ex.label} found on the first example (id {ids[ex.label - 1]}); the soft score "
                "target needs one token per label: use train.score_target: hard or another tokenizer"
            )
    return [two_hot(ex.score) for ex in train], ids


# --------------------------------------------------------------------------- trainer pieces


def _sampler_cls():
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class _EpochSeededLengthSampler(LengthGroupedSampler):
        """LengthGroupedSampler whose order depends on (seed, epoch) only, not on the global RNG.

        The stock sampler draws from the global RNG when the epoch starts; on a
        mid-epoch resume that state differs from the uninterrupted run's, and
        so would the batches. The Trainer calls ``set_epoch`` before each epoch.
        """

        def __init__(self, *args: Any, seed: int, **kw: Any):
            super().__init__(*args, **kw)
            self.seed = seed
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __iter__(self):
            self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            return super().__iter__()

    return _EpochSeededLengthSampler


def _trainer_cls():
    import torch
    from transformers import Trainer

    Sampler = _sampler_cls()

    class ExplainTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy == "group_by_length":
                return Sampler(
                    self.args.train_batch_size * self.args.gradient_accumulation_steps,
                    lengths=[len(e) for e in ds.encoded],
                    seed=self.args.data_seed,
                )
            return super()._get_train_sampler(train_dataset)

        def _get_eval_sampler(self, eval_dataset):
            return torch.utils.data.SequentialSampler(eval_dataset)

        selected_logits = True  # switched off by the first-batch check, or under several processes
        _checked = False
        score_ids: tuple[int, ...] | None = None  # the five score tokens' ids: set by finetune for soft targets
        score_weight: float = 1.0  # set by finetune (train.score_weight)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            score = {k: inputs.pop(k) for k in ("score_index", "score_weights") if k in inputs}  # not model inputs
            if "score_weights" in score and self.score_ids is None:
                raise RuntimeError("a batch carries soft score targets but the trainer has no score token ids")
            if "score_weights" not in score and (self.score_weight == 1.0 or not model.training):
                score = {}  # every supervised token alike (and evaluation's score-only loss): the plain loss
            elif "score_index" not in score:
                raise RuntimeError("a weighted or soft score loss needs the batch's score_index")
            if self.selected_logits and self.accelerator.num_processes == 1 and not self._checked:
                self._checked = True
                if not _matches_stock_loss(model, inputs):
                    self.selected_logits = False
            if not self.selected_logits or self.accelerator.num_processes > 1:
                # DDP/FSDP: the LM head must run inside the wrapper's forward for gradient sync
                if not score:
                    return super().compute_loss(
                        model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
                    )
                total, n = full_logits_loss(
                    model, inputs, score=score, score_ids=self.score_ids, score_weight=self.score_weight
                )
            else:
                total, n = selected_token_loss(
                    model, inputs, score=score or None, score_ids=self.score_ids, score_weight=self.score_weight
                )
            loss = total / (num_items_in_batch if num_items_in_batch is not None else n.clamp(min=1))
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as the stock loss: num_items_in_batch was summed over processes, and DDP averages gradients
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return ExplainTrainer


def selected_token_loss(
    model: Any,
    inputs: Mapping[str, Any],
    *,
    score: Mapping[str, Any] | None = None,
    score_ids: Sequence[int] | None = None,
    score_weight: float = 1.0,
):
    """(sum of the cross-entropy over supervised tokens, their count), with the LM head on those positions only.

    The stock causal-LM loss computes logits for every position (batch x
    length x vocabulary) and then ignores all but the supervised ones: the
    target after a long prompt, or one score token at evaluation. Here the
    model runs with ``output_hidden_states=True, logits_to_keep=1`` (its
    final hidden states, normalised, and logits for one position only), and
    the output embedding (LM head) is applied to the positions whose next
    label is supervised. The result equals the stock loss (checked on the
    first batch, see :func:`_matches_stock_loss`); it saves the head's
    compute and the logits' memory, which dominate for small models and
    large vocabularies. ``score``, ``score_ids``, ``score_weight``: see :func:`supervised_loss`.
    """
    labels = inputs["labels"]
    out = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        output_hidden_states=True,
        logits_to_keep=1,
        use_cache=False,
    )
    hidden = out.hidden_states[-1][:, :-1]
    target = labels[:, 1:]
    mask = target != IGNORE
    head = _unwrap(model).get_output_embeddings()
    logits = head(hidden[mask]).float()
    return supervised_loss(
        logits, target, mask, score=score, score_ids=score_ids, score_weight=score_weight
    ), mask.sum()


def full_logits_loss(
    model: Any,
    inputs: Mapping[str, Any],
    *,
    score: Mapping[str, Any] | None = None,
    score_ids: Sequence[int] | None = None,
    score_weight: float = 1.0,
):
    """As :func:`selected_token_loss`, from the model's full logits (the path under several processes)."""
    labels = inputs["labels"]
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
    target = labels[:, 1:]
    mask = target != IGNORE
    logits = out.logits[:, :-1][mask].float()
    return supervised_loss(
        logits, target, mask, score=score, score_ids=score_ids, score_weight=score_weight
    ), mask.sum()


def supervised_loss(
    logits: Any,
    target: Any,
    mask: Any,
    *,
    score: Mapping[str, Any] | None = None,
    score_ids: Sequence[int] | None = None,
    score_weight: float = 1.0,
):
    """Summed cross-entropy of the supervised positions (``logits``: one row per True of ``mask``, row-major).

    ``score`` (training batches): ``score_index`` (B, each row's score token in
    ``labels``) and, for soft targets, ``score_weights`` (B x 5, see
    :func:`two_hot`). With ``score_weights`` each row's score position is
    scored against the soft target, ``-sum_k w_k log p(score token k)`` over
    the full vocabulary, instead of the label's token; ``score_weight``
    multiplies each row's score-token term. Every other supervised token
    (explanation, EOS) keeps its plain cross-entropy. Without ``score`` every
    supervised token is plain and alike.
    """
    import torch
    import torch.nn.functional as F

    if not score:
        return F.cross_entropy(logits, target[mask], reduction="sum")
    rows = mask.shape[0]
    is_score = torch.zeros_like(mask)
    is_score[torch.arange(rows, device=mask.device), score["score_index"].to(mask.device) - 1] = True
    if bool((is_score & ~mask).any()):
        raise RuntimeError("a score target sits on a position whose label is masked")
    sel = is_score[mask]  # which of the supervised positions hold a score token: one per row, in row order
    labels = target[mask]
    rest = F.cross_entropy(logits[~sel], labels[~sel], reduction="sum")
    if "score_weights" in score:
        ids = torch.as_tensor(list(score_ids), device=logits.device)
        logp = torch.log_softmax(logits[sel], dim=-1)[:, ids]
        weights = score["score_weights"].to(device=logits.device, dtype=logp.dtype)
        at_score = -(weights * logp).sum()
    else:
        at_score = F.cross_entropy(logits[sel], labels[sel], reduction="sum")
    return rest + score_weight * at_score


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)


def _matches_stock_loss(model: Any, inputs: Mapping[str, Any], *, rows: int = 2, rtol: float = 1e-4) -> bool:
    """Whether :func:`selected_token_loss` equals the model's own loss on the first ``rows`` examples of a batch.

    A model family whose last hidden state is not the final-normalised one would fail this, and training then
    falls back to the stock loss. The check runs in eval mode (no dropout, so it draws no random numbers and a
    resumed run replays the same dropout masks as an uninterrupted one) without gradients, on two rows only
    (the stock loss materialises rows x length x vocabulary logits).
    """
    import torch

    sub = {k: inputs[k][:rows] for k in ("input_ids", "attention_mask", "labels")}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            total, n = selected_token_loss(model, sub)
            loss = float(total / n.clamp(min=1))
            ref = float(model(**sub).loss)
    finally:
        model.train(was_training)
    ok = math.isfinite(ref) and abs(ref - loss) <= rtol * max(1.0, abs(ref))
    if not ok:
        import warnings

        warnings.warn(
            f"selected-token loss {loss:.6f} differs from the model's own {ref:.6f}; using the model's loss (slower)",
            RuntimeWarning,
            stacklevel=2,
        )
    return ok


def _epoch_eval_callback():
    from transformers import TrainerCallback

    class EvalEveryEpoch(TrainerCallback):
        """Evaluate at every epoch end as well as every ``eval_steps`` (the Trainer offers one or the other)."""

        last_step = -1

        def on_evaluate(self, args, state, control, **kw):
            self.last_step = state.global_step

        def on_epoch_end(self, args, state, control, **kw):
            # (the step-end evaluation of the epoch's last step may already have run: once per step is enough)
            if args.eval_strategy != "no" and self.last_step != state.global_step:
                control.should_evaluate = True
            return control

    return EvalEveryEpoch()


def last_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint under ``out_dir/checkpoints`` (one with trainer_state.json), or None."""
    ckpt_dir = Path(out_dir) / CHECKPOINTS
    if not ckpt_dir.is_dir():
        return None
    found = []
    for p in ckpt_dir.glob("checkpoint-*"):
        try:
            step = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if (p / "trainer_state.json").is_file():
            found.append((step, p))
    return max(found)[1] if found else None


def mixed_precision(loading: Loading | None) -> dict[str, bool]:
    """The Trainer's mixed-precision flags for a model loaded as ``loading`` (None: on this process's device, as
    :func:`explainft.devices.resolve_device` places it, in that device's compute dtype).

    ``bf16`` when the model computes in bfloat16, ``fp16`` when in float16 (the Trainer then scales the loss, so
    small fp16 gradients do not flush to zero), neither in float32. The Trainer autocasts the forward pass to
    that type; the weights it updates are float32 (a full fine-tune's master copy, LoRA's adapter weights), and
    ``use_cpu`` follows the device."""
    device = loading.device if loading is not None else resolve_device("auto")
    dtype = loading.compute_dtype if loading is not None else compute_dtype(device)
    return {
        "use_cpu": not device.startswith("cuda"),
        "bf16": dtype == "bfloat16",
        "fp16": dtype == "float16",
    }


def training_kwargs(cfg: TrainConfig, out_dir: Path, *, n_eval: int, loading: Loading | None = None) -> dict[str, Any]:
    """The keyword arguments of the Trainer's ``TrainingArguments`` for ``cfg``; mixed precision and the device
    from ``loading`` (:func:`mixed_precision`)."""
    per_step = cfg.eval_steps is not None
    kw: dict[str, Any] = dict(
        output_dir=str(Path(out_dir) / CHECKPOINTS),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        eval_strategy=("steps" if per_step else "epoch") if n_eval else "no",
        save_strategy="steps" if per_step else "epoch",
        save_total_limit=cfg.save_total_limit,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length",
        **mixed_precision(loading),
        report_to="none",
        disable_tqdm=True,  # progress: explainft.progress.training_callback (added by finetune)
        remove_unused_columns=False,
        dataloader_num_workers=0,
        prediction_loss_only=True,
        save_safetensors=True,
    )
    if per_step:
        kw["eval_steps"] = cfg.eval_steps
        kw["save_steps"] = cfg.eval_steps
    return kw


def training_arguments(cfg: TrainConfig, out_dir: Path, *, n_eval: int, loading: Loading | None = None):
    """The Trainer's ``TrainingArguments`` (:func:`training_kwargs`)."""
    from transformers import TrainingArguments

    kw = training_kwargs(cfg, out_dir, n_eval=n_eval, loading=loading)
    try:
        return TrainingArguments(**kw)
    except TypeError:  # an argument this transformers version lacks (save_safetensors went in v5)
        kw.pop("save_safetensors", None)
        return TrainingArguments(**kw)


# --------------------------------------------------------------------------- the fine-tune


@quiet_library_bars()  # transformers' own bars (saving shards) only in a terminal
def finetune(
    model: Any,
    tokenizer: Any,
    train: list[Example],
    evals: dict[str, list[Example]],
    out_dir: Path,
    cfg: TrainConfig,
    *,
    callbacks: Sequence[Any] = (),
    fingerprint: Mapping[str, Any] | None = None,
    keep_checkpoints: bool = True,
    live_dir: Path | None = None,
    loading: Loading | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on ``train``, evaluating the score-only loss on each of ``evals``; returns the metrics.

    Resumes from the newest checkpoint in ``out_dir/checkpoints`` if there is
    one. Writes ``out_dir/model`` (with ``metrics.json``), ``out_dir/live``.
    ``callbacks`` are extra ``TrainerCallback``s (tests). Progress (optimizer steps, the latest training
    and evaluation losses) goes to stderr: :func:`explainft.progress.training_callback`.
    ``live_dir``: where the dvclive curves go (default ``out_dir/live``).
    ``loading``: how ``model`` was loaded (:func:`explainft.students.resolve_loading`): it sets the mixed
    precision (:func:`mixed_precision`), and its record is saved as ``out_dir/model/LOADING.json`` so that the
    model is measured on the base it was trained on (:func:`explainft.scoring.load_rater`); None: no record, and
    the device's compute dtype.

    ``fingerprint`` identifies the run (config, data, student): it is stored
    as ``checkpoints/RUN.json``, and checkpoints left by a run with another
    fingerprint are deleted rather than resumed (a persisted checkpoint
    folder must never carry an old configuration into a new run). With
    ``keep_checkpoints=False`` the ``checkpoint-*`` folders are removed after
    a successful run (``RUN.json`` and ``initial_eval.json`` stay). Under
    several processes only the main one writes files.

    metrics.json keys: ``train_loss`` (last logged training loss),
    ``train_loss_mean`` (the Trainer's mean over this process's steps),
    ``eval`` ({name: {"initial", "final", "per_epoch": [{"epoch", "step",
    "loss"}], "history": [{"epoch", "step", "loss"}]}}), ``steps``,
    ``epochs``, ``seconds`` (wall time of this call), ``train_seconds``,
    ``steps_per_second``, ``supervised_tokens``,
    ``supervised_tokens_per_second``, ``padding_share`` (pad / all tokens over
    the training batches), ``padding_share_batch_mean``,
    ``padding_share_batch_max``, ``batches``, ``resumed_from`` (checkpoint
    step or null), ``encode`` ({split: encode_all stats}), ``config``.
    (Counts, tokens and shares cover the batches this process trained on; a
    resumed run counts from the checkpoint.) The timings, :data:`TIMING_KEYS`
    (``seconds`` … ``supervised_tokens_per_second``), are in the returned dict
    only: metrics.json leaves them out, so that the same inputs give the same
    bytes (the finetune stage writes them to ``timings/``, :mod:`explainft.timings`).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train:
        raise ValueError("no training examples")
    for name, exs in evals.items():
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"evaluation set name {name!r} must be alphanumeric (it becomes a metric key)")
        if not exs:
            raise ValueError(f"evaluation set {name!r} is empty")

    Dataset = _dataset_cls()
    enc_stats: dict[str, Any] = {}
    train_enc, enc_stats["train"] = encode_all(tokenizer, train, cfg.max_length, cfg.explanation_position)
    weights, score_ids = _soft_targets(tokenizer, train, train_enc, cfg) if cfg.score_target == "soft" else (None, None)
    train_ds = Dataset(train_enc, split="train", score_weights=weights)
    eval_ds = {}
    for name, exs in evals.items():
        # test-split examples carry no variant: the score-only target is enough, since the eval loss reads
        # only the score token (with position "before", the loss is then conditioned on an empty explanation)
        exs = [e if e.variant is not None else e.with_target("none", "") for e in exs]
        enc, enc_stats[name] = encode_all(tokenizer, exs, cfg.max_length, cfg.explanation_position)
        eval_ds[name] = Dataset(_as_eval(enc), split=name)

    collator = Collator(pad_id_for(tokenizer))
    args = training_arguments(cfg, out_dir, n_eval=len(eval_ds), loading=loading)
    Trainer = _trainer_cls()
    from transformers import PrinterCallback

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds or None,
        data_collator=collator,
        callbacks=[_epoch_eval_callback(), training_callback(f"train {out_dir.as_posix()}"), *callbacks],
    )
    trainer.score_ids = score_ids
    trainer.score_weight = cfg.score_weight
    # the progress callback reports the steps and losses; the Trainer's PrinterCallback would also print every
    # log dict to stdout (all of them stay in trainer_state.json and the live curves)
    trainer.remove_callback(PrinterCallback)

    main = trainer.is_world_process_zero()
    ckpt_dir = out_dir / CHECKPOINTS
    run_path = ckpt_dir / RUN
    if fingerprint is not None:
        stored = json.loads(run_path.read_text()) if run_path.is_file() else None
        if stored != json.loads(json.dumps(fingerprint, sort_keys=True)) and main:
            for p in ckpt_dir.glob("checkpoint-*"):  # another run's checkpoints: never resume them
                shutil.rmtree(p, ignore_errors=True)
            (ckpt_dir / INITIAL_EVAL).unlink(missing_ok=True)
        _wait(trainer)
    resume = last_checkpoint(out_dir)
    initial_path = ckpt_dir / INITIAL_EVAL
    if resume is None or not initial_path.is_file():
        initial = {
            name: float(trainer.evaluate(ds, metric_key_prefix=f"eval_{name}")[f"eval_{name}_loss"])
            for name, ds in eval_ds.items()
        }
        if main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            _write_json(initial_path, initial)
            if fingerprint is not None:
                _write_json(run_path, fingerprint)
        _wait(trainer)
    initial = json.loads(initial_path.read_text())
    collator.reset()

    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_seconds = time.perf_counter() - t0

    history = trainer.state.log_history
    train_points = [(h["step"], h.get("epoch"), h["loss"]) for h in history if "loss" in h]
    evals_out: dict[str, Any] = {}
    for name in eval_ds:
        key = f"eval_{name}_loss"
        pts = [{"epoch": h.get("epoch"), "step": h["step"], "loss": h[key]} for h in history if key in h]
        # an epoch-end evaluation is logged at an integral epoch (an eval_steps one may coincide: keep one per step)
        per_epoch, seen = [], set()
        for pt in pts:
            if pt["epoch"] is not None and abs(pt["epoch"] - round(pt["epoch"])) < 1e-6 and pt["step"] not in seen:
                seen.add(pt["step"])
                per_epoch.append(pt)
        evals_out[name] = {
            "initial": initial.get(name),
            "final": pts[-1]["loss"] if pts else None,
            "per_epoch": per_epoch,
            "history": pts,
        }

    if main:
        _write_live(Path(live_dir) if live_dir is not None else out_dir / LIVE, train_points, evals_out)
        _save_model(trainer, tokenizer, out_dir / MODEL, loading=loading)

    steps_here = trainer.state.global_step - (_ckpt_step(resume) if resume else 0)
    metrics = {
        "train_loss": train_points[-1][2] if train_points else None,
        "train_loss_mean": float(out.training_loss),
        "eval": evals_out,
        "steps": trainer.state.global_step,
        "epochs": cfg.epochs,
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "steps_per_second": steps_here / train_seconds if train_seconds > 0 else None,
        "supervised_tokens": collator.supervised,
        "supervised_tokens_per_second": collator.supervised / train_seconds if train_seconds > 0 else None,
        "padding_share": collator.pad_tokens / collator.tokens if collator.tokens else 0.0,
        "padding_share_batch_mean": sum(collator.shares) / len(collator.shares) if collator.shares else 0.0,
        "padding_share_batch_max": max(collator.shares, default=0.0),
        "batches": collator.batches,
        "resumed_from": _ckpt_step(resume) if resume else None,
        "encode": enc_stats,
        "config": dataclasses.asdict(cfg),
    }
    if main:
        # beside the model (out_dir holds only declared outputs), without the run-dependent timings
        _write_json(out_dir / MODEL / METRICS, {k: v for k, v in metrics.items() if k not in TIMING_KEYS})
        if not keep_checkpoints:
            for p in ckpt_dir.glob("checkpoint-*"):
                shutil.rmtree(p, ignore_errors=True)
    _wait(trainer)
    return metrics


def _wait(trainer: Any) -> None:
    """A barrier between processes (a no-op in one)."""
    if trainer.accelerator.num_processes > 1:
        trainer.accelerator.wait_for_everyone()


def _ckpt_step(path: Path) -> int:
    return int(Path(path).name.rsplit("-", 1)[1])


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _save_model(trainer: Any, tokenizer: Any, dest: Path, *, loading: Loading | None = None) -> None:
    """save_pretrained (safetensors), the tokenizer and ``loading``'s record (``LOADING.json``) into a temporary
    folder, then rename over ``dest``.

    Not the Trainer's ``trainer_state.json``: its log history holds run times, and ``dest`` is a DVC output
    whose hash must depend on the inputs alone (the module docstring, "Outputs")."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp), safe_serialization=True) if _takes_safe(
        trainer.model
    ) else trainer.model.save_pretrained(str(tmp))
    _sort_adapter_sets(trainer.model, tmp)
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(tmp))
    if loading is not None:
        _write_json(tmp / LOADING_FILE, loading.record())
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _sort_adapter_sets(model: Any, folder: Path) -> None:
    """Sort the lists that peft's ``adapter_config.json`` holds for set-valued settings (``target_modules``,
    ``modules_to_save``, ...).

    peft writes such a set as a list in the set's iteration order, which follows Python's per-process string
    hash seed, so the same run twice gave two different files (and DVC two different model hashes). The order
    means nothing to peft. The file keeps peft's own layout (``indent=2``, sorted keys)."""
    path = folder / "adapter_config.json"
    configs = getattr(model, "peft_config", None)
    if not path.is_file() or not isinstance(configs, Mapping):
        return
    keys = {k for c in configs.values() for k, v in vars(c).items() if isinstance(v, (set, frozenset))}
    cfg = json.loads(path.read_text())
    for k in keys:
        if isinstance(cfg.get(k), list):
            cfg[k] = sorted(cfg[k], key=str)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True))


def _takes_safe(model: Any) -> bool:
    import inspect

    try:
        return "safe_serialization" in inspect.signature(model.save_pretrained).parameters
    except (TypeError, ValueError):
        return False


def _write_live(
    live_dir: Path, train_points: list[tuple[int, float | None, float]], evals_out: Mapping[str, Any]
) -> None:
    """The curves in dvclive's layout: ``plots/metrics/train/loss.tsv``, ``plots/metrics/eval/<name>/loss.tsv``
    (``step<TAB>loss``) and ``metrics.json`` (the last values, nested by metric path).

    Written directly rather than through ``dvclive.Live``: the curves come from the Trainer's log history after
    training (so a resumed run's curves are whole), and ``Live`` also initialises a DVC experiment, which fails
    in a Git repository without commits and is not wanted inside ``dvc repro``. The files are what DVC's
    ``plots`` read (x: step).
    """
    series: dict[str, list[tuple[int, float]]] = {"train/loss": [(step, loss) for step, _e, loss in train_points]}
    for name, ev in evals_out.items():
        pts = ([(0, ev["initial"])] if ev["initial"] is not None else []) + [
            (p["step"], p["loss"]) for p in ev["history"]
        ]
        series[f"eval/{name}/loss"] = pts
    if live_dir.exists():
        shutil.rmtree(live_dir)
    summary: dict[str, Any] = {}
    for metric, pts in series.items():
        path = live_dir / "plots" / "metrics" / f"{metric}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        leaf = metric.rsplit("/", 1)[-1]
        path.write_text(f"step\t{leaf}\n" + "".join(f"{step}\t{float(v)!r}\n" for step, v in pts))
        if pts:
            node = summary
            for part in metric.split("/")[:-1]:
                node = node.setdefault(part, {})
            node[leaf] = float(pts[-1][1])
    if train_points:
        summary["step"] = max(p[0] for p in train_points)
    _write_json(live_dir / "metrics.json", summary)
