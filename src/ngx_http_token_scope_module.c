
/*
 * ngx_http_token_scope_module: decides in the access phase whether the
 * API token a request carries may call the location.  The token work is
 * done by the core (ts_*.c); this file holds the directives, the handler
 * and the variables.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


static ngx_int_t ngx_http_token_scope_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_required(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_check(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ts_reason_e ngx_http_token_scope_subject(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx);
static ngx_int_t ngx_http_token_scope_get_token(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_token_scope_client_secret(ngx_http_request_t *r,
    ngx_str_t *secret);
static ngx_uint_t ngx_http_token_scope_writes(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf);
static ngx_str_t ngx_http_token_scope_log_str(ngx_http_request_t *r,
    ts_str_t *s);
static void ngx_http_token_scope_log(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t level, const char *what);

static void ngx_http_token_scope_cleanup_sha256(void *data);
static void *ngx_http_token_scope_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_token_scope_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_token_scope_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_token_scope_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_token_scope_resolve(ngx_conf_t *cf,
    ngx_array_t *names, ts_required_t *req);
static ngx_array_t *ngx_http_token_scope_names(ngx_conf_t *cf);
static char *ngx_http_token_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_token_scope_category(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_token_scope_types(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_token_scope_deny_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_token_scope_verify_warn(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_token_scope_personal_only(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_token_scope_personal_from(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_token_scope_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_token_scope_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_token_scope_preaccess_handler(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_token_scope_init_process(ngx_cycle_t *cycle);
static void ngx_http_token_scope_exit_process(ngx_cycle_t *cycle);


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


static ngx_command_t  ngx_http_token_scope_commands[] = {

    { ngx_string("token_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_token_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("token_scope_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_token_scope_key_file,
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

    { ngx_string("token_scope_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_token_scope_loc_conf_t, log_level),
      &ngx_http_token_scope_log_levels },

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


static ngx_int_t
ngx_http_token_scope_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_token_scope_ctx_t       *ctx;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    if (!tlcf->enable) {
        return NGX_DECLINED;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "token scope handler");

    ctx = ngx_http_token_scope_evaluate(r);
    if (ctx == NULL || ctx->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING) {
        return ngx_http_token_scope_opaque_wait(r, ctx);
    }

    if (ctx->done) {
        /* the access phase may run again, e.g. after a subrequest */
        return ctx->decision == NGX_HTTP_TOKEN_SCOPE_ALLOW ? NGX_OK
                                                           : NGX_DECLINED;
    }

    ctx->done = 1;

    ngx_http_token_scope_count(r, ctx);

    switch (ctx->decision) {

    case NGX_HTTP_TOKEN_SCOPE_ALLOW:
        return NGX_OK;

    case NGX_HTTP_TOKEN_SCOPE_WOULD_DENY:
        ngx_http_token_scope_log(r, ctx, NGX_LOG_WARN, "would deny");
        return NGX_DECLINED;

    case NGX_HTTP_TOKEN_SCOPE_DENY:
        break;

    default: /* "off" from a variable */
        return NGX_DECLINED;
    }

    ngx_http_token_scope_log(r, ctx,
                             ctx->reason == TS_MISSING ? NGX_LOG_INFO
                                                       : tlcf->log_level,
                             "denied");

    rc = ngx_http_token_scope_deny(r, ctx);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * The decision, made once per request: by the access handler or earlier,
 * when a variable such as $token_scope_seller is read in the preaccess
 * phase for limit_req.  NULL where the module is off.
 */

ngx_http_token_scope_ctx_t *
ngx_http_token_scope_evaluate(ngx_http_request_t *r)
{
    ngx_http_token_scope_ctx_t       *ctx;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    ctx = ngx_http_get_module_ctx(r, ngx_http_token_scope_module);

    if (ctx != NULL) {
        /* decided, waiting, or the answer came: decide with it now */
        if (ctx->decision || ctx->failed
            || ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_NONE
            || ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING)
        {
            return ctx;
        }

    } else {
        if (!tlcf->enable) {
            return NULL;
        }

        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_token_scope_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_token_scope_module);
    }

    if (tlcf->operations != NULL
        && ngx_http_token_scope_find_operation(r, tlcf, ctx) != NGX_OK)
    {
        ctx->reason = TS_OPERATION;

    } else {
        switch (ngx_http_token_scope_required(r, tlcf, ctx)) {

        case NGX_OK:
            break;

        case NGX_DECLINED:
            return ctx;

        default:
            ctx->failed = 1;
            return ctx;
        }

        ctx->reason = ngx_http_token_scope_check(r, tlcf, ctx);

        if (ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING) {
            return ctx;
        }
    }

    if (ctx->reason == TS_OK) {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_ALLOW;

    } else if (tlcf->mode == NGX_HTTP_TOKEN_SCOPE_REPORT) {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_WOULD_DENY;

    } else {
        ctx->decision = NGX_HTTP_TOKEN_SCOPE_DENY;
    }

    return ctx;
}


