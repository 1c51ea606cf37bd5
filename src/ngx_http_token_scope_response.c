
/*
 * The answer to a denied request: a JSON body in WB's shape and an
 * RFC 6750 WWW-Authenticate header.  Nothing from the request is echoed
 * but $request_id; every string is escaped for JSON.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_ORIGIN  "s2s-api-auth-"


typedef struct {
    ngx_str_t                   detail;
    ngx_str_t                   explain;     /* the specific scope reason */
    unsigned                    scope:1;     /* a scope, not an auth failure */
} ngx_http_token_scope_answer_t;


static ngx_str_t ngx_http_token_scope_origin(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static ngx_int_t ngx_http_token_scope_www_authenticate(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t scope);
static ngx_str_t ngx_http_token_scope_explain(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);


static ngx_http_token_scope_answer_t  ngx_http_token_scope_answers[] = {
    /* TS_OK */
    { ngx_null_string, ngx_null_string, 0 },
    /* TS_MISSING */
    { ngx_string("empty Authorization header"), ngx_null_string, 0 },
    /* TS_MALFORMED */
    { ngx_string("token problem; token is malformed"), ngx_null_string, 0 },
    /* TS_BAD_SIGNATURE */
    { ngx_string("token problem; token signature is invalid"),
      ngx_null_string, 0 },
    /* TS_UNKNOWN_KEY */
    { ngx_string("token problem; unknown signing key"), ngx_null_string, 0 },
    /* TS_EXPIRED */
    { ngx_string("token expired"), ngx_null_string, 0 },
    /* TS_NOT_YET_VALID */
    { ngx_string("token problem; token is not valid yet"),
      ngx_null_string, 0 },
    /* TS_REVOKED */
    { ngx_string("token withdrawn"), ngx_null_string, 0 },
    /* TS_CATEGORY */
    { ngx_string("token scope not allowed"), ngx_null_string, 1 },
    /* TS_READ_ONLY */
    { ngx_string("token scope not allowed"),
      ngx_string("read-only token cannot call a write method"), 1 },
    /* TS_ENVIRONMENT */
    { ngx_string("token scope not allowed"), ngx_null_string, 1 },
    /* TS_TOKEN_TYPE */
    { ngx_string("token scope not allowed"),
      ngx_string("this token type may not call this method"), 1 },
    /* TS_SERVICE_SECRET */
    { ngx_string("token scope not allowed"),
      ngx_string("service token used without its service's secret"), 1 },
    /* TS_PERSONAL_CLOUD */
    { ngx_string("token scope not allowed"),
      ngx_string("personal token used by a cloud service"), 1 },
    /* TS_REDIS_UNAVAILABLE */
    { ngx_string("token problem; revocation state unavailable"),
      ngx_null_string, 0 },
    /* TS_OPERATION */
    { ngx_string("token scope not allowed"),
      ngx_string("no such operation"), 1 }
};


static ngx_http_token_scope_answer_t  ngx_http_token_scope_not_found = {
    ngx_string("path not found"), ngx_null_string, 0
};


ngx_int_t
ngx_http_token_scope_deny(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    size_t                            len;
    u_char                           *p;
    ngx_tm_t                          tm;
    ngx_str_t                         origin, explain, title, status_text;
    ngx_str_t                         type;
    ngx_uint_t                        status;
    ngx_http_variable_value_t        *request_id;
    ngx_http_complex_value_t          cv;
    ngx_http_token_scope_answer_t    *answer;
    ngx_http_token_scope_loc_conf_t  *tlcf;
    ngx_http_token_scope_main_conf_t *tmcf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope deny: %s", ts_reason_name(ctx->reason));

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);
    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    answer = &ngx_http_token_scope_answers[ctx->reason];

    status = answer->scope ? tlcf->deny_status : NGX_HTTP_UNAUTHORIZED;
    explain = ngx_http_token_scope_explain(r, ctx);

    if (ctx->reason == TS_OPERATION
        && tlcf->unmatched == NGX_HTTP_TOKEN_SCOPE_UNMATCHED_NOT_FOUND)
    {
        answer = &ngx_http_token_scope_not_found;
        status = NGX_HTTP_NOT_FOUND;
        ngx_str_null(&explain);
        ngx_str_set(&title, "not found");
        ngx_str_set(&status_text, "Not Found");

    } else if (status == NGX_HTTP_FORBIDDEN) {
        ngx_str_set(&title, "forbidden");
        ngx_str_set(&status_text, "Forbidden");

    } else {
        ngx_str_set(&title, "unauthorized");
        ngx_str_set(&status_text, "Unauthorized");
    }

    origin = ngx_http_token_scope_origin(r, ctx);

    request_id = ngx_http_get_indexed_variable(r, tmcf->request_id_index);
    if (request_id == NULL || request_id->not_found) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof("{\"title\":\"\",\"detail\":\"; \",\"code\":\"\","
                 "\"requestId\":\"\",\"origin\":\"\",\"status\":,"
                 "\"statusText\":\"\",\"timestamp\":\"\"}") - 1
          + title.len + answer->detail.len
          + explain.len + ngx_escape_json(NULL, explain.data, explain.len)
          + ngx_strlen(ts_reason_name(ctx->reason))
          + request_id->len
          + ngx_escape_json(NULL, request_id->data, request_id->len)
          + origin.len + ngx_escape_json(NULL, origin.data, origin.len)
          + NGX_INT_T_LEN + status_text.len
          + sizeof("1970-01-01T00:00:00Z") - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cv.value.data = p;

    p = ngx_sprintf(p, "{\"title\":\"%V\",\"detail\":\"%V", &title,
                    &answer->detail);

    if (explain.len) {
        /* WB: "token is malformed: ...", "token scope not allowed; ..." */
        p = ngx_cpymem(p, ctx->reason == TS_MALFORMED ? ": " : "; ", 2);
        p = (u_char *) ngx_escape_json(p, explain.data, explain.len);
    }

    p = ngx_sprintf(p, "\",\"code\":\"%s\",\"requestId\":\"",
                    ts_reason_name(ctx->reason));
    p = (u_char *) ngx_escape_json(p, request_id->data, request_id->len);
    p = ngx_cpymem(p, "\",\"origin\":\"", sizeof("\",\"origin\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, origin.data, origin.len);

    ngx_gmtime(ngx_time(), &tm);

    p = ngx_sprintf(p, "\",\"status\":%ui,\"statusText\":\"%V\","
                    "\"timestamp\":\"%4d-%02d-%02dT%02d:%02d:%02dZ\"}",
                    status, &status_text,
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    cv.value.len = p - cv.value.data;
    cv.lengths = NULL;
    cv.values = NULL;

    if (status != NGX_HTTP_NOT_FOUND
        && ngx_http_token_scope_www_authenticate(r, ctx, answer->scope)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&type, "application/json");

    return ngx_http_send_response(r, status, &type, &cv);
}


/* token_scope_origin, or "s2s-api-auth-" and the first required category */

static ngx_str_t
ngx_http_token_scope_origin(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    unsigned                           bit;
    ngx_str_t                          origin;
    const char                        *name;
    ngx_http_token_scope_loc_conf_t   *tlcf;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    if (tlcf->origin.len) {
        return tlcf->origin;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    name = "common";

    for (bit = 0; bit < 64; bit++) {
        if (ctx->required & ((uint64_t) 1 << bit)) {
            name = ts_categories_name(&tmcf->categories, bit);
            break;
        }
    }

    origin.len = sizeof(NGX_HTTP_TOKEN_SCOPE_ORIGIN) - 1 + ngx_strlen(name);

    origin.data = ngx_pnalloc(r->pool, origin.len);
    if (origin.data == NULL) {
        ngx_str_set(&origin, NGX_HTTP_TOKEN_SCOPE_ORIGIN "common");
        return origin;
    }

    ngx_sprintf(origin.data, NGX_HTTP_TOKEN_SCOPE_ORIGIN "%s", name);

    return origin;
}


/* what exactly is wrong, after WB's "token scope not allowed" */

static ngx_str_t
ngx_http_token_scope_explain(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    u_char                            *p;
    size_t                             len;
    ngx_str_t                          s;
    ngx_http_token_scope_main_conf_t  *tmcf;

    switch (ctx->reason) {

    case TS_MALFORMED:
    case TS_OPERATION:
        if (ctx->token.error) {
            s.data = (u_char *) ctx->token.error;
            s.len = ngx_strlen(ctx->token.error);
            return s;
        }

        return ngx_http_token_scope_answers[ctx->reason].explain;

    case TS_CATEGORY:
        tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

        len = sizeof("the token lacks the  category") - 1
              + 64 * (TS_CATEGORY_NAME_MAX + 1);

        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            break;
        }

        s.data = p;
        p = ngx_cpymem(p, "the token lacks the ", 20);
        p += ts_categories_format(&tmcf->categories, ctx->missing, ',',
                                  (char *) p, 64 * (TS_CATEGORY_NAME_MAX + 1));
        p = ngx_cpymem(p, " category", 9);
        s.len = p - s.data;

        return s;

    case TS_ENVIRONMENT:
        if (ctx->token.test) {
            ngx_str_set(&s, "a test token is for sandbox hosts only");

        } else {
            ngx_str_set(&s, "this sandbox host accepts only test tokens");
        }

        return s;

    default:
        return ngx_http_token_scope_answers[ctx->reason].explain;
    }

    ngx_str_null(&s);

    return s;
}


static ngx_int_t
ngx_http_token_scope_www_authenticate(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t scope)
{
    u_char                            *p;
    size_t                             len;
    ngx_str_t                         *detail;
    ngx_table_elt_t                   *h;
    ngx_http_token_scope_main_conf_t  *tmcf;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");

    if (ctx->reason == TS_MISSING) {
        /* RFC 6750 3.1: no error code when no token was sent */
        ngx_str_set(&h->value, "Bearer");
        return NGX_OK;
    }

    if (!scope) {
        /* the details are our own constant strings, free of quotes */
        len = sizeof("Bearer error=\"invalid_token\", error_description=\"\"")
              - 1 + ngx_http_token_scope_answers[ctx->reason].detail.len;

        h->value.data = ngx_pnalloc(r->pool, len);
        if (h->value.data == NULL) {
            return NGX_ERROR;
        }

        detail = &ngx_http_token_scope_answers[ctx->reason].detail;

        h->value.len = ngx_sprintf(h->value.data,
                                   "Bearer error=\"invalid_token\", "
                                   "error_description=\"%V\"", detail)
                       - h->value.data;

        return NGX_OK;
    }

    if (ctx->missing == 0) {
        ngx_str_set(&h->value, "Bearer error=\"insufficient_scope\"");
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    len = sizeof("Bearer error=\"insufficient_scope\", scope=\"\"") - 1
          + 64 * (TS_CATEGORY_NAME_MAX + 1);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->value.data = p;

    p = ngx_cpymem(p, "Bearer error=\"insufficient_scope\", scope=\"",
                   sizeof("Bearer error=\"insufficient_scope\", scope=\"")
                   - 1);

    /* RFC 6750 separates scopes with spaces */
    p += ts_categories_format(&tmcf->categories, ctx->missing, ' ',
                              (char *) p, 64 * (TS_CATEGORY_NAME_MAX + 1));
    *p++ = '"';

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/* the required categories by name, for $token_scope_required and logs */

ngx_str_t *
ngx_http_token_scope_format_required(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    size_t                             size;
    ngx_str_t                         *s;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    size = 64 * (TS_CATEGORY_NAME_MAX + 1) + sizeof("common");

    s = ngx_palloc(r->pool, sizeof(ngx_str_t) + size);
    if (s == NULL) {
        return NULL;
    }

    s->data = (u_char *) (s + 1);
    s->len = ts_categories_format(&tmcf->categories, ctx->required, ',',
                                  (char *) s->data, size);

    if (ctx->common && s->len == 0) {
        s->len = ngx_sprintf(s->data, "common") - s->data;
    }

    return s;
}
