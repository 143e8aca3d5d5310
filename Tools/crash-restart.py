#!/usr/bin/env python3
"""Crash-restart campaign of `mbms-gateway run`: kill -9 at random points, restart on the same
key store, and check from everything that came out that no keystream was used twice (issue 19
finding 15; standard library only).

  Tools/crash-restart.py --binary .build-bench/release/mbms-gateway --kills 20 [--seed N]
  Tools/crash-restart.py --self-test [--capture DIR/capture.pcap]     # the checker must fail on planted reuse
  Tools/crash-restart.py --check DIR/capture.pcap                      # check a capture again

The campaign. Two RTP sessions (AES-128-CM and AES-256-CM, RFC 4771 RCCm2 with R = 1, MTK
period --mtk-period s) on loopback; a sender process sends steady RTP at --rate packets/s per
session, an RTCP sender report per session per second and a few hostile datagrams, and now
and then restarts a session's SEQ from its first value (a restarted encoder: upstream SEQs
repeat, the gateway must not give them an index it used already). A collector captures every
datagram the gateway sends to the sessions' output ports and to UDP 2269 on the output address
(MIKEY) into capture.pcap. The gateway is started --kills times and each time killed with
SIGKILL after a random delay (seeded; about a quarter of the kills fall in the first 0.6 s,
i.e. during start-up and the first key-store writes, the rest anywhere in the next two MTK
periods: mid-period, around announcements and switches); it is restarted after a random gap
(0–0.5 s) on the same configuration and key store. Last, one run that is stopped cleanly
(SIGINT; exit 0 with its summary) shows the store still works. The traffic never stops.

What is checked, from the capture alone (the wire is what a UE and an attacker see):

  S1 SRTP: (MKI, SSRC, packet index) never repeats, where MKI = MSK ID || MTK ID (6 octets,
     TS 33.246 6.6.2.1) and the packet index = ROC * 2^16 + SEQ (RFC 3711 3.3.1) with the ROC
     read from the RFC 4771 tag. The configuration uses R = 1, so every SRTP packet ends
     MKI(6) || ROC(4) || MAC(10) and carries its own ROC: the index is read, never estimated.
     AES-CM's keystream is a function of (key, SSRC, index) (RFC 3711 4.1.1), so one MKI
     naming one key, a repeated triple is exactly a reused keystream.
  S2 SRTCP: (MKI, SSRC, SRTCP index) never repeats (the 31-bit index after the E flag,
     RFC 3711 3.4; the IV is built from it the same way).
  S3 every MKI used on SRTP/SRTCP was announced by some MIKEY MTK message in the capture.

  MIKEY MTK messages (TS 33.246 6.4.6.2, spec/mikey.md 4.3 and 7.3). The MTK is encrypted, so
  "one MTK ID, one key" cannot be read directly; what the wire does show:
  M1 a given (MSK ID, MTK ID, TS) is only ever sent as one byte string. A retransmission
     keeps its TS (mikey.md 4.3); a different message under the same TS is one the UE drops
     as a replay — or, worse, a second key for the same MTK ID.
  M2 a given (MSK ID, TS) names only one MTK ID: a UE keeps the TS it last accepted per MSK
     and drops anything not greater (RFC 1982), so two MTKs under one TS means one of them
     is never delivered.
  M3 TS never goes backwards for an MSK: in capture order, across every restart, a message
     that announces an MTK ID greater than every MTK ID seen before under that MSK carries a
     TS greater (RFC 1982) than every TS seen before under that MSK. This is the form of
     "TS never goes backwards" that matters to a UE (6.4.6.2: it accepts a new MTK only with
     a greater TS and a greater MTK ID) and that holds on a correct wire: repeats of the
     current MTK are still on the air after the next one's pre-announcement, so the raw TS
     sequence does step back — to a TS already sent, which M1 covers.
  M4 (strict; --allow-rebuilt-mikey drops it) one byte string per (MSK ID, MTK ID), over the
     whole capture and every restart. Same bytes = same encrypted MTK under the same MSK-
     derived keys = same MTK: the only proof on the wire that an MTK ID never names two keys,
     which S1/S2 rely on. This gateway derives the MTK, the CSB ID and the TS of each message
     from the store (KeySchedule/MTKDerivation), so a message rebuilt after a restart is
     byte-identical; a design that picks a fresh CSB ID per rebuild would need the relaxed
     mode and an MTK comparison instead (U2 below).

  And as a UE (the project's Receiver, with an MSK message per key group from `keys deliver`):
  U1 `mbms-gateway receive` decrypts every SRTP/SRTCP packet of the capture and finds no
     TS 33.246 rule broken (exit 0).
  U2 from its --report: no two MKIs carry the same MTK (S1/S2 are per MKI; two MKIs with one
     key would make them blind) and no MKI carries two.

  And the service itself:
  D1 no run logs a drop for want of packet indices or keys (reason index_exhausted or no_key,
     from gateway.err): after a restart the gateway protects what it receives.

S1-S3 and M1-M4 are "no keystream reuse" (issue 19 finding 15); D1, U1 and U2 are "the service
survives the restarts". Both are reported separately in verdict.txt; either failing fails.

Self-test (--self-test): the checker is fed a synthetic clean capture (must pass) and one
planted fault per property (each must fail with that property named); with --capture, the
same plants are made in a real capture (a copy of a real SRTP packet with other payload
octets, a real SRTCP index repeated, a real MIKEY message with one KEMAC octet changed).

Output (--out, default .build-bench/crash-restart/<time>): capture.pcap, layout.json,
kills.csv (kill number, delay, whether the gateway had sent MIKEY yet, its exit signal),
gateway/ (configuration, store, logs), check.json and verdict.txt. Exit status 0 = PASS.
"""

