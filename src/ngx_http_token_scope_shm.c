
/*
 * The convention of the module's shared memory zones (the verified-token
 * cache, the revocation state, the decision counters), which is that of
 * limit_req: shm_zone->data is the configuration that owns the zone, and
 * that configuration's "sh" points into the zone.  Each owner's init_zone
 * takes "sh" over from the previous configuration on a reload (the zone
 * lives on), from shpool->data where the zone exists already, or places
 * it in a fresh zone and records it in shpool->data.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


/*
 * A zone of the module owned by conf; NULL once the mistake is told.  A
 * reload reuses a zone of the same name and size.
 */

ngx_shm_zone_t *
ngx_http_token_scope_shm_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
    ngx_shm_zone_init_pt init, void *conf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_token_scope_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", name);
        return NULL;
    }

    shm_zone->init = init;
    shm_zone->data = conf;

    return shm_zone;
}


/*
 * The SIZE of a "zone=" parameter of token_scope_cache or token_scope_redis
 * (start: where it begins in param): a size nginx can parse, of 8 pages at
 * least, as a slab zone needs; NGX_ERROR once the mistake is told.
 */

ssize_t
ngx_http_token_scope_zone_size(ngx_conf_t *cf, ngx_str_t *param,
    u_char *start)
{
    ssize_t    size;
    ngx_str_t  s;

    s.data = start;
    s.len = param->data + param->len - start;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size in \"%V\"",
                           param);
        return NGX_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, the minimum is %uik",
                           param, 8 * ngx_pagesize / 1024);
        return NGX_ERROR;
    }

    return size;
}
