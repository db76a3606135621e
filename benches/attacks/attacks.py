#!/usr/bin/env python3
"""Scripted attacks on the example servers (issue 13): does a server hold under attack?

Starts each server itself (release builds), runs one attack at a time against a fresh
server process, and prints a markdown table: attack x server -> outcome, server RSS and
fd count before / peak during / after, and the latency of a "normal client" that issues
one request every 50 ms during the attack.

Servers: the kv example (`--runtime iocore|tokio`, RESP: the normal request is PING) for
every attack; the msgbench server (`--runtime iocore|tokio|smol`, framed echo: the normal
request is one 28-byte frame, benches/PROTOCOL.md) for the two connect/close floods.

Everything is loopback (127.0.0.1), bounded in time and count, and stops by itself.
Python 3 standard library only.

    python3 benches/attacks/attacks.py --quick            # about 1.5 minutes
    python3 benches/attacks/attacks.py                    # the full sizes, about 5 minutes
    python3 benches/attacks/attacks.py --only flood --runtime iocore,tokio,smol

The exit status is 1 when any row is not OK (the kv example's tokio server exits at the
first accept error, so out-of-fds fails for it: `--runtime iocore` for CI).
"""

import argparse
import collections
import errno
import json
import multiprocessing as mp
import os
import random
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "127.0.0.1"
PROBE_INTERVAL = 0.050  # the normal client: one request every 50 ms
PROBE_TIMEOUT = 5.0  # a normal request slower than this counts as a failure
SETTLE_SECS = 10.0  # after an attack, how long the server gets to release its fds
LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST

# Sizes of each attack: (full, quick).
SIZES = {
    "garbage_conns": (50, 10),
    "garbage_secs": (8, 2),
    "huge_conns": (50, 5),  # per variant
    "huge_hold_secs": (5, 1),
    "slowloris_conns": (2000, 200),
    "slowloris_secs": (10, 3),
    "flood_secs": (5, 2),
    "flood_max": (50_000, 10_000),  # connect+close, over all flood processes
    "flood_procs": (2, 2),
    "flood_inflight": (32, 32),  # connects in flight per flood process (--flood-inflight)
    "flood_rate": (0, 0),  # connects per second in all, 0: as fast as possible (--flood-rate)
    "slow_conns": (200, 20),
    "slow_value": (1 << 20, 1 << 20),
    "slow_gets": (1000, 100),  # pipelined GETs per slow reader
    "slow_secs": (8, 2),
    "half_secs": (6, 2),
    "half_threads": (8, 4),
    "half_gets": (10, 10),  # GETs of the 1 MiB value per connection
    "nofds_limit": (64, 64),
    "nofds_conns": (200, 100),
    "nofds_secs": (5, 2),
}


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (the servers we start inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def err_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


# ---------------------------------------------------------------------------------------
# Protocols: the normal request of each server, and a few helpers.

KV_PING, KV_PONG = b"PING\r\n", b"+PONG\r\n"
# msgbench frame (little-endian): body_len=20, timestamp 0, int_count 0, payload_len 0.
MSG_FRAME = struct.pack("<QQIQ", 20, 0, 0, 0)


def kv_cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def request(sock, proto):
    """One normal request on `sock`; raises on a wrong or missing answer."""
    if proto == "kv":
        sock.sendall(KV_PING)
        got = recv_exact(sock, len(KV_PONG))
        if got != KV_PONG:
            raise ValueError("unexpected reply %r" % got)
    else:
        sock.sendall(MSG_FRAME)
        got = recv_exact(sock, len(MSG_FRAME))
        if got[:8] != MSG_FRAME[:8]:
            raise ValueError("unexpected reply %r" % got)


def connect(port, timeout=PROBE_TIMEOUT, rst=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rst:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    s.settimeout(timeout)
    try:
        s.connect((HOST, port))
    except BaseException:
        s.close()
        raise
    return s


def fresh_request(port, proto, timeout=2.0):
    """Connect, one request, close: True when answered."""
    try:
        with connect(port, timeout) as s:
            request(s, proto)
        return True
    except OSError:
        return False
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------
# The normal client: its own process (so the attack's Python work does not delay it).


def _probe_main(port, proto, mode, stop, results):
    """One request every PROBE_INTERVAL until `stop` is set. mode "persistent": on one
    connection (reopened after a failure); mode "fresh": connect + request + close each
    time (the latency includes the connect)."""
    lat, errors, sock = [], collections.Counter(), None
    start = time.monotonic()
    k = 0
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            if mode == "fresh":
                with connect(port) as s:
                    request(s, proto)
            else:
                if sock is None:
                    sock = connect(port)
                request(sock, proto)
            lat.append(time.monotonic() - t0)
        except (OSError, ValueError) as e:
            errors[err_name(e)] += 1
            if sock is not None:
                sock.close()
                sock = None
        # The next slot on the fixed 50 ms schedule (a slow request skips slots, no burst).
        k = max(k + 1, int((time.monotonic() - start) / PROBE_INTERVAL) + 1)
        delay = start + k * PROBE_INTERVAL - time.monotonic()
        if delay > 0:
            stop.wait(delay)
    if sock is not None:
        sock.close()
    results.put({"lat": lat, "errors": dict(errors)})


class Probe:
    def __init__(self, port, proto, mode):
        ctx = mp.get_context("spawn")
        self.mode = mode
        self.stop_event = ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(
            target=_probe_main, args=(port, proto, mode, self.stop_event, self.results), daemon=True
        )
        self.proc.start()

    def stop(self):
        self.stop_event.set()
        try:
            r = self.results.get(timeout=PROBE_TIMEOUT + 5)
        except Exception:
            r = {"lat": [], "errors": {"probe-lost": 1}}
        self.proc.join(5)
        lat = sorted(r["lat"])
        return {
            "mode": self.mode,
            "n": len(lat),
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "max": lat[-1] if lat else None,
            "slow": sum(1 for v in lat if v > 0.050),
            "errors": r["errors"],
        }


# ---------------------------------------------------------------------------------------
# Server control.


@dataclass
class Target:
    """A server to attack: `kind` kv or msgbench, and its runtime."""

    kind: str
    runtime: str

    @property
    def proto(self):
        return "kv" if self.kind == "kv" else "msg"

    @property
    def name(self):
        return "%s %s" % (self.kind, self.runtime)


class Server:
    """A server child process: start, wait until it listens, /proc sampling, stop."""

    def __init__(self, target, binaries, threads=2, nofile=None):
        self.target = target
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        if target.kind == "kv":
            cmd = [binaries["kv"], "--runtime", target.runtime, "--threads", str(threads), "--port", "0"]
        else:
            self.port = free_port()
            cmd = [binaries["msgbench"], "server", "--runtime", target.runtime, "--threads", str(threads),
                   "--port", str(self.port)]
        preexec = None
        if nofile is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))  # noqa: E731
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     preexec_fn=preexec)
        self.pid = self.proc.pid
        self._wait_listening()

    def _wait_listening(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.out.seek(0)
            text = self.out.read().decode(errors="replace")
            if self.target.kind == "kv" and "listening on" in text:
                self.port = int(text.split("listening on")[1].split()[0].rsplit(":", 1)[1])
                return
            if self.target.kind == "msgbench" and "ready" in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start: %s" % (self.cmd, self.stderr_text()))
            time.sleep(0.02)
        raise RuntimeError("%s did not start listening" % self.cmd)

    def alive(self):
        return self.proc.poll() is None

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def fds(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return None

    def stderr_text(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def stderr_lines(self):
        return [line for line in self.stderr_text().splitlines() if line.strip()]

    def settle_fds(self, baseline, secs=SETTLE_SECS):
        """Waits until the fd count is back to `baseline` (or `secs` pass): the fd count
        then, and how long it took."""
        t0 = time.monotonic()
        while True:
            n = self.fds()
            if n is None or n <= baseline or time.monotonic() - t0 >= secs:
                return n, time.monotonic() - t0
            time.sleep(0.05)

    def stop(self):
        """SIGTERM (then SIGKILL after 8 s); returns what the server printed on stdout."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.seek(0)
        return self.out.read().decode(errors="replace")


class Sampler:
    """Peak RSS and fd count of a server, sampled every 50 ms while an attack runs."""

    def __init__(self, server):
        self.server, self.peak_rss, self.peak_fds = server, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            self.peak_rss = max(self.peak_rss, self.server.rss_kb() or 0)
            self.peak_fds = max(self.peak_fds, self.server.fds() or 0)
            if self._stop.wait(0.05):
                return

    def stop(self):
        self._stop.set()
        self._thread.join()


def listen_counters():
    """ListenOverflows + ListenDrops of /proc/net/netstat (system-wide: SYNs or handshakes
    dropped because an accept queue was full)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
        table = dict(zip(lines[0][1:], map(int, lines[1][1:])))
        return table.get("ListenOverflows", 0), table.get("ListenDrops", 0)
    except (OSError, IndexError, ValueError):
        return None


def listen_backlog(port):
    """The accept backlog of the listener on `port` (`ss -ltn`: Send-Q), or None."""
    try:
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True, text=True,
                             timeout=5).stdout.split()
        return int(out[2]) if len(out) >= 3 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def build(target_dir):
    """Builds the kv example and the msgbench binary (release); returns their paths."""
    env = dict(os.environ)
    cargo = ["nice", "-n", "15", "cargo"]
    subprocess.run(cargo + ["build", "--release", "--example", "kv"], cwd=REPO, env=env, check=True)
    out = subprocess.run(cargo + ["bench", "--bench", "msgbench", "--no-run", "--message-format=json"],
                         cwd=REPO, env=env, check=True, stdout=subprocess.PIPE).stdout
    msgbench = None
    for line in out.decode().splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "msgbench":
            msgbench = msg.get("executable") or msgbench
    return {"kv": os.path.join(target_dir, "release", "examples", "kv"), "msgbench": msgbench}


# ---------------------------------------------------------------------------------------
# The attacks. Each gets (server, sizes) while the normal client runs, returns a dict:
# "ok" (the attack's own expectation held), "details" (what happened), "errors".


def attack_garbage(server, sz):
    """Random binary bytes, as fast as the server takes them, on N connections; replies
    are read and dropped; a connection the server closes is reopened."""
    junk = os.urandom(1 << 20)
    sel = selectors.DefaultSelector()
    stats = collections.Counter()

    def open_one():
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, server.port))
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        stats["connections"] += 1

    for _ in range(sz["garbage_conns"]):
        open_one()
    end = time.monotonic() + sz["garbage_secs"]
    while time.monotonic() < end:
        for key, ev in sel.select(0.1):
            s = key.fileobj
            try:
                if ev & selectors.EVENT_READ:
                    data = s.recv(1 << 16)
                    if not data:
                        raise ConnectionError("EOF")
                    stats["bytes received"] += len(data)
                    stats["-ERR replies (approx.)"] += data.count(b"-ERR")
                if ev & selectors.EVENT_WRITE:
                    off = random.randrange(len(junk) - 16384)
                    stats["bytes sent"] += s.send(junk[off:off + 16384])
            except (OSError, ConnectionError) as e:
                stats["closed by server (%s)" % err_name(e) if isinstance(e, OSError) and e.errno
                      else "closed by server (EOF)"] += 1
                sel.unregister(s)
                s.close()
                open_one()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    mb = stats.pop("bytes sent") / 1e6
    details = "%.0f MB sent on %d conns (%d opened in all); %s" % (
        mb, sz["garbage_conns"], stats.pop("connections"),
        ", ".join("%s %d" % kv for kv in sorted(stats.items())))
    return {"ok": True, "details": details, "errors": {}}


