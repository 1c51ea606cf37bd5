package TokenScope::Test;

# A small harness for the integration tests, in the spirit of nginx-tests'
# Test::Nginx, core Perl only: a temporary directory per test file, free
# loopback ports, nginx.conf from a template, nginx in the foreground as a
# child process, a raw HTTP/1.0 client, tokens minted with scripts/token
# (or crafted and signed here with the openssl command line for attacks
# that scripts/token cannot express), and the end checks.
#
# The end checks run for every instance (every TokenScope::Test object that
# ran nginx, "nginx -t" included), each on its own test directory: for
# every instance still alive when the test calls done_testing() on any of
# them, for one that goes out of scope earlier at its destruction, and for
# any left when the test file ends without done_testing() (an END block).
# They fail on
#   - an [alert], [crit] or [emerg] line in error.log or stderr.log
#     ([emerg] is allowed with config_errors, and in an instance that only
#     ever ran "nginx -t": testing configurations is what it is for);
#   - a sanitizer report (AddressSanitizer, LeakSanitizer,
#     UndefinedBehaviorSanitizer, "runtime error:" ...) in those logs or in
#     the output of any nginx command the harness ran ("nginx -t", "nginx
#     -s reload": their stderr is not the error log);
#   - a process of nginx that "exited on signal" or "exited with code N",
#     N not 0 (a worker that ASan or UBSan stops exits with code 1, logged
#     at [notice] only), and a master that did not exit with status 0;
#   - a token signature or client secret in any log file;
#   - under valgrind, its error reports and the module's definite leaks.
# stop() fails the test at once when nginx ends only on SIGKILL.
#
# For mk/hardening.mk: TEST_NGINX_MODULE loads another build of the module,
# TEST_NGINX_PRELOAD is put in LD_PRELOAD of every nginx command (the ASan
# runtime, for Debian's uninstrumented nginx), TEST_NGINX_VALGRIND=1 runs
# nginx under valgrind and fails on its errors and on definite leaks from
# the module.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Find qw(find);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64url decode_base64url);
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken);
use Test::More ();
use Time::HiRes qw(sleep time);
use Time::Local qw(timegm);

our @EXPORT_OK = qw(verdict b64u token_claims);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

my $NGINX  = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $MODULE = $ENV{TEST_NGINX_MODULE}
    || "$ROOT/build/ngx_http_token_scope_module.so";
my $TOKEN  = $ENV{TEST_TOKEN_SCRIPT} || "$ROOT/scripts/token";

my $PRELOAD  = $ENV{TEST_NGINX_PRELOAD};
my $VALGRIND = $ENV{TEST_NGINX_VALGRIND};

# how much longer nginx takes to start and stop under the tools
my $SLOW = $VALGRIND ? 20 : $PRELOAD ? 4 : 1;

# the fields every error answer carries (SPEC section 6)
my @FIELDS = qw(title detail code requestId origin status statusText
                timestamp);

# what a sanitizer report contains, in the logs and in command output
my $SANITIZER = qr/AddressSanitizer|LeakSanitizer|ThreadSanitizer
                  |MemorySanitizer|UndefinedBehaviorSanitizer
                  |runtime\ error:/x;

# every instance made by new(), weakly, in the order made: the end checks
# run for each
my @INSTANCES;


# new(name => NAME, config_errors => 1): NAME labels the end checks of a
# second instance; config_errors allows [emerg] in its logs (the option of
# done_testing() for the instance it is called on)

