
/*
 * The key loaders: every input is offered both as a JWKS and as PEM (the
 * glue picks by the first character; both parsers must refuse the other's
 * text cleanly), with and without a configured kid, into one keyset, so
 * duplicate kids and a partly loaded JWKS are exercised too.  Every key
 * that loads is then asked to verify a token of every algorithm, which
 * checks the key-type and algorithm pinning on keys nobody meant to write.
 */


#include <string.h>

#include "ts_fuzz.h"


#define TS_FUZZ_KIDS  16


static const ts_alg_e  ts_fuzz_algs[] = {
    TS_ALG_ES256, TS_ALG_ES384, TS_ALG_RS256, TS_ALG_RS384, TS_ALG_RS512,
    TS_ALG_PS256, TS_ALG_PS384, TS_ALG_PS512, TS_ALG_EDDSA, TS_ALG_HS256,
    TS_ALG_HS384, TS_ALG_HS512
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          i, j, n;
    ts_token_t      tok;
    ts_reason_e     rc;
    ts_keyset_t     ks;
    const char     *kids[TS_FUZZ_KIDS];
    unsigned char   sig[132];
    char            err[TS_ERROR_MAX];

    memset(&ks, 0, sizeof(ts_keyset_t));

    err[0] = '\0';
    (void) ts_keyset_add_jwks(&ks, data, size, ts_fuzz_base64url, err,
                              sizeof(err));
    ts_fuzz_assert(strlen(err) < sizeof(err));

    (void) ts_keyset_add_pem(&ks, data, size, NULL, err, sizeof(err));
    (void) ts_keyset_add_pem(&ks, data, size, "pem", err, sizeof(err));
    ts_fuzz_assert(strlen(err) < sizeof(err));

    n = ts_keyset_kids(&ks, kids, TS_FUZZ_KIDS);
    ts_fuzz_assert(n == ks.nkeys);

    /* a signature of the input's own bytes: any length up to ES512's */
    memset(sig, 0, sizeof(sig));
    memcpy(sig, data, size < sizeof(sig) ? size : sizeof(sig));

    for (i = 0; i < n && i < TS_FUZZ_KIDS; i++) {
        ts_fuzz_assert(strlen(kids[i]) <= TS_KID_MAX);

        for (j = 0; j < sizeof(ts_fuzz_algs) / sizeof(ts_fuzz_algs[0]); j++) {
            memset(&tok, 0, sizeof(ts_token_t));

            tok.alg = ts_fuzz_algs[j];
            tok.kid.data = (unsigned char *) kids[i];
            tok.kid.len = strlen(kids[i]);
            tok.signed_part.data = (unsigned char *) data;
            tok.signed_part.len = size;
            tok.signature.data = sig;
            tok.signature.len = (size + j) % (sizeof(sig) + 1);

            rc = ts_token_verify(&ks, &tok);

            /* nobody forges a signature by accident */
            ts_fuzz_assert(rc == TS_BAD_SIGNATURE || rc == TS_UNKNOWN_KEY);
        }
    }

    ts_keyset_free(&ks);

    return 0;
}
