
/*
 * The claims kept for variables and for the issuer and audience checks
 * (ts_claims.c), from any JSON text: what is extracted fits the size it
 * reports, is JSON again, and shows in no more bytes than its compact
 * value (the glue allocates exactly that); a string shown as is matches
 * itself; a string made from raw bytes shows as those bytes.
 */


#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ts_fuzz.h"


#define TS_FUZZ_CLAIMS  7


static void ts_fuzz_claims_check(ts_claim_t *claim);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    size_t          i, used, again, small;
    unsigned        header;
    unsigned char  *buf, *exact;
    ts_claim_t      claims[TS_FUZZ_CLAIMS];

    static const char  *names[TS_FUZZ_CLAIMS] = {
        "iss", "aud", "sub", "role", "x", "kid", "typ"
    };

    for (header = 0; header < 2; header++) {

        for (i = 0; i < TS_FUZZ_CLAIMS; i++) {
            claims[i].name.data = (unsigned char *) names[i];
            claims[i].name.len = strlen(names[i]);
            claims[i].header = (i >= 5) ? 1 : 0;
        }

        /* a buffer that may be too small, as for a token over the limit */
        small = size / 4;
        buf = malloc(small + 1);
        ts_fuzz_assert(buf != NULL);

        used = 0;
        rc = ts_claims_extract(data, size, claims, TS_FUZZ_CLAIMS, header,
                               buf, small, &used);

        ts_fuzz_assert(rc == -1 || rc == 0 || rc == 1);
        ts_fuzz_assert(rc != 0 || used <= small);
        ts_fuzz_assert(rc != 1 || used > small);

        if (rc == 1) {
            /* with the size it asked for, everything fits */
            exact = malloc(used);
            ts_fuzz_assert(exact != NULL);

            again = 0;
            rc = ts_claims_extract(data, size, claims, TS_FUZZ_CLAIMS,
                                   header, exact, used, &again);
            ts_fuzz_assert(rc == 0 && again == used);

            for (i = 0; i < TS_FUZZ_CLAIMS; i++) {
                if (claims[i].header == header) {
                    ts_fuzz_claims_check(&claims[i]);
                }
            }

            free(exact);

        } else if (rc == 0) {
            for (i = 0; i < TS_FUZZ_CLAIMS; i++) {
                if (claims[i].header == header) {
                    ts_fuzz_claims_check(&claims[i]);
                }
            }
        }

        free(buf);
    }

    /* the input as an opaque token's field */
    buf = malloc(6 * size + 2);
    ts_fuzz_assert(buf != NULL);

    if (ts_claim_string(data, size, buf, 6 * size + 2, &used) == 0) {
        claims[0].value.data = buf;
        claims[0].value.len = used;
        ts_fuzz_claims_check(&claims[0]);
    }

    free(buf);

    return 0;
}


static void
ts_fuzz_claims_check(ts_claim_t *claim)
{
    int             plain;
    size_t          i, len;
    json_t         *root;
    ts_str_t        shown;
    json_error_t    error;
    unsigned char  *out;

    if (claim->value.data == NULL) {
        return;
    }

    root = json_loadb((const char *) claim->value.data, claim->value.len,
                      JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    ts_fuzz_assert(root != NULL);

    /* exactly the bytes the glue allocates: ASan sees one more */
    out = malloc(claim->value.len);
    ts_fuzz_assert(out != NULL);

    len = 0;
    ts_fuzz_assert(ts_claim_display(&claim->value, out, &len) == 0);
    ts_fuzz_assert(len <= claim->value.len);

    if (json_is_string(root)) {
        plain = 1;

        for (i = 0; i < json_string_length(root); i++) {
            if ((unsigned char) json_string_value(root)[i] < 0x20
                || json_string_value(root)[i] == 0x7f)
            {
                plain = 0;
            }
        }

        if (plain) {
            ts_fuzz_assert(len == json_string_length(root));
            ts_fuzz_assert(len == 0
                           || memcmp(out, json_string_value(root), len) == 0);

            shown.data = out;
            shown.len = len;
            ts_fuzz_assert(ts_claim_match(&claim->value, &shown, 1, 0));
            ts_fuzz_assert(ts_claim_match(&claim->value, &shown, 1, 1));
        }
    }

    free(out);
    json_decref(root);
}
