#!/usr/bin/env python3
"""GPU smoke test: the student's GPU path on a tiny in-memory Mistral, offline, in well under five minutes.

Needs only torch, transformers, peft and accelerate; bitsandbytes only for the NF4 row, when it imports. It
does not import explainft: each check re-implements the few project lines it checks (the comment names the
function mirrored). Prints one table (check | result | seconds | detail); exits 1 when a check failed.

    python scripts/gpu_smoke.py                # CUDA when available: bf16 compute (fp16 without bf16 support)
    python scripts/gpu_smoke.py --device cpu   # fp32 compute (tests/test_gpu_smoke.py runs this; --dtype to change)
"""

import argparse
import importlib.metadata as md
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

for _k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_k] = "1"  # no network: nothing here needs the hub (read when transformers is imported, below)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUALITY = ("awful", "poor", "okay", "good", "great")  # the bot's word that decides the score, 1..5
WORDS = "hello there can you help me with my order the item arrived late sure let me check it thanks a lot".split()
SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
BOS, EOS, PAD, IGNORE = 1, 2, 3, -100
INIT = 0.1  # initializer_range: large enough for LoRA alone to move the random model's logits in a few steps
BUDGET_S = 300  # the run from the transformers import on; over it the run fails
CHECKS = ("build", "lora", "score_loss", "one_pass", "logit_lens", "qlora_nf4", "accelerate")


def tokenizer():
    """A word-level tokenizer built in-process (tokenizers); digits split into single tokens, as in the students."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted(set(WORDS) | set(QUALITY) | set("rate this conversation user bot Score : .".split()))
    vocab = SPECIAL + list("0123456789") + words
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    return tok


def examples(tok, n, seed):
    """(prompt ids up to the score position, score token id) for 'rate this conversation ... Score: k'."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 5)
        user, bot = (" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(2))
        text = f"rate this conversation : user : {user} . bot : {QUALITY[k - 1]} {bot} . Score :"
        out.append(([BOS] + tok.encode(text).ids, tok.token_to_id(str(k))))
    return out


def batch(rows, device, target="score+eos"):
    """Right-padded batch as the project's collator; labels -100 but on the target ('score+eos', 'score', '')."""
    seqs = [p + {"score+eos": [s, EOS], "score": [s], "": []}[target] for p, s in rows]
    ids = torch.full((len(seqs), max(map(len, seqs))), PAD)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, IGNORE)
    for i, (seq, (p, _)) in enumerate(zip(seqs, rows)):
        ids[i, : len(seq)], mask[i, : len(seq)] = torch.tensor(seq), 1
        labels[i, len(p) : len(seq)] = ids[i, len(p) : len(seq)]
    b = {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
    return b if target else {k: b[k] for k in ("input_ids", "attention_mask")}


def build(tok, dtype, device, layers=3):
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, sliding_window=None,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False, initializer_range=INIT,
    )  # fmt: skip
    torch.manual_seed(0)
    return MistralForCausalLM(cfg).to(device=device, dtype=dtype)


def head(model):
    return getattr(model, "module", model).get_output_embeddings()


def selected_loss(model, b):
    """Mean CE of the supervised tokens, LM head on those positions only (explainft.train.selected_token_loss)."""
    out = model(
        input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True,
        logits_to_keep=1, use_cache=False,
    )  # fmt: skip
    target = b["labels"][:, 1:]
    mask = target != IGNORE
    return F.cross_entropy(head(model)(out.hidden_states[-1][:, :-1][mask]).float(), target[mask])


def close(a, b, dtype):
    """Logit rows agree: fp32 to 1e-3 of their scale, half precision to 3e-2 (explainft.scoring._close)."""
    rel = 1e-3 if dtype == torch.float32 else 3e-2
    scale = max(1.0, float(b.float().abs().max()))
    diff = float((a.float() - b.float()).abs().max())
    return bool(torch.isfinite(a).all()) and diff <= rel * scale, diff, rel * scale


def lora(model, r=8):
    from peft import LoraConfig, get_peft_model

    proj = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=proj))


