/*
 * wbxml.c - the WBXML codec of the ActiveSync backend (see wbxml.h): the
 * code page tables of MS-ASWBXML (names, for logs and tests), the encoder,
 * a byte-at-a-time push decoder that streams string and opaque content,
 * and a tree built on it.
 */
#include "backend/eas/wbxml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Code pages (token 0x05 is the first entry). ---- */
static const char *const page_as[] = {
	"Sync", "Responses", "Add", "Change", "Delete", "Fetch", "SyncKey",
	"ClientId", "ServerId", "Status", "Collection", "Class", "Version",
	"CollectionId", "GetChanges", "MoreAvailable", "WindowSize", "Commands",
	"Options", "FilterType", "Truncation", "RtfTruncation", "Conflict",
	"Collections", "ApplicationData", "DeletesAsMoves", "NotifyGUID",
	"Supported", "SoftDelete", "MIMESupport", "MIMETruncation", "Wait", "Limit",
	"Partial", "ConversationMode", "MaxItems", "HeartbeatInterval",
};
static const char *const page_em[] = {
	"Attachment", "Attachments", "AttName", "AttSize", "Att0Id", "AttMethod",
	"AttRemoved", "Body", "BodySize", "BodyTruncated", "DateReceived",
	"DisplayName", "DisplayTo", "Importance", "MessageClass", "Subject", "Read",
	"To", "Cc", "From", "ReplyTo", "AllDayEvent", "Categories", "Category",
	"DTStamp", "EndTime", "InstanceType", "BusyStatus", "Location",
	"MeetingRequest", "Organizer", "RecurrenceId", "Reminder",
	"ResponseRequested", "Recurrences", "Recurrence", "Recurrence_Type",
	"Recurrence_Until", "Recurrence_Occurrences", "Recurrence_Interval",
	"Recurrence_DayOfWeek", "Recurrence_DayOfMonth", "Recurrence_WeekOfMonth",
	"Recurrence_MonthOfYear", "StartTime", "Sensitivity", "TimeZone",
	"GlobalObjId", "ThreadTopic", "MIMEData", "MIMETruncated", "MIMESize",
	"InternetCPID", "Flag", "FlagStatus", "ContentClass", "FlagType",
	"CompleteTime", "DisallowNewTimeProposal",
};
static const char *const page_mv[] = {
	"MoveItems", "Move", "SrcMsgId", "SrcFldId", "DstFldId", "Response",
	"Status", "DstMsgId",
};
static const char *const page_gie[] = {
	"GetItemEstimate", "Version", "Collections", "Collection", "Class",
	"CollectionId", "DateTime", "Estimate", "Response", "Status",
};
static const char *const page_fh[] = {
	"Folders", "Folder", "DisplayName", "ServerId", "ParentId", "Type",
	"Response", "Status", "ContentClass", "Changes", "Add", "Delete", "Update",
	"SyncKey", "FolderCreate", "FolderDelete", "FolderUpdate", "FolderSync",
	"Count", "Version",
};
static const char *const page_rr[] = {
	"ResolveRecipients", "Response", "Status", "Type", "Recipient",
	"DisplayName", "EmailAddress", "Certificates", "Certificate",
	"MiniCertificate", "Options", "To", "CertificateRetrieval",
	"RecipientCount", "MaxCertificates", "MaxAmbiguousRecipients",
	"CertificateCount", "Availability", "StartTime", "EndTime",
	"MergedFreeBusy", "Picture", "MaxSize", "Data", "MaxPictures",
};
static const char *const page_ping[] = {
	"Ping", "AutdState", "Status", "HeartbeatInterval", "Folders", "Folder",
	"Id", "Class", "MaxFolders",
};
static const char *const page_prov[] = {
	"Provision", "Policies", "Policy", "PolicyType", "PolicyKey", "Data",
	"Status", "RemoteWipe", "EASProvisionDoc",
};
static const char *const page_srch[] = {
	"Search", NULL, "Store", "Name", "Query", "Options", "Range", "Status",
	"Response", "Result", "Properties", "Total", "EqualTo", "Value", "And",
	"Or", "FreeText", NULL, "DeepTraversal", "LongId", "RebuildResults",
	"LessThan", "GreaterThan", NULL, NULL, "UserName", "Password",
	"ConversationId", "Picture", "MaxSize", "MaxPictures",
};
static const char *const page_gal[] = {
	"DisplayName", "Phone", "Office", "Title", "Company", "Alias", "FirstName",
	"LastName", "HomePhone", "MobilePhone", "EmailAddress", "Picture", "Status",
	"Data",
};
static const char *const page_asb[] = {
	"BodyPreference", "Type", "TruncationSize", "AllOrNone", NULL, "Body",
	"Data", "EstimatedDataSize", "Truncated", "Attachments", "Attachment",
	"DisplayName", "FileReference", "Method", "ContentId", "ContentLocation",
	"IsInline", "NativeBodyType", "ContentType", "Preview",
	"BodyPartPreference", "BodyPart", "Status", "Add", "Delete", "ClientId",
	"Content", "Location",
};
static const char *const page_set[] = {
	"Settings", "Status", "Get", "Set", "Oof", "OofState", "StartTime",
	"EndTime", "OofMessage", "AppliesToInternal", "AppliesToExternalKnown",
	"AppliesToExternalUnknown", "Enabled", "ReplyMessage", "BodyType",
	"DevicePassword", "Password", "DeviceInformation", "Model", "IMEI",
	"FriendlyName", "OS", "OSLanguage", "PhoneNumber", "UserInformation",
	"EmailAddresses", "SmtpAddress", "UserAgent", "EnableOutboundSMS",
	"MobileOperator", "PrimarySmtpAddress", "Accounts", "Account", "AccountId",
	"AccountName", "UserDisplayName", "SendDisabled", NULL,
	"RightsManagementInformation",
};
static const char *const page_io[] = {
	"ItemOperations", "Fetch", "Store", "Options", "Range", "Total",
	"Properties", "Data", "Status", "Response", "Version", "Schema", "Part",
	"EmptyFolderContents", "DeleteSubFolders", "UserName", "Password", "Move",
	"DstFldId", "ConversationId", "MoveAlways",
};
static const char *const page_cm[] = {
	"SendMail", "SmartForward", "SmartReply", "SaveInSentItems", "ReplaceMime",
	NULL, "Source", "FolderId", "ItemId", "LongId", "InstanceId", "Mime",
	"ClientId", "Status", "AccountId",
};
static const char *const page_em2[] = {
	"UmCallerID", "UmUserNotes", "UmAttDuration", "UmAttOrder",
	"ConversationId", "ConversationIndex", "LastVerbExecuted",
	"LastVerbExecutionTime", "ReceivedAsBcc", "Sender", "CalendarType",
	"IsLeapMonth", "AccountId", "FirstDayOfWeek", "MeetingMessageType",
	NULL, "IsDraft", "Bcc", "Send",
};