sub new {
    my ($class, %opt) = @_;

    if (!-x $NGINX) {
        Test::More::plan(skip_all => "no nginx binary at $NGINX");
    }

    if (!-f $MODULE) {
        Test::More::plan(skip_all => "module not built: $MODULE (run make)");
    }

    if (!-x $TOKEN) {
        Test::More::plan(skip_all => "no token tool at $TOKEN");
    }

    my $dir = tempdir('token-scope-test-XXXXXX', TMPDIR => 1,
                      CLEANUP => !$ENV{TEST_NGINX_LEAVE});

    # workers run as "nobody" when the tests run as root; they must reach
    # the temp paths inside the test directory
    chmod 0755, $dir;
    mkdir "$dir/keys";

    Test::More::diag("test directory $dir") if $ENV{TEST_NGINX_LEAVE};

    my $self = bless {
        dir           => $dir,
        ports         => {},
        keys          => {},
        signatures    => [],
        secrets       => [],
        pid           => undef,
        owner         => $$,
        name          => $opt{name},
        config_errors => $opt{config_errors},
        started       => 0,     # run() was called
        commands      => 0,     # nginx commands run (nginx -t, -s ...)
        reports       => [],    # sanitizer output of those commands
        statuses      => [],    # wait statuses of the master, each run
        checked       => 0,
    }, $class;

    push @INSTANCES, $self;
    weaken($INSTANCES[-1]);

    $self->{name} //= @INSTANCES > 1 ? 'instance ' . scalar(@INSTANCES)
                                     : '';

    return $self;
}


sub testdir { $_[0]{dir} }
sub keydir  { "$_[0]{dir}/keys" }


# a free loopback port per placeholder name, e.g. port(8080) for %%PORT_8080%%

sub port {
    my ($self, $name) = @_;

    return $self->{ports}{$name} //= $self->_free_port();
}


sub _free_port {
    my ($self) = @_;

    my %used = map { $_ => 1 } grep { defined } values %{ $self->{ports} };

    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => 0,
            Proto     => 'tcp',
            Listen    => 1,
            ReuseAddr => 0,
        ) or next;

        my $port = $s->sockport();
        close $s;

        return $port unless $used{$port};
    }

    die "cannot find a free port\n";
}


# configuration

sub write_file {
    my ($self, $name, $content) = @_;

    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";

    open my $fh, '>', $path or die "cannot write $path: $!\n";
    binmode $fh;
    print $fh $content;
    close $fh;

    return $path;
}


sub read_file {
    my ($self, $name) = @_;

    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";

    open my $fh, '<', $path or return '';
    binmode $fh;
    local $/;
    my $content = <$fh>;
    close $fh;

    return $content // '';
}


sub write_config {
    my ($self, $template) = @_;

    my $dir = $self->{dir};
    my $level = $ENV{TEST_NGINX_DEBUG} ? 'debug' : 'info';

    my $globals = <<"EOF";
load_module $MODULE;

daemon off;
master_process on;
worker_processes 1;

pid $dir/nginx.pid;
error_log $dir/error.log $level;

events {
    worker_connections 128;
}
EOF

    my $http = <<"EOF";
log_format ts_audit '\$remote_addr "\$request" \$status '
                    'decision=\$token_scope_decision '
                    'reason=\$token_scope_reason id=\$token_scope_id '
                    'kid=\$token_scope_kid seller=\$token_scope_seller';

    access_log $dir/access.log ts_audit;

    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
EOF

    my $conf = $template;

    $conf =~ s/%%TEST_GLOBALS_HTTP%%/$http/g;
    $conf =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    $conf =~ s/%%TESTDIR%%/$dir/g;
    $conf =~ s/%%KEYS%%/$dir\/keys/g;
    $conf =~ s/%%MODULE%%/$MODULE/g;

    die "unknown placeholder $1 in the configuration\n"
        if $conf =~ /(%%\w+%%)/;

    $conf = $globals . "\n" . $conf unless $conf =~ /^\s*load_module\b/m;

    $self->write_file('nginx.conf', $conf);

    return $self;
}


# runs a command; returns exit status, stdout and stderr

