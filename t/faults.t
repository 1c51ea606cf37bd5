#!/usr/bin/perl

# Faults: "nginx -s reload" ten times while clients keep sending requests
# over keep-alive connections (not one fails); a key file replaced by a
# broken one (the reload fails cleanly, saying why, and the old
# configuration keeps serving); and service tokens with their client
# secrets, right and wrong, so that the final check finds no secret in any
# log.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');
$t->keygen('ES256', 'e2');

my $secret = 'faults-client-secret-0042';

$t->write_file('secrets.txt', "7d1c9e2a " . sha256_hex($secret) . "\n");

my $WORKERS = 2;
my $level = $ENV{TEST_NGINX_DEBUG} ? 'debug' : 'info';

$t->write_config(<<"EOF" . <<'EOF');
load_module %%MODULE%%;

daemon off;
master_process on;
worker_processes $WORKERS;

pid %%TESTDIR%%/nginx.pid;
error_log %%TESTDIR%%/error.log $level;

events {
    worker_connections 256;
}
EOF

http {
    %%TEST_GLOBALS_HTTP%%

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        keepalive_requests 100000;

        location /t {
            token_scope content;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            proxy_pass http://backend;
        }

        location /svc {
            token_scope content;
            token_scope_key_file %%KEYS%%/e1.pem kid=e1;
            token_scope_service_secrets %%TESTDIR%%/secrets.txt;
            proxy_pass http://backend;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "backend ok\n";
        }
    }
}
EOF

$t->run();

my $token = $t->mint('e1', '--categories', 'content');

is(verdict($t->get('/t', Authorization => "Bearer $token")), '200',
   'the token passes before any reload');


# "nginx -s reload" (or SIGHUP to the master: "nginx -s" refuses a broken
# configuration itself); returns whether new workers started and the old
# ones exited within SECONDS

sub count {
    my ($re) = @_;
    return scalar(() = $t->read_file('error.log') =~ /$re/g);
}

