"""reko.runners: number candidates, rosters, and passes from synthetic finish-line reads.

Reads are built from closed-form motion (a box moving at a constant speed along a row), so each
test states the scene it models: race pace at 1 s sampling, an occlusion, a crossing, a clock.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from reko.runners.passes import _UNSEEN, PassSettings, RunnerPass, assign, find_passes
from reko.runners.reads import Read, number_candidate
from reko.runners.roster import Roster, RosterEntry, RosterError, load_roster

W, H = 0.055, 0.045  # a 4-digit bib's word box in a 1280x720 frame (~70x32 px)


def bib(
    number: str,
    *,
    x0: float,
    speed: float,
    frames: range,
    interval_ms: int = 1000,
    y: float = 0.5,
    h: float = H,
    w: float = W,
    texts: dict[int, str | None] | None = None,
    confidence: float = 90.0,
) -> list[Read]:
    """Reads of one word whose centre moves `speed` frame widths per second from x0 at frames[0].

    `texts` overrides the text at a frame index; None there means the word is not read.
    """
    reads = []
    for frame in frames:
        text = (texts or {}).get(frame, number)
        if text is None:
            continue
        x = x0 + speed * (frame - frames[0]) * interval_ms / 1000
        reads.append(
            Read(
                frame_index=frame,
                timestamp_ms=frame * interval_ms,
                text=text,
                confidence=confidence,
                left=x - w / 2,
                top=y - h / 2,
                width=w,
                height=h,
                frame_uri=f"file:///frames/f.{frame:07d}.jpg",
            )
        )
    return reads


def summary(result) -> list[tuple[str, int, int, int]]:
    """(number, start_frame, end_frame, frame_count) per pass, in the result's order."""
    return [(p.number, p.start_frame, p.end_frame, len(p.frames)) for p in result.passes]


ONE_S = PassSettings(interval_ms=1000)
HALF_S = PassSettings(interval_ms=500)


# ---------------------------------------------------------------- number_candidate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4172", "4172"),
        ("4I72", "4172"),
        ("1042.", "1042"),
        ("(1042)", "1042"),
        ("#5O1", "501"),
        ("４１７２", "4172"),  # full-width digits (NFKC)
        ("2026", "2026"),
        ("B8", "88"),
        ("S0I2", "5012"),
        ("00:41:27", None),
        ("3.5", None),
        ("KM", None),
        ("SOLO", None),  # all letters: never a number through the confusion map
        ("BIB", None),
        ("7", None),  # one digit
        ("1234567", None),  # seven digits
        ("41-72", None),
        ("", None),
        ("...", None),
    ],
)
def test_number_candidate(text, expected):
    assert number_candidate(text) == expected


# ---------------------------------------------------------------- roster


ROSTER_CSV = (
    "\ufeffBib,Name,Category,Club\n4172,Ana Pérez,F40,Ateneo\n4178,Bo Li,M35,\n\n0815,Ana Smith,F20,x\n"
)


def test_roster_parses_bom_header_case_extra_columns_and_blank_lines():
    roster = Roster.parse(ROSTER_CSV, "r.csv")
    assert roster.entries == {
        "4172": RosterEntry("4172", "Ana Pérez", "F40"),
        "4178": RosterEntry("4178", "Bo Li", "M35"),
        "0815": RosterEntry("0815", "Ana Smith", "F20"),
    }
    assert Roster.parse("bib\n12\n").entries == {"12": RosterEntry("12")}


def test_roster_snap_exact_snapped_ambiguous_and_not_on_roster():
    roster = Roster.parse("bib\n4172\n4178\n90\n")
    assert roster.snap("4172") == (roster.entries["4172"], "exact")
    assert roster.snap("4175") == (None, "ambiguous: 4172, 4178")
    assert roster.snap("417") == (None, "ambiguous: 4172, 4178")  # one insertion from both
    assert roster.snap("900") == (roster.entries["90"], "snapped from 900")  # one deletion
    assert roster.snap("9") == (roster.entries["90"], "snapped from 9")
    assert roster.snap("3178") == (roster.entries["4178"], "snapped from 3178")
    assert roster.snap("5555") == (None, "not on roster")


def test_roster_name_search_is_token_case_and_accent_insensitive():
    roster = Roster.parse(ROSTER_CSV)
    assert [e.bib for e in roster.search_names("ana")] == ["4172", "0815"]
    assert [e.bib for e in roster.search_names("PEREZ ana")] == ["4172"]
    assert roster.search_names("an") == []  # tokens, not substrings
    assert roster.search_names("  ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "r.csv: the roster is empty (expected a header row with a 'bib' column)"),
        ("\ufeff  \n", "r.csv: the roster is empty (expected a header row with a 'bib' column)"),
        ("name,category\nAna,F40\n", "r.csv row 1: the header ['name', 'category'] has no 'bib' column"),
        ("bib,name\n4172,Ana\n4178\n", "r.csv row 3: 1 fields where the header has 2"),
        ("bib,name\n4172,Ana,F40\n", "r.csv row 2: 3 fields where the header has 2"),
        ("bib,name\n,Ana\n", "r.csv row 2: the bib is empty"),
        ("bib,name\n41A2,Ana\n", "r.csv row 2: bib '41A2' is not 1-6 digits"),
        ("bib\n1234567\n", "r.csv row 2: bib '1234567' is not 1-6 digits"),
        ("bib,name\n4172,Ana\n4178,Bo\n4172,Cy\n", "r.csv row 4: bib 4172 is a duplicate of row 2"),
        ("bib,name\n", "r.csv: the roster has a header but no runners"),
    ],
)
def test_roster_errors_name_source_and_row(text, message):
    with pytest.raises(RosterError) as caught:
        Roster.parse(text, "r.csv")
    assert str(caught.value) == message


