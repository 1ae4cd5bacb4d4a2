"""Majordomo synchronous client peer (the role of the Guide's mdclient on its client API mdcliapi,
RFC 7/MDP 0.1), for interop tests.

A REQ socket connects to --connect. Each request is sent as ["MDPC01"][service][body...] (REQ
puts the empty frame in front on the wire), then the client waits --timeout ms for the reply. A
reply must have at least 3 frames, "MDPC01" first and the service second, else the reference's
assertions fail: this peer logs "assertion failed" and exits with status 3 (the reference
aborts). The body is what follows. On a timeout the client closes its socket (linger 0), opens a
new one and sends the request again, --retries sends in all; after the last one it gives up
("permanent error, abandoning") and exits with status 2, keeping the dead socket (the reference
does not replace it then).

The body of request N (from 1) is one frame, the decimal N, unless --body is given (repeat it for
a multi-frame body, the same for every request). Unless --no-check, a reply whose body is not the
request's (an echo service is expected) is reported and the client exits with status 1. After
--count replies it prints "done: N requests OK" and exits 0. --pause-ms waits between requests.
"""

import zmq

from _common import make_logger, parser, run, show_frames, sleep_ms

MDPC01 = b"MDPC01"


class AssertionAbort(Exception):
    """Where the reference asserts (and aborts): a malformed reply."""


class MajordomoClient:
    """The synchronous client API: send(service, body) returns the reply body, or None."""

    def __init__(self, ctx, broker, timeout, retries, log, verbose=False):
        self.ctx = ctx
        self.broker = broker
        self.timeout = timeout
        self.retries = retries
        self.log = log
        self.verbose = verbose
        self.socket = None
        self.reconnect()

    def reconnect(self):
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.ctx.socket(zmq.REQ)
        self.socket.linger = 0
        self.socket.connect(self.broker)

    def send(self, service, body):
        request = [MDPC01, service] + list(body)
        retries_left = self.retries
        while retries_left > 0:
            if self.verbose:
                self.log("sending %s" % show_frames(request))
            self.socket.send_multipart(request)
            if self.socket.poll(self.timeout, zmq.POLLIN):
                reply = self.socket.recv_multipart()
                if self.verbose:
                    self.log("received %s" % show_frames(reply))
                if len(reply) < 3 or reply[0] != MDPC01 or reply[1] != service:
                    raise AssertionAbort(show_frames(reply))
                return reply[2:]
            retries_left -= 1
            if retries_left > 0:
                self.log("no reply, reconnecting...")
                self.reconnect()
            else:
                self.log("permanent error, abandoning")
        return None


def main(ctx):
    log = make_logger("mdclient")
    p = parser("mdclient", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--service", default="echo", help="service to call")
    p.add_argument("--timeout", type=float, default=2500.0, metavar="MS",
                   help="time to wait for a reply to each send")
    p.add_argument("--retries", type=int, default=3, metavar="N", help="sends per request in all")
    p.add_argument("--count", type=int, default=1, metavar="N", help="requests to send")
    p.add_argument("--body", action="append", default=None, metavar="TEXT",
                   help="a body frame (repeat for more); default: the request's number")
    p.add_argument("--no-check", action="store_true",
                   help="accept any reply body (default: the reply must echo the request)")
    p.add_argument("--pause-ms", type=float, default=0.0, metavar="MS",
                   help="time to wait between a reply and the next request")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    args = p.parse_args()

    client = MajordomoClient(ctx, args.connect, args.timeout, args.retries, log, args.verbose)
    log("ready: connecting to %s" % args.connect)
    service = args.service.encode()
    try:
        for n in range(1, args.count + 1):
            body = [b.encode() for b in args.body] if args.body else [str(n).encode()]
            reply = client.send(service, body)
            if reply is None:
                log("abandoned: no reply to request %d (%d replies received)" % (n, n - 1))
                return 2
            if not args.no_check and reply != body:
                log("unexpected reply to request %d: %s" % (n, show_frames(reply)))
                return 1
            log("reply %d: %s" % (n, show_frames(reply)))
            if n < args.count:
                sleep_ms(args.pause_ms)
    except AssertionAbort as why:
        log("assertion failed: invalid reply %s (the reference aborts)" % why)
        return 3
    log("done: %d requests OK" % args.count)
    return 0


if __name__ == "__main__":
    run(main, make_logger("mdclient"))
