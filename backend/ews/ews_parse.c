/*
 * ews_parse.c - GetFolder, SyncFolderHierarchy and SyncFolderItems answers
 * into be_* batches, and the answers to writes (one table says where each
 * keeps the new ItemId/FolderId).  Pure functions over a byte buffer (unit
 * tests and the fuzzer call them without HTTP).  Elements are matched by
 * namespace URI, in any order; unknown ones are ignored.  Anything
 * malformed is a clean BE_PROTOCOL naming what was wrong.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ews_fail(struct pctx *p, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	be_result_ok(p->r);
	p->r->status = BE_PROTOCOL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->r->msg, sizeof(p->r->msg), fmt, ap);
	va_end(ap);
}

/* Parse an answer of at most max bytes and return its soap:Body, or NULL
 * with r set (a SOAP fault graded in context ctx, or BE_PROTOCOL).  *doc is
 * the caller's to free either way. */
xmlNode *ews_open_body(const char *data, size_t len, size_t max, xmlDoc **doc,
		       enum ews_ctx ctx, struct be_result *r)
{
	char err[200];
	*doc = xml_parse(data, len, max, err, sizeof(err));
	if (!*doc) {
		be_result_set(r, BE_PROTOCOL, "%s", err);
		return NULL;
	}
	xmlNode *env = xmlDocGetRootElement(*doc);
	if (!xml_is(env, EWS_NS_SOAP, "Envelope")) {
		char q[48];
		be_result_set(r, BE_PROTOCOL,
			      "answer is not a SOAP envelope (root element <%s>)",
			      ews_quote((const char *)env->name, q));
		return NULL;
	}
	xmlNode *body = xml_child(env, EWS_NS_SOAP, "Body");
	if (!body) {
		be_result_set(r, BE_PROTOCOL, "SOAP envelope without a Body");
		return NULL;
	}
	xmlNode *fault = xml_child(body, EWS_NS_SOAP, "Fault");
	if (fault) {
		ews_fault_result(fault, ctx, r);
		return NULL;
	}
	return body;
}

xmlNode *ews_response_messages(const xmlNode *body)
{
	xmlNode *msgs = NULL;
	for (xmlNode *c = xml_child(body, NULL, NULL); c && !msgs;
	     c = xml_next(c, NULL, NULL))
		msgs = xml_child(c, EWS_NS_M, "ResponseMessages");
	return msgs;
}

/* The response message `name` of the answer; NULL with r set if absent or
 * an error answer. */
static xmlNode *open_message(const char *data, size_t len, xmlDoc **doc,
			     const char *name, enum ews_ctx ctx,
			     struct be_result *r)
{
	xmlNode *body = ews_open_body(data, len, EWS_ANSWER_MAX, doc, ctx, r);
	if (!body)
		return NULL;
	xmlNode *msg = xml_child(ews_response_messages(body), EWS_NS_M, name);
	if (!msg) {
		be_result_set(r, BE_PROTOCOL, "no %s in the answer", name);
		return NULL;
	}
	if (ews_message_result(msg, ctx, r) != BE_OK)
		return NULL;
	return msg;
}

/* An attribute that must be there: NULL after ews_fail() otherwise. */
static char *need_attr(struct pctx *p, const xmlNode *n, const char *attr,
		       size_t cap, const char *what)
{
	char *v = NULL;
	if (!n)
		ews_fail(p, "%s missing", what);
	else if (xml_attr(n, attr, cap, &v))
		ews_fail(p, "%s %s longer than %zu bytes", what, attr, cap);
	else if (!v || !*v)
		ews_fail(p, "%s without %s", what, attr);
	if (p->failed) {
		free(v);
		return NULL;
	}
	return v;
}

static char *opt_attr(struct pctx *p, const xmlNode *n, const char *attr,
		      size_t cap, const char *what)
{
	char *v = NULL;
	if (n && xml_attr(n, attr, cap, &v))
		ews_fail(p, "%s %s longer than %zu bytes", what, attr, cap);
	return v;
}

/* Text of the child (T namespace) `name`, NULL if absent. */
static char *opt_text(struct pctx *p, const xmlNode *parent, const char *name,
		      size_t cap)
{
	char *v = NULL;
	const xmlNode *n = xml_child(parent, EWS_NS_T, name);
	if (n && xml_text(n, cap, &v))
		ews_fail(p, "%s longer than %zu bytes", name, cap);
	return v;
}

