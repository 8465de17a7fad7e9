"""tasks/records.py: JSON Lines, CSV and `datasets` folders read into records; bad bytes and huge cells."""

import pytest

from roberta_prelayernorm.training import Trainer, read_records
from training_utils import config, data, head

pytestmark = pytest.mark.usefixtures("one_thread")


def test_csv_text_cells_stay_text_and_a_bom_is_skipped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufefftext,label\n1984,1\nnan,0\n".encode("utf-8"))
    records = read_records(str(path))
    assert [r.get("text", str) for r in records] == ["1984", "nan"]
    assert [r.get("label", int) for r in records] == [1, 0]


def test_training_files_that_are_not_utf8_or_have_huge_cells(tmp_path):
    from roberta_prelayernorm.training import DataError, read_records

    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"text": "fine", "label": 0}\n' + '{"text": "café", "label": 1}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl, line 2: field '\(record\)': not UTF-8 text \(byte 14 of "
                                        r"the line is 0xe9\)"):
        read_records(str(jsonl))
    csv_file = tmp_path / "big.csv"
    cell = "word " * 60_000  # 300 KB: past csv's own 128 KiB field limit
    csv_file.write_text(f'text,label\n"{cell}",1\nshort,0\n')
    assert [r.fields["text"] for r in read_records(str(csv_file))] == [cell, "short"]
    csv_file.write_bytes(b"text,label\nfine,1\n" + "caf\xe9,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"big.csv, line 3: field '\(record\)': not UTF-8 text \(byte 4 "):
        read_records(str(csv_file))


def test_a_dataset_saved_by_datasets_trains(tmp_path, tiny):
    """`datasets` is optional; when installed, --train takes a folder written by save_to_disk."""
    datasets = pytest.importorskip("datasets")
    records = read_records(head(data("sentiment_train.jsonl"), 24, tmp_path / "train.jsonl"))
    folder = tmp_path / "saved"
    datasets.Dataset.from_list([r.fields for r in records]).save_to_disk(str(folder))
    from_disk = read_records(str(folder))
    assert [r.fields for r in from_disk] == [r.fields for r in records]
    assert str(from_disk[3].where).endswith("row 3")  # the dataset index
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=str(folder), max_steps=2))
    assert "loss" in trainer.train()
