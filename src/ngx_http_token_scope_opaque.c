
/*
 * Opaque tokens (Ecwid's "secret_..." and "public_..."): not JWTs, known
 * only by the SHA-256 of the token, described by a Redis HASH
 * "<prefix>opaque:<hex digest>" (type, scopes, subject, expires, revoked).
 *
 * Every worker keeps one connection for these lookups, through the
 * connection layer (ngx_http_token_scope_hiredis.c).  A request whose
 * token is not in the cache zone suspends its phases until the answer or
 * its timer comes, so no worker ever waits on Redis; a timed out lookup
 * drops the connection, failing the lookups queued behind it at once
 * rather than one timeout after another.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_ID_LEN  16


/* outlives its request if the request goes first: hiredis holds it */
struct ngx_http_token_scope_lookup_s {
    ngx_http_token_scope_ctx_t *ctx;         /* NULL: nobody waits */
    ngx_uint_t                  changes;     /* of the cache when asked */
};


static ngx_int_t ngx_http_token_scope_opaque_known(
    ngx_http_token_scope_ctx_t *ctx);
static ngx_int_t ngx_http_token_scope_opaque_ask(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static void ngx_http_token_scope_opaque_answer(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_uint_t ngx_http_token_scope_opaque_facts(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_token_scope_opaque_id(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static void ngx_http_token_scope_opaque_wake(ngx_event_t *ev);
static void ngx_http_token_scope_opaque_ready(
    ngx_http_token_scope_redis_t *rd);


/* the lookup connection of this worker */
static ngx_http_token_scope_redis_t  ngx_http_token_scope_lookups;


/*
 * The facts of the request's opaque token: from the cache, or from Redis
 * after the request waited for them.  NGX_OK: known; NGX_AGAIN: a lookup
 * is under way (wait: a phase handler waits for it); NGX_DECLINED: not
 * cached, and no lookup was asked for.
 */

ngx_int_t
ngx_http_token_scope_opaque(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *token, ngx_uint_t wait)
{
    ngx_int_t  rc;

    if (ts_sha256_recent(NULL, 0, token->data, token->len, ctx->digest) != 0
        || ngx_http_token_scope_opaque_id(r, ctx) != NGX_OK)
    {
        ctx->token.error = "cannot hash the token";
        ctx->facts_reason = TS_MALFORMED;
        ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_READY;
        return NGX_OK;
    }

    rc = ngx_http_token_scope_cache_opaque(r, tlcf, ctx);

    if (rc == NGX_OK) {
        return ngx_http_token_scope_opaque_known(ctx);
    }

    if (!wait) {
        /* a variable: Redis is asked by the phase handler that waits */
        ngx_memzero(&ctx->token, sizeof(ts_token_t));
        ctx->opaque = NGX_HTTP_TOKEN_SCOPE_OPAQUE_NONE;
        return NGX_DECLINED;
    }

    /* cached facts past their ttl stay as the fallback if Redis fails */
    ctx->fallback = (rc == NGX_AGAIN) ? ctx->opaque
                                      : NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED;

    if (ngx_http_token_scope_opaque_ask(r, ctx) == NGX_OK) {
        ctx->opaque = NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING;
        ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_PENDING;
        return NGX_AGAIN;
    }

    ctx->opaque = ctx->fallback;

    return ngx_http_token_scope_opaque_known(ctx);
}


/* the lookup's outcome as the facts' reason */

static ngx_int_t
ngx_http_token_scope_opaque_known(ngx_http_token_scope_ctx_t *ctx)
{
    switch (ctx->opaque) {

    case NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND:
        ctx->facts_reason = TS_OK;
        break;

    case NGX_HTTP_TOKEN_SCOPE_OPAQUE_REVOKED:
        ctx->facts_reason = TS_REVOKED;
        break;

    case NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND:
        ctx->facts_reason = TS_UNKNOWN_TOKEN;
        break;

    default: /* NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED */
        ctx->facts_reason = TS_REDIS_UNAVAILABLE;
        break;
    }

    ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_READY;

    return NGX_OK;
}


/* a phase handler found the lookup under way: the phases stop until then */

ngx_int_t
ngx_http_token_scope_opaque_wait(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope opaque lookup: waiting");

    ctx->waiting = 1;

    /* as limit_req delays: a client that goes away ends the request */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_token_scope_opaque_ask(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    u_char                              *p;
    size_t                               len;
    ngx_http_token_scope_redis_t        *lk;
    ngx_http_token_scope_lookup_t       *lookup;
    ngx_http_token_scope_main_conf_t    *tmcf;

    lk = &ngx_http_token_scope_lookups;

    if (lk->rcf == NULL) {
        return NGX_DECLINED;
    }

    len = ngx_strlen(lk->rcf->key_opaque);

    p = ngx_pnalloc(r->pool, len + 2 * TS_SHA256_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, lk->rcf->key_opaque, len);
    ngx_hex_dump(p + len, ctx->digest, TS_SHA256_LEN);

    lookup = ngx_alloc(sizeof(ngx_http_token_scope_lookup_t),
                       r->connection->log);
    if (lookup == NULL) {
        return NGX_ERROR;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    lookup->ctx = ctx;
    lookup->changes = ngx_http_token_scope_cache_changes(tmcf);

    if (ngx_http_token_scope_redis_command(lk,
                                   ngx_http_token_scope_opaque_answer, lookup,
                                   "HGETALL %b", p, len + 2 * TS_SHA256_LEN)
        != NGX_OK)
    {
        ngx_free(lookup);
        return NGX_DECLINED;
    }

    ctx->lookup = lookup;

    ctx->wake.handler = ngx_http_token_scope_opaque_wake;
    ctx->wake.data = ctx;
    ctx->wake.log = r->connection->log;

    ngx_add_timer(&ctx->wake, lk->rcf->timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope opaque lookup: %*s", len + 16, p);

    return NGX_OK;
}


static void
ngx_http_token_scope_opaque_answer(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_token_scope_lookup_t *lookup = privdata;

    redisReply                  *rr = reply;
    ngx_uint_t                   state;
    ngx_http_request_t          *r;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = lookup->ctx;

    if (ctx == NULL) {
        /* timed out or gone */
        ngx_free(lookup);
        return;
    }

    r = ctx->request;
    ctx->lookup = NULL;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR
        && ngx_strncmp(rr->str, "WRONGTYPE", 9) == 0)
    {
        /* an operator's mistake, not an outage */
        (void) ngx_http_token_scope_opaque_id(r, ctx);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "token scope: opaque token \"%V\" in Redis is not a "
                      "hash, treated as unknown", &ctx->token.id);

        ctx->opaque = NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND;

        ngx_http_token_scope_count_lookup(r,
                                          NGX_HTTP_TOKEN_SCOPE_LOOKUP_UNKNOWN);

    } else if (rr == NULL || rr->type != REDIS_REPLY_ARRAY) {
        ngx_http_token_scope_count_lookup(r,
                                          NGX_HTTP_TOKEN_SCOPE_LOOKUP_ERROR);

        /* a dropped link has logged why already */
        if (rr != NULL) {
            ngx_http_token_scope_redis_fail(&ngx_http_token_scope_lookups,
                                            "HGETALL",
                                            rr->type == REDIS_REPLY_ERROR
                                            ? rr->str : "unexpected reply");
        }

        ctx->opaque = ctx->fallback;

    } else {
        state = ngx_http_token_scope_opaque_facts(r, ctx, rr);

        ngx_http_token_scope_count_lookup(r,
                          state == NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED
                          ? NGX_HTTP_TOKEN_SCOPE_LOOKUP_ERROR
                          : state == NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND
                            ? NGX_HTTP_TOKEN_SCOPE_LOOKUP_UNKNOWN
                            : NGX_HTTP_TOKEN_SCOPE_LOOKUP_FOUND);

        if (state == NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED) {
            ctx->opaque = ctx->fallback;

        } else {
            ctx->opaque = state;
            ngx_http_token_scope_cache_store_opaque(r, ctx, lookup->changes);
        }
    }

    ngx_free(lookup);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope opaque lookup: answered %ui", ctx->opaque);

    if (ctx->wake.timer_set) {
        ngx_del_timer(&ctx->wake);
    }

    /* out of hiredis' callback before the request goes on */
    ngx_post_event(&ctx->wake, &ngx_posted_events);
}


/*
 * The HASH into ctx->token: NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND, _REVOKED,
 * _NOT_FOUND (no such key, or one that describes no valid token: the
 * operator hears of it) or _FAILED (no memory).
 */

static ngx_uint_t
ngx_http_token_scope_opaque_facts(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, redisReply *reply)
{
    int                                type;
    size_t                             i;
    int64_t                            exp;
    ngx_uint_t                         revoked;
    ts_token_t                        *tok;
    redisReply                        *f, *v;
    const char                        *bad;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (reply->elements == 0) {
        return NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    tok = &ctx->token;
    ngx_memzero(tok, sizeof(ts_token_t));

    tok->opaque = 1;
    tok->no_exp = 1;
    tok->type = TS_TYPE_MAX;
    revoked = 0;
    bad = NULL;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            bad = "a field is not a string";
            break;
        }

        /* $token_scope_claim_NAME of the fields the configuration uses */
        if (ngx_http_token_scope_claims_field(r, tok, (u_char *) f->str,
                                              f->len, (u_char *) v->str,
                                              v->len)
            != NGX_OK)
        {
            return NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED;
        }

        if (ngx_strcmp(f->str, "type") == 0) {
            type = ts_type_by_name(v->str, v->len);

            if (type <= TS_TYPE_LEGACY) {
                bad = "invalid \"type\"";
                break;
            }

            tok->type = type;
            tok->test = (type == TS_TYPE_TEST);

        } else if (ngx_strcmp(f->str, "scopes") == 0) {
            ts_categories_grant(&tmcf->categories, (u_char *) v->str,
                                v->len, &tok->scope, &tok->names);

        } else if (ngx_strcmp(f->str, "subject") == 0) {
            tok->sid.data = ngx_pnalloc(r->pool, v->len + 1);
            if (tok->sid.data == NULL) {
                return NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED;
            }

            tok->sid.len = v->len;
            ngx_memcpy(tok->sid.data, v->str, v->len);

        } else if (ngx_strcmp(f->str, "expires") == 0) {
            if (ts_parse_time((u_char *) v->str, v->len, &exp) != 0) {
                bad = "invalid \"expires\"";
                break;
            }

            /* 0: never, as when the field is absent */
            tok->exp = exp;
            tok->no_exp = (exp == 0);

        } else if (ngx_strcmp(f->str, "created") == 0) {
            /* the issue time a seller's revocation compares with */
            if (ts_parse_time((u_char *) v->str, v->len, &tok->iat) != 0) {
                bad = "invalid \"created\"";
                break;
            }

            tok->has_iat = 1;

        } else if (ngx_strcmp(f->str, "revoked") == 0) {
            /* whatever the writer meant by "true", "yes" or a date */
            revoked = !(v->len == 0 || (v->len == 1 && v->str[0] == '0'));
        }
    }

    if (bad == NULL && tok->type == TS_TYPE_MAX) {
        bad = "no \"type\"";
    }

    if (ngx_http_token_scope_opaque_id(r, ctx) != NGX_OK) {
        return NGX_HTTP_TOKEN_SCOPE_OPAQUE_FAILED;
    }

    if (bad != NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "token scope: opaque token \"%V\" in Redis: %s, "
                      "treated as unknown", &tok->id, bad);

        ngx_memzero(tok, sizeof(ts_token_t));
        (void) ngx_http_token_scope_opaque_id(r, ctx);

        return NGX_HTTP_TOKEN_SCOPE_OPAQUE_NOT_FOUND;
    }

    return revoked ? NGX_HTTP_TOKEN_SCOPE_OPAQUE_REVOKED
                   : NGX_HTTP_TOKEN_SCOPE_OPAQUE_FOUND;
}


/* the token's id in logs and $token_scope_id: the digest's first half */

static ngx_int_t
ngx_http_token_scope_opaque_id(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    ctx->token.opaque = 1;

    ctx->token.id.data = ngx_pnalloc(r->pool, NGX_HTTP_TOKEN_SCOPE_ID_LEN);
    if (ctx->token.id.data == NULL) {
        return NGX_ERROR;
    }

    ngx_hex_dump(ctx->token.id.data, ctx->digest,
                 NGX_HTTP_TOKEN_SCOPE_ID_LEN / 2);
    ctx->token.id.len = NGX_HTTP_TOKEN_SCOPE_ID_LEN;

    return NGX_OK;
}


/* the answer came (posted), or the timer fired first */

static void
ngx_http_token_scope_opaque_wake(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_token_scope_ctx_t   *ctx;

    ctx = ev->data;
    r = ctx->request;
    c = r->connection;

    if (ev->timedout) {
        ev->timedout = 0;

        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "token scope: opaque token lookup timed out");

        ngx_http_token_scope_count_lookup(r,
                                          NGX_HTTP_TOKEN_SCOPE_LOOKUP_TIMEOUT);

        if (ctx->lookup != NULL) {
            ctx->lookup->ctx = NULL;
            ctx->lookup = NULL;
        }

        ctx->opaque = ctx->fallback;

        /* the link is stuck: the lookups queued behind fail now */
        ngx_http_token_scope_redis_fail(&ngx_http_token_scope_lookups,
                                        "lookup", "timed out");
    }

    (void) ngx_http_token_scope_opaque_known(ctx);

    ngx_http_token_scope_resume(ctx);
}


/* the request ends while its lookup is under way */

void
ngx_http_token_scope_opaque_cancel(ngx_http_token_scope_ctx_t *ctx)
{
    if (ctx->lookup != NULL) {
        ctx->lookup->ctx = NULL;
        ctx->lookup = NULL;
    }

    if (ctx->wake.timer_set) {
        ngx_del_timer(&ctx->wake);
    }

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }
}


ngx_int_t
ngx_http_token_scope_opaque_init_process(ngx_cycle_t *cycle)
{
    ngx_http_token_scope_redis_t       *lk;
    ngx_http_token_scope_main_conf_t   *tmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_token_scope_module);

    if (tmcf == NULL || !tmcf->opaque || tmcf->redis == NULL) {
        return NGX_OK;
    }

    lk = &ngx_http_token_scope_lookups;

    ngx_memzero(lk, sizeof(ngx_http_token_scope_redis_t));

    lk->rcf = tmcf->redis;
    lk->outage = "opaque tokens fall back to the cache";
    lk->recovered = "answers opaque token lookups again";
    lk->role = NGX_HTTP_TOKEN_SCOPE_ROLE_OPAQUE;
    lk->on_ready = ngx_http_token_scope_opaque_ready;

    /*
     * each lookup has its request's timer, and a shutting down worker
     * still waits for the lookups it asked for
     */
    lk->own_timeouts = 1;
    lk->linger = 1;

    return ngx_http_token_scope_redis_start(lk, cycle);
}


void
ngx_http_token_scope_opaque_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_token_scope_redis_close(&ngx_http_token_scope_lookups);
}


/* a stopped Redis accepts connections too: it works when it answers */

static void
ngx_http_token_scope_opaque_ready(ngx_http_token_scope_redis_t *rd)
{
    ngx_http_token_scope_redis_working(rd);
}


/* token_scope_opaque on | off [ttl=TIME] [miss_ttl=TIME]; */

char *
ngx_http_token_scope_opaque_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    time_t      *ttl;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (tlcf->opaque != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_http_token_scope_where(cf, &tlcf->opaque_at);

    if (ngx_strcmp(value[1].data, "on") == 0) {
        tlcf->opaque = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->opaque = 0;

    } else {
        return "must be \"on\" or \"off\"";
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            ttl = &tlcf->opaque_ttl;
            s.data = value[i].data + 4;

        } else if (ngx_strncmp(value[i].data, "miss_ttl=", 9) == 0) {
            ttl = &tlcf->opaque_miss_ttl;
            s.data = value[i].data + 9;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s.len = value[i].data + value[i].len - s.data;

        *ttl = ngx_parse_time(&s, 1);
        if (*ttl == (time_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}
