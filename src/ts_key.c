
/*
 * Verification keys: loaded once from PEM or JWKS at configuration time,
 * each bound to the algorithms its type allows, so a token can never pick
 * how its own signature is checked.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ts_core.h"


#define TS_HMAC_MIN      32
#define TS_HMAC_MAX      512
#define TS_RSA_MIN_BITS  2048
#define TS_JWK_PART_MAX  1024


typedef enum {
    TS_KEY_EC256 = 0,
    TS_KEY_EC384,
    TS_KEY_RSA,
    TS_KEY_ED25519,
    TS_KEY_HMAC
} ts_key_type_e;


struct ts_key_s {
    char                    kid[TS_KID_MAX + 1];
    size_t                  kid_len;
    ts_key_type_e           type;
    ts_alg_e                alg;         /* pinned by a JWK "alg", or 0 */
    EVP_PKEY               *pkey;
    EVP_PKEY_CTX           *verify;      /* EC: ready for EVP_PKEY_verify() */
    EVP_MD                 *md;          /* EC: the digest it signs */
    unsigned char          *secret;
    size_t                  secret_len;
};


static void ts_keyset_fingerprint(ts_keyset_t *ks, const unsigned char *data,
    size_t len, const char *kid);
static ts_key_t *ts_keyset_push(ts_keyset_t *ks, const char *kid,
    size_t kid_len, char *err, size_t errlen);
static int ts_key_set_pkey(ts_key_t *key, EVP_PKEY *pkey, char *err,
    size_t errlen);
static EVP_PKEY *ts_jwk_ec(json_t *jwk, ts_base64url_decode_pt decode,
    char *err, size_t errlen);
static EVP_PKEY *ts_jwk_rsa(json_t *jwk, ts_base64url_decode_pt decode,
    char *err, size_t errlen);
static EVP_PKEY *ts_jwk_okp(json_t *jwk, ts_base64url_decode_pt decode,
    char *err, size_t errlen);
static int ts_jwk_bytes(json_t *jwk, const char *name, unsigned char *buf,
    size_t size, size_t *len, ts_base64url_decode_pt decode);
static EVP_PKEY *ts_pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld);
static int ts_key_pin_alg(ts_key_t *key, const char *name);
static int ts_key_allows(const ts_key_t *key, ts_alg_e alg);
static int ts_verify_hmac(const ts_key_t *key, const EVP_MD *md,
    ts_token_t *tok);
static int ts_verify_pkey(const ts_key_t *key, const EVP_MD *md,
    ts_token_t *tok);
static int ts_ecdsa_raw_to_der(const ts_str_t *raw, size_t half,
    unsigned char *der, size_t *der_len);
static unsigned char *ts_der_integer(unsigned char *p, const unsigned char *n,
    size_t len);


static void
ts_keyset_fingerprint(ts_keyset_t *ks, const unsigned char *data,
    size_t len, const char *kid)
{
    unsigned char  fp[TS_SHA256_LEN];

    if (ts_sha256_pair(ks->fingerprint, TS_SHA256_LEN, data, len, fp) != 0
        || ts_sha256_pair(fp, TS_SHA256_LEN,
                          (const unsigned char *) (kid ? kid : ""),
                          kid ? strlen(kid) : 0, ks->fingerprint)
           != 0)
    {
        /* no key loads without a fingerprint to tell it apart */
        memset(ks->fingerprint, 0xff, TS_SHA256_LEN);
        ks->fingerprint[0] ^= (unsigned char) ks->nkeys;
    }
}


static void
ts_err(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    ERR_clear_error();
}


static ts_key_t *
ts_keyset_push(ts_keyset_t *ks, const char *kid, size_t kid_len, char *err,
    size_t errlen)
{
    size_t     i, n;
    ts_key_t  *keys, *key;

    if (kid_len > TS_KID_MAX) {
        ts_err(err, errlen, "kid is too long");
        return NULL;
    }

    for (i = 0; i < ks->nkeys; i++) {
        if (ks->keys[i].kid_len == kid_len
            && memcmp(ks->keys[i].kid, kid, kid_len) == 0)
        {
            snprintf(err, errlen, "duplicate kid \"%.*s\"", (int) kid_len,
                     kid);
            return NULL;
        }
    }

    if (ks->nkeys == ks->nalloc) {
        n = ks->nalloc ? 2 * ks->nalloc : 4;

        keys = realloc(ks->keys, n * sizeof(ts_key_t));
        if (keys == NULL) {
            ts_err(err, errlen, "out of memory");
            return NULL;
        }

        ks->keys = keys;
        ks->nalloc = n;
    }

    key = &ks->keys[ks->nkeys];
    memset(key, 0, sizeof(ts_key_t));

    memcpy(key->kid, kid, kid_len);
    key->kid_len = kid_len;

    return key;
}