/*
 * the categories this request needs: from its operation, the location or
 * a variable
 */

static ngx_int_t
ngx_http_token_scope_required(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_str_t                          value;
    ts_str_t                           bad;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (ctx->op != NULL) {
        ctx->required = ctx->op->required;
        return NGX_OK;
    }

    if (tlcf->required_value == NULL) {
        ctx->required = tlcf->required;
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, tlcf->required_value, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 3 && ngx_strncmp(value.data, "off", 3) == 0) {
        return NGX_DECLINED;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (ts_categories_parse(&tmcf->categories, value.data, value.len,
                            &ctx->required, &bad)
        != 0)
    {
        /* an operator's mistake: fail closed, and say so once per request */
        if (bad.len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "token scope: unknown category \"%*s\" in \"%V\"",
                          bad.len, bad.data, &value);

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "token scope: no category in \"%V\"",
                          &tlcf->required_value->value);
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


static ts_reason_e
ngx_http_token_scope_check(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    u_char                            *buf;
    ngx_str_t                          token, secret;
    ts_policy_t                        policy;
    ts_reason_e                        reason;
    ngx_http_token_scope_main_conf_t  *tmcf;
    u_char                             digest[TS_SHA256_LEN];
    u_char                             secret_digest[TS_SHA256_LEN];

    if (ngx_http_token_scope_get_token(r, &token) != NGX_OK) {
        return TS_MISSING;
    }

    if (token.len > tlcf->max_size) {
        ctx->token.error = "token is too long";
        return TS_MALFORMED;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (tlcf->opaque && !ts_token_is_jwt(token.data, token.len)) {
        reason = ngx_http_token_scope_opaque(r, tlcf, ctx, &token);

        if (reason != TS_OK
            || ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING)
        {
            return reason;
        }

    } else if (ngx_http_token_scope_cache_lookup(r, tlcf, &token, &ctx->token,
                                                 digest)
               != NGX_OK)
    {
        buf = ngx_pnalloc(r->pool, TS_TOKEN_BUF_SIZE(token.len));
        if (buf == NULL) {
            ctx->token.error = "out of memory";
            return TS_MALFORMED;
        }

        reason = ts_token_parse(&ctx->token, token.data, token.len, buf,
                                ngx_http_token_scope_base64url,
                                &tmcf->categories);
        if (reason != TS_OK) {
            return reason;
        }

        if (tlcf->verify) {
            if (tlcf->keys == NULL) {
                return TS_UNKNOWN_KEY;
            }

            reason = ts_token_verify(tlcf->keys, &ctx->token);
            if (reason != TS_OK) {
                return reason;
            }

            if (tmcf->cache != NULL) {
                ngx_http_token_scope_cache_store(r, &ctx->token, digest);
            }
        }
    }

    /* claims of a forged token must not reach logs or upstream as facts */
    ctx->verified = 1;

    reason = ts_token_check_time(&ctx->token, ngx_time(), tlcf->leeway);
    if (reason != TS_OK) {
        return reason;
    }

    reason = ngx_http_token_scope_revoked(r, tlcf, &ctx->token);
    if (reason != TS_OK) {
        return reason;
    }

    reason = ngx_http_token_scope_subject(r, tlcf, ctx);
    if (reason != TS_OK) {
        return reason;
    }

    policy.required = ctx->required;

    if (ctx->op != NULL) {
        policy.types = ctx->op->types ? ctx->op->types : tlcf->types;
        policy.write = ctx->op->write;
        policy.public_ok = ctx->op->public
                           || tlcf->public != NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF;
        policy.public_write = (ctx->op->public && ctx->op->write)
                        || tlcf->public == NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE;

    } else {
        policy.types = tlcf->types;
        policy.write = ngx_http_token_scope_writes(r, tlcf);
        policy.public_ok = (tlcf->public != NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF);
        policy.public_write =
                         (tlcf->public == NGX_HTTP_TOKEN_SCOPE_PUBLIC_WRITE);
    }

    policy.sandbox = (tlcf->environment == NGX_HTTP_TOKEN_SCOPE_SANDBOX);
    policy.legacy = tlcf->legacy;
    policy.personal_only = tlcf->personal_only;
    policy.check_secret = 0;
    policy.secret_ok = 0;
    policy.cloud = 0;
    policy.outside = 0;

    /* the request's own identity matters for these two types only */
    switch (ctx->token.type) {

    case TS_TYPE_PERSONAL:
        policy.cloud = (ngx_http_token_scope_client_secret(r, &secret)
                        == NGX_OK);
        policy.outside = tlcf->personal_from != NULL
                         && ngx_cidr_match(r->connection->sockaddr,
                                           tlcf->personal_from)
                            != NGX_OK;
        break;

    case TS_TYPE_SERVICE:
        if (tlcf->secrets == NULL && !tlcf->secrets_redis) {
            break;
        }

        policy.check_secret = 1;

        if (ngx_http_token_scope_client_secret(r, &secret) == NGX_OK
            && ts_sha256(secret.data, secret.len, secret_digest) == 0)
        {
            if (tlcf->secrets != NULL) {
                policy.secret_ok = ts_secrets_match(tlcf->secrets,
                                                    &ctx->token.service,
                                                    secret_digest);

            } else {
                policy.secret_ok = ngx_http_token_scope_redis_secret(r,
                                       &ctx->token.service, secret_digest);
            }
        }

        break;

    default:
        break;
    }

    return ts_decide(&policy, &ctx->token, &ctx->missing);
}


/*
 * token_scope_subject: the store or seller the request is about (say, the
 * {storeId} of the path) must be the token's own
 */

static ts_reason_e
ngx_http_token_scope_subject(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_str_t  subject;

    if (tlcf->subject == NULL) {
        return TS_OK;
    }

    if (ngx_http_complex_value(r, tlcf->subject, &subject) != NGX_OK) {
        ctx->failed = 1;
        return TS_SUBJECT;
    }

    /* an empty value matches nothing, a token without a subject neither */
    if (subject.len != 0 && subject.len == ctx->token.sid.len
        && ngx_memcmp(subject.data, ctx->token.sid.data, subject.len) == 0)
    {
        return TS_OK;
    }

    return TS_SUBJECT;
}


/*
 * "Authorization: Bearer <token>" with the scheme in any case, or the bare
 * token as WB accepts it
 */

static ngx_int_t
ngx_http_token_scope_get_token(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char  *p, *last;

    if (r->headers_in.authorization == NULL) {
        return NGX_DECLINED;
    }

    p = r->headers_in.authorization->value.data;
    last = p + r->headers_in.authorization->value.len;

    if (last - p >= (ssize_t) sizeof("Bearer ") - 1
        && ngx_strncasecmp(p, (u_char *) "Bearer ", sizeof("Bearer ") - 1)
           == 0)
    {
        p += sizeof("Bearer ") - 1;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    token->data = p;
    token->len = last - p;

    return NGX_OK;
}


/* X-Client-Secret: every Business Solutions Catalog service sends one */

static ngx_int_t
ngx_http_token_scope_client_secret(ngx_http_request_t *r, ngx_str_t *secret)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("X-Client-Secret") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Client-Secret",
                               sizeof("X-Client-Secret") - 1) == 0
            && h[i].value.len > 0)
        {
            *secret = h[i].value;
            return NGX_OK;
        }
    }
}


