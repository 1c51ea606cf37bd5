#!/usr/bin/perl

# token_scope_redis configuration: mistakes caught by "nginx -t" (context,
# parameters, unresolvable host); a unix socket with db=, prefix=,
# password= and lifetime= used by the node and by scripts/revoke; a wrong
# password is logged and the stale-state policy applies; the password
# never appears in a log.

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

$t->keygen('ES256', 'e1');

my $PASSWORD = 'pw-right-7f3a9c';
my $WRONG = 'pw-wrong-4b1e8d';

my $redis = TokenScope::Redis->new($t, password => $PASSWORD,
                                   socket_perm => '777');


# "nginx -t"

sub conf {
    my ($http, $server) = @_;

    $server //= '';

    return <<"EOF";
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    $http

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;
        $server

        location / {
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }
}
EOF
}

sub check {
    $t->write_config(conf(@_));
    return $t->test_config();
}

my $nowhere = TokenScope::Redis::free_port($t);

my ($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere;");
is($rc, 0, 'nginx -t passes without reaching Redis') or diag($out);

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere db=2 "
                    . 'password=x prefix=p: timeout=150ms max_stale=5s '
                    . 'zone=16m lifetime=90d;');
is($rc, 0, 'all the parameters') or diag($out);

($rc, $out) = check("token_scope_redis unix:/nonexistent/redis.sock;");
is($rc, 0, 'a unix socket path') or diag($out);

($rc, $out) = check('', "token_scope_redis 127.0.0.1:$nowhere;");
isnt($rc, 0, 'token_scope_redis in server: fails');
like($out, qr/"token_scope_redis" directive is not allowed here/,
     'not allowed here');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere foo=bar;");
isnt($rc, 0, 'unknown parameter: fails');
like($out, qr/invalid parameter "foo=bar"/, 'invalid parameter "foo=bar"');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere timeout=soon;");
isnt($rc, 0, 'bad timeout: fails');
like($out, qr/soon/, 'the message names the value');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere max_stale=x1;");
isnt($rc, 0, 'bad max_stale: fails');
like($out, qr/x1/, 'the message names the value');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere db=first;");
isnt($rc, 0, 'bad db: fails');
like($out, qr/first/, 'the message names the value');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere zone=lots;");
isnt($rc, 0, 'bad zone: fails');
like($out, qr/lots/, 'the message names the value');

($rc, $out) = check('token_scope_redis no-such-host.invalid:6379;');
isnt($rc, 0, 'unresolvable host: fails');
like($out, qr/no-such-host\.invalid/, 'the message names the host');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere;\n"
                    . "    token_scope_redis 127.0.0.1:$nowhere;");
isnt($rc, 0, 'token_scope_redis twice: fails');
like($out, qr/"token_scope_redis" directive is duplicate/, 'is duplicate');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere;",
                    'token_scope_redis_down maybe;');
isnt($rc, 0, 'token_scope_redis_down maybe: fails');
like($out, qr/invalid value "maybe"/, 'invalid value "maybe"');

($rc, $out) = check("token_scope_redis 127.0.0.1:$nowhere;",
                    'token_scope_revocation yes;');
isnt($rc, 0, 'token_scope_revocation yes: fails');
like($out, qr/invalid value "yes"/, 'invalid value "yes"');

($rc, $out) = check('', 'token_scope_revocation off;'
                        . ' token_scope_redis_down allow;');
is($rc, 0, 'the per-location directives without token_scope_redis')
    or diag($out);


# a unix socket, db 3, prefix "shop:", a password, lifetime 1h

my $socket = $redis->socket;

# max_stale=4s: the state is pinged every second, so it is sure to stay
# current for 4 - 1 s (less a PING's round trip) after the link is lost
my $MAX_STALE = 4;
my $PING = 1;

my $running = revocation_config(
    redis => "unix:$socket db=3 prefix=shop: password=%%PASSWORD%%"
             . " lifetime=1h timeout=200ms max_stale=${MAX_STALE}s",
    reason_header => 1, allow => 1);

sub running {
    my ($password) = @_;
    (my $c = $running) =~ s/%%PASSWORD%%/$password/g;
    $t->write_config($c);
}

sub v {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}

# the Redis lines of the error log after the first N

sub lines_since {
    my ($n) = @_;
    my @l = redis_state_lines($t);
    return @l[$n .. $#l];
}

sub script {
    my ($cmd, @args) = @_;

    my $pw = $t->write_file('redis/password', "$PASSWORD\n");

    my ($rc, $out, $err) = $t->run_cmd(
        [ "$TokenScope::Test::ROOT/scripts/$cmd", '--redis', "unix:$socket",
          '--password-file', $pw, @args ]);

    return ($rc, $out . $err);
}

$redis->start();
running($PASSWORD);
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/i }, 5),
   'unix socket with a password: connected and synced')
    or diag($t->read_file('error.log'));

my @mp = ('--categories', 'marketplace');

my $tok = $t->mint('e1', @mp);
my $id = token_claims($tok)->{id};
is(v('/', $tok), '200', 'a valid token passes');

# written under the default prefix or into another db: not ours, neither
# by pub/sub nor on a resync (channels are server-wide, not per db: the
# prefix keeps two users of one Redis apart)

$redis->cli('SADD', 'token_scope:revoked', $id);
$redis->cli('-n', 3, 'SADD', 'token_scope:revoked', $id);
$redis->cli('SADD', 'shop:revoked', $id);
$redis->cli('PUBLISH', 'token_scope:revocations', 'revoke ' . $id);

