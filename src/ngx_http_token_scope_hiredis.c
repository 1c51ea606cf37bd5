
/*
 * The Redis connection layer: hiredis' asynchronous API on nginx's event
 * loop, and everything about a connection its users (the revocation sync
 * of worker 0, the opaque token lookups of every worker) share:
 *
 *   - connect without blocking (the address was resolved at
 *     configuration time), then AUTH (with an ACL user if configured),
 *     SELECT and a PING, and SUBSCRIBE on a second connection for a user
 *     with a channel; the user hears "ready" once all of them answered;
 *   - the connect and command timeouts, nginx timers of ours (hiredis
 *     0.14 has none): a handshake, or a command without a reply for
 *     "timeout", drops the connections (a user whose commands have
 *     timers of their own, a request's, says when instead);
 *   - one backoff policy for reconnecting, from a timer, never from a
 *     callback: 100 ms, doubling up to a second;
 *   - one log line per outage, and one when the user says it works again;
 *   - a worker that shuts down closes its connections at once: they are
 *     "idle" connections to nginx, which closes those when it starts
 *     shutting down.
 *
 * Every user callback gets a NULL reply when a connection is dropped with
 * the command unanswered; the layer has logged and reconnects by then.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_token_scope.h"


#define NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN  100
#define NGX_HTTP_TOKEN_SCOPE_BACKOFF_MAX  1000

/* hiredis' buffers read in one read event at most: 128K */
#define NGX_HTTP_TOKEN_SCOPE_READS        8


static void ngx_http_token_scope_redis_connect(ngx_event_t *ev);
static ngx_int_t ngx_http_token_scope_redis_open(
    ngx_http_token_scope_redis_t *rd, ngx_http_token_scope_link_t *link);
static void ngx_http_token_scope_redis_greet(ngx_http_token_scope_redis_t *rd,
    ngx_http_token_scope_link_t *link, char *name, const char *fmt, ...);
static void ngx_http_token_scope_redis_on_greeting(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_redis_on_subscriber(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_token_scope_redis_greeted(
    ngx_http_token_scope_redis_t *rd);
static void ngx_http_token_scope_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_token_scope_redis_on_disconnect(
    const redisAsyncContext *ac, int status);
static void ngx_http_token_scope_redis_timeout(ngx_event_t *ev);
static void ngx_http_token_scope_redis_drop(ngx_http_token_scope_redis_t *rd);
static void ngx_http_token_scope_redis_unlink(
    ngx_http_token_scope_link_t *link);
static ngx_uint_t ngx_http_token_scope_redis_awaits(
    ngx_http_token_scope_redis_t *rd);
static void ngx_http_token_scope_redis_exiting(
    ngx_http_token_scope_redis_t *rd);

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
 * Starts rd's connections in this worker process; the user has set rcf,
 * its callbacks and its texts for the log.
 */

ngx_int_t
ngx_http_token_scope_redis_start(ngx_http_token_scope_redis_t *rd,
    ngx_cycle_t *cycle)
{
    rd->log = cycle->log;
    rd->backoff = NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN;

    rd->cmd.rd = rd;
    rd->sub.rd = rd;

    /* cancelable: a graceful shutdown does not wait for these timers */
    rd->reconnect.handler = ngx_http_token_scope_redis_connect;
    rd->reconnect.data = rd;
    rd->reconnect.log = cycle->log;
    rd->reconnect.cancelable = 1;

    rd->deadline.handler = ngx_http_token_scope_redis_timeout;
    rd->deadline.data = rd;
    rd->deadline.log = cycle->log;
    rd->deadline.cancelable = 1;

    /*
     * from the event loop: the time a new worker has cached is the
     * master's, maybe from before its zones were set up, too old for
     * the connect timeout
     */
    ngx_add_timer(&rd->reconnect, 1);

    return NGX_OK;
}


/* for good: the worker exits, or the user has no more use for Redis */

void
ngx_http_token_scope_redis_close(ngx_http_token_scope_redis_t *rd)
{
    if (rd->closed || rd->rcf == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "token scope redis close: %s", rd->outage);

    rd->closed = 1;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    ngx_http_token_scope_redis_drop(rd);
}


/*
 * A command on rd's command connection, sent once it is connected (after
 * the handshake's commands); fn gets the reply, or NULL if the connection
 * is dropped first.  NGX_DECLINED: there is no connection now.
 */

ngx_int_t
ngx_http_token_scope_redis_command(ngx_http_token_scope_redis_t *rd,
    ngx_http_token_scope_reply_pt fn, void *privdata, const char *fmt, ...)
{
    int      rc;
    va_list  args;

    if (rd->closed || rd->cmd.ac == NULL) {
        return NGX_DECLINED;
    }

    va_start(args, fmt);
    rc = redisvAsyncCommand(rd->cmd.ac, fn, privdata, fmt, args);
    va_end(args);

    if (rc != REDIS_OK) {
        return NGX_DECLINED;
    }

    /* a command is awaited: the timeout runs until a reply comes */
    if (!rd->own_timeouts && !rd->deadline.timer_set) {
        ngx_add_timer(&rd->deadline, rd->rcf->timeout);
    }

    return NGX_OK;
}


/*
 * The user found Redis working (the sync: a full rescan done; the
 * lookups: the connection is ready): the backoff starts over, and the end
 * of an outage is told once.
 */

void
ngx_http_token_scope_redis_working(ngx_http_token_scope_redis_t *rd)
{
    rd->backoff = NGX_HTTP_TOKEN_SCOPE_BACKOFF_MIN;

    if (!rd->failing) {
        return;
    }

    rd->failing = 0;

    if (rd->recovered != NULL) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "token scope: redis \"%V\" %s",
                      &rd->rcf->address, rd->recovered);
    }
}


