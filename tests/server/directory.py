# The address book of the test server, one for both front-ends (EAS
# ResolveRecipients in eas.py, EWS ResolveNames here): the mailbox's owner
# and the senders of the messages in the mailbox. A query matches an
# address exactly (then that entry alone), or the start of an address, of a
# display name or of a word of it ("smith" finds "Bob Smith" and
# "Smith, Erin"), case-insensitively; matches come sorted by address.

from generate import OWNER
from soap import esc, m, response

MAX_RESOLUTIONS = 100        # Exchange's limit for one ResolveNames


def owner_address(mb):
    return getattr(mb, "owner_address", None) or OWNER[1]


def entries(mb):
    """{lowercased address: (display name, address)}; the caller holds mb.lock."""
    me = owner_address(mb)
    d = {me.lower(): (OWNER[0], me)}
    for it in mb.items.values():
        if it.from_addr:
            d.setdefault(it.from_addr.lower(), (it.from_name or it.from_addr, it.from_addr))
    return d


def resolve(mb, query):
    """[(display name, address)] matching query; the caller holds mb.lock."""
    q = (query or "").strip().lower()
    if not q:
        return []
    d = entries(mb)
    if q in d:
        return [d[q]]

    def hit(addr, name):
        words = name.lower().replace(",", " ").split()
        return addr.startswith(q) or name.lower().startswith(q) or any(w.startswith(q) for w in words)
    return [v for k, v in sorted(d.items()) if hit(k, v[0])]


# ---- EWS ResolveNames (MS-OXWSRSLNM) ---------------------------------------------------

def resolve_names(mb, op):
    """One response message per UnresolvedEntry: NoError with one
    Resolution, a Warning ErrorNameResolutionMultipleResults with up to 100,
    or an Error ErrorNameResolutionNoResults."""
    name = "ResolveNames"
    entry = op.find(m("UnresolvedEntry"))
    hits = resolve(mb, entry.text if entry is not None else "")
    if not hits:
        return response(name, [
            f'<m:{name}ResponseMessage ResponseClass="Error"><m:MessageText>No results were found.'
            f'</m:MessageText><m:ResponseCode>ErrorNameResolutionNoResults</m:ResponseCode>'
            f'<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{name}ResponseMessage>'])
    shown = hits[:MAX_RESOLUTIONS]
    res = "".join(f"<t:Resolution><t:Mailbox><t:Name>{esc(n)}</t:Name><t:EmailAddress>{esc(a)}"
                  f"</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox"
                  f"</t:MailboxType></t:Mailbox></t:Resolution>" for n, a in shown)
    rset = (f'<m:ResolutionSet TotalItemsInView="{len(shown)}" IncludesLastItemInRange='
            f'"{"true" if len(shown) == len(hits) else "false"}">{res}</m:ResolutionSet>')
    if len(hits) == 1:
        head = f'<m:{name}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
    else:
        head = (f'<m:{name}ResponseMessage ResponseClass="Warning"><m:MessageText>Multiple results were '
                f'found.</m:MessageText><m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode>'
                f'<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>')
    return response(name, [f"{head}{rset}</m:{name}ResponseMessage>"])


RESOLVE_OPERATIONS = {"ResolveNames": resolve_names}
