
/*
 * Support code of the fuzz harnesses, linked into each of them.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_fuzz.h"


static const signed char  ts_fuzz_b64url[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26,
    ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38,
    ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44,
    ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52,
    ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58,
    ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62,
    ['-'] = 63, ['_'] = 64
};


/*
 * ngx_decode_base64url()'s contract: any character outside the alphabet
 * or a lone trailing sextet is an error, 4 characters are 3 bytes and a
 * tail of k characters is k - 1 bytes; unused low bits are ignored
 */

int
ts_fuzz_base64url(unsigned char *dst, size_t *dst_len,
    const unsigned char *src, size_t len)
{
    size_t    i, n, bits;
    uint32_t  acc;

    if (len % 4 == 1) {
        return -1;
    }

    n = 0;
    acc = 0;
    bits = 0;

    for (i = 0; i < len; i++) {
        if (ts_fuzz_b64url[src[i]] == 0) {
            return -1;
        }

        acc = acc << 6 | (uint32_t) (ts_fuzz_b64url[src[i]] - 1);
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char) (acc >> bits);
        }
    }

    *dst_len = n;

    return 0;
}


/* unpadded; dst has room for (len + 2) / 3 * 4 bytes */

size_t
ts_fuzz_encode_base64url(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t       i, n;
    uint32_t     v;
    const char  *abc;

    abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 63];
        dst[n++] = abc[(v >> 6) & 63];
        dst[n++] = abc[v & 63];
    }

    if (len - i == 1) {
        v = (uint32_t) src[i] << 16;
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 63];
        dst[n++] = abc[(v >> 6) & 63];
    }

    return n;
}


/* the whole file in memory the caller frees; NULL if unreadable */

unsigned char *
ts_fuzz_read_file(const char *name, size_t *len)
{
    long            size;
    FILE           *f;
    unsigned char  *p;

    f = fopen(name, "rb");
    if (f == NULL) {
        return NULL;
    }

    p = NULL;

    if (fseek(f, 0, SEEK_END) != 0
        || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        goto done;
    }

    p = malloc(size + 1);
    if (p == NULL) {
        goto done;
    }

    if (fread(p, 1, size, f) != (size_t) size) {
        free(p);
        p = NULL;
        goto done;
    }

    p[size] = '\0';
    *len = size;

done:

    fclose(f);

    return p;
}


void
ts_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
    abort();
}
