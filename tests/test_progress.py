"""llmrec.progress: a tqdm bar on a terminal, plain lines elsewhere (issue 20 item 3); llmrec.quiet."""

import io
import warnings

import pytest

import llmrec.progress as progress_module
from llmrec.errors import ConfigError
from llmrec.progress import LineProgress, progress


class Stderr(io.StringIO):
    """sys.stderr stand-in (set in the test itself: pytest sets its own between setup and call): a terminal or
    not."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when told: clock.now (seconds) is what time.monotonic() answers."""

    class Clock:
        now = 1000.0

    monkeypatch.setattr(progress_module.time, "monotonic", lambda: Clock.now)
    return Clock


@pytest.fixture
def stderr(monkeypatch, capsys):
    """What reaches stderr, captured (so not a terminal, as a log file or a pipe): getvalue() has all of it so
    far. LLMREC_PROGRESS unset, one line per 5 s at most."""
    monkeypatch.delenv("LLMREC_PROGRESS", raising=False)
    monkeypatch.setenv("LLMREC_PROGRESS_SECONDS", "5")

    class Captured:
        text = ""

        def getvalue(self):
            self.text += capsys.readouterr().err
            return self.text

    return Captured()


def run(bar, clock, seconds_per_item=1.0, stop_after=None):
    for done, _ in enumerate(bar, 1):
        clock.now += seconds_per_item
        bar.set_postfix(loss=f"{1 / done:.4f}", seen=done * 16)
        if done == stop_after:
            break


def test_plain_lines_at_most_one_per_interval_then_a_final_line(clock, stderr):
    run(progress(range(20), desc="epoch 1/3"), clock)
    text = stderr.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines == [
        "epoch 1/3: 5/20 (25%) in 5s, 1.0 it/s, ETA 15s, loss=0.2000 seen=80",
        "epoch 1/3: 10/20 (50%) in 10s, 1.0 it/s, ETA 10s, loss=0.1000 seen=160",
        "epoch 1/3: 15/20 (75%) in 15s, 1.0 it/s, ETA 5s, loss=0.0667 seen=240",
        "epoch 1/3: 20/20 (100%) in 20s, 1.0 it/s, loss=0.0500 seen=320",
    ]


def test_slow_items_show_seconds_per_item_and_minutes(clock, stderr):
    run(progress(range(3), desc="sweeps"), clock, seconds_per_item=70)
    assert stderr.getvalue().splitlines() == [
        "sweeps: 1/3 (33%) in 1m10s, 70.0 s/it, ETA 2m20s, loss=1.0000 seen=16",
        "sweeps: 2/3 (67%) in 2m20s, 70.0 s/it, ETA 1m10s, loss=0.5000 seen=32",
        "sweeps: 3/3 (100%) in 3m30s, 70.0 s/it, loss=0.3333 seen=48",
    ]


def test_a_break_counts_the_item_in_hand_and_close_is_said_once(clock, stderr):
    """Training leaves its epoch loop with `break` at max_steps, then calls close()."""
    bar = progress(range(100), desc="epoch 1/1", initial=0)
    run(bar, clock, seconds_per_item=0.1, stop_after=30)
    bar.close()
    assert stderr.getvalue().splitlines() == ["epoch 1/1: 30/100 (30%) in 3s, 10.0 it/s, loss=0.0333 seen=480"]


def test_manual_updates_without_a_total_and_a_resumed_start(clock, stderr):
    with progress(desc="rows", initial=4) as bar:
        for _ in range(10):
            clock.now += 1
            bar.update(2)
    assert stderr.getvalue().splitlines() == ["rows: 14 in 5s, 2.0 it/s", "rows: 24 in 10s, 2.0 it/s"]


def test_leave_false_is_silent_for_a_short_loop_and_closes_a_long_one(clock, stderr):
    run(progress(range(4), desc="valid", leave=False), clock)
    assert stderr.getvalue() == ""
    run(progress(range(6), desc="valid", leave=False), clock)
    assert stderr.getvalue().splitlines() == ["valid: 5/6 (83%) in 5s, 1.0 it/s, ETA 1s, loss=0.2000 seen=80",
                                              "valid: 6/6 (100%) in 6s, 1.0 it/s, loss=0.1667 seen=96"]


