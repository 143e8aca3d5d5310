"""Shared pieces of Tools/soak.py and Tools/crash-restart.py (standard library only).

A gateway under test on loopback, as Tests/GatewayTests/LiveTests.swift (LiveHarness) sets it
up: a configuration in a folder of its own (key store and KEK file beside it), `keys init
--create-kek`, the sessions' inputs on 127.0.0.1 (free even port p, RTCP on p + 1) and their
outputs on a loopback address of their own (127.77.x.y), so that UDP 2269 on that address —
where `run` sends the MIKEY MTK messages (TS 33.246 6.3.3.2.2: the RTP destination IP, port
2269) — belongs to this collector alone.

The collector and the senders are processes of their own (multiprocessing, fork), so neither
the sampling loop nor the other waits on the GIL; they are driven over a pipe and report
counts back on request.
"""

import json
import multiprocessing
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import time
import urllib.request

MIKEY_PORT = 2269
CTX = multiprocessing.get_context("fork")


# ---------------------------------------------------------------------------------------------
# Ports and addresses

def free_udp_pair(ip, rng):
    """A port p (even) such that p and p + 1 are free on ip now (closed again: the gateway binds them)."""
    for _ in range(200):
        p = rng.randrange(20000, 59998) & ~1
        socks = []
        try:
            for q in (p, p + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((ip, q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no free UDP port pair on {ip}")


def free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def private_loopback_ip(rng):
    """127.77.x.y: an output address of this run alone (its UDP 2269 is ours)."""
    return f"127.77.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"


# ---------------------------------------------------------------------------------------------
# Sessions and configuration

class Session:
    """One RTP session of the configuration: where the gateway listens and where it sends."""

    def __init__(self, name, key_group, in_ip, in_port, out_ip, out_port, protection):
        self.name = name
        self.key_group = key_group
        self.rtp_in = (in_ip, in_port)
        self.rtcp_in = (in_ip, in_port + 1)
        self.rtp_out = (out_ip, out_port)
        self.rtcp_out = (out_ip, out_port + 1)
        self.protection = protection

    def yaml(self):
        return (f'  - {{ name: {self.name}, kind: rtp, destination: "{self.rtp_in[0]}:{self.rtp_in[1]}", '
                f'output: "{self.rtp_out[0]}:{self.rtp_out[1]}", keyGroup: {self.key_group}, '
                f'protection: {self.protection} }}')


def configuration_yaml(sessions, mtk_period, announce_lead, repeat, msk_period="1d"):
    """The gateway configuration (same shape as LiveHarness's)."""
    lines = [
        'keyDomain: { mcc: "001", mnc: "01" }',
        "bmscFQDN: bmsc.example.org",
        "keyStore: { path: keys.sqlite, kekFile: kek.hex }",
        "schedule:",
        "  epoch: 2026-01-01T00:00:00Z",
        f"  mtk: {{ period: {mtk_period}s, announceLead: {announce_lead}s, repeat: {repeat}s }}",
        f"  msk: {{ period: {msk_period} }}",
        "sessions:",
    ]
    lines += [s.yaml() for s in sessions]
    return "\n".join(lines) + "\n"


def make_sessions(count, rng, protections):
    in_ip = "127.0.0.1"
    out_ip = private_loopback_ip(rng)
    sessions, taken = [], set()
    for i in range(count):
        while True:
            ip_ = free_udp_pair(in_ip, rng)
            op = free_udp_pair(out_ip, rng)
            if ip_ not in taken and op not in taken:
                taken.update((ip_, op))
                break
        sessions.append(Session(f"s{i}", i + 1, in_ip, ip_, out_ip, op, protections[i % len(protections)]))
    return sessions


# ---------------------------------------------------------------------------------------------
# The gateway process

class Gateway:
    def __init__(self, binary, directory, yaml_text):
        self.binary = os.path.abspath(binary)
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.config = os.path.join(directory, "gateway.yaml")
        with open(self.config, "w") as f:
            f.write(yaml_text)
        self.proc = None
        self.starts = 0

    def run_to_end(self, args, timeout=60):
        r = subprocess.run([self.binary] + args, cwd=self.directory, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def keys_init(self):
        rc, out, err = self.run_to_end(["keys", "init", "--config", self.config, "--create-kek"])
        if rc != 0:
            raise RuntimeError(f"keys init failed ({rc}): {out}{err}")

    def start(self, extra_args, log_name="gateway"):
        """Starts `run`; stdout and stderr appended to LOG_NAME.out / .err in the folder."""
        self.starts += 1
        out = open(os.path.join(self.directory, log_name + ".out"), "ab")
        err = open(os.path.join(self.directory, log_name + ".err"), "ab")
        banner = f"\n=== start {self.starts} at {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode()
        out.write(banner)
        err.write(banner)
        out.flush()
        err.flush()
        # --allow-core-dumps: `run` makes itself non-dumpable by default (it holds the KEK),
        # which hides /proc/PID/fd from a sampler without CAP_SYS_PTRACE.
        self.proc = subprocess.Popen([self.binary, "run", "--config", self.config, "--allow-core-dumps"] + extra_args,
                                     cwd=self.directory, stdout=out, stderr=err)
        out.close()
        err.close()
        return self.proc

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def interrupt_and_wait(self, timeout=30):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "timeout"
        self.proc = None
        return rc

    # /proc samples
    def status(self):
        """VmRSS (kB), VmHWM (kB), Threads from /proc/PID/status."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    values[k] = int(v.split()[0])
        return values

    def fd_count(self, reads=3, spacing=0.05):
        """Open fds held across `reads` looks at /proc/PID/fd `spacing` s apart (the minimum):
        a leaked fd stays, one the gateway holds for a moment (a store read, a metrics
        connection) does not count."""
        counts = []
        for k in range(reads):
            if k:
                time.sleep(spacing)
            counts.append(len(os.listdir(f"/proc/{self.pid}/fd")))
        return min(counts)


def udp_socket_stats(ports):
    """Kernel counters of the UDP sockets bound to these local ports (IPv4 and IPv6): {port:
    (rx_queue bytes, drops)}. `drops` is the socket's sk_drops: datagrams the kernel dropped
    because the socket's receive buffer was full (what overload looks like from outside)."""
    out = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    port = int(parts[1].rsplit(":", 1)[1], 16)
                    if port in ports:
                        rxq = int(parts[4].split(":")[1], 16)
                        drops = int(parts[12])
                        q, d = out.get(port, (0, 0))
                        out[port] = (q + rxq, d + drops)
        except FileNotFoundError:
            pass
    return out


def scrape_metrics(port, timeout=5):
    """/metrics as {series: value} ({'mbms_drops_total{session="s0",kind="rtp",reason="bad_version"}': 12.0, ...})."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, v = line.rpartition(" ")
        try:
            values[series] = float(v)
        except ValueError:
            pass
    return values


def metric_sum(metrics, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    total = 0.0
    for series, v in metrics.items():
        if series == name or series.startswith(name + "{"):
            if all(f'{k}="{val}"' in series for k, val in labels.items()):
                total += v
    return total


def drops_by_reason(metrics):
    """mbms_drops_total summed per reason (over sessions and kinds)."""
    out = {}
    for series, v in metrics.items():
        if series.startswith("mbms_drops_total{"):
            reason = series.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0) + int(v)
    return out


# ---------------------------------------------------------------------------------------------
# Collector: every datagram to the output addresses (SRTP, SRTCP, MIKEY on 2269)

PCAP_LINKTYPE_RAW = 101   # raw IPv4/IPv6, no link-layer header (what CaptureReader calls .raw)


def _ipv4_checksum(header):
    s = sum(struct.unpack("!10H", header))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def pcap_record(t_ns, src, dst, payload):
    """One pcap record (microsecond timestamps) of an IPv4/UDP datagram, no UDP checksum."""
    udp_len = 8 + len(payload)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                               socket.inet_aton(src[0]), socket.inet_aton(dst[0])))
    struct.pack_into("!H", ip, 10, _ipv4_checksum(bytes(ip)))
    frame = bytes(ip) + struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    sec, usec = divmod(t_ns // 1000, 1_000_000)
    return struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame


PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, PCAP_LINKTYPE_RAW)


class Collector:
    """Binds `addresses` in the parent (so they are ours before the gateway starts), then
    receives in a child process. Counts per destination port and, for SRTP/SRTCP ports, per
    SSRC; distinct MKIs per port (MKI at `mki_from_end` octets before the end, when given);
    with `pcap`, every datagram is written to that capture (raw IPv4 link type)."""

    def __init__(self, addresses, pcap=None, mki_from_end=None, rtcp_ports=(), rcvbuf=4 << 20):
        self.addresses = addresses
        self.pcap = pcap
        self.mki_from_end = mki_from_end or {}
        self.rtcp_ports = set(rtcp_ports)
        self.sockets = []
        for a in addresses:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.bind(a)
            s.setblocking(False)
            self.sockets.append(s)
        self.conn, child = CTX.Pipe()
        self.process = CTX.Process(target=self._run, args=(child,), daemon=True)

    def start(self):
        self.process.start()

    def request(self, what):
        self.conn.send(what)
        return self.conn.recv()

    def stats(self):
        return self.request("stats")

    def stop(self):
        if not self.process.is_alive():
            return None
        result = self.request("stop")
        self.process.join(10)
        return result

    def _run(self, conn):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sel = selectors.DefaultSelector()
        for s in self.sockets:
            sel.register(s, selectors.EVENT_READ, s.getsockname())
        sel.register(conn, selectors.EVENT_READ, None)
        per_port = {}
        per_ssrc = {}
        mkis = {}
        writer = open(self.pcap, "wb", buffering=1 << 20) if self.pcap else None
        if writer:
            writer.write(PCAP_HEADER)
        mki_from_end = self.mki_from_end
        rtcp_ports = self.rtcp_ports
        try:
            while True:
                for key, _ in sel.select(1.0):
                    if key.data is None:
                        msg = conn.recv()
                        if msg in ("stats", "stop"):
                            if writer:
                                writer.flush()
                            conn.send({"per_port": dict(per_port), "per_ssrc": dict(per_ssrc),
                                       "mkis": {p: len(v) for p, v in mkis.items()}})
                            if msg == "stop":
                                return
                        continue
                    s, dst = key.fileobj, key.data
                    port = dst[1]
                    ssrc_at = 4 if port in rtcp_ports else 8
                    mki_end = mki_from_end.get(port)
                    for _ in range(256):
                        try:
                            data, src = s.recvfrom(65536)
                        except BlockingIOError:
                            break
                        per_port[port] = per_port.get(port, 0) + 1
                        if len(data) >= ssrc_at + 4 and port != MIKEY_PORT:
                            k = (port, int.from_bytes(data[ssrc_at:ssrc_at + 4], "big"))
                            per_ssrc[k] = per_ssrc.get(k, 0) + 1
                            if mki_end and len(data) >= mki_end:
                                mkis.setdefault(port, set()).add(data[-mki_end:-mki_end + 6])
                        if writer:
                            writer.write(pcap_record(time.time_ns(), src, dst, data))
        finally:
            if writer:
                writer.close()


# ---------------------------------------------------------------------------------------------
# Senders

def rtp_packet(seq, ts, ssrc, payload):
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtcp_sender_report(ssrc, ntp, rtp_ts, packets, octets):
    # RFC 3550 6.4.1, no report blocks: 28 octets, length 6.
    return struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, ntp, rtp_ts & 0xFFFFFFFF, packets, octets)


def garbage(rng, ssrc_pool=None):
    """One hostile datagram and whether it goes to the RTCP port: random bytes, truncated
    headers, wrong versions, CSRC / extension / padding overruns, oversized. With
    `ssrc_pool`, the SSRC field (octets 8..11 of RTP, 4..7 of RTCP) is drawn from that pool
    instead of left random (the gateway keeps state per SSRC: a random SSRC per datagram
    makes new state every time, which is what issue 19 finding 11 is about)."""
    kind = rng.randrange(8)
    rtcp = rng.random() < 0.25
    if kind == 0:
        p = bytearray(rng.randbytes(rng.randrange(1, 1400)))
    elif kind == 1:
        p = bytearray(rng.randbytes(rng.randrange(1, 12)))           # shorter than an RTP header
    elif kind == 2:
        p = bytearray(rng.randbytes(rng.randrange(12, 400)))
        p[0] = (p[0] & 0x3F) | (rng.choice((0, 1, 3)) << 6)          # version 0, 1 or 3
    elif kind == 3:
        p = bytearray(rng.randbytes(rng.randrange(12, 40)))
        p[0] = 0x8F                                                  # CC = 15, no room for the CSRCs
    elif kind == 4:
        p = bytearray(rng.randbytes(rng.randrange(16, 60)))
        p[0] = 0x90                                                  # X = 1, extension length beyond the end
        p[14:16] = b"\xff\xff"
    elif kind == 5:
        p = bytearray(rng.randbytes(rng.randrange(13, 200)))
        p[0] = 0xA0                                                  # P = 1, pad count beyond the payload
        p[-1] = 0xFF
    elif kind == 6:
        p = bytearray(rng.randbytes(rng.randrange(2000, 9000)))      # oversized
        p[0] = 0x80
    else:
        p = bytearray(rng.randbytes(rng.randrange(0, 4)))            # empty or nearly
    at = 4 if rtcp else 8
    if ssrc_pool and len(p) >= at + 4:
        p[at:at + 4] = rng.choice(ssrc_pool).to_bytes(4, "big")
    return bytes(p), rtcp


class SteadySender:
    """RTP at `rate` packets/s per session (payloads `payload_sizes` octets, cycled), one RTCP
    sender report per session per second, and `garbage_rate` hostile datagrams/s spread over
    the sessions' RTP and RTCP ports. With `seq_regressions` (events/s per session), a session
    restarts its SEQ from its first value at random times, like a restarted encoder (the gateway
    must not reuse an index for the repeated SEQs). Counts what it sent per session."""

    def __init__(self, sessions, rate, garbage_rate, seed, payload_sizes=(160, 320, 640, 1000, 1200),
                 seq_regressions=0.0, garbage_ssrc_pool=None):
        self.sessions = sessions
        self.rate = rate
        self.garbage_rate = garbage_rate
        self.seed = seed
        self.payload_sizes = payload_sizes
        self.seq_regressions = seq_regressions
        self.garbage_ssrc_pool = garbage_ssrc_pool
        rng = random.Random(seed)
        self.ssrcs = [rng.getrandbits(32) | 0x1000 for _ in sessions]
        self.first_seq = [rng.randrange(65536) for _ in sessions]
        n = len(sessions)
        self.rtp_sent = CTX.Array("q", n, lock=False)
        self.rtcp_sent = CTX.Array("q", n, lock=False)
        self.garbage_sent = CTX.Value("q", 0, lock=False)
        self.regressions = CTX.Value("q", 0, lock=False)
        self.stop_event = CTX.Event()
        self.process = CTX.Process(target=self._run, daemon=True)

    def start(self):
        self.process.start()

    def stop(self):
        self.stop_event.set()
        self.process.join(10)

    def counts(self):
        return list(self.rtp_sent), list(self.rtcp_sent), self.garbage_sent.value

    def _run(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        rng = random.Random(self.seed + 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        n = len(self.sessions)
        payloads = [rng.randbytes(size) for size in self.payload_sizes]
        seq = list(self.first_seq)
        rtp_ts = [rng.getrandbits(32) for _ in range(n)]
        octets = [0] * n
        scheduled = [0] * n
        start = time.monotonic()
        last_regression_check = start
        garbage_sent = 0
        k = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            elapsed = now - start
            due = int(elapsed * self.rate)
            for i, sess in enumerate(self.sessions):
                # At most one second's worth at once after a stall (the CPUs are shared): the
                # rest of the schedule is skipped, not sent late (and not counted as sent).
                if due - scheduled[i] > self.rate:
                    scheduled[i] = due - self.rate
                for _ in range(max(0, due - scheduled[i])):
                    scheduled[i] += 1
                    p = payloads[k % len(payloads)]
                    k += 1
                    try:
                        s.sendto(rtp_packet(seq[i], rtp_ts[i], self.ssrcs[i], p), sess.rtp_in)
                    except OSError:
                        pass
                    seq[i] = (seq[i] + 1) & 0xFFFF
                    rtp_ts[i] += 3000
                    octets[i] += len(p)
                    self.rtp_sent[i] += 1
                if int(elapsed) + 1 > self.rtcp_sent[i]:
                    ntp = int((time.time() + 2208988800) * (1 << 32))
                    try:
                        s.sendto(rtcp_sender_report(self.ssrcs[i], ntp, rtp_ts[i], self.rtp_sent[i], octets[i] & 0xFFFFFFFF),
                                 sess.rtcp_in)
                    except OSError:
                        pass
                    self.rtcp_sent[i] += 1
            gdue = int(elapsed * self.garbage_rate)
            while garbage_sent < gdue:
                payload, rtcp = garbage(rng, self.garbage_ssrc_pool)
                sess = self.sessions[rng.randrange(n)]
                try:
                    s.sendto(payload, sess.rtcp_in if rtcp else sess.rtp_in)
                except OSError:
                    pass
                garbage_sent += 1
                self.garbage_sent.value = garbage_sent
            if self.seq_regressions and now - last_regression_check >= 1.0:
                last_regression_check = now
                for i in range(n):
                    if rng.random() < self.seq_regressions:
                        seq[i] = self.first_seq[i]
                        rtp_ts[i] = rng.getrandbits(32)
                        self.regressions.value += 1
            time.sleep(0.004)
        s.close()


class Blaster:
    """RTP to one address as fast as one process can send (valid headers, SEQ counting, its
    own SSRC), for the overload case. Counts what it sent."""

    def __init__(self, address, ssrc, payload_size=1000):
        self.address = address
        self.ssrc = ssrc
        self.payload_size = payload_size
        self.sent = CTX.Value("q", 0, lock=False)
        self.stop_event = CTX.Event()
        self.process = CTX.Process(target=self._run, daemon=True)

    def start(self):
        self.process.start()

    def stop(self):
        self.stop_event.set()
        self.process.join(10)

    def _run(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(self.address)
        try:
            self._run_sendmmsg(s)
        except (OSError, AttributeError):
            self._run_send(s)
        s.close()

    def _run_sendmmsg(self, s):
        """64 datagrams per sendmmsg(2) through ctypes (Linux x86-64/arm64 struct layouts):
        several times what one send() per datagram gets out of one Python process."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        sendmmsg = libc.sendmmsg

        class IOVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        class MsgHdr(ctypes.Structure):
            _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IOVec)),
                        ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                        ("flags", ctypes.c_int)]

        class MMsgHdr(ctypes.Structure):
            _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]

        batch = 64
        size = 12 + self.payload_size
        template = rtp_packet(0, 0, self.ssrc, bytes(self.payload_size))
        bufs = [ctypes.create_string_buffer(template, size) for _ in range(batch)]
        iovs = (IOVec * batch)()
        msgs = (MMsgHdr * batch)()
        for k in range(batch):
            iovs[k].base = ctypes.addressof(bufs[k])
            iovs[k].len = size
            msgs[k].hdr.iov = ctypes.pointer(iovs[k])
            msgs[k].hdr.iovlen = 1
        fd = s.fileno()
        pack = struct.pack_into
        seq, n = 0, 0
        stop = self.stop_event.is_set
        while not stop():
            for _ in range(16):
                for k in range(batch):
                    pack("!HI", bufs[k], 2, (seq + k) & 0xFFFF, (seq + k) * 3000 & 0xFFFFFFFF)
                r = sendmmsg(fd, msgs, batch, 0)
                if r < 0:
                    err = ctypes.get_errno()
                    if err == 38:   # ENOSYS
                        raise OSError(err, "sendmmsg")
                    continue
                seq = (seq + r) & 0xFFFF
                n += r
            self.sent.value = n

    def _run_send(self, s):
        buf = bytearray(rtp_packet(0, 0, self.ssrc, bytes(self.payload_size)))
        pack = struct.pack_into
        send = s.send
        seq, n = 0, 0
        stop = self.stop_event.is_set
        while True:
            for _ in range(1000):
                pack("!HI", buf, 2, seq, seq * 3000 & 0xFFFFFFFF)
                try:
                    send(buf)
                except OSError:
                    pass
                seq = (seq + 1) & 0xFFFF
            n += 1000
            self.sent.value = n
            if stop():
                break


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
