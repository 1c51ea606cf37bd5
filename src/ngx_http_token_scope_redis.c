
/*
 * Revocation through Redis without a request ever waiting on it: worker
 * 0's sync of the revocation state.  Over the connection layer
 * (ngx_http_token_scope_hiredis.c: commands and a subscriber to the
 * revocation channel) it mirrors the revoked ids, the revoked sellers and
 * the service secrets into the revocation zone
 * (ngx_http_token_scope_revocation.c), which every worker checks requests
 * against.  Each connect subscribes first and then rescans the keys into
 * the zone's spare table, so revocations written while the node was cut
 * off apply after the reconnect; a message on the channel applies at once.
 *
 *   lost -> (the layer reconnects) -> ready: rescan -> commit -> pings
 *
 * A rescan keeps Redis one SCAN ahead of the slices that apply its
 * replies: the replies are copied out of hiredis' and applied a slice of
 * about a millisecond at a time, the event loop running between slices.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT   "1000"

/* replies copied and not applied yet: one applied, one in hand */
#define NGX_HTTP_TOKEN_SCOPE_SCAN_AHEAD   2

/* an older worker 0 ends its slice first: the rescan starts after */
#define NGX_HTTP_TOKEN_SCOPE_BUSY_RETRY   10


/* the sync state of worker 0; other workers only read the zone */
typedef struct {
    ngx_http_token_scope_redis_t  redis;
    ngx_http_token_scope_redis_conf_t  *rcf;
    ngx_http_token_scope_main_conf_t   *tmcf;
    ngx_log_t                  *log;
    ngx_event_t                 ping;
    ngx_event_t                 work;        /* a slice of the rescan */
    ngx_event_t                 retry;       /* the rescan could not begin */
    ngx_queue_t                 batches;     /* replies not applied yet */
    ngx_uint_t                  queued;
    ngx_uint_t                  stage;       /* NGX_HTTP_TOKEN_SCOPE_SCAN_ */
    u_char                      cursor[NGX_INT64_LEN + 1];
    int64_t                     started;     /* of the rescan, for the log */
    unsigned                    rescanning:1;
    unsigned                    asking:1;    /* a SCAN awaits its reply */
    unsigned                    scanned:1;   /* the last reply is in */
    unsigned                    again:1;     /* rescan once more after it */
    unsigned                    synced:1;    /* since the connect */
    unsigned                    stopped:1;   /* the zone is a newer one's */
} ngx_http_token_scope_sync_t;


static void ngx_http_token_scope_sync_ready(ngx_http_token_scope_redis_t *rd);
static void ngx_http_token_scope_sync_lost(ngx_http_token_scope_redis_t *rd);
static void ngx_http_token_scope_sync_message(
    ngx_http_token_scope_redis_t *rd, redisReply *reply);
static void ngx_http_token_scope_sync_rescan(void);
static void ngx_http_token_scope_sync_retry(ngx_event_t *ev);
static void ngx_http_token_scope_sync_scan(void);
static void ngx_http_token_scope_sync_on_scan(redisAsyncContext *ac,
    void *r, void *privdata);
static ngx_http_token_scope_batch_t *ngx_http_token_scope_sync_batch(
    redisReply *items, ngx_uint_t kind);
static u_char *ngx_http_token_scope_sync_copy(ngx_str_t *s, redisReply *e,
    u_char *p);
