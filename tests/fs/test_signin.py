"""test_signin.py - reaching a server like a real client: Autodiscover
through each method (POX on the domain and on autodiscover.<domain>, the
HTTP redirect method, DNS SRV, v2 JSON) and through redirectAddr/redirectUrl
chains, loops ending in one clear error; mounting by e-mail address alone;
OAuth2 device-code and PKCE sign-in against the test server's authority
(the test plays the user), tokens refreshed before expiry and after a 401
mid-sync, a revoked refresh token giving one clear line and a non-zero
exit; Kerberos selecting GSS-API; no secret in any debug trace.

Names like example.test are sent to the local test servers with
$EXCHANGEFS_CONNECT_TO (TLS still verifies them: the test certificate
carries them), the SRV record comes from a small DNS server here
($EXCHANGEFS_DNS_SERVER)."""
import json
import os
import socket
import stat
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import ssl

import pytest

from harness import EwsServer
import logcheck
from mountlib import EXE, Mount, wait_for

NAMES = ["example.test", "autodiscover.example.test", "mail.example.test", "login.example.test",
         "other.test", "autodiscover.other.test", "outlook.office365.com"]
ADDR = "alice@example.test"
PASSWORD = "s3cret-pw-4711"
logcheck.add_secret(PASSWORD)
EWS = "https://mail.example.test/EWS/Exchange.asmx"


class DnsSrv:
    """A UDP DNS server answering SRV queries from a table (name -> (target, port))."""

    def __init__(self):
        self.table = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                q, addr = self.sock.recvfrom(2048)
            except OSError:
                return
            qid, = struct.unpack(">H", q[:2])
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            self.queries.append(name)
            hit = self.table.get(name)
            flags, an = (0x8180, b"") if hit else (0x8183, b"")
            if hit:
                target, port = hit
                tname = b"".join(bytes([len(l)]) + l.encode() for l in target.split(".")) + b"\0"
                rdata = struct.pack(">HHH", 0, 5, port) + tname
                an = b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 60, len(rdata)) + rdata
            self.sock.sendto(struct.pack(">HHHHHH", qid, flags, 1, 1 if hit else 0, 0, 0) + question + an, addr)

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A TLS server for every name, a plain one for http://autodiscover.example.test, a DNS server."""
    with EwsServer(messages=30, seed=5, tls=True, tls_names=NAMES, user=ADDR, password=PASSWORD) as srv, \
            EwsServer(messages=1, seed=6, tls=False, user=None) as plain:
        dns = DnsSrv()
        connect = [f"{n}:443:127.0.0.1:{srv.port}" for n in NAMES]
        connect.append(f"autodiscover.example.test:80:127.0.0.1:{plain.port}")
        yield {"srv": srv, "plain": plain, "dns": dns,
               "env": {"EXCHANGEFS_CONNECT_TO": ",".join(connect),
                       "EXCHANGEFS_DNS_SERVER": f"127.0.0.1:{dns.port}"}}
        dns.close()


@pytest.fixture
def env(world, tmp_path):
    """Per test: fresh config/cache homes, no rules, default OAuth2 knobs."""
    world["srv"].control("POST", "autodiscover", {"rules": {}})
    world["plain"].control("POST", "autodiscover", {"rules": {}})
    world["srv"].control("POST", "oauth", {"access_lifetime_s": 3600, "interval_s": 1, "slow_down": 0})
    world["dns"].table.clear()
    e = dict(os.environ, **world["env"])
    e.pop("EXCHANGEFS_PASSWORD", None)
    e.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cachehome"),
             HOME=str(tmp_path))
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    e["_pwfile"] = str(pw)
    return e


def rules(world, **by_host):
    world["srv"].control("POST", "autodiscover", {"rules": by_host.get("tls", {})})
    if "plain" in by_host:
        world["plain"].control("POST", "autodiscover", {"rules": by_host["plain"]})


