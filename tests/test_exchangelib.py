# The independent client: Debian's python3-exchangelib (4.9) talks to the test
# EWS server the way it talks to Exchange, and what it sees must match the
# server's own view (control API). Keeps the server honest about the wire.

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))

from harness import EwsServer  # noqa: E402

exchangelib = pytest.importorskip("exchangelib")
import requests.adapters  # noqa: E402
from exchangelib import (BASIC, DELEGATE, Account, Configuration, Credentials,  # noqa: E402
                         FaultTolerance, Version)
from exchangelib.errors import ErrorInvalidSyncStateData, ErrorItemNotFound  # noqa: E402
from exchangelib.protocol import BaseProtocol  # noqa: E402
from exchangelib.version import EXCHANGE_2013_SP1  # noqa: E402


def account(srv):
    cfg = Configuration(service_endpoint=srv.ews_url, credentials=Credentials(srv.user, srv.password),
                        auth_type=BASIC, version=Version(build=EXCHANGE_2013_SP1))
    return Account("alice@example.com", config=cfg, autodiscover=False, access_type=DELEGATE)


@pytest.fixture(scope="module")
def srv():
    with EwsServer(messages=400, seed=4) as s:
        yield s


@pytest.fixture(scope="module")
def acc(srv):
    return account(srv)


def over_xml(subject):
    """A subject as an XML client ends up with it: newlines folded, and the
    characters XML 1.0 forbids (sent as &#x1; like Exchange) dropped by
    exchangelib's recovering parser; an empty element reads as None."""
    if not subject:
        return None
    s = subject.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in s if c in "\t\n" or ord(c) >= 0x20)


def dump_below_msgroot(srv):
    folders = srv.mailbox()["folders"]
    msgroot = [f for f in folders if f["distinguished"] == "msgfolderroot"][0]
    return msgroot, {f["id"]: f for f in folders if f["distinguished"] not in ("root", "msgfolderroot")}


def test_folder_tree_matches(acc, srv):
    msgroot, want = dump_below_msgroot(srv)
    assert acc.msg_folder_root.id == msgroot["id"]
    got = {f.id: f for f in acc.msg_folder_root.walk()}
    assert set(got) == set(want)
    for fid, f in got.items():
        assert f.name == want[fid]["name"]
        assert f.parent.id == want[fid]["parent_id"]
        assert f.total_count == want[fid]["total"]
        assert f.child_folder_count == want[fid]["child_folder_count"]
    assert (acc.msg_folder_root / "Inbox" / "Projects" / "2026").id == srv.folder("Inbox/Projects/2026")["id"]
    assert acc.inbox.unread_count == srv.folder("Inbox")["unread"]
    assert {f.name: f.folder_class for f in got.values()}["Calendar"] == "IPF.Appointment"


def test_sync_hierarchy_matches(acc, srv):
    _, want = dump_below_msgroot(srv)
    changes = list(acc.msg_folder_root.sync_hierarchy())
    assert {kind for kind, _ in changes} == {"create"}
    assert {f.id for _, f in changes} == set(want)
    state = acc.msg_folder_root.folder_sync_state
    assert list(acc.msg_folder_root.sync_hierarchy(sync_state=state)) == []


def test_sync_items_matches_and_follows_changes(acc, srv):
    want = {it["id"]: over_xml(it["subject"]) for it in srv.mailbox()["items"]
            if it["folder_id"] == srv.folder("Inbox")["id"]}
    assert len(want) > 150
    changes = list(acc.inbox.sync_items(only_fields=["subject", "is_read"], max_changes_returned=50))
    assert {kind for kind, _ in changes} == {"create"}
    got = {item.id: item.subject for _, item in changes}
    assert got == want
    state = acc.inbox.item_sync_state
    assert list(acc.inbox.sync_items(sync_state=state)) == []

    new = srv.deliver("Inbox", subject="Hello from the control API")
    old = srv.folder("Inbox")["items"][-1]
    srv.mark_read(old, not srv.item_info(old)["is_read"])
    gone = srv.folder("Inbox")["items"][-2]
    srv.delete(gone)
    changes = list(acc.inbox.sync_items(sync_state=state, only_fields=["subject"]))
    by_kind = {}
    for kind, x in changes:
        by_kind.setdefault(kind, []).append(x)
    assert [i.id for i in by_kind["create"]] == [new]
    assert by_kind["create"][0].subject == "Hello from the control API"
    assert [(i.id, r) for i, r in by_kind["read_flag_change"]] == [(old, srv.item_info(old)["is_read"])]
    assert [i.id for i in by_kind["delete"]] == [gone]


