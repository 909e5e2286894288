/*
 * eas_write.c - the ActiveSync write operations and Ping (watch).
 *
 * Sync keys.  A Sync Change or Delete needs the collection's current
 * SyncKey and gives a new one; the core keeps the key of its last item
 * sync and hands it back to sync_items().  All sessions of this process
 * are the same device, so the keys form one chain per collection: the
 * chain's newest key is kept here (struct keys, process-wide) and every
 * Sync of a collection - the core's reads and these writes - is
 * serialised by one lock.  A key that a write of ours replaced is
 * "superseded": when the core asks for changes since it, sync_items()
 * asks since the newest key instead (the changes in between are our own,
 * already in the cache), which is what a server that keeps one state per
 * device (Exchange) requires.  SOGo's keys are stateless; the newest key
 * after a write there is the one given.
 *
 * Sending: SendMail (14.0+) with the MIME as opaque data and the journal
 * token as ClientId, which servers use to drop a duplicate.  ActiveSync
 * cannot search by token, so there is no find_token() and the caps lack
 * BE_CAN_FIND_TOKEN: the journal sends again with the same ClientId.  Drafts (16.0+) are a Sync Add in Drafts from the draft's
 * fields, ClientId = token likewise; 14.1 cannot store a draft, and no
 * version can store a ready message in a folder: BE_UNSUPPORTED, said so.
 *
 * A server without an Outbox folder (SOGo) gets a virtual one, so a file
 * written there is sent like on Exchange (eas.c adds it to the tree); the
 * caps then lack BE_HAS_OUTBOX, which the status says.
 */
#include "backend/eas/eas.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the key chains ---- */

#define SUPERSEDED_MAX 16
struct keys {
	char *device, *collection;
	char *latest;
	char *superseded[SUPERSEDED_MAX];
	unsigned next;
	struct keys *link;
};
struct folder_ent;

/* What all sessions of one mount share: the device's key chains and
 * folder list, and the lock every Sync request of the device runs under.
 * Made by the core once per mount (eas_account_new); callers that pass
 * none (be_config.account NULL: unit tests, one-off commands) share the
 * process's default one. */
struct be_account {
	pthread_mutex_t sync_lock;    /* held across each Sync round trip:
					 the chain of a collection moves
					 one request at a time */
	pthread_mutex_t keys_lock;    /* guards keys */
	struct keys *keys;
	pthread_mutex_t folders_lock; /* guards folders */
	struct folder_ent *folders;
};

static struct be_account default_account = {
	.sync_lock = PTHREAD_MUTEX_INITIALIZER,
	.keys_lock = PTHREAD_MUTEX_INITIALIZER,
	.folders_lock = PTHREAD_MUTEX_INITIALIZER,
};

static struct be_account *acct(struct be_account *a)
{
	return a ? a : &default_account;
}

struct be_account *eas_account_new(const struct be_config *cfg)
{
	(void)cfg;
	struct be_account *a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->sync_lock, NULL);
	pthread_mutex_init(&a->keys_lock, NULL);
	pthread_mutex_init(&a->folders_lock, NULL);
	return a;
}

static void keys_free(struct be_account *a);
static void folders_free(struct be_account *a);

void eas_account_free(struct be_account *a)
{
	if (!a || a == &default_account)
		return;
	keys_free(a);
	folders_free(a);
	pthread_mutex_destroy(&a->sync_lock);
	pthread_mutex_destroy(&a->keys_lock);
	pthread_mutex_destroy(&a->folders_lock);
	free(a);
}

static struct keys *keys_find(struct be_account *a, const char *device,
			      const char *collection, bool make)
{
	for (struct keys *k = a->keys; k; k = k->link)
		if (!strcmp(k->device, device) && !strcmp(k->collection, collection))
			return k;
	if (!make)
		return NULL;
	struct keys *k = xcalloc(1, sizeof(*k));
	k->device = xstrdup(device);
	k->collection = xstrdup(collection);
	k->link = a->keys;
	a->keys = k;
	return k;
}

void eas_sync_lock(struct be_account *a)
{
	pthread_mutex_lock(&acct(a)->sync_lock);
}

void eas_sync_unlock(struct be_account *a)
{
	pthread_mutex_unlock(&acct(a)->sync_lock);
}

