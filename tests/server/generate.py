#!/usr/bin/python3
# Seeds a test mailbox with realistic mail: plain, multipart/alternative,
# multipart/mixed with base64 attachments, UTF-8 bodies, RFC 2047 subjects,
# same-minute duplicate subjects, hostile subjects (../x, a/b, .hidden, control
# characters, 1000 bytes, empty, dots and spaces), a meeting request and an
# NDR, over the two years before an anchor date, CRLF line endings. The anchor
# follows the clock (the start of the current hour, or EXCHANGEFS_TEST_ANCHOR,
# which tests/conftest.py sets once per test session so every server and
# worker of a run agrees), so "the last 7 days" always holds mail whatever
# today's date is. Deterministic for a given (n, seed, big ratio, anchor). Fast: MIME is built
# from strings and a pre-made paragraph pool, not with the email package.
#
# Module use: generate(mailbox, n, seed) -> {"markers": {...}, ...}
# CLI: generate.py --messages N [--seed S] [--big R] [--out DIR]  (writes .eml)

import argparse
import base64
import os
import random
import sys
import time



def clock_anchor():
    """The newest generated message is near this time: EXCHANGEFS_TEST_ANCHOR
    (seconds since the epoch) if set, else the start of the current hour."""
    env = os.environ.get("EXCHANGEFS_TEST_ANCHOR", "")
    return int(env) if env.isdigit() else int(time.time()) // 3600 * 3600


ANCHOR = clock_anchor()
SPAN = 2 * 365 * 86400       # two years of mail
OWNER = ("Alice Example", "alice@example.com")
MARKERS = {"invoice 4711": 1, "quarterly-needle-7f3a": 3}   # marker text -> how many messages

USER_FOLDERS = [("Inbox", "Projects"), ("Inbox/Projects", "2026"), ("Inbox", "Receipts"),
                ("", "Newsletters"), ("", "Q1/Q2 Plans"), ("", "Überweisungen"), ("", "Empty")]
# Where ordinary messages go, with weights.
FOLDER_WEIGHTS = [("Inbox", 55), ("Sent Items", 10), ("Archive", 8), ("Inbox/Projects", 5),
                  ("Inbox/Projects/2026", 5), ("Inbox/Receipts", 4), ("Newsletters", 5),
                  ("Deleted Items", 3), ("Junk Email", 3), ("Q1/Q2 Plans", 1), ("Überweisungen", 1)]

WORDS = ("the a quarterly report budget meeting agenda project deadline review draft final update "
         "please find attached numbers team customer contract invoice schedule travel plan next week "
         "monday friday server release notes feedback thanks regards question answer proposal status "
         "office lunch call minutes action items risk launch design test results migration backup").split()
UTF8_TEXT = ["Grüße aus Köln, schöne Woche! Straße, Maß, Übermut.", "Ça va très bien, merci. Déjà vu à Noël.",
             "Καλημέρα κόσμε, τι κάνεις;", "日本語のテキストです。よろしくお願いします。",
             "Привет, как дела? Всё хорошо.", "Emoji: 📧 📎 ✅ 🚀 — done.", "¿Qué tal? Año nuevo, señor."]
PEOPLE = [("Bob Smith", "bob@example.com"), ("Carol Jones", "carol@example.org"),
          ("Dave O'Brien", "dave@example.net"), ("Smith, Erin", "erin@example.com"),
          ("Jürgen Müller", "juergen@beispiel.de"), ("Zoë Álvarez", "zoe@ejemplo.es"),
          ("佐藤 花子", "hanako@example.jp"), ("", "noreply@newsletter.example"),
          ("Frank Li", "frank@example.com"), ("Grace Hopper", "grace@navy.example")]