def test_find_items_matches(acc, srv):
    inbox = srv.folder("Inbox")
    items = list(acc.inbox.all().only("subject", "datetime_received"))
    assert [i.id for i in items] == inbox["items"]          # FindItem pages of 100, newest first
    assert acc.inbox.all().count() == inbox["total"]


def test_fetch_mime_and_headers(acc, srv):
    ids = srv.folder("Inbox/Projects")["items"][:5]
    for item in acc.fetch(ids=[(i, None) for i in ids], only_fields=["mime_content", "subject", "author"]):
        assert item.mime_content == srv.item_mime(item.id)
        info = srv.item_info(item.id)
        assert item.subject == info["subject"] and item.author.email_address == info["from_addr"]
    full = list(acc.fetch(ids=[(ids[0], None), ("AAMk" + "A" * 100, None)]))
    assert full[0].datetime_received.timestamp() == srv.item_info(ids[0])["received"]
    assert full[0].body and full[0].to_recipients[0].email_address == "alice@example.com"
    assert isinstance(full[1], ErrorItemNotFound)


def test_invoice_marker_via_exchangelib(acc, srv):
    [iid] = srv.markers()["invoice 4711"]
    [item] = acc.fetch(ids=[(iid, None)], only_fields=["mime_content"])
    assert b"invoice 4711" in item.mime_content
    assert srv.find("invoice 4711") == [iid]


def test_invalid_sync_state(srv):
    acc = account(srv)
    folder = acc.root / "Top of Information Store" / "Junk Email"
    list(folder.sync_items(only_fields=["subject"]))
    state = folder.item_sync_state
    srv.invalidate_sync_states()
    with pytest.raises(ErrorInvalidSyncStateData):
        list(folder.sync_items(sync_state=state, only_fields=["subject"]))


def test_busy_back_off_is_honoured(srv):
    acc = account(srv)
    saved = acc.protocol.config.retry_policy        # protocols are cached per endpoint: restore it
    acc.protocol.config.retry_policy = FaultTolerance(max_wait=30)
    iid = srv.folder("Drafts")["items"][0]
    srv.reset_stats()
    srv.fault("busy", count=1, operation="GetItem", backoff_ms=700)
    try:
        [item] = acc.fetch(ids=[(iid, None)], only_fields=["subject"])
    finally:
        acc.protocol.config.retry_policy = saved
    assert item.subject == srv.item_info(iid)["subject"]
    recent = [r for r in srv.stats()["recent"] if r["op"] == "GetItem"]
    assert [r["status"] for r in recent] == [500, 200]
    assert recent[1]["t"] - recent[0]["end"] >= 0.65


class CaAdapter(requests.adapters.HTTPAdapter):
    ca = None

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn=conn, url=url, verify=self.ca, cert=cert)


def test_tls_with_verified_certificate():
    with EwsServer(messages=30, seed=9, tls=True) as s:
        CaAdapter.ca = s.ca_cert
        saved = BaseProtocol.HTTP_ADAPTER_CLS
        BaseProtocol.HTTP_ADAPTER_CLS = CaAdapter
        try:
            acc = account(s)
            changes = list(acc.inbox.sync_items(only_fields=["subject"]))
            assert {x.id for _, x in changes} == set(s.folder("Inbox")["items"])
        finally:
            BaseProtocol.HTTP_ADAPTER_CLS = saved
        st = s.stats()
        assert st["connections"] <= 2 < st["total"]          # keep-alive: connections are reused
