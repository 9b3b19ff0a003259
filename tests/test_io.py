import json

import pytest

from llmrec.io import atomic_dir, write_json


def test_atomic_dir_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("crash while writing")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp dir left behind

    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_write_json_leaves_no_temp_file(tmp_path):
    write_json(tmp_path / "sub" / "m.json", {"auc": 0.5})
    assert json.loads((tmp_path / "sub" / "m.json").read_text()) == {"auc": 0.5}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.json"]
