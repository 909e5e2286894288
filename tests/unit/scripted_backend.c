/*
 * scripted_backend.c - the in-memory mailbox behind the engine's unit tests
 * (see scripted_backend.h): a struct backend_ops whose server is a model
 * of folders and items with one change counter, EWS-like semantics (a
 * moved item gets a new id; a page reports changes in counter order; a
 * state is the cursor of the last change reported), scripted faults, a
 * record of every call, and a hook for "crashing" at a chosen step.
 */
#include "scripted_backend.h"
#include "backend/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct be_session {
	struct sb_model *m;
};

static struct sb_model *current;

void sb_use(struct sb_model *m) { current = m; }

static const char *const op_names[SB_OP_N] = {
	"open", "sync_folders", "sync_items", "fetch_mime", "special_folders",
	"create_item", "find_token", "replace_mime", "update_props",
	"get_change_key", "delete_item", "move_item", "create_folder",
	"rename_folder", "move_folder", "delete_folder",
};

const char *sb_op_name(enum sb_op op) { return op_names[op]; }

bool sb_op_writes(enum sb_op op)
{
	return op == SB_CREATE || op == SB_REPLACE || op == SB_PROPS ||
	       op == SB_DELETE || op == SB_MOVE || op == SB_MKDIR ||
	       op == SB_RENAME_DIR || op == SB_MOVE_DIR || op == SB_RMDIR;
}

/* ---- the model ---- */

static char *new_id(struct sb_model *m, char kind)
{
	return xasprintf("%c%u", kind, ++m->next_id);
}

static struct sb_folder *folder_new(struct sb_model *m, const char *parent,
				    const char *name)
{
	m->folders = xrealloc(m->folders, (m->n_folders + 1) * sizeof(*m->folders));
	struct sb_folder *f = &m->folders[m->n_folders++];
	memset(f, 0, sizeof(*f));
	f->id = new_id(m, 'f');
	f->parent = xstrdup(parent);
	f->name = xstrdup(name);
	f->cls = xstrdup("IPF.Note");
	f->seq = ++m->seq;
	return f;
}

struct sb_model *sb_new(void)
{
	struct sb_model *m = xcalloc(1, sizeof(*m));
	m->page_size = 2;
	m->epoch = m->hier_epoch = 1;
	static const char *const names[BE_SPECIAL_N] = {
		"Inbox", "Drafts", "Sent Items", "Deleted Items", "Outbox",
	};
	for (int k = 0; k < BE_SPECIAL_N; k++)
		m->special[k] = xstrdup(folder_new(m, "root", names[k])->id);
	return m;
}

static void item_clear(struct sb_item *it)
{
	free(it->id);
	free(it->folder);
	free(it->mime);
	free(it->subject);
	free(it->token);
	free(it->categories);
}

void sb_free(struct sb_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_folders; i++) {
		free(m->folders[i].id);
		free(m->folders[i].parent);
		free(m->folders[i].name);
		free(m->folders[i].cls);
	}
	free(m->folders);
	for (size_t i = 0; i < m->n_items; i++)
		item_clear(&m->items[i]);
	free(m->items);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(m->special[k]);
	free(m->calls);
	free(m);
}

struct sb_model *sb_clone(const struct sb_model *m)
{
	struct sb_model *c = xcalloc(1, sizeof(*c));
	c->seq = m->seq;
	c->epoch = m->epoch;
	c->hier_epoch = m->hier_epoch;
	c->page_size = m->page_size;
	c->next_id = m->next_id;
	c->sent = m->sent;
	for (int k = 0; k < BE_SPECIAL_N; k++)
		c->special[k] = xstrdup(m->special[k]);
	c->folders = xcalloc(m->n_folders + 1, sizeof(*c->folders));
	c->n_folders = m->n_folders;
	for (size_t i = 0; i < m->n_folders; i++) {
		struct sb_folder *f = &c->folders[i];
		*f = m->folders[i];
		f->id = xstrdup(f->id);
		f->parent = xstrdup(f->parent);
		f->name = xstrdup(f->name);
		f->cls = xstrdup(f->cls);
	}
	c->items = xcalloc(m->n_items + 1, sizeof(*c->items));
	c->n_items = m->n_items;
	for (size_t i = 0; i < m->n_items; i++) {
		struct sb_item *it = &c->items[i];
		*it = m->items[i];
		it->id = xstrdup(it->id);
		it->folder = xstrdup(it->folder);
		it->mime = xmalloc(it->len + 1);
		memcpy(it->mime, m->items[i].mime, it->len + 1);
		it->subject = xstrdup(it->subject);
		it->token = xstrdup(it->token);
		it->categories = xstrdup(it->categories);
	}
	return c;
}

