
/*
 * The answer to a refused request.  The deciding handler returns the
 * status to nginx with the RFC 6750 WWW-Authenticate header (Retry-After
 * for a 503), so "satisfy" and "error_page" do their work; where nginx
 * then answers itself, the filters here give that answer the API's own
 * shape (token_scope_error_format): WB's JSON body, Ecwid's errorMessage
 * or only the status.  Nothing from the request is echoed but $request_id;
 * every string is escaped for JSON.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_ORIGIN  "s2s-api-auth-"

/* about the longest pause between two attempts to reach Redis */
#define NGX_HTTP_TOKEN_SCOPE_RETRY_AFTER  "5"


typedef struct {
    ngx_str_t                   detail;
    ngx_str_t                   explain;     /* the specific scope reason */
    unsigned                    scope:1;     /* a scope, not an auth failure */
} ngx_http_token_scope_answer_t;


static ngx_int_t ngx_http_token_scope_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_token_scope_body(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_str_t *body);
static ngx_str_t ngx_http_token_scope_origin(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static ngx_table_elt_t *ngx_http_token_scope_push_header(
    ngx_http_request_t *r, char *key);
static ngx_int_t ngx_http_token_scope_www_authenticate(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t scope);
static ngx_str_t ngx_http_token_scope_explain(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static ngx_int_t ngx_http_token_scope_body_ecwid(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_str_t *body);
static ngx_str_t ngx_http_token_scope_missing(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, char sep);


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
      ngx_string("no such operation"), 1 },
    /* TS_SCOPE */
    { ngx_string("token scope not allowed"), ngx_null_string, 1 },
    /* TS_PUBLIC_TOKEN */
    { ngx_string("token scope not allowed"),
      ngx_string("a public token may not call this method"), 1 },
    /* TS_UNKNOWN_TOKEN */
    { ngx_string("token problem; unknown token"), ngx_null_string, 0 },
    /* TS_SUBJECT */
    { ngx_string("token scope not allowed"),
      ngx_string("the token is for another store or seller"), 1 },
    /* TS_CONFIG */
    { ngx_string("token scope configuration error"), ngx_null_string, 0 },
    /* TS_ISSUER */
    { ngx_string("token problem; token issuer is not accepted"),
      ngx_null_string, 0 },
    /* TS_AUDIENCE */
    { ngx_string("token problem; token is not for this audience"),
      ngx_null_string, 0 },
    /* TS_REQUIRE */
    { ngx_string("token problem; token does not meet a requirement"),
      ngx_null_string, 0 }
};


