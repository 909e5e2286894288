"""test_server_write.py - the test server's EWS write operations (CreateItem,
SendItem, UpdateItem, DeleteItem, MoveItem/CopyItem, folder writes,
FindItem restrictions) with Exchange's response codes, driven with raw SOAP
and exchangelib.  Shares the SOAP client and fixtures of test_server.py."""
import base64
import http.client
import os
import socket
import sys
import time
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))

from harness import ControlError, EwsServer  # noqa: E402
from test_server import (ENVELOPE, ITEM_FIELDS, NS, T, Ews, ews, folder_id,  # noqa: E402,F401
                         messages, srv, sync_all, sync_hierarchy, sync_items)

# ---- write operations -----------------------------------------------------------------------

TOKEN_URI = ('<t:ExtendedFieldURI PropertySetId="3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43" '
             'PropertyName="ExchangefsToken" PropertyType="String"/>')
FLAGS_URI = '<t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/>'
DELIVERY_URI = '<t:ExtendedFieldURI PropertyTag="0x0E06" PropertyType="SystemTime"/>'


def eml(subject="Write test", to="Bob <bob@example.com>", cc=None, bcc=None, mid=True, date=True, body="Hello.\r\n"):
    head = "From: Alice Example <alice@example.com>\r\n"
    head += f"To: {to}\r\n" if to else ""
    head += f"Cc: {cc}\r\n" if cc else ""
    head += f"Bcc: {bcc}\r\n" if bcc else ""
    head += f"Subject: {subject}\r\n"
    head += "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n" if date else ""
    head += f"Message-ID: <{subject.replace(' ', '.')}.{time.time_ns()}@example.com>\r\n" if mid else ""
    return (head + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def ext_prop(uri, value):
    return f"<t:ExtendedProperty>{uri}<t:Value>{value}</t:Value></t:ExtendedProperty>"


def message_xml(mime, token=None, props=""):
    tok = ext_prop(TOKEN_URI, token) if token else ""
    return (f'<t:Message><t:MimeContent CharacterSet="UTF-8">{base64.b64encode(mime).decode()}</t:MimeContent>'
            f"{tok}{props}</t:Message>")


def create_xml(messages_xml, disposition="SaveOnly", folder=None):
    attr = f' MessageDisposition="{disposition}"' if disposition else ""
    saved = f"<m:SavedItemFolderId>{folder}</m:SavedItemFolderId>" if folder else ""
    return f"<m:CreateItem{attr}>{saved}<m:Items>{messages_xml}</m:Items></m:CreateItem>"


def call(ews, body):
    """Response messages of one operation: [(code, element)]."""
    return [(x.findtext("m:ResponseCode", namespaces=NS), x) for x in messages(ews.call(body))]


def codes(ews, body):
    return [c for c, _ in call(ews, body)]


def new_ids(msg):
    """(Id, ChangeKey) of the items (or folders) a response message returns."""
    out = []
    for container in ("m:Items", "m:Folders"):
        c = msg.find(container, NS)
        if c is not None:
            for x in c:
                ref = x.find("t:ItemId", NS)
                if ref is None:
                    ref = x.find("t:FolderId", NS)
                out.append((ref.get("Id"), ref.get("ChangeKey")))
    return out


def create(ews, mime, disposition="SaveOnly", folder=None, token=None, props=""):
    [(code, msg)] = call(ews, create_xml(message_xml(mime, token, props), disposition, folder))
    assert code == "NoError", ET.tostring(msg)[:600]
    ids = new_ids(msg)
    return ids[0] if ids else None


def item_ref(iid, ck=None):
    return f'<t:ItemId Id="{iid}"' + (f' ChangeKey="{ck}"/>' if ck else "/>")


def find_xml(folder, restriction, fields="", traversal="Shallow"):
    return (f'<m:FindItem Traversal="{traversal}"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            f"<t:AdditionalProperties>{fields}</t:AdditionalProperties></m:ItemShape>"
            + (f"<m:Restriction>{restriction}</m:Restriction>" if restriction else "")
            + f"<m:ParentFolderIds>{folder}</m:ParentFolderIds></m:FindItem>")


def find_ids(ews, folder, restriction, traversal="Shallow"):
    [(code, msg)] = call(ews, find_xml(folder, restriction, traversal=traversal))
    assert code == "NoError", code
    return [x.find("t:ItemId", NS).get("Id") for x in msg.find("m:RootFolder/t:Items", NS)]


def equal_to(uri, value):
    return (f"<t:IsEqualTo>{uri}<t:FieldURIOrConstant><t:Constant Value=\"{value}\"/></t:FieldURIOrConstant>"
            "</t:IsEqualTo>")


def set_field(uri, value_xml, elem="Message"):
    return f'<t:SetItemField><t:FieldURI FieldURI="{uri}"/><t:{elem}>{value_xml}</t:{elem}></t:SetItemField>'


def update_xml(iid, ck, updates, mode=None, disposition="SaveOnly"):
    attrs = f' MessageDisposition="{disposition}"' if disposition else ""
    attrs += f' ConflictResolution="{mode}"' if mode else ""
    return (f"<m:UpdateItem{attrs}><m:ItemChanges><t:ItemChange>{item_ref(iid, ck)}<t:Updates>{updates}"
            "</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>")


def update(ews, iid, ck, updates, mode=None):
    [(code, msg)] = call(ews, update_xml(iid, ck, updates, mode))
    return code, msg


def get_items(ews, ids, fields="", base="IdOnly"):
    refs = "".join(item_ref(i) for i in ids)
    return call(ews, f"""<m:GetItem><m:ItemShape><t:BaseShape>{base}</t:BaseShape>
  <t:AdditionalProperties>{fields}</t:AdditionalProperties></m:ItemShape>
  <m:ItemIds>{refs}</m:ItemIds></m:GetItem>""")


DRAFTS = '<t:DistinguishedFolderId Id="drafts"/>'


def test_create_item_save_only_makes_a_draft(ews, srv):
    drafts = folder_id(srv, "Drafts")
    _, state, _ = sync_all(ews, drafts)
    raw = eml("Draft one")
    iid, ck = create(ews, raw, token="tok-draft-1")
    info = srv.item_info(iid)
    assert info["folder_path"] == "Drafts" and info["change_key"] == ck
    assert info["is_draft"] and info["is_read"] and info["token"] == "tok-draft-1"
    assert info["subject"] == "Draft one" and info["from_addr"] == "alice@example.com"
    assert info["message_id"].startswith("<Draft.one.") and info["size"] > len(raw)
    assert info["sent"] == 1793613600                          # DateTimeSent from the Date header
    assert abs(info["received"] - time.time()) < 60             # DateTimeReceived: now
    assert srv.item_mime(iid) == raw                            # the exact bytes
    changes, state, _ = sync_items(ews, drafts, state)
    assert [(k, i) for k, i, _ in changes] == [("Create", iid)]
    # no Message-ID: Exchange makes one up; the MIME stays as written
    raw2 = eml("Draft two", mid=False)
    iid2, _ = create(ews, raw2, folder='<t:DistinguishedFolderId Id="drafts"/>')
    info2 = srv.item_info(iid2)
    assert info2["message_id"].startswith("<") and info2["message_id"].endswith(">")
    assert srv.item_mime(iid2) == raw2 and info2["token"] is None
    [(code, msg)] = get_items(ews, [iid2], '<t:FieldURI FieldURI="message:InternetMessageId"/>'
                              '<t:FieldURI FieldURI="item:IsDraft"/><t:FieldURI FieldURI="message:IsRead"/>')
    item = msg.find("m:Items/t:Message", NS)
    assert item.findtext("t:InternetMessageId", namespaces=NS) == info2["message_id"]
    assert item.findtext("t:IsDraft", namespaces=NS) == "true"
    assert item.findtext("t:IsRead", namespaces=NS) == "true"


def test_create_item_with_message_flags_and_delivery_time(ews, srv):
    archive = folder_id(srv, "Archive")
    folder = f'<t:FolderId Id="{archive}"/>'
    read_id, _ = create(ews, eml("Imported read"), folder=folder, token="tok-imp-1",
                        props=ext_prop(FLAGS_URI, 1) + ext_prop(DELIVERY_URI, "2025-03-04T05:06:07Z"))
    unread_id, _ = create(ews, eml("Imported unread"), folder=folder,
                          props=ext_prop(FLAGS_URI, 0) + ext_prop(DELIVERY_URI, "2025-03-04T07:06:07.500+02:00"))
    draft_id, _ = create(ews, eml("Imported draft"), folder='<t:DistinguishedFolderId Id="inbox"/>',
                         props=ext_prop(FLAGS_URI, 9))
    r, u, d = srv.item_info(read_id), srv.item_info(unread_id), srv.item_info(draft_id)
    assert (r["is_draft"], r["is_read"], r["folder_path"]) == (False, True, "Archive")
    assert (u["is_draft"], u["is_read"]) == (False, False)
    assert (d["is_draft"], d["is_read"], d["folder_path"]) == (True, True, "Inbox")
    assert r["received_iso"] == "2025-03-04T05:06:07Z" and u["received"] == r["received"]
    assert r["ext"] == [{"set": "guid:3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43", "prop": "name:ExchangefsToken",
                         "type": "String", "value": "tok-imp-1"}]     # computed tags are not stored
    # extended properties come back when asked for, computed ones too
    [(code, msg)] = get_items(ews, [read_id], TOKEN_URI + FLAGS_URI + DELIVERY_URI)
    got = {}
    for p in msg.iter(T + "ExtendedProperty"):
        uri = p.find("t:ExtendedFieldURI", NS)
        got[uri.get("PropertyName") or uri.get("PropertyTag")] = p.findtext("t:Value", namespaces=NS)
    assert got == {"ExchangefsToken": "tok-imp-1", "0xe07": "1", "0xe06": "2025-03-04T05:06:07Z"}
    [(code, msg)] = get_items(ews, [unread_id], TOKEN_URI)      # an item without it: no element
    assert code == "NoError" and msg.find(".//t:ExtendedProperty", NS) is None


def test_create_item_send(ews, srv):
    srv.clear_sent()
    before = len(srv.mailbox()["items"])
    raw = eml("Sent only", to="Bob <bob@example.com>, carol@example.org", cc="dave@example.net",
              bcc="eve@example.com")
    [(code, msg)] = call(ews, create_xml(message_xml(raw, "tok-send-1"), "SendOnly"))
    assert code == "NoError" and len(msg.find("m:Items", NS)) == 0     # no id for a send
    assert len(srv.mailbox()["items"]) == before                        # nothing saved
    [sent] = srv.sent()
    assert sent["recipients"] == ["bob@example.com", "carol@example.org", "dave@example.net", "eve@example.com"]
    assert sent["token"] == "tok-send-1" and sent["subject"] == "Sent only" and sent["saved_id"] is None
    assert base64.b64decode(sent["mime_b64"]) == raw and sent["mime"] == raw.decode()
    assert abs(sent["time"] - time.time()) < 60
    # SendAndSaveCopy: a copy in Sent Items (no draft, read), Message-ID and Date stamped if absent
    sent_items = folder_id(srv, "Sent Items")
    _, state, _ = sync_all(ews, sent_items)
    raw = eml("Sent and saved", mid=False, date=False)
    assert create(ews, raw, "SendAndSaveCopy", token="tok-send-2") is None
    rec = srv.sent()[-1]
    copy = srv.item_info(rec["saved_id"])
    assert (copy["folder_path"], copy["is_draft"], copy["is_read"], copy["token"]) == \
        ("Sent Items", False, True, "tok-send-2")
    stamped = base64.b64decode(rec["mime_b64"])
    assert stamped.endswith(raw) and b"Message-ID: <" in stamped and b"\r\nDate: " in stamped
    assert srv.item_mime(rec["saved_id"]) == stamped and copy["message_id"] == rec["message_id"]
    changes, _, _ = sync_items(ews, sent_items, state)
    assert [(k, i) for k, i, _ in changes] == [("Create", rec["saved_id"])]
    # a display name that holds a comma once decoded (RFC 2047) is no second recipient
    name = "=?UTF-8?B?" + base64.b64encode("Smith, Érin".encode()).decode() + "?="
    create(ews, eml("Encoded name", to=f"{name} <erin@example.com>"), "SendOnly")
    assert srv.sent()[-1]["recipients"] == ["erin@example.com"]
    # SavedItemFolderId names the folder of the copy
    create(ews, eml("Saved elsewhere"), "SendAndSaveCopy", f'<t:FolderId Id="{folder_id(srv, "Archive")}"/>')
    assert srv.item_info(srv.sent()[-1]["saved_id"])["folder_path"] == "Archive"
    assert len(srv.sent()) == 4


def test_create_item_send_refuses_bad_recipients(ews, srv):
    srv.clear_sent()
    cases = [eml("Nobody", to=None), eml("Rejected", to="x@host.invalid"),
             eml("Malformed", to="bob@"), eml("Malformed 2", to="not an address"),
             eml("One bad", to="bob@example.com", cc="eve@nowhere.invalid")]
    for disp in ("SendOnly", "SendAndSaveCopy"):
        got = call(ews, create_xml("".join(message_xml(c) for c in cases) + message_xml(eml("Fine")), disp))
        assert [c for c, _ in got] == ["ErrorInvalidRecipients"] * 5 + ["NoError"]
        assert got[0][1].get("ResponseClass") == "Error"
        assert got[0][1].findtext("m:MessageText", namespaces=NS) == \
            "At least one recipient is required, but none were found."
        assert got[0][1].find("m:Items", NS) is not None
    assert [s["subject"] for s in srv.sent()] == ["Fine", "Fine"]
    assert srv.find_subject("Nobody") == [] and srv.find_subject("One bad") == []
    # a draft needs no recipients
    assert create(ews, eml("Draft for nobody", to=None)) is not None


def test_create_item_errors(ews, srv):
    good = message_xml(eml("Err"))
    assert codes(ews, create_xml(good, None)) == ["ErrorMessageDispositionRequired"]
    bad64 = '<t:Message><t:MimeContent CharacterSet="UTF-8">@@not base64@@</t:MimeContent></t:Message>'
    assert codes(ews, create_xml(bad64 + good)) == ["ErrorMimeContentInvalidBase64String", "NoError"]
    gone = folder_id(srv, "Inbox")[:-10] + "AAAAAAAA=="
    assert codes(ews, create_xml(good, "SaveOnly", f'<t:FolderId Id="{gone}"/>')) == ["ErrorSavedItemFolderNotFound"]
    assert codes(ews, create_xml(good, "SendAndSaveCopy", f'<t:FolderId Id="{gone}"/>')) == \
        ["ErrorSavedItemFolderNotFound"]
    assert codes(ews, create_xml(good, "SaveOnly", '<t:FolderId Id="%%%"/>')) == ["ErrorInvalidIdMalformed"]
    badprop = '<t:ExtendedProperty><t:ExtendedFieldURI PropertyName="x" PropertyType="String"/><t:Value>1</t:Value></t:ExtendedProperty>'
    assert codes(ews, create_xml(message_xml(eml("Err"), props=badprop))) == ["ErrorInvalidExtendedProperty"]
    status, _, out = ews.post(create_xml(good, "SaveAndSend"))
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post("<m:CreateItem MessageDisposition=\"SaveOnly\"><m:Items/></m:CreateItem>")
    assert status == 500 and b"ErrorSchemaValidation" in out


def test_create_item_from_fields(ews, srv):
    body = """<t:Message><t:ItemClass>IPM.Note</t:ItemClass><t:Subject>Built from fields</t:Subject>
  <t:Body BodyType="Text">Plain body</t:Body><t:Categories><t:String>Blue</t:String></t:Categories>
  <t:ToRecipients><t:Mailbox><t:Name>Bob</t:Name><t:EmailAddress>bob@example.com</t:EmailAddress></t:Mailbox>
  </t:ToRecipients><t:IsRead>false</t:IsRead></t:Message>"""
    [(code, msg)] = call(ews, create_xml(body))
    [(iid, _)] = new_ids(msg)
    info = srv.item_info(iid)
    assert (info["subject"], info["categories"], info["is_read"], info["is_draft"]) == \
        ("Built from fields", ["Blue"], False, True)
    mime = srv.item_mime(iid)
    assert b"Subject: Built from fields" in mime and b"bob@example.com" in mime and b"Plain body" in mime


def test_find_item_restrictions(ews, srv):
    a, _ = create(ews, eml("Find me"), token="tok-find-A")
    b, _ = create(ews, eml("Find me too"), token="tok-find-B")
    arch, _ = create(ews, eml("Archived find"), folder='<t:DistinguishedFolderId Id="inbox"/>', token="tok-find-C")
    assert find_ids(ews, DRAFTS, equal_to(TOKEN_URI, "tok-find-A")) == [a]
    assert find_ids(ews, DRAFTS, equal_to(TOKEN_URI, "tok-find-C")) == []       # Shallow: that folder only
    assert find_ids(ews, '<t:DistinguishedFolderId Id="inbox"/>', equal_to(TOKEN_URI, "tok-find-C")) == [arch]
    assert find_ids(ews, DRAFTS, equal_to(TOKEN_URI, "tok-none")) == []
    assert find_ids(ews, DRAFTS, equal_to('<t:FieldURI FieldURI="item:Subject"/>', "find me too")) == [b]
    mid = srv.item_info(a)["message_id"]
    assert find_ids(ews, DRAFTS, equal_to('<t:FieldURI FieldURI="message:InternetMessageId"/>',
                                          mid.replace("<", "&lt;").replace(">", "&gt;"))) == [a]
    either = f"<t:Or>{equal_to(TOKEN_URI, 'tok-find-A')}{equal_to(TOKEN_URI, 'tok-find-B')}</t:Or>"
    assert sorted(find_ids(ews, DRAFTS, either)) == sorted([a, b])
    subject = '<t:FieldURI FieldURI="item:Subject"/>'
    both = f"<t:And>{either}<t:Not>{equal_to(subject, 'Find me')}</t:Not></t:And>"
    assert find_ids(ews, DRAFTS, both) == [b]
    assert a in find_ids(ews, DRAFTS, f"<t:Exists>{TOKEN_URI}</t:Exists>")
    # the token comes back with the ids when asked for
    [(code, msg)] = call(ews, find_xml(DRAFTS, equal_to(TOKEN_URI, "tok-find-B"), TOKEN_URI))
    assert msg.findtext(".//t:ExtendedProperty/t:Value", namespaces=NS) == "tok-find-B"
    contains = ('<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
                '<t:FieldURI FieldURI="item:Subject"/><t:Constant Value="Find"/></t:Contains>')
    assert codes(ews, find_xml(DRAFTS, contains)) == ["ErrorUnsupportedQueryFilter"]
    assert codes(ews, find_xml(DRAFTS, equal_to('<t:FieldURI FieldURI="item:Body"/>', "x"))) == \
        ["ErrorUnsupportedPathForQuery"]


def test_send_item(ews, srv):
    srv.clear_sent()
    drafts = folder_id(srv, "Drafts")
    _, dstate, _ = sync_all(ews, drafts)
    d1, ck1 = create(ews, eml("To send", mid=False), token="tok-si-1")
    d2, _ = create(ews, eml("To send, no copy"))
    d3, _ = create(ews, eml("No recipients", to=None))
    msgid = srv.item_info(d1)["message_id"]
    got = codes(ews, f"""<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(d1, ck1)}{item_ref(d3)}
  </m:ItemIds></m:SendItem>""")
    assert got == ["NoError", "ErrorInvalidRecipients"]
    [rec] = srv.sent()
    assert rec["token"] == "tok-si-1" and rec["operation"] == "SendItem" and rec["message_id"] == msgid
    copy = srv.item_info(rec["saved_id"])
    assert (copy["folder_path"], copy["is_draft"], copy["is_read"], copy["token"]) == \
        ("Sent Items", False, True, "tok-si-1")
    with pytest.raises(ControlError):
        srv.item_info(d1)                                      # the draft left Drafts
    assert srv.item_info(d3)["is_draft"]                       # the refused one stays
    assert codes(ews, f'<m:SendItem SaveItemToFolder="false"><m:ItemIds>{item_ref(d2)}</m:ItemIds></m:SendItem>') \
        == ["NoError"]
    assert srv.sent()[-1]["saved_id"] is None and srv.find_subject("To send, no copy") == []
    changes, _, _ = sync_items(ews, drafts, dstate)
    assert sorted((k, i) for k, i, _ in changes) == sorted([("Create", d3)])    # d1, d2 came and went
    d4, ck4 = create(ews, eml("Stale send"))
    srv.set_flag(d4, "Flagged")                                # a server-side change: new change key
    assert codes(ews, f'<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(d4, ck4)}</m:ItemIds></m:SendItem>') \
        == ["ErrorIrresolvableConflict"]
    arch = f'<t:FolderId Id="{folder_id(srv, "Archive")}"/>'
    assert codes(ews, f"""<m:SendItem SaveItemToFolder="false"><m:ItemIds>{item_ref(d4)}</m:ItemIds>
  <m:SavedItemFolderId>{arch}</m:SavedItemFolderId></m:SendItem>""") == ["ErrorInvalidSendItemSaveSettings"]
    assert codes(ews, f"""<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(d4)}</m:ItemIds>
  <m:SavedItemFolderId>{arch}</m:SavedItemFolderId></m:SendItem>""") == ["NoError"]
    assert srv.item_info(srv.sent()[-1]["saved_id"])["folder_path"] == "Archive"
    received = srv.deliver("Inbox", subject="Received, not a draft")
    missing = received[:-12] + "AAAAAAAAAA=="
    assert codes(ews, f"""<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(received)}{item_ref(missing)}
  {item_ref("%%%")}</m:ItemIds></m:SendItem>""") == \
        ["ErrorInvalidItemForOperationSendItem", "ErrorItemNotFound", "ErrorInvalidIdMalformed"]
    status, _, out = ews.post(f"<m:SendItem><m:ItemIds>{item_ref(d3)}</m:ItemIds></m:SendItem>")
    assert status == 500 and b"ErrorSchemaValidation" in out
    assert len(srv.sent()) == 3


def test_update_item_properties_and_change_keys(ews, srv):
    iid = srv.deliver("Inbox/Receipts", subject="Update me")
    fid = folder_id(srv, "Inbox/Receipts")
    _, state, _ = sync_all(ews, fid)
    ck = srv.item_info(iid)["change_key"]
    keys = {ck}

    def do(updates, expect_kind):
        nonlocal ck, state
        code, msg = update(ews, iid, ck, updates)
        assert code == "NoError", ET.tostring(msg)[:500]
        [(rid, new_ck)] = new_ids(msg)
        assert rid == iid and new_ck not in keys and new_ck == srv.item_info(iid)["change_key"]
        assert msg.findtext("m:ConflictResults/t:Count", namespaces=NS) == "0"
        keys.add(new_ck)
        ck = new_ck
        changes, state, _ = sync_items(ews, fid, state, fields=ITEM_FIELDS.replace(
            "</t:AdditionalProperties>", '<t:FieldURI FieldURI="item:Flag"/><t:FieldURI FieldURI="item:Categories"/>'
            "</t:AdditionalProperties>"))
        assert [(k, i) for k, i, _ in changes] == [(expect_kind, iid)]
        return changes[0][2]

    e = do(set_field("message:IsRead", "<t:IsRead>true</t:IsRead>"), "ReadFlagChange")
    assert e.findtext("t:IsRead", namespaces=NS) == "true" and srv.item_info(iid)["is_read"]
    e = do(set_field("item:Flag", "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>"), "Update")
    assert e.findtext("t:Flag/t:FlagStatus", namespaces=NS) == "Flagged" and srv.item_info(iid)["flag"] == "Flagged"
    e = do(set_field("item:Categories", "<t:Categories><t:String>Red</t:String><t:String>Grün &amp; co"
                     "</t:String></t:Categories>"), "Update")
    assert [s.text for s in e.find("t:Categories", NS)] == ["Red", "Grün & co"]
    assert srv.item_info(iid)["categories"] == ["Red", "Grün & co"]
    e = do(set_field("item:Subject", "<t:Subject>Updated subject</t:Subject>")
           + set_field("message:IsRead", "<t:IsRead>false</t:IsRead>"), "Update")
    assert e.findtext("t:Subject", namespaces=NS) == "Updated subject" and e.findtext("t:IsRead", namespaces=NS) == "false"
    assert b"Subject: Updated subject" in srv.item_mime(iid)
    e = do('<t:DeleteItemField><t:FieldURI FieldURI="item:Categories"/></t:DeleteItemField>'
           '<t:DeleteItemField><t:FieldURI FieldURI="item:Flag"/></t:DeleteItemField>', "Update")
    assert e.find("t:Categories", NS) is None and e.findtext("t:Flag/t:FlagStatus", namespaces=NS) == "NotFlagged"
    info = srv.item_info(iid)
    assert (info["categories"], info["flag"], info["is_read"]) == ([], "NotFlagged", False)
    e = do(set_field("item:Flag", "<t:Flag><t:FlagStatus>Complete</t:FlagStatus></t:Flag>"), "Update")
    # an extended property can be set and removed too
    e = do(f"<t:SetItemField>{TOKEN_URI}<t:Message>{ext_prop(TOKEN_URI, 'tok-later')}</t:Message></t:SetItemField>",
           "Update")
    assert srv.item_info(iid)["token"] == "tok-later" and srv.find_token("tok-later") == [iid]
    do(f"<t:DeleteItemField>{TOKEN_URI}</t:DeleteItemField>", "Update")
    assert srv.item_info(iid)["token"] is None
    # several items in one request: answers in request order
    other = srv.deliver("Inbox/Receipts", subject="Second")
    body = (f'<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AutoResolve"><m:ItemChanges>'
            f'<t:ItemChange>{item_ref(other)}<t:Updates>{set_field("message:IsRead", "<t:IsRead>true</t:IsRead>")}'
            f'</t:Updates></t:ItemChange><t:ItemChange>{item_ref(iid[:-12] + "AAAAAAAAAA==")}<t:Updates>'
            f'{set_field("message:IsRead", "<t:IsRead>true</t:IsRead>")}</t:Updates></t:ItemChange>'
            f'</m:ItemChanges></m:UpdateItem>')
    got = call(ews, body)
    assert [c for c, _ in got] == ["NoError", "ErrorItemNotFound"]
    assert got[1][1].find("m:Items", NS) is not None and srv.item_info(other)["is_read"]


def test_update_item_conflict_resolution(ews, srv):
    iid = srv.deliver("Inbox", subject="Conflicts")
    ck = srv.item_info(iid)["change_key"]
    srv.mark_read(iid, True)                                  # server side: new change key, ck is stale
    ck2 = srv.item_info(iid)["change_key"]
    assert ck2 != ck
    flag = set_field("item:Flag", "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>")
    for mode in ("AutoResolve", "NeverOverwrite", None):
        code, msg = update(ews, iid, ck, flag, mode)
        assert code == "ErrorIrresolvableConflict" and msg.get("ResponseClass") == "Error"
        assert "does not match the current change key" in msg.findtext("m:MessageText", namespaces=NS)
    assert srv.item_info(iid)["flag"] == "NotFlagged" and srv.item_info(iid)["change_key"] == ck2
    code, msg = update(ews, iid, ck, flag, "AlwaysOverwrite")
    assert code == "NoError" and srv.item_info(iid)["flag"] == "Flagged"
    [(_, ck3)] = new_ids(msg)
    code, msg = update(ews, iid, ck3, set_field("item:Flag", "<t:Flag><t:FlagStatus>Complete</t:FlagStatus></t:Flag>"),
                       "NeverOverwrite")
    assert code == "NoError"
    code, _ = update(ews, iid, None, set_field("message:IsRead", "<t:IsRead>false</t:IsRead>"), "NeverOverwrite")
    assert code == "NoError" and not srv.item_info(iid)["is_read"]     # no change key: no check
    srv.set_categories(iid, ["Server"])
    code, _ = update(ews, iid, new_ids(msg)[0][1], flag)
    assert code == "ErrorIrresolvableConflict"
    code, _ = update(ews, iid, "!!bad!!", flag)
    assert code == "ErrorInvalidChangeKey"
    moved = srv.move(iid, "Archive")
    assert update(ews, iid, None, flag)[0] == "ErrorItemNotFound"
    assert update(ews, "%%%", None, flag)[0] == "ErrorInvalidIdMalformed"
    assert srv.item_info(moved)["categories"] == ["Server"]
    status, _, out = ews.post(update_xml(moved, None, flag, "Sometimes"))
    assert status == 500 and b"ErrorSchemaValidation" in out


def test_update_item_mime_and_refusals(ews, srv):
    draft, ck = create(ews, eml("Before edit", to="bob@example.com"), token="tok-edit")
    new_mime = eml("After edit", to="carol@example.org", body="New text.\r\n")
    code, msg = update(ews, draft, ck, set_field("item:MimeContent", '<t:MimeContent CharacterSet="UTF-8">'
                                                 + base64.b64encode(new_mime).decode() + "</t:MimeContent>"))
    assert code == "NoError"
    info = srv.item_info(draft)
    assert srv.item_mime(draft) == new_mime and info["subject"] == "After edit" and "carol" in info["to"]
    assert info["token"] == "tok-edit" and info["is_draft"] and info["change_key"] == new_ids(msg)[0][1]
    received = srv.deliver("Inbox", subject="Not a draft")
    mime_set = set_field("item:MimeContent", "<t:MimeContent>" + base64.b64encode(new_mime).decode() + "</t:MimeContent>")
    assert update(ews, received, None, mime_set)[0] == "ErrorInvalidPropertyUpdateSentMessage"
    assert srv.item_info(received)["subject"] == "Not a draft"
    ck = srv.item_info(received)["change_key"]
    for updates, want in [
            (set_field("item:DateTimeReceived", "<t:DateTimeReceived>2020-01-01T00:00:00Z</t:DateTimeReceived>"),
             "ErrorInvalidPropertySet"),
            (set_field("item:Size", "<t:Size>5</t:Size>"), "ErrorInvalidPropertySet"),
            ('<t:DeleteItemField><t:FieldURI FieldURI="message:IsRead"/></t:DeleteItemField>',
             "ErrorInvalidPropertyDelete"),
            ('<t:AppendToItemField><t:FieldURI FieldURI="item:Categories"/><t:Message><t:Categories>'
             "<t:String>x</t:String></t:Categories></t:Message></t:AppendToItemField>", "ErrorInvalidPropertyAppend"),
            (set_field("message:IsRead", "<t:IsRead>true</t:IsRead><t:Subject>two</t:Subject>"),
             "ErrorIncorrectUpdatePropertyCount"),
            (set_field("message:IsRead", "<t:Subject>mismatch</t:Subject>"), "ErrorIncorrectUpdatePropertyCount"),
            # one bad change spoils the whole ItemChange: the good one is not applied
            (set_field("message:IsRead", "<t:IsRead>true</t:IsRead>") + set_field("item:Size", "<t:Size>5</t:Size>"),
             "ErrorInvalidPropertySet")]:
        code, msg = update(ews, received, ck, updates)
        assert code == want, (updates, code)
    info = srv.item_info(received)
    assert info["change_key"] == ck and not info["is_read"]
    status, _, out = ews.post(update_xml(received, None, set_field(
        "item:Flag", "<t:Flag><t:FlagStatus>Maybe</t:FlagStatus></t:Flag>")))
    assert status == 500 and b"ErrorSchemaValidation" in out


def test_update_item_and_send(ews, srv):
    srv.clear_sent()
    draft, ck = create(ews, eml("Edit then send"), token="tok-upd-send")
    body = update_xml(draft, ck, set_field("item:Subject", "<t:Subject>Edited and sent</t:Subject>"),
                      disposition="SendAndSaveCopy")
    [(code, msg)] = call(ews, body)
    assert code == "NoError" and len(msg.find("m:Items", NS)) == 0
    [rec] = srv.sent()
    assert rec["subject"] == "Edited and sent" and rec["token"] == "tok-upd-send"
    assert srv.item_info(rec["saved_id"])["folder_path"] == "Sent Items"


def test_delete_item_types(ews, srv):
    inbox, trash = folder_id(srv, "Inbox"), folder_id(srv, "Deleted Items")
    _, istate, _ = sync_all(ews, inbox)
    _, tstate, _ = sync_all(ews, trash)
    hard = srv.deliver("Inbox", subject="Hard delete")
    soft = srv.deliver("Inbox", subject="Soft delete")
    to_trash, _ = create(ews, eml("To the trash"), folder='<t:DistinguishedFolderId Id="inbox"/>', token="tok-trash",
                         props=ext_prop(FLAGS_URI, 1))
    srv.set_flag(to_trash, "Flagged")
    srv.set_categories(to_trash, ["Keep"])
    _, istate, _ = sync_all(ews, inbox, istate)
    missing = hard[:-12] + "AAAAAAAAAA=="
    assert codes(ews, f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_ref(hard)}{item_ref(missing)}'
                 f'{item_ref("%%%")}</m:ItemIds></m:DeleteItem>') == \
        ["NoError", "ErrorItemNotFound", "ErrorInvalidIdMalformed"]
    assert codes(ews, f'<m:DeleteItem DeleteType="SoftDelete"><m:ItemIds>{item_ref(soft)}</m:ItemIds></m:DeleteItem>') \
        == ["NoError"]
    assert codes(ews, f'<m:DeleteItem DeleteType="MoveToDeletedItems" SendMeetingCancellations="SendToNone" '
                 f'AffectedTaskOccurrences="AllOccurrences"><m:ItemIds>{item_ref(to_trash)}</m:ItemIds></m:DeleteItem>') \
        == ["NoError"]
    changes, _, _ = sync_items(ews, inbox, istate)
    assert sorted((k, i) for k, i, _ in changes) == sorted([("Delete", hard), ("Delete", soft), ("Delete", to_trash)])
    changes, tstate, _ = sync_items(ews, trash, tstate)
    [(kind, new_id, _)] = changes
    assert kind == "Create" and new_id != to_trash
    info = srv.item_info(new_id)
    assert (info["token"], info["flag"], info["categories"], info["is_draft"]) == ("tok-trash", "Flagged", ["Keep"], False)
    assert [d["subject"] for d in srv.dumpster("Inbox")] == ["Soft delete"]
    assert srv.find_subject("Hard delete") == []
    assert find_ids(ews, '<t:DistinguishedFolderId Id="inbox"/>', None, "SoftDeleted") == [soft]
    # "move to Deleted Items" of something already there: a soft delete
    assert codes(ews, f'<m:DeleteItem DeleteType="MoveToDeletedItems"><m:ItemIds>{item_ref(new_id)}</m:ItemIds>'
                 "</m:DeleteItem>") == ["NoError"]
    assert [d["token"] for d in srv.dumpster("Deleted Items")] == ["tok-trash"]
    changes, _, _ = sync_items(ews, trash, tstate)
    assert [(k, i) for k, i, _ in changes] == [("Delete", new_id)]
    status, _, out = ews.post(f"<m:DeleteItem><m:ItemIds>{item_ref(soft)}</m:ItemIds></m:DeleteItem>")
    assert status == 500 and b"ErrorSchemaValidation" in out


