/*
 * eas_proto.c - ActiveSync requests and answers, with no network: version
 * choice, status grading, item ids, and a builder and parser per command
 * (MS-ASCMD).  Answers are parsed with the WBXML tree (wbxml.c), except
 * ItemOperations, whose MIME is streamed through the push decoder.  The
 * unit tests and the fuzzer call these directly.
 */
#include "backend/eas/eas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *const eas_versions[] = { "16.1", "16.0", "14.1", "14.0", "12.1",
				     NULL };

/* "14.1" -> 141 */
static int vnum(const char *v)
{
	int maj = 0, min = 0;
	if (sscanf(v, "%d.%d", &maj, &min) != 2)
		return -1;
	return maj * 10 + min;
}

bool eas_version_at_least(const char *v, const char *min)
{
	return v && vnum(v) >= vnum(min);
}

const char *eas_pick_version(const char *offered)
{
	if (!offered)
		return NULL;
	for (size_t i = 0; eas_versions[i]; i++) {
		size_t l = strlen(eas_versions[i]);
		for (const char *p = offered; *p;) {
			while (*p == ' ' || *p == ',')
				p++;
			size_t n = strcspn(p, ", ");
			if (n == l && !memcmp(p, eas_versions[i], l))
				return eas_versions[i];
			p += n;
		}
	}
	return NULL;
}

char *eas_item_id(const char *collection, const char *server_id)
{
	return xasprintf("%s%c%s", collection, EAS_SEP, server_id);
}

bool eas_item_split(const char *id, char **buf, const char **collection,
		    const char **server_id)
{
	*buf = NULL;
	const char *sep = id ? strchr(id, EAS_SEP) : NULL;
	if (!sep || sep == id || !sep[1] || strlen(id) > 2 * EAS_ID_MAX)
		return false;
	*buf = xstrdup(id);
	(*buf)[sep - id] = 0;
	*collection = *buf;
	*server_id = *buf + (sep - id) + 1;
	return true;
}

/* ---- Status codes ---- */

/* The common status codes (MS-ASCMD 2.2.2), any command. */
static bool common_status(int st, struct be_result *r)
{
	const char *what = NULL;
	enum be_status g = BE_REFUSED;
	switch (st) {
	case 101: case 102: case 103: case 104: case 105: case 106: case 107:
		g = BE_PROTOCOL; what = "the server could not read the request";
		break;
	case 108: case 109:
		what = "the server refused this device id or type"; break;
	case 110: g = BE_NETWORK; what = "server error"; break;
	case 111: g = BE_THROTTLED; what = "server error, retry later"; break;
	case 126: case 127: case 128: case 129: case 130: case 131:
		g = BE_AUTH; what = "the server does not allow this user or device to sync";
		break;
	case 132: case 134: case 136:
		g = BE_SYNC_INVALID; what = "sync state lost by the server"; break;
	case 133: g = BE_THROTTLED; what = "sync state locked"; break;
	case 137: case 138:
		g = BE_UNSUPPORTED; what = "command or version not supported"; break;
	case 139: case 140: case 141: case 145:
		what = "the server's device policy cannot be met"; break;
	case 142: case 143: case 144:
		g = BE_AUTH; what = "the device must be provisioned";
		break;
	case 150: g = BE_ITEM_GONE; what = "item not found"; break;
	case 177: what = "too many devices for this user"; break;
	default:
		return false;
	}
	be_result_set(r, g, "%s (status %d)", what, st);
	if (st >= 142 && st <= 144)
		snprintf(r->code, sizeof(r->code), "provision");
	else
		snprintf(r->code, sizeof(r->code), "%d", st);
	return true;
}

bool eas_needs_provision(const struct be_result *r)
{
	return r->status == BE_AUTH && !strcmp(r->code, "provision");
}

