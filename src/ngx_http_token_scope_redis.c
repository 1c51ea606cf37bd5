
/*
 * Revocation through Redis without a request ever waiting on it.  Worker 0
 * keeps two hiredis connections on nginx's event loop (commands and a
 * subscriber) and mirrors the revoked ids and sellers into a shared memory
 * zone; every worker checks requests against that zone.  On each connect
 * it subscribes first and then rescans the keys into the spare table, so
 * revocations written while the node was cut off apply after reconnect.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT   "1000"
#define NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN  100
#define NGX_HTTP_TOKEN_SCOPE_BACKOFF_MAX  5000

#define NGX_HTTP_TOKEN_SCOPE_SCAN_IDS      1
#define NGX_HTTP_TOKEN_SCOPE_SCAN_SELLERS  2
#define NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS  3


typedef struct {
    ngx_uint_t                  active;      /* the table requests read */
    ngx_uint_t                  synced;      /* it was filled at least once */
    ngx_uint_t                  connected;
    time_t                      fresh;       /* the state was current then */
    ngx_uint_t                  full;        /* a write did not fit */
    ngx_uint_t                  refusing;    /* stale, and said so */
    ts_table_t                 *tables[2];
} ngx_http_token_scope_shm_t;


/* the sync state of worker 0; other workers only read the zone */
typedef struct {
    ngx_http_token_scope_redis_conf_t  *rcf;
    ngx_http_token_scope_main_conf_t   *tmcf;
    ngx_log_t                  *log;
    ngx_http_token_scope_link_t  cmd;
    ngx_http_token_scope_link_t  sub;
    ngx_event_t                 reconnect;
    ngx_event_t                 ping;
    ngx_event_t                 deadline;
    ngx_msec_t                  backoff;
    uintptr_t                   generation;  /* replies of older links die */
    ngx_uint_t                  building;    /* table index being rescanned */
    ngx_uint_t                  resyncing;   /* what is being rescanned */
    unsigned                    again:1;     /* rescan once more after it */
    unsigned                    up:1;        /* logged as connected */
    unsigned                    down_logged:1;
} ngx_http_token_scope_sync_t;


static ngx_int_t ngx_http_token_scope_redis_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_token_scope_redis_connect(ngx_event_t *ev);
static redisAsyncContext *ngx_http_token_scope_redis_open(
    ngx_http_token_scope_link_t *link);
