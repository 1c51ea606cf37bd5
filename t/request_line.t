#!/usr/bin/perl

# Requests nginx answers itself (SPEC section 13): a request line or a
# header section nginx refuses (400, 414, 505, and 494, which nginx sends
# as 400), a client that leaves before its request is complete (logged
# 400) or stays silent (408).  None of them reaches the access phase, so
# none has a decision: every $token_scope_* variable is empty in the access
# log, nothing is evaluated in the log phase, and no worker ever crashes,
# with or without a token in the request.  Each is sent to a server whose
# catalogue is in one location and to a server whose catalogue applies to
# the whole server (a request nginx answers itself is logged with the
# configuration of the server, so only there is the catalogue consulted).
# A request line nginx refused may still reach a catalogue location through
# "error_page 400 = /e400": that location decides anew.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);
use TokenScope::Test qw(verdict);

my @VARS = qw(id seller service kid type seller_oid exp readonly categories
              scopes required decision reason operation);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

# every $token_scope_* variable, as conf.d/audit.conf logs them
my $format = join ',', '"request":"$request"', '"status":$status',
                       map { "\"$_\":\"\$token_scope_$_\"" } @VARS;

(my $conf = <<'EOF') =~ s/%%FORMAT%%/{$format}/;
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    token_scope_operations t {
        GET  localhost  "/x/{id}"  marketplace  read;
    }

    log_format every escape=json '%%FORMAT%%';

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    # the catalogue in one location
    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        access_log %%TESTDIR%%/every.log every;

        # a silent client is answered 408 soon
        client_header_timeout 1s;

        token_scope marketplace;

        location / {
            proxy_pass http://backend;
        }

        location /x/ {
            token_scope_operations_use t unmatched=deny;
            proxy_pass http://backend;
        }
    }

    # a request line nginx refused, redirected into a catalogue location
    server {
        listen 127.0.0.1:%%PORT_8082%%;
        server_name localhost;

        access_log %%TESTDIR%%/every.log every;

        token_scope marketplace;

        error_page 400 = /e400;

        location / {
            proxy_pass http://backend;
        }

        location = /e400 {
            token_scope marketplace;
            token_scope_operations_use t unmatched=location;
            proxy_pass http://backend;
        }
    }

    # the catalogue for the whole server
    server {
        listen 127.0.0.1:%%PORT_8083%%;
        server_name localhost;

        access_log %%TESTDIR%%/every.log every;

        client_header_timeout 1s;

        token_scope marketplace;
        token_scope_operations_use t unmatched=deny;

        location / {
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

$t->write_config($conf)->run();

my $token = $t->mint('e1', '--categories', 'marketplace');
my $auth = "Authorization: Bearer $token\r\n";

my %SERVER = (
    8080 => 'where a location uses the catalogue',
    8082 => 'with error_page 400 into a catalogue location',
    8083 => 'where the whole server uses the catalogue',
);


# polls COND every 50 ms for up to 10 s; returns its first true value

sub poll {
    my ($cond) = @_;

    for (1 .. 200) {
        my $v = $cond->();
        return $v if $v;
        sleep 0.05;
    }

    return undef;
}


# what a file got after OFFSET

sub since {
    my ($name, $offset) = @_;
    my $content = $t->read_file($name);
    return length $content > $offset ? substr($content, $offset) : '';
}

sub size { length $t->read_file($_[0]) }

# the complete access log lines written after OFFSET, decoded

sub access_lines {
    my ($offset) = @_;
    my $new = since('every.log', $offset);
    $new =~ s/[^\n]*\z//;
    return map { eval { JSON::PP->new->decode($_) } // { bad => $_ } }
           split /\n/, $new;
}

sub crashes {
    my ($offset) = @_;
    return join "\n", since('error.log', $offset) =~ /^(.*exited on signal.*)$/mg;
}

# the access log line as "status=N id=... operation=..."

sub fields {
    my ($j) = @_;
    return 'no access log line' unless ref $j eq 'HASH';
    return "unparsable line: $j->{bad}" if exists $j->{bad};
    return join ' ', "status=$j->{status}",
                     map { "$_=" . ($j->{$_} // '(absent)') } @VARS;
}

sub no_decision {
    my ($status) = @_;
    return join ' ', "status=$status", map { "$_=" } @VARS;
}

# the good request that shows a worker is alive

sub alive {
    my ($port) = @_;
    return verdict($t->get('/x/alive', Authorization => "Bearer $token",
                           port => $port));
}


# one malformed request: sent, then its access log line is waited for (or
# the crash of the worker that should have written it)
#   what    the request, as it appears in the assertions
#   bytes   what is sent; %A% is where the Authorization header goes
#   send    "answer": read nginx's answer; "close": hang up at once;
#           "wait": stay silent until nginx closes the connection
#   status  the status nginx answers (send "answer") or logs

sub malformed {
    my ($port, $case, $with) = @_;

    my $where = $SERVER{$port};
    my $what = $case->{what} . ($with ? ' (with a token)' : '');
    (my $bytes = $case->{bytes}) =~ s/%A%/$with ? $auth : ''/e;

    my $log0 = size('every.log');
    my $err0 = size('error.log');
    my $res;

    if ($case->{send} eq 'close') {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $t->port($port),
                                      Proto => 'tcp')
            or die "cannot connect: $!\n";
        binmode $s;
        print $s $bytes;
        close $s;

    } else {
        $res = TokenScope::Test::parse_response(
            $t->http_raw($bytes, port => $port), 'GET');
    }

    my ($line) = poll(sub {
        my @l = access_lines($log0);
        return @l ? $l[0] : crashes($err0) ? 'crashed' : undef;
    });

    if ($case->{send} eq 'answer') {
        is($res->{status}, $case->{status}, "nginx answers $case->{status} to $what, on the server $where");
    } elsif ($case->{send} eq 'wait') {
        is($res->{raw}, '', "nginx closes the connection without an answer to $what, on the server $where");
    }

    if ($case->{body}) {
        like($res->{body}, $case->{body}, "the answer to $what is nginx's own page, on the server $where");
    }

    is(fields($line), no_decision($case->{status}), "the access log line of $what has its status and no token_scope value, on the server $where");
    is(alive($port), '200', "a good token still passes after $what, on the server $where");
    is(crashes($err0), '', "no worker exits on a signal after $what, on the server $where");
}


# nginx 1.22: "HTTP/2.0" in a request line is 505, a control byte in the
# query or a bad version suffix is 400, a request line longer than a
# large_client_header_buffers buffer (8k) is 414, a header line longer
# than one is 494 (answered and logged as 400 "Request Header Or Cookie
# Too Large"), a header line with a space and no colon is 400 ("foo" alone
# is taken as an empty header), so is a second Host; a client that hangs
# up early is logged 400, one that stays silent 408

my $query = 'q=' . ('a' x 9216);
my $big = 'X-Big: ' . ('b' x 9216) . "\r\n";

my @LINE = (
    { what => 'a request line ending in "HTTP/1.1x"', send => 'answer',
      status => 400, bytes => "GET /x?y HTTP/1.1x\r\nHost: localhost\r\n%A%\r\n" },
    { what => 'a request line of version HTTP/2.0', send => 'answer',
      status => 505, bytes => "GET /x?y HTTP/2.0\r\nHost: localhost\r\n%A%\r\n" },
    { what => 'a request line with a control byte in the query', send => 'answer',
      status => 400, bytes => "GET /x/1?a\x01b HTTP/1.1\r\nHost: localhost\r\n%A%\r\n" },
    { what => 'a request line with a 9 KB query string', send => 'answer',
      status => 414, bytes => "GET /x/1?$query HTTP/1.1\r\nHost: localhost\r\n%A%\r\n" },
);

my @HEADERS = (
    { what => 'a header line without a colon', send => 'answer',
      status => 400, bytes => "GET /x/1?a HTTP/1.1\r\nHost: localhost\r\n%A%Not a header\r\n\r\n" },
    { what => 'a header line longer than large_client_header_buffers', send => 'answer',
      status => 400, body => qr/Request Header Or Cookie Too Large/,
      bytes => "GET /x/1?a HTTP/1.1\r\nHost: localhost\r\n%A%$big\r\n" },
    { what => 'a second Host header', send => 'answer',
      status => 400, bytes => "GET /x/1?a HTTP/1.1\r\nHost: localhost\r\n%A%Host: other\r\n\r\n" },
    { what => 'a request whose client hangs up before the end of its headers', send => 'close',
      status => 400, bytes => "GET /x/1?a HTTP/1.1\r\nHost: localhost\r\n%A%" },
);

my @ALONE = (
    { what => 'half a request line whose client hangs up', send => 'close',
      status => 400, bytes => 'GET /x/1?a HT' },
    { what => 'half a request line whose client stays silent', send => 'wait',
      status => 408, bytes => 'GET /x/1?a HT' },
);

for my $port (8080, 8083) {
    for my $case (@LINE, @HEADERS) {
        malformed($port, $case, 0);
        malformed($port, $case, 1);
    }

    malformed($port, $_, 0) for @ALONE;
}


# a header line that is only a name is an empty header to nginx 1.22: the
# request is an ordinary one, decided as usual

my $log0 = size('every.log');
my $res = TokenScope::Test::parse_response($t->http_raw("GET /x/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${auth}foo\r\n\r\n"), 'GET');
is($res->{status}, 200, 'a header line that is only a name is taken as an empty header and the request passes');
my ($j) = poll(sub { (access_lines($log0))[0] });
is("$j->{decision}/$j->{reason}/$j->{operation}", 'allow/ok/GET localhost/x/{id}', 'that request is decided as usual');


# "error_page 400 = /e400": the request line never parsed (no URI, no
# headers: a token after the refused line is never read), yet the request
# reaches /e400, whose token_scope decides anew with its own rules.  With
# no token it refuses: 401 (the "=" makes the target's status the answer),
# logged deny/missing, and the worker lives.

for my $case (@LINE[0, 2]) {
    for my $with (0, 1) {
        my $what = $case->{what} . ($with ? ' (with a token)' : '');
        (my $bytes = $case->{bytes}) =~ s/%A%/$with ? $auth : ''/e;

        my $log0 = size('every.log');
        my $err0 = size('error.log');

        my $res = TokenScope::Test::parse_response($t->http_raw($bytes, port => 8082), 'GET');
        my ($line) = poll(sub {
            my @l = access_lines($log0);
            return @l ? $l[0] : crashes($err0) ? 'crashed' : undef;
        });

        is($res->{status}, 401, "$what, redirected by error_page 400 to a catalogue location, is refused there with 401");
        is(ref $line ? "$line->{status} $line->{decision}/$line->{reason} seller=$line->{seller}" : $line // 'no access log line', '401 deny/missing seller=', "the access log shows the refusal of the error_page location for $what, without token facts");
        is(alive(8082), '200', "a good token still passes after $what redirected by error_page 400");
        is(crashes($err0), '', "no worker exits on a signal after $what redirected by error_page 400");
    }
}

like($t->read_file('error.log'), qr/client sent invalid request/, 'nginx logged the refused request lines itself');
unlike($t->read_file('error.log'), qr/exited on signal/, 'no worker ever exited on a signal');

$t->done_testing();
