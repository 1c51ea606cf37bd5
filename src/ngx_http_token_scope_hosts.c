
/*
 * token_scope_hosts { HOST CATEGORY...; ... default CATEGORY...; }: the
 * categories each API host needs, as "map $host" would give them to
 * "token_scope $variable", but checked by "nginx -t": a category name
 * nobody declared fails the configuration, not a request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static char *ngx_http_token_scope_hosts_entry(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);


char *
ngx_http_token_scope_hosts_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    char                               *rv;
    ngx_conf_t                          save;
    ngx_http_token_scope_hosts_t       *hosts, **hostsp;
    ngx_http_token_scope_main_conf_t   *tmcf;

    if (tlcf->hosts != NULL) {
        return "is duplicate";
    }

    if (tlcf->enable != NGX_CONF_UNSET) {
        return "conflicts with \"token_scope\" at the same level";
    }

    hosts = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_hosts_t));
    if (hosts == NULL) {
        return NGX_CONF_ERROR;
    }

    hosts->keys = ngx_pcalloc(cf->temp_pool, sizeof(ngx_hash_keys_arrays_t));
    if (hosts->keys == NULL) {
        return NGX_CONF_ERROR;
    }

    hosts->keys->pool = cf->pool;
    hosts->keys->temp_pool = cf->temp_pool;

    if (ngx_hash_keys_array_init(hosts->keys, NGX_HASH_SMALL) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* built once the http block is read: categories may come later */
    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    if (tmcf->hosts.elts == NULL
        && ngx_array_init(&tmcf->hosts, cf->pool, 4,
                          sizeof(ngx_http_token_scope_hosts_t *))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    hostsp = ngx_array_push(&tmcf->hosts);
    if (hostsp == NULL) {
        return NGX_CONF_ERROR;
    }

    *hostsp = hosts;

    tlcf->enable = 1;
    tlcf->hosts = hosts;

    save = *cf;
    cf->handler = ngx_http_token_scope_hosts_entry;
    cf->handler_conf = (char *) hosts;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    return rv;
}


static char *
ngx_http_token_scope_hosts_entry(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_token_scope_hosts_t *hosts = conf;

    ngx_int_t                     rc;
    ngx_str_t                    *value;
    ngx_http_token_scope_host_t  *host;

    value = cf->args->elts;

    if (cf->args->nelts < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a host is \"HOST CATEGORY ...;\" or "
                           "\"HOST off;\"");
        return NGX_CONF_ERROR;
    }

    host = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_host_t));
    if (host == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        host->off = 1;

    } else {
        host->names = ngx_http_token_scope_names(cf);
        if (host->names == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strcmp(value[0].data, "default") == 0) {
        if (hosts->dflt != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate default host");
            return NGX_CONF_ERROR;
        }

        hosts->dflt = host;
        return NGX_CONF_OK;
    }

    ngx_strlow(value[0].data, value[0].data, value[0].len);

    rc = ngx_hash_add_key(hosts->keys, &value[0], host,
                          NGX_HASH_READONLY_KEY);

    if (rc == NGX_BUSY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate host \"%V\"",
                           &value[0]);
        return NGX_CONF_ERROR;
    }

    return rc == NGX_OK ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/* after the http block: every name resolved, every table built */

ngx_int_t
ngx_http_token_scope_hosts_init(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_uint_t                      i, j;
    ngx_hash_key_t                 *key;
    ngx_hash_init_t                 hash;
    ngx_http_token_scope_host_t    *host;
    ngx_http_token_scope_hosts_t  **hosts;

    hosts = tmcf->hosts.elts;

    for (i = 0; i < tmcf->hosts.nelts; i++) {

        key = hosts[i]->keys->keys.elts;

        for (j = 0; j <= hosts[i]->keys->keys.nelts; j++) {
            host = (j < hosts[i]->keys->keys.nelts) ? key[j].value
                                                    : hosts[i]->dflt;

            if (host != NULL && host->names != NULL
                && ngx_http_token_scope_resolve(cf, host->names,
                                                &host->required)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (hosts[i]->keys->keys.nelts == 0) {
            /* only a default */
            hosts[i]->keys = NULL;
            continue;
        }

        hash.hash = &hosts[i]->hash;
        hash.key = ngx_hash_key;
        hash.max_size = 2048;
        hash.bucket_size = ngx_align(64, ngx_cacheline_size);
        hash.name = "token_scope_hosts_hash";
        hash.pool = cf->pool;
        hash.temp_pool = cf->temp_pool;

        if (ngx_hash_init(&hash, hosts[i]->keys->keys.elts,
                          hosts[i]->keys->keys.nelts)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        hosts[i]->keys = NULL;
    }

    return NGX_OK;
}


/*
 * The entry of the request's host (as $host: the Host header, else the
 * server's name) or the default; NULL, and the host in name, if none
 */

ngx_http_token_scope_host_t *
ngx_http_token_scope_host(ngx_http_request_t *r,
    ngx_http_token_scope_hosts_t *hosts, ngx_str_t *name)
{
    ngx_http_token_scope_host_t  *host;
    ngx_http_core_srv_conf_t     *cscf;

    if (r->headers_in.server.len) {
        *name = r->headers_in.server;

    } else {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
        *name = cscf->server_name;
    }

    if (hosts->hash.size == 0) {
        return hosts->dflt;
    }

    host = ngx_hash_find(&hosts->hash, ngx_hash_key(name->data, name->len),
                         name->data, name->len);

    return host ? host : hosts->dflt;
}
