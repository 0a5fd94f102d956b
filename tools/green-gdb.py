# gdb helper for green: lists fibers and shows a parked fiber's backtrace.
#
#   (gdb) source /usr/local/share/green/green-gdb.py     (installed with the library)
#   (gdb) green-fibers            every worker and every fiber: id, name, state, wait
#   (gdb) green-bt 7              backtrace of fiber 7 (parked or runnable: from the
#                                 registers jump_fcontext saved; running: says which thread)
#
# How it finds fibers: green::detail::Runtime::current_ -> workers_ (vector of unique_ptr)
# -> each Worker's all_contexts_ list (Context::all_next_). A Context with a task_ holds a
# fiber; its fctx_ points at the frame jump_fcontext saved when it switched away. On x86_64
# (Boost.Context's sysv_elf layout) that frame is
#     [mxcsr + x87 cw: 8 bytes][r12][r13][r14][r15][rbx][rbp][rip]
# and rsp after the restore is fctx + 0x40. green-bt loads those registers into the selected
# thread, prints `bt`, and puts the thread's own registers back (live processes only: a core
# file's registers cannot be written).
#
# Works without green's debug info for nothing: it needs libgreen's DWARF (RelWithDebInfo
# builds have it). Reads memory only; calls no function in the inferior.
import gdb

_STATE_PREFIXES = ("green::detail::Context::State::", "green::detail::Context::")
_KIND_NAMES = {
    "kOther": "wait",
    "kSleep": "sleep",
    "kJoin": "join of fiber",
    "kMutex": "green::Mutex",
    "kCondVar": "green::CondVar",
    "kSemaphore": "green::Semaphore",
    "kEvent": "green::Event",
    "kWaitGroup": "green::WaitGroup",
    "kChannelSend": "channel send",
    "kChannelRecv": "channel recv",
    "kIo": "fd",
    "kOffload": "offload",
    "kResolve": "resolve",
}
# jump_fcontext's saved frame (x86_64 sysv): register -> offset from fctx
_FCTX_LAYOUT = [("r12", 0x08), ("r13", 0x10), ("r14", 0x18), ("r15", 0x20), ("rbx", 0x28),
                ("rbp", 0x30), ("rip", 0x38)]
_FCTX_RSP = 0x40
_RESTORE_REGS = ["rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15"]


def _atomic_load(v):
    """Value stored in a libstdc++ std::atomic<T> (pointer or integral)."""
    for path in (("_M_b", "_M_p"), ("_M_i",), ("_M_base", "_M_i")):
        try:
            x = v
            for f in path:
                x = x[f]
            return x
        except gdb.error:
            continue
    # Last resort: an atomic<T> starts with its T.
    return v.address.cast(v.type.template_argument(0).pointer()).dereference()


def _std_string(v):
    try:
        n = int(v["_M_string_length"])
        if n == 0:
            return ""
        return v["_M_dataplus"]["_M_p"].string(length=min(n, 200))
    except gdb.error:
        return "?"


def _enum_name(v, prefixes=("",)):
    s = str(v)
    for p in prefixes:
        if s.startswith(p):
            s = s[len(p):]
    for p in ("green::detail::WaitKind::",):
        if s.startswith(p):
            s = s[len(p):]
    return s


def _runtime():
    try:
        try:
            rt = gdb.parse_and_eval("green::detail::Runtime::current_")
        except gdb.error:
            # Stopped in a frame of a program without C++ debug info (a C program under
            # greenrun): the scope-qualified name only parses quoted there.
            rt = gdb.parse_and_eval("'green::detail::Runtime::current_'")
        rt = _atomic_load(rt)
    except gdb.error as e:
        raise gdb.GdbError("green: cannot read green::detail::Runtime::current_ (%s); is "
                           "libgreen loaded and built with debug info?" % e)
    if int(rt) == 0:
        raise gdb.GdbError("green: no runtime is running (Runtime::current_ is null)")
    return rt


def _workers(rt):
    vec = rt["workers_"]["_M_impl"]
    start, finish = vec["_M_start"], vec["_M_finish"]
    n = int(finish - start)
    wptr = gdb.lookup_type("green::detail::Worker").pointer()
    # A std::unique_ptr<Worker> with the default deleter is exactly one Worker*.
    raw = start.cast(wptr.pointer())
    return [raw[i] for i in range(n)]


def _contexts(worker):
    c = worker["all_contexts_"]
    seen = 0
    while int(c) != 0 and seen < 10000000:
        yield c
        c = c["all_next_"]
        seen += 1


def _task(c):
    """Context::task_ as a plain Task* (no dynamic-type lookup: the concrete TaskImpl<...>
    lambda types have no RTTI symbols gdb can find, and it would warn for each)."""
    t = c["task_"]
    return gdb.Value(int(t)).cast(gdb.lookup_type("green::detail::Task").pointer())


def _tf(task, name):
    """Field `name` of a Task*, read at its offset: dereferencing a pointer to the
    polymorphic Task makes gdb look up the dynamic type (and warn for each lambda type)."""
    ttype = gdb.lookup_type("green::detail::Task")
    for f in ttype.fields():
        if f.name == name:
            addr = int(task) + f.bitpos // 8
            return gdb.Value(addr).cast(f.type.pointer()).dereference()
    raise gdb.error("green::detail::Task has no field " + name)


