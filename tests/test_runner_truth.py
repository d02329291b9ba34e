"""The scorer that judges runner passes against ground truth: whole, fragments, false, recall."""

from __future__ import annotations

from reko.runners.truth import sampled_index, score

# 10 fps, 20 s; sampled at 1 s, capture i shows video frame 10 * i
TRUTH = {
    "fps": 10,
    "frame_count": 200,
    "duration_s": 20.0,
    "passes": [
        # 4172 is on screen from 1.5 s to 9.5 s, its bib visible 2-8 s, covered at 5 s
        {
            "bib": "4172",
            "start_frame": 15,
            "end_frame": 95,
            "visible_frames": [*range(20, 50), *range(60, 81)],
        },
        {"bib": "5021", "start_frame": 110, "end_frame": 170, "visible_frames": list(range(120, 161))},
    ],
}


def found(number: str, start: int, end: int) -> dict:
    return {"number": number, "start_frame": start, "end_frame": end}


def test_capture_i_shows_the_first_frame_at_or_after_i_intervals():
    assert sampled_index(25, 25, 500) == {0: 0, 1: 13}  # 0.5 s at 25 fps is frame 12.5: frame 13
    assert list(sampled_index(200, 10, 1000).values()) == [10 * i for i in range(20)]


def test_whole_passes_fragments_and_false_passes():
    result = score(
        TRUTH,
        [found("4172", 2, 8), found("5021", 12, 13), found("5021", 15, 16), found("3172", 3, 4)],
        interval_ms=1000,
    )
    by_bib = {r["bib"]: r for r in result.rows}
    assert by_bib["4172"]["whole"] and by_bib["4172"]["visible"] == 6  # 2, 3, 4, 6, 7, 8
    assert not by_bib["5021"]["whole"] and by_bib["5021"]["attributed"] == 4  # 12, 13, 15, 16 of 12-16
    assert result.whole == 1 and result.frame_recall == round(10 / 11, 3)
    assert result.false_passes == [
        {"number": "3172", "start_frame": 3, "end_frame": 4, "start_s": 3.0, "end_s": 4.0}
    ]
    assert result.false_per_10_min == 30.0


def test_an_end_may_reach_as_far_as_the_runner_is_on_screen_and_no_further():
    assert score(TRUTH, [found("4172", 2, 9)], interval_ms=1000).whole == 1  # on screen until 9.5 s
    assert score(TRUTH, [found("4172", 1, 8)], interval_ms=1000).whole == 1  # one interval early
    assert score(TRUTH, [found("4172", 2, 11)], interval_ms=1000).whole == 0  # gone at 9.5 s
    assert score(TRUTH, [found("4172", 4, 8)], interval_ms=1000).whole == 0  # starts two late


def test_found_ranges_are_seconds_at_every_interval():
    # At 0.5 s, sampled frames 4-16 are 2.0-8.0 s: the table must not print frame indexes.
    result = score(TRUTH, [found("4172", 4, 16), found("9999", 30, 31)], interval_ms=500)
    (row,) = [r for r in result.rows if r["bib"] == "4172"]
    assert (row["first_s"], row["last_s"], row["found"]) == (2.0, 8.0, [[2.0, 8.0]])
    assert (result.false_passes[0]["start_s"], result.false_passes[0]["end_s"]) == (15.0, 15.5)


def test_read_recall_counts_only_the_readers_own_confident_reads():
    reads = [(2, "4172", 95.0), (3, "4172", 79.0), (3, "3172", 90.0), (12, "5021", 99.0)]
    result = score(TRUTH, [], interval_ms=1000, reads=reads)
    assert result.read_recall == round(2 / 11, 3) and result.frame_recall == 0.0


def test_the_clean_samples_bib_segments_are_passes():
    truth = {
        "fps": 10,
        "frame_count": 100,
        "duration_s": 10.0,
        "bibs": [{"text": "1042", "segments": [{"start_frame": 10, "end_frame": 40}]}],
    }
    result = score(truth, [found("1042", 1, 4)], interval_ms=1000)
    assert result.passes == 1 and result.whole == 1 and result.frame_recall == 1.0