struct sb_folder *sb_folder(struct sb_model *m, const char *id)
{
	for (size_t i = 0; id && i < m->n_folders; i++)
		if (!m->folders[i].gone && !strcmp(m->folders[i].id, id))
			return &m->folders[i];
	return NULL;
}

struct sb_folder *sb_folder_named(struct sb_model *m, const char *name)
{
	for (size_t i = 0; i < m->n_folders; i++)
		if (!m->folders[i].gone && !strcmp(m->folders[i].name, name))
			return &m->folders[i];
	return NULL;
}

struct sb_item *sb_item(struct sb_model *m, const char *id)
{
	for (size_t i = 0; id && i < m->n_items; i++)
		if (!m->items[i].gone && !strcmp(m->items[i].id, id))
			return &m->items[i];
	return NULL;
}

static bool sibling_named(struct sb_model *m, const char *parent,
			  const char *name, const char *except)
{
	for (size_t i = 0; i < m->n_folders; i++) {
		const struct sb_folder *f = &m->folders[i];
		if (!f->gone && !strcmp(f->parent, parent) &&
		    !strcmp(f->name, name) && (!except || strcmp(f->id, except)))
			return true;
	}
	return false;
}

const char *sb_add_folder(struct sb_model *m, const char *parent,
			  const char *name)
{
	return folder_new(m, parent, name)->id;
}

/* The Subject header of MIME bytes (owned), or NULL. */
static char *mime_subject(const char *mime, size_t len)
{
	for (size_t i = 0; i + 9 <= len; i++) {
		if ((i == 0 || mime[i - 1] == '\n') &&
		    !strncmp(mime + i, "Subject: ", 9)) {
			size_t e = i + 9;
			while (e < len && mime[e] != '\r' && mime[e] != '\n')
				e++;
			return strndup(mime + i + 9, e - i - 9);
		}
	}
	return NULL;
}

static struct sb_item *item_new(struct sb_model *m, const char *folder,
				const char *mime, size_t len, int64_t received)
{
	m->items = xrealloc(m->items, (m->n_items + 1) * sizeof(*m->items));
	struct sb_item *it = &m->items[m->n_items++];
	memset(it, 0, sizeof(*it));
	it->id = new_id(m, 'i');
	it->folder = xstrdup(folder);
	it->mime = xmalloc(len + 1);
	memcpy(it->mime, mime, len);
	it->mime[len] = 0;
	it->len = len;
	it->subject = mime_subject(mime, len);
	it->categories = xstrdup("");
	it->received = received;
	it->ck = 1;
	it->seq = it->created = ++m->seq;
	return it;
}

const char *sb_add_item(struct sb_model *m, const char *folder,
			const char *subject, int64_t received)
{
	char *mime = xasprintf("From: a@example.com\r\nSubject: %s\r\n"
			       "Message-ID: <%s@example.com>\r\n\r\nbody of %s\r\n",
			       subject, subject, subject);
	struct sb_item *it = item_new(m, folder, mime, strlen(mime), received);
	free(mime);
	return it->id;
}

void sb_touch_item(struct sb_model *m, struct sb_item *it)
{
	it->ck++;
	it->seq = ++m->seq;
}

/* The item leaves its folder: a tombstone there. */
static void bury(struct sb_model *m, struct sb_item *it)
{
	it->gone = true;
	it->seq = ++m->seq;
}

void sb_remove_item(struct sb_model *m, const char *id)
{
	struct sb_item *it = sb_item(m, id);
	if (it)
		bury(m, it);
}