int
ts_keyset_add_pem(ts_keyset_t *ks, const unsigned char *pem, size_t len,
    const char *kid, char *err, size_t errlen)
{
    int        rc;
    BIO       *bio;
    X509      *x509;
    EVP_PKEY  *pkey;
    ts_key_t  *key;

    bio = BIO_new_mem_buf(pem, (int) len);
    if (bio == NULL) {
        ts_err(err, errlen, "out of memory");
        return -1;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);

    if (pkey == NULL) {
        /* a certificate carries the public key just as well */
        (void) BIO_reset(bio);

        x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x509 != NULL) {
            pkey = X509_get_pubkey(x509);
            X509_free(x509);
        }
    }

    BIO_free(bio);

    if (pkey == NULL) {
        ts_err(err, errlen, "no PEM public key or certificate found");
        return -1;
    }

    key = ts_keyset_push(ks, kid ? kid : "", kid ? strlen(kid) : 0, err,
                         errlen);
    if (key == NULL) {
        EVP_PKEY_free(pkey);
        return -1;
    }

    rc = ts_key_set_pkey(key, pkey, err, errlen);
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }

    ks->nkeys++;

    ts_keyset_fingerprint(ks, pem, len, kid);

    return 0;
}


static int
ts_key_set_pkey(ts_key_t *key, EVP_PKEY *pkey, char *err, size_t errlen)
{
    char  group[32];

    switch (EVP_PKEY_get_base_id(pkey)) {

    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_utf8_string_param(pkey,
                                            OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, sizeof(group), NULL))
        {
            ts_err(err, errlen, "EC key without a named curve");
            return -1;
        }

        if (strcmp(group, "prime256v1") == 0) {
            key->type = TS_KEY_EC256;

        } else if (strcmp(group, "secp384r1") == 0) {
            key->type = TS_KEY_EC384;

        } else {
            snprintf(err, errlen, "unsupported EC curve \"%s\"", group);
            return -1;
        }

        /*
         * OpenSSL 3 looks the algorithm up and sets the key up again on
         * every EVP_DigestVerifyInit(): a tenth of an ES256 verification.
         * A context made once here verifies any number of digests.
         */
        key->md = EVP_MD_fetch(NULL, key->type == TS_KEY_EC256 ? "SHA256"
                                                              : "SHA384",
                               NULL);
        key->verify = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

        if (key->md == NULL || key->verify == NULL
            || EVP_PKEY_verify_init(key->verify) != 1)
        {
            EVP_MD_free(key->md);
            EVP_PKEY_CTX_free(key->verify);
            key->md = NULL;
            key->verify = NULL;
            ts_err(err, errlen, "cannot prepare the EC key for verification");
            return -1;
        }

        break;

    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        if (EVP_PKEY_get_bits(pkey) < TS_RSA_MIN_BITS) {
            ts_err(err, errlen, "RSA key shorter than 2048 bits");
            return -1;
        }

        key->type = TS_KEY_RSA;
        break;

    case EVP_PKEY_ED25519:
        key->type = TS_KEY_ED25519;
        break;

    default:
        ts_err(err, errlen, "unsupported key type");
        return -1;
    }

    key->pkey = pkey;

    return 0;
}