enum be_status eas_status(const char *cmd, const char *status,
			  struct be_result *r)
{
	be_result_ok(r);
	char *end;
	long st = status ? strtol(status, &end, 10) : -1;
	if (!status || !*status || *end || st < 0 || st > 100000) {
		be_result_set(r, BE_PROTOCOL, "%s answer without a valid status",
			      cmd);
		return r->status;
	}
	/* MoveItems alone counts from 1 = failure, 3 = success */
	if (st == 1 && strcmp(cmd, "MoveItems"))
		return BE_OK;
	/* SendMail 118, "message previously sent": this ClientId went out
	 * already (a send resent after its answer was lost): done */
	if (st == 118 && !strcmp(cmd, "SendMail"))
		return BE_OK;
	if (common_status((int)st, r))
		return r->status;
	enum be_status g = BE_REFUSED;
	const char *what = "refused";
	if (!strcmp(cmd, "Sync")) {
		switch (st) {
		case 3: g = BE_SYNC_INVALID; what = "invalid sync key"; break;
		case 4: g = BE_PROTOCOL; what = "protocol error"; break;
		case 5: g = BE_NETWORK; what = "server error"; break;
		case 6: what = "error in client/server conversion"; break;
		case 7: g = BE_CONFLICT; what = "conflict"; break;
		case 8: g = BE_ITEM_GONE; what = "object not found"; break;
		case 9: what = "mailbox full"; break;
		case 12: g = BE_NETWORK; what = "folder hierarchy changed (resyncing it)"; break;
		/* "resend a full Sync request" (MS-ASCMD); SOGo answers
		 * it now and then to a write it takes no harm from
		 * sending again: a retry, not a refusal that drops the
		 * user's change */
		case 13: g = BE_NETWORK; what = "incomplete request (sending it again)"; break;
		case 14: g = BE_PROTOCOL; what = "invalid interval"; break;
		case 15: g = BE_PROTOCOL; what = "too many folders"; break;
		case 16: g = BE_NETWORK; what = "retry"; break;
		}
	} else if (!strcmp(cmd, "FolderSync") || !strncmp(cmd, "Folder", 6)) {
		switch (st) {
		case 2: g = BE_EXISTS; what = "a folder of that name exists"; break;
		case 3: what = "a special folder cannot be changed"; break;
		case 4: g = BE_FOLDER_GONE; what = "folder does not exist"; break;
		case 5: g = BE_FOLDER_GONE; what = "parent folder not found"; break;
		case 6: g = BE_NETWORK; what = "server error"; break;
		case 9: g = BE_SYNC_INVALID; what = "invalid folder sync key"; break;
		case 10: g = BE_PROTOCOL; what = "malformed request"; break;
		case 11: g = BE_NETWORK; what = "unknown error"; break;
		case 12: g = BE_NETWORK; what = "code unknown"; break;
		}
	} else if (!strcmp(cmd, "ItemOperations")) {
		switch (st) {
		case 2: g = BE_PROTOCOL; what = "protocol error"; break;
		case 3: g = BE_NETWORK; what = "server error"; break;
		case 6: g = BE_ITEM_GONE; what = "object not found"; break;
		case 11: g = BE_NOMEM; what = "item too large"; break;
		case 14: what = "conversion failed"; break;
		}
	} else if (!strcmp(cmd, "MoveItems")) {
		switch (st) {
		case 3: return BE_OK;  /* success */
		case 1: g = BE_ITEM_GONE; what = "invalid source item"; break;
		case 2: g = BE_FOLDER_GONE; what = "invalid destination folder"; break;
		case 4: what = "source and destination are the same"; break;
		case 5: g = BE_NETWORK; what = "move failed"; break;
		case 7: g = BE_THROTTLED; what = "item locked"; break;
		}
	} else if (!strcmp(cmd, "Provision")) {
		switch (st) {
		case 2: g = BE_PROTOCOL; what = "protocol error"; break;
		case 3: g = BE_NETWORK; what = "server error"; break;
		}
	} else if (!strcmp(cmd, "Ping")) {
		switch (st) {
		case 2: return BE_OK;  /* changes */
		case 3: case 4: g = BE_PROTOCOL; what = "bad request"; break;
		case 5: case 6: return BE_OK;  /* heartbeat / folder count:
						  the caller adapts */
		case 7: g = BE_SYNC_INVALID; what = "folder hierarchy out of date"; break;
		case 8: g = BE_NETWORK; what = "server error"; break;
		}
	} else if (!strcmp(cmd, "SendMail")) {
		switch (st) {
		case 119: what = "message has no recipient"; break;
		case 120: what = "message could not be submitted"; break;
		}
	}
	be_result_set(r, g, "%s: %s (status %ld)", cmd, what, st);
	snprintf(r->code, sizeof(r->code), "%ld", st);
	return r->status;
}

struct wbxml_node *eas_parse(const void *p, size_t n, const char *cmd,
			     struct be_result *r)
{
	char err[160];
	struct wbxml_node *t = wbxml_parse(p, n, EAS_TEXT_MAX, EAS_NODES_MAX,
					   err, sizeof(err));
	if (!t)
		be_result_set(r, BE_PROTOCOL, "%s answer: %s", cmd, err);
	return t;
}

/* A text field short enough to be an id or key. */
const char *eas_short_text(const struct wbxml_node *n, unsigned tag)
{
	const char *t = wbxml_child_text(n, tag);
	if (!t || !*t || strlen(t) > EAS_KEY_MAX)
		return NULL;
	return t;
}

/* ---- Provision ---- */

void eas_req_provision(struct buf *b, const char *ack_key)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_PROV_PROVISION);
	wbxml_start(&e, WB_PROV_POLICIES);
	wbxml_start(&e, WB_PROV_POLICY);
	wbxml_str(&e, WB_PROV_POLICY_TYPE, "MS-EAS-Provisioning-WBXML");
	if (ack_key) {
		wbxml_str(&e, WB_PROV_POLICY_KEY, ack_key);
		wbxml_str(&e, WB_PROV_STATUS, "1");
	}
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
}