def discover(world, env, addr=ADDR, extra=()):
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    return subprocess.run([EXE, "autodiscover", "-d", "--ca-file", world["srv"].ca_cert,
                           "--password-file", env["_pwfile"], *extra, addr],
                          capture_output=True, text=True, timeout=120, env=e, stdin=subprocess.DEVNULL)


def found(r):
    assert r.returncode == 0, r.stderr
    return dict(l.split(": ", 1) for l in r.stdout.splitlines())


def settings(url=EWS, **kw):
    return {"settings": dict(ews_url=url, **kw)}


def ad_log(world, which="srv"):
    return [(x["method"], x["host"], x["path"].split("?")[0], x["auth"]) for x in
            world[which].control("GET", "autodiscover_log")]


def one_error_line(r):
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.startswith("exchangefs: ") and "debug:" not in l
             and "warning" not in l]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ---- Autodiscover ------------------------------------------------------------------

def test_pox_on_the_domain(world, env):
    rules(world, tls={"example.test": settings(mapi_url="https://mail.example.test/mapi/emsmdb/?x=1",
                                               eas_url="https://mail.example.test/Microsoft-Server-ActiveSync")})
    f = found(discover(world, env))
    assert f == {"address": ADDR, "ews_url": EWS,
                 "activesync_url": "https://mail.example.test/Microsoft-Server-ActiveSync",
                 "mapi_url": "https://mail.example.test/mapi/emsmdb/?x=1"}
    # POX is POSTed with the credentials (after curl's first anonymous try)
    assert ad_log(world)[-1] == ("POST", "example.test", "/autodiscover/autodiscover.xml", True)


def test_pox_on_autodiscover_host_after_a_failure(world, env):
    rules(world, tls={"example.test": {"status": 500}, "autodiscover.example.test": settings()})
    r = discover(world, env)
    assert found(r)["ews_url"] == EWS
    # -d shows every attempt and why it failed
    assert "https://example.test/autodiscover/autodiscover.xml: HTTP 500" in r.stderr
    hosts = [h for _, h, _, _ in ad_log(world)]
    assert hosts[0] == "example.test" and hosts[-1] == "autodiscover.example.test"


def test_http_redirect_method(world, env):
    # nothing on https; http://autodiscover.example.test redirects to https
    rules(world, tls={"mail.example.test": settings()},
          plain={"autodiscover.example.test": {"http_redirect":
                                               "https://mail.example.test/autodiscover/autodiscover.xml"}})
    r = discover(world, env)
    assert found(r)["ews_url"] == EWS
    plain = ad_log(world, "plain")
    assert plain == [("GET", "autodiscover.example.test", "/autodiscover/autodiscover.xml", False)]
    assert ("POST", "mail.example.test", "/autodiscover/autodiscover.xml", True) in ad_log(world)


def test_unauthenticated_redirect_outside_the_domain(world, env):
    """An http redirect (or SRV record) to a host outside the address's domain
    gets no credentials unless the user trusts that domain."""
    rules(world, tls={"autodiscover.other.test": settings()},
          plain={"autodiscover.example.test": {"http_redirect":
                                               "https://autodiscover.other.test/autodiscover/autodiscover.xml"}})
    r = discover(world, env)
    assert "leads outside example.test to autodiscover.other.test, not followed" in one_error_line(r)
    assert not any(h == "autodiscover.other.test" for _, h, _, _ in ad_log(world))
    world["dns"].table["_autodiscover._tcp.example.test"] = ("autodiscover.other.test", 443)
    r = discover(world, env, extra=["--autodiscover-trust", "other.test"])
    assert found(r)["ews_url"] == EWS


def test_http_redirect_to_plain_http_is_not_followed(world, env):
    rules(world, plain={"autodiscover.example.test": {"http_redirect": "http://evil.test/autodiscover/autodiscover.xml"}})
    r = discover(world, env)
    line = one_error_line(r)
    assert "Autodiscover found no server for alice@example.test" in line
    assert "not https (not followed)" in r.stderr
    # a password user is never sent to Exchange Online's global endpoint
    assert "outlook.office365.com" not in [h for _, h, _, _ in ad_log(world)]


