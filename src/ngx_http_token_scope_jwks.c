
/*
 * Keys over HTTP (token_scope_key_request): a JWKS fetched by a
 * subrequest to a location of the configuration, which proxies to the
 * identity provider, so that TLS, the resolver and the timeouts are
 * nginx's own.
 *
 * The answer lives in a shared zone, once per node and across reloads:
 * the raw JWKS, when it was fetched, when to fetch it again and a
 * generation number.  Each worker parses it into keys of its own when it
 * sees a new generation (an EVP_PKEY cannot live in shared memory).  One
 * fetch at a time per node: a worker takes the zone's lease before it
 * starts one; a lease older than NGX_HTTP_TOKEN_SCOPE_JWKS_LEASE is taken
 * as the remains of a fetch that died with its worker.
 *
 *     keys fresh ---(refresh time)---> a request starts a background
 *                                      fetch and goes on
 *     unknown kid ---(min_refresh passed)---> fetch, the request waits
 *     unknown kid ---(a fetch under way)---> the request waits for it
 *     unknown kid ---(otherwise)---> refused at once, no fetch
 *
 * A waiting request polls the zone, whichever worker fetches, and is
 * decided once the lease is given back: pass if its kid appeared, else
 * unknown_key.  A failed fetch keeps the last good keys.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_JWKS_ZONE   (256 * 1024)
#define NGX_HTTP_TOKEN_SCOPE_JWKS_MAX    (128 * 1024)
#define NGX_HTTP_TOKEN_SCOPE_JWKS_LEASE  10      /* seconds */
#define NGX_HTTP_TOKEN_SCOPE_JWKS_POLL   10      /* ms */

/* what a request does about a kid no key has */
#define NGX_HTTP_TOKEN_SCOPE_JWKS_REFUSE  0
#define NGX_HTTP_TOKEN_SCOPE_JWKS_WAIT    1
#define NGX_HTTP_TOKEN_SCOPE_JWKS_FETCH   2


typedef struct {
    ngx_uint_t                  generation;  /* of the body, 0: none yet */
    time_t                      fetched;     /* the last good answer */
    time_t                      refresh;     /* fetch again from then on */
    /* ngx_current_msec: one monotonic clock, each worker's copy late */
    ngx_msec_t                  attempted;   /* the last fetch began */
    ngx_msec_t                  fetching;    /* the lease: since, or 0 */
    ngx_uint_t                  failing;     /* an error was logged */
    ngx_uint_t                  nkeys;
    ngx_uint_t                  fetches[NGX_HTTP_TOKEN_SCOPE_FETCH_RESULTS];
    size_t                      len;
    u_char                     *body;        /* in the zone's slab */
} ngx_http_token_scope_jwks_sh_t;


struct ngx_http_token_scope_jwks_s {
    ngx_str_t                   uri;
    time_t                      valid;
    time_t                      refresh;     /* NGX_CONF_UNSET: valid / 2 */
    time_t                      min_refresh;
    ngx_shm_zone_t             *shm_zone;
    ngx_slab_pool_t            *shpool;
    ngx_http_token_scope_jwks_sh_t  *sh;     /* in shm_zone */

    /* the worker's own: the keys of the generation it parsed last */
    ts_keyset_t                *keys;
    ngx_uint_t                  generation;
};


/* one fetch, in the pool of the request that started it */
typedef struct {
    ngx_http_token_scope_jwks_t  *jwks;
    ngx_log_t                  *log;
    unsigned                    done:1;
} ngx_http_token_scope_fetch_t;


static ngx_int_t ngx_http_token_scope_jwks_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_token_scope_jwks_adopt(ngx_http_token_scope_jwks_t *jwks,
    ts_keyset_t *keys, ngx_uint_t generation);
static ts_keyset_t *ngx_http_token_scope_jwks_parse(u_char *body, size_t len,
    ngx_log_t *log, char *err, size_t errlen);
