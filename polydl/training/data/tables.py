"""Tables of samples: a ``.csv`` file's rows (its header row told from data), and :class:`Frame`,
the columns of a table by name, each of numbers or of text, with its missing cells marked.

A cell is missing when it is empty or one of :data:`MISSING` (``NA``, ``NaN``, ``null``, ...). A
column is numbers when every cell that is not missing is a number, and text (a categorical
feature, or class names) when most of them are not; a column of numbers with a few words in it
is an error naming the first word (usually a typo). Rows are named in messages as the lines of
the file (``line 5``) or as samples counted from 1 (``sample 5``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...checks import shown
from .checks import DataError
from .files import read_csv_rows

__all__ = ["MISSING", "is_number", "is_missing", "is_header", "read_table", "Frame", "parse_column", "frame_of_rows",
           "NUMBER", "TEXT"]

#: cells that stand for a missing value (besides an empty cell), as pandas reads them by default
MISSING = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "-NaN", "NULL", "null", "None", "<NA>", "#N/A"})
NUMBER, TEXT = "number", "text"


def is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def is_missing(s) -> bool:
    return s is None or (isinstance(s, str) and s.strip() in MISSING)


def is_header(rows, known=()) -> bool:
    """Whether the first row names the columns: every cell is a name the run knows (``known``),
    or it has an empty cell, or text in a column whose next row is a number (a column of class
    names is text in every row, so it does not count)."""
    first = [c.strip() for c in rows[0]]
    if known and all(c in known for c in first):
        return True
    if any(not c for c in first):
        return True
    text = [j for j, c in enumerate(first) if not is_number(c)]
    if len(rows) < 2:
        return bool(text) and not known
    second = rows[1]
    return any(j < len(second) and is_number(second[j].strip()) for j in text)


def read_table(path: Path, known=()):
    """(header names or None, rows of strings) of a ``.csv`` file, every row of the same width;
    ``known``: the column names a run knows, which mark a header row."""
    rows = read_csv_rows(path)
    if not rows:
        raise DataError(f"data file {path} is empty: it has no rows")
    header = None
    if is_header(rows, known):
        header = [c.strip() or f"column_{j + 1}" for j, c in enumerate(rows[0])]
        rows = rows[1:]
        seen = set()
        for name in header:
            if name in seen:
                raise DataError(f"{path}: the header names the column {shown(name)} twice; give every column its "
                                "own name")
            seen.add(name)
    width = len(header) if header is not None else len(rows[0]) if rows else 0
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + (2 if header is not None else 1)
            raise DataError(f"{path} line {line} has {len(r)} columns, expected {width}")
    return header, rows


@dataclass
class Frame:
    """Columns of samples by name: ``columns[j]`` is float64 (NaN where missing) or an object
    array of str (None where missing). ``label`` is what messages call the table, ``numbers``
    each row's line in the file (``unit="line"``) or sample number (``unit="sample"``), counted
    from 1; ``named``: the names came with the data (a header row, a DataFrame's columns), else
    they are positions ``x0, x1, ...``. ``matrix``: every column at once (float64 (m, n)) where
    the table came as one array of numbers."""

    names: list
    columns: list
    label: str
    numbers: np.ndarray = None
    unit: str = "sample"
    named: bool = False
    matrix: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.numbers is None:
            self.numbers = np.arange(1, len(self) + 1)

    @classmethod
    def from_matrix(cls, X: np.ndarray, label: str, names=None, named: bool = False) -> "Frame":
        """A frame of the columns of a float64 (m, n) array (views, not copies)."""
        names = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
        return cls(names, [X[:, j] for j in range(X.shape[1])], label, named=named, matrix=X)

    def __len__(self) -> int:
        if self.matrix is not None:
            return len(self.matrix)
        return len(self.columns[0]) if self.columns else 0

    def kind(self, j: int) -> str:
        return NUMBER if self.columns[j].dtype.kind == "f" else TEXT

    def where(self, i: int) -> str:
        """Row ``i`` in messages: ``line 7`` of a file, or ``sample 7``."""
        return f"{self.unit} {int(self.numbers[i])}"

    def column(self, name: str):
        return self.columns[self.names.index(name)]

    def take(self, rows) -> "Frame":
        """The rows ``rows`` (an index array), in that order."""
        matrix = self.matrix[rows] if self.matrix is not None else None
        cols = [matrix[:, j] for j in range(matrix.shape[1])] if matrix is not None else [c[rows] for c in self.columns]
        return replace(self, columns=cols, numbers=self.numbers[rows], matrix=matrix)

    def select(self, names) -> "Frame":
        """The columns ``names``, in that order."""
        idx = [self.names.index(n) for n in names]
        matrix = None
        if self.matrix is not None:
            matrix = self.matrix if idx == list(range(self.matrix.shape[1])) else self.matrix[:, idx]
        return replace(self, names=list(names), columns=[self.columns[j] for j in idx], matrix=matrix)


def _not_a_number(label, where, name, value, why) -> DataError:
    return DataError(f"{label} {where}: {name} is {shown(value)}, not a number; {why}")


def parse_column(cells: list, name: str, label: str, where, kind: str | None = None):
    """The cells (strings) of column ``name`` as float64 (NaN where missing) or an object array of
    str (None where missing). ``kind`` (``"number"`` or ``"text"``, e.g. a run's) is taken as
    given; None infers it: numbers where every cell that is not missing is one, text where most
    are not, else the first cell that is not a number is an error (``where(i)`` names row i)."""
    cells = [c.strip() for c in cells]
    missing = [c in MISSING for c in cells]
    if kind == TEXT:
        return np.array([None if miss else c for c, miss in zip(cells, missing, strict=True)], dtype=object)
    values = np.full(len(cells), np.nan)
    words = []
    for i, (c, miss) in enumerate(zip(cells, missing, strict=True)):
        if miss:
            continue
        try:
            values[i] = float(c)
        except ValueError:
            if kind == NUMBER:
                raise _not_a_number(label, where(i), name, c, f"the run was trained on numbers in {name}") from None
            words.append(i)
    if not words:
        return values
    present = len(cells) - sum(missing)
    if len(words) * 2 > present:
        return parse_column(cells, name, label, where, TEXT)
    i = words[0]
    raise _not_a_number(label, where(i), name, cells[i], f"features must be numeric, and {name} holds numbers in "
                        f"{present - len(words)} of its {present} rows; fix that value (a column of words is a "
                        "categorical feature)")


def frame_of_rows(path, header, rows, cols, kinds=None, names=None) -> Frame:
    """The columns ``cols`` (indices) of a table's ``rows`` as a :class:`Frame` named by the header
    (else by position ``x<j>``, or ``names``); ``kinds``: each column's kind, None to infer it."""
    first = 2 if header is not None else 1
    lines = np.arange(first, first + len(rows))
    label = str(path)

    def where(i):
        return f"line {i + first}"

    out_names, columns = [], []
    for k, c in enumerate(cols):
        name = names[k] if names is not None else header[c] if header is not None else f"x{c}"
        kind = kinds[k] if kinds is not None else None
        columns.append(parse_column([r[c] for r in rows], name, label, where, kind))
        out_names.append(name)
    if columns and all(col.dtype.kind == "f" for col in columns):
        matrix = np.stack(columns, axis=1) if rows else np.empty((0, len(columns)))
        return Frame(out_names, [matrix[:, j] for j in range(len(columns))], label, lines, "line",
                     header is not None, matrix)
    return Frame(out_names, columns, label, lines, "line", header is not None)