static const char *const page_co[] = {
	"Anniversary", "AssistantName", "AssistantPhoneNumber", "Birthday",
	"Body", "BodySize", "BodyTruncated", "Business2PhoneNumber",
	"BusinessAddressCity", "BusinessAddressCountry",
	"BusinessAddressPostalCode", "BusinessAddressState",
	"BusinessAddressStreet", "BusinessFaxNumber", "BusinessPhoneNumber",
	"CarPhoneNumber", "Categories", "Category", "Children", "Child",
	"CompanyName", "Department", "Email1Address", "Email2Address",
	"Email3Address", "FileAs", "FirstName", "Home2PhoneNumber",
	"HomeAddressCity", "HomeAddressCountry", "HomeAddressPostalCode",
	"HomeAddressState", "HomeAddressStreet", "HomeFaxNumber",
	"HomePhoneNumber", "JobTitle", "LastName", "MiddleName",
	"MobilePhoneNumber", "OfficeLocation", "OtherAddressCity",
	"OtherAddressCountry", "OtherAddressPostalCode", "OtherAddressState",
	"OtherAddressStreet", "PagerNumber", "RadioPhoneNumber", "Spouse",
	"Suffix", "Title", "WebPage", "YomiCompanyName", "YomiFirstName",
	"YomiLastName", "CompressedRTF", "Picture", "Alias", "WeightedRank",
};
static const char *const page_cal[] = {
	"Timezone", "AllDayEvent", "Attendees", "Attendee", "Email", "Name",
	"Body", "BodyTruncated", "BusyStatus", "Categories", "Category",
	"CompressedRTF", "DtStamp", "EndTime", "Exception", "Exceptions",
	"Deleted", "ExceptionStartTime", "Location", "MeetingStatus",
	"OrganizerEmail", "OrganizerName", "Recurrence", "Type", "Until",
	"Occurrences", "Interval", "DayOfWeek", "DayOfMonth", "WeekOfMonth",
	"MonthOfYear", "Reminder", "Sensitivity", "Subject", "StartTime", "UID",
	"AttendeeStatus", "AttendeeType", NULL, NULL, NULL, NULL, NULL, NULL,
	NULL, NULL, "DisallowNewTimeProposal", "ResponseRequested",
	"AppointmentReplyTime", "ResponseType", "CalendarType", "IsLeapMonth",
	"FirstDayOfWeek",
};
static const char *const page_tk[] = {
	"Body", "BodySize", "BodyTruncated", "Categories", "Category",
	"Complete", "DateCompleted", "DueDate", "UtcDueDate", "Importance",
	"Recurrence", "Type", "Start", "Until", "Occurrences", "Interval",
	"DayOfMonth", "DayOfWeek", "WeekOfMonth", "MonthOfYear", "Regenerate",
	"DeadOccur", "ReminderSet", "ReminderTime", "Sensitivity", "StartDate",
	"UtcStartDate", "Subject", "CompressedRTF", "OrdinalDate",
	"SubOrdinalDate", "CalendarType", "IsLeapMonth", "FirstDayOfWeek",
};

