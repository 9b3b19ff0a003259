import json
import math

import numpy as np
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


def test_write_json_writes_non_finite_floats_as_null(tmp_path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    payload = {"auc": math.nan, "best": -math.inf, "rows": [1.5, np.float32("nan"), np.array([math.inf, 2.0])],
               "pair": (np.float64(0.25), math.inf), "path": tmp_path}
    write_json(tmp_path / "m.json", payload)
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse) == {
        "auc": None, "best": None, "rows": [1.5, None, [None, 2.0]], "pair": [0.25, None], "path": str(tmp_path)}
