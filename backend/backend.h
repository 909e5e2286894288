/*
 * backend.h - the interface every mailbox protocol fills (EWS and ActiveSync
 * now; MAPI/HTTP later).  The core (cache/, fs/) speaks only this interface.
 *
 * A backend is a table of named function pointers (struct backend_ops), one
 * per protocol folder: backend/ews/, backend/eas/, backend/mapi/.
 *
 * The item model, in four parts:
 *
 * 1. An account (struct be_account, opaque) is what every session of one
 *    mount shares, above its connections: the protocol's device-wide state
 *    and the lock that guards it.  The core makes one per mount
 *    (account_new, in sync_new) and hands it to every open() in
 *    be_config.account.
 *      - EWS:  nothing device-wide (each session's subscription is its
 *              own): an empty account, for the shape.
 *      - EAS:  the device's SyncKey chains (one per collection, newest key
 *              and the keys our own writes superseded), its folder list
 *              (FolderUpdate needs parent and name), and the lock every
 *              Sync request runs under.  DeviceId, policy key, well-known
 *              folders and kept write keys live as small files in
 *              be_config.state_dir, read by each session.
 *      - MAPI: what RopLogon says of the mailbox once (its GUID, the
 *              replica GUID that turns ids into source keys, the special
 *              folders' ids) and the named-property ids resolved once
 *              (RopGetPropertyIdsFromNames: the token's property).  Each
 *              session keeps its own Connect context cookie.
 *    A session (struct be_session) is one authenticated connection to the
 *    server; it is NOT thread-safe: the core opens one session per thread
 *    that talks to the server (the sync thread, each body-fetch worker,
 *    the applier, the watcher) and never shares one.
 *
 * 2. Ids and states are opaque NUL-terminated strings that the core stores
 *    and hands back unchanged, never interprets:
 *      - EWS:  folder id / item id = FolderId / ItemId Id attribute (~150
 *              bytes base64); change_key = ChangeKey; folder sync state =
 *              the SyncFolderHierarchy SyncState; item sync state = the
 *              SyncFolderItems SyncState (one per folder).
 *      - EAS:  folder id = FolderSync ServerId; item id = Sync ServerId
 *              ("<collection>:<n>"); folder state = FolderSync SyncKey;
 *              item state = the collection's Sync SyncKey.  change_key is
 *              unused (NULL).  EAS pages ("MoreAvailable") map to
 *              be_item_batch.more.  A write (Sync Change/Delete) moves the
 *              collection's SyncKey: the account keeps the chain.
 *      - MAPI: folder id / item id = hex of the PidTagSourceKey;
 *              change_key = hex of PidTagChangeKey; states = base64 of the
 *              ICS state stream (MetaTagIdsetGiven, MetaTagCnsetSeen, ...)
 *              after each FastTransfer buffer (RopSynchronizationConfigure,
 *              RopFastTransferSourceGetBuffer); a buffer boundary is a page
 *              (more = true until IncrSyncEnd).  Writes go through the ICS
 *              upload context (RopSynchronizationOpenCollector,
 *              RopSynchronizationImportMessageChange / ReadStateChanges /
 *              MessageMove / Deletes), whose final state
 *              (RopSynchronizationGetTransferState) is the folder's new
 *              state.
 *    Sync states may be large (ICS state blobs reach hundreds of KB); the
 *    core stores them as TEXT without a length limit of its own.
 *
 * 3. Capabilities are declared, not inferred from NULL pointers: caps()
 *    fills struct be_caps (BE_CAN_* below), be_caps_get() reads it, and the
 *    core says plainly what a backend cannot do (the status file's "server
 *    cannot:" line, a write refused at close()) instead of a backend faking
 *    an answer.
 *      - EWS:  everything but BE_CAN_SYNC_MANY (SyncFolderItems takes one
 *              folder); find_token = FindItem on a hidden string property.
 *      - EAS:  no BE_CAN_SAVE (Sync Add of mail is drafts only), drafts
 *              from 16.0, sending from 14.0, no BE_CAN_FIND_TOKEN (a
 *              create is idempotent by ClientId instead), BE_HAS_OUTBOX
 *              only when the folder list has one (SOGo has none: the
 *              backend shows a virtual one), SYNC_MANY (one Sync, n
 *              Collections), NOTIFY (Ping), RESOLVE (ResolveRecipients).
 *      - MAPI: everything; find_token = a named property (PS_PUBLIC_STRINGS)
 *              searched with a restriction (RopFindRow); NOTIFY by
 *              RopRegisterNotification and the NotificationWait request;
 *              SYNC_MANY no (one ICS download per folder).
 *
 * 4. Item kinds (first step in place: calendars and contacts read over
 *    EWS, be_item.kind and .start below, the core's table in
 *    cache/kinds.c; the rest is planned): a backend's content is what
 *    fetch_mime gives (RFC 5322 for mail, EWS MimeContent for the others,
 *    normalised by the core), create_item takes RFC 5322.
 *    An item gains a kind - mail, calendar, contact, task, note - from its
 *    class (EWS ItemClass / EAS Class / MAPI PidTagMessageClass: IPM.Note,
 *    IPM.Appointment, IPM.Contact, IPM.Task, IPM.StickyNote), and each kind
 *    one content format the core stores and the file system shows:
 *    mail = RFC 5322 (.eml), calendar and task = iCalendar (RFC 5545,
 *    .ics: EWS MimeContent of calendar items, EAS Calendar/Tasks classes
 *    converted, MAPI properties converted), contact = vCard (RFC 6350,
 *    .vcf), note = text.  be_caps gains the kinds a backend can read and
 *    write; a folder's kind follows its class (IPF.Appointment, ...).
 *
 * Ownership: all memory passed in belongs to the caller and is only
 * borrowed for the duration of the call (the account: until every session
 * made with it closed).  All memory returned inside a result struct
 * (be_folder_batch, be_item_batch, ...) belongs to the caller and is freed
 * with the matching *_free() function below.
 *
 * Results are graded by what they break and whether to retry; exactly one
 * function, be_errno(), turns a grade into an errno for the file system.
 */
