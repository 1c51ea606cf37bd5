
/*
 * Revocation state: a fixed-size open-addressing hash table that lives in
 * memory the caller provides (nginx shared memory), keyed by 64-bit
 * digests of token ids and seller ids, never by the ids themselves; the
 * issue time of a token; and the revocation channel's messages.
 */


#include <string.h>

#include "ts_core.h"


#define TS_TABLE_LOAD_MAX(capacity)  ((capacity) / 10 * 9)


static size_t ts_table_home(const ts_table_t *t, uint64_t key);
static size_t ts_table_next(const ts_table_t *t, size_t i);
static int ts_hex_value(unsigned char c);


size_t
ts_table_size(size_t capacity)
{
    return offsetof(ts_table_t, slots) + capacity * sizeof(ts_slot_t);
}


/* how many slots fit in size bytes */

size_t
ts_table_capacity(size_t size)
{
    if (size < ts_table_size(16)) {
        return 0;
    }

    return (size - offsetof(ts_table_t, slots)) / sizeof(ts_slot_t);
}


void
ts_table_init(ts_table_t *t, size_t capacity)
{
    t->capacity = capacity;
    t->count = 0;
    memset(t->slots, 0, capacity * sizeof(ts_slot_t));
}


/*
 * Clears up to n slots from slot "from" on, and returns where to go on:
 * a table too large to clear at once (tens of megabytes) is cleared a
 * slice at a time; it holds nothing, count 0, once all are cleared.
 */

size_t
ts_table_clear(ts_table_t *t, size_t from, size_t n)
{
    if (from >= t->capacity) {
        return t->capacity;
    }

    if (n > t->capacity - from) {
        n = t->capacity - from;
    }

    memset(&t->slots[from], 0, n * sizeof(ts_slot_t));
    t->count = 0;

    return from + n;
}


/* keys are digests: a zero key marks an empty slot */

uint64_t
ts_table_key(char kind, const unsigned char *data, size_t len)
{
    uint64_t       key;
    unsigned char  md[TS_SHA256_LEN];

    if (ts_sha256_recent((unsigned char *) &kind, 1, data, len, md) != 0) {
        memset(md, 0, sizeof(md));
    }

    memcpy(&key, md, sizeof(key));

    return key ? key : 1;
}


/*
 * The same key, for an id seen once (a rescan's): remembering a million
 * of them would only push the tokens of requests out of the memo
 */

uint64_t
ts_table_key_once(char kind, const unsigned char *data, size_t len)
{
    uint64_t       key;
    unsigned char  md[TS_SHA256_LEN];

    if (ts_sha256_pair((unsigned char *) &kind, 1, data, len, md) != 0) {
        memset(md, 0, sizeof(md));
    }

    memcpy(&key, md, sizeof(key));

    return key ? key : 1;
}


/* a service and one of its secret digests */

uint64_t
ts_table_secret_key(const ts_str_t *service, const unsigned char *digest)
{
    unsigned char  buf[TS_SERVICE_ID_MAX + TS_SHA256_LEN];

    if (service->len > TS_SERVICE_ID_MAX) {
        return 0;
    }

    memcpy(buf, service->data, service->len);
    memcpy(buf + service->len, digest, TS_SHA256_LEN);

    return ts_table_key(TS_TABLE_KEY_SECRET, buf,
                        service->len + TS_SHA256_LEN);
}


static size_t
ts_table_home(const ts_table_t *t, uint64_t key)
{
    return (size_t) (key % t->capacity);
}


static size_t
ts_table_next(const ts_table_t *t, size_t i)
{
    return i + 1 == t->capacity ? 0 : i + 1;
}


/*
 * Asks the CPU for the key's home slot ahead of a put: a caller with many
 * keys overlaps the memory latency of their slots
 */

void
ts_table_prefetch(const ts_table_t *t, uint64_t key)
{
#if defined(__GNUC__)
    __builtin_prefetch(&t->slots[ts_table_home(t, key)], 1, 0);
#else
    (void) t;
    (void) key;
#endif
}


int
ts_table_put(ts_table_t *t, uint64_t key, int64_t value)
{
    size_t  i;

    for (i = ts_table_home(t, key); /* void */; i = ts_table_next(t, i)) {
        if (t->slots[i].key == key) {
            t->slots[i].value = value;
            return 0;
        }

        if (t->slots[i].key == 0) {
            break;
        }
    }

    /* linear probing degrades past 90%: refuse rather than crawl */
    if (t->count >= TS_TABLE_LOAD_MAX(t->capacity)) {
        return -1;
    }

    t->slots[i].key = key;
    t->slots[i].value = value;
    t->count++;

    return 0;
}


