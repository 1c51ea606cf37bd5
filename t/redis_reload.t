#!/usr/bin/perl

# A reload and the worker processes it retires.  A worker that starts
# shutting down closes its Redis connections at once (the revocation sync
# of the old worker 0, and the opaque token lookups of every old worker),
# even while a slow response keeps it alive.  So the old worker 0 no longer
# writes the revocation zone the new configuration reuses, nor keeps it
# fresh: when the new configuration's Redis cannot be reached, max_stale
# passes and token_scope_redis_down decides.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict token_claims);
use TokenScope::Redis qw(wait_for globals reload);

TokenScope::Redis::check_installed();

my $t = TokenScope::Test->new();
my $redis = TokenScope::Redis->new($t);

$t->keygen('ES256', 'e1');

# 64 MB a client does not read: the worker serving it stays busy, and
# alive after a reload, until send_timeout
mkdir $t->testdir . '/html';
open my $fh, '>', $t->testdir . '/html/big' or die "big: $!\n";
truncate $fh, 64 << 20 or die "truncate: $!\n";
close $fh;

my $nowhere = TokenScope::Redis::free_port($t);

sub config {
    my ($address) = @_;

    $t->write_config(globals(workers => 2) . <<"EOF");

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_scope read_catalog;
    token_scope_redis $address timeout=200ms max_stale=2s;

    server {
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

        add_header X-Worker \$pid always;
        add_header X-TS-Reason \$token_scope_reason always;

        location / {
            token_scope marketplace;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /opaque {
            token_scope read_catalog;
            token_scope_opaque on;
            proxy_pass http://127.0.0.1:%%PORT_8081%%;
        }

        location /big {
            root %%TESTDIR%%/html;
            send_timeout 60s;
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

sub v {
    my ($path, $token) = @_;
    return verdict($t->get($path, Authorization => "Bearer $token"));
}

# the pid of the worker 0 that synced last

sub worker0 {
    my @pids = $t->read_file('error.log')
               =~ /^\S+ \S+ \[notice\] (\d+)#\d+: token scope: redis .*synced/mg;
    return $pids[-1];
}

sub synced_count {
    my $n = () = $t->read_file('error.log') =~ /redis.*synced/g;
    return $n;
}

# nginx's connections to Redis: every client but the one asking

sub connections {
    return scalar grep { !/cmd=client/ } split /\n/, $redis->cli('CLIENT', 'LIST');
}

# a connection to /big answered by worker PID, left unread; undef if the
# kernel gives none of 20 connections to that worker

sub hold {
    my ($pid) = @_;

    for (1 .. 20) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $t->port('8080'),
                                      Proto => 'tcp', Timeout => 5)
            or die "connect: $!\n";

        print $s "GET /big HTTP/1.0\r\nHost: localhost\r\n\r\n";

        my $head = '';
        my $sel = IO::Select->new($s);

        while ($head !~ /\r\n\r\n/ && $sel->can_read(5)) {
            sysread($s, $head, 1, length $head) or last;
        }

        return $s if $head =~ /^X-Worker: $pid\r$/m;

        close $s;
    }

    return undef;
}

sub alive { kill 0, $_[0] }


$redis->start();
config($redis->address);
$t->run();

ok(wait_for(sub { synced_count() >= 1 }, 5), 'worker 0 synced');

is(wait_for(sub { connections() == 4 }, 3) ? 4 : connections(), 4,
   'two lookup connections and the two of the sync');

my $old = worker0();
my $held = hold($old);
ok($held, "a slow response of worker 0 ($old)");


# the same configuration again: the old worker 0 stays, busy; its Redis
# connections go at once

reload($t);

ok(wait_for(sub { synced_count() >= 2 }, 5), 'the new worker 0 synced');
isnt(worker0(), $old, 'another process');

ok(wait_for(sub { connections() == 4 }, 3),
   'the old workers closed their Redis connections: 4 left, the new ones')
    or diag($redis->cli('CLIENT', 'LIST'));
ok(alive($old), 'while the old worker 0 is still alive, shutting down');

my $tok = $t->mint('e1', '--categories', 'marketplace');
my $gone = $t->mint('e1', '--categories', 'marketplace');

$redis->revoke(token_claims($gone)->{id});

ok(wait_for(sub { v('/', $gone) eq '401 revoked' }, 2),
   'revocation works after the reload');
is(v('/', $tok), '200', 'a valid token passes');

close $held if $held;


# a configuration whose Redis cannot be reached: the old worker 0, still
# alive, must not keep the reused zone fresh

$old = worker0();
$held = hold($old);
ok($held, "a slow response of worker 0 ($old)");

config("127.0.0.1:$nowhere");
reload($t);

my $reloaded = time();

ok(wait_for(sub { $t->read_file('error.log') =~ /\Q$nowhere\E.*failed/ }, 3),
   'the new worker 0 cannot connect, and says so');

is(v('/', $tok), '200', 'within max_stale: the state kept serves')
    if time() - $reloaded < 1.5;

ok(wait_for(sub { v('/', $tok) eq '503 redis_unavailable' }, 6),
   'after max_stale: 503 redis_unavailable, although the old worker 0 '
   . 'could still reach its Redis');
ok(alive($old), '(the old worker 0 is still alive)');
is(v('/', $gone), '401 revoked', 'a token known to be revoked stays so');
is(connections(), 0, 'no connection to the old Redis is left');

close $held if $held;

$t->stop();
$redis->stop();

$t->done_testing();
