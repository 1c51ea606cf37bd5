#!/usr/bin/perl

# Revocation backed by a real Redis (SPEC section 9): tokens and sellers
# revoked and unrevoked with scripts/revoke reach every worker; a seller's
# tokens issued before the revocation time are refused, the issue time
# taken from iat, else the UUIDv7 id, else exp - lifetime; a change written
# without PUBLISH applies after a reload (full resync); "nginx -s reload"
# keeps revocation working; token_scope_revocation off ignores it.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config uuid7 redis_state_lines
                         reload);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

# a change is in force a few ms after its PUBLISH (docs/revocation.md);
# the checks allow it half of max_stale, the longest a revocation may go
# unnoticed, and poll for twice max_stale before they give up
my $MAX_STALE = 2;

$t->write_config(revocation_config(
    redis => '127.0.0.1:' . $redis->port . " timeout=200ms max_stale=${MAX_STALE}s",
    worker_header => 1, reason_header => 1, allow => 1, norevoke => 1));

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects and syncs at start')
    or diag($t->read_file('error.log'));


sub call {
    my ($path, $token) = @_;
    return $t->get($path, Authorization => "Bearer $token");
}

sub v { verdict(call(@_)) }

# (the verdicts, how many workers answered) of N connections, more if
# they all went to one worker: reuseport spreads them by a hash of their
# ports, and a run on one worker is rare, not impossible

sub everywhere {
    my ($path, $token, $n) = @_;

    my ($all, $workers) = $t->every_worker($path, $token, $n);
    ($all, $workers) = $t->every_worker($path, $token, 60) if $workers < 2;

    return ($all, $workers);
}

# seconds until PATH first answers EXPECT, if it then answers EXPECT on
# both workers; else undef

