/*
 * fetch.c - fetching message bodies: a small pool of backend sessions
 * shared by the FUSE worker threads (on-demand reads) and the prefetcher
 * (cache/prefetch.c).  One call fetches a batch of messages (EWS: one
 * GetItem with several ids), each streamed straight into its own body file
 * as it decodes, so memory stays flat whatever the message sizes.  One
 * fetch per message at a time: a message being fetched is "claimed", and
 * a reader of it waits for that fetch instead of starting another.
 *
 * The pool: background work may use `limit` sessions (at most `max`,
 * halved when the server throttles, grown back by one after a run of calls
 * that went through); an on-demand read takes an idle session first, may
 * open one more than background work can, and is served before any
 * background work waiting for a session - so a read jumps the queue and
 * waits at most for one call, never for the prefetcher's backlog.
 *
 * Read-ahead: a reader that reads uncached messages of one folder one
 * after another (grep -r, cat *, a backup) gets the next messages of the
 * folder in the same call, and the prefetcher is asked to fetch further
 * ahead in that folder with the background sessions.
 */
#include "sync.h"
#include "prefetch.h"
#include "kinds.h"
#include "backend/util.h"
#include "backend/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INFLIGHT 512
#define FETCH_TRIES 4
#define RA_AFTER 2        /* uncached reads in a row in one folder ... */
#define RA_BATCH 16       /* ... then fetch this many per call */
#define RA_BUDGET (8 << 20) /* estimated bytes per call */
#define GROW_AFTER 32     /* calls without throttling before growing */

struct fetch_pool {
	struct sync *sync;
	const struct backend_ops *ops;
	const struct be_config *cfg;
	pthread_mutex_t lock;            /* guards all below */
	pthread_cond_t cond;
	struct be_session **idle;        /* idle sessions (owned) */
	size_t n_idle;
	unsigned n_open, max;            /* sessions existing / background max */
	unsigned limit;                  /* background sessions allowed now */
	unsigned bg_busy;                /* sessions lent to background work */
	unsigned urgent_waiting;         /* readers waiting for a session */
	unsigned ok_streak;              /* calls since the last throttling */
	int64_t shrunk_ms;               /* when limit last went down */
	unsigned throttled;              /* throttling answers seen */
	uint64_t inflight[MAX_INFLIGHT]; /* inos being fetched (claimed) */
	size_t n_inflight;
	uint64_t ra_folder;              /* read-ahead: folder of the last */
	unsigned ra_run;                 /* uncached reads in a row */
};


struct fetch_pool *fetch_pool_new(struct sync *s, unsigned max)
{
	struct fetch_pool *p = xcalloc(1, sizeof(*p));
	p->sync = s;
	p->ops = sync_config(s)->ops;
	p->cfg = &sync_config(s)->be;
	p->max = p->limit = max ? max : 1;
	p->idle = xcalloc(p->max + 1, sizeof(*p->idle));
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);
	return p;
}