def test_move_and_copy_item(ews, srv):
    src, dst = folder_id(srv, "Inbox/Projects"), folder_id(srv, "Inbox/Projects/2026")
    _, sstate, _ = sync_all(ews, src)
    _, dstate, _ = sync_all(ews, dst)
    a, _ = create(ews, eml("Move me"), folder=f'<t:FolderId Id="{src}"/>', token="tok-move", props=ext_prop(FLAGS_URI, 0))
    srv.set_categories(a, ["Blue"])
    b = srv.deliver("Inbox/Projects", subject="Copy me")
    _, sstate, _ = sync_all(ews, src, sstate)
    to = f'<m:ToFolderId><t:FolderId Id="{dst}"/></m:ToFolderId>'
    got = call(ews, f"<m:MoveItem>{to}<m:ItemIds>{item_ref(a)}{item_ref(a)}</m:ItemIds></m:MoveItem>")
    assert [c for c, _ in got] == ["NoError", "ErrorItemNotFound"]
    [(moved, mck)] = new_ids(got[0][1])
    assert moved != a
    info = srv.item_info(moved)
    assert (info["folder_path"], info["token"], info["categories"], info["is_read"], info["change_key"]) == \
        ("Inbox/Projects/2026", "tok-move", ["Blue"], False, mck)
    got = call(ews, f'<m:CopyItem>{to}<m:ItemIds>{item_ref(b)}</m:ItemIds></m:CopyItem>')
    [(copied, _)] = new_ids(got[0][1])
    assert copied != b and srv.item_mime(copied) == srv.item_mime(b) and srv.item_info(b)["folder_path"] == "Inbox/Projects"
    got = call(ews, f'<m:CopyItem>{to}<m:ItemIds>{item_ref(b)}</m:ItemIds><m:ReturnNewItemIds>false</m:ReturnNewItemIds>'
               '</m:CopyItem>')
    assert got[0][0] == "NoError" and len(got[0][1].find("m:Items", NS)) == 0
    assert len(srv.find_subject("Copy me", "Inbox/Projects/2026")) == 2
    changes, _, _ = sync_items(ews, src, sstate)
    assert [(k, i) for k, i, _ in changes] == [("Delete", a)]
    changes, _, _ = sync_items(ews, dst, dstate)
    assert [k for k, _, _ in changes] == ["Create"] * 3 and changes[0][1] == moved
    gone = dst[:-10] + "AAAAAAAA=="
    for op in ("MoveItem", "CopyItem"):
        assert codes(ews, f'<m:{op}><m:ToFolderId><t:FolderId Id="{gone}"/></m:ToFolderId><m:ItemIds>{item_ref(b)}'
                     f"</m:ItemIds></m:{op}>") == ["ErrorToFolderNotFound"]
        assert codes(ews, f'<m:{op}><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId><m:ItemIds>'
                     f'{item_ref("%%%")}</m:ItemIds></m:{op}>') == ["ErrorInvalidIdMalformed"]
        status, _, out = ews.post(f"<m:{op}><m:ItemIds>{item_ref(b)}</m:ItemIds></m:{op}>")
        assert status == 500 and b"ErrorSchemaValidation" in out
    assert srv.item_info(b)["folder_path"] == "Inbox/Projects"


