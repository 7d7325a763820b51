"""How a student's base is loaded, for training and for measuring (explainft.students.resolve_loading, LOADING.json,
explainft.scoring.load_rater): the model measured is the model trained; errors keep their type; revisions pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from explainft.config import train_config  # noqa: E402
from explainft.errors import ConfigError  # noqa: E402
from explainft.records import Example, Turn  # noqa: E402
from explainft.scoring import RaterNotFound, ScoringError, load_rater, score_examples  # noqa: E402
from explainft.students import (  # noqa: E402
    LOADING_FILE,
    Loading,
    build_tiny,
    content_revision,
    hub_commit,
    load_student,
    read_loading,
    resolve_loading,
    student_revision,
)
from explainft.train import finetune  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"
SMALL = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, max_positions=512, vocab_size=400, seed=0)
GOOD = ("Paris is in France, on the Seine.", 5, "It answers the question directly.")
BAD = ("I like turtles and green soup.", 1, "It ignores the question.")


def example(i: int) -> Example:
    response, label, expl = GOOD if i % 2 == 0 else BAD
    return Example(
        id=f"d/{i}",
        dataset="d",
        dimension="on_topic",
        turns=(Turn("user", f"Where is Paris? (#{i})"), Turn("assistant", response)),
        score=(label - 1) / 4,
        label=label,
        assessment=expl,
        confidence="sure",
    ).with_target("assessment", expl)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    """A tiny student (digits split, so the five scores read alike) whose widths NF4 can quantise (blocks of 64)."""
    from explainft.targets import student_prompt

    texts = [student_prompt(example(i)) + f" {example(i).label}\n{example(i).explanation}" for i in range(8)] * 5
    return build_tiny(texts, tmp_path_factory.mktemp("loading") / "student", **SMALL)


def mocked_cuda(monkeypatch, capability: tuple[int, int]) -> None:
    """A CUDA machine as torch reports it (availability and compute capability), for the decisions only."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def flat(scored) -> list[float]:
    return [p for s in scored for p in s.probs]


# --------------------------------------------------------------------------- defect 1: trained on NF4, measured on NF4


def test_a_qlora_adapter_is_measured_on_the_nf4_base_it_was_trained_on(student, tmp_path):
    import bitsandbytes as bnb
    from peft import PeftModel

    loading = resolve_loading(quantization="nf4", method="lora", device="cpu", student="tiny")
    torch.manual_seed(0)
    model, tok = load_student(
        str(student),
        quantization=loading.quantization,
        method=loading.method,
        device=loading.device,
        dtype=loading.compute_dtype,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    train = [example(i) for i in range(8)]
    items = [example(i) for i in range(20, 26)]
    cfg = train_config(dict(epochs=1, learning_rate=5e-3, batch_size=4, logging_steps=1, save_total_limit=None))
    trained = []

    class ScoreAtTheEnd(transformers.TrainerCallback):
        """The trained model's scores after its last step, before anything is saved (on the CPU, bitsandbytes
        re-packs a 4-bit weight's block scales when the model is serialised, which moves its scores by ~1e-4)."""

        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == state.max_steps:
                trained.extend(score_examples(model, tok, items, max_length=512))

    finetune(
        model,
        tok,
        train,
        {},
        tmp_path / "run",
        cfg,
        loading=loading,
        keep_checkpoints=False,
        callbacks=[ScoreAtTheEnd()],
    )
    model_dir = tmp_path / "run" / "model"
    assert len(trained) == len(items)

    record = json.loads((model_dir / LOADING_FILE).read_text())
    assert record == {
        "method": "lora",
        "quantization": "nf4",
        "compute_dtype": "float32",
        "student": "tiny",
        "revision": None,
    }
    assert read_loading(model_dir) == record

    rater, rtok = load_rater(model_dir, base=str(student))
    q = rater.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(q.base_layer, bnb.nn.Linear4bit)  # before the fix: a float32 nn.Linear
    qs = q.base_layer.weight.quant_state
    assert qs.quant_type == "nf4" and qs.nested and qs.dtype == torch.float32
    measured = score_examples(rater, rtok, items, max_length=512)
    assert flat(measured) == pytest.approx(flat(trained), abs=1e-6)

    # the same adapter on a float32 base (what load_rater did before LOADING.json) scores differently
    base = transformers.AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
    fp32 = PeftModel.from_pretrained(base, str(model_dir)).eval()
    other = score_examples(fp32, rtok, items, max_length=512)
    assert max(abs(a - b) for a, b in zip(flat(other), flat(trained))) > 1e-3

    # an explicit request that contradicts the record is an error, naming the file and both values
    with pytest.raises(ScoringError, match=r"LOADING.json: the model was trained with quantization 'nf4'.*'none'"):
        load_rater(model_dir, base=str(student), quantization="none")
    with pytest.raises(ScoringError, match=r"compute_dtype 'float32'.*'bfloat16'"):
        load_rater(model_dir, base=str(student), dtype="bfloat16")
    with pytest.raises(ScoringError, match=r"revision None.*'" + SHA):
        load_rater(model_dir, base=str(student), revision=SHA)
    load_rater(model_dir, base=str(student), quantization="nf4", dtype="float32")  # agreeing requests are fine


def test_a_bad_loading_record_names_the_file(tmp_path):
    (tmp_path / LOADING_FILE).write_text(json.dumps({"method": "lora", "quantization": "auto"}))
    with pytest.raises(ValueError, match=r"LOADING.json: expected the keys method, quantization"):
        read_loading(tmp_path)
    rec = {"method": "lora", "quantization": "int8", "compute_dtype": "float32", "student": "tiny", "revision": None}
    (tmp_path / LOADING_FILE).write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"LOADING.json: quantization 'int8' is not one of nf4, none"):
        read_loading(tmp_path)
    assert read_loading(tmp_path / "nowhere") is None