/* Moved: a new id in folder, a tombstone at the old place.  Returns the
 * new item (pointers into items[] move: the old one is found again). */
static struct sb_item *move_to(struct sb_model *m, const char *id,
			       const char *folder)
{
	size_t k = (size_t)(sb_item(m, id) - m->items);
	struct sb_item *nw = item_new(m, folder, m->items[k].mime,
				      m->items[k].len, m->items[k].received);
	struct sb_item *old = &m->items[k];
	nw->is_read = old->is_read;
	nw->flag = old->flag;
	nw->is_draft = old->is_draft;
	free(nw->categories);
	nw->categories = xstrdup(old->categories);
	nw->token = xstrdup(old->token);
	bury(m, old);
	return nw;
}

void sb_remove_folder(struct sb_model *m, const char *id)
{
	struct sb_folder *f = sb_folder(m, id);
	if (!f)
		return;
	f->gone = true;
	f->seq = ++m->seq;
	for (size_t i = 0; i < m->n_items; i++)
		if (!m->items[i].gone && !strcmp(m->items[i].folder, id))
			bury(m, &m->items[i]);
	for (size_t i = 0; i < m->n_folders; i++)
		if (!m->folders[i].gone && !strcmp(m->folders[i].parent, id))
			sb_remove_folder(m, m->folders[i].id);
}

void sb_rename_folder(struct sb_model *m, const char *id, const char *name)
{
	struct sb_folder *f = sb_folder(m, id);
	free(f->name);
	f->name = xstrdup(name);
	f->seq = ++m->seq;
}

size_t sb_count_items(struct sb_model *m, const char *folder)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_items; i++)
		n += !m->items[i].gone && !strcmp(m->items[i].folder, folder);
	return n;
}

size_t sb_count_token(struct sb_model *m, const char *token)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_items; i++)
		n += !m->items[i].gone && m->items[i].token &&
		     !strcmp(m->items[i].token, token);
	return n;
}

/* ---- faults, the record, the hook ---- */

void sb_fault(struct sb_model *m, enum sb_op op, const char *arg,
	      unsigned nth, enum be_status st, bool done)
{
	if (m->n_faults == SB_MAX_FAULTS)
		abort();
	m->faults[m->n_faults++] = (struct sb_fault){
		.op = op, .arg = arg, .nth = nth, .st = st, .done = done,
	};
}

void sb_clear_faults(struct sb_model *m) { m->n_faults = 0; }

size_t sb_calls(const struct sb_model *m, enum sb_op op, const char *arg)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_calls; i++)
		n += m->calls[i].op == op && (!arg || !strcmp(m->calls[i].arg, arg));
	return n;
}

void sb_clear_calls(struct sb_model *m)
{
	m->n_calls = 0;
	m->hook_seen = 0;
	memset(m->op_count, 0, sizeof(m->op_count));
}

/* Start a call: record it, run the hook, find its fault.  Returns true if
 * the fault answers it at once (r set); *f gets a fault to apply after
 * the work (done), or NULL. */
static bool enter(struct sb_model *m, enum sb_op op, const char *arg,
		  const char *state, struct sb_fault **f, struct be_result *r)
{
	be_result_ok(r);
	m->calls = xrealloc(m->calls, (m->n_calls + 1) * sizeof(*m->calls));
	struct sb_call *c = &m->calls[m->n_calls++];
	memset(c, 0, sizeof(*c));
	c->op = op;
	snprintf(c->arg, sizeof(c->arg), "%s", arg ? arg : "");
	snprintf(c->state, sizeof(c->state), "%s", state ? state : "");
	m->op_count[op]++;
	m->hook_due = m->hook && m->hook_op == op &&
		      (!m->hook_on || (arg && !strcmp(m->hook_on, arg))) &&
		      ++m->hook_seen == m->hook_nth;
	if (m->hook_due && !m->hook_after)
		m->hook(m->hook_arg);
	*f = NULL;
	for (size_t i = 0; i < m->n_faults; i++) {
		struct sb_fault *x = &m->faults[i];
		if (x->op != op || (x->arg && (!arg || strcmp(x->arg, arg))))
			continue;
		x->seen++;
		if (x->nth && x->nth != x->seen)
			continue;
		*f = x;
		break;
	}
	if (*f && !(*f)->done) {
		be_result_set(r, (*f)->st, "scripted fault: %s", be_status_name((*f)->st));
		if ((*f)->st == BE_THROTTLED)
			r->retry_after_ms = 1;
		c->st = r->status;
		return true;
	}
	return false;
}