/* The newest key of a collection (owned), or NULL. */
char *eas_key_latest(struct be_account *a, const char *device,
		     const char *collection)
{
	a = acct(a);
	pthread_mutex_lock(&a->keys_lock);
	struct keys *k = keys_find(a, device, collection, false);
	char *v = k && k->latest ? xstrdup(k->latest) : NULL;
	pthread_mutex_unlock(&a->keys_lock);
	return v;
}

/* A Sync of collection gave new_key; by_write: a write of ours replaced
 * old_key with it. */
void eas_key_note(struct be_account *a, const char *device,
		  const char *collection, const char *old_key,
		  const char *new_key, bool by_write)
{
	a = acct(a);
	pthread_mutex_lock(&a->keys_lock);
	struct keys *k = keys_find(a, device, collection, true);
	if (by_write && old_key && new_key && strcmp(old_key, new_key)) {
		free(k->superseded[k->next]);
		k->superseded[k->next] = xstrdup(old_key);
		k->next = (k->next + 1) % SUPERSEDED_MAX;
	}
	if (new_key) {
		free(k->latest);
		k->latest = xstrdup(new_key);
	} else {
		free(k->latest);
		k->latest = NULL;
	}
	pthread_mutex_unlock(&a->keys_lock);
}

/* The key to sync collection from when the core has state (owned). */
char *eas_key_for_read(struct be_account *a, const char *device,
		       const char *collection, const char *state)
{
	char *v = xstrdup(state);
	a = acct(a);
	pthread_mutex_lock(&a->keys_lock);
	struct keys *k = keys_find(a, device, collection, false);
	for (unsigned i = 0; k && k->latest && state && i < SUPERSEDED_MAX; i++)
		if (k->superseded[i] && !strcmp(k->superseded[i], state)) {
			free(v);
			v = xstrdup(k->latest);
			break;
		}
	pthread_mutex_unlock(&a->keys_lock);
	return v;
}

static void keys_free(struct be_account *a)
{
	pthread_mutex_lock(&a->keys_lock);
	while (a->keys) {
		struct keys *k = a->keys;
		a->keys = k->link;
		free(k->device);
		free(k->collection);
		free(k->latest);
		for (int i = 0; i < SUPERSEDED_MAX; i++)
			free(k->superseded[i]);
		free(k);
	}
	pthread_mutex_unlock(&a->keys_lock);
}

void eas_keys_free_all(void)
{
	keys_free(&default_account);
}

/* ---- Sync writes ---- */

/* The key each collection's last write went out with, kept in the cache
 * directory ("collection TAB key" lines) before the write is sent.  After
 * a restart - kill -9 while a write's answer was on its way - the write
 * goes again with that key, which the server takes as the resend of its
 * last request and answers again instead of carrying it out twice; a fresh
 * key (Sync from 0) would make it forget the ClientIds it has seen, and a
 * draft would be stored twice.  Called under eas_sync_lock(). */
#define WRITE_KEYS_FILE "eas-write-keys"

static char *kept_write_key(struct be_session *s, const char *coll)
{
	char *text = eas_state_read_all(s, WRITE_KEYS_FILE), *key = NULL;
	size_t cl = strlen(coll);
	for (char *l = text, *nl; l && *l && !key; l = nl) {
		nl = l + strcspn(l, "\n");
		if (*nl)
			*nl++ = 0;
		if (!strncmp(l, coll, cl) && l[cl] == '\t' && l[cl + 1])
			key = xstrdup(l + cl + 1);
	}
	free(text);
	/* a damaged file: a key no server gave is no key (Sync from 0) */
	for (const char *p = key; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f ||
		    p - key >= EAS_KEY_MAX) {
			log_warn("the kept write key of collection %s in "
				 WRITE_KEYS_FILE " is damaged: not used", coll);
			free(key);
			key = NULL;
			break;
		}
	return key;
}

/* Keep key as coll's (NULL: forget coll's). */
static void keep_write_key(struct be_session *s, const char *coll,
			   const char *key)
{
	char *text = eas_state_read_all(s, WRITE_KEYS_FILE);
	size_t cl = strlen(coll);
	bool same = false;
	struct buf b;
	buf_init(&b, 0);
	for (char *l = text, *nl; l && *l; l = nl) {
		nl = l + strcspn(l, "\n");
		if (*nl)
			*nl++ = 0;
		if (!strncmp(l, coll, cl) && l[cl] == '\t')
			same = key && !strcmp(l + cl + 1, key);
		else if (strchr(l, '\t'))
			buf_printf(&b, "%s\n", l);
	}
	if (key)
		buf_printf(&b, "%s\t%s\n", coll, key);
	/* the same key again (writes in a row between reads): no new file */
	if (!same)
		eas_state_write(s, WRITE_KEYS_FILE, b.data ? b.data : "");
	buf_free(&b);
	free(text);
}

