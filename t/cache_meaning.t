#!/usr/bin/perl

# Cached grants must not outlive their meaning across reloads (SPEC section
# 13, issue 14): the verified-token cache survives a reload, so its key has
# to cover everything that gives an entry its meaning.  A JWT with "scope":
# "read_catalog" and an opaque token with "scopes read_catalog" are cached
# while `token_scope_scope read_catalog update_catalog;` is in force; a
# reload swaps the order of the names (and so their bit positions); the
# cached tokens must still pass /read and be refused on /update, as fresh
# ones are, for the opaque token also while Redis is stopped (SIGSTOP) and
# only the cache can answer.  The key set is part of the key too: a JWT
# cached under e1 is refused where only e2 is trusted, and after a reload
# that takes e1 away from a location (a regression test: this works).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(time);
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals reload);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');

# %%SCOPES%% is the order of the scope names, %%ROTATED%% the keys of
# /rotated: both change with the reload

my $template = globals(workers => 2) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_scope %%SCOPES%%;

    token_scope_redis 127.0.0.1:%%REDIS%% timeout=200ms max_stale=30s;
    token_scope_cache zone=c:1m;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        # ttl=1s: an opaque answer is soon a fallback, used only when Redis
        # cannot answer
        token_scope_opaque on ttl=1s miss_ttl=1s;

        location /read {
            token_scope read_catalog;
            proxy_pass http://backend;
        }

        location /update {
            token_scope update_catalog;
            proxy_pass http://backend;
        }

        location /k1 {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /k2 {
            token_scope_key_file %%KEYS%%/e2.pem kid=e2;
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /rotated {
            %%ROTATED%%
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location = /status {
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }
    }
}
EOF

sub config {
    my (%opt) = @_;

    my $conf = $template;
    my $rotated = $opt{rotated} ? 'token_scope_key_file %%KEYS%%/e2.pem kid=e2;'
                                : '';

    $conf =~ s/%%SCOPES%%/$opt{scopes}/;
    $conf =~ s/%%ROTATED%%/$rotated/;
    $conf =~ s/%%REDIS%%/$redis->port/e;

    $t->write_config($conf);
}

config(scopes => 'read_catalog update_catalog');

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects to Redis and syncs at start')
    or diag($t->read_file('error.log'));


sub v {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}

# the cache counter NAME of the status page

sub counter {
    my ($name) = @_;
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_\Q$name\E (\d+)$/m;
    return $v // -1;
}

sub synced {
    my $n = () = $t->read_file('error.log') =~ /redis.*synced/gi;
    return $n;
}

# how many worker processes have exited (the master logs each)

sub exited {
    my $n = () = $t->read_file('error.log') =~ /worker process \d+ exited/g;
    return $n;
}

# an opaque token written here with HSET: type secret, scopes read_catalog

sub opaque {
    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    my $token = 'secret_' . join '', map { $c[rand @c] } 1 .. 32;

    $t->remember_secret($token);
    $redis->cli('HSET', 'token_scope:opaque:' . sha256_hex($token),
                'type', 'secret', 'scopes', 'read_catalog');

    return $token;
}

my @mp = ('--categories', 'marketplace');


# before the reload: read_catalog update_catalog

my $jwt = $t->mint('e1', @mp, '--claim', 'scope="read_catalog"');

is(v('/read', $jwt), '200', 'a JWT with scope read_catalog passes /read');

my $hits = counter('hits_total');
is(v('/read', $jwt), '200', 'and passes /read again');
cmp_ok(counter('hits_total'), '>', $hits, 'the second request was a cache hit');

is(v('/update', $jwt), '401 scope', 'the JWT is refused on /update: scope');

# o1 is asked about again after the reload, o2 only while Redis is stopped
my $o1 = opaque();
my $o2 = opaque();

is(v('/read', $o1), '200', 'an opaque token with scopes read_catalog passes /read');
is(v('/update', $o1), '401 scope', 'the opaque token is refused on /update: scope');
is(v('/read', $o2), '200', 'a second opaque token passes /read');
is(v('/update', $o2), '401 scope', 'the second opaque token is refused on /update: scope');

my $keyed = $t->mint('e1', @mp);

is(v('/k1', $keyed), '200', 'a JWT of e1 passes where e1 is trusted (and is cached)');
is(v('/k2', $keyed), '401 unknown_key', 'the cached JWT of e1 is refused where only e2 is trusted');
is(v('/rotated', $keyed), '200', 'the JWT of e1 passes /rotated, which trusts e1 before the reload');


# the reload: the scope names swapped, /rotated trusts only e2

my ($synced, $exited) = (synced(), exited());

config(scopes => 'update_catalog read_catalog', rotated => 1);
reload($t, workers => 2);

# no old worker may answer with the old configuration from here on
ok(wait_for(sub { exited() >= $exited + 2 }, 10), 'the old workers have exited after the reload')
    or diag($t->read_file('error.log'));
ok(wait_for(sub { synced() > $synced }, 5), 'the new workers sync with Redis after the reload')
    or diag($t->read_file('error.log'));

cmp_ok(counter('entries'), '>', 0, 'the cache zone keeps its entries across the reload');

is(v('/read', $jwt), '200', 'after the reorder the cached JWT still passes /read');
is(v('/update', $jwt), '401 scope', 'after the reorder the cached JWT is still refused on /update: scope');

my $fresh = $t->mint('e1', @mp, '--claim', 'scope="read_catalog"');

is(v('/read', $fresh), '200', 'a fresh JWT with the same claims passes /read');
is(v('/update', $fresh), '401 scope', 'a fresh JWT with the same claims is refused on /update: scope');

is(v('/read', $o1), '200', 'after the reorder the opaque token still passes /read');
is(v('/update', $o1), '401 scope', 'after the reorder the opaque token is still refused on /update: scope');

my $o3 = opaque();

is(v('/read', $o3), '200', 'a fresh opaque token with the same hash passes /read');
is(v('/update', $o3), '401 scope', 'a fresh opaque token with the same hash is refused on /update: scope');

is(v('/k2', $keyed), '401 unknown_key', 'after the reload the cached JWT of e1 is still refused where only e2 is trusted');
is(v('/rotated', $keyed), '401 unknown_key', 'the cached JWT of e1 is refused on /rotated once the reload left it only e2');
is(v('/k1', $keyed), '200', 'and still passes where e1 is trusted');
is(v('/rotated', $t->mint('e2', @mp)), '200', 'a JWT of e2 passes /rotated after the reload');


# Redis stopped: only the cache can answer (within max_stale=30s)

$redis->pause();

is(v('/read', $o1), '200', 'Redis stopped: the opaque token passes /read from the cache');
is(v('/update', $o1), '401 scope', 'Redis stopped: the opaque token is refused on /update: scope');

# o2 was cached before the reload and not asked about since: its entry is
# keyed by the old tables, so the new configuration cannot find it, and
# with Redis stopped there is no answer it may use: it fails closed
is(v('/update', $o2), '503 redis_unavailable', 'Redis stopped: an opaque token cached before the reorder gets no update_catalog from the old entry');
is(v('/read', $o2), '503 redis_unavailable', 'Redis stopped: nor read_catalog: the old entry means nothing under the new tables');

$redis->resume();

ok(wait_for(sub { v('/read', $o2) eq '200' }, 5), 'Redis continued: the opaque token cached before the reorder passes /read');
is(v('/update', $o2), '401 scope', 'Redis continued: it is refused on /update: scope');

$t->stop();
$redis->stop();

$t->done_testing();