static ngx_uint_t
ngx_http_token_scope_writes(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf)
{
    switch (tlcf->access) {

    case TS_ACCESS_READ:
        return 0;

    case TS_ACCESS_WRITE:
        return 1;

    default: /* TS_ACCESS_AUTO */
        return !(r->method
                 & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_OPTIONS));
    }
}


/* never the token itself: its id, kid and what failed are enough */

static void
ngx_http_token_scope_log(ngx_http_request_t *r,
    ngx_http_token_scope_ctx_t *ctx, ngx_uint_t level, const char *what)
{
    static ngx_str_t  unknown = ngx_string("?");

    ngx_str_t   *required, kid, id;

    /* a line the error_log level drops costs no formatting either */
    if (r->connection->log->log_level < level) {
        return;
    }

    required = ngx_http_token_scope_format_required(r, ctx);

    /* an unverified token's kid and id are anybody's bytes, line breaks too */
    kid = ngx_http_token_scope_log_str(r, &ctx->token.kid);
    id = ngx_http_token_scope_log_str(r, &ctx->token.id);

    ngx_log_error(level, r->connection->log, 0,
                  "token scope: %s, reason \"%s\"%s%s, required \"%V\", "
                  "kid \"%V\", token id \"%V\"",
                  what, ts_reason_name(ctx->reason),
                  ctx->token.error ? ": " : "",
                  ctx->token.error ? ctx->token.error : "",
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
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "zone \"%V\" is too small",
                           param);
        return NGX_ERROR;
    }

    return size;
}