static void ngx_http_token_scope_redis_fail(const char *what, const char *err);
static void ngx_http_token_scope_redis_close(void);
static void ngx_http_token_scope_redis_arm(void);
static void ngx_http_token_scope_redis_disarm(void);
static void ngx_http_token_scope_redis_timeout(ngx_event_t *ev);
static void ngx_http_token_scope_redis_ping(ngx_event_t *ev);
static void ngx_http_token_scope_redis_on_pong(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_redis_on_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_redis_on_message(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_redis_resync(void);
static void ngx_http_token_scope_redis_scan(ngx_uint_t stage,
    const char *cursor);
static ngx_int_t ngx_http_token_scope_redis_secrets(ts_table_t *t,
    ts_str_t *service, u_char *p, size_t len);
static void ngx_http_token_scope_redis_on_scan(redisAsyncContext *ac,
    void *r, void *privdata);
static ngx_int_t ngx_http_token_scope_redis_apply(ts_table_t *t,
    ts_revoke_op_e op, ts_str_t *id, int64_t time);
static void ngx_http_token_scope_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_token_scope_redis_on_disconnect(
    const redisAsyncContext *ac, int status);


static ngx_http_token_scope_sync_t  ngx_http_token_scope_sync;


/* the request side: a lookup in shared memory, never a Redis round trip */

ts_reason_e
ngx_http_token_scope_revoked(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ts_token_t *tok)
{
    int64_t                             since;
    uint64_t                            id, seller;
    ngx_uint_t                          stale, revoked, synced, change;
    ts_table_t                         *t;
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_shm_t         *sh;
    ngx_http_token_scope_main_conf_t   *tmcf;
    ngx_http_token_scope_redis_conf_t  *rcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    rcf = tmcf->redis;

    if (rcf == NULL || !tlcf->revocation) {
        return TS_OK;
    }

    /* digests first: no hashing under the lock */
    id = tok->id.len ? ts_table_key(TS_TABLE_KEY_ID, tok->id.data,
                                    tok->id.len)
                     : 0;
    seller = tok->sid.len ? ts_table_key(TS_TABLE_KEY_SELLER, tok->sid.data,
                                         tok->sid.len)
                          : 0;

    shpool = (ngx_slab_pool_t *) rcf->shm_zone->shm.addr;
    sh = rcf->shm_zone->data;

    revoked = 0;
    since = 0;
    change = 0;

    ngx_shmtx_lock(&shpool->mutex);

    /* until the first full sync the state is not known: fail closed */
    synced = sh->synced;
    stale = !synced || ngx_time() - sh->fresh > rcf->max_stale;
    t = sh->tables[sh->active];

    if (id && ts_table_get(t, id, &since)) {
        revoked = 1;

    } else if (seller && ts_table_get(t, seller, &since)) {
        revoked = ts_token_issued(tok, rcf->lifetime, ngx_time()) < since;
    }

    /* refusing for want of state starts and ends once for all workers */
    if (!revoked && tlcf->redis_down == NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY
        && stale != sh->refusing)
    {
        sh->refusing = stale;
        change = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope revocation: revoked:%ui stale:%ui since:%L",
                   revoked, stale, since);

    /* a state of the node, not of the request that noticed it */
    if (change && stale) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "token scope: the revocation state from redis \"%V\" "
                      "is %s, tokens are refused with 503 until it is "
                      "current", &rcf->address,
                      synced ? "older than max_stale" : "not loaded yet");

    } else if (change) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "token scope: the revocation state from redis \"%V\" "
                      "is current again, tokens pass", &rcf->address);
    }

    if (revoked) {
        return TS_REVOKED;
    }

    if (stale && tlcf->redis_down == NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY) {
        return TS_REDIS_UNAVAILABLE;
    }

    return TS_OK;
}


/* whether digest is a valid secret of the service, per Redis */

ngx_uint_t
ngx_http_token_scope_redis_secret(ngx_http_request_t *r, ts_str_t *service,
    u_char *digest)
{
    int64_t                             value;
    uint64_t                            key;
    ngx_uint_t                          found;
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_shm_t         *sh;
    ngx_http_token_scope_main_conf_t   *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    key = ts_table_secret_key(service, digest);
    if (key == 0) {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) tmcf->redis->shm_zone->shm.addr;
    sh = tmcf->redis->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);
    found = ts_table_get(sh->tables[sh->active], key, &value);
    ngx_shmtx_unlock(&shpool->mutex);

    return found;
}


void
ngx_http_token_scope_redis_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_redis_state_t *state)
{
    ngx_slab_pool_t             *shpool;
    ngx_http_token_scope_shm_t  *sh;

    ngx_memzero(state, sizeof(ngx_http_token_scope_redis_state_t));

    if (tmcf->redis == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) tmcf->redis->shm_zone->shm.addr;
    sh = tmcf->redis->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    state->connected = sh->connected;
    state->synced = sh->synced;
    state->fresh = sh->fresh;
    state->entries = sh->tables[sh->active]->count;

    ngx_shmtx_unlock(&shpool->mutex);
}


/*
 * token_scope_redis ADDRESS [db=N] [password=...] [prefix=...]
 *     [timeout=TIME] [max_stale=TIME] [zone=SIZE] [lifetime=TIME];
 */

