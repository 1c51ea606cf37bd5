
/*
 * Files read at configuration time: verification keys (PEM or JWKS),
 * service secrets and the password of Redis.  The request path never
 * reads a file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_token_scope.h"


/* key and secret files are small; a huge one is a mistake */
#define NGX_HTTP_TOKEN_SCOPE_FILE_MAX  (1024 * 1024)


static char *ngx_http_token_scope_note_kids(ngx_conf_t *cf,
    ts_keyset_t *keys, size_t from);
static void ngx_http_token_scope_cleanup_keys(void *data);
static void ngx_http_token_scope_cleanup_secrets(void *data);
static void ngx_http_token_scope_cleanup_password(void *data);


char *
ngx_http_token_scope_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    int                  rc;
    u_char              *p, *kid;
    size_t               n, from;
    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;
    char                 err[TS_ERROR_MAX];

    value = cf->args->elts;
    kid = NULL;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "kid=", 4) != 0
            || value[2].len == 4)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        kid = value[2].data + 4;
    }

    if (tlcf->keys == NULL) {
        /* the cleanup exists before the first key it has to free */
        cln = ngx_pool_cleanup_add(cf->pool, sizeof(ts_keyset_t));
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(cln->data, sizeof(ts_keyset_t));
        cln->handler = ngx_http_token_scope_cleanup_keys;

        tlcf->keys = cln->data;
    }

    from = tlcf->keys->nkeys;

    p = ngx_http_token_scope_read_file(cf, &value[1], &n);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    /* a JWKS is a JSON object, anything else is taken as PEM */
    while (n > 0 && (*p == ' ' || *p == '\t' || *p == CR || *p == LF)) {
        p++;
        n--;
    }

    if (n > 0 && *p == '{') {
        if (kid != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"kid=\" is not for JWKS file \"%V\", its "
                               "keys carry their own", &value[1]);
            return NGX_CONF_ERROR;
        }

        rc = ts_keyset_add_jwks(tlcf->keys, p, n,
                                ngx_http_token_scope_base64url,
                                err, sizeof(err));

    } else {
        rc = ts_keyset_add_pem(tlcf->keys, p, n, (const char *) kid,
                               err, sizeof(err));
    }

    /* an HMAC secret must not linger in a freed pool */
    ngx_explicit_memzero(p, n);

    if (rc != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key file \"%V\": %s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    return ngx_http_token_scope_note_kids(cf, tlcf->keys, from);
}


/*
 * The keys added to a keyset from "from" on, for token_scope_status: the
 * kids of all keysets, listed once each, the number of keys, and the
 * (kid, algorithm) pairs their verifications are counted under.
 */