import argparse
import csv
import json
import os
import random
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_harness as lh  # noqa: E402

PROTECTIONS = [
    "{ cipher: aes-128-cm, auth: rccm2, rocRate: 1 }",
    "{ cipher: aes-256-cm, auth: rccm2, rocRate: 1 }",
]
SRTP_TAG = 14     # RCCm2, R = 1: ROC(4) || MAC(10) on every packet
SRTCP_TAG = 10    # HMAC-SHA1-80
MKI_LEN = 6


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Reading the capture

def read_pcap(path):
    """(frame number, t, dst port, payload) of every IPv4/UDP record of a classic pcap with
    link type raw (101) or Ethernet (1)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        end = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    link = struct.unpack_from(end + "I", data, 20)[0]
    off, n, out = 24, 0, []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(end + "IIII", data, off)
        off += 16
        frame = data[off:off + incl]
        off += incl
        n += 1
        ip = frame[14:] if link == 1 else frame
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        dport = struct.unpack_from("!H", ip, ihl + 2)[0]
        ulen = struct.unpack_from("!H", ip, ihl + 4)[0]
        payload = bytes(ip[ihl + 8:ihl + ulen])
        out.append((n, sec + frac / (1e9 if nano else 1e6), dport, payload))
    return out


def serial_gt(a, b):
    """RFC 1982 a > b for 32-bit serial numbers (spec/mikey.md 8)."""
    return a != b and ((a > b and a - b < 1 << 31) or (a < b and b - a > 1 << 31))


def parse_mikey(p):
    """(MSK ID, MTK ID, TS) of a MIKEY MTK message, walking the next-payload chain
    (spec/mikey.md 2-4): HDR, EXT type 3 (Key ID entries: 1 = MSK ID, 2 = MTK ID), T (COUNTER)."""
    if len(p) < 10 or p[0] != 1:
        raise ValueError("not MIKEY version 1")
    nxt = p[2]
    ncs, maptype = p[8], p[9]
    off = 10 + (9 * ncs if maptype == 0 else 0)
    msk = mtk = ts = None
    while nxt != 0:
        kind = nxt
        if off >= len(p):
            raise ValueError("truncated")
        nxt = p[off]
        if kind == 21:                                  # EXT
            etype, elen = p[off + 1], struct.unpack_from("!H", p, off + 2)[0]
            body = p[off + 4:off + 4 + elen]
            if etype == 3:
                k = 0
                while k + 3 <= len(body):
                    idtype, idlen = body[k], struct.unpack_from("!H", body, k + 1)[0]
                    value = body[k + 3:k + 3 + idlen]
                    if idtype == 1:
                        msk = value.hex()
                    elif idtype == 2:
                        mtk = int.from_bytes(value, "big")
                    k += 3 + idlen
            off += 4 + elen
        elif kind == 5:                                 # T
            tstype = p[off + 1]
            size = 4 if tstype in (2, 3) else 8
            ts = int.from_bytes(p[off + 2:off + 2 + size], "big")
            off += 2 + size
        elif kind == 11:                                # RAND
            off += 2 + p[off + 1]
        elif kind == 6:                                 # ID
            off += 4 + struct.unpack_from("!H", p, off + 2)[0]
        elif kind == 10:                                # SP
            off += 5 + struct.unpack_from("!H", p, off + 3)[0]
        elif kind == 1:                                 # KEMAC: last
            break
        else:
            raise ValueError(f"payload type {kind} not expected in an MTK message")
    if msk is None or mtk is None or ts is None:
        raise ValueError("no MSK ID, MTK ID or TS")
    return msk, mtk, ts


# ---------------------------------------------------------------------------------------------
# The checker

def check(records, layout, strict_mikey=True, max_listed=20):
    """The properties S1-S3 and M1-M4 of the module docstring over `records` (frame, t, dst
    port, payload) in capture order. Returns a dict: counts, violations by property."""
    srtp_ports = {int(k): v for k, v in layout["srtp_ports"].items()}
    srtcp_ports = {int(k): v for k, v in layout["srtcp_ports"].items()}
    mikey_port = layout.get("mikey_port", lh.MIKEY_PORT)
    violations = {k: [] for k in ("S1", "S2", "S3", "M1", "M2", "M3", "M4", "parse")}
    counts = {k: 0 for k in ("violations_S1", "violations_S2", "violations_S3", "violations_M1", "violations_M2",
                             "violations_M3", "violations_M4", "violations_parse")}

    def flag(prop, text):
        counts["violations_" + prop] += 1
        if len(violations[prop]) < max_listed:
            violations[prop].append(text)

    srtp_seen, srtcp_seen = {}, {}
    by_triple, by_ts, by_pair = {}, {}, {}
    max_mtk, max_ts = {}, {}
    announced = set()
    used_mkis = {}
    rocs = {}
    n_srtp = n_srtcp = n_mikey = 0
    for frame, _t, port, p in records:
        if port == mikey_port:
            n_mikey += 1
            try:
                msk, mtk, ts = parse_mikey(p)
            except (ValueError, IndexError, struct.error) as e:
                flag("parse", f"frame {frame}: MIKEY message not parsed ({e})")
                continue
            announced.add(msk + f"{mtk:04x}")
            t = (msk, mtk, ts)
            if by_triple.setdefault(t, p) != p:
                flag("M1", f"frame {frame}: MSK {msk} MTK {mtk} TS {ts} sent again with other bytes")
            if by_ts.setdefault((msk, ts), mtk) != mtk:
                flag("M2", f"frame {frame}: MSK {msk} TS {ts} names MTK {mtk} and MTK {by_ts[(msk, ts)]}")
            if by_pair.setdefault((msk, mtk), p) != p and strict_mikey:
                flag("M4", f"frame {frame}: MSK {msk} MTK {mtk} announced with other bytes (TS {ts})")
            if msk not in max_mtk or mtk > max_mtk[msk]:
                if msk in max_ts and not serial_gt(ts, max_ts[msk]):
                    flag("M3", f"frame {frame}: MSK {msk} new MTK {mtk} with TS {ts}, not greater than TS {max_ts[msk]} sent before")
                max_mtk[msk] = mtk
            if msk not in max_ts or serial_gt(ts, max_ts[msk]):
                max_ts[msk] = ts
        elif port in srtp_ports:
            tag, mki_len = srtp_ports[port]["tag"], srtp_ports[port].get("mki", MKI_LEN)
            if len(p) < 12 + mki_len + tag:
                flag("parse", f"frame {frame}: SRTP packet of {len(p)} octets is shorter than header + MKI + tag")
                continue
            n_srtp += 1
            seq = struct.unpack_from("!H", p, 2)[0]
            ssrc = struct.unpack_from("!I", p, 8)[0]
            mki = p[-(mki_len + tag):-tag]
            roc = struct.unpack_from("!I", p, len(p) - tag)[0]
            index = roc << 16 | seq
            key = (mki, ssrc, index)
            used_mkis.setdefault(mki.hex(), frame)
            rocs.setdefault(ssrc, set()).add(roc)
            if key in srtp_seen:
                flag("S1", f"frame {frame}: SRTP MKI {mki.hex()} SSRC {ssrc:08x} index {index} (ROC {roc}, SEQ {seq}) "
                           f"already used by frame {srtp_seen[key]}")
            else:
                srtp_seen[key] = frame
        elif port in srtcp_ports:
            tag, mki_len = srtcp_ports[port]["tag"], srtcp_ports[port].get("mki", MKI_LEN)
            if len(p) < 8 + 4 + mki_len + tag:
                flag("parse", f"frame {frame}: SRTCP packet of {len(p)} octets too short")
                continue
            n_srtcp += 1
            ssrc = struct.unpack_from("!I", p, 4)[0]
            mki = p[-(mki_len + tag):-tag]
            word = struct.unpack_from("!I", p, len(p) - tag - mki_len - 4)[0]
            index = word & 0x7FFFFFFF
            key = (mki, ssrc, index)
            used_mkis.setdefault(mki.hex(), frame)
            if key in srtcp_seen:
                flag("S2", f"frame {frame}: SRTCP MKI {mki.hex()} SSRC {ssrc:08x} index {index} already used by frame {srtcp_seen[key]}")
            else:
                srtcp_seen[key] = frame
    for mki, frame in sorted(used_mkis.items(), key=lambda kv: kv[1]):
        if mki not in announced:
            flag("S3", f"MKI {mki} (first used in frame {frame}) is in no MIKEY message of the capture")
    counts.update({"srtp": n_srtp, "srtcp": n_srtcp, "mikey": n_mikey, "mkis_used": len(used_mkis),
                   "mtks_announced": len(by_pair), "mikey_distinct_messages": len(set(by_triple.values())),
                   "srtp_ssrcs": len({k[1] for k in srtp_seen}),
                   "rocs_per_ssrc": {f"{s:08x}": sorted(v) for s, v in sorted(rocs.items()) if len(v) > 1 or len(rocs) <= 8}})
    failed = sorted(k for k, v in violations.items() if counts["violations_" + k])
    return {"counts": counts, "violations": {k: v for k, v in violations.items() if v}, "failed": failed}


# ---------------------------------------------------------------------------------------------
# Self-test: the checker must fail on each planted fault

def synthetic_mikey(msk, mtk, ts, kemac=b"\x00" * 40):
    hdr = bytes([1, 0, 21, 0]) + b"\x11\x22\x33\x44" + bytes([0, 1])
    ext_body = bytes([0]) + struct.pack("!H", 3) + bytes.fromhex("00f110") + bytes([1]) + struct.pack("!H", 4) + bytes.fromhex(msk) \
        + bytes([2]) + struct.pack("!H", 2) + struct.pack("!H", mtk)
    ext = bytes([5, 3]) + struct.pack("!H", len(ext_body)) + ext_body
    t = bytes([1, 2]) + struct.pack("!I", ts)
    return hdr + ext + t + bytes([0, 1]) + struct.pack("!H", len(kemac)) + kemac


def synthetic_srtp(ssrc, seq, roc, mki, payload=b"\xab" * 40):
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, ssrc) + payload + mki + struct.pack("!I", roc) + b"\x5a" * 10


def synthetic_srtcp(ssrc, index, mki):
    return struct.pack("!BBHI", 0x80, 200, 6, ssrc) + b"\xcd" * 20 + struct.pack("!I", 0x80000000 | index) + mki + b"\x77" * 10


SYN_LAYOUT = {"srtp_ports": {"5000": {"tag": SRTP_TAG, "mki": MKI_LEN}},
              "srtcp_ports": {"5001": {"tag": SRTCP_TAG, "mki": MKI_LEN}}, "mikey_port": lh.MIKEY_PORT}


def synthetic_clean():
    """Two MTKs with repeats interleaved as on the air (current repeated after the next one's
    pre-announcement), a kill and a restart that re-announces the current MTK byte-identically
    and moves the ROC to a fresh block, SEQ wraps."""
    msk = "00010001"
    recs = []
    m5, m6 = synthetic_mikey(msk, 5, 1000), synthetic_mikey(msk, 6, 1006)
    mki5, mki6 = bytes.fromhex(msk + "0005"), bytes.fromhex(msk + "0006")
    frame = 0

    def add(port, p):
        nonlocal frame
        frame += 1
        recs.append((frame, float(frame), port, p))
    add(2269, m5)
    for seq in range(65530, 65536):
        add(5000, synthetic_srtp(0xAA, seq, 0, mki5))
    for seq in range(0, 10):
        add(5000, synthetic_srtp(0xAA, seq, 1, mki5))
    add(5001, synthetic_srtcp(0xAA, 0, mki5))
    add(2269, m6)
    add(2269, m5)          # repeat of the current one after the next one's announcement
    add(5001, synthetic_srtcp(0xAA, 1, mki5))
    # kill -9; the restart re-announces MTK 5 (same bytes) and takes a fresh ROC block
    add(2269, m5)
    for seq in range(5, 15):
        add(5000, synthetic_srtp(0xAA, seq, 65536, mki5))
    add(5001, synthetic_srtcp(0xAA, 4096, mki5))
    for seq in range(15, 25):
        add(5000, synthetic_srtp(0xAA, seq, 0, mki6))
    add(5001, synthetic_srtcp(0xAA, 0, mki6))
    return recs


def plants(recs, layout):
    """(name, expected property, records) with one fault planted in `recs`."""
    srtp_ports = {int(k) for k in layout["srtp_ports"]}
    srtcp_ports = {int(k) for k in layout["srtcp_ports"]}
    mikey_port = layout.get("mikey_port", lh.MIKEY_PORT)
    last = recs[-1][0]
    out = []
    srtp = [r for r in recs if r[2] in srtp_ports]
    if srtp:
        f, t, port, p = srtp[len(srtp) // 2]
        tag = layout["srtp_ports"][str(port)]["tag"]
        body = bytearray(p)
        for k in range(12, len(p) - tag - MKI_LEN):     # other payload octets, same header, MKI, ROC
            body[k] ^= 0xA5
        out.append(("SRTP packet with the (MKI, SSRC, index) of an earlier one", "S1", recs + [(last + 1, t, port, bytes(body))]))
        f, t, port, p = srtp[-1]
        mki_at = len(p) - tag - MKI_LEN
        unknown = bytearray(p)
        unknown[mki_at + 4:mki_at + 6] = b"\xfe\xfe"
        out.append(("SRTP packet under an MKI no MIKEY message announced", "S3", recs + [(last + 1, t, port, bytes(unknown))]))
    srtcp = [r for r in recs if r[2] in srtcp_ports]
    if srtcp:
        f, t, port, p = srtcp[0]
        body = bytearray(p)
        body[8] ^= 0xFF
        out.append(("SRTCP packet with the (MKI, SSRC, index) of an earlier one", "S2", recs + [(last + 1, t, port, bytes(body))]))
    mikey = [r for r in recs if r[2] == mikey_port]
    if mikey:
        f, t, port, p = mikey[0]
        msk, mtk, ts = parse_mikey(p)
        body = bytearray(p)
        body[-5] ^= 0x01                                 # one KEMAC (MAC) octet
        out.append(("MIKEY message with the (MSK, MTK, TS) of an earlier one, other bytes", "M1", recs + [(last + 1, t, port, bytes(body))]))
        newest = max(parse_mikey(r[3])[1] for r in mikey if parse_mikey(r[3])[0] == msk)
        lowest_ts = min(parse_mikey(r[3])[2] for r in mikey if parse_mikey(r[3])[0] == msk)
        out.append(("MIKEY message of a new MTK with a TS lower than one sent before", "M3",
                    recs + [(last + 1, t, port, synthetic_mikey(msk, newest + 1, (lowest_ts - 1) & 0xFFFFFFFF))]))
        out.append(("MIKEY message of a new MTK under the TS of an earlier MTK", "M2",
                    recs + [(last + 1, t, port, synthetic_mikey(msk, newest + 2, ts))]))
        out.append(("MIKEY message of an announced MTK ID rebuilt with other bytes and a later TS", "M4",
                    recs + [(last + 1, t, port, synthetic_mikey(msk, mtk, (ts + 100000) & 0xFFFFFFFF, b"\x01" * 40))]))
    return out


def self_test(capture=None, layout=None):
    ok = True
    cases = [("synthetic", synthetic_clean(), SYN_LAYOUT)]
    if capture:
        cases.append((capture, lh_read(capture), layout))
    for name, recs, lay in cases:
        r = check(recs, lay)
        good = not r["failed"]
        log(f"self-test [{name}]: clean input {'passes' if good else 'FAILS: ' + str(r['failed']) + ' ' + json.dumps(r['violations'])[:400]}")
        ok &= good
        for what, prop, planted in plants(recs, lay):
            r = check(planted, lay)
            caught = prop in r["failed"]
            log(f"self-test [{name}]: {what}: {'caught as ' + prop if caught else 'NOT CAUGHT (' + str(r['failed']) + ')'}")
            ok &= caught
        if name == "synthetic":
            relaxed = check(plants(recs, lay)[-1][2], lay, strict_mikey=False)
            good = "M4" not in relaxed["failed"] and not relaxed["failed"]
            log(f"self-test [{name}]: --allow-rebuilt-mikey accepts the rebuilt MIKEY message: {'yes' if good else 'NO ' + str(relaxed['failed'])}")
            ok &= good
    log(f"self-test: {'PASS' if ok else 'FAIL'}")
    return ok


def lh_read(capture):
    return read_pcap(capture)


# ---------------------------------------------------------------------------------------------
# The UE side: `receive` over the capture (U1) and its report's MTKs (U2)

def ue_check(gw, sessions, capture, out):
    muk_file = os.path.join(out, "muk.hex")
    fd = os.open(muk_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, os.urandom(32).hex().encode())
    os.close(fd)
    msk_messages = []
    for s in sessions:
        path = os.path.join(out, f"msk-{s.key_group}.bin")
        rc, o, e = gw.run_to_end(["keys", "deliver", "--config", gw.config, "--key-group", str(s.key_group), "--muk-file", muk_file,
                                  "--ue-id", "ue-crash@example", "--output", path])
        if rc != 0:
            return {"U1": f"keys deliver failed ({rc}): {o}{e}"}, None
        msk_messages += ["--msk-message", path]
    report = os.path.join(out, "receive-report.json")
    rc, o, e = gw.run_to_end(["receive", "--input", capture, "--muk-file", muk_file, "--ue-id", "ue-crash@example", "--config", gw.config,
                              "--report", report, "--quiet"] + msk_messages, timeout=600)
    with open(os.path.join(out, "receive.txt"), "w") as f:
        f.write(f"exit {rc}\n{o}{e}")
    problems = {}
    if rc != 0:
        problems["U1"] = f"receive exit {rc}: {(o + e).strip()[-600:]}"
    mtks = None
    try:
        with open(report) as f:
            rep = json.load(f)
        mtks = collect_mtks(rep)
    except (OSError, ValueError) as e:
        problems["U2"] = f"no readable receive report ({e})"
    if mtks is not None:
        by_key = {}
        for mki, keys in mtks.items():
            if len(keys) > 1:
                problems.setdefault("U2", "")
                problems["U2"] += f"MKI {mki} carried {len(keys)} different MTKs; "
            for k in keys:
                by_key.setdefault(k, set()).add(mki)
        for k, ms in by_key.items():
            if len(ms) > 1:
                problems.setdefault("U2", "")
                problems["U2"] += f"MKIs {sorted(ms)} share one MTK; "
        if not mtks:
            problems["U2"] = "the receive report lists no MTK"
    return problems, (len(mtks) if mtks is not None else None)


def collect_mtks(rep):
    """{MKI hex: {MTK hex, ...}} from a `receive --report` JSON, wherever it lists MTKs (objects
    with an MKI (or MSK ID + MTK ID) and a key)."""
    out = {}

    def walk(v):
        if isinstance(v, dict):
            keys = {k.lower(): k for k in v}
            key_field = next((keys[k] for k in ("mtk", "key", "masterkey", "master_key") if k in keys and isinstance(v[keys[k]], str)), None)
            mki = None
            if "mki" in keys and isinstance(v[keys["mki"]], str):
                mki = v[keys["mki"]].lower()
            elif "msk" in keys and ("mtk_id" in keys or "mtkid" in keys):
                mki = f"{v[keys['msk']]}{int(v[keys.get('mtk_id', keys.get('mtkid'))]):04x}".lower()
            if key_field and mki:
                out.setdefault(mki, set()).add(v[key_field].lower())
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(rep)
    return out


# ---------------------------------------------------------------------------------------------
# The campaign

def campaign(a):
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    out = os.path.abspath(a.out or os.path.join(".build-bench", "crash-restart", time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"crash-restart: {binary} is not an executable; build it or pass --binary")
    commit = a.commit or (subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() + " (HEAD of the working tree)")
    log(f"crash-restart: seed {seed} (--seed {seed} repeats the schedule); {a.kills} kills; binary {binary}; commit {commit or '?'}; output {out}")
    if not self_test():
        sys.exit("crash-restart: the checker's self-test failed; not running the campaign")

    sessions = lh.make_sessions(2, rng, PROTECTIONS)
    lead = max(1, a.mtk_period // 3)
    gw = lh.Gateway(binary, os.path.join(out, "gateway"), lh.configuration_yaml(sessions, a.mtk_period, lead, 1))
    gw.keys_init()
    capture = os.path.join(out, "capture.pcap")
    layout = {"srtp_ports": {str(s.rtp_out[1]): {"tag": SRTP_TAG, "mki": MKI_LEN} for s in sessions},
              "srtcp_ports": {str(s.rtcp_out[1]): {"tag": SRTCP_TAG, "mki": MKI_LEN} for s in sessions},
              "mikey_port": lh.MIKEY_PORT}
    lh.write_json(os.path.join(out, "layout.json"), layout)
    addresses = [s.rtp_out for s in sessions] + [s.rtcp_out for s in sessions] + [(sessions[0].rtp_out[0], lh.MIKEY_PORT)]
    collector = lh.Collector(addresses, pcap=capture, rtcp_ports=[s.rtcp_out[1] for s in sessions])
    collector.start()
    sender = lh.SteadySender(sessions, a.rate, a.garbage_rate, seed, seq_regressions=a.seq_regressions)
    sender.start()
    kills = []
    failures = []
    run_args = ["--log-level", "notice", "--duration", "900"]
    try:
        for i in range(1, a.kills + 1):
            before = collector.stats()["per_port"].get(lh.MIKEY_PORT, 0)
            delay = rng.uniform(0.0, 0.6) if rng.random() < 0.25 else rng.uniform(0.6, 2 * a.mtk_period)
            gap = rng.uniform(0.0, 0.5)
            gw.start(run_args)
            time.sleep(delay)
            alive = gw.running()
            rc = gw.kill9()
            st = collector.stats()
            announced = st["per_port"].get(lh.MIKEY_PORT, 0) > before
            srtp = sum(st["per_port"].get(s.rtp_out[1], 0) for s in sessions)
            kills.append({"kill": i, "delay_s": round(delay, 3), "alive_at_kill": alive, "exit": rc, "mikey_sent": announced,
                          "srtp_so_far": srtp, "gap_s": round(gap, 3)})
            log(f"kill {i:3}/{a.kills}: after {delay:6.3f}s ({'running' if alive else 'ALREADY EXITED'}; "
                f"{'had' if announced else 'had not'} sent MIKEY), exit {rc}; SRTP captured so far {srtp}; restart in {gap:.2f}s")
            if not alive:
                failures.append(f"start {i}: the gateway had exited by itself (status {rc}) before the kill; see {gw.directory}/gateway.err")
            time.sleep(gap)
        # A clean run on the same store: starts, protects, stops with its summary.
        gw.start(["--log-level", "info", "--duration", "900"])
        time.sleep(2 * a.mtk_period)
        rc = gw.interrupt_and_wait(30)
        with open(os.path.join(gw.directory, "gateway.out")) as f:
            tail = f.read().rsplit("=== start", 1)[-1]
        log(f"final clean run: exit {rc}, summary {'printed' if 'run stopped' in tail else 'MISSING'}")
        if rc != 0 or "run stopped" not in tail:
            failures.append(f"the clean run after the kills exited {rc} (summary {'printed' if 'run stopped' in tail else 'missing'})")
    finally:
        sender.stop()
        if gw.running():
            gw.kill9()
        time.sleep(0.5)
        collector.stop()
    with open(os.path.join(out, "kills.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(kills[0].keys()) if kills else ["kill"])
        w.writeheader()
        w.writerows(kills)

    records = read_pcap(capture)
    result = check(records, layout, strict_mikey=not a.allow_rebuilt_mikey)
    c = result["counts"]
    log(f"capture: {len(records)} datagrams: {c['srtp']} SRTP, {c['srtcp']} SRTCP, {c['mikey']} MIKEY "
        f"({c['mikey_distinct_messages']} distinct messages, {c['mtks_announced']} MTKs announced, {c['mkis_used']} MKIs used); "
        f"SEQ restarts by the sender: {sender.regressions.value}")
    steady = {s.rtp_out[1]: sender.ssrcs[i] for i, s in enumerate(sessions)}
    delivered = sum(1 for _, _, port, p in records if port in steady and len(p) >= 12 and int.from_bytes(p[8:12], "big") == steady[port])
    sent = sum(sender.counts()[0])
    c["steady_rtp_sent"], c["steady_srtp_captured"] = sent, delivered
    log(f"delivery: {delivered} of {sent} steady RTP packets came out as SRTP ({100 * delivered / max(1, sent):.1f} %; "
        f"the rest was sent while the gateway was down or dropped by it — see mbms_drops_total / gateway.err)")
    log(f"ROC values per SSRC (each restart or SEQ regression under one MTK moves to a fresh block): {c['rocs_per_ssrc']}")
    for prop in ("S1", "S2", "S3", "M1", "M2", "M3", "M4"):
        n = c["violations_" + prop]
        log(f"  {prop}: {'ok' if n == 0 else f'{n} VIOLATIONS'}" + ("" if n == 0 else ": " + "; ".join(result["violations"][prop][:5])))
        if n:
            failures.append(f"{prop}: {n} violations, e.g. {result['violations'][prop][:3]}")
    if c["violations_parse"]:
        failures.append(f"unparsable datagrams: {result['violations']['parse'][:3]}")
    if c["srtp"] == 0 or c["mikey"] == 0:
        failures.append("nothing captured (no SRTP or no MIKEY)")
    if not a.no_receive:
        problems, n_mtks = ue_check(gw, sessions, capture, out)
        log(f"  U1 receive: {'ok (every packet decrypted, no rule broken)' if 'U1' not in problems else problems['U1']}")
        log(f"  U2 MTKs per MKI from the receive report: {'ok (' + str(n_mtks) + ' MKIs, one MTK each, all different)' if 'U2' not in problems else problems['U2']}")
        for k, v in problems.items():
            failures.append(f"{k}: {v}")
        result["ue"] = {"problems": problems, "mkis_with_mtk": n_mtks}
        try:
            with open(os.path.join(out, "receive-report.json")) as f:
                rep = json.load(f)
            ue_drops = {}
            for fl in rep.get("flows", []):
                for k, v in fl.get("dropped", {}).items():
                    ue_drops[k] = ue_drops.get(k, 0) + v
            totals = rep.get("totals", {})
            log(f"  UE: {totals.get('srtpOK')} SRTP and {totals.get('srtcpOK')} SRTCP decrypted; dropped by reason {ue_drops}; "
                f"violations {rep.get('violationCounts')}")
            result["ue"].update({"srtp_ok": totals.get("srtpOK"), "srtcp_ok": totals.get("srtcpOK"), "dropped": ue_drops})
        except (OSError, ValueError):
            pass
    drops = {}
    with open(os.path.join(gw.directory, "gateway.err")) as f:
        for line in f:
            if "dropping packets" in line and "reason=" in line:
                r = line.split("reason=", 1)[1].split()[0]
                drops[r] = drops.get(r, 0) + 1
    if drops:
        log(f"  gateway: runs that started dropping packets, by reason (first-of-reason log lines): {drops}")
    result["gateway_drop_reasons_logged"] = drops
    starved = {r: n for r, n in drops.items() if r in ("index_exhausted", "no_key")}
    log(f"  D1 the gateway protects what it receives after a restart (no index_exhausted / no_key drops): "
        f"{'ok' if not starved else f'{sum(starved.values())} runs dropped packets: {starved}'}")
    if starved:
        failures.append(f"D1: {sum(starved.values())} of {len(kills) + 1} runs dropped packets for want of packet indices or keys "
                        f"({starved}; see {gw.directory}/gateway.err)")
    # The checker on this real capture must catch planted reuse too.
    planted_ok = all(prop in check(recs, layout)["failed"] for _, prop, recs in plants(records, layout))
    log(f"self-test on this capture (planted reuse in the real packets): {'every plant caught' if planted_ok else 'NOT ALL CAUGHT'}")
    if not planted_ok:
        failures.append("the checker missed a fault planted in the real capture")
    verdict = "FAIL" if failures else "PASS"
    reuse = [f for f in failures if f[:2] in ("S1", "S2", "S3", "M1", "M2", "M3", "M4") or f.startswith(("unparsable", "nothing", "the checker"))]
    ue = [f for f in failures if f[:2] in ("U1", "U2", "D1")]
    other = [f for f in failures if f not in reuse and f not in ue]
    result.update({"seed": seed, "commit": commit, "binary": binary, "kills": kills, "verdict": verdict, "failures": failures,
                   "no_reuse": "FAIL" if reuse else "PASS", "ue_check": "skipped" if a.no_receive else ("FAIL" if ue else "PASS"),
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    lh.write_json(os.path.join(out, "check.json"), result)
    lines = [f"crash-restart verdict: {verdict}",
             f"  no keystream reuse (S1-S3 SRTP/SRTCP indices, M1-M4 MIKEY): {result['no_reuse']}",
             f"  service after restarts (D1 no index_exhausted/no_key drops, U1 receive decrypts everything, U2 one MTK per MKI): {result['ue_check']}",
             f"  runs (every start alive until its kill, clean final run): {'FAIL' if other else 'PASS'}",
             f"seed {seed}, {a.kills} kills ({sum(1 for k in kills if k['delay_s'] < 0.6)} in the first 0.6 s), commit {commit}, binary {binary}, {result['finished']}",
             f"captured {c['srtp']} SRTP, {c['srtcp']} SRTCP, {c['mikey']} MIKEY; {c['mkis_used']} MKIs used, {c['mtks_announced']} MTKs announced; "
             f"{sender.regressions.value} upstream SEQ restarts"]
    lines += [f"FAIL: {x}" for x in failures]
    with open(os.path.join(out, "verdict.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    log("\n".join(lines))
    log(f"crash-restart: capture {capture}, kills {out}/kills.csv, details {out}/check.json")
    return 0 if verdict == "PASS" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build-bench/release/mbms-gateway")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--commit", default=None, help="the commit the binary was built from, for the record (default: git HEAD)")
    ap.add_argument("--mtk-period", type=int, default=6)
    ap.add_argument("--rate", type=int, default=200, help="RTP packets/s per session")
    ap.add_argument("--garbage-rate", type=int, default=0,
                    help="hostile datagrams/s (default 0: `receive` reads an RTCP-port datagram whose PT is not 200-204 as SRTP, so garbage the gateway forwards makes U1 fail for reasons unrelated to restarts)")
    ap.add_argument("--seq-regressions", type=float, default=0.05, help="chance per second per session that the sender restarts its SEQ")
    ap.add_argument("--allow-rebuilt-mikey", action="store_true", help="drop M4 (one byte string per MSK ID, MTK ID)")
    ap.add_argument("--no-receive", action="store_true", help="skip U1/U2 (`receive` over the capture)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--self-test", action="store_true", help="only the checker's self-test")
    ap.add_argument("--capture", help="with --self-test: also plant faults in this capture (layout.json beside it)")
    ap.add_argument("--check", metavar="PCAP", help="only check this capture (layout.json beside it)")
    a = ap.parse_args()
    if a.self_test:
        layout = None
        if a.capture:
            with open(os.path.join(os.path.dirname(os.path.abspath(a.capture)), "layout.json")) as f:
                layout = json.load(f)
        return 0 if self_test(a.capture, layout) else 1
    if a.check:
        with open(os.path.join(os.path.dirname(os.path.abspath(a.check)), "layout.json")) as f:
            layout = json.load(f)
        r = check(read_pcap(a.check), layout, strict_mikey=not a.allow_rebuilt_mikey)
        print(json.dumps(r, indent=1, default=str))
        return 1 if r["failed"] else 0
    return campaign(a)


if __name__ == "__main__":
    sys.exit(main())
