/*
 * prefetch.c - the body prefetcher: one thread per fetch pool session
 * (cache/fetch.c), each taking the next batch of messages without a cached
 * body and fetching it in one call (EWS: GetItem with several ids),
 * bodies streamed to disk.  What comes next, in order:
 *   1. read-ahead: a reader going through a folder (fetch.c noticed two
 *      uncached reads in a row there) - the folder's next messages in
 *      listing order, whatever the policy;
 *   2. by the policy (--prefetch all or <N>d): messages of the folders
 *      the user opened last, newest first; then every folder, newest
 *      first.
 * A batch holds up to PF_BATCH messages and PF_BUDGET bytes of the
 * server's size estimates (one item larger than that goes alone).
 *
 * Header pages go first (sync_headers_first): until this run's first full
 * pass has gone through every folder, only read-ahead runs, one batch at
 * a time; while a reader waits for a folder's first sync, no new batch
 * starts.  On a server whose CPU is the limit, body calls would otherwise
 * delay every page of the folders being listed.
 *
 * Limits: prefetched bodies are committed only while they fit under
 * --cache-size and never evict anything (cache_body_commit_within), so
 * prefetch stops at the limit and keeps what it fetched; on-demand reads
 * still evict least-recently-used bodies as before.  On-demand reads jump
 * the queue (the pool serves them first).  Throttling shrinks the pool
 * (fetch.c) and the thread that saw it waits as long as the server asked;
 * network failures back off from 1 s doubling to 1 minute.  A body that
 * fails for another reason (too large, refused, unreadable answer) is
 * recorded with the reason (prefetch_fail) and tried again later; the
 * others go on.  Nothing is kept in memory that a restart needs: after
 * kill -9 the next start picks the messages that still have no body.
 */
#include "prefetch.h"
#include "backend/util.h"
#include "backend/http.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PF_THREADS_MAX 16
#define PF_BATCH_MAX 64
#define PF_BATCH 16                 /* messages per call (measured: see
				       docs/architecture.md) */
#define PF_BUDGET (8 << 20)         /* estimated bytes per call */
#define PF_HOT 8                    /* folders remembered as looked at */
#define PF_SKIP 512                 /* claimed messages to leave out */
#define PF_IDLE_MS 5000             /* look again this often when idle */
#define PF_RA_MS 30000              /* read-ahead ends without reads */
#define PF_LINE_MS 2000             /* foreground progress line period */
#define PF_COUNT_MS 10000           /* recount the messages this often */

struct prefetch {
	struct sync *s;
	struct cache *c;
	struct fetch_pool *pool;
	int days;                   /* -1 none, 0 all, else last N days */
	unsigned batch;             /* messages per call */
	pthread_t threads[PF_THREADS_MAX];
	unsigned n_threads;

	pthread_mutex_t pick_lock;  /* one thread picks at a time */
	pthread_mutex_t lock;       /* guards all below */
	pthread_cond_t cond;
	bool stop;
	unsigned kicks;
	uint64_t hot[PF_HOT];       /* most recent first */
	uint64_t ra_folder, ra_after;
	int64_t ra_until_ms;
	bool at_limit;              /* stopped at --cache-size */
	int64_t need;               /* smallest body refused at the limit:
				       no batch until it would fit */
	bool held;                  /* header pages first (pick says why) */
	bool idle;                  /* nothing left to fetch ... */
	unsigned active;            /* ... once no batch is under way */
	int64_t net_backoff_ms;
	/* this run (since the queue last ran empty) */
	int64_t run_start_ms, run_end_ms, run_fetched, run_bytes;
	int64_t fetched, failed;    /* since start */
	int64_t last_line_ms;
	bool announced;             /* the end of the run was printed */
	bool fail_rows;             /* prefetch_fail may have rows */
	/* the counts of the status line: counting 100,000 messages reads
	 * the whole table, so it is done at most every PF_COUNT_MS and the
	 * bodies fetched since are added */
	struct prefetch_counts pc;
	int64_t pc_ms, pc_fetched, pc_bytes;
	int64_t bytes;              /* body bytes fetched since start */
};

int prefetch_parse(const char *s, int *days)
{
	if (!strcmp(s, "all")) {
		*days = 0;
		return 0;
	}
	if (!strcmp(s, "none")) {
		*days = -1;
		return 0;
	}
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *s == '-' || *s == '+' || v < 1 ||
	    v > 36500 || strcmp(end, "d"))
		return -1;
	*days = (int)v;
	return 0;
}

