import pytest
from sklearn.base import BaseEstimator

from benchmark import cli, harness
from benchmark.registry import (
    METHODS,
    PROFILES,
    Method,
    get_methods,
    in_borrowing_order,
)
from benchmark.methods.selfsupervised import ENCODER_ARCHITECTURES
from estimators.training import BaseTorchEstimator, training_params
from results.store import ResultStore


def parts(estimator):
    """`estimator` and every estimator reachable through its parameters."""
    nested = estimator.get_params(deep=True).values()
    return [estimator, *(value for value in nested if isinstance(value, BaseEstimator))]


def check_search_space(search):
    """Every name a search tries must be a parameter of the estimator it tunes."""
    space = getattr(search, "param_grid", getattr(search, "param_space", None))
    if space is None:
        return
    for grid in space if isinstance(space, list) else [space]:
        unknown = sorted(set(grid) - set(search.estimator.get_params()))
        if unknown:
            raise ValueError(f"{type(search.estimator).__name__} has no parameters {unknown}.")


def validate(estimator):
    """Check every parameter of `estimator` and of the estimators inside it, without fitting.

    Torch estimators check their routed ``module__``, ``optimizer__``, ``augment__`` and
    ``criterion__`` names too; scikit-learn's check the parameters they declare.
    """
    for part in parts(estimator):
        if isinstance(part, BaseTorchEstimator):
            part._check_params()
        elif hasattr(part, "_parameter_constraints"):
            part._validate_params()
        check_search_space(part)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_row_builds_valid_parameters_under_every_profile(profile):
    for method in METHODS.values():
        estimator = method.estimator(profile, seed=0, n_jobs=1, n_classes=10)
        validate(estimator)
        # built, not trained
        assert not any(hasattr(part, "module_") for part in parts(estimator))


@pytest.mark.parametrize(
    "row, built, setting, value",
    [
        ("cnn-resnet18", "cnn-resnet18", "momentun", 0.9),
        # a misspelt routed name in a network's settings fails in the rows that borrow it too
        ("simclr-fast", "learned-svm", "module__dropuot", 0.5),
        ("deepcluster-fast-rgb", "deepcluster-fast-rgb", "lr_schedule", "stpe"),
        ("kmeans", "kmeans", "n_inti", 10),
    ],
)
def test_a_misspelt_paper_setting_fails_validation_naming_it(monkeypatch, row, built, setting,
                                                             value):
    monkeypatch.setitem(METHODS[row].profiles, "paper",
                        {**METHODS[row].profiles["paper"], setting: value})
    with pytest.raises((ValueError, TypeError), match=setting):
        validate(METHODS[built].estimator("paper", seed=0, n_jobs=1, n_classes=10))


def test_a_misspelt_name_in_a_search_space_fails_validation(monkeypatch):
    monkeypatch.setitem(METHODS["svm-grid"].search_space, "paper", {"C": [1], "gama": [1e-3]})
    with pytest.raises(ValueError, match="gama"):
        validate(METHODS["svm-grid"].estimator("paper", seed=0, n_jobs=1, n_classes=10))


def test_a_row_writes_out_every_profile():
    with pytest.raises(ValueError, match=r"misses profiles \['quick', 'gpu', 'paper'\]"):
        Method("svm-2", "an SVM", "sklearn.svm:SVC", "classical", {"smoke": {}})


def backbone(estimator):
    (network,) = (value for name, value in estimator.get_params().items()
                  if name.endswith("backbone"))
    return network


@pytest.mark.parametrize("profile", list(PROFILES))
def test_a_row_reads_the_network_its_lender_trains(profile):
    encoder = METHODS["simclr-fast"]
    lender = encoder.estimator(profile, seed=3).get_params()
    limit = encoder.train_limit(profile)
    # the SVM trains on at most as many images as the encoder: the very same network, or
    # one that learns from the SVM's images where the encoder would learn from more
    svm = METHODS["learned-svm"]
    assert svm.borrows == "simclr-fast"
    assert backbone(svm.estimator(profile, seed=3)).get_params() == lender
    # logistic regression trains on every image: the network draws the encoder row's number
    logreg = METHODS["learned-logreg"].estimator(profile, seed=3)
    drawn = lender if limit is None else {**lender, "max_samples": limit}
    assert backbone(logreg).get_params() == drawn


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("arch", ENCODER_ARCHITECTURES)
def test_a_self_labelling_row_begins_with_its_scan_rows_whole_fit(profile, arch):
    # so that a run goes on from the scan row's fit (harness.BackboneCache.continued)
    scan, self_labelling = (
        method.estimator(profile, n_classes=10, n_train=1437)
        for method in get_methods([f"scan-{arch}", f"scan-{arch}-selflabel"])
    )
    assert training_params(self_labelling.first_step()) == training_params(scan)