def test_dns_srv(world, env):
    world["dns"].table["_autodiscover._tcp.example.test"] = ("mail.example.test", 443)
    rules(world, tls={"mail.example.test": settings()})
    r = discover(world, env)
    assert found(r)["ews_url"] == EWS
    assert "_autodiscover._tcp.example.test" in world["dns"].queries


def test_json_v2(world, env):
    rules(world, tls={"autodiscover.example.test": {"json": {"Protocol": "EWS", "Url": EWS}}})
    r = discover(world, env)
    assert found(r)["ews_url"] == EWS
    # tried last without OAuth2, and anonymously
    assert ad_log(world)[-1][0] == "GET" and ad_log(world)[-1][3] is False


def test_json_v2_global_endpoint_first_with_oauth2(world, env):
    """Signed in with OAuth2, v2 JSON goes first: autodiscover.<domain>, then
    Exchange Online's global endpoint (here the test server, by name)."""
    assert login(world, env)[0] == 0
    rules(world, tls={"outlook.office365.com": {"json": {"Protocol": "EWS", "Url": EWS}},
                      "example.test": settings("https://wrong.example.test/EWS/Exchange.asmx")})
    r = discover(world, env)
    assert found(r)["ews_url"] == EWS
    log = ad_log(world)
    assert [h for _, h, _, _ in log] == ["autodiscover.example.test", "outlook.office365.com"]
    assert all(m == "GET" and not auth for m, _, _, auth in log)


def test_redirect_addr_then_redirect_url(world, env):
    rules(world, tls={
        "example.test": {"redirect_addr": "bob@other.test"},
        "other.test": {"redirect_url": "https://autodiscover.other.test/autodiscover/autodiscover.xml?hop=1"},
        "autodiscover.other.test/autodiscover/autodiscover.xml?hop=1": settings("https://mail.example.test/EWS/Exchange.asmx?bob"),
    })
    f = found(discover(world, env))
    assert f["address"] == "bob@other.test" and f["ews_url"].endswith("?bob")


def test_redirect_loop_ends_with_one_clear_error(world, env):
    rules(world, tls={"example.test": {"redirect_addr": "bob@other.test"},
                      "other.test": {"redirect_addr": ADDR}})
    line = one_error_line(discover(world, env))
    assert "redirection loop" in line and ADDR in line


def test_redirect_hop_limit(world, env):
    chain = {f"example.test/autodiscover/autodiscover.xml?hop={i}":
             {"redirect_url": f"https://example.test/autodiscover/autodiscover.xml?hop={i + 1}"} for i in range(20)}
    chain["example.test"] = {"redirect_url": "https://example.test/autodiscover/autodiscover.xml?hop=0"}
    rules(world, tls=chain)
    line = one_error_line(discover(world, env))
    assert "more than 10 redirections" in line


def test_untrusted_certificate_is_refused(world, env, tmp_path):
    rules(world, tls={"example.test": settings()})
    r = discover(world, env, extra=["--ca-file", "/etc/ssl/certs/ca-certificates.crt"])
    assert r.returncode != 0 and "not trusted" in r.stderr


class AddressMount(Mount):
    """exchangefs [options] ADDRESS MOUNTPOINT, without --url/--user."""

    def __init__(self, *a, address=ADDR, with_password=True, **kw):
        self.address, self.with_password = address, with_password
        super().__init__(*a, **kw)

    def argv(self):
        a = [EXE, "-f", "--cache-dir", self.cache_dir, "--sync-interval", "1"]
        if self.with_password:
            a += ["--password-file", self.pwfile]
        if self.ca_file:
            a += ["--ca-file", self.ca_file]
        return a + self.extra + [self.address, self.mountpoint]