#ifndef EXCHANGEFS_BACKEND_H
#define EXCHANGEFS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The grade of an operation's outcome. */
enum be_status {
	BE_OK = 0,
	BE_ITEM_GONE,     /* the item no longer exists on the server */
	BE_FOLDER_GONE,   /* the folder no longer exists on the server */
	BE_SYNC_INVALID,  /* the sync state was refused: resync from empty */
	BE_THROTTLED,     /* server busy: retry after be_result.retry_after_ms */
	BE_AUTH,          /* credentials refused (HTTP 401/403) */
	BE_NETWORK,       /* transient: connect/TLS handshake/reset/5xx/timeout */
	BE_TLS,           /* certificate not trusted: permanent until fixed */
	BE_REFUSED,       /* the server refused this request for good */
	BE_PROTOCOL,      /* the server's answer could not be understood */
	BE_NOMEM,         /* out of memory, or an answer exceeded its size cap */
	BE_UNSUPPORTED,   /* this backend does not implement the operation */
	BE_CONFLICT,      /* the item changed on the server since the change
			     key given (stale change key): re-read, retry */
	BE_EXISTS,        /* a folder of that name already exists there */
};

/* Details of an outcome.  msg is one line a user understands ("server
 * answered HTTP 503", "ErrorItemNotFound: The specified object was not
 * found in the store"); it never contains a secret. */
struct be_result {
	enum be_status status;
	uint32_t retry_after_ms;  /* with BE_THROTTLED (and BE_NETWORK if the
				     server sent Retry-After); 0 = unknown */
	char code[64];            /* protocol error code, e.g. "ErrorServerBusy" */
	char msg[320];
};

/* errno for a grade: the one place where server outcomes become errno. */
int be_errno(enum be_status st);
/* Short English name of a grade ("throttled", "authentication failed"). */
const char *be_status_name(enum be_status st);
/* Whether an operation that failed with this grade may succeed if retried
 * later without anything else changing (network, throttled). */
bool be_status_transient(enum be_status st);
/* Fill r (never NULL) with a status and a printf-formatted message. */
void be_result_set(struct be_result *r, enum be_status st, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));
void be_result_ok(struct be_result *r);

/* How to reach and sign in to the server.  Borrowed by open(); the backend
 * copies what it keeps. */
struct oauth2;
/* What every session of one mount shares, above its connections: the
 * device-wide state of the protocol and the lock that guards it (EAS: the
 * key chains of the device's collections, its folder list, the lock each
 * Sync runs under).  Opaque, defined by each backend; made once per mount
 * by ops->account_new() (the core: sync_new()), freed with
 * ops->account_free() after the last session closed. */