static int64_t since_of(const struct prefetch *p)
{
	return p->days > 0 ? (int64_t)time(NULL) - (int64_t)p->days * 86400
			   : INT64_MIN;
}

/* Wait for a kick (or stop) at most ms; p->lock held. */
static void wait_locked(struct prefetch *p, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	unsigned kicks = p->kicks;
	while (!p->stop && p->kicks == kicks &&
	       pthread_cond_timedwait(&p->cond, &p->lock, &ts) != ETIMEDOUT)
		;
}

static void pause_ms(struct prefetch *p, int64_t ms)
{
	pthread_mutex_lock(&p->lock);
	int64_t end = now_ms() + ms;
	while (!p->stop && now_ms() < end)
		wait_locked(p, end - now_ms());
	pthread_mutex_unlock(&p->lock);
}

/* "10,005" */
static const char *count_text(int64_t v, char *buf, size_t len)
{
	char raw[32];
	snprintf(raw, sizeof(raw), "%lld", (long long)v);
	size_t n = strlen(raw), o = 0, lead = raw[0] == '-';
	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > lead && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = raw[i];
	}
	buf[o] = 0;
	return buf;
}

static void bytes_text(int64_t b, char *buf, size_t len)
{
	if (b >= 10LL << 30)
		snprintf(buf, len, "%.0f GB", (double)b / (1 << 30));
	else if (b >= 1LL << 30)
		snprintf(buf, len, "%.1f GB", (double)b / (1 << 30));
	else if (b >= 1 << 20)
		snprintf(buf, len, "%.0f MB", (double)b / (1 << 20));
	else
		snprintf(buf, len, "%.0f KB", (double)b / 1024);
}

/* "7,412 / 10,005 bodies, 212 MB, 180 msg/s, ETA 14 s" */
static void progress_text(struct prefetch *p, char *line, size_t len)
{
	struct prefetch_counts pc;
	pthread_mutex_lock(&p->lock);
	int64_t age = now_ms() - p->pc_ms;
	bool recount = !p->pc_ms || age >= PF_COUNT_MS || !p->pc.total ||
		       (p->idle && !p->active && age >= 500);
	int64_t fetched = p->fetched, bytes = p->bytes;
	/* "complete" is only ever said from a fresh count */
	if (!recount && p->pc.cached + fetched - p->pc_fetched >= p->pc.total)
		recount = true;
	pthread_mutex_unlock(&p->lock);
	if (recount) {
		cache_prefetch_counts(p->c, since_of(p), &pc);
		pthread_mutex_lock(&p->lock);
		p->pc = pc;
		p->pc_ms = now_ms();
		p->pc_fetched = fetched;
		p->pc_bytes = bytes;
		pthread_mutex_unlock(&p->lock);
	} else {
		pthread_mutex_lock(&p->lock);
		pc = p->pc;
		pc.cached += fetched - p->pc_fetched;
		pc.cached_bytes += bytes - p->pc_bytes;
		pthread_mutex_unlock(&p->lock);
		if (pc.cached > pc.total)
			pc.cached = pc.total;
	}
	char a[32], b[32], by[32];
	bytes_text(pc.cached_bytes, by, sizeof(by));
	int o = snprintf(line, len, "%s / %s bodies, %s",
			 count_text(pc.cached, a, sizeof(a)),
			 count_text(pc.total, b, sizeof(b)), by);
	if (o < 0 || (size_t)o >= len)
		return;
	pthread_mutex_lock(&p->lock);
	int64_t now = now_ms();
	int64_t end = p->idle && !p->active ? p->run_end_ms : now;
	double secs = (double)(end - p->run_start_ms) / 1000;
	double rate = p->run_fetched && secs > 0.2 ? p->run_fetched / secs : 0;
	bool idle = p->idle && !p->active;
	pthread_mutex_unlock(&p->lock);
	/* asked outside p->lock: it reads the cache */
	bool synced = p->days >= 0 && !pc.total && sync_synced_once(p->s);
	pthread_mutex_lock(&p->lock);
	if (p->days < 0)
		;   /* read-ahead only: no goal to measure against */
	else if (!pc.total && synced && p->days > 0)
		snprintf(line + o, len - (size_t)o,
			 ", complete (nothing received in the last %d days)", p->days);
	else if (!pc.total && synced)
		snprintf(line + o, len - (size_t)o, ", complete (no messages)");
	else if (!pc.total)
		snprintf(line + o, len - (size_t)o, ", waiting for the first sync");
	else if (pc.cached >= pc.total)
		snprintf(line + o, len - (size_t)o, ", complete");
	else if (p->held && !p->active)
		snprintf(line + o, len - (size_t)o,
			 ", waiting for the folders' headers to sync first");
	else if (p->at_limit)
		snprintf(line + o, len - (size_t)o,
			 ", stopped at the cache size limit (--cache-size)");
	else if (idle && p->days >= 0)
		snprintf(line + o, len - (size_t)o, ", %s not fetched yet",
			 count_text(pc.total - pc.cached, a, sizeof(a)));
	else if (rate > 0)
		snprintf(line + o, len - (size_t)o, ", %.0f msg/s, ETA %.0f s",
			 rate, (double)(pc.total - pc.cached) / rate);
	pthread_mutex_unlock(&p->lock);
}

