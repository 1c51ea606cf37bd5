#!/usr/bin/perl

# Opaque tokens and named scopes (Ecwid-style) against a real Redis and
# several nginx workers: token_scope_scope names, opaque "secret_..." and
# "public_..." tokens looked up by their SHA-256 in Redis (HGETALL
# <prefix>opaque:<hex>), answers and misses cached for ttl / miss_ttl in
# the token_scope_cache zone, a PUBLISH "opaque <hex>" dropping the entry;
# public tokens and token_scope_public; scopes in JWT claims (scope, scp,
# scopes); token_scope_subject; the ecwid and rfc6750 error formats; the
# variables; operations with named scopes and the public flag; Redis
# stopped (SIGSTOP) and killed; "nginx -t" errors; and the raw tokens never
# in a log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use File::Find ();
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals);

TokenScope::Redis::check_installed();

my $OPAQUE = "$TokenScope::Test::ROOT/scripts/opaque";

plan(skip_all => "no opaque script at $OPAQUE") unless -x $OPAQUE;


# "nginx -t" refuses undeclared scope names and opaque tokens without Redis

my $c = TokenScope::Test->new();
$c->keygen('ES256', 'e1');

sub check {
    my ($http, $location) = @_;

    $c->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    $http

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        location / {
            $location
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF

    my ($rc, $out) = $c->test_config();
    return $rc == 0 ? "ok $out" : "failed $out";
}

my $redis_line = 'token_scope_redis 127.0.0.1:6399;';

like(check('', 'token_scope read_catalog;'),
     qr/^failed .*unknown token scope category or scope "read_catalog"/s,
     'nginx -t: an undeclared scope name in token_scope fails');
like(check('token_scope_scope update_catalog;',
           'token_scope content read_catalog;'),
     qr/^failed .*unknown token scope category or scope "read_catalog"/s,
     'nginx -t: a scope declared nowhere fails beside declared ones');
like(check('token_scope_scope read_catalog;',
           'token_scope content read_catalog;'),
     qr/^ok /, 'nginx -t: a declared scope and a category pass');
like(check('', 'token_scope all; token_scope_opaque on;'),
     qr/^failed .*"token_scope_opaque on" needs "token_scope_redis"/s,
     'nginx -t: token_scope_opaque on without token_scope_redis fails');
like(check($redis_line,
           'token_scope all; token_scope_opaque on ttl=30s miss_ttl=2s;'),
     qr/^ok /, 'nginx -t: token_scope_opaque on with token_scope_redis');
like(check($redis_line, 'token_scope all; token_scope_opaque maybe;'),
     qr/^failed .*must be "on" or "off"/s,
     'nginx -t: token_scope_opaque takes on or off');
like(check(<<'EOF', 'token_scope all; token_scope_operations_use shop;'),
    token_scope_operations shop {
        GET * "/api/v3/{storeId}/products" read_catalog read public;
    }
    token_scope_scope read_catalog;
EOF
     qr/^failed .*unknown token scope category or scope "read_catalog"/s,
     'nginx -t: token_scope_scope after the operations block using it '
     . 'fails');


# the server under test

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

my $conf = globals(workers => 2) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_scope read_catalog update_catalog create_orders;
    token_scope_scope public_storefront;

    token_scope_redis 127.0.0.1:%%REDIS%% timeout=300ms max_stale=10s;
    token_scope_cache zone=ts_cache:1m;

    token_scope_operations shop {
        GET   *  "/shop/{storeId}/products"       read_catalog    read  public;
        GET   *  "/shop/{storeId}/profile"        read_catalog    read;
        PUT   *  "/shop/{storeId}/products/{id}"  update_catalog  write;
        POST  *  "/shop/{storeId}/orders"         create_orders   write public;
    }

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        token_scope_opaque on ttl=60s miss_ttl=2s;

        add_header X-Worker $pid always;
        add_header X-TS-Reason $token_scope_reason always;
        add_header X-TS-Decision $token_scope_decision always;
        add_header X-TS-Type $token_scope_type always;
        add_header X-TS-Seller $token_scope_seller always;
        add_header X-TS-Scopes $token_scope_scopes always;
        add_header X-TS-Categories $token_scope_categories always;
        add_header X-TS-Id $token_scope_id always;

        location /catalog {
            token_scope read_catalog;
            proxy_pass http://backend;
        }

        location /update {
            token_scope update_catalog;
            proxy_pass http://backend;
        }

        location /content {
            token_scope content;
            proxy_pass http://backend;
        }

        location /mixed {
            token_scope content read_catalog;
            proxy_pass http://backend;
        }

        location /storefront {
            token_scope read_catalog;
            token_scope_public on;
            proxy_pass http://backend;
        }

        location /storefront-write {
            token_scope create_orders;
            token_scope_public write;
            proxy_pass http://backend;
        }

        location /secret-only {
            token_scope read_catalog;
            token_scope_types secret;
            proxy_pass http://backend;
        }

        location /ecwid {
            token_scope read_catalog;
            token_scope_error_format ecwid;
            proxy_pass http://backend;
        }

        location /rfc {
            token_scope read_catalog;
            token_scope_error_format rfc6750;
            proxy_pass http://backend;
        }

        location /forbidden {
            token_scope read_catalog;
            token_scope_deny_status 403;
            proxy_pass http://backend;
        }

        location ~ ^/api/v3/(?<store>[0-9]+)/ {
            token_scope read_catalog;
            token_scope_subject $store;
            proxy_pass http://backend;
        }

        location /shop/ {
            token_scope all;
            token_scope_operations_use shop;
            proxy_pass http://backend;
        }

        location /short {
            token_scope read_catalog;
            token_scope_opaque on ttl=1s miss_ttl=1s;
            proxy_pass http://backend;
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

$conf =~ s/%%REDIS%%/$redis->port/ge;
$t->write_config($conf);

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects to Redis and syncs at start')
    or diag($t->read_file('error.log'));


# every opaque token of the test, to look for in the logs at the end

my @raw;

sub remember_opaque {
    my ($token) = @_;
    push @raw, $token;
    $t->remember_secret($token);
    return $token;
}

# scripts/opaque against the test's Redis: (exit status, stdout, stderr)

sub opaque {
    my ($cmd, @args) = @_;

    return $t->run_cmd([ $OPAQUE, $cmd, '--redis', $redis->address, @args ]);
}

# a new opaque token from scripts/opaque issue; returns (token, digest)

sub issue {
    my (@args) = @_;

    my ($rc, $out, $err) = opaque('issue', @args);
    die "scripts/opaque issue @args failed ($rc): $err$out\n" if $rc != 0;

    chomp $out;
    my ($digest) = $err =~ /^digest ([0-9a-f]{64})$/m;

    die "scripts/opaque issue @args: no token or digest: $out $err\n"
        unless $out =~ /^(?:secret|public|opaque)_[A-Za-z0-9]{32}$/ && $digest;

    remember_opaque($out);

    return ($out, $digest);
}

# a token made up here, unknown to Redis until the test writes its hash

sub made_up {
    my ($prefix) = @_;

    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    my $token = $prefix . join '', map { $c[rand @c] } 1 .. 32;

    return remember_opaque($token);
}

sub key_of { 'token_scope:opaque:' . sha256_hex($_[0]) }

# how many HGETALL (opaque lookups) Redis has answered so far

sub hgetalls {
    my ($n) = $redis->cli('INFO', 'commandstats')
              =~ /^cmdstat_hgetall:calls=(\d+)/m;
    return $n // 0;
}

sub call {
    my ($method, $path, $token) = @_;
    return $t->request($method, $path, Authorization => "Bearer $token");
}

sub get { call('GET', @_) }

sub v { verdict(get(@_)) }

sub vm { verdict(call(@_)) }

# the verdict of a second request: an answer that came while a change was
# published (the PUBLISH of "scripts/opaque issue" may still be on its way
# to the subscriber) is not cached, the second one is

sub warm {
    my ($path, $token) = @_;

    v($path, $token);
    return v($path, $token);
}

# (verdict, seconds, response) of one GET

sub timed {
    my ($path, $token) = @_;

    my $start = time();
    my $r = get($path, $token);

    return (verdict($r), time() - $start, $r);
}

# secret tokens with and without the scope

my ($sec, $sec_d) = issue('--type', 'secret', '--subject', '1003',
                          '--scopes', 'read_catalog content update_catalog');
my ($bare) = issue('--type', 'secret', '--subject', '1003',
                   '--scopes', 'create_orders');
my ($cat_only) = issue('--type', 'secret', '--scopes', 'content');
my ($read_only) = issue('--type', 'secret', '--subject', '1003',
                        '--scopes', 'read_catalog');

is(v('/catalog', $sec), '200', 'secret token with the scope: allowed');

my $r = get('/catalog', $sec);
is($r->{headers}{'x-ts-reason'}, 'ok', '$token_scope_reason ok');
is($r->{headers}{'x-ts-decision'}, 'allow', '$token_scope_decision allow');
is($r->{body}, "backend ok\n", 'the request reached the upstream');

my ($all, $workers) = $t->every_worker('/catalog', $sec, 12);

# reuseport spreads connections by a hash of their ports: 12 in a row on
# one worker is rare (seen once under ASan with two suites running), so
# more connections decide
($all, $workers) = $t->every_worker('/catalog', $sec, 60) if $workers < 2;
is($all, '200', 'allowed on every connection');
is($workers, 2, 'both workers answer the test connections');

is(v('/update', $sec), '200', 'another declared scope it holds: allowed');
is(v('/catalog', $bare), '401 scope', 'secret token without the scope: scope');

$r = get('/catalog', $bare);
is($r->{headers}{'x-ts-reason'}, 'scope', '$token_scope_reason scope');
is($r->{headers}{'x-ts-decision'}, 'deny', '$token_scope_decision deny');
like($r->{json}{detail} // '', qr/read_catalog/,
     'the detail names the missing scope');
like($r->{headers}{'www-authenticate'} // '',
     qr/error="insufficient_scope", scope="read_catalog"/,
     'WWW-Authenticate names the missing scope');

is(v('/forbidden', $bare), '403 scope', 'token_scope_deny_status 403 (wb)');

is(v('/content', $cat_only), '200',
   'a category name in "scopes" grants the category');
is(v('/content', $read_only), '401 category',
   'without the category: category');
is(v('/mixed', $sec), '200', 'a category and a scope, both held: allowed');
is(v('/mixed', $read_only), '401 category',
   'a category and a scope, the category missing: category');
is(v('/mixed', $cat_only), '401 scope',
   'a category and a scope, the scope missing: scope');

$r = get('/ecwid', $bare);
is($r->{status}, 403, 'ecwid: a missing scope is 403');
is($r->{body},
   '{"errorMessage":"Access token doesn\'t have `read_catalog` scope",'
   . '"errorCode":"scope"}',
   'ecwid: the exact body');
like($r->{headers}{'content-type'} // '', qr{^application/json},
     'ecwid: application/json');
is(v('/ecwid', $sec), '200', 'ecwid: the scope held: allowed');

my ($based) = issue('--type', 'base', '--scopes', 'read_catalog');
is(v('/secret-only', $sec), '200', 'token_scope_types secret: secret passes');
is(v('/secret-only', $based), '401 token_type',
   'token_scope_types secret: a base opaque token is token_type');

# an expired token: its hash written here

my $old = made_up('secret_');
$redis->cli('HSET', key_of($old), 'type', 'secret', 'scopes', 'read_catalog',
            'expires', int(time()) - 60);
is(v('/catalog', $old), '401 expired', 'an opaque token past expires: expired');

# a hash that describes no valid token, or a key that is no hash: unknown,
# and the operator hears of it by the token's id

my $odd = made_up('secret_');
$redis->cli('HSET', key_of($odd), 'type', 'robot', 'scopes', 'read_catalog');
is(v('/catalog', $odd), '401 unknown_token', 'an invalid type: unknown_token');
like($t->read_file('error.log'),
     qr/opaque token "\Q${\ substr(sha256_hex($odd), 0, 16)}\E" in Redis: (?#
        )invalid "type", treated as unknown/,
     'logged: invalid "type", treated as unknown');

my $str = made_up('secret_');
$redis->cli('SET', key_of($str), 'secret read_catalog');
is(v('/catalog', $str), '401 unknown_token', 'a key that is a string: '
   . 'unknown_token');
like($t->read_file('error.log'),
     qr/opaque token "\Q${\ substr(sha256_hex($str), 0, 16)}\E" in Redis (?#
        )is not a hash, treated as unknown/,
     'logged: not a hash, treated as unknown');

my $never = made_up('secret_');
$redis->cli('HSET', key_of($never), 'type', 'secret', 'scopes', 'read_catalog',
            'expires', 0);
is(v('/catalog', $never), '200', 'expires 0: never expires');


# public tokens

my ($pub) = issue('--type', 'public', '--subject', '1003');
my ($pub_orders) = issue('--type', 'public', '--subject', '1003',
                         '--scopes', 'create_orders');

is(v('/storefront', $pub), '200',
   'public token, public location, a read: allowed without the scope');
is(get('/storefront', $pub)->{headers}{'x-ts-type'}, 'public',
   '$token_scope_type public');
is(v('/catalog', $pub), '401 public_token',
   'public token on a private location: public_token');
is(get('/catalog', $pub)->{headers}{'x-ts-reason'}, 'public_token',
   '$token_scope_reason public_token');
is(vm('POST', '/storefront', $pub), '401 read_only',
   'public token, a write on an "on" location: read_only');
is(vm('POST', '/storefront', $pub_orders), '401 read_only',
   'whatever its scopes');
is(v('/storefront-write', $pub), '200',
   'a read on a "write" location: allowed without the scope');
is(vm('POST', '/storefront-write', $pub), '401 scope',
   'a write on a "write" location without the scope: scope');
is(vm('POST', '/storefront-write', $pub_orders), '200',
   'a write on a "write" location with the scope: allowed');
is(v('/storefront', $bare), '401 scope',
   'a secret token needs the scope on a public location too');
is(vm('POST', '/storefront-write', $sec), '401 scope',
   'a secret token writing on a "write" location needs the scope');

$r = call('POST', '/ecwid', $pub);
is($r->{status}, 403, 'ecwid: a public token on a private location is 403');
is(eval { JSON::PP->new->decode($r->{body})->{errorCode} } // '',
   'public_token', 'ecwid: errorCode public_token');


# operations with named scopes and the public flag

is(v('/shop/1003/products', $pub), '200',
   'operations: a public token reads a public operation');
is(v('/shop/1003/profile', $pub), '401 public_token',
   'operations: not an operation marked public: public_token');
is(vm('POST', '/shop/1003/orders', $pub), '401 scope',
   'operations: a public write without its scope: scope');
is(vm('POST', '/shop/1003/orders', $pub_orders), '200',
   'operations: a public write with its scope: allowed');
is(vm('PUT', '/shop/1003/products/7', $pub_orders), '401 public_token',
   'operations: a write not marked public: public_token');
is(v('/shop/1003/products', $read_only), '200',
   'operations: a secret token with the scope reads');
is(v('/shop/1003/profile', $bare), '401 scope',
   'operations: a secret token without the scope: scope');
is(vm('POST', '/shop/1003/orders', $read_only), '401 scope',
   'operations: a secret token writes only with the scope');
is(vm('PUT', '/shop/1003/products/7', $sec), '200',
   'operations: a secret token with update_catalog writes');


# an unknown token, and its miss cached for miss_ttl: 2s here, since nginx
# counts whole seconds (a 1s entry may go stale a moment after it is made)

my $ghost = made_up('secret_');

my $first = time();
is(v('/catalog', $ghost), '401 unknown_token', 'an unknown token: unknown_token');

$r = get('/catalog', $ghost);
is($r->{headers}{'x-ts-reason'}, 'unknown_token',
   '$token_scope_reason unknown_token');

# written without PUBLISH: only miss_ttl ends the cached miss
$redis->cli('HSET', key_of($ghost), 'type', 'secret', 'scopes',
            'read_catalog', 'created', int time());

# an unknown token's miss is cached for miss_ttl (2s at /catalog): nginx
# counts whole seconds, so the entry is sure to last 1s after $first

my $miss_ttl = 2;
my $took;

($all) = $t->every_worker('/catalog', $ghost, 8);
$took = time() - $first;

SKIP: {
    skip(sprintf('the requests took %.2fs, past the 1s a cached miss is '
                 . 'sure to last', $took), 1) if $took >= $miss_ttl - 1;

    is($all, '401 unknown_token', 'the hash created: still unknown on every worker (the miss is cached)');
}

ok(wait_for(sub { v('/catalog', $ghost) eq '200' }, 4 * $miss_ttl),
   'known once miss_ttl has passed');
$took = time() - $first;

cmp_ok($took, '>=', $miss_ttl - 1.1, sprintf('not before miss_ttl (%.2fs)', $took));

# miss_ttl, a second of rounding, and as much again for a slow machine;
# still far from the 60s of a found token's ttl
cmp_ok($took, '<', 2 * $miss_ttl + 1, 'nor much after');

# Redis hears one HGETALL for an unknown token, then the cache answers

my $nobody = made_up('secret_');
my $before = hgetalls();
my @seen = map { v('/catalog', $nobody) } 1 .. 6;
my $asked = hgetalls() - $before;
is(join(', ', sort { $a cmp $b } keys %{{ map { $_ => 1 } @seen }}),
   '401 unknown_token', 'six requests with an unknown token: unknown_token');

is($asked, 1, 'Redis was asked once (HGETALL calls in INFO commandstats)');

# a miss dropped by the PUBLISH of scripts/opaque

my $late = made_up('secret_');
is(v('/catalog', $late), '401 unknown_token', 'another unknown token');
$redis->cli('HSET', key_of($late), 'type', 'secret', 'scopes', 'read_catalog');

is(v('/catalog', $late), '401 unknown_token', 'cached miss');
my ($rc, $out, $err) = opaque('unrevoke', sha256_hex($late));
is($rc, 0, 'scripts/opaque unrevoke publishes a change') or diag($err);
ok(wait_for(sub { v('/catalog', $late) eq '200' }, 1),
   'the PUBLISH drops the cached miss at once');


# revoked while cached

my ($rev, $rev_d) = issue('--type', 'secret', '--scopes', 'read_catalog');

is(warm('/catalog', $rev), '200', 'a token passes (and is cached, ttl 60s)');

$before = hgetalls();
($all) = $t->every_worker('/catalog', $rev, 8);
is($all, '200', 'on every worker');
is(hgetalls() - $before, 0, 'answered from the cache: Redis is not asked');

# written without PUBLISH: the cached answer stands
$redis->cli('HSET', "token_scope:opaque:$rev_d", 'revoked', '1');
($all) = $t->every_worker('/catalog', $rev, 8);
is($all, '200', 'revoked in Redis without PUBLISH: the cached answer stands');

$redis->cli('PUBLISH', 'token_scope:revocations', "opaque $rev_d");
ok(wait_for(sub { v('/catalog', $rev) eq '401 revoked' }, 2),
   'PUBLISH "opaque <hex>" drops the cached entry: revoked');

($rc, $out, $err) = opaque('unrevoke', $rev_d);
is($rc, 0, 'scripts/opaque unrevoke') or diag($err);
ok(wait_for(sub { v('/catalog', $rev) eq '200' }, 2), 'passes again');
is(v('/catalog', $rev), '200', 'and is cached again');

($rc, $out, $err) = opaque('revoke', $rev_d);
is($rc, 0, 'scripts/opaque revoke') or diag($err);
like($out, qr/^\Q${\ substr($rev_d, 0, 16)}\E: revoked; [1-9]\d* subscriber/m,
     'scripts/opaque revoke: a subscriber heard it');

# the entry is cached for ttl=60s: a refusal long before that is the
# PUBLISH's doing, however slow the machine
my $ttl = 60;
my $start = time();
ok(wait_for(sub { v('/catalog', $rev) eq '401 revoked' }, $ttl / 6),
   'the next request is refused: revoked');
$took = time() - $start;
cmp_ok($took, '<', $ttl / 6, sprintf('by the PUBLISH, long before the 60s ttl (%.2fs)', $took));

($all) = $t->every_worker('/catalog', $rev, 12);
is($all, '401 revoked', 'refused on every worker');

$r = get('/catalog', $rev);
is($r->{headers}{'x-ts-reason'}, 'revoked', '$token_scope_reason revoked');
like($r->{headers}{'www-authenticate'} // '', qr/error="invalid_token"/,
     'WWW-Authenticate invalid_token');

$r = get('/ecwid', $rev);
is($r->{status}, 401, 'ecwid: revoked is 401');
is(eval { JSON::PP->new->decode($r->{body})->{errorCode} } // '', 'revoked',
   'ecwid: errorCode revoked');

($rc, $out, $err) = opaque('unrevoke', $rev_d);
is($rc, 0, 'scripts/opaque unrevoke');
like($out, qr/: unrevoked; /, 'says unrevoked');
ok(wait_for(sub { v('/catalog', $rev) eq '200' }, 2),
   'an unrevoked token passes again');
($all) = $t->every_worker('/catalog', $rev, 12);
is($all, '200', 'on every worker');

($rc, $out, $err) = opaque('delete', $rev_d);
is($rc, 0, 'scripts/opaque delete');
ok(wait_for(sub { v('/catalog', $rev) eq '401 unknown_token' }, 2),
   'a deleted token is unknown at once');


# scopes in JWT claims

my @mp = ('--categories', 'marketplace');

my $jwt_scope = $t->mint('e1', @mp, '--claim',
                         'scope="public_storefront read_catalog"');
my $jwt_scp = $t->mint('e1', @mp, '--claim',
                       'scp=["update_catalog","read_catalog"]');
my $jwt_scopes = $t->mint('e1', @mp, '--claim', 'scopes="read_catalog"');
my $jwt_scopes_arr = $t->mint('e1', @mp, '--claim',
                              'scopes=["read_catalog"]');
my $jwt_other = $t->mint('e1', @mp, '--claim', 'scope="update_catalog"');
my $jwt_scp_other = $t->mint('e1', @mp, '--claim', 'scp=["update_catalog"]');
my $jwt_none = $t->mint('e1', @mp);

is(v('/catalog', $jwt_scope), '200', 'JWT: "scope" string grants the scope');
is(get('/catalog', $jwt_scope)->{headers}{'x-ts-scopes'},
   'read_catalog,public_storefront',
   'JWT: $token_scope_scopes lists the granted names');
is(v('/catalog', $jwt_scp), '200', 'JWT: "scp" array grants the scope');
is(v('/update', $jwt_scp), '200', 'JWT: "scp" array, its other element');
is(v('/catalog', $jwt_scopes), '200', 'JWT: "scopes" string grants it');
is(v('/catalog', $jwt_scopes_arr), '200', 'JWT: "scopes" array grants it');
is(v('/catalog', $jwt_other), '401 scope', 'JWT: "scope" without it: scope');
is(v('/catalog', $jwt_scp_other), '401 scope',
   'JWT: "scp" without it: scope');
is(v('/catalog', $jwt_none), '401 scope', 'JWT without the claim: scope');
is(v('/content', $jwt_none), '401 category',
   'JWT: categories still come from "s"');

$r = get('/ecwid', $jwt_none);
is($r->{status}, 403, 'JWT, ecwid: 403');
is($r->{body},
   '{"errorMessage":"Access token doesn\'t have `read_catalog` scope",'
   . '"errorCode":"scope"}',
   'JWT, ecwid: the exact body');


# token_scope_subject with a regex location capture

my ($nosub) = issue('--type', 'secret', '--scopes', 'read_catalog');

is(v('/api/v3/1003/products', $sec), '200',
   'subject: the store of the path is the token\'s subject');
is(v('/api/v3/1004/products', $sec), '401 subject',
   'subject: another store: subject');
is(get('/api/v3/1004/products', $sec)->{headers}{'x-ts-reason'}, 'subject',
   '$token_scope_reason subject');
is(v('/api/v3/1003/products', $nosub), '401 subject',
   'subject: a token without a subject: subject');
is(v('/api/v3/1003/products', $pub), '401 public_token',
   'subject: a public token on a private location is still public_token');

my $jwt_store = $t->mint('e1', @mp, '--claim', 'sid="1003"',
                         '--claim', 'scp=["read_catalog"]');
is(v('/api/v3/1003/products', $jwt_store), '200',
   'subject: a JWT whose sid is the store');
is(v('/api/v3/1004/products', $jwt_store), '401 subject',
   'subject: a JWT of another store');
is(v('/api/v3/1003/products', $jwt_scp), '401 subject',
   'subject: a JWT with another sid');


# error formats

$ghost = made_up('secret_');

$r = get('/ecwid', $ghost);
is($r->{status}, 401, 'ecwid: an unknown token is 401');
is($r->{body}, '{"errorMessage":"Invalid access token",'
               . '"errorCode":"unknown_token"}',
   'ecwid: the exact body of an unknown token');

$r = get('/rfc', $bare);
is($r->{status}, 403, 'rfc6750: a missing scope is 403');
is($r->{body}, '', 'rfc6750: no body');
is($r->{headers}{'www-authenticate'},
   'Bearer error="insufficient_scope", scope="read_catalog"',
   'rfc6750: WWW-Authenticate insufficient_scope with the scope');

$r = get('/rfc', $ghost);
is($r->{status}, 401, 'rfc6750: an unknown token is 401');
is($r->{body}, '', 'rfc6750: no body');
like($r->{headers}{'www-authenticate'} // '',
     qr/^Bearer error="invalid_token"/,
     'rfc6750: WWW-Authenticate invalid_token');

$r = $t->get('/rfc');
is($r->{status}, 401, 'rfc6750: no token is 401');
is($r->{headers}{'www-authenticate'}, 'Bearer',
   'rfc6750: WWW-Authenticate Bearer alone');

is(get('/rfc', $sec)->{status}, 200, 'rfc6750: the scope held: allowed');

$r = get('/catalog', $ghost);
is(verdict($r), '401 unknown_token', 'wb: the usual JSON for unknown_token');


# the variables of an opaque token

$r = get('/catalog', $sec);
is($r->{headers}{'x-ts-type'}, 'secret', '$token_scope_type secret');
is($r->{headers}{'x-ts-seller'}, '1003', '$token_scope_seller: the subject');
is($r->{headers}{'x-ts-scopes'}, 'read_catalog,update_catalog',
   '$token_scope_scopes: the granted named scopes');
is($r->{headers}{'x-ts-categories'}, 'content',
   '$token_scope_categories: the granted categories');
is($r->{headers}{'x-ts-id'}, substr($sec_d, 0, 16),
   '$token_scope_id: the first 16 hex digits of the digest');
is($sec_d, sha256_hex($sec), '(the digest is the SHA-256 of the token)');

$r = get('/storefront', $pub_orders);
is($r->{headers}{'x-ts-type'}, 'public', 'public token: $token_scope_type');
is($r->{headers}{'x-ts-scopes'}, 'create_orders',
   'public token: $token_scope_scopes');
is($r->{headers}{'x-ts-id'}, substr(sha256_hex($pub_orders), 0, 16),
   'public token: $token_scope_id');

$r = get('/catalog', $based);
is($r->{headers}{'x-ts-type'}, 'base', 'base token: $token_scope_type');
is($r->{headers}{'x-ts-seller'} // '', '', 'no subject: empty seller');


# Redis stopped (SIGSTOP): lookups give up after timeout=300ms

my ($cached) = issue('--type', 'secret', '--scopes', 'read_catalog');
my ($uncached) = issue('--type', 'secret', '--scopes', 'read_catalog');

is(warm('/short', $cached), '200', 'a token passes (cached with ttl=1s)');
($all) = $t->every_worker('/short', $cached, 4);
is($all, '200', 'on every connection');

# the ttl counts nginx's whole seconds: an entry last refreshed during
# second S is past it from S + 1 on; wait for the clock to get there
my $past_ttl = int(time()) + 1;
sleep 0.05 while time() < $past_ttl;

$redis->pause();
my $paused = time();
my $log_at_pause = length $t->read_file('error.log');

my ($v, $s, $resp) = timed('/short', $uncached);
is($v, '503 redis_unavailable',
   'Redis stopped: an uncached token is redis_unavailable');
cmp_ok($s, '<', 2, sprintf('answered within about the timeout (%.2fs)', $s));
is($resp->{headers}{'x-ts-reason'}, 'redis_unavailable',
   '$token_scope_reason redis_unavailable');

($v, $s) = timed('/short', $cached);
is($v, '200', 'Redis stopped: a cached token past its ttl still passes');
cmp_ok($s, '<', 2, sprintf('promptly (%.2fs)', $s));

my @bad;
for (1 .. 6) {
    for my $case ([ $cached, '200' ], [ $uncached, '503 redis_unavailable' ]) {
        my ($v, $s) = timed('/short', $case->[0]);
        push @bad, sprintf('%s %.2fs', $v, $s)
            if $v ne $case->[1] || $s >= 2;
    }
}
is(scalar @bad, 0, 'so on every worker, each within 2s') or diag("@bad");

$r = get('/ecwid', $uncached);
is($r->{status}, 503, 'ecwid: redis_unavailable is 503, the server fault');
is(eval { JSON::PP->new->decode($r->{body})->{errorCode} } // '',
   'redis_unavailable', 'ecwid: errorCode redis_unavailable');

cmp_ok(time() - $paused, '<', 10, '(all that within max_stale)');

# a timed out lookup drops the link and logs the outage once: the
# reconnect to the stopped Redis succeeds (the kernel accepts it), but
# the link counts as up only when Redis answers

my @stall = grep { /lookup failed/ }
            split /\n/, substr($t->read_file('error.log'), $log_at_pause);

cmp_ok(scalar @stall, '<=', 2,
       'the stall is logged once per worker, not per request ('
       . scalar(@stall) . ' lines)');

$redis->resume();

my ($fresh) = issue('--type', 'secret', '--scopes', 'read_catalog');
ok(wait_for(sub { v('/short', $fresh) eq '200' }, 6),
   'Redis continued: a new token works again');
ok(wait_for(sub { v('/short', $uncached) eq '200' }, 3),
   'and the token refused during the stall');
($all) = $t->every_worker('/short', $fresh, 8);
is($all, '200', 'on every worker');


# Redis killed: an uncached token is redis_unavailable at once

my ($cached2) = issue('--type', 'secret', '--scopes', 'read_catalog');
my ($never_seen) = issue('--type', 'secret', '--scopes', 'read_catalog');

# a worker may still wait out its reconnect backoff (at most 1s)
ok(wait_for(sub { warm('/catalog', $cached2) eq '200' }, 3),
   'a token passes (cached, ttl 60s)');

$redis->kill9();

@bad = ();
my $slowest = 0;
for (1 .. 8) {
    my ($v, $s) = timed('/catalog', $never_seen);
    push @bad, $v if $v ne '503 redis_unavailable';
    $slowest = $s if $s > $slowest;
}
is(scalar @bad, 0, 'Redis killed: an uncached token is redis_unavailable')
    or diag("@bad");
cmp_ok($slowest, '<', 1, sprintf('quickly (slowest %.2fs)', $slowest));

($all) = $t->every_worker('/catalog', $cached2, 8);
is($all, '200', 'Redis killed: a cached token still passes');


# no raw token in any log

$t->stop();

my @logs;
File::Find::find({ no_chdir => 1, wanted => sub {
    push @logs, $_ if -f $_ && /log$/;
} }, $t->testdir);

ok(scalar(grep { m{/error\.log$} } @logs), 'the error log is there');
ok(scalar(grep { m{/access\.log$} } @logs), 'the access log is there');

my $access = $t->read_file('access.log');
like($access, qr/id=\Q${\ substr($sec_d, 0, 16)}\E /,
     'the access log names an opaque token by its id');

my @leaks;
for my $file (@logs) {
    my $content = $t->read_file($file);
    for my $token (@raw) {
        # the token, or its 32 random characters
        push @leaks, "$file: ..." . substr($token, -6)
            if index($content, $token) >= 0
               || index($content, substr($token, -32)) >= 0;
    }
}
is(scalar @leaks, 0,
   scalar(@raw) . ' opaque tokens: none appears in any log file')
    or diag(join "\n", @leaks);

$redis->stop();

$t->done_testing();