my $synced = () = $t->read_file('error.log') =~ /redis.*synced/gi;
reload($t);
ok(wait_for(sub {
       my $n = () = $t->read_file('error.log') =~ /redis.*synced/gi;
       $n > $synced
   }, 5), 'synced again after a reload');

is(v('/', $tok), '200', 'revocations under another prefix or db are ignored');

($rc, $out) = script('revoke', '--db', 3, '--prefix', 'shop:', $id);
is($rc, 0, 'scripts/revoke over the unix socket, db 3, prefix shop:')
    or diag($out);
like($out, qr/[1-9]\d* subscriber/, 'the node hears it');

ok(wait_for(sub { v('/', $tok) eq '401 revoked' }, $MAX_STALE), 'the token is refused');

is($redis->cli('-n', 3, 'SISMEMBER', 'shop:revoked', $id), '1',
   'the key is shop:revoked in db 3');

($rc, $out) = script('unrevoke', '--db', 3, '--prefix', 'shop:', $id);
is($rc, 0, 'scripts/unrevoke') or diag($out);
ok(wait_for(sub { v('/', $tok) eq '200' }, $MAX_STALE), 'passes again');

# lifetime=1h: the issue time of a token without iat and UUIDv7 id is
# exp - 1h

my $sid = '3c9d0e1f-2a3b-4c5d-8e6f-00000000b001';
my $now = int time();
my $T = $now - 60;

my $old = $t->mint('e1', @mp, '--claim', "sid=\"$sid\"", '--claim', 'iat=null',
                   '--claim', 'id="legacy-1"', '--exp-in', 1800);
my $new = $t->mint('e1', @mp, '--claim', "sid=\"$sid\"", '--claim', 'iat=null',
                   '--claim', 'id="legacy-2"', '--exp-in', 3600);
my $v7 = $t->mint('e1', @mp, '--claim', "sid=\"$sid\"", '--claim', 'iat=null',
                  '--claim', 'id="' . uuid7(($T - 5) * 1000) . '"',
                  '--exp-in', 3600);

($rc, $out) = script('revoke-seller', '--db', 3, '--prefix', 'shop:', $sid,
                     $T);
is($rc, 0, 'scripts/revoke-seller') or diag($out);

ok(wait_for(sub { v('/', $old) eq '401 revoked' }, $MAX_STALE),
   'lifetime=1h: exp - 1h before the seller revocation: refused');
is(v('/', $new), '200', 'exp - 1h after it: passes');
is(v('/', $v7), '401 revoked', 'the UUIDv7 time is used before exp');

($rc, $out) = script('unrevoke-seller', '--db', 3, '--prefix', 'shop:', $sid);
is($rc, 0, 'scripts/unrevoke-seller') or diag($out);
ok(wait_for(sub { v('/', $old) eq '200' }, $MAX_STALE), 'passes again');


# a wrong password: said in the log, then the stale policy

my $gone = $t->mint('e1', @mp);
script('revoke', '--db', 3, '--prefix', 'shop:', token_claims($gone)->{id});
ok(wait_for(sub { v('/', $gone) eq '401 revoked' }, $MAX_STALE), 'one token revoked');

my @before = redis_state_lines($t);

running($WRONG);

# the old workers pinged Redis until the reload's signal, after this
my $reloading = time();
reload($t);

ok(wait_for(sub {
          grep { /auth|password|WRONGPASS|NOAUTH/i } lines_since(scalar @before)
   }, 5), 'wrong password: the log says so')
    or diag(join "\n", redis_state_lines($t));

my $within = v('/', $tok);
my $age = time() - $reloading;

SKIP: {
    skip(sprintf('the request came %.2fs after the reload, when the state '
                 . 'may already be older than max_stale=%ds', $age,
                 $MAX_STALE), 1) if $age >= $MAX_STALE - $PING - 0.5;

    is($within, '200', 'within max_stale: the last known state serves');
}

ok(wait_for(sub { v('/', $tok) eq '503 redis_unavailable' }, 3 * $MAX_STALE),
   'after max_stale: deny refuses with redis_unavailable');
is(v('/allow', $tok), '200', 'allow passes');
is(v('/allow', $gone), '401 revoked', 'allow: the known revoked id is refused');

my $mid = scalar redis_state_lines($t);
v('/', $tok) for 1 .. 20;
v('/allow', $tok) for 1 .. 20;
cmp_ok(scalar redis_state_lines($t) - $mid, '<=', 1,
       'no Redis log line per request');

my @auth = grep { /auth|password|WRONGPASS|NOAUTH/i }
           lines_since(scalar @before);
cmp_ok(scalar @auth, '<=', 3, 'the failure is not logged on every retry')
    or diag(join "\n", @auth);

running($PASSWORD);
reload($t);

ok(wait_for(sub { v('/', $tok) eq '200' }, 7),
   'the right password again: passes');
is(v('/', $gone), '401 revoked', 'and the revocation holds');

$t->stop();

my @leaks = grep { index($t->read_file($_), $PASSWORD) >= 0
                   || index($t->read_file($_), $WRONG) >= 0 }
            grep { -f } map { $t->testdir . "/$_" }
            qw(error.log access.log stderr.log);
is(scalar @leaks, 0, 'no password in any nginx log') or diag("@leaks");

$redis->stop();

$t->done_testing(config_errors => 1);
