
/*
 * Claims beyond the ones the policy needs: token_scope_issuer,
 * token_scope_audience and token_scope_require, and the variables
 * $token_scope_claim_NAME and $token_scope_header_NAME.
 *
 * The claims kept are named at configuration time: every such variable
 * the configuration uses, and "iss" and "aud" where a location checks
 * them.  They are taken once from a verified token, as compact JSON, and
 * the verified-token cache keeps them with the token, so a cache hit
 * parses no JSON text of the token.  The set of names is part of the
 * tables' digest, which salts the cache's keys: after a reload that keeps
 * other claims, a cached token misses and is verified again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


/* the kept claims of one cache entry, all lengths included */
#define NGX_HTTP_TOKEN_SCOPE_CLAIMS_MAX     4096
#define NGX_HTTP_TOKEN_SCOPE_CLAIM_ABSENT   0xffff


static ngx_int_t ngx_http_token_scope_claims_add(ngx_conf_t *cf,
    ngx_array_t *claims, u_char *name, size_t len, ngx_uint_t header);
static ngx_int_t ngx_http_token_scope_claim_index(
    ngx_http_token_scope_main_conf_t *tmcf, u_char *name, size_t len,
    ngx_uint_t header);
static ngx_int_t ngx_http_token_scope_variable_claim(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_token_scope_claim_named(ngx_str_t *variable,
    ngx_str_t *claim, ngx_uint_t *header);


static ngx_str_t  ngx_http_token_scope_claim_prefix =
    ngx_string("token_scope_claim_");
static ngx_str_t  ngx_http_token_scope_header_prefix =
    ngx_string("token_scope_header_");


/*
 * The claims of a verified token (tok->payload and tok->header, still in
 * the parse's buffer) into tok->claims, in r->pool
 */

ngx_int_t
ngx_http_token_scope_claims_keep(ngx_http_request_t *r, ts_token_t *tok)
{
    int                                rc;
    u_char                            *buf;
    size_t                             size, used;
    ngx_uint_t                         i, header;
    ts_claim_t                        *claims, *names;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (tmcf->claims == NULL || tmcf->claims->nelts == 0) {
        return NGX_OK;
    }

    names = tmcf->claims->elts;

    claims = ngx_pcalloc(r->pool, tmcf->claims->nelts * sizeof(ts_claim_t));
    if (claims == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < tmcf->claims->nelts; i++) {
        claims[i].name = names[i].name;
        claims[i].header = names[i].header;
    }

    for (header = 0; header < 2; header++) {

        size = header ? tok->header.len : tok->payload.len;

        /* a real may print longer than its text: then a second try */
        size += 64;

        for ( ;; ) {
            buf = ngx_pnalloc(r->pool, size);
            if (buf == NULL) {
                return NGX_ERROR;
            }

            rc = header
                 ? ts_claims_extract(tok->header.data, tok->header.len,
                                     claims, tmcf->claims->nelts, 1, buf,
                                     size, &used)
                 : ts_claims_extract(tok->payload.data, tok->payload.len,
                                     claims, tmcf->claims->nelts, 0, buf,
                                     size, &used);

            if (rc != 1) {
                break;
            }

            size = used;
        }

        if (rc != 0) {
            return NGX_ERROR;
        }
    }

    tok->claims = claims;
    tok->nclaims = tmcf->claims->nelts;

    return NGX_OK;
}


/*
 * A field of an opaque token's hash: the claim of that name, if kept, is
 * the field's value as a JSON string.  The first call makes tok->claims,
 * each one absent until its field comes.
 */

ngx_int_t
ngx_http_token_scope_claims_field(ngx_http_request_t *r, ts_token_t *tok,
    u_char *name, size_t len, u_char *value, size_t size)
{
    u_char                            *p;
    size_t                             used;
    ngx_int_t                          i;
    ngx_uint_t                         n;
    ts_claim_t                        *claims, *names;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (tmcf->claims == NULL || tmcf->claims->nelts == 0) {
        return NGX_OK;
    }

    if (tok->claims == NULL) {
        names = tmcf->claims->elts;

        claims = ngx_pcalloc(r->pool,
                             tmcf->claims->nelts * sizeof(ts_claim_t));
        if (claims == NULL) {
            return NGX_ERROR;
        }

        for (n = 0; n < tmcf->claims->nelts; n++) {
            claims[n].name = names[n].name;
            claims[n].header = names[n].header;
        }

        tok->claims = claims;
        tok->nclaims = tmcf->claims->nelts;
    }

    i = ngx_http_token_scope_claim_index(tmcf, name, len, 0);
    if (i == NGX_ERROR) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, 6 * size + 2);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* a value that is not UTF-8 stays absent */
    if (ts_claim_string(value, size, p, 6 * size + 2, &used) == 0) {
        tok->claims[i].value.data = p;
        tok->claims[i].value.len = used;
    }

    return NGX_OK;
}


