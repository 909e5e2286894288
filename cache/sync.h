/*
 * sync.h - the sync engine: keeps the cache a mirror of the server.  One
 * background thread syncs the hierarchy, then every folder's items (folders
 * a reader is waiting for first), then again every interval.  Bodies are
 * fetched on demand through a small pool of backend sessions (fetch.c).
 * After every committed page the engine tells the file system what changed
 * (hooks), so it can invalidate the kernel's caches.
 */
#ifndef EXCHANGEFS_SYNC_H
#define EXCHANGEFS_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/util.h"
#include "cache/cache.h"

struct sync_config {
	const struct backend_ops *ops;
	struct be_config be;        /* borrowed for the engine's lifetime */
	unsigned interval_s;        /* re-sync period (default 60) */
	unsigned fetch_sessions;    /* on-demand body fetch pool (default 4) */
	bool notify;                /* subscribe to server notifications
				       (cache/watch.c) */
	unsigned notify_timeout_s;  /* longest life of one notification
				       stream (default 1800) */
	bool progress;              /* print first-sync progress on stderr */
	int prefetch_days;          /* bodies fetched ahead (cache/prefetch.c):
				       -1 none, 0 all, N the last N days */
};

struct sync_hooks {
	/* Called from the sync thread or a fetching thread after a commit;
	 * must not block on FUSE requests. */
	void (*changed)(void *arg, const struct cache_changes *ch);
	/* True when the mount is going away: readers waiting for a folder
	 * give up so the FUSE loop can end. */
	bool (*exiting)(void *arg);
	/* Lines of the file system's own for the status file. */
	void (*status)(void *arg, struct buf *out);
	void *arg;
};

struct sync;

struct sync *sync_new(struct cache *c, const struct sync_config *cfg);
void sync_set_hooks(struct sync *s, const struct sync_hooks *hooks);
void sync_free(struct sync *s);

/* At start, in the calling thread: sign in and sync the folder hierarchy,
 * so the mount shows the tree at once.  Fills *r on failure. */
enum be_status sync_connect(struct sync *s, struct be_result *r);
/* Whether the cache holds a hierarchy from an earlier run. */
bool sync_have_cache(struct sync *s);
/* Whether every folder has been read once (this run's first full pass, or
 * an earlier run's), so an empty prefetch goal means nothing to fetch. */
bool sync_synced_once(struct sync *s);
/* Whether header pages still go before prefetch: true until this run's
 * first full pass has gone through every folder; *reader_waits: a reader
 * waits for a folder's first sync now (prefetch holds back then too). */
bool sync_headers_first(struct sync *s, bool *reader_waits);

int sync_start(struct sync *s);      /* start the background thread */
/* For tests (tests/unit/test_engine*.c): one full pass - the hierarchy,
 * then every folder - in the calling thread, the sync thread not started.
 * BE_OK when everything synced; BE_NETWORK when the connection was lost
 * (the pass ended early); BE_REFUSED when some folder failed on its own. */
enum be_status sync_pass_now(struct sync *s);
void sync_stop(struct sync *s);      /* stop and join it */

/* A FUSE request waiting in the engine (a folder's first sync, a body):
 * interrupted() is polled (a FUSE_INTERRUPT: the wait ends at once with
 * -EINTR), and sync_wake_waiters() makes every wait poll it now (the file
 * system calls it from libfuse's interrupt callback; it takes the
 * engine's locks, so never call it holding them).  NULL: no request. */
struct sync_waiter {
	bool (*interrupted)(void *arg);
	void *arg;
};
bool sync_waiter_interrupted(const struct sync_waiter *w);
/* Whether the engine is stopping or the mount going away. */
bool sync_exiting(struct sync *s);
void sync_wake_waiters(struct sync *s);

/* Block until folder ino has completed its first item sync; asks the
 * engine to sync it next.  0, or -errno when syncing it failed; -EINTR
 * when w was interrupted; -EAGAIN when the server asked the engine to
 * wait (throttling) and the reader has waited --timeout (the status file
 * says so). */
int sync_wait_folder(struct sync *s, uint64_t ino,
		     const struct sync_waiter *w);
/* Ask for a sync of folder ino and wait (at most ms, or until w is
 * interrupted) for a pass that started after the request to end: what
 * the server says of the folder's items is then in the cache. */
void sync_confirm_folder(struct sync *s, uint64_t ino, int64_t ms,
			 const struct sync_waiter *w);
/* The server asked to wait (throttled) until at least when (now_ms()
 * clock), for what: readers then give up after --timeout, and the status
 * file names the reason.  until 0: no longer. */
void sync_note_server_wait(struct sync *s, int64_t until, const char *what);
/* How long a reader may wait behind a back-off the server asked for
 * (--timeout). */
