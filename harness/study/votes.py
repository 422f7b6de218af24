"""Import human-study votes: read CSV or JSON, validate each row, store, recompute, merge.

Vote files (the kit's CSV, or a crowd platform's export with the same columns) need the
columns ``rater_id``, ``item_id`` and ``answer``; ``design``, ``timestamp``, ``rater_slot``,
``trial``, ``response_ms`` and ``left`` are optional (``design``, when given, must match the
item's study). Answers: ``plausible`` | ``implausible`` for the plausibility design, ``a`` |
``b`` (the image of the pair chosen as real) for 2AFC; case and surrounding spaces do not
matter. Header names are matched the same way, with spaces and hyphens read as ``_``.

JSON files hold a list of objects with those keys, or one object per line (JSON Lines).
Accepted votes are kept in ``RUN_DIR/study/votes.csv``, one per (rater, item): the first
answer wins, so importing a file again changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.atomic import write_text, write_with
from harness.errors import HarnessError
from harness.rundir import SUMMARY_COLUMNS, RunDir, write_table
from harness.study.kit import DESIGNS, load_manifest, study_dir
from harness.study.stats import StudyStats, fooling_stats, markdown_section, plausibility_stats
from harness.study.stats import summary_rows as study_summary_rows

REQUIRED = ("rater_id", "item_id", "answer")
OPTIONAL = ("design", "timestamp", "rater_slot", "trial", "response_ms", "left")
ANSWERS = {"plausibility": ("plausible", "implausible"), "2afc": ("a", "b")}
#: Columns of RUN_DIR/study/votes.csv: the vote, what its item is, where it came from.
STORED = ("rater_id", "item_id", "design", "answer", "method", "image", "kind", "chose_real",
          "timestamp", "source", "line")


@dataclass
class Problem:
    """A rejected row (or a note about a file), located as the user sees it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class FileReport:
    """What happened to one file's rows."""

    file: str
    read: int = 0
    new: int = 0
    already: int = 0
    blank: int = 0
    rejected: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    #: Why no row of the file could be read (its other counts are then 0), else None.
    unusable: str | None = None

    @property
    def kept(self) -> int:
        return self.new + self.already


@dataclass
class ImportReport:
    """The outcome of one import: per-file reports, the stored total and the statistics."""

    files: list[FileReport]
    stored: int
    raters: int
    studies: list[StudyStats]
    votes_path: Path

    @property
    def kept(self) -> int:
        return sum(f.kept for f in self.files)

    @property
    def unusable(self) -> list[FileReport]:
        return [f for f in self.files if f.unusable]


def _header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _decode(path: Path) -> str:
    if path.exists() and not path.is_file():  # a FIFO would block the read
        raise HarnessError(f"{path}: not a regular file; a vote file is CSV or JSON text")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read the vote file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                           f"CSV or JSON") from None


def _check_columns(path: Path, columns: Sequence[str], line: int) -> list[str]:
    """The extra columns; a HarnessError when a required one is missing."""
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        found = ", ".join(c for c in dict.fromkeys(columns) if c) or "nothing"
        raise HarnessError(f"{path}:{line}: missing column(s) {', '.join(missing)} (found: "
                           f"{found}); expected {', '.join(REQUIRED)}")
    return [c for c in dict.fromkeys(columns) if c not in REQUIRED + OPTIONAL]


def _read_csv(path: Path, text: str, report: FileReport) -> Iterator[tuple[int, dict | str]]:
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise HarnessError(f"{path}: empty file; expected a header line with "
                           f"{', '.join(REQUIRED)}")
    counts = {d: lines[first].count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=counts.get)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on at the next line
            if header is None:
                raise HarnessError(f"{path}:{start}: unreadable CSV header ({exc})") from None
            yield start, f"unreadable CSV row ({exc})"
            continue
        if not any(cell.strip() for cell in row):
            if header is not None:
                report.blank += 1
            continue
        if header is None:
            header = [_header_key(c) for c in row]
            extra = _check_columns(path, header, start)
            if extra:
                report.notes.append(Problem(report.file, start,
                                            f"extra column(s) ignored: {', '.join(extra)}"))
            continue
        if len(row) > len(header) and any(c.strip() for c in row[len(header):]):
            yield start, f"{len(row)} fields but the header has {len(header)}"
            continue
        yield start, {k: v for k, v in zip(header, row) if k}


class _Malformed(str):
    """Why a JSON line could not be parsed (told apart from a JSON string value)."""


