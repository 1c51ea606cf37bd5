#!/usr/bin/perl

# token_scope_redis user= and password_file=: a Redis 6+ ACL user of its
# own, with only the rights the module needs, and a password read from a
# file when the configuration is read, so that "nginx -T" never shows it.
# nginx -t refuses a password file that is missing, not a file or empty,
# and password= with password_file=, and user= without a password; a
# wrong password in the file is logged once, and no password appears in
# any log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for globals reload redis_state_lines);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

my $USER = 'ts-nginx';
my $PASSWORD = 'pw-acl-5d1f83c2';
my $WRONG = 'pw-acl-wrong-91be';

my $redis = TokenScope::Redis->new($t);
my $nowhere = TokenScope::Redis::free_port($t);

my $pw = $t->write_file('redis.pw', "$PASSWORD\n");

sub config {
    my ($redis_line) = @_;

    $t->write_config(globals(workers => 2) . <<"EOF");

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_scope read_catalog;
    token_scope_redis $redis_line;

    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        add_header X-Worker \$pid always;

        location / {
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /opaque {
            token_scope read_catalog;
            token_scope_opaque on;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\\n";
        }
    }
}
EOF
}

sub check {
    config(@_);
    return $t->test_config();
}

sub v {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}


# "nginx -t"

my ($rc, $out) = check("127.0.0.1:$nowhere user=$USER password_file=$pw");
is($rc, 0, 'user= and password_file=') or diag($out);

($rc, $out) = $t->run_cmd($t->_nginx_cmd('-T'));
like($out, qr/password_file=\Q$pw\E/, 'nginx -T shows the password file');
unlike($out, qr/\Q$PASSWORD\E/, 'but not the password');

($rc, $out) = check("127.0.0.1:$nowhere password_file=relative.pw");
isnt($rc, 0, 'a missing password file: fails');
like($out, qr/open\(\) "[^"]*relative\.pw" failed/,
     'the message names the file');

($rc, $out) = check("127.0.0.1:$nowhere password_file=" . $t->testdir);
isnt($rc, 0, 'a directory as the password file: fails');
like($out, qr/is not a file/, 'is not a file');

my $empty = $t->write_file('empty.pw', "\n");
($rc, $out) = check("127.0.0.1:$nowhere password_file=$empty");
isnt($rc, 0, 'an empty password file: fails');
like($out, qr/no password in "\Q$empty\E"/, 'no password in the file');

($rc, $out) = check("127.0.0.1:$nowhere password=x password_file=$pw");
isnt($rc, 0, 'password= and password_file=: fails');
like($out, qr/cannot both be set/, 'cannot both be set');

($rc, $out) = check("127.0.0.1:$nowhere user=$USER");
isnt($rc, 0, 'user= without a password: fails');
like($out, qr/"user=" needs "password=" or "password_file="/,
     'user= needs a password');

($rc, $out) = check("127.0.0.1:$nowhere user=");
isnt($rc, 0, 'an empty user=: fails');
like($out, qr/invalid parameter "user="/, 'invalid parameter "user="');


# an ACL user allowed what the module does and nothing more: read the
# keys under the prefix, subscribe to its channel, PING

$redis->start();

is($redis->cli('ACL', 'SETUSER', $USER, 'on', ">$PASSWORD", 'resetkeys',
               '~token_scope:*', 'resetchannels', '&token_scope:*', '-@all',
               '+ping', '+select', '+sscan', '+hscan', '+hgetall',
               '+subscribe'),
   'OK', 'an ACL user with the rights the module needs');

config("127.0.0.1:" . $redis->port . " user=$USER password_file=$pw"
       . ' timeout=200ms max_stale=2s');
$t->run();

ok(wait_for(sub { $t->read_file('error.log') =~ /redis.*synced/ }, 5),
   'the ACL user connects, subscribes and syncs')
    or diag(join "\n", redis_state_lines($t));

my @clients = grep { !/cmd=client/ } split /\n/, $redis->cli('CLIENT', 'LIST');
is(scalar(grep { /\buser=\Q$USER\E\b/ } @clients), scalar @clients,
   'every connection of nginx is the ACL user\'s');
is(scalar @clients, 4, 'the sync\'s two, a lookup connection per worker');

my $tok = $t->mint('e1', '--categories', 'marketplace');
my $id = token_claims($tok)->{id};

is(v('/', $tok), '200', 'a valid token passes');

$redis->cli('SADD', 'token_scope:revoked', $id);
$redis->cli('PUBLISH', 'token_scope:revocations', "revoke $id");

ok(wait_for(sub { v('/', $tok) eq '401 revoked' }, 2),
   'a revocation published reaches the ACL user');

# an opaque token looked up as the ACL user, on every worker

my $opaque = 'secret_' . ('a1b2c3d4' x 4);
my $digest = sha256_hex($opaque);

$redis->cli('HSET', "token_scope:opaque:$digest", 'type', 'secret',
            'scopes', 'read_catalog');

my ($all, $workers) = $t->every_worker('/opaque', $opaque, 8);
is($all, '200', 'an opaque token is looked up as the ACL user');
is($workers, 2, 'by both workers');


# a wrong password in the file: logged once, then the stale policy

my $valid = $t->mint('e1', '--categories', 'marketplace');
is(v('/', $valid), '200', 'another token passes');

my $before = scalar redis_state_lines($t);

$t->write_file('redis.pw', "$WRONG\n");
reload($t);

ok(wait_for(sub {
       grep { /WRONGPASS|invalid username-password/ }
       (redis_state_lines($t))[$before .. scalar redis_state_lines($t) - 1]
   }, 5), 'a wrong password in the file: the log says so');

ok(wait_for(sub { v('/', $valid) eq '503 redis_unavailable' }, 6),
   'after max_stale: 503 redis_unavailable');

my @auth = grep { /WRONGPASS|invalid username-password/ }
           (redis_state_lines($t))[$before .. scalar redis_state_lines($t) - 1];
cmp_ok(scalar @auth, '<=', 3, 'logged once by each user of Redis, not on every retry')
    or diag(join "\n", @auth);

$t->write_file('redis.pw', "$PASSWORD\n");
reload($t);

my $fresh = $t->mint('e1', '--categories', 'marketplace');
ok(wait_for(sub { v('/', $fresh) eq '200' }, 7),
   'the right password again: requests pass');

$t->stop();

my @leaks = grep { index($t->read_file($_), $PASSWORD) >= 0
                   || index($t->read_file($_), $WRONG) >= 0 }
            grep { -f } map { $t->testdir . "/$_" }
            qw(error.log access.log stderr.log);
is(scalar @leaks, 0, 'no password in any nginx log') or diag("@leaks");

$redis->stop();

$t->done_testing(config_errors => 1);