char *
ngx_http_token_scope_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    u_char                             *p;
    ssize_t                             size;
    ngx_int_t                           n;
    ngx_str_t                          *value, s, name;
    ngx_url_t                           u;
    ngx_uint_t                          i;
    ngx_http_token_scope_redis_conf_t  *rcf;

    if (tmcf->redis != NULL) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_str_set(&rcf->prefix, "token_scope:");
    rcf->timeout = 1000;
    rcf->max_stale = 30;
    rcf->lifetime = 180 * 86400;
    size = 64 * 1024 * 1024;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            rcf->prefix.data = value[i].data + 7;
            rcf->prefix.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            rcf->timeout = ngx_parse_time(&s, 0);
            if (rcf->timeout == (ngx_msec_t) NGX_ERROR || rcf->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_stale=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            rcf->max_stale = ngx_parse_time(&s, 1);
            if (rcf->max_stale == (time_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "lifetime=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            rcf->lifetime = ngx_parse_time(&s, 1);
            if (rcf->lifetime == (time_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            size = ngx_http_token_scope_zone_size(cf, &value[i],
                                                  value[i].data + 5);
            if (size == NGX_ERROR) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        goto invalid;
    }

    /* hiredis resolves names with a blocking call: resolve them here */

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        rcf->unix_path.len = value[1].len - 5;
        rcf->unix_path.data = ngx_pnalloc(cf->pool, rcf->unix_path.len + 1);
        if (rcf->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rcf->unix_path.data, value[1].data + 5,
                    rcf->unix_path.len + 1);

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\"",
                               u.err ? u.err : "invalid address", &u.url);
            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no address for \"%V\"", &u.url);
            return NGX_CONF_ERROR;
        }

        rcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rcf->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                      u.addrs[0].socklen, rcf->host.data,
                                      NGX_SOCKADDR_STRLEN, 0);
        rcf->host.data[rcf->host.len] = '\0';
        rcf->port = u.port;
    }

    rcf->address = value[1];

    /* "prefix" + the longest suffix, NUL-terminated for hiredis */
    p = ngx_pnalloc(cf->pool,
                    5 * (rcf->prefix.len + sizeof("revoked:sellers")));
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->key_ids = (char *) p;
    p = ngx_sprintf(p, "%Vrevoked%Z", &rcf->prefix);
    rcf->key_sellers = (char *) p;
    p = ngx_sprintf(p, "%Vrevoked:sellers%Z", &rcf->prefix);
    rcf->key_secrets = (char *) p;
    p = ngx_sprintf(p, "%Vservice-secrets%Z", &rcf->prefix);
    rcf->key_opaque = (char *) p;
    p = ngx_sprintf(p, "%Vopaque:%Z", &rcf->prefix);
    rcf->channel = (char *) p;
    ngx_sprintf(p, "%Vrevocations%Z", &rcf->prefix);

    ngx_str_set(&name, "token_scope_revocation");

    rcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_token_scope_module);
    if (rcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    rcf->shm_zone->init = ngx_http_token_scope_redis_init_zone;
    rcf->shm_zone->data = rcf;

    tmcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_http_token_scope_redis_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_shm_t *osh = data;

    size_t                       size, capacity;
    ngx_uint_t                   i;
    ngx_slab_pool_t             *shpool;
    ngx_http_token_scope_shm_t  *sh;

    /* a reload: the revocation state lives on, already in sync */
    if (osh != NULL) {
        zone->data = osh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_token_scope_shm_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(sh, sizeof(ngx_http_token_scope_shm_t));

    /*
     * two tables, one serving requests while the other is rescanned, each
     * of half the free pages less one for slab rounding: no failed
     * allocation to log
     */
    size = (shpool->pfree / 2 - 1) * ngx_pagesize;
    capacity = ts_table_capacity(size);

    for (i = 0; i < 2; i++) {
        sh->tables[i] = ngx_slab_alloc(shpool, ts_table_size(capacity));
        if (sh->tables[i] == NULL) {
            return NGX_ERROR;
        }

        ts_table_init(sh->tables[i], capacity);
    }

    shpool->data = sh;
    zone->data = sh;

    ngx_log_error(NGX_LOG_NOTICE, zone->shm.log, 0,
                  "token scope: revocation zone holds up to %uz entries",
                  sh->tables[0]->capacity / 10 * 9);

    return NGX_OK;
}


ngx_int_t
ngx_http_token_scope_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_token_scope_sync_t        *sync;
    ngx_http_token_scope_main_conf_t   *tmcf;

    if ((ngx_process != NGX_PROCESS_WORKER
         && ngx_process != NGX_PROCESS_SINGLE)
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_token_scope_module);

    if (tmcf == NULL || tmcf->redis == NULL) {
        return NGX_OK;
    }

    sync = &ngx_http_token_scope_sync;

    ngx_memzero(sync, sizeof(ngx_http_token_scope_sync_t));

    sync->rcf = tmcf->redis;
    sync->tmcf = tmcf;
    sync->log = cycle->log;
    sync->backoff = NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN;

    /* cancelable: a graceful shutdown does not wait for these timers */
    sync->reconnect.handler = ngx_http_token_scope_redis_connect;
    sync->reconnect.log = cycle->log;
    sync->reconnect.cancelable = 1;

    sync->ping.handler = ngx_http_token_scope_redis_ping;
    sync->ping.log = cycle->log;
    sync->ping.cancelable = 1;

    sync->deadline.handler = ngx_http_token_scope_redis_timeout;
    sync->deadline.log = cycle->log;
    sync->deadline.cancelable = 1;

    ngx_add_timer(&sync->reconnect, 1);

    return NGX_OK;
}


