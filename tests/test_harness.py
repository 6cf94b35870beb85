
import logging
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.pipeline import Pipeline

from benchmark import cli, datasets, harness, load_dataset, markdown, run_method
from benchmark.datasets import DataError, Dataset
from benchmark.registry import METHODS, PROBE_PENALTIES
from results import ResultStore, render_report
from conftest import assert_same_weights

DIGITS_FLOORS = {"rf": 0.93, "knn": 0.95, "logreg": 0.93, "svm": 0.95}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("name", sorted(DIGITS_FLOORS))
def test_classical_methods_clear_their_digits_floor(digits, name):
    record = run_method(METHODS[name], digits, profile="quick", seed=0)
    assert record["test_accuracy"] >= DIGITS_FLOORS[name]
    assert record["train_accuracy"] >= record["test_accuracy"] - 0.02
    assert 0 < record["f1"] <= 1 and record["fit_time"] > 0
    assert 20 <= record["pca_components"] < 64
    assert record["n_train"] == 1437 and record["n_test"] == 360


def test_profile_train_limit_is_honoured(digits):
    record = run_method(METHODS["svm"], digits, profile="smoke", seed=0)
    assert record["n_train"] == 500 and record["n_test"] == 360


def test_a_record_names_the_family_of_its_images(digits):
    assert run_method(METHODS["knn"], digits, profile="smoke")["dataset_source"] == "digits"
    # a subset keeps its family; a dataset made by hand names none
    subset = datasets.subsample(digits, 600)
    assert run_method(METHODS["knn"], subset, profile="smoke")["dataset_source"] == "digits"
    assert run_method(METHODS["kmeans"], unlabelled(), profile="smoke")["dataset_source"] is None


def test_a_record_holds_only_fields_of_the_schema(digits, monkeypatch):
    monkeypatch.setattr(harness, "fitted_summary", lambda estimator: {"n_fits_saved": 3})
    with pytest.raises(ValueError, match=r"unknown \['n_fits_saved'\]"):
        run_method(METHODS["knn"], digits, profile="smoke")


def test_train_accuracy_is_measured_on_at_most_the_score_limit(digits, monkeypatch):
    monkeypatch.setattr(harness, "TRAIN_SCORE_LIMIT", 300)
    record = run_method(METHODS["knn"], digits, profile="quick", seed=0)
    assert record["n_train"] == 1437 and record["n_train_scored"] == 300
    assert 0.9 < record["train_accuracy"] <= 1
    monkeypatch.setattr(harness, "TRAIN_SCORE_LIMIT", 5000)
    whole = run_method(METHODS["knn"], digits, profile="quick", seed=0)
    assert whole["n_train_scored"] == 1437


def test_kmeans_is_scored_as_a_clustering(digits):
    record = run_method(METHODS["kmeans"], digits, profile="quick", seed=0)
    assert record["nmi_test"] >= 0.6 and record["acc_train"] >= 0.6
    assert record["n_clusters"] == 10 and sum(record["cluster_sizes_train"]) == 1437
    assert "test_accuracy" not in record


def test_clusters_are_counted_by_the_step_that_labels():
    # the features of the first step come from 20 clusters; the images fall into 5
    pipeline = Pipeline([("features", KMeans(n_clusters=20)), ("model", KMeans(n_clusters=5))])
    assert harness.requested_clusters(pipeline) == 5


def test_same_seed_gives_the_same_record(digits):
    first, again = (run_method(METHODS["rf"], digits, profile="quick", seed=5) for _ in range(2))
    assert first["test_accuracy"] == again["test_accuracy"]
    assert first["train_accuracy"] == again["train_accuracy"]


def unlabelled(n=40):
    images = np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return Dataset("photos", images, None)


def test_supervised_methods_refuse_unlabelled_images():
    with pytest.raises(DataError, match="rf is supervised and needs labels"):
        run_method(METHODS["rf"], unlabelled(), profile="smoke")


def test_clustering_runs_on_unlabelled_images():
    record = run_method(METHODS["kmeans"], unlabelled(), profile="smoke")
    assert record["n_clusters"] == 10 and len(record["cluster_sizes_train"]) == 10
    assert "nmi_train" not in record


# --------------------------------------------------------------------------- CLI


def run_cli(*args):
    return cli.main(list(args))


