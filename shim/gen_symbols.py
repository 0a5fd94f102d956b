#!/usr/bin/env python3
"""Generates the shim's symbol plumbing from shim/symbols.txt (the one table of interposed
symbols; its header says how to add a hook).

  gen_symbols.py --table shim/symbols.txt --header OUT.hpp   hook heads + real-pointer list
  gen_symbols.py --table shim/symbols.txt --map OUT.map      version script of the preload lib
  gen_symbols.py --table shim/symbols.txt --exports          expected `name@@V`/`name@V` lines
  gen_symbols.py --table shim/symbols.txt --docs docs/shim.md [--check]
                                             rewrite (or, with --check, verify) the generated
                                             "What is interposed" table in docs/shim.md

Both builds run --header and --map (CMake add_custom_command, meson custom_target);
tests/shim/exports_test.sh runs --exports, the shim_symbols_docs test runs --docs --check.
Outputs are written only when their content changes (no needless rebuilds).
"""
import argparse
import os
import re
import sys

DOCS_BEGIN = "<!-- generated from shim/symbols.txt by shim/gen_symbols.py --docs: begin -->"
DOCS_END = "<!-- generated from shim/symbols.txt by shim/gen_symbols.py --docs: end -->"


class Row:
    pass


def fail(path, lineno, msg):
    sys.exit(f"{path}:{lineno}: error: {msg}")


def split_top(s, sep=","):
    """Splits s at `sep` outside parentheses."""
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return [p.strip() for p in parts]


def param_name(p, path, lineno):
    m = re.search(r"\(\s*\*\s*(\w+)\s*\)", p)  # function pointer: ret (*name)(args)
    if m:
        return m.group(1)
    m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", p)
    if not m or m.group(1) in ("int", "char", "long", "unsigned", "void", "size_t", "t"):
        fail(path, lineno, f"parameter '{p}' has no name")
    return m.group(1)


def parse_signature(sig, r, path, lineno):
    i = sig.find("(")
    if i <= 0 or not sig.endswith(")"):
        fail(path, lineno, f"signature '{sig}' is not 'ret (params)'")
    r.ret = sig[:i].strip()
    params = sig[i + 1 : -1].strip()
    r.vararg = None
    if "..." in params:
        head, _, va = params.partition("...")
        va = va.strip()
        if not va:
            fail(path, lineno, "a varargs signature names its argument: '... void* arg'")
        # One or more named arguments read from the va_list (syscall reads six).
        r.vararg = [(v, param_name(v, path, lineno)) for v in split_top(va) if v]
        fixed = [p for p in split_top(head.rstrip().rstrip(",")) if p]
        r.params = ", ".join(fixed + ["..."])  # the exported (C) signature
        r.impl_params = ", ".join(fixed + [v for v, _ in r.vararg])  # the body's signature
        r.last_fixed = param_name(fixed[-1], path, lineno)
        names = [param_name(p, path, lineno) for p in fixed] + [n for _, n in r.vararg]
    else:
        fixed = [] if params in ("", "void") else split_top(params)
        r.params = params if params else "void"
        r.impl_params = r.params
        names = [param_name(p, path, lineno) for p in fixed]
    r.args = ", ".join(names)


