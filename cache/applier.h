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