/* A key to write with: the newest known, else the one the last write of
 * an earlier run went out with, else a fresh one (Sync from 0, then once
 * for a key the server accepts writes with).  The key is kept before the
 * write goes out (keep_write_key). */
static enum be_status write_key(struct be_session *s, const char *coll,
				char **key, struct be_result *r)
{
	*key = eas_key_latest(eas_session_account(s), eas_session_device(s), coll);
	if (!*key && (*key = kept_write_key(s, coll)) != NULL)
		log_dbg(LC_HTTP, "Sync write: from the key kept by an earlier run");
	if (*key) {
		keep_write_key(s, coll, *key);
		return BE_OK;
	}
	struct buf req, ans;
	buf_init(&req, 0);
	eas_req_sync(&req, coll, "0", 1);
	if (eas_call(s, "Sync", &req, false, &ans, r) == BE_OK) {
		struct be_item_batch b;
		if (eas_parse_sync(ans.data, ans.len, coll, &b, r) == BE_OK) {
			*key = b.new_state;
			b.new_state = NULL;
		}
		be_item_batch_free(&b);
	}
	buf_free(&req);
	buf_free(&ans);
	if (*key) {
		eas_key_note(eas_session_account(s), eas_session_device(s), coll, NULL, *key, false);
		keep_write_key(s, coll, *key);
	}
	return r->status;
}

typedef void (*sync_write_fn)(struct buf *b, const char *coll,
			      const char *key, const char *sid,
			      const void *arg);

/* Send one Sync write (Change, Delete) of item id; retried once with a
 * fresh key if the server refused the key. */
static enum be_status sync_write(struct be_session *s, const char *id,
				 sync_write_fn build, const void *arg,
				 struct be_result *r)
{
	char *buf;
	const char *coll, *sid;
	be_result_ok(r);
	if (!eas_item_split(id, &buf, &coll, &sid)) {
		be_result_set(r, BE_ITEM_GONE, "not an ActiveSync item id");
		return r->status;
	}
	eas_sync_lock(eas_session_account(s));
	for (int attempt = 0; attempt < 2; attempt++) {
		char *key = NULL, *new_key = NULL;
		struct buf req, ans;
		if (write_key(s, coll, &key, r) != BE_OK) {
			free(key);
			break;
		}
		buf_init(&req, 0);
		build(&req, coll, key, sid, arg);
		if (eas_call(s, "Sync", &req, false, &ans, r) == BE_OK)
			eas_parse_sync_write(ans.data, ans.len, &new_key, r);
		buf_free(&req);
		buf_free(&ans);
		if (r->status == BE_OK)
			eas_key_note(eas_session_account(s), eas_session_device(s), coll, key,
				     new_key ? new_key : key, true);
		else if (r->status == BE_SYNC_INVALID) {
			eas_key_note(eas_session_account(s), eas_session_device(s), coll, NULL, NULL,
				     false);
			keep_write_key(s, coll, NULL);
		}
		free(key);
		free(new_key);
		if (r->status != BE_SYNC_INVALID)
			break;
	}
	eas_sync_unlock(eas_session_account(s));
	free(buf);
	if (r->status == BE_SYNC_INVALID)
		r->status = BE_NETWORK;  /* the next attempt starts afresh */
	return r->status;
}

static void build_change(struct buf *b, const char *coll, const char *key,
			 const char *sid, const void *arg)
{
	eas_req_change(b, coll, key, sid, arg);
}

static void build_delete(struct buf *b, const char *coll, const char *key,
			 const char *sid, const void *arg)
{
	eas_req_delete(b, coll, key, sid, *(const bool *)arg);
}

enum be_status eas_update_props(struct be_session *s, const char *id,
				const char *change_key,
				const struct be_props *p, struct be_new *out,
				struct be_result *r)
{
	(void)change_key;
	memset(out, 0, sizeof(*out));
	if (!(p->mask & (BE_PROP_READ | BE_PROP_FLAG | BE_PROP_CATEGORIES))) {
		be_result_ok(r);
		return BE_OK;
	}
	if (sync_write(s, id, build_change, p, r) == BE_OK)
		out->id = xstrdup(id);
	return r->status;
}