enum be_status eas_parse_provision(const void *p, size_t n, char **key,
				   struct be_result *r)
{
	*key = NULL;
	struct wbxml_node *t = eas_parse(p, n, "Provision", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = wbxml_child(t, WB_PROV_PROVISION);
	if (!top) {
		be_result_set(r, BE_PROTOCOL, "Provision answer without Provision");
	} else if (eas_status("Provision", wbxml_child_text(top, WB_PROV_STATUS),
			      r) == BE_OK) {
		struct wbxml_node *pol = wbxml_path(top, WB_PROV_POLICIES,
						    WB_PROV_POLICY, 0);
		const char *ps = pol ? wbxml_child_text(pol, WB_PROV_STATUS) : NULL;
		const char *k = pol ? eas_short_text(pol, WB_PROV_POLICY_KEY) : NULL;
		if (ps && !strcmp(ps, "2")) {
			/* no policy for this client: none to send */
		} else if (!ps || strcmp(ps, "1") || !k) {
			be_result_set(r, BE_REFUSED,
				      "the server's device policy was not given (policy status %s)",
				      ps ? ps : "missing");
		} else {
			*key = xstrdup(k);
		}
	}
	wbxml_free(t);
	return r->status;
}

/* ---- FolderSync ---- */

void eas_req_folder_sync(struct buf *b, const char *key)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_SYNC_KEY, key && *key ? key : "0");
	wbxml_end(&e);
}

const char *eas_folder_class(int type)
{
	switch (type) {
	case 1: case 2: case 3: case 4: case 5: case 6: case 12:
		return "IPF.Note";
	case 7: case 15: return "IPF.Task";
	case 8: case 13: return "IPF.Appointment";
	case 9: case 14: return "IPF.Contact";
	case 10: case 17: return "IPF.StickyNote";
	case 11: case 16: return "IPF.Journal";
	default: return "IPF.Unknown";
	}
}

static int folder_type(const struct wbxml_node *n)
{
	const char *t = wbxml_child_text(n, WB_FH_TYPE);
	char *end;
	long v = t ? strtol(t, &end, 10) : -1;
	return t && *t && !*end && v >= 0 && v < 100 ? (int)v : -1;
}

/* Open the answer of a hierarchy command: the top element, status checked. */
static struct wbxml_node *folder_answer(struct wbxml_node *t, unsigned tag,
					const char *cmd, struct be_result *r)
{
	struct wbxml_node *top = wbxml_child(t, tag);
	if (!top) {
		be_result_set(r, BE_PROTOCOL, "%s answer without %s", cmd, cmd);
		return NULL;
	}
	if (eas_status(cmd, wbxml_child_text(top, WB_FH_STATUS), r) != BE_OK)
		return NULL;
	return top;
}

