"""Readers that turn MovieLens dumps and generic CSV logs into Interactions.

Every problem in an input file is reported as a DataFormatError naming the file and the
1-based line at fault, so a user can open the file and fix it without reading llmrec's code.
Parsing is vectorised (pandas' C parser, fast casts); Python only counts separators per line
beforehand and, when a cast fails, the slower coercion runs just to find the culprit row.
Quoted CSV files go through the csv module, which keeps line numbers right across quoted
newlines. Every text file is decoded as UTF-8 when it is valid UTF-8, else as Latin-1 (how
MovieLens ships u.item and movies.dat; a re-saved UTF-8 copy reads the same), unless an
encoding is forced; the Interactions record which codec each file was read with.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.interactions import Interactions
from llmrec.errors import ConfigError, DataFormatError, LlmrecError

FORMATS = ("auto", "ml-100k", "ml-1m", "csv")

# Order of the genre flags in u.item, as listed in u.genre.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

# users.dat stores occupations as codes; the names come from the ML-1M README.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer",
    "homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
    "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)  # fmt: skip

_RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
# A folder holding one of these files is read in that format.
_MARKERS = (("u.data", "ml-100k"), ("ratings.dat", "ml-1m"), ("ratings.csv", "csv"))
# MovieLens' scale (ML-100K README: "ratings are 1-5"; ML-1M README: "5-star scale (whole-star ratings only)").
MOVIELENS_SCALE = (1.0, 5.0)
# pandas' C parser only splits on one character, so '::' is swapped for this one first.
_UNIT_SEPARATOR = "\x1f"


@dataclass
class _Table:
    """A parsed file whose rows remember their file line numbers, so checks can point at them."""

    path: Path
    frame: pd.DataFrame  # all columns str, RangeIndex
    lines: np.ndarray  # lines[i] is the 1-based file line of frame row i
    encoding: str = "utf-8"  # the codec the file was decoded with

    def check(self, bad: pd.Series, values: pd.Series, problem: str) -> None:
        """Raise at the first bad row; `problem` gets that row's value through str.format."""
        flags = bad.to_numpy(dtype=bool)
        if flags.any():
            row = int(flags.argmax())
            raise DataFormatError(self.path, problem.format(values.iat[row]), int(self.lines[row]))

    def ids(self, column: str, what: str) -> pd.Series:
        values = self.frame[column].str.strip()
        self.check(values == "", values, f"empty {what}")
        return values

    def unique_ids(self, column: str, what: str) -> pd.Series:
        """Ids that index a table must be unique, or lookups by id would be ambiguous."""
        values = self.ids(column, what)
        duplicated = values.duplicated().to_numpy()
        if duplicated.any():
            row = int(duplicated.argmax())
            first = int((values == values.iat[row]).to_numpy().argmax())
            raise DataFormatError(
                self.path,
                f"duplicate {what} '{values.iat[row]}' (first on line {self.lines[first]})",
                int(self.lines[row]),
            )
        return values

    def number(self, column: str, what: str, integer: bool = False) -> pd.Series:
        """Convert with a fast cast; only when that fails coerce, to find the bad row."""
        raw = self.frame[column].str.strip()
        dtype = "int64" if integer else "float64"
        try:
            values = raw.astype(dtype)
        except (ValueError, OverflowError):
            values = pd.to_numeric(raw, errors="coerce")
        self.check(~np.isfinite(values), raw, f"{what} '{{}}' is not a number")
        if integer:
            self.check(values % 1 != 0, raw, f"{what} '{{}}' is not a whole number")
        return values.astype(dtype)

    def gender(self, column: str) -> pd.Series:
        values = self.frame[column].str.strip().str.upper()
        self.check(~values.isin(["M", "F"]), self.frame[column], "gender '{}' is not M or F")
        return values

    def known(self, ids: pd.Series, known: pd.Index, what: str, source: Path) -> None:
        self.check(~ids.isin(known), ids, f"unknown {what} '{{}}' (not in {source.name})")