static ngx_int_t ngx_http_token_scope_jwks_start(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks);
static ngx_int_t ngx_http_token_scope_jwks_done(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_token_scope_jwks_failed(
    ngx_http_token_scope_fetch_t *fetch, ngx_uint_t result, const char *why);
static time_t ngx_http_token_scope_jwks_max_age(ngx_http_request_t *r);
static void ngx_http_token_scope_jwks_cleanup(void *data);
static void ngx_http_token_scope_jwks_wake(ngx_event_t *ev);
static ngx_uint_t ngx_http_token_scope_jwks_busy(
    ngx_http_token_scope_jwks_sh_t *sh);
static ngx_uint_t ngx_http_token_scope_jwks_may(
    ngx_http_token_scope_jwks_t *jwks);


/*
 * The worker's keys follow the zone: parsed anew when the zone holds a
 * generation the worker has not seen; a background fetch is started when
 * the refresh time has come.  Called once per request that verifies.
 */

void
ngx_http_token_scope_jwks_sync(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks)
{
    u_char                          *body;
    size_t                           len;
    time_t                           now;
    ngx_uint_t                       generation, due;
    ts_keyset_t                     *keys;
    ngx_http_token_scope_jwks_sh_t  *sh;
    char                             err[TS_ERROR_MAX];

    sh = jwks->sh;
    now = ngx_time();

    /*
     * the steady state without the lock: words read as they are, and
     * looked at again under it if anything is to be done
     */
    if (sh->generation == jwks->generation && now < sh->refresh) {
        return;
    }

    body = NULL;
    len = 0;
    due = 0;

    ngx_shmtx_lock(&jwks->shpool->mutex);

    generation = sh->generation;

    if (generation != jwks->generation && sh->len) {
        /* a copy: the body may be replaced once the lock is given up */
        body = ngx_pnalloc(r->pool, sh->len);
        if (body != NULL) {
            ngx_memcpy(body, sh->body, sh->len);
            len = sh->len;
        }
    }

    if (r == r->main
        && sh->generation != 0
        && now >= sh->refresh
        && ngx_http_token_scope_jwks_may(jwks))
    {
        sh->fetching = ngx_current_msec;
        sh->attempted = ngx_current_msec;
        due = 1;
    }

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    if (body != NULL) {
        keys = ngx_http_token_scope_jwks_parse(body, len, r->connection->log,
                                               err, sizeof(err));
        if (keys == NULL) {
            /* checked before it was stored: only memory can fail */
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "token scope: keys from \"%V\" not taken: %s",
                          &jwks->uri, err);
        }

        ngx_http_token_scope_jwks_adopt(jwks, keys, generation);
    }

    if (due) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "token scope key request: refresh of \"%V\"",
                       &jwks->uri);

        (void) ngx_http_token_scope_jwks_start(r, jwks);
    }
}


/*
 * A token that none of the files' keys verifies: the fetched keys, and if
 * its kid is unknown there too, a fetch to wait for (ctx->key_wait) or a
 * refusal.  Without wait (a variable) no fetch is started.
 */