int
ts_keyset_add_jwks(ts_keyset_t *ks, const unsigned char *json, size_t len,
    ts_base64url_decode_pt decode, char *err, size_t errlen)
{
    int                   rc;
    size_t                i, klen;
    json_t               *root, *keys, *jwk, *kty, *kid, *alg, *use;
    EVP_PKEY             *pkey;
    ts_key_t             *key;
    const char           *type;
    json_error_t          error;
    const unsigned char  *p;
    unsigned char         secret[TS_HMAC_MAX];

    root = json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES,
                      &error);
    if (root == NULL) {
        snprintf(err, errlen, "invalid JSON at line %d: %s", error.line,
                 error.text);
        return -1;
    }

    rc = -1;
    pkey = NULL;

    keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        ts_err(err, errlen, "no \"keys\" array");
        goto done;
    }

    json_array_foreach(keys, i, jwk) {

        kty = json_object_get(jwk, "kty");
        kid = json_object_get(jwk, "kid");
        alg = json_object_get(jwk, "alg");
        use = json_object_get(jwk, "use");

        if (!json_is_string(kty)
            || (kid != NULL && !json_is_string(kid))
            || (alg != NULL && !json_is_string(alg)))
        {
            snprintf(err, errlen, "key #%zu: invalid \"kty\", \"kid\" or "
                     "\"alg\"", i);
            goto done;
        }

        /* encryption keys in a shared JWKS are not ours to use */
        if (json_is_string(use) && strcmp(json_string_value(use), "sig")) {
            continue;
        }

        type = json_string_value(kty);

        if (strcmp(type, "oct") == 0) {
            if (ts_jwk_bytes(jwk, "k", secret, sizeof(secret), &klen, decode)
                != 0
                || klen < TS_HMAC_MIN)
            {
                snprintf(err, errlen, "key #%zu: HMAC secret \"k\" missing, "
                         "invalid or shorter than %d bytes", i, TS_HMAC_MIN);
                goto done;
            }

        } else if (strcmp(type, "EC") == 0) {
            pkey = ts_jwk_ec(jwk, decode, err, errlen);

        } else if (strcmp(type, "RSA") == 0) {
            pkey = ts_jwk_rsa(jwk, decode, err, errlen);

        } else if (strcmp(type, "OKP") == 0) {
            pkey = ts_jwk_okp(jwk, decode, err, errlen);

        } else {
            snprintf(err, errlen, "key #%zu: unsupported \"kty\" \"%s\"", i,
                     type);
            goto done;
        }

        if (strcmp(type, "oct") != 0 && pkey == NULL) {
            goto done;
        }

        p = kid ? (const unsigned char *) json_string_value(kid)
                : (const unsigned char *) "";

        key = ts_keyset_push(ks, (const char *) p,
                             kid ? json_string_length(kid) : 0, err, errlen);
        if (key == NULL) {
            goto done;
        }

        if (pkey != NULL) {
            if (ts_key_set_pkey(key, pkey, err, errlen) != 0) {
                goto done;
            }

            pkey = NULL;

        } else {
            key->type = TS_KEY_HMAC;
            key->secret = malloc(klen);
            if (key->secret == NULL) {
                ts_err(err, errlen, "out of memory");
                goto done;
            }

            memcpy(key->secret, secret, klen);
            key->secret_len = klen;
        }

        ks->nkeys++;

        if (alg != NULL) {
            key->alg = TS_ALG_UNKNOWN;

            if (ts_key_pin_alg(key, json_string_value(alg)) != 0) {
                snprintf(err, errlen, "key \"%s\": \"alg\" \"%s\" does not "
                         "fit the key", key->kid, json_string_value(alg));
                goto done;
            }
        }
    }

    ts_keyset_fingerprint(ks, json, len, NULL);

    rc = 0;

done:

    OPENSSL_cleanse(secret, sizeof(secret));
    EVP_PKEY_free(pkey);
    json_decref(root);

    return rc;
}


static int
ts_key_pin_alg(ts_key_t *key, const char *name)
{
    ts_alg_e  alg;

    alg = ts_alg_by_name(name);

    if (alg == TS_ALG_UNKNOWN || !ts_key_allows(key, alg)) {
        return -1;
    }

    key->alg = alg;

    return 0;
}


