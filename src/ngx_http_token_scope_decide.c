
/*
 * The decision of one location for one request: the rule the location
 * applies to the request's method and path (the operation catalogue, the
 * host table, the location's categories), then the token's facts against
 * it: times, revocation, subject, and the policy of the core.  A method
 * override (X-HTTP-Method-Override, _method) must pass the same way.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_METHOD_MAX  32

/* not a reason: nobody's fault (no memory), answered 500 */
#define NGX_HTTP_TOKEN_SCOPE_FAILED      TS_REASON_MAX


/* what one method on the request's path needs */
typedef struct {
    const ts_op_t              *op;
    ts_required_t               required;
    unsigned                    types;
    unsigned                    write:1;
    unsigned                    public_ok:1;
    unsigned                    public_write:1;
    unsigned                    off:1;       /* not enforced for this host */
} ngx_http_token_scope_rule_t;


static ts_reason_e ngx_http_token_scope_path(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_rule(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *method, ngx_http_token_scope_rule_t *rule);
static const ts_op_t *ngx_http_token_scope_operation(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *method,
    ngx_uint_t *nocase);
static const ts_op_t *ngx_http_token_scope_match(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *method, u_char *buf);
static ts_reason_e ngx_http_token_scope_required(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_http_token_scope_rule_t *rule);
static ts_reason_e ngx_http_token_scope_config(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    const char *why, ngx_str_t *value);
static ts_reason_e ngx_http_token_scope_overrides(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_override(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    u_char *p, size_t len);
static ts_reason_e ngx_http_token_scope_token(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_policy(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_http_token_scope_rule_t *rule);
static ngx_int_t ngx_http_token_scope_client_secret(ngx_http_request_t *r,
    ngx_str_t *secret);


/*
 * Decides for the location tlcf with the facts in ctx; ctx->decision stays
 * NGX_HTTP_TOKEN_SCOPE_UNDECIDED where the rule is "off".  NGX_ERROR only
 * for what is nobody's fault (no memory).
 */

ngx_int_t
ngx_http_token_scope_decide(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ts_reason_e                   reason;
    ngx_http_token_scope_rule_t   rule;

    ctx->conf = tlcf;
    ctx->decision = NGX_HTTP_TOKEN_SCOPE_UNDECIDED;
    ctx->status = 0;
    ctx->why = NULL;
    ctx->op = NULL;
    ngx_memzero(&ctx->required, sizeof(ts_required_t));
    ngx_memzero(&ctx->missing, sizeof(ts_required_t));

    reason = ngx_http_token_scope_path(r, ctx);

    if (reason == TS_OK) {
        reason = ngx_http_token_scope_rule(r, tlcf, ctx, &r->method_name,
                                           &rule);
    }

    if (reason == TS_OK) {
        if (rule.off) {
            return NGX_OK;
        }

        ctx->op = rule.op;
        ctx->required = rule.required;

        reason = ngx_http_token_scope_token(r, tlcf, ctx);
    }

    if (reason == TS_OK) {
        /* TS_REASON_MAX, as NGX_HTTP_TOKEN_SCOPE_FAILED: no memory */
        reason = ngx_http_token_scope_claims_check(r, tlcf, ctx);
    }

    if (reason == TS_OK) {
        reason = ngx_http_token_scope_policy(r, tlcf, ctx, &rule);
    }

    if (reason == TS_OK
        && tlcf->method_override == NGX_HTTP_TOKEN_SCOPE_OVERRIDE_CHECK)
    {
        reason = ngx_http_token_scope_overrides(r, tlcf, ctx);
    }

    if (reason == NGX_HTTP_TOKEN_SCOPE_FAILED) {
        return NGX_ERROR;
    }

    ctx->reason = reason;

    if (reason == TS_OK) {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_ALLOW;

    } else if (tlcf->mode == NGX_HTTP_TOKEN_SCOPE_REPORT) {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_WOULD_DENY;

    } else {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_DENY;
    }

    return NGX_OK;
}


/*
 * The path an upstream may get must name what nginx matched: the raw one
 * while nginx may still forward it (named locations too), else nginx's
 * own, which only ";" parameters can still make differ
 */

static ts_reason_e
ngx_http_token_scope_path(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    u_char  *p, *q;
    size_t   len;

    if (r->valid_unparsed_uri && r->unparsed_uri.data != NULL) {
        p = r->unparsed_uri.data;
        q = ngx_strlchr(p, p + r->unparsed_uri.len, '?');
        len = (q ? q : p + r->unparsed_uri.len) - p;

    } else {
        p = r->uri.data;
        len = r->uri.len;
    }

    if (ts_path_is_canonical(p, len)) {
        return TS_OK;
    }

    ctx->why = "path is not canonical";

    return TS_OPERATION;
}


/* the rule of the location, or of the catalogue, for a method */

static ts_reason_e
ngx_http_token_scope_rule(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_str_t *method, ngx_http_token_scope_rule_t *rule)
{
    ngx_uint_t      nocase;
    const ts_op_t  *op;

    ngx_memzero(rule, sizeof(ngx_http_token_scope_rule_t));

    if (tlcf->operations != NULL) {
        op = ngx_http_token_scope_operation(r, tlcf, method, &nocase);

        if (op != NULL && nocase) {
            /* a case-insensitive backend would run the operation */
            ctx->op = op;
            ctx->why = "method or path differs in case from an operation";
            return TS_OPERATION;
        }

        if (op != NULL && op->deny) {
            ctx->op = op;
            ctx->why = "the catalogue refuses this operation";
            return TS_OPERATION;
        }

        if (op != NULL) {
            rule->op = op;
            rule->required = op->required;
            rule->types = op->types ? op->types : tlcf->types;
            rule->write = op->write;
            rule->public_ok = op->public
                         || tlcf->public != NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF;
            rule->public_write = (op->public && op->write)
                         || tlcf->public == NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE;
            return TS_OK;
        }

        if (tlcf->unmatched != NGX_HTTP_TOKEN_SCOPE_UNMATCHED_LOCATION) {
            ctx->why = "no such operation";
            return TS_OPERATION;
        }
    }

    rule->types = tlcf->types;
    rule->public_ok = (tlcf->public != NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF);
    rule->public_write = (tlcf->public == NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE);

    switch (tlcf->access) {

    case TS_ACCESS_READ:
        rule->write = 0;
        break;

    case TS_ACCESS_WRITE:
        rule->write = 1;
        break;

    default: /* TS_ACCESS_AUTO: GET, HEAD and OPTIONS read */
        rule->write = !((method->len == 3
                         && ngx_strncmp(method->data, "GET", 3) == 0)
                        || (method->len == 4
                            && ngx_strncmp(method->data, "HEAD", 4) == 0)
                        || (method->len == 7
                            && ngx_strncmp(method->data, "OPTIONS", 7) == 0));
        break;
    }

    return ngx_http_token_scope_required(r, tlcf, ctx, rule);
}


/*
 * The catalogue's operation for (host, method, uri); failing that, one
 * that differs only in case (*nocase set)
 */

static const ts_op_t *
ngx_http_token_scope_operation(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *method,
    ngx_uint_t *nocase)
{
    u_char         *buf;
    const ts_op_t  *op;

    *nocase = 0;

    op = ngx_http_token_scope_match(r, tlcf, method, NULL);

    if (op == NULL) {
        buf = ngx_pnalloc(r->pool, method->len + r->uri.len);
        if (buf == NULL) {
            return NULL;
        }

        op = ngx_http_token_scope_match(r, tlcf, method, buf);
        *nocase = (op != NULL);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope operation: \"%s\" in \"%V\"%s",
                   op ? op->name : "none", &tlcf->operations->name,
                   *nocase ? " without case" : "");

    return op;
}


/* exactly, or (buf: room for the lower-cased copies) without case */

static const ts_op_t *
ngx_http_token_scope_match(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_str_t *method, u_char *buf)
{
    ts_str_t        m, host, path;
    const ts_op_t  *op;

    m.data = method->data;
    m.len = method->len;

    /* validated and lower-cased by nginx, without the port */
    host.data = r->headers_in.server.data;
    host.len = r->headers_in.server.len;

    path.data = r->uri.data;
    path.len = r->uri.len;

    for ( ;; ) {
        op = buf ? ts_ops_match_nocase(tlcf->operations->ops, &m, &host,
                                       &path, buf)
                 : ts_ops_match(tlcf->operations->ops, &m, &host, &path);

        /* HEAD is GET without a body */
        if (op != NULL || m.len != 4
            || ngx_strncasecmp(m.data, (u_char *) "HEAD", 4) != 0
            || (buf == NULL && ngx_strncmp(m.data, "HEAD", 4) != 0))
        {
            return op;
        }

        m.data = (u_char *) "GET";
        m.len = 3;
    }
}


/* the categories the location needs: a list, a variable or the host table */

static ts_reason_e
ngx_http_token_scope_required(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_http_token_scope_rule_t *rule)
{
    ngx_str_t                          value;
    ts_str_t                           bad;
    ngx_http_token_scope_host_t       *host;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (tlcf->hosts != NULL) {
        host = ngx_http_token_scope_host(r, tlcf->hosts, &value);

        if (host == NULL) {
            return ngx_http_token_scope_config(r, tlcf, ctx,
                                  "host not in token_scope_hosts", &value);
        }

        rule->required = host->required;
        rule->off = host->off;

        return TS_OK;
    }

    if (tlcf->required_value == NULL) {
        rule->required = tlcf->required;
        return TS_OK;
    }

    if (ngx_http_complex_value(r, tlcf->required_value, &value) != NGX_OK) {
        return NGX_HTTP_TOKEN_SCOPE_FAILED;
    }

    if (value.len == 3 && ngx_strncmp(value.data, "off", 3) == 0) {
        rule->off = 1;
        return TS_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    switch (ts_categories_parse(&tmcf->categories, value.data, value.len,
                                &rule->required, &bad))
    {
    case 0:
        return TS_OK;

    case -2:
        return ngx_http_token_scope_config(r, tlcf, ctx,
                                           "too many alternatives", &value);

    default:
        break;
    }

    if (bad.len == 0) {
        return ngx_http_token_scope_config(r, tlcf, ctx, "no category",
                                           &tlcf->required_value->value);
    }

    value.data = bad.data;
    value.len = bad.len;

    return ngx_http_token_scope_config(r, tlcf, ctx, "unknown category",
                                       &value);
}


/*
 * The configuration names nothing it knows at request time: the operator's
 * mistake, said once per location configuration (in each worker), not for
 * every request it costs
 */

static ts_reason_e
ngx_http_token_scope_config(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    const char *why, ngx_str_t *value)
{
    ctx->why = why;

    if (!tlcf->config_logged) {
        tlcf->config_logged = 1;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "token scope configuration: %s \"%V\"%s", why, value,
                      tlcf->mode == NGX_HTTP_TOKEN_SCOPE_REPORT
                      ? ", requests pass (report mode)"
                      : ", requests are answered 500");
    }

    return TS_CONFIG;
}


/*
 * Frameworks (Express, ASP.NET, Symfony, Rails, Laravel) run the method an
 * override names: each one present must be allowed as well
 */

static ts_reason_e
ngx_http_token_scope_overrides(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    u_char           *p, *last, *name, *value, *end, *dst;
    size_t            len;
    ngx_uint_t        i;
    ts_reason_e       reason;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    u_char            buf[3 * (sizeof("_method") - 1)];

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

        if ((h[i].key.len == sizeof("X-HTTP-Method-Override") - 1
             && ngx_strncasecmp(h[i].key.data,
                                (u_char *) "X-HTTP-Method-Override",
                                h[i].key.len) == 0)
            || (h[i].key.len == sizeof("X-Method-Override") - 1
                && ngx_strncasecmp(h[i].key.data,
                                   (u_char *) "X-Method-Override",
                                   h[i].key.len) == 0)
            || (h[i].key.len == sizeof("X-HTTP-Method") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "X-HTTP-Method",
                                   h[i].key.len) == 0))
        {
            reason = ngx_http_token_scope_override(r, tlcf, ctx,
                                                   h[i].value.data,
                                                   h[i].value.len);
            if (reason != TS_OK) {
                return reason;
            }
        }
    }

    /* every "_method" argument, its name and value URL-decoded */
    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        name = p;

        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        p = end + 1;

        value = ngx_strlchr(name, end, '=');
        if (value == NULL) {
            continue;
        }

        len = value - name;

        if (len < sizeof("_method") - 1 || len > 3 * (sizeof("_method") - 1))
        {
            continue;
        }

        dst = buf;
        ngx_unescape_uri(&dst, &name, len, 0);

        if ((size_t) (dst - buf) != sizeof("_method") - 1
            || ngx_strncmp(buf, "_method", sizeof("_method") - 1) != 0)
        {
            continue;
        }

        value++;

        len = end - value;
        dst = ngx_pnalloc(r->pool, len);
        if (dst == NULL) {
            return NGX_HTTP_TOKEN_SCOPE_FAILED;
        }

        name = dst;
        ngx_unescape_uri(&dst, &value, len, 0);

        reason = ngx_http_token_scope_override(r, tlcf, ctx, name,
                                               dst - name);
        if (reason != TS_OK) {
            return reason;
        }
    }

    return TS_OK;
}