static void ngx_http_token_scope_sync_work(ngx_event_t *ev);
static void ngx_http_token_scope_sync_commit(void);
static void ngx_http_token_scope_sync_drop_batches(void);
static void ngx_http_token_scope_sync_ping(ngx_event_t *ev);
static void ngx_http_token_scope_sync_on_pong(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_sync_stop(void);


static ngx_http_token_scope_sync_t  ngx_http_token_scope_sync;


/*
 * token_scope_redis ADDRESS [db=N] [user=NAME] [password=...]
 *     [password_file=FILE] [prefix=...] [timeout=TIME] [max_stale=TIME]
 *     [zone=SIZE] [lifetime=TIME];
 */

char *
ngx_http_token_scope_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    u_char                             *p;
    ssize_t                             size;
    ngx_int_t                           n;
    ngx_str_t                          *value, s, file;
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

    ngx_str_null(&file);
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

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rcf->user.data = value[i].data + 5;
            rcf->user.len = value[i].len - 5;

            if (rcf->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            file.data = value[i].data + 14;
            file.len = value[i].len - 14;

            if (file.len == 0) {
                goto invalid;
            }

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

    if (file.len) {
        if (rcf->password.len) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"password=\" and \"password_file=\" "
                               "cannot both be set");
            return NGX_CONF_ERROR;
        }

        if (ngx_http_token_scope_password_file(cf, &file, &rcf->password)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    if (rcf->user.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"user=\" needs \"password=\" or "
                           "\"password_file=\"");
        return NGX_CONF_ERROR;
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

    if (ngx_http_token_scope_revocation_zone(cf, rcf, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tmcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);

    return NGX_CONF_ERROR;
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

    ngx_queue_init(&sync->batches);

    /* from now on, a worker 0 of an older configuration writes no more */
    if (ngx_http_token_scope_revocation_writer(sync->rcf, cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sync->ping.handler = ngx_http_token_scope_sync_ping;
    sync->ping.log = cycle->log;
    sync->ping.cancelable = 1;

    sync->work.handler = ngx_http_token_scope_sync_work;
    sync->work.log = cycle->log;
    sync->work.cancelable = 1;

    sync->retry.handler = ngx_http_token_scope_sync_retry;
    sync->retry.log = cycle->log;
    sync->retry.cancelable = 1;

    sync->redis.rcf = sync->rcf;
    sync->redis.channel = sync->rcf->channel;
    sync->redis.outage = "revocation state kept";
    sync->redis.role = NGX_HTTP_TOKEN_SCOPE_ROLE_REVOCATION;
    sync->redis.on_ready = ngx_http_token_scope_sync_ready;
    sync->redis.on_lost = ngx_http_token_scope_sync_lost;
    sync->redis.message = ngx_http_token_scope_sync_message;

    return ngx_http_token_scope_redis_start(&sync->redis, cycle);
}


void
ngx_http_token_scope_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->rcf == NULL) {
        return;
    }

    ngx_http_token_scope_redis_close(&sync->redis);
    ngx_http_token_scope_revocation_exit();

    sync->rcf = NULL;
}


/* subscribed, AUTH and SELECT done: the state is read again in full */

static void
ngx_http_token_scope_sync_ready(ngx_http_token_scope_redis_t *rd)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope sync: subscribed, rescanning");

    ngx_http_token_scope_sync_rescan();

    /* opaque tokens may have changed while no message could come */
    ngx_http_token_scope_cache_forget(sync->tmcf, NULL, sync->log);
}


/* the connections are gone: the rescan is given up, the state kept */

static void
ngx_http_token_scope_sync_lost(ngx_http_token_scope_redis_t *rd)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope sync: lost");

    ngx_http_token_scope_sync_drop_batches();
    ngx_http_token_scope_revocation_abort();

    sync->rescanning = 0;
    sync->asking = 0;
    sync->again = 0;
    sync->synced = 0;

    if (sync->ping.timer_set) {
        ngx_del_timer(&sync->ping);
    }

    if (sync->retry.timer_set) {
        ngx_del_timer(&sync->retry);
    }

    if (!sync->stopped
        && ngx_http_token_scope_revocation_fresh(0) == NGX_DECLINED)
    {
        sync->stopped = 1;
    }
}