enum be_status eas_parse_folder_sync(const void *p, size_t n,
				     struct be_folder_batch *out,
				     struct be_result *r)
{
	memset(out, 0, sizeof(*out));
	struct wbxml_node *t = eas_parse(p, n, "FolderSync", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = folder_answer(t, WB_FH_FOLDER_SYNC,
					       "FolderSync", r);
	const char *key = top ? eas_short_text(top, WB_FH_SYNC_KEY) : NULL;
	if (top && !key)
		be_result_set(r, BE_PROTOCOL, "FolderSync answer without a SyncKey");
	struct wbxml_node *ch = key ? wbxml_child(top, WB_FH_CHANGES) : NULL;
	for (struct wbxml_node *c = ch ? ch->child : NULL;
	     c && r->status == BE_OK; c = c->next) {
		if (c->tag != WB_FH_ADD && c->tag != WB_FH_UPDATE &&
		    c->tag != WB_FH_DELETE)
			continue;
		const char *id = eas_short_text(c, WB_FH_SERVER_ID);
		if (!id) {
			be_result_set(r, BE_PROTOCOL,
				      "FolderSync answer: a change without a ServerId");
			break;
		}
		struct be_folder *f = be_folder_batch_add(out);
		f->id = xstrdup(id);
		if (c->tag == WB_FH_DELETE) {
			f->change = BE_DELETE;
			continue;
		}
		f->change = c->tag == WB_FH_ADD ? BE_CREATE : BE_UPDATE;
		const char *parent = eas_short_text(c, WB_FH_PARENT_ID);
		const char *name = wbxml_child_text(c, WB_FH_DISPLAY_NAME);
		f->parent_id = xstrdup(parent ? parent : "0");
		f->name = name && *name && strlen(name) < 4096 ? xstrdup(name)
							       : NULL;
		f->folder_class = xstrdup(eas_folder_class(folder_type(c)));
		if (!f->name) {
			be_result_set(r, BE_PROTOCOL,
				      "FolderSync answer: folder without a name");
			break;
		}
	}
	if (r->status == BE_OK)
		out->new_state = xstrdup(key);
	else
		be_folder_batch_free(out);
	wbxml_free(t);
	return r->status;
}

enum be_status eas_parse_special(const void *p, size_t n,
				 char *ids[BE_SPECIAL_N], struct be_result *r)
{
	static const int role_type[BE_SPECIAL_N] = {
		[BE_INBOX] = 2, [BE_DRAFTS] = 3, [BE_SENT] = 5,
		[BE_DELETED] = 4, [BE_OUTBOX] = 6,
	};
	for (int k = 0; k < BE_SPECIAL_N; k++)
		ids[k] = NULL;
	struct wbxml_node *t = eas_parse(p, n, "FolderSync", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = folder_answer(t, WB_FH_FOLDER_SYNC,
					       "FolderSync", r);
	struct wbxml_node *ch = top ? wbxml_child(top, WB_FH_CHANGES) : NULL;
	for (struct wbxml_node *c = ch ? wbxml_child(ch, WB_FH_ADD) : NULL; c;
	     c = wbxml_next(c)) {
		int type = folder_type(c);
		const char *id = eas_short_text(c, WB_FH_SERVER_ID);
		for (int k = 0; k < BE_SPECIAL_N && id; k++)
			if (type == role_type[k] && !ids[k])
				ids[k] = xstrdup(id);
	}
	wbxml_free(t);
	return r->status;
}

/* ---- Sync ---- */

/* One Collection of a Sync that only reads; key "0" is a first sync,
 * which only gets a key (no options, no GetChanges). */
static void sync_collection(struct wbxml_enc *e, const char *collection,
			    const char *key, unsigned window)
{
	bool start = !key || !*key || !strcmp(key, "0");
	wbxml_start(e, WB_AS_COLLECTION);
	wbxml_str(e, WB_AS_SYNC_KEY, start ? "0" : key);
	wbxml_str(e, WB_AS_COLLECTION_ID, collection);
	if (!start) {
		wbxml_str(e, WB_AS_DELETES_AS_MOVES, "0");
		wbxml_empty(e, WB_AS_GET_CHANGES);
		wbxml_uint(e, WB_AS_WINDOW_SIZE, window);
		wbxml_start(e, WB_AS_OPTIONS);
		wbxml_str(e, WB_AS_FILTER_TYPE, "0");
		/* the MIME is fetched on demand (ItemOperations); here only
		 * its size (EstimatedDataSize), which servers give only when
		 * some of the MIME comes along: the first 4 KB
		 * (MIMETruncation 1; 0 makes SOGo say size 0) */
		wbxml_start(e, WB_ASB_BODY_PREFERENCE);
		wbxml_str(e, WB_ASB_TYPE, "4");
		wbxml_str(e, WB_ASB_TRUNCATION_SIZE, "4096");
		wbxml_end(e);
		wbxml_str(e, WB_AS_MIMESUPPORT, "2");
		wbxml_str(e, WB_AS_MIMETRUNCATION, "1");
		wbxml_end(e);
	}
	wbxml_end(e);
}

void eas_req_sync_many(struct buf *b, const char *const *collections,
		       const char *const *keys, size_t n, unsigned window)
{
	struct wbxml_enc e;
	if (window < 1)
		window = 1;
	if (window > EAS_WINDOW_MAX)
		window = EAS_WINDOW_MAX;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	for (size_t i = 0; i < n; i++)
		sync_collection(&e, collections[i], keys[i], window);
	wbxml_end(&e);
	wbxml_end(&e);
}

void eas_req_sync(struct buf *b, const char *collection, const char *key,
		  unsigned window)
{
	eas_req_sync_many(b, &collection, &key, 1, window);
}

int64_t eas_parse_date(const char *s)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec;
	char tail;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi,
			 &sec, &tail) != 7 || (tail != '.' && tail != 'Z'))
		return 0;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
		return 0;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	return t < 0 ? 0 : (int64_t)t;
}

static char *text_field(const struct wbxml_node *n, unsigned tag)
{
	const char *t = wbxml_child_text(n, tag);
	if (!t)
		return NULL;
	size_t l = strlen(t);
	return xstrndup(t, l > 65536 ? 65536 : l);
}

static int bool_field(const struct wbxml_node *n, unsigned tag)
{
	const char *t = wbxml_child_text(n, tag);
	if (!t)
		return -1;
	return !strcmp(t, "1") ? 1 : !strcmp(t, "0") ? 0 : -1;
}

