# Sign-in and discovery for the test EWS server: OAuth2 (an authority with
# device-code, authorization-code + PKCE and refresh grants, expiring access
# tokens, revocation) and Autodiscover (POX, the HTTP redirect method, v2
# JSON), answered by Host header from rules the tests set.
#
# HTTP (any tenant name):
#   POST /<tenant>/oauth2/v2.0/devicecode  client_id, scope -> device_code, user_code, ...
#   POST /<tenant>/oauth2/v2.0/token       grant_type = device_code | refresh_token |
#                                          authorization_code (+ code_verifier, S256)
#   GET  /<tenant>/oauth2/v2.0/authorize   the user approves at once: 302 to redirect_uri
#                                          with code and state
#   POST /autodiscover/autodiscover.xml    POX, by the rule for Host (+ path)
#   GET  /autodiscover/autodiscover.xml    the HTTP redirect method: the rule's "http_redirect"
#   GET  /autodiscover/autodiscover.json/v1.0/<address>?Protocol=EWS   v2, the rule's "json"
# Control (loopback only):
#   POST /control/oauth {access_lifetime_s?, interval_s?, slow_down?, device_expires_s?}
#   POST /control/oauth_approve {user_code, deny?}   the user's part of the device flow
#   POST /control/oauth_revoke       every refresh token refused from now on (invalid_grant)
#   POST /control/oauth_expire       every access token issued so far refused (401)
#   GET  /control/oauth_state        {grants: {type: n}, polls, pending, access_tokens, scopes, ...}
#   POST /control/autodiscover {rules: {"host" or "host/path?query": rule}}  (replaces all)
#   GET  /control/autodiscover_log   [{method, host, path, auth}] of every Autodiscover request
#   GET  /control/ntlm_stats         {negotiate, authenticated, refused, v1_refused} (--ntlm, ntlm.py)
# A rule: {"settings": {"ews_url", "mapi_url"?, "eas_url"?}} | {"redirect_addr": address} |
#         {"redirect_url": url} | {"status": n} | {"http_redirect": url, "http_status"?: 302} |
#         {"json": {...}}; POX answers need valid credentials unless "anonymous": true.

import base64
import hashlib
import json
import os
import secrets
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

AD_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AD_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.access_lifetime_s = 3600
        self.interval_s = 1
        self.slow_down = 0               # answer slow_down to the next n polls
        self.device_expires_s = 600
        self.access = {}                 # token -> expiry (time.time())
        self.refresh = set()
        self.revoked = False
        self.devices = {}                # device_code -> {user_code, state, last_poll}
        self.codes = {}                  # authorization code -> {challenge, redirect_uri}
        self.grants = {}
        self.scopes = []                # the scope of every devicecode/authorize/token request
        self.polls = 0
        self.poll_times = []
        self.too_fast = 0
        self.rules = {}
        self.ad_log = []

    def issue(self):
        acc, ref = "at-" + secrets.token_urlsafe(24), "rt-" + secrets.token_urlsafe(24)
        self.access[acc] = time.time() + self.access_lifetime_s
        self.refresh.add(ref)
        register_secret(acc)
        register_secret(ref)
        return {"token_type": "Bearer", "access_token": acc, "refresh_token": ref,
                "expires_in": self.access_lifetime_s, "scope": "EWS.AccessAsUser.All"}

    def bearer_ok(self, token):
        with self.lock:
            exp = self.access.get(token)
            return exp is not None and exp > time.time()


def register_secret(secret):
    """Tell the test session's log check (tests/logcheck.py) about a secret
    this server hands out: no log may ever show it."""
    d = os.environ.get("EXCHANGEFS_TEST_LOGS")
    if d and os.path.isdir(d):
        with open(os.path.join(d, "secrets"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"secret": secret, "user": None}) + "\n")


def _json(h, status, obj, headers=()):
    h.send(status, json.dumps(obj).encode(), "application/json", headers)


def _oauth_error(h, code, text=""):
    _json(h, 400, {"error": code, "error_description": text or code})