void fetch_pool_wake(struct fetch_pool *p)
{
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void fetch_pool_free(struct fetch_pool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_idle; i++)
		p->ops->close(p->idle[i]);
	free(p->idle);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Borrow a session (opening one if the pool has room); NULL with *r set if
 * the server cannot be reached.  Urgent (a reader waits) goes first and
 * may use one session more than background work. */
static struct be_session *borrow(struct fetch_pool *p, bool urgent,
				 const struct sync_waiter *w,
				 struct be_result *r)
{
	pthread_mutex_lock(&p->lock);
	if (urgent) {
		p->urgent_waiting++;
		while (!p->n_idle && p->n_open >= p->max + 1) {
			if (sync_waiter_interrupted(w)) {
				p->urgent_waiting--;
				pthread_mutex_unlock(&p->lock);
				be_result_set(r, BE_NETWORK, "interrupted");
				return NULL;
			}
			struct timespec ts;
			deadline_ms(&ts, 1000);
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		}
		p->urgent_waiting--;
	} else {
		while (p->urgent_waiting || p->bg_busy >= p->limit ||
		       (!p->n_idle && p->n_open >= p->max))
			pthread_cond_wait(&p->cond, &p->lock);
		p->bg_busy++;
	}
	if (p->n_idle) {
		struct be_session *s = p->idle[--p->n_idle];
		pthread_mutex_unlock(&p->lock);
		return s;
	}
	p->n_open++;
	pthread_mutex_unlock(&p->lock);
	struct be_session *s = p->ops->open(p->cfg, r);
	if (!s) {
		pthread_mutex_lock(&p->lock);
		p->n_open--;
		if (!urgent)
			p->bg_busy--;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return s;
}

/* Give a session back; a session that saw a network error is closed. */
static void give_back(struct fetch_pool *p, struct be_session *s, bool urgent,
		      bool broken)
{
	if (broken)
		p->ops->close(s);
	pthread_mutex_lock(&p->lock);
	if (broken)
		p->n_open--;
	else
		p->idle[p->n_idle++] = s;
	if (!urgent)
		p->bg_busy--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* The server throttled (ErrorServerBusy, HTTP 429/503): halve the
 * background sessions, at most once a second. */
static void throttled(struct fetch_pool *p, uint32_t retry_ms)
{
	pthread_mutex_lock(&p->lock);
	p->throttled++;
	p->ok_streak = 0;
	int64_t now = now_ms();
	if (p->limit > 1 && now - p->shrunk_ms >= 1000) {
		p->limit = (p->limit + 1) / 2;
		p->shrunk_ms = now;
		log_notice("server is throttling (asked to wait %u ms): fetching "
			   "with %u connection%s", retry_ms, p->limit,
			   p->limit == 1 ? "" : "s");
	}
	pthread_mutex_unlock(&p->lock);
}

static void went_through(struct fetch_pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->limit < p->max && ++p->ok_streak >= GROW_AFTER) {
		p->ok_streak = 0;
		p->limit++;
		log_notice("server no longer throttling: fetching with %u "
			   "connections", p->limit);
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void fetch_pool_info(struct fetch_pool *p, unsigned *limit, unsigned *max,
		     unsigned *throttled_n)
{
	pthread_mutex_lock(&p->lock);
	*limit = p->limit;
	*max = p->max;
	*throttled_n = p->throttled;
	pthread_mutex_unlock(&p->lock);
}

static bool is_inflight(struct fetch_pool *p, uint64_t ino)
{
	for (size_t i = 0; i < p->n_inflight; i++)
		if (p->inflight[i] == ino)
			return true;
	return false;
}

size_t fetch_claim(struct fetch_pool *p, struct fetch_item *v, size_t n)
{
	size_t kept = 0;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		if (is_inflight(p, v[i].ino) || p->n_inflight >= MAX_INFLIGHT)
			continue;
		p->inflight[p->n_inflight++] = v[i].ino;
		v[kept++] = v[i];
	}
	pthread_mutex_unlock(&p->lock);
	return kept;
}

void fetch_release(struct fetch_pool *p, const struct fetch_item *v, size_t n)
{
	pthread_mutex_lock(&p->lock);
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < p->n_inflight; i++)
			if (p->inflight[i] == v[k].ino) {
				p->inflight[i] = p->inflight[--p->n_inflight];
				break;
			}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

size_t fetch_inflight(struct fetch_pool *p, uint64_t *out, size_t max)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->n_inflight < max ? p->n_inflight : max;
	memcpy(out, p->inflight, n * sizeof(*out));
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* One batch call in progress: the body being written and the outcomes. */
struct batch {
	struct cache *c;
	struct fetch_item *v;
	size_t n;
	bool background;
	struct body_writer *w;   /* the item being written, or NULL */
	size_t w_index;
	/* an event or a card: its bytes gathered here and normalised when
	 * complete (kinds.h), before anything enters the body store */
	const struct kind_info *kind;  /* of w_index's item, or NULL */
	struct buf raw;
	bool gathering;
	struct cache_changes evicted;
};

/* Normalising a calendar item or a contact happens here, in the core,
 * not in a backend: the kinds table says which content each kind of
 * folder holds, and every backend's fetch_mime (EWS MimeContent now,
 * MAPI/HTTP's converted properties later) goes through this one place,
 * so the file and its st_size are the normalised bytes once cached. */
#define FETCH_RAW_MAX (16u << 20)

static int sink(void *arg, size_t index, const void *data, size_t len)
{
	struct batch *b = arg;
	if (index >= b->n)
		return -1;
	if (b->gathering && b->w_index != index) {
		buf_free(&b->raw);   /* never: done() ends each item */
		b->gathering = false;
	}
	if (b->w && b->w_index != index) {
		cache_body_abort(b->w);   /* never: done() ends each item */
		b->w = NULL;
	}
	if (!b->w && !b->gathering) {
		b->w_index = index;
		b->kind = kind_of_item(b->c, b->v[index].ino);
		if (b->kind->normalise) {
			buf_init(&b->raw, FETCH_RAW_MAX);
			b->gathering = true;
		} else {
			b->w = cache_body_begin(b->c, b->v[index].ino);
			if (!b->w) {
				b->v[index].err = -EIO;
				return -1;
			}
		}
	}
	b->v[index].bytes += (int64_t)len;
	if (b->gathering) {
		if (buf_append(&b->raw, data, len)) {
			b->v[index].err = -EFBIG;
			return -1;
		}
		return 0;
	}
	int rc = cache_body_write(b->w, data, len);
	if (rc) {
		b->v[index].err = rc;
		return -1;
	}
	return 0;
}

/* The gathered bytes of an event or a card, normalised, into a body
 * writer (NULL with it->st and it->msg saying why not). */
static struct body_writer *normalised(struct batch *b, struct fetch_item *it)
{
	char err[256] = "";
	size_t outlen = 0;
	char *out = b->kind->normalise(b->raw.data ? b->raw.data : "",
				       b->raw.len, it->server_id, &outlen,
				       err, sizeof(err));
	buf_free(&b->raw);
	b->gathering = false;
	if (!out) {
		it->st = BE_PROTOCOL;
		snprintf(it->msg, sizeof(it->msg), "the server's %s item "
			 "cannot be read: %s", b->kind->name, err);
		return NULL;
	}
	struct body_writer *w = cache_body_begin(b->c, it->ino);
	int rc = w ? cache_body_write(w, out, outlen) : -EIO;
	free(out);
	if (rc) {
		cache_body_abort(w);
		it->err = rc;
		return NULL;
	}
	it->bytes = (int64_t)outlen;
	return w;
}

static void done(void *arg, size_t index, enum be_status st, const char *msg)
{
	struct batch *b = arg;
	if (index >= b->n)
		return;
	struct fetch_item *it = &b->v[index];
	struct body_writer *w = b->w && b->w_index == index ? b->w : NULL;
	if (b->w && !w) {
		cache_body_abort(b->w);
		b->w = NULL;
	}
	b->w = NULL;
	bool gathered = b->gathering && b->w_index == index;
	if (b->gathering && !gathered) {
		buf_free(&b->raw);
		b->gathering = false;
	}
	it->st = st;
	snprintf(it->msg, sizeof(it->msg), "%s", msg ? msg : "");
	if (st != BE_OK || it->err) {
		cache_body_abort(w);
		if (gathered) {
			buf_free(&b->raw);
			b->gathering = false;
		}
		return;
	}
	if (!gathered && !w && kind_of_item(b->c, it->ino)->normalise) {
		/* an empty MimeContent of an event or a card */
		b->kind = kind_of_item(b->c, it->ino);
		buf_init(&b->raw, FETCH_RAW_MAX);
		gathered = true;
	}
	if (gathered) {
		w = normalised(b, it);
		if (!w) {
			if (!it->err && it->st == BE_OK)
				it->err = -EIO;
			return;
		}
	}
	if (!w)   /* an empty MimeContent */
		w = cache_body_begin(b->c, it->ino);
	if (!w) {
		it->err = -EIO;
		return;
	}
	/* only the body a reader waits for may evict others; read-ahead
	 * and prefetch stop at the limit */
	it->err = b->background || index ? cache_body_commit_within(w)
					 : cache_body_commit(w, &b->evicted);
}

static bool abandon_if_interrupted(void *arg)
{
	return sync_waiter_interrupted(arg);
}

/* fetch_batch for a reader (w: its FUSE request, or NULL): waits and the
 * call itself end when it is interrupted. */
static enum be_status fetch_batch_for(struct fetch_pool *p,
				      struct fetch_item *v, size_t n,
				      bool background,
				      const struct sync_waiter *w,
				      struct be_result *r)
{
	struct cache *c = sync_cache(p->sync);
	be_result_ok(r);
	for (size_t i = 0; i < n; i++) {
		v[i].st = BE_PROTOCOL;
		v[i].err = 0;
		v[i].bytes = 0;
		v[i].msg[0] = 0;
	}
	struct be_session *s = borrow(p, !background, w, r);
	if (!s) {
		for (size_t i = 0; i < n; i++) {
			v[i].st = r->status;
			snprintf(v[i].msg, sizeof(v[i].msg), "%s", r->msg);
		}
		return r->status;
	}
	const char *ids[n ? n : 1];
	for (size_t i = 0; i < n; i++)
		ids[i] = v[i].server_id;
	struct batch b = { .c = c, .v = v, .n = n, .background = background };
	if (w)
		http_thread_abandon(abandon_if_interrupted, (void *)w,
				    "the request waiting for it was interrupted");
	enum be_status st = p->ops->fetch_mime(s, ids, n, sink, done, &b, r);
	if (w)
		http_thread_abandon(NULL, NULL, NULL);
	if (b.w)
		cache_body_abort(b.w);
	buf_free(&b.raw);
	give_back(p, s, !background,
		  st == BE_NETWORK || st == BE_TLS || st == BE_AUTH);

	/* A body nobody was reading that is larger than the estimate stat
	 * showed: the kernel must ask for the size again before a read, or
	 * the read stops at the estimate (attributes only; a smaller body is
	 * left to the kernel's short-read path, see docs/architecture.md).
	 * The reader's own body (v[0] of a foreground call) is its READ
	 * handler's to announce. */
	for (size_t i = background ? 0 : 1; i < n; i++)
		if (v[i].st == BE_OK && !v[i].err && v[i].bytes > v[i].shown)
			cache_change_add(&b.evicted, CC_ATTR, v[i].ino, 0, NULL,
					 0, NULL);
	sync_notify(p->sync, &b.evicted);
	cache_changes_free(&b.evicted);

	bool busy = st == BE_THROTTLED ||
		    (st == BE_NETWORK && !strcmp(r->code, "HTTP 503"));
	for (size_t i = 0; i < n; i++) {
		busy |= v[i].st == BE_THROTTLED;
		if (st == BE_OK && v[i].st == BE_NETWORK && background) {
			/* the server failed this one alone (ActiveSync HTTP
			 * 500/501): gone, or a hiccup; its folder's sync
			 * tells (a reader's call waits for it itself) */
			struct node f = { 0 };
			if (!cache_get(c, v[i].ino, &f))
				sync_changed(p->sync, &f.parent, 1, false, false);
			node_clear(&f);
		}
		if (v[i].st != BE_ITEM_GONE)
			continue;
		/* the server deleted it since the last sync */
		struct cache_changes ch = { 0 };
		cache_remove_item(c, v[i].ino, &ch);
		sync_notify(p->sync, &ch);
		cache_changes_free(&ch);
	}
	if (busy)
		throttled(p, r->retry_after_ms);
	else if (st == BE_OK)
		went_through(p);
	return st;
}

enum be_status fetch_batch(struct fetch_pool *p, struct fetch_item *v,
			   size_t n, bool background, struct be_result *r)
{
	return fetch_batch_for(p, v, n, background, NULL, r);
}

/* Read-ahead: the next uncached messages of the folder after n, claimed,
 * appended to v (which holds n's item). */
static size_t read_ahead(struct fetch_pool *p, const struct node *n,
			 struct fetch_item *v, struct prefetch_pick *picks)
{
	pthread_mutex_lock(&p->lock);
	if (p->ra_folder != n->parent) {
		p->ra_folder = n->parent;
		p->ra_run = 0;
	}
	bool on = ++p->ra_run >= RA_AFTER;
	pthread_mutex_unlock(&p->lock);
	if (!on)
		return 0;
	struct prefetch_query q = { .since = INT64_MIN, .now = time(NULL),
				    .folder = n->parent, .after = n->ino };
	uint64_t skip[MAX_INFLIGHT];
	size_t n_skip = fetch_inflight(p, skip, MAX_INFLIGHT);
	size_t got = cache_prefetch_pick(sync_cache(p->sync), &q, skip, n_skip,
					 picks, RA_BATCH - 1);
	/* the same byte budget as a prefetch batch (server estimates) */
	int64_t bytes = n->size > 0 ? n->size : 0;
	for (size_t i = 0; i < got; i++) {
		bytes += picks[i].size > 0 ? picks[i].size : 64 << 10;
		if (bytes > RA_BUDGET) {
			got = i;
			break;
		}
	}
	for (size_t i = 0; i < got; i++) {
		v[1 + i].ino = picks[i].ino;
		v[1 + i].server_id = picks[i].server_id;
		v[1 + i].shown = picks[i].size;
	}
	size_t kept = fetch_claim(p, v + 1, got);
	/* the prefetcher goes on from the last one this call fetches */
	if (got)
		prefetch_read_ahead(sync_prefetcher(p->sync), n->parent,
				    picks[got - 1].ino);
	return kept;
}

/* Sleep up to ms on the pool's condition: false when w was interrupted
 * or the engine stops first. */
static bool pool_nap(struct fetch_pool *p, int64_t ms,
		     const struct sync_waiter *w)
{
	int64_t end = now_ms() + ms;
	pthread_mutex_lock(&p->lock);
	bool ok = true;
	while (now_ms() < end) {
		if (sync_waiter_interrupted(w) || sync_exiting(p->sync)) {
			ok = false;
			break;
		}
		struct timespec ts;
		int64_t left = end - now_ms();
		deadline_ms(&ts, left < 1000 ? left : 1000);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* One attempt at an on-demand fetch: 0, or -errno; *retry_ms > 0 asks for
 * another attempt (after that long, as the server asked), *confirm that
 * the server failed it with an error of its own (HTTP 5xx: maybe a
 * message gone, maybe a hiccup; the folder's sync tells). */
static int fetch_attempt(struct fetch_pool *p, const struct node *n,
			 struct fetch_item *v, size_t nv,
			 const struct sync_waiter *w, int64_t *retry_ms,
			 bool *confirm)
{
	struct be_result r;
	*retry_ms = 0;
	*confirm = false;
	int64_t t0 = now_ms();
	enum be_status st = fetch_batch_for(p, v, nv, false, w, &r);
	if (st == BE_OK && v[0].st == BE_OK && !v[0].err) {
		log_dbg(LC_SYNC, "fetched '%s' (+%zu ahead) in %lld ms", n->name,
			nv - 1, (long long)(now_ms() - t0));
		return 0;
	}
	if (sync_waiter_interrupted(w))
		return -EINTR;
	if (v[0].err)
		return v[0].err;
	bool call_ok = st == BE_OK;
	if (st == BE_OK)
		st = v[0].st;
	if (st == BE_ITEM_GONE) {
		log_notice("'%s' was deleted on the server", n->name);
		return -ENOENT;
	}
	if (r.status == BE_OK)
		be_result_set(&r, st, "%s", v[0].msg[0] ? v[0].msg
						     : be_status_name(st));
	if (st == BE_THROTTLED || st == BE_NETWORK)
		*retry_ms = r.retry_after_ms ? r.retry_after_ms : 1000;
	/* the call went through but this message failed, or the server
	 * failed the call itself (HTTP 5xx, no Retry-After) */
	*confirm = st == BE_NETWORK && !r.retry_after_ms &&
		   (call_ok || !strncmp(r.code, "HTTP 5", 6));
	sync_note_error(p->sync, &r);
	log_warn("cannot fetch '%s': %s", n->name, r.msg);
	return -be_errno(st);
}

int sync_fetch_body(struct sync *s, uint64_t ino)
{
	return sync_fetch_body_for(s, ino, NULL);
}

int sync_fetch_body_for(struct sync *s, uint64_t ino,
			const struct sync_waiter *w)
{
	struct fetch_pool *p = sync_pool(s);
	struct cache *c = sync_cache(s);

	/* one fetch per message: wait for one under way */
	pthread_mutex_lock(&p->lock);
	while (is_inflight(p, ino) || p->n_inflight >= MAX_INFLIGHT) {
		if (sync_waiter_interrupted(w)) {
			pthread_mutex_unlock(&p->lock);
			return -EINTR;
		}
		struct timespec ts;
		deadline_ms(&ts, 1000);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	p->inflight[p->n_inflight++] = ino;
	pthread_mutex_unlock(&p->lock);

	struct fetch_item v[RA_BATCH];
	struct prefetch_pick picks[RA_BATCH];
	size_t nv = 1, claimed;
	memset(v, 0, sizeof(v));
	memset(picks, 0, sizeof(picks));
	v[0].ino = ino;
	int rc;
	int fd = cache_body_open(c, ino);
	claimed = 1;
	if (fd >= 0) {
		close(fd);
		rc = 0;
	} else {
		struct node n = { 0 };
		rc = cache_get(c, ino, &n);
		if (!rc && (n.kind != NODE_ITEM || !n.server_id))
			rc = -EISDIR;
		if (!rc) {
			v[0].server_id = n.server_id;
			nv += read_ahead(p, &n, v, picks);
		}
		claimed = nv;
		int64_t give_up = now_ms() + sync_reader_patience_ms(s);
		for (int tries = 1; !rc; tries++) {
			int64_t retry_ms;
			bool confirm;
			rc = fetch_attempt(p, &n, v, nv, w, &retry_ms, &confirm);
			if (!rc || !retry_ms || tries >= FETCH_TRIES)
				break;
			/* the server failed it itself: only its folder's
			 * sync may say the message is gone (SOGo fails a
			 * lone fetch of a gone message with HTTP 500, and
			 * any server may fail one now and then) */
			if (confirm) {
				int64_t left = give_up - now_ms();
				sync_confirm_folder(s, n.parent,
						    left > 0 ? left : 0, w);
				struct node again = { 0 };
				if (cache_get(c, ino, &again) == -ENOENT) {
					log_notice("'%s' was deleted on the server",
						   n.name);
					rc = -ENOENT;
					break;
				}
				node_clear(&again);
			}
			/* a reader waits no longer than --timeout for a
			 * server that asked to be left alone */
			if (now_ms() + retry_ms > give_up) {
				char why[300];
				snprintf(why, sizeof(why),
					 "server asked to wait %lld s (throttled) fetching '%s'",
					 (long long)((retry_ms + 999) / 1000),
					 n.name);
				sync_reader_gave_up(s, why, "cannot read a message");
				rc = -ETIMEDOUT;
				break;
			}
			if (!pool_nap(p, retry_ms, w)) {
				rc = sync_waiter_interrupted(w) ? -EINTR : -EIO;
				break;
			}
			rc = 0;
			nv = 1;   /* again for the reader only */
		}
		node_clear(&n);
	}
	fetch_release(p, v, claimed);
	cache_prefetch_picks_free(picks, RA_BATCH);
	return rc;
}
