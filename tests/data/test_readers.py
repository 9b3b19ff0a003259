"""Readers on tiny hand-written fixtures; every bad input must name its file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from llmrec.data.readers import (
    ML100K_GENRES,
    read_csv_logs,
    read_interactions,
    read_ml1m,
    read_ml100k,
)
from llmrec.errors import ConfigError, DataFormatError, LlmrecError

REAL_ML100K = Path(__file__).resolve().parents[2].parent / "shared/data/ml-100k"


def assert_rating_dtypes(ratings: pd.DataFrame) -> None:
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert pd.api.types.is_string_dtype(ratings["user_id"])
    assert pd.api.types.is_string_dtype(ratings["item_id"])
    assert ratings["rating"].dtype == "float64" and ratings["timestamp"].dtype == "int64"


def where(file: str, line: int | None, problem: str) -> str:
    """A pattern for `file:line: problem` at the end of the full path in the message."""
    place = f"{file}:{line}" if line is not None else file
    return re.escape(f"{place}: {problem}") + "$"


# ---------------------------------------------------------------- ML-100K fixtures


def item_line(item_id: int, title: str, genres: set[str]) -> str:
    flags = "|".join("1" if genre in genres else "0" for genre in ML100K_GENRES)
    return f"{item_id}|{title}|01-Jan-1995||http://imdb/{item_id}|{flags}\n"


U_ITEM = (
    item_line(1, "Toy Story (1995)", {"Animation", "Children's", "Comedy"})
    + item_line(2, " Café Society (1995) ", {"Drama"})
    + item_line(3, "Nothing (1996)", set())
)
U_USER = "1|24|M|technician|85711\n2|53|F|other|94043\n"
U_DATA = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t3\t4\t881250951\n2\t1\t1\t881250952\n"


def ml100k(
    folder: Path, data: str | bytes = U_DATA, item: str = U_ITEM, user: str | None = U_USER
) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "u.data").write_bytes(data if isinstance(data, bytes) else data.encode())
    (folder / "u.item").write_bytes(item.encode("latin-1"))
    if user is not None:
        (folder / "u.user").write_text(user)
    return folder


def test_ml100k_parses_ratings_items_and_users(tmp_path: Path) -> None:
    data = read_ml100k(ml100k(tmp_path / "ml"))

    assert data.name == "ml-100k"
    assert len(data.ratings) == 4 and len(data.items) == 3 and len(data.users) == 2
    assert_rating_dtypes(data.ratings)
    assert data.ratings["user_id"].tolist() == ["1", "1", "2", "2"]
    assert data.ratings["item_id"].tolist() == ["1", "2", "3", "1"]
    assert data.ratings["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert data.ratings["timestamp"].iloc[0] == 881250949
    assert data.items.index.name == "item_id" and list(data.items.index) == ["1", "2", "3"]
    assert data.items.loc["2", "title"] == "Café Society (1995)"
    assert data.items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert data.items.loc["3", "genres"] == ""
    assert data.users.index.name == "user_id"
    assert data.users.loc["2"].tolist() == [53, "F", "other"]
    assert data.users["age"].dtype == "int64"


def test_ml100k_without_u_user_has_no_users(tmp_path: Path) -> None:
    assert read_ml100k(ml100k(tmp_path, user=None)).users is None


def test_ml100k_skips_blank_lines_and_crlf_but_keeps_line_numbers(tmp_path: Path) -> None:
    data = "1\t1\t5\t1\r\n\r\n1\t2\t3\t2\r\n1\t3\tx\t3\r\n"
    with pytest.raises(DataFormatError, match=where("u.data", 4, "rating 'x' is not a number")):
        read_ml100k(ml100k(tmp_path, data=data))
    (tmp_path / "u.data").write_text(data.replace("x", "4") + "\n\n")
    assert read_ml100k(tmp_path).ratings["rating"].tolist() == [5.0, 3.0, 4.0]


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        ("1\t1\t5\t1\n1\t2\t3\t2\n1\t3\t4\n", 3, "expected 4 fields, found 3"),
        ("1\t1\t5\t1\n1\t2\t3\t2\n1\t3\t4\t3\t9\n", 3, "expected 4 fields, found 5"),
        ("1\t1\t5\t1\n1\t2\t3\t2\n1\t3\tabc\t3\n", 3, "rating 'abc' is not a number"),
        ("1\t1\t5\t1\n1\t2\t3\t2\n1\t3\t4\tnoon\n", 3, "timestamp 'noon' is not a number"),
        ("1\t1\t5\t1\n1\t2\t3\t2.5\n", 2, "timestamp '2.5' is not a whole number"),
        ("1\t1\t5\t1\n1\t2\t3\t2\n1\t9999\t4\t3\n", 3, "unknown item id '9999' (not in u.item)"),
        ("1\t1\t5\t1\n7\t2\t3\t2\n", 2, "unknown user id '7' (not in u.user)"),
        ("1\t1\t5\t1\n\t2\t3\t2\n", 2, "empty user id"),
        # not UTF-8, so read as Latin-1 (data.encoding=auto): the byte is a 'ÿ' in the timestamp
        (b"1\t1\t5\t1\n1\t2\t3\t2\xff\n", 2, "timestamp '2\xff' is not a number"),
        ("", None, "file is empty"),
        (" \n\n", None, "file is empty"),
    ],
)
def test_ml100k_bad_u_data(
    tmp_path: Path, data: str | bytes, line: int | None, problem: str
) -> None:
    with pytest.raises(DataFormatError, match=where("u.data", line, problem)) as caught:
        read_ml100k(ml100k(tmp_path, data=data))
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (U_DATA + "2\t2\t1000\t881250953\n", 5, "rating '1000' is not a whole star from 1 to 5 (ML-100K's scale; "
                                               "data.rating_scale declares another)"),
        (U_DATA + "2\t2\t0\t881250953\n", 5, "rating '0' is not a whole star from 1 to 5"),
        (U_DATA.replace("\t3\t881250950", "\t3.5\t881250950"), 2, "rating '3.5' is not a whole star from 1 to 5"),
        (U_DATA.replace("\t4\t881250951", "\t-4\t881250951"), 3, "rating '-4' is not a whole star from 1 to 5"),
    ],
)
def test_ml100k_refuses_a_rating_off_its_scale(tmp_path: Path, data: str, line: int, problem: str) -> None:
    """The fault trial's u.data with 1000 stars was read (and labelled 'liked')."""
    with pytest.raises(DataFormatError, match=re.escape(f"u.data:{line}: {problem}")):
        read_ml100k(ml100k(tmp_path, data=data))


