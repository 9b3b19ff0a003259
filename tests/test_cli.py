"""The CLI contract: one clear line on stderr, exit code 2, nothing half-written."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmrec.cli import main
from tests.data.test_readers import U_DATA, ml100k


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmrec: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_config_lists_every_key(capsys):
    code, out, _ = run(capsys, "train", "--help-config")
    assert code == 0 and "data.path" in out and "output_dir" in out and "train.mixed_precision" in out


def test_unknown_recipe_key(capsys, tmp_path):
    code, _, err = run(capsys, "train", "recipes/train/default.yaml", "train.epoch=3", f"output_dir={tmp_path / 'out'}")
    assert_one_line_error(code, err, "unknown recipe key 'train.epoch'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "data, fragment",
    [
        (U_DATA + "2\t1\tfive\t881250953\n", "u.data:5: rating 'five' is not a number"),
        (U_DATA + "2\t1\n", "u.data:5: expected 4 fields, found 2"),
        (U_DATA + "2\t99\t4\t881250953\n", "u.data:5: unknown item id '99'"),
        (U_DATA + "2\t2\t1000\t881250953\n", "u.data:5: rating '1000' is not a whole star from 1 to 5"),
        (U_DATA + "2\t3\t5\t881250951\n", "u.data:5: user '2' rated item '3' 4 on line 3 and 5 here, both at "
                                         "timestamp 881250951"),
        ("", "u.data: file is empty"),
    ],
)
def test_bad_data_file_stops_training_before_anything_is_written(capsys, tmp_path, data, fragment):
    folder = ml100k(tmp_path / "ml", data=data)
    code, _, err = run(capsys, "train", "recipes/train/ml100k.yaml", f"data.path={folder}",
                       f"output_dir={tmp_path / 'out'}", f"data.cache_dir={tmp_path / 'cache'}")
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_unknown_choice_in_an_unlearning_recipe(capsys, tmp_path):
    code, _, err = run(capsys, "unlearn", "recipes/unlearn/e2urec.yaml", "e2urec.augment.finetune=half",
                       f"output_dir={tmp_path / 'out'}")
    assert_one_line_error(code, err, "e2urec.augment.finetune: expected one of full | lora, got 'half'")
    assert not (tmp_path / "out").exists()


def test_missing_data_folder(capsys, tmp_path):
    code, _, err = run(capsys, "data", "recipes/train/ml100k.yaml", f"data.path={tmp_path / 'nowhere'}",
                       f"data.cache_dir={tmp_path / 'cache'}")
    assert_one_line_error(code, err, "nowhere")


def test_unknown_forget_user(capsys, tmp_path):
    ids = tmp_path / "forget.txt"
    ids.write_text("1\nno-such-user\n")
    code, _, err = run(capsys, "data", f"forget.users={ids}", f"data.cache_dir={tmp_path / 'cache'}",
                       "data.synthetic.num_users=30", "data.synthetic.num_items=20")
    assert_one_line_error(code, err, "forget.txt:2: unknown user id 'no-such-user'")


def test_data_verb_prints_split_sizes(capsys, tmp_path):
    code, out, _ = run(capsys, "data", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic.num_users=30",
                       "data.synthetic.num_items=20", "data.synthetic.ratings_per_user=12")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["source", "train", "valid", "test", "holdout", "forget", "retained"]
    assert "0 repeated (user, item) ratings dropped" in lines[0]


def test_module_entry_point_exit_code(tmp_path):
    result = subprocess.run([sys.executable, "-m", "llmrec", "evaluate", f"eval.model_dir={tmp_path}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("no llmrec_model.json); train one with `llmrec train`")


def test_accelerate_launch_runs_the_same_training(tmp_path):
    from tests.conftest import REPO, SMALL_OVERRIDES

    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "recipes/accelerate/cpu.yaml"),
        "-m", "llmrec", "train", *SMALL_OVERRIDES, f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}",
        "train.max_steps=3",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model" / "llmrec_model.json").is_file() and (out / "config.yaml").is_file()


# ---------------------------------------------------------------- faults: signals, full disks (issue 18 item 10)

FAULT_SCRIPT = """
import importlib, os, signal, sys
module = importlib.import_module({module!r})
real = getattr(module, {name!r})
def step(*args, **kwargs):  # the fault strikes inside this named step
    {fault}
    return real(*args, **kwargs)
