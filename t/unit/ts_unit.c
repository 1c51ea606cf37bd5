
/*
 * Unit tests of the token scope core, without nginx: real keys made with
 * OpenSSL, real tokens signed here, TAP on stdout for prove.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "ts_core.h"


#define TOKEN_MAX  8192


static int  tests;
static int  failed;


static void
ok(int cond, const char *name)
{
    tests++;

    if (!cond) {
        failed++;
    }

    printf("%sok %d - %s\n", cond ? "" : "not ", tests, name);
}


static const char  b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


static size_t
encode(char *dst, const unsigned char *src, size_t len)
{
    size_t    i, n;
    uint32_t  v;

    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        dst[n++] = b64url[v >> 18];
        dst[n++] = b64url[(v >> 12) & 63];
        dst[n++] = b64url[(v >> 6) & 63];
        dst[n++] = b64url[v & 63];
    }

    if (len - i == 1) {
        v = (uint32_t) src[i] << 16;
        dst[n++] = b64url[v >> 18];
        dst[n++] = b64url[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        dst[n++] = b64url[v >> 18];
        dst[n++] = b64url[(v >> 12) & 63];
        dst[n++] = b64url[(v >> 6) & 63];
    }

    dst[n] = '\0';

    return n;
}


/* the core checks the alphabet before it calls the decoder */

static int
decode(unsigned char *dst, size_t *dst_len, const unsigned char *src,
    size_t len)
{
    size_t    i, n, bits;
    uint32_t  acc;

    n = 0;
    acc = 0;
    bits = 0;

    for (i = 0; i < len; i++) {
        acc = acc << 6 | (uint32_t) (strchr(b64url, src[i]) - b64url);
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char) (acc >> bits);
        }
    }

    *dst_len = n;

    return 0;
}


/* "header.payload" of two JSON texts, signed by sign() below */

static size_t
unsigned_token(char *buf, const char *header, const char *payload)
{
    size_t  n;

    n = encode(buf, (const unsigned char *) header, strlen(header));
    buf[n++] = '.';
    n += encode(buf + n, (const unsigned char *) payload, strlen(payload));

    return n;
}


static void
append_sig(char *buf, size_t n, const unsigned char *sig, size_t len)
{
    buf[n++] = '.';
    encode(buf + n, sig, len);
}


/* r || s of the last signature sign_es256() made */
static unsigned char  es256_raw[64];


static void
sign_es256(char *buf, const char *header, const char *payload,
    EVP_PKEY *pkey, int der)
{
    size_t          n, len;
    EVP_MD_CTX     *ctx;
    ECDSA_SIG      *sig;
    const BIGNUM   *r, *s;
    unsigned char   out[128], *raw;
    const unsigned char  *p;

    n = unsigned_token(buf, header, payload);

    ctx = EVP_MD_CTX_new();
    len = sizeof(out);
    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey);
    EVP_DigestSign(ctx, out, &len, (unsigned char *) buf, n);
    EVP_MD_CTX_free(ctx);

    if (der) {
        append_sig(buf, n, out, len);
        return;
    }

    raw = es256_raw;
    p = out;
    sig = d2i_ECDSA_SIG(NULL, &p, (long) len);
    ECDSA_SIG_get0(sig, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(sig);

    append_sig(buf, n, raw, 64);
}


static void
sign_hs256(char *buf, const char *header, const char *payload,
    const unsigned char *key, size_t key_len)
{
    size_t         n;
    unsigned int   len;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    n = unsigned_token(buf, header, payload);
    HMAC(EVP_sha256(), key, (int) key_len, (unsigned char *) buf, n, mac,
         &len);
    append_sig(buf, n, mac, len);
}


/* cats: the scope names "scope", "scp" and "scopes" grant, or NULL */

static ts_reason_e
parse_with(ts_token_t *tok, const char *token, const ts_categories_t *cats)
{
    static unsigned char  buf[TS_TOKEN_BUF_SIZE(TOKEN_MAX)];

    return ts_token_parse(tok, (const unsigned char *) token, strlen(token),
                          buf, decode, cats);
}


static ts_reason_e
parse(ts_token_t *tok, const char *token)
{
    return parse_with(tok, token, NULL);
}


static ts_reason_e
parse_claims_with(ts_token_t *tok, const char *payload,
    const ts_categories_t *cats)
{
    static char  token[TOKEN_MAX];
    size_t       n;

    n = unsigned_token(token, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload);
    strcpy(token + n, ".AAAA");

    return parse_with(tok, token, cats);
}


static ts_reason_e
parse_claims(ts_token_t *tok, const char *payload)
{
    return parse_claims_with(tok, payload, NULL);
}


static ts_reason_e
check(const ts_keyset_t *ks, const char *token)
{
    ts_token_t   tok;
    ts_reason_e  rc;

    rc = parse(&tok, token);
    if (rc != TS_OK) {
        return rc;
    }

    return ts_token_verify(ks, &tok);
}


static size_t
pem_of(EVP_PKEY *pkey, char *buf, size_t size)
{
    BIO     *bio;
    size_t   n;

    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey);
    n = (size_t) BIO_read(bio, buf, (int) size);
    BIO_free(bio);

    return n;
}


static void
test_parse(void)
{
    size_t       n;
    ts_token_t   tok;
    char         token[TOKEN_MAX];

    ok(parse_claims(&tok, "{\"exp\":2000000000,\"s\":1073741840,\"acc\":1,"
                    "\"id\":\"abc\",\"sid\":\"seller\",\"oid\":7}") == TS_OK
       && tok.exp == 2000000000 && tok.scope == 1073741840
       && tok.type == TS_TYPE_BASE && tok.id.len == 3
       && memcmp(tok.sid.data, "seller", 6) == 0 && tok.oid == 7
       && tok.kid.len == 2 && tok.alg == TS_ALG_ES256,
       "claims of a base token are parsed");

    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":4,\"for\":\"asid:svc-1\"}")
       == TS_OK && tok.type == TS_TYPE_SERVICE
       && tok.service.len == 5 && memcmp(tok.service.data, "svc-1", 5) == 0,
       "a service token names its service");

    ok(parse_claims(&tok, "{\"exp\":1,\"sandbox\":true}") == TS_OK
       && tok.test && tok.type == TS_TYPE_LEGACY,
       "the obsolete sandbox claim marks a test token");

    ok(parse_claims(&tok, "{\"s\":1}") == TS_MALFORMED,
       "a token without exp is malformed");
    ok(parse_claims(&tok, "{\"exp\":1.5}") == TS_MALFORMED,
       "a fractional exp is malformed");
    ok(parse_claims(&tok, "{\"exp\":\"1\"}") == TS_MALFORMED,
       "a string exp is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"exp\":2}") == TS_MALFORMED,
       "duplicate claims are malformed");

    /* Jansson would read "7\0}" as "7}": JSON has no raw NUL anywhere */
    n = encode(token, (const unsigned char *) "{\"alg\":\"ES256\"}",
               sizeof("{\"alg\":\"ES256\"}") - 1);
    token[n++] = '.';
    n += encode(token + n, (const unsigned char *) "{\"exp\":1,\"oid\":7\0}",
                sizeof("{\"exp\":1,\"oid\":7\0}") - 1);
    strcpy(token + n, ".AAAA");
    ok(parse(&tok, token) == TS_MALFORMED,
       "a raw NUL byte after a number in the payload is malformed");

    ok(parse_claims(&tok, "{\"exp\":1,\"s\":-1}") == TS_MALFORMED,
       "a negative s is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"s\":18446744073709551616}")
       == TS_MALFORMED, "an s past 64 bits is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"t\":1}") == TS_MALFORMED,
       "a non-boolean t is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":4,\"for\":\"self\"}")
       == TS_MALFORMED, "a service token without asid is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":2}") == TS_MALFORMED,
       "a test token without t is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":3,\"for\":\"asid:1\"}")
       == TS_MALFORMED, "a personal token for a service is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":9}") == TS_MALFORMED,
       "an unknown acc is malformed");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":5}") == TS_MALFORMED
       && strstr(tok.error, "acc") != NULL,
       "acc 5 (secret, an opaque kind) is malformed in a JWT");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":6}") == TS_MALFORMED
       && strstr(tok.error, "acc") != NULL,
       "acc 6 (public, an opaque kind) is malformed in a JWT");
    ok(parse_claims(&tok, "{\"exp\":1,\"acc\":0}") == TS_MALFORMED,
       "acc 0 is malformed");
    ok(parse_claims(&tok, "{\"accessID\":\"x\",\"exp\":1}") == TS_MALFORMED,
       "a legacy accessID token is refused");
    ok(parse_claims(&tok, "[1]") == TS_MALFORMED,
       "a payload that is no object is malformed");

    ok(parse(&tok, "a.b") == TS_MALFORMED, "two segments are malformed");
    ok(parse(&tok, "a.b.c.d") == TS_MALFORMED, "four segments are malformed");
    ok(parse(&tok, ".eyJ9.") == TS_MALFORMED, "an empty header is malformed");
    ok(parse(&tok, "eyJ9=.eyJ9.") == TS_MALFORMED, "padding is malformed");
    ok(parse(&tok, "ey J9.eyJ9.") == TS_MALFORMED,
       "a space is malformed");
    ok(parse(&tok, "eyJhbGciOiJFUzI1NiJ9A.e30.AAAA") == TS_MALFORMED,
       "an impossible base64url length is malformed");

    unsigned_token(token, "{\"alg\":\"none\"}", "{\"exp\":9999999999}");
    strcat(token, ".");
    ok(parse(&tok, token) == TS_BAD_SIGNATURE, "alg none is refused");

    unsigned_token(token, "{\"alg\":\"ES256\",\"crit\":[\"b64\"]}",
                   "{\"exp\":9999999999}");
    strcat(token, ".AAAA");
    ok(parse(&tok, token) == TS_MALFORMED, "a crit header is refused");

    unsigned_token(token, "{\"kid\":\"a\"}", "{\"exp\":9999999999}");
    strcat(token, ".AAAA");
    ok(parse(&tok, token) == TS_MALFORMED, "a header without alg is refused");
}


