#!/usr/bin/env python3
"""bench/tables.py: bench/run_all.sh's results as markdown tables and one PNG chart.

  tables.py render DIR   reads DIR/{meta.txt, micro.json, callgrind.txt, idle_fibers.txt,
                         echo.csv, python.csv} (whichever exist), writes DIR/tables.md in
                         bench/README.md's format and, if gnuplot is installed, DIR/chart.png
                         (rt/s, CPU per round trip and p99 against connections, one line per
                         server; one row of panels per echo table)
  tables.py check DIR    checks that DIR/tables.md and DIR/chart.png are well formed (tables:
                         the expected sections, header / separator / rows with the same number
                         of cells, numbers or "-" in the numeric columns, the base row's ratios
                         1.00; PNG: signature, every chunk's CRC, IHDR size, IDAT inflates to
                         the image size, IEND); exit 1 with the reasons otherwise. Timing is
                         never checked.

Every figure comes from the files in DIR: nothing here is a measured number. Standard library
only (json, csv, zlib, subprocess).
"""
import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

# --- formatting -----------------------------------------------------------------------------


def num(v):
    """float(v), or None for '-', '' and anything that is not a number."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def fmt_int(v):
    f = num(v)
    return "-" if f is None else f"{f:,.0f}"


def fmt_time_s(s):
    """seconds -> '19.1 ns', '3.35 us', '27.8 ms', '1.23 s' (3 significant digits)."""
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return "-"


def fmt_us(us):
    f = num(us)
    return "-" if f is None else fmt_time_s(f * 1e-6)


def fmt_ir(v):
    """instructions per op as README writes them: 60, 100.5, 2,098."""
    if v >= 1000:
        return f"{v:,.0f}"
    t = f"{v:.1f}"
    return t[:-2] if t.endswith(".0") else t


def ratio(a, b):
    """a / b rounded to the 2 decimals the tables show (verdicts use what is shown)."""
    return round(a / b, 2)


def runs_text(meta):
    n = meta.get("runs", "?")
    return "1 run" if n == "1" else f"medians of {n} interleaved runs"


def fmt_ratio(a, b):
    a, b = num(a), num(b)
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}"


def read_kv(path):
    kv = {}
    if os.path.exists(path):
        for line in open(path):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                kv[k] = v
    return kv


def table(header, align, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# --- micro-benchmarks -----------------------------------------------------------------------

# (Google Benchmark run name without /real_time, label, callgrind workload or None)
MICRO = [
    ("ref_fcontext_roundtrip", "raw `jump_fcontext` round trip", "fcontext_rt"),
    ("ref_ctx_fiber_roundtrip", "`boost::context::fiber` round trip", "ctx_fiber_rt"),
    ("ref_ctx_fiber_spawn_pooled", "pooled `boost::context::fiber` create+run",
     "ctx_spawn_pooled"),
    ("ref_bfiber_yield", "Boost.Fiber yield (per yield)", "bfiber_yield"),
    ("ref_bfiber_spawn_join", "Boost.Fiber spawn+join", "bfiber_spawn_join"),
    ("ref_bfiber_channel_rt", "Boost.Fiber unbuffered channel round trip", "bfiber_channel_rt"),
    ("ref_thread_create_join", "`std::thread` create+join", None),
    ("green_yield/1w", "**green yield, 1 worker (per yield)**", "yield"),
    ("green_spawn_join/1w", "**green spawn+join, 1 worker**", "spawn_join"),
    ("green_channel_rt/1w", "**green unbuffered channel round trip, 1 worker**", "channel_rt"),
    ("green_channel_rt/2w", "green channel round trip, 2 workers", None),
    ("green_event_wake_rt/2w", "green Event ping-pong, 2 workers (cross-worker wake round trip)",
     None),
    ("green_mutex_contended/2w/fibers:8", "green Mutex, 8 fibers on 2 workers, per acquisition",
     None),
    ("std_mutex_contended/threads", "`std::mutex`, 8 OS threads, per acquisition", None),
    ("green_sleep0/1w", "green `sleep_for(0)`", "sleep0"),
    ("green_sleep1ms/1w/sleepers:1000", "green `sleep_for(1ms)`, 1,000 sleepers, per sleep", None),
    ("green_io_socketpair_rt/1w", "green io ping-pong on a socketpair", "io_rt"),
    ("green_sleepers_50ms/2w", "green 50 ms sleepers, 2 workers", None),
]


def micro_results(d):
    """{run name: (per_op seconds, wall clock?)} from the medians in micro.json."""
    path = os.path.join(d, "micro.json")
    if not os.path.exists(path):
        return None, None
    data = json.load(open(path))
    res = {}
    for b in data.get("benchmarks", []):
        if b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        wall = "/real_time" in name
        name = name.replace("/real_time", "")
        per_op = b.get("per_op")
        if per_op is None:  # no counter: the benchmark's own time per iteration
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
            per_op = b["real_time" if wall else "cpu_time"] * scale
        res[name] = (per_op, wall)
    reps = None
    for b in data.get("benchmarks", []):
        if "repetitions" in b:
            reps = b["repetitions"]
            break
    return res, reps


def callgrind_results(d):
    res = {}
    path = os.path.join(d, "callgrind.txt")
    if os.path.exists(path):
        for line in open(path):
            f = line.split()
            if len(f) == 2 and num(f[1]) is not None:
                res[f[0]] = float(f[1])
    return res


def micro_section(d, lines, targets):
    res, reps = micro_results(d)
    if res is None:
        return
    ir = callgrind_results(d)
    raw = res.get("ref_fcontext_roundtrip", (None, False))[0]
    pairs = {"green_yield/1w": "ref_bfiber_yield", "green_spawn_join/1w": "ref_bfiber_spawn_join",
             "green_channel_rt/1w": "ref_bfiber_channel_rt"}
    rows = []
    for name, label, wl in MICRO:
        matches = [k for k in res if k == name or k.startswith(name + "/")]
        if not matches:
            continue
        per_op, wall = res[matches[0]]
        note = []
        if name == "ref_fcontext_roundtrip":
            note.append("the physical limit (2 switches)")
        if name in pairs and raw:
            note.append(f"{per_op / raw:.2f}x the raw round trip")
            ref = res.get(pairs[name], (None,))[0]
            if ref:
                note.append(f"{ref / per_op:.2f}x faster than Boost.Fiber" if ref >= per_op
                            else f"{per_op / ref:.2f}x slower than Boost.Fiber")
        irs = fmt_ir(ir[wl]) if wl and wl in ir else "-"
        rows.append([label, fmt_time_s(per_op) + (" (wall)" if wall else ""), irs,
                     "; ".join(note)])
    lines.append("### Micro-benchmarks")
    lines.append("")
    lines += table(["benchmark", f"time per op (CPU, median of {reps or '?'})", "Ir/op", "note"],
                   "lrrl", rows)
    lines.append("")
    if raw:
        y = res.get("green_yield/1w", (None,))[0]
        s = res.get("green_spawn_join/1w", (None,))[0]
        c = res.get("green_channel_rt/1w", (None,))[0]
        if y:
            targets.append(["micro: yield <= 1.15x the raw Boost.Context round trip",
                            f"{ratio(y, raw):.2f}x", "met" if ratio(y, raw) <= 1.15 else "missed"])
        if s:
            targets.append(["micro: spawn+join <= 100 ns", fmt_time_s(s),
                            "met" if s <= 100e-9 else "missed"])
        if c:
            targets.append(["micro: unbuffered channel round trip <= 100 ns", fmt_time_s(c),
                            "met" if c <= 100e-9 else "missed"])


# --- idle fibers ----------------------------------------------------------------------------


def idle_section(d, lines, targets):
    path = os.path.join(d, "idle_fibers.txt")
    if not os.path.exists(path):
        return
    rows = []
    worst = None
    for line in open(path):
        if not line.startswith("idle_fibers "):
            continue
        kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        if kv.get("result") == "stalled":
            rows.append([fmt_int(kv.get("n")), "stalled", "-", "-", "-", "-"])
            continue
        rss = num(kv.get("rss_per_fiber_kib"))
        if rss is not None and int(kv["n"]) >= 10000:
            worst = rss if worst is None else max(worst, rss)
        rows.append([fmt_int(kv.get("n")), f"{rss:.2f} KiB" if rss is not None else "-",
                     f"{fmt_int(kv.get('pte_per_fiber_b'))} B",
                     fmt_time_s(num(kv.get("spawn_ns")) * 1e-9 if num(kv.get("spawn_ns")) else None),
                     fmt_time_s(num(kv.get("wake_ns")) * 1e-9 if num(kv.get("wake_ns")) else None),
                     f"{fmt_int(kv.get('maps'))} / {fmt_int(kv.get('max_map_count'))}"])
    if not rows:
        return
    lines.append("### Idle fibers (`idle_fibers N`, default options)")
    lines.append("")
    lines += table(["N", "RSS per fiber", "page tables (not in RSS)", "spawn until parked",
                    "wake and finish", "mappings"], "rrrrrr", rows)
    lines.append("")
    if worst is not None:
        targets.append(["idle fiber RSS <= 4.5 KiB (N >= 10,000)", f"{worst:.2f} KiB",
                        "met" if worst <= 4.5 else "missed"])


# --- echo tables ------------------------------------------------------------------------------

ECHO_LABELS = {"libuv": "libuv", "fibers": "fibers (`green::net`)",
               "greenrun": "threads under greenrun", "go": "Go goroutines",
               "threads": "OS threads"}
PY_LABELS = {"gevent": "gevent (monkey)", "greenrun": "greenrun --workers 1",
             "greenrun2": "greenrun --workers 2", "threads": "OS threads", "asyncio": "asyncio",
             "uvloop": "uvloop"}
ECHO_HEADER = ["server", "conns", "rt/s", "p99", "CPU per rt", "CPU", "min ans"]


def read_csv(path):
    if not os.path.exists(path):
        return None
    return list(csv.DictReader(open(path)))


def echo_rows(rows, base, labels):
    """Markdown rows (README format) plus notes; ratios against `base` at the same conns."""
    by = {(r["server"], r["conns"]): r for r in rows}
    out, notes = [], []
    for r in rows:
        b = by.get((base, r["conns"]), {})
        out.append([labels.get(r["server"], r["server"]), fmt_int(r["conns"]),
                    fmt_int(r["rt_per_s"]), fmt_us(r["p99_us"]),
                    "-" if num(r["cpu_us_per_rt"]) is None else f"{float(r['cpu_us_per_rt']):.2f} us",
                    "-" if num(r["cpu_pct"]) is None else f"{float(r['cpu_pct']):.0f}%",
                    fmt_int(r["min_answered"]),
                    fmt_ratio(r["rt_per_s"], b.get("rt_per_s")),
                    fmt_ratio(r["cpu_us_per_rt"], b.get("cpu_us_per_rt")),
                    fmt_ratio(r["p99_us"], b.get("p99_us"))])
        if num(r["rt_per_s"]) is None:
            notes.append(f"- {labels.get(r['server'], r['server'])} at {fmt_int(r['conns'])} "
                         f"connections: no result ({r.get('note') or 'see the log'})")
    return out, notes


def echo_section(d, meta, lines, targets):
    rows = read_csv(os.path.join(d, "echo.csv"))
    if not rows:
        return None
    quota = rows[0].get("quota_pct", "none")
    lines.append(f"### Echo, 64 B ping-pong, server {'capped at ' + quota + '% of a CPU' if quota != 'none' else 'uncapped'} "
                 f"({meta.get('date', '?')}, {meta.get('commit', '?')})")
    lines.append("")
    lines.append(f"1 worker / GOMAXPROCS=1, {runs_text(meta)} of {meta.get('duration', '?')} s, "
                 f"server on CPU 1, `loadgen` on CPU 0; load average {meta.get('load_start', '?')} "
                 f"at the start, {meta.get('load_end', '?')} at the end."
                 + (f" A server is saturated when its CPU is at the {quota}% cap; below it, the "
                    "load generator or other jobs limited the run." if quota != "none" else
                    (" Uncapped (`--quota none`)" if meta.get("quota") == "none" else
                     " No cpu cgroup could be made: the servers ran uncapped")
                    + ", so a server below 100% CPU was not saturated."))
    lines.append("")
    md, notes = echo_rows(rows, "libuv", ECHO_LABELS)
    lines += table(ECHO_HEADER + ["x libuv rt/s", "x libuv CPU/rt", "x libuv p99"],
                   "lrrrrrrrrr", md)
    lines += [""] + notes + ([""] if notes else [])
    by = {(r["server"], r["conns"]): r for r in rows}
    for c in sorted({r["conns"] for r in rows}, key=int):
        g, u, go = by.get(("greenrun", c)), by.get(("libuv", c)), by.get(("go", c))
        if not g or not u or num(g["rt_per_s"]) is None or num(u["rt_per_s"]) is None:
            continue
        x = ratio(float(g["rt_per_s"]), float(u["rt_per_s"]))
        targets.append([f"greenrun echo, {fmt_int(c)} conns: rt/s >= 1.0x libuv", f"{x:.2f}x",
                        "met" if x >= 1.0 else "missed"])
        if num(g["cpu_us_per_rt"]) and num(u["cpu_us_per_rt"]):
            x = ratio(float(g["cpu_us_per_rt"]), float(u["cpu_us_per_rt"]))
            targets.append([f"greenrun echo, {fmt_int(c)} conns: CPU/rt <= 1.1x libuv", f"{x:.2f}x",
                            "met" if x <= 1.1 else "missed"])
        if num(g["p99_us"]) and num(u["p99_us"]):
            x = ratio(float(g["p99_us"]), float(u["p99_us"]))
            targets.append([f"greenrun echo, {fmt_int(c)} conns: p99 <= 1.5x libuv", f"{x:.2f}x",
                            "met" if x <= 1.5 else "missed"])
        targets.append([f"greenrun echo, {fmt_int(c)} conns: every connection answered every second",
                        f"{fmt_int(g['min_answered'])} of {fmt_int(c)}",
                        "met" if g["min_answered"] == c else "missed"])
        if go and num(go["rt_per_s"]):
            x = ratio(float(g["rt_per_s"]), float(go["rt_per_s"]))
            targets.append([f"greenrun echo, {fmt_int(c)} conns: ahead of Go", f"{x:.2f}x Go's rt/s",
                            "met" if x > 1.0 else "missed"])
    return rows


def python_section(d, meta, lines, targets):
    rows = read_csv(os.path.join(d, "python.csv"))
    if not rows:
        return None
    servers = {r["server"] for r in rows}
    base = "gevent" if "gevent" in servers else "threads"
    lines.append(f"### Python echo: one `socketserver.ThreadingTCPServer` file, unmodified "
                 f"({meta.get('date', '?')}, {meta.get('commit', '?')})")
    lines.append("")
    lines.append(f"`{meta.get('python', 'python3')}`, every server on CPU 1 (so `--workers 2` "
                 f"shares it), `loadgen` on CPU 0, {runs_text(meta)} of "
                 f"{meta.get('duration', '?')} s."
                 + ("" if base == "gevent" else " python3-gevent is not installed: no gevent row, "
                    "ratios against OS threads."))
    lines.append("")
    md, notes = echo_rows(rows, base, PY_LABELS)
    lines += table(ECHO_HEADER + [f"x {base} rt/s", f"x {base} CPU/rt", f"x {base} p99"],
                   "lrrrrrrrrr", md)
    lines += [""] + notes + ([""] if notes else [])
    by = {(r["server"], r["conns"]): r for r in rows}
    if base == "gevent":
        for c in sorted({r["conns"] for r in rows}, key=int):
            g, ge = by.get(("greenrun", c)), by.get(("gevent", c))
            if g and ge and num(g["rt_per_s"]) and num(ge["rt_per_s"]):
                x = ratio(float(g["rt_per_s"]), float(ge["rt_per_s"]))
                targets.append([f"Python greenrun, {fmt_int(c)} conns: >= 2x gevent's rt/s",
                                f"{x:.2f}x", "met" if x >= 2.0 else "missed"])
            g2 = by.get(("greenrun2", c))
            if g and g2 and num(g["p99_us"]) and num(g2["p99_us"]):
                ok = float(g2["p99_us"]) <= float(g["p99_us"])
                targets.append([f"Python, {fmt_int(c)} conns: --workers 2 p99 <= --workers 1 p99",
                                f"{fmt_us(g2['p99_us'])} vs {fmt_us(g['p99_us'])}",
                                "met" if ok else "missed"])
    return rows


# --- chart ------------------------------------------------------------------------------------------


def chart(d, panels, title=""):
    """panels: [(title, rows, labels)]; writes DIR/chart.png with gnuplot, 3 panels per row."""
    gp = shutil.which("gnuplot")
    if not gp or not panels:
        print("tables.py: gnuplot is not installed: no chart" if not gp else
              "tables.py: no echo results: no chart", file=sys.stderr)
        return False
    term = "pngcairo size 1500,{h} font 'sans,10'"
    if subprocess.run([gp, "-e", "set terminal pngcairo"], capture_output=True).returncode != 0:
        term = "png size 1500,{h}"
    script = [f"set terminal {term.format(h=480 * len(panels))}",
              f"set output '{os.path.join(d, 'chart.png')}'", "set termoption noenhanced",
              f"set multiplot layout {len(panels)},3 title \"{title}\" font ',11'",
              "set logscale x", "set grid", "set key below font ',9'",
              "set xlabel 'connections'", "set datafile missing '-'"]
    for i, (title, rows, labels) in enumerate(panels):
        dat = os.path.join(d, f"chart{i}.dat")
        servers = list(dict.fromkeys(r["server"] for r in rows))
        with open(dat, "w") as f:
            for s in servers:
                f.write(f"# {s}\n")
                for r in sorted((r for r in rows if r["server"] == s), key=lambda r: int(r["conns"])):
                    p99 = num(r["p99_us"])
                    f.write(f"{r['conns']} {r['rt_per_s'] if num(r['rt_per_s']) is not None else '-'} "
                            f"{r['cpu_us_per_rt'] if num(r['cpu_us_per_rt']) is not None else '-'} "
                            f"{p99 / 1000 if p99 is not None else '-'}\n")
                f.write("\n\n")
        conns = sorted({int(r["conns"]) for r in rows})
        script += [f"set xrange [{conns[0] / 1.5}:{conns[-1] * 1.5}]",
                   "set xtics (" + ", ".join(f"'{c:,}' {c}" for c in conns) + ")"]
        for col, what, extra in ((2, "round trips/s (higher is better)", "unset logscale y; set format y '%.0s%c'"),
                                 (3, "server CPU per round trip, us (lower is better)",
                                  "unset logscale y; set format y '%g'"),
                                 (4, "p99 latency, ms (lower is better, log)",
                                  "set logscale y; set format y '%g'")):
            plots = ", ".join(
                f"'{dat}' index {k} using 1:{col} with linespoints lw 2 title '{labels.get(s, s).replace('`', '')}'"
                for k, s in enumerate(servers))
            script += [extra, "set yrange [0:*]" if col != 4 else "set yrange [*:*]",
                       f"set title \"{title}: {what}\" font ',10'", f"plot {plots}"]
    script.append("unset multiplot")
    r = subprocess.run([gp], input="\n".join(script) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        print("tables.py: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


def render(d):
    meta = read_kv(os.path.join(d, "meta.txt"))
    lines, targets = [], []
    quick = meta.get("quick") == "1"
    lines.append(f"## bench/run_all.sh{' --quick' if quick else ''}: {meta.get('date', '?')}, "
                 f"{meta.get('commit', '?')}, {meta.get('build') or '?'} build")
    lines.append("")
    lines.append(f"{meta.get('machine', '?')}; load average {meta.get('load_start', '?')} at the "
                 f"start, {meta.get('load_end', '?')} at the end; {meta.get('seconds', '?')} s."
                 + (" **--quick: tiny counts and 1 s windows, the figures mean nothing.**"
                    if quick else ""))
    lines.append("")
    micro_section(d, lines, targets)
    idle_section(d, lines, targets)
    panels = []
    rows = echo_section(d, meta, lines, targets)
    if rows:
        panels.append(("echo", rows, ECHO_LABELS))
    rows = python_section(d, meta, lines, targets)
    if rows:
        panels.append(("Python echo", rows, PY_LABELS))
    if targets:
        lines.append("### Issue 11's targets in this run")
        lines.append("")
        if quick:
            lines.append("(--quick: other connection counts and 1 s windows than the targets', so "
                         "these verdicts only show that the table is made.)")
            lines.append("")
        lines += table(["target", "measured", "verdict"], "lll", targets)
        lines.append("")
    open(os.path.join(d, "tables.md"), "w").write("\n".join(lines))
    chart(d, panels, f"bench/run_all.sh{' --quick' if quick else ''}: {meta.get('date', '?')}, "
          f"{meta.get('commit', '?')}, load average {meta.get('load_start', '?')}")
    return 0


# --- check --------------------------------------------------------------------------------------------

NUMERIC = re.compile(r"^(-|\*{0,2}[0-9][0-9,]*(\.[0-9]+)?\*{0,2}( ?(ns|us|ms|s|KiB|B|%|x))?"
                     r"( \(wall\))?( / [0-9][0-9,]*)?)$")


def check_png(path, errors):
    if not os.path.exists(path):
        errors.append(f"{path}: missing")
        return
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        errors.append(f"{path}: no PNG signature")
        return
    pos, chunks, idat, ihdr = 8, [], b"", None
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length] or b"\0\0\0\0")
        if len(body) != length or zlib.crc32(kind + body) != crc:
            errors.append(f"{path}: chunk {kind!r} at {pos}: truncated or bad CRC")
            return
        chunks.append(kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or not idat or ihdr is None:
        errors.append(f"{path}: chunks {chunks[:3]}...{chunks[-1:]} (want IHDR ... IDAT ... IEND)")
        return
    w, h, depth, color = ihdr[:4]
    if not (100 <= w <= 10000 and 100 <= h <= 10000):
        errors.append(f"{path}: implausible size {w}x{h}")
    try:
        raw = zlib.decompress(idat)
    except zlib.error as e:
        errors.append(f"{path}: IDAT does not inflate: {e}")
        return
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 0)
    if ihdr[6] == 0 and channels:  # not interlaced: h rows of 1 filter byte + pixels
        want = h * (1 + (w * channels * depth + 7) // 8)
        if len(raw) != want:
            errors.append(f"{path}: {len(raw)} bytes of pixels, want {want} for {w}x{h}")


def parse_tables(text):
    """{section title: [rows as lists of cells, header first]} of every markdown table."""
    tables, title, cur = {}, None, None
    for line in text.splitlines():
        if line.startswith("### "):
            title, cur = line[4:], None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = tables.setdefault(title, [])
            cur.append(cells)
        else:
            cur = None
    return tables


def check(d, want_sections):
    errors = []
    path = os.path.join(d, "tables.md")
    if not os.path.exists(path):
        errors.append(f"{path}: missing")
    else:
        tables = parse_tables(open(path).read())
        for want in want_sections:
            if not any(t.startswith(want) for t in tables):
                errors.append(f"tables.md: no '### {want}...' table")
        for title, rows in tables.items():
            if len(rows) < 3:
                errors.append(f"tables.md: '{title}': {len(rows)} lines (header, separator, rows)")
                continue
            header, sep, body = rows[0], rows[1], rows[2:]
            if not all(re.fullmatch(r"-+:?", c) for c in sep) or len(sep) != len(header):
                errors.append(f"tables.md: '{title}': bad separator line {sep}")
            for r in body:
                if len(r) != len(header):
                    errors.append(f"tables.md: '{title}': row {r} has {len(r)} cells, header {len(header)}")
                    continue
                for h, c, a in zip(header, r, sep):
                    if a.endswith(":") and not NUMERIC.match(c):
                        errors.append(f"tables.md: '{title}': column '{h}': '{c}' is not a number")
            # The main figure: the first numeric column after the key columns (rt/s, time
            # per op, RSS per fiber); a table where no row has it measured nothing.
            key = 2 if header[:2] == ["server", "conns"] else 1
            main = next((i for i in range(key, len(sep)) if sep[i].endswith(":")), None)
            if main is not None and not any(len(r) == len(header) and r[main] != "-" for r in body):
                errors.append(f"tables.md: '{title}': no row has a '{header[main]}' figure")
            if header[0] == "server":  # echo tables: the base row's ratios are 1.00
                xs = [i for i, h in enumerate(header) if h.startswith("x ")]
                base = header[xs[0]].split()[1] if xs else None
                for r in body:
                    label = r[0].split()
                    is_base = bool(label) and (label[0] == base or label[-1] == base)
                    if len(r) == len(header) and xs and is_base and r[2] != "-":
                        if any(r[i] != "1.00" for i in xs):
                            errors.append(f"tables.md: '{title}': base row {r} has ratios != 1.00")
    check_png(os.path.join(d, "chart.png"), errors)
    for e in errors:
        print("tables.py check: " + e, file=sys.stderr)
    return 1 if errors else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "render":
        return render(argv[2])
    if len(argv) >= 3 and argv[1] == "check":
        return check(argv[2], argv[3:] or ["Micro-benchmarks", "Idle fibers", "Echo", "Python echo"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
