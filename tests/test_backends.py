import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from threadpoolctl import threadpool_info, threadpool_limits

from benchmark.cli import main
from results import ResultStore
from joblib import Parallel, delayed

from search.backends import parallel_backend


def small_search():
    X, y = load_digits(return_X_y=True)
    return GridSearchCV(SVC(), {"C": [0.1, 1, 10], "gamma": [1e-3, 1e-4]}, cv=3, n_jobs=-1).fit(X, y)


def test_a_search_on_a_dask_local_cluster_matches_the_local_one():
    pytest.importorskip("dask.distributed")
    local = small_search()
    with parallel_backend("dask") as client:
        assert client.scheduler_info()["workers"]
        remote = small_search()
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_params_ == local.best_params_


def _blas_threads():
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}


def test_threads_leave_blas_their_share_of_the_cores_while_they_run(monkeypatch):
    monkeypatch.setattr("search.backends.os.cpu_count", lambda: 4)
    with threadpool_limits(4, user_api="blas"):
        before = _blas_threads()
        with parallel_backend("threads"):
            during = Parallel(n_jobs=2)(delayed(_blas_threads)() for _ in range(2))
            alone = Parallel(n_jobs=1)(delayed(_blas_threads)() for _ in range(1))
        assert before and set(before.values()) == {4}
        assert during == [dict.fromkeys(before, 2)] * 2
        assert alone == [before]
        assert _blas_threads() == before


def test_unknown_backend_and_misplaced_scheduler_are_refused():
    with pytest.raises(ValueError, match="Unknown backend 'ray'"):
        with parallel_backend("ray"):
            pass
    with pytest.raises(ValueError, match="needs backend='dask'"):
        with parallel_backend("loky", scheduler="tcp://127.0.0.1:8786"):
            pass


def test_benchmark_rows_run_side_by_side_on_a_dask_cluster_as_they_do_here(tmp_path):
    pytest.importorskip("dask.distributed")
    args = ["run", "--methods", "knn,logreg,kmeans", "--profile", "smoke"]
    assert main([*args, "--out", str(tmp_path / "here")]) == 0
    assert main([*args, "--backend", "dask", "--out", str(tmp_path / "dask")]) == 0
    here, there = (ResultStore(tmp_path / name) for name in ("here", "dask"))
    for name in ("knn", "logreg", "kmeans"):
        local, remote = (store.read(name, "digits", "smoke", 0) for store in (here, there))
        for score in ("test_accuracy", "nmi_test"):
            assert local.get(score) == remote.get(score)
    assert sorted(r["method"] for r in there.records()) == ["kmeans", "knn", "logreg"]


def test_an_unreachable_scheduler_is_named(tmp_path, capsys):
    dask = pytest.importorskip("dask")
    pytest.importorskip("dask.distributed")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["run", "--methods", "knn", "--profile", "smoke", "--out", str(tmp_path),
                     "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not ResultStore(tmp_path).records()


def test_a_scheduler_with_a_local_backend_is_refused(tmp_path, capsys):
    assert main(["run", "--methods", "knn", "--out", str(tmp_path), "--backend", "loky",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot go with --backend loky" in capsys.readouterr().err