def _json_rows(path: Path, text: str) -> Iterator[tuple[int, object]]:
    """(line, value) of each element of a top-level JSON array, or of each JSON line."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if not stripped.startswith("["):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    yield number, _Malformed(f"not valid JSON ({exc})")
        return
    pos = len(text) - len(stripped) + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise HarnessError(f"{path}: JSON array is not closed with ]")
        if text[pos] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise HarnessError(f"{path}: not valid JSON ({exc})") from None
        yield text.count("\n", 0, pos) + 1, value
        pos = end


def _read_json(path: Path, text: str, report: FileReport) -> Iterator[tuple[int, dict | str]]:
    rows = list(_json_rows(path, text))
    keys = [_header_key(str(k)) for _, v in rows if isinstance(v, dict) for k in v]
    if rows:
        extra = _check_columns(path, keys, rows[0][0])
        if extra:
            report.notes.append(Problem(report.file, rows[0][0],
                                        f"extra key(s) ignored: {', '.join(extra)}"))
    for line, value in rows:
        if isinstance(value, _Malformed):
            yield line, str(value)
        elif not isinstance(value, dict):
            yield line, f"expected an object with {', '.join(REQUIRED)}"
        else:
            yield line, {_header_key(str(k)): "" if v is None else str(v)
                         for k, v in value.items()}


def read_rows(path: Path, report: FileReport) -> list[tuple[int, dict | str]]:
    """Every data row of a vote file as (line, fields) or (line, why it is malformed).

    Raises HarnessError when the file cannot be used at all: unreadable, not UTF-8, not
    valid JSON, or missing a required column.
    """
    path = Path(path)
    text = _decode(path)
    is_json = (path.suffix.lower() in (".json", ".jsonl", ".ndjson")
               or text.lstrip()[:1] in ("[", "{"))
    reader = _read_json if is_json else _read_csv
    return list(reader(path, text, report))


def load_items(run_dir: Path) -> dict[str, dict]:
    """Every item id of every exported kit of the run, with its design added."""
    items = {}
    for design in DESIGNS:
        manifest = load_manifest(run_dir, design)
        for item_id, item in (manifest or {}).get("items", {}).items():
            items[item_id] = {**item, "design": design}
    return items


def validate(fields: dict, items: dict[str, dict]) -> tuple[dict | None, list[str]]:
    """The vote a row makes (in the stored columns), or the reasons it is rejected."""
    errors = []
    rater = fields.get("rater_id", "").strip()
    item_id = fields.get("item_id", "").strip()
    answer = fields.get("answer", "").strip().lower()
    design = fields.get("design", "").strip().lower()
    if not rater:
        errors.append("empty rater_id")
    item = items.get(item_id)
    if not item_id:
        errors.append("empty item_id")
    elif item is None:
        errors.append(f"unknown item_id {item_id!r} (not in any study manifest of this run)")
    if item is not None:
        if design and design != item["design"]:
            errors.append(f"design {design!r}, but item {item_id} belongs to the "
                          f"{item['design']} study")
        allowed = ANSWERS[item["design"]]
        if answer not in allowed:
            errors.append(f"answer {fields.get('answer', '').strip()!r} is not one of "
                          f"{', '.join(allowed)}")
    elif not answer:
        errors.append("empty answer")
    if errors:
        return None, errors
    vote = {"rater_id": rater, "item_id": item_id, "design": item["design"], "answer": answer,
            "method": item.get("method") or "", "image": item.get("image", ""),
            "kind": item.get("kind", ""), "timestamp": fields.get("timestamp", "").strip(),
            "chose_real": ""}
    if item["design"] == "2afc":
        vote["chose_real"] = "true" if answer == item["real"] else "false"
    return vote, []


def votes_path(run_dir: Path) -> Path:
    return study_dir(run_dir) / "votes.csv"


def load_votes(run_dir: Path) -> list[dict]:
    """The votes stored by earlier imports."""
    path = votes_path(run_dir)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write_votes(path: Path, votes: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STORED, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(votes)
    write_text(path, buffer.getvalue())


def compute(votes: Sequence[dict]) -> list[StudyStats]:
    """The statistics of every design that has votes."""
    out = []
    plaus = [v for v in votes if v["design"] == "plausibility"]
    if plaus:
        out.append(plausibility_stats(plaus))
    pairs = [{**v, "chose_real": v["chose_real"] == "true"} for v in votes
             if v["design"] == "2afc"]
    if pairs:
        out.append(fooling_stats(pairs))
    return out


def merge_outputs(run_dir: Path, studies: list[StudyStats]) -> None:
    """Replace the ``human-*`` rows of summary.csv and the human section of table.md."""
    import pandas as pd


    summary_file = RunDir(run_dir).summary_file
    # Read as text so the run's own rows are written back exactly as they were.
    frame = (pd.read_csv(summary_file, dtype=str, keep_default_na=False)
             if summary_file.exists() else pd.DataFrame(columns=SUMMARY_COLUMNS, dtype=str))
    frame = frame[~frame["metric"].str.startswith("human-")]
    human = pd.DataFrame([r for s in studies for r in study_summary_rows(s)],
                         columns=SUMMARY_COLUMNS, dtype=str)
    parts = [f for f in (frame.reindex(columns=SUMMARY_COLUMNS), human) if len(f)]
    frame = pd.concat(parts, ignore_index=True) if parts else human
    write_with(summary_file, lambda p: frame.to_csv(p, index=False))

    write_table(run_dir, study=markdown_section(studies))


def _outputs(run_dir: Path) -> dict[Path, str]:
    """The files an import writes, resolved: a vote file must be none of them."""
    return {p.resolve(): p.name for p in (votes_path(run_dir), run_dir / "summary.csv",
                                          run_dir / "table.md")}


def import_votes(run_dir: Path, files: Sequence[Path]) -> ImportReport:
    """Validate ``files``, store the new votes, recompute the statistics and merge them.

    With no ``files`` the stored votes are merged again (after the run's tables were
    rewritten, e.g. by ``--resume``). A file that cannot be used at all (unreadable, not
    UTF-8, not valid JSON, missing a required column, or one of the files this import writes)
    is reported with its reason in its :class:`FileReport` and the other files are imported;
    when no file is usable, nothing is written (HarnessError). Good rows are kept and each bad
    one is reported with its file and line.
    """
    run_dir = Path(run_dir)
    if not RunDir(run_dir).test_lab_file.exists() and not study_dir(run_dir).exists():
        raise HarnessError(f"{run_dir}: not a run directory (no test_lab.npy)")
    items = load_items(run_dir)
    if not items:
        raise HarnessError(f"{run_dir}: no study manifest in {study_dir(run_dir)}; export a "
                           f"kit first (harness study export {run_dir} --out DIR)")
    parsed, outputs = [], _outputs(run_dir)
    for path in files:
        report = FileReport(str(path))
        try:
            if Path(path).resolve() in outputs:
                raise HarnessError(f"{path}: this import writes that file "
                                   f"({outputs[Path(path).resolve()]}); give the raters' "
                                   f"vote files")
            rows = read_rows(Path(path), report)
        except HarnessError as exc:
            report = FileReport(str(path), unusable=str(exc))
            rows = []
        parsed.append((report, rows))
    if files and all(r.unusable for r, _ in parsed):
        raise HarnessError("; ".join(r.unusable for r, _ in parsed))

    stored = load_votes(run_dir)
    seen = {(v["rater_id"], v["item_id"]): v for v in stored}
    fresh_from: dict[tuple[str, str], str] = {}
    for report, rows in parsed:
        for line, fields in rows:
            report.read += 1
            if isinstance(fields, str):
                report.rejected.append(Problem(report.file, line, fields))
                continue
            vote, errors = validate(fields, items)
            if errors:
                report.rejected.append(Problem(report.file, line, "; ".join(errors)))
                continue
            key = (vote["rater_id"], vote["item_id"])
            if key in fresh_from:
                report.rejected.append(Problem(report.file, line, (
                    f"duplicate: rater {key[0]!r} already answered item {key[1]} at "
                    f"{fresh_from[key]}; the first answer is kept")))
            elif key in seen and seen[key]["answer"] != vote["answer"]:
                first = seen[key]
                report.rejected.append(Problem(report.file, line, (
                    f"duplicate: rater {key[0]!r} already answered item {key[1]} with "
                    f"{first['answer']!r} ({first['source']}:{first['line']}, imported "
                    f"earlier); the first answer is kept")))
            elif key in seen:
                report.already += 1
            else:
                vote.update(source=Path(report.file).name, line=line)
                seen[key] = vote
                fresh_from[key] = f"{report.file}:{line}"
                stored.append(vote)
                report.new += 1

    if any(r.new for r, _ in parsed):
        _write_votes(votes_path(run_dir), stored)
    studies = compute(stored)
    if any(r.kept for r, _ in parsed) or (not files and stored):
        merge_outputs(run_dir, studies)
    return ImportReport([r for r, _ in parsed], len(stored),
                        len({v["rater_id"] for v in stored}), studies, votes_path(run_dir))