/*
 * A failure of either connection: both are dropped (the commands they
 * still owe answers to get NULL), the outage is told once, and a timer
 * reconnects after the backoff.
 */

void
ngx_http_token_scope_redis_fail(ngx_http_token_scope_redis_t *rd,
    const char *what, const char *err)
{
    if (rd->closed) {
        return;
    }

    ngx_http_token_scope_count_redis(rd, 0);

    if (!rd->failing) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "token scope: redis \"%V\" %s failed: %s; %s, "
                      "retrying", &rd->rcf->address, what,
                      err ? err : "no reply", rd->outage);
        rd->failing = 1;
    }

    ngx_http_token_scope_redis_drop(rd);

    if (ngx_exiting || ngx_quit || ngx_terminate
        || rd->reconnect.timer_set)
    {
        return;
    }

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff = ngx_min(2 * rd->backoff, NGX_HTTP_TOKEN_SCOPE_BACKOFF_MAX);
}


static void
ngx_http_token_scope_redis_connect(ngx_event_t *ev)
{
    ngx_http_token_scope_redis_t       *rd;
    ngx_http_token_scope_redis_conf_t  *rcf;

    rd = ev->data;
    rcf = rd->rcf;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "token scope redis connect to \"%V\": %s",
                   &rcf->address, rd->outage);

    if (rd->closed || ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    /* during an outage every attempt is a reconnect */
    if (rd->failing) {
        ngx_http_token_scope_count_redis(rd, 1);
    }

    /* queued now, sent once connected; each answer counts down */
    rd->greetings = 0;

    if (ngx_http_token_scope_redis_open(rd, &rd->cmd) != NGX_OK
        || (rd->channel != NULL
            && ngx_http_token_scope_redis_open(rd, &rd->sub) != NGX_OK))
    {
        ngx_http_token_scope_redis_fail(rd, "connect",
                                        "cannot create a context");
        return;
    }

    if (rcf->db) {
        ngx_http_token_scope_redis_greet(rd, &rd->cmd, "SELECT", "SELECT %d",
                                         (int) rcf->db);
    }

    ngx_http_token_scope_redis_greet(rd, &rd->cmd, "PING", "PING");

    /* the subscription comes before any use: no message falls between */
    if (rd->channel != NULL) {
        if (redisAsyncCommand(rd->sub.ac,
                              ngx_http_token_scope_redis_on_subscriber,
                              rd, "SUBSCRIBE %s", rd->channel)
            == REDIS_OK)
        {
            rd->subscribing = 1;
            rd->greetings++;
        }
    }

    ngx_add_timer(&rd->deadline, rcf->timeout);
}


/* a connection of rd, with AUTH queued if a password is configured */