static char *
ngx_http_token_scope_note_kids(ngx_conf_t *cf, ts_keyset_t *keys,
    size_t from)
{
    size_t                             i, n;
    unsigned                           alg, algs;
    ngx_str_t                         *kid, *known, s;
    ngx_uint_t                         j;
    const char                        *kids[64];
    ngx_http_token_scope_key_label_t  *label;
    ngx_http_token_scope_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_token_scope_module);

    n = ngx_min(ts_keyset_kids(keys, kids, 64), 64);

    for (i = from; i < n; i++) {
        s.data = (u_char *) kids[i];
        s.len = ngx_strlen(kids[i]);

        algs = ts_keyset_algs(keys, i);

        for (alg = 0; algs >> alg; alg++) {
            if (!(algs & (1u << alg))) {
                continue;
            }

            label = tmcf->key_labels.elts;

            for (j = 0; j < tmcf->key_labels.nelts; j++) {
                if (label[j].alg == (ts_alg_e) alg
                    && label[j].kid.len == s.len
                    && ngx_strncmp(label[j].kid.data, s.data, s.len) == 0)
                {
                    break;
                }
            }

            if (j < tmcf->key_labels.nelts) {
                continue;
            }

            label = ngx_array_push(&tmcf->key_labels);
            if (label == NULL) {
                return NGX_CONF_ERROR;
            }

            label->alg = (ts_alg_e) alg;
            label->kid.len = s.len;
            label->kid.data = ngx_pstrdup(cf->pool, &s);
            if (label->kid.data == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        /* keys without a kid: each one counts, none is listed by kid */
        if (s.len == 0) {
            tmcf->nkeys++;
            continue;
        }

        known = tmcf->kids.elts;

        for (j = 0; j < tmcf->kids.nelts; j++) {
            if (known[j].len == s.len
                && ngx_strncmp(known[j].data, s.data, s.len) == 0)
            {
                break;
            }
        }

        if (j < tmcf->kids.nelts) {
            continue;
        }

        tmcf->nkeys++;

        kid = ngx_array_push(&tmcf->kids);
        if (kid == NULL) {
            return NGX_CONF_ERROR;
        }

        /* a copy: the keyset's array moves as it grows */
        kid->len = s.len;
        kid->data = ngx_pstrdup(cf->pool, &s);
        if (kid->data == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_token_scope_service_secrets(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_token_scope_loc_conf_t *tlcf = conf;

    u_char              *p;
    size_t               n;
    ngx_str_t           *value;
    ngx_pool_cleanup_t  *cln;
    char                 err[TS_ERROR_MAX];

    if (tlcf->secrets != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_http_token_scope_where(cf, &tlcf->secrets_at);

    if (ngx_strcmp(value[1].data, "off") == 0) {
        tlcf->secrets = NULL;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "redis") == 0) {
        /* checked in merge: "token_scope_redis" may come later */
        tlcf->secrets = NULL;
        tlcf->secrets_redis = 1;
        return NGX_CONF_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ts_secrets_t));
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(cln->data, sizeof(ts_secrets_t));
    cln->handler = ngx_http_token_scope_cleanup_secrets;

    tlcf->secrets = cln->data;

    p = ngx_http_token_scope_read_file(cf, &value[1], &n);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ts_secrets_load(tlcf->secrets, p, n, err, sizeof(err)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid service secrets file \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A password from the first line of a file, read here, so that "nginx -T"
 * shows the file's name and not the password; it is wiped with the
 * configuration.
 */

ngx_int_t
ngx_http_token_scope_password_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *password)
{
    u_char              *p, *text, *end;
    size_t               len;
    ngx_int_t            rc;
    ngx_pool_cleanup_t  *cln;

    /* the cleanup exists before the copy it wipes */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_token_scope_cleanup_password;
    cln->data = password;

    text = ngx_http_token_scope_read_file(cf, name, &len);
    if (text == NULL) {
        return NGX_ERROR;
    }

    end = text + len;

    for (p = text; p < end && *p != CR && *p != LF; p++) {
        /* void */
    }

    rc = NGX_ERROR;

    if (p == text) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no password in \"%V\"", name);
        goto done;
    }

    password->data = ngx_pnalloc(cf->pool, p - text);
    if (password->data == NULL) {
        goto done;
    }

    password->len = p - text;
    ngx_memcpy(password->data, text, password->len);

    rc = NGX_OK;

done:

    ngx_explicit_memzero(text, len);

    return rc;
}


/*
 * Reads a file named in the configuration whole into cf->temp_pool (a
 * relative name is taken from the configuration's prefix); NULL once the
 * mistake is told
 */

u_char *
ngx_http_token_scope_read_file(ngx_conf_t *cf, ngx_str_t *name, size_t *len)
{
    u_char           *p;
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NULL;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NULL;
    }

    p = NULL;
    n = NGX_ERROR;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" is not a file", name);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_TOKEN_SCOPE_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is larger than %uz bytes", name,
                           (size_t) NGX_HTTP_TOKEN_SCOPE_FILE_MAX);
        goto done;
    }

    p = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    if (p == NULL) {
        goto done;
    }

    n = ngx_read_file(&file, p, ngx_file_size(&fi), 0);

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", name);
    }

    if (n == NGX_ERROR || p == NULL) {
        return NULL;
    }

    *len = n;

    return p;
}


static void
ngx_http_token_scope_cleanup_keys(void *data)
{
    ts_keyset_free(data);
}


static void
ngx_http_token_scope_cleanup_secrets(void *data)
{
    ts_secrets_free(data);
}


static void
ngx_http_token_scope_cleanup_password(void *data)
{
    ngx_str_t  *password = data;

    if (password->len) {
        ngx_explicit_memzero(password->data, password->len);
    }
}
