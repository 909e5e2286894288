/*
 * sync.c - the sync thread: hierarchy first, then each folder's items page
 * by page (each page committed with its state, see sync_apply.c), folders
 * that readers wait for first, then again every interval; in between,
 * quick passes over the folders the server's notifications name (watch.c).
 * Server errors are handled by grade: throttling waits as long as the
 * server asks, network errors back off and retry, an invalid sync state
 * starts a resync that keeps names and inodes.  The status file's text is
 * sync_status.c.
 */
#include "sync_internal.h"
#include "applier.h"
#include "prefetch.h"
#include "journal.h"
#include "watch.h"
#include "backend/util.h"
#include "backend/http.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Pages in a row that say "more changes follow" but hold none before a
 * folder's sync gives up on that server answer. */
#define EMPTY_PAGES_MAX 20

/* Whether a page that says "more follow" is one too many: with nothing in
 * it and the state it was asked with, it would be asked again for ever; a
 * few empty pages with new states are allowed (a server may filter a page
 * down to nothing).  *empty counts the empty pages in a row. */
static bool endless_more(unsigned *empty, bool more, size_t n,
			 const char *new_state, const char *state)
{
	*empty = more && !n ? *empty + 1 : 0;
	return *empty && (*empty > EMPTY_PAGES_MAX ||
			  !strcmp(new_state ? new_state : "",
				  state ? state : ""));
}

#define PAGE_SIZE 512
#define MANY_MAX 16      /* folders per sync_items_many() call */

void sync_server_lock(struct sync *s) { pthread_mutex_lock(&s->server_lock); }
void sync_server_unlock(struct sync *s) { pthread_mutex_unlock(&s->server_lock); }

void sync_writes_kick(struct sync *s)
{
	applier_kick(s->applier);
}

/* Record the well-known folders of a fresh session (best effort: a server
 * without them still syncs; writes then treat every folder alike). */
static void learn_special(struct sync *s, struct be_session *bs)
{
	if (!s->cfg.ops->special_folders)
		return;
	char *ids[BE_SPECIAL_N] = { 0 };
	struct be_result r;
	be_result_ok(&r);
	if (s->cfg.ops->special_folders(bs, ids, &r) == BE_OK)
		cache_set_special(s->cache, ids);
	else
		log_dbg(LC_SYNC, "cannot look up the well-known folders: %s", r.msg);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
}

/* Remember what the server can do (meta "server_caps": "HEX SPEAKS"), for
 * sync_can_store, sync_server_can and the status, also across an offline
 * start. */
static void learn_caps(struct sync *s, struct be_session *bs)
{
	struct be_caps caps;
	be_caps_get(s->cfg.ops, bs, &caps);
	char *now = xasprintf("%x %s", caps.can, caps.speaks);
	char *was = cache_meta_get(s->cache, "server_caps");
	if (!was || strcmp(was, now))
		cache_meta_set(s->cache, "server_caps", now);
	free(was);
	free(now);
}

bool sync_server_caps(struct sync *s, struct be_caps *out)
{
	char *kept = cache_meta_get(s->cache, "server_caps");
	int at = 0;
	bool known = kept && sscanf(kept, "%x %n", &out->can, &at) >= 1;
	if (!known) {
		/* not known yet: let the server say */
		be_caps_get(s->cfg.ops, NULL, out);
		out->speaks[0] = 0;
	} else {
		snprintf(out->speaks, sizeof(out->speaks), "%s",
			 at > 0 ? kept + at : "");
	}
	free(kept);
	return known;
}

bool sync_can_store(struct sync *s, unsigned what, char *why, size_t len)
{
	struct be_caps caps;
	sync_server_caps(s, &caps);
	unsigned can = caps.can;
	bool ok = (can & what) == what;
	if (!ok) {
		const char *speaks = caps.speaks[0] ? caps.speaks : "this protocol";
		const char *verb = what & BE_CAN_SAVE ? "store a message in a folder"
			: what & BE_CAN_DRAFT ? "store a draft"
			: what & BE_CAN_EDIT_DRAFT ? "change a draft" : "send";
		snprintf(why, len, "the server (%s) cannot %s%s", speaks, verb,
			 can & BE_CAN_SEND && !(what & BE_CAN_SEND)
			 ? "; sending through Outbox works" : "");
	}
	return ok;
}

struct be_session *sync_open_session(struct sync *s, struct be_result *r)
{
	struct be_session *bs = s->cfg.ops->open(&s->cfg.be, r);
	if (bs) {
		learn_special(s, bs);
		learn_caps(s, bs);
	}
	return bs;
}

struct cache *sync_cache(struct sync *s) { return s->cache; }
struct fetch_pool *sync_pool(struct sync *s) { return s->pool; }
struct prefetch *sync_prefetcher(struct sync *s) { return s->prefetch; }
const struct sync_config *sync_config(struct sync *s) { return &s->cfg; }