static void
ngx_http_token_scope_sync_message(ngx_http_token_scope_redis_t *rd,
    redisReply *reply)
{
    ts_str_t                      bad;
    ngx_int_t                     rc;
    ts_revoke_msg_t               msg;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(reply->element[0]->str, "message") != 0
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

    switch (msg.op) {

    /* secrets of a service are replaced whole: rescan, it is rare */
    case TS_SECRETS_CHANGED:
        ngx_http_token_scope_sync_rescan();
        return;

    case TS_OPAQUE_CHANGED:
        ngx_http_token_scope_cache_forget(sync->tmcf, msg.digest, sync->log);
        return;

    default:
        break;
    }

    rc = ngx_http_token_scope_revocation_change(&msg);

    if (rc == NGX_DECLINED) {
        ngx_http_token_scope_sync_stop();

    } else if (rc == NGX_AGAIN) {
        sync->again = 1;
    }
}


/*
 * A full rescan into the spare table, which then serves requests: on
 * every (re)connect and when the service secrets change.
 */

static void
ngx_http_token_scope_sync_rescan(void)
{
    ngx_int_t                     rc;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->rescanning || sync->retry.timer_set) {
        sync->again = 1;
        return;
    }

    rc = ngx_http_token_scope_revocation_begin();

    if (rc == NGX_BUSY) {
        ngx_add_timer(&sync->retry, NGX_HTTP_TOKEN_SCOPE_BUSY_RETRY);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_token_scope_sync_stop();
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_token_scope_redis_fail(&sync->redis, "rescan",
                                        "no memory");
        return;
    }

    sync->rescanning = 1;
    sync->scanned = 0;
    sync->again = 0;
    sync->stage = NGX_HTTP_TOKEN_SCOPE_SCAN_IDS;
    sync->started = ngx_http_token_scope_revocation_clock();
    ngx_cpystrn(sync->cursor, (u_char *) "0", sizeof(sync->cursor));

    ngx_http_token_scope_sync_scan();

    /* the spare table is cleared while Redis scans */
    ngx_post_event(&sync->work, &ngx_posted_next_events);
}


static void
ngx_http_token_scope_sync_retry(ngx_event_t *ev)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (sync->redis.ready) {
        sync->again = 0;
        ngx_http_token_scope_sync_rescan();
    }
}


static void
ngx_http_token_scope_sync_scan(void)
{
    ngx_int_t                           rc;
    ngx_http_token_scope_sync_t        *sync;
    ngx_http_token_scope_redis_conf_t  *rcf;

    sync = &ngx_http_token_scope_sync;
    rcf = sync->rcf;

    switch (sync->stage) {

    case NGX_HTTP_TOKEN_SCOPE_SCAN_IDS:
        rc = ngx_http_token_scope_redis_command(&sync->redis,
                 ngx_http_token_scope_sync_on_scan, NULL,
                 "SSCAN %s %s COUNT " NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT,
                 rcf->key_ids, sync->cursor);
        break;

    case NGX_HTTP_TOKEN_SCOPE_SCAN_SELLERS:
        rc = ngx_http_token_scope_redis_command(&sync->redis,
                 ngx_http_token_scope_sync_on_scan, NULL,
                 "HSCAN %s %s COUNT " NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT,
                 rcf->key_sellers, sync->cursor);
        break;

    default: /* NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS */
        rc = ngx_http_token_scope_redis_command(&sync->redis,
                 ngx_http_token_scope_sync_on_scan, NULL,
                 "HSCAN %s %s COUNT " NGX_HTTP_TOKEN_SCOPE_SCAN_COUNT,
                 rcf->key_secrets, sync->cursor);
        break;
    }

    /* not connected: the layer has said so, and ready rescans */
    sync->asking = (rc == NGX_OK);
}


/*
 * A reply of SSCAN or HSCAN: copied out of hiredis' (which frees it on
 * return) for the slices, and the next one asked for at once, so that
 * Redis scans while the slices apply
 */

