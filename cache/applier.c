/*
 * applier.c - the thread that sends the journal (journal.h) to the server:
 * one row at a time, in order, through its own backend session.  Transient
 * failures (network, throttling, 5xx) are retried with back-off, never
 * shorter than the server asked; a row whose request may have reached the
 * server is marked unsure first, and a create is looked up by its token
 * before it is tried again.  Permanent refusals are kept, failed, with the
 * server's reason.  Each row is sent and its answer recorded while holding
 * the sync engine's server lock, so a sync page never sees one of our own
 * changes before the cache knows its id.
 */
#include "applier.h"
#include "journal.h"
#include "backend/util.h"
#include "backend/http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKOFF_MS (5 * 60 * 1000)
/* Tries of a row answered with something that is not a server's answer
 * (a captive portal's page, a login redirect, a cut or garbled reply)
 * before it is kept failed: back-offs of 1 s doubling, about 17 minutes */
#define PROTOCOL_TRIES 10
#define MAX_CONTENT ((size_t)150 << 20)  /* larger than any server takes */

struct applier {
	struct sync *sync;
	struct cache *cache;
	const struct backend_ops *ops;
	const struct be_config *cfg;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, kicked;
	bool retry_now;      /* the server answers again: skip back-offs */
	struct be_session *session;
	char last_error[400];
	int64_t sent;        /* rows done since start */
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep until kicked, stopped, or ms passed (ms < 0: until kicked). */
static bool wait_for(struct applier *a, int64_t ms)
{
	struct timespec ts;
	deadline_ms(&ts, ms >= 0 ? ms : 0);
	pthread_mutex_lock(&a->lock);
	while (!a->stop && !a->kicked) {
		if (ms < 0)
			pthread_cond_wait(&a->cond, &a->lock);
		else if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
			break;
	}
	a->kicked = false;
	bool stop = a->stop;
	pthread_mutex_unlock(&a->lock);
	return stop;
}

/* What applying one row came to. */
struct outcome {
	struct be_result r;
	struct be_new made;   /* new id / change key for the node */
	bool drop;            /* the node goes (sent, deleted) */
	bool recreate;        /* the draft is gone: make it anew */
};

/* Read a whole file into b (capped); 0 or -errno. */
static int read_file(struct buf *b, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char chunk[65536];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		if (buf_append(b, chunk, (size_t)n)) {
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	return rc;
}

static char *read_content(struct cache *c, const char *rel, size_t *len,
			  struct be_result *r)
{
	char *path = journal_content_path(c, rel);
	struct buf b;
	buf_init(&b, MAX_CONTENT);
	int rc = rel ? read_file(&b, path) : -ENOENT;
	if (rc) {
		be_result_set(r, BE_REFUSED, "cannot read the content kept in %s: %s",
			      path, strerror(-rc));
		buf_free(&b);
		free(path);
		return NULL;
	}
	free(path);
	*len = b.len;
	if (!b.data)
		buf_append(&b, "", 0);
	return b.data;
}

/* The server id of a folder node, or NULL (owned). */
static char *folder_sid(struct cache *c, uint64_t ino, const char *root)
{
	if (ino == CACHE_ROOT_INO)
		return root ? xstrdup(root) : NULL;
	struct node f = { 0 };
	char *sid = NULL;
	if (cache_get(c, ino, &f) == 0 && f.kind == NODE_FOLDER && f.server_id)
		sid = xstrdup(f.server_id);
	node_clear(&f);
	return sid;
}

static bool need(const void *fn, struct be_result *r)
{
	if (!fn)
		be_result_set(r, BE_UNSUPPORTED, "this protocol cannot do that yet");
	return fn != NULL;
}

/* The server id of the folder a row targets, or NULL with o->r set. */
static char *target(struct applier *a, uint64_t ino, const char *what,
		    struct be_result *r)
{
	char *fid = folder_sid(a->cache, ino, a->ops->root_id(a->session));
	struct node f = { 0 };
	if (fid)
		return fid;
	if (ino && cache_get(a->cache, ino, &f) == 0 && f.kind == NODE_FOLDER &&
	    f.parent)
		/* made here, not (yet) known to be on the server: wait for
		 * it (the sync engine adopts it if its creation's answer was
		 * lost) */
		be_result_set(r, BE_NETWORK, "the %s folder '%s' is not on the "
			      "server yet", what, f.name);
	else
		be_result_set(r, BE_FOLDER_GONE, "the %s folder is not on the "
			      "server", what);
	node_clear(&f);
	return NULL;
}

/* Creates: a lost answer must not become a second copy. */
static void apply_create(struct applier *a, const struct jrow *row,
			 const struct node *n, struct outcome *o)
{
	struct cache *c = a->cache;
	const struct backend_ops *ops = a->ops;
	/* where the row says: the node may have been moved or deleted
	 * meanwhile (a later row of the journal does that on the server) */
	uint64_t where = row->op == J_SEND ? cache_special_ino(c, BE_SENT)
					   : row->folder;
	char *fid = target(a, where, row->op == J_SEND ? "Sent Items" : "target",
			   &o->r);
	if (!fid)
		return;
	if (!need((const void *)ops->create_item, &o->r)) {
		free(fid);
		return;
	}
	struct be_caps caps;
	be_caps_get(ops, a->session, &caps);
	/* an earlier attempt may have reached the server: look for it where
	 * the backend can; where it cannot (ActiveSync) the create goes again
	 * with the same token, which the protocol's own duplicate check
	 * (ClientId) drops - the backend's promise with that cap missing */
	if (row->state == JS_UNSURE && caps.can & BE_CAN_FIND_TOKEN) {
		enum be_status st = ops->find_token(a->session, fid, row->token,
						    &o->made, &o->r);
		if (st == BE_OK) {
			log_info("'%s': an earlier attempt reached the server; "
				 "not sending it again", n->name);
			o->drop = row->op == J_SEND;
			free(fid);
			return;
		}
		if (st != BE_ITEM_GONE) {
			free(fid);
			return;
		}
		be_result_ok(&o->r);
	}
	size_t len = 0;
	char *mime = read_content(a->cache, row->content, &len, &o->r);
	if (!mime) {
		free(fid);
		return;
	}
	{
		enum be_disposition how = row->op == J_SEND ? BE_SEND
			: row->op == J_DRAFT ? BE_SAVE_DRAFT : BE_SAVE;
		ops->create_item(a->session, fid, mime, len, how,
				 row->arg > 0 ? row->arg : 0, row->token,
				 &o->made, &o->r);
		o->drop = row->op == J_SEND && o->r.status == BE_OK;
	}
	free(mime);
	free(fid);
}

static void apply_props(struct applier *a, const struct node *n, unsigned bits,
			struct outcome *o)
{
	const struct backend_ops *ops = a->ops;
	if (!need((const void *)ops->update_props, &o->r))
		return;
	struct be_props p = { 0 };
	if (bits & JP_READ)
		p.mask |= BE_PROP_READ;
	if (bits & JP_FLAG)
		p.mask |= BE_PROP_FLAG;
	if (bits & JP_CATS)
		p.mask |= BE_PROP_CATEGORIES;
	p.read = n->is_read > 0;
	p.flag = n->flag > 0 ? (enum be_flag)n->flag : BE_FLAG_NONE;
	p.categories = n->categories ? n->categories : "";
	enum be_status st = ops->update_props(a->session, n->server_id,
					      n->change_key, &p, &o->made, &o->r);
	if (st == BE_CONFLICT && ops->get_change_key) {
		/* changed on the server meanwhile: re-read, apply again */
		char *ck = NULL;
		be_result_ok(&o->r);
		if (ops->get_change_key(a->session, n->server_id, &ck, &o->r) == BE_OK) {
			be_new_free(&o->made);
			ops->update_props(a->session, n->server_id, ck, &p,
					  &o->made, &o->r);
		}
		free(ck);
	}
}

static void apply_replace(struct applier *a, const struct jrow *row,
			  const struct node *n, struct outcome *o)
{
	const struct backend_ops *ops = a->ops;
	if (!need((const void *)ops->replace_mime, &o->r))
		return;
	size_t len = 0;
	char *mime = read_content(a->cache, row->content, &len, &o->r);
	if (!mime)
		return;
	enum be_status st = ops->replace_mime(a->session, n->server_id,
					      n->change_key, mime, len,
					      &o->made, &o->r);
	if (st == BE_CONFLICT && ops->get_change_key) {
		/* the draft changed elsewhere: the user's content wins (it
		 * is what they saved last) */
		char *ck = NULL;
		be_result_ok(&o->r);
		if (ops->get_change_key(a->session, n->server_id, &ck, &o->r) == BE_OK) {
			be_new_free(&o->made);
			ops->replace_mime(a->session, n->server_id, ck, mime, len,
					  &o->made, &o->r);
		}
		free(ck);
	}
	if (o->r.status == BE_ITEM_GONE)
		o->recreate = true;
	free(mime);
}

static void apply_row(struct applier *a, const struct jrow *row,
		      struct outcome *o)
{
	struct cache *c = a->cache;
	const struct backend_ops *ops = a->ops;
	struct node n = { 0 };
	be_result_ok(&o->r);
	if (cache_get(c, row->ino, &n)) {
		/* the node went meanwhile (the sync engine saw it deleted on
		 * the server): nothing left to do */
		return;
	}
	bool is_create = row->op == J_SAVE || row->op == J_DRAFT ||
			 row->op == J_SEND || row->op == J_MKDIR;
	if (!is_create && !n.server_id) {
		be_result_set(&o->r, BE_REFUSED, "'%s' is not on the server "
			      "(creating it failed)", n.name);
		node_clear(&n);
		return;
	}
	char *fid = NULL;
	switch (row->op) {
	case J_SAVE: case J_DRAFT: case J_SEND:
		apply_create(a, row, &n, o);
		break;
	case J_REPLACE:
		apply_replace(a, row, &n, o);
		break;
	case J_PROPS:
		apply_props(a, &n, (unsigned)row->arg, o);
		break;
	case J_DELETE:
		if (need((const void *)ops->delete_item, &o->r))
			ops->delete_item(a->session, n.server_id,
					 (enum be_delete)row->arg, &o->r);
		o->drop = true;
		break;
	case J_MOVE:
		if ((fid = target(a, row->folder, "target", &o->r)) &&
		    need((const void *)ops->move_item, &o->r))
			ops->move_item(a->session, n.server_id, fid, &o->made,
				       &o->r);
		break;
	case J_MKDIR:
		/* a folder still to be made is made where it is now (moves
		 * while it was queued are absorbed), or where it was made if
		 * it is being removed */
		if ((fid = target(a, n.parent ? n.parent : row->folder, "parent",
				  &o->r)) &&
		    need((const void *)ops->create_folder, &o->r))
			ops->create_folder(a->session, fid, n.server_name,
					   &o->made, &o->r);
		break;
	case J_RMDIR:
		if (need((const void *)ops->delete_folder, &o->r))
			ops->delete_folder(a->session, n.server_id, true, &o->r);
		o->drop = true;
		break;
	case J_RENAME_DIR:
		if (need((const void *)ops->rename_folder, &o->r))
			ops->rename_folder(a->session, n.server_id, row->name,
					   &o->made, &o->r);
		break;
	case J_MOVE_DIR:
		if ((fid = target(a, row->folder, "target", &o->r)) &&
		    need((const void *)ops->move_folder, &o->r))
			ops->move_folder(a->session, n.server_id, fid, &o->made,
					 &o->r);
		break;
	}
	free(fid);
	node_clear(&n);
}

static bool open_session(struct applier *a, struct be_result *r)
{
	if (a->session)
		return true;
	a->session = sync_open_session(a->sync, r);
	return a->session != NULL;
}

static void drop_session(struct applier *a)
{
	if (a->session)
		a->ops->close(a->session);
	a->session = NULL;
}

static void note(struct applier *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct applier *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&a->lock);
	vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
	pthread_mutex_unlock(&a->lock);
	va_end(ap);
}

static int64_t backoff_ms(int attempts, uint32_t asked)
{
	int64_t ms = 1000;
	for (int i = 0; i < attempts && ms < MAX_BACKOFF_MS; i++)
		ms *= 2;
	if (ms > MAX_BACKOFF_MS)
		ms = MAX_BACKOFF_MS;
	return (int64_t)asked > ms ? (int64_t)asked : ms;
}

/* The pending bits (JP_*) of node ino: what rows not done change. */
static unsigned pending(struct cache *c, uint64_t ino)
{
	struct node n = { 0 };
	unsigned p = cache_get(c, ino, &n) == 0 ? n.pend : 0;
	node_clear(&n);
	return p;
}

/* Whether r is an answer that is not the server's own verdict on the
 * request: unreadable, of the wrong type, a redirect (no protocol status
 * code, or only an HTTP one).  ActiveSync's "could not read the request"
 * statuses (101-107) carry their code: refused for good at once. */
static bool not_servers_answer(const struct be_result *r)
{
	return r->status == BE_PROTOCOL &&
	       (!r->code[0] || !strncmp(r->code, "HTTP ", 5));
}

/* Record what happened to a row. */
static void settle(struct applier *a, const struct jrow *row,
		   struct outcome *o, const char *what)
{
	struct cache *c = a->cache;
	enum be_status st = o->r.status;
	struct cache_changes ch = { 0 };

