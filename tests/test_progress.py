"""Progress of long runs (explainft.progress): plain lines, the tqdm bar, off, the training callback, scoring."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from explainft.progress import (
    BarProgress,
    PlainProgress,
    SilentProgress,
    choose_mode,
    format_duration,
    format_final,
    format_line,
    interval_from_env,
    progress,
)


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain(total, desc="annotate chatterbot", unit="ratings", *, interval=10.0, clock=None, **kw):
    out = io.StringIO()
    p = progress(total, desc, unit, stream=out, interval=interval, clock=clock or Clock(), env={}, **kw)
    return p, out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


# --------------------------------------------------------------------------- formatting


def test_formats():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3.6) == "0:00:04"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(90061) == "25:01:01"
    assert (
        format_line("annotate chatterbot", 1200, 4800, "ratings", 4.0)
        == "annotate chatterbot: 1200/4800 ratings (25%), 300.0 ratings/s, elapsed 0:00:04, eta 0:00:12"
    )
    assert format_line("x", 0, 10, "items", 0.0) == "x: 0/10 items (0%), elapsed 0:00:00, eta ?"
    # slow rates keep three significant digits; postfix floats four
    assert (
        format_line("train m", 3, 100, "steps", 8.0, postfix={"loss": 1.234567, "test_loss": 0.5})
        == "train m: 3/100 steps (3%), 0.375 steps/s, elapsed 0:00:08, eta 0:04:19, loss=1.235, test_loss=0.5"
    )
    # a resumed run: the rate and ETA count this run's steps only
    assert (
        format_line("train m", 60, 100, "steps", 10.0, initial=50)
        == "train m: 60/100 steps (60%), 1.0 steps/s, elapsed 0:00:10, eta 0:00:40"
    )
    assert (
        format_final("train m", 100, 100, "steps", 50.0, initial=50)
        == "train m: done, 100 steps (resumed at 50) in 0:00:50, 1.0 steps/s"
    )
    assert format_final("s", 0, 0, "items", 0.0) == "s: done, 0 items in 0:00:00"
    assert (
        format_final("s", 3, 8, "items", 2.0, stopped=True)
        == "s: stopped at 3/8 items (37%) after 0:00:02, 1.5 items/s"
    )


# --------------------------------------------------------------------------- plain lines


def test_plain_lines_respect_the_interval_and_end_with_a_final_line():
    clock = Clock(100.0)
    p, out = plain(4800, clock=clock)
    assert isinstance(p, PlainProgress)
    with p:
        for second in range(1, 26):  # 192 ratings a second for 25 s
            clock.t = 100.0 + second
            p.update(192)
            if second == 5:
                assert lines(out) == []  # nothing before the first interval
    assert lines(out) == [
        "annotate chatterbot: 1920/4800 ratings (40%), 192.0 ratings/s, elapsed 0:00:10, eta 0:00:15",
        "annotate chatterbot: 3840/4800 ratings (80%), 192.0 ratings/s, elapsed 0:00:20, eta 0:00:05",
        "annotate chatterbot: done, 4800 ratings in 0:00:25, 192.0 ratings/s",
    ]


def test_plain_interval_from_the_environment(monkeypatch):
    assert interval_from_env({}) == 10.0
    assert interval_from_env({"EXPLAINFT_PROGRESS_INTERVAL": "2.5"}) == 2.5
    with pytest.warns(RuntimeWarning, match="EXPLAINFT_PROGRESS_INTERVAL"):
        assert interval_from_env({"EXPLAINFT_PROGRESS_INTERVAL": "soon"}) == 10.0
    clock, out = Clock(0.0), io.StringIO()
    p = progress(3, "s", stream=out, clock=clock, env={"EXPLAINFT_PROGRESS_INTERVAL": "0"})
    with p:
        for _ in range(3):
            clock.t += 1
            p.update()
    assert lines(out) == [
        "s: 1/3 items (33%), 1.0 items/s, elapsed 0:00:01, eta 0:00:02",
        "s: 2/3 items (66%), 1.0 items/s, elapsed 0:00:02, eta 0:00:01",
        "s: 3/3 items (100%), 1.0 items/s, elapsed 0:00:03, eta 0:00:00",
        "s: done, 3 items in 0:00:03, 1.0 items/s",
    ]


def test_plain_total_zero_writes_only_the_final_line():
    clock = Clock()
    p, out = plain(0, "score empty", "items", interval=0.0, clock=clock)
    with p:
        clock.t += 30
        p.update(0)
        p.emit()
    assert lines(out) == ["score empty: done, 0 items in 0:00:30"]


def test_plain_stopped_by_an_exception_says_so():
    clock = Clock()
    p, out = plain(10, "s", "items", clock=clock)
    with pytest.raises(KeyboardInterrupt):
        with p:
            clock.t += 4
            p.update(3)
            raise KeyboardInterrupt
    assert lines(out) == ["s: stopped at 3/10 items (30%) after 0:00:04, 0.75 items/s"]


def test_default_stream_is_stderr_looked_up_at_call_time(capsys, monkeypatch):
    monkeypatch.setenv("EXPLAINFT_PROGRESS", "plain")
    with progress(2, "s") as p:
        p.update(2)
    assert capsys.readouterr().err.startswith("s: done, 2 items in 0:00:00")


# --------------------------------------------------------------------------- modes


def test_mode_choice():
    assert choose_mode(Tty(), {}) == "bar"
    assert choose_mode(io.StringIO(), {}) == "plain"
    assert choose_mode(Tty(), {"EXPLAINFT_PROGRESS": "plain"}) == "plain"
    assert choose_mode(io.StringIO(), {"EXPLAINFT_PROGRESS": "bar"}) == "bar"
    for off in ("off", "OFF", "0", "false", "none"):
        assert choose_mode(Tty(), {"EXPLAINFT_PROGRESS": off}) == "off"
    with pytest.warns(RuntimeWarning, match="EXPLAINFT_PROGRESS"):
        assert choose_mode(Tty(), {"EXPLAINFT_PROGRESS": "fancy"}) == "bar"


def test_tty_gets_a_tqdm_bar():
    from tqdm import tqdm

    out = Tty()
    with progress(10, "annotate x", "ratings", stream=out, env={}) as p:
        assert isinstance(p, BarProgress) and isinstance(p.bar, tqdm)
        p.update(4)
        p.set_postfix(loss=0.123456)
        p.update(6)
        assert p.n == 10
    text = out.getvalue()
    assert "annotate x" in text and "10/10" in text and "ratings/s" in text and "loss=0.1235" in text


def test_off_is_silent_even_in_a_terminal():
    for stream in (Tty(), io.StringIO()):
        with progress(10, "x", stream=stream, env={"EXPLAINFT_PROGRESS": "off"}, interval=0.0) as p:
            assert isinstance(p, SilentProgress)
            p.update(10)
            p.set_postfix(loss=1.0)
            p.emit()
        assert stream.getvalue() == "" and p.n == 10


def test_library_bars_quiet_unless_a_bar():
    hf_logging = pytest.importorskip("transformers.utils.logging")
    from explainft.progress import quiet_library_bars

    assert hf_logging.is_progress_bar_enabled()
    with quiet_library_bars(io.StringIO(), env={}):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    with quiet_library_bars(Tty(), env={}):
        assert hf_logging.is_progress_bar_enabled()

    @quiet_library_bars(io.StringIO(), env={})
    def work():
        return hf_logging.is_progress_bar_enabled()

    assert work() is False and hf_logging.is_progress_bar_enabled()


# --------------------------------------------------------------------------- training callback


def state(step, *, main=True, max_steps=100):
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=main)


def test_training_callback_reports_steps_and_losses():
    pytest.importorskip("transformers")
    from explainft.progress import training_callback

    clock, out = Clock(0.0), io.StringIO()
    cb = training_callback("train m", stream=out, interval=10.0, clock=clock, env={})
    args, control = SimpleNamespace(), SimpleNamespace()
    cb.on_log(args, state(0), control, logs={"eval_test_loss": 1.5, "eval_test_runtime": 0.2})  # initial evaluation
    cb.on_train_begin(args, state(0), control)
    for step in range(1, 41):
        clock.t = step / 2  # 2 steps/s
        cb.on_step_end(args, state(step), control)
        if step % 10 == 0:
            cb.on_log(
                args,
                state(step),
                control,
                logs={"loss": 2.0 - step / 100, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": step / 20},
            )
        if step == 40:
            cb.on_log(args, state(step), control, logs={"eval_test_loss": 0.75, "epoch": 2.0})
    cb.on_log(args, state(40), control, logs={"train_runtime": 20.0, "train_loss": 1.8})
    cb.on_train_end(args, state(40), control)
    assert lines(out) == [
        # a line shows the losses logged so far (the initial evaluation's, the step-10 training loss)
        "train m: 20/100 steps (20%), 2.0 steps/s, elapsed 0:00:10, eta 0:00:40, test_loss=1.5, loss=1.9",
        "train m: 40/100 steps (40%), 2.0 steps/s, elapsed 0:00:20, eta 0:00:30, test_loss=1.5, loss=1.7",
        # the evaluation writes a line at once
        "train m: 40/100 steps (40%), 2.0 steps/s, elapsed 0:00:20, eta 0:00:30, test_loss=0.75, loss=1.6",
        "train m: done, 40/100 steps in 0:00:20, 2.0 steps/s, test_loss=0.75, loss=1.6",
    ]


def test_training_callback_resumed_and_not_main_process():
    pytest.importorskip("transformers")
    from explainft.progress import training_callback

    clock, out = Clock(0.0), io.StringIO()
    cb = training_callback("train m", stream=out, interval=10.0, clock=clock, env={})
    a = c = SimpleNamespace()
    cb.on_train_begin(a, state(60), c)  # resumed from checkpoint-60
    clock.t = 40.0
    cb.on_step_end(a, state(100), c)
    cb.on_train_end(a, state(100), c)
    assert lines(out) == [
        "train m: 100/100 steps (100%), 1.0 steps/s, elapsed 0:00:40, eta 0:00:00",
        "train m: done, 100 steps (resumed at 60) in 0:00:40, 1.0 steps/s",
    ]

    other = io.StringIO()
    cb = training_callback("train m", stream=other, interval=0.0, clock=clock, env={})
    cb.on_train_begin(a, state(0, main=False), c)
    cb.on_step_end(a, state(1, main=False), c)
    cb.on_log(a, state(1, main=False), c, logs={"loss": 1.0})
    cb.on_train_end(a, state(1, main=False), c)
    assert other.getvalue() == ""


# --------------------------------------------------------------------------- scoring


from test_scoring import bytelevel, examples, one_thread  # noqa: E402,F401  (its tiny model, tokenizer, threads)


def test_score_examples_with_progress_gives_identical_results(bytelevel, monkeypatch, capsys):
    from explainft.scoring import score_examples

    model, tok = bytelevel
    exs = examples(7)
    quiet = score_examples(model, tok, exs, max_length=512, batch_size=3, test_set="demo")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("EXPLAINFT_PROGRESS", "plain")
    monkeypatch.setenv("EXPLAINFT_PROGRESS_INTERVAL", "0")
    loud = score_examples(model, tok, exs, max_length=512, batch_size=3, test_set="demo", progress=True)
    assert loud == quiet
    err = capsys.readouterr().err.splitlines()
    assert [x.split(",")[0] for x in err] == [
        "score demo: 3/7 items (42%)",
        "score demo: 6/7 items (85%)",
        "score demo: 7/7 items (100%)",
        "score demo: done",
    ]
    assert err[-1].startswith("score demo: done, 7 items in ")
