
/*
 * The counters of the status page in shared memory (atomic adds, no
 * lock) and the "token_scope_status" handler that serves them with the
 * cache and revocation state in Prometheus text format.
 *
 * Two zones.  "token_scope_status" holds the counters whose labels the
 * module fixes (decisions, categories, types, times, Redis, lookups): it
 * lives on across reloads.  "token_scope_status_labels" holds those whose
 * labels the configuration fixes (verifications by key, decisions by
 * server), sized for them; a reload that keeps the labels keeps it, one
 * that changes them starts a fresh zone, so a counter is reset rather
 * than counted under another key's or server's name.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_DECISIONS  4
#define NGX_HTTP_TOKEN_SCOPE_BUCKETS    14
#define NGX_HTTP_TOKEN_SCOPE_RESULTS    2     /* ok, bad_signature */


/*
 * the layout changes with the module: the zone's size goes with it, so a
 * new module never takes over an older layout on a reload
 */
struct ngx_http_token_scope_counters_s {
    ngx_atomic_t    decisions[NGX_HTTP_TOKEN_SCOPE_DECISIONS][TS_REASON_MAX];
    ngx_atomic_t    categories[64];
    ngx_atomic_t    types[TS_TYPE_MAX];
    ngx_atomic_t    duration[NGX_HTTP_TOKEN_SCOPE_BUCKETS];
    ngx_atomic_t    duration_ns;
    ngx_atomic_t    reconnects[NGX_HTTP_TOKEN_SCOPE_ROLES];
    ngx_atomic_t    errors[NGX_HTTP_TOKEN_SCOPE_ROLES];
    ngx_atomic_t    lookups[NGX_HTTP_TOKEN_SCOPE_LOOKUPS];
};


static ngx_int_t ngx_http_token_scope_status_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_token_scope_labels_zone(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf);
static ngx_int_t ngx_http_token_scope_labels_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_token_scope_status_handler(ngx_http_request_t *r);
static u_char *ngx_http_token_scope_status_counters(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf);
static u_char *ngx_http_token_scope_status_labeled(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf);
static u_char *ngx_http_token_scope_status_state(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf);
static u_char *ngx_http_token_scope_status_label(u_char *p, ngx_str_t *s);


static const char  *ngx_http_token_scope_decision_names[] = {
    "none", "allow", "deny", "report"
};


static const char  *ngx_http_token_scope_result_names[] = {
    "ok", "bad_signature"
};


static const char  *ngx_http_token_scope_role_names[] = {
    "revocation", "opaque"
};


static const char  *ngx_http_token_scope_lookup_names[] = {
    "found", "unknown", "timeout", "error"
};


/* upper bounds of the time buckets, in ns and as printed; the last: +Inf */

static const char  *ngx_http_token_scope_fetch_names[] = {
    "ok", "error", "invalid"
};


static const uint64_t  ngx_http_token_scope_bounds[] = {
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000, 25000000, 50000000, 100000000
};

static const char  *ngx_http_token_scope_bound_names[] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "+Inf"
};