def _ts(task, name):
    """Field `name` of a Task's runtime state: green::detail::TaskState
    (runtime/src/task_state.hpp), kept in the Task's reserved storage rt_."""
    st = gdb.lookup_type("green::detail::TaskState")
    return _tf(task, "rt_").address.cast(st.pointer()).dereference()[name]


def _fibers():
    """(worker index, worker, context, task) for every context that holds a task."""
    out = []
    for wi, w in enumerate(_workers(_runtime())):
        for c in _contexts(w):
            if bool(c["is_scheduler_"]):
                continue
            t = _task(c)
            if int(t) == 0:
                continue
            out.append((wi, w, c, t))
    return out


def _describe_wait(task):
    w = _ts(task, "waiter")
    if int(w) == 0:
        return "an uninterruptible wait"
    try:
        kind = _enum_name(w["kind"])
    except gdb.error:
        return "a wait"
    s = _KIND_NAMES.get(kind, kind)
    try:
        if kind == "kIo":
            ev = int(w["events"])
            s += " %d%s%s" % (int(w["fd"]), " readable" if ev & 1 else "",
                              " writable" if ev & 4 else "")
        elif kind == "kJoin" and int(w["object"]) != 0:
            s += " %d" % int(_tf(w["object"], "id_"))
        elif int(w["object"]) != 0:
            s += " 0x%x" % int(w["object"])
    except gdb.error:
        pass
    return s


class GreenFibers(gdb.Command):
    """List green's workers and fibers: id, name, state and what parked fibers wait on."""

    def __init__(self):
        super().__init__("green-fibers", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        rt = _runtime()
        workers = _workers(rt)
        gdb.write("green: %d worker(s)\n" % len(workers))
        for wi, w in enumerate(workers):
            running = w["running_"]
            gdb.write("worker %d (Worker *) 0x%x%s\n" % (
                wi, int(w), "" if int(running) == 0 or not bool(running["is_scheduler_"])
                else ", in its scheduler"))
            for c in _contexts(w):
                if bool(c["is_scheduler_"]):
                    continue
                t = _task(c)
                if int(t) == 0:
                    continue
                state = _enum_name(c["state_"], _STATE_PREFIXES)
                name = _std_string(_tf(t, "name_"))
                line = "  fiber %d%s: %s" % (int(_tf(t, "id_")), ' "%s"' % name if name else "",
                                              {"kRunning": "running", "kReady": "runnable",
                                               "kParked": "parked", "kIdle": "idle"}.get(
                                                  state, state))
                if state == "kParked":
                    line += " on " + _describe_wait(t)
                gdb.write(line + "\n")


def _find(fid):
    for wi, w, c, t in _fibers():
        if int(_tf(t, "id_")) == fid:
            return wi, w, c, t
    return None


class GreenBt(gdb.Command):
    """green-bt FIBER-ID: backtrace of a parked or runnable fiber (registers saved by
jump_fcontext are loaded into the selected thread for the `bt`, then restored)."""

    def __init__(self):
        super().__init__("green-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if len(argv) < 1:
            raise gdb.GdbError("usage: green-bt FIBER-ID [bt arguments]")
        try:
            fid = int(argv[0], 0)
        except ValueError:
            raise gdb.GdbError("green-bt: '%s' is not a fiber id" % argv[0])
        found = _find(fid)
        if not found:
            raise gdb.GdbError("green-bt: no fiber %d (see green-fibers)" % fid)
        wi, w, c, t = found
        state = _enum_name(c["state_"], _STATE_PREFIXES)
        if state == "kRunning":
            gdb.write("fiber %d is running on worker %d: select that worker's thread "
                      "(info threads) and use bt\n" % (fid, wi))
            return
        arch = gdb.selected_frame().architecture().name()
        if "x86-64" not in arch and "x86_64" not in arch:
            raise gdb.GdbError("green-bt: only x86_64 is supported (this is %s)" % arch)
        fctx = int(c["fctx_"])
        if fctx == 0:
            raise gdb.GdbError("green-bt: fiber %d has no saved context" % fid)
        inf = gdb.selected_inferior()
        u64 = gdb.lookup_type("unsigned long")
        regs = {}
        for r, off in _FCTX_LAYOUT:
            regs[r] = int(gdb.Value(fctx + off).cast(u64.pointer()).dereference())
        regs["rsp"] = fctx + _FCTX_RSP

        gdb.execute("frame 0", to_string=True)
        saved = {r: int(gdb.parse_and_eval("$" + r).cast(u64)) for r in _RESTORE_REGS}
        name = _std_string(_tf(t, "name_"))
        gdb.write("fiber %d%s (%s, worker %d):\n" % (fid, ' "%s"' % name if name else "",
                                                     state, wi))
        try:
            for r, v in regs.items():
                gdb.execute("set $%s = %d" % (r, v), to_string=True)
            gdb.execute("bt " + " ".join(argv[1:]))
        except gdb.error as e:
            gdb.write("green-bt: %s\n" % e)
        finally:
            for r in _RESTORE_REGS:
                gdb.execute("set $%s = %d" % (r, saved[r]), to_string=True)
            gdb.execute("frame 0", to_string=True)
        del inf


GreenFibers()
GreenBt()