sub reload {
    my (%opt) = @_;

    my $started = count(qr/start worker process/);
    my $exited = count(qr/worker process \d+ exited/);

    if ($opt{hup}) {
        kill 'HUP', $t->{pid};

    } else {
        my ($rc, $out, $err) = $t->run_cmd($t->_nginx_cmd('-s', 'reload'));
        return 0 if $rc != 0;
    }

    my $deadline = time() + ($opt{seconds} // 10);

    while (time() < $deadline) {
        return 1 if count(qr/start worker process/) >= $started + $WORKERS
                    && count(qr/worker process \d+ exited/)
                       >= $exited + $WORKERS;
        sleep 0.02;
    }

    return 0;
}


sub wait_log {
    my ($re, $seconds) = @_;

    my $deadline = time() + ($seconds // 10);

    while (time() < $deadline) {
        return 1 if $t->read_file('error.log') =~ $re;
        sleep 0.02;
    }

    return 0;
}


# the load: CLIENTS processes, each one keep-alive connection at a time,
# HTTP/1.1 requests until the stop file appears; a request is failed
# unless it gets a 200, except that a reused connection closed before any
# byte of the answer is retried on a new one, as every HTTP client does
# (the server may close an idle keep-alive connection at any time; nginx
# does so for the old workers' connections after a reload)

my $CLIENTS = 2;
my $stop = $t->testdir . '/load.stop';

sub client {
    my ($n) = @_;

    my $port = $t->port('8080');
    my $req = "GET /t HTTP/1.1\r\nHost: localhost\r\n"
              . "Authorization: Bearer $token\r\n\r\n";
    my %count = (ok => 0, failed => 0, retried => 0, connections => 0);
    my @failures;
    my ($s, $used);

    my $deadline = time() + 120;

    while (!-e $stop && time() < $deadline) {
        if (!$s) {
            $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $port, Proto => 'tcp',
                                       Timeout => 5);
            if (!$s) {
                $count{failed}++;
                push @failures, "connect: $!";
                sleep 0.01;
                next;
            }

            binmode $s;
            $used = 0;
            $count{connections}++;
        }

        my ($status, $close, $got) = exchange($s, $req);

        if (!$got && $used) {
            $count{retried}++;
            close $s;
            undef $s;
            next;
        }

        $used = 1;

        if (defined $status && $status eq '200') {
            $count{ok}++;
        } else {
            $count{failed}++;
            push @failures, $status // "no answer ($got bytes)";
        }

        if ($close || !defined $status) {
            close $s;
            undef $s;
        }
    }

    $t->write_file("load.$n",
                   join(' ', map { "$_=$count{$_}" } sort keys %count) . "\n"
                   . join("\n", grep { defined } @failures[0 .. 9]));

    POSIX::_exit(0);
}

# one request and its answer: status, whether the server closes, and how
# many bytes came back
sub exchange {
    my ($s, $req) = @_;

    return (undef, 1, 0) unless defined syswrite($s, $req);

    my $sel = IO::Select->new($s);
    my $buf = '';

    while (1) {
        if ($buf =~ /^HTTP\/1\.1 (\d{3}) .*?\r\n(.*?)\r\n\r\n/s) {
            my ($status, $head) = ($1, $2);
            my ($len) = $head =~ /^content-length:\s*(\d+)/mi;
            my $close = $head =~ /^connection:\s*close/mi ? 1 : 0;
            my $need = length($&) + ($len // 0);

            while (length $buf < $need) {
                last unless $sel->can_read(10);
                my $n = sysread($s, $buf, 65536, length $buf);
                last unless $n;
            }

            return (length $buf >= $need ? $status : undef, $close,
                    length $buf);
        }

        last unless $sel->can_read(10);
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }

    return (undef, 1, length $buf);
}

my @pids;

for my $n (1 .. $CLIENTS) {
    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        # the child must not stop the parent's nginx when it exits
        $t->{pid} = undef;
        client($n);
    }

    push @pids, $pid;
}

sleep 0.5;

my $reloaded = 0;

for (1 .. 10) {
    $reloaded++ if reload();
    sleep 0.3;
}

sleep 0.5;
$t->write_file('load.stop', '');
waitpid($_, 0) for @pids;

is($reloaded, 10, 'ten reloads each replaced the workers');

my (%total, @failures);

for my $n (1 .. $CLIENTS) {
    my ($counts, @f) = split /\n/, $t->read_file("load.$n");
    $total{$1} += $2 while ($counts // '') =~ /(\w+)=(\d+)/g;
    push @failures, @f;
}

cmp_ok($total{ok} // 0, '>', 100, 'the clients got answers all along')
    or diag(explain \%total);
is($total{failed} // 0, 0, 'no request failed during the reloads')
    or diag(join "\n", explain(\%total), @failures);
note("load during reloads: " . join ' ', map { "$_=$total{$_}" } sort keys %total);


# a broken key file: "nginx -s reload" fails, the error log says why, and
# the workers of the last good configuration keep serving

my $pem = $t->read_file('keys/e1.pem');

my @broken = (
    [ 'garbage',  "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n" ],
    [ 'truncated', substr($pem, 0, int(length($pem) / 2)) ],
    [ 'empty',    '' ],
    [ 'private', $t->read_file('keys/e2.key') ],
);

for my $case (@broken) {
    my ($what, $content) = @$case;

    $t->write_file('keys/e1.pem', $content);

    my ($rc, $out, $err) = $t->run_cmd($t->_nginx_cmd('-s', 'reload'));
    like("$rc $out$err", qr/^[1-9]\d* .*invalid key file.*e1\.pem/s,
         "nginx -s reload refuses a $what key file by name");

    my $errors = count(qr/invalid key file/);
    my $started = count(qr/start worker process/);

    kill 'HUP', $t->{pid};

    ok(wait_log(qr/(?:invalid key file.*){@{[ $errors + 1 ]}}/s),
       "after SIGHUP the error log names the $what key file");

    sleep 0.3;

    is(count(qr/start worker process/), $started,
       "no new workers start with a $what key file");
    is(verdict($t->get('/t', Authorization => "Bearer $token")), '200',
       "the old configuration serves on after a $what key file");
}

my @emerg = grep { /\[emerg\]/ && !/invalid key file/ }
            split /\n/, $t->read_file('error.log');
is(scalar @emerg, 0, 'the failed reloads log nothing but the key file errors')
    or diag(join "\n", @emerg);


# the key file replaced by another good key: the reload takes it

$t->write_file('keys/e1.pem', $t->read_file('keys/e2.pem'));
ok(reload(hup => 1), 'a reload with another good key replaces the workers');

is(verdict($t->get('/t', Authorization => "Bearer $token")), '401 bad_signature',
   'a token of the replaced key is refused after the reload');
is(verdict($t->get('/t', Authorization => 'Bearer '
                   . $t->mint('e2', '--kid', 'e1', '--categories', 'content'))),
   '200', 'a token of the new key passes after the reload');

$t->write_file('keys/e1.pem', $pem);
ok(reload(), 'a reload with the first key again replaces the workers');
is(verdict($t->get('/t', Authorization => "Bearer $token")), '200',
   'the first token passes again');


# client secrets travel to the module and never into a log: the final
# check of done_testing looks for every X-Client-Secret sent

my $svc = $t->mint('e1', '--service', '7d1c9e2a', '--categories', 'content');

is(verdict($t->get('/svc', Authorization => "Bearer $svc",
                   'X-Client-Secret' => $secret)),
   '200', 'a service token with its client secret passes');
is(verdict($t->get('/svc', Authorization => "Bearer $svc",
                   'X-Client-Secret' => "$secret-wrong")),
   '401 service_secret', 'a service token with a wrong client secret is refused');
is(verdict($t->get('/svc', Authorization => "Bearer $svc",
                   'X-Client-Secret' => "wrong-$secret",
                   'X-Client-Secret' => $secret)),
   '401 service_secret', 'only the first of two client secrets counts');
is(verdict($t->get('/svc', Authorization => 'Bearer x.y.z',
                   'X-Client-Secret' => "$secret-bad-token")),
   '401 malformed', 'a client secret with a malformed token is refused');

$t->done_testing(config_errors => 1);