def test_a_declared_rating_scale_replaces_the_sources(tmp_path: Path) -> None:
    folder = ml100k(tmp_path, data=U_DATA.replace("\t3\t881250950", "\t3.5\t881250950"))
    assert read_interactions(folder, rating_scale=[0.5, 5]).ratings["rating"].tolist() == [5, 3.5, 4, 1]
    with pytest.raises(DataFormatError, match=re.escape("u.data:1: rating '5' is outside data.rating_scale [1, 4]")):
        read_interactions(folder, rating_scale=[1, 4])
    for bad in ([5, 1], [1], [1, 2, 3], [1, float("nan")]):
        with pytest.raises(ConfigError, match=re.escape("data.rating_scale must be [] (the source's scale) or")):
            read_interactions(tmp_path / "not read", rating_scale=bad)


def test_a_rating_repeated_in_the_same_second_with_other_stars_is_refused(tmp_path: Path) -> None:
    """Which of two same-second ratings is the latest cannot be told (it was the later file row, silently)."""
    clash = U_DATA + "1\t2\t5\t881250950\n"
    problem = ("user '1' rated item '2' 3 on line 2 and 5 here, both at timestamp 881250950: which rating is the "
               "latest cannot be told (keep one)")
    with pytest.raises(DataFormatError, match=where("u.data", 5, problem)):
        read_ml100k(ml100k(tmp_path, data=clash))


