/*
 * engine_harness.h - what the engine's unit tests (test_engine_*.c) share:
 * an engine (cache, sync, applier without threads) over the scripted
 * backend, driven from the test's thread; the file system's side of local
 * changes as fs/write.c makes them; a text dump of the cache for comparing
 * final states; and copies of the cache directory (a "crash" snapshot).
 */
#ifndef EXCHANGEFS_ENGINE_HARNESS_H
#define EXCHANGEFS_ENGINE_HARNESS_H

#include "scripted_backend.h"
#include "cache/cache.h"
#include "cache/sync.h"

#include <stdbool.h>
#include <stdint.h>

struct engine {
	char *dir;               /* owned: the cache directory */
	struct sb_model *m;      /* borrowed: the server */
	struct cache *c;
	struct sync *s;
	struct applier *a;
};

/* Start an engine on dir (made if missing) against m as the daemon does:
 * open the cache, recover the journal, sign in and read the folder list.
 * false (with a line printed) on failure. */
bool engine_start(struct engine *e, const char *dir, struct sb_model *m);
/* The ops engine_start() uses (NULL: scripted_backend): a copy of it with
 * an operation left out plays a backend that lacks it. */
extern const struct backend_ops *engine_ops;
/* Stop it (the cache is closed; the directory stays). */
void engine_stop(struct engine *e);
/* Send every row of the journal that can go (at most 50 steps). */
void engine_apply(struct engine *e);
/* The applier then a full pass, twice: what a running daemon reaches. */
void engine_settle(struct engine *e);

/* The ino of name under parent, or 0. */
uint64_t engine_ino(struct engine *e, uint64_t parent, const char *name);
/* The ino of the node with server id sid, or 0. */
uint64_t engine_ino_of_sid(struct engine *e, const char *sid);

/* The file system's side: a new .eml written and closed in folder (0 or
 * -errno); *ino gets its inode. */
int engine_write_file(struct engine *e, uint64_t folder, const char *name,
		      const char *subject, uint64_t *ino);
/* New content written over an existing file (a draft edited here). */
int engine_rewrite_file(struct engine *e, uint64_t ino, const char *subject);

/* The cache as text: every node (ino, parent, kind, name, server id,
 * read, flag, categories, draft, pending bits, local kind, has content,
 * has error) and every journal row (op, ino, folder, state).  Owned. */
char *engine_dump(struct engine *e);
/* Journal rows not done (queued, unsure, sending or failed). */
int engine_rows(struct engine *e);

/* Copy a cache directory as a crash would leave it on disk (the
 * database, its write-ahead log, bodies and content files). */
void engine_copy_dir(const char *from, const char *to);
/* A fresh directory under the test's base (owned). */
char *engine_tmpdir(const char *tag);
/* Remove every directory engine_tmpdir() made. */
void engine_cleanup(void);
/* Print both dumps when they differ; true if equal. */
bool engine_same(const char *what, const char *a, const char *b);

#endif
