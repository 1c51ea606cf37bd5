#!/usr/bin/perl

# token_scope_redis_down for opaque tokens (issue 19): which cached answer
# of Redis a request may fall back on when Redis cannot be asked, per
# docs/directives.md#token_scope_redis_down:
#
#   deny    an answer stored less than max_stale ago; an older one is not
#           used, even while the revocation state is still current;
#   allow   an answer of any age still in the cache;
#   either  a token with no cached answer is refused: 503
#           redis_unavailable.
#
# Redis is stopped with SIGSTOP (it accepts connections, answers nothing;
# lookups time out after timeout=300ms).  Two tokens are cached while Redis
# answers: OLD, then YOUNG three seconds later; the clock is polled until
# OLD is older than max_stale=6s and YOUNG past its ttl=1s.  Then, Redis
# stopped:
#
#   within max_stale (the revocation state current): YOUNG passes /deny
#   from its fallback, OLD does not (503), OLD passes /allow;
#   beyond max_stale (the revocation state too old, polled on the status
#   page): /deny refuses every token, FRESH too, whose answer (stored with
#   ttl=60s just before Redis stopped) is still fresh; /allow passes OLD,
#   YOUNG and FRESH;
#   a token never asked about is refused under both throughout.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);
use TokenScope::Redis qw(wait_for globals);

TokenScope::Redis::check_installed();

my $MAX_STALE = 6;

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

my $conf = globals(workers => 2) . <<'EOF';

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_scope read_catalog;

    token_scope_redis 127.0.0.1:%%REDIS%% timeout=300ms max_stale=%%STALE%%s;
    token_scope_cache zone=outage:1m;

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        # ttl=1s: an answer is soon only a fallback for when Redis fails
        token_scope_opaque on ttl=1s miss_ttl=1s;

        location /deny {
            token_scope read_catalog;
            token_scope_redis_down deny;
            proxy_pass http://backend;
        }

        location /allow {
            token_scope read_catalog;
            token_scope_redis_down allow;
            proxy_pass http://backend;
        }

        # ttl=60s: an answer stored here stays fresh through the outage
        location /fresh {
            token_scope read_catalog;
            token_scope_opaque on ttl=60s miss_ttl=1s;
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

$conf =~ s/%%REDIS%%/$redis->port/e;
$conf =~ s/%%STALE%%/$MAX_STALE/;
$t->write_config($conf);

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 10), 'the node connects to Redis and syncs at start') or diag($t->read_file('error.log'));


# an opaque token written with HSET, without a message on the channel (a
# message during a lookup would keep its answer out of the cache)

sub opaque {
    my @c = ('A' .. 'Z', 'a' .. 'z', 0 .. 9);
    my $token = 'secret_' . join '', map { $c[rand @c] } 1 .. 32;

    $t->remember_secret($token);
    $redis->cli('HSET', 'token_scope:opaque:' . sha256_hex($token),
                'type', 'secret', 'scopes', 'read_catalog');

    return $token;
}

# the verdict of a GET; $SENT and $DONE are the clock before and after it

our ($SENT, $DONE, $LAST);

sub v {
    my ($path, $token) = @_;

    $SENT = time();
    $LAST = $t->get($path, Authorization => "Bearer $token");
    $DONE = time();

    return verdict($LAST);
}

sub until_clock {
    my ($when) = @_;
    sleep 0.05 while time() < $when;
}

sub sync_age {
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_revocation_sync_age_seconds (-?\d+)$/m;
    return $v // -1;
}

sub stale_lines {
    my $n = () = $t->read_file('error.log')
                 =~ /revocation state from redis .* is older than max_stale/g;
    return $n;
}

my $old = opaque();
my $young = opaque();
my $fresh = opaque();
my $never = opaque();

# nginx's clock is in whole seconds: an answer stored by a request counts
# as stored at S, int($SENT) <= S <= int($DONE); deny uses it while the
# clock reads less than S + max_stale


# Redis answers: OLD, then YOUNG, are cached

is(v('/deny', $old), '200', 'Redis up: the token OLD passes /deny, and its answer is cached');

my $old_stored = int($DONE);

until_clock($old_stored + 3);

is(v('/deny', $young), '200', 'Redis up: the token YOUNG passes /deny three seconds later, and its answer is cached');

my ($young_stored, $young_after) = (int($SENT), int($DONE));

# OLD older than max_stale, YOUNG past its ttl (Redis must be asked)
until_clock($old_stored + $MAX_STALE > $young_after + 1
            ? $old_stored + $MAX_STALE : $young_after + 1);