setattr(module, {name!r}, step)
from llmrec.cli import main
sys.exit(main({argv!r}))
"""


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A tiny trained original (2 steps) and the overrides that unlearn it quickly on the same cached data."""
    from llmrec.llm.train import train
    from tests.conftest import SMALL_OVERRIDES, small_recipe

    root = tmp_path_factory.mktemp("original")
    recipe = small_recipe(root, "train.max_steps=2")
    train(recipe)
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    unlearn = [f"model={recipe.output_dir}/model", f"data.cache_dir={recipe.data.cache_dir}", *data,
               "method=finetune", "finetune.epochs=0.1", "finetune.batch_size=8"]
    train_args = [*SMALL_OVERRIDES, f"data.cache_dir={recipe.data.cache_dir}", "train.max_steps=2"]
    return root / "run" / "model", {"unlearn": unlearn, "train": train_args}


def run_with_fault(verb, args, module, name, fault, cwd):
    """`llmrec VERB ARGS` in a subprocess whose `module.name` first runs `fault` (a statement)."""
    from tests.conftest import REPO

    script = FAULT_SCRIPT.format(module=module, name=name, fault=fault, argv=[verb, *args])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def temp_litter(*folders):
    return [p for folder in folders for p in Path(folder).rglob("*") if ".tmp" in p.name or ".old-" in p.name]


