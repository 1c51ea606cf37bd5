
/*
 * Shared between the glue files of ngx_http_token_scope_module.
 */


#ifndef _NGX_HTTP_TOKEN_SCOPE_H_INCLUDED_
#define _NGX_HTTP_TOKEN_SCOPE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ts_core.h"


/* the module's version, for token_scope_build_info */
#define NGX_HTTP_TOKEN_SCOPE_VERSION     "0.1.0"

#define NGX_HTTP_TOKEN_SCOPE_ENFORCE     0
#define NGX_HTTP_TOKEN_SCOPE_REPORT      1

#define NGX_HTTP_TOKEN_SCOPE_PRODUCTION  0
#define NGX_HTTP_TOKEN_SCOPE_SANDBOX     1

#define NGX_HTTP_TOKEN_SCOPE_UNMATCHED_LOCATION   0
#define NGX_HTTP_TOKEN_SCOPE_UNMATCHED_DENY       1
#define NGX_HTTP_TOKEN_SCOPE_UNMATCHED_NOT_FOUND  2

#define NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY   0
#define NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_ALLOW  1

#define NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF    0
#define NGX_HTTP_TOKEN_SCOPE_PUBLIC_READ   1
#define NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE  2

#define NGX_HTTP_TOKEN_SCOPE_FORMAT_WB       0
#define NGX_HTTP_TOKEN_SCOPE_FORMAT_ECWID    1
#define NGX_HTTP_TOKEN_SCOPE_FORMAT_RFC6750  2

/* where the lookup of an opaque token stands */
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_NONE       0
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING    1
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND      2
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND  3
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_REVOKED    4
#define NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED     5

/* the decision of the serving location (ctx->decision) */
#define NGX_HTTP_TOKEN_SCOPE_UNDECIDED   0
#define NGX_HTTP_TOKEN_SCOPE_ALLOW       1
#define NGX_HTTP_TOKEN_SCOPE_DENY        2
#define NGX_HTTP_TOKEN_SCOPE_WOULD_DENY  3

/* what is known of the request's token (ctx->facts) */
#define NGX_HTTP_TOKEN_SCOPE_FACTS_NONE     0
#define NGX_HTTP_TOKEN_SCOPE_FACTS_PENDING  1
#define NGX_HTTP_TOKEN_SCOPE_FACTS_READY    2

/* claims some location checks (tmcf->claim_checks) */
#define NGX_HTTP_TOKEN_SCOPE_ISS  1
#define NGX_HTTP_TOKEN_SCOPE_AUD  2

#define NGX_HTTP_TOKEN_SCOPE_OVERRIDE_CHECK   0
#define NGX_HTTP_TOKEN_SCOPE_OVERRIDE_IGNORE  1

#define NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_CHECK  0
#define NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_PASS   1

/* the users of Redis, for the status page */
#define NGX_HTTP_TOKEN_SCOPE_ROLE_REVOCATION  0
#define NGX_HTTP_TOKEN_SCOPE_ROLE_OPAQUE      1
#define NGX_HTTP_TOKEN_SCOPE_ROLES            2

/* what became of an opaque token's lookup, for the status page */
#define NGX_HTTP_TOKEN_SCOPE_LOOKUP_FOUND    0
#define NGX_HTTP_TOKEN_SCOPE_LOOKUP_UNKNOWN  1
#define NGX_HTTP_TOKEN_SCOPE_LOOKUP_TIMEOUT  2
#define NGX_HTTP_TOKEN_SCOPE_LOOKUP_ERROR    3
#define NGX_HTTP_TOKEN_SCOPE_LOOKUPS         4

/* what became of a fetch of token_scope_key_request, for the status page */
#define NGX_HTTP_TOKEN_SCOPE_FETCH_OK        0
#define NGX_HTTP_TOKEN_SCOPE_FETCH_ERROR     1
#define NGX_HTTP_TOKEN_SCOPE_FETCH_INVALID   2
#define NGX_HTTP_TOKEN_SCOPE_FETCH_RESULTS   3


typedef struct {
    ngx_str_t                   name;
    ts_ops_t                   *ops;
} ngx_http_token_scope_catalog_t;