TOPICS = ["Quarterly numbers", "Budget review", "Lunch on Friday?", "Release notes", "Contract draft",
          "Travel plan", "Server migration", "Meeting minutes", "Action items", "Status update",
          "Customer feedback", "Design review", "Backup report", "Welcome aboard", "Invoice question"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def rfc2822_date(ts):
    t = time.gmtime(ts)
    return f"{DAYS[t.tm_wday]}, {t.tm_mday:02d} {MONTHS[t.tm_mon - 1]} {t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def encoded_words(s):
    """RFC 2047 B-encoding in words of at most 45 UTF-8 bytes, folded."""
    words, chunk = [], ""
    for c in s:
        if len((chunk + c).encode()) > 45:
            words.append(chunk)
            chunk = ""
        chunk += c
    words.append(chunk)
    return "\r\n ".join("=?UTF-8?B?" + base64.b64encode(w.encode()).decode() + "?=" for w in words)


def header_text(s):
    if all(32 <= ord(c) < 127 for c in s) and len(s) <= 900 and s == s.strip():
        return s
    return encoded_words(s)


def address(name, addr):
    if not name:
        return addr
    if not name.isascii():
        return f"{encoded_words(name)} <{addr}>"
    if any(c in name for c in ',.;:"\'()<>@'):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{addr}>'
    return f"{name} <{addr}>"


def wrap(text, width=76):
    out, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w.encode()) > width:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    out.append(line)
    return "\r\n".join(out)


