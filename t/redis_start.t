#!/usr/bin/perl

# The first sync: a node whose zone is new (a start, or a reload that
# changes zone=) has not read Redis yet.  Until its first full sync it must
# not let a revoked token through: with Redis holding 300,000 revoked ids
# (a sync of a few hundred ms), a revoked token asked for from the moment
# nginx listens gets 401 (revoked, or redis_unavailable), never 200.
# That such answers come before the sync is shown with a Redis nginx
# cannot reach yet (listening on its unix socket only) at the start, and
# with a Redis stopped (SIGSTOP) across the reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config reload);

TokenScope::Redis::check_installed();

my $IDS = 300_000;

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

# nginx.conf with a revocation zone of the given size

sub config {
    my ($zone) = @_;
    $t->write_config(revocation_config(
        redis => '127.0.0.1:' . $redis->port
                 . " timeout=1s max_stale=30s zone=$zone"));
}

my $tok = $t->mint('e1', '--categories', 'marketplace');
my $id = token_claims($tok)->{id};

# nginx cannot reach it until expose()
$redis->start(hidden => 1);

# the ids, with the token's in the middle, through redis-cli --pipe

my $key = 'token_scope:revoked';
my $resp = '';

for (my $i = 0; $i < $IDS; $i += 1000) {
    my @batch = map { sprintf 'bench-%08d-%s', $i + $_, 'x' x 20 } 0 .. 999;
    $batch[500] = $id if $i == 150_000;

    $resp .= '*' . (@batch + 2) . "\r\n\$4\r\nSADD\r\n\$" . length($key)
             . "\r\n$key\r\n";
    $resp .= '$' . length($_) . "\r\n$_\r\n" for @batch;
}

my $in = $t->write_file('ids.resp', $resp);
undef $resp;

my ($rc, $out, $err) = $t->run_cmd([ 'redis-cli', '-s', $redis->socket,
                                     '--pipe' ], stdin => $in);
like($out, qr/errors: 0, replies: \d+/, "$IDS ids loaded") or diag($err);
unlink $in;

is($redis->cli_socket('SCARD', $key), $IDS, 'in the SET');


# from the first moment nginx listens until it has synced

sub synced { my $n = () = $_[0]->read_file('error.log') =~ /synced/g; $n }

sub v { verdict($t->get('/', Authorization => "Bearer $tok")) }

sub until_synced {
    my ($before) = @_;

    my %seen;
    my $start = time();

    while (time() - $start < 20) {
        my $v = verdict($t->get('/', Authorization => "Bearer $tok"));
        $seen{$v}++;
        last if synced($t) > $before;
    }

    return \%seen;
}

config('32m');
$t->run();

# Redis not reachable yet: answered before any sync, and refused
is(v(), '503 redis_unavailable', 'start, Redis not reachable: the revoked token is refused with 503 before any sync');
is(synced($t), 0, 'no sync had happened when it was answered');

$redis->expose();

my $seen = until_synced(0);
diag(join ', ', map { "$_: $seen->{$_}" } sort keys %$seen);

ok(synced($t) > 0, 'the node synced');
is($seen->{200} // 0, 0, 'start: no revoked token passed before the sync');
is(v(), '401 revoked', 'refused after the sync');

# a reload that changes zone= makes a new, empty zone

config('48m');

# Redis stopped across the reload: the new zone cannot be synced until
# Redis continues; the old workers' zone was synced and knows the id, so
# a 503 can only come from a new worker before its first sync
$redis->pause();

my $before = synced($t);
ok(eval { reload($t) }, 'reload with a larger zone') or diag($@);

ok(wait_for(sub { v() eq '503 redis_unavailable' }, 10), 'zone resized, Redis stopped: the revoked token is refused with 503 before the sync');
is(synced($t), $before, 'no new sync had happened when it was answered');

$redis->resume();

$seen = until_synced($before);
diag(join ', ', map { "$_: $seen->{$_}" } sort keys %$seen);

is($seen->{200} // 0, 0,
   'zone resized: no revoked token passed before the sync');
ok(wait_for(sub { v() eq '401 revoked' }, 5), 'refused after the sync');

$t->stop();
$redis->stop();

$t->done_testing();