def test_an_exact_duplicate_row_and_a_later_rerating_are_read(tmp_path: Path) -> None:
    """One rating given twice, or an item rated again later: read as they are; samples keep the latest
    (samples.latest_ratings) and count the rows dropped."""
    from llmrec.data.samples import latest_ratings

    data = read_ml100k(ml100k(tmp_path, data=U_DATA + "1\t2\t3\t881250950\n" + "2\t3\t1\t881250999\n"))
    latest, dropped = latest_ratings(data.ratings)
    assert len(data.ratings) == 6 and dropped == 2
    assert latest.set_index(["user_id", "item_id"])["rating"].to_dict() == {
        ("1", "1"): 5, ("1", "2"): 3, ("2", "1"): 1, ("2", "3"): 1}


@pytest.mark.parametrize(
    ("item", "line", "problem"),
    [
        (U_ITEM + "4|Short|01-Jan-1995\n", 4, "expected 24 fields, found 3"),
        (U_ITEM + item_line(2, "Again", set()), 4, "duplicate item id '2' (first on line 2)"),
        (U_ITEM.replace("|1|1|1|", "|1|2|1|", 1), 1, "Children's flag '2' is not 0 or 1"),
        ("", None, "file is empty"),
    ],
)
def test_ml100k_bad_u_item(tmp_path: Path, item: str, line: int | None, problem: str) -> None:
    with pytest.raises(DataFormatError, match=where("u.item", line, problem)):
        read_ml100k(ml100k(tmp_path, item=item))


@pytest.mark.parametrize(
    ("user", "line", "problem"),
    [
        (U_USER + "3|30|M\n", 3, "expected 5 fields, found 3"),
        (U_USER.replace("|53|", "|old|"), 2, "age 'old' is not a number"),
        (U_USER.replace("|F|", "|X|"), 2, "gender 'X' is not M or F"),
        ("", None, "file is empty"),
    ],
)
def test_ml100k_bad_u_user(tmp_path: Path, user: str, line: int | None, problem: str) -> None:
    with pytest.raises(DataFormatError, match=where("u.user", line, problem)):
        read_ml100k(ml100k(tmp_path, user=user))


@pytest.mark.parametrize("missing", ["u.data", "u.item"])
def test_ml100k_missing_required_file(tmp_path: Path, missing: str) -> None:
    (ml100k(tmp_path) / missing).unlink()
    with pytest.raises(DataFormatError, match=where(missing, None, "no such file")):
        read_ml100k(tmp_path)


def test_ml100k_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=where("nowhere", None, "no such folder")):
        read_ml100k(tmp_path / "nowhere")


# ---------------------------------------------------------------- ML-1M fixtures

MOVIES = (
    "1::Toy Story (1995)::Animation|Children's|Comedy\n"
    "2::Café: The Movie (1995)::Drama\n"
    "3::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
)
USERS = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::0::55117\n"
RATINGS = "1::1::5::978300760\n2::2::3::978302109\n3::3::4::978301968\n1::3::2::978300275\n"


def ml1m(
    folder: Path, ratings: str = RATINGS, movies: str = MOVIES, users: str | None = USERS
) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "ratings.dat").write_text(ratings)
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    if users is not None:
        (folder / "users.dat").write_text(users)
    return folder


