"""Tests of the results store and of the tables rendered from its records."""

import numpy as np
import pandas as pd
import pytest

from results import ResultStore, atomic_write, render_report
from results.tables import welch_p_value


# --------------------------------------------------------------------------- store


def test_atomic_write_replaces_the_file_only_when_the_block_ends(tmp_path):
    target = tmp_path / "assignments.csv"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "before" and list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as file:
        file.write("after")
    assert target.read_text() == "after" and list(tmp_path.iterdir()) == [target]


def test_store_writes_whole_records_or_nothing(tmp_path):
    store = ResultStore(tmp_path)
    key = {"method": "svm", "dataset": "digits", "profile": "quick", "seed": 0}
    store.write({**key, "test_accuracy": np.float64(0.5), "sizes": np.arange(3)})
    assert store.read("svm", "digits", "quick", 0)["sizes"] == [0, 1, 2]
    with pytest.raises(TypeError, match="Cannot store"):
        store.write({**key, "seed": 1, "estimator": object()})
    assert not store.has("svm", "digits", "quick", 1)
    assert [p.name for p in store.records_dir.iterdir()] == [store.path(**key).name]
    with pytest.raises(ValueError, match="key fields"):
        store.write({"method": "svm"})


# --------------------------------------------------------------------------- tables


def test_report_names_the_machines_the_records_were_measured_on(tmp_path):
    store = ResultStore(tmp_path)
    gpu = {"cpu": "AMD EPYC 9654", "cpus": 16, "torch_threads": 16, "cpu_capability": "AVX512",
           "cpu_bfloat16": True, "accelerator": "NVIDIA H200", "python": "3.12.3",
           "torch": "2.11.0", "scikit-learn": "1.9.1",
           "commit": "0123456789abcdef0123456789abcdef01234567"}
    cpu = {**gpu, "cpu": "Intel Xeon", "cpus": 2, "torch_threads": 2, "cpu_bfloat16": False,
           "accelerator": None, "torch": "2.14.1",
           "commit": "fedcba9876543210fedcba9876543210fedcba98+changes"}
    old = {"python": "3.11.7", "cpus": 2, "accelerator": None}  # before machines were named
    for method, environment in [("knn", cpu), ("svm", gpu), ("rf", gpu), ("logreg", old)]:
        store.write({"method": method, "dataset": "digits", "profile": "quick", "seed": 0,
                     "table": "classical", "reference": None, "test_accuracy": 0.9,
                     "environment": environment})
    report = render_report(store.to_frame())
    assert ("- AMD EPYC 9654 (AVX512, native bfloat16), 16 CPUs (16 torch threads), NVIDIA H200, "
            "Python 3.12.3, torch 2.11.0, scikit-learn 1.9.1, commit 0123456789ab: 2 records"
            ) in report
    assert ("- Intel Xeon (AVX512, no native bfloat16), 2 CPUs (2 torch threads), no GPU, "
            "Python 3.12.3, torch 2.14.1, scikit-learn 1.9.1, commit fedcba987654+changes: "
            "1 record") in report
    assert ("- CPU model not recorded, 2 CPUs, no GPU, Python 3.11.7, commit not recorded: "
            "1 record") in report


def _record(method, seed, nmi, table="clustering", dataset="digits"):
    return {"method": method, "dataset": dataset, "profile": "quick", "seed": seed,
            "table": table, "reference": None, "nmi_test": nmi}


def test_report_marks_the_best_row_and_those_the_seeds_cannot_tell_from_it():
    frame = pd.DataFrame.from_records([
        *(_record("a", seed, nmi) for seed, nmi in enumerate([0.80, 0.82, 0.84])),
        *(_record("b", seed, nmi) for seed, nmi in enumerate([0.70, 0.90, 0.80])),
        *(_record("c", seed, nmi) for seed, nmi in enumerate([0.10, 0.11, 0.12])),
        _record("d", 0, 0.5),
    ])
    lines = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
             for line in render_report(frame).splitlines() if line.startswith("| ")}
    assert lines["a"][4] == "best" and lines["a"][5] == "0.8200 ± 0.0200"
    # b: the same mean as a's minus 0.02, but spread wide
    assert lines["b"][4].startswith("tied (p=")
    assert lines["c"][4].startswith("below (p=")
    assert lines["d"][4] == "untested" and lines["d"][5] == "0.5000"


def test_welch_p_value_matches_a_hand_computation():
    # t = (2 - 5) / sqrt(1/3 + 1/3) = -3.674, with 4 degrees of freedom: p = 0.02131
    assert welch_p_value([1, 2, 3], [4, 5, 6]) == pytest.approx(0.02131, abs=1e-5)
    assert welch_p_value([1, 1], [1, 1]) == 1.0
    assert welch_p_value([1, 1], [2, 2]) == 0.0


def _study_columns_shown(dataset, **fields):
    frame = pd.DataFrame.from_records([
        {"method": "logreg", "dataset": dataset, "profile": "quick", "seed": 0,
         "table": "classical", "reference": "logreg", "test_accuracy": 0.4, **fields}])
    return "study test acc" in render_report(frame)


def test_tables_find_cifar10_by_the_source_a_record_names_else_by_its_name():
    assert _study_columns_shown("my-copy", dataset_source="cifar10")
    assert not _study_columns_shown("cifar10-mine", dataset_source="other")
    # records made before dataset_source was written: the name rule
    for name, shown in [("cifar10", True), ("cifar10-jpeg-n5000", True), ("digits", False)]:
        assert _study_columns_shown(name) == shown
        assert _study_columns_shown(name, dataset_source=None) == shown


# --------------------------------------------------------------------------- schema


def test_every_field_the_tables_read_is_in_the_schema():
    from results.schema import FIELDS
    from results.tables import COUNT_FIELDS, RANKED_BY, TABLES, TRAINING

    read = {field for _, ours, study in TABLES.values() for _, field in ours + study}
    read |= {field for _, field in TRAINING} | set(RANKED_BY.values()) | COUNT_FIELDS
    assert read <= set(FIELDS)


def test_a_record_with_a_field_outside_the_schema_is_refused():
    from results.schema import checked_record

    record = {"method": "svm", "dataset": "digits", "profile": "quick", "seed": 0}
    assert checked_record({**record, "test_accuracy": 0.9}) == {**record, "test_accuracy": 0.9}
    with pytest.raises(ValueError, match=r"missing \['seed'\], unknown \['n_fits_saved'\]"):
        checked_record({**{k: v for k, v in record.items() if k != "seed"}, "n_fits_saved": 1})


def test_the_name_rule_knows_cifar10_its_copies_and_their_subsets():
    from results.schema import source_by_name

    for name in ("cifar10", "cifar10-jpeg", "cifar10_png", "cifar10-n5000"):
        assert source_by_name(name) == "cifar10"
    for name in ("digits", "cifar100", "my-cifar10"):
        assert source_by_name(name) == "other"