sub run_cmd {
    my ($self, $cmd, %opt) = @_;

    my $out = "$self->{dir}/.cmd.out";
    my $err = "$self->{dir}/.cmd.err";

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        open STDIN, '<', $opt{stdin} // '/dev/null' or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        exec @$cmd or POSIX::_exit(127);
    }

    waitpid($pid, 0);
    my $rc = $? >> 8;

    my ($o, $e) = ($self->read_file($out), $self->read_file($err));
    unlink $out, $err;

    # an nginx command ("nginx -t", "nginx -s reload"): its stderr is not
    # the error log, so a sanitizer report there is kept for the end checks
    my ($i) = grep { $cmd->[$_] eq $NGINX } 0 .. $#$cmd;

    if (defined $i) {
        my @args = @$cmd[$i + 1 .. $#$cmd];
        my @what = ('nginx');

        while (defined(my $a = shift @args)) {
            if ($a =~ /^-[pce]$/) {
                shift @args;
            } else {
                push @what, $a;
            }
        }

        $self->{commands}++;
        $self->_scan_output("@what", $o . $e);
    }

    return ($rc, $o, $e);
}


# sanitizer report lines in the output of an nginx command; kept, with the
# command, for the end checks

sub _scan_output {
    my ($self, $what, $output) = @_;

    my @lines = sanitizer_lines($output);

    push @{ $self->{reports} }, "$what: " . join("\n", @lines) if @lines;

    return scalar @lines;
}


# the lines of TEXT that belong to a sanitizer report

sub sanitizer_lines {
    my ($text) = @_;

    return $text =~ /^(.*(?:$SANITIZER).*)$/mg;
}


sub _nginx_cmd {
    my ($self, @extra) = @_;

    my $dir = $self->{dir};
    my @env = $PRELOAD ? ('/usr/bin/env', "LD_PRELOAD=$PRELOAD") : ();

    return [ @env, $NGINX, '-p', "$dir/", '-c', "$dir/nginx.conf",
             '-e', "$dir/error.log", @extra ];
}


# valgrind for the nginx that serves: a log per process, the workers too.
# No --error-exitcode: nginx's own definite leaks (old cycles) are valgrind
# errors too, and an exit code of valgrind's would hide nginx's own in the
# "exited with code" check; _valgrind_check() reads the logs instead

sub _valgrind_cmd {
    my ($self) = @_;

    return () unless $VALGRIND;

    return ('valgrind', '--quiet', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--num-callers=40', '--keep-debuginfo=yes',
            "--log-file=$self->{dir}/valgrind.%p.log");
}


# "nginx -t": exit status and everything it printed

sub test_config {
    my ($self) = @_;

    my ($rc, $out, $err) = $self->run_cmd($self->_nginx_cmd('-t'));

    return ($rc, $out . $err);
}


sub run {
    my ($self) = @_;

    die "nginx is already running\n" if $self->{pid};

    my $dir = $self->{dir};
    my $cmd = $self->_nginx_cmd();

    unshift @$cmd, $self->_valgrind_cmd();

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        # a process group of its own: stop() can kill the workers with
        # the master when it must
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stderr.log";
        open STDERR, '>>', "$dir/stderr.log";
        exec @$cmd or POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $self->{started}++;

    for my $port (values %{ $self->{ports} }) {
        $self->_wait_port($port);
    }

    return $self;
}


sub _wait_port {
    my ($self, $port) = @_;

    for (1 .. 100 * $SLOW) {
        my $s = IO::Socket::INET->new(
            PeerAddr => '127.0.0.1',
            PeerPort => $port,
            Proto    => 'tcp',
        );

        if ($s) {
            close $s;
            return;
        }

        if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
            push @{ $self->{statuses} }, $?;
            $self->{pid} = undef;
            die "nginx exited on start:\n" . $self->read_file('error.log')
                . $self->read_file('stderr.log');
        }

        sleep 0.05;
    }

    die "nginx does not listen on port $port:\n"
        . $self->read_file('error.log');
}


# QUIT (graceful), then TERM; each has 5 s (100 s under valgrind).  An
# nginx that neither ends is killed with its workers, and the test fails:
# a shutdown that hangs is a bug (a worker stuck in a loop, a lost timer)

