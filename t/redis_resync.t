#!/usr/bin/perl

# A full resync does not stall requests.  With Redis holding 300,000
# revoked ids and a large zone (a spare table of 64 MB to clear), the
# subscriber is dropped twice (CLIENT KILL TYPE pubsub), so worker 0
# rescans everything while clients keep asking with a cached token: every
# request is answered 200, none takes longer than a ceiling generous for a
# loaded 2-core machine (a table cleared or filled under the lock, as
# before, stalls every worker far longer), and after the resyncs the
# revoked ids are still refused.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX qw(_exit);
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config);

TokenScope::Redis::check_installed();

my $IDS = 300_000;
my $CLIENTS = 4;
my $SECONDS = 8;
my $RESYNCS = 2;

# A slice of the rescan is about 1 ms; scheduling on a busy 2-core box
# adds tens of ms now and then.  The ceiling is 100 ms, or three times
# the slowest request of the same clients before any resync (for BASELINE
# seconds), whichever is more; the old code held the lock over the whole
# table, which stalled every worker for 200 ms and more (230-250 ms
# measured here, with and without ASan): where the ceiling reaches that,
# the check would prove nothing and is skipped, saying why
my $CEILING = $ENV{TEST_RESYNC_CEILING} // 0.1;
my $STALL = 0.2;
my $BASELINE = 2;

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

$t->write_config(revocation_config(
    redis => '127.0.0.1:' . $redis->port . ' timeout=1s max_stale=30s'
             . ' zone=128m',
    http => 'token_scope_cache zone=tokens:1m;', worker_header => 1));

my @mp = ('--categories', 'marketplace');
my $tok = $t->mint('e1', @mp);
my $gone = $t->mint('e1', @mp);
my $gone_id = token_claims($gone)->{id};

$redis->start();

my $key = 'token_scope:revoked';
my $resp = '';

for (my $i = 0; $i < $IDS; $i += 1000) {
    my @batch = map { sprintf 'resync-%08d-%s', $i + $_, 'y' x 20 } 0 .. 999;
    $batch[0] = $gone_id if $i == 200_000;

    $resp .= '*' . (@batch + 2) . "\r\n\$4\r\nSADD\r\n\$" . length($key)
             . "\r\n$key\r\n";
    $resp .= '$' . length($_) . "\r\n$_\r\n" for @batch;
}

my $in = $t->write_file('ids.resp', $resp);
undef $resp;

my ($rc, $out, $err) = $t->run_cmd([ 'redis-cli', '-p', $redis->port,
                                     '--pipe' ], stdin => $in);
like($out, qr/errors: 0, replies: \d+/, "$IDS ids loaded") or diag($err);
unlink $in;

sub synced { my $n = () = $t->read_file('error.log') =~ /synced/g; $n }

$t->run();

ok(wait_for(sub { synced() >= 1 }, 30), 'the node synced');
like($t->read_file('error.log'), qr/connected, $IDS revoked ids/,
     "all $IDS ids");

my ($all, $workers) = $t->every_worker('/', $tok, 8);
is($all, '200', 'a valid token passes, and is cached, on every worker');
is(verdict($t->get('/', Authorization => "Bearer $gone")), '401 revoked',
   'a revoked one is refused');


# clients asking, first for BASELINE seconds with no resync, then while
# worker 0 rescans, each writing "verdict seconds worker start" per
# request to a file of its own

my @kids;

for my $k (1 .. $CLIENTS) {
    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        my $file = $t->testdir . "/client.$k";
        open my $fh, '>', $file or _exit(1);

        my $end = time() + $BASELINE + $SECONDS;

        while (time() < $end) {
            my $start = time();
            my $r = $t->get('/', Authorization => "Bearer $tok");
            printf $fh "%s %.6f %s %.6f\n", verdict($r), time() - $start,
                   $r->{headers}{'x-worker'} // '?', $start;
        }

        close $fh;
        _exit(0);
    }

    push @kids, $pid;
}

my @took;

my $first_kill = time() + $BASELINE;
sleep 0.05 while time() < $first_kill;

for (1 .. $RESYNCS) {
    my $before = synced();
    my $start = time();

    $redis->cli('CLIENT', 'KILL', 'TYPE', 'pubsub');

    push @took, wait_for(sub { synced() > $before }, 20) ? time() - $start
                                                          : undef;
    sleep 0.5;
}

waitpid $_, 0 for @kids;

is(scalar(grep { defined } @took), $RESYNCS,
   "$RESYNCS full resyncs while the clients asked")
    or diag(join ' ', map { $_ // 'none' } @took);
diag(sprintf 'resync of %d ids: %s', $IDS,
     join ', ', map { defined $_ ? sprintf('%.2f s', $_) : 'none' } @took);

my (%verdicts, %pids, @during);
my ($n, $max, $quiet_max) = (0, 0, 0);

for my $k (1 .. $CLIENTS) {
    for (split /\n/, $t->read_file("client.$k")) {
        my ($v, $s, $pid, $at) = split / /;
        $verdicts{$v}++;
        $pids{$pid}++;
        $n++;

        if ($at + $s < $first_kill) {
            $quiet_max = $s if $s > $quiet_max;
            next;
        }

        $max = $s if $s > $max;
        push @during, [ $s, $_ ];
    }
}

diag(sprintf '%d requests, slowest %.1f ms while resyncing, %.1f ms before',
             $n, $max * 1000, $quiet_max * 1000);

my $ceiling = $CEILING > 3 * $quiet_max ? $CEILING : 3 * $quiet_max;
my @slow = map { $_->[1] } grep { $_->[0] > $ceiling } @during;

cmp_ok($n, '>', 500, 'the clients kept asking');
is(join(', ', sort keys %verdicts), '200', 'every request passed');
is(scalar keys %pids, 2, 'both workers answered');
SKIP: {
    skip(sprintf('this machine is too slow to tell a stall of the lock'
                 . ' from its noise: before any resync a request already'
                 . ' took %.1f ms', $quiet_max * 1000), 1)
        if $ceiling >= $STALL;

    is(scalar @slow, 0,
       sprintf('no request took longer than %.0f ms', $ceiling * 1000))
        or diag(join "\n", @slow[0 .. ($#slow > 9 ? 9 : $#slow)]);
}

is(verdict($t->get('/', Authorization => "Bearer $gone")), '401 revoked',
   'after the resyncs the revoked id is still refused');
like((grep { /synced/ } split /\n/, $t->read_file('error.log'))[-1],
     qr/connected, $IDS revoked ids/, "and all $IDS ids are held");

$t->stop();
$redis->stop();

$t->done_testing();