struct sync *sync_new(struct cache *c, const struct sync_config *cfg)
{
	struct sync *s = xcalloc(1, sizeof(*s));
	s->cache = c;
	s->cfg = *cfg;
	/* one account for all the sessions of this mount (sync, fetch,
	 * applier, watcher): they all open from s->cfg.be */
	if (!s->cfg.be.account && s->cfg.ops->account_new) {
		s->cfg.be.account = s->cfg.ops->account_new(&s->cfg.be);
		s->own_account = true;
	}
	if (!s->cfg.interval_s)
		s->cfg.interval_s = 60;
	if (!s->cfg.fetch_sessions)
		s->cfg.fetch_sessions = 4;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->server_lock, NULL);
	cond_init_monotonic(&s->cond);
	cond_init_monotonic(&s->done_cond);
	s->root_id = cache_meta_get(c, "root_id");
	s->pool = fetch_pool_new(s, s->cfg.fetch_sessions);
	s->started_ms = now_ms();
	return s;
}

void sync_set_hooks(struct sync *s, const struct sync_hooks *hooks)
{
	s->hooks = *hooks;
}

void sync_free(struct sync *s)
{
	if (!s)
		return;
	sync_stop(s);
	fetch_pool_free(s->pool);
	if (s->session)
		s->cfg.ops->close(s->session);
	if (s->own_account && s->cfg.ops->account_free)
		s->cfg.ops->account_free(s->cfg.be.account);
	free(s->root_id);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->server_lock);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
	free(s);
}

void sync_notify(struct sync *s, const struct cache_changes *ch)
{
	if (ch->n && s->hooks.changed)
		s->hooks.changed(s->hooks.arg, ch);
	if (ch->n)
		prefetch_kick(s->prefetch);
}

void sync_changed(struct sync *s, const uint64_t *inos, size_t n,
		  bool hierarchy, bool everything)
{
	pthread_mutex_lock(&s->lock);
	if (everything)
		s->kicked = true;
	s->hier_dirty |= hierarchy;
	for (size_t i = 0; i < n; i++) {
		bool listed = false;
		for (size_t j = 0; j < s->n_dirty && !listed; j++)
			listed = s->dirty[j] == inos[i];
		if (listed)
			continue;
		if (s->n_dirty == MAX_DIRTY) {
			s->kicked = true;  /* too many: sync everything */
			break;
		}
		s->dirty[s->n_dirty++] = inos[i];
	}
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void sync_note_error(struct sync *s, const struct be_result *r)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s",
		 be_status_name(r->status), r->msg);
	s->last_error_at = time(NULL);
	s->server_asked_ms = r->retry_after_ms;
	pthread_mutex_unlock(&s->lock);
}

/* The back-off before the next attempt: never shorter than the server
 * asked for. */
static int64_t next_wait(struct sync *s, int64_t backoff)
{
	pthread_mutex_lock(&s->lock);
	int64_t asked = s->server_asked_ms;
	s->server_asked_ms = 0;
	pthread_mutex_unlock(&s->lock);
	return asked > backoff ? asked : backoff;
}

/* What ends a nap early, besides stopping. */
enum nap_wake {
	WAKE_STOP,     /* nothing else: the server asked us to wait */
	WAKE_READERS,  /* a reader waits for a folder (a back-off) */
	WAKE_WORK,     /* that, or changes to sync (kick, notifications) */
};