class Seeder:
    def __init__(self, mb, seed, big_ratio, anchor):
        self.mb, self.rnd, self.big_ratio, self.anchor = mb, random.Random(seed), big_ratio, anchor
        self.seed = seed
        r = self.rnd
        self.paras = [wrap(" ".join(r.choice(WORDS) for _ in range(r.randint(40, 90))).capitalize() + ".")
                      for _ in range(64)]
        self.folders = {}
        self.markers = {k: [] for k in MARKERS}
        self.hostile = []

    def folder(self, path):
        if path not in self.folders:
            self.folders[path] = self.mb.folder_by_path(path)
        return self.folders[path]

    def body_text(self, i, utf8=False):
        r = self.rnd
        paras = [r.choice(self.paras) for _ in range(r.randint(1, 4))]
        if utf8:
            paras.insert(1, wrap(" ".join(r.sample(UTF8_TEXT, 3))))
        return f"Hello,\r\n\r\n" + "\r\n\r\n".join(paras) + f"\r\n\r\nRef {self.seed}-{i:07d}\r\n-- \r\nSent from the test mailbox\r\n"

    def mime(self, i, subject_hdr, sender, to, ts, body_kind, extra_text="", attach=0, utf8=False, extra_headers=""):
        r = self.rnd
        mid = f"<{i:07d}.{r.getrandbits(48):012x}@{sender[1].split('@')[1]}>"
        head = (f"Received: from mx.example.net by mbx01.example.com; {rfc2822_date(ts)}\r\n"
                f"From: {address(*sender)}\r\nTo: {address(*to)}\r\n"
                + (f"Subject: {subject_hdr}\r\n" if subject_hdr is not None else "")
                + f"Date: {rfc2822_date(ts - r.randint(1, 90))}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
                + extra_headers)
        text = self.body_text(i, utf8) + extra_text
        if utf8 or not text.isascii():
            cte = r.choice(["8bit", "base64"])
            payload = text if cte == "8bit" else base64.encodebytes(text.encode()).decode().replace("\n", "\r\n")
            textpart = f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{payload}"
        else:
            textpart = f"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}"
        if body_kind == "alt":
            html = "<html><body>" + "".join(f"<p>{p}</p>\r\n" for p in text.split("\r\n\r\n")) + "</body></html>\r\n"
            b = f"=_alt_{i:07d}"
            textpart = (f'Content-Type: multipart/alternative; boundary="{b}"\r\n\r\n--{b}\r\n{textpart}\r\n--{b}\r\n'
                        f"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n--{b}--\r\n")
        if not attach:
            return (head + textpart).encode(), mid, False
        b = f"=_mix_{i:07d}"
        name = r.choice(["report.pdf", "numbers.xlsx", "photo.jpg", "Übersicht 2026.pdf", "notes.txt"])
        disp = f'filename="{name}"' if name.isascii() else "filename*=UTF-8''" + "".join(
            c if c.isascii() and c.isalnum() or c in "._-" else "".join(f"%{x:02X}" for x in c.encode()) for c in name)
        data = base64.encodebytes(r.randbytes(attach)).decode().replace("\n", "\r\n")
        body = (f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\nThis is a multi-part message in MIME format.\r\n'
                f"--{b}\r\n{textpart}\r\n--{b}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; {disp}\r\n\r\n{data}--{b}--\r\n")
        return (head + body).encode(), mid, True

    def add(self, i, folder, subject, ts, subject_hdr=None, body_kind="plain", extra_text="", attach=0,
            utf8=False, sender=None, item_class="IPM.Note", extra_headers="", is_read=None):
        r = self.rnd
        f = self.folder(folder)
        sent_folder = f.distinguished in ("sentitems", "drafts", "outbox")
        if sender is None:
            sender = OWNER if sent_folder else r.choice(PEOPLE)
        to = r.choice(PEOPLE) if sent_folder else OWNER
        if subject_hdr is None and subject is not None:
            subject_hdr = header_text(subject)
        mime, mid, has_att = self.mime(i, subject_hdr, sender, to, ts, body_kind, extra_text, attach, utf8, extra_headers)
        if is_read is None:
            is_read = sent_folder or r.random() < (0.9 if self.anchor - ts > 30 * 86400 else 0.4)
        fields = dict(subject=subject, from_name=sender[0], from_addr=sender[1], to=address(*to),
                      cc="", sent=ts - r.randint(1, 90), message_id=mid, has_attachments=has_att)
        return self.mb.add_item(f, mime, received=ts, is_read=is_read, item_class=item_class, fields=fields)

    def specials(self):
        """(folder, subject, kwargs) of the messages every seeded mailbox has."""
        r = self.rnd
        long_subject = ("Long subject äöü " * 80).encode()[:990].decode("utf-8", "ignore")
        long_subject += "x" * (1000 - len(long_subject.encode()))
        day = self.anchor - 3 * 86400 - (self.anchor % 86400) + 10 * 3600 + 15 * 60   # 10:15 three days ago
        out = [("Inbox", s, {"hostile": True}) for s in
               ["../x", "a/b", ".hidden", "ctrl\x01char\ttab\x7fdel", long_subject, "", "   ", "....", ". . .",
                "multi\r\nline", 'He said "hi" \\ <b>&amp;</b>', "Trailing space ", "📧 Emoji only 🚀"]]
        out.append(("Inbox", None, {"hostile": True}))                   # no Subject header at all
        out += [("Inbox", "Weekly sync", {"ts": day + s}) for s in (5, 20, 40)]  # same minute
        out += [("Sent Items", "Weekly sync", {"ts": day + 50})]
        out.append(("Inbox", "Grüße aus Köln", {"subject_hdr": "=?iso-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?="}))
        out.append(("Inbox", "Ünïcödé Grüße 日本語", {"utf8": True}))
        out.append(("Inbox/Projects", "Invoice for October", {"marker": "invoice 4711"}))
        out += [(f, "Needle in a haystack", {"marker": "quarterly-needle-7f3a"})
                for f in ("Inbox", "Archive", "Inbox/Projects/2026")]
        out.append(("Inbox", "Big attachment", {"attach": 300 * 1024}))
        out.append(("Inbox", "Small attachment", {"attach": 12 * 1024, "body_kind": "alt"}))
        out.append(("Inbox", "Invitation: Design review", {"item_class": "IPM.Schedule.Meeting.Request",
                                                           "extra_headers": "X-Meeting: yes\r\n"}))
        out.append(("Inbox", "Undeliverable: Status update", {"item_class": "REPORT.IPM.Note.NDR",
                                                              "sender": ("Mail Delivery System", "postmaster@example.com")}))
        out += [("Drafts", "Unfinished draft", {}), ("Sent Items", "Re: Quarterly numbers", {})]
        for o in out:
            o[2].setdefault("ts", self.anchor - r.randint(0, SPAN))
        return out

    def run(self, n):
        r = self.rnd
        for parent, name in USER_FOLDERS:
            p = self.mb.folder_by_path(parent)
            if self.mb.folder_by_path(f"{parent}/{name}" if parent else name) is None:
                self.mb.create_folder(p, name)
        specs = self.specials()[:n]
        paths = [p for p, _ in FOLDER_WEIGHTS]
        weights = [w for _, w in FOLDER_WEIGHTS]
        for _ in range(n - len(specs)):
            subj = r.choice(TOPICS)
            if r.random() < 0.2:
                subj = r.choice(["Re: ", "RE: ", "Fwd: ", "AW: "]) + subj
            kw = {"ts": self.anchor - int(SPAN * r.random() ** 1.5)}
            x = r.random()
            if x < 0.25:
                kw["body_kind"] = "alt"
            if r.random() < 0.08:
                kw["utf8"] = True
                subj += " " + r.choice(["– Grüße", "éte", "日本", "✅"])
            if r.random() < self.big_ratio:
                kw["attach"] = r.randint(200, 600) * 1024
            elif r.random() < 0.02:
                kw["attach"] = r.randint(2, 20) * 1024
            specs.append((r.choices(paths, weights)[0], subj, kw))
        specs.sort(key=lambda s: s[2]["ts"])          # change numbers follow arrival, as on a real server
        for i, (folder, subject, kw) in enumerate(specs):
            marker = kw.pop("marker", None)
            hostile = kw.pop("hostile", False)
            if marker:
                kw["extra_text"] = f"\r\nPlease pay {marker} by Friday.\r\n" if marker.startswith("invoice") \
                    else f"\r\nToken: {marker}\r\n"
            it = self.add(i, folder, subject, **kw)
            if marker:
                self.markers[marker].append(it.id)
            if hostile:
                self.hostile.append(it.id)
        self.mb.markers = dict(self.mb.markers, **{k: v for k, v in self.markers.items() if v},
                               hostile=self.hostile)
        return {"markers": self.markers, "hostile": self.hostile}


