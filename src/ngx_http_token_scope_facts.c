
/*
 * The token's facts: the token taken from the request, decoded and
 * verified (or found in the verified-token cache, or, for an opaque token,
 * asked of Redis), once per request and key configuration.  They do not
 * depend on the location, so a variable read early may compute them; what
 * a location decides with them is in ngx_http_token_scope_decide.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static ngx_uint_t ngx_http_token_scope_same_facts(
    ngx_http_token_scope_loc_conf_t *a, ngx_http_token_scope_loc_conf_t *b);
static ngx_int_t ngx_http_token_scope_main_facts(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_jwt(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *token, ngx_uint_t wait);
static ngx_int_t ngx_http_token_scope_source(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *token);
static ngx_uint_t ngx_http_token_scope_same_token(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);


/*
 * The facts of the request's token under tlcf's keys, into ctx->token and
 * ctx->facts_reason (TS_OK: the claims are genuine).  NGX_OK: known;
 * NGX_AGAIN: an opaque token's lookup is under way (wait: a phase handler
 * that waits for it); NGX_DECLINED: not known without asking Redis;
 * NGX_ERROR.
 */

ngx_int_t
ngx_http_token_scope_facts(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_uint_t wait)
{
    ngx_str_t    token;
    ts_reason_e  reason;

    switch (ctx->facts) {

    case NGX_HTTP_TOKEN_SCOPE_FACTS_PENDING:
        return NGX_AGAIN;

    case NGX_HTTP_TOKEN_SCOPE_FACTS_READY:
        if (ngx_http_token_scope_same_facts(ctx->facts_conf, tlcf)
            && ngx_http_token_scope_same_token(r, tlcf, ctx))
        {
            return NGX_OK;
        }

        break;

    default: /* NGX_HTTP_TOKEN_SCOPE_FACTS_NONE */
        break;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope facts");

    if (r != r->main
        && ngx_http_token_scope_main_facts(r, tlcf, ctx) == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_memzero(&ctx->token, sizeof(ts_token_t));
    ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_NONE;
    ctx->facts_conf = tlcf;
    ctx->opaque = NGX_HTTP_TOKEN_SCOPE_OPAQUE_NONE;
    ngx_str_null(&ctx->source);

    switch (ngx_http_token_scope_source(r, tlcf, &token)) {

    case NGX_OK:
        /* Authorization stays as it is; a variable's value may not */
        ctx->source = token;

        if (tlcf->token_source != NULL) {
            ctx->source.data = ngx_pstrdup(r->pool, &token);
            if (ctx->source.data == NULL) {
                return NGX_ERROR;
            }
        }

        break;

    case NGX_DECLINED:
        break;

    default:
        return NGX_ERROR;
    }

    if (ctx->source.len == 0) {
        reason = TS_MISSING;

    } else if (token.len > tlcf->max_size) {
        ctx->token.error = "token is too long";
        reason = TS_MALFORMED;

    } else if (tlcf->opaque && !ts_token_is_jwt(token.data, token.len)) {
        /* it sets the facts itself, now or once Redis answers */
        return ngx_http_token_scope_opaque(r, tlcf, ctx, &token, wait);

    } else {
        reason = ngx_http_token_scope_jwt(r, tlcf, ctx, &token, wait);

        /* keys are being fetched: decided once they are in */
        if (ctx->key_wait) {
            if (!wait) {
                ctx->key_wait = 0;
                ngx_memzero(&ctx->token, sizeof(ts_token_t));
                return NGX_DECLINED;
            }

            ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_PENDING;
            return NGX_AGAIN;
        }
    }

    ctx->facts_reason = reason;
    ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_READY;

    return NGX_OK;
}


/* the facts hold for another location that takes tokens the same way */

static ngx_uint_t
ngx_http_token_scope_same_facts(ngx_http_token_scope_loc_conf_t *a,
    ngx_http_token_scope_loc_conf_t *b)
{
    return a == b
           || (a->keys == b->keys
               && a->jwks == b->jwks
               && a->verify == b->verify
               && a->max_size == b->max_size
               && a->opaque == b->opaque
               && a->redis_down == b->redis_down
               && a->opaque_ttl == b->opaque_ttl
               && a->opaque_miss_ttl == b->opaque_miss_ttl);
}


/*
 * A subrequest carries the main request's token: its facts are the main
 * request's, if that request has them under the same keys
 */

static ngx_int_t
ngx_http_token_scope_main_facts(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_http_token_scope_ctx_t  *mctx;

    mctx = ngx_http_token_scope_get_ctx(r->main);

    if (mctx == NULL
        || mctx->facts != NGX_HTTP_TOKEN_SCOPE_FACTS_READY
        || !ngx_http_token_scope_same_facts(mctx->facts_conf, tlcf))
    {
        return NGX_DECLINED;
    }

    /* the strings are in the pool the subrequest shares */
    ctx->token = mctx->token;
    ctx->facts_reason = mctx->facts_reason;
    ctx->facts_conf = mctx->facts_conf;
    ctx->opaque = mctx->opaque;
    ngx_memcpy(ctx->digest, mctx->digest, TS_SHA256_LEN);

    ctx->facts = NGX_HTTP_TOKEN_SCOPE_FACTS_READY;

    return NGX_OK;
}


static ts_reason_e
ngx_http_token_scope_jwt(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *token, ngx_uint_t wait)
{
    u_char                            *buf;
    ts_reason_e                        reason;
    ngx_http_token_scope_main_conf_t  *tmcf;
    u_char                             digest[TS_SHA256_LEN];

    if (tlcf->jwks != NULL && tlcf->verify) {
        ngx_http_token_scope_jwks_sync(r, tlcf->jwks);
    }

    if (ngx_http_token_scope_cache_lookup(r, tlcf, token, &ctx->token,
                                          digest)
        == NGX_OK)
    {
        return TS_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    buf = ngx_pnalloc(r->pool, TS_TOKEN_BUF_SIZE(token->len));
    if (buf == NULL) {
        ctx->token.error = "out of memory";
        return TS_MALFORMED;
    }

    reason = ts_token_parse(&ctx->token, token->data, token->len, buf,
                            ngx_http_token_scope_base64url,
                            &tmcf->categories);
    if (reason != TS_OK) {
        return reason;
    }

    if (!tlcf->verify) {
        if (ngx_http_token_scope_claims_keep(r, &ctx->token) != NGX_OK) {
            ctx->token.error = "out of memory";
            return TS_MALFORMED;
        }

        return TS_OK;
    }

    reason = TS_UNKNOWN_KEY;

    if (tlcf->keys != NULL) {
        reason = ts_token_verify(tlcf->keys, &ctx->token);
    }

    /* the files' keys first: theirs is a kid both have */
    if (reason == TS_UNKNOWN_KEY && tlcf->jwks != NULL) {
        reason = ngx_http_token_scope_jwks_verify(r, tlcf->jwks, ctx, wait);

        if (ctx->key_wait) {
            return reason;
        }
    }

    ngx_http_token_scope_count_verify(r, &ctx->token, reason);

    if (reason == TS_OK
        && ngx_http_token_scope_claims_keep(r, &ctx->token) != NGX_OK)
    {
        ctx->token.error = "out of memory";
        return TS_MALFORMED;
    }

    if (reason == TS_OK && tmcf->cache != NULL) {
        ngx_http_token_scope_cache_store(r, &ctx->token, digest);
    }

    return reason;
}


/*
 * The token where token_scope_token takes it from, or Authorization;
 * NGX_DECLINED: none, an empty value too
 */

static ngx_int_t
ngx_http_token_scope_source(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *token)
{
    if (tlcf->token_source == NULL) {
        return ngx_http_token_scope_get_token(r, token);
    }

    if (ngx_http_complex_value(r, tlcf->token_source, token) != NGX_OK) {
        return NGX_ERROR;
    }

    return token->len ? NGX_OK : NGX_DECLINED;
}


/*
 * The facts are of the token the request carries now: a rewrite may have
 * changed the arguments a token is taken from since a variable asked
 */

static ngx_uint_t
ngx_http_token_scope_same_token(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_str_t  token;

    /* a subrequest carries the main request's token */
    if (r != r->main) {
        return 1;
    }

    if (ngx_http_token_scope_source(r, tlcf, &token) != NGX_OK) {
        ngx_str_null(&token);
    }

    return token.len == ctx->source.len
           && (token.len == 0
               || ngx_memcmp(token.data, ctx->source.data, token.len) == 0);
}


/*
 * "Authorization: Bearer <token>" with the scheme in any case, or the bare
 * token as WB accepts it
 */

ngx_int_t
ngx_http_token_scope_get_token(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char  *p, *last;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    p = r->headers_in.authorization->value.data;
    last = p + r->headers_in.authorization->value.len;

    /* "Bearer " comes as "Bearer": nginx drops a header's trailing spaces */
    if (last - p >= (ssize_t) sizeof("Bearer") - 1
        && ngx_strncasecmp(p, (u_char *) "Bearer", sizeof("Bearer") - 1) == 0
        && (last - p == sizeof("Bearer") - 1 || p[sizeof("Bearer") - 1] == ' '))
    {
        p += sizeof("Bearer") - 1;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    token->data = p;
    token->len = last - p;

    return NGX_OK;
}


/*
 * For a variable: the context with genuine facts, computed now if the
 * request entered the phases in a location that takes tokens; NULL if
 * there are none.  Never a decision, never a wait for Redis.
 */

ngx_http_token_scope_ctx_t *
ngx_http_token_scope_known(ngx_http_request_t *r)
{
    ngx_http_token_scope_ctx_t       *ctx;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    ctx = ngx_http_token_scope_get_ctx(r);

    if (ctx == NULL || ctx->facts == NGX_HTTP_TOKEN_SCOPE_FACTS_NONE) {
        tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

        if (!tlcf->enable || !ngx_http_token_scope_entered(r)) {
            return NULL;
        }

        ctx = ngx_http_token_scope_create_ctx(r);

        if (ctx == NULL
            || ngx_http_token_scope_facts(r, tlcf, ctx, 0) != NGX_OK)
        {
            return NULL;
        }
    }

    if (ctx->facts != NGX_HTTP_TOKEN_SCOPE_FACTS_READY
        || ctx->facts_reason != TS_OK)
    {
        return NULL;
    }

    return ctx;
}