def address_mount(world, env, tmp_path, name="m", **kw):
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    return AddressMount(str(tmp_path / name), None, ADDR, PASSWORD, str(tmp_path / (name + "-cache")),
                        str(tmp_path / (name + ".log")), ca_file=world["srv"].ca_cert, env=e, **kw)


def test_mount_by_address_alone(world, env, tmp_path):
    rules(world, tls={"autodiscover.example.test": settings()})
    m = address_mount(world, env, tmp_path).start()
    try:
        m.wait_synced()
        assert "Inbox" in os.listdir(m.mountpoint)
        assert "is served by " + EWS in m.log_text()
    finally:
        m.stop()
    # the second start takes the cached answer: no Autodiscover request
    n = len(ad_log(world))
    m2 = address_mount(world, env, tmp_path, extra=[]).start()
    try:
        assert "(cached" in m2.log_text()
        assert len(ad_log(world)) == n
    finally:
        m2.stop()
    # a start that fails with the cached URL drops it: the next start asks again
    cached = os.path.join(env["XDG_CACHE_HOME"], "exchangefs", "autodiscover", ADDR + ".json")
    assert os.path.exists(cached)
    m3 = address_mount(world, env, tmp_path, name="m3", extra=["--ca-file", "/etc/ssl/certs/ca-certificates.crt"])
    m3.start(expect_mount=False)
    assert m3.proc.wait(60) != 0 and "not trusted" in m3.log_text()
    assert not os.path.exists(cached)


# ---- OAuth2 ------------------------------------------------------------------------

def oauth_args(world):
    return ["--oauth-authority", "https://login.example.test/", "--oauth-tenant", "contoso",
            "--oauth-client-id", "test-client", "--ca-file", world["srv"].ca_cert]


def login(world, env, approve=True, extra=(), debug=False):
    """exchangefs login, playing the user: read the code it prints, approve it at the server."""
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    p = subprocess.Popen([EXE, "login", *(["-d"] if debug else []), *oauth_args(world), *extra, ADDR],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                         stdin=subprocess.DEVNULL)
    first = p.stdout.readline()
    assert "https://login.example.test" in first and "/devicelogin" in first, first
    code = first.rsplit(" ", 1)[1].strip()
    world["srv"].control("POST", "oauth_approve", {"user_code": code, "deny": not approve})
    out, err = p.communicate(timeout=60)
    return p.returncode, first + out, err


def token_file(env):
    return os.path.join(env["XDG_CONFIG_HOME"], "exchangefs", "tokens", ADDR + ".json")


def test_device_code_login(world, env):
    world["srv"].control("POST", "oauth", {"slow_down": 1})
    before = world["srv"].control("GET", "oauth_state")
    rc, out, err = login(world, env)
    assert rc == 0, err
    assert "Signed in as alice@example.test" in out
    path = token_file(env)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(os.path.dirname(path))).st_mode) == 0o700
    tok = json.load(open(path))
    assert tok["access_token"].startswith("at-") and tok["refresh_token"].startswith("rt-")
    assert tok["token_endpoint"] == "https://login.example.test/contoso/oauth2/v2.0/token"
    st = world["srv"].control("GET", "oauth_state")
    # polled at least: once slowed down, once approved; never faster than the interval
    assert st["polls"] - before["polls"] >= 2 and st["too_fast"] == before["too_fast"]


def test_device_code_denied(world, env):
    rc, out, err = login(world, env, approve=False)
    assert rc != 0 and "access_denied" in err
    assert not os.path.exists(token_file(env))