/* The next batch, claimed in the pool; 0 when there is nothing to do. */
static size_t pick(struct prefetch *p, struct fetch_item *v,
		   struct prefetch_pick *picks)
{
	/* header pages go first (the server serves one call at a time
	 * when its CPU is the limit): nothing while a reader waits for a
	 * folder's first sync; until the first full pass has ended, only
	 * read-ahead, one batch at a time */
	bool reader_waits;
	bool headers = sync_headers_first(p->s, &reader_waits);
	pthread_mutex_lock(&p->lock);
	p->held = reader_waits || headers;
	bool none = reader_waits || (headers && p->active);
	pthread_mutex_unlock(&p->lock);
	if (none)
		return 0;

	uint64_t skip[PF_SKIP];
	size_t n_skip = fetch_inflight(p->pool, skip, PF_SKIP);
	struct prefetch_query q = { .since = since_of(p), .now = time(NULL) };
	size_t got = 0;

	pthread_mutex_lock(&p->lock);
	uint64_t ra_folder = now_ms() < p->ra_until_ms ? p->ra_folder : 0;
	uint64_t ra_after = p->ra_after;
	uint64_t hot[PF_HOT];
	memcpy(hot, p->hot, sizeof(hot));
	pthread_mutex_unlock(&p->lock);

	if (ra_folder) {
		struct prefetch_query rq = { .since = INT64_MIN, .now = q.now,
					     .folder = ra_folder,
					     .after = ra_after };
		got = cache_prefetch_pick(p->c, &rq, skip, n_skip, picks,
					  p->batch);
		pthread_mutex_lock(&p->lock);
		if (!got && p->ra_folder == ra_folder)
			p->ra_folder = 0;   /* read to the end of the folder */
		pthread_mutex_unlock(&p->lock);
	}
	bool from_ra = got > 0;
	for (size_t h = 0; !got && !headers && p->days >= 0 && h < PF_HOT &&
	     hot[h]; h++) {
		q.folder = hot[h];
		got = cache_prefetch_pick(p->c, &q, skip, n_skip, picks,
					  p->batch);
	}
	if (!got && !headers && p->days >= 0) {
		q.folder = 0;
		got = cache_prefetch_pick(p->c, &q, skip, n_skip, picks,
					  p->batch);
	}

