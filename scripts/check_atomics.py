#!/usr/bin/env python3
"""Checks docs/hacking.md §4's rule: every non-relaxed atomic operation carries a comment
saying what it orders, at the site or in a protocol note right above it.

  scripts/check_atomics.py [DIR...]     default: runtime shim (relative to the repository)

What counts as a non-relaxed atomic: a line that names memory_order_acquire/release/acq_rel/
seq_cst/consume or __ATOMIC_ACQUIRE/... (a fence included), and a call of load/store/
exchange/fetch_*/compare_exchange_*/test_and_set on a name declared std::atomic<...> or
std::atomic_flag in the same tree that passes no memory order (seq_cst by default). Not
seen: ++/--/= on atomics (write the call with its order instead). "Commented": the line
itself, or one of the (at most 4) non-blank lines right above it, has a // comment. Prints
each offending line as file:line: text and exits 1 if there is any; runs in well under a
second (a ctest/meson test, "atomics_commented").
"""
import pathlib
import re
import sys

ORDER = re.compile(r"memory_order_(acquire|release|acq_rel|seq_cst|consume)\b|"
                   r"__ATOMIC_(ACQUIRE|RELEASE|ACQ_REL|SEQ_CST|CONSUME)\b")
RELAXED = re.compile(r"memory_order_relaxed|__ATOMIC_RELAXED|memory_order\s+\w|std::memory_order\b")
DECL = re.compile(r"std::atomic(?:<[^;(){}]*?>|_flag)\s+(\w+)")
CALL = r"\b{}\s*(?:\[[^\]]*\])?\s*(?:\.|->)\s*(load|store|exchange|fetch_\w+|compare_exchange_\w+|test_and_set)\s*\("
SUFFIXES = {".cpp", ".hpp", ".h", ".c", ".inc"}
ABOVE = 4


def code_of(line):
    # The line without a // comment (good enough: no "//" inside the strings of these files).
    return line.split("//", 1)[0]


def statement(lines, i):
    # The line and its continuation lines up to the end of the statement (at most 6 lines).
    text = code_of(lines[i])
    j = i
    while ";" not in text and "{" not in text and j + 1 < len(lines) and j - i < 6:
        j += 1
        text += code_of(lines[j])
    return text


def commented(lines, i):
    if "//" in lines[i]:
        return True
    j = i - 1
    while j >= 0 and i - j <= ABOVE and lines[j].strip():
        if "//" in lines[j]:
            return True
        j -= 1
    return False


def main(argv):
    root = pathlib.Path(__file__).resolve().parent.parent
    dirs = [pathlib.Path(d) for d in argv] or [root / "runtime", root / "shim"]
    files = [p for d in dirs for p in sorted(d.rglob("*")) if p.suffix in SUFFIXES]
    texts = {p: p.read_text(errors="replace").split("\n") for p in files}
    names = set()
    for lines in texts.values():
        for line in lines:
            names.update(DECL.findall(code_of(line)))
    default_call = re.compile(CALL.format("(?:" + "|".join(sorted(names)) + ")")) if names else None
    bad = 0
    for p, lines in texts.items():
        for i, line in enumerate(lines):
            code = code_of(line)
            hit = ORDER.search(code) is not None
            if not hit and default_call and default_call.search(code):
                stmt = statement(lines, i)
                hit = not ORDER.search(stmt) and not RELAXED.search(stmt)
            if hit and not commented(lines, i):
                bad += 1
                print(f"{p.relative_to(root) if p.is_relative_to(root) else p}:{i + 1}: {line.strip()}")
    if bad:
        print(f"check_atomics: {bad} non-relaxed atomic operation(s) without a comment saying "
              "what they order (docs/hacking.md §4)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
