from llmrec.bench.report import best_methods, markdown_report, plot_report


def record(method, test_auc, forget_auc, closure, jsd, mia, wall, trainable=100.0):
    return {"method": method, "test": {"auc": test_auc}, "forget": {"auc": forget_auc},
            "forgetting": {"forget_gap_closure_auc": closure, "js_divergence": jsd, "l2": jsd * 10, "mia_auc": mia,
                           "floor_js_divergence": 0.002},
            "wall_seconds": wall, "wall_vs_retrain": wall / 100.0, "trainable_percent": trainable,
            "peak_memory_mb": None, "requests": []}


RECORDS = [
    record("original", 0.80, 0.85, 0.0, 0.02, 0.55, 300),
    record("retrain", 0.79, 0.80, 1.0, 0.0, 0.51, 100),
    record("retrain (seed 2)", 0.79, 0.81, 0.8, 0.002, 0.50, 100),
    record("neggrad", 0.70, 0.70, 3.0, 0.05, 0.40, 10),  # overshoots: far below the retrain
    record("e2urec", 0.78, 0.81, 0.8, 0.004, 0.52, 20, trainable=1.5),
]


def test_best_is_judged_against_the_retrain_not_by_raw_extremes():
    best = best_methods(RECORDS)
    assert best["test AUC"] == {"e2urec"}
    assert best["forget AUC"] == {"e2urec"}  # 0.81 is nearer the retrain's 0.80 than neggrad's 0.70
    assert best["closure (AUC)"] == {"e2urec"}  # 0.8 is nearer 1 than 3.0
    assert best["MIA AUC"] == {"e2urec"}
    assert best["wall s"] == {"neggrad"}
    assert best["trainable %"] == {"e2urec"}
    assert best["peak MB"] == set()  # no method measured it: nothing is marked
    assert all("original" not in names and "retrain" not in names for names in best.values())


def test_markdown_marks_the_best_and_states_the_floor():
    table = markdown_report(RECORDS)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert set(rows) == {"method", "original", "retrain", "retrain (seed 2)", "neggrad", "e2urec"}
    assert "**0.7800**" in rows["e2urec"] and "**10.0**" in rows["neggrad"]
    assert "**" not in rows["original"] and "**" not in rows["retrain"]
    assert "| – |" in rows["e2urec"]  # missing peak memory shows as a dash, not 0
    assert "= 0.002." in table.split("Noise floor")[1]


def test_sequential_requests_get_a_table_per_request():
    records = [dict(r) for r in RECORDS]
    records[-1]["requests"] = [
        {"request": 1, "counts": {"forget_users": 3}, "test_auc": 0.79, "forgotten_so_far_auc": 0.82,
         "wall_seconds": 9.0},
        {"request": 2, "counts": {"forget_users": 2}, "test_auc": 0.78, "forgotten_so_far_auc": 0.81,
         "wall_seconds": 11.0},
    ]
    table = markdown_report(records, requests=2)
    assert "| e2urec | 2 | 5 | 0.7800 | 0.8100 | 11 |" in table


def test_the_plot_is_a_png(tmp_path):
    plot_report(RECORDS, tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compute_columns_appear_only_for_families_that_timed_their_compute():
    assert "compute s" not in markdown_report(RECORDS)
    timed = [{**r, "compute_seconds": r["wall_seconds"] / 2, "compute_vs_retrain": r["wall_seconds"] / 100.0}
             for r in RECORDS]
    table = markdown_report(timed)
    assert "| compute s | compute × retrain |" in table and "compute s: the training or unlearning" in table
    neggrad = next(line for line in table.splitlines() if line.startswith("| neggrad "))
    assert "**5**" in neggrad and "**0.1**" in neggrad  # the fastest method is marked in both columns