def test_list_names_every_method_dataset_and_profile(capsys):
    assert run_cli("list") == 0
    out = capsys.readouterr().out
    for name in [*METHODS, "digits", "cifar10", "smoke", "quick", "paper"]:
        assert f"  {name} " in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "svn"], "Unknown method 'svn'. Did you mean svm"),
        (["--methods", "svm", "--profile", "fast"], "Unknown profile 'fast'"),
        (["--methods", "svm", "--dataset", "mnist"], "neither a built-in dataset"),
    ],
)
def test_unknown_names_exit_2_and_list_the_valid_ones(tmp_path, capsys, args, message):
    assert run_cli("run", *args, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err
    if "method" in message:
        assert "Valid methods: rf, knn" in err


@pytest.mark.parametrize("args, message", [
    (["--image-size", "big"], "expected HxW"),
    (["--methods", ","], "expected comma-separated names"),
    (["--seed", "-1"], "an integer from 0 to 4294967295"),
    (["--seed", str(2**32)], "an integer from 0 to 4294967295"),
    (["--n-jobs", "0"], "a non-zero integer"),
    (["--limit", "0"], "a positive integer"),
])
def test_argparse_errors_exit_2_and_name_the_option(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        run_cli("run", "--methods", "svm", *args)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, problem, flag", [
    (["--limit", "5"], "A limit of 5 training images is too small", "--limit N"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}/none"], "pass a data_dir where it is unpacked",
     "--data-dir DIR, --dataset PATH"),
])
def test_a_data_error_names_the_flag_that_fixes_it(tmp_path, monkeypatch, capsys, args, problem,
                                                   flag):
    from benchmark.datasets import cifar10

    def offline(root):
        raise OSError("network unreachable")

    monkeypatch.setattr(cifar10, "_download_cifar10", offline)
    args = [arg.format(tmp=tmp_path) for arg in args]
    assert run_cli("run", "--methods", "knn", *args, "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert problem in err and err.rstrip().endswith(f"On the command line: {flag}.")


def test_a_method_named_twice_runs_once(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(harness, "run_method", lambda method, *a, **k: ran.append(method.name)
                        or fake_record(method, *a, **k))
    assert run_cli("run", "--methods", "knn, logreg,knn", "--profile", "smoke",
                   "--out", str(tmp_path)) == 0
    assert ran == ["knn", "logreg"]


@pytest.mark.parametrize("out", ["afile", "afile/run"])
def test_an_out_path_that_is_a_file_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys,
                                                                    out):
    monkeypatch.setattr(harness, "run_method", lambda *a, **k: pytest.fail("should not run"))
    (tmp_path / "afile").write_text("")
    assert run_cli("run", "--methods", "knn", "--out", str(tmp_path / out)) == 2
    assert f"{tmp_path / 'afile'} is a file; give a folder" in capsys.readouterr().err


def test_a_run_folder_inside_the_dataset_folder_is_refused_before_anything_runs(
        tmp_path, monkeypatch, capsys):
    from conftest import class_images, write_tree

    monkeypatch.setattr(harness, "run_method", lambda *a, **k: pytest.fail("should not run"))
    pets = write_tree(tmp_path / "pets", class_images(np.random.default_rng(0), 4)).resolve()
    monkeypatch.chdir(pets)
    assert run_cli("run", "--methods", "knn", "--dataset", ".", "--profile", "smoke",
                   "--cache-dir", str(tmp_path / "cache")) == 2
    err = capsys.readouterr().err
    assert f"Run folder runs/pets-smoke lies inside the dataset folder {pets}" in err
    assert "Pass --out DIR outside it" in err
    assert sorted(path.name for path in pets.iterdir()) == ["cat", "dog", "frog"]


def test_supervised_methods_refuse_a_single_class_before_anything_runs(tmp_path, capsys):
    np.savez(tmp_path / "one.npz", X=np.zeros((20, 4, 4), np.uint8), y=np.zeros(20, int))
    assert run_cli("run", "--methods", "kmeans,logreg", "--dataset", str(tmp_path / "one.npz"),
                   "--profile", "smoke", "--out", str(tmp_path / "run")) == 2
    assert "logreg is supervised and needs at least 2 classes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, why", [
    ('{"method": "kn', "(Unterminated string"),
    ("null", "(it holds null, not a JSON object of the key fields"),
    ("[1, 2, 3]", "(it holds [1, 2, 3], not a JSON object of the key fields"),
    ('{"hello": 1}', "(it lacks the key field(s) method, dataset, profile, seed)"),
])
def test_a_corrupt_record_is_named_and_exits_2(tmp_path, capsys, text, why):
    store = ResultStore(tmp_path)
    store.write({"method": "knn", "dataset": "digits", "profile": "smoke", "seed": 0})
    store.path("knn", "digits", "smoke", 0).write_text(text)
    for args in (["report", str(tmp_path)],
                 ["run", "--methods", "knn", "--profile", "smoke", "--out", str(tmp_path)]):
        assert run_cli(*args) == 2
        assert f"knn__digits__smoke__seed0.json is not a readable record {why}" in (
            capsys.readouterr().err)