	/* the byte budget, then the cache size limit */
	int64_t bytes = 0;
	size_t n = 0;
	for (; n < got; n++) {
		int64_t est = picks[n].size > 0 ? picks[n].size : 64 << 10;
		if (n && bytes + est > PF_BUDGET)
			break;
		bytes += est;
	}
	pthread_mutex_lock(&p->lock);
	int64_t need = p->need;
	pthread_mutex_unlock(&p->lock);
	int64_t first = n && picks[0].size > 0 ? picks[0].size : 0;
	bool room = !n || cache_body_room(p->c, first > need ? first : need);
	pthread_mutex_lock(&p->lock);
	if (room)
		p->need = 0;
	p->at_limit = !room;
	p->idle = !got && !headers;
	if (!room)
		n = 0;
	if (from_ra && n && p->ra_folder == ra_folder)
		p->ra_after = picks[n - 1].ino;
	for (size_t i = 0; i < n; i++) {
		v[i].ino = picks[i].ino;
		v[i].server_id = picks[i].server_id;
		v[i].shown = picks[i].size;
	}
	n = fetch_claim(p->pool, v, n);
	if (n)
		p->active++;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void account(struct prefetch *p, struct fetch_item *v, size_t n,
		    enum be_status st, const struct be_result *r)
{
	int64_t now = now_ms();
	int64_t ok = 0, bytes = 0, need = 0;
	bool full = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i].st == BE_OK && !v[i].err) {
			ok++;
			bytes += v[i].bytes;
			continue;
		}
		if (v[i].err == -ENOSPC) {
			if (!full || v[i].bytes < need)
				need = v[i].bytes;
			full = true;
			continue;
		}
		char reason[200];
		if (v[i].err)
			snprintf(reason, sizeof(reason), "cannot store it: %s",
				 strerror(-v[i].err));
		else if (v[i].st == BE_ITEM_GONE ||
			 be_status_transient(v[i].st) || v[i].st == BE_AUTH ||
			 v[i].st == BE_TLS)
			continue;   /* removed, or retried with the rest */
		else
			snprintf(reason, sizeof(reason), "%s",
				 v[i].msg[0] ? v[i].msg
					     : be_status_name(v[i].st));
		log_warn("cannot prefetch message %llu: %s",
			 (unsigned long long)v[i].ino, reason);
		cache_prefetch_failed(p->c, v[i].ino, reason, time(NULL));
		pthread_mutex_lock(&p->lock);
		p->failed++;
		p->fail_rows = true;
		pthread_mutex_unlock(&p->lock);
	}
	if (ok && p->fail_rows)
		for (size_t i = 0; i < n; i++)
			if (v[i].st == BE_OK && !v[i].err)
				cache_prefetch_succeeded(p->c, v[i].ino);
	(void)r;
	pthread_mutex_lock(&p->lock);
	if (full) {
		p->at_limit = true;
		p->need = need;
	}
	if (ok) {
		if (!p->run_fetched || p->announced ||
		    now - p->run_end_ms > 10000) {
			p->run_start_ms = now;
			p->run_fetched = p->run_bytes = 0;
			p->announced = false;
		}
		p->run_fetched += ok;
		p->run_bytes += bytes;
		p->fetched += ok;
		p->bytes += bytes;
		p->run_end_ms = now;
	}
	if (st == BE_OK || ok)
		p->net_backoff_ms = 0;
	pthread_mutex_unlock(&p->lock);
}

/* The foreground progress line, every PF_LINE_MS while fetching, and once
 * when a run ends. */
static void progress_line(struct prefetch *p, bool idle)
{
	if (!sync_config(p->s)->progress)
		return;
	pthread_mutex_lock(&p->lock);
	int64_t now = now_ms();
	idle = idle && !p->active;
	bool due = p->run_fetched && !p->announced &&
		   (idle || now - p->last_line_ms >= PF_LINE_MS);
	if (due) {
		p->last_line_ms = now;
		p->announced = idle;
	}
	pthread_mutex_unlock(&p->lock);
	if (!due)
		return;
	char line[256];
	progress_text(p, line, sizeof(line));
	sync_progress(p->s, "prefetch: %s", line);
}

