/*
 * applier.h - the thread that sends the journal of local changes to the
 * server (see journal.h and applier.c).
 */
#ifndef EXCHANGEFS_APPLIER_H
#define EXCHANGEFS_APPLIER_H

#include "backend/util.h"
#include "cache/sync.h"

struct applier;

/* Start sending the journal of s's cache through s's backend; NULL if the
 * thread cannot be started. */
struct applier *applier_start(struct sync *s);
/* For tests (tests/unit/test_engine*.c): an applier without its thread,
 * whose rows applier_step() sends in the calling thread, due or not;
 * applier_stop() frees it.  applier_step returns 1 if a row was handled
 * (done, failed or put off), 0 if the journal has nothing to send. */
struct applier *applier_new(struct sync *s);
int applier_step(struct applier *a);
/* A row was queued: look now. */
void applier_kick(struct applier *a);
/* The server answers again (the sync engine got through after failures):
 * send what waits for a retry now rather than after its back-off. */
void applier_retry_now(struct applier *a);
/* Stop (finishing the row in flight) and free. */
void applier_stop(struct applier *a);
/* Lines for the status file: queued changes, oldest, failures. */
void applier_status(struct applier *a, struct buf *out);

#endif
