/*
 * oauth2_internal.h - what oauth2.c (the token file, the token endpoint,
 * the token source of a mount) and oauth2_login.c (the device-code and
 * PKCE sign-in) share.  Not for other files.
 */
#ifndef EXCHANGEFS_OAUTH2_INTERNAL_H
#define EXCHANGEFS_OAUTH2_INTERNAL_H

#include <time.h>

#include "json.h"
#include "oauth2.h"

#define TOKEN_ANSWER_MAX ((size_t)256 << 10)
#define TOKEN_FILE_MAX ((size_t)256 << 10)

/* What the token file holds. */
struct tokens {
	char *endpoint;     /* token endpoint URL */
	char *client_id;
	char *scope;
	char *access;       /* secret */
	char *refresh;      /* secret, may be NULL */
	int64_t expires_at; /* Unix seconds */
	int64_t obtained_at; /* when the access token came (0 = unknown) */
};

/* An OAuth2 answer (success or error) of the server. */
struct answer {
	long status;
	struct json_obj json;
	const char *error;       /* "error" member, or NULL */
};

/* Free and clear a secret string. */
void oa_wipe(char **s);
void oa_tokens_free(struct tokens *t);
/* v if set and not empty, else dflt. */
const char *oa_or(const char *v, const char *dflt);
/* Write the token file (0600, temporary file + rename; directories 0700). */
int oa_tokens_save(const char *path, const struct tokens *t, struct be_result *r);
/* Read it: BE_AUTH "not signed in: run exchangefs login ADDRESS" when
 * missing, "damaged"/"incomplete" likewise. */
int oa_tokens_load(const char *path, struct tokens *t, struct timespec *mtime,
		struct be_result *r, const char *address);
/* Append name=value, form-encoded, to b. */
void oa_form_put(struct buf *b, const char *name, const char *value);
void oa_answer_free(struct answer *a);
/* POST the form to url (the body never logged); BE_OK with a JSON answer,
 * whatever its status, in a. */
enum be_status oa_post(const char *url, const struct buf *form,
			  const struct oauth2_config *cfg, const char *what,
			  struct answer *a, struct be_result *r);
/* Take a successful token answer into t. */
int oa_take_tokens(struct tokens *t, const struct answer *a, const char *url,
		struct be_result *r);
/* An OAuth2 error answer as one line in r. */
void oa_error(struct be_result *r, enum be_status st, const char *prefix,
		 const struct answer *a);
/* AUTHORITY/TENANT/oauth2/v2.0/WHAT (owned). */
char *oa_endpoint(const struct oauth2_config *cfg, const char *what);

#endif