def test_load_roster_from_file_uri_and_missing_file(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER_CSV, encoding="utf-8")
    assert set(load_roster(path.as_uri()).entries) == {"4172", "4178", "0815"}
    missing = (tmp_path / "nope.csv").as_uri()
    with pytest.raises(RosterError, match=r"nope\.csv: roster not found"):
        load_roster(missing)
    with pytest.raises(RosterError, match="unsupported scheme 'http'"):
        load_roster("http://example.com/roster.csv")
    (tmp_path / "bad.csv").write_text("bib\n12\n12\n")
    with pytest.raises(RosterError, match=r"bad\.csv row 3: bib 12 is a duplicate of row 2"):
        load_roster((tmp_path / "bad.csv").as_uri())


# ---------------------------------------------------------------- assignment


def test_assign_is_optimal_where_greedy_is_not():
    # Greedy takes the cheapest pair (0, 0) first and is left with 100; the optimum crosses.
    assert assign([[1, 2], [2, 100]]) == [(0, 1), (1, 0)]
    assert assign([[1, _UNSEEN], [_UNSEEN, _UNSEEN], [0.5, 3]]) == [(0, 0), (2, 1)]
    assert assign([[_UNSEEN, _UNSEEN]]) == []
    assert assign([[0.2], [0.1], [0.3]]) == [(1, 0)]
    assert assign([]) == []


# ---------------------------------------------------------------- tracks and passes


def test_race_pace_at_1s_sampling_is_one_pass():
    # Four observations 30 % of the frame apart: consecutive boxes never overlap (IoU 0).
    reads = bib("4172", x0=0.06, speed=0.3, frames=range(10, 14))
    result = find_passes(reads, ONE_S)
    assert summary(result) == [("4172", 10, 13, 4)]
    assert result.rejected == []


def test_two_runners_a_body_apart_at_race_pace_keep_their_numbers():
    # The follower's next box is nearer to the leader's last box than the leader's next box is.
    reads = bib("4172", x0=0.23, speed=0.3, frames=range(0, 3)) + bib(
        "5830", x0=0.08, speed=0.3, frames=range(0, 4), y=0.51
    )
    assert sorted(summary(find_passes(reads, ONE_S))) == [("4172", 0, 2, 3), ("5830", 0, 3, 4)]


def test_half_second_sampling_is_one_pass():
    reads = bib("4172", x0=0.05, speed=0.3, frames=range(20, 27), interval_ms=500)
    assert summary(find_passes(reads, HALF_S)) == [("4172", 20, 26, 7)]


def test_walker_is_a_pass_not_static():
    reads = bib("88", x0=0.4, speed=0.03, frames=range(0, 8), w=0.03)  # 1 box width per second
    assert summary(find_passes(reads, ONE_S)) == [("88", 0, 7, 8)]


def test_occlusion_of_two_frames_at_1s_sampling_stays_one_pass():
    hidden = {3: None, 4: None}  # another runner in front: 2 s without a read, 3 s between reads
    reads = bib("4172", x0=0.1, speed=0.12, frames=range(0, 8), texts=hidden)
    result = find_passes(reads, ONE_S)
    assert summary(result) == [("4172", 0, 7, 6)]


def test_occlusion_of_2_5_s_by_a_nearer_runner_at_half_second_sampling_stays_one_pass():
    # 5830, nearer the camera (bigger bib), overtakes 4172 slowly and hides it for 2.5 s.
    frames = range(0, 16)
    x_hidden = [0.2 + 0.1 * f / 2 for f in frames]
    x_nearer = [0.075 + 0.15 * (f - 1) / 2 for f in frames]
    hidden = {f: None for f in frames if abs(x_hidden[f] - x_nearer[f]) < 1.3 * W}
    assert sorted(hidden) == list(range(6, 11))
    reads = bib("4172", x0=0.2, speed=0.1, frames=frames, interval_ms=500, texts=hidden)
    reads += bib(
        "5830", x0=0.075, speed=0.15, frames=range(1, 16), interval_ms=500, y=0.51, h=1.3 * H, w=1.3 * W
    )
    result = find_passes(reads, HALF_S)
    assert sorted(summary(result)) == [("4172", 0, 15, 11), ("5830", 1, 15, 15)]
    assert result.rejected == []


def test_a_runner_hidden_behind_a_nearer_runner_longer_than_max_gap_stays_one_pass():
    # 6439 is read once, then hidden 4 s (frames 1-4, 5 s between reads) behind 512, who runs
    # over its path nearer the camera; it comes out moving on the same line at the same pace.
    hidden = dict.fromkeys(range(1, 5))
    runner = bib("6439", x0=0.05, speed=0.13, frames=range(0, 8), texts=hidden)
    nearer = bib("512", x0=0.12, speed=0.15, frames=range(1, 6), y=0.54, w=0.04)
    assert sorted(summary(find_passes(runner + nearer, ONE_S))) == [("512", 1, 5, 5), ("6439", 0, 7, 4)]
    # Unseen as long with nothing over its path, the runner is gone: the lone read stays alone.
    assert summary(find_passes(runner, ONE_S)) == [("6439", 5, 7, 3)]
    # And a cover does not stretch the gap without end (COVERED_MAX_FACTOR).
    slow = bib("6439", x0=0.05, speed=0.06, frames=range(0, 13), texts=dict.fromkeys(range(2, 11)))
    slow_cover = bib("512", x0=0.14, speed=0.06, frames=range(2, 11), y=0.54, w=0.04)
    assert sorted(summary(find_passes(slow + slow_cover, ONE_S))) == [
        ("512", 2, 10, 9),
        ("6439", 0, 1, 2),
        ("6439", 11, 12, 2),
    ]


def test_gap_longer_than_max_gap_is_two_passes_and_laps_are_separate():
    # unseen 4 s (frames 3-6) is more than the 3 s gap; unseen 3 s (frames 3-5) would be one pass
    reads = bib("4172", x0=0.1, speed=0.1, frames=range(0, 9), texts={3: None, 4: None, 5: None, 6: None})
    reads += bib("4172", x0=0.1, speed=0.3, frames=range(60, 63))  # the next lap
    assert summary(find_passes(reads, ONE_S)) == [("4172", 0, 2, 3), ("4172", 7, 8, 2), ("4172", 60, 62, 3)]
    reads = bib("4172", x0=0.1, speed=0.1, frames=range(0, 8), texts={3: None, 4: None, 5: None})
    assert summary(find_passes(reads, ONE_S)) == [("4172", 0, 7, 5)]