@pytest.mark.parametrize("env, kwargs", [(None, {"disable": True}), ("off", {}), ("OFF", {"leave": False})])
def test_disabled_or_off_prints_nothing(clock, stderr, monkeypatch, env, kwargs):
    if env:
        monkeypatch.setenv("LLMREC_PROGRESS", env)
    bar = progress(range(50), desc="epoch 1/3", **kwargs)
    run(bar, clock)
    bar.close()
    assert stderr.getvalue() == ""


@pytest.mark.parametrize("tty, env, kind", [
    (True, None, "tqdm"), (False, None, "lines"),
    (True, "log", "lines"), (False, "bar", "tqdm"), (True, " Bar ", "tqdm"), (False, "", "lines"),
])
def test_a_terminal_gets_a_bar_anything_else_lines_unless_llmrec_progress_says(monkeypatch, tty, env, kind):
    from tqdm.auto import tqdm

    monkeypatch.setattr("sys.stderr", Stderr(tty=tty))
    if env is None:
        monkeypatch.delenv("LLMREC_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("LLMREC_PROGRESS", env)
    bar = progress(range(3), desc="x", disable=True)
    assert isinstance(bar, tqdm if kind == "tqdm" else LineProgress)
    assert list(bar) == [0, 1, 2]


@pytest.mark.parametrize("name, value, said", [
    ("LLMREC_PROGRESS", "fancy", "LLMREC_PROGRESS: expected one of bar | log | off, got 'fancy'"),
    ("LLMREC_PROGRESS_SECONDS", "soon", "LLMREC_PROGRESS_SECONDS: expected a number of seconds > 0, got 'soon'"),
    ("LLMREC_PROGRESS_SECONDS", "0", "got '0'"),
    ("LLMREC_PROGRESS_SECONDS", "-3", "got '-3'"),
    ("LLMREC_PROGRESS_SECONDS", "nan", "got 'nan'"),
])
def test_bad_settings_are_one_line_config_errors(stderr, monkeypatch, name, value, said):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        progress(range(3))
    assert said in str(error.value) and "\n" not in str(error.value)


def test_bad_settings_stop_the_cli_before_any_work(stderr, monkeypatch, capsys, tmp_path):
    from llmrec.cli import main

    monkeypatch.setenv("LLMREC_PROGRESS_SECONDS", "ten")
    assert main(["data", f"data.cache_dir={tmp_path / 'cache'}"]) == 2
    assert stderr.getvalue().strip().splitlines() == [
        "llmrec: error: LLMREC_PROGRESS_SECONDS: expected a number of seconds > 0, got 'ten'"]
    assert not (tmp_path / "cache").exists()


def test_is_gradient_checkpointing_warning_from_peft_is_silenced_and_only_it():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from llmrec.quiet import silence_library_warnings

    torch.manual_seed(0)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_warnings()
        get_peft_model(tiny, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
        warnings.warn("some other future change", FutureWarning)
    assert [str(w.message) for w in caught if w.category is FutureWarning] == ["some other future change"]


@pytest.fixture
def library_bars():
    """Put datasets' and transformers' bars back as they were (the CLI turns them off for the whole process)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    before = datasets.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    yield
    if before[0]:
        datasets.enable_progress_bars()
    if before[1]:
        transformers_logging.enable_progress_bar()


def test_a_cli_training_written_to_a_file_has_plain_lines_only(capfd, caplog, tmp_path, monkeypatch, library_bars):
    """stdout and stderr captured (no terminal): no carriage return, no datasets / transformers bar, and no
    accelerate `Removed shared tensor {'lm_head.weight'}` at the checkpoints of the tied tiny Llama."""
    from llmrec.cli import main
    from tests.conftest import SMALL_OVERRIDES

    monkeypatch.delenv("LLMREC_PROGRESS", raising=False)
    monkeypatch.delenv("LLMREC_PROGRESS_SECONDS", raising=False)
    code = main(["train", *SMALL_OVERRIDES, f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                 "train.max_steps=2", "train.checkpoint_every=1"])
    out, err = capfd.readouterr()
    assert code == 0, err
    text = out + err
    assert "\r" not in text and "\x1b[" not in text
    assert "examples/s" not in text and "it/s]" not in text  # datasets' .map / save bars, transformers' bars
    assert "Removed shared tensor" not in text + caplog.text
    assert [line for line in err.splitlines() if line.startswith("epoch 1/1: 2/")], err
