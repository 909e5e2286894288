/*
 * handles.c - open files by number, not by pointer.  fi->fh carries a
 * handle id; every use looks it up under a lock and pins it, so a RELEASE
 * that arrives while a READ of the same file is still being answered never
 * closes an fd under that READ (the close happens when
 * the last user unpins it).  Ids carry a generation, so a stale id never
 * finds a reused slot.
 */
#include "fs.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle **slots;   /* protected by lock */
static uint32_t n_slots;        /* protected by lock */
static uint32_t generation;     /* protected by lock */

static void handle_free(struct handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

uint64_t handle_new(int fd)
{
	struct handle *h = xcalloc(1, sizeof(*h));
	h->fd = fd;
	pthread_mutex_lock(&lock);
	uint32_t i;
	for (i = 0; i < n_slots && slots[i]; i++)
		;
	if (i == n_slots) {
		uint32_t n = n_slots ? n_slots * 2 : 64;
		slots = xrealloc(slots, n * sizeof(*slots));
		for (uint32_t j = n_slots; j < n; j++)
			slots[j] = NULL;
		n_slots = n;
	}
	h->id = ((uint64_t)++generation << 32) | i;
	slots[i] = h;
	pthread_mutex_unlock(&lock);
	return h->id;
}

struct handle *handle_get(uint64_t id)
{
	uint32_t i = (uint32_t)id;
	struct handle *h = NULL;
	pthread_mutex_lock(&lock);
	if (i < n_slots && slots[i] && slots[i]->id == id) {
		h = slots[i];
		h->users++;
	}
	pthread_mutex_unlock(&lock);
	return h;
}

void handle_put(struct handle *h)
{
	pthread_mutex_lock(&lock);
	bool last = --h->users == 0 && h->released;
	pthread_mutex_unlock(&lock);
	if (last)
		handle_free(h);
}

void handle_release(uint64_t id)
{
	uint32_t i = (uint32_t)id;
	struct handle *h = NULL;
	pthread_mutex_lock(&lock);
	if (i < n_slots && slots[i] && slots[i]->id == id) {
		h = slots[i];
		slots[i] = NULL;
		h->released = true;
		if (h->users)
			h = NULL;  /* the last user frees it */
	}
	pthread_mutex_unlock(&lock);
	if (h)
		handle_free(h);
}