static void
test_time(void)
{
    ts_token_t  tok;

    memset(&tok, 0, sizeof(tok));
    tok.exp = 1000;

    ok(ts_token_check_time(&tok, 999, 0) == TS_OK, "before exp is valid");
    ok(ts_token_check_time(&tok, 1000, 0) == TS_EXPIRED, "at exp expired");
    ok(ts_token_check_time(&tok, 1010, 30) == TS_OK,
       "leeway extends exp");

    tok.has_nbf = 1;
    tok.nbf = 900;
    ok(ts_token_check_time(&tok, 800, 0) == TS_NOT_YET_VALID,
       "before nbf is not yet valid");
    ok(ts_token_check_time(&tok, 800, 100) == TS_OK, "leeway covers nbf");

    tok.has_nbf = 0;
    tok.has_iat = 1;
    tok.iat = 950;
    ok(ts_token_check_time(&tok, 900, 10) == TS_NOT_YET_VALID,
       "an iat in the future is not yet valid");

    memset(&tok, 0, sizeof(tok));
    tok.opaque = 1;
    tok.no_exp = 1;
    ok(ts_token_check_time(&tok, 2000000000, 0) == TS_OK,
       "a token without an end does not expire");

    tok.no_exp = 0;
    ok(ts_token_check_time(&tok, 2000000000, 0) == TS_EXPIRED,
       "exp 0 without no_exp has expired");

    tok.no_exp = 1;
    tok.has_nbf = 1;
    tok.nbf = 2000000100;
    ok(ts_token_check_time(&tok, 2000000000, 10) == TS_NOT_YET_VALID,
       "no_exp skips only the exp check");
}


static void
test_is_jwt(void)
{
#define is_jwt(s)  ts_token_is_jwt((const unsigned char *) s, strlen(s))

    ok(is_jwt("eyJ9.eyJ9.AAAA") && is_jwt(".") && is_jwt("abc."),
       "a token with a dot is a JWT");
    ok(!is_jwt("secret_4f2a9c") && !is_jwt(""),
       "a token without a dot is opaque");
    ok(!ts_token_is_jwt((const unsigned char *) "public_ab.c", 9),
       "a dot past the length does not count");

#undef is_jwt
}


static void
test_verify(void)
{
    int            rc;
    char           pem[4096], jwks[4096], token[TOKEN_MAX], err[256];
    char           x[64], y[64];
    size_t         n, xlen, ylen;
    EVP_PKEY      *pkey, *other;
    ts_token_t     vt;
    ts_keyset_t    ks, ks2, hks;
    unsigned char  pub[65];
    static const unsigned char  secret[] =
        "0123456789abcdef0123456789abcdef";

    const char  *header = "{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    const char  *claims = "{\"exp\":9999999999,\"s\":16}";

    pkey = EVP_EC_gen("P-256");
    other = EVP_EC_gen("P-256");

    memset(&ks, 0, sizeof(ks));
    n = pem_of(pkey, pem, sizeof(pem));
    ok(ts_keyset_add_pem(&ks, (unsigned char *) pem, n, "k1", err,
                         sizeof(err)) == 0, "a PEM P-256 key loads");

    ok(ts_keyset_add_pem(&ks, (unsigned char *) pem, n, "k1", err,
                         sizeof(err)) != 0 && strstr(err, "duplicate"),
       "a duplicate kid is refused");

    ok(ts_keyset_add_pem(&ks, (unsigned char *) "junk", 4, "k2", err,
                         sizeof(err)) != 0, "junk is not a PEM key");

    sign_es256(token, header, claims, pkey, 0);
    ok(check(&ks, token) == TS_OK, "a valid ES256 token verifies");

    n = strlen(token) - 10;
    token[n] = token[n] == 'A' ? 'B' : 'A';
    ok(check(&ks, token) == TS_BAD_SIGNATURE, "a changed signature fails");

    sign_es256(token, header, claims, pkey, 0);
    n = strlen(token) - 1;
    token[n] = token[n] == 'A' ? 'B' : token[n] + 1;
    ok(check(&ks, token) == TS_MALFORMED,
       "a signature with unused bits set is malformed");

    sign_es256(token, header, claims, pkey, 1);
    ok(check(&ks, token) == TS_BAD_SIGNATURE, "a DER signature fails");

    sign_es256(token, header, claims, other, 0);
    ok(check(&ks, token) == TS_BAD_SIGNATURE, "another key's signature fails");

    sign_es256(token, "{\"alg\":\"ES256\",\"kid\":\"k9\"}", claims, pkey, 0);
    ok(check(&ks, token) == TS_UNKNOWN_KEY, "an unknown kid is refused");

    ok(ts_keyset_algs(&ks, 0) == 1u << TS_ALG_ES256
       && ts_keyset_algs(&ks, 1) == 0,
       "a P-256 key verifies ES256 only; no key, no algorithm");
    ok(strcmp(ts_alg_name(TS_ALG_EDDSA), "EdDSA") == 0
       && strcmp(ts_alg_name(TS_ALG_UNKNOWN), "unknown") == 0,
       "algorithms are named as in a JWT header");

    sign_es256(token, header, claims, pkey, 0);
    ok(parse(&vt, token) == TS_OK && ts_token_verify(&ks, &vt) == TS_OK
       && vt.checked && strcmp(vt.checked_kid, "k1") == 0,
       "a verified token says which key checked it");

    sign_es256(token, "{\"alg\":\"ES256\",\"kid\":\"k9\"}", claims, pkey, 0);
    ok(parse(&vt, token) == TS_OK
       && ts_token_verify(&ks, &vt) == TS_UNKNOWN_KEY && !vt.checked,
       "an unknown kid checks no signature");

    sign_hs256(token, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", claims,
               secret, sizeof(secret) - 1);
    ok(parse(&vt, token) == TS_OK
       && ts_token_verify(&ks, &vt) == TS_BAD_SIGNATURE && !vt.checked,
       "an algorithm the key does not allow checks no signature");

    sign_es256(token, "{\"alg\":\"ES256\"}", claims, pkey, 0);
    ok(check(&ks, token) == TS_OK, "no kid is fine with one key");

    sign_hs256(token, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", claims,
               (unsigned char *) pem, n);
    ok(check(&ks, token) == TS_BAD_SIGNATURE,
       "HS256 signed with the public key is refused");

    /* the same key as a JWK */
    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                    sizeof(pub), &n);
    xlen = encode(x, pub + 1, 32);
    ylen = encode(y, pub + 33, 32);

    snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
             "\"kid\":\"j1\",\"x\":\"%.*s\",\"y\":\"%.*s\"},"
             "{\"kty\":\"oct\",\"kid\":\"h1\",\"alg\":\"HS256\",\"k\":"
             "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
             (int) xlen, x, (int) ylen, y);

    memset(&ks2, 0, sizeof(ks2));
    rc = ts_keyset_add_jwks(&ks2, (unsigned char *) jwks, strlen(jwks),
                            decode, err, sizeof(err));
    ok(rc == 0 && ks2.nkeys == 2, "a JWKS with an EC and an oct key loads");

    sign_es256(token, "{\"alg\":\"ES256\",\"kid\":\"j1\"}", claims, pkey, 0);
    ok(check(&ks2, token) == TS_OK, "a JWK EC key verifies");

    sign_hs256(token, "{\"alg\":\"HS256\",\"kid\":\"h1\"}", claims, secret,
               32);
    ok(check(&ks2, token) == TS_OK, "an oct key verifies HS256");

    sign_hs256(token, "{\"alg\":\"HS384\",\"kid\":\"h1\"}", claims, secret,
               32);
    ok(check(&ks2, token) == TS_BAD_SIGNATURE,
       "an alg pinned by the JWK holds");

    sign_es256(token, "{\"alg\":\"ES256\"}", claims, pkey, 0);
    ok(check(&ks2, token) == TS_UNKNOWN_KEY,
       "no kid is refused with two keys");

    /* a point off the curve */
    y[0] = y[0] == 'A' ? 'B' : 'A';
    snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
             "\"kid\":\"j1\",\"x\":\"%.*s\",\"y\":\"%.*s\"}]}",
             (int) xlen, x, (int) ylen, y);

    memset(&hks, 0, sizeof(hks));
    ok(ts_keyset_add_jwks(&hks, (unsigned char *) jwks, strlen(jwks),
                          decode, err, sizeof(err)) != 0,
       "an EC point off the curve is refused");

    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}");
    ok(ts_keyset_add_jwks(&hks, (unsigned char *) jwks, strlen(jwks),
                          decode, err, sizeof(err)) != 0,
       "a short HMAC secret is refused");

    ts_keyset_free(&hks);
    ts_keyset_free(&ks2);
    ts_keyset_free(&ks);
    EVP_PKEY_free(other);
    EVP_PKEY_free(pkey);
}


/* the digest that keys cached grants changes with what any name means */

