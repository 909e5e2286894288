/*
 * ews_parse.c - GetFolder, SyncFolderHierarchy and SyncFolderItems answers
 * into be_* batches.  Pure functions over a byte buffer (unit tests and the
 * fuzzer call them without HTTP).  Elements are matched by namespace URI,
 * in any order; unknown ones are ignored.  Anything malformed is a clean
 * BE_PROTOCOL naming what was wrong.
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse state shared by the helpers: the first failure wins. */
struct pctx {
	struct be_result *r;
	bool failed;
};

static void fail(struct pctx *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct pctx *p, const char *fmt, ...)
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

/* Parse, check the envelope, handle a SOAP fault.  Returns the soap:Body
 * or NULL with r set. */
static xmlNode *open_body(const char *data, size_t len, xmlDoc **doc,
			  enum ews_ctx ctx, struct be_result *r)
{
	char err[200];
	*doc = xml_parse(data, len, EWS_ANSWER_MAX, err, sizeof(err));
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

/* The response message `name` of the answer; NULL with r set if absent or
 * an error answer. */
static xmlNode *open_message(const char *data, size_t len, xmlDoc **doc,
			     const char *name, enum ews_ctx ctx,
			     struct be_result *r)
{
	xmlNode *body = open_body(data, len, doc, ctx, r);
	if (!body)
		return NULL;
	xmlNode *msgs = NULL;
	for (xmlNode *c = xml_child(body, NULL, NULL); c && !msgs;
	     c = xml_next(c, NULL, NULL))
		msgs = xml_child(c, EWS_NS_M, "ResponseMessages");
	xmlNode *msg = xml_child(msgs, EWS_NS_M, name);
	if (!msg) {
		be_result_set(r, BE_PROTOCOL, "no %s in the answer", name);
		return NULL;
	}
	if (ews_message_result(msg, ctx, r) != BE_OK)
		return NULL;
	return msg;
}

/* An attribute that must be there: NULL after fail() otherwise. */
static char *need_attr(struct pctx *p, const xmlNode *n, const char *attr,
		       size_t cap, const char *what)
{
	char *v = NULL;
	if (!n)
		fail(p, "%s missing", what);
	else if (xml_attr(n, attr, cap, &v))
		fail(p, "%s %s longer than %zu bytes", what, attr, cap);
	else if (!v || !*v)
		fail(p, "%s without %s", what, attr);
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
		fail(p, "%s %s longer than %zu bytes", what, attr, cap);
	return v;
}

/* Text of the child (T namespace) `name`, NULL if absent. */
static char *opt_text(struct pctx *p, const xmlNode *parent, const char *name,
		      size_t cap)
{
	char *v = NULL;
	const xmlNode *n = xml_child(parent, EWS_NS_T, name);
	if (n && xml_text(n, cap, &v))
		fail(p, "%s longer than %zu bytes", name, cap);
	return v;
}

static void opt_count(struct pctx *p, const xmlNode *parent, const char *name,
		      int64_t *out)
{
	char *v = opt_text(p, parent, name, 64);
	char q[48];
	if (v && xs_nonneg_long(v, out))
		fail(p, "bad %s '%s'", name, ews_quote(v, q));
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
			fail(p, "bad %s '%s'", name, ews_quote(v, q));
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
		fail(p, "bad %s '%s'", name, ews_quote(v, q));
	free(v);
}

/* SyncState (required, non-empty, white space trimmed) and the "last in
 * range" flag (absent = last, so a server that omits it cannot loop us). */
static void sync_header(struct pctx *p, const xmlNode *msg, const char *last,
			char **state, bool *more)
{
	const xmlNode *n = xml_child(msg, EWS_NS_M, "SyncState");
	char *s = NULL, q[48];
	size_t lead, len;
	if (!n) {
		fail(p, "no SyncState in the answer");
		return;
	}
	if (xml_text(n, EWS_STATE_MAX + 64, &s)) {
		fail(p, "SyncState longer than %zu bytes", EWS_STATE_MAX);
		return;
	}
	lead = strspn(s, " \t\r\n");
	len = strlen(s + lead);
	while (len && strchr(" \t\r\n", s[lead + len - 1]))
		len--;
	if (!len)
		fail(p, "empty SyncState in the answer");
	else if (len > EWS_STATE_MAX)
		fail(p, "SyncState longer than %zu bytes", EWS_STATE_MAX);
	else
		*state = xstrndup(s + lead, len);
	free(s);
	if (p->failed)
		return;

	bool b = true;
	n = xml_child(msg, EWS_NS_M, last);
	if (n) {
		char *v = NULL;
		if (xml_text(n, 64, &v) || xs_boolean(v, &b))
			fail(p, "bad %s '%s'", last, ews_quote(v, q));
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
			fail(&p, "%s without %s", (const char *)c->name,
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
			fail(&p, "no folder in the GetFolder answer");
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
			fail(p, "ReadFlagChange without IsRead");
		return;
	}
	bi->subject = opt_text(p, it, "Subject", EWS_TEXT_MAX);
	bi->item_class = opt_text(p, it, "ItemClass", EWS_TEXT_MAX);
	bi->message_id = opt_text(p, it, "InternetMessageId", EWS_TEXT_MAX);
	bi->from = parse_from(p, it);
	opt_date(p, it, "DateTimeReceived", &bi->received);
	opt_date(p, it, "DateTimeSent", &bi->sent);
	opt_count(p, it, "Size", &bi->size);
	opt_bool(p, it, "HasAttachments", &bi->has_attachments);
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
