
/*
 * ngx_http_token_scope_module: decides in the access phase whether the
 * API token a request carries may call the location.  The token work is
 * done by the core (ts_*.c).  This file holds the directives' table, the
 * phase handlers and the request's context; the token's facts are in
 * ngx_http_token_scope_facts.c, the decision in _decide.c, the answer to
 * a refusal in _response.c, the configuration in _conf.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static ngx_int_t ngx_http_token_scope_post_read_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_preaccess_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_access_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_log_handler(ngx_http_request_t *r);
static void ngx_http_token_scope_spent(ngx_http_request_t *r,
    uint64_t start);
static ngx_int_t ngx_http_token_scope_judge(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf);
static void ngx_http_token_scope_cleanup(void *data);
static ngx_str_t ngx_http_token_scope_log_str(ngx_http_request_t *r,
    ts_str_t *s);
static void ngx_http_token_scope_log(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t level, const char *what);

static ngx_int_t ngx_http_token_scope_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_token_scope_init_process(ngx_cycle_t *cycle);
static void ngx_http_token_scope_exit_process(ngx_cycle_t *cycle);


/*
 * The context of a request that entered nginx's phases before it has one
 * of its own: a request nginx answered itself (a bad request line, 414)
 * never gets it, and its variables stay empty.
 */
static ngx_http_token_scope_ctx_t  ngx_http_token_scope_started;


static ngx_conf_post_t  ngx_http_token_scope_verify_post = {
    ngx_http_token_scope_verify_warn
};


