"""Progress of long runs (annotation, training, scoring): a bar in a terminal, plain lines in a log.

``progress(total, desc, unit)`` returns a context manager with ``update(n=1)``,
``set_postfix(**values)`` and ``emit()`` (write a line now):

* when the stream is a terminal (``stream.isatty()``): a tqdm bar with the count, the rate,
  the elapsed time and the ETA (and the postfix values);
* otherwise plain lines, at most one every ``interval`` seconds, e.g.
  ``annotate@chatterbot: 1200/4800 ratings (25%), 310.2 ratings/s, elapsed 0:00:04, eta 0:00:12``,
  and always one final line when it closes, with the count and the mean rate:
  ``annotate@chatterbot: done, 4800 ratings in 0:00:15, 320.0 ratings/s``
  (``stopped at 1200/4800 ratings (25%) after ...`` when the ``with`` block raised). Nothing
  but that final line is written when ``total`` is 0.

Environment (read when a progress object is made):

``EXPLAINFT_PROGRESS``
    ``auto`` (default: bar in a terminal, plain lines otherwise), ``bar``, ``plain`` or ``off``
    (nothing at all; also ``0``, ``false``, ``no``, ``none``).
``EXPLAINFT_PROGRESS_INTERVAL``
    seconds between plain lines (default 10; 0 writes a line at every update). An explicit
    ``interval`` argument wins.

The line formats are pure functions (:func:`format_line`, :func:`format_final`) and the
clock is injectable, so tests assert exact strings. :func:`training_callback` reports a
``transformers.Trainer``'s optimizer steps the same way, with the latest training and
evaluation losses; :func:`quiet_library_bars` turns transformers' own bars off unless the
mode is a bar.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from typing import Any, Callable, Mapping, TextIO

ENV_MODE = "EXPLAINFT_PROGRESS"
ENV_INTERVAL = "EXPLAINFT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0
MODES = ("auto", "bar", "plain", "off")
_OFF = {"off", "0", "false", "no", "none"}


# --------------------------------------------------------------------------- formatting (pure)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (hours unbounded), rounded to the second."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_rate(count: float, seconds: float, unit: str) -> str | None:
    """``"310.2 ratings/s"`` (three significant digits below 1/s), or None when nothing is done or no time passed."""
    if seconds <= 0 or count <= 0:
        return None
    rate = count / seconds
    return f"{rate:.1f} {unit}/s" if rate >= 1 else f"{rate:.3g} {unit}/s"


def format_value(value: Any) -> str:
    """A postfix value: floats with 4 significant digits, the rest as ``str``."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _postfix(postfix: Mapping[str, Any] | None) -> str:
    return "".join(f", {k}={format_value(v)}" for k, v in (postfix or {}).items())


def _percent(n: int, total: int) -> str:
    return f"{100 * n // total}%" if total > 0 else "?%"


def format_line(
    desc: str,
    n: int,
    total: int,
    unit: str,
    elapsed: float,
    *,
    initial: int = 0,
    postfix: Mapping[str, Any] | None = None,
) -> str:
    """A progress line: count, share, rate of this run, elapsed time, ETA, postfix values."""
    parts = [f"{desc}: {n}/{total} {unit} ({_percent(n, total)})"]
    rate = format_rate(n - initial, elapsed, unit)
    if rate is not None:
        parts.append(rate)
    parts.append(f"elapsed {format_duration(elapsed)}")
    done = n - initial
    if done > 0 and elapsed > 0:
        parts.append(f"eta {format_duration(max(0, total - n) * elapsed / done)}")
    else:
        parts.append("eta ?")
    return ", ".join(parts) + _postfix(postfix)