sub until_everywhere {
    my ($path, $token, $expect, $limit) = @_;

    my $start = time();

    wait_for(sub { v($path, $token) eq $expect }, $limit // 2 * $MAX_STALE)
        or return;

    my $took = time() - $start;
    my ($all, $workers) = everywhere($path, $token, 16);

    return $all eq $expect && $workers == 2 ? $took : undef;
}

my @mp = ('--categories', 'marketplace');


# revoke and unrevoke by token id

my $ta = $t->mint('e1', @mp);
my $taid = token_claims($ta)->{id};

is(v('/', $ta), '200', 'a valid token passes');

my ($all, $workers) = everywhere('/', $ta, 16);
is($workers, 2, 'both workers answer the test connections');

like($redis->revoke($taid), qr/^\Q$taid\E: revoked; [1-9]\d* subscriber/m,
     'scripts/revoke: revoked, the node subscribed');

my $took = until_everywhere('/', $ta, '401 revoked');
ok(defined $took, 'a revoked token is refused on every worker');
cmp_ok($took // 9, '<', $MAX_STALE / 2, sprintf('within half of max_stale of the PUBLISH (%.2fs)', $took // 9));

my $r = call('/', $ta);
is($r->{json}{detail}, 'token withdrawn', 'detail "token withdrawn"');
is($r->{headers}{'x-ts-reason'}, 'revoked', '$token_scope_reason revoked');
like($r->{headers}{'www-authenticate'} // '', qr/invalid_token/,
     'WWW-Authenticate invalid_token');

is(v('/allow', $ta), '401 revoked', 'refused where redis_down is allow');
is(v('/norevoke', $ta), '200', 'token_scope_revocation off ignores it');

like($redis->revoke($taid), qr/already revoked/, 'revoking twice says so');

like($redis->unrevoke($taid), qr/^\Q$taid\E: unrevoked/m, 'scripts/unrevoke');
ok(defined until_everywhere('/', $ta, '200'),
   'an unrevoked token passes again on every worker');

# a token passed instead of its id, on the command line and on stdin

my $tb = $t->mint('e1', @mp);
my $tbid = token_claims($tb)->{id};

like($redis->revoke($tb), qr/^\Q$tbid\E: revoked/m,
     'scripts/revoke TOKEN revokes its id');
ok(defined until_everywhere('/', $tb, '401 revoked'), 'refused');

my $tc = $t->mint('e1', @mp);
my $tcid = token_claims($tc)->{id};
my $list = $t->write_file('ids.txt', "$tc\n# a comment\n\n");

my ($rc, $out, $err) = $t->run_cmd(
    [ "$TokenScope::Test::ROOT/scripts/revoke", '--redis', $redis->address,
      '-' ], stdin => $list);
is($rc, 0, 'scripts/revoke - reads tokens from stdin') or diag($out . $err);
ok(defined until_everywhere('/', $tc, '401 revoked'), 'refused');

($rc, $out) = $redis->script('unrevoke', $tc);
is($rc, 0, 'scripts/unrevoke TOKEN');
ok(defined until_everywhere('/', $tc, '200'), 'passes again');

# the script through its other names

($rc, $out, $err) = $t->run_cmd(
    [ "$TokenScope::Test::ROOT/scripts/unrevoke", '--redis', $redis->address,
      $tbid ]);
like($out, qr/^\Q$tbid\E: unrevoked/m, 'scripts/unrevoke (the symlink)');
ok(defined until_everywhere('/', $tb, '200'), 'passes again');

is($redis->cli('SCARD', 'token_scope:revoked'), '0', 'the set is empty');


# seller revocation: tokens of the seller issued strictly before T

my $sid = '6a1e0c52-5b7e-4d7a-9d2b-00000000a001';
my $other = '6a1e0c52-5b7e-4d7a-9d2b-00000000a002';
my $now = int time();
my $T = $now - 1000;
my $lifetime = 180 * 86400;

my %tok = (
    iat_before   => [ 1, "iat=" . ($T - 1) ],
    iat_at       => [ 0, "iat=$T" ],
    iat_after    => [ 0, "iat=" . ($now - 5) ],
    iat_wins     => [ 0, "iat=" . ($now - 5),
                      'id="' . uuid7(($T - 10) * 1000) . '"' ],
    v7_before    => [ 1, 'iat=null', 'id="' . uuid7(($T - 10) * 1000) . '"' ],
    v7_after     => [ 0, 'iat=null', 'id="' . uuid7(($T + 10) * 1000) . '"' ],
    exp_before   => [ 1, 'iat=null', 'id="' . TokenScope::Test::uuid() . '"',
                      'exp=' . ($T + $lifetime - 100) ],
    exp_after    => [ 0, 'iat=null', 'id="' . TokenScope::Test::uuid() . '"',
                      'exp=' . ($T + $lifetime + 100) ],
    plain_id     => [ 1, 'iat=null', 'id="not-a-uuid"',
                      'exp=' . ($now + 3600) ],
);

for my $name (keys %tok) {
    my ($revoked, @claims) = @{ $tok{$name} };
    $tok{$name} = [ $revoked, $t->mint('e1', @mp, '--claim', "sid=\"$sid\"",
                                       map { ('--claim', $_) } @claims) ];
}

my $stranger = $t->mint('e1', @mp, '--claim', "sid=\"$other\"",
                        '--claim', 'iat=' . ($T - 1));

for my $name (sort keys %tok) {
    is(v('/', $tok{$name}[1]), '200', "seller token $name passes before");
}

($rc, $out) = $redis->script('revoke-seller', $sid, $T);
is($rc, 0, 'scripts/revoke-seller SID TIME') or diag($out);
like($out, qr/^seller \Q$sid\E: tokens issued before $T /m, 'says so');

ok(wait_for(sub { v('/', $tok{iat_before}[1]) eq '401 revoked' }, 2 * $MAX_STALE),
   'the seller revocation arrives');

for my $name (sort keys %tok) {
    my $expect = $tok{$name}[0] ? '401 revoked' : '200';
    my ($all, $workers) = everywhere('/', $tok{$name}[1], 8);
    is("$all on $workers workers", "$expect on 2 workers", "seller token $name: $expect on every worker");
}

is(v('/', $stranger), '200', "another seller's token passes");
is(v('/norevoke', $tok{iat_before}[1]), '200', 'revocation off ignores it');

is($redis->cli('HGET', 'token_scope:revoked:sellers', $sid), $T,
   'the hash holds sid -> time');

($rc, $out) = $redis->script('unrevoke-seller', $sid);
is($rc, 0, 'scripts/unrevoke-seller SID') or diag($out);
ok(defined until_everywhere('/', $tok{iat_before}[1], '200'),
   'the seller\'s tokens pass again');
is(v('/', $tok{v7_before}[1]), '200', 'the UUIDv7 one too');

# revoke-seller with a token instead of the sid, time defaults to now

my $recent = $t->mint('e1', @mp, '--claim', 'iat=' . ($now - 5));

($rc, $out, $err) = $t->run_cmd(
    [ "$TokenScope::Test::ROOT/scripts/revoke-seller", '--redis',
      $redis->address, $recent ]);
is($rc, 0, 'scripts/revoke-seller TOKEN (now)') or diag($out . $err);
ok(defined until_everywhere('/', $recent, '401 revoked'),
   'the token\'s seller is revoked');

my $issued = int(time()) + 1;
my $newer = $t->mint('e1', @mp, '--claim',
                     'sid="' . token_claims($recent)->{sid} . '"',
                     '--claim', "iat=$issued", '--exp-in', 7200);

# an iat in the future is not_yet_valid: wait for the clock to reach it
sleep 0.05 while time() < $issued;
is(v('/', $newer), '200', 'a token of that seller issued after passes');

($rc, $out) = $redis->script('unrevoke-seller', $recent);
is($rc, 0, 'scripts/unrevoke-seller TOKEN') or diag($out);
ok(defined until_everywhere('/', $recent, '200'), 'passes again');


# written without PUBLISH: applies after a reload (full resync)

my $td = $t->mint('e1', @mp);
my $te = $t->mint('e1', @mp);

$redis->revoke(token_claims($td)->{id});
ok(defined until_everywhere('/', $td, '401 revoked'), 'd revoked');

is($redis->cli('SADD', 'token_scope:revoked', token_claims($te)->{id}), '1',
   'raw SADD without PUBLISH');

my $synced = () = $t->read_file('error.log') =~ /redis.*synced/gi;

reload($t);

ok(wait_for(sub {
       my $n = () = $t->read_file('error.log') =~ /redis.*synced/gi;
       $n > $synced
   }, 5), 'the node syncs again after the reload');

ok(defined until_everywhere('/', $te, '401 revoked'),
   'the id written without PUBLISH is refused after the reload');

($all, $workers) = everywhere('/', $td, 16);
is("$all on $workers workers", '401 revoked on 2 workers', 'the earlier revocation still holds after reload on every worker');

# the new workers' subscription works

my $tf = $t->mint('e1', @mp);
is(v('/', $tf), '200', 'a fresh token passes after the reload');
$redis->revoke(token_claims($tf)->{id});
$took = until_everywhere('/', $tf, '401 revoked');
ok(defined $took, 'a revocation after the reload reaches every worker');
cmp_ok($took // 9, '<', $MAX_STALE / 2, sprintf('within half of max_stale (%.2fs)', $took // 9));

$redis->unrevoke(token_claims($tf)->{id});
ok(defined until_everywhere('/', $tf, '200'), 'and the unrevocation');


# a removal written without PUBLISH applies after a reload too

is($redis->cli('SREM', 'token_scope:revoked', token_claims($te)->{id}), '1',
   'raw SREM without PUBLISH');

reload($t);

ok(defined until_everywhere('/', $te, '200'),
   'the id removed without PUBLISH passes after the reload');


# the log: state changes once, nothing per request

my @before = redis_state_lines($t);

for (1 .. 30) {
    call('/', $td);
    call('/', $ta);
}

my @after = redis_state_lines($t);
is(scalar @after, scalar @before, 'no Redis lines per request');

cmp_ok(scalar @after, '<', 30, 'few Redis lines in all')
    or diag(join "\n", @after);

$t->stop();
$redis->stop();

$t->done_testing();