def folder_op(ews, body):
    [(code, msg)] = call(ews, body)
    return code, new_ids(msg)


def test_folder_write_operations(ews, srv):
    _, hstate = sync_hierarchy(ews)
    inbox = folder_id(srv, "Inbox")
    create = (f'<m:CreateFolder><m:ParentFolderId><t:FolderId Id="{inbox}"/></m:ParentFolderId><m:Folders>'
              '<t:Folder><t:DisplayName>Written</t:DisplayName></t:Folder>'
              '<t:Folder><t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>Second</t:DisplayName></t:Folder>'
              '<t:Folder><t:DisplayName>written</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>')
    got = call(ews, create)
    assert [c for c, _ in got] == ["NoError", "NoError", "ErrorFolderExists"]
    [(new, _)] = new_ids(got[0][1])
    [(second, _)] = new_ids(got[1][1])
    assert got[2][1].find("m:Folders", NS) is not None
    assert srv.folder("Inbox/Written")["id"] == new and srv.folder(new)["folder_class"] == "IPF.Note"
    gone = inbox[:-10] + "AAAAAAAA=="
    assert folder_op(ews, f'<m:CreateFolder><m:ParentFolderId><t:FolderId Id="{gone}"/></m:ParentFolderId>'
                     '<m:Folders><t:Folder><t:DisplayName>x</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>')[0] \
        == "ErrorParentFolderNotFound"
    msgid = srv.deliver(new, subject="Inside")

    def rename(fid, name, dist=False):
        ref = f'<t:DistinguishedFolderId Id="{fid}"/>' if dist else f'<t:FolderId Id="{fid}"/>'
        return folder_op(ews, f"""<m:UpdateFolder><m:FolderChanges><t:FolderChange>{ref}<t:Updates>
  <t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:DisplayName>{name}</t:DisplayName>
  </t:Folder></t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>""")
    code, [(rid, _)] = rename(new, "Renamed")
    assert code == "NoError" and rid == new and srv.folder(new)["name"] == "Renamed"
    assert rename(new, "Second")[0] == "ErrorFolderExists"
    assert rename(gone, "x")[0] == "ErrorFolderNotFound"
    stale = srv.folder(new)["change_key"]
    srv.rename_folder(new, "Renamed again")                    # a change elsewhere: the key is stale
    assert folder_op(ews, f"""<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:FolderId Id="{new}"
  ChangeKey="{stale}"/><t:Updates><t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder>
  <t:DisplayName>Renamed</t:DisplayName></t:Folder></t:SetFolderField></t:Updates></t:FolderChange>
  </m:FolderChanges></m:UpdateFolder>""")[0] == "ErrorIrresolvableConflict"
    assert rename(new, "Renamed")[0] == "NoError"
    code, _ = rename("junkemail", "Spam", dist=True)          # well-known folders may be renamed
    assert code == "NoError" and srv.folder("Spam")["distinguished"] == "junkemail"
    assert rename("junkemail", "Junk Email", dist=True)[0] == "NoError"
    assert rename("msgfolderroot", "Top", dist=True)[0] == "ErrorInvalidOperation"

    def move(fid, to):
        return folder_op(ews, f'<m:MoveFolder><m:ToFolderId>{to}</m:ToFolderId><m:FolderIds><t:FolderId Id="{fid}"/>'
                         "</m:FolderIds></m:MoveFolder>")
    archive = f'<t:FolderId Id="{folder_id(srv, "Archive")}"/>'
    code, [(mid, _)] = move(new, archive)
    assert code == "NoError" and mid == new and srv.folder(new)["path"] == "Archive/Renamed"
    assert srv.item_info(msgid)["folder_path"] == "Archive/Renamed"       # items keep their ids
    assert move(inbox, archive)[0] == "ErrorMoveDistinguishedFolder"
    sub = srv.create_folder(new, "Sub")
    assert move(new, f'<t:FolderId Id="{sub}"/>')[0] == "ErrorMoveCopyFailed"
    assert move(new, f'<t:FolderId Id="{gone}"/>')[0] == "ErrorToFolderNotFound"
    srv.create_folder("Inbox", "Renamed")
    assert move(new, f'<t:FolderId Id="{inbox}"/>')[0] == "ErrorFolderExists"
    changes, hstate = sync_hierarchy(ews, hstate)
    kinds = sorted((k, e.findtext("t:DisplayName", namespaces=NS)) for k, _, e in changes)
    assert kinds == [("Create", "Renamed"), ("Create", "Renamed"), ("Create", "Second"), ("Create", "Sub"),
                     ("Update", "Junk Email")]

    def delete(fid, how, dist=False):
        ref = f'<t:DistinguishedFolderId Id="{fid}"/>' if dist else f'<t:FolderId Id="{fid}"/>'
        return codes(ews, f'<m:DeleteFolder DeleteType="{how}"><m:FolderIds>{ref}</m:FolderIds></m:DeleteFolder>')
    assert delete("inbox", "HardDelete", True) == ["ErrorDeleteDistinguishedFolder"]
    assert delete(gone, "HardDelete") == ["ErrorFolderNotFound"]
    assert delete(new, "MoveToDeletedItems") == ["NoError"]
    assert srv.folder(new)["path"] == "Deleted Items/Renamed" and srv.item_info(msgid)["folder_path"] == \
        "Deleted Items/Renamed"
    srv.create_folder("Archive", "Renamed")
    again = srv.folder("Archive/Renamed")["id"]
    assert delete(again, "MoveToDeletedItems") == ["NoError"]       # a name taken there: renamed, as Outlook does
    assert srv.folder(again)["path"] == "Deleted Items/Renamed1"
    changes, hstate = sync_hierarchy(ews, hstate)
    assert sorted(k for k, _, _ in changes) == ["Create", "Update"]
    assert delete(new, "HardDelete") == ["NoError"]                 # from Deleted Items: gone, with contents
    with pytest.raises(ControlError):
        srv.item_info(msgid)
    with pytest.raises(ControlError):
        srv.folder(sub)
    assert delete(second, "SoftDelete") == ["NoError"]
    changes, hstate = sync_hierarchy(ews, hstate)
    assert sorted((k, i) for k, i, _ in changes) == sorted([("Delete", new), ("Delete", sub), ("Delete", second)])
    status, _, out = ews.post(f'<m:DeleteFolder><m:FolderIds><t:FolderId Id="{again}"/></m:FolderIds></m:DeleteFolder>')
    assert status == 500 and b"ErrorSchemaValidation" in out