static ngx_conf_enum_t  ngx_http_token_scope_access[] = {
    { ngx_string("auto"), TS_ACCESS_AUTO },
    { ngx_string("read"), TS_ACCESS_READ },
    { ngx_string("write"), TS_ACCESS_WRITE },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_environments[] = {
    { ngx_string("production"), NGX_HTTP_TOKEN_SCOPE_PRODUCTION },
    { ngx_string("sandbox"), NGX_HTTP_TOKEN_SCOPE_SANDBOX },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_redis_down[] = {
    { ngx_string("deny"), NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY },
    { ngx_string("allow"), NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_ALLOW },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_publics[] = {
    { ngx_string("off"), NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF },
    { ngx_string("on"), NGX_HTTP_TOKEN_SCOPE_PUBLIC_READ },
    { ngx_string("write"), NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_formats[] = {
    { ngx_string("wb"), NGX_HTTP_TOKEN_SCOPE_FORMAT_WB },
    { ngx_string("ecwid"), NGX_HTTP_TOKEN_SCOPE_FORMAT_ECWID },
    { ngx_string("rfc6750"), NGX_HTTP_TOKEN_SCOPE_FORMAT_RFC6750 },
    { ngx_null_string, 0 }
};


/* as limit_req_log_level: the level of a refusal's line */

static ngx_conf_enum_t  ngx_http_token_scope_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_modes[] = {
    { ngx_string("enforce"), NGX_HTTP_TOKEN_SCOPE_ENFORCE },
    { ngx_string("report"), NGX_HTTP_TOKEN_SCOPE_REPORT },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_overrides[] = {
    { ngx_string("check"), NGX_HTTP_TOKEN_SCOPE_OVERRIDE_CHECK },
    { ngx_string("ignore"), NGX_HTTP_TOKEN_SCOPE_OVERRIDE_IGNORE },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_token_scope_preflights[] = {
    { ngx_string("check"), NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_CHECK },
    { ngx_string("pass"), NGX_HTTP_TOKEN_SCOPE_PREFLIGHT_PASS },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_token_scope_commands[] = {

    { ngx_string("token_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_hosts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_BLOCK
                        |NGX_CONF_NOARGS,
      ngx_http_token_scope_hosts_block,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_token_scope_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_key_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_key_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, verify),
      &ngx_http_token_scope_verify_post },

    { ngx_string("token_scope_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, leeway),
      NULL },

    { ngx_string("token_scope_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, max_size),
      NULL },

    { ngx_string("token_scope_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, token_source),
      NULL },

    { ngx_string("token_scope_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_values,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, issuers),
      (void *) NGX_HTTP_TOKEN_SCOPE_ISS },

    { ngx_string("token_scope_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_values,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, audiences),
      (void *) NGX_HTTP_TOKEN_SCOPE_AUD },

    { ngx_string("token_scope_require"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_require,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_access"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, access),
      &ngx_http_token_scope_access },

    { ngx_string("token_scope_environment"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, environment),
      &ngx_http_token_scope_environments },

    { ngx_string("token_scope_types"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_types,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_legacy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, legacy),
      NULL },

    { ngx_string("token_scope_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, mode),
      &ngx_http_token_scope_modes },

    { ngx_string("token_scope_deny_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_token_scope_deny_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_origin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, origin),
      NULL },

    { ngx_string("token_scope_personal_only"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_personal_only,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_personal_from"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_personal_from,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_service_secrets"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_token_scope_service_secrets,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_operations"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_token_scope_operations_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_operations_use"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_token_scope_operations_use,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_revocation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, revocation),
      NULL },

    { ngx_string("token_scope_redis_down"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, redis_down),
      &ngx_http_token_scope_redis_down },

    { ngx_string("token_scope_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_token_scope_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_token_scope_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_category"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_token_scope_category,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_scope"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope_scope,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_public"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, public),
      &ngx_http_token_scope_publics },

    { ngx_string("token_scope_opaque"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_token_scope_opaque_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_subject"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, subject),
      NULL },

    { ngx_string("token_scope_error_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, error_format),
      &ngx_http_token_scope_formats },

    { ngx_string("token_scope_method_override"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, method_override),
      &ngx_http_token_scope_overrides },

    { ngx_string("token_scope_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, log_level),
      &ngx_http_token_scope_log_levels },

    { ngx_string("token_scope_upstream_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, upstream_headers),
      NULL },

    { ngx_string("token_scope_preflight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, preflight),
      &ngx_http_token_scope_preflights },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_token_scope_module_ctx = {
    ngx_http_token_scope_add_variables,    /* preconfiguration */
    ngx_http_token_scope_init,             /* postconfiguration */

    ngx_http_token_scope_create_main_conf, /* create main configuration */
    ngx_http_token_scope_init_main_conf,   /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_token_scope_create_loc_conf,  /* create location configuration */
    ngx_http_token_scope_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_token_scope_module = {
    NGX_MODULE_V1,
    &ngx_http_token_scope_module_ctx,      /* module context */
    ngx_http_token_scope_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_token_scope_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_token_scope_exit_process,     /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the request entered the phases: its variables may compute facts */

static ngx_int_t
ngx_http_token_scope_post_read_handler(ngx_http_request_t *r)
{
    if (ngx_http_get_module_ctx(r, ngx_http_token_scope_module) == NULL) {
        ngx_http_set_ctx(r, &ngx_http_token_scope_started,
                         ngx_http_token_scope_module);
    }

    return NGX_DECLINED;
}


/*
 * Before limit_req, which may read $token_scope_seller: the token's facts
 * (an opaque token's lookup is waited for here).  A subrequest skips the
 * access phase, so here it is decided.
 */

static ngx_int_t
ngx_http_token_scope_preaccess_handler(ngx_http_request_t *r)
{
    uint64_t                          start;
    ngx_int_t                         rc;
    ngx_http_token_scope_ctx_t       *ctx;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    if (!tlcf->enable) {
        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope preaccess handler");

    start = ngx_http_token_scope_clock();

    if (r != r->main) {
        /* the module's own fetch of keys carries no token to check */
        if (ngx_http_token_scope_jwks_own(r)) {
            return NGX_DECLINED;
        }

        rc = ngx_http_token_scope_judge(r, tlcf);

        ngx_http_token_scope_spent(r, start);

        /* NGX_OK would skip the rest of the phase: limit_req too */
        return rc == NGX_OK ? NGX_DECLINED : rc;
    }

    ctx = ngx_http_token_scope_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ngx_http_token_scope_facts(r, tlcf, ctx, 1)) {

    case NGX_AGAIN:
        rc = ngx_http_token_scope_opaque_wait(r, ctx);
        break;

    case NGX_ERROR:
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        break;

    default:
        rc = NGX_DECLINED;
        break;
    }

    ngx_http_token_scope_spent(r, start);

    return rc;
}


static ngx_int_t
ngx_http_token_scope_access_handler(ngx_http_request_t *r)
{
    uint64_t                          start;
    ngx_int_t                         rc;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    if (!tlcf->enable) {
        /* a client's copies of the facts' headers go where none is set */
        if (ngx_http_token_scope_headers(r, tlcf, NULL) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope access handler");

    start = ngx_http_token_scope_clock();

    rc = ngx_http_token_scope_judge(r, tlcf);

    ngx_http_token_scope_spent(r, start);

    return rc;
}


/*
 * The time a handler spent, added to the request's context; a
 * subrequest's is counted at once, a main request's in the log phase
 */

static void
ngx_http_token_scope_spent(ngx_http_request_t *r, uint64_t start)
{
    uint64_t                     ns;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_get_ctx(r);
    if (ctx == NULL) {
        return;
    }

    ns = ngx_http_token_scope_clock() - start;

    /* at least 1 ns: a request the module handled is counted */
    ctx->spent += ns ? ns : 1;

    if (r != r->main) {
        ngx_http_token_scope_count_time(r, ctx);
    }
}


/*
 * The serving location decides, anew in each location the request
 * reaches.  A refusal is the status returned to nginx, so that "satisfy"
 * and "error_page" work as with auth_basic; where nginx then answers
 * itself, the header filter gives the answer the module's shape.
 */

static ngx_int_t
ngx_http_token_scope_judge(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf)
{
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a CORS preflight under "token_scope_preflight pass": undecided */
    if (ngx_http_token_scope_preflight(r, tlcf, ctx)) {
        if (ngx_http_token_scope_headers(r, tlcf, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    switch (ngx_http_token_scope_facts(r, tlcf, ctx, 1)) {

    case NGX_AGAIN:
        return ngx_http_token_scope_opaque_wait(r, ctx);

    case NGX_ERROR:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    default:
        break;
    }

    if (ngx_http_token_scope_decide(r, tlcf, ctx) != NGX_OK
        || ngx_http_token_scope_headers(r, tlcf, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a main request is counted once, with its last decision */
    if (r != r->main && ctx->decision != NGX_HTTP_TOKEN_SCOPE_UNDECIDED) {
        ngx_http_token_scope_count(r, ctx);
    }

    switch (ctx->decision) {

    case NGX_HTTP_TOKEN_SCOPE_ALLOW:
        return NGX_OK;

    case NGX_HTTP_TOKEN_SCOPE_WOULD_DENY:
        ngx_http_token_scope_log(r, ctx, NGX_LOG_WARN, "would deny");
        return NGX_DECLINED;

    case NGX_HTTP_TOKEN_SCOPE_DENY:
        ngx_http_token_scope_log(r, ctx,
                                 ctx->reason == TS_MISSING ? NGX_LOG_INFO
                                                           : tlcf->log_level,
                                 "denied");
        return ngx_http_token_scope_refuse(r, ctx);

    default: /* "off" from a variable or the host table */
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_http_token_scope_log_handler(ngx_http_request_t *r)
{
    ngx_http_token_scope_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_token_scope_get_ctx(r);

    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->decision != NGX_HTTP_TOKEN_SCOPE_UNDECIDED) {
        ngx_http_token_scope_count(r, ctx);
    }

    ngx_http_token_scope_count_time(r, ctx);

    return NGX_OK;
}


/*
 * The request's context, or NULL.  An internal redirect clears the
 * modules' contexts; the pool cleanup that owns ours still has it.
 */

ngx_http_token_scope_ctx_t *
ngx_http_token_scope_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_token_scope_module);

    if (ctx == &ngx_http_token_scope_started) {
        return NULL;
    }

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_token_scope_cleanup) {
            ctx = cln->data;

            /* subrequests share the pool of the main request */
            if (ctx->request == r) {
                ngx_http_set_ctx(r, ctx, ngx_http_token_scope_module);
                return ctx;
            }
        }
    }

    return NULL;
}


/* whether the request entered nginx's phases, rather than being refused */

ngx_uint_t
ngx_http_token_scope_entered(ngx_http_request_t *r)
{
    return r->internal || r != r->main
           || ngx_http_get_module_ctx(r, ngx_http_token_scope_module) != NULL;
}


ngx_http_token_scope_ctx_t *
ngx_http_token_scope_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_token_scope_ctx_t  *ctx;

    ctx = ngx_http_token_scope_get_ctx(r);
    if (ctx != NULL) {
        return ctx;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_token_scope_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_token_scope_ctx_t));

    ctx->request = r;

    cln->handler = ngx_http_token_scope_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_token_scope_module);

    return ctx;
}


/*
 * What a request waited for (a Redis answer, a key fetch) is in: if its
 * phase handler returned NGX_AGAIN, the phases run on, posted, as a
 * subrequest must go on: its parent may be writing
 */

void
ngx_http_token_scope_resume(ngx_http_token_scope_ctx_t *ctx)
{
    ngx_http_request_t  *r;

    if (!ctx->waiting) {
        return;
    }

    ctx->waiting = 0;

    r = ctx->request;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    if (ngx_http_post_request(r, NULL) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_run_posted_requests(r->connection);
}


/* the request ends: a Redis lookup under way must not find it */

static void
ngx_http_token_scope_cleanup(void *data)
{
    ngx_http_token_scope_ctx_t *ctx = data;

    ngx_http_token_scope_opaque_cancel(ctx);
}


/* never the token itself: its id, kid and what failed are enough */

static void
ngx_http_token_scope_log(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t level, const char *what)
{
    static ngx_str_t  unknown = ngx_string("?");

    const char  *why;
    ngx_str_t   *required, kid, id;

    /* a line the error_log level drops costs no formatting either */
    if (r->connection->log->log_level < level) {
        return;
    }

    required = ngx_http_token_scope_format_required(r, ctx);

    /* an unverified token's kid and id are anybody's bytes, line breaks too */
    kid = ngx_http_token_scope_log_str(r, &ctx->token.kid);
    id = ngx_http_token_scope_log_str(r, &ctx->token.id);

    why = ctx->why ? ctx->why : ctx->token.error;

    ngx_log_error(level, r->connection->log, 0,
                  "token scope: %s, reason \"%s\"%s%s, required \"%V\", "
                  "kid \"%V\", token id \"%V\"",
                  what, ts_reason_name(ctx->reason),
                  why ? ": " : "", why ? why : "",
                  required ? required : &unknown,
                  &kid, &id);
}


/* URI-escaped: a kid or a UUID is unchanged, anything else is %XX */

static ngx_str_t
ngx_http_token_scope_log_str(ngx_http_request_t *r, ts_str_t *s)
{
    size_t     n;
    ngx_str_t  v;

    n = ngx_escape_uri(NULL, s->data, s->len, NGX_ESCAPE_URI_COMPONENT);

    if (n == 0) {
        v.data = s->data;
        v.len = s->len;
        return v;
    }

    v.data = ngx_pnalloc(r->pool, s->len + 2 * n);
    if (v.data == NULL) {
        ngx_str_set(&v, "?");
        return v;
    }

    ngx_escape_uri(v.data, s->data, s->len, NGX_ESCAPE_URI_COMPONENT);
    v.len = s->len + 2 * n;

    return v;
}


int
ngx_http_token_scope_base64url(u_char *dst, size_t *dst_len,
    const u_char *src, size_t len)
{
    ngx_str_t  d, s;

    d.data = dst;
    s.data = (u_char *) src;
    s.len = len;

    if (ngx_decode_base64url(&d, &s) != NGX_OK) {
        return -1;
    }

    *dst_len = d.len;

    return 0;
}


/*
 * Whether nginx answers the request itself because of the refusal in ctx:
 * the serving location refused it and the phases stopped at its decision
 * (satisfy all), at the votes' end (satisfy any) or, for a subrequest, at
 * the preaccess handler.  A content handler's answer is never ours.
 */

ngx_uint_t
ngx_http_token_scope_refused_here(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx)
{
    ngx_http_phase_handler_t   *ph;
    ngx_http_core_main_conf_t  *cmcf;

    if (ctx->decision != NGX_HTTP_TOKEN_SCOPE_DENY
        || ctx->status != r->err_status
        || ctx->conf != ngx_http_get_module_loc_conf(r,
                                                 ngx_http_token_scope_module))
    {
        return 0;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);
    ph = &cmcf->phase_engine.handlers[r->phase_handler];

    return ph->checker == ngx_http_core_access_phase
           || ph->checker == ngx_http_core_post_access_phase
           || ph->handler == ngx_http_token_scope_preaccess_handler;
}


static ngx_int_t
ngx_http_token_scope_init(ngx_conf_t *cf)
{
    ngx_uint_t                         i;
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_token_scope_main_conf_t  *tmcf;

    static struct {
        ngx_uint_t              phase;
        ngx_http_handler_pt     handler;
    } handlers[] = {
        { NGX_HTTP_POST_READ_PHASE, ngx_http_token_scope_post_read_handler },

        /* dynamic modules' handlers run first in a phase: before limit_req */
        { NGX_HTTP_PREACCESS_PHASE, ngx_http_token_scope_preaccess_handler },
        { NGX_HTTP_ACCESS_PHASE, ngx_http_token_scope_access_handler },
        { NGX_HTTP_LOG_PHASE, ngx_http_token_scope_log_handler }
    };

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    /* created with every configuration: counting never depends on a page */
    if (ngx_http_token_scope_status_zone(cf, tmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_token_scope_claims_late(cf, tmcf);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        h = ngx_array_push(&cmcf->phases[handlers[i].phase].handlers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        *h = handlers[i].handler;
    }

    return ngx_http_token_scope_filter_init(cf);
}


static ngx_int_t
ngx_http_token_scope_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_token_scope_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_token_scope_opaque_init_process(cycle);
}


static void
ngx_http_token_scope_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_token_scope_opaque_exit_process(cycle);
    ngx_http_token_scope_redis_exit_process(cycle);
}