def test_pkce_browser_login(world, env):
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    p = subprocess.Popen([EXE, "login", "--browser", *oauth_args(world), ADDR], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e, stdin=subprocess.DEVNULL)
    p.stdout.readline()
    url = p.stdout.readline().strip()
    assert url.startswith("https://login.example.test/contoso/oauth2/v2.0/authorize?"), url
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q["code_challenge_method"] == "S256" and q["login_hint"] == ADDR
    # the browser: the authority (reached by name, as the connect-to map says) redirects to the loopback
    ctx = ssl.create_default_context(cafile=world["srv"].ca_cert)
    conn = __import__("http.client").client.HTTPSConnection("127.0.0.1", world["srv"].port, context=ctx)
    conn.request("GET", url[len("https://login.example.test"):], headers={"Host": "login.example.test"})
    r = conn.getresponse()
    assert r.status == 302
    to = r.getheader("Location")
    assert to.startswith(q["redirect_uri"])
    # a stray request first (a favicon) is passed over
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(q["redirect_uri"].replace("localhost", "127.0.0.1") + "favicon.ico", timeout=30)
    assert e.value.code == 404
    page = urllib.request.urlopen(to.replace("localhost", "127.0.0.1"), timeout=30).read()
    assert b"sign-in finished" in page
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.load(open(token_file(env)))["access_token"].startswith("at-")


def oauth_mount(world, env, tmp_path, name="o", extra=()):
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    return Mount(str(tmp_path / name), EWS, ADDR, "unused", str(tmp_path / (name + "-cache")),
                 str(tmp_path / (name + ".log")), ca_file=world["srv"].ca_cert, env=e,
                 extra=["--sync-interval", "1", *extra])


class TokenMount(Mount):
    def argv(self):   # no password: the tokens of exchangefs login
        a = [EXE, "-f", "--url", self.url, "--cache-dir", self.cache_dir, "--ca-file", self.ca_file]
        return a + self.extra + [self.user, self.mountpoint]


def token_mount(world, env, tmp_path, name="o", extra=(), url=EWS):
    e = {k: v for k, v in env.items() if not k.startswith("_")}
    return TokenMount(str(tmp_path / name), url, ADDR, "unused", str(tmp_path / (name + "-cache")),
                      str(tmp_path / (name + ".log")), ca_file=world["srv"].ca_cert, env=e,
                      extra=["--sync-interval", "1", *extra])


def test_tokens_refresh_mid_sync_unnoticed(world, env, tmp_path):
    srv = world["srv"]
    srv.control("POST", "oauth", {"access_lifetime_s": 4})   # refreshed a second before expiry
    assert login(world, env)[0] == 0
    grants0 = srv.control("GET", "oauth_state")["grants"].get("refresh_token", 0)
    m = token_mount(world, env, tmp_path, extra=["--debug=http"]).start()
    try:
        m.wait_synced()
        # several lifetimes of syncing every second, then a revoked access token (401 mid-sync)
        time.sleep(6)
        srv.control("POST", "oauth_expire")
        subject = "after-refresh-%d" % time.time()
        srv.control("POST", "deliver", {"folder_path": "Inbox", "subject": subject})
        wait_for(lambda: any(subject in n for n in os.listdir(m.path("Inbox"))), 60,
                 what="the new message through refreshed tokens")
        grants = srv.control("GET", "oauth_state")["grants"].get("refresh_token", 0)
        assert grants - grants0 >= 2
        log = m.log_text()
        assert "Bearer token refused (HTTP 401)" in log
        assert "sign-in expired" not in log
        # the stored file follows the rotation
        assert json.load(open(token_file(env)))["refresh_token"].startswith("rt-")
    finally:
        m.stop()
    check_no_secrets(env, [m.log_path])


