/*
 * backend.c - what all protocols share: the registry of backends, the one
 * mapping from result grades to errno, and batch helpers.
 */
#include "backend.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void be_caps_get(const struct backend_ops *ops, struct be_session *s,
		 struct be_caps *out)
{
	out->can = BE_CAN_ALL;
	out->speaks[0] = 0;
	if (ops->caps)
		ops->caps(s, out);
	/* what the table lacks cannot be declared */
	if (!ops->create_item)
		out->can &= ~(BE_CAN_SAVE | BE_CAN_DRAFT | BE_CAN_SEND);
	if (!ops->replace_mime)
		out->can &= ~BE_CAN_EDIT_DRAFT;
	if (!ops->find_token)
		out->can &= ~BE_CAN_FIND_TOKEN;
	if (!ops->watch)
		out->can &= ~BE_CAN_NOTIFY;
	if (!ops->resolve_names)
		out->can &= ~BE_CAN_RESOLVE;
	if (!ops->sync_items_many)
		out->can &= ~BE_CAN_SYNC_MANY;
	out->can &= BE_CAN_ALL;
}

char *be_caps_missing(unsigned can)
{
	/* in the words of a user; BE_CAN_SYNC_MANY only costs round trips
	 * and is not listed */
	static const struct {
		unsigned bit;
		const char *words;
	} names[] = {
		{ BE_CAN_SAVE, "store a message in a folder" },
		{ BE_CAN_DRAFT, "store a draft" },
		{ BE_CAN_EDIT_DRAFT, "change a draft" },
		{ BE_CAN_SEND, "send" },
		{ BE_CAN_FIND_TOKEN, "find a message whose upload answer was "
				     "lost (it is sent again; the server drops "
				     "the duplicate)" },
		{ BE_HAS_OUTBOX, "keep an Outbox (exchangefs shows one: what "
				 "is written there is sent)" },
		{ BE_CAN_NOTIFY, "notify changes (the mount asks every sync "
				 "interval)" },
		{ BE_CAN_RESOLVE, "look up names in the address book" },
	};
	char *line = NULL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (can & names[i].bit)
			continue;
		char *longer = xasprintf("%s%s%s", line ? line : "",
					 line ? ", " : "", names[i].words);
		free(line);
		line = longer;
	}
	return line ? line : xstrdup("nothing");
}

static const struct backend_ops *const backends[] = { &ews_backend,
							&eas_backend };

const struct backend_ops *backend_find(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

int be_errno(enum be_status st)
{
	switch (st) {
	case BE_OK:           return 0;
	case BE_ITEM_GONE:    return ENOENT;
	case BE_FOLDER_GONE:  return ENOENT;
	case BE_SYNC_INVALID: return EAGAIN;
	case BE_THROTTLED:    return EAGAIN;
	case BE_AUTH:         return EACCES;
	case BE_NETWORK:      return EIO;  /* ENETDOWN confuses cp/grep */
	case BE_TLS:          return EIO;
	case BE_REFUSED:      return EPERM;
	case BE_PROTOCOL:     return EPROTO;
	case BE_NOMEM:        return EFBIG;
	case BE_UNSUPPORTED:  return ENOTSUP;
	case BE_CONFLICT:     return EAGAIN;
	case BE_EXISTS:       return EEXIST;
	}
	return EIO;
}

const char *be_status_name(enum be_status st)
{
	switch (st) {
	case BE_OK:           return "ok";
	case BE_ITEM_GONE:    return "item no longer exists";
	case BE_FOLDER_GONE:  return "folder no longer exists";
	case BE_SYNC_INVALID: return "sync state refused";
	case BE_THROTTLED:    return "server busy (throttled)";
	case BE_AUTH:         return "authentication failed";
	case BE_NETWORK:      return "network error";
	case BE_TLS:          return "TLS certificate not trusted";
	case BE_REFUSED:      return "refused by server";
	case BE_PROTOCOL:     return "unexpected answer from server";
	case BE_NOMEM:        return "answer too large";
	case BE_UNSUPPORTED:  return "not supported";
	case BE_CONFLICT:     return "changed on the server meanwhile";
	case BE_EXISTS:       return "already exists on the server";
	}
	return "unknown error";
}

bool be_status_transient(enum be_status st)
{
	return st == BE_NETWORK || st == BE_THROTTLED;
}

void be_result_set(struct be_result *r, enum be_status st, const char *fmt,
		   ...)
{
	va_list ap;
	r->status = st;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

void be_result_ok(struct be_result *r)
{
	memset(r, 0, sizeof(*r));
}

static void folder_free(struct be_folder *f)
{
	free(f->id);
	free(f->change_key);
	free(f->parent_id);
	free(f->name);
	free(f->folder_class);
}

static void item_free(struct be_item *it)
{
	free(it->id);
	free(it->change_key);
	free(it->subject);
	free(it->from);
	free(it->item_class);
	free(it->message_id);
	free(it->categories);
}

void be_folder_batch_free(struct be_folder_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		folder_free(&b->v[i]);
	free(b->v);
	free(b->new_state);
	memset(b, 0, sizeof(*b));
}

void be_item_batch_free(struct be_item_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		item_free(&b->v[i]);
	free(b->v);
	free(b->new_state);
	memset(b, 0, sizeof(*b));
}

struct be_folder *be_folder_batch_add(struct be_folder_batch *b)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 32;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	struct be_folder *f = &b->v[b->n++];
	memset(f, 0, sizeof(*f));
	f->total_count = f->unread_count = -1;
	return f;
}

struct be_item *be_item_batch_add(struct be_item_batch *b)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	struct be_item *it = &b->v[b->n++];
	memset(it, 0, sizeof(*it));
	it->size = -1;
	it->is_read = -1;
	it->has_attachments = -1;
	it->flag = -1;
	it->is_draft = -1;
	return it;
}

void be_new_free(struct be_new *n)
{
	free(n->id);
	free(n->change_key);
	n->id = n->change_key = NULL;
}

void be_people_free(struct be_person *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].address);
	}
	free(v);
}