static void
ngx_http_token_scope_cleanup_sha256(void *data)
{
    ts_sha256_cleanup();
}


static void *
ngx_http_token_scope_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    /*
     * the core caches its SHA-256 per process; it goes with the cycle,
     * before the module is unloaded, and is fetched again when needed
     */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_token_scope_cleanup_sha256;

    ts_categories_init(&tmcf->categories);

    if (ngx_array_init(&tmcf->kids, cf->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


static char *
ngx_http_token_scope_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_str_t  name = ngx_string("request_id");

    tmcf->request_id_index = ngx_http_get_variable_index(cf, &name);
    if (tmcf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_token_scope_status_zone(cf, tmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_token_scope_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_token_scope_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tlcf->names = NULL;
     *     tlcf->required_value = NULL;
     *     tlcf->required = { 0, 0, 0 };
     *     tlcf->keys = NULL;
     *     tlcf->origin = { 0, NULL };
     *     tlcf->personal_only_names = NULL;
     *     tlcf->personal_only = 0;
     */

    tlcf->enable = NGX_CONF_UNSET;
    tlcf->verify = NGX_CONF_UNSET;
    tlcf->leeway = NGX_CONF_UNSET;
    tlcf->max_size = NGX_CONF_UNSET_SIZE;
    tlcf->access = NGX_CONF_UNSET_UINT;
    tlcf->environment = NGX_CONF_UNSET_UINT;
    tlcf->types = NGX_CONF_UNSET_UINT;
    tlcf->legacy = NGX_CONF_UNSET;
    tlcf->mode = NGX_CONF_UNSET_UINT;
    tlcf->deny_status = NGX_CONF_UNSET_UINT;
    tlcf->operations = NGX_CONF_UNSET_PTR;
    tlcf->personal_from = NGX_CONF_UNSET_PTR;
    tlcf->revocation = NGX_CONF_UNSET;
    tlcf->redis_down = NGX_CONF_UNSET_UINT;
    tlcf->secrets = NGX_CONF_UNSET_PTR;
    tlcf->error_format = NGX_CONF_UNSET_UINT;
    tlcf->log_level = NGX_CONF_UNSET_UINT;
    tlcf->public = NGX_CONF_UNSET_UINT;
    tlcf->subject = NGX_CONF_UNSET_PTR;
    tlcf->opaque = NGX_CONF_UNSET;
    tlcf->opaque_ttl = NGX_CONF_UNSET;
    tlcf->opaque_miss_ttl = NGX_CONF_UNSET;

    return tlcf;
}


static char *
ngx_http_token_scope_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_token_scope_loc_conf_t *prev = parent;
    ngx_http_token_scope_loc_conf_t *conf = child;

    ts_required_t                      personal_only;
    ngx_http_token_scope_main_conf_t  *tmcf;

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = prev->enable;
        conf->names = prev->names;
        conf->required_value = prev->required_value;
        conf->required = prev->required;
    }

    /* http level names come unresolved: that conf is never merged */
    if (conf->names != NULL) {
        if (ngx_http_token_scope_resolve(cf, conf->names, &conf->required)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* resolved once: a nested location inheriting it needs no more */
        conf->names = NULL;
    }

    if (conf->personal_only_names == NULL) {
        conf->personal_only_names = prev->personal_only_names;
        conf->personal_only = prev->personal_only;
    }

    if (conf->personal_only_names != NULL) {
        ngx_memzero(&personal_only, sizeof(ts_required_t));

        if (ngx_http_token_scope_resolve(cf, conf->personal_only_names,
                                         &personal_only)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        if (personal_only.common || personal_only.names) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"token_scope_personal_only\" takes "
                               "categories with a bit, not \"common\" or "
                               "scope names");
            return NGX_CONF_ERROR;
        }

        conf->personal_only = personal_only.categories;
        conf->personal_only_names = NULL;
    }

    ngx_conf_merge_ptr_value(conf->personal_from, prev->personal_from, NULL);
    ngx_conf_merge_value(conf->revocation, prev->revocation, 1);
    ngx_conf_merge_uint_value(conf->redis_down, prev->redis_down,
                              NGX_HTTP_TOKEN_SCOPE_REDIS_DOWN_DENY);
    if (conf->secrets == NGX_CONF_UNSET_PTR) {
        conf->secrets = prev->secrets;
        conf->secrets_redis = prev->secrets_redis;
    }

    ngx_conf_merge_ptr_value(conf->secrets, prev->secrets, NULL);

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    if (conf->secrets_redis && tmcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"token_scope_service_secrets redis\" needs "
                           "\"token_scope_redis\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->keys == NULL) {
        conf->keys = prev->keys;
    }

    ngx_conf_merge_value(conf->verify, prev->verify, 1);
    ngx_conf_merge_sec_value(conf->leeway, prev->leeway, 0);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size, 8192);
    ngx_conf_merge_uint_value(conf->access, prev->access, TS_ACCESS_AUTO);
    ngx_conf_merge_uint_value(conf->environment, prev->environment,
                              NGX_HTTP_TOKEN_SCOPE_PRODUCTION);
    ngx_conf_merge_uint_value(conf->types, prev->types, 0);
    ngx_conf_merge_value(conf->legacy, prev->legacy, 1);
    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_TOKEN_SCOPE_ENFORCE);
    ngx_conf_merge_uint_value(conf->deny_status, prev->deny_status,
                              NGX_HTTP_UNAUTHORIZED);
    ngx_conf_merge_str_value(conf->origin, prev->origin, "");
    ngx_conf_merge_uint_value(conf->error_format, prev->error_format,
                              NGX_HTTP_TOKEN_SCOPE_FORMAT_WB);

    /*
     * a refused token is the client's doing, as nginx logs a client's
     * errors: at info, so a flood of forged tokens does not flood the log
     */
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_INFO);
    ngx_conf_merge_uint_value(conf->public, prev->public,
                              NGX_HTTP_TOKEN_SCOPE_PUBLIC_OFF);
    ngx_conf_merge_ptr_value(conf->subject, prev->subject, NULL);
    ngx_conf_merge_value(conf->opaque, prev->opaque, 0);
    ngx_conf_merge_sec_value(conf->opaque_ttl, prev->opaque_ttl, 60);
    ngx_conf_merge_sec_value(conf->opaque_miss_ttl, prev->opaque_miss_ttl,
                             5);

    if (conf->opaque) {
        if (tmcf->redis == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"token_scope_opaque on\" needs "
                               "\"token_scope_redis\"");
            return NGX_CONF_ERROR;
        }

        tmcf->opaque = 1;
    }

    if (conf->operations == NGX_CONF_UNSET_PTR) {
        conf->operations = prev->operations;
        conf->unmatched = prev->unmatched;
    }

    ngx_conf_merge_ptr_value(conf->operations, prev->operations, NULL);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    /* an API of opaque tokens alone has no keys: its JWTs are unknown */
    if (conf->verify && !conf->opaque
        && (conf->keys == NULL || conf->keys->nkeys == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"token_scope\" is enabled with "
                           "\"token_scope_verify on\" but no "
                           "\"token_scope_key_file\" is configured");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Names are resolved after the whole http block is read, so that
 * "token_scope_category" may follow its first use; the error names the
 * place of the "token_scope" directive.
 */

static ngx_int_t
ngx_http_token_scope_resolve(ngx_conf_t *cf, ngx_array_t *names,
    ts_required_t *req)
{
    ngx_uint_t                         i;
    const ts_category_t               *c;
    ngx_http_token_scope_name_t       *name;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    name = names->elts;

    for (i = 0; i < names->nelts; i++) {
        c = ts_categories_find(&tmcf->categories,
                               (const char *) name[i].name.data,
                               name[i].name.len);
        if (c == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown token scope category or scope \"%V\" "
                          "in %s:%ui", &name[i].name, name[i].file,
                          name[i].line);
            return NGX_ERROR;
        }

        if (c->common) {
            req->common = 1;

        } else if (c->named) {
            req->names |= (uint64_t) 1 << c->bit;

        } else {
            req->categories |= (uint64_t) 1 << c->bit;
        }
    }

    return NGX_OK;
}


