import csv

import numpy as np
import pytest

from benchmark import cli
from conftest import class_images, write_tree


def photos(tmp_path, n=24):
    rng = np.random.default_rng(0)
    files = {f"img{i:02d}.png": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for i in range(n)}
    return write_tree(tmp_path / "photos", files)


def cluster(*args):
    return cli.main(["cluster", *[str(a) for a in args]])


@pytest.mark.parametrize("method", ["kmeans", "uic-fast-rgb", "simclr-fast-kmeans",
                                    "scan-fast-selflabel"])
def test_unlabelled_folder_gets_assignments_sheets_and_sizes(tmp_path, capsys, method):
    out = tmp_path / "out"
    code = cluster(photos(tmp_path), "--method", method, "--clusters", 3, "--profile", "smoke",
                   "--out", out, "--cache-dir", tmp_path / "cache")
    assert code == 0
    with open(out / "assignments.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["file"] for row in rows] == [f"img{i:02d}.png" for i in range(24)]
    assert {int(row["cluster"]) for row in rows} <= {0, 1, 2}
    assert all(0 < float(row["confidence"]) <= 1 for row in rows)
    sheets = sorted(path.name for path in out.glob("cluster-0*.png"))
    assert sheets == [f"cluster-{c:02d}.png" for c in sorted({int(r["cluster"]) for r in rows})]
    assert (out / "cluster-sizes.png").read_bytes().startswith(b"\x89PNG")
    assert "NMI" not in capsys.readouterr().out


def test_labelled_folder_also_reports_nmi_ari_acc(tmp_path, capsys):
    tree = write_tree(tmp_path / "pets", class_images(np.random.default_rng(0), 10))
    code = cluster(tree, "--method", "kmeans", "--profile", "smoke", "--out", tmp_path / "out",
                   "--cache-dir", tmp_path / "cache")
    assert code == 0
    out = capsys.readouterr().out
    assert "30 images in 3 clusters" in out
    # the classes differ in brightness, which k-means on pixels separates exactly
    assert "NMI 1.0000, ARI 1.0000, ACC 1.0000" in out


def test_supervised_method_and_unknown_names_are_refused(tmp_path, capsys):
    folder = photos(tmp_path)
    assert cluster(folder, "--method", "svm", "--cache-dir", tmp_path / "cache") == 2
    assert "svm is supervised" in capsys.readouterr().err
    assert cluster(folder, "--method", "simclr-fast", "--cache-dir", tmp_path / "cache") == 2
    assert "simclr-fast learns features and makes no clusters" in capsys.readouterr().err
    assert cluster(folder, "--method", "kmean", "--cache-dir", tmp_path / "cache") == 2
    assert "Did you mean kmeans" in capsys.readouterr().err
    assert cluster(tmp_path / "nowhere", "--method", "kmeans") == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_number_of_clusters_the_images_cannot_hold_is_refused(tmp_path, capsys):
    folder = photos(tmp_path)
    assert cluster(folder, "--method", "kmeans", "--clusters", 25,
                   "--cache-dir", tmp_path / "cache") == 2
    assert "Cannot make 25 clusters of 24 images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cluster(folder, "--method", "kmeans", "--clusters", 0)
    assert stop.value.code == 2 and "a positive integer" in capsys.readouterr().err


def test_the_method_learns_from_the_profile_limit_and_labels_every_image(tmp_path, capsys,
                                                                        monkeypatch):
    from benchmark.registry import METHODS

    monkeypatch.setitem(METHODS["kmeans"].profiles, "smoke", {"train_limit": 10})
    out = tmp_path / "out"
    assert cluster(photos(tmp_path), "--method", "kmeans", "--clusters", 3, "--profile", "smoke",
                   "--out", out, "--cache-dir", tmp_path / "cache") == 0
    assert "24 images in 3 clusters (the method learned from 10 of them" in capsys.readouterr().out
    with open(out / "assignments.csv") as file:
        assert len(list(csv.DictReader(file))) == 24


def test_an_unreadable_image_is_refused_naming_the_flag_that_skips_it(tmp_path, capsys):
    folder = photos(tmp_path)
    (folder / "broken.png").write_bytes(b"not a png")
    assert cluster(folder, "--method", "kmeans", "--cache-dir", tmp_path / "cache") == 2
    assert capsys.readouterr().err.rstrip().endswith("On the command line: --skip-bad.")
    assert cluster(folder, "--method", "kmeans", "--clusters", 3, "--profile", "smoke",
                   "--skip-bad", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache") == 0
    assert "24 images in 3 clusters" in capsys.readouterr().out


def test_the_summary_times_the_fit_and_counts_empty_clusters(tmp_path):
    from benchmark.cluster import cluster_images
    from benchmark.datasets import load_images
    from benchmark.registry import METHODS

    dataset = load_images(photos(tmp_path), cache_dir=tmp_path / "cache")
    summary = cluster_images(METHODS["kmeans"], dataset, out_dir=tmp_path / "out",
                             profile="smoke", n_clusters=3)
    assert summary["fit_time"] > 0 and summary["n_fitted"] == 24
    assert sum(summary["sizes"]) == 24 and summary["empty_clusters"] == 0
    assert "nmi" not in summary