static void opt_count(struct pctx *p, const xmlNode *parent, const char *name,
		      int64_t *out)
{
	char *v = opt_text(p, parent, name, 64);
	char q[48];
	if (v && xs_nonneg_long(v, out))
		ews_fail(p, "bad %s '%s'", name, ews_quote(v, q));
	free(v);
}

static void opt_bool(struct pctx *p, const xmlNode *parent, const char *name,
		     int *out)
{
	char *v = opt_text(p, parent, name, 64);
	char q[48];
	bool b;
	if (v) {
		if (xs_boolean(v, &b))
			ews_fail(p, "bad %s '%s'", name, ews_quote(v, q));
		else
			*out = b;
	}
	free(v);
}

static void opt_date(struct pctx *p, const xmlNode *parent, const char *name,
		     int64_t *out)
{
	char *v = opt_text(p, parent, name, 128);
	char q[48];
	if (v && xs_datetime(v, out))
		ews_fail(p, "bad %s '%s'", name, ews_quote(v, q));
	free(v);
}

/* s without leading and trailing XML white space: the start, *len set. */
static const char *trimmed(const char *s, size_t *len)
{
	size_t lead = strspn(s, " \t\r\n"), n = strlen(s + lead);
	while (n && strchr(" \t\r\n", s[lead + n - 1]))
		n--;
	*len = n;
	return s + lead;
}

/* SyncState (required, non-empty, white space trimmed) and the "last in
 * range" flag (absent = last, so a server that omits it cannot loop us). */
static void sync_header(struct pctx *p, const xmlNode *msg, const char *last,
			char **state, bool *more)
{
	const xmlNode *n = xml_child(msg, EWS_NS_M, "SyncState");
	char *s = NULL, q[48];
	const char *t;
	size_t len;
	if (!n) {
		ews_fail(p, "no SyncState in the answer");
		return;
	}
	if (xml_text(n, EWS_STATE_MAX + 64, &s)) {
		ews_fail(p, "SyncState longer than %zu bytes", EWS_STATE_MAX);
		return;
	}
	t = trimmed(s, &len);
	if (!len)
		ews_fail(p, "empty SyncState in the answer");
	else if (len > EWS_STATE_MAX)
		ews_fail(p, "SyncState longer than %zu bytes", EWS_STATE_MAX);
	else
		*state = xstrndup(t, len);
	free(s);
	if (p->failed)
		return;

	bool b = true;
	n = xml_child(msg, EWS_NS_M, last);
	if (n) {
		char *v = NULL;
		if (xml_text(n, 64, &v) || xs_boolean(v, &b))
			ews_fail(p, "bad %s '%s'", last, ews_quote(v, q));
		free(v);
	}
	*more = !b;
}

/* The element inside a Create/Update that carries `id_name`. */
static const xmlNode *changed_entity(const xmlNode *change, const char *id_name)
{
	for (const xmlNode *c = xml_child(change, NULL, NULL); c;
	     c = xml_next(c, NULL, NULL))
		if (xml_child(c, EWS_NS_T, id_name))
			return c;
	return NULL;
}

/* What a sync answer is made of, for one kind of entity. */
struct sync_kind {
	const char *message;   /* response message element */
	const char *last;      /* "includes last in range" element */
	const char *id_name;   /* FolderId or ItemId */
	const char *what;      /* "a folder", "an item" for messages */
	bool read_flags;       /* ReadFlagChange is a change here */
	/* add one change to the batch and parse entity into it */
	void (*add)(struct pctx *p, enum be_change kind, const xmlNode *entity,
		    void *batch);
};

/* Parse a sync answer: the header into state/more, each change through
 * k->add.  Returns with r set (BE_OK or why not). */
static void parse_sync(const char *data, size_t len, const struct sync_kind *k,
		       char **state, bool *more, void *batch,
		       struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	const xmlNode *msg = open_message(data, len, &doc, k->message,
					  EWS_ON_FOLDER, r);
	if (!msg)
		goto out;
	sync_header(&p, msg, k->last, state, more);
	const xmlNode *changes = xml_child(msg, EWS_NS_M, "Changes");
	for (const xmlNode *c = xml_child(changes, NULL, NULL);
	     c && !p.failed; c = xml_next(c, NULL, NULL)) {
		enum be_change kind;
		if (xml_is(c, EWS_NS_T, "Create"))
			kind = BE_CREATE;
		else if (xml_is(c, EWS_NS_T, "Update"))
			kind = BE_UPDATE;
		else if (xml_is(c, EWS_NS_T, "Delete"))
			kind = BE_DELETE;
		else if (k->read_flags && xml_is(c, EWS_NS_T, "ReadFlagChange"))
			kind = BE_READ_FLAG;
		else
			continue;  /* a kind of change we do not know */
		/* Create/Update wrap the entity (t:Folder, t:Message, ...:
		 * whatever carries the id); Delete and ReadFlagChange hold
		 * the id themselves */
		const xmlNode *e = kind == BE_CREATE || kind == BE_UPDATE
					   ? changed_entity(c, k->id_name) : c;
		if (!e)
			ews_fail(&p, "%s without %s", (const char *)c->name,
			     k->what);
		else
			k->add(&p, kind, e, batch);
	}
	if (!p.failed)
		be_result_ok(r);
out:
	xmlFreeDoc(doc);
}

