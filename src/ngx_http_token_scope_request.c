
/*
 * What the module does to the request besides deciding: the token's facts
 * as request headers for the upstream (token_scope_upstream_headers), CORS
 * preflights let through undecided (token_scope_preflight pass), and the
 * request's URI in a form any log can carry ($token_scope_uri).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define ngx_http_token_scope_fact(name, lowcase, variable)                    \
    { ngx_string(name), ngx_string(lowcase), ngx_string(variable) }


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   lowcase;
    ngx_str_t                   variable;
} ngx_http_token_scope_fact_t;


static ngx_uint_t ngx_http_token_scope_is_fact(ngx_str_t *key);
static ngx_int_t ngx_http_token_scope_strip(ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_add_fact(ngx_http_request_t *r,
    ngx_http_token_scope_fact_t *f);
static ngx_uint_t ngx_http_token_scope_header_is(ngx_table_elt_t *h,
    const char *name, size_t len);
static size_t ngx_http_token_scope_utf8(u_char *p, u_char *last);


static ngx_http_token_scope_fact_t  ngx_http_token_scope_facts_sent[] = {
    ngx_http_token_scope_fact("X-Token-Id", "x-token-id", "token_scope_id"),
    ngx_http_token_scope_fact("X-Token-Type", "x-token-type",
                              "token_scope_type"),
    ngx_http_token_scope_fact("X-Token-Seller", "x-token-seller",
                              "token_scope_seller"),
    ngx_http_token_scope_fact("X-Token-Seller-Oid", "x-token-seller-oid",
                              "token_scope_seller_oid"),
    ngx_http_token_scope_fact("X-Token-Service", "x-token-service",
                              "token_scope_service"),
    ngx_http_token_scope_fact("X-Token-Categories", "x-token-categories",
                              "token_scope_categories"),
    ngx_http_token_scope_fact("X-Token-Scopes", "x-token-scopes",
                              "token_scope_scopes"),
    ngx_http_token_scope_fact("X-Token-Readonly", "x-token-readonly",
                              "token_scope_readonly"),
    { ngx_null_string, ngx_null_string, ngx_null_string }
};


/*
 * With token_scope_upstream_headers on: every client's copy of a fact's
 * header goes, always, so that whatever proxy_set_header, fastcgi_param or
 * grpc_set_header a location has, the upstream never sees a forged one;
 * then, for a request allowed or reported (ctx), the token's facts are
 * added.  They go into headers_in, which proxy, grpc, fastcgi (as
 * HTTP_X_TOKEN_...), uwsgi and scgi all pass on.
 */

ngx_int_t
ngx_http_token_scope_headers(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_uint_t                    i, forged;
    ngx_list_part_t              *part;
    ngx_table_elt_t              *h;
    ngx_http_token_scope_fact_t  *f;

    if (!tlcf->upstream_headers) {
        return NGX_OK;
    }

    forged = 0;

    part = &r->headers_in.headers.part;
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

        forged += ngx_http_token_scope_is_fact(&h[i].key);
    }

    /* a subrequest shares the parts of its parent's list: never push there */
    if (forged || r != r->main) {
        if (ngx_http_token_scope_strip(r) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx == NULL
        || (ctx->decision != NGX_HTTP_TOKEN_SCOPE_ALLOW
            && ctx->decision != NGX_HTTP_TOKEN_SCOPE_WOULD_DENY))
    {
        return NGX_OK;
    }

    for (f = ngx_http_token_scope_facts_sent; f->name.len; f++) {
        if (ngx_http_token_scope_add_fact(r, f) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Whether a header is one of the facts', in any case, and with "_" for
 * "-": with underscores_in_headers on, FastCGI would get X_Token_Seller
 * as HTTP_X_TOKEN_SELLER too
 */

static ngx_uint_t
ngx_http_token_scope_is_fact(ngx_str_t *key)
{
    u_char                        ch;
    size_t                        n;
    ngx_http_token_scope_fact_t  *f;

    for (f = ngx_http_token_scope_facts_sent; f->name.len; f++) {

        if (key->len != f->lowcase.len) {
            continue;
        }

        for (n = 0; n < key->len; n++) {
            ch = ngx_tolower(key->data[n]);

            if (ch == '_') {
                ch = '-';
            }

            if (ch != f->lowcase.data[n]) {
                break;
            }
        }

        if (n == key->len) {
            return 1;
        }
    }

    return 0;
}


/*
 * The request's headers without the facts' ones, in a list of its own:
 * nothing is moved in the old list, so headers_in.host and the others (and
 * the "next" links of nginx 1.23) still point at the same headers, and a
 * subrequest's removal never reaches its parent, with which it shares the
 * list's parts.  The facts' headers are no known header: nothing points at
 * them.
 */

static ngx_int_t
ngx_http_token_scope_strip(ngx_http_request_t *r)
{
    ngx_uint_t        i, n;
    ngx_list_t        old;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *copy;

    /* "last" of a list points into the list itself: never copy one */
    old = r->headers_in.headers;
    n = 0;

    for (part = &old.part; part; part = part->next) {
        n += part->nelts;
    }

    /* the facts to add fit in the same part */
    if (ngx_list_init(&r->headers_in.headers, r->pool, n + 8,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        r->headers_in.headers = old;
        return NGX_ERROR;
    }

    part = &old.part;
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

        if (ngx_http_token_scope_is_fact(&h[i].key)) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "token scope removes header \"%V: %V\"",
                           &h[i].key, &h[i].value);
            continue;
        }

        copy = ngx_list_push(&r->headers_in.headers);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = h[i];
    }

    return NGX_OK;
}


/* one fact, if the token has it; a value with a control byte is not sent */

static ngx_int_t
ngx_http_token_scope_add_fact(ngx_http_request_t *r,
    ngx_http_token_scope_fact_t *f)
{
    size_t                      n;
    ngx_table_elt_t            *h;
    ngx_http_variable_value_t  *vv;

    vv = ngx_http_get_variable(r, &f->variable,
                               ngx_hash_key(f->variable.data,
                                            f->variable.len));
    if (vv == NULL) {
        return NGX_ERROR;
    }

    if (vv->not_found || vv->len == 0) {
        return NGX_OK;
    }

    for (n = 0; n < vv->len; n++) {
        if (vv->data[n] < 0x20 || vv->data[n] == 0x7f) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "token scope: \"%V\" not sent, its value has a "
                          "control character", &f->name);
            return NGX_OK;
        }
    }

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key = f->name;
    h->lowcase_key = f->lowcase.data;
    h->hash = ngx_hash_key(f->lowcase.data, f->lowcase.len);
    h->value.data = vv->data;
    h->value.len = vv->len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/*
 * Under "token_scope_preflight pass", a CORS preflight (OPTIONS with
 * Origin and Access-Control-Request-Method) is let through undecided, as
 * where the module is off; one that names another method to run (an
 * override header or a "_method" argument) is not a preflight and is
 * checked.
 */

