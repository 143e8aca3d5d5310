#!/usr/bin/env python3
"""An independent client of the BM-SC Key Request function (TS 33.246 Annex G/H).

Written from ../shared/spec/keyserver.md §2-§6 with the Python standard library only
(http.client, ssl, hashlib, hmac, base64); it shares no code with the Swift server, so the
end-to-end tests use it as the oracle for the Digest (qop=auth-int) exchange:

  1. POST without credentials -> 401, WWW-Authenticate: Digest realm="3GPP-bootstrapping@<bmsc>",
     nonce, qop="auth-int", algorithm=MD5
  2. POST again with Authorization: username=B-TID, password = base64(MRK),
     MRK = HMAC-SHA-256(Ks_NAF, 01 || "mbms-mrk" || 00 08) (TS 33.246 Annex F)
     HA1 = MD5(user:realm:password), HA2 = MD5(method:uri:MD5(body)),
     response = MD5(HA1:nonce:nc:cnonce:auth-int:HA2)
  3. 200 with Authentication-Info: rspauth = MD5(HA1:nonce:nc:cnonce:auth-int:MD5(:uri:MD5(response body)))

Command line (prints one JSON object):
  keyserver_client.py --url http://127.0.0.1:8080 --btid B --ks-naf HEX --bmsc bmsc.example.org \\
      register --service urn:3gpp:mbms:svc1
  keyserver_client.py ... msk-request --key 00F110:00010000
Test knobs: --wrong-password, --uri, --qop auth, --replay, --body-file, --no-auth, --header,
--source (bind the client to a local address), --cafile / --insecure for https.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import sys
import urllib.parse

UA = "MBMSAgent; Release-6 3gpp-gba"
CONTENT_TYPES = {
    "register": "application/mbms-register+xml",
    "deregister": "application/mbms-deregister+xml",
    "msk-request": "application/mbms-msk+xml",
    "authorize": "application/mbms-authorize+xml",
}


# --- GBA (TS 33.220 Annex B, TS 33.246 Annex F) -------------------------------------------

def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    s = bytes([fc])
    for p in params:
        s += p + len(p).to_bytes(2, "big")
    return hmac.new(key, s, hashlib.sha256).digest()


def naf_id(fqdn: str, ua: bytes = bytes([1, 0, 0, 0, 1])) -> bytes:
    return fqdn.encode() + ua


def ks_naf(ks: bytes, rand: bytes, impi: str, fqdn: str) -> bytes:
    return kdf(ks, 0x01, b"gba-me", rand, impi.encode(), naf_id(fqdn))


def mrk(ks_naf_key: bytes) -> bytes:
    return kdf(ks_naf_key, 0x01, b"mbms-mrk")


def password_from_ks_naf(ks_naf_key: bytes) -> str:
    return base64.b64encode(mrk(ks_naf_key)).decode("ascii")


# --- Digest (RFC 2617, keyserver.md §3.3) --------------------------------------------------

def md5hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def parse_challenge(header: str) -> dict:
    """Digest challenge parameters (quoted or token values)."""
    h = header.strip()
    if not h.lower().startswith("digest "):
        raise ValueError("not a Digest challenge: %r" % header)
    params = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]+)', h[7:]):
        value = m.group(3) if m.group(3) is not None else m.group(2)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return params


def digest_response(user, realm, password, method, uri, body, nonce, nc, cnonce, qop="auth-int"):
    ha1 = md5hex(("%s:%s:%s" % (user, realm, password)).encode())
    if qop == "auth-int":
        ha2 = md5hex(("%s:%s:%s" % (method, uri, md5hex(body))).encode())
    else:
        ha2 = md5hex(("%s:%s" % (method, uri)).encode())
    resp = md5hex(("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2)).encode())
    return ha1, resp


def expected_rspauth(ha1, uri, response_body, nonce, nc, cnonce, qop="auth-int"):
    ha2 = md5hex((":%s:%s" % (uri, md5hex(response_body))).encode())
    return md5hex(("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2)).encode())


def authorization_header(user, realm, nonce, uri, qop, nc, cnonce, response, opaque=None, algorithm="MD5"):
    parts = ['username="%s"' % user, 'realm="%s"' % realm, 'nonce="%s"' % nonce, 'uri="%s"' % uri,
             "qop=%s" % qop, "nc=%s" % nc, 'cnonce="%s"' % cnonce, 'response="%s"' % response]
    if opaque is not None:
        parts.append('opaque="%s"' % opaque)
    parts.append("algorithm=%s" % algorithm)
    return "Digest " + ", ".join(parts)


# --- bodies (keyserver.md §5.3-§5.5) -------------------------------------------------------

def register_body(services, root="mbmsRegister"):
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<%s xmlns="urn:3GPP:metadata:2005:MBMS:%s">' % (root, root)]
    lines += [" <serviceId>%s</serviceId>" % s for s in services]
    lines.append("</%s>" % root)
    return ("\n".join(lines) + "\n").encode()


def msk_body(keys):
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<mskRequest xmlns="urn:3GPP:metadata:2005:MBMS:mskRequest">']
    lines += [' <key keyDomainID="%s" mskID="%s"/>' % k for k in keys]
    lines.append("</mskRequest>")
    return ("\n".join(lines) + "\n").encode()


def authorize_body(services, ue_address):
    lines = ['<mbmsAuthorize xmlns="urn:3GPP:metadata:2005:MBMS:mbmsAuthorize">']
    lines += [" <serviceId>%s</serviceId>" % s for s in services]
    lines.append(" <ueIPAddress>%s</ueIPAddress>" % ue_address)
    lines.append("</mbmsAuthorize>")
    return ("\n".join(lines) + "\n").encode()


# --- client ----------------------------------------------------------------------------------

class KeyServerClient:
    """One keep-alive connection; remembers the last nonce and counts nc on it."""

    def __init__(self, url, btid=None, password=None, bmsc=None, cafile=None, insecure=False, source=None, timeout=10):
        u = urllib.parse.urlsplit(url)
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80)
        self.btid, self.password, self.bmsc = btid, password, bmsc
        self.source = (source, 0) if source else None
        self.timeout = timeout
        self.context = None
        if self.scheme == "https":
            self.context = ssl.create_default_context(cafile=cafile)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
            if insecure:
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE
        self.conn = None
        self.nonce = None
        self.realm = None
        self.opaque = None
        self.nc = 0
        self.cnonce_counter = 0

    def connect(self):
        if self.conn is None:
            if self.context is not None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context,
                                                        source_address=self.source)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout, source_address=self.source)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def raw(self, method, target, body=b"", headers=None):
        """One request; returns (status, headers as a list of pairs, body)."""
        h = {"User-Agent": UA, "Content-Length": str(len(body))}
        h.update(headers or {})
        for attempt in (0, 1):
            conn = self.connect()
            try:
                conn.request(method, target, body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")

    def take_challenge(self, headers):
        for name, value in headers:
            if name.lower() == "www-authenticate" and value.lower().startswith("digest"):
                p = parse_challenge(value)
                self.nonce, self.realm, self.opaque = p.get("nonce"), p.get("realm"), p.get("opaque")
                self.nc = 0
                return p
        return None

    def cnonce(self):
        self.cnonce_counter += 1
        return hashlib.md5(os.urandom(8) + str(self.cnonce_counter).encode()).hexdigest()[:16]

    def authorized(self, method, target, body, content_type, extra=None, uri=None, qop="auth-int", password=None, nc=None):
        """A request with credentials on the current nonce; returns (status, headers, body, ha1, nc, cnonce, uri)."""
        self.nc = nc if nc is not None else self.nc + 1
        nc_text = "%08x" % self.nc
        cn = self.cnonce()
        digest_uri = uri if uri is not None else target
        ha1, resp = digest_response(self.btid, self.realm, password if password is not None else self.password,
                                    method, digest_uri, body, self.nonce, nc_text, cn, qop)
        headers = {"Content-Type": content_type,
                   "Authorization": authorization_header(self.btid, self.realm, self.nonce, digest_uri, qop, nc_text, cn, resp, self.opaque)}
        headers.update(extra or {})
        status, rh, data = self.raw(method, target, body, headers)
        return status, rh, data, ha1, nc_text, cn, digest_uri

    def check_rspauth(self, headers, ha1, uri, data, nc_text, cnonce):
        info = next((v for n, v in headers if n.lower() == "authentication-info"), None)
        if info is None:
            return False
        p = parse_challenge("Digest " + info)
        return (p.get("rspauth") == expected_rspauth(ha1, uri, data, self.nonce, nc_text, cnonce)
                and p.get("cnonce") == cnonce and p.get("nc") == nc_text and p.get("qop") == "auth-int")


def headers_dict(pairs):
    out = {}
    for n, v in pairs:
        out.setdefault(n.lower(), []).append(v)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="http://host:port or https://host:port")
    ap.add_argument("--btid", help="B-TID (Digest username)")
    ap.add_argument("--ks-naf", help="Ks_NAF (hex); the password is base64(MRK) derived from it")
    ap.add_argument("--password", help="Digest password as is (instead of --ks-naf)")
    ap.add_argument("--bmsc", help="BM-SC FQDN: the challenge's realm must be 3GPP-bootstrapping@<bmsc>")
    ap.add_argument("--cafile", help="trust this certificate (https)")
    ap.add_argument("--insecure", action="store_true", help="https without verifying the server")
    ap.add_argument("--source", help="bind the client to this local IP address")
    ap.add_argument("--method", default="POST")
    ap.add_argument("--path", default="/keymanagement")
    ap.add_argument("--header", action="append", default=[], help="extra 'Name: value' header")
    ap.add_argument("--no-auth", action="store_true", help="send once without credentials, report the answer")
    ap.add_argument("--wrong-password", action="store_true", help="answer the challenge with a wrong password")
    ap.add_argument("--uri", help="digest-uri to put in Authorization (default: the request target)")
    ap.add_argument("--qop", default="auth-int", help="qop to answer with (auth-int; auth to test the refusal)")
    ap.add_argument("--replay", action="store_true", help="after the authenticated request, send it again with the same nonce and nc")
    ap.add_argument("--body-file", help="send this file's bytes as the body")
    ap.add_argument("--service", action="append", default=[], help="service ID (register, deregister, authorize)")
    ap.add_argument("--key", action="append", default=[], help="DOMAIN:MSKID pair (msk-request), e.g. 00F110:00010000")
    ap.add_argument("--ue-address", help="UE IP address (authorize)")
    ap.add_argument("type", help="register, deregister, msk-request, authorize (or any text)")
    a = ap.parse_args(argv)

    password = a.password
    if a.ks_naf:
        password = password_from_ks_naf(bytes.fromhex(a.ks_naf))
    if a.body_file:
        with open(a.body_file, "rb") as f:
            body = f.read()
    elif a.type in ("register", "deregister"):
        body = register_body(a.service, "mbmsRegister" if a.type == "register" else "mbmsDeregister")
    elif a.type == "msk-request":
        body = msk_body([tuple(k.split(":", 1)) for k in a.key])
    elif a.type == "authorize":
        body = authorize_body(a.service, a.ue_address or "")
    else:
        body = b""
    target = "%s?requesttype=%s" % (a.path, a.type)
    content_type = CONTENT_TYPES.get(a.type, "application/xml")
    extra = {}
    for h in a.header:
        n, _, v = h.partition(":")
        extra[n.strip()] = v.strip()

    c = KeyServerClient(a.url, a.btid, password, a.bmsc, a.cafile, a.insecure, a.source)
    out = {}
    h0 = {"Content-Type": content_type}
    h0.update(extra)
    status, headers, data = c.raw(a.method, target, body, h0)
    out["first"] = {"status": status, "headers": headers_dict(headers), "body": data.decode("utf-8", "replace")}
    if a.no_auth or status != 401:
        out["status"] = status
        print(json.dumps(out))
        return 0
    p = c.take_challenge(headers)
    if p is None:
        out["error"] = "401 without a Digest challenge"
        print(json.dumps(out))
        return 1
    qops = [q.strip() for q in p.get("qop", "").split(",")]
    out["challenge"] = {"realm": p.get("realm"), "qop": qops, "algorithm": p.get("algorithm"),
                        "realm_ok": a.bmsc is None or p.get("realm") == "3GPP-bootstrapping@" + a.bmsc,
                        "auth_int_only": qops == ["auth-int"]}
    pw = "wrong-" + (password or "") if a.wrong_password else None
    status, headers, data, ha1, nc, cn, uri = c.authorized(a.method, target, body, content_type, extra, uri=a.uri, qop=a.qop, password=pw)
    out["status"] = status
    out["headers"] = headers_dict(headers)
    out["body"] = data.decode("utf-8", "replace")
    out["rspauth_ok"] = c.check_rspauth(headers, ha1, uri, data, nc, cn) if status == 200 else None
    if a.replay:
        status2, headers2, _, _, _, _, _ = c.authorized(a.method, target, body, content_type, extra, uri=a.uri, qop=a.qop,
                                                        password=pw, nc=c.nc)
        out["replay"] = {"status": status2, "headers": headers_dict(headers2)}
    c.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