static void
test_categories_digest(void)
{
    char             err[256];
    ts_categories_t  a, b;
    unsigned char    da[TS_SHA256_LEN], db[TS_SHA256_LEN];

    ts_categories_init(&a);
    ts_categories_init(&b);

    ok(ts_categories_digest(&a, da) == 0 && ts_categories_digest(&b, db) == 0
       && memcmp(da, db, TS_SHA256_LEN) == 0,
       "equal tables have equal digests");

    (void) ts_categories_add_name(&a, "read_catalog", 12, err, sizeof(err));
    (void) ts_categories_add_name(&a, "update_catalog", 14, err, sizeof(err));
    (void) ts_categories_add_name(&b, "update_catalog", 14, err, sizeof(err));
    (void) ts_categories_add_name(&b, "read_catalog", 12, err, sizeof(err));
    (void) ts_categories_digest(&a, da);
    (void) ts_categories_digest(&b, db);

    ok(memcmp(da, db, TS_SHA256_LEN) != 0,
       "scope names declared in another order give another digest");

    ts_categories_init(&a);
    ts_categories_init(&b);
    (void) ts_categories_add(&a, "loyalty", 7, 20, err, sizeof(err));
    (void) ts_categories_add(&b, "loyalty", 7, 21, err, sizeof(err));
    (void) ts_categories_digest(&a, da);
    (void) ts_categories_digest(&b, db);

    ok(memcmp(da, db, TS_SHA256_LEN) != 0,
       "a category on another bit gives another digest");
}


static void
test_categories(void)
{
    char             buf[256], err[256];
    size_t           n;
    ts_str_t         bad;
    ts_required_t    req;
    ts_categories_t  cats;

    ts_categories_init(&cats);

    ok(ts_categories_parse(&cats, (unsigned char *) "marketplace, analytics",
                           22, &req, &bad) == 0
       && req.categories == ((1 << 4) | (1 << 2)) && req.names == 0
       && !req.common,
       "names and aliases parse into bits");

    ok(ts_categories_parse(&cats, (unsigned char *) "all", 3, &req, &bad)
       == 0 && req.categories == 0 && req.names == 0 && req.common,
       "all needs no bit");

    ok(ts_categories_parse(&cats, (unsigned char *) "content nope", 12,
                           &req, &bad) != 0
       && bad.len == 4 && memcmp(bad.data, "nope", 4) == 0,
       "an unknown name is reported");

    ok(ts_categories_parse(&cats, (unsigned char *) " , ", 3, &req, &bad)
       != 0, "an empty list is refused");

    ok(ts_categories_add(&cats, "loyalty", 7, 20, err, sizeof(err)) == 0
       && ts_categories_find(&cats, "loyalty", 7)->bit == 20,
       "a category can be added");

    ok(ts_categories_add(&cats, "x", 1, 30, err, sizeof(err)) != 0,
       "bit 30 is not a category");
    ok(ts_categories_add(&cats, "x", 1, 63, err, sizeof(err)) != 0,
       "bit 63 is out of range");
    ok(ts_categories_add(&cats, "all", 3, 5, err, sizeof(err)) != 0,
       "all cannot be redefined");
    ok(ts_categories_add(&cats, "Bad", 3, 5, err, sizeof(err)) != 0,
       "upper case names are refused");

    n = ts_categories_format(&cats, (1 << 4) | (1 << 5) | (1u << 30)
                             | ((uint64_t) 1 << 40), 0, ',', buf,
                             sizeof(buf));
    ok(n == strlen("marketplace,statistics,bit40")
       && memcmp(buf, "marketplace,statistics,bit40", n) == 0,
       "masks format as names without the read-only bit");

    test_categories_digest();
}


/* the categories and two named scopes, "read_catalog" and "write_orders" */

static void
names_init(ts_categories_t *cats)
{
    char  err[256];

    ts_categories_init(cats);

    (void) ts_categories_add_name(cats, "read_catalog", 12, err, sizeof(err));
    (void) ts_categories_add_name(cats, "write_orders", 12, err, sizeof(err));
}


static void
test_names(void)
{
    char                  buf[256], err[256], name[16];
    size_t                i, n;
    uint64_t              categories, names;
    ts_str_t              bad;
    ts_required_t         req;
    ts_categories_t       cats;
    const ts_category_t  *c;

    ts_categories_init(&cats);

    ok(cats.nnames == 0, "no scope names at first");

    ok(ts_categories_add_name(&cats, "read_catalog", 12, err, sizeof(err))
       == 0
       && ts_categories_add_name(&cats, "orders:write", 12, err, sizeof(err))
          == 0
       && cats.nnames == 2,
       "scope names can be declared");

    c = ts_categories_find(&cats, "read_catalog", 12);
    ok(c != NULL && c->named && !c->common && !c->alias && c->bit == 0
       && ts_categories_find(&cats, "orders:write", 12)->bit == 1,
       "scope names take the bits of the names mask in order");

    ok(ts_categories_add_name(&cats, "read_catalog", 12, err, sizeof(err))
       == 0 && cats.nnames == 2
       && ts_categories_find(&cats, "read_catalog", 12)->bit == 0,
       "a scope name declared again keeps its bit");

    ok(ts_categories_add_name(&cats, "marketplace", 11, err, sizeof(err))
       != 0 && strstr(err, "category") != NULL,
       "a category is no scope name");
    ok(ts_categories_add_name(&cats, "analytics", 9, err, sizeof(err)) != 0,
       "an alias of a category is no scope name");
    ok(ts_categories_add_name(&cats, "all", 3, err, sizeof(err)) != 0,
       "all is no scope name");
    ok(ts_categories_add(&cats, "read_catalog", 12, 20, err, sizeof(err))
       != 0 && ts_categories_find(&cats, "read_catalog", 12)->named,
       "a scope name cannot become a category");

    ok(ts_categories_add_name(&cats, "a b", 3, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "a,b", 3, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "a\"b", 3, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "a\\b", 3, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "a\tb", 3, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "a\x7f", 2, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "\xc3\xa9", 2, err, sizeof(err))
          != 0,
       "spaces, commas, quotes, backslashes and non-ASCII are refused");
    ok(ts_categories_add_name(&cats, "", 0, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "0123456789012345678901234567890x",
                                 32, err, sizeof(err)) != 0,
       "an empty or a 32-character scope name is refused");
    ok(cats.nnames == 2, "refused scope names take no bit");

    ts_categories_init(&cats);

    for (i = 0; i < TS_NAMES_MAX; i++) {
        n = (size_t) snprintf(name, sizeof(name), "scope%u", (unsigned) i);
        if (ts_categories_add_name(&cats, name, n, err, sizeof(err)) != 0) {
            break;
        }
    }

    ok(i == TS_NAMES_MAX && cats.nnames == TS_NAMES_MAX
       && ts_categories_find(&cats, "scope63", 7)->bit == 63,
       "64 scope names can be declared");
    ok(ts_categories_add_name(&cats, "scope64", 7, err, sizeof(err)) != 0
       && strstr(err, "too many") != NULL && cats.nnames == TS_NAMES_MAX,
       "the 65th scope name is refused");
    ok(ts_categories_add_name(&cats, "scope0", 6, err, sizeof(err)) == 0,
       "a declared name is still accepted when the table is full");

    names_init(&cats);

    ok(ts_categories_parse(&cats,
                           (unsigned char *) "marketplace write_orders,"
                           "analytics read_catalog", 47, &req, &bad) == 0
       && req.categories == ((1 << 4) | (1 << 2)) && req.names == 3
       && !req.common,
       "categories and scope names parse into their own masks");
    ok(ts_categories_parse(&cats, (unsigned char *) "write_orders", 12, &req,
                           &bad) == 0
       && req.categories == 0 && req.names == 2 && !req.common,
       "a scope name alone needs no category");
    ok(ts_categories_parse(&cats, (unsigned char *) "all read_catalog", 16,
                           &req, &bad) == 0
       && req.common && req.names == 1 && req.categories == 0,
       "all and a scope name parse together");
    ok(ts_categories_parse(&cats, (unsigned char *) "read_catalog read_x",
                           19, &req, &bad) != 0
       && bad.len == 6 && memcmp(bad.data, "read_x", 6) == 0,
       "an undeclared scope name is reported");

    categories = 0;
    names = 0;
    ts_categories_grant(&cats, (unsigned char *) "nope read_catalog,"
                        "marketplace all,prices unknown:scope", 54,
                        &categories, &names);
    ok(categories == ((1 << 4) | (1 << 3)) && names == 1,
       "a grant maps categories and scope names, ignoring unknown ones");

    names = 0;
    ts_categories_grant(&cats, (unsigned char *) "marketplace write_orders",
                        24, NULL, &names);
    ok(names == 2, "without a categories mask only scope names are granted");

    categories = 0;
    names = 0;
    ts_categories_grant(&cats, (unsigned char *) "nope, ,all", 10,
                        &categories, &names);
    ok(categories == 0 && names == 0, "unknown names and all grant nothing");

    ts_categories_grant(&cats, (unsigned char *) "", 0, &categories, &names);
    ok(categories == 0 && names == 0, "an empty list grants nothing");

    n = ts_categories_format(&cats, (1 << 4) | TS_READONLY_MASK,
                             3 | ((uint64_t) 1 << 5), ',', buf, sizeof(buf));
    ok(n == strlen("marketplace,read_catalog,write_orders,bit5")
       && memcmp(buf, "marketplace,read_catalog,write_orders,bit5", n) == 0,
       "categories format first, then scope names");

    n = ts_categories_format(&cats, 0, 2, ' ', buf, sizeof(buf));
    ok(n == strlen("write_orders") && memcmp(buf, "write_orders", n) == 0,
       "scope names format alone");

    n = ts_categories_format(&cats, 1, 1, ' ', buf, sizeof(buf));
    ok(n == strlen("bit0 read_catalog")
       && memcmp(buf, "bit0 read_catalog", n) == 0,
       "bit 0 of the categories is not the scope of bit 0 of names");

    n = ts_categories_format(&cats, 0, 0, ',', buf, sizeof(buf));
    ok(n == 0, "nothing formats as nothing");

    n = ts_categories_format(&cats, 1 << 4, 3, ',', buf, 20);
    ok(n < 20 && strncmp(buf, "marketplace", 11) == 0,
       "a short buffer is not overrun");
}