int64_t sync_reader_patience_ms(struct sync *s);
/* A reader gave up waiting (what: "cannot read 'x'"; why: the server's
 * ask): one line in the log and the status file's last error. */
void sync_reader_gave_up(struct sync *s, const char *why, const char *what);
/* Whether the server asked to wait beyond deadline (now_ms() clock);
 * then why (a line for the user) in why. */
bool sync_server_wait_beyond(struct sync *s, int64_t deadline, char *why,
			     size_t len);
/* Ask for an immediate re-sync (all folders). */
void sync_kick(struct sync *s);
/* The server said these folders (and, with hierarchy, the folder tree)
 * changed: sync them now; everything: sync all folders (cache/watch.c). */
void sync_changed(struct sync *s, const uint64_t *inos, size_t n,
		  bool hierarchy, bool everything);


/* Make sure the body of item ino is in the cache (fetching it if needed,
 * sharing a fetch already under way).  0 or -errno: -EINTR when w was
 * interrupted (the fetch under way is abandoned), -ETIMEDOUT when the
 * server asked to wait longer than --timeout allows. */
int sync_fetch_body(struct sync *s, uint64_t ino);
int sync_fetch_body_for(struct sync *s, uint64_t ino,
			const struct sync_waiter *w);

/* The status text of the control file (.exchangefs/status). */
void sync_status(struct sync *s, struct buf *out);

/* Write-back (cache/applier.c): a new session signed in with the engine's
 * configuration (the well-known folders are looked up and recorded at each
 * sign-in); NULL with *r set on failure. */
struct be_session *sync_open_session(struct sync *s, struct be_result *r);
/* Held around each sync page (request + apply) and each journal row
 * (request + recording the answer), so a page never reports one of our
 * own changes before the cache knows the id the server gave it. */
void sync_server_lock(struct sync *s);
void sync_server_unlock(struct sync *s);
/* Tell the applier a change was queued (no-op without one). */
void sync_writes_kick(struct sync *s);

/* Internal, shared by sync.c, fetch.c and prefetch.c. */
struct fetch_pool;
struct fetch_pool *fetch_pool_new(struct sync *s, unsigned max);
void fetch_pool_free(struct fetch_pool *p);
/* One message of a batch fetch and its outcome. */
struct fetch_item {
	uint64_t ino;
	const char *server_id;      /* borrowed */
	int64_t shown;              /* size stat showed (the estimate) */
	enum be_status st;          /* the server's answer for it */
	int err;                    /* -errno storing it (-ENOSPC: a
				       background body did not fit) */
	int64_t bytes;              /* MIME bytes received */
	char msg[330];
};
/* Wake everything waiting on the pool (an interrupted reader). */
void fetch_pool_wake(struct fetch_pool *p);
/* Fetch the bodies of v[] (claimed) in one call and commit each as it
 * completes; background: through the background share of the pool.
 * Only v[0] of a foreground call (the body a reader waits for) may evict
 * others; the rest are committed only within the cache size limit.  Messages the server no
 * longer has are removed.  Returns the call's grade (r filled). */
enum be_status fetch_batch(struct fetch_pool *p, struct fetch_item *v,
			   size_t n, bool background, struct be_result *r);
/* Claim messages for fetching: those already claimed are dropped from v
 * (kept in order); returns how many remain. */
size_t fetch_claim(struct fetch_pool *p, struct fetch_item *v, size_t n);
void fetch_release(struct fetch_pool *p, const struct fetch_item *v, size_t n);
/* The claimed inos (at most max). */
size_t fetch_inflight(struct fetch_pool *p, uint64_t *out, size_t max);
/* Background sessions allowed now, at most, and throttling answers seen. */
void fetch_pool_info(struct fetch_pool *p, unsigned *limit, unsigned *max,
		     unsigned *throttled);
struct prefetch *sync_prefetcher(struct sync *s);
/* A progress line on stderr in the foreground (-f). */
void sync_progress(struct sync *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
struct fetch_pool *sync_pool(struct sync *s);
const struct sync_config *sync_config(struct sync *s);
struct cache *sync_cache(struct sync *s);
void sync_notify(struct sync *s, const struct cache_changes *ch);
void sync_note_error(struct sync *s, const struct be_result *r);
/* What the backend declared it can do when a session last opened,
 * remembered in the cache (so also known offline); false, and what the
 * protocol can at best, while not known yet. */
bool sync_server_caps(struct sync *s, struct be_caps *out);
/* Whether the server can store what the BE_CAN_* bits of what ask (as
 * the backend said when a session opened, remembered in the cache; true
 * while unknown).  If not, one line saying so in why. */
bool sync_can_store(struct sync *s, unsigned what, char *why, size_t len);
/* A failure of the file system's own (content refused at close()): the
 * status's "last error", where a user looks (sync_status.c). */
void sync_note_failure(struct sync *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
