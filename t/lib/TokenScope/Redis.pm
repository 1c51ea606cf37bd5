package TokenScope::Redis;

# A real redis-server for the revocation tests: started by the test as a
# child process on a free loopback port (no persistence), stopped, paused
# (SIGSTOP), killed and restarted on the same port, plus redis-cli and
# scripts/revoke against it, and the small helpers the Redis tests share:
# nginx globals with several workers, the configuration of a revocation
# test, waiting for a condition or a log line, reload, UUIDv7 ids.

use strict;
use warnings;

use Exporter qw(import);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Test::More ();
use Time::HiRes qw(sleep time);

use TokenScope::Test;

our @EXPORT_OK = qw(wait_for globals revocation_config uuid7
                    redis_state_lines reload);

my $SERVER = $ENV{TEST_REDIS_SERVER} || '/usr/bin/redis-server';
my $CLI    = $ENV{TEST_REDIS_CLI} || '/usr/bin/redis-cli';
my $REVOKE = "$TokenScope::Test::ROOT/scripts/revoke";


# skips the whole test file when Redis is not installed

sub check_installed {
    Test::More::plan(skip_all => "no redis-server at $SERVER (redis-server)")
        unless -x $SERVER;
    Test::More::plan(skip_all => "no redis-cli at $CLI (redis-tools)")
        unless -x $CLI;
    Test::More::plan(skip_all => "no revoke script at $REVOKE")
        unless -x $REVOKE;
}


# TokenScope::Redis->new($t, name => NAME, password => P, replicaof => $r,
# socket_perm => '777' (for nginx workers running as nobody)); the server
# lives in $t's test directory and is not started yet

sub new {
    my ($class, $t, %opt) = @_;

    my $name = $opt{name} // 'redis';
    my $dir = $t->testdir . "/$name";
    mkdir $dir;

    return bless {
        t         => $t,
        name      => $name,
        dir       => $dir,
        port      => $opt{port} // free_port($t),
        password  => $opt{password},
        replicaof => $opt{replicaof},
        perm      => $opt{socket_perm} // '700',
        pid       => undef,
        paused    => 0,
    }, $class;
}


sub port    { $_[0]{port} }
sub address { "127.0.0.1:$_[0]{port}" }
sub socket  { "$_[0]{dir}/redis.sock" }
sub pid     { $_[0]{pid} }


# a free loopback port, never one of the test's nginx ports

sub free_port {
    my ($t) = @_;

    my %used = map { $_ => 1 } values %{ $t->{ports} };

    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            Listen    => 1,
        ) or next;

        my $port = $s->sockport();
        close $s;

        return $port unless $used{$port};
    }

    die "cannot find a free port\n";
}


# start(); start(hidden => 1) listens on the unix socket only, so that
# nothing configured with the TCP address reaches it until expose()

