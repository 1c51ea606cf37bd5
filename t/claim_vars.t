#!/usr/bin/perl

# $token_scope_claim_NAME and $token_scope_header_NAME: every JSON type,
# through log_format and proxy_set_header (a second server echoes the
# headers); a cached token (the second request a cache hit) yields the
# same values; a reload that keeps another claim gives that claim's value
# for a token cached before it; a request nginx answered itself (400)
# logs the variables empty and nothing crashes.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);
use TokenScope::Test qw(verdict);

my $t = TokenScope::Test->new();

$t->keygen('ES256', 'e1');

# a first reload swaps $token_scope_claim_first for $token_scope_claim_second
# (only the cache's salt tells the two sets apart: each keeps as many
# claims at the same places), a second one adds $token_scope_claim_added

sub config {
    my ($swap) = @_;

    my $which = $swap ? 'second' : 'first';
    my $added = $swap && $swap > 1
                ? 'proxy_set_header X-Added $token_scope_claim_added;' : '';

    $t->write_config(<<"EOF");
http {
    %%TEST_GLOBALS_HTTP%%

    token_scope_key_file %%KEYS%%/e1.pem kid=e1;
    token_scope_cache zone=c:1m;

    log_format claims 'uri=\$uri status=\$status '
                      'str=\$token_scope_claim_str num=\$token_scope_claim_num '
                      'real=\$token_scope_claim_real '
                      'yes=\$token_scope_claim_yes no=\$token_scope_claim_no '
                      'nul=[\$token_scope_claim_nul] '
                      'arr=\$token_scope_claim_arr mix=\$token_scope_claim_mix '
                      'obj=\$token_scope_claim_obj '
                      'absent=\$token_scope_claim_absent '
                      'typ=\$token_scope_header_typ kid=\$token_scope_header_kid';

    upstream backend {
        server 127.0.0.1:%%PORT_8081%%;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;
        server_name localhost;

        access_log %%TESTDIR%%/claims.log claims;

        location /echo {
            token_scope all;
            proxy_set_header X-Str \$token_scope_claim_str;
            proxy_set_header X-Num \$token_scope_claim_num;
            proxy_set_header X-Arr \$token_scope_claim_arr;
            proxy_set_header X-Obj \$token_scope_claim_obj;
            proxy_set_header X-Alg \$token_scope_header_alg;
            proxy_set_header X-Pick \$token_scope_claim_$which;
            $added
            proxy_pass http://backend;
        }

        location = /status {
            access_log off;
            token_scope_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8081%%;
        server_name backend;

        location / {
            return 200 "str=\$http_x_str num=\$http_x_num arr=\$http_x_arr obj=\$http_x_obj alg=\$http_x_alg pick=\$http_x_pick\\nadded=\$http_x_added\\n";
        }
    }
}
EOF
}

sub count {
    my ($re) = @_;
    return scalar(() = $t->read_file('error.log') =~ /$re/g);
}

sub reload {
    my $started = count(qr/start worker process/);
    my $exited = count(qr/worker process \d+ exited/);

    my ($rc) = $t->run_cmd($t->_nginx_cmd('-s', 'reload'));
    return 0 if $rc != 0;

    my $deadline = time() + 10;

    while (time() < $deadline) {
        return 1 if count(qr/start worker process/) > $started
                    && count(qr/worker process \d+ exited/) > $exited;
        sleep 0.02;
    }

    return 0;
}

# the cache counter NAME of the status page
sub counter {
    my ($name) = @_;
    my ($v) = $t->get('/status')->{body}
              =~ /^token_scope_cache_\Q$name\E (\d+)$/m;
    return $v // -1;
}

# the log line of the Nth request to log (1-based), waited for
sub log_line {
    my ($n) = @_;

    my $deadline = time() + 5;

    while (time() < $deadline) {
        my @lines = split /\n/, $t->read_file('claims.log');
        return $lines[$n - 1] if @lines >= $n;
        sleep 0.02;
    }

    return '';
}

my $logged = 0;

sub echo {
    my ($token) = @_;
    my $r = $t->get('/echo', Authorization => "Bearer $token");
    $logged++;
    return $r;
}

config(0);
$t->run();

my $token = $t->mint('e1',
    '--claim', 'str="user one"',
    '--claim', 'num=42',
    '--claim', 'real=1.5',
    '--claim', 'yes=true',
    '--claim', 'no=false',
    '--claim', 'nul=null',
    '--claim', 'arr=["a","b"]',
    '--claim', 'mix=[1,"x",true]',
    '--claim', 'obj={"k":"v","n":[1,2]}',
    '--claim', 'first="one"',
    '--claim', 'second="two"',
    '--claim', 'added=["x","y"]');

my $r = echo($token);
is($r->{status}, 200, 'a token with claims of every type passes');
like($r->{body}, qr/^str=user one num=42 arr=a,b obj=\{"k":"v","n":\[1,2\]\} alg=ES256 pick=one$/m,
     'proxy_set_header gets a string as is, a number as JSON, an array of strings joined, an object as compact JSON, a header field');

my $line = log_line($logged);
like($line, qr/str=user one num=42 real=1.5 yes=true no=false nul=\[-\] /, 'the log has strings, numbers, booleans, and null as empty');
like($line, qr/arr=a,b mix=\[1,\\x22x\\x22,true\] obj=\{\\x22k\\x22:\\x22v\\x22,\\x22n\\x22:\[1,2\]\} /,
     'the log has arrays and objects (nginx escapes the quotes)');
like($line, qr/absent=- typ=JWT kid=e1$/, 'an absent claim logs as "-", header fields are there');

# the second request: a cache hit with the same values
my $hits = counter('hits_total');
$r = echo($token);
cmp_ok(counter('hits_total'), '>', $hits, 'the second request was a cache hit');
like($r->{body}, qr/^str=user one num=42 arr=a,b obj=\{"k":"v","n":\[1,2\]\} alg=ES256 pick=one$/m,
     'a cached token gives the same upstream headers');
is(log_line($logged) =~ s/^uri=\S+ //r, $line =~ s/^uri=\S+ //r, 'a cached token logs the same values');

# a reload that keeps "second" instead of "first"
config(1);
ok(reload(), 'reloaded with another claim variable');

my $entries = counter('entries');
cmp_ok($entries, '>', 0, 'the cache zone keeps its entries across the reload');

$r = echo($token);
like($r->{body}, qr/ pick=two$/m, 'after the reload the token cached before gives the new claim\'s value');
$r = echo($token);
like($r->{body}, qr/ pick=two$/m, 'and again from the cache');

# a second reload that adds a claim variable
config(2);
ok(reload(), 'reloaded with one claim variable more');

$r = echo($token);
like($r->{body}, qr/^added=x,y$/m, 'the token cached before gives the value of the claim variable added');
like($r->{body}, qr/ pick=two$/m, 'and of the others');
$r = echo($token);
like($r->{body}, qr/^added=x,y$/m, 'and again from the cache');

# a token whose kept claims exceed an entry: never cached, values whole
my $big = 'x' x 5000;
my $large = $t->mint('e1', '--claim', "str=\"$big\"");
$hits = counter('hits_total');
$r = echo($large);
like($r->{body}, qr/^str=x{5000} /m, 'a claim too long for a cache entry is passed whole');
$r = echo($large);
like($r->{body}, qr/^str=x{5000} /m, 'and again');
is(counter('hits_total'), $hits, 'the token with a claim too long for an entry is not cached');

# a claim with CR LF goes to the upstream escaped, never as a new header
my $split = $t->mint('e1', '--claim', 'str="x\r\nX-Alg: forged"');
$r = echo($split);
like($r->{body}, qr/^str="x\\r\\nX-Alg: forged" .* alg=ES256 /m,
     'a claim with CR LF is passed as JSON text and splits no header');

# a request nginx answered itself: the variables are empty in its log
my $raw = $t->http_raw("GARBAGE\r\n\r\n");
like($raw, qr/^HTTP\/1\.\d 400/, 'nginx answers a broken request line with 400');
$logged++;
like(log_line($logged), qr/status=400 str=- num=- .* typ=- kid=-$/, 'its log line has the claim variables empty');
is(echo($token)->{status}, 200, 'nginx still answers after it');

$t->done_testing();