/* Email properties of an Add or Change: only those present are set. */
static void email_fields(const struct wbxml_node *app, struct be_item *it)
{
	it->subject = text_field(app, WB_EM_SUBJECT);
	it->from = text_field(app, WB_EM_FROM);
	it->item_class = text_field(app, WB_EM_MESSAGE_CLASS);
	it->received = eas_parse_date(wbxml_child_text(app, WB_EM_DATE_RECEIVED));
	it->is_read = bool_field(app, WB_EM_READ);
	it->is_draft = bool_field(app, WB_EM2_IS_DRAFT);
	struct wbxml_node *fl = wbxml_child(app, WB_EM_FLAG);
	if (fl) {
		const char *fs = wbxml_child_text(fl, WB_EM_FLAG_STATUS);
		/* an empty Flag element clears the flag */
		it->flag = !fs || !strcmp(fs, "0") ? BE_FLAG_NONE
			 : !strcmp(fs, "1") ? BE_FLAG_COMPLETE
			 : !strcmp(fs, "2") ? BE_FLAG_FLAGGED : -1;
	}
	struct wbxml_node *cats = wbxml_child(app, WB_EM_CATEGORIES);
	if (cats) {
		struct buf b;
		buf_init(&b, 65536);
		for (struct wbxml_node *c = wbxml_child(cats, WB_EM_CATEGORY);
		     c; c = wbxml_next(c)) {
			if (!c->text || !*c->text || strchr(c->text, ','))
				continue;
			if (b.len)
				buf_puts(&b, ",");
			buf_puts(&b, c->text);
		}
		it->categories = xstrdup(b.data ? b.data : "");
		buf_free(&b);
	}
	struct wbxml_node *att = wbxml_child(app, WB_ASB_ATTACHMENTS);
	if (att)
		it->has_attachments = wbxml_child(att, WB_ASB_ATTACHMENT) != NULL;
	struct wbxml_node *body = wbxml_child(app, WB_ASB_BODY);
	const char *est = body ? wbxml_child_text(body, WB_ASB_ESTIMATED_DATA_SIZE)
			       : NULL;
	const char *type = body ? wbxml_child_text(body, WB_ASB_TYPE) : NULL;
	if (est && type && !strcmp(type, "4")) {
		char *end;
		long long v = strtoll(est, &end, 10);
		if (*est && !*end && v > 0)
			it->size = v;
	}
	/* the Message-ID from the MIME's first bytes that come along */
	struct wbxml_node *data = body && type && !strcmp(type, "4")
				  ? wbxml_child(body, WB_ASB_DATA) : NULL;
	if (data && data->text)
		it->message_id = eas_mime_message_id(data->text, data->len);
}

/* The changes of one Collection of a Sync answer. */
static enum be_status parse_collection(const struct wbxml_node *coll,
				       const char *collection,
				       struct be_item_batch *out,
				       struct be_result *r)
{
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (eas_status("Sync", wbxml_child_text(coll, WB_AS_STATUS), r) != BE_OK)
		return r->status;
	const char *key = eas_short_text(coll, WB_AS_SYNC_KEY);
	if (!key) {
		be_result_set(r, BE_PROTOCOL, "Sync answer without a SyncKey");
		return r->status;
	}
	out->more = wbxml_child(coll, WB_AS_MORE_AVAILABLE) != NULL;
	struct wbxml_node *cmds = wbxml_child(coll, WB_AS_COMMANDS);
	for (struct wbxml_node *c = cmds ? cmds->child : NULL; c; c = c->next) {
		enum be_change kind;
		switch (c->tag) {
		case WB_AS_ADD: kind = BE_CREATE; break;
		case WB_AS_CHANGE: kind = BE_UPDATE; break;
		case WB_AS_DELETE:
		case WB_AS_SOFT_DELETE: kind = BE_DELETE; break;
		default: continue;
		}
		const char *sid = eas_short_text(c, WB_AS_SERVER_ID);
		if (!sid) {
			be_result_set(r, BE_PROTOCOL,
				      "Sync answer: a change without a ServerId");
			be_item_batch_free(out);
			return r->status;
		}
		struct be_item *it = be_item_batch_add(out);
		it->change = kind;
		it->id = eas_item_id(collection, sid);
		struct wbxml_node *app = wbxml_child(c, WB_AS_APPLICATION_DATA);
		if (kind == BE_DELETE || !app)
			continue;
		email_fields(app, it);
		/* a Change carries the body only when the content changed
		 * (a draft edited elsewhere): there is no change key to say so */
		if (kind == BE_UPDATE && wbxml_child(app, WB_ASB_BODY))
			it->content_changed = true;
		/* a change of the read flag alone */
		if (kind == BE_UPDATE && it->is_read >= 0 && app->child &&
		    app->child == app->last)
			it->change = BE_READ_FLAG;
	}
	out->new_state = xstrdup(key);
	return BE_OK;
}

/* The Sync element of an answer, or NULL with r set (a Status at the top
 * means the whole request failed). */
static struct wbxml_node *sync_top(struct wbxml_node *t, struct be_result *r)
{
	struct wbxml_node *top = wbxml_child(t, WB_AS_SYNC);
	if (!top) {
		be_result_set(r, BE_PROTOCOL, "Sync answer without Sync");
		return NULL;
	}
	if (wbxml_child(top, WB_AS_STATUS) &&
	    eas_status("Sync", wbxml_child_text(top, WB_AS_STATUS), r) != BE_OK)
		return NULL;
	return top;
}