#define PAGE(n, name, v) [n] = { name, v, sizeof(v) / sizeof(v[0]) }
static const struct {
	const char *name;
	const char *const *tok;
	size_t n;
} pages[] = {
	PAGE(0, "AirSync", page_as),
	PAGE(2, "Email", page_em),
	PAGE(5, "Move", page_mv),
	PAGE(6, "GetItemEstimate", page_gie),
	PAGE(7, "FolderHierarchy", page_fh),
	PAGE(10, "ResolveRecipients", page_rr),
	PAGE(13, "Ping", page_ping),
	PAGE(14, "Provision", page_prov),
	PAGE(15, "Search", page_srch),
	PAGE(16, "GAL", page_gal),
	PAGE(17, "AirSyncBase", page_asb),
	PAGE(18, "Settings", page_set),
	PAGE(20, "ItemOperations", page_io),
	PAGE(21, "ComposeMail", page_cm),
	PAGE(22, "Email2", page_em2),
	PAGE(1, "Contacts", page_co),
	PAGE(4, "Calendar", page_cal),
	PAGE(9, "Tasks", page_tk),
};
#define N_PAGES (sizeof(pages) / sizeof(pages[0]))

const char *wbxml_page_name(unsigned page)
{
	return page < N_PAGES ? pages[page].name : NULL;
}

const char *wbxml_tag_name(unsigned tag, char *tmp, size_t tmplen)
{
	unsigned pg = WBXML_PAGE(tag), tk = WBXML_TOKEN(tag);
	if (pg < N_PAGES && pages[pg].name && tk >= 5 &&
	    tk - 5 < pages[pg].n && pages[pg].tok[tk - 5]) {
		snprintf(tmp, tmplen, "%s:%s", pages[pg].name,
			 pages[pg].tok[tk - 5]);
		return tmp;
	}
	return NULL;
}

