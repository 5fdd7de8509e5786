# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# A long-running Sisimai worker for bench/bounce/run.py: one interpreter for
# every message.  Reads frames "<length>\n<message bytes>" on stdin, answers one
# JSON line per message: {"ok": true, "events": [...]} or {"ok": false, "error": "..."}.
use strict;
use warnings;
use JSON::PP;
use Sisimai::Message;
use Sisimai::Data;

binmode STDIN;
binmode STDOUT;
$| = 1;
my $json = JSON::PP->new->canonical->utf8;

while (defined(my $line = <STDIN>)) {
    chomp $line;
    last if $line eq '' || $line !~ /\A\d+\z/;
    my $size = $line + 0;
    my $raw = '';
    while (length($raw) < $size) {
        my $got = read(STDIN, $raw, $size - length($raw), length($raw));
        last unless $got;
    }
    my $answer = eval {
        my $text = $raw;
        $text =~ s/\r\n/\n/g;
        my $mesg = Sisimai::Message->new('data' => $text);
        my @events;
        if ($mesg) {
            my $data = Sisimai::Data->make('data' => $mesg) || [];
            for my $e (@$data) {
                push @events, {
                    'recipient'    => ref $e->recipient ? $e->recipient->address : '' . ($e->recipient // ''),
                    'reason'       => $e->reason // '',
                    'status'       => $e->deliverystatus // '',
                    'replycode'    => $e->replycode // '',
                    'softbounce'   => $e->softbounce // '',
                    'action'       => $e->action // '',
                    'feedbacktype' => $e->feedbacktype // '',
                };
            }
        }
        { 'ok' => JSON::PP::true, 'events' => \@events };
    };
    $answer = { 'ok' => JSON::PP::false, 'error' => "$@" } unless $answer;
    print $json->encode($answer), "\n";
}
