"""test_server_write_robust.py - the test server's write operations under
stress and from other clients: faults and stats, state surviving a restart
and journal replay, concurrent writers, exchangelib's writes, Exchange 2010
requests, the exact request shapes the C client sends, and mutated requests
that must never break the server.  Shares the helpers of
test_server_write.py and the fixtures of test_server.py."""
import base64
import http.client
import os
import socket
import sys
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))

from harness import ControlError, EwsServer  # noqa: E402
from test_server import ENVELOPE, NS, Ews, ews, folder_id, messages, srv, sync_all  # noqa: E402,F401
from test_server_write import eml, ext_prop, message_xml, create_xml, call, codes, new_ids, create, item_ref, find_xml, find_ids, equal_to, set_field, update_xml, update, get_items, DRAFTS, TOKEN_URI, FLAGS_URI, DELIVERY_URI  # noqa: E402


def test_write_faults_and_stats(srv):
    ews = Ews(srv)
    srv.reset_stats()
    srv.fault("reset_after", operation="CreateItem")
    conn = ews.connect()
    body = (ENVELOPE % create_xml(message_xml(eml("Lost answer"), "tok-lost"))).encode()
    conn.request("POST", "/EWS/Exchange.asmx", body=body,
                 headers={"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()})
    with pytest.raises((http.client.HTTPException, ConnectionError, socket.error)):
        conn.getresponse().read()
    conn.close()
    [iid] = srv.find_token("tok-lost")                         # done, though the client never heard
    assert find_ids(ews, DRAFTS, equal_to(TOKEN_URI, "tok-lost")) == [iid]
    srv.fault("http503", operation="UpdateItem", retry_after=3)
    upd = update_xml(iid, None, set_field("message:IsRead", "<t:IsRead>false</t:IsRead>"))
    status, r, _ = ews.post(upd)
    assert status == 503 and r.getheader("Retry-After") == "3" and srv.item_info(iid)["is_read"]
    srv.fault("busy", operation="DeleteItem", where="message", backoff_ms=25)
    delete = f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_ref(iid)}</m:ItemIds></m:DeleteItem>'
    [(code, msg)] = call(ews, delete)
    assert code == "ErrorServerBusy" and msg.findtext("m:MessageXml/t:Value", namespaces=NS) == "25"
    srv.fault("reset", operation="MoveItem")
    srv.fault("reset_after", operation="UpdateItem")
    assert ews.post(upd)[0] == 200          # done, reset; the helper retries (a no-op now) and hears
    assert not srv.item_info(iid)["is_read"]
    assert codes(ews, delete) == ["NoError"]
    recent = [(r["op"], r["status"], r["fault"]) for r in srv.stats()["recent"]]
    assert recent[0] == ("CreateItem", 0, "reset_after")
    assert ("UpdateItem", 503, "http503") in recent and ("DeleteItem", 200, "busy") in recent
    i = recent.index(("UpdateItem", 0, "reset_after"))
    assert recent[i + 1] == ("UpdateItem", 200, None) and recent[-1] == ("DeleteItem", 200, None)
    st = srv.stats()
    assert st["requests"]["CreateItem"] == 1 and st["requests"]["DeleteItem"] == 2
    assert [f["operation"] for f in st["faults"]] == ["MoveItem"]       # not hit: no MoveItem yet
    srv.clear_faults()
    ews.close()


def test_write_state_survives_restart(tmp_path):
    state_file = str(tmp_path / "mailbox.jsonl")
    s = EwsServer(messages=40, seed=6, state=state_file)
    try:
        s.start()
        ews = Ews(s)
        draft, _ = create(ews, eml("Persisted draft"), token="tok-p1")
        saved, _ = create(ews, eml("Persisted import"), folder='<t:DistinguishedFolderId Id="inbox"/>',
                          token="tok-p2", props=ext_prop(FLAGS_URI, 0) + ext_prop(DELIVERY_URI, "2024-01-02T03:04:05Z"))
        create(ews, eml("Persisted send"), "SendAndSaveCopy", token="tok-p3")
        s.set_flag(saved, "Flagged")
        s.set_categories(saved, ["Persist", "Me"])
        soft = s.deliver("Inbox", subject="Persisted soft delete")
        assert codes(ews, f'<m:DeleteItem DeleteType="SoftDelete"><m:ItemIds>{item_ref(soft)}</m:ItemIds></m:DeleteItem>') \
            == ["NoError"]
        before = s.mailbox(mime=True)
        ews.close()
        s.kill()                                     # a crash: the journal alone must do
        s.start()
        after = s.mailbox(mime=True)
        assert after == before
        assert s.item_info(draft)["is_draft"] and s.item_info(draft)["token"] == "tok-p1"
        info = s.item_info(saved)
        assert (info["flag"], info["categories"], info["is_read"], info["received_iso"]) == \
            ("Flagged", ["Persist", "Me"], False, "2024-01-02T03:04:05Z")
        assert [x["token"] for x in s.sent()] == ["tok-p3"]
        assert [d["subject"] for d in s.dumpster()] == ["Persisted soft delete"]
        ews = Ews(s)
        assert find_ids(ews, '<t:DistinguishedFolderId Id="inbox"/>', equal_to(TOKEN_URI, "tok-p2")) == [saved]
        ews.close()
        s.restart()                                  # and once more from the compacted snapshot
        assert s.mailbox(mime=True) == before
    finally:
        s.cleanup()


def test_journal_replay_of_write_changes(tmp_path):
    import persist
    import props
    from control import dump
    from generate import generate
    from mailbox import Mailbox
    path = str(tmp_path / "state.jsonl")
    mb = Mailbox("replay-writes")
    generate(mb, 60, seed=4)
    persist.snapshot(mb, path)
    inbox = mb.folder_by_path("Inbox")
    items = mb.items_sorted(inbox)
    key = props.TOKEN_KEY
    mb.change_item(items[0], flag="Flagged", categories=["x", "y"], ext_set={key: "tok-j"})
    mb.change_item(items[1], is_read=not items[1].is_read)
    mb.delete_item(items[2], soft=True)
    copy = mb.copy_item(items[0], mb.folder_by_path("Archive"))
    mb.record_sent(b"From: a@b.c\r\n\r\nx", ["d@e.f"], "tok-s", "CreateItem/SendOnly")
    mb.move_folder(mb.folder_by_path("Empty"), mb.distinguished["deleteditems"], rename_on_clash=True)
    back = persist.load(path)
    assert dump(back) == dump(mb)
    assert back.items[copy.id].ext == {key: "tok-j"} and back.items[copy.id].categories == ["x", "y"]
    persist.snapshot(back, path)
    again = persist.load(path)
    assert dump(again) == dump(mb)
    mb.clear_sent()
    back.clear_sent()
    assert persist.load(path).sent == []


def test_concurrent_writers(srv):
    import threading
    fid = srv.create_folder("", "Busy writers")
    fpath = "Busy writers"
    errors = []

    def worker(n):
        c = Ews(srv)
        try:
            for i in range(6):
                iid, ck = create(c, eml(f"w{n}-{i}"), folder=f'<t:FolderId Id="{fid}"/>', token=f"tok-c{n}-{i}")
                code, msg = update(c, iid, ck, set_field("item:Flag", "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>"))
                assert code == "NoError"
                if i % 3 == 0:
                    assert codes(c, f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_ref(iid)}</m:ItemIds>'
                                 "</m:DeleteItem>") == ["NoError"]
                elif i % 3 == 1:
                    got = call(c, f'<m:CopyItem><m:ToFolderId><t:FolderId Id="{fid}"/></m:ToFolderId><m:ItemIds>'
                               f"{item_ref(iid)}</m:ItemIds></m:CopyItem>")
                    assert got[0][0] == "NoError"
        except Exception as e:          # reported below, in the main thread
            errors.append(repr(e))
        finally:
            c.close()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == []
    items = srv.items(fpath)
    assert len(items) == 20 * 6 - 20 * 2 + 20 * 2           # 6 made, 2 deleted, 2 copied, per writer
    assert all(it["flag"] == "Flagged" for it in items)
    assert len({it["change_key"] for it in items}) == len(items)
    assert srv.folder(fpath)["total"] == len(items)
    ews = Ews(srv)
    changes, _, _ = sync_all(ews, fid, max_changes=17)
    assert sorted(i for _, i, _ in changes) == sorted(it["id"] for it in items)
    ews.close()