static ngx_int_t
ngx_http_token_scope_redis_open(ngx_http_token_scope_redis_t *rd,
    ngx_http_token_scope_link_t *link)
{
    int                                 fd;
    redisAsyncContext                  *ac;
    ngx_connection_t                   *c;
    ngx_http_token_scope_redis_conf_t  *rcf;

    rcf = rd->rcf;

    if (rcf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->unix_path.data);

    } else {
        ac = redisAsyncConnect((char *) rcf->host.data, (int) rcf->port);
    }

    if (ac == NULL) {
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0, "token scope: redis \"%V\": %s",
                      &rcf->address, ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    fd = ac->c.fd;

    c = ngx_get_connection(fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c->data = link;
    c->read->handler = ngx_http_token_scope_redis_read;
    c->write->handler = ngx_http_token_scope_redis_write;
    c->read->log = rd->log;
    c->write->log = rd->log;

    /* nginx closes idle connections when the worker starts shutting down */
    c->idle = 1;

    link->ac = ac;
    link->conn = c;

    /* the callbacks find their link through it, even as hiredis frees ac */
    ac->data = link;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_token_scope_redis_add_read;
    ac->ev.delRead = ngx_http_token_scope_redis_del_read;
    ac->ev.addWrite = ngx_http_token_scope_redis_add_write;
    ac->ev.delWrite = ngx_http_token_scope_redis_del_write;
    ac->ev.cleanup = ngx_http_token_scope_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_token_scope_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_token_scope_redis_on_disconnect);

    if (rcf->password.len == 0) {
        return NGX_OK;
    }

    if (rcf->user.len) {
        ngx_http_token_scope_redis_greet(rd, link, "AUTH", "AUTH %b %b",
                                         rcf->user.data, rcf->user.len,
                                         rcf->password.data,
                                         rcf->password.len);

    } else {
        ngx_http_token_scope_redis_greet(rd, link, "AUTH", "AUTH %b",
                                         rcf->password.data,
                                         rcf->password.len);
    }

    return NGX_OK;
}


/* a command of the handshake: name is what the log says if it fails */

static void
ngx_http_token_scope_redis_greet(ngx_http_token_scope_redis_t *rd,
    ngx_http_token_scope_link_t *link, char *name, const char *fmt, ...)
{
    int      rc;
    va_list  args;

    va_start(args, fmt);
    rc = redisvAsyncCommand(link->ac, ngx_http_token_scope_redis_on_greeting,
                            name, fmt, args);
    va_end(args);

    if (rc == REDIS_OK) {
        rd->greetings++;
    }
}


static void
ngx_http_token_scope_redis_on_greeting(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_token_scope_link_t   *link;

    if (reply == NULL) {
        /* dropped, and said so */
        return;
    }

    link = ac->data;

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_token_scope_redis_fail(link->rd, privdata, reply->str);
        return;
    }

    ngx_http_token_scope_redis_greeted(link->rd);
}


/* the subscription confirmed, then each message for the user */

static void
ngx_http_token_scope_redis_on_subscriber(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_http_token_scope_redis_t *rd = privdata;

    redisReply  *reply = r;

    if (reply == NULL) {
        return;
    }

    if (rd->subscribing
        && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && ngx_strcmp(reply->element[0]->str, "subscribe") == 0)
    {
        rd->subscribing = 0;
        ngx_http_token_scope_redis_greeted(rd);
        return;
    }

    if (rd->ready) {
        rd->message(rd, reply);
    }
}


static void
ngx_http_token_scope_redis_greeted(ngx_http_token_scope_redis_t *rd)
{
    if (rd->greetings == 0 || --rd->greetings != 0) {
        return;
    }

    if (rd->deadline.timer_set) {
        ngx_del_timer(&rd->deadline);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "token scope redis ready: %s", rd->outage);

    rd->ready = 1;

    rd->on_ready(rd);
}


static void
ngx_http_token_scope_redis_on_connect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_token_scope_link_t  *link;

    link = ac->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->rd->log, 0,
                   "token scope redis connected: %d", status);

    /* a stopped Redis accepts connections too: ready is when it answers */
    if (status == REDIS_OK || link->ac != ac) {
        return;
    }

    /* hiredis frees the context after this callback */
    link->ac = NULL;

    ngx_http_token_scope_redis_fail(link->rd, "connect", ac->errstr);
}


static void
ngx_http_token_scope_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_token_scope_link_t  *link;

    link = ac->data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->rd->log, 0,
                   "token scope redis disconnected: %d", status);

    if (link->ac != ac) {
        /* one we closed ourselves */
        return;
    }

    link->ac = NULL;

    ngx_http_token_scope_redis_fail(link->rd, "connection",
                                    ac->err ? ac->errstr : "closed by peer");
}