/* one override: the rule of its method, in upper case, and the policy */

static ts_reason_e
ngx_http_token_scope_override(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    u_char *p, size_t len)
{
    ngx_str_t                     method;
    ngx_uint_t                    i;
    ts_reason_e                   reason;
    ngx_http_token_scope_rule_t   rule;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }

    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }

    /* a name no method has still names an unknown one: a write */
    len = ngx_min(len, NGX_HTTP_TOKEN_SCOPE_METHOD_MAX);

    method.data = ngx_pnalloc(r->pool, len);
    if (method.data == NULL) {
        return NGX_HTTP_TOKEN_SCOPE_FAILED;
    }

    method.len = len;

    for (i = 0; i < len; i++) {
        method.data[i] = ngx_toupper(p[i]);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope method override: \"%V\"", &method);

    reason = ngx_http_token_scope_rule(r, tlcf, ctx, &method, &rule);

    if (reason != TS_OK || rule.off) {
        return reason;
    }

    reason = ngx_http_token_scope_policy(r, tlcf, ctx, &rule);

    if (reason != TS_OK) {
        /* what the refusal tells is what the override needed */
        ctx->op = rule.op;
        ctx->required = rule.required;
    }

    return reason;
}


/* what the token is, before what the location needs of it */

static ts_reason_e
ngx_http_token_scope_token(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_str_t    subject;
    ts_reason_e  reason;

    if (ctx->facts_reason != TS_OK) {
        return ctx->facts_reason;
    }

    reason = ts_token_check_time(&ctx->token, ngx_time(), tlcf->leeway);
    if (reason != TS_OK) {
        return reason;
    }

    reason = ngx_http_token_scope_revoked(r, tlcf, &ctx->token);
    if (reason != TS_OK || tlcf->subject == NULL) {
        return reason;
    }

    /* the store or seller the request is about must be the token's own */
    if (ngx_http_complex_value(r, tlcf->subject, &subject) != NGX_OK) {
        return NGX_HTTP_TOKEN_SCOPE_FAILED;
    }

    /* an empty value matches nothing, a token without a subject neither */
    if (subject.len != 0 && subject.len == ctx->token.sid.len
        && ngx_memcmp(subject.data, ctx->token.sid.data, subject.len) == 0)
    {
        return TS_OK;
    }

    return TS_SUBJECT;
}