def test_ml1m_parses_ratings_items_and_users(tmp_path: Path) -> None:
    data = read_ml1m(ml1m(tmp_path))

    assert data.name == "ml-1m"
    assert len(data.ratings) == 4 and len(data.items) == 3 and len(data.users) == 3
    assert_rating_dtypes(data.ratings)
    assert data.ratings.iloc[3].tolist() == ["1", "3", 2.0, 978300275]
    assert data.items.loc["2", "title"] == "Café: The Movie (1995)"
    assert data.items.loc["3", "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert data.items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert data.users["occupation"].tolist() == ["K-12 student", "self-employed", "other"]
    assert data.users.loc["2"].tolist() == [56, "M", "self-employed"]


def test_ml1m_without_users_dat_has_no_users(tmp_path: Path) -> None:
    assert read_ml1m(ml1m(tmp_path, users=None)).users is None


@pytest.mark.parametrize(
    ("ratings", "line", "problem"),
    [
        ("1::1::5::1\n2::2::3::2\n3::3::4\n", 3, "expected 4 fields, found 3"),
        ("1::1::5::1\n2::2::3::2\n3::3::abc::3\n", 3, "rating 'abc' is not a number"),
        ("1::1::5::1\n3::9999::4::3\n", 2, "unknown item id '9999' (not in movies.dat)"),
        ("1::1::5::1\n9::2::3::2\n", 2, "unknown user id '9' (not in users.dat)"),
        ("1::1::5::1\n2::2::6::2\n", 2, "rating '6' is not a whole star from 1 to 5 (ML-1M's scale; "
                                     "data.rating_scale declares another)"),
        ("", None, "file is empty"),
    ],
)
def test_ml1m_bad_ratings_dat(tmp_path: Path, ratings: str, line: int | None, problem: str) -> None:
    with pytest.raises(DataFormatError, match=where("ratings.dat", line, problem)):
        read_ml1m(ml1m(tmp_path, ratings=ratings))


def test_ml1m_bad_movies_and_users(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=where("movies.dat", 4, "expected 3 fields, found 2")):
        read_ml1m(ml1m(tmp_path, movies=MOVIES + "4::No genres\n"))
    with pytest.raises(
        DataFormatError, match=where("users.dat", 2, "occupation code '21' is not between 0 and 20")
    ):
        read_ml1m(ml1m(tmp_path, users=USERS.replace("::16::", "::21::")))


@pytest.mark.parametrize("missing", ["ratings.dat", "movies.dat"])
def test_ml1m_missing_required_file(tmp_path: Path, missing: str) -> None:
    (ml1m(tmp_path) / missing).unlink()
    with pytest.raises(DataFormatError, match=where(missing, None, "no such file")):
        read_ml1m(tmp_path)


# ---------------------------------------------------------------- CSV fixtures

RATINGS_CSV = (
    "timestamp,item_id,user_id,rating,review\n"
    "100,b1,u1,4.5,great\n"
    "101,b2,u1,3,ok\n"
    "102,b1,u2,5,\n"
)
ITEMS_CSV = "item_id,title,genres\nb1, Dune ,sci-fi|classic\nb2,Emma,\n"
USERS_CSV = "user_id,age,gender,occupation\nu1,31,F,editor\nu2,45,M,chef\n"


def logs(
    folder: Path,
    ratings: str = RATINGS_CSV,
    items: str | None = ITEMS_CSV,
    users: str | None = USERS_CSV,
) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "ratings.csv").write_text(ratings)
    if items is not None:
        (folder / "items.csv").write_text(items)
    if users is not None:
        (folder / "users.csv").write_text(users)
    return folder


def test_csv_folder_with_items_and_users(tmp_path: Path) -> None:
    data = read_csv_logs(logs(tmp_path / "goodreads"))

    assert data.name == "goodreads"
    assert_rating_dtypes(data.ratings)
    assert data.ratings.iloc[0].tolist() == ["u1", "b1", 4.5, 100]
    assert data.items.loc["b1"].tolist() == ["Dune", "sci-fi|classic"]
    assert data.items.loc["b2", "genres"] == ""
    assert data.users.loc["u1"].tolist() == [31, "F", "editor"]


def test_csv_file_alone_builds_items_from_ratings(tmp_path: Path) -> None:
    path = tmp_path / "amazon_beauty.csv"
    path.write_text(RATINGS_CSV)
    data = read_csv_logs(path)

    assert data.name == "amazon_beauty"
    assert data.users is None
    assert list(data.items.index) == ["b1", "b2"]
    assert data.items["title"].tolist() == ["item b1", "item b2"]
    assert data.items["genres"].tolist() == ["", ""]


def test_csv_optional_columns_may_be_absent(tmp_path: Path) -> None:
    folder = logs(tmp_path, items="item_id,title\nb1,Dune\nb2,Emma\n", users="user_id\nu1\nu2\n")
    data = read_csv_logs(folder)
    assert data.items["genres"].tolist() == ["", ""]
    assert data.users["gender"].tolist() == ["", ""]
    assert data.users["age"].isna().all()