static EVP_PKEY *
ts_jwk_ec(json_t *jwk, ts_base64url_decode_pt decode, char *err,
    size_t errlen)
{
    size_t           half, xlen, ylen;
    json_t          *crv;
    EVP_PKEY        *pkey;
    const char      *group;
    OSSL_PARAM_BLD  *bld;
    unsigned char    point[1 + 2 * 48];

    crv = json_object_get(jwk, "crv");

    if (json_is_string(crv) && strcmp(json_string_value(crv), "P-256") == 0) {
        group = "prime256v1";
        half = 32;

    } else if (json_is_string(crv)
               && strcmp(json_string_value(crv), "P-384") == 0)
    {
        group = "secp384r1";
        half = 48;

    } else {
        ts_err(err, errlen, "EC key: \"crv\" must be \"P-256\" or \"P-384\"");
        return NULL;
    }

    /* an uncompressed point: 0x04 || x || y */
    point[0] = 0x04;

    if (ts_jwk_bytes(jwk, "x", point + 1, half, &xlen, decode) != 0
        || ts_jwk_bytes(jwk, "y", point + 1 + half, half, &ylen, decode) != 0
        || xlen != half || ylen != half)
    {
        ts_err(err, errlen, "EC key: invalid \"x\" or \"y\"");
        return NULL;
    }

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        ts_err(err, errlen, "out of memory");
        return NULL;
    }

    pkey = NULL;

    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        group, 0)
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            point, 1 + 2 * half))
    {
        pkey = ts_pkey_fromdata("EC", bld);
    }

    OSSL_PARAM_BLD_free(bld);

    if (pkey == NULL) {
        ts_err(err, errlen, "EC key: the point is not on the curve");
    }

    return pkey;
}


static EVP_PKEY *
ts_jwk_rsa(json_t *jwk, ts_base64url_decode_pt decode, char *err,
    size_t errlen)
{
    BIGNUM          *n, *e;
    size_t           nlen, elen;
    EVP_PKEY        *pkey;
    OSSL_PARAM_BLD  *bld;
    unsigned char    nbuf[TS_JWK_PART_MAX], ebuf[16];

    if (ts_jwk_bytes(jwk, "n", nbuf, sizeof(nbuf), &nlen, decode) != 0
        || ts_jwk_bytes(jwk, "e", ebuf, sizeof(ebuf), &elen, decode) != 0)
    {
        ts_err(err, errlen, "RSA key: invalid \"n\" or \"e\"");
        return NULL;
    }

    pkey = NULL;
    bld = OSSL_PARAM_BLD_new();
    n = BN_bin2bn(nbuf, (int) nlen, NULL);
    e = BN_bin2bn(ebuf, (int) elen, NULL);

    if (bld != NULL && n != NULL && e != NULL
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n)
        && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
    {
        pkey = ts_pkey_fromdata("RSA", bld);
    }

    BN_free(n);
    BN_free(e);
    OSSL_PARAM_BLD_free(bld);

    if (pkey == NULL) {
        ts_err(err, errlen, "RSA key: cannot build the key");
    }

    return pkey;
}


static EVP_PKEY *
ts_jwk_okp(json_t *jwk, ts_base64url_decode_pt decode, char *err,
    size_t errlen)
{
    size_t          len;
    json_t         *crv;
    EVP_PKEY       *pkey;
    unsigned char   x[32];

    crv = json_object_get(jwk, "crv");

    if (!json_is_string(crv)
        || strcmp(json_string_value(crv), "Ed25519") != 0)
    {
        ts_err(err, errlen, "OKP key: \"crv\" must be \"Ed25519\"");
        return NULL;
    }

    if (ts_jwk_bytes(jwk, "x", x, sizeof(x), &len, decode) != 0
        || len != sizeof(x))
    {
        ts_err(err, errlen, "OKP key: invalid \"x\"");
        return NULL;
    }

    pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, len);
    if (pkey == NULL) {
        ts_err(err, errlen, "OKP key: cannot build the key");
    }

    return pkey;
}


static int
ts_jwk_bytes(json_t *jwk, const char *name, unsigned char *buf, size_t size,
    size_t *len, ts_base64url_decode_pt decode)
{
    size_t       n;
    json_t      *value;
    const char  *s;

    value = json_object_get(jwk, name);
    if (!json_is_string(value)) {
        return -1;
    }

    s = json_string_value(value);
    n = json_string_length(value);

    /* unpadded base64url: every 4 characters are 3 bytes, a tail of k is k-1 */
    if (n == 0 || n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > size
        || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789-_")
           != n)
    {
        return -1;
    }

    return decode(buf, len, (const unsigned char *) s, n);
}


