#!/usr/bin/env python3
"""Soak and overload of `mbms-gateway run` on loopback (issue 19 finding 14; standard library only).

  Tools/soak.py --binary .build-bench/release/mbms-gateway --duration 3600 --out DIR

What it drives: a configuration of --sessions RTP sessions (inputs on 127.0.0.1, outputs on a
127.77.x.y address of this run, mixed ciphers and RFC 4771 modes, MTK period --mtk-period
seconds so MTKs switch every few seconds), `keys init`, then `run --metrics`. One sender
process sends steady RTP at --rate packets/s per session (payloads 160–1200 octets), an RTCP
sender report per session per second, and --garbage-rate hostile datagrams/s (random bytes,
truncated headers, wrong versions, CSRC/extension/padding overruns, oversized) spread over the
sessions' RTP and RTCP ports. A collector process receives everything that comes out (SRTP,
SRTCP, MIKEY on 2269) and counts it per port and SSRC.

Samples, every --interval seconds: the gateway's VmRSS and VmHWM (/proc/PID/status), its open
file descriptors (entries of /proc/PID/fd: the fewest of 3 looks 50 ms apart, taken before the
metrics scrape, so an fd held for a moment is not counted and a leaked one is), threads, /metrics (packets in/out, drops by reason,
MTK switches), what the sender sent and what the collector received. Each sample is printed as
it is taken and appended to samples.csv; samples.json and verdict.txt are written at the end.

Leak rule (the soak phase, after --warmup seconds): with A = the median VmRSS of the first 3
samples after warm-up and B = the median of the last 3, B <= A * (1 + --rss-tolerance) (default
5 %); the open-fd count is exactly the same in every sample after warm-up. At least 6 samples
after warm-up are required (else the run is too short to judge, which fails). The sample at
warm-up is the first one taken at or after --warmup seconds from the start of the traffic.

Other checks of the soak phase: the gateway is still running; the steady RTP of every session
came out (collector count of the session's SSRC on its output port >= (1 - --max-loss) of what
was sent); MTK switches happened (mbms_mtk_switches_total >= 80 % of sessions * soak seconds /
MTK period) and every session's output carried more than one MKI; garbage was dropped with
named reasons (mbms_drops_total{reason}).

Overload (after the soak phase, unless --overload 0): --blasters processes send valid RTP to
session s0's input as fast as they can for --overload seconds, on top of the steady traffic.
The datagrams the gateway could not take are counted by the kernel on its input socket
(/proc/net/udp `drops`, i.e. sk_drops: receive buffer full) and reported as reason
`socket_rcvbuf_full`, next to the gateway's own mbms_drops_total reasons. Required: some drops
(or the gateway was not overloaded, which fails: raise --blasters). Recovery: the load falls
back to the steady rate; after --settle seconds, for --recovery seconds, every session's steady
RTP comes out again (>= 1 - --max-loss of what was sent in that window) and the input sockets
drop nothing more.

At the end: SIGINT, the gateway must exit 0 and print its summary. Exit status 0 = PASS.
"""

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_harness as lh  # noqa: E402

PROTECTIONS = [
    "{ cipher: aes-128-cm, auth: rccm2, rocRate: 1 }",
    "{ cipher: aes-256-cm, auth: rccm2, rocRate: 1 }",
    "{ cipher: aes-128-cm, auth: rccm1, rocRate: 1, srtcpEncryption: off }",
    "{ cipher: aes-192-cm, auth: rccm2, rocRate: 1 }",
]
# With rocRate 1 and RCCm1/2 every SRTP packet ends MKI(6) || ROC(4) || MAC(10).
MKI_FROM_END = 20

CSV_FIELDS = ["t_s", "phase", "rss_kb", "hwm_kb", "fds", "threads", "rtp_sent", "garbage_sent", "pkts_in", "pkts_out",
              "srtp_received", "mikey_received", "mtk_switches", "drops", "kernel_drops"]


