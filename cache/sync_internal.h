/*
 * sync_internal.h - the sync engine's state, shared by sync.c (the sync
 * thread) and sync_status.c (the status file's text).  Not for use outside
 * the engine: the rest of the code sees struct sync through sync.h.
 */
#ifndef EXCHANGEFS_SYNC_INTERNAL_H
#define EXCHANGEFS_SYNC_INTERNAL_H

#include "sync.h"

#include <pthread.h>
#include <time.h>

#define MAX_WAITING 64
#define MAX_DIRTY 256

enum conn_state { CONN_NEW, CONN_ONLINE, CONN_OFFLINE, CONN_AUTH_FAILED };

struct sync {
	struct cache *cache;
	struct sync_config cfg;
	struct sync_hooks hooks;
	bool own_account;           /* cfg.be.account made by sync_new */

	pthread_t thread;
	bool running;

	pthread_mutex_t lock;       /* guards everything below */
	pthread_cond_t cond;        /* wakes the sync thread */
	pthread_cond_t done_cond;   /* wakes readers waiting for a folder */
	bool stop, kicked;
	uint64_t wanted[MAX_WAITING];   /* folders readers wait for */
	size_t n_wanted;
	uint64_t dirty[MAX_DIRTY];  /* folders the server said changed */
	size_t n_dirty;
	bool hier_dirty;            /* ... and the folder tree */
	uint64_t failed_ino;        /* last folder whose sync failed ... */
	int failed_errno;           /* ... and why */
	unsigned fail_seq;          /* bumped on every failed attempt */
	enum conn_state conn;
	char last_error[400];
	time_t last_error_at;
	time_t last_sync_at;
	uint32_t server_asked_ms;   /* Retry-After/BackOff of the last failure */
	int64_t server_wait_until;  /* the server asked to wait till then
				       (now_ms() clock), 0: not waiting */
	char server_wait_what[300]; /* ... while doing this */
	unsigned passes_started;    /* sync passes (full or quick) begun */
	unsigned passes_done;       /* ... and ended, well or not */
	char current[256];          /* folder being synced, for status */
	int64_t current_done;
	bool first_pass_done;
	bool pass_ended;            /* a full pass went through every folder
				       (some may have failed): prefetch may
				       start (sync_headers_first) */
	int64_t started_ms;

	struct be_session *session; /* used only by the sync thread */
	char *root_id;

	/* body fetching (fetch.c) and prefetching (prefetch.c) */
	struct fetch_pool *pool;
	struct prefetch *prefetch;

	/* write-back (applier.c) */
	pthread_mutex_t server_lock;
	struct applier *applier;

	/* server notifications (watch.c) */
	struct watcher *watcher;
};

#endif
