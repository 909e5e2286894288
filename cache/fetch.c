/*
 * fetch.c - fetching message bodies on demand: a small pool of backend
 * sessions shared by the FUSE worker threads, one fetch per message at a
 * time (a second reader of the same message waits for the first fetch),
 * MIME streamed straight into the body store so a large message is never
 * held in memory.
 */
#include "sync.h"
#include "backend/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INFLIGHT 64
#define FETCH_TRIES 4

struct fetch_pool {
	struct sync *sync;
	const struct backend_ops *ops;
	const struct be_config *cfg;
	pthread_mutex_t lock;            /* guards all below */
	pthread_cond_t cond;
	struct be_session **idle;        /* idle sessions (owned) */
	size_t n_idle;
	unsigned n_open, max;            /* sessions existing / allowed */
	uint64_t inflight[MAX_INFLIGHT]; /* inos being fetched */
	size_t n_inflight;
};


struct fetch_pool *fetch_pool_new(struct sync *s, unsigned max)
{
	struct fetch_pool *p = xcalloc(1, sizeof(*p));
	p->sync = s;
	p->ops = sync_config(s)->ops;
	p->cfg = &sync_config(s)->be;
	p->max = max;
	p->idle = xcalloc(max, sizeof(*p->idle));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	return p;
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
 * the server cannot be reached. */
static struct be_session *borrow(struct fetch_pool *p, struct be_result *r)
{
	pthread_mutex_lock(&p->lock);
	while (!p->n_idle && p->n_open >= p->max)
		pthread_cond_wait(&p->cond, &p->lock);
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
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	return s;
}

/* Give a session back; a session that saw a network error is closed. */
static void give_back(struct fetch_pool *p, struct be_session *s, bool broken)
{
	if (broken)
		p->ops->close(s);
	pthread_mutex_lock(&p->lock);
	if (broken)
		p->n_open--;
	else
		p->idle[p->n_idle++] = s;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

struct fetch_one {
	struct body_writer *w;
	enum be_status st;
	char msg[200];
	int write_err;
};

static int sink(void *arg, size_t index, const void *data, size_t len)
{
	struct fetch_one *f = arg;
	(void)index;
	int rc = cache_body_write(f->w, data, len);
	if (rc) {
		f->write_err = rc;
		return -1;
	}
	return 0;
}

static void done(void *arg, size_t index, enum be_status st, const char *msg)
{
	struct fetch_one *f = arg;
	(void)index;
	f->st = st;
	snprintf(f->msg, sizeof(f->msg), "%s", msg ? msg : "");
}

/* One attempt: 0, or -errno; *retry_ms > 0 asks for another attempt. */
static int fetch_attempt(struct fetch_pool *p, const struct node *n,
			 int64_t *retry_ms)
{
	struct cache *c = sync_cache(p->sync);
	struct be_result r;
	be_result_ok(&r);
	*retry_ms = 0;
	struct be_session *s = borrow(p, &r);
	if (!s) {
		sync_note_error(p->sync, &r);
		log_warn("cannot fetch '%s': %s", n->name, r.msg);
		return -be_errno(r.status);
	}
	struct fetch_one f = { .st = BE_PROTOCOL };
	f.w = cache_body_begin(c, n->ino);
	if (!f.w) {
		give_back(p, s, false);
		return -EIO;
	}
	const char *ids[1] = { n->server_id };
	int64_t t0 = now_ms();
	enum be_status st = p->ops->fetch_mime(s, ids, 1, sink, done, &f, &r);
	give_back(p, s, st == BE_NETWORK || st == BE_TLS || st == BE_AUTH);
	if (st == BE_OK && f.st == BE_OK && !f.write_err) {
		struct cache_changes evicted = { 0 };
		int rc = cache_body_commit(f.w, &evicted);
		sync_notify(p->sync, &evicted);
		cache_changes_free(&evicted);
		log_dbg(LC_SYNC, "fetched '%s' in %lld ms", n->name,
			(long long)(now_ms() - t0));
		return rc;
	}
	cache_body_abort(f.w);
	if (f.write_err)
		return f.write_err;
	if (st == BE_OK)
		st = f.st;
	if (st == BE_ITEM_GONE) {
		/* the server deleted it since the last sync */
		struct cache_changes ch = { 0 };
		cache_remove_item(c, n->ino, &ch);
		sync_notify(p->sync, &ch);
		cache_changes_free(&ch);
		log_notice("'%s' was deleted on the server", n->name);
		return -ENOENT;
	}
	if (st == BE_OK) {
		st = BE_PROTOCOL;
		snprintf(r.msg, sizeof(r.msg), "%s", f.msg);
	}
	if (st == BE_THROTTLED || st == BE_NETWORK) {
		*retry_ms = r.retry_after_ms ? r.retry_after_ms : 1000;
	}
	if (r.status == BE_OK)
		be_result_set(&r, st, "%s", f.msg[0] ? f.msg : be_status_name(st));
	sync_note_error(p->sync, &r);
	log_warn("cannot fetch '%s': %s", n->name, r.msg);
	return -be_errno(st);
}

int sync_fetch_body(struct sync *s, uint64_t ino)
{
	struct fetch_pool *p = sync_pool(s);
	struct cache *c = sync_cache(s);

	/* one fetch per message: wait for one under way */
	pthread_mutex_lock(&p->lock);
	for (;;) {
		bool busy = false;
		for (size_t i = 0; i < p->n_inflight; i++)
			busy |= p->inflight[i] == ino;
		if (!busy && p->n_inflight < MAX_INFLIGHT)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	p->inflight[p->n_inflight++] = ino;
	pthread_mutex_unlock(&p->lock);

	int rc;
	int fd = cache_body_open(c, ino);
	if (fd >= 0) {
		close(fd);
		rc = 0;
	} else {
		struct node n = { 0 };
		rc = cache_get(c, ino, &n);
		if (!rc && (n.kind != NODE_ITEM || !n.server_id))
			rc = -EISDIR;
		for (int tries = 1; !rc; tries++) {
			int64_t retry_ms;
			rc = fetch_attempt(p, &n, &retry_ms);
			if (!rc || !retry_ms || tries >= FETCH_TRIES)
				break;
			/* a reader is waiting: never sleep minutes */
			sleep_ms(retry_ms > 10000 ? 10000 : retry_ms);
			rc = 0;
		}
		node_clear(&n);
	}

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n_inflight; i++)
		if (p->inflight[i] == ino) {
			p->inflight[i] = p->inflight[--p->n_inflight];
			break;
		}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return rc;
}