/* what a rescan batch holds (ngx_http_token_scope_batch_t) */
#define NGX_HTTP_TOKEN_SCOPE_SCAN_IDS      1
#define NGX_HTTP_TOKEN_SCOPE_SCAN_SELLERS  2
#define NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS  3


typedef struct ngx_http_token_scope_revocation_sh_s
    ngx_http_token_scope_revocation_sh_t;

typedef struct {
    ngx_str_t                   address;
    ngx_str_t                   host;        /* an IP, resolved at start */
    in_port_t                   port;
    ngx_str_t                   unix_path;
    ngx_uint_t                  db;
    ngx_str_t                   user;
    ngx_str_t                   password;
    ngx_str_t                   prefix;
    ngx_msec_t                  timeout;
    time_t                      max_stale;
    time_t                      lifetime;
    char                       *key_ids;
    char                       *key_sellers;
    char                       *key_secrets;
    char                       *key_opaque;  /* prefix + "opaque:" */
    char                       *channel;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_token_scope_revocation_sh_t  *sh;  /* in shm_zone */
} ngx_http_token_scope_redis_conf_t;


/* hiredis' own, known by name only outside the files that use hiredis */
struct redisAsyncContext;
struct redisReply;

typedef struct ngx_http_token_scope_redis_s  ngx_http_token_scope_redis_t;

/* one hiredis connection on nginx's event loop */
typedef struct {
    struct redisAsyncContext   *ac;
    ngx_connection_t           *conn;
    ngx_http_token_scope_redis_t  *rd;
} ngx_http_token_scope_link_t;

typedef void (*ngx_http_token_scope_reply_pt)(struct redisAsyncContext *ac,
    void *reply, void *privdata);

/*
 * The connections of one user of Redis in a worker process (the sync,
 * the lookups): commands, and a subscriber if there is a channel; kept
 * by ngx_http_token_scope_hiredis.c
 */
struct ngx_http_token_scope_redis_s {
    /* the user's, set before ngx_http_token_scope_redis_start() */
    ngx_http_token_scope_redis_conf_t  *rcf;
    char                       *channel;     /* NULL: no subscriber */
    const char                 *outage;      /* what one means, for the log */
    const char                 *recovered;   /* logged when it works again */
    void                      (*on_ready)(ngx_http_token_scope_redis_t *rd);
    void                      (*on_lost)(ngx_http_token_scope_redis_t *rd);
    void                      (*message)(ngx_http_token_scope_redis_t *rd,
                                         struct redisReply *reply);
    void                       *data;
    ngx_uint_t                  role;        /* NGX_HTTP_TOKEN_SCOPE_ROLE_ */
    unsigned                    linger:1;    /* exiting: replies still come */
    unsigned                    own_timeouts:1;  /* commands timed by user */

    /* the layer's */
    ngx_log_t                  *log;
    ngx_http_token_scope_link_t  cmd;
    ngx_http_token_scope_link_t  sub;
    ngx_event_t                 reconnect;
    ngx_event_t                 deadline;    /* of the handshake, a reply */
    ngx_msec_t                  backoff;
    ngx_uint_t                  greetings;   /* handshake replies to come */
    unsigned                    ready:1;
    unsigned                    subscribing:1;
    unsigned                    failing:1;   /* an outage was logged */
    unsigned                    exiting:1;
    unsigned                    closed:1;    /* for good */
};


/* one reply of a rescan, copied out of hiredis' for the slices */
typedef struct {
    ngx_queue_t                 queue;
    ngx_uint_t                  kind;        /* NGX_HTTP_TOKEN_SCOPE_SCAN_ */
    ngx_uint_t                  n;
    ngx_uint_t                  next;        /* the first not applied yet */
    ngx_str_t                  *names;       /* ids, sellers or services */
    ngx_str_t                  *values;      /* times, digests; ids: NULL */
} ngx_http_token_scope_batch_t;


typedef struct {
    ngx_uint_t                  hits;
    ngx_uint_t                  misses;
    ngx_uint_t                  evictions;
    ngx_uint_t                  failed;
    ngx_uint_t                  entries;
} ngx_http_token_scope_cache_stats_t;


typedef struct ngx_http_token_scope_cache_sh_s
    ngx_http_token_scope_cache_sh_t;

typedef struct {
    ngx_shm_zone_t             *shm_zone;
    ngx_http_token_scope_cache_sh_t  *sh;
    time_t                      max_ttl;
} ngx_http_token_scope_cache_conf_t;


