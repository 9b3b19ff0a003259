"""The CLI contract: one clear line on stderr, exit code 2, nothing half-written."""

import subprocess
import sys

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
    assert [line.split()[0] for line in lines] == ["source", "train", "valid", "test", "forget", "retained"]
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