/* ---- Encoder ---- */

/* WBXML global tokens */
enum { T_SWITCH = 0x00, T_END = 0x01, T_ENTITY = 0x02, T_STR_I = 0x03,
       T_LITERAL = 0x04, T_OPAQUE = 0xc3, F_CONTENT = 0x40, F_ATTR = 0x80 };

static void put(struct wbxml_enc *e, const void *p, size_t n)
{
	if (!e->failed && buf_append(e->out, p, n))
		e->failed = true;
}

static void put1(struct wbxml_enc *e, unsigned char c)
{
	put(e, &c, 1);
}

static void put_mb(struct wbxml_enc *e, uint32_t v)
{
	unsigned char tmp[5];
	int i = 5;
	unsigned char more = 0;
	do {
		tmp[--i] = (unsigned char)((v & 0x7f) | more);
		more = 0x80;
		v >>= 7;
	} while (v);
	put(e, tmp + i, 5 - (size_t)i);
}

void wbxml_enc_init(struct wbxml_enc *e, struct buf *out)
{
	memset(e, 0, sizeof(*e));
	e->out = out;
	/* version 1.3, public id 1 (unknown), charset 106 (UTF-8), no
	 * string table */
	static const unsigned char hdr[] = { 0x03, 0x01, 0x6a, 0x00 };
	put(e, hdr, sizeof(hdr));
}

static void tag_token(struct wbxml_enc *e, unsigned tag, unsigned flags)
{
	unsigned pg = WBXML_PAGE(tag), tk = WBXML_TOKEN(tag);
	if (pg > 0xff || tk < 5 || (tag & 0xc0)) {
		e->failed = true;
		return;
	}
	if (pg != e->page) {
		put1(e, T_SWITCH);
		put1(e, (unsigned char)pg);
		e->page = pg;
	}
	put1(e, (unsigned char)(tk | flags));
}

void wbxml_start(struct wbxml_enc *e, unsigned tag)
{
	if (e->depth >= WBXML_MAX_DEPTH) {
		e->failed = true;
		return;
	}
	tag_token(e, tag, F_CONTENT);
	e->open[e->depth++] = tag;
}

void wbxml_end(struct wbxml_enc *e)
{
	if (e->depth <= 0) {
		e->failed = true;
		return;
	}
	e->depth--;
	put1(e, T_END);
}

void wbxml_empty(struct wbxml_enc *e, unsigned tag)
{
	tag_token(e, tag, 0);
}

void wbxml_str(struct wbxml_enc *e, unsigned tag, const char *s)
{
	if (!s || !*s) {
		wbxml_empty(e, tag);
		return;
	}
	wbxml_start(e, tag);
	put1(e, T_STR_I);
	put(e, s, strlen(s) + 1);
	wbxml_end(e);
}

void wbxml_uint(struct wbxml_enc *e, unsigned tag, unsigned long n)
{
	char tmp[24];
	snprintf(tmp, sizeof(tmp), "%lu", n);
	wbxml_str(e, tag, tmp);
}

void wbxml_opaque(struct wbxml_enc *e, unsigned tag, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		e->failed = true;
		return;
	}
	wbxml_start(e, tag);
	put1(e, T_OPAQUE);
	put_mb(e, (uint32_t)n);
	put(e, p, n);
	wbxml_end(e);
}

int wbxml_enc_finish(struct wbxml_enc *e)
{
	return e->failed || e->depth ? -1 : 0;
}

/* ---- Push decoder ---- */

enum {
	S_VERSION, S_PUBID, S_PUBID_IDX, S_CHARSET, S_STRTBL_LEN, S_STRTBL,
	S_BODY, S_PAGE, S_STR, S_OPQ_LEN, S_OPQ, S_DONE, S_FAILED,
};