	if (st == BE_ITEM_GONE && o->recreate) {
		log_notice("draft '%s' was deleted on the server: saving it as "
			   "a new draft", what);
		journal_recreate(c, row);
		return;
	}
	if (st == BE_ITEM_GONE || st == BE_FOLDER_GONE) {
		if (row->op == J_SAVE || row->op == J_DRAFT || row->op == J_SEND ||
		    row->op == J_MKDIR) {
			/* the place to create it in is gone: keep it, failed */
			log_warn("cannot %s '%s': %s", jop_name(row->op), what,
				 o->r.msg);
			journal_fail(c, row, o->r.msg);
			return;
		}
		/* a move, delete, flag change or rename of something the
		 * server no longer has: nothing to apply it to, and a
		 * message goes (a resync that met it left it for this row) */
		log_notice("%s '%s' dropped: it no longer exists on the server",
			   jop_name(row->op), what);
		o->drop = row->op == J_DELETE || row->op == J_RMDIR ||
			  row->op == J_MOVE || row->op == J_MOVE_DIR ||
			  (row->op == J_PROPS && st == BE_ITEM_GONE &&
			   !(pending(c, row->ino) & (JP_CONTENT | JP_PLACE)));
		be_new_free(&o->made);
		st = BE_OK;
	}
	if (st == BE_OK) {
		journal_done(c, row, o->made.id, o->made.change_key, o->drop, &ch);
		sync_notify(a->sync, &ch);
		cache_changes_free(&ch);
		pthread_mutex_lock(&a->lock);
		a->sent++;
		a->last_error[0] = 0;
		pthread_mutex_unlock(&a->lock);
		log_dbg(LC_SYNC, "%s '%s': done", jop_name(row->op), what);
		return;
	}
	/* a failure of the connection, not of this write (an untrusted
	 * certificate too: a captive portal, a renewed certificate; and, for
	 * a while, an answer that is not the server's) */
	if (be_status_transient(st) || st == BE_AUTH || st == BE_TLS ||
	    st == BE_CONFLICT ||
	    (not_servers_answer(&o->r) &&
	     row->attempts + 1 < PROTOCOL_TRIES)) {
		int64_t wait = backoff_ms(row->attempts, o->r.retry_after_ms);
		char *err = xasprintf("%s: %s", be_status_name(st), o->r.msg);
		journal_retry_later(c, row->seq, wall_ms() + wait, err);
		note(a, "%s", err);
		log_warn("cannot %s '%s' (%s); retrying in %.0f s",
			 jop_name(row->op), what, err, wait / 1000.0);
		free(err);
		if (st != BE_THROTTLED && st != BE_CONFLICT)
			drop_session(a);
		return;
	}
	/* refused for good: kept, visible, not retried until changed */
	log_warn("server refused to %s '%s': %s", jop_name(row->op), what,
		 o->r.msg);
	journal_fail(c, row, o->r.msg);
}

/* Send the first row of the journal.  due_only: leave a row whose next
 * try is later (and report its wait in *wait_ms).  Returns 1 if a row was
 * handled (done, failed or put off), 0 if the journal has nothing to send,
 * -1 if the first row is not due yet. */
static int send_first(struct applier *a, bool due_only, int64_t *wait_ms)
{
	struct jrow row = { 0 };
	if (journal_first(a->cache, &row))
		return 0;
	int64_t wait = row.next_try - wall_ms();
	pthread_mutex_lock(&a->lock);
	if (a->retry_now)
		wait = 0;
	a->retry_now = false;
	pthread_mutex_unlock(&a->lock);
	if (due_only && wait > 0) {
		*wait_ms = wait;
		jrow_clear(&row);
		return -1;
	}
	struct outcome o = { 0 };
	if (!open_session(a, &o.r)) {
		char *err = xasprintf("%s: %s", be_status_name(o.r.status),
				      o.r.msg);
		journal_retry_later(a->cache, row.seq, wall_ms() +
				    backoff_ms(row.attempts, o.r.retry_after_ms),
				    err);
		note(a, "%s", err);
		free(err);
		jrow_clear(&row);
		return 1;
	}
	if (journal_take(a->cache, &row)) {
		jrow_clear(&row);
		return 1;
	}
	struct node n = { 0 };
	char *what = cache_get(a->cache, row.ino, &n) == 0
		? xstrdup(n.name) : xasprintf("#%llu", (unsigned long long)row.ino);
	node_clear(&n);
	sync_server_lock(a->sync);
	apply_row(a, &row, &o);
	settle(a, &row, &o, what);
	sync_server_unlock(a->sync);
	be_new_free(&o.made);
	free(what);
	jrow_clear(&row);
	return 1;
}

static bool abandon_if_stopping(void *arg)
{
	struct applier *a = arg;
	pthread_mutex_lock(&a->lock);
	bool stop = a->stop;
	pthread_mutex_unlock(&a->lock);
	return stop;
}

static void *applier_main(void *arg)
{
	struct applier *a = arg;
	/* a request the server holds must not hold up an unmount (the row
	 * is unsure by then: looked up before it is sent again) */
	http_thread_abandon(abandon_if_stopping, a, "exchangefs is stopping");
	for (;;) {
		int64_t wait = 0;
		int got = send_first(a, true, &wait);
		if (got == 0 && wait_for(a, -1))
			break;
		if (got < 0 && wait_for(a, wait))
			break;
		pthread_mutex_lock(&a->lock);
		bool stop = a->stop;
		pthread_mutex_unlock(&a->lock);
		if (stop)
			break;
	}
	drop_session(a);
	return NULL;
}

struct applier *applier_new(struct sync *s)
{
	struct applier *a = xcalloc(1, sizeof(*a));
	a->sync = s;
	a->cache = sync_cache(s);
	a->ops = sync_config(s)->ops;
	a->cfg = &sync_config(s)->be;
	pthread_mutex_init(&a->lock, NULL);
	cond_init_monotonic(&a->cond);
	return a;
}

struct applier *applier_start(struct sync *s)
{
	struct applier *a = applier_new(s);
	if (thread_start(&a->thread, "xfs-applier", applier_main, a)) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
		return NULL;
	}
	a->running = true;
	return a;
}