def format_final(
    desc: str,
    n: int,
    total: int,
    unit: str,
    elapsed: float,
    *,
    initial: int = 0,
    postfix: Mapping[str, Any] | None = None,
    stopped: bool = False,
) -> str:
    """The closing line: what was done, in how long, at what mean rate (``stopped`` when interrupted)."""
    resumed = f" (resumed at {initial})" if initial else ""
    if stopped:
        head = f"{desc}: stopped at {n}/{total} {unit} ({_percent(n, total)}){resumed} after {format_duration(elapsed)}"
    else:
        count = f"{n} {unit}" if n == total else f"{n}/{total} {unit}"
        head = f"{desc}: done, {count}{resumed} in {format_duration(elapsed)}"
    rate = format_rate(n - initial, elapsed, unit)
    return head + (f", {rate}" if rate is not None else "") + _postfix(postfix)


# --------------------------------------------------------------------------- choosing a mode


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def choose_mode(stream: Any, env: Mapping[str, str] | None = None) -> str:
    """``"bar"``, ``"plain"`` or ``"off"`` for ``stream`` under ``EXPLAINFT_PROGRESS`` (see the module docstring)."""
    env = os.environ if env is None else env
    raw = env.get(ENV_MODE, "auto").strip().lower() or "auto"
    if raw in _OFF:
        return "off"
    if raw not in MODES:
        warnings.warn(f"{ENV_MODE}={raw!r} is not one of {', '.join(MODES)}; using auto", RuntimeWarning, stacklevel=3)
        raw = "auto"
    if raw == "auto":
        return "bar" if _isatty(stream) else "plain"
    return raw


