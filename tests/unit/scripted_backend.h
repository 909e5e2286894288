/*
 * scripted_backend.h - a struct backend_ops over an in-memory mailbox, for
 * the engine's unit tests (tests/unit/test_engine_*.c): folders, items with
 * their MIME, one change counter, tombstones, and sync states that are page
 * cursors ("<epoch>:<seq>", pages of page_size changes).  Faults are
 * scripted per operation and call number (network error, throttled, sync
 * state invalid, refused, conflict, item gone; a write may be carried out
 * and its answer lost), and every call is recorded for assertions.  A hook
 * at a chosen call lets a test take a snapshot of the cache and the model
 * there: a "crash" at that step.
 *
 * Single-threaded: the tests drive the engine from one thread
 * (sync_pass_now, applier_step).  All memory belongs to the model.
 */
#ifndef EXCHANGEFS_SCRIPTED_BACKEND_H
#define EXCHANGEFS_SCRIPTED_BACKEND_H

#include "backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern const struct backend_ops scripted_backend;

/* The operations, for faults and the call record. */
enum sb_op {
	SB_OPEN, SB_SYNC_FOLDERS, SB_SYNC_ITEMS, SB_FETCH, SB_SPECIAL,
	SB_CREATE, SB_FIND_TOKEN, SB_REPLACE, SB_PROPS, SB_GET_CK, SB_DELETE,
	SB_MOVE, SB_MKDIR, SB_RENAME_DIR, SB_MOVE_DIR, SB_RMDIR, SB_OP_N
};
const char *sb_op_name(enum sb_op op);
/* Whether an operation changes the mailbox (a write). */
bool sb_op_writes(enum sb_op op);

struct sb_folder {
	char *id, *parent, *name, *cls;
	bool gone;
	int64_t seq;            /* change counter at its last change */
};

struct sb_item {
	char *id, *folder;
	char *mime;             /* the exact bytes */
	size_t len;
	char *subject, *token, *categories;
	int64_t received;
	int is_read, flag, is_draft;
	unsigned ck;            /* change key "ck<n>", bumped by every change */
	bool gone;              /* a tombstone in folder */
	int64_t seq;            /* change counter at its last change */
	int64_t created;        /* ... and at its creation */
};

/* A fault: the n-th call (1-based; 0 = every call) of op whose first
 * argument (folder or item id; NULL = any) is arg answers st.  With done,
 * a write is carried out first (the answer is lost on the way back). */
struct sb_fault {
	enum sb_op op;
	const char *arg;
	unsigned nth;
	enum be_status st;
	bool done;
	unsigned seen;          /* matching calls so far */
};

/* One recorded call. */
struct sb_call {
	enum sb_op op;
	char arg[160];          /* folder or item id, or "" */
	char state[64];         /* sync calls: the state given */
	enum be_status st;      /* what it answered */
};

#define SB_MAX_FAULTS 16

struct sb_model {
	struct sb_folder *folders;
	size_t n_folders;
	struct sb_item *items;
	size_t n_items;
	int64_t seq;            /* change counter */
	unsigned epoch;         /* states of another epoch are refused */
	unsigned hier_epoch;    /* the same for the folder hierarchy */
	unsigned page_size;     /* changes per page (default 2) */
	unsigned next_id;
	unsigned sent;          /* messages sent (BE_SEND) */
	char *special[BE_SPECIAL_N];

	struct sb_fault faults[SB_MAX_FAULTS];
	size_t n_faults;
	struct sb_call *calls;
	size_t n_calls;

	/* Called at the n-th call of op (1-based) whose first argument is
	 * hook_on (NULL: any) - before it does anything (after = false) or
	 * after a write was carried out and before it answers (after =
	 * true).  A test takes its "crash" snapshot there. */
	enum sb_op hook_op;
	const char *hook_on;
	unsigned hook_nth;      /* 0: no hook */
	bool hook_after;
	void (*hook)(void *arg);
	void *hook_arg;
	unsigned hook_seen;     /* matching calls so far */
	bool hook_due;          /* the call in progress is the one */
	unsigned op_count[SB_OP_N];
};

/* A model with Inbox, Drafts, Sent Items, Deleted Items, Outbox under the
 * root "root". */
struct sb_model *sb_new(void);
void sb_free(struct sb_model *m);
/* A deep copy (faults, calls and hook left out): the server as it was at a
 * snapshot. */
struct sb_model *sb_clone(const struct sb_model *m);
/* The model open() connects to. */
void sb_use(struct sb_model *m);

/* Server-side changes, as another client would make them. */
const char *sb_add_folder(struct sb_model *m, const char *parent,
			  const char *name);
const char *sb_add_item(struct sb_model *m, const char *folder,
			const char *subject, int64_t received);
struct sb_item *sb_item(struct sb_model *m, const char *id);
struct sb_folder *sb_folder(struct sb_model *m, const char *id);
struct sb_folder *sb_folder_named(struct sb_model *m, const char *name);
void sb_touch_item(struct sb_model *m, struct sb_item *it); /* new ck */
void sb_remove_item(struct sb_model *m, const char *id);
void sb_remove_folder(struct sb_model *m, const char *id);
void sb_rename_folder(struct sb_model *m, const char *id, const char *name);
/* Live items in folder (count), or carrying token anywhere. */
size_t sb_count_items(struct sb_model *m, const char *folder);
size_t sb_count_token(struct sb_model *m, const char *token);

void sb_fault(struct sb_model *m, enum sb_op op, const char *arg,
	      unsigned nth, enum be_status st, bool done);
void sb_clear_faults(struct sb_model *m);
/* Calls of op recorded (with arg, if not NULL). */
size_t sb_calls(const struct sb_model *m, enum sb_op op, const char *arg);
void sb_clear_calls(struct sb_model *m);

/* The mailbox as text, one line per live folder and item, in a stable
 * order (owned). */
char *sb_dump(const struct sb_model *m);

#endif