def generate(mailbox, n, seed=1, big_ratio=0.0005, anchor=ANCHOR, pim=False):
    """Add user folders and n messages to mailbox. Returns {"markers":
    {text: [item ids]}, "hostile": [item ids]}; also stored in mailbox.markers.
    pim=True also adds the Tasks/Notes/Journal folders and the calendar
    items, contacts and tasks of generate_pim (opt-in: existing suites
    count folders and items)."""
    with mailbox.lock:
        info = Seeder(mailbox, seed, big_ratio, anchor).run(n)
        if pim:
            info["pim"] = generate_pim(mailbox, seed, anchor)
        return info


# A tiny JPEG (SOI, JFIF APP0, EOI): enough for a contact photo round trip.
PHOTO = base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                         + bytes(range(256)) + b"\xff\xd9").decode("ascii")


def _at(anchor, days, hhmm, tz):
    """UTC seconds of local time hh:mm in tz, `days` after the anchor's local date."""
    import datetime
    import pim
    d = pim.local(anchor, tz).date() + datetime.timedelta(days=days)
    return pim.utc_of_local(datetime.datetime(d.year, d.month, d.day, hhmm // 100, hhmm % 100), tz)


def pim_specs(seed=1, anchor=ANCHOR):
    """[(kind, marker, canonical dict)] of the seeded calendar items,
    contacts and tasks, dated relative to the anchor; deterministic."""
    import pim
    r = random.Random(f"pim/{seed}")
    we, pt, tk = "W. Europe Standard Time", "Pacific Standard Time", "Tokyo Standard Time"
    out = []

    def ev(marker, **kw):
        kw.setdefault("uid", f"040000008200E00074C5B7101A82E0080000000{seed:04d}{len(out):04d}"
                      + f"{r.getrandbits(64):016X}")
        out.append(("calendar", marker, pim.new_event(**kw)))
    me = list(OWNER)
    ev("single", subject="Design review", tz=we, start=_at(anchor, 1, 1000, we), end=_at(anchor, 1, 1100, we),
       location="Room 4.01", body="Agenda:\n1. Mockups\n2. Timeline", organizer=me,
       attendees=[["Bob Smith", "bob@example.com", "Required"], ["Jürgen Müller", "juergen@beispiel.de", "Optional"]])
    ev("allday", subject="Company holiday", tz=we, all_day=True, busy="OOF", reminder=None,
       start=_at(anchor, 3, 0, we), end=_at(anchor, 4, 0, we))
    first = _at(anchor, -14, 900, we)
    weekly = dict(subject="Weekly sync", tz=we, start=first, end=first + 1800, location="Teams",
                  recurrence={"freq": "WEEKLY", "interval": 1, "days": [pim.DAYS[(pim.local(first, we).weekday() + 1) % 7]],
                              "count": 10, "until": None})
    occ = pim.occurrences(dict(weekly, exceptions=[]))
    weekly["exceptions"] = [{"orig": occ[1][0], "deleted": False, "start": occ[1][1] + 3600,
                             "end": occ[1][2] + 3600, "subject": "Weekly sync (moved)", "location": "Room 2"},
                            {"orig": occ[2][0], "deleted": True}]
    ev("recurring", **weekly)
    ev("berlin", subject="Call with the Berlin office", tz=we, start=_at(anchor, 2, 1500, we),
       end=_at(anchor, 2, 1530, we))
    ev("seattle", subject="Standup in Seattle", tz=pt, start=_at(anchor, 2, 900, pt), end=_at(anchor, 2, 915, pt))
    ev("tokyo", subject="東京 partner call", tz=tk, start=_at(anchor, 5, 1000, tk), end=_at(anchor, 5, 1100, tk),
       location="会議室 A")
    ev("hostile_big", subject="Huge description", tz="UTC", start=_at(anchor, 7, 1200, "UTC"),
       end=_at(anchor, 7, 1300, "UTC"), body=("0123456789abcdef" * 64 + "\n") * 1000)
    ev("hostile_lines", subject="Broken\rlines; commas, \\ backslash", tz="UTC", start=_at(anchor, 8, 1200, "UTC"),
       end=_at(anchor, 8, 1300, "UTC"), location="a;b,c",
       body="bare CR\rbare LF\nCRLF\r\nctrl\x01\x7f\ttab " + "long " * 400)
    out.append(("contact", "photo", pim.new_contact(
        given="Jürgen", surname="Müller", display="Jürgen Müller", company="Beispiel GmbH",
        job_title="Einkäufer", emails=["juergen@beispiel.de"], phones={"mobile": "+49 170 1234567"},
        birthday="1980-02-29", photo=PHOTO, notes="Spricht Deutsch und Français.")))
    out.append(("contact", "japanese", pim.new_contact(given="花子", surname="佐藤", display="佐藤 花子",
                                                        emails=["hanako@example.jp"])))
    for i, (g, s, e) in enumerate([("Bob", "Smith", "bob@example.com"), ("Carol", "Jones", "carol@example.org"),
                                   ("Dave", "O'Brien", "dave@example.net")]):
        out.append(("contact", f"plain{i}", pim.new_contact(given=g, surname=s, emails=[e],
                                                             phones={"business": f"+1 555 01{r.randint(10, 99)}"})))
    out.append(("task", "due", pim.new_task(subject="Submit expense report", body="Receipts are in the folder.",
                                            start=_at(anchor, 0, 0, "UTC"), due=_at(anchor, 2, 0, "UTC"),
                                            importance="High")))
    out.append(("task", "done", pim.new_task(subject="Renew passport", complete=True, status="Completed",
                                             percent=100, completed=anchor - 5 * 86400,
                                             due=_at(anchor, -6, 0, "UTC"))))
    out.append(("task", "nodue", pim.new_task(subject="Read the Ünïcödé handbook")))
    return out


def generate_pim(mailbox, seed=1, anchor=ANCHOR):
    """Add the PIM folders and items of pim_specs(); returns {marker: item id}
    (also in mailbox.markers["pim"])."""
    with mailbox.lock:
        mailbox.add_pim_folders()
        ids = {}
        for kind, marker, p in pim_specs(seed, anchor):
            import pim
            f = mailbox.distinguished[pim.KIND_FOLDER[kind]]
            ids[marker] = mailbox.add_pim(f, p, received=anchor - 86400).id
        mailbox.markers = dict(mailbox.markers, pim=ids)
        return ids


def main(argv=None):
    ap = argparse.ArgumentParser(description="Seed a test mailbox and write its messages as .eml files.")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big", type=float, default=0.0005, help="fraction of messages with a 200-600 KB attachment")
    ap.add_argument("--out", help="directory to write <folder path>/<n>.eml into (default: only count)")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from mailbox import Mailbox
    mb = Mailbox()
    t0 = time.time()
    info = generate(mb, args.messages, args.seed, args.big)
    took = time.time() - t0
    total = sum(len(it.mime) for it in mb.items.values())
    if args.out:
        for it in mb.items.values():
            d = os.path.join(args.out, *[p.replace("/", "\u2215") for p in mb.folder_path(it.folder)])
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{it.folder.num}-{it.num}.eml"), "wb") as out:
                out.write(it.mime)
    print(f"{len(mb.items)} messages, {total} bytes of MIME in {took:.1f}s; markers: {info['markers']}")


if __name__ == "__main__":
    main()