def test_the_registry_lists_each_row_after_the_row_it_borrows_from():
    rows = list(METHODS.values())
    assert in_borrowing_order(rows) == rows
    for method in rows:
        if method.borrows is not None:
            assert list(METHODS).index(method.borrows) < list(METHODS).index(method.name)


def names(methods):
    return [method.name for method in methods]


def test_borrowing_order_puts_a_row_right_after_its_lender_or_beside_its_siblings():
    chosen = get_methods(["learned-svm", "kmeans", "simclr-fast", "scan-fast"])
    assert names(in_borrowing_order(chosen)) == ["kmeans", "simclr-fast", "learned-svm",
                                                 "scan-fast"]
    # without the lender, the rows that read its network run one after the other
    chosen = get_methods(["learned-logreg", "kmeans", "probe-simclr-fast"])
    assert names(in_borrowing_order(chosen)) == ["learned-logreg", "probe-simclr-fast", "kmeans"]


def test_a_run_fits_each_row_after_the_row_it_borrows_from(tmp_path, monkeypatch, capsys):
    fitted = []

    def fake_record(method, dataset, *, profile, seed=0, **kwargs):
        fitted.append((method.name, seed))
        scores = {"nmi_test": 0.5} if not method.supervised else {"test_accuracy": 0.5}
        return {"method": method.name, "dataset": dataset.name, "profile": profile,
                "seed": seed, "table": method.table, "reference": method.reference,
                "fit_time": 1.0, **scores}

    monkeypatch.setattr(harness, "run_method", fake_record)
    assert cli.main(["run", "--methods", "learned-svm,kmeans,simclr-fast", "--seeds", "0,1",
                     "--profile", "smoke", "--out", str(tmp_path)]) == 0
    order = ["kmeans", "simclr-fast", "learned-svm"]
    assert fitted == [(name, seed) for seed in (0, 1) for name in order]
    assert len(ResultStore(tmp_path).records()) == 6


def test_list_shows_what_a_row_runs_under_a_profile(capsys):
    assert cli.main(["list", "--show", "learned-svm", "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("learned-svm under profile quick")
    for line in ("train_limit: 10000", "borrows: simclr-fast",
                 "backbone: TorchContrastiveEncoder", "module__widths: (64, 128, 256)",
                 "epochs: 100", "model: SVC", "C: 1.0"):
        assert line in out
    assert cli.main(["list", "--show", "learned-svn"]) == 2
    assert "Did you mean learned-svm" in capsys.readouterr().err


@pytest.mark.parametrize("row", ["cnn-vgg16bn", "uic-alexnet-sobel", "uic-resnet18-rgb-sinkhorn"])
def test_the_study_networks_see_a_budget_of_images_in_the_quick_profile(row):
    (method,) = get_methods([row])
    epochs = {n_train: method.estimator("quick", n_train=n_train).epochs
              for n_train in (1_437, 10_000, 50_000, None)}
    # digits get more epochs than CIFAR-10 (4 of its 10,000 images), capped; unknown: the cap
    assert epochs == {1_437: 10, 10_000: 4, 50_000: 1, None: 10}
    assert method.estimator("quick").batch_size == 64


def test_sinkhorn_rows_are_the_study_rows_with_equal_size_assignments():
    for profile in PROFILES:
        for study in get_methods(["uic-fast-rgb", "uic-vgg16bn-sobel"]):
            (guarded,) = get_methods([f"{study.name}-sinkhorn"])
            assert guarded.settings(profile) == {**study.settings(profile),
                                                 "assignment": "sinkhorn"}
            assert guarded.params == study.params
