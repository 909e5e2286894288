# The EWS operations of the test server: GetFolder, SyncFolderHierarchy,
# SyncFolderItems, GetItem, FindFolder, FindItem (with restrictions, see
# props.py) here, the write operations in ops_write.py, notifications
# (Subscribe, GetEvents, GetStreamingEvents, Unsubscribe) in notify.py,
# ResolveNames in directory.py. Each
# takes the mailbox and the parsed operation element and returns the response
# document (bytes);
# request-level failures raise soap.Fault. Per-id failures become error
# response messages in request order, as Exchange sends them.

import base64
import binascii

import props
import render
from mailbox import MailboxError
from soap import (Fault, error_message, folder_id_refs, local, m, ok_message, response,
                  schema_fault, shape_of, t, text_of)

MAX_IDS_PER_REQUEST = 1000
NOT_FOUND_ITEM = "The specified object was not found in the store., The process failed to get the correct properties."
NOT_FOUND_FOLDER = "The specified folder could not be found in the store."
MALFORMED = "Id is malformed."


def id_is_malformed(s):
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return True
    return len(raw) < 24


def resolve_folder(mb, ref):
    """Folder for a ("id"|"dist", value) reference, or raise MailboxError."""
    kind, value = ref
    if kind == "dist":
        f = mb.distinguished.get(value)
    else:
        if id_is_malformed(value):
            raise MailboxError("ErrorInvalidIdMalformed", MALFORMED)
        f = mb.folders.get(value)
    if f is None:
        raise MailboxError("ErrorFolderNotFound", NOT_FOUND_FOLDER)
    return f


def _int_attr(elem, name, default, lo, hi):
    v = elem.get(name)
    if v is None:
        return default
    try:
        n = int(v.strip())
    except ValueError:
        raise schema_fault(f"The '{name}' attribute is invalid - The value '{v}' is invalid.") from None
    if not lo <= n <= hi:
        raise schema_fault(f"The '{name}' attribute is invalid - The value '{v}' is out of range.")
    return n


def _page(view, total):
    """(start, end, next_offset) for an IndexedPage*View over total entries."""
    if view is None:
        return 0, total, total
    limit = _int_attr(view, "MaxEntriesReturned", total, 1, 2 ** 31 - 1)
    offset = _int_attr(view, "Offset", 0, 0, 2 ** 31 - 1)
    if (view.get("BasePoint") or "Beginning") == "End":
        end = max(0, total - offset)
        start = max(0, end - limit)
        return start, end, start
    start = min(offset, total)
    end = min(total, start + limit)
    return start, end, end


def _root_folder(inner_tag, entries_xml, start, end, next_offset, total):
    last = "true" if end >= total else "false"
    return (f'<m:RootFolder IndexedPagingOffset="{next_offset}" TotalItemsInView="{total}" '
            f'IncludesLastItemInRange="{last}"><t:{inner_tag}>{"".join(entries_xml)}</t:{inner_tag}></m:RootFolder>')


# ---- operations --------------------------------------------------------------------

def get_folder(mb, op):
    base, fields, _, _ = shape_of(op.find(m("FolderShape")))
    fields = render.folder_fields(base, fields)
    refs = folder_id_refs(op.find(m("FolderIds")))
    if not refs:
        raise schema_fault("The element 'FolderIds' has incomplete content.")
    out = []
    for ref in refs[:MAX_IDS_PER_REQUEST]:
        try:
            f = resolve_folder(mb, ref)
            out.append(ok_message("GetFolder", f"<m:Folders>{render.folder_xml(f, fields)}</m:Folders>"))
        except MailboxError as e:
            out.append(error_message("GetFolder", e.code, e.text))
    return response("GetFolder", out)


def sync_folder_hierarchy(mb, op):
    base, fields, _, _ = shape_of(op.find(m("FolderShape")))
    fields = render.folder_fields(base, fields)
    refs = folder_id_refs(op.find(m("SyncFolderId")))
    state = text_of(op, m("SyncState"), "")
    tail = "<m:SyncState/><m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange>"
    try:
        top = resolve_folder(mb, refs[0]) if refs else mb.root
        changes, new_state, last = mb.sync_hierarchy(top, state)
    except MailboxError as e:
        return response("SyncFolderHierarchy", [error_message("SyncFolderHierarchy", e.code, e.text, tail)])
    xml = []
    for kind, obj in changes:
        if kind == "delete":
            xml.append(f"<t:Delete>{render.folder_id_xml(obj)}</t:Delete>")
        else:
            tag = "Create" if kind == "create" else "Update"
            xml.append(f"<t:{tag}>{render.folder_xml(obj, fields)}</t:{tag}>")
    inner = (f"<m:SyncState>{new_state}</m:SyncState><m:IncludesLastFolderInRange>{render.tf(last)}"
             f"</m:IncludesLastFolderInRange><m:Changes>{''.join(xml)}</m:Changes>")
    return response("SyncFolderHierarchy", [ok_message("SyncFolderHierarchy", inner)])