def test_the_untuned_baseline_resolves_quantization_as_training_does(student):
    import bitsandbytes as bnb

    # train.quantization: nf4 with LoRA: the untuned student is the NF4 base the fine-tunes start from
    model, _ = load_rater(student, quantization="nf4", method="lora")
    assert isinstance(model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    # auto on a CPU resolves to none, as load_student resolves it; so does a student folder with no request
    for kw in ({"quantization": "auto", "method": "lora"}, {}):
        model, _ = load_rater(student, **kw)
        q = model.model.layers[0].self_attn.q_proj
        assert type(q) is torch.nn.Linear and q.weight.dtype == torch.float32


# --------------------------------------------------------------------------- defect 2: the compute dtype


@pytest.mark.parametrize(
    "capability, dtype, autocast",
    [((8, 0), "bfloat16", torch.bfloat16), ((9, 0), "bfloat16", torch.bfloat16), ((7, 0), "float16", torch.float16)],
)
def test_loading_kwargs_on_a_gpu_follow_its_compute_dtype(monkeypatch, capability, dtype, autocast):
    mocked_cuda(monkeypatch, capability)
    full = resolve_loading(quantization="auto", method="full", device="auto")
    assert (full.quantization, full.compute_dtype, full.device) == ("none", dtype, "cuda:0")
    assert full.model_kwargs("m", training=True) == {"dtype": torch.float32}  # the fp32 master copy
    assert full.model_kwargs("m", training=False) == {"dtype": autocast}  # measured in the dtype it computed in

    lora = resolve_loading(quantization="none", method="lora", device="cuda")
    assert lora.model_kwargs("m", training=True) == {"dtype": autocast}  # the frozen base

    qlora = resolve_loading(quantization="auto", method="lora", device="cuda")
    kw = qlora.model_kwargs("m", training=True)
    q = kw.pop("quantization_config")
    assert qlora.quantization == "nf4" and kw == {"dtype": autocast, "device_map": {"": "cuda:0"}}
    assert (q.load_in_4bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant) == (True, "nf4", True)
    assert q.bnb_4bit_compute_dtype == autocast  # fp16 on a V100/T4, not a fixed bf16
    assert qlora.record() == {
        "method": "lora",
        "quantization": "nf4",
        "compute_dtype": dtype,
        "student": None,
        "revision": None,
    }


def test_full_fine_tuning_keeps_float32_weights_whatever_the_compute_dtype(student):
    model, _ = load_student(str(student), quantization="none", method="full", dtype="bfloat16", device="cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert all(p.requires_grad for p in model.parameters())


def test_lora_keeps_the_base_in_the_compute_dtype_and_the_adapter_in_float32(student):
    model, _ = load_student(str(student), quantization="none", method="lora", dtype="bfloat16", device="cpu")
    q = model.get_base_model().model.layers[0].self_attn.q_proj
    assert q.base_layer.weight.dtype == torch.bfloat16 and not q.base_layer.weight.requires_grad
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and {p.dtype for p in lora.values()} == {torch.float32}  # peft's autocast_adapter_dtype
    assert all(p.requires_grad for p in lora.values())


# --------------------------------------------------------------------------- defect 3: errors keep their type


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError("CUDA error: an illegal memory access was encountered"),
        MemoryError(),
    ],
)
def test_out_of_memory_and_runtime_errors_are_not_relabelled(student, monkeypatch, error):
    def fail(*a, **k):
        raise error

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fail)
    with pytest.raises(type(error)) as ei:
        load_student(str(student), quantization="none", method="full")
    assert type(ei.value) is type(error)
    with pytest.raises(type(error)) as ei:
        load_rater(student)
    assert type(ei.value) is type(error)