/* End a call that did its work with outcome st: the hook after a write,
 * then a fault whose answer is lost. */
static enum be_status leave(struct sb_model *m, enum sb_op op,
			    const struct sb_fault *f, enum be_status st,
			    struct be_new *out, struct be_result *r)
{
	if (m->hook_due && m->hook_after)
		m->hook(m->hook_arg);
	m->hook_due = false;
	if (st == BE_OK && f) {
		if (out)
			be_new_free(out);
		st = f->st;
		be_result_set(r, st, "scripted fault after the work: %s",
			      be_status_name(st));
	} else if (st == BE_OK) {
		be_result_ok(r);
	} else {
		be_result_set(r, st, "%s: %s", sb_op_name(op), be_status_name(st));
	}
	m->calls[m->n_calls - 1].st = st;
	return st;
}

/* ---- the backend ---- */

static struct be_session *sb_open(const struct be_config *cfg,
				  struct be_result *r)
{
	struct sb_fault *f;
	if (enter(current, SB_OPEN, NULL, NULL, &f, r))
		return NULL;
	struct be_session *s = xcalloc(1, sizeof(*s));
	s->m = current;
	return s;
}

static void sb_close(struct be_session *s) { free(s); }

static const char *sb_root_id(struct be_session *s) { return "root"; }

/* A state "<epoch>:<seq>": the changes after seq.  false if refused. */
static bool parse_state(const char *state, unsigned epoch, int64_t *seq)
{
	*seq = 0;
	if (!state || !*state)
		return true;
	unsigned e = 0;
	long long q = 0;
	if (sscanf(state, "%u:%lld", &e, &q) != 2 || e != epoch)
		return false;
	*seq = q;
	return true;
}

static enum be_status sb_sync_folders(struct be_session *s, const char *state,
				      struct be_folder_batch *out,
				      struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_SYNC_FOLDERS, NULL, state, &f, r))
		return r->status;
	int64_t from;
	if (!parse_state(state, m->hier_epoch, &from))
		return leave(m, SB_SYNC_FOLDERS, NULL, BE_SYNC_INVALID, NULL, r);
	bool empty = !state || !*state;
	int64_t last = from;
	unsigned n = 0;
	for (;;) {
		/* the next change after last, in counter order */
		const struct sb_folder *next = NULL;
		for (size_t i = 0; i < m->n_folders; i++) {
			const struct sb_folder *x = &m->folders[i];
			if (x->seq > last && (!empty || !x->gone) &&
			    (!next || x->seq < next->seq))
				next = x;
		}
		if (!next)
			break;
		if (n == m->page_size) {
			out->more = true;
			break;
		}
		struct be_folder *bf = be_folder_batch_add(out);
		bf->change = next->gone ? BE_DELETE : BE_CREATE;
		bf->id = xstrdup(next->id);
		if (!next->gone) {
			bf->parent_id = xstrdup(next->parent);
			bf->name = xstrdup(next->name);
			bf->folder_class = xstrdup(next->cls);
		}
		last = next->seq;
		n++;
	}
	if (!out->more)  /* everything up to now was considered */
		last = m->seq;
	out->new_state = xasprintf("%u:%lld", m->hier_epoch, (long long)last);
	return leave(m, SB_SYNC_FOLDERS, f, BE_OK, NULL, r);
}

static void fill_item(struct be_item *bi, const struct sb_item *it,
		      bool created)
{
	bi->id = xstrdup(it->id);
	if (it->gone) {
		bi->change = BE_DELETE;
		return;
	}
	bi->change = created ? BE_CREATE : BE_UPDATE;
	bi->change_key = xasprintf("ck%u", it->ck);
	bi->subject = xstrdup(it->subject);
	bi->from = xstrdup("a@example.com");
	bi->item_class = xstrdup("IPM.Note");
	bi->received = it->received;
	bi->sent = it->received;
	bi->size = (int64_t)it->len;
	bi->is_read = it->is_read;
	bi->has_attachments = 0;
	bi->flag = it->flag;
	bi->categories = xstrdup(it->categories);
	bi->is_draft = it->is_draft;
}