typedef struct {
    ngx_uint_t                  connected;
    ngx_uint_t                  synced;
    ngx_uint_t                  stale;       /* as a request would see it */
    time_t                      fresh;
    time_t                      created;     /* the zone: waiting since */
    ngx_uint_t                  entries;
} ngx_http_token_scope_revocation_state_t;


typedef struct ngx_http_token_scope_counters_s
    ngx_http_token_scope_counters_t;


/* the keys of one token_scope_key_request, ngx_http_token_scope_jwks.c */
typedef struct ngx_http_token_scope_jwks_s  ngx_http_token_scope_jwks_t;

typedef struct {
    ngx_uint_t                  fetches[NGX_HTTP_TOKEN_SCOPE_FETCH_RESULTS];
    ngx_uint_t                  keys;
    time_t                      age;         /* of the oldest, -1: none */
} ngx_http_token_scope_jwks_state_t;


/* a label pair of token_scope_verifications_total, fixed at start */
typedef struct {
    ngx_str_t                   kid;
    ts_alg_e                    alg;
} ngx_http_token_scope_key_label_t;


/* the categories one host needs (token_scope_hosts) */
typedef struct {
    ts_required_t               required;
    ngx_uint_t                  off;         /* "off": not enforced */
    ngx_array_t                *names;       /* of ..._name_t, resolved */
} ngx_http_token_scope_host_t;


typedef struct {
    ngx_hash_t                  hash;        /* host -> ..._host_t */
    ngx_hash_keys_arrays_t     *keys;        /* until it is built */
    ngx_http_token_scope_host_t  *dflt;
} ngx_http_token_scope_hosts_t;


typedef struct {
    ts_categories_t             categories;

    /* of the category and scope tables: what cached grants mean */
    u_char                      tables_digest[TS_SHA256_LEN];
    ngx_array_t                 hosts;       /* of ..._hosts_t *, to build */
    ngx_http_token_scope_redis_conf_t  *redis;
    ngx_http_token_scope_cache_conf_t  *cache;
    ngx_shm_zone_t             *status_zone;
    ngx_http_token_scope_counters_t  *counters;  /* in status_zone */

    /* counters whose labels the configuration fixes: keys, servers */
    ngx_shm_zone_t             *labels_zone;
    ngx_atomic_t               *labeled;     /* in labels_zone */
    uint32_t                    layout;      /* of the labels, a CRC32 */
    ngx_array_t                 key_labels;  /* of ..._key_label_t */
    ngx_array_t                 servers;     /* of ngx_str_t */
    ngx_uint_t                  nkeys;       /* keys loaded */

    ngx_uint_t                  opaque;      /* some location looks up */
    ngx_array_t                 kids;        /* of ngx_str_t, for status */
    ngx_array_t                 catalogs;    /* of ..._catalog_t */
    ngx_int_t                   request_id_index;

    /* claims kept for $token_scope_claim_*, issuer and audience checks */
    ngx_array_t                *claims;      /* of ts_claim_t, no values */
    ngx_uint_t                  claim_checks;  /* NGX_HTTP_TOKEN_SCOPE_ISS */

    ngx_array_t                *key_requests;  /* of ..._jwks_t *, or NULL */
} ngx_http_token_scope_main_conf_t;