def train(model, data, steps, device, lr=5e-3, bs=16):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        loss = selected_loss(model, batch([data[(step * bs + i) % len(data)] for i in range(bs)], device))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    model.eval()
    k = max(1, min(3, steps // 2))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    ok = steps >= 2 and all(map(math.isfinite, losses)) and last < 0.9 * first
    return ok, f"loss {first:.3f} -> {last:.3f} over {steps} steps (first/last {k}; must fall by 10%)"


def check_score_loss(s):
    model, dtype = s["model"], s["dtype"]
    b = batch(s["eval"], s["device"], target="score")  # labels -100 everywhere but the score token
    with torch.no_grad():
        ours = float(selected_loss(model, b)) * (1.05 if s["perturb"] == "score_loss" else 1.0)
        ref = float(model(**b, use_cache=False).loss)
    d, scale = abs(ours - ref), max(1.0, abs(ref))
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    met = "met" if d <= 1e-4 * scale else "NOT met: the project's training would fall back to the model's loss"
    ok = math.isfinite(ref) and d <= tol * scale
    return ok, f"score-position CE {ours:.5f} vs model loss {ref:.5f}, |diff| {d:.1e} (tol {tol:.0e}); rtol 1e-4 {met}"


def check_one_pass(s):
    # mirrors explainft.scoring._batch_logits: rows longest first, right-padded, LM head on the last real hidden state
    model, dev, dtype, ids = s["model"], s["device"], s["dtype"], s["score_ids"]
    rows = sorted(s["eval"][:8], key=lambda r: -len(r[0]))
    b, last = batch(rows, dev, target=""), torch.tensor([len(p) - 1 for p, _ in rows], device=dev)
    bad, n_score, worst = [], 0, 0.0
    with torch.no_grad():
        out = model(**b, output_hidden_states=True, logits_to_keep=1, use_cache=False)  # (no labels: target "")
        batched = head(model)(out.hidden_states[-1][torch.arange(len(rows), device=dev), last]).float()
        for i, (p, _) in enumerate(rows):
            x = torch.tensor([p], device=dev)
            single = model(input_ids=x, use_cache=False).logits[0, -1].float()
            gen = model.generate(
                input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=1, do_sample=False,
                pad_token_id=PAD, eos_token_id=EOS,
            )[0, -1].item()  # fmt: skip
            agree, diff, tol = close(batched[i], single, dtype)
            worst, five = max(worst, diff), batched[i, ids]
            # generate's token is the one-pass argmax (a different one only within tolerance of a tie), and when it
            # is a score token, the argmax of the five score logits read from the padded batch
            n_score += gen in ids
            if not agree or float(single.max() - single[gen]) > tol:
                bad.append(i)
            elif gen in ids and ids[int(five.argmax())] != gen and float(five.max() - batched[i, gen]) > tol:
                bad.append(i)
    detail = (
        f"{len(rows) - len(bad)}/{len(rows)} rows agree ({n_score} score tokens); padded vs unpadded max {worst:.1e}"
    )
    return not bad, detail


def check_lens(s):
    # mirrors explainft.analysis.logit_lens.logit_lens: each block's output at the score position, read through
    # lm_head(final_norm(.)); the last block's must reproduce the model's own logits (logits_to_keep per row)
    model, dev, dtype = s["model"], s["device"], s["dtype"]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    rows = s["eval"][:8]
    b, last = batch(rows, dev, target=""), torch.tensor([len(p) - 1 for p, _ in rows], device=dev)
    rix, kept = torch.arange(len(rows), device=dev), {}

    def hook(i):
        def fn(module, args, output):
            kept[i] = (output[0] if isinstance(output, (tuple, list)) else output)[rix, last]

        return fn

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(base.model.layers)]
    try:
        with torch.no_grad():
            own = model(**b, logits_to_keep=last[:, None], use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    if tuple(own.shape[:2]) != (len(rows), 1) or len(kept) != len(base.model.layers):
        return False, f"logits {tuple(own.shape)} for per-row logits_to_keep; {len(kept)} blocks seen"
    with torch.no_grad():
        lens = [base.lm_head(base.model.norm(kept[i])).float() for i in range(len(kept))]
    if s["perturb"] == "lens":
        lens[-1] = lens[-1] * 1.25 + 0.5
    ok, diff, tol = close(lens[-1], own[:, 0], dtype)
    lp = [F.log_softmax(z.double(), -1) for z in lens]
    ent = [float(-(x.exp() * x).sum(-1).mean()) for x in lp]  # mean entropy (nats) after each block
    ok, ents = ok and all(map(math.isfinite, ent)), " ".join(f"{e:.2f}" for e in ent)
    return ok, f"last block vs own logits max {diff:.1e} (tol {tol:.1e}); entropies {ents}"


def check_qlora(s):
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure to import means no NF4 row
        return None, f"skipped: bitsandbytes not importable ({type(e).__name__})"
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, MistralForCausalLM

    qc = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=s["dtype"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        build(s["tok"], torch.float32, "cpu").save_pretrained(d)
        where = {"": torch.cuda.current_device() if s["device"] == "cuda" else "cpu"}
        m = MistralForCausalLM.from_pretrained(d, quantization_config=qc, dtype=s["dtype"], device_map=where)
    n4 = sum(type(x).__name__ == "Linear4bit" for x in m.modules())
    # non-reentrant checkpointing as explainft.students.load_student(gradient_checkpointing=True); on CUDA only, as
    # its first use imports torch._dynamo (about 20 s on two CPU cores)
    ckpt = s["device"] == "cuda"
    kw = {"use_gradient_checkpointing": ckpt, "gradient_checkpointing_kwargs": {"use_reentrant": False}}
    ok, detail = train(lora(prepare_model_for_kbit_training(m, **kw)), s["train"], s["steps"], s["device"])
    what = f"nf4, double quant, {str(s['dtype'])[6:]} compute, checkpointing {'on' if ckpt else 'off'}"
    return ok and n4 > 0, f"{n4} Linear4bit ({what}); {detail}"


def check_accelerate(s):
    mp = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[s["dtype"]]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1"]
    cmd += ["--dynamo_backend", "no", "--mixed_precision", mp] + (["--cpu"] if s["device"] == "cpu" else [])
    p = subprocess.run(
        cmd + [os.path.abspath(__file__), "_accelerate_step"], capture_output=True, text=True, timeout=240
    )
    line = [x for x in p.stdout.splitlines() if x.startswith("accelerate_step")]
    loss = float(line[-1].split("loss=")[1].split()[0]) if line else math.nan
    if p.returncode or not math.isfinite(loss):
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return False, f"exit {p.returncode}, loss {loss}: {tail}"
    return True, f"exit 0, mixed_precision {mp}; " + line[-1].split(" ", 1)[1]


def accelerate_step():
    """The sub-command `accelerate launch` runs: two training steps of the tiny model; prints the loss."""
    from accelerate import Accelerator

    acc = Accelerator()
    tok = tokenizer()
    model = build(tok, torch.float32, "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt = acc.prepare(model, opt)
    model.train()
    b = batch(examples(tok, 8, 1), acc.device)
    for _ in range(2):
        loss = model(**b, use_cache=False).loss
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
    print(f"accelerate_step loss={loss.item():.5f} device={acc.device} processes={acc.num_processes}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto", help="compute dtype")
    ap.add_argument("--steps", type=int, default=40, help="training steps of each fine-tune (default 40)")
    ap.add_argument("--only", default=",".join(CHECKS), help="comma-separated checks to run (default: all)")
    ap.add_argument("--perturb", choices=("lens", "score_loss"), help="break one check on purpose (tests)")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available (torch %s)" % torch.__version__)
    only = set(a.only.split(","))
    if only - set(CHECKS):
        ap.error(f"--only: unknown checks {sorted(only - set(CHECKS))}; known: {', '.join(CHECKS)}")
    t_all = time.perf_counter()
    import transformers  # imported here (and peft) so that no row's seconds include it
    from transformers import MistralForCausalLM  # noqa: F401 - (transformers imports its models lazily)

    if only & {"lora", "qlora_nf4"}:
        import peft  # noqa: F401

    transformers.logging.set_verbosity_error()
    t_import = time.perf_counter() - t_all
    cuda = a.device == "cuda"
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    dtype = dtype if a.dtype == "auto" else getattr(torch, a.dtype)
    s = {"device": a.device, "dtype": dtype, "steps": a.steps, "perturb": a.perturb, "tok": tokenizer()}
    s["train"], s["eval"] = examples(s["tok"], 256, 0), examples(s["tok"], 16, 1)
    s["score_ids"] = [s["tok"].token_to_id(str(k)) for k in range(1, 6)]

    def do_build(s):
        s["model"] = build(s["tok"], dtype, a.device)
        digits = s["tok"].encode("Score : 12345").ids[-5:] == s["score_ids"]  # one token per digit
        n = sum(p.numel() for p in s["model"].parameters()) / 1e3
        return digits, f"Mistral 3 blocks, h64, vocab {s['tok'].get_vocab_size()}, {n:.0f}k params; digits split"

    def do_lora(s):
        s["model"] = lora(s["model"])
        return train(s["model"], s["train"], a.steps, a.device)

    fns = dict(zip(CHECKS, (do_build, do_lora, check_score_loss, check_one_pass, check_lens, check_qlora)))
    fns["accelerate"] = check_accelerate
    rows = []
    for name in CHECKS:
        if name not in only and name != "build":
            rows.append((name, "skipped", 0.0, "skipped: not in --only"))
            continue
        t0 = time.perf_counter()
        try:
            ok, detail = fns[name](s)
            if cuda:
                torch.cuda.synchronize()  # (an asynchronous CUDA error surfaces here, in its own row)
        except Exception as e:  # noqa: BLE001 - a check that raises fails; the others still run
            ok, detail = False, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e) else ''}"
        rows.append((name, "skipped" if ok is None else "ok" if ok else "FAIL", time.perf_counter() - t0, detail))

    name = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    vers = []
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            vers.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            vers.append(f"{pkg} not installed")
    print(f"GPU smoke on {name}, {str(dtype)[6:]} compute; " + ", ".join(vers) + f"; imports {t_import:.1f} s")
    table = [("check", "result", "seconds", "detail")] + [(n, r, f"{t:.2f}", d) for n, r, t, d in rows]
    w = [max(len(r[i]) for r in table) for i in range(3)]
    for i, r in enumerate(table):
        print(" | ".join(x.ljust(w[j]) for j, x in enumerate(r[:3])) + " | " + r[3])
        if i == 0:
            print("-|-".join("-" * k for k in w) + "-|-" + "-" * 6)
    failed, total = [r[0] for r in rows if r[1] == "FAIL"], time.perf_counter() - t_all
    if total > BUDGET_S:
        failed.append(f"over the {BUDGET_S} s budget")
    peak = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB; " if cuda else ""
    print(f"total {total:.1f} s; {peak}" + (f"FAILED: {', '.join(failed)}" if failed else "all ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_accelerate_step"]:
        accelerate_step()
    else:
        sys.exit(main())