ngx_int_t
ngx_http_token_scope_status_zone(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("token_scope_status");

    size = 8 * ngx_pagesize
           + ngx_align(sizeof(ngx_http_token_scope_counters_t), ngx_pagesize);

    tmcf->status_zone = ngx_http_token_scope_shm_add(cf, &name, size,
                                    ngx_http_token_scope_status_init_zone,
                                    tmcf);
    if (tmcf->status_zone == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_token_scope_labels_zone(cf, tmcf);
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


/*
 * The zone of the counters the configuration labels: per key and
 * algorithm the verifications' results, then per server the decisions.
 * Its size and a CRC32 of the labels, compared with the zone of the
 * running configuration, say whether a reload may keep it.
 */

static ngx_int_t
ngx_http_token_scope_labels_zone(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    static ngx_str_t  name = ngx_string("token_scope_status_labels");

    size_t                             size;
    uint32_t                           crc;
    ngx_str_t                         *server;
    ngx_uint_t                         i, n;
    ngx_list_part_t                   *part;
    ngx_shm_zone_t                    *shm_zone, *ozone;
    ngx_http_token_scope_key_label_t  *label;
    ngx_http_token_scope_main_conf_t  *otmcf;

    ngx_crc32_init(crc);

    label = tmcf->key_labels.elts;

    for (i = 0; i < tmcf->key_labels.nelts; i++) {
        ngx_crc32_update(&crc, (u_char *) &label[i].kid.len,
                         sizeof(size_t));
        ngx_crc32_update(&crc, label[i].kid.data, label[i].kid.len);
        ngx_crc32_update(&crc, (u_char *) &label[i].alg,
                         sizeof(ts_alg_e));
    }

    ngx_crc32_update(&crc, (u_char *) "/", 1);

    server = tmcf->servers.elts;

    for (i = 0; i < tmcf->servers.nelts; i++) {
        ngx_crc32_update(&crc, (u_char *) &server[i].len, sizeof(size_t));
        ngx_crc32_update(&crc, server[i].data, server[i].len);
    }

    ngx_crc32_final(crc);

    tmcf->layout = crc;

    n = tmcf->key_labels.nelts * NGX_HTTP_TOKEN_SCOPE_RESULTS
        + tmcf->servers.nelts * NGX_HTTP_TOKEN_SCOPE_DECISIONS;

    size = 8 * ngx_pagesize
           + ngx_align((n + 1) * sizeof(ngx_atomic_t), ngx_pagesize);

    shm_zone = ngx_http_token_scope_shm_add(cf, &name, size,
                                    ngx_http_token_scope_labels_init_zone,
                                    tmcf);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    tmcf->labels_zone = shm_zone;

    /* the running configuration's zone (ngx_cycle is still the old one) */
    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    ozone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            ozone = part->elts;
            i = 0;
        }

        if (ozone[i].tag != shm_zone->tag
            || ozone[i].shm.name.len != name.len
            || ngx_strncmp(ozone[i].shm.name.data, name.data, name.len) != 0
            || ozone[i].data == NULL)
        {
            continue;
        }

        otmcf = ozone[i].data;

        /* other labels: a fresh zone; the old workers keep theirs */
        if (otmcf->layout != tmcf->layout) {
            shm_zone->noreuse = 1;
        }

        break;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_labels_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_main_conf_t *otmcf = data;

    size_t                             n;
    ngx_slab_pool_t                   *shpool;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = zone->data;

    /*
     * nginx reads noreuse of the running zones at the next reload too: a
     * zone made fresh for other labels may be kept then.  (The zone it
     * replaced stays mapped in the master, nginx unmaps only zones no
     * longer named; its workers are exiting anyway.)
     */
    zone->noreuse = 0;

    if (otmcf != NULL && otmcf->layout == tmcf->layout) {
        tmcf->labeled = otmcf->labeled;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    /* the first element is the layout the counters were made for */
    if (zone->shm.exists && shpool->data != NULL
        && *(ngx_atomic_t *) shpool->data == tmcf->layout)
    {
        tmcf->labeled = (ngx_atomic_t *) shpool->data + 1;
        return NGX_OK;
    }

    n = tmcf->key_labels.nelts * NGX_HTTP_TOKEN_SCOPE_RESULTS
        + tmcf->servers.nelts * NGX_HTTP_TOKEN_SCOPE_DECISIONS;

    /*
     * a zone of other labels is never reused (labels_zone() says so):
     * this one is fresh
     */
    shpool->data = ngx_slab_calloc(shpool, (n + 1) * sizeof(ngx_atomic_t));
    if (shpool->data == NULL) {
        return NGX_ERROR;
    }

    *(ngx_atomic_t *) shpool->data = tmcf->layout;
    tmcf->labeled = (ngx_atomic_t *) shpool->data + 1;

    return NGX_OK;
}


/* the module's own clock: CLOCK_MONOTONIC is a vDSO call, in ns */

uint64_t
ngx_http_token_scope_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


void
ngx_http_token_scope_count(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    uint64_t                           mask;
    unsigned                           bit;
    ngx_uint_t                         i, d;
    ngx_http_token_scope_counters_t   *counters;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    counters = tmcf->counters;

    d = ctx->decision % NGX_HTTP_TOKEN_SCOPE_DECISIONS;

    ngx_atomic_fetch_add(&counters->decisions[d][ctx->reason], 1);

    if (ctx->conf != NULL && ctx->conf->server) {
        i = tmcf->key_labels.nelts * NGX_HTTP_TOKEN_SCOPE_RESULTS
            + (ctx->conf->server - 1) * NGX_HTTP_TOKEN_SCOPE_DECISIONS + d;
        ngx_atomic_fetch_add(&tmcf->labeled[i], 1);
    }

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


/* the time the module's handlers spent on a request, once per request */

void
ngx_http_token_scope_count_time(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    ngx_uint_t                         i;
    ngx_http_token_scope_counters_t   *counters;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (ctx->spent == 0) {
        return;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    counters = tmcf->counters;

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_BUCKETS - 1; i++) {
        if (ctx->spent <= ngx_http_token_scope_bounds[i]) {
            break;
        }
    }

    /* per bucket; the page adds them up as Prometheus wants */
    ngx_atomic_fetch_add(&counters->duration[i], 1);
    ngx_atomic_fetch_add(&counters->duration_ns, ctx->spent);

    ctx->spent = 0;
}


/* a signature the core checked (not a cached token), by key and result */

void
ngx_http_token_scope_count_verify(ngx_http_request_t *r, ts_token_t *tok,
    ts_reason_e reason)
{
    size_t                             len;
    ngx_uint_t                         i;
    ngx_http_token_scope_key_label_t  *label;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (!tok->checked) {
        return;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    len = ngx_strlen(tok->checked_kid);
    label = tmcf->key_labels.elts;

    /* a few keys: a scan costs nothing next to the signature */
    for (i = 0; i < tmcf->key_labels.nelts; i++) {
        if (label[i].alg == tok->alg
            && label[i].kid.len == len
            && ngx_strncmp(label[i].kid.data, tok->checked_kid, len) == 0)
        {
            ngx_atomic_fetch_add(&tmcf->labeled[
                                     i * NGX_HTTP_TOKEN_SCOPE_RESULTS
                                     + (reason == TS_OK ? 0 : 1)], 1);
            return;
        }
    }
}


/* Redis: a reconnect, or a failure of a connection, of rd's user */

void
ngx_http_token_scope_count_redis(ngx_http_token_scope_redis_t *rd,
    ngx_uint_t reconnect)
{
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_token_scope_module);

    if (tmcf == NULL || tmcf->counters == NULL
        || rd->role >= NGX_HTTP_TOKEN_SCOPE_ROLES)
    {
        return;
    }

    ngx_atomic_fetch_add(reconnect ? &tmcf->counters->reconnects[rd->role]
                                   : &tmcf->counters->errors[rd->role],
                         1);
}


void
ngx_http_token_scope_count_lookup(ngx_http_request_t *r, ngx_uint_t result)
{
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (result < NGX_HTTP_TOKEN_SCOPE_LOOKUPS) {
        ngx_atomic_fetch_add(&tmcf->counters->lookups[result], 1);
    }
}


/*
 * At configuration time: the location counts its decisions under its
 * server's first name, "_" for a server without one
 */

ngx_int_t
ngx_http_token_scope_status_server(ngx_conf_t *cf,
    ngx_http_token_scope_loc_conf_t *tlcf)
{
    static ngx_str_t  none = ngx_string("_");

    ngx_str_t                         *name, *s;
    ngx_uint_t                         i;
    ngx_http_core_srv_conf_t          *cscf;
    ngx_http_token_scope_main_conf_t  *tmcf;

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    if (cscf == NULL) {
        return NGX_OK;
    }

    name = cscf->server_name.len ? &cscf->server_name : &none;
    s = tmcf->servers.elts;

    for (i = 0; i < tmcf->servers.nelts; i++) {
        if (s[i].len == name->len
            && ngx_strncmp(s[i].data, name->data, name->len) == 0)
        {
            tlcf->server = i + 1;
            return NGX_OK;
        }
    }

    s = ngx_array_push(&tmcf->servers);
    if (s == NULL) {
        return NGX_ERROR;
    }

    *s = *name;
    tlcf->server = tmcf->servers.nelts;

    return NGX_OK;
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
    size_t                             size;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_str_t                         *s;
    ngx_uint_t                         i, n;
    ngx_chain_t                        out;
    ngx_http_token_scope_key_label_t  *label;
    ngx_http_token_scope_main_conf_t  *tmcf;

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

    /* a line is at most a name, labels of ours and a 20-digit number */
    n = NGX_HTTP_TOKEN_SCOPE_DECISIONS * TS_REASON_MAX + 64 + TS_TYPE_MAX
        + NGX_HTTP_TOKEN_SCOPE_BUCKETS + 64;

    size = 8192 + 1024 + n * (160 + TS_CATEGORY_NAME_MAX);

    /* the configuration's labels, escaped: twice their length at most */
    label = tmcf->key_labels.elts;

    for (i = 0; i < tmcf->key_labels.nelts; i++) {
        size += NGX_HTTP_TOKEN_SCOPE_RESULTS * (192 + 2 * label[i].kid.len);
    }

    s = tmcf->kids.elts;

    for (i = 0; i < tmcf->kids.nelts; i++) {
        size += 128 + 2 * s[i].len;
    }

    s = tmcf->servers.elts;

    for (i = 0; i < tmcf->servers.nelts; i++) {
        size += NGX_HTTP_TOKEN_SCOPE_DECISIONS * (128 + 2 * s[i].len);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_token_scope_status_counters(b->last, tmcf);
    b->last = ngx_http_token_scope_status_labeled(b->last, tmcf);
    b->last = ngx_http_token_scope_status_state(b->last, tmcf);

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


/*
 * The module's families: every label pair is printed, 0 until counted,
 * so that increase() sees the first event
 */

static u_char *
ngx_http_token_scope_status_counters(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_uint_t                        i, j;
    ngx_atomic_uint_t                 total;
    const char                       *name;
    ngx_http_token_scope_counters_t  *counters;

    counters = tmcf->counters;

    p = ngx_sprintf(p,
            "# HELP token_scope_decisions_total Requests decided, by "
            "decision and reason.\n"
            "# TYPE token_scope_decisions_total counter\n");

    for (i = 1; i < NGX_HTTP_TOKEN_SCOPE_DECISIONS; i++) {
        for (j = 0; j < TS_REASON_MAX; j++) {
            p = ngx_sprintf(p,
                    "token_scope_decisions_total{decision=\"%s\","
                    "reason=\"%s\"} %uA\n",
                    ngx_http_token_scope_decision_names[i],
                    ts_reason_name((ts_reason_e) j),
                    counters->decisions[i][j]);
        }
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_category_requests_total Decided requests "
            "that required a category.\n"
            "# TYPE token_scope_category_requests_total counter\n");

    for (i = 0; i < 64; i++) {
        name = ts_categories_name(&tmcf->categories, i);

        if (name == NULL) {
            continue;
        }

        p = ngx_sprintf(p,
                "token_scope_category_requests_total{category=\"%s\"}"
                " %uA\n", name, counters->categories[i]);
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_type_requests_total Decided requests with "
            "a verified token, by token type.\n"
            "# TYPE token_scope_type_requests_total counter\n");

    for (i = 0; i < TS_TYPE_MAX; i++) {
        p = ngx_sprintf(p,
                "token_scope_type_requests_total{type=\"%s\"} %uA\n",
                ts_type_name((ts_type_e) i), counters->types[i]);
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_request_duration_seconds Time spent in the "
            "module's handlers per request.\n"
            "# TYPE token_scope_request_duration_seconds histogram\n");

    total = 0;

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_BUCKETS; i++) {
        total += counters->duration[i];

        p = ngx_sprintf(p,
                "token_scope_request_duration_seconds_bucket{le=\"%s\"} "
                "%uA\n", ngx_http_token_scope_bound_names[i], total);
    }

    p = ngx_sprintf(p,
            "token_scope_request_duration_seconds_sum %uA.%09uA\n"
            "token_scope_request_duration_seconds_count %uA\n",
            counters->duration_ns / 1000000000,
            counters->duration_ns % 1000000000, total);

    p = ngx_sprintf(p,
            "# HELP token_scope_redis_reconnects_total Attempts to "
            "connect to Redis again after a failure, by user.\n"
            "# TYPE token_scope_redis_reconnects_total counter\n");

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_ROLES; i++) {
        p = ngx_sprintf(p,
                "token_scope_redis_reconnects_total{role=\"%s\"} %uA\n",
                ngx_http_token_scope_role_names[i], counters->reconnects[i]);
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_redis_errors_total Failures of a Redis "
            "connection (connect, handshake, command, timeout), by user.\n"
            "# TYPE token_scope_redis_errors_total counter\n");

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_ROLES; i++) {
        p = ngx_sprintf(p,
                "token_scope_redis_errors_total{role=\"%s\"} %uA\n",
                ngx_http_token_scope_role_names[i], counters->errors[i]);
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_opaque_lookups_total Opaque token lookups "
            "in Redis, by result.\n"
            "# TYPE token_scope_opaque_lookups_total counter\n");

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_LOOKUPS; i++) {
        p = ngx_sprintf(p,
                "token_scope_opaque_lookups_total{result=\"%s\"} %uA\n",
                ngx_http_token_scope_lookup_names[i], counters->lookups[i]);
    }

    return p;
}


/* the families whose labels the configuration fixes */

static u_char *
ngx_http_token_scope_status_labeled(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_str_t                         *s;
    ngx_uint_t                         i, j, base;
    ngx_http_token_scope_key_label_t  *label;

    p = ngx_sprintf(p,
            "# HELP token_scope_verifications_total Signatures checked "
            "(cached tokens are not), by key and result.\n"
            "# TYPE token_scope_verifications_total counter\n");

    label = tmcf->key_labels.elts;

    for (i = 0; i < tmcf->key_labels.nelts; i++) {
        for (j = 0; j < NGX_HTTP_TOKEN_SCOPE_RESULTS; j++) {
            p = ngx_sprintf(p, "token_scope_verifications_total{alg=\"%s\","
                            "kid=\"", ts_alg_name(label[i].alg));
            p = ngx_http_token_scope_status_label(p, &label[i].kid);
            p = ngx_sprintf(p, "\",result=\"%s\"} %uA\n",
                            ngx_http_token_scope_result_names[j],
                            tmcf->labeled[i * NGX_HTTP_TOKEN_SCOPE_RESULTS
                                          + j]);
        }
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_server_decisions_total Requests decided, "
            "by server (its first name) and decision.\n"
            "# TYPE token_scope_server_decisions_total counter\n");

    base = tmcf->key_labels.nelts * NGX_HTTP_TOKEN_SCOPE_RESULTS;
    s = tmcf->servers.elts;

    for (i = 0; i < tmcf->servers.nelts; i++) {
        for (j = 1; j < NGX_HTTP_TOKEN_SCOPE_DECISIONS; j++) {
            p = ngx_sprintf(p, "token_scope_server_decisions_total{"
                            "decision=\"%s\",server=\"",
                            ngx_http_token_scope_decision_names[j]);
            p = ngx_http_token_scope_status_label(p, &s[i]);
            p = ngx_sprintf(p, "\"} %uA\n",
                            tmcf->labeled[base
                                          + i * NGX_HTTP_TOKEN_SCOPE_DECISIONS
                                          + j]);
        }
    }

    return p;
}


/* gauges: the cache, the revocation state, the keys, the build */

static u_char *
ngx_http_token_scope_status_state(u_char *p,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    time_t                                    now, age, last;
    ngx_str_t                                *kid;
    ngx_uint_t                                i;
    ngx_http_token_scope_jwks_state_t         jwks;
    ngx_http_token_scope_cache_stats_t        cache;
    ngx_http_token_scope_revocation_state_t   redis;

    ngx_http_token_scope_cache_state(tmcf, &cache);
    ngx_http_token_scope_revocation_state(tmcf, &redis);

    p = ngx_sprintf(p,
            "# HELP token_scope_cache_hits_total Tokens found in the "
            "verified-token cache.\n"
            "# TYPE token_scope_cache_hits_total counter\n"
            "token_scope_cache_hits_total %ui\n"
            "# HELP token_scope_cache_misses_total Tokens looked up in the "
            "verified-token cache and not found.\n"
            "# TYPE token_scope_cache_misses_total counter\n"
            "token_scope_cache_misses_total %ui\n"
            "# HELP token_scope_cache_evictions_total Entries evicted from "
            "the full verified-token cache.\n"
            "# TYPE token_scope_cache_evictions_total counter\n"
            "token_scope_cache_evictions_total %ui\n"
            "# HELP token_scope_cache_entries Entries in the verified-token "
            "cache.\n"
            "# TYPE token_scope_cache_entries gauge\n"
            "token_scope_cache_entries %ui\n",
            cache.hits, cache.misses, cache.evictions, cache.entries);

    now = ngx_time();

    /*
     * never synced: the age is that of the wait, from the zone's start,
     * so that an alert on the age fires while a node refuses
     */
    if (tmcf->redis == NULL) {
        age = 0;
        last = 0;

    } else if (redis.synced) {
        age = now - redis.fresh;
        last = redis.fresh;

    } else {
        age = now - redis.created;
        last = 0;
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_revocation_connected 1 if worker 0 is "
            "connected to Redis.\n"
            "# TYPE token_scope_revocation_connected gauge\n"
            "token_scope_revocation_connected %ui\n"
            "# HELP token_scope_revocation_stale 1 if the revocation state "
            "is older than max_stale or not loaded yet.\n"
            "# TYPE token_scope_revocation_stale gauge\n"
            "token_scope_revocation_stale %ui\n"
            "# HELP token_scope_revocation_sync_age_seconds Seconds since "
            "the revocation state was last known current (never: since "
            "the wait began).\n"
            "# TYPE token_scope_revocation_sync_age_seconds gauge\n"
            "token_scope_revocation_sync_age_seconds %T\n"
            "# HELP token_scope_revocation_last_sync_timestamp_seconds Unix "
            "time the revocation state was last known current, 0 if "
            "never.\n"
            "# TYPE token_scope_revocation_last_sync_timestamp_seconds "
            "gauge\n"
            "token_scope_revocation_last_sync_timestamp_seconds %T\n"
            "# HELP token_scope_revocation_entries Entries in the "
            "revocation state.\n"
            "# TYPE token_scope_revocation_entries gauge\n"
            "token_scope_revocation_entries %ui\n",
            redis.connected, redis.stale, age, last, redis.entries);

    p = ngx_sprintf(p,
            "# HELP token_scope_keys Verification keys loaded.\n"
            "# TYPE token_scope_keys gauge\n"
            "token_scope_keys %ui\n"
            "# HELP token_scope_key_info Verification keys loaded, by kid "
            "(keys without a kid are counted in token_scope_keys only).\n"
            "# TYPE token_scope_key_info gauge\n",
            tmcf->nkeys);

    kid = tmcf->kids.elts;

    for (i = 0; i < tmcf->kids.nelts; i++) {
        if (kid[i].len == 0) {
            continue;
        }

        p = ngx_sprintf(p, "token_scope_key_info{kid=\"");
        p = ngx_http_token_scope_status_label(p, &kid[i]);
        p = ngx_sprintf(p, "\"} 1\n");
    }

    ngx_http_token_scope_jwks_state(tmcf, &jwks);

    p = ngx_sprintf(p,
            "# HELP token_scope_key_fetches_total Fetches of "
            "token_scope_key_request, by result (error: no answer or not "
            "200; invalid: no usable JWKS).\n"
            "# TYPE token_scope_key_fetches_total counter\n");

    for (i = 0; i < NGX_HTTP_TOKEN_SCOPE_FETCH_RESULTS; i++) {
        p = ngx_sprintf(p, "token_scope_key_fetches_total{result=\"%s\"} "
                        "%ui\n", ngx_http_token_scope_fetch_names[i],
                        jwks.fetches[i]);
    }

    p = ngx_sprintf(p,
            "# HELP token_scope_key_request_keys Keys held from "
            "token_scope_key_request.\n"
            "# TYPE token_scope_key_request_keys gauge\n"
            "token_scope_key_request_keys %ui\n"
            "# HELP token_scope_key_request_age_seconds Seconds since the "
            "last good fetch of token_scope_key_request (-1: none yet).\n"
            "# TYPE token_scope_key_request_age_seconds gauge\n"
            "token_scope_key_request_age_seconds %T\n",
            jwks.keys, jwks.age);

    p = ngx_sprintf(p,
            "# HELP token_scope_build_info The module's build.\n"
            "# TYPE token_scope_build_info gauge\n"
            "token_scope_build_info{version=\"%s\",nginx=\"%s\","
            "openssl=\"%s\"} 1\n",
            NGX_HTTP_TOKEN_SCOPE_VERSION, NGINX_VERSION,
            ts_openssl_version());

    return p;
}


/* a label's value as Prometheus escapes it; other control bytes: '?' */

static u_char *
ngx_http_token_scope_status_label(u_char *p, ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else if (c < 0x20 || c == 0x7f) {
            *p++ = '?';

        } else {
            *p++ = c;
        }
    }

    return p;
}
