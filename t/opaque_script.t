#!/usr/bin/perl

# scripts/opaque against a real Redis: issue stores the SHA-256 digest of
# the printed token with its fields, list shows the tokens without them,
# revoke, unrevoke and delete change the hash and publish "opaque DIGEST"
# on the revocations channel in the same MULTI/EXEC; bad types and
# arguments exit 2, unknown tokens and an unreachable Redis exit 1.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h strftime);
use Test::More;
use TokenScope::Test;
use TokenScope::Redis qw(wait_for);

TokenScope::Redis::check_installed();

my $OPAQUE = "$TokenScope::Test::ROOT/scripts/opaque";
my $CLI = $ENV{TEST_REDIS_CLI} || '/usr/bin/redis-cli';

plan(skip_all => "no opaque script at $OPAQUE") unless -x $OPAQUE;

# the script needs no nginx: a TokenScope::Test for its test directory,
# run_cmd and files, without new()'s checks for nginx and the built module
my $t = bless {
    dir        => tempdir('token-scope-test-XXXXXX', TMPDIR => 1,
                          CLEANUP => !$ENV{TEST_NGINX_LEAVE}),
    ports      => {},
    keys       => {},
    signatures => [],
    secrets    => [],
    pid        => undef,
}, 'TokenScope::Test';

my $redis = TokenScope::Redis->new($t);
$redis->start();

my $P = 'token_scope:';
my $CHANNEL = "${P}revocations";


# scripts/opaque COMMAND ARGS against the server, with STDIN when given;
# returns (exit status, stdout, stderr)

sub opaque {
    my ($cmd, @args) = @_;

    my %opt;
    if (@args && ref $args[0] eq 'SCALAR') {
        $opt{stdin} = $t->write_file('stdin', ${ shift @args });
    }

    return $t->run_cmd([ $OPAQUE, $cmd, '--redis', $redis->address,
                         @args ], %opt);
}


# the fields of an opaque token's hash, read with redis-cli

sub fields {
    my ($digest, $prefix) = @_;

    my @l = split /\n/, $redis->cli('HGETALL',
                                    ($prefix // $P) . "opaque:$digest"), -1;
    return { @l };
}


# a redis-cli in the background (SUBSCRIBE, MONITOR) writing to a file

my @bg;

sub background {
    my ($file, @args) = @_;

    my $path = $t->testdir . "/$file";

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $path or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec $CLI, '-h', '127.0.0.1', '-p', $redis->port, @args
            or POSIX::_exit(127);
    }

    push @bg, $pid;

    return $path;
}

END {
    local $?;

    for my $pid (@bg) {
        kill 'TERM', $pid;
        waitpid($pid, 0);
    }
}

sub slurp { $t->read_file($_[0]) }


# MONITOR saw MULTI, these commands (each given as its words) and EXEC in
# a row from one client

sub transaction {
    my ($log, @cmds) = @_;

    my $re = join '', map { '(?:\S+ \[\d+ \1\] '
                            . join(' ', map { "\"\Q$_\E\"" } @$_) . '\n)' }
                      @cmds;

    $re = '^\S+ \[\d+ (\S+)\] "MULTI"\n' . $re . '\S+ \[\d+ \1\] "EXEC"$';

    return $log =~ /$re/m;
}


# usage

my ($rc, $out, $err) = $t->run_cmd([ $OPAQUE, '--help' ]);
is($rc, 0, '--help exits 0');
like($out, qr/process list \(ps\)/, '--help warns of tokens in ps');
like($out, qr/^  opaque issue /m, '--help shows the commands');

($rc) = $t->run_cmd([ $OPAQUE ]);
is($rc, 2, 'no command: exit 2');

($rc, $out, $err) = opaque('frobnicate');
is($rc, 2, 'unknown command: exit 2');


# issue: a secret token with scopes, subject and expiry

my $now = time;

($rc, $out, $err) = opaque('issue', '--type', 'secret', '--subject', '1003',
                           '--scopes', 'read_catalog update_orders',
                           '--expires', '+30 days');
is($rc, 0, 'issue secret: exit 0') or diag($err);
like($out, qr/^secret_[A-Za-z0-9]{32}\n\z/, 'issue secret: the token alone');

my ($secret) = $out =~ /^(\S+)/;
my $sd = sha256_hex($secret);

is($err, "digest $sd\n", 'issue secret: its sha256 digest on stderr');

my $f = fields($sd);
is($f->{type}, 'secret', 'secret: type');
is($f->{scopes}, 'read_catalog update_orders', 'secret: scopes');
is($f->{subject}, '1003', 'secret: subject');
my $sexp = $f->{expires};
ok(abs($sexp - ($now + 30 * 86400)) < 120, 'secret: expires')
    or diag("expires $f->{expires}, now $now");
ok(abs($f->{created} - $now) < 120, 'secret: created');
ok(!exists $f->{revoked}, 'secret: not revoked');
is(scalar keys %$f, 5, 'secret: no other fields');

is($redis->cli('KEYS', '*' . substr($secret, 7) . '*'), '',
   'the token itself is in no key');


# issue: a public token, no scopes, no subject, no expiry

($rc, $out, $err) = opaque('issue', '--type', 'public', '-q');
is($rc, 0, 'issue public: exit 0') or diag($err);
like($out, qr/^public_[A-Za-z0-9]{32}\n\z/, 'issue public: the token');
is($err, '', 'issue public -q: nothing on stderr');

my ($public) = $out =~ /^(\S+)/;
my $pd = sha256_hex($public);

$f = fields($pd);
is($f->{type}, 'public', 'public: type');
is($f->{scopes}, '', 'public: empty scopes');
ok(!exists $f->{subject}, 'public: no subject');
ok(!exists $f->{expires}, 'public: no expiry');

($rc, $out) = opaque('issue', '--type', 'service', '--scopes', 'a,b');
like($out, qr/^opaque_[A-Za-z0-9]{32}\n\z/, 'issue service: opaque_');
is(fields(sha256_hex($out =~ /^(\S+)/))->{scopes}, 'a b',
   'comma-separated scopes stored space-separated');

($rc, $out) = opaque('issue', '--type', 'base', '--expires', '0');
my $bd = sha256_hex($out =~ /^(\S+)/);
ok(!exists fields($bd)->{expires}, 'issue --expires 0: never expires');

$redis->cli('HSET', "${P}opaque:$bd", 'expires', '0');
($rc, $out) = opaque('list');
like($out, qr/^\Q@{[ substr($bd, 0, 16) ]}\E base - - never active$/m,
     'list: expires 0 is never');

($rc, $out, $err) = opaque('delete', '-q', $bd);
is("$rc$out$err", '0', 'delete -q: quiet');


# digest

($rc, $out) = opaque('digest', \"$secret\n", '-');
is($out, "$sd\n", 'digest - hashes standard input');

($rc, $out) = opaque('digest', $public);
is($out, "$pd\n", 'digest TOKEN');


# list

($rc, $out, $err) = opaque('list');
is($rc, 0, 'list: exit 0') or diag($err);

my @lines = split /\n/, $out;
is(scalar @lines, 3, 'list: a line per token');

my $s16 = substr($sd, 0, 16);
my $p16 = substr($pd, 0, 16);

my $iso = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $sexp);

