from llmrec.bench.report import aggregate, best_methods, markdown_report, plot_report, spread_cell, summarise


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


# several runs of each method: seeds × originals (issue 19 item 4)

def run(method, original_seed, seed, test_auc, jsd, wall, peak=None):
    return {**record(method, test_auc, 0.8, 1.0, jsd, 0.5, wall), "original_seed": original_seed, "seed": seed,
            "peak_memory_mb": peak}


RUNS = [
    run("original", 42, None, 0.80, 0.02, 300), run("retrain", 42, None, 0.79, 0.0, 100),
    run("e2urec", 42, 0, 0.70, 0.004, 20, peak=500.0), run("e2urec", 42, 1, 0.78, 0.006, 30, peak=700.0),
    run("original", 43, None, 0.82, 0.03, 310), run("retrain", 43, None, 0.77, 0.0, 110),
    run("e2urec", 43, 0, 0.74, 0.002, 40), run("e2urec", 43, 1, 0.76, 0.010, 10, peak=600.0),
]


def test_summarise_gives_median_min_max_and_counts_what_was_not_measured():
    assert summarise([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3, "missing": 0}
    assert summarise([4.0, 1.0, None, 2.0, float("nan"), 3.0])["median"] == 2.5  # even count: mean of the middle two
    assert summarise([4.0, None, float("nan")]) == {"median": 4.0, "min": 4.0, "max": 4.0, "runs": 1, "missing": 2}
    assert summarise([None]) == {"median": None, "min": None, "max": None, "runs": 0, "missing": 1}


def test_aggregate_summarises_every_number_of_each_method_over_its_runs():
    entries = {entry["method"]: entry for entry in aggregate(RUNS)}
    assert list(entries) == ["original", "retrain", "e2urec"]
    e2urec = entries["e2urec"]
    assert e2urec["runs"] == 4 and e2urec["original_seeds"] == [42, 43] and e2urec["seeds"] == [0, 1]
    assert e2urec["metrics"]["test.auc"] == {"median": 0.75, "min": 0.70, "max": 0.78, "runs": 4, "missing": 0}
    assert e2urec["metrics"]["forgetting.js_divergence"]["median"] == 0.005
    assert e2urec["metrics"]["peak_memory_mb"] == {"median": 600.0, "min": 500.0, "max": 700.0, "runs": 3,
                                                   "missing": 1}
    assert "seed" not in e2urec["metrics"] and "original_seed" not in e2urec["metrics"]  # which run, not a number
    assert entries["retrain"]["seeds"] == [] and entries["retrain"]["runs"] == 2
    single = aggregate(RECORDS)[0]  # one run: its own numbers
    assert single["runs"] == 1 and single["metrics"]["test.auc"] == {"median": 0.8, "min": 0.8, "max": 0.8,
                                                                      "runs": 1, "missing": 0}


def test_a_cell_is_a_plain_number_for_one_run_and_median_min_max_for_several():
    assert spread_cell(summarise([0.78]), ".4f") == "0.7800"
    assert spread_cell(summarise([0.7, 0.78, 0.74]), ".4f", bold=True) == "**0.7400** [0.7000–0.7800]"
    assert spread_cell(summarise([100.0, 100.0]), ".3g") == "100"  # runs that agree: no [x–x]
    assert spread_cell(summarise([5.0, None, 7.0]), ".1f") == "6.0 [5.0–7.0] (2 of 3 runs)"
    assert spread_cell(summarise([None, None]), ".1f") == "–"


def test_several_runs_show_median_min_max_a_run_count_and_every_run():
    table = markdown_report(RUNS)
    head = table.split("Every run")[0]
    rows = {line.split("|")[1].strip(): line for line in head.splitlines() if line.startswith("| ")}
    assert rows["method"].startswith("| method | runs | test AUC |")
    assert rows["e2urec"].startswith("| e2urec | 4 | **0.7500** [0.7000–0.7800] | **0.8000** | **1.00** | **0.005** "
                                     "[0.002–0.01] |")  # the only method: best everywhere
    assert "| **600** [500–700] (3 of 4 runs) |" in rows["e2urec"]
    assert rows["retrain"].startswith("| retrain | 2 | 0.7800 [0.7700–0.7900] |")
    assert "= 0.002." in table.split("Noise floor")[1]  # one floor, however many originals share it
    every = table.split("Every run")[1].splitlines()
    assert sum(line.startswith("| e2urec |") for line in every) == 4
    assert "| e2urec | 43 | 1 | 0.7600 |" in table and "| retrain | 43 | – | 0.7700 |" in table


def test_one_run_per_method_keeps_the_plain_table():
    table = markdown_report([{**r, "original_seed": 42, "seed": 0} for r in RECORDS])
    assert table == markdown_report(RECORDS)
    assert "[" not in table and "runs" not in table and "Every run" not in table


def test_the_plot_of_several_runs_is_a_png(tmp_path):
    plot_report(RUNS, tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def audited(base, auc, verdict):
    audit = {"attack": "lira_offline", "level": "user", "aggregation": "a user's score is the mean of their samples'",
             "calibration": "per sample, by the second-seed retrain", "tolerance": 0.05, "min_power": 0.05,
             "verdict": verdict, "models": {"unlearned": {"user": {"auc": auc, "auc_skipped": None}}}}
    return {**base, "audit": audit}


def test_the_audit_column_marks_the_method_nearest_the_retrains_audit_auc_and_lists_verdicts():
    records = [audited(RECORDS[0], 0.70, "not forgotten"), audited(RECORDS[1], 0.52, "forgotten"), RECORDS[2],
               audited(RECORDS[3], 0.30, "not forgotten"), audited(RECORDS[4], 0.55, "forgotten")]
    assert best_methods(records)["audit AUC"] == {"e2urec"}  # 0.55 is nearer 0.52 than neggrad's 0.30
    table = markdown_report(records)
    header = table.splitlines()[0]
    assert "| MIA AUC | audit AUC | wall s |" in header
    assert "| **0.550** |" in next(line for line in table.splitlines() if line.startswith("| e2urec |"))
    assert "Verdicts: original: not forgotten; retrain: forgotten; neggrad: not forgotten; e2urec: forgotten." in table
    assert "audit AUC" not in markdown_report(RECORDS).splitlines()[0]  # nothing audited: no column