static void build_change_draft(struct buf *b, const char *coll,
			       const char *key, const char *sid,
			       const void *arg)
{
	eas_req_change_draft(b, coll, key, sid, arg);
}

void eas_caps(struct be_session *s, struct be_caps *out)
{
	/* no find_token: a create whose answer was lost goes again with the
	 * same ClientId, which the server uses to drop the duplicate */
	out->can = BE_CAN_NOTIFY | BE_CAN_RESOLVE | BE_CAN_SYNC_MANY;
	if (!s) {
		/* what the protocol can at best (16.1) */
		out->can |= BE_CAN_DRAFT | BE_CAN_EDIT_DRAFT | BE_CAN_SEND |
			    BE_HAS_OUTBOX;
		snprintf(out->speaks, sizeof(out->speaks), "ActiveSync");
		return;
	}
	const char *v = eas_session_version(s);
	if (eas_version_at_least(v, "16.0"))
		out->can |= BE_CAN_DRAFT | BE_CAN_EDIT_DRAFT;
	if (eas_version_at_least(v, "14.0"))
		out->can |= BE_CAN_SEND;
	if (eas_server_has_outbox(s))
		out->can |= BE_HAS_OUTBOX;
	snprintf(out->speaks, sizeof(out->speaks), "ActiveSync %s", v);
}

/* A draft rewritten here (16.0+): a Sync Change with all its fields; as
 * with the Add, the server renders the MIME from them. */
enum be_status eas_replace_mime(struct be_session *s, const char *id,
				const char *change_key, const void *mime,
				size_t len, struct be_new *out,
				struct be_result *r)
{
	(void)change_key;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!eas_version_at_least(eas_session_version(s), "16.0")) {
		be_result_set(r, BE_UNSUPPORTED,
			      "ActiveSync %s cannot change a draft (16.0 and later can)",
			      eas_session_version(s));
		return r->status;
	}
	struct eas_draft d;
	if (eas_draft_from_mime(mime, len, &d, r))
		return r->status;
	if (sync_write(s, id, build_change_draft, &d, r) == BE_OK)
		out->id = xstrdup(id);
	eas_draft_free(&d);
	return r->status;
}

enum be_status eas_delete_item(struct be_session *s, const char *id,
			       enum be_delete how, struct be_result *r)
{
	bool to_trash = how == BE_DEL_TO_TRASH;
	sync_write(s, id, build_delete, &to_trash, r);
	if (r->status == BE_ITEM_GONE)
		be_result_ok(r);  /* gone already: what was asked */
	return r->status;
}

enum be_status eas_move_item(struct be_session *s, const char *id,
			     const char *to_folder_id, struct be_new *out,
			     struct be_result *r)
{
	char *buf, *dst = NULL;
	const char *coll, *sid;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!eas_item_split(id, &buf, &coll, &sid)) {
		be_result_set(r, BE_ITEM_GONE, "not an ActiveSync item id");
		return r->status;
	}
	struct buf req, ans;
	buf_init(&req, 0);
	eas_req_move(&req, coll, sid, to_folder_id);
	if (eas_call(s, "MoveItems", &req, true, &ans, r) == BE_OK &&
	    eas_parse_move(ans.data, ans.len, &dst, r) == BE_OK)
		out->id = eas_item_id(to_folder_id, dst);
	free(dst);
	buf_free(&req);
	buf_free(&ans);
	free(buf);
	return r->status;
}

/* ---- sending, drafts ---- */

/* Sync Add of a draft (16.0+): the server builds the message from the
 * fields, so the stored bytes are the server's rendering of them. */
