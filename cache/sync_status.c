/*
 * sync_status.c - the text of .exchangefs/status: connection, last complete
 * sync, what is being synced, the last error, what the server cannot do
 * (its backend's caps), notifications (watch.c),
 * queued changes (applier.c), the file system's own lines (hooks), cache
 * use and per-folder progress.
 */
#include "sync_internal.h"
#include "applier.h"
#include "prefetch.h"
#include "watch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "Inbox/Projects/2026": the path of folders[i] on the mount. */
static char *folder_path(const struct node *folders, size_t n, size_t i)
{
	char *path = xstrdup(folders[i].name);
	uint64_t parent = folders[i].parent;
	for (int depth = 0; parent != CACHE_ROOT_INO && depth < 64; depth++) {
		size_t j;
		for (j = 0; j < n && folders[j].ino != parent; j++)
			;
		if (j == n)
			break;
		char *longer = xasprintf("%s/%s", folders[j].name, path);
		free(path);
		path = longer;
		parent = folders[j].parent;
	}
	return path;
}

void sync_note_failure(struct sync *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&s->lock);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	s->last_error_at = time(NULL);
	pthread_mutex_unlock(&s->lock);
	va_end(ap);
}

void sync_status(struct sync *s, struct buf *out)
{
	static const char *const conn_names[] = {
		[CONN_NEW] = "connecting", [CONN_ONLINE] = "online",
		[CONN_OFFLINE] = "offline (retrying)",
		[CONN_AUTH_FAILED] = "sign-in refused (retrying)",
	};
	struct cache_stats cs;
	cache_stats(s->cache, &cs);
	pthread_mutex_lock(&s->lock);
	buf_printf(out, "server: %s\n", s->cfg.be.url);
	buf_printf(out, "protocol: %s\n", s->cfg.ops->name);
	buf_printf(out, "connection: %s\n", conn_names[s->conn]);
	if (s->last_sync_at) {
		struct tm tm;
		char when[64];
		localtime_r(&s->last_sync_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		buf_printf(out, "last complete sync: %s\n", when);
	} else {
		buf_printf(out, "last complete sync: never (first sync %s)\n",
			   s->conn == CONN_ONLINE ? "in progress" : "pending");
	}
	if (s->current[0])
		buf_printf(out, "syncing: %s (%lld changes so far)\n", s->current,
			   (long long)s->current_done);
	if (s->last_error[0]) {
		struct tm tm;
		char when[64];
		localtime_r(&s->last_error_at, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		buf_printf(out, "last error: %s %s\n", when, s->last_error);
	} else {
		buf_puts(out, "last error: none\n");
	}
	int64_t now = now_ms();
	if (s->server_wait_until > now)
		buf_printf(out, "server asked to wait %lld s (throttled) %s; readers give up after --timeout (%lld s)\n",
			   (long long)((s->server_wait_until - now + 999) / 1000),
			   s->server_wait_what,
			   (long long)(sync_reader_patience_ms(s) / 1000));
	buf_printf(out, "sync interval: %u s\n", s->cfg.interval_s);
	pthread_mutex_unlock(&s->lock);
	struct be_caps caps;
	if (sync_server_caps(s, &caps)) {
		char *missing = be_caps_missing(caps.can);
		buf_printf(out, "server cannot: %s\n", missing);
		free(missing);
	} else {
		buf_puts(out, "server cannot: not known yet (never connected)\n");
	}
	watcher_status(s->watcher, s->cfg.notify, out);
	prefetch_status(s->prefetch, out);
	if (s->hooks.status)
		s->hooks.status(s->hooks.arg, out);
	buf_printf(out, "folders: %lld\nmessages: %lld\n", (long long)cs.folders,
		   (long long)cs.items);
	if (s->applier)
		applier_status(s->applier, out);
	buf_printf(out, "cache: %s\n", cache_dir(s->cache));
	buf_printf(out, "bodies cached: %lld (%lld bytes", (long long)cs.bodies,
		   (long long)cs.body_bytes);
	if (cs.body_limit)
		buf_printf(out, " of %lld allowed", (long long)cs.body_limit);
	buf_puts(out, ")\nfolder progress (messages synced / server count when the folder list was read):\n");
	struct node *folders;
	size_t n;
	cache_folders(s->cache, &folders, &n);
	for (size_t i = 0; i < n; i++) {
		int64_t have = cache_folder_count(s->cache, folders[i].ino);
		char *path = folder_path(folders, n, i);
		/* padded by display width: "%-40s" counts bytes, and a
		 * name with Ü or ∕ would push its figures left */
		size_t w = utf8_width(path);
		buf_printf(out, "  %s%*s %lld / %lld%s\n", path,
			   w < 40 ? (int)(40 - w) : 0, "", (long long)have,
			   (long long)folders[i].total,
			   folders[i].synced ? "" : " (first sync pending)");
		free(path);
	}
	cache_nodes_free(folders, n);
}
