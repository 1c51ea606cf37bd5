#!/usr/bin/perl

# scripts/revoke-seller and scripts/revoke refuse an id with anything
# pasted along (a trailing comma, a quote) with a clear message and exit
# status 2 before they talk to Redis; a good id gets as far as Redis (here
# none listens: exit status 1).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IPC::Open3;
use Symbol qw(gensym);
use Test::More;
use TokenScope::Test;

my $scripts = "$TokenScope::Test::ROOT/scripts";

plan(skip_all => 'no redis-cli') if system('command -v redis-cli >/dev/null');

# a port nobody listens on
my $dead = '127.0.0.1:' . TokenScope::Test->new()->port('dead');

sub run {
    my ($stdin, @cmd) = @_;

    my $err = gensym;
    my $pid = open3(my $in, my $out, $err, @cmd);
    print $in $stdin // '';
    close $in;
    my $output = do { local $/; <$out> } // '';
    $output .= do { local $/; <$err> } // '';
    waitpid($pid, 0);

    return ($? >> 8, $output);
}

my $sid = '5d7f0000-1111-4000-8000-0000000000a5';
my ($rc, $out);

($rc, $out) = run(undef, "$scripts/revoke-seller", '--redis', $dead, "$sid,");
is($rc, 2, 'revoke-seller SID, (a trailing comma) exits with status 2');
like($out, qr/not a usable seller id: "\Q$sid\E,": "," is not allowed/, 'and says what is wrong');
unlike($out, qr/Redis at/, 'without trying Redis');

($rc, $out) = run(undef, "$scripts/revoke-seller", '--redis', $dead, "$sid,", '1700000000');
is($rc, 2, 'revoke-seller SID, TIME exits with status 2');

($rc, $out) = run("$sid,\n", "$scripts/revoke-seller", '--redis', $dead, '-');
is($rc, 2, 'revoke-seller - with "SID," on standard input exits with status 2');
like($out, qr/not a usable seller id/, 'and says what is wrong');

($rc, $out) = run(undef, "$scripts/revoke-seller", '--redis', $dead, "\"$sid\"");
is($rc, 2, 'a quoted seller id exits with status 2');

($rc, $out) = run(undef, "$scripts/unrevoke-seller", '--redis', $dead, "$sid;");
is($rc, 2, 'unrevoke-seller SID; exits with status 2');

($rc, $out) = run(undef, "$scripts/revoke", '--redis', $dead, 'id-1', 'id-2,');
is($rc, 2, 'revoke ID ID, exits with status 2');
like($out, qr/not a usable id: "id-2,"/, 'and names the bad id');

($rc, $out) = run(undef, "$scripts/revoke-seller", '--redis', $dead, $sid);
is($rc, 1, 'a good seller id gets as far as Redis') or diag($out);
like($out, qr/Redis at \Q$dead\E did not apply the change/, 'which is not there');

($rc, $out) = run(undef, "$scripts/revoke-seller", '--redis', $dead, '4242');
is($rc, 1, 'a numeric seller id (an opaque token\'s subject) is usable');

done_testing();
