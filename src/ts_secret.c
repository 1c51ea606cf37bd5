
/*
 * Service secrets: which X-Client-Secret values (by SHA-256) each
 * Business Solutions Catalog service may present.  Loaded from a text file
 * of lines "SERVICE-ID HEX-DIGEST [HEX-DIGEST ...]", so that the file
 * holds no secret itself.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ts_core.h"


struct ts_service_s {
    char                    id[TS_SERVICE_ID_MAX + 1];
    size_t                  len;
    unsigned char           digests[TS_SECRETS_PER_SERVICE][TS_SHA256_LEN];
    size_t                  ndigests;
};


static int ts_service_cmp(const void *a, const void *b);
static int ts_equal(const unsigned char *a, const unsigned char *b, size_t len);


int
ts_sha256(const unsigned char *data, size_t len, unsigned char *out)
{
    return ts_sha256_pair(data, len, NULL, 0, out);
}


/*
 * SHA-256 of a || b.  The digest is fetched once per process: OpenSSL 3's
 * implicit fetch behind EVP_sha256() costs more than hashing a token.
 */

static EVP_MD      *ts_sha256_md;
static EVP_MD_CTX  *ts_sha256_ctx;


int
ts_sha256_pair(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen, unsigned char *out)
{
    EVP_MD      *md;
    EVP_MD_CTX  *ctx;

    md = ts_sha256_md;
    ctx = ts_sha256_ctx;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (md == NULL) {
            return -1;
        }

        ts_sha256_md = md;
    }

    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL) {
            return -1;
        }

        ts_sha256_ctx = ctx;
    }

    if (EVP_DigestInit_ex(ctx, md, NULL) != 1
        || EVP_DigestUpdate(ctx, a, alen) != 1
        || (blen && EVP_DigestUpdate(ctx, b, blen) != 1)
        || EVP_DigestFinal_ex(ctx, out, NULL) != 1)
    {
        return -1;
    }

    return 0;
}


/*
 * SHA-256 of salt || data (salt: up to TS_SHA256_LEN bytes), for the data
 * seen last.  Hashing a token of a few hundred bytes is most of what a
 * cached token costs per request, and clients send the same token request
 * after request: comparing it with the one remembered costs a fraction of
 * that.  The comparison takes the same time whatever byte differs, as the
 * tokens remembered are other clients' secrets.  A slot is picked by the
 * last bytes of data (a signature's, for a JWT); data that does not match
 * its slot is hashed and takes the slot.
 */

typedef struct {
    size_t          len;
    size_t          size;
    unsigned char  *data;
    size_t          salt_len;
    unsigned char   salt[TS_SHA256_LEN];
    unsigned char   digest[TS_SHA256_LEN];
} ts_recent_t;

static ts_recent_t  ts_recent[TS_RECENT_SLOTS];


/*
 * Compares in a time that depends on len alone, like CRYPTO_memcmp(), but
 * eight bytes a step: CRYPTO_memcmp() takes one, which is slower than
 * the rest of a cached token's checks.
 */

static int
ts_equal(const unsigned char *a, const unsigned char *b, size_t len)
{
    size_t    i;
    uint64_t  x, y, diff;

    diff = 0;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }

    for ( /* void */ ; i < len; i++) {
        diff |= a[i] ^ b[i];
    }

    return diff == 0;
}


int
ts_sha256_recent(const unsigned char *salt, size_t salt_len,
    const unsigned char *data, size_t len, unsigned char *out)
{
    size_t          i, hash;
    ts_recent_t    *slot;
    unsigned char  *copy;

    hash = len;

    for (i = len < 8 ? 0 : len - 8; i < len; i++) {
        hash = hash * 31 + data[i];
    }

    slot = &ts_recent[hash % TS_RECENT_SLOTS];

    if (slot->data != NULL
        && slot->len == len
        && slot->salt_len == salt_len
        && (salt_len == 0 || memcmp(slot->salt, salt, salt_len) == 0)
        && ts_equal(slot->data, data, len))
    {
        memcpy(out, slot->digest, TS_SHA256_LEN);
        return 0;
    }

    if (ts_sha256_pair(salt, salt_len, data, len, out) != 0) {
        return -1;
    }

    if (len > TS_RECENT_MAX_LEN || salt_len > TS_SHA256_LEN) {
        return 0;
    }

    if (slot->size < len) {
        /* a slot grows to the longest data it held, TS_RECENT_MAX_LEN */
        copy = malloc(len);
        if (copy == NULL) {
            return 0;
        }

        free(slot->data);
        slot->data = copy;
        slot->size = len;
    }

    memcpy(slot->data, data, len);
    slot->len = len;
    if (salt_len) {
        memcpy(slot->salt, salt, salt_len);
    }

    slot->salt_len = salt_len;
    memcpy(slot->digest, out, TS_SHA256_LEN);

    return 0;
}


/* the next ts_sha256_pair() fetches again; the tokens remembered go */