def test_csv_quoted_fields_keep_real_line_numbers(tmp_path: Path) -> None:
    items = 'item_id,title\nb1,"Dune, the novel"\nb2,"Emma\nVolume 1"\n'
    data = read_csv_logs(logs(tmp_path, items=items))
    assert data.items.loc["b1", "title"] == "Dune, the novel"
    assert data.items.loc["b2", "title"] == "Emma\nVolume 1"

    ratings = 'user_id,item_id,rating,timestamp\nu1,b1,"4",1\n\nu1,"b\n2",4,2\nu2,b1,bad,3\n'
    bad = where("ratings.csv", 6, "rating 'bad' is not a number")
    with pytest.raises(DataFormatError, match=bad):
        read_csv_logs(logs(tmp_path, ratings=ratings, items=None))


HEAD = "user_id,item_id,rating,timestamp\n"


@pytest.mark.parametrize(
    ("ratings", "line", "problem"),
    [
        (HEAD + "u1,b1,4,1\nu1,b2,4\n", 3, "expected 4 fields, found 3"),
        (HEAD + 'u1,b1,4,1\nu1,"b2",4\n', 3, "expected 4 fields, found 3"),
        (HEAD + "u1,b1,4,1\nu1,b2,abc,2\n", 3, "rating 'abc' is not a number"),
        ("\n" + HEAD + "u1,b1,4,1\nu1,b2,,2\n", 4, "rating '' is not a number"),
        (HEAD + "u1,b1,4,1\nu1,b9,3,2\n", 3, "unknown item id 'b9' (not in items.csv)"),
        (HEAD + "u1,b1,4,1\nu7,b2,3,2\n", 3, "unknown user id 'u7' (not in users.csv)"),
        (
            "user_id,item_id,stars,timestamp\nu1,b1,4,1\n",
            1,
            "header lacks column(s) rating (needs user_id, item_id, rating, timestamp)",
        ),
        (HEAD + "\n", None, "file has no data rows"),
        ("", None, "file is empty"),
    ],
)
def test_csv_bad_ratings(tmp_path: Path, ratings: str, line: int | None, problem: str) -> None:
    with pytest.raises(DataFormatError, match=where("ratings.csv", line, problem)):
        read_csv_logs(logs(tmp_path, ratings=ratings))


def test_a_csv_log_declares_its_scale_with_data_rating_scale(tmp_path: Path) -> None:
    """A CSV log has no scale of its own (GoodReads 0-5, Amazon 1-5, ...): any finite rating is read, unless
    data.rating_scale bounds them."""
    folder = logs(tmp_path, ratings=HEAD + "u1,b1,4,1\nu1,b2,1000,2\n")
    assert read_csv_logs(folder).ratings["rating"].tolist() == [4, 1000]
    with pytest.raises(DataFormatError, match=where("ratings.csv", 3, "rating '1000' is outside data.rating_scale "
                                                                     "[0, 5]")):
        read_csv_logs(folder, rating_scale=[0, 5])


def test_csv_bad_side_files(tmp_path: Path) -> None:
    duplicate = where("items.csv", 3, "duplicate item id 'b1' (first on line 2)")
    with pytest.raises(DataFormatError, match=duplicate):
        read_csv_logs(logs(tmp_path, items="item_id,title\nb1,Dune\nb1,Emma\n"))
    with pytest.raises(DataFormatError, match=where("users.csv", 3, "age 'x' is not a number")):
        read_csv_logs(logs(tmp_path, users="user_id,age\nu1,3\nu2,x\n"))


def test_csv_missing_and_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=where("ratings.csv", None, "no such file")):
        read_csv_logs(tmp_path)
    (tmp_path / "ratings.csv").write_bytes(HEAD.encode() + b"u1,b\xe91,4,1\n")
    undecodable = where("ratings.csv", 2, "undecodable byte 0xe9 (not valid utf-8)")
    with pytest.raises(DataFormatError, match=undecodable):
        read_csv_logs(tmp_path, encoding="utf-8")  # forced; 'auto' reads this file as Latin-1
    data = read_csv_logs(tmp_path)
    assert data.ratings["item_id"].tolist() == ["bé1"] and data.encodings == {"ratings.csv": "latin-1"}


# ---------------------------------------------------------------- encodings

MISERABLES = "Misérables, Les (1995)"