/*
 * After the token passed its times, revocation and subject: its issuer,
 * audience and the location's required values.  TS_REASON_MAX: failed
 * (no memory).
 */

ts_reason_e
ngx_http_token_scope_claims_check(ngx_http_request_t *r,
    ngx_http_token_scope_loc_conf_t *tlcf, ngx_http_token_scope_ctx_t *ctx)
{
    ngx_int_t                          i;
    ngx_str_t                          value;
    ngx_uint_t                         n, opaque;
    ts_token_t                        *tok;
    ngx_http_complex_value_t          *cv;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);
    tok = &ctx->token;

    /* the cache does not keep tok->opaque; ctx->opaque says it */
    opaque = tok->opaque || ctx->opaque != NGX_HTTP_TOKEN_SCOPE_OPAQUE_NONE;

    /*
     * an opaque token has neither, whatever fields its hash has: refused
     * where they are asked for
     */
    if (tlcf->issuers != NULL) {
        i = ngx_http_token_scope_claim_index(tmcf, (u_char *) "iss", 3, 0);

        if (i == NGX_ERROR || opaque || (ngx_uint_t) i >= tok->nclaims
            || !ts_claim_match(&tok->claims[i].value, tlcf->issuers->elts,
                               tlcf->issuers->nelts, 0))
        {
            return TS_ISSUER;
        }
    }

    if (tlcf->audiences != NULL) {
        i = ngx_http_token_scope_claim_index(tmcf, (u_char *) "aud", 3, 0);

        if (i == NGX_ERROR || opaque || (ngx_uint_t) i >= tok->nclaims
            || !ts_claim_match(&tok->claims[i].value, tlcf->audiences->elts,
                               tlcf->audiences->nelts, 1))
        {
            return TS_AUDIENCE;
        }
    }

    if (tlcf->require == NULL) {
        return TS_OK;
    }

    cv = tlcf->require->elts;

    for (n = 0; n < tlcf->require->nelts; n++) {
        if (ngx_http_complex_value(r, &cv[n], &value) != NGX_OK) {
            return TS_REASON_MAX;
        }

        if (value.len == 0 || (value.len == 1 && value.data[0] == '0')) {
            return TS_REQUIRE;
        }
    }

    return TS_OK;
}