static enum be_status sb_sync_items(struct be_session *s, const char *folder_id,
				    const char *state, unsigned max,
				    struct be_item_batch *out,
				    struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_SYNC_ITEMS, folder_id, state, &f, r))
		return r->status;
	int64_t from;
	if (!sb_folder(m, folder_id))
		return leave(m, SB_SYNC_ITEMS, NULL, BE_FOLDER_GONE, NULL, r);
	if (!parse_state(state, m->epoch, &from))
		return leave(m, SB_SYNC_ITEMS, NULL, BE_SYNC_INVALID, NULL, r);
	bool empty = !state || !*state;
	int64_t last = from;
	unsigned n = 0;
	for (;;) {
		const struct sb_item *next = NULL;
		for (size_t i = 0; i < m->n_items; i++) {
			const struct sb_item *x = &m->items[i];
			if (x->seq > last && !strcmp(x->folder, folder_id) &&
			    (!empty || !x->gone) && (!next || x->seq < next->seq))
				next = x;
		}
		if (!next)
			break;
		if (n == m->page_size || n == max) {
			out->more = true;
			break;
		}
		fill_item(be_item_batch_add(out), next, empty || next->created > from);
		last = next->seq;
		n++;
	}
	if (!out->more)
		last = m->seq;
	out->new_state = xasprintf("%u:%lld", m->epoch, (long long)last);
	return leave(m, SB_SYNC_ITEMS, f, BE_OK, NULL, r);
}

static enum be_status sb_fetch_mime(struct be_session *s,
				    const char *const *ids, size_t n,
				    be_sink_fn sink, be_done_fn done,
				    void *arg, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_FETCH, n ? ids[0] : NULL, NULL, &f, r))
		return r->status;
	for (size_t i = 0; i < n; i++) {
		const struct sb_item *it = sb_item(m, ids[i]);
		if (!it) {
			done(arg, i, BE_ITEM_GONE, "gone");
			continue;
		}
		sink(arg, i, it->mime, it->len);
		done(arg, i, BE_OK, NULL);
	}
	return leave(m, SB_FETCH, f, BE_OK, NULL, r);
}

static enum be_status sb_special(struct be_session *s, char *ids[BE_SPECIAL_N],
				 struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_SPECIAL, NULL, NULL, &f, r))
		return r->status;
	for (int k = 0; k < BE_SPECIAL_N; k++)
		ids[k] = xstrdup(m->special[k]);
	return leave(m, SB_SPECIAL, f, BE_OK, NULL, r);
}

static void give(struct be_new *out, const struct sb_item *it)
{
	if (!out)
		return;
	out->id = xstrdup(it->id);
	out->change_key = xasprintf("ck%u", it->ck);
}

static enum be_status sb_create_item(struct be_session *s, const char *folder_id,
				     const void *mime, size_t len,
				     enum be_disposition how, int64_t date,
				     const char *token, struct be_new *out,
				     struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_CREATE, folder_id, NULL, &f, r))
		return r->status;
	if (!sb_folder(m, folder_id))
		return leave(m, SB_CREATE, NULL, BE_FOLDER_GONE, NULL, r);
	struct sb_item *it = item_new(m, folder_id, mime, len,
				      date > 0 ? date : 1700000000);
	it->token = xstrdup(token);
	it->is_read = 1;
	it->is_draft = how == BE_SAVE_DRAFT;
	if (how == BE_SEND)
		m->sent++;
	else
		give(out, it);
	return leave(m, SB_CREATE, f, BE_OK, out, r);
}