HUGE_VARIANTS = [
    # (label, bytes sent, expectation: "err" = -ERR then close, "wait" = within the limits)
    ("`$2000000000`", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000000\r\n", "err"),
    ("`*2000000`", b"*2000000\r\n", "err"),
    ("`*1e30`", b"*" + b"1" + b"0" * 30 + b"\r\n", "err"),
    ("`$-5`", b"*1\r\n$-5\r\n", "err"),
    ("`*1000000` (≤ --max-args)", b"*1000000\r\n", "wait"),
    ("`$60000000` (≤ --max-bulk-bytes)", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$60000000\r\n", "wait"),
]


def attack_huge(server, sz):
    """Huge announced lengths, N connections per variant: over a limit the server must
    answer `-ERR Protocol error` and close; within the limits it must wait for the data
    without reserving it (RSS), and keep the connection."""
    n, conns, outcome = sz["huge_conns"], [], {}
    sample_err = None
    for label, payload, expect in HUGE_VARIANTS:
        socks = []
        for _ in range(n):
            s = connect(server.port)
            s.sendall(payload)
            socks.append(s)
        counts = collections.Counter()
        for s in socks:
            s.settimeout(2.0 if expect == "err" else 0.2)
            reply = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                closed = True
            except socket.timeout:
                closed = False
            except OSError:
                closed = True
            if reply.startswith(b"-ERR Protocol error"):
                sample_err = sample_err or reply.strip().decode(errors="replace")
            kind = ("-ERR" if reply.startswith(b"-ERR") else "no reply") + (
                " + close" if closed else ", open")
            counts[kind] += 1
        outcome[label] = (expect, counts)
        conns += socks
    time.sleep(sz["huge_hold_secs"])  # the "wait" connections stay open meanwhile
    for s in conns:
        s.close()
    ok = all(
        c.get("-ERR + close", 0) == n if exp == "err" else c.get("no reply, open", 0) == n
        for exp, c in outcome.values())
    details = "; ".join("%s: %s" % (label, ", ".join("%d %s" % (v, k) for k, v in c.items()))
                        for label, (_, c) in outcome.items())
    if sample_err:
        details += "; e.g. \"%s\"" % sample_err
    return {"ok": ok, "details": details, "errors": {}}


def attack_slowloris(server, sz):
    """N connections, each announcing a 1 MB SET and then sending 1 byte per second
    (spread over the second); counts the connections the server closes."""
    n = sz["slowloris_conns"]
    socks, errors = [], collections.Counter()
    header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n"
    t0 = time.monotonic()
    for _ in range(n):
        try:
            s = connect(server.port, timeout=5)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            errors["connect " + err_name(e)] += 1
    connect_secs = time.monotonic() - t0
    pos = [0] * len(socks)
    closed = set()
    secs = sz["slowloris_secs"]
    end = time.monotonic() + secs
    tick = 0
    while time.monotonic() < end:
        # 1 byte per connection per second, in 20 slices of 50 ms.
        slice_ = tick % 20
        for i in range(slice_, len(socks), 20):
            if i in closed:
                continue
            s = socks[i]
            byte = header[pos[i]:pos[i] + 1] or b"x"
            try:
                s.send(byte)
                pos[i] += 1
                if s.recv(1 << 12) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError as e:
                closed.add(i)
                errors["send " + err_name(e)] += 1
        tick += 1
        time.sleep(max(0, t0 + connect_secs + tick * 0.05 - time.monotonic()))
    for s in socks:
        s.close()
    details = "%d of %d connected in %.1f s; each sent ~%d bytes over %d s; %d closed by the server" % (
        len(socks), n, connect_secs, secs, secs, len(closed))
    return {"ok": len(socks) == n, "details": details, "errors": dict(errors)}


def _flood_main(port, rst, secs, max_count, inflight, rate, results):
    """One flood process: up to `inflight` non-blocking connects at a time (so a connect
    whose SYN was dropped does not stop the flood), at most `rate` per second (0: as fast
    as possible); each connection is closed as soon as it is established."""
    raise_nofile()
    sel = selectors.DefaultSelector()
    n, started, errors = 0, 0, collections.Counter()
    t0 = time.monotonic()
    end = t0 + secs
    while True:
        now = time.monotonic()
        while (now < end and started < max_count and len(sel.get_map()) < inflight
               and (not rate or started < (now - t0) * rate)):
            s = socket.socket()
            s.setblocking(False)
            if rst:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            e = s.connect_ex((HOST, port))
            started += 1
            if e not in (0, errno.EINPROGRESS):
                errors[errno.errorcode.get(e, str(e))] += 1
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE, now)
        if not sel.get_map():
            if now >= end or started >= max_count:
                break
            time.sleep(0.001)  # paced: the next connect is not due yet
            continue
        for key, _ in sel.select(0.001 if rate else 0.05):
            e = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                errors[errno.errorcode.get(e, str(e))] += 1
            else:
                n += 1
            sel.unregister(key.fileobj)
            key.fileobj.close()
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            # A connect still pending after 3 s (SYN retransmits) counts as a timeout; at
            # the end the stragglers get until then too.
            if now - key.data > 3.0:
                errors["timeout (3 s)"] += 1
                sel.unregister(key.fileobj)
                key.fileobj.close()
    results.put((n, dict(errors)))


def _flood(server, sz, rst):
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = sz["flood_procs"]
    workers = [ctx.Process(target=_flood_main, daemon=True,
                           args=(server.port, rst, sz["flood_secs"], sz["flood_max"] // procs, sz["flood_inflight"],
                                 sz["flood_rate"] / procs, results))
               for _ in range(procs)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    total, errors = 0, collections.Counter()
    for _ in workers:
        n, e = results.get(timeout=sz["flood_secs"] + 30)
        total += n
        errors.update(e)
    secs = time.monotonic() - t0
    for w in workers:
        w.join(5)
    details = "%d connect+%s in %.1f s (%.0f/s%s) from %d processes" % (
        total, "RST" if rst else "close", secs, total / secs,
        "; paced at %d/s" % sz["flood_rate"] if sz["flood_rate"] else "", procs)
    return {"ok": True, "details": details, "errors": dict(errors)}


def attack_flood(server, sz):
    """As many connect + close as possible for a few seconds (capped), from several
    processes; the normal client opens a new connection for each request."""
    return _flood(server, sz, rst=False)


def attack_flood_rst(server, sz):
    """The same flood, each connection closed with RST (SO_LINGER 0)."""
    return _flood(server, sz, rst=True)


def set_big_value(port, size):
    with connect(port, 10) as s:
        s.sendall(kv_cmd("SET", "big", b"v" * size))
        if recv_exact(s, 5) != b"+OK\r\n":
            raise RuntimeError("SET big failed")
    return len(b"$%d\r\n" % size) + size + 2  # the size of one GET reply


def attack_slow_readers(server, sz):
    """N connections each pipelining M × GET of a 1 MiB value and never reading: the
    server must stop at its reply queue mark (RSS bounded by N × (mark + one reply))."""
    reply = set_big_value(server.port, sz["slow_value"])
    n, m = sz["slow_conns"], sz["slow_gets"]
    request_bytes = kv_cmd("GET", "big") * m
    socks, errors, unsent = [], collections.Counter(), 0
    for _ in range(n):
        try:
            s = connect(server.port)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            errors["connect " + err_name(e)] += 1
    pending = {s: request_bytes for s in socks}
    t0 = time.monotonic()
    end = t0 + sz["slow_secs"]
    rss_mid = None
    while time.monotonic() < end:
        if rss_mid is None and time.monotonic() - t0 >= sz["slow_secs"] / 2:
            rss_mid = server.rss_kb()
        for s, rest in list(pending.items()):
            try:
                k = s.send(rest)
                pending[s] = rest[k:]
                if not pending[s]:
                    del pending[s]
            except BlockingIOError:
                pass
            except OSError as e:
                errors["send " + err_name(e)] += 1
                del pending[s]
        time.sleep(0.05)
    rss_end = server.rss_kb()
    unsent = sum(len(r) for r in pending.values())
    for s in socks:
        s.close()  # unread data: the kernel sends RST
    # Bounded = no longer growing: the second half of the hold adds at most 10 % (+ 4 MB).
    bounded = rss_mid is not None and rss_end is not None and rss_end <= rss_mid * 1.1 + 4096
    details = ("%d readers × %d pipelined GETs of %d KiB (%.0f GB of replies asked), never read; "
               "%d request bytes not taken by the server; RSS at half time %s MB, at the end %s MB "
               "(%s); %.2f MB per reader at the end") % (
        len(socks), m, sz["slow_value"] >> 10, len(socks) * m * reply / 1e9, unsent,
        fmt_mb(rss_mid), fmt_mb(rss_end), "not growing" if bounded else "STILL GROWING",
        ((rss_end or 0) - server.rss_start) / 1024 / max(1, len(socks)))
    return {"ok": bounded, "details": details, "errors": dict(errors)}


def attack_half_close(server, sz):
    """Connections that ask for a 10 MiB reply (10 × GET of 1 MiB) and, after 256 KiB of
    it, (a) half-close and read the rest (must arrive complete, then EOF), (b) half-close
    and stop reading, then close 0.5 s later, or (c) reset (SO_LINGER 0)."""
    reply = set_big_value(server.port, 1 << 20)
    gets = sz["half_gets"]
    want = gets * reply
    end = time.monotonic() + sz["half_secs"]
    stats, errors, lock = collections.Counter(), collections.Counter(), threading.Lock()

    def one(mode):
        s = connect(server.port, rst=(mode == "rst"))
        try:
            s.sendall(kv_cmd("GET", "big") * gets)
            got = 0
            while got < 256 << 10:
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("EOF after %d bytes" % got)
                got += len(chunk)
            if mode == "half-close, read all":
                s.shutdown(socket.SHUT_WR)
                while True:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        break
                    got += len(chunk)
                return "complete" if got == want else "short (%d of %d)" % (got, want)
            if mode == "half-close, stop reading":
                s.shutdown(socket.SHUT_WR)
                time.sleep(0.5)
            return "done"
        finally:
            s.close()

    def worker(i):
        modes = ["half-close, read all", "half-close, stop reading", "rst"]
        k = i
        while time.monotonic() < end:
            mode = modes[k % 3]
            k += 1
            try:
                r = one(mode)
                with lock:
                    stats[(mode, r)] += 1
            except (OSError, ConnectionError) as e:
                with lock:
                    errors["%s: %s" % (mode, err_name(e) if isinstance(e, OSError) else e)] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(sz["half_threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = not any(r.startswith("short") for (_, r) in stats) and not errors
    details = "; ".join("%s → %s: %d" % (m, r, c) for (m, r), c in sorted(stats.items()))
    return {"ok": ok, "details": details, "errors": dict(errors)}


def attack_out_of_fds(server, sz):
    """The server runs with a low RLIMIT_NOFILE; N clients connect and send PING; after a
    few seconds they all close. The server must stay up, log at most about a line per
    second, and serve new connections again after the clients close."""
    n = sz["nofds_conns"]
    lines_before = len(server.stderr_lines())
    socks, errors = [], collections.Counter()
    for _ in range(n):
        try:
            s = connect(server.port, timeout=2)
            s.sendall(KV_PING if server.target.proto == "kv" else MSG_FRAME)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            errors["connect " + err_name(e)] += 1
    t0 = time.monotonic()
    answered = set()
    while time.monotonic() - t0 < sz["nofds_secs"]:
        for i, s in enumerate(socks):
            if i in answered:
                continue
            try:
                if s.recv(64):
                    answered.add(i)
            except BlockingIOError:
                pass
            except OSError:
                pass
        time.sleep(0.05)
    held = time.monotonic() - t0
    for s in socks:
        s.close()
    log_lines = len(server.stderr_lines()) - lines_before
    # Recovery: a fresh connection answered, tried every 50 ms for up to 10 s.
    t1 = time.monotonic()
    recovered = None
    while time.monotonic() - t1 < 10 and server.alive():
        if fresh_request(server.port, server.target.proto, timeout=1.0):
            recovered = time.monotonic() - t1
            break
        time.sleep(0.05)
    sample = server.stderr_lines()[lines_before:lines_before + 1]
    details = ("RLIMIT_NOFILE %d; %d clients connected, %d answered during the %.0f s hold; "
               "%d stderr lines in %.0f s%s; %s") % (
        sz["nofds_limit"], len(socks), len(answered), held, log_lines, held,
        (" (e.g. \"%s\")" % sample[0][:100]) if sample else "",
        "a new connection answered %.2f s after the clients closed" % recovered if recovered is not None
        else "NOT serving new connections 10 s after the clients closed")
    ok = recovered is not None and log_lines <= held + 3
    return {"ok": ok, "details": details, "errors": dict(errors)}


@dataclass
class Attack:
    name: str
    func: object
    probe: str = "persistent"  # the normal client's mode
    kinds: tuple = ("kv",)  # the servers it runs against
    server_nofile: str = None  # a SIZES key: run the server with this RLIMIT_NOFILE
    doc: str = field(default="")


ATTACKS = [
    Attack("garbage", attack_garbage),
    Attack("huge", attack_huge),
    Attack("slowloris", attack_slowloris),
    Attack("flood", attack_flood, probe="fresh", kinds=("kv", "msgbench")),
    Attack("flood-rst", attack_flood_rst, probe="fresh", kinds=("kv", "msgbench")),
    Attack("slow-readers", attack_slow_readers),
    Attack("half-close", attack_half_close),
    Attack("out-of-fds", attack_out_of_fds, server_nofile="nofds_limit"),
]


# ---------------------------------------------------------------------------------------
# Running and reporting.


def run_one(attack, target, binaries, sz):
    nofile = sz[attack.server_nofile] if attack.server_nofile else None
    server = Server(target, binaries, nofile=nofile)
    row = {"attack": attack.name, "server": target.name}
    try:
        time.sleep(0.2)
        rss0, fds0 = server.rss_kb(), server.fds()
        server.rss_start = rss0
        backlog = listen_backlog(server.port)
        probe = Probe(server.port, target.proto, attack.probe)
        time.sleep(0.3)  # let the normal client start
        drops0 = listen_counters()
        sampler = Sampler(server)
        try:
            result = attack.func(server, sz)
        except Exception as e:  # the attack itself broke (e.g. could not connect at all)
            result = {"ok": False, "details": "attack aborted: %r" % e, "errors": {}}
        sampler.stop()
        lat = probe.stop()
        drops1 = listen_counters()
        fds1, settle = server.settle_fds(fds0)
        rss1 = server.rss_kb()
        alive = server.alive()
        answers = alive and fresh_request(server.port, target.proto)
        stderr = server.stderr_lines()
    finally:
        stdout = server.stop()
    problems = []
    if not alive:
        problems.append("server exited (status %s)" % server.proc.returncode)
    elif not answers:
        problems.append("no answer afterwards")
    if alive and fds1 is not None and fds1 > fds0:
        problems.append("fds %d > %d after %.0f s" % (fds1, fds0, settle))
    if not result["ok"]:
        problems.append("expectation not met")
    notes = []
    if attack.probe == "fresh" or (drops0 and drops1 and drops1 != drops0):
        if drops0 and drops1:
            notes.append("listen queue overflows %d, drops %d (system-wide)" % (
                drops1[0] - drops0[0], drops1[1] - drops0[1]))
        if backlog is not None:
            notes.append("listen backlog %d" % backlog)
    for line in stdout.splitlines():
        if "largest reply queue" in line:
            notes.append("largest reply queue %s bytes" % line.rsplit("largest reply queue", 1)[1].split()[0])
    if stderr:
        notes.append("server stderr: %d lines" % len(stderr) if alive else
                     "server stderr ends: " + " / ".join(stderr[-2:]))
    row.update({
        "outcome": "OK" if not problems else "**FAIL**: " + "; ".join(problems),
        "rss": (rss0, sampler.peak_rss, rss1),
        "fds": (fds0, sampler.peak_fds, fds1),
        "lat": lat,
        "details": "; ".join([result["details"]] + notes),
        "errors": result["errors"],
    })
    return row


def fmt_mb(kb):
    return "–" if not kb else "%.1f" % (kb / 1024)


def fmt_ms(s):
    return "–" if s is None else ("%.1f" % (s * 1e3) if s < 0.1 else "%.0f" % (s * 1e3))


def print_table(rows, out=sys.stdout):
    print("| attack | server | outcome | RSS MB before → peak → after | fds before → peak → after "
          "| normal request p50 / p99 / max ms (n; > 50 ms) | normal request failures | attack, errors |", file=out)
    print("|---|---|---|---|---|---|---|---|", file=out)
    for r in rows:
        if "outcome" not in r:
            print("| %s | %s | **could not run**: %s | | | | | |" % (r["attack"], r["server"], r["error"]), file=out)
            continue
        lat = r["lat"]
        errs = ", ".join("%s %d" % kv for kv in sorted(lat["errors"].items())) or "0"
        attack_errs = ", ".join("%s %d" % kv for kv in sorted(r["errors"].items()))
        extra = "; ".join(x for x in (r["details"], ("attack errors: " + attack_errs) if attack_errs else "")
                          if x)
        print("| %s | %s | %s | %s → %s → %s | %s → %s → %s | %s / %s / %s (%d; %d%s) | %s | %s |" % (
            r["attack"] + (" #%d" % r["round"] if r.get("round") else ""), r["server"], r["outcome"],
            *map(fmt_mb, r["rss"]), *("–" if v is None else v for v in r["fds"]),
            fmt_ms(lat["p50"]), fmt_ms(lat["p99"]), fmt_ms(lat["max"]), lat["n"], lat["slow"],
            "; new connection each" if lat["mode"] == "fresh" else "",
            errs, extra.replace("|", "\\|")), file=out)
    out.flush()


def main():
    names = [a.name for a in ATTACKS]
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="attacks:\n" + "\n".join("  %-13s %s" % (a.name, " ".join(a.func.__doc__.split()))
                                        for a in ATTACKS))
    p.add_argument("--quick", action="store_true", help="small sizes and short durations (CI)")
    p.add_argument("--only", metavar="NAME[,NAME]", help="run only these attacks (%s)" % ", ".join(names))
    p.add_argument("--runtime", default="iocore,tokio,smol",
                   help="server runtimes, comma-separated (default iocore,tokio,smol; smol: msgbench only)")
    p.add_argument("--server", default="kv,msgbench",
                   help="servers, comma-separated: kv (every attack), msgbench (the floods)")
    p.add_argument("--no-build", action="store_true",
                   help="do not run cargo; use the binaries under --target-dir (msgbench: --msgbench)")
    p.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")))
    p.add_argument("--msgbench", help="path of the msgbench bench binary (with --no-build)")
    p.add_argument("--flood-rate", type=int, metavar="N",
                   help="pace the floods at N connects/s in all (default: as fast as possible)")
    p.add_argument("--flood-inflight", type=int, metavar="N",
                   help="connects in flight per flood process (default 32)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run everything N times (round by round, servers alternating)")
    p.add_argument("--json", metavar="FILE", help="also write the raw rows as JSON")
    args = p.parse_args()

    only = set(args.only.split(",")) if args.only else set(names)
    unknown = only - set(names)
    if unknown:
        p.error("unknown attack(s) %s; known: %s" % (", ".join(sorted(unknown)), ", ".join(names)))
    runtimes = args.runtime.split(",")
    kinds = args.server.split(",")
    sz = {k: v[1] if args.quick else v[0] for k, v in SIZES.items()}
    if args.flood_rate is not None:
        sz["flood_rate"] = args.flood_rate
    if args.flood_inflight is not None:
        sz["flood_inflight"] = args.flood_inflight
    soft, hard = raise_nofile()

    if args.no_build:
        binaries = {"kv": os.path.join(args.target_dir, "release", "examples", "kv"), "msgbench": args.msgbench}
    else:
        binaries = build(args.target_dir)

    plan = []
    for attack in ATTACKS:
        if attack.name not in only:
            continue
        for kind in ("kv", "msgbench"):
            if kind not in kinds or kind not in attack.kinds:
                continue
            for rt in runtimes:
                if kind == "kv" and rt not in ("iocore", "tokio"):
                    continue
                if kind == "msgbench" and not binaries.get("msgbench"):
                    continue
                plan.append((attack, Target(kind, rt)))

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print("attacks.py %s: %s; %d CPUs; RLIMIT_NOFILE %d/%d; load average %s" % (
        "--quick" if args.quick else "(full)", started, os.cpu_count(), soft, hard,
        " ".join(open("/proc/loadavg").read().split()[:3])), file=sys.stderr)
    rows = []
    for rnd, attack, target in [(r, a, t) for r in range(args.repeat) for a, t in plan]:
        print("[%s] %s ..." % (target.name, attack.name), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            row = run_one(attack, target, binaries, sz)
        except Exception as e:
            row = {"attack": attack.name, "server": target.name, "error": repr(e)}
        if args.repeat > 1:
            row["round"] = rnd + 1
        print("[%s] %s: %s (%.0f s)" % (target.name, attack.name, row.get("outcome", row.get("error")),
                                        time.monotonic() - t0), file=sys.stderr, flush=True)
        rows.append(row)
    rows.sort(key=lambda r: (names.index(r["attack"]), r.get("round", 0)))
    print()
    print("Attacks (%s, %s):" % ("quick" if args.quick else "full", started))
    print()
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)
    return 1 if any(not r.get("outcome", "").startswith("OK") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