def test_sync_and_getitem_show_flag_categories_draft(ews, srv):
    fid = srv.create_folder("", "Flags")
    iid = srv.deliver(fid, subject="Flag me")
    fields = ('<t:AdditionalProperties><t:FieldURI FieldURI="item:Flag"/><t:FieldURI FieldURI="item:Categories"/>'
              '<t:FieldURI FieldURI="item:IsDraft"/><t:FieldURI FieldURI="message:IsRead"/></t:AdditionalProperties>')
    changes, state, _ = sync_items(ews, fid, fields=fields)
    e = changes[0][2]
    assert e.findtext("t:Flag/t:FlagStatus", namespaces=NS) == "NotFlagged" and e.find("t:Categories", NS) is None
    assert e.findtext("t:IsDraft", namespaces=NS) == "false" and e.findtext("t:IsRead", namespaces=NS) == "false"
    old_ck = srv.item_info(iid)["change_key"]
    srv.set_flag(iid, "Complete")
    srv.set_categories(iid, ["A", "B"])
    changes, state, _ = sync_items(ews, fid, state, fields=fields)
    [(kind, _, e)] = changes
    assert kind == "Update" and e.findtext("t:Flag/t:FlagStatus", namespaces=NS) == "Complete"
    assert [s.text for s in e.find("t:Categories", NS)] == ["A", "B"]
    ck = srv.item_info(iid)["change_key"]
    assert ck != old_ck and e.find("t:ItemId", NS).get("ChangeKey") == ck
    [(code, msg)] = get_items(ews, [iid])                      # IdOnly: the id with the current change key
    item = msg.find("m:Items/t:Message", NS)
    assert [c.tag for c in item] == [T + "ItemId"] and item.find("t:ItemId", NS).get("ChangeKey") == ck
    [(code, msg)] = get_items(ews, [iid], base="AllProperties")
    item = msg.find("m:Items/t:Message", NS)
    assert item.findtext("t:Flag/t:FlagStatus", namespaces=NS) == "Complete"
    assert item.findtext("t:IsDraft", namespaces=NS) == "false" and item.find("t:Categories", NS) is not None
    names = [c.tag[len(T):] for c in item]
    assert names.index("Categories") < names.index("HasAttachments") < names.index("Flag") < names.index("IsRead")
    [(code, msg)] = get_items(ews, [iid], base="Default")
    assert msg.find("m:Items/t:Message/t:Flag", NS) is None
    with pytest.raises(ControlError):
        srv.set_flag(iid, "Sometimes")