static enum be_status sb_find_token(struct be_session *s, const char *folder_id,
				    const char *token, struct be_new *out,
				    struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_FIND_TOKEN, folder_id, NULL, &f, r))
		return r->status;
	for (size_t i = 0; i < m->n_items; i++) {
		const struct sb_item *it = &m->items[i];
		if (!it->gone && it->token && !strcmp(it->token, token) &&
		    !strcmp(it->folder, folder_id)) {
			give(out, it);
			return leave(m, SB_FIND_TOKEN, f, BE_OK, out, r);
		}
	}
	return leave(m, SB_FIND_TOKEN, NULL, BE_ITEM_GONE, NULL, r);
}

/* The item for a write with a change key: gone or conflict, or NULL. */
static enum be_status writable(struct sb_model *m, const char *id,
			       const char *ck, struct sb_item **it)
{
	*it = sb_item(m, id);
	if (!*it)
		return BE_ITEM_GONE;
	char want[32];
	snprintf(want, sizeof(want), "ck%u", (*it)->ck);
	if (ck && strcmp(ck, want))
		return BE_CONFLICT;
	return BE_OK;
}

static enum be_status sb_replace(struct be_session *s, const char *id,
				 const char *ck, const void *mime, size_t len,
				 struct be_new *out, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_REPLACE, id, NULL, &f, r))
		return r->status;
	struct sb_item *it;
	enum be_status st = writable(m, id, ck, &it);
	if (st != BE_OK)
		return leave(m, SB_REPLACE, NULL, st, NULL, r);
	free(it->mime);
	it->mime = xmalloc(len + 1);
	memcpy(it->mime, mime, len);
	it->mime[len] = 0;
	it->len = len;
	free(it->subject);
	it->subject = mime_subject(mime, len);
	sb_touch_item(m, it);
	give(out, it);
	return leave(m, SB_REPLACE, f, BE_OK, out, r);
}

static enum be_status sb_props(struct be_session *s, const char *id,
			       const char *ck, const struct be_props *p,
			       struct be_new *out, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_PROPS, id, NULL, &f, r))
		return r->status;
	struct sb_item *it;
	enum be_status st = writable(m, id, ck, &it);
	if (st != BE_OK)
		return leave(m, SB_PROPS, NULL, st, NULL, r);
	if (p->mask & BE_PROP_READ)
		it->is_read = p->read;
	if (p->mask & BE_PROP_FLAG)
		it->flag = p->flag;
	if (p->mask & BE_PROP_CATEGORIES) {
		free(it->categories);
		it->categories = xstrdup(p->categories);
	}
	sb_touch_item(m, it);
	give(out, it);
	return leave(m, SB_PROPS, f, BE_OK, out, r);
}

static enum be_status sb_get_ck(struct be_session *s, const char *id,
				char **ck, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_GET_CK, id, NULL, &f, r))
		return r->status;
	struct sb_item *it = sb_item(m, id);
	if (!it)
		return leave(m, SB_GET_CK, NULL, BE_ITEM_GONE, NULL, r);
	*ck = xasprintf("ck%u", it->ck);
	return leave(m, SB_GET_CK, f, BE_OK, NULL, r);
}

static enum be_status sb_delete(struct be_session *s, const char *id,
				enum be_delete how, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_DELETE, id, NULL, &f, r))
		return r->status;
	if (!sb_item(m, id))
		return leave(m, SB_DELETE, NULL, BE_ITEM_GONE, NULL, r);
	if (how == BE_DEL_TO_TRASH && strcmp(sb_item(m, id)->folder,
					     m->special[BE_DELETED]))
		move_to(m, id, m->special[BE_DELETED]);
	else
		sb_remove_item(m, id);
	return leave(m, SB_DELETE, f, BE_OK, NULL, r);
}

static enum be_status sb_move(struct be_session *s, const char *id,
			      const char *to, struct be_new *out,
			      struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_MOVE, id, NULL, &f, r))
		return r->status;
	if (!sb_item(m, id))
		return leave(m, SB_MOVE, NULL, BE_ITEM_GONE, NULL, r);
	if (!sb_folder(m, to))
		return leave(m, SB_MOVE, NULL, BE_FOLDER_GONE, NULL, r);
	give(out, move_to(m, id, to));
	return leave(m, SB_MOVE, f, BE_OK, out, r);
}