is(v('/fresh', $fresh), '200', 'Redis up: the token FRESH passes /fresh, and its answer is cached for ttl=60s');


# Redis stopped, the revocation state still current

$redis->pause();
my $paused = time();

my @window = (v('/deny', $young), v('/deny', $old));
my $retry = $LAST->{headers}{'retry-after'} // '';
push @window, v('/allow', $old), v('/deny', $young);

SKIP: {
    # YOUNG must still be younger than max_stale, and the revocation state
    # (a PING every second) within max_stale, until the last request
    my $end = $young_stored + $MAX_STALE < $paused + $MAX_STALE - 2
              ? $young_stored + $MAX_STALE : $paused + $MAX_STALE - 2;

    skip(sprintf('the requests with Redis stopped took until %.1fs after '
                 . 'the pause, too late to be within max_stale=%ds',
                 $DONE - $paused, $MAX_STALE), 5)
        if $DONE >= $end;

    is($window[0], '200', 'Redis stopped within max_stale: under deny, YOUNG (stored less than max_stale ago, past its ttl) passes from the cached answer');
    is($window[1], '503 redis_unavailable', 'Redis stopped within max_stale: under deny, the answer about OLD, stored more than max_stale ago, is not used: 503');
    is($retry, '5', 'Redis stopped within max_stale: the 503 for OLD has Retry-After: 5');
    is($window[2], '200', 'Redis stopped within max_stale: under allow, OLD passes from its cached answer of any age');
    is($window[3], '200', 'Redis stopped within max_stale: under deny, YOUNG still passes after OLD was refused: the revocation state was current');
}

is(v('/deny', $never), '503 redis_unavailable', 'Redis stopped within max_stale: under deny, a token never asked about is refused: 503');
is(v('/allow', $never), '503 redis_unavailable', 'Redis stopped within max_stale: under allow, a token never asked about is refused: 503');


# Redis stopped beyond max_stale: the revocation state is too old

ok(wait_for(sub { sync_age() > $MAX_STALE }, $MAX_STALE + 15), 'Redis stopped: the revocation state gets older than max_stale') or diag('sync age ' . sync_age());

is(v('/deny', $old), '503 redis_unavailable', 'Redis stopped beyond max_stale: under deny, OLD is refused: 503');
is(v('/deny', $young), '503 redis_unavailable', 'Redis stopped beyond max_stale: under deny, YOUNG is refused: 503');
is(v('/deny', $fresh), '503 redis_unavailable', 'Redis stopped beyond max_stale: under deny, FRESH is refused although its answer is within ttl=60s: 503');
is(v('/deny', $fresh), '503 redis_unavailable', 'Redis stopped beyond max_stale: under deny, FRESH is refused again: 503');
is(v('/allow', $old), '200', 'Redis stopped beyond max_stale: under allow, OLD still passes from its cached answer');
is(v('/allow', $young), '200', 'Redis stopped beyond max_stale: under allow, YOUNG still passes from its cached answer');
is(v('/allow', $fresh), '200', 'Redis stopped beyond max_stale: under allow, FRESH still passes from its cached answer');
is(v('/deny', $never), '503 redis_unavailable', 'Redis stopped beyond max_stale: under deny, a token never asked about is refused: 503');
is(v('/allow', $never), '503 redis_unavailable', 'Redis stopped beyond max_stale: under allow, a token never asked about is refused: 503');
is(stale_lines(), 1, 'Redis stopped beyond max_stale: "is older than max_stale, tokens are refused" is logged once');


# Redis continued: every token passes /deny again

$redis->resume();

# each worker reconnects on its own, after a backoff of at most 1 s: poll
# until two rounds of the four tokens pass (eight connections, spread by
# reuseport: both workers, but for a chance of 1 in 128)

ok(wait_for(sub { !grep { v('/deny', $_) ne '200' } ($old, $young, $fresh, $never) x 2 }, 15), 'Redis continued: every worker answers again') or diag($t->read_file('error.log'));
is(v('/deny', $old), '200', 'Redis continued: OLD passes /deny again');
is(v('/deny', $young), '200', 'Redis continued: YOUNG passes /deny again');
is(v('/deny', $fresh), '200', 'Redis continued: FRESH passes /deny again');
is(v('/deny', $never), '200', 'Redis continued: the token never asked about passes /deny');

$t->stop();
$redis->stop();

$t->done_testing();