struct be_account;

struct be_config {
	const char *url;           /* endpoint, e.g. https://host/EWS/Exchange.asmx */
	const char *user;          /* user name (DOMAIN\user, user@domain, user) */
	const char *password;      /* secret: never logged, never copied to errors */
	const char *mailbox;       /* SMTP address for X-AnchorMailbox; may be NULL */
	int auth;                  /* enum http_auth (backend/http.h); 0 = Basic
				      or NTLM, as the server offers */
	struct oauth2 *oauth2;     /* auth = HTTP_AUTH_BEARER: the token source
				      all sessions share (backend/oauth2.h) */
	const char *ca_file;       /* extra trust anchor (PEM); NULL = system store */
	bool insecure;             /* skip TLS verification (test servers only) */
	long connect_timeout_s;    /* TCP+TLS connect timeout */
	long timeout_s;            /* whole-request timeout for small requests */
	int verbose;               /* 0 quiet, 1 log requests, 2 log bodies
				      (Authorization never logged) */
	const char *state_dir;     /* the account's cache directory, where a
				      backend may keep small files of its
				      own (EAS: DeviceId, policy key); NULL
				      = nothing kept between sessions */
	struct be_account *account; /* the mount's, from account_new();
				      borrowed by every session; NULL = the
				      backend's process-wide default */
};

/* What kind of change a batch entry describes. */
enum be_change {
	BE_CREATE = 1,     /* new to this sync state */
	BE_UPDATE,         /* properties changed; fields not sent (NULL,
			      -1) keep their value (EAS sends only what
			      changed) */
	BE_DELETE,         /* gone (only id is set) */
	BE_READ_FLAG,      /* only the read flag changed (id + is_read set) */
};

/* One folder, as a hierarchy sync reports it. */
struct be_folder {
	enum be_change change;
	char *id;            /* owned */
	char *change_key;    /* owned, may be NULL */
	char *parent_id;     /* owned; the root's id for top-level folders */
	char *name;          /* owned, display name exactly as the server has it */
	char *folder_class;  /* owned, e.g. "IPF.Note"; may be NULL */
	int64_t total_count; /* -1 when unknown */
	int64_t unread_count;/* -1 when unknown */
};

struct be_folder_batch {
	struct be_folder *v;   /* owned array of n entries */
	size_t n, cap;
	char *new_state;       /* owned: state to store with this batch */
	bool more;             /* another page follows */
};

/* What an item is (section 4 above); the core shows a folder's items by
 * the folder's kind (cache/kinds.h), this says what the server sent. */
enum be_item_kind {
	BE_KIND_MAIL = 0,   /* a message (and anything not listed below) */
	BE_KIND_CALENDAR,
	BE_KIND_CONTACT,
	BE_KIND_TASK,
	BE_KIND_OTHER,      /* a kind this version does not show */
};

/* One message, as an item sync reports it.  The header fields come in the
 * same call as the change so no second round trip is needed. */
struct be_item {
	enum be_change change;
	char *id;            /* owned */
	char *change_key;    /* owned, may be NULL */
	char *subject;       /* owned, may be NULL */
	char *from;          /* owned, "Name <addr>" or "addr"; may be NULL */
	char *item_class;    /* owned, e.g. "IPM.Note"; may be NULL */
	char *message_id;    /* owned, Internet Message-ID; may be NULL */
	int64_t received;    /* DateTimeReceived, Unix seconds UTC; 0 unknown */
	int64_t sent;        /* DateTimeSent; 0 unknown */
	int64_t size;        /* server's idea of the size, -1 unknown (for
				EWS this is not the MIME size) */
	int is_read;         /* 0, 1, or -1 unknown */
	int has_attachments; /* 0, 1, or -1 unknown */
	int flag;            /* enum be_flag, or -1 unknown */
	char *categories;    /* owned, comma-separated ("" none); NULL unknown */
	int is_draft;        /* 0, 1, or -1 unknown */
	bool content_changed; /* an update that says the bytes changed, for
				 protocols without change keys (an ActiveSync
				 Change carrying the body) */
	enum be_item_kind kind; /* what the server says it is (EWS: the
				   element, CalendarItem, Contact, ...) */
	int64_t start;       /* a calendar item's Start, Unix seconds UTC;
				0 unknown or not an event.  A contact's
				display name (DisplayName, else FileAs)
				comes in subject. */
};

