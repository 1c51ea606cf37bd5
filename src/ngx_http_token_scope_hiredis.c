
/*
 * hiredis on nginx's event loop: a Redis connection of hiredis's async API
 * whose socket nginx watches.  hiredis asks for read and write events
 * through the adapter hooks, nginx calls hiredis back when they come; the
 * revocation sync (ngx_http_token_scope_redis.c) and the opaque token
 * lookups (ngx_http_token_scope_opaque.c) each keep their links.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_token_scope.h"


static void ngx_http_token_scope_redis_add_read(void *data);
static void ngx_http_token_scope_redis_del_read(void *data);
static void ngx_http_token_scope_redis_add_write(void *data);
static void ngx_http_token_scope_redis_del_write(void *data);
static void ngx_http_token_scope_redis_watch(ngx_event_t *ev,
    ngx_int_t event, ngx_uint_t on);
static void ngx_http_token_scope_redis_cleanup(void *data);
static void ngx_http_token_scope_redis_read(ngx_event_t *ev);
static void ngx_http_token_scope_redis_write(ngx_event_t *ev);


/*
 * Connects link to the configured Redis without blocking: hiredis gets
 * its events from nginx through the adapter below.
 */

ngx_int_t
ngx_http_token_scope_redis_link(ngx_http_token_scope_redis_conf_t *rcf,
    ngx_http_token_scope_link_t *link, ngx_log_t *log,
    void (*on_connect)(const struct redisAsyncContext *ac, int status),
    void (*on_disconnect)(const struct redisAsyncContext *ac, int status))
{
    int                  fd;
    redisAsyncContext   *ac;
    ngx_connection_t    *c;

    if (rcf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rcf->host.data, (int) rcf->port);
    }

    if (ac == NULL) {
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "token scope: redis \"%V\": %s",
                      &rcf->address, ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    fd = ac->c.fd;

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c->data = link;
    c->read->handler = ngx_http_token_scope_redis_read;
    c->write->handler = ngx_http_token_scope_redis_write;
    c->read->log = log;
    c->write->log = log;

    link->ac = ac;
    link->conn = c;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_token_scope_redis_add_read;
    ac->ev.delRead = ngx_http_token_scope_redis_del_read;
    ac->ev.addWrite = ngx_http_token_scope_redis_add_write;
    ac->ev.delWrite = ngx_http_token_scope_redis_del_write;
    ac->ev.cleanup = ngx_http_token_scope_redis_cleanup;

    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    return NGX_OK;
}


/* the adapter: hiredis asks for events on its socket, nginx delivers them */

static void
ngx_http_token_scope_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_token_scope_redis_watch(c->read, NGX_READ_EVENT, 1);
}


static void
ngx_http_token_scope_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_token_scope_redis_watch(c->read, NGX_READ_EVENT, 0);
}


static void
ngx_http_token_scope_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_token_scope_redis_watch(c->write, NGX_WRITE_EVENT, 1);
}


static void
ngx_http_token_scope_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_token_scope_redis_watch(c->write, NGX_WRITE_EVENT, 0);
}


/* level-triggered: hiredis reads at most one buffer per event */

static void
ngx_http_token_scope_redis_watch(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t on)
{
    if (on && !ev->active) {
        (void) ngx_add_event(ev, event, 0);

    } else if (!on && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


/* hiredis owns and closes the socket; nginx lets go of it first */

static void
ngx_http_token_scope_redis_cleanup(void *data)
{
    ngx_connection_t             *c = data;
    ngx_http_token_scope_link_t  *link;

    ngx_http_token_scope_redis_del_read(c);
    ngx_http_token_scope_redis_del_write(c);

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    link = c->data;
    link->conn = NULL;

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_token_scope_redis_read(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_token_scope_link_t  *link = c->data;

    if (link->ac != NULL) {
        redisAsyncHandleRead(link->ac);
    }
}


static void
ngx_http_token_scope_redis_write(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_token_scope_link_t  *link = c->data;

    if (link->ac != NULL) {
        redisAsyncHandleWrite(link->ac);
    }
}
