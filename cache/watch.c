/*
 * watch.c - the watcher thread (see watch.h).  One backend session of its
 * own, one subscription covering every folder in the cache: watch() is
 * called in a loop, each call lasting up to the stream's lifetime; when the
 * set of folders in the cache changes (by a sync, or a folder made through
 * the mount getting its server id) the call is ended so the next one
 * subscribes for the new set.  A network failure keeps the session (the subscription lives
 * there, so the next call reconnects to it and nothing is missed) and backs
 * off 1 s, 2 s, ... 60 s; a refused sign-in opens a new session.  A server
 * with no notifications at all leaves the sync engine polling.
 */
#include "watch.h"
#include "db_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct watcher {
	struct sync *sync;
	pthread_t thread;

	pthread_mutex_t lock;        /* guards the fields below */
	pthread_cond_t cond;
	bool stop;
	enum be_watch_mode mode;
	bool unsupported;            /* the server has no notifications */
	char why[320];               /* the last failure, for status */
	time_t since;                /* when the current mode began */
	time_t last_event;
	unsigned long events;        /* batches received */
	uint64_t folder_sig;         /* the folder set subscribed for */
};

static bool stopped(struct watcher *w)
{
	pthread_mutex_lock(&w->lock);
	bool stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

/* Polled by the backend at least once a second: end the call when
 * stopping, or when the folder tree changed (subscribe again for it). */
static bool cancelled(void *arg)
{
	struct watcher *w = arg;
	if (stopped(w))
		return true;
	pthread_mutex_lock(&w->lock);
	uint64_t sig = w->folder_sig;
	pthread_mutex_unlock(&w->lock);
	return cache_folder_set_sig(sync_cache(w->sync)) != sig;
}

static void set_state(struct watcher *w, enum be_watch_mode mode,
		      const char *why)
{
	pthread_mutex_lock(&w->lock);
	if (mode != w->mode)
		w->since = time(NULL);
	w->mode = mode;
	snprintf(w->why, sizeof(w->why), "%s", why ? why : "");
	pthread_mutex_unlock(&w->lock);
}

static int on_events(void *arg, const struct be_events *ev)
{
	struct watcher *w = arg;
	struct cache *c = sync_cache(w->sync);
	/* hints first: the pages the sync below fetches use them */
	for (size_t i = 0; i < ev->n_moved; i++)
		cache_hint_move(c, ev->moved[i].old_id, ev->moved[i].new_id,
				ev->moved[i].new_folder_id);
	uint64_t *inos = xcalloc(ev->n_folders + 1, sizeof(*inos));
	size_t n = 0;
	for (size_t i = 0; i < ev->n_folders; i++) {
		struct node f = { 0 };
		if (ev->folder_ids[i] && cache_by_server_id(c, NODE_FOLDER,
					ev->folder_ids[i], &f) == 0)
			inos[n++] = f.ino;
		node_clear(&f);
	}
	log_dbg(LC_SYNC, "server notification: %zu folder(s)%s%s", n,
		ev->hierarchy ? ", folder tree" : "",
		ev->lost ? ", new subscription: syncing everything" : "");
	sync_changed(w->sync, inos, n, ev->hierarchy, ev->lost);
	free(inos);
	pthread_mutex_lock(&w->lock);
	w->events++;
	w->last_event = time(NULL);
	pthread_mutex_unlock(&w->lock);
	if (ev->mode != BE_WATCH_NONE)
		set_state(w, ev->mode, NULL);
	return 0;
}

/* Sleep up to ms; true if stopping. */
static bool rest(struct watcher *w, int64_t ms)
{
	struct timespec ts;
	deadline_ms(&ts, ms);
	pthread_mutex_lock(&w->lock);
	while (!w->stop)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
	bool stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

/* After a subscription was refused because a folder of the set is gone:
 * have the folder tree synced (and everything, since no subscription
 * covered the meantime), then wait up to ms for the set to change.
 * Whether it changed. */
static bool await_new_set(struct watcher *w, uint64_t sig, int64_t ms)
{
	struct cache *c = sync_cache(w->sync);
	sync_changed(w->sync, NULL, 0, true, true);
	for (int64_t waited = 0; waited < ms; waited += 100) {
		if (cache_folder_set_sig(c) != sig)
			return true;
		if (rest(w, 100))
			return false;
	}
	return false;
}

static void *watch_main(void *arg)
{
	struct watcher *w = arg;
	const struct sync_config *cfg = sync_config(w->sync);
	struct cache *c = sync_cache(w->sync);
	struct be_session *bs = NULL;
	int64_t backoff = 1000;

	while (!stopped(w)) {
		struct be_result r;
		be_result_ok(&r);
		if (!bs && !(bs = sync_open_session(w->sync, &r))) {
			set_state(w, BE_WATCH_NONE, r.msg);
			if (rest(w, backoff))
				break;
			backoff = backoff * 2 > 60000 ? 60000 : backoff * 2;
			continue;
		}
		struct node *folders;
		size_t n;
		pthread_mutex_lock(&w->lock);
		w->folder_sig = cache_folder_set_sig(c);
		pthread_mutex_unlock(&w->lock);
		cache_folders(c, &folders, &n);
		const char **ids = xcalloc(n + 1, sizeof(*ids));
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (folders[i].server_id)
				ids[k++] = folders[i].server_id;
		struct be_watch bw = {
			.folder_ids = ids, .n = k,
			.timeout_s = cfg->notify_timeout_s ? cfg->notify_timeout_s
							   : 1800,
			.events = on_events, .cancelled = cancelled, .arg = w,
		};
		enum be_watch_mode mode = BE_WATCH_NONE;
		int64_t began = now_ms();
		enum be_status st = k ? cfg->ops->watch(bs, &bw, &mode, &r)
				      : BE_OK;
		int64_t lasted = now_ms() - began;
		free(ids);
		cache_nodes_free(folders, n);
		if (lasted > 60000)
			backoff = 1000;  /* it worked for a while: a fresh start */
		if (st == BE_OK) {
			set_state(w, mode, NULL);
			backoff = 1000;
			/* no folders yet, or a server that ends every stream at
			 * once: never a loop without a pause */
			if ((!k || lasted < 1000) && rest(w, 1000))
				break;
			continue;
		}
		if (st == BE_FOLDER_GONE) {
			/* not a failure of the connection: no back-off */
			log_notice("notifications: %s; syncing the folder tree "
				 "before subscribing again", r.msg);
			set_state(w, BE_WATCH_NONE, r.msg);
			if (await_new_set(w, w->folder_sig, 10000))
				continue;
			if (stopped(w))
				break;
			/* the tree did not change: a folder the server lists
			 * but will not watch; back off like any failure */
		}
		if (st == BE_UNSUPPORTED) {
			log_notice("the server offers no notifications (%s): "
				   "polling every %u s", r.msg, cfg->interval_s);
			pthread_mutex_lock(&w->lock);
			w->unsupported = true;
			pthread_mutex_unlock(&w->lock);
			set_state(w, BE_WATCH_NONE, r.msg);
			break;
		}
		log_warn("notifications interrupted (%s); reconnecting in %lld s",
			 r.msg, (long long)(backoff / 1000));
		set_state(w, BE_WATCH_NONE, r.msg);
		if (st == BE_AUTH || st == BE_TLS || st == BE_PROTOCOL) {
			cfg->ops->close(bs);  /* sign in afresh */
			bs = NULL;
		}
		if (rest(w, backoff))
			break;
		backoff = backoff * 2 > 60000 ? 60000 : backoff * 2;
	}
	if (bs)
		cfg->ops->close(bs);
	return NULL;
}

struct watcher *watcher_start(struct sync *s)
{
	if (!sync_config(s)->ops->watch)
		return NULL;
	struct watcher *w = xcalloc(1, sizeof(*w));
	w->sync = s;
	w->since = time(NULL);
	pthread_mutex_init(&w->lock, NULL);
	cond_init_monotonic(&w->cond);
	if (thread_start(&w->thread, "xfs-watch", watch_main, w)) {
		log_err("cannot start the notification thread: polling");
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void watcher_stop(struct watcher *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static void put_time(struct buf *out, const char *label, time_t t)
{
	struct tm tm;
	char when[32];
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	buf_printf(out, "%s%s", label, when);
}

void watcher_status(struct watcher *w, bool enabled, struct buf *out)
{
	if (!enabled) {
		buf_puts(out, "notifications: off (--no-notify): polling\n");
		return;
	}
	if (!w) {
		buf_puts(out, "notifications: not offered by this protocol: "
			 "polling\n");
		return;
	}
	pthread_mutex_lock(&w->lock);
	if (w->unsupported) {
		buf_printf(out, "notifications: not offered by the server (%s): "
			   "polling\n", w->why);
	} else if (w->mode == BE_WATCH_NONE) {
		buf_printf(out, "notifications: %s%s\n",
			   w->why[0] ? "reconnecting after: " : "subscribing",
			   w->why);
	} else {
		buf_printf(out, "notifications: %s",
			   w->mode == BE_WATCH_PUSH ? "push (streaming)"
						    : "pull (asked every few seconds)");
		put_time(out, " since ", w->since);
		if (w->events)
			put_time(out, ", last event ", w->last_event);
		buf_puts(out, "\n");
	}
	pthread_mutex_unlock(&w->lock);
}
