
/*
 * The service secrets file ("SERVICE-ID HEX-DIGEST [HEX-DIGEST ...]" a
 * line): whatever loads must be found again, every service by each of its
 * digests, and nothing by a digest it was not given; every path, loaded
 * or refused, must leave nothing that ts_secrets_free() does not free.
 */


#include <string.h>

#include "ts_fuzz.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc;
    size_t           i, len;
    unsigned         given;
    ts_str_t         id;
    ts_secrets_t     secrets;
    const uint8_t   *p, *end, *eol;
    unsigned char    digest[TS_SHA256_LEN], none[TS_SHA256_LEN];
    char             err[TS_ERROR_MAX];

    err[0] = '\0';

    rc = ts_secrets_load(&secrets, data, size, err, sizeof(err));

    ts_fuzz_assert(strlen(err) < sizeof(err));
    ts_fuzz_assert(rc == 0 || err[0] != '\0');

    if (rc != 0) {
        goto done;
    }

    memset(none, 0xa5, sizeof(none));

    /* each line again: its service id and its digests */
    for (p = data, end = data + size; p < end; p = eol + 1) {

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
        }

        while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) {
            p++;
        }

        if (p == eol || *p == '#') {
            continue;
        }

        id.data = (unsigned char *) p;

        while (p < eol && *p != ' ' && *p != '\t' && *p != '\r') {
            p++;
        }

        id.len = (unsigned char *) p - id.data;
        given = 0;

        for (i = 0; i < 2 * TS_SECRETS_PER_SERVICE; i++) {
            while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) {
                p++;
            }

            if (p == eol || *p == '#') {
                break;
            }

            for (len = 0; p + len < eol && p[len] != ' ' && p[len] != '\t'
                          && p[len] != '\r'; len++)
            {
                /* void */
            }

            ts_fuzz_assert(ts_hex_digest((const char *) p, len, digest)
                           == 0);
            ts_fuzz_assert(ts_secrets_match(&secrets, &id, digest) == 1);

            given |= (memcmp(digest, none, TS_SHA256_LEN) == 0);

            p += len;
        }

        ts_fuzz_assert(i > 0 && i <= TS_SECRETS_PER_SERVICE);
        ts_fuzz_assert(given || ts_secrets_match(&secrets, &id, none) == 0);
    }

done:

    ts_secrets_free(&secrets);

    return 0;
}