sub start {
    my ($self, %opt) = @_;

    die "redis $self->{name} is already running\n" if $self->{pid};

    my @cmd = ($SERVER,
               '--port', $opt{hidden} ? 0 : $self->{port},
               '--bind', '127.0.0.1',
               '--unixsocket', $self->socket,
               '--unixsocketperm', $self->{perm},
               '--dir', $self->{dir},
               '--save', '', '--appendonly', 'no',
               '--daemonize', 'no',
               '--logfile', "$self->{dir}/redis.log");

    push @cmd, '--requirepass', $self->{password}
        if defined $self->{password};

    if (my $primary = $self->{replicaof}) {
        push @cmd, '--replicaof', '127.0.0.1', $primary->port;
        push @cmd, '--masterauth', $primary->{password}
            if defined $primary->{password};
    }

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/redis.out";
        open STDERR, '>>', "$self->{dir}/redis.out";
        exec @cmd or POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $self->{paused} = 0;

    for (1 .. 200) {
        last if ($self->cli_socket('PING') // '') eq 'PONG';

        if (waitpid($pid, WNOHANG) == $pid) {
            $self->{pid} = undef;
            die "redis-server exited on start:\n"
                . $self->{t}->read_file("$self->{dir}/redis.out")
                . $self->{t}->read_file("$self->{dir}/redis.log");
        }

        sleep 0.02;
    }

    return $self;
}


# a server started hidden begins to listen on its TCP port

sub expose {
    my ($self) = @_;

    my $r = $self->cli_socket('CONFIG', 'SET', 'port', $self->{port});
    die "cannot expose redis on port $self->{port}: $r\n" unless $r eq 'OK';

    return $self;
}


sub _signal_wait {
    my ($self, @sigs) = @_;

    my $pid = $self->{pid} or return;

    kill 'CONT', $pid if $self->{paused};

    for my $sig (@sigs) {
        kill $sig, $pid;

        for (1 .. 200) {
            if (waitpid($pid, WNOHANG) == $pid) {
                $self->{pid} = undef;
                $self->{paused} = 0;
                return;
            }

            sleep 0.02;
        }
    }

    $self->{pid} = undef;
}


sub stop {
    my ($self) = @_;
    $self->_signal_wait(qw(TERM KILL));
    return $self;
}


# SIGKILL: no goodbye to the clients' sockets beyond the kernel's

sub kill9 {
    my ($self) = @_;
    $self->_signal_wait(qw(KILL));
    return $self;
}


sub pause {
    my ($self) = @_;
    kill 'STOP', $self->{pid} or die "cannot stop redis: $!\n";
    $self->{paused} = 1;
    return $self;
}


sub resume {
    my ($self) = @_;
    kill 'CONT', $self->{pid} or die "cannot continue redis: $!\n";
    $self->{paused} = 0;
    return $self;
}


sub DESTROY {
    my ($self) = @_;

    local $?;
    $self->_signal_wait(qw(KILL));
}


# redis-cli against the server (TCP, or the unix socket); returns the
# output without the final newline; errors come back as text

sub cli {
    my ($self, @args) = @_;
    return $self->_cli([ '-h', '127.0.0.1', '-p', $self->{port} ], @args);
}


sub cli_socket {
    my ($self, @args) = @_;
    return $self->_cli([ '-s', $self->socket ], @args);
}


sub _cli {
    my ($self, $where, @args) = @_;

    my $t = $self->{t};

    local $ENV{REDISCLI_AUTH} = $self->{password}
        if defined $self->{password};

    my ($rc, $out, $err) = $t->run_cmd([ $CLI, @$where, @args ]);

    $out .= $err;
    $out =~ s/\n\z//;

    return $out;
}


# scripts/revoke (or unrevoke, revoke-seller, unrevoke-seller) against
# this server; returns (exit status, output)

sub script {
    my ($self, $cmd, @args) = @_;

    my $t = $self->{t};
    my @pw;

    if (defined $self->{password}) {
        my $f = $t->write_file("$self->{dir}/password", "$self->{password}\n");
        @pw = ('--password-file', $f);
    }

    my ($rc, $out, $err) = $t->run_cmd([ $REVOKE, $cmd,
                                         '--redis', $self->address, @pw,
                                         @args ]);

    return ($rc, $out . $err);
}


sub revoke {
    my ($self, @args) = @_;

    my ($rc, $out) = $self->script('revoke', @args);
    die "scripts/revoke @args failed ($rc): $out\n" if $rc != 0;

    return $out;
}


sub unrevoke {
    my ($self, @args) = @_;

    my ($rc, $out) = $self->script('unrevoke', @args);
    die "scripts/unrevoke @args failed ($rc): $out\n" if $rc != 0;

    return $out;
}


# the nginx main context for a test with several workers (the harness
# default is one); the template then starts with load_module

sub globals {
    my (%opt) = @_;

    my $workers = $opt{workers} // 2;
    my $level = $ENV{TEST_NGINX_DEBUG} ? 'debug' : 'info';

    return <<"EOF";
load_module %%MODULE%%;

daemon off;
master_process on;
worker_processes $workers;

pid %%TESTDIR%%/nginx.pid;
error_log %%TESTDIR%%/error.log $level;

events {
    worker_connections 256;
}
EOF
}


# the whole nginx configuration of a revocation test: globals() with two
# workers, the key e1, token_scope_redis, and a server on 8080 (reuseport)
# whose locations pass to a backend on 8081 answering "backend ok":
#   redis          the parameters of token_scope_redis, e.g.
#                  "127.0.0.1:6379 timeout=200ms"
#   keys           the directory of e1.pem; default %%KEYS%%
#   worker_header  X-Worker: the worker's pid
#   reason_header  X-TS-Reason: $token_scope_reason
#   allow          also /allow, with token_scope_redis_down allow
#   norevoke       also /norevoke, with token_scope_revocation off
#   http           more directives at the http level
#   status         also /status, with token_scope_status
# "/" is always there; other placeholders are left for the caller

sub revocation_config {
    my (%opt) = @_;

    my $keys = $opt{keys} // '%%KEYS%%';

    my $headers = '';
    $headers .= "        add_header X-Worker \$pid always;\n"
        if $opt{worker_header};
    $headers .= "        add_header X-TS-Reason \$token_scope_reason always;\n"
        if $opt{reason_header};
    $headers .= "\n" if $headers ne '';

    my @locations = ([ '/' ]);
    push @locations, [ '/allow', 'token_scope_redis_down allow;' ]
        if $opt{allow};
    push @locations, [ '/norevoke', 'token_scope_revocation off;' ]
        if $opt{norevoke};

    my $locations = join "\n", map {
        my ($path, @directives) = @$_;
        "        location $path {\n"
        . "            token_scope marketplace;\n"
        . join('', map { "            $_\n" } @directives)
        . "            proxy_pass http://127.0.0.1:%%PORT_8081%%;\n"
        . "        }\n"
    } @locations;

    $locations .= "\n        location = /status {\n"
        . "            token_scope_status;\n"
        . "        }\n"
        if $opt{status};

    my $http = $opt{http} ? "    $opt{http}\n" : '';

    return globals(workers => 2) . <<"EOF";

http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file $keys/e1.pem kid=e1;
    token_scope_redis $opt{redis};
$http
    server {
        # reuseport: the kernel spreads the connections over both workers
        listen 127.0.0.1:%%PORT_8080%% reuseport;
        server_name localhost;

$headers$locations    }

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


# "nginx -s reload"; returns once the new workers have started (the old
# ones may still be finishing their connections)

sub reload {
    my ($t, %opt) = @_;

    my $workers = $opt{workers} // 2;
    my $started = () = $t->read_file('error.log') =~ /start worker process/g;

    my ($rc, $out, $err) = $t->run_cmd($t->_nginx_cmd('-s', 'reload'));
    die "nginx -s reload failed: $out$err\n" if $rc != 0;

    wait_for(sub {
        my $n = () = $t->read_file('error.log') =~ /start worker process/g;
        return $n >= $started + $workers;
    }, 10) or die "no new workers after reload:\n"
                  . $t->read_file('error.log');

    return 1;
}


# polls CODE every 10 ms until it returns true or SECONDS pass; returns
# the last value

sub wait_for {
    my ($code, $seconds) = @_;

    my $deadline = time() + ($seconds // 5);
    my $v;

    while (1) {
        $v = $code->();
        return $v if $v || time() > $deadline;
        sleep 0.01;
    }
}


# the error-log lines about Redis that are not one request's decision

sub redis_state_lines {
    my ($t) = @_;

    my $log = $t->read_file('error.log');

    return grep { /redis/i && !/token scope: \w+, reason "/ }
           split /\n/, $log;
}


# a version-7 UUID whose first 48 bits are the given Unix time in ms

sub uuid7 {
    my ($ms) = @_;

    my $h = sprintf '%012x', $ms;
    my @r = map { sprintf '%02x', int rand 256 } 1 .. 10;

    $r[0] = sprintf '%02x', 0x70 | (hex($r[0]) & 0x0f);
    $r[2] = sprintf '%02x', 0x80 | (hex($r[2]) & 0x3f);

    my $tail = join '', @r;

    return substr($h, 0, 8) . '-' . substr($h, 8, 4) . '-'
        . substr($tail, 0, 4) . '-' . substr($tail, 4, 4) . '-'
        . substr($tail, 8, 12);
}


1;
