
/*
 * The token decoder and everything a request runs on a token it decoded:
 * ts_token_parse() with scratch memory of exactly TS_TOKEN_BUF_SIZE(len)
 * (so any overrun is ASan's), the time checks, signature verification
 * against real keys (fuzz/token-keys.jwks, the keys the seed tokens were
 * minted with, so mutations reach every algorithm), the issue time and
 * the policy decision, for the token as it is and as an opaque public
 * token with the same facts.  The category table declares a few scope
 * names, so the "scope", "scp" and "scopes" claims are parsed.
 *
 * The input is the token text as it would follow "Bearer ", or, when it
 * starts with "{", the decoded token: header JSON, a line feed, payload
 * JSON, a line feed and the raw signature bytes, which the harness encodes
 * first; mutations of the JSON itself reach the claim checks far more
 * often than mutations of its base64url.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_fuzz.h"


#define TS_FUZZ_NOW  1800000000

/* the scope names declared, bits 0 to TS_FUZZ_NAMES - 1 of names */
#define TS_FUZZ_NAMES  3


static ts_reason_e ts_fuzz_token(const unsigned char *data, size_t size);
static void ts_fuzz_decide(const ts_policy_t *policy, const ts_token_t *tok);
static unsigned char *ts_fuzz_encode(const uint8_t *data, size_t size,
    size_t *len);
static int ts_fuzz_inside(const ts_str_t *s, const unsigned char *start,
    size_t size);


static ts_keyset_t      ts_fuzz_keys;
static ts_categories_t  ts_fuzz_cats;

static const char      *ts_fuzz_names[TS_FUZZ_NAMES] = {
    "read_catalog", "write_orders", "orders:read"
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t          i, len;
    const char     *name;
    unsigned char  *json;
    char            err[TS_ERROR_MAX];

    name = getenv("TS_FUZZ_KEYS");

#ifdef TS_FUZZ_KEYS
    if (name == NULL) {
        name = TS_FUZZ_KEYS;
    }
#endif

    if (name == NULL) {
        fprintf(stderr, "fuzz_token: set TS_FUZZ_KEYS to a JWKS file\n");
        exit(2);
    }

    json = ts_fuzz_read_file(name, &len);
    if (json == NULL) {
        fprintf(stderr, "fuzz_token: cannot read \"%s\"\n", name);
        exit(2);
    }

    if (ts_keyset_add_jwks(&ts_fuzz_keys, json, len, ts_fuzz_base64url, err,
                           sizeof(err))
        != 0)
    {
        fprintf(stderr, "fuzz_token: \"%s\": %s\n", name, err);
        exit(2);
    }

    free(json);

    ts_categories_init(&ts_fuzz_cats);

    for (i = 0; i < TS_FUZZ_NAMES; i++) {
        if (ts_categories_add_name(&ts_fuzz_cats, ts_fuzz_names[i],
                                   strlen(ts_fuzz_names[i]), err,
                                   sizeof(err))
            != 0)
        {
            fprintf(stderr, "fuzz_token: \"%s\": %s\n", ts_fuzz_names[i],
                    err);
            exit(2);
        }
    }

    return 0;
}


static int
ts_fuzz_inside(const ts_str_t *s, const unsigned char *start, size_t size)
{
    return s->len == 0
           || (s->data >= start && s->data + s->len <= start + size);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          len;
    unsigned char  *token;

    if (size == 0 || data[0] != '{') {
        (void) ts_fuzz_token(data, size);
        return 0;
    }

    token = ts_fuzz_encode(data, size, &len);
    if (token == NULL) {
        return 0;
    }

    (void) ts_fuzz_token(token, len);

    free(token);

    return 0;
}


/* "header\npayload\nsignature" as "b64u(header).b64u(payload).b64u(sig)" */

static unsigned char *
ts_fuzz_encode(const uint8_t *data, size_t size, size_t *len)
{
    size_t          i, n, part[3], start[3];
    unsigned char  *token, *p, *exact;

    n = 0;
    start[0] = 0;

    for (i = 0; i < size && n < 2; i++) {
        if (data[i] == '\n') {
            part[n] = i - start[n];
            start[++n] = i + 1;
        }
    }

    if (n < 2) {
        return NULL;
    }

    part[2] = size - start[2];

    token = malloc((size + 2) / 3 * 4 + 2 + 3 * 3);
    if (token == NULL) {
        return NULL;
    }

    p = token;

    for (i = 0; i < 3; i++) {
        if (i > 0) {
            *p++ = '.';
        }

        p += ts_fuzz_encode_base64url(p, data + start[i], part[i]);
    }

    *len = p - token;

    /* exactly the token's length: ASan watches the parser's reads */
    exact = malloc(*len);
    if (exact != NULL) {
        memcpy(exact, token, *len);
    }

    free(token);

    return exact;
}


