"""A local Hugging Face causal LM as a teacher: its chat template, batched generation.

``teacher.model`` is a Hub id or a local directory; ``options``:

=================  ==========  ==============================================================
key                default     meaning
=================  ==========  ==============================================================
gguf_file          null        a GGUF file inside ``model`` (``from_pretrained(gguf_file=)``;
                               needs the ``gguf`` package; on CPU transformers dequantises it)
batch_size         8           chats per ``generate`` call
device             auto        ``auto`` (CUDA if available, else CPU) | ``cpu`` | ``cuda``
dtype              auto        ``auto`` (bf16 on CUDA, fp32 on CPU and for GGUF files) |
                               float32 | bfloat16 | float16
max_input_tokens   4096        longest prompt accepted, in tokens (see below)
=================  ==========  ==============================================================

Decisions, and why:

* **Lazy, single load.** Tokenizer and model are loaded on the first batch (loading
  is slow: ~20-30 s for the SmolLM2 GGUF on 2 cores), once, under a lock. A model or
  tokenizer that cannot be loaded, or a tokenizer without a chat template, is a
  :class:`ConfigError` naming ``annotate.teachers[<name>].model``: it stops the stage
  instead of turning every rating into ``failed``. On CUDA the model is placed with
  ``device_map="auto"`` (accelerate), so a teacher larger than one GPU is sharded.
* **Too-long prompts are refused, never cut.** Cutting a chat would silently change
  what is rated (the response being rated is the *last* turn; the rubric is the
  *first* message). A prompt longer than ``max_input_tokens`` (or than the model's
  context minus ``max_tokens``) becomes a :class:`BackendError` for that item only,
  naming the item and both lengths; the rest of the batch is generated. Fitting a
  conversation to a budget belongs to the prompt builder, which knows which turns
  may be dropped.
* **Control tokens in conversation text stay text.** The chat is tokenised by
  ``apply_chat_template(..., tokenize=True, sanitize_control_tokens=True)`` rather
  than rendered to a string and re-tokenised: a scraped conversation that contains
  ``</s>`` or ``<|im_end|>`` would otherwise inject real control tokens.
  ``tokenize=True`` also never adds a second BOS (the template writes it).
* **System role.** Templates that reject a system message (Mistral-Instruct v0.1
  style ``raise_exception``) are detected by trying: on the first failure with a
  system message present, the system text is folded into the first user message
  (``system + "\\n\\n" + user``) and, if that renders, folding is remembered for
  the rest of the run.
* **Batching.** Left padding (``padding_side = "left"``; the EOS/UNK token as pad if
  the tokenizer has none), one ``generate`` per ``batch_size`` chats in the order
  given, only the new tokens decoded (special tokens skipped, whitespace stripped).
  An exception inside ``generate`` turns that batch's items into BackendErrors with
  the cause; other batches of the call are unaffected.
* **Sampling.** ``max_tokens`` → ``max_new_tokens`` (default 256). ``temperature``
  0 or absent → greedy (``do_sample=False``). Otherwise ``do_sample=True`` with
  ``temperature``, ``top_p`` (default 1.0) and top-k *off* (transformers would
  default to 50; the API backends apply no top-k). Other generation settings in
  the model's ``generation_config.json`` (e.g. ``repetition_penalty``) are kept, as
  vLLM does by default.
* **Determinism.** Greedy decoding has no randomness: the same prompt on the same
  device/dtype gives the same reply. transformers' ``generate`` takes no
  ``torch.Generator``, so for sampling each ``generate`` call runs inside
  ``torch.random.fork_rng`` after ``torch.manual_seed(sampling.seed or 0)``: every
  batch starts from the same RNG state, so a batch's replies depend only on the
  seed and on the batch's contents and order (not on what ran before), and the
  caller's global RNG is left untouched. Across batch sizes a sampled reply can
  change (the batch shares one random stream). On CUDA, kernels may differ between
  GPU models and library versions. Padding can change greedy results at near-ties
  (the padded rows see different matmul shapes). Measured for SmolLM2-135M: fp32 on
  CPU, batch 3 = three batches of 1 (a test); on an H200, bf16 and fp32, batch 8 =
  eight batches of 1, and repeated sampled batches were identical.
* **GGUF on CUDA.** transformers 5.24 keeps GGUF weights packed where a kernel is
  available and computes in fp32; asked for bf16 it warns that every matmul casts.
  So ``dtype: auto`` means fp32 for a ``gguf_file``.
* **Cache identity.** :meth:`identity` adds ``gguf_file`` (which weights) and the
  resolved ``dtype`` (bf16 and fp32 answer differently) to the base identity.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import threading
import time
from typing import Any

from ...errors import ConfigError
from ..base import BackendError, BatchBackend, Request, TeacherConfig, fold_system

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_MAX_NEW_TOKENS = 256
OPTIONS: dict[str, Any] = {
    "gguf_file": None,
    "batch_size": 8,
    "device": "auto",
    "dtype": "auto",
    "max_input_tokens": 4096,
}


def _int_option(options: dict[str, Any], key: str, prefix: str, minimum: int = 1) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{prefix}.{key}", f"must be an integer >= {minimum}, got {value!r}")
    return value


class TransformersBackend(BatchBackend):
    """A local causal LM through transformers: chat template, left-padded batched ``generate``."""

    kind = "transformers"

    def __init__(self, teacher: TeacherConfig):
        super().__init__(teacher)
        prefix = teacher.check_option_keys(OPTIONS)
        opts = {**OPTIONS, **teacher.options}
        gguf = opts["gguf_file"]
        if gguf is not None and (not isinstance(gguf, str) or not gguf):
            raise ConfigError(f"{prefix}.gguf_file", f"must be a file name or null, got {gguf!r}")
        self.gguf_file: str | None = gguf
        self.batch_size = _int_option(opts, "batch_size", prefix)
        self.max_input_tokens = _int_option(opts, "max_input_tokens", prefix)
        if opts["device"] not in DEVICES:
            raise ConfigError(f"{prefix}.device", f"must be one of {', '.join(DEVICES)}, got {opts['device']!r}")
        if opts["dtype"] not in DTYPES:
            raise ConfigError(f"{prefix}.dtype", f"must be one of {', '.join(DTYPES)}, got {opts['dtype']!r}")
        self.device_option: str = opts["device"]
        self.dtype_option: str = opts["dtype"]

        sprefix = f"annotate.teachers[{teacher.name}].sampling"
        s = teacher.sampling
        self.max_new_tokens = int(s.get("max_tokens", DEFAULT_MAX_NEW_TOKENS))
        if self.max_new_tokens < 1:
            raise ConfigError(f"{sprefix}.max_tokens", f"must be >= 1, got {self.max_new_tokens}")
        self.temperature = float(s.get("temperature", 0.0))
        if self.temperature < 0:
            raise ConfigError(f"{sprefix}.temperature", f"must be >= 0, got {self.temperature}")
        self.top_p = float(s.get("top_p", 1.0))
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"{sprefix}.top_p", f"must be in (0, 1], got {self.top_p}")
        self.seed = int(s.get("seed", 0))
        self.do_sample = self.temperature > 0

        self.concurrency = 1  # one model, one generate at a time
        self._lock = threading.RLock()
        self._resolved: tuple[str, str] | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._generation_config: Any = None
        self._context_limit: int | None = None
        self._limit = self.max_input_tokens
        self._fold_system = False
        self._sanitize = True
        # counters for the stage's metrics file, and the wall-clock seconds, which change from run to run and go
        # to timings/annotate/<dataset>.json instead (explainft.timings)
        self.stats: dict[str, int] = {
            "batches": 0,
            "prompts": 0,
            "prompt_tokens": 0,
            "new_tokens": 0,
            "too_long": 0,
            "failed_batches": 0,
        }
        self.timings: dict[str, float] = {"load_s": 0.0, "generate_s": 0.0}

    # ----------------------------------------------------------------- identity and resolution

    def _resolve(self) -> tuple[str, str]:
        """(device, dtype name) after resolving ``auto``; a ``cuda`` request without CUDA is a ConfigError."""
        if self._resolved is None:
            import torch

            cuda = torch.cuda.is_available()
            device = self.device_option
            if device == "auto":
                device = "cuda" if cuda else "cpu"
            elif device == "cuda" and not cuda:
                raise ConfigError(
                    f"annotate.teachers[{self.teacher.name}].options.device",
                    "cuda requested but torch sees no CUDA device; use auto or cpu",
                )
            dtype = self.dtype_option
            if dtype == "auto":  # GGUF: fp32 (transformers' packed GGUF kernels compute in fp32)
                dtype = "bfloat16" if device == "cuda" and not self.gguf_file else "float32"
            self._resolved = (device, dtype)
        return self._resolved

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        if self.gguf_file:
            ident["gguf_file"] = self.gguf_file
        ident["dtype"] = self._resolve()[1]
        return ident

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Load tokenizer and model (once; later calls return at once)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device, dtype_name = self._resolve()
            key = f"annotate.teachers[{self.teacher.name}].model"
            kw: dict[str, Any] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
            t0 = time.perf_counter()
            try:
                tok = AutoTokenizer.from_pretrained(self.teacher.model, **kw)
                placement = {"device_map": "auto"} if device == "cuda" else {}
                model = AutoModelForCausalLM.from_pretrained(
                    self.teacher.model, dtype=getattr(torch, dtype_name), **placement, **kw
                )
            except (OSError, ValueError, ImportError) as e:
                what = f"{self.teacher.model!r}" + (f" (gguf_file {self.gguf_file!r})" if self.gguf_file else "")
                raise ConfigError(key, f"cannot load {what}: {type(e).__name__}: {e}") from e
            if not getattr(tok, "chat_template", None):
                raise ConfigError(
                    key, f"the tokenizer of {self.teacher.model!r} has no chat template; use an instruct/chat model"
                )
            tok.padding_side = "left"
            # transformers < 5.24 lacks the flag, and would pass it to the template silently
            self._sanitize = "sanitize_control_tokens" in inspect.signature(tok.apply_chat_template).parameters
            if not self._sanitize:
                log.warning(
                    "teacher %s: this transformers version cannot keep control tokens in conversation "
                    "text as text (apply_chat_template has no sanitize_control_tokens); upgrade to "
                    "transformers>=5.24",
                    self.teacher.name,
                )
            if tok.pad_token is None:
                fallback = tok.eos_token or tok.unk_token
                if fallback is None:
                    raise ConfigError(key, "the tokenizer has no pad, eos or unk token to pad batches with")
                tok.pad_token = fallback
            model.eval()

            gc = self._build_generation_config(model, tok)

            limit = self.max_input_tokens
            ctx = getattr(model.config, "max_position_embeddings", None)
            if isinstance(ctx, int) and ctx > 0:
                limit = min(limit, ctx - self.max_new_tokens)
                if limit < 1:
                    raise ConfigError(
                        f"annotate.teachers[{self.teacher.name}].sampling.max_tokens",
                        f"max_tokens {self.max_new_tokens} leaves no room for a prompt in the "
                        f"model's context of {ctx} tokens",
                    )
            self._context_limit = ctx if isinstance(ctx, int) else None
            self._limit = limit
            self._tokenizer, self._generation_config, self._model = tok, gc, model
            self.timings["load_s"] = round(time.perf_counter() - t0, 3)
            log.info(
                "teacher %s: loaded %s on %s (%s) in %.1f s",
                self.teacher.name,
                self.teacher.model,
                device,
                dtype_name,
                self.timings["load_s"],
            )

    def _build_generation_config(self, model: Any, tok: Any) -> Any:
        """The model's generation config with this teacher's sampling (see the module docstring)."""
        gc = copy.deepcopy(model.generation_config)
        gc.max_new_tokens = self.max_new_tokens
        gc.max_length = None
        gc.num_beams = 1
        gc.num_return_sequences = 1
        gc.do_sample = self.do_sample
        if self.do_sample:
            gc.temperature, gc.top_p, gc.top_k = self.temperature, self.top_p, 0
        else:  # unset, so transformers does not warn about sampling flags with greedy decoding
            gc.temperature = gc.top_p = gc.top_k = None
        gc.pad_token_id = tok.pad_token_id
        if gc.eos_token_id is None:
            gc.eos_token_id = tok.eos_token_id
        return gc

    # ----------------------------------------------------------------- prompts

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        tok = self._tokenizer

        extra = {"sanitize_control_tokens": True} if self._sanitize else {}

        def render(msgs: list[dict[str, str]]) -> list[int]:
            return list(
                tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False, **extra)
            )

        has_system = any(m.get("role") == "system" for m in messages)
        if self._fold_system and has_system:
            return render(fold_system(messages))
        try:
            return render(messages)
        except Exception as first:  # the template's raise_exception: a jinja2 TemplateError, or ValueError
            if not has_system:
                raise
            try:
                ids = render(fold_system(messages))
            except Exception:
                raise first from None
            self._fold_system = True
            log.info(
                "teacher %s: the chat template rejects the system role (%s); folding it into the first user message",
                self.teacher.name,
                first,
            )
            return ids

    def _name(self, request: Request | None, index: int) -> str:
        return f"item {request.item_id!r}" if request is not None else f"chat #{index}"

    # ----------------------------------------------------------------- generation

    def complete_batch(self, batch: list[tuple[list[dict[str, str]], Request | None]]) -> list[str | BackendError]:
        if not batch:
            return []
        self.load()
        out: list[str | BackendError | None] = [None] * len(batch)
        with self._lock:
            encoded: list[tuple[int, list[int]]] = []
            for i, (messages, request) in enumerate(batch):
                who = self._name(request, i)
                try:
                    ids = self._encode(messages)
                except Exception as e:
                    out[i] = BackendError(
                        f"teacher {self.teacher.name} ({self.teacher.model}): {who}: the chat "
                        f"template failed: {type(e).__name__}: {e}"
                    )
                    continue
                if len(ids) > self._limit:
                    self.stats["too_long"] += 1
                    why, fix = f"max_input_tokens {self.max_input_tokens}", "raise options.max_input_tokens"
                    if self._context_limit is not None and self._limit < self.max_input_tokens:
                        why = f"the model's context {self._context_limit} minus max_tokens {self.max_new_tokens}"
                        fix = "lower sampling.max_tokens"
                    out[i] = BackendError(
                        f"teacher {self.teacher.name} ({self.teacher.model}): {who}: the prompt is {len(ids)} "
                        f"tokens, over the limit of {self._limit} ({why}); it is not truncated: shorten the "
                        f"conversation in the prompt or {fix}"
                    )
                    continue
                encoded.append((i, ids))
            for start in range(0, len(encoded), self.batch_size):
                chunk = encoded[start : start + self.batch_size]
                try:
                    replies = self._generate([ids for _, ids in chunk])
                except Exception as e:
                    self.stats["failed_batches"] += 1
                    who = ", ".join(self._name(batch[i][1], i) for i, _ in chunk)
                    err = (
                        f"teacher {self.teacher.name} ({self.teacher.model}): generation failed for a batch "
                        f"of {len(chunk)} ({who}): {type(e).__name__}: {e}"
                    )
                    for i, _ in chunk:
                        out[i] = BackendError(err)
                        out[i].__cause__ = e
                    log.warning("%s", err)
                    continue
                for (i, _), reply in zip(chunk, replies):
                    out[i] = reply
        return out  # type: ignore[return-value]  # every slot is filled above

    def _generate(self, prompts: list[list[int]]) -> list[str]:
        import torch

        tok, model = self._tokenizer, self._model
        enc = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        device = model.device
        input_ids = enc["input_ids"].to(device)
        attention = enc["attention_mask"].to(device)
        t0 = time.perf_counter()
        with torch.inference_mode(), self._rng():
            generated = model.generate(
                input_ids=input_ids, attention_mask=attention, generation_config=self._generation_config
            )
        new = generated[:, input_ids.shape[1] :]
        self.timings["generate_s"] += time.perf_counter() - t0
        self.stats["batches"] += 1
        self.stats["prompts"] += len(prompts)
        self.stats["prompt_tokens"] += sum(len(p) for p in prompts)
        self.stats["new_tokens"] += int(self._count_new(new))
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def _count_new(self, new: Any) -> int:
        """Generated tokens up to and including each row's first EOS (the rest is padding)."""
        import torch

        eos = self._generation_config.eos_token_id
        eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=new.device)
        is_eos = torch.isin(new, eos_ids)
        lengths = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, new.shape[1])
        return int(lengths.sum())

    def _rng(self) -> contextlib.AbstractContextManager:
        """For sampling: a private RNG state seeded from ``sampling.seed`` (the global one is restored)."""
        if not self.do_sample:
            return contextlib.nullcontext()
        import torch

        @contextlib.contextmanager
        def seeded():
            devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                yield

        return seeded()

    async def aclose(self) -> None:
        with self._lock:
            if self._model is None:
                return
            self._model = self._tokenizer = self._generation_config = None
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:  # pragma: no cover - best effort
                pass