sub stop {
    my ($self) = @_;

    my $pid = $self->{pid} or return $self;

    # a forked copy of the test must not stop the parent's nginx
    return $self if ($self->{owner} // $$) != $$;

    for my $sig (qw(QUIT TERM)) {
        kill $sig, $pid;
        next unless $self->_reap($pid, 5 * $SLOW);

        # nginx's master waits for its workers: one left means the master
        # died without them (a crash), and it would hold the ports
        if (kill 0, -$pid) {
            my @left = grep { /^\s*\d+\s+$pid\s/ }
                       `ps -e -o pid=,pgid=,args= 2>/dev/null`;
            kill 'KILL', -$pid;
            $self->_result(0, $self->_label('no nginx process outlived the'
                                            . ' master'),
                           "killed what was left of nginx $pid:", @left);
        }

        return $self;
    }

    my $log = $self->read_file('error.log');
    my @tail = (split /\n/, $log)[-10 .. -1];

    # the master and whatever workers are left; the status of this end
    # is not checked again: the test fails here
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    pop @{ $self->{statuses} } if $self->_reap($pid, 5);
    $self->{pid} = undef;

    $self->_result(0, $self->_label('nginx stopped on QUIT or TERM'),
                   "nginx $pid ended neither on QUIT nor on TERM within "
                   . 5 * $SLOW . ' s each and was killed (SIGKILL);'
                   . ' the end of error.log:',
                   grep { defined } @tail);

    return $self;
}


sub _reap {
    my ($self, $pid, $seconds) = @_;

    for (1 .. $seconds * 20) {
        if (waitpid($pid, WNOHANG) == $pid) {
            push @{ $self->{statuses} }, $?;
            $self->{pid} = undef;
            return 1;
        }

        sleep 0.05;
    }

    return 0;
}


sub DESTROY {
    my ($self) = @_;

    local ($?, $@);

    return if ($self->{owner} // $$) != $$;

    if (!$self->{checked} && ${^GLOBAL_PHASE} ne 'DESTRUCT') {
        eval { $self->end_checks() };
        warn $@ if $@;
    }

    $self->stop();
}


# the end checks of the instances still unchecked when the test file ends
# without done_testing() (it died, or called Test::More's own)

END {
    local $?;

    for my $t (grep { defined } @INSTANCES) {
        next if $t->{checked} || ($t->{owner} // $$) != $$;
        eval { $t->end_checks() };
        warn $@ if $@;
    }
}


# keys and tokens

sub keygen {
    my ($self, $alg, $kid) = @_;

    my $keys = $self->keydir;

    my ($rc, $out, $err) = $self->run_cmd([ $TOKEN, 'keygen', '--alg', $alg,
                                            '--kid', $kid, '--out', $keys ]);

    die "scripts/token keygen --alg $alg --kid $kid failed: $err$out\n"
        if $rc != 0;

    $self->{keys}{$kid} = {
        alg  => $alg,
        key  => "$keys/$kid.key",
        pem  => "$keys/$kid.pem",
        jwks => "$keys/$kid.jwks",
    };

    return $self->{keys}{$kid};
}


# scripts/token mint --key KEYS/KID.key ARGS...; returns the token

sub mint {
    my ($self, $kid, @args) = @_;

    my $key = $self->{keys}{$kid} or die "no key $kid\n";

    my ($rc, $out, $err) = $self->run_cmd([ $TOKEN, 'mint', '--key',
                                            $key->{key}, @args ]);

    die "scripts/token mint --key $kid @args failed: $err$out\n"
        if $rc != 0;

    chomp $out;
    $out =~ s/\s+\z//;

    $self->remember($out);

    return $out;
}


# the signature of every token the test made is looked for in the logs

sub remember {
    my ($self, $token) = @_;

    my @seg = split /\./, $token, -1;

    push @{ $self->{signatures} }, $seg[2]
        if @seg >= 3 && length $seg[2] >= 16;

    return $token;
}


# a client secret (X-Client-Secret) is looked for in the logs the same way;
# request() remembers every one it sends

sub remember_secret {
    my ($self, $secret) = @_;

    push @{ $self->{secrets} }, $secret if length $secret >= 8;

    return $secret;
}


# claims as JSON text: defaults first, then the given pairs, each value raw
# JSON text; undef removes a claim, a known name is replaced in place

sub payload {
    my ($self, @pairs) = @_;

    my $now = time();
    my @claims = (
        s   => '0',
        acc => '1',
        exp => int($now) + 3600,
        iat => int($now),
        id  => '"' . $self->uuid() . '"',
        sid => '"0f8e2b6a-1111-4c2d-9e3f-000000000001"',
        oid => '12345',
    );

    while (my ($k, $v) = splice @pairs, 0, 2) {
        my $found;

        for (my $i = 0; $i < @claims; $i += 2) {
            next unless $claims[$i] eq $k;

            if (defined $v) {
                $claims[$i + 1] = $v;
            } else {
                splice @claims, $i, 2;
            }

            $found = 1;
            last;
        }

        push @claims, $k, $v if !$found && defined $v;
    }

    my @parts;
    while (my ($k, $v) = splice @claims, 0, 2) {
        push @parts, "\"$k\":$v";
    }

    return '{' . join(',', @parts) . '}';
}


sub uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = unpack 'H*', pack 'C*', @b;
    $h =~ s/^(.{8})(.{4})(.{4})(.{4})(.{12})$/$1-$2-$3-$4-$5/;
    return $h;
}


sub b64u { encode_base64url($_[0]) }


# the claims of a JWT: its payload decoded, a hashref (not verified)

sub token_claims {
    my ($token) = @_;
    return JSON::PP->new->decode(decode_base64url((split /\./, $token)[1]));
}


# a token made from raw header and payload text, signed with a generated
# key (openssl command line; Digest::SHA for HMAC), for attacks that
# scripts/token cannot express:
#   key       kid of the signing key (from keygen)
#   header    raw header JSON; default {"alg":<key alg>,"kid":<kid>,"typ":"JWT"}
#   payload   raw payload JSON; default $self->payload()
#   alg       the algorithm to sign with; default: "alg" of the header
#   signature raw signature bytes to use instead of signing

sub craft {
    my ($self, %opt) = @_;

    my $kid = $opt{key} // die "craft: no key\n";
    my $key = $self->{keys}{$kid} or die "no key $kid\n";

    my $header = $opt{header}
        // '{"alg":"' . $key->{alg} . '","kid":"' . $kid . '","typ":"JWT"}';
    my $payload = $opt{payload} // $self->payload();

    my $alg = $opt{alg};
    if (!defined $alg) {
        $alg = eval { JSON::PP->new->decode($header)->{alg} } // $key->{alg};
    }

    my $input = b64u($header) . '.' . b64u($payload);
    my $sig = $opt{signature} // $self->sign($kid, $alg, $input);

    return $self->remember($input . '.' . b64u($sig));
}


sub sign {
    my ($self, $kid, $alg, $input) = @_;

    my $key = $self->{keys}{$kid} or die "no key $kid\n";

    if ($alg =~ /^HS(256|384|512)$/) {
        my $jwk = JSON::PP->new->decode($self->read_file($key->{jwks}));
        my $secret = decode_base64url($jwk->{keys}[0]{k});
        return $1 == 256 ? hmac_sha256($input, $secret)
             : $1 == 384 ? hmac_sha384($input, $secret)
             : hmac_sha512($input, $secret);
    }

    my $in = $self->write_file('.sign.in', $input);
    my $out = "$self->{dir}/.sign.out";
    my @cmd;

    if ($alg eq 'EdDSA') {
        @cmd = ('openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', $key->{key},
                '-in', $in, '-out', $out);

    } elsif ($alg =~ /^(ES|RS|PS)(256|384|512)$/) {
        @cmd = ('openssl', 'dgst', "-sha$2", '-sign', $key->{key},
                '-out', $out);
        push @cmd, '-sigopt', 'rsa_padding_mode:pss',
                   '-sigopt', 'rsa_pss_saltlen:digest' if $1 eq 'PS';
        push @cmd, $in;

    } else {
        die "sign: cannot sign with $alg\n";
    }

    my ($rc, $o, $e) = $self->run_cmd(\@cmd);
    die "@cmd failed: $e$o\n" if $rc != 0;

    my $sig = $self->read_file($out);
    unlink $in, $out;

    if ($alg =~ /^ES(256|384|512)$/) {
        $sig = der_to_raw($sig, { 256 => 32, 384 => 48, 512 => 66 }->{$1});
    }

    return $sig;
}


# an ECDSA-Sig-Value (DER) as the JWS raw r||s

sub der_to_raw {
    my ($der, $n) = @_;

    my @b = unpack 'C*', $der;
    my $i = 0;

    my $len = sub {
        my $l = $b[$i++];
        return $l if $l < 0x80;
        my $v = 0;
        $v = ($v << 8) | $b[$i++] for 1 .. ($l & 0x7f);
        return $v;
    };

    die "not a DER sequence\n" unless $b[$i++] == 0x30;
    $len->();

    my $raw = '';

    for (1 .. 2) {
        die "not a DER integer\n" unless $b[$i++] == 0x02;
        my $l = $len->();
        my $int = pack 'C*', @b[$i .. $i + $l - 1];
        $i += $l;
        $int =~ s/^\x00+//;
        $raw .= ("\x00" x ($n - length $int)) . $int;
    }

    return $raw;
}


# HTTP

# $t->get(PATH, HEADER => VALUE, ...), $t->request(METHOD, PATH, ...);
# options among the headers: port => NAME (default 8080), body => TEXT.
# Returns { status, headers => { lc name => value }, body, json }.

sub get {
    my ($self, $path, @headers) = @_;

    return $self->request('GET', $path, @headers);
}


# GET PATH with TOKEN on N new connections (spread over the workers by
# listen ... reuseport, the worker naming itself in X-Worker): the verdicts
# seen, joined by ", ", and how many workers answered

sub every_worker {
    my ($self, $path, $token, $n) = @_;

    my (%verdicts, %workers);

    for (1 .. $n) {
        my $r = $self->get($path, Authorization => "Bearer $token");
        $verdicts{ verdict($r) }++;
        $workers{ $r->{headers}{'x-worker'} // '?' }++;
    }

    return (join(', ', sort keys %verdicts), scalar keys %workers);
}


sub request {
    my ($self, $method, $path, @args) = @_;

    my ($port, $body) = ('8080', undef);
    my @headers;

    while (my ($k, $v) = splice @args, 0, 2) {
        if ($k eq 'port') {
            $port = $v;
        } elsif ($k eq 'body') {
            $body = $v;
        } else {
            $self->remember_secret($v) if lc $k eq 'x-client-secret';
            push @headers, $k, $v;
        }
    }

    my %has = map { lc $_ => 1 } @headers[grep { $_ % 2 == 0 } 0 .. $#headers];

    my $req = "$method $path HTTP/1.0\r\n";
    $req .= "Host: localhost\r\n" unless $has{host};

    while (my ($k, $v) = splice @headers, 0, 2) {
        $req .= "$k: $v\r\n";
    }

    if (defined $body) {
        $req .= 'Content-Length: ' . length($body) . "\r\n";
    } elsif ($method =~ /^(POST|PUT|PATCH)$/) {
        $req .= "Content-Length: 0\r\n";
    }

    $req .= "\r\n";
    $req .= $body if defined $body;

    my $raw = $self->http_raw($req, port => $port);

    return parse_response($raw, $method);
}


sub http_raw {
    my ($self, $req, %opt) = @_;

    my $port = $self->port($opt{port} // '8080');

    my $s = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1',
        PeerPort => $port,
        Proto    => 'tcp',
        Timeout  => 5,
    ) or die "cannot connect to 127.0.0.1:$port: $!\n";

    binmode $s;
    $s->autoflush(1);
    print $s $req;

    my $sel = IO::Select->new($s);
    my $raw = '';

    while ($sel->can_read(10)) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
    }

    close $s;

    return $raw;
}


sub parse_response {
    my ($raw, $method) = @_;

    my %res = (status => 0, headers => {}, body => '', raw => $raw);

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%res unless defined $head;

    my @lines = split /\r\n/, $head;
    my $status = shift @lines // '';

    ($res{status}) = $status =~ m{^HTTP/\d\.\d (\d{3})};
    $res{status} //= 0;

    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $res{headers}{$k} = exists $res{headers}{$k}
                            ? "$res{headers}{$k}, $v" : $v;
    }

    $res{body} = $body // '';

    if (($res{headers}{'content-type'} // '') =~ m{^application/json}) {
        $res{json} = eval { JSON::PP->new->decode($res{body}) };
    }

    return \%res;
}


# "200" for a passed request; "STATUS CODE" for an error answer in the
# right shape (SPEC section 6); "STATUS <what is wrong>" otherwise

sub verdict {
    my ($res) = @_;

    my $s = $res->{status};

    return "$s" if $s && $s < 400;

    my $ct = $res->{headers}{'content-type'} // '';
    return "$s not-json($ct)" unless $ct =~ m{^application/json};

    my $j = $res->{json};
    return "$s bad-json" unless ref $j eq 'HASH';

    for my $f (@FIELDS) {
        return "$s no-$f" unless defined $j->{$f};
    }

    return "$s bad-status"
        unless $j->{status} =~ /^\d+$/ && $j->{status} == $s
               && $res->{body} =~ /"status"\s*:\s*$s\b/;
    return "$s bad-requestId" unless $j->{requestId} =~ /^[0-9a-f]{32}$/;
    return "$s bad-timestamp"
        unless $j->{timestamp} =~ /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

    return "$s $j->{code}";
}


# the Unix time of a "2026-11-22T06:35:00Z" timestamp

sub parse_timestamp {
    my ($ts) = @_;

    my ($y, $mo, $d, $h, $mi, $s) =
        ($ts // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/
        or return undef;

    return timegm($s, $mi, $h, $d, $mo - 1, $y);
}


# the final checks of every test file: the end checks of every instance
# not checked yet (this one included), then Test::More's done_testing()

sub done_testing {
    my ($self, %opt) = @_;

    $self->{config_errors} = 1 if $opt{config_errors};

    for my $t (grep { defined } @INSTANCES) {
        $t->end_checks() unless $t->{checked} || ($t->{owner} // $$) != $$;
    }

    $self->end_checks() unless $self->{checked};

    Test::More::done_testing();
}


# the end checks of this instance (see the top of the file); stops nginx
# first.  Nothing to check in an instance that never ran nginx.  After the
# plan is out (Test::More's done_testing() was called) only failures are
# reported: a passing test there would break the plan

sub end_checks {
    my ($self) = @_;

    return if $self->{checked}++;

    $self->stop();

    return unless $self->{started} || $self->{commands};

    my $log = $self->read_file('error.log') . $self->read_file('stderr.log');

    # an instance that only ran "nginx -t" is there to test configurations
    my $bad = $self->{config_errors} || !$self->{started}
              ? qr/^.*\[(?:alert|crit)\].*$/m
              : qr/^.*\[(?:alert|crit|emerg)\].*$/m;

    $self->_check([ $log =~ /($bad)/g ],
                  $self->{config_errors} || !$self->{started}
                  ? 'the error log has no alert or crit lines'
                  : 'the error log has no alert, crit or emerg lines');

    $self->_check([ sanitizer_lines($log) ],
                  'the error log has no sanitizer output');

    $self->_check($self->{reports},
                  'no sanitizer output from nginx -t or nginx -s')
        if $self->{commands};

    if ($self->{started}) {
        # "exited on signal" is an [alert] too; said here by name
        $self->_check([ $log =~ /^(.*\bexited on signal\b.*)$/mg ],
                      'no nginx process exited on a signal');

        $self->_check([ grep { /exited with (?:fatal )?code (\d+)/ && $1 }
                        $log =~ /^(.*\bexited with (?:fatal )?code \d+.*)$/mg ],
                      'no nginx process exited with a non-zero code');

        # what nginx cannot log: how its master ended, each time it ran
        my @status = map {
            WIFSIGNALED($_) ? 'killed by signal ' . WTERMSIG($_)
            : WEXITSTATUS($_) ? 'exit status ' . WEXITSTATUS($_)
            : ()
        } @{ $self->{statuses} };

        $self->_check(\@status, 'the nginx master exited with status 0');
    }

    my @leaks;
    my @sigs = @{ $self->{signatures} };

    # at debug level nginx itself logs every request header
    @sigs = () if $ENV{TEST_NGINX_DEBUG};

    find({ no_chdir => 1, wanted => sub {
        return unless -f $_ && /log$/;
        my $content = $self->read_file($_);
        for my $sig (@sigs) {
            push @leaks, "$_: ...$sig" if index($content, $sig) >= 0;
        }
    } }, $self->{dir});

    $self->_check(\@leaks, 'no token signature appears in any log file');

    @leaks = ();

    # and every request header, X-Client-Secret too
    my @secrets = $ENV{TEST_NGINX_DEBUG} ? () : @{ $self->{secrets} };

    find({ no_chdir => 1, wanted => sub {
        return unless -f $_ && /log$/;
        my $content = $self->read_file($_);
        for my $secret (@secrets) {
            push @leaks, "$_: ..." . substr($secret, -6)
                if index($content, $secret) >= 0;
        }
    } }, $self->{dir});

    $self->_check(\@leaks, 'no client secret appears in any log file');

    $self->_valgrind_check() if $VALGRIND && $self->{started};

    return;
}


# a check passes when it found nothing; the first things found are shown

sub _check {
    my ($self, $found, $name) = @_;

    my @found = grep { defined } @$found;
    my $n = @found;

    splice @found, 5 if @found > 5;
    push @found, '... (' . ($n - 5) . ' more)' if $n > 5;

    return $self->_result(!$n, $self->_label($name),
                          @found ? ("found $n:", @found) : ());
}


# one assertion; a failure says what was found

sub _result {
    my ($self, $ok, $name, @diag) = @_;

    if (${^GLOBAL_PHASE} eq 'DESTRUCT') {
        warn "not ok: $name\n", map { "# $_\n" } @diag unless $ok;
        return $ok;
    }

    # after the plan only a failure may be added
    return $ok if $ok && defined Test::More->builder->has_plan;

    local $Test::Builder::Level = $Test::Builder::Level + 2;

    Test::More::ok($ok, $name) or Test::More::diag(join "\n", @diag);

    return $ok;
}


# the name of a check, with the instance's name for a second instance

sub _label {
    my ($self, $name) = @_;

    return $self->{name} ? "$self->{name}: $name" : $name;
}


# valgrind's reports: any error but a leak fails, and so does a definite
# leak allocated by the module (nginx's own pools are freed at exit)

sub _valgrind_check {
    my ($self) = @_;

    my (@errors, @leaks);

    for my $file (sort glob "$self->{dir}/valgrind.*.log") {
        my $log = $self->read_file($file);

        # one report: the lines of a process between two bare prefixes
        for my $report (split /^==\d+==\s*$/m, $log) {
            next unless $report =~ /^==\d+== (\S.*)$/m;

            my $what = $1;

            if ($what =~ /definitely lost/) {
                push @leaks, $report
                    if $report =~ /ngx_http_token_scope|\bts_\w+ \(/;

            } elsif ($what !~ /^Warning:/
                     && $report =~ /^==\d+==    (?:at|by) /m)
            {
                push @errors, $report;
            }
        }
    }

    $self->_check(\@errors, 'valgrind reports no memory errors');

    $self->_check(\@leaks, 'valgrind reports no definite leak from the module');
}


1;
