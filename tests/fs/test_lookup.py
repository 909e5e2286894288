"""test_lookup.py - `exchangefs lookup [ACCOUNT|ADDRESS] NAME`: the address
book through EWS ResolveNames and ActiveSync ResolveRecipients, against the
test server (both protocols: one match, several, none, an exact address,
an account of the accounts file, an address alone (Autodiscover), a
wrong password, a server that is down,
usage errors) and against SOGo 5.8 over ActiveSync (its own users: SOGo's
ResolveRecipients resolves a login or an exact address; part of a name is
found by the directory search that follows when it finds no one).

Output: one "Display Name <address>" per match on stdout, exit 0; no match:
one line on stderr, exit 1; usage: exit 2; a server that cannot be asked:
one line on stderr, exit 3."""
import os
import subprocess

import pytest

from mountlib import EXE
from servers import make_target

SENDERS = ["Bob Smith <bob@example.com>", '"Smith, Erin" <erin@example.com>',
           "Carol Jones <carol@example.org>"]


def run(args, tmp_path, env=None, timeout=120):
    e = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), XDG_CACHE_HOME=str(tmp_path / "xcache"))
    e.pop("EXCHANGEFS_PASSWORD", None)
    e.update(env or {})
    return subprocess.run([EXE, "lookup", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=e)


def one_line(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("exchangefs: ")
    return lines[0]


def password_file(tmp_path, password, name="password"):
    p = tmp_path / name
    p.write_text(password + "\n")
    os.chmod(p, 0o600)
    return str(p)


def server_args(target, tmp_path, password=None):
    return ["--url", target.url, "--user", target.srv.user, *target.args,
            "--password-file", password_file(tmp_path, password or target.srv.password)]


@pytest.fixture(params=["ews", "eas"])
def book(request):
    """The test server over one protocol, its address book made of the
    owner (Alice Example) and the senders of three delivered messages."""
    t = make_target(request.param, messages=0)
    for frm in SENDERS:
        t.srv.deliver(mime=(f"From: {frm}\r\nTo: alice@example.com\r\nSubject: hello\r\n"
                            "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n").encode())
    yield t
    t.close()


def test_one_several_none(book, tmp_path):
    args = server_args(book, tmp_path)
    r = run([*args, "carol"], tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "Carol Jones <carol@example.org>\n", "")
    # several: a name that needs quoting is quoted, so each line is an address
    r = run([*args, "Smith"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Bob Smith <bob@example.com>", '"Smith, Erin" <erin@example.com>']
    # an exact address is that one person, not everyone whose address starts so
    r = run([*args, "alice@example.com"], tmp_path)
    assert (r.returncode, r.stdout) == (0, "Alice Example <alice@example.com>\n")
    r = run([*args, "nobody-by-that-name"], tmp_path)
    assert (r.returncode, r.stdout) == (1, "")
    assert "no one in the address book matches 'nobody-by-that-name'" in one_line(r)


def test_account_of_the_accounts_file(book, tmp_path):
    d = tmp_path / "xdg" / "exchangefs"
    d.mkdir(parents=True)
    proto = "".join(f"{k.lstrip('-')} = {v}\n" for k, v in zip(book.args[::2], book.args[1::2]))
    (d / "config").write_text(f"[work]\nurl = {book.url}\nuser = {book.srv.user}\n"
                              f"password-file = {password_file(tmp_path, book.srv.password)}\n"
                              f"mountpoint = {tmp_path}/mnt\n{proto}")
    r = run(["work", "bob"], tmp_path)
    assert (r.returncode, r.stdout) == (0, "Bob Smith <bob@example.com>\n"), r.stderr
    # a lone argument is the name, even when an account has it as its name
    r = run(["--account", "work", "work"], tmp_path)
    assert r.returncode == 1 and "matches 'work'" in one_line(r)


def test_wrong_password_and_server_down(book, tmp_path):
    r = run([*server_args(book, tmp_path, password="not-the-password"), "carol"], tmp_path)
    assert (r.returncode, r.stdout) == (3, "")
    line = one_line(r)
    assert "not-the-password" not in line
    assert any(w in line.lower() for w in ("password", "sign", "auth", "401")), line
    args = server_args(book, tmp_path)
    book.srv.stop()
    r = run([*args, "--timeout", "5", "carol"], tmp_path)
    assert (r.returncode, r.stdout) == (3, "")
    assert "cannot reach" in one_line(r)


def test_address_alone_finds_the_server(tmp_path):
    """`lookup ADDRESS NAME` with no --url: Autodiscover finds the server,
    as for a mount by address (test_signin.py's names, DNS and servers)."""
    from test_signin import ADDR, NAMES, PASSWORD, settings
    from harness import EwsServer
    with EwsServer(messages=0, tls=True, tls_names=NAMES, user=ADDR, password=PASSWORD) as srv:
        srv.control("POST", "autodiscover", {"rules": {"autodiscover.example.test": settings()}})
        connect = ",".join(f"{n}:443:127.0.0.1:{srv.port}" for n in NAMES)
        r = run(["--ca-file", srv.ca_cert, "--password-file", password_file(tmp_path, PASSWORD),
                 ADDR, ADDR], tmp_path, env={"EXCHANGEFS_CONNECT_TO": connect})
        assert (r.returncode, r.stdout) == (0, f"Alice Example <{ADDR}>\n"), r.stderr


@pytest.mark.parametrize("args, words", [
    ([], "needs a name"),
    (["a", "b", "c"], "[ACCOUNT|ADDRESS] NAME"),
    (["--url", "https://x/", "--user", "a", "--bogus", "n"], "unknown option"),
    (["--url", "https://x/", "--user", "a", "--protocol", "imap", "n"], "not supported"),
    (["--url", "https://x/", "n"], "--user is required"),
    (["--url", "https://x/", "--user", "a", "--password-command", "echo x", "n" * 1025], "at most 1024 bytes"),
])
def test_usage_errors(args, words, tmp_path):
    r = run(args, tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert words in one_line(r)


@pytest.mark.parametrize("kind", ["sogo"])     # "sogo": the one worker that runs SOGo tests
def test_sogo(kind, tmp_path):
    """SOGo 5.8 answers ResolveRecipients only with Availability asked for
    (exchangefs asks again so) and resolves a login or an exact address
    of its user table; part of a name is found by GAL Search."""
    t = make_target(kind, sogo_messages=0)
    try:
        other = make_target(kind, sogo_messages=0)
    except BaseException:
        t.close()
        raise
    try:
        args = server_args(t, tmp_path)
        user = other.srv.user
        want = f"Test User {user} <{user}@example.test>\n"
        r = run([*args, user], tmp_path)
        assert (r.returncode, r.stdout) == (0, want), r.stderr
        r = run([*args, f"{user}@example.test"], tmp_path)
        assert (r.returncode, r.stdout) == (0, want), r.stderr
        # part of a name: ResolveRecipients finds no one on SOGo, the
        # directory search (GAL) does; SOGo gives it the address alone
        r = run([*args, user[:-2]], tmp_path)
        assert r.returncode == 0, r.stderr
        assert f"{user}@example.test" in r.stdout.splitlines()
        r = run([*args, "nobody-by-that-name"], tmp_path)
        assert r.returncode == 1 and "no one in the address book" in one_line(r)
    finally:
        other.close()
        t.close()