def test_misread_inside_a_track_is_overruled():
    reads = bib("4172", x0=0.05, speed=0.15, frames=range(0, 6), texts={1: "3172", 4: "3I72"})
    result = find_passes(reads, ONE_S)
    assert summary(result) == [("4172", 0, 5, 6)]
    (runner,) = result.passes
    assert runner.overruled == [{"text": "3172", "count": 2}]
    assert runner.read_count == 6
    assert runner.vote_share == pytest.approx(1.0)
    assert runner.vote_margin == pytest.approx(1.0)
    assert [f["text"] for f in runner.frames] == ["4172", "3172", "4172", "4172", "3I72", "4172"]


def test_independent_rival_in_a_walkers_track_lowers_the_margin():
    # A walker (under half a box width per second) gets no text guard: 4135 joins on motion,
    # and is not absorbed by 4172 (two edits, not a confusion).
    texts = {3: "4135"}
    result = find_passes(bib("4172", x0=0.3, speed=0.02, frames=range(0, 6), texts=texts), ONE_S)
    (runner,) = result.passes
    assert (runner.number, runner.start_frame, runner.end_frame, runner.read_count) == ("4172", 0, 5, 5)
    assert runner.vote_share == pytest.approx(5 / 6)
    assert runner.vote_margin == pytest.approx(4 / 6)
    assert runner.overruled == []
    assert result.rejected == []


def test_unlike_text_where_an_established_runner_was_predicted_is_another_bib():
    texts = {4: "9905"}  # e.g. a runner entering where this one was about to be
    result = find_passes(bib("4172", x0=0.1, speed=0.12, frames=range(0, 7), texts=texts), ONE_S)
    (runner,) = result.passes
    assert (runner.number, runner.start_frame, runner.end_frame, runner.read_count) == ("4172", 0, 6, 6)
    assert runner.vote_share == runner.vote_margin == 1.0
    assert [(r["text"], r["frames"], r["reason"]) for r in result.rejected] == [
        ("9905", [4], "too few reads (1 < 2)")
    ]


def test_full_number_beats_its_truncations():
    texts = {0: "417", 1: "4172", 2: "172", 3: "4172", 4: "417"}  # cut at the frame edges
    (runner,) = find_passes(bib("4172", x0=0.05, speed=0.2, frames=range(0, 5), texts=texts), ONE_S).passes
    assert runner.number == "4172"
    assert runner.overruled == [{"text": "417", "count": 2}, {"text": "172", "count": 1}]


def test_runners_crossing_in_opposite_directions_keep_their_numbers():
    # Both at x=0.5 at frame 4: only the nearer bib is read there.
    reads = bib("4172", x0=0.1, speed=0.2, frames=range(0, 9), interval_ms=500)
    reads += bib("5830", x0=0.9, speed=-0.2, frames=range(0, 9), interval_ms=500, texts={4: None})
    result = find_passes(reads, HALF_S)
    assert sorted(summary(result)) == [("4172", 0, 8, 9), ("5830", 0, 8, 8)]
    by_number = {p.number: p for p in result.passes}
    assert {f["text"] for f in by_number["4172"].frames} == {"4172"}
    assert {f["text"] for f in by_number["5830"].frames} == {"5830"}


def test_crossing_with_misreads_follows_motion_not_text():
    # At the crossing each runner is read once as a number close to the other's.
    reads = bib("4172", x0=0.1, speed=0.2, frames=range(0, 9), interval_ms=500, texts={5: "4178"})
    reads += bib("4178", x0=0.9, speed=-0.2, frames=range(0, 9), interval_ms=500, texts={4: None, 3: "4172"})
    result = find_passes(reads, HALF_S)
    assert sorted(summary(result)) == [("4172", 0, 8, 9), ("4178", 0, 8, 8)]
    for p in result.passes:
        xs = [f["bbox"]["left"] for f in p.frames]
        assert xs == sorted(xs, reverse=p.number == "4178")  # each track keeps its direction


def test_overtake_keeps_numbers_through_the_hidden_frames():
    interval = 500
    fast = bib("4172", x0=0.05, speed=0.3, frames=range(0, 10), interval_ms=interval, y=0.5)
    slow_frames = range(0, 10)
    slow_x = [0.35 + 0.12 * f * interval / 1000 for f in slow_frames]
    fast_x = [0.05 + 0.3 * f * interval / 1000 for f in slow_frames]
    hidden = {f: None for f in slow_frames if abs(slow_x[f] - fast_x[f]) < 1.5 * W}
    assert len(hidden) >= 2  # the slow runner's bib is behind the fast runner for a while
    slow = bib("5830", x0=0.35, speed=0.12, frames=slow_frames, interval_ms=interval, y=0.52, texts=hidden)
    result = find_passes(fast + slow, HALF_S)
    assert sorted(summary(result)) == [("4172", 0, 9, 10), ("5830", 0, 9, 10 - len(hidden))]


def test_runner_leaving_at_an_edge_does_not_take_the_next_runner_entering_there():
    # 4172 is predicted just past the right edge when 4178 (one edit away) comes in there.
    reads = bib("4172", x0=0.66, speed=0.12, frames=range(0, 3))
    reads += bib("4178", x0=0.96, speed=-0.25, frames=range(3, 7))
    assert summary(find_passes(reads, ONE_S)) == [("4172", 0, 2, 3), ("4178", 3, 6, 4)]