like($out, qr/^$s16 secret 1003 read_catalog,update_orders $iso active$/m,
     'list: the secret token');
like($out, qr/^$p16 public - - never active$/m, 'list: the public token');
unlike($out, qr/\Q$secret\E|\Q$public\E|$sd/, 'list: no tokens, no digests');

($rc, $out) = opaque('list', '--full');
like($out, qr/^$sd secret /m, 'list --full: whole digests');


# revoke, with a subscriber on the channel and MONITOR watching

my $sub = background('sub.out', 'SUBSCRIBE', $CHANNEL);
my $mon = background('monitor.out', 'MONITOR');

ok(wait_for(sub {
    $redis->cli('PUBSUB', 'NUMSUB', $CHANNEL) =~ /\n1\z/
        && slurp($mon) =~ /^OK/;
}), 'subscriber and monitor ready');

($rc, $out, $err) = opaque('revoke', \"$secret\n", '-');
is($rc, 0, 'revoke -: exit 0') or diag($err);
is($out, "$s16: revoked; 1 subscriber(s) notified\n", 'revoke: output');
is(fields($sd)->{revoked}, '1', 'revoke: revoked 1');

ok(wait_for(sub { slurp($sub) =~ /^opaque $sd$/m }),
   'revoke: "opaque DIGEST" on the channel') or diag(slurp($sub));

ok(wait_for(sub {
       transaction(slurp($mon), [ 'HSET', "${P}opaque:$sd", 'revoked', '1' ],
                   [ 'PUBLISH', $CHANNEL, "opaque $sd" ]);
   }), 'revoke: HSET and PUBLISH in one MULTI/EXEC') or diag(slurp($mon));

($rc, $out) = opaque('list');
like($out, qr/^$s16 secret .* revoked$/m, 'list: revoked');
like($out, qr/^$p16 public .* active$/m, 'list: the other one active');

($rc, $out) = opaque('inspect', \"$secret\n", '-');
like($out, qr/^digest +$sd$/m, 'inspect: digest');
like($out, qr/^type +secret$/m, 'inspect: type');
like($out, qr/^state +revoked$/m, 'inspect: revoked');


# unrevoke by digest

($rc, $out, $err) = opaque('unrevoke', $sd);
is($rc, 0, 'unrevoke DIGEST: exit 0') or diag($err);
ok(!exists fields($sd)->{revoked}, 'unrevoke: revoked field gone');
ok(wait_for(sub { my @m = slurp($sub) =~ /^opaque $sd$/mg; @m == 2 }),
   'unrevoke: published');