static enum be_status sb_mkdir(struct be_session *s, const char *parent,
			       const char *name, struct be_new *out,
			       struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_MKDIR, parent, NULL, &f, r))
		return r->status;
	if (strcmp(parent, "root") && !sb_folder(m, parent))
		return leave(m, SB_MKDIR, NULL, BE_FOLDER_GONE, NULL, r);
	if (sibling_named(m, parent, name, NULL))
		return leave(m, SB_MKDIR, NULL, BE_EXISTS, NULL, r);
	out->id = xstrdup(folder_new(m, parent, name)->id);
	return leave(m, SB_MKDIR, f, BE_OK, out, r);
}

static enum be_status sb_rename_dir(struct be_session *s, const char *id,
				    const char *name, struct be_new *out,
				    struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_RENAME_DIR, id, NULL, &f, r))
		return r->status;
	struct sb_folder *d = sb_folder(m, id);
	if (!d)
		return leave(m, SB_RENAME_DIR, NULL, BE_FOLDER_GONE, NULL, r);
	if (sibling_named(m, d->parent, name, id))
		return leave(m, SB_RENAME_DIR, NULL, BE_EXISTS, NULL, r);
	sb_rename_folder(m, id, name);
	return leave(m, SB_RENAME_DIR, f, BE_OK, out, r);
}

static enum be_status sb_move_dir(struct be_session *s, const char *id,
				  const char *to, struct be_new *out,
				  struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_MOVE_DIR, id, NULL, &f, r))
		return r->status;
	struct sb_folder *d = sb_folder(m, id);
	if (!d || (strcmp(to, "root") && !sb_folder(m, to)))
		return leave(m, SB_MOVE_DIR, NULL, BE_FOLDER_GONE, NULL, r);
	if (sibling_named(m, to, d->name, id))
		return leave(m, SB_MOVE_DIR, NULL, BE_EXISTS, NULL, r);
	free(d->parent);
	d->parent = xstrdup(to);
	d->seq = ++m->seq;
	return leave(m, SB_MOVE_DIR, f, BE_OK, out, r);
}

static enum be_status sb_rmdir(struct be_session *s, const char *id,
			       bool hard, struct be_result *r)
{
	struct sb_model *m = s->m;
	struct sb_fault *f;
	if (enter(m, SB_RMDIR, id, NULL, &f, r))
		return r->status;
	if (!sb_folder(m, id))
		return leave(m, SB_RMDIR, NULL, BE_FOLDER_GONE, NULL, r);
	sb_remove_folder(m, id);
	return leave(m, SB_RMDIR, f, BE_OK, NULL, r);
}

const struct backend_ops scripted_backend = {
	.name = "scripted",
	.open = sb_open,
	.close = sb_close,
	.root_id = sb_root_id,
	.sync_folders = sb_sync_folders,
	.sync_items = sb_sync_items,
	.fetch_mime = sb_fetch_mime,
	.special_folders = sb_special,
	.create_item = sb_create_item,
	.find_token = sb_find_token,
	.replace_mime = sb_replace,
	.update_props = sb_props,
	.get_change_key = sb_get_ck,
	.delete_item = sb_delete,
	.move_item = sb_move,
	.create_folder = sb_mkdir,
	.rename_folder = sb_rename_dir,
	.move_folder = sb_move_dir,
	.delete_folder = sb_rmdir,
};

char *sb_dump(const struct sb_model *m)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "sent %u\n", m->sent);
	for (size_t i = 0; i < m->n_folders; i++) {
		const struct sb_folder *f = &m->folders[i];
		if (!f->gone)
			buf_printf(&b, "F %s in %s '%s'\n", f->id, f->parent, f->name);
	}
	for (size_t i = 0; i < m->n_items; i++) {
		const struct sb_item *it = &m->items[i];
		if (!it->gone)
			buf_printf(&b, "I %s in %s '%s' read %d flag %d cats '%s' "
				   "draft %d len %zu %s\n", it->id, it->folder,
				   it->subject ? it->subject : "", it->is_read,
				   it->flag, it->categories, it->is_draft, it->len,
				   it->token ? "token" : "");
	}
	return b.data;
}