def test_tokens_rotated_by_another_process(world, env, tmp_path):
    """Another exchangefs of the same account refreshed first (spending the
    refresh token this mount holds) and wrote the file: the mount takes it."""
    srv = world["srv"]
    assert login(world, env)[0] == 0
    m = token_mount(world, env, tmp_path, extra=["--debug=http"]).start()
    try:
        m.wait_synced()
        path = token_file(env)
        ctx = ssl.create_default_context(cafile=srv.ca_cert)
        for attempt in range(10):
            srv.control("POST", "oauth_expire")
            tok = json.load(open(path))
            # the other process: a refresh grant, then the file written anew
            conn = __import__("http.client").client.HTTPSConnection("127.0.0.1", srv.port, context=ctx)
            conn.request("POST", "/contoso/oauth2/v2.0/token", urllib.parse.urlencode(
                {"grant_type": "refresh_token", "client_id": "test-client",
                 "refresh_token": tok["refresh_token"]}),
                {"Host": "login.example.test", "Content-Type": "application/x-www-form-urlencoded"})
            new = json.loads(conn.getresponse().read())
            conn.close()
            if "access_token" in new:
                break
            # the mount met the expired token and refreshed first (a busy
            # machine): its new tokens are in the file; again from there
            time.sleep(0.5)
        assert "access_token" in new, new
        tok.update(access_token=new["access_token"], refresh_token=new["refresh_token"],
                   obtained_at=int(time.time()), expires_at=int(time.time()) + new["expires_in"])
        with open(path + ".tmp", "w") as f:
            json.dump(tok, f)
        os.chmod(path + ".tmp", 0o600)
        os.replace(path + ".tmp", path)
        subject = "after-rotation-%d" % time.time()
        srv.control("POST", "deliver", {"folder_path": "Inbox", "subject": subject})
        wait_for(lambda: any(subject in n for n in os.listdir(m.path("Inbox"))), 60,
                 what="the new message with the other process's tokens")
        assert "the token file of alice@example.test changed: using its tokens" in m.log_text()
        assert "sign-in expired" not in m.log_text()
    finally:
        m.stop()


def test_revoked_refresh_token_one_clear_message(world, env, tmp_path):
    srv = world["srv"]
    assert login(world, env)[0] == 0
    srv.control("POST", "oauth_revoke")
    srv.control("POST", "oauth_expire")
    m = token_mount(world, env, tmp_path)
    m.start(expect_mount=False)
    rc = m.proc.wait(60)
    log = m.log_text()
    assert rc != 0
    lines = [l for l in log.splitlines() if l.startswith("exchangefs: ") and "warning" not in l]
    assert len(lines) == 1 and "sign-in expired: run exchangefs login alice@example.test" in lines[0], log
    assert not os.path.ismount(m.mountpoint)


def test_sign_in_again_while_mounted(world, env, tmp_path):
    """A refused refresh token mid-mount: the status says so, the cache stays
    readable, and after exchangefs login the mount carries on by itself."""
    srv = world["srv"]
    assert login(world, env)[0] == 0
    m = token_mount(world, env, tmp_path).start()
    try:
        m.wait_synced()
        srv.control("POST", "oauth_revoke")
        srv.control("POST", "oauth_expire")
        subject = "while-signed-out-%d" % time.time()
        srv.control("POST", "deliver", {"folder_path": "Inbox", "subject": subject})
        wait_for(lambda: "sign-in expired: run exchangefs login alice@example.test" in m.status(), 60,
                 what="the status to name the expired sign-in")
        assert os.listdir(m.path("Inbox"))            # the cache still serves
        assert login(world, env)[0] == 0
        wait_for(lambda: any(subject in n for n in os.listdir(m.path("Inbox"))), 90,
                 what="the message after signing in again")
        assert "signed in again" in m.log_text()
    finally:
        m.stop()


def test_oauth2_over_activesync(world, env, tmp_path):
    """Exchange Online's ActiveSync takes OAuth2 with the scope
    EAS.AccessAsUser.All: `login --protocol eas` asks for it, and a mount
    over ActiveSync signs in with the bearer token alone."""
    srv = world["srv"]
    assert login(world, env, extra=["--protocol", "eas"])[0] == 0
    assert any("EAS.AccessAsUser.All" in sc for sc in srv.control("GET", "oauth_state")["scopes"])
    m = token_mount(world, env, tmp_path, url="https://mail.example.test/Microsoft-Server-ActiveSync",
                    extra=["--protocol", "eas", "--auth", "oauth2"]).start()
    try:
        m.wait_synced()
        subject = "over-eas-%d" % time.time()
        srv.control("POST", "deliver", {"folder_path": "Inbox", "subject": subject})
        wait_for(lambda: any(subject in n for n in os.listdir(m.path("Inbox"))), 60,
                 what="new mail over ActiveSync with the token")
    finally:
        m.stop()