typedef struct {
    ngx_str_t                   name;
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_token_scope_name_t;


/* where a directive is, for the mistakes found when merging */
typedef struct {
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_token_scope_where_t;


typedef struct {
    /* token_scope: off, a list of names or a variable */
    ngx_flag_t                  enable;
    ngx_array_t                *names;       /* of ..._name_t */
    ngx_http_complex_value_t   *required_value;
    ts_required_t               required;

    ngx_http_token_scope_hosts_t  *hosts;

    ts_keyset_t                *keys;
    /* of the keyset and the tables: keys the verified-token cache */
    u_char                      cache_salt[TS_SHA256_LEN];

    /* token_scope_key_request; the salt with its keys, the worker's */
    ngx_http_token_scope_jwks_t  *jwks;
    u_char                      jwks_salt[TS_SHA256_LEN];
    ngx_uint_t                  jwks_generation;  /* of jwks_salt, + 1 */
    ngx_flag_t                  verify;
    time_t                      leeway;
    size_t                      max_size;
    ngx_uint_t                  access;
    ngx_uint_t                  environment;
    ngx_uint_t                  types;
    ngx_flag_t                  legacy;
    ngx_uint_t                  mode;
    ngx_uint_t                  deny_status;
    ngx_str_t                   origin;
    ngx_uint_t                  error_format;
    ngx_uint_t                  log_level;
    ngx_uint_t                  public;
    ngx_http_complex_value_t   *subject;
    ngx_flag_t                  opaque;
    time_t                      opaque_ttl;
    time_t                      opaque_miss_ttl;
    ngx_http_token_scope_catalog_t  *operations;
    ngx_uint_t                  unmatched;

    ngx_flag_t                  revocation;
    ngx_uint_t                  redis_down;

    ngx_array_t                *personal_only_names;
    uint64_t                    personal_only;
    ngx_array_t                *personal_from;   /* of ngx_cidr_t */
    ts_secrets_t               *secrets;
    ngx_uint_t                  secrets_redis;
    ngx_uint_t                  method_override;

    ngx_flag_t                  upstream_headers;
    ngx_uint_t                  preflight;

    ngx_http_token_scope_where_t  enable_at;   /* token_scope */
    ngx_http_token_scope_where_t  opaque_at;
    ngx_http_token_scope_where_t  secrets_at;

    /* a worker said once that this configuration names nothing known */
    ngx_uint_t                  config_logged;

    /* in token_scope_server_decisions_total: index + 1, 0 if none */
    ngx_uint_t                  server;

    /* token_scope_token, _issuer, _audience, _require: NULL if not set */
    ngx_http_complex_value_t   *token_source;
    ngx_array_t                *issuers;     /* of ngx_str_t */
    ngx_array_t                *audiences;   /* of ngx_str_t */
    ngx_array_t                *require;     /* of ngx_http_complex_value_t */
    ngx_uint_t                  require_status;
} ngx_http_token_scope_loc_conf_t;


typedef struct ngx_http_token_scope_lookup_s
    ngx_http_token_scope_lookup_t;

/*
 * The state of one request (a subrequest has its own), found again after
 * an internal redirect through the pool cleanup that owns it.
 *
 * facts:    NONE -> READY                a JWT, parsed and verified at once
 *           NONE -> PENDING -> READY     an opaque token, after Redis
 *           READY -> (NONE) -> READY     made anew under other keys
 *
 * decision: UNDECIDED -> ALLOW | DENY | WOULD_DENY
 *           made in the access phase (a subrequest: preaccess) of each
 *           location the request reaches, by that location's rules; a
 *           variable may compute the facts, never the decision
 */

typedef struct {
    ngx_http_request_t         *request;

    /* the token: the same for every location with the same keys */
    ngx_uint_t                  facts;       /* NGX_HTTP_TOKEN_SCOPE_FACTS_ */
    ngx_http_token_scope_loc_conf_t  *facts_conf;  /* computed under it */
    ts_reason_e                 facts_reason;  /* TS_OK: claims are genuine */
    ts_token_t                  token;
    ngx_str_t                   source;      /* the token, as taken */

    /* an opaque token: its digest, and the Redis lookup it waits for */
    u_char                      digest[TS_SHA256_LEN];
    ngx_uint_t                  opaque;      /* NGX_HTTP_TOKEN_SCOPE_OPAQUE_ */
    ngx_uint_t                  fallback;    /* if Redis cannot answer */
    ngx_http_token_scope_lookup_t  *lookup;
    ngx_event_t                 wake;

    /* the decision, of the location configuration in conf */
    ngx_http_token_scope_loc_conf_t  *conf;
    ngx_uint_t                  decision;
    ts_reason_e                 reason;
    ngx_uint_t                  status;      /* of a refusal */
    const char                 *why;         /* of reason operation, config */
    ts_required_t               required;
    ts_required_t               missing;
    const ts_op_t              *op;

    ngx_buf_t                  *answer;      /* the body the filter sends */

    uint64_t                    spent;       /* ns in the module's handlers */

    ngx_msec_t                  key_since;   /* waits for a key fetch */

    unsigned                    waiting:1;   /* phases wait for Redis */
    unsigned                    key_wait:1;  /* ... or for a key fetch */
    unsigned                    key_waited:1;
} ngx_http_token_scope_ctx_t;


extern ngx_module_t  ngx_http_token_scope_module;


ngx_http_token_scope_ctx_t *ngx_http_token_scope_get_ctx(
    ngx_http_request_t *r);
void ngx_http_token_scope_resume(ngx_http_token_scope_ctx_t *ctx);
ngx_http_token_scope_ctx_t *ngx_http_token_scope_create_ctx(
    ngx_http_request_t *r);
ngx_uint_t ngx_http_token_scope_entered(ngx_http_request_t *r);
ngx_uint_t ngx_http_token_scope_refused_here(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_facts(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_uint_t wait);
ngx_int_t ngx_http_token_scope_get_token(ngx_http_request_t *r,
    ngx_str_t *token);
ngx_http_token_scope_ctx_t *ngx_http_token_scope_known(
    ngx_http_request_t *r);
ngx_int_t ngx_http_token_scope_decide(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_refuse(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_token_scope_add_variables(ngx_conf_t *cf);

void *ngx_http_token_scope_create_main_conf(ngx_conf_t *cf);
char *ngx_http_token_scope_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_token_scope_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_token_scope_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
char *ngx_http_token_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_token_scope_resolve(ngx_conf_t *cf, ngx_array_t *names,
    ts_required_t *req);
ngx_array_t *ngx_http_token_scope_names(ngx_conf_t *cf);
void ngx_http_token_scope_where(ngx_conf_t *cf,
    ngx_http_token_scope_where_t *at);
ngx_int_t ngx_http_token_scope_headers(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
ngx_uint_t ngx_http_token_scope_preflight(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_variable_uri(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
char *ngx_http_token_scope_hosts_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_token_scope_hosts_init(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf);
ngx_http_token_scope_host_t *ngx_http_token_scope_host(ngx_http_request_t *r,
    ngx_http_token_scope_hosts_t *hosts, ngx_str_t *name);
char *ngx_http_token_scope_category(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_types(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_deny_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_personal_only(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_personal_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_verify_warn(ngx_conf_t *cf, void *post,
    void *data);
ngx_shm_zone_t *ngx_http_token_scope_shm_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size, ngx_shm_zone_init_pt init, void *conf);
ssize_t ngx_http_token_scope_zone_size(ngx_conf_t *cf, ngx_str_t *param,
    u_char *start);
int ngx_http_token_scope_base64url(u_char *dst, size_t *dst_len,
    const u_char *src, size_t len);
u_char *ngx_http_token_scope_read_file(ngx_conf_t *cf, ngx_str_t *name,
    size_t *len);
ngx_int_t ngx_http_token_scope_password_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *password);
char *ngx_http_token_scope_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_service_secrets(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_token_scope_operations_block(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_token_scope_operations_use(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_token_scope_status_zone(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf);
void ngx_http_token_scope_count(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
char *ngx_http_token_scope_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
uint64_t ngx_http_token_scope_clock(void);
void ngx_http_token_scope_count_time(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
void ngx_http_token_scope_count_verify(ngx_http_request_t *r,
    ts_token_t *tok, ts_reason_e reason);
void ngx_http_token_scope_count_redis(ngx_http_token_scope_redis_t *rd,
    ngx_uint_t reconnect);
void ngx_http_token_scope_count_lookup(ngx_http_request_t *r,
    ngx_uint_t result);
ngx_int_t ngx_http_token_scope_status_server(ngx_conf_t *cf,
    ngx_http_token_scope_loc_conf_t *tlcf);
void ngx_http_token_scope_cache_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_cache_stats_t *stats);
ngx_int_t ngx_http_token_scope_cache_lookup(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *token, ts_token_t *tok,
    u_char *digest);
void ngx_http_token_scope_cache_store(ngx_http_request_t *r, ts_token_t *tok,
    u_char *digest);
char *ngx_http_token_scope_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_token_scope_revocation_secret(ngx_http_request_t *r,
    ts_str_t *service, u_char *digest);
ts_reason_e ngx_http_token_scope_revoked(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ts_token_t *tok);
void ngx_http_token_scope_revocation_state(
    ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_revocation_state_t *state);
ngx_int_t ngx_http_token_scope_revocation_zone(ngx_conf_t *cf,
    ngx_http_token_scope_redis_conf_t *rcf, size_t size);
ngx_int_t ngx_http_token_scope_revocation_writer(
    ngx_http_token_scope_redis_conf_t *rcf, ngx_log_t *log);
int64_t ngx_http_token_scope_revocation_clock(void);
int64_t ngx_http_token_scope_revocation_deadline(void);
ngx_int_t ngx_http_token_scope_revocation_begin(void);
ngx_int_t ngx_http_token_scope_revocation_apply(
    ngx_http_token_scope_batch_t *batch, int64_t deadline);
ngx_int_t ngx_http_token_scope_revocation_commit(ngx_uint_t *count);
void ngx_http_token_scope_revocation_abort(void);
void ngx_http_token_scope_revocation_exit(void);
ngx_int_t ngx_http_token_scope_revocation_change(ts_revoke_msg_t *msg);
ngx_int_t ngx_http_token_scope_revocation_fresh(ngx_uint_t connected);
char *ngx_http_token_scope_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_token_scope_redis_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_token_scope_redis_start(ngx_http_token_scope_redis_t *rd,
    ngx_cycle_t *cycle);
ngx_int_t ngx_http_token_scope_redis_command(ngx_http_token_scope_redis_t *rd,
    ngx_http_token_scope_reply_pt fn, void *privdata, const char *fmt, ...);
void ngx_http_token_scope_redis_working(ngx_http_token_scope_redis_t *rd);
void ngx_http_token_scope_redis_fail(ngx_http_token_scope_redis_t *rd,
    const char *what, const char *err);
void ngx_http_token_scope_redis_close(ngx_http_token_scope_redis_t *rd);
ngx_int_t ngx_http_token_scope_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *token, ngx_uint_t wait);
void ngx_http_token_scope_opaque_cancel(ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_opaque_wait(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
ngx_int_t ngx_http_token_scope_opaque_init_process(ngx_cycle_t *cycle);
char *ngx_http_token_scope_opaque_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
void ngx_http_token_scope_opaque_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_token_scope_cache_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
void ngx_http_token_scope_cache_store_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t changes);
ngx_uint_t ngx_http_token_scope_cache_changes(
    ngx_http_token_scope_main_conf_t *tmcf);
void ngx_http_token_scope_cache_forget(ngx_http_token_scope_main_conf_t *tmcf,
    u_char *digest, ngx_log_t *log);
void ngx_http_token_scope_redis_exit_process(ngx_cycle_t *cycle);
ngx_str_t *ngx_http_token_scope_format_required(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
char *ngx_http_token_scope_values(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_token_scope_require(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_token_scope_claims_merge(ngx_http_token_scope_loc_conf_t *prev,
    ngx_http_token_scope_loc_conf_t *conf);
ngx_int_t ngx_http_token_scope_claims_init(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf);
ngx_int_t ngx_http_token_scope_claims_variables(ngx_conf_t *cf);
void ngx_http_token_scope_claims_late(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf);
ngx_int_t ngx_http_token_scope_claims_keep(ngx_http_request_t *r,
    ts_token_t *tok);
ngx_int_t ngx_http_token_scope_claims_field(ngx_http_request_t *r,
    ts_token_t *tok, u_char *name, size_t len, u_char *value, size_t size);
ts_reason_e ngx_http_token_scope_claims_check(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
size_t ngx_http_token_scope_claims_size(ts_token_t *tok);
u_char *ngx_http_token_scope_claims_write(u_char *p, ts_token_t *tok);
void ngx_http_token_scope_jwks_sync(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks);
ts_reason_e ngx_http_token_scope_jwks_verify(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks, ngx_http_token_scope_ctx_t *ctx,
    ngx_uint_t wait);
u_char *ngx_http_token_scope_jwks_salt(ngx_http_token_scope_loc_conf_t *tlcf);
ngx_uint_t ngx_http_token_scope_jwks_own(ngx_http_request_t *r);
void ngx_http_token_scope_jwks_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_jwks_state_t *state);
char *ngx_http_token_scope_key_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_token_scope_claims_read(ngx_http_request_t *r,
    ts_token_t *tok, u_char *p, size_t len);


#endif /* _NGX_HTTP_TOKEN_SCOPE_H_INCLUDED_ */