/* Sleep up to ms.  Returns true if stopping. */
static bool nap_for(struct sync *s, int64_t ms, enum nap_wake wake)
{
	struct timespec ts;
	deadline_ms(&ts, ms);
	pthread_mutex_lock(&s->lock);
	while (!s->stop && !(wake >= WAKE_READERS && s->n_wanted) &&
	       !(wake == WAKE_WORK && (s->kicked || s->n_dirty || s->hier_dirty)))
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
			break;
	bool stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* A back-off: only stop or a waiting reader cut it short. */
static bool nap(struct sync *s, int64_t ms)
{
	return nap_for(s, ms, WAKE_READERS);
}

static bool stopping(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	bool stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

static void set_conn(struct sync *s, enum conn_state st)
{
	pthread_mutex_lock(&s->lock);
	bool back = st == CONN_ONLINE && s->conn != CONN_ONLINE &&
		    s->conn != CONN_NEW;
	s->conn = st;
	pthread_mutex_unlock(&s->lock);
	if (back)
		applier_retry_now(s->applier);
}

static void progress(struct sync *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void progress_v(struct sync *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void progress_v(struct sync *s, const char *fmt, va_list ap)
{
	if (!s->cfg.progress)
		return;
	char line[300];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (isatty(2))
		fprintf(stderr, "\r\033[Kexchangefs: %s", line);
	else
		fprintf(stderr, "exchangefs: %s\n", line);
}

static void progress(struct sync *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	progress_v(s, fmt, ap);
	va_end(ap);
}

void sync_progress(struct sync *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	progress_v(s, fmt, ap);
	va_end(ap);
}

static enum be_status open_session(struct sync *s, struct be_result *r)
{
	if (s->session)
		return BE_OK;
	s->session = sync_open_session(s, r);
	if (!s->session)
		return r->status;
	const char *root = s->cfg.ops->root_id(s->session);
	if (root && (!s->root_id || strcmp(root, s->root_id))) {
		free(s->root_id);
		s->root_id = xstrdup(root);
		cache_meta_set(s->cache, "root_id", root);
	}
	set_conn(s, CONN_ONLINE);
	return BE_OK;
}

static void drop_session(struct sync *s)
{
	if (s->session)
		s->cfg.ops->close(s->session);
	s->session = NULL;
}

/* Sync the folder hierarchy to the end.  On an invalid state, start over
 * from empty and remove the folders the server no longer reports - before
 * the new list is stored when it came in one page (ActiveSync's FolderSync
 * always does), so a folder that has a new id under the same name (deleted
 * and made again meanwhile) takes its name back instead of "Name (2)". */
static enum be_status sync_hierarchy(struct sync *s, struct be_result *r)
{
	char *state = cache_meta_get(s->cache, "hierarchy_state");
	bool first = !state;  /* nobody has seen the tree: no events */
	bool resync = false, swept = false;
	unsigned empty = 0;   /* pages in a row that said "more" with nothing */
	char **seen = NULL;
	size_t n_seen = 0;
	enum be_status st;

	for (;;) {
		struct be_folder_batch b = { 0 };
		sync_server_lock(s);
		st = s->cfg.ops->sync_folders(s->session, state, &b, r);
		if (st == BE_SYNC_INVALID && !resync) {
			log_notice("folder hierarchy sync state refused by server: "
				   "resyncing the folder list");
			resync = true;
			free(state);
			state = NULL;
			be_folder_batch_free(&b);
			sync_server_unlock(s);
			continue;
		}
		if (st != BE_OK) {
			be_folder_batch_free(&b);
			sync_server_unlock(s);
			break;
		}
		if (resync || !state)
			for (size_t i = 0; i < b.n; i++) {
				if (b.v[i].change == BE_DELETE)
					continue;
				seen = xrealloc(seen, (n_seen + 1) * sizeof(*seen));
				seen[n_seen++] = xstrdup(b.v[i].id);
			}
		struct cache_changes gone = { .from_server = true };
		if (resync && !state && !b.more) {
			/* the whole list in one page */
			cache_sweep_folders(s->cache, seen, n_seen, &gone);
			swept = true;
		}
		struct cache_changes ch = { .from_server = !first };
		int arc = cache_apply_folders(s->cache, s->root_id, &b, &ch);
		sync_server_unlock(s);
		sync_notify(s, &gone);
		cache_changes_free(&gone);
		if (arc) {
			be_result_set(r, BE_PROTOCOL, "cannot store folder list in cache");
			st = BE_PROTOCOL;
			be_folder_batch_free(&b);
			cache_changes_free(&ch);
			break;
		}
		sync_notify(s, &ch);
		cache_changes_free(&ch);
		if (endless_more(&empty, b.more, b.n, b.new_state, state)) {
			be_folder_batch_free(&b);
			st = BE_PROTOCOL;
			be_result_set(r, st, "server says more folder changes "
				      "follow but sends none");
			break;
		}
		free(state);
		state = xstrdup(b.new_state);
		bool more = b.more;
		be_folder_batch_free(&b);
		if (!more || stopping(s))
			break;
	}
	if (st == BE_OK && resync && !swept) {
		struct cache_changes ch = { .from_server = true };
		cache_sweep_folders(s->cache, seen, n_seen, &ch);
		sync_notify(s, &ch);
		cache_changes_free(&ch);
	}
	for (size_t i = 0; i < n_seen; i++)
		free(seen[i]);
	free(seen);
	free(state);
	return st;
}

/* Sync one folder's items to the end of its changes. */
static enum be_status sync_folder(struct sync *s, const struct node *f,
				  struct be_result *r)
{
	char *state = cache_folder_state(s->cache, f->ino);
	bool resynced = false;
	bool first = !f->synced;
	int64_t done = 0;
	unsigned empty = 0;   /* pages in a row that said "more" with nothing */
	enum be_status st;

	pthread_mutex_lock(&s->lock);
	snprintf(s->current, sizeof(s->current), "%s", f->name);
	s->current_done = 0;
	pthread_mutex_unlock(&s->lock);

	for (;;) {
		struct be_item_batch b = { 0 };
		sync_server_lock(s);
		st = s->cfg.ops->sync_items(s->session, f->server_id, state,
					    PAGE_SIZE, &b, r);
		if (st == BE_SYNC_INVALID && !resynced) {
			log_notice("sync state of folder '%s' refused by server: "
				   "resyncing it (names and inodes are kept)",
				   f->name);
			be_item_batch_free(&b);
			sync_server_unlock(s);
			cache_begin_resync(s->cache, f->ino);
			resynced = true;
			free(state);
			state = NULL;
			continue;
		}
		/* throttled, or a 503 that says when to come back: wait as
		 * long as the server asked, keep the session, retry */
		if (st == BE_THROTTLED || (st == BE_NETWORK && r->retry_after_ms)) {
			uint32_t ms = r->retry_after_ms ? r->retry_after_ms : 5000;
			log_notice("server busy while syncing '%s': waiting %.1f s "
				   "as it asked", f->name, ms / 1000.0);
			be_item_batch_free(&b);
			sync_server_unlock(s);
			char what[300];
			snprintf(what, sizeof(what), "syncing '%s'", f->name);
			sync_note_server_wait(s, now_ms() + ms, what);
			bool stop = nap_for(s, ms, WAKE_STOP);
			sync_note_server_wait(s, 0, NULL);
			if (stop)
				break;
			continue;
		}
		if (st != BE_OK) {
			be_item_batch_free(&b);
			sync_server_unlock(s);
			break;
		}
		/* the pages of a folder's first sync are no news to anyone:
		 * nobody could list it before (opendir waits for it) */
		struct cache_changes ch = { .from_server = !first };
		int rc = cache_apply_items(s->cache, f->ino, &b, !b.more, &ch);
		sync_server_unlock(s);
		if (rc) {
			be_item_batch_free(&b);
			cache_changes_free(&ch);
			if (rc == -ENOENT) {
				st = BE_FOLDER_GONE;
				be_result_set(r, st, "folder '%s' was removed", f->name);
			} else {
				st = BE_PROTOCOL;
				be_result_set(r, st, "cannot store changes of '%s' in cache",
					      f->name);
			}
			break;
		}
		sync_notify(s, &ch);
		cache_changes_free(&ch);
		done += (int64_t)b.n;
		pthread_mutex_lock(&s->lock);
		s->current_done = done;
		pthread_mutex_unlock(&s->lock);
		if (first && f->total > 0)
			progress(s, "syncing %s: %lld / %lld messages", f->name,
				 (long long)done, (long long)f->total);
		if (endless_more(&empty, b.more, b.n, b.new_state, state)) {
			be_item_batch_free(&b);
			st = BE_PROTOCOL;
			be_result_set(r, st, "server says more changes of '%s' "
				      "follow but sends none", f->name);
			break;
		}
		free(state);
		state = xstrdup(b.new_state);
		bool more = b.more;
		be_item_batch_free(&b);
		if (!more) {
			log_dbg(LC_SYNC, "folder '%s' synced (%lld changes)",
				f->name, (long long)done);
			break;
		}
		if (stopping(s))
			break;
	}
	free(state);
	pthread_mutex_lock(&s->lock);
	s->current[0] = 0;
	pthread_mutex_unlock(&s->lock);
	return st;
}

/* Take the next folder a reader waits for, or 0. */
static uint64_t next_wanted(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t ino = s->n_wanted ? s->wanted[0] : 0;
	pthread_mutex_unlock(&s->lock);
	return ino;
}

static void folder_finished(struct sync *s, uint64_t ino, enum be_status st)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_wanted; i++)
		if (s->wanted[i] == ino) {
			memmove(&s->wanted[i], &s->wanted[i + 1],
				(s->n_wanted - i - 1) * sizeof(s->wanted[0]));
			s->n_wanted--;
			break;
		}
	if (st != BE_OK) {
		s->failed_ino = ino;
		s->failed_errno = be_errno(st) ? be_errno(st) : EIO;
		s->fail_seq++;
	}
	bool none_waits = !s->n_wanted;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
	if (none_waits)   /* prefetch holds back while a reader waits */
		prefetch_kick(s->prefetch);
}

/* Record a failure that affects every waiting reader (no connection). */
static void all_failed(struct sync *s, enum be_status st)
{
	pthread_mutex_lock(&s->lock);
	s->failed_ino = 0;
	s->failed_errno = be_errno(st) ? be_errno(st) : EIO;
	s->fail_seq++;
	s->n_wanted = 0;
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
}

/* One folder, with the error handling shared by wanted and regular runs.
 * Returns false when the connection is lost and the pass must end; a
 * folder-specific failure clears *all_ok but lets the pass go on. */
static bool run_folder(struct sync *s, const struct node *f, bool *all_ok)
{
	struct be_result r;
	be_result_ok(&r);
	if (f->synced && journal_folder_unsure(s->cache, f->ino)) {
		/* a change of ours may have reached the server without our
		 * knowing its new id: let the applier settle it first */
		log_dbg(LC_SYNC, "folder '%s' waits for changes being sent",
			f->name);
		folder_finished(s, f->ino, BE_OK);
		*all_ok = false;
		return true;
	}
	enum be_status st = sync_folder(s, f, &r);
	folder_finished(s, f->ino, st);
	if (st == BE_OK || stopping(s))
		return true;
	*all_ok = false;
	sync_note_error(s, &r);
	log_warn("cannot sync folder '%s': %s", f->name, r.msg);
	if (st == BE_NETWORK || st == BE_AUTH || st == BE_TLS) {
		drop_session(s);
		set_conn(s, st == BE_AUTH ? CONN_AUTH_FAILED : CONN_OFFLINE);
		return false;
	}
	return true;  /* a folder-specific problem: go on with the others */
}

/* Whether folder f can go into a sync_items_many() call: synced before and
 * not waiting for a change of ours to settle (run_folder says why). */
static bool many_ok(struct sync *s, const struct node *f)
{
	return f->synced && !journal_folder_unsure(s->cache, f->ino);
}

/* One sync_items_many() call for folders f[0..n) (n <= MANY_MAX), applied
 * page by page as run_folder would.  A folder with more to come, or that
 * failed on its own, is marked in again[] for run_folder; a failed call
 * marks them all, so run_folder meets the failure and handles it (it costs
 * one request more, only on failure). */
static void many_call(struct sync *s, const struct node *f, size_t n,
		      bool *again)
{
	struct be_sync_one v[MANY_MAX];
	char *states[MANY_MAX];
	struct be_result r;

	memset(v, 0, sizeof(v));
	for (size_t k = 0; k < n; k++) {
		states[k] = cache_folder_state(s->cache, f[k].ino);
		v[k].folder_id = f[k].server_id;
		v[k].state = states[k] ? states[k] : "";
		again[k] = true;
	}
	pthread_mutex_lock(&s->lock);
	snprintf(s->current, sizeof(s->current), "%zu folders", n);
	s->current_done = 0;
	pthread_mutex_unlock(&s->lock);
	sync_server_lock(s);
	if (s->cfg.ops->sync_items_many(s->session, v, n, PAGE_SIZE, &r) ==
	    BE_OK) {
		for (size_t k = 0; k < n; k++) {
			if (v[k].r.status != BE_OK)
				continue;
			struct cache_changes ch = { .from_server = true };
			int rc = cache_apply_items(s->cache, f[k].ino, &v[k].out,
						   !v[k].out.more, &ch);
			if (rc == 0) {
				sync_notify(s, &ch);
				again[k] = v[k].out.more;
			}
			cache_changes_free(&ch);
		}
	} else {
		log_dbg(LC_SYNC, "syncing %zu folders at once failed (%s): "
			"one by one", n, r.msg);
	}
	sync_server_unlock(s);
	for (size_t k = 0; k < n; k++) {
		be_item_batch_free(&v[k].out);
		free(states[k]);
	}
	pthread_mutex_lock(&s->lock);
	s->current[0] = 0;
	pthread_mutex_unlock(&s->lock);
}

/* The folders readers wait for, one by one.  Returns false when the
 * connection is lost. */
static bool run_wanted(struct sync *s, bool *all_ok)
{
	bool ok = true;
	uint64_t w;
	while (ok && (w = next_wanted(s)) != 0) {
		struct node f = { 0 };
		if (cache_get(s->cache, w, &f) == 0 && f.kind == NODE_FOLDER)
			ok = run_folder(s, &f, all_ok);
		else
			folder_finished(s, w, BE_FOLDER_GONE);
		node_clear(&f);
	}
	return ok;
}

/* Folders inos[0..n) that synced before (others are skipped: a first
 * sync belongs to a pass): with a backend that syncs several folders per
 * round trip (ActiveSync), up to MANY_MAX of them per call and run_folder
 * only for those that need more; otherwise run_folder each.  Returns false
 * when the connection is lost (the pass ends). */
static bool run_folders(struct sync *s, const uint64_t *inos, size_t n,
			bool *all_ok)
{
	bool ok = true;
	size_t i = 0;
	struct be_caps caps;
	sync_server_caps(s, &caps);
	bool many = caps.can & BE_CAN_SYNC_MANY;
	while (ok && i < n && !stopping(s)) {
		struct node f[MANY_MAX];
		bool again[MANY_MAX];
		size_t m = 0;
		/* gather the next folders that can go together; one that
		 * cannot goes alone at once */
		while (ok && i < n && m < MANY_MAX) {
			struct node g = { 0 };
			if (cache_get(s->cache, inos[i++], &g) != 0 ||
			    g.kind != NODE_FOLDER || !g.synced) {
				node_clear(&g);
				continue;
			}
			if (many && many_ok(s, &g)) {
				f[m++] = g;  /* f[m] owns it now */
				continue;
			}
			ok = run_folder(s, &g, all_ok);
			node_clear(&g);
		}
		if (ok && m > 1)
			many_call(s, f, m, again);
		else
			again[0] = true;
		for (size_t k = 0; k < m; k++) {
			if (ok && again[k])
				ok = run_folder(s, &f[k], all_ok);
			else if (ok)
				folder_finished(s, f[k].ino, BE_OK);
			node_clear(&f[k]);
		}
	}
	return ok;
}

/* Take the folders the server said changed (and whether the tree did). */
static size_t take_dirty(struct sync *s, uint64_t *out, bool *hier)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n_dirty;
	memcpy(out, s->dirty, n * sizeof(*out));
	s->n_dirty = 0;
	*hier = s->hier_dirty;
	s->hier_dirty = false;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* A full pass: the hierarchy, then every folder. */
static bool pass(struct sync *s)
{
	struct be_result r;
	be_result_ok(&r);
	uint64_t dirty[MAX_DIRTY];
	bool hier;
	take_dirty(s, dirty, &hier);  /* all of them are synced below */
	enum be_status st = sync_hierarchy(s, &r);
	if (st != BE_OK) {
		sync_note_error(s, &r);
		log_warn("cannot sync folder list: %s", r.msg);
		if (st == BE_NETWORK || st == BE_AUTH || st == BE_TLS ||
		    st == BE_THROTTLED) {
			drop_session(s);
			set_conn(s, st == BE_AUTH ? CONN_AUTH_FAILED : CONN_OFFLINE);
			all_failed(s, st);
			return false;
		}
	}
	struct node *folders;
	size_t n;
	cache_folders(s->cache, &folders, &n);
	/* never-synced folders first, in tree order, each with the folders
	 * readers wait for before it */
	bool ok = true, all_ok = st == BE_OK;
	for (size_t i = 0; ok && i <= n && !stopping(s); i++) {
		ok = run_wanted(s, &all_ok);
		if (!ok || i == n || folders[i].synced)
			continue;
		/* refresh: a wanted run may have synced it */
		struct node f = { 0 };
		if (cache_get(s->cache, folders[i].ino, &f) == 0 && !f.synced)
			ok = run_folder(s, &f, &all_ok);
		node_clear(&f);
	}
	/* then every folder that had synced before (several per round
	 * trip where the protocol allows) */
	uint64_t *inos = xcalloc(n ? n : 1, sizeof(*inos));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (folders[i].synced)
			inos[m++] = folders[i].ino;
	if (ok && !stopping(s))
		ok = run_folders(s, inos, m, &all_ok);
	free(inos);
	cache_nodes_free(folders, n);
	if (ok && !stopping(s)) {
		pthread_mutex_lock(&s->lock);
		bool was = s->pass_ended;
		s->pass_ended = true;
		pthread_mutex_unlock(&s->lock);
		if (!was)   /* prefetch waited for every folder's headers */
			prefetch_kick(s->prefetch);
	}
	if (ok && all_ok && !stopping(s)) {
		pthread_mutex_lock(&s->lock);
		s->last_sync_at = time(NULL);
		bool first = !s->first_pass_done;
		s->first_pass_done = true;
		pthread_mutex_unlock(&s->lock);
		if (first) {
			struct cache_stats cs;
			cache_stats(s->cache, &cs);
			progress(s, "first sync complete: %lld folders, %lld "
				 "messages in %.1f s%s", (long long)cs.folders,
				 (long long)cs.items,
				 (now_ms() - s->started_ms) / 1000.0,
				 isatty(2) ? "\n" : "");
		}
	}
	return ok;
}

/* What notifications asked for: the hierarchy if it changed, then the
 * folders that changed (and those readers wait for).  Returns false when
 * the connection is lost. */
static bool quick_pass(struct sync *s)
{
	uint64_t dirty[MAX_DIRTY];
	bool hier;
	size_t n = take_dirty(s, dirty, &hier);
	struct be_result r;
	be_result_ok(&r);
	if (hier && sync_hierarchy(s, &r) != BE_OK) {
		sync_note_error(s, &r);
		log_warn("cannot sync folder list: %s", r.msg);
		if (r.status == BE_NETWORK || r.status == BE_AUTH ||
		    r.status == BE_TLS || r.status == BE_THROTTLED) {
			drop_session(s);
			set_conn(s, r.status == BE_AUTH ? CONN_AUTH_FAILED
							: CONN_OFFLINE);
			sync_changed(s, dirty, n, true, false);  /* later */
			return false;
		}
	}
	bool all_ok = true;
	bool ok = run_wanted(s, &all_ok);
	/* a folder not synced yet gets its first sync in a pass */
	if (ok)
		ok = run_folders(s, dirty, n, &all_ok);
	if (!ok)  /* again when the server is back */
		sync_changed(s, dirty, n, false, false);
	return ok;
}

static bool take_kick(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	bool k = s->kicked;
	s->kicked = false;
	pthread_mutex_unlock(&s->lock);
	return k;
}

/* What pages held as half of a move and whose other half did not come in
 * time becomes what the pages said (cache/sync_moves.c). */
static void settle_moves(struct sync *s)
{
	struct cache_changes ch = { .from_server = true };
	if (cache_settle_moves(s->cache, &ch) == 0)
		sync_notify(s, &ch);
	cache_changes_free(&ch);
}

static bool abandon_if_stopping(void *arg)
{
	return stopping(arg);
}

static void *sync_main(void *arg)
{
	struct sync *s = arg;
	int64_t backoff = 1000;
	int64_t next_full = 0;  /* a full pass first */
	/* a request the server holds must not hold up an unmount */
	http_thread_abandon(abandon_if_stopping, s, "exchangefs is stopping");
	while (!stopping(s)) {
		struct be_result r;
		be_result_ok(&r);
		if (open_session(s, &r) != BE_OK) {
			sync_note_error(s, &r);
			set_conn(s, r.status == BE_AUTH ? CONN_AUTH_FAILED
						       : CONN_OFFLINE);
			all_failed(s, r.status);
			int64_t wait = next_wait(s, backoff);
			log_warn("cannot reach server (%s); retrying in %lld s",
				 r.msg, (long long)(wait / 1000));
			if (nap(s, wait))
				break;
			backoff = backoff * 2 > 300000 ? 300000 : backoff * 2;
			next_full = 0;
			continue;
		}
		settle_moves(s);
		bool full = take_kick(s) || now_ms() >= next_full;
		pthread_mutex_lock(&s->lock);
		s->passes_started++;
		pthread_mutex_unlock(&s->lock);
		bool ok = full ? pass(s) : quick_pass(s);
		pthread_mutex_lock(&s->lock);
		s->passes_done++;
		pthread_cond_broadcast(&s->done_cond);
		pthread_mutex_unlock(&s->lock);
		if (!ok) {
			if (nap(s, next_wait(s, backoff)))
				break;
			backoff = backoff * 2 > 300000 ? 300000 : backoff * 2;
			next_full = 0;
			continue;
		}
		backoff = 1000;
		if (full)
			next_full = now_ms() + (int64_t)s->cfg.interval_s * 1000;
		int64_t left = next_full - now_ms();
		int64_t held = cache_moves_due_ms(s->cache);
		if (held >= 0 && held + 50 < left)
			left = held + 50;
		if (left > 0 && nap_for(s, left, WAKE_WORK))
			break;
	}
	return NULL;
}

enum be_status sync_pass_now(struct sync *s)
{
	struct be_result r;
	be_result_ok(&r);
	if (open_session(s, &r) != BE_OK)
		return r.status;
	pthread_mutex_lock(&s->lock);
	unsigned seq = s->fail_seq;
	pthread_mutex_unlock(&s->lock);
	bool ok = pass(s);
	pthread_mutex_lock(&s->lock);
	bool failed = s->fail_seq != seq;
	pthread_mutex_unlock(&s->lock);
	return !ok ? BE_NETWORK : failed ? BE_REFUSED : BE_OK;
}

bool sync_headers_first(struct sync *s, bool *reader_waits)
{
	pthread_mutex_lock(&s->lock);
	bool first = !s->pass_ended;
	*reader_waits = s->n_wanted > 0;
	pthread_mutex_unlock(&s->lock);
	return first;
}

bool sync_synced_once(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	bool done = s->first_pass_done;
	pthread_mutex_unlock(&s->lock);
	if (done)
		return true;
	/* an earlier run's: every folder of the cache has its items */
	struct node *folders = NULL;
	size_t n = 0;
	if (!sync_have_cache(s) || cache_folders(s->cache, &folders, &n) != 0)
		return false;
	done = true;
	for (size_t i = 0; i < n; i++)
		if (!folders[i].synced)
			done = false;
	cache_nodes_free(folders, n);
	return done;
}

bool sync_have_cache(struct sync *s)
{
	char *st = cache_meta_get(s->cache, "hierarchy_state");
	bool have = st != NULL;
	free(st);
	return have;
}

enum be_status sync_connect(struct sync *s, struct be_result *r)
{
	enum be_status st = open_session(s, r);
	if (st != BE_OK)
		return st;
	progress(s, "connected; reading folder list");
	st = sync_hierarchy(s, r);
	if (st != BE_OK)
		drop_session(s);
	return st;
}

int sync_start(struct sync *s)
{
	/* the applier first: the sync thread tells it when the server is
	 * back */
	s->applier = applier_start(s);
	if (!s->applier)
		log_err("cannot start sending changes to the server");
	/* and the prefetcher: the sync thread kicks it after every page, so
	 * s->prefetch is set before that thread starts (thread creation
	 * publishes it; set after, the sync thread could read it unset or
	 * half-made) */
	s->prefetch = prefetch_start(s);
	int rc = thread_start(&s->thread, "xfs-sync", sync_main, s);
	if (rc) {
		prefetch_stop(s->prefetch);
		s->prefetch = NULL;
		applier_stop(s->applier);
		s->applier = NULL;
		return -rc;
	}
	s->running = true;
	if (s->cfg.notify)
		s->watcher = watcher_start(s);
	return 0;
}

void sync_stop(struct sync *s)
{
	if (!s->running)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
	watcher_stop(s->watcher);
	s->watcher = NULL;
	applier_stop(s->applier);
	s->applier = NULL;
	pthread_join(s->thread, NULL);
	/* after the sync thread: it kicks the prefetcher after every page */
	prefetch_stop(s->prefetch);
	s->prefetch = NULL;
	s->running = false;
}

void sync_kick(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	s->kicked = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool sync_exiting(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	bool stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop || (s->hooks.exiting && s->hooks.exiting(s->hooks.arg));
}

bool sync_waiter_interrupted(const struct sync_waiter *w)
{
	return w && w->interrupted && w->interrupted(w->arg);
}

void sync_wake_waiters(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
	fetch_pool_wake(s->pool);
}

void sync_note_server_wait(struct sync *s, int64_t until, const char *what)
{
	pthread_mutex_lock(&s->lock);
	s->server_wait_until = until;
	snprintf(s->server_wait_what, sizeof(s->server_wait_what), "%s",
		 what ? what : "");
	pthread_cond_broadcast(&s->done_cond);
	pthread_mutex_unlock(&s->lock);
}

/* s->lock held */
static bool server_wait_beyond_locked(struct sync *s, int64_t deadline,
				      char *why, size_t len)
{
	int64_t until = s->server_wait_until;
	if (!until || until <= deadline)
		return false;
	snprintf(why, len, "server asked to wait %lld s (throttled) %s",
		 (long long)((until - now_ms() + 999) / 1000),
		 s->server_wait_what);
	return true;
}

bool sync_server_wait_beyond(struct sync *s, int64_t deadline, char *why,
			     size_t len)
{
	pthread_mutex_lock(&s->lock);
	bool beyond = server_wait_beyond_locked(s, deadline, why, len);
	pthread_mutex_unlock(&s->lock);
	return beyond;
}

/* How long a reader may wait behind a back-off the server asked for. */
int64_t sync_reader_patience_ms(struct sync *s)
{
	long t = s->cfg.be.timeout_s;
	return (t > 0 ? t : 60) * 1000;
}

void sync_reader_gave_up(struct sync *s, const char *why, const char *what)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->last_error, sizeof(s->last_error),
		 "%s: %s: %s; gave up after --timeout (%lld s)",
		 be_status_name(BE_THROTTLED), what, why,
		 (long long)(sync_reader_patience_ms(s) / 1000));
	s->last_error_at = time(NULL);
	log_warn("%s", s->last_error);
	pthread_mutex_unlock(&s->lock);
}

int sync_wait_folder(struct sync *s, uint64_t ino, const struct sync_waiter *w)
{
	prefetch_looked_at(s->prefetch, ino);
	struct node f = { 0 };
	if (cache_get(s->cache, ino, &f))
		return -ENOENT;
	bool synced = f.synced;
	node_clear(&f);
	if (synced)
		return 0;

	int64_t give_up = now_ms() + sync_reader_patience_ms(s);
	char why[400];
	pthread_mutex_lock(&s->lock);
	bool listed = false;
	for (size_t i = 0; i < s->n_wanted; i++)
		listed |= s->wanted[i] == ino;
	if (!listed && s->n_wanted < MAX_WAITING)
		s->wanted[s->n_wanted++] = ino;
	unsigned seq = s->fail_seq;
	pthread_cond_signal(&s->cond);
	int ret = 0;
	for (;;) {
		if (s->stop || (s->hooks.exiting && s->hooks.exiting(s->hooks.arg))) {
			ret = -EIO;
			break;
		}
		if (s->fail_seq != seq && (s->failed_ino == ino || !s->failed_ino)) {
			ret = -s->failed_errno;
			break;
		}
		bool late = now_ms() >= give_up &&
			    server_wait_beyond_locked(s, now_ms(), why,
						      sizeof(why));
		pthread_mutex_unlock(&s->lock);
		if (sync_waiter_interrupted(w)) {
			pthread_mutex_lock(&s->lock);
			ret = -EINTR;
			break;
		}
		if (late) {
			sync_reader_gave_up(s, why, "cannot list a folder");
			pthread_mutex_lock(&s->lock);
			ret = -ETIMEDOUT;
			break;
		}
		bool done = cache_get(s->cache, ino, &f) != 0 || f.synced;
		node_clear(&f);
		pthread_mutex_lock(&s->lock);
		if (done)
			break;
		seq = s->fail_seq == seq ? seq : s->fail_seq;
		struct timespec ts;
		deadline_ms(&ts, 1000);
		pthread_cond_timedwait(&s->done_cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void sync_confirm_folder(struct sync *s, uint64_t ino, int64_t ms,
			 const struct sync_waiter *w)
{
	int64_t end = now_ms() + ms;
	pthread_mutex_lock(&s->lock);
	/* a pass under way may have read the folder already: the next one */
	unsigned target = s->passes_started + 1;
	pthread_mutex_unlock(&s->lock);
	sync_changed(s, &ino, 1, false, false);
	pthread_mutex_lock(&s->lock);
	while (!s->stop && (int)(s->passes_done - target) < 0 &&
	       now_ms() < end) {
		pthread_mutex_unlock(&s->lock);
		bool intr = sync_waiter_interrupted(w);
		pthread_mutex_lock(&s->lock);
		if (intr)
			break;
		struct timespec ts;
		int64_t left = end - now_ms();
		deadline_ms(&ts, left < 1000 ? left : 1000);
		pthread_cond_timedwait(&s->done_cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
}