def route(h, method, url, body):
    """Answer the request if it is ours; True when answered."""
    path = url.path
    parts = path.split("/")
    st = h.server.signin
    if path.startswith("/control/"):
        name = path[len("/control/"):]
        if name not in ("oauth", "oauth_approve", "oauth_revoke", "oauth_expire", "oauth_state",
                        "autodiscover", "autodiscover_log", "ntlm_stats"):
            return False
        if not h.is_loopback():
            h.send(403, b"control interface is loopback-only", "text/plain")
            return True
        req = json.loads(body or b"{}") if method == "POST" else {}
        if name == "ntlm_stats":
            return _json(h, 200, dict(h.server.ntlm_stats)) or True
        _json(h, *control(st, name, req))
        return True
    if len(parts) == 5 and parts[2:4] == ["oauth2", "v2.0"]:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))) if method == "POST" else {}
        q = dict(urllib.parse.parse_qsl(url.query))
        with st.lock:
            oauth(h, st, parts[4], method, form, q)
        return True
    low = path.lower()
    if low.startswith("/autodiscover/"):
        host = (h.headers.get("Host") or "").split(":")[0].lower()
        with st.lock:
            st.ad_log.append({"method": method, "host": host, "path": path + ("?" + url.query if url.query else ""),
                              "auth": bool(h.headers.get("Authorization")), "tls": h.server.tls is not None})
            rule = st.rules.get(host + path + ("?" + url.query if url.query else "")) or st.rules.get(host)
        autodiscover(h, method, low, url, body, rule)
        return True
    return False


def control(st, name, req):
    with st.lock:
        if name == "oauth":
            for k in ("access_lifetime_s", "interval_s", "slow_down", "device_expires_s"):
                if k in req:
                    setattr(st, k, int(req[k]))
            return 200, {"access_lifetime_s": st.access_lifetime_s, "interval_s": st.interval_s}
        if name == "oauth_approve":
            for d in st.devices.values():
                if d["user_code"] == req.get("user_code"):
                    d["state"] = "denied" if req.get("deny") else "approved"
                    return 200, {"ok": True}
            return 404, {"error": "no such user code"}
        if name == "oauth_revoke":
            st.revoked = True
            st.refresh.clear()
            return 200, {"ok": True}
        if name == "oauth_expire":
            n = len(st.access)
            st.access.clear()
            return 200, {"expired": n}
        if name == "oauth_state":
            return 200, {"grants": dict(st.grants), "polls": st.polls, "too_fast": st.too_fast,
                         "pending": [d["user_code"] for d in st.devices.values() if d["state"] == "pending"],
                         "access_tokens": len(st.access), "refresh_tokens": len(st.refresh),
                         "scopes": list(st.scopes)}
        if name == "autodiscover":
            st.rules = {k.lower() if "/" not in k else k.split("/", 1)[0].lower() + "/" + k.split("/", 1)[1]: v
                        for k, v in (req.get("rules") or {}).items()}
            st.ad_log = []
            return 200, {"rules": len(st.rules)}
        if name == "autodiscover_log":
            return 200, list(st.ad_log)
    return 404, {"error": name}


def oauth(h, st, what, method, form, q):
    st.grants[what] = st.grants.get(what, 0) + 1
    scope = form.get("scope") or q.get("scope")
    if scope:
        st.scopes.append(scope)
    if what == "devicecode" and method == "POST":
        if not form.get("client_id"):
            return _oauth_error(h, "invalid_request", "client_id missing")
        dc, uc = secrets.token_urlsafe(32), secrets.token_hex(4).upper()
        register_secret(dc)
        st.devices[dc] = {"user_code": uc, "state": "pending", "last_poll": 0.0,
                          "expires": time.time() + st.device_expires_s}
        host = h.headers.get("Host") or "localhost"
        return _json(h, 200, {"device_code": dc, "user_code": uc,
                              "verification_uri": f"https://{host}/devicelogin",
                              "expires_in": st.device_expires_s, "interval": st.interval_s,
                              "message": f"open https://{host}/devicelogin and enter {uc}"})
    if what == "authorize" and method == "GET":
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return h.send(400, b"PKCE S256 required", "text/plain")
        code = "ac-" + secrets.token_urlsafe(16)
        st.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q.get("redirect_uri", "")}
        to = q.get("redirect_uri", "") + "?" + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        return h.send(302, b"", "text/plain", [("Location", to)])
    if what != "token" or method != "POST":
        return h.send(404, b"not found", "text/plain")
    grant = form.get("grant_type", "")
    st.grants[grant] = st.grants.get(grant, 0) + 1
    if grant == "urn:ietf:params:oauth:grant-type:device_code":
        d = st.devices.get(form.get("device_code", ""))
        if d is None:
            return _oauth_error(h, "invalid_grant", "unknown device code")
        now = time.time()
        st.polls += 1
        st.poll_times.append(now)
        if d["last_poll"] and now - d["last_poll"] < st.interval_s * 0.9:
            st.too_fast += 1
        d["last_poll"] = now
        if now > d["expires"]:
            return _oauth_error(h, "expired_token")
        if st.slow_down > 0:
            st.slow_down -= 1
            return _oauth_error(h, "slow_down")
        if d["state"] == "pending":
            return _oauth_error(h, "authorization_pending", "the user has not signed in yet")
        if d["state"] == "denied":
            return _oauth_error(h, "access_denied", "the user declined")
        del st.devices[form["device_code"]]
        st.revoked = False
        return _json(h, 200, st.issue())
    if grant == "refresh_token":
        rt = form.get("refresh_token", "")
        if st.revoked or rt not in st.refresh:
            return _oauth_error(h, "invalid_grant", "AADSTS50173: the refresh token was revoked")
        st.refresh.discard(rt)              # rotated, as Entra ID does
        return _json(h, 200, st.issue())
    if grant == "authorization_code":
        c = st.codes.pop(form.get("code", ""), None)
        if c is None:
            return _oauth_error(h, "invalid_grant", "unknown code")
        verifier = form.get("code_verifier", "")
        want = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if want != c["challenge"] or form.get("redirect_uri") != c["redirect_uri"]:
            return _oauth_error(h, "invalid_grant", "PKCE verification failed")
        st.revoked = False
        return _json(h, 200, st.issue())
    return _oauth_error(h, "unsupported_grant_type", grant)