def check_encoding(encoding: str) -> str:
    """'auto' or a codec Python knows; anything else is an LlmrecError naming data.encoding."""
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise LlmrecError(f"data.encoding: unknown encoding '{encoding}' (auto, or a Python codec such as "
                              "utf-8, latin-1, cp1252)") from None
    return encoding


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, expected a file") from None
    except OSError as error:
        raise DataFormatError(path, f"cannot be read ({error.strerror})") from None


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def read_id_lines(path: str | Path) -> list[str]:
    """The lines of a one-id-per-line file (forget.users, forget.already_forgotten, train.only_users), split at
    '\n' so list index + 1 is the file line. UTF-8, a leading UTF-8 byte-order mark dropped (Windows editors
    write one). A UTF-16/32 file (its byte-order mark, or NUL bytes), any other NUL byte, or bytes that are not
    UTF-8 raise DataFormatError naming the file and line: decoded anyhow they would be ids no user has."""
    path = Path(path)
    raw = _read_bytes(path)
    for mark, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                       (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(mark):
            raise DataFormatError(path, f"is {name} (byte-order mark {mark.hex(' ')}); save it as UTF-8", 1)
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if (nul := raw.find(b"\0")) >= 0:
        problem = "NUL byte (a UTF-16 file? save it as UTF-8)"
        raise DataFormatError(path, problem, _line_of(raw, nul))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problem = f"undecodable byte 0x{raw[error.start]:02x} (not valid UTF-8; save the file as UTF-8)"
        raise DataFormatError(path, problem, _line_of(raw, error.start)) from None
    return text.split("\n")


def _read_text(path: Path, encoding: str) -> tuple[str, str]:
    """Whole-file decode, so a bad byte is reported with its line instead of a traceback. 'auto' is UTF-8 when
    the bytes are valid UTF-8, else Latin-1 (which decodes any byte). Returns the text and the codec used."""
    raw = _read_bytes(path)
    if encoding == "auto":
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = raw.decode("latin-1"), "latin-1"
    else:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            problem = f"undecodable byte 0x{raw[error.start]:02x} (not valid {encoding})"
            raise DataFormatError(path, problem, _line_of(raw, error.start)) from None
    if not text.strip():
        raise DataFormatError(path, "file is empty")
    return text.removeprefix("\ufeff"), encoding


def _delimited(path: Path, sep: str, names: Sequence[str], encoding: str) -> _Table:
    """A headerless file with no quoting, as MovieLens ships them."""
    text, encoding = _read_text(path, encoding)
    if len(sep) > 1:
        text, sep = text.replace(sep, _UNIT_SEPARATOR), _UNIT_SEPARATOR
    return dataclasses.replace(_split(path, text.split("\n"), 1, sep, names), encoding=encoding)


def _split(path: Path, lines: list[str], first: int, sep: str, names: Sequence[str]) -> _Table:
    """Parse unquoted lines (the first being file line `first`) with pandas' C parser.
    Field counts are checked beforehand because that parser silently pads short lines;
    blank lines are skipped."""
    odd = [i for i, line in enumerate(lines) if line.count(sep) != len(names) - 1]
    blank = {i for i in odd if not lines[i].strip()}
    for i in odd:
        if i not in blank:
            found = lines[i].count(sep) + 1
            raise DataFormatError(path, f"expected {len(names)} fields, found {found}", first + i)
    numbers = np.delete(np.arange(first, first + len(lines)), sorted(blank))
    if not len(numbers):
        raise DataFormatError(path, "file has no data rows")
    if blank:
        lines = [line for i, line in enumerate(lines) if i not in blank]
    frame = pd.read_csv(
        io.StringIO("\n".join(lines)),
        sep=sep,
        header=None,
        names=list(names),
        dtype=str,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        lineterminator="\n",
        skip_blank_lines=False,
        engine="c",
    )
    return _Table(path, frame, numbers)


def _csv(path: Path, encoding: str, required: Sequence[str], optional: Sequence[str] = ()) -> _Table:
    """A CSV with a header naming at least the required columns; keeps those and whichever
    optional ones are present. Files without quotes take the fast line-based path."""
    text, encoding = _read_text(path, encoding)
    if '"' in text:
        table = _quoted_csv(path, text, required)
    else:
        lines = text.split("\n")
        start = next(i for i, line in enumerate(lines) if line.strip())
        header = [name.strip() for name in lines[start].split(",")]
        _check_header(path, header, start + 1, required)
        table = _split(path, lines[start + 1 :], start + 2, ",", header)
    keep = [*required, *(name for name in optional if name in table.frame)]
    return _Table(path, table.frame[keep], table.lines, encoding)


def _quoted_csv(path: Path, text: str, required: Sequence[str]) -> _Table:
    """The csv module copes with quoted commas and newlines, and its line_num stays the
    real file line across them."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records = ((row, reader.line_num) for row in reader if row and (len(row) > 1 or row[0].strip()))
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        first = next(records, None)
        if first is None:
            raise DataFormatError(path, "file is empty")
        header = [name.strip() for name in first[0]]
        _check_header(path, header, first[1], required)
        for row, line in records:
            if len(row) != len(header):
                problem = f"expected {len(header)} fields, found {len(row)}"
                raise DataFormatError(path, problem, line)
            rows.append(row)
            lines.append(line)
    except csv.Error as error:
        raise DataFormatError(path, f"malformed CSV ({error})", reader.line_num) from None
    if not rows:
        raise DataFormatError(path, "file has no data rows")
    return _Table(path, pd.DataFrame(rows, columns=header, dtype="str"), np.array(lines))


def _check_header(path: Path, header: list[str], line: int, required: Sequence[str]) -> None:
    missing = [name for name in required if name not in header]
    if missing:
        problem = f"header lacks column(s) {', '.join(missing)} (needs {', '.join(required)})"
        raise DataFormatError(path, problem, line)
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataFormatError(path, f"header repeats column(s) {', '.join(repeated)}", line)


def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise DataFormatError(folder, "no such folder")
    if not folder.is_dir():
        raise DataFormatError(folder, "is a file, expected a folder")
    return folder


def check_scale(scale: Sequence[float] | None) -> tuple[float, float] | None:
    """data.rating_scale: [] or None (the source's own scale) or [lowest, highest]; else ConfigError."""
    if not scale:
        return None
    if len(scale) != 2 or not all(np.isfinite(scale)) or not scale[0] < scale[1]:
        raise ConfigError(f"data.rating_scale must be [] (the source's scale) or [lowest, highest] with lowest < "
                          f"highest, got {list(scale)}")
    return float(scale[0]), float(scale[1])


def _ratings(table: _Table, scale: tuple[float, float] | None, source: str | None) -> pd.DataFrame:
    """The rating columns, checked: a rating outside `scale` (declared by data.rating_scale), or, with no declared
    scale, off `source`'s own (MovieLens: whole stars 1 to 5; None: a CSV log, any number), names its line."""
    ratings = pd.DataFrame(
        {
            "user_id": table.ids("user_id", "user id"),
            "item_id": table.ids("item_id", "item id"),
            "rating": table.number("rating", "rating"),
            "timestamp": table.number("timestamp", "timestamp", integer=True),
        }
    )
    stars, raw = ratings["rating"], table.frame["rating"].str.strip()
    if scale is not None:
        outside = (stars < scale[0]) | (stars > scale[1])
        table.check(outside, raw, f"rating '{{}}' is outside data.rating_scale [{scale[0]:g}, {scale[1]:g}]")
    elif source is not None:
        low, high = MOVIELENS_SCALE
        off = (stars < low) | (stars > high) | (stars % 1 != 0)
        table.check(off, raw, f"rating '{{}}' is not a whole star from {low:g} to {high:g} ({source}'s scale; "
                              "data.rating_scale declares another)")
    _check_same_second_repeats(table, ratings)
    return ratings


def _check_same_second_repeats(table: _Table, ratings: pd.DataFrame) -> None:
    """Two ratings of one (user, item) with one timestamp but other stars cannot be ordered, so neither is "the
    latest" that samples keep (`samples.latest_ratings`): DataFormatError at the later line, naming the earlier.
    Identical rows are one rating given twice: kept, and counted as repeats when samples are built."""
    keys = ["user_id", "item_id", "timestamp"]
    repeated = ratings[ratings.duplicated(keys, keep=False)]
    if repeated.empty:
        return
    first = repeated.groupby(keys, sort=False)["rating"].transform("first")
    clash = (repeated["rating"] != first).to_numpy()
    if clash.any():
        row = repeated.index[clash.argmax()]
        user, item, when, stars = ratings.loc[row, ["user_id", "item_id", "timestamp", "rating"]]
        same = repeated[(repeated["user_id"] == user) & (repeated["item_id"] == item) & (repeated["timestamp"] == when)]
        earlier = same.index[0]
        raise DataFormatError(
            table.path,
            f"user '{user}' rated item '{item}' {ratings.at[earlier, 'rating']:g} on line {table.lines[earlier]} and "
            f"{stars:g} here, both at timestamp {when}: which rating is the latest cannot be told (keep one)",
            int(table.lines[row]),
        )


def _assemble(
    name: str,
    table: _Table,
    items: pd.DataFrame,
    items_path: Path | None,
    users: pd.DataFrame | None,
    users_path: Path | None,
    side: Sequence[_Table],
    scale: tuple[float, float] | None,
    movielens: str | None = None,
) -> Interactions:
    """Check the ratings (`_ratings`: against `scale`, else MovieLens' own when `movielens` names the release), and
    cross-check them against the side files, so every id a rating uses can be looked up. `side` are the side files
    read, whose codecs are recorded with the ratings file's."""
    ratings = _ratings(table, scale, movielens)
    if items_path is not None:
        table.known(ratings["item_id"], items.index, "item id", items_path)
    if users is not None and users_path is not None:
        table.known(ratings["user_id"], users.index, "user id", users_path)
    encodings = {t.path.name: t.encoding for t in sorted([table, *side], key=lambda t: t.path.name)}
    return Interactions(ratings=ratings, items=items, users=users, name=name, encodings=encodings)


def _users_frame(
    ids: pd.Series, age: pd.Series, gender: pd.Series, occupation: pd.Series
) -> pd.DataFrame:
    frame = pd.DataFrame({"user_id": ids, "age": age, "gender": gender, "occupation": occupation})
    return frame.set_index("user_id")


def read_ml100k(
    folder: str | Path, encoding: str = "auto", rating_scale: Sequence[float] | None = None
) -> Interactions:
    """MovieLens-100K: u.data and u.item are required, u.user is optional. `encoding`: 'auto' (UTF-8 when
    valid, else Latin-1, as GroupLens ships u.item) or a codec forced on every file. Ratings must be whole stars
    1 to 5, or lie in `rating_scale` ([lowest, highest]) when one is given; else DataFormatError with file:line."""
    folder, encoding, scale = _folder(folder), check_encoding(encoding), check_scale(rating_scale)
    item_path, user_path = folder / "u.item", folder / "u.user"
    fields = ("item_id", "title", "release_date", "video_release_date", "url", *ML100K_GENRES)
    table = item_table = _delimited(item_path, "|", fields, encoding)
    flags = []
    for genre in ML100K_GENRES:
        flag = table.frame[genre].str.strip()
        table.check(~flag.isin(["0", "1"]), flag, f"{genre} flag '{{}}' is not 0 or 1")
        flags.append((flag == "1").to_numpy())
    genres = [
        "|".join(genre for genre, on in zip(ML100K_GENRES, row) if on)
        for row in np.column_stack(flags)
    ]
    items = pd.DataFrame(
        {
            "item_id": table.unique_ids("item_id", "item id"),
            "title": table.frame["title"].str.strip(),
            "genres": pd.Series(genres, dtype="str"),
        }
    ).set_index("item_id")
    users, side = None, [item_table]
    if user_path.exists():
        table = _delimited(user_path, "|", ("user_id", "age", "gender", "occupation", "zip_code"), encoding)
        side.append(table)
        users = _users_frame(
            table.unique_ids("user_id", "user id"),
            table.number("age", "age", integer=True),
            table.gender("gender"),
            table.frame["occupation"].str.strip(),
        )
    ratings = _delimited(folder / "u.data", "\t", _RATING_FIELDS, encoding)
    return _assemble("ml-100k", ratings, items, item_path, users, user_path, side, scale, "ML-100K")


def read_ml1m(
    folder: str | Path, encoding: str = "auto", rating_scale: Sequence[float] | None = None
) -> Interactions:
    """MovieLens-1M: ratings.dat and movies.dat are required, users.dat is optional. `encoding`: 'auto'
    (UTF-8 when valid, else Latin-1, as GroupLens ships movies.dat) or a codec forced on every file. Ratings as
    in read_ml100k."""
    folder, encoding, scale = _folder(folder), check_encoding(encoding), check_scale(rating_scale)
    movie_path, user_path = folder / "movies.dat", folder / "users.dat"
    table = movie_table = _delimited(movie_path, "::", ("item_id", "title", "genres"), encoding)
    items = pd.DataFrame(
        {
            "item_id": table.unique_ids("item_id", "movie id"),
            "title": table.frame["title"].str.strip(),
            "genres": table.frame["genres"].str.strip(),
        }
    ).set_index("item_id")
    users, side = None, [movie_table]
    if user_path.exists():
        table = _delimited(user_path, "::", ("user_id", "gender", "age", "occupation", "zip_code"), encoding)
        side.append(table)
        codes = table.number("occupation", "occupation code", integer=True)
        valid = (codes >= 0) & (codes < len(ML1M_OCCUPATIONS))
        problem = f"occupation code '{{}}' is not between 0 and {len(ML1M_OCCUPATIONS) - 1}"
        table.check(~valid, table.frame["occupation"], problem)
        users = _users_frame(
            table.unique_ids("user_id", "user id"),
            table.number("age", "age", integer=True),
            table.gender("gender"),
            pd.Series(np.array(ML1M_OCCUPATIONS)[codes.to_numpy()], dtype="str"),
        )
    ratings = _delimited(folder / "ratings.dat", "::", _RATING_FIELDS, encoding)
    return _assemble("ml-1m", ratings, items, movie_path, users, user_path, side, scale, "ML-1M")


def read_csv_logs(
    path: str | Path, encoding: str = "auto", rating_scale: Sequence[float] | None = None
) -> Interactions:
    """Generic logs (GoodReads, Amazon, ...): a ratings CSV file, or a folder with
    ratings.csv and optional items.csv and users.csv. Without items.csv the items are
    the ids the ratings use, titled 'item <id>'. Profile columns missing from users.csv
    are left empty: age <NA> (nullable Int64), gender and occupation ''. `encoding` as in read_ml100k. A log
    declares no scale, so any finite rating is read unless `rating_scale` ([lowest, highest]) bounds them."""
    path, encoding, scale = Path(path), check_encoding(encoding), check_scale(rating_scale)
    if path.is_dir():
        ratings_path, items_path, users_path = (
            path / f"{stem}.csv" for stem in ("ratings", "items", "users")
        )
        name = path.resolve().name
    else:
        ratings_path, items_path, users_path = path, None, None
        name = path.stem
    table, side = _csv(ratings_path, encoding, _RATING_FIELDS), []
    if items_path is not None and items_path.exists():
        items_table = _csv(items_path, encoding, ("item_id", "title"), ("genres",))
        side.append(items_table)
        genres = items_table.frame.get("genres")
        items = pd.DataFrame(
            {
                "item_id": items_table.unique_ids("item_id", "item id"),
                "title": items_table.frame["title"].str.strip(),
                "genres": "" if genres is None else genres.str.strip(),
            }
        ).set_index("item_id")
    else:
        items_path = None
        ids = table.frame["item_id"].str.strip().drop_duplicates()
        items = pd.DataFrame(
            {"title": ("item " + ids).to_numpy(), "genres": ""}, index=pd.Index(ids, name="item_id")
        )
    users = None
    if users_path is not None and users_path.exists():
        users_table = _csv(users_path, encoding, ("user_id",), ("age", "gender", "occupation"))
        side.append(users_table)
        frame = users_table.frame
        blank = pd.Series("", index=frame.index, dtype="str")
        users = _users_frame(
            users_table.unique_ids("user_id", "user id"),
            users_table.number("age", "age", integer=True)
            if "age" in frame
            else pd.Series(pd.NA, index=frame.index, dtype="Int64"),
            users_table.gender("gender") if "gender" in frame else blank,
            frame["occupation"].str.strip() if "occupation" in frame else blank,
        )
    return _assemble(name, table, items, items_path, users, users_path, side, scale)


def read_interactions(path: str | Path, format: str = "auto", encoding: str = "auto",
                      rating_scale: Sequence[float] | None = None) -> Interactions:
    """Entry point for the CLI: `format` names the layout, or 'auto' infers it from the files;
    `encoding` is 'auto' (per file: UTF-8 when valid, else Latin-1) or a codec forced on every file;
    `rating_scale` ([lowest, highest], data.rating_scale) replaces the source's own scale when given."""
    if format not in FORMATS:
        raise LlmrecError(f"unknown data format '{format}'; choose one of {', '.join(FORMATS)}")
    path, encoding = Path(path), check_encoding(encoding)
    check_scale(rating_scale)  # a bad setting is named before any file is read
    if format == "auto":
        format = _detect(path)
    readers = {"ml-100k": read_ml100k, "ml-1m": read_ml1m, "csv": read_csv_logs}
    return readers[format](path, encoding, rating_scale)


def _detect(path: Path) -> str:
    if not path.exists():
        raise DataFormatError(path, "no such file or folder")
    if path.is_dir():
        for marker, format in _MARKERS:
            if (path / marker).is_file():
                return format
    elif path.suffix.lower() == ".csv":
        return "csv"
    raise DataFormatError(
        path,
        "cannot tell the data format: looked for a folder holding u.data (ml-100k), "
        "ratings.dat (ml-1m) or ratings.csv (csv), or a .csv file",
    )
