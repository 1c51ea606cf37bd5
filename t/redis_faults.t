#!/usr/bin/perl

# Revocation when Redis fails (SPEC section 9): Redis absent at nginx
# start, killed and restarted, stopped with SIGSTOP. Requests never wait
# on Redis; the last known state is used until it is older than max_stale,
# then token_scope_redis_down decides (deny: 503 redis_unavailable, allow:
# pass); changes written during an outage apply after the reconnect; the
# log tells each state change once, not per request.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config redis_state_lines);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

# the times every check is derived from: the state is pinged every
# max_stale/3, at most every second; after the link is lost the state is
# sure to stay current for max_stale less a PING interval (less its round
# trip); a request that waited on Redis would take up to the timeout, so
# one answered in half of it did not; a reconnect waits at most 5s
my $MAX_STALE = 4;
my $TIMEOUT = 1;
my $PING = 1;
my $FRESH = $MAX_STALE - $PING - 0.3;
my $PROMPT = $TIMEOUT / 2;
my $BACKOFF = 5;

$t->write_config(revocation_config(
    redis => '127.0.0.1:' . $redis->port
             . " timeout=${TIMEOUT}s max_stale=${MAX_STALE}s",
    worker_header => 1, reason_header => 1, allow => 1, norevoke => 1));


# (verdict, seconds) of one request

sub timed {
    my ($path, $token) = @_;

    my $start = time();
    my $r = $t->get($path, Authorization => "Bearer $token");

    return (verdict($r), time() - $start);
}

sub v { (timed(@_))[0] }

# N requests to PATH: (the verdicts seen, the slowest in seconds)

sub burst {
    my ($path, $token, $n) = @_;

    my (%seen, $max);
    $max = 0;

    for (1 .. $n) {
        my ($v, $s) = timed($path, $token);
        $seen{$v}++;
        $max = $s if $s > $max;
    }

    return (join(', ', sort keys %seen), $max);
}

sub log_count {
    my ($re) = @_;
    my $n = () = $t->read_file('error.log') =~ /$re/g;
    return $n;
}

my @mp = ('--categories', 'marketplace');

my $ok = $t->mint('e1', @mp);
my $gone = $t->mint('e1', @mp);


# Redis absent when nginx starts: nothing is synced, so deny refuses at
# once (docs/revocation.md, "before its first sync completes")

$t->run();

my ($v, $s) = timed('/', $ok);
is($v, '503 redis_unavailable', 'Redis absent at start: deny refuses with 503 before any sync');
cmp_ok($s, '<', $PROMPT, sprintf('promptly (%.2fs)', $s));

is(v('/norevoke', $ok), '200', 'revocation off passes');

ok(wait_for(sub { v('/', $ok) eq '503 redis_unavailable' }, 2 * $MAX_STALE),
   'deny: 503 redis_unavailable while Redis is absent');

my $r = $t->get('/', Authorization => "Bearer $ok");
is($r->{json}{detail}, 'token problem; revocation state unavailable',
   'the detail');
is($r->{headers}{'x-ts-reason'}, 'redis_unavailable', '$token_scope_reason');

my ($all, $max) = burst('/', $ok, 20);
is($all, '503 redis_unavailable', 'deny: on every request');
cmp_ok($max, '<', $PROMPT, sprintf('each answered promptly (slowest %.2fs)', $max));

($all, $max) = burst('/allow', $ok, 20);
is($all, '200', 'allow: the request passes');
cmp_ok($max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $max));

is(v('/norevoke', $ok), '200', 'revocation off passes');

my @before = redis_state_lines($t);
burst('/', $ok, 30);
burst('/allow', $ok, 30);
my @after = redis_state_lines($t);
cmp_ok(scalar @after - scalar @before, '<=', 1,
       'no Redis log line per request while Redis is absent')
    or diag(join "\n", @after[scalar @before .. $#after]);


# Redis comes up: the node connects and the requests pass

$redis->start();

ok(wait_for(sub { v('/', $ok) eq '200' }, $BACKOFF + 5),
   'Redis started: the node connects and requests pass');
like($t->read_file('error.log'), qr/redis.*connected/i, 'logged: connected');
like($t->read_file('error.log'), qr/redis.*synced/i, 'logged: synced');

$redis->revoke(token_claims($gone)->{id});
ok(wait_for(sub { v('/', $gone) eq '401 revoked' }, $MAX_STALE), 'revocation works');


# Redis killed: the last known state serves until max_stale

my $fresh = $t->mint('e1', @mp);
my $late = $t->mint('e1', @mp);
my $undone = $t->mint('e1', @mp);

$redis->revoke(token_claims($undone)->{id});
ok(wait_for(sub { v('/', $undone) eq '401 revoked' }, $MAX_STALE), 'one more revoked');

my $log_at_kill = length $t->read_file('error.log');
$redis->kill9();
my $killed = time();

my ($ok_all, $ok_max) = burst('/', $ok, 10);
my ($gone_all, $gone_max) = burst('/', $gone, 10);
my $took = time() - $killed;

SKIP: {
    skip(sprintf('20 requests took %.2fs, past the %.1fs the state is sure '
                 . 'to stay current', $took, $FRESH), 5) if $took >= $FRESH;

    is($ok_all, '200', 'Redis killed: valid tokens still pass');
    cmp_ok($ok_max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $ok_max));
    is($gone_all, '401 revoked', 'revoked tokens are still refused');
    cmp_ok($gone_max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $gone_max));
    unlike(substr($t->read_file('error.log'), $log_at_kill), qr/older than max_stale/, '(all that within max_stale: the state was never called stale)');
}