int applier_step(struct applier *a)
{
	return send_first(a, false, NULL);
}

void applier_kick(struct applier *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->kicked = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void applier_retry_now(struct applier *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->retry_now = a->kicked = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void applier_stop(struct applier *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (a->running)
		pthread_join(a->thread, NULL);
	else
		drop_session(a);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

void applier_status(struct applier *a, struct buf *out)
{
	struct journal_stats js;
	journal_stats(a->cache, &js);
	pthread_mutex_lock(&a->lock);
	buf_printf(out, "changes queued: %lld", (long long)js.queued);
	if (js.queued)
		buf_printf(out, " (oldest %lld s ago)", (long long)js.oldest_age);
	buf_printf(out, "\nchanges sent: %lld\nchanges failed: %lld\n",
		   (long long)a->sent, (long long)js.failed);
	if (a->last_error[0] && js.queued)
		buf_printf(out, "sending changes: %s\n", a->last_error);
	pthread_mutex_unlock(&a->lock);
	struct jrow *f;
	size_t n;
	journal_failures(a->cache, &f, &n, 10);
	for (size_t i = 0; i < n; i++) {
		struct node nd = { 0 };
		bool have = cache_get(a->cache, f[i].ino, &nd) == 0;
		buf_printf(out, "  %s %s '%s': %s\n",
			   f[i].state == JS_FAILED ? "failed:" : "retrying:",
			   jop_name(f[i].op), have ? nd.name : "?",
			   f[i].error ? f[i].error : "");
		node_clear(&nd);
	}
	jrows_free(f, n);
}