void
ngx_http_token_scope_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_token_scope_sync.rcf == NULL) {
        return;
    }

    ngx_http_token_scope_redis_close();

    if (ngx_http_token_scope_sync.reconnect.timer_set) {
        ngx_del_timer(&ngx_http_token_scope_sync.reconnect);
    }

    ngx_http_token_scope_sync.rcf = NULL;
}


static void
ngx_http_token_scope_redis_connect(ngx_event_t *ev)
{
    ngx_http_token_scope_sync_t        *sync;
    ngx_http_token_scope_redis_conf_t  *rcf;

    sync = &ngx_http_token_scope_sync;
    rcf = sync->rcf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope redis connect to \"%V\"", &rcf->address);

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    sync->generation++;

    if (ngx_http_token_scope_redis_open(&sync->cmd) == NULL
        || ngx_http_token_scope_redis_open(&sync->sub) == NULL)
    {
        ngx_http_token_scope_redis_fail("connect", "cannot create a context");
        return;
    }

    if (rcf->db) {
        redisAsyncCommand(sync->cmd.ac, ngx_http_token_scope_redis_on_reply,
                          (void *) sync->generation, "SELECT %d",
                          (int) rcf->db);
    }

    /* the subscription first, then the rescan: no change falls between */
    redisAsyncCommand(sync->sub.ac, ngx_http_token_scope_redis_on_message,
                      (void *) sync->generation, "SUBSCRIBE %s",
                      rcf->channel);

    ngx_http_token_scope_redis_arm();
}


static redisAsyncContext *
ngx_http_token_scope_redis_open(ngx_http_token_scope_link_t *link)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (ngx_http_token_scope_redis_link(sync->rcf, link, sync->log,
                                   ngx_http_token_scope_redis_on_connect,
                                   ngx_http_token_scope_redis_on_disconnect)
        != NGX_OK)
    {
        return NULL;
    }

    if (sync->rcf->password.len) {
        redisAsyncCommand(link->ac, ngx_http_token_scope_redis_on_reply,
                          (void *) sync->generation, "AUTH %b",
                          sync->rcf->password.data, sync->rcf->password.len);
    }

    return link->ac;
}


/* a failure of either link: drop both, log once, retry after a backoff */

static void
ngx_http_token_scope_redis_fail(const char *what, const char *err)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->up || !sync->down_logged) {
        ngx_log_error(NGX_LOG_ERR, sync->log, 0,
                      "token scope: redis \"%V\" %s failed: %s; revocation "
                      "state kept, retrying", &sync->rcf->address, what,
                      err ? err : "no reply");
        sync->up = 0;
        sync->down_logged = 1;
    }

    ngx_http_token_scope_redis_close();

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(&sync->reconnect, sync->backoff);

    sync->backoff = ngx_min(2 * sync->backoff,
                            NGX_HTTP_TOKEN_SCOPE_BACKOFF_MAX);
}


static void
ngx_http_token_scope_redis_close(void)
{
    redisAsyncContext            *ac;
    ngx_slab_pool_t              *shpool;
    ngx_http_token_scope_shm_t   *sh;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    /* replies still queued on the old links are ignored from now on */
    sync->generation++;
    sync->resyncing = 0;

    if (sync->ping.timer_set) {
        ngx_del_timer(&sync->ping);
    }

    if (sync->deadline.timer_set) {
        ngx_http_token_scope_redis_disarm();
    }

    ac = sync->cmd.ac;
    sync->cmd.ac = NULL;

    if (ac != NULL) {
        redisAsyncFree(ac);
    }

    ac = sync->sub.ac;
    sync->sub.ac = NULL;

    if (ac != NULL) {
        redisAsyncFree(ac);
    }

    shpool = (ngx_slab_pool_t *) sync->rcf->shm_zone->shm.addr;
    sh = sync->rcf->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);
    sh->connected = 0;
    ngx_shmtx_unlock(&shpool->mutex);
}


