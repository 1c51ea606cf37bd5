#!/usr/bin/perl

# token_scope_upstream_headers: the verified token's facts reach the
# upstream as X-Token-* request headers, and a client's own copies never
# do, in any case, with "_" for "-", duplicated, whatever proxy_set_header
# the location has, for proxy, gRPC, FastCGI and uwsgi alike; also where the
# module refused the request and "satisfy any" let it through, where
# token_scope is off, and in a subrequest, without touching the parent's
# headers.  The upstreams are small servers of this test that answer with
# exactly what they got: the HTTP request head, the FastCGI params, the
# uwsgi vars; for gRPC, an nginx server over HTTP/2 echoes the first copy
# of three headers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use IO::Socket::INET;
use Test::More;
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

$t->write_config(<<'EOF');
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        # so that X_Token_Seller reaches the list (FastCGI: HTTP_X_TOKEN_...)
        underscores_in_headers on;

        location /proxy/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        # its own proxy_set_header: none of the server's is inherited
        location /own/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            proxy_set_header X-Own yes;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        location /fastcgi/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            include /etc/nginx/fastcgi_params;
            fastcgi_pass 127.0.0.1:%%PORT_FCGI%%;
        }

        location /uwsgi/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:%%PORT_UWSGI%%;
        }

        location /grpc/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            grpc_pass grpc://127.0.0.1:%%PORT_H2%%;
        }

        # decided here, then again in the named location
        location /redirect/ {
            token_scope marketplace;
            token_scope_upstream_headers on;
            try_files /nonexistent @proxy;
        }

        location @proxy {
            token_scope marketplace;
            token_scope_upstream_headers on;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        location /report/ {
            token_scope content;
            token_scope_mode report;
            token_scope_upstream_headers on;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        # refused by the module, let through by "allow"
        location /any/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            token_scope content;
            token_scope_upstream_headers on;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        location /off/ {
            token_scope off;
            token_scope_upstream_headers on;
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        location /plain/ {
            proxy_pass http://127.0.0.1:%%PORT_HTTP%%;
        }

        # two subrequests with the main request's headers: one decided
        # with the facts' headers, one that passes the client's as they are
        location /ssi/ {
            ssi on;
            default_type text/html;
            return 200 '<!--# include virtual="/proxy/sub" -->====<!--# include virtual="/plain/sub" -->';
        }
    }

    # the gRPC upstream: HTTP/2 without TLS; nginx's $http_ variable of an
    # unknown header is its first copy, a forged one would come first
    server {
        listen 127.0.0.1:%%PORT_H2%% http2;
        server_name h2;
        underscores_in_headers on;

        location / {
            return 200 "x-token-seller: $http_x_token_seller\nx-token-id: $http_x_token_id\nx-token-scopes: $http_x_token_scopes\n";
        }
    }
}
EOF

my $backend = start_backend();

$t->run();

my $sid = 'aaaaaaaa-1111-4000-8000-00000000000a';
my $id = '0199a0a0-0000-7000-8000-0000000000a1';

my $good = $t->mint('e1', '--categories', 'marketplace',
                    '--claim', "sid=\"$sid\"", '--claim', 'oid=4242',
                    '--claim', "id=\"$id\"");

my @forged = (
    'X-Token-Seller'     => 'victim',
    'x-token-seller'     => 'victim2',
    'X-TOKEN-SELLER'     => 'victim3',
    'X_Token_Seller'     => 'victim4',
    'X-Token-Scopes'     => 'admin',
    'X-Token-Categories' => 'all',
    'X-Token-Id'         => 'forged-id',
    'X-Token-Readonly'   => '0',
    'X-Token-Service'    => 'billing',
);

# the X-Token-* headers the upstream got: "name: value" lines, names in
# lower case and with "-", in the order sent

sub facts {
    my ($body) = @_;

    my @got;

    for (split /\r?\n/, $body // '') {
        my ($k, $v) = /^([^:]+):\s?(.*)$/ or next;
        $k = lc $k;
        $k =~ s/^http_//;
        $k =~ tr/_/-/;
        push @got, "$k: $v" if $k =~ /^x-token/;
    }

    return join("\n", @got);
}

my $expected = join("\n",
    "x-token-id: $id",
    'x-token-type: base',
    "x-token-seller: $sid",
    'x-token-seller-oid: 4242',
    'x-token-categories: marketplace',
    'x-token-readonly: 0');

for my $where (qw(proxy own fastcgi uwsgi)) {
    my $r = $t->get("/$where/x", Authorization => "Bearer $good", @forged);

    is($r->{status}, 200, "$where: a good token with forged headers passes");
    is(facts($r->{body}), $expected, "$where: the upstream gets the token's facts once and none of the client's copies");
}

my $r = $t->get('/grpc/x', Authorization => "Bearer $good", @forged);
is($r->{status}, 200, 'grpc: a good token with forged headers passes');
is(facts($r->{body}), "x-token-seller: $sid\nx-token-id: $id\nx-token-scopes: ", 'grpc: the upstream gets the token\'s facts, not the client\'s copies');

$r = $t->get('/redirect/x', Authorization => "Bearer $good", @forged);
is($r->{status}, 200, 'a request decided in two locations passes');
is(facts($r->{body}), $expected, 'the second location\'s facts replace the first\'s: each header once');

like($t->get('/own/x', Authorization => "Bearer $good")->{body}, qr/^X-Own: yes\r?$/mi, 'the location\'s own proxy_set_header is sent too');

$r = $t->get('/report/x', Authorization => "Bearer $good", @forged);
is($r->{status}, 200, 'report mode lets a token without the category pass');
is(facts($r->{body}), $expected, 'report mode: the upstream gets the facts of the reported token');

$r = $t->get('/any/x', @forged);
is($r->{status}, 200, 'satisfy any: a request without a token passes by its address');
is(facts($r->{body}), '', 'satisfy any: a refused request reaches the upstream without any X-Token-* header');

$r = $t->get('/off/x', Authorization => "Bearer $good", @forged);
is($r->{status}, 200, 'token_scope off passes');
is(facts($r->{body}), '', 'token_scope off: the client\'s X-Token-* headers are removed, no fact is added');

$r = $t->get('/plain/x', @forged);
like(facts($r->{body}), qr/x-token-seller: victim\n/, 'without the directive a client\'s X-Token-Seller does reach the upstream (the test sees it)');

$r = $t->get('/ssi/x', Authorization => "Bearer $good", @forged);
my ($sub, $parent) = split /====/, $r->{body} // '', 2;
is(facts($sub), $expected, 'a subrequest decided by the module gets the facts and none of the client\'s copies');
like(facts($parent), qr/x-token-seller: victim\n.*x-token-seller: victim2\n/s, 'the main request\'s headers, which the next subrequest copies, are left as they were');

kill 'TERM', $backend;
waitpid($backend, 0);

$t->done_testing();


# the upstreams: one process, one connection at a time, each answered with
# what it got

sub start_backend {
    my %listen;

    for my $kind (qw(HTTP FCGI UWSGI)) {
        $listen{$kind} = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $t->port($kind),
            Listen    => 16,
            ReuseAddr => 1,
        ) or die "cannot listen for $kind: $!\n";
    }

    my $pid = fork() // die "fork: $!\n";
    return $pid if $pid;

    my %kind = map { fileno($listen{$_}) => $_ } keys %listen;
    my $sel = IO::Select->new(values %listen);

    while (1) {
        for my $l ($sel->can_read()) {
            my $c = $l->accept() or next;
            binmode $c;
            eval { serve($kind{ fileno($l) }, $c) };
            close $c;
        }
    }
}