/* named scopes from the "scope", "scp" and "scopes" claims of a JWT */

static void
test_scope_claims(void)
{
    ts_token_t       tok;
    ts_categories_t  cats, plain;

    names_init(&cats);
    ts_categories_init(&plain);

    ok(parse_claims_with(&tok, "{\"exp\":1,\"acc\":1,"
                         "\"scope\":\"read_catalog write_orders nope\"}",
                         &cats) == TS_OK && tok.names == 3,
       "a scope string grants the names it lists");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"marketplace "
                         "read_catalog\"}", &cats) == TS_OK
       && tok.names == 1 && tok.scope == 0,
       "a category in scope grants no category");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scp\":[\"write_orders\","
                         "\"nope\"]}", &cats) == TS_OK && tok.names == 2,
       "an scp array grants the names it lists");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scopes\":[\"read_catalog\","
                         "\"write_orders\"]}", &cats) == TS_OK
       && tok.names == 3,
       "a scopes array grants the names it lists");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scp\":\"write_orders\"}", &cats)
       == TS_OK && tok.names == 2
       && parse_claims_with(&tok, "{\"exp\":1,\"scopes\":\"read_catalog\"}",
                            &cats) == TS_OK && tok.names == 1,
       "scp and scopes may be strings");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"read_catalog\","
                         "\"scp\":[\"write_orders\"]}", &cats) == TS_OK
       && tok.names == 3,
       "scope and scp add up");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scp\":[],\"scope\":\"\"}",
                         &cats) == TS_OK && tok.names == 0,
       "empty scopes grant nothing");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scp\":[\"read_catalog "
                         "write_orders\"]}", &cats) == TS_OK
       && tok.names == 3,
       "an array item is a list too");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"read_catalog\\u0000x"
                         "\"}", &cats) == TS_MALFORMED,
       "a scope with a NUL in it is malformed");

    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":5}", &cats)
       == TS_MALFORMED && strstr(tok.error, "scope") != NULL,
       "a number scope is malformed");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scp\":[\"read_catalog\",1]}",
                         &cats) == TS_MALFORMED,
       "an scp array with a number is malformed");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scopes\":[[\"read_catalog\"]]}",
                         &cats) == TS_MALFORMED,
       "a nested scopes array is malformed");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":null}", &cats)
       == TS_MALFORMED
       && parse_claims_with(&tok, "{\"exp\":1,\"scp\":true}", &cats)
          == TS_MALFORMED
       && parse_claims_with(&tok, "{\"exp\":1,\"scopes\":{\"a\":1}}", &cats)
          == TS_MALFORMED,
       "a null, boolean or object scope is malformed");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"a\",\"scope\":\"b\"}",
                         &cats) == TS_MALFORMED,
       "a duplicate scope is malformed");

    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"read_catalog\","
                         "\"scp\":5}", NULL) == TS_OK && tok.names == 0,
       "scope claims are ignored without a name table");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"scope\":\"marketplace\","
                         "\"scopes\":[1]}", &plain) == TS_OK
       && tok.names == 0 && tok.scope == 0,
       "scope claims are ignored without declared scope names");
    ok(parse_claims_with(&tok, "{\"exp\":1,\"acc\":1,\"s\":16,"
                         "\"scp\":[\"read_catalog\"]}", &cats) == TS_OK
       && tok.scope == 16 && tok.names == 1 && tok.type == TS_TYPE_BASE,
       "s and scp are parsed side by side");
}


static void
test_decide(void)
{
    ts_token_t     tok;
    ts_policy_t    policy;
    ts_required_t  missing;

    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));

    tok.type = TS_TYPE_BASE;
    tok.scope = (1 << 4) | TS_READONLY_MASK;
    policy.required.categories = 1 << 4;
    policy.legacy = 1;

    ok(ts_decide(&policy, &tok, &missing) == TS_OK, "a granted read passes");

    policy.write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_READ_ONLY,
       "a read-only token cannot write");

    policy.write = 0;
    policy.required.categories = (1 << 4) | (1 << 5);
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.categories == (1 << 5) && missing.names == 0,
       "a missing category is named");

    policy.required.categories = 0;
    policy.sandbox = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_ENVIRONMENT,
       "sandbox refuses production tokens");

    tok.test = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "sandbox takes test tokens");

    policy.sandbox = 0;
    ok(ts_decide(&policy, &tok, &missing) == TS_ENVIRONMENT,
       "production refuses test tokens");

    tok.test = 0;
    policy.types = TS_TYPE_BIT(TS_TYPE_PERSONAL);
    ok(ts_decide(&policy, &tok, &missing) == TS_TOKEN_TYPE,
       "a type outside the list is refused");

    policy.types = 0;
    tok.type = TS_TYPE_LEGACY;
    policy.legacy = 0;
    ok(ts_decide(&policy, &tok, &missing) == TS_TOKEN_TYPE,
       "legacy tokens can be switched off");
}


/* "content|advert": any one of the alternatives is enough */

static void
test_any_of(void)
{
    char             buf[256], err[256];
    size_t           n;
    unsigned         bit;
    ts_str_t         bad;
    ts_token_t       tok;
    ts_policy_t      policy;
    ts_required_t    req, more, missing;
    ts_categories_t  cats;

    names_init(&cats);

    ok(ts_categories_parse(&cats, (unsigned char *) "content|advert", 14,
                           &req, &bad) == 0
       && req.categories == 0 && req.nany == 1
       && req.any[0].categories == ((1 << 1) | (1 << 6)) && !req.common,
       "alternatives parse into one set of which any will do");

    ok(ts_categories_parse(&cats,
                           (unsigned char *) "content|promotion,marketplace",
                           29, &req, &bad) == 0
       && req.categories == 1 << 4 && req.nany == 1
       && req.any[0].categories == ((1 << 1) | (1 << 6)),
       "alternatives and a name needed besides them parse apart");

    ok(ts_categories_parse(&cats, (unsigned char *) "all|content", 11, &req,
                           &bad) == 0
       && req.common && req.nany == 0 && req.categories == 0,
       "all among alternatives means any valid token");

    ok(ts_categories_parse(&cats, (unsigned char *) "all|contnet", 11, &req,
                           &bad) == -1
       && bad.len == 7 && memcmp(bad.data, "contnet", 7) == 0,
       "every alternative is checked, after all too");

    ok(ts_categories_parse(&cats, (unsigned char *) "content|", 8, &req,
                           &bad) == -1 && bad.len == 0,
       "an empty alternative is refused");

    ok(ts_categories_parse(&cats, (unsigned char *) "read_catalog|content",
                           20, &req, &bad) == 0
       && req.nany == 1 && req.any[0].names == 1
       && req.any[0].categories == 1 << 1,
       "a scope name may be an alternative to a category");

    ok(ts_categories_parse(&cats, (unsigned char *)
                           "a|b c|d e|f g|h i|j k|l m|n o|p q|r", 35, &req,
                           &bad) == -1,
       "unknown alternatives are refused before their number");

    ok(ts_categories_parse(&cats, (unsigned char *)
                           "content|advert content|advert content|advert "
                           "content|advert content|advert content|advert "
                           "content|advert content|advert content|advert",
                           134, &req, &bad) == -2
       && bad.len == 14,
       "more sets of alternatives than fit are refused");

    (void) ts_categories_parse(&cats, (unsigned char *) "content|advert", 14,
                               &req, &bad);
    (void) ts_categories_parse(&cats, (unsigned char *) "marketplace "
                               "statistics|read_catalog", 35, &more, &bad);
    ok(ts_required_merge(&req, &more) == 0 && req.nany == 2
       && req.categories == 1 << 4,
       "two requirements merge");

    n = ts_required_format(&cats, &req, ',', buf, sizeof(buf));
    ok(n == strlen("marketplace,content|advert,statistics|read_catalog")
       && memcmp(buf, "marketplace,content|advert,statistics|read_catalog",
                 n) == 0,
       "a requirement formats its alternatives with a bar");

    ok(ts_required_first(&req, &bit) == 0 && bit == 4,
       "the first category is one needed in any case");

    memset(&req, 0, sizeof(req));
    req.common = 1;
    n = ts_required_format(&cats, &req, ',', buf, sizeof(buf));
    ok(n == 6 && memcmp(buf, "common", 6) == 0 && ts_required_first(&req,
                                                                 &bit) != 0,
       "a requirement of any valid token formats as common");

    (void) ts_categories_parse(&cats, (unsigned char *) "content|advert", 14,
                               &req, &bad);

    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));
    tok.type = TS_TYPE_BASE;
    policy.legacy = 1;
    policy.required = req;

    tok.scope = 1 << 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a Content token may call a Content or Promotion method");

    tok.scope = 1 << 6;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "so may a Promotion token");

    tok.scope = 1 << 4;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.nany == 1 && missing.categories == 0
       && missing.any[0].categories == ((1 << 1) | (1 << 6)),
       "a token with neither lacks the set of alternatives");

    policy.required.categories = 1 << 5;
    tok.scope = 1 << 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.categories == 1 << 5 && missing.nany == 0,
       "a name needed besides the alternatives is still needed");

    ok(ts_categories_add(&cats, "deny", 4, 20, err, sizeof(err)) != 0
       && ts_categories_add_name(&cats, "off", 3, err, sizeof(err)) != 0,
       "deny and off are keywords, not names");
}


