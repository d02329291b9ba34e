"""Runner identity: number reads in frames -> tracks -> one voted number per track -> passes.

A race is runners moving through frames, so a runner is found by following a bib's box from
frame to frame (position and motion, not text equality), voting over the reads of that track,
and, when a race roster is given, snapping the winner to a bib on it. Numbers that do not move
with a runner (clocks, signs) or that ride inside every runner's track (the race year on each
bib's sponsor band) stay searchable as text but never become passes.

Both backends feed the same code: it reads Rekognition-shaped WORD detections.

Interface (the rest of reko depends only on these names):
- `reads.Read`, `reads.number_candidate(text)`
- `roster.Roster`, `roster.RosterEntry`, `roster.RosterError`, `roster.load_roster(uri)`
- `passes.PassSettings`, `passes.RunnerPass`, `passes.find_passes(reads, settings, roster)`
"""