sub read_n {
    my ($c, $n) = @_;

    my $buf = '';

    while (length $buf < $n) {
        my $got = sysread($c, $buf, $n - length $buf, length $buf);
        die "short read\n" unless $got;
    }

    return $buf;
}


sub serve {
    my ($kind, $c) = @_;

    if ($kind eq 'HTTP') {
        my $head = '';
        $head .= read_n($c, 1) until $head =~ /\r\n\r\n$/;
        print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n$head";
        return;
    }

    if ($kind eq 'UWSGI') {
        my ($m1, $size) = unpack('Cv', read_n($c, 4));
        my $vars = read_n($c, $size);
        my $body = '';

        while (length $vars) {
            my $kl = unpack('v', substr($vars, 0, 2, ''));
            my $k = substr($vars, 0, $kl, '');
            my $vl = unpack('v', substr($vars, 0, 2, ''));
            my $v = substr($vars, 0, $vl, '');
            $body .= "$k: $v\n";
        }

        print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n$body";
        return;
    }

    # FastCGI: BEGIN_REQUEST, PARAMS up to an empty one, STDIN up to an
    # empty one; answered with STDOUT and END_REQUEST
    my ($params, $body, $rid) = ('', '');

    while (1) {
        my ($ver, $type, $id, $len, $pad) = unpack('CCnnC', read_n($c, 8));
        my $content = read_n($c, $len + $pad);
        $rid = $id;
        $params .= substr($content, 0, $len) if $type == 4;
        last if $type == 5 && $len == 0;
    }

    while (length $params) {
        my @l;
        for (1, 2) {
            my $n = unpack('C', $params);
            if ($n & 0x80) {
                $n = unpack('N', substr($params, 0, 4, '')) & 0x7fffffff;
            } else {
                substr($params, 0, 1, '');
            }
            push @l, $n;
        }
        my $k = substr($params, 0, $l[0], '');
        my $v = substr($params, 0, $l[1], '');
        $body .= "$k: $v\n";
    }

    my $out = "Content-Type: text/plain\r\n\r\n$body";

    print $c pack('CCnnCx', 1, 6, $rid, length $out, 0), $out,
             pack('CCnnCx', 1, 6, $rid, 0, 0),
             pack('CCnnCx', 1, 3, $rid, 8, 0), pack('NCx3', 0, 0);
}