static void
ngx_http_token_scope_redis_timeout(ngx_event_t *ev)
{
    ngx_http_token_scope_redis_t *rd = ev->data;

    ngx_http_token_scope_redis_fail(rd, rd->ready ? "command" : "connect",
                                    "timed out");
}


static void
ngx_http_token_scope_redis_drop(ngx_http_token_scope_redis_t *rd)
{
    ngx_uint_t  had;

    had = (rd->cmd.ac != NULL || rd->sub.ac != NULL || rd->ready);

    rd->ready = 0;
    rd->subscribing = 0;
    rd->greetings = 0;

    if (rd->deadline.timer_set) {
        ngx_del_timer(&rd->deadline);
    }

    ngx_http_token_scope_redis_unlink(&rd->cmd);
    ngx_http_token_scope_redis_unlink(&rd->sub);

    if (had && rd->on_lost != NULL) {
        rd->on_lost(rd);
    }
}


/*
 * Frees the context: hiredis calls the callbacks of the commands it
 * still holds with NULL, then the cleanup hook, which lets nginx's
 * connection go (hiredis closes the socket); from within a callback of
 * the same context, all that happens once the callback returns.
 */

static void
ngx_http_token_scope_redis_unlink(ngx_http_token_scope_link_t *link)
{
    redisAsyncContext  *ac;

    ac = link->ac;
    link->ac = NULL;

    if (ac != NULL) {
        redisAsyncFree(ac);
    }
}


/* whether a command on the command connection awaits its reply */

static ngx_uint_t
ngx_http_token_scope_redis_awaits(ngx_http_token_scope_redis_t *rd)
{
    return rd->cmd.ac != NULL && rd->cmd.ac->replies.head != NULL;
}


/*
 * nginx closes its idle connections: the worker is shutting down.  A user
 * whose commands are requests' (linger) closes once their replies are in,
 * any other at once: an old worker 0 must not keep writing a state that
 * the new configuration's worker 0 keeps now.
 */

static void
ngx_http_token_scope_redis_exiting(ngx_http_token_scope_redis_t *rd)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "token scope redis exiting: %s", rd->outage);

    /* told twice (worker_shutdown_timeout): no more waiting */
    if (rd->linger && !rd->exiting && ngx_http_token_scope_redis_awaits(rd)) {
        rd->exiting = 1;
        return;
    }

    rd->exiting = 1;

    ngx_http_token_scope_redis_close(rd);
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

    if (link->conn == c) {
        link->conn = NULL;
    }

    ngx_free_connection(c);

    c->fd = (ngx_socket_t) -1;
}


static void
ngx_http_token_scope_redis_read(ngx_event_t *ev)
{
    ngx_connection_t             *c = ev->data;
    ngx_http_token_scope_link_t  *link = c->data;

    int                            avail;
    ngx_uint_t                     n;
    ngx_http_token_scope_redis_t  *rd;

    rd = link->rd;

    if (c->close) {
        /* the connection is ours to close, and is no longer idle */
        c->close = 0;
        c->idle = 0;

        ngx_http_token_scope_redis_exiting(rd);
        return;
    }

    if (link->ac == NULL) {
        return;
    }

    /*
     * hiredis reads 16K at a time: a large reply (a rescan's) is read on,
     * up to NGX_HTTP_TOKEN_SCOPE_READS buffers, while it is awaited, so
     * that its callback comes in this event and not a few loops later
     */
    for (n = 1; /* void */ ; n++) {
        redisAsyncHandleRead(link->ac);

        if (n == NGX_HTTP_TOKEN_SCOPE_READS
            || link->ac == NULL
            || link->ac->replies.head == NULL
            || ngx_socket_nread(link->ac->c.fd, &avail) == -1
            || avail == 0)
        {
            break;
        }
    }

    /* exiting: closed once the replies awaited are in */
    if (rd->exiting) {
        if (!ngx_http_token_scope_redis_awaits(rd)) {
            ngx_http_token_scope_redis_close(rd);
        }

        return;
    }

    if (link != &rd->cmd || !rd->ready || rd->own_timeouts) {
        return;
    }

    /*
     * a reply came: the commands still awaited get the whole timeout
     * again (deleted first, as ngx_add_timer() keeps a timer that would
     * move by less than NGX_TIMER_LAZY_DELAY)
     */
    if (rd->deadline.timer_set) {
        ngx_del_timer(&rd->deadline);
    }

    if (ngx_http_token_scope_redis_awaits(rd)) {
        ngx_add_timer(&rd->deadline, rd->rcf->timeout);
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