static void
test_decide_scopes(void)
{
    ts_token_t     tok;
    ts_policy_t    policy;
    ts_required_t  missing;

    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));

    /* named scopes */
    tok.type = TS_TYPE_BASE;
    tok.scope = 1 << 4;
    tok.names = 1;
    policy.required.categories = 1 << 4;
    policy.required.names = 3;

    ok(ts_decide(&policy, &tok, &missing) == TS_SCOPE
       && missing.names == 2 && missing.categories == 0,
       "a missing scope name is named");

    tok.names = 7;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK
       && missing.names == 0 && missing.categories == 0,
       "granted scope names pass");

    tok.names = 0;
    tok.scope = 0;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.categories == 1 << 4,
       "categories are checked before scope names");

    tok.scope = (1 << 4) | TS_READONLY_MASK;
    tok.names = 3;
    policy.write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_READ_ONLY,
       "a read-only token with the scopes still cannot write");

    tok.names = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_SCOPE,
       "scope names are checked before the read-only flag");

    /* secret tokens follow the ordinary rules */
    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));

    tok.type = TS_TYPE_SECRET;
    tok.opaque = 1;
    tok.no_exp = 1;
    tok.scope = 1 << 4;
    tok.names = 1;
    policy.required.categories = 1 << 4;
    policy.required.names = 1;

    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a secret token with the scopes passes");

    policy.write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a secret token with the scopes writes");

    policy.required.names = 3;
    ok(ts_decide(&policy, &tok, &missing) == TS_SCOPE && missing.names == 2,
       "a secret token needs the scope names");

    policy.required.names = 1;
    policy.required.categories = (1 << 4) | (1 << 5);
    policy.public_ok = 1;
    policy.public_write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.categories == 1 << 5,
       "a public location grants a secret token nothing");

    policy.required.categories = 1 << 4;
    tok.scope |= TS_READONLY_MASK;
    ok(ts_decide(&policy, &tok, &missing) == TS_READ_ONLY,
       "a read-only secret token cannot write");

    tok.scope &= ~TS_READONLY_MASK;
    policy.types = TS_TYPE_BIT(TS_TYPE_BASE) | TS_TYPE_BIT(TS_TYPE_PUBLIC);
    ok(ts_decide(&policy, &tok, &missing) == TS_TOKEN_TYPE,
       "secret tokens can be left out of the types");

    policy.types = TS_TYPE_BIT(TS_TYPE_SECRET);
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "secret tokens can be the only type");

    /* public tokens */
    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));

    tok.type = TS_TYPE_PUBLIC;
    tok.opaque = 1;
    tok.scope = (1 << 4) | (1 << 5);
    tok.names = 3;
    policy.required.categories = 1 << 4;
    policy.required.names = 1;

    ok(ts_decide(&policy, &tok, &missing) == TS_PUBLIC_TOKEN,
       "a public token is refused where public tokens are not allowed");

    policy.write = 1;
    policy.public_write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_PUBLIC_TOKEN,
       "public_write alone does not let a public token in");

    policy.write = 0;
    policy.public_write = 0;
    policy.public_ok = 1;
    tok.scope = 0;
    tok.names = 0;
    policy.required.categories = (1 << 4) | (1 << 5);
    policy.required.names = 3;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK
       && missing.categories == 0 && missing.names == 0,
       "a public token reads a public location whatever its scopes");

    tok.scope = TS_READONLY_MASK;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a read-only public token reads a public location");

    tok.scope = (1 << 4) | (1 << 5);
    tok.names = 3;
    policy.write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_READ_ONLY,
       "a public token cannot write without public_write");

    policy.public_write = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a public token with the scopes writes with public_write");

    tok.names = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_SCOPE
       && missing.names == 2 && missing.categories == 0,
       "a public token's write needs the scope names");

    tok.names = 3;
    tok.scope = 1 << 5;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY
       && missing.categories == 1 << 4,
       "a public token's write needs the categories");

    tok.scope = (1 << 4) | (1 << 5) | TS_READONLY_MASK;
    ok(ts_decide(&policy, &tok, &missing) == TS_READ_ONLY,
       "a read-only public token cannot write with public_write");

    tok.scope &= ~TS_READONLY_MASK;
    policy.sandbox = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_ENVIRONMENT,
       "the environment is checked before public tokens");

    policy.sandbox = 0;
    policy.write = 0;
    policy.types = TS_TYPE_BIT(TS_TYPE_SECRET);
    ok(ts_decide(&policy, &tok, &missing) == TS_TOKEN_TYPE,
       "the types are checked before public tokens");

    ok(strcmp(ts_type_name(TS_TYPE_SECRET), "secret") == 0
       && strcmp(ts_type_name(TS_TYPE_PUBLIC), "public") == 0
       && ts_type_by_name("secret", 6) == TS_TYPE_SECRET
       && ts_type_by_name("public", 6) == TS_TYPE_PUBLIC
       && strcmp(ts_type_name(TS_TYPE_MAX), "unknown") == 0,
       "secret and public are token types by name");

    ok(strcmp(ts_reason_name(TS_SCOPE), "scope") == 0
       && strcmp(ts_reason_name(TS_PUBLIC_TOKEN), "public_token") == 0
       && strcmp(ts_reason_name(TS_UNKNOWN_TOKEN), "unknown_token") == 0
       && strcmp(ts_reason_name(TS_SUBJECT), "subject") == 0
       && strcmp(ts_reason_name(TS_REASON_MAX), "unknown") == 0,
       "the new reasons have names");
}


static const ts_op_t *
match(ts_ops_t *ops, const char *method, const char *host, const char *path)
{
    ts_str_t  m, h, p;

    m.data = (unsigned char *) method;
    m.len = strlen(method);
    h.data = (unsigned char *) host;
    h.len = strlen(host);
    p.data = (unsigned char *) path;
    p.len = strlen(path);

    return ts_ops_match(ops, &m, &h, &p);
}


static const ts_op_t *
nocase(ts_ops_t *ops, const char *method, const char *path)
{
    ts_str_t       m, h, p;
    unsigned char  buf[256];

    m.data = (unsigned char *) method;
    m.len = strlen(method);
    h.data = (unsigned char *) "api.example.com";
    h.len = strlen("api.example.com");
    p.data = (unsigned char *) path;
    p.len = strlen(path);

    return ts_ops_match_nocase(ops, &m, &h, &p, buf);
}


static int
add(ts_ops_t *ops, const char *method, const char *path, unsigned bit,
    char *err)
{
    ts_op_t   op;
    ts_str_t  m, h, p;

    memset(&op, 0, sizeof(op));
    op.required.categories = (uint64_t) 1 << bit;

    m.data = (unsigned char *) method;
    m.len = strlen(method);
    h.data = (unsigned char *) "api.example.com";
    h.len = strlen("api.example.com");
    p.data = (unsigned char *) path;
    p.len = strlen(path);

    return ts_ops_add(ops, &m, &h, &p, &op, err, 256);
}


