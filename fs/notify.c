/*
 * notify.c - keeps the kernel's caches true to the cache after the sync
 * engine commits a change: names that appeared or went away (positive and
 * negative dentries), attributes that changed, directories whose listing
 * changed.  Runs in the sync thread (or a fetching worker), never inside
 * a handler of a related request (see fuse_lowlevel.h on deadlocks).
 *
 * Turning server changes into inotify events ("reflection") builds on this
 * and comes with the notifications work.
 */
#include "fs.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

static void inval_entry(struct xfs *fs, uint64_t parent, const char *name)
{
	if (!name || !*name)
		return;
	int rc = fuse_lowlevel_notify_inval_entry(fs->se, parent, name,
						  strlen(name));
	if (rc && rc != -ENOENT)
		log_dbg(LC_FS, "inval_entry(%llu, %s): %s",
			(unsigned long long)parent, name, strerror(-rc));
}

static void inval_attr(struct xfs *fs, uint64_t ino)
{
	int rc = fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	if (rc && rc != -ENOENT)
		log_dbg(LC_FS, "inval_inode(%llu): %s", (unsigned long long)ino,
			strerror(-rc));
}

void notify_changes(void *arg, const struct cache_changes *ch)
{
	struct xfs *fs = arg;
	if (!fs->kernel_ready)
		return;
	uint64_t last_parent = 0;
	for (size_t i = 0; i < ch->n; i++) {
		const struct cache_change *c = &ch->v[i];
		switch (c->what) {
		case CC_NEW:
		case CC_GONE:
			inval_entry(fs, c->parent, c->name);
			if (c->what == CC_GONE)
				inval_attr(fs, c->ino);
			break;
		case CC_ATTR:
			inval_attr(fs, c->ino);
			break;
		case CC_RENAMED:
			inval_entry(fs, c->parent, c->name);
			inval_entry(fs, c->new_parent, c->new_name);
			inval_attr(fs, c->new_parent);
			break;
		}
		/* the parent's mtime and link count: once per run of changes
		 * in the same directory */
		if (c->parent && c->parent != last_parent) {
			inval_attr(fs, c->parent);
			last_parent = c->parent;
		}
	}
}

/* ---- changes made by our own handlers: told to the kernel later ----
 * A handler must not notify about the directory it works in (the kernel
 * holds its lock until we reply), so these go through a queue and a
 * thread of their own. */

static pthread_mutex_t later_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t later_cond = PTHREAD_COND_INITIALIZER;
static struct cache_changes later;
static bool later_stop, later_running;
static pthread_t later_thread;

static void *later_main(void *arg)
{
	struct xfs *fs = arg;
	pthread_mutex_lock(&later_lock);
	for (;;) {
		while (!later.n && !later_stop)
			pthread_cond_wait(&later_cond, &later_lock);
		if (!later.n && later_stop)
			break;
		struct cache_changes mine = later;
		memset(&later, 0, sizeof(later));
		pthread_mutex_unlock(&later_lock);
		notify_changes(fs, &mine);
		cache_changes_free(&mine);
		pthread_mutex_lock(&later_lock);
	}
	pthread_mutex_unlock(&later_lock);
	return NULL;
}

void notify_start(struct xfs *fs)
{
	later_stop = false;
	if (pthread_create(&later_thread, NULL, later_main, fs) == 0)
		later_running = true;
}

void notify_stop(void)
{
	if (!later_running)
		return;
	pthread_mutex_lock(&later_lock);
	later_stop = true;
	pthread_cond_broadcast(&later_cond);
	pthread_mutex_unlock(&later_lock);
	pthread_join(later_thread, NULL);
	later_running = false;
	cache_changes_free(&later);
}

void notify_later(struct cache_changes *ch)
{
	if (!ch->n) {
		cache_changes_free(ch);
		return;
	}
	pthread_mutex_lock(&later_lock);
	if (!later_running) {
		pthread_mutex_unlock(&later_lock);
		cache_changes_free(ch);
		return;
	}
	for (size_t i = 0; i < ch->n; i++) {
		const struct cache_change *c = &ch->v[i];
		cache_change_add(&later, c->what, c->ino, c->parent, c->name,
				 c->new_parent, c->new_name);
	}
	pthread_cond_broadcast(&later_cond);
	pthread_mutex_unlock(&later_lock);
	cache_changes_free(ch);
}
