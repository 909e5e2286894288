/*
 * oauth2.h - OAuth2 sign-in for Exchange Online (and any server that takes
 * Bearer tokens): the device-code flow and the authorization-code flow with
 * PKCE on a loopback redirect (`exchangefs login`), the token file, and the
 * shared token source that every HTTP session of a mount asks for its
 * Bearer token (refreshed before expiry and after a 401).
 *
 * Token file: $XDG_CONFIG_HOME/exchangefs/tokens/<address>.json (default
 * ~/.config/...), mode 0600 in 0700 directories, a flat JSON object with
 * the token endpoint, client id and scope it was issued for, the access
 * token, its expiry (Unix seconds) and the refresh token.  Written to a
 * temporary file and renamed.  Tokens are secrets: never logged, never in
 * an error message.
 */
#ifndef EXCHANGEFS_OAUTH2_H
#define EXCHANGEFS_OAUTH2_H

#include <stdbool.h>
#include <stdio.h>

#include "backend.h"

#define OAUTH2_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define OAUTH2_DEFAULT_TENANT "organizations"
/* Microsoft Office's public client, which Exchange Online tenants accept
 * for EWS by default; an organisation may register its own app and give
 * its id with --oauth-client-id. */
#define OAUTH2_DEFAULT_CLIENT_ID "d3590ed6-52b3-4102-aeff-aad2292ab01c"
#define OAUTH2_DEFAULT_SCOPE \
	"https://outlook.office365.com/EWS.AccessAsUser.All offline_access"
/* For ActiveSync: the default with --protocol eas (fs/signin.c). */
#define OAUTH2_EAS_SCOPE \
	"https://outlook.office365.com/EAS.AccessAsUser.All offline_access"
/* Refresh this long before the access token expires. */
#define OAUTH2_REFRESH_MARGIN_S 120

struct oauth2_config {
	const char *authority;   /* NULL = OAUTH2_DEFAULT_AUTHORITY */
	const char *tenant;      /* NULL = OAUTH2_DEFAULT_TENANT */
	const char *client_id;   /* NULL = OAUTH2_DEFAULT_CLIENT_ID */
	const char *scope;       /* NULL = OAUTH2_DEFAULT_SCOPE */
	const char *ca_file;     /* as be_config */
	bool insecure;
	long timeout_s;          /* per request; 0 = 60 */
	int verbose;             /* as be_config (token bodies never shown) */
};

/* The token file of an address (owned). */
char *oauth2_token_path(const char *address);
/* Whether a token file exists for the address. */
bool oauth2_have_tokens(const char *address);

/* Sign in with the device-code flow: prints the verification URL and code
 * to out, polls the token endpoint (honouring interval and slow_down) until
 * the user approves, refuses, or the code expires; stores the tokens.
 * BE_OK or a graded failure with one line in r. */
enum be_status oauth2_login_device(const char *address,
				   const struct oauth2_config *cfg, FILE *out,
				   struct be_result *r);
/* Sign in with the authorization-code flow and PKCE: listens on a loopback
 * port, prints the authorization URL to out (and opens it with xdg-open
 * when open_browser), takes the one redirect, exchanges the code, stores
 * the tokens. */
enum be_status oauth2_login_browser(const char *address,
				    const struct oauth2_config *cfg,
				    bool open_browser, FILE *out,
				    struct be_result *r);

/* The token source of a mount: thread-safe, shared by every session. */
struct oauth2;
/* Load the token file of address (BE_AUTH "not signed in: run exchangefs
 * login ADDRESS" when there is none).  cfg gives TLS and timeouts; the
 * endpoint, client id and scope are the file's. */
struct oauth2 *oauth2_open(const char *address, const struct oauth2_config *cfg,
			   struct be_result *r);
void oauth2_free(struct oauth2 *o);
/* An http_bearer_fn (arg: struct oauth2 *): the current access token,
 * refreshed first when it expires within OAUTH2_REFRESH_MARGIN_S or when
 * it is the rejected one.  A refused refresh token gives BE_AUTH "sign-in
 * expired: run exchangefs login ADDRESS" (the caller reports it) unless the
 * token file changed meanwhile (another process of the account refreshed
 * first: its tokens are taken); later calls give the same at once, without
 * asking the server again, until the file is renewed (a new login is taken
 * up by itself). */
int oauth2_bearer(void *arg, const char *rejected, char **token,
		  struct be_result *r);

#endif