static enum be_status add_draft(struct be_session *s, const char *folder_id,
				const void *mime, size_t len, const char *token,
				struct be_new *out, struct be_result *r)
{
	struct eas_draft d;
	if (eas_draft_from_mime(mime, len, &d, r))
		return r->status;
	char cid[41];
	snprintf(cid, sizeof(cid), "%s", token && *token ? token : "exchangefs");
	eas_sync_lock(eas_session_account(s));
	for (int attempt = 0; attempt < 2; attempt++) {
		char *key = NULL, *new_key = NULL, *sid = NULL;
		struct buf req, ans;
		if (write_key(s, folder_id, &key, r) != BE_OK) {
			free(key);
			break;
		}
		buf_init(&req, 0);
		eas_req_add_draft(&req, folder_id, key, cid, &d);
		if (eas_call(s, "Sync", &req, true, &ans, r) == BE_OK)
			eas_parse_sync_add(ans.data, ans.len, &new_key, &sid, r);
		buf_free(&req);
		buf_free(&ans);
		if (r->status == BE_OK) {
			eas_key_note(eas_session_account(s), eas_session_device(s), folder_id, key,
				     new_key ? new_key : key, true);
			out->id = eas_item_id(folder_id, sid);
		} else if (r->status == BE_SYNC_INVALID) {
			eas_key_note(eas_session_account(s), eas_session_device(s), folder_id, NULL,
				     NULL, false);
			keep_write_key(s, folder_id, NULL);
		}
		free(key);
		free(new_key);
		free(sid);
		if (r->status != BE_SYNC_INVALID)
			break;
	}
	eas_sync_unlock(eas_session_account(s));
	eas_draft_free(&d);
	if (r->status == BE_SYNC_INVALID)
		r->status = BE_NETWORK;
	return r->status;
}

enum be_status eas_create_item(struct be_session *s, const char *folder_id,
			       const void *mime, size_t len,
			       enum be_disposition how, int64_t date,
			       const char *token, struct be_new *out,
			       struct be_result *r)
{
	(void)folder_id;
	(void)date;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (how == BE_SAVE_DRAFT &&
	    eas_version_at_least(eas_session_version(s), "16.0"))
		return add_draft(s, folder_id, mime, len, token, out, r);
	if (how == BE_SAVE_DRAFT) {
		be_result_set(r, BE_UNSUPPORTED,
			      "ActiveSync %s cannot store a draft (16.0 and later can); sending through Outbox works",
			      eas_session_version(s));
		return r->status;
	}
	if (how != BE_SEND) {
		be_result_set(r, BE_UNSUPPORTED,
			      "ActiveSync cannot store a message in a folder (only drafts, from 16.0 on); sending through Outbox works");
		return r->status;
	}
	if (!eas_version_at_least(eas_session_version(s), "14.0")) {
		be_result_set(r, BE_UNSUPPORTED,
			      "sending needs ActiveSync 14.0 or later (the server speaks %s)",
			      eas_session_version(s));
		return r->status;
	}
	char cid[41];
	snprintf(cid, sizeof(cid), "%s", token && *token ? token : "exchangefs");
	struct buf req, ans;
	buf_init(&req, 0);
	eas_req_send_mail(&req, cid, mime, len, true);
	if (eas_call(s, "SendMail", &req, true, &ans, r) == BE_OK)
		eas_parse_send_mail(ans.data, ans.len, r);
	buf_free(&req);
	buf_free(&ans);
	return r->status;
}

/* ---- Ping ---- */

#define HEARTBEAT_MIN 10
#define HEARTBEAT_DEFAULT 30  /* raised to the server's minimum by status 5 */
#define HEARTBEAT_MAX 900   /* Exchange allows 3540; NATs drop idle
			      connections sooner */

static bool is_virtual(const char *id)
{
	return !strcmp(id, EAS_VIRTUAL_OUTBOX);
}

enum be_status eas_watch(struct be_session *s, const struct be_watch *w,
			 enum be_watch_mode *mode, struct be_result *r)
{
	be_result_ok(r);
	*mode = BE_WATCH_PUSH;
	/* Ping reports changes against the device's sync state: nothing
	 * between two calls is missed, only what came before the first */
	struct buf sig;
	buf_init(&sig, 0);
	for (size_t i = 0; i < w->n; i++)
		buf_printf(&sig, "%s\n", w->folder_ids[i]);
	if (!eas_session_watch_sig(s) ||
	    strcmp(eas_session_watch_sig(s), sig.data ? sig.data : "")) {
		eas_session_set_watch_sig(s, sig.data ? sig.data : "");
		struct be_events ev = { .lost = true, .mode = BE_WATCH_PUSH };
		if (w->events(w->arg, &ev)) {
			buf_free(&sig);
			return BE_OK;
		}
	}
	buf_free(&sig);