def test_a_runner_read_cut_at_the_edge_as_they_leave_stays_their_track():
    # 7615 is predicted just past the right edge; its bib, half out, is read "76" in a narrow box
    # touching the edge. That read is 7615's, and must not seed a track for 763 entering there.
    reads = bib("7615", x0=0.80, speed=0.07, frames=range(0, 3))
    cut = Read(3, 3000, "76", 90.0, left=1 - W * 0.55, top=0.5 - H / 2, width=W * 0.55, height=H)
    reads += [cut, *bib("763", x0=0.86, speed=-0.24, frames=range(4, 8))]
    assert summary(find_passes(reads, ONE_S)) == [("7615", 0, 3, 4), ("763", 4, 7, 4)]


def test_two_different_misreads_first_then_the_runner_is_one_pass():
    # 6607 then 3608 are too unlike to seed a track together; the stranded first read must not
    # take the runner's later 6607 misread, and joins the runner's track as a fragment.
    texts = {0: "6607", 1: "3608", 6: "6607"}
    reads = bib("6608", x0=0.95, speed=-0.15, frames=range(0, 13), interval_ms=500, texts=texts)
    result = find_passes(reads, HALF_S)
    assert summary(result) == [("6608", 0, 12, 13)]
    assert result.passes[0].overruled == [{"text": "6607", "count": 2}, {"text": "3608", "count": 1}]


def test_static_clock_and_sign_are_rejected_as_static():
    frames = range(0, 8)
    clock = [f"0041{27 + f}" for f in frames]  # 004127, 004128, ... changes every second
    reads = bib("x", x0=0.85, speed=0.0, frames=frames, y=0.1, w=0.09, texts=dict(enumerate(clock)))
    reads += bib("00:41:27", x0=0.85, speed=0.0, frames=frames, y=0.15)  # never a candidate
    reads += bib("KM", x0=0.1, speed=0.0, frames=frames, y=0.2)
    reads += bib("42", x0=0.16, speed=0.0, frames=frames, y=0.2, w=0.03)
    reads += bib("4172", x0=0.05, speed=0.25, frames=range(2, 6), y=0.6)
    result = find_passes(reads, ONE_S)
    assert summary(result) == [("4172", 2, 5, 4)]
    clock_track, sign_track = sorted(result.rejected, key=lambda r: r["text"])
    assert clock_track["text"].startswith("0041") and sign_track["text"] == "42"
    assert clock_track["frames"] == sign_track["frames"] == list(frames)
    assert clock_track["reason"] == sign_track["reason"] == "static (does not move)"


def test_the_year_of_a_banner_is_no_runner_where_a_bibs_number_went_unread():
    banner = bib("2026", x0=0.45, speed=0.0, frames=range(0, 10), y=0.05)
    cut_year = bib("26", x0=0.1, speed=0.2, frames=range(3, 6), y=0.7, w=0.02)  # bib 9997 itself unread
    runner = bib("4172", x0=0.05, speed=0.15, frames=range(2, 6), y=0.5)
    result = find_passes(banner + cut_year + runner, ONE_S)
    assert summary(result) == [("4172", 2, 5, 4)]
    (year,) = [r for r in result.rejected if r["text"] == "26"]
    assert year["reason"] == "the scene's own text (2026 stands still in the frame)"
    # with a roster the roster decides: a bib 26 on it is a runner even beside a 2026 banner
    roster = Roster.parse("bib\n26\n4172\n", "roster.csv")
    assert [p.number for p in find_passes(banner + cut_year + runner, ONE_S, roster).passes] == ["4172", "26"]


def test_clock_over_ten_minutes_is_one_static_track():
    # mm:ss read without its colon: 600 different texts, never twice the same, at one place.
    frames = range(0, 600)
    texts = {f: f"{(f + 27) // 60 % 60:02d}{(f + 27) % 60:02d}" for f in frames}
    result = find_passes(bib("x", x0=0.85, speed=0.0, frames=frames, y=0.1, texts=texts), ONE_S)
    assert result.passes == []
    assert [(len(r["frames"]), r["reason"]) for r in result.rejected] == [(600, "static (does not move)")]


def test_year_riding_below_every_bib_is_rejected():
    reads: list[Read] = []
    runners = [("4172", 0.05, 0.25, 0.45), ("5830", 0.9, -0.2, 0.55), ("901", 0.3, 0.15, 0.5)]
    for number, x0, speed, y in runners:
        reads += bib(number, x0=x0, speed=speed, frames=range(0, 4), y=y)
        # the year in small print on the sponsor band, cut to "202" in one frame
        reads += bib(
            "2026",
            x0=x0,
            speed=speed,
            frames=range(0, 4),
            y=y + 1.3 * H,
            h=0.45 * H,
            w=0.5 * W,
            texts={2: "202"},
        )
    result = find_passes(reads, ONE_S)
    assert sorted(p.number for p in result.passes) == ["4172", "5830", "901"]
    assert len(result.rejected) == 3
    by_id = {p.track_id: p.number for p in result.passes}
    for rejected in result.rejected:
        assert rejected["text"] == "2026"
        assert rejected["reason"].startswith("rides with track ")
        assert rejected["reason"].endswith("(smaller text on the same bib)")
        assert int(rejected["reason"].split()[3]) in by_id


def test_roster_refuses_a_snap_when_the_read_may_be_a_longer_bib_cut_off():
    # "34" is one edit from 384, and also the start of 3488 half hidden behind another runner.
    roster = Roster.parse("bib\n384\n3488\n")
    assert roster.snap("34") == (None, "ambiguous: 384, 3488")
    only_384 = Roster.parse("bib\n384\n")
    assert only_384.snap("34") == (only_384.entries["384"], "snapped from 34")
    # a cut of one digit is itself one edit: the unique neighbour, snapped
    assert roster.snap("348") == (roster.entries["3488"], "snapped from 348")
    assert roster.snap("488") == (roster.entries["3488"], "snapped from 488")