# restarted with no data, reachable over its unix socket only: what is
# written now, without PUBLISH, is what the node must find on reconnect

$redis->start(hidden => 1);

$redis->cli_socket('SADD', 'token_scope:revoked', token_claims($gone)->{id},
                   token_claims($late)->{id});

# at /allow, so that a state grown stale meanwhile changes nothing
($all) = burst('/allow', $late, 5);
is($all, '200', 'not known before the reconnect');

$redis->expose();

ok(wait_for(sub { v('/', $late) eq '401 revoked' }, $BACKOFF + 5),
   'a revocation written during the outage applies after the reconnect');
is(v('/', $gone), '401 revoked', 'the one rewritten is still refused');
is(v('/', $undone), '200',
   'an id missing from the restarted Redis passes (Redis is the truth)');
is(v('/', $ok), '200', 'valid tokens pass');

$redis->revoke(token_claims($fresh)->{id});
ok(wait_for(sub { v('/', $fresh) eq '401 revoked' }, $MAX_STALE),
   'pub/sub works after the reconnect');


# stale state both ways: Redis killed for longer than max_stale

$redis->kill9();
$killed = time();

$v = v('/', $ok);
$took = time() - $killed;

SKIP: {
    skip(sprintf('the request took %.2fs, past the %.1fs the state is sure '
                 . 'to stay current', $took, $FRESH), 1) if $took >= $FRESH;

    is($v, '200', 'killed again: passes within max_stale');
}

# the state's age is counted in whole seconds from the last PING answered
ok(wait_for(sub { v('/', $ok) eq '503 redis_unavailable' }, 2 * $MAX_STALE),
   'deny: 503 redis_unavailable after max_stale');
$took = time() - $killed;
cmp_ok($took, '>=', $MAX_STALE - $PING - 0.2, sprintf('not before max_stale, less a PING interval (%.2fs)', $took));

($all, $max) = burst('/allow', $ok, 10);
is($all, '200', 'allow: valid tokens pass');
cmp_ok($max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $max));

is(v('/allow', $gone), '401 revoked',
   'allow: a token known to be revoked is still refused');
is(v('/norevoke', $gone), '200', 'revocation off passes');

@before = redis_state_lines($t);
burst('/', $ok, 30);
burst('/allow', $ok, 30);
@after = redis_state_lines($t);
cmp_ok(scalar @after - scalar @before, '<=', 1,
       'no Redis log line per request while Redis is down')
    or diag(join "\n", @after[scalar @before .. $#after]);

$redis->start(hidden => 1);
$redis->cli_socket('SADD', 'token_scope:revoked', token_claims($gone)->{id});
$redis->expose();

ok(wait_for(sub { v('/', $ok) eq '200' }, $BACKOFF + 5),
   'Redis back: the deny location passes again');
is(v('/', $gone), '401 revoked', 'and refuses the revoked token');


# Redis stopped (SIGSTOP): the sockets stay open, nothing answers

my $stopped_tok = $t->mint('e1', @mp);

$redis->pause();
my $paused = time();

# requests for as long as the state is sure to stay current: the PING
# times out (by PING + TIMEOUT = 2s) and the reconnect hangs meanwhile
my (@slow, $n);

while (time() - $paused < $FRESH - $PROMPT) {
    for my $case ([ '/', $ok, '200' ], [ '/', $gone, '401 revoked' ]) {
        my ($v, $s) = timed($case->[0], $case->[1]);
        $n++;
        push @slow, sprintf('%s %s %.2fs', $case->[0], $v, $s)
            if $v ne $case->[2] || $s >= $PROMPT;
    }

    sleep 0.01;
}

is(scalar @slow, 0, 'Redis stopped: requests answered as before, promptly')
    or diag(join "\n", @slow);
cmp_ok($n, '>=', 10, "($n requests within max_stale, while the link timed out)");

ok(wait_for(sub { v('/', $ok) eq '503 redis_unavailable' }, 2 * $MAX_STALE),
   'a stopped Redis makes the state stale: deny after max_stale');

($all, $max) = burst('/allow', $ok, 10);
is($all, '200', 'allow: passes');
cmp_ok($max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $max));

($all, $max) = burst('/', $ok, 10);
is($all, '503 redis_unavailable', 'deny: refuses');
cmp_ok($max, '<', $PROMPT, sprintf('promptly (slowest %.2fs)', $max));

$redis->resume();

ok(wait_for(sub { v('/', $ok) eq '200' }, $BACKOFF + 5),
   'Redis continued: requests pass again');

$redis->revoke(token_claims($stopped_tok)->{id});
ok(wait_for(sub { v('/', $stopped_tok) eq '401 revoked' }, $MAX_STALE),
   'and revocation works');


# the log: each state change told once

my $log = $t->read_file('error.log');

# an outage: "disconnected", or the failure that ended the connection
my $lost = qr/redis[^\n]*(?:disconnected|failed|timed out|lost)/i;

my $outages = log_count($lost);
cmp_ok($outages, '>=', 4, "the four outages are logged ($outages lines)");
cmp_ok($outages, '<=', 8, 'once each, not on every retry');

my @lines = redis_state_lines($t);
cmp_ok(scalar @lines, '<', 60, 'few Redis lines in all')
    or diag(join "\n", @lines);

my @req = grep { /client:/ } redis_state_lines($t);
is(scalar @req, 0, 'no Redis lines in a request\'s context')
    or diag(join "\n", @req[0 .. ($#req > 4 ? 4 : $#req)]);

$t->stop();
$redis->stop();

$t->done_testing();
