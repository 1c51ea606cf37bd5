#!/usr/bin/perl

# The smaller fail-open cases of issue 14 (SPEC section 13) and the answer
# to a Redis outage, against a real Redis:
# - an opaque token's "revoked" field: any value but empty or "0" revokes;
# - seller revocation: a token whose issue time would lie in the future
#   (no iat and exp more than lifetime= ahead, an iat ahead of now within
#   the leeway, a UUIDv7 id ahead of now) counts as issued at the epoch;
# - a flood of unknown opaque tokens into a small cache zone evicts no
#   valid token's entry: it still answers, from the fallback, with Redis
#   stopped;
# - that Redis knows no such token is kept for miss_ttl only, never as a
#   fallback: a token written to Redis since is redis_unavailable, not
#   unknown_token, while Redis cannot answer;
# - in a zone exactly full of known tokens an unknown token evicts none
#   of them and is not cached;
# - Redis out of reach for longer than max_stale: 503 with Retry-After and
#   code redis_unavailable, one warn line when the refusals start and
#   one notice when they end.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(time);
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals uuid7);

TokenScope::Redis::check_installed();


# the server of the first cases: a small cache, lifetime=1h, a leeway

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

# an HMAC key: JWTs signed here without an openssl process each, to fill
# the cache zone
$t->keygen('HS256', 'h1');