def test_a_missing_or_unreadable_model_is_still_a_clear_error(student, monkeypatch):
    def fail(*a, **k):
        raise OSError("model.safetensors: no such file")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fail)
    with pytest.raises(ConfigError) as ei:
        load_student(str(student), quantization="none", method="full")
    assert ei.value.key == "train.student" and "OSError: model.safetensors: no such file" in str(ei.value)
    with pytest.raises(RaterNotFound, match="OSError: model.safetensors: no such file"):
        load_rater(student)


# --------------------------------------------------------------------------- defect 4: one device resolution


def test_no_loader_chooses_a_device_by_itself():
    src = Path(__file__).resolve().parents[1] / "src" / "explainft"
    for name in ("students.py", "scoring.py", "train.py", "analysis/logit_lens.py", "stages/finetune.py"):
        text = (src / name).read_text()
        assert "cuda.is_available()" not in text and "is_bf16_supported" not in text, name


# --------------------------------------------------------------------------- defect 5: the student's revision


def test_the_hub_revision_reaches_from_pretrained_for_model_and_tokenizer(monkeypatch):
    calls = []

    def record(kind):
        def fake(src, *a, **k):
            calls.append((kind, src, k.get("revision")))
            raise OSError("stop here")

        return fake

    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", lambda s, *a, **k: calls.append(("tok", s, k.get("revision")))
    )
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", record("model"))
    with pytest.raises(ConfigError, match=f"'owner/model' at revision {SHA}"):
        load_student("owner/model", quantization="none", method="full", revision=SHA, device="cpu")
    assert calls == [("tok", "owner/model", SHA), ("model", "owner/model", SHA)]


def test_an_adapter_s_hub_base_is_loaded_at_the_recorded_revision(tmp_path, monkeypatch):
    adapter = tmp_path / "model"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "owner/model"}))
    rec = Loading("lora", "none", "float32", "cpu", student="owner/model", revision=SHA).record()
    (adapter / LOADING_FILE).write_text(json.dumps(rec))
    seen = {}

    def fake_tok(src, *a, **k):
        seen["tok"] = (src, k.get("revision"))

    def fake_model(src, *a, **k):
        seen["model"] = (src, k.get("revision"), k.get("dtype"))
        raise OSError("stop here")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_tok)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    with pytest.raises(RaterNotFound):
        load_rater(adapter, device="cpu")
    assert seen == {"tok": ("owner/model", SHA), "model": ("owner/model", SHA, torch.float32)}


def test_a_folder_s_content_revision_follows_its_weights(student, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(student, copy)
    rev = content_revision(copy)
    assert rev.startswith("sha256:") and len(rev) == len("sha256:") + 64 and rev == content_revision(student)
    (copy / "README.md").write_text("not part of the model")
    assert content_revision(copy) == rev
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert content_revision(copy) != rev
    # a content revision is recorded, never passed to from_pretrained (a folder has no revisions)
    assert Loading("full", "none", "float32", "cpu", revision=rev).model_kwargs(str(copy), training=False) == {
        "dtype": torch.float32
    }


def test_hub_commit_asks_the_hub_and_names_the_id_when_it_cannot(monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    httpx = __import__(HfHubHTTPError.__mro__[1].__module__)  # the Hub client's HTTP library (httpx or a fork)

    asked = []

    class Info:
        sha = SHA

    def model_info(self, repo_id, revision=None, **k):
        asked.append((repo_id, revision))
        if repo_id == "owner/missing":
            url = f"https://huggingface.co/api/models/{repo_id}/revision/{revision}"
            response = httpx.Response(404, request=httpx.Request("GET", url))
            raise RepositoryNotFoundError("404 Client Error: Repository Not Found", response=response)
        return Info()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "model_info", model_info)
    assert hub_commit("owner/model") == SHA and hub_commit("owner/model", "v1.0") == SHA
    assert asked == [("owner/model", "main"), ("owner/model", "v1.0")]
    with pytest.raises(ConfigError) as ei:
        hub_commit("owner/missing")
    assert ei.value.key == "train.student" and "'owner/missing'" in str(ei.value)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_commit("owner/model", SHA) == SHA  # a full sha pins a commit already: no question to ask
    with pytest.raises(ConfigError) as ei:
        hub_commit("owner/model", "v1.0")
    assert ei.value.key == "train.student_revision" and "HF_HUB_OFFLINE=1" in str(ei.value)
    assert len(asked) == 3


def test_student_revision_reads_the_marker(tmp_path):
    assert student_revision(tmp_path) is None
    marker = tmp_path / "models" / "student" / "STUDENT.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"student": "tiny"}))
    assert student_revision(tmp_path) is None
    marker.write_text(json.dumps({"student": "owner/model", "source": "owner/model", "revision": SHA}))
    assert student_revision(tmp_path) == SHA
