# NTLM (NTLMv2) on the server side of the test EWS server, as IIS does it for
# Exchange: the client's NEGOTIATE gets a 401 with a CHALLENGE carrying target
# info (so clients answer with NTLMv2), the AUTHENTICATE is verified against
# the server's user and password, and the connection stays signed in for its
# later requests (NTLM authenticates connections, not requests).  MD4 is
# written out here because OpenSSL 3 no longer offers it to Python.

import base64
import hashlib
import hmac
import os
import struct

SIG = b"NTLMSSP\0"


def md4(data):
    """MD4 (RFC 1320) of bytes."""
    def f(x, y, z): return (x & y) | (~x & z)
    def g(x, y, z): return (x & y) | (x & z) | (y & z)
    def h(x, y, z): return x ^ y ^ z
    def rotl(v, s): return ((v << s) | (v >> (32 - s))) & 0xffffffff
    msg = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            a = rotl((a + f(b, c, d) + x[k]) & 0xffffffff, s)
            a, b, c, d = d, a, b, c
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            a = rotl((a + g(b, c, d) + x[k] + 0x5a827999) & 0xffffffff, s)
            a, b, c, d = d, a, b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            s = (3, 9, 11, 15)[i % 4]
            a = rotl((a + h(b, c, d) + x[k] + 0x6ed9eba1) & 0xffffffff, s)
            a, b, c, d = d, a, b, c
        a, b, c, d = (a + aa) & 0xffffffff, (b + bb) & 0xffffffff, (c + cc) & 0xffffffff, (d + dd) & 0xffffffff
    return struct.pack("<4I", a, b, c, d)


def _av(pid, value):
    v = value.encode("utf-16-le")
    return struct.pack("<HH", pid, len(v)) + v


def challenge_message(nonce):
    target = "TEST".encode("utf-16-le")
    info = _av(2, "TEST") + _av(1, "EWS") + _av(4, "test.local") + struct.pack("<HH", 0, 0)
    flags = 0x1 | 0x4 | 0x200 | 0x8000 | 0x10000 | 0x80000 | 0x800000
    head = 48 + 8                       # with the version field
    msg = (SIG + struct.pack("<I", 2) + struct.pack("<HHI", len(target), len(target), head) +
           struct.pack("<I", flags) + nonce + b"\0" * 8 +
           struct.pack("<HHI", len(info), len(info), head + len(target)) +
           bytes([10, 0]) + struct.pack("<H", 19041) + b"\0\0\0\x0f")
    return msg + target + info


def _field(msg, at):
    n, _, off = struct.unpack("<HHI", msg[at:at + 8])
    if off + n > len(msg):
        raise ValueError("security buffer out of range")
    return msg[off:off + n]


def step(handler, token):
    """One Authorization: NTLM header.  Returns True (signed in), False (refused),
    or the base64 CHALLENGE to send with a 401."""
    try:
        msg = base64.b64decode(token, validate=True)
    except ValueError:
        return False
    if msg[:8] != SIG or len(msg) < 12:
        return False
    kind, = struct.unpack("<I", msg[8:12])
    if kind == 1:
        handler.ntlm_nonce = os.urandom(8)
        handler.server.ntlm_stats["negotiate"] += 1
        return base64.b64encode(challenge_message(handler.ntlm_nonce)).decode()
    nonce = getattr(handler, "ntlm_nonce", None)
    if kind != 3 or nonce is None or len(msg) < 64:
        return False
    handler.ntlm_nonce = None
    try:
        flags, = struct.unpack("<I", msg[60:64])
        enc = "utf-16-le" if flags & 1 else "latin-1"
        nt = _field(msg, 20)
        domain = _field(msg, 28).decode(enc)
        user = _field(msg, 36).decode(enc)
    except (ValueError, UnicodeDecodeError, struct.error):
        return False
    if len(nt) <= 24:                   # NTLMv1 answers are not accepted
        handler.server.ntlm_stats["v1_refused"] += 1
        return False
    srv = handler.server
    if user.lower() not in (srv.user.lower(), srv.user.split("@")[0].lower()):
        return False
    key = hmac.new(md4(srv.password.encode("utf-16-le")), (user.upper() + domain).encode("utf-16-le"),
                   hashlib.md5).digest()
    proof = hmac.new(key, nonce + nt[16:], hashlib.md5).digest()
    ok = hmac.compare_digest(proof, nt[:16])
    srv.ntlm_stats["authenticated" if ok else "refused"] += 1
    return ok