ts_reason_e
ngx_http_token_scope_jwks_verify(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks, ngx_http_token_scope_ctx_t *ctx,
    ngx_uint_t wait)
{
    ts_reason_e                      reason;
    ngx_uint_t                       action;
    ngx_http_token_scope_jwks_sh_t  *sh;

    if (jwks->keys != NULL && jwks->keys->nkeys) {
        reason = ts_token_verify(jwks->keys, &ctx->token);
        if (reason != TS_UNKNOWN_KEY) {
            return reason;
        }
    }

    /* a request waits once: decided by the keys the fetch brought */
    if (ctx->key_waited) {
        return TS_UNKNOWN_KEY;
    }

    sh = jwks->sh;

    ngx_shmtx_lock(&jwks->shpool->mutex);

    if (ngx_http_token_scope_jwks_busy(sh)) {
        action = NGX_HTTP_TOKEN_SCOPE_JWKS_WAIT;

    } else if (ngx_http_token_scope_jwks_may(jwks)) {
        action = NGX_HTTP_TOKEN_SCOPE_JWKS_FETCH;

        if (wait) {
            sh->fetching = ngx_current_msec;
            sh->attempted = ngx_current_msec;
        }

    } else {
        action = NGX_HTTP_TOKEN_SCOPE_JWKS_REFUSE;
    }

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    if (action == NGX_HTTP_TOKEN_SCOPE_JWKS_REFUSE) {
        return TS_UNKNOWN_KEY;
    }

    ctx->key_wait = 1;

    if (!wait) {
        return TS_UNKNOWN_KEY;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope key request: unknown kid, %s \"%V\"",
                   action == NGX_HTTP_TOKEN_SCOPE_JWKS_FETCH
                   ? "fetching" : "waiting for", &jwks->uri);

    if (action == NGX_HTTP_TOKEN_SCOPE_JWKS_FETCH
        && ngx_http_token_scope_jwks_start(r, jwks) != NGX_OK)
    {
        ctx->key_wait = 0;
        return TS_UNKNOWN_KEY;
    }

    ctx->key_since = ngx_current_msec;

    ngx_memzero(&ctx->wake, sizeof(ngx_event_t));
    ctx->wake.handler = ngx_http_token_scope_jwks_wake;
    ctx->wake.data = ctx;
    ctx->wake.log = r->connection->log;

    ngx_add_timer(&ctx->wake, NGX_HTTP_TOKEN_SCOPE_JWKS_POLL);

    return TS_UNKNOWN_KEY;
}


/* the key of the verified-token cache: of the fetched keys too */

u_char *
ngx_http_token_scope_jwks_salt(ngx_http_token_scope_loc_conf_t *tlcf)
{
    static u_char  none[TS_SHA256_LEN];

    ngx_http_token_scope_jwks_t  *jwks;

    jwks = tlcf->jwks;

    if (jwks == NULL) {
        return tlcf->cache_salt;
    }

    /* generation + 1: the salt of generation 0 is computed too */
    if (tlcf->jwks_generation != jwks->generation + 1) {
        if (ts_sha256_pair(tlcf->cache_salt, TS_SHA256_LEN,
                           jwks->keys ? jwks->keys->fingerprint : none,
                           TS_SHA256_LEN, tlcf->jwks_salt)
            != 0)
        {
            return NULL;
        }

        tlcf->jwks_generation = jwks->generation + 1;
    }

    return tlcf->jwks_salt;
}


/* the module's own fetch: no token is asked of it */

ngx_uint_t
ngx_http_token_scope_jwks_own(ngx_http_request_t *r)
{
    return r != r->main
           && r->post_subrequest != NULL
           && r->post_subrequest->handler == ngx_http_token_scope_jwks_done;
}


void
ngx_http_token_scope_jwks_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_jwks_state_t *state)
{
    time_t                           now;
    ngx_uint_t                       i, j;
    ngx_http_token_scope_jwks_t    **jwks;
    ngx_http_token_scope_jwks_sh_t  *sh;

    ngx_memzero(state, sizeof(ngx_http_token_scope_jwks_state_t));
    state->age = -1;

    if (tmcf->key_requests == NULL) {
        return;
    }

    now = ngx_time();
    jwks = tmcf->key_requests->elts;

    for (i = 0; i < tmcf->key_requests->nelts; i++) {
        sh = jwks[i]->sh;

        ngx_shmtx_lock(&jwks[i]->shpool->mutex);

        for (j = 0; j < NGX_HTTP_TOKEN_SCOPE_FETCH_RESULTS; j++) {
            state->fetches[j] += sh->fetches[j];
        }

        state->keys += sh->nkeys;

        /* the oldest of the answers held */
        if (sh->generation && now - sh->fetched > state->age) {
            state->age = now - sh->fetched;
        }

        ngx_shmtx_unlock(&jwks[i]->shpool->mutex);
    }
}