enum be_status eas_parse_sync(const void *p, size_t n, const char *collection,
			      struct be_item_batch *out, struct be_result *r)
{
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	struct wbxml_node *t = eas_parse(p, n, "Sync", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = sync_top(t, r), *coll = NULL;
	for (coll = top ? wbxml_path(top, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0)
			: NULL; coll; coll = wbxml_next(coll)) {
		const char *cid = wbxml_child_text(coll, WB_AS_COLLECTION_ID);
		if (!cid || !strcmp(cid, collection))
			break;
	}
	if (top && !coll)
		be_result_set(r, BE_PROTOCOL,
			      "Sync answer without the folder asked for");
	else if (coll)
		parse_collection(coll, collection, out, r);
	wbxml_free(t);
	return r->status;
}

enum be_status eas_parse_sync_many(const void *p, size_t n,
				   struct be_sync_one *v, size_t nv,
				   struct be_result *r)
{
	be_result_ok(r);
	for (size_t k = 0; k < nv; k++) {
		memset(&v[k].out, 0, sizeof(v[k].out));
		be_result_ok(&v[k].r);
	}
	struct wbxml_node *t = n ? eas_parse(p, n, "Sync", r) : NULL;
	if (n && !t)
		return r->status;
	struct wbxml_node *top = t ? sync_top(t, r) : NULL;
	if (t && !top)
		goto out;
	bool *seen = xcalloc(nv ? nv : 1, sizeof(*seen));
	for (struct wbxml_node *coll = top ? wbxml_path(top, WB_AS_COLLECTIONS,
						       WB_AS_COLLECTION, 0)
					   : NULL;
	     coll; coll = wbxml_next(coll)) {
		const char *cid = wbxml_child_text(coll, WB_AS_COLLECTION_ID);
		size_t k = 0;
		/* without a CollectionId only a one-folder answer is clear */
		while (k < nv && (seen[k] || (cid ? strcmp(cid, v[k].folder_id)
						  : nv != 1)))
			k++;
		if (k == nv)
			continue;  /* not asked for, or twice: ignored */
		seen[k] = true;
		parse_collection(coll, v[k].folder_id, &v[k].out, &v[k].r);
	}
	/* a folder the answer does not mention has no changes */
	for (size_t k = 0; k < nv; k++)
		if (!seen[k])
			v[k].out.new_state = xstrdup(v[k].state);
	free(seen);
out:
	if (r->status != BE_OK)
		for (size_t k = 0; k < nv; k++)
			be_item_batch_free(&v[k].out);
	wbxml_free(t);
	return r->status;
}

/* ---- Writes ---- */

void eas_sync_open(struct wbxml_enc *e, struct buf *b,
		   const char *collection, const char *key)
{
	wbxml_enc_init(e, b);
	wbxml_start(e, WB_AS_SYNC);
	wbxml_start(e, WB_AS_COLLECTIONS);
	wbxml_start(e, WB_AS_COLLECTION);
	wbxml_str(e, WB_AS_SYNC_KEY, key);
	wbxml_str(e, WB_AS_COLLECTION_ID, collection);
}

void eas_sync_close(struct wbxml_enc *e)
{
	wbxml_end(e);  /* Commands */
	wbxml_end(e);  /* Collection */
	wbxml_end(e);
	wbxml_end(e);
}

/* Categories of a Change: one Category per comma-separated name (blanks
 * around it trimmed); none is an empty Categories, which clears them. */
static void put_categories(struct wbxml_enc *e, const char *list)
{
	bool open = false;
	for (const char *c = list ? list : ""; *c;) {
		const char *end = strchr(c, ',');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		const char *a = c, *z = c + n;
		while (a < z && (*a == ' ' || *a == '\t'))
			a++;
		while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
			z--;
		if (z > a) {
			char *name = xstrndup(a, (size_t)(z - a));
			if (!open)
				wbxml_start(e, WB_EM_CATEGORIES);
			open = true;
			wbxml_str(e, WB_EM_CATEGORY, name);
			free(name);
		}
		c += n + (end ? 1 : 0);
	}
	if (open)
		wbxml_end(e);
	else
		wbxml_empty(e, WB_EM_CATEGORIES);
}

void eas_req_change(struct buf *b, const char *collection, const char *key,
		    const char *server_id, const struct be_props *p)
{
	struct wbxml_enc e;
	eas_sync_open(&e, b, collection, key);
	wbxml_start(&e, WB_AS_COMMANDS);
	wbxml_start(&e, WB_AS_CHANGE);
	wbxml_str(&e, WB_AS_SERVER_ID, server_id);
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	if (p->mask & BE_PROP_READ)
		wbxml_str(&e, WB_EM_READ, p->read ? "1" : "0");
	if (p->mask & BE_PROP_FLAG) {
		if (p->flag == BE_FLAG_NONE) {
			wbxml_empty(&e, WB_EM_FLAG);
		} else {
			wbxml_start(&e, WB_EM_FLAG);
			wbxml_str(&e, WB_EM_FLAG_STATUS,
				  p->flag == BE_FLAG_COMPLETE ? "1" : "2");
			if (p->flag == BE_FLAG_FLAGGED)
				wbxml_str(&e, WB_EM_FLAG_TYPE, "Follow up");
			wbxml_end(&e);
		}
	}
	if (p->mask & BE_PROP_CATEGORIES)
		put_categories(&e, p->categories);
	wbxml_end(&e);  /* ApplicationData */
	wbxml_end(&e);  /* Change */
	eas_sync_close(&e);
}

void eas_req_delete(struct buf *b, const char *collection, const char *key,
		    const char *server_id, bool deletes_as_moves)
{
	struct wbxml_enc e;
	eas_sync_open(&e, b, collection, key);
	wbxml_str(&e, WB_AS_DELETES_AS_MOVES, deletes_as_moves ? "1" : "0");
	wbxml_start(&e, WB_AS_COMMANDS);
	wbxml_start(&e, WB_AS_DELETE);
	wbxml_str(&e, WB_AS_SERVER_ID, server_id);
	wbxml_end(&e);
	eas_sync_close(&e);
}

enum be_status eas_parse_sync_write(const void *p, size_t n, char **new_key,
				    struct be_result *r)
{
	*new_key = NULL;
	be_result_ok(r);
	if (n == 0)  /* 12.1+: nothing to say = it worked */
		return BE_OK;
	struct wbxml_node *t = eas_parse(p, n, "Sync", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = wbxml_child(t, WB_AS_SYNC);
	struct wbxml_node *coll = wbxml_path(top, WB_AS_COLLECTIONS,
					     WB_AS_COLLECTION, 0);
	if (!top) {
		be_result_set(r, BE_PROTOCOL, "Sync answer without Sync");
	} else if (wbxml_child(top, WB_AS_STATUS)) {
		eas_status("Sync", wbxml_child_text(top, WB_AS_STATUS), r);
		if (r->status == BE_OK)
			be_result_set(r, BE_PROTOCOL, "Sync answer without the folder");
	} else if (!coll) {
		be_result_set(r, BE_PROTOCOL, "Sync answer without the folder");
	} else if (eas_status("Sync", wbxml_child_text(coll, WB_AS_STATUS),
			      r) == BE_OK) {
		const char *k = eas_short_text(coll, WB_AS_SYNC_KEY);
		if (k)
			*new_key = xstrdup(k);
		struct wbxml_node *resp = wbxml_child(coll, WB_AS_RESPONSES);
		for (struct wbxml_node *c = resp ? resp->child : NULL; c;
		     c = c->next)
			if (wbxml_child(c, WB_AS_STATUS) &&
			    eas_status("Sync", wbxml_child_text(c, WB_AS_STATUS),
				       r) != BE_OK)
				break;
	}
	if (r->status != BE_OK) {
		free(*new_key);
		*new_key = NULL;
	}
	wbxml_free(t);
	return r->status;
}

void eas_req_move(struct buf *b, const char *src_collection,
		  const char *server_id, const char *dst_collection)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_MV_MOVE_ITEMS);
	wbxml_start(&e, WB_MV_MOVE);
	wbxml_str(&e, WB_MV_SRC_MSG_ID, server_id);
	wbxml_str(&e, WB_MV_SRC_FLD_ID, src_collection);
	wbxml_str(&e, WB_MV_DST_FLD_ID, dst_collection);
	wbxml_end(&e);
	wbxml_end(&e);
}

