#!/usr/bin/perl

# Scale-out on loopback (SPEC section 9): a Redis primary and a replica,
# two nginx instances, one reading each. A revocation written to the
# primary with scripts/revoke is enforced by the instance that reads the
# replica (PUBLISH on the primary reaches subscribers on the replica); a
# write without PUBLISH reaches it through replication and a resync.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config redis_state_lines
                         reload);

TokenScope::Redis::check_installed();

my $near = TokenScope::Test->new();     # reads the primary
my $far = TokenScope::Test->new();      # reads the replica

$near->keygen('ES256', 'e1');

my $primary = TokenScope::Redis->new($near, name => 'primary');
my $replica = TokenScope::Redis->new($near, name => 'replica',
                                     replicaof => $primary);


# a change is in force a few ms after its PUBLISH (docs/revocation.md):
# the checks allow it max_stale, the longest a revocation may go
# unnoticed, and poll for twice that before they give up
my $MAX_STALE = 2;

for my $pair ([ $near, $primary ], [ $far, $replica ]) {
    my ($t, $r) = @$pair;
    $t->write_config(revocation_config(
        redis => '127.0.0.1:' . $r->port . " timeout=200ms max_stale=${MAX_STALE}s",
        keys => $near->keydir, worker_header => 1));
}

# each instance picks its free ports on its own: they must all differ
my %ports;
$ports{$_}++ for $primary->port, $replica->port,
                 map { $_->port('8080'), $_->port('8081') } $near, $far;
die "two servers would share a port, run again\n" if keys %ports != 6;

$primary->start();
$replica->start();

ok(wait_for(sub { $replica->cli('INFO', 'replication')
                  =~ /master_link_status:up/ }, 10),
   'the replica follows the primary');

$near->run();
$far->run();

for my $t ($near, $far) {
    ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
       'instance ' . ($t == $near ? 'near (primary)' : 'far (replica)')
       . ' synced')
        or diag($t->read_file('error.log'));
}


sub v {
    my ($t, $token) = @_;
    return verdict($t->get('/', Authorization => "Bearer $token"));
}

# "VERDICTS on N workers" of 16 connections, more if they all went to
# one worker (reuseport spreads them by a hash of their ports)

sub everywhere {
    my ($t, $token) = @_;

    my ($all, $workers) = $t->every_worker('/', $token, 16);
    ($all, $workers) = $t->every_worker('/', $token, 60) if $workers < 2;

    return "$all on $workers workers";
}

my @mp = ('--categories', 'marketplace');

my $tok = $near->mint('e1', @mp);
my $id = token_claims($tok)->{id};
$far->remember($tok);

is(v($near, $tok), '200', 'near: a valid token passes');
is(v($far, $tok), '200', 'far: a valid token passes');


# revoked on the primary, enforced by the instance on the replica

my ($rc, $out) = $primary->script('revoke', $id);
is($rc, 0, 'scripts/revoke on the primary') or diag($out);

my $start = time();
ok(wait_for(sub { v($far, $tok) eq '401 revoked' }, 2 * $MAX_STALE),
   'far (replica): the token is refused');
my $took = time() - $start;
cmp_ok($took, '<', $MAX_STALE, sprintf('within max_stale (%.3fs)', $took));

is(everywhere($far, $tok), '401 revoked on 2 workers', 'far: on every worker');
ok(wait_for(sub { v($near, $tok) eq '401 revoked' }, 2 * $MAX_STALE),
   'near (primary): refused too');

is($replica->cli('SISMEMBER', 'token_scope:revoked', $id), '1',
   'the replica holds the id');

($rc, $out) = $replica->script('revoke', 'some-id');
isnt($rc, 0, 'scripts/revoke on the replica fails');
like($out, qr/READONLY/, 'and says the replica is read-only');

($rc, $out) = $primary->script('unrevoke', $id);
is($rc, 0, 'scripts/unrevoke on the primary') or diag($out);
ok(wait_for(sub { v($far, $tok) eq '200' }, 2 * $MAX_STALE), 'far: passes again');
is(everywhere($far, $tok), '200 on 2 workers', 'far: on every worker');


# a seller revoked on the primary

my $sid = token_claims($tok)->{sid};

($rc, $out) = $primary->script('revoke-seller', $sid, int(time()) + 1);
is($rc, 0, 'scripts/revoke-seller on the primary') or diag($out);
ok(wait_for(sub { v($far, $tok) eq '401 revoked' }, 2 * $MAX_STALE),
   'far: the seller\'s token is refused');

($rc, $out) = $primary->script('unrevoke-seller', $sid);
is($rc, 0, 'scripts/unrevoke-seller on the primary') or diag($out);
ok(wait_for(sub { v($far, $tok) eq '200' }, 2 * $MAX_STALE), 'far: passes again');


# written to the primary without PUBLISH: replicated, applied on resync

my $quiet = $near->mint('e1', @mp);
my $quiet_id = token_claims($quiet)->{id};
$far->remember($quiet);

is($primary->cli('SADD', 'token_scope:revoked', $quiet_id), '1',
   'raw SADD on the primary');
ok(wait_for(sub { $replica->cli('SISMEMBER', 'token_scope:revoked',
                                $quiet_id) eq '1' }, 2 * $MAX_STALE),
   'replicated');

reload($far);

ok(wait_for(sub { v($far, $quiet) eq '401 revoked' }, 5),
   'far: refused after a reload (resync from the replica)');
is(everywhere($far, $quiet), '401 revoked on 2 workers', 'far: on every worker');


# the primary down: the instance on the replica keeps a fresh state

$primary->kill9();

# the state's age is counted in whole seconds: max_stale=2s may take
# nearly 3 to pass; once near refuses, max_stale has passed for far too
ok(wait_for(sub { v($near, $tok) eq '503 redis_unavailable' }, 3 * $MAX_STALE),
   'near (primary gone) applies redis_down deny');

is(v($far, $quiet), '401 revoked',
   'primary down: far still refuses the revoked token');
is(v($far, $near->mint('e1', @mp)), '200',
   'and passes valid ones after max_stale (its replica is up)');


# done_testing() runs the harness's end checks on both instances

$near->done_testing();
