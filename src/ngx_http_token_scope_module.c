
/*
 * ngx_http_token_scope_module: decides in the access phase whether the
 * API token a request carries may call the location.  The token work is
 * done by the core (ts_*.c); this file holds the directives' table and the
 * handling of a request, ngx_http_token_scope_conf.c the configuration,
 * ngx_http_token_scope_variables.c the variables.
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
