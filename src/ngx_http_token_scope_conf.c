
/*
 * The configuration of ngx_http_token_scope_module: its main and location
 * configurations (created, merged, checked) and the directives that need
 * more than nginx's own slot functions.  The command table and the
 * request handling are in ngx_http_token_scope_module.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static void ngx_http_token_scope_cleanup_sha256(void *data);
static void ngx_http_token_scope_merge_error(ngx_conf_t *cf,
    ngx_http_token_scope_where_t *at, const char *text);


static void
ngx_http_token_scope_cleanup_sha256(void *data)
{
    ts_sha256_cleanup();
}


void *
ngx_http_token_scope_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * the core caches its SHA-256 per process; it goes with the cycle,
     * before the module is unloaded, and is fetched again when needed
     */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_token_scope_cleanup_sha256;

    ts_categories_init(&tmcf->categories);

    if (ngx_array_init(&tmcf->kids, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK
        || ngx_array_init(&tmcf->key_labels, cf->pool, 4,
                          sizeof(ngx_http_token_scope_key_label_t))
           != NGX_OK
        || ngx_array_init(&tmcf->servers, cf->pool, 4, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


char *
ngx_http_token_scope_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_str_t  name = ngx_string("request_id");

    tmcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (tmcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    /* the tables are complete: what a bit or a scope name means is known */
    if (ts_categories_digest(&tmcf->categories, tmcf->tables_digest) != 0) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_token_scope_claims_init(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_token_scope_hosts_init(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


void *
ngx_http_token_scope_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tlcf->names = NULL;
     *     tlcf->hosts = NULL;
     *     tlcf->required_value = NULL;
     *     tlcf->required = { 0, 0, 0 };
     *     tlcf->keys = NULL;
     *     tlcf->jwks = NULL;
     *     tlcf->origin = { 0, NULL };
     *     tlcf->personal_only_names = NULL;
     *     tlcf->personal_only = 0;
     *     tlcf->enable_at = { NULL, 0 };
     *     tlcf->opaque_at = { NULL, 0 };
     *     tlcf->secrets_at = { NULL, 0 };
     */

    tlcf->enable = NGX_CONF_UNSET;
    tlcf->verify = NGX_CONF_UNSET;
    tlcf->leeway = NGX_CONF_UNSET;
    tlcf->max_size = NGX_CONF_UNSET_SIZE;
    tlcf->access = NGX_CONF_UNSET_UINT;
    tlcf->environment = NGX_CONF_UNSET_UINT;
    tlcf->types = NGX_CONF_UNSET_UINT;
    tlcf->legacy = NGX_CONF_UNSET;
    tlcf->mode = NGX_CONF_UNSET_UINT;
    tlcf->deny_status = NGX_CONF_UNSET_UINT;
    tlcf->operations = NGX_CONF_UNSET_PTR;
    tlcf->personal_from = NGX_CONF_UNSET_PTR;
    tlcf->revocation = NGX_CONF_UNSET;
    tlcf->redis_down = NGX_CONF_UNSET_UINT;
    tlcf->secrets = NGX_CONF_UNSET_PTR;
    tlcf->error_format = NGX_CONF_UNSET_UINT;
    tlcf->log_level = NGX_CONF_UNSET_UINT;
    tlcf->public = NGX_CONF_UNSET_UINT;
    tlcf->subject = NGX_CONF_UNSET_PTR;
    tlcf->opaque = NGX_CONF_UNSET;
    tlcf->opaque_ttl = NGX_CONF_UNSET;
    tlcf->opaque_miss_ttl = NGX_CONF_UNSET;
    tlcf->method_override = NGX_CONF_UNSET_UINT;
    tlcf->upstream_headers = NGX_CONF_UNSET;
    tlcf->preflight = NGX_CONF_UNSET_UINT;

    return tlcf;
}


char *
ngx_http_token_scope_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_token_scope_loc_conf_t *prev = parent;
    ngx_http_token_scope_loc_conf_t *conf = child;

    ts_required_t                      personal_only;
    ngx_http_token_scope_name_t       *name;
    ngx_http_token_scope_where_t       at;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = prev->enable;
        conf->names = prev->names;
        conf->hosts = prev->hosts;
        conf->required_value = prev->required_value;
        conf->required = prev->required;
        conf->enable_at = prev->enable_at;
    }

    /* http level names come unresolved: that conf is never merged */
    if (conf->names != NULL) {
        if (ngx_http_token_scope_resolve(cf, conf->names, &conf->required)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* resolved once: a nested location inheriting it needs no more */
        conf->names = NULL;
    }

    if (conf->personal_only_names == NULL) {
        conf->personal_only_names = prev->personal_only_names;
        conf->personal_only = prev->personal_only;
    }

    if (conf->personal_only_names != NULL) {
        ngx_memzero(&personal_only, sizeof(ts_required_t));

        if (ngx_http_token_scope_resolve(cf, conf->personal_only_names,
                                         &personal_only)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        if (personal_only.common || personal_only.names
            || personal_only.nany)
        {
            name = conf->personal_only_names->elts;
            at.file = name[0].file;
            at.line = name[0].line;

            ngx_http_token_scope_merge_error(cf, &at,
                                             "\"token_scope_personal_only\" "
                                             "takes categories with a bit, "
                                             "not \"common\", scope names "
                                             "or alternatives");
            return NGX_CONF_ERROR;
        }

        conf->personal_only = personal_only.categories;
        conf->personal_only_names = NULL;
    }

    ngx_conf_merge_ptr_value(conf->personal_from, prev->personal_from, NULL);
    ngx_conf_merge_value(conf->revocation, prev->revocation, 1);
    ngx_conf_merge_uint_value(conf->redis_down, prev->redis_down,
                              NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY);
    if (conf->secrets == NGX_CONF_UNSET_PTR) {
        conf->secrets = prev->secrets;
        conf->secrets_redis = prev->secrets_redis;
        conf->secrets_at = prev->secrets_at;
    }

    ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, NULL);

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    if (conf->secrets_redis && tmcf->redis == NULL) {
        ngx_http_token_scope_merge_error(cf, &conf->secrets_at,
                                         "\"token_scope_service_secrets "
                                         "redis\" needs \"token_scope_redis\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    /* the servers where the module decides, fixed for the status page */
    if (conf->enable
        && ngx_http_token_scope_status_server(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_http_token_scope_claims_merge(prev, conf);

    if (conf->keys == NULL) {
        conf->keys = prev->keys;
    }

    if (conf->jwks == NULL) {
        conf->jwks = prev->jwks;
    }

    /*
     * a cached grant means what it did only under these keys and tables;
     * fetched keys are added to it as they come
     */
    if ((conf->keys != NULL || conf->jwks != NULL)
        && ts_sha256_pair(conf->keys ? conf->keys->fingerprint
                                     : tmcf->tables_digest, TS_SHA256_LEN,
                          tmcf->tables_digest, TS_SHA256_LEN,
                          conf->cache_salt)
           != 0)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->verify, prev->verify, 1);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size, 8192);
    ngx_conf_merge_uint_value(conf->access, prev->access, TS_ACCESS_AUTO);
    ngx_conf_merge_uint_value(conf->environment, prev->environment,
                              NGX_HTTP_TOKEN_SCOPE_PRODUCTION);
    ngx_conf_merge_uint_value(conf->types, prev->types, 0);
    ngx_conf_merge_value(conf->legacy, prev->legacy, 1);
    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_TOKEN_SCOPE_ENFORCE);
    ngx_conf_merge_uint_value(conf->deny_status, prev->deny_status,
                              NGX_HTTP_UNAUTHORIZED);
    ngx_conf_merge_str_value(conf->origin, prev->origin, "");
    ngx_conf_merge_uint_value(conf->error_format, prev->error_format,
                              NGX_HTTP_TOKEN_SCOPE_FORMAT_WB);

    /*
     * a refused token is the client's doing, as nginx logs a client's
     * errors: at info, so a flood of forged tokens does not flood the log
     */
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_INFO);
    ngx_conf_merge_uint_value(conf->method_override, prev->method_override,
                              NGX_HTTP_TOKEN_SCOPE_OVERRIDE_CHECK);
    ngx_conf_merge_value(conf->upstream_headers, prev->upstream_headers, 0);
    ngx_conf_merge_uint_value(conf->preflight, prev->preflight,
                              NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_CHECK);
    ngx_conf_merge_uint_value(conf->public, prev->public,
                              NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF);
    ngx_conf_merge_ptr_value(conf->subject, prev->subject, NULL);
    if (conf->opaque == NGX_CONF_UNSET) {
        conf->opaque_at = prev->opaque_at;
    }

    ngx_conf_merge_value(conf->opaque, prev->opaque, 0);
    ngx_conf_merge_sec_value(conf->opaque_ttl, prev->opaque_ttl, 60);
    ngx_conf_merge_sec_value(conf->opaque_miss_ttl, prev->opaque_miss_ttl,
                             5);

    if (conf->opaque) {
        if (tmcf->redis == NULL) {
            ngx_http_token_scope_merge_error(cf, &conf->opaque_at,
                                             "\"token_scope_opaque on\" "
                                             "needs \"token_scope_redis\"");
            return NGX_CONF_ERROR;
        }

        tmcf->opaque = 1;
    }

    if (conf->operations == NGX_CONF_UNSET_PTR) {
        conf->operations = prev->operations;
        conf->unmatched = prev->unmatched;
    }

    ngx_conf_merge_ptr_value(conf->operations, prev->operations, NULL);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    /* an API of opaque tokens alone has no keys: its JWTs are unknown */
    if (conf->verify && !conf->opaque && conf->jwks == NULL
        && (conf->keys == NULL || conf->keys->nkeys == 0))
    {
        ngx_http_token_scope_merge_error(cf, &conf->enable_at,
                                         "\"token_scope\" is enabled with "
                                         "\"token_scope_verify on\" but no "
                                         "\"token_scope_key_file\" is "
                                         "configured");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A mistake found when merging names the directive's place, as
 * ngx_conf_log_error() does while parsing: cf is at the end of the http
 * block by then
 */

static void
ngx_http_token_scope_merge_error(ngx_conf_t *cf,
    ngx_http_token_scope_where_t *at, const char *text)
{
    if (at->file == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", text);
        return;
    }

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%s in %s:%ui",
                  text, at->file, at->line);
}


void
ngx_http_token_scope_where(ngx_conf_t *cf, ngx_http_token_scope_where_t *at)
{
    at->file = cf->conf_file->file.name.data;
    at->line = cf->conf_file->line;
}


/*
 * Names are resolved after the whole http block is read, so that
 * "token_scope_category" may follow its first use; the error names the
 * place of the "token_scope" directive.
 */

ngx_int_t
ngx_http_token_scope_resolve(ngx_conf_t *cf, ngx_array_t *names,
    ts_required_t *req)
{
    ngx_int_t                          rc;
    ts_str_t                           bad;
    ngx_uint_t                         i;
    ts_required_t                      one;
    ngx_http_token_scope_name_t       *name;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    name = names->elts;

    for (i = 0; i < names->nelts; i++) {

        /* a name, or alternatives "content|advert" */
        rc = ts_categories_parse(&tmcf->categories, name[i].name.data,
                                 name[i].name.len, &one, &bad);

        if (rc == -1 && bad.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown token scope category or scope \"%*s\" "
                          "in %s:%ui", bad.len, bad.data, name[i].file,
                          name[i].line);
            return NGX_ERROR;
        }

        if (rc == -1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "empty alternative in \"%V\" in %s:%ui",
                          &name[i].name, name[i].file, name[i].line);
            return NGX_ERROR;
        }

        if (rc != 0 || ts_required_merge(req, &one) != 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "more than %d sets of alternatives at \"%V\" in "
                          "%s:%ui", TS_ANY_MAX, &name[i].name, name[i].file,
                          name[i].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


char *
ngx_http_token_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_compile_complex_value_t   ccv;

    if (tlcf->hosts != NULL) {
        return "conflicts with \"token_scope_hosts\" at the same level";
    }

    if (tlcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_http_token_scope_where(cf, &tlcf->enable_at);

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->enable = 0;
        return NGX_CONF_OK;
    }

    tlcf->enable = 1;

    if (cf->args->nelts == 2 && value[1].data[0] == '$') {
        tlcf->required_value = ngx_palloc(cf->pool,
                                          sizeof(ngx_http_complex_value_t));
        if (tlcf->required_value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = tlcf->required_value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].data[0] == '$' || ngx_strcmp(value[i].data, "off") == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" must be the only parameter", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    tlcf->names = ngx_http_token_scope_names(cf);

    return tlcf->names ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/*
 * The directive's arguments as category names to resolve after the http
 * block is read, each with its place for the error message.
 */

ngx_array_t *
ngx_http_token_scope_names(ngx_conf_t *cf)
{
    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_array_t                  *names;
    ngx_http_token_scope_name_t  *name;

    value = cf->args->elts;

    names = ngx_array_create(cf->pool, cf->args->nelts - 1,
                             sizeof(ngx_http_token_scope_name_t));
    if (names == NULL) {
        return NULL;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(names);
        if (name == NULL) {
            return NULL;
        }

        name->name = value[i];
        name->file = cf->conf_file->file.name.data;
        name->line = cf->conf_file->line;
    }

    return names;
}


char *
ngx_http_token_scope_personal_only(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    if (tlcf->personal_only_names != NULL) {
        return "is duplicate";
    }

    tlcf->personal_only_names = ngx_http_token_scope_names(cf);

    return tlcf->personal_only_names ? NGX_CONF_OK : NGX_CONF_ERROR;
}


char *
ngx_http_token_scope_personal_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    if (tlcf->personal_from != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tlcf->personal_from = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_cidr_t));
    if (tlcf->personal_from == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(tlcf->personal_from);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid network \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_token_scope_category(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_int_t   bit;
    ngx_str_t  *value;
    char        err[TS_ERROR_MAX];

    value = cf->args->elts;

    bit = ngx_atoi(value[2].data, value[2].len);
    if (bit == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid category bit \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (ts_categories_add(&tmcf->categories, (const char *) value[1].data,
                          value[1].len, (unsigned) bit, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid category \"%V\" %V: %s",
                           &value[1], &value[2], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* token_scope_scope NAME ...; names an OAuth-style scope to require */

char *
ngx_http_token_scope_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;
    char         err[TS_ERROR_MAX];

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ts_categories_add_name(&tmcf->categories,
                                   (const char *) value[i].data,
                                   value[i].len, err, sizeof(err))
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid scope \"%V\": %s", &value[i], err);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_token_scope_types(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    int          type;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (tlcf->types != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    tlcf->types = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        type = ts_type_by_name((const char *) value[i].data, value[i].len);
        if (type < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid token type \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        tlcf->types |= TS_TYPE_BIT(type);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_token_scope_deny_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_int_t   status;
    ngx_str_t  *value;

    if (tlcf->deny_status != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    status = ngx_atoi(value[1].data, value[1].len);

    if (status != NGX_HTTP_UNAUTHORIZED && status != NGX_HTTP_FORBIDDEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be 401 or 403",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->deny_status = status;

    return NGX_CONF_OK;
}


char *
ngx_http_token_scope_verify_warn(ngx_conf_t *cf, void *post, void *data)
{
    ngx_flag_t  *verify = data;

    if (!*verify) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"token_scope_verify off\" decodes tokens "
                           "without checking signatures: it is for egress "
                           "diagnostics, not for ingress");
    }

    return NGX_CONF_OK;
}