static char *
ngx_http_token_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_compile_complex_value_t   ccv;

    if (tlcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->enable = 0;
        return NGX_CONF_OK;
    }

    tlcf->enable = 1;

    if (cf->args->nelts == 2 && value[1].data[0] == '$') {
        tlcf->required_value = ngx_palloc(cf->pool,
                                          sizeof(ngx_http_complex_value_t));
        if (tlcf->required_value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = tlcf->required_value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].data[0] == '$' || ngx_strcmp(value[i].data, "off") == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" must be the only parameter", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    tlcf->names = ngx_http_token_scope_names(cf);

    return tlcf->names ? NGX_CONF_OK : NGX_CONF_ERROR;
}


/*
 * The directive's arguments as category names to resolve after the http
 * block is read, each with its place for the error message.
 */

static ngx_array_t *
ngx_http_token_scope_names(ngx_conf_t *cf)
{
    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_array_t                  *names;
    ngx_http_token_scope_name_t  *name;

    value = cf->args->elts;

    names = ngx_array_create(cf->pool, cf->args->nelts - 1,
                             sizeof(ngx_http_token_scope_name_t));
    if (names == NULL) {
        return NULL;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(names);
        if (name == NULL) {
            return NULL;
        }

        name->name = value[i];
        name->file = cf->conf_file->file.name.data;
        name->line = cf->conf_file->line;
    }

    return names;
}