struct be_item_batch {
	struct be_item *v;     /* owned array of n entries */
	size_t n, cap;
	char *new_state;       /* owned: state to store with this batch */
	bool more;             /* call again with new_state for more changes */
};

/* Receives MIME bytes as they are decoded, in order.  index is the position
 * of the item in the ids[] of fetch_mime(); a sink returns 0 to continue
 * or -1 to abort the transfer (the call then fails with BE_REFUSED and the
 * sink's reason is the caller's to know). */
typedef int (*be_sink_fn)(void *arg, size_t index, const void *data,
			  size_t len);
/* Called once per item of a fetch_mime() call when that item is complete
 * (st == BE_OK) or failed (BE_ITEM_GONE, ...).  Items may complete out of
 * order only if the protocol delivers them so; EWS keeps request order. */
typedef void (*be_done_fn)(void *arg, size_t index, enum be_status st,
			   const char *msg);

struct be_session;

/* One folder of a sync_items_many() call. */
struct be_sync_one {
	const char *folder_id;      /* in */
	const char *state;          /* in: the folder's stored state, never
				       empty (a first sync goes alone) */
	struct be_item_batch out;   /* out, as sync_items() gives it; the
				       caller frees it (be_item_batch_free) */
	struct be_result r;         /* out: this folder's own outcome */
};

/* ---- Write operations: what they take and give. ---- */

/* Well-known folders the core needs by role (EWS DistinguishedFolderId
 * inbox, drafts, sentitems, deleteditems, outbox). */
enum be_special {
	BE_INBOX, BE_DRAFTS, BE_SENT, BE_DELETED, BE_OUTBOX, BE_SPECIAL_N
};

/* How create_item files a new message. */
enum be_disposition {
	BE_SAVE_DRAFT = 1, /* saved as an unsent draft (Drafts) */
	BE_SAVE,           /* saved as a normal, read, non-draft message whose
			      received time is the given date (any folder) */
	BE_SEND,           /* sent, a copy saved in Sent Items */
};

/* How delete_item deletes. */
enum be_delete {
	BE_DEL_TO_TRASH = 1, /* moved to Deleted Items */
	BE_DEL_SOFT,         /* recoverable (dumpster) */
	BE_DEL_HARD,         /* gone for good */
};

/* Follow-up flag (EWS FlagStatus NotFlagged / Flagged / Complete). */
enum be_flag { BE_FLAG_NONE = 0, BE_FLAG_FLAGGED = 1, BE_FLAG_COMPLETE = 2 };

/* Properties to set on an item; only those whose bit is in mask are sent. */
#define BE_PROP_READ       0x1u
#define BE_PROP_FLAG       0x2u
#define BE_PROP_CATEGORIES 0x4u
struct be_props {
	unsigned mask;
	bool read;
	enum be_flag flag;
	const char *categories; /* comma-separated; "" = none */
};

/* What a write gives back: the (new) id and change key, owned by the
 * caller, freed with be_new_free().  Either may be NULL when the server
 * does not say (EWS returns no id for a sent message). */
struct be_new {
	char *id;
	char *change_key;
};
void be_new_free(struct be_new *n);

/* ---- Notifications: what watch() takes and gives. ---- */

/* An item the server reported moved (EWS MovedEvent): old id in one folder,
 * new id in another.  Only a hint that lets the core keep the file (its
 * inode and cached body) when the two folders' sync pages report the
 * delete and the create; the pages decide what changed. */
struct be_moved {
	const char *old_id, *old_folder_id;
	const char *new_id, *new_folder_id;
};

enum be_watch_mode {
	BE_WATCH_NONE = 0, /* not subscribed (yet) */
	BE_WATCH_PUSH,     /* events streamed as they happen (EWS streaming) */
	BE_WATCH_PULL,     /* the server is asked for events every few
			      seconds (EWS pull subscription, GetEvents) */
};
/* One batch of events.  All pointers are the backend's, valid only during
 * the callback. */
