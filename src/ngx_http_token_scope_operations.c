
/*
 * The operation catalogue in nginx: the "token_scope_operations NAME {}"
 * block (usually generated from OpenAPI by scripts/openapi-rules), the
 * "token_scope_operations_use" directive; the request's lookup is in
 * ngx_http_token_scope_decide.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static char *ngx_http_token_scope_operation(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static void ngx_http_token_scope_cleanup_ops(void *data);


static ngx_conf_enum_t  ngx_http_token_scope_unmatched[] = {
    { ngx_string("location"), NGX_HTTP_TOKEN_SCOPE_UNMATCHED_LOCATION },
    { ngx_string("deny"), NGX_HTTP_TOKEN_SCOPE_UNMATCHED_DENY },
    { ngx_string("not_found"), NGX_HTTP_TOKEN_SCOPE_UNMATCHED_NOT_FOUND },
    { ngx_null_string, 0 }
};


/* token_scope_operations NAME { METHOD HOST PATH CATEGORIES ACCESS ...; } */

char *
ngx_http_token_scope_operations_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    char                              *rv;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_conf_t                         save;
    ngx_pool_cleanup_t                *cln;
    ngx_http_token_scope_catalog_t    *catalog;

    value = cf->args->elts;

    if (tmcf->catalogs.elts == NULL
        && ngx_array_init(&tmcf->catalogs, cf->pool, 2,
                          sizeof(ngx_http_token_scope_catalog_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    catalog = tmcf->catalogs.elts;

    for (i = 0; i < tmcf->catalogs.nelts; i++) {
        if (catalog[i].name.len == value[1].len
            && ngx_strncmp(catalog[i].name.data, value[1].data,
                           value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate operations \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    catalog = ngx_array_push(&tmcf->catalogs);
    if (catalog == NULL) {
        return NGX_CONF_ERROR;
    }

    catalog->name = value[1];

    /* the cleanup exists before the trie it has to free */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    catalog->ops = ts_ops_create();
    if (catalog->ops == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_token_scope_cleanup_ops;
    cln->data = catalog->ops;

    save = *cf;
    cf->handler = ngx_http_token_scope_operation;
    cf->handler_conf = (char *) catalog;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    return rv;
}


static char *
ngx_http_token_scope_operation(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_token_scope_catalog_t *catalog = conf;

    int                                rc, type;
    u_char                            *p, *last, *start;
    ts_op_t                            op;
    ts_str_t                           method, host, path, bad;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_token_scope_main_conf_t  *tmcf;
    char                               err[TS_ERROR_MAX];

    value = cf->args->elts;

    if (cf->args->nelts < 5 || cf->args->nelts > 7) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "an operation is \"METHOD HOST PATH SCOPES "
                           "read|write [types=...] [public]\", SCOPES "
                           "\"deny\" for one no token may call");
        return NGX_CONF_ERROR;
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    ngx_memzero(&op, sizeof(ts_op_t));

    for (i = 0; i < value[0].len; i++) {
        if (value[0].data[i] < 'A' || value[0].data[i] > 'Z') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid method \"%V\"", &value[0]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_strlow(value[1].data, value[1].data, value[1].len);

    /* "deny": an operation the catalogue names but no token may call */
    if (ngx_strcmp(value[3].data, "deny") == 0) {
        op.deny = 1;

    } else {
        rc = ts_categories_parse(&tmcf->categories, value[3].data,
                                 value[3].len, &op.required, &bad);

        if (rc == -2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "more than %d sets of alternatives in \"%V\"",
                               TS_ANY_MAX, &value[3]);
            return NGX_CONF_ERROR;
        }

        if (rc != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown token scope category or scope "
                               "\"%*s\" in \"%V\"", bad.len, bad.data,
                               &value[3]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(value[4].data, "write") == 0) {
        op.write = 1;

    } else if (ngx_strcmp(value[4].data, "read") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid access \"%V\", it must be \"read\" or "
                           "\"write\"", &value[4]);
        return NGX_CONF_ERROR;
    }

    for (i = 5; i < cf->args->nelts; i++) {
        /* public tokens may call it, and write where it writes */
        if (ngx_strcmp(value[i].data, "public") == 0 && !op.public) {
            op.public = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "types=", 6) != 0 || op.types) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        last = value[i].data + value[i].len;

        for (p = value[i].data + 6; p < last; p++) {
            start = p;
            p = ngx_strlchr(p, last, ',');
            if (p == NULL) {
                p = last;
            }

            type = ts_type_by_name((const char *) start, p - start);
            if (type < 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid token type \"%*s\"",
                                   p - start, start);
                return NGX_CONF_ERROR;
            }

            op.types |= TS_TYPE_BIT(type);
        }
    }

    method.data = value[0].data;
    method.len = value[0].len;
    host.data = value[1].data;
    host.len = value[1].len;
    path.data = value[2].data;
    path.len = value[2].len;

    if (ts_ops_add(catalog->ops, &method, &host, &path, &op, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid operation "
                           "\"%V %V %V\": %s", &value[0], &value[1],
                           &value[2], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* token_scope_operations_use NAME [unmatched=location|deny|not_found] */

char *
ngx_http_token_scope_operations_use(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value, s;
    ngx_uint_t                         i;
    ngx_conf_enum_t                   *e;
    ngx_http_token_scope_catalog_t    *catalog;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (tlcf->operations != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->operations = NULL;
        return NGX_CONF_OK;
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    catalog = tmcf->catalogs.elts;

    for (i = 0; i < tmcf->catalogs.nelts; i++) {
        if (catalog[i].name.len == value[1].len
            && ngx_strncmp(catalog[i].name.data, value[1].data,
                           value[1].len) == 0)
        {
            tlcf->operations = &catalog[i];
            break;
        }
    }

    if (tlcf->operations == NGX_CONF_UNSET_PTR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown operations \"%V\": a "
                           "\"token_scope_operations\" block of that name "
                           "must come first", &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->unmatched = NGX_HTTP_TOKEN_SCOPE_UNMATCHED_LOCATION;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[2].data, "unmatched=", 10) == 0) {
        s.data = value[2].data + 10;
        s.len = value[2].len - 10;

        for (e = ngx_http_token_scope_unmatched; e->name.len; e++) {
            if (e->name.len == s.len
                && ngx_strncmp(e->name.data, s.data, s.len) == 0)
            {
                tlcf->unmatched = e->value;
                return NGX_CONF_OK;
            }
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[2]);

    return NGX_CONF_ERROR;
}


static void
ngx_http_token_scope_cleanup_ops(void *data)
{
    ts_ops_free(data);
}