int
ts_table_get(const ts_table_t *t, uint64_t key, int64_t *value)
{
    size_t  i;

    for (i = ts_table_home(t, key); /* void */; i = ts_table_next(t, i)) {
        if (t->slots[i].key == key) {
            *value = t->slots[i].value;
            return 1;
        }

        if (t->slots[i].key == 0) {
            return 0;
        }
    }
}


/* deletion shifts later entries of the probe run back: no tombstones */

void
ts_table_del(ts_table_t *t, uint64_t key)
{
    size_t  i, j, home;

    for (i = ts_table_home(t, key); t->slots[i].key != key;
         i = ts_table_next(t, i))
    {
        if (t->slots[i].key == 0) {
            return;
        }
    }

    for (j = ts_table_next(t, i); t->slots[j].key != 0;
         j = ts_table_next(t, j))
    {
        home = ts_table_home(t, t->slots[j].key);

        /* the entry at j may move to i only if i lies on its probe path */
        if ((j > i && (home <= i || home > j))
            || (j < i && home <= i && home > j))
        {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }

    t->slots[i].key = 0;
    t->slots[i].value = 0;
    t->count--;
}


/*
 * When the token was issued: "iat", else the timestamp of a UUIDv7 "id",
 * else "exp" minus the configured lifetime.  A time after now is nobody's
 * issue time: it counts as the epoch, so that a seller's revocation covers
 * the token (a clock ahead of ours, or a lifetime shorter than the issuer's,
 * must not let a token outlive it).
 */

int64_t
ts_token_issued(const ts_token_t *tok, int64_t lifetime, int64_t now)
{
    int       d;
    size_t    i, n;
    int64_t   issued;
    uint64_t  ms;

    if (tok->has_iat) {
        issued = tok->iat;
        goto done;
    }

    issued = tok->exp - lifetime;

    /* xxxxxxxx-xxxx-7xxx-: the first 48 bits are Unix milliseconds */
    if (tok->id.len == 36 && tok->id.data[14] == '7'
        && tok->id.data[8] == '-' && tok->id.data[13] == '-')
    {
        ms = 0;
        n = 0;

        for (i = 0; i < 13; i++) {
            if (i == 8) {
                continue;
            }

            d = ts_hex_value(tok->id.data[i]);
            if (d < 0) {
                break;
            }

            ms = ms << 4 | (uint64_t) d;
            n++;
        }

        if (n == 12) {
            issued = (int64_t) (ms / 1000);
        }
    }

done:

    return issued > now ? 0 : issued;
}


static int
ts_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * "revoke ID", "unrevoke ID", "seller SID TIME", "unseller SID",
 * "secrets ASID", "opaque HEX-DIGEST"
 */

int
ts_revoke_message(const unsigned char *msg, size_t len, ts_revoke_msg_t *out)
{
    size_t                i, n;
    int64_t               t;
    const unsigned char  *p, *end, *word[3];
    size_t                wlen[3];

    static const struct {
        const char       *name;
        ts_revoke_op_e    op;
        size_t            args;
    } ops[] = {
        { "revoke", TS_REVOKE_ID, 1 },
        { "unrevoke", TS_UNREVOKE_ID, 1 },
        { "seller", TS_REVOKE_SELLER, 2 },
        { "unseller", TS_UNREVOKE_SELLER, 1 },
        { "secrets", TS_SECRETS_CHANGED, 1 },
        { "opaque", TS_OPAQUE_CHANGED, 1 },
        { NULL, 0, 0 }
    };

    p = msg;
    end = msg + len;
    n = 0;

    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }

        if (p == end) {
            break;
        }

        if (n == 3) {
            return -1;
        }

        word[n] = p;

        while (p < end && *p != ' ') {
            p++;
        }

        wlen[n] = p - word[n];
        n++;
    }

    if (n == 0) {
        return -1;
    }

    for (i = 0; ops[i].name; i++) {
        if (strlen(ops[i].name) == wlen[0]
            && memcmp(ops[i].name, word[0], wlen[0]) == 0)
        {
            break;
        }
    }

    if (ops[i].name == NULL || n != ops[i].args + 1) {
        return -1;
    }

    out->op = ops[i].op;
    out->id.data = (unsigned char *) word[1];
    out->id.len = wlen[1];
    out->time = 0;

    if (out->op == TS_OPAQUE_CHANGED) {
        return ts_hex_digest((const char *) word[1], wlen[1], out->digest);
    }

    if (out->op != TS_REVOKE_SELLER) {
        return 0;
    }

    if (ts_parse_time(word[2], wlen[2], &t) != 0) {
        return -1;
    }

    out->time = t;

    return 0;
}


/* a non-negative decimal Unix time of at most 18 digits */

int
ts_parse_time(const unsigned char *p, size_t len, int64_t *out)
{
    size_t   i;
    int64_t  t;

    if (len == 0 || len > 18) {
        return -1;
    }

    t = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        t = t * 10 + (p[i] - '0');
    }

    *out = t;

    return 0;
}