ngx_uint_t
ngx_http_token_scope_preflight(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    u_char           *p, *last, *end;
    ngx_uint_t        i, origin, method;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (tlcf->preflight != NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_PASS
        || r->method != NGX_HTTP_OPTIONS)
    {
        return 0;
    }

    origin = 0;
    method = 0;

    part = &r->headers_in.headers.part;
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

        if (ngx_http_token_scope_header_is(&h[i], "Origin",
                                           sizeof("Origin") - 1))
        {
            origin |= (h[i].value.len != 0);

        } else if (ngx_http_token_scope_header_is(&h[i],
                       "Access-Control-Request-Method",
                       sizeof("Access-Control-Request-Method") - 1))
        {
            method |= (h[i].value.len != 0);

        } else if (ngx_http_token_scope_header_is(&h[i],
                       "X-HTTP-Method-Override",
                       sizeof("X-HTTP-Method-Override") - 1)
                   || ngx_http_token_scope_header_is(&h[i],
                       "X-Method-Override", sizeof("X-Method-Override") - 1)
                   || ngx_http_token_scope_header_is(&h[i], "X-HTTP-Method",
                       sizeof("X-HTTP-Method") - 1))
        {
            return 0;
        }
    }

    if (!origin || !method) {
        return 0;
    }

    /* any "_method" argument, and any name that is encoded, may be one */
    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if (ngx_strlchr(p, end, '%') != NULL
            || ((size_t) (end - p) >= sizeof("_method") - 1
                && ngx_strncmp(p, "_method", sizeof("_method") - 1) == 0))
        {
            return 0;
        }

        p = end + 1;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope: a CORS preflight, not checked");

    ctx->conf = tlcf;
    ctx->decision = NGX_HTTP_TOKEN_SCOPE_UNDECIDED;
    ctx->reason = TS_OK;
    ctx->status = 0;
    ctx->why = NULL;
    ctx->op = NULL;
    ngx_memzero(&ctx->required, sizeof(ts_required_t));
    ngx_memzero(&ctx->missing, sizeof(ts_required_t));

    return 1;
}


static ngx_uint_t
ngx_http_token_scope_header_is(ngx_table_elt_t *h, const char *name,
    size_t len)
{
    return h->key.len == len
           && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0;
}


/*
 * $token_scope_uri: $uri, which nginx decoded, with "%" and every byte
 * that is not part of well-formed UTF-8 written as %XX, so that a log line
 * stays UTF-8 (and JSON with escape=json) whatever the client sent
 */

ngx_int_t
ngx_http_token_scope_variable_uri(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    static u_char  hex[] = "0123456789ABCDEF";

    u_char  *p, *last, *dst;
    size_t   n, bad;

    if (r->uri.data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = r->uri.data;
    last = p + r->uri.len;
    bad = 0;

    while (p < last) {
        n = ngx_http_token_scope_utf8(p, last);

        if (n == 0 || *p == '%') {
            bad++;
            n = 1;
        }

        p += n;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    if (bad == 0) {
        v->data = r->uri.data;
        v->len = r->uri.len;
        return NGX_OK;
    }

    v->data = ngx_pnalloc(r->pool, r->uri.len + 2 * bad);
    if (v->data == NULL) {
        return NGX_ERROR;
    }

    dst = v->data;
    p = r->uri.data;

    while (p < last) {
        n = ngx_http_token_scope_utf8(p, last);

        if (n == 0 || *p == '%') {
            *dst++ = '%';
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 0xf];
            p++;
            continue;
        }

        dst = ngx_cpymem(dst, p, n);
        p += n;
    }

    v->len = dst - v->data;

    return NGX_OK;
}


/* the length of the well-formed UTF-8 sequence at p (RFC 3629), or 0 */

static size_t
ngx_http_token_scope_utf8(u_char *p, u_char *last)
{
    u_char  c, lo, hi;
    size_t  n, i;

    c = *p;

    if (c < 0x80) {
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;              /* overlong */

        } else if (c == 0xed) {
            hi = 0x9f;              /* surrogates */
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;              /* overlong */

        } else if (c == 0xf4) {
            hi = 0x8f;              /* above U+10FFFF */
        }

    } else {
        return 0;
    }

    if ((size_t) (last - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }

    return n;
}