def test_exchangelib_writes(srv):
    """An independent client (python3-exchangelib) drives the write operations."""
    pytest.importorskip("exchangelib")
    from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials, ExtendedProperty, Version
    from exchangelib import Folder, Mailbox, Message
    from exchangelib.version import EXCHANGE_2013_SP1

    class Token(ExtendedProperty):
        property_set_id = "3c7e2f4a-9b1d-4e6a-8f5c-2d0b7a1e9c43"
        property_name = "ExchangefsToken"
        property_type = "String"
    cfg = Configuration(service_endpoint=srv.ews_url, credentials=Credentials(srv.user, srv.password),
                        auth_type=BASIC, version=Version(build=EXCHANGE_2013_SP1))
    acc = Account("alice@example.com", config=cfg, autodiscover=False, access_type=DELEGATE)
    Message.register("exchangefs_token", Token)
    try:
        srv.clear_sent()
        m = Message(account=acc, folder=acc.drafts, subject="From exchangelib", body="Hi",
                    to_recipients=[Mailbox(email_address="bob@example.com")], exchangefs_token="tok-xl")
        m.save()
        info = srv.item_info(m.id)
        assert info["is_draft"] and info["token"] == "tok-xl" and info["folder_path"] == "Drafts"
        [found] = acc.drafts.filter(exchangefs_token="tok-xl")
        assert found.id == m.id and found.subject == "From exchangelib"
        m.is_read = False
        m.categories = ["Xl"]
        m.save(update_fields=["is_read", "categories"])
        info = srv.item_info(m.id)
        assert (info["is_read"], info["categories"], info["change_key"]) == (False, ["Xl"], m.changekey)
        m.send()                                        # SendItem of the draft, copy in Sent Items
        [rec] = srv.sent()
        assert rec["recipients"] == ["bob@example.com"] and rec["token"] == "tok-xl"
        assert srv.item_info(rec["saved_id"])["folder_path"] == "Sent Items"
        Message(account=acc, subject="Direct send", body="x",
                to_recipients=[Mailbox(email_address="carol@example.org")]).send_and_save()
        assert srv.sent()[-1]["subject"] == "Direct send" and srv.sent()[-1]["saved_id"]
        item = srv.deliver("Inbox", subject="Move via exchangelib")
        [it] = acc.fetch(ids=[(item, None)])
        it.move(acc.msg_folder_root / "Archive")
        assert srv.item_info(it.id)["folder_path"] == "Archive" and it.id != item
        it.move_to_trash()                              # DeleteItem returns no id: look it up
        [trashed] = srv.find_subject("Move via exchangelib", "Deleted Items")
        [it] = acc.fetch(ids=[(trashed, None)])
        it.delete()
        assert srv.find_subject("Move via exchangelib") == []
        f = Folder(parent=acc.inbox, name="Xl folder")
        f.save()
        assert srv.folder("Inbox/Xl folder")["id"] == f.id
        f.name = "Xl renamed"
        f.save()
        assert srv.folder(f.id)["name"] == "Xl renamed"
        f.delete()
        with pytest.raises(ControlError):
            srv.folder(f.id)
    finally:
        Message.deregister("exchangefs_token")


