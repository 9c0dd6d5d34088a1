"""A label the report's styles lack is styled apart from every label they hold."""

from __future__ import annotations

from ctbench.figures.palette import REFERENCE_COLOURS, SUBMISSION_COLOURS, assign, complete


def _look(style):
    return style.colour, style.marker, style.linestyle


def test_complete_never_hands_out_a_colour_in_use():
    held = {"a": assign([("a", False)])["a"]}
    held["c"] = assign([(n, False) for n in "abc"])["c"]  # the third colour, held by the second reference
    held["mine"] = assign([("m0", True), ("mine", True)])["mine"]  # the second dark colour, held by the first
    more = complete(held, [("new", False), ("theirs", True), ("a", False)])
    colours = {s.colour for s in held.values()}
    assert more["new"].colour not in colours and more["new"].colour in REFERENCE_COLOURS
    assert more["theirs"].colour not in colours and more["theirs"].submission
    assert more["a"] == held["a"]


def test_complete_with_every_colour_held_gives_an_unused_look():
    held = assign([(f"r{i}", False) for i in range(len(REFERENCE_COLOURS))])
    held |= assign([(f"s{i}", True) for i in range(len(SUBMISSION_COLOURS))])
    more = complete(held, [(f"n{i}", False) for i in range(30)] + [(f"t{i}", True) for i in range(5)])
    looks = [_look(s) for s in more.values()]
    assert len(looks) == len(set(looks)) == len(held) + 35


def test_a_label_both_reference_and_submission_is_the_reference():
    assert not complete({}, [("x", True), ("x", False)])["x"].submission
