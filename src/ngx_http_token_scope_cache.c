
/*
 * The verified-token cache: a shared memory zone (slab + rbtree + LRU, as
 * limit_req keeps its states) mapping a digest of the token and of the
 * keyset that verified it to the token's decoded claims, so a token seen
 * before costs no base64, JSON or signature work.  Times, revocation and
 * the policy are still checked on every request.
 *
 * Opaque tokens share the zone, keyed by the SHA-256 of the token and of
 * the category tables: the facts Redis gave for a short ttl, kept longer
 * as a fallback for when Redis cannot answer.  That Redis knows no such
 * token is kept for miss_ttl only, in an LRU of its own: a flood of junk
 * tokens evicts other junk, never a known token's fallback.  A change
 * published on the revocation channel drops the entry; a resync after a
 * reconnect outdates them all.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


/* evicting more than a few entries per insert would stall the worker */
#define NGX_HTTP_TOKEN_SCOPE_CACHE_EVICT  4


struct ngx_http_token_scope_cache_sh_s {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_queue_t                 unknown;     /* LRU of unknown tokens */
    ngx_http_token_scope_cache_stats_t  stats;
    ngx_uint_t                  epoch;       /* opaque entries of older die */
    ngx_uint_t                  changes;     /* opaque changes published */
};


typedef struct {
    u_char                      color;
    u_char                      alg;
    u_char                      type;
    u_char                      flags;
    u_char                      kid_len;
    u_char                      id_len;
    u_char                      sid_len;
    u_char                      service_len;
    u_short                     claims_len;  /* kept claims, after service */
    ngx_queue_t                 queue;
    time_t                      expires;     /* then the entry is dropped */
    time_t                      fresh;       /* opaque: then Redis is asked */
    time_t                      stored;
    ngx_uint_t                  epoch;
    uint64_t                    scope;
    uint64_t                    names;
    int64_t                     exp;
    int64_t                     nbf;
    int64_t                     iat;
    int64_t                     oid;
    u_char                      digest[TS_SHA256_LEN];
    u_char                      data[1];     /* kid, id, sid, service */
} ngx_http_token_scope_cache_node_t;


#define NGX_HTTP_TOKEN_SCOPE_HAS_NBF  0x01
#define NGX_HTTP_TOKEN_SCOPE_HAS_IAT  0x02
#define NGX_HTTP_TOKEN_SCOPE_HAS_OID  0x04
#define NGX_HTTP_TOKEN_SCOPE_TEST     0x08
#define NGX_HTTP_TOKEN_SCOPE_NO_EXP   0x10
#define NGX_HTTP_TOKEN_SCOPE_UNKNOWN  0x20    /* Redis has no such token */
#define NGX_HTTP_TOKEN_SCOPE_REVOKED  0x40


static ngx_int_t ngx_http_token_scope_cache_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_token_scope_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_token_scope_cache_node_t *ngx_http_token_scope_cache_find(
    ngx_http_token_scope_cache_sh_t *sh, u_char *digest);
static ngx_http_token_scope_cache_node_t *ngx_http_token_scope_cache_live(
    ngx_http_token_scope_cache_conf_t *ccf, u_char *digest, time_t now);
static void ngx_http_token_scope_cache_expire(
    ngx_http_token_scope_cache_conf_t *ccf, ngx_queue_t *lru, ngx_uint_t n);
static ngx_queue_t *ngx_http_token_scope_cache_lru(
    ngx_http_token_scope_cache_sh_t *sh,
    ngx_http_token_scope_cache_node_t *node);
static ngx_int_t ngx_http_token_scope_cache_key(
    ngx_http_token_scope_main_conf_t *tmcf, u_char *digest, u_char *key);
static ngx_int_t ngx_http_token_scope_cache_copy(ngx_http_request_t *r,
    ngx_http_token_scope_cache_node_t *node, ts_token_t *tok);
static u_char *ngx_http_token_scope_cache_str(u_char *p, ts_str_t *s,
    u_char **to);
static void ngx_http_token_scope_cache_put(ngx_http_request_t *r,
    ts_token_t *tok, u_char *digest, time_t expires, time_t fresh,
    ngx_uint_t flags);
static void ngx_http_token_scope_cache_delete(
    ngx_http_token_scope_cache_conf_t *ccf,
    ngx_http_token_scope_cache_node_t *node);


