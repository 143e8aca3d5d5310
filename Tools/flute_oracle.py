#!/usr/bin/env python3
"""Independent FLUTE receiver oracle (PyPI flute-alc, Rust `flute` crate) for tests.

Usage: flute_oracle.py CAPTURE.pcap PORT OUTDIR
Feeds every UDP datagram to PORT (IPv4/IPv6, Ethernet / Linux cooked / raw IP) to
flute.receiver.MultiReceiver and prints one JSON line per file it completed:
{"path": ..., "size": ..., "md5": ...}. Exits 3 if flute-alc is not installed.
"""
import hashlib, json, os, struct, sys

try:
    from flute import receiver
except ImportError:
    print("flute-alc is not installed (pip install flute-alc)", file=sys.stderr)
    sys.exit(3)


def frames(path):
    with open(path, "rb") as f:
        head = f.read(24)
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise SystemExit("not a classic pcap file: " + path)
        link = struct.unpack(endian + "I", head[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, caplen, _ = struct.unpack(endian + "IIII", rec)
            yield link, f.read(caplen)


def udp(link, data):
    off = {1: 14, 113: 16, 276: 20, 101: 0, 12: 0}.get(link)
    if off is None:
        return None
    if link == 1:
        etype = struct.unpack(">H", data[12:14])[0]
        while etype in (0x8100, 0x88A8):
            off += 4
            etype = struct.unpack(">H", data[off - 2:off])[0]
    ip = data[off:]
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or (struct.unpack(">H", ip[6:8])[0] & 0x3FFF):
            return None
        dst = ".".join(str(b) for b in ip[16:20])
        u = ip[ihl:]
    elif version == 6:
        if ip[6] != 17:
            return None
        import ipaddress
        dst = str(ipaddress.IPv6Address(ip[24:40]))
        u = ip[40:]
    else:
        return None
    port, length = struct.unpack(">HH", u[2:6])
    return dst, port, u[8:length]


def main():
    capture, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    writer = receiver.ObjectWriterBuilder(outdir)
    rx = receiver.MultiReceiver(writer, receiver.Config())
    for link, data in frames(capture):
        d = udp(link, data)
        if d is None or d[1] != port:
            continue
        try:
            rx.push(receiver.UDPEndpoint(d[0], d[1]), bytes(d[2]))
        except TypeError:
            pass
    for root, _, files in os.walk(outdir):
        for name in sorted(files):
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                blob = f.read()
            print(json.dumps({"path": os.path.relpath(p, outdir), "size": len(blob), "md5": hashlib.md5(blob).hexdigest()}))


if __name__ == "__main__":
    main()