enum be_status eas_parse_move(const void *p, size_t n, char **dst_id,
			      struct be_result *r)
{
	*dst_id = NULL;
	struct wbxml_node *t = eas_parse(p, n, "MoveItems", r);
	if (!t)
		return r->status;
	struct wbxml_node *resp = wbxml_path(t, WB_MV_MOVE_ITEMS,
					     WB_MV_RESPONSE, 0);
	if (!resp) {
		be_result_set(r, BE_PROTOCOL, "MoveItems answer without a Response");
	} else if (eas_status("MoveItems", wbxml_child_text(resp, WB_MV_STATUS),
			      r) == BE_OK) {
		const char *d = eas_short_text(resp, WB_MV_DST_MSG_ID);
		if (d)
			*dst_id = xstrdup(d);
		else
			be_result_set(r, BE_PROTOCOL,
				      "MoveItems answer without the new id");
	}
	wbxml_free(t);
	return r->status;
}

void eas_req_folder_create(struct buf *b, const char *key,
			   const char *parent, const char *name)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_FH_FOLDER_CREATE);
	wbxml_str(&e, WB_FH_SYNC_KEY, key);
	wbxml_str(&e, WB_FH_PARENT_ID, parent);
	wbxml_str(&e, WB_FH_DISPLAY_NAME, name);
	wbxml_str(&e, WB_FH_TYPE, "12");
	wbxml_end(&e);
}

void eas_req_folder_update(struct buf *b, const char *key, const char *id,
			   const char *parent, const char *name)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_FH_FOLDER_UPDATE);
	wbxml_str(&e, WB_FH_SYNC_KEY, key);
	wbxml_str(&e, WB_FH_SERVER_ID, id);
	wbxml_str(&e, WB_FH_PARENT_ID, parent);
	wbxml_str(&e, WB_FH_DISPLAY_NAME, name);
	wbxml_end(&e);
}

void eas_req_folder_delete(struct buf *b, const char *key, const char *id)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_FH_FOLDER_DELETE);
	wbxml_str(&e, WB_FH_SYNC_KEY, key);
	wbxml_str(&e, WB_FH_SERVER_ID, id);
	wbxml_end(&e);
}