static EVP_PKEY *
ts_pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    int            ok;
    EVP_PKEY      *pkey;
    OSSL_PARAM    *params;
    EVP_PKEY_CTX  *ctx, *check;

    pkey = NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    params = OSSL_PARAM_BLD_to_param(bld);

    if (ctx == NULL || params == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        goto done;
    }

    /* fromdata takes any bytes; a point off the curve must not load */
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    ok = check != NULL && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);

    if (!ok) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:

    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);

    return pkey;
}


void
ts_keyset_free(ts_keyset_t *ks)
{
    size_t  i;

    for (i = 0; i < ks->nkeys; i++) {
        EVP_PKEY_CTX_free(ks->keys[i].verify);
        EVP_MD_free(ks->keys[i].md);
        EVP_PKEY_free(ks->keys[i].pkey);

        if (ks->keys[i].secret != NULL) {
            OPENSSL_cleanse(ks->keys[i].secret, ks->keys[i].secret_len);
            free(ks->keys[i].secret);
        }
    }

    free(ks->keys);

    ks->keys = NULL;
    ks->nkeys = 0;
    ks->nalloc = 0;
}


size_t
ts_keyset_kids(const ts_keyset_t *ks, const char **kids, size_t n)
{
    size_t  i;

    for (i = 0; i < ks->nkeys && i < n; i++) {
        kids[i] = ks->keys[i].kid;
    }

    return ks->nkeys;
}


/* the OpenSSL the process runs with, for the status page */

const char *
ts_openssl_version(void)
{
#ifdef OPENSSL_VERSION_STRING
    return OpenSSL_version(OPENSSL_VERSION_STRING);
#else
    return OpenSSL_version(OPENSSL_VERSION);
#endif
}


/* the algorithms key i may verify, as bits 1 << ts_alg_e */

unsigned
ts_keyset_algs(const ts_keyset_t *ks, size_t i)
{
    unsigned  alg, algs;

    algs = 0;

    if (i >= ks->nkeys) {
        return 0;
    }

    for (alg = TS_ALG_UNKNOWN + 1; alg < TS_ALG_MAX; alg++) {
        if (ts_key_allows(&ks->keys[i], (ts_alg_e) alg)) {
            algs |= 1u << alg;
        }
    }

    return algs;
}


static int
ts_key_allows(const ts_key_t *key, ts_alg_e alg)
{
    if (key->alg != TS_ALG_UNKNOWN && key->alg != alg) {
        return 0;
    }

    switch (key->type) {

    case TS_KEY_EC256:
        return alg == TS_ALG_ES256;

    case TS_KEY_EC384:
        return alg == TS_ALG_ES384;

    case TS_KEY_RSA:
        return alg >= TS_ALG_RS256 && alg <= TS_ALG_PS512;

    case TS_KEY_ED25519:
        return alg == TS_ALG_EDDSA;

    case TS_KEY_HMAC:
        return alg >= TS_ALG_HS256 && alg <= TS_ALG_HS512;
    }

    return 0;
}


/*
 * Picks the key by "kid" (a token without one only when a single key is
 * configured), checks that the key's type allows the token's algorithm,
 * and verifies.  Only an explicit success of the primitive counts.
 */

