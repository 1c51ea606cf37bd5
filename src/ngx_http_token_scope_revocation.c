
/*
 * The revocation state: a shared memory zone holding two tables of 64-bit
 * digests (revoked token ids, revoked sellers, service secrets), the one
 * requests read and a spare one that a full rescan fills.  Every worker
 * checks its requests here, under the zone's lock, and never waits for
 * Redis; worker 0's sync (ngx_http_token_scope_redis.c) is the only
 * writer and writes through begin, apply and commit, and one change at a
 * time from the revocation channel.
 *
 * The lock is taken by every request with revocation: it is held only to
 * look up, to apply one change or to swap the tables, never across
 * hashing, clearing, I/O or logging.  The spare table, which nobody
 * reads, is cleared and filled outside it, a slice of about a millisecond
 * at a time, with the event loop running between slices.
 *
 * After a reload the zone lives on, and the new worker 0 takes it over: it
 * bumps the zone's generation, and a writer of an older one (the old
 * worker 0, still finishing its requests) stops writing when it sees that.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


/* how long one slice of a rescan may work, in microseconds */
#define NGX_HTTP_TOKEN_SCOPE_SLICE        1000

/* work between two looks at the clock: some 10 to 30 microseconds */
#define NGX_HTTP_TOKEN_SCOPE_CLEAR_STEP   8192
#define NGX_HTTP_TOKEN_SCOPE_APPLY_STEP   32

/* changes heard during one rescan, replayed on its commit */
#define NGX_HTTP_TOKEN_SCOPE_REPLAY_MAX   65536


struct ngx_http_token_scope_revocation_sh_s {
    ngx_uint_t                  active;      /* the table requests read */
    ngx_uint_t                  synced;      /* it was filled at least once */
    ngx_uint_t                  connected;
    time_t                      fresh;       /* the state was current then */
    time_t                      created;     /* the wait for it began */
    ngx_uint_t                  refusing;    /* stale, and said so */
    ngx_uint_t                  generation;  /* of the writer in charge */
    ngx_pid_t                   filler;      /* fills the spare table */
    ts_table_t                 *tables[2];
};


/* a change heard during a rescan, made again in the spare table */
typedef struct {
    uint64_t                    key;
    int64_t                     value;
    ngx_uint_t                  del;
} ngx_http_token_scope_replay_t;


/* the writer's side, in worker 0 */
typedef struct {
    ngx_http_token_scope_redis_conf_t  *rcf;
    ngx_log_t                  *log;
    ngx_uint_t                  generation;
    ngx_uint_t                  spare;       /* the table being filled */
    size_t                      cleared;     /* slots of it cleared */
    ngx_array_t                 replay;      /* of ..._replay_t */
    ngx_pool_t                 *pool;        /* of replay */
    unsigned                    filling:1;
    unsigned                    full:1;      /* said so for this fill */
    unsigned                    overflow:1;  /* replay lost changes */
    unsigned                    active_full:1;
} ngx_http_token_scope_writer_t;


static ngx_int_t ngx_http_token_scope_revocation_init_zone(
    ngx_shm_zone_t *zone, void *data);
static ngx_uint_t ngx_http_token_scope_revocation_mine(void);
static ngx_int_t ngx_http_token_scope_revocation_step(ts_table_t *t,
    ngx_http_token_scope_batch_t *batch);
static ngx_int_t ngx_http_token_scope_revocation_secrets(ts_table_t *t,
    ts_str_t *service, u_char *p, size_t len);
static void ngx_http_token_scope_revocation_full(ts_table_t *t);
static void ngx_http_token_scope_revocation_end(void);


static ngx_http_token_scope_writer_t  ngx_http_token_scope_writer;


/* the request side: a lookup in shared memory, never a Redis round trip */