void wbxml_dec_init(struct wbxml_dec *d, const struct wbxml_handler *h)
{
	memset(d, 0, sizeof(*d));
	if (h)
		d->h = *h;
	d->state = S_VERSION;
}

static int fail(struct wbxml_dec *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct wbxml_dec *d, const char *fmt, ...)
{
	char what[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(d->err, sizeof(d->err), "%s at byte %llu", what,
		 (unsigned long long)d->offset);
	d->state = S_FAILED;
	return -1;
}

static int stopped(struct wbxml_dec *d)
{
	d->stopped = true;
	snprintf(d->err, sizeof(d->err), "stopped by receiver at byte %llu",
		 (unsigned long long)d->offset);
	d->state = S_FAILED;
	return -1;
}

/* One byte of a multi-byte integer: 1 when complete, 0 for more, -1 bad. */
static int mb_byte(struct wbxml_dec *d, unsigned char c)
{
	if (d->mb_len == 5 || (d->mb_len == 0 && c == 0x80) ||
	    (d->mb & 0xfe000000u))
		return -1;
	d->mb = (d->mb << 7) | (c & 0x7f);
	d->mb_len++;
	return c & 0x80 ? 0 : 1;
}

static int text_cb(struct wbxml_dec *d, const void *p, size_t n, bool last)
{
	if (d->h.text && d->h.text(d->h.arg, p, n, last))
		return stopped(d);
	return 0;
}

/* A token in the body. */
static int body_token(struct wbxml_dec *d, unsigned char c)
{
	switch (c) {
	case T_SWITCH:
		d->state = S_PAGE;
		return 0;
	case T_END:
		if (d->depth == 0)
			return fail(d, "end tag without an element");
		d->depth--;
		if (d->h.end && d->h.end(d->h.arg, d->stack[d->depth]))
			return stopped(d);
		if (d->depth == 0)
			d->state = S_DONE;
		return 0;
	case T_STR_I:
		if (d->depth == 0)
			return fail(d, "text outside an element");
		d->state = S_STR;
		return 0;
	case T_OPAQUE:
		if (d->depth == 0)
			return fail(d, "opaque data outside an element");
		d->state = S_OPQ_LEN;
		d->mb = 0;
		d->mb_len = 0;
		return 0;
	}
	if ((c & 0x3f) < 5)
		return fail(d, "unsupported WBXML token 0x%02x", c);
	if (c & F_ATTR)
		return fail(d, "attributes are not used in ActiveSync (token 0x%02x)", c);
	if (d->depth == 0 && d->seen_root)
		return fail(d, "second root element");
	unsigned tag = (d->page << 8) | (c & 0x3f);
	bool content = c & F_CONTENT;
	d->seen_root = true;
	if (content) {
		if (d->depth >= WBXML_MAX_DEPTH)
			return fail(d, "elements nested deeper than %d",
				    WBXML_MAX_DEPTH);
		d->stack[d->depth++] = tag;
	}
	if (d->h.start && d->h.start(d->h.arg, tag, !content))
		return stopped(d);
	if (!content) {
		if (d->h.end && d->h.end(d->h.arg, tag))
			return stopped(d);
		if (d->depth == 0)
			d->state = S_DONE;
	}
	return 0;
}

int wbxml_feed(struct wbxml_dec *d, const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + n;
	int rc;

	if (d->state == S_FAILED)
		return -1;
	while (p < end) {
		switch (d->state) {
		case S_VERSION:
			if (*p < 0x01 || *p > 0x03)
				return fail(d, "not WBXML (version byte 0x%02x)", *p);
			d->state = S_PUBID;
			d->mb = 0;
			d->mb_len = 0;
			break;
		case S_PUBID:
		case S_PUBID_IDX:
		case S_CHARSET:
		case S_STRTBL_LEN:
		case S_OPQ_LEN:
			rc = mb_byte(d, *p);
			if (rc < 0)
				return fail(d, "bad multi-byte integer");
			if (rc == 0)
				break;
			if (d->state == S_PUBID) {
				d->state = d->mb == 0 ? S_PUBID_IDX : S_CHARSET;
			} else if (d->state == S_PUBID_IDX) {
				d->state = S_CHARSET;
			} else if (d->state == S_CHARSET) {
				/* 106 = UTF-8; 0 = unknown (taken as UTF-8) */
				if (d->mb != 106 && d->mb != 0)
					return fail(d, "character set %u is not UTF-8",
						    (unsigned)d->mb);
				d->state = S_STRTBL_LEN;
			} else if (d->state == S_STRTBL_LEN) {
				if (d->mb > 65536)
					return fail(d, "string table of %u bytes",
						    (unsigned)d->mb);
				d->left = d->mb;
				d->state = d->left ? S_STRTBL : S_BODY;
			} else { /* S_OPQ_LEN */
				d->left = d->mb;
				d->state = S_OPQ;
				if (!d->left) {
					if (text_cb(d, p, 0, true))
						return -1;
					d->state = S_BODY;
				}
			}
			d->mb = 0;
			d->mb_len = 0;
			break;
		case S_STRTBL: {
			/* skipped: no STR_T token is accepted */
			size_t k = (size_t)(end - p) < d->left ? (size_t)(end - p)
							       : d->left;
			d->left -= (uint32_t)k;
			d->offset += k;
			p += k;
			if (!d->left)
				d->state = S_BODY;
			continue;
		}
		case S_BODY:
		case S_DONE:
			if (d->state == S_DONE && *p != T_SWITCH)
				return fail(d, "data after the root element");
			if (body_token(d, *p))
				return -1;
			break;
		case S_PAGE:
			d->page = *p;
			d->state = d->depth || !d->seen_root ? S_BODY : S_DONE;
			break;
		case S_STR: {
			const unsigned char *z = memchr(p, 0, (size_t)(end - p));
			size_t k = z ? (size_t)(z - p) : (size_t)(end - p);
			if (text_cb(d, p, k, z != NULL))
				return -1;
			d->offset += k + (z ? 1 : 0);
			p += k + (z ? 1 : 0);
			if (z)
				d->state = S_BODY;
			continue;
		}
		case S_OPQ: {
			size_t k = (size_t)(end - p) < d->left ? (size_t)(end - p)
							       : d->left;
			d->left -= (uint32_t)k;
			if (text_cb(d, p, k, d->left == 0))
				return -1;
			d->offset += k;
			p += k;
			if (!d->left)
				d->state = S_BODY;
			continue;
		}
		default:
			return -1;
		}
		p++;
		d->offset++;
	}
	return 0;
}

int wbxml_dec_finish(struct wbxml_dec *d)
{
	if (d->state == S_FAILED)
		return -1;
	if (d->state != S_DONE)
		return fail(d, d->seen_root ? "document cut short"
					    : "no root element");
	return 0;
}

/* ---- Tree ---- */

struct tree {
	struct wbxml_node *root, *cur;
	size_t text, max_text, nodes, max_nodes;
	bool over;
};

static int tree_start(void *arg, unsigned tag, bool empty)
{
	struct tree *t = arg;
	if (++t->nodes > t->max_nodes) {
		t->over = true;
		return -1;
	}
	struct wbxml_node *n = xcalloc(1, sizeof(*n));
	n->tag = tag;
	n->parent = t->cur;
	if (t->cur->last)
		t->cur->last->next = n;
	else
		t->cur->child = n;
	t->cur->last = n;
	t->cur = n;
	(void)empty;
	return 0;
}

static int tree_end(void *arg, unsigned tag)
{
	struct tree *t = arg;
	(void)tag;
	t->cur = t->cur->parent;
	return 0;
}

static int tree_text(void *arg, const void *p, size_t n, bool last)
{
	struct tree *t = arg;
	struct wbxml_node *c = t->cur;
	(void)last;
	if (!n && c->text)
		return 0;
	if (n > t->max_text - t->text) {
		t->over = true;
		return -1;
	}
	t->text += n;
	c->text = xrealloc(c->text, c->len + n + 1);
	memcpy(c->text + c->len, p, n);
	c->len += n;
	c->text[c->len] = 0;
	return 0;
}

static void node_free(struct wbxml_node *n)
{
	while (n) {
		struct wbxml_node *next = n->next;
		node_free(n->child);
		free(n->text);
		free(n);
		n = next;
	}
}

void wbxml_free(struct wbxml_node *root)
{
	node_free(root);
}

struct wbxml_node *wbxml_parse(const void *p, size_t n, size_t max_text,
			       size_t max_nodes, char *err, size_t errlen)
{
	struct tree t = { .max_text = max_text, .max_nodes = max_nodes };
	struct wbxml_handler h = { tree_start, tree_end, tree_text, &t };
	struct wbxml_dec d;

	t.root = t.cur = xcalloc(1, sizeof(*t.root));
	wbxml_dec_init(&d, &h);
	if (wbxml_feed(&d, p, n) == 0 && wbxml_dec_finish(&d) == 0)
		return t.root;
	if (t.over)
		snprintf(err, errlen, "answer over its limit (%zu elements, %zu bytes of text)",
			 max_nodes, max_text);
	else
		snprintf(err, errlen, "malformed WBXML: %s", d.err);
	wbxml_free(t.root);
	return NULL;
}

struct wbxml_node *wbxml_child(const struct wbxml_node *n, unsigned tag)
{
	for (struct wbxml_node *c = n ? n->child : NULL; c; c = c->next)
		if (c->tag == tag)
			return c;
	return NULL;
}

struct wbxml_node *wbxml_next(const struct wbxml_node *n)
{
	for (struct wbxml_node *c = n ? n->next : NULL; c; c = c->next)
		if (c->tag == n->tag)
			return c;
	return NULL;
}

const char *wbxml_child_text(const struct wbxml_node *n, unsigned tag)
{
	struct wbxml_node *c = wbxml_child(n, tag);
	if (!c)
		return NULL;
	return c->text ? c->text : "";
}

struct wbxml_node *wbxml_path(const struct wbxml_node *n, ...)
{
	va_list ap;
	unsigned tag;
	va_start(ap, n);
	while (n && (tag = va_arg(ap, unsigned)) != 0)
		n = wbxml_child(n, tag);
	va_end(ap);
	return (struct wbxml_node *)n;
}

static void dump_node(const struct wbxml_node *n, int depth, struct buf *out)
{
	char tmp[64], unk[16];
	for (; n; n = n->next) {
		const char *name = wbxml_tag_name(n->tag, tmp, sizeof(tmp));
		if (!name) {
			snprintf(unk, sizeof(unk), "t%04x", n->tag);
			name = unk;
		}
		buf_printf(out, "%*s<%s>", depth * 2, "", name);
		if (n->text) {
			size_t k = n->len < 200 ? n->len : 200;
			for (size_t i = 0; i < k; i++) {
				unsigned char c = (unsigned char)n->text[i];
				if (c < 0x20 || c == 0x7f)
					buf_printf(out, "\\x%02x", c);
				else
					buf_append(out, &n->text[i], 1);
			}
			if (k < n->len)
				buf_printf(out, "...(%zu bytes)", n->len);
		}
		if (n->child) {
			buf_puts(out, "\n");
			dump_node(n->child, depth + 1, out);
			buf_printf(out, "%*s", depth * 2, "");
		}
		buf_printf(out, "</%s>\n", name);
	}
}

void wbxml_dump(const struct wbxml_node *n, struct buf *out)
{
	if (n && n->tag == 0)   /* the document node */
		n = n->child;
	dump_node(n, 0, out);
}
