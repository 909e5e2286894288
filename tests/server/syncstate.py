# Opaque EWS sync states for the test mailbox server.
#
# A sync state is what Exchange calls an ICS state: the highest change number
# the client has seen (CnsetSeen, here a single watermark because changes are
# served in change-number order) and the set of objects the client has been
# given (IdsetGiven, here ranges of per-folder object numbers). It is sent to
# the client as base64 of gzip'ed JSON, so it starts with "H4sI" like the
# states real Exchange servers hand out. It names the mailbox, its epoch (the
# "invalidate sync states" fault bumps it), the kind ("items"/"hier") and the
# folder, so a state survives a server restart but not a reset of the epoch.

import base64
import binascii
import bisect
import gzip
import json
import zlib

MAX_STATE_CHARS = 4 * 1024 * 1024      # cap on what we accept from a client
MAX_STATE_JSON = 16 * 1024 * 1024      # cap on the decompressed size


class InvalidSyncState(Exception):
    """The client's sync state is corrupt, foreign or from an old epoch."""


class RangeSet:
    """A set of positive integers kept as sorted, disjoint, inclusive ranges."""

    __slots__ = ("starts", "ends")

    def __init__(self, ranges=()):
        self.starts = []
        self.ends = []
        for a, b in ranges:
            self.starts.append(a)
            self.ends.append(b)

    def __contains__(self, n):
        i = bisect.bisect_right(self.starts, n) - 1
        return i >= 0 and n <= self.ends[i]

    def __len__(self):
        return sum(b - a + 1 for a, b in zip(self.starts, self.ends))

    def ranges(self):
        return [[a, b] for a, b in zip(self.starts, self.ends)]

    def union(self, nums):
        """Return a new RangeSet holding this set plus the integers in nums."""
        merged = sorted(self.ranges() + [[n, n] for n in nums])
        out = RangeSet()
        for a, b in merged:
            if out.starts and a <= out.ends[-1] + 1:
                if b > out.ends[-1]:
                    out.ends[-1] = b
            else:
                out.starts.append(a)
                out.ends.append(b)
        return out


class SyncState:
    """Decoded state: watermark change number `cn` and the given set."""

    __slots__ = ("cn", "given")

    def __init__(self, cn=0, given=None):
        self.cn = cn
        self.given = given if given is not None else RangeSet()


def encode(mailbox_uid, epoch, kind, folder_num, state):
    doc = {"v": 1, "m": mailbox_uid, "e": epoch, "k": kind, "f": folder_num,
           "c": state.cn, "g": state.given.ranges()}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def decode(text, mailbox_uid, epoch, kind, folder_num, max_cn):
    """Parse a client's state; raise InvalidSyncState on any mismatch."""
    if len(text) > MAX_STATE_CHARS:
        raise InvalidSyncState("state too long")
    try:
        blob = base64.b64decode("".join(text.split()), validate=True)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(blob, MAX_STATE_JSON)
        if inflater.unconsumed_tail or not inflater.eof:
            raise InvalidSyncState("state truncated or too large")
        doc = json.loads(raw)
    except (binascii.Error, zlib.error, ValueError, UnicodeDecodeError) as e:
        raise InvalidSyncState(f"undecodable state: {e}") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise InvalidSyncState("unknown state version")
    if (doc.get("m"), doc.get("e"), doc.get("k"), doc.get("f")) != (mailbox_uid, epoch, kind, folder_num):
        raise InvalidSyncState("state belongs to another mailbox, epoch or folder")
    cn, ranges = doc.get("c"), doc.get("g")
    if type(cn) is not int or not 0 <= cn <= max_cn or not isinstance(ranges, list):
        raise InvalidSyncState("bad watermark")
    given = RangeSet()
    last = 0
    for r in ranges:
        if (not isinstance(r, list) or len(r) != 2 or type(r[0]) is not int
                or type(r[1]) is not int or not last < r[0] <= r[1]):
            raise InvalidSyncState("bad given set")
        given.starts.append(r[0])
        given.ends.append(r[1])
        last = r[1] + 1
    return SyncState(cn, given)