def test_number_in_many_concurrent_tracks_is_not_a_runner():
    # Five runners whose numbers are unreadable; only the year on each bib is read.
    reads: list[Read] = []
    for i in range(5):
        reads += bib("2026", x0=0.1 + 0.15 * i, speed=0.1, frames=range(0, 4), y=0.3 + 0.1 * i)
    reads += bib("4172", x0=0.1, speed=0.2, frames=range(1, 4), y=0.85)
    result = find_passes(reads, ONE_S)
    assert summary(result) == [("4172", 1, 3, 3)]
    assert sorted(r["reason"] for r in result.rejected) == ["text in 5 tracks (not a runner)"] * 5


def test_too_few_reads_without_roster():
    reads = bib("4172", x0=0.3, speed=0.2, frames=range(5, 6))
    result = find_passes(reads, ONE_S)
    assert result.passes == []
    assert result.rejected == [
        {"track_id": 1, "text": "4172", "frames": [5], "reason": "too few reads (1 < 2)"}
    ]


def test_evidence_is_counted_in_seconds_not_reads():
    # Two reads of noise in adjacent frames are 0.5 s apart at 0.5 s sampling: too brief to be a
    # runner, whose bib is in view for seconds. The same two reads at 1 s span 1 s and stand.
    two_half = bib("0099", x0=0.3, speed=0.2, frames=range(60, 62), interval_ms=500)
    result = find_passes(two_half, HALF_S)
    assert result.passes == []
    assert [r["reason"] for r in result.rejected] == ["reads too brief (0.5 s < 1 s)"]
    three_half = bib("0099", x0=0.3, speed=0.2, frames=range(60, 63), interval_ms=500)
    assert summary(find_passes(three_half, HALF_S)) == [("0099", 60, 62, 3)]
    two_one = bib("0099", x0=0.3, speed=0.2, frames=range(30, 32))
    assert summary(find_passes(two_one, ONE_S)) == [("0099", 30, 31, 2)]
    # A roster snap is a correction and needs the same evidence; an exact bib does not.
    roster = Roster.parse("bib\n0098\n")
    refused = find_passes(two_half, HALF_S, roster)
    reasons = [r["reason"] for r in refused.rejected]
    assert reasons == ["snapped to 0098 from 0099 on reads too brief (0.5 s < 1 s)"]
    exact = bib("0098", x0=0.3, speed=0.2, frames=range(60, 62), interval_ms=500)
    assert summary(find_passes(exact, HALF_S, roster)) == [("0098", 60, 61, 2)]


def test_without_a_roster_a_number_never_read_surely_is_no_runner():
    # Two unsure reads of noise a capture apart ("0000" of a shirt's pattern) meet the count and
    # the span, but a runner's number is read clearly somewhere in its pass.
    unsure = bib("0000", x0=0.3, speed=0.2, frames=range(50, 52), confidence=61.0)
    result = find_passes(unsure, ONE_S)
    assert result.passes == []
    assert [r["reason"] for r in result.rejected] == ["never read surely (61 % < 80 %)"]
    # One sure read of the number itself is enough; a sure read of another number is not.
    once_sure = bib("6620", x0=0.3, speed=0.2, frames=range(50, 52), confidence=61.0)
    once_sure[1] = replace(once_sure[1], confidence=97.0)
    assert summary(find_passes(once_sure, ONE_S)) == [("6620", 50, 51, 2)]
    other_sure = bib("6620", x0=0.3, speed=0.2, frames=range(50, 53), confidence=61.0, texts={51: "6628"})
    other_sure[1] = replace(other_sure[1], confidence=97.0)
    result = find_passes(other_sure, ONE_S)
    assert result.passes == []
    reasons = [(r["text"], r["reason"]) for r in result.rejected]
    assert reasons == [("6620", "never read surely (61 % < 80 %)")]
    # With a roster the roster is the corroboration: an exact bib read unsurely stands.
    roster = Roster.parse("bib\n0000\n")
    assert summary(find_passes(unsure, ONE_S, roster)) == [("0000", 50, 51, 2)]


def test_low_confidence_reads_are_ignored():
    reads = bib("4172", x0=0.3, speed=0.2, frames=range(0, 3), confidence=40.0)
    assert find_passes(reads, ONE_S) == find_passes([], ONE_S)


# ---------------------------------------------------------------- roster snapping


def test_roster_snap_accepted():
    roster = Roster.parse("bib,name,category\n4172,Ana Pérez,F40\n")
    result = find_passes(bib("4178", x0=0.1, speed=0.2, frames=range(0, 4)), ONE_S, roster)
    (runner,) = result.passes
    assert (runner.number, runner.snapped_from, runner.entry) == ("4172", "4178", roster.entries["4172"])
    assert runner.overruled == [{"text": "4178", "count": 4}]
    assert runner.read_count == 4


def test_roster_ambiguous_is_refused():
    roster = Roster.parse("bib\n4172\n4178\n")
    result = find_passes(bib("4175", x0=0.1, speed=0.2, frames=range(0, 4)), ONE_S, roster)
    assert result.passes == []
    assert [r["reason"] for r in result.rejected] == ["ambiguous on roster: 4172, 4178"]


def test_roster_not_on_roster_is_rejected_and_exact_single_read_is_accepted():
    roster = Roster.parse("bib\n4172\n")
    reads = bib("9905", x0=0.1, speed=0.2, frames=range(0, 4)) + bib(
        "4172", x0=0.5, speed=0.2, frames=range(10, 11), y=0.7
    )
    result = find_passes(reads, ONE_S, roster)
    assert summary(result) == [("4172", 10, 10, 1)]
    assert [(r["text"], r["reason"]) for r in result.rejected] == [("9905", "not on roster")]


def test_roster_snap_of_a_single_read_is_refused_but_an_exact_single_read_is_not():
    # A lone low "22" (text beside the course) is one edit from bib 522: a snap is a correction,
    # and a correction on one read is a guess. Two reads of it would be a runner.
    roster = Roster.parse("bib\n512\n522\n")
    lone = bib("22", x0=0.12, speed=0.2, frames=range(7, 8), confidence=60.0)
    result = find_passes(lone, ONE_S, roster)
    assert result.passes == []
    assert [r["reason"] for r in result.rejected] == ["snapped to 522 from 22 on too few reads (1 < 2)"]
    assert summary(find_passes(bib("22", x0=0.12, speed=0.2, frames=range(7, 9)), ONE_S, roster)) == [
        ("522", 7, 8, 2)
    ]
    assert summary(find_passes(bib("522", x0=0.12, speed=0.2, frames=range(7, 8)), ONE_S, roster)) == [
        ("522", 7, 7, 1)
    ]