static ts_reason_e
ts_fuzz_token(const unsigned char *data, size_t size)
{
    size_t          n;
    int64_t         issued;
    ts_token_t      tok, ptok;
    ts_policy_t     policy;
    ts_reason_e     rc, verified;
    unsigned char  *buf;
    char            names[64];

    buf = malloc(TS_TOKEN_BUF_SIZE(size));
    if (buf == NULL) {
        return TS_MALFORMED;
    }

    rc = ts_token_parse(&tok, data, size, buf, ts_fuzz_base64url,
                        &ts_fuzz_cats);

    ts_fuzz_assert(rc == TS_OK || tok.error != NULL);
    ts_fuzz_assert(rc < TS_REASON_MAX);

    if (rc != TS_OK) {
        goto done;
    }

    /* every string the token hands out is inside the caller's memory */
    ts_fuzz_assert(tok.alg != TS_ALG_UNKNOWN);
    ts_fuzz_assert(tok.kid.len <= TS_KID_MAX);
    ts_fuzz_assert(ts_fuzz_inside(&tok.kid, buf, TS_TOKEN_BUF_SIZE(size)));
    ts_fuzz_assert(ts_fuzz_inside(&tok.id, buf, TS_TOKEN_BUF_SIZE(size)));
    ts_fuzz_assert(ts_fuzz_inside(&tok.sid, buf, TS_TOKEN_BUF_SIZE(size)));
    ts_fuzz_assert(ts_fuzz_inside(&tok.service, buf,
                                  TS_TOKEN_BUF_SIZE(size)));
    ts_fuzz_assert(ts_fuzz_inside(&tok.signature, buf,
                                  TS_TOKEN_BUF_SIZE(size)));
    ts_fuzz_assert(ts_fuzz_inside(&tok.signed_part, data, size));
    ts_fuzz_assert(tok.type <= TS_TYPE_SERVICE);
    ts_fuzz_assert(tok.type != TS_TYPE_SERVICE || tok.service.len > 0);

    /* only declared scope names are granted; a JWT is never opaque */
    ts_fuzz_assert((tok.names >> TS_FUZZ_NAMES) == 0);
    ts_fuzz_assert(!tok.opaque && !tok.no_exp);

    verified = ts_token_verify(&ts_fuzz_keys, &tok);

    ts_fuzz_assert(verified == TS_OK || verified == TS_BAD_SIGNATURE
                   || verified == TS_UNKNOWN_KEY);

    /* the glue's order: time, then revocation, then the policy */
    rc = ts_token_check_time(&tok, TS_FUZZ_NOW, 60);

    if (rc == TS_OK) {
        issued = ts_token_issued(&tok, 86400, TS_FUZZ_NOW);
        (void) issued;
    }

    memset(&policy, 0, sizeof(ts_policy_t));

    policy.required.categories = (uint64_t) 1 << (size % 20);
    policy.required.names = (size >> 3) & ((1 << TS_FUZZ_NAMES) - 1);
    policy.legacy = size & 1;
    policy.sandbox = tok.test;
    policy.write = (size >> 1) & 1;
    policy.check_secret = (size >> 2) & 1;
    policy.public_ok = (size >> 6) & 1;
    policy.public_write = (size >> 7) & 1;
    policy.personal_only = (uint64_t) 1 << 13;

    ts_fuzz_decide(&policy, &tok);

    /* the same facts as a public token looked up in Redis */
    ptok = tok;
    ptok.type = TS_TYPE_PUBLIC;
    ptok.opaque = 1;
    ptok.no_exp = 1;

    ts_fuzz_assert(ts_token_check_time(&ptok, TS_FUZZ_NOW, 60) == TS_OK
                   || ptok.has_nbf || ptok.has_iat);

    ts_fuzz_decide(&policy, &ptok);

    /* what the glue prints of the missing categories in a deny answer */
    n = ts_categories_format(&ts_fuzz_cats, tok.scope, tok.names, ',', names,
                             1 + size % sizeof(names));

    ts_fuzz_assert(n < 1 + size % sizeof(names));

done:

    free(buf);

    return rc;
}


static void
ts_fuzz_decide(const ts_policy_t *policy, const ts_token_t *tok)
{
    ts_reason_e    rc;
    ts_required_t  missing;

    rc = ts_decide(policy, tok, &missing);

    ts_fuzz_assert(rc < TS_REASON_MAX);
    ts_fuzz_assert((missing.categories & ~policy->required.categories) == 0);
    ts_fuzz_assert((missing.names & ~policy->required.names) == 0);
    ts_fuzz_assert(!missing.common);

    ts_fuzz_assert(rc != TS_CATEGORY || missing.categories != 0);
    ts_fuzz_assert(rc != TS_SCOPE
                   || (missing.names != 0 && missing.categories == 0));
    ts_fuzz_assert(rc != TS_OK
                   || (missing.categories == 0 && missing.names == 0));

    if (tok->type == TS_TYPE_PUBLIC) {
        ts_fuzz_assert(rc != TS_PUBLIC_TOKEN || !policy->public_ok);
        ts_fuzz_assert(rc == TS_PUBLIC_TOKEN || rc == TS_ENVIRONMENT
                       || rc == TS_TOKEN_TYPE || policy->public_ok);
        ts_fuzz_assert(rc != TS_OK || !policy->write
                       || policy->public_write);

    } else {
        ts_fuzz_assert(rc != TS_PUBLIC_TOKEN);
    }
}
