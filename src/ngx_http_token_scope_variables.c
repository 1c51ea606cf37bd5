
/*
 * The module's variables: the token's facts for logs, limit_req and
 * upstream headers, and the decision of the location that decided.  A
 * fact read before the access phase (limit_req, "set", "map") is computed
 * then; the decision never is: it is empty until a location made it, and
 * in a request nginx answered itself everything is.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


typedef struct {
    ngx_str_t                   name;
    ngx_http_get_variable_pt    handler;
    uintptr_t                   data;
} ngx_http_token_scope_var_t;


static ngx_int_t ngx_http_token_scope_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_type(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_oid(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_exp(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_readonly(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_categories(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_required(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_decision(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_operation(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_variable_int(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, int64_t value);
static ngx_http_token_scope_ctx_t *ngx_http_token_scope_decided(
    ngx_http_request_t *r);
static void ngx_http_token_scope_variable_set(ngx_http_variable_value_t *v,
    u_char *data, size_t len);



static ngx_http_token_scope_var_t  ngx_http_token_scope_vars[] = {

    { ngx_string("token_scope_id"), ngx_http_token_scope_variable_str,
      offsetof(ts_token_t, id) },

    { ngx_string("token_scope_seller"), ngx_http_token_scope_variable_str,
      offsetof(ts_token_t, sid) },

    { ngx_string("token_scope_service"), ngx_http_token_scope_variable_str,
      offsetof(ts_token_t, service) },

    { ngx_string("token_scope_kid"), ngx_http_token_scope_variable_str,
      offsetof(ts_token_t, kid) },

    { ngx_string("token_scope_type"), ngx_http_token_scope_variable_type,
      0 },

    { ngx_string("token_scope_seller_oid"),
      ngx_http_token_scope_variable_oid, 0 },

    { ngx_string("token_scope_exp"), ngx_http_token_scope_variable_exp, 0 },

    { ngx_string("token_scope_readonly"),
      ngx_http_token_scope_variable_readonly, 0 },

    { ngx_string("token_scope_categories"),
      ngx_http_token_scope_variable_categories, 0 },

    { ngx_string("token_scope_scopes"),
      ngx_http_token_scope_variable_categories, 1 },

    { ngx_string("token_scope_required"),
      ngx_http_token_scope_variable_required, 0 },

    { ngx_string("token_scope_decision"),
      ngx_http_token_scope_variable_decision, 0 },

    { ngx_string("token_scope_reason"),
      ngx_http_token_scope_variable_reason, 0 },

    { ngx_string("token_scope_operation"),
      ngx_http_token_scope_variable_operation, 0 },

    { ngx_string("token_scope_uri"), ngx_http_token_scope_variable_uri, 0 },

    { ngx_null_string, NULL, 0 }
};


static void
ngx_http_token_scope_variable_set(ngx_http_variable_value_t *v,
    u_char *data, size_t len)
{
    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}


static ngx_http_token_scope_ctx_t *
ngx_http_token_scope_decided(ngx_http_request_t *r)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_get_ctx(r);

    if (ctx == NULL || ctx->decision == NGX_HTTP_TOKEN_SCOPE_UNDECIDED) {
        return NULL;
    }

    return ctx;
}


static ngx_int_t
ngx_http_token_scope_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ts_str_t                    *s;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ts_str_t *) ((u_char *) &ctx->token + data);

    ngx_http_token_scope_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_type(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char                  *name;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ts_type_name(ctx->token.type);

    ngx_http_token_scope_variable_set(v, (u_char *) name, ngx_strlen(name));

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_int(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, int64_t value)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_token_scope_variable_set(v, p,
                                      ngx_sprintf(p, "%L", value) - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_oid(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL || !ctx->token.has_oid) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_token_scope_variable_int(r, v, ctx->token.oid);
}


static ngx_int_t
ngx_http_token_scope_variable_exp(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_token_scope_variable_int(r, v, ctx->token.exp);
}


static ngx_int_t
ngx_http_token_scope_variable_readonly(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_token_scope_variable_set(v,
        (u_char *) ((ctx->token.scope & TS_READONLY_MASK) ? "1" : "0"), 1);

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_categories(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                            *p;
    size_t                             size;
    ngx_http_token_scope_ctx_t        *ctx;
    ngx_http_token_scope_main_conf_t  *tmcf;

    ctx = ngx_http_token_scope_known(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    size = 64 * (TS_CATEGORY_NAME_MAX + 1);

    p = ngx_pnalloc(r->pool, size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* data: 0 for the categories, 1 for the named scopes */
    ngx_http_token_scope_variable_set(v, p,
        ts_categories_format(&tmcf->categories,
                             data ? 0 : ctx->token.scope,
                             data ? ctx->token.names : 0,
                             ',', (char *) p, size));

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_required(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   *required;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_decided(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    required = ngx_http_token_scope_format_required(r, ctx);
    if (required == NULL) {
        return NGX_ERROR;
    }

    ngx_http_token_scope_variable_set(v, required->data, required->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_decision(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    static ngx_str_t  decisions[] = {
        ngx_null_string,
        ngx_string("allow"),
        ngx_string("deny"),
        ngx_string("report")
    };

    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_decided(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_token_scope_variable_set(v, decisions[ctx->decision].data,
                                      decisions[ctx->decision].len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    const char                  *name;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_decided(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ts_reason_name(ctx->reason);

    ngx_http_token_scope_variable_set(v, (u_char *) name, ngx_strlen(name));

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_variable_operation(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_decided(r);

    if (ctx == NULL || ctx->op == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_token_scope_variable_set(v, (u_char *) ctx->op->name,
                                      ctx->op->name_len);

    return NGX_OK;
}


ngx_int_t
ngx_http_token_scope_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t         *var;
    ngx_http_token_scope_var_t  *v;

    for (v = ngx_http_token_scope_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->handler;
        var->data = v->data;
    }

    return ngx_http_token_scope_claims_variables(cf);
}
