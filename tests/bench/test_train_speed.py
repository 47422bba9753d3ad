import json

from bench.train_speed import write


def result(sasrec: list[float], mvcrec: list[float]) -> dict:
    def stats(model: str, seconds: list[float]) -> dict:
        ordered = sorted(seconds)
        return {"sec_per_epoch_median": ordered[len(ordered) // 2], "peak_mib_max": 1000.0,
                "samples": [{"model": model, "seconds": s, "peak_mib": 1000.0} for s in seconds]}

    return {"dataset": "Beauty", "device": "cpu", "repeats": len(sasrec),
            "machine": {"cpu": "Test CPU", "cores": 2},
            "models": {"sasrec": stats("sasrec", sasrec), "mvcrec": stats("mvcrec", mvcrec)},
            "ratio_mvcrec_over_sasrec": sorted(mvcrec)[1] / sorted(sasrec)[1]}


def test_report_lists_every_repeat_side_by_side(tmp_path):
    write(result([40.0, 50.0, 45.0], [100.0, 110.0, 90.0]), tmp_path)
    report = (tmp_path / "train_speed.md").read_text()
    assert "MVCrec / SASRec: **2.22×**" in report
    assert "| 0 | 40.0 | 100.0 | 2.50 |" in report
    assert "| 2 | 45.0 | 90.0 | 2.00 |" in report
    assert "Machine: Test CPU, 2 cores." in report
    assert json.loads((tmp_path / "train_speed.json").read_text())["repeats"] == 3
