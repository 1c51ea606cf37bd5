#!/usr/bin/perl

# The limits of the verified-token cache (token_scope_cache, issue 19):
# how long an entry is served, and what a full zone does.
#
#   max_ttl=3s   a verified JWT is served from the cache for at most
#                max_ttl: the first request after it is a miss, and the
#                token is verified again and cached again, its expired
#                entry replaced;
#   exp          with max_ttl=1h, an entry still ends at the token's exp:
#                after it the token is a miss, refused with expired, or,
#                within token_scope_leeway, verified on every request;
#   32k zone     filled with distinct tokens, the zone evicts its least
#                recently used entries (token_scope_cache_evictions_total),
#                the evicted tokens are misses and every token passes;
#   zone full    a token whose entry needs a larger slab size than the
#                entries filling the zone (a kid of 24 bytes) finds no room
#                even after eviction: it goes uncached and passes, and the
#                alert is logged once.
#
# The hits and misses are read from the status page around each request;
# one worker process, so that every request is counted as it is sent.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

# HS256 keys: tokens are signed in-process, hundreds of them in a second.
# Entries of tokens of "h1" (kid 2 bytes, id and sid 36 each) take 242
# bytes of the zone, a 256-byte slab; the kid of LONG makes 264, a 512-byte
# slab (168 bytes of node and rbtree header, then kid, id, sid, service)

my $LONG = 'rotation-2025-05-20-east';

$t->keygen('HS256', 'h1');
$t->keygen('HS256', $LONG);

