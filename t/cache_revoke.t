#!/usr/bin/perl

# A cached JWT is still checked against revocation on every request: with
# token_scope_cache and token_scope_redis, a token answered from the cache
# on both workers is refused as soon as it, or its seller, is revoked, and
# passes again from the cache once unrevoked.  The cache counters show
# that the answers came from the cache, not from a new verification.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for revocation_config);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

$t->write_config(revocation_config(
    redis => '127.0.0.1:' . $redis->port . ' timeout=200ms max_stale=2s',
    http => 'token_scope_cache zone=tokens:1m;',
    worker_header => 1, reason_header => 1, status => 1));

$redis->start();
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'the node connects and syncs at start')
    or diag($t->read_file('error.log'));

# the cache counter NAME of the status page

sub counter {
    my ($name) = @_;
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_\Q$name\E (\d+)$/m;
    return $v // -1;
}

# "VERDICTS on N workers" of 24 connections, polled until they are EXPECT
# on both workers: pub/sub takes a few ms; the poll gives up after twice
# max_stale (2s), the longest a revocation may go unnoticed

sub everywhere {
    my ($token, $expect) = @_;
    my $seen;

    wait_for(sub {
        my ($all, $workers) = $t->every_worker('/', $token, 24);
        $seen = "$all on $workers workers";
        return $seen eq "$expect on 2 workers";
    }, 4);

    return $seen;
}

my $token = $t->mint('e1', '--categories', 'marketplace');
my $id = token_claims($token)->{id};
my $seller = token_claims($token)->{sid};

my ($all, $workers) = $t->every_worker('/', $token, 24);
is($all, '200', 'a valid token passes on every connection');
is($workers, 2, 'both workers answered');
is(counter('entries'), 1, 'it is cached once');

my $hits = counter('hits_total');
ok($hits >= 20, "the later requests were cache hits ($hits)");

$redis->revoke($id);
is(everywhere($token, '401 revoked'), '401 revoked on 2 workers', 'revoked by id: refused on every worker although cached');
is(counter('entries'), 1, 'the entry stays cached');
ok(counter('hits_total') > $hits, 'the refusals were cache hits');

$redis->unrevoke($id);
is(everywhere($token, '200'), '200 on 2 workers', 'unrevoked: passes again from the cache on every worker');

# a time after the token's iat, which may be this very second
my ($rc, $out) = $redis->script('revoke-seller', $seller, time() + 5);
is($rc, 0, 'scripts/revoke-seller') or diag($out);
is(everywhere($token, '401 revoked'), '401 revoked on 2 workers', 'its seller revoked: refused on every worker although cached');

($rc, $out) = $redis->script('unrevoke-seller', $seller);
is($rc, 0, 'scripts/unrevoke-seller') or diag($out);
is(everywhere($token, '200'), '200 on 2 workers', 'the seller unrevoked: passes again on every worker');

$t->done_testing();
