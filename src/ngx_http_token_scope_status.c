
/*
 * Counters of decisions in shared memory (atomic adds, no lock, kept
 * across reloads) and the "token_scope_status" handler that serves them
 * with the cache and revocation state in Prometheus text format.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_DECISIONS  4


struct ngx_http_token_scope_counters_s {
    ngx_atomic_t    decisions[NGX_HTTP_TOKEN_SCOPE_DECISIONS][TS_REASON_MAX];
    ngx_atomic_t    categories[64];
    ngx_atomic_t    types[TS_TYPE_MAX];
};


static ngx_int_t ngx_http_token_scope_status_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_token_scope_status_handler(ngx_http_request_t *r);


static const char  *ngx_http_token_scope_decision_names[] = {
    "none", "allow", "deny", "report"
};


ngx_int_t
ngx_http_token_scope_status_zone(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_str_t  name = ngx_string("token_scope_status");

    tmcf->status_zone = ngx_http_token_scope_shm_add(cf, &name,
                                    8 * ngx_pagesize,
                                    ngx_http_token_scope_status_init_zone,
                                    tmcf);
    if (tmcf->status_zone == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_status_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_main_conf_t *otmcf = data;

    ngx_slab_pool_t                   *shpool;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = zone->data;

    /* counters survive a reload */
    if (otmcf != NULL) {
        tmcf->counters = otmcf->counters;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        tmcf->counters = shpool->data;
        return NGX_OK;
    }

    tmcf->counters = ngx_slab_calloc(shpool,
                                     sizeof(ngx_http_token_scope_counters_t));
    if (tmcf->counters == NULL) {
        return NGX_ERROR;
    }

    shpool->data = tmcf->counters;

    return NGX_OK;
}


void
ngx_http_token_scope_count(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    uint64_t                           mask;
    unsigned                           bit;
    ngx_uint_t                         i;
    ngx_http_token_scope_counters_t   *counters;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    counters = tmcf->counters;

    ngx_atomic_fetch_add(
        &counters->decisions[ctx->decision % NGX_HTTP_TOKEN_SCOPE_DECISIONS]
                            [ctx->reason],
        1);

    mask = ctx->required.categories;

    for (i = 0; i < ctx->required.nany; i++) {
        mask |= ctx->required.any[i].categories;
    }

    /* a request needs one category or two: stop after the highest */
    for (bit = 0; mask; bit++, mask >>= 1) {
        if (mask & 1) {
            ngx_atomic_fetch_add(&counters->categories[bit], 1);
        }
    }

    if (ctx->facts == NGX_HTTP_TOKEN_SCOPE_FACTS_READY
        && ctx->facts_reason == TS_OK)
    {
        ngx_atomic_fetch_add(&counters->types[ctx->token.type], 1);
    }
}


char *
ngx_http_token_scope_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_token_scope_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_token_scope_status_handler(ngx_http_request_t *r)
{
    size_t                                    size;
    time_t                                    age;
    ngx_int_t                                 rc;
    ngx_buf_t                                *b;
    ngx_str_t                                *kid;
    ngx_uint_t                                i, j, n;
    ngx_chain_t                               out;
    const char                               *name;
    ngx_http_token_scope_counters_t          *counters;
    ngx_http_token_scope_main_conf_t         *tmcf;
    ngx_http_token_scope_cache_stats_t        cache;
    ngx_http_token_scope_revocation_state_t   redis;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope status handler");

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    counters = tmcf->counters;

    ngx_http_token_scope_cache_state(tmcf, &cache);
    ngx_http_token_scope_revocation_state(tmcf, &redis);

    /* one line is at most a name, a label and a 20-digit number */
    n = NGX_HTTP_TOKEN_SCOPE_DECISIONS * TS_REASON_MAX + 64 + TS_TYPE_MAX
        + tmcf->kids.nelts + 32;

    size = n * (128 + TS_CATEGORY_NAME_MAX + TS_KID_MAX);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last,
              "# HELP token_scope_decisions_total Requests decided, by "
              "decision and reason.\n"
              "# TYPE token_scope_decisions_total counter\n");

    for (i = 1; i < NGX_HTTP_TOKEN_SCOPE_DECISIONS; i++) {
        for (j = 0; j < TS_REASON_MAX; j++) {
            if (counters->decisions[i][j] == 0) {
                continue;
            }

            b->last = ngx_sprintf(b->last,
                          "token_scope_decisions_total{decision=\"%s\","
                          "reason=\"%s\"} %uA\n",
                          ngx_http_token_scope_decision_names[i],
                          ts_reason_name((ts_reason_e) j),
                          counters->decisions[i][j]);
        }
    }

    b->last = ngx_sprintf(b->last,
              "# HELP token_scope_category_requests_total Decided requests "
              "that required a category.\n"
              "# TYPE token_scope_category_requests_total counter\n");

    for (i = 0; i < 64; i++) {
        name = ts_categories_name(&tmcf->categories, i);

        if (counters->categories[i] == 0 || name == NULL) {
            continue;
        }

        b->last = ngx_sprintf(b->last,
                      "token_scope_category_requests_total{category=\"%s\"}"
                      " %uA\n", name, counters->categories[i]);
    }

    b->last = ngx_sprintf(b->last,
              "# HELP token_scope_type_requests_total Decided requests with "
              "a verified token, by token type.\n"
              "# TYPE token_scope_type_requests_total counter\n");

    for (i = 0; i < TS_TYPE_MAX; i++) {
        b->last = ngx_sprintf(b->last,
                      "token_scope_type_requests_total{type=\"%s\"} %uA\n",
                      ts_type_name((ts_type_e) i), counters->types[i]);
    }

    b->last = ngx_sprintf(b->last,
              "# TYPE token_scope_cache_hits_total counter\n"
              "token_scope_cache_hits_total %ui\n"
              "# TYPE token_scope_cache_misses_total counter\n"
              "token_scope_cache_misses_total %ui\n"
              "# TYPE token_scope_cache_evictions_total counter\n"
              "token_scope_cache_evictions_total %ui\n"
              "# TYPE token_scope_cache_entries gauge\n"
              "token_scope_cache_entries %ui\n",
              cache.hits, cache.misses, cache.evictions, cache.entries);

    age = redis.synced ? ngx_time() - redis.fresh : -1;

    b->last = ngx_sprintf(b->last,
              "# HELP token_scope_revocation_connected 1 if worker 0 is "
              "connected to Redis.\n"
              "# TYPE token_scope_revocation_connected gauge\n"
              "token_scope_revocation_connected %ui\n"
              "# HELP token_scope_revocation_sync_age_seconds Seconds since "
              "the revocation state was last known current, -1 if never.\n"
              "# TYPE token_scope_revocation_sync_age_seconds gauge\n"
              "token_scope_revocation_sync_age_seconds %T\n"
              "# TYPE token_scope_revocation_entries gauge\n"
              "token_scope_revocation_entries %ui\n",
              redis.connected, age, redis.entries);

    b->last = ngx_sprintf(b->last,
              "# HELP token_scope_key_info Verification keys loaded, by "
              "kid.\n"
              "# TYPE token_scope_key_info gauge\n");

    kid = tmcf->kids.elts;

    for (i = 0; i < tmcf->kids.nelts; i++) {
        b->last = ngx_sprintf(b->last, "token_scope_key_info{kid=\"");
        b->last = (u_char *) ngx_escape_json(b->last, kid[i].data,
                                             kid[i].len);
        b->last = ngx_sprintf(b->last, "\"} 1\n");
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