/* ---- GetFolder ---- */

enum be_status ews_parse_root(const char *data, size_t len, char **root_id,
			      struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	*root_id = NULL;
	const xmlNode *msg = open_message(data, len, &doc,
					  "GetFolderResponseMessage",
					  EWS_ON_FOLDER, r);
	if (msg) {
		const xmlNode *f = changed_entity(
			xml_child(msg, EWS_NS_M, "Folders"), "FolderId");
		if (!f)
			ews_fail(&p, "no folder in the GetFolder answer");
		else
			*root_id = need_attr(&p, xml_child(f, EWS_NS_T, "FolderId"),
					     "Id", EWS_ID_MAX, "FolderId");
		if (!p.failed)
			be_result_ok(r);
	}
	xmlFreeDoc(doc);
	return r->status;
}

/* ---- SyncFolderHierarchy ---- */

static void parse_folder(struct pctx *p, const xmlNode *f, struct be_folder *bf)
{
	const xmlNode *id = xml_child(f, EWS_NS_T, "FolderId");
	bf->id = need_attr(p, id, "Id", EWS_ID_MAX, "FolderId");
	bf->change_key = opt_attr(p, id, "ChangeKey", EWS_ID_MAX, "FolderId");
	if (bf->change_key && !*bf->change_key) {
		free(bf->change_key);
		bf->change_key = NULL;
	}
	if (bf->change == BE_DELETE)
		return;
	bf->parent_id = opt_attr(p, xml_child(f, EWS_NS_T, "ParentFolderId"),
				 "Id", EWS_ID_MAX, "ParentFolderId");
	bf->name = opt_text(p, f, "DisplayName", EWS_TEXT_MAX);
	if (!bf->name)
		bf->name = xstrdup("");
	bf->folder_class = opt_text(p, f, "FolderClass", EWS_TEXT_MAX);
	opt_count(p, f, "TotalCount", &bf->total_count);
	opt_count(p, f, "UnreadCount", &bf->unread_count);
}

static void add_folder(struct pctx *p, enum be_change kind,
		       const xmlNode *f, void *batch)
{
	struct be_folder *bf = be_folder_batch_add(batch);
	bf->change = kind;
	parse_folder(p, f, bf);
}

enum be_status ews_parse_folders(const char *data, size_t len,
				 struct be_folder_batch *out,
				 struct be_result *r)
{
	static const struct sync_kind folders = {
		"SyncFolderHierarchyResponseMessage",
		"IncludesLastFolderInRange", "FolderId", "a folder", false,
		add_folder,
	};
	memset(out, 0, sizeof(*out));
	parse_sync(data, len, &folders, &out->new_state, &out->more, out, r);
	if (r->status != BE_OK)
		be_folder_batch_free(out);
	return r->status;
}

/* ---- SyncFolderItems ---- */

/* "Name <addr>", "addr" or "Name" from t:From/t:Mailbox. */
static char *parse_from(struct pctx *p, const xmlNode *item)
{
	const xmlNode *mb = xml_child(xml_child(item, EWS_NS_T, "From"),
				      EWS_NS_T, "Mailbox");
	if (!mb)
		return NULL;
	char *name = opt_text(p, mb, "Name", EWS_TEXT_MAX);
	char *addr = opt_text(p, mb, "EmailAddress", EWS_TEXT_MAX);
	char *rt = opt_text(p, mb, "RoutingType", 64);
	char *res = NULL;
	/* an Exchange-internal (X.500) address means nothing outside */
	if (rt && addr && strcmp(rt, "SMTP") && name && *name) {
		free(addr);
		addr = NULL;
	}
	if (name && !*name) {
		free(name);
		name = NULL;
	}
	if (addr && !*addr) {
		free(addr);
		addr = NULL;
	}
	if (name && addr && strcmp(name, addr))
		res = xasprintf("%s <%s>", name, addr);
	else if (addr)
		res = xstrdup(addr);
	else if (name)
		res = xstrdup(name);
	free(name);
	free(addr);
	free(rt);
	return res;
}