static ngx_int_t
ngx_http_token_scope_claim_index(ngx_http_token_scope_main_conf_t *tmcf,
    u_char *name, size_t len, ngx_uint_t header)
{
    ngx_uint_t   i;
    ts_claim_t  *claims;

    if (tmcf->claims == NULL) {
        return NGX_ERROR;
    }

    claims = tmcf->claims->elts;

    for (i = 0; i < tmcf->claims->nelts; i++) {
        if (claims[i].header == header
            && claims[i].name.len == len
            && ngx_strncmp(claims[i].name.data, name, len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


/* $token_scope_claim_NAME, $token_scope_header_NAME */

static ngx_int_t
ngx_http_token_scope_variable_claim(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                            *p;
    size_t                             len;
    ngx_int_t                          i;
    ngx_str_t                          named;
    ngx_uint_t                         header;
    ts_claim_t                        *claim;
    ngx_http_token_scope_ctx_t        *ctx;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    i = (ngx_http_token_scope_claim_named(name, &named, &header) == NGX_OK)
        ? ngx_http_token_scope_claim_index(tmcf, named.data, named.len,
                                           header)
        : NGX_ERROR;

    /* known() makes nothing of a request nginx answered itself */
    ctx = (i == NGX_ERROR) ? NULL : ngx_http_token_scope_known(r);

    if (ctx == NULL || (ngx_uint_t) i >= ctx->token.nclaims) {
        v->not_found = 1;
        return NGX_OK;
    }

    claim = &ctx->token.claims[i];

    if (claim->value.data == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, claim->value.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ts_claim_display(&claim->value, p, &len) != 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = p;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * The bytes of tok's claims in a cache entry: per claim kept, a 16-bit
 * length (ABSENT: the token has no such claim) and the compact value.
 * (size_t) -1: too long for an entry; the token then goes uncached and
 * is verified on every request, rather than keep a value cut short.
 */

size_t
ngx_http_token_scope_claims_size(ts_token_t *tok)
{
    size_t      size;
    ngx_uint_t  i;

    size = 0;

    for (i = 0; i < tok->nclaims; i++) {
        size += 2 + tok->claims[i].value.len;
    }

    return size > NGX_HTTP_TOKEN_SCOPE_CLAIMS_MAX ? (size_t) -1 : size;
}


u_char *
ngx_http_token_scope_claims_write(u_char *p, ts_token_t *tok)
{
    size_t      len;
    ngx_uint_t  i;

    for (i = 0; i < tok->nclaims; i++) {
        len = tok->claims[i].value.data ? tok->claims[i].value.len
                                        : NGX_HTTP_TOKEN_SCOPE_CLAIM_ABSENT;

        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

        if (tok->claims[i].value.data) {
            p = ngx_cpymem(p, tok->claims[i].value.data, len);
        }
    }

    return p;
}


/*
 * The kept claims of a cache entry into tok, in r->pool; called with the
 * zone locked: an allocation, copies and no more.  The entry was stored
 * under the same set of names: the set salts its key.
 */

ngx_int_t
ngx_http_token_scope_claims_read(ngx_http_request_t *r, ts_token_t *tok,
    u_char *p, size_t len)
{
    u_char                            *last, *to;
    size_t                             n;
    ngx_uint_t                         i;
    ts_claim_t                        *claims, *names;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_token_scope_module);

    if (tmcf->claims == NULL || tmcf->claims->nelts == 0) {
        return NGX_DECLINED;
    }

    names = tmcf->claims->elts;

    /* aligned: the values follow the array */
    claims = ngx_palloc(r->pool,
                        tmcf->claims->nelts * sizeof(ts_claim_t) + len);
    if (claims == NULL) {
        return NGX_DECLINED;
    }

    to = (u_char *) &claims[tmcf->claims->nelts];
    last = p + len;

    for (i = 0; i < tmcf->claims->nelts; i++) {
        if (last - p < 2) {
            return NGX_DECLINED;
        }

        n = ((size_t) p[0] << 8) | p[1];
        p += 2;

        claims[i].name = names[i].name;
        claims[i].header = names[i].header;

        if (n == NGX_HTTP_TOKEN_SCOPE_CLAIM_ABSENT) {
            claims[i].value.data = NULL;
            claims[i].value.len = 0;
            continue;
        }

        if ((size_t) (last - p) < n) {
            return NGX_DECLINED;
        }

        claims[i].value.data = to;
        claims[i].value.len = n;
        to = ngx_cpymem(to, p, n);
        p += n;
    }

    if (p != last) {
        return NGX_DECLINED;
    }

    tok->claims = claims;
    tok->nclaims = tmcf->claims->nelts;

    return NGX_OK;
}


/*
 * The claims to keep, once the configuration is read and the modules
 * before this one merged theirs (proxy_set_header compiles its variables
 * then); their set goes into the tables' digest, so into every cache key
 */

ngx_int_t
ngx_http_token_scope_claims_init(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    u_char                     *p;
    size_t                      len;
    ngx_str_t                   name;
    ngx_uint_t                  i, header;
    ngx_array_t                *claims;
    ts_claim_t                 *c;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *cmcf;
    u_char                      digest[TS_SHA256_LEN];

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    claims = ngx_array_create(cf->pool, 4, sizeof(ts_claim_t));
    if (claims == NULL) {
        return NGX_ERROR;
    }

    if ((tmcf->claim_checks & NGX_HTTP_TOKEN_SCOPE_ISS)
        && ngx_http_token_scope_claims_add(cf, claims, (u_char *) "iss", 3,
                                           0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if ((tmcf->claim_checks & NGX_HTTP_TOKEN_SCOPE_AUD)
        && ngx_http_token_scope_claims_add(cf, claims, (u_char *) "aud", 3,
                                           0)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {

        if (ngx_http_token_scope_claim_named(&v[i].name, &name, &header)
            == NGX_OK
            && ngx_http_token_scope_claims_add(cf, claims, name.data,
                                               name.len, header)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    tmcf->claims = claims;

    if (claims->nelts == 0) {
        /* the keys of the cache are what they were before claims */
        return NGX_OK;
    }

    /* "c:NAME\0" or "h:NAME\0" for each, in order */
    len = 0;
    c = claims->elts;

    for (i = 0; i < claims->nelts; i++) {
        len += c[i].name.len + 3;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (i = 0; i < claims->nelts; i++) {
        p[len++] = c[i].header ? 'h' : 'c';
        p[len++] = ':';
        len = ngx_cpymem(p + len, c[i].name.data, c[i].name.len) - p;
        p[len++] = '\0';
    }

    if (ts_sha256(p, len, digest) != 0
        || ts_sha256_pair(tmcf->tables_digest, TS_SHA256_LEN, digest,
                          TS_SHA256_LEN, tmcf->tables_digest)
           != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The claim a variable's name is about: NGX_OK with its name and whether
 * of the header, NGX_DECLINED for a name of neither prefix
 */

static ngx_int_t
ngx_http_token_scope_claim_named(ngx_str_t *variable, ngx_str_t *claim,
    ngx_uint_t *header)
{
    ngx_str_t   *prefix;
    ngx_uint_t   i;

    static ngx_str_t  *prefixes[] = {
        &ngx_http_token_scope_claim_prefix,
        &ngx_http_token_scope_header_prefix
    };

    for (i = 0; i < 2; i++) {
        prefix = prefixes[i];

        if (variable->len > prefix->len
            && ngx_strncmp(variable->data, prefix->data, prefix->len) == 0)
        {
            claim->data = variable->data + prefix->len;
            claim->len = variable->len - prefix->len;
            *header = i;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * A claim variable that a module merged after this one's configuration
 * (a dynamic module loaded later) started to use: it stays empty
 */

void
ngx_http_token_scope_claims_late(ngx_conf_t *cf,
    ngx_http_token_scope_main_conf_t *tmcf)
{
    ngx_str_t                   name;
    ngx_uint_t                  i, header;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {

        if (ngx_http_token_scope_claim_named(&v[i].name, &name, &header)
            == NGX_OK
            && ngx_http_token_scope_claim_index(tmcf, name.data, name.len,
                                                header)
               == NGX_ERROR)
        {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "variable \"$%V\" is used by a module loaded "
                               "after ngx_http_token_scope_module: it is "
                               "always empty", &v[i].name);
        }
    }
}


static ngx_int_t
ngx_http_token_scope_claims_add(ngx_conf_t *cf, ngx_array_t *claims,
    u_char *name, size_t len, ngx_uint_t header)
{
    ngx_uint_t   i;
    ts_claim_t  *c;

    c = claims->elts;

    for (i = 0; i < claims->nelts; i++) {
        if (c[i].header == header && c[i].name.len == len
            && ngx_strncmp(c[i].name.data, name, len) == 0)
        {
            return NGX_OK;
        }
    }

    c = ngx_array_push(claims);
    if (c == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(c, sizeof(ts_claim_t));

    c->name.data = name;
    c->name.len = len;
    c->header = header;

    return NGX_OK;
}


ngx_int_t
ngx_http_token_scope_claims_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_http_token_scope_claim_prefix,
                                NGX_HTTP_VAR_NOCACHEABLE
                                |NGX_HTTP_VAR_PREFIX);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_token_scope_variable_claim;

    var = ngx_http_add_variable(cf, &ngx_http_token_scope_header_prefix,
                                NGX_HTTP_VAR_NOCACHEABLE
                                |NGX_HTTP_VAR_PREFIX);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_token_scope_variable_claim;

    return NGX_OK;
}


/* token_scope_issuer VALUE ...; token_scope_audience VALUE ...; */

char *
ngx_http_token_scope_values(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                         *value, *s;
    ngx_uint_t                         i;
    ngx_array_t                      **a;
    ngx_http_token_scope_main_conf_t  *tmcf;

    a = (ngx_array_t **) (p + cmd->offset);

    if (*a != NULL) {
        return "is duplicate";
    }

    *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
    if (*a == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);
    tmcf->claim_checks |= (ngx_uint_t) cmd->post;

    return NGX_CONF_OK;
}


/* token_scope_require $value ... [error=401|403]; */

char *
ngx_http_token_scope_require(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (tlcf->require != NULL) {
        return "is duplicate";
    }

    tlcf->require = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_http_complex_value_t));
    if (tlcf->require == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "error=", 6) == 0) {
            if (value[i].len == 9
                && ngx_strncmp(value[i].data + 6, "401", 3) == 0)
            {
                tlcf->require_status = NGX_HTTP_UNAUTHORIZED;
                continue;
            }

            if (value[i].len == 9
                && ngx_strncmp(value[i].data + 6, "403", 3) == 0)
            {
                tlcf->require_status = NGX_HTTP_FORBIDDEN;
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        cv = ngx_array_push(tlcf->require);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (tlcf->require->nelts == 0) {
        return "needs a value";
    }

    return NGX_CONF_OK;
}


void
ngx_http_token_scope_claims_merge(ngx_http_token_scope_loc_conf_t *prev,
    ngx_http_token_scope_loc_conf_t *conf)
{
    if (conf->token_source == NULL) {
        conf->token_source = prev->token_source;
    }

    if (conf->issuers == NULL) {
        conf->issuers = prev->issuers;
    }

    if (conf->audiences == NULL) {
        conf->audiences = prev->audiences;
    }

    if (conf->require == NULL) {
        conf->require = prev->require;
        conf->require_status = prev->require_status;
    }

    if (conf->require_status == 0) {
        conf->require_status = NGX_HTTP_UNAUTHORIZED;
    }
}