static void
test_ops(void)
{
    char            err[256];
    ts_str_t        m, h, p;
    ts_ops_t       *ops;
    const ts_op_t  *op;

    ops = ts_ops_create();

    ok(add(ops, "GET", "/api/v3/orders/{orderId}", 4, err) == 0
       && add(ops, "GET", "/api/v3/orders/new", 5, err) == 0
       && add(ops, "POST", "/api/v3/orders/{orderId}/cancel", 6, err) == 0
       && add(ops, "GET", "/api/v3/{a}/{b}/stickers", 7, err) == 0
       && add(ops, "GET", "/", 8, err) == 0,
       "operations are added");

    ok(add(ops, "GET", "/api/v3/orders/{id}", 4, err) != 0
       && strstr(err, "duplicate") != NULL,
       "a template differing only in its name is a duplicate");
    ok(add(ops, "GET", "/api/v3/x{id}", 4, err) != 0,
       "a partial template segment is refused");
    ok(add(ops, "GET", "api", 4, err) != 0, "a relative path is refused");
    ok(ts_ops_count(ops) == 5, "five operations are counted");

    op = match(ops, "GET", "api.example.com", "/api/v3/orders/new");
    ok(op && op->required.categories == 1 << 5, "a literal segment wins");

    op = match(ops, "GET", "api.example.com", "/api/v3/orders/42");
    ok(op && op->required.categories == 1 << 4
       && strcmp(op->name, "GET api.example.com/api/v3/orders/{orderId}") == 0,
       "a template matches any segment and names the operation");

    op = match(ops, "GET", "api.example.com", "/api/v3/orders/new/stickers");
    ok(op && op->required.categories == 1 << 7,
       "a failed literal branch falls back to the template");

    op = match(ops, "GET", "api-sandbox.example.com", "/api/v3/orders/1");
    ok(op && op->required.categories == 1 << 4,
       "the sandbox twin shares the rules");

    ok(match(ops, "POST", "api.example.com", "/api/v3/orders/1") == NULL,
       "another method does not match");
    ok(match(ops, "GET", "other.example.com", "/api/v3/orders/1") == NULL,
       "another host does not match");
    ok(match(ops, "GET", "api.example.com", "/api/v3/orders") == NULL,
       "a prefix of an operation does not match");
    ok(match(ops, "GET", "api.example.com", "/api/v3/orders/1/2/3") == NULL,
       "a longer path does not match");
    op = match(ops, "GET", "api.example.com", "/");
    ok(op && op->required.categories == 1 << 8, "the root path matches");
    ok(match(ops, "GET", "-sandbox", "/") == NULL,
       "a bare sandbox suffix is no twin");

    m.data = (unsigned char *) "GET";
    m.len = 3;
    h.data = NULL;
    h.len = 0;
    p.data = (unsigned char *) "/";
    p.len = 1;
    ok(ts_ops_match(ops, &m, &h, &p) == NULL,
       "a request without a host, as after a bad request line, matches none");

    ok(match(ops, "GET", "api.example.com", "/API/v3/Orders/new") == NULL
       && match(ops, "get", "api.example.com", "/api/v3/orders/new") == NULL,
       "a case variant matches no operation exactly");
    op = nocase(ops, "GET", "/API/v3/Orders/new");
    ok(op && op->required.categories == 1 << 5,
       "a case variant of a path names the operation without case");
    op = nocase(ops, "post", "/api/V3/orders/AbC/CANCEL");
    ok(op && op->required.categories == 1 << 6,
       "a case variant of a method names it too, templates keep any case");
    ok(nocase(ops, "GET", "/api/v4/orders/new") == NULL,
       "another path has no case variant either");

    ok(add(ops, "GET", "/API/v3/orders/new", 9, err) == 0,
       "operations that differ only in case are both added");
    op = match(ops, "GET", "api.example.com", "/API/v3/orders/new");
    ok(op && op->required.categories == 1 << 9,
       "each of them matches exactly");

    ts_ops_free(ops);

#define canonical(s)  ts_path_is_canonical((unsigned char *) s, strlen(s))

    ok(canonical("/api/v3/orders/42") && canonical("/") && canonical("/a/")
       && canonical("/files/a%20b") && canonical("/v1.2/x"),
       "ordinary paths are canonical");
    ok(!canonical("/adv/v0/start/../../v1/balance") && !canonical("/a/./b")
       && !canonical("/a//b") && !canonical("/a/..") && !canonical("/a/%2e%2E")
       && !canonical("/a%2Fb") && !canonical("/a%5cb") && !canonical("/a\\b")
       && !canonical("") && !canonical("a/b"),
       "paths that normalize elsewhere are not canonical");
    ok(!canonical("/api/v3/dbs/orders/..;/meta") && !canonical("/a/.;/b")
       && !canonical("/a/..;x/b") && !canonical("/a/;x/b")
       && !canonical("/a/..%3b/b") && !canonical("/a/.%3Bx")
       && !canonical("/..;"),
       "dot segments with a path parameter are not canonical");
    ok(canonical("/a/b;v=1/c") && canonical("/a/x..;/b") && canonical("/a;b")
       && canonical("/a/.x;y"),
       "a path parameter after a name is canonical");

#undef canonical
}


static void
test_types(void)
{
    char           err[256], text[512];
    ts_token_t     tok;
    ts_policy_t    policy;
    ts_secrets_t   secrets;
    ts_required_t  missing;
    unsigned char  d1[TS_SHA256_LEN], d2[TS_SHA256_LEN], d3[TS_SHA256_LEN];
    char           h1[65], h2[65];
    size_t         i;

    ts_sha256((unsigned char *) "old", 3, d1);
    ts_sha256((unsigned char *) "new", 3, d2);
    ts_sha256((unsigned char *) "other", 5, d3);

    for (i = 0; i < TS_SHA256_LEN; i++) {
        sprintf(h1 + 2 * i, "%02x", d1[i]);
        sprintf(h2 + 2 * i, "%02X", d2[i]);
    }

    snprintf(text, sizeof(text), "# rotation\nsvc-1 %s %s\n\nsvc-2 %s\n",
             h1, h2, h1);

    ok(ts_secrets_load(&secrets, (unsigned char *) text, strlen(text), err,
                       sizeof(err)) == 0 && secrets.n == 2,
       "a secrets file with two services loads");

    memset(&tok, 0, sizeof(tok));
    memset(&policy, 0, sizeof(policy));
    policy.legacy = 1;

    tok.type = TS_TYPE_SERVICE;
    tok.service.data = (unsigned char *) "svc-1";
    tok.service.len = 5;

    ok(ts_secrets_match(&secrets, &tok.service, d1),
       "the old secret is valid during rotation");
    ok(ts_secrets_match(&secrets, &tok.service, d2),
       "the new secret is valid during rotation");
    ok(!ts_secrets_match(&secrets, &tok.service, d3),
       "an unknown secret is refused");
    ok(!ts_secrets_match(&secrets, &tok.service, NULL),
       "a missing secret is refused");

    tok.service.data = (unsigned char *) "svc-3";
    ok(!ts_secrets_match(&secrets, &tok.service, d1),
       "an unlisted service is refused");

    policy.check_secret = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_SERVICE_SECRET,
       "a service token without a valid secret is denied");

    policy.secret_ok = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a service token with a valid secret passes");

    tok.type = TS_TYPE_PERSONAL;
    policy.cloud = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_PERSONAL_CLOUD,
       "a personal token from a cloud service is refused");

    policy.cloud = 0;
    policy.outside = 1;
    ok(ts_decide(&policy, &tok, &missing) == TS_PERSONAL_CLOUD,
       "a personal token from outside its networks is refused");

    policy.outside = 0;
    policy.personal_only = 1 << 16;
    policy.required.categories = 1 << 16;
    tok.scope = 1 << 16;
    ok(ts_decide(&policy, &tok, &missing) == TS_OK,
       "a personal token keeps a personal-only category");

    tok.type = TS_TYPE_BASE;
    ok(ts_decide(&policy, &tok, &missing) == TS_CATEGORY,
       "a base token loses a personal-only category");

    ts_secrets_free(&secrets);

    snprintf(text, sizeof(text), "svc-1 %s\nsvc-1 %s\n", h1, h2);
    ok(ts_secrets_load(&secrets, (unsigned char *) text, strlen(text), err,
                       sizeof(err)) != 0 && strstr(err, "twice"),
       "a service listed twice is refused");
    ts_secrets_free(&secrets);

    ok(ts_secrets_load(&secrets, (unsigned char *) "svc-1 abc\n", 10, err,
                       sizeof(err)) != 0 && strstr(err, "line 1"),
       "a bad digest is refused with its line");
    ts_secrets_free(&secrets);

    ok(ts_secrets_load(&secrets, (unsigned char *) "svc-1\n", 6, err,
                       sizeof(err)) != 0,
       "a service without secret is refused");
    ts_secrets_free(&secrets);
}


/*
 * r and s of every shape verify: with a high bit (DER adds a zero byte)
 * and with leading zero bytes (DER drops them); 1 in 256 signatures has
 * one of the latter, so sign until each was seen.
 */

static void
test_ecdsa_shapes(void)
{
    int            seen, bad, i, half;
    char           pem[4096], token[TOKEN_MAX], claims[64], err[256];
    size_t         n;
    EVP_PKEY      *pkey;
    ts_keyset_t    ks;

    pkey = EVP_EC_gen("P-256");

    memset(&ks, 0, sizeof(ks));
    n = pem_of(pkey, pem, sizeof(pem));
    (void) ts_keyset_add_pem(&ks, (unsigned char *) pem, n, "k1", err,
                             sizeof(err));

    seen = 0;
    bad = 0;

    for (i = 0; i < 20000 && seen != 0x0f; i++) {
        snprintf(claims, sizeof(claims), "{\"exp\":9999999999,\"n\":%d}", i);
        sign_es256(token, "{\"alg\":\"ES256\"}", claims, pkey, 0);

        for (half = 0; half < 2; half++) {
            if (es256_raw[32 * half] & 0x80) {
                seen |= 1 << half;
            }

            if (es256_raw[32 * half] == 0) {
                seen |= 4 << half;
            }
        }

        if (check(&ks, token) != TS_OK) {
            bad++;
        }
    }

    ok(seen == 0x0f, "signatures with high bits and leading zeros were made");
    ok(bad == 0, "every ES256 signature of any shape verifies");

    ts_keyset_free(&ks);
    EVP_PKEY_free(pkey);
}


/*
 * SHA-256 against known answers, not against itself: the test vectors of
 * FIPS 180-2 / RFC 6234, and, where the input is the tests' own, a digest
 * computed here with OpenSSL's one-shot EVP_Digest() over the concatenated
 * bytes, apart from the fetched digest and context that ts_secret.c keeps.
 */

