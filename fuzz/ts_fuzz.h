
/*
 * What the fuzzers share: the base64url decoder the nginx glue would pass
 * (nginx's ngx_decode_base64url() has the same contract), a file reader
 * for the keys the token harness verifies with, and a check that aborts,
 * so a broken invariant is a crash libFuzzer keeps the input of.
 */


#ifndef _TS_FUZZ_H_INCLUDED_
#define _TS_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ts_core.h"


#define ts_fuzz_assert(cond)                                                 \
    do {                                                                     \
        if (!(cond)) {                                                       \
            ts_fuzz_fail(__FILE__, __LINE__, #cond);                         \
        }                                                                    \
    } while (0)


int ts_fuzz_base64url(unsigned char *dst, size_t *dst_len,
    const unsigned char *src, size_t len);
size_t ts_fuzz_encode_base64url(unsigned char *dst, const unsigned char *src,
    size_t len);
unsigned char *ts_fuzz_read_file(const char *name, size_t *len);
void ts_fuzz_fail(const char *file, int line, const char *what);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#endif /* _TS_FUZZ_H_INCLUDED_ */