	const char **ids = xcalloc(w->n ? w->n : 1, sizeof(char *));
	size_t n = 0;
	unsigned most = eas_session_max_folders(s);
	for (size_t i = 0; i < w->n; i++)
		if (!is_virtual(w->folder_ids[i]) && (!most || n < most))
			ids[n++] = w->folder_ids[i];
	if (!n) {
		/* nothing the server can watch: wait out the call */
		for (unsigned t = 0; t < w->timeout_s * 4; t++) {
			if (w->cancelled && w->cancelled(w->arg))
				break;
			sleep_ms(250);
		}
		free(ids);
		return BE_OK;
	}
	/* Short Pings, one after another, for the length of the call: a
	 * server holds a worker for a Ping until its heartbeat ends even when
	 * the client has gone (SOGo: 4 workers by default), so a long one
	 * outlives an unmount; the server's bound (status 5) wins. */
	unsigned hb = eas_session_heartbeat(s) ? eas_session_heartbeat(s)
					       : HEARTBEAT_DEFAULT;
	if (hb < HEARTBEAT_MIN)
		hb = HEARTBEAT_MIN;
	if (hb > HEARTBEAT_MAX)
		hb = HEARTBEAT_MAX;
	int64_t end = now_ms() + (int64_t)w->timeout_s * 1000;

	for (int odd = 0; odd < 3 && now_ms() < end;) {
		struct buf req, ans;
		struct eas_ping p = { 0 };
		if (w->cancelled && w->cancelled(w->arg))
			break;
		buf_init(&req, 0);
		eas_req_ping(&req, hb, ids, n);
		log_dbg(LC_HTTP, "Ping: %zu folders, heartbeat %u s", n, hb);
		enum be_status st = eas_call_long(s, "Ping", &req, hb + 30,
						  w->cancelled, w->arg, &ans, r);
		buf_free(&req);
		if (st != BE_OK || !ans.len) {
			/* cancelled, or an empty answer: nothing to say */
			buf_free(&ans);
			break;
		}
		eas_parse_ping(ans.data, ans.len, &p, r);
		buf_free(&ans);
		log_dbg(LC_HTTP, "Ping: status %d, %zu folders changed", p.status,
			p.n_changed);
		if (r->status == BE_SYNC_INVALID) {
			/* status 7: the folder tree changed */
			be_result_ok(r);
			struct be_events ev = { .hierarchy = true,
						.mode = BE_WATCH_PUSH };
			w->events(w->arg, &ev);
			break;
		}
		if (r->status != BE_OK) {
			eas_ping_free(&p);
			break;
		}
		if (p.status == 5 && p.heartbeat_s) {
			/* out of the server's range: use its bound */
			eas_session_set_heartbeat(s, p.heartbeat_s);
			hb = p.heartbeat_s;
			eas_ping_free(&p);
			odd++;
			continue;
		}
		if (p.status == 6 && p.max_folders) {
			eas_session_set_max_folders(s, p.max_folders);
			if (n > p.max_folders)
				n = p.max_folders;
			eas_ping_free(&p);
			odd++;
			continue;
		}
		if (p.status == 1) {
			/* the heartbeat passed without a change: again */
			eas_ping_free(&p);
			continue;
		}
		if (p.status == 2 && p.n_changed) {
			struct be_events ev = {
				.folder_ids = (const char *const *)p.changed,
				.n_folders = p.n_changed,
				.mode = BE_WATCH_PUSH,
			};
			w->events(w->arg, &ev);
		}
		eas_ping_free(&p);
		break;
	}
	free(ids);
	return r->status;
}

/* ---- folders ----
 * FolderCreate/Update/Delete need the hierarchy SyncKey (the chain of
 * collection "" above) and FolderUpdate the folder's parent and name
 * together: the folders this device knows are kept (process-wide, and in
 * the cache directory for the next run) from every hierarchy answer. */

struct folder_ent {
	char *device, *id, *parent, *name;
	struct folder_ent *link;
};

static struct folder_ent *folder_find(struct be_account *a,
				      const char *device, const char *id)
{
	for (struct folder_ent *f = a->folders; f; f = f->link)
		if (!strcmp(f->device, device) && !strcmp(f->id, id))
			return f;
	return NULL;
}

static void folder_set_locked(struct be_account *a, const char *device,
			      const char *id, const char *parent,
			      const char *name)
{
	struct folder_ent *f = folder_find(a, device, id);
	if (!f) {
		f = xcalloc(1, sizeof(*f));
		f->device = xstrdup(device);
		f->id = xstrdup(id);
		f->link = a->folders;
		a->folders = f;
	}
	if (parent) {
		free(f->parent);
		f->parent = xstrdup(parent);
	}
	if (name) {
		free(f->name);
		f->name = xstrdup(name);
	}
}

