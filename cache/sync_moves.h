/*
 * sync_moves.h - moves matched across two folders' pages (sync_moves.c),
 * for sync_apply.c.  Every function runs with the cache's lock held,
 * inside the page's transaction.
 */
#ifndef EXCHANGEFS_SYNC_MOVES_H
#define EXCHANGEFS_SYNC_MOVES_H

#include "db_internal.h"

enum { MOVE_LEAVING = 1, MOVE_ARRIVING = 2 };

/* 0, MOVE_LEAVING or MOVE_ARRIVING: whether ino is held, and how. */
int moves_held(struct cache *c, uint64_t ino);
/* A held node's folder (arriving) or old place (leaving). */
uint64_t moves_held_parent(struct cache *c, uint64_t ino);
/* Take a node the server deleted out of the tree for a while (its count
 * is the caller's).  0 held, 1 no room (delete it now), or -errno. */
int moves_hold_leaving(struct cache *c, const struct node *old);
/* Put a held leaving node back where it was (counted there again);
 * old->parent and old->name become that place. */
int moves_unhold_leaving(struct cache *c, struct node *old);
/* Whether one more node can be held. */
bool moves_room(struct cache *c);
/* Hold a node just inserted for folder (server id folder_sid) out of the
 * tree (not counted). */
int moves_hold_arriving(struct cache *c, uint64_t ino, uint64_t folder,
			const char *folder_sid);
/* A held node (arriving or leaving) with this identity, 0 if none;
 * *folder (if not NULL) is its folder (arriving) or old place (leaving). */
uint64_t moves_match(struct cache *c, bool arriving, const char *mid,
		     int64_t received, int64_t size, uint64_t *folder);
/* Whether a message with this identity is in a folder other than folder. */
bool moves_twin_elsewhere(struct cache *c, uint64_t folder, const char *mid,
			  int64_t received, int64_t size);
/* Link a held arriving node into its folder now (a CC_NEW). */
int moves_link_arriving(struct cache *c, uint64_t ino,
			struct cache_changes *ch);
/* Forget that ino is held (its row went some other way). */
void moves_forget(struct cache *c, uint64_t ino);
/* Settle what is held past its time. */
int moves_settle(struct cache *c, struct cache_changes *ch);

#endif