my $conf = globals(workers => 2) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_key_file %%KEYS%%/h1.jwks;

    token_scope_scope read_catalog;

    token_scope_redis 127.0.0.1:%%REDIS%% timeout=200ms max_stale=30s lifetime=1h;
    token_scope_cache zone=c:64k;
    token_scope_leeway 60s;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        # ttl=1s: a found token's answer is soon only a fallback
        token_scope_opaque on ttl=1s miss_ttl=1s;

        location / {
            token_scope marketplace;
            proxy_pass http://backend;
        }

        location /read {
            token_scope read_catalog;
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

$conf =~ s/%%REDIS%%/$redis->port/ge;
$t->write_config($conf);

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects to Redis and syncs at start')
    or diag($t->read_file('error.log'));


sub get {
    my ($path, $token) = @_;
    return $t->get($path, Authorization => "Bearer $token");
}

sub v { verdict(get(@_)) }

# a made-up opaque token, unknown to Redis until a hash is written for it

sub made_up {
    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    return $t->remember_secret('secret_' . join '', map { $c[rand @c] } 1 .. 32);
}

# TOKEN written to Redis: the hash type secret, scopes read_catalog, FIELDS

sub known {
    my ($token, @fields) = @_;

    $redis->cli('HSET', 'token_scope:opaque:' . sha256_hex($token),
                'type', 'secret', 'scopes', 'read_catalog', @fields);

    return $token;
}

# a new opaque token with that hash

sub opaque { known(made_up(), @_) }

# the cache counters of the status page, { entries => N, ... }

sub cache {
    my %m = $t->get('/status')->{body} =~ /^token_scope_cache_(\w+) (\d+)$/mg;
    return \%m;
}

# whether every worker whose opaque token lookups failed has had an
# answer from Redis since (it reconnects after a backoff and logs the
# first answer); each call asks about a new valid token (an unknown one
# would take a slot of the unknown tokens), so that some worker does a
# lookup

sub lookups_answered {
    v('/read', opaque());

    my %down;

    for (lines(qr/opaque tokens fall back to the cache|answers opaque token lookups again/)) {
        my ($pid) = /(\d+)#\d+: / or next;
        $down{$pid} = /fall back/ ? 1 : 0;
    }

    return !grep { $_ } values %down;
}

# the lines of the error log matching RE, from offset FROM on

sub lines {
    my ($re, $from) = @_;
    return grep { $_ =~ $re } split /\n/, substr($t->read_file('error.log'), $from // 0);
}


# the "revoked" field of an opaque token

is(v('/read', opaque()), '200', 'an opaque token without a revoked field passes');
is(v('/read', opaque('revoked', '0')), '200', 'revoked 0: passes');
is(v('/read', opaque('revoked', '')), '200', 'revoked empty: passes');
is(v('/read', opaque('revoked', '1')), '401 revoked', 'revoked 1: refused as revoked');
is(v('/read', opaque('revoked', 'true')), '401 revoked', 'revoked true: refused as revoked');
is(v('/read', opaque('revoked', 'yes')), '401 revoked', 'revoked yes: refused as revoked');
is(v('/read', opaque('revoked', '2026-01-01')), '401 revoked', 'revoked 2026-01-01: refused as revoked');
is(v('/read', opaque('revoked', 'x')), '401 revoked', 'revoked x: refused as revoked');


# seller revocation: an issue time in the future is no issue time

my $sid = '6a1e0c52-5b7e-4d7a-9d2b-00000000f001';
my $other = '6a1e0c52-5b7e-4d7a-9d2b-00000000f002';
my $now = int time();
my $T = $now - 50;

sub seller_token {
    my ($seller, @claims) = @_;
    return $t->mint('e1', '--categories', 'marketplace', '--claim', "sid=\"$seller\"", map { ('--claim', $_) } @claims);
}

# without iat, a v4 id, exp three days ahead: exp - lifetime is 71h ahead
my $long = $t->mint('e1', '--categories', 'marketplace', '--exp-in', 3 * 86400, '--claim', "sid=\"$sid\"", '--claim', 'iat=null', '--claim', 'id="' . TokenScope::Test::uuid() . '"');
my $ahead = seller_token($sid, 'iat=' . ($now + 30));
my $v7_ahead = seller_token($sid, 'iat=null', 'id="' . uuid7(($now + 30) * 1000) . '"');
my $old = seller_token($sid, 'iat=' . ($now - 100));
my $newer = seller_token($sid, 'iat=' . ($now - 10));
my $stranger = seller_token($other, 'iat=' . ($now - 100));

is(v('/', $long), '200', 'a token without iat whose exp is 3 days ahead (lifetime=1h) passes before any revocation');
is(v('/', $ahead), '200', 'a token whose iat is 30s ahead (leeway 60s) passes before any revocation');
is(v('/', $v7_ahead), '200', 'a token without iat whose UUIDv7 id is 30s ahead passes before any revocation');
is(v('/', $old), '200', 'a token of the seller issued before the revocation time passes before it');

my ($rc, $out) = $redis->script('revoke-seller', $sid, $T);
is($rc, 0, 'scripts/revoke-seller SID TIME writes revoked:sellers') or diag($out);
is($redis->cli('HGET', 'token_scope:revoked:sellers', $sid), $T, 'the hash holds sid -> time');

ok(wait_for(sub { v('/', $old) eq '401 revoked' }, 3), 'the seller revocation arrives: a token issued before it is revoked');

is(v('/', $long), '401 revoked', 'a token of the seller without iat whose exp is more than lifetime ahead is revoked');
is(v('/', $ahead), '401 revoked', 'a token of the seller whose iat is ahead of now (within the leeway) is revoked');
is(v('/', $v7_ahead), '401 revoked', 'a token of the seller without iat whose UUIDv7 id is ahead of now is revoked');
is(v('/', $newer), '200', 'a token of the seller issued after the revocation time passes');
is(v('/', $stranger), '200', 'a token of another seller passes');


# a flood of unknown opaque tokens evicts no valid token's entry

my $valid = opaque();

is(v('/read', $valid), '200', 'a valid opaque token passes (and is cached)');
my $looked_up = time();

my %seen;
$seen{ v('/read', made_up()) }++ for 1 .. 600;
is(join(', ', sort keys %seen), '401 unknown_token', '600 random opaque tokens: each is unknown_token');

diag('cache after the flood: ' . join ' ', $t->get('/status')->{body} =~ /^token_scope_cache_(\w+ \d+)$/mg);

# the valid token's answer must be past its ttl=1s (whole seconds, so 2s):
# the flood usually took longer already
wait_for(sub { time() - $looked_up > 2.1 }, 5);

$redis->pause();

my $at = length $t->read_file('error.log');

is(v('/read', $valid), '200', 'Redis stopped: the valid opaque token still passes from the cached fallback');
like(substr($t->read_file('error.log'), $at), qr/opaque token lookup timed out/, 'that answer came after a lookup timed out: the entry was past its ttl');

$redis->resume();

ok(wait_for(sub { v('/read', $valid) eq '200' }, 5), 'Redis continued: the valid opaque token passes');


# an unknown token's answer lives miss_ttl=1s only, never as a fallback:
# a token written to Redis since is not refused as unknown_token from the
# expired entry while Redis cannot answer

ok(wait_for(\&lookups_answered, 5), 'Redis answers the opaque token lookups of every worker again');

my $late = made_up();

is(v('/read', $late), '401 unknown_token', 'a made-up opaque token is unknown_token (and cached as unknown for miss_ttl)');
my $missed = time();

known($late);

# past miss_ttl=1s: the entry expires at the whole second after it was
# stored, which is at most 1s from now
wait_for(sub { time() - $missed > 1.1 }, 5);

$redis->pause();

is(v('/read', $late), '503 redis_unavailable', 'past miss_ttl, Redis stopped: the token written to Redis since is redis_unavailable, never unknown_token from the expired entry');

$redis->resume();

ok(wait_for(sub { v('/read', $late) eq '200' }, 5), 'Redis continued: the token written to Redis since passes');
ok(wait_for(\&lookups_answered, 5), 'and Redis answers the opaque token lookups of every worker again');


# a zone exactly full of known tokens (the valid opaque ones, then
# verified JWTs): an unknown token evicts none of them; after the case
# above, whose unknown entry would not be cached in a full zone

my $evictions = cache()->{evictions_total};
my $jwts = 0;

# JWTs until the zone is full and evicts (4 entries, one slot taken) ...
until (cache()->{evictions_total} > $evictions || $jwts++ > 2000) {
    get('/read', $t->craft(key => 'h1'));
}

# ... and 3 more for the slots the eviction freed
get('/read', $t->craft(key => 'h1')) for 1 .. 3;

my $full = cache();
diag("cache after $jwts+3 JWTs: " . join ' ', map { "$_=$full->{$_}" } sort keys %$full);
cmp_ok($full->{evictions_total}, '>', $evictions, 'verified JWTs fill the zone until it evicts');

is(v('/read', made_up()), '401 unknown_token', 'a made-up opaque token into a zone full of known tokens is unknown_token');
is(cache()->{evictions_total}, $full->{evictions_total}, 'the unknown token evicts none of the known tokens of the full zone');
is(cache()->{entries}, $full->{entries}, 'and the unknown token is not cached in the full zone');

$t->stop();


# Redis out of reach for longer than max_stale: the same test directory
# and Redis, nginx started again with another configuration

my $conf2 = globals(workers => 2) . <<'EOF2';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_redis 127.0.0.1:%%REDIS%% max_stale=1s timeout=200ms;

    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        location / {
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
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
EOF2

$conf2 =~ s/%%REDIS%%/$redis->port/ge;
$t->write_config($conf2);

# the error log of this nginx starts here
my $from = length $t->read_file('error.log');

$t->run();

ok(wait_for(sub { substr($t->read_file('error.log'), $from) =~ /redis.*synced/i }, 5), 'nginx started again connects to Redis and syncs')
    or diag($t->read_file('error.log'));

my $token = $t->mint('e1', '--categories', 'marketplace');

is(v('/', $token), '200', 'a valid token passes while Redis answers');

$redis->pause();

is(v('/', $token), '200', 'Redis just stopped (within max_stale=1s): the token still passes');

ok(wait_for(sub { v('/', $token) =~ /redis_unavailable/ }, 10), 'once max_stale has passed the token is refused for redis_unavailable');

my $r = get('/', $token);
is(verdict($r), '503 redis_unavailable', 'the refusal is 503 with code redis_unavailable');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'the refusal has a Retry-After header in seconds');

my %outage;
$outage{ v('/', $token) }++ for 1 .. 10;
is(join(', ', sort keys %outage), '503 redis_unavailable', 'ten more requests: each 503 redis_unavailable');

wait_for(sub { lines(qr/older than max_stale/, $from) > 0 }, 3);
my @start = lines(qr/older than max_stale/, $from);
is(scalar @start, 1, 'the error log has exactly one line saying the state is older than max_stale') or diag(join "\n", @start);
like($start[0] // '', qr/\[warn\]/, 'that line is at the warn level');

$redis->resume();

ok(wait_for(sub { v('/', $token) eq '200' }, 15), 'Redis continued: once the state is fresh the token passes again')
    or diag(join "\n", lines(qr/redis/i, $from));

wait_for(sub { lines(qr/current again/, $from) > 0 }, 3);
my @end = lines(qr/current again/, $from);
is(scalar @end, 1, 'the error log has exactly one line saying the state is current again') or diag(join "\n", @end);
like($end[0] // '', qr/\[notice\]/, 'that line is at the notice level');
is(scalar(lines(qr/older than max_stale/, $from)), 1, 'and still exactly one line saying it was older than max_stale');

$t->stop();
$redis->stop();

$t->done_testing();