/*
 * A fetch is under way: its lease is held and not too old.  The times are
 * each worker's cached ngx_current_msec, which lags the clock by the turn
 * of its event loop: a lease another worker took "later" than this one's
 * now is a difference below zero, signed, and a fetch that just began.
 */

static ngx_uint_t
ngx_http_token_scope_jwks_busy(ngx_http_token_scope_jwks_sh_t *sh)
{
    return sh->fetching != 0
           && (ngx_msec_int_t) (ngx_current_msec - sh->fetching)
              < NGX_HTTP_TOKEN_SCOPE_JWKS_LEASE * 1000;
}


/* a fetch may begin: none under way, and none began in min_refresh */

static ngx_uint_t
ngx_http_token_scope_jwks_may(ngx_http_token_scope_jwks_t *jwks)
{
    ngx_http_token_scope_jwks_sh_t  *sh;

    sh = jwks->sh;

    return !ngx_http_token_scope_jwks_busy(sh)
           && (sh->attempted == 0
               || (ngx_msec_int_t) (ngx_current_msec - sh->attempted)
                  >= (ngx_msec_int_t) jwks->min_refresh * 1000);
}


static void
ngx_http_token_scope_jwks_adopt(ngx_http_token_scope_jwks_t *jwks,
    ts_keyset_t *keys, ngx_uint_t generation)
{
    if (keys != NULL) {
        if (jwks->keys != NULL) {
            ts_keyset_free(jwks->keys);
            ngx_free(jwks->keys);
        }

        jwks->keys = keys;
    }

    jwks->generation = generation;
}


/* the keys of a JWKS, in the worker's memory; NULL: err says why */

static ts_keyset_t *
ngx_http_token_scope_jwks_parse(u_char *body, size_t len, ngx_log_t *log,
    char *err, size_t errlen)
{
    ts_keyset_t  *keys;

    keys = ngx_alloc(sizeof(ts_keyset_t), log);
    if (keys == NULL) {
        ngx_cpystrn((u_char *) err, (u_char *) "out of memory", errlen);
        return NULL;
    }

    ngx_memzero(keys, sizeof(ts_keyset_t));

    if (ts_keyset_add_jwks(keys, body, len, ngx_http_token_scope_base64url,
                           err, errlen)
        != 0)
    {
        goto failed;
    }

    if (keys->nkeys == 0) {
        ngx_cpystrn((u_char *) err, (u_char *) "no signing key", errlen);
        goto failed;
    }

    return keys;

failed:

    ts_keyset_free(keys);
    ngx_free(keys);

    return NULL;
}


/*
 * A background subrequest, in memory: the request that starts it goes on
 * (or waits by its own timer); the lease is the caller's, given back by
 * the subrequest's end or by the pool cleanup if it never ends
 */

static ngx_int_t
ngx_http_token_scope_jwks_start(ngx_http_request_t *r,
    ngx_http_token_scope_jwks_t *jwks)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_request_t            *sr;
    ngx_http_post_subrequest_t    *ps;
    ngx_http_token_scope_fetch_t  *fetch;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_token_scope_fetch_t));
    if (cln == NULL) {
        /* no record to end: the lease is given back here */
        ngx_shmtx_lock(&jwks->shpool->mutex);
        jwks->sh->fetching = 0;
        ngx_shmtx_unlock(&jwks->shpool->mutex);

        return NGX_ERROR;
    }

    fetch = cln->data;
    fetch->jwks = jwks;
    fetch->log = r->connection->log;
    fetch->done = 0;

    cln->handler = ngx_http_token_scope_jwks_cleanup;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        goto failed;
    }

    ps->handler = ngx_http_token_scope_jwks_done;
    ps->data = fetch;

    if (ngx_http_subrequest(r, &jwks->uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_IN_MEMORY
                            |NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        goto failed;
    }

    /* a GET without the client's body, whatever the client sent */
    sr->method = NGX_HTTP_GET;
    ngx_str_set(&sr->method_name, "GET");

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        /* the subrequest runs, and ends the fetch, all the same */
        return NGX_ERROR;
    }

    return NGX_OK;