ts_reason_e
ts_token_verify(const ts_keyset_t *ks, ts_token_t *tok)
{
    int              ok;
    size_t           i;
    const EVP_MD    *md;
    const ts_key_t  *key;

    key = NULL;

    if (tok->kid.len == 0) {
        if (ks->nkeys == 1) {
            key = &ks->keys[0];
        }

    } else {
        for (i = 0; i < ks->nkeys; i++) {
            if (ks->keys[i].kid_len == tok->kid.len
                && memcmp(ks->keys[i].kid, tok->kid.data, tok->kid.len) == 0)
            {
                key = &ks->keys[i];
                break;
            }
        }
    }

    if (key == NULL) {
        tok->error = tok->kid.len ? "unknown kid" : "token has no kid";
        return TS_UNKNOWN_KEY;
    }

    if (!ts_key_allows(key, tok->alg)) {
        tok->error = "algorithm does not match the key";
        return TS_BAD_SIGNATURE;
    }

    switch (tok->alg) {

    case TS_ALG_ES384:
    case TS_ALG_RS384:
    case TS_ALG_PS384:
    case TS_ALG_HS384:
        md = EVP_sha384();
        break;

    case TS_ALG_RS512:
    case TS_ALG_PS512:
    case TS_ALG_HS512:
        md = EVP_sha512();
        break;

    case TS_ALG_EDDSA:
        md = NULL;
        break;

    default:
        md = EVP_sha256();
        break;
    }

    /* a signature is checked: the glue counts it by key and result */
    tok->checked = 1;
    tok->checked_kid = key->kid;

    if (key->type == TS_KEY_HMAC) {
        ok = ts_verify_hmac(key, md, tok);

    } else {
        ok = ts_verify_pkey(key, md, tok);
    }

    /* a failure must not leave errors for another connection's TLS */
    ERR_clear_error();

    if (!ok) {
        tok->error = "signature is invalid";
        return TS_BAD_SIGNATURE;
    }

    return TS_OK;
}


static int
ts_verify_hmac(const ts_key_t *key, const EVP_MD *md, ts_token_t *tok)
{
    unsigned int   len;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    if (HMAC(md, key->secret, (int) key->secret_len, tok->signed_part.data,
             tok->signed_part.len, mac, &len)
        == NULL)
    {
        return 0;
    }

    return tok->signature.len == len
           && CRYPTO_memcmp(mac, tok->signature.data, len) == 0;
}


static int
ts_verify_pkey(const ts_key_t *key, const EVP_MD *md, ts_token_t *tok)
{
    int             ok;
    size_t          len;
    unsigned int    hash_len;
    EVP_MD_CTX     *ctx;
    EVP_PKEY_CTX   *pctx;
    unsigned char   der[2 * 48 + 16];
    unsigned char   hash[EVP_MAX_MD_SIZE];

    if (key->verify != NULL) {
        /* JWS carries r || s, OpenSSL wants DER */
        if (ts_ecdsa_raw_to_der(&tok->signature,
                                key->type == TS_KEY_EC256 ? 32 : 48,
                                der, &len)
            != 0
            || EVP_Digest(tok->signed_part.data, tok->signed_part.len, hash,
                          &hash_len, key->md, NULL)
               != 1)
        {
            return 0;
        }

        return EVP_PKEY_verify(key->verify, der, len, hash, hash_len) == 1;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return 0;
    }

    ok = 0;
    pctx = NULL;

    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key->pkey) != 1) {
        goto done;
    }

    if (tok->alg >= TS_ALG_PS256 && tok->alg <= TS_ALG_PS512
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
               != 1))
    {
        goto done;
    }

    ok = EVP_DigestVerify(ctx, tok->signature.data, tok->signature.len,
                          tok->signed_part.data, tok->signed_part.len)
         == 1;

done:

    EVP_MD_CTX_free(ctx);

    return ok;
}


/*
 * r || s (each half bytes, big-endian) as DER: SEQUENCE { INTEGER r,
 * INTEGER s }.  Both integers in their shortest form, with a zero byte
 * before a high bit; at most 2 + 2 * (2 + 49) bytes, so every length fits
 * in one byte.
 */

static int
ts_ecdsa_raw_to_der(const ts_str_t *raw, size_t half, unsigned char *der,
    size_t *der_len)
{
    unsigned char  *p;

    if (raw->len != 2 * half) {
        return -1;
    }

    p = ts_der_integer(der + 2, raw->data, half);
    p = ts_der_integer(p, raw->data + half, half);

    der[0] = 0x30;
    der[1] = (unsigned char) (p - der - 2);

    *der_len = (size_t) (p - der);

    return 0;
}


static unsigned char *
ts_der_integer(unsigned char *p, const unsigned char *n, size_t len)
{
    while (len > 1 && *n == 0) {
        n++;
        len--;
    }

    *p++ = 0x02;
    *p++ = (unsigned char) (len + (*n >> 7));

    if (*n & 0x80) {
        *p++ = 0;
    }

    memcpy(p, n, len);

    return p + len;
}