/* the one outstanding expectation (connect, scan, pong) has this long */

static void
ngx_http_token_scope_redis_arm(void)
{
    ngx_add_timer(&ngx_http_token_scope_sync.deadline,
                  ngx_http_token_scope_sync.rcf->timeout);
}


static void
ngx_http_token_scope_redis_disarm(void)
{
    if (ngx_http_token_scope_sync.deadline.timer_set) {
        ngx_del_timer(&ngx_http_token_scope_sync.deadline);
    }
}


static void
ngx_http_token_scope_redis_timeout(ngx_event_t *ev)
{
    ngx_http_token_scope_redis_fail("command", "timed out");
}


static void
ngx_http_token_scope_redis_ping(ngx_event_t *ev)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->cmd.ac == NULL) {
        return;
    }

    redisAsyncCommand(sync->cmd.ac, ngx_http_token_scope_redis_on_pong,
                      (void *) sync->generation, "PING");

    ngx_http_token_scope_redis_arm();
}


static void
ngx_http_token_scope_redis_fresh(void)
{
    ngx_slab_pool_t                    *shpool;
    ngx_http_token_scope_shm_t         *sh;
    ngx_http_token_scope_redis_conf_t  *rcf;

    rcf = ngx_http_token_scope_sync.rcf;

    shpool = (ngx_slab_pool_t *) rcf->shm_zone->shm.addr;
    sh = rcf->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);
    sh->fresh = ngx_time();
    sh->connected = 1;
    ngx_shmtx_unlock(&shpool->mutex);
}


static void
ngx_http_token_scope_redis_on_pong(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_msec_t                    interval;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if ((uintptr_t) privdata != sync->generation) {
        return;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_token_scope_redis_fail("PING", reply ? reply->str : NULL);
        return;
    }

    ngx_http_token_scope_redis_disarm();

    ngx_http_token_scope_redis_fresh();

    /* often enough that a healthy link never looks stale */
    interval = ngx_max(100, ngx_min(1000, sync->rcf->max_stale * 1000 / 3));

    ngx_add_timer(&sync->ping, interval);
}


/* AUTH and SELECT: only an error matters */

static void
ngx_http_token_scope_redis_on_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply  *reply = r;

    if ((uintptr_t) privdata != ngx_http_token_scope_sync.generation) {
        return;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_token_scope_redis_fail("AUTH or SELECT",
                                        reply ? reply->str : NULL);
    }
}