def test_roster_snap_needs_one_sure_read_of_what_it_snaps_from():
    # Seed 24's false 751: an unsure "55" and an unsure "75" (runner 751 entering at the edge)
    # in one track. The runner-up "75" starts only bib 751, but two unsure reads of two numbers
    # are a guess; one sure read of the number snapped from, or of the bib, makes it a correction.
    roster = Roster.parse("bib\n751\n312\n")
    texts = {42: "55", 43: "75"}
    unsure = bib("x", x0=0.28, speed=0.2, frames=range(42, 44), texts=texts, confidence=76.0)
    unsure[1] = replace(unsure[1], confidence=70.0)
    result = find_passes(unsure, ONE_S, roster)
    assert result.passes == []
    reasons = [r["reason"] for r in result.rejected]
    assert reasons == ["snapped to 751 from 75, never read surely (70 % < 80 %)"]
    sure = bib("x", x0=0.28, speed=0.2, frames=range(42, 44), texts=texts, confidence=76.0)
    sure[1] = replace(sure[1], confidence=92.0)
    (runner,) = find_passes(sure, ONE_S, roster).passes
    assert (runner.number, runner.read_count) == ("751", 2)
    # The exact bib read unsurely needs no sure read: the roster is the corroboration.
    exact = bib("751", x0=0.28, speed=0.2, frames=range(42, 44), confidence=60.0)
    assert summary(find_passes(exact, ONE_S, roster)) == [("751", 42, 43, 2)]


def test_roster_runner_up_is_tried_when_the_winner_is_ambiguous():
    roster = Roster.parse("bib\n5830\n9831\n")  # 9830 is one edit from both
    texts = {0: "9830", 1: "5830", 2: "9830", 3: "5830", 4: "9830"}
    result = find_passes(bib("x", x0=0.1, speed=0.15, frames=range(0, 5), texts=texts), ONE_S, roster)
    (runner,) = result.passes
    assert (runner.number, runner.snapped_from, runner.read_count) == ("5830", "9830", 5)
    assert runner.overruled == [{"text": "9830", "count": 3}]


# ---------------------------------------------------------------- documents


def test_to_doc_id_and_keys():
    roster = Roster.parse("bib,name,category\n4172,Ana Pérez,F40\n")
    reads = bib("4172", x0=0.1, speed=0.2, frames=range(7, 11), texts={9: "4I72"})
    reads[1] = Read(**{**reads[1].__dict__, "confidence": 97.123456})
    (runner,) = find_passes(reads, ONE_S, roster).passes
    doc_id, doc = runner.to_doc("race-0123456789", "local")
    assert doc_id == "race-0123456789:pass:4172:0000007"
    assert list(doc) == [
        "video_id",
        "number",
        "name",
        "category",
        "on_roster",
        "start_ms",
        "end_ms",
        "duration_ms",
        "start_frame",
        "end_frame",
        "frame_count",
        "read_count",
        "vote_share",
        "vote_margin",
        "best_confidence",
        "overruled",
        "snapped_from",
        "frames",
        "thumbnail_frame_index",
        "thumbnail_uri",
        "backend",
        "track_id",
    ]
    assert doc["name"] == "Ana Pérez" and doc["category"] == "F40" and doc["on_roster"] is True
    assert (doc["start_ms"], doc["end_ms"], doc["duration_ms"]) == (7000, 10000, 3000)
    assert (doc["frame_count"], doc["read_count"], doc["best_confidence"]) == (4, 4, 97.123)
    assert (doc["thumbnail_frame_index"], doc["thumbnail_uri"]) == (8, "file:///frames/f.0000008.jpg")
    assert doc["frames"][0] == {
        "frame_index": 7,
        "timestamp_ms": 7000,
        "bbox": {"left": 0.073, "top": 0.477, "width": 0.055, "height": 0.045},
        "text": "4172",
        "confidence": 90.0,
        "frame_uri": "file:///frames/f.0000007.jpg",
    }
    assert doc["overruled"] == [] and doc["snapped_from"] is None
    (plain,) = find_passes(reads, ONE_S).passes
    assert plain.to_doc("v", "aws")[1]["on_roster"] is None


# ---------------------------------------------------------------- property: random races