enum be_status eas_parse_folder_op(const void *p, size_t n, const char *cmd,
				   char **new_key, char **id,
				   struct be_result *r)
{
	unsigned tag = !strcmp(cmd, "FolderCreate") ? WB_FH_FOLDER_CREATE
		     : !strcmp(cmd, "FolderUpdate") ? WB_FH_FOLDER_UPDATE
						    : WB_FH_FOLDER_DELETE;
	*new_key = NULL;
	if (id)
		*id = NULL;
	struct wbxml_node *t = eas_parse(p, n, cmd, r);
	if (!t)
		return r->status;
	struct wbxml_node *top = folder_answer(t, tag, cmd, r);
	if (top) {
		const char *k = eas_short_text(top, WB_FH_SYNC_KEY);
		const char *sid = eas_short_text(top, WB_FH_SERVER_ID);
		if (!k)
			be_result_set(r, BE_PROTOCOL, "%s answer without a SyncKey", cmd);
		else if (id && !sid)
			be_result_set(r, BE_PROTOCOL, "%s answer without the folder id", cmd);
		else {
			*new_key = xstrdup(k);
			if (id)
				*id = xstrdup(sid);
		}
	}
	wbxml_free(t);
	return r->status;
}

void eas_req_send_mail(struct buf *b, const char *client_id,
		       const void *mime, size_t len, bool save_in_sent)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_CM_SEND_MAIL);
	wbxml_str(&e, WB_CM_CLIENT_ID, client_id);
	if (save_in_sent)
		wbxml_empty(&e, WB_CM_SAVE_IN_SENT_ITEMS);
	wbxml_opaque(&e, WB_CM_MIME, mime, len);
	wbxml_end(&e);
}

enum be_status eas_parse_send_mail(const void *p, size_t n,
				   struct be_result *r)
{
	be_result_ok(r);
	if (n == 0)  /* success: an empty answer */
		return BE_OK;
	struct wbxml_node *t = eas_parse(p, n, "SendMail", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = wbxml_child(t, WB_CM_SEND_MAIL);
	if (!top)
		be_result_set(r, BE_PROTOCOL, "SendMail answer without SendMail");
	else if (wbxml_child(top, WB_CM_STATUS))
		eas_status("SendMail", wbxml_child_text(top, WB_CM_STATUS), r);
	wbxml_free(t);
	return r->status;
}

/* ---- Ping ---- */

void eas_req_ping(struct buf *b, unsigned heartbeat_s,
		  const char *const *folders, size_t n)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_PING_PING);
	wbxml_uint(&e, WB_PING_HEARTBEAT_INTERVAL, heartbeat_s);
	wbxml_start(&e, WB_PING_FOLDERS);
	for (size_t i = 0; i < n; i++) {
		wbxml_start(&e, WB_PING_FOLDER);
		wbxml_str(&e, WB_PING_ID, folders[i]);
		wbxml_str(&e, WB_PING_CLASS, "Email");
		wbxml_end(&e);
	}
	wbxml_end(&e);
	wbxml_end(&e);
}

static unsigned uint_field(const struct wbxml_node *n, unsigned tag)
{
	const char *t = wbxml_child_text(n, tag);
	char *end;
	unsigned long v = t ? strtoul(t, &end, 10) : 0;
	return t && *t && !*end && v < 100000 ? (unsigned)v : 0;
}

enum be_status eas_parse_ping(const void *p, size_t n, struct eas_ping *out,
			      struct be_result *r)
{
	memset(out, 0, sizeof(*out));
	struct wbxml_node *t = eas_parse(p, n, "Ping", r);
	if (!t)
		return r->status;
	struct wbxml_node *top = wbxml_child(t, WB_PING_PING);
	const char *st = top ? wbxml_child_text(top, WB_PING_STATUS) : NULL;
	if (!top) {
		be_result_set(r, BE_PROTOCOL, "Ping answer without Ping");
	} else if (eas_status("Ping", st, r) == BE_OK) {
		out->status = atoi(st);
		out->heartbeat_s = uint_field(top, WB_PING_HEARTBEAT_INTERVAL);
		out->max_folders = uint_field(top, WB_PING_MAX_FOLDERS);
		struct wbxml_node *fs = wbxml_child(top, WB_PING_FOLDERS);
		for (struct wbxml_node *f = wbxml_child(fs, WB_PING_FOLDER); f;
		     f = wbxml_next(f)) {
			if (!f->text || !*f->text || f->len > EAS_ID_MAX)
				continue;
			out->changed = xrealloc(out->changed,
						(out->n_changed + 1) * sizeof(char *));
			out->changed[out->n_changed++] = xstrdup(f->text);
		}
	}
	wbxml_free(t);
	return r->status;
}

void eas_ping_free(struct eas_ping *p)
{
	for (size_t i = 0; i < p->n_changed; i++)
		free(p->changed[i]);
	free(p->changed);
	memset(p, 0, sizeof(*p));
}