static void folders_save_locked(struct be_session *s)
{
	struct buf b;
	buf_init(&b, 0);
	for (struct folder_ent *f = acct(eas_session_account(s))->folders; f;
	     f = f->link)
		if (!strcmp(f->device, eas_session_device(s)) && f->parent &&
		    f->name)
			buf_printf(&b, "%s\t%s\t%s\n", f->id, f->parent, f->name);
	eas_state_write(s, "eas-folders", b.data ? b.data : "");
	buf_free(&b);
}

static bool folders_loaded_for(struct be_account *a, const char *device)
{
	for (struct folder_ent *f = a->folders; f; f = f->link)
		if (!strcmp(f->device, device))
			return true;
	return false;
}

static void folders_load_locked(struct be_session *s)
{
	struct be_account *a = acct(eas_session_account(s));
	if (folders_loaded_for(a, eas_session_device(s)))
		return;
	char *text = eas_state_read_all(s, "eas-folders");
	for (char *l = text, *nl; l && *l; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = 0;
		char *t1 = strchr(l, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			continue;
		*t1 = *t2 = 0;
		folder_set_locked(a, eas_session_device(s), l, t1 + 1, t2 + 1);
	}
	free(text);
}

void eas_folders_note(struct be_session *s, const struct be_folder_batch *b)
{
	struct be_account *a = acct(eas_session_account(s));
	pthread_mutex_lock(&a->folders_lock);
	folders_load_locked(s);
	for (size_t i = 0; i < b->n; i++) {
		const struct be_folder *f = &b->v[i];
		if (f->change == BE_DELETE) {
			struct folder_ent *e = folder_find(a, eas_session_device(s), f->id);
			if (e) {
				free(e->name);
				e->name = NULL;  /* not saved */
			}
		} else {
			folder_set_locked(a, eas_session_device(s), f->id,
					  f->parent_id, f->name);
		}
	}
	folders_save_locked(s);
	pthread_mutex_unlock(&a->folders_lock);
}

static bool folder_get(struct be_session *s, const char *id, char **parent,
		       char **name)
{
	struct be_account *a = acct(eas_session_account(s));
	pthread_mutex_lock(&a->folders_lock);
	folders_load_locked(s);
	struct folder_ent *e = folder_find(a, eas_session_device(s), id);
	bool ok = e && e->parent && e->name;
	if (ok) {
		*parent = xstrdup(e->parent);
		*name = xstrdup(e->name);
	}
	pthread_mutex_unlock(&a->folders_lock);
	return ok;
}

static void folder_put(struct be_session *s, const char *id,
		       const char *parent, const char *name, bool gone)
{
	struct be_account *a = acct(eas_session_account(s));
	pthread_mutex_lock(&a->folders_lock);
	folders_load_locked(s);
	folder_set_locked(a, eas_session_device(s), id, parent, name);
	if (gone) {
		struct folder_ent *e = folder_find(a, eas_session_device(s), id);
		free(e->name);
		e->name = NULL;
	}
	folders_save_locked(s);
	pthread_mutex_unlock(&a->folders_lock);
}

static void folders_free(struct be_account *a)
{
	pthread_mutex_lock(&a->folders_lock);
	while (a->folders) {
		struct folder_ent *f = a->folders;
		a->folders = f->link;
		free(f->device);
		free(f->id);
		free(f->parent);
		free(f->name);
		free(f);
	}
	pthread_mutex_unlock(&a->folders_lock);
}

void eas_folders_free_all(void)
{
	folders_free(&default_account);
}

/* The hierarchy key to write with (owned): the newest known, else a
 * fresh FolderSync (only before any hierarchy sync of this device). */
static enum be_status hierarchy_key(struct be_session *s, char **key,
				    struct be_result *r)
{
	be_result_ok(r);
	*key = eas_key_latest(eas_session_account(s), eas_session_device(s), "");
	if (*key)
		return BE_OK;
	struct buf req, ans;
	struct be_folder_batch b;
	buf_init(&req, 0);
	eas_req_folder_sync(&req, NULL);
	if (eas_call(s, "FolderSync", &req, false, &ans, r) == BE_OK &&
	    eas_parse_folder_sync(ans.data, ans.len, &b, r) == BE_OK) {
		eas_folders_note(s, &b);
		*key = b.new_state;
		b.new_state = NULL;
		be_folder_batch_free(&b);
		eas_key_note(eas_session_account(s), eas_session_device(s), "", NULL, *key, false);
	}
	buf_free(&req);
	buf_free(&ans);
	return r->status;
}

enum op { OP_CREATE, OP_UPDATE, OP_DELETE };

/* One hierarchy write; a refused key is fetched again once. */
static enum be_status folder_op(struct be_session *s, enum op op,
				const char *id, const char *parent,
				const char *name, char **new_id,
				struct be_result *r)
{
	static const char *const cmds[] = { "FolderCreate", "FolderUpdate",
					    "FolderDelete" };
	const char *cmd = cmds[op];
	if (new_id)
		*new_id = NULL;
	eas_sync_lock(eas_session_account(s));
	for (int attempt = 0; attempt < 2; attempt++) {
		char *key = NULL, *new_key = NULL;
		if (hierarchy_key(s, &key, r) != BE_OK)
			break;
		struct buf req, ans;
		buf_init(&req, 0);
		if (op == OP_CREATE)
			eas_req_folder_create(&req, key, parent, name);
		else if (op == OP_UPDATE)
			eas_req_folder_update(&req, key, id, parent, name);
		else
			eas_req_folder_delete(&req, key, id);
		if (eas_call(s, cmd, &req, op == OP_CREATE, &ans, r) == BE_OK)
			eas_parse_folder_op(ans.data, ans.len, cmd, &new_key,
					    op == OP_CREATE ? new_id : NULL, r);
		buf_free(&req);
		buf_free(&ans);
		if (r->status == BE_OK)
			eas_key_note(eas_session_account(s), eas_session_device(s), "", key, new_key, true);
		else if (r->status == BE_SYNC_INVALID)
			eas_key_note(eas_session_account(s), eas_session_device(s), "", NULL, NULL, false);
		free(key);
		free(new_key);
		if (r->status != BE_SYNC_INVALID)
			break;
	}
	eas_sync_unlock(eas_session_account(s));
	if (r->status == BE_SYNC_INVALID)
		r->status = BE_NETWORK;
	return r->status;
}

static bool name_ok(const char *name, struct be_result *r)
{
	if (!name || !*name || strlen(name) > 255) {
		be_result_set(r, BE_REFUSED, "invalid folder name");
		return false;
	}
	return true;
}

enum be_status eas_create_folder(struct be_session *s, const char *parent_id,
				 const char *name, struct be_new *out,
				 struct be_result *r)
{
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!name_ok(name, r))
		return r->status;
	char *id = NULL;
	if (folder_op(s, OP_CREATE, NULL, parent_id, name, &id, r) == BE_OK) {
		folder_put(s, id, parent_id, name, false);
		out->id = id;
	}
	return r->status;
}