void
ts_sha256_cleanup(void)
{
    size_t  i;

    EVP_MD_CTX_free(ts_sha256_ctx);
    EVP_MD_free(ts_sha256_md);

    ts_sha256_ctx = NULL;
    ts_sha256_md = NULL;

    for (i = 0; i < TS_RECENT_SLOTS; i++) {
        if (ts_recent[i].data != NULL) {
            OPENSSL_cleanse(ts_recent[i].data, ts_recent[i].size);
            free(ts_recent[i].data);
        }
    }

    memset(ts_recent, 0, sizeof(ts_recent));
}


int
ts_secrets_load(ts_secrets_t *secrets, const unsigned char *text,
    size_t len, char *err, size_t errlen)
{
    size_t                line, n, wlen;
    ts_service_t         *s, *services;
    const unsigned char  *p, *end, *eol, *word;

    memset(secrets, 0, sizeof(ts_secrets_t));

    p = text;
    end = text + len;
    line = 0;

    while (p < end) {
        line++;

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
        }

        s = NULL;

        while (p < eol) {
            while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) {
                p++;
            }

            if (p == eol || *p == '#') {
                break;
            }

            word = p;

            while (p < eol && *p != ' ' && *p != '\t' && *p != '\r') {
                p++;
            }

            wlen = p - word;

            if (s == NULL) {
                if (wlen > TS_SERVICE_ID_MAX) {
                    snprintf(err, errlen, "line %zu: service id is longer "
                             "than %d", line, TS_SERVICE_ID_MAX);
                    return -1;
                }

                if (secrets->n == secrets->nalloc) {
                    n = secrets->nalloc ? 2 * secrets->nalloc : 16;

                    services = realloc(secrets->services,
                                       n * sizeof(ts_service_t));
                    if (services == NULL) {
                        snprintf(err, errlen, "out of memory");
                        return -1;
                    }

                    secrets->services = services;
                    secrets->nalloc = n;
                }

                s = &secrets->services[secrets->n++];
                memset(s, 0, sizeof(ts_service_t));
                memcpy(s->id, word, wlen);
                s->len = wlen;
                continue;
            }

            if (s->ndigests == TS_SECRETS_PER_SERVICE) {
                snprintf(err, errlen, "line %zu: more than %d secrets for "
                         "one service", line, TS_SECRETS_PER_SERVICE);
                return -1;
            }

            if (ts_hex_digest((const char *) word, wlen,
                              s->digests[s->ndigests])
                != 0)
            {
                snprintf(err, errlen, "line %zu: \"%.*s\" is not a SHA-256 "
                         "hex digest", line, (int) (wlen > 80 ? 80 : wlen),
                         word);
                return -1;
            }

            s->ndigests++;
        }

        if (s != NULL && s->ndigests == 0) {
            snprintf(err, errlen, "line %zu: service \"%s\" has no secret",
                     line, s->id);
            return -1;
        }

        p = eol + 1;
    }

    if (secrets->n == 0) {
        return 0;
    }

    qsort(secrets->services, secrets->n, sizeof(ts_service_t),
          ts_service_cmp);

    for (n = 1; n < secrets->n; n++) {
        if (ts_service_cmp(&secrets->services[n - 1], &secrets->services[n])
            == 0)
        {
            snprintf(err, errlen, "service \"%s\" is listed twice",
                     secrets->services[n].id);
            return -1;
        }
    }

    return 0;
}


int
ts_hex_digest(const char *p, size_t len, unsigned char *out)
{
    size_t  i;
    int     hi, lo;

    if (len != 2 * TS_SHA256_LEN) {
        return -1;
    }

    for (i = 0; i < TS_SHA256_LEN; i++) {
        hi = OPENSSL_hexchar2int((unsigned char) p[2 * i]);
        lo = OPENSSL_hexchar2int((unsigned char) p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


static int
ts_service_cmp(const void *a, const void *b)
{
    const ts_service_t  *x = a, *y = b;
    int                  rc;

    rc = memcmp(x->id, y->id, x->len < y->len ? x->len : y->len);

    return rc ? rc : (x->len > y->len) - (x->len < y->len);
}


/* whether digest is one of the service's valid secrets */

int
ts_secrets_match(const ts_secrets_t *secrets, const ts_str_t *service,
    const unsigned char *digest)
{
    size_t               i;
    ts_service_t         key;
    const ts_service_t  *s;

    if (digest == NULL || service->len > TS_SERVICE_ID_MAX
        || secrets->n == 0)
    {
        return 0;
    }

    memcpy(key.id, service->data, service->len);
    key.len = service->len;

    s = bsearch(&key, secrets->services, secrets->n, sizeof(ts_service_t),
                ts_service_cmp);
    if (s == NULL) {
        return 0;
    }

    for (i = 0; i < s->ndigests; i++) {
        if (CRYPTO_memcmp(s->digests[i], digest, TS_SHA256_LEN) == 0) {
            return 1;
        }
    }

    return 0;
}


void
ts_secrets_free(ts_secrets_t *secrets)
{
    free(secrets->services);

    secrets->services = NULL;
    secrets->n = 0;
    secrets->nalloc = 0;
}