def test_ctrl_c_while_loading_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "load_dataset", interrupted)
    assert run_cli("run", "--methods", "knn") == 130
    assert capsys.readouterr().err.strip() == "interrupted."


def fake_record(method, dataset, *, profile, seed=0, **kwargs):
    scores = {"nmi_test": 0.5} if method.table in ("clustering", "deepcluster") else {"test_accuracy": 0.5}
    return {"method": method.name, "dataset": dataset.name, "profile": profile, "seed": seed,
            "table": method.table, "reference": method.reference, "fit_time": 1.0, **scores}


def test_run_all_prints_a_row_per_registered_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(harness, "run_method", fake_record)
    assert run_cli("run", "--all", "--profile", "smoke", "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    for name in METHODS:
        assert f"| {name} " in out
    assert (tmp_path / "results.md").read_text() in out + "\n"
    assert len(ResultStore(tmp_path).records()) == len(METHODS)


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_every_method_builds_a_cloneable_estimator_under_every_profile(profile):
    from sklearn.base import clone

    for method in METHODS.values():
        estimator = method.estimator(profile, seed=0, n_classes=10)
        assert clone(estimator).get_params().keys() == estimator.get_params().keys()


@pytest.mark.slow
def test_run_all_smoke_trains_every_method(tmp_path, capsys):
    assert run_cli("run", "--all", "--profile", "smoke", "--out", str(tmp_path)) == 0
    assert len(ResultStore(tmp_path).records()) == len(METHODS)


def test_interrupted_run_resumes_with_the_unfinished_methods(tmp_path, monkeypatch, capsys):
    calls = []
    real_run_method = harness.run_method

    def interrupted_after_first(method, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(method.name)
        return real_run_method(method, *args, **kwargs)

    monkeypatch.setattr(harness, "run_method", interrupted_after_first)
    args = ("run", "--methods", "knn,logreg,kmeans", "--profile", "smoke", "--out", str(tmp_path))
    with pytest.raises(SystemExit) as stop:
        run_cli(*args)
    assert stop.value.code == 130 and "run the same command again" in capsys.readouterr().err
    assert [r["method"] for r in ResultStore(tmp_path).records()] == ["knn"]

    resumed = []

    def counting(method, *args, **kwargs):
        resumed.append(method.name)
        return real_run_method(method, *args, **kwargs)

    monkeypatch.setattr(harness, "run_method", counting)
    assert run_cli(*args) == 0
    assert resumed == ["logreg", "kmeans"]
    assert run_cli(*args, "--force") == 0
    assert resumed[2:] == ["knn", "logreg", "kmeans"]


def test_a_rerun_on_other_images_of_the_same_name_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "data.npz", X=rng.integers(0, 256, (60, 8, 8), np.uint8),
                 y=np.arange(60) % 3)
    run = ("run", "--methods", "knn", "--profile", "smoke", "--out", str(tmp_path / "runs"),
           "--cache-dir", str(tmp_path / "cache"), "--dataset")
    assert run_cli(*run, str(tmp_path / "first" / "data.npz")) == 0
    first = ResultStore(tmp_path / "runs").read("knn", "data", "smoke", 0)
    assert run_cli(*run, str(tmp_path / "first" / "data.npz")) == 0  # resumes: nothing to do
    second = str(tmp_path / "second" / "data.npz")
    # resuming, recomputing, or adding a row: each would mix two datasets in one report
    for extra in ([], ["--force"], ["--methods", "logreg"]):
        assert run_cli(*run, second, *extra) == 2
        assert "another dataset also named 'data'" in capsys.readouterr().err
    assert [r["method"] for r in ResultStore(tmp_path / "runs").records()] == ["knn"]
    assert ResultStore(tmp_path / "runs").read("knn", "data", "smoke", 0) == first
    assert run_cli(*run, second, "--out", str(tmp_path / "other")) == 0
    other = ResultStore(tmp_path / "other").read("knn", "data", "smoke", 0)
    assert other["dataset_digest"] != first["dataset_digest"]


def test_a_failing_method_keeps_the_others_and_exits_1(tmp_path, monkeypatch, capsys):
    real_run_method = harness.run_method

    def logreg_breaks(method, *args, **kwargs):
        if method.name == "logreg":
            raise RuntimeError("solver exploded")
        return real_run_method(method, *args, **kwargs)

    monkeypatch.setattr(harness, "run_method", logreg_breaks)
    assert run_cli("run", "--methods", "knn,logreg", "--profile", "smoke", "--out", str(tmp_path)) == 1
    assert "logreg (seed 0) failed: RuntimeError: solver exploded" in capsys.readouterr().err
    assert ResultStore(tmp_path).has("knn", "digits", "smoke", 0)
    assert not ResultStore(tmp_path).has("logreg", "digits", "smoke", 0)


def test_run_all_on_unlabelled_images_runs_only_clustering(tmp_path, monkeypatch, capsys):
    from conftest import write_tree

    real_run_method = harness.run_method
    monkeypatch.setattr(harness, "run_method", lambda method, *args, **kwargs: (
        real_run_method(method, *args, **kwargs) if method.name in ("kmeans", "svm")
        else fake_record(method, *args, **kwargs)))

    rng = np.random.default_rng(0)
    photos = write_tree(tmp_path / "photos", {f"{i}.png": rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
                                              for i in range(30)})
    out = tmp_path / "run"
    code = run_cli("run", "--all", "--dataset", str(photos), "--profile", "smoke", "--out", str(out),
                   "--cache-dir", str(tmp_path / "cache"))
    assert code == 0
    clustering = {name for name, method in METHODS.items() if not method.supervised}
    assert {r["method"] for r in ResultStore(out).records()} == clustering
    assert "kmeans" in clustering and "uic-fast-rgb" in clustering
    # named explicitly, a supervised method is refused before anything runs
    assert run_cli("run", "--methods", "kmeans,svm", "--dataset", str(photos), "--out",
                   str(tmp_path / "refused"), "--cache-dir", str(tmp_path / "cache")) == 2
    assert "svm is supervised and needs labels" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_report_renders_the_study_figure_beside_ours(tmp_path, capsys):
    store = ResultStore(tmp_path)
    for seed, accuracy in enumerate([0.40, 0.42]):
        store.write({"method": "logreg", "dataset": "cifar10", "profile": "quick", "seed": seed,
                     "table": "classical", "reference": "logreg", "test_accuracy": accuracy,
                     "train_accuracy": 0.5, "precision": 0.4, "recall": 0.4, "f1": 0.4,
                     "fit_time": 12.0})
    assert run_cli("report", str(tmp_path)) == 0
    table = (tmp_path / "results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| logreg"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:4] == ["logreg", "cifar10", "quick", "2"]
    # our mean and spread over two seeds, the study's figure
    assert "0.4100 ± 0.0141" in cells and "0.3930" in cells and "12.0 ± 0.0" in cells
    assert "study test acc" in table
    # the study's figures are on CIFAR-10: a report on other data shows none
    store.write({"method": "logreg", "dataset": "digits", "profile": "quick", "seed": 0,
                 "table": "classical", "reference": "logreg", "test_accuracy": 0.95})
    digits = render_report(store.to_frame().query("dataset == 'digits'"))
    assert "study" not in digits and "0.3930" not in digits


def test_report_opens_with_the_folder_notes_and_shows_a_perfect_score_in_full(tmp_path, capsys):
    ResultStore(tmp_path).write({"method": "knn", "dataset": "digits", "profile": "quick",
                                 "seed": 0, "table": "classical", "reference": None,
                                 "test_accuracy": 0.98, "train_accuracy": 1.0, "n_train": 1437})
    (tmp_path / "notes.md").write_text("Made with `run --methods knn`.\n")
    assert run_cli("report", str(tmp_path)) == 0
    report = (tmp_path / "results.md").read_text()
    assert report.startswith("Made with `run --methods knn`.\n\n# ")
    row = next(line for line in report.splitlines() if line.startswith("| knn"))
    assert "| 1.0000 " in row and "| 1437 " in row
    assert run_cli("report", str(tmp_path)) == 0  # rewritten from the records, notes once
    assert (tmp_path / "results.md").read_text() == report


def test_report_of_a_folder_without_records_exits_2(tmp_path, capsys):
    assert run_cli("report", str(tmp_path)) == 2
    assert "holds no records folder" in capsys.readouterr().err


def test_report_of_empty_frame():
    assert "No finished records" in render_report(ResultStore("/nonexistent").to_frame())


def test_tuned_rows_run_through_the_cli_and_record_their_search(tmp_path, capsys):
    assert run_cli("run", "--methods", "svm-ga,knn-grid", "--profile", "smoke",
                   "--out", str(tmp_path)) == 0
    store = ResultStore(tmp_path)
    ga, grid = (store.read(name, "digits", "smoke", 0) for name in ("svm-ga", "knn-grid"))
    assert grid["n_candidates"] == 4 and grid["n_fits"] == 8
    assert set(grid["best_params"]) == {"n_neighbors", "weights"}
    assert ga["n_fits"] == 2 * ga["n_candidates"] and ga["cv_score"] > 0.9
    assert ga["test_accuracy"] >= 0.9 and grid["test_accuracy"] >= 0.95
    report = (tmp_path / "results.md").read_text()
    assert f"- knn-grid (digits): `{grid['best_params']}`" in report


def test_a_killed_training_resumes_from_its_last_checkpoint(tmp_path, monkeypatch, caplog):
    from estimators.cnn import TorchCNNClassifier

    real_run_epoch = TorchCNNClassifier.run_epoch
    epochs_run = []

    def killed_in_third_epoch(self, data, targets, epoch):
        epochs_run.append(epoch)
        if epoch == 2 and epochs_run.count(2) == 1:
            raise KeyboardInterrupt  # as if killed mid-epoch
        return real_run_epoch(self, data, targets, epoch)

    monkeypatch.setattr(TorchCNNClassifier, "run_epoch", killed_in_third_epoch)
    monkeypatch.setitem(METHODS["cnn-fast"].profiles, "smoke",
                        {**METHODS["cnn-fast"].profiles["smoke"], "epochs": 4})
    args = ("run", "--methods", "cnn-fast", "--profile", "smoke", "--out", str(tmp_path))
    with pytest.raises(SystemExit):
        run_cli(*args)
    assert epochs_run == [0, 1, 2]
    assert list((tmp_path / "checkpoints").rglob("checkpoint.pt"))
    with caplog.at_level(logging.INFO):
        assert run_cli(*args) == 0
    assert epochs_run == [0, 1, 2, 2, 3]
    record = ResultStore(tmp_path).read("cnn-fast", "digits", "smoke", 0)
    assert record["n_train"] == 256
    assert not (tmp_path / "checkpoints").exists()
    # the epochs before the kill count in the fit time, and the resume is said, in a log too
    assert record["resumed_epochs"] == 2
    assert record["fit_time"] >= sum(epoch["seconds"] for epoch in record["history"])
    assert "TorchCNNClassifier: resumed after epoch 2 of 4" in caplog.text


def test_report_draws_cluster_sizes_and_quality_per_epoch(tmp_path, capsys):
    history = [{"epoch": e, "sizes_before": [5, 0, 3], "sizes_after": [3, 2, 3],
                "eval_nmi": 0.1 * e, "loss": 1.0} for e in range(1, 4)]
    ResultStore(tmp_path).write({"method": "uic-fast-rgb", "dataset": "digits", "profile": "quick",
                                 "seed": 0, "table": "clustering", "reference": None,
                                 "nmi_test": 0.5, "history": history})
    assert run_cli("report", str(tmp_path)) == 0
    report = (tmp_path / "results.md").read_text()
    images = [line for line in report.splitlines() if line.startswith("![")]
    assert len(images) == 2
    for line in images:
        path = tmp_path / line[line.index("(") + 1 : -1]
        assert path.read_bytes().startswith(b"\x89PNG")


def run_together_and_alone(tmp_path, methods, alone, *options, dataset="digits"):
    """Run the rows `methods` in one smoke run (in ``tmp_path / "shared"``), then the row
    `alone` in a run of its own; return the first run's store and the second's record."""
    for names, folder in ((methods, "shared"), (alone, "alone")):
        assert run_cli("run", "--methods", names, "--profile", "smoke", *options,
                       "--out", str(tmp_path / folder)) == 0
    standalone = ResultStore(tmp_path / "alone").read(alone, dataset, "smoke", 0)
    return ResultStore(tmp_path / "shared"), standalone


def test_a_probe_reuses_the_backbone_its_row_just_trained_with_the_same_result(tmp_path):
    # 200 images, fewer than the smoke profile's 256: the probe's network, limited by
    # max_samples, and the uic row's, limited by train_limit, both learn from all of them.
    store, trained = run_together_and_alone(
        tmp_path, "uic-fast-rgb,probe-fast-rgb-stage2", "probe-fast-rgb-stage2",
        "--limit", "200", dataset="digits-n200")
    reused = store.read("probe-fast-rgb-stage2", "digits-n200", "smoke", 0)
    assert reused["backbone_reused"] and "backbone_reused" not in trained
    assert reused["test_accuracy"] == trained["test_accuracy"]
    assert reused["train_accuracy"] == trained["train_accuracy"]


def test_a_probe_trains_on_every_image_over_a_network_that_learned_from_fewer(tmp_path):
    methods = "simclr-fast,probe-simclr-fast,learned-logreg"
    assert run_cli("run", "--methods", methods, "--profile", "smoke", "--out", str(tmp_path)) == 0
    store = ResultStore(tmp_path)
    encoder, probe, learned = (store.read(name, "digits", "smoke", 0)
                               for name in methods.split(","))
    assert encoder["n_train"] == 256 and probe["n_train"] == learned["n_train"] > 1000
    # the network learned from 256 of the images: the probe trains it, the next row borrows it
    assert "backbone_reused" not in probe and learned["backbone_reused"]
    assert "max_samples=256" in probe["estimator"]
    # the strength of the probe's penalty is chosen by cross-validation, and recorded
    assert probe["best_params"]["C"] in PROBE_PENALTIES["C"] and probe["n_candidates"] == 5


def test_rows_reading_an_encoder_borrow_it_and_score_like_standalone(tmp_path):
    methods = "simclr-fast,learned-svm,learned-logreg,simclr-fast-kmeans,scan-fast"
    store, standalone = run_together_and_alone(tmp_path, methods, "simclr-fast-kmeans")
    encoder, svm, logreg, kmeans, scan = (store.read(name, "digits", "smoke", 0)
                                          for name in methods.split(","))
    # the encoder's features are scored with labels it never saw
    # (one epoch on 256 images; chance is 0.1)
    assert 0.5 <= encoder["knn_accuracy"] <= 1 and 0.25 <= encoder["neighbour_accuracy"] <= 1
    # the SVM trains on the encoder's images and borrows it; logistic regression trains on
    # every image, over a network that learned from the same number of them
    assert svm["backbone_reused"] and svm["n_train"] == 256
    assert "backbone_reused" not in logreg and logreg["n_train"] > 1000
    # one epoch on 256 images, labels never seen: the features still separate digits
    assert logreg["test_accuracy"] >= 0.7 and svm["test_accuracy"] >= 0.7
    assert kmeans["backbone_reused"] and "backbone_reused" not in standalone
    # (one smoke epoch on 256 images: 0.28 to 0.33 by the thread count; chance about 0.03)
    assert kmeans["nmi_test"] == standalone["nmi_test"] > 0.2
    # SCAN reads an encoder the run trained before; one smoke epoch of each clusters above
    # chance (about 0.03 for 10 random clusters of the 360 test images)
    assert scan["backbone_reused"] and scan["nmi_test"] > 0.1
    report = (tmp_path / "shared" / "results.md").read_text()
    for heading in ("## Classical models on features learned without labels",
                    "## Self-supervised encoders"):
        assert heading in report


def test_self_labelling_goes_on_from_the_scan_row_and_scores_like_standalone(tmp_path):
    methods = "simclr-fast,scan-fast,scan-fast-selflabel"
    store, standalone = run_together_and_alone(tmp_path, methods, "scan-fast-selflabel")
    scan, continued = (store.read(name, "digits", "smoke", 0) for name in methods.split(",")[1:])
    assert continued["backbone_reused"] and "backbone_reused" not in standalone
    # the scan row's epoch, with its time, counts in the row that went on from it
    assert continued["resumed_epochs"] == len(scan["history"]) == 1
    assert continued["fit_time"] >= scan["history"][0]["seconds"]
    assert [epoch["step"] for epoch in continued["history"]] == ["scan", "self-label"]
    for field in ("nmi_test", "nmi_train", "cluster_sizes_test"):
        assert continued[field] == standalone[field]


def test_report_of_a_run_fills_every_cell_of_every_table(tmp_path):
    methods = ("rf,svm-ga,cnn-fast,uic-fast-rgb,probe-fast-rgb-stage2,learned-svm,"
               "deepcluster-vgg16bn-rgb,kmeans")
    assert run_cli("run", "--methods", methods, "--profile", "smoke", "--out", str(tmp_path)) == 0
    report = (tmp_path / "results.md").read_text()
    rows = [line for line in report.splitlines()
            if line.startswith("| ") and not line.startswith("|--")]
    tables = [line for line in report.splitlines() if line.startswith("## ")]
    assert len(tables) == 7  # classical, learned, cnn, clustering, deepcluster, probe; plots
    assert len(rows) == len(methods.split(",")) + len(tables) - 1  # one header per table
    for row in rows:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert all(cells), row


@pytest.mark.parametrize("script, args, message", [
    ("throughput", ["--archs", "fast,alexnett"], "Unknown architecture 'alexnett'. Did you mean alexnet"),
    ("search_benchmark", ["--models", "svm,knnn"], "Unknown model 'knnn'. Did you mean knn"),
    ("search_benchmark", ["--dataset", "/nowhere"], "neither a built-in dataset"),
    ("peer_search", ["--spaces", "knn,svn"], "unknown spaces ['svn']"),
    ("peer_training", ["--rows", "cnn-fast", "--epochs", "1,2"], "one number per row"),
])
def test_benchmark_scripts_refuse_unknown_names_and_data(tmp_path, capsys, script, args, message):
    import importlib

    main = importlib.import_module(f"benchmark.{script}").main
    with pytest.raises(SystemExit) as stop:
        main([*args, "--out", str(tmp_path / "report.md")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_peer_search_runs_both_tuners_on_the_same_space(tmp_path):
    pytest.importorskip("sklearn_genetic")
    from benchmark import peer_search

    out = tmp_path / "report.md"
    peer_search.main(["--spaces", "svm-continuous", "--seeds", "0", "--population", "3",
                      "--generations", "1", "--out", str(out)])
    runs = [line for line in out.read_text().splitlines() if line.startswith("| svm-continuous")]
    assert {line.split("|")[2].strip() for line in runs} == {"toolkit", "sklearn-genetic-opt"}
    # every test score a good SVM's: both searched C and gamma and refitted their best
    assert all(float(line.split("|")[5]) > 0.9 for line in runs[2:])


def test_skorch_twin_starts_from_the_network_the_estimator_trains(digits):
    pytest.importorskip("skorch")
    from benchmark.peer_training import skorch_twin, toolkit_estimator

    X, y = digits.X_train[:300], digits.y_train[:300]
    estimator = toolkit_estimator("cnn-fast", "smoke", epochs=1, seed=0)
    estimator.set_params(module__norm_bias_lr_scale=64)
    twin = skorch_twin(estimator, X).initialize()
    start = clone(estimator).initialize_for(X, n_outputs=10)
    assert_same_weights(twin.module_.network.state_dict(), start.module_.state_dict())
    # the batch norms' biases learn 64 times as fast in both loops (before the schedule's
    # factor, which the estimator has applied and skorch applies from its first step)
    lrs = [sorted(group[key] for group in optimizer.param_groups for _ in group["params"])
           for optimizer, key in ((twin.optimizer_, "lr"), (start.optimizer_, "initial_lr"))]
    assert lrs[0] == lrs[1] and lrs[0][-1] == 64 * lrs[0][0]
    twin.fit(np.moveaxis(X, -1, 1).astype(np.float32) / 255, y)
    assert len(twin.history) == 1


def test_seeds_give_one_record_each_a_spread_and_resume_seed_by_seed(tmp_path, monkeypatch):
    real_run_method = harness.run_method
    ran = []

    def killed_during_seed_1(method, dataset, **kwargs):
        ran.append((method.name, kwargs["seed"]))
        if ran == [("kmeans", 0), ("uic-fast-rgb", 0), ("kmeans", 1), ("uic-fast-rgb", 1)]:
            raise KeyboardInterrupt
        return real_run_method(method, dataset, **kwargs)

    monkeypatch.setattr(harness, "run_method", killed_during_seed_1)
    args = ("run", "--methods", "kmeans,uic-fast-rgb", "--seeds", "0,1,2", "--profile", "smoke",
            "--out", str(tmp_path))
    with pytest.raises(SystemExit):
        run_cli(*args)
    store = ResultStore(tmp_path)
    assert len(store.records()) == 3
    ran.clear()
    assert run_cli(*args) == 0
    assert ran == [("uic-fast-rgb", 1), ("kmeans", 2), ("uic-fast-rgb", 2)]
    records = store.records()
    assert sorted((r["method"], r["seed"]) for r in records) == [
        (name, seed) for name in ("kmeans", "uic-fast-rgb") for seed in (0, 1, 2)]
    nmi = {seed: r["nmi_test"] for r in records if r["method"] == "kmeans" for seed in [r["seed"]]}
    assert len(set(nmi.values())) > 1  # the seeds differ, so there is a spread to show
    report = (tmp_path / "results.md").read_text()
    mean, std = np.mean(list(nmi.values())), np.std(list(nmi.values()), ddof=1)
    kmeans_line = next(line for line in report.splitlines() if line.startswith("| kmeans "))
    assert f"{mean:.4f} ± {std:.4f}" in kmeans_line
    assert kmeans_line.split("|")[4].strip() == "3"


def test_seed_and_seeds_are_exclusive_and_seeds_are_checked(capsys):
    with pytest.raises(SystemExit):
        run_cli("run", "--methods", "knn", "--seed", "1", "--seeds", "0,1")
    with pytest.raises(SystemExit):
        run_cli("run", "--methods", "knn", "--seeds", "0,-1")
    assert "expected an integer from 0" in capsys.readouterr().err


def test_a_record_names_the_machine_and_the_commit(digits):
    record = run_method(METHODS["knn"], digits, profile="smoke", seed=0)
    environment = record["environment"]
    assert environment["cpu"] and environment["cpus"] >= 1
    assert environment["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "VSX", "ZVECTOR", "SVE256"}
    assert isinstance(environment["cpu_bfloat16"], bool)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if commit:  # a git checkout
        assert environment["commit"].split("+")[0] == commit


def test_listing_methods_loads_neither_torch_nor_scikit_learn():
    code = ("import sys; from benchmark.cli import main; main(['list']); "
            "print(sorted({'torch', 'sklearn'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "uic-fast-rgb" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_ablation_runs_each_variant_of_a_row_and_scores_the_test_images_every_epoch(tmp_path,
                                                                                     capsys):
    from benchmark import ablation

    out = tmp_path / "ablation"
    assert ablation.main(["--profile", "smoke", "--variants", "study,sinkhorn+views",
                          "--out", str(out)]) == 0
    store = ResultStore(out)
    study = store.read("uic-fast-sobel+study", "digits", "smoke", 0)
    guarded = store.read("uic-fast-sobel+sinkhorn+views", "digits", "smoke", 0)
    # the smoke row shuffles already: the study's variant is the row as it is
    assert "balanced_sampler" not in study["estimator"] and "assignment" not in study["estimator"]
    assert "assignment='sinkhorn'" in guarded["estimator"]
    assert "n_views=4" in guarded["estimator"]
    # the test images are scored after every epoch, and only scored
    assert "eval_nmi" in guarded["history"][-1] and guarded["n_train"] == 256
    assert "## Clustering without labels" in (out / "results.md").read_text()
    capsys.readouterr()
    assert ablation.main(["--variants", "sinkhorn+views+swav", "--out", str(out)]) == 2
    assert "Unknown guard 'swav'" in capsys.readouterr().err


@pytest.mark.parametrize("loads, verdict", [
    ((0.4, 1.6), "no more than the machine's CPUs"),
    ((0.4, 2.5), "other work shared the machine, timings are inflated"),
])
def test_load_sentence_says_whether_other_work_shared_the_machine(monkeypatch, loads, verdict):
    monkeypatch.setattr(markdown.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(markdown.os, "getloadavg", lambda: (loads[1], 0.0, 0.0))
    sentence = markdown.load_sentence(loads[0])
    assert sentence == (f"Load average (1 min) {loads[0]} at the start and {loads[1]} at the end, "
                        f"for 2 CPUs: {verdict}.")
