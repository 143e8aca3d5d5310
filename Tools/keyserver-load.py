#!/usr/bin/env python3
"""Load test of `mbms-gateway keyserver` on loopback (standard library only).

A pool of client threads, each a UE with its own keep-alive connection and its own Digest
state (keyserver_client.py): it takes a challenge, registers, then sends authenticated
msk-requests on that nonce with nc counting up; a 401 with stale=true (nonce expired) makes it
take a new challenge. Every authenticated answer must be 200 with a valid rspauth and the
per-item status 200; anything else is an error. Prints one JSON line: requests, errors,
challenges, seconds, requests/s, latency p50/p90/p99/max (ms, authenticated requests).

  Tools/keyserver-load.py --url http://127.0.0.1:8080 --bmsc bmsc.example.org \\
      --ue 'B-TID,KS_NAF_HEX' [--ue ...] --service urn:3gpp:mbms:svc1 --key 00F110:00010001 \\
      --clients 50 --requests 20000

UEs are given with --ue (repeatable) or --ue-file (one 'B-TID,KS_NAF_HEX' per line); client i
uses UE i mod count. Add them first with `mbms-gateway ue add`.
"""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keyserver_client as kc  # noqa: E402


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--bmsc", required=True)
    ap.add_argument("--ue", action="append", default=[])
    ap.add_argument("--ue-file")
    ap.add_argument("--service", required=True)
    ap.add_argument("--key", required=True, help="DOMAIN:MSKID of a key group of the service")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20000, help="authenticated requests in all")
    ap.add_argument("--cafile")
    ap.add_argument("--insecure", action="store_true")
    a = ap.parse_args(argv)

    ues = list(a.ue)
    if a.ue_file:
        with open(a.ue_file) as f:
            ues += [line.strip() for line in f if line.strip()]
    if not ues:
        ap.error("give at least one --ue B-TID,KS_NAF_HEX")
    ues = [tuple(u.split(",", 1)) for u in ues]

    domain, msk = a.key.split(":", 1)
    msk_body = kc.msk_body([(domain, msk)])
    register_body = kc.register_body([a.service])
    target_msk = "/keymanagement?requesttype=msk-request"
    target_reg = "/keymanagement?requesttype=register"

    lock = threading.Lock()
    remaining = [a.requests]
    latencies = []
    errors = []
    challenges = [0]
    start_barrier = threading.Barrier(a.clients + 1)

    def take():
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def worker(i):
        btid, ks_naf_hex = ues[i % len(ues)]
        c = kc.KeyServerClient(a.url, btid, kc.password_from_ks_naf(bytes.fromhex(ks_naf_hex)), a.bmsc, a.cafile, a.insecure)
        mine = []
        local_errors = []
        local_challenges = 0

        def challenge(target, body, ctype):
            status, headers, _ = c.raw("POST", target, body, {"Content-Type": ctype})
            if status != 401 or c.take_challenge(headers) is None:
                raise RuntimeError("expected a 401 challenge, got %d" % status)

        try:
            challenge(target_reg, register_body, kc.CONTENT_TYPES["register"])
            local_challenges += 1
            status, headers, data, ha1, nc, cn, uri = c.authorized("POST", target_reg, register_body, kc.CONTENT_TYPES["register"])
            if status != 200 or not c.check_rspauth(headers, ha1, uri, data, nc, cn) or b'code="200"' not in data:
                local_errors.append("register: %d %r" % (status, data[:200]))
        except Exception as e:  # noqa: BLE001
            local_errors.append("register: %s" % e)
        start_barrier.wait()
        while not local_errors and take():
            try:
                t0 = time.perf_counter()
                status, headers, data, ha1, nc, cn, uri = c.authorized("POST", target_msk, msk_body, kc.CONTENT_TYPES["msk-request"])
                t1 = time.perf_counter()
                if status == 401:
                    # stale nonce: a new challenge is expected now and then
                    if c.take_challenge(headers) is None:
                        local_errors.append("401 without challenge")
                        break
                    local_challenges += 1
                    with lock:
                        remaining[0] += 1
                    continue
                mine.append(t1 - t0)
                if status != 200:
                    local_errors.append("msk-request: %d %r" % (status, data[:200]))
                elif not c.check_rspauth(headers, ha1, uri, data, nc, cn):
                    local_errors.append("msk-request: rspauth does not verify")
                elif b'code="200"' not in data:
                    local_errors.append("msk-request: item refused %r" % data[:300])
            except Exception as e:  # noqa: BLE001
                local_errors.append("msk-request: %s" % e)
        c.close()
        with lock:
            latencies.extend(mine)
            errors.extend(local_errors)
            challenges[0] += local_challenges

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    lat = sorted(latencies)
    result = {
        "clients": a.clients,
        "requests": len(lat),
        "errors": len(errors),
        "first_errors": errors[:5],
        "challenges": challenges[0],
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(lat) / seconds, 1) if seconds > 0 else 0,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p90_ms": round(percentile(lat, 0.90) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "max_ms": round((lat[-1] if lat else 0) * 1000, 2),
    }
    print(json.dumps(result))
    return 0 if not errors and len(lat) == a.requests else 1


if __name__ == "__main__":
    sys.exit(main())