/* t:Flag/t:FlagStatus -> enum be_flag; left alone when absent (servers
 * before Exchange 2013 are not asked for it). */
static void opt_flag(struct pctx *p, const xmlNode *it, int *out)
{
	static const struct { const char *name; enum be_flag v; } st[] = {
		{ "NotFlagged", BE_FLAG_NONE }, { "Flagged", BE_FLAG_FLAGGED },
		{ "Complete", BE_FLAG_COMPLETE },
	};
	char *v = opt_text(p, xml_child(it, EWS_NS_T, "Flag"), "FlagStatus", 64);
	char q[48];
	size_t i, len;
	if (!v)
		return;
	const char *t = trimmed(v, &len);
	for (i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		if (strlen(st[i].name) == len && !memcmp(st[i].name, t, len))
			break;
	if (i < sizeof(st) / sizeof(st[0]))
		*out = st[i].v;
	else
		ews_fail(p, "bad FlagStatus '%s'", ews_quote(v, q));
	free(v);
}

/* t:Categories/t:String... joined with ',' (a ',' inside a category
 * becomes ' ', empty strings are skipped).  Exchange leaves out what has
 * no value, and item:Categories was asked for: absent means none (""). */
static char *parse_categories(struct pctx *p, const xmlNode *it)
{
	const xmlNode *cats = xml_child(it, EWS_NS_T, "Categories");
	struct buf b;
	char *res;
	buf_init(&b, EWS_TEXT_MAX);
	for (const xmlNode *c = xml_child(cats, EWS_NS_T, "String");
	     c && !p->failed; c = xml_next(c, EWS_NS_T, "String")) {
		char *v = NULL;
		bool big = xml_text(c, EWS_TEXT_MAX, &v) != 0;
		for (char *q = v; q && *q; q++)
			if (*q == ',')
				*q = ' ';
		if (big || (*v && ((b.len && buf_puts(&b, ",")) ||
				   buf_puts(&b, v))))
			ews_fail(p, "Categories longer than %zu bytes",
			     EWS_TEXT_MAX);
		free(v);
	}
	res = p->failed ? NULL : xstrdup(b.data ? b.data : "");
	buf_free(&b);
	return res;
}

static void parse_item(struct pctx *p, const xmlNode *it, struct be_item *bi)
{
	const xmlNode *id = xml_child(it, EWS_NS_T, "ItemId");
	bi->id = need_attr(p, id, "Id", EWS_ID_MAX, "ItemId");
	bi->change_key = opt_attr(p, id, "ChangeKey", EWS_ID_MAX, "ItemId");
	if (bi->change_key && !*bi->change_key) {
		free(bi->change_key);
		bi->change_key = NULL;
	}
	if (bi->change == BE_DELETE)
		return;
	opt_bool(p, it, "IsRead", &bi->is_read);
	if (bi->change == BE_READ_FLAG) {
		if (bi->is_read < 0)
			ews_fail(p, "ReadFlagChange without IsRead");
		return;
	}
	bi->subject = opt_text(p, it, "Subject", EWS_TEXT_MAX);
	const char *el = (const char *)it->name;
	if (!strcmp(el, "CalendarItem")) {
		bi->kind = BE_KIND_CALENDAR;
		opt_date(p, it, "Start", &bi->start);
	} else if (!strcmp(el, "Contact")) {
		/* a contact's file is named by its display name */
		bi->kind = BE_KIND_CONTACT;
		char *name = opt_text(p, it, "DisplayName", EWS_TEXT_MAX);
		if (!name || !*name) {
			free(name);
			name = opt_text(p, it, "FileAs", EWS_TEXT_MAX);
		}
		if (name && *name) {
			free(bi->subject);
			bi->subject = name;
		} else {
			free(name);
		}
	} else if (!strcmp(el, "Task")) {
		bi->kind = BE_KIND_TASK;
	} else if (strcmp(el, "Message") && strcmp(el, "MeetingRequest") &&
		   strcmp(el, "MeetingResponse") &&
		   strcmp(el, "MeetingCancellation") && strcmp(el, "Item") &&
		   strcmp(el, "PostItem")) {
		bi->kind = BE_KIND_OTHER;
	}
	bi->item_class = opt_text(p, it, "ItemClass", EWS_TEXT_MAX);
	bi->message_id = opt_text(p, it, "InternetMessageId", EWS_TEXT_MAX);
	bi->from = parse_from(p, it);
	opt_date(p, it, "DateTimeReceived", &bi->received);
	opt_date(p, it, "DateTimeSent", &bi->sent);
	opt_count(p, it, "Size", &bi->size);
	opt_bool(p, it, "HasAttachments", &bi->has_attachments);
	opt_bool(p, it, "IsDraft", &bi->is_draft);
	opt_flag(p, it, &bi->flag);
	bi->categories = parse_categories(p, it);
}

static void add_item(struct pctx *p, enum be_change kind, const xmlNode *it,
		     void *batch)
{
	struct be_item *bi = be_item_batch_add(batch);
	bi->change = kind;
	parse_item(p, it, bi);
}

enum be_status ews_parse_items(const char *data, size_t len,
			       struct be_item_batch *out, struct be_result *r)
{
	static const struct sync_kind items = {
		"SyncFolderItemsResponseMessage", "IncludesLastItemInRange",
		"ItemId", "an item", true, add_item,
	};
	memset(out, 0, sizeof(*out));
	parse_sync(data, len, &items, &out->new_state, &out->more, out, r);
	if (r->status != BE_OK)
		be_item_batch_free(out);
	return r->status;
}

/* ---- write answers ---- */

/* Where the answer to each write keeps the entity it is about. */
static const struct write_kind {
	const char *message;  /* response message element */
	const char *holder;   /* m: element holding the entity; NULL none */
	const char *inner;    /* t: element between holder and entity */
	const char *id_name;  /* ItemId or FolderId */
	enum ews_ctx ctx;     /* what an id error is about */
	int need;             /* 0 nothing, 1 the id, 2 id and change key */
} write_kinds[EWS_W_OP_N] = {
	[EWS_W_CREATE_ITEM] = { "CreateItemResponseMessage", "Items", NULL,
				"ItemId", EWS_ON_FOLDER, 0 },
	[EWS_W_FIND_ITEM] = { "FindItemResponseMessage", "RootFolder", "Items",
			      "ItemId", EWS_ON_FOLDER, 0 },
	[EWS_W_UPDATE_ITEM] = { "UpdateItemResponseMessage", "Items", NULL,
				"ItemId", EWS_ON_ITEM, 0 },
	[EWS_W_GET_ITEM] = { "GetItemResponseMessage", "Items", NULL,
			     "ItemId", EWS_ON_ITEM, 2 },
	[EWS_W_DELETE_ITEM] = { "DeleteItemResponseMessage", NULL, NULL,
				NULL, EWS_ON_ITEM, 0 },
	[EWS_W_MOVE_ITEM] = { "MoveItemResponseMessage", "Items", NULL,
			      "ItemId", EWS_ON_ITEM, 0 },
	[EWS_W_GET_FOLDER] = { "GetFolderResponseMessage", "Folders", NULL,
			       "FolderId", EWS_ON_FOLDER, 2 },
	[EWS_W_CREATE_FOLDER] = { "CreateFolderResponseMessage", "Folders",
				  NULL, "FolderId", EWS_ON_FOLDER, 1 },
	[EWS_W_UPDATE_FOLDER] = { "UpdateFolderResponseMessage", "Folders",
				  NULL, "FolderId", EWS_ON_FOLDER, 0 },
	[EWS_W_MOVE_FOLDER] = { "MoveFolderResponseMessage", "Folders", NULL,
				"FolderId", EWS_ON_FOLDER, 0 },
	[EWS_W_DELETE_FOLDER] = { "DeleteFolderResponseMessage", NULL, NULL,
				  NULL, EWS_ON_FOLDER, 0 },
};

enum ews_ctx ews_write_ctx(enum ews_write_op op)
{
	return (unsigned)op < EWS_W_OP_N ? write_kinds[op].ctx : EWS_ON_ITEM;
}

/* The id and change key of the first entity in a successful response
 * message (both NULL when it holds none). */
static void pull_id(struct pctx *p, const xmlNode *msg,
		    const struct write_kind *k, struct be_new *out)
{
	const xmlNode *holder = xml_child(msg, EWS_NS_M, k->holder);
	if (k->inner) {
		if (!holder) {
			ews_fail(p, "no %s in the answer", k->holder);
			return;
		}
		holder = xml_child(holder, EWS_NS_T, k->inner);
	}
	const xmlNode *e = changed_entity(holder, k->id_name);
	if (!e)
		return;
	const xmlNode *id = xml_child(e, EWS_NS_T, k->id_name);
	out->id = need_attr(p, id, "Id", EWS_ID_MAX, k->id_name);
	out->change_key = opt_attr(p, id, "ChangeKey", EWS_ID_MAX, k->id_name);
	if (out->change_key && !*out->change_key) {
		free(out->change_key);
		out->change_key = NULL;
	}
}

enum be_status ews_parse_write(const char *data, size_t len,
			       enum ews_write_op op, struct be_new *out,
			       struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	memset(out, 0, sizeof(*out));
	if ((unsigned)op >= EWS_W_OP_N) {
		be_result_set(r, BE_REFUSED, "unknown write operation %d", op);
		return r->status;
	}
	const struct write_kind *k = &write_kinds[op];
	const xmlNode *msg = open_message(data, len, &doc, k->message, k->ctx,
					  r);
	if (!msg)
		goto out;
	if (k->holder)
		pull_id(&p, msg, k, out);
	if (p.failed)
		goto out;
	if (op == EWS_W_FIND_ITEM && !out->id)
		be_result_set(r, BE_ITEM_GONE, "no item with that token");
	else if (k->need >= 1 && !out->id)
		ews_fail(&p, "no %s in the answer", k->id_name);
	else if (k->need >= 2 && !out->change_key)
		ews_fail(&p, "%s without ChangeKey in the answer", k->id_name);
	else
		be_result_ok(r);
out:
	if (r->status != BE_OK)
		be_new_free(out);
	xmlFreeDoc(doc);
	return r->status;
}

enum be_status ews_parse_special(const char *data, size_t len,
				 char *ids[BE_SPECIAL_N], struct be_result *r)
{
	xmlDoc *doc = NULL;
	struct pctx p = { r, false };
	const struct write_kind *k = &write_kinds[EWS_W_GET_FOLDER];
	for (int i = 0; i < BE_SPECIAL_N; i++)
		ids[i] = NULL;
	const xmlNode *body = ews_open_body(data, len, EWS_ANSWER_MAX, &doc, EWS_ON_FOLDER, r);
	if (!body)
		goto out;
	const xmlNode *msg = xml_child(ews_response_messages(body), EWS_NS_M,
				       k->message);
	for (int i = 0; i < BE_SPECIAL_N && !p.failed; i++) {
		struct be_result one;
		struct be_new got = { NULL, NULL };
		if (!msg) {
			ews_fail(&p, "%d of %d folders in the GetFolder answer", i,
			     BE_SPECIAL_N);
			break;
		}
		enum be_status st = ews_message_result(msg, EWS_ON_FOLDER, &one);
		if (st == BE_OK) {
			pull_id(&p, msg, k, &got);
			free(got.change_key);
			ids[i] = got.id;
			if (!ids[i])
				ews_fail(&p, "no FolderId in the answer");
		} else if (st != BE_FOLDER_GONE && st != BE_REFUSED) {
			*r = one;  /* throttled, auth, ...: the whole call */
			p.failed = true;
		} else {
			log_dbg(LC_HTTP, "no special folder %d: %s", i, one.msg);
		}
		msg = xml_next(msg, EWS_NS_M, k->message);
	}
	if (!p.failed)
		be_result_ok(r);
out:
	if (r->status != BE_OK)
		for (int i = 0; i < BE_SPECIAL_N; i++) {
			free(ids[i]);
			ids[i] = NULL;
		}
	xmlFreeDoc(doc);
	return r->status;
}

/* ---- error bodies ---- */

enum be_status ews_parse_fault_body(const char *data, size_t len,
				    enum ews_ctx ctx, struct be_result *r)
{
	char err[200];
	xmlDoc *doc = xml_parse(data, len, EWS_ANSWER_MAX, err, sizeof(err));
	xmlNode *env = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlNode *body = xml_is(env, EWS_NS_SOAP, "Envelope")
				? xml_child(env, EWS_NS_SOAP, "Body") : NULL;
	xmlNode *fault = xml_child(body, EWS_NS_SOAP, "Fault");
	be_result_ok(r);
	if (fault)
		ews_fault_result(fault, ctx, r);
	if (doc)
		xmlFreeDoc(doc);
	return r->status;
}