def test_not_signed_in(world, env, tmp_path):
    m = token_mount(world, env, tmp_path, extra=["--auth", "oauth2"])
    m.start(expect_mount=False)
    assert m.proc.wait(60) != 0
    assert "not signed in: run exchangefs login alice@example.test" in m.log_text()


# ---- NTLM and Kerberos -------------------------------------------------------------

@pytest.mark.parametrize("auth", ["ntlm", None])
def test_ntlm_sign_in(tmp_path, mount, auth):
    """The server verifies NTLMv2 (tests/server/ntlm.py); curl picks NTLM over Basic by itself too."""
    with EwsServer(messages=20, tls=True, user="alice", password=PASSWORD, extra_args=["--ntlm"]) as srv:
        m = mount(srv, extra=["--auth", auth] if auth else [])
        m.wait_synced()
        assert "Inbox" in os.listdir(m.mountpoint)
        m.stop()
        st = srv.control("GET", "ntlm_stats")
        assert st["authenticated"] >= 1 and st["refused"] == 0 and st["v1_refused"] == 0


def test_ntlm_wrong_password(tmp_path, mount):
    with EwsServer(messages=1, tls=True, user="alice", password=PASSWORD, extra_args=["--ntlm"]) as srv:
        m = mount(srv, password="wrong", extra=["--auth", "ntlm"], start=False)
        m.start(expect_mount=False)
        assert m.proc.wait(60) != 0
        assert "refused the user name or password" in m.log_text()
        assert srv.control("GET", "ntlm_stats")["refused"] >= 1



def test_kerberos_selects_gssapi_and_fails_clearly(tmp_path):
    with EwsServer(messages=1, tls=True, user=ADDR, password=PASSWORD,
                   extra_args=["--offer-negotiate"]) as srv:
        e = dict(os.environ, KRB5CCNAME="FILE:" + str(tmp_path / "no-ticket"), KRB5_CONFIG="/dev/null")
        e.pop("EXCHANGEFS_PASSWORD", None)
        (tmp_path / "mnt").mkdir()
        r = subprocess.run([EXE, "-f", "--url", srv.ews_url, "--auth", "kerberos", "--ca-file", srv.ca_cert,
                            "--cache-dir", str(tmp_path / "c"), ADDR, str(tmp_path / "mnt")],
                           capture_output=True, text=True, timeout=60, env=e, stdin=subprocess.DEVNULL)
        line = one_error_line(r)
        # curl went through GSS-API (which found no credentials), and says so
        assert "Kerberos sign-in failed" in line and "gss_init_sec_context" in line and "kinit" in line
        # no password was asked for or sent
        assert "Password" not in r.stderr
        assert srv.control("GET", "stats")["statuses"].get("401", 0) >= 1


# ---- secrets ------------------------------------------------------------------------

def check_no_secrets(env, logs):
    tok = json.load(open(token_file(env)))
    secrets = [PASSWORD, tok["access_token"], tok["refresh_token"]]
    for path in logs:
        text = open(path, errors="replace").read()
        for s in secrets:
            assert s not in text, "secret in " + path


def test_debug_traces_show_no_secrets(world, env, tmp_path):
    rc, out, err = login(world, env, debug=True)
    assert rc == 0
    assert "not shown: they carry secrets" in err
    tok = json.load(open(token_file(env)))
    for s in (tok["access_token"], tok["refresh_token"], "device_code"):
        assert s not in err
    rules(world, tls={"example.test": settings()})
    r = discover(world, env, extra=["-d"])
    assert PASSWORD not in r.stderr and "Authorization" not in r.stderr