static void
ngx_http_token_scope_sync_on_scan(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    redisReply                    *cursor;
    ngx_http_token_scope_sync_t   *sync;
    ngx_http_token_scope_batch_t  *batch;

    sync = &ngx_http_token_scope_sync;

    if (reply == NULL || !sync->rescanning) {
        return;
    }

    sync->asking = 0;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len > NGX_INT64_LEN
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        ngx_http_token_scope_redis_fail(&sync->redis, "SSCAN or HSCAN",
                                        reply->type == REDIS_REPLY_ERROR
                                        ? reply->str : "unexpected reply");
        return;
    }

    batch = ngx_http_token_scope_sync_batch(reply->element[1], sync->stage);
    if (batch == NULL) {
        ngx_http_token_scope_redis_fail(&sync->redis, "SSCAN or HSCAN",
                                        "no memory");
        return;
    }

    ngx_queue_insert_tail(&sync->batches, &batch->queue);
    sync->queued++;

    cursor = reply->element[0];

    if (!(cursor->len == 1 && cursor->str[0] == '0')) {
        ngx_cpystrn(sync->cursor, (u_char *) cursor->str, cursor->len + 1);

    } else if (sync->stage != NGX_HTTP_TOKEN_SCOPE_SCAN_SECRETS) {
        sync->stage++;
        ngx_cpystrn(sync->cursor, (u_char *) "0", sizeof(sync->cursor));

    } else {
        sync->scanned = 1;
    }

    if (!sync->scanned && sync->queued < NGX_HTTP_TOKEN_SCOPE_SCAN_AHEAD) {
        ngx_http_token_scope_sync_scan();
    }

    if (!sync->work.posted) {
        ngx_post_event(&sync->work, &ngx_posted_next_events);
    }
}


/* the entries of a reply in one allocation: strings copied, no reply */

static ngx_http_token_scope_batch_t *
ngx_http_token_scope_sync_batch(redisReply *items, ngx_uint_t kind)
{
    u_char                        *p;
    size_t                         size, step, n, i;
    redisReply                    *e;
    ngx_http_token_scope_batch_t  *batch;

    /* HSCAN answers field, value pairs; SSCAN members */
    step = (kind == NGX_HTTP_TOKEN_SCOPE_SCAN_IDS) ? 1 : 2;
    n = items->elements / step;

    size = sizeof(ngx_http_token_scope_batch_t)
           + n * step * sizeof(ngx_str_t);

    for (i = 0; i < n * step; i++) {
        e = items->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            size += e->len;
        }
    }

    batch = ngx_alloc(size, ngx_http_token_scope_sync.log);
    if (batch == NULL) {
        return NULL;
    }

    batch->kind = kind;
    batch->n = n;
    batch->next = 0;
    batch->names = (ngx_str_t *) &batch[1];
    batch->values = (step == 2) ? batch->names + n : NULL;

    p = (u_char *) (batch->names + n * step);

    for (i = 0; i < n; i++) {
        p = ngx_http_token_scope_sync_copy(&batch->names[i],
                                           items->element[i * step], p);

        if (step == 2) {
            p = ngx_http_token_scope_sync_copy(&batch->values[i],
                                               items->element[i * 2 + 1], p);
        }
    }

    return batch;
}


/* an entry that is no string is copied as an empty one, and skipped */

static u_char *
ngx_http_token_scope_sync_copy(ngx_str_t *s, redisReply *e, u_char *p)
{
    s->data = p;
    s->len = 0;

    if (e->type != REDIS_REPLY_STRING) {
        return p;
    }

    s->len = e->len;

    return ngx_cpymem(p, e->str, e->len);
}


/*
 * A slice of the rescan: the batches in hand applied until about a
 * millisecond has passed, then the event loop runs before the next slice
 */