static char *
ngx_http_token_scope_personal_only(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    if (tlcf->personal_only_names != NULL) {
        return "is duplicate";
    }

    tlcf->personal_only_names = ngx_http_token_scope_names(cf);

    return tlcf->personal_only_names ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static char *
ngx_http_token_scope_personal_from(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    if (tlcf->personal_from != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tlcf->personal_from = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_cidr_t));
    if (tlcf->personal_from == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(tlcf->personal_from);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid network \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_token_scope_category(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_int_t   bit;
    ngx_str_t  *value;
    char        err[TS_ERROR_MAX];

    value = cf->args->elts;

    bit = ngx_atoi(value[2].data, value[2].len);
    if (bit == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid category bit \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (ts_categories_add(&tmcf->categories, (const char *) value[1].data,
                          value[1].len, (unsigned) bit, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid category \"%V\" %V: %s",
                           &value[1], &value[2], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* token_scope_scope NAME ...; names an OAuth-style scope to require */

static char *
ngx_http_token_scope_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_main_conf_t *tmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;
    char         err[TS_ERROR_MAX];

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ts_categories_add_name(&tmcf->categories,
                                   (const char *) value[i].data,
                                   value[i].len, err, sizeof(err))
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid scope \"%V\": %s", &value[i], err);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_token_scope_types(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    int          type;
    ngx_str_t   *value;
    ngx_uint_t   i;

    if (tlcf->types != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    tlcf->types = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        type = ts_type_by_name((const char *) value[i].data, value[i].len);
        if (type < 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid token type \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        tlcf->types |= TS_TYPE_BIT(type);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_token_scope_deny_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_int_t   status;
    ngx_str_t  *value;

    if (tlcf->deny_status != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    status = ngx_atoi(value[1].data, value[1].len);

    if (status != NGX_HTTP_UNAUTHORIZED && status != NGX_HTTP_FORBIDDEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be 401 or 403",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    tlcf->deny_status = status;

    return NGX_CONF_OK;
}


static char *
ngx_http_token_scope_verify_warn(ngx_conf_t *cf, void *post, void *data)
{
    ngx_flag_t  *verify = data;

    if (!*verify) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"token_scope_verify off\" decodes tokens "
                           "without checking signatures: it is for egress "
                           "diagnostics, not for ingress");
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_token_scope_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_token_scope_handler;

    /*
     * an opaque token's lookup starts before limit_req, which may read
     * $token_scope_seller: dynamic modules' handlers run first in a phase
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_token_scope_preaccess_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_token_scope_preaccess_handler(ngx_http_request_t *r)
{
    ngx_http_token_scope_ctx_t       *ctx;
    ngx_http_token_scope_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_token_scope_module);

    if (!tlcf->enable || !tlcf->opaque || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_token_scope_evaluate(r);

    if (ctx != NULL
        && ctx->opaque == NGX_HTTP_TOKEN_SCOPE_OPAQUE_PENDING)
    {
        return ngx_http_token_scope_opaque_wait(r, ctx);
    }

    /* the access handler acts on the decision */
    return NGX_DECLINED;
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
