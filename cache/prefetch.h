/*
 * prefetch.h - the body prefetcher (cache/prefetch.c): background threads
 * that fetch message bodies before anyone reads them, by the --prefetch
 * policy (none, all, the last N days), newest first, the folders the user
 * looks at first, in batches through the fetch pool (cache/fetch.c), never
 * beyond --cache-size; and read-ahead for a reader going through a folder.
 * Every function accepts NULL (no prefetcher).
 */
#ifndef EXCHANGEFS_PREFETCH_H
#define EXCHANGEFS_PREFETCH_H

#include <stdint.h>

#include "sync.h"

struct prefetch;

/* Start the threads (one per fetch pool session); NULL if none could. */
struct prefetch *prefetch_start(struct sync *s);
void prefetch_stop(struct prefetch *p);
/* New messages may be there (a sync page was applied). */
void prefetch_kick(struct prefetch *p);
/* The user opened this folder: its bodies go first. */
void prefetch_looked_at(struct prefetch *p, uint64_t folder);
/* A reader goes through folder in listing order and the reader's own
 * call fetches up to ino after: fetch on from there (whatever the policy). */
void prefetch_read_ahead(struct prefetch *p, uint64_t folder, uint64_t after);
/* The status lines ("prefetch: 7,412 / 10,005 bodies, ..."). */
void prefetch_status(struct prefetch *p, struct buf *out);

/* "all", "none", "30d" -> days (0 all, -1 none); -1 return on bad text. */
int prefetch_parse(const char *s, int *days);

#endif