ts_reason_e
ngx_http_token_scope_revoked(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ts_token_t *tok)
{
    int64_t                                since;
    uint64_t                               id, seller;
    ngx_uint_t                             stale, revoked, synced, change;
    ts_table_t                            *t;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_main_conf_t      *tmcf;
    ngx_http_token_scope_redis_conf_t     *rcf;
    ngx_http_token_scope_revocation_sh_t  *sh;

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
    sh = rcf->sh;

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
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
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
ngx_http_token_scope_revocation_secret(ngx_http_request_t *r,
    ts_str_t *service, u_char *digest)
{
    int64_t                                value;
    uint64_t                               key;
    ngx_uint_t                             found;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_main_conf_t      *tmcf;
    ngx_http_token_scope_revocation_sh_t  *sh;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    key = ts_table_secret_key(service, digest);
    if (key == 0) {
        return 0;
    }

    shpool = (ngx_slab_pool_t *) tmcf->redis->shm_zone->shm.addr;
    sh = tmcf->redis->sh;

    ngx_shmtx_lock(&shpool->mutex);
    found = ts_table_get(sh->tables[sh->active], key, &value);
    ngx_shmtx_unlock(&shpool->mutex);

    return found;
}


void
ngx_http_token_scope_revocation_state(ngx_http_token_scope_main_conf_t *tmcf,
    ngx_http_token_scope_revocation_state_t *state)
{
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_revocation_sh_t  *sh;

    ngx_memzero(state, sizeof(ngx_http_token_scope_revocation_state_t));

    if (tmcf->redis == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) tmcf->redis->shm_zone->shm.addr;
    sh = tmcf->redis->sh;

    ngx_shmtx_lock(&shpool->mutex);

    state->connected = sh->connected;
    state->synced = sh->synced;
    state->stale = !sh->synced
                   || ngx_time() - sh->fresh > tmcf->redis->max_stale;
    state->fresh = sh->fresh;
    state->created = sh->created;
    state->entries = sh->tables[sh->active]->count;

    ngx_shmtx_unlock(&shpool->mutex);
}


/* the zone of token_scope_redis, "size" bytes */

ngx_int_t
ngx_http_token_scope_revocation_zone(ngx_conf_t *cf,
    ngx_http_token_scope_redis_conf_t *rcf, size_t size)
{
    ngx_str_t  name = ngx_string("token_scope_revocation");

    rcf->shm_zone = ngx_http_token_scope_shm_add(cf, &name, size,
                                   ngx_http_token_scope_revocation_init_zone,
                                   rcf);
    if (rcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_revocation_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_token_scope_redis_conf_t *orcf = data;

    size_t                                 size, capacity;
    ngx_uint_t                             i;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_redis_conf_t     *rcf;
    ngx_http_token_scope_revocation_sh_t  *sh;

    rcf = zone->data;

    /* a reload: the revocation state lives on, already in sync */
    if (orcf != NULL) {
        rcf->sh = orcf->sh;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        rcf->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_token_scope_revocation_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

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

    sh->created = ngx_time();

    shpool->data = sh;
    rcf->sh = sh;

    ngx_log_error(NGX_LOG_NOTICE, zone->shm.log, 0,
                  "token scope: revocation zone holds up to %uz entries",
                  sh->tables[0]->capacity / 10 * 9);

    return NGX_OK;
}


/*
 * Worker 0 becomes the zone's writer: a writer of an older generation,
 * the worker 0 of the configuration before a reload, stops writing.
 */

ngx_int_t
ngx_http_token_scope_revocation_writer(
    ngx_http_token_scope_redis_conf_t *rcf, ngx_log_t *log)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_token_scope_writer_t  *w;

    w = &ngx_http_token_scope_writer;

    ngx_memzero(w, sizeof(ngx_http_token_scope_writer_t));

    w->rcf = rcf;
    w->log = log;

    shpool = (ngx_slab_pool_t *) rcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    w->generation = ++rcf->sh->generation;
    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


/*
 * A clock for the slices, in microseconds: nginx's cached time is
 * milliseconds, and moves only between events
 */

int64_t
ngx_http_token_scope_revocation_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* when a slice that starts now ends */

int64_t
ngx_http_token_scope_revocation_deadline(void)
{
    return ngx_http_token_scope_revocation_clock()
           + NGX_HTTP_TOKEN_SCOPE_SLICE;
}


/*
 * A rescan starts: the spare table is the writer's to fill.  NGX_OK;
 * NGX_BUSY: another process (an older worker 0) is still in a slice of
 * its own, try again shortly; NGX_DECLINED: the zone is a newer writer's.
 */

ngx_int_t
ngx_http_token_scope_revocation_begin(void)
{
    ngx_pid_t                              filler;
    ngx_uint_t                             mine;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_writer_t         *w;
    ngx_http_token_scope_revocation_sh_t  *sh;

    w = &ngx_http_token_scope_writer;
    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;
    sh = w->rcf->sh;

    ngx_shmtx_lock(&shpool->mutex);

    mine = (sh->generation == w->generation);
    filler = sh->filler;

    if (mine && (filler == 0 || filler == ngx_pid)) {
        sh->filler = ngx_pid;
        w->spare = 1 - sh->active;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!mine) {
        return NGX_DECLINED;
    }

    if (filler != 0 && filler != ngx_pid) {

        /* it is still filling, or it died in the middle (no lock held) */
        if (kill(filler, 0) == 0 || ngx_errno != NGX_ESRCH) {
            return NGX_BUSY;
        }

        ngx_shmtx_lock(&shpool->mutex);

        if (sh->filler == filler) {
            sh->filler = ngx_pid;
            w->spare = 1 - sh->active;
        }

        filler = sh->filler;

        ngx_shmtx_unlock(&shpool->mutex);

        if (filler != ngx_pid) {
            return NGX_BUSY;
        }
    }

    if (w->pool == NULL) {
        w->pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, w->log);
        if (w->pool == NULL) {
            ngx_http_token_scope_revocation_end();
            return NGX_ERROR;
        }

        if (ngx_array_init(&w->replay, w->pool, 64,
                           sizeof(ngx_http_token_scope_replay_t))
            != NGX_OK)
        {
            ngx_http_token_scope_revocation_end();
            return NGX_ERROR;
        }
    }

    w->filling = 1;
    w->cleared = 0;
    w->full = 0;
    w->overflow = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, w->log, 0,
                   "token scope revocation: rescan into table %ui", w->spare);

    return NGX_OK;
}


/*
 * Applies the entries of a rescan's batch to the spare table until the
 * batch is done (NGX_OK) or the slice's deadline passes (NGX_AGAIN: call
 * again after the event loop ran); clears the table first.  NGX_DECLINED:
 * the zone is a newer writer's.
 */

ngx_int_t
ngx_http_token_scope_revocation_apply(ngx_http_token_scope_batch_t *batch,
    int64_t deadline)
{
    ts_table_t                     *t;
    ngx_http_token_scope_writer_t  *w;

    w = &ngx_http_token_scope_writer;

    if (!w->filling) {
        return NGX_DECLINED;
    }

    /* the only lock of a slice: that the zone is still ours */
    if (!ngx_http_token_scope_revocation_mine()) {
        ngx_http_token_scope_revocation_abort();
        return NGX_DECLINED;
    }

    t = w->rcf->sh->tables[w->spare];

    while (w->cleared < t->capacity) {
        w->cleared = ts_table_clear(t, w->cleared,
                                    NGX_HTTP_TOKEN_SCOPE_CLEAR_STEP);

        if (ngx_http_token_scope_revocation_clock() >= deadline) {
            return NGX_AGAIN;
        }
    }

    if (batch == NULL) {
        return NGX_OK;
    }

    while (batch->next < batch->n) {

        if (w->full) {
            /* what does not fit is not enforced: the alert said so */
            batch->next = batch->n;
            break;
        }

        if (ngx_http_token_scope_revocation_step(t, batch) != NGX_OK) {
            ngx_http_token_scope_revocation_full(t);
            w->full = 1;
        }

        if (batch->next < batch->n
            && ngx_http_token_scope_revocation_clock() >= deadline)
        {
            return NGX_AGAIN;
        }
    }

    return NGX_OK;
}


/*
 * The next entries of a batch into the table: their digests first, then
 * a prefetch of each home slot, then the puts, so that the slots' cache
 * and TLB misses (the table is tens of megabytes) overlap rather than
 * come one after another
 */

static ngx_int_t
ngx_http_token_scope_revocation_step(ts_table_t *t,
    ngx_http_token_scope_batch_t *batch)
{
    int64_t      values[NGX_HTTP_TOKEN_SCOPE_APPLY_STEP];
    uint64_t     keys[NGX_HTTP_TOKEN_SCOPE_APPLY_STEP];
    ts_str_t     service;
    ngx_str_t   *name, *value;
    ngx_uint_t   i, n;

    n = 0;

    for ( /* void */ ;
         n < NGX_HTTP_TOKEN_SCOPE_APPLY_STEP && batch->next < batch->n;
         batch->next++)
    {
        name = &batch->names[batch->next];
        value = batch->values ? &batch->values[batch->next] : NULL;

        if (name->len == 0) {
            continue;
        }

        switch (batch->kind) {

        case NGX_HTTP_TOKEN_SCOPE_SCAN_IDS:
            keys[n] = ts_table_key_once(TS_TABLE_KEY_ID, name->data,
                                        name->len);
            values[n] = 0;
            break;

        case NGX_HTTP_TOKEN_SCOPE_SCAN_SELLERS:
            if (value == NULL
                || ts_parse_time(value->data, value->len, &values[n]) != 0)
            {
                continue;
            }

            keys[n] = ts_table_key_once(TS_TABLE_KEY_SELLER, name->data,
                                        name->len);
            break;

        default: /* NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS: few, one at a time */
            if (value == NULL) {
                continue;
            }

            service.data = name->data;
            service.len = name->len;

            if (ngx_http_token_scope_revocation_secrets(t, &service,
                                                        value->data,
                                                        value->len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        ts_table_prefetch(t, keys[n]);
        n++;
    }

    for (i = 0; i < n; i++) {
        if (ts_table_put(t, keys[i], values[i]) != 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "SERVICE-ID" -> "HEX [HEX ...]" of the HASH service-secrets */

static ngx_int_t
ngx_http_token_scope_revocation_secrets(ts_table_t *t, ts_str_t *service,
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


/* never said under the lock: the flags make it once per table filled */

static void
ngx_http_token_scope_revocation_full(ts_table_t *t)
{
    ngx_log_error(NGX_LOG_ALERT, ngx_http_token_scope_writer.log, 0,
                  "token scope: revocation zone is full at %uz entries, "
                  "increase \"zone=\" of \"token_scope_redis\"", t->count);
}


/*
 * The rescan is complete: the changes heard meanwhile are made again in
 * the spare table (a scan reply may predate them), which then serves
 * requests.  NGX_OK, with *count entries, and NGX_AGAIN when changes were
 * lost meanwhile (rescan once more); NGX_DECLINED: the zone is a newer
 * writer's.
 */

ngx_int_t
ngx_http_token_scope_revocation_commit(ngx_uint_t *count)
{
    ngx_int_t                              rc;
    ngx_uint_t                             i, mine;
    ts_table_t                            *t;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_replay_t         *op;
    ngx_http_token_scope_writer_t         *w;
    ngx_http_token_scope_revocation_sh_t  *sh;

    w = &ngx_http_token_scope_writer;
    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;
    sh = w->rcf->sh;

    if (!w->filling || w->cleared < sh->tables[w->spare]->capacity) {
        return NGX_DECLINED;
    }

    t = sh->tables[w->spare];
    op = w->replay.elts;

    for (i = 0; i < w->replay.nelts; i++) {
        if (op[i].del) {
            ts_table_del(t, op[i].key);

        } else if (ts_table_put(t, op[i].key, op[i].value) != 0 && !w->full) {
            ngx_http_token_scope_revocation_full(t);
            w->full = 1;
        }
    }

    ngx_shmtx_lock(&shpool->mutex);

    mine = (sh->generation == w->generation);

    if (mine) {
        sh->active = w->spare;
        sh->synced = 1;
        sh->connected = 1;
        sh->fresh = ngx_time();
        *count = t->count;
    }

    if (sh->filler == ngx_pid) {
        sh->filler = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    rc = w->overflow ? NGX_AGAIN : NGX_OK;

    ngx_http_token_scope_revocation_end();

    /* the active table took changes it had no room for until this one */
    w->active_full = 0;

    return mine ? rc : NGX_DECLINED;
}


/* the rescan is given up: the link broke, or the zone is not ours */

void
ngx_http_token_scope_revocation_abort(void)
{
    ngx_slab_pool_t                *shpool;
    ngx_http_token_scope_writer_t  *w;

    w = &ngx_http_token_scope_writer;

    if (!w->filling) {
        return;
    }

    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    if (w->rcf->sh->filler == ngx_pid) {
        w->rcf->sh->filler = 0;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_http_token_scope_revocation_end();
}


static void
ngx_http_token_scope_revocation_end(void)
{
    ngx_http_token_scope_writer_t  *w;

    w = &ngx_http_token_scope_writer;

    w->filling = 0;

    /* the replay of a rescan of many changes gives its memory back */
    if (w->pool != NULL && w->replay.nalloc > 1024) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;

    } else if (w->pool != NULL) {
        w->replay.nelts = 0;
    }
}


/* the writer's process exits: what a rescan was given back too */

void
ngx_http_token_scope_revocation_exit(void)
{
    ngx_http_token_scope_writer_t  *w;

    w = &ngx_http_token_scope_writer;

    ngx_http_token_scope_revocation_abort();

    if (w->pool != NULL) {
        ngx_destroy_pool(w->pool);
        w->pool = NULL;
    }
}


/*
 * One change from the revocation channel, into the table requests read
 * (and remembered for the spare one, if a rescan fills it).  NGX_OK;
 * NGX_AGAIN: it cannot be remembered, the rescan must be done again;
 * NGX_DECLINED: the zone is a newer writer's.
 */

ngx_int_t
ngx_http_token_scope_revocation_change(ts_revoke_msg_t *msg)
{
    uint64_t                               key;
    ngx_int_t                              rc;
    ngx_uint_t                             del, mine, full;
    ts_table_t                            *t;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_replay_t         *op;
    ngx_http_token_scope_writer_t         *w;
    ngx_http_token_scope_revocation_sh_t  *sh;

    w = &ngx_http_token_scope_writer;
    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;
    sh = w->rcf->sh;

    /* the digest before the lock */
    key = ts_table_key((msg->op == TS_REVOKE_ID || msg->op == TS_UNREVOKE_ID)
                       ? TS_TABLE_KEY_ID : TS_TABLE_KEY_SELLER,
                       msg->id.data, msg->id.len);

    del = (msg->op == TS_UNREVOKE_ID || msg->op == TS_UNREVOKE_SELLER);
    full = 0;

    ngx_shmtx_lock(&shpool->mutex);

    mine = (sh->generation == w->generation);

    if (mine) {
        t = sh->tables[sh->active];

        if (del) {
            ts_table_del(t, key);

        } else {
            full = (ts_table_put(t, key, msg->time) != 0);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!mine) {
        return NGX_DECLINED;
    }

    if (full && !w->active_full) {
        ngx_http_token_scope_revocation_full(sh->tables[sh->active]);
        w->active_full = 1;
    }

    rc = NGX_OK;

    if (w->filling) {
        op = (w->replay.nelts < NGX_HTTP_TOKEN_SCOPE_REPLAY_MAX)
             ? ngx_array_push(&w->replay) : NULL;

        if (op == NULL) {
            w->overflow = 1;
            rc = NGX_AGAIN;

        } else {
            op->key = key;
            op->value = msg->time;
            op->del = del;
        }
    }

    return rc;
}


/*
 * Redis answered (connected: the state is current now) or the link is
 * lost; NGX_DECLINED: the zone is a newer writer's, whose state it is.
 */

ngx_int_t
ngx_http_token_scope_revocation_fresh(ngx_uint_t connected)
{
    ngx_uint_t                             mine;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_writer_t         *w;
    ngx_http_token_scope_revocation_sh_t  *sh;

    w = &ngx_http_token_scope_writer;
    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;
    sh = w->rcf->sh;

    ngx_shmtx_lock(&shpool->mutex);

    mine = (sh->generation == w->generation);

    if (mine) {
        sh->connected = connected;

        if (connected) {
            sh->fresh = ngx_time();
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return mine ? NGX_OK : NGX_DECLINED;
}


static ngx_uint_t
ngx_http_token_scope_revocation_mine(void)
{
    ngx_uint_t                             mine;
    ngx_slab_pool_t                       *shpool;
    ngx_http_token_scope_writer_t         *w;
    ngx_http_token_scope_revocation_sh_t  *sh;

    w = &ngx_http_token_scope_writer;
    shpool = (ngx_slab_pool_t *) w->rcf->shm_zone->shm.addr;
    sh = w->rcf->sh;

    ngx_shmtx_lock(&shpool->mutex);
    mine = (sh->generation == w->generation);
    ngx_shmtx_unlock(&shpool->mutex);

    return mine;
}