($rc, $out) = opaque('list');
like($out, qr/^$s16 secret .* active$/m, 'list: active again');


# delete

($rc, $out, $err) = opaque('delete', uc $sd);
is($rc, 0, 'delete DIGEST (upper case): exit 0') or diag($err);
is($redis->cli('EXISTS', "${P}opaque:$sd"), '0', 'delete: key gone');
ok(wait_for(sub { my @m = slurp($sub) =~ /^opaque $sd$/mg; @m == 3 }),
   'delete: published');
ok(wait_for(sub {
       transaction(slurp($mon), [ 'DEL', "${P}opaque:$sd" ],
                   [ 'PUBLISH', $CHANNEL, "opaque $sd" ]);
   }), 'delete: DEL and PUBLISH in one MULTI/EXEC') or diag(slurp($mon));

($rc, $out, $err) = opaque('delete', $sd);
is($rc, 1, 'delete again: exit 1');
like($err, qr/nothing to delete/, 'delete again: says so');


# errors

my $keys = $redis->cli('DBSIZE');

($rc, $out, $err) = opaque('issue', '--type', 'bogus');
is($rc, 2, 'bad type: exit 2');
like($err, qr/unknown type/, 'bad type: says so');
is($out, '', 'bad type: no token');

($rc) = opaque('issue');
is($rc, 2, 'issue without --type: exit 2');

($rc) = opaque('revoke', '--type', 'secret', $public);
is($rc, 2, 'issue options elsewhere: exit 2');

($rc, $out, $err) = opaque('revoke', \"secret_NoSuchTokenNoSuchToken1234\n",
                           '-');
is($rc, 1, 'revoke an unknown token: exit 1');
like($err, qr/no opaque token/, 'unknown token: says so');

($rc) = opaque('unrevoke', 'f' x 64);
is($rc, 1, 'unrevoke an unknown digest: exit 1');

($rc) = opaque('inspect', 'secret_NoSuchTokenNoSuchToken1234');
is($rc, 1, 'inspect an unknown token: exit 1');

($rc) = opaque('revoke', $public, 'public_NoSuchToken');
is($rc, 1, 'one unknown among several: exit 1');
ok(!exists fields($pd)->{revoked}, '... and nothing changed');

($rc, $out, $err) = opaque('revoke', 'eyJhbGciOi.eyJpZCI6.c2ln');
is($rc, 2, 'a JWT: exit 2');

is($redis->cli('DBSIZE'), $keys, 'the errors wrote no keys');

my $down = TokenScope::Redis::free_port($t);

($rc, $out, $err) = $t->run_cmd([ $OPAQUE, 'issue', '--type', 'test',
                                  '--redis', "127.0.0.1:$down" ]);
is($rc, 1, 'issue, Redis down: exit 1');
is($out, '', 'issue, Redis down: no token printed');

($rc) = $t->run_cmd([ $OPAQUE, 'list', '--redis', "127.0.0.1:$down" ]);
is($rc, 1, 'list, Redis down: exit 1');


# a password from a file

{
    my $auth = TokenScope::Redis->new($t, name => 'auth', password => 'pw');
    $auth->start();

    my $pw = $t->write_file('pw', "pw\n");
    my $bad = $t->write_file('bad', "wrong\n");

    ($rc, $out, $err) = $t->run_cmd([ $OPAQUE, 'issue', '--type', 'test',
                                      '--redis', $auth->address,
                                      '--password-file', $pw ]);
    is($rc, 0, '--password-file: issue') or diag($err);

    my $d = sha256_hex($out =~ /^(\S+)/);
    is($auth->cli('HGET', "${P}opaque:$d", 'type'), 'test',
       '--password-file: stored');

    ($rc, $out) = $t->run_cmd([ $OPAQUE, 'issue', '--type', 'test',
                                '--redis', $auth->address,
                                '--password-file', $bad ]);
    is("$rc $out", '1 ', 'wrong password: exit 1, no token');

    ($rc) = $t->run_cmd([ $OPAQUE, 'list', '--redis', $auth->address ]);
    is($rc, 1, 'no password: list exits 1');

    $auth->stop();
}


# another prefix (with glob characters, taken literally), from the
# environment, over the unix socket

{
    local $ENV{TOKEN_SCOPE_PREFIX} = 'x*[y]:';
    local $ENV{TOKEN_SCOPE_REDIS} = 'unix:' . $redis->socket;

    ($rc, $out, $err) = $t->run_cmd([ $OPAQUE, 'issue', '--type', 'test',
                                      '--subject', '42' ]);
    is($rc, 0, 'prefix from the environment: issue') or diag($err);

    my $d = sha256_hex($out =~ /^(\S+)/);
    is(fields($d, 'x*[y]:')->{subject}, '42', 'prefix: stored under it');

    ($rc, $out) = $t->run_cmd([ $OPAQUE, 'list' ]);
    is($out, substr($d, 0, 16) . " test 42 - never active\n",
       'prefix: list shows only its tokens');
}

done_testing();