my $template = <<'EOF';
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/h1.jwks;
    token_scope_key_file %%KEYS%%/%%LONG%%.jwks;

    %%CACHE%%

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        # leeway 0s, the default
        location /strict {
            token_scope all;
            proxy_pass http://backend;
        }

        location /lenient {
            token_scope all;
            token_scope_leeway 30s;
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

# nginx restarted with another token_scope_cache line: a new zone

sub start {
    my ($cache) = @_;

    my $conf = $template;
    $conf =~ s/%%CACHE%%/$cache/;
    $conf =~ s/%%LONG%%/$LONG/;

    $t->stop();
    $t->write_config($conf);
    $t->run();
}

# the token_scope_cache_NAME sample of the status page

sub counter {
    my ($name) = @_;
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_\Q$name\E (\d+)$/m;
    return $v // -1;
}

# one request: "VERDICT, hits +H, misses +M" from the status page around
# it; $SENT and $DONE are the clock before and after the request

our ($SENT, $DONE);

sub step {
    my ($path, $token) = @_;

    my ($hits, $misses) = (counter('hits_total'), counter('misses_total'));

    $SENT = time();
    my $v = verdict($t->get($path, Authorization => "Bearer $token"));
    $DONE = time();

    return sprintf '%s, hits +%d, misses +%d', $v,
                   counter('hits_total') - $hits,
                   counter('misses_total') - $misses;
}

# polls the clock until it reads at least $when

sub until_clock {
    my ($when) = @_;
    sleep 0.05 while time() < $when;
}

sub token {
    my ($kid, @claims) = @_;
    return $t->craft(key => $kid, payload => $t->payload(@claims));
}

# nginx's clock is in whole seconds: an entry stored while the clock read
# S (S >= int($SENT) of the storing request, S <= int($DONE)) is served
# while nginx's clock reads less than S + max_ttl, then is a miss


# max_ttl=3s

start('token_scope_cache zone=limits:1m max_ttl=3s;');

my $tok = token('h1');

is(step('/strict', $tok), '200, hits +0, misses +1', 'max_ttl=3s: the first request with a token is a cache miss');

my ($stored_after, $stored_before) = (int($DONE), int($SENT));

SKIP: {
    my $v = step('/strict', $tok);
    skip(sprintf('the second request ended %.1fs into the second the '
                 . 'entry was stored in, too late to be sure of a hit '
                 . 'within max_ttl=3s', $DONE - $stored_before), 1)
        if $DONE >= $stored_before + 3;

    is($v, '200, hits +1, misses +0', 'max_ttl=3s: the next request is served from the cache');
}

until_clock($stored_after + 3);

is(step('/strict', $tok), '200, hits +0, misses +1', 'max_ttl=3s: once max_ttl has passed the token is a cache miss and is verified again');

($stored_after, $stored_before) = (int($DONE), int($SENT));

SKIP: {
    my $v = step('/strict', $tok);
    skip(sprintf('the request ended %.1fs into the second the entry '
                 . 'was stored in, too late to be sure of a hit within '
                 . 'max_ttl=3s', $DONE - $stored_before), 1)
        if $DONE >= $stored_before + 3;

    is($v, '200, hits +1, misses +0', 'max_ttl=3s: verified again, the token is cached again');
}

until_clock($stored_after + 3);

is(step('/strict', $tok), '200, hits +0, misses +1', 'max_ttl=3s: and after another max_ttl it is a miss again');


# max_ttl=1h: an entry still ends at the token's exp

start('token_scope_cache zone=limits:1m max_ttl=1h;');

my $exp = int(time()) + 4;
my $strict = token('h1', exp => $exp);
my $lenient = token('h1', exp => $exp);

is(step('/strict', $strict), '200, hits +0, misses +1', 'max_ttl=1h: a token that expires in 4s passes and is cached');

SKIP: {
    my $v = step('/strict', $strict);
    skip(sprintf('the request ended %.1fs after exp, too late to be sure '
                 . 'of a hit', $DONE - $exp), 1)
        if $DONE >= $exp;

    is($v, '200, hits +1, misses +0', 'max_ttl=1h: before its exp the token is served from the cache');
}

is(step('/lenient', $lenient), '200, hits +0, misses +1', 'max_ttl=1h: a second token that expires in 4s passes /lenient (leeway 30s) and is cached');

until_clock($exp);

is(step('/strict', $strict), '401 expired, hits +0, misses +1', 'max_ttl=1h: after its exp the token is not served from the cache: a miss, refused with expired');
is(step('/lenient', $lenient), '200, hits +0, misses +1', 'max_ttl=1h: after its exp, within the leeway, the token passes but is verified, not served from the cache');
is(step('/lenient', $lenient), '200, hits +0, misses +1', 'max_ttl=1h: past its exp the token is not cached again: the next request is a miss too');


# a zone of 32k (8 pages, the least allowed): eviction

start('token_scope_cache zone=limits:32k;');

my $N = 200;
my @fill = map { token('h1') } 1 .. $N;

my %got;
$got{ verdict($t->get('/strict', Authorization => "Bearer $_")) }++
    for @fill;

is(join(', ', map { "$_ x$got{$_}" } sort keys %got), "200 x$N", "32k zone: $N distinct tokens all pass");
cmp_ok(counter('evictions_total'), '>', 0, "32k zone: the zone is full before $N tokens and evicts entries to make room");
cmp_ok(counter('entries'), '<', $N, '32k zone: the zone holds fewer entries than tokens were sent');
is(step('/strict', $fill[0]), '200, hits +0, misses +1', '32k zone: the oldest token was evicted: it is a miss, verified again, and passes');
is(step('/strict', $fill[-1]), '200, hits +1, misses +0', '32k zone: the newest token is still served from the cache');


# the zone full even after eviction: the 256-byte slabs fill every page,
# and evicting four of them frees no page for a 512-byte slab

my $evictions = counter('evictions_total');
my $long = token($LONG);

is(step('/strict', $long), '200, hits +0, misses +1', 'zone full: a token whose entry needs a larger slab passes');
cmp_ok(counter('evictions_total'), '>', $evictions, 'zone full: the zone evicted entries trying to make room for it');
is(step('/strict', $long), '200, hits +0, misses +1', 'zone full: the token was not cached: it is verified again and passes');
is(step('/strict', token($LONG)), '200, hits +0, misses +1', 'zone full: another such token passes uncached');

my $ALERT = qr/^.*\[alert\] .*token scope: cache zone "limits" is full even after eviction, tokens go uncached.*$/m;

my @alerts = $t->read_file('error.log') =~ /($ALERT)/g;
is(scalar @alerts, 1, 'zone full: the alert "cache zone is full even after eviction" is logged once');

my $fresh = token('h1');

is(step('/strict', $fresh), '200, hits +0, misses +1', 'zone full: a token of the usual size is cached again after the alert');
is(step('/strict', $fresh), '200, hits +1, misses +0', 'zone full: and is then served from the cache');


# the alert above was provoked on purpose: those lines, and only those,
# are taken out of error.log before the end checks, which fail on any other
# [alert] line

$t->stop();

my $log = $t->read_file('error.log');
my $removed = $log =~ s/$ALERT\n?//g;

is($removed, 1, 'error.log has the one zone-full alert provoked on purpose, taken out before the end checks');

$t->write_file('error.log', $log);

$t->done_testing();