failed:

    fetch->done = 1;

    ngx_http_token_scope_jwks_failed(fetch, NGX_HTTP_TOKEN_SCOPE_FETCH_ERROR,
                                     "no subrequest");

    return NGX_ERROR;
}


/* the answer: published if it is a JWKS with a key to use */

static ngx_int_t
ngx_http_token_scope_jwks_done(ngx_http_request_t *r, void *data,
    ngx_int_t rc)
{
    ngx_http_token_scope_fetch_t *fetch = data;

    u_char                          *body, *old;
    size_t                           len;
    time_t                           now, valid, refresh, max_age;
    ngx_uint_t                       status, generation, recovered;
    ts_keyset_t                     *keys;
    ngx_http_upstream_t             *u;
    ngx_http_token_scope_jwks_t     *jwks;
    ngx_http_token_scope_jwks_sh_t  *sh;
    char                             err[TS_ERROR_MAX];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope key request: done %i, %ui", rc,
                   (ngx_uint_t) fetch->done);

    if (fetch->done) {
        return rc;
    }

    fetch->done = 1;
    fetch->log = r->connection->log;

    jwks = fetch->jwks;
    u = r->upstream;

    status = (u != NULL) ? u->headers_in.status_n : 0;

    if (u == NULL) {
        /* a static file, a "return": not an answer kept in memory */
        ngx_http_token_scope_jwks_failed(fetch,
                                         NGX_HTTP_TOKEN_SCOPE_FETCH_ERROR,
                                         "the location does not proxy");
        return rc;
    }

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE
        || status != NGX_HTTP_OK)
    {
        ngx_snprintf((u_char *) err, sizeof(err), "status %ui%Z", status);
        ngx_http_token_scope_jwks_failed(fetch,
                                         NGX_HTTP_TOKEN_SCOPE_FETCH_ERROR,
                                         err);
        return rc;
    }

    body = u->buffer.pos;
    len = u->buffer.last - u->buffer.pos;

    if (len == 0 || len > NGX_HTTP_TOKEN_SCOPE_JWKS_MAX) {
        ngx_http_token_scope_jwks_failed(fetch,
                                         NGX_HTTP_TOKEN_SCOPE_FETCH_INVALID,
                                         len ? "the answer is too large"
                                             : "the answer is empty");
        return rc;
    }

    keys = ngx_http_token_scope_jwks_parse(body, len, r->connection->log,
                                           err, sizeof(err));
    if (keys == NULL) {
        ngx_http_token_scope_jwks_failed(fetch,
                                         NGX_HTTP_TOKEN_SCOPE_FETCH_INVALID,
                                         err);
        return rc;
    }

    now = ngx_time();
    valid = jwks->valid;
    max_age = ngx_http_token_scope_jwks_max_age(r);

    /* the provider's word when it is shorter */
    if (max_age >= 0 && max_age < valid) {
        valid = max_age;
    }

    refresh = (jwks->refresh == NGX_CONF_UNSET) ? valid / 2
                                                : ngx_min(jwks->refresh, valid);

    sh = jwks->sh;

    ngx_shmtx_lock(&jwks->shpool->mutex);

    old = sh->body;

    sh->body = ngx_slab_alloc_locked(jwks->shpool, len);

    if (sh->body == NULL) {
        sh->body = old;
        ngx_shmtx_unlock(&jwks->shpool->mutex);

        ts_keyset_free(keys);
        ngx_free(keys);

        ngx_http_token_scope_jwks_failed(fetch,
                                         NGX_HTTP_TOKEN_SCOPE_FETCH_INVALID,
                                         "no room in the zone");
        return rc;
    }

    if (old != NULL) {
        ngx_slab_free_locked(jwks->shpool, old);
    }

    ngx_memcpy(sh->body, body, len);
    sh->len = len;
    sh->generation++;
    sh->fetched = now;
    sh->refresh = now + refresh;
    sh->fetching = 0;
    sh->nkeys = keys->nkeys;
    sh->fetches[NGX_HTTP_TOKEN_SCOPE_FETCH_OK]++;

    recovered = sh->failing;
    sh->failing = 0;
    generation = sh->generation;

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    ngx_http_token_scope_jwks_adopt(jwks, keys, generation);

    if (recovered) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "token scope: keys from \"%V\" fetched again",
                      &jwks->uri);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope key request: %uz keys, generation %ui, "
                   "refresh in %T s", keys->nkeys, generation, refresh);

    return rc;
}