static enum be_status update(struct be_session *s, const char *id,
			     const char *parent, const char *name,
			     struct be_new *out, struct be_result *r)
{
	char *old_parent = NULL, *old_name = NULL;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!folder_get(s, id, &old_parent, &old_name)) {
		be_result_set(r, BE_FOLDER_GONE,
			      "folder unknown to this device (resync needed)");
		return r->status;
	}
	if (!parent)
		parent = old_parent;
	if (!name)
		name = old_name;
	if (name_ok(name, r) &&
	    folder_op(s, OP_UPDATE, id, parent, name, NULL, r) == BE_OK) {
		folder_put(s, id, parent, name, false);
		out->id = xstrdup(id);
	}
	free(old_parent);
	free(old_name);
	return r->status;
}

enum be_status eas_rename_folder(struct be_session *s, const char *id,
				 const char *name, struct be_new *out,
				 struct be_result *r)
{
	return update(s, id, NULL, name, out, r);
}

enum be_status eas_move_folder(struct be_session *s, const char *id,
			       const char *to_parent_id, struct be_new *out,
			       struct be_result *r)
{
	return update(s, id, to_parent_id, NULL, out, r);
}

enum be_status eas_delete_folder(struct be_session *s, const char *id,
				 bool hard, struct be_result *r)
{
	(void)hard;
	be_result_ok(r);
	if (!strcmp(id, EAS_VIRTUAL_OUTBOX)) {
		be_result_set(r, BE_REFUSED, "the Outbox cannot be deleted");
		return r->status;
	}
	if (folder_op(s, OP_DELETE, id, NULL, NULL, NULL, r) == BE_OK ||
	    r->status == BE_FOLDER_GONE) {
		be_result_ok(r);
		folder_put(s, id, NULL, NULL, true);
	}
	return r->status;
}