def test_flag_as_extended_property_and_exchange_2010_requests(ews, srv):
    """Exchange 2010 has no item:Flag; PidTagFlagStatus (0x1090) is the flag there."""
    status_uri = '<t:ExtendedFieldURI PropertyTag="0x1090" PropertyType="Integer"/>'
    iid = srv.deliver("Inbox", subject="Flag by tag")
    old = ENVELOPE.replace('Version="Exchange2013_SP1"', 'Version="Exchange2010_SP2"')
    flag_set = set_field("item:Flag", "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>")
    status, _, out = ews.post(old % update_xml(iid, None, flag_set), envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    status, _, out = ews.post(old % find_xml('<t:DistinguishedFolderId Id="inbox"/>', None,
                                             '<t:FieldURI FieldURI="item:Flag"/>'), envelope=False)
    assert status == 500 and b"ErrorSchemaValidation" in out
    by_tag = f"<t:SetItemField>{status_uri}<t:Message>{ext_prop(status_uri, 2)}</t:Message></t:SetItemField>"
    status, _, out = ews.post(old % update_xml(iid, None, by_tag), envelope=False)
    assert status == 200 and b"NoError" in out and srv.item_info(iid)["flag"] == "Flagged"
    status, _, out = ews.post(old % f"""<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
  <t:AdditionalProperties>{status_uri}</t:AdditionalProperties></m:ItemShape>
  <m:ItemIds>{item_ref(iid)}</m:ItemIds></m:GetItem>""", envelope=False)
    assert status == 200 and b"<t:Value>2</t:Value>" in out
    assert update(ews, iid, None, by_tag.replace("<t:Value>2<", "<t:Value>1<"))[0] == "NoError"
    assert srv.item_info(iid)["flag"] == "Complete"
    assert update(ews, iid, None, f"<t:DeleteItemField>{status_uri}</t:DeleteItemField>")[0] == "NoError"
    assert srv.item_info(iid)["flag"] == "NotFlagged"
    [(code, msg)] = get_items(ews, [iid], status_uri)
    assert msg.find(".//t:ExtendedProperty", NS) is None          # not flagged: no such property
    made, _ = create(ews, eml("Flagged at birth"), props=ext_prop(status_uri, 2))
    assert srv.item_info(made)["flag"] == "Flagged" and srv.item_info(made)["ext"] == []


def test_request_shapes_of_the_c_client(ews, srv):
    """The requests backend/ews builds, verbatim in shape (docs/ews-subset.md)."""
    inbox, drafts, sent = folder_id(srv, "Inbox"), folder_id(srv, "Drafts"), folder_id(srv, "Sent Items")
    # BE_SAVE: a read, non-draft message with its received date
    body = (f'<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:FolderId Id="{inbox}"/>'
            f'</m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">'
            f'{base64.b64encode(eml("C save")).decode()}</t:MimeContent>{ext_prop(TOKEN_URI, "c-tok-1")}'
            f'{ext_prop(FLAGS_URI, 1)}{ext_prop(DELIVERY_URI, "2026-01-02T03:04:05Z")}</t:Message></m:Items>'
            "</m:CreateItem>")
    [(code, msg)] = call(ews, body)
    [(iid, ck)] = new_ids(msg)
    info = srv.item_info(iid)
    assert (info["is_draft"], info["is_read"], info["received_iso"]) == (False, True, "2026-01-02T03:04:05Z")
    # find_token
    body = (f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            f'<m:Restriction><t:IsEqualTo>{TOKEN_URI}<t:FieldURIOrConstant><t:Constant Value="c-tok-1"/>'
            f'</t:FieldURIOrConstant></t:IsEqualTo></m:Restriction><m:ParentFolderIds><t:FolderId Id="{inbox}"/>'
            "</m:ParentFolderIds></m:FindItem>")
    [(code, msg)] = call(ews, body)
    items = msg.find("m:RootFolder/t:Items", NS)
    assert [x.find("t:ItemId", NS).get("Id") for x in items] == [iid]
    assert items[0].find("t:ItemId", NS).get("ChangeKey") == ck
    # BE_SAVE_DRAFT, then replace_mime with its change key, then update_props without one
    draft, dck = create(ews, eml("C draft"), folder=f'<t:FolderId Id="{drafts}"/>', token="c-tok-2")
    new = eml("C draft v2")
    body = (f'<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AutoResolve"><m:ItemChanges>'
            f'<t:ItemChange><t:ItemId Id="{draft}" ChangeKey="{dck}"/><t:Updates><t:SetItemField>'
            f'<t:FieldURI FieldURI="item:MimeContent"/><t:Message><t:MimeContent CharacterSet="UTF-8">'
            f'{base64.b64encode(new).decode()}</t:MimeContent></t:Message></t:SetItemField></t:Updates>'
            "</t:ItemChange></m:ItemChanges></m:UpdateItem>")
    [(code, msg)] = call(ews, body)
    assert code == "NoError" and srv.item_mime(draft) == new
    assert call(ews, body)[0][0] == "ErrorIrresolvableConflict"          # the same change key again: stale
    body = (f'<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite"><m:ItemChanges>'
            f'<t:ItemChange><t:ItemId Id="{draft}"/><t:Updates>'
            + set_field("message:IsRead", "<t:IsRead>false</t:IsRead>")
            + set_field("item:Flag", "<t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag>")
            + set_field("item:Categories", "<t:Categories><t:String>a</t:String><t:String>b</t:String></t:Categories>")
            + "</t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>")
    assert call(ews, body)[0][0] == "NoError"
    info = srv.item_info(draft)
    assert (info["is_read"], info["flag"], info["categories"]) == (False, "Flagged", ["a", "b"])
    # BE_SEND: SendAndSaveCopy into Sent Items
    srv.clear_sent()
    create(ews, eml("C send"), "SendAndSaveCopy", f'<t:FolderId Id="{sent}"/>', token="c-tok-3")
    assert srv.find_token("c-tok-3", "Sent Items") == [srv.sent()[0]["saved_id"]]
    # move with ReturnNewItemIds
    body = (f'<m:MoveItem><m:ToFolderId><t:FolderId Id="{folder_id(srv, "Archive")}"/></m:ToFolderId>'
            f'<m:ItemIds><t:ItemId Id="{iid}"/></m:ItemIds><m:ReturnNewItemIds>true</m:ReturnNewItemIds></m:MoveItem>')
    [(code, msg)] = call(ews, body)
    [(moved, _)] = new_ids(msg)
    assert srv.find_token("c-tok-1") == [moved]
    # folders: create with FolderClass, rename with a change key, move, delete to the trash
    body = (f'<m:CreateFolder><m:ParentFolderId><t:FolderId Id="{inbox}"/></m:ParentFolderId><m:Folders>'
            '<t:Folder><t:FolderClass>IPF.Note</t:FolderClass><t:DisplayName>C folder</t:DisplayName></t:Folder>'
            '</m:Folders></m:CreateFolder>')
    [(code, msg)] = call(ews, body)
    [(fid, fck)] = new_ids(msg)
    body = (f'<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:FolderId Id="{fid}" ChangeKey="{fck}"/>'
            '<t:Updates><t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:DisplayName>'
            'C renamed</t:DisplayName></t:Folder></t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges>'
            '</m:UpdateFolder>')
    [(code, msg)] = call(ews, body)
    assert new_ids(msg)[0][0] == fid and srv.folder(fid)["path"] == "Inbox/C renamed"
    body = (f'<m:MoveFolder><m:ToFolderId><t:DistinguishedFolderId Id="msgfolderroot"/></m:ToFolderId>'
            f'<m:FolderIds><t:FolderId Id="{fid}"/></m:FolderIds></m:MoveFolder>')
    assert codes(ews, body) == ["NoError"] and srv.folder(fid)["path"] == "C renamed"
    body = f'<m:DeleteFolder DeleteType="MoveToDeletedItems"><m:FolderIds><t:FolderId Id="{fid}"/></m:FolderIds></m:DeleteFolder>'
    assert codes(ews, body) == ["NoError"] and srv.folder(fid)["path"] == "Deleted Items/C renamed"


def test_mutated_write_requests_never_break_the_server(tmp_path):
    import random
    with EwsServer(messages=30, seed=8, state=str(tmp_path / "fuzz.jsonl")) as s:
        ews = Ews(s)
        inbox = folder_id(s, "Inbox")
        iid = s.folder("Inbox")["items"][0]
        seeds = [
            create_xml(message_xml(eml("Fuzz"), "tok-fz", ext_prop(FLAGS_URI, 1) + ext_prop(DELIVERY_URI,
                       "2025-01-01T00:00:00Z")), "SaveOnly", f'<t:FolderId Id="{inbox}"/>'),
            create_xml("""<t:Message><t:Subject>Fields</t:Subject><t:Body BodyType="HTML">&lt;b&gt;x</t:Body>
  <t:ToRecipients><t:Mailbox><t:EmailAddress>bob@example.com</t:EmailAddress></t:Mailbox></t:ToRecipients>
  <t:Flag><t:FlagStatus>Flagged</t:FlagStatus></t:Flag></t:Message>""", "SendAndSaveCopy"),
            update_xml(iid, None, set_field("message:IsRead", "<t:IsRead>true</t:IsRead>")
                       + set_field("item:Categories", "<t:Categories><t:String>x</t:String></t:Categories>")
                       + f"<t:SetItemField>{TOKEN_URI}<t:Message>{ext_prop(TOKEN_URI, 'v')}</t:Message></t:SetItemField>",
                       "NeverOverwrite"),
            find_xml(DRAFTS, f"<t:And>{equal_to(TOKEN_URI, 'x')}<t:Not><t:Exists>{FLAGS_URI}</t:Exists></t:Not></t:And>"),
            f'<m:CopyItem><m:ToFolderId><t:DistinguishedFolderId Id="drafts"/></m:ToFolderId><m:ItemIds>'
            f'{item_ref(iid)}</m:ItemIds><m:ReturnNewItemIds>true</m:ReturnNewItemIds></m:CopyItem>',
            f'<m:CreateFolder><m:ParentFolderId><t:FolderId Id="{inbox}"/></m:ParentFolderId><m:Folders>'
            '<t:Folder><t:DisplayName>Fz</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>',
            """<m:UpdateFolder><m:FolderChanges><t:FolderChange><t:DistinguishedFolderId Id="junkemail"/><t:Updates>
  <t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:DisplayName>Junk</t:DisplayName>
  </t:Folder></t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>""",
            f'<m:SendItem SaveItemToFolder="true"><m:ItemIds>{item_ref(iid)}</m:ItemIds></m:SendItem>',
        ]
        rnd = random.Random(9)
        junk = ["", " ", "-1", "0", "1", "2", "9", "0x0E07", "0x1090", "Integer", "String", "SystemTime",
                "StringArray", "true", "false", "x" * 300, "\u00e9\u00fc", "2025-13-45T99:99:99Z",
                "2025-01-01T00:00:00+05:30", "Flagged", "Complete", "Bogus", "HardDelete", "SendOnly",
                "SendAndSaveCopy", "AlwaysOverwrite", "@@@", "AAAA", iid, inbox, "drafts", "deleteditems",
                "msgfolderroot", "item:Subject", "item:Flag", "item:MimeContent", "message:IsRead", "a@b.invalid",
                base64.b64encode(b"Subject: s\r\nTo: x@y.z\r\n\r\nb").decode()]
        for seed in seeds:
            doc = ENVELOPE % seed
            assert ews.post(doc, envelope=False)[0] == 200, seed[:80]
            for _ in range(150):                       # well-formed, with values, attributes, elements changed
                root = ET.fromstring(doc.encode())
                elems = list(root.iter())[4:]
                for _ in range(rnd.randint(1, 3)):
                    e = rnd.choice(elems)
                    op = rnd.random()
                    if op < 0.35:
                        e.text = rnd.choice(junk)
                    elif op < 0.7 and e.attrib:
                        e.set(rnd.choice(sorted(e.attrib)), rnd.choice(junk))
                    elif op < 0.85:
                        parent = next((p for p in root.iter() if e in list(p)), None)
                        if parent is not None:
                            parent.remove(e)
                    else:
                        e.append(ET.fromstring(ET.tostring(rnd.choice(elems))))
                status, _, _ = ews.post(ET.tostring(root), envelope=False)
                assert status in (200, 500)
            for _ in range(60):
                b = bytearray(doc.encode())
                for _ in range(rnd.randint(1, 4)):
                    op = rnd.random()
                    pos = rnd.randrange(len(b))
                    if op < 0.4:
                        del b[pos:pos + rnd.randint(1, 40)]
                    elif op < 0.7:
                        b[pos:pos] = rnd.choice([b"<", b"&", b'"', b"-1", b"0x", b"\xff", b"</t:Message>", b"Id",
                                                 b"\n", b"Array", b"1e99"])
                    else:
                        b[pos] = rnd.randrange(256)
                status, _, _ = ews.post(bytes(b), envelope=False)
                assert status in (200, 500)
        assert "internal error" not in s.log_text(), s.log_text()[-3000:]
        before = s.mailbox(mime=True)
        ews.close()
        s.kill()
        s.start()                                      # whatever was journaled loads again
        assert s.mailbox(mime=True) == before
        ews.close()