def sync_folder_items(mb, op):
    base, fields, _, _ = shape_of(op.find(m("ItemShape")))
    fields = render.item_fields(base, fields, "list")
    refs = folder_id_refs(op.find(m("SyncFolderId")))
    if not refs:
        raise schema_fault("The element 'SyncFolderItems' has invalid child element 'MaxChangesReturned'. "
                           "List of possible elements expected: 'SyncFolderId'.")
    max_text = text_of(op, m("MaxChangesReturned"))
    try:
        max_changes = int((max_text or "").strip())
    except ValueError:
        max_changes = -1
    if not 1 <= max_changes <= 512:
        raise schema_fault(f"The 'MaxChangesReturned' element is invalid - The value '{max_text}' is invalid "
                           "according to its datatype 'MaxSyncChangesReturnedType' - The value must be "
                           "between 1 and 512.")
    scope = (text_of(op, m("SyncScope"), "NormalItems") or "").strip()
    if scope not in ("NormalItems", "NormalAndAssociatedItems"):
        raise schema_fault(f"The 'SyncScope' element is invalid - The value '{scope}' is invalid.")
    ignore_elem = op.find(m("Ignore"))
    ignore = frozenset(e.get("Id") for e in ignore_elem) if ignore_elem is not None else frozenset()
    state = text_of(op, m("SyncState"), "")
    tail = "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
    try:
        try:
            f = resolve_folder(mb, refs[0])
        except MailboxError as e:
            if e.code != "ErrorFolderNotFound":
                raise
            raise MailboxError("ErrorSyncFolderNotFound", "The specified folder could not be found.") from None
        changes, new_state, last = mb.sync_items(f, state, max_changes, ignore)
    except MailboxError as e:
        return response("SyncFolderItems", [error_message("SyncFolderItems", e.code, e.text, tail)])
    xml = []
    for kind, obj in changes:
        if kind == "delete":
            xml.append(f"<t:Delete>{render.item_id_xml(obj)}</t:Delete>")
        elif kind == "read":
            xml.append(f"<t:ReadFlagChange>{render.item_id_xml(obj)}<t:IsRead>{render.tf(obj.is_read)}"
                       "</t:IsRead></t:ReadFlagChange>")
        else:
            tag = "Create" if kind == "create" else "Update"
            xml.append(f"<t:{tag}>{render.item_xml(obj, fields)}</t:{tag}>")
    inner = (f"<m:SyncState>{new_state}</m:SyncState><m:IncludesLastItemInRange>{render.tf(last)}"
             f"</m:IncludesLastItemInRange><m:Changes>{''.join(xml)}</m:Changes>")
    return response("SyncFolderItems", [ok_message("SyncFolderItems", inner)])


def get_item(mb, op):
    base, fields, include_mime, body_type = shape_of(op.find(m("ItemShape")))
    fields = render.item_fields(base, fields, "get")
    ids_elem = op.find(m("ItemIds"))
    if ids_elem is None or len(ids_elem) == 0:
        raise schema_fault("The element 'ItemIds' has incomplete content.")
    if len(ids_elem) > MAX_IDS_PER_REQUEST:
        raise Fault("ErrorInvalidRequest", "The request is invalid.")
    out = []
    for e in ids_elem:
        iid = e.get("Id") or ""
        it = mb.items.get(iid) if local(e.tag) == "ItemId" else None
        if it is None and local(e.tag) == "ItemId" and not id_is_malformed(iid):
            import pim_ews
            it = pim_ews.occurrence_by_id(mb, iid)      # an occurrence of a recurring master
        if it is not None:
            out.append(ok_message("GetItem", f"<m:Items>{render.item_xml(it, fields, include_mime, body_type)}</m:Items>"))
        elif local(e.tag) != "ItemId" or id_is_malformed(iid):
            out.append(error_message("GetItem", "ErrorInvalidIdMalformed", MALFORMED, "<m:Items/>"))
        else:
            out.append(error_message("GetItem", "ErrorItemNotFound", NOT_FOUND_ITEM, "<m:Items/>"))
    return response("GetItem", out)


def find_folder(mb, op):
    traversal = op.get("Traversal") or "Shallow"
    if traversal not in ("Shallow", "Deep", "SoftDeleted"):
        raise schema_fault(f"The 'Traversal' attribute is invalid - The value '{traversal}' is invalid.")
    base, fields, _, _ = shape_of(op.find(m("FolderShape")))
    fields = render.folder_fields(base, fields)
    if op.find(m("Restriction")) is not None:
        return _each_parent(mb, op, "FindFolder", None, unsupported=True)
    view = op.find(m("IndexedPageFolderView"))

    def listing(f):
        if traversal == "SoftDeleted":
            return []
        return mb.descendants(f) if traversal == "Deep" else list(f.children)

    def page(f):
        entries = listing(f)
        start, end, nxt = _page(view, len(entries))
        return _root_folder("Folders", [render.folder_xml(x, fields) for x in entries[start:end]],
                            start, end, nxt, len(entries))
    return _each_parent(mb, op, "FindFolder", page)