struct be_events {
	const char *const *folder_ids; /* folders whose items changed (new,
					  deleted, modified, moved in or out,
					  read), each once */
	size_t n_folders;
	bool hierarchy;  /* a folder was created, deleted, renamed or moved */
	bool lost;       /* a new subscription is in place; what happened
			    before it may have been missed: sync everything */
	const struct be_moved *moved;
	size_t n_moved;
	enum be_watch_mode mode; /* the form in use (push or pull) */
};

/* Receives each batch; returns 0 to go on or -1 to end the watch() call
 * (which then returns BE_OK). */
typedef int (*be_events_fn)(void *arg, const struct be_events *ev);

struct be_watch {
	const char *const *folder_ids; /* the folders to watch (every synced
					  mail folder); a different set than
					  the session's subscription means
					  subscribe again */
	size_t n;
	unsigned timeout_s;     /* longest one call may last (the stream's
				   lifetime; EWS ConnectionTimeout is in
				   whole minutes, 1-30) */
	be_events_fn events;
	bool (*cancelled)(void *arg); /* polled at least once a second, even
					 while no byte arrives; true ends
					 the call promptly */
	void *arg;
};


/* ---- Address book: what resolve_names() gives. ---- */
enum be_person_kind {
	BE_PERSON_OTHER = 0,  /* the server did not say */
	BE_PERSON_DIRECTORY,  /* the organisation's directory (GAL) */
	BE_PERSON_CONTACT,    /* the user's own contacts */
	BE_PERSON_GROUP,      /* a distribution list */
};
struct be_person {
	char *name;            /* owned: display name; NULL if none */
	char *address;         /* owned: e-mail address; NULL if none */
	enum be_person_kind kind;
};
#define BE_PEOPLE_MAX 100      /* most matches one call gives */
void be_people_free(struct be_person *v, size_t n);

/* What the backend and the server behind a session can do: the one place a
 * backend declares it (like isync's get_caps()), so the core says plainly
 * what cannot be done (.exchangefs/status: "server cannot: ...", a write
 * refused at close()) instead of a backend faking an answer.  An operation
 * left NULL in the table is never declared (be_caps_get() clears its bit).
 *
 * Storing (the core refuses at close() what the server cannot store,
 * rather than queue a write that can only fail): */
#define BE_CAN_SAVE       0x1u  /* a message into a folder (BE_SAVE) */
#define BE_CAN_DRAFT      0x2u  /* a new draft (BE_SAVE_DRAFT) */
#define BE_CAN_EDIT_DRAFT 0x4u  /* replace_mime of a draft */
#define BE_CAN_SEND       0x8u  /* BE_SEND */
#define BE_CAN_STORE      0xFu  /* all four above */
/* find_token(): a create whose answer was lost can be looked up.  Without
 * it the core sends the create again with the same token, and the backend
 * promises that its create_item() is idempotent by token through the
 * protocol's own duplicate check (ActiveSync ClientId). */
#define BE_CAN_FIND_TOKEN 0x10u
/* The server has an Outbox folder.  Without it (SOGo over ActiveSync) the
 * backend shows one of its own (special_folders() names it, sync_folders()
 * lists it, nothing is ever stored in it): a file written there is sent. */
#define BE_HAS_OUTBOX     0x20u
#define BE_CAN_NOTIFY     0x40u  /* watch(): push or pull; else the core polls */
#define BE_CAN_RESOLVE    0x80u  /* resolve_names(): the address book */
#define BE_CAN_SYNC_MANY  0x100u /* sync_items_many(): n folders, one call */
#define BE_CAN_ALL        0x1FFu
struct be_caps {
	unsigned can;          /* BE_CAN_* / BE_HAS_* */
	char speaks[48];       /* for messages: "ActiveSync 14.1" */
};
struct backend_ops;
/* What ops can do with session s (NULL: what the protocol can at best):
 * ops->caps() if it has one (else BE_CAN_ALL), less the bits of the
 * operations the table leaves NULL. */
void be_caps_get(const struct backend_ops *ops, struct be_session *s,
		 struct be_caps *out);
/* The BE_CAN_* bits of can missing from BE_CAN_ALL, as one line a user
 * understands ("store a draft, find a write whose answer was lost ..."),
 * "nothing" when none.  Owned by the caller. */
char *be_caps_missing(unsigned can);