/*
 * Looks the token up.  NGX_OK: tok holds the cached claims (strings in
 * r->pool); NGX_DECLINED: not cached.  digest is filled for a later
 * ngx_http_token_scope_cache_store().
 */

ngx_int_t
ngx_http_token_scope_cache_lookup(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *token, ts_token_t *tok,
    u_char *digest)
{
    u_char                              *salt;
    ngx_int_t                            rc;
    ngx_slab_pool_t                     *shpool;
    ngx_http_token_scope_cache_sh_t     *sh;
    ngx_http_token_scope_cache_node_t   *node;
    ngx_http_token_scope_main_conf_t    *tmcf;
    ngx_http_token_scope_cache_conf_t   *ccf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    ccf = tmcf->cache;

    if (ccf == NULL || !tlcf->verify
        || (tlcf->keys == NULL && tlcf->jwks == NULL))
    {
        return NGX_DECLINED;
    }

    salt = ngx_http_token_scope_jwks_salt(tlcf);
    if (salt == NULL) {
        return NGX_DECLINED;
    }

    /*
     * the keyset and the category tables are part of the key: after a
     * reload with other keys, or names on other bits, a token misses
     */
    if (ts_sha256_recent(salt, TS_SHA256_LEN, token->data,
                         token->len, digest)
        != 0)
    {
        return NGX_DECLINED;
    }

    node = ngx_http_token_scope_cache_live(ccf, digest, ngx_time());
    if (node == NULL) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;
    sh = ccf->sh;

    ngx_queue_remove(&node->queue);
    ngx_queue_insert_head(ngx_http_token_scope_cache_lru(sh, node),
                          &node->queue);

    sh->stats.hits++;

    rc = ngx_http_token_scope_cache_copy(r, node, tok);

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * The cached facts of an opaque token (ctx->digest) into ctx->token and
 * ctx->opaque.  NGX_OK: fresh; NGX_AGAIN: Redis must be asked again, the
 * facts are the fallback the location's redis_down policy still allows;
 * NGX_DECLINED: nothing usable is cached.
 */

ngx_int_t
ngx_http_token_scope_cache_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    time_t                              now;
    ngx_int_t                           rc;
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_cache_sh_t    *sh;
    ngx_http_token_scope_cache_node_t  *node;
    ngx_http_token_scope_main_conf_t   *tmcf;
    ngx_http_token_scope_cache_conf_t  *ccf;
    u_char                              key[TS_SHA256_LEN];

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    ccf = tmcf->cache;

    if (ccf == NULL
        || ngx_http_token_scope_cache_key(tmcf, ctx->digest, key) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    now = ngx_time();

    node = ngx_http_token_scope_cache_live(ccf, key, now);
    if (node == NULL) {
        return NGX_DECLINED;
    }

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;
    sh = ccf->sh;

    if (node->fresh <= now || node->epoch != sh->epoch) {
        sh->stats.misses++;

        /* a fallback no older than max_stale, unless redis_down allow */
        if (tlcf->redis_down == NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY
            && node->stored + tmcf->redis->max_stale <= now)
        {
            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_DECLINED;
        }

        rc = NGX_AGAIN;

    } else {
        sh->stats.hits++;
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(ngx_http_token_scope_cache_lru(sh, node),
                              &node->queue);
        rc = NGX_OK;
    }

    if (ngx_http_token_scope_cache_copy(r, node, &ctx->token) != NGX_OK) {
        rc = NGX_DECLINED;
    }

    ctx->opaque = (node->flags & NGX_HTTP_TOKEN_SCOPE_UNKNOWN)
                  ? NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND
                  : (node->flags & NGX_HTTP_TOKEN_SCOPE_REVOKED)
                    ? NGX_HTTP_TOKEN_SCOPE_OPAQUE_REVOKED
                    : NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND;

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/*
 * The entry of digest that has not expired, returned with the zone locked;
 * NULL, with the zone unlocked and a miss counted, if there is none
 */

static ngx_http_token_scope_cache_node_t *
ngx_http_token_scope_cache_live(ngx_http_token_scope_cache_conf_t *ccf,
    u_char *digest, time_t now)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_cache_node_t  *node;

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    node = ngx_http_token_scope_cache_find(ccf->sh, digest);

    if (node == NULL || node->expires <= now) {
        ccf->sh->stats.misses++;
        ngx_shmtx_unlock(&shpool->mutex);
        return NULL;
    }

    return node;
}


/* called with the zone locked */

static ngx_int_t
ngx_http_token_scope_cache_copy(ngx_http_request_t *r,
    ngx_http_token_scope_cache_node_t *node, ts_token_t *tok)
{
    u_char  *p, *to;
    size_t   len;

    len = node->kid_len + node->id_len + node->sid_len + node->service_len;

    /* a pool allocation under a spinlock is only a pointer bump */
    to = ngx_pnalloc(r->pool, len + 1);
    if (to == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(tok, sizeof(ts_token_t));

    tok->alg = node->alg;
    tok->type = node->type;
    tok->scope = node->scope;
    tok->names = node->names;
    tok->exp = node->exp;
    tok->nbf = node->nbf;
    tok->iat = node->iat;
    tok->oid = node->oid;
    tok->has_nbf = (node->flags & NGX_HTTP_TOKEN_SCOPE_HAS_NBF) != 0;
    tok->has_iat = (node->flags & NGX_HTTP_TOKEN_SCOPE_HAS_IAT) != 0;
    tok->has_oid = (node->flags & NGX_HTTP_TOKEN_SCOPE_HAS_OID) != 0;
    tok->test = (node->flags & NGX_HTTP_TOKEN_SCOPE_TEST) != 0;
    tok->no_exp = (node->flags & NGX_HTTP_TOKEN_SCOPE_NO_EXP) != 0;

    p = node->data;

    tok->kid.len = node->kid_len;
    p = ngx_http_token_scope_cache_str(p, &tok->kid, &to);
    tok->id.len = node->id_len;
    p = ngx_http_token_scope_cache_str(p, &tok->id, &to);
    tok->sid.len = node->sid_len;
    p = ngx_http_token_scope_cache_str(p, &tok->sid, &to);
    tok->service.len = node->service_len;
    p = ngx_http_token_scope_cache_str(p, &tok->service, &to);

    if (node->claims_len) {
        return ngx_http_token_scope_claims_read(r, tok, p, node->claims_len);
    }

    return NGX_OK;
}


static u_char *
ngx_http_token_scope_cache_str(u_char *p, ts_str_t *s, u_char **to)
{
    s->data = *to;
    *to = ngx_cpymem(*to, p, s->len);

    return p + s->len;
}


/* after a successful verification: remember the claims until they expire */

void
ngx_http_token_scope_cache_store(ngx_http_request_t *r, ts_token_t *tok,
    u_char *digest)
{
    time_t                              expires;
    ngx_http_token_scope_main_conf_t   *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    expires = ngx_min(ngx_time() + tmcf->cache->max_ttl, (time_t) tok->exp);

    ngx_http_token_scope_cache_put(r, tok, digest, expires, expires, 0);
}


/*
 * After a Redis answer: fresh for the location's ttl, then a fallback for
 * when Redis cannot answer; not stored if a change was published while
 * Redis was asked, since the answer may predate it.
 */

void
ngx_http_token_scope_cache_store_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t changes)
{
    time_t                              now, fresh, expires;
    ngx_uint_t                          flags;
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_main_conf_t   *tmcf;
    ngx_http_token_scope_loc_conf_t    *tlcf;
    ngx_http_token_scope_cache_node_t  *node;
    ngx_http_token_scope_cache_conf_t  *ccf;
    u_char                              key[TS_SHA256_LEN];

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    tlcf = ctx->facts_conf;
    ccf = tmcf->cache;

    if (ccf == NULL
        || ngx_http_token_scope_cache_key(tmcf, ctx->digest, key) != NGX_OK)
    {
        return;
    }

    now = ngx_time();
    flags = 0;

    switch (ctx->opaque) {

    case NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND:
        fresh = now + tlcf->opaque_ttl;
        break;

    case NGX_HTTP_TOKEN_SCOPE_OPAQUE_REVOKED:
        fresh = now + tlcf->opaque_ttl;
        flags = NGX_HTTP_TOKEN_SCOPE_REVOKED;
        break;

    default: /* NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND */
        fresh = now + tlcf->opaque_miss_ttl;
        flags = NGX_HTTP_TOKEN_SCOPE_UNKNOWN;
        break;
    }

    if (flags == NGX_HTTP_TOKEN_SCOPE_UNKNOWN) {
        /* anybody can make up unknown tokens: they are no fallback */
        expires = fresh;

    } else {
        /* kept as the fallback as long as redis_down=allow could use it */
        expires = ngx_max(fresh, now + ccf->max_ttl);

        if (!ctx->token.no_exp) {
            expires = ngx_min(expires, (time_t) ctx->token.exp);
            fresh = ngx_min(fresh, expires);
        }
    }

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (ccf->sh->changes != changes) {
        ngx_shmtx_unlock(&shpool->mutex);
        return;
    }

    /* a stale entry makes room for the new answer */
    node = ngx_http_token_scope_cache_find(ccf->sh, key);

    if (node != NULL) {
        ngx_http_token_scope_cache_delete(ccf, node);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_token_scope_cache_put(r, &ctx->token, key, expires, fresh,
                                   flags);
}


ngx_uint_t
ngx_http_token_scope_cache_changes(ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_uint_t        changes;
    ngx_slab_pool_t  *shpool;

    if (tmcf->cache == NULL) {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) tmcf->cache->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    changes = tmcf->cache->sh->changes;
    ngx_shmtx_unlock(&shpool->mutex);

    return changes;
}


/*
 * A change of the opaque token with this digest was published; with
 * digest NULL, Redis was out of reach and any opaque token may have
 * changed: all entries are outdated (kept only as a fallback).
 */

void
ngx_http_token_scope_cache_forget(ngx_http_token_scope_main_conf_t *tmcf,
    u_char *digest, ngx_log_t *log)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_cache_node_t  *node;
    ngx_http_token_scope_cache_conf_t  *ccf;
    u_char                              key[TS_SHA256_LEN];

    ccf = tmcf->cache;

    if (ccf == NULL) {
        return;
    }

    if (digest != NULL
        && ngx_http_token_scope_cache_key(tmcf, digest, key) != NGX_OK)
    {
        /* cannot tell which entry: outdate them all */
        digest = NULL;
    }

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    ccf->sh->changes++;

    if (digest == NULL) {
        ccf->sh->epoch++;

    } else {
        node = ngx_http_token_scope_cache_find(ccf->sh, key);

        if (node != NULL) {
            ngx_http_token_scope_cache_delete(ccf, node);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "token scope cache: opaque %s forgotten",
                   digest ? "token" : "tokens");
}


/* an opaque token's entry: its digest under this configuration's tables */

static ngx_int_t
ngx_http_token_scope_cache_key(ngx_http_token_scope_main_conf_t *tmcf,
    u_char *digest, u_char *key)
{
    if (ts_sha256_pair(tmcf->tables_digest, TS_SHA256_LEN, digest,
                       TS_SHA256_LEN, key)
        != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_queue_t *
ngx_http_token_scope_cache_lru(ngx_http_token_scope_cache_sh_t *sh,
    ngx_http_token_scope_cache_node_t *node)
{
    return (node->flags & NGX_HTTP_TOKEN_SCOPE_UNKNOWN) ? &sh->unknown
                                                        : &sh->lru;
}


static void
ngx_http_token_scope_cache_put(ngx_http_request_t *r, ts_token_t *tok,
    u_char *digest, time_t expires, time_t fresh, ngx_uint_t flags)
{
    u_char                              *p;
    size_t                               size, claims;
    ngx_uint_t                           alert;
    ngx_slab_pool_t                     *shpool;
    ngx_rbtree_node_t                   *rb;
    ngx_http_token_scope_cache_sh_t     *sh;
    ngx_http_token_scope_cache_node_t   *node;
    ngx_http_token_scope_main_conf_t    *tmcf;
    ngx_http_token_scope_cache_conf_t   *ccf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    ccf = tmcf->cache;

    if (tok->kid.len > 255 || tok->id.len > 255 || tok->sid.len > 255
        || tok->service.len > 255)
    {
        return;
    }

    /* claims too long for an entry: never kept cut short */
    claims = ngx_http_token_scope_claims_size(tok);

    if (expires <= ngx_time() || claims == (size_t) -1) {
        return;
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_token_scope_cache_node_t, data)
           + tok->kid.len + tok->id.len + tok->sid.len + tok->service.len
           + claims;

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;
    sh = ccf->sh;

    ngx_shmtx_lock(&shpool->mutex);

    node = ngx_http_token_scope_cache_find(sh, digest);

    if (node != NULL) {
        if (node->expires > ngx_time()) {
            /* another worker stored it meanwhile */
            ngx_shmtx_unlock(&shpool->mutex);
            return;
        }

        /* an expired entry stays until evicted: it makes way for this one */
        ngx_http_token_scope_cache_delete(ccf, node);
    }

    ngx_http_token_scope_cache_expire(ccf, &sh->unknown, 1);
    ngx_http_token_scope_cache_expire(ccf, &sh->lru, 1);

    rb = ngx_slab_alloc_locked(shpool, size);

    /* a full zone: unknown tokens go first, and never evict a known one */
    if (rb == NULL) {
        ngx_http_token_scope_cache_expire(ccf, &sh->unknown, 0);
        rb = ngx_slab_alloc_locked(shpool, size);
    }

    if (rb == NULL && !(flags & NGX_HTTP_TOKEN_SCOPE_UNKNOWN)) {
        ngx_http_token_scope_cache_expire(ccf, &sh->lru, 0);
        rb = ngx_slab_alloc_locked(shpool, size);
    }

    if (rb == NULL) {
        /* no cache for this token: it is verified on every request */
        alert = !(flags & NGX_HTTP_TOKEN_SCOPE_UNKNOWN)
                && sh->stats.failed++ == 0;

        ngx_shmtx_unlock(&shpool->mutex);

        if (alert) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "token scope: cache zone \"%V\" is full even "
                          "after eviction, tokens go uncached",
                          &ccf->shm_zone->shm.name);
        }

        return;
    }

    ngx_memcpy(&rb->key, digest, sizeof(ngx_rbtree_key_t));

    node = (ngx_http_token_scope_cache_node_t *) &rb->color;

    node->alg = (u_char) tok->alg;
    node->type = (u_char) tok->type;
    node->flags = flags
                  | (tok->has_nbf ? NGX_HTTP_TOKEN_SCOPE_HAS_NBF : 0)
                  | (tok->has_iat ? NGX_HTTP_TOKEN_SCOPE_HAS_IAT : 0)
                  | (tok->has_oid ? NGX_HTTP_TOKEN_SCOPE_HAS_OID : 0)
                  | (tok->test ? NGX_HTTP_TOKEN_SCOPE_TEST : 0)
                  | (tok->no_exp ? NGX_HTTP_TOKEN_SCOPE_NO_EXP : 0);
    node->kid_len = (u_char) tok->kid.len;
    node->id_len = (u_char) tok->id.len;
    node->sid_len = (u_char) tok->sid.len;
    node->service_len = (u_char) tok->service.len;
    node->claims_len = (u_short) claims;
    node->expires = expires;
    node->fresh = fresh;
    node->stored = ngx_time();
    node->epoch = sh->epoch;
    node->scope = tok->scope;
    node->names = tok->names;
    node->exp = tok->exp;
    node->nbf = tok->nbf;
    node->iat = tok->iat;
    node->oid = tok->oid;
    ngx_memcpy(node->digest, digest, TS_SHA256_LEN);

    p = node->data;

    /* an absent claim has no data pointer, and memcpy() needs one */
    if (tok->kid.len) {
        p = ngx_cpymem(p, tok->kid.data, tok->kid.len);
    }

    if (tok->id.len) {
        p = ngx_cpymem(p, tok->id.data, tok->id.len);
    }

    if (tok->sid.len) {
        p = ngx_cpymem(p, tok->sid.data, tok->sid.len);
    }

    if (tok->service.len) {
        p = ngx_cpymem(p, tok->service.data, tok->service.len);
    }

    (void) ngx_http_token_scope_claims_write(p, tok);

    ngx_rbtree_insert(&sh->rbtree, rb);
    ngx_queue_insert_head(ngx_http_token_scope_cache_lru(sh, node),
                          &node->queue);

    sh->stats.entries++;

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_token_scope_cache_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_cache_stats_t *stats)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_cache_conf_t  *ccf;

    ccf = tmcf->cache;

    if (ccf == NULL) {
        ngx_memzero(stats, sizeof(ngx_http_token_scope_cache_stats_t));
        return;
    }

    shpool = (ngx_slab_pool_t *) ccf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    *stats = ccf->sh->stats;
    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_http_token_scope_cache_node_t *
ngx_http_token_scope_cache_find(ngx_http_token_scope_cache_sh_t *sh,
    u_char *digest)
{
    ngx_int_t                           rc;
    ngx_rbtree_key_t                    key;
    ngx_rbtree_node_t                  *node, *sentinel;
    ngx_http_token_scope_cache_node_t  *cn;

    ngx_memcpy(&key, digest, sizeof(ngx_rbtree_key_t));

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        cn = (ngx_http_token_scope_cache_node_t *) &node->color;

        rc = ngx_memcmp(digest, cn->digest, TS_SHA256_LEN);

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * With n == 1, drops up to two expired entries from the tail of lru; with
 * n == 0 (the zone is full) drops its oldest ones, expired or not.
 */

static void
ngx_http_token_scope_cache_expire(ngx_http_token_scope_cache_conf_t *ccf,
    ngx_queue_t *lru, ngx_uint_t n)
{
    ngx_uint_t                          i;
    ngx_queue_t                        *q;
    ngx_http_token_scope_cache_node_t  *cn;

    for (i = 0; i < (n ? 2 : NGX_HTTP_TOKEN_SCOPE_CACHE_EVICT); i++) {

        if (ngx_queue_empty(lru)) {
            return;
        }

        q = ngx_queue_last(lru);
        cn = ngx_queue_data(q, ngx_http_token_scope_cache_node_t, queue);

        if (n && cn->expires > ngx_time()) {
            return;
        }

        if (!n) {
            ccf->sh->stats.evictions++;
        }

        ngx_http_token_scope_cache_delete(ccf, cn);
    }
}


/* called with the zone locked */

static void
ngx_http_token_scope_cache_delete(ngx_http_token_scope_cache_conf_t *ccf,
    ngx_http_token_scope_cache_node_t *cn)
{
    ngx_rbtree_node_t  *node;

    ngx_queue_remove(&cn->queue);

    node = (ngx_rbtree_node_t *)
               ((u_char *) cn - offsetof(ngx_rbtree_node_t, color));

    ngx_rbtree_delete(&ccf->sh->rbtree, node);
    ngx_slab_free_locked((ngx_slab_pool_t *) ccf->shm_zone->shm.addr, node);

    ccf->sh->stats.entries--;
}


static void
ngx_http_token_scope_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                  **p;
    ngx_http_token_scope_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = (ngx_http_token_scope_cache_node_t *) &node->color;
            cnt = (ngx_http_token_scope_cache_node_t *) &temp->color;

            p = (ngx_memcmp(cn->digest, cnt->digest, TS_SHA256_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* token_scope_cache zone=NAME:SIZE [max_ttl=TIME]; */

char *
ngx_http_token_scope_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    u_char                             *p;
    ssize_t                             size;
    ngx_str_t                          *value, name, s;
    ngx_uint_t                          i;
    ngx_http_token_scope_cache_conf_t  *ccf;

    if (tmcf->cache != NULL) {
        return "is duplicate";
    }

    ccf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_cache_conf_t));
    if (ccf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_str_null(&name);
    size = 0;
    ccf->max_ttl = 3600;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');
            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;

            if (name.len == 0) {
                goto invalid;
            }

            size = ngx_http_token_scope_zone_size(cf, &value[i], p + 1);
            if (size == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_ttl=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ccf->max_ttl = ngx_parse_time(&s, 1);
            if (ccf->max_ttl == (time_t) NGX_ERROR || ccf->max_ttl == 0) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have the \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    ccf->shm_zone = ngx_http_token_scope_shm_add(cf, &name, size,
                                        ngx_http_token_scope_cache_init_zone,
                                        ccf);
    if (ccf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    tmcf->cache = ccf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_token_scope_cache_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_cache_conf_t *occf = data;

    size_t                              len;
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_cache_conf_t  *ccf;

    ccf = zone->data;

    /* a reload keeps the cached tokens: they are keyed by keyset too */
    if (occf != NULL) {
        ccf->sh = occf->sh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        ccf->sh = shpool->data;
        return NGX_OK;
    }

    ccf->sh = ngx_slab_alloc(shpool, sizeof(ngx_http_token_scope_cache_sh_t));
    if (ccf->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ccf->sh, sizeof(ngx_http_token_scope_cache_sh_t));

    ngx_rbtree_init(&ccf->sh->rbtree, &ccf->sh->sentinel,
                    ngx_http_token_scope_cache_insert_value);
    ngx_queue_init(&ccf->sh->lru);
    ngx_queue_init(&ccf->sh->unknown);

    shpool->data = ccf->sh;

    len = sizeof(" in token scope cache zone \"\"") + zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in token scope cache zone \"%V\"%Z",
                &zone->shm.name);

    /* a full zone evicts; the slab's own "no memory" lines add nothing */
    shpool->log_nomem = 0;

    return NGX_OK;
}
