/*
 * watch.h - the watcher thread: keeps a notification subscription open on
 * the server (backend watch(): push, else pull) and turns its events into
 * work for the sync engine - the folders named are synced at once, the
 * folder tree when it changed, everything after a new subscription.  The
 * sync engine's pages, not the events, decide what changed.
 */
#ifndef EXCHANGEFS_WATCH_H
#define EXCHANGEFS_WATCH_H

#include <stdbool.h>

#include "backend/util.h"
#include "cache/sync.h"

struct watcher;

/* Start watching with a session of its own; NULL if the backend has no
 * notifications (the sync engine then polls) or the thread cannot start. */
struct watcher *watcher_start(struct sync *s);
/* Stop (within about a second) and free; NULL is fine. */
void watcher_stop(struct watcher *w);
/* The "notifications:" line of the status file (w may be NULL; enabled
 * says whether notifications were asked for). */
void watcher_status(struct watcher *w, bool enabled, struct buf *out);

#endif