/* The table a protocol fills.  What a backend can do it declares in caps()
 * (above); operations not implemented are NULL, the core reads the
 * capability bits (be_caps_get()) where one exists, else checks for NULL,
 * and treats NULL as BE_UNSUPPORTED.  Every operation fills *r (never NULL) and returns
 * r->status. */
struct backend_ops {
	const char *name;  /* "ews", "eas", "mapi" */

	/* Sign in and check the server answers; returns NULL with *r set on
	 * failure.  Must give up within cfg->connect_timeout_s +
	 * cfg->timeout_s; never blocks forever. */
	struct be_session *(*open)(const struct be_config *cfg,
				   struct be_result *r);
	void (*close)(struct be_session *s);
	/* The account object the sessions of one mount share (NULL
	 * cfg->account for them otherwise); never a network call. */
	struct be_account *(*account_new)(const struct be_config *cfg);
	void (*account_free)(struct be_account *a);
	/* Optional (NULL: BE_CAN_ALL): what the backend and the server of an
	 * open session can do, which may depend on what it speaks (s may be
	 * NULL: what the protocol can at best).  Never a network call. */
	void (*caps)(struct be_session *s, struct be_caps *out);

	/* The id of the root of the mail hierarchy (parent of top-level
	 * folders).  Owned by the session, valid until close(). */
	const char *(*root_id)(struct be_session *s);

	/* Hierarchy changes since state (NULL or "" = from the beginning). */
	enum be_status (*sync_folders)(struct be_session *s, const char *state,
				       struct be_folder_batch *out,
				       struct be_result *r);

	/* Up to max item changes in folder_id since state (NULL/"" = all).
	 * BE_SYNC_INVALID means the state is no longer accepted. */
	enum be_status (*sync_items)(struct be_session *s, const char *folder_id,
				     const char *state, unsigned max,
				     struct be_item_batch *out,
				     struct be_result *r);

	/* Optional (NULL: the core calls sync_items() per folder): the
	 * changes of n folders in one round trip (ActiveSync: one Sync with
	 * n Collections), at most max per folder.  Returns BE_OK when the
	 * call as a whole was answered; then each v[k].r says how that
	 * folder fared, and for those with BE_OK v[k].out is what
	 * sync_items(folder, state, max) would have given (no change: n = 0
	 * and new_state = state).  Any other return: no folder's state
	 * moved, every v[k].out is empty. */
	enum be_status (*sync_items_many)(struct be_session *s,
					  struct be_sync_one *v, size_t n,
					  unsigned max, struct be_result *r);

	/* Exact MIME content of n items, streamed to sink; done() once per
	 * item.  Returns BE_OK if the call as a whole worked (individual
	 * items may still have failed through done()). */
	enum be_status (*fetch_mime)(struct be_session *s,
				     const char *const *ids, size_t n,
				     be_sink_fn sink, be_done_fn done,
				     void *arg, struct be_result *r);

	/* --- Write operations.  The journal applier (cache/journal.c)
	 * calls them one at a time, in order, and retries transient
	 * failures; every one must therefore be safe to repeat after an
	 * unknown outcome, or findable (create_item's token). --- */

	/* Ids of the well-known folders; ids[k] owned by the caller, NULL
	 * where the server has no such folder. */
	enum be_status (*special_folders)(struct be_session *s,
					  char *ids[BE_SPECIAL_N],
					  struct be_result *r);

