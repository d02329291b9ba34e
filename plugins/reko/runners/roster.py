"""A race roster (bib, name, category) from CSV, and snapping a voted number to a bib on it.

A roster turns "some digits OCR agreed on" into "a runner who started": a read one edit away from
exactly one bib is that bib, a read near two bibs is refused rather than guessed, and a number
that is nowhere near the roster is not a runner (a sign, a clock, a spectator's shirt).
"""

from __future__ import annotations

import csv
import functools
import io
import re
import unicodedata
from dataclasses import dataclass

_BIB = re.compile(r"^[0-9]{1,6}$")
_TOKEN = re.compile(r"\w+")


class RosterError(ValueError):
    """The roster cannot be used; the message names the source and, where it applies, the row."""


@dataclass(frozen=True)
class RosterEntry:
    bib: str
    name: str | None = None
    category: str | None = None


def one_edit_neighbours(number: str) -> set[str]:
    """Every digit string one substitution, insertion or deletion away from `number`."""
    out: set[str] = set()
    digits = "0123456789"
    for i in range(len(number)):
        out.add(number[:i] + number[i + 1 :])
        for d in digits:
            if d != number[i]:
                out.add(number[:i] + d + number[i + 1 :])
    for i in range(len(number) + 1):
        for d in digits:
            out.add(number[:i] + d + number[i:])
    out.discard(number)
    out.discard("")
    return out


def _fold(text: str) -> str:
    """Case- and accent-insensitive form for name search ("jose" finds "José")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Roster:
    """Bibs of one race, keyed by bib string (leading zeros are significant: "007" != "7")."""

    def __init__(self, entries: dict[str, RosterEntry]):
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, bib: object) -> bool:
        return bib in self.entries

    @classmethod
    def parse(cls, text: str, source: str = "roster") -> Roster:
        """Parse CSV text with a header row that has a `bib` column; raise RosterError on bad rows."""
        text = text.lstrip("\ufeff")
        if not text.strip():
            raise RosterError(f"{source}: the roster is empty (expected a header row with a 'bib' column)")
        rows = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(rows)
        except csv.Error as exc:
            raise RosterError(f"{source} row 1: not valid CSV ({exc})") from exc
        columns = [c.strip().lower() for c in header]
        if "bib" not in columns:
            raise RosterError(f"{source} row 1: the header {header!r} has no 'bib' column")
        at = {name: columns.index(name) for name in ("bib", "name", "category") if name in columns}
        entries: dict[str, RosterEntry] = {}
        first_row: dict[str, int] = {}
        row_number = 1
        try:
            for row_number, row in enumerate(rows, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line (a trailing newline, a spacer)
                if len(row) != len(header):
                    raise RosterError(
                        f"{source} row {row_number}: {len(row)} fields where the header has {len(header)}"
                    )
                bib = unicodedata.normalize("NFKC", row[at["bib"]]).strip()
                if not bib:
                    raise RosterError(f"{source} row {row_number}: the bib is empty")
                if not _BIB.match(bib):
                    raise RosterError(f"{source} row {row_number}: bib {bib!r} is not 1-6 digits")
                if bib in entries:
                    raise RosterError(
                        f"{source} row {row_number}: bib {bib} is a duplicate of row {first_row[bib]}"
                    )
                name = (row[at["name"]].strip() or None) if "name" in at else None
                category = (row[at["category"]].strip() or None) if "category" in at else None
                entries[bib] = RosterEntry(bib=bib, name=name, category=category)
                first_row[bib] = row_number
        except csv.Error as exc:
            raise RosterError(f"{source} row {row_number + 1}: not valid CSV ({exc})") from exc
        if not entries:
            raise RosterError(f"{source}: the roster has a header but no runners")
        return cls(entries)

    def snap(self, number: str) -> tuple[RosterEntry | None, str]:
        """(entry, why) for a voted number: an exact bib, the one bib one edit away, or a refusal."""
        if number in self.entries:
            return self.entries[number], "exact"
        near = sorted(n for n in one_edit_neighbours(number) if n in self.entries)
        # A short read may be a longer bib cut off at an edge (half hidden behind a runner, or
        # at the frame's side): a snap to its one-edit neighbour is then a guess between them.
        cut_from = sorted(self._cut_off_from.get(number, frozenset()) - set(near))
        if len(near) == 1 and not cut_from:
            return self.entries[near[0]], f"snapped from {number}"
        if near:
            return None, "ambiguous: " + ", ".join(near + cut_from)
        return None, "not on roster"

    @functools.cached_property
    def _cut_off_from(self) -> dict[str, frozenset[str]]:
        """Bibs by each start and end of two digits or more that they have (built on first use:
        a roster of 50,000 bibs is scanned once, not once per track)."""
        cuts: dict[str, set[str]] = {}
        for bib in self.entries:
            for k in range(2, len(bib)):
                cuts.setdefault(bib[:k], set()).add(bib)
                cuts.setdefault(bib[-k:], set()).add(bib)
        return {cut: frozenset(bibs) for cut, bibs in cuts.items()}

    def search_names(self, query: str) -> list[RosterEntry]:
        """Entries whose name has every token of the query (case- and accent-insensitive)."""
        wanted = set(_TOKEN.findall(_fold(query)))
        if not wanted:
            return []
        found = [
            entry
            for entry in self.entries.values()
            if entry.name and wanted <= set(_TOKEN.findall(_fold(entry.name)))
        ]
        return sorted(found, key=lambda e: (e.name or "", e.bib))


def load_roster(uri: str) -> Roster:
    """Read a roster CSV from `file://` or `s3://[conn@]bucket/key`."""
    from reko.media import InvalidVideoError
    from reko.storage import parse_uri

    try:
        path = parse_uri(uri, "roster_uri")
    except InvalidVideoError as exc:
        raise RosterError(str(exc)) from exc
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise RosterError(f"{uri}: roster not found") from exc
    except IsADirectoryError as exc:
        raise RosterError(f"{uri}: is a folder, not a roster CSV") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError(f"{uri}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return Roster.parse(text, uri)
