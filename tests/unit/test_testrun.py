"""make test's two halves are added up into one closing line (hocvu_tools.testrun)."""
from hocvu_tools.testrun import closing_line, counts


def test_the_closing_lines_of_both_halves_are_read():
    rest = "....\n=== 3 failed, 850 passed, 2 skipped, 3 deselected in 1000.00s ===\n"
    faults = "..\n=== 5 passed, 870 deselected in 900.12s (0:15:00) ===\n"
    assert counts(closing_line(rest)) == {"failed": 3, "passed": 850, "skipped": 2}
    assert counts(closing_line(faults)) == {"passed": 5}
    assert counts(closing_line("=== 1 error in 2.00s ===")) == {"errors": 1}
    assert closing_line("killed before the end\n") == ""
