from pathlib import Path

import numpy as np
import pytest

from training.data import (
    DataFormatError,
    index_items,
    item_popularity,
    k_core,
    leave_one_out,
    load_interactions,
    read_event_log,
    read_sequence_file,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sequence_file_keeps_order_and_maps_numeric_ids(tmp_path):
    path = write(tmp_path, "d.txt", "1 10 2 3\n2 3 10 7\n")
    data = load_interactions(path, k=1)
    assert data.item_ids == ["", "2", "3", "7", "10"]
    assert [list(s) for s in data.sequences] == [[4, 1, 2], [2, 4, 3]]


@pytest.mark.parametrize("text, line, reason", [
    ("1 5 6\n2\n", 2, "no items"),
    ("1 5 6\n1 7 8\n", 2, "more than one line"),
])
def test_sequence_file_errors_name_the_line(tmp_path, text, line, reason):
    with pytest.raises(DataFormatError, match=reason) as error:
        read_sequence_file(write(tmp_path, "bad.txt", text))
    assert error.value.line == line


def test_event_log_sorts_by_time_and_accepts_iso_dates(tmp_path):
    path = write(tmp_path, "e.csv", "user,item,timestamp\n"
                 "u1,b,2024-01-02T00:00:00\nu1,a,2024-01-01T00:00:00\nu2,c,5\nu2,a,1\n")
    data = load_interactions(path, k=1)
    by_user = dict(zip(data.user_ids, data.sequences, strict=True))
    names = data.item_ids
    assert [names[i] for i in by_user["u1"]] == ["a", "b"]
    assert [names[i] for i in by_user["u2"]] == ["a", "c"]


@pytest.mark.parametrize("row, reason", [
    ("u1,a\n", "expected 3 columns"),
    ("u1,a,yesterday\n", "neither a number nor ISO"),
    ("u1,,3\n", "empty user or item"),
])
def test_event_log_errors_name_the_line(tmp_path, row, reason):
    path = write(tmp_path, "bad.csv", "user,item,timestamp\nu0,x,1\n" + row)
    with pytest.raises(DataFormatError, match=reason) as error:
        read_event_log(path)
    assert error.value.line == 3
    assert f"{path}:3:" in str(error.value)


def test_empty_and_missing_files_are_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no events"):
        read_event_log(write(tmp_path, "empty.csv", "user,item,timestamp\n"))
    with pytest.raises(FileNotFoundError):
        load_interactions(tmp_path / "nope.txt")


def test_k_core_is_iterated_to_a_fixed_point():
    sequences = {"a": ["x", "y", "z"], "b": ["x", "y"], "c": ["x", "q"]}
    # q appears once -> removed; then c has one item -> removed; then x, y still >= 2
    assert k_core(sequences, 2) == {"a": ["x", "y"], "b": ["x", "y"]}


def test_leave_one_out_split():
    data = index_items({"u": ["1", "2", "3", "4", "5"], "short": ["1", "2"]})
    split = leave_one_out(data)
    assert split.dropped_users == 1
    assert list(split.train[0]) == [1, 2, 3]
    assert list(split.valid.histories[0]) == [1, 2, 3] and split.valid.targets[0] == 4
    assert list(split.test.histories[0]) == [1, 2, 3, 4] and split.test.targets[0] == 5


def test_popularity_counts_training_items_only():
    counts = item_popularity([np.array([1, 2, 2]), np.array([3])], 4)
    assert counts.tolist() == [0, 1, 2, 1, 0]
