"""Bad input -> MamoError naming the file, the line (where there is one) and what was expected."""
from __future__ import annotations

import shutil

import pytest

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.prepare import load_raw
from mamo_l2l.data.readers import read_folder

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def fails(folder, **kwargs) -> MamoError:
    with pytest.raises(MamoError) as info:
        read_folder(folder, **kwargs)
    return info.value


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_file(tmp_path, ml100k_raw_dir):
    folder = copy(ml100k_raw_dir, tmp_path / "ml")
    (folder / "u.user").unlink()
    e = fails(folder)
    assert e.path == str(folder / "u.user") and e.line is None
    assert "file not found" in str(e) and "user id|age|gender|occupation|zip code" in str(e)


def test_missing_rating_field(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\tscore:float\nu\ti\t3\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.path == str(tmp_path / "x.inter") and e.line == 1
    assert "missing field(s) rating" in str(e) and "user_id, item_id, score" in str(e)


def test_missing_column_book_crossing(tmp_path, book_crossing_dir):
    folder = copy(book_crossing_dir, tmp_path / "bx")
    (folder / "BX-Users.csv").write_text('"User-ID";"Location"\n"1";"nyc, new york, usa"\n', encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "BX-Users.csv") and e.line == 1
    assert "missing column(s) Age" in str(e)


def test_wrong_separator_comma_separated_inter(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER.replace("\t", ",") + "u,i,3,1\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.path == str(tmp_path / "x.inter") and e.line == 1
    assert "separated by tab" in str(e) and "looks comma-separated" in str(e)


def test_wrong_separator_ml1m(tmp_path, ml1m_raw_dir):
    folder = copy(ml1m_raw_dir, tmp_path / "ml")
    (folder / "ratings.dat").write_text("1,10,5,978300760\n", encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "ratings.dat") and e.line == 1
    assert "expected 4 fields separated by '::'" in str(e) and "comma" in str(e)


def test_wrong_number_of_fields_later_in_file(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER + "u\ti\t3\t1\nu\tj\t4\t2\textra\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 3 and "expected 4 fields separated by tab, found 5" in str(e)


def test_non_numeric_rating(tmp_path, ml100k_raw_dir):
    folder = copy(ml100k_raw_dir, tmp_path / "ml")
    lines = (folder / "u.data").read_text(encoding="latin-1").splitlines()
    lines[2] = "1\t50\tgood\t881250949"
    (folder / "u.data").write_text("\n".join(lines) + "\n", encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "u.data") and e.line == 3
    assert "column 'rating' must be numeric" in str(e) and "'good'" in str(e)


def test_non_numeric_rating_line_counts_blank_lines(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER + "u\ti\t3\t1\n\n\nu\tj\tfive\t2\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 5 and "'five'" in str(e)


def test_missing_rating_value(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER + "u\ti\t3\t1\nu\tj\t\t2\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 3 and "found a missing value" in str(e)


def test_out_of_range_rating_movielens(tmp_path, ml1m_raw_dir):
    folder = copy(ml1m_raw_dir, tmp_path / "ml")
    lines = (folder / "ratings.dat").read_text(encoding="latin-1").splitlines()
    lines[3] = "1::50::6::978300760"
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "ratings.dat") and e.line == 4
    assert "rating 6 is outside MovieLens's range 1..5" in str(e)


def test_out_of_range_rating_book_crossing(tmp_path, book_crossing_dir):
    folder = copy(book_crossing_dir, tmp_path / "bx")
    (folder / "BX-Book-Ratings.csv").write_text('"User-ID";"ISBN";"Book-Rating"\n"1";"A";"0"\n"1";"B";"11"\n',
                                                encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "BX-Book-Ratings.csv") and e.line == 3
    assert "rating 11 is outside Book-Crossing's range 0..10" in str(e)


def test_empty_file(tmp_path):
    (tmp_path / "x.inter").write_bytes(b"")
    e = fails(tmp_path)
    assert e.path == str(tmp_path / "x.inter") and "file is empty" in str(e) and "user_id, item_id, rating" in str(e)


def test_header_only_file(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER, encoding="utf-8")
    e = fails(tmp_path)
    assert e.path == str(tmp_path / "x.inter") and "no ratings in the file" in str(e)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(MamoError) as info:
        load_raw("ml-20m", cache_dir=tmp_path, fetch=False)
    msg = str(info.value)
    assert "unknown data set 'ml-20m'" in msg and "book-crossing, ml-100k, ml-1m" in msg and "--data-dir" in msg


def test_unknown_format_name(tmp_path, atomic_dir):
    e = fails(atomic_dir, format="csv")
    assert "unknown data format 'csv'" in str(e) and "ml-1m-atomic" in str(e)


def test_not_utf8(tmp_path):
    # latin-1 'é' (byte 0xe9) on line 3 of a UTF-8 format
    (tmp_path / "x.inter").write_bytes(HEADER.encode() + b"u\ti\t3\t1\nu\tcaf\xe9\t4\t2\n")
    e = fails(tmp_path)
    assert e.path == str(tmp_path / "x.inter") and e.line == 3
    assert "not valid utf-8 (byte 0xe9)" in str(e)


def test_not_utf8_in_header(tmp_path):
    (tmp_path / "x.inter").write_bytes(b"user_id:token\titem\xff:token\trating:float\n")
    e = fails(tmp_path)
    assert e.line == 1 and "not valid utf-8" in str(e)


def test_bad_header_cell(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id\trating:float\nu\ti\t3\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 1 and "header cell 'item_id' is not field:type" in str(e)


def test_folder_without_known_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    e = fails(tmp_path)
    assert e.path == str(tmp_path) and "no supported data files" in str(e) and "u.data" in str(e)


def test_missing_folder(tmp_path):
    e = fails(tmp_path / "nope")
    assert e.path == str(tmp_path / "nope") and "data folder not found" in str(e)


def test_missing_user_id_cell(tmp_path):
    (tmp_path / "x.inter").write_text(HEADER + "u\ti\t3\t1\n\tj\t4\t2\n", encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 3 and "column 'user_id' is empty" in str(e)


def test_repeated_header_field(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\trating:float\trating:float\nu\ti\t3\t4\n",
                                      encoding="utf-8")
    e = fails(tmp_path)
    assert e.line == 1 and "field 'rating' appears twice in the header" in str(e)


def test_stray_colon_in_double_colon_file(tmp_path, ml1m_raw_dir):
    folder = copy(ml1m_raw_dir, tmp_path / "ml")
    lines = (folder / "ratings.dat").read_text(encoding="latin-1").splitlines()
    lines[1] = "1::13:::4::874725456"          # a ':' too many shifts every later field
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    e = fails(folder)
    assert e.path == str(folder / "ratings.dat") and e.line == 2
    assert "expected 4 fields separated by '::'" in str(e)


def test_corrupted_files_raise_only_mamo_error(tmp_path, format_dirs):
    """Seeded random damage (cut, stray separators and bytes, dropped bytes, emptied files) to
    every format: each read either succeeds or raises MamoError, never a raw pandas error."""
    import random
    import warnings
    rng = random.Random(7)
    names = sorted(format_dirs)
    outcomes = {"ok": 0, "error": 0}
    for trial in range(90):
        folder = copy(format_dirs[names[trial % len(names)]], tmp_path / str(trial))
        target = rng.choice(sorted(folder.iterdir()))
        data = bytearray(target.read_bytes())
        kind = trial % 4
        if kind == 0:
            data = data[:rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(3):
                data.insert(rng.randrange(len(data)), rng.choice(b'\t;|:,"\\\n\xff\xe9x0'))
        elif kind == 2:
            for _ in range(3):
                del data[rng.randrange(len(data))]
        else:
            data = data.replace(b"\t", b",").replace(b"::", b":")
        target.write_bytes(bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                read_folder(folder)
                outcomes["ok"] += 1
            except MamoError:
                outcomes["error"] += 1
        shutil.rmtree(folder)
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