def find_item(mb, op):
    traversal = op.get("Traversal") or "Shallow"
    if traversal not in ("Shallow", "SoftDeleted", "Associated"):
        raise schema_fault(f"The 'Traversal' attribute is invalid - The value '{traversal}' is invalid.")
    base, fields, _, _ = shape_of(op.find(m("ItemShape")))
    fields = render.item_fields(base, fields, "list")
    if op.find(m("QueryString")) is not None:
        return _each_parent(mb, op, "FindItem", None, unsupported=True)
    pred = None
    if op.find(m("Restriction")) is not None:
        try:
            pred = props.compile_restriction(op.find(m("Restriction")))
        except MailboxError as e:
            return _each_parent(mb, op, "FindItem", None, unsupported=e)
    view = op.find(m("IndexedPageItemView"))
    order = _sort_order(op.find(m("SortOrder")))
    cal_view = op.find(m("CalendarView"))
    if cal_view is not None:
        import pim_ews
        return _each_parent(mb, op, "FindItem", lambda f: pim_ews.calendar_view(f, cal_view, fields))

    def page(f):
        if traversal == "Shallow":
            entries = mb.items_sorted(f)
        elif traversal == "SoftDeleted":
            entries = sorted((x for x in mb.dumpster if x.folder is f), key=lambda i: (-i.received, -i.num))
        else:
            entries = []
        if pred is not None:
            entries = [x for x in entries if pred(x)]
        if order is not None:
            key, reverse = order
            entries = sorted(entries, key=key, reverse=reverse)
        start, end, nxt = _page(view, len(entries))
        return _root_folder("Items", [render.item_xml(x, fields) for x in entries[start:end]],
                            start, end, nxt, len(entries))
    return _each_parent(mb, op, "FindItem", page)


SORT_KEYS = {
    "item:DateTimeReceived": lambda i: (i.received, i.num),
    "item:DateTimeSent": lambda i: (i.sent, i.num),
    "item:Subject": lambda i: ((i.subject or "").lower(), i.num),
    "item:Size": lambda i: (i.size, i.num),
}


def _sort_order(elem):
    if elem is None:
        return None
    for fo in elem:
        uri = fo.find(t("FieldURI"))
        if uri is not None and uri.get("FieldURI") in SORT_KEYS:
            return SORT_KEYS[uri.get("FieldURI")], fo.get("Order", "Ascending") == "Descending"
    return None


def _each_parent(mb, op, name, page, unsupported=False):
    refs = folder_id_refs(op.find(m("ParentFolderIds")))
    if not refs:
        raise schema_fault("The element 'ParentFolderIds' has incomplete content.")
    out = []
    for ref in refs:
        try:
            f = resolve_folder(mb, ref)
            if isinstance(unsupported, MailboxError):
                raise unsupported
            if unsupported:
                raise MailboxError("ErrorUnsupportedQueryFilter",
                                   "The restriction or sort order is too complex for this operation.")
            out.append(ok_message(name, page(f)))
        except MailboxError as e:
            out.append(error_message(name, e.code, e.text))
    return response(name, out)


OPERATIONS = {
    "GetFolder": get_folder,
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "SyncFolderItems": sync_folder_items,
    "GetItem": get_item,
    "FindFolder": find_folder,
    "FindItem": find_item,
}


def operations():
    """Every operation by name: these, the write ones of ops_write.py and
    the notification ones of notify.py (imported here, late, because they
    build on this module)."""
    if "CreateItem" not in OPERATIONS:
        from notify import NOTIFY_OPERATIONS
        from ops_write import WRITE_OPERATIONS
        from directory import RESOLVE_OPERATIONS
        OPERATIONS.update(WRITE_OPERATIONS)
        OPERATIONS.update(RESOLVE_OPERATIONS)
        OPERATIONS.update(NOTIFY_OPERATIONS)
        OPERATIONS["GetUserAvailabilityRequest"] = _get_user_availability
    return OPERATIONS


def _get_user_availability(mb, op):
    import pim_ews
    from generate import OWNER
    user = mb.uid.rsplit("-", 1)[0] if "-" in mb.uid else mb.uid
    owner = OWNER[1] if user == "alice" else (user if "@" in user else f"{user}@example.com")
    return pim_ews.get_user_availability(mb, op, owner)


def dispatch(mb, op_elem):
    """Run one operation; returns response bytes or raises Fault."""
    name = local(op_elem.tag)
    fn = operations().get(name) if op_elem.tag == m(name) else None
    if fn is None:
        raise Fault("ErrorInvalidRequest", "The request is invalid.")
    with mb.lock:
        return fn(mb, op_elem)