static ts_reason_e
ngx_http_token_scope_policy(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx,
    ngx_http_token_scope_rule_t *rule)
{
    ngx_str_t    secret;
    ts_policy_t  policy;
    u_char       digest[TS_SHA256_LEN];

    ngx_memzero(&policy, sizeof(ts_policy_t));

    policy.required = rule->required;
    policy.types = rule->types;
    policy.write = rule->write;
    policy.public_ok = rule->public_ok;
    policy.public_write = rule->public_write;
    policy.sandbox = (tlcf->environment == NGX_HTTP_TOKEN_SCOPE_SANDBOX);
    policy.legacy = tlcf->legacy;
    policy.personal_only = tlcf->personal_only;

    /* the request's own identity matters for these two types only */
    switch (ctx->token.type) {

    case TS_TYPE_PERSONAL:
        policy.cloud = (ngx_http_token_scope_client_secret(r, &secret)
                        == NGX_OK);
        policy.outside = tlcf->personal_from != NULL
                         && ngx_cidr_match(r->connection->sockaddr,
                                           tlcf->personal_from)
                            != NGX_OK;
        break;

    case TS_TYPE_SERVICE:
        if (tlcf->secrets == NULL && !tlcf->secrets_redis) {
            break;
        }

        policy.check_secret = 1;

        if (ngx_http_token_scope_client_secret(r, &secret) != NGX_OK
            || ts_sha256(secret.data, secret.len, digest) != 0)
        {
            break;
        }

        if (tlcf->secrets != NULL) {
            policy.secret_ok = ts_secrets_match(tlcf->secrets,
                                                &ctx->token.service, digest);

        } else {
            policy.secret_ok = ngx_http_token_scope_revocation_secret(r,
                                               &ctx->token.service, digest);
        }

        break;

    default:
        break;
    }

    return ts_decide(&policy, &ctx->token, &ctx->missing);
}


/* X-Client-Secret: every Business Solutions Catalog service sends one */

static ngx_int_t
ngx_http_token_scope_client_secret(ngx_http_request_t *r, ngx_str_t *secret)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("X-Client-Secret") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Client-Secret",
                               sizeof("X-Client-Secret") - 1) == 0
            && h[i].value.len > 0)
        {
            *secret = h[i].value;
            return NGX_OK;
        }
    }
}
