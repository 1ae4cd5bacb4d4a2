"""Majordomo asynchronous client peer (the role of the Guide's mdclient2 on its client API
mdcliapi2, RFC 7/MDP 0.1), for interop tests.

A DEALER socket connects to --connect. First all --count requests are sent at once, each as
[""]["MDPC01"][service][body...] (a DEALER adds no empty frame: the client puts it there); then
the replies are collected, each waited for at most --timeout ms, in arrival order (MDP has no
request ids). A reply must have at least 4 frames, an empty one first and "MDPC01" second, else
the reference's assertions fail: this peer logs "assertion failed" and exits with status 3 (the
reference aborts). The service frame is dropped without being checked; the body is what follows.
There are no retries and no reconnection: a timeout ends the run ("N of M replies", status 2).

The body of request N (from 1) is one frame, the decimal N, unless --body is given (repeat it for
a multi-frame body). Unless --no-check, the replies must echo the requests: each body once, in
any order, else the client exits with status 1. After --count replies it prints
"done: N replies OK" and exits 0.
"""

import zmq

from _common import make_logger, parser, run, show_frames

log = make_logger("mdclient2")
MDPC01 = b"MDPC01"


class AssertionAbort(Exception):
    """Where the reference asserts (and aborts): a malformed reply."""


class MajordomoAsyncClient:
    """The asynchronous client API: send() never waits; recv() returns a reply body or None."""

    def __init__(self, ctx, broker, timeout, verbose=False):
        self.timeout = timeout
        self.verbose = verbose
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(broker)

    def send(self, service, body):
        request = [b"", MDPC01, service] + list(body)
        if self.verbose:
            log("sending %s" % show_frames(request))
        self.socket.send_multipart(request)

    def recv(self):
        if not self.socket.poll(self.timeout, zmq.POLLIN):
            return None
        reply = self.socket.recv_multipart()
        if self.verbose:
            log("received %s" % show_frames(reply))
        if len(reply) < 4 or reply[0] != b"" or reply[1] != MDPC01:
            raise AssertionAbort(show_frames(reply))
        return reply[3:]


def main(ctx):
    p = parser("mdclient2", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--service", default="echo", help="service to call")
    p.add_argument("--timeout", type=float, default=2500.0, metavar="MS",
                   help="time to wait for each reply")
    p.add_argument("--count", type=int, default=1, metavar="N", help="requests to send")
    p.add_argument("--body", action="append", default=None, metavar="TEXT",
                   help="a body frame (repeat for more); default: the request's number")
    p.add_argument("--no-check", action="store_true",
                   help="accept any reply bodies (default: they must echo the requests)")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    client = MajordomoAsyncClient(ctx, args.connect, args.timeout, args.verbose)
    log("ready: connecting to %s" % args.connect)
    service = args.service.encode()
    expected = []
    for n in range(1, args.count + 1):
        body = [b.encode() for b in args.body] if args.body else [str(n).encode()]
        client.send(service, body)
        expected.append(body)
    log("%d requests sent" % args.count)
    received = []
    try:
        while len(received) < args.count:
            reply = client.recv()
            if reply is None:
                log("E: no reply: %d of %d replies received" % (len(received), args.count))
                return 2
            received.append(reply)
            log("reply %d: %s" % (len(received), show_frames(reply)))
    except AssertionAbort as why:
        log("assertion failed: invalid reply %s (the reference aborts)" % why)
        return 3
    if not args.no_check and sorted(received) != sorted(expected):
        log("replies do not echo the requests: %s" % ", ".join(show_frames(r) for r in received))
        return 1
    log("done: %d replies OK" % args.count)
    return 0


if __name__ == "__main__":
    run(main, log)