def parse(path):
    rows, families, fam = [], [], None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("== "):
                head, fiber, notes = (split_top(line[3:], "|") + ["", ""])[:3]
                key, *files = head.split()
                fam = {"key": key, "files": files, "fiber": fiber, "notes": notes, "rows": []}
                families.append(fam)
                continue
            cols = [c.strip() for c in line.split("|")]
            if len(cols) != 5:
                fail(path, lineno, f"expected 5 '|'-separated columns, found {len(cols)}")
            if fam is None:
                fail(path, lineno, "row before the first '== family' line")
            r = Row()
            r.lineno = lineno
            r.family = fam["key"]
            ident, _, sym = cols[0].partition(":")
            r.id, r.sym = ident.strip(), (sym.strip() or ident.strip())
            if not re.fullmatch(r"\w+", r.id) or not re.fullmatch(r"\w+", r.sym):
                fail(path, lineno, f"bad name '{cols[0]}'")
            r.versions = []
            for v in cols[1].split():
                m = re.fullmatch(r"(@@?)(GLIBC_[0-9.]+)", v)
                if not m:
                    fail(path, lineno, f"bad version '{v}' (want @@GLIBC_x.y or @GLIBC_x.y)")
                r.versions.append((m.group(2), m.group(1) == "@@"))
            if not r.versions:
                fail(path, lineno, "no version")
            if sum(d for _, d in r.versions) > 1 or any(d for _, d in r.versions[1:]):
                fail(path, lineno, "only the first version may be the default (@@)")
            r.real = cols[2]
            if r.real not in ("dlsym", "dlvsym", "-"):
                fail(path, lineno, f"real must be dlsym, dlvsym or -, not '{r.real}'")
            if r.real == "dlsym" and r.id != r.sym:
                fail(path, lineno, "a renamed row resolves its real symbol by version (dlvsym)")
            parse_signature(cols[3], r, path, lineno)
            r.fallback = cols[4]
            if not r.fallback:
                fail(path, lineno, "empty fallback (write - for none)")
            rows.append(r)
            fam["rows"].append(r)
    ids, defaults = {}, {}
    for r in rows:
        if r.id in ids:
            fail(path, r.lineno, f"'{r.id}' already defined on line {ids[r.id]}")
        ids[r.id] = r.lineno
        for v, d in r.versions:
            key = (r.sym, v)
            if key in defaults:
                fail(path, r.lineno, f"{r.sym}@{v} already bound on line {defaults[key]}")
            defaults[key] = r.lineno
        if r.versions[0][1]:
            key = (r.sym, "@@")
            if key in defaults:
                fail(path, r.lineno, f"{r.sym} has a default version on line {defaults[key]}")
            defaults[key] = r.lineno
    return rows, families


def simple(r):
    """One default version: bound with an asm label and listed in the version script."""
    return len(r.versions) == 1 and r.versions[0][1]