static void
ngx_http_token_scope_sync_work(ngx_event_t *ev)
{
    int64_t                        deadline;
    ngx_int_t                      rc;
    ngx_queue_t                   *q;
    ngx_http_token_scope_sync_t   *sync;
    ngx_http_token_scope_batch_t  *batch;

    sync = &ngx_http_token_scope_sync;

    if (!sync->rescanning) {
        return;
    }

    deadline = ngx_http_token_scope_revocation_deadline();

    /* the spare table is cleared first, the batches wait for that */
    rc = ngx_http_token_scope_revocation_apply(NULL, deadline);

    while (rc == NGX_OK && !ngx_queue_empty(&sync->batches)) {
        q = ngx_queue_head(&sync->batches);
        batch = ngx_queue_data(q, ngx_http_token_scope_batch_t, queue);

        rc = ngx_http_token_scope_revocation_apply(batch, deadline);

        if (batch->next == batch->n) {
            ngx_queue_remove(q);
            ngx_free(batch);
            sync->queued--;

            if (!sync->scanned && !sync->asking) {
                ngx_http_token_scope_sync_scan();
            }
        }
    }

    if (rc == NGX_DECLINED) {
        ngx_http_token_scope_sync_stop();
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_post_event(&sync->work, &ngx_posted_next_events);
        return;
    }

    if (sync->scanned && ngx_queue_empty(&sync->batches)) {
        ngx_http_token_scope_sync_commit();
    }

    /* else the next reply posts the next slice */
}


static void
ngx_http_token_scope_sync_commit(void)
{
    ngx_int_t                     rc;
    ngx_uint_t                    count;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    sync->rescanning = 0;

    rc = ngx_http_token_scope_revocation_commit(&count);

    if (rc == NGX_DECLINED) {
        ngx_http_token_scope_sync_stop();
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope sync: rescan done in %L us",
                   ngx_http_token_scope_revocation_clock() - sync->started);

    if (!sync->synced) {
        ngx_log_error(NGX_LOG_NOTICE, sync->log, 0,
                      "token scope: redis \"%V\" connected, %ui revoked ids, "
                      "sellers and service secrets synced",
                      &sync->rcf->address, count);
        sync->synced = 1;

        ngx_http_token_scope_sync_ping(NULL);
    }

    ngx_http_token_scope_redis_working(&sync->redis);

    if (rc == NGX_AGAIN || sync->again) {
        sync->again = 0;
        ngx_http_token_scope_sync_rescan();
    }
}


static void
ngx_http_token_scope_sync_drop_batches(void)
{
    ngx_queue_t                   *q;
    ngx_http_token_scope_sync_t   *sync;
    ngx_http_token_scope_batch_t  *batch;

    sync = &ngx_http_token_scope_sync;

    while (!ngx_queue_empty(&sync->batches)) {
        q = ngx_queue_head(&sync->batches);
        batch = ngx_queue_data(q, ngx_http_token_scope_batch_t, queue);

        ngx_queue_remove(q);
        ngx_free(batch);
    }

    sync->queued = 0;

    if (sync->work.posted) {
        ngx_delete_posted_event(&sync->work);
    }
}


static void
ngx_http_token_scope_sync_ping(ngx_event_t *ev)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    (void) ngx_http_token_scope_redis_command(&sync->redis,
                                        ngx_http_token_scope_sync_on_pong,
                                        NULL, "PING");
}


static void
ngx_http_token_scope_sync_on_pong(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_msec_t                    interval;
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_token_scope_redis_fail(&sync->redis, "PING", reply->str);
        return;
    }

    if (ngx_http_token_scope_revocation_fresh(1) == NGX_DECLINED) {
        ngx_http_token_scope_sync_stop();
        return;
    }

    /* often enough that a healthy link never looks stale */
    interval = ngx_max(100, ngx_min(1000, sync->rcf->max_stale * 1000 / 3));

    ngx_add_timer(&sync->ping, interval);
}


/*
 * The zone has a newer writer: the worker 0 of a newer configuration
 * keeps it now.  This one lets go of Redis for good.
 */

static void
ngx_http_token_scope_sync_stop(void)
{
    ngx_http_token_scope_sync_t  *sync;

    sync = &ngx_http_token_scope_sync;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, sync->log, 0,
                   "token scope sync: the zone is a newer writer's");

    sync->stopped = 1;

    ngx_http_token_scope_redis_close(&sync->redis);
}