def _pox(body_xml):
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{AD_NS}">\n'
            f'<Response xmlns="{AD_OUTLOOK_NS}">{body_xml}</Response></Autodiscover>\n').encode()


def autodiscover(h, method, low, url, body, rule):
    if rule is None:
        return h.send(404, b"<html><body>404 Not Found</body></html>", "text/html")
    if "status" in rule:
        return h.send(int(rule["status"]), b"", "text/html")
    if low.startswith("/autodiscover/autodiscover.json/"):
        if "json" not in rule:
            return h.send(404, b"", "text/html")
        return _json(h, 200, rule["json"])
    if low != "/autodiscover/autodiscover.xml":
        return h.send(404, b"", "text/html")
    if method == "GET":
        if "http_redirect" in rule:
            return h.send(int(rule.get("http_status", 302)), b"", "text/html",
                          [("Location", rule["http_redirect"])])
        return h.send(404, b"", "text/html")
    if not any(k in rule for k in ("settings", "redirect_addr", "redirect_url", "error")):
        return h.send(404, b"", "text/html")
    if not rule.get("anonymous") and not h.authorized():
        return h.unauthorized()
    if "redirect_url" in rule and rule.get("http_status"):
        return h.send(int(rule["http_status"]), b"", "text/html", [("Location", rule["redirect_url"])])
    acct = "<Account><AccountType>email</AccountType>"
    if "settings" in rule:
        s = rule["settings"]
        acct += "<Action>settings</Action>"
        acct += ("<Protocol><Type>EXCH</Type><Server>mbx.internal</Server>"
                 f"<EwsUrl>{escape(s.get('internal_ews_url', s['ews_url']))}</EwsUrl></Protocol>")
        acct += f"<Protocol><Type>EXPR</Type><EwsUrl>{escape(s['ews_url'])}</EwsUrl></Protocol>"
        if s.get("mapi_url"):
            acct += (f'<Protocol Type="mapiHttp" Version="1"><MailStore><ExternalUrl>{escape(s["mapi_url"])}'
                     "</ExternalUrl></MailStore></Protocol>")
        if s.get("eas_url"):
            acct += f"<Protocol><Type>MobileSync</Type><Url>{escape(s['eas_url'])}</Url></Protocol>"
    elif "redirect_addr" in rule:
        acct += f"<Action>redirectAddr</Action><RedirectAddr>{escape(rule['redirect_addr'])}</RedirectAddr>"
    elif "redirect_url" in rule:
        acct += f"<Action>redirectUrl</Action><RedirectUrl>{escape(rule['redirect_url'])}</RedirectUrl>"
    elif "error" in rule:
        return h.send(200, _pox(f"<Error><ErrorCode>{int(rule['error'])}</ErrorCode>"
                                f"<Message>{escape(rule.get('message', 'error'))}</Message></Error>"))
    acct += "</Account>"
    return h.send(200, _pox("<User><DisplayName>Test User</DisplayName></User>" + acct))
