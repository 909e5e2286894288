/*
 * test_journal_fsync.c - what a user writes is made durable (fsync) without
 * holding the cache's lock: a large message flushed to a slow disk must not
 * stop every other file system call (lookups, listings, reads of cached
 * mail), which all take that lock.  fsync is interposed: the flush of a
 * message being committed waits until the test lets it go, and the test
 * requires that the cache answers meanwhile.
 */
#include "engine_harness.h"
#include "cache/journal.h"
#include "backend/util.h"
#include "check.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool hold_staging;     /* the next fsync of a staged message waits */
static bool holding, released;

/* Whether fd is a message being written (cache/local/<ino>.w). */
static bool is_staging(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 2)
		return false;
	path[n] = 0;
	return strstr(path, "/local/") && !strcmp(path + n - 2, ".w");
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	pthread_mutex_lock(&gate_lock);
	if (hold_staging && is_staging(fd)) {
		hold_staging = false;
		holding = true;
		pthread_cond_broadcast(&gate_cond);
		while (!released)
			pthread_cond_wait(&gate_cond, &gate_lock);
		holding = false;
	}
	pthread_mutex_unlock(&gate_lock);
	return real(fd);
}

struct commit {
	struct engine *e;
	uint64_t folder;
	int rc;
	uint64_t ino;
};

static void *commit_thread(void *arg)
{
	struct commit *k = arg;
	k->rc = engine_write_file(k->e, k->folder, "big.eml", "big", &k->ino);
	return NULL;
}

struct lookup {
	struct engine *e;
	uint64_t parent;
	pthread_mutex_t lock;
	bool done;
	uint64_t ino;
};

static void *lookup_thread(void *arg)
{
	struct lookup *l = arg;
	uint64_t ino = engine_ino(l->e, l->parent, "Work");
	pthread_mutex_lock(&l->lock);
	l->ino = ino;
	l->done = true;
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static bool lookup_done(struct lookup *l)
{
	pthread_mutex_lock(&l->lock);
	bool d = l->done;
	pthread_mutex_unlock(&l->lock);
	return d;
}

static void test_flush_outside_the_lock(void)
{
	struct sb_model *m = sb_new();
	const char *work = sb_add_folder(m, "root", "Work");
	char *dir = engine_tmpdir("fsync");
	struct engine e;
	if (!engine_start(&e, dir, m)) {
		CHECK(!"engine starts");
		goto out;
	}
	CHECK(sync_pass_now(e.s) == BE_OK);
	uint64_t folder = engine_ino_of_sid(&e, work);
	CHECK(folder != 0);

	pthread_mutex_lock(&gate_lock);
	hold_staging = true;
	pthread_mutex_unlock(&gate_lock);
	struct commit k = { .e = &e, .folder = folder };
	pthread_t tc, tl;
	CHECK(pthread_create(&tc, NULL, commit_thread, &k) == 0);
	/* the commit is flushing the message */
	pthread_mutex_lock(&gate_lock);
	while (!holding)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);

	/* meanwhile a lookup, as a FUSE call makes: answered at once */
	struct lookup l = { .e = &e, .parent = CACHE_ROOT_INO,
			    .lock = PTHREAD_MUTEX_INITIALIZER };
	CHECK(pthread_create(&tl, NULL, lookup_thread, &l) == 0);
	for (int i = 0; i < 20 * 20 && !lookup_done(&l); i++)
		usleep(50 * 1000);
	bool quick = lookup_done(&l);
	if (!quick)
		printf("  a lookup waited for the flush of a message being "
		       "written\n");
	CHECK(quick);

	pthread_mutex_lock(&gate_lock);
	released = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	pthread_join(tc, NULL);
	pthread_join(tl, NULL);
	CHECK(k.rc == 0 && k.ino != 0);
	CHECK(l.ino == folder);
	engine_stop(&e);
out:
	sb_free(m);
	free(dir);
}

int main(void)
{
	test_flush_outside_the_lock();
	engine_cleanup();
	return check_done("test_journal_fsync");
}