static bool abandon_if_stopping(void *arg)
{
	struct prefetch *p = arg;
	pthread_mutex_lock(&p->lock);
	bool stop = p->stop;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

static void *worker(void *arg)
{
	struct prefetch *p = arg;
	struct fetch_item v[PF_BATCH_MAX];
	struct prefetch_pick picks[PF_BATCH_MAX];
	memset(picks, 0, sizeof(picks));
	/* a request the server holds must not hold up an unmount */
	http_thread_abandon(abandon_if_stopping, p, "exchangefs is stopping");

	for (;;) {
		pthread_mutex_lock(&p->lock);
		bool stop = p->stop;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		memset(v, 0, sizeof(v));
		pthread_mutex_lock(&p->pick_lock);
		size_t n = pick(p, v, picks);
		pthread_mutex_unlock(&p->pick_lock);
		if (!n) {
			cache_prefetch_picks_free(picks, PF_BATCH_MAX);
			progress_line(p, true);
			pthread_mutex_lock(&p->lock);
			wait_locked(p, PF_IDLE_MS);
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		struct be_result r;
		enum be_status st = fetch_batch(p->pool, v, n, true, &r);
		/* failures go to their table before the bodies leave the
		 * in-flight set: another worker would pick them at once */
		account(p, v, n, st, &r);
		fetch_release(p->pool, v, n);
		cache_prefetch_picks_free(picks, PF_BATCH_MAX);
		pthread_mutex_lock(&p->lock);
		p->active--;
		pthread_mutex_unlock(&p->lock);
		progress_line(p, false);

		bool busy = st == BE_THROTTLED;
		for (size_t i = 0; i < n; i++)
			busy |= v[i].st == BE_THROTTLED;
		if (busy || (st == BE_NETWORK && r.retry_after_ms)) {
			int64_t ms = r.retry_after_ms ? r.retry_after_ms : 1000;
			pause_ms(p, ms > 60000 ? 60000 : ms);
		} else if (st != BE_OK) {
			pthread_mutex_lock(&p->lock);
			p->net_backoff_ms = p->net_backoff_ms
				? (p->net_backoff_ms * 2 > 60000
				   ? 60000 : p->net_backoff_ms * 2) : 1000;
			int64_t ms = p->net_backoff_ms;
			pthread_mutex_unlock(&p->lock);
			log_dbg(LC_SYNC, "prefetch: %s; next try in %lld ms",
				r.msg, (long long)ms);
			pause_ms(p, ms);
		}
	}
	return NULL;
}

struct prefetch *prefetch_start(struct sync *s)
{
	struct prefetch *p = xcalloc(1, sizeof(*p));
	p->s = s;
	p->c = sync_cache(s);
	p->pool = sync_pool(s);
	p->days = sync_config(s)->prefetch_days;
	p->batch = PF_BATCH;
	const char *env = getenv("EXCHANGEFS_PREFETCH_BATCH");  /* benchmarks */
	if (env && atoi(env) >= 1 && atoi(env) <= PF_BATCH_MAX)
		p->batch = (unsigned)atoi(env);
	if (cache_prefetch_init(p->c))
		log_warn("prefetch: cannot prepare the cache index; going on");
	p->fail_rows = cache_prefetch_failed_count(p->c) > 0;
	pthread_mutex_init(&p->pick_lock, NULL);
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);
	unsigned want = sync_config(s)->fetch_sessions;
	if (want > PF_THREADS_MAX)
		want = PF_THREADS_MAX;
	for (unsigned i = 0; i < want; i++) {
		if (thread_start(&p->threads[p->n_threads], "xfs-prefetch",
				 worker, p))
			break;
		p->n_threads++;
	}
	if (!p->n_threads) {
		prefetch_stop(p);
		return NULL;
	}
	return p;
}

void prefetch_stop(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->pick_lock);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

void prefetch_kick(struct prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->kicks++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void prefetch_looked_at(struct prefetch *p, uint64_t folder)
{
	if (!p || p->days < 0)
		return;
	pthread_mutex_lock(&p->lock);
	size_t i;
	for (i = 0; i < PF_HOT - 1 && p->hot[i] != folder; i++)
		;
	memmove(p->hot + 1, p->hot, i * sizeof(*p->hot));
	p->hot[0] = folder;
	p->kicks++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void prefetch_read_ahead(struct prefetch *p, uint64_t folder, uint64_t after)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->ra_folder != folder || p->ra_after < after) {
		p->ra_folder = folder;
		p->ra_after = after;
	}
	p->ra_until_ms = now_ms() + PF_RA_MS;
	p->kicks++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void prefetch_status(struct prefetch *p, struct buf *out)
{
	if (!p)
		return;
	if (p->days < 0)
		buf_puts(out, "prefetch policy: none (bodies fetched when read, "
			 "with read-ahead)\n");
	else if (!p->days)
		buf_puts(out, "prefetch policy: all (newest first)\n");
	else
		buf_printf(out, "prefetch policy: %dd (messages received in the "
			   "last %d days, newest first)\n", p->days, p->days);
	char line[256];
	progress_text(p, line, sizeof(line));
	buf_printf(out, "prefetch: %s\n", line);
	unsigned limit, max, thr;
	fetch_pool_info(p->pool, &limit, &max, &thr);
	buf_printf(out, "prefetch connections: %u of %u%s\n", limit, max,
		   limit < max ? " (server throttling)" : "");
	int64_t failed = cache_prefetch_failed_count(p->c);
	if (failed) {
		buf_printf(out, "prefetch errors: %lld (retried later)\n",
			   (long long)failed);
		cache_prefetch_failures(p->c, out, 20);
	} else {
		buf_puts(out, "prefetch errors: none\n");
	}
}