/* Ecwid's own words where it has them; the detail above elsewhere */
static ngx_str_t  ngx_http_token_scope_ecwid[] = {
    ngx_null_string,                                 /* TS_OK */
    ngx_string("Access token is missing"),           /* TS_MISSING */
    ngx_string("Invalid access token"),              /* TS_MALFORMED */
    ngx_string("Invalid access token"),              /* TS_BAD_SIGNATURE */
    ngx_string("Invalid access token"),              /* TS_UNKNOWN_KEY */
    ngx_string("Access token has expired"),          /* TS_EXPIRED */
    ngx_string("Invalid access token"),              /* TS_NOT_YET_VALID */
    ngx_string("Access token was revoked"),          /* TS_REVOKED */
    ngx_null_string,                                 /* TS_CATEGORY */
    ngx_string("Access token cannot modify data"),   /* TS_READ_ONLY */
    ngx_null_string,                                 /* TS_ENVIRONMENT */
    ngx_null_string,                                 /* TS_TOKEN_TYPE */
    ngx_null_string,                                 /* TS_SERVICE_SECRET */
    ngx_null_string,                                 /* TS_PERSONAL_CLOUD */
    ngx_string("Token state is unavailable, retry"), /* TS_REDIS_UNAVAIL. */
    ngx_null_string,                                 /* TS_OPERATION */
    ngx_null_string,                                 /* TS_SCOPE */
    ngx_string("Public token may not call this method"),
                                                     /* TS_PUBLIC_TOKEN */
    ngx_string("Invalid access token"),              /* TS_UNKNOWN_TOKEN */
    ngx_string("Access token is not valid for this store"), /* TS_SUBJECT */
    ngx_null_string,                                 /* TS_CONFIG */
    ngx_string("Invalid access token"),              /* TS_ISSUER */
    ngx_string("Invalid access token"),              /* TS_AUDIENCE */
    ngx_null_string                                  /* TS_REQUIRE */
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_http_token_scope_answer_t  ngx_http_token_scope_not_found = {
    ngx_string("path not found"), ngx_null_string, 0
};


/*
 * The refusal's status, and the headers that go with it whoever answers:
 * nginx, an error_page, or auth_request copying WWW-Authenticate
 */

ngx_int_t
ngx_http_token_scope_refuse(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    ngx_table_elt_t                  *h;
    ngx_http_token_scope_answer_t    *answer;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ctx->conf;
    answer = &ngx_http_token_scope_answers[ctx->reason];

    switch (ctx->reason) {

    case TS_CONFIG:
        ctx->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return ctx->status;

    case TS_REDIS_UNAVAILABLE:
        /* the server's fault, not the token's */
        ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;

        h = ngx_http_token_scope_push_header(r, "Retry-After");
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_str_set(&h->value, NGX_HTTP_TOKEN_SCOPE_RETRY_AFTER);

        return ctx->status;

    case TS_OPERATION:
        if (tlcf->unmatched == NGX_HTTP_TOKEN_SCOPE_UNMATCHED_NOT_FOUND) {
            ctx->status = NGX_HTTP_NOT_FOUND;
            return ctx->status;
        }

        break;

    default:
        break;
    }

    /* RFC 6750 and Ecwid: a scope failure is 403; WB answers 401 */
    ctx->status = !answer->scope ? NGX_HTTP_UNAUTHORIZED
                  : tlcf->error_format == NGX_HTTP_TOKEN_SCOPE_FORMAT_WB
                    ? tlcf->deny_status : NGX_HTTP_FORBIDDEN;

    if (ctx->reason == TS_REQUIRE) {
        /* token_scope_require ... error=403 */
        ctx->status = tlcf->require_status;
    }

    if (ngx_http_token_scope_www_authenticate(r, ctx,
                                 answer->scope
                                 || ctx->status == NGX_HTTP_FORBIDDEN)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ctx->status;
}


ngx_int_t
ngx_http_token_scope_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_token_scope_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_token_scope_body_filter;

    return NGX_OK;
}


/*
 * nginx answers a refusal of ours itself (no error_page claimed the
 * status): the body becomes the module's, the headers say so
 */

static ngx_int_t
ngx_http_token_scope_header_filter(ngx_http_request_t *r)
{
    ngx_buf_t                   *b;
    ngx_str_t                    body;
    ngx_http_token_scope_ctx_t  *ctx;

    switch (r->headers_out.status) {

    case NGX_HTTP_UNAUTHORIZED:
    case NGX_HTTP_FORBIDDEN:
    case NGX_HTTP_NOT_FOUND:
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        break;

    default:
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_token_scope_get_ctx(r);

    if (ctx == NULL || !ngx_http_token_scope_refused_here(r, ctx)) {
        return ngx_http_next_header_filter(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope header filter: %s",
                   ts_reason_name(ctx->reason));

    if (ngx_http_token_scope_body(r, ctx, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (body.len) {
        b->pos = body.data;
        b->last = body.data + body.len;
        b->memory = 1;

        r->headers_out.content_type_len = sizeof("application/json") - 1;
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        b->sync = 1;

        r->headers_out.content_type_len = 0;
        ngx_str_null(&r->headers_out.content_type);
    }

    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = body.len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ctx->answer = b;

    return ngx_http_next_header_filter(r);
}


/* nginx's own page goes nowhere: the module's answer takes its place */

static ngx_int_t
ngx_http_token_scope_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl, out;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_token_scope_module);

    if (ctx == NULL || ctx->answer == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    b = ctx->answer;

    for (cl = in; cl; cl = cl->next) {
        b->last_buf |= cl->buf->last_buf;
        b->last_in_chain |= cl->buf->last_in_chain;

        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!b->last_buf && !b->last_in_chain) {
        /* the module's answer goes out whole, with the page's end */
        return NGX_OK;
    }

    ctx->answer = NULL;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/* the answer's body for the location's error format; empty: status only */

static ngx_int_t
ngx_http_token_scope_body(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_str_t *body)
{
    size_t                            len;
    u_char                           *p;
    ngx_tm_t                          tm;
    ngx_str_t                         origin, explain, title, status_text;
    ngx_uint_t                        status;
    ngx_http_variable_value_t        *request_id;
    ngx_http_token_scope_answer_t    *answer;
    ngx_http_token_scope_main_conf_t *tmcf;

    status = ctx->status;

    switch (ctx->conf->error_format) {

    case NGX_HTTP_TOKEN_SCOPE_FORMAT_ECWID:
        return ngx_http_token_scope_body_ecwid(r, ctx, body);

    case NGX_HTTP_TOKEN_SCOPE_FORMAT_RFC6750:
        /* the status and WWW-Authenticate say it all */
        ngx_str_null(body);
        return NGX_OK;

    default: /* NGX_HTTP_TOKEN_SCOPE_FORMAT_WB */
        break;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    answer = &ngx_http_token_scope_answers[ctx->reason];
    explain = ngx_http_token_scope_explain(r, ctx);

    switch (status) {

    case NGX_HTTP_NOT_FOUND:
        answer = &ngx_http_token_scope_not_found;
        ngx_str_null(&explain);
        ngx_str_set(&title, "not found");
        ngx_str_set(&status_text, "Not Found");
        break;

    case NGX_HTTP_FORBIDDEN:
        ngx_str_set(&title, "forbidden");
        ngx_str_set(&status_text, "Forbidden");
        break;

    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        ngx_str_set(&title, "internal server error");
        ngx_str_set(&status_text, "Internal Server Error");
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        ngx_str_set(&title, "service unavailable");
        ngx_str_set(&status_text, "Service Unavailable");
        break;

    default:
        ngx_str_set(&title, "unauthorized");
        ngx_str_set(&status_text, "Unauthorized");
        break;
    }

    origin = ngx_http_token_scope_origin(r, ctx);

    request_id = ngx_http_get_indexed_variable(r, tmcf->request_id_index);
    if (request_id == NULL || request_id->not_found) {
        return NGX_ERROR;
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
        return NGX_ERROR;
    }

    body->data = p;

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

    body->len = p - body->data;

    return NGX_OK;
}


/*
 * {"errorMessage":"Access token doesn't have `read_catalog` scope",
 *  "errorCode":"scope"}: Ecwid's shape, our stable reason as the code
 */

static ngx_int_t
ngx_http_token_scope_body_ecwid(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_str_t *body)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   message, explain, missing;

    message = ngx_http_token_scope_ecwid[ctx->reason];
    ngx_str_null(&explain);
    ngx_str_null(&missing);

    if (ctx->status == NGX_HTTP_NOT_FOUND) {
        ngx_str_set(&message, "Not found");

    } else if (ctx->reason == TS_CATEGORY || ctx->reason == TS_SCOPE) {
        missing = ngx_http_token_scope_missing(r, ctx, ',');

    } else if (message.len == 0) {
        message = ngx_http_token_scope_answers[ctx->reason].detail;
        explain = ngx_http_token_scope_explain(r, ctx);
    }

    len = sizeof("{\"errorMessage\":\"Access token doesn't have `` scope\","
                 "\"errorCode\":\"\"}") - 1
          + message.len + 2 + explain.len
          + ngx_escape_json(NULL, explain.data, explain.len)
          + missing.len + ngx_strlen(ts_reason_name(ctx->reason));

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    p = ngx_cpymem(p, "{\"errorMessage\":\"",
                   sizeof("{\"errorMessage\":\"") - 1);

    if (missing.len) {
        /* names are checked at configuration: no quotes, no backslashes */
        p = ngx_sprintf(p, "Access token doesn't have `%V` scope", &missing);

    } else {
        p = ngx_cpymem(p, message.data, message.len);

        if (explain.len) {
            p = ngx_cpymem(p, "; ", 2);
            p = (u_char *) ngx_escape_json(p, explain.data, explain.len);
        }
    }

    p = ngx_sprintf(p, "\",\"errorCode\":\"%s\"}",
                    ts_reason_name(ctx->reason));

    body->len = p - body->data;

    return NGX_OK;
}


/* what the token lacks, by name, categories first */

static ngx_str_t
ngx_http_token_scope_missing(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, char sep)
{
    size_t                             size;
    ngx_str_t                          s;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    size = 128 * TS_CATEGORY_NAME_MAX;

    s.data = ngx_pnalloc(r->pool, size);
    if (s.data == NULL) {
        s.len = 0;
        return s;
    }

    s.len = ts_required_format(&tmcf->categories, &ctx->missing, sep,
                               (char *) s.data, size);

    return s;
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

    tlcf = ctx->conf;

    if (tlcf->origin.len) {
        return tlcf->origin;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    name = NULL;

    if (ts_required_first(&ctx->required, &bit) == 0) {
        name = ts_categories_name(&tmcf->categories, bit);
    }

    if (name == NULL) {
        name = "common";
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
    u_char     *p;
    ngx_str_t   s, missing;

    switch (ctx->reason) {

    case TS_MALFORMED:
        if (ctx->token.error) {
            s.data = (u_char *) ctx->token.error;
            s.len = ngx_strlen(ctx->token.error);
            return s;
        }

        return ngx_http_token_scope_answers[ctx->reason].explain;

    case TS_OPERATION:
    case TS_CONFIG:
        if (ctx->why) {
            s.data = (u_char *) ctx->why;
            s.len = ngx_strlen(ctx->why);
            return s;
        }

        return ngx_http_token_scope_answers[ctx->reason].explain;

    case TS_CATEGORY:
    case TS_SCOPE:
        missing = ngx_http_token_scope_missing(r, ctx, ',');

        p = ngx_pnalloc(r->pool, sizeof("the token lacks the  category")
                                 + missing.len);
        if (p == NULL) {
            break;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "the token lacks the %V %s", &missing,
                            ctx->reason == TS_SCOPE ? "scope" : "category")
                - p;

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


/* nginx 1.23 links repeated headers through "next": ours stand alone */

static ngx_table_elt_t *
ngx_http_token_scope_push_header(ngx_http_request_t *r, char *key)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    ngx_str_null(&h->value);
    h->lowcase_key = NULL;

#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


static ngx_int_t
ngx_http_token_scope_www_authenticate(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t scope)
{
    size_t            len;
    ngx_str_t        *detail, missing;
    ngx_table_elt_t  *h;

    h = ngx_http_token_scope_push_header(r, "WWW-Authenticate");
    if (h == NULL) {
        return NGX_ERROR;
    }

    /*
     * satisfy any clears it when another module grants; auth_request
     * copies it from a subrequest
     */
    r->headers_out.www_authenticate = h;

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

    if (ctx->missing.categories == 0 && ctx->missing.names == 0
        && ctx->missing.nany == 0)
    {
        ngx_str_set(&h->value, "Bearer error=\"insufficient_scope\"");
        return NGX_OK;
    }

    /* RFC 6750 separates scopes with spaces */
    missing = ngx_http_token_scope_missing(r, ctx, ' ');

    len = sizeof("Bearer error=\"insufficient_scope\", scope=\"\"") - 1
          + missing.len;

    h->value.data = ngx_pnalloc(r->pool, len);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data,
                               "Bearer error=\"insufficient_scope\", "
                               "scope=\"%V\"", &missing)
                   - h->value.data;

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

    /* enough for every name once; a longer list is cut at a name */
    size = 128 * (TS_CATEGORY_NAME_MAX + 1) + sizeof("common");

    s = ngx_palloc(r->pool, sizeof(ngx_str_t) + size);
    if (s == NULL) {
        return NULL;
    }

    s->data = (u_char *) (s + 1);
    s->len = ts_required_format(&tmcf->categories, &ctx->required, ',',
                                (char *) s->data, size);

    return s;
}