static void
ngx_http_token_scope_redis_on_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ts_str_t                       bad;
    ts_revoke_msg_t                msg;
    ngx_slab_pool_t               *shpool;
    ngx_http_token_scope_shm_t    *sh;
    ngx_http_token_scope_sync_t   *sync;

    sync = &ngx_http_token_scope_sync;

    if ((uintptr_t) privdata != sync->generation) {
        return;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_token_scope_redis_fail("SUBSCRIBE",
                                        reply ? reply->str : NULL);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "subscribe") == 0) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                       "token scope redis subscribed, rescanning");

        ngx_http_token_scope_redis_disarm();
        ngx_http_token_scope_redis_resync();

        /* opaque tokens may have changed while no message could come */
        ngx_http_token_scope_cache_forget(sync->tmcf, NULL, sync->log);
        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "message") != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (ts_revoke_message((u_char *) reply->element[2]->str,
                          reply->element[2]->len, &msg)
        != 0)
    {
        bad.data = (u_char *) reply->element[2]->str;
        bad.len = ngx_min(reply->element[2]->len, 64);

        ngx_log_error(NGX_LOG_WARN, sync->log, 0,
                      "token scope: ignored revocation message \"%*s\"",
                      bad.len, bad.data);
        return;
    }

    /* secrets of a service are replaced whole: rescan, it is rare */
    if (msg.op == TS_SECRETS_CHANGED) {
        ngx_http_token_scope_redis_resync();
        return;
    }

    if (msg.op == TS_OPAQUE_CHANGED) {
        ngx_http_token_scope_cache_forget(sync->tmcf, msg.digest, sync->log);
        return;
    }

    shpool = (ngx_slab_pool_t *) sync->rcf->shm_zone->shm.addr;
    sh = sync->rcf->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    ngx_http_token_scope_redis_apply(sh->tables[sh->active], msg.op, &msg.id,
                                     msg.time);

    /* the table being rescanned may have passed this key already */
    if (sync->resyncing) {
        ngx_http_token_scope_redis_apply(sh->tables[sync->building], msg.op,
                                         &msg.id, msg.time);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_int_t
ngx_http_token_scope_redis_apply(ts_table_t *t, ts_revoke_op_e op,
    ts_str_t *id, int64_t time)
{
    uint64_t                      key;
    ngx_http_token_scope_shm_t   *sh;
    ngx_http_token_scope_sync_t  *sync;

    key = ts_table_key((op == TS_REVOKE_ID || op == TS_UNREVOKE_ID)
                       ? TS_TABLE_KEY_ID : TS_TABLE_KEY_SELLER,
                       id->data, id->len);

    if (op == TS_UNREVOKE_ID || op == TS_UNREVOKE_SELLER) {
        ts_table_del(t, key);
        return NGX_OK;
    }

    if (ts_table_put(t, key, time) == 0) {
        return NGX_OK;
    }

    sync = &ngx_http_token_scope_sync;
    sh = sync->rcf->shm_zone->data;

    /* called with the lock held: the flag makes the alert a one-off */
    if (!sh->full) {
        sh->full = 1;
        ngx_log_error(NGX_LOG_ALERT, sync->log, 0,
                      "token scope: revocation zone is full at %uz entries, "
                      "increase \"zone=\" of \"token_scope_redis\"",
                      t->count);
    }

    return NGX_ERROR;
}


/*
 * A full rescan into the spare table, which then serves requests: runs on
 * every (re)connect and when the service secrets change.
 */

static void
ngx_http_token_scope_redis_resync(void)
{
    ngx_slab_pool_t              *shpool;
    ngx_http_token_scope_shm_t   *sh;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->resyncing) {
        sync->again = 1;
        return;
    }

    shpool = (ngx_slab_pool_t *) sync->rcf->shm_zone->shm.addr;
    sh = sync->rcf->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    sync->building = 1 - sh->active;
    ts_table_init(sh->tables[sync->building],
                  sh->tables[sync->building]->capacity);

    ngx_shmtx_unlock(&shpool->mutex);

    sync->resyncing = NGX_HTTP_TOKEN_SCOPE_SCAN_IDS;

    ngx_http_token_scope_redis_scan(NGX_HTTP_TOKEN_SCOPE_SCAN_IDS, "0");
}


static void
ngx_http_token_scope_redis_scan(ngx_uint_t stage, const char *cursor)
{
    ngx_http_token_scope_sync_t        *sync;
    ngx_http_token_scope_redis_conf_t  *rcf;

    sync = &ngx_http_token_scope_sync;
    rcf = sync->rcf;

    redisAsyncCommand(sync->cmd.ac, ngx_http_token_scope_redis_on_scan,
                      (void *) sync->generation,
                      "%s %s %s COUNT " NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT,
                      stage == NGX_HTTP_TOKEN_SCOPE_SCAN_IDS ? "SSCAN"
                                                             : "HSCAN",
                      stage == NGX_HTTP_TOKEN_SCOPE_SCAN_IDS ? rcf->key_ids
                      : stage == NGX_HTTP_TOKEN_SCOPE_SCAN_SELLERS
                        ? rcf->key_sellers : rcf->key_secrets,
                      cursor);

    ngx_http_token_scope_redis_arm();
}