def write_if_changed(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def hook_macro(r, preload):
    body_head = []
    if preload and not simple(r):
        sv = "\\n\\t".join(
            f".symver green_hook_{r.id}, {r.sym}{'@@' if d else '@'}{v}" for v, d in r.versions
        )
        body_head.append(f'__asm__("{sv}");')
    label = ""
    if (preload and simple(r)) or (not preload and r.versions[0][1]):
        label = f' __asm__("{r.sym}")'
    lines = body_head + [
        f"static {r.ret} green_impl_{r.id}({r.impl_params});",
        f'extern "C" GREEN_SHIM_EXPORT {r.ret} green_hook_{r.id}({r.params}){label};',
        f'extern "C" {r.ret} green_hook_{r.id}({r.params}) {{',
        "  using namespace ::green::shim;",
    ]
    if r.vararg:
        lines += [
            "  va_list green_ap;",
            f"  va_start(green_ap, {r.last_fixed});",
        ]
        lines += [f"  {d} = va_arg(green_ap, {d[: -len(n)].strip()});" for d, n in r.vararg]
        lines += [
            "  va_end(green_ap);",
        ]
    # Runtime code from here to the hook's return (hand-off: runtime/src/machine.hpp).
    lines.append("  ::green::detail::RuntimeEntry green_entry;")
    void = r.ret == "void"
    if r.fallback != "-":
        if void:
            lines.append(f"  if (!real::ensure_resolved()) [[unlikely]] {{ (void)({r.fallback}); return; }}")
        else:
            lines.append(
                f"  if (!real::ensure_resolved()) [[unlikely]] return static_cast<{r.ret}>({r.fallback});"
            )
    lines.append(f"  {'' if void else 'return '}green_impl_{r.id}({r.args});")
    lines.append("}")
    lines.append(f"static {r.ret} green_impl_{r.id}({r.impl_params})")
    return f"#define GREEN_SHIM_HOOK_{r.id} \\\n  " + " \\\n  ".join(lines) + "\n"


def gen_header(rows):
    out = [
        "// Generated by shim/gen_symbols.py from shim/symbols.txt: do not edit.",
        "// Included by real.hpp (after the libc headers declaring the types used).",
        "#pragma once",
        "#include <cstdarg>",
        "",
        "// Function types of the table's rows (parameter names as in the table).",
        "namespace green::shim::sig {",
    ]
    for r in rows:
        out.append(f"using {r.id} = {r.ret}({r.params});")
    out += ["}  // namespace green::shim::sig", ""]
    out.append("// X(id, libc identifier, \"symbol\", \"version\" or nullptr): one real pointer each.")
    out.append("#define GREEN_SHIM_REAL_LIST(X) \\")
    for r in rows:
        if r.real == "-":
            continue
        ver = f'"{r.versions[0][0]}"' if r.real == "dlvsym" else "nullptr"
        out.append(f'  X({r.id}, {r.sym}, "{r.sym}", {ver}) \\')
    out += ["", ""]
    out.append("// GREEN_HOOK(id) names this macro first: an id without a row fails to compile there.")
    out += [f"#define GREEN_SHIM_NO_ROW_IN_SYMBOLS_TXT_{r.id}" for r in rows]
    out.append("")
    out.append("#ifdef GREEN_SHIM_PRELOAD")
    out += [hook_macro(r, True) for r in rows]
    out.append("#else")
    out += [hook_macro(r, False) for r in rows]
    out.append("#endif")
    return "\n".join(out) + "\n"


def vkey(v):
    return [int(x) for x in v[len("GLIBC_") :].split(".")]


def gen_map(rows):
    nodes = {}
    for r in rows:
        for v, _ in r.versions:
            nodes.setdefault(v, [])
        if simple(r):
            nodes[r.versions[0][0]].append(r.sym)
    out = [
        "/* Generated by shim/gen_symbols.py from shim/symbols.txt: do not edit.",
        "   Exports of libgreen_preload.so: exactly the table's names. A row with one default",
        "   version is listed in its node; other rows bind their versions with .symver in the",
        "   defining file (GREEN_HOOK) and only need the node to exist. */",
    ]
    prev = None
    for v in sorted(nodes, key=vkey):
        names = "".join(f" {n};" for n in nodes[v])
        body = f" global:{names} " if names else " "
        out.append(f"{v} {{{body}}}{' ' + prev if prev else ''};")
        prev = v
    out.append("GREEN_LOCAL { local: *; };")
    return "\n".join(out) + "\n"


def gen_exports(rows):
    return "".join(
        sorted(f"{r.sym}{'@@' if d else '@'}{v}\n" for r in rows for v, d in r.versions)
    )


def fallback_kind(f):
    if f == "-":
        return "none (calls other hooks)"
    if "syscall(" in f or f.startswith("raw_") or "(raw_" in f:
        return "raw syscall"
    return f"returns `{f}`"


def gen_docs_table(families):
    out = [
        DOCS_BEGIN,
        "| names | on a fiber | notes | inside dlsym at start-up |",
        "| --- | --- | --- | --- |",
    ]
    for fam in families:
        names, kinds = [], {}
        for r in fam["rows"]:
            if r.sym not in names:
                names.append(r.sym)
            kinds.setdefault(fallback_kind(r.fallback), []).append(r.sym)
        if len(kinds) == 1:
            fb = next(iter(kinds))
        else:
            fb = "; ".join(
                f"{k}: `{' '.join(dict.fromkeys(v))}`" for k, v in kinds.items()
            )
        out.append(f"| `{' '.join(names)}` | {fam['fiber']} | {fam['notes']} | {fb} |")
    out.append(DOCS_END)
    return "\n".join(out)


def docs(path, families, check):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    b, e = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if b < 0 or e < b:
        sys.exit(f"{path}: error: the markers of the generated table are missing")
    new = text[:b] + gen_docs_table(families) + text[e + len(DOCS_END) :]
    if check:
        if new != text:
            sys.exit(
                f"{path}: error: the table of interposed symbols is out of date; run\n"
                f"  python3 shim/gen_symbols.py --table shim/symbols.txt --docs docs/shim.md"
            )
        return
    write_if_changed(path, new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--header")
    ap.add_argument("--map")
    ap.add_argument("--exports", action="store_true")
    ap.add_argument("--docs")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    rows, families = parse(a.table)
    if a.header:
        write_if_changed(a.header, gen_header(rows))
    if a.map:
        write_if_changed(a.map, gen_map(rows))
    if a.exports:
        sys.stdout.write(gen_exports(rows))
    if a.docs:
        docs(a.docs, families, a.check)


if __name__ == "__main__":
    main()