def log(msg):
    print(msg, flush=True)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build-bench/release/mbms-gateway")
    ap.add_argument("--duration", type=float, default=300, help="soak phase, seconds of steady traffic (default 300)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before the leak window (default: 60, or 20%% of --duration when shorter)")
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--rate", type=int, default=300, help="steady RTP packets/s per session")
    ap.add_argument("--garbage-rate", type=int, default=40, help="hostile datagrams/s in all")
    ap.add_argument("--garbage-ssrc-pool", type=int, default=0,
                    help="draw the garbage's SSRC field from this many fixed values (0: leave it random, the default)")
    ap.add_argument("--mtk-period", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    ap.add_argument("--max-loss", type=float, default=0.01, help="largest fraction of steady RTP allowed missing")
    ap.add_argument("--overload", type=float, default=10, help="seconds of overload after the soak (0: none)")
    ap.add_argument("--blasters", type=int, default=2)
    ap.add_argument("--settle", type=float, default=3)
    ap.add_argument("--recovery", type=float, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--commit", default=None, help="the commit the binary was built from, for the record (default: git HEAD)")
    ap.add_argument("--out", default=None, help="folder for samples, logs and the verdict (default .build-bench/soak/<time>)")
    a = ap.parse_args()

    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    warmup = a.warmup if a.warmup is not None else min(60.0, 0.2 * a.duration)
    out = os.path.abspath(a.out or os.path.join(".build-bench", "soak", time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"soak: {binary} is not an executable; build it (swift build -c release --product mbms-gateway) or pass --binary")
    commit = a.commit or (subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() + " (HEAD of the working tree)")
    log(f"soak: seed {seed} (--seed {seed} repeats it); binary {binary}; commit {commit or '?'}; output {out}")
    log(f"soak: {a.sessions} sessions x {a.rate} RTP/s + {a.garbage_rate} garbage/s, MTK period {a.mtk_period}s, "
        f"soak {a.duration:.0f}s (warm-up {warmup:.0f}s), samples every {a.interval:.0f}s, overload {a.overload:.0f}s")

    sessions = lh.make_sessions(a.sessions, rng, PROTECTIONS)
    gw = lh.Gateway(binary, os.path.join(out, "gateway"),
                    lh.configuration_yaml(sessions, a.mtk_period, max(1, a.mtk_period // 4), 1))
    gw.keys_init()
    out_ip = sessions[0].rtp_out[0]
    addresses = [s.rtp_out for s in sessions] + [s.rtcp_out for s in sessions] + [(out_ip, lh.MIKEY_PORT)]
    collector = lh.Collector(addresses, mki_from_end={s.rtp_out[1]: MKI_FROM_END for s in sessions},
                             rtcp_ports=[s.rtcp_out[1] for s in sessions])
    collector.start()
    metrics_port = lh.free_tcp_port()
    total = a.duration + a.overload + a.settle + a.recovery + 120
    gw.start(["--metrics", f"127.0.0.1:{metrics_port}", "--log-level", "info", "--workers", str(a.workers),
              "--duration", str(int(total)), "--summary-json", os.path.join(out, "summary.json")])
    deadline = time.monotonic() + 30
    while collector.stats()["per_port"].get(lh.MIKEY_PORT, 0) == 0:
        if not gw.running():
            sys.exit(f"soak: the gateway exited ({gw.proc.returncode}) before its first MIKEY message; see {gw.directory}/gateway.err")
        if time.monotonic() > deadline:
            sys.exit("soak: no MIKEY message from the gateway within 30 s")
        time.sleep(0.1)

    pool = [rng.getrandbits(32) for _ in range(a.garbage_ssrc_pool)] or None
    sender = lh.SteadySender(sessions, a.rate, a.garbage_rate, seed, garbage_ssrc_pool=pool)
    input_ports = {p for s in sessions for p in (s.rtp_in[1], s.rtcp_in[1])}
    samples = []
    csv_file = open(os.path.join(out, "samples.csv"), "w", newline="")
    writer = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS)
    writer.writeheader()
    t0 = time.monotonic()

    def sample(phase):
        # /proc first: the metrics scrape's own connection must not be counted as an open fd.
        st = gw.status()
        fds = gw.fd_count()
        m = lh.scrape_metrics(metrics_port)
        c = collector.stats()
        rtp, _, garbage = sender.counts()
        kernel = lh.udp_socket_stats(input_ports)
        s = {
            "t_s": round(time.monotonic() - t0, 1), "phase": phase,
            "rss_kb": st["VmRSS"], "hwm_kb": st["VmHWM"], "fds": fds, "threads": st["Threads"],
            "rtp_sent": sum(rtp), "rtp_sent_per_session": rtp, "garbage_sent": garbage,
            "pkts_in": int(lh.metric_sum(m, "mbms_packets_in_total")), "pkts_out": int(lh.metric_sum(m, "mbms_packets_out_total")),
            "srtp_received": sum(c["per_ssrc"].get((ss.rtp_out[1], sender.ssrcs[i]), 0) for i, ss in enumerate(sessions)),
            "srtp_received_per_session": [c["per_ssrc"].get((ss.rtp_out[1], sender.ssrcs[i]), 0) for i, ss in enumerate(sessions)],
            "mikey_received": c["per_port"].get(lh.MIKEY_PORT, 0),
            "mkis_per_session": [c["mkis"].get(ss.rtp_out[1], 0) for ss in sessions],
            "mtk_switches": int(lh.metric_sum(m, "mbms_mtk_switches_total")),
            "drops_by_reason": lh.drops_by_reason(m),
            "kernel_drops_per_port": {p: v[1] for p, v in kernel.items()},
        }
        s["drops"] = sum(s["drops_by_reason"].values())
        s["kernel_drops"] = sum(s["kernel_drops_per_port"].values())
        samples.append(s)
        writer.writerow({k: s[k] for k in CSV_FIELDS})
        csv_file.flush()
        lh.write_json(os.path.join(out, "samples.json"), {"seed": seed, "commit": commit, "samples": samples})
        log(f"[{s['t_s']:7.1f}s {phase:8}] rss {s['rss_kb']} kB (hwm {s['hwm_kb']}) fds {s['fds']} threads {s['threads']} | "
            f"sent {s['rtp_sent']} rtp + {garbage} garbage, in {s['pkts_in']} out {s['pkts_out']}, srtp rcvd {s['srtp_received']}, "
            f"mikey {s['mikey_received']}, mtk switches {s['mtk_switches']}, drops {s['drops_by_reason']}, kernel drops {s['kernel_drops']}")
        return s

    failures, notes = [], []
    result = {"seed": seed, "commit": commit, "binary": binary, "out": out, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        sender.start()
        # ---- soak phase
        k = 0
        while True:
            k += 1
            target = t0 + k * a.interval
            if target > t0 + a.duration + 0.5:
                break
            while time.monotonic() < target:
                if not gw.running():
                    break
                time.sleep(min(0.5, max(0.0, target - time.monotonic())))
            if not gw.running():
                failures.append(f"the gateway exited during the soak (status {gw.proc.returncode}); see {gw.directory}/gateway.err")
                break
            sample("warmup" if time.monotonic() - t0 < warmup else "soak")
        soak = [s for s in samples if s["phase"] == "soak"]
        soak_end = samples[-1] if samples else None

        # ---- leak rule
        if len(soak) < 6:
            failures.append(f"only {len(soak)} samples after the {warmup:.0f}s warm-up: at least 6 are needed (raise --duration)")
        else:
            a_rss = median([s["rss_kb"] for s in soak[:3]])
            b_rss = median([s["rss_kb"] for s in soak[-3:]])
            limit = a_rss * (1 + a.rss_tolerance)
            growth = (b_rss - a_rss) / a_rss
            rss_line = (f"RSS after warm-up: median of first 3 = {a_rss:.0f} kB, of last 3 = {b_rss:.0f} kB "
                        f"({growth * 100:+.2f} %, tolerance {a.rss_tolerance * 100:.1f} %)")
            (failures if b_rss > limit else notes).append(rss_line + (" — grows" if b_rss > limit else " — flat"))
            fds = sorted({s["fds"] for s in soak})
            fd_line = f"open fds after warm-up: {fds[0]}..{fds[-1]} over {len(soak)} samples"
            (failures if len(fds) > 1 else notes).append(fd_line + (" — not flat" if len(fds) > 1 else " — flat"))
            result["leak"] = {"rss_first3_kb": a_rss, "rss_last3_kb": b_rss, "rss_growth": growth, "fds": fds,
                              "first_sample": soak[0], "last_sample": soak[-1]}

        # ---- delivery, MTK switches, garbage drops during the soak
        if soak_end:
            for i, ss in enumerate(sessions):
                sent, got = soak_end["rtp_sent_per_session"][i], soak_end["srtp_received_per_session"][i]
                # Sent in the last moments may still be in flight at the sample: allow one interval of slack below.
                loss = 1 - got / sent if sent else 1
                line = f"session {ss.name}: {got} of {sent} steady RTP came out as SRTP ({loss * 100:.3f} % missing)"
                (failures if loss > a.max_loss else notes).append(line)
            expected = 0.8 * len(sessions) * soak_end["t_s"] / a.mtk_period
            line = f"MTK switches: {soak_end['mtk_switches']} (expected >= {expected:.0f})"
            (failures if soak_end["mtk_switches"] < expected else notes).append(line)
            mkis = soak_end["mkis_per_session"]
            (failures if min(mkis) < 2 else notes).append(f"distinct MKIs on the wire per session: {mkis}")
            line = f"garbage: {soak_end['garbage_sent']} sent, dropped by reason {soak_end['drops_by_reason']}"
            (failures if a.garbage_rate and not soak_end["drops_by_reason"] else notes).append(line)

        # ---- overload and recovery
        if a.overload > 0 and gw.running():
            before = sample("pre-load")
            blasters = [lh.Blaster(sessions[0].rtp_in, 0xB1A50000 + i) for i in range(a.blasters)]
            tb = time.monotonic()
            for b in blasters:
                b.start()
            time.sleep(a.overload)
            for b in blasters:
                b.stop()
            burst_seconds = time.monotonic() - tb
            offered = sum(b.sent.value for b in blasters)
            after = sample("overload")
            time.sleep(a.settle)
            r0 = sample("settled")
            time.sleep(a.recovery)
            r1 = sample("recovery")
            m_drops = {k: after["drops_by_reason"].get(k, 0) - before["drops_by_reason"].get(k, 0) for k in after["drops_by_reason"]}
            m_drops = {k: v for k, v in m_drops.items() if v}
            kernel = after["kernel_drops"] - before["kernel_drops"]
            by_reason = dict(m_drops)
            if kernel:
                by_reason["socket_rcvbuf_full"] = kernel
            gw_in = after["pkts_in"] - before["pkts_in"]
            gw_out = after["pkts_out"] - before["pkts_out"]
            ov = {"seconds": round(burst_seconds, 1), "blasters": a.blasters, "offered": offered,
                  "offered_per_s": round(offered / burst_seconds), "gateway_in": gw_in, "gateway_out": gw_out,
                  "gateway_out_per_s": round(gw_out / burst_seconds), "drops_by_reason": by_reason}
            line = (f"overload: {offered} datagrams offered in {burst_seconds:.1f}s ({ov['offered_per_s']}/s) by {a.blasters} blasters "
                    f"on top of the steady load; the gateway took {gw_in} and sent {gw_out} ({ov['gateway_out_per_s']}/s); "
                    f"drops by reason: {by_reason}")
            (notes if kernel > 0 or sum(m_drops.values()) > 0 else failures).append(
                line + ("" if kernel > 0 or sum(m_drops.values()) > 0 else " — not overloaded: raise --blasters"))
            # Recovery window [r0, r1]: every session's steady RTP comes out again, no more socket drops.
            window = r1["t_s"] - r0["t_s"]
            rec = {"window_s": window, "sessions": []}
            for i, ss in enumerate(sessions):
                sent = r1["rtp_sent_per_session"][i] - r0["rtp_sent_per_session"][i]
                got = r1["srtp_received_per_session"][i] - r0["srtp_received_per_session"][i]
                ratio = got / sent if sent else 0
                rec["sessions"].append({"session": ss.name, "sent": sent, "protected_and_received": got,
                                        "rate_per_s": round(got / window, 1)})
                line = f"recovery {ss.name}: {got} of {sent} steady RTP out in {window:.0f}s ({got / window:.0f}/s, steady rate {a.rate}/s)"
                (failures if ratio < 1 - a.max_loss else notes).append(line)
            kd = r1["kernel_drops"] - r0["kernel_drops"]
            rec["kernel_drops"] = kd
            (failures if kd else notes).append(f"recovery: input socket drops in the window: {kd}")
            ov["recovery"] = rec
            result["overload"] = ov
        sender.stop()
        time.sleep(1)
        if gw.running():
            final = sample("final")
            result["final_sample"] = final
    finally:
        sender.stop()
        rc = gw.interrupt_and_wait(30) if gw.running() else (gw.proc.returncode if gw.proc else None)
        collector.stop()
        csv_file.close()

    with open(os.path.join(gw.directory, "gateway.out")) as f:
        stdout = f.read()
    (notes if rc == 0 and "run stopped" in stdout else failures).append(
        f"gateway exit status after SIGINT: {rc}" + ("" if "run stopped" in stdout else " (no summary printed)"))
    verdict = "FAIL" if failures else "PASS"
    result.update({"verdict": verdict, "failures": failures, "notes": notes, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    lh.write_json(os.path.join(out, "samples.json"), {"seed": seed, "commit": commit, "samples": samples})
    lh.write_json(os.path.join(out, "result.json"), result)
    lines = [f"soak verdict: {verdict}", f"seed {seed}, commit {commit}, binary {binary}",
             f"started {result['started']}, finished {result['finished']}"]
    if "leak" in result:
        for key in ("first_sample", "last_sample"):
            s = result["leak"][key]
            lines.append(f"{key.replace('_', ' ')} after warm-up: t={s['t_s']}s rss={s['rss_kb']} kB fds={s['fds']} threads={s['threads']}")
    lines += [f"FAIL: {x}" for x in failures] + [f"ok: {x}" for x in notes]
    with open(os.path.join(out, "verdict.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))
    log(f"soak: samples in {out}/samples.csv and samples.json, verdict in {out}/verdict.txt, gateway logs in {gw.directory}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:   # the verdict file must exist whatever happened (the lead reads it later)
        import traceback
        out = None
        for k, arg in enumerate(sys.argv):
            if arg == "--out" and k + 1 < len(sys.argv):
                out = sys.argv[k + 1]
        if out:
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "verdict.txt"), "w") as f:
                f.write(f"soak verdict: FAIL\nFAIL: the soak script stopped with {e!r}\n{traceback.format_exc()}")
        raise