/*
 * A fetch that brought no keys: the last good ones stay; one error line
 * for a streak of failures
 */

static void
ngx_http_token_scope_jwks_failed(ngx_http_token_scope_fetch_t *fetch,
    ngx_uint_t result, const char *why)
{
    ngx_uint_t                    first;
    ngx_http_token_scope_jwks_t  *jwks;

    jwks = fetch->jwks;

    ngx_shmtx_lock(&jwks->shpool->mutex);

    jwks->sh->fetching = 0;
    jwks->sh->fetches[result]++;

    first = !jwks->sh->failing;
    jwks->sh->failing = 1;

    ngx_shmtx_unlock(&jwks->shpool->mutex);

    if (first) {
        ngx_log_error(NGX_LOG_ERR, fetch->log, 0,
                      "token scope: keys from \"%V\" not fetched (%s), "
                      "the last good keys stay", &jwks->uri, why);
    }
}


/* max-age of the answer's Cache-Control, -1 if none */

static time_t
ngx_http_token_scope_jwks_max_age(ngx_http_request_t *r)
{
    u_char           *p, *last;
    time_t            age;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->upstream->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Cache-Control") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Cache-Control",
                               sizeof("Cache-Control") - 1)
               != 0)
        {
            continue;
        }

        last = h[i].value.data + h[i].value.len;

        p = ngx_strlcasestrn(h[i].value.data, last, (u_char *) "max-age=",
                             sizeof("max-age=") - 1 - 1);
        if (p == NULL) {
            continue;
        }

        p += sizeof("max-age=") - 1;

        for (age = 0; p < last && *p >= '0' && *p <= '9'; p++) {
            if (age > NGX_MAX_INT32_VALUE / 10) {
                break;
            }

            age = age * 10 + (*p - '0');
        }

        return age;
    }

    return -1;
}


/* the request's pool goes: a fetch that never ended gives the lease back */

static void
ngx_http_token_scope_jwks_cleanup(void *data)
{
    ngx_http_token_scope_fetch_t *fetch = data;

    if (fetch->done || fetch->jwks == NULL) {
        return;
    }

    fetch->done = 1;
    fetch->log = ngx_cycle->log;

    ngx_http_token_scope_jwks_failed(fetch, NGX_HTTP_TOKEN_SCOPE_FETCH_ERROR,
                                     "the request ended first");
}


/* a waiting request looks at the zone: is the fetch over? */

static void
ngx_http_token_scope_jwks_wake(ngx_event_t *ev)
{
    ngx_uint_t                    busy;
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_token_scope_ctx_t   *ctx;
    ngx_http_token_scope_jwks_t  *jwks;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;
    jwks = ctx->facts_conf->jwks;

    ngx_shmtx_lock(&jwks->shpool->mutex);
    busy = ngx_http_token_scope_jwks_busy(jwks->sh);
    ngx_shmtx_unlock(&jwks->shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "token scope key request: %s",
                   busy ? "still waiting" : "fetch over");

    if (busy
        && ngx_current_msec - ctx->key_since
           < NGX_HTTP_TOKEN_SCOPE_JWKS_LEASE * 1000)
    {
        ngx_add_timer(ev, NGX_HTTP_TOKEN_SCOPE_JWKS_POLL);
        return;
    }

    /* the facts are made anew, under the keys the fetch brought */
    ctx->key_wait = 0;
    ctx->key_waited = 1;
    ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_NONE;

    ngx_http_token_scope_resume(ctx);
}