static const char  sha256_abc[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char  sha256_empty[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char  sha256_448[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char  sha256_896[] =
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1";
static const char  sha256_million[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static const char  msg_448[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char  msg_896[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";


static int
digest_is(const unsigned char *digest, const char *hex)
{
    char    buf[2 * TS_SHA256_LEN + 1];
    size_t  i;

    for (i = 0; i < TS_SHA256_LEN; i++) {
        sprintf(buf + 2 * i, "%02x", digest[i]);
    }

    return strcmp(buf, hex) == 0;
}


/* SHA-256 of a || b by OpenSSL's one-shot call */

static void
reference_sha256(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen, unsigned char *out)
{
    unsigned char  *buf;

    buf = malloc(alen + blen + 1);

    if (buf == NULL) {
        fprintf(stderr, "no memory\n");
        exit(2);
    }

    if (alen) {
        memcpy(buf, a, alen);
    }

    if (blen) {
        memcpy(buf + alen, b, blen);
    }

    if (EVP_Digest(buf, alen + blen, out, NULL, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "reference SHA-256 failed\n");
        exit(2);
    }

    free(buf);
}


static void
test_sha256_recent(void)
{
    int            i, same, split;
    char           kind;
    size_t         n, pos[3];
    uint64_t       key;
    unsigned char  salt[TS_SHA256_LEN], salt2[TS_SHA256_LEN];
    unsigned char  want[TS_SHA256_LEN], want2[TS_SHA256_LEN];
    unsigned char  got[TS_SHA256_LEN], got2[TS_SHA256_LEN];
    unsigned char *million;
    static unsigned char  token[TS_RECENT_MAX_LEN + 2];
    static unsigned char  other[TS_RECENT_MAX_LEN + 2];

    /* ts_sha256: the vectors */

    ok(ts_sha256((unsigned char *) "abc", 3, got) == 0
       && digest_is(got, sha256_abc),
       "SHA-256 of \"abc\" is ba7816bf...");
    ok(ts_sha256((unsigned char *) "", 0, got) == 0
       && digest_is(got, sha256_empty),
       "SHA-256 of the empty string is e3b0c442...");
    ok(ts_sha256((unsigned char *) msg_448, 56, got) == 0
       && digest_is(got, sha256_448),
       "SHA-256 of the 448-bit message is 248d6a61...");
    ok(ts_sha256((unsigned char *) msg_896, 112, got) == 0
       && digest_is(got, sha256_896),
       "SHA-256 of the 896-bit message is cf5b16a7...");

    million = malloc(1000000);

    if (million == NULL) {
        fprintf(stderr, "no memory\n");
        exit(2);
    }

    memset(million, 'a', 1000000);
    ok(ts_sha256(million, 1000000, got) == 0
       && digest_is(got, sha256_million),
       "SHA-256 of a million \"a\" is cdc76e5c...");
    free(million);

    /* ts_sha256_pair: a || b, wherever the message is cut */

    same = 1;

    for (split = 0; split <= 56; split++) {
        same &= ts_sha256_pair((unsigned char *) msg_448, split,
                               (unsigned char *) msg_448 + split, 56 - split,
                               got) == 0
                && digest_is(got, sha256_448);
    }

    ok(same, "the SHA-256 of a pair is that of the concatenation at every "
       "cut of the 448-bit message");
    ok(ts_sha256_pair((unsigned char *) "ab", 2, (unsigned char *) "c", 1,
                      got) == 0
       && digest_is(got, sha256_abc),
       "the SHA-256 of \"ab\" and \"c\" is that of \"abc\"");

    /* ts_sha256_recent: SHA-256 of salt || data */

    ok(ts_sha256_recent((unsigned char *) "ab", 2, (unsigned char *) "c", 1,
                        got) == 0
       && digest_is(got, sha256_abc),
       "the recent digest of salt \"ab\" and data \"c\" is the SHA-256 of "
       "\"abc\"");
    ok(ts_sha256_recent((unsigned char *) "ab", 2, (unsigned char *) "c", 1,
                        got) == 0
       && digest_is(got, sha256_abc),
       "and so it is again from its slot");
    ok(ts_sha256_recent(NULL, 0, (unsigned char *) msg_448, 56, got) == 0
       && digest_is(got, sha256_448),
       "without a salt the recent digest is the data's own SHA-256");
    ok(ts_sha256_recent(NULL, 0, (unsigned char *) msg_448, 56, got) == 0
       && digest_is(got, sha256_448),
       "and so it is again from its slot");

    memset(salt, 's', sizeof(salt));
    memset(salt2, 't', sizeof(salt2));

    for (i = 0; i < (int) sizeof(token); i++) {
        token[i] = (unsigned char) ('A' + i % 26);
    }

    n = 365;
    reference_sha256(salt, TS_SHA256_LEN, token, n, want);

    same = 1;

    for (i = 0; i < 3; i++) {
        same &= ts_sha256_recent(salt, TS_SHA256_LEN, token, n, got) == 0
                && memcmp(got, want, TS_SHA256_LEN) == 0;
    }

    ok(same, "a token hashed with a 32-byte salt gets the reference digest, "
       "and the same digest each time its slot is reused");

    reference_sha256(salt2, TS_SHA256_LEN, token, n, want2);
    ok(ts_sha256_recent(salt2, TS_SHA256_LEN, token, n, got) == 0
       && memcmp(got, want2, TS_SHA256_LEN) == 0
       && memcmp(want2, want, TS_SHA256_LEN) != 0,
       "the same token under another salt gets that salt's reference digest");
    ok(ts_sha256_recent(salt, TS_SHA256_LEN, token, n, got) == 0
       && memcmp(got, want, TS_SHA256_LEN) == 0,
       "and under the first salt again its first digest");

    /*
     * another token of the same length and last 8 bytes (so of the same
     * slot), differing in one byte: first, in the middle, just before the
     * last 8; the two take the slot in turn
     */

    pos[0] = 0;
    pos[1] = 200;
    pos[2] = n - 9;

    for (i = 0; i < 3; i++) {
        memcpy(other, token, n);
        other[pos[i]] ^= 0x20;

        reference_sha256(salt, TS_SHA256_LEN, other, n, want2);

        same = memcmp(want, want2, TS_SHA256_LEN) != 0;

        for (split = 0; split < 2; split++) {
            same &= ts_sha256_recent(salt, TS_SHA256_LEN, token, n, got) == 0
                    && ts_sha256_recent(salt, TS_SHA256_LEN, other, n, got2)
                       == 0
                    && memcmp(got, want, TS_SHA256_LEN) == 0
                    && memcmp(got2, want2, TS_SHA256_LEN) == 0;
        }

        ok(same, i == 0 ? "a token of the same slot differing in its first "
                          "byte gets its own reference digest, and the first "
                          "token keeps its own"
               : i == 1 ? "so does one differing in a middle byte"
               : "so does one differing just before the last 8 bytes");
    }

    reference_sha256(salt, TS_SHA256_LEN, token, n - 1, want2);
    ok(ts_sha256_recent(salt, TS_SHA256_LEN, token, n - 1, got) == 0
       && memcmp(got, want2, TS_SHA256_LEN) == 0,
       "a token one byte shorter gets its own reference digest");

    reference_sha256(salt, TS_SHA256_LEN, token, sizeof(token), want2);

    same = 1;

    for (i = 0; i < 2; i++) {
        same &= ts_sha256_recent(salt, TS_SHA256_LEN, token, sizeof(token),
                                 got) == 0
                && memcmp(got, want2, TS_SHA256_LEN) == 0;
    }

    ok(same, "a token too long to remember gets the reference digest every "
       "time");

    /* revocation keys go through it too: the same key, hit or miss */
    kind = TS_TABLE_KEY_ID;
    reference_sha256((unsigned char *) &kind, 1, (unsigned char *) "abc", 3,
                     want);
    memcpy(&key, want, sizeof(key));
    ok(ts_table_key(TS_TABLE_KEY_ID, (unsigned char *) "abc", 3) == key
       && ts_table_key(TS_TABLE_KEY_ID, (unsigned char *) "abc", 3) == key,
       "a revocation key is the reference SHA-256 of kind and id, remembered "
       "or not");

    ts_sha256_cleanup();

    reference_sha256(salt, TS_SHA256_LEN, token, n, want);
    ok(ts_sha256_recent(salt, TS_SHA256_LEN, token, n, got) == 0
       && memcmp(got, want, TS_SHA256_LEN) == 0
       && ts_sha256((unsigned char *) "abc", 3, got) == 0
       && digest_is(got, sha256_abc),
       "after a cleanup the digests are still the reference ones");
}


static void
test_revoke(void)
{
    size_t            i, capacity;
    int64_t           v;
    uint64_t          keys[64];
    ts_token_t        tok;
    ts_table_t       *t;
    ts_revoke_msg_t   msg;
    static char       mem[4096];

    t = (ts_table_t *) mem;
    capacity = ts_table_capacity(sizeof(mem));
    ts_table_init(t, capacity);

    ok(capacity == (sizeof(mem) - sizeof(ts_table_t)) / sizeof(ts_slot_t),
       "the table fills the memory it is given");

    /* keys that collide on their home slot exercise the probe runs */
    for (i = 0; i < 64; i++) {
        keys[i] = (uint64_t) capacity * (i % 8) + i / 8 + 1;
        ts_table_put(t, keys[i], (int64_t) i);
    }

    for (i = 0; i < 64; i += 3) {
        ts_table_del(t, keys[i]);
    }

    for (i = 0; i < 64; i++) {
        if (ts_table_get(t, keys[i], &v) != (i % 3 != 0)
            || (i % 3 != 0 && v != (int64_t) i))
        {
            break;
        }
    }

    ok(i == 64 && t->count == 64 - 22,
       "deleting from colliding runs keeps every other key");

    for (i = 0; i < capacity; i = ts_table_clear(t, i, 7)) { /* void */ }

    for (i = 0; i < 64 && ts_table_get(t, keys[i], &v) == 0; i++) {
        /* void */
    }

    ok(i == 64 && t->count == 0 && ts_table_clear(t, capacity, 7) == capacity,
       "a table cleared a slice at a time holds nothing");

    for (i = 0; i < 64; i++) {
        ts_table_put(t, keys[i], (int64_t) i);
    }

    for (i = 0; ts_table_put(t, 1000 + i, 1) == 0; i++) { /* void */ }
    ok(t->count == capacity / 10 * 9, "a table refuses entries past 90%");

    ok(ts_table_key(TS_TABLE_KEY_ID, (unsigned char *) "a", 1)
       != ts_table_key(TS_TABLE_KEY_SELLER, (unsigned char *) "a", 1),
       "ids and sellers have separate keys");

    ok(ts_table_key_once(TS_TABLE_KEY_ID, (unsigned char *) "a", 1)
       == ts_table_key(TS_TABLE_KEY_ID, (unsigned char *) "a", 1)
       && ts_table_key_once(TS_TABLE_KEY_SELLER, (unsigned char *) "a", 1)
          == ts_table_key(TS_TABLE_KEY_SELLER, (unsigned char *) "a", 1),
       "a key made once is the key a request makes");

    memset(&tok, 0, sizeof(tok));
    tok.exp = 1000000;
    tok.id.data = (unsigned char *) "01a207bb-65d4-7ac6-ae5c-41544876d92a";
    tok.id.len = 36;
    ok(ts_token_issued(&tok, 100, 2000000000) == 0x01a207bb65d4 / 1000,
       "a UUIDv7 id gives the issue time");

    tok.has_iat = 1;
    tok.iat = 5;
    ok(ts_token_issued(&tok, 100, 2000000000) == 5, "iat wins over the id");

    tok.iat = 1000;
    ok(ts_token_issued(&tok, 100, 999) == 0,
       "an iat after now counts as the epoch");

    tok.has_iat = 0;
    ok(ts_token_issued(&tok, 100, 0x01a207bb65d4 / 1000 - 1) == 0,
       "a UUIDv7 time after now counts as the epoch");

    tok.id.data = (unsigned char *) "01a207bb-65d4-4ac6-ae5c-41544876d92a";
    ok(ts_token_issued(&tok, 100, 2000000000) == 1000000 - 100,
       "without iat or UUIDv7 the lifetime before exp counts");
    ok(ts_token_issued(&tok, 100, 1000000 - 101) == 0,
       "an exp more than the lifetime ahead counts as issued at the epoch");

    ok(ts_revoke_message((unsigned char *) "revoke abc", 10, &msg) == 0
       && msg.op == TS_REVOKE_ID && msg.id.len == 3,
       "a revoke message parses");
    ok(ts_revoke_message((unsigned char *) "seller s1 1700000000", 20, &msg)
       == 0 && msg.op == TS_REVOKE_SELLER && msg.time == 1700000000,
       "a seller message parses");
    ok(ts_revoke_message((unsigned char *) "seller s1", 9, &msg) != 0,
       "a seller message without time is refused");
    ok(ts_revoke_message((unsigned char *) "seller s1 -5", 12, &msg) != 0,
       "a negative time is refused");
    ok(ts_revoke_message((unsigned char *) "revoke a b", 10, &msg) != 0,
       "extra words are refused");
    ok(ts_revoke_message((unsigned char *) "nuke all", 8, &msg) != 0,
       "an unknown verb is refused");
    ok(ts_revoke_message((unsigned char *) "", 0, &msg) != 0,
       "an empty message is refused");
    ok(ts_revoke_message((unsigned char *) "secrets svc-1", 13, &msg) == 0
       && msg.op == TS_SECRETS_CHANGED, "a secrets message parses");

    {
        static const char  hex[] = "opaque "
            "00ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e";

        ok(ts_revoke_message((unsigned char *) hex, sizeof(hex) - 1, &msg)
           == 0 && msg.op == TS_OPAQUE_CHANGED && msg.digest[0] == 0x00
           && msg.digest[1] == 0xff && msg.digest[31] == 0x1e,
           "an opaque message carries the digest");
        ok(ts_revoke_message((unsigned char *) hex, sizeof(hex) - 2, &msg)
           != 0, "an opaque message with a short digest is refused");
        ok(ts_revoke_message((unsigned char *) "opaque xyz", 10, &msg) != 0,
           "an opaque message without hex is refused");
    }
}

static ts_str_t
str(const char *s)
{
    ts_str_t  v;

    v.data = (unsigned char *) s;
    v.len = s ? strlen(s) : 0;

    return v;
}


static int
display_is(const char *compact, const char *expect)
{
    size_t         len;
    ts_str_t       v;
    unsigned char  buf[256];

    v = str(compact);

    return ts_claim_display(&v, buf, &len) == 0
           && len == strlen(expect)
           && memcmp(buf, expect, len) == 0;
}


static void
test_claims(void)
{
    int            rc;
    size_t         used;
    ts_str_t       values[2], v;
    ts_claim_t     claims[4];
    unsigned char  buf[256];
    const char    *json = "{\"iss\":\"https://id.example\","
                          "\"aud\":[\"api\",\"web\"],\"n\":1.5,"
                          "\"o\":{ \"k\" : [1, \"x\"] }}";

    memset(claims, 0, sizeof(claims));
    claims[0].name = str("iss");
    claims[1].name = str("aud");
    claims[2].name = str("o");
    claims[3].name = str("none");

    rc = ts_claims_extract((const unsigned char *) json, strlen(json),
                           claims, 4, 0, buf, sizeof(buf), &used);

    ok(rc == 0
       && claims[0].value.len == 20
       && memcmp(claims[0].value.data, "\"https://id.example\"", 20) == 0
       && claims[1].value.len == 13
       && memcmp(claims[1].value.data, "[\"api\",\"web\"]", 13) == 0
       && claims[2].value.len == 13
       && memcmp(claims[2].value.data, "{\"k\":[1,\"x\"]}", 13) == 0
       && claims[3].value.data == NULL,
       "claims are kept as compact JSON, an absent one without data");

    rc = ts_claims_extract((const unsigned char *) json, strlen(json),
                           claims, 4, 0, buf, 8, &used);

    ok(rc == 1 && used == 20 + 13 + 13,
       "a buffer too small says the size needed");

    claims[0].header = 1;
    rc = ts_claims_extract((const unsigned char *) "{\"iss\":1}", 9,
                           claims, 1, 0, buf, sizeof(buf), &used);

    ok(rc == 0 && used == 0, "a header claim is not taken from the payload");

    ok(ts_claims_extract((const unsigned char *) "[1]", 3, claims, 1, 1,
                         buf, sizeof(buf), &used) == -1,
       "claims of something else than an object are refused");

    ok(display_is("\"a\\\"b\"", "a\"b")
       && display_is("42", "42")
       && display_is("true", "true")
       && display_is("null", "")
       && display_is("[\"a\",\"b\"]", "a,b")
       && display_is("[]", "")
       && display_is("[1,\"x\"]", "[1,\"x\"]")
       && display_is("{\"k\":\"v\"}", "{\"k\":\"v\"}")
       && display_is("\"a\\r\\nb\"", "\"a\\r\\nb\"")
       && display_is("[\"a\",\"\\u0001\"]", "[\"a\",\"\\u0001\"]"),
       "variables show strings as is, arrays of strings joined, the rest "
       "and strings with control characters as JSON");

    values[0] = str("api");
    values[1] = str("https://id.example");

    v = str("\"https://id.example\"");
    ok(ts_claim_match(&v, values, 2, 0) == 1, "a string issuer matches");

    v = str("\"https://id.example/\"");
    ok(ts_claim_match(&v, values, 2, 0) == 0,
       "an issuer differing in a byte does not match");

    v = str("[\"web\",\"api\"]");
    ok(ts_claim_match(&v, values, 1, 1) == 1
       && ts_claim_match(&v, values, 1, 0) == 0,
       "an array matches where arrays are allowed (aud) only");

    v = str("[1,{\"api\":1}]");
    ok(ts_claim_match(&v, values, 1, 1) == 0,
       "an array without the string does not match");

    v = str(NULL);
    ok(ts_claim_match(&v, values, 2, 1) == 0, "an absent claim never matches");

    ok(ts_claim_string((const unsigned char *) "a\"b", 3, buf, sizeof(buf),
                       &used) == 0
       && used == 6 && memcmp(buf, "\"a\\\"b\"", 6) == 0,
       "a field of an opaque token becomes a JSON string");

    ok(ts_claim_string((const unsigned char *) "\xff", 1, buf, sizeof(buf),
                       &used) == -1,
       "a field that is not UTF-8 is refused");

    ok(ts_claim_string((const unsigned char *) "a\0b", 3, buf, sizeof(buf),
                       &used) == 0
       && display_is("\"a\\u0000b\"", "\"a\\u0000b\""),
       "a field with a NUL shows as escaped JSON, like a control character");

    ok(strcmp(ts_reason_name(TS_ISSUER), "issuer") == 0
       && strcmp(ts_reason_name(TS_AUDIENCE), "audience") == 0
       && strcmp(ts_reason_name(TS_REQUIRE), "require") == 0,
       "issuer, audience and require are reasons");
}


int
main(void)
{
    test_parse();
    test_time();
    test_is_jwt();
    test_verify();
    test_ecdsa_shapes();
    test_sha256_recent();
    test_categories();
    test_names();
    test_scope_claims();
    test_decide();
    test_any_of();
    test_decide_scopes();
    test_ops();
    test_types();
    test_revoke();
    test_claims();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
