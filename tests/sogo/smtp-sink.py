#!/usr/bin/python3
"""Minimal SMTP sink for tests: accepts every message (AUTH accepted too) and stores it as
NNNNNN.eml with X-Sink-From/X-Sink-To envelope headers. Usage: smtp-sink.py HOST PORT DIR"""
import os, socketserver, sys, threading
HOST, PORT, OUTDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(OUTDIR, exist_ok=True)
lock = threading.Lock()
class H(socketserver.StreamRequestHandler):
    def out(self, s):
        self.wfile.write((s + "\r\n").encode()); self.wfile.flush()
    def handle(self):
        self.out("220 localhost ESMTP test-sink")
        frm, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("latin-1").rstrip("\r\n"); up = cmd.upper()
            if up.startswith("EHLO"):
                for l in ("250-localhost", "250-8BITMIME", "250-AUTH PLAIN LOGIN", "250 SIZE 52428800"):
                    self.out(l)
            elif up.startswith("HELO"):
                self.out("250 localhost")
            elif up.startswith("AUTH"):
                self.out("235 2.7.0 ok")
            elif up.startswith("MAIL FROM:"):
                frm, rcpts = cmd[10:].strip(), []; self.out("250 2.1.0 ok")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:].strip()); self.out("250 2.1.5 ok")
            elif up == "DATA":
                self.out("354 end with <CRLF>.<CRLF>")
                buf = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    buf.append(l[1:] if l.startswith(b"..") else l)
                with lock:
                    n = len([f for f in os.listdir(OUTDIR) if f.endswith(".eml")]) + 1
                    path = os.path.join(OUTDIR, "%06d.eml" % n)
                    with open(path + ".tmp", "wb") as f:
                        f.write(("X-Sink-From: %s\r\nX-Sink-To: %s\r\n" % (frm, ", ".join(rcpts))).encode())
                        f.write(b"".join(buf))
                    os.rename(path + ".tmp", path)
                self.out("250 2.0.0 queued as %06d" % n)
            elif up in ("RSET", "NOOP"):
                self.out("250 ok")
            elif up == "QUIT":
                self.out("221 bye"); return
            else:
                self.out("502 5.5.2 not implemented")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((HOST, PORT), H).serve_forever()