def assert_last_line(result, code, *fragments):
    """Exit `code`; stderr ends in one llmrec line holding `fragments`, with no traceback before it
    (progress bars from the run may precede it)."""
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("llmrec: ") and sum(line.startswith("llmrec: ") for line in lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


SIGNALS = [("SIGINT", 130, "interrupted (SIGINT)"), ("SIGTERM", 143, "terminated (SIGTERM)")]


@pytest.mark.parametrize("signal_name, code, said", SIGNALS)
def test_a_signal_while_unlearning_is_one_line_and_leaves_no_temp_dir(original, tmp_path, signal_name, code, said):
    from llmrec.store import model_hash

    model_dir, args = original
    before = model_hash(model_dir)
    result = run_with_fault("unlearn", [*args["unlearn"], f"output_dir={tmp_path / 'out'}"], "llmrec.unlearn.run",
                            "unlearning_manifest", f"os.kill(os.getpid(), signal.{signal_name})", tmp_path)
    assert_last_line(result, code, said)
    assert not (tmp_path / "out").exists() and not temp_litter(tmp_path, model_dir.parent)
    assert model_hash(model_dir) == before


@pytest.mark.parametrize("signal_name, code, said", [SIGNALS[0], pytest.param(*SIGNALS[1], marks=pytest.mark.slow)])
def test_a_signal_while_training_saves_is_one_line_and_leaves_no_temp_dir(original, tmp_path, signal_name, code,
                                                                          said):
    _, args = original
    result = run_with_fault("train", [*args["train"], f"output_dir={tmp_path / 'run'}"], "llmrec.llm.train",
                            "write_model_card", f"os.kill(os.getpid(), signal.{signal_name})", tmp_path)
    assert_last_line(result, code, said, "rerun the same command")
    assert not (tmp_path / "run" / "model").exists() and not temp_litter(tmp_path)


TORCH_DISK_FULL = ("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file "
                   "write failed")


def test_a_full_disk_while_checkpointing_is_one_line_naming_the_file(original, tmp_path, capsys, monkeypatch):
    """torch.save's own words for a full disk (the fault trial's), raised where torch writes the zip."""
    import torch.serialization

    def full(*args, **kwargs):
        raise RuntimeError(TORCH_DISK_FULL)

    monkeypatch.setattr(torch.serialization, "_save", full)
    _, args = original
    code, _, err = run(capsys, "train", *args["train"], f"output_dir={tmp_path / 'run'}")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("llmrec: error: ") and "Traceback" not in err
    assert f"{tmp_path / 'run' / 'checkpoints' / 'last'}/" in line and "inline_container.cc:672" in line
    assert "is the disk full?" in line
    assert not (tmp_path / "run" / "checkpoints" / "last").exists() and not temp_litter(tmp_path)


def test_no_space_left_while_unlearning_is_one_line_and_the_original_is_untouched(original, tmp_path, capsys,
                                                                                    monkeypatch):
    """A write() that fails as on a full disk: ENOSPC with no file name (the path comes from the writer)."""
    from llmrec.store import model_hash

    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".unlearning_manifest.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    model_dir, args = original
    before = model_hash(model_dir)
    code, _, err = run(capsys, "unlearn", *args["unlearn"], f"output_dir={tmp_path / 'out'}")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line == (f"llmrec: error: {tmp_path / 'out' / 'unlearning_manifest.json'}: No space left on device; is "
                    "the disk full? Free space, or point output_dir / data.cache_dir at another disk")
    assert not (tmp_path / "out").exists() and not temp_litter(tmp_path, model_dir.parent)
    assert model_hash(model_dir) == before


def test_a_bug_keeps_its_traceback(capsys, monkeypatch):
    """Only input/output failures become one line: anything else is a bug and must show where it happened."""
    import llmrec.cli

    def broken(args):
        raise RuntimeError("a genuine bug")

    monkeypatch.setattr(llmrec.cli, "_run", broken)
    with pytest.raises(RuntimeError, match="a genuine bug"):
        main(["data"])


SYNTHETIC = ["data.synthetic.num_users=30", "data.synthetic.num_items=20"]


def test_a_forget_file_with_a_byte_order_mark_forgets_the_real_users(capsys, tmp_path):
    """Notepad's UTF-8 with a byte-order mark and CRLF (users 11 and 4 train here): the fault trial got "unknown user
    id '10'" for its training user 10, the mark glued to the id."""
    ids = tmp_path / "forget.txt"
    ids.write_bytes(b"\xef\xbb\xbf11\r\n4\r\n")
    code, out, err = run(capsys, "data", f"forget.users={ids}", f"data.cache_dir={tmp_path / 'cache'}", *SYNTHETIC)
    assert code == 0, err
    forget = next(line for line in out.splitlines() if line.startswith("forget"))
    assert forget.split()[3:5] == ["2", "users"]


@pytest.mark.parametrize("content, fragment", [
    ("11\n4\n".encode("utf-16"), "forget.txt:1: is UTF-16 (byte-order mark ff fe); save it as UTF-8"),
    ("11\n4\n".encode("utf-16-le"), "forget.txt:1: NUL byte (a UTF-16 file? save it as UTF-8)"),
    (b"11\n4\x00\n", "forget.txt:2: NUL byte"),
    ("11\n4\nJos\u00e9\n".encode("latin-1"), "forget.txt:3: undecodable byte 0xe9 (not valid UTF-8"),
])
def test_a_forget_file_that_is_not_utf8_is_one_line_naming_file_and_line(capsys, tmp_path, content, fragment):
    ids = tmp_path / "forget.txt"
    ids.write_bytes(content)
    code, _, err = run(capsys, "data", f"forget.users={ids}", f"data.cache_dir={tmp_path / 'cache'}", *SYNTHETIC)
    assert_one_line_error(code, err, fragment)


def test_a_bad_rating_scale_is_refused_before_anything_is_written(capsys, tmp_path):
    code, _, err = run(capsys, "data", "data.rating_scale=[5,1]", f"data.cache_dir={tmp_path / 'cache'}", *SYNTHETIC)
    assert_one_line_error(code, err, "data.rating_scale must be [] (the source's scale) or [lowest, highest] with "
                                     "lowest < highest, got [5.0, 1.0]")
    assert not (tmp_path / "cache").exists()


def test_safetensors_out_of_space_is_one_line_naming_the_output_and_leaves_no_temp_dir(original, capsys, tmp_path,
                                                                                      monkeypatch):
    """safetensors' own error for a full disk, raised where it writes the file (the first one a fresh training
    writes is its tiny backbone)."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "serialize_file", full)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", *original[1]["train"], f"output_dir={out}")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"llmrec: error: {out / 'backbone' / 'model.safetensors'}: No space left on device (os error 28); is the disk "
        "full? Free space, or point output_dir / data.cache_dir at another disk")
    assert not temp_litter(tmp_path) and not (out / "model").exists()


def test_audit_verb_is_listed_and_its_keys_documented(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "audit" in capsys.readouterr().out
    code, out, _ = run(capsys, "audit", "--help-config")
    assert code == 0 and "audit.reference" in out and "audit.shadow_fraction" in out and "model" in out
    for verb in ("unlearn", "evaluate"):  # the same audit on request, off by default
        code, out, _ = run(capsys, verb, "--help-config")
        assert code == 0 and "audit.shadow " in out and "audit.reference" in out


def test_the_rerun_advice_promises_a_resume_only_where_there_is_one():
    """Issue 19 (tester item 10): an interrupted audit or unlearn said 'training resumes from its last checkpoint'."""
    from llmrec.cli import _rerun

    assert "resumes from its last checkpoint" in _rerun("train")
    assert "reused" in _rerun("audit") and "reused" in _rerun("benchmark")
    assert all("resumes" not in _rerun(verb) for verb in ("audit", "benchmark", "unlearn", "evaluate"))
