
/*
 * The revocation channel: each input line is one message as it arrives
 * from Redis ("revoke ID", "unrevoke ID", "seller SID TIME", "unseller
 * SID", "secrets SERVICE"), parsed by ts_revoke_message() and applied to
 * a small revocation table (16 to 32 slots, so probe runs wrap and the
 * table fills) next to a plain array that says what the table must hold.
 * After every message each entry must be found with its value, and the
 * count must agree: the backward-shift deletion is the delicate part.
 *
 * An id of the form "#N" is used as the table key N itself instead of
 * its digest, so the fuzzer can steer which slot an entry lands in.
 */


#include <stdlib.h>
#include <string.h>

#include "ts_fuzz.h"


#define TS_FUZZ_SLOTS_MIN  16


typedef struct {
    uint64_t                key;
    int64_t                 value;
} ts_fuzz_entry_t;


static uint64_t ts_fuzz_key(char kind, const ts_str_t *id);
static void ts_fuzz_put(ts_table_t *t, ts_fuzz_entry_t *model, size_t *n,
    uint64_t key, int64_t value);
static void ts_fuzz_del(ts_table_t *t, ts_fuzz_entry_t *model, size_t *n,
    uint64_t key);
static void ts_fuzz_check(const ts_table_t *t, const ts_fuzz_entry_t *model,
    size_t n);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t             n, capacity;
    int64_t            value;
    ts_table_t        *t;
    ts_revoke_msg_t    msg;
    ts_fuzz_entry_t   *model;
    const uint8_t     *p, *end, *eol;

    capacity = TS_FUZZ_SLOTS_MIN + size % (TS_FUZZ_SLOTS_MIN + 1);

    t = malloc(ts_table_size(capacity));
    model = malloc(capacity * sizeof(ts_fuzz_entry_t));

    if (t == NULL || model == NULL) {
        goto done;
    }

    ts_fuzz_assert(ts_table_capacity(ts_table_size(capacity)) == capacity);

    ts_table_init(t, capacity);
    n = 0;

    for (p = data, end = data + size; p < end; p = eol + 1) {

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
        }

        if (ts_revoke_message(p, eol - p, &msg) != 0) {
            continue;
        }

        ts_fuzz_assert(msg.id.len > 0);
        ts_fuzz_assert(msg.id.data >= p && msg.id.data + msg.id.len <= eol);
        ts_fuzz_assert(memchr(msg.id.data, ' ', msg.id.len) == NULL);
        ts_fuzz_assert(msg.time >= 0);

        switch (msg.op) {

        case TS_REVOKE_ID:
            ts_fuzz_put(t, model, &n, ts_fuzz_key(TS_TABLE_KEY_ID, &msg.id),
                        1);
            break;

        case TS_UNREVOKE_ID:
            ts_fuzz_del(t, model, &n, ts_fuzz_key(TS_TABLE_KEY_ID, &msg.id));
            break;

        case TS_REVOKE_SELLER:
            ts_fuzz_put(t, model, &n,
                        ts_fuzz_key(TS_TABLE_KEY_SELLER, &msg.id), msg.time);
            break;

        case TS_UNREVOKE_SELLER:
            ts_fuzz_del(t, model, &n,
                        ts_fuzz_key(TS_TABLE_KEY_SELLER, &msg.id));
            break;

        case TS_SECRETS_CHANGED:
            (void) ts_table_get(t, ts_fuzz_key(TS_TABLE_KEY_SECRET, &msg.id),
                                &value);
            break;

        default:
            ts_fuzz_assert(0);
        }

        ts_fuzz_check(t, model, n);
    }

done:

    free(model);
    free(t);

    return 0;
}


static uint64_t
ts_fuzz_key(char kind, const ts_str_t *id)
{
    size_t    i;
    uint64_t  key;

    if (id->len < 2 || id->len > 21 || id->data[0] != '#') {
        return ts_table_key(kind, id->data, id->len);
    }

    key = 0;

    for (i = 1; i < id->len; i++) {
        if (id->data[i] < '0' || id->data[i] > '9') {
            return ts_table_key(kind, id->data, id->len);
        }

        key = key * 10 + (id->data[i] - '0');
    }

    /* zero marks an empty slot, the digest keys are never zero */
    return key ? key : 1;
}


static void
ts_fuzz_put(ts_table_t *t, ts_fuzz_entry_t *model, size_t *n, uint64_t key,
    int64_t value)
{
    int     rc;
    size_t  i;

    rc = ts_table_put(t, key, value);

    for (i = 0; i < *n; i++) {
        if (model[i].key == key) {
            ts_fuzz_assert(rc == 0);
            model[i].value = value;
            return;
        }
    }

    /* a new key is refused only past the load limit */
    if (rc != 0) {
        ts_fuzz_assert(*n >= t->capacity / 10 * 9);
        return;
    }

    ts_fuzz_assert(*n < t->capacity);

    model[*n].key = key;
    model[*n].value = value;
    (*n)++;
}


static void
ts_fuzz_del(ts_table_t *t, ts_fuzz_entry_t *model, size_t *n, uint64_t key)
{
    size_t   i;
    int64_t  value;

    ts_table_del(t, key);

    ts_fuzz_assert(ts_table_get(t, key, &value) == 0);

    for (i = 0; i < *n; i++) {
        if (model[i].key == key) {
            model[i] = model[--(*n)];
            return;
        }
    }
}


static void
ts_fuzz_check(const ts_table_t *t, const ts_fuzz_entry_t *model, size_t n)
{
    size_t   i, used;
    int64_t  value;

    ts_fuzz_assert(t->count == n);

    for (i = 0; i < n; i++) {
        ts_fuzz_assert(ts_table_get(t, model[i].key, &value) == 1);
        ts_fuzz_assert(value == model[i].value);
    }

    used = 0;

    for (i = 0; i < t->capacity; i++) {
        used += (t->slots[i].key != 0);
    }

    ts_fuzz_assert(used == n);
}