static void
ngx_http_token_scope_redis_on_scan(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    int64_t                        time;
    ts_str_t                       id;
    ngx_uint_t                     i, step, stage, count;
    redisReply                    *items, *cursor, *value;
    ngx_slab_pool_t               *shpool;
    ngx_http_token_scope_shm_t    *sh;
    ngx_http_token_scope_sync_t   *sync;

    sync = &ngx_http_token_scope_sync;

    if ((uintptr_t) privdata != sync->generation) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        ngx_http_token_scope_redis_fail("SSCAN or HSCAN",
                                        reply && reply->type
                                                 == REDIS_REPLY_ERROR
                                        ? reply->str : NULL);
        return;
    }

    ngx_http_token_scope_redis_disarm();

    cursor = reply->element[0];
    items = reply->element[1];
    stage = sync->resyncing;

    /* HSCAN answers field, value pairs; SSCAN members */
    step = (stage == NGX_HTTP_TOKEN_SCOPE_SCAN_IDS) ? 1 : 2;

    shpool = (ngx_slab_pool_t *) sync->rcf->shm_zone->shm.addr;
    sh = sync->rcf->shm_zone->data;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i + step <= items->elements; i += step) {
        if (items->element[i]->type != REDIS_REPLY_STRING) {
            continue;
        }

        id.data = (u_char *) items->element[i]->str;
        id.len = items->element[i]->len;
        value = (step == 2) ? items->element[i + 1] : NULL;

        if (value != NULL && value->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (stage == NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS) {
            if (ngx_http_token_scope_redis_secrets(sh->tables[sync->building],
                                                   &id, (u_char *) value->str,
                                                   value->len)
                != NGX_OK)
            {
                break;
            }

            continue;
        }

        time = 0;

        if (value != NULL
            && ts_parse_time((u_char *) value->str, value->len, &time) != 0)
        {
            continue;
        }

        if (ngx_http_token_scope_redis_apply(sh->tables[sync->building],
                                             value ? TS_REVOKE_SELLER
                                                   : TS_REVOKE_ID,
                                             &id, time)
            != NGX_OK)
        {
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!(cursor->len == 1 && cursor->str[0] == '0')) {
        ngx_http_token_scope_redis_scan(stage, cursor->str);
        return;
    }

    if (stage != NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS) {
        sync->resyncing = stage + 1;
        ngx_http_token_scope_redis_scan(stage + 1, "0");
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);
    sh->active = sync->building;
    sh->synced = 1;
    sh->full = 0;
    count = sh->tables[sh->active]->count;
    ngx_shmtx_unlock(&shpool->mutex);

    sync->resyncing = 0;
    sync->backoff = NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN;

    ngx_http_token_scope_redis_fresh();

    if (!sync->up) {
        ngx_log_error(NGX_LOG_NOTICE, sync->log, 0,
                      "token scope: redis \"%V\" connected, %ui revoked ids, "
                      "sellers and service secrets synced",
                      &sync->rcf->address, count);
        sync->up = 1;
        sync->down_logged = 0;

        ngx_http_token_scope_redis_ping(NULL);
    }

    if (sync->again) {
        sync->again = 0;
        ngx_http_token_scope_redis_resync();
    }
}


/* "SERVICE-ID" -> "HEX [HEX ...]" of the HASH service-secrets */

static ngx_int_t
ngx_http_token_scope_redis_secrets(ts_table_t *t, ts_str_t *service,
    u_char *p, size_t len)
{
    u_char   *end, *word;
    uint64_t  key;
    u_char    digest[TS_SHA256_LEN];

    end = p + len;

    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }

        word = p;

        while (p < end && *p != ' ') {
            p++;
        }

        if (p == word
            || ts_hex_digest((char *) word, p - word, digest) != 0)
        {
            continue;
        }

        key = ts_table_secret_key(service, digest);

        if (key != 0 && ts_table_put(t, key, 1) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_token_scope_redis_on_connect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope redis connected: %d", status);

    if (status != REDIS_OK
        && (ac == sync->cmd.ac || ac == sync->sub.ac))
    {
        /* hiredis frees the context after this callback */
        if (ac == sync->cmd.ac) {
            sync->cmd.ac = NULL;

        } else {
            sync->sub.ac = NULL;
        }

        ngx_http_token_scope_redis_fail("connect", ac->errstr);
    }
}


static void
ngx_http_token_scope_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope redis disconnected: %d", status);

    if (ac != sync->cmd.ac && ac != sync->sub.ac) {
        /* one we closed ourselves */
        return;
    }

    if (ac == sync->cmd.ac) {
        sync->cmd.ac = NULL;

    } else {
        sync->sub.ac = NULL;
    }

    ngx_http_token_scope_redis_fail("connection",
                                    ac->err ? ac->errstr : "closed by peer");
}