def interval_from_env(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(ENV_INTERVAL)
    if raw is None or not raw.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
        if value < 0 or value != value:
            raise ValueError
    except ValueError:
        warnings.warn(
            f"{ENV_INTERVAL}={raw!r} is not a number of seconds >= 0; using {DEFAULT_INTERVAL:g}",
            RuntimeWarning,
            stacklevel=3,
        )
        return DEFAULT_INTERVAL
    return value


# --------------------------------------------------------------------------- the three kinds


class Progress:
    """Common interface: a context manager with ``update``, ``set_postfix``, ``emit`` and ``close``."""

    n: int = 0

    def update(self, n: int = 1) -> None: ...

    def set_postfix(self, **values: Any) -> None: ...

    def emit(self) -> None: ...

    def close(self, *, stopped: bool = False) -> None: ...

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(stopped=exc_type is not None)


class SilentProgress(Progress):
    """``EXPLAINFT_PROGRESS=off``: counts, writes nothing."""

    def __init__(self, initial: int = 0):
        self.n = initial

    def update(self, n: int = 1) -> None:
        self.n += n


class PlainProgress(Progress):
    """Plain lines, at most one per ``interval`` seconds, and a final line on close."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        *,
        stream: TextIO,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        initial: int = 0,
    ):
        self.total, self.desc, self.unit, self.stream = int(total), desc, unit, stream
        self.interval, self.clock, self.initial, self.n = interval, clock, initial, initial
        self.postfix: dict[str, Any] = {}
        self.start = self.last = clock()
        self.closed = False

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken log must not stop the work
            pass

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total <= 0:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._write(self.line(now))

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update(values)

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        return format_line(
            self.desc, self.n, self.total, self.unit, now - self.start, initial=self.initial, postfix=self.postfix
        )

    def emit(self) -> None:
        if self.total > 0 and not self.closed:
            self.last = self.clock()
            self._write(self.line(self.last))

    def close(self, *, stopped: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._write(
            format_final(
                self.desc,
                self.n,
                self.total,
                self.unit,
                self.clock() - self.start,
                initial=self.initial,
                postfix=self.postfix,
                stopped=stopped,
            )
        )


class BarProgress(Progress):
    """A tqdm bar on ``stream`` (count, rate, elapsed, ETA, postfix)."""

    def __init__(self, total: int, desc: str, unit: str, *, stream: TextIO, initial: int = 0):
        from tqdm import tqdm

        self.postfix: dict[str, str] = {}
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=f" {unit}" if unit else "it",
            file=stream,
            initial=initial,
            mininterval=0.5,
            dynamic_ncols=True,
            leave=True,
        )

    @property
    def n(self) -> int:  # type: ignore[override]
        return int(self.bar.n)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update({k: format_value(v) for k, v in values.items()})
        self.bar.set_postfix(self.postfix, refresh=False)

    def emit(self) -> None:
        self.bar.refresh()

    def close(self, *, stopped: bool = False) -> None:
        self.bar.close()


def progress(
    total: int,
    desc: str,
    unit: str = "items",
    *,
    stream: TextIO | None = None,
    interval: float | None = None,
    initial: int = 0,
    clock: Callable[[], float] = time.monotonic,
    env: Mapping[str, str] | None = None,
) -> Progress:
    """A progress reporter for ``total`` units of work (see the module docstring).

    ``stream`` defaults to ``sys.stderr`` (looked up now); ``initial`` is the count already done
    (a resumed run: the rate and ETA count only this run's work); ``clock`` and ``env`` are for tests.
    """
    stream = sys.stderr if stream is None else stream
    mode = choose_mode(stream, env)
    if mode == "off":
        return SilentProgress(initial)
    if mode == "bar":
        return BarProgress(total, desc, unit, stream=stream, initial=initial)
    return PlainProgress(
        total,
        desc,
        unit,
        stream=stream,
        initial=initial,
        clock=clock,
        interval=interval_from_env(env) if interval is None else interval,
    )


@contextlib.contextmanager
def quiet_library_bars(stream: TextIO | None = None, env: Mapping[str, str] | None = None):
    """Within: transformers' own tqdm bars ("Loading weights", "Writing model shards") are off unless the
    progress mode of ``stream`` (default ``sys.stderr``) is a bar, so that a log gets plain lines only.

    Also a decorator (each call decides anew). The previous setting is restored on exit.
    """
    if choose_mode(sys.stderr if stream is None else stream, env) == "bar":
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- training


def loss_postfix(logs: Mapping[str, Any]) -> dict[str, float]:
    """The losses of one Trainer log: ``loss`` and each ``eval_<set>_loss`` as ``<set>_loss`` (``eval_loss`` kept)."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key == "loss":
            out["loss"] = float(value)
        elif key == "eval_loss":
            out["eval_loss"] = float(value)
        elif key.startswith("eval_") and key.endswith("_loss"):
            out[key[len("eval_") :]] = float(value)
    return out


def training_callback(
    desc: str = "train",
    *,
    stream: TextIO | None = None,
    interval: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    env: Mapping[str, str] | None = None,
):
    """A ``TrainerCallback`` reporting optimizer steps with :func:`progress` (unit ``steps``).

    Only on the main process (``state.is_world_process_zero``). Starts at ``on_train_begin``
    (from ``state.global_step`` when resumed, out of ``state.max_steps``), follows
    ``state.global_step`` at each step end, shows the latest training loss and evaluation
    losses from ``on_log`` (an evaluation writes a line at once in plain mode; losses logged
    before training, like an initial evaluation, show from the first line), and closes with
    the final line at ``on_train_end``.
    """
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Progress | None = None
            self.losses: dict[str, float] = {}

        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            if self.bar is not None:  # train() called again on the same trainer
                self.bar.close()
            self.bar = progress(
                int(state.max_steps or 0),
                desc,
                "steps",
                stream=stream,
                interval=interval,
                initial=int(state.global_step),
                clock=clock,
                env=env,
            )
            if self.losses:
                self.bar.set_postfix(**self.losses)

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None and state.global_step > self.bar.n:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs:
                return
            losses = loss_postfix(logs)
            if not losses:
                return
            self.losses.update(losses)
            if self.bar is not None:
                self.bar.set_postfix(**losses)
                if any(k != "loss" for k in losses):  # an evaluation: rare and worth a line of its own
                    self.bar.emit()

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return TrainingProgress()
