#!/usr/bin/env python3
"""Worst PING latency a client sees while another client runs EDGE.MODEL.IMPORT of a blob,
side by side in the same run: the import as a plain command (decoded off the event loop,
merged between two commands) and inside MULTI (where a client cannot block, so it runs in
place: what every import did before). Each run starts a fresh redis-server on a free
loopback port with the module loaded, FLUSHALLs, pings in a loop from one connection and
imports from another; it prints the reply, the import's total time, the worst PING and
INFO edge's import_apply_max_us / import_decode_max_us.

    cargo build --release -p edge-module
    cargo build --release -p edge-model --example import_cost
    target/release/examples/import_cost 50000 128 100000 --out /tmp/blob.bin
    python3 scripts/import_latency.py target/release/libedgecache.so /tmp/blob.bin [runs]
"""
import os, re, shutil, socket, subprocess, sys, tempfile, threading, time

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str): a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

class Conn:
    def __init__(s, port):
        s.s = socket.create_connection(("127.0.0.1", port)); s.buf = b""
    def read_line(s):
        while b"\r\n" not in s.buf:
            s.buf += s.s.recv(1 << 16)
        l, s.buf = s.buf.split(b"\r\n", 1); return l
    def read(s):
        l = s.read_line(); t = l[:1]
        if t in b"+-:": return l
        if t == b"$":
            n = int(l[1:])
            if n < 0: return None
            while len(s.buf) < n + 2: s.buf += s.s.recv(1 << 16)
            v, s.buf = s.buf[:n], s.buf[n+2:]; return v
        if t == b"*":
            return [s.read() for _ in range(int(l[1:]))]
    def cmd(s, *a):
        s.s.sendall(resp(*a)); return s.read()

def measure(port, blob, mode):
    imp, pinger = Conn(port), Conn(port)
    imp.cmd("FLUSHALL")
    payload = resp("EDGE.MODEL.IMPORT", blob)
    if mode == "multi":
        payload = resp("MULTI") + payload + resp("EXEC")
    worst, done, pings = 0.0, [False], [0]
    def pinging():
        nonlocal worst
        while not done[0]:
            t = time.perf_counter(); pinger.cmd("PING"); d = time.perf_counter() - t
            worst = max(worst, d); pings[0] += 1
    th = threading.Thread(target=pinging); th.start()
    time.sleep(0.2)
    t = time.perf_counter()
    imp.s.sendall(payload)
    if mode == "multi":
        imp.read(); imp.read(); r = imp.read()
    else:
        r = imp.read()
    total = time.perf_counter() - t
    done[0] = True; th.join()
    info = imp.cmd("INFO", "edge").decode()
    f = dict(re.findall(r"edge_(import_\w+):(\d+)", info))
    print(f"{mode}: reply {r!r} total {total*1e3:.0f} ms, worst PING {worst*1e3:.1f} ms over {pings[0]} pings, apply_max {int(f['import_apply_max_us'])/1e3:.0f} ms, decode_max {int(f['import_decode_max_us'])/1e3:.0f} ms")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    module, blob_path = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    blob = open(blob_path, "rb").read()
    for _ in range(runs):
        for mode in ("plain", "multi"):
            port, d = free_port(), tempfile.mkdtemp(prefix="import-latency.")
            srv = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                 "--save", "", "--appendonly", "no", "--proto-max-bulk-len", "104857600",
                 "--client-query-buffer-limit", "104857600",
                 "--loadmodule", os.path.abspath(module)],
                stdout=subprocess.DEVNULL)
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port)).close()
                        break
                    except OSError:
                        time.sleep(0.05)
                measure(port, blob, mode)
            finally:
                srv.terminate()
                srv.wait()
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