	/* Store a new message from RFC 5322 bytes into folder_id (for
	 * BE_SEND folder_id is where the copy is saved: Sent Items).  date
	 * (Unix seconds; 0 = now) is the received time for BE_SAVE.  token
	 * (<= 64 bytes [A-Za-z0-9-]) is stored on the item as a hidden
	 * property so find_token() can tell whether an attempt whose
	 * answer was lost created it.  out->id is NULL for BE_SEND. */
	enum be_status (*create_item)(struct be_session *s,
				      const char *folder_id, const void *mime,
				      size_t len, enum be_disposition how,
				      int64_t date, const char *token,
				      struct be_new *out, struct be_result *r);
	/* Optional (NULL: no BE_CAN_FIND_TOKEN): the item in folder_id
	 * carrying token: BE_OK with out set, or BE_ITEM_GONE if there is
	 * none. */
	enum be_status (*find_token)(struct be_session *s,
				     const char *folder_id, const char *token,
				     struct be_new *out, struct be_result *r);
	/* Replace the whole content of a draft.  BE_CONFLICT if change_key
	 * is stale; BE_ITEM_GONE if the draft is gone. */
	enum be_status (*replace_mime)(struct be_session *s, const char *id,
				       const char *change_key, const void *mime,
				       size_t len, struct be_new *out,
				       struct be_result *r);
	/* Set read flag / follow-up flag / categories. BE_CONFLICT if
	 * change_key (may be NULL: last writer wins) is stale. */
	enum be_status (*update_props)(struct be_session *s, const char *id,
				       const char *change_key,
				       const struct be_props *p,
				       struct be_new *out, struct be_result *r);
	/* The current change key of an item (owned) - to retry after
	 * BE_CONFLICT. */
	enum be_status (*get_change_key)(struct be_session *s, const char *id,
					 char **change_key,
					 struct be_result *r);
	enum be_status (*delete_item)(struct be_session *s, const char *id,
				      enum be_delete how, struct be_result *r);
	/* Move; the item usually gets a new id (out->id). */
	enum be_status (*move_item)(struct be_session *s, const char *id,
				    const char *to_folder_id,
				    struct be_new *out, struct be_result *r);
	/* Folders: a created folder has class IPF.Note.  BE_EXISTS if the
	 * parent already has a folder of that name. */
	enum be_status (*create_folder)(struct be_session *s,
					const char *parent_id, const char *name,
					struct be_new *out, struct be_result *r);
	enum be_status (*rename_folder)(struct be_session *s, const char *id,
					const char *name, struct be_new *out,
					struct be_result *r);
	enum be_status (*move_folder)(struct be_session *s, const char *id,
				      const char *to_parent_id,
				      struct be_new *out, struct be_result *r);
	enum be_status (*delete_folder)(struct be_session *s, const char *id,
					bool hard, struct be_result *r);

	/* --- Notifications.  A watcher thread of the core owns a session
	 * of its own and calls watch() in a loop; NULL = the core polls. ---
	 *
	 * watch() subscribes if the session has no subscription for this set
	 * of folders (push first - EWS streaming - and the protocol's pull
	 * form when the server refuses push), then reports events through
	 * w->events as they arrive, until w->timeout_s has passed, the
	 * server ended the connection, or w->cancelled() said so; then it
	 * returns BE_OK.  The subscription lives in the session across
	 * calls, so nothing that happens between two calls is missed.  Each
	 * time the session subscribes (the first time, for a different
	 * folder set, or because the server lost the subscription: expired,
	 * restarted, refused its watermark), the first batch it reports,
	 * right after the subscription is in place, has lost = true: what
	 * happened before that moment may not have been reported, and the
	 * core syncs everything once.  A dropped connection returns BE_NETWORK (the next
	 * call reconnects to the same subscription).  BE_FOLDER_GONE: a
	 * folder of the set no longer exists (deleted on the server since the
	 * core last synced the tree), so no subscription could be made; the
	 * core syncs the tree and calls again with the new set.  BE_UNSUPPORTED: the
	 * server offers neither push nor pull; the core polls.  *mode tells
	 * which form is in use. */
	enum be_status (*watch)(struct be_session *s, const struct be_watch *w,
				enum be_watch_mode *mode, struct be_result *r);

	/* Optional (NULL: unsupported): the people whose name or address
	 * matches query in the server's address book (EAS
	 * ResolveRecipients, EWS ResolveNames), at most max (1..100).
	 * BE_OK with *n = 0 when no one matches; *out (n entries) is the
	 * caller's, freed with be_people_free(). */
	enum be_status (*resolve_names)(struct be_session *s, const char *query,
					unsigned max, struct be_person **out,
					size_t *n, struct be_result *r);
};

/* Registered protocols. */
extern const struct backend_ops ews_backend;
extern const struct backend_ops eas_backend;

/* The backend for a protocol name ("ews"), or NULL. */
const struct backend_ops *backend_find(const char *name);

void be_folder_batch_free(struct be_folder_batch *b);
void be_item_batch_free(struct be_item_batch *b);
/* Append a zeroed entry (grows the array; aborts on OOM like all
 * allocations in this project, see backend/util.h). */
struct be_folder *be_folder_batch_add(struct be_folder_batch *b);
struct be_item *be_item_batch_add(struct be_item_batch *b);

#endif