def test_u_item_saved_as_utf8_reads_like_the_latin1_original(tmp_path: Path) -> None:
    # the reproducer: u.item re-saved as UTF-8 used to give 'MisÃ©rables'
    item = U_ITEM.replace("Nothing (1996)", MISERABLES)
    latin = read_ml100k(ml100k(tmp_path / "latin", item=item))
    utf8_folder = ml100k(tmp_path / "utf8", item=item)
    (utf8_folder / "u.item").write_bytes(item.encode("utf-8"))
    utf8 = read_ml100k(utf8_folder)
    assert latin.items.loc["3", "title"] == utf8.items.loc["3", "title"] == MISERABLES
    assert latin.items.equals(utf8.items)
    assert latin.encodings == {"u.data": "utf-8", "u.item": "latin-1", "u.user": "utf-8"}
    assert utf8.encodings == {"u.data": "utf-8", "u.item": "utf-8", "u.user": "utf-8"}
    forced = read_interactions(utf8_folder, encoding="latin-1")  # the override wins, mojibake and all
    assert forced.items.loc["3", "title"] == "MisÃ©rables, Les (1995)"
    assert forced.encodings["u.item"] == "latin-1"


def test_every_reader_detects_the_encoding_of_each_file(tmp_path: Path) -> None:
    folder = ml1m(tmp_path / "ml1m")
    (folder / "movies.dat").write_bytes(MOVIES.encode("utf-8"))
    data = read_ml1m(folder)
    assert data.items.loc["2", "title"] == "Café: The Movie (1995)"
    assert data.encodings == {"movies.dat": "utf-8", "ratings.dat": "utf-8", "users.dat": "utf-8"}
    assert read_ml1m(ml1m(tmp_path / "original")).encodings["movies.dat"] == "latin-1"
    books = logs(tmp_path / "books", items="item_id,title\nb1,Dune\nb2,Émile\n")
    (books / "items.csv").write_bytes("item_id,title\nb1,Dune\nb2,Émile\n".encode("latin-1"))
    data = read_csv_logs(books)
    assert data.items.loc["b2", "title"] == "Émile" and data.encodings["items.csv"] == "latin-1"
    assert data.encodings["ratings.csv"] == "utf-8"


def test_an_unknown_encoding_is_named(tmp_path: Path) -> None:
    with pytest.raises(LlmrecError, match="data.encoding: unknown encoding 'latin-9x'"):
        read_interactions(ml100k(tmp_path), encoding="latin-9x")


# ---------------------------------------------------------------- dispatch


def test_read_interactions_detects_each_format(tmp_path: Path) -> None:
    assert read_interactions(ml100k(tmp_path / "a")).name == "ml-100k"
    assert read_interactions(ml1m(tmp_path / "b")).name == "ml-1m"
    assert read_interactions(logs(tmp_path / "books")).name == "books"
    assert read_interactions(tmp_path / "books" / "ratings.csv").name == "ratings"
    assert read_interactions(str(tmp_path / "a"), format="ml-100k").name == "ml-100k"


def test_read_interactions_rejects_an_unrecognised_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataFormatError, match="u.data .*ratings.dat .*ratings.csv") as caught:
        read_interactions(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: ")
    with pytest.raises(DataFormatError, match=re.escape("notes.txt: cannot tell the data format")):
        read_interactions(tmp_path / "notes.txt")
    with pytest.raises(DataFormatError, match=where("gone", None, "no such file or folder")):
        read_interactions(tmp_path / "gone")


def test_read_interactions_rejects_an_unknown_format(tmp_path: Path) -> None:
    expected = "unknown data format 'ml-20m'; choose one of auto, ml-100k, ml-1m, csv"
    with pytest.raises(LlmrecError, match=expected):
        read_interactions(tmp_path, format="ml-20m")


@pytest.mark.slow
def test_real_ml100k() -> None:
    if not (REAL_ML100K / "u.data").exists():
        pytest.skip(f"{REAL_ML100K} not present")
    data = read_interactions(REAL_ML100K)
    assert (len(data.ratings), len(data.items), len(data.users)) == (100_000, 1_682, 943)
    assert data.items.loc["1", "title"] == "Toy Story (1995)"
    assert isinstance(data.ratings, pd.DataFrame) and data.ratings["timestamp"].dtype == "int64"