char *
ngx_http_token_scope_key_request(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    time_t                             *t;
    ngx_str_t                          *value, s, name;
    ngx_uint_t                          i;
    ngx_shm_zone_t                     *shm_zone;
    ngx_http_token_scope_jwks_t        *jwks, **p;
    ngx_http_token_scope_main_conf_t   *tmcf;

    if (tlcf->jwks != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a URI of this server", &value[1]);
        return NGX_CONF_ERROR;
    }

    jwks = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_jwks_t));
    if (jwks == NULL) {
        return NGX_CONF_ERROR;
    }

    jwks->uri = value[1];
    jwks->valid = 3600;
    jwks->refresh = NGX_CONF_UNSET;
    jwks->min_refresh = 30;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "valid=", 6) == 0) {
            t = &jwks->valid;
            s.data = value[i].data + 6;

        } else if (ngx_strncmp(value[i].data, "refresh=", 8) == 0) {
            t = &jwks->refresh;
            s.data = value[i].data + 8;

        } else if (ngx_strncmp(value[i].data, "min_refresh=", 12) == 0) {
            t = &jwks->min_refresh;
            s.data = value[i].data + 12;

        } else {
            goto invalid;
        }

        s.len = value[i].data + value[i].len - s.data;

        *t = ngx_parse_time(&s, 1);

        if (*t == (time_t) NGX_ERROR || (t == &jwks->valid && *t == 0)) {
            goto invalid;
        }
    }

    /* one zone per URI: every location that names it shares the keys */
    name.len = sizeof("token_scope_keys ") - 1 + jwks->uri.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(name.data, "token_scope_keys %V", &jwks->uri);

    shm_zone = ngx_shared_memory_add(cf, &name,
                                     NGX_HTTP_TOKEN_SCOPE_JWKS_ZONE,
                                     &ngx_http_token_scope_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data != NULL) {
        tlcf->jwks = shm_zone->data;

        if (tlcf->jwks->valid != jwks->valid
            || tlcf->jwks->refresh != jwks->refresh
            || tlcf->jwks->min_refresh != jwks->min_refresh)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is requested with other parameters "
                               "elsewhere", &jwks->uri);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    shm_zone->init = ngx_http_token_scope_jwks_init_zone;
    shm_zone->data = jwks;
    jwks->shm_zone = shm_zone;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    if (tmcf->key_requests == NULL) {
        tmcf->key_requests = ngx_array_create(cf->pool, 1,
                                       sizeof(ngx_http_token_scope_jwks_t *));
        if (tmcf->key_requests == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(tmcf->key_requests);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *p = jwks;
    tlcf->jwks = jwks;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_token_scope_jwks_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_jwks_t *ojwks = data;

    ngx_http_token_scope_jwks_t  *jwks;

    jwks = zone->data;

    /* a reload: the keys fetched before stay, no fetch is needed */
    if (ojwks != NULL) {
        jwks->shpool = ojwks->shpool;
        jwks->sh = ojwks->sh;
        return NGX_OK;
    }

    jwks->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        jwks->sh = jwks->shpool->data;
        return NGX_OK;
    }

    jwks->sh = ngx_slab_calloc(jwks->shpool,
                               sizeof(ngx_http_token_scope_jwks_sh_t));
    if (jwks->sh == NULL) {
        return NGX_ERROR;
    }

    jwks->shpool->data = jwks->sh;

    return NGX_OK;
}