def random_race(seed: int, interval_ms: int) -> tuple[list[Read], list[tuple[str, int, int]]]:
    """Six runners with random pace, direction and row over a 40 s video; 10 % of reads dropped,
    10 % misread at one digit, a bib hidden while a bigger (nearer) bib covers it.

    Returns the reads and the passes expected, (number, first frame, last frame) for each run of
    at least two reads of a bib with no gap over max_gap_s (3 s). In a run where misreads would
    not be outnumbered by correct reads they are put back: no vote could recover that run.
    """
    rng = random.Random(seed)
    numbers: list[str] = []
    while len(numbers) < 6:  # bibs at least two digits apart: one misread never makes another bib
        candidate = str(rng.randint(100, 9999))
        if all(
            sum(a != b for a, b in zip(candidate.zfill(4), n.zfill(4), strict=True)) >= 2 for n in numbers
        ):
            numbers.append(candidate)
    frames_total = 40_000 // interval_ms
    boxes: dict[int, list[tuple[str, float, float, float]]] = {}
    for number in numbers:
        speed = rng.uniform(0.12, 0.3) * rng.choice((-1, 1))
        y, h = rng.uniform(0.35, 0.65), rng.uniform(0.035, 0.05)
        start = rng.randrange(0, frames_total - 30_000 // interval_ms)
        x0 = rng.uniform(0.03, 0.08) if speed > 0 else 1 - rng.uniform(0.03, 0.08)
        for frame in range(start, frames_total):
            cx = x0 + speed * (frame - start) * interval_ms / 1000
            if not 0.03 <= cx <= 0.97:
                break
            jitter_x, jitter_y = 0.12 * h * rng.uniform(-1, 1), 0.1 * h * rng.uniform(-1, 1)
            boxes.setdefault(frame, []).append((number, cx + jitter_x, y + jitter_y, h))
    seen: dict[str, list[tuple[int, float, float, float]]] = {}
    for frame, in_view in sorted(boxes.items()):
        for number, cx, cy, h in in_view:
            hidden = any(
                other != number and abs(ox - cx) < 1.2 * oh and abs(oy - cy) < oh and oh > h
                for other, ox, oy, oh in in_view
            )
            if not hidden and rng.random() >= 0.1:
                seen.setdefault(number, []).append((frame, cx, cy, h))
    reads: list[Read] = []
    expected: list[tuple[str, int, int]] = []
    for number, sightings in seen.items():
        runs: list[list[tuple[int, float, float, float]]] = [[sightings[0]]]
        for sighting in sightings[1:]:
            if (sighting[0] - runs[-1][-1][0] - 1) * interval_ms > 3000:  # unseen for more than the gap
                runs.append([])
            runs[-1].append(sighting)
        for run in runs:
            texts = []
            for _ in run:
                i = rng.randrange(len(number))
                wrong = number[:i] + rng.choice([d for d in "0123456789" if d != number[i]]) + number[i + 1 :]
                texts.append(wrong if rng.random() < 0.1 else number)
            if 2 * sum(t != number for t in texts) >= len(texts):
                texts = [number] * len(run)
            for (frame, cx, cy, h), text in zip(run, texts, strict=True):
                w = 1.2 * h * len(number) / 4 + 0.01
                reads.append(
                    Read(frame, frame * interval_ms, text, rng.uniform(70, 99), cx - w / 2, cy - h / 2, w, h)
                )
            if len(run) >= 2:
                expected.append((number, run[0][0], run[-1][0]))
    reads.sort(key=lambda r: (r.frame_index, r.left))
    return reads, sorted(expected)


@pytest.mark.parametrize("interval_ms", [1000, 500])
def test_random_races_every_runner_found_whole_and_nothing_else(interval_ms):
    settings = PassSettings(interval_ms=interval_ms)
    for seed in range(12):
        reads, expected = random_race(seed, interval_ms)
        result = find_passes(reads, settings)
        found = sorted((p.number, p.start_frame, p.end_frame) for p in result.passes)
        assert found == expected, (seed, result.rejected)


def test_random_race_with_roster_snaps_every_runner():
    reads, expected = random_race(99, 1000)
    roster = Roster.parse("bib\n" + "\n".join({n for n, _, _ in expected}) + "\n1\n")
    result = find_passes(reads, ONE_S, roster)
    assert sorted((p.number, p.start_frame, p.end_frame) for p in result.passes) == expected
    assert all(p.entry is not None for p in result.passes)


def test_runner_pass_is_plain_data():
    (runner,) = find_passes(bib("4172", x0=0.1, speed=0.2, frames=range(0, 3)), ONE_S).passes
    assert isinstance(runner, RunnerPass)
    assert runner.entry is None and runner.snapped_from is None


# ---------------------------------------------------------------- re-reading from frame images

FRAME_W, FRAME_H = 640, 360
BIB_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"


def bib_card(image, number: str, centre: tuple[int, int], *, shade: float = 1.0, blur_px: int = 1) -> tuple:
    """Draw a race bib (a card with a dark number) on an RGB array; the number's ink box (px)."""
    import cv2
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(BIB_FONT, 26)
    card = Image.new("RGB", (84, 44), tuple(round(245 * shade) for _ in range(3)))
    draw = ImageDraw.Draw(card)
    x0, y0, x1, y1 = draw.textbbox((0, 0), number, font=font)
    ox, oy = (84 - (x1 - x0)) // 2 - x0, (44 - (y1 - y0)) // 2 - y0
    draw.text((ox, oy), number, fill=(25, 25, 25), font=font)
    pixels = np.asarray(card)
    if blur_px > 1:  # motion blur along the run
        pixels = cv2.blur(pixels, (blur_px, 1))
    left, top = centre[0] - 42, centre[1] - 22
    image[top : top + 44, left : left + 84] = pixels
    return left + ox + x0, top + oy + y0, left + ox + x1, top + oy + y1


def race_frames(cards: dict[int, list[tuple[str, tuple[int, int], dict]]], count: int):
    """JPEG frames (a mid-grey street) holding the given cards, and each card's ink box by frame."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    jpegs, boxes = {}, {}
    for i in range(count):
        image = np.clip(rng.normal(120, 12, (FRAME_H, FRAME_W, 3)), 0, 255).astype(np.uint8)
        for number, centre, style in cards.get(i, []):
            boxes[(i, number)] = bib_card(image, number, centre, **style)
        jpegs[i] = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    return jpegs, boxes


def frame_images(jpegs: dict[int, bytes], interval_ms: int = 1000):
    from reko.runners.reread import FrameImages

    return FrameImages(
        count=len(jpegs),
        timestamp_ms=lambda i: i * interval_ms,
        uri=lambda i: f"file:///frames/f.{i:07d}.jpg",
        load=lambda i: jpegs[i],
    )


def detector_read(frame: int, number: str, box: tuple, interval_ms: int = 1000) -> Read:
    """What the full-frame reader reports for a bib it did detect."""
    x0, y0, x1, y1 = box
    return Read(
        frame_index=frame,
        timestamp_ms=frame * interval_ms,
        text=number,
        confidence=95.0,
        left=x0 / FRAME_W,
        top=y0 / FRAME_H,
        width=(x1 - x0) / FRAME_W,
        height=(y1 - y0) / FRAME_H,
        frame_uri=f"file:///frames/f.{frame:07d}.jpg",
    )


def running(number: str, frames: range, *, x0: int, step: int, y: int = 200, **style) -> dict:
    return {i: [(number, (x0 + step * (i - frames[0]), y), style)] for i in frames}


def merged(*scenes: dict) -> dict:
    out: dict = {}
    for scene in scenes:
        for i, cards in scene.items():
            out.setdefault(i, []).extend(cards)
    return out


def test_a_tracks_gap_and_ends_are_read_where_the_track_predicts_the_bib():
    from reko.analysis.local_text import read_crop
    from reko.runners.reread import RereadStats, fill_gaps

    jpegs, boxes = race_frames(running("4172", range(0, 6), x0=80, step=90), 6)
    reads = [detector_read(i, "4172", boxes[(i, "4172")]) for i in (1, 2, 4)]  # the detector missed 0, 3, 5
    first = find_passes(reads, ONE_S)
    assert summary(first) == [("4172", 1, 4, 3)]

    stats = RereadStats()
    added = fill_gaps(first.passes, frame_images(jpegs), read_crop, stats)
    assert sorted((r.frame_index, number_candidate(r.text)) for r in added) == [
        (0, "4172"),
        (3, "4172"),
        (5, "4172"),
    ]
    for r in added:  # each read's box is the bib's, not just somewhere in the crop
        x0, y0, x1, y1 = boxes[(r.frame_index, "4172")]
        assert abs(r.left * FRAME_W - x0) < 8 and abs((r.left + r.width) * FRAME_W - x1) < 8
    assert stats.gap_reads == 3
    assert summary(find_passes(reads + added, ONE_S)) == [("4172", 0, 5, 6)]


def test_a_pass_is_followed_past_its_ends_with_its_own_size_when_its_boxes_jitter():
    # Search reads' boxes jitter in height (a blob's rows): 4172's ink is 19 px tall, read at
    # frame 2 as 15 px and at frame 3 as 24 px. Carried on at that rate, the box at frame 1 is
    # 6 px tall and the crop unreadable; with the pass's own size, frames 0-1 are read too.
    from reko.analysis.local_text import read_crop
    from reko.runners.reread import RereadStats, fill_gaps

    jpegs, boxes = race_frames(running("4172", range(0, 6), x0=80, step=90), 6)
    jitter = {2: (-2, -2), 3: (2, 3)}  # rows added (top, bottom) to the ink box
    reads = []
    for i, (dt, db) in jitter.items():
        x0, y0, x1, y1 = boxes[(i, "4172")]
        reads.append(detector_read(i, "4172", (x0, y0 - dt, x1, y1 + db)))
    first = find_passes(reads, ONE_S)
    assert summary(first) == [("4172", 2, 3, 2)]
    added = fill_gaps(first.passes, frame_images(jpegs), read_crop, RereadStats())
    assert sorted((r.frame_index, number_candidate(r.text)) for r in added) == [
        (0, "4172"),
        (1, "4172"),
        (4, "4172"),
        (5, "4172"),
    ]


def test_a_bib_the_detector_never_saw_is_found_in_the_rows_where_runners_are_read():
    from reko.analysis.local_text import read_crop
    from reko.runners.reread import more_reads

    scene = merged(
        running("4172", range(0, 6), x0=60, step=60, y=190),
        running("9997", range(0, 4), x0=580, step=-50, y=205, shade=0.45, blur_px=7),  # dark, blurred
    )
    jpegs, boxes = race_frames(scene, 6)
    reads = [detector_read(i, "4172", boxes[(i, "4172")]) for i in range(6)]
    assert [p.number for p in find_passes(reads, ONE_S).passes] == ["4172"]

    more, stats = more_reads(reads, ONE_S, None, frame_images(jpegs), read_crop)
    assert summary(find_passes(more, ONE_S)) == [("4172", 0, 5, 6), ("9997", 0, 3, 4)]
    assert stats.numbers_added == {"9997": 4}


def test_a_gap_read_that_is_not_the_tracks_number_is_refused():
    from reko.analysis.local_text import read_crop
    from reko.runners.reread import fill_gaps, more_reads

    scene = running("4172", range(0, 5), x0=80, step=90)
    scene[2] = [("8301", scene[2][0][1], {})]  # another bib exactly where 4172 is predicted
    jpegs, boxes = race_frames(scene, 5)
    reads = [detector_read(i, "4172", boxes[(i, "4172")]) for i in (0, 1, 3, 4)]
    first = find_passes(reads, ONE_S).passes
    from reko.runners.reread import RereadStats

    stats = RereadStats()
    assert fill_gaps(first, frame_images(jpegs), read_crop, stats) == [] and stats.crops_read == 1
    more, _ = more_reads(reads, ONE_S, None, frame_images(jpegs), read_crop)
    assert summary(find_passes(more, ONE_S)) == [("4172", 0, 4, 4)]  # 8301 read once: no pass


def test_only_a_backend_with_a_local_recogniser_re_reads_crops():
    import numpy as np

    from reko.analysis.base import crop_reader
    from reko.analysis.local_text import read_crop

    assert crop_reader("aws") is None  # Rekognition reads whole images only
    assert crop_reader("local") is read_crop
    with pytest.raises(ValueError, match="at least 4x4"):
        read_crop(np.zeros((2, 40, 3), dtype=np.uint8))


def test_a_second_box_of_a_runners_bib_in_the_same_frame_is_no_second_pass():
    roster = Roster.parse("bib\n4172\n")
    reads = bib("4172", x0=0.2, speed=0.15, frames=range(0, 5)) + bib(
        "4172", x0=0.5, speed=0.0, frames=range(2, 3), h=2.4 * H, w=1.5 * W
    )  # a box swollen by a neighbour's edge, read once
    result = find_passes(reads, ONE_S, roster)
    assert summary(result) == [("4172", 0, 4, 5)]
    assert [r["reason"] for r in result.rejected] == [
        "within track 1's pass of the same number (a second box)"
    ]
